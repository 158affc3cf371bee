//! The controller's side of health checking: which reals the checker
//! probes, what a probe result changes, and how health shows in `spec`.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::{ControlError, Controller};
use crate::{
    balancer::model::{RealKey, ServiceAddr},
    config::{Config, DampingConfig},
    health::{
        damping::Damping,
        scheduler::{HealthEvent, Target},
        spec::CheckKind,
        state::Health,
    },
};

impl RealHealth {
    /// Out of rotation for new connections (down, or not yet risen).
    #[must_use]
    pub fn out(&self) -> bool {
        self.down || self.awaiting_rise
    }
}

/// The checker's form of a service's `[service.damping]`.
#[must_use]
pub fn damping(d: DampingConfig) -> Damping {
    Damping {
        penalty_per_flap: f64::from(d.penalty),
        suppress: f64::from(d.suppress),
        reuse: f64::from(d.reuse),
        half_life: d.half_life,
        max_suppress: d.max_suppress,
    }
}

/// Every real of `config` the checker should probe, with its check and its
/// service's flap damping. Reals start up (as with keepalived): a
/// restarted lbd keeps serving, and a real added with lbctl takes
/// connections at once; a dead one is out within the detection time.
#[must_use]
pub fn health_targets(config: &Config, health: &HashMap<RealKey, RealHealth>) -> Vec<Target> {
    config
        .services
        .iter()
        .flat_map(|service| {
            service.reals.iter().map(move |real| {
                let key = RealKey::new(service.addr, real.socket());
                let down = health.get(&key).is_some_and(RealHealth::out);
                Target {
                    key,
                    addr: key.real,
                    spec: service.check_for(real).clone(),
                    initial: if down { Health::Down } else { Health::Up },
                    damping: service.damping.map(damping),
                }
            })
        })
        .collect()
}

/// Gives every real of `config` the controller has no health for yet (a
/// real just added, or every real at start) its starting health: up, or,
/// when its check says `start_down` and `known` does not know it (at start:
/// the adopted data path had no slot for it), waiting for `rise` passing
/// checks.
pub fn admit_new_reals(
    health: &mut HashMap<RealKey, RealHealth>,
    config: &Config,
    known: impl Fn(&RealKey) -> bool,
) {
    for service in &config.services {
        for real in &service.reals {
            let key = RealKey::new(service.addr, real.socket());
            if health.contains_key(&key) {
                continue;
            }
            let check = service.check_for(real);
            let start_down = check.start_down && check.kind != CheckKind::None && !known(&key);
            health.insert(
                key,
                RealHealth {
                    awaiting_rise: start_down,
                    reason: start_down.then(|| {
                        format!(
                            "start_down: no new connections until {} consecutive checks pass",
                            check.rise
                        )
                    }),
                    ..RealHealth::default()
                },
            );
        }
    }
}

/// What the controller knows about one real's health.
#[derive(Clone, Debug, Default)]
pub struct RealHealth {
    /// Its checks failed: no new connections, and its flows move unless
    /// `on_down = "keep"`.
    pub down: bool,
    /// Added with `start_down` and no `rise` checks passed yet: no new
    /// connections; its flows (if any) stay.
    pub awaiting_rise: bool,
    /// When it last came up (for slow start).
    pub up_since: Option<Instant>,
    /// Why it last changed state, in words.
    pub reason: Option<String>,
}

impl Controller {
    /// Every real the checker should probe ([`health_targets`]).
    #[must_use]
    pub fn health_targets(&self) -> Vec<Target> {
        health_targets(&self.config, &self.health)
    }

    /// Each configured real's slot in the data path (those that have one),
    /// for the evidence poller.
    #[must_use]
    pub fn real_slots_in_use(&self) -> Vec<(u32, RealKey)> {
        self.configured_reals()
            .into_iter()
            .filter_map(|key| Some((self.lb.real_id(&key)?, key)))
            .collect()
    }

    /// A real's half-open connections now and retransmitted SYNs so far
    /// (zeros for a real without a slot, or if the maps cannot be read).
    #[must_use]
    pub fn handshake_evidence(&self, key: &RealKey) -> (u64, u64) {
        let Some(slot) = self.lb.real_id(key) else {
            return (0, 0);
        };
        let dp = self.lb.dataplane();
        (
            dp.real_inactive(slot).unwrap_or(0),
            dp.real_syn_retransmits(slot).unwrap_or(0),
        )
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
        entry.awaiting_rise = false;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::tests::ok, health::scheduler::Target};

    /// Two services: `web` with flap damping (the defaults), `api` without.
    const TWO_SERVICES: &str = "\
[[service]]
vip = \"192.0.2.10\"
port = 80
[service.damping]
[[service.real]]
address = \"10.0.0.1\"

[[service]]
vip = \"192.0.2.11\"
port = 80
[[service.real]]
address = \"10.0.0.2\"
";

    fn targets() -> Vec<Target> {
        let text = format!("{}{TWO_SERVICES}", crate::config::tests::MINIMAL);
        health_targets(&ok(&text), &HashMap::new())
    }

    #[test]
    fn each_real_gets_its_own_services_damping() {
        let targets = targets();
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].damping, Some(damping(DampingConfig::default())));
        assert_eq!(targets[0].damping, Some(Damping::default()));
        assert_eq!(targets[1].damping, None);
    }

    /// `web` with `start_down`, `api` without; each with one real.
    fn start_down_config() -> Config {
        let text = format!(
            "{}{}",
            crate::config::tests::MINIMAL,
            TWO_SERVICES.replace(
                "[service.damping]",
                "[service.check]\nstart_down = true\nrise = 3",
            )
        );
        ok(&text)
    }

    #[test]
    fn with_start_down_new_reals_wait_for_rise_and_adopted_ones_do_not() {
        let config = start_down_config();
        let key = |i: usize| {
            let s = &config.services[i];
            RealKey::new(s.addr, s.reals[0].socket())
        };
        // A fresh start: the start_down real waits, the other is up.
        let mut health = HashMap::new();
        admit_new_reals(&mut health, &config, |_| false);
        assert!(health[&key(0)].awaiting_rise && !health[&key(0)].down);
        assert!(health[&key(0)].out());
        assert_eq!(
            health[&key(0)].reason.as_deref(),
            Some("start_down: no new connections until 3 consecutive checks pass")
        );
        assert!(!health[&key(1)].out());
        let targets = health_targets(&config, &health);
        assert_eq!(
            (targets[0].initial, targets[1].initial),
            (Health::Down, Health::Up)
        );
        // A restart on an adopted data path that had the real: it serves.
        let mut adopted = HashMap::new();
        admit_new_reals(&mut adopted, &config, |k| *k == key(0));
        assert!(!adopted[&key(0)].out());
        // A real the controller already has is left as it is (turning
        // start_down on later does not take running reals out).
        let mut running = HashMap::new();
        running.insert(key(0), RealHealth::default());
        admit_new_reals(&mut running, &config, |_| false);
        assert!(!running[&key(0)].out());
    }
}
