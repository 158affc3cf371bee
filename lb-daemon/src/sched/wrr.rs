//! Round-robin and weighted round-robin sequences.
//!
//! The data path walks a table with a per-CPU cursor, one entry per new flow,
//! so weighted round-robin is entirely a matter of what the table contains.
//! The sequence is "smooth" (nginx's algorithm): a backend with weight 5 out
//! of 7 is not given five flows in a row but spread out between the others,
//! which matters because each CPU starts at its own position and bursts of new
//! flows would otherwise hit one real at a time.

use super::Backend;

/// Ids of the backends with a nonzero weight, in input order: the plain
/// round-robin table. Weight 0 means "draining" for every scheduler, so it is
/// honoured here too even though rr otherwise ignores weights.
#[must_use]
pub fn rr_sequence(backends: &[Backend]) -> Vec<u32> {
    backends
        .iter()
        .filter(|b| b.weight > 0)
        .map(|b| b.id)
        .collect()
}

/// One full cycle of smooth weighted round-robin over the backends with a
/// nonzero weight.
///
/// Each step adds every backend's weight to its running credit, picks the
/// largest credit (the earliest in input order on ties, so the output is
/// deterministic) and takes the total weight off the winner. After
/// `sum(weights)` steps every credit is back at zero and each backend has been
/// picked exactly `weight` times, so that is the cycle; weights are first
/// divided by their greatest common divisor, which gives the same proportions
/// in the shortest cycle.
///
/// If the cycle is still longer than `max_len` (the room the caller has in
/// the data path's table) the weights are scaled down to fit: each becomes
/// `floor(weight × budget / total)`, except that a weight that would round to
/// zero is kept at 1 (a weighted real must still get flows) and the budget
/// for the others shrinks accordingly. Each share is then off by less than one
/// entry in `max_len`, i.e. the ratio is exact to about `1 / max_len`. When
/// there are more usable backends than `max_len`, weights cannot be honoured
/// at all and every backend appears once (the result is then longer than
/// `max_len`; callers with a hard cap must check).
///
/// Costs O(length × backends), fine for table-sized cycles.
#[must_use]
pub fn sequence(backends: &[Backend], max_len: usize) -> Vec<u32> {
    let (ids, weights): (Vec<u32>, Vec<u64>) = backends
        .iter()
        .filter(|b| b.weight > 0)
        .map(|b| (b.id, u64::from(b.weight)))
        .unzip();
    if ids.is_empty() {
        return Vec::new();
    }
    let weights = fit(&weights, u64::try_from(max_len).unwrap_or(u64::MAX));
    smooth(&ids, &weights)
}

/// The weights of the shortest cycle that is at most `cap` long (see
/// [`sequence`]). All inputs are nonzero; so are all outputs.
fn fit(weights: &[u64], cap: u64) -> Vec<u64> {
    let reduced = reduce(weights.to_vec());
    let total: u64 = reduced.iter().sum();
    if total <= cap {
        return reduced;
    }
    let n = reduced.len() as u64;
    if n >= cap {
        return vec![1; reduced.len()];
    }
    // Backends whose scaled weight would be 0 are pinned at 1. Pinning takes
    // budget from the others, which can push more of them under 1, so repeat
    // until nothing changes (at most n rounds; in practice one or two). The
    // heaviest backend is never pinned: with k unpinned backends its scaled
    // weight is at least budget / k > 1, since budget = cap − pinned > n − pinned.
    let mut pinned = vec![false; reduced.len()];
    loop {
        let pinned_count = pinned.iter().filter(|&&p| p).count() as u64;
        let budget = u128::from(cap - pinned_count);
        let rest: u128 = reduced
            .iter()
            .zip(&pinned)
            .filter(|(_, p)| !**p)
            .map(|(&w, _)| u128::from(w))
            .sum();
        let scaled = |w: u64| (u128::from(w) * budget / rest) as u64;
        let mut changed = false;
        for (w, p) in reduced.iter().zip(pinned.iter_mut()) {
            if !*p && scaled(*w) == 0 {
                *p = true;
                changed = true;
            }
        }
        if !changed {
            let out = reduced
                .iter()
                .zip(&pinned)
                .map(|(&w, &p)| if p { 1 } else { scaled(w) });
            return reduce(out.collect());
        }
    }
}

/// Divides nonzero weights by their greatest common divisor.
fn reduce(mut weights: Vec<u64>) -> Vec<u64> {
    let g = weights.iter().fold(0, |g, &w| gcd(g, w));
    if g > 1 {
        for w in &mut weights {
            *w /= g;
        }
    }
    weights
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Runs one cycle of smooth weighted round-robin.
fn smooth(ids: &[u32], weights: &[u64]) -> Vec<u32> {
    // Weights are at most u32::MAX each, so their sum fits in i64 for any
    // number of backends that could exist in memory, and credits stay within
    // ±total.
    let weights: Vec<i64> = weights
        .iter()
        .map(|&w| i64::try_from(w).expect("weights fit in i64"))
        .collect();
    let total: i64 = weights.iter().sum();
    let len = usize::try_from(total).expect("cycle length fits in memory");
    let mut credit = vec![0_i64; weights.len()];
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        let mut best = 0;
        let mut best_credit = i64::MIN;
        for (i, (c, &w)) in credit.iter_mut().zip(&weights).enumerate() {
            *c += w;
            // Strict `>` keeps the earliest backend on ties.
            if *c > best_credit {
                best = i;
                best_credit = *c;
            }
        }
        credit[best] -= total;
        out.push(ids[best]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(i as u32, format!("r{i}"), w))
            .collect()
    }

    fn count(seq: &[u32], id: u32) -> usize {
        seq.iter().filter(|&&x| x == id).count()
    }

    #[test]
    fn known_smooth_sequence() {
        let (a, b, c) = (0, 1, 2);
        assert_eq!(sequence(&weighted(&[5, 1, 1]), 1000), [a, a, b, a, c, a, a]);
        assert_eq!(sequence(&weighted(&[1, 1, 1]), 1000), [a, b, c]);
        assert_eq!(sequence(&weighted(&[2, 1]), 1000), [a, b, a]);
    }

    #[test]
    fn proportions_exact_for_small_weights() {
        let weights = [3, 2, 7, 1, 4];
        let seq = sequence(&weighted(&weights), 1000);
        assert_eq!(seq.len(), 17);
        for (i, &w) in weights.iter().enumerate() {
            assert_eq!(count(&seq, i as u32), w as usize);
        }
    }

    #[test]
    fn spreads_the_heavy_backend() {
        // 9 of 10 flows go to backend 0, but the light one is in the middle
        // of the cycle, not tacked onto its end.
        let seq = sequence(&weighted(&[9, 1]), 1000);
        assert_eq!(seq.len(), 10);
        let pos = seq.iter().position(|&x| x == 1).unwrap();
        assert!((3..=6).contains(&pos), "{seq:?}");
        // Equal weights never repeat a backend back to back, even across the
        // end of the cycle (the table wraps).
        let seq = sequence(&weighted(&[4, 4, 4, 4]), 1000);
        assert_eq!(seq, [0, 1, 2, 3]);
    }

    #[test]
    fn gcd_reduction() {
        assert_eq!(
            sequence(&weighted(&[10, 20, 30]), 1000),
            sequence(&weighted(&[1, 2, 3]), 1000)
        );
        assert_eq!(sequence(&weighted(&[1000, 1000]), 1000), [0, 1]);
        assert_eq!(sequence(&weighted(&[7]), 1000), [0]);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(0, 5), 5);
    }

    #[test]
    fn weight_zero_never_appears() {
        let seq = sequence(&weighted(&[2, 0, 1, 0]), 1000);
        assert_eq!(seq, [0, 2, 0]);
        assert!(sequence(&weighted(&[0, 0]), 1000).is_empty());
    }

    #[test]
    fn empty_input() {
        assert!(sequence(&[], 1000).is_empty());
        assert!(rr_sequence(&[]).is_empty());
    }

    #[test]
    fn scaled_to_the_cap() {
        // 601 entries do not fit in 60: scaled to 30, 19, 9.
        let seq = sequence(&weighted(&[301, 200, 100]), 60);
        assert_eq!(seq.len(), 58);
        assert_eq!(
            (count(&seq, 0), count(&seq, 1), count(&seq, 2)),
            (30, 19, 9)
        );

        // The light backend would round to 0; it is kept at 1 and the heavy
        // one gets the rest of the budget.
        let seq = sequence(&weighted(&[1000, 1]), 100);
        assert_eq!((seq.len(), count(&seq, 0), count(&seq, 1)), (100, 99, 1));

        // Pinning several light backends shrinks the budget for the others.
        let seq = sequence(&weighted(&[1_000_000, 600_000, 1, 1, 1, 1, 1]), 10);
        assert!(seq.len() <= 10);
        for id in 2..7 {
            assert_eq!(count(&seq, id), 1);
        }
        assert!(count(&seq, 0) >= count(&seq, 1));
        assert!(count(&seq, 1) >= 1);
    }

    #[test]
    fn large_weights_stay_close_to_the_ratio() {
        let seq = sequence(&weighted(&[u32::MAX, u32::MAX / 3, 12_345]), 65_536);
        assert!(seq.len() <= 65_536);
        let (a, b) = (count(&seq, 0) as f64, count(&seq, 1) as f64);
        assert!((a / b - 3.0).abs() < 0.01, "{a} {b}");
        assert_eq!(count(&seq, 2), 1);
    }

    #[test]
    fn more_backends_than_room() {
        let seq = sequence(&weighted(&[5, 1, 3, 2]), 3);
        assert_eq!(seq, [0, 1, 2, 3]);
        assert_eq!(sequence(&weighted(&[5, 1]), 0), [0, 1]);
    }

    #[test]
    fn rr_keeps_input_order() {
        let b = vec![
            Backend::new(9, "a", 1),
            Backend::new(3, "b", 0),
            Backend::new(5, "c", 100),
            Backend::new(1, "d", 2),
        ];
        assert_eq!(rr_sequence(&b), [9, 5, 1]);
    }
}
