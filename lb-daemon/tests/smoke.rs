mod common;
use common::{Harness, packets::*};
use lb_common::Action;
use lb_daemon::balancer::model::{Protocol, Scheduler};

#[test]
fn forwards_a_syn() {
    let mut h = Harness::new();
    let vip = "10.0.0.100".parse().unwrap();
    h.service(
        vip,
        80,
        Protocol::Tcp,
        Scheduler::RoundRobin,
        &[("10.0.1.1".parse().unwrap(), 1)],
    );
    let frame = tcp4(
        "10.1.0.1".parse().unwrap(),
        40000,
        "10.0.0.100".parse().unwrap(),
        80,
        TCP_SYN,
    );
    let (action, out) = h.run(&frame);
    assert_eq!(action, Action::Tx);
    assert_eq!(out, forwarded(&frame, common::real_mac(0)));
}
