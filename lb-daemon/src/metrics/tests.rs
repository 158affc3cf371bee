//! Tests of the exposition: names, types, help, label sets and values,
//! read back with a small parser of the text format.

#![allow(
    clippy::float_cmp,
    reason = "the values compared are small integers or copied unchanged, exact in f64"
)]

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    time::{Duration, Instant},
};

use super::{
    CONTENT_TYPE, HEALTH_CHECK_BUCKETS, Metrics, REAL_STATES, RealSample, ServiceSample, Snapshot,
    XdpSample, state_label,
};
use crate::{admin::RealState, balancer::model::RealKey};

const WEB: &str = "10.0.0.1:80/tcp";
const DNS: &str = "10.0.0.1:53/udp";

/// A parsed exposition.
#[derive(Debug, Default)]
struct Exposition {
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Exposition {
    /// Parses text format 0.0.4, panicking on anything malformed, on a
    /// second HELP or TYPE for a name, on a sample of no declared family and
    /// on a family whose samples are not contiguous.
    fn parse(text: &str) -> Self {
        let mut exp = Self::default();
        let mut finished: BTreeSet<String> = BTreeSet::new();
        let mut current: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let at = || format!("line {}: {line:?}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(
                    exp.help.insert(name.into(), help.into()).is_none(),
                    "second HELP, {}",
                    at()
                );
                if let Some(prev) = current.replace(name.into())
                    && prev != name
                {
                    finished.insert(prev);
                }
                assert!(!finished.contains(name), "family split, {}", at());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "type, {}",
                    at()
                );
                assert!(
                    exp.types.insert(name.into(), kind.into()).is_none(),
                    "second TYPE, {}",
                    at()
                );
                if let Some(prev) = current.replace(name.into())
                    && prev != name
                {
                    finished.insert(prev);
                }
                assert!(!finished.contains(name), "family split, {}", at());
            } else if line.starts_with('#') || line.is_empty() {
                panic!("unexpected {}", at());
            } else {
                let sample = parse_sample(line).unwrap_or_else(|| panic!("malformed {}", at()));
                let family = current
                    .as_deref()
                    .unwrap_or_else(|| panic!("no family, {}", at()));
                let kind = exp.types.get(family).map(String::as_str);
                let ok = match kind {
                    Some("histogram") => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| sample.name == format!("{family}{s}")),
                    Some(_) => sample.name == family,
                    None => false,
                };
                assert!(ok, "sample outside its family {family}, {}", at());
                exp.samples.push(sample);
            }
        }
        exp
    }

    fn samples(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the one sample of `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<_> = self
            .samples(name)
            .into_iter()
            .filter(|s| s.labels == want)
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    /// The label names of every sample of `name` (must be the same for all).
    fn label_names(&self, name: &str) -> Vec<String> {
        let sets: BTreeSet<Vec<String>> = self
            .samples(name)
            .iter()
            .map(|s| s.labels.keys().cloned().collect())
            .collect();
        assert_eq!(sets.len(), 1, "{name}: label sets {sets:?}");
        sets.into_iter().next().unwrap()
    }
}

/// `name{a="x",b="y"} value` or `name value`, with `\\`, `\"`, `\n` escapes.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let (start, _) = *chars.peek()?;
            let eq = after[start..].find('=')? + start;
            let key = after[start..eq].to_owned();
            while chars.next_if(|(i, _)| *i <= eq).is_some() {}
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        _ => return None,
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            if labels.insert(key, value).is_some() {
                return None;
            }
            match chars.next()? {
                (_, ',') => {}
                (i, '}') => {
                    rest = &after[i + 1..];
                    break;
                }
                _ => return None,
            }
        }
    }
    let value = rest.strip_prefix(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn real(service: &str, real: &str, state: &str, n: u64) -> RealSample {
    RealSample {
        service: service.into(),
        real: real.into(),
        packets: 100 * n,
        bytes: 10_000 * n,
        connections: 10 * n,
        active: n,
        inactive: 7 * n,
        syn_retransmits: 5 * n,
        weight: if state == "up" { 3 } else { 0 },
        up: !matches!(state, "down" | "unresolved" | "removed"),
        state: state.parse().unwrap(),
    }
}

/// Two services, three reals, three XDP reasons.
fn snapshot() -> Snapshot {
    Snapshot {
        services: vec![
            ServiceSample {
                service: WEB.into(),
                packets: 300,
                bytes: 30_000,
                connections: 30,
            },
            ServiceSample {
                service: DNS.into(),
                packets: 5,
                bytes: 500,
                connections: 5,
            },
        ],
        reals: vec![
            real(WEB, "10.0.0.2:80", "up", 1),
            real(WEB, "10.0.0.3:80", "down", 2),
            real(DNS, "10.0.0.4:53", "backup_active", 3),
        ],
        xdp: vec![
            XdpSample {
                action: "tx".into(),
                reason: "forwarded".into(),
                packets: 305,
            },
            XdpSample {
                action: "pass".into(),
                reason: "not_a_service".into(),
                packets: 42,
            },
            XdpSample {
                action: "drop".into(),
                reason: "no_real".into(),
                packets: 7,
            },
        ],
        conntrack_entries: 6,
        conntrack_capacity: 1 << 20,
    }
}

/// Every metric of the issue and the extras: name, type and label names.
const EXPECTED: &[(&str, &str, &[&str])] = &[
    ("lb_service_packets_total", "counter", &["service"]),
    ("lb_service_bytes_total", "counter", &["service"]),
    ("lb_service_connections_total", "counter", &["service"]),
    ("lb_services", "gauge", &[]),
    ("lb_real_packets_total", "counter", &["real", "service"]),
    ("lb_real_bytes_total", "counter", &["real", "service"]),
    ("lb_real_connections_total", "counter", &["real", "service"]),
    ("lb_real_active_connections", "gauge", &["real", "service"]),
    (
        "lb_real_inactive_connections",
        "gauge",
        &["real", "service"],
    ),
    (
        "lb_real_syn_retransmits_total",
        "counter",
        &["real", "service"],
    ),
    ("lb_real_weight", "gauge", &["real", "service"]),
    ("lb_real_up", "gauge", &["real", "service"]),
    ("lb_real_state", "gauge", &["real", "service", "state"]),
    (
        "lb_health_check_duration_seconds",
        "histogram",
        &["real", "service"],
    ),
    (
        "lb_health_check_failures_total",
        "counter",
        &["real", "reason", "service"],
    ),
    (
        "lb_health_transitions_total",
        "counter",
        &["real", "service", "to"],
    ),
    ("lb_xdp_packets_total", "counter", &["action", "reason"]),
    ("lb_conntrack_entries", "gauge", &[]),
    ("lb_conntrack_capacity", "gauge", &[]),
    ("lb_config_reloads_total", "counter", &["result"]),
    (
        "lb_config_last_reload_success_timestamp_seconds",
        "gauge",
        &[],
    ),
    ("lb_build_info", "gauge", &["version"]),
];

/// Metrics with one probe failure, one success and one transition.
fn observed() -> Metrics {
    let m = Metrics::new("1.2.3");
    m.observe_probe(WEB, "10.0.0.2:80", Duration::from_micros(700), None);
    m.observe_probe(
        WEB,
        "10.0.0.3:80",
        Duration::from_millis(30),
        Some("connection refused"),
    );
    m.observe_transition(WEB, "10.0.0.3:80", "down");
    m.observe_reload(true, 1_700_000_000.5);
    m
}

#[test]
fn every_metric_has_help_type_and_its_labels() {
    let exp = Exposition::parse(&observed().render(&snapshot()));
    for (name, kind, labels) in EXPECTED {
        assert_eq!(
            exp.types.get(*name).map(String::as_str),
            Some(*kind),
            "{name}"
        );
        let help = exp
            .help
            .get(*name)
            .unwrap_or_else(|| panic!("{name}: no HELP"));
        assert!(
            help.len() > 10 && help.ends_with('.') && help.matches(". ").count() == 0,
            "{name}: one sentence: {help:?}"
        );
        let sample = if *kind == "histogram" {
            format!("{name}_count")
        } else {
            (*name).to_owned()
        };
        assert_eq!(exp.label_names(&sample), *labels, "{name}");
    }
    let declared: BTreeSet<&str> = exp.types.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = EXPECTED.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(declared, expected, "no metric more or less than listed");
}

#[test]
fn counters_and_only_counters_end_in_total() {
    let exp = Exposition::parse(&observed().render(&snapshot()));
    for (name, kind) in &exp.types {
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name}: {kind}"
        );
        assert!(name.starts_with("lb_"), "{name}");
    }
}

#[test]
fn values_come_from_the_snapshot() {
    let exp = Exposition::parse(&observed().render(&snapshot()));
    let s = [("service", WEB)];
    assert_eq!(exp.value("lb_service_packets_total", &s), 300.0);
    assert_eq!(exp.value("lb_service_bytes_total", &s), 30_000.0);
    assert_eq!(exp.value("lb_service_connections_total", &s), 30.0);
    assert_eq!(
        exp.value("lb_service_packets_total", &[("service", DNS)]),
        5.0
    );
    assert_eq!(exp.value("lb_services", &[]), 2.0);

    let up = [("service", WEB), ("real", "10.0.0.2:80")];
    let down = [("service", WEB), ("real", "10.0.0.3:80")];
    let backup = [("service", DNS), ("real", "10.0.0.4:53")];
    assert_eq!(exp.value("lb_real_packets_total", &up), 100.0);
    assert_eq!(exp.value("lb_real_bytes_total", &down), 20_000.0);
    assert_eq!(exp.value("lb_real_connections_total", &backup), 30.0);
    assert_eq!(exp.value("lb_real_active_connections", &down), 2.0);
    assert_eq!(exp.value("lb_real_inactive_connections", &down), 14.0);
    assert_eq!(exp.value("lb_real_syn_retransmits_total", &down), 10.0);
    assert_eq!(exp.value("lb_real_weight", &up), 3.0);
    assert_eq!(exp.value("lb_real_weight", &down), 0.0);
    assert_eq!(exp.value("lb_real_up", &up), 1.0);
    assert_eq!(exp.value("lb_real_up", &down), 0.0);
    assert_eq!(exp.value("lb_real_up", &backup), 1.0);
    assert_eq!(exp.samples("lb_real_packets_total").len(), 3);

    assert_eq!(
        exp.value(
            "lb_xdp_packets_total",
            &[("action", "tx"), ("reason", "forwarded")]
        ),
        305.0
    );
    assert_eq!(
        exp.value(
            "lb_xdp_packets_total",
            &[("action", "drop"), ("reason", "no_real")]
        ),
        7.0
    );
    assert_eq!(exp.samples("lb_xdp_packets_total").len(), 3);
    assert_eq!(exp.value("lb_conntrack_entries", &[]), 6.0);
    assert_eq!(exp.value("lb_conntrack_capacity", &[]), f64::from(1 << 20));
    assert_eq!(exp.value("lb_build_info", &[("version", "1.2.3")]), 1.0);
    assert_eq!(
        exp.value("lb_config_last_reload_success_timestamp_seconds", &[]),
        1_700_000_000.5
    );
    assert_eq!(
        exp.value(
            "lb_health_transitions_total",
            &[("service", WEB), ("real", "10.0.0.3:80"), ("to", "down")]
        ),
        1.0
    );
}

#[test]
fn real_state_has_all_five_states_and_exactly_one_set() {
    let mut snap = snapshot();
    snap.reals.push(real(WEB, "10.0.0.5:80", "drained", 1));
    snap.reals.push(real(WEB, "10.0.0.6:80", "unresolved", 1));
    snap.reals.push(real(WEB, "10.0.0.7:80", "removed", 1));
    let exp = Exposition::parse(&Metrics::new("x").render(&snap));
    let current = |r: &str| -> Vec<String> {
        let states: BTreeMap<String, f64> = exp
            .samples("lb_real_state")
            .into_iter()
            .filter(|s| s.labels["real"] == r)
            .map(|s| (s.labels["state"].clone(), s.value))
            .collect();
        let names: BTreeSet<&str> = states.keys().map(String::as_str).collect();
        assert_eq!(names, REAL_STATES.into_iter().collect(), "{r}");
        assert!(states.values().all(|v| *v == 0.0 || *v == 1.0));
        states
            .into_iter()
            .filter(|(_, v)| *v == 1.0)
            .map(|(k, _)| k)
            .collect()
    };
    assert_eq!(current("10.0.0.2:80"), ["up"]);
    assert_eq!(current("10.0.0.3:80"), ["down"]);
    assert_eq!(current("10.0.0.4:53"), ["backup_active"]);
    assert_eq!(current("10.0.0.5:80"), ["draining"]);
    assert_eq!(current("10.0.0.6:80"), ["down"]);
    assert!(
        current("10.0.0.7:80").is_empty(),
        "removed: none of the five"
    );
    assert_eq!(exp.samples("lb_real_state").len(), 6 * 5);
}

#[test]
fn state_mapping() {
    for s in REAL_STATES {
        assert_eq!(state_label(s.parse().unwrap()), Some(s));
    }
    assert_eq!(state_label(RealState::Drained), Some("draining"));
    assert_eq!(state_label(RealState::Unresolved), Some("down"));
    assert_eq!(state_label(RealState::Removed), None);
}

#[test]
fn probes_fill_the_histogram_and_failures_by_reason() {
    let m = observed();
    m.observe_probe(WEB, "10.0.0.3:80", Duration::from_secs(2), Some("timeout"));
    m.observe_probe(WEB, "10.0.0.3:80", Duration::from_secs(2), Some("timeout"));
    let exp = Exposition::parse(&m.render(&snapshot()));
    let r3 = [("service", WEB), ("real", "10.0.0.3:80")];
    let r2 = [("service", WEB), ("real", "10.0.0.2:80")];

    let les: Vec<String> = exp
        .samples("lb_health_check_duration_seconds_bucket")
        .into_iter()
        .filter(|s| s.labels["real"] == "10.0.0.3:80")
        .map(|s| s.labels["le"].clone())
        .collect();
    let mut want: Vec<String> = HEALTH_CHECK_BUCKETS.iter().map(f64::to_string).collect();
    want.push("+Inf".into());
    assert_eq!(les, want);
    assert_eq!(HEALTH_CHECK_BUCKETS.first(), Some(&0.0005));
    assert_eq!(HEALTH_CHECK_BUCKETS.last(), Some(&1.0));

    let bucket = |labels: &[(&str, &str)], le: &str| {
        let mut l = labels.to_vec();
        l.push(("le", le));
        exp.value("lb_health_check_duration_seconds_bucket", &l)
    };
    assert_eq!(bucket(&r2, "0.0005"), 0.0);
    assert_eq!(bucket(&r2, "0.001"), 1.0);
    assert_eq!(bucket(&r3, "0.025"), 0.0);
    assert_eq!(bucket(&r3, "0.05"), 1.0);
    assert_eq!(bucket(&r3, "1"), 1.0);
    assert_eq!(bucket(&r3, "+Inf"), 3.0);
    assert_eq!(
        exp.value("lb_health_check_duration_seconds_count", &r3),
        3.0
    );
    let sum = exp.value("lb_health_check_duration_seconds_sum", &r3);
    assert!((sum - 4.03).abs() < 1e-9, "{sum}");
    assert_eq!(
        exp.value("lb_health_check_duration_seconds_count", &r2),
        1.0
    );

    let failures = |reason| {
        exp.value(
            "lb_health_check_failures_total",
            &[r3[0], r3[1], ("reason", reason)],
        )
    };
    assert_eq!(failures("connection refused"), 1.0);
    assert_eq!(failures("timeout"), 2.0);
    assert!(
        exp.samples("lb_health_check_failures_total")
            .iter()
            .all(|s| s.labels["real"] != "10.0.0.2:80"),
        "a successful probe counts no failure"
    );
}

#[test]
fn reloads_start_at_zero_for_both_results() {
    let m = Metrics::new("0.1.0");
    let exp = Exposition::parse(&m.render(&Snapshot::default()));
    assert_eq!(
        exp.value("lb_config_reloads_total", &[("result", "success")]),
        0.0
    );
    assert_eq!(
        exp.value("lb_config_reloads_total", &[("result", "failure")]),
        0.0
    );
    assert_eq!(
        exp.samples("lb_config_last_reload_success_timestamp_seconds")
            .len(),
        1
    );

    m.observe_reload(true, 100.0);
    m.observe_reload(false, 200.0);
    m.observe_reload(true, 300.0);
    m.observe_reload(false, 400.0);
    let exp = Exposition::parse(&m.render(&Snapshot::default()));
    assert_eq!(
        exp.value("lb_config_reloads_total", &[("result", "success")]),
        2.0
    );
    assert_eq!(
        exp.value("lb_config_reloads_total", &[("result", "failure")]),
        2.0
    );
    assert_eq!(
        exp.value("lb_config_last_reload_success_timestamp_seconds", &[]),
        300.0,
        "a failed reload leaves the running config's time"
    );
}

#[test]
fn empty_snapshot_renders() {
    let exp = Exposition::parse(&Metrics::new("0.1.0").render(&Snapshot::default()));
    assert_eq!(exp.value("lb_services", &[]), 0.0);
    assert_eq!(exp.value("lb_conntrack_entries", &[]), 0.0);
    assert!(exp.samples("lb_real_up").is_empty());
}

#[test]
fn retain_reals_drops_series_of_removed_reals() {
    let m = observed();
    m.observe_probe(
        DNS,
        "10.0.0.4:53",
        Duration::from_millis(1),
        Some("timeout"),
    );
    m.observe_transition(DNS, "10.0.0.4:53", "down");
    // The same real address under another service is another pair.
    m.observe_probe(
        DNS,
        "10.0.0.2:80",
        Duration::from_millis(1),
        Some("timeout"),
    );
    let keep: HashSet<(String, String)> = [(WEB, "10.0.0.2:80"), (DNS, "10.0.0.4:53")]
        .into_iter()
        .map(|(s, r)| (s.to_owned(), r.to_owned()))
        .collect();
    let keys: HashSet<RealKey> = keep
        .iter()
        .map(|(s, r)| RealKey::new(crate::admin::parse_service(s).unwrap(), r.parse().unwrap()))
        .collect();
    m.retain_reals(&keys);
    let exp = Exposition::parse(&m.render(&Snapshot::default()));
    let pairs = |name: &str| -> BTreeSet<(String, String)> {
        exp.samples(name)
            .iter()
            .map(|s| (s.labels["service"].clone(), s.labels["real"].clone()))
            .collect()
    };
    let kept: BTreeSet<(String, String)> = keep.iter().cloned().collect();
    assert_eq!(pairs("lb_health_check_duration_seconds_count"), kept);
    assert_eq!(
        pairs("lb_health_check_failures_total"),
        [(DNS.to_owned(), "10.0.0.4:53".to_owned())].into()
    );
    assert_eq!(
        pairs("lb_health_transitions_total"),
        [(DNS.to_owned(), "10.0.0.4:53".to_owned())].into()
    );
    // Counting starts afresh if a removed real comes back.
    m.observe_probe(
        WEB,
        "10.0.0.3:80",
        Duration::from_millis(1),
        Some("timeout"),
    );
    let exp = Exposition::parse(&m.render(&Snapshot::default()));
    assert_eq!(
        exp.value(
            "lb_health_check_failures_total",
            &[
                ("service", WEB),
                ("real", "10.0.0.3:80"),
                ("reason", "timeout")
            ]
        ),
        1.0
    );
}

#[test]
fn label_values_are_escaped() {
    let odd = "a\"b\\c\nd";
    let mut snap = snapshot();
    snap.services[0].service = odd.into();
    let m = Metrics::new("v\"1");
    m.observe_probe(odd, "r", Duration::from_millis(1), Some("said \"no\"\\"));
    let text = m.render(&snap);
    assert!(
        text.contains(r#"lb_service_packets_total{service="a\"b\\c\nd"} 300"#),
        "{text}"
    );
    assert!(text.contains(r#"lb_build_info{version="v\"1"} 1"#));
    let exp = Exposition::parse(&text);
    assert_eq!(
        exp.value("lb_service_packets_total", &[("service", odd)]),
        300.0
    );
    assert_eq!(
        exp.value(
            "lb_health_check_failures_total",
            &[("service", odd), ("real", "r"), ("reason", "said \"no\"\\")]
        ),
        1.0
    );
}

#[test]
fn merged_registries_declare_each_family_once() {
    // Both registries populated; the parser fails on a second HELP or TYPE
    // and on a family whose samples are split.
    let text = observed().render(&snapshot());
    let exp = Exposition::parse(&text);
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(helps, EXPECTED.len());
    assert_eq!(types, EXPECTED.len());
    assert_eq!(exp.types.len(), EXPECTED.len());
    // Families come out sorted by name.
    let order: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted);
}

#[test]
fn content_type_is_text_format() {
    assert!(CONTENT_TYPE.starts_with(prometheus::TEXT_FORMAT));
}

/// `cargo test -p lb-daemon --release metrics::tests::render_1000_reals -- --ignored --nocapture`
#[test]
#[ignore = "timing, for the report"]
fn render_1000_reals() {
    let services = 50;
    let per_service = 20;
    let mut snap = Snapshot {
        conntrack_entries: 123_456,
        conntrack_capacity: 1 << 20,
        ..Snapshot::default()
    };
    let m = Metrics::new("0.1.0");
    for s in 0..services {
        let service = format!("10.1.0.{s}:80/tcp");
        snap.services.push(ServiceSample {
            service: service.clone(),
            packets: 1 << 40,
            bytes: 1 << 50,
            connections: 1 << 30,
        });
        for r in 0..per_service {
            let addr = format!("10.2.{s}.{r}:8080");
            snap.reals
                .push(real(&service, &addr, REAL_STATES[r % 5], 1 << 20));
            for _ in 0..3 {
                m.observe_probe(&service, &addr, Duration::from_millis(2), None);
            }
            m.observe_probe(&service, &addr, Duration::from_secs(1), Some("timeout"));
            m.observe_transition(&service, &addr, "down");
        }
    }
    for reason in [
        "forwarded",
        "not_a_service",
        "no_real",
        "fragment",
        "bad_header",
    ] {
        snap.xdp.push(XdpSample {
            action: "drop".into(),
            reason: reason.into(),
            packets: 99,
        });
    }
    assert_eq!(snap.reals.len(), 1000);
    let _ = m.render(&snap);
    let runs = 20;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..runs {
        bytes = m.render(&snap).len();
    }
    let each = start.elapsed() / runs;
    let lines = m.render(&snap).lines().count();
    println!("render of 1000 reals: {each:?} per scrape, {bytes} bytes, {lines} lines");
}

#[test]
#[should_panic(expected = "second HELP")]
fn parser_rejects_a_family_declared_twice() {
    Exposition::parse(
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n# HELP a_total A.\n# TYPE a_total counter\na_total 2\n",
    );
}

#[test]
#[should_panic(expected = "sample outside its family")]
fn parser_rejects_a_sample_of_another_family() {
    Exposition::parse("# HELP a A.\n# TYPE a gauge\nb 1\n");
}

#[test]
fn metrics_can_be_shared_across_tasks() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Metrics>();
    shared::<Snapshot>();
}

#[test]
fn a_real_listed_twice_is_exported_once() {
    let mut snap = snapshot();
    snap.reals.push(real(WEB, "10.0.0.2:80", "removed", 9));
    snap.services.push(snap.services[0].clone());
    snap.xdp.push(snap.xdp[0].clone());
    let exp = Exposition::parse(&Metrics::new("x").render(&snap));
    let up = [("service", WEB), ("real", "10.0.0.2:80")];
    assert_eq!(
        exp.value("lb_real_packets_total", &up),
        100.0,
        "the first entry wins"
    );
    assert_eq!(exp.samples("lb_real_state").len(), 3 * 5);
    assert_eq!(
        exp.value("lb_service_packets_total", &[("service", WEB)]),
        300.0
    );
    assert_eq!(exp.value("lb_services", &[]), 2.0);
    assert_eq!(exp.samples("lb_xdp_packets_total").len(), 3);
}

/// The Grafana dashboard (`config/grafana/lbd.json`) uses only metric names
/// that lbd exports (histograms by their `_bucket`, `_sum` and `_count`
/// series). That its queries return data is checked against a real
/// Prometheus by the lab's metrics test.
#[test]
fn the_dashboard_uses_only_exported_metrics() {
    let m = observed();
    m.set_vrrp_state(51, crate::vrrp::State::Master, true);
    m.count_sync("sent", 1);
    m.count_sync_rejected("bad_hmac");
    let exp = Exposition::parse(&m.render(&snapshot()));
    let mut exported: BTreeSet<String> = BTreeSet::new();
    for (name, kind) in &exp.types {
        exported.insert(name.clone());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{suffix}"));
            }
        }
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/grafana/lbd.json");
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let mut used = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("lb_") {
            used.insert(word.to_owned());
        }
    }
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "not exported by lbd: {unknown:?}");
    assert!(used.len() >= 15, "the dashboard uses only {used:?}");
    // A Prometheus datasource variable, used by every panel.
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["type"] == "datasource"
        && v["query"] == "prometheus"
        && v["name"] == "datasource"));
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    let mut queries = 0;
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        queries += panel["targets"].as_array().map_or(0, Vec::len);
    }
    assert!(queries > 20, "{queries} queries");
}
