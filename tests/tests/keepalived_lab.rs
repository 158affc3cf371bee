//! The keepalived harness on its own: two keepalived on two directors elect
//! a master, fail over when it stops or crashes, and preempt back.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use lb_lab::{
    Lab, VIP_V4,
    keepalived::{Keepalived, KeepalivedConfig, describe_transitions, master_down_interval},
    wait_until,
};

const VRID: u8 = 51;
const INTERVAL_CS: u16 = 10;
/// Generous: elections here take a few hundred milliseconds.
const TIMEOUT: Duration = Duration::from_secs(10);

fn config(priority: u8) -> KeepalivedConfig {
    let mut cfg = KeepalivedConfig::new(VRID, priority, &[IpAddr::V4(VIP_V4)]);
    cfg.advert_interval_cs = INTERVAL_CS;
    cfg
}

fn holds(ka: &Keepalived, lab: &Lab) -> bool {
    ka.holds_vip(lab, IpAddr::V4(VIP_V4))
        .unwrap_or_else(|e| panic!("ip address show: {e:#}"))
}

/// Waits for `want`, panicking with both logs on timeout.
fn expect_state(ka: &Keepalived, other: &Keepalived, want: &str) {
    if let Err(e) = ka.wait_state(want, TIMEOUT) {
        panic!(
            "{} not {want}: {e:#}\nthe other keepalived ({}) logged:\n{}",
            ka.namespace(),
            other.namespace(),
            other.log()
        );
    }
}

/// The time from `since` until `ka` last changed state.
fn since(ka: &Keepalived, since: Instant) -> Duration {
    let (at, _) = ka.last_transition().expect("a state change");
    at.saturating_duration_since(since)
}

#[test]
fn keepalived_pair_fails_over_and_preempts_back() {
    let mut lab = Lab::builder()
        .clients(1)
        .directors(2)
        .reals(1)
        .build()
        .expect("build the lab");

    let begin = Instant::now();
    let mut high = Keepalived::start(&mut lab, 0, &config(150)).expect("start keepalived on d0");
    let low = Keepalived::start(&mut lab, 1, &config(100)).expect("start keepalived on d1");
    expect_state(&high, &low, "MASTER");
    expect_state(&low, &high, "BACKUP");
    println!(
        "election: d0 {}| d1 {}",
        describe_transitions(&high.transitions(), begin),
        describe_transitions(&low.transitions(), begin)
    );
    // The VIP is added before the MASTER line is written.
    assert!(holds(&high, &lab), "d0 is master without the VIP");
    assert!(!holds(&low, &lab), "the backup d1 holds the VIP");
    assert!(
        !low.transitions().iter().any(|(_, s)| s == "MASTER"),
        "d1 was master at some point: {}",
        describe_transitions(&low.transitions(), begin)
    );

    // A clean stop: d0 sends priority 0, so d1 takes over after its skew
    // time rather than the whole master-down interval.
    let stopped = Instant::now();
    high.stop().expect("stop keepalived on d0");
    let stop_took = stopped.elapsed();
    expect_state(&low, &high, "MASTER");
    let takeover = since(&low, stopped);
    println!(
        "takeover after SIGTERM of the master: {takeover:.1?} (d0 took {stop_took:.1?} to exit; \
         master-down interval would be {:.1?})",
        master_down_interval(100, INTERVAL_CS)
    );
    assert_eq!(high.state().as_deref(), Some("STOP"));
    // The priority-0 advert caused the takeover (keepalived says so), so it
    // did not wait out the master-down timer; the time is printed above and
    // only bounded widely here (a busy machine delays our view of it).
    assert!(
        low.log()
            .contains("Backup received priority 0 advertisement"),
        "d1 took over without hearing priority 0:\n{}",
        low.log()
    );
    assert!(
        takeover < lb_lab::goal::bound(master_down_interval(100, INTERVAL_CS)),
        "a priority-0 advert should beat the master-down timer: {takeover:?}"
    );
    wait_until(TIMEOUT, "d1 to hold the VIP", || holds(&low, &lab)).unwrap();
    assert!(!holds(&high, &lab), "the stopped d0 kept the VIP");

    // d0 comes back with the higher priority: it starts as backup, ignores
    // d1's lower-priority adverts, and takes over once its down timer runs
    // out.
    drop(high);
    let restarted = Instant::now();
    let mut high = Keepalived::start(&mut lab, 0, &config(150)).expect("restart keepalived on d0");
    expect_state(&high, &low, "MASTER");
    expect_state(&low, &high, "BACKUP");
    println!(
        "preemption by the restarted d0: MASTER after {:.1?}, d1 BACKUP after {:.1?} \
         (d0's master-down interval {:.1?})",
        since(&high, restarted),
        since(&low, restarted),
        master_down_interval(150, INTERVAL_CS)
    );
    assert!(holds(&high, &lab), "d0 is master again without the VIP");
    wait_until(TIMEOUT, "d1 to release the VIP", || !holds(&low, &lab)).unwrap();

    // A crash: no priority 0, so d1 waits out the master-down interval
    // (measured from d0's last advert, which is up to one interval before
    // the kill).
    let killed = Instant::now();
    high.kill().expect("kill keepalived on d0");
    expect_state(&low, &high, "MASTER");
    let takeover = since(&low, killed);
    println!(
        "takeover after SIGKILL of the master: {takeover:.1?} (master-down interval {:.1?})",
        master_down_interval(100, INTERVAL_CS)
    );
    assert!(
        takeover + Duration::from_millis(INTERVAL_CS.into()) * 10
            >= master_down_interval(100, INTERVAL_CS),
        "d1 took over before the master-down interval: {takeover:?}"
    );
    wait_until(TIMEOUT, "d1 to hold the VIP", || holds(&low, &lab)).unwrap();
}
