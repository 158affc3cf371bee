//! The VRRP socket layer between two lab directors: advertisements over
//! IPv4 and IPv6, multicast and unicast, arrive with TTL 255 and pass
//! `check`; and a gratuitous ARP / unsolicited NA moves a client's neighbour
//! entry for a VIP from one director's MAC to the other's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use lb_daemon::vrrp::packet::{VRRP_MCAST_V4, VRRP_MCAST_V6};
use lb_daemon::vrrp::socket::{VRRP_TTL, check};
use lb_daemon::vrrp::{Advertisement, Announcer, Received, VrrpSocket};
use lb_lab::{HOST_IFNAME, Lab, VIP_V4, VIP_V6, exec_ok, format_mac, in_namespace, wait_for};

const VRID: u8 = 51;
/// Fresh link-local addresses go through duplicate address detection (the
/// lab adds only its global addresses with `nodad`): about a second or two.
const DAD_TIMEOUT: Duration = Duration::from_secs(10);
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
const NEIGH_TIMEOUT: Duration = Duration::from_secs(5);

fn lab() -> Lab {
    Lab::builder()
        .clients(1)
        .directors(2)
        .reals(0)
        .build()
        .unwrap_or_else(|e| panic!("building the lab: {e:#}"))
}

/// The index of `eth0` in `ns`, from `ip -o link` (`2: eth0@if7: …`).
fn ifindex(ns: &str) -> Result<u32> {
    let out = exec_ok(ns, &["ip", "-o", "link", "show", "dev", HOST_IFNAME])?;
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| anyhow!("no ifindex in {out:?}"))
}

/// The link-local address of `eth0` in `ns`, once it is no longer tentative.
fn link_local(ns: &str) -> Result<Ipv6Addr> {
    let what = format!("a usable link-local address on {HOST_IFNAME} in {ns}");
    wait_for(DAD_TIMEOUT, &what, || -> Result<Ipv6Addr> {
        let args = [
            "ip",
            "-6",
            "-o",
            "addr",
            "show",
            "dev",
            HOST_IFNAME,
            "scope",
            "link",
        ];
        let out = exec_ok(ns, &args)?;
        if out.contains("tentative") {
            bail!("still tentative: {}", out.trim());
        }
        let addr = out
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .ok_or_else(|| anyhow!("no inet6 address in {out:?}"))?;
        Ok(addr.parse()?)
    })
}

fn open(ns: &str, local: IpAddr, peers: &[IpAddr]) -> Result<VrrpSocket> {
    let index = ifindex(ns)?;
    let peers = peers.to_vec();
    in_namespace(ns, move || {
        VrrpSocket::open(HOST_IFNAME, index, local, &peers)
    })?
    .with_context(|| format!("opening a VRRP socket on {local} in {ns}"))
}

fn recv_one(socket: &VrrpSocket) -> Result<Received> {
    wait_for(RECV_TIMEOUT, "an advertisement", || {
        socket.recv()?.ok_or_else(|| anyhow!("nothing received"))
    })
}

/// Director 0 sends one advertisement to director 1 from `locals[0]` (to
/// the group, or unicast when `unicast`); checks what director 1 receives.
fn exchange(lab: &Lab, locals: [IpAddr; 2], vip: IpAddr, unicast: bool) {
    let what = format!(
        "{} {}",
        locals[0],
        if unicast { "unicast" } else { "multicast" }
    );
    let peer = |i: usize| if unicast { vec![locals[1 - i]] } else { vec![] };
    let receiver = open(lab.director_ns(1), locals[1], &peer(1)).unwrap();
    let sender = open(lab.director_ns(0), locals[0], &peer(0)).unwrap();
    let adv = Advertisement {
        vrid: VRID,
        priority: 100,
        max_advert_int_cs: 10,
        addresses: vec![vip],
    };
    sender
        .send(&adv)
        .unwrap_or_else(|e| panic!("{what}: send: {e}"));
    let got = recv_one(&receiver).unwrap_or_else(|e| panic!("{what}: {e:#}"));

    let group = if vip.is_ipv4() {
        IpAddr::V4(VRRP_MCAST_V4)
    } else {
        IpAddr::V6(VRRP_MCAST_V6)
    };
    let dst = if unicast { locals[1] } else { group };
    assert_eq!(
        (got.src, got.dst, got.ttl),
        (locals[0], dst, VRRP_TTL),
        "{what}"
    );
    assert_eq!(check(&got, VRID, unicast), Ok(adv), "{what}");
    // Nothing more: in particular multicast does not loop back to the
    // sender, and the receiver got exactly one copy.
    assert_eq!(receiver.recv().unwrap(), None, "{what}");
    assert_eq!(sender.recv().unwrap(), None, "{what}");
}

#[test]
fn advertisements_reach_the_other_director_with_ttl_255() {
    let lab = lab();
    let v4 = [0, 1].map(|i| IpAddr::V4(lab.director_addr_v4(i)));
    let v6 = [0, 1].map(|i| IpAddr::V6(link_local(lab.director_ns(i)).unwrap()));
    for unicast in [false, true] {
        exchange(&lab, v4, IpAddr::V4(VIP_V4), unicast);
        exchange(&lab, v6, IpAddr::V6(VIP_V6), unicast);
    }
}

/// The MAC in the client's neighbour entry for `ip`, if it has one.
fn client_neighbour(lab: &Lab, ip: IpAddr) -> Result<Option<String>> {
    let out = exec_ok(
        lab.client_ns(0),
        &["ip", "neigh", "show", &ip.to_string(), "dev", HOST_IFNAME],
    )?;
    Ok(out
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_owned))
}

/// Makes the client resolve `ip`: one UDP datagram to the discard port
/// (the machine has no `ping`; the port unreachable answer is irrelevant).
fn resolve_from_client(lab: &Lab, ip: IpAddr) {
    in_namespace(lab.client_ns(0), || -> std::io::Result<()> {
        let any: IpAddr = if ip.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        UdpSocket::bind((any, 0))?
            .send_to(b"resolve", (ip, 9))
            .map(drop)
    })
    .unwrap()
    .unwrap_or_else(|e| panic!("client sending to {ip}: {e}"));
}

fn ip_addr(ns: &str, verb: &str, ip: IpAddr) -> Result<String> {
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    let mut args = vec!["ip", "addr", verb];
    let addr = format!("{ip}/{prefix}");
    args.extend([addr.as_str(), "dev", HOST_IFNAME]);
    if verb == "add" && ip.is_ipv6() {
        args.push("nodad");
    }
    exec_ok(ns, &args)
}

#[test]
fn announcements_move_the_clients_neighbour_entry() {
    let lab = lab();
    let vips = [IpAddr::V4(VIP_V4), IpAddr::V6(VIP_V6)];
    let [mac0, mac1] = [0, 1].map(|i| format_mac(lab.director_mac(i)));

    // Director 0 holds the VIPs; the client resolves them to its MAC.
    for vip in vips {
        ip_addr(lab.director_ns(0), "add", vip).unwrap();
        resolve_from_client(&lab, vip);
        let what = format!("the client to resolve {vip} to {mac0}");
        wait_for(NEIGH_TIMEOUT, &what, || -> Result<()> {
            match client_neighbour(&lab, vip)? {
                Some(mac) if mac == mac0 => Ok(()),
                other => bail!("entry: {other:?}"),
            }
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    }

    // Failover: director 0 lets go, director 1 takes the VIPs and says so.
    for vip in vips {
        ip_addr(lab.director_ns(0), "del", vip).unwrap();
        ip_addr(lab.director_ns(1), "add", vip).unwrap();
        // Nothing has told the client yet.
        assert_eq!(client_neighbour(&lab, vip).unwrap(), Some(mac0.clone()));
    }
    let index = ifindex(lab.director_ns(1)).unwrap();
    let mac = lab.director_mac(1);
    in_namespace(lab.director_ns(1), || -> std::io::Result<()> {
        Announcer::open(HOST_IFNAME, index, mac)?.announce(&vips)
    })
    .unwrap()
    .unwrap_or_else(|e| panic!("announcing {vips:?} from director 1: {e}"));

    for vip in vips {
        let what = format!("the client's entry for {vip} to show {mac1}");
        wait_for(NEIGH_TIMEOUT, &what, || -> Result<()> {
            match client_neighbour(&lab, vip)? {
                Some(mac) if mac == mac1 => Ok(()),
                other => bail!("entry: {other:?}"),
            }
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    }
}
