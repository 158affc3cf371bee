//! Maglev consistent-hashing tables (Eisenbud et al., NSDI 2016), used for
//! both the `maglev` scheduler (indexed by `flow_hash`) and `sh` (indexed by
//! `source_hash`).
//!
//! Why Maglev: a lookup is one array read in the data path, load is spread
//! almost perfectly, and when a real is added or removed only about `1/N` of
//! the slots move, so most existing clients keep their real even on a
//! director that has lost its connection table (or a peer director that never
//! had it). That last property only holds if every director builds the same
//! table from the same configuration, hence the rules below: placement depends
//! only on backend *names* and weights, never on ids or input order, and the
//! hash is fixed here rather than borrowed from `std` (whose hashers are
//! randomly seeded and may change between Rust releases).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Backend;

/// Default table size: a prime (required so every skip visits every slot)
/// comfortably above 100 × the number of reals a service is expected to have,
/// which keeps the per-real share within a slot or two of ideal and the
/// disruption on changes close to the `1/N` minimum.
pub const DEFAULT_SIZE: u32 = 65_537;

/// Why a table could not be built. These are configuration errors: retrying
/// with the same input gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// The permutation of a backend only covers every slot when the size is
    /// prime (any skip in `1..size` is then coprime with it).
    #[error("maglev table size {0} is not prime")]
    NotPrime(u32),
    /// Each weighted backend needs at least one slot.
    #[error("{backends} weighted backends do not fit in a maglev table of {size} slots")]
    TooManyBackends { backends: usize, size: u32 },
    /// Names are the identity used for placement; two backends with one name
    /// would make the table depend on which of them happens to sort first.
    #[error("backend name {0:?} is used more than once")]
    DuplicateName(String),
}

/// Whether `n` is prime, by trial division (at most ~11k divisions for any
/// `u32`, so fine for validating configuration).
#[must_use]
pub const fn is_prime(n: u32) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    // Every prime above 3 is 6k ± 1. `d <= n / d` is `d * d <= n` without
    // overflow.
    let mut d: u32 = 5;
    while d <= n / d {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// Builds a table of `size` real ids in which every backend with a nonzero
/// weight owns a share of slots proportional to its weight.
///
/// Each backend walks its own permutation of the slots (`offset`, `offset +
/// skip`, … mod `size`, from two independent hashes of its name) and, on each
/// of its turns, claims the next slot on that walk that is still free. Turns
/// implement the weights: in every round each backend adds its weight to a
/// credit and takes a turn when the credit reaches the largest weight (paying
/// that amount), so the heaviest backend moves every round and a backend of
/// half that weight every other round. Within a round backends move in name
/// order. Every turn claims exactly one slot, so shares match the weights to
/// within a slot or two per backend.
///
/// Credits start full, so every backend moves in the first round: a weighted
/// backend always owns at least one slot even when its share is far below one
/// slot (weight 1 next to 1,000,000), because an operator who gives a real any
/// weight expects it to see traffic.
///
/// Instead of visiting every backend every round (which costs O(size ×
/// backends) when one weight dwarfs the rest), turns are replayed in the same
/// order from a heap keyed by (round, name rank), so the cost is O(size × log
/// backends) plus the walks, which Maglev's analysis puts at O(size × log
/// size) in total.
///
/// Returns an empty table when no backend has a nonzero weight: the data path
/// treats length 0 as "no usable real".
pub fn build_table(backends: &[Backend], size: u32) -> Result<Vec<u32>, MaglevError> {
    if !is_prime(size) {
        return Err(MaglevError::NotPrime(size));
    }
    let mut sorted: Vec<&Backend> = backends.iter().collect();
    sorted.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].name == pair[1].name) {
        return Err(MaglevError::DuplicateName(pair[0].name.clone()));
    }
    sorted.retain(|b| b.weight > 0);
    if sorted.is_empty() {
        return Ok(Vec::new());
    }
    let slots = size as usize;
    if sorted.len() > slots {
        return Err(MaglevError::TooManyBackends {
            backends: sorted.len(),
            size,
        });
    }

    let m = u64::from(size);
    let max_weight = sorted
        .iter()
        .map(|b| u64::from(b.weight))
        .max()
        .unwrap_or(1);
    let mut walks: Vec<Walk> = sorted
        .iter()
        .map(|b| Walk::new(&b.name, u64::from(b.weight), m))
        .collect();
    let mut turns: BinaryHeap<Reverse<(u64, usize)>> = walks
        .iter()
        .enumerate()
        .map(|(rank, walk)| Reverse((walk.next_turn_round(max_weight), rank)))
        .collect();

    // Slot owners as indices into `sorted`; indices fit in u32 because there
    // are at most `size` of them, and `size` (a prime) is below `u32::MAX`.
    let mut owner = vec![FREE; slots];
    for _ in 0..slots {
        let Reverse((_, rank)) = turns.pop().expect("every backend always has a next turn");
        let walk = &mut walks[rank];
        loop {
            let slot = walk.advance(m);
            if owner[slot] == FREE {
                owner[slot] = rank as u32;
                break;
            }
        }
        walk.turns_taken += 1;
        turns.push(Reverse((walk.next_turn_round(max_weight), rank)));
    }
    Ok(owner
        .into_iter()
        .map(|rank| sorted[rank as usize].id)
        .collect())
}

/// Marks a slot nobody has claimed yet.
const FREE: u32 = u32::MAX;

/// One backend's position on its permutation of the slots.
struct Walk {
    next: u64,
    skip: u64,
    weight: u64,
    turns_taken: u64,
}

impl Walk {
    fn new(name: &str, weight: u64, m: u64) -> Self {
        // The skip must be in 1..m; for m == 2 that leaves only 1, which still
        // visits both slots.
        let offset = name_hash(OFFSET_SEED, name) % m;
        let skip = name_hash(SKIP_SEED, name) % (m - 1) + 1;
        Self {
            next: offset,
            skip,
            weight,
            turns_taken: 0,
        }
    }

    /// Returns the current slot and steps to the next one.
    fn advance(&mut self, m: u64) -> usize {
        let slot = self.next;
        // Both terms are below m, so one subtraction replaces a division
        // (this loop runs about size × ln(size) times per table).
        self.next += self.skip;
        if self.next >= m {
            self.next -= m;
        }
        slot as usize
    }

    /// The 1-based round of this backend's next turn under the credit rule
    /// with a full starting credit: turn `k` comes in the first round `r`
    /// with `(r - 1) * weight >= (k - 1) * max`. `k - 1 <= size < 2^32` and
    /// `max < 2^32`, so the product fits.
    fn next_turn_round(&self, max_weight: u64) -> u64 {
        1 + (self.turns_taken * max_weight).div_ceil(self.weight)
    }
}

/// Seeds that make the offset and skip hashes independent of each other.
/// Changing either (or the hash) reshuffles every table and breaks agreement
/// with directors running an older build, so they are fixed forever.
const OFFSET_SEED: u64 = 0x6d61_676c_6576_2d6f; // "maglev-o"
const SKIP_SEED: u64 = 0x6d61_676c_6576_2d73; // "maglev-s"

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (64-bit), continuing from `state`. Chosen because it is tiny,
/// specified byte by byte (so identical on every platform) and has published
/// test vectors to pin it.
fn fnv1a64(mut state: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        state ^= u64::from(byte);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// `MurmurHash3`'s 64-bit finaliser. FNV alone leaves names that differ only in
/// their last characters (`10.0.0.1:80`, `10.0.0.2:80`) with correlated
/// values; this spreads every input bit over the whole word before the hash
/// is reduced modulo the table size.
const fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The seeded hash of a backend name (seed bytes first, then the name).
fn name_hash(seed: u64, name: &str) -> u64 {
    let seeded = fnv1a64(FNV_OFFSET_BASIS, &seed.to_le_bytes());
    fmix64(fnv1a64(seeded, name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const PRIME_4099: u32 = 4099;

    fn named(n: u32, weight: u32) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend::new(i, format!("10.0.{}.{}:80", i / 256, i % 256), weight))
            .collect()
    }

    fn counts(table: &[u32]) -> HashMap<u32, usize> {
        let mut c = HashMap::new();
        for &id in table {
            *c.entry(id).or_insert(0) += 1;
        }
        c
    }

    /// Fraction of slots whose owner differs between two tables of one size.
    fn changed_fraction(a: &[u32], b: &[u32]) -> f64 {
        assert_eq!(a.len(), b.len());
        let changed = a.iter().zip(b).filter(|(x, y)| x != y).count();
        changed as f64 / a.len() as f64
    }

    /// Deterministic Fisher–Yates with a tiny LCG, so the test needs no
    /// random-number crate and always shuffles the same way.
    fn shuffled(mut v: Vec<Backend>, mut seed: u64) -> Vec<Backend> {
        for i in (1..v.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = ((seed >> 33) % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v
    }

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..40).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        assert!(is_prime(DEFAULT_SIZE));
        assert!(is_prime(PRIME_4099));
        assert!(!is_prime(65_535));
        assert!(!is_prime(25));
        assert!(!is_prime(49));
        // Largest 32-bit prime, and u32::MAX = 3·5·17·257·65537.
        assert!(is_prime(4_294_967_291));
        assert!(!is_prime(u32::MAX));
        // 65521² overflows u32; 65521 · 65519 does not and is composite.
        assert!(!is_prime(65_521 * 65_519));
    }

    #[test]
    fn fnv_matches_published_vectors() {
        assert_eq!(fnv1a64(FNV_OFFSET_BASIS, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET_BASIS, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV_OFFSET_BASIS, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn rejects_bad_sizes_and_names() {
        let b = named(3, 1);
        assert_eq!(build_table(&b, 0), Err(MaglevError::NotPrime(0)));
        assert_eq!(build_table(&b, 1), Err(MaglevError::NotPrime(1)));
        assert_eq!(build_table(&b, 65_536), Err(MaglevError::NotPrime(65_536)));
        // Checked even when there is nothing to place, so a bad size is
        // reported as soon as it is configured.
        assert_eq!(build_table(&[], 100), Err(MaglevError::NotPrime(100)));
        assert_eq!(
            build_table(&named(3, 1), 2),
            Err(MaglevError::TooManyBackends {
                backends: 3,
                size: 2
            })
        );
        let dup = vec![
            Backend::new(1, "a", 1),
            Backend::new(2, "b", 1),
            Backend::new(3, "a", 0),
        ];
        assert_eq!(
            build_table(&dup, 7),
            Err(MaglevError::DuplicateName("a".into()))
        );
    }

    #[test]
    fn empty_when_nothing_is_weighted() {
        assert_eq!(build_table(&[], 7), Ok(vec![]));
        assert_eq!(build_table(&named(4, 0), DEFAULT_SIZE), Ok(vec![]));
    }

    #[test]
    fn tiny_tables() {
        assert_eq!(build_table(&named(1, 5), 2), Ok(vec![0, 0]));
        let t = build_table(&named(2, 1), 2).unwrap();
        let mut sorted = t.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1]);
    }

    /// Pins the exact output: a change here means every director running the
    /// new build disagrees with every director running an older one.
    #[test]
    fn output_is_stable_across_builds() {
        let b = vec![
            Backend::new(1, "10.0.0.1:80", 1),
            Backend::new(2, "10.0.0.2:80", 1),
            Backend::new(3, "10.0.0.3:80", 2),
        ];
        let table = build_table(&b, 13).unwrap();
        assert_eq!(table, GOLDEN_13);
    }
    const GOLDEN_13: [u32; 13] = [2, 3, 1, 1, 1, 3, 3, 3, 2, 3, 3, 1, 2];

    #[test]
    fn every_slot_filled_with_weighted_backends() {
        let mut b = named(10, 3);
        b[4].weight = 0;
        let table = build_table(&b, PRIME_4099).unwrap();
        assert_eq!(table.len(), PRIME_4099 as usize);
        let allowed: HashSet<u32> = b.iter().filter(|b| b.weight > 0).map(|b| b.id).collect();
        assert!(table.iter().all(|id| allowed.contains(id)));
        assert!(!table.contains(&4));
        assert_eq!(counts(&table).len(), 9);
    }

    #[test]
    fn equal_weights_share_evenly() {
        for n in [3_u32, 7, 64, 1000] {
            let table = build_table(&named(n, 10), DEFAULT_SIZE).unwrap();
            let c = counts(&table);
            assert_eq!(c.len(), n as usize);
            let ideal = f64::from(DEFAULT_SIZE) / f64::from(n);
            for (&id, &k) in &c {
                // Turns alternate strictly, so shares differ by at most one.
                assert!(
                    (k as f64 - ideal).abs() <= 1.0,
                    "n={n} id={id} k={k} ideal={ideal}"
                );
            }
        }
    }

    #[test]
    fn weights_one_two_three() {
        let b = vec![
            Backend::new(7, "x", 1),
            Backend::new(8, "y", 2),
            Backend::new(9, "z", 3),
        ];
        let table = build_table(&b, DEFAULT_SIZE).unwrap();
        let c = counts(&table);
        for (id, w) in [(7, 1.0), (8, 2.0), (9, 3.0)] {
            let share = c[&id] as f64 / f64::from(DEFAULT_SIZE);
            assert!((share - w / 6.0).abs() < 0.001, "id={id} share={share}");
        }
    }

    #[test]
    fn skewed_weights() {
        let mut b = named(50, 1);
        b[0].weight = 1_000_000;
        let table = build_table(&b, DEFAULT_SIZE).unwrap();
        let c = counts(&table);
        // Every backend keeps its one slot, the heavy one takes the rest.
        assert_eq!(c.len(), 50);
        assert!((1..50).all(|id| c[&id] == 1));
        assert_eq!(c[&0], DEFAULT_SIZE as usize - 49);
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let mut b = named(37, 1);
        for (i, backend) in b.iter_mut().enumerate() {
            backend.weight = (i % 4) as u32;
        }
        let expected = build_table(&b, PRIME_4099).unwrap();
        for seed in 1..6 {
            let s = shuffled(b.clone(), seed);
            assert_ne!(s, b);
            assert_eq!(
                build_table(&s, PRIME_4099).unwrap(),
                expected,
                "seed {seed}"
            );
        }
        let mut rev = b.clone();
        rev.reverse();
        assert_eq!(build_table(&rev, PRIME_4099).unwrap(), expected);
    }

    #[test]
    fn placement_follows_names_not_ids() {
        let a = named(20, 1);
        // Another director numbered the same reals differently.
        let b: Vec<Backend> = a
            .iter()
            .map(|x| Backend {
                id: 1000 + 3 * x.id,
                ..x.clone()
            })
            .collect();
        let ta = build_table(&a, PRIME_4099).unwrap();
        let tb = build_table(&b, PRIME_4099).unwrap();
        let name_of =
            |set: &[Backend], id: u32| set.iter().find(|x| x.id == id).unwrap().name.clone();
        for (x, y) in ta.iter().zip(&tb) {
            assert_eq!(name_of(&a, *x), name_of(&b, *y));
        }
    }

    #[test]
    fn removing_one_backend_moves_little() {
        for n in [5_u32, 10, 100] {
            let all = named(n, 1);
            let before = build_table(&all, DEFAULT_SIZE).unwrap();
            for removed in [0, n / 2, n - 1] {
                let rest: Vec<Backend> = all.iter().filter(|b| b.id != removed).cloned().collect();
                let after = build_table(&rest, DEFAULT_SIZE).unwrap();
                let frac = changed_fraction(&before, &after);
                let bound = 1.0 / f64::from(n) + 0.02;
                assert!(
                    frac <= bound,
                    "n={n} removed={removed} changed={frac:.4} bound={bound:.4}"
                );
                assert!(!after.contains(&removed));
            }
        }
    }

    #[test]
    fn weight_change_moves_little() {
        let mut b = named(10, 10);
        let before = build_table(&b, DEFAULT_SIZE).unwrap();
        b[3].weight = 15;
        let after = build_table(&b, DEFAULT_SIZE).unwrap();
        // Backend 3 goes from 10/100 to 15/105 of the table: at least 4.3 %
        // of the slots must move, and little beyond that should.
        let frac = changed_fraction(&before, &after);
        assert!((0.042..0.043 + 0.03).contains(&frac), "changed {frac:.4}");
    }

    #[test]
    fn large_build_completes_and_balances() {
        let table = build_table(&named(4096, 1), DEFAULT_SIZE).unwrap();
        let c = counts(&table);
        assert_eq!(c.len(), 4096);
        assert!(
            c.values().all(|&k| k == 16 || k == 17),
            "{:?}",
            c.values().min()
        );
    }
}
