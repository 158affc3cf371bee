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
mod events;
mod forward;
mod icmp;
mod lc;
mod maps;
mod parse;
mod schedule;
mod share;
mod stats;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use lb_common::{
    ACTIVE_LOAD, FLOW_ACTIVE, FLOW_CLOSING, FLOW_HALF_OPEN, FlowKey, FlowValue,
    LAST_SEEN_GRANULARITY_NS, NO_REAL, PROTO_TCP, REAL_F_REROUTE, REAL_F_VALID, RealValue, Reason,
    ServiceKey, ServiceValue, VipKey,
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
    // A known flow costs one lookup. A SYN that opens a connection is not
    // looked up while this CPU may put half-open flows into the connection
    // table (`conntrack::syn_to_main`): its insert there fails when the
    // 5-tuple has a flow (a retransmission, a reused port; `open_in_main`),
    // so a new connection touches the table once. A TCP packet that is not in the connection
    // table may be a half-open flow's of `HALF_OPEN` (the ACK that completes
    // its handshake); a SYN is never looked up there (a retransmitted one is
    // found when its insert fails: `schedule_flow`). Otherwise only service
    // traffic goes further: the host's own frames pay for two lookups (three
    // for TCP segments other than SYNs) and nothing else.
    let syn_to_main = opens_connection(&packet) && conntrack::syn_to_main();
    let mut flow = if syn_to_main {
        None
    } else {
        conntrack::lookup(key)
    };
    let mut half_open = None;
    let mut service = None;
    if flow.is_none() {
        if key.proto == PROTO_TCP && !opens_connection(&packet) {
            half_open = conntrack::lookup_half_open(key);
        }
        if half_open.is_none() {
            match unsafe { SERVICES.get(&service_key(key)) } {
                Some(found) => service = Some(found),
                // A SYN of a flow whose service is gone (a retransmission)
                // still reaches the flow's real; this lookup is the one
                // skipped above, paid here by SYNs to the host's own ports.
                None if syn_to_main => {
                    flow = conntrack::lookup(key);
                    if flow.is_none() {
                        return Reason::NoService;
                    }
                }
                None => return Reason::NoService,
            }
        }
    }
    let Some(our_mac) = our_mac else {
        return Reason::UnknownInterface;
    };
    let now = unsafe { bpf_ktime_get_coarse_ns() };

    let mut reason = Reason::NewFlow;
    // The table that holds the flow about to be scheduled again, if any.
    let mut held_in = Table::None;
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
        match continue_flow(flow, &packet, now, Table::Main) {
            Ok((real, false)) => {
                return forward(
                    ctx,
                    flow.service,
                    flow.real,
                    real,
                    &our_mac,
                    Reason::Established,
                );
            }
            Ok((real, true)) => return complete_in_place(ctx, key, flow, real, &our_mac, now),
            Err(why) => {
                reason = why;
                held_in = Table::Main;
            }
        }
    } else if let Some(half) = half_open {
        let half = unsafe { &mut *half };
        match continue_flow(half, &packet, now, Table::HalfOpen) {
            Ok((real, false)) => {
                return forward(
                    ctx,
                    half.service,
                    half.real,
                    real,
                    &our_mac,
                    Reason::Established,
                );
            }
            Ok((real, true)) => return establish(ctx, key, half, real, &our_mac, now),
            Err(why) => {
                reason = why;
                held_in = Table::HalfOpen;
            }
        }
    }

    // A new connection (or one whose real is gone): schedule it.
    let Some(service) = service.or_else(|| unsafe { SERVICES.get(&service_key(key)) }) else {
        return Reason::NoService;
    };
    if flow.is_none()
        && half_open.is_none()
        && let Some(reason) = to_other_director(ctx, &packet, now, &our_mac)
    {
        return reason;
    }
    let syn_to_main = syn_to_main && held_in == Table::None;
    match schedule_flow(&packet, service, now, held_in, syn_to_main, reason) {
        Ok(s) => forward(ctx, s.service, s.real_id, s.real, &our_mac, s.reason),
        Err(reason) => {
            events::flow_dropped(ctx, key, reason);
            reason
        }
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

/// A TCP SYN without ACK, FIN or RST: the first segment of a connection
/// (or its retransmission); it starts a half-open flow.
#[inline(always)]
fn opens_connection(packet: &Packet) -> bool {
    packet.key.proto == PROTO_TCP
        && packet.tcp_flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_SYN
}

/// Where `schedule_flow` sends a packet, and the reason to count.
struct Scheduled {
    service: u32,
    real_id: u32,
    real: &'static RealValue,
    reason: Reason,
}

/// Where a flow that is scheduled again was kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    None,
    Main,
    HalfOpen,
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

/// A packet of a known flow (`table` says where it is kept): its real while
/// the flow lives, and whether the packet completes a half-open flow's
/// handshake (the client's first packet without SYN, not closing). A
/// retransmitted SYN of a half-open flow stays on its real and is counted
/// in the real's `REAL_SYN_RETRANS` (the evidence that the real does not
/// answer); FIN or RST closes a flow where it is (no longer counted).
/// Otherwise the reason to schedule it again: `Rescheduled` when its real is
/// gone or down, `NewFlow` for a SYN reusing the 5-tuple of a closing flow
/// (a new connection, as IPVS's `conn_reuse_mode`). A SYN of an established
/// flow stays.
#[inline(always)]
fn continue_flow(
    flow: &mut FlowValue,
    packet: &Packet,
    now: u64,
    table: Table,
) -> Result<(&'static RealValue, bool), Reason> {
    let is_tcp = packet.key.proto == PROTO_TCP;
    let flags = packet.tcp_flags;
    let pure_syn = is_tcp && flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    let reused = pure_syn && flow.state == FLOW_CLOSING;
    if share::adopt(flow) && table == Table::HalfOpen && flow.state == FLOW_HALF_OPEN {
        conntrack::half_open_inserted();
    }
    let Some(real) = usable_real(flow.real).filter(|_| !reused) else {
        // Counted no more, and marked so: if scheduling it again fails, the
        // flow stays as it is and its next packet must not uncount it again.
        stop_counting(flow, table);
        if flow.state != FLOW_CLOSING {
            flow.state = FLOW_CLOSING;
        }
        return Err(if reused {
            Reason::NewFlow
        } else {
            Reason::Rescheduled
        });
    };
    if is_tcp && flags & (TCP_FIN | TCP_RST) != 0 {
        if flow.state == FLOW_ACTIVE || flow.state == FLOW_HALF_OPEN {
            stop_counting(flow, table);
            flow.state = FLOW_CLOSING;
            lc::load_dropped(real);
            share::report(&packet.key, flow.real, FLOW_CLOSING);
        }
    } else if is_tcp && flow.state == FLOW_HALF_OPEN {
        if flags & TCP_SYN == 0 {
            return Ok((real, true));
        }
        if pure_syn {
            stats::count_syn_retransmit(flow.real);
        }
    }
    if now.wrapping_sub(flow.last_seen_ns) > LAST_SEEN_GRANULARITY_NS {
        flow.last_seen_ns = now;
    }
    Ok((real, false))
}

/// A flow stops counting toward its real: it closes, or its packet is
/// scheduled again. A half-open flow of `CONNTRACK` gives its place back to
/// this CPU's `SYN_ALLOWANCE`.
#[inline(always)]
fn stop_counting(flow: &FlowValue, table: Table) {
    if conntrack::is_active(flow) {
        conntrack::connection_closed(flow.real);
    } else if conntrack::is_half_open(flow) {
        conntrack::handshake_ended(flow.real);
        if table == Table::Main {
            conntrack::return_syn_allowance();
        }
    }
}

/// The handshake of a half-open flow of `CONNTRACK` completed: it becomes
/// established where it is and counts active instead of inactive.
#[inline(always)]
fn complete_in_place(
    ctx: &XdpContext,
    key: &FlowKey,
    flow: &mut FlowValue,
    real: &RealValue,
    our_mac: &[u8; 6],
    now: u64,
) -> Reason {
    flow.state = FLOW_ACTIVE;
    flow.last_seen_ns = now;
    conntrack::return_syn_allowance();
    handshake_done(ctx, key, flow, real, our_mac)
}

/// Counts a completed handshake (inactive -> active), reports it and
/// forwards the packet that completed it.
#[inline(always)]
fn handshake_done(
    ctx: &XdpContext,
    key: &FlowKey,
    flow: &FlowValue,
    real: &RealValue,
    our_mac: &[u8; 6],
) -> Reason {
    conntrack::handshake_completed(flow.real);
    lc::load_rose(real);
    share::report(key, flow.real, FLOW_ACTIVE);
    forward(
        ctx,
        flow.service,
        flow.real,
        real,
        our_mac,
        Reason::Established,
    )
}

/// The handshake of a half-open flow completed: the flow moves to
/// `CONNTRACK` as established and counts active instead of inactive.
#[inline(always)]
fn establish(
    ctx: &XdpContext,
    key: &FlowKey,
    half: &FlowValue,
    real: &RealValue,
    our_mac: &[u8; 6],
    now: u64,
) -> Reason {
    let flow = FlowValue {
        real: half.real,
        state: FLOW_ACTIVE,
        service: half.service,
        flags: 0,
        last_seen_ns: now,
    };
    if conntrack::insert(key, &flow).is_err() {
        events::flow_dropped(ctx, key, Reason::ConntrackFull);
        return Reason::ConntrackFull;
    }
    conntrack::remove_half_open(key);
    handshake_done(ctx, key, &flow, real, our_mac)
}

/// Picks a real for a new flow and records the flow: a SYN as half-open
/// (counted inactive) in `CONNTRACK` when `syn_to_main` (see
/// [`open_in_main`]), else in `HALF_OPEN`; anything else in `CONNTRACK`
/// (active, or closing for FIN/RST). `held_in` is where the flow was kept
/// until now; a flow that changes tables leaves the old one. `reason` is
/// the one to count.
///
/// A SYN's flow may already be in `HALF_OPEN` (a retransmission; `process`
/// does not look SYNs up there, which saves a lookup for every new flow):
/// then its insert fails and the flow goes on as [`continue_flow`] says, to
/// its own real, or to the real just picked when its own is gone. A
/// retransmitted SYN thus costs a pick (an rr position, an lc pick) that
/// is not used; an lc group's hint then counted a flow that did not come,
/// so that group may look busier than it is until its next pick.
#[inline(always)]
fn schedule_flow(
    packet: &Packet,
    service: &ServiceValue,
    now: u64,
    held_in: Table,
    syn_to_main: bool,
    reason: Reason,
) -> Result<Scheduled, Reason> {
    let key = &packet.key;
    // Look the 5-tuple up before the pick, for the lookup's side effect:
    // the miss of its connection-table bucket (a random line of a big
    // table) is then in flight while the pick runs, and the insert finds
    // the bucket cached. Maglev and source hashing overlap it with their
    // own miss (a random ring slot): 435 -> 350 ns. rr, wrr and lc overlap
    // it with their pick: 3-6% less than the insert alone in `lb-bench --ab`
    // runs (in an earlier run this looked slower for rr: that case ran
    // first, on a fresh table, which is slower for its first ~12,000
    // inserts).
    if syn_to_main {
        conntrack::warm_up(key);
    }
    let closing = key.proto == PROTO_TCP && packet.tcp_flags & (TCP_FIN | TCP_RST) != 0;
    let increment = if opens_connection(packet) {
        1
    } else if closing {
        0
    } else {
        ACTIVE_LOAD
    };
    let real_id = match schedule::pick(service, key, increment) {
        Some(id) => id,
        None if service.fallback_real != NO_REAL => service.fallback_real,
        None => return Err(Reason::NoReal),
    };
    let real = usable_real(real_id).ok_or(Reason::NoReal)?;
    let mut scheduled = Scheduled {
        service: service.id,
        real_id,
        real,
        reason,
    };
    let mut flow = FlowValue {
        real: real_id,
        state: FLOW_ACTIVE,
        service: service.id,
        flags: 0,
        last_seen_ns: now,
    };
    if opens_connection(packet) {
        flow.state = FLOW_HALF_OPEN;
        if syn_to_main {
            return open_in_main(packet, &flow, scheduled, now);
        }
        if conntrack::insert_half_open_new(key, &flow).is_err() {
            if let Some(kept) = conntrack::lookup_half_open(key).and_then(|existing| {
                keep_existing(existing, packet, now, Table::HalfOpen, &mut scheduled)
            }) {
                return Ok(kept);
            }
            if conntrack::insert_half_open(key, &flow).is_err() {
                return Err(Reason::ConntrackFull);
            }
        }
        conntrack::half_open_inserted();
        conntrack::handshake_started(real_id);
        if held_in == Table::Main {
            conntrack::remove(key);
        }
        share::report(key, real_id, FLOW_HALF_OPEN);
        return Ok(scheduled);
    }
    if closing {
        flow.state = FLOW_CLOSING;
    }
    if conntrack::insert(key, &flow).is_err() {
        return Err(Reason::ConntrackFull);
    }
    if flow.state == FLOW_ACTIVE {
        conntrack::connection_opened(real_id);
    }
    if held_in == Table::HalfOpen {
        conntrack::remove_half_open(key);
    }
    share::report(key, real_id, flow.state);
    Ok(scheduled)
}

/// Records a SYN's new half-open `flow` in `CONNTRACK` (this CPU had
/// allowance, and `process` did not look the 5-tuple up). The insert fails
/// when the 5-tuple has a flow already; the lookup then finds it in the
/// bucket the insert just read, and the SYN goes on as [`continue_flow`]
/// says: a retransmission, or a SYN of an established flow, to the flow's
/// real; a SYN reusing a closing flow's 5-tuple, or of a flow whose real is
/// gone, replaces it with `flow`.
#[inline(always)]
fn open_in_main(
    packet: &Packet,
    flow: &FlowValue,
    mut scheduled: Scheduled,
    now: u64,
) -> Result<Scheduled, Reason> {
    let key = &packet.key;
    if conntrack::insert_new(key, flow).is_err() {
        if let Some(kept) = conntrack::lookup(key)
            .and_then(|existing| keep_existing(existing, packet, now, Table::Main, &mut scheduled))
        {
            return Ok(kept);
        }
        if conntrack::insert(key, flow).is_err() {
            return Err(Reason::ConntrackFull);
        }
    }
    conntrack::spend_syn_allowance();
    conntrack::handshake_started(flow.real);
    share::report(key, flow.real, FLOW_HALF_OPEN);
    Ok(scheduled)
}

/// A SYN whose insert found a flow of its 5-tuple already in `table`:
/// where that flow goes on as [`continue_flow`] says (a retransmission, or
/// a SYN of an established flow, stays on the flow's real), or `None` with
/// `scheduled.reason` set when it must be scheduled again (a closing flow's
/// 5-tuple reused, its real gone).
#[inline(always)]
fn keep_existing(
    existing: *mut FlowValue,
    packet: &Packet,
    now: u64,
    table: Table,
    scheduled: &mut Scheduled,
) -> Option<Scheduled> {
    let existing = unsafe { &mut *existing };
    match continue_flow(existing, packet, now, table) {
        Ok((real, _)) => Some(Scheduled {
            service: existing.service,
            real_id: existing.real,
            real,
            reason: Reason::Established,
        }),
        Err(why) => {
            scheduled.reason = why;
            None
        }
    }
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
