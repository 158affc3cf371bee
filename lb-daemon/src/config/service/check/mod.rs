//! `[service.check]` and a real's `check`: reading each table on its own
//! (here, with the checks of single values in `values`), merging a real's
//! over its service's (`merge`) and writing one back (`write`).
//!
//! A real's `check` table overrides any field of the service's, `kind`
//! included. Fields that apply to the resulting kind are inherited from the
//! service's table; those that do not (the service's `path` under a real
//! with `kind = "tcp"`) are dropped. A field written in a table must apply
//! to that table's resulting kind, and the merged check must be consistent
//! (`timeout` at most `interval`, `command` given for a command check):
//! the error names the table and field where it was written.

mod merge;
#[cfg(test)]
mod tests;
mod values;
mod write;

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::super::errors::Checker;
use super::super::values::{Bool, Int, Text, Value};
use crate::health::spec::CheckSpec;
pub(super) use write::check_table;

/// Allowed `rise` and `fall` of a check (the defaults are in
/// [`crate::health::spec`]).
pub const RISE_FALL_RANGE: RangeInclusive<u32> = 1..=100;
/// Allowed status codes in a check's `expect_status`.
pub const STATUS_RANGE: RangeInclusive<u32> = 100..=599;

/// The keys of a check table whose value is a duration.
pub(in crate::config) const DURATION_KEYS: &[&str] = &["interval", "timeout"];

/// `[service.check]`, or a real's `check` overriding it.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a check table ([service.check], or `check = { ... }` in a real)"
)]
struct RawCheck {
    kind: Option<Text>,
    port: Option<Int>,
    interval: Option<Text>,
    timeout: Option<Text>,
    rise: Option<Int>,
    fall: Option<Int>,
    start_down: Option<Bool>,
    path: Option<Text>,
    host: Option<Text>,
    expect_status: Option<Spanned<Vec<Int>>>,
    expect_body: Option<Text>,
    verify_tls: Option<Bool>,
    command: Option<Spanned<Vec<Text>>>,
    payload: Option<Text>,
    expect_reply: Option<Text>,
    query_name: Option<Text>,
    query_type: Option<Text>,
    expect_rcode: Option<Text>,
    expect_address: Option<Text>,
}

/// A check's `kind` as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    None,
    Tcp,
    Http,
    Https,
    Command,
    Udp,
    Dns,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::None,
        Kind::Tcp,
        Kind::Http,
        Kind::Https,
        Kind::Command,
        Kind::Udp,
        Kind::Dns,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::Tcp => "tcp",
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Command => "command",
            Kind::Udp => "udp",
            Kind::Dns => "dns",
        }
    }

    /// Whether the field `key` of a check table means something for this
    /// kind.
    fn takes(self, key: &str) -> bool {
        match key {
            "port" | "interval" | "timeout" | "rise" | "fall" | "start_down" => self != Kind::None,
            "path" | "host" | "expect_status" | "expect_body" => {
                matches!(self, Kind::Http | Kind::Https)
            }
            "verify_tls" => self == Kind::Https,
            "command" => self == Kind::Command,
            "payload" | "expect_reply" => self == Kind::Udp,
            "query_name" | "query_type" | "expect_rcode" | "expect_address" => self == Kind::Dns,
            _ => true,
        }
    }
}

/// The kinds a field is for, for the "does not apply" message.
fn kinds_taking(key: &str) -> &'static str {
    match key {
        "path" | "host" | "expect_status" | "expect_body" => "http and https checks",
        "verify_tls" => "https checks",
        "command" => "command checks",
        "payload" | "expect_reply" => "udp checks",
        "query_name" | "query_type" | "expect_rcode" | "expect_address" => "dns checks",
        _ => "every kind but \"none\"",
    }
}

/// One field of a check table.
#[derive(Clone, Debug, Default)]
pub(super) enum Slot<T> {
    /// Not written.
    #[default]
    Absent,
    /// Written but not valid (the error is recorded).
    Invalid,
    /// Written and valid, at this byte offset.
    Set(T, usize),
}

impl<T> Slot<T> {
    /// Reads a raw value with `convert`, which records its own errors.
    fn read<R>(raw: Option<&Spanned<R>>, convert: impl FnOnce(&Spanned<R>) -> Option<T>) -> Self {
        match raw {
            None => Slot::Absent,
            Some(raw) => match convert(raw) {
                Some(value) => Slot::Set(value, raw.span().start),
                None => Slot::Invalid,
            },
        }
    }
}

/// A check table as written, each value checked on its own.
#[derive(Clone, Debug, Default)]
pub(super) struct CheckTable {
    /// Dotted path of the table (`service[0].check`).
    path: String,
    /// Where the table starts (its header or `{`); for a service without
    /// one, the service's header.
    at: usize,
    /// Written but not deserializable (the error is recorded): its fields
    /// are unknown, so nothing is checked against it.
    broken: bool,
    kind: Slot<Kind>,
    port: Slot<u16>,
    interval: Slot<Duration>,
    timeout: Slot<Duration>,
    rise: Slot<u32>,
    fall: Slot<u32>,
    start_down: Slot<bool>,
    path_: Slot<String>,
    host: Slot<String>,
    expect_status: Slot<Vec<u16>>,
    expect_body: Slot<String>,
    verify_tls: Slot<bool>,
    command: Slot<(PathBuf, Vec<String>)>,
    payload: Slot<String>,
    expect_reply: Slot<String>,
    query_name: Slot<String>,
    query_type: Slot<u16>,
    expect_rcode: Slot<u8>,
    expect_address: Slot<IpAddr>,
}

impl CheckTable {
    /// The fields written (validly) in this table other than `kind`, with
    /// their offsets.
    fn written(&self) -> Vec<(&'static str, usize)> {
        fn at<T>(slot: &Slot<T>) -> Option<usize> {
            match slot {
                Slot::Set(_, offset) => Some(*offset),
                _ => None,
            }
        }
        [
            ("port", at(&self.port)),
            ("interval", at(&self.interval)),
            ("timeout", at(&self.timeout)),
            ("rise", at(&self.rise)),
            ("fall", at(&self.fall)),
            ("start_down", at(&self.start_down)),
            ("path", at(&self.path_)),
            ("host", at(&self.host)),
            ("expect_status", at(&self.expect_status)),
            ("expect_body", at(&self.expect_body)),
            ("verify_tls", at(&self.verify_tls)),
            ("command", at(&self.command)),
            ("payload", at(&self.payload)),
            ("expect_reply", at(&self.expect_reply)),
            ("query_name", at(&self.query_name)),
            ("query_type", at(&self.query_type)),
            ("expect_rcode", at(&self.expect_rcode)),
            ("expect_address", at(&self.expect_address)),
        ]
        .into_iter()
        .filter_map(|(key, offset)| Some((key, offset?)))
        .collect()
    }
}

impl Checker<'_> {
    /// A real's check: `Some` when its `check` table (at `value`) makes it
    /// differ from the service's.
    pub(super) fn real_check(
        &mut self,
        path: &str,
        value: &Value<'_>,
        service_table: &CheckTable,
        service_check: &CheckSpec,
    ) -> Option<CheckSpec> {
        let table = self.check_table(&format!("{path}.check"), Some(value), value.span().start);
        self.check_spec(&table, Some(service_table))
            .filter(|spec| spec != service_check)
    }

    /// Reads a check table, each value on its own (`value` `None`: the
    /// service has none, and `header` is where the service starts).
    pub(super) fn check_table(
        &mut self,
        path: &str,
        value: Option<&Value<'_>>,
        header: usize,
    ) -> CheckTable {
        let mut table = CheckTable {
            path: path.to_owned(),
            at: value.map_or(header, |v| v.span().start),
            ..CheckTable::default()
        };
        let Some(value) = value else {
            return table;
        };
        let Some(raw) = self.section::<RawCheck>(path, value) else {
            table.broken = true;
            return table;
        };
        let field = |key: &str| format!("{path}.{key}");
        table.kind = Slot::read(raw.kind.as_ref(), |text| {
            let name = text.get_ref().as_str();
            let kind = Kind::ALL.into_iter().find(|k| k.name() == name);
            if kind.is_none() {
                self.error(
                    text.span().start,
                    field("kind"),
                    format!(
                        "unknown check kind {name:?} (expected \"none\", \"tcp\", \"http\", \
                         \"https\", \"command\", \"udp\" or \"dns\")"
                    ),
                );
            }
            kind
        });
        table.port = Slot::read(raw.port.as_ref(), |v| self.port(&field("port"), v));
        table.interval = Slot::read(raw.interval.as_ref(), |text| {
            self.duration(&field("interval"), Some(text))
        });
        table.timeout = Slot::read(raw.timeout.as_ref(), |text| {
            self.duration(&field("timeout"), Some(text))
        });
        table.rise = Slot::read(raw.rise.as_ref(), |v| {
            self.int(&field("rise"), "rise", v, RISE_FALL_RANGE)
        });
        table.fall = Slot::read(raw.fall.as_ref(), |v| {
            self.int(&field("fall"), "fall", v, RISE_FALL_RANGE)
        });
        table.start_down = Slot::read(raw.start_down.as_ref(), |b| Some(*b.get_ref()));
        table.path_ = Slot::read(raw.path.as_ref(), |text| {
            self.request_path(&field("path"), text)
        });
        table.host = Slot::read(raw.host.as_ref(), |text| self.host(&field("host"), text));
        table.expect_status = Slot::read(raw.expect_status.as_ref(), |list| {
            self.statuses(&field("expect_status"), list)
        });
        table.expect_body = Slot::read(raw.expect_body.as_ref(), |text| {
            self.expect_body(&field("expect_body"), text)
        });
        table.verify_tls = Slot::read(raw.verify_tls.as_ref(), |b| Some(*b.get_ref()));
        table.command = Slot::read(raw.command.as_ref(), |list| {
            self.command(&field("command"), list)
        });
        table.payload = Slot::read(raw.payload.as_ref(), |text| {
            self.datagram_text(&field("payload"), text)
        });
        table.expect_reply = Slot::read(raw.expect_reply.as_ref(), |text| {
            self.datagram_text(&field("expect_reply"), text)
        });
        table.query_name = Slot::read(raw.query_name.as_ref(), |text| {
            self.query_name(&field("query_name"), text)
        });
        table.query_type = Slot::read(raw.query_type.as_ref(), |text| {
            self.query_type(&field("query_type"), text)
        });
        table.expect_rcode = Slot::read(raw.expect_rcode.as_ref(), |text| {
            self.expect_rcode(&field("expect_rcode"), text)
        });
        table.expect_address = Slot::read(raw.expect_address.as_ref(), |text| {
            self.expect_address(&field("expect_address"), text)
        });
        table
    }
}
