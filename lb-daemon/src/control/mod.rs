//! The daemon's single owner of state: the running configuration, the
//! balancer that programs the maps, and the MACs learned from the neighbour
//! table. Every change (startup, reload, `lbctl`, a MAC change) goes through
//! here, one at a time, so concurrent `lbctl` commands are serialized.
//!
//! A change is validated as a whole configuration before anything touches
//! the maps; the maps are changed service by service and rolled back if one
//! fails; an `lbctl` change is then written to the config file atomically,
//! so the file always describes the running state.

pub mod effective;
mod health;
mod metrics;
mod requests;
mod status;
mod trace;

pub use status::FlowView;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::{Path, PathBuf},
};

use crate::{
    ageing::{AgeingPlan, Timeouts},
    balancer::{
        AgeingContext, AgeingReport, Balancer, BalancerError,
        model::{RealKey, RealSpec, ServiceAddr, ServiceSpec},
        monotonic_now_ns,
    },
    config::{self, Config, ConfigDiff, ConfigDocument, ConfigErrors, Environment, ServiceConfig},
};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("the change would make the config invalid (line numbers are of the edited file): {0}")]
    InvalidChange(ConfigErrors),
    #[error(transparent)]
    Balancer(#[from] BalancerError),
    /// An lbctl edit refused by the config document (e.g. a real that
    /// already exists).
    #[error(transparent)]
    Edit(#[from] config::EditError),
    /// The running config's text no longer parses as a document
    /// (`toml_edit`'s message).
    #[error("{0}")]
    Document(String),
    #[error("{0}")]
    Argument(String),
    #[error(
        "these settings cannot change while lbd runs (restart lbd to change them): {}; \
         nothing was changed",
        .0.join(", ")
    )]
    RestartRequired(Vec<String>),
    #[error(
        "{0} was edited since lbd loaded it; run `lbctl reload` (or revert the edit) \
         before changing it with lbctl"
    )]
    EditedOnDisk(PathBuf),
    #[error("reading {path}: {source} (nothing was changed)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source} (the change was rolled back)")]
    Persist {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The running state.
pub struct Controller {
    lb: Balancer,
    config: Config,
    /// Text of the config file that `config` was read from (or written as).
    text: String,
    path: PathBuf,
    env: Box<dyn Environment + Send>,
    /// MACs the neighbour table currently resolves: these reals take new
    /// connections.
    macs: BTreeMap<IpAddr, [u8; 6]>,
    /// Last known MACs of reals that are not resolved now (lost from the
    /// neighbour table, or adopted from pinned maps and not confirmed yet):
    /// their established flows keep forwarding there, but they get no new
    /// connections. Losing a MAC for a moment must not reset connections.
    last_known: BTreeMap<IpAddr, [u8; 6]>,
    /// Reals being drained: removed when their flows end or at the deadline.
    drains: std::collections::HashMap<RealKey, std::time::Instant>,
    /// Health of reals, from the checker (absent: up).
    health: std::collections::HashMap<RealKey, health::RealHealth>,
    /// Bumped whenever the running config changes (reload, lbctl, drains):
    /// the daemon re-syncs VIPs, neighbour and health targets only then.
    generation: u64,
    /// Flows left by the last ageing pass: `status` reports it instead of
    /// walking a table of up to millions of entries on every call.
    flow_count: Option<u64>,
    /// Flows in the half-open table after the last ageing pass.
    half_open_count: Option<u64>,
    /// Ageing passes finished (`Status::ageing_passes`).
    ageing_passes: u64,
    /// Half-open flows left in the connection table by the last pass.
    conntrack_half_open: u64,
}

impl Controller {
    /// `config` must have been parsed from `text`, the content of `path`.
    /// `resolved` are MACs the neighbour table confirms now; `last_known`
    /// (e.g. adopted from pinned maps) only keep established flows going.
    #[must_use]
    pub fn new(
        lb: Balancer,
        config: Config,
        text: String,
        path: PathBuf,
        env: Box<dyn Environment + Send>,
        resolved: BTreeMap<IpAddr, [u8; 6]>,
        mut last_known: BTreeMap<IpAddr, [u8; 6]>,
    ) -> Self {
        last_known.retain(|ip, _| !resolved.contains_key(ip));
        let mut health = std::collections::HashMap::new();
        // Reals the adopted data path already has (a restart) are not new:
        // they keep serving while their checks start.
        health::admit_new_reals(&mut health, &config, |key| {
            lb.real_slots(&key.service)
                .is_some_and(|slots| slots.contains_key(&key.real))
        });
        Self {
            lb,
            config,
            text,
            path,
            env,
            macs: resolved,
            last_known,
            flow_count: None,
            half_open_count: None,
            ageing_passes: 0,
            conntrack_half_open: 0,
            generation: 0,
            health,
            drains: std::collections::HashMap::new(),
        }
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes whenever the running config does.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    #[must_use]
    pub fn balancer(&self) -> &Balancer {
        &self.lb
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The VIPs the configuration serves (the director holds them).
    #[must_use]
    pub fn vips(&self) -> BTreeSet<IpAddr> {
        self.config.services.iter().map(|s| s.addr.vip).collect()
    }

    /// Reals whose MAC must come from the neighbour table.
    #[must_use]
    pub fn reals_to_resolve(&self) -> BTreeSet<IpAddr> {
        self.config.addresses_to_resolve()
    }

    /// Reals that need a MAC from the neighbour table and have none yet.
    #[must_use]
    pub fn unresolved_reals(&self) -> Vec<IpAddr> {
        self.reals_to_resolve()
            .into_iter()
            .filter(|ip| !self.macs.contains_key(ip))
            .collect()
    }

    pub fn balancer_mut(&mut self) -> &mut Balancer {
        &mut self.lb
    }

    /// Programs every configured service and removes services the maps
    /// carry but the configuration does not (left by a previous `lbd`).
    pub fn apply_all(&mut self) -> Result<(), ControlError> {
        let stale: Vec<ServiceAddr> = self
            .lb
            .service_addrs()
            .filter(|addr| self.config.service(addr).is_none())
            .copied()
            .collect();
        for addr in stale {
            tracing::info!(service = %addr, "removing service not in the config");
            self.lb.remove(&addr)?;
        }
        for service in self.config.services.clone() {
            self.lb.apply(&self.spec(&service))?;
        }
        Ok(())
    }

    /// A real's MAC appeared, changed or went away: reprogram the services
    /// that use it. Returns them. A MAC that went away is kept as the last
    /// known one, so established flows continue while no new ones come.
    pub fn set_mac(
        &mut self,
        ip: IpAddr,
        mac: Option<[u8; 6]>,
    ) -> Result<Vec<ServiceAddr>, ControlError> {
        let (before, before_last) = (self.macs.clone(), self.last_known.clone());
        let changed = match mac {
            Some(mac) => {
                self.last_known.remove(&ip);
                self.macs.insert(ip, mac) != Some(mac)
            }
            None => match self.macs.remove(&ip) {
                Some(old) => {
                    self.last_known.insert(ip, old);
                    true
                }
                None => false,
            },
        };
        if !changed {
            return Ok(Vec::new());
        }
        let affected: Vec<ServiceConfig> = self
            .config
            .services
            .iter()
            .filter(|s| {
                s.reals.iter().any(|r| r.addr == ip && r.mac.is_none())
                    || s.fallback
                        .as_ref()
                        .is_some_and(|f| f.addr == ip && f.mac.is_none())
            })
            .cloned()
            .collect();
        for service in &affected {
            if let Err(e) = self.lb.apply(&self.spec(service)) {
                // Put the MACs back so the same event is not a no-op later.
                self.macs = before;
                self.last_known = before_last;
                return Err(e.into());
            }
        }
        Ok(affected.iter().map(|s| s.addr).collect())
    }

    /// Forgets MACs of reals no longer configured, so a real added again
    /// later must be resolved afresh before it takes connections.
    pub fn forget_unused_macs(&mut self) {
        let wanted = self.reals_to_resolve();
        self.macs.retain(|ip, _| wanted.contains(ip));
        self.last_known.retain(|ip, _| wanted.contains(ip));
    }

    /// The MAC a real takes new connections at: static, or resolved now.
    #[must_use]
    pub fn mac_of(&self, service: &ServiceConfig, ip: IpAddr) -> Option<[u8; 6]> {
        service
            .reals
            .iter()
            .find(|r| r.addr == ip)
            .and_then(|r| r.mac)
            .or_else(|| self.macs.get(&ip).copied())
    }

    /// What the balancer programs for a configured service: each real's
    /// weight for new connections from its configured weight, health,
    /// MAC, spare status and slow start (`effective`); a real without a
    /// resolved MAC keeps forwarding its flows to its last known MAC; a
    /// down real's flows move (unless `on_down = "keep"`).
    #[must_use]
    pub fn spec(&self, service: &ServiceConfig) -> ServiceSpec {
        let resolved =
            |addr: IpAddr, mac: Option<[u8; 6]>| mac.or_else(|| self.macs.get(&addr).copied());
        let inputs = self.real_inputs(service);
        let policy = effective::Policy {
            min_primaries: service.min_primaries,
            slow_start: service.slow_start,
            reroute_on_down: service.on_down == crate::config::OnDown::Reroute,
        };
        let (weights, _) = effective::effective(&inputs, policy);
        ServiceSpec {
            addr: service.addr,
            scheduler: service.scheduler,
            table_size: service.table_size,
            reals: service
                .reals
                .iter()
                .zip(weights)
                .map(|(r, eff)| RealSpec {
                    addr: r.addr,
                    port: r.port,
                    weight: eff.weight,
                    mac: resolved(r.addr, r.mac).or_else(|| self.last_known.get(&r.addr).copied()),
                    reroute: eff.reroute,
                })
                .collect(),
            fallback: service.fallback.as_ref().map(|f| RealSpec {
                addr: f.addr,
                port: service.addr.port,
                weight: 0,
                mac: resolved(f.addr, f.mac),
                reroute: false,
            }),
        }
    }

    /// The scheduling facts of each of `service`'s reals, in config order.
    fn real_inputs(&self, service: &ServiceConfig) -> Vec<effective::RealInput> {
        service
            .reals
            .iter()
            .map(|r| {
                let key = RealKey::new(service.addr, r.socket());
                let health = self.real_health(&key);
                effective::RealInput {
                    weight: r.weight,
                    backup: r.backup,
                    resolved: r.mac.or_else(|| self.macs.get(&r.addr).copied()).is_some(),
                    down: health.is_some_and(|h| h.down),
                    unproven: health.is_some_and(|h| h.awaiting_rise),
                    draining: self.is_draining(&key),
                    up_for: health.and_then(|h| h.up_since).map(|t| t.elapsed()),
                }
            })
            .collect()
    }

    /// Each service's healthy reals and `min_healthy`, for `[ecmp]`.
    #[must_use]
    pub fn service_health(&self) -> Vec<crate::ecmp::ServiceHealth> {
        self.config
            .services
            .iter()
            .map(|service| crate::ecmp::ServiceHealth {
                service: service.addr,
                healthy: self
                    .real_inputs(service)
                    .iter()
                    .filter(|r| r.serving())
                    .count() as u32,
                min_healthy: service.min_healthy,
            })
            .collect()
    }

    /// Re-reads the config file and applies the difference.
    pub fn reload(&mut self) -> Result<ConfigDiff, ControlError> {
        let (config, text) =
            config::load(&self.path, self.env.as_ref()).map_err(ControlError::Config)?;
        let diff = self.apply_config(&config)?;
        self.config = config;
        self.text = text;
        self.generation += 1;
        self.prune_drains();
        Ok(diff)
    }

    /// Applies `new` in place of the running config: only services that
    /// differ are touched; on failure the ones already changed are put back.
    fn apply_config(&mut self, new: &Config) -> Result<ConfigDiff, ControlError> {
        let diff = config::diff(&self.config, new);
        if !diff.restart_required.is_empty() {
            return Err(ControlError::RestartRequired(diff.restart_required));
        }
        let old = self.config.clone();
        health::admit_new_reals(&mut self.health, new, |_| false);
        let mut undo: Vec<Undo> = Vec::new();
        let result = (|| -> Result<(), BalancerError> {
            if let Some(on) = diff.event_log {
                self.lb.dataplane_mut().set_event_log(on)?;
            }
            for addr in &diff.removed {
                self.lb.remove(addr)?;
                undo.push(Undo::Restore(addr));
            }
            for service in &diff.added {
                self.lb.apply(&self.spec(service))?;
                undo.push(Undo::Remove(service.addr));
            }
            for service in &diff.changed {
                self.lb.apply(&self.spec(service))?;
                undo.push(Undo::Restore(&service.addr));
            }
            Ok(())
        })();
        if let Err(e) = result {
            for step in undo.into_iter().rev() {
                let restored = match step {
                    Undo::Remove(addr) => self.lb.remove(&addr),
                    Undo::Restore(addr) => match old.service(addr) {
                        Some(service) => self.lb.apply(&self.spec(service)),
                        None => Ok(()),
                    },
                };
                if let Err(undo_error) = restored {
                    tracing::error!(error = %undo_error, "rolling back a failed change");
                }
            }
            if diff.event_log.is_some()
                && let Err(undo_error) = self
                    .lb
                    .dataplane_mut()
                    .set_event_log(old.dataplane.log_events)
            {
                tracing::error!(error = %undo_error, "rolling back the event log switch");
            }
            return Err(e.into());
        }
        Ok(diff)
    }

    /// Applies an edit of the config file: edit the text, validate it as a
    /// whole, apply the difference, then write the file atomically (rolling
    /// the maps back if the write fails).
    fn change(
        &mut self,
        edit: impl FnOnce(&mut ConfigDocument) -> Result<(), config::EditError>,
    ) -> Result<ConfigDiff, ControlError> {
        match std::fs::read_to_string(&self.path) {
            Ok(on_disk) if on_disk == self.text => {}
            Ok(_) => return Err(ControlError::EditedOnDisk(self.path.clone())),
            Err(source) => {
                return Err(ControlError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        let mut doc = ConfigDocument::parse(&self.text).map_err(ControlError::Document)?;
        edit(&mut doc)?;
        let text = doc.to_text();
        let source = self.path.display().to_string();
        let new = config::parse(&text, &source, self.env.as_ref())
            .map_err(ControlError::InvalidChange)?;
        let old = self.config.clone();
        let diff = self.apply_config(&new)?;
        if let Err(source) = config::write_atomic(&self.path, &text) {
            let back = config::diff(&new, &old);
            self.config = new;
            let _ = self.apply_config(&old).map_err(|e| {
                tracing::error!(error = %e, ?back, "rolling back after a failed write");
            });
            self.config = old;
            return Err(ControlError::Persist {
                path: self.path.clone(),
                source,
            });
        }
        self.config = new;
        self.text = text;
        self.generation += 1;
        self.prune_drains();
        Ok(diff)
    }

    /// One ageing pass, here and now (the daemon runs the table walk on a
    /// thread of its own: [`Controller::ageing_job`], then
    /// [`Controller::finish_ageing`]).
    pub fn age(&mut self) -> Result<AgeingReport, ControlError> {
        let report = self
            .lb
            .age(monotonic_now_ns(), &self.config.timeouts.ageing())?;
        self.flow_count = Some((report.flows_seen - report.expired) as u64);
        self.half_open_count = Some((report.half_open_seen - report.half_open_expired) as u64);
        self.conntrack_half_open = report.half_open_in_main as u64;
        self.ageing_passes += 1;
        Ok(report)
    }

    /// What an ageing pass started now needs: the timeouts and the
    /// balancer's slots and ids as of now.
    #[must_use]
    pub fn ageing_job(&self) -> (Timeouts, AgeingContext) {
        (self.config.timeouts.ageing(), self.lb.ageing_context())
    }

    /// Finishes a pass whose table walk (with the expired flows deleted)
    /// produced `plan`.
    pub fn finish_ageing(
        &mut self,
        plan: &AgeingPlan,
        context: &AgeingContext,
    ) -> Result<AgeingReport, ControlError> {
        let report = self.lb.finish_ageing(plan, context)?;
        self.flow_count = Some((report.flows_seen - report.expired) as u64);
        self.half_open_count = Some((report.half_open_seen - report.half_open_expired) as u64);
        self.conntrack_half_open = report.half_open_in_main as u64;
        self.ageing_passes += 1;
        Ok(report)
    }
}

enum Undo<'a> {
    Remove(ServiceAddr),
    Restore(&'a ServiceAddr),
}
