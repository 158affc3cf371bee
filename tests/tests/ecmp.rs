//! Several active directors behind an ECMP router (`[ecmp]`), as the
//! clients see it. A router namespace runs BIRD (config/bird/router.conf)
//! with the L4 multipath hash; each director runs `lbd` with `[ecmp]` and
//! BIRD (config/bird/director.conf), BGP + BFD to the router; the reals
//! answer the clients directly through the router.
//!
//! Under continuous load (a new connection per request, 8 workers, each
//! request with a 3 s timeout, every request recorded): a fourth director
//! joins; one is drained (`lbctl director drain`) and then stopped, started
//! again (it stays drained), undrained, drained and stopped again; one is
//! killed (its BIRD and lbd gone; its data path, pinned, stays); the link
//! of another is cut. Join and drain must leave no failed and no hung
//! request; a kill and a cut are measured: the time until the router's
//! route no longer goes through the director (the closed BGP session, or
//! BFD for the cut), and the failed or hung requests (those in flight to
//! it meanwhile).
//!
//! Run with `wlc` (directors share flows through `[ecmp.sync]`) and with
//! `maglev` and no sharing at all: every director picks the same real for
//! a flow without state. Six rate-limited downloads run across the join
//! and the drain and must finish intact (without sharing, `wlc` broke one).
//! `LB_ECMP_CAPTURE=FILE` captures the router's frames (tcpdump): both
//! directions of every connection, to follow a failed one by its port.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use lb_lab::{
    Lab, VIP_V4,
    bird::{Bird, next_hops, wait_next_hops},
    daemon::{LabDaemon, LabService},
    goal::assert_within,
    requests::{Clients, Record, Summary, summarize},
    wait_for,
    wrk::Download,
};

const PATIENCE: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const WORKERS: usize = 8;
/// How long the clients run on after an event has settled.
const AFTER: Duration = Duration::from_millis(1500);
/// Directors 0..3 start; director 3 joins later.
const FIRST: usize = 3;
const REALS: usize = 3;
/// Long-lived connections across the join and the drain: downloads of
/// [`DOWNLOAD_SIZE`] at [`DOWNLOAD_RATE`] (about 8 s each).
const DOWNLOADS: usize = 6;
const DOWNLOAD_SIZE: u64 = 16 << 20;
const DOWNLOAD_RATE: &str = "2M";

fn lab() -> Lab {
    Lab::builder()
        .clients(1)
        .directors(FIRST + 1)
        .reals(REALS)
        .big_file_size(DOWNLOAD_SIZE)
        .client_behind_router(1500)
        .build()
        .expect("build the lab")
}

fn vip() -> IpAddr {
    IpAddr::V4(VIP_V4)
}

/// The lab's directors: each an lbd with `[ecmp]` and a BIRD.
struct Site {
    scheduler: &'static str,
    share: bool,
    daemons: Vec<Option<LabDaemon>>,
    birds: Vec<Option<Bird>>,
}

impl Site {
    fn new(scheduler: &'static str, share: bool) -> Self {
        Self {
            scheduler,
            share,
            daemons: (0..=FIRST).map(|_| None).collect(),
            birds: (0..=FIRST).map(|_| None).collect(),
        }
    }

    fn config(&self, lab: &Lab, i: usize, extra: &str) -> String {
        let reals: Vec<(usize, u32)> = (0..REALS).map(|r| (r, 1)).collect();
        let service = LabService::v4(self.scheduler, &reals);
        let peers: Vec<usize> = if self.share {
            (0..=FIRST).filter(|&p| p != i).collect()
        } else {
            Vec::new()
        };
        LabDaemon::config_text(lab, i, std::slice::from_ref(&service))
            + extra
            + &LabDaemon::ecmp_text(lab, i, &peers, "2s")
    }

    /// Starts director `i`: lbd first (it announces once ready), then BIRD.
    fn start(&mut self, lab: &mut Lab, i: usize, extra: &str) {
        let text = self.config(lab, i, extra);
        let daemon = LabDaemon::start_with_config(lab, i, &text).expect("start lbd");
        let bird = Bird::director(lab, i).expect("start BIRD");
        self.daemons[i] = Some(daemon);
        self.birds[i] = Some(bird);
    }

    fn daemon(&self, i: usize) -> &LabDaemon {
        self.daemons[i].as_ref().expect("director running")
    }

    fn logs(&self) -> String {
        self.daemons
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.as_ref().map(|d| format!("--- lbd {i}:\n{}", d.log())))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn addrs(lab: &Lab, directors: &[usize]) -> Vec<Ipv4Addr> {
    directors.iter().map(|&i| lab.director_addr_v4(i)).collect()
}

/// Every event's requests: none failed or hung at a join or drain (see
/// `allowed`), kills and cuts measured only.
fn check_events(
    scheduler: &str,
    share: bool,
    events: &[(String, Instant)],
    records: &[Record],
    end: Instant,
    site: &Site,
) {
    let mut problems = Vec::new();
    for (i, (what, at)) in events.iter().enumerate() {
        let until = events.get(i + 1).map_or(end, |(_, next)| *next);
        let seen: Summary = summarize(records, *at, until);
        println!("{scheduler}: {what}: {seen}");
        let measured_only = what.contains("killed") || what.contains("cut");
        // With shared flows, a connection the router moves between its SYN
        // and the report's arrival at the other director (a few ms) could
        // still be scheduled there afresh: not seen in 16 joins and drains
        // since reports replace closed copies of a reused client port (one
        // failure in four runs before), but not ruled out (README, "Scaling
        // out"). Maglev needs no report.
        let allowed = usize::from(share);
        if !measured_only && (seen.requests == 0 || seen.failed + seen.hung > allowed) {
            problems.push(format!("{what}: {seen}"));
        }
    }
    assert!(
        problems.is_empty(),
        "requests failed or hung:\n{}\n{}",
        problems.join("\n"),
        site.logs()
    );
}

/// Each download must have finished with every byte.
fn finish_downloads(scheduler: &str, downloads: Vec<Download>, site: &Site) {
    let mut broken = Vec::new();
    for (i, download) in downloads.into_iter().enumerate() {
        match download.finish() {
            Ok(bytes) if bytes == DOWNLOAD_SIZE => {}
            Ok(bytes) => broken.push(format!("download {i}: {bytes} of {DOWNLOAD_SIZE} bytes")),
            Err(e) => broken.push(format!("download {i}: {e:#}")),
        }
    }
    println!(
        "{scheduler}: {} of {DOWNLOADS} downloads across the join and the drain intact",
        DOWNLOADS - broken.len()
    );
    assert!(
        broken.is_empty(),
        "established connections broke:\n{}\n{}",
        broken.join("\n"),
        site.logs()
    );
}

/// Waits for the router's route to go through `directors`, then lets the
/// clients run on for [`AFTER`]; returns the wait.
fn settle(lab: &Lab, site: &Site, directors: &[usize]) -> Duration {
    let took = wait_next_hops(lab.router_ns(), vip(), &addrs(lab, directors), PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", site.logs()));
    std::thread::sleep(AFTER);
    took
}

/// `lbctl director ACTION` on director 1 (an event), then [`settle`] on the
/// route through `directors`.
fn director_1(
    lab: &Lab,
    site: &Site,
    events: &mut Vec<(String, Instant)>,
    action: &str,
    directors: &[usize],
) -> Duration {
    let n = events
        .iter()
        .filter(|(what, _)| what.contains(action))
        .count();
    let again = if n > 0 { " again" } else { "" };
    events.push((format!("director 1 {action}ed{again}"), Instant::now()));
    site.daemon(1)
        .lbctl_ok(&["director", action])
        .unwrap_or_else(|e| panic!("{e:#}\n{}", site.logs()));
    settle(lab, site, directors)
}

/// Director 1, drained and stopped, is started again. Maintenance is not
/// over because lbd restarted: the drain is kept in the pinned maps and the
/// director stays out of the route, learning done or not, until `lbctl
/// director undrain`; then it is drained and stopped again.
fn restart_drained_then_undrain(
    lab: &mut Lab,
    site: &mut Site,
    events: &mut Vec<(String, Instant)>,
) {
    events.push(("drained director 1 restarted".into(), Instant::now()));
    // The same lbd restarted on its pins (a new `LabDaemon` would tear the
    // old one's pins down).
    site.daemons[1]
        .as_mut()
        .unwrap()
        .spawn()
        .expect("restart lbd");
    site.birds[1] = Some(Bird::director(lab, 1).expect("start BIRD"));
    let status = wait_for(PATIENCE, "restarted director 1 done learning", || {
        let status = site.daemon(1).lbctl_json(&["director"])?;
        if status["learned"] == true {
            Ok(status)
        } else {
            Err(anyhow::anyhow!("still learning: {status}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", site.logs()));
    let vip_state = &status["vips"][0];
    assert!(
        status["drained"] == true
            && vip_state["announced"] == false
            && vip_state["state"]
                .as_str()
                .is_some_and(|s| s.contains("drained")),
        "a restarted drained director must stay drained: {status}\n{}",
        site.logs()
    );
    let hops = next_hops(lab.router_ns(), vip()).unwrap();
    assert!(
        !hops.contains(&IpAddr::V4(lab.director_addr_v4(1))),
        "the router routes through the restarted drained director: {hops:?}"
    );
    std::thread::sleep(AFTER);
    let took = director_1(lab, site, events, "undrain", &[0, 1, 2, 3]);
    println!(
        "undrain: back in the router's route after {} ms",
        took.as_millis()
    );
    director_1(lab, site, events, "drain", &[0, 2, 3]);
    events.push(("drained director 1 stopped again".into(), Instant::now()));
    site.daemons[1].as_mut().unwrap().stop().unwrap();
    site.birds[1] = None;
    std::thread::sleep(AFTER);
}

fn scale_out(scheduler: &'static str, share: bool) {
    let mut lab = lab();
    let mut router = Bird::router(&mut lab).expect("start the router's BIRD");
    // `LB_ECMP_CAPTURE=FILE`: every frame through the router (the client's
    // and the reals' sides), to follow a failed request by its client port
    // (held until the lab stops it).
    let _capture = std::env::var_os("LB_ECMP_CAPTURE").map(|file| {
        let router = lab.router_ns().to_owned();
        let file = file.to_string_lossy().into_owned();
        let args = [
            "tcpdump", "-i", "any", "-s", "96", "-B", "65536", "-U", "-w", &file,
        ];
        lab.spawn_in(&router, &args).expect("start tcpdump")
    });
    let mut site = Site::new(scheduler, share);
    for i in 0..FIRST {
        site.start(&mut lab, i, "");
    }
    let first: Vec<usize> = (0..FIRST).collect();
    let took = settle(&lab, &site, &first);
    println!(
        "{scheduler}: the router routes the VIP through {FIRST} directors {} ms after the \
         last one started",
        took.as_millis()
    );

    let clients = Clients::closed_loop(
        lab.client_ns(0),
        SocketAddr::new(vip(), 80),
        WORKERS,
        REQUEST_TIMEOUT,
    )
    .unwrap();
    clients
        .wait_answer_after(Instant::now(), PATIENCE)
        .expect("served before the first event");
    std::thread::sleep(AFTER);

    // Established connections the router moves at the join and the drain
    // (about half of them each time): each must finish intact.
    let big = lb_lab::url(vip(), lb_lab::BIG_PATH);
    let downloads: Vec<Download> = (0..DOWNLOADS)
        .map(|_| Download::start(&mut lab, 0, &big, DOWNLOAD_RATE).expect("start curl"))
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let mut events: Vec<(String, Instant)> = Vec::new();
    events.push(("a fourth director joins".into(), Instant::now()));
    site.start(&mut lab, FIRST, "");
    let took = settle(&lab, &site, &[0, 1, 2, 3]);
    println!(
        "join: in the router's route {} ms after lbd answered",
        took.as_millis()
    );

    let took = director_1(&lab, &site, &mut events, "drain", &[0, 2, 3]);
    println!(
        "drain: out of the router's route after {} ms",
        took.as_millis()
    );
    // Drained, not stopped: it still forwards what arrives (nothing now).
    events.push(("drained director 1 stopped".into(), Instant::now()));
    site.daemons[1].as_mut().unwrap().stop().unwrap();
    site.birds[1] = None;
    std::thread::sleep(AFTER);
    finish_downloads(scheduler, downloads, &site);

    restart_drained_then_undrain(&mut lab, &mut site, &mut events);

    events.push(("director 2 killed (BIRD and lbd)".into(), Instant::now()));
    let killed = Instant::now();
    site.birds[2].as_mut().unwrap().kill();
    site.daemons[2].as_mut().unwrap().kill().unwrap();
    let detection = wait_next_hops(lab.router_ns(), vip(), &addrs(&lab, &[0, 3]), PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", site.logs()));
    println!(
        "kill: out of the router's route {} ms after the kill",
        killed.elapsed().as_millis()
    );
    std::thread::sleep(AFTER);

    events.push(("director 3's link cut".into(), Instant::now()));
    let cut = Instant::now();
    lb_lab::exec_ok(lab.director_ns(3), &["ip", "link", "set", "eth0", "down"]).unwrap();
    let bfd = wait_next_hops(lab.router_ns(), vip(), &addrs(&lab, &[0]), PATIENCE)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", site.logs()));
    println!(
        "link cut: out of the router's route {} ms after the cut",
        cut.elapsed().as_millis()
    );
    std::thread::sleep(AFTER);
    let end = Instant::now();
    let records: Vec<Record> = clients.finish();

    check_events(scheduler, share, &events, &records, end, &site);
    // The goal is 1 s; asserted with the margin a loaded 2-core machine
    // needs (the figure is printed above).
    assert_within(
        "a killed director out of the router's route",
        detection,
        Duration::from_secs(3),
        "",
    );
    assert_within(
        "a cut director out of the router's route (BFD)",
        bfd,
        Duration::from_secs(3),
        "",
    );
    router.kill();
}

#[test]
fn wlc_with_shared_flows_survives_join_drain_and_kill() {
    scale_out("wlc", true);
}

#[test]
fn maglev_without_sharing_survives_join_drain_and_kill() {
    scale_out("maglev", false);
}

/// A VIP whose reals all fail this director's checks is withdrawn from
/// this director only, and comes back when `min_healthy` is met again.
#[test]
fn a_vip_without_healthy_reals_is_withdrawn_from_that_director_only() {
    let mut lab = lab();
    let _router = Bird::router(&mut lab).expect("start the router's BIRD");
    let mut site = Site::new("wlc", false);
    // Director 0 checks a port nothing listens on: to it, every real is
    // down; director 1 checks port 80.
    let blind =
        "\n[service.check]\nport = 8081\ninterval = \"200ms\"\ntimeout = \"100ms\"\nfall = 2\n";
    let text0 = site.config(&lab, 0, "");
    let text0 = insert_check(&text0, blind);
    let d0 = LabDaemon::start_with_config(&mut lab, 0, &text0).expect("start lbd 0");
    let _b0 = Bird::director(&mut lab, 0).expect("BIRD 0");
    site.start(&mut lab, 1, "");
    settle(&lab, &site, &[1]);
    let status = d0.director_status().unwrap();
    let state = &status.vips[0];
    assert!(!state.announced, "{status:?}");
    assert!(state.state.contains("0 healthy reals"), "{status:?}");
    assert_eq!(next_hops(lab.router_ns(), vip()).unwrap().len(), 1);

    // The check fixed by a reload: director 0 announces again.
    let fixed = insert_check(&site.config(&lab, 0, ""), &blind.replace("8081", "80"));
    std::fs::write(d0.config_path(), fixed).unwrap();
    d0.hangup().unwrap();
    let took = settle(&lab, &site, &[0, 1]);
    println!(
        "min_healthy met again: back in the router's route after {} ms",
        took.as_millis()
    );
    assert!(d0.director_status().unwrap().vips[0].announced);
}

/// `config` with `check` right after the service's own keys (before its
/// first real).
fn insert_check(config: &str, check: &str) -> String {
    let at = config
        .find("\n[[service.real]]")
        .expect("the service has reals");
    format!("{}{check}{}", &config[..at], &config[at..])
}
