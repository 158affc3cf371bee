//! The least-connection pick: the rule the data path follows.
//!
//! lc/wlc cannot be precomputed: the choice depends on live connection
//! counts. The XDP program picks from its member set itself (comparing the
//! groups' hinted members, then scanning one group: `xdp-ebpf/src/lc.rs`);
//! [`pick`] is the same rule as one plain scan, so `lbctl trace` can say
//! which real a new flow would get and tests can pin the rule the program
//! must follow: both pick a least-loaded member; among equally loaded ones
//! the order differs. [`group_hints`] computes the hints the program starts
//! from.

use lb_common::{LC_GROUP_SIZE, LC_GROUPS, LcHints, MAX_LC_REALS};

/// One member of a least-connection set with its current load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LcCandidate {
    /// Real id.
    pub id: u32,
    /// Effective weight; 0 means the member takes no new flows.
    pub weight: u32,
    /// Active connections, as counted in `REAL_CONNS`.
    pub active: u64,
    /// Inactive (half-open) connections, as counted in `REAL_INACTIVE`.
    pub inactive: u64,
}

impl LcCandidate {
    /// IPVS's overhead: `active * 256 + inactive`. Half-open connections
    /// count, but 256 of them weigh as much as one established one, so a SYN
    /// flood does not drown the established connections' signal.
    #[must_use]
    pub fn load(&self) -> u64 {
        self.active
            .wrapping_mul(lb_common::ACTIVE_LOAD)
            .wrapping_add(self.inactive)
    }
}

/// Index (into `candidates`) of the member a new flow goes to, or `None`
/// when no member has a nonzero weight.
///
/// The scan starts at `start % len` and wraps around; the first member in
/// that order wins ties. The data path passes a per-CPU cursor that advances
/// on every pick, so equally loaded members take turns instead of the first
/// one always winning (which matters right after start-up, when every count
/// is 0).
///
/// A member's load is [`LcCandidate::load`] (`active * 256 + inactive`).
///
/// - lc (`weighted == false`): least load wins; weights only exclude 0.
/// - wlc: `a` beats `b` iff `a.load / a.weight < b.load / b.weight`,
///   compared as `a.load * b.weight < b.load * a.weight` so no division
///   (and no rounding) is needed. The products are taken in u128 here; the
///   data path uses u64, which agrees as long as loads stay below 2^32.
///
/// Only the first [`MAX_LC_REALS`] candidates are considered, because that
/// is all a data-path member set can hold.
#[must_use]
pub fn pick(candidates: &[LcCandidate], start: usize, weighted: bool) -> Option<usize> {
    let len = candidates.len().min(MAX_LC_REALS);
    if len == 0 {
        return None;
    }
    let first = start % len;
    let mut best: Option<usize> = None;
    for i in (first..len).chain(0..first) {
        let c = &candidates[i];
        if c.weight == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some(b) => beats(c, &candidates[b], weighted),
        };
        if better {
            best = Some(i);
        }
    }
    best
}

/// Whether `a` is strictly less loaded than `b` (both have nonzero weights).
fn beats(a: &LcCandidate, b: &LcCandidate, weighted: bool) -> bool {
    load_beats((a.load(), a.weight), (b.load(), b.weight), weighted)
}

/// Whether (load, weight) `a` is strictly less loaded than `b`.
fn load_beats(a: (u64, u32), b: (u64, u32), weighted: bool) -> bool {
    if weighted {
        u128::from(a.0) * u128::from(b.1) < u128::from(b.0) * u128::from(a.1)
    } else {
        a.0 < b.0
    }
}

/// The data path's group hints (`LcHints`) for a set whose members have
/// these (load, weight) pairs, in set order: each group's least-loaded
/// member with a nonzero weight, the first of a tie; a group without one
/// names its first member. Userspace writes them with every new set and
/// after it writes counts itself; the data path keeps them between.
#[must_use]
pub fn group_hints(members: &[(u64, u32)], weighted: bool) -> LcHints {
    let mut hints = LcHints::default();
    for (group, chunk) in members.chunks(LC_GROUP_SIZE).take(LC_GROUPS).enumerate() {
        let mut best: Option<usize> = None;
        for (i, member) in chunk.iter().enumerate() {
            if member.1 == 0 {
                continue;
            }
            if best.is_none_or(|b| load_beats(*member, chunk[b], weighted)) {
                best = Some(i);
            }
        }
        hints.best[group] = (group * LC_GROUP_SIZE + best.unwrap_or(0)) as u32;
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_hints_name_each_groups_least_loaded_member() {
        let mut members = vec![(10u64, 1u32); 40];
        members[3] = (2, 1);
        members[5] = (2, 1); // a tie: the first wins
        members[20] = (0, 0); // weight 0 takes nothing, however idle
        members[21] = (4, 1);
        members[39] = (1, 1);
        let hints = group_hints(&members, false);
        assert_eq!(&hints.best[..3], &[3, 21, 39]);
        assert_eq!(hints.best[3], 0, "groups past the set are unused");
    }

    #[test]
    fn group_hints_compare_per_weight_for_wlc() {
        // 30/3 = 10 against 12/1: weighted, member 1 is less loaded.
        let members = [(12u64, 1u32), (30, 3)];
        assert_eq!(group_hints(&members, true).best[0], 1);
        assert_eq!(group_hints(&members, false).best[0], 0);
    }

    #[test]
    fn a_group_of_weight_zero_members_names_its_first() {
        let members = [(1u64, 1u32); 16]
            .into_iter()
            .chain([(0, 0); 4])
            .collect::<Vec<_>>();
        assert_eq!(group_hints(&members, false).best[1], 16);
    }

    fn cands(list: &[(u32, u64)]) -> Vec<LcCandidate> {
        list.iter()
            .enumerate()
            .map(|(i, &(weight, active))| LcCandidate {
                id: 100 + i as u32,
                weight,
                active,
                inactive: 0,
            })
            .collect()
    }

    #[test]
    fn half_open_connections_weigh_one_in_256() {
        let mut c = cands(&[(1, 1), (1, 2)]);
        c[0].inactive = 255; // 511 against 512
        assert_eq!(pick(&c, 1, false), Some(0));
        c[0].inactive = 256; // a tie: scan order decides
        assert_eq!(pick(&c, 1, false), Some(1));
        assert_eq!(pick(&c, 0, false), Some(0));
        c[0].inactive = 257;
        assert_eq!(pick(&c, 0, false), Some(1));
        // wlc: (256 + 300) / 1 against (512 + 0) / 1, then weight 2 halves it.
        c[0].inactive = 300;
        assert_eq!(pick(&c, 0, true), Some(1));
        c[0].weight = 2;
        assert_eq!(pick(&c, 1, true), Some(0));
    }

    #[test]
    fn picks_the_least_loaded() {
        let c = cands(&[(1, 5), (1, 3), (1, 9), (1, 4)]);
        for start in 0..8 {
            assert_eq!(pick(&c, start, false), Some(1), "start {start}");
        }
    }

    #[test]
    fn ties_rotate_with_start() {
        let c = cands(&[(1, 2), (1, 7), (1, 2), (1, 2)]);
        let picks: Vec<_> = (0..8).map(|s| pick(&c, s, false).unwrap()).collect();
        // Start on a tied member: it wins; start on the loaded one: the next
        // tied member in scan order wins.
        assert_eq!(picks, [0, 2, 2, 3, 0, 2, 2, 3]);
        let idle = cands(&[(1, 0); 5]);
        let picks: Vec<_> = (0..5).map(|s| pick(&idle, s, false).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 3, 4]);
        assert_eq!(pick(&idle, usize::MAX, false), Some(usize::MAX % 5));
    }

    #[test]
    fn weight_zero_is_skipped() {
        let c = cands(&[(0, 0), (1, 10), (0, 1), (2, 11)]);
        assert_eq!(pick(&c, 0, false), Some(1));
        assert_eq!(pick(&c, 2, false), Some(1));
        assert_eq!(pick(&c, 0, true), Some(3));
    }

    #[test]
    fn nothing_to_pick() {
        assert_eq!(pick(&[], 3, false), None);
        assert_eq!(pick(&cands(&[(0, 0), (0, 5)]), 1, false), None);
        assert_eq!(pick(&cands(&[(0, 0), (0, 5)]), 1, true), None);
    }

    #[test]
    fn wlc_compares_load_per_weight() {
        // 10/1 vs 19/2: the heavier member is relatively less loaded.
        let c = cands(&[(1, 10), (2, 19)]);
        assert_eq!(pick(&c, 0, true), Some(1));
        assert_eq!(pick(&c, 0, false), Some(0));
        // 10/1 == 20/2: a tie, decided by scan order.
        let c = cands(&[(1, 10), (2, 20)]);
        assert_eq!(pick(&c, 0, true), Some(0));
        assert_eq!(pick(&c, 1, true), Some(1));
        // Extreme values do not overflow.
        let c = cands(&[(u32::MAX, u64::MAX), (1, u64::MAX - 1)]);
        assert_eq!(pick(&c, 1, true), Some(0));
    }

    #[test]
    fn wlc_fills_in_proportion_to_weight() {
        let mut c = cands(&[(1, 0), (2, 0), (5, 0), (0, 0)]);
        for step in 0..800 {
            let i = pick(&c, step, true).unwrap();
            c[i].active += 1;
        }
        assert_eq!(
            c.iter().map(|c| c.active).collect::<Vec<_>>(),
            [100, 200, 500, 0]
        );
    }

    #[test]
    fn lc_fills_evenly() {
        let mut c = cands(&[(1, 0), (9, 0), (3, 0)]);
        for step in 0..99 {
            let i = pick(&c, step, false).unwrap();
            c[i].active += 1;
        }
        assert!(c.iter().all(|c| c.active == 33));
    }

    #[test]
    fn only_the_data_path_capacity_is_scanned() {
        let mut c = cands(&[(1, 5); MAX_LC_REALS + 1]);
        c[MAX_LC_REALS].active = 0;
        assert_eq!(pick(&c, 0, false), Some(0));
        assert_eq!(pick(&c, MAX_LC_REALS, false), Some(0));
    }
}
