//! The VIP addresses on the director's interface: holding them makes the
//! director answer ARP/ND for them, so clients send it their packets.

use std::{collections::BTreeSet, net::IpAddr};

use crate::netlink::Netlink;

/// Host prefix of an address.
pub fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// Adds the VIPs in `want` that are not in `held` and removes those no
/// longer wanted; returns what is held afterwards (failures are logged and
/// retried at the next change).
pub fn sync(
    netlink: &mut Netlink,
    ifindex: u32,
    held: &BTreeSet<IpAddr>,
    want: &BTreeSet<IpAddr>,
) -> BTreeSet<IpAddr> {
    let mut now = held.clone();
    for ip in want {
        match netlink.add_address(ifindex, *ip, host_prefix(*ip)) {
            Ok(()) => {
                if now.insert(*ip) {
                    tracing::info!(vip = %ip, "holding VIP on the interface");
                }
            }
            Err(e) => tracing::error!(vip = %ip, error = %e, "adding VIP address"),
        }
    }
    for ip in held.difference(want) {
        match netlink.remove_address(ifindex, *ip, host_prefix(*ip)) {
            Ok(()) => {
                now.remove(ip);
                tracing::info!(vip = %ip, "released VIP from the interface");
            }
            Err(e) => tracing::error!(vip = %ip, error = %e, "removing VIP address"),
        }
    }
    now
}
