//! `lb-demo` (run it with `cargo xtask demo`): `lbd` with `config/demo.toml`
//! in a lab of network namespaces, real HTTP load from a client, and runtime
//! changes made with `lbctl` while the load runs. Ctrl-C (or the end of the
//! last phase) tears everything down.
//!
//! Phases (each `--phase-seconds`, default 6):
//! 1. the config as written: `wlc` over three nginx reals;
//! 2. `lbctl real add`: the spare real joins (no reload, nothing broken);
//! 3. `lbctl real drain`: real-0 gets no new connections, its flows finish;
//! 4. `lbd` is killed with SIGKILL and restarted: forwarding never stops.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, bin_dir},
    wrk::Wrk,
};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");
const SERVICE: &str = "10.99.0.200:80/tcp";

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
    // This lab's own socket and pin directory, so two demos (or a demo that
    // was killed) never share them.
    let config = DEMO_CONFIG
        .replace(
            "/run/lbd-demo/lbd.sock",
            &lab.dir().join("lbd.sock").display().to_string(),
        )
        .replace(
            "/sys/fs/bpf/lbd-demo",
            &format!("/sys/fs/bpf/{}demo", lab.prefix()),
        );
    let mut lbd = LabDaemon::start_with_config(&mut lab, 0, &config)?;
    let reals: Vec<String> = (0..4)
        .map(|i| format!("{}:80", lab.real_addr_v4(i)))
        .collect();
    println!(
        "lbd runs in namespace {} with config/demo.toml: VIP {VIP_V4}:80, wlc over {}, {}, {}",
        lbd.namespace(),
        reals[0],
        reals[1],
        reals[2]
    );
    println!(
        "Poke it while it runs (another terminal):\n  nsenter --net=/var/run/netns/{} {}/lbctl --socket {} status",
        lbd.namespace(),
        bin_dir()?.display(),
        lbd.socket().display()
    );
    let spare = lab.real_addr_v4(3).to_string();
    let phases: [(&str, Vec<&str>); 4] = [
        ("the config as written", vec![]),
        ("spare added", vec!["real", "add", SERVICE, &spare]),
        ("real-0 drained", vec!["real", "drain", SERVICE, &reals[0]]),
        ("lbd killed (SIGKILL) and restarted", vec![]),
    ];
    for (n, (title, lbctl)) in phases.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        println!("\n== phase {}: {title} ==", n + 1);
        if !lbctl.is_empty() {
            println!("$ lbctl {}", lbctl.join(" "));
            print!("{}", lbd.lbctl_ok(lbctl)?);
        }
        run_phase(&mut lab, &mut lbd, &reals, phase_seconds, n == 3)?;
    }
    println!("\n$ lbctl status");
    print!("{}", lbd.lbctl_ok(&["status"])?);
    println!("\n$ curl -s http://127.0.0.1:9140/metrics | grep ^lb_real_connections_total");
    let page = lb_lab::http_get(
        lbd.namespace(),
        "127.0.0.1:9140".parse()?,
        "/metrics",
        Duration::from_secs(5),
    )?;
    for line in page
        .text()
        .lines()
        .filter(|l| l.starts_with("lb_real_connections_total"))
    {
        println!("{line}");
    }
    println!("\n$ lbctl health");
    print!("{}", lbd.lbctl_ok(&["health"])?);
    println!("\n$ lbctl flows --limit 5");
    print!("{}", lbd.lbctl_ok(&["flows", "--limit", "5"])?);
    let client = format!("{}:40000", lab.client_addr_v4(0));
    println!("\n$ lbctl trace tcp {client} {SERVICE}");
    print!("{}", lbd.lbctl_ok(&["trace", "tcp", &client, SERVICE])?);
    println!("\nTearing the lab down (lbd stop, lbd teardown, namespaces).");
    lbd.stop()?;
    drop(lbd);
    drop(lab);
    Ok(())
}

/// Load for one phase, printing new connections per real every second;
/// `restart` kills and restarts lbd two seconds in.
fn run_phase(
    lab: &mut Lab,
    lbd: &mut LabDaemon,
    reals: &[String],
    phase_seconds: u64,
    restart: bool,
) -> Result<()> {
    let url = format!("http://{VIP_V4}/");
    let wrk = Wrk::start(lab, 0, &url, Duration::from_secs(phase_seconds), 16, true)?;
    println!(
        "  {:<6}{}",
        "time",
        row(reals.iter().map(ToString::to_string))
    );
    let mut last = connections(lbd, reals);
    let start = Instant::now();
    let mut restarted = !restart;
    while start.elapsed() < Duration::from_secs(phase_seconds)
        && !INTERRUPTED.load(Ordering::SeqCst)
    {
        std::thread::sleep(Duration::from_secs(1));
        if !restarted && start.elapsed() >= Duration::from_secs(2) {
            lbd.kill()?;
            println!("  lbd killed; the pinned program keeps forwarding ...");
            std::thread::sleep(Duration::from_millis(500));
            lbd.spawn()?;
            println!("  lbd restarted: it adopted the pinned maps, every flow kept its real");
            restarted = true;
            continue;
        }
        let now = connections(lbd, reals);
        let rates = now
            .iter()
            .zip(&last)
            .map(|(a, b)| format!("+{}/s", a.saturating_sub(*b)));
        println!("  {:>4}s {}", start.elapsed().as_secs(), row(rates));
        last = now;
    }
    let report = wrk.finish()?;
    if report.clean() {
        println!("  wrk: {} requests, no failed request", report.requests);
    } else {
        println!(
            "  wrk: {} requests, FAILURES:\n{}",
            report.requests, report.text
        );
    }
    Ok(())
}

/// Right-aligned columns.
fn row(cells: impl Iterator<Item = String>) -> String {
    cells.fold(String::new(), |mut out, cell| {
        let _ = write!(out, "{cell:>16}");
        out
    })
}

/// New connections per real so far (0 for reals not in the service).
fn connections(lbd: &LabDaemon, reals: &[String]) -> Vec<u64> {
    reals
        .iter()
        .map(|r| lbd.real_connections(SERVICE, r).unwrap_or(0))
        .collect()
}
