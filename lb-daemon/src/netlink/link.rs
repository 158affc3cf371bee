//! Interfaces: index by name, hardware address, whether the link is up.

use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage},
};

use super::{Mac, Netlink, NetlinkError};

impl Netlink {
    /// The index of the interface called `name`.
    pub fn link_index(&mut self, name: &str) -> Result<u32, NetlinkError> {
        let mut request = LinkMessage::default();
        request.attributes = vec![LinkAttribute::IfName(name.to_owned()), skip_stats()];
        let message = self.get_link(request, name.to_owned())?;
        Ok(message.header.index)
    }

    /// The Ethernet address of interface `index`.
    pub fn link_mac(&mut self, index: u32) -> Result<Mac, NetlinkError> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request.attributes = vec![skip_stats()];
        let message = self.get_link(request, format!("index {index}"))?;
        message
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                LinkAttribute::Address(bytes) => Mac::try_from(bytes.as_slice()).ok(),
                _ => None,
            })
            .ok_or(NetlinkError::NoMacAddress { ifindex: index })
    }

    /// Whether interface `index` is administratively up and has a carrier
    /// (`IFF_UP` and `IFF_RUNNING`): a director whose link is down must not
    /// stay VRRP master.
    pub fn link_is_up(&mut self, index: u32) -> Result<bool, NetlinkError> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        request.attributes = vec![skip_stats()];
        let message = self.get_link(request, format!("index {index}"))?;
        let flags = message.header.flags;
        Ok(flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running))
    }

    fn get_link(
        &mut self,
        request: LinkMessage,
        what: String,
    ) -> Result<LinkMessage, NetlinkError> {
        let replies = self
            .request("get link", RouteNetlinkMessage::GetLink(request), 0)
            .map_err(|e| match e.errno() {
                Some(libc::ENODEV) => NetlinkError::NoSuchInterface(what.clone()),
                _ => e,
            })?;
        replies
            .into_iter()
            .find_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(message) => Some(message),
                _ => None,
            })
            .ok_or(NetlinkError::NoSuchInterface(what))
    }
}

/// `IFLA_EXT_MASK` with `RTEXT_FILTER_SKIP_STATS`: no statistics in the
/// reply, which keeps it small.
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}
