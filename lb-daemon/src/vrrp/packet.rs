//! VRRP version 3 advertisements (RFC 5798 section 5): encoding and
//! decoding of the VRRP payload, i.e. the bytes after the IPv4/IPv6 header of
//! an IP protocol 112 packet (what a raw socket of protocol 112 hands over
//! once the IP header is stripped, or what follows it with `IP_HDRINCL`).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       IPvX Address(es)                        |
//! ```
//!
//! # Checksum
//!
//! The checksum is the Internet checksum over a pseudo-header followed by the
//! VRRP message (RFC 5798 5.2.8), for both families:
//!
//! - IPv4: the 12-byte TCP/UDP-style pseudo-header: source, destination,
//!   a zero byte, protocol 112, VRRP length (16 bits). This is what
//!   keepalived 2.x builds (`ipv4_phdr_t { src, dst, zero, proto, len }` in
//!   `vrrp.c`), with `dst` the IP destination of the packet (224.0.0.18 for
//!   multicast, the peer for unicast). keepalived's `unicast_chksum_compat`
//!   mode (for peers older than 1.3.6) instead always uses 224.0.0.18 as the
//!   pseudo-header destination, even for unicast; callers that want to accept
//!   such peers can retry [`decode`] with `dst` = [`VRRP_MCAST_V4`].
//! - IPv6: the RFC 8200 pseudo-header: source, destination, upper-layer
//!   length (32 bits), three zero bytes, next header 112. keepalived lets the
//!   kernel compute and verify it (`IPV6_CHECKSUM` with offset 6 on its raw
//!   sockets); [`encode`] computes the same value, so a sender may use either.
//!   With `IPV6_CHECKSUM` set the kernel overwrites the field on send and
//!   drops bad packets on receive.
//!
//! # Not checked here
//!
//! The caller must check that the IP TTL (IPv4) or hop limit (IPv6) is 255
//! and drop the packet otherwise (RFC 5798 7.1), must send with TTL/hop limit
//! 255, and must check the virtual router id against its own.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// The VRRP version this module speaks.
pub const VERSION: u8 = 3;
/// Packet type of an advertisement (the only one defined).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 8;
/// IPv4 multicast group for VRRP (RFC 5798 5.1.1.2).
pub const VRRP_MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group for VRRP (RFC 5798 5.1.2.2).
pub const VRRP_MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Largest Max Adver Int (12 bits, centiseconds).
pub const MAX_ADVER_INT_CS: u16 = 0x0fff;

/// A decoded VRRP v3 advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// Virtual router id (1..=255).
    pub vrid: u8,
    /// Sender's priority: 0 = the master is stopping, 255 = address owner.
    pub priority: u8,
    /// Advertisement interval in centiseconds (12 bits).
    pub max_advert_int_cs: u16,
    /// The virtual addresses, all of the family of the IP header.
    pub addresses: Vec<IpAddr>,
}

/// Why an advertisement could not be encoded or was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// Fewer bytes than the fixed header, or than `count` addresses need.
    Truncated { len: usize, needed: usize },
    /// Bytes beyond the addresses announced by `count`.
    TrailingBytes { len: usize, expected: usize },
    /// The version nibble is not 3.
    Version(u8),
    /// The type nibble is not 1 (advertisement).
    Type(u8),
    /// The checksum does not verify.
    Checksum { got: u16, expected: u16 },
    /// Source and destination (or an address) are of different families.
    FamilyMismatch,
    /// More than 255 addresses to encode.
    TooManyAddresses(usize),
    /// The interval does not fit in 12 bits.
    IntervalOutOfRange(u16),
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { len, needed } => {
                write!(f, "VRRP packet truncated: {len} bytes, need {needed}")
            }
            Self::TrailingBytes { len, expected } => write!(
                f,
                "VRRP packet length {len} does not match its address count (expected {expected})"
            ),
            Self::Version(v) => write!(f, "VRRP version {v}, expected {VERSION}"),
            Self::Type(t) => write!(f, "VRRP packet type {t}, expected {TYPE_ADVERTISEMENT}"),
            Self::Checksum { got, expected } => {
                write!(f, "bad VRRP checksum {got:#06x}, expected {expected:#06x}")
            }
            Self::FamilyMismatch => write!(f, "VRRP addresses of mixed IPv4/IPv6 families"),
            Self::TooManyAddresses(n) => write!(f, "{n} virtual addresses, at most 255"),
            Self::IntervalOutOfRange(i) => write!(
                f,
                "advertisement interval {i} cs exceeds {MAX_ADVER_INT_CS} cs"
            ),
        }
    }
}

impl std::error::Error for PacketError {}

/// Encode `adv` as a VRRP v3 payload sent from `src` to `dst`, with the
/// checksum over the pseudo-header of that family.
pub fn encode(adv: &Advertisement, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, PacketError> {
    let v6 = same_family(src, dst)?;
    if adv.addresses.iter().any(|a| a.is_ipv6() != v6) {
        return Err(PacketError::FamilyMismatch);
    }
    let count = u8::try_from(adv.addresses.len())
        .map_err(|_| PacketError::TooManyAddresses(adv.addresses.len()))?;
    if adv.max_advert_int_cs > MAX_ADVER_INT_CS {
        return Err(PacketError::IntervalOutOfRange(adv.max_advert_int_cs));
    }
    let addr_len = if v6 { 16 } else { 4 };
    let mut buf = Vec::with_capacity(HEADER_LEN + addr_len * adv.addresses.len());
    buf.push((VERSION << 4) | TYPE_ADVERTISEMENT);
    buf.push(adv.vrid);
    buf.push(adv.priority);
    buf.push(count);
    buf.extend_from_slice(&adv.max_advert_int_cs.to_be_bytes()); // rsvd nibble = 0
    buf.extend_from_slice(&[0, 0]);
    for a in &adv.addresses {
        match a {
            IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
        }
    }
    let sum = checksum(src, dst, &buf);
    buf[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(buf)
}

/// Decode and validate a VRRP v3 payload received from `src`, sent to `dst`
/// (the IP header's addresses). Checks version, type, length against the
/// address count and the checksum; the address family follows `src`. The
/// reserved nibble is ignored, as RFC 5798 5.2.6 requires.
pub fn decode(payload: &[u8], src: IpAddr, dst: IpAddr) -> Result<Advertisement, PacketError> {
    let v6 = same_family(src, dst)?;
    if payload.len() < HEADER_LEN {
        return Err(PacketError::Truncated {
            len: payload.len(),
            needed: HEADER_LEN,
        });
    }
    let version = payload[0] >> 4;
    if version != VERSION {
        return Err(PacketError::Version(version));
    }
    let kind = payload[0] & 0x0f;
    if kind != TYPE_ADVERTISEMENT {
        return Err(PacketError::Type(kind));
    }
    let count = usize::from(payload[3]);
    let addr_len = if v6 { 16 } else { 4 };
    let expected = HEADER_LEN + count * addr_len;
    if payload.len() < expected {
        return Err(PacketError::Truncated {
            len: payload.len(),
            needed: expected,
        });
    }
    if payload.len() > expected {
        return Err(PacketError::TrailingBytes {
            len: payload.len(),
            expected,
        });
    }
    let got = u16::from_be_bytes([payload[6], payload[7]]);
    let mut zeroed = payload.to_vec();
    zeroed[6] = 0;
    zeroed[7] = 0;
    let want = checksum(src, dst, &zeroed);
    if got != want {
        return Err(PacketError::Checksum {
            got,
            expected: want,
        });
    }
    let addresses = payload[HEADER_LEN..]
        .chunks_exact(addr_len)
        .map(|c| {
            if v6 {
                let o: [u8; 16] = c.try_into().expect("16-byte chunk");
                IpAddr::V6(Ipv6Addr::from(o))
            } else {
                IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3]))
            }
        })
        .collect();
    Ok(Advertisement {
        vrid: payload[1],
        priority: payload[2],
        max_advert_int_cs: u16::from_be_bytes([payload[4], payload[5]]) & MAX_ADVER_INT_CS,
        addresses,
    })
}

/// `true` for IPv6, `false` for IPv4; an error for mixed families.
fn same_family(src: IpAddr, dst: IpAddr) -> Result<bool, PacketError> {
    match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Ok(false),
        (IpAddr::V6(_), IpAddr::V6(_)) => Ok(true),
        _ => Err(PacketError::FamilyMismatch),
    }
}

/// The Internet checksum of the pseudo-header for (`src`, `dst`, protocol
/// 112, `msg.len()`) followed by `msg`, whose checksum field must be zero.
/// Callers guarantee `src` and `dst` share a family.
fn checksum(src: IpAddr, dst: IpAddr, msg: &[u8]) -> u16 {
    let mut acc = Accumulator::default();
    let len = msg.len() as u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc.add(&s.octets());
            acc.add(&d.octets());
            acc.add(&[0, IPPROTO_VRRP]);
            acc.add(&(len as u16).to_be_bytes());
        }
        (s, d) => {
            acc.add(&ipv6_octets(s));
            acc.add(&ipv6_octets(d));
            acc.add(&len.to_be_bytes());
            acc.add(&[0, 0, 0, IPPROTO_VRRP]);
        }
    }
    acc.add(msg);
    acc.finish()
}

/// The Internet checksum (RFC 1071) of `bytes` alone, no pseudo-header
/// (`ICMPv4` messages).
pub(crate) fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut acc = Accumulator::default();
    acc.add(bytes);
    acc.finish()
}

fn ipv6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// One's-complement sum of 16-bit big-endian words. Every piece added
/// except the last has an even length, so no odd-byte carry-over is needed.
#[derive(Default)]
struct Accumulator(u64);

impl Accumulator {
    fn add(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(2);
        for w in &mut words {
            self.0 += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [last] = words.remainder() {
            self.0 += u64::from(*last) << 8;
        }
    }

    fn finish(self) -> u16 {
        let mut s = self.0;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    /// An independent, deliberately naive Internet checksum: sum every
    /// 16-bit word of `data` (padded), fold, complement.
    fn naive_csum(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i < data.len() {
            let hi = u32::from(data[i]);
            let lo = u32::from(*data.get(i + 1).unwrap_or(&0));
            sum += (hi << 8) | lo;
            i += 2;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn round_trip_v4() {
        let adv = Advertisement {
            vrid: 51,
            priority: 150,
            max_advert_int_cs: 10,
            addresses: vec![v4(192, 0, 2, 100), v4(192, 0, 2, 101)],
        };
        let src = v4(10, 0, 0, 1);
        let dst = IpAddr::V4(VRRP_MCAST_V4);
        let bytes = encode(&adv, src, dst).unwrap();
        assert_eq!(bytes.len(), 8 + 8);
        assert_eq!(decode(&bytes, src, dst).unwrap(), adv);
        // The same bytes do not verify for another destination (unicast).
        assert!(matches!(
            decode(&bytes, src, v4(10, 0, 0, 2)),
            Err(PacketError::Checksum { .. })
        ));
    }

    #[test]
    fn round_trip_v6() {
        let adv = Advertisement {
            vrid: 7,
            priority: 255,
            max_advert_int_cs: MAX_ADVER_INT_CS,
            addresses: vec!["2001:db8::10".parse().unwrap()],
        };
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = IpAddr::V6(VRRP_MCAST_V6);
        let bytes = encode(&adv, src, dst).unwrap();
        assert_eq!(bytes.len(), 8 + 16);
        assert_eq!(decode(&bytes, src, dst).unwrap(), adv);
    }

    /// A packet laid out by hand from RFC 5798 5.1/5.2: vrid 1, priority
    /// 100, 1 address, interval 100 cs, from 192.168.1.1 to 224.0.0.18,
    /// virtual address 192.168.1.254.
    #[test]
    fn known_good_v4_packet() {
        let mut pkt = [
            0x31, 0x01, 0x64, 0x01, // v3 type 1, vrid 1, prio 100, count 1
            0x00, 0x64, 0x00, 0x00, // rsvd 0, interval 100, checksum (later)
            192, 168, 1, 254, // address
        ];
        // Pseudo-header: src, dst, zero, 112, length 12.
        let mut ph = vec![192, 168, 1, 1, 224, 0, 0, 18, 0, 112, 0, 12];
        ph.extend_from_slice(&pkt);
        let sum = naive_csum(&ph);
        // Worked by hand: words c0a8+0101+e000+0012+0070+000c+3101+6401
        // +0064+0000+c0a8+01fe = 0x2_fa43 -> 0xfa45 -> !0xfa45 = 0x05ba.
        assert_eq!(sum, 0x05ba);
        pkt[6..8].copy_from_slice(&sum.to_be_bytes());

        let src = v4(192, 168, 1, 1);
        let dst = v4(224, 0, 0, 18);
        let adv = decode(&pkt, src, dst).unwrap();
        assert_eq!(
            adv,
            Advertisement {
                vrid: 1,
                priority: 100,
                max_advert_int_cs: 100,
                addresses: vec![v4(192, 168, 1, 254)],
            }
        );
        assert_eq!(encode(&adv, src, dst).unwrap(), pkt);
    }

    #[test]
    fn known_good_v6_checksum() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let adv = Advertisement {
            vrid: 2,
            priority: 100,
            max_advert_int_cs: 10,
            addresses: vec!["2001:db8::1".parse().unwrap()],
        };
        let bytes = encode(&adv, IpAddr::V6(src), IpAddr::V6(VRRP_MCAST_V6)).unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&VRRP_MCAST_V6.octets());
        ph.extend_from_slice(&24u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 112]);
        let mut zeroed = bytes.clone();
        zeroed[6..8].fill(0);
        ph.extend_from_slice(&zeroed);
        assert_eq!(u16::from_be_bytes([bytes[6], bytes[7]]), naive_csum(&ph));
    }

    fn sample() -> (Vec<u8>, IpAddr, IpAddr) {
        let adv = Advertisement {
            vrid: 9,
            priority: 100,
            max_advert_int_cs: 10,
            addresses: vec![v4(198, 51, 100, 1), v4(198, 51, 100, 2)],
        };
        let src = v4(10, 1, 1, 1);
        let dst = IpAddr::V4(VRRP_MCAST_V4);
        (encode(&adv, src, dst).unwrap(), src, dst)
    }

    #[test]
    fn corrupted_checksum_rejected() {
        let (mut b, s, d) = sample();
        b[7] ^= 0x01;
        assert!(matches!(
            decode(&b, s, d),
            Err(PacketError::Checksum { .. })
        ));
        let (mut b, s, d) = sample();
        b[9] ^= 0x40; // a flipped address bit
        assert!(matches!(
            decode(&b, s, d),
            Err(PacketError::Checksum { .. })
        ));
    }

    #[test]
    fn wrong_version_and_type_rejected() {
        let (mut b, s, d) = sample();
        b[0] = 0x21;
        assert_eq!(decode(&b, s, d), Err(PacketError::Version(2)));
        let (mut b, s, d) = sample();
        b[0] = 0x32;
        assert_eq!(decode(&b, s, d), Err(PacketError::Type(2)));
    }

    #[test]
    fn truncated_rejected() {
        let (b, s, d) = sample();
        assert!(matches!(
            decode(&b[..5], s, d),
            Err(PacketError::Truncated { len: 5, needed: 8 })
        ));
        assert!(matches!(
            decode(&b[..b.len() - 1], s, d),
            Err(PacketError::Truncated { needed: 16, .. })
        ));
    }

    #[test]
    fn count_mismatch_rejected() {
        let (mut b, s, d) = sample();
        b[3] = 3; // claims 3 addresses, carries 2
        assert!(matches!(
            decode(&b, s, d),
            Err(PacketError::Truncated { needed: 20, .. })
        ));
        let (mut b, s, d) = sample();
        b[3] = 1; // claims 1 address, carries 2
        assert!(matches!(
            decode(&b, s, d),
            Err(PacketError::TrailingBytes { expected: 12, .. })
        ));
    }

    #[test]
    fn family_checks() {
        let (b, s, _) = sample();
        assert_eq!(
            decode(&b, s, IpAddr::V6(VRRP_MCAST_V6)),
            Err(PacketError::FamilyMismatch)
        );
        let adv = Advertisement {
            vrid: 1,
            priority: 1,
            max_advert_int_cs: 1,
            addresses: vec!["2001:db8::1".parse().unwrap()],
        };
        assert_eq!(
            encode(&adv, s, IpAddr::V4(VRRP_MCAST_V4)),
            Err(PacketError::FamilyMismatch)
        );
        let adv = Advertisement {
            max_advert_int_cs: 4096,
            addresses: vec![],
            ..adv
        };
        assert_eq!(
            encode(&adv, s, IpAddr::V4(VRRP_MCAST_V4)),
            Err(PacketError::IntervalOutOfRange(4096))
        );
    }

    #[test]
    fn reserved_bits_ignored() {
        let (mut b, s, d) = sample();
        b[4] |= 0xf0;
        let mut zeroed = b.clone();
        zeroed[6..8].fill(0);
        let sum = checksum(s, d, &zeroed);
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(decode(&b, s, d).unwrap().max_advert_int_cs, 10);
    }
}
