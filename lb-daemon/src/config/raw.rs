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
pub(super) const TOP_LEVEL: [&str; 4] = ["daemon", "dataplane", "timeouts", "service"];

/// Keys whose value is a duration string (for a hint on type errors).
pub(super) const DURATION_KEYS: [&str; 5] = [
    "neighbour_refresh",
    "tcp",
    "tcp_closing",
    "udp",
    "ageing_interval",
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
    /// Only checked to be an array here; each real is deserialized on its
    /// own so that the errors of every real are reported.
    #[allow(dead_code)]
    pub real: Option<Vec<IgnoredAny>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[service.real]] table")]
pub(super) struct RawReal {
    pub address: Option<Text>,
    pub port: Option<Int>,
    pub weight: Option<Int>,
    pub backup: Option<Bool>,
    pub mac: Option<Text>,
}
