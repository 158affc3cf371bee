//! Route lookups: which interface (and gateway) the kernel would use.

use std::net::IpAddr;

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia},
};

use super::{Netlink, NetlinkError};

/// The kernel's route to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The outgoing interface.
    pub ifindex: u32,
    /// The next hop; `None` when the address is on-link (directly reachable
    /// on `ifindex`), which direct routing requires of a real.
    pub gateway: Option<IpAddr>,
}

impl Netlink {
    /// The interface the kernel would use to reach `addr`, and whether it is
    /// on-link: `RTM_GETROUTE` with `RTA_DST` (what `ip route get ADDR`
    /// does). `None` when there is no unicast route: the network is
    /// unreachable, or the address is local, broadcast, blackholed or
    /// prohibited.
    pub fn route_to(&mut self, addr: IpAddr) -> Result<Option<Route>, NetlinkError> {
        let mut request = RouteMessage::default();
        let (family, bits) = match addr {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        request.header.address_family = family;
        request.header.destination_prefix_length = bits;
        request.attributes = vec![RouteAttribute::Destination(RouteAddress::from(addr))];
        let replies = match self.request("get route", RouteNetlinkMessage::GetRoute(request), 0) {
            Ok(replies) => replies,
            Err(e) => {
                return match e.errno() {
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES) => Ok(None),
                    _ => Err(e),
                };
            }
        };
        Ok(replies
            .iter()
            .find_map(|reply| match reply {
                RouteNetlinkMessage::NewRoute(message) => Some(route_of(message)),
                _ => None,
            })
            .flatten())
    }
}

fn route_of(message: &RouteMessage) -> Option<Route> {
    if message.header.kind != RouteType::Unicast {
        return None;
    }
    let mut ifindex = None;
    let mut gateway = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Oif(index) => ifindex = Some(*index),
            RouteAttribute::Gateway(RouteAddress::Inet(a))
            | RouteAttribute::Via(RouteVia::Inet(a)) => gateway = Some(IpAddr::V4(*a)),
            RouteAttribute::Gateway(RouteAddress::Inet6(a))
            | RouteAttribute::Via(RouteVia::Inet6(a)) => gateway = Some(IpAddr::V6(*a)),
            _ => {}
        }
    }
    Some(Route {
        ifindex: ifindex?,
        gateway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: RouteType, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.kind = kind;
        m.attributes = attributes;
        m
    }

    #[test]
    fn on_link_and_via_gateway() {
        let dst =
            RouteAttribute::Destination(RouteAddress::from("10.0.0.2".parse::<IpAddr>().unwrap()));
        let m = message(
            RouteType::Unicast,
            vec![dst.clone(), RouteAttribute::Oif(5)],
        );
        assert_eq!(
            route_of(&m),
            Some(Route {
                ifindex: 5,
                gateway: None
            })
        );
        let gw: IpAddr = "10.0.0.1".parse().unwrap();
        let m = message(
            RouteType::Unicast,
            vec![
                dst,
                RouteAttribute::Gateway(RouteAddress::from(gw)),
                RouteAttribute::Oif(5),
            ],
        );
        assert_eq!(
            route_of(&m),
            Some(Route {
                ifindex: 5,
                gateway: Some(gw)
            })
        );
    }

    #[test]
    fn local_route_is_none() {
        let m = message(RouteType::Local, vec![RouteAttribute::Oif(1)]);
        assert_eq!(route_of(&m), None);
    }
}
