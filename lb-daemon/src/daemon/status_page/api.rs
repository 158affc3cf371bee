//! `GET /api/status`: what the status page polls. The same `status` as
//! `lbctl status --json`, the director's failover state, the current rates,
//! the history (only the samples after `?since=` when given: a refresh
//! carries one or two samples, not 15 minutes) and the recent transitions.

use std::collections::VecDeque;

use serde::Serialize;

use super::history::{History, INTERVAL, SAMPLES, Table, finite};
use crate::admin::{EcmpStatus, Status, Transition, VrrpStatus};

/// Health transitions kept for the page (of any real, newest last).
pub const TRANSITIONS: usize = 50;

/// The whole answer.
#[derive(Debug, Serialize)]
pub struct ApiStatus<'a> {
    pub version: &'static str,
    /// Unix time the answer was built.
    pub now: f64,
    /// `lbctl status --json`.
    pub status: &'a Status,
    pub failover: Failover<'a>,
    pub rates: Rates,
    pub history: HistoryView,
    pub transitions: Transitions<'a>,
}

/// The director's failover role.
#[derive(Debug, Serialize)]
pub struct Failover<'a> {
    /// `standalone` (no `[vrrp]`), or the VRRP state: `master`, `backup`,
    /// `fault`, `initialize`.
    pub state: &'a str,
    /// `lbctl vrrp --json`, with `[vrrp]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<&'a VrrpStatus>,
    /// `lbctl director --json`, with `[ecmp]` (the state is then `ecmp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecmp: Option<&'a EcmpStatus>,
}

/// New connections and bytes per second over the last sample interval
/// (`null` until two samples were taken).
#[derive(Debug, Serialize)]
pub struct Rates {
    pub reals: Vec<Rate>,
    pub services: Vec<Rate>,
}

#[derive(Debug, Serialize)]
pub struct Rate {
    pub service: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub real: String,
    pub connections_per_second: Option<f32>,
    pub bytes_per_second: Option<f32>,
}

/// The samples asked for, oldest first; each series' values line up with
/// `times` (`null`: no value, e.g. before the real was added). Without
/// samples (a refresh between two), no series either: most refreshes carry
/// only the status and the rates.
#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub interval_seconds: u64,
    /// How many samples the ring keeps (15 minutes).
    pub capacity: usize,
    /// What the ring holds now, in bytes.
    pub memory_bytes: usize,
    pub times: Vec<f64>,
    /// New connections per second of each real.
    pub reals: Vec<SeriesView>,
    /// Packets per second of each data-path verdict.
    pub verdicts: Vec<SeriesView>,
}

#[derive(Debug, Serialize)]
pub struct SeriesView {
    /// The service, or the verdict's action (`tx`, `pass`, `drop`).
    #[serde(rename = "key")]
    pub first: String,
    /// The real, or the verdict's reason.
    #[serde(rename = "name")]
    pub second: String,
    pub values: Vec<Option<f32>>,
}

/// A real's health changed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthTransition {
    /// Unix time.
    pub at: f64,
    pub service: String,
    pub real: String,
    /// `up` or `down`.
    pub to: String,
    pub reason: String,
}

/// Recent transitions, newest last.
#[derive(Debug, Serialize)]
pub struct Transitions<'a> {
    pub health: &'a VecDeque<HealthTransition>,
    /// The VRRP router's (empty when standalone).
    pub failover: &'a [Transition],
}

/// What the answer is built from.
pub struct Inputs<'a> {
    pub now: f64,
    pub status: &'a Status,
    pub vrrp: &'a VrrpStatus,
    pub ecmp: &'a EcmpStatus,
    pub history: &'a History,
    pub health_transitions: &'a VecDeque<HealthTransition>,
    /// Only the history samples taken after this Unix time.
    pub since: Option<f64>,
}

/// The JSON text of `GET /api/status`.
#[must_use]
pub fn build(inputs: &Inputs<'_>) -> String {
    let Inputs {
        now,
        status,
        vrrp,
        ecmp,
        history,
        health_transitions,
        since,
    } = *inputs;
    let samples = history.samples_after(since);
    let series = |table: &Table| -> Vec<SeriesView> {
        let listed = if samples.is_empty() {
            0
        } else {
            table.series.len()
        };
        (0..listed)
            .map(|i| {
                let (first, second) = table.series[i].key.clone();
                SeriesView {
                    first,
                    second,
                    values: table.values(i, &samples),
                }
            })
            .collect()
    };
    let rates = |table: &Table| -> Vec<Rate> {
        table
            .series
            .iter()
            .map(|s| Rate {
                service: s.key.0.clone(),
                real: s.key.1.clone(),
                connections_per_second: finite(s.rates[0]),
                bytes_per_second: finite(s.rates[1]),
            })
            .collect()
    };
    let answer = ApiStatus {
        version: env!("CARGO_PKG_VERSION"),
        now,
        status,
        failover: Failover {
            state: if vrrp.enabled {
                &vrrp.state
            } else if ecmp.enabled {
                "ecmp"
            } else {
                "standalone"
            },
            vrrp: vrrp.enabled.then_some(vrrp),
            ecmp: ecmp.enabled.then_some(ecmp),
        },
        rates: Rates {
            reals: rates(&history.reals),
            services: rates(&history.services),
        },
        history: HistoryView {
            interval_seconds: INTERVAL.as_secs(),
            capacity: SAMPLES,
            memory_bytes: history.memory_bytes(),
            times: samples.iter().map(|(_, t)| *t).collect(),
            reals: series(&history.reals),
            verdicts: series(&history.verdicts),
        },
        transitions: Transitions {
            health: health_transitions,
            failover: &vrrp.history,
        },
    };
    serde_json::to_string(&answer).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::*;
    use crate::{
        admin::{RealStatus, ServiceStatus},
        metrics::{RealSample, Snapshot, XdpSample},
    };

    const SERVICE: &str = "10.0.0.1:80/tcp";

    fn status() -> Status {
        Status {
            services: vec![ServiceStatus {
                service: SERVICE.into(),
                scheduler: "wlc".into(),
                reals: vec![
                    RealStatus {
                        real: "10.0.0.2:80".into(),
                        weight: 100,
                        effective_weight: 100,
                        state: "up".into(),
                        ..RealStatus::default()
                    },
                    RealStatus {
                        real: "10.0.0.3:80".into(),
                        weight: 100,
                        state: "down".into(),
                        health_reason: Some("connection refused".into()),
                        ..RealStatus::default()
                    },
                ],
                ..ServiceStatus::default()
            }],
            conntrack_capacity: 65536,
            ..Status::default()
        }
    }

    fn snapshot(connections: u64, packets: u64) -> Snapshot {
        Snapshot {
            reals: vec![RealSample {
                service: SERVICE.into(),
                real: "10.0.0.2:80".into(),
                connections,
                bytes: connections * 1000,
                ..RealSample::default()
            }],
            xdp: vec![XdpSample {
                action: "tx".into(),
                reason: "forwarded".into(),
                packets,
            }],
            ..Snapshot::default()
        }
    }

    fn answer(vrrp: &VrrpStatus, history: &History, since: Option<f64>) -> Value {
        let transitions = VecDeque::from([HealthTransition {
            at: 1005.5,
            service: SERVICE.into(),
            real: "10.0.0.3:80".into(),
            to: "down".into(),
            reason: "connection refused".into(),
        }]);
        let text = build(&Inputs {
            now: 1010.0,
            status: &status(),
            vrrp,
            ecmp: &EcmpStatus::default(),
            history,
            health_transitions: &transitions,
            since,
        });
        serde_json::from_str(&text).expect("valid JSON")
    }

    fn two_samples() -> History {
        let mut history = History::default();
        let t0 = Instant::now();
        history.record(1000.0, t0, &snapshot(0, 0));
        history.record(1005.0, t0 + Duration::from_secs(5), &snapshot(50, 1000));
        history
    }

    #[test]
    fn carries_lbctl_status_rates_history_and_transitions() {
        let history = two_samples();
        let v = answer(&VrrpStatus::default(), &history, None);
        // `status` is lbctl status --json, field for field.
        assert_eq!(v["status"], serde_json::to_value(status()).unwrap());
        assert_eq!(v["failover"], json!({"state": "standalone"}));
        assert_eq!(
            v["rates"]["reals"],
            json!([{"service": SERVICE, "real": "10.0.0.2:80",
                    "connections_per_second": 10.0, "bytes_per_second": 10000.0}])
        );
        assert_eq!(v["history"]["interval_seconds"], 5);
        assert_eq!(v["history"]["capacity"], 180);
        assert_eq!(v["history"]["times"], json!([1000.0, 1005.0]));
        assert_eq!(
            v["history"]["reals"],
            json!([{"key": SERVICE, "name": "10.0.0.2:80", "values": [null, 10.0]}])
        );
        assert_eq!(
            v["history"]["verdicts"],
            json!([{"key": "tx", "name": "forwarded", "values": [null, 200.0]}])
        );
        assert_eq!(
            v["transitions"]["health"][0]["reason"],
            "connection refused"
        );
        assert_eq!(v["transitions"]["failover"], json!([]));
        assert!(v["history"]["memory_bytes"].as_u64().unwrap() > 2 * 180 * 4);
    }

    #[test]
    fn since_keeps_only_newer_samples_and_their_series() {
        let history = two_samples();
        let v = answer(&VrrpStatus::default(), &history, Some(1000.0));
        assert_eq!(v["history"]["times"], json!([1005.0]));
        assert_eq!(v["history"]["reals"][0]["values"], json!([10.0]));
        let v = answer(&VrrpStatus::default(), &history, Some(1005.0));
        assert_eq!(v["history"]["times"], json!([]));
        assert_eq!(v["history"]["reals"], json!([]));
        assert_eq!(v["history"]["verdicts"], json!([]));
        // The status and the rates are always whole.
        assert_eq!(v["rates"]["reals"][0]["connections_per_second"], 10.0);
        assert_eq!(v["status"]["services"][0]["reals"][1]["state"], "down");
    }

    #[test]
    fn vrrp_state_and_its_transitions() {
        let vrrp = VrrpStatus {
            enabled: true,
            vrid: 51,
            state: "master".into(),
            history: vec![Transition {
                at: 1001.0,
                to: "master".into(),
                reason: "no advertisement from a master for 3.5 intervals".into(),
            }],
            ..VrrpStatus::default()
        };
        let v = answer(&vrrp, &History::default(), None);
        assert_eq!(v["failover"]["state"], "master");
        assert_eq!(v["failover"]["vrrp"]["vrid"], 51);
        assert_eq!(v["transitions"]["failover"][0]["to"], "master");
        // No sample yet: empty history, no rates.
        assert_eq!(v["history"]["times"], json!([]));
        assert_eq!(v["rates"]["reals"], json!([]));
    }

    #[test]
    fn ecmp_announcements_are_the_failover_state() {
        let ecmp = EcmpStatus {
            enabled: true,
            table: 4242,
            vips: vec![crate::admin::VipAnnouncement {
                vip: "10.0.0.100".into(),
                announced: false,
                state: "withdrawn: director drained (lbctl director undrain)".into(),
                for_seconds: 1.0,
            }],
            drained: true,
            ..EcmpStatus::default()
        };
        let text = build(&Inputs {
            now: 1010.0,
            status: &status(),
            vrrp: &VrrpStatus::default(),
            ecmp: &ecmp,
            history: &History::default(),
            health_transitions: &VecDeque::new(),
            since: None,
        });
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["failover"]["state"], "ecmp");
        assert_eq!(v["failover"]["ecmp"]["vips"][0]["announced"], false);
        assert!(v["failover"].get("vrrp").is_none());
    }
}
