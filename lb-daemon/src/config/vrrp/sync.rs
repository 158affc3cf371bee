//! `[vrrp.sync]`: the connection table, sent by the master to its peer.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::super::errors::Checker;
use super::super::values::{Int, Text, Value};

/// `vrrp.sync.port` when not given.
pub const DEFAULT_SYNC_PORT: u16 = 9141;
/// `vrrp.sync.interval` when not given.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// `vrrp.sync.wait_before_preempt` when not given.
pub const DEFAULT_WAIT_BEFORE_PREEMPT: Duration = Duration::from_secs(10);
/// The shortest `vrrp.sync.key`, in bytes.
pub const MIN_SYNC_KEY_LEN: usize = 16;

/// `[vrrp.sync]`: the connection table, sent by the master to its peer so
/// that established flows keep their real after a failover.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The other director's address.
    pub peer: IpAddr,
    /// UDP port, the same on both directors.
    pub port: u16,
    /// Local address to listen on and send from; `None` = any.
    pub listen: Option<IpAddr>,
    /// Shared secret (at least 16 bytes) authenticating every datagram.
    pub key: String,
    /// How often the master sends the flows seen since the last round.
    pub interval: Duration,
    /// A backup that would preempt waits for the master's table at most
    /// this long.
    pub wait_before_preempt: Duration,
}

// The key stays out of logs and debug output.
impl std::fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConfig")
            .field("peer", &self.peer)
            .field("port", &self.port)
            .field("listen", &self.listen)
            .field("key", &"<secret>")
            .field("interval", &self.interval)
            .field("wait_before_preempt", &self.wait_before_preempt)
            .finish()
    }
}

/// The keys of `[vrrp.sync]` whose value is a duration.
pub(in crate::config) const DURATION_KEYS: &[&str] = &["interval", "wait_before_preempt"];

/// `[vrrp.sync]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [vrrp.sync] table")]
struct RawSync {
    peer: Option<Text>,
    port: Option<Int>,
    listen: Option<Text>,
    key: Option<Text>,
    interval: Option<Text>,
    wait_before_preempt: Option<Text>,
}

impl Checker<'_> {
    /// `SECTION.key`: required, at least [`MIN_SYNC_KEY_LEN`] bytes (shared
    /// by `[vrrp.sync]` and `[ecmp.sync]`; `who` says who must share it).
    pub(in crate::config) fn sync_key(
        &mut self,
        header: usize,
        section: &str,
        who: &str,
        text: Option<&Text>,
    ) -> Option<String> {
        let what = format!("a shared secret of at least {MIN_SYNC_KEY_LEN} bytes, {who}");
        let key = self.required(header, section, "key", &what, text)?;
        if key.get_ref().len() < MIN_SYNC_KEY_LEN {
            self.error(
                key.span().start,
                format!("{section}.key"),
                format!(
                    "the key is {} bytes long; use at least {MIN_SYNC_KEY_LEN} (e.g. the \
                     output of `openssl rand -hex 16`)",
                    key.get_ref().len()
                ),
            );
            return None;
        }
        Some(key.get_ref().clone())
    }

    pub(super) fn sync(&mut self, value: &Value<'_>) -> Option<SyncConfig> {
        let raw = self.section::<RawSync>("vrrp.sync", value)?;
        let header = value.span().start;
        let peer = self.required(
            header,
            "vrrp.sync",
            "peer",
            "the other director's address",
            raw.peer.as_ref(),
        );
        let peer = peer.and_then(|p| {
            let ip = self.ip("vrrp.sync.peer", p)?;
            if let IpAddr::V6(v6) = ip
                && v6.segments()[0] & 0xffc0 == 0xfe80
            {
                self.error(
                    p.span().start,
                    "vrrp.sync.peer",
                    format!("{ip} is link-local, which needs an interface: use a global address"),
                );
                return None;
            }
            Some(ip)
        });
        let key = self.sync_key(
            header,
            "vrrp.sync",
            "the same on both directors",
            raw.key.as_ref(),
        );
        let mut sync = SyncConfig {
            peer: peer?,
            port: DEFAULT_SYNC_PORT,
            listen: None,
            key: key?,
            interval: DEFAULT_SYNC_INTERVAL,
            wait_before_preempt: DEFAULT_WAIT_BEFORE_PREEMPT,
        };
        if let Some(port) = &raw.port
            && let Some(port) = self.port("vrrp.sync.port", port)
        {
            sync.port = port;
        }
        if let Some(listen) = &raw.listen {
            sync.listen = self.ip("vrrp.sync.listen", listen);
            if let Some(ip) = sync.listen
                && ip.is_ipv6() != sync.peer.is_ipv6()
            {
                self.error(
                    listen.span().start,
                    "vrrp.sync.listen",
                    format!(
                        "{ip} is not of the family of vrrp.sync.peer ({})",
                        sync.peer
                    ),
                );
            }
        }
        if let Some(d) = self.duration("vrrp.sync.interval", raw.interval.as_ref()) {
            sync.interval = d;
        }
        if let Some(text) = &raw.wait_before_preempt
            && let Some(d) = self.duration_or_zero("vrrp.sync.wait_before_preempt", text)
        {
            sync.wait_before_preempt = d;
        }
        Some(sync)
    }
}
