//! `lbctl`: inspect and change a running `lbd` over its admin socket.
//! Every change takes effect at once and is written to lbd's config file.

mod table;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use lb_daemon::{
    admin::{
        self, ChangeResult, FlowEntry, RealHealthStatus, Request, Status, TraceResult, VrrpStatus,
        parse_real, parse_service,
    },
    balancer::model::{Scheduler, ServiceAddr},
};

#[derive(Parser)]
#[command(name = "lbctl", version, about = "Control a running lbd")]
struct Cli {
    /// lbd's admin socket.
    #[arg(
        long,
        short,
        env = "LBD_SOCKET",
        default_value = "/run/lbd/lbd.sock",
        global = true
    )]
    socket: PathBuf,
    /// Print the reply as JSON (read commands and changes alike).
    #[arg(long, global = true)]
    json: bool,
    /// Give up waiting for lbd after this many seconds.
    #[arg(long, default_value_t = 10, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

#[derive(Subcommand)]
enum ServiceCommand {
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
enum RealCommand {
    /// Add a real to a service; it takes new connections once its MAC is known.
    Add {
        #[arg(value_parser = service_arg)]
        service: ServiceAddr,
        /// IP or IP:PORT (the port defaults to the service's).
        real: String,
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
        .map_err(|e: lb_daemon::balancer::model::UnknownScheduler| e.to_string())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // One line, naming the argument, like every other failure.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!(
                "lbctl: {} (see lbctl --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("lbctl: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let request = request(&cli.command)?;
    let data = admin::call(&cli.socket, &request, Duration::from_secs(cli.timeout))
        .map_err(|e| e.to_string())?;
    if cli.json {
        println!("{data}");
        return Ok(());
    }
    let decode = |e: serde_json::Error| format!("lbd sent an unexpected reply: {e}");
    match &cli.command {
        Command::Status => {
            let status: Status = serde_json::from_value(data).map_err(decode)?;
            // Which director this is matters first when there are two.
            let vrrp = admin::call(
                &cli.socket,
                &Request::Vrrp,
                Duration::from_secs(cli.timeout),
            )
            .ok()
            .and_then(|v| serde_json::from_value::<VrrpStatus>(v).ok());
            if let Some(line) = vrrp.as_ref().and_then(table::vrrp_summary) {
                println!("{line}");
            }
            print!("{}", table::status(&status));
        }
        Command::Flows { .. } => {
            let flows: Vec<FlowEntry> = serde_json::from_value(data).map_err(decode)?;
            print!("{}", table::flows(&flows));
        }
        Command::Health => {
            let reals: Vec<RealHealthStatus> = serde_json::from_value(data).map_err(decode)?;
            print!("{}", table::health(&reals));
        }
        Command::Vrrp => {
            let vrrp: VrrpStatus = serde_json::from_value(data).map_err(decode)?;
            print!("{}", table::vrrp(&vrrp));
        }
        Command::Trace { .. } => {
            let trace: TraceResult = serde_json::from_value(data).map_err(decode)?;
            println!(
                "{} -> {}\n  {}",
                trace.service,
                trace.real.as_deref().unwrap_or("(none)"),
                trace.reason
            );
        }
        _ => {
            let change: ChangeResult = serde_json::from_value(data).map_err(decode)?;
            println!("{}", change.summary);
        }
    }
    Ok(())
}

fn request(command: &Command) -> Result<Request, String> {
    let real_arg = |service: &ServiceAddr, real: &str| -> Result<String, String> {
        // Checked here so a typo is named before lbd is asked.
        let (ip, port) = parse_real(real, service.port)?;
        Ok(std::net::SocketAddr::new(ip, port).to_string())
    };
    Ok(match command {
        Command::Status => Request::Status,
        Command::Reload => Request::Reload,
        Command::Health => Request::Health,
        Command::Vrrp => Request::Vrrp,
        Command::Flows {
            service,
            real,
            limit,
        } => Request::Flows {
            service: service.map(|s| s.to_string()),
            real: real.clone(),
            limit: Some(*limit),
        },
        Command::Trace {
            protocol,
            client,
            service,
        } => Request::Trace {
            protocol: protocol.clone(),
            client: client.clone(),
            service: service.to_string(),
        },
        Command::Service(ServiceCommand::Add {
            service,
            scheduler,
            table_size,
        }) => Request::AddService {
            service: service.to_string(),
            scheduler: Some(scheduler.to_string()),
            table_size: *table_size,
        },
        Command::Service(ServiceCommand::Remove { service }) => Request::RemoveService {
            service: service.to_string(),
        },
        Command::Real(RealCommand::Add {
            service,
            real,
            weight,
            backup,
            mac,
        }) => Request::AddReal {
            service: service.to_string(),
            real: real_arg(service, real)?,
            weight: Some(*weight),
            backup: *backup,
            mac: mac.clone(),
        },
        Command::Real(RealCommand::Remove { service, real }) => Request::RemoveReal {
            service: service.to_string(),
            real: real_arg(service, real)?,
        },
        Command::Real(RealCommand::Weight {
            service,
            real,
            weight,
        }) => Request::SetWeight {
            service: service.to_string(),
            real: real_arg(service, real)?,
            weight: *weight,
        },
        Command::Real(RealCommand::Drain { service, real }) => Request::Drain {
            service: service.to_string(),
            real: real_arg(service, real)?,
        },
    })
}
