//! Pinned maps survive the process that made them, and a new `Balancer`
//! adopts them: same service ids, same real slots, every flow on its real.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{Harness, TEST_IFINDEX, packets, service_spec};
use lb_common::Action;
use lb_daemon::{
    balancer::{
        Balancer,
        model::{Protocol, RealKey, Scheduler},
    },
    dataplane::{Dataplane, DataplaneError, DataplaneLimits, Origin, PinDir, xdp_object},
};

const LIMITS: DataplaneLimits = DataplaneLimits {
    conntrack_size: 4096,
    max_reals: 256,
    max_services: 16,
    sched_table_size: 1 << 18,
    lc_sets: 16,
};

/// A pin directory of this test, removed even when the test fails.
struct Pins(PinDir);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = self.0.remove_all();
    }
}

fn open(pins: &PinDir, limits: DataplaneLimits) -> Result<Dataplane, DataplaneError> {
    let object = xdp_object().expect("run with `cargo xtask test`");
    let mut dp = Dataplane::open_object(object, limits, Some(pins))?;
    dp.set_interfaces(&[(TEST_IFINDEX, packets::DIRECTOR_MAC)])
        .expect("interfaces");
    Ok(dp)
}

fn real(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10 + i))
}

#[test]
fn a_restarted_balancer_adopts_pinned_maps_and_keeps_every_flow() {
    let pins = Pins(PinDir::new(format!(
        "/sys/fs/bpf/lbtest-{}-adopt",
        std::process::id()
    )));
    let vip = Ipv4Addr::new(192, 0, 2, 1);
    let client = Ipv4Addr::new(198, 51, 100, 7);
    let reals = [(real(0), 1), (real(1), 1), (real(2), 1)];
    let spec = service_spec(
        IpAddr::V4(vip),
        80,
        Protocol::Tcp,
        Scheduler::RoundRobin,
        &reals,
    );

    // First daemon: 30 connections spread by round-robin.
    let dp = open(&pins.0, LIMITS).expect("open fresh");
    assert_eq!(dp.origin(), Origin::Fresh);
    let mut first = Harness {
        lb: Balancer::new(dp),
    };
    first.lb.apply(&spec).expect("apply");
    let ids_before: Vec<u32> = spec
        .reals
        .iter()
        .map(|r| {
            first
                .lb
                .real_id(&RealKey::new(spec.addr, r.socket()))
                .unwrap()
        })
        .collect();
    let mut placed = Vec::new();
    for port in 40_000..40_030 {
        let (action, out) = first.run(&packets::tcp4(client, port, vip, 80, packets::TCP_SYN));
        assert_eq!(action, Action::Tx);
        placed.push((port, Harness::real_of(&out)));
    }
    drop(first);

    // As if the first daemon were an lbd from before REAL_SYN_RETRANS: no
    // such pin. It is created next to the adopted maps (an upgrade needs
    // no teardown), and counts from then on.
    std::fs::remove_file(pins.0.map(lb_common::map_names::REAL_SYN_RETRANS)).expect("unpin");

    // Second daemon: adopts, re-applies the config with the reals in another
    // order (a different rr table), and every flow stays where it was.
    let dp = open(&pins.0, LIMITS).expect("open pinned");
    assert_eq!(dp.origin(), Origin::Adopted);
    let (lb, adopted) = Balancer::adopt(dp).expect("adopt");
    assert_eq!(
        (adopted.services, adopted.reals, adopted.retired),
        (1, 3, 0)
    );
    assert_eq!(adopted.macs.len(), 3, "MACs of the reals are recovered");
    let mut second = Harness { lb };
    let mut reordered = spec.clone();
    reordered.reals.reverse();
    second.lb.apply(&reordered).expect("re-apply");
    for (i, r) in spec.reals.iter().enumerate() {
        assert_eq!(
            second.lb.real_id(&RealKey::new(spec.addr, r.socket())),
            Some(ids_before[i])
        );
    }
    let (_, out) = second.run(&packets::tcp4(client, 40_000, vip, 80, packets::TCP_SYN));
    assert_eq!(Harness::real_of(&out), placed[0].1, "a retransmitted SYN");
    let retransmits: u64 = ids_before
        .iter()
        .map(|&id| second.lb.dataplane().real_syn_retransmits(id).unwrap())
        .sum();
    assert_eq!(retransmits, 1);
    for &(port, real) in &placed {
        let (action, out) = second.run(&packets::tcp4(client, port, vip, 80, packets::TCP_ACK));
        assert_eq!(action, Action::Tx);
        assert_eq!(Harness::real_of(&out), real, "flow from port {port} moved");
    }

    // A removed real stays retired across a restart while flows use it.
    let mut fewer = spec.clone();
    fewer.reals.pop();
    second.lb.apply(&fewer).expect("remove a real");
    drop(second);
    let (_, adopted) = Balancer::adopt(open(&pins.0, LIMITS).expect("open")).expect("adopt");
    assert_eq!((adopted.reals, adopted.retired), (2, 1));

    // Maps of another size are refused with a clear reason, not adopted.
    let bigger = DataplaneLimits {
        conntrack_size: 8192,
        ..LIMITS
    };
    let err = open(&pins.0, bigger).err().expect("mismatch refused");
    let text = err.to_string();
    assert!(
        text.contains("CONNTRACK") && text.contains("max_entries"),
        "{text}"
    );
}

/// `lbctl director drain` is recorded in the pinned settings: a restarted
/// lbd finds it there, whatever else it rewrites in them at start; `lbctl
/// director undrain` clears it.
#[test]
fn a_drain_survives_a_restart_until_undrained() {
    let pins = Pins(PinDir::new(format!(
        "/sys/fs/bpf/lbtest-{}-drain",
        std::process::id()
    )));
    let mut dp = open(&pins.0, LIMITS).unwrap();
    assert_eq!(dp.origin(), Origin::Fresh);
    assert!(!dp.director_drained().unwrap(), "a fresh data path");
    dp.set_director_drained(true).unwrap();
    dp.set_event_log(true).unwrap();
    drop(dp);

    // `open` rewrites the interfaces, as lbd does at every start.
    let mut dp = open(&pins.0, LIMITS).unwrap();
    assert_eq!(dp.origin(), Origin::Adopted);
    assert!(dp.director_drained().unwrap(), "kept across the restart");
    assert!(dp.event_log().unwrap(), "the other flags kept too");
    dp.set_director_drained(false).unwrap();
    drop(dp);

    let dp = open(&pins.0, LIMITS).unwrap();
    assert!(!dp.director_drained().unwrap(), "undrained");
}
