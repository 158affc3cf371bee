//! Which reals' MACs the daemon wants, what it last saw, and what to ask
//! the kernel to resolve. Pure bookkeeping: the caller feeds it neighbour
//! dumps ([`super::Netlink::neighbours`]) and calls
//! [`super::Netlink::resolve`] for what it returns.
//!
//! A MAC is usable when the entry is `REACHABLE`, `STALE`, `DELAY`, `PROBE`,
//! `PERMANENT` or `NOARP` and carries a non-zero 6-byte address
//! ([`super::Neighbour::usable_mac`]). A `STALE` entry's MAC stays in use
//! while the kernel re-confirms it. A target whose entry is missing,
//! `INCOMPLETE`, `FAILED` or `NONE` has no MAC: the daemon keeps that real
//! out of rotation until it has one.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::{Mac, Neighbour, NeighbourState};

/// A wanted address: the interface it is reached on, and the address.
pub type Target = (u32, IpAddr);

/// The MACs of a set of wanted neighbours, as of the last dump.
#[derive(Debug, Clone, Default)]
pub struct MacTracker {
    targets: BTreeMap<Target, Seen>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    mac: Option<Mac>,
    /// Consecutive dumps in which the entry was `INCOMPLETE`.
    incomplete_rounds: u32,
}

/// A wanted neighbour's MAC as the daemon should now use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacChange {
    pub ifindex: u32,
    pub addr: IpAddr,
    /// What the previous dump gave (`None`: no usable MAC, or a new target).
    pub old: Option<Mac>,
    /// What this dump gives (`None`: no usable MAC any more).
    pub new: Option<Mac>,
}

/// The outcome of one dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Wanted targets whose usable MAC appeared, changed or went away.
    pub changes: Vec<MacChange>,
    /// Targets to pass to [`super::Netlink::resolve`] now.
    pub to_resolve: Vec<Target>,
    /// Targets whose entry is `FAILED`: the kernel tried and got no answer
    /// (they are also in `to_resolve`, to try again).
    pub failed: Vec<Target>,
}

impl MacTracker {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set of wanted targets (reals come and go). Targets that
    /// stay keep what was seen of them; new ones start with no MAC.
    pub fn set_wanted(&mut self, wanted: impl IntoIterator<Item = Target>) {
        let mut old = std::mem::take(&mut self.targets);
        self.targets = wanted
            .into_iter()
            .map(|target| (target, old.remove(&target).unwrap_or_default()))
            .collect();
    }

    /// The wanted targets, in order.
    pub fn wanted(&self) -> impl Iterator<Item = Target> + '_ {
        self.targets.keys().copied()
    }

    /// Takes in one neighbour dump: the MAC changes since the previous one
    /// (for wanted targets only) and what to resolve.
    ///
    /// Resolution is requested for a target whose entry is missing,
    /// `STALE` (to re-confirm it; the MAC stays in use meanwhile), `FAILED`
    /// or `NONE`, and for one `INCOMPLETE` in two dumps in a row (the kernel
    /// is already soliciting; don't push it every round). Never for
    /// `REACHABLE`, `DELAY`, `PROBE` (the kernel is on it), `PERMANENT` or
    /// `NOARP` (nothing to resolve; `NTF_USE` would even undo `PERMANENT`).
    pub fn update(&mut self, dump: &[Neighbour]) -> Update {
        let entries: HashMap<Target, &Neighbour> =
            dump.iter().map(|n| ((n.ifindex, n.addr), n)).collect();
        let mut update = Update::default();
        for (&(ifindex, addr), seen) in &mut self.targets {
            let entry = entries.get(&(ifindex, addr));
            let new = entry.and_then(|n| n.usable_mac());
            if new != seen.mac {
                update.changes.push(MacChange {
                    ifindex,
                    addr,
                    old: seen.mac,
                    new,
                });
                seen.mac = new;
            }
            let state = entry.map(|n| n.state);
            if state == Some(NeighbourState::Incomplete) {
                seen.incomplete_rounds += 1;
            } else {
                seen.incomplete_rounds = 0;
            }
            let resolve = match state {
                None
                | Some(NeighbourState::Stale | NeighbourState::Failed | NeighbourState::None) => {
                    true
                }
                Some(NeighbourState::Incomplete) => {
                    if seen.incomplete_rounds >= 2 {
                        seen.incomplete_rounds = 0;
                        true
                    } else {
                        false
                    }
                }
                Some(
                    NeighbourState::Reachable
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
                    | NeighbourState::NoArp,
                ) => false,
            };
            if resolve {
                update.to_resolve.push((ifindex, addr));
            }
            if state == Some(NeighbourState::Failed) {
                update.failed.push((ifindex, addr));
            }
        }
        update
    }

    /// The usable MAC of `addr` as of the last dump (on whichever wanted
    /// interface it was seen).
    #[must_use]
    pub fn mac(&self, addr: IpAddr) -> Option<Mac> {
        self.targets
            .iter()
            .filter(|((_, a), _)| *a == addr)
            .find_map(|(_, seen)| seen.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IF: u32 = 3;
    const MAC_A: Mac = [2, 0, 0, 0, 0, 0xa];
    const MAC_B: Mac = [2, 0, 0, 0, 0, 0xb];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn n(addr: &str, mac: Option<Mac>, state: NeighbourState) -> Neighbour {
        Neighbour {
            ifindex: IF,
            addr: ip(addr),
            mac,
            state,
        }
    }

    fn change(addr: &str, old: Option<Mac>, new: Option<Mac>) -> MacChange {
        MacChange {
            ifindex: IF,
            addr: ip(addr),
            old,
            new,
        }
    }

    fn tracker(addrs: &[&str]) -> MacTracker {
        let mut t = MacTracker::new();
        t.set_wanted(addrs.iter().map(|a| (IF, ip(a))));
        t
    }

    #[test]
    fn missing_target_is_resolved_then_learned() {
        let mut t = tracker(&["10.0.0.2"]);
        let u = t.update(&[]);
        assert!(u.changes.is_empty());
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.2"))]);
        assert_eq!(t.mac(ip("10.0.0.2")), None);

        let u = t.update(&[n("10.0.0.2", Some(MAC_A), NeighbourState::Reachable)]);
        assert_eq!(u.changes, [change("10.0.0.2", None, Some(MAC_A))]);
        assert!(u.to_resolve.is_empty());
        assert_eq!(t.mac(ip("10.0.0.2")), Some(MAC_A));

        // Nothing new: no change, nothing to do.
        let u = t.update(&[n("10.0.0.2", Some(MAC_A), NeighbourState::Reachable)]);
        assert_eq!(u, Update::default());
    }

    #[test]
    fn stale_keeps_mac_and_is_reresolved() {
        let mut t = tracker(&["10.0.0.2"]);
        t.update(&[n("10.0.0.2", Some(MAC_A), NeighbourState::Reachable)]);
        let u = t.update(&[n("10.0.0.2", Some(MAC_A), NeighbourState::Stale)]);
        assert!(u.changes.is_empty());
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.2"))]);
        assert_eq!(t.mac(ip("10.0.0.2")), Some(MAC_A));
        for state in [NeighbourState::Delay, NeighbourState::Probe] {
            let u = t.update(&[n("10.0.0.2", Some(MAC_A), state)]);
            assert_eq!(u, Update::default(), "{state}");
        }
    }

    #[test]
    fn changed_mac_is_reported() {
        let mut t = tracker(&["fd00::2"]);
        t.update(&[n("fd00::2", Some(MAC_A), NeighbourState::Reachable)]);
        let u = t.update(&[n("fd00::2", Some(MAC_B), NeighbourState::Reachable)]);
        assert_eq!(u.changes, [change("fd00::2", Some(MAC_A), Some(MAC_B))]);
        assert_eq!(t.mac(ip("fd00::2")), Some(MAC_B));
    }

    #[test]
    fn failed_loses_mac_and_is_retried() {
        let mut t = tracker(&["10.0.0.2"]);
        t.update(&[n("10.0.0.2", Some(MAC_A), NeighbourState::Probe)]);
        // The kernel keeps the old lladdr on a FAILED entry: not usable.
        let failed = [n("10.0.0.2", Some(MAC_A), NeighbourState::Failed)];
        let u = t.update(&failed);
        assert_eq!(u.changes, [change("10.0.0.2", Some(MAC_A), None)]);
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.2"))]);
        assert_eq!(u.failed, [(IF, ip("10.0.0.2"))]);
        assert_eq!(t.mac(ip("10.0.0.2")), None);
        // Still failed: retried every round, no new change.
        let u = t.update(&failed);
        assert!(u.changes.is_empty());
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.2"))]);
    }

    #[test]
    fn vanished_entry_loses_mac() {
        let mut t = tracker(&["10.0.0.2"]);
        t.update(&[n("10.0.0.2", Some(MAC_A), NeighbourState::Reachable)]);
        let u = t.update(&[]);
        assert_eq!(u.changes, [change("10.0.0.2", Some(MAC_A), None)]);
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.2"))]);
    }

    #[test]
    fn incomplete_is_reprobed_only_after_a_full_round() {
        let mut t = tracker(&["10.0.0.2"]);
        let incomplete = [n("10.0.0.2", None, NeighbourState::Incomplete)];
        let rounds: Vec<bool> = (0..5)
            .map(|_| !t.update(&incomplete).to_resolve.is_empty())
            .collect();
        assert_eq!(rounds, [false, true, false, true, false]);
        // Another state in between restarts the count.
        let mut t = tracker(&["10.0.0.2"]);
        assert!(t.update(&incomplete).to_resolve.is_empty());
        assert!(!t.update(&[]).to_resolve.is_empty());
        assert!(t.update(&incomplete).to_resolve.is_empty());
    }

    #[test]
    fn states_that_are_never_probed() {
        for state in [
            NeighbourState::Reachable,
            NeighbourState::Delay,
            NeighbourState::Probe,
            NeighbourState::Permanent,
            NeighbourState::NoArp,
        ] {
            let mut t = tracker(&["10.0.0.2"]);
            let u = t.update(&[n("10.0.0.2", Some(MAC_A), state)]);
            assert!(u.to_resolve.is_empty(), "{state}");
            assert_eq!(t.mac(ip("10.0.0.2")), Some(MAC_A), "{state}");
        }
        let mut t = tracker(&["10.0.0.2"]);
        let u = t.update(&[n("10.0.0.2", None, NeighbourState::None)]);
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.2"))]);
    }

    #[test]
    fn zero_mac_is_no_mac() {
        let mut t = tracker(&["10.0.0.2"]);
        let u = t.update(&[n("10.0.0.2", Some([0; 6]), NeighbourState::Reachable)]);
        assert!(u.changes.is_empty());
        assert_eq!(t.mac(ip("10.0.0.2")), None);
    }

    #[test]
    fn unwanted_and_other_interface_entries_are_ignored() {
        let mut t = tracker(&["10.0.0.2"]);
        let mut other_if = n("10.0.0.2", Some(MAC_B), NeighbourState::Reachable);
        other_if.ifindex = IF + 1;
        let u = t.update(&[
            other_if,
            n("10.0.0.9", Some(MAC_A), NeighbourState::Reachable),
        ]);
        assert!(u.changes.is_empty());
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.2"))]);
        assert_eq!(t.mac(ip("10.0.0.9")), None);
    }

    #[test]
    fn set_wanted_keeps_known_and_drops_gone() {
        let mut t = tracker(&["10.0.0.2", "10.0.0.3"]);
        t.update(&[
            n("10.0.0.2", Some(MAC_A), NeighbourState::Reachable),
            n("10.0.0.3", Some(MAC_B), NeighbourState::Reachable),
        ]);
        t.set_wanted([(IF, ip("10.0.0.3")), (IF, ip("10.0.0.4"))]);
        assert_eq!(t.mac(ip("10.0.0.2")), None);
        assert_eq!(t.mac(ip("10.0.0.3")), Some(MAC_B));
        assert_eq!(
            t.wanted().collect::<Vec<_>>(),
            [(IF, ip("10.0.0.3")), (IF, ip("10.0.0.4"))]
        );
        // The kept target does not report itself as new.
        let u = t.update(&[n("10.0.0.3", Some(MAC_B), NeighbourState::Reachable)]);
        assert!(u.changes.is_empty());
        assert_eq!(u.to_resolve, [(IF, ip("10.0.0.4"))]);
    }
}
