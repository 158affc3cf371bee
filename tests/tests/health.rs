//! Health checking with the real `lbd` in the lab: dead reals out within
//! 3 s, recovered and spare reals in within 2 s, no failed request after.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    goal::assert_within,
    requests::Clients,
    wrk::{Download, Wrk},
};

/// How long a test waits for a state or a count that should come within a
/// few seconds: a deadline, not a measurement.
const PATIENCE: Duration = Duration::from_secs(20);

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
    wait_state(&lbd, &real(&lab, 0), "up", PATIENCE);

    // Kill real 0's server under load.
    let wrk = Wrk::start(&mut lab, 0, &url, Duration::from_secs(3), 8, true).unwrap();
    lbd.wait_connections(&service_name(), &real(&lab, 0), 20, PATIENCE)
        .unwrap();
    lab.real_stop(0).unwrap();
    let out = wait_state(&lbd, &real(&lab, 0), "down", PATIENCE);
    assert_within(
        "killed real out of rotation",
        out,
        Duration::from_secs(3),
        &lbd.log(),
    );
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
    let back = wait_state(&lbd, &real(&lab, 0), "up", PATIENCE);
    assert_within(
        "recovered real back in rotation",
        back,
        Duration::from_secs(2),
        &lbd.log(),
    );

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
    wait_state(&lbd, &real(&lab, 2), "down", PATIENCE);

    // Start the service on the spare host: in rotation (as an idle spare)
    // within 2 s of answering.
    lab.real_start(2).unwrap();
    let ready = wait_state(&lbd, &real(&lab, 2), "backup_idle", PATIENCE);
    assert_within(
        "spare host's service checked healthy",
        ready,
        Duration::from_secs(2),
        &lbd.log(),
    );

    // The primaries die: the spare takes over.
    lab.real_stop(0).unwrap();
    lab.real_stop(1).unwrap();
    let takeover = wait_state(&lbd, &real(&lab, 2), "backup_active", PATIENCE);
    assert_within(
        "spare took over after the primaries died",
        takeover,
        Duration::from_secs(3),
        &lbd.log(),
    );
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
    let back = wait_state(&lbd, &real(&lab, 2), "backup_idle", PATIENCE);
    assert_within(
        "primaries back, spare idle after they answered",
        back,
        Duration::from_secs(2),
        &lbd.log(),
    );
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

/// New connections the director must have scheduled during the pause
/// before the test judges the schedulers (about 1.5 s of the load below).
const CONNECTIONS_DURING_PAUSE: u64 = 300;

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
        // Open-loop load, as real clients arrive: 200 new connections a
        // second whatever the paused real does (a closed-loop generator's
        // connections all pile up on the paused real with rr, and its load
        // stops), each waiting longer than the pause for its answer.
        let vip = SocketAddr::from((VIP_V4, 80));
        let clients =
            Clients::open_loop(lab.client_ns(0), vip, 200, Duration::from_secs(30)).unwrap();
        let name = service_name();
        for i in 0..3 {
            lbd.wait_connections(&name, &real(&lab, i), 20, PATIENCE)
                .unwrap();
        }
        let reals: Vec<String> = (0..3).map(|i| real(&lab, i)).collect();
        let counts = || -> Vec<u64> {
            reals
                .iter()
                .map(|r| lbd.real_connections(&name, r).unwrap())
                .collect()
        };
        let before = counts();
        // The pause (a stop-the-world of real 0's server) lasts until the
        // director has scheduled enough new connections to judge.
        lab.real_pause(0).unwrap();
        let enough = before.iter().sum::<u64>() + CONNECTIONS_DURING_PAUSE;
        lb_lab::wait_until(PATIENCE, "new connections during the pause", || {
            counts().iter().sum::<u64>() >= enough
        })
        .unwrap_or_else(|e| panic!("{scheduler}: {e:#}\n{}", lbd.log()));
        let during = counts();
        lab.real_resume(0).unwrap();
        let requests = clients.stop();
        let new: Vec<u64> = during.iter().zip(&before).map(|(d, b)| d - b).collect();
        let total: u64 = new.iter().sum();
        let share = new[0] as f64 / total as f64;
        println!(
            "{scheduler}: new connections during the pause of real 0: {new:?} ({:.1}% to the \
             paused real); the clients saw {requests}",
            share * 100.0
        );
        assert!(requests.clean(), "{scheduler}: {requests}");
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

/// Which probes of the flapping check fail: one in three over a cycle of
/// 30, at irregular places, in runs of up to three (far below `fall`).
/// Fixed rather than random: a random one-in-three check fails `fall` = 10
/// times in a row about once in 60,000 probes, and a test must not flap
/// by chance either.
const FAILING_PROBES: &str = "1|4|5|9|13|14|15|19|22|27";

#[test]
fn a_real_failing_one_probe_in_three_does_not_flap() {
    let mut lab = Lab::builder()
        .clients(0)
        .directors(1)
        .reals(1)
        .build()
        .unwrap();
    // A command check that counts its runs in a file and fails at
    // FAILING_PROBES (shell builtins only: nothing to time out on a busy
    // machine but `sh` itself). Probes every 500 ms, the default fall and
    // rise.
    let counter = lab.dir().join("probes");
    let script = format!(
        "read n < {0} || n=0; echo $((n + 1)) > {0}; case $((n % 30)) in {FAILING_PROBES}) exit 1;; esac",
        counter.display()
    );
    let text = LabDaemon::config_text(&lab, 0, &[])
        + &service_with_spares(&lab, "wlc", &[0], &[])
        + &format!(
            "\n[service.check]\nkind = \"command\"\ninterval = \"500ms\"\ntimeout = \"500ms\"\n\
             command = [\"/bin/sh\", \"-c\", {script:?}]\n"
        );
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
    // Watch until the check has failed 20 times (two cycles): the real must
    // stay up all along.
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
    let seen = lb_lab::wait_for(Duration::from_mins(2), "20 failed probes", || {
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

/// `VIP:53/udp` services over IPv4 and IPv6 with a dns check: each real's
/// check expects its own address in the answer (a real's override of the
/// service's check).
fn dns_services(lab: &Lab, reals: usize) -> String {
    let mut text = String::new();
    for v6 in [false, true] {
        let vip = if v6 {
            lb_lab::VIP_V6.to_string()
        } else {
            VIP_V4.to_string()
        };
        let qtype = if v6 { "AAAA" } else { "A" };
        let _ = write!(
            text,
            "\n[[service]]\nvip = \"{vip}\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"rr\"\n\
             [service.check]\nkind = \"dns\"\nquery_name = \"{}\"\nquery_type = \"{qtype}\"\n",
            lb_lab::dns::TEST_NAME
        );
        for i in 0..reals {
            let addr = if v6 {
                lab.real_addr_v6(i).to_string()
            } else {
                lab.real_addr_v4(i).to_string()
            };
            let _ = write!(
                text,
                "\n[[service.real]]\naddress = \"{addr}\"\ncheck = {{ expect_address = \"{addr}\" }}\n"
            );
        }
    }
    text
}

/// Prints what the IPv4 and IPv6 clients saw while the resolver died, with
/// one resolver and after it came back (`at`: killed, out, restarted, back
/// in, end); the last two windows must be clean.
fn report_dns_queries(
    records: &[Vec<lb_lab::requests::Record>; 2],
    at: [std::time::Instant; 5],
    lbd: &LabDaemon,
) {
    let [killed, down, restarted, up, end] = at;
    for (family, records) in ["v4", "v6"].iter().zip(records) {
        let dying = lb_lab::requests::summarize(records, killed, down);
        let one = lb_lab::requests::summarize(records, down, restarted);
        let after = lb_lab::requests::summarize(records, up, end);
        println!("{family} queries while it died: {dying}");
        println!("{family} queries with one resolver: {one}");
        println!("{family} queries after it came back: {after}");
        assert!(one.clean(), "{family}, one resolver: {one}\n{}", lbd.log());
        assert!(after.clean(), "{family}, after: {after}\n{}", lbd.log());
    }
}

#[test]
fn a_killed_dnsmasq_is_out_within_3s_and_back_and_queries_keep_being_answered() {
    use lb_lab::dns::{Dnsmasq, TEST_NAME, query};
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(2)
        .build()
        .unwrap();
    let mut servers: Vec<Dnsmasq> = (0..2)
        .map(|i| Dnsmasq::start(&mut lab, i).expect("start dnsmasq"))
        .collect();
    let text = LabDaemon::config_text(&lab, 0, &[]) + &dns_services(&lab, 2);
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
    let v4 = format!("{VIP_V4}:53/udp");
    let v6 = format!("[{}]:53/udp", lb_lab::VIP_V6);
    let reals = |i: usize| {
        (
            format!("{}:53", lab.real_addr_v4(i)),
            format!("[{}]:53", lab.real_addr_v6(i)),
        )
    };
    for i in 0..2 {
        let (r4, r6) = reals(i);
        lbd.wait_state(&v4, &r4, "up", PATIENCE).unwrap();
        lbd.wait_state(&v6, &r6, "up", PATIENCE).unwrap();
    }

    // Queries through both VIPs, 50 a second each, 1 s timeout.
    let timeout = Duration::from_secs(1);
    let start_clients = |vip: SocketAddr| {
        Clients::open_loop_with(lab.client_ns(0), 50, move || {
            query(vip, TEST_NAME, timeout).0
        })
        .unwrap()
    };
    let clients4 = start_clients(SocketAddr::from((VIP_V4, 53)));
    let clients6 = start_clients(SocketAddr::from((lb_lab::VIP_V6, 53)));
    let both_answer = |since: std::time::Instant| {
        clients4.wait_answer_after(since, PATIENCE).unwrap();
        clients6.wait_answer_after(since, PATIENCE).unwrap();
    };
    both_answer(std::time::Instant::now());

    // Kill real 0's dnsmasq: its checks get ICMP port unreachable.
    let killed = std::time::Instant::now();
    servers[0].stop();
    let (r4, r6) = reals(0);
    // Each measured from the kill (the second wait starts after the first).
    lbd.wait_state(&v4, &r4, "down", PATIENCE).unwrap();
    let out4 = killed.elapsed();
    lbd.wait_state(&v6, &r6, "down", PATIENCE).unwrap();
    let out6 = killed.elapsed();
    let down = std::time::Instant::now();
    assert_within(
        "killed dnsmasq out (IPv4)",
        out4,
        Duration::from_secs(3),
        &lbd.log(),
    );
    assert_within(
        "killed dnsmasq out (IPv6)",
        out6,
        Duration::from_secs(3),
        &lbd.log(),
    );

    // Two seconds with one resolver: every query answered.
    std::thread::sleep(Duration::from_secs(2));
    let restarted = std::time::Instant::now();
    servers[0] = Dnsmasq::start(&mut lab, 0).expect("restart dnsmasq");
    let answering = std::time::Instant::now();
    lbd.wait_state(&v4, &r4, "up", PATIENCE).unwrap();
    let back4 = answering.elapsed();
    lbd.wait_state(&v6, &r6, "up", PATIENCE).unwrap();
    let back6 = answering.elapsed();
    assert_within(
        "restarted dnsmasq back (IPv4)",
        back4,
        Duration::from_secs(2),
        &lbd.log(),
    );
    assert_within(
        "restarted dnsmasq back (IPv6)",
        back6,
        Duration::from_secs(2),
        &lbd.log(),
    );
    let up = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    both_answer(up);
    let end = std::time::Instant::now();
    println!(
        "out of rotation after {} ms (v4) / {} ms (v6); back {} ms (v4) / {} ms (v6) after \
         answering again",
        out4.as_millis(),
        out6.as_millis(),
        back4.as_millis(),
        back6.as_millis()
    );
    let records = [clients4.finish(), clients6.finish()];
    report_dns_queries(&records, [killed, down, restarted, up, end], &lbd);
    // lbctl health shows the check (with the real's own address) and why
    // the killed one went down.
    let health = lbd.lbctl_ok(&["health"]).unwrap();
    println!("{health}");
    let check = format!("check: dns AAAA {TEST_NAME} = {}", lab.real_addr_v6(1));
    assert!(
        health.contains("ICMP port unreachable") && health.contains(&check),
        "{health}"
    );
}

#[test]
fn a_hung_real_is_out_within_3s_under_load() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .build()
        .unwrap();
    // The default timers; an HTTP check (a SIGSTOPped nginx's kernel still
    // accepts connections, so a TCP check would pass).
    let text = LabDaemon::config_text(&lab, 0, &[])
        + &service_with_spares(&lab, "wlc", &[0, 1, 2], &[])
        + "\n[service.check]\nkind = \"http\"\n";
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
    for i in 0..3 {
        wait_state(&lbd, &real(&lab, i), "up", PATIENCE);
    }
    // Open-loop load, 100 new connections a second, each waiting up to 5 s.
    let vip = SocketAddr::from((VIP_V4, 80));
    let clients = Clients::open_loop(lab.client_ns(0), vip, 100, Duration::from_secs(5)).unwrap();
    clients
        .wait_answer_after(std::time::Instant::now(), PATIENCE)
        .unwrap();
    let loaded = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(1));

    let paused = std::time::Instant::now();
    lab.real_pause(0).unwrap();
    wait_state(&lbd, &real(&lab, 0), "down", PATIENCE);
    let out = paused.elapsed();
    let down = std::time::Instant::now();
    println!("hung real out of rotation after {} ms", out.as_millis());
    assert_within(
        "hung real out of rotation",
        out,
        Duration::from_secs(3),
        &lbd.log(),
    );
    // Three seconds without it, then it resumes and comes back.
    std::thread::sleep(Duration::from_secs(3));
    let resumed = std::time::Instant::now();
    lab.real_resume(0).unwrap();
    let back = wait_state(&lbd, &real(&lab, 0), "up", PATIENCE);
    println!("resumed real back after {} ms", back.as_millis());
    std::thread::sleep(Duration::from_secs(1));

    // Nothing answers at all: real 1's link cut (the director's ARP entry
    // for it stays, so probes and forwarded SYNs vanish).
    let cut = std::time::Instant::now();
    lb_lab::exec_ok(lab.real_ns(1), &["ip", "link", "set", "eth0", "down"]).unwrap();
    wait_state(&lbd, &real(&lab, 1), "down", PATIENCE);
    let cut_out = cut.elapsed();
    let cut_down = std::time::Instant::now();
    assert_within(
        "real with its link cut out of rotation",
        cut_out,
        Duration::from_secs(3),
        &lbd.log(),
    );
    std::thread::sleep(Duration::from_secs(2));
    let relinked = std::time::Instant::now();
    lb_lab::exec_ok(lab.real_ns(1), &["ip", "link", "set", "eth0", "up"]).unwrap();
    let back = wait_state(&lbd, &real(&lab, 1), "up", PATIENCE);
    println!(
        "real with its link back in rotation after {} ms",
        back.as_millis()
    );
    std::thread::sleep(Duration::from_secs(1));

    let records = clients.finish();
    let end = std::time::Instant::now();
    let before = lb_lab::requests::summarize(&records, loaded, paused);
    let hanging = lb_lab::requests::summarize(&records, paused, down);
    let without = lb_lab::requests::summarize(&records, down, resumed);
    let after = lb_lab::requests::summarize(&records, resumed, cut);
    let cutting = lb_lab::requests::summarize(&records, cut, cut_down);
    let without_link = lb_lab::requests::summarize(&records, cut_down, relinked);
    let relinking = lb_lab::requests::summarize(&records, relinked, end);
    println!("requests before the pause: {before}");
    println!("requests until it was out: {hanging}");
    println!("requests while it was out: {without}");
    println!("requests after it resumed: {after}");
    println!("requests until the cut real was out: {cutting}");
    println!("requests while it was out: {without_link}");
    println!("requests after its link came back: {relinking}");
    let log = lbd.log();
    assert!(before.clean(), "{before}\n{log}");
    assert!(
        without.clean(),
        "new connections avoid the hung real: {without}\n{log}"
    );
    assert!(
        without_link.clean(),
        "new connections avoid the cut real: {without_link}\n{log}"
    );
    assert!(
        log.contains("timed out after 800ms"),
        "out by timeouts:\n{log}"
    );
}

/// `start_down = true` (keepalived's `alpha`): a real added with `lbctl`
/// whose server does not answer yet takes no new connection (and no client
/// request fails) until `rise` checks pass; then it joins.
#[test]
fn with_start_down_a_new_real_takes_no_traffic_before_rise_passes() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .build()
        .unwrap();
    let text = LabDaemon::config_text(&lab, 0, &[])
        + &service_with_spares(&lab, "rr", &[0, 1], &[])
        + "\n[service.check]\nstart_down = true\n";
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
    // A fresh data path: these started down too, and rose.
    for i in 0..2 {
        wait_state(&lbd, &real(&lab, i), "up", PATIENCE);
    }
    // Real 2's server is not running yet when it is added.
    lab.real_stop(2).unwrap();
    let vip = SocketAddr::from((VIP_V4, 80));
    let clients = Clients::open_loop(lab.client_ns(0), vip, 100, Duration::from_secs(5)).unwrap();
    clients
        .wait_answer_after(std::time::Instant::now(), PATIENCE)
        .unwrap();
    let added = std::time::Instant::now();
    let out = lbd
        .lbctl_ok(&[
            "real",
            "add",
            &service_name(),
            &lab.real_addr_v4(2).to_string(),
        ])
        .unwrap();
    println!("{}", out.trim());
    let new = lbd.real(&service_name(), &real(&lab, 2)).unwrap();
    assert_eq!(new.state, "down", "{new:?}");
    assert!(
        new.health_reason
            .as_deref()
            .is_some_and(|r| r.contains("start_down")),
        "{new:?}"
    );
    // Two seconds of load (rr would give it a third): nothing for it.
    std::thread::sleep(Duration::from_secs(2));
    let waiting = lbd.real(&service_name(), &real(&lab, 2)).unwrap();
    let served: u64 = (0..2)
        .map(|i| {
            lbd.real_connections(&service_name(), &real(&lab, i))
                .unwrap()
        })
        .sum();
    println!(
        "added real, not answering, after 2 s: state {}, {} new connections (the others: {served} \
         in all)",
        waiting.state, waiting.connections
    );
    assert_eq!(waiting.state, "down");
    assert_eq!(
        waiting.connections, 0,
        "no traffic before rise: {waiting:?}"
    );
    // Its server starts: it joins after `rise` passing checks.
    let started = std::time::Instant::now();
    lab.real_start(2).unwrap();
    let up = wait_state(&lbd, &real(&lab, 2), "up", PATIENCE);
    lbd.wait_connections(&service_name(), &real(&lab, 2), 10, PATIENCE)
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let records = clients.finish();
    let end = std::time::Instant::now();
    let before = lb_lab::requests::summarize(&records, added, started);
    let after = lb_lab::requests::summarize(&records, started, end);
    println!(
        "up {} ms after its server started; requests while it waited: {before}; after: {after}",
        up.as_millis()
    );
    assert!(before.clean(), "{before}\n{}", lbd.log());
}

/// The data path's evidence: a hung real whose kernel drops SYNs (its
/// accept queue is full) makes its clients retransmit them; the director
/// sees the retransmissions and has the real probed at once instead of at
/// its next turn. With `interval = "20s"` and the pause right after a
/// probe, the first failed probe comes seconds after the pause, not 20 s.
#[test]
fn retransmitted_syns_have_a_hung_real_probed_at_once() {
    const INTERVAL: Duration = Duration::from_secs(20);
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(3)
        .build()
        .unwrap();
    // Real 0 listens with a tiny accept queue: paused, it is full after a
    // few connections and its kernel drops further SYNs.
    lab.real_stop(0).unwrap();
    lb_lab::exec_ok(lab.real_ns(0), &["sysctl", "-qw", "net.core.somaxconn=4"]).unwrap();
    lab.real_start(0).unwrap();
    let text = LabDaemon::config_text(&lab, 0, &[])
        + &service_with_spares(&lab, "rr", &[0, 1, 2], &[])
        + "\n[service.check]\nkind = \"http\"\ninterval = \"20s\"\n";
    let lbd = LabDaemon::start_with_config(&mut lab, 0, &text).expect("start lbd");
    let name = service_name();
    let hung = real(&lab, 0);
    let health = || -> anyhow::Result<lb_daemon::admin::RealHealthStatus> {
        let all: Vec<lb_daemon::admin::RealHealthStatus> =
            serde_json::from_value(lbd.lbctl_json(&["health"])?)?;
        all.into_iter()
            .find(|r| r.service == name && r.real == hung)
            .ok_or_else(|| anyhow::anyhow!("{hung} not in lbctl health"))
    };
    let vip = SocketAddr::from((VIP_V4, 80));
    let clients = Clients::open_loop(lab.client_ns(0), vip, 100, Duration::from_secs(5)).unwrap();
    clients
        .wait_answer_after(std::time::Instant::now(), PATIENCE)
        .unwrap();
    // Its first probe (somewhere in the first interval) passes: the next
    // one is due an interval later.
    lb_lab::wait_for(
        INTERVAL + PATIENCE,
        "the first probe of real 0",
        || match health()?.last_probe {
            Some(p) if p.starts_with("ok") => Ok(()),
            other => anyhow::bail!("last probe {other:?}"),
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    let paused = std::time::Instant::now();
    lab.real_pause(0).unwrap();
    let failed = lb_lab::wait_for(INTERVAL * 2, "a failed probe of the hung real", || {
        let h = health()?;
        match &h.last_probe {
            Some(p) if !p.starts_with("ok") => Ok((paused.elapsed(), h)),
            other => anyhow::bail!("last probe {other:?}"),
        }
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lbd.log()));
    let (first_failure, seen) = failed;
    let out = lbd
        .wait_state(&name, &hung, "down", INTERVAL * 2)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let out = out + first_failure;
    lab.real_resume(0).unwrap();
    let records = clients.finish();
    println!(
        "paused right after a probe (interval {} s): first failed probe after {} ms, out of \
         rotation after about {} ms; {} retransmitted SYNs and {} half-open connections seen \
         then, {} early probe(s)",
        INTERVAL.as_secs(),
        first_failure.as_millis(),
        out.as_millis(),
        seen.syn_retransmits,
        seen.inactive_connections,
        seen.early_probes
    );
    println!(
        "requests: {}",
        lb_lab::requests::summarize(&records, paused, std::time::Instant::now())
    );
    let report = lbd.lbctl_ok(&["health"]).unwrap();
    println!("{report}");
    assert!(seen.syn_retransmits > 0, "{seen:?}");
    assert!(seen.early_probes > 0, "{seen:?}");
    // Without the evidence the next probe is due 20 s after the last one;
    // with it, one comes about 1 s after the first SYN is dropped (the
    // client's retransmission timeout) plus the probe's timeout: expect
    // ~2-3 s, allow up to half the interval.
    assert!(
        first_failure < INTERVAL / 2,
        "first failed probe {} ms after the pause\n{}",
        first_failure.as_millis(),
        lbd.log()
    );
    assert!(
        report.contains("retransmitted SYNs"),
        "lbctl health shows the evidence:\n{report}"
    );
}
