//! `[ecmp]`: when a director announces a VIP to the router. Pure: the
//! daemon (`daemon::announcer`) gathers the inputs after every event and
//! turns the answer into routes.
//!
//! A VIP is announced only when all of these hold, checked in this order
//! (the first that fails is the reason shown):
//! 1. lbd is not stopping (a graceful stop withdraws everything first);
//! 2. the director is not drained (`lbctl director drain`);
//! 3. the peers' flows have arrived, or `learn_delay` has passed, so that
//!    flows the router moves here keep their real;
//! 4. every service on the VIP has at least its `min_healthy` healthy
//!    reals, so that traffic goes to directors that can serve it.
//!
//! The data path is programmed before the announcer exists, so it is not
//! an input.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::balancer::model::ServiceAddr;

/// Why a VIP is not announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Withheld {
    Stopping,
    Drained,
    /// Waiting for the peers' flows (at most `learn_delay`).
    Learning,
    /// `service` has fewer healthy reals than its `min_healthy`.
    TooFewHealthy {
        service: ServiceAddr,
        healthy: u32,
        min_healthy: u32,
    },
}

impl fmt::Display for Withheld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopping => f.write_str("lbd is stopping"),
            Self::Drained => f.write_str("director drained (lbctl director undrain)"),
            Self::Learning => f.write_str("waiting for the peers' flows (learn_delay)"),
            Self::TooFewHealthy {
                service,
                healthy,
                min_healthy,
            } => write!(
                f,
                "{service} has {healthy} healthy real{} (min_healthy {min_healthy})",
                if *healthy == 1 { "" } else { "s" }
            ),
        }
    }
}

/// One VIP's announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VipState {
    Announced,
    Withheld(Withheld),
}

impl VipState {
    #[must_use]
    pub fn is_announced(&self) -> bool {
        *self == Self::Announced
    }
}

impl fmt::Display for VipState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Announced => f.write_str("announced"),
            Self::Withheld(why) => write!(f, "withdrawn: {why}"),
        }
    }
}

/// The director-wide inputs.
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent facts about the director, each a yes/no"
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    pub stopping: bool,
    pub drained: bool,
    pub learned: bool,
}

/// One service's health as far as announcing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceHealth {
    pub service: ServiceAddr,
    /// Reals that take new connections or could (spares included): MAC
    /// known, not down, not drained, weight above 0.
    pub healthy: u32,
    pub min_healthy: u32,
}

/// The state of every VIP that has a service.
#[must_use]
pub fn decide(conditions: Conditions, services: &[ServiceHealth]) -> BTreeMap<IpAddr, VipState> {
    let director_wide = if conditions.stopping {
        Some(Withheld::Stopping)
    } else if conditions.drained {
        Some(Withheld::Drained)
    } else if !conditions.learned {
        Some(Withheld::Learning)
    } else {
        None
    };
    let mut out = BTreeMap::new();
    for s in services {
        let state = out.entry(s.service.vip).or_insert(VipState::Announced);
        if let Some(why) = &director_wide {
            *state = VipState::Withheld(why.clone());
        } else if state.is_announced() && s.healthy < s.min_healthy {
            *state = VipState::Withheld(Withheld::TooFewHealthy {
                service: s.service,
                healthy: s.healthy,
                min_healthy: s.min_healthy,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::model::Protocol;

    fn service(vip: &str, port: u16, healthy: u32, min_healthy: u32) -> ServiceHealth {
        ServiceHealth {
            service: ServiceAddr {
                vip: vip.parse().unwrap(),
                port,
                protocol: Protocol::Tcp,
            },
            healthy,
            min_healthy,
        }
    }

    const READY: Conditions = Conditions {
        stopping: false,
        drained: false,
        learned: true,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_vip_is_announced_only_while_each_of_its_services_has_enough_reals() {
        let services = [
            service("10.0.0.1", 80, 2, 1),
            service("10.0.0.1", 443, 0, 1),
            service("10.0.0.2", 80, 1, 1),
            service("10.0.0.3", 80, 0, 0),
        ];
        let states = decide(READY, &services);
        assert_eq!(states.len(), 3);
        assert_eq!(
            states[&ip("10.0.0.1")].to_string(),
            "withdrawn: 10.0.0.1:443/tcp has 0 healthy reals (min_healthy 1)"
        );
        assert!(states[&ip("10.0.0.2")].is_announced());
        // min_healthy 0: announced whatever the reals' health.
        assert!(states[&ip("10.0.0.3")].is_announced());
        let states = decide(READY, &[service("10.0.0.2", 80, 2, 3)]);
        assert!(!states[&ip("10.0.0.2")].is_announced());
    }

    #[test]
    fn director_wide_reasons_come_first_in_a_fixed_order() {
        let services = [service("10.0.0.1", 80, 0, 1), service("10.0.0.2", 80, 5, 1)];
        let all = |c: Conditions| -> Vec<String> {
            decide(c, &services)
                .values()
                .map(ToString::to_string)
                .collect()
        };
        let learning = Conditions {
            learned: false,
            ..READY
        };
        assert_eq!(
            all(learning),
            ["withdrawn: waiting for the peers' flows (learn_delay)"; 2]
        );
        let drained = Conditions {
            drained: true,
            ..learning
        };
        assert!(all(drained).iter().all(|s| s.contains("drained")));
        let stopping = Conditions {
            stopping: true,
            ..drained
        };
        assert!(all(stopping).iter().all(|s| s.contains("stopping")));
    }

    #[test]
    fn no_services_no_vips() {
        assert!(decide(READY, &[]).is_empty());
    }
}
