//! `lb-demo` (run it with `cargo xtask demo`): two directors running `lbd`
//! with `config/demo.toml` (VRRP master and backup, syncing their
//! connection tables) in a lab of network namespaces, real HTTP load from a
//! client, and runtime changes made with `lbctl` while the load runs.
//! Ctrl-C (or the end of the last phase) tears everything down.
//!
//! Phases (each `--phase-seconds`, default 6):
//! 1. the config as written: `wlc` over three nginx reals;
//! 2. `lbctl real add`: the spare real joins (no reload, nothing broken);
//! 3. `lbctl real drain`: real-0 gets no new connections, its flows finish;
//! 4. the master's `lbd` is killed with SIGKILL: the backup takes over in a
//!    third of a second; restarted, the first takes the table and the VIP
//!    back;
//! 5. the master's `lbd` stops (SIGTERM): priority 0, the backup takes over
//!    at once.
//!
//! `--ecmp` runs the other demo instead: several active directors behind
//! an ECMP router ([`ecmp`]).

mod ecmp;

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, bin_dir},
    requests::{Clients, Outcome, Record, summarize},
    wrk::Wrk,
};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

const DEMO_CONFIG: &str = include_str!("../../../../config/demo.toml");
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
    if std::env::args().any(|a| a == "--ecmp") {
        return ecmp::run(phase_seconds);
    }

    println!("Building the lab: 1 client, 2 directors, 3 reals + 1 spare (nginx), one bridge ...");
    let mut lab = Lab::builder().clients(1).directors(2).reals(4).build()?;
    let (config0, config1) = (director_config(&lab, 0), director_config(&lab, 1));
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &config0)?;
    lbd.wait_vrrp("master", Duration::from_secs(5))?;
    let backup = LabDaemon::start_with_config(&mut lab, 1, &config1)?;
    backup.wait_vrrp("backup", Duration::from_secs(5))?;
    let reals: Vec<String> = (0..4)
        .map(|i| format!("{}:80", lab.real_addr_v4(i)))
        .collect();
    println!(
        "lbd runs in namespaces {} (VRRP master) and {} (backup) with config/demo.toml: \
         VIP {VIP_V4}:80, wlc over {}, {}, {}",
        lbd.namespace(),
        backup.namespace(),
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
    let phases: [(&str, Vec<&str>, Event); 5] = [
        ("the config as written", vec![], Event::None),
        (
            "spare added (on both directors)",
            vec!["real", "add", SERVICE, &spare],
            Event::None,
        ),
        (
            "real-0 drained (on both directors)",
            vec!["real", "drain", SERVICE, &reals[0]],
            Event::None,
        ),
        (
            "the master's lbd killed (SIGKILL), then restarted",
            vec![],
            Event::Kill,
        ),
        ("the master's lbd stopped (SIGTERM)", vec![], Event::Stop),
    ];
    let mut directors = [lbd, backup];
    for (n, (title, lbctl, event)) in phases.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        println!("\n== phase {}: {title} ==", n + 1);
        if !lbctl.is_empty() {
            for d in &directors {
                println!("$ lbctl {}    # on {}", lbctl.join(" "), d.namespace());
                print!("{}", d.lbctl_ok(lbctl)?);
            }
        }
        run_phase(&mut lab, &mut directors, &reals, phase_seconds, *event)?;
    }
    let [mut lbd, backup] = directors;
    println!("\n$ lbctl vrrp    # on {}", backup.namespace());
    print!("{}", backup.lbctl_ok(&["vrrp"])?);
    let lbd_running = lbd.pid().is_some();
    // The rest from the director serving now.
    let serving = if lbd_running { &lbd } else { &backup };
    show(&lab, serving)?;
    println!("\nTearing the lab down (lbd stop, lbd teardown, namespaces).");
    if lbd_running {
        lbd.stop()?;
    }
    drop(lbd);
    drop(backup);
    drop(lab);
    Ok(())
}

/// The serving director's status, metrics, health, flows and a trace.
fn show(lab: &Lab, serving: &LabDaemon) -> Result<()> {
    println!("\n$ lbctl status    # on {}", serving.namespace());
    print!("{}", serving.lbctl_ok(&["status"])?);
    println!("\n$ curl -s http://127.0.0.1:9140/metrics | grep ^lb_real_connections_total");
    let page = lb_lab::http_get(
        serving.namespace(),
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
    print!("{}", serving.lbctl_ok(&["health"])?);
    println!("\n$ lbctl flows --limit 5");
    print!("{}", serving.lbctl_ok(&["flows", "--limit", "5"])?);
    let client = format!("{}:40000", lab.client_addr_v4(0));
    println!("\n$ lbctl trace tcp {client} {SERVICE}");
    print!("{}", serving.lbctl_ok(&["trace", "tcp", &client, SERVICE])?);
    Ok(())
}

/// What happens to the master's lbd two seconds into a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Event {
    None,
    /// SIGKILL, and a restart two seconds later.
    Kill,
    /// SIGTERM.
    Stop,
}

/// Load for one phase, printing new connections per real every second
/// (both directors' counts) and who is VRRP master.
fn run_phase(
    lab: &mut Lab,
    directors: &mut [LabDaemon; 2],
    reals: &[String],
    phase_seconds: u64,
    event: Event,
) -> Result<()> {
    let url = format!("http://{VIP_V4}/");
    let wrk = Wrk::start(lab, 0, &url, Duration::from_secs(phase_seconds), 16, true)?;
    // What a client sees: every request recorded (a new connection each,
    // 3 s timeout), counted as answered per second beside the directors'
    // counters (a director whose lbd is down cannot be asked).
    let vip = std::net::SocketAddr::from((VIP_V4, 80));
    let clients = Clients::closed_loop(lab.client_ns(0), vip, 4, Duration::from_secs(3))?;
    println!(
        "  {:<6}{}  {:>14}  master",
        "time",
        row(reals.iter().map(ToString::to_string)),
        "client saw"
    );
    let mut last = connections(directors, reals);
    let start = Instant::now();
    let mut killed_at = None;
    while start.elapsed() < Duration::from_secs(phase_seconds)
        && !INTERRUPTED.load(Ordering::SeqCst)
    {
        std::thread::sleep(Duration::from_secs(1));
        let second = start.elapsed().as_secs();
        match event {
            Event::Kill if second == 2 => {
                directors[0].kill()?;
                killed_at = Some(Instant::now());
                println!("  lbd on director 0 killed: its VRRP advertisements stop ...");
                let took = directors[1].wait_vrrp("master", Duration::from_secs(3))?;
                println!(
                    "  director 1 is master after {} ms: it holds the VIP, has every flow",
                    took.as_millis()
                );
            }
            Event::Kill if second == 4 && killed_at.is_some() => {
                directors[0].spawn()?;
                let took = directors[0].wait_vrrp("master", Duration::from_secs(10))?;
                println!(
                    "  lbd on director 0 restarted: got director 1's table, master again after {} ms",
                    took.as_millis()
                );
            }
            Event::Stop if second == 2 => {
                directors[0].stop()?;
                let took = directors[1].wait_vrrp("master", Duration::from_secs(3))?;
                println!(
                    "  lbd on director 0 stopped (priority 0 sent): director 1 master after {} ms",
                    took.as_millis()
                );
            }
            _ => {}
        }
        let now = connections(directors, reals);
        let rates = per_second(&now, &last, reals.len());
        let answered = answered_in_last_second(&clients.records());
        println!(
            "  {:>4}s {}  {:>14}  {}",
            second,
            row(rates),
            format!("{answered} ok/s"),
            master(directors)
        );
        last = now;
    }
    let started = clients.started();
    let seen = summarize(&clients.finish(), started, Instant::now());
    println!("  clients (4, a new connection per request): {seen}");
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

/// Requests answered in the last second.
fn answered_in_last_second(records: &[Record]) -> usize {
    let since = Instant::now().checked_sub(Duration::from_secs(1));
    records
        .iter()
        .filter(|r| r.outcome == Outcome::Answered && since.is_none_or(|t| r.end >= t))
        .count()
}

/// "director 0", "director 1", or what the running ones say.
fn master(directors: &[LabDaemon; 2]) -> String {
    let masters: Vec<String> = directors
        .iter()
        .enumerate()
        .filter(|(_, d)| d.pid().is_some() && d.vrrp().is_ok_and(|v| v.state == "master"))
        .map(|(i, _)| format!("director {i}"))
        .collect();
    if masters.is_empty() {
        "none".into()
    } else {
        masters.join(" + ")
    }
}

/// Right-aligned columns.
fn row(cells: impl Iterator<Item = String>) -> String {
    cells.fold(String::new(), |mut out, cell| {
        let _ = write!(out, "{cell:>16}");
        out
    })
}

/// New connections per real so far, per director (`None` for a director
/// whose lbd is not running; 0 for reals not in the service).
fn connections(directors: &[LabDaemon; 2], reals: &[String]) -> Vec<Option<Vec<u64>>> {
    directors
        .iter()
        .map(|d| {
            d.pid().is_some().then(|| {
                reals
                    .iter()
                    .map(|r| d.real_connections(SERVICE, r).unwrap_or(0))
                    .collect()
            })
        })
        .collect()
}

/// "+N/s" per real: the growth of each director's counters over the last
/// second, summed over the directors that answered both times.
fn per_second(
    now: &[Option<Vec<u64>>],
    last: &[Option<Vec<u64>>],
    reals: usize,
) -> impl Iterator<Item = String> {
    let mut sums = vec![0u64; reals];
    for (now, last) in now.iter().zip(last) {
        if let (Some(now), Some(last)) = (now, last) {
            for (sum, (a, b)) in sums.iter_mut().zip(now.iter().zip(last)) {
                *sum += a.saturating_sub(*b);
            }
        }
    }
    sums.into_iter().map(|n| format!("+{n}/s"))
}

/// A shipped demo config with director `i`'s socket and pin directory of
/// this lab instead of the shipped ones.
fn with_lab_paths(config: &str, lab: &Lab, i: usize) -> String {
    config
        .replace(
            "/run/lbd-demo/lbd.sock",
            &lab.dir().join(format!("lbd{i}.sock")).display().to_string(),
        )
        .replace(
            "/sys/fs/bpf/lbd-demo",
            &format!("/sys/fs/bpf/{}demo{i}", lab.prefix()),
        )
}

/// `config/demo.toml` for director `i`: this lab's own socket and pin
/// directory (two demos, or a demo that was killed, never share them);
/// director 1 has the lower priority and director 0 as its sync peer.
fn director_config(lab: &Lab, i: usize) -> String {
    let config = with_lab_paths(DEMO_CONFIG, lab, i);
    if i == 0 {
        config
    } else {
        config.replace("priority = 150", "priority = 100").replace(
            &format!("peer = \"{}\"", lab.director_addr_v4(1)),
            &format!("peer = \"{}\"", lab.director_addr_v4(0)),
        )
    }
}
