//! Is the previous master still there? One ICMP echo to it, answered by its
//! kernel when the host and its link are up (a killed `lbd` leaves both, and
//! its pinned data path, running), not when its link or host is down.
//!
//! A master that went silent may be either; only the first can take the
//! packets of its flows (see `handover`), so the new master asks.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use crate::vrrp::packet::internet_checksum;

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// A raw ICMP (or `ICMPv6`) socket that sends echo requests and recognises
/// the replies to them.
pub struct EchoProbe {
    fd: OwnedFd,
    v6: bool,
    /// Our echo identifier (the thread's; replies carry it back).
    id: u16,
    seq: u16,
}

impl EchoProbe {
    /// A non-blocking raw socket for `v6` or IPv4 (needs `CAP_NET_RAW`, as
    /// the VRRP socket does).
    pub fn open(v6: bool) -> io::Result<Self> {
        let (domain, protocol) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        // SAFETY: socket(2) takes no pointers.
        let raw = unsafe {
            libc::socket(
                domain,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor socket(2) just returned, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self {
            fd,
            v6,
            id: (std::process::id() & 0xffff) as u16,
            seq: 0,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one echo request to `to` (`scope`: the interface, for an IPv6
    /// link-local address).
    pub fn send(&mut self, to: IpAddr, scope: u32) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let kind = if self.v6 {
            ICMPV6_ECHO_REQUEST
        } else {
            ICMP_ECHO_REQUEST
        };
        let mut message = vec![kind, 0, 0, 0];
        message.extend_from_slice(&self.id.to_be_bytes());
        message.extend_from_slice(&self.seq.to_be_bytes());
        message.extend_from_slice(b"lbd handover");
        if !self.v6 {
            // The kernel fills in ICMPv6 checksums itself, not ICMPv4 ones.
            let sum = internet_checksum(&message);
            message[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        let sent = match to {
            IpAddr::V4(ip) => send_to_v4(&self.fd, &message, ip),
            IpAddr::V6(ip) => send_to_v6(&self.fd, &message, ip, scope),
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads what has arrived; whether an echo reply of ours from `from` was
    /// among it.
    pub fn answered_by(&self, from: IpAddr) -> bool {
        let mut answered = false;
        let mut buf = [0u8; 512];
        loop {
            let Some((len, source)) = recv_from(&self.fd, &mut buf) else {
                return answered;
            };
            // IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
            let icmp = if self.v6 {
                &buf[..len]
            } else {
                let ihl = usize::from(buf.first().copied().unwrap_or(0) & 0x0f) * 4;
                buf.get(ihl..len).unwrap_or_default()
            };
            let reply = if self.v6 {
                ICMPV6_ECHO_REPLY
            } else {
                ICMP_ECHO_REPLY
            };
            if source == from
                && icmp.len() >= 8
                && icmp[0] == reply
                && icmp[4..6] == self.id.to_be_bytes()
            {
                answered = true;
            }
        }
    }
}

fn send_to_v4(fd: &OwnedFd, message: &[u8], to: Ipv4Addr) -> isize {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(to.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: valid buffer and address for the lengths given.
    unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    }
}

fn send_to_v6(fd: &OwnedFd, message: &[u8], to: Ipv6Addr, scope: u32) -> isize {
    let addr = libc::sockaddr_in6 {
        sin6_family: libc::AF_INET6 as libc::sa_family_t,
        sin6_port: 0,
        sin6_flowinfo: 0,
        sin6_addr: libc::in6_addr {
            s6_addr: to.octets(),
        },
        sin6_scope_id: scope,
    };
    // SAFETY: valid buffer and address for the lengths given.
    unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    }
}

/// One datagram and its source, or `None` when nothing is queued.
fn recv_from(fd: &OwnedFd, buf: &mut [u8]) -> Option<(usize, IpAddr)> {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid buffers for the lengths given.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&raw mut storage).cast(),
            &raw mut len,
        )
    };
    let n = usize::try_from(n).ok()?;
    let source = match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { *(&raw const storage).cast() };
            IpAddr::V4(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { *(&raw const storage).cast() };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        }
        // Not from anyone we ask.
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    Some((n, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_an_echo_request() {
        // Type 8, code 0, id 1, seq 1, no payload: 0xf7fd.
        assert_eq!(internet_checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }

    #[test]
    fn loopback_answers_an_echo() {
        // Needs CAP_NET_RAW (root), as lbd does.
        let Ok(mut probe) = EchoProbe::open(false) else {
            return;
        };
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        probe.send(lo, 0).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !probe.answered_by(lo) {
            assert!(
                std::time::Instant::now() < deadline,
                "no echo reply from lo"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
