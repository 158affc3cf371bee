//! Editing the operator's file for `lbctl` changes, keeping its comments and
//! layout (`toml_edit`).
//!
//! Services and reals are found by their parsed values, the way
//! [`super::parse`] reads them: `vip = "fd00::0200"` matches `fd00::200`, a
//! missing `protocol` is tcp and a real without `port` has the service's.
//! Both `[[service]]`/`[[service.real]]` tables and inline arrays of inline
//! tables are understood. The edits do not validate the result: parse
//! [`ConfigDocument::to_text`] before using or saving it.

use std::net::IpAddr;

use toml_edit::{
    Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, TableLike, Value, value,
};

use super::duration::format_duration;
use super::types::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_MIN_PRIMARIES, DEFAULT_WEIGHT, OnDown, RealConfig,
    ServiceConfig, format_mac,
};
use crate::balancer::model::{Protocol, ServiceAddr};
use crate::health::spec::{CheckKind, CheckSpec, HttpCheck};
use crate::sched::maglev;

/// Why an edit could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("service {0} already exists")]
    ServiceExists(ServiceAddr),
    #[error("service {0} not found")]
    ServiceNotFound(ServiceAddr),
    /// `real` is `IP:PORT`.
    #[error("real {real} already exists in service {service}")]
    RealExists { service: ServiceAddr, real: String },
    #[error("real {real} not found in service {service}")]
    RealNotFound { service: ServiceAddr, real: String },
    /// The file is written in a shape these edits do not handle.
    #[error("cannot edit the config file: {0}")]
    Unsupported(String),
}

/// A config file open for editing.
#[derive(Clone, Debug)]
pub struct ConfigDocument {
    doc: DocumentMut,
}

impl ConfigDocument {
    /// Reads a file's text; the error is `toml_edit`'s message (with line and
    /// column).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.parse::<DocumentMut>()
            .map(|doc| Self { doc })
            .map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Appends a `[[service]]` (after the existing ones) with its reals.
    /// Writes `vip`, `port`, `protocol` and `scheduler`, and other fields
    /// (the `check` and `damping` tables and the reals' checks included)
    /// only when they differ from the default.
    pub fn add_service(&mut self, service: &ServiceConfig) -> Result<(), EditError> {
        let table = service_table(service);
        match self.services()? {
            Some(mut services) => {
                if find_service(&services, &service.addr).is_some() {
                    return Err(EditError::ServiceExists(service.addr));
                }
                services.push(table);
            }
            None => {
                let mut services = ArrayOfTables::new();
                services.push(table);
                self.doc.insert("service", Item::ArrayOfTables(services));
            }
        }
        Ok(())
    }

    /// Removes a service with its reals (and the comment lines just above
    /// its header).
    pub fn remove_service(&mut self, addr: &ServiceAddr) -> Result<(), EditError> {
        let mut services = self.services()?.ok_or(EditError::ServiceNotFound(*addr))?;
        let index = find_service(&services, addr).ok_or(EditError::ServiceNotFound(*addr))?;
        services.remove(index);
        if services.len() == 0 {
            self.doc.remove("service");
        }
        Ok(())
    }

    /// Appends a real to a service (after its existing reals). A real with
    /// its own check gets a `check` table with every field that applies to
    /// its kind (the service's check in the file is not known here).
    pub fn add_real(&mut self, service: &ServiceAddr, real: &RealConfig) -> Result<(), EditError> {
        self.with_service(service, |table, inline| {
            let new = real_table(real, service.port, None);
            match table.get_mut("real") {
                Some(item) => {
                    let mut reals = tables(item, "real")?;
                    if find_real(&reals, service.port, real.addr, real.port).is_some() {
                        return Err(EditError::RealExists {
                            service: *service,
                            real: real.name(),
                        });
                    }
                    reals.push(new);
                }
                None if inline => {
                    let array = Array::from_iter([new.into_inline_table()]);
                    table.insert("real", value(array));
                }
                None => {
                    let mut reals = ArrayOfTables::new();
                    reals.push(new);
                    table.insert("real", Item::ArrayOfTables(reals));
                }
            }
            Ok(())
        })
    }

    /// Removes a real (and the comment lines just above its header).
    pub fn remove_real(
        &mut self,
        service: &ServiceAddr,
        addr: IpAddr,
        port: u16,
    ) -> Result<(), EditError> {
        self.with_service(service, |table, _| {
            let not_found = || real_not_found(service, addr, port);
            let item = table.get_mut("real").ok_or_else(not_found)?;
            let mut reals = tables(item, "real")?;
            let index = find_real(&reals, service.port, addr, port).ok_or_else(not_found)?;
            reals.remove(index);
            if reals.len() == 0 {
                table.remove("real");
            }
            Ok(())
        })
    }

    /// Sets a real's weight, replacing the value in place (a comment after
    /// it stays) or adding a `weight` key.
    pub fn set_weight(
        &mut self,
        service: &ServiceAddr,
        addr: IpAddr,
        port: u16,
        weight: u32,
    ) -> Result<(), EditError> {
        self.with_service(service, |table, _| {
            let not_found = || real_not_found(service, addr, port);
            let item = table.get_mut("real").ok_or_else(not_found)?;
            let mut reals = tables(item, "real")?;
            let index = find_real(&reals, service.port, addr, port).ok_or_else(not_found)?;
            let real = reals.get_mut(index).ok_or_else(not_found)?;
            let new = Value::from(i64::from(weight));
            match real.get_mut("weight").and_then(Item::as_value_mut) {
                Some(old) => {
                    let decor = old.decor().clone();
                    *old = new;
                    *old.decor_mut() = decor;
                }
                None => {
                    real.insert("weight", Item::Value(new));
                }
            }
            Ok(())
        })
    }

    /// The edited file.
    #[must_use]
    pub fn to_text(&self) -> String {
        self.doc.to_string()
    }

    /// The `service` array, if the file has one.
    fn services(&mut self) -> Result<Option<Tables<'_>>, EditError> {
        match self.doc.get_mut("service") {
            None => Ok(None),
            Some(item) => tables(item, "service").map(Some),
        }
    }

    /// Runs `edit` on the service's table; `inline` says whether it is an
    /// inline table (whose reals must then be inline too).
    fn with_service<R>(
        &mut self,
        addr: &ServiceAddr,
        edit: impl FnOnce(&mut dyn TableLike, bool) -> Result<R, EditError>,
    ) -> Result<R, EditError> {
        let mut services = self.services()?.ok_or(EditError::ServiceNotFound(*addr))?;
        let index = find_service(&services, addr).ok_or(EditError::ServiceNotFound(*addr))?;
        let inline = services.is_inline();
        let table = services
            .get_mut(index)
            .ok_or(EditError::ServiceNotFound(*addr))?;
        edit(table, inline)
    }
}

fn real_not_found(service: &ServiceAddr, addr: IpAddr, port: u16) -> EditError {
    EditError::RealNotFound {
        service: *service,
        real: RealConfig::new(addr, port).name(),
    }
}

fn service_table(service: &ServiceConfig) -> Table {
    let mut table = Table::new();
    table.insert("vip", value(service.addr.vip.to_string()));
    table.insert("port", value(i64::from(service.addr.port)));
    table.insert("protocol", value(service.addr.protocol.to_string()));
    table.insert("scheduler", value(service.scheduler.name()));
    if service.table_size != maglev::DEFAULT_SIZE {
        table.insert("table_size", value(i64::from(service.table_size)));
    }
    if service.on_down != OnDown::default() {
        table.insert("on_down", value(service.on_down.name()));
    }
    if service.min_primaries != DEFAULT_MIN_PRIMARIES {
        table.insert("min_primaries", value(i64::from(service.min_primaries)));
    }
    if let Some(slow_start) = service.slow_start {
        table.insert("slow_start", value(format_duration(slow_start)));
    }
    if let Some(fallback) = service.fallback {
        table.insert("fallback", value(fallback.addr.to_string()));
        if let Some(mac) = fallback.mac {
            table.insert("fallback_mac", value(format_mac(mac)));
        }
    }
    if service.drain_timeout != DEFAULT_DRAIN_TIMEOUT {
        table.insert(
            "drain_timeout",
            value(format_duration(service.drain_timeout)),
        );
    }
    if service.check != CheckSpec::default() {
        let check = check_table(&service.check, Some(&CheckSpec::default()));
        table.insert("check", Item::Table(check));
    }
    if let Some(damping) = service.damping {
        let mut t = Table::new();
        t.insert("penalty", value(i64::from(damping.penalty)));
        t.insert("suppress", value(i64::from(damping.suppress)));
        t.insert("reuse", value(i64::from(damping.reuse)));
        t.insert("half_life", value(format_duration(damping.half_life)));
        t.insert("max_suppress", value(format_duration(damping.max_suppress)));
        table.insert("damping", Item::Table(t));
    }
    if !service.reals.is_empty() {
        let mut reals = ArrayOfTables::new();
        for real in &service.reals {
            reals.push(real_table(real, service.addr.port, Some(&service.check)));
        }
        table.insert("real", Item::ArrayOfTables(reals));
    }
    table
}

/// A real's table; its `check` (if it has its own) is written over
/// `service_check` (`None`: not known, so every field is written).
fn real_table(real: &RealConfig, service_port: u16, service_check: Option<&CheckSpec>) -> Table {
    let mut table = Table::new();
    table.insert("address", value(real.addr.to_string()));
    if real.port != service_port {
        table.insert("port", value(i64::from(real.port)));
    }
    if real.weight != DEFAULT_WEIGHT {
        table.insert("weight", value(i64::from(real.weight)));
    }
    if real.backup {
        table.insert("backup", value(true));
    }
    if let Some(mac) = real.mac {
        table.insert("mac", value(format_mac(mac)));
    }
    if let Some(check) = &real.check {
        table.insert("check", Item::Table(check_table(check, service_check)));
    }
    table
}

/// The `check` table that makes `spec` when read over `base` (what a field
/// left out stands for: the defaults for `[service.check]`, the service's
/// check for a real's). With `base` `None` every field that applies to the
/// kind is written. `fast_interval` is not written (the parser derives it
/// from `interval`), nor an unset `port`, `host` or `expect_body` (which
/// a table cannot say over a base that sets them).
fn check_table(spec: &CheckSpec, base: Option<&CheckSpec>) -> Table {
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
    table
}

/// An array of tables as written: `[[x]]` tables or an inline array of
/// inline tables.
enum Tables<'a> {
    Headers(&'a mut ArrayOfTables),
    Inline(&'a mut Array),
}

fn tables<'a>(item: &'a mut Item, key: &str) -> Result<Tables<'a>, EditError> {
    match item {
        Item::ArrayOfTables(tables) => Ok(Tables::Headers(tables)),
        Item::Value(Value::Array(array)) if array.iter().all(Value::is_inline_table) => {
            Ok(Tables::Inline(array))
        }
        _ => Err(EditError::Unsupported(format!(
            "`{key}` is neither [[{key}]] tables nor an array of inline tables"
        ))),
    }
}

impl Tables<'_> {
    fn is_inline(&self) -> bool {
        matches!(self, Tables::Inline(_))
    }

    fn len(&self) -> usize {
        match self {
            Tables::Headers(t) => t.len(),
            Tables::Inline(a) => a.len(),
        }
    }

    fn get(&self, index: usize) -> Option<&dyn TableLike> {
        match self {
            Tables::Headers(t) => t.get(index).map(|t| t as &dyn TableLike),
            Tables::Inline(a) => a
                .get(index)
                .and_then(Value::as_inline_table)
                .map(|t| t as &dyn TableLike),
        }
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut dyn TableLike> {
        match self {
            Tables::Headers(t) => t.get_mut(index).map(|t| t as &mut dyn TableLike),
            Tables::Inline(a) => a
                .get_mut(index)
                .and_then(Value::as_inline_table_mut)
                .map(|t| t as &mut dyn TableLike),
        }
    }

    fn push(&mut self, table: Table) {
        match self {
            Tables::Headers(t) => t.push(table),
            Tables::Inline(a) => a.push(Value::InlineTable(inline(table))),
        }
    }

    fn remove(&mut self, index: usize) {
        match self {
            Tables::Headers(t) => {
                t.remove(index);
            }
            Tables::Inline(a) => {
                a.remove(index);
            }
        }
    }
}

fn inline(table: Table) -> InlineTable {
    table.into_inline_table()
}

fn find_service(services: &Tables<'_>, addr: &ServiceAddr) -> Option<usize> {
    (0..services.len()).find(|&i| services.get(i).and_then(service_addr) == Some(*addr))
}

fn service_addr(table: &dyn TableLike) -> Option<ServiceAddr> {
    let vip = table.get("vip")?.as_str()?.parse().ok()?;
    let port = u16::try_from(table.get("port")?.as_integer()?).ok()?;
    let protocol = match table.get("protocol").map(Item::as_str) {
        None | Some(Some("tcp")) => Protocol::Tcp,
        Some(Some("udp")) => Protocol::Udp,
        Some(_) => return None,
    };
    Some(ServiceAddr {
        vip,
        port,
        protocol,
    })
}

fn find_real(reals: &Tables<'_>, service_port: u16, addr: IpAddr, port: u16) -> Option<usize> {
    (0..reals.len())
        .find(|&i| reals.get(i).and_then(|t| real_id(t, service_port)) == Some((addr, port)))
}

fn real_id(table: &dyn TableLike, service_port: u16) -> Option<(IpAddr, u16)> {
    let addr = table.get("address")?.as_str()?.parse().ok()?;
    let port = match table.get("port") {
        None => service_port,
        Some(item) => u16::try_from(item.as_integer()?).ok()?,
    };
    Some((addr, port))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::balancer::model::Scheduler;
    use crate::config::{Config, DampingConfig, Environment, FallbackConfig, parse};

    struct AnyInterface;

    impl Environment for AnyInterface {
        fn interface_exists(&self, _: &str) -> bool {
            true
        }
    }

    const ORIGINAL: &str = r#"# Operator's notes: keep me.
[dataplane]
interfaces = ["eth0"]

# The web service.
[[service]]
vip = "192.0.2.10"
port = 80

# First web real.
[[service.real]]
address = "198.51.100.11"
weight = 5 # heavier box

[[service.real]]
address = "198.51.100.12"
port = 80

# DNS, written by hand with a long VIP.
[[service]]
vip = "2001:db8::0053"
port = 53
protocol = "udp"
scheduler = "maglev"

[timeouts]
tcp = "10m" # shorter than the default
"#;

    fn web() -> ServiceAddr {
        ServiceAddr {
            vip: "192.0.2.10".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
        }
    }

    fn dns() -> ServiceAddr {
        ServiceAddr {
            vip: "2001:db8::53".parse().unwrap(),
            port: 53,
            protocol: Protocol::Udp,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn document() -> ConfigDocument {
        ConfigDocument::parse(ORIGINAL).unwrap()
    }

    /// Parses the edited text; checks the operator's comments survived.
    fn reparse(doc: &ConfigDocument) -> Config {
        let text = doc.to_text();
        assert!(text.contains("# Operator's notes: keep me."), "{text}");
        assert!(
            text.contains("tcp = \"10m\" # shorter than the default"),
            "{text}"
        );
        parse(&text, "edited.toml", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn unedited_text_is_unchanged() {
        assert_eq!(document().to_text(), ORIGINAL);
        assert!(ConfigDocument::parse("[x\n").is_err());
    }

    #[test]
    fn add_service_appends_it_with_its_reals() {
        let mut doc = document();
        let mut service = ServiceConfig::new(ServiceAddr {
            vip: ip("192.0.2.20"),
            port: 443,
            protocol: Protocol::Tcp,
        });
        service.scheduler = Scheduler::SourceHash;
        service.table_size = 257;
        service.reals = vec![
            RealConfig::new(ip("198.51.100.21"), 443),
            RealConfig {
                weight: 7,
                backup: true,
                mac: Some([2, 0, 0, 0, 0, 0x21]),
                ..RealConfig::new(ip("198.51.100.22"), 443)
            },
        ];
        doc.add_service(&service).unwrap();
        let config = reparse(&doc);
        assert_eq!(config.services.len(), 3);
        assert_eq!(config.services[2], service);
        // The rest is as it was.
        let before = parse(ORIGINAL, "o", &AnyInterface).unwrap();
        assert_eq!(config.services[..2], before.services[..]);
        assert_eq!(config.timeouts, before.timeouts);
        // Only non-default fields of the reals are written.
        let text = doc.to_text();
        assert!(text.contains("[[service]]\nvip = \"192.0.2.20\"\nport = 443\nprotocol = \"tcp\"\nscheduler = \"sh\"\ntable_size = 257\n"), "{text}");
        assert!(
            text.contains("[[service.real]]\naddress = \"198.51.100.21\"\n\n"),
            "{text}"
        );
        assert!(
            text.contains("weight = 7\nbackup = true\nmac = \"02:00:00:00:00:21\"\n"),
            "{text}"
        );
    }

    #[test]
    fn add_service_to_a_file_without_services() {
        let mut doc =
            ConfigDocument::parse("# just the basics\n[dataplane]\ninterfaces = [\"eth0\"]\n")
                .unwrap();
        let service = ServiceConfig::new(web());
        doc.add_service(&service).unwrap();
        let text = doc.to_text();
        assert!(text.starts_with("# just the basics\n"));
        let config = parse(&text, "t", &AnyInterface).unwrap();
        assert_eq!(config.services, [service]);
    }

    #[test]
    fn add_existing_service_fails_comparing_parsed_values() {
        let mut doc = document();
        let err = doc.add_service(&ServiceConfig::new(dns())).unwrap_err();
        assert_eq!(err, EditError::ServiceExists(dns()));
        assert_eq!(
            err.to_string(),
            "service [2001:db8::53]:53/udp already exists"
        );
        assert_eq!(doc.to_text(), ORIGINAL);
    }

    #[test]
    fn remove_service() {
        let mut doc = document();
        doc.remove_service(&web()).unwrap();
        let config = reparse(&doc);
        assert_eq!(config.services.len(), 1);
        assert_eq!(config.services[0].addr, dns());
        let text = doc.to_text();
        assert!(!text.contains("First web real"), "{text}");
        assert!(text.contains("# DNS, written by hand"), "{text}");

        doc.remove_service(&dns()).unwrap();
        assert!(reparse(&doc).services.is_empty());
        assert_eq!(
            doc.remove_service(&dns()),
            Err(EditError::ServiceNotFound(dns()))
        );
    }

    #[test]
    fn remove_service_needs_the_protocol_to_match() {
        let mut doc = document();
        let udp_web = ServiceAddr {
            protocol: Protocol::Udp,
            ..web()
        };
        let err = doc.remove_service(&udp_web).unwrap_err();
        assert_eq!(err.to_string(), "service 192.0.2.10:80/udp not found");
    }

    #[test]
    fn add_real_after_the_existing_ones() {
        let mut doc = document();
        let real = RealConfig {
            weight: 3,
            ..RealConfig::new(ip("198.51.100.13"), 80)
        };
        doc.add_real(&web(), &real).unwrap();
        let config = reparse(&doc);
        let service = config.service(&web()).unwrap();
        assert_eq!(service.reals.len(), 3);
        assert_eq!(service.reals[2], real);
        assert!(doc.to_text().contains("weight = 5 # heavier box"));
    }

    #[test]
    fn add_first_real_to_a_service() {
        let mut doc = document();
        let real = RealConfig::new(ip("2001:db8:1::11"), 53);
        doc.add_real(&dns(), &real).unwrap();
        let config = reparse(&doc);
        assert_eq!(config.service(&dns()).unwrap().reals, [real]);
        // It went under the DNS service, not the web one.
        assert_eq!(config.service(&web()).unwrap().reals.len(), 2);
    }

    #[test]
    fn add_existing_real_fails() {
        let mut doc = document();
        // Port 80 is implied by the file for .11 and written for .12.
        for addr in ["198.51.100.11", "198.51.100.12"] {
            let err = doc
                .add_real(&web(), &RealConfig::new(ip(addr), 80))
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("real {addr}:80 already exists in service 192.0.2.10:80/tcp")
            );
        }
        let missing = ServiceAddr { port: 81, ..web() };
        assert_eq!(
            doc.add_real(&missing, &RealConfig::new(ip("198.51.100.11"), 81)),
            Err(EditError::ServiceNotFound(missing))
        );
        assert_eq!(doc.to_text(), ORIGINAL);
    }

    #[test]
    fn remove_real() {
        let mut doc = document();
        doc.remove_real(&web(), ip("198.51.100.11"), 80).unwrap();
        let config = reparse(&doc);
        let reals = &config.service(&web()).unwrap().reals;
        assert_eq!(reals.len(), 1);
        assert_eq!(reals[0].addr, ip("198.51.100.12"));
        assert!(!doc.to_text().contains("First web real"));

        doc.remove_real(&web(), ip("198.51.100.12"), 80).unwrap();
        let config = reparse(&doc);
        assert!(config.service(&web()).unwrap().reals.is_empty());
        assert!(!doc.to_text().contains("[[service.real]]"));

        let err = doc
            .remove_real(&web(), ip("198.51.100.12"), 80)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "real 198.51.100.12:80 not found in service 192.0.2.10:80/tcp"
        );
    }

    #[test]
    fn remove_real_of_another_port_is_not_found() {
        let mut doc = document();
        let err = doc
            .remove_real(&web(), ip("198.51.100.11"), 8080)
            .unwrap_err();
        assert_eq!(
            err,
            EditError::RealNotFound {
                service: web(),
                real: "198.51.100.11:8080".into()
            }
        );
    }

    #[test]
    fn set_weight_in_place_or_added() {
        let mut doc = document();
        doc.set_weight(&web(), ip("198.51.100.11"), 80, 0).unwrap();
        doc.set_weight(&web(), ip("198.51.100.12"), 80, 65_535)
            .unwrap();
        let config = reparse(&doc);
        let reals = &config.service(&web()).unwrap().reals;
        assert_eq!((reals[0].weight, reals[1].weight), (0, 65_535));
        let text = doc.to_text();
        assert!(text.contains("weight = 0 # heavier box\n"), "{text}");

        let err = doc
            .set_weight(&dns(), ip("2001:db8:1::11"), 53, 1)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "real [2001:db8:1::11]:53 not found in service [2001:db8::53]:53/udp"
        );
    }

    #[test]
    fn inline_services_and_reals_are_edited_too() {
        let text = "service = [{ vip = \"192.0.2.10\", port = 80, real = [{ address = \"198.51.100.11\" }] }, { vip = \"2001:db8::53\", port = 53, protocol = \"udp\" }]\n[dataplane]\ninterfaces = [\"eth0\"]\n";
        let mut doc = ConfigDocument::parse(text).unwrap();
        doc.add_real(&web(), &RealConfig::new(ip("198.51.100.12"), 80))
            .unwrap();
        doc.set_weight(&web(), ip("198.51.100.11"), 80, 9).unwrap();
        doc.add_real(&dns(), &RealConfig::new(ip("2001:db8:1::11"), 53))
            .unwrap();
        doc.add_service(&ServiceConfig::new(ServiceAddr { port: 81, ..web() }))
            .unwrap();
        let edited = doc.to_text();
        let config = parse(&edited, "t", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{edited}"));
        let web_reals = &config.service(&web()).unwrap().reals;
        assert_eq!(
            web_reals
                .iter()
                .map(|r| (r.name(), r.weight))
                .collect::<Vec<_>>(),
            [
                ("198.51.100.11:80".to_owned(), 9),
                ("198.51.100.12:80".to_owned(), 1)
            ]
        );
        assert_eq!(config.service(&dns()).unwrap().reals.len(), 1);
        assert_eq!(config.services.len(), 3);
        doc.remove_real(&web(), ip("198.51.100.11"), 80).unwrap();
        doc.remove_service(&dns()).unwrap();
        let config = parse(&doc.to_text(), "t", &AnyInterface).unwrap();
        assert_eq!(config.services.len(), 2);
        assert_eq!(config.service(&web()).unwrap().reals.len(), 1);
    }

    /// A file whose web service has health settings, a check table and
    /// reals with their own checks (as a header table and inline).
    const WITH_CHECKS: &str = r#"[dataplane]
interfaces = ["eth0"]

[[service]]
vip = "192.0.2.10"
port = 80
on_down = "keep"
slow_start = "30s" # ramp up
fallback = "198.51.100.99"

[service.check] # probe the app, not just the port
kind = "http"
path = "/healthz"
interval = "2s"

[service.damping]
penalty = 500

[[service.real]]
address = "198.51.100.11"
weight = 5

[service.real.check]
port = 8080 # the admin port

[[service.real]]
address = "198.51.100.12"
check = { kind = "tcp" }

[[service.real]]
address = "198.51.100.13"

# DNS.
[[service]]
vip = "2001:db8::53"
port = 53
protocol = "udp"

[service.check]
kind = "none"
"#;

    /// Parses and checks that the health settings of `WITH_CHECKS` are
    /// intact.
    fn with_checks_kept(doc: &ConfigDocument) -> Config {
        let text = doc.to_text();
        for kept in [
            "[service.check] # probe the app, not just the port\nkind = \"http\"\npath = \"/healthz\"\ninterval = \"2s\"\n",
            "[service.damping]\npenalty = 500\n",
            "slow_start = \"30s\" # ramp up\n",
            "[service.check]\nkind = \"none\"\n",
        ] {
            assert!(text.contains(kept), "{kept}\n---\n{text}");
        }
        let config =
            parse(&text, "edited.toml", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let before = parse(WITH_CHECKS, "o", &AnyInterface).unwrap();
        let (web_now, web_before) = (
            config.service(&web()).unwrap(),
            before.service(&web()).unwrap(),
        );
        assert_eq!(web_now.check, web_before.check);
        assert_eq!(web_now.on_down, web_before.on_down);
        assert_eq!(web_now.slow_start, web_before.slow_start);
        assert_eq!(web_now.fallback, web_before.fallback);
        assert_eq!(web_now.damping, web_before.damping);
        assert_eq!(
            config.service(&dns()).unwrap().check,
            before.service(&dns()).unwrap().check
        );
        for real in &web_now.reals {
            if let Some(old) = web_before.real(real.addr, real.port) {
                assert_eq!(real.check, old.check, "{}", real.name());
            }
        }
        config
    }

    #[test]
    fn edits_keep_check_tables() {
        let before = parse(WITH_CHECKS, "o", &AnyInterface).unwrap();
        let reals = &before.service(&web()).unwrap().reals;
        assert_eq!(reals[0].check.as_ref().and_then(|c| c.port), Some(8080));
        assert_eq!(
            reals[1].check.as_ref().map(|c| &c.kind),
            Some(&CheckKind::Tcp)
        );

        let mut doc = ConfigDocument::parse(WITH_CHECKS).unwrap();
        assert_eq!(doc.to_text(), WITH_CHECKS);
        doc.set_weight(&web(), ip("198.51.100.11"), 80, 7).unwrap();
        doc.set_weight(&web(), ip("198.51.100.12"), 80, 3).unwrap();
        let config = with_checks_kept(&doc);
        let reals = &config.service(&web()).unwrap().reals;
        assert_eq!((reals[0].weight, reals[1].weight), (7, 3));
        assert!(
            doc.to_text()
                .contains("[service.real.check]\nport = 8080 # the admin port\n")
        );

        let added = RealConfig::new(ip("198.51.100.14"), 80);
        doc.add_real(&web(), &added).unwrap();
        doc.add_real(&dns(), &RealConfig::new(ip("2001:db8:1::1"), 53))
            .unwrap();
        let config = with_checks_kept(&doc);
        let web_service = config.service(&web()).unwrap();
        assert_eq!(web_service.reals.len(), 4);
        // The new real is last and inherits the service's check.
        assert_eq!(web_service.reals[3], added);
        assert_eq!(
            web_service.check_for(&web_service.reals[3]),
            &web_service.check
        );
        assert_eq!(config.service(&dns()).unwrap().reals.len(), 1);

        // Removing the real with the [service.real.check] table removes the
        // table with it, and only it.
        doc.remove_real(&web(), ip("198.51.100.11"), 80).unwrap();
        doc.remove_real(&web(), ip("198.51.100.13"), 80).unwrap();
        let config = with_checks_kept(&doc);
        let text = doc.to_text();
        assert!(!text.contains("[service.real.check]"), "{text}");
        assert!(!text.contains("8080"), "{text}");
        let names: Vec<String> = config
            .service(&web())
            .unwrap()
            .reals
            .iter()
            .map(RealConfig::name)
            .collect();
        assert_eq!(names, ["198.51.100.12:80", "198.51.100.14:80"]);
        doc.remove_service(&dns()).unwrap();
        let text = doc.to_text();
        assert!(!text.contains("kind = \"none\""), "{text}");
        parse(&text, "t", &AnyInterface).unwrap();
    }

    #[test]
    fn added_services_keep_their_health_settings() {
        let mut service = ServiceConfig::new(ServiceAddr {
            vip: ip("192.0.2.30"),
            port: 443,
            protocol: Protocol::Tcp,
        });
        service.on_down = OnDown::Keep;
        service.min_primaries = 2;
        service.slow_start = Some(Duration::from_secs(90));
        service.fallback = Some(FallbackConfig {
            addr: ip("198.51.100.99"),
            mac: Some([2, 0, 0, 0, 0, 0x99]),
        });
        service.drain_timeout = Duration::from_secs(20);
        service.damping = Some(DampingConfig {
            penalty: 10,
            ..DampingConfig::default()
        });
        let https = HttpCheck {
            path: "/healthz".into(),
            host: Some("www.example.com".into()),
            expect_status: vec![200, 204],
            expect_body: Some("ok".into()),
            verify_tls: false,
        };
        service.check = CheckSpec {
            kind: CheckKind::Https(https.clone()),
            port: Some(8443),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 3,
            ..CheckSpec::default()
        };
        let real = |last: u8, check: Option<CheckSpec>| RealConfig {
            check,
            ..RealConfig::new(IpAddr::from([198, 51, 100, last]), 443)
        };
        service.reals = vec![
            real(1, None),
            // Same kind, other fields.
            real(
                2,
                Some(CheckSpec {
                    kind: CheckKind::Https(HttpCheck {
                        path: "/other".into(),
                        verify_tls: true,
                        ..https.clone()
                    }),
                    fall: 5,
                    ..service.check.clone()
                }),
            ),
            // Another kind: the HTTP fields go, the timers stay.
            real(
                3,
                Some(CheckSpec {
                    kind: CheckKind::Tcp,
                    ..service.check.clone()
                }),
            ),
            // http keeps the path, host, statuses and body.
            real(
                4,
                Some(CheckSpec {
                    kind: CheckKind::Http(HttpCheck {
                        verify_tls: true,
                        ..https.clone()
                    }),
                    ..service.check.clone()
                }),
            ),
            real(
                5,
                Some(CheckSpec {
                    kind: CheckKind::Command {
                        program: "/usr/local/bin/check".into(),
                        args: vec!["--quick".into(), "two words".into()],
                    },
                    port: Some(9000),
                    interval: Duration::from_secs(5),
                    fast_interval: crate::health::spec::DEFAULT_FAST_INTERVAL,
                    timeout: Duration::from_secs(4),
                    ..CheckSpec::default()
                }),
            ),
            real(
                6,
                Some(CheckSpec {
                    kind: CheckKind::None,
                    ..CheckSpec::default()
                }),
            ),
        ];
        let mut doc = document();
        doc.add_service(&service).unwrap();
        let config = reparse(&doc);
        assert_eq!(config.services[2], service, "{}", doc.to_text());
    }

    #[test]
    fn a_default_service_writes_no_health_settings() {
        let mut doc = document();
        doc.add_service(&ServiceConfig::new(ServiceAddr { port: 81, ..web() }))
            .unwrap();
        let text = doc.to_text();
        let added = &text[text.find("port = 81").unwrap()..text.find("[timeouts]").unwrap()];
        assert_eq!(
            added,
            "port = 81\nprotocol = \"tcp\"\nscheduler = \"wlc\"\n\n"
        );
    }

    #[test]
    fn an_added_real_with_its_own_check_writes_every_field() {
        let mut doc = ConfigDocument::parse(WITH_CHECKS).unwrap();
        // Whatever the service's check says, the real's is what it gets.
        let check = CheckSpec {
            kind: CheckKind::Https(HttpCheck {
                path: "/".into(),
                host: None,
                expect_status: vec![],
                expect_body: None,
                verify_tls: true,
            }),
            ..CheckSpec::default()
        };
        let real = RealConfig {
            check: Some(check.clone()),
            ..RealConfig::new(ip("198.51.100.20"), 80)
        };
        doc.add_real(&web(), &real).unwrap();
        let config = with_checks_kept(&doc);
        let web_service = config.service(&web()).unwrap();
        let added = web_service.real(ip("198.51.100.20"), 80).unwrap();
        assert_eq!(web_service.check_for(added), &check, "{}", doc.to_text());

        // Into an inline array of reals: an inline check table.
        let text = "service = [{ vip = \"192.0.2.10\", port = 80, check = { kind = \"http\", path = \"/x\" }, real = [{ address = \"198.51.100.11\", check = { port = 81 } }] }]\n[dataplane]\ninterfaces = [\"eth0\"]\n";
        let mut doc = ConfigDocument::parse(text).unwrap();
        doc.add_real(&web(), &real).unwrap();
        doc.set_weight(&web(), ip("198.51.100.11"), 80, 2).unwrap();
        let edited = doc.to_text();
        assert!(edited.contains("check = { kind = \"https\", "), "{edited}");
        let config = parse(&edited, "t", &AnyInterface).unwrap_or_else(|e| panic!("{e}\n{edited}"));
        let web_service = config.service(&web()).unwrap();
        assert_eq!(
            web_service.reals[0].check.as_ref().and_then(|c| c.port),
            Some(81)
        );
        assert_eq!(web_service.reals[0].weight, 2);
        assert_eq!(web_service.check_for(&web_service.reals[1]), &check);
    }

    #[test]
    fn unsupported_shapes_are_reported() {
        let mut doc = ConfigDocument::parse("service = 5\n").unwrap();
        let err = doc.remove_service(&web()).unwrap_err();
        assert!(matches!(err, EditError::Unsupported(_)), "{err}");
    }
}
