//! Least-connection: the least-loaded member of a service's set, exactly,
//! without reading every member's load per new flow.
//!
//! A member's load (`REAL_LOAD`) is IPVS's overhead, `active * 256 +
//! inactive`: half-open flows count, but 256 of them weigh one established
//! connection, so a SYN flood spread over the reals does not drown the
//! signal of the established ones. wlc compares `load / weight` (as cross
//! products, no division); lc ignores weights except that 0 takes nothing.
//!
//! The set is cut in groups of `LC_GROUP_SIZE`; `LC_HINTS` names each
//! group's least-loaded member. A pick compares the live loads of the hinted
//! members (one per group), scans the winning group and moves its hint to
//! the member that is least loaded once the pick is counted. Every change of
//! a load keeps the hints true: a pick rescans its group, a load that drops
//! (a connection closes) takes over its group's hint if it is now lower, a
//! load that rises (a handshake completes) rescans its group if it held the
//! hint. So, on one CPU, each pick is exactly the least loaded member (the
//! distribution tests pin it against the reference pick of `sched::lc`).
//! Two CPUs racing on one group may leave a hint on a member that is no
//! longer its group's least loaded until that group's next pick or the next
//! ageing pass, which recomputes every hint: a group may then look busier
//! than it is for a moment, a real is never picked that is not in the set.
//!
//! Ties: the groups are compared, and the winning group scanned, from a
//! per-CPU position that advances on every pick, and a pick moves the hint
//! off the member it just loaded when another is as loaded, so equally
//! loaded members take turns.

use crate::{
    maps::{LC_HINTS, LC_SCRATCH, LC_SETS, REAL_LOAD},
    schedule::next_cursor,
};
use aya_ebpf::{cty::c_void, helpers::generated::bpf_loop};
use lb_common::{
    LC_GROUP_SIZE, LC_GROUPS, LcHints, LcSet, MAX_LC_REALS, NO_REAL, RealValue, ServiceValue,
};

const GROUP: u32 = LC_GROUP_SIZE as u32;

/// A member with its live load; `position == u32::MAX` is none. Kept in
/// [`Scratch`] only, not on the stack.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Candidate {
    position: u32,
    real: u32,
    load: u64,
    weight: u64,
}

impl Candidate {
    const NONE: Candidate = Candidate {
        position: u32::MAX,
        real: NO_REAL,
        load: 0,
        weight: 0,
    };

    #[inline(always)]
    fn is_some(&self) -> bool {
        self.position != u32::MAX
    }

    /// `self` is a member and strictly less loaded than `other`, or
    /// `other` is none.
    #[inline(always)]
    fn beats(&self, other: &Candidate, weighted: bool) -> bool {
        if !self.is_some() {
            false
        } else if !other.is_some() {
            true
        } else if weighted {
            self.load * other.weight < other.load * self.weight
        } else {
            self.load < other.load
        }
    }
}

/// Writes the member at `position` with its load into `out` (none if it
/// takes no new flows). Into the scratch map, never the stack: see
/// [`Scratch`].
#[inline(always)]
fn load_candidate(set: &LcSet, position: u32, out: &mut Candidate) {
    let member = &set.members[(position as usize) & (MAX_LC_REALS - 1)];
    let load = if member.weight == 0 {
        None
    } else {
        REAL_LOAD.get(member.real)
    };
    match load {
        Some(load) => {
            out.position = position;
            out.real = member.real;
            out.load = *load;
            out.weight = u64::from(member.weight);
        }
        None => out.position = u32::MAX,
    }
}

/// The working state of one pick, in a per-CPU map value (`LC_SCRATCH`)
/// rather than on the stack: the verifier tracks every value on the stack
/// exactly, so positions and group numbers kept there make each path
/// through the scan a state of its own (millions of them), while values in
/// a map are unknown numbers to it and the scan's paths merge.
#[repr(C)]
pub struct Scratch {
    count: u32,
    /// Groups in the set, and the first one compared.
    groups: u32,
    first_group: u32,
    /// The group scanned, and the member of it scanned first.
    group: u32,
    offset: u32,
    weighted: u32,
    /// The group whose hinted member is least loaded, and that member.
    winner: Candidate,
    winner_group: u32,
    _pad: u32,
    /// The scanned group's least and second least loaded members.
    best: Candidate,
    second: Candidate,
    /// The member being looked at.
    current: Candidate,
}

/// What a `bpf_loop` callback gets: only pointers, which stay the same.
#[repr(C)]
struct Steps {
    set: *const LcSet,
    hints: *const LcHints,
    scratch: *mut Scratch,
}

/// Members (or groups) one `bpf_loop` callback handles, unrolled: a
/// callback is a function call, so each handles a few. The verifier's cost
/// grows fast with it (the whole program's load time, measured: 1 per step
/// 0.33 s, 2 0.57 s, 4 2.2 s, 8 beyond its budget; 0.45-0.53 s before the
/// group hints); 2 keeps the load time where it was.
const PER_STEP: u32 = 2;

/// Runs `step` over `items` items, [`PER_STEP`] per callback. Under
/// `bpf_loop` the verifier checks the callback apart from the program,
/// where the same loops inlined are explored once per path that leads to
/// them and blow its one-million-instruction budget.
#[inline(always)]
fn run_steps(items: u32, step: extern "C" fn(u64, *mut c_void) -> i64, steps: &mut Steps) {
    unsafe {
        bpf_loop(
            items.div_ceil(PER_STEP),
            step as *mut c_void,
            (steps as *mut Steps).cast(),
            0,
        );
    }
}

/// Scans `scratch.group` from its member `scratch.offset` on into
/// `scratch.best` and `scratch.second` (ties go to the first in that
/// order).
#[inline(always)]
fn scan_group(steps: &mut Steps) {
    let scratch = unsafe { &mut *steps.scratch };
    scratch.best = Candidate::NONE;
    scratch.second = Candidate::NONE;
    let first = scratch.group * GROUP;
    if first >= scratch.count {
        return;
    }
    let len = (scratch.count - first).min(GROUP);
    scratch.offset %= len;
    run_steps(len, scan_group_step, steps);
}

/// Members `step * 4 ..` of [`scan_group`]'s group, in scan order.
#[inline(never)]
extern "C" fn scan_group_step(step: u64, steps: *mut c_void) -> i64 {
    let steps = unsafe { &*steps.cast::<Steps>() };
    let (set, scratch) = unsafe { (&*steps.set, &mut *steps.scratch) };
    let weighted = scratch.weighted != 0;
    let first = scratch.group * GROUP;
    if first >= scratch.count {
        return 1;
    }
    let len = (scratch.count - first).min(GROUP);
    for k in 0..PER_STEP {
        let position = step as u32 * PER_STEP + k;
        if position >= len {
            return 1;
        }
        let mut index = scratch.offset + position;
        if index >= len {
            index -= len;
        }
        load_candidate(set, first + index, &mut scratch.current);
        if scratch.current.beats(&scratch.best, weighted) {
            scratch.second = scratch.best;
            scratch.best = scratch.current;
        } else if scratch.current.beats(&scratch.second, weighted) {
            scratch.second = scratch.current;
        }
    }
    0
}

/// Compares groups `step * 4 ..` (counted from `first_group`, wrapping)
/// by their hinted members into `scratch.winner`; the first of a tie wins.
#[inline(never)]
extern "C" fn compare_groups_step(step: u64, steps: *mut c_void) -> i64 {
    let steps = unsafe { &*steps.cast::<Steps>() };
    let (set, hints, scratch) = unsafe { (&*steps.set, &*steps.hints, &mut *steps.scratch) };
    let weighted = scratch.weighted != 0;
    for k in 0..PER_STEP {
        let i = step as u32 * PER_STEP + k;
        if i >= scratch.groups {
            return 1;
        }
        let mut group = scratch.first_group + i;
        if group >= scratch.groups {
            group -= scratch.groups;
        }
        load_candidate(
            set,
            hinted(hints, group, scratch.count),
            &mut scratch.current,
        );
        if scratch.current.beats(&scratch.winner, weighted) {
            scratch.winner = scratch.current;
            scratch.winner_group = group;
        }
    }
    0
}

/// The real a new flow of this lc/wlc service goes to; its load is about to
/// grow by `increment` (1 for a half-open flow, 256 for an established one,
/// 0 for a closing one), which the group's hint takes into account.
#[inline(always)]
pub fn pick(svc: &ServiceValue, weighted: bool, increment: u64) -> Option<u32> {
    let set = LC_SETS.get(svc.table_offset)?;
    let hints = LC_HINTS.get_ptr_mut(svc.table_offset)?;
    let scratch = LC_SCRATCH.get_ptr_mut(0)?;
    let count = set.count.min(svc.table_len).min(MAX_LC_REALS as u32);
    if count == 0 {
        return None;
    }
    let cursor = next_cursor(svc.id, count)?;
    let mut steps = Steps {
        set,
        hints,
        scratch,
    };
    let scratch = unsafe { &mut *scratch };

    // The group whose hinted member is least loaded.
    scratch.count = count;
    scratch.groups = count.div_ceil(GROUP);
    scratch.first_group = cursor / GROUP;
    scratch.weighted = u32::from(weighted);
    scratch.winner = Candidate::NONE;
    scratch.winner_group = 0;
    // (Sets of up to 16, one group: nothing to compare.)
    if scratch.groups > 1 {
        run_steps(scratch.groups, compare_groups_step, &mut steps);
        if !scratch.winner.is_some() {
            return None;
        }
    }

    // Its least-loaded member takes the flow; the hint moves to whoever is
    // least loaded once that is counted (the runner-up on a tie).
    let group = scratch.winner_group;
    scratch.group = group;
    scratch.offset = cursor % GROUP;
    scan_group(&mut steps);
    if !scratch.best.is_some() {
        return None;
    }
    scratch.current = scratch.best;
    scratch.current.load += increment;
    let next = if scratch.current.beats(&scratch.second, weighted) {
        scratch.best.position
    } else {
        scratch.second.position
    };
    set_hint(hints, group, next);
    Some(scratch.best.real)
}

/// Where a real sits in its least-connection set, as both load-change
/// paths need it.
struct Member {
    set: &'static LcSet,
    hints: *mut LcHints,
    scratch: *mut Scratch,
    count: u32,
    position: u32,
    group: u32,
    /// The group's hinted member.
    hint: u32,
}

/// `real`'s place in its set, or `None` when it is in none (or the set
/// changed under it).
#[inline(always)]
fn member(real: &RealValue) -> Option<Member> {
    let (set_index, position) = real.lc_position()?;
    let set = LC_SETS.get(set_index)?;
    let hints = LC_HINTS.get_ptr_mut(set_index)?;
    let scratch = LC_SCRATCH.get_ptr_mut(0)?;
    let count = set.count.min(MAX_LC_REALS as u32);
    if position >= count {
        return None;
    }
    let group = position / GROUP;
    Some(Member {
        set,
        hints,
        scratch,
        count,
        position,
        group,
        hint: hinted(unsafe { &*hints }, group, count),
    })
}

/// A connection of `real` closed (its load dropped): it becomes its group's
/// hint when it is now less loaded than the hinted member.
#[inline(always)]
pub fn load_dropped(real: &RealValue) {
    let Some(m) = member(real) else {
        return;
    };
    if m.hint == m.position {
        return;
    }
    let scratch = unsafe { &mut *m.scratch };
    load_candidate(m.set, m.position, &mut scratch.current);
    load_candidate(m.set, m.hint, &mut scratch.winner);
    if scratch.current.beats(&scratch.winner, m.set.weighted != 0) {
        set_hint(m.hints, m.group, m.position);
    }
}

/// A half-open flow of `real` completed its handshake (its load rose): if
/// it was its group's hint, the group is scanned for the new least loaded.
#[inline(always)]
pub fn load_rose(real: &RealValue) {
    let Some(m) = member(real) else {
        return;
    };
    if m.hint != m.position {
        return;
    }
    let mut steps = Steps {
        set: m.set,
        hints: m.hints,
        scratch: m.scratch,
    };
    let scratch = unsafe { &mut *m.scratch };
    scratch.count = m.count;
    scratch.group = m.group;
    scratch.offset = 0;
    scratch.weighted = m.set.weighted;
    scan_group(&mut steps);
    if scratch.best.is_some() {
        set_hint(m.hints, m.group, scratch.best.position);
    }
}

/// Group `group`'s hinted member, or its first member when the hint is not
/// one of the group's (a set rebuilt under it).
#[inline(always)]
fn hinted(hints: &LcHints, group: u32, count: u32) -> u32 {
    let hint = hints.best[(group as usize) & (LC_GROUPS - 1)];
    if hint / GROUP == group && hint < count {
        hint
    } else {
        group * GROUP
    }
}

#[inline(always)]
fn set_hint(hints: *mut LcHints, group: u32, position: u32) {
    // A plain store: a racing CPU's store wins or loses whole (see above).
    unsafe { (*hints).best[(group as usize) & (LC_GROUPS - 1)] = position };
}
