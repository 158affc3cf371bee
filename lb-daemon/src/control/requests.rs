//! `lbctl` changes as edits of the configuration: one method per change,
//! called by the daemon's dispatch (`daemon::controller_loop`).

use std::net::{IpAddr, SocketAddr};

use super::{ControlError, Controller};
use crate::{
    admin::{ChangeResult, parse_real, parse_service},
    balancer::model::{RealKey, Scheduler, ServiceAddr},
    config::{ConfigDiff, RealConfig, ServiceConfig, parse_mac},
    sched::maglev,
};

impl Controller {
    /// `lbctl reload`: the file read again, the difference applied.
    pub fn reload_request(&mut self) -> Result<ChangeResult, ControlError> {
        let diff = self.reload()?;
        Ok(done(describe(&diff), None))
    }

    /// `lbctl service add`: a service without reals.
    pub fn add_service(
        &mut self,
        service: &str,
        scheduler: Option<&str>,
        table_size: Option<u32>,
    ) -> Result<ChangeResult, ControlError> {
        let addr = parse_service(service).map_err(ControlError::Argument)?;
        let scheduler = match scheduler {
            Some(name) => name
                .parse::<Scheduler>()
                .map_err(|e| ControlError::Argument(e.to_string()))?,
            None => Scheduler::WeightedLeastConnection,
        };
        let config = ServiceConfig {
            addr,
            scheduler,
            table_size: table_size.unwrap_or(maglev::DEFAULT_SIZE),
            ..ServiceConfig::new(addr)
        };
        self.change(|doc| doc.add_service(&config))?;
        Ok(done(format!("added service {addr} ({scheduler})"), None))
    }

    /// `lbctl service remove`: its flows finish on their reals.
    pub fn remove_service(&mut self, service: &str) -> Result<ChangeResult, ControlError> {
        let addr = parse_service(service).map_err(ControlError::Argument)?;
        self.change(|doc| doc.remove_service(&addr))?;
        Ok(done(format!("removed service {addr}"), None))
    }

    /// `lbctl real remove`: its established flows continue.
    pub fn remove_real(&mut self, service: &str, real: &str) -> Result<ChangeResult, ControlError> {
        let key = Self::real_arg(service, real)?;
        let (addr, real) = (key.service, key.real);
        self.change(|doc| doc.remove_real(&addr, real.ip(), real.port()))?;
        let active = self.active_on(&key);
        Ok(done(
            format!("removed real {real} from {addr}; its {active} established flows continue"),
            Some(active),
        ))
    }

    /// `lbctl real weight`; a new weight ends a drain.
    pub fn set_weight(
        &mut self,
        service: &str,
        real: &str,
        weight: u32,
    ) -> Result<ChangeResult, ControlError> {
        let key = Self::real_arg(service, real)?;
        let (addr, real) = (key.service, key.real);
        self.change(|doc| doc.set_weight(&addr, real.ip(), real.port(), weight))?;
        // A new weight ends a drain: the operator wants it serving.
        self.drains.remove(&key);
        Ok(done(
            format!("weight of {real} in {addr} set to {weight}"),
            None,
        ))
    }

    /// `lbctl real drain`: weight 0, removed once its flows end (or at the
    /// service's `drain_timeout`).
    pub fn drain(&mut self, service: &str, real: &str) -> Result<ChangeResult, ControlError> {
        let key = Self::real_arg(service, real)?;
        let (addr, real) = (key.service, key.real);
        self.change(|doc| doc.set_weight(&addr, real.ip(), real.port(), 0))?;
        let active = self.active_on(&key);
        let timeout = self
            .config
            .service(&addr)
            .map_or(crate::config::DEFAULT_DRAIN_TIMEOUT, |s| s.drain_timeout);
        self.drains.insert(key, std::time::Instant::now() + timeout);
        Ok(done(
            format!(
                "draining {real} in {addr}: no new connections, {active} established \
                 flows left; removed when they end or in {}",
                crate::config::format_duration(timeout)
            ),
            Some(active),
        ))
    }

    /// `lbctl real add`: in rotation as soon as its MAC is known (with
    /// `start_down`, once `rise` checks passed too).
    pub fn add_real(
        &mut self,
        service: &str,
        real: &str,
        weight: Option<u32>,
        backup: bool,
        mac: Option<String>,
    ) -> Result<ChangeResult, ControlError> {
        let addr = parse_service(service).map_err(ControlError::Argument)?;
        let (ip, port) = parse_real(real, addr.port).map_err(ControlError::Argument)?;
        let mac = mac
            .map(|m| parse_mac(&m))
            .transpose()
            .map_err(ControlError::Argument)?;
        let config = RealConfig {
            addr: ip,
            port,
            weight: weight.unwrap_or(1),
            backup,
            mac,
            ..RealConfig::new(ip, port)
        };
        let name = config.name();
        self.change(|doc| doc.add_real(&addr, &config))?;
        let key = RealKey::new(addr, config.socket());
        let note = if self.real_health(&key).is_some_and(|h| h.awaiting_rise) {
            " (start_down: it joins once its checks pass)"
        } else if self.mac_known(&addr, ip) {
            ""
        } else {
            " (its MAC is not resolved yet: it joins once it is)"
        };
        Ok(done(format!("added real {name} to {addr}{note}"), None))
    }

    /// The real an `lbctl real` command names (its port defaults to the
    /// service's).
    fn real_arg(service: &str, real: &str) -> Result<RealKey, ControlError> {
        let addr = parse_service(service).map_err(ControlError::Argument)?;
        let (ip, port) = parse_real(real, addr.port).map_err(ControlError::Argument)?;
        Ok(RealKey::new(addr, SocketAddr::new(ip, port)))
    }

    fn mac_known(&self, service: &ServiceAddr, ip: IpAddr) -> bool {
        self.config
            .service(service)
            .is_some_and(|s| self.mac_of(s, ip).is_some())
    }

    /// Removes drained reals whose flows have ended or whose drain timed
    /// out (the removal is written to the config file like an lbctl
    /// change). Returns what was removed, with the flows left at removal.
    pub fn finish_drains(&mut self) -> Vec<(ServiceAddr, SocketAddr, u64)> {
        let now = std::time::Instant::now();
        let due: Vec<(ServiceAddr, SocketAddr, u64)> = self
            .drains
            .iter()
            .filter_map(|(key, &deadline)| {
                let active = self.active_on(key);
                (active == 0 || now >= deadline).then_some((key.service, key.real, active))
            })
            .collect();
        if due.is_empty() {
            return due;
        }
        // One edit (one validation, one write) for all of them.
        let removal = self.change(|doc| {
            for (addr, real, _) in &due {
                doc.remove_real(addr, real.ip(), real.port())?;
            }
            Ok(())
        });
        match removal {
            Ok(_) => due,
            Err(e) => {
                tracing::warn!(error = %e, "removing drained reals; retrying in a second");
                Vec::new()
            }
        }
    }

    /// Whether a real is being drained.
    #[must_use]
    pub fn is_draining(&self, real: &RealKey) -> bool {
        self.drains.contains_key(real)
    }

    /// Forgets drains of reals the config no longer has (removed by hand,
    /// by a reload, or by the drain itself).
    pub(super) fn prune_drains(&mut self) {
        let config = &self.config;
        self.drains.retain(|key, _| {
            config
                .service(&key.service)
                .is_some_and(|s| s.real(key.real.ip(), key.real.port()).is_some())
        });
    }

    /// Flows currently on a real (also after it was removed).
    fn active_on(&self, real: &RealKey) -> u64 {
        self.lb
            .real_id(real)
            .and_then(|slot| self.lb.dataplane().real_connections(slot).ok())
            .unwrap_or(0)
    }
}

fn done(summary: String, active_connections: Option<u64>) -> ChangeResult {
    ChangeResult {
        summary,
        active_connections,
    }
}

/// One line about what a reload changed.
#[must_use]
pub fn describe(diff: &ConfigDiff) -> String {
    if diff.is_empty() {
        return "no change".into();
    }
    format!(
        "{} services added, {} removed, {} changed, {} unchanged{}{}",
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len(),
        diff.unchanged,
        if diff.timeouts_changed {
            "; timeouts changed"
        } else {
            ""
        },
        match diff.event_log {
            Some(true) => "; data-path event log on",
            Some(false) => "; data-path event log off",
            None => "",
        }
    )
}
