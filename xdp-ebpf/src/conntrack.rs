//! The connection table: a flow keeps its real while it lives. Also keeps the
//! shared per-real active-connection counts that least-connection reads.

use crate::maps::{CONNTRACK, REAL_CONNS};
use core::intrinsics::{AtomicOrdering, atomic_xadd, atomic_xsub};
use lb_common::{FLOW_ACTIVE, FlowKey, FlowValue};

#[inline(always)]
pub fn lookup(key: &FlowKey) -> Option<*mut FlowValue> {
    CONNTRACK.get_ptr_mut(key)
}

/// Records a new flow (or overwrites a rescheduled one).
#[inline(always)]
pub fn insert(key: &FlowKey, flow: &FlowValue) -> Result<(), i32> {
    CONNTRACK.insert(key, flow, 0)
}

// The BPF target has no compare-and-swap, so `core::sync::atomic` offers no
// read-modify-write methods; the intrinsics compile to BPF's atomic add.

#[inline(always)]
pub fn connection_opened(real: u32) {
    if let Some(count) = REAL_CONNS.get_ptr_mut(real) {
        // SAFETY: a live, 8-byte aligned map value.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, 1) };
    }
}

/// A flow of `real` stopped being active. The zero check keeps a count that
/// userspace just repaired from wrapping around; the rare race between the
/// check and the decrement is repaired by the next ageing pass, like any
/// drift from LRU evictions.
#[inline(always)]
pub fn connection_closed(real: u32) {
    if let Some(count) = REAL_CONNS.get_ptr_mut(real) {
        // SAFETY: a live, 8-byte aligned map value.
        unsafe {
            if core::ptr::read_volatile(count) > 0 {
                atomic_xsub::<u64, u64, { AtomicOrdering::Relaxed }>(count, 1);
            }
        }
    }
}

/// Whether a flow value counts toward its real's active connections.
#[inline(always)]
pub fn is_active(flow: &FlowValue) -> bool {
    flow.state == FLOW_ACTIVE
}
