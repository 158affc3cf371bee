//! Health checking with the real `lbd` in the lab: dead reals out within
//! 3 s, recovered and spare reals in within 2 s, no failed request after.

use std::{fmt::Write as _, time::Duration};

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    wrk::{Download, Wrk},
};

fn real(lab: &Lab, i: usize) -> String {
    format!("{}:80", lab.real_addr_v4(i))
}

/// The lab service's name, as lbctl and the metrics write it.
fn service_name() -> String {
    LabService::v4("wlc", &[]).name()
}

/// Waits until `real` shows `want`; returns how long that took.
fn wait_state(lbd: &LabDaemon, real: &str, want: &str, limit: Duration) -> Duration {
    lbd.wait_state(&service_name(), real, want, limit)
        .unwrap_or_else(|e| panic!("{e:#}"))
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
    lbd.wait_connections(&service_name(), &real(&lab, 0), 20, Duration::from_secs(5))
        .unwrap();
    lab.real_stop(0).unwrap();
    let out = wait_state(&lbd, &real(&lab, 0), "down", Duration::from_secs(10));
    println!(
        "killed real out of rotation after {:.0} ms (goal < 3000 ms)",
        out.as_secs_f64() * 1e3
    );
    assert!(out < Duration::from_secs(3), "{out:?}\n{}", lbd.log());
    let during = wrk.finish().unwrap();
    assert!(during.requests > 0, "the real died under load");
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

    // lbctl health shows the history with the reasons.
    let health = lbd.lbctl_ok(&["health"]).unwrap();
    println!("{health}");
    assert!(
        health.contains("down (connect: connection refused)"),
        "{health}"
    );
    assert!(
        health.contains("up (2 consecutive checks passed)"),
        "{health}"
    );
}

/// A service block with spares: `primaries` and `spares` are lab reals.
fn service_with_spares(
    lab: &Lab,
    scheduler: &str,
    primaries: &[usize],
    spares: &[usize],
) -> String {
    let mut text =
        format!("\n[[service]]\nvip = \"{VIP_V4}\"\nport = 80\nscheduler = \"{scheduler}\"\n");
    for &i in primaries {
        let _ = write!(
            text,
            "\n[[service.real]]\naddress = \"{}\"\n",
            lab.real_addr_v4(i)
        );
    }
    for &i in spares {
        let _ = write!(
            text,
            "\n[[service.real]]\naddress = \"{}\"\nbackup = true\n",
            lab.real_addr_v4(i)
        );
    }
    text
}

#[test]
fn spares_join_when_primaries_die_and_primaries_take_back_without_breaking_flows() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .big_file_size(3 << 20)
        .build()
        .unwrap();
    // The spare host's service is not running yet.
    lab.real_stop(2).unwrap();
    let text =
        LabDaemon::config_text(&lab, 0, &[]) + &service_with_spares(&lab, "wlc", &[0, 1], &[2]);
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
    wait_state(&lbd, &real(&lab, 2), "down", Duration::from_secs(10));

    // Start the service on the spare host: in rotation (as an idle spare)
    // within 2 s of answering.
    lab.real_start(2).unwrap();
    let ready = wait_state(&lbd, &real(&lab, 2), "backup_idle", Duration::from_secs(10));
    println!(
        "spare host's service checked healthy after {:.0} ms (goal < 2000 ms)",
        ready.as_secs_f64() * 1e3
    );
    assert!(ready < Duration::from_secs(2));

    // The primaries die: the spare takes over.
    lab.real_stop(0).unwrap();
    lab.real_stop(1).unwrap();
    let takeover = wait_state(
        &lbd,
        &real(&lab, 2),
        "backup_active",
        Duration::from_secs(10),
    );
    println!(
        "spare took over {:.0} ms after the primaries died (goal < 3000 ms)",
        takeover.as_secs_f64() * 1e3
    );
    assert!(takeover < Duration::from_secs(3), "{}", lbd.log());
    // New connections now succeed, on the spare.
    let vip = std::net::SocketAddr::from((VIP_V4, 80));
    for i in 0..50 {
        let response = lb_lab::http_get(lab.client_ns(0), vip, "/", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("request {i} after the takeover: {e:#}\n{}", lbd.log()));
        assert_eq!(
            response.text().trim(),
            lab.real_name(2),
            "served by the spare"
        );
    }

    // A slow download from the spare, then the primaries return: the
    // spare goes idle, new connections go to the primaries, and the
    // download (an established flow on the spare) completes.
    let download = Download::start(
        &mut lab,
        0,
        &format!("http://{VIP_V4}{}", lb_lab::BIG_PATH),
        "1M",
    )
    .unwrap();
    lab.real_start(0).unwrap();
    lab.real_start(1).unwrap();
    let back = wait_state(&lbd, &real(&lab, 2), "backup_idle", Duration::from_secs(10));
    println!(
        "primaries back, spare idle {:.0} ms after they answered",
        back.as_secs_f64() * 1e3
    );
    assert!(back < Duration::from_secs(2), "{back:?}\n{}", lbd.log());
    let response = lb_lab::http_get(lab.client_ns(0), vip, "/", Duration::from_secs(5)).unwrap();
    assert_ne!(
        response.text().trim(),
        lab.real_name(2),
        "new connections go to primaries"
    );
    assert_eq!(
        download.finish().unwrap(),
        3u64 << 20,
        "the download on the spare went on after the primaries returned"
    );
}

#[test]
fn a_paused_real_gets_almost_no_new_connections_with_lc_and_piles_up_with_rr() {
    let mut figures = Vec::new();
    for scheduler in ["lc", "rr"] {
        let mut lab = Lab::builder()
            .clients(1)
            .directors(1)
            .reals(3)
            .build()
            .unwrap();
        // No health checks: this is about the scheduler alone during a pause
        // shorter than the detection time.
        let text = LabDaemon::config_text(&lab, 0, &[])
            + &service_with_spares(&lab, scheduler, &[0, 1, 2], &[])
            + "\n[service.check]\nkind = \"none\"\n";
        let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
        let url = format!("http://{VIP_V4}/");
        let wrk = Wrk::start(&mut lab, 0, &url, Duration::from_secs(5), 12, true).unwrap();
        let name = service_name();
        for i in 0..3 {
            lbd.wait_connections(&name, &real(&lab, i), 50, Duration::from_secs(5))
                .unwrap();
        }
        let before: Vec<u64> = (0..3)
            .map(|i| lbd.real_connections(&name, &real(&lab, i)).unwrap())
            .collect();
        lab.real_pause(0).unwrap();
        // The pause itself (a 3 s stop-the-world) is the scenario.
        std::thread::sleep(Duration::from_secs(3));
        let during: Vec<u64> = (0..3)
            .map(|i| lbd.real_connections(&name, &real(&lab, i)).unwrap())
            .collect();
        lab.real_resume(0).unwrap();
        wrk.finish().unwrap();
        let new: Vec<u64> = during.iter().zip(&before).map(|(d, b)| d - b).collect();
        let total: u64 = new.iter().sum();
        assert!(
            total >= 100,
            "{scheduler}: too little load to judge: {new:?}"
        );
        let share = new[0] as f64 / total as f64;
        println!(
            "{scheduler}: new connections during a 3 s pause of real 0: {new:?} ({:.1}% to the paused real)",
            share * 100.0
        );
        figures.push(share);
    }
    assert!(
        figures[0] < 0.02,
        "lc sends almost nothing to a paused real: {:.3}",
        figures[0]
    );
    assert!(
        figures[1] > 0.2,
        "rr keeps sending to it: {:.3}",
        figures[1]
    );
}

#[test]
fn a_real_failing_one_probe_in_three_at_random_does_not_flap() {
    let mut lab = Lab::builder()
        .clients(0)
        .directors(1)
        .reals(1)
        .build()
        .unwrap();
    // A command check that fails one time in three, at random.
    let text = LabDaemon::config_text(&lab, 0, &[])
        + &service_with_spares(&lab, "wlc", &[0], &[])
        + "\n[service.check]\nkind = \"command\"\ncommand = [\"/bin/sh\", \"-c\", \"test $(( $(od -An -N1 -tu1 /dev/urandom) % 3 )) -ne 0\"]\n";
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
    // Watch until the check has failed at least 20 times (proof that the
    // 1-in-3 failures happen): the real must stay up all along.
    let metrics: std::net::SocketAddr = "127.0.0.1:9140".parse().unwrap();
    let failures = || -> anyhow::Result<f64> {
        let page = lb_lab::http_get(lbd.namespace(), metrics, "/metrics", Duration::from_secs(5))?;
        Ok(page
            .text()
            .lines()
            .filter(|l| l.starts_with("lb_health_check_failures_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    };
    let seen = lb_lab::wait_for(Duration::from_secs(90), "20 failed probes", || {
        let state = lbd.real(&service_name(), &real(&lab, 0))?.state;
        anyhow::ensure!(state == "up", "the real flapped: {state}");
        let n = failures()?;
        if n >= 20.0 {
            Ok(n)
        } else {
            anyhow::bail!("{n} failures so far")
        }
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    let log = lbd.log();
    println!(
        "{seen} failed probes, transitions: {}",
        log.matches("real DOWN").count()
    );
    assert_eq!(log.matches("real DOWN").count(), 0, "{log}");
}
