//! Rare events logged through aya-log (the `AYA_LOGS` ring buffer, read by
//! `lbd` into its own log): a new flow that found no usable real or no room
//! in the connection table, an ICMP error for a flow the tables do not hold.
//! Off unless userspace sets `SETTINGS_F_LOG_EVENTS` in `SETTINGS`, which it
//! switches at runtime (`[dataplane] log_events` and a reload); each event
//! costs one map read when off. No packet of an established flow reaches
//! this file.

use crate::maps::SETTINGS;
use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::{info, warn};
use lb_common::{FAMILY_V4, FlowKey, Reason, SETTINGS_F_LOG_EVENTS};

#[inline(always)]
fn enabled() -> bool {
    SETTINGS
        .get(0)
        .is_some_and(|s| s.flags & SETTINGS_F_LOG_EVENTS != 0)
}

/// A new flow was dropped: `NoReal` or `ConntrackFull`.
#[inline(never)]
pub fn flow_dropped(ctx: &XdpContext, key: &FlowKey, reason: Reason) {
    if !enabled() {
        return;
    }
    let (sport, dport) = (u16::from_be(key.src_port), u16::from_be(key.dst_port));
    let full = reason == Reason::ConntrackFull;
    if key.family == FAMILY_V4 {
        let (src, dst) = (u32::from_be(key.src[0]), u32::from_be(key.dst[0]));
        if full {
            warn!(
                ctx,
                "connection table full: dropped a new flow {:i}:{} -> {:i}:{} (proto {})",
                src,
                sport,
                dst,
                dport,
                key.proto
            );
        } else {
            warn!(
                ctx,
                "no usable real: dropped a new flow {:i}:{} -> {:i}:{} (proto {})",
                src,
                sport,
                dst,
                dport,
                key.proto
            );
        }
    } else {
        let (src, dst) = (v6(&key.src), v6(&key.dst));
        if full {
            warn!(
                ctx,
                "connection table full: dropped a new flow [{:i}]:{} -> [{:i}]:{} (proto {})",
                src,
                sport,
                dst,
                dport,
                key.proto
            );
        } else {
            warn!(
                ctx,
                "no usable real: dropped a new flow [{:i}]:{} -> [{:i}]:{} (proto {})",
                src,
                sport,
                dst,
                dport,
                key.proto
            );
        }
    }
}

/// An ICMP error about `key` (the flow as the client sent it) that no table
/// holds: passed to the kernel.
#[inline(never)]
pub fn icmp_without_flow(ctx: &XdpContext, key: &FlowKey) {
    if !enabled() {
        return;
    }
    let (sport, dport) = (u16::from_be(key.src_port), u16::from_be(key.dst_port));
    if key.family == FAMILY_V4 {
        info!(
            ctx,
            "ICMP error for an unknown flow {:i}:{} -> {:i}:{} (proto {}): passed",
            u32::from_be(key.src[0]),
            sport,
            u32::from_be(key.dst[0]),
            dport,
            key.proto
        );
    } else {
        info!(
            ctx,
            "ICMP error for an unknown flow [{:i}]:{} -> [{:i}]:{} (proto {}): passed",
            v6(&key.src),
            sport,
            v6(&key.dst),
            dport,
            key.proto
        );
    }
}

/// Key words (wire order) as the 16 bytes of an IPv6 address.
#[inline(always)]
fn v6(words: &[u32; 4]) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    for (i, word) in words.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    bytes
}
