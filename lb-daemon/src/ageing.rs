//! The pure half of the connection-table ageing pass.
//!
//! The data path never removes flows by time: it only refreshes
//! `last_seen_ns`. Periodically the daemon reads the whole table, asks
//! [`plan`] which entries are idle past their timeout, deletes those, and
//! rewrites the per-real active counts from what is left.
//!
//! Both tables are swept: `CONNTRACK` and `HALF_OPEN` (flows whose
//! handshake has not finished, counted as *inactive* connections, with their
//! own short timeout).
//!
//! The rewrite is needed because the counts are maintained incrementally by
//! the data path (+1 on a new flow, −1 when the client sends FIN/RST), and
//! several ways a flow disappears never reach that −1: the LRU map evicting an
//! entry under pressure, a flow simply going quiet (UDP always ends that way),
//! or a racing decrement that the data path skips to avoid wrapping below 0.
//! Left alone, least-connection would steer traffic by counts that drift
//! further from reality every hour.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use lb_common::{FLOW_ACTIVE, FLOW_F_LEARNED, FLOW_HALF_OPEN, FlowKey, FlowValue, PROTO_TCP};

/// How long a flow may stay idle before it is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Established TCP flow.
    pub tcp: Duration,
    /// Half-open TCP flow: SYN seen, handshake not finished.
    pub tcp_syn: Duration,
    /// TCP flow after the client's FIN or RST: kept a while so the last
    /// packets of the close still reach the same real.
    pub tcp_closing: Duration,
    /// UDP (and anything else without connection state).
    pub udp: Duration,
}

impl Default for Timeouts {
    /// The Linux IPVS defaults (`ipvsadm --set 900 120 300`: 15 min, 2 min,
    /// 5 min, and IPVS's 60 s for `SYN_RECV`), which operators coming from
    /// IPVS already expect. 60 s for a half-open flow also outlasts a real's
    /// SYN-ACK retransmissions (Linux: the fifth and last 31 s after the
    /// first), so a slow handshake still finds its real.
    fn default() -> Self {
        Self {
            tcp: Duration::from_mins(15),
            tcp_syn: Duration::from_mins(1),
            tcp_closing: Duration::from_mins(2),
            udp: Duration::from_mins(5),
        }
    }
}

impl Timeouts {
    /// The timeout that applies to a flow. A TCP state other than
    /// [`FLOW_ACTIVE`] or [`FLOW_HALF_OPEN`] gets the closing timeout: the
    /// shorter one is the safe choice for a state this build does not know. Protocols other than TCP
    /// have no closing handshake, so their state never shortens the timeout.
    #[must_use]
    pub fn for_flow(&self, proto: u8, state: u32) -> Duration {
        match (proto, state) {
            (PROTO_TCP, FLOW_ACTIVE) => self.tcp,
            (PROTO_TCP, FLOW_HALF_OPEN) => self.tcp_syn,
            (PROTO_TCP, _) => self.tcp_closing,
            _ => self.udp,
        }
    }
}

/// What one ageing pass should do, and what the table holds after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgeingPlan {
    /// Flows in the connection table when it was read.
    pub flows_seen: usize,
    /// Flows in the half-open table when it was read.
    pub half_open_seen: usize,
    /// Surviving half-open flows of the connection table (see
    /// [`syn_allowance`]).
    pub half_open_in_main: usize,
    /// Surviving half-open flows of the half-open table that are this
    /// director's own (not learned): while there is one, SYNs go to that
    /// table (`HALF_OPEN_GEN`), so that its retransmitted SYN finds it.
    pub own_half_open_waiting: usize,
    /// Flows to delete from the connection table, in the order seen.
    pub expired: Vec<FlowKey>,
    /// Flows to delete from the half-open table, in the order seen.
    pub expired_half_open: Vec<FlowKey>,
    /// Surviving [`FLOW_ACTIVE`] flows per real id; reals with none are
    /// absent (see [`repaired_counts`]).
    pub active_per_real: HashMap<u32, u64>,
    /// Surviving [`FLOW_HALF_OPEN`] flows per real id (inactive
    /// connections), likewise.
    pub inactive_per_real: HashMap<u32, u64>,
    /// Real slots that surviving flows (of any state) still use: a removed
    /// real keeps its slot while it is here.
    pub reals_in_use: HashSet<u32>,
    /// Service ids that surviving flows still carry.
    pub services_in_use: BTreeSet<u32>,
}

/// Sorts a snapshot of the connection table into expired flows and per-real
/// active counts.
///
/// A flow expires when it has been idle for strictly longer than its timeout
/// ([`Timeouts::for_flow`]). `last_seen_ns` later than `now_ns` (the snapshot
/// raced with the data path, or clocks of different CPUs disagree slightly)
/// counts as idle for 0 ns rather than wrapping into a huge age. Note that the
/// data path refreshes `last_seen_ns` only every
/// `LAST_SEEN_GRANULARITY_NS`, so a busy flow can look up to that much older
/// than it is; timeouts are minutes, so that is not compensated for here.
///
/// Every surviving flow in [`FLOW_ACTIVE`] state, TCP or UDP, counts 1 toward
/// its real: that is exactly what the data path would have counted had it
/// seen every flow end. Flows learned from other directors
/// ([`FLOW_F_LEARNED`]) do not count, as the data path does not count them
/// until it forwards one.
pub fn plan(
    now_ns: u64,
    flows: impl IntoIterator<Item = (FlowKey, FlowValue)>,
    t: &Timeouts,
) -> AgeingPlan {
    plan_tables(now_ns, flows, [], t)
}

/// [`plan`] over both tables: `flows` of `CONNTRACK` and `half_open` of
/// `HALF_OPEN`. Surviving [`FLOW_HALF_OPEN`] flows count 1 toward their
/// real's inactive connections. [`AgeingPlan::flows_seen`] counts
/// `CONNTRACK` only (the table whose size `lbctl status` shows);
/// [`AgeingPlan::half_open_seen`] the other.
pub fn plan_tables(
    now_ns: u64,
    flows: impl IntoIterator<Item = (FlowKey, FlowValue)>,
    half_open: impl IntoIterator<Item = (FlowKey, FlowValue)>,
    t: &Timeouts,
) -> AgeingPlan {
    let mut plan = AgeingPlan::default();
    for (key, flow) in flows {
        plan.flows_seen += 1;
        if !plan.keep(now_ns, &key, &flow, t) {
            plan.expired.push(key);
        } else if flow.state == FLOW_HALF_OPEN {
            plan.half_open_in_main += 1;
        }
    }
    for (key, flow) in half_open {
        plan.half_open_seen += 1;
        if !plan.keep(now_ns, &key, &flow, t) {
            plan.expired_half_open.push(key);
        } else if flow.state == FLOW_HALF_OPEN && flow.flags & FLOW_F_LEARNED == 0 {
            plan.own_half_open_waiting += 1;
        }
    }
    plan
}

impl AgeingPlan {
    /// Counts a flow that has not expired (and says so).
    fn keep(&mut self, now_ns: u64, key: &FlowKey, flow: &FlowValue, t: &Timeouts) -> bool {
        let idle = now_ns.saturating_sub(flow.last_seen_ns);
        if u128::from(idle) > t.for_flow(key.proto, flow.state).as_nanos() {
            return false;
        }
        // A flow learned from another director (flow sharing) is that
        // director's to count, until this one forwards a packet of it.
        match (flow.state, flow.flags & FLOW_F_LEARNED) {
            (FLOW_ACTIVE, 0) => *self.active_per_real.entry(flow.real).or_insert(0) += 1,
            (FLOW_HALF_OPEN, 0) => *self.inactive_per_real.entry(flow.real).or_insert(0) += 1,
            _ => {}
        }
        self.reals_in_use.insert(flow.real);
        self.services_in_use.insert(flow.service);
        true
    }
}

/// How many more half-open flows the data path may put into a connection
/// table of `capacity` that holds `flows` flows, `half_open` of them
/// half-open (`SYN_ALLOWANCE`, split over the CPUs; beyond it SYNs go to
/// the `HALF_OPEN` table, as before the allowance existed). Half-open flows
/// there stay within about an eighth of the table, and a pass lets SYNs
/// fill it to three quarters at most (a handshake that completes or closes
/// gives its place back at once, though its flow stays until it ends or
/// idles out): a SYN flood cannot make the LRU evict an established flow,
/// while ordinary new connections touch one table instead of two (the miss
/// in `CONNTRACK` and the insert into `HALF_OPEN` were the two costliest
/// steps of a new flow).
#[must_use]
pub fn syn_allowance(capacity: u32, flows: usize, half_open: usize) -> u64 {
    let capacity = u64::from(capacity);
    let by_share = (capacity / 8).saturating_sub(half_open as u64);
    let by_room = (capacity / 4 * 3).saturating_sub(flows as u64);
    by_share.min(by_room)
}

/// The count to write for every configured real, in the order given, with 0
/// for reals that have no surviving active flow. Writing the zeros matters:
/// a real whose last flows expired would otherwise keep its stale count.
/// Reals that appear in the plan but are not known (removed since the flow was
/// created) are left out; their slots are not used by least-connection.
#[must_use]
pub fn repaired_counts(
    plan: &AgeingPlan,
    known_reals: impl IntoIterator<Item = u32>,
) -> Vec<(u32, u64)> {
    known_reals
        .into_iter()
        .map(|id| (id, plan.active_per_real.get(&id).copied().unwrap_or(0)))
        .collect()
}

/// Like [`repaired_counts`], for the inactive (half-open) counts.
#[must_use]
pub fn repaired_inactive_counts(
    plan: &AgeingPlan,
    known_reals: impl IntoIterator<Item = u32>,
) -> Vec<(u32, u64)> {
    known_reals
        .into_iter()
        .map(|id| (id, plan.inactive_per_real.get(&id).copied().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::{FAMILY_V4, FLOW_CLOSING, PROTO_UDP};

    const SEC: u64 = 1_000_000_000;
    const NOW: u64 = 10_000 * SEC;

    fn key(proto: u8, src_port: u16) -> FlowKey {
        FlowKey {
            src: [0x0100_000a, 0, 0, 0],
            dst: [0x0200_000a, 0, 0, 0],
            src_port,
            dst_port: 80,
            proto,
            family: FAMILY_V4,
            _pad: [0; 2],
        }
    }

    fn flow(real: u32, state: u32, last_seen_ns: u64) -> FlowValue {
        FlowValue {
            real,
            state,
            service: 0,
            flags: 0,
            last_seen_ns,
        }
    }

    #[test]
    fn ipvs_defaults() {
        let t = Timeouts::default();
        assert_eq!(t.tcp, Duration::from_mins(15));
        assert_eq!(t.tcp_syn, Duration::from_mins(1));
        assert_eq!(t.tcp_closing, Duration::from_mins(2));
        assert_eq!(t.udp, Duration::from_mins(5));
    }

    #[test]
    fn timeout_per_protocol_and_state() {
        let t = Timeouts::default();
        assert_eq!(t.for_flow(PROTO_TCP, FLOW_ACTIVE), t.tcp);
        assert_eq!(t.for_flow(PROTO_TCP, FLOW_HALF_OPEN), t.tcp_syn);
        assert_eq!(t.for_flow(PROTO_UDP, FLOW_HALF_OPEN), t.udp);
        assert_eq!(t.for_flow(PROTO_TCP, FLOW_CLOSING), t.tcp_closing);
        assert_eq!(t.for_flow(PROTO_TCP, 0), t.tcp_closing);
        assert_eq!(t.for_flow(PROTO_UDP, FLOW_ACTIVE), t.udp);
        assert_eq!(t.for_flow(PROTO_UDP, FLOW_CLOSING), t.udp);
    }

    #[test]
    fn each_timeout_boundary() {
        let t = Timeouts::default();
        let cases = [
            (PROTO_TCP, FLOW_ACTIVE, 900 * SEC),
            (PROTO_TCP, FLOW_HALF_OPEN, 60 * SEC),
            (PROTO_TCP, FLOW_CLOSING, 120 * SEC),
            (PROTO_UDP, FLOW_ACTIVE, 300 * SEC),
            (PROTO_UDP, FLOW_CLOSING, 300 * SEC),
        ];
        for (proto, state, timeout) in cases {
            let at = plan(NOW, [(key(proto, 1), flow(1, state, NOW - timeout))], &t);
            assert!(
                at.expired.is_empty(),
                "proto {proto} state {state} at timeout"
            );
            let past = plan(
                NOW,
                [(key(proto, 1), flow(1, state, NOW - timeout - 1))],
                &t,
            );
            assert_eq!(
                past.expired,
                [key(proto, 1)],
                "proto {proto} state {state} past"
            );
            assert!(past.active_per_real.is_empty());
        }
    }

    #[test]
    fn counts_only_live_active_flows() {
        let t = Timeouts::default();
        let flows = [
            (key(PROTO_TCP, 1), flow(1, FLOW_ACTIVE, NOW - SEC)),
            (key(PROTO_TCP, 2), flow(1, FLOW_ACTIVE, NOW - 901 * SEC)), // expired
            (key(PROTO_TCP, 3), flow(1, FLOW_CLOSING, NOW - SEC)),      // closing
            (key(PROTO_UDP, 4), flow(2, FLOW_ACTIVE, NOW - 299 * SEC)), // UDP alive
            (key(PROTO_UDP, 5), flow(2, FLOW_ACTIVE, NOW - 301 * SEC)), // UDP idle
            (key(PROTO_TCP, 6), flow(3, FLOW_CLOSING, NOW)),
            (key(PROTO_TCP, 7), flow(2, FLOW_ACTIVE, NOW)),
        ];
        let p = plan(NOW, flows, &t);
        assert_eq!(p.expired, [key(PROTO_TCP, 2), key(PROTO_UDP, 5)]);
        assert_eq!(p.active_per_real, HashMap::from([(1, 1), (2, 2)]));
        assert_eq!(
            repaired_counts(&p, [3, 2, 1, 4]),
            [(3, 0), (2, 2), (1, 1), (4, 0)]
        );
    }

    #[test]
    fn clock_going_backwards_does_not_expire() {
        let t = Timeouts {
            tcp: Duration::ZERO,
            tcp_syn: Duration::ZERO,
            tcp_closing: Duration::ZERO,
            udp: Duration::ZERO,
        };
        let flows = [
            (key(PROTO_TCP, 1), flow(1, FLOW_ACTIVE, NOW + SEC)),
            (key(PROTO_UDP, 2), flow(1, FLOW_ACTIVE, u64::MAX)),
            (key(PROTO_TCP, 3), flow(1, FLOW_ACTIVE, NOW)),
        ];
        let p = plan(NOW, flows, &t);
        assert!(p.expired.is_empty());
        assert_eq!(p.active_per_real[&1], 3);
        // Zero timeout: one nanosecond idle is too much.
        let p = plan(
            NOW,
            [(key(PROTO_TCP, 1), flow(1, FLOW_ACTIVE, NOW - 1))],
            &t,
        );
        assert_eq!(p.expired.len(), 1);
    }

    #[test]
    fn huge_timeouts_never_expire() {
        let t = Timeouts {
            tcp: Duration::MAX,
            tcp_syn: Duration::MAX,
            tcp_closing: Duration::MAX,
            udp: Duration::MAX,
        };
        let p = plan(
            u64::MAX,
            [(key(PROTO_TCP, 1), flow(1, FLOW_CLOSING, 0))],
            &t,
        );
        assert!(p.expired.is_empty());
        assert!(p.active_per_real.is_empty());
    }

    #[test]
    fn half_open_flows_count_inactive_and_expire_from_their_table() {
        let t = Timeouts::default();
        let main = [
            (key(PROTO_TCP, 1), flow(1, FLOW_ACTIVE, NOW - SEC)),
            (key(PROTO_TCP, 2), flow(2, FLOW_ACTIVE, NOW - 61 * SEC)), // alive: 15 min
        ];
        let half_open = [
            (key(PROTO_TCP, 3), flow(1, FLOW_HALF_OPEN, NOW - 59 * SEC)),
            (key(PROTO_TCP, 4), flow(1, FLOW_HALF_OPEN, NOW - 61 * SEC)), // expired
            (key(PROTO_TCP, 5), flow(2, FLOW_HALF_OPEN, NOW)),
            (key(PROTO_TCP, 6), flow(3, FLOW_CLOSING, NOW - SEC)), // RST while half-open
        ];
        let p = plan_tables(NOW, main, half_open, &t);
        assert_eq!((p.flows_seen, p.half_open_seen), (2, 4));
        assert!(p.expired.is_empty());
        assert_eq!(p.expired_half_open, [key(PROTO_TCP, 4)]);
        assert_eq!(p.active_per_real, HashMap::from([(1, 1), (2, 1)]));
        assert_eq!(p.inactive_per_real, HashMap::from([(1, 1), (2, 1)]));
        assert_eq!(
            repaired_inactive_counts(&p, [1, 2, 3]),
            [(1, 1), (2, 1), (3, 0)]
        );
        assert!(p.reals_in_use.contains(&3), "a closing flow keeps its real");
    }

    #[test]
    fn learned_flows_keep_their_real_but_do_not_count() {
        let t = Timeouts::default();
        let learned = |state| FlowValue {
            flags: FLOW_F_LEARNED,
            ..flow(4, state, NOW)
        };
        let main = [
            (key(PROTO_TCP, 1), learned(FLOW_ACTIVE)),
            (key(PROTO_TCP, 2), flow(4, FLOW_ACTIVE, NOW)),
        ];
        let half_open = [
            (key(PROTO_TCP, 3), learned(FLOW_HALF_OPEN)),
            (key(PROTO_TCP, 4), flow(4, FLOW_HALF_OPEN, NOW)),
        ];
        let p = plan_tables(NOW, main, half_open, &t);
        assert_eq!(p.active_per_real, HashMap::from([(4, 1)]));
        assert_eq!(p.inactive_per_real, HashMap::from([(4, 1)]));
        assert!(p.reals_in_use.contains(&4));
        // Learned flows expire like any other.
        let old = FlowValue {
            last_seen_ns: NOW - 901 * SEC,
            ..learned(FLOW_ACTIVE)
        };
        assert_eq!(plan(NOW, [(key(PROTO_TCP, 1), old)], &t).expired.len(), 1);
    }

    #[test]
    fn own_half_open_flows_waiting_in_the_half_open_table_are_counted() {
        let t = Timeouts::default();
        let learned = FlowValue {
            flags: FLOW_F_LEARNED,
            ..flow(3, FLOW_HALF_OPEN, NOW)
        };
        let half_open = [
            (key(PROTO_TCP, 1), flow(1, FLOW_HALF_OPEN, NOW)),
            (key(PROTO_TCP, 2), flow(1, FLOW_CLOSING, NOW)),
            (key(PROTO_TCP, 3), learned),
            (key(PROTO_TCP, 4), flow(2, FLOW_HALF_OPEN, NOW - 61 * SEC)), // expired
        ];
        let p = plan_tables(NOW, [], half_open, &t);
        assert_eq!(p.own_half_open_waiting, 1);
    }

    #[test]
    fn half_open_flows_of_the_connection_table_are_counted_apart() {
        let t = Timeouts::default();
        let main = [
            (key(PROTO_TCP, 1), flow(1, FLOW_ACTIVE, NOW)),
            (key(PROTO_TCP, 2), flow(1, FLOW_HALF_OPEN, NOW)),
            (key(PROTO_TCP, 3), flow(2, FLOW_HALF_OPEN, NOW - 61 * SEC)), // expired
        ];
        let p = plan(NOW, main, &t);
        assert_eq!((p.flows_seen, p.half_open_in_main), (3, 1));
        assert_eq!(p.expired, [key(PROTO_TCP, 3)]);
        assert_eq!(p.inactive_per_real, HashMap::from([(1, 1)]));
        assert_eq!(p.active_per_real, HashMap::from([(1, 1)]));
    }

    #[test]
    fn syn_allowance_keeps_an_eighth_for_half_open_and_a_quarter_free() {
        // Empty: an eighth of the table.
        assert_eq!(syn_allowance(1024, 0, 0), 128);
        // Half-open flows there use up their eighth.
        assert_eq!(syn_allowance(1024, 100, 100), 28);
        assert_eq!(syn_allowance(1024, 200, 128), 0);
        assert_eq!(syn_allowance(1024, 200, 500), 0);
        // A table three quarters full takes no more SYNs, whatever fills it.
        assert_eq!(syn_allowance(1024, 700, 0), 68);
        assert_eq!(syn_allowance(1024, 768, 0), 0);
        assert_eq!(syn_allowance(1024, 2000, 0), 0);
        // Never more than the table.
        assert_eq!(syn_allowance(u32::MAX, 0, 0), u64::from(u32::MAX) / 8);
    }

    #[test]
    fn empty_table() {
        let p = plan(NOW, [], &Timeouts::default());
        assert_eq!(p, AgeingPlan::default());
        assert_eq!(repaired_counts(&p, [7, 8]), [(7, 0), (8, 0)]);
        assert!(repaired_counts(&p, []).is_empty());
    }
}
