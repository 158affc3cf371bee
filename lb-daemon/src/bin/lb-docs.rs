//! `lb-docs OUT [CONFIG]`: writes the manual pages (lbd.8, lbctl.8,
//! lb.toml.5) and the bash, zsh and fish completions of `lbd` and `lbctl`
//! under OUT, for `cargo xtask package`. CONFIG is the annotated config the
//! lb.toml(5) page is made from (default: the `config/lb.toml` this binary
//! was built with).

use std::{path::PathBuf, process::ExitCode};

const ANNOTATED: &str = include_str!("../../../config/lb.toml");

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("lb-docs: missing argument OUT (usage: lb-docs OUT [CONFIG])");
        return ExitCode::from(2);
    };
    let config = match args.next().map(PathBuf::from) {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("lb-docs: CONFIG {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => ANNOTATED.to_owned(),
    };
    match lb_daemon::cli::docs::generate(&out, &config) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lb-docs: writing under OUT {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
