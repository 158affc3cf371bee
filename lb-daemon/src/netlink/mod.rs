//! rtnetlink: the kernel's neighbour table (the MACs of the reals), links,
//! the VIP addresses on the director's interface, and route lookups.
//!
//! The data path forwards to a real by rewriting the destination MAC, so the
//! daemon must know every real's MAC. [`Netlink::neighbours`] reads the
//! kernel's neighbour table, [`Netlink::resolve`] asks the kernel to (re)run
//! ARP/ND for an address, and [`MacTracker`] (pure bookkeeping) turns
//! successive dumps into MAC changes and the list of addresses to resolve.
//!
//! Everything here is synchronous: one blocking `NETLINK_ROUTE` socket per
//! [`Netlink`], one request in flight at a time. The daemon calls it from a
//! dedicated thread (or `spawn_blocking`). Replies that do not carry the
//! sequence number of the current request (left over from a request that
//! timed out) are skipped.

mod address;
mod error;
mod link;
mod macs;
mod neighbour;
mod route;
mod socket;
mod vip_route;

pub use error::NetlinkError;
pub use macs::{MacChange, MacTracker, Target, Update};
pub use neighbour::{Neighbour, NeighbourState};
pub use route::Route;
pub use socket::Netlink;
pub use vip_route::{TableRoute, VIP_ROUTE_PROTOCOL};

/// A MAC address.
pub type Mac = [u8; 6];

/// `aa:bb:cc:dd:ee:ff`, for logs and error messages.
#[must_use]
pub fn format_mac(mac: &Mac) -> String {
    crate::config::format_mac(*mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_mac() {
        assert_eq!(
            format_mac(&[0x02, 0, 0xab, 0x0c, 0xff, 1]),
            "02:00:ab:0c:ff:01"
        );
    }
}
