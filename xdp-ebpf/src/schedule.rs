//! Picks a real for a new flow. The tables are built in userspace (Maglev
//! rings, weighted sequences); per packet the program only indexes them, or,
//! for least-connection, compares live loads (`lc.rs`).

use crate::{
    lc,
    maps::{RR_CURSOR, SCHED_TABLE},
};
use lb_common::{FlowKey, NO_REAL, ServiceValue, TABLE_CHUNK_SLOTS, flow_hash, sched, source_hash};

/// The chosen real id, or `None` when the service has no usable real.
/// `increment` is what the flow adds to its real's least-connection load.
#[inline(always)]
pub fn pick(svc: &ServiceValue, key: &FlowKey, increment: u64) -> Option<u32> {
    let len = svc.table_len;
    if len == 0 {
        return None;
    }
    let real = match svc.scheduler {
        sched::RR | sched::WRR => table_at(svc, next_cursor(svc.id, len)?),
        sched::MAGLEV => table_at(svc, flow_hash(key) % len),
        sched::SH => table_at(svc, source_hash(&key.src) % len),
        // One call for both: each copy of the pick is verified on its own.
        sched::LC | sched::WLC => lc::pick(svc, svc.scheduler == sched::WLC, increment),
        _ => None,
    }?;
    if real == NO_REAL { None } else { Some(real) }
}

#[inline(always)]
fn table_at(svc: &ServiceValue, index: u32) -> Option<u32> {
    let slot = svc.table_offset.wrapping_add(index);
    let chunk = SCHED_TABLE.get(slot / TABLE_CHUNK_SLOTS)?;
    // The mask keeps the index provably in bounds (no panic path).
    Some(chunk.ids[(slot & (TABLE_CHUNK_SLOTS - 1)) as usize])
}

/// Advances this CPU's position for the service and returns the old one,
/// kept below `len` without a division (a table may shrink under it).
#[inline(always)]
pub fn next_cursor(service: u32, len: u32) -> Option<u32> {
    let cursor = RR_CURSOR.get_ptr_mut(service)?;
    let cursor = unsafe { &mut *cursor };
    let current = if *cursor >= len { 0 } else { *cursor };
    *cursor = current + 1;
    Some(current)
}
