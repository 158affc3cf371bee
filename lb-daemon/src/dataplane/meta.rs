//! `REAL_META`: a userspace-only map pinned next to the program's maps that
//! records who owns each real slot. Flows in the connection table refer to
//! reals by slot; a restarted `lbd` reads this map to give every real its old
//! slot back, so no established flow changes server.

use std::net::IpAddr;

use lb_common::ServiceKey;

/// Name of the pin (and of nothing in the object).
pub const NAME: &str = "REAL_META";

/// Slot not in use.
pub const META_FREE: u8 = 0;
/// Slot of a real that is in its service's configuration.
pub const META_ACTIVE: u8 = 1;
/// Slot of a removed real kept until its last flow ends.
pub const META_RETIRED: u8 = 2;

/// Owner of one real slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealMeta {
    pub service: ServiceKey,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    /// `META_FREE`, `META_ACTIVE` or `META_RETIRED`.
    pub state: u8,
    pub _pad: u32,
}

// SAFETY: repr(C), only integer fields, explicit padding: every bit pattern
// is a valid value and there are no implicit padding bytes.
unsafe impl aya::Pod for RealMeta {}

impl RealMeta {
    #[must_use]
    pub fn new(service: ServiceKey, addr: IpAddr, port: u16, state: u8) -> Self {
        let (bytes, family) = match addr {
            IpAddr::V4(v4) => {
                let mut b = [0; 16];
                b[..4].copy_from_slice(&v4.octets());
                (b, lb_common::FAMILY_V4)
            }
            IpAddr::V6(v6) => (v6.octets(), lb_common::FAMILY_V6),
        };
        Self {
            service,
            addr: bytes,
            port,
            family,
            state,
            _pad: 0,
        }
    }

    /// The real's address, if the slot is in use.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        match self.family {
            lb_common::FAMILY_V4 => {
                let o: [u8; 4] = self.addr[..4].try_into().expect("4 bytes");
                Some(IpAddr::from(o))
            }
            lb_common::FAMILY_V6 => Some(IpAddr::from(self.addr)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_implicit_padding() {
        assert_eq!(
            size_of::<RealMeta>(),
            size_of::<ServiceKey>() + 16 + 2 + 1 + 1 + 4
        );
    }

    #[test]
    fn addresses_round_trip() {
        for ip in ["10.1.2.3", "fd00::7"] {
            let ip: IpAddr = ip.parse().unwrap();
            let meta = RealMeta::new(ServiceKey::default(), ip, 80, META_ACTIVE);
            assert_eq!(meta.ip(), Some(ip));
        }
        assert_eq!(RealMeta::default().ip(), None);
    }
}
