//! `lbd`'s command line (clap): the binary parses it, `lb-docs` turns it
//! into the manual page lbd(8) and the shell completions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lbd",
    version = crate::VERSION,
    about = "XDP direct-routing load balancer daemon",
    long_about = "XDP direct-routing (LVS-DR) load balancer daemon. lbd loads (or adopts \
                  the pinned) XDP program, programs services and reals from its config \
                  file, learns the reals' MAC addresses from the neighbour table, runs \
                  health checks and, with [vrrp], director failover; it serves lbctl on \
                  a Unix socket and Prometheus metrics over HTTP. SIGHUP reloads the \
                  config; SIGTERM stops lbd and leaves the data path forwarding (a \
                  restarted lbd adopts it without dropping flows); `lbd teardown` \
                  removes it. Under systemd (NOTIFY_SOCKET) it reports readiness, \
                  reloads and stopping, and feeds the watchdog (WATCHDOG_USEC). Logs \
                  go to stderr; RUST_LOG filters them (default info)."
)]
pub struct Cli {
    /// The config file (TOML; see config/lb.toml).
    #[arg(long, short, default_value = "/etc/lbd/lb.toml", global = true)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
