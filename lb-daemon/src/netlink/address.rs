//! Interface addresses: the VIPs the director must own (answer ARP/ND for).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, CacheInfo},
};

use super::{Netlink, NetlinkError};

impl Netlink {
    /// The addresses on interface `ifindex`, IPv4 and IPv6, with their
    /// prefix lengths.
    pub fn addresses(&mut self, ifindex: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let request = AddressMessage::default();
        let replies = self.dump("dump addresses", &RouteNetlinkMessage::GetAddress(request))?;
        Ok(replies
            .iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewAddress(message) if message.header.index == ifindex => {
                    address_of(message).map(|addr| (addr, message.header.prefix_len))
                }
                _ => None,
            })
            .collect())
    }

    /// Adds `addr/prefix_len` to interface `ifindex`; an address that is
    /// already there is not an error. IPv6 addresses get `IFA_F_NODAD`, so
    /// they are usable at once instead of after duplicate detection.
    pub fn add_address(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let request = address_message(ifindex, addr, prefix_len, true);
        match self.request(
            "add address",
            RouteNetlinkMessage::NewAddress(request),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(()),
            Err(e) => match e.errno() {
                Some(libc::EEXIST) => Ok(()),
                Some(libc::ENODEV) => {
                    Err(NetlinkError::NoSuchInterface(format!("index {ifindex}")))
                }
                _ => Err(e),
            },
        }
    }

    /// Removes `addr/prefix_len` from interface `ifindex`; an address that
    /// is not there is not an error.
    pub fn remove_address(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let request = address_message(ifindex, addr, prefix_len, false);
        match self.request(
            "remove address",
            RouteNetlinkMessage::DelAddress(request),
            0,
        ) {
            Ok(_) => Ok(()),
            Err(e) => match e.errno() {
                Some(libc::EADDRNOTAVAIL) => Ok(()),
                Some(libc::ENODEV) => {
                    Err(NetlinkError::NoSuchInterface(format!("index {ifindex}")))
                }
                _ => Err(e),
            },
        }
    }
}

/// The interface's own address: `IFA_LOCAL` (IPv4; `IFA_ADDRESS` is the peer
/// on point-to-point links), else `IFA_ADDRESS` (IPv6 without a peer).
fn address_of(message: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(a) => return Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    address
}

/// The request `ip address add|del ADDR/LEN dev IF` sends: `IFA_LOCAL` and
/// `IFA_ADDRESS` both set to the address (no peer), global scope.
fn address_message(ifindex: u32, addr: IpAddr, prefix_len: u8, add: bool) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.prefix_len = prefix_len;
    message.header.index = ifindex;
    message.attributes = vec![
        AddressAttribute::Local(addr),
        AddressAttribute::Address(addr),
    ];
    if add && addr.is_ipv6() {
        // The header's flags byte is the old interface; IFA_FLAGS (u32)
        // overrides it on kernels that have it. Set both.
        message.header.flags = AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        // Deprecated (preferred lifetime 0, valid forever), like `ip
        // address add ... preferred_lft 0`: still accepted as a
        // destination, never picked as a source. Otherwise the director's
        // own connections to a real in the VIP's prefix (health checks)
        // leave from the /128 VIP, whose longer match wins source
        // selection, and the real answers the VIP on its own `lo`.
        let mut lifetimes = CacheInfo::default();
        lifetimes.ifa_preferred = 0;
        lifetimes.ifa_valid = u32::MAX;
        message
            .attributes
            .push(AddressAttribute::CacheInfo(lifetimes));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_add_request_has_nodad() {
        let m = address_message(4, "fd00::1".parse().unwrap(), 128, true);
        assert_eq!(m.header.family, AddressFamily::Inet6);
        assert_eq!(m.header.prefix_len, 128);
        assert_eq!(m.header.index, 4);
        assert_eq!(m.header.flags, AddressHeaderFlags::Nodad);
        assert!(
            m.attributes
                .contains(&AddressAttribute::Flags(AddressFlags::Nodad))
        );
        // Deprecated: never a source address.
        assert!(m.attributes.iter().any(|a| matches!(
            a,
            AddressAttribute::CacheInfo(c) if c.ifa_preferred == 0 && c.ifa_valid == u32::MAX
        )));
        let v4 = address_message(4, "10.0.0.1".parse().unwrap(), 32, true);
        assert_eq!(v4.header.family, AddressFamily::Inet);
        assert!(
            v4.attributes
                .iter()
                .all(|a| !matches!(a, AddressAttribute::Flags(_)))
        );
    }

    #[test]
    fn local_wins_over_peer_address() {
        let mut m = AddressMessage::default();
        m.attributes = vec![
            AddressAttribute::Address("10.0.0.2".parse().unwrap()),
            AddressAttribute::Local("10.0.0.1".parse().unwrap()),
        ];
        assert_eq!(address_of(&m), Some("10.0.0.1".parse().unwrap()));
        m.attributes = vec![AddressAttribute::Address("fd00::1".parse().unwrap())];
        assert_eq!(address_of(&m), Some("fd00::1".parse().unwrap()));
    }
}
