//! `lbd` and keepalived 2.2.7 as VRRP peers (vrid 51, 100 ms adverts, the
//! same VIP): each side elects, takes over and preempts as the other
//! expects, with multicast and with unicast peers.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    goal::assert_within,
    http_get,
    keepalived::{Keepalived, KeepalivedConfig},
    wait_until,
};

/// How long a test waits for a state: a deadline, not a measurement
/// (takeover times are printed and checked by `assert_within`).
const LIMIT: Duration = Duration::from_secs(20);

fn lab() -> Lab {
    Lab::builder()
        .clients(1)
        .directors(2)
        .reals(2)
        .build()
        .expect("build the lab")
}

fn keepalived_config(lab: &Lab, priority: u8, unicast_to: Option<usize>) -> KeepalivedConfig {
    let mut cfg = KeepalivedConfig::new(51, priority, &[IpAddr::V4(VIP_V4)]);
    cfg.advert_interval_cs = 10;
    if let Some(peer) = unicast_to {
        cfg.unicast_peers = vec![IpAddr::V4(lab.director_addr_v4(peer))];
    }
    cfg
}

/// lbd on `director` with `priority` (no sync: keepalived has none).
fn start_lbd(lab: &mut Lab, director: usize, priority: u8, unicast_to: Option<usize>) -> LabDaemon {
    let service = LabService::v4("maglev", &[(0, 1), (1, 1)]);
    let mut text = LabDaemon::config_text(lab, director, &[service])
        + &LabDaemon::vrrp_text(lab, priority, None);
    if let Some(peer) = unicast_to {
        let _ = writeln!(text, "unicast_peers = [\"{}\"]", lab.director_addr_v4(peer));
    }
    LabDaemon::start_with_config(lab, director, &text).expect("start lbd")
}

/// One request to the VIP is answered (a refusal comes at once; the
/// timeout only bounds a lost one).
fn served(lab: &Lab) -> bool {
    http_get(
        lab.client_ns(0),
        SocketAddr::from((VIP_V4, 80)),
        "/",
        Duration::from_secs(5),
    )
    .is_ok_and(|r| r.status == 200)
}

fn holds_vip(lbd: &LabDaemon) -> bool {
    lb_lab::exec_ok(
        lbd.namespace(),
        &["ip", "-4", "addr", "show", "dev", "eth0"],
    )
    .unwrap()
    .contains(&format!("{VIP_V4}/32"))
}

/// lbd (priority 150) is master over a keepalived backup; when lbd stops
/// gracefully keepalived takes over at once (priority 0), and the restarted
/// lbd preempts it back.
fn lbd_master_keepalived_backup(unicast: bool) {
    let mut lab = lab();
    let mut lbd = start_lbd(&mut lab, 0, 150, unicast.then_some(1));
    lbd.wait_vrrp("master", LIMIT).unwrap();
    let cfg = keepalived_config(&lab, 100, unicast.then_some(0));
    let ka = Keepalived::start(&mut lab, 1, &cfg).expect("start keepalived");
    ka.wait_state("BACKUP", LIMIT).unwrap();
    // keepalived accepts lbd's advertisements: it stays backup for several
    // master-down intervals.
    let settled = Instant::now();
    wait_until(LIMIT, "a second with keepalived as backup", || {
        assert_eq!(ka.state().as_deref(), Some("BACKUP"), "{}", ka.log());
        settled.elapsed() > Duration::from_secs(1)
    })
    .unwrap();
    assert!(!ka.holds_vip(&lab, IpAddr::V4(VIP_V4)).unwrap());
    assert!(holds_vip(&lbd));
    assert!(served(&lab), "clients are served through lbd");
    let v = lbd.vrrp().unwrap();
    assert_eq!(v.state, "master", "{v:?}");
    assert_eq!(
        v.advertisements_rejected, 0,
        "keepalived's adverts are valid: {v:?}"
    );

    let stopped = Instant::now();
    lbd.stop().unwrap();
    ka.wait_state("MASTER", LIMIT).unwrap();
    assert_within(
        "lbd stopped (priority 0): keepalived master",
        stopped.elapsed(),
        Duration::from_secs(1),
        &ka.log(),
    );
    assert!(ka.holds_vip(&lab, IpAddr::V4(VIP_V4)).unwrap());
    assert!(!holds_vip(&lbd), "a stopped lbd releases the VIP");

    let restarted = Instant::now();
    lbd.spawn().unwrap();
    lbd.wait_vrrp("master", LIMIT).unwrap();
    ka.wait_state("BACKUP", LIMIT).unwrap();
    println!(
        "lbd restarted: preempted keepalived after {} ms",
        restarted.elapsed().as_millis()
    );
    wait_until(LIMIT, "keepalived releases the VIP", || {
        !ka.holds_vip(&lab, IpAddr::V4(VIP_V4)).unwrap()
    })
    .unwrap();
    wait_until(LIMIT, "clients are served through lbd again", || {
        served(&lab)
    })
    .unwrap();
}

#[test]
fn lbd_master_with_keepalived_backup_multicast() {
    lbd_master_keepalived_backup(false);
}

#[test]
fn lbd_master_with_keepalived_backup_unicast() {
    lbd_master_keepalived_backup(true);
}

/// keepalived (priority 150) is master over an lbd backup; when
/// keepalived dies lbd takes over within the master-down interval and
/// serves the clients, and the restarted keepalived preempts it back.
#[test]
fn keepalived_master_with_lbd_backup() {
    let mut lab = lab();
    let cfg = keepalived_config(&lab, 150, None);
    let mut ka = Keepalived::start(&mut lab, 0, &cfg).expect("start keepalived");
    ka.wait_state("MASTER", LIMIT).unwrap();
    let lbd = start_lbd(&mut lab, 1, 100, None);
    lbd.wait_vrrp("backup", LIMIT).unwrap();
    let settled = Instant::now();
    wait_until(LIMIT, "a second with lbd as backup", || {
        let v = lbd.vrrp().unwrap();
        assert_eq!(v.state, "backup", "{v:?}\n{}", lbd.log());
        settled.elapsed() > Duration::from_secs(1)
    })
    .unwrap();
    let v = lbd.vrrp().unwrap();
    assert_eq!(
        v.master.as_deref(),
        Some(lab.director_addr_v4(0).to_string().as_str())
    );
    assert!(v.advertisements_received >= 5, "{v:?}");
    assert_eq!(v.advertisements_rejected, 0, "{v:?}");
    assert!(!holds_vip(&lbd));

    // The client talks to the VIP (keepalived's host has no service on it,
    // so this is refused) and so has a neighbour entry for it. A SIGKILLed
    // keepalived leaves the VIP on its interface: without the entry, the
    // client's next ARP request would get two answers.
    assert!(!served(&lab));
    let killed = Instant::now();
    ka.kill().unwrap();
    let took = lbd.wait_vrrp("master", LIMIT).unwrap();
    wait_until(LIMIT, "clients are served through lbd", || served(&lab)).unwrap();
    println!(
        "keepalived killed: clients served after {} ms",
        killed.elapsed().as_millis()
    );
    assert_within(
        "keepalived killed: lbd master",
        took,
        Duration::from_secs(1),
        &lbd.log(),
    );

    // keepalived, started again, preempts lbd (keepalived starts as
    // backup, hears a lower priority and takes over).
    let ka = Keepalived::start(&mut lab, 0, &cfg).expect("restart keepalived");
    ka.wait_state("MASTER", LIMIT).unwrap();
    lbd.wait_vrrp("backup", LIMIT).unwrap();
    assert!(!holds_vip(&lbd), "lbd released the VIP to keepalived");
    let v = lbd.vrrp().unwrap();
    println!(
        "keepalived back: lbd backup again; lbd sent {} and received {} advertisements",
        v.advertisements_sent, v.advertisements_received
    );
}

/// IPv6: keepalived's advertisements to `ff02::12` from its link-local
/// address (checksummed by the kernel) are accepted by lbd, which takes over
/// when keepalived dies.
#[test]
fn keepalived_master_with_lbd_backup_ipv6() {
    let mut lab = lab();
    let vip = IpAddr::V6(lb_lab::VIP_V6);
    let mut cfg = KeepalivedConfig::new(51, 150, &[vip]);
    cfg.advert_interval_cs = 10;
    let mut ka = Keepalived::start(&mut lab, 0, &cfg).expect("start keepalived");
    ka.wait_state("MASTER", LIMIT).unwrap();
    let service = LabService {
        ipv6: true,
        scheduler: "maglev",
        reals: vec![(0, 1), (1, 1)],
    };
    let text = LabDaemon::config_text(&lab, 1, &[service])
        + "\n[vrrp]\nvrid = 51\nfamily = \"ipv6\"\npriority = 100\n";
    let lbd = LabDaemon::start_with_config(&mut lab, 1, &text).expect("start lbd");
    lbd.wait_vrrp("backup", LIMIT).unwrap();
    wait_until(LIMIT, "lbd hears keepalived", || {
        let v = lbd.vrrp().unwrap();
        v.advertisements_received >= 5
            && v.master.as_deref().is_some_and(|m| m.starts_with("fe80:"))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{:?}\n{}", lbd.vrrp().unwrap(), lbd.log()));
    let v = lbd.vrrp().unwrap();
    assert_eq!(
        (v.state.as_str(), v.advertisements_rejected),
        ("backup", 0),
        "{v:?}"
    );

    ka.kill().unwrap();
    let took = lbd.wait_vrrp("master", LIMIT).unwrap();
    assert_within(
        "IPv6: keepalived killed, lbd master",
        took,
        Duration::from_secs(1),
        &lbd.log(),
    );
    // A keepalived with a lower priority accepts lbd's IPv6
    // advertisements: it stays backup.
    cfg.priority = 50;
    let ka = Keepalived::start(&mut lab, 0, &cfg).expect("restart keepalived");
    let settled = Instant::now();
    wait_until(LIMIT, "a second with keepalived as backup", || {
        assert_eq!(ka.state().as_deref(), Some("BACKUP"), "{}", ka.log());
        settled.elapsed() > Duration::from_secs(1)
    })
    .unwrap();
    assert_eq!(lbd.vrrp().unwrap().state, "master");
}
