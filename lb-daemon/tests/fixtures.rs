//! Packet fixtures in the style of Katran's tester: a description, the input
//! frame, the expected verdict and reason, and the expected output frame,
//! each run through `BPF_PROG_TEST_RUN` against the real program.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::{Harness, packets::*, real_mac};
use lb_common::{Action, FLOW_ACTIVE, FLOW_CLOSING, FLOW_HALF_OPEN, FlowKey, Reason};
use lb_daemon::ageing::Timeouts;
use lb_daemon::balancer::model::{Protocol, RealKey, Scheduler, ServiceAddr};
use lb_daemon::balancer::monotonic_now_ns;

const VIP4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const OTHER4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// A router on the way back to the client, which sends ICMP errors.
const ROUTER4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);

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
    let mut all = vec![
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
    ];
    // After the service traffic above: its flows are what the errors quote.
    all.extend(icmp_fixtures());
    all
}

/// A packet a real sent in a flow of the harness (`VIP:vip_port ->
/// client:client_port`), DF set and full-sized: ICMP errors quote a prefix.
fn reply4(proto: u8, vip_port: u16, client_port: u16) -> Vec<u8> {
    reply4_with(proto, vip_port, client_port, &V4Opts::default())
}

fn reply4_with(proto: u8, vip_port: u16, client_port: u16, opts: &V4Opts) -> Vec<u8> {
    let payload = [0x55; 1400];
    let l4 = if proto == 6 {
        tcp(vip_port, client_port, TCP_ACK, &payload)
    } else {
        udp(vip_port, client_port, &payload)
    };
    let opts = V4Opts {
        frag: opts.frag | 0x4000,
        ..opts.clone()
    };
    ipv4(VIP4, CLIENT4, proto, &l4, &opts)
}

fn reply6(proto: u8, vip_port: u16, client_port: u16) -> Vec<u8> {
    let payload = [0x55; 1400];
    let l4 = if proto == 6 {
        tcp(vip_port, client_port, TCP_ACK, &payload)
    } else {
        udp(vip_port, client_port, &payload)
    };
    ipv6(VIP6, CLIENT6, proto, &l4)
}

/// IPv4 header + 8 bytes: the least an `ICMPv4` error quotes (RFC 792).
const QUOTE4: usize = 28;
/// What a Linux router quotes: the error fills 576 bytes.
const QUOTE4_LINUX: usize = 576 - 28;
/// What fits in an `ICMPv6` error of 1280 bytes (RFC 4443).
const QUOTE6: usize = 1280 - 48;

/// ICMP errors to a VIP go to the real of the flow they quote (path MTU
/// discovery); without such a flow, or cut short, they pass to the kernel.
#[expect(
    clippy::too_many_lines,
    reason = "one table of fixtures reads best in one place"
)]
fn icmp_fixtures() -> Vec<Fixture> {
    use Output::{ForwardedTo, Unchanged};
    let frag_needed = (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED);
    let too_big = (ICMPV6_PACKET_TOO_BIG, 0);
    let mtu1400 = mtu_field(1400);
    let mtu1280 = mtu_field(1280);
    // The flows the service fixtures created.
    let tcp80 = reply4(6, 80, 40000);
    let tcp80_v6 = reply6(6, 80, 40000);
    let to_vip = |original: &[u8]| icmp4_error(ROUTER4, VIP4, frag_needed, mtu1400, original);
    let to_vip6 = |original: &[u8]| icmp6_error(ROUTER6, VIP6, too_big, mtu1280, original);
    let options = V4Opts {
        options: vec![1, 1, 1, 0],
        ..V4Opts::default()
    };
    vec![
        // Errors about a flow: the whole frame goes to the flow's real.
        fixture(
            "ICMPv4 fragmentation needed (MTU 1400) about an IPv4 TCP flow",
            to_vip(&tcp80[..QUOTE4]),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv4 fragmentation needed sent to another host's MAC (flooded)",
            {
                let mut f = to_vip(&tcp80[..QUOTE4]);
                f[..6].copy_from_slice(&[0x02, 0xdd, 0, 0, 0, 0x02]);
                f
            },
            Reason::OtherHost,
            Unchanged,
        ),
        fixture(
            "ICMPv4 fragmentation needed quoting 548 bytes, as Linux routers do",
            to_vip(&tcp80[..QUOTE4_LINUX]),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv6 packet too big (MTU 1280) about an IPv6 TCP flow",
            to_vip6(&tcp80_v6[..QUOTE6]),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv4 time exceeded about an IPv4 UDP flow",
            icmp4_error(
                ROUTER4,
                VIP4,
                (ICMP_TIME_EXCEEDED, 0),
                [0; 4],
                &reply4(17, 53, 5353)[..QUOTE4],
            ),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv6 time exceeded about an IPv6 UDP flow",
            icmp6_error(
                ROUTER6,
                VIP6,
                (ICMPV6_TIME_EXCEEDED, 0),
                [0; 4],
                &reply6(17, 53, 5353)[..48],
            ),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv4 host unreachable about an IPv4 TCP flow",
            icmp4_error(
                ROUTER4,
                VIP4,
                (ICMP_DEST_UNREACH, ICMP_HOST_UNREACH),
                [0; 4],
                &tcp80[..QUOTE4],
            ),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv6 port unreachable about an IPv6 UDP flow",
            icmp6_error(
                ROUTER6,
                VIP6,
                (ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH),
                [0; 4],
                &reply6(17, 53, 5353)[..48],
            ),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv4 error about the lc service's flow (VIP:443)",
            to_vip(&reply4(6, 443, 40001)[..QUOTE4]),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "ICMPv4 error quoting an IPv4 header with options (IHL 6)",
            to_vip(&reply4_with(6, 80, 40000, &options)[..QUOTE4 + 4]),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        fixture(
            "802.1Q-tagged ICMPv4 fragmentation needed (the tag stays)",
            ethernet(
                0x0800,
                Some(42),
                &ipv4(
                    ROUTER4,
                    VIP4,
                    1,
                    &icmp4(
                        ICMP_DEST_UNREACH,
                        ICMP_FRAG_NEEDED,
                        mtu1400,
                        &tcp80[..QUOTE4],
                    ),
                    &V4Opts::default(),
                ),
            ),
            Reason::IcmpErrorForwarded,
            ForwardedTo(0),
        ),
        // Errors about nothing the balancer forwards: the kernel's.
        fixture(
            "ICMPv4 fragmentation needed for a flow that does not exist",
            to_vip(&reply4(6, 80, 40999)[..QUOTE4]),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv6 packet too big for a flow that does not exist",
            to_vip6(&reply6(6, 80, 40999)[..QUOTE6]),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting another service's port (VIP:443 -> the :80 flow's client port)",
            to_vip(&reply4(6, 443, 40000)[..QUOTE4]),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting UDP where the flow is TCP",
            to_vip(&reply4(17, 80, 40000)[..QUOTE4]),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting the host's own SSH (VIP:22)",
            to_vip(&reply4(6, 22, 40000)[..QUOTE4]),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting a packet from another source than the VIP",
            to_vip(&ipv4(
                OTHER4,
                CLIENT4,
                6,
                &tcp(80, 40000, TCP_ACK, b""),
                &V4Opts::default(),
            )),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting the host's echo reply",
            to_vip(&ipv4(
                VIP4,
                CLIENT4,
                1,
                &icmp4(ICMP_ECHO_REPLY, 0, [0; 4], b""),
                &V4Opts::default(),
            )),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting a later fragment (no ports)",
            to_vip(
                &reply4_with(
                    6,
                    80,
                    40000,
                    &V4Opts {
                        frag: 0x00b9,
                        ..V4Opts::default()
                    },
                )[..QUOTE4],
            ),
            Reason::IcmpErrorNoFlow,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error to the director's own address (not a VIP)",
            icmp4_error(ROUTER4, OTHER4, frag_needed, mtu1400, &tcp80[..QUOTE4]),
            Reason::NotTcpUdp,
            Unchanged,
        ),
        fixture(
            "ICMPv4 echo reply to the VIP",
            v4(
                1,
                &icmp4(ICMP_ECHO_REPLY, 0, [0; 4], b"ping"),
                &V4Opts::default(),
            ),
            Reason::NotTcpUdp,
            Unchanged,
        ),
        fixture(
            "ICMPv6 echo request to the VIP",
            ethernet(
                0x86dd,
                None,
                &ipv6(
                    CLIENT6,
                    VIP6,
                    58,
                    &icmp6(CLIENT6, VIP6, 128, 0, [0; 4], b"ping"),
                ),
            ),
            Reason::NotTcpUdp,
            Unchanged,
        ),
        // Cut short or malformed: passed and counted, never a crash.
        fixture(
            "ICMPv4 header cut at 4 bytes",
            v4(
                1,
                &[ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0, 0],
                &V4Opts::default(),
            ),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv6 header cut at 7 bytes",
            ethernet(
                0x86dd,
                None,
                &ipv6(
                    ROUTER6,
                    VIP6,
                    58,
                    &[ICMPV6_PACKET_TOO_BIG, 0, 0, 0, 0, 0, 5],
                ),
            ),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting nothing",
            to_vip(b""),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting 19 bytes of IPv4 header",
            to_vip(&tcp80[..19]),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting the IPv4 header and 3 bytes of ports",
            to_vip(&tcp80[..23]),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting IHL 6 with the ports cut off by the options",
            to_vip(&reply4_with(6, 80, 40000, &options)[..26]),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting an IPv4 header with IHL 4",
            to_vip(
                &reply4_with(
                    6,
                    80,
                    40000,
                    &V4Opts {
                        ihl: Some(4),
                        ..V4Opts::default()
                    },
                )[..QUOTE4],
            ),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv4 error quoting an IPv6 packet",
            to_vip(&tcp80_v6[..48]),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv6 error quoting 39 bytes of IPv6 header",
            to_vip6(&tcp80_v6[..39]),
            Reason::IcmpErrorShort,
            Unchanged,
        ),
        fixture(
            "ICMPv6 error quoting the IPv6 header and 2 bytes of ports",
            to_vip6(&tcp80_v6[..42]),
            Reason::IcmpErrorShort,
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

/// The connection-table key of `CLIENT4:sport` -> `VIP4:80` over TCP.
fn flow_key4(sport: u16) -> FlowKey {
    FlowKey {
        src: lb_common::addr_words_v4(CLIENT4.octets()),
        dst: lb_common::addr_words_v4(VIP4.octets()),
        src_port: sport.to_be(),
        dst_port: 80u16.to_be(),
        proto: 6,
        family: 4,
        _pad: [0; 2],
    }
}

/// Which table holds a flow, and in what state. A half-open flow is in
/// `CONNTRACK` while the CPU has `SYN_ALLOWANCE`, in `HALF_OPEN` without
/// (a SYN flood); `HalfOpen*` name the state it has in either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// [`FLOW_HALF_OPEN`].
    HalfOpen,
    /// [`FLOW_CLOSING`] after FIN/RST before the handshake ended: in
    /// `HALF_OPEN` when the SYN went there.
    HalfOpenClosing,
    /// `CONNTRACK`, [`FLOW_ACTIVE`].
    Established,
    /// `CONNTRACK`, [`FLOW_CLOSING`].
    Closing,
}

/// A step of a TCP flow's life: the client's segment, the reason and
/// output, then where the flow is and the real's (active, inactive) counts.
struct Step {
    description: &'static str,
    sport: u16,
    flags: u8,
    reason: Reason,
    held: Held,
    counts: (u64, u64),
}

fn step(
    description: &'static str,
    sport: u16,
    flags: u8,
    reason: Reason,
    held: Held,
    counts: (u64, u64),
) -> Step {
    Step {
        description,
        sport,
        flags,
        reason,
        held,
        counts,
    }
}

#[test]
fn half_open_flows_through_their_states() {
    use Held::{Closing, Established, HalfOpen, HalfOpenClosing};
    use Reason::{Established as Hit, NewFlow};
    #[rustfmt::skip]
    let steps = [
        step("SYN: a half-open flow, counted inactive", 41000, TCP_SYN, NewFlow, HalfOpen, (0, 1)),
        step("retransmitted SYN: still half-open, same real", 41000, TCP_SYN, Hit, HalfOpen, (0, 1)),
        step("SYN with ECN flags: still half-open", 41000, TCP_SYN | 0xc0, Hit, HalfOpen, (0, 1)),
        step("the handshake's ACK: established, counted active", 41000, TCP_ACK, Hit, Established, (1, 0)),
        step("data", 41000, TCP_ACK | TCP_PSH, Hit, Established, (1, 0)),
        step("a late retransmitted SYN changes nothing", 41000, TCP_SYN, Hit, Established, (1, 0)),
        step("FIN: closing", 41000, TCP_FIN | TCP_ACK, Hit, Closing, (0, 0)),
        step("second flow: SYN", 41001, TCP_SYN, NewFlow, HalfOpen, (0, 1)),
        step("RST from half-open: closing where it is", 41001, TCP_RST, Hit, HalfOpenClosing, (0, 0)),
        step("its last ACK still reaches the real", 41001, TCP_ACK, Hit, HalfOpenClosing, (0, 0)),
        step("a SYN reusing the tuple: a new half-open flow", 41001, TCP_SYN, NewFlow, HalfOpen, (0, 1)),
        step("FIN from half-open: closing", 41001, TCP_FIN, Hit, HalfOpenClosing, (0, 0)),
        step("third flow: SYN", 41002, TCP_SYN, NewFlow, HalfOpen, (0, 1)),
        step("ACK", 41002, TCP_ACK, Hit, Established, (1, 0)),
        step("RST of an established flow", 41002, TCP_RST | TCP_ACK, Hit, Closing, (0, 0)),
        step("a SYN reusing a closed tuple: half-open again", 41002, TCP_SYN, NewFlow, HalfOpen, (0, 1)),
        step("first segment without SYN of an unknown flow: established", 41003, TCP_ACK, NewFlow, Established, (1, 1)),
    ];
    let mut failures = Vec::new();
    for to_main in [true, false] {
        half_open_steps(&steps, to_main, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `steps` with SYNs going into `CONNTRACK` (`to_main`) or, with no
/// `SYN_ALLOWANCE` left, into `HALF_OPEN`.
fn half_open_steps(steps: &[Step], to_main: bool, failures: &mut Vec<String>) {
    let mut h = harness();
    let svc = ServiceAddr {
        vip: VIP4.into(),
        port: 80,
        protocol: Protocol::Tcp,
    };
    let real =
        h.lb.real_id(&RealKey::new(svc, "10.0.1.1:80".parse().unwrap()))
            .unwrap();
    let allowance = if to_main { 1000 } else { 0 };
    h.lb.dataplane_mut().set_syn_allowance(allowance).unwrap();
    let mode = if to_main {
        "into CONNTRACK"
    } else {
        "into HALF_OPEN"
    };
    for s in steps {
        let input = tcp4(CLIENT4, s.sport, VIP4, 80, s.flags);
        let before = h.count(s.reason);
        let (verdict, out) = h.run(&input);
        if verdict != s.reason.action() || out != forwarded(&input, real_mac(0)) {
            failures.push(format!(
                "{mode}: {}: verdict {verdict:?}, or output differs",
                s.description
            ));
        }
        if h.count(s.reason) - before != 1 {
            failures.push(format!(
                "{mode}: {}: reason {} not counted once",
                s.description,
                s.reason.name()
            ));
        }
        let key = flow_key4(s.sport);
        let dp = h.lb.dataplane();
        let main = dp.flow(&key).unwrap().map(|f| f.state);
        let half = dp.half_open_flow(&key).unwrap().map(|f| f.state);
        let held = match (main, half, to_main) {
            (None, Some(FLOW_HALF_OPEN), false) | (Some(FLOW_HALF_OPEN), None, true) => {
                Some(Held::HalfOpen)
            }
            (None, Some(FLOW_CLOSING), false) => Some(Held::HalfOpenClosing),
            (Some(FLOW_ACTIVE), None, _) => Some(Held::Established),
            (Some(FLOW_CLOSING), None, _) => Some(Held::Closing),
            _ => None,
        };
        // Closed before its handshake ended, a flow of `CONNTRACK` is like
        // any closing flow there.
        let expected = match s.held {
            Held::HalfOpenClosing if to_main => Held::Closing,
            held => held,
        };
        if held != Some(expected) {
            failures.push(format!(
                "{mode}: {}: flow in CONNTRACK {main:?}, HALF_OPEN {half:?}; expected {expected:?}",
                s.description
            ));
        }
        let counts = (
            dp.real_connections(real).unwrap(),
            dp.real_inactive(real).unwrap(),
        );
        if counts != s.counts {
            failures.push(format!(
                "{mode}: {}: (active, inactive) {counts:?}, expected {:?}",
                s.description, s.counts
            ));
        }
    }
    // Each SYN into CONNTRACK took one, each handshake completed or closed
    // there gave it back: the last flow is half-open.
    let left = h.lb.dataplane().syn_allowance().unwrap();
    let expected = if to_main { allowance - 1 } else { 0 };
    if left != expected {
        failures.push(format!("{mode}: SYN allowance {left}, expected {expected}"));
    }
}

/// The data path's evidence that a real stopped answering handshakes: a
/// SYN sent again for a flow still half-open counts in that real's
/// `REAL_SYN_RETRANS`; a first SYN, a SYN of an established flow, or one
/// reusing a closed tuple does not.
#[test]
fn retransmitted_syns_of_half_open_flows_are_counted_for_their_real() {
    for to_main in [true, false] {
        retransmitted_syns_counted(to_main);
    }
}

/// With SYNs going into `CONNTRACK` (`to_main`) or `HALF_OPEN`.
fn retransmitted_syns_counted(to_main: bool) {
    let mut h = harness();
    h.lb.dataplane_mut()
        .set_syn_allowance(if to_main { 1000 } else { 0 })
        .unwrap();
    let total = |h: &Harness| -> u64 {
        let dp = h.lb.dataplane();
        (0..dp.limits().max_reals)
            .map(|id| dp.real_syn_retransmits(id).unwrap())
            .sum()
    };
    #[rustfmt::skip]
    let steps: [(&str, u16, u8, u64); 8] = [
        ("first SYN", 42000, TCP_SYN, 0),
        ("retransmitted SYN", 42000, TCP_SYN, 1),
        ("retransmitted again", 42000, TCP_SYN, 2),
        ("another flow's first SYN", 42001, TCP_SYN, 2),
        ("the handshake's ACK", 42000, TCP_ACK, 2),
        ("a late SYN of the established flow", 42000, TCP_SYN, 2),
        ("RST of the other half-open flow", 42001, TCP_RST, 2),
        ("a SYN reusing its tuple: a new flow", 42001, TCP_SYN, 2),
    ];
    let mut failures = Vec::new();
    for (description, sport, flags, want) in steps {
        h.run(&tcp4(CLIENT4, sport, VIP4, 80, flags));
        let got = total(&h);
        if got != want {
            failures.push(format!(
                "{description} (to CONNTRACK: {to_main}): {got} counted in all, expected {want}"
            ));
        }
    }
    // All of it on the first flow's real.
    let dp = h.lb.dataplane();
    let real = dp
        .flow(&flow_key4(42000))
        .unwrap()
        .expect("established")
        .real;
    assert_eq!(dp.real_syn_retransmits(real).unwrap(), 2);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// SYNs go into `CONNTRACK` while the CPU's `SYN_ALLOWANCE` lasts, then into
/// `HALF_OPEN` (a flood never fills the connection table); a handshake
/// completed in `CONNTRACK` gives its place back. Flows of both tables
/// complete their handshake.
#[test]
fn syns_beyond_the_allowance_go_to_the_half_open_table() {
    let mut h = harness();
    // 3 for each online CPU (the allowance is split over those): the
    // harness runs the program on one.
    let cpus = aya::util::online_cpus().expect("online CPUs").len() as u64;
    h.lb.dataplane_mut().set_syn_allowance(3 * cpus).unwrap();
    let others = 3 * (cpus - 1);
    let place = |h: &Harness, sport: u16| {
        let dp = h.lb.dataplane();
        match (
            dp.flow(&flow_key4(sport)).unwrap().map(|f| f.state),
            dp.half_open_flow(&flow_key4(sport))
                .unwrap()
                .map(|f| f.state),
        ) {
            (Some(FLOW_HALF_OPEN), None) => "CONNTRACK half-open",
            (None, Some(FLOW_HALF_OPEN)) => "HALF_OPEN half-open",
            (Some(FLOW_ACTIVE), None) => "CONNTRACK established",
            _ => "elsewhere",
        }
    };
    for sport in 43000..43005 {
        let (verdict, _) = h.run(&tcp4(CLIENT4, sport, VIP4, 80, TCP_SYN));
        assert_eq!(verdict, Reason::NewFlow.action());
    }
    let places: Vec<_> = (43000..43005).map(|p| place(&h, p)).collect();
    assert_eq!(
        places,
        [
            "CONNTRACK half-open",
            "CONNTRACK half-open",
            "CONNTRACK half-open",
            "HALF_OPEN half-open",
            "HALF_OPEN half-open"
        ]
    );
    assert_eq!(h.lb.dataplane().syn_allowance().unwrap(), others);
    // One handshake of each table completes.
    for sport in [43000, 43003] {
        h.run(&tcp4(CLIENT4, sport, VIP4, 80, TCP_ACK));
        assert_eq!(place(&h, sport), "CONNTRACK established", "port {sport}");
    }
    assert_eq!(h.lb.dataplane().syn_allowance().unwrap(), others + 1);
    // 43004 still waits in HALF_OPEN: new SYNs go there too (so that its
    // retransmission would find it), allowance or not.
    h.run(&tcp4(CLIENT4, 43005, VIP4, 80, TCP_SYN));
    assert_eq!(place(&h, 43005), "HALF_OPEN half-open");
    let dp = h.lb.dataplane();
    let real = dp.flow(&flow_key4(43000)).unwrap().unwrap().real;
    assert_eq!(
        (
            dp.real_connections(real).unwrap(),
            dp.real_inactive(real).unwrap()
        ),
        (2, 4)
    );
    // Once their handshakes end and an ageing pass finds none waiting
    // there, SYNs go into CONNTRACK again.
    for sport in [43004, 43005] {
        h.run(&tcp4(CLIENT4, sport, VIP4, 80, TCP_ACK));
    }
    h.lb.age(monotonic_now_ns(), &Timeouts::default()).unwrap();
    h.run(&tcp4(CLIENT4, 43006, VIP4, 80, TCP_SYN));
    assert_eq!(place(&h, 43006), "CONNTRACK half-open");
}

#[test]
fn nothing_is_ever_aborted_on_random_bytes() {
    // A cheap fuzz pass over prefixes and bit flips of valid frames: every
    // verdict must be pass, drop or tx (Harness::run panics on XDP_ABORTED).
    let mut h = harness();
    // A flow, so mutated ICMP errors also reach the forwarding path.
    h.run(&tcp4(CLIENT4, 40000, VIP4, 80, TCP_SYN));
    let seeds = [
        tcp4(CLIENT4, 40000, VIP4, 80, TCP_SYN),
        icmp4_error(
            ROUTER4,
            VIP4,
            (ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED),
            mtu_field(1400),
            &reply4(6, 80, 40000)[..QUOTE4],
        ),
        icmp6_error(
            ROUTER6,
            VIP6,
            (ICMPV6_PACKET_TOO_BIG, 0),
            mtu_field(1280),
            &reply6(6, 80, 40000)[..48],
        ),
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
