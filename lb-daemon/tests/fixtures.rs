//! Packet fixtures in the style of Katran's tester: a description, the input
//! frame, the expected verdict and reason, and the expected output frame,
//! each run through `BPF_PROG_TEST_RUN` against the real program.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{Harness, packets::*, real_mac};
use lb_common::{Action, Reason};
use lb_daemon::balancer::model::{Protocol, Scheduler};

const VIP4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const OTHER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// What must come out.
enum Output {
    /// The frame, untouched (pass or drop).
    Unchanged,
    /// The frame with the MACs rewritten for the i-th real.
    ForwardedTo(usize),
}

struct Fixture {
    description: &'static str,
    input: Vec<u8>,
    verdict: Action,
    reason: Reason,
    output: Output,
}

fn fixture(description: &'static str, input: Vec<u8>, reason: Reason, output: Output) -> Fixture {
    Fixture {
        description,
        input,
        verdict: reason.action(),
        reason,
        output,
    }
}

/// One real per service so the expected real is known without scheduling.
fn harness() -> Harness {
    let mut h = Harness::new();
    let real4: IpAddr = "10.0.1.1".parse().unwrap();
    let real6: IpAddr = "fd00::1:1".parse().unwrap();
    h.service(
        VIP4.into(),
        80,
        Protocol::Tcp,
        Scheduler::RoundRobin,
        &[(real4, 1)],
    );
    h.service(
        VIP4.into(),
        53,
        Protocol::Udp,
        Scheduler::Maglev,
        &[(real4, 1)],
    );
    h.service(
        VIP6.into(),
        80,
        Protocol::Tcp,
        Scheduler::WeightedRoundRobin,
        &[(real6, 1)],
    );
    h.service(
        VIP6.into(),
        53,
        Protocol::Udp,
        Scheduler::SourceHash,
        &[(real6, 1)],
    );
    h.service(
        VIP4.into(),
        443,
        Protocol::Tcp,
        Scheduler::LeastConnection,
        &[(real4, 1)],
    );
    h.service(
        VIP6.into(),
        443,
        Protocol::Tcp,
        Scheduler::WeightedLeastConnection,
        &[(real6, 1)],
    );
    // A service whose only real has weight 0: nothing may be scheduled.
    h.service(
        VIP4.into(),
        8080,
        Protocol::Tcp,
        Scheduler::RoundRobin,
        &[(real4, 0)],
    );
    h
}

fn v4(proto: u8, l4: &[u8], opts: &V4Opts) -> Vec<u8> {
    ethernet(0x0800, None, &ipv4(CLIENT4, VIP4, proto, l4, opts))
}

#[expect(
    clippy::too_many_lines,
    reason = "one table of fixtures reads best in one place"
)]
fn fixtures() -> Vec<Fixture> {
    use Output::{ForwardedTo, Unchanged};
    let syn80 = tcp(40000, 80, TCP_SYN, b"");
    let mut truncated_options = ipv4(
        CLIENT4,
        VIP4,
        6,
        &syn80,
        &V4Opts {
            options: vec![1; 4],
            ..V4Opts::default()
        },
    );
    truncated_options.truncate(22);
    vec![
        // Service traffic, every family, protocol and scheduler.
        fixture(
            "IPv4 TCP SYN to a rr service",
            tcp4(CLIENT4, 40000, VIP4, 80, TCP_SYN),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "IPv4 TCP ACK of that flow",
            tcp4(CLIENT4, 40000, VIP4, 80, TCP_ACK),
            Reason::Established,
            ForwardedTo(0),
        ),
        fixture(
            "IPv4 UDP to a maglev service",
            udp4(CLIENT4, 5353, VIP4, 53),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "IPv4 UDP, same flow again",
            udp4(CLIENT4, 5353, VIP4, 53),
            Reason::Established,
            ForwardedTo(0),
        ),
        fixture(
            "IPv6 TCP SYN to a wrr service",
            tcp6(CLIENT6, 40000, VIP6, 80, TCP_SYN),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "IPv6 UDP to an sh service",
            udp6(CLIENT6, 5353, VIP6, 53),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "IPv4 TCP to an lc service",
            tcp4(CLIENT4, 40001, VIP4, 443, TCP_SYN),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "IPv6 TCP to a wlc service",
            tcp6(CLIENT6, 40001, VIP6, 443, TCP_SYN),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "802.1Q-tagged IPv4 TCP (the tag stays)",
            ethernet(
                0x0800,
                Some(42),
                &ipv4(
                    CLIENT4,
                    VIP4,
                    6,
                    &tcp(40002, 80, TCP_SYN, b""),
                    &V4Opts::default(),
                ),
            ),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "802.1Q-tagged IPv6 UDP",
            ethernet(
                0x86dd,
                Some(7),
                &ipv6(CLIENT6, VIP6, 17, &udp(1000, 53, b"q")),
            ),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "IPv4 with options (IHL 6): ports found after the options",
            v4(
                6,
                &tcp(40003, 80, TCP_SYN, b""),
                &V4Opts {
                    options: vec![1, 1, 1, 0],
                    ..V4Opts::default()
                },
            ),
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        fixture(
            "IPv4 with Ethernet padding after the packet",
            {
                let mut f = tcp4(CLIENT4, 40004, VIP4, 80, TCP_SYN);
                f.extend_from_slice(&[0; 10]);
                f
            },
            Reason::NewFlow,
            ForwardedTo(0),
        ),
        // The host's own traffic passes untouched.
        fixture(
            "TCP to the VIP on a port without a service (SSH)",
            tcp4(CLIENT4, 40000, VIP4, 22, TCP_SYN),
            Reason::NoService,
            Unchanged,
        ),
        fixture(
            "TCP to another address",
            tcp4(CLIENT4, 40000, OTHER4, 80, TCP_SYN),
            Reason::NoService,
            Unchanged,
        ),
        fixture(
            "UDP to the VIP on a TCP-only port",
            udp4(CLIENT4, 40000, VIP4, 80),
            Reason::NoService,
            Unchanged,
        ),
        fixture(
            "ARP",
            ethernet(0x0806, None, &[0u8; 28]),
            Reason::NotIp,
            Unchanged,
        ),
        fixture(
            "ICMP echo to the VIP",
            v4(1, &[8, 0, 0, 0, 0, 0, 0, 0], &V4Opts::default()),
            Reason::NotTcpUdp,
            Unchanged,
        ),
        fixture(
            "VRRP (protocol 112)",
            v4(112, &[0x31, 1, 100, 1, 0, 100, 0, 0], &V4Opts::default()),
            Reason::NotTcpUdp,
            Unchanged,
        ),
        fixture(
            "ICMPv6 to the VIP",
            ethernet(
                0x86dd,
                None,
                &ipv6(CLIENT6, VIP6, 58, &[128, 0, 0, 0, 0, 0, 0, 0]),
            ),
            Reason::NotTcpUdp,
            Unchanged,
        ),
        fixture(
            "IPv6 hop-by-hop extension header",
            ethernet(
                0x86dd,
                None,
                &ipv6(CLIENT6, VIP6, 0, &[6, 0, 1, 4, 0, 0, 0, 0]),
            ),
            Reason::Ipv6ExtensionHeader,
            Unchanged,
        ),
        fixture(
            "IPv6 fragment header",
            ethernet(
                0x86dd,
                None,
                &ipv6(CLIENT6, VIP6, 44, &[6, 0, 0, 1, 0, 0, 0, 1]),
            ),
            Reason::Ipv6ExtensionHeader,
            Unchanged,
        ),
        // Fragments.
        fixture(
            "IPv4 first fragment (MF) to a VIP",
            v4(
                6,
                &syn80,
                &V4Opts {
                    frag: 0x2000,
                    ..V4Opts::default()
                },
            ),
            Reason::FragmentToVip,
            Unchanged,
        ),
        fixture(
            "IPv4 later fragment (offset 8) to a VIP",
            v4(
                6,
                b"payload!",
                &V4Opts {
                    frag: 1,
                    ..V4Opts::default()
                },
            ),
            Reason::FragmentToVip,
            Unchanged,
        ),
        fixture(
            "IPv4 fragment to another address",
            ethernet(
                0x0800,
                None,
                &ipv4(
                    CLIENT4,
                    OTHER4,
                    6,
                    &syn80,
                    &V4Opts {
                        frag: 0x2000,
                        ..V4Opts::default()
                    },
                ),
            ),
            Reason::FragmentNotVip,
            Unchanged,
        ),
        // No usable real.
        fixture(
            "Service whose only real has weight 0",
            tcp4(CLIENT4, 40000, VIP4, 8080, TCP_SYN),
            Reason::NoReal,
            Unchanged,
        ),
        // Malformed headers, at every boundary.
        // (Frames shorter than an Ethernet header cannot be fed to test runs,
        // the kernel refuses them with EINVAL, and no driver hands them to
        // XDP; the program still checks and counts them as short_ethernet.)
        fixture(
            "802.1Q tag cut short",
            ethernet(0x8100, None, &[0, 42]),
            Reason::ShortVlan,
            Unchanged,
        ),
        fixture(
            "IPv4 header cut at 19 bytes",
            ethernet(
                0x0800,
                None,
                &ipv4(CLIENT4, VIP4, 6, b"", &V4Opts::default())[..19],
            ),
            Reason::ShortIpv4,
            Unchanged,
        ),
        fixture(
            "IPv4 IHL 4",
            v4(
                6,
                &syn80,
                &V4Opts {
                    ihl: Some(4),
                    ..V4Opts::default()
                },
            ),
            Reason::BadIhl,
            Unchanged,
        ),
        fixture(
            "IPv4 IHL 0",
            v4(
                6,
                &syn80,
                &V4Opts {
                    ihl: Some(0),
                    ..V4Opts::default()
                },
            ),
            Reason::BadIhl,
            Unchanged,
        ),
        fixture(
            "IPv4 EtherType, version 5 header",
            {
                let mut f = v4(6, &syn80, &V4Opts::default());
                f[14] = 0x55;
                f
            },
            Reason::BadIpVersion,
            Unchanged,
        ),
        fixture(
            "IPv6 EtherType, version 4 header",
            {
                let mut f = tcp6(CLIENT6, 40000, VIP6, 80, TCP_SYN);
                f[14] = 0x40;
                f
            },
            Reason::BadIpVersion,
            Unchanged,
        ),
        fixture(
            "SYN to the VIP sent to another host's MAC (flooded by the switch)",
            {
                let mut f = tcp4(CLIENT4, 40001, VIP4, 80, TCP_SYN);
                f[..6].copy_from_slice(&[0x02, 0xdd, 0, 0, 0, 0x02]);
                f
            },
            Reason::OtherHost,
            Unchanged,
        ),
        fixture(
            "SYN to the VIP sent to the broadcast MAC",
            {
                let mut f = tcp4(CLIENT4, 40002, VIP4, 80, TCP_SYN);
                f[..6].copy_from_slice(&[0xff; 6]);
                f
            },
            Reason::OtherHost,
            Unchanged,
        ),
        fixture(
            "IPv4 options cut short (IHL 6, 22 bytes)",
            ethernet(0x0800, None, &truncated_options),
            Reason::BadIpv4Length,
            Unchanged,
        ),
        fixture(
            "IPv4 total length beyond the frame",
            v4(
                6,
                &syn80,
                &V4Opts {
                    total_len: Some(1500),
                    ..V4Opts::default()
                },
            ),
            Reason::BadIpv4Length,
            Unchanged,
        ),
        fixture(
            "IPv4 total length below the header",
            v4(
                6,
                &syn80,
                &V4Opts {
                    total_len: Some(19),
                    ..V4Opts::default()
                },
            ),
            Reason::BadIpv4Length,
            Unchanged,
        ),
        fixture(
            "TCP header cut at 19 bytes",
            v4(6, &syn80[..19], &V4Opts::default()),
            Reason::ShortL4,
            Unchanged,
        ),
        fixture(
            "TCP header of 4 bytes (ports only)",
            v4(6, &syn80[..4], &V4Opts::default()),
            Reason::ShortL4,
            Unchanged,
        ),
        fixture(
            "UDP header cut at 7 bytes",
            v4(17, &udp(1, 53, b"")[..7], &V4Opts::default()),
            Reason::ShortL4,
            Unchanged,
        ),
        fixture(
            "IPv6 header cut at 39 bytes",
            ethernet(0x86dd, None, &ipv6(CLIENT6, VIP6, 6, b"")[..39]),
            Reason::ShortIpv6,
            Unchanged,
        ),
        fixture(
            "IPv6 payload length beyond the frame",
            {
                let mut p = ipv6(CLIENT6, VIP6, 6, &syn80);
                p[4..6].copy_from_slice(&1000u16.to_be_bytes());
                ethernet(0x86dd, None, &p)
            },
            Reason::BadIpv6Length,
            Unchanged,
        ),
        fixture(
            "IPv6 TCP header cut at 10 bytes",
            ethernet(0x86dd, None, &ipv6(CLIENT6, VIP6, 6, &syn80[..10])),
            Reason::ShortL4,
            Unchanged,
        ),
    ]
}

#[test]
fn every_fixture_gets_its_verdict_reason_and_output() {
    let mut h = harness();
    let mut failures = Vec::new();
    for f in fixtures() {
        let before = h.count(f.reason);
        let (verdict, out) = h.run(&f.input);
        let expected = match f.output {
            Output::Unchanged => f.input.clone(),
            Output::ForwardedTo(i) => forwarded(&f.input, real_mac(i)),
        };
        if verdict != f.verdict {
            failures.push(format!(
                "{}: verdict {verdict:?}, expected {:?}",
                f.description, f.verdict
            ));
        } else if out != expected {
            failures.push(format!(
                "{}: output differs\n  got      {out:02x?}\n  expected {expected:02x?}",
                f.description
            ));
        }
        let counted = h.count(f.reason) - before;
        if counted != 1 {
            failures.push(format!(
                "{}: reason {} counted {counted} times, expected once",
                f.description,
                f.reason.name()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn nothing_is_ever_aborted_on_random_bytes() {
    // A cheap fuzz pass over prefixes and bit flips of valid frames: every
    // verdict must be pass, drop or tx (Harness::run panics on XDP_ABORTED).
    let mut h = harness();
    let seeds = [
        tcp4(CLIENT4, 40000, VIP4, 80, TCP_SYN),
        udp6(CLIENT6, 5353, VIP6, 53),
        ethernet(
            0x8100,
            Some(5),
            &ipv4(CLIENT4, VIP4, 17, &udp(9, 53, b"x"), &V4Opts::default()),
        ),
    ];
    let mut state: u32 = 0x1234_5678;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for seed in &seeds {
        for len in 14..=seed.len() {
            h.run(&seed[..len]);
        }
        for _ in 0..500 {
            let mut frame = seed.clone();
            let i = next() as usize % frame.len();
            frame[i] ^= 1 << (next() % 8);
            h.run(&frame);
        }
    }
}

#[test]
fn unconfigured_interface_passes() {
    let mut h = harness();
    h.lb.dataplane_mut()
        .set_interfaces(&[(9999, DIRECTOR_MAC)])
        .unwrap();
    let frame = tcp4(CLIENT4, 40000, VIP4, 80, TCP_SYN);
    let (verdict, out) = h.run(&frame);
    assert_eq!((verdict, out), (Action::Pass, frame));
    assert_eq!(h.count(Reason::UnknownInterface), 1);
}

/// The other director's MAC in the handover tests.
const OTHER_DIRECTOR: [u8; 6] = [0x02, 0xdd, 0, 0, 0, 0x02];

/// `frame` with destination := the other director, source := this one.
fn to_other_director(frame: &[u8]) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[..6].copy_from_slice(&OTHER_DIRECTOR);
    out[6..12].copy_from_slice(&DIRECTOR_MAC);
    out
}

#[test]
fn during_a_handover_unknown_mid_connection_packets_go_to_the_other_director() {
    let mut h = harness();
    h.lb.dataplane_mut()
        .set_handover(OTHER_DIRECTOR, u64::MAX)
        .unwrap();
    // The ACK of a connection the other director saw open.
    let ack = tcp4(CLIENT4, 41000, VIP4, 80, TCP_ACK);
    let (verdict, out) = h.run(&ack);
    assert_eq!((verdict, out), (Action::Tx, to_other_director(&ack)));
    assert_eq!(h.count(Reason::ToOtherDirector), 1);
    // Nothing was recorded: the next one goes there too.
    let (_, out) = h.run(&ack);
    assert_eq!(out, to_other_director(&ack));
    // A SYN is a new connection: scheduled here as always.
    let syn = tcp4(CLIENT4, 41001, VIP4, 80, TCP_SYN);
    let (verdict, out) = h.run(&syn);
    assert_eq!(verdict, Action::Tx);
    assert_eq!(Harness::real_of(&out), 0);
    assert_eq!(h.count(Reason::NewFlow), 1);
    // UDP has no connection to go by: scheduled here.
    let (_, out) = h.run(&udp4(CLIENT4, 41002, VIP4, 53));
    assert_eq!(Harness::real_of(&out), 0);
    // A known flow goes to its real.
    let (_, out) = h.run(&tcp4(CLIENT4, 41001, VIP4, 80, TCP_ACK));
    assert_eq!(Harness::real_of(&out), 0);
    assert_eq!(h.count(Reason::Established), 1);
    // A closing flow's 5-tuple may belong to a new connection the other
    // director saw open: its packets go there.
    h.run(&tcp4(CLIENT4, 41001, VIP4, 80, TCP_FIN | TCP_ACK));
    let late = tcp4(CLIENT4, 41001, VIP4, 80, TCP_ACK | TCP_PSH);
    let (_, out) = h.run(&late);
    assert_eq!(out, to_other_director(&late));
    assert_eq!(h.count(Reason::ToOtherDirector), 3);
}

#[test]
fn frames_from_the_other_director_are_never_sent_back() {
    let mut h = harness();
    h.lb.dataplane_mut()
        .set_handover(OTHER_DIRECTOR, u64::MAX)
        .unwrap();
    let mut bounced = tcp4(CLIENT4, 42000, VIP4, 80, TCP_ACK);
    bounced[6..12].copy_from_slice(&OTHER_DIRECTOR);
    let (verdict, out) = h.run(&bounced);
    assert_eq!(verdict, Action::Tx);
    assert_eq!(Harness::real_of(&out), 0, "scheduled here");
    assert_eq!(h.count(Reason::ToOtherDirector), 0);
}

#[test]
fn after_the_handover_window_unknown_packets_are_scheduled_here() {
    let mut h = harness();
    // A window that ended at boot.
    h.lb.dataplane_mut()
        .set_handover(OTHER_DIRECTOR, 1)
        .unwrap();
    let (verdict, out) = h.run(&tcp4(CLIENT4, 43000, VIP4, 80, TCP_ACK));
    assert_eq!(verdict, Action::Tx);
    assert_eq!(Harness::real_of(&out), 0);
    assert_eq!(h.count(Reason::ToOtherDirector), 0);
    // Interfaces set again keep the handover (and vice versa).
    h.lb.dataplane_mut()
        .set_handover(OTHER_DIRECTOR, u64::MAX)
        .unwrap();
    h.lb.dataplane_mut()
        .set_interfaces(&[(common::TEST_IFINDEX, DIRECTOR_MAC)])
        .unwrap();
    let ack = tcp4(CLIENT4, 43001, VIP4, 80, TCP_ACK);
    assert_eq!(h.run(&ack).1, to_other_director(&ack));
}
