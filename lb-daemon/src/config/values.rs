//! Reading values every section shares: a table through serde (with the
//! path of the value an error is about), and checked IPs, ports, integers,
//! durations and paths. Each reader records its own error and returns
//! `None` on one.
//!
//! Every field of a section's raw (serde) struct is optional, required ones
//! included: a missing field is reported by [`Checker::required`] (at the
//! table's header, with the other errors of the table) rather than by serde
//! (which stops at the first). Integers are read as `i64` so that an
//! out-of-range value gets a message naming the range instead of serde's
//! "expected u16".

use std::net::IpAddr;
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::duration::parse_duration;
use super::errors::Checker;
use super::{daemon, ecmp, service, timeouts, vrrp};

pub(super) type Text = Spanned<String>;
pub(super) type Int = Spanned<i64>;
pub(super) type Bool = Spanned<bool>;
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// Keys whose value is a duration string, in any section (for a hint on
/// type errors).
const DURATION_KEYS: [&[&str]; 8] = [
    daemon::DURATION_KEYS,
    timeouts::DURATION_KEYS,
    service::DURATION_KEYS,
    service::CHECK_DURATION_KEYS,
    service::DAMPING_DURATION_KEYS,
    vrrp::DURATION_KEYS,
    vrrp::SYNC_DURATION_KEYS,
    ecmp::DURATION_KEYS,
];

impl Checker<'_> {
    /// Deserializes one table; on error records it (with the path of the
    /// value it is about) and returns `None`.
    pub(super) fn section<T: DeserializeOwned>(
        &mut self,
        path: &str,
        value: &Value<'_>,
    ) -> Option<T> {
        // serde would read an array as the struct's fields in order.
        if value.get_ref().as_array().is_some() {
            let header: String = path
                .split('.')
                .map(|part| part.split('[').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(".");
            self.error(
                value.span().start,
                path,
                format!("expected a [{header}] table, found an array (write [{header}], not [[{header}]])"),
            );
            return None;
        }
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(raw) => Some(raw),
            Err(e) => {
                let offset = e.span().map_or(value.span().start, |s| s.start);
                let field = locate(path, value, offset).unwrap_or_else(|| path.to_owned());
                // serde names Rust types; say what they are in TOML.
                let mut message = e
                    .message()
                    .trim_end()
                    .replace("expected i64", "expected an integer")
                    .replace("expected a sequence", "expected an array");
                let key = field.rsplit('.').next().unwrap_or_default();
                if message.starts_with("invalid type")
                    && DURATION_KEYS.iter().any(|keys| keys.contains(&key))
                {
                    message.push_str(" (a duration is a string such as \"10s\" or \"1m30s\")");
                }
                self.error(offset, field, message);
                None
            }
        }
    }

    pub(super) fn required<'v, T>(
        &mut self,
        header: usize,
        table: &str,
        key: &str,
        what: &str,
        value: Option<&'v T>,
    ) -> Option<&'v T> {
        if value.is_none() {
            self.error(
                header,
                format!("{table}.{key}"),
                format!("missing required field `{key}` ({what})"),
            );
        }
        value
    }

    pub(super) fn ip(&mut self, field: &str, text: &Text) -> Option<IpAddr> {
        let offset = text.span().start;
        let Ok(ip) = text.get_ref().parse::<IpAddr>() else {
            self.error(
                offset,
                field,
                format!("{:?} is not an IP address", text.get_ref()),
            );
            return None;
        };
        let unusable = match ip {
            IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
            IpAddr::V4(v4) if v4.is_multicast() => Some("a multicast address"),
            IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
            _ if ip.is_unspecified() => Some("the unspecified address"),
            _ => None,
        };
        if let Some(what) = unusable {
            self.error(offset, field, format!("{ip} is {what}, not a host's"));
            return None;
        }
        Some(ip)
    }

    pub(super) fn port(&mut self, field: &str, value: &Int) -> Option<u16> {
        self.int(field, "port", value, 1..=u32::from(u16::MAX))
            .map(|p| p as u16)
    }

    pub(super) fn int(
        &mut self,
        field: &str,
        name: &str,
        value: &Int,
        range: RangeInclusive<u32>,
    ) -> Option<u32> {
        let v = *value.get_ref();
        match u32::try_from(v) {
            Ok(v) if range.contains(&v) => Some(v),
            _ => {
                self.error(
                    value.span().start,
                    field,
                    format!(
                        "{name} {v} is out of range {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A positive duration.
    pub(super) fn duration(&mut self, field: &str, text: Option<&Text>) -> Option<Duration> {
        let text = text?;
        let offset = text.span().start;
        match parse_duration(text.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.error(offset, field, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    offset,
                    field,
                    format!("{:?} is not a duration: {e}", text.get_ref()),
                );
                None
            }
        }
    }

    /// A duration where zero is allowed ("no delay").
    pub(super) fn duration_or_zero(&mut self, field: &str, text: &Text) -> Option<Duration> {
        match parse_duration(text.get_ref()) {
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

    /// An absolute path.
    pub(super) fn path(&mut self, field: &str, text: Option<&Text>) -> Option<PathBuf> {
        let text = text?;
        let path = PathBuf::from(text.get_ref());
        if path.is_absolute() {
            Some(path)
        } else {
            self.error(
                text.span().start,
                field,
                format!("{:?} is not an absolute path", text.get_ref()),
            );
            None
        }
    }
}

/// The dotted path of the deepest key or element under `value` whose key or
/// value span contains `offset`. Table spans are only the header, so every
/// child is searched, not just those inside the parent's span.
fn locate(path: &str, value: &Value<'_>, offset: usize) -> Option<String> {
    let contains =
        |span: Range<usize>| span.start <= offset && offset < span.end.max(span.start + 1);
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table {
                let child_path = format!("{path}.{}", key.get_ref());
                if contains(key.span()) {
                    return Some(child_path);
                }
                if let Some(found) = locate(&child_path, child, offset) {
                    return Some(found);
                }
            }
        }
        DeValue::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let child_path = format!("{path}[{i}]");
                if let Some(found) = locate(&child_path, child, offset) {
                    return Some(found);
                }
            }
        }
        _ => {}
    }
    contains(value.span()).then(|| path.to_owned())
}
