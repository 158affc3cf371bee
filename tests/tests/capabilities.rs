//! The capabilities `lbd.service` gives lbd (`CapabilityBoundingSet=`),
//! found by testing: lbd run with exactly that set (through `setpriv`, as
//! root with every other capability dropped from the bounding set, as
//! systemd does) starts, becomes VRRP master, forwards, stops and, started
//! again, adopts its pinned data path; with any one of them missing it
//! fails. So the set in the unit is both sufficient and minimal.

use std::{collections::BTreeSet, time::Duration};

use lb_lab::{
    Lab, VIP_V4,
    daemon::{LabDaemon, LabService},
    http_get, wait_for,
};

/// The unit file the package installs.
const UNIT: &str = include_str!("../../packaging/lbd.service");

/// `CapabilityBoundingSet=` of the unit, as setpriv names them (`bpf`).
fn unit_capabilities() -> BTreeSet<String> {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet=");
    line.split_whitespace()
        .map(|c| {
            c.strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("{c}: not a CAP_ name"))
                .to_ascii_lowercase()
        })
        .collect()
}

/// `setpriv …` that runs what follows with only `caps` (root's permitted
/// set after exec is the bounding set when nothing is inheritable).
fn setpriv(caps: &BTreeSet<String>) -> Vec<String> {
    let mut bounding = "-all".to_owned();
    for cap in caps {
        bounding.push_str(",+");
        bounding.push_str(cap);
    }
    vec![
        "setpriv".into(),
        "--inh-caps=-all".into(),
        "--ambient-caps=-all".into(),
        format!("--bounding-set={bounding}"),
        "--".into(),
    ]
}

fn config(lab: &Lab) -> String {
    let service = LabService::v4("wlc", &[(0, 1), (1, 1)]);
    // With [vrrp]: the advertisements and gratuitous ARP need their sockets.
    LabDaemon::config_text(lab, 0, &[service]) + &LabDaemon::vrrp_text(lab, 150, None)
}

/// lbd becomes VRRP master, a request through the VIP is answered, and
/// lbd logged no error (a refused netlink or socket call is logged as one).
fn check_serves(lab: &Lab, lbd: &LabDaemon, limit: Duration) -> Result<(), String> {
    lbd.wait_vrrp("master", limit)
        .map_err(|_| "never VRRP master".to_owned())?;
    let vip = std::net::SocketAddr::from((VIP_V4, 80));
    wait_for(limit, "a request through the VIP", || {
        http_get(lab.client_ns(0), vip, "/", Duration::from_secs(2))
    })
    .map_err(|e| format!("no answer through the VIP: {e:#}"))?;
    let log = lbd.current_log();
    match log.lines().find(|l| l.contains("ERROR")) {
        Some(line) => Err(format!("logged {line}")),
        None => Ok(()),
    }
}

fn serves(lab: &Lab, lbd: &LabDaemon) {
    check_serves(lab, lbd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lbd.log()));
}

#[test]
fn lbd_runs_with_the_units_capabilities_and_with_none_fewer() {
    let caps = unit_capabilities();
    println!("CapabilityBoundingSet: {caps:?}");
    let mut lab = Lab::builder()
        .clients(1)
        .directors(1)
        .reals(2)
        .build()
        .expect("build the lab");
    let text = config(&lab);

    let mut lbd = LabDaemon::prepare(&mut lab, 0, &text).unwrap();
    lbd.set_wrapper(&setpriv(&caps));
    lbd.spawn()
        .expect("lbd starts with the unit's capabilities");
    serves(&lab, &lbd);
    // A restart (as after an upgrade) adopts the pinned data path.
    lbd.stop().unwrap();
    lbd.spawn()
        .expect("lbd restarts with the unit's capabilities");
    assert!(
        lbd.current_log().contains("adopted the pinned data path"),
        "{}",
        lbd.log()
    );
    serves(&lab, &lbd);
    lbd.stop().unwrap();
    lbd.teardown().unwrap();

    // One fewer, each in turn, from a fresh start and from an adoption.
    let mut unneeded = Vec::new();
    for missing in &caps {
        let fewer: BTreeSet<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let fresh = fails_with(&lab, &mut lbd, &fewer, false);
        let adopting = fails_with(&lab, &mut lbd, &fewer, true);
        println!(
            "without CAP_{}: fresh start {fresh:?}; adopting start {adopting:?}",
            missing.to_uppercase()
        );
        if fresh.is_none() && adopting.is_none() {
            unneeded.push(format!("CAP_{}", missing.to_uppercase()));
        }
    }
    assert!(
        unneeded.is_empty(),
        "lbd works without {unneeded:?}: drop them from packaging/lbd.service"
    );
}

/// Starts lbd with only `caps` (after leaving pins made with every
/// capability when `adopting`): how it failed, or None if it started,
/// became master and forwarded.
fn fails_with(
    lab: &Lab,
    lbd: &mut LabDaemon,
    caps: &BTreeSet<String>,
    adopting: bool,
) -> Option<String> {
    if adopting {
        lbd.set_wrapper::<&str>(&[]);
        lbd.spawn().expect("lbd starts with every capability");
        lbd.stop().unwrap();
    }
    lbd.set_wrapper(&setpriv(caps));
    let failure = match lbd.spawn() {
        Err(e) => Some(last_error(&format!("{e:#}")).trim().to_owned()),
        Ok(_) => {
            let failure = check_serves(lab, lbd, Duration::from_secs(5)).err();
            lbd.stop().unwrap();
            failure
        }
    };
    lbd.teardown().expect("lbd teardown (every capability)");
    failure
}

/// The last error line of a failed start's message (its reason).
fn last_error(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| l.contains("lbd:") || l.contains("ERROR"))
        .unwrap_or(text)
}
