//! Flow sharing's reports (`SHARE_EVENTS`, `xdp-ebpf/src/share.rs`) through
//! the real program: one record for a new flow, one for a completed
//! handshake, one for a close, none for other packets, none at all with
//! sharing off; and a flow learned from another director counts on this
//! one only once it forwards a packet of it.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use aya::maps::{MapData, RingBuf};
use common::{Harness, packets::*};
use lb_common::{
    Action, FLOW_ACTIVE, FLOW_CLOSING, FLOW_F_LEARNED, FLOW_HALF_OPEN, FlowEvent, FlowKey,
    FlowValue,
};
use lb_daemon::balancer::{
    model::{Protocol, RealKey, Scheduler, ServiceAddr},
    monotonic_now_ns,
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn key(sport: u16, dport: u16, proto: u8) -> FlowKey {
    FlowKey {
        src: lb_common::addr_words_v4(CLIENT.octets()),
        dst: lb_common::addr_words_v4(VIP.octets()),
        src_port: sport.to_be(),
        dst_port: dport.to_be(),
        proto,
        family: 4,
        _pad: [0; 2],
    }
}

fn harness() -> (Harness, ServiceAddr, RingBuf<MapData>) {
    let mut h = Harness::new();
    let reals: Vec<(IpAddr, u32)> = vec![("10.0.1.1".parse().unwrap(), 1)];
    let web = h.service(VIP.into(), 80, Protocol::Tcp, Scheduler::RoundRobin, &reals);
    h.service(VIP.into(), 53, Protocol::Udp, Scheduler::Maglev, &reals);
    let ring = h.lb.dataplane_mut().share_events().expect("SHARE_EVENTS");
    (h, web, ring)
}

fn drain(ring: &mut RingBuf<MapData>) -> Vec<FlowEvent> {
    let mut events = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), size_of::<FlowEvent>(), "record size");
        // SAFETY: the data path writes whole `FlowEvent`s; read unaligned.
        events.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<FlowEvent>()) });
    }
    events
}

fn forward(h: &mut Harness, frame: &[u8]) {
    let (action, _) = h.run(frame);
    assert_eq!(action, Action::Tx, "forwarded");
}

/// Drives a TCP connection and a UDP flow; returns (state, key) of each
/// record after each step.
fn traffic(
    h: &mut Harness,
    ring: &mut RingBuf<MapData>,
) -> Vec<(&'static str, Vec<(u32, FlowKey)>)> {
    let mut steps = Vec::new();
    let mut step = |h: &mut Harness, name, frame: Vec<u8>| {
        forward(h, &frame);
        let got = drain(ring).iter().map(|e| (e.state, e.key)).collect();
        steps.push((name, got));
    };
    step(h, "syn", tcp4(CLIENT, 40000, VIP, 80, TCP_SYN));
    step(
        h,
        "retransmitted syn",
        tcp4(CLIENT, 40000, VIP, 80, TCP_SYN),
    );
    step(h, "handshake ack", tcp4(CLIENT, 40000, VIP, 80, TCP_ACK));
    step(h, "data", tcp4(CLIENT, 40000, VIP, 80, TCP_ACK | TCP_PSH));
    step(h, "fin", tcp4(CLIENT, 40000, VIP, 80, TCP_FIN | TCP_ACK));
    step(h, "last ack", tcp4(CLIENT, 40000, VIP, 80, TCP_ACK));
    step(h, "udp", udp4(CLIENT, 5353, VIP, 53));
    step(h, "udp again", udp4(CLIENT, 5353, VIP, 53));
    step(
        h,
        "mid-connection segment",
        tcp4(CLIENT, 40001, VIP, 80, TCP_ACK),
    );
    steps
}

#[test]
fn a_new_flow_a_completed_handshake_and_a_close_each_report_one_record() {
    let (mut h, _, mut ring) = harness();
    h.lb.dataplane_mut().set_share_flows(true).unwrap();
    let tcp = key(40000, 80, 6);
    let udp = key(5353, 53, 17);
    let expected: Vec<(&str, Vec<(u32, FlowKey)>)> = vec![
        ("syn", vec![(FLOW_HALF_OPEN, tcp)]),
        ("retransmitted syn", vec![]),
        ("handshake ack", vec![(FLOW_ACTIVE, tcp)]),
        ("data", vec![]),
        ("fin", vec![(FLOW_CLOSING, tcp)]),
        ("last ack", vec![]),
        ("udp", vec![(FLOW_ACTIVE, udp)]),
        ("udp again", vec![]),
        // A flow seen first mid-connection is scheduled as active.
        (
            "mid-connection segment",
            vec![(FLOW_ACTIVE, key(40001, 80, 6))],
        ),
    ];
    assert_eq!(traffic(&mut h, &mut ring), expected);
    assert_eq!(h.lb.dataplane().share_dropped().unwrap(), 0);
}

#[test]
fn sharing_off_reports_nothing() {
    let (mut h, _, mut ring) = harness();
    for (step, records) in traffic(&mut h, &mut ring) {
        assert!(records.is_empty(), "{step}: {records:?}");
    }
}

#[test]
fn a_learned_flow_counts_here_only_once_this_director_forwards_it() {
    let (mut h, web, mut ring) = harness();
    h.lb.dataplane_mut().set_share_flows(true).unwrap();
    let real =
        h.lb.real_id(&RealKey::new(web, "10.0.1.1:80".parse().unwrap()))
            .unwrap();
    let learned = |state| FlowValue {
        real,
        state,
        service: 0,
        flags: FLOW_F_LEARNED,
        last_seen_ns: monotonic_now_ns(),
    };
    let dp = h.lb.dataplane_mut();
    dp.insert_flow(&key(41000, 80, 6), &learned(FLOW_ACTIVE))
        .unwrap();
    dp.insert_half_open_flow(&key(41001, 80, 6), &learned(FLOW_HALF_OPEN))
        .unwrap();
    assert_eq!(dp.real_connections(real).unwrap(), 0);
    assert_eq!(dp.real_inactive(real).unwrap(), 0);

    // The router moves the established flow here: counted, no record.
    forward(&mut h, &tcp4(CLIENT, 41000, VIP, 80, TCP_ACK));
    let dp = h.lb.dataplane();
    let flow = dp.flow(&key(41000, 80, 6)).unwrap().unwrap();
    assert_eq!(flow.flags, 0, "now this director's own");
    assert_eq!(dp.real_connections(real).unwrap(), 1);
    assert!(drain(&mut ring).is_empty());

    // A learned half-open flow completes its handshake here: it counts
    // active (not inactive, which it never was here) and is reported.
    forward(&mut h, &tcp4(CLIENT, 41001, VIP, 80, TCP_ACK));
    let dp = h.lb.dataplane();
    assert_eq!(dp.real_connections(real).unwrap(), 2);
    assert_eq!(dp.real_inactive(real).unwrap(), 0);
    let records: Vec<u32> = drain(&mut ring).iter().map(|e| e.state).collect();
    assert_eq!(records, [FLOW_ACTIVE]);

    // Its close is this director's to report and uncount.
    forward(&mut h, &tcp4(CLIENT, 41000, VIP, 80, TCP_FIN | TCP_ACK));
    assert_eq!(h.lb.dataplane().real_connections(real).unwrap(), 1);
    let records: Vec<u32> = drain(&mut ring).iter().map(|e| e.state).collect();
    assert_eq!(records, [FLOW_CLOSING]);
}

/// Load (verifier) time of the program: `cargo test --release --test
/// share_events -- --ignored --nocapture`, with `LB_BENCH_OBJECT` naming
/// another build to compare.
#[test]
#[ignore = "a measurement, not a check"]
fn load_time() {
    let object = match std::env::var_os("LB_BENCH_OBJECT") {
        Some(path) => std::fs::read(path).expect("LB_BENCH_OBJECT"),
        None => lb_daemon::dataplane::xdp_object().unwrap().to_vec(),
    };
    let mut times = Vec::new();
    for _ in 0..7 {
        let started = std::time::Instant::now();
        let dp = lb_daemon::dataplane::Dataplane::load_object(
            &object,
            lb_daemon::dataplane::DataplaneLimits::default(),
        )
        .expect("load");
        times.push(started.elapsed().as_secs_f64());
        drop(dp);
    }
    times.sort_by(f64::total_cmp);
    println!("load times (s): {times:.3?}; median {:.3}", times[3]);
}

/// Received records through the real maps (`sync::learn`): a flow's SYN
/// and ACK records in one datagram leave one learned copy, in
/// `CONNTRACK`; a flow this director forwards is never overwritten.
#[test]
fn received_records_are_learned_and_never_overwrite_own_flows() {
    use lb_daemon::{
        dataplane::{Dataplane, DataplaneLimits, PinDir, xdp_object},
        sync::{FlowRecord, learn::LearnTables, table::PinnedTables},
    };
    let pins = PinDir::new(format!("/sys/fs/bpf/lb-learn-test-{}", std::process::id()));
    let limits = DataplaneLimits {
        conntrack_size: 4096,
        max_reals: 64,
        max_services: 8,
        sched_table_size: 1 << 16,
        lc_sets: 8,
    };
    let result = std::panic::catch_unwind(|| {
        let dp = Dataplane::open_object(xdp_object().unwrap(), limits, Some(&pins)).unwrap();
        let mut lb = lb_daemon::balancer::Balancer::new(dp);
        let reals: Vec<(IpAddr, u32)> = vec![("10.0.1.1".parse().unwrap(), 1)];
        lb.apply(&common::service_spec(
            VIP.into(),
            80,
            Protocol::Tcp,
            Scheduler::RoundRobin,
            &reals,
        ))
        .unwrap();
        let index = PinnedTables::open(&pins).unwrap().index().unwrap();
        let mut learn = LearnTables::open(&pins).unwrap();
        let record = |port: u16, half_open: bool, closing: bool| FlowRecord {
            client: std::net::SocketAddr::from((CLIENT, port)),
            vip: std::net::SocketAddr::from((VIP, 80)),
            protocol: 6,
            real: "10.0.1.1:80".parse().unwrap(),
            closing,
            half_open,
            idle_ms: 0,
        };
        let now = monotonic_now_ns();
        let applied = learn
            .apply(
                &index,
                &[record(42000, true, false), record(42000, false, false)],
                now,
            )
            .unwrap();
        assert_eq!(applied.written, 2);
        let dp = lb.dataplane();
        let main = dp.flow(&key(42000, 80, 6)).unwrap().expect("in CONNTRACK");
        assert_eq!((main.state, main.flags), (FLOW_ACTIVE, FLOW_F_LEARNED));
        assert_eq!(dp.half_open_flow(&key(42000, 80, 6)).unwrap(), None);
        learn
            .apply(&index, &[record(42000, false, true)], now)
            .unwrap();
        assert_eq!(
            lb.dataplane()
                .flow(&key(42000, 80, 6))
                .unwrap()
                .unwrap()
                .state,
            FLOW_CLOSING
        );
        // An own flow (no flag) stays as it is.
        let own = FlowValue {
            real: main.real,
            state: FLOW_ACTIVE,
            service: main.service,
            flags: 0,
            last_seen_ns: now,
        };
        lb.dataplane_mut()
            .insert_flow(&key(42001, 80, 6), &own)
            .unwrap();
        let applied = learn
            .apply(&index, &[record(42001, false, true)], now + 1)
            .unwrap();
        assert_eq!((applied.written, applied.kept), (0, 1));
        assert_eq!(lb.dataplane().flow(&key(42001, 80, 6)).unwrap(), Some(own));
    });
    let _ = pins.remove_all();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
