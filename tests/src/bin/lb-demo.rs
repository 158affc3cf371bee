//! `lb-demo` (run it with `cargo xtask demo`): the balancer in a lab of
//! network namespaces with real HTTP load, changed at runtime while the load
//! runs. Ctrl-C (or the end of the last phase) tears everything down.
//!
//! Phases (each `--phase-seconds`, default 6):
//! 1. `wlc` over three reals;
//! 2. the spare real is added (no reload, no broken connection);
//! 3. real-0 is drained (weight 0: no new connections, existing ones finish).

use std::{
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context, Result, bail};
use lb_daemon::{
    balancer::model::{Scheduler, ServiceSpec},
    dataplane::xdp_object,
};
use lb_lab::{
    Lab, NET_V4_PREFIX_LEN, VIP_V4, command_in,
    director::{LabDirector, http_service},
};

/// A runtime change made at the start of a phase.
type Change = Box<dyn Fn(&mut ServiceSpec)>;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn main() -> Result<()> {
    let phase_seconds: u64 = match std::env::args()
        .skip_while(|a| a != "--phase-seconds")
        .nth(1)
    {
        Some(s) => s.parse().context("--phase-seconds takes a number")?,
        None => 6,
    };
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };

    println!("Building the lab: 1 client, 1 director, 3 reals + 1 spare (nginx), one bridge ...");
    let mut lab = Lab::builder().clients(1).directors(1).reals(4).build()?;
    let object = xdp_object()?;
    let mut director = LabDirector::start(&mut lab, 0, object)?;
    println!(
        "Lab {}: VIP {VIP_V4} on director {} ({}/{NET_V4_PREFIX_LEN}); reals {}",
        lab.prefix(),
        lab.director_ns(0),
        lab.director_addr_v4(0),
        (0..4)
            .map(|i| format!("{}={}", lab.real_name(i), lab.real_addr_v4(i)))
            .collect::<Vec<_>>()
            .join(" "),
    );

    let mut spec = http_service(
        &lab,
        false,
        Scheduler::WeightedLeastConnection,
        &[(0, 1), (1, 1), (2, 1)],
    );
    director.lb.apply(&spec)?;
    let spare = http_service(&lab, false, Scheduler::WeightedLeastConnection, &[(3, 1)]).reals;
    let phases: [(&str, Change); 3] = [
        ("wlc over real-0, real-1, real-2", Box::new(|_| {})),
        (
            "spare real-3 added at runtime",
            Box::new(move |s| s.reals.extend(spare.clone())),
        ),
        (
            "real-0 drained (weight 0)",
            Box::new(|s| s.reals[0].weight = 0),
        ),
    ];
    let names: Vec<String> = (0..4)
        .map(|i| format!("{}:80", lab.real_addr_v4(i)))
        .collect();
    for (n, (title, change)) in phases.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        change(&mut spec);
        director.lb.apply(&spec)?;
        println!("\n== phase {}: {title} ==", n + 1);
        let before = new_flows(&director, &spec, &names);
        let summary = run_load(&lab, phase_seconds)?;
        let after = new_flows(&director, &spec, &names);
        println!("{summary}");
        println!("  {:<18} {:>12}", "real", "new conns");
        for (name, (b, a)) in names.iter().zip(before.iter().zip(&after)) {
            println!("  {name:<18} {:>12}", a - b);
        }
    }
    println!("\nData-path counters (packets by action/reason):");
    for (reason, count) in director.lb.dataplane().reason_counts()? {
        if count > 0 {
            println!(
                "  {:<5} {:<22} {count}",
                reason.action().name(),
                reason.name()
            );
        }
    }
    println!("\nTearing the lab down.");
    drop(director);
    drop(lab);
    Ok(())
}

/// New connections per real so far (0 for reals not in the service).
fn new_flows(director: &LabDirector, spec: &ServiceSpec, names: &[String]) -> Vec<u64> {
    names
        .iter()
        .map(|name| {
            director
                .lb
                .real_id(&spec.addr, name)
                .and_then(|slot| director.lb.dataplane().real_stats(slot).ok())
                .map_or(0, |s| s.new_flows)
        })
        .collect()
}

/// wrk from the client namespace, one new connection per request, so every
/// request is scheduled. Returns wrk's summary lines.
fn run_load(lab: &Lab, seconds: u64) -> Result<String> {
    let url = format!("http://{VIP_V4}/");
    let duration = format!("{seconds}s");
    let output = command_in(
        lab.client_ns(0),
        &[
            "wrk",
            "-t2",
            "-c16",
            "-d",
            &duration,
            "--timeout",
            "2s",
            "-H",
            "Connection: close",
            &url,
        ],
    )
    .stdin(Stdio::null())
    .output()
    .context("running wrk")?;
    if !output.status.success() && !INTERRUPTED.load(Ordering::SeqCst) {
        bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("requests in")
                || l.contains("Requests/sec")
                || l.contains("Socket errors")
                || l.contains("Non-2xx")
        })
        .collect();
    let failed = if text.contains("Socket errors") || text.contains("Non-2xx") {
        ""
    } else {
        "\n  no failed requests"
    };
    Ok(format!("  {}{failed}", summary.join("\n  ")))
}
