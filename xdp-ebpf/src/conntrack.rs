//! The connection tables: a flow keeps its real while it lives. Half-open TCP
//! flows (SYN seen, handshake not finished) live in `CONNTRACK` with the
//! rest while this CPU's `SYN_ALLOWANCE` lasts, in `HALF_OPEN` beyond it (a
//! SYN flood). Also keeps the shared per-real counts: active (established)
//! connections and the load least-connection reads, `active * 256 +
//! inactive`. The inactive (half-open) count is not kept apart: userspace
//! derives it from the two (`Dataplane::real_inactive`), which saves the
//! data path an atomic add per SYN and per completed handshake (~10 ns of a
//! new flow, measured with lb-bench).
//!
//! The two counts are updated one after the other, so a reader may see one
//! updated and not yet the other. Increases of the active count come before
//! their load, decreases after it: the inactive count derived meanwhile is
//! then too low for a moment, never too high (it is evidence that a real
//! does not answer; see `handshake_evidence`).

use crate::maps::{CONNTRACK, HALF_OPEN, HALF_OPEN_GEN, REAL_CONNS, REAL_LOAD, SYN_ALLOWANCE};
use aya_ebpf::{bindings::BPF_NOEXIST, maps::Array};
use core::intrinsics::{AtomicOrdering, atomic_xadd, atomic_xsub};
use lb_common::{
    ACTIVE_LOAD, FLOW_ACTIVE, FLOW_HALF_OPEN, FlowKey, FlowValue, HALF_OPEN_GEN_EMPTY_AT,
    HALF_OPEN_GEN_INSERTS,
};

#[inline(always)]
pub fn lookup(key: &FlowKey) -> Option<*mut FlowValue> {
    CONNTRACK.get_ptr_mut(key)
}

/// Records a new flow (or overwrites a rescheduled one).
#[inline(always)]
pub fn insert(key: &FlowKey, flow: &FlowValue) -> Result<(), i32> {
    CONNTRACK.insert(key, flow, 0)
}

/// Looks `key` up for its side effect only: the bucket it reads is then
/// cached for an insert that follows (see `schedule_flow`). A helper call,
/// which the compiler cannot drop.
#[inline(always)]
pub fn warm_up(key: &FlowKey) {
    let _ = CONNTRACK.get_ptr(key);
}

/// Records a new flow unless the 5-tuple has one already (then an error:
/// see `schedule_flow`).
#[inline(always)]
pub fn insert_new(key: &FlowKey, flow: &FlowValue) -> Result<(), i32> {
    CONNTRACK.insert(key, flow, u64::from(BPF_NOEXIST))
}

/// Whether a SYN may go into `CONNTRACK`: this CPU has allowance left, and
/// `HALF_OPEN` holds no half-open flow of this director's own (a
/// retransmission of one must find it there: see `HALF_OPEN_GEN`).
#[inline(always)]
pub fn syn_to_main() -> bool {
    let no_own_half_open = match (
        HALF_OPEN_GEN.get(HALF_OPEN_GEN_INSERTS),
        HALF_OPEN_GEN.get(HALF_OPEN_GEN_EMPTY_AT),
    ) {
        (Some(inserts), Some(empty_at)) => *inserts == *empty_at,
        _ => false,
    };
    no_own_half_open && SYN_ALLOWANCE.get(0).is_some_and(|left| *left > 0)
}

/// A half-open flow of this director's own went into `HALF_OPEN` (counted
/// after the insert: userspace reads the count before it reads the table).
#[inline(always)]
pub fn half_open_inserted() {
    if let Some(inserts) = HALF_OPEN_GEN.get_ptr_mut(HALF_OPEN_GEN_INSERTS) {
        // SAFETY: a live, 8-byte aligned map value.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(inserts, 1) };
    }
}

/// A half-open flow went into `CONNTRACK`.
#[inline(always)]
pub fn spend_syn_allowance() {
    if let Some(left) = SYN_ALLOWANCE.get_ptr_mut(0) {
        let left = unsafe { &mut *left };
        *left = left.saturating_sub(1);
    }
}

/// A half-open flow of `CONNTRACK` completed its handshake or closed. On
/// another CPU than its SYN's this moves allowance between CPUs; the next
/// ageing pass evens it out.
#[inline(always)]
pub fn return_syn_allowance() {
    if let Some(left) = SYN_ALLOWANCE.get_ptr_mut(0) {
        unsafe { *left += 1 };
    }
}

/// Forgets a flow of `CONNTRACK` (one already gone is fine).
#[inline(always)]
pub fn remove(key: &FlowKey) {
    let _ = CONNTRACK.remove(key);
}

#[inline(always)]
pub fn lookup_half_open(key: &FlowKey) -> Option<*mut FlowValue> {
    HALF_OPEN.get_ptr_mut(key)
}

/// Records a new half-open flow unless the 5-tuple has one already (then
/// an error: see `schedule_flow`).
#[inline(always)]
pub fn insert_half_open_new(key: &FlowKey, flow: &FlowValue) -> Result<(), i32> {
    HALF_OPEN.insert(key, flow, u64::from(BPF_NOEXIST))
}

/// Records a half-open flow, overwriting one of the same 5-tuple.
#[inline(always)]
pub fn insert_half_open(key: &FlowKey, flow: &FlowValue) -> Result<(), i32> {
    HALF_OPEN.insert(key, flow, 0)
}

/// Forgets a flow of `HALF_OPEN` (one already gone is fine).
#[inline(always)]
pub fn remove_half_open(key: &FlowKey) {
    let _ = HALF_OPEN.remove(key);
}

// The BPF target has no compare-and-swap, so `core::sync::atomic` offers no
// read-modify-write methods; the intrinsics compile to BPF's atomic add.

#[inline(always)]
fn add(counts: &Array<u64>, real: u32, n: u64) {
    if let Some(count) = counts.get_ptr_mut(real) {
        // SAFETY: a live, 8-byte aligned map value.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, n) };
    }
}

/// The check keeps a count that userspace just repaired from wrapping
/// around; the rare race between the check and the subtraction is repaired
/// by the next ageing pass, like any drift from LRU evictions.
#[inline(always)]
fn sub(counts: &Array<u64>, real: u32, n: u64) {
    if let Some(count) = counts.get_ptr_mut(real) {
        // SAFETY: a live, 8-byte aligned map value.
        unsafe {
            if core::ptr::read_volatile(count) >= n {
                atomic_xsub::<u64, u64, { AtomicOrdering::Relaxed }>(count, n);
            }
        }
    }
}

#[inline(always)]
pub fn connection_opened(real: u32) {
    add(&REAL_CONNS, real, 1);
    add(&REAL_LOAD, real, ACTIVE_LOAD);
}

/// A flow of `real` stopped being active.
#[inline(always)]
pub fn connection_closed(real: u32) {
    sub(&REAL_LOAD, real, ACTIVE_LOAD);
    sub(&REAL_CONNS, real, 1);
}

/// A half-open flow of `real` began (counted inactive: its load only).
#[inline(always)]
pub fn handshake_started(real: u32) {
    add(&REAL_LOAD, real, 1);
}

/// A half-open flow of `real` closed or moved to another real.
#[inline(always)]
pub fn handshake_ended(real: u32) {
    sub(&REAL_LOAD, real, 1);
}

/// A half-open flow of `real` completed its handshake: inactive -> active.
#[inline(always)]
pub fn handshake_completed(real: u32) {
    add(&REAL_CONNS, real, 1);
    add(&REAL_LOAD, real, ACTIVE_LOAD - 1);
}

/// Whether a flow value counts toward its real's active connections.
#[inline(always)]
pub fn is_active(flow: &FlowValue) -> bool {
    flow.state == FLOW_ACTIVE
}

/// Whether a flow value counts toward its real's inactive connections.
#[inline(always)]
pub fn is_half_open(flow: &FlowValue) -> bool {
    flow.state == FLOW_HALF_OPEN
}
