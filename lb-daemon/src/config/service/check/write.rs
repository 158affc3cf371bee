//! Writing a check back into the file (`lbctl` adding a service or a
//! real): the table that reads back as the same check.

use toml_edit::{Array, Table, value};

use super::super::super::duration::format_duration;
use crate::health::dns;
use crate::health::spec::{CheckKind, CheckSpec, HttpCheck};

/// The `check` table that makes `spec` when read over `base` (what a field
/// left out stands for: the defaults for `[service.check]`, the service's
/// check for a real's). With `base` `None` every field that applies to the
/// kind is written. `fast_interval` is not written (the parser derives it
/// from `interval`), nor an unset `port`, `host`, `expect_body`,
/// `expect_reply` or `expect_address` (which a table cannot say over a
/// base that sets them).
pub(in crate::config) fn check_table(spec: &CheckSpec, base: Option<&CheckSpec>) -> Table {
    fn http(kind: &CheckKind) -> Option<&HttpCheck> {
        match kind {
            CheckKind::Http(h) | CheckKind::Https(h) => Some(h),
            _ => None,
        }
    }
    let mut table = Table::new();
    let kind_name = |kind: &CheckKind| match kind {
        CheckKind::None => "none",
        CheckKind::Tcp => "tcp",
        CheckKind::Http(_) => "http",
        CheckKind::Https(_) => "https",
        CheckKind::Command { .. } => "command",
        CheckKind::Udp(_) => "udp",
        CheckKind::Dns(_) => "dns",
    };
    if base.is_none_or(|b| kind_name(&b.kind) != kind_name(&spec.kind)) {
        table.insert("kind", value(kind_name(&spec.kind)));
    }
    if spec.kind == CheckKind::None {
        return table;
    }
    // Whether a field must be written: it differs from what leaving it out
    // gives.
    let differs = |same: bool| base.is_none() || !same;
    let base_or_default = base.cloned().unwrap_or_default();
    if let Some(port) = spec.port
        && differs(base_or_default.port == Some(port))
    {
        table.insert("port", value(i64::from(port)));
    }
    if differs(base_or_default.interval == spec.interval) {
        table.insert("interval", value(format_duration(spec.interval)));
    }
    if differs(base_or_default.timeout == spec.timeout) {
        table.insert("timeout", value(format_duration(spec.timeout)));
    }
    if differs(base_or_default.rise == spec.rise) {
        table.insert("rise", value(i64::from(spec.rise)));
    }
    if differs(base_or_default.fall == spec.fall) {
        table.insert("fall", value(i64::from(spec.fall)));
    }
    // Written only when it differs (false is what leaving it out gives
    // without a base too).
    if base_or_default.start_down != spec.start_down {
        table.insert("start_down", value(spec.start_down));
    }
    if let Some(h) = http(&spec.kind) {
        // The base's HTTP settings are inherited by an http or https
        // check; otherwise leaving a field out gives its default.
        let default = HttpCheck::get("/");
        let inherited = base.and_then(|b| http(&b.kind)).unwrap_or(&default);
        if differs(inherited.path == h.path) {
            table.insert("path", value(h.path.as_str()));
        }
        if let Some(host) = &h.host
            && differs(inherited.host.as_ref() == Some(host))
        {
            table.insert("host", value(host.as_str()));
        }
        if differs(inherited.expect_status == h.expect_status) {
            let codes = h.expect_status.iter().map(|&s| i64::from(s));
            table.insert("expect_status", value(codes.collect::<Array>()));
        }
        if let Some(body) = &h.expect_body
            && differs(inherited.expect_body.as_ref() == Some(body))
        {
            table.insert("expect_body", value(body.as_str()));
        }
        let inherited_tls = match base.map(|b| &b.kind) {
            Some(CheckKind::Https(b)) => b.verify_tls,
            _ => true,
        };
        if matches!(spec.kind, CheckKind::Https(_)) && differs(inherited_tls == h.verify_tls) {
            table.insert("verify_tls", value(h.verify_tls));
        }
    }
    if let CheckKind::Command { program, args } = &spec.kind
        && differs(base.is_some_and(|b| b.kind == spec.kind))
    {
        let words =
            std::iter::once(program.to_string_lossy().into_owned()).chain(args.iter().cloned());
        table.insert("command", value(words.collect::<Array>()));
    }
    write_datagram(&mut table, spec, base);
    table
}

/// The fields of a udp or dns check (see [`check_table`]).
fn write_datagram(table: &mut Table, spec: &CheckSpec, base: Option<&CheckSpec>) {
    fn differs(base: Option<&CheckSpec>, same: bool) -> bool {
        base.is_none() || !same
    }
    if let CheckKind::Udp(u) = &spec.kind {
        let inherited = match base.map(|b| &b.kind) {
            Some(CheckKind::Udp(b)) => Some(b),
            _ => None,
        };
        if differs(base, inherited.is_some_and(|b| b.payload == u.payload)) {
            table.insert("payload", value(u.payload.as_str()));
        }
        if let Some(reply) = &u.expect_reply
            && differs(
                base,
                inherited.is_some_and(|b| b.expect_reply.as_ref() == Some(reply)),
            )
        {
            table.insert("expect_reply", value(reply.as_str()));
        }
    }
    if let CheckKind::Dns(d) = &spec.kind {
        let inherited = match base.map(|b| &b.kind) {
            Some(CheckKind::Dns(b)) => Some(b),
            _ => None,
        };
        if differs(base, inherited.is_some_and(|b| b.name == d.name)) {
            table.insert("query_name", value(d.name.as_str()));
        }
        let (qtype, rcode) = inherited.map_or((dns::TYPE_A, 0), |b| (b.qtype, b.rcode));
        if differs(base, qtype == d.qtype) {
            table.insert("query_type", value(dns::type_name(d.qtype)));
        }
        if differs(base, rcode == d.rcode) {
            table.insert("expect_rcode", value(dns::rcode_name(d.rcode)));
        }
        if let Some(addr) = d.expect_address
            && differs(
                base,
                inherited.is_some_and(|b| b.expect_address == Some(addr)),
            )
        {
            table.insert("expect_address", value(addr.to_string()));
        }
    }
}
