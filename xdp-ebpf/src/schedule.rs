//! Picks a real for a new flow. The tables are built in userspace (Maglev
//! rings, weighted sequences); per packet the program only indexes them, or,
//! for least-connection, scans at most `MAX_LC_REALS` counters.

use crate::maps::{LC_SETS, REAL_LOAD, RR_CURSOR, SCHED_TABLE};
use aya_ebpf::{cty::c_void, helpers::generated::bpf_loop};
use lb_common::{
    FlowKey, LcSet, MAX_LC_REALS, NO_REAL, ServiceValue, TABLE_CHUNK_SLOTS, flow_hash, sched,
    source_hash,
};

/// The chosen real id, or `None` when the service has no usable real.
#[inline(always)]
pub fn pick(svc: &ServiceValue, key: &FlowKey) -> Option<u32> {
    let len = svc.table_len;
    if len == 0 {
        return None;
    }
    let real = match svc.scheduler {
        sched::RR | sched::WRR => table_at(svc, next_cursor(svc.id, len)?),
        sched::MAGLEV => table_at(svc, flow_hash(key) % len),
        sched::SH => table_at(svc, source_hash(&key.src) % len),
        sched::LC => least_connection(svc, false),
        sched::WLC => least_connection(svc, true),
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
fn next_cursor(service: u32, len: u32) -> Option<u32> {
    let cursor = RR_CURSOR.get_ptr_mut(service)?;
    let cursor = unsafe { &mut *cursor };
    let current = if *cursor >= len { 0 } else { *cursor };
    *cursor = current + 1;
    Some(current)
}

/// State of one least-connection scan, shared with the `bpf_loop` callback.
#[repr(C)]
struct LcScan {
    set: *const LcSet,
    start: u32,
    count: u32,
    weighted: u32,
    best: u32,
    best_load: u64,
    best_weight: u64,
}

/// Exactly the least-loaded member (`load`, or `load / weight` when
/// weighted), skipping weight 0. A member's load (`REAL_LOAD`) is IPVS's
/// overhead, `active * 256 + inactive`: half-open flows count, but 256 of
/// them weigh one established connection, so a SYN flood spread over the
/// reals does not drown the signal of the established ones. The scan starts at a rotating position so
/// ties are shared fairly.
///
/// The scan runs under `bpf_loop`: the verifier checks the callback once,
/// where an open-coded loop of 256 steps with data-dependent branches blows
/// its one-million-instruction budget.
#[inline(always)]
fn least_connection(svc: &ServiceValue, weighted: bool) -> Option<u32> {
    let set = LC_SETS.get_ptr(svc.table_offset)?;
    let count = unsafe { (*set).count }
        .min(svc.table_len)
        .min(MAX_LC_REALS as u32);
    if count == 0 {
        return None;
    }
    let mut scan = LcScan {
        set,
        start: next_cursor(svc.id, count)?,
        count,
        weighted: u32::from(weighted),
        best: NO_REAL,
        best_load: 0,
        best_weight: 0,
    };
    let steps = count.div_ceil(LC_MEMBERS_PER_STEP);
    unsafe {
        bpf_loop(steps, lc_step as *mut c_void, (&raw mut scan).cast(), 0);
    }
    Some(scan.best)
}

/// Members looked at per `bpf_loop` callback: a callback is a function call,
/// so each handles a few members (unrolled) to spread that cost.
const LC_MEMBERS_PER_STEP: u32 = 8;

/// Members `step * 8 .. step * 8 + 7` of the scan (in scan order).
#[inline(never)]
extern "C" fn lc_step(step: u64, scan: *mut c_void) -> i64 {
    let scan = unsafe { &mut *scan.cast::<LcScan>() };
    let first = step as u32 * LC_MEMBERS_PER_STEP;
    for k in 0..LC_MEMBERS_PER_STEP {
        let position = first + k;
        if position >= scan.count {
            break;
        }
        lc_consider(scan, position);
    }
    0
}

/// Compares the member at scan position `position` with the best so far.
#[inline(always)]
fn lc_consider(scan: &mut LcScan, position: u32) {
    let mut index = scan.start + position;
    if index >= scan.count {
        index -= scan.count;
    }
    let member = unsafe { &(*scan.set).members[(index as usize) & (MAX_LC_REALS - 1)] };
    if member.weight == 0 {
        return;
    }
    let Some(load) = REAL_LOAD.get(member.real) else {
        return;
    };
    let load = *load;
    let weight = u64::from(member.weight);
    let better = if scan.best == NO_REAL {
        true
    } else if scan.weighted != 0 {
        load * scan.best_weight < scan.best_load * weight
    } else {
        load < scan.best_load
    };
    if better {
        scan.best = member.real;
        scan.best_load = load;
        scan.best_weight = weight;
    }
}
