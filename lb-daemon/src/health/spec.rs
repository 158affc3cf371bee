//! What to check and how often: the typed form of a `[service.check]`
//! table (with a real's overrides applied). Shared by the config parser,
//! which builds it, and the checker, which runs it.

use std::{fmt::Write as _, net::IpAddr, path::PathBuf, time::Duration};

/// How a real is probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// No checking: the real is always considered up.
    None,
    /// A TCP connection to the check port is accepted.
    Tcp,
    /// `GET path` over HTTP/1.1 answers with an expected status (and body).
    Http(HttpCheck),
    /// The same over TLS (rustls).
    Https(HttpCheck),
    /// A program run with the real's address in its environment
    /// (`LB_REAL_ADDR`, `LB_REAL_PORT`); exit 0 = healthy. Never via a shell.
    Command { program: PathBuf, args: Vec<String> },
    /// A UDP datagram gets a reply (an ICMP port unreachable or no reply
    /// within the timeout fails).
    Udp(UdpCheck),
    /// A DNS query over UDP gets an answer with the expected rcode (and
    /// address).
    Dns(DnsCheck),
}

impl CheckKind {
    /// One line for `lbctl health`: `tcp`, `http GET /healthz`,
    /// `dns AAAA www.example.com`, …
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::None => "none".to_owned(),
            Self::Tcp => "tcp".to_owned(),
            Self::Http(h) => format!("http GET {}", h.path),
            Self::Https(h) => format!("https GET {}", h.path),
            Self::Command { program, .. } => format!("command {}", program.display()),
            Self::Udp(u) => match &u.expect_reply {
                Some(reply) => format!("udp (reply with {reply:?})"),
                None => "udp".to_owned(),
            },
            Self::Dns(d) => {
                let mut text = format!("dns {} {}", super::dns::type_name(d.qtype), d.name);
                if d.rcode != 0 {
                    let _ = write!(text, " {}", super::dns::rcode_name(d.rcode));
                }
                if let Some(addr) = d.expect_address {
                    let _ = write!(text, " = {addr}");
                }
                text
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    /// What is sent (the text's UTF-8 bytes).
    pub payload: String,
    /// A substring the reply must contain; `None`: any reply passes.
    pub expect_reply: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsCheck {
    /// The name queried (without a trailing dot).
    pub name: String,
    /// The query type's code (1 = A, 28 = AAAA, …; see `health::dns`).
    pub qtype: u16,
    /// The response code expected; default 0 (NOERROR).
    pub rcode: u8,
    /// An address one of the answers must hold (an A or AAAA query).
    pub expect_address: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    pub path: String,
    /// `Host` header; default: the real's address.
    pub host: Option<String>,
    /// Accepted status codes; default: 200..=399.
    pub expect_status: Vec<u16>,
    /// A substring the body must contain (first 64 KiB).
    pub expect_body: Option<String>,
    /// HTTPS only: verify the certificate (against the system roots, for
    /// `host`). Default true.
    pub verify_tls: bool,
}

impl HttpCheck {
    /// `GET path` with every other setting at its default (Host = the
    /// real's address, any 2xx/3xx status, no body check, certificate
    /// verified).
    #[must_use]
    pub fn get(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            host: None,
            expect_status: Vec::new(),
            expect_body: None,
            verify_tls: true,
        }
    }
}

/// Defaults that take a dead or hung real out within 3 s and bring a
/// recovered one in within 2 s without flapping on a single lost probe: a
/// probe every second, and while a transition is pending (some successes
/// toward `rise` or failures toward `fall`) or a probe is unanswered the
/// next one after `fast_interval` (see `state`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_FAST_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(800);
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 10;

/// A complete check of one real.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Port probed; `None`: the real's port.
    pub port: Option<u16>,
    pub interval: Duration,
    pub fast_interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes to come up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// A real added (in the config, by reload or `lbctl`, or found at an
    /// `lbd` start on a fresh data path) starts down and takes no new
    /// connections until `rise` checks pass, like keepalived's `alpha`.
    /// Default false: it starts up.
    pub start_down: bool,
}

impl Default for CheckSpec {
    fn default() -> Self {
        Self {
            kind: CheckKind::Tcp,
            port: None,
            interval: DEFAULT_INTERVAL,
            fast_interval: DEFAULT_FAST_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
            start_down: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_describe_themselves() {
        assert_eq!(CheckKind::Tcp.describe(), "tcp");
        assert_eq!(
            CheckKind::Http(HttpCheck::get("/healthz")).describe(),
            "http GET /healthz"
        );
        assert_eq!(
            CheckKind::Udp(UdpCheck {
                payload: "ping".into(),
                expect_reply: Some("pong".into()),
            })
            .describe(),
            "udp (reply with \"pong\")"
        );
        let dns = DnsCheck {
            name: "svc.lab.test".into(),
            qtype: 28,
            rcode: 0,
            expect_address: Some("fd00::1".parse().unwrap()),
        };
        assert_eq!(
            CheckKind::Dns(dns.clone()).describe(),
            "dns AAAA svc.lab.test = fd00::1"
        );
        let nx = DnsCheck {
            rcode: 3,
            expect_address: None,
            ..dns
        };
        assert_eq!(
            CheckKind::Dns(nx).describe(),
            "dns AAAA svc.lab.test NXDOMAIN"
        );
    }
}
