//! The real `lbd` and `lbctl` in a lab: runtime changes under load, restarts,
//! reloads.

use std::time::{Duration, Instant};

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    http_get, wait_until,
    wrk::{Download, Wrk},
};

fn lab(reals: usize) -> Lab {
    Lab::builder()
        .clients(1)
        .directors(1)
        .reals(reals)
        .build()
        .expect("build the lab")
}

#[test]
fn lbd_serves_its_config_and_lbctl_shows_it() {
    let mut lab = lab(2);
    let service = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    let lbd = LabDaemon::start(&mut lab, 0, std::slice::from_ref(&service)).expect("start lbd");
    let vip = std::net::SocketAddr::from((VIP_V4, 80));
    for _ in 0..10 {
        let response = http_get(lab.client_ns(0), vip, "/", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("request failed: {e:#}\n{}", lbd.log()));
        assert_eq!(response.status, 200);
    }
    let status = lbd.lbctl_ok(&["status"]).unwrap();
    println!("{status}");
    assert!(status.contains("10.99.0.200:80/tcp"), "{status}");
    let total: u64 = (0..2)
        .map(|i| {
            lbd.real_connections(&service.name(), &format!("{}:80", lab.real_addr_v4(i)))
                .unwrap()
        })
        .sum();
    assert_eq!(total, 10, "{status}");

    // Concurrent lbctl changes are serialized and none is lost.
    std::thread::scope(|scope| {
        for i in 0..16 {
            let lbd = &lbd;
            let name = service.name();
            scope.spawn(move || {
                lbd.lbctl_ok(&["real", "add", &name, &format!("10.99.0.{}", 150 + i)])
                    .unwrap();
            });
        }
    });
    let text = std::fs::read_to_string(lbd.config_path()).unwrap();
    let status = lbd.status().unwrap();
    assert_eq!(status.services[0].reals.len(), 18, "{status:?}");
    let name = service.name();
    for i in 0..16 {
        assert!(text.contains(&format!("\"10.99.0.{}\"", 150 + i)), "{text}");
        let real = lbd.real(&name, &format!("10.99.0.{}:80", 150 + i)).unwrap();
        assert_eq!(
            real.state, "unresolved",
            "no such host: no MAC, out of rotation"
        );
    }

    // A drained real without flows is removed (and the removal written).
    lbd.lbctl_ok(&["real", "drain", &name, "10.99.0.150"])
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "the drained real is removed",
        || {
            !std::fs::read_to_string(lbd.config_path())
                .unwrap()
                .contains("\"10.99.0.150\"")
        },
    )
    .unwrap();
}

fn vip_url() -> String {
    format!("http://{VIP_V4}/")
}

fn real(lab: &Lab, i: usize) -> String {
    format!("{}:80", lab.real_addr_v4(i))
}

/// Waits until `real` of `service` has had more than `above` new
/// connections; returns how long that took.
fn wait_for_connections(lbd: &LabDaemon, service: &str, real: &str, above: u64) -> Duration {
    let start = Instant::now();
    lbd.wait_connections(service, real, above, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:#}"));
    start.elapsed()
}

#[test]
fn lbctl_adds_drains_and_removes_reals_under_load_without_a_failed_request() {
    let mut lab = lab(3);
    let service = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    let name = service.name();
    let lbd = LabDaemon::start(&mut lab, 0, &[service]).expect("start lbd");
    let wrk = Wrk::start(&mut lab, 0, &vip_url(), Duration::from_secs(8), 8, true).unwrap();
    wait_for_connections(&lbd, &name, &real(&lab, 0), 100);

    // Add real 2: lbctl returns, then the first connection lands on it.
    let started = Instant::now();
    let out = lbd
        .lbctl_ok(&["real", "add", &name, &lab.real_addr_v4(2).to_string()])
        .unwrap();
    let lbctl_ms = started.elapsed().as_secs_f64() * 1e3;
    let first = wait_for_connections(&lbd, &name, &real(&lab, 2), 0);
    println!(
        "lbctl real add: {out}  lbctl returned after {lbctl_ms:.1} ms; first new connection on the \
         new real seen within {:.1} ms of the command (upper bound: status polled)",
        (first.as_secs_f64() * 1e3) + lbctl_ms
    );

    // Drain real 0: no new connections, established ones finish, and the
    // real is removed once its flows reach zero (it may still show as
    // `removed` while closing flows age out).
    let out = lbd
        .lbctl_ok(&["real", "drain", &name, &real(&lab, 0)])
        .unwrap();
    assert!(out.contains("established flows left"), "{out}");
    let drained = lbd.real_connections(&name, &real(&lab, 0)).unwrap();
    let started = Instant::now();
    let busy = lbd.real_connections(&name, &real(&lab, 1)).unwrap();
    wait_for_connections(&lbd, &name, &real(&lab, 1), busy + 300);
    let after = lbd.real_connections(&name, &real(&lab, 0)).unwrap();
    assert!(
        after <= drained + 2,
        "a drained real got new connections: {drained} -> {after}"
    );
    wait_until(
        Duration::from_secs(20),
        "the drained real is removed",
        || lbd.log().contains("drained real removed"),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    println!(
        "drained real removed within {:.1} s of the drain",
        started.elapsed().as_secs_f64()
    );

    // Re-weight another.
    lbd.lbctl_ok(&["real", "weight", &name, &real(&lab, 1), "3"])
        .unwrap();

    let report = wrk.finish().unwrap();
    println!("{}", report.text);
    assert!(
        report.clean(),
        "no request failed:\n{}\n{}",
        report.text,
        lbd.log()
    );

    // Every change is in the file, which is still a valid config.
    let text = std::fs::read_to_string(lbd.config_path()).unwrap();
    assert!(text.contains(&lab.real_addr_v4(2).to_string()), "{text}");
    assert!(
        !text.contains(&format!("\"{}\"", lab.real_addr_v4(0))),
        "{text}"
    );
    assert!(text.contains("weight = 3"), "{text}");
    assert!(
        text.contains("# lbd config written by the lab"),
        "comments kept:\n{text}"
    );

    // Refused changes: a one-line reason, non-zero exit, nothing changed.
    for bad in [
        vec!["real", "remove", name.as_str(), "10.99.0.77"],
        vec!["real", "add", name.as_str(), "fd00::5"],
        vec!["service", "remove", "10.99.0.201:80"],
    ] {
        let out = lbd.lbctl(&bad).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?} was refused");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("lbctl: "), "{stderr}");
        println!("{bad:?} -> {}", stderr.trim());
    }
    assert_eq!(std::fs::read_to_string(lbd.config_path()).unwrap(), text);
}

#[test]
fn lbd_killed_and_restarted_under_load_loses_no_request_and_no_connection() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .big_file_size(6 << 20)
        .build()
        .expect("build the lab");
    let service = LabService::v4("rr", &[(0, 1), (1, 1), (2, 1)]);
    let name = service.name();
    let mut lbd = LabDaemon::start(&mut lab, 0, &[service]).expect("start lbd");
    // Long-lived keep-alive connections (any one moved to another real
    // would be reset), new connections, and a slow download.
    let kept = Wrk::start(&mut lab, 0, &vip_url(), Duration::from_secs(6), 12, false).unwrap();
    let fresh = Wrk::start(&mut lab, 0, &vip_url(), Duration::from_secs(6), 4, true).unwrap();
    let download = Download::start(
        &mut lab,
        0,
        &format!("http://{VIP_V4}{}", lb_lab::BIG_PATH),
        "1500K",
    )
    .unwrap();
    for i in 0..3 {
        wait_for_connections(&lbd, &name, &real(&lab, i), 2);
    }
    // Remove real 2 while keep-alive connections use it: they must go on,
    // across the restart too.
    lbd.lbctl_ok(&["real", "remove", &name, &real(&lab, 2)])
        .unwrap();
    lbd.kill().unwrap();
    // While lbd is down the operator edits the file: real 1 gets weight 2.
    let text = std::fs::read_to_string(lbd.config_path()).unwrap();
    let edited =
        text.replacen("weight = 1", "weight = 2", 2)
            .replacen("weight = 2", "weight = 1", 1);
    assert_ne!(edited, text);
    std::fs::write(lbd.config_path(), &edited).unwrap();
    // The data path forwards alone for a second.
    std::thread::sleep(Duration::from_secs(1));
    lbd.spawn().expect("restart lbd");
    let log = lbd.log();
    assert!(log.contains("adopted the pinned data path"), "{log}");
    let edited = lbd.real(&name, &real(&lab, 1)).unwrap();
    assert_eq!(edited.weight, 2, "the edit is applied: {edited:?}");
    let removed = lbd.real(&name, &real(&lab, 2)).unwrap();
    assert_eq!(removed.state, "removed", "{removed:?}");
    assert!(
        removed.active_connections > 0,
        "the removed real keeps its keep-alive flows: {removed:?}"
    );

    for (what, wrk) in [("keep-alive", kept), ("new connections", fresh)] {
        let report = wrk.finish().unwrap();
        println!("{what}: {}", report.text);
        assert!(
            report.clean(),
            "{what}: no request failed:\n{}\n{log}",
            report.text
        );
    }
    assert_eq!(
        download.finish().unwrap(),
        6u64 << 20,
        "the slow download went on across the restart"
    );
}

#[test]
fn reloading_a_valid_and_an_invalid_config_under_load_fails_no_request() {
    let mut lab = lab(3);
    let two = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    let name = two.name();
    let lbd = LabDaemon::start(&mut lab, 0, &[two]).expect("start lbd");
    let wrk = Wrk::start(&mut lab, 0, &vip_url(), Duration::from_secs(6), 8, true).unwrap();
    wait_for_connections(&lbd, &name, &real(&lab, 0), 50);

    // Valid: a third real, by SIGHUP.
    let three = LabService::v4("wlc", &[(0, 1), (1, 1), (2, 1)]);
    std::fs::write(lbd.config_path(), LabDaemon::config_text(&lab, 0, &[three])).unwrap();
    lbd.hangup().unwrap();
    wait_for_connections(&lbd, &name, &real(&lab, 2), 0);

    // Invalid: refused with file:line and field, by lbctl and by SIGHUP.
    let weights = |lbd: &LabDaemon| -> Vec<(String, u32)> {
        let status = lbd.status().unwrap();
        status.services[0]
            .reals
            .iter()
            .map(|r| (r.real.clone(), r.weight))
            .collect()
    };
    let before = weights(&lbd);
    let bad = LabDaemon::config_text(&lab, 0, &[LabService::v4("wlc", &[(0, 70_000), (1, 1)])]);
    std::fs::write(lbd.config_path(), &bad).unwrap();
    let out = lbd.lbctl(&["reload"]).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "invalid reload refused");
    let line = bad.lines().position(|l| l.contains("70000")).unwrap() + 1;
    assert!(
        stderr.contains(&format!("lb.toml:{line}")),
        "names file:line {line}: {stderr}"
    );
    assert!(stderr.contains("weight"), "names the field: {stderr}");
    lbd.hangup().unwrap();
    wait_until(Duration::from_secs(20), "SIGHUP refusal logged", || {
        lbd.log().contains("reload (SIGHUP) refused")
    })
    .unwrap();
    assert_eq!(before, weights(&lbd), "running state untouched");

    let report = wrk.finish().unwrap();
    println!("{}", report.text);
    assert!(
        report.clean(),
        "no request failed:\n{}\n{}",
        report.text,
        lbd.log()
    );
}
