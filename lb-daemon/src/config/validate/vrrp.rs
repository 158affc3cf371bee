//! `[vrrp]` and `[vrrp.sync]`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use toml::de::DeTable;

use super::super::raw::{RawSync, RawVrrp, Text};
use super::super::types::{DataplaneConfig, ServiceConfig};
use super::super::vrrp::{
    DEFAULT_SYNC_INTERVAL, DEFAULT_SYNC_PORT, DEFAULT_WAIT_BEFORE_PREEMPT, MIN_SYNC_KEY_LEN,
    SyncConfig, VrrpConfig, VrrpFamily,
};
use super::{Checker, Value};

/// The address count of an advertisement is one byte.
const MAX_ADVERTISED_VIPS: usize = 255;

/// VRRP v3 carries the interval in centiseconds, in 12 bits.
const MAX_ADVERT_INTERVAL: Duration = Duration::from_millis(40_950);

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

    fn sync(&mut self, value: &Value<'_>) -> Option<SyncConfig> {
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
        let key = self.required(
            header,
            "vrrp.sync",
            "key",
            "a shared secret of at least 16 bytes, the same on both directors",
            raw.key.as_ref(),
        );
        let key = key.and_then(|k| {
            if k.get_ref().len() < MIN_SYNC_KEY_LEN {
                self.error(
                    k.span().start,
                    "vrrp.sync.key",
                    format!(
                        "the key is {} bytes long; use at least {MIN_SYNC_KEY_LEN} (e.g. the \
                         output of `openssl rand -hex 16`)",
                        k.get_ref().len()
                    ),
                );
                None
            } else {
                Some(k.get_ref().clone())
            }
        });
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

    /// A duration where zero is allowed ("no delay").
    fn duration_or_zero(&mut self, field: &str, text: &Text) -> Option<Duration> {
        match super::super::duration::parse_duration(text.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    text.span().start,
                    field,
                    format!("{:?} is not a duration: {e}", text.get_ref()),
                );
                None
            }
        }
    }
}
