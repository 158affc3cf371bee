//! `[vrrp]` and `[vrrp.sync]`: director failover. Without a `[vrrp]` table
//! lbd holds the VIPs itself, as a single director.

use std::net::IpAddr;
use std::time::Duration;

/// `vrrp.advert_interval` when not given: 100 ms (keepalived's default is
/// 1 s, which makes failover take about 3.6 s).
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_millis(100);
/// `vrrp.priority` when not given (keepalived's default).
pub const DEFAULT_PRIORITY: u8 = 100;
/// `vrrp.sync.port` when not given.
pub const DEFAULT_SYNC_PORT: u16 = 9141;
/// `vrrp.sync.interval` when not given.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// `vrrp.sync.wait_before_preempt` when not given.
pub const DEFAULT_WAIT_BEFORE_PREEMPT: Duration = Duration::from_secs(10);
/// The shortest `vrrp.sync.key`, in bytes.
pub const MIN_SYNC_KEY_LEN: usize = 16;

/// Which family the advertisements use (`vrrp.family`). VIPs of the other
/// family move with the router too, but are not listed in advertisements
/// (keepalived's `virtual_ipaddress_excluded`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VrrpFamily {
    #[default]
    Ipv4,
    Ipv6,
}

impl VrrpFamily {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }

    #[must_use]
    pub fn contains(self, ip: IpAddr) -> bool {
        ip.is_ipv6() == (self == Self::Ipv6)
    }
}

/// `[vrrp]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpConfig {
    /// Virtual router id, 1..=255; both directors (and any keepalived
    /// peer) use the same.
    pub vrid: u8,
    /// 1..=254; the higher priority becomes master.
    pub priority: u8,
    /// Interface the VIPs go on and advertisements use; `None` = the first
    /// of `dataplane.interfaces`.
    pub interface: Option<String>,
    pub family: VrrpFamily,
    /// A multiple of 10 ms, 10 ms..=40.95 s.
    pub advert_interval: Duration,
    pub preempt: bool,
    /// After start, no preemption of a lower-priority master until then.
    pub preempt_delay: Duration,
    /// Empty: multicast (`224.0.0.18` / `ff02::12`).
    pub unicast_peers: Vec<IpAddr>,
    /// Source of advertisements; `None` = the interface's first address of
    /// the family (its link-local one for IPv6).
    pub source_address: Option<IpAddr>,
    pub sync: Option<SyncConfig>,
}

impl VrrpConfig {
    #[must_use]
    pub fn new(vrid: u8) -> Self {
        Self {
            vrid,
            priority: DEFAULT_PRIORITY,
            interface: None,
            family: VrrpFamily::Ipv4,
            advert_interval: DEFAULT_ADVERT_INTERVAL,
            preempt: true,
            preempt_delay: Duration::ZERO,
            unicast_peers: Vec::new(),
            source_address: None,
            sync: None,
        }
    }

    /// The advertisement interval in centiseconds, as VRRP v3 carries it.
    #[must_use]
    pub fn advert_interval_cs(&self) -> u16 {
        (self.advert_interval.as_millis() / 10) as u16
    }
}

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
