//! Metrics that accumulate between scrapes: health-check probes and
//! transitions, config reloads and the build. They live in their own
//! registry, which never holds a name that the per-scrape one does.

use std::{collections::HashSet, time::Duration};

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, core::Collector,
};

/// Bucket bounds of `lb_health_check_duration_seconds`, in seconds: checks
/// on a LAN answer in well under a millisecond to a few milliseconds, and a
/// check slower than a second is as good as failed.
pub const HEALTH_CHECK_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The long-lived registry and handles into it.
pub(super) struct Live {
    pub(super) registry: Registry,
    probe_duration: HistogramVec,
    probe_failures: IntCounterVec,
    transitions: IntCounterVec,
    reloads: IntCounterVec,
    last_reload: Gauge,
    vrrp_state: IntGaugeVec,
    vrrp_transitions: IntCounterVec,
    sync_flows: IntCounterVec,
    sync_rejected: IntCounterVec,
    pub(super) share: super::share::ShareMetrics,
    vip_announced: IntGaugeVec,
}

impl Live {
    pub(super) fn new(version: &str) -> Self {
        let registry = Registry::new();
        let probe_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "lb_health_check_duration_seconds",
                    "Time one health-check probe of a real took, successful or not.",
                )
                .buckets(HEALTH_CHECK_BUCKETS.to_vec()),
                &["service", "real"],
            ),
        );
        let probe_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "lb_health_check_failures_total",
                    "Health-check probes of a real that failed, by reason.",
                ),
                &["service", "real", "reason"],
            ),
        );
        let transitions = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "lb_health_transitions_total",
                    "Changes of a real's health state, by the state it changed to.",
                ),
                &["service", "real", "to"],
            ),
        );
        let reloads = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "lb_config_reloads_total",
                    "Config reloads (SIGHUP or lbctl reload), by result.",
                ),
                &["result"],
            ),
        );
        // Both series exist from the start, so `increase()` sees the first
        // reload and alerts on failures need no `or vector(0)`.
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let last_reload = register(
            &registry,
            Gauge::with_opts(Opts::new(
                "lb_config_last_reload_success_timestamp_seconds",
                "Unix time at which the running config was loaded (at start or by the last successful reload).",
            )),
        );
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "lb_build_info",
                    "Always 1; the version label says which lbd is running.",
                ),
                &["version"],
            ),
        );
        build_info.with_label_values(&[version]).set(1);
        let (vrrp_state, vrrp_transitions, sync_flows, sync_rejected) = failover_metrics(&registry);
        let share = super::share::ShareMetrics::new(&registry);
        let vip_announced = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "lb_vip_announced",
                    "With [ecmp]: 1 while this director announces the VIP to the router (its route is in lbd's table), 0 while it is withdrawn.",
                ),
                &["vip"],
            ),
        );
        Self {
            registry,
            probe_duration,
            probe_failures,
            transitions,
            reloads,
            last_reload,
            vrrp_state,
            vrrp_transitions,
            sync_flows,
            sync_rejected,
            share,
            vip_announced,
        }
    }

    pub(super) fn set_vip_announced(&self, vip: &str, announced: Option<bool>) {
        match announced {
            Some(on) => self
                .vip_announced
                .with_label_values(&[vip])
                .set(i64::from(on)),
            None => {
                let _ = self.vip_announced.remove_label_values(&[vip]);
            }
        }
    }

    pub(super) fn set_vrrp_state(&self, vrid: u8, value: i64, transition_to: Option<&str>) {
        let vrid = vrid.to_string();
        self.vrrp_state.with_label_values(&[&vrid]).set(value);
        if let Some(to) = transition_to {
            self.vrrp_transitions.with_label_values(&[&vrid, to]).inc();
        }
    }

    pub(super) fn count_sync(&self, direction: &str, flows: u64) {
        self.sync_flows
            .with_label_values(&[direction])
            .inc_by(flows);
    }

    pub(super) fn count_sync_rejected(&self, reason: &str) {
        self.sync_rejected.with_label_values(&[reason]).inc();
    }

    pub(super) fn observe_probe(
        &self,
        service: &str,
        real: &str,
        duration: Duration,
        failure_reason: Option<&str>,
    ) {
        self.probe_duration
            .with_label_values(&[service, real])
            .observe(duration.as_secs_f64());
        if let Some(reason) = failure_reason {
            self.probe_failures
                .with_label_values(&[service, real, reason])
                .inc();
        }
    }

    pub(super) fn observe_transition(&self, service: &str, real: &str, to: &str) {
        self.transitions
            .with_label_values(&[service, real, to])
            .inc();
    }

    pub(super) fn observe_reload(&self, success: bool, unix_time: f64) {
        let result = if success { "success" } else { "failure" };
        self.reloads.with_label_values(&[result]).inc();
        if success {
            self.last_reload.set(unix_time);
        }
    }

    pub(super) fn retain_reals(&self, keep: &HashSet<(String, String)>) {
        for stale in stale_label_sets(&self.probe_duration, keep) {
            // The label set was just listed; a concurrent removal is harmless.
            let _ = self.probe_duration.remove(&as_map(&stale));
        }
        for stale in stale_label_sets(&self.probe_failures, keep) {
            let _ = self.probe_failures.remove(&as_map(&stale));
        }
        for stale in stale_label_sets(&self.transitions, keep) {
            let _ = self.transitions.remove(&as_map(&stale));
        }
    }
}

/// `lb_vrrp_*` and `lb_sync_*`: director failover.
fn failover_metrics(
    registry: &Registry,
) -> (IntGaugeVec, IntCounterVec, IntCounterVec, IntCounterVec) {
    let vrrp_state = register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                "lb_vrrp_state",
                "VRRP state of this director: 0 initialize (stopped or link down), 1 backup, 2 master.",
            ),
            &["vrid"],
        ),
    );
    let vrrp_transitions = register(
        registry,
        IntCounterVec::new(
            Opts::new(
                "lb_vrrp_transitions_total",
                "VRRP state changes of this director, by the state it changed to.",
            ),
            &["vrid", "to"],
        ),
    );
    let sync_flows = register(
        registry,
        IntCounterVec::new(
            Opts::new(
                "lb_sync_flows_total",
                "Connection-table entries sent to or received from the peer director (direction = sent, received, applied).",
            ),
            &["direction"],
        ),
    );
    let sync_rejected = register(
        registry,
        IntCounterVec::new(
            Opts::new(
                "lb_sync_rejected_total",
                "Sync datagrams or flows that were not applied, by reason.",
            ),
            &["reason"],
        ),
    );
    (vrrp_state, vrrp_transitions, sync_flows, sync_rejected)
}

/// The label sets (name, value) of `collector`'s series whose (service,
/// real) pair is not in `keep`.
fn stale_label_sets(
    collector: &dyn Collector,
    keep: &HashSet<(String, String)>,
) -> Vec<Vec<(String, String)>> {
    let mut stale = Vec::new();
    for family in collector.collect() {
        for metric in family.get_metric() {
            let value = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map_or_else(String::new, |l| l.value().to_owned())
            };
            if !keep.contains(&(value("service"), value("real"))) {
                stale.push(
                    metric
                        .get_label()
                        .iter()
                        .map(|l| (l.name().to_owned(), l.value().to_owned()))
                        .collect(),
                );
            }
        }
    }
    stale
}

fn as_map(labels: &[(String, String)]) -> std::collections::HashMap<&str, &str> {
    labels
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

/// Registers `collector` (whose name and labels are fixed, so this cannot
/// fail but by a programming error) and returns it.
pub(super) fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: prometheus::Result<C>,
) -> C {
    let collector = collector.expect("metric options are valid");
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique within a registry");
    collector
}
