//! `lbctl` edits of services and reals, written into the operator's file.
//!
//! Services and reals are found by their parsed values, the way
//! [`crate::config::parse`] reads them: `vip = "fd00::0200"` matches
//! `fd00::200`, a missing `protocol` is tcp and a real without `port` has
//! the service's. Both `[[service]]`/`[[service.real]]` tables and inline
//! arrays of inline tables are understood.

use std::net::{IpAddr, SocketAddr};

use toml_edit::{Array, ArrayOfTables, Item, Table, TableLike, Value, value};

use super::super::document::{ConfigDocument, EditError, Tables, tables};
use super::super::duration::format_duration;
use super::super::mac::format_mac;
use super::check::check_table;
use super::damping::damping_table;
use super::{
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_MIN_HEALTHY, DEFAULT_MIN_PRIMARIES, DEFAULT_WEIGHT, OnDown,
    RealConfig, ServiceConfig,
};
use crate::balancer::model::{Protocol, ServiceAddr};
use crate::health::spec::CheckSpec;
use crate::sched::maglev;

#[cfg(test)]
mod tests;

impl ConfigDocument {
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
                            real: real.socket(),
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
        real: SocketAddr::new(addr, port),
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
    if service.min_healthy != DEFAULT_MIN_HEALTHY {
        table.insert("min_healthy", value(i64::from(service.min_healthy)));
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
        table.insert("damping", Item::Table(damping_table(&damping)));
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
