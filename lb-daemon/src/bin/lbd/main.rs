//! `lbd`: the load-balancer daemon.
//!
//! `lbd --config FILE` loads (or adopts) the pinned XDP data path, programs
//! it from the config, keeps real MACs in step with the neighbour table,
//! ages the connection table and serves the admin socket for `lbctl`.
//! `lbd check-config FILE` validates a config; `lbd teardown --config FILE`
//! removes the data path and the VIP addresses.

mod daemon;
mod failover;
mod flow_sync;
mod metrics_http;
mod neighbours;
mod poll;
mod server;
mod teardown;
mod vips;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use lb_daemon::config::{self, SystemEnvironment};

#[derive(Parser)]
#[command(
    name = "lbd",
    version,
    about = "XDP direct-routing load balancer daemon"
)]
struct Cli {
    /// The config file (TOML; see config/lb.toml).
    #[arg(long, short, default_value = "/etc/lbd/lb.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate a config file without touching anything; exit 0 if valid.
    CheckConfig {
        /// The file to check (defaults to --config).
        file: Option<PathBuf>,
    },
    /// Remove the data path (program, pinned maps, links) and the VIP
    /// addresses. Established flows are lost. Stop lbd first.
    Teardown,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => daemon::run(&cli.config),
        Command::CheckConfig { file } => {
            let file = file.unwrap_or(cli.config);
            return match config::load(&file, &SystemEnvironment) {
                Ok((cfg, _)) => {
                    println!(
                        "{}: ok ({} services, {} reals)",
                        file.display(),
                        cfg.services.len(),
                        cfg.services.iter().map(|s| s.reals.len()).sum::<usize>()
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Teardown => teardown::run(&cli.config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("lbd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // netlink-packet-route warns about every kernel attribute newer than
        // itself; that is noise for an operator.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,netlink_packet_route=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a terminal only: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
