//! Merging a real's check table over its service's, and what only the
//! merged check can tell.

use std::net::IpAddr;
use std::time::Duration;

use super::super::super::duration::format_duration;
use super::super::super::errors::Checker;
use super::{CheckTable, Kind, Slot, kinds_taking};
use crate::health::dns;
use crate::health::spec::{
    CheckKind, CheckSpec, DEFAULT_FALL, DEFAULT_FAST_INTERVAL, DEFAULT_INTERVAL, DEFAULT_RISE,
    DEFAULT_TIMEOUT, DnsCheck, HttpCheck, UdpCheck,
};

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

/// [`pick`] of the field `$field` of `$own` over `$inherited`'s.
macro_rules! pick {
    ($kind:expr, $own:expr, $inherited:expr, $field:ident) => {
        pick(
            $kind,
            stringify!($field).trim_end_matches('_'),
            &$own.$field,
            $inherited.map(|t| &t.$field),
        )
    };
}

impl Checker<'_> {
    /// Merges `own` over `inherited` (the service's table when `own` is a
    /// real's), checks what only the merged check can tell and builds it.
    /// `None` when the check is not valid (every error is recorded here or
    /// was before).
    #[expect(
        clippy::too_many_lines,
        reason = "one pick and one default per field of a check, in one place"
    )]
    pub(in crate::config::service) fn check_spec(
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
        let datagram = self.datagram_kind(own, inherited, kind, kind_origin);
        valid &= datagram.is_ok();
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
            pick!(kind, own, inherited, port),
            pick!(kind, own, inherited, interval),
            pick!(kind, own, inherited, timeout),
            pick!(kind, own, inherited, rise),
            pick!(kind, own, inherited, fall),
            pick!(kind, own, inherited, path_),
            pick!(kind, own, inherited, host),
            pick!(kind, own, inherited, expect_status),
            pick!(kind, own, inherited, expect_body),
            pick!(kind, own, inherited, verify_tls),
            pick!(kind, own, inherited, command),
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
            self.missing(
                own,
                kind_origin,
                "command",
                "a command check runs a program, given as its absolute path and arguments, \
                 e.g. command = [\"/usr/local/bin/check\", \"--quick\"]",
            );
            valid = false;
        }
        if !valid {
            return None;
        }
        let start_down = pick!(kind, own, inherited, start_down).ok()?;
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
            Kind::Udp | Kind::Dns => datagram.ok()??,
        };
        Some(CheckSpec {
            kind,
            port: port.map(|(p, ..)| *p),
            interval: interval.0,
            fast_interval: interval.0.min(DEFAULT_FAST_INTERVAL),
            timeout: timeout.0,
            rise: rise.map_or(DEFAULT_RISE, |(r, ..)| *r),
            fall: fall.map_or(DEFAULT_FALL, |(f, ..)| *f),
            start_down: start_down.is_some_and(|(s, ..)| *s),
        })
    }

    /// The udp or dns check of a merged table (`Ok(None)` for the other
    /// kinds); `Err` when it is not valid (the errors are recorded).
    fn datagram_kind(
        &mut self,
        own: &CheckTable,
        inherited: Option<&CheckTable>,
        kind: Kind,
        kind_origin: Origin,
    ) -> Result<Option<CheckKind>, ()> {
        let payload = pick!(kind, own, inherited, payload)?;
        let expect_reply = pick!(kind, own, inherited, expect_reply)?;
        let query_name = pick!(kind, own, inherited, query_name)?;
        let query_type = pick!(kind, own, inherited, query_type)?;
        let expect_rcode = pick!(kind, own, inherited, expect_rcode)?;
        let expect_address = pick!(kind, own, inherited, expect_address)?;
        match kind {
            Kind::Udp => {
                let Some((payload, ..)) = payload else {
                    self.missing(
                        own,
                        kind_origin,
                        "payload",
                        "a udp check sends it and waits for a reply, e.g. payload = \"ping\\n\"",
                    );
                    return Err(());
                };
                Ok(Some(CheckKind::Udp(UdpCheck {
                    payload: payload.clone(),
                    expect_reply: expect_reply.map(|(r, ..)| r.clone()),
                })))
            }
            Kind::Dns => {
                let qtype =
                    query_type.map_or((dns::TYPE_A, Origin::Default, 0), |(t, o, at)| (*t, o, at));
                let fits = expect_address
                    .is_none_or(|(a, o, at)| self.address_fits_type(own, (*a, o, at), qtype));
                let Some((name, ..)) = query_name else {
                    self.missing(
                        own,
                        kind_origin,
                        "query_name",
                        "a dns check asks for this name, e.g. query_name = \"www.example.com\"",
                    );
                    return Err(());
                };
                if !fits {
                    return Err(());
                }
                Ok(Some(CheckKind::Dns(DnsCheck {
                    name: name.clone(),
                    qtype: qtype.0,
                    rcode: expect_rcode.map_or(0, |(r, ..)| *r),
                    expect_address: expect_address.map(|(a, ..)| *a),
                })))
            }
            _ => Ok(None),
        }
    }

    /// Reports a check without a field its kind requires at the table
    /// that asks for the kind (when the kind is inherited, the service's
    /// table has the error).
    fn missing(&mut self, own: &CheckTable, kind_origin: Origin, key: &str, why: &str) {
        if kind_origin == Origin::Own {
            self.error(
                own.at,
                format!("{}.{key}", own.path),
                format!("missing required field `{key}` ({why})"),
            );
        }
    }

    /// Whether a dns check's `expect_address` can be in an answer to its
    /// query type (an IPv4 address for A, IPv6 for AAAA); reports it at
    /// the one of the two written in `own` (if neither is, the service's
    /// table has the error).
    fn address_fits_type(
        &mut self,
        own: &CheckTable,
        addr: (IpAddr, Origin, usize),
        qtype: (u16, Origin, usize),
    ) -> bool {
        let fits = match qtype.0 {
            dns::TYPE_A => addr.0.is_ipv4(),
            dns::TYPE_AAAA => addr.0.is_ipv6(),
            _ => false,
        };
        if fits {
            return true;
        }
        let want = match qtype.0 {
            dns::TYPE_A => "an IPv4 address",
            dns::TYPE_AAAA => "an IPv6 address",
            _ => "no address (only A and AAAA answers hold one)",
        };
        let message = format!(
            "expect_address {} cannot be in the answer to a {} query, which holds {want}",
            addr.0,
            dns::type_name(qtype.0)
        );
        if addr.1 == Origin::Own {
            self.error(addr.2, format!("{}.expect_address", own.path), message);
        } else if qtype.1 == Origin::Own {
            self.error(qtype.2, format!("{}.query_type", own.path), message);
        }
        false
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
}
