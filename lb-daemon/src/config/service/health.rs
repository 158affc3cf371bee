//! A service's health settings besides its checks: `on_down`,
//! `min_primaries`, `min_healthy`, `slow_start`, `drain_timeout` and
//! `fallback`/`fallback_mac`; it also gathers `[service.damping]` and the
//! service's `[service.check]`.

use std::net::IpAddr;
use std::time::Duration;

use super::super::errors::Checker;
use super::super::mac::parse_mac;
use super::super::values::Value;
use super::check::CheckTable;
use super::read::RawService;
use super::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_MIN_HEALTHY, DEFAULT_MIN_PRIMARIES, DampingConfig,
    FallbackConfig, MIN_HEALTHY_RANGE, MIN_PRIMARIES_RANGE, OnDown, RealConfig,
};
use crate::health::spec::CheckSpec;

/// The service-level settings read by [`Checker::health`].
pub(super) struct Health {
    pub on_down: OnDown,
    pub min_primaries: u32,
    pub min_healthy: u32,
    pub slow_start: Option<Duration>,
    pub drain_timeout: Duration,
    pub damping: Option<DampingConfig>,
    /// The service's check table and the check it makes.
    pub check_table: CheckTable,
    pub check: CheckSpec,
}

impl Checker<'_> {
    /// Everything about health checking of the service at `path` except the
    /// fallback (which needs the reals) and the reals' own checks.
    pub(super) fn health(&mut self, path: &str, raw: &RawService, item: &Value<'_>) -> Health {
        let on_down = raw
            .on_down
            .as_ref()
            .and_then(|text| match text.get_ref().as_str() {
                "reroute" => Some(OnDown::Reroute),
                "keep" => Some(OnDown::Keep),
                other => {
                    self.error(
                        text.span().start,
                        format!("{path}.on_down"),
                        format!("unknown on_down {other:?} (expected \"reroute\" or \"keep\")"),
                    );
                    None
                }
            });
        let min_primaries = raw.min_primaries.as_ref().and_then(|v| {
            self.int(
                &format!("{path}.min_primaries"),
                "min_primaries",
                v,
                MIN_PRIMARIES_RANGE,
            )
        });
        let min_healthy = raw.min_healthy.as_ref().and_then(|v| {
            self.int(
                &format!("{path}.min_healthy"),
                "min_healthy",
                v,
                MIN_HEALTHY_RANGE,
            )
        });
        let slow_start = self.duration(&format!("{path}.slow_start"), raw.slow_start.as_ref());
        let drain_timeout =
            self.duration(&format!("{path}.drain_timeout"), raw.drain_timeout.as_ref());
        let table = item.get_ref().as_table();
        let damping = table
            .and_then(|t| t.get("damping"))
            .and_then(|value| self.damping(&format!("{path}.damping"), value));
        let check_table = self.check_table(
            &format!("{path}.check"),
            table.and_then(|t| t.get("check")),
            item.span().start,
        );
        let check = self.check_spec(&check_table, None).unwrap_or_default();
        Health {
            on_down: on_down.unwrap_or_default(),
            min_primaries: min_primaries.unwrap_or(DEFAULT_MIN_PRIMARIES),
            min_healthy: min_healthy.unwrap_or(DEFAULT_MIN_HEALTHY),
            slow_start,
            drain_timeout: drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
            damping,
            check_table,
            check,
        }
    }

    /// `fallback` and `fallback_mac`: an address of the VIP's family that
    /// is neither the VIP nor one of the service's reals.
    pub(super) fn fallback(
        &mut self,
        path: &str,
        raw: &RawService,
        vip: Option<IpAddr>,
        reals: &[RealConfig],
    ) -> Option<FallbackConfig> {
        let Some(text) = &raw.fallback else {
            if let Some(text) = &raw.fallback_mac {
                self.error(
                    text.span().start,
                    format!("{path}.fallback_mac"),
                    "fallback_mac without fallback (it is the MAC address of the fallback \
                     server)",
                );
            }
            return None;
        };
        let mac = raw
            .fallback_mac
            .as_ref()
            .and_then(|text| match parse_mac(text.get_ref()) {
                Ok(mac) => Some(mac),
                Err(e) => {
                    self.error(text.span().start, format!("{path}.fallback_mac"), e);
                    None
                }
            });
        let field = format!("{path}.fallback");
        let offset = text.span().start;
        let addr = self.ip(&field, text)?;
        if let Some(vip) = vip {
            if vip.is_ipv4() != addr.is_ipv4() {
                let (vip_family, family) = if vip.is_ipv4() {
                    ("IPv4", "IPv6")
                } else {
                    ("IPv6", "IPv4")
                };
                self.error(
                    offset,
                    field,
                    format!(
                        "{vip_family} VIP {vip} cannot have {family} fallback {addr} (it is \
                         reached by direct routing like a real, so it must be of the VIP's \
                         address family)"
                    ),
                );
                return None;
            }
            if vip == addr {
                self.error(
                    offset,
                    field,
                    format!("the fallback {addr} is the service's own VIP"),
                );
                return None;
            }
        }
        if reals.iter().any(|r| r.addr == addr) {
            self.error(
                offset,
                field,
                format!(
                    "the fallback {addr} is also a real of this service (the fallback takes \
                     traffic only when no real is healthy)"
                ),
            );
            return None;
        }
        Some(FallbackConfig { addr, mac })
    }
}
