//! The health-checking settings of a service: `[service.check]` with each
//! real's `check` merged over it, `[service.damping]`, and `on_down`,
//! `min_primaries`, `slow_start`, `fallback`/`fallback_mac` and
//! `drain_timeout`.
//!
//! A real's `check` table overrides any field of the service's, `kind`
//! included. Fields that apply to the resulting kind are inherited from the
//! service's table; those that do not (the service's `path` under a real
//! with `kind = "tcp"`) are dropped. A field written in a table must apply
//! to that table's resulting kind, and the merged check must be consistent
//! (`timeout` at most `interval`, `command` given for a command check):
//! the error names the table and field where it was written.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::super::raw::{RawCheck, RawDamping, RawService, Text};
use super::super::types::{
    DAMPING_RANGE, DEFAULT_DRAIN_TIMEOUT, DEFAULT_MIN_PRIMARIES, DampingConfig, FallbackConfig,
    MIN_PRIMARIES_RANGE, OnDown, RISE_FALL_RANGE, RealConfig, STATUS_RANGE, parse_mac,
};
use super::super::{duration::format_duration, raw::Int};
use super::{Checker, Value};
use crate::health::spec::{
    CheckKind, CheckSpec, DEFAULT_FALL, DEFAULT_FAST_INTERVAL, DEFAULT_INTERVAL, DEFAULT_RISE,
    DEFAULT_TIMEOUT, HttpCheck,
};

/// Longest `expect_body`: the checker looks at the first 64 KiB of a body.
const MAX_EXPECT_BODY: usize = 65_536;

/// A check's `kind` as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    None,
    Tcp,
    Http,
    Https,
    Command,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::None,
        Kind::Tcp,
        Kind::Http,
        Kind::Https,
        Kind::Command,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::Tcp => "tcp",
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Command => "command",
        }
    }

    /// Whether the field `key` of a check table means something for this
    /// kind.
    fn takes(self, key: &str) -> bool {
        match key {
            "port" | "interval" | "timeout" | "rise" | "fall" => self != Kind::None,
            "path" | "host" | "expect_status" | "expect_body" => {
                matches!(self, Kind::Http | Kind::Https)
            }
            "verify_tls" => self == Kind::Https,
            "command" => self == Kind::Command,
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

/// Where a merged check value comes from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The table being checked.
    Own,
    /// The service's table (when checking a real's).
    Service,
    /// Neither: the default.
    Default,
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
    path_: Slot<String>,
    host: Slot<String>,
    expect_status: Slot<Vec<u16>>,
    expect_body: Slot<String>,
    verify_tls: Slot<bool>,
    command: Slot<(PathBuf, Vec<String>)>,
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
            ("path", at(&self.path_)),
            ("host", at(&self.host)),
            ("expect_status", at(&self.expect_status)),
            ("expect_body", at(&self.expect_body)),
            ("verify_tls", at(&self.verify_tls)),
            ("command", at(&self.command)),
        ]
        .into_iter()
        .filter_map(|(key, offset)| Some((key, offset?)))
        .collect()
    }
}

/// A field of the merged check: `None` when it does not apply to `kind`
/// (inherited values that do not are dropped; written ones are errors,
/// reported apart), else this table's value, else the inherited one, with
/// where it comes from and its offset. `Err` when the value that would
/// count is invalid (its error is recorded).
fn pick<'t, T>(
    kind: Kind,
    key: &str,
    own: &'t Slot<T>,
    inherited: Option<&'t Slot<T>>,
) -> Result<Option<(&'t T, Origin, usize)>, ()> {
    if !kind.takes(key) {
        return Ok(None);
    }
    let (slot, origin) = match (own, inherited) {
        (Slot::Absent, Some(slot)) => (slot, Origin::Service),
        (own, _) => (own, Origin::Own),
    };
    match slot {
        Slot::Absent => Ok(None),
        Slot::Invalid => Err(()),
        Slot::Set(value, offset) => Ok(Some((value, origin, *offset))),
    }
}

/// The service-level settings read by [`Checker::health`].
pub(super) struct Health {
    pub on_down: OnDown,
    pub min_primaries: u32,
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

    fn damping(&mut self, path: &str, value: &Value<'_>) -> Option<DampingConfig> {
        let raw = self.section::<RawDamping>(path, value)?;
        let defaults = DampingConfig::default();
        let mut valid = true;
        let mut amount = |checker: &mut Self, key: &str, raw: Option<&Int>, default: u32| match raw
        {
            None => default,
            Some(v) => checker
                .int(&format!("{path}.{key}"), key, v, DAMPING_RANGE)
                .unwrap_or_else(|| {
                    valid = false;
                    default
                }),
        };
        let penalty = amount(self, "penalty", raw.penalty.as_ref(), defaults.penalty);
        let suppress = amount(self, "suppress", raw.suppress.as_ref(), defaults.suppress);
        let reuse = amount(self, "reuse", raw.reuse.as_ref(), defaults.reuse);
        let mut time =
            |checker: &mut Self, key: &str, raw: Option<&Text>, default: Duration| match raw {
                None => default,
                Some(_) => checker
                    .duration(&format!("{path}.{key}"), raw)
                    .unwrap_or_else(|| {
                        valid = false;
                        default
                    }),
            };
        let half_life = time(
            self,
            "half_life",
            raw.half_life.as_ref(),
            defaults.half_life,
        );
        let max_suppress = time(
            self,
            "max_suppress",
            raw.max_suppress.as_ref(),
            defaults.max_suppress,
        );
        let damping = DampingConfig {
            penalty,
            suppress,
            reuse,
            half_life,
            max_suppress,
        };
        (valid && self.damping_consistent(path, &raw, &damping)).then_some(damping)
    }

    /// `reuse` below `suppress`, and a penalty cap above `suppress`; the
    /// error is at the first of the fields involved that is written.
    fn damping_consistent(&mut self, path: &str, raw: &RawDamping, d: &DampingConfig) -> bool {
        let (suppress_at, reuse_at) = (
            raw.suppress.as_ref().map(|v| v.span().start),
            raw.reuse.as_ref().map(|v| v.span().start),
        );
        let (suppress, reuse) = (d.suppress, d.reuse);
        if reuse >= suppress {
            let (offset, field, message) = match (reuse_at, suppress_at) {
                (Some(offset), at) => (
                    offset,
                    "reuse",
                    format!(
                        "reuse {reuse} must be less than suppress {suppress}{} (a held-down \
                         real comes back once its penalty decays below reuse)",
                        if at.is_some() { "" } else { " (the default)" }
                    ),
                ),
                (None, Some(offset)) => (
                    offset,
                    "suppress",
                    format!(
                        "suppress {suppress} must be greater than reuse {reuse} (the default; \
                         a held-down real comes back once its penalty decays below reuse)"
                    ),
                ),
                (None, None) => unreachable!("the defaults are consistent"),
            };
            self.error(offset, format!("{path}.{field}"), message);
            return false;
        }
        // The penalty is capped where it takes `max_suppress` to decay to
        // `reuse` (see `health::damping`): it must be able to exceed
        // `suppress`.
        let ceiling =
            f64::from(reuse) * (d.max_suppress.as_secs_f64() / d.half_life.as_secs_f64()).exp2();
        if ceiling > f64::from(suppress) {
            return true;
        }
        let blame = [
            (
                "max_suppress",
                raw.max_suppress.as_ref().map(|t| t.span().start),
            ),
            ("suppress", suppress_at),
            ("half_life", raw.half_life.as_ref().map(|t| t.span().start)),
            ("reuse", reuse_at),
        ]
        .into_iter()
        .find_map(|(key, at)| Some((key, at?)));
        if let Some((key, offset)) = blame {
            self.error(
                offset,
                format!("{path}.{key}"),
                format!(
                    "a real could never be held down: the penalty is capped at reuse × \
                     2^(max_suppress / half_life) = {ceiling:.0}, which does not exceed \
                     suppress {suppress} (raise max_suppress or lower suppress)"
                ),
            );
        }
        false
    }

    /// Reads a check table, each value on its own (`value` `None`: the
    /// service has none, and `header` is where the service starts).
    fn check_table(&mut self, path: &str, value: Option<&Value<'_>>, header: usize) -> CheckTable {
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
                         \"https\" or \"command\")"
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
        table.path_ = Slot::read(raw.path.as_ref(), |text| {
            self.request_path(&field("path"), text)
        });
        table.host = Slot::read(raw.host.as_ref(), |text| self.host(&field("host"), text));
        table.expect_status = Slot::read(raw.expect_status.as_ref(), |list| {
            self.statuses(&field("expect_status"), list)
        });
        table.expect_body = Slot::read(raw.expect_body.as_ref(), |text| {
            let body = text.get_ref();
            let problem = if body.is_empty() {
                Some("must not be empty (leave it out to accept any body)".to_owned())
            } else if body.len() > MAX_EXPECT_BODY {
                Some(format!(
                    "is {} bytes long; only the first {MAX_EXPECT_BODY} bytes of a body are \
                     searched",
                    body.len()
                ))
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    self.error(text.span().start, field("expect_body"), problem);
                    None
                }
                None => Some(body.clone()),
            }
        });
        table.verify_tls = Slot::read(raw.verify_tls.as_ref(), |b| Some(*b.get_ref()));
        table.command = Slot::read(raw.command.as_ref(), |list| {
            self.command(&field("command"), list)
        });
        table
    }

    /// Merges `own` over `inherited` (the service's table when `own` is a
    /// real's), checks what only the merged check can tell and builds it.
    /// `None` when the check is not valid (every error is recorded here or
    /// was before).
    fn check_spec(
        &mut self,
        own: &CheckTable,
        inherited: Option<&CheckTable>,
    ) -> Option<CheckSpec> {
        if own.broken || inherited.is_some_and(|t| t.broken) {
            return None;
        }
        let (kind, kind_origin) = match (&own.kind, inherited.map(|t| &t.kind)) {
            (Slot::Set(kind, _), _) => (*kind, Origin::Own),
            (Slot::Invalid, _) | (Slot::Absent, Some(Slot::Invalid)) => return None,
            (Slot::Absent, Some(Slot::Set(kind, _))) => (*kind, Origin::Service),
            (Slot::Absent, None | Some(Slot::Absent)) => (Kind::Tcp, Origin::Default),
        };
        let mut valid = self.fields_apply(own, inherited, kind, kind_origin);
        if kind == Kind::None {
            return valid.then(|| CheckSpec {
                kind: CheckKind::None,
                ..CheckSpec::default()
            });
        }
        macro_rules! pick {
            ($field:ident) => {
                pick(
                    kind,
                    stringify!($field).trim_end_matches('_'),
                    &own.$field,
                    inherited.map(|t| &t.$field),
                )
            };
        }
        let (
            Ok(port),
            Ok(interval),
            Ok(timeout),
            Ok(rise),
            Ok(fall),
            Ok(path),
            Ok(host),
            Ok(expect_status),
            Ok(expect_body),
            Ok(verify_tls),
            Ok(command),
        ) = (
            pick!(port),
            pick!(interval),
            pick!(timeout),
            pick!(rise),
            pick!(fall),
            pick!(path_),
            pick!(host),
            pick!(expect_status),
            pick!(expect_body),
            pick!(verify_tls),
            pick!(command),
        )
        else {
            return None;
        };
        let interval = interval.map_or((DEFAULT_INTERVAL, Origin::Default, 0), |(d, o, at)| {
            (*d, o, at)
        });
        let timeout = timeout.map_or((DEFAULT_TIMEOUT, Origin::Default, 0), |(d, o, at)| {
            (*d, o, at)
        });
        if timeout.0 > interval.0 {
            self.timeout_too_long(own, inherited, interval, timeout);
            valid = false;
        }
        if kind == Kind::Command && command.is_none() {
            self.missing_command(own, kind_origin);
            valid = false;
        }
        if !valid {
            return None;
        }
        let http = || HttpCheck {
            path: path.map_or_else(|| "/".to_owned(), |(p, ..)| p.clone()),
            host: host.map(|(h, ..)| h.clone()),
            expect_status: expect_status.map(|(s, ..)| s.clone()).unwrap_or_default(),
            expect_body: expect_body.map(|(b, ..)| b.clone()),
            verify_tls: verify_tls.is_none_or(|(v, ..)| *v),
        };
        let kind = match kind {
            Kind::None => CheckKind::None,
            Kind::Tcp => CheckKind::Tcp,
            Kind::Http => CheckKind::Http(http()),
            Kind::Https => CheckKind::Https(http()),
            Kind::Command => {
                let ((program, args), ..) = command?;
                CheckKind::Command {
                    program: program.clone(),
                    args: args.clone(),
                }
            }
        };
        Some(CheckSpec {
            kind,
            port: port.map(|(p, ..)| *p),
            interval: interval.0,
            fast_interval: interval.0.min(DEFAULT_FAST_INTERVAL),
            timeout: timeout.0,
            rise: rise.map_or(DEFAULT_RISE, |(r, ..)| *r),
            fall: fall.map_or(DEFAULT_FALL, |(f, ..)| *f),
        })
    }

    /// Reports a command check without `command` at the table that asks for
    /// it (when the kind is inherited, the service's table has the error).
    fn missing_command(&mut self, own: &CheckTable, kind_origin: Origin) {
        if kind_origin == Origin::Own {
            self.error(
                own.at,
                format!("{}.command", own.path),
                "missing required field `command` (a command check runs a program, given as \
                 its absolute path and arguments, e.g. \
                 command = [\"/usr/local/bin/check\", \"--quick\"])",
            );
        }
    }

    /// Whether every field written in `own` applies to the merged `kind`;
    /// reports those that do not.
    fn fields_apply(
        &mut self,
        own: &CheckTable,
        inherited: Option<&CheckTable>,
        kind: Kind,
        kind_origin: Origin,
    ) -> bool {
        let mut valid = true;
        for (key, offset) in own.written() {
            if kind.takes(key) {
                continue;
            }
            let origin = match (kind_origin, inherited) {
                (Origin::Own, _) => String::new(),
                (Origin::Service, Some(service)) => format!(" (the kind of {})", service.path),
                _ => " (the default kind)".to_owned(),
            };
            let message = if kind == Kind::None {
                format!(
                    "`{key}` does not apply to kind \"none\"{origin}: no checks are run, so \
                     there is nothing to set"
                )
            } else {
                format!(
                    "`{key}` does not apply to kind \"{}\"{origin}; it is for {}",
                    kind.name(),
                    kinds_taking(key)
                )
            };
            self.error(offset, format!("{}.{key}", own.path), message);
            valid = false;
        }
        valid
    }

    /// Reports a merged check whose timeout exceeds its interval, at the
    /// one of the two written in `own` (if neither is, the service's table
    /// has the error).
    fn timeout_too_long(
        &mut self,
        own: &CheckTable,
        inherited: Option<&CheckTable>,
        interval: (Duration, Origin, usize),
        timeout: (Duration, Origin, usize),
    ) {
        let from = |origin: Origin| match (origin, inherited) {
            (Origin::Own, _) => String::new(),
            (Origin::Service, Some(service)) => format!(" (from {})", service.path),
            _ => " (the default)".to_owned(),
        };
        let (i, t) = (format_duration(interval.0), format_duration(timeout.0));
        let (offset, key, message) = if timeout.1 == Origin::Own {
            (
                timeout.2,
                "timeout",
                format!(
                    "timeout {t} is longer than the interval {i}{}: a probe must end before \
                     the next one starts",
                    from(interval.1)
                ),
            )
        } else if interval.1 == Origin::Own {
            (
                interval.2,
                "interval",
                format!(
                    "interval {i} is shorter than the timeout {t}{}: a probe must end \
                     before the next one starts (set a shorter timeout too)",
                    from(timeout.1)
                ),
            )
        } else {
            return;
        };
        self.error(offset, format!("{}.{key}", own.path), message);
    }

    /// An HTTP request path: starts with `/`, nothing that would break the
    /// request line.
    fn request_path(&mut self, field: &str, text: &Text) -> Option<String> {
        let path = text.get_ref();
        let problem = if !path.starts_with('/') {
            "is not a request path: it must start with \"/\""
        } else if path
            .chars()
            .any(|c| !c.is_ascii() || c.is_ascii_control() || c == ' ')
        {
            "contains a space, a control character or a non-ASCII character (write them \
             percent-encoded, e.g. %20)"
        } else {
            return Some(path.clone());
        };
        self.error(text.span().start, field, format!("{path:?} {problem}"));
        None
    }

    /// A `Host` header value: a host name or address, with an optional port.
    fn host(&mut self, field: &str, text: &Text) -> Option<String> {
        let host = text.get_ref();
        if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
        {
            return Some(host.clone());
        }
        self.error(
            text.span().start,
            field,
            format!(
                "{host:?} is not a host name (letters, digits, '-' and '.', optionally \
                 followed by :PORT; an IPv6 address in brackets)"
            ),
        );
        None
    }

    /// `expect_status`: status codes, each at most once.
    fn statuses(&mut self, field: &str, list: &Spanned<Vec<Int>>) -> Option<Vec<u16>> {
        let mut statuses = Vec::new();
        let mut valid = true;
        for (i, value) in list.get_ref().iter().enumerate() {
            let item = format!("{field}[{i}]");
            let Some(status) = self.int(&item, "status", value, STATUS_RANGE) else {
                valid = false;
                continue;
            };
            let status = status as u16;
            if let Some(first) = statuses.iter().position(|&s| s == status) {
                self.error(
                    value.span().start,
                    item,
                    format!("duplicate status {status} (also {field}[{first}])"),
                );
                valid = false;
            }
            statuses.push(status);
        }
        valid.then_some(statuses)
    }

    /// `command`: the program's absolute path, then its arguments; run
    /// directly (no shell), so nothing may contain a NUL.
    fn command(
        &mut self,
        field: &str,
        list: &Spanned<Vec<Text>>,
    ) -> Option<(PathBuf, Vec<String>)> {
        let words = list.get_ref();
        let Some(program) = words.first() else {
            self.error(
                list.span().start,
                field,
                "the command is empty: give the program's absolute path and its arguments, \
                 e.g. [\"/usr/local/bin/check\", \"--quick\"]",
            );
            return None;
        };
        let mut valid = true;
        for (i, word) in words.iter().enumerate() {
            if word.get_ref().contains('\0') {
                self.error(
                    word.span().start,
                    format!("{field}[{i}]"),
                    "contains a NUL character, which cannot be passed to a program",
                );
                valid = false;
            }
        }
        let path = PathBuf::from(program.get_ref());
        if valid && !path.is_absolute() {
            self.error(
                program.span().start,
                format!("{field}[0]"),
                format!(
                    "{:?} is not an absolute path: the program is run directly, neither \
                     looked up in PATH nor run through a shell",
                    program.get_ref()
                ),
            );
            valid = false;
        }
        let args = words[1..].iter().map(|w| w.get_ref().clone()).collect();
        valid.then_some((path, args))
    }
}
