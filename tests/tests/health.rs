//! Health checking with the real `lbd` in the lab: dead reals out within
//! 3 s, recovered and spare reals in within 2 s, no failed request after.

use std::time::{Duration, Instant};

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    wait_until,
    wrk::Wrk,
};

fn real(lab: &Lab, i: usize) -> String {
    format!("{}:80", lab.real_addr_v4(i))
}

/// The state `lbctl status` shows for a real of the first service.
fn state(lbd: &LabDaemon, real: &str) -> String {
    let status = lbd.lbctl_json(&["status"]).unwrap();
    status["services"][0]["reals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["real"] == real)
        .map(|r| r["state"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Polls until `real` shows `want`; returns how long that took.
fn wait_state(lbd: &LabDaemon, real: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    wait_until(limit, &format!("{real} is {want}"), || {
        state(lbd, real) == want
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    start.elapsed()
}

#[test]
fn a_killed_real_is_out_within_3s_and_back_within_2s_of_answering() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .build()
        .unwrap();
    let service = LabService::v4("wlc", &[(0, 1), (1, 1), (2, 1)]);
    let lbd = LabDaemon::start(&mut lab, 0, &[service]).expect("start lbd");
    let url = format!("http://{VIP_V4}/");
    wait_state(&lbd, &real(&lab, 0), "up", Duration::from_secs(5));

    // Kill real 0's server under load.
    let wrk = Wrk::start(&mut lab, 0, &url, Duration::from_secs(3), 8, true).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    lab.real_stop(0).unwrap();
    let out = wait_state(&lbd, &real(&lab, 0), "down", Duration::from_secs(10));
    println!(
        "killed real out of rotation after {:.0} ms (goal < 3000 ms)",
        out.as_secs_f64() * 1e3
    );
    assert!(out < Duration::from_secs(3), "{out:?}\n{}", lbd.log());
    let during = wrk.finish().unwrap();
    println!(
        "while it died: {} requests, errors: {:?}",
        during.requests, during.socket_errors
    );

    // After that, no new connection fails.
    let after = Wrk::start(&mut lab, 0, &url, Duration::from_secs(3), 8, true).unwrap();
    let report = after.finish().unwrap();
    assert!(
        report.clean(),
        "no failure once it is out:\n{}\n{}",
        report.text,
        lbd.log()
    );

    // Start it again: in rotation within 2 s of answering.
    lab.real_start(0).unwrap();
    let back = wait_state(&lbd, &real(&lab, 0), "up", Duration::from_secs(10));
    println!(
        "recovered real back in rotation after {:.0} ms (goal < 2000 ms)",
        back.as_secs_f64() * 1e3
    );
    assert!(back < Duration::from_secs(2), "{back:?}\n{}", lbd.log());
}
