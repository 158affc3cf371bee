//! `cargo xtask <cmd>`: the project's automation. This file holds the CLI and
//! the helpers every subcommand shares (workspace paths, running commands).
//!
//! xtask depends on no other workspace crate: it must build before the eBPF
//! object that `lb-daemon` embeds exists.

mod bench;
mod build;
mod demo;
mod package;
mod setup;
mod test;

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

/// The environment variable through which `lb-daemon`'s build script finds
/// the eBPF object it embeds.
pub(crate) const LB_XDP_OBJECT: &str = "LB_XDP_OBJECT";

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, test, benchmark and demo the XDP load balancer"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what this machine lacks: nightly rust-src, bpf-linker (in
    /// target/tools), the Debian packages the tests and demo use; mount bpffs.
    Setup,
    /// Run setup, then build the eBPF object with nightly and print its path.
    BuildEbpf,
    /// Build the eBPF object, then `cargo build --release` (default members).
    Build,
    /// Build the `lbd` Debian package (binaries, systemd unit, config,
    /// manual pages, completions) into target/debian; prints its path.
    Package,
    /// Build the eBPF object, then `cargo test [ARGS]`
    /// (e.g. `cargo xtask test -- -p lb-daemon -- --nocapture`).
    Test {
        /// Passed through to `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Build the eBPF object, then run `lb-bench` (per-packet cost) and
    /// `lbd-scale` (lbd with 100 services and 1000 reals: RSS, apply time), release.
    Bench {
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
        /// Further arguments for `lb-bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Build everything (release), then run `lb-demo [ARGS]`; Ctrl-C goes to
    /// `lb-demo`, which cleans up its namespaces before exiting.
    Demo {
        /// Passed through to `lb-demo`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the cause chain on one line; no backtrace (the
            // environment may set RUST_BACKTRACE=1, and anyhow would print
            // one that says nothing useful about a failed subprocess).
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Setup => {
            let start = std::time::Instant::now();
            setup::run()?;
            eprintln!(
                "xtask: setup complete ({:.2}s)",
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Cmd::BuildEbpf => {
            let object = build::build_ebpf()?;
            println!("{}", object.display());
            Ok(())
        }
        Cmd::Build => build::build(),
        Cmd::Package => {
            let deb = package::run()?;
            println!("{}", deb.display());
            Ok(())
        }
        Cmd::Test { args } => test::run(&args),
        Cmd::Bench { json, args } => bench::run(json, &args),
        Cmd::Demo { args } => demo::run(&args),
    }
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// Where stable cargo puts its output: `$CARGO_TARGET_DIR` or `<root>/target`.
pub(crate) fn cargo_target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// A `cargo` command of the toolchain that runs xtask, in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs `cmd` with inherited stdio and fails unless it exits successfully.
pub(crate) fn run_command(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// `program arg arg ...` for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    // `cargo`, not the full path of the toolchain's cargo binary.
    let program = Path::new(cmd.get_program());
    let mut s = if program.file_name() == Some("cargo".as_ref()) {
        "cargo".to_owned()
    } else {
        program.to_string_lossy().into_owned()
    };
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{Cli, Cmd};
    use clap::Parser as _;

    fn test_args(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(argv).unwrap();
        let Cmd::Test { args } = cli.cmd else {
            panic!("not `test`")
        };
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn test_args_pass_through() {
        assert!(test_args(&["xtask", "test"]).is_empty());
        assert_eq!(test_args(&["xtask", "test", "-p", "x"]), ["-p", "x"]);
        assert_eq!(test_args(&["xtask", "test", "--", "-p", "x"]), ["-p", "x"]);
        assert_eq!(
            test_args(&["xtask", "test", "--", "-p", "x", "--", "--nocapture"]),
            ["-p", "x", "--", "--nocapture"]
        );
        assert_eq!(
            test_args(&["xtask", "test", "-p", "x", "--", "--nocapture"]),
            ["-p", "x", "--", "--nocapture"]
        );
    }

    #[test]
    fn bench_json_flag() {
        let cli = Cli::try_parse_from(["xtask", "bench", "--json", "--quick"]).unwrap();
        let Cmd::Bench { json, args } = cli.cmd else {
            panic!("not `bench`")
        };
        assert!(json);
        assert_eq!(args, ["--quick"]);
    }
}
