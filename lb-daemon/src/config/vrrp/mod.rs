//! `[vrrp]`: director failover (its `[vrrp.sync]` is in `sync`). Without a
//! `[vrrp]` table lbd holds the VIPs itself, as a single director. Any
//! change needs a restart.

mod sync;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;
use toml::de::DeTable;

use super::dataplane::DataplaneConfig;
use super::errors::Checker;
use super::service::ServiceConfig;
use super::values::{Bool, Int, Text, Value};
pub(super) use sync::DURATION_KEYS as SYNC_DURATION_KEYS;
pub use sync::{
    DEFAULT_SYNC_INTERVAL, DEFAULT_SYNC_PORT, DEFAULT_WAIT_BEFORE_PREEMPT, MIN_SYNC_KEY_LEN,
    SyncConfig,
};

/// `vrrp.advert_interval` when not given: 100 ms (keepalived's default is
/// 1 s, which makes failover take about 3.6 s).
pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_millis(100);
/// `vrrp.priority` when not given (keepalived's default).
pub const DEFAULT_PRIORITY: u8 = 100;
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

/// The address count of an advertisement is one byte.
const MAX_ADVERTISED_VIPS: usize = 255;

/// VRRP v3 carries the interval in centiseconds, in 12 bits.
const MAX_ADVERT_INTERVAL: Duration = Duration::from_millis(40_950);

/// The keys of `[vrrp]` whose value is a duration.
pub(super) const DURATION_KEYS: &[&str] = &["advert_interval", "preempt_delay"];

/// The dotted names of what differs between `old` and `new` and only takes
/// effect after a restart: the whole table, as the VRRP thread and its
/// sockets are set up once, at startup.
pub(super) fn restart_required(
    old: Option<&VrrpConfig>,
    new: Option<&VrrpConfig>,
) -> Vec<&'static str> {
    if old == new { Vec::new() } else { vec!["vrrp"] }
}

/// `[vrrp]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [vrrp] table")]
struct RawVrrp {
    vrid: Option<Int>,
    priority: Option<Int>,
    interface: Option<Text>,
    family: Option<Text>,
    advert_interval: Option<Text>,
    preempt: Option<Bool>,
    preempt_delay: Option<Text>,
    unicast_peers: Option<Spanned<Vec<Text>>>,
    source_address: Option<Text>,
    /// Read on its own by `sync`.
    #[allow(dead_code)]
    sync: Option<IgnoredAny>,
}

impl Checker<'_> {
    pub(super) fn vrrp(&mut self, value: &Value<'_>) -> Option<VrrpConfig> {
        let raw = self.section::<RawVrrp>("vrrp", value)?;
        let header = value.span().start;
        let vrid = self.required(
            header,
            "vrrp",
            "vrid",
            "the virtual router id, 1..=255",
            raw.vrid.as_ref(),
        );
        let vrid = vrid.and_then(|v| self.int("vrrp.vrid", "vrid", v, 1..=255))?;
        let mut vrrp = VrrpConfig::new(vrid as u8);
        if let Some(p) = &raw.priority
            && let Some(p) = self.int("vrrp.priority", "priority", p, 1..=254)
        {
            vrrp.priority = p as u8;
        }
        if let Some(name) = &raw.interface {
            vrrp.interface = Some(name.get_ref().clone());
        }
        if let Some(family) = &raw.family {
            match family.get_ref().as_str() {
                "ipv4" => vrrp.family = VrrpFamily::Ipv4,
                "ipv6" => vrrp.family = VrrpFamily::Ipv6,
                other => self.error(
                    family.span().start,
                    "vrrp.family",
                    format!("unknown family {other:?} (expected \"ipv4\" or \"ipv6\")"),
                ),
            }
        }
        if let Some(text) = &raw.advert_interval
            && let Some(d) = self.duration("vrrp.advert_interval", Some(text))
        {
            if d.as_micros() % 10_000 != 0 || d > MAX_ADVERT_INTERVAL {
                self.error(
                    text.span().start,
                    "vrrp.advert_interval",
                    format!(
                        "{:?}: VRRP v3 counts the interval in centiseconds: use a multiple \
                         of 10ms between 10ms and 40.95s",
                        text.get_ref()
                    ),
                );
            } else {
                vrrp.advert_interval = d;
            }
        }
        if let Some(b) = &raw.preempt {
            vrrp.preempt = *b.get_ref();
        }
        if let Some(text) = &raw.preempt_delay
            && let Some(d) = self.duration_or_zero("vrrp.preempt_delay", text)
        {
            vrrp.preempt_delay = d;
        }
        if let Some(peers) = &raw.unicast_peers {
            for (i, peer) in peers.get_ref().iter().enumerate() {
                let field = format!("vrrp.unicast_peers[{i}]");
                if let Some(ip) = self.vrrp_address(&field, peer, vrrp.family) {
                    if vrrp.unicast_peers.contains(&ip) {
                        self.error(peer.span().start, field, format!("{ip} is listed twice"));
                    } else {
                        vrrp.unicast_peers.push(ip);
                    }
                }
            }
        }
        if let Some(text) = &raw.source_address {
            vrrp.source_address = self.vrrp_address("vrrp.source_address", text, vrrp.family);
        }
        let sync = value.get_ref().as_table().and_then(|t| t.get("sync"));
        if let Some(sync) = sync {
            vrrp.sync = self.sync(sync);
        }
        Some(vrrp)
    }

    /// The interface must be one the program runs on: the VIPs go there,
    /// and only there does XDP see the clients' packets.
    pub(super) fn vrrp_interface(
        &mut self,
        vrrp: &VrrpConfig,
        dataplane: &DataplaneConfig,
        root: &DeTable<'_>,
    ) {
        let Some(name) = &vrrp.interface else {
            return;
        };
        if dataplane.interfaces.is_empty() || dataplane.interfaces.contains(name) {
            return;
        }
        let offset = root
            .get("vrrp")
            .and_then(|v| v.get_ref().as_table())
            .and_then(|t| t.get("interface"))
            .map_or(0, |v| v.span().start);
        self.error(
            offset,
            "vrrp.interface",
            format!(
                "{name:?} is not one of dataplane.interfaces ({}): the VIPs must sit where \
                 the XDP program runs",
                dataplane.interfaces.join(", ")
            ),
        );
    }

    /// An advertisement lists at most 255 addresses (keepalived compares
    /// the list with its own, so none can be left out).
    pub(super) fn vrrp_vip_count(
        &mut self,
        vrrp: &VrrpConfig,
        services: &[ServiceConfig],
        root: &DeTable<'_>,
    ) {
        let vips: BTreeSet<IpAddr> = services
            .iter()
            .map(|s| s.addr.vip)
            .filter(|ip| vrrp.family.contains(*ip))
            .collect();
        if vips.len() <= MAX_ADVERTISED_VIPS {
            return;
        }
        let offset = root.get("vrrp").map_or(0, |v| v.span().start);
        self.error(
            offset,
            "vrrp",
            format!(
                "{} {} VIPs: a VRRP advertisement lists at most {MAX_ADVERTISED_VIPS}",
                vips.len(),
                vrrp.family.name()
            ),
        );
    }

    fn vrrp_address(&mut self, field: &str, text: &Text, family: VrrpFamily) -> Option<IpAddr> {
        let ip = self.ip(field, text)?;
        if family.contains(ip) {
            Some(ip)
        } else {
            self.error(
                text.span().start,
                field,
                format!(
                    "{ip} is not an {} address (vrrp.family = \"{}\")",
                    if family == VrrpFamily::Ipv6 {
                        "IPv6"
                    } else {
                        "IPv4"
                    },
                    family.name()
                ),
            );
            None
        }
    }
}
