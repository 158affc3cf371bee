//! The VIP routes of `[ecmp]`: one host route per announced VIP
//! (`VIP/32 dev lo proto 250 table T`, `/128` for IPv6) in a routing table
//! lbd owns. No rule of the director looks that table up, so the routes
//! change nothing in its own forwarding; a routing daemon (BIRD's kernel
//! protocol with `learn`) reads them and announces them over BGP.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
        RouteType,
    },
};

use super::{Netlink, NetlinkError};

/// The routing protocol number on lbd's routes (`ip route ... proto 250`):
/// not one of the numbers iproute2 or a routing daemon uses, so that a
/// route of lbd is told apart from anything else in the table.
pub const VIP_ROUTE_PROTOCOL: u8 = 250;

/// What lbd knows of one route in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRoute {
    pub destination: IpAddr,
    pub prefix_len: u8,
    /// `true` when it carries [`VIP_ROUTE_PROTOCOL`].
    pub ours: bool,
}

impl Netlink {
    /// Every route in table `table`, both families.
    pub fn routes_in_table(&mut self, table: u32) -> Result<Vec<TableRoute>, NetlinkError> {
        let mut all = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            let replies = self.dump("dump routes", &RouteNetlinkMessage::GetRoute(request))?;
            all.extend(replies.iter().filter_map(|reply| match reply {
                RouteNetlinkMessage::NewRoute(message) if table_of(message) == table => {
                    table_route(message)
                }
                _ => None,
            }));
        }
        Ok(all)
    }

    /// Adds (or replaces) the host route of `vip` via interface `ifindex`
    /// (the loopback) in `table`.
    pub fn add_vip_route(
        &mut self,
        table: u32,
        ifindex: u32,
        vip: IpAddr,
    ) -> Result<(), NetlinkError> {
        let request = vip_route_message(table, Some(ifindex), vip, 0);
        self.request(
            "add VIP route",
            RouteNetlinkMessage::NewRoute(request),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(|_| ())
    }

    /// Removes the route to `destination/prefix_len` from `table`; one that
    /// is not there is not an error.
    pub fn remove_table_route(
        &mut self,
        table: u32,
        destination: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let request = vip_route_message(table, None, destination, prefix_len);
        match self.request(
            "remove VIP route",
            RouteNetlinkMessage::DelRoute(request),
            0,
        ) {
            Ok(_) => Ok(()),
            Err(e) if e.errno() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The request for `destination` (a host route when `prefix_len` is 0).
fn vip_route_message(
    table: u32,
    ifindex: Option<u32>,
    destination: IpAddr,
    prefix_len: u8,
) -> RouteMessage {
    let (family, bits) = match destination {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    let mut message = RouteMessage::default();
    message.header.address_family = family;
    message.header.destination_prefix_length = if prefix_len == 0 { bits } else { prefix_len };
    // Tables above 255 only fit in the attribute.
    message.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message.header.protocol = RouteProtocol::Other(VIP_ROUTE_PROTOCOL);
    message.header.scope = RouteScope::Link;
    message.header.kind = RouteType::Unicast;
    message.attributes = vec![
        RouteAttribute::Destination(RouteAddress::from(destination)),
        RouteAttribute::Table(table),
    ];
    if let Some(index) = ifindex {
        message.attributes.push(RouteAttribute::Oif(index));
    }
    message
}

fn table_of(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table))
}

fn table_route(message: &RouteMessage) -> Option<TableRoute> {
    let destination = message.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    })?;
    Some(TableRoute {
        destination,
        prefix_len: message.header.destination_prefix_length,
        ours: message.header.protocol == RouteProtocol::Other(VIP_ROUTE_PROTOCOL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_table_number_goes_in_the_attribute() {
        let m = vip_route_message(4242, Some(1), "192.0.2.1".parse().unwrap(), 0);
        assert_eq!(m.header.table, 0);
        assert_eq!(table_of(&m), 4242);
        assert_eq!(m.header.destination_prefix_length, 32);
        let route = table_route(&m).unwrap();
        assert!(route.ours);
        assert_eq!(route.destination, "192.0.2.1".parse::<IpAddr>().unwrap());
        let m = vip_route_message(100, None, "2001:db8::1".parse().unwrap(), 0);
        assert_eq!(m.header.table, 100);
        assert_eq!(m.header.destination_prefix_length, 128);
        assert!(
            !m.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(_)))
        );
    }
}
