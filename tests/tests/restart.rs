//! `systemctl restart lbd` as systemd does it under load: SIGTERM (lbd
//! stops, the pinned data path keeps forwarding), then a new lbd with the
//! same config and pins, which adopts the data path. Three restarts while
//! recording clients (a new connection per request, every request
//! recorded with a 3 s timeout) and wrk with keep-alive connections run:
//! no request may fail or hang.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    requests::Clients,
    wrk::Wrk,
};

const RESTARTS: usize = 3;

#[test]
fn restarting_lbd_under_load_fails_and_hangs_no_request() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .build()
        .expect("build the lab");
    let service = LabService::v4("wlc", &[(0, 1), (1, 1), (2, 1)]);
    let mut lbd = LabDaemon::start(&mut lab, 0, &[service]).expect("start lbd");
    let vip = SocketAddr::from((VIP_V4, 80));
    let clients = Clients::closed_loop(lab.client_ns(0), vip, 8, Duration::from_secs(3))
        .expect("start the clients");
    let url = format!("http://{VIP_V4}/");
    let kept = Wrk::start(&mut lab, 0, &url, Duration::from_secs(2), 8, false).unwrap();
    clients
        .wait_answer_after(clients.started(), Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));

    for round in 1..=RESTARTS {
        let before = Instant::now();
        // Some load before each restart, measured by answers, not time.
        clients
            .wait_answer_after(before, Duration::from_secs(20))
            .unwrap();
        let stopping = Instant::now();
        lbd.stop().expect("SIGTERM");
        let stopped = stopping.elapsed();
        let ready = lbd.spawn().expect("start lbd again");
        assert!(
            lbd.current_log().contains("adopted the pinned data path"),
            "{}",
            lbd.current_log()
        );
        println!(
            "restart {round}: stopped in {} ms, answering again {} ms after its start",
            stopped.as_millis(),
            ready.as_millis()
        );
        clients
            .wait_answer_after(Instant::now(), Duration::from_secs(20))
            .unwrap();
    }

    let summary = clients.stop();
    println!("clients across {RESTARTS} restarts: {summary}");
    let report = kept.finish().unwrap();
    println!("wrk (keep-alive): {}", report.text);
    assert!(
        summary.clean(),
        "no request failed or hung: {summary}\n{}",
        lbd.log()
    );
    assert!(
        report.clean(),
        "wrk: no error:\n{}\n{}",
        report.text,
        lbd.log()
    );
}
