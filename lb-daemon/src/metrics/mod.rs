//! Prometheus metrics for `GET /metrics`.
//!
//! Two kinds of metrics make up one exposition:
//! - read from the maps at scrape time ([`Snapshot`]): traffic counters of
//!   services, reals and the XDP verdicts, reals' weights and states, the
//!   connection table's fill. The maps hold absolute values, so these are
//!   built afresh for each scrape;
//! - accumulated between scrapes in a long-lived registry: health-check
//!   probe durations, failures and transitions, config reloads, the build.
//!
//! The two never hold the same name, so their families are merged by
//! concatenation. Rates (new connections per second and the like)
//! are left to `rate()` in Prometheus.

mod live;
mod scrape;
mod share;
mod snapshot;
#[cfg(test)]
mod tests;

use std::{collections::HashSet, time::Duration};

use prometheus::TextEncoder;

use crate::{balancer::model::RealKey, vrrp::State};

pub use live::HEALTH_CHECK_BUCKETS;
pub use share::ShareMetrics;
pub use snapshot::{REAL_STATES, RealSample, ServiceSample, Snapshot, XdpSample, state_label};

/// The Content-Type of [`Metrics::render`]'s output (text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Long-lived metrics that accumulate between scrapes, plus the renderer.
pub struct Metrics {
    live: live::Live,
}

impl Metrics {
    /// The long-lived metrics, with `lb_build_info{version}` set to 1 and
    /// `lb_config_reloads_total` at 0 for both results.
    #[must_use]
    pub fn new(version: &str) -> Self {
        Self {
            live: live::Live::new(version),
        }
    }

    /// One health-check probe: its duration always, and on failure one more
    /// `lb_health_check_failures_total{reason}`.
    pub fn observe_probe(
        &self,
        service: &str,
        real: &str,
        duration: Duration,
        failure_reason: Option<&str>,
    ) {
        self.live
            .observe_probe(service, real, duration, failure_reason);
    }

    /// A health transition of a real to state `to` (`up` or `down`).
    pub fn observe_transition(&self, service: &str, real: &str, to: &str) {
        self.live.observe_transition(service, real, to);
    }

    /// A config load: counts `lb_config_reloads_total{result}` and, on
    /// success, sets `lb_config_last_reload_success_timestamp_seconds` to
    /// `unix_time`. Called once at start too, so the gauge always means "the
    /// running config was loaded at" (and the start counts as one success).
    pub fn observe_reload(&self, success: bool, unix_time: f64) {
        self.live.observe_reload(success, unix_time);
    }

    /// The VRRP state of virtual router `vrid`; `transition` also counts
    /// one change to it (labelled with [`State::as_str`]).
    pub fn set_vrrp_state(&self, vrid: u8, state: State, transition: bool) {
        let value = match state {
            State::Master => 2,
            State::Backup => 1,
            State::Initialize | State::Fault => 0,
        };
        self.live
            .set_vrrp_state(vrid, value, transition.then_some(state.as_str()));
    }

    /// `lb_vip_announced{vip}`: `Some(announced)`, or `None` for a VIP
    /// that no longer has a service (its series goes).
    pub fn set_vip_announced(&self, vip: std::net::IpAddr, announced: Option<bool>) {
        self.live.set_vip_announced(&vip.to_string(), announced);
    }

    /// Connection-table entries synchronised: `direction` is `sent`,
    /// `received` or `applied`.
    pub fn count_sync(&self, direction: &str, flows: u64) {
        self.live.count_sync(direction, flows);
    }

    /// Flow sharing's counters (`[ecmp.sync]`).
    #[must_use]
    pub fn share(&self) -> &ShareMetrics {
        &self.live.share
    }

    /// A sync datagram or flow not applied, with a short reason label.
    pub fn count_sync_rejected(&self, reason: &str) {
        self.live.count_sync_rejected(reason);
    }

    /// Forgets the health series (probe durations, failures, transitions) of
    /// every (service, real) pair not in `keep`, so that removed reals'
    /// series vanish.
    pub fn retain_reals(&self, keep: &HashSet<RealKey>) {
        // Compared as label values, which are the keys' text.
        let keep: HashSet<(String, String)> = keep
            .iter()
            .map(|k| (k.service.to_string(), k.real.to_string()))
            .collect();
        self.live.retain_reals(&keep);
    }

    /// The whole exposition for one scrape.
    #[must_use]
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut families = scrape::families(snapshot);
        families.extend(self.live.registry.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        debug_assert!(
            families.windows(2).all(|w| w[0].name() != w[1].name()),
            "a metric name is in both registries"
        );
        // About 13 series per real, plus its health-check histogram.
        let mut text = String::with_capacity(4096 + 3000 * snapshot.reals.len());
        // Encoding fails only for an empty family, and gather() drops those.
        if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut text) {
            tracing::warn!("encoding metrics: {e}");
        }
        text
    }
}
