//! Flow sharing among ECMP directors (`[ecmp]` with `[ecmp.sync]`): three
//! `lbd` directors, each told of the other two. The client sends to the
//! VIP through director 0 only (a route via its address, as the ECMP
//! router would); directors 1 and 2 must know each flow it opens and
//! closes, and a director started later receives the whole table.
//!
//! Latencies are printed; the bounds asserted are deadlines with a wide
//! margin, not measurements.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lb_daemon::admin::FlowEntry;
use lb_lab::{
    HTTP_PORT, Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    exec_ok, http_get, url,
    wrk::Download,
};

/// Deadline for anything that should take milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);
/// The download: large and slow enough to last the whole test (curl
/// first fills the socket buffers at full speed, a few MB).
const BIG: u64 = 256 << 20;
const RATE: &str = "200K";
const KEY: &str = "lab-share-key-0123456789";

fn config(lab: &Lab, me: usize, service: &LabService) -> String {
    let peers: Vec<String> = (0..3)
        .filter(|&i| i != me)
        .map(|i| format!("\"{}\"", lab.director_addr_v4(i)))
        .collect();
    LabDaemon::config_text(lab, me, std::slice::from_ref(service))
        + &format!(
            "\n[ecmp]\nlearn_delay = \"5s\"\n\n[ecmp.sync]\npeers = [{}]\nlisten = \"{}\"\nkey = \"{KEY}\"\n",
            peers.join(", "),
            lab.director_addr_v4(me)
        )
}

/// The flows of `d` from `client` (IP:port).
fn flows_of(d: &LabDaemon, client: &str) -> Vec<FlowEntry> {
    d.flows()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.client == client)
        .collect()
}

/// Polls `d` every few milliseconds until it holds `client`'s flow in
/// `state`; how long that took.
fn wait_flow(d: &LabDaemon, client: &str, state: &str, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        if flows_of(d, client).iter().any(|f| f.state == state) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{what}: {client} not {state} after {PATIENCE:?}; it has {:?}\nlog:\n{}",
            flows_of(d, client),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until `d` has finished `n` more ageing passes than now.
fn wait_ageing_passes(d: &LabDaemon, n: u64) {
    let passes = || d.status().expect("lbctl status").ageing_passes;
    let target = passes() + n;
    // An ageing pass every 2 s in this test.
    let deadline = PATIENCE + Duration::from_secs(2 * n);
    let started = Instant::now();
    while passes() < target {
        assert!(
            started.elapsed() < deadline,
            "{n} ageing passes not finished after {deadline:?}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The client's one flow at director `d` through the VIP, once it shows.
fn the_new_flow(d: &LabDaemon, known: &[String]) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let found = d
            .flows()
            .unwrap_or_default()
            .into_iter()
            .find(|f| f.service.starts_with(&VIP_V4.to_string()) && !known.contains(&f.client));
        if let Some(flow) = found {
            return (flow.client, started.elapsed());
        }
        assert!(started.elapsed() < PATIENCE, "no new flow at director 0");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn active_connections(d: &LabDaemon) -> u64 {
    d.status()
        .expect("lbctl status")
        .services
        .iter()
        .flat_map(|s| &s.reals)
        .map(|r| r.active_connections)
        .sum()
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, told in order")]
fn flows_opened_at_one_director_are_known_at_the_others() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(3)
        .reals(2)
        .big_file_size(BIG)
        .build()
        .expect("build the lab");
    let service = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    // The router's choice, fixed: every flow of client 0 goes to director 0.
    exec_ok(
        lab.client_ns(0),
        &[
            "ip",
            "route",
            "add",
            &format!("{VIP_V4}/32"),
            "via",
            &lab.director_addr_v4(0).to_string(),
        ],
    )
    .expect("route the VIP via director 0");
    let d0 = {
        let text = config(&lab, 0, &service);
        LabDaemon::start_with_config(&mut lab, 0, &text).expect("start director 0")
    };
    let d1 = {
        let text = config(&lab, 1, &service);
        LabDaemon::start_with_config(&mut lab, 1, &text).expect("start director 1")
    };

    // A long download through director 0: director 1 learns it, first
    // half-open or at once established, and established within the bound.
    let started = Instant::now();
    let mut download =
        Download::start(&mut lab, 0, &url(VIP_V4.into(), "/big"), RATE).expect("curl");
    let (long, seen_at_d0) = the_new_flow(&d0, &[]);
    let at_d1 = wait_flow(&d1, &long, "established", "director 1");
    // `lbctl flows` tells another director's flow from one's own.
    assert!(flows_of(&d1, &long).iter().all(|f| f.learned));
    assert!(flows_of(&d0, &long).iter().all(|f| !f.learned));
    println!(
        "a new connection through director 0: in its table {} ms after curl started, \
         established in director 1's {} ms after that (polling lbctl every 2 ms)",
        seen_at_d0.as_millis(),
        at_d1.as_millis()
    );
    assert!(download.is_running(), "the download goes on");

    // A short request: once it is closed at director 0 (the client's FIN),
    // director 1 marks it closing.
    let vip = SocketAddr::from((VIP_V4, HTTP_PORT));
    let response = http_get(lab.client_ns(0), vip, "/", Duration::from_secs(2)).expect("GET");
    assert_eq!(response.status, 200);
    let closed_at = Instant::now();
    let (short, _) = the_new_flow(&d0, std::slice::from_ref(&long));
    wait_flow(&d1, &short, "closing", "director 1");
    println!(
        "a closed connection: closing in director 1's table {} ms after the response",
        closed_at.elapsed().as_millis()
    );

    // Learned flows count on the director that carries them only, also
    // once an ageing pass has rebuilt the counts from the tables (two
    // passes: the first may have read the tables before the flows came).
    for d in [&d0, &d1] {
        wait_ageing_passes(d, 2);
    }
    assert!(
        active_connections(&d0) >= 1,
        "director 0 counts the download: {:?}\n{:?}",
        d0.status().unwrap(),
        flows_of(&d0, &long)
    );
    assert_eq!(
        active_connections(&d1),
        0,
        "director 1 carries nothing: its learned flows do not count"
    );

    // A director started later gets the whole table from both.
    let started_d2 = Instant::now();
    let d2 = {
        let text = config(&lab, 2, &service);
        LabDaemon::start_with_config(&mut lab, 2, &text).expect("start director 2")
    };
    let long_at_d2 = wait_flow(&d2, &long, "established", "director 2 (whole table)");
    let short_at_d2 = wait_flow(&d2, &short, "closing", "director 2 (whole table)");
    println!(
        "director 2 started: the download's flow in its table {} ms after the start \
         ({} ms after lbctl answered), the closed one too ({} ms)",
        started_d2.elapsed().as_millis() - short_at_d2.as_millis(),
        long_at_d2.as_millis(),
        short_at_d2.as_millis()
    );
    let director = d2.lbctl_json(&["director"]).expect("lbctl director");
    let share = &director["share"];
    assert_eq!(share["learned"], true, "{director:#}");
    for peer in share["peers"].as_array().expect("peers") {
        assert!(peer["last_full_table"].is_number(), "{director:#}");
    }
    println!(
        "director 2: {}",
        d2.lbctl_ok(&["director"]).unwrap_or_default().trim_end()
    );
    let d2_log = d2.log();
    assert!(
        d2_log.matches("a peer's whole table has arrived").count() == 2,
        "director 2 received both peers' tables:\n{d2_log}"
    );
    assert!(
        download.is_running(),
        "the download still goes on after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop((d0, d1, d2));
}
