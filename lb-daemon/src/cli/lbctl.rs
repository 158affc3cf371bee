//! `lbctl`'s command line (clap): the binary parses it, `lb-docs` turns it
//! into the manual page lbctl(8) and the shell completions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    admin::parse_service,
    balancer::model::{Scheduler, ServiceAddr},
};

#[derive(Parser)]
#[command(
    name = "lbctl",
    version = crate::VERSION,
    about = "Control a running lbd",
    long_about = "Control a running lbd over its admin socket: show services, reals, \
                  flows and health; add, remove, re-weight and drain reals at runtime; \
                  reload the config. Every change takes effect at once and is written \
                  into lbd's config file, keeping its comments. A refused request exits \
                  1 and a bad argument 2, each with a one-line `lbctl: reason`."
)]
pub struct Cli {
    /// lbd's admin socket.
    #[arg(
        long,
        short,
        env = "LBD_SOCKET",
        default_value = "/run/lbd/lbd.sock",
        global = true
    )]
    pub socket: PathBuf,
    /// Print the reply as JSON (read commands and changes alike).
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up waiting for lbd after this many seconds.
    #[arg(long, default_value_t = 10, global = true)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Services and reals: weight, state, active connections, counters.
    #[command(alias = "list", alias = "ls")]
    Status,
    /// Add or remove a service.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Add, remove, re-weight or drain a real server.
    #[command(subcommand)]
    Real(RealCommand),
    /// Live flows (like `ipvsadm -Lnc`).
    Flows {
        /// Only flows of this service (VIP:PORT[/tcp|udp]).
        #[arg(long, value_parser = service_arg)]
        service: Option<ServiceAddr>,
        /// Only flows on this real (IP or IP:PORT).
        #[arg(long)]
        real: Option<String>,
        /// At most this many flows (0: all).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Where a client's connection to a service goes now, and why.
    Trace {
        /// tcp or udp.
        #[arg(value_parser = ["tcp", "udp"])]
        protocol: String,
        /// The client's IP:PORT ([IP]:PORT for IPv6).
        client: String,
        /// The service's VIP:PORT.
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
    },
    /// Re-read lbd's config file and apply the difference (like SIGHUP, but
    /// the errors come back here).
    Reload,
    /// Health checks: each real's state, last probe, damping and recent
    /// transitions with their reasons.
    Health,
    /// Director failover: VRRP state, master, peers, recent transitions and
    /// the connection-table sync.
    Vrrp,
    /// Several active directors ([ecmp]): which VIPs this director
    /// announces to the router, and why the others are withdrawn; drain or
    /// undrain it.
    Director {
        #[command(subcommand)]
        action: Option<DirectorCommand>,
    },
}

#[derive(Subcommand, Clone, Copy)]
pub enum DirectorCommand {
    /// Withdraw every VIP from the router (the routing daemon stops
    /// announcing them) and keep forwarding the flows that still arrive:
    /// before maintenance, wait until they stop, then stop lbd. The drain
    /// outlives an lbd restart (it is kept with the pinned maps) until
    /// `undrain`; `lbd teardown` or a reboot forgets it.
    Drain,
    /// Announce the VIPs again (each where its services are healthy).
    Undrain,
}

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Add a service with no reals (add them with `lbctl real add`).
    Add {
        /// VIP:PORT[/tcp|udp] ([VIP]:PORT for IPv6).
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
        /// rr, wrr, lc, wlc, maglev or sh.
        #[arg(long, default_value = "wlc", value_parser = scheduler_arg)]
        scheduler: Scheduler,
        /// Maglev/sh table size (prime).
        #[arg(long)]
        table_size: Option<u32>,
    },
    /// Remove a service; its established flows continue until they end.
    Remove {
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
    },
}

#[derive(Subcommand)]
pub enum RealCommand {
    /// Add a real to a service; it takes new connections once its MAC is known.
    Add {
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
        /// IP or IP:PORT (the port defaults to the service's).
        real: String,
        /// 0 to 65535: its share of new connections (0: none).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=65535))]
        weight: u32,
        /// A spare: takes traffic only when primaries fail.
        #[arg(long)]
        backup: bool,
        /// Static MAC instead of the neighbour table.
        #[arg(long)]
        mac: Option<String>,
    },
    /// Remove a real; its established flows continue until they end.
    Remove {
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
        real: String,
    },
    /// Set a real's weight (0 = no new connections).
    Weight {
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
        real: String,
        /// 0 to 65535 (0: no new connections).
        #[arg(value_parser = clap::value_parser!(u32).range(0..=65535))]
        weight: u32,
    },
    /// Stop new connections to a real; established ones continue. Shows the
    /// flows left.
    Drain {
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
        real: String,
    },
}

fn service_arg(text: &str) -> Result<ServiceAddr, String> {
    parse_service(text)
}

fn scheduler_arg(text: &str) -> Result<Scheduler, String> {
    text.parse()
        .map_err(|e: crate::balancer::model::UnknownScheduler| e.to_string())
}
