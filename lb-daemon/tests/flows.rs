//! Connection-table behaviour through the real program: stickiness, port
//! reuse, weight 0, rerouting, ageing and least-connection count repair.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use common::{Harness, packets::*, service_spec};
use lb_common::{
    Action, FLOW_ACTIVE, FLOW_CLOSING, FLOW_HALF_OPEN, FlowKey, FlowValue, REAL_F_REROUTE,
    REAL_F_VALID, RealValue, Reason,
};
use lb_daemon::{
    ageing::Timeouts,
    balancer::{
        model::{Protocol, RealKey, Scheduler, ServiceAddr},
        monotonic_now_ns,
    },
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn reals(n: usize) -> Vec<(IpAddr, u32)> {
    (0..n)
        .map(|i| (IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8 + 1)), 1))
        .collect()
}

/// Sends one TCP segment and returns the real index it went to.
fn send(h: &mut Harness, sport: u16, flags: u8) -> usize {
    let (action, out) = h.run(&tcp4(CLIENT, sport, VIP, 80, flags));
    assert_eq!(
        action,
        Action::Tx,
        "segment from port {sport} flags {flags:#x} forwarded"
    );
    Harness::real_of(&out)
}

fn flow_key(sport: u16) -> FlowKey {
    FlowKey {
        src: lb_common::addr_words_v4(CLIENT.octets()),
        dst: lb_common::addr_words_v4(VIP.octets()),
        src_port: sport.to_be(),
        dst_port: 80u16.to_be(),
        proto: 6,
        family: 4,
        _pad: [0; 2],
    }
}

/// The flow of `sport` where the data path finds it: `CONNTRACK` (where
/// half-open flows are too while the CPU has `SYN_ALLOWANCE`), else
/// `HALF_OPEN`.
fn any_flow(h: &Harness, sport: u16) -> Option<FlowValue> {
    let dp = h.lb.dataplane();
    dp.flow(&flow_key(sport))
        .unwrap()
        .or_else(|| dp.half_open_flow(&flow_key(sport)).unwrap())
}

fn rr(h: &mut Harness, n: usize) -> ServiceAddr {
    h.service(
        VIP.into(),
        80,
        Protocol::Tcp,
        Scheduler::RoundRobin,
        &reals(n),
    )
}

#[test]
fn a_flow_sticks_to_its_real_and_retransmitted_syn_too() {
    let mut h = Harness::new();
    rr(&mut h, 3);
    let first = send(&mut h, 1000, TCP_SYN);
    assert_eq!(
        send(&mut h, 1000, TCP_SYN),
        first,
        "retransmitted SYN goes to the same real"
    );
    for _ in 0..5 {
        assert_eq!(send(&mut h, 1000, TCP_ACK | TCP_PSH), first);
    }
    assert_ne!(
        send(&mut h, 1001, TCP_SYN),
        first,
        "the next flow goes elsewhere (rr)"
    );
}

#[test]
fn syn_reusing_a_closed_flows_tuple_is_scheduled_again() {
    let mut h = Harness::new();
    rr(&mut h, 2);
    let first = send(&mut h, 2000, TCP_SYN);
    send(&mut h, 2000, TCP_ACK);
    send(&mut h, 2000, TCP_FIN | TCP_ACK);
    let flow =
        h.lb.dataplane()
            .flow(&flow_key(2000))
            .unwrap()
            .expect("flow kept while closing");
    assert_eq!(flow.state, FLOW_CLOSING);
    let before = h.count(Reason::NewFlow);
    // Port reuse: a new connection on the same 5-tuple, scheduled anew
    // (rr moves on to the other real), half-open until its ACK.
    let second = send(&mut h, 2000, TCP_SYN);
    assert_eq!(h.count(Reason::NewFlow), before + 1);
    assert_ne!(second, first);
    assert_eq!(any_flow(&h, 2000).unwrap().state, FLOW_HALF_OPEN);
    assert_eq!(send(&mut h, 2000, TCP_ACK), second);
    let flow = h.lb.dataplane().flow(&flow_key(2000)).unwrap().unwrap();
    assert_eq!(flow.state, FLOW_ACTIVE);
    // Segments that close the flow but are not SYNs keep going to its real.
    assert_eq!(send(&mut h, 2000, TCP_RST), second);
    assert_eq!(send(&mut h, 2000, TCP_ACK), second);
}

#[test]
fn active_counts_follow_opens_and_closes() {
    let mut h = Harness::new();
    let svc = rr(&mut h, 1);
    let real =
        h.lb.real_id(&RealKey::new(svc, "10.0.1.1:80".parse().unwrap()))
            .unwrap();
    let counts = |h: &Harness| {
        let dp = h.lb.dataplane();
        (
            dp.real_connections(real).unwrap(),
            dp.real_inactive(real).unwrap(),
        )
    };
    for port in 0..5 {
        send(&mut h, 3000 + port, TCP_SYN);
    }
    assert_eq!(counts(&h), (0, 5), "SYNs are half-open: inactive");
    for port in 0..5 {
        send(&mut h, 3000 + port, TCP_ACK);
    }
    assert_eq!(counts(&h), (5, 0), "their ACKs make them active");
    send(&mut h, 3000, TCP_FIN | TCP_ACK);
    send(&mut h, 3000, TCP_FIN | TCP_ACK);
    send(&mut h, 3001, TCP_RST);
    assert_eq!(counts(&h), (3, 0), "a second FIN is not counted twice");
    send(&mut h, 3100, TCP_SYN);
    assert_eq!(
        h.lb.dataplane().real_load(real).unwrap(),
        3 * 256 + 1,
        "least-connection load: active x 256 + inactive"
    );
}

#[test]
fn half_open_flows_close_and_are_rerouted_with_their_count() {
    let mut h = Harness::new();
    let vip: IpAddr = VIP.into();
    let mut spec = service_spec(vip, 80, Protocol::Tcp, Scheduler::RoundRobin, &reals(2));
    h.lb.apply(&spec).unwrap();
    let slots: Vec<u32> = ["10.0.1.1:80", "10.0.1.2:80"]
        .iter()
        .map(|r| {
            h.lb.real_id(&RealKey::new(spec.addr, r.parse().unwrap()))
                .unwrap()
        })
        .collect();
    let inactive = |h: &Harness| -> Vec<u64> {
        slots
            .iter()
            .map(|s| h.lb.dataplane().real_inactive(*s).unwrap())
            .collect()
    };
    assert_eq!(send(&mut h, 3100, TCP_SYN), 0);
    assert_eq!(send(&mut h, 3101, TCP_SYN), 1);
    assert_eq!(inactive(&h), [1, 1]);
    // RST from a half-open flow: closing, still forwarded, no longer counted.
    assert_eq!(send(&mut h, 3101, TCP_RST), 1);
    assert_eq!(any_flow(&h, 3101).unwrap().state, FLOW_CLOSING);
    assert_eq!(inactive(&h), [1, 0]);
    assert_eq!(send(&mut h, 3101, TCP_ACK), 1, "a closing flow stays put");
    assert_eq!(inactive(&h), [1, 0]);
    // Its real goes down: the half-open flow leaves its count and moves.
    spec.reals[0].reroute = true;
    spec.reals[0].weight = 0;
    h.lb.apply(&spec).unwrap();
    let before = h.count(Reason::Rescheduled);
    assert_eq!(send(&mut h, 3100, TCP_SYN), 1, "retransmitted SYN moves");
    assert_eq!(h.count(Reason::Rescheduled), before + 1);
    assert_eq!(inactive(&h), [0, 1]);
    assert_eq!(send(&mut h, 3100, TCP_ACK), 1);
    assert_eq!(inactive(&h), [0, 0]);
    assert_eq!(h.lb.dataplane().real_connections(slots[1]).unwrap(), 1);
    assert_eq!(any_flow(&h, 3100).unwrap().state, FLOW_ACTIVE);
    assert_eq!(
        h.lb.dataplane().half_open_flow(&flow_key(3100)).unwrap(),
        None
    );
}

#[test]
fn weight_zero_keeps_existing_flows_but_gets_no_new_ones() {
    let mut h = Harness::new();
    let vip: IpAddr = VIP.into();
    let mut spec = service_spec(vip, 80, Protocol::Tcp, Scheduler::RoundRobin, &reals(2));
    h.lb.apply(&spec).unwrap();
    let on_zero = (0..2)
        .map(|p| (p, send(&mut h, 4000 + p, TCP_SYN)))
        .find(|&(_, r)| r == 0)
        .unwrap()
        .0;
    spec.reals[0].weight = 0;
    h.lb.apply(&spec).unwrap();
    for p in 100..120 {
        assert_eq!(
            send(&mut h, 4000 + p, TCP_SYN),
            1,
            "new flows avoid the weight-0 real"
        );
    }
    assert_eq!(
        send(&mut h, 4000 + on_zero, TCP_ACK),
        0,
        "its established flow stays"
    );
}

#[test]
fn removing_a_real_keeps_its_flows_until_they_age_out() {
    let mut h = Harness::new();
    let vip: IpAddr = VIP.into();
    let mut spec = service_spec(vip, 80, Protocol::Tcp, Scheduler::RoundRobin, &reals(2));
    h.lb.apply(&spec).unwrap();
    send(&mut h, 5000, TCP_SYN); // real 0
    send(&mut h, 5001, TCP_SYN); // real 1
    spec.reals.remove(1);
    h.lb.apply(&spec).unwrap();
    assert_eq!(
        send(&mut h, 5001, TCP_ACK),
        1,
        "the removed real finishes its flow"
    );
    assert_eq!(
        send(&mut h, 5002, TCP_SYN),
        0,
        "new flows go to the remaining real"
    );
    // Once the flow is gone the slot is released and no longer forwards.
    let report =
        h.lb.age(
            monotonic_now_ns() + 3600 * 1_000_000_000,
            &Timeouts::default(),
        )
        .unwrap();
    // 5001 is established; 5000 and 5002 never finished their handshake
    // (half-open flows in the connection table: the CPU had allowance).
    assert_eq!((report.expired, report.half_open_expired), (3, 0));
    assert_eq!(report.released_reals, 1);
}

/// A SYN is not looked up before its service (while the CPU has SYN
/// allowance); one whose service is gone is, so a retransmitted SYN of a
/// flow of a removed service still reaches the flow's real. A SYN of no
/// flow and no service is the host's.
#[test]
fn a_syn_of_a_flow_whose_service_is_gone_still_reaches_its_real() {
    let mut h = Harness::new();
    let svc = rr(&mut h, 2);
    let half_open = send(&mut h, 5200, TCP_SYN);
    let established = send(&mut h, 5201, TCP_SYN);
    send(&mut h, 5201, TCP_ACK);
    h.lb.remove(&svc).unwrap();
    assert_eq!(send(&mut h, 5200, TCP_SYN), half_open, "retransmitted SYN");
    assert_eq!(send(&mut h, 5200, TCP_ACK), half_open, "its handshake ends");
    assert_eq!(send(&mut h, 5201, TCP_SYN), established, "late SYN");
    let before = h.count(Reason::NoService);
    let (action, _) = h.run(&tcp4(CLIENT, 5202, VIP, 80, TCP_SYN));
    assert_eq!(action, Action::Pass);
    assert_eq!(h.count(Reason::NoService), before + 1);
}

/// A SYN that went to `HALF_OPEN` (no allowance left: a flood) keeps its
/// real when it is sent again after allowance came back: while `HALF_OPEN`
/// holds a half-open flow of this director's own, SYNs go there. Once an
/// ageing pass finds none, SYNs go into `CONNTRACK` again.
#[test]
fn a_syn_retransmitted_after_the_allowance_came_back_keeps_its_real() {
    let mut h = Harness::new();
    rr(&mut h, 3);
    h.lb.dataplane_mut().set_syn_allowance(0).unwrap();
    let first = send(&mut h, 5300, TCP_SYN);
    h.lb.dataplane_mut().set_syn_allowance(1000).unwrap();
    assert_eq!(send(&mut h, 5300, TCP_SYN), first, "retransmitted SYN");
    let second = send(&mut h, 5301, TCP_SYN);
    assert!(
        h.lb.dataplane().flow(&flow_key(5301)).unwrap().is_none(),
        "a new flow's SYN goes to HALF_OPEN too while 5300 waits there"
    );
    assert_eq!(send(&mut h, 5300, TCP_ACK), first, "ACK");
    assert_eq!(send(&mut h, 5301, TCP_ACK), second);
    // Both completed: an ageing pass finds no half-open flow left there.
    h.lb.age(monotonic_now_ns(), &Timeouts::default()).unwrap();
    send(&mut h, 5302, TCP_SYN);
    assert_eq!(any_flow(&h, 5302).map(|f| f.state), Some(FLOW_HALF_OPEN));
    assert!(
        h.lb.dataplane().flow(&flow_key(5302)).unwrap().is_some(),
        "into CONNTRACK again"
    );
}

/// A flow whose real is gone and that cannot be scheduled again (no real
/// left) stops counting once, not at every packet: its counts and the SYN
/// allowance it gave back stay right.
#[test]
fn a_failed_reschedule_uncounts_a_flow_once() {
    let mut h = Harness::new();
    let vip: IpAddr = VIP.into();
    let mut spec = service_spec(vip, 80, Protocol::Tcp, Scheduler::RoundRobin, &reals(1));
    h.lb.apply(&spec).unwrap();
    let slot =
        h.lb.real_id(&RealKey::new(spec.addr, "10.0.1.1:80".parse().unwrap()))
            .unwrap();
    send(&mut h, 5400, TCP_SYN);
    send(&mut h, 5401, TCP_SYN);
    send(&mut h, 5401, TCP_ACK);
    let allowance = h.lb.dataplane().syn_allowance().unwrap();
    spec.reals[0].reroute = true;
    spec.reals[0].weight = 0;
    h.lb.apply(&spec).unwrap();
    for _ in 0..5 {
        for port in [5400, 5401] {
            let (action, _) = h.run(&tcp4(CLIENT, port, VIP, 80, TCP_ACK));
            assert_ne!(action, Action::Tx, "no real to send it to");
        }
    }
    let dp = h.lb.dataplane();
    assert_eq!(
        dp.syn_allowance().unwrap(),
        allowance + 1,
        "given back once"
    );
    assert_eq!(
        (
            dp.real_connections(slot).unwrap(),
            dp.real_inactive(slot).unwrap()
        ),
        (0, 0)
    );
}

#[test]
fn a_removed_services_id_is_not_reused_while_its_flows_live() {
    let mut h = Harness::new();
    let svc = rr(&mut h, 1);
    let old_id = h.lb.service_value(&svc).unwrap().id;
    send(&mut h, 5100, TCP_SYN);
    h.lb.remove(&svc).unwrap();
    // A new service while the old one's flow still counts under its id.
    let other = h.service(
        VIP.into(),
        81,
        Protocol::Tcp,
        Scheduler::RoundRobin,
        &reals(1),
    );
    let new_id = h.lb.service_value(&other).unwrap().id;
    assert_ne!(new_id, old_id, "the id still carries a live flow");
    let stats = |h: &Harness, id| h.lb.dataplane().service_stats(id).unwrap().packets;
    let before = stats(&h, new_id);
    send(&mut h, 5100, TCP_ACK);
    assert_eq!(
        stats(&h, new_id),
        before,
        "the old flow's packets are not the new service's"
    );
    // Once the flow has aged out, the id is free again.
    h.lb.age(
        monotonic_now_ns() + 3600 * 1_000_000_000,
        &Timeouts::default(),
    )
    .unwrap();
    h.lb.remove(&other).unwrap();
    h.lb.age(monotonic_now_ns(), &Timeouts::default()).unwrap();
    let again = rr(&mut h, 1);
    assert_eq!(h.lb.service_value(&again).unwrap().id, old_id.min(new_id));
}

#[test]
fn flows_of_a_rerouted_real_move_on_their_next_packet() {
    let mut h = Harness::new();
    let vip: IpAddr = VIP.into();
    let mut spec = service_spec(vip, 80, Protocol::Tcp, Scheduler::RoundRobin, &reals(2));
    h.lb.apply(&spec).unwrap();
    send(&mut h, 6000, TCP_SYN); // real 0
    // What the health checker does for a dead real: out of the table, and
    // its flows marked for rerouting.
    spec.reals[0].reroute = true;
    h.lb.apply(&spec).unwrap();
    let slot =
        h.lb.real_id(&RealKey::new(spec.addr, "10.0.1.1:80".parse().unwrap()))
            .unwrap();
    let value: RealValue = h.lb.dataplane().real(slot).unwrap();
    assert_eq!(value.flags, REAL_F_VALID | REAL_F_REROUTE);
    let before = h.count(Reason::Rescheduled);
    assert_eq!(send(&mut h, 6000, TCP_ACK), 1);
    assert_eq!(h.count(Reason::Rescheduled), before + 1);
    assert_eq!(send(&mut h, 6000, TCP_ACK), 1, "and stays on its new real");
    assert_eq!(h.lb.dataplane().real_connections(slot).unwrap(), 0);
    assert_eq!(h.lb.dataplane().real_inactive(slot).unwrap(), 0);
}

#[test]
fn the_fallback_real_takes_new_flows_only_when_no_real_can() {
    let mut h = Harness::new();
    let vip: IpAddr = VIP.into();
    let mut spec = service_spec(vip, 80, Protocol::Tcp, Scheduler::RoundRobin, &reals(2));
    let mut sorry = spec.reals[1].clone();
    sorry.addr = IpAddr::from([10, 0, 9, 9]);
    sorry.mac = Some(common::real_mac(9));
    spec.fallback = Some(sorry);
    h.lb.apply(&spec).unwrap();
    for port in 6100..6110 {
        assert_ne!(send(&mut h, port, TCP_SYN), 9, "reals up: not the fallback");
    }
    for real in &mut spec.reals {
        real.weight = 0;
    }
    h.lb.apply(&spec).unwrap();
    assert_eq!(send(&mut h, 6200, TCP_SYN), 9, "no real: the fallback");
    assert_eq!(send(&mut h, 6200, TCP_ACK), 9, "and the flow sticks to it");
    spec.reals[0].weight = 1;
    h.lb.apply(&spec).unwrap();
    assert_eq!(
        send(&mut h, 6201, TCP_SYN),
        0,
        "a real is back: new flows go to it"
    );
}

#[test]
fn ageing_expires_idle_flows_by_state_and_repairs_counts() {
    let mut h = Harness::new();
    let svc = rr(&mut h, 1);
    let real =
        h.lb.real_id(&RealKey::new(svc, "10.0.1.1:80".parse().unwrap()))
            .unwrap();
    let now = monotonic_now_ns();
    let t = Timeouts {
        tcp: Duration::from_secs(100),
        tcp_syn: Duration::from_secs(5),
        tcp_closing: Duration::from_secs(10),
        udp: Duration::from_secs(50),
    };
    let secs = |s: u64| s * 1_000_000_000;
    let flows = [
        (7000, FLOW_ACTIVE, secs(99)),  // live
        (7001, FLOW_ACTIVE, secs(101)), // idle too long
        (7002, FLOW_CLOSING, secs(9)),  // closing, live
        (7003, FLOW_CLOSING, secs(11)), // closing, expired
    ];
    for (port, state, age) in flows {
        let value = FlowValue {
            real,
            state,
            service: 0,
            flags: 0,
            last_seen_ns: now - age,
        };
        h.lb.dataplane_mut()
            .insert_flow(&flow_key(port), &value)
            .unwrap();
    }
    for (port, age) in [(7004, secs(4)), (7005, secs(6))] {
        let value = FlowValue {
            real,
            state: FLOW_HALF_OPEN,
            service: 0,
            flags: 0,
            last_seen_ns: now - age,
        };
        h.lb.dataplane_mut()
            .insert_half_open_flow(&flow_key(port), &value)
            .unwrap();
    }
    // The counts drifted (e.g. LRU evictions): ageing repairs them.
    h.lb.dataplane_mut().set_real_connections(real, 42).unwrap();
    h.lb.dataplane_mut().set_real_inactive(real, 4242).unwrap();
    let report = h.lb.age(now, &t).unwrap();
    assert_eq!((report.flows_seen, report.expired), (4, 2));
    assert_eq!((report.half_open_seen, report.half_open_expired), (2, 1));
    let dp = h.lb.dataplane();
    assert!(dp.half_open_flow(&flow_key(7004)).unwrap().is_some());
    assert!(dp.half_open_flow(&flow_key(7005)).unwrap().is_none());
    assert_eq!(
        dp.real_inactive(real).unwrap(),
        1,
        "the live half-open flow"
    );
    assert!(h.lb.dataplane().flow(&flow_key(7000)).unwrap().is_some());
    assert!(h.lb.dataplane().flow(&flow_key(7001)).unwrap().is_none());
    assert!(h.lb.dataplane().flow(&flow_key(7002)).unwrap().is_some());
    assert!(h.lb.dataplane().flow(&flow_key(7003)).unwrap().is_none());
    assert_eq!(
        h.lb.dataplane().real_connections(real).unwrap(),
        1,
        "only the live active flow counts"
    );
}

#[test]
fn the_data_path_stamps_flows_with_the_clock_ageing_uses() {
    let mut h = Harness::new();
    rr(&mut h, 1);
    let before = monotonic_now_ns();
    send(&mut h, 8000, TCP_SYN);
    let after = monotonic_now_ns();
    let flow = any_flow(&h, 8000).unwrap();
    // The coarse clock may lag by a tick (a few ms).
    assert!(
        flow.last_seen_ns <= after && flow.last_seen_ns + 50_000_000 >= before,
        "{before} <= {} <= {after}",
        flow.last_seen_ns
    );
}

/// The batched walk returns every entry exactly once, across many batches
/// (and through hash buckets that hold several entries).
#[test]
fn reading_the_whole_table_returns_every_flow_once() {
    let mut h = Harness::new();
    let n = 20_000u32;
    for i in 0..n {
        let mut key = flow_key((i % 60_000) as u16);
        key.src[0] = i; // distinct clients
        let value = FlowValue {
            real: i % 7,
            state: FLOW_ACTIVE,
            service: 1,
            flags: 0,
            last_seen_ns: u64::from(i),
        };
        h.lb.dataplane_mut().insert_flow(&key, &value).unwrap();
    }
    let flows = h.lb.dataplane().flows().unwrap();
    assert_eq!(flows.len(), n as usize);
    let mut seen: Vec<u32> = flows
        .iter()
        .map(|(k, v)| {
            assert_eq!(
                v.last_seen_ns,
                u64::from(k.src[0]),
                "value belongs to its key"
            );
            k.src[0]
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), n as usize, "no flow twice, none missing");
}

/// Runs the calling thread on `cpu` from now on (test runs execute on the
/// CPU of the thread that asks for them).
fn move_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; the call only affects this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set),
            0,
            "move to CPU {cpu}"
        );
    }
}

/// The LRU lists of `CONNTRACK` and `HALF_OPEN` are per CPU: a flow lives in
/// the list of the CPU that inserted it, but in one hash table, so its
/// packets arriving on another CPU (RSS after a rehash, a flow written by
/// userspace sync) still find it: the SYN on one CPU, its ACK, data, FIN on
/// the other, a retransmitted SYN on the first, and counts that follow.
#[test]
fn a_flow_sticks_when_its_packets_arrive_on_different_cpus() {
    let cpus = aya::util::online_cpus().expect("online CPUs");
    if cpus.len() < 2 {
        eprintln!("one online CPU: nothing to test");
        return;
    }
    let (a, b) = (cpus[0] as usize, cpus[1] as usize);
    let mut h = Harness::new();
    let svc = rr(&mut h, 3);
    // The first flows' SYNs go into CONNTRACK (the CPUs have allowance),
    // the others' into HALF_OPEN (none left: a flood).
    let allowance = h.lb.dataplane().syn_allowance().unwrap();
    for (n, port) in (7000..7040u16).enumerate() {
        if port == 7020 {
            // Each SYN spent allowance on one CPU, its ACK gave it back on
            // the other: the sum over the CPUs is what it was.
            assert_eq!(h.lb.dataplane().syn_allowance().unwrap(), allowance);
            h.lb.dataplane_mut().set_syn_allowance(0).unwrap();
        }
        let (first, second) = if n % 2 == 0 { (a, b) } else { (b, a) };
        move_to_cpu(first);
        let real = send(&mut h, port, TCP_SYN);
        move_to_cpu(second);
        assert_eq!(send(&mut h, port, TCP_SYN), real, "retransmitted SYN");
        let in_main = h.lb.dataplane().flow(&flow_key(port)).unwrap().is_some();
        assert_eq!(in_main, port < 7020, "port {port}: in CONNTRACK");
        assert_eq!(any_flow(&h, port).map(|f| f.state), Some(FLOW_HALF_OPEN));
        assert_eq!(send(&mut h, port, TCP_ACK), real, "ACK on the other CPU");
        move_to_cpu(first);
        for _ in 0..3 {
            assert_eq!(send(&mut h, port, TCP_ACK | TCP_PSH), real);
        }
        let flow = h.lb.dataplane().flow(&flow_key(port)).unwrap().unwrap();
        assert_eq!(flow.state, FLOW_ACTIVE);
        assert_eq!(
            h.lb.dataplane().half_open_flow(&flow_key(port)).unwrap(),
            None,
            "left HALF_OPEN from the other CPU"
        );
        move_to_cpu(second);
        assert_eq!(send(&mut h, port, TCP_FIN | TCP_ACK), real);
        move_to_cpu(first);
        assert_eq!(send(&mut h, port, TCP_ACK), real, "closing flow sticks");
    }
    // A flow written by userspace (sync) from one CPU, used from the other.
    move_to_cpu(a);
    let real_id =
        h.lb.real_id(&RealKey::new(svc, "10.0.1.2:80".parse().unwrap()))
            .unwrap();
    let value = FlowValue {
        real: real_id,
        state: FLOW_ACTIVE,
        service: h.lb.service_value(&svc).unwrap().id,
        flags: 0,
        last_seen_ns: monotonic_now_ns(),
    };
    h.lb.dataplane_mut()
        .insert_flow(&flow_key(7100), &value)
        .unwrap();
    move_to_cpu(b);
    assert_eq!(send(&mut h, 7100, TCP_ACK), 1, "synced flow found");
    let dp = h.lb.dataplane();
    let open: u64 = (0..3)
        .map(|i| {
            let real =
                h.lb.real_id(&RealKey::new(
                    svc,
                    format!("10.0.1.{}:80", i + 1).parse().unwrap(),
                ))
                .unwrap();
            dp.real_connections(real).unwrap() + dp.real_inactive(real).unwrap()
        })
        .sum();
    assert_eq!(open, 0, "every flow closed: no active or inactive left");
    move_to_cpu(a);
}
