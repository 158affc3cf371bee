//! What can go wrong talking to the kernel over rtnetlink.

use std::fmt;

/// An rtnetlink failure.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket itself failed (open, bind, send, receive).
    #[error("rtnetlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused the request: `NLMSG_ERROR` with a negative errno,
    /// or a dump that ended with one. `errno` is positive (e.g.
    /// `libc::EEXIST`); `message` is the kernel's extended-ACK text, when it
    /// gave one.
    #[error("{op}: {}", KernelText { errno: *errno, message: message.as_deref() })]
    Kernel {
        op: &'static str,
        errno: i32,
        message: Option<String>,
    },
    /// The kernel's reply could not be parsed.
    #[error("rtnetlink: cannot decode the kernel's reply: {0}")]
    Decode(String),
    /// The named (or numbered) interface does not exist.
    #[error("no such network interface: {0}")]
    NoSuchInterface(String),
    /// The interface has no Ethernet (6-byte) hardware address.
    #[error("interface {ifindex} has no Ethernet address")]
    NoMacAddress { ifindex: u32 },
    /// No complete reply within the socket's receive timeout.
    #[error("{op}: no reply from the kernel within {}s", super::socket::RECV_TIMEOUT.as_secs())]
    Timeout { op: &'static str },
    /// A dump kept being interrupted by concurrent changes (the kernel set
    /// `NLM_F_DUMP_INTR` on every attempt).
    #[error("{op}: the table kept changing during the dump")]
    DumpInterrupted { op: &'static str },
}

impl NetlinkError {
    /// The kernel's errno (positive) when the kernel refused the request.
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { errno, .. } => Some(*errno),
            Self::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

/// `strerror(errno)` plus the extended-ACK message.
struct KernelText<'a> {
    errno: i32,
    message: Option<&'a str>,
}

impl fmt::Display for KernelText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // io::Error's Display is "<strerror> (os error N)".
        write!(f, "{}", std::io::Error::from_raw_os_error(self.errno))?;
        if let Some(message) = self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_error_shows_strerror_and_extack() {
        let e = NetlinkError::Kernel {
            op: "add address",
            errno: libc::EEXIST,
            message: None,
        };
        assert_eq!(e.to_string(), "add address: File exists (os error 17)");
        assert_eq!(e.errno(), Some(libc::EEXIST));

        let e = NetlinkError::Kernel {
            op: "resolve",
            errno: libc::EINVAL,
            message: Some("Invalid link address".into()),
        };
        assert_eq!(
            e.to_string(),
            "resolve: Invalid argument (os error 22): Invalid link address"
        );
    }
}
