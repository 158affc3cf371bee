//! `[ecmp]`: several active directors behind a router that spreads flows
//! by equal-cost multipath. lbd does not hold the VIPs (no ARP, no VRRP):
//! it publishes each VIP it is ready to serve as a host route in a kernel
//! routing table of its own, which a routing daemon (BIRD) exports over
//! BGP. `[ecmp.sync]` shares flows with every other director. Any change
//! needs a restart.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

use super::errors::Checker;
use super::values::{Int, Text, Value};

/// `ecmp.table` when not given.
pub const DEFAULT_ROUTE_TABLE: u32 = 4242;
/// `ecmp.learn_delay` when not given, and its upper bound.
pub const DEFAULT_LEARN_DELAY: Duration = Duration::from_secs(3);
pub const MAX_LEARN_DELAY: Duration = Duration::from_mins(1);
/// `ecmp.sync.port` when not given (one above `vrrp.sync.port`'s, so that
/// a director moving from one mode to the other does not mix them up).
pub const DEFAULT_SHARE_PORT: u16 = 9142;
/// The kernel's reserved tables: unspec, default, main, local.
const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];

/// `[ecmp]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcmpConfig {
    /// The kernel routing table lbd owns: one host route per announced
    /// VIP. Nothing else may write to it (lbd removes what it did not put
    /// there).
    pub table: u32,
    /// After start, a director waits for its peers' flows before it
    /// announces anything: until every peer's table arrived, at most this
    /// long.
    pub learn_delay: Duration,
    /// `[ecmp.sync]`; `None`: no flows are shared (fine for `maglev` and
    /// `sh` services, which every director schedules alike).
    pub sync: Option<ShareConfig>,
}

impl Default for EcmpConfig {
    fn default() -> Self {
        Self {
            table: DEFAULT_ROUTE_TABLE,
            learn_delay: DEFAULT_LEARN_DELAY,
            sync: None,
        }
    }
}

/// `[ecmp.sync]`: every director sends the flows it opens and closes to
/// every peer, as they happen.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareConfig {
    /// The other directors' addresses (1 or more, one family).
    pub peers: Vec<IpAddr>,
    /// UDP port, the same on every director.
    pub port: u16,
    /// Local address to listen on and send from; `None` = any.
    pub listen: Option<IpAddr>,
    /// Shared secret (at least 16 bytes) authenticating every datagram.
    pub key: String,
}

// The key stays out of logs and debug output.
impl std::fmt::Debug for ShareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareConfig")
            .field("peers", &self.peers)
            .field("port", &self.port)
            .field("listen", &self.listen)
            .field("key", &"<secret>")
            .finish()
    }
}

/// The keys of `[ecmp]` whose value is a duration.
pub(super) const DURATION_KEYS: &[&str] = &["learn_delay"];

/// `[ecmp]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [ecmp] table")]
struct RawEcmp {
    table: Option<Int>,
    learn_delay: Option<Text>,
    /// Read on its own by `share`.
    #[allow(dead_code)]
    sync: Option<IgnoredAny>,
}

/// `[ecmp.sync]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [ecmp.sync] table")]
struct RawShare {
    peers: Option<Spanned<Vec<Text>>>,
    port: Option<Int>,
    listen: Option<Text>,
    key: Option<Text>,
}

/// The dotted names of what differs and only takes effect after a restart:
/// the whole table (the routes and the sharing sockets are set up once).
pub(super) fn restart_required(
    old: Option<&EcmpConfig>,
    new: Option<&EcmpConfig>,
) -> Vec<&'static str> {
    if old == new { Vec::new() } else { vec!["ecmp"] }
}

impl Checker<'_> {
    pub(super) fn ecmp(&mut self, value: &Value<'_>) -> Option<EcmpConfig> {
        let raw = self.section::<RawEcmp>("ecmp", value)?;
        let mut ecmp = EcmpConfig::default();
        if let Some(table) = &raw.table
            && let Some(t) = self.int("ecmp.table", "table", table, 1..=u32::MAX)
        {
            if RESERVED_TABLES.contains(&t) {
                self.error(
                    table.span().start,
                    "ecmp.table",
                    format!(
                        "table {t} is one of the kernel's own (253 default, 254 main, 255 \
                         local): give lbd a table of its own"
                    ),
                );
            } else {
                ecmp.table = t;
            }
        }
        if let Some(text) = &raw.learn_delay
            && let Some(d) = self.duration_or_zero("ecmp.learn_delay", text)
        {
            if d > MAX_LEARN_DELAY {
                self.error(
                    text.span().start,
                    "ecmp.learn_delay",
                    format!(
                        "{:?} is longer than the most allowed, 1m (a director that cannot \
                         reach its peers must still start serving)",
                        text.get_ref()
                    ),
                );
            } else {
                ecmp.learn_delay = d;
            }
        }
        let sync = value.get_ref().as_table().and_then(|t| t.get("sync"));
        if let Some(sync) = sync {
            ecmp.sync = self.share(sync);
        }
        Some(ecmp)
    }

    fn share(&mut self, value: &Value<'_>) -> Option<ShareConfig> {
        let raw = self.section::<RawShare>("ecmp.sync", value)?;
        let header = value.span().start;
        let peers = self.required(
            header,
            "ecmp.sync",
            "peers",
            "the other directors' addresses",
            raw.peers.as_ref(),
        );
        let peers = peers.and_then(|list| self.share_peers(list));
        let key = self.sync_key(
            header,
            "ecmp.sync",
            "the same on every director",
            raw.key.as_ref(),
        );
        let mut share = ShareConfig {
            peers: peers?,
            port: DEFAULT_SHARE_PORT,
            listen: None,
            key: key?,
        };
        if let Some(port) = &raw.port
            && let Some(port) = self.port("ecmp.sync.port", port)
        {
            share.port = port;
        }
        if let Some(listen) = &raw.listen {
            share.listen = self.ip("ecmp.sync.listen", listen);
            if let Some(ip) = share.listen
                && ip.is_ipv6() != share.peers[0].is_ipv6()
            {
                self.error(
                    listen.span().start,
                    "ecmp.sync.listen",
                    format!(
                        "{ip} is not of the family of ecmp.sync.peers ({})",
                        share.peers[0]
                    ),
                );
            }
        }
        Some(share)
    }

    /// At least one peer, no duplicates, one family, no link-local ones.
    fn share_peers(&mut self, list: &Spanned<Vec<Text>>) -> Option<Vec<IpAddr>> {
        if list.get_ref().is_empty() {
            self.error(
                list.span().start,
                "ecmp.sync.peers",
                "no peers: list the other directors, or leave [ecmp.sync] out",
            );
            return None;
        }
        let mut peers: Vec<IpAddr> = Vec::new();
        let mut ok = true;
        for (i, text) in list.get_ref().iter().enumerate() {
            let field = format!("ecmp.sync.peers[{i}]");
            let Some(ip) = self.ip(&field, text) else {
                ok = false;
                continue;
            };
            let problem = if peers.contains(&ip) {
                Some(format!("{ip} is listed twice"))
            } else if peers.first().is_some_and(|p| p.is_ipv6() != ip.is_ipv6()) {
                Some(format!(
                    "{ip} is not of the family of the first peer ({})",
                    peers[0]
                ))
            } else if let IpAddr::V6(v6) = ip
                && v6.segments()[0] & 0xffc0 == 0xfe80
            {
                Some(format!(
                    "{ip} is link-local, which needs an interface: use a global address"
                ))
            } else {
                None
            };
            match problem {
                Some(message) => {
                    self.error(text.span().start, field, message);
                    ok = false;
                }
                None => peers.push(ip),
            }
        }
        ok.then_some(peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{MINIMAL as BASE, errors as errors_of, ok as parse_ok};

    #[test]
    fn defaults_and_a_full_table() {
        let c = parse_ok(&format!("{BASE}[ecmp]\n"));
        assert_eq!(c.ecmp, Some(EcmpConfig::default()));
        let c = parse_ok(&format!(
            "{BASE}[ecmp]\ntable = 100\nlearn_delay = \"0s\"\n[ecmp.sync]\n\
             peers = [\"10.0.0.3\", \"10.0.0.4\"]\nport = 9200\nlisten = \"10.0.0.2\"\n\
             key = \"0123456789abcdef\"\n"
        ));
        let ecmp = c.ecmp.unwrap();
        assert_eq!(ecmp.table, 100);
        assert_eq!(ecmp.learn_delay, Duration::ZERO);
        let sync = ecmp.sync.unwrap();
        assert_eq!(sync.peers.len(), 2);
        assert_eq!(sync.port, 9200);
        assert_eq!(sync.listen, Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn errors_name_line_and_field() {
        let errors = errors_of(&format!(
            "{BASE}[ecmp]\ntable = 254\nlearn_delay = \"2m\"\n[ecmp.sync]\n\
             peers = [\"10.0.0.3\", \"10.0.0.3\", \"fd00::1\"]\nkey = \"short\"\n"
        ));
        let expected = [
            (4, "ecmp.table", "kernel's own"),
            (5, "ecmp.learn_delay", "longer than"),
            (7, "ecmp.sync.peers[1]", "listed twice"),
            (7, "ecmp.sync.peers[2]", "family"),
            (8, "ecmp.sync.key", "at least 16"),
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for ((line, field, text), e) in expected.iter().zip(&errors) {
            assert_eq!((e.line, e.field.as_str()), (*line, *field), "{e}");
            assert!(e.message.contains(text), "{e}");
        }
        let errors = errors_of(&format!("{BASE}[ecmp]\n[ecmp.sync]\npeers = []\n"));
        assert!(
            errors.iter().any(|e| e.field == "ecmp.sync.peers"),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.field == "ecmp.sync.key"),
            "{errors:#?}"
        );
    }

    #[test]
    fn ecmp_and_vrrp_exclude_each_other() {
        let errors = errors_of(&format!("{BASE}[vrrp]\nvrid = 5\n[ecmp]\n"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].field, "ecmp");
        assert_eq!(errors[0].line, 5);
    }
}
