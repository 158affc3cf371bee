//! Per-CPU counters: by reason (global), per service, per real, and the
//! retransmitted SYNs of each real's half-open flows.

use crate::maps::{GLOBAL_STATS, REAL_STATS, REAL_SYN_RETRANS, SERVICE_STATS};
use lb_common::Reason;

#[inline(always)]
pub fn count_reason(reason: Reason) {
    if let Some(slot) = GLOBAL_STATS.get_ptr_mut(reason as u32) {
        unsafe { *slot += 1 };
    }
}

/// Counts a forwarded frame for its service and real; `new_flow` when the
/// frame started (or restarted) a flow.
#[inline(always)]
pub fn count_forward(service: u32, real: u32, bytes: u64, new_flow: bool) {
    let new = u64::from(new_flow);
    if let Some(s) = SERVICE_STATS.get_ptr_mut(service) {
        let s = unsafe { &mut *s };
        s.packets += 1;
        s.bytes += bytes;
        s.new_flows += new;
    }
    if let Some(r) = REAL_STATS.get_ptr_mut(real) {
        let r = unsafe { &mut *r };
        r.packets += 1;
        r.bytes += bytes;
        r.new_flows += new;
    }
}

/// A client sent the SYN of a half-open flow of `real` again (the real did
/// not answer the first): evidence the daemon polls to probe that real at
/// once. Only on that rare path, never per packet of other flows.
#[inline(always)]
pub fn count_syn_retransmit(real: u32) {
    if let Some(count) = REAL_SYN_RETRANS.get_ptr_mut(real) {
        unsafe { *count += 1 };
    }
}
