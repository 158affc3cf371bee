//! The UDP socket sync datagrams travel over.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use crate::vrrp::socket::set_option;

/// A non-blocking UDP socket: the daemon polls it from its event loop (via
/// the raw fd) rather than dedicating a thread to it.
#[derive(Debug)]
pub struct SyncSocket {
    socket: UdpSocket,
}

impl SyncSocket {
    /// Binds `local` (port 0 picks one). std opens the socket close-on-exec,
    /// so health-check commands lbd spawns do not inherit it.
    pub fn bind(local: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        // A whole-table dump arrives as a burst of datagrams that the
        // receiver applies at a few syscalls per flow: without room to
        // queue them, most would be dropped.
        let fd = socket.as_fd();
        for (force, plain, what) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, "SO_RCVBUF"),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, "SO_SNDBUF"),
        ] {
            if set_option(fd, libc::SOL_SOCKET, force, &BUFFER_BYTES, what).is_err() {
                // Not root: as much as net.core.[rw]mem_max allows.
                let _ = set_option(fd, libc::SOL_SOCKET, plain, &BUFFER_BYTES, what);
            }
        }
        Ok(Self { socket })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one datagram. A full send buffer shows up as `WouldBlock`; the
    /// caller decides whether to retry or drop (later updates resend flows).
    pub fn send_to(&self, bytes: &[u8], peer: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(bytes, peer)
    }

    /// Receives one datagram, `None` if none is queued. Pass a buffer larger
    /// than [`MAX_DATAGRAM`](super::wire::MAX_DATAGRAM): the kernel silently
    /// cuts longer datagrams to the buffer, and a cut one should reach
    /// `decode` oversized rather than as a misleading bad tag.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        loop {
            match self.socket.recv_from(buf) {
                Ok(got) => return Ok(Some(got)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                // A signal arrived mid-call: nothing was consumed, try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Socket buffer size asked for: about 300,000 IPv4 flow records.
const BUFFER_BYTES: libc::c_int = 16 << 20;

impl AsRawFd for SyncSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_send_and_receive() {
        let a = SyncSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = SyncSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut buf = [0; 2048];
        assert!(b.recv(&mut buf).unwrap().is_none());
        assert_eq!(a.send_to(b"hello", b.local_addr().unwrap()).unwrap(), 5);
        // Loopback delivery is immediate in practice; allow a little slack.
        let mut got = None;
        for _ in 0..100 {
            got = b.recv(&mut buf).unwrap();
            if got.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (n, from) = got.expect("datagram arrived");
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, a.local_addr().unwrap());
        assert!(b.as_raw_fd() >= 0);
    }
}
