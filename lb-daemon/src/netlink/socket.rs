//! The `NETLINK_ROUTE` socket and the request/reply exchange.
//!
//! Every request carries a fresh sequence number. Requests that are not dumps
//! also carry `NLM_F_ACK`, so every exchange ends the same way: with an
//! `NLMSG_ERROR` (code 0 is the ACK, a negative code the kernel's errno) or,
//! for a dump, with `NLMSG_DONE` after any number of `NLM_F_MULTI` datagrams.
//! Anything with another sequence number is a late reply to a request that
//! was abandoned (timed out) and is skipped.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NlasIterator,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::NetlinkError;

/// How long a request may wait for the kernel's (complete) reply.
pub(super) const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// How many times a dump is restarted when the kernel flags it as
/// inconsistent (`NLM_F_DUMP_INTR`: the table changed while it was read).
const DUMP_ATTEMPTS: usize = 5;

/// `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;

/// `NLMSGERR_ATTR_MSG`: the extended-ACK text in an `NLMSG_ERROR`.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A blocking rtnetlink (`NETLINK_ROUTE`) socket. Not shared between
/// threads: open one per thread that needs it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    /// Receive buffer, reused between datagrams.
    buf: Vec<u8>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.socket.as_raw_fd())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a `NETLINK_ROUTE` socket in the calling thread's network
    /// namespace (the namespace is fixed at this point: entering another one
    /// later does not move the socket).
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Best effort (both exist since Linux 4.12/4.3): error replies carry
        // the kernel's explanation, and not a copy of our whole request.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        set_recv_timeout(&socket, RECV_TIMEOUT)?;
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(32 * 1024),
        })
    }

    /// Sends a request that changes something (or gets one object) with
    /// `NLM_F_ACK` and `extra_flags`; returns the messages the kernel sent
    /// before the ACK.
    pub(super) fn request(
        &mut self,
        op: &'static str,
        message: RouteNetlinkMessage,
        extra_flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let replies = self.exchange(op, message, NLM_F_ACK | extra_flags)?;
        if let Some(error) = replies.undecodable.into_iter().next() {
            return Err(NetlinkError::Decode(format!("{op}: {error}")));
        }
        Ok(replies.messages)
    }

    /// Dumps a table (`NLM_F_DUMP`), restarting when the kernel reports that
    /// the table changed during the dump. Entries the parser cannot decode
    /// are logged and skipped, so one odd entry does not hide all the others.
    pub(super) fn dump(
        &mut self,
        op: &'static str,
        message: &RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let replies = self.exchange(op, message.clone(), NLM_F_DUMP)?;
            if replies.interrupted {
                continue;
            }
            for error in &replies.undecodable {
                tracing::warn!("{op}: skipping an entry that cannot be decoded: {error}");
            }
            return Ok(replies.messages);
        }
        Err(NetlinkError::DumpInterrupted { op })
    }

    fn exchange(
        &mut self,
        op: &'static str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Replies, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let packet = encode(message, NLM_F_REQUEST | flags, seq);
        self.socket.send(&packet, 0)?;

        let mut replies = Replies::default();
        loop {
            self.recv_datagram(op)?;
            if absorb(&self.buf, seq, op, &mut replies)? == Progress::Done {
                return Ok(replies);
            }
        }
    }

    /// Receives one whole datagram into `self.buf`, however large (peek at
    /// its size first: a truncated netlink datagram is lost for good).
    fn recv_datagram(&mut self, op: &'static str) -> Result<(), NetlinkError> {
        let size = self.recv_retrying(op, libc::MSG_PEEK | libc::MSG_TRUNC)?;
        self.buf.clear();
        self.buf.reserve(size);
        // MSG_TRUNC: the datagram's real size, to notice a truncation.
        let got = self.recv_retrying(op, libc::MSG_TRUNC)?;
        if got > self.buf.len() {
            return Err(NetlinkError::Decode(format!(
                "{op}: datagram of {got} bytes truncated to {}",
                self.buf.len()
            )));
        }
        Ok(())
    }

    fn recv_retrying(
        &mut self,
        op: &'static str,
        flags: libc::c_int,
    ) -> Result<usize, NetlinkError> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, flags) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(NetlinkError::Timeout { op });
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn set_recv_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    // SAFETY: a valid fd and a pointer to a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Serializes a request.
pub(super) fn encode(message: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

/// What one request has received so far.
#[derive(Debug, Default)]
struct Replies {
    messages: Vec<RouteNetlinkMessage>,
    /// Parse errors of messages that were otherwise well-framed.
    undecodable: Vec<String>,
    /// A part of the dump carried `NLM_F_DUMP_INTR`.
    interrupted: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Progress {
    More,
    Done,
}

/// Takes in one datagram's messages for the request with sequence number
/// `seq`. `Done` once the closing `NLMSG_DONE` or `NLMSG_ERROR` (ACK) came.
fn absorb(
    datagram: &[u8],
    seq: u32,
    op: &'static str,
    replies: &mut Replies,
) -> Result<Progress, NetlinkError> {
    let mut offset = 0;
    while offset < datagram.len() {
        let framed = NetlinkBuffer::new_checked(&datagram[offset..])
            .map_err(|e| NetlinkError::Decode(format!("{op}: {e}")))?;
        let len = framed.length() as usize;
        let bytes = &datagram[offset..offset + len];
        offset += len.next_multiple_of(4);
        if framed.sequence_number() != seq {
            continue;
        }
        let flags = framed.flags();
        if flags & NLM_F_DUMP_INTR != 0 {
            replies.interrupted = true;
        }
        let payload = &bytes[NLMSG_HDRLEN..];
        match framed.message_type() {
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => {
                return Err(NetlinkError::Decode(format!("{op}: NLMSG_OVERRUN")));
            }
            NLMSG_ERROR => {
                let code = read_i32(payload)
                    .ok_or_else(|| NetlinkError::Decode(format!("{op}: short NLMSG_ERROR")))?;
                if code == 0 {
                    return Ok(Progress::Done);
                }
                return Err(NetlinkError::Kernel {
                    op,
                    errno: code.saturating_neg(),
                    message: extack_message(flags, &payload[4..]),
                });
            }
            NLMSG_DONE => {
                // A dump that failed midway says so in NLMSG_DONE's payload
                // (may be empty on old kernels: success).
                let code = read_i32(payload).unwrap_or(0);
                if code < 0 {
                    return Err(NetlinkError::Kernel {
                        op,
                        errno: code.saturating_neg(),
                        message: None,
                    });
                }
                return Ok(Progress::Done);
            }
            _ => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(message),
                    ..
                }) => replies.messages.push(message),
                Ok(_) => {}
                Err(e) => replies.undecodable.push(e.to_string()),
            },
        }
    }
    Ok(Progress::More)
}

fn read_i32(bytes: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// The `NLMSGERR_ATTR_MSG` of an `NLMSG_ERROR`, given what follows the error
/// code: the original request's header (just the header with
/// `NETLINK_CAP_ACK`, the whole request without), then the TLVs.
fn extack_message(flags: u16, after_code: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let original_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes(after_code.get(..4)?.try_into().ok()?) as usize
    };
    let tlvs = after_code.get(original_len.next_multiple_of(4)..)?;
    NlasIterator::new(tlvs)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value();
            let text = text.split(|&b| b == 0).next().unwrap_or(text);
            String::from_utf8_lossy(text).into_owned()
        })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use netlink_packet_core::{NLM_F_MULTIPART, NetlinkSerializable};
    use netlink_packet_route::{
        AddressFamily,
        neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
    };

    use super::*;

    fn neighbour(last: u8) -> RouteNetlinkMessage {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = 2;
        message.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Inet(
            Ipv4Addr::new(10, 0, 0, last),
        ))];
        RouteNetlinkMessage::NewNeighbour(message)
    }

    fn raw(message_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&message_type.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&1234u32.to_ne_bytes());
        out.extend_from_slice(payload);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn inner(message: &RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
        let mut body = vec![0; message.buffer_len()];
        message.serialize(&mut body);
        raw(message.message_type(), flags, seq, &body)
    }

    fn done(seq: u32, code: i32) -> Vec<u8> {
        raw(NLMSG_DONE, NLM_F_MULTIPART, seq, &code.to_ne_bytes())
    }

    fn error(seq: u32, code: i32, extra_flags: u16, rest: &[u8]) -> Vec<u8> {
        let mut payload = code.to_ne_bytes().to_vec();
        payload.extend_from_slice(rest);
        raw(NLMSG_ERROR, extra_flags, seq, &payload)
    }

    #[test]
    fn multipart_dump_spans_datagrams_until_done() {
        let mut replies = Replies::default();
        let first = [
            inner(&neighbour(1), NLM_F_MULTIPART, 7),
            inner(&neighbour(2), NLM_F_MULTIPART, 7),
        ]
        .concat();
        assert_eq!(
            absorb(&first, 7, "t", &mut replies).unwrap(),
            Progress::More
        );
        let second = [inner(&neighbour(3), NLM_F_MULTIPART, 7), done(7, 0)].concat();
        assert_eq!(
            absorb(&second, 7, "t", &mut replies).unwrap(),
            Progress::Done
        );
        assert_eq!(replies.messages, [neighbour(1), neighbour(2), neighbour(3)]);
        assert!(!replies.interrupted);
    }

    #[test]
    fn other_sequence_numbers_are_skipped() {
        let mut replies = Replies::default();
        let datagram = [
            inner(&neighbour(9), NLM_F_MULTIPART, 6),
            done(6, 0),
            error(6, -libc::ENOENT, 0, &[]),
            inner(&neighbour(1), 0, 7),
        ]
        .concat();
        assert_eq!(
            absorb(&datagram, 7, "t", &mut replies).unwrap(),
            Progress::More
        );
        assert_eq!(
            absorb(&error(7, 0, 0, &[]), 7, "t", &mut replies).unwrap(),
            Progress::Done
        );
        assert_eq!(replies.messages, [neighbour(1)]);
    }

    #[test]
    fn ack_ends_the_exchange() {
        let mut replies = Replies::default();
        assert_eq!(
            absorb(&error(3, 0, 0, &[]), 3, "t", &mut replies).unwrap(),
            Progress::Done
        );
        assert!(replies.messages.is_empty());
    }

    #[test]
    fn kernel_error_carries_errno_and_extack() {
        // NETLINK_CAP_ACK: the original header only, then the TLVs.
        let mut rest = vec![0u8; NLMSG_HDRLEN];
        let text = b"Invalid link address\0";
        let nla_len = (4 + text.len()) as u16;
        rest.extend_from_slice(&nla_len.to_ne_bytes());
        rest.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        rest.extend_from_slice(text);
        let datagram = error(5, -libc::EINVAL, NLM_F_CAPPED | NLM_F_ACK_TLVS, &rest);
        let err = absorb(&datagram, 5, "resolve", &mut Replies::default()).unwrap_err();
        match err {
            NetlinkError::Kernel { op, errno, message } => {
                assert_eq!(op, "resolve");
                assert_eq!(errno, libc::EINVAL);
                assert_eq!(message.as_deref(), Some("Invalid link address"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failed_dump_reports_done_code() {
        let err = absorb(&done(4, -libc::EBUSY), 4, "dump", &mut Replies::default()).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EBUSY));
    }

    #[test]
    fn interrupted_dump_is_flagged() {
        let mut replies = Replies::default();
        let datagram = [
            inner(&neighbour(1), NLM_F_MULTIPART | NLM_F_DUMP_INTR, 2),
            done(2, 0),
        ]
        .concat();
        assert_eq!(
            absorb(&datagram, 2, "t", &mut replies).unwrap(),
            Progress::Done
        );
        assert!(replies.interrupted);
    }

    #[test]
    fn undecodable_entry_is_recorded_not_fatal() {
        let mut replies = Replies::default();
        // RTM_NEWNEIGH (28) with a body shorter than struct ndmsg.
        let datagram = [raw(28, NLM_F_MULTIPART, 1, &[2, 0, 0]), done(1, 0)].concat();
        assert_eq!(
            absorb(&datagram, 1, "t", &mut replies).unwrap(),
            Progress::Done
        );
        assert!(replies.messages.is_empty());
        assert_eq!(replies.undecodable.len(), 1);
    }

    #[test]
    fn truncated_frame_is_a_decode_error() {
        let mut datagram = inner(&neighbour(1), 0, 1);
        datagram.truncate(20);
        assert!(matches!(
            absorb(&datagram, 1, "t", &mut Replies::default()),
            Err(NetlinkError::Decode(_))
        ));
    }

    #[test]
    fn encode_sets_header() {
        let bytes = encode(neighbour(1), NLM_F_REQUEST | NLM_F_ACK, 42);
        let framed = NetlinkBuffer::new_checked(&bytes[..]).unwrap();
        assert_eq!(framed.length() as usize, bytes.len());
        assert_eq!(framed.sequence_number(), 42);
        assert_eq!(framed.flags(), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(framed.message_type(), 28);
    }
}
