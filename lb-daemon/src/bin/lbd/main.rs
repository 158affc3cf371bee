//! `lbd`: the load-balancer daemon.
//!
//! `lbd --config FILE` runs [`lb_daemon::daemon::run`] (which loads or
//! adopts the pinned XDP data path, programs it, and serves `lbctl` and
//! `/metrics`) with SIGHUP as reload and SIGTERM/SIGINT as stop. `lbd
//! check-config FILE` validates a config; `lbd teardown --config FILE`
//! removes the data path and the VIP addresses.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use lb_daemon::{
    cli::lbd::{Cli, Command},
    daemon::{self, Trigger},
};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config),
        Command::CheckConfig { file } => {
            let file = file.unwrap_or(cli.config);
            return match daemon::check_config(&file) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Teardown => daemon::teardown::run(&cli.config),
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

/// The daemon, with signal handlers installed before anything else: a
/// SIGHUP or SIGTERM during startup is queued, not fatal.
fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let (trigger, shutdown) = daemon::shutdown_channel();
    forward_signals(trigger)?;
    daemon::run(daemon::load(path)?, shutdown)
}

/// SIGHUP reloads, SIGTERM and SIGINT stop: on a thread of their own.
fn forward_signals(trigger: Trigger) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut hangup, mut terminate, mut interrupt) = {
        let _context = runtime.enter();
        (
            signal(SignalKind::hangup()).context("SIGHUP handler")?,
            signal(SignalKind::terminate()).context("SIGTERM handler")?,
            signal(SignalKind::interrupt()).context("SIGINT handler")?,
        )
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::select! {
                        _ = hangup.recv() => trigger.reload(),
                        _ = terminate.recv() => break,
                        _ = interrupt.recv() => break,
                    }
                }
                tracing::info!("stopping on signal");
                trigger.stop();
                // Further signals keep being caught (not fatal) while lbd
                // stops in order.
                loop {
                    tokio::select! {
                        _ = hangup.recv() => {}
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
            });
        })?;
    Ok(())
}

/// Logs to stderr; `RUST_LOG` overrides the default `info`.
fn init_logging() {
    // netlink-packet-route warns about every kernel attribute newer than
    // itself (on every link read: ten times a second with VRRP); that is
    // noise for an operator, whatever RUST_LOG says.
    let quiet = "netlink_packet_route=error"
        .parse()
        .expect("a valid directive");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive(quiet);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a terminal only: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
