//! Telling the segment that virtual addresses moved to this host, after it
//! became master: a gratuitous ARP request per IPv4 address and an
//! unsolicited neighbour advertisement (RFC 4861 7.2.6) per IPv6 address,
//! both carrying this interface's MAC, so that hosts with a cache entry for
//! the address switch over at once instead of after it goes stale.
//!
//! Receivers update an existing entry and create none: Linux accepts a
//! gratuitous ARP (sender = target IP) as an override even within the
//! neighbour `locktime`, and an NA with the Override flag replaces the link
//! address of the entry. A host with no entry resolves afresh anyway.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::socket::{
    bind_to_device, check_len, check_rc, ipv6_multicast_out, raw_socket, set_option, sockaddr_in6,
};

/// Length of an ARP frame: Ethernet header (14) + ARP for IPv4 (28).
pub const ARP_FRAME_LEN: usize = 42;

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_OP_REQUEST: u16 = 1;
const BROADCAST: [u8; 6] = [0xff; 6];

const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// The Override flag: replace the cached link address (RFC 4861 4.4).
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LINK_ADDR: u8 = 2;
/// All-nodes, link scope.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// RFC 4861 7.1.2: receivers drop NAs with any other hop limit.
const ND_HOP_LIMIT: libc::c_int = 255;
/// Not in the `libc` crate: `ICMP6_FILTER` (`linux/icmpv6.h`), at level
/// `IPPROTO_ICMPV6`, takes 256 bits, one per type, set = blocked.
const ICMP6_FILTER: libc::c_int = 1;

/// The gratuitous ARP that keepalived sends: a broadcast ARP request whose
/// sender and target IP are both `ip`, sender hardware address `mac`, target
/// hardware address zero.
#[must_use]
pub fn arp_announcement(mac: [u8; 6], ip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    let mut frame = [0u8; ARP_FRAME_LEN];
    frame[0..6].copy_from_slice(&BROADCAST);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    frame[14..16].copy_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    frame[16..18].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    frame[18] = 6; // hardware address length
    frame[19] = 4; // protocol address length
    frame[20..22].copy_from_slice(&ARP_OP_REQUEST.to_be_bytes());
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    // Target hardware address 32..38 stays zero.
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

/// An unsolicited neighbour advertisement for `ip` at `mac`: the ICMP
/// message only (the kernel adds the IPv6 header and, on a raw
/// `IPPROTO_ICMPV6` socket, always computes the checksum, so it is left zero). Flags:
/// Override set; Router clear (a director is no router for the VIP);
/// Solicited clear (RFC 4861 7.2.6; receivers drop solicited NAs sent to a
/// multicast address).
#[must_use]
pub fn neighbour_advertisement(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut message = Vec::with_capacity(32);
    message.extend_from_slice(&[ICMPV6_NEIGHBOUR_ADVERTISEMENT, 0, 0, 0]);
    message.extend_from_slice(&[NA_FLAG_OVERRIDE, 0, 0, 0]);
    message.extend_from_slice(&ip.octets());
    // Option length is in units of 8 bytes: 2 + 6 = 8.
    message.extend_from_slice(&[ND_OPT_TARGET_LINK_ADDR, 1]);
    message.extend_from_slice(&mac);
    message
}

/// Sends [`arp_announcement`]s and [`neighbour_advertisement`]s on one
/// interface.
#[derive(Debug)]
pub struct Announcer {
    ifindex: u32,
    mac: [u8; 6],
    /// `AF_PACKET`, protocol 0: sends whole frames, receives nothing.
    packet: OwnedFd,
    /// Raw `IPPROTO_ICMPV6`; `None` on a host without IPv6.
    icmp6: Option<OwnedFd>,
}

impl Announcer {
    /// Opens the sockets on interface `ifname` (index `ifindex`), whose MAC
    /// address is `mac`.
    pub fn open(ifname: &str, ifindex: u32, mac: [u8; 6]) -> io::Result<Self> {
        let packet = raw_socket(libc::AF_PACKET, 0, 0)?;
        // Protocol 0: bound to the interface, but subscribed to no frames.
        let addr = link_addr(ifindex, 0);
        // SAFETY: a sockaddr_ll that lives across the call, with its size.
        let rc = unsafe {
            libc::bind(
                packet.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check_rc(rc).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("binding a packet socket to {ifname}: {e}"),
            )
        })?;
        let icmp6 = match raw_socket(libc::AF_INET6, 0, libc::IPPROTO_ICMPV6) {
            Ok(fd) => Some(fd),
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => None,
            Err(e) => return Err(e),
        };
        if let Some(fd) = &icmp6 {
            configure_icmp6(fd, ifname, ifindex)?;
        }
        Ok(Self {
            ifindex,
            mac,
            packet,
            icmp6,
        })
    }

    /// Announces every address in `ips` once. All are tried; the first
    /// error is returned. Repeating (keepalived sends 5 by default) is the
    /// caller's choice: one suffices on a lossless segment.
    pub fn announce(&self, ips: &[IpAddr]) -> io::Result<()> {
        let mut first_error = None;
        for &ip in ips {
            let sent = match ip {
                IpAddr::V4(ip) => self.send_arp(ip),
                IpAddr::V6(ip) => self.send_na(ip),
            };
            if let Err(e) = sent {
                first_error
                    .get_or_insert(io::Error::new(e.kind(), format!("announcing {ip}: {e}")));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn send_arp(&self, ip: Ipv4Addr) -> io::Result<()> {
        let frame = arp_announcement(self.mac, ip);
        let mut to = link_addr(self.ifindex, ETHERTYPE_ARP);
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&BROADCAST);
        // SAFETY: the frame and the address live across the call, with the
        // lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.packet.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check_len(rc).map(drop)
    }

    fn send_na(&self, ip: Ipv6Addr) -> io::Result<()> {
        let Some(fd) = &self.icmp6 else {
            return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        };
        let message = neighbour_advertisement(self.mac, ip);
        // No bind: the kernel picks the source, the interface's link-local
        // address for a link-scope destination.
        let to = sockaddr_in6(ALL_NODES, self.ifindex);
        // SAFETY: the message and the address live across the call, with
        // the lengths passed.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&raw const to).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        check_len(rc).map(drop)
    }
}

fn configure_icmp6(fd: &OwnedFd, ifname: &str, ifindex: u32) -> io::Result<()> {
    let sock = fd.as_fd();
    bind_to_device(sock, ifname)?;
    // A raw ICMPv6 socket gets a copy of every ICMPv6 packet; we only send.
    let block_all = [u32::MAX; 8];
    set_option(
        sock,
        libc::IPPROTO_ICMPV6,
        ICMP6_FILTER,
        &block_all,
        "ICMP6_FILTER",
    )?;
    ipv6_multicast_out(sock, ifindex, ND_HOP_LIMIT)
}

fn link_addr(ifindex: u32, protocol: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex as libc::c_int,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x03];

    #[test]
    fn gratuitous_arp_request_layout() {
        let frame = arp_announcement(MAC, Ipv4Addr::new(10, 99, 0, 200));
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
            0x02, 0x99, 0, 0, 0, 0x03,          // source: our MAC
            0x08, 0x06,                         // ARP
            0, 1, 0x08, 0x00, 6, 4,             // Ethernet / IPv4
            0, 1,                               // request
            0x02, 0x99, 0, 0, 0, 0x03,          // sender MAC
            10, 99, 0, 200,                     // sender IP
            0, 0, 0, 0, 0, 0,                   // target MAC: unknown
            10, 99, 0, 200,                     // target IP = sender IP
        ];
        assert_eq!(frame, expected);
    }

    #[test]
    fn unsolicited_neighbour_advertisement_layout() {
        let ip: Ipv6Addr = "fd00:99::200".parse().unwrap();
        let message = neighbour_advertisement(MAC, ip);
        let mut expected = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
        expected.extend_from_slice(&[0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0]);
        expected.extend_from_slice(&[2, 1, 0x02, 0x99, 0, 0, 0, 0x03]);
        assert_eq!(message, expected);
        // Override only: neither Router (0x80) nor Solicited (0x40).
        assert_eq!(message[4] & 0xe0, 0x20);
    }
}
