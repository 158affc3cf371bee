//! ICMP errors about a flow go to the flow's real (path MTU discovery).
//!
//! In direct routing the reals answer clients with the VIP as source, so a
//! router that cannot forward a reply reports it to the VIP, which the
//! director holds: "fragmentation needed", "packet too big", "time exceeded",
//! other "destination unreachable" codes. The error embeds the start of the
//! real's packet (VIP:port -> client); reversed, that is the flow's key in
//! the connection table, and the whole frame goes to the flow's real with the
//! usual MAC rewrite.
//!
//! Only frames that parsing found to be neither TCP nor UDP come here, and
//! `process` is a BPF subprogram (not inlined, only the context pointer goes
//! across), so `lb_xdp`'s own code, the TCP/UDP path, keeps its shape: it
//! gains the call and nothing else (inlined, this code measurably slowed the
//! established-flow benchmark cases).

use crate::{
    conntrack, events, forward,
    maps::VIPS,
    parse::{self, IPV4_FRAGMENT_BITS, Ipv4Hdr, Ipv6Hdr, L4Ports, ptr_at, word},
    stats, usable_real,
};
use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use core::mem::size_of;
use lb_common::{FAMILY_V4, FAMILY_V6, FlowKey, PROTO_TCP, PROTO_UDP, Reason, VipKey};

const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMPV6_DEST_UNREACH: u8 = 1;
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
const ICMPV6_TIME_EXCEEDED: u8 = 3;

/// Type, code, checksum and the 4-byte field (unused, or the next-hop MTU):
/// the embedded packet starts right after it in both families.
const ICMP_HDR_LEN: usize = 8;

/// A frame that is neither TCP nor UDP (nor an IPv4 fragment): an ICMP error
/// to a VIP goes to its flow's real; anything else keeps `NotTcpUdp`. Takes
/// the raw context so the caller passes one register.
#[inline(never)]
pub fn process(ctx: *mut xdp_md) -> Reason {
    let ctx = &XdpContext::new(ctx);
    match forward_error(ctx) {
        Ok(reason) | Err(reason) => reason,
    }
}

#[inline(always)]
fn forward_error(ctx: &XdpContext) -> Result<Reason, Reason> {
    // Parsing got this far a moment ago; walk it again rather than widen
    // what `parse` returns on the TCP/UDP path.
    let ip = parse::parse_ip(ctx)?;
    let outer = &ip.key;
    let icmp = match outer.family {
        FAMILY_V4 => outer.proto == PROTO_ICMP,
        _ => outer.proto == PROTO_ICMPV6,
    };
    if !icmp || ip.fragment || !is_vip(outer) {
        return Err(Reason::NotTcpUdp);
    }
    // Like every frame for a service: only those sent to this interface.
    if let Some(mac) = forward::interface_mac(ctx.ingress_ifindex() as u32)
        && !forward::addressed_to(ctx, &mac)
    {
        return Err(Reason::OtherHost);
    }
    let header: *const [u8; ICMP_HDR_LEN] = ptr_at(ctx, ip.l4).ok_or(Reason::IcmpErrorShort)?;
    let icmp_type = unsafe { (*header)[0] };
    if !is_error(outer.family, icmp_type) {
        return Err(Reason::NotTcpUdp);
    }
    let embedded = ip.l4 + ICMP_HDR_LEN;
    let key = if outer.family == FAMILY_V4 {
        embedded_flow_v4(ctx, embedded)?
    } else {
        embedded_flow_v6(ctx, embedded)?
    };
    // A connection still in its handshake is in the half-open table.
    let Some(flow) = conntrack::lookup(&key).or_else(|| conntrack::lookup_half_open(&key)) else {
        events::icmp_without_flow(ctx, &key);
        return Err(Reason::IcmpErrorNoFlow);
    };
    let (service, real_id) = unsafe { ((*flow).service, (*flow).real) };
    let real = usable_real(real_id).ok_or(Reason::IcmpErrorNoFlow)?;
    let our_mac =
        forward::interface_mac(ctx.ingress_ifindex() as u32).ok_or(Reason::UnknownInterface)?;
    if !forward::rewrite_macs(ctx, &real.mac, &our_mac) {
        return Err(Reason::ShortEthernet);
    }
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    stats::count_forward(service, real_id, bytes, false);
    Ok(Reason::IcmpErrorForwarded)
}

/// Whether the frame's destination carries a service (the director's own
/// addresses get their ICMP from the kernel as before).
#[inline(always)]
fn is_vip(outer: &FlowKey) -> bool {
    let vip = VipKey {
        addr: outer.dst,
        family: u32::from(outer.family),
    };
    unsafe { VIPS.get(&vip) }.is_some()
}

/// The error types that carry a packet a real sent.
#[inline(always)]
fn is_error(family: u8, icmp_type: u8) -> bool {
    if family == FAMILY_V4 {
        matches!(icmp_type, ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED)
    } else {
        matches!(
            icmp_type,
            ICMPV6_DEST_UNREACH | ICMPV6_PACKET_TOO_BIG | ICMPV6_TIME_EXCEEDED
        )
    }
}

/// The connection-table key of the embedded IPv4 packet (VIP:port ->
/// client), i.e. its 5-tuple reversed.
#[inline(always)]
fn embedded_flow_v4(ctx: &XdpContext, at: usize) -> Result<FlowKey, Reason> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, at).ok_or(Reason::IcmpErrorShort)?;
    let ip = unsafe { &*ip };
    let ihl = usize::from(ip.version_ihl & 0x0f);
    if ip.version_ihl >> 4 != 4 || ihl < 5 {
        return Err(Reason::IcmpErrorShort);
    }
    // A later fragment carries no ports; the real's TCP sends none anyway.
    if u16::from_be(ip.frag_off) & IPV4_FRAGMENT_BITS != 0 {
        return Err(Reason::IcmpErrorNoFlow);
    }
    let mut key = FlowKey {
        family: FAMILY_V4,
        proto: ip.proto,
        ..FlowKey::default()
    };
    key.src[0] = word(&ip.dst, 0);
    key.dst[0] = word(&ip.src, 0);
    reversed_ports(ctx, at + ihl * 4, key)
}

/// Like `embedded_flow_v4`, for an embedded IPv6 packet (fixed header only).
#[inline(always)]
fn embedded_flow_v6(ctx: &XdpContext, at: usize) -> Result<FlowKey, Reason> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, at).ok_or(Reason::IcmpErrorShort)?;
    let ip = unsafe { &*ip };
    let key = FlowKey {
        family: FAMILY_V6,
        proto: ip.next_header,
        src: [
            word(&ip.dst, 0),
            word(&ip.dst, 1),
            word(&ip.dst, 2),
            word(&ip.dst, 3),
        ],
        dst: [
            word(&ip.src, 0),
            word(&ip.src, 1),
            word(&ip.src, 2),
            word(&ip.src, 3),
        ],
        ..FlowKey::default()
    };
    reversed_ports(ctx, at + size_of::<Ipv6Hdr>(), key)
}

/// Completes `key` with the embedded TCP/UDP ports, swapped. Other protocols
/// (an echo reply of the host's own, extension headers) have no flow.
#[inline(always)]
fn reversed_ports(ctx: &XdpContext, at: usize, mut key: FlowKey) -> Result<FlowKey, Reason> {
    if key.proto != PROTO_TCP && key.proto != PROTO_UDP {
        return Err(Reason::IcmpErrorNoFlow);
    }
    let ports: *const L4Ports = ptr_at(ctx, at).ok_or(Reason::IcmpErrorShort)?;
    key.src_port = unsafe { (*ports).dst };
    key.dst_port = unsafe { (*ports).src };
    Ok(key)
}
