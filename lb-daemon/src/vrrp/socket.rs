//! The raw IP socket that sends and receives VRRP advertisements (IP
//! protocol 112) on one interface, for IPv4 or IPv6, and [`check`], the
//! receive-side validation of RFC 5798 7.1.
//!
//! The socket is non-blocking: callers poll its fd ([`AsFd`]) together with
//! their timers and drain it with [`VrrpSocket::recv`] until `Ok(None)`.
//!
//! # Filtering done by the kernel
//!
//! - `SO_BINDTODEVICE`: only packets that arrived on the interface.
//! - Multicast mode (no peers): the socket joins the VRRP group on the
//!   interface. `IP_MULTICAST_ALL`/`IPV6_MULTICAST_ALL` are off, so groups
//!   joined by other sockets of the host are not delivered here.
//! - IPv4 in unicast mode and IPv6 in both modes: the socket is bound to the
//!   local address, so only packets addressed to it (or, for IPv6, to a
//!   group the socket joined) arrive. An IPv4 raw socket bound to an address
//!   drops every packet whose destination differs, multicast included, so
//!   IPv4 in multicast mode is not bound; the group's source address is then
//!   set with `IP_MULTICAST_IF`.
//! - IPv6: `IPV6_CHECKSUM` at offset 6, like keepalived: the kernel fills the
//!   checksum in on send and drops packets whose checksum is wrong.

use std::fmt;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::packet::{
    self, Advertisement, HEADER_LEN, IPPROTO_VRRP, PacketError, VRRP_MCAST_V4, VRRP_MCAST_V6,
};

/// The TTL / hop limit VRRP packets are sent with and must arrive with
/// (RFC 5798 5.1.1.3, 7.1): 255 proves the sender is on the link.
pub const VRRP_TTL: u8 = 255;

/// Offset of the checksum in the VRRP header, for `IPV6_CHECKSUM`.
const CHECKSUM_OFFSET: libc::c_int = 6;

/// Not in the `libc` crate for glibc targets (Linux 4.20+, `linux/in6.h`).
const IPV6_MULTICAST_ALL: libc::c_int = 29;

/// The largest VRRP v3 packet (255 IPv6 addresses) behind the largest IPv4
/// header (60 bytes); IPv6 raw sockets deliver no header at all.
const RECV_BUF_LEN: usize = 60 + HEADER_LEN + 255 * 16;

/// One datagram as the socket received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The IP source address (for IPv6, usually the sender's link-local one).
    pub src: IpAddr,
    /// The IP destination address: the VRRP group or our own address.
    pub dst: IpAddr,
    /// The IPv4 TTL or IPv6 hop limit it arrived with.
    pub ttl: u8,
    /// The VRRP message, without IP header.
    pub payload: Vec<u8>,
}

/// Why a received datagram is not an advertisement for our virtual router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The TTL / hop limit is not 255: it was routed, or forged off-link.
    Ttl(u8),
    /// Not a valid VRRP v3 advertisement (version, length, checksum, …).
    Packet(PacketError),
    /// A valid advertisement of another virtual router on the same link:
    /// normal on a shared segment, so count it rather than log it.
    OtherVrid(u8),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ttl(ttl) => write!(f, "TTL/hop limit {ttl}, expected {VRRP_TTL}"),
            Self::Packet(e) => e.fmt(f),
            Self::OtherVrid(vrid) => write!(f, "advertisement for another virtual router ({vrid})"),
        }
    }
}

impl std::error::Error for Rejected {}

/// Validates a received datagram as an advertisement for virtual router
/// `vrid` (RFC 5798 7.1): TTL/hop limit 255, a valid VRRP v3 packet, our
/// VRID. With `unicast` and IPv4, a packet whose checksum fails is decoded
/// again with 224.0.0.18 as pseudo-header destination: keepalived's
/// `unicast_chksum_compat` mode (peers older than 1.3.6) computes it so.
pub fn check(received: &Received, vrid: u8, unicast: bool) -> Result<Advertisement, Rejected> {
    if received.ttl != VRRP_TTL {
        return Err(Rejected::Ttl(received.ttl));
    }
    let adv = match packet::decode(&received.payload, received.src, received.dst) {
        Ok(adv) => adv,
        Err(e @ PacketError::Checksum { .. }) if unicast && received.src.is_ipv4() => {
            let group = IpAddr::V4(VRRP_MCAST_V4);
            // Report the checksum against the real destination: that is
            // the one a correct peer would have used.
            packet::decode(&received.payload, received.src, group)
                .map_err(|_| Rejected::Packet(e))?
        }
        Err(e) => return Err(Rejected::Packet(e)),
    };
    if adv.vrid != vrid {
        return Err(Rejected::OtherVrid(adv.vrid));
    }
    Ok(adv)
}

/// A raw VRRP socket on one interface; see the module documentation.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: OwnedFd,
    local: IpAddr,
    ifindex: u32,
    /// Where advertisements go: the group, or every unicast peer.
    destinations: Vec<IpAddr>,
}

impl VrrpSocket {
    /// Opens the socket on interface `ifname` (index `ifindex`) with source
    /// address `local`. For IPv6, `local` must be the interface's link-local
    /// address (RFC 5798 5.1.2.1); binding fails with `AddrNotAvailable`
    /// while it is still tentative (duplicate address detection), so a
    /// caller that starts with the interface retries. With no `peers` the
    /// socket speaks multicast (`224.0.0.18` / `ff02::12`); otherwise it sends to
    /// each peer and, like keepalived in unicast mode, does not join the group.
    pub fn open(ifname: &str, ifindex: u32, local: IpAddr, peers: &[IpAddr]) -> io::Result<Self> {
        if ifindex == 0 {
            return Err(invalid_input("interface index 0"));
        }
        if let Some(peer) = peers.iter().find(|p| p.is_ipv6() != local.is_ipv6()) {
            return Err(invalid_input(&format!(
                "peer {peer} is not of the family of {local}"
            )));
        }
        let multicast = peers.is_empty();
        let fd = match local {
            IpAddr::V4(addr) => open_v4(ifname, ifindex, addr, multicast)?,
            IpAddr::V6(addr) => open_v6(ifname, ifindex, addr, multicast)?,
        };
        let destinations = match (multicast, local) {
            (true, IpAddr::V4(_)) => vec![IpAddr::V4(VRRP_MCAST_V4)],
            (true, IpAddr::V6(_)) => vec![IpAddr::V6(VRRP_MCAST_V6)],
            (false, _) => peers.to_vec(),
        };
        Ok(Self {
            fd,
            local,
            ifindex,
            destinations,
        })
    }

    /// The source address advertisements are sent from.
    #[must_use]
    pub fn local(&self) -> IpAddr {
        self.local
    }

    /// Where [`VrrpSocket::send`] sends: the group, or the unicast peers.
    #[must_use]
    pub fn destinations(&self) -> &[IpAddr] {
        &self.destinations
    }

    /// Sends `adv` to every destination, each with the checksum for its own
    /// pseudo-header. A failure for one peer does not keep the others from
    /// hearing us: all are tried and the first error is returned.
    pub fn send(&self, adv: &Advertisement) -> io::Result<()> {
        let mut first_error = None;
        for &dst in &self.destinations {
            let sent = packet::encode(adv, self.local, dst)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
                .and_then(|bytes| self.send_to(&bytes, dst));
            if let Err(e) = sent {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn send_to(&self, bytes: &[u8], dst: IpAddr) -> io::Result<()> {
        let addr = SockAddr::new(dst, self.ifindex);
        let (name, name_len) = addr.as_raw();
        loop {
            // SAFETY: `bytes` and the address are live for the call, with
            // the lengths passed.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    0,
                    name,
                    name_len,
                )
            };
            match check_len(rc) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("sending to {dst}: {e}"))),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Receives one datagram; `Ok(None)` when none is queued. An error of
    /// kind `InvalidData` means one unusable datagram was consumed: keep
    /// reading.
    pub fn recv(&self) -> io::Result<Option<Received>> {
        let mut buf = [0u8; RECV_BUF_LEN];
        let got = match self.local {
            IpAddr::V4(_) => self.recv_v4(&mut buf),
            IpAddr::V6(_) => self.recv_v6(&mut buf),
        };
        match got {
            Ok(received) => Ok(Some(received)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn recv_v4(&self, buf: &mut [u8; RECV_BUF_LEN]) -> io::Result<Received> {
        let len = loop {
            // SAFETY: `buf` is writable for the length passed; MSG_TRUNC
            // makes the result the datagram's real length.
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            match check_len(rc) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if len > buf.len() {
            return Err(invalid_data(format!("datagram of {len} bytes is too long")));
        }
        parse_ipv4(&buf[..len]).map_err(invalid_data)
    }

    fn recv_v6(&self, buf: &mut [u8; RECV_BUF_LEN]) -> io::Result<Received> {
        let mut from = sockaddr_in6(Ipv6Addr::UNSPECIFIED, 0);
        // u64 elements: cmsghdr alignment. Room for hop limit and pktinfo.
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&raw mut from).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        let len = loop {
            // SAFETY: every pointer in `msg` points at a live local buffer
            // of the length given next to it.
            let rc = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, libc::MSG_TRUNC) };
            match check_len(rc) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if len > buf.len() {
            return Err(invalid_data(format!("datagram of {len} bytes is too long")));
        }
        let mut hop_limit = None;
        let mut dst = None;
        // SAFETY: `msg` was filled in by recvmsg; the CMSG_* macros stay
        // within `msg_controllen`, and the data is read unaligned at the
        // type the (level, type) pair promises.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            while !cmsg.is_null() {
                let data = libc::CMSG_DATA(cmsg);
                match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                    (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                        hop_limit = Some(data.cast::<libc::c_int>().read_unaligned());
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let info = data.cast::<libc::in6_pktinfo>().read_unaligned();
                        dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                    }
                    _ => {}
                }
                cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
            }
        }
        let (Some(hop_limit), Some(dst)) = (hop_limit, dst) else {
            return Err(invalid_data(
                "datagram without hop limit or destination".to_owned(),
            ));
        };
        Ok(Received {
            src: IpAddr::V6(Ipv6Addr::from(from.sin6_addr.s6_addr)),
            dst: IpAddr::V6(dst),
            ttl: u8::try_from(hop_limit).unwrap_or(0),
            payload: buf[..len].to_vec(),
        })
    }
}

impl AsFd for VrrpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn open_v4(ifname: &str, ifindex: u32, local: Ipv4Addr, multicast: bool) -> io::Result<OwnedFd> {
    use libc::{IPPROTO_IP as IP, c_int};
    let fd = raw_socket(
        libc::AF_INET,
        libc::SOCK_NONBLOCK,
        c_int::from(IPPROTO_VRRP),
    )?;
    let sock = fd.as_fd();
    bind_to_device(sock, ifname)?;
    let ttl = c_int::from(VRRP_TTL);
    set_option(sock, IP, libc::IP_TTL, &ttl, "IP_TTL")?;
    set_option(sock, IP, libc::IP_MULTICAST_TTL, &ttl, "IP_MULTICAST_TTL")?;
    set_option(sock, IP, libc::IP_MULTICAST_LOOP, &0, "IP_MULTICAST_LOOP")?;
    set_option(sock, IP, libc::IP_MULTICAST_ALL, &0, "IP_MULTICAST_ALL")?;
    let mreq = libc::ip_mreqn {
        imr_multiaddr: in_addr(VRRP_MCAST_V4),
        // For IP_MULTICAST_IF: the source address of what we send.
        imr_address: in_addr(local),
        imr_ifindex: ifindex as c_int,
    };
    set_option(sock, IP, libc::IP_MULTICAST_IF, &mreq, "IP_MULTICAST_IF")?;
    if multicast {
        set_option(
            sock,
            IP,
            libc::IP_ADD_MEMBERSHIP,
            &mreq,
            "IP_ADD_MEMBERSHIP",
        )?;
    } else {
        bind(sock, IpAddr::V4(local), ifindex)?;
    }
    Ok(fd)
}

fn open_v6(ifname: &str, ifindex: u32, local: Ipv6Addr, multicast: bool) -> io::Result<OwnedFd> {
    use libc::{IPPROTO_IPV6 as IP6, c_int};
    let fd = raw_socket(
        libc::AF_INET6,
        libc::SOCK_NONBLOCK,
        c_int::from(IPPROTO_VRRP),
    )?;
    let sock = fd.as_fd();
    bind_to_device(sock, ifname)?;
    set_option(
        sock,
        IP6,
        libc::IPV6_CHECKSUM,
        &CHECKSUM_OFFSET,
        "IPV6_CHECKSUM",
    )?;
    let hops = c_int::from(VRRP_TTL);
    set_option(
        sock,
        IP6,
        libc::IPV6_UNICAST_HOPS,
        &hops,
        "IPV6_UNICAST_HOPS",
    )?;
    ipv6_multicast_out(sock, ifindex, hops)?;
    // Best effort: without it (before Linux 4.20) a unicast-mode socket may
    // also see adverts for a group another socket of the host joined, which
    // `check` handles anyway.
    let _ = set_option(sock, IP6, IPV6_MULTICAST_ALL, &0, "IPV6_MULTICAST_ALL");
    set_option(sock, IP6, libc::IPV6_RECVHOPLIMIT, &1, "IPV6_RECVHOPLIMIT")?;
    set_option(sock, IP6, libc::IPV6_RECVPKTINFO, &1, "IPV6_RECVPKTINFO")?;
    if multicast {
        let mreq = libc::ipv6_mreq {
            ipv6mr_multiaddr: libc::in6_addr {
                s6_addr: VRRP_MCAST_V6.octets(),
            },
            ipv6mr_interface: ifindex,
        };
        let name = libc::IPV6_ADD_MEMBERSHIP;
        set_option(sock, IP6, name, &mreq, "IPV6_ADD_MEMBERSHIP")?;
    }
    bind(sock, IpAddr::V6(local), ifindex)?;
    Ok(fd)
}

/// Splits what an IPv4 raw socket delivers (the IP header, options and
/// all, then the VRRP message) into a [`Received`].
fn parse_ipv4(datagram: &[u8]) -> Result<Received, String> {
    const MIN_HEADER: usize = 20;
    if datagram.len() < MIN_HEADER {
        return Err(format!("{} bytes: no IPv4 header", datagram.len()));
    }
    if datagram[0] >> 4 != 4 {
        return Err(format!("IP version {}, expected 4", datagram[0] >> 4));
    }
    let header_len = usize::from(datagram[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if header_len < MIN_HEADER || header_len > total_len || total_len > datagram.len() {
        return Err(format!(
            "IPv4 header length {header_len} / total length {total_len} do not fit {} bytes",
            datagram.len()
        ));
    }
    if datagram[9] != IPPROTO_VRRP {
        return Err(format!(
            "IP protocol {}, expected {IPPROTO_VRRP}",
            datagram[9]
        ));
    }
    let addr = |at: usize| {
        IpAddr::V4(Ipv4Addr::new(
            datagram[at],
            datagram[at + 1],
            datagram[at + 2],
            datagram[at + 3],
        ))
    };
    Ok(Received {
        src: addr(12),
        dst: addr(16),
        ttl: datagram[8],
        payload: datagram[header_len..total_len].to_vec(),
    })
}

// Socket helpers shared with `announce`.

/// A close-on-exec `SOCK_RAW` socket; `flags` may add `SOCK_NONBLOCK`.
pub(super) fn raw_socket(
    domain: libc::c_int,
    flags: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    let ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags;
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(domain, ty, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// IPv6 multicast sent with hop limit `hops` out of interface `ifindex`,
/// not looped back to this host.
pub(super) fn ipv6_multicast_out(
    sock: BorrowedFd<'_>,
    ifindex: u32,
    hops: libc::c_int,
) -> io::Result<()> {
    use libc::IPPROTO_IPV6 as IP6;
    set_option(
        sock,
        IP6,
        libc::IPV6_MULTICAST_HOPS,
        &hops,
        "IPV6_MULTICAST_HOPS",
    )?;
    let index = ifindex as libc::c_int;
    set_option(
        sock,
        IP6,
        libc::IPV6_MULTICAST_IF,
        &index,
        "IPV6_MULTICAST_IF",
    )?;
    set_option(
        sock,
        IP6,
        libc::IPV6_MULTICAST_LOOP,
        &0,
        "IPV6_MULTICAST_LOOP",
    )
}

/// `setsockopt(2)` with `value` as the option's bytes; `what` names the
/// option in the error.
pub(crate) fn set_option<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size passed; the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const *value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    check_rc(rc).map_err(|e| io::Error::new(e.kind(), format!("setsockopt {what}: {e}")))
}

/// `SO_BINDTODEVICE`: send and receive on `ifname` only.
pub(super) fn bind_to_device(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<()> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
        return Err(invalid_input(&format!("bad interface name {ifname:?}")));
    }
    // SAFETY: the name's bytes are live for the call; the kernel copies at
    // most the length passed and needs no NUL terminator.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            ifname.as_ptr().cast(),
            ifname.len() as libc::socklen_t,
        )
    };
    check_rc(rc).map_err(|e| io::Error::new(e.kind(), format!("SO_BINDTODEVICE {ifname}: {e}")))
}

fn bind(fd: BorrowedFd<'_>, local: IpAddr, ifindex: u32) -> io::Result<()> {
    let addr = SockAddr::new(local, ifindex);
    let (name, len) = addr.as_raw();
    // SAFETY: the address is live for the call, with the length passed.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), name, len) };
    check_rc(rc).map_err(|e| io::Error::new(e.kind(), format!("binding to {local}: {e}")))
}

/// A socket address for an IP address; port 0 (raw sockets have none).
pub(super) enum SockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl SockAddr {
    /// For IPv6, `scope_id` is the interface: the kernel uses it only for
    /// addresses that need a scope (link-local, link-scope multicast).
    pub(super) fn new(ip: IpAddr, scope_id: u32) -> Self {
        match ip {
            IpAddr::V4(a) => Self::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: in_addr(a),
                sin_zero: [0; 8],
            }),
            IpAddr::V6(a) => Self::V6(sockaddr_in6(a, scope_id)),
        }
    }

    pub(super) fn as_raw(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            Self::V4(sin) => (
                (&raw const *sin).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            Self::V6(sin6) => (
                (&raw const *sin6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

pub(super) fn sockaddr_in6(a: Ipv6Addr, scope_id: u32) -> libc::sockaddr_in6 {
    libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: a.octets(),
        },
        sin6_scope_id: scope_id,
    }
}

fn in_addr(a: Ipv4Addr) -> libc::in_addr {
    // `s_addr` is in network byte order: the octets as they are in memory.
    libc::in_addr {
        s_addr: u32::from_ne_bytes(a.octets()),
    }
}

pub(super) fn check_rc(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub(super) fn check_len(rc: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

fn invalid_input(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

fn invalid_data(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VRID: u8 = 51;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn adv(vrid: u8) -> Advertisement {
        Advertisement {
            vrid,
            priority: 100,
            max_advert_int_cs: 10,
            addresses: vec![v4("10.99.0.200")],
        }
    }

    fn received(adv: &Advertisement, src: IpAddr, dst: IpAddr) -> Received {
        Received {
            src,
            dst,
            ttl: VRRP_TTL,
            payload: packet::encode(adv, src, dst).unwrap(),
        }
    }

    #[test]
    fn good_multicast_and_unicast_packets_pass() {
        let src = v4("10.99.0.2");
        let r = received(&adv(VRID), src, IpAddr::V4(VRRP_MCAST_V4));
        assert_eq!(check(&r, VRID, false), Ok(adv(VRID)));
        let r = received(&adv(VRID), src, v4("10.99.0.3"));
        assert_eq!(check(&r, VRID, true), Ok(adv(VRID)));

        let adv6 = Advertisement {
            addresses: vec!["fd00:99::200".parse().unwrap()],
            ..adv(VRID)
        };
        let src6 = "fe80::99:ff:fe00:2".parse().unwrap();
        let r = received(&adv6, src6, IpAddr::V6(VRRP_MCAST_V6));
        assert_eq!(check(&r, VRID, false), Ok(adv6));
    }

    #[test]
    fn ttl_below_255_is_rejected_first() {
        let mut r = received(&adv(VRID), v4("10.99.0.2"), IpAddr::V4(VRRP_MCAST_V4));
        r.ttl = 254;
        assert_eq!(check(&r, VRID, false), Err(Rejected::Ttl(254)));
        // Even when everything else is wrong too.
        r.payload[1] = VRID + 1;
        assert_eq!(check(&r, VRID, false), Err(Rejected::Ttl(254)));
        assert_eq!(
            Rejected::Ttl(254).to_string(),
            "TTL/hop limit 254, expected 255"
        );
    }

    #[test]
    fn other_vrid_is_its_own_rejection() {
        let r = received(&adv(52), v4("10.99.0.2"), IpAddr::V4(VRRP_MCAST_V4));
        assert_eq!(check(&r, VRID, false), Err(Rejected::OtherVrid(52)));
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut r = received(&adv(VRID), v4("10.99.0.2"), IpAddr::V4(VRRP_MCAST_V4));
        r.payload[7] ^= 0x01;
        for unicast in [false, true] {
            assert!(matches!(
                check(&r, VRID, unicast),
                Err(Rejected::Packet(PacketError::Checksum { .. }))
            ));
        }
        // Truncation and the like come through as packet errors too.
        r.payload.truncate(5);
        assert!(matches!(
            check(&r, VRID, false),
            Err(Rejected::Packet(PacketError::Truncated { .. }))
        ));
    }

    #[test]
    fn unicast_compat_checksum_is_accepted_in_unicast_mode_only() {
        // An old keepalived sums over 224.0.0.18 even when sending unicast.
        let src = v4("10.99.0.2");
        let payload = packet::encode(&adv(VRID), src, IpAddr::V4(VRRP_MCAST_V4)).unwrap();
        let r = Received {
            src,
            dst: v4("10.99.0.3"),
            ttl: VRRP_TTL,
            payload,
        };
        assert_eq!(check(&r, VRID, true), Ok(adv(VRID)));
        let Err(Rejected::Packet(PacketError::Checksum { .. })) = check(&r, VRID, false) else {
            panic!("multicast mode must not fall back to the compat checksum");
        };
    }

    #[test]
    fn ipv4_header_is_parsed() {
        let payload = packet::encode(&adv(VRID), v4("10.99.0.2"), v4("10.99.0.3")).unwrap();
        // IHL 6: one 4-byte option (no-ops) before the payload.
        let total = (24 + payload.len()) as u16;
        let mut dgram = vec![0x46, 0xc0];
        dgram.extend_from_slice(&total.to_be_bytes());
        dgram.extend_from_slice(&[0, 0, 0, 0, 255, 112, 0, 0]);
        dgram.extend_from_slice(&[10, 99, 0, 2, 10, 99, 0, 3]);
        dgram.extend_from_slice(&[1, 1, 1, 1]);
        dgram.extend_from_slice(&payload);
        let r = parse_ipv4(&dgram).unwrap();
        assert_eq!(
            r,
            Received {
                src: v4("10.99.0.2"),
                dst: v4("10.99.0.3"),
                ttl: 255,
                payload: payload.clone(),
            }
        );
        assert_eq!(check(&r, VRID, true), Ok(adv(VRID)));

        let mut other = dgram.clone();
        other[9] = 17;
        assert!(parse_ipv4(&other).unwrap_err().contains("protocol 17"));
        assert!(parse_ipv4(&dgram[..19]).is_err());
        // Total length beyond the bytes received.
        assert!(parse_ipv4(&dgram[..dgram.len() - 1]).is_err());
        let mut bad_ihl = dgram;
        bad_ihl[0] = 0x44;
        assert!(parse_ipv4(&bad_ihl).is_err());
    }
}
