//! `lb-demo --ecmp` (`cargo xtask demo --ecmp`): several active directors
//! behind a router. The router runs BIRD with `config/bird/router.conf`
//! and spreads the client's connections over the directors by ECMP; each
//! director runs `lbd` with `config/demo-ecmp.toml` (`[ecmp]`, flows shared
//! with every peer) and BIRD with `config/bird/director.conf`.
//!
//! Phases (each `--phase-seconds`, default 6), under load:
//! 1. three directors announce the VIP and share the load;
//! 2. a fourth director joins (it learns its peers' flows, then announces);
//! 3. director 1 is drained (`lbctl director drain`), then stopped;
//! 4. director 2 is killed: its lbd and BIRD (the router notices at once).
//!
//! Every second: new connections per director, what the client saw, and
//! the router's next hops for the VIP.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::Result;
use lb_lab::{
    Lab, VIP_V4,
    bird::{Bird, next_hops, wait_next_hops},
    daemon::{LabDaemon, bin_dir},
    requests::{Clients, summarize},
};

use crate::{INTERRUPTED, answered_in_last_second, with_lab_paths};

const CONFIG: &str = include_str!("../../../../config/demo-ecmp.toml");
const SERVICE: &str = "10.99.0.200:80/tcp";
const DIRECTORS: usize = 4;

/// What happens two seconds into a phase.
#[derive(Clone, Copy)]
enum Event {
    None,
    Join(usize),
    Drain(usize),
    Kill(usize),
}

struct Director {
    lbd: LabDaemon,
    bird: Bird,
}

pub fn run(phase_seconds: u64) -> Result<()> {
    println!(
        "Building the lab: a client behind a router (BIRD, ECMP), {DIRECTORS} directors \
         (lbd + BIRD each), 3 reals (nginx) ..."
    );
    let mut lab = Lab::builder()
        .clients(1)
        .directors(DIRECTORS)
        .reals(3)
        .client_behind_router(1500)
        .build()?;
    let _router = Bird::router(&mut lab)?;
    let mut directors: Vec<Option<Director>> = (0..DIRECTORS).map(|_| None).collect();
    for (i, slot) in directors.iter_mut().enumerate().take(3) {
        *slot = Some(start(&mut lab, i)?);
    }
    let took = wait_next_hops(
        lab.router_ns(),
        IpAddr::V4(VIP_V4),
        &[0, 1, 2].map(|i| lab.director_addr_v4(i)),
        Duration::from_secs(30),
    )?;
    println!(
        "The router routes {VIP_V4} through directors 0, 1 and 2 ({} ms after the last \
         BIRD started).",
        took.as_millis()
    );
    let first = directors[0].as_ref().expect("director 0");
    println!(
        "Poke it while it runs (another terminal):\n  nsenter --net=/var/run/netns/{} {}/lbctl \
         --socket {} director\n  ip netns exec {} ip route show {VIP_V4}",
        first.lbd.namespace(),
        bin_dir()?.display(),
        first.lbd.socket().display(),
        lab.router_ns()
    );
    let phases = [
        ("three directors share the load", Event::None),
        ("a fourth director joins", Event::Join(3)),
        ("director 1 drained, then stopped", Event::Drain(1)),
        ("director 2 killed (lbd and BIRD)", Event::Kill(2)),
    ];
    for (n, (title, event)) in phases.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        println!("\n== phase {}: {title} ==", n + 1);
        run_phase(&mut lab, &mut directors, phase_seconds, *event)?;
    }
    if let Some(d) = directors[0].as_ref() {
        println!("\n$ lbctl director    # on {}", d.lbd.namespace());
        print!("{}", d.lbd.lbctl_ok(&["director"])?);
        println!("\n$ lbctl status    # on {}", d.lbd.namespace());
        print!("{}", d.lbd.lbctl_ok(&["status"])?);
    }
    println!("\nTearing the lab down (lbd stop, lbd teardown, BIRD, namespaces).");
    for d in directors.iter_mut().flatten() {
        if d.lbd.pid().is_some() {
            d.lbd.stop()?;
        }
    }
    drop(directors);
    drop(lab);
    Ok(())
}

/// lbd, then BIRD, on director `i`.
fn start(lab: &mut Lab, i: usize) -> Result<Director> {
    let text = director_config(lab, i);
    let lbd = LabDaemon::start_with_config(lab, i, &text)?;
    let bird = Bird::director(lab, i)?;
    Ok(Director { lbd, bird })
}

/// `config/demo-ecmp.toml` for director `i`: its own socket, pins, listen
/// address and peers (the other directors).
fn director_config(lab: &Lab, i: usize) -> String {
    let peers: Vec<String> = (0..DIRECTORS)
        .filter(|&p| p != i)
        .map(|p| format!("\"{}\"", lab.director_addr_v4(p)))
        .collect();
    with_lab_paths(CONFIG, lab, i)
        .replace(
            "listen = \"10.99.0.2\"",
            &format!("listen = \"{}\"", lab.director_addr_v4(i)),
        )
        .replace(
            "peers = [\"10.99.0.3\", \"10.99.0.4\", \"10.99.0.5\"]",
            &format!("peers = [{}]", peers.join(", ")),
        )
}

fn run_phase(
    lab: &mut Lab,
    directors: &mut [Option<Director>],
    phase_seconds: u64,
    event: Event,
) -> Result<()> {
    let vip = SocketAddr::from((VIP_V4, 80));
    let clients = Clients::closed_loop(lab.client_ns(0), vip, 8, Duration::from_secs(3))?;
    let header: String = (0..DIRECTORS).fold(String::new(), |mut out, i| {
        let _ = write!(out, "{:>12}", format!("director {i}"));
        out
    });
    println!(
        "  {:<6}{header}  {:>12}  router next hops",
        "time", "client saw"
    );
    let mut last = connections(directors);
    let mut last_at = Instant::now();
    // Starting a director takes a few seconds: the phase runs that much
    // longer, and a row covering more than a second shows rates per second.
    let mut end = Instant::now() + Duration::from_secs(phase_seconds);
    let mut second = 0;
    while Instant::now() < end && !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_secs(1));
        second += 1;
        let event_started = Instant::now();
        match event {
            Event::Join(i) if second == 2 => {
                directors[i] = Some(start_joining(lab, i)?);
            }
            Event::Drain(i) if second == 2 => {
                if let Some(d) = &directors[i] {
                    println!("  $ lbctl director drain    # on director {i}");
                    println!("  {}", d.lbd.lbctl_ok(&["director", "drain"])?.trim_end());
                }
            }
            Event::Drain(i) if second == 4 => {
                if let Some(d) = directors[i].as_mut() {
                    d.lbd.stop()?;
                    println!("  lbd on director {i} stopped (SIGTERM), its BIRD too");
                }
                directors[i] = None;
            }
            Event::Kill(i) if second == 2 => {
                if let Some(d) = directors[i].as_mut() {
                    d.bird.kill();
                    d.lbd.kill()?;
                    println!(
                        "  director {i}: BIRD and lbd killed (SIGKILL); the router drops its \
                         BGP session"
                    );
                }
            }
            _ => {}
        }
        end += event_started.elapsed();
        let now = connections(directors);
        let seconds = last_at.elapsed().as_secs_f64();
        last_at = Instant::now();
        let cells: String = now
            .iter()
            .zip(&last)
            .fold(String::new(), |mut out, (n, l)| {
                let cell = match (n, l) {
                    (Some(n), Some(l)) => {
                        format!("+{:.0}/s", n.saturating_sub(*l) as f64 / seconds)
                    }
                    _ => "-".into(),
                };
                let _ = write!(out, "{cell:>12}");
                out
            });
        let answered = answered_in_last_second(&clients.records());
        let hops = next_hops(lab.router_ns(), IpAddr::V4(VIP_V4))
            .map(|h| {
                h.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!(
            "  {:>4}s {cells}  {:>12}  {hops}",
            second,
            format!("{answered} ok/s")
        );
        last = now;
    }
    let started = clients.started();
    let seen = summarize(&clients.finish(), started, Instant::now());
    println!("  clients (8, a new connection per request): {seen}");
    Ok(())
}

/// Starts director `i` and says when the router takes it in.
fn start_joining(lab: &mut Lab, i: usize) -> Result<Director> {
    let started = Instant::now();
    let director = start(lab, i)?;
    println!(
        "  director {i}: lbd started (it asks its peers for their flows before it \
         announces), BIRD started ({} ms)",
        started.elapsed().as_millis()
    );
    Ok(director)
}

/// New connections each running director has sent to the reals so far.
fn connections(directors: &[Option<Director>]) -> Vec<Option<u64>> {
    directors
        .iter()
        .map(|d| {
            let d = d.as_ref()?;
            d.lbd.pid()?;
            let status = d.lbd.status().ok()?;
            Some(
                status
                    .services
                    .iter()
                    .filter(|s| s.service == SERVICE)
                    .map(|s| s.connections)
                    .sum(),
            )
        })
        .collect()
}
