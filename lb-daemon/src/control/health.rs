//! The controller's side of health checking: which reals the checker
//! probes, what a probe result changes, and how health shows in `spec`.

use std::time::{Duration, Instant};

use super::{ControlError, Controller};
use crate::{
    balancer::model::{RealKey, ServiceAddr},
    config::DampingConfig,
    health::{
        damping::Damping,
        scheduler::{HealthEvent, Target},
        state::Health,
    },
};

/// What the controller knows about one real's health.
#[derive(Clone, Debug, Default)]
pub struct RealHealth {
    pub down: bool,
    /// When it last came up (for slow start).
    pub up_since: Option<Instant>,
    /// Why it last changed state, in words.
    pub reason: Option<String>,
}

impl Controller {
    /// Every real the checker should probe, with its check. Reals start up
    /// (as with keepalived): a restarted lbd keeps serving, and a real added
    /// with lbctl takes connections at once; a dead one is out within the
    /// detection time.
    #[must_use]
    pub fn health_targets(&self) -> Vec<Target> {
        self.config
            .services
            .iter()
            .flat_map(|service| {
                service.reals.iter().map(move |real| {
                    let key = RealKey::new(service.addr, real.socket());
                    let down = self.health.get(&key).is_some_and(|h| h.down);
                    Target {
                        key,
                        addr: key.real,
                        spec: service.check_for(real).clone(),
                        initial: if down { Health::Down } else { Health::Up },
                    }
                })
            })
            .collect()
    }

    /// The checker's flap damping: the first service's `[service.damping]`
    /// (the checker applies one setting to every real).
    #[must_use]
    pub fn damping(&self) -> Option<Damping> {
        self.config
            .services
            .iter()
            .find_map(|s| s.damping)
            .map(|d: DampingConfig| Damping {
                penalty_per_flap: f64::from(d.penalty),
                suppress: f64::from(d.suppress),
                reuse: f64::from(d.reuse),
                half_life: d.half_life,
                max_suppress: d.max_suppress,
            })
    }

    /// A probe result. Reprograms the real's service when its health
    /// changed; returns that service.
    pub fn on_health(&mut self, event: &HealthEvent) -> Result<Option<ServiceAddr>, ControlError> {
        let Some(transition) = event.transition else {
            return Ok(None);
        };
        let addr = event.key.service;
        let Some(service) = self.config.service(&addr).cloned() else {
            return Ok(None); // removed meanwhile
        };
        let entry = self.health.entry(event.key).or_default();
        entry.down = transition.to == Health::Down;
        entry.up_since = (!entry.down).then(Instant::now);
        entry.reason.clone_from(&event.reason);
        self.lb.apply(&self.spec(&service))?;
        Ok(Some(addr))
    }

    /// Health facts of a real (defaults: up, steady).
    pub(super) fn real_health(&self, real: &RealKey) -> Option<&RealHealth> {
        self.health.get(real)
    }

    /// Services with a real still ramping up under slow start: the daemon
    /// reprograms them every second until the ramp ends.
    #[must_use]
    pub fn ramping_services(&self) -> Vec<ServiceAddr> {
        self.config
            .services
            .iter()
            .filter(|s| {
                let Some(total) = s.slow_start else {
                    return false;
                };
                s.reals.iter().any(|r| {
                    self.real_health(&RealKey::new(s.addr, r.socket()))
                        .and_then(|h| h.up_since)
                        .is_some_and(|t| t.elapsed() < total + Duration::from_secs(1))
                })
            })
            .map(|s| s.addr)
            .collect()
    }

    /// Reprograms the services still in slow start.
    pub fn ramp(&mut self) -> Result<(), ControlError> {
        for addr in self.ramping_services() {
            if let Some(service) = self.config.service(&addr).cloned() {
                self.lb.apply(&self.spec(&service))?;
            }
        }
        Ok(())
    }

    /// Every configured real.
    #[must_use]
    pub fn configured_reals(&self) -> std::collections::HashSet<RealKey> {
        self.config
            .services
            .iter()
            .flat_map(|s| {
                s.reals
                    .iter()
                    .map(move |r| RealKey::new(s.addr, r.socket()))
            })
            .collect()
    }

    /// Forgets the health of reals no longer configured.
    pub fn forget_unused_health(&mut self) {
        let keys = self.configured_reals();
        self.health.retain(|k, _| keys.contains(k));
    }
}
