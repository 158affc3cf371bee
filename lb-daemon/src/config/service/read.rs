//! Reading the `[[service]]` tables: each service's identity (VIP, port,
//! protocol), scheduler and table size, with its health settings and reals
//! read by `health` and `real`; duplicates refused.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::super::errors::Checker;
use super::super::values::{Int, Text, Value};
use super::capacity::TableUse;
use super::{ServiceConfig, TABLE_SIZE_RANGE};
use crate::balancer::model::{Protocol, Scheduler, ServiceAddr};
use crate::sched::maglev;

/// `[[service]]` as serde sees it (see `values` for why every field is
/// optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[service]] table")]
pub(super) struct RawService {
    pub(super) vip: Option<Text>,
    pub(super) port: Option<Int>,
    pub(super) protocol: Option<Text>,
    pub(super) scheduler: Option<Text>,
    pub(super) table_size: Option<Int>,
    pub(super) on_down: Option<Text>,
    pub(super) min_primaries: Option<Int>,
    pub(super) min_healthy: Option<Int>,
    pub(super) slow_start: Option<Text>,
    pub(super) fallback: Option<Text>,
    pub(super) fallback_mac: Option<Text>,
    pub(super) drain_timeout: Option<Text>,
    /// Only checked to be an array here; each real is deserialized on its
    /// own so that the errors of every real are reported.
    #[allow(dead_code)]
    pub(super) real: Option<Vec<IgnoredAny>>,
    /// `check` and `damping` are deserialized on their own too (by `check`
    /// and `damping`), so that a mistake in them does not hide the errors
    /// of the rest of the service.
    #[allow(dead_code)]
    pub(super) check: Option<IgnoredAny>,
    #[allow(dead_code)]
    pub(super) damping: Option<IgnoredAny>,
}

/// The header offset and dotted path of every service and real table,
/// valid or not, for the `max_services`/`max_reals` checks.
#[derive(Default)]
pub(in crate::config) struct Headers {
    pub(in crate::config) services: Vec<(usize, String)>,
    pub(in crate::config) reals: Vec<(usize, String)>,
}

/// Where a service or real was first defined, for the duplicate message.
pub(super) struct Seen {
    pub(super) offset: usize,
    pub(super) path: String,
}

impl Checker<'_> {
    /// Every `[[service]]`, in file order, without the invalid ones and
    /// duplicates; `headers` gets the header of every table, valid or not.
    pub(in crate::config) fn services(
        &mut self,
        value: &Value<'_>,
        headers: &mut Headers,
    ) -> Vec<ServiceConfig> {
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
            headers.services.push((offset, path.clone()));
            let Some(service) = self.service(&path, item, headers) else {
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

    /// One service. `None` when its address (VIP, port, protocol) is not
    /// valid; otherwise the service, with defaults standing in for invalid
    /// fields and without invalid reals (errors are recorded either way).
    fn service(
        &mut self,
        path: &str,
        item: &Value<'_>,
        headers: &mut Headers,
    ) -> Option<ServiceConfig> {
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
        let reals = self.reals(path, item, vip, port, &health, &mut headers.reals);
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
            min_healthy: health.min_healthy,
            slow_start: health.slow_start,
            fallback,
            drain_timeout: health.drain_timeout,
            damping: health.damping,
        })
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
}
