//! `lbctl`: inspect and change a running `lbd` over its admin socket.
//! Every change takes effect at once and is written to lbd's config file.

mod table;

use std::{process::ExitCode, time::Duration};

use clap::Parser as _;
use lb_daemon::{
    admin::{
        self, ChangeResult, EcmpStatus, FlowEntry, RealHealthStatus, Request, Status, TraceResult,
        VrrpStatus, parse_real,
    },
    balancer::model::ServiceAddr,
    cli::lbctl::{Cli, Command, DirectorCommand, RealCommand, ServiceCommand},
};

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
            let ecmp = admin::call(
                &cli.socket,
                &Request::Director,
                Duration::from_secs(cli.timeout),
            )
            .ok()
            .and_then(|v| serde_json::from_value::<EcmpStatus>(v).ok());
            if let Some(line) = ecmp.as_ref().and_then(table::ecmp_summary) {
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
        Command::Director { action: None } => {
            let ecmp: EcmpStatus = serde_json::from_value(data).map_err(decode)?;
            print!("{}", table::director(&ecmp));
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
        Command::Director { action: None } => Request::Director,
        Command::Director {
            action: Some(action),
        } => Request::DirectorDrain {
            drain: matches!(action, DirectorCommand::Drain),
        },
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
