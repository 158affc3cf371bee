//! The data path's rare-event log (aya-log): off by default, switched at
//! runtime, and each event arrives with the flow it is about.

mod common;

use std::{
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use common::{Harness, packets::*};
use lb_common::Action;
use lb_daemon::balancer::model::{Protocol, Scheduler};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);

/// Keeps every record it is given, as "LEVEL message".
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", record.level(), record.args()));
    }
    fn flush(&self) {}
}

impl Capture {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[test]
fn rare_events_are_logged_only_while_switched_on() {
    let mut h = Harness::new();
    // A service without reals: every new flow is dropped (`NoReal`).
    h.service(VIP.into(), 80, Protocol::Tcp, Scheduler::RoundRobin, &[]);
    let capture = Capture::default();
    let mut reader =
        h.lb.dataplane_mut()
            .event_reader(capture.clone())
            .expect("the event ring buffer");
    let syn = |port| tcp4(CLIENT, port, VIP, 80, TCP_SYN);
    // An ICMP error quoting a reply no flow sent.
    let reply = ipv4(
        VIP,
        CLIENT,
        6,
        &tcp(80, 40001, TCP_ACK, &[]),
        &V4Opts::default(),
    );
    let icmp = icmp4_error(
        ROUTER,
        VIP,
        (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED),
        mtu_field(1400),
        &reply,
    );

    // Off by default: the drops happen, nothing is logged.
    assert!(!h.lb.dataplane().event_log().unwrap());
    assert_eq!(h.run(&syn(5000)).0, Action::Drop);
    assert_eq!(h.run(&icmp).0, Action::Pass);
    reader.flush();
    assert_eq!(capture.take(), Vec::<String>::new());

    // Switched on: one line per event, naming the flow.
    h.lb.dataplane_mut().set_event_log(true).unwrap();
    assert_eq!(h.run(&syn(5001)).0, Action::Drop);
    assert_eq!(h.run(&icmp).0, Action::Pass);
    reader.flush();
    assert_eq!(
        capture.take(),
        [
            "WARN no usable real: dropped a new flow 192.0.2.7:5001 -> 10.0.0.100:80 (proto 6)",
            "INFO ICMP error for an unknown flow 192.0.2.7:40001 -> 10.0.0.100:80 (proto 6): passed",
        ]
    );

    // And off again, at once.
    h.lb.dataplane_mut().set_event_log(false).unwrap();
    assert_eq!(h.run(&syn(5002)).0, Action::Drop);
    reader.flush();
    assert_eq!(capture.take(), Vec::<String>::new());
}
