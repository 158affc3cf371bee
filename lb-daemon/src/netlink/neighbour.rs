//! The neighbour table (ARP for IPv4, ND for IPv6): reading it and asking
//! the kernel to resolve an address.

use std::fmt;
use std::net::IpAddr;

use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage,
        NeighbourState as KernelState,
    },
};

use super::{Mac, Netlink, NetlinkError};

/// One entry of the kernel's neighbour table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: IpAddr,
    /// The link-layer address the kernel holds, if it is 6 bytes long. The
    /// kernel may keep an old address on an entry that is no longer valid
    /// (e.g. `Failed`): see [`Neighbour::usable_mac`].
    pub mac: Option<Mac>,
    pub state: NeighbourState,
}

impl Neighbour {
    /// The MAC to forward to: present, not all zeros, and in a state whose
    /// link-layer address is valid ([`NeighbourState::has_valid_lladdr`]).
    #[must_use]
    pub fn usable_mac(&self) -> Option<Mac> {
        self.mac
            .filter(|mac| *mac != [0; 6] && self.state.has_valid_lladdr())
    }
}

/// `NUD_*`: the state of a neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighbourState {
    /// Being resolved: solicitations sent, no answer yet.
    Incomplete,
    /// Confirmed recently.
    Reachable,
    /// Not confirmed for a while; the address is still used.
    Stale,
    /// Used while stale; a probe follows shortly unless confirmed.
    Delay,
    /// Being re-confirmed with unicast probes.
    Probe,
    /// Resolution failed.
    Failed,
    /// No resolution needed on this device.
    NoArp,
    /// Configured by the administrator.
    Permanent,
    /// `NUD_NONE` (just created), or a value this build does not know.
    None,
}

impl NeighbourState {
    /// `NUD_VALID`: whether the entry's link-layer address may be used.
    #[must_use]
    pub fn has_valid_lladdr(self) -> bool {
        matches!(
            self,
            Self::Reachable
                | Self::Stale
                | Self::Delay
                | Self::Probe
                | Self::Permanent
                | Self::NoArp
        )
    }

    fn from_kernel(state: KernelState) -> Self {
        match state {
            KernelState::Incomplete => Self::Incomplete,
            KernelState::Reachable => Self::Reachable,
            KernelState::Stale => Self::Stale,
            KernelState::Delay => Self::Delay,
            KernelState::Probe => Self::Probe,
            KernelState::Failed => Self::Failed,
            KernelState::Noarp => Self::NoArp,
            KernelState::Permanent => Self::Permanent,
            _ => Self::None,
        }
    }
}

impl fmt::Display for NeighbourState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The names `ip neigh` prints.
        f.write_str(match self {
            Self::Incomplete => "INCOMPLETE",
            Self::Reachable => "REACHABLE",
            Self::Stale => "STALE",
            Self::Delay => "DELAY",
            Self::Probe => "PROBE",
            Self::Failed => "FAILED",
            Self::NoArp => "NOARP",
            Self::Permanent => "PERMANENT",
            Self::None => "NONE",
        })
    }
}

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A neighbour entry from the kernel; `None` for entries that are not IP
/// neighbours (no destination, another family, proxy entries).
fn from_message(message: &NeighbourMessage) -> Option<Neighbour> {
    if message.header.flags.contains(NeighbourFlags::Proxy) {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                addr = Some(IpAddr::V4(*a));
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some(IpAddr::V6(*a));
            }
            NeighbourAttribute::LinkLocalAddress(bytes) => {
                mac = Mac::try_from(bytes.as_slice()).ok();
            }
            _ => {}
        }
    }
    Some(Neighbour {
        ifindex: message.header.ifindex,
        addr: addr?,
        mac,
        state: NeighbourState::from_kernel(message.header.state),
    })
}

impl Netlink {
    /// Every IPv4 (ARP) and IPv6 (ND) neighbour entry, on all interfaces.
    pub fn neighbours(&mut self) -> Result<Vec<Neighbour>, NetlinkError> {
        let mut out = Vec::new();
        // One dump per family: an AF_UNSPEC dump would also return the
        // bridge FDB.
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = NeighbourMessage::default();
            request.header.family = family;
            let replies = self.dump(
                "dump neighbours",
                &RouteNetlinkMessage::GetNeighbour(request),
            )?;
            out.extend(replies.iter().filter_map(|reply| match reply {
                RouteNetlinkMessage::NewNeighbour(message) => from_message(message),
                _ => None,
            }));
        }
        Ok(out)
    }

    /// The neighbour entry for `addr` on interface `ifindex`, if there is
    /// one (`RTM_GETNEIGH` for one entry, Linux 5.0 and later).
    pub fn neighbour(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
    ) -> Result<Option<Neighbour>, NetlinkError> {
        let request = neighbour_request(ifindex, addr);
        match self.request(
            "get neighbour",
            RouteNetlinkMessage::GetNeighbour(request),
            0,
        ) {
            Ok(replies) => Ok(replies.iter().find_map(|reply| match reply {
                RouteNetlinkMessage::NewNeighbour(message) => from_message(message),
                _ => None,
            })),
            Err(e) => match e.errno() {
                Some(libc::ENOENT) => Ok(None),
                Some(libc::ENODEV) => {
                    Err(NetlinkError::NoSuchInterface(format!("index {ifindex}")))
                }
                _ => Err(e),
            },
        }
    }

    /// Asks the kernel to (re)resolve `addr` on interface `ifindex` now,
    /// creating the neighbour entry if there is none.
    ///
    /// This is `RTM_NEWNEIGH` with `NTF_USE` and `NLM_F_CREATE` (what
    /// `ip neigh replace ADDR dev DEV use nud none` sends): `neigh_add()`
    /// looks the entry up (or creates it in `NUD_NONE`), leaves its address
    /// alone because of `NTF_USE`, and calls `neigh_event_send()`, exactly as
    /// if a packet were about to be sent to `addr`: a new, `NONE` or `FAILED`
    /// entry goes to `INCOMPLETE` and a broadcast ARP request / multicast
    /// neighbour solicitation goes out at once; a `STALE` entry goes to
    /// `DELAY`, then to unicast probes (and to `FAILED` if the MAC changed);
    /// an entry already `INCOMPLETE`, `REACHABLE`, `DELAY` or `PROBE` is left
    /// as it is. The answer arrives asynchronously: poll
    /// [`Netlink::neighbours`].
    ///
    /// A `PERMANENT` or `NOARP` entry is left alone (nothing to resolve), and
    /// that takes a lookup first: since Linux 5.16 `NTF_USE` clears
    /// `NUD_PERMANENT`, which would turn an administrator's static entry into
    /// a learned one.
    pub fn resolve(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
        match self.neighbour(ifindex, addr) {
            Ok(Some(existing))
                if matches!(
                    existing.state,
                    NeighbourState::Permanent | NeighbourState::NoArp
                ) =>
            {
                return Ok(());
            }
            Ok(_) => {}
            // Kernels before 5.0 cannot get one entry; they also predate the
            // NTF_USE change above.
            Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {}
            Err(e) => return Err(e),
        }
        let mut request = neighbour_request(ifindex, addr);
        request.header.flags = NeighbourFlags::Use;
        self.request(
            "resolve neighbour",
            RouteNetlinkMessage::NewNeighbour(request),
            NLM_F_CREATE,
        )
        .map(drop)
        .map_err(|e| match e.errno() {
            Some(libc::ENODEV) => NetlinkError::NoSuchInterface(format!("index {ifindex}")),
            _ => e,
        })
    }
}

/// A neighbour message naming one entry: family, interface, `NDA_DST`;
/// state `NUD_NONE`, no flags, type 0 (what a get request must have; with
/// `NTF_USE` the kernel ignores the state, except that `PERMANENT` would
/// make a newly created entry exempt from garbage collection).
fn neighbour_request(ifindex: u32, addr: IpAddr) -> NeighbourMessage {
    let mut request = NeighbourMessage::default();
    request.header.family = family_of(addr);
    request.header.ifindex = ifindex;
    request.header.state = KernelState::None;
    request.attributes = vec![NeighbourAttribute::Destination(match addr {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    })];
    request
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn message(state: KernelState, attributes: Vec<NeighbourAttribute>) -> NeighbourMessage {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = 3;
        message.header.state = state;
        message.attributes = attributes;
        message
    }

    #[test]
    fn decodes_entry() {
        let m = message(
            KernelState::Reachable,
            vec![
                NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(10, 0, 0, 2))),
                NeighbourAttribute::LinkLocalAddress(vec![2, 0, 0, 0, 0, 9]),
            ],
        );
        let n = from_message(&m).unwrap();
        assert_eq!(
            n,
            Neighbour {
                ifindex: 3,
                addr: "10.0.0.2".parse().unwrap(),
                mac: Some([2, 0, 0, 0, 0, 9]),
                state: NeighbourState::Reachable,
            }
        );
        assert_eq!(n.usable_mac(), Some([2, 0, 0, 0, 0, 9]));
    }

    #[test]
    fn entry_without_lladdr_or_with_odd_length_has_no_mac() {
        let dst = NeighbourAttribute::Destination(NeighbourAddress::Inet6(Ipv6Addr::LOCALHOST));
        let n = from_message(&message(KernelState::Incomplete, vec![dst.clone()])).unwrap();
        assert_eq!(n.mac, None);
        assert_eq!(n.state, NeighbourState::Incomplete);
        let n = from_message(&message(
            KernelState::Reachable,
            vec![dst, NeighbourAttribute::LinkLocalAddress(vec![1, 2, 3, 4])],
        ))
        .unwrap();
        assert_eq!(n.mac, None);
    }

    #[test]
    fn proxy_and_addressless_entries_are_skipped() {
        assert!(from_message(&message(KernelState::Reachable, vec![])).is_none());
        let mut m = message(
            KernelState::Permanent,
            vec![NeighbourAttribute::Destination(NeighbourAddress::Inet(
                Ipv4Addr::new(1, 2, 3, 4),
            ))],
        );
        m.header.flags = NeighbourFlags::Proxy;
        assert!(from_message(&m).is_none());
    }

    #[test]
    fn usable_mac_depends_on_state_and_value() {
        let mut n = Neighbour {
            ifindex: 1,
            addr: "10.0.0.1".parse().unwrap(),
            mac: Some([2, 1, 1, 1, 1, 1]),
            state: NeighbourState::Stale,
        };
        assert!(n.usable_mac().is_some());
        for state in [
            NeighbourState::Failed,
            NeighbourState::Incomplete,
            NeighbourState::None,
        ] {
            n.state = state;
            assert_eq!(n.usable_mac(), None, "{state}");
        }
        n.state = NeighbourState::Permanent;
        n.mac = Some([0; 6]);
        assert_eq!(n.usable_mac(), None);
    }

    #[test]
    fn unknown_kernel_state_is_none() {
        assert_eq!(
            NeighbourState::from_kernel(KernelState::Other(0x300)),
            NeighbourState::None
        );
        assert_eq!(
            NeighbourState::from_kernel(KernelState::Noarp),
            NeighbourState::NoArp
        );
    }
}
