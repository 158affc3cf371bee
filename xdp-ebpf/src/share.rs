//! Flow sharing (`[ecmp.sync]`): the data path reports every flow it opens,
//! every handshake it completes and every flow that starts closing into the
//! `SHARE_EVENTS` ring buffer, and lbd sends them to the other directors.
//! Off (one settings read per report, no write) unless userspace sets
//! `SETTINGS_F_SHARE_FLOWS`. Never on an established flow's ordinary
//! packets. A full ring buffer drops the record and counts it; the packet
//! goes on.
//!
//! Flows learned from another director carry `FLOW_F_LEARNED` and count in
//! no real's connections here; [`adopt`] makes one this director's own when
//! it forwards a packet of it.

use crate::{
    conntrack,
    maps::{SETTINGS, SHARE_DROPPED, SHARE_EVENTS},
};
use lb_common::{
    FLOW_ACTIVE, FLOW_F_LEARNED, FLOW_HALF_OPEN, FlowEvent, FlowKey, FlowValue,
    SETTINGS_F_SHARE_FLOWS,
};

/// Reports `key`'s flow on `real`, now in `state`, when sharing is on.
#[inline(always)]
pub fn report(key: &FlowKey, real: u32, state: u32) {
    if SETTINGS
        .get(0)
        .is_some_and(|s| s.flags & SETTINGS_F_SHARE_FLOWS != 0)
    {
        write(key, real, state);
    }
}

#[inline(never)]
fn write(key: &FlowKey, real: u32, state: u32) {
    let event = FlowEvent {
        key: *key,
        real,
        state,
    };
    if SHARE_EVENTS.output::<FlowEvent>(&event, 0).is_err()
        && let Some(dropped) = SHARE_DROPPED.get_ptr_mut(0)
    {
        unsafe { *dropped += 1 };
    }
}

/// A flow this director is about to forward a packet of: if it was learned
/// from another director, it is ours from now on and counts here (and
/// `true`).
#[inline(always)]
pub fn adopt(flow: &mut FlowValue) -> bool {
    if flow.flags & FLOW_F_LEARNED == 0 {
        return false;
    }
    flow.flags &= !FLOW_F_LEARNED;
    match flow.state {
        FLOW_ACTIVE => conntrack::connection_opened(flow.real),
        FLOW_HALF_OPEN => conntrack::handshake_started(flow.real),
        _ => {}
    }
    true
}
