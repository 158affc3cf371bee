//! `[dataplane]`: where the XDP program runs and how big its maps are.
//! Every key needs a restart to change.

use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;

use serde::Deserialize;
use toml::Spanned;

use super::errors::Checker;
use super::values::{Bool, Int, Text, Value};

/// Most interfaces `dataplane.interfaces` may list.
pub const MAX_INTERFACES: usize = 8;
/// `dataplane.conntrack_size` when not given, and its allowed range.
pub const DEFAULT_CONNTRACK_SIZE: u32 = 1_000_000;
pub const CONNTRACK_SIZE_RANGE: RangeInclusive<u32> = 1024..=100_000_000;
/// `dataplane.max_reals` when not given, and its allowed range.
pub const DEFAULT_MAX_REALS: u32 = 65_536;
pub const MAX_REALS_RANGE: RangeInclusive<u32> = 16..=1_048_576;
/// `dataplane.max_services` when not given, and its allowed range.
pub const DEFAULT_MAX_SERVICES: u32 = 1024;
pub const MAX_SERVICES_RANGE: RangeInclusive<u32> = 1..=65_536;

/// `dataplane.xdp_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpModeConfig {
    /// Native XDP in the NIC driver.
    #[default]
    Driver,
    /// Generic (skb) XDP: works everywhere, much slower.
    Generic,
}

impl XdpModeConfig {
    /// The name in the file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            XdpModeConfig::Driver => "driver",
            XdpModeConfig::Generic => "generic",
        }
    }
}

impl fmt::Display for XdpModeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `[dataplane]`: where the XDP program runs and how big its maps are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// 1 to [`MAX_INTERFACES`] distinct existing interfaces (empty only in
    /// [`Default`]; a parsed file always has at least one).
    pub interfaces: Vec<String>,
    pub xdp_mode: XdpModeConfig,
    /// Attach in generic mode (with a warning) when driver mode fails.
    pub xdp_fallback: bool,
    /// Connection-table entries.
    pub conntrack_size: u32,
    pub max_reals: u32,
    pub max_services: u32,
    /// Log the data path's rare events (no usable real, connection table
    /// full, ICMP error without a flow); applied at once on reload.
    pub log_events: bool,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            xdp_mode: XdpModeConfig::Driver,
            xdp_fallback: true,
            conntrack_size: DEFAULT_CONNTRACK_SIZE,
            max_reals: DEFAULT_MAX_REALS,
            max_services: DEFAULT_MAX_SERVICES,
            log_events: false,
        }
    }
}

impl DataplaneConfig {
    /// The dotted names of the keys that differ from `new`: the program is
    /// attached and its maps are sized once, at startup.
    pub(super) fn restart_required(&self, new: &Self) -> Vec<&'static str> {
        [
            ("dataplane.interfaces", self.interfaces != new.interfaces),
            ("dataplane.xdp_mode", self.xdp_mode != new.xdp_mode),
            (
                "dataplane.xdp_fallback",
                self.xdp_fallback != new.xdp_fallback,
            ),
            (
                "dataplane.conntrack_size",
                self.conntrack_size != new.conntrack_size,
            ),
            ("dataplane.max_reals", self.max_reals != new.max_reals),
            (
                "dataplane.max_services",
                self.max_services != new.max_services,
            ),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
    }
}

/// `[dataplane]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [dataplane] table")]
struct RawDataplane {
    interfaces: Option<Spanned<Vec<Text>>>,
    xdp_mode: Option<Text>,
    xdp_fallback: Option<Bool>,
    conntrack_size: Option<Int>,
    max_reals: Option<Int>,
    max_services: Option<Int>,
    log_events: Option<Bool>,
}

impl Checker<'_> {
    pub(super) fn dataplane(&mut self, value: &Value<'_>) -> DataplaneConfig {
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
        if let Some(log) = &raw.log_events {
            dataplane.log_events = *log.get_ref();
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

    /// `max_services` and `max_reals`, known only once the whole file is
    /// read: `services` and `reals` are the header offset and path of every
    /// service and real table, valid or not.
    pub(super) fn limits(
        &mut self,
        dataplane: &DataplaneConfig,
        services: &[(usize, String)],
        reals: &[(usize, String)],
    ) {
        let checks = [
            ("services", "max_services", dataplane.max_services, services),
            ("reals", "max_reals", dataplane.max_reals, reals),
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
