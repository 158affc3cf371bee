//! From text to [`Config`]: TOML syntax, then each table through serde
//! (`raw`), then every value into its typed form, collecting every error
//! with the line and dotted path of the value it is about.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::duration::parse_duration;
use super::raw::{
    Bool, DURATION_KEYS, Int, RawDaemon, RawDataplane, RawReal, RawService, RawTimeouts, TOP_LEVEL,
    Text,
};
use super::types::{
    CONNTRACK_SIZE_RANGE, Config, DaemonConfig, DataplaneConfig, MAX_INTERFACES, MAX_REALS_RANGE,
    MAX_SERVICES_RANGE, MAX_WEIGHT, RealConfig, ServiceConfig, TABLE_SIZE_RANGE, TimeoutsConfig,
    XdpModeConfig, parse_mac,
};
use super::{ConfigError, ConfigErrors, Environment};
use crate::balancer::model::{Protocol, Scheduler, ServiceAddr};
use crate::dataplane::{DataplaneLimits, table_footprint};
use crate::sched::maglev;
use health::Health;
use lb_common::MAX_LC_REALS;

mod health;
mod vrrp;

type Value<'i> = Spanned<DeValue<'i>>;

/// Parses and checks a whole file; see [`super::parse`].
pub(super) fn parse(
    text: &str,
    source: &str,
    env: &dyn Environment,
) -> Result<Config, ConfigErrors> {
    let mut checker = Checker::new(text, source, env);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            let mut message = e.message().trim_end().to_owned();
            // Name what the error points at when it is a short token
            // (`duplicate key` does not say which).
            if let Some(token) = text.get(span.clone())
                && !token.is_empty()
                && token.len() <= 60
                && !token.contains('\n')
            {
                message = format!("{message}: `{token}`");
            }
            checker.error(span.start, "", message);
        }
        return Err(checker.finish());
    }
    let config = checker.config(root.get_ref());
    if checker.errors.is_empty() {
        Ok(config)
    } else {
        Err(checker.finish())
    }
}

/// Byte offset to 1-based line.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

/// Collects errors while converting.
struct Checker<'a> {
    source: &'a str,
    lines: Lines,
    env: &'a dyn Environment,
    /// With the byte offset they are about, to sort them into file order.
    errors: Vec<(usize, ConfigError)>,
    /// Header offset and path of every service table and every real table,
    /// valid or not, for the `max_services`/`max_reals` checks.
    service_tables: Vec<(usize, String)>,
    real_tables: Vec<(usize, String)>,
}

/// Scheduling-table slots the services read so far use.
#[derive(Default)]
struct TableUse {
    slots: u64,
    largest: u64,
    lc_services: u32,
    /// Reported once, at the first service that does not fit.
    table_full: bool,
}

/// Where a service or real was first defined, for the duplicate message.
struct Seen {
    offset: usize,
    path: String,
}

impl<'a> Checker<'a> {
    fn new(text: &str, source: &'a str, env: &'a dyn Environment) -> Self {
        Self {
            source,
            lines: Lines::new(text),
            env,
            errors: Vec::new(),
            service_tables: Vec::new(),
            real_tables: Vec::new(),
        }
    }

    fn error(&mut self, offset: usize, field: impl Into<String>, message: impl Into<String>) {
        let error = ConfigError {
            source_name: self.source.to_owned(),
            line: self.lines.line(offset),
            field: field.into(),
            message: message.into(),
        };
        self.errors.push((offset, error));
    }

    fn finish(&mut self) -> ConfigErrors {
        let mut errors = std::mem::take(&mut self.errors);
        errors.sort_by_key(|(offset, _)| *offset);
        ConfigErrors(errors.into_iter().map(|(_, e)| e).collect())
    }

    fn config(&mut self, root: &DeTable<'_>) -> Config {
        let mut config = Config::default();
        let mut dataplane_seen = false;
        for (key, value) in root {
            match key.get_ref().as_ref() {
                "daemon" => config.daemon = self.daemon(value),
                "dataplane" => {
                    dataplane_seen = true;
                    config.dataplane = self.dataplane(value);
                }
                "timeouts" => config.timeouts = self.timeouts(value),
                "vrrp" => config.vrrp = self.vrrp(value),
                "service" => config.services = self.services(value),
                other => self.error(
                    key.span().start,
                    other,
                    format!(
                        "unknown field `{other}`, expected one of {}",
                        quoted(&TOP_LEVEL)
                    ),
                ),
            }
        }
        if !dataplane_seen {
            self.error(
                0,
                "dataplane.interfaces",
                "missing required field `interfaces`: the file has no [dataplane] table \
                 naming the interfaces to attach to",
            );
        }
        self.limits(&config.dataplane);
        if let Some(vrrp) = &config.vrrp {
            self.vrrp_interface(vrrp, &config.dataplane, root);
            self.vrrp_vip_count(vrrp, &config.services, root);
        }
        config
    }

    /// Deserializes one table; on error records it (with the path of the
    /// value it is about) and returns `None`.
    fn section<T: DeserializeOwned>(&mut self, path: &str, value: &Value<'_>) -> Option<T> {
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
                if message.starts_with("invalid type") && DURATION_KEYS.contains(&key) {
                    message.push_str(" (a duration is a string such as \"10s\" or \"1m30s\")");
                }
                self.error(offset, field, message);
                None
            }
        }
    }

    fn daemon(&mut self, value: &Value<'_>) -> DaemonConfig {
        let mut daemon = DaemonConfig::default();
        let Some(raw) = self.section::<RawDaemon>("daemon", value) else {
            return daemon;
        };
        if let Some(path) = self.path("daemon.admin_socket", raw.admin_socket.as_ref()) {
            // sockaddr_un holds 108 bytes including the terminating NUL.
            if path.as_os_str().len() > 107 {
                let offset = raw.admin_socket.as_ref().map_or(0, |t| t.span().start);
                self.error(
                    offset,
                    "daemon.admin_socket",
                    format!(
                        "the path is {} bytes long; a Unix socket path has at most 107",
                        path.as_os_str().len()
                    ),
                );
            } else {
                daemon.admin_socket = path;
            }
        }
        if let Some(path) = self.path("daemon.pin_path", raw.pin_path.as_ref()) {
            daemon.pin_path = path;
        }
        if let Some(text) = &raw.metrics_address {
            match text.get_ref().parse::<SocketAddr>() {
                Ok(addr) => daemon.metrics_address = addr,
                Err(_) => self.error(
                    text.span().start,
                    "daemon.metrics_address",
                    format!(
                        "{:?} is not an address and port (expected IP:PORT, e.g. \
                         \"127.0.0.1:9140\" or \"[::1]:9140\")",
                        text.get_ref()
                    ),
                ),
            }
        }
        if let Some(d) = self.duration("daemon.neighbour_refresh", raw.neighbour_refresh.as_ref()) {
            daemon.neighbour_refresh = d;
        }
        daemon
    }

    fn dataplane(&mut self, value: &Value<'_>) -> DataplaneConfig {
        let mut dataplane = DataplaneConfig::default();
        let Some(raw) = self.section::<RawDataplane>("dataplane", value) else {
            return dataplane;
        };
        match &raw.interfaces {
            None => self.error(
                value.span().start,
                "dataplane.interfaces",
                "missing required field `interfaces` (the interfaces to attach the XDP \
                 program to, e.g. [\"eth0\"])",
            ),
            Some(list) => dataplane.interfaces = self.interfaces(list),
        }
        if let Some(mode) = &raw.xdp_mode {
            match mode.get_ref().as_str() {
                "driver" => dataplane.xdp_mode = XdpModeConfig::Driver,
                "generic" => dataplane.xdp_mode = XdpModeConfig::Generic,
                other => self.error(
                    mode.span().start,
                    "dataplane.xdp_mode",
                    format!("unknown XDP mode {other:?} (expected \"driver\" or \"generic\")"),
                ),
            }
        }
        if let Some(fallback) = &raw.xdp_fallback {
            dataplane.xdp_fallback = *fallback.get_ref();
        }
        let sizes = [
            (
                "conntrack_size",
                &raw.conntrack_size,
                CONNTRACK_SIZE_RANGE,
                &mut dataplane.conntrack_size,
            ),
            (
                "max_reals",
                &raw.max_reals,
                MAX_REALS_RANGE,
                &mut dataplane.max_reals,
            ),
            (
                "max_services",
                &raw.max_services,
                MAX_SERVICES_RANGE,
                &mut dataplane.max_services,
            ),
        ];
        for (key, raw, range, slot) in sizes {
            if let Some(v) = raw
                && let Some(v) = self.int(&format!("dataplane.{key}"), key, v, range)
            {
                *slot = v;
            }
        }
        dataplane
    }

    fn interfaces(&mut self, list: &Spanned<Vec<Text>>) -> Vec<String> {
        let names = list.get_ref();
        if names.is_empty() {
            self.error(
                list.span().start,
                "dataplane.interfaces",
                "at least one interface is required",
            );
        }
        if names.len() > MAX_INTERFACES {
            self.error(
                list.span().start,
                "dataplane.interfaces",
                format!(
                    "too many interfaces: {} (at most {MAX_INTERFACES})",
                    names.len()
                ),
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            let field = format!("dataplane.interfaces[{i}]");
            let offset = name.span().start;
            let text = name.get_ref().as_str();
            if !valid_interface_name(text) {
                self.error(
                    offset,
                    field,
                    format!(
                        "{text:?} is not a valid interface name (1 to 15 characters, \
                         no '/' or whitespace)"
                    ),
                );
            } else if let Some(first) = seen.get(text) {
                self.error(
                    offset,
                    field,
                    format!("duplicate interface {text:?} (also dataplane.interfaces[{first}])"),
                );
            } else {
                seen.insert(text, i);
                if !self.env.interface_exists(text) {
                    self.error(offset, field, format!("interface {text:?} does not exist"));
                }
            }
        }
        names.iter().map(|n| n.get_ref().clone()).collect()
    }

    fn timeouts(&mut self, value: &Value<'_>) -> TimeoutsConfig {
        let mut timeouts = TimeoutsConfig::default();
        let Some(raw) = self.section::<RawTimeouts>("timeouts", value) else {
            return timeouts;
        };
        let fields = [
            ("timeouts.tcp", &raw.tcp, &mut timeouts.tcp),
            (
                "timeouts.tcp_closing",
                &raw.tcp_closing,
                &mut timeouts.tcp_closing,
            ),
            ("timeouts.udp", &raw.udp, &mut timeouts.udp),
            (
                "timeouts.ageing_interval",
                &raw.ageing_interval,
                &mut timeouts.ageing_interval,
            ),
        ];
        for (field, raw, slot) in fields {
            if let Some(d) = self.duration(field, raw.as_ref()) {
                *slot = d;
            }
        }
        timeouts
    }

    fn services(&mut self, value: &Value<'_>) -> Vec<ServiceConfig> {
        let Some(items) = value.get_ref().as_array() else {
            self.error(
                value.span().start,
                "service",
                format!(
                    "expected [[service]] tables (an array of tables), found a {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut services = Vec::new();
        let mut seen: HashMap<ServiceAddr, Seen> = HashMap::new();
        let mut capacity = TableUse::default();
        for (i, item) in items.iter().enumerate() {
            let path = format!("service[{i}]");
            let offset = item.span().start;
            self.service_tables.push((offset, path.clone()));
            let Some(service) = self.service(&path, item) else {
                continue;
            };
            if let Some(first) = seen.get(&service.addr) {
                let message = format!(
                    "duplicate service {} (already defined by {} at line {})",
                    service.addr,
                    first.path,
                    self.lines.line(first.offset)
                );
                self.error(offset, path, message);
                continue;
            }
            self.capacity(&service, offset, &path, &mut capacity);
            seen.insert(service.addr, Seen { offset, path });
            services.push(service);
        }
        services
    }

    /// What the data path can hold besides the configured maxima: lc/wlc
    /// scan at most `MAX_LC_REALS` reals, and the scheduling table (a fixed
    /// `DataplaneLimits::sched_table_size` slots) holds every Maglev/sh ring
    /// plus room to build the largest one anew during a change.
    fn capacity(
        &mut self,
        service: &ServiceConfig,
        offset: usize,
        path: &str,
        used: &mut TableUse,
    ) {
        if service.scheduler.uses_lc_set() && service.reals.len() > MAX_LC_REALS {
            let message = format!(
                "{} scans at most {MAX_LC_REALS} reals per service; this service has {} \
                 (use maglev for larger pools)",
                service.scheduler,
                service.reals.len()
            );
            self.error(offset, format!("{path}.real"), message);
        }
        if service.scheduler.uses_lc_set() {
            used.lc_services += 1;
            // One spare set: a change builds the new set before switching.
            let sets = DataplaneLimits::default().lc_sets;
            if used.lc_services == sets {
                let message = format!(
                    "more than {} lc/wlc services: the data path has {sets} \
                     least-connection sets and needs one spare",
                    sets - 1
                );
                self.error(offset, format!("{path}.scheduler"), message);
            }
        }
        if matches!(service.scheduler, Scheduler::Maglev | Scheduler::SourceHash) {
            let slots = u64::from(table_footprint(service.table_size));
            used.slots += slots;
            used.largest = used.largest.max(slots);
            let limit = u64::from(DataplaneLimits::default().sched_table_size);
            if used.slots + used.largest > limit && !used.table_full {
                used.table_full = true;
                let message = format!(
                    "the Maglev/sh tables of the services so far need {} slots (plus {} to \
                     rebuild one), more than the data path's {limit}: use smaller table_size \
                     values or fewer maglev/sh services",
                    used.slots, used.largest
                );
                self.error(offset, format!("{path}.table_size"), message);
            }
        }
    }

    /// One service. `None` when its address (VIP, port, protocol) is not
    /// valid; otherwise the service, with defaults standing in for invalid
    /// fields and without invalid reals (errors are recorded either way).
    fn service(&mut self, path: &str, item: &Value<'_>) -> Option<ServiceConfig> {
        let raw = self.section::<RawService>(path, item)?;
        let header = item.span().start;
        let vip = self
            .required(
                header,
                path,
                "vip",
                "the service's virtual IP address",
                raw.vip.as_ref(),
            )
            .and_then(|text| self.ip(&format!("{path}.vip"), text));
        let port = self
            .required(
                header,
                path,
                "port",
                "the service's port",
                raw.port.as_ref(),
            )
            .and_then(|v| self.port(&format!("{path}.port"), v));
        let protocol = match &raw.protocol {
            None => Some(Protocol::Tcp),
            Some(text) => match text.get_ref().as_str() {
                "tcp" => Some(Protocol::Tcp),
                "udp" => Some(Protocol::Udp),
                other => {
                    self.error(
                        text.span().start,
                        format!("{path}.protocol"),
                        format!("unknown protocol {other:?} (expected \"tcp\" or \"udp\")"),
                    );
                    None
                }
            },
        };
        let scheduler = match &raw.scheduler {
            None => Some(Scheduler::WeightedLeastConnection),
            Some(text) => match text.get_ref().parse::<Scheduler>() {
                Ok(s) => Some(s),
                Err(e) => {
                    self.error(
                        text.span().start,
                        format!("{path}.scheduler"),
                        e.to_string(),
                    );
                    None
                }
            },
        };
        let table_size = match (&raw.table_size, scheduler) {
            (None, _) | (Some(_), None) => None,
            (Some(size), Some(Scheduler::Maglev | Scheduler::SourceHash)) => {
                self.table_size(&format!("{path}.table_size"), size)
            }
            (Some(size), Some(other)) => {
                self.error(
                    size.span().start,
                    format!("{path}.table_size"),
                    format!(
                        "table_size only applies to the maglev and sh schedulers \
                         (this service uses {other})"
                    ),
                );
                None
            }
        };
        let health = self.health(path, &raw, item);
        let reals = self.reals(path, item, vip, port, &health);
        let fallback = self.fallback(path, &raw, vip, &reals);
        Some(ServiceConfig {
            addr: ServiceAddr {
                vip: vip?,
                port: port?,
                protocol: protocol?,
            },
            scheduler: scheduler.unwrap_or(Scheduler::WeightedLeastConnection),
            table_size: table_size.unwrap_or(maglev::DEFAULT_SIZE),
            reals,
            check: health.check,
            on_down: health.on_down,
            min_primaries: health.min_primaries,
            slow_start: health.slow_start,
            fallback,
            drain_timeout: health.drain_timeout,
            damping: health.damping,
        })
    }

    fn reals(
        &mut self,
        service_path: &str,
        service: &Value<'_>,
        vip: Option<IpAddr>,
        service_port: Option<u16>,
        health: &Health,
    ) -> Vec<RealConfig> {
        let Some(items) = service
            .get_ref()
            .as_table()
            .and_then(|t| t.get("real"))
            .and_then(|r| r.get_ref().as_array())
        else {
            return Vec::new();
        };
        let mut reals = Vec::new();
        let mut seen: HashMap<(IpAddr, u16), Seen> = HashMap::new();
        for (j, item) in items.iter().enumerate() {
            let path = format!("{service_path}.real[{j}]");
            let offset = item.span().start;
            self.real_tables.push((offset, path.clone()));
            let Some(real) = self.real(&path, item, vip, service_port, health) else {
                continue;
            };
            if let Some(first) = seen.get(&(real.addr, real.port)) {
                let message = format!(
                    "duplicate real {} (already defined by {} at line {})",
                    real.name(),
                    first.path,
                    self.lines.line(first.offset)
                );
                self.error(offset, path, message);
                continue;
            }
            seen.insert((real.addr, real.port), Seen { offset, path });
            reals.push(real);
        }
        reals
    }

    /// One real; `None` when its identity (address, port) is not valid.
    fn real(
        &mut self,
        path: &str,
        item: &Value<'_>,
        vip: Option<IpAddr>,
        service_port: Option<u16>,
        health: &Health,
    ) -> Option<RealConfig> {
        let raw = self.section::<RawReal>(path, item)?;
        let header = item.span().start;
        let address = self.required(
            header,
            path,
            "address",
            "the real server's IP address",
            raw.address.as_ref(),
        );
        let addr = address.and_then(|text| self.ip(&format!("{path}.address"), text));
        if let (Some(vip), Some(addr), Some(text)) = (vip, addr, address)
            && vip.is_ipv4() != addr.is_ipv4()
        {
            let (vip_family, real_family) = if vip.is_ipv4() {
                ("IPv4", "IPv6")
            } else {
                ("IPv6", "IPv4")
            };
            self.error(
                text.span().start,
                format!("{path}.address"),
                format!(
                    "{vip_family} VIP {vip} cannot have {real_family} real {addr} \
                     (direct routing keeps the packet's addresses, so a real must be \
                     of the VIP's address family)"
                ),
            );
        }
        let port = match &raw.port {
            None => service_port.or(Some(0)),
            Some(v) => {
                let port = self.port(&format!("{path}.port"), v);
                if let (Some(port), Some(service_port)) = (port, service_port)
                    && port != service_port
                {
                    self.error(
                        v.span().start,
                        format!("{path}.port"),
                        format!(
                            "real port {port} differs from the service port \
                             {service_port}: direct routing forwards packets unchanged \
                             and cannot translate ports (leave `port` out or set it \
                             to {service_port})"
                        ),
                    );
                }
                port
            }
        };
        let weight = raw
            .weight
            .as_ref()
            .and_then(|w| self.int(&format!("{path}.weight"), "weight", w, 0..=MAX_WEIGHT));
        let mac = raw
            .mac
            .as_ref()
            .and_then(|text| match parse_mac(text.get_ref()) {
                Ok(mac) => Some(mac),
                Err(e) => {
                    self.error(text.span().start, format!("{path}.mac"), e);
                    None
                }
            });
        let check = item
            .get_ref()
            .as_table()
            .and_then(|t| t.get("check"))
            .and_then(|value| self.real_check(path, value, &health.check_table, &health.check));
        Some(RealConfig {
            addr: addr?,
            port: port?,
            weight: weight.unwrap_or(super::types::DEFAULT_WEIGHT),
            backup: raw.backup.as_ref().is_some_and(|b: &Bool| *b.get_ref()),
            mac,
            check,
        })
    }

    /// `max_services` and `max_reals`, known only once the whole file is read.
    fn limits(&mut self, dataplane: &DataplaneConfig) {
        let checks = [
            (
                "services",
                "max_services",
                dataplane.max_services,
                std::mem::take(&mut self.service_tables),
            ),
            (
                "reals",
                "max_reals",
                dataplane.max_reals,
                std::mem::take(&mut self.real_tables),
            ),
        ];
        for (what, key, max, tables) in checks {
            if let Some((offset, path)) = tables.get(max as usize) {
                let message = format!(
                    "too many {what}: the file has {}, more than dataplane.{key} = {max}",
                    tables.len()
                );
                self.error(*offset, path.clone(), message);
            }
        }
    }

    // Typed values. Each records its own error and returns `None` on one.

    fn required<'v, T>(
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

    fn ip(&mut self, field: &str, text: &Text) -> Option<IpAddr> {
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

    fn port(&mut self, field: &str, value: &Int) -> Option<u16> {
        self.int(field, "port", value, 1..=u32::from(u16::MAX))
            .map(|p| p as u16)
    }

    fn table_size(&mut self, field: &str, value: &Int) -> Option<u32> {
        let size = self.int(field, "table_size", value, TABLE_SIZE_RANGE)?;
        if maglev::is_prime(size) {
            Some(size)
        } else {
            self.error(
                value.span().start,
                field,
                format!(
                    "table_size {size} is not prime (a maglev table needs a prime size, \
                     e.g. {})",
                    maglev::DEFAULT_SIZE
                ),
            );
            None
        }
    }

    fn int(
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

    fn duration(&mut self, field: &str, text: Option<&Text>) -> Option<Duration> {
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

    fn path(&mut self, field: &str, text: Option<&Text>) -> Option<PathBuf> {
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

fn valid_interface_name(name: &str) -> bool {
    // IFNAMSIZ is 16 with the NUL; the kernel refuses '/' and whitespace.
    (1..16).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == '\0' || c.is_whitespace())
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
