//! The file as serde sees it: every value kept as written, with its byte
//! span, so that the checks in `validate` can point at the line.
//!
//! Every field is optional here, required ones included: a missing field is
//! reported by `validate` (at the table's header, with the other errors of
//! the table) rather than by serde (which stops at the first). Integers are
//! read as `i64` so that an out-of-range value gets a message naming the
//! range instead of serde's "expected u16".

use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

pub(super) type Text = Spanned<String>;
pub(super) type Int = Spanned<i64>;
pub(super) type Bool = Spanned<bool>;

/// The top-level keys (the tables are deserialized one at a time).
pub(super) const TOP_LEVEL: [&str; 5] = ["daemon", "dataplane", "timeouts", "vrrp", "service"];

/// Keys whose value is a duration string (for a hint on type errors).
pub(super) const DURATION_KEYS: [&str; 14] = [
    "advert_interval",
    "preempt_delay",
    "wait_before_preempt",
    "neighbour_refresh",
    "tcp",
    "tcp_closing",
    "udp",
    "ageing_interval",
    "slow_start",
    "drain_timeout",
    "interval",
    "timeout",
    "half_life",
    "max_suppress",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [daemon] table")]
pub(super) struct RawDaemon {
    pub admin_socket: Option<Text>,
    pub pin_path: Option<Text>,
    pub metrics_address: Option<Text>,
    pub neighbour_refresh: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [dataplane] table")]
pub(super) struct RawDataplane {
    pub interfaces: Option<Spanned<Vec<Text>>>,
    pub xdp_mode: Option<Text>,
    pub xdp_fallback: Option<Bool>,
    pub conntrack_size: Option<Int>,
    pub max_reals: Option<Int>,
    pub max_services: Option<Int>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [timeouts] table")]
pub(super) struct RawTimeouts {
    pub tcp: Option<Text>,
    pub tcp_closing: Option<Text>,
    pub udp: Option<Text>,
    pub ageing_interval: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[service]] table")]
pub(super) struct RawService {
    pub vip: Option<Text>,
    pub port: Option<Int>,
    pub protocol: Option<Text>,
    pub scheduler: Option<Text>,
    pub table_size: Option<Int>,
    pub on_down: Option<Text>,
    pub min_primaries: Option<Int>,
    pub slow_start: Option<Text>,
    pub fallback: Option<Text>,
    pub fallback_mac: Option<Text>,
    pub drain_timeout: Option<Text>,
    /// Only checked to be an array here; each real is deserialized on its
    /// own so that the errors of every real are reported.
    #[allow(dead_code)]
    pub real: Option<Vec<IgnoredAny>>,
    /// `check` and `damping` are deserialized on their own too (as
    /// [`RawCheck`] and [`RawDamping`]), so that a mistake in them does not
    /// hide the errors of the rest of the service.
    #[allow(dead_code)]
    pub check: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub damping: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[service.real]] table")]
pub(super) struct RawReal {
    pub address: Option<Text>,
    pub port: Option<Int>,
    pub weight: Option<Int>,
    pub backup: Option<Bool>,
    pub mac: Option<Text>,
    /// A [`RawCheck`], deserialized on its own.
    #[allow(dead_code)]
    pub check: Option<IgnoredAny>,
}

/// `[service.check]`, or a real's `check` overriding it.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a check table ([service.check], or `check = { ... }` in a real)"
)]
pub(super) struct RawCheck {
    pub kind: Option<Text>,
    pub port: Option<Int>,
    pub interval: Option<Text>,
    pub timeout: Option<Text>,
    pub rise: Option<Int>,
    pub fall: Option<Int>,
    pub path: Option<Text>,
    pub host: Option<Text>,
    pub expect_status: Option<Spanned<Vec<Int>>>,
    pub expect_body: Option<Text>,
    pub verify_tls: Option<Bool>,
    pub command: Option<Spanned<Vec<Text>>>,
}

/// `[service.damping]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [service.damping] table")]
pub(super) struct RawDamping {
    pub penalty: Option<Int>,
    pub suppress: Option<Int>,
    pub reuse: Option<Int>,
    pub half_life: Option<Text>,
    pub max_suppress: Option<Text>,
}

/// `[vrrp]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [vrrp] table")]
pub(super) struct RawVrrp {
    pub vrid: Option<Int>,
    pub priority: Option<Int>,
    pub interface: Option<Text>,
    pub family: Option<Text>,
    pub advert_interval: Option<Text>,
    pub preempt: Option<Bool>,
    pub preempt_delay: Option<Text>,
    pub unicast_peers: Option<Spanned<Vec<Text>>>,
    pub source_address: Option<Text>,
    /// A [`RawSync`], deserialized on its own.
    #[allow(dead_code)]
    pub sync: Option<IgnoredAny>,
}

/// `[vrrp.sync]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [vrrp.sync] table")]
pub(super) struct RawSync {
    pub peer: Option<Text>,
    pub port: Option<Int>,
    pub listen: Option<Text>,
    pub key: Option<Text>,
    pub interval: Option<Text>,
    pub wait_before_preempt: Option<Text>,
}
