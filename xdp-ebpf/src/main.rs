//! The XDP direct-routing load balancer. `lb_xdp` is the program; the entry is
//! a thin wrapper that counts the reason and returns the action it implies.
#![no_std]
#![no_main]
// Atomic add on map values: see conntrack.rs.
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "BPF has atomic add but no CAS; core::intrinsics reaches it"
)]

mod conntrack;
mod forward;
mod icmp;
mod maps;
mod parse;
mod schedule;
mod stats;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use lb_common::{
    FLOW_ACTIVE, FLOW_CLOSING, FlowKey, FlowValue, LAST_SEEN_GRANULARITY_NS, NO_REAL, PROTO_TCP,
    REAL_F_REROUTE, REAL_F_VALID, RealValue, Reason, ServiceKey, ServiceValue, VipKey,
};
use maps::{REALS, SERVICES, VIPS};
use parse::{Packet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    let reason = process(&ctx);
    stats::count_reason(reason);
    reason.action().xdp_code()
}

/// Decides what happens to one frame and, for service traffic, rewrites it.
#[inline(always)]
fn process(ctx: &XdpContext) -> Reason {
    let packet = match parse::parse(ctx) {
        Ok(p) => p,
        Err(Reason::NotTcpUdp) => return icmp::process(ctx.ctx),
        Err(reason) => return reason,
    };
    let key = &packet.key;
    // Only frames sent to this interface: a switch floods unknown unicast
    // to every port, and the other director's frames are its own to
    // forward. (On an interface userspace did not configure there is no
    // MAC to compare; service traffic there counts as `UnknownInterface`.)
    let our_mac = forward::interface_mac(ctx.ingress_ifindex() as u32);
    if let Some(mac) = &our_mac
        && !forward::addressed_to(ctx, mac)
    {
        return Reason::OtherHost;
    }
    if packet.fragment {
        let vip = VipKey {
            addr: key.dst,
            family: u32::from(key.family),
        };
        return if unsafe { VIPS.get(&vip) }.is_some() {
            Reason::FragmentToVip
        } else {
            Reason::FragmentNotVip
        };
    }
    // A known flow costs one lookup. Otherwise only service traffic goes
    // further: the host's own frames pay for two lookups and nothing else.
    let flow = conntrack::lookup(key);
    let mut service = None;
    if flow.is_none() {
        let Some(found) = (unsafe { SERVICES.get(&service_key(key)) }) else {
            return Reason::NoService;
        };
        service = Some(found);
    }
    let Some(our_mac) = our_mac else {
        return Reason::UnknownInterface;
    };
    let now = unsafe { bpf_ktime_get_coarse_ns() };

    let mut reason = Reason::NewFlow;
    if let Some(flow) = flow {
        let flow = unsafe { &mut *flow };
        // A closing flow's 5-tuple may have been reused by a connection the
        // other director saw open (its SYN); during a handover that one
        // knows better.
        if flow.state == FLOW_CLOSING
            && let Some(reason) = to_other_director(ctx, &packet, now, &our_mac)
        {
            return reason;
        }
        match continue_flow(flow, &packet, now) {
            Ok(real) => {
                return forward(
                    ctx,
                    flow.service,
                    flow.real,
                    real,
                    &our_mac,
                    Reason::Established,
                );
            }
            Err(why) => reason = why,
        }
    }

    // A new connection (or one whose real is gone): schedule it.
    let Some(service) = service.or_else(|| unsafe { SERVICES.get(&service_key(key)) }) else {
        return Reason::NoService;
    };
    if flow.is_none()
        && let Some(reason) = to_other_director(ctx, &packet, now, &our_mac)
    {
        return reason;
    }
    match schedule_flow(&packet, service, now) {
        Ok((real_id, real)) => forward(ctx, service.id, real_id, real, &our_mac, reason),
        Err(reason) => reason,
    }
}

/// Around a failover (see `Settings::handover_until_ns`): a mid-connection
/// TCP packet (no SYN) of a flow this director does not know goes to the
/// other director, which saw the connection open and knows its real; this
/// one would guess. Frames from the other director are never sent back.
#[inline(always)]
fn to_other_director(
    ctx: &XdpContext,
    packet: &Packet,
    now: u64,
    our_mac: &[u8; 6],
) -> Option<Reason> {
    if packet.key.proto != PROTO_TCP || packet.tcp_flags & TCP_SYN != 0 {
        return None;
    }
    let other = forward::other_director(now)?;
    if forward::sent_by(ctx, &other) {
        return None;
    }
    Some(if forward::rewrite_macs(ctx, &other, our_mac) {
        Reason::ToOtherDirector
    } else {
        Reason::ShortEthernet
    })
}

/// The `SERVICES` key of a flow: (VIP, port, protocol).
#[inline(always)]
fn service_key(key: &FlowKey) -> ServiceKey {
    ServiceKey {
        addr: key.dst,
        port: key.dst_port,
        proto: key.proto,
        family: key.family,
    }
}

/// Rewrites the frame for `real` and counts it.
#[inline(always)]
fn forward(
    ctx: &XdpContext,
    service: u32,
    real_id: u32,
    real: &RealValue,
    our_mac: &[u8; 6],
    reason: Reason,
) -> Reason {
    if !forward::rewrite_macs(ctx, &real.mac, our_mac) {
        return Reason::ShortEthernet;
    }
    let bytes = (ctx.data_end() - ctx.data()) as u64;
    stats::count_forward(service, real_id, bytes, reason != Reason::Established);
    reason
}

/// A packet of a known flow: its real while the flow lives. Otherwise the
/// reason to schedule it again: `Rescheduled` when its real is gone or down,
/// `NewFlow` for a SYN reusing the 5-tuple of a closing flow (a new
/// connection, as IPVS's `conn_reuse_mode`). A retransmitted SYN of a live
/// flow stays.
#[inline(always)]
fn continue_flow(
    flow: &mut FlowValue,
    packet: &Packet,
    now: u64,
) -> Result<&'static RealValue, Reason> {
    let is_tcp = packet.key.proto == PROTO_TCP;
    let flags = packet.tcp_flags;
    let pure_syn = is_tcp && flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let reused = pure_syn && flow.state == FLOW_CLOSING;
    let Some(real) = usable_real(flow.real).filter(|_| !reused) else {
        if conntrack::is_active(flow) {
            conntrack::connection_closed(flow.real);
        }
        return Err(if reused {
            Reason::NewFlow
        } else {
            Reason::Rescheduled
        });
    };
    if is_tcp && flags & (TCP_FIN | TCP_RST) != 0 && conntrack::is_active(flow) {
        flow.state = FLOW_CLOSING;
        conntrack::connection_closed(flow.real);
    }
    if now.wrapping_sub(flow.last_seen_ns) > LAST_SEEN_GRANULARITY_NS {
        flow.last_seen_ns = now;
    }
    Ok(real)
}

/// Picks a real for a new flow and records the flow.
#[inline(always)]
fn schedule_flow(
    packet: &Packet,
    service: &ServiceValue,
    now: u64,
) -> Result<(u32, &'static RealValue), Reason> {
    let key = &packet.key;
    let real_id = match schedule::pick(service, key) {
        Some(id) => id,
        None if service.fallback_real != NO_REAL => service.fallback_real,
        None => return Err(Reason::NoReal),
    };
    let real = usable_real(real_id).ok_or(Reason::NoReal)?;
    let closes = key.proto == PROTO_TCP && packet.tcp_flags & (TCP_FIN | TCP_RST) != 0;
    let state = if closes { FLOW_CLOSING } else { FLOW_ACTIVE };
    let flow = FlowValue {
        real: real_id,
        state,
        service: service.id,
        _pad: 0,
        last_seen_ns: now,
    };
    if conntrack::insert(key, &flow).is_err() {
        return Err(Reason::ConntrackFull);
    }
    if state == FLOW_ACTIVE {
        conntrack::connection_opened(real_id);
    }
    Ok((real_id, real))
}

/// The real's forwarding entry when it may carry traffic: configured, MAC
/// known, and not marked for rerouting.
#[inline(always)]
fn usable_real(id: u32) -> Option<&'static RealValue> {
    let real = REALS.get(id)?;
    if real.flags & (REAL_F_VALID | REAL_F_REROUTE) == REAL_F_VALID {
        Some(real)
    } else {
        None
    }
}

/// Passes everything. The lab attaches it to the bridge-side peer of a
/// director's veth: a veth only delivers `XDP_TX` frames to a peer that runs
/// XDP itself.
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Benchmark baseline: rewrite both MACs and send the frame back, nothing
/// else. Every other case is reported relative to this one.
#[xdp]
pub fn bench_floor(ctx: XdpContext) -> u32 {
    const DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    if forward::rewrite_macs(&ctx, &DST, &SRC) {
        xdp_action::XDP_TX
    } else {
        xdp_action::XDP_PASS
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
