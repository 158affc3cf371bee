//! Flows this director does not know, around a failover: a mid-connection
//! TCP packet (no SYN) of a flow missing from the connection table goes to
//! the other director, which scheduled the flow and knows its real.
//!
//! - As backup: always, to the master. A backup sees client frames only
//!   while clients switch over (a stale neighbour entry), and these belong
//!   to the master's flows.
//! - Having just become master: for a window, to the previous master, for
//!   the flows it opened within its last sync interval.
//!
//! Without this, such a packet is scheduled afresh, and with any scheduler
//! but Maglev it may reach another real, which answers with a reset (or,
//! if that real still holds the same 4-tuple in `TIME_WAIT`, with challenge
//! ACKs until the client gives up): a failed or hung request at every
//! failover, as captures in the lab showed. The data path never sends a
//! frame back to the director it came from, so nothing loops.

use std::time::Duration;

/// The window when the previous master handed over (priority 0) or was
/// preempted while still advertising: it is alive and its data path
/// forwards, so every flow it knows is safe with it. Long enough for its
/// last sync round to reach this director, and for connections opened
/// just before the switch to finish.
pub const HANDED_OVER: Duration = Duration::from_secs(10);

/// The window when the previous master went silent: killed (its pinned data
/// path most likely forwards on) or cut off (then what goes to it is lost,
/// as it would be anyway): short, so a dead peer costs at most this.
pub const WENT_SILENT: Duration = Duration::from_secs(1);

/// Where unknown mid-connection packets go (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handover {
    /// Backup: to the master, as long as this lasts.
    ToMaster { mac: [u8; 6] },
    /// Just became master: to the previous master for `window`.
    ToPreviousMaster { mac: [u8; 6], window: Duration },
    /// Nowhere: no other director known, or this one is out (fault).
    Off,
}

/// The handover window, from how long ago the previous master was last
/// heard: within `recent` (the caller passes half the master-down interval:
/// a stopping master's priority 0, or a preempted one's adverts, are that
/// recent; a silent one is a whole interval old) it handed over.
#[must_use]
pub fn window(last_heard_ago: Duration, recent: Duration) -> Duration {
    if last_heard_ago < recent {
        HANDED_OVER
    } else {
        WENT_SILENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: Duration = Duration::from_millis(180);

    #[test]
    fn a_peer_heard_within_the_master_down_interval_handed_over() {
        // Priority 0 (stopping), or preempted while advertising.
        assert_eq!(window(Duration::from_millis(5), DOWN), HANDED_OVER);
    }

    #[test]
    fn a_silent_peer_gets_the_short_window() {
        assert_eq!(window(Duration::from_millis(361), DOWN), WENT_SILENT);
        assert_eq!(window(Duration::from_secs(30), DOWN), WENT_SILENT);
    }
}
