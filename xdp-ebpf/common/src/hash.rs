//! The flow hash used by Maglev and source hashing. The data path and
//! userspace (`lbctl trace`, tests, a peer director) must compute the same
//! value, so it lives here, is pure integer arithmetic and has no seed.

use crate::FlowKey;

/// One `MurmurHash3` (x86, 32-bit) mixing round.
#[inline(always)]
#[must_use]
pub const fn mix32(h: u32, word: u32) -> u32 {
    let k = word
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

/// `MurmurHash3`'s finaliser: spreads every input bit over the output.
#[inline(always)]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Folds an address (IPv4 in word 0, IPv6 in all four) into one word.
#[inline(always)]
#[must_use]
pub const fn fold_addr(a: &[u32; 4]) -> u32 {
    a[0] ^ a[1].rotate_left(8) ^ a[2].rotate_left(16) ^ a[3].rotate_left(24)
}

/// Hash of the whole 5-tuple (Maglev).
#[inline(always)]
#[must_use]
pub const fn flow_hash(key: &FlowKey) -> u32 {
    let mut h = mix32(0, fold_addr(&key.src));
    h = mix32(h, fold_addr(&key.dst));
    h = mix32(h, (key.src_port as u32) | ((key.dst_port as u32) << 16));
    h = mix32(h, key.proto as u32);
    fmix32(h)
}

/// Hash of the source address only (source hashing: a client sticks to one
/// real across connections).
#[inline(always)]
#[must_use]
pub const fn source_hash(src: &[u32; 4]) -> u32 {
    fmix32(mix32(0, fold_addr(src)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_hash_depends_on_every_field() {
        let base = FlowKey {
            src: [1, 0, 0, 0],
            dst: [2, 0, 0, 0],
            src_port: 3,
            dst_port: 4,
            proto: 6,
            family: 4,
            _pad: [0; 2],
        };
        let h = flow_hash(&base);
        let variants = [
            FlowKey {
                src: [5, 0, 0, 0],
                ..base
            },
            FlowKey {
                dst: [5, 0, 0, 0],
                ..base
            },
            FlowKey {
                src_port: 5,
                ..base
            },
            FlowKey {
                dst_port: 5,
                ..base
            },
            FlowKey { proto: 17, ..base },
        ];
        for v in variants {
            assert_ne!(flow_hash(&v), h, "{v:?}");
        }
    }

    #[test]
    fn source_hash_ignores_ports() {
        assert_eq!(source_hash(&[7, 0, 0, 0]), source_hash(&[7, 0, 0, 0]));
        assert_ne!(source_hash(&[7, 0, 0, 0]), source_hash(&[8, 0, 0, 0]));
    }
}
