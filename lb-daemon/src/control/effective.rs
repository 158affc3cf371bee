//! The weight each real of a service gets for new connections, from its
//! configured weight and what is known about it at runtime (health, drain,
//! MAC, slow start), and whether its established flows are moved away.
//! Pure: the controller calls it whenever any input changes.

use std::time::Duration;

/// A real's configuration and runtime facts, as far as scheduling cares.
#[allow(
    clippy::struct_excessive_bools,
    reason = "independent facts about a real, each a yes/no"
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealInput {
    /// Configured weight (0 = the operator wants no new connections).
    pub weight: u32,
    /// A spare: serves only while too few primaries are healthy.
    pub backup: bool,
    /// Its MAC is resolved (static or from the neighbour table).
    pub resolved: bool,
    /// The health checker (or damping) holds it down.
    pub down: bool,
    /// Added with `start_down` and no `rise` checks passed yet: no new
    /// connections, but (unlike `down`) its flows are never moved: it
    /// failed nothing, and a real adopted with flows is never in this
    /// state.
    pub unproven: bool,
    /// Being drained: no new connections.
    pub draining: bool,
    /// Time since it came (back) up, while that is shorter than the slow
    /// start; `None`: steady.
    pub up_for: Option<Duration>,
}

impl RealInput {
    /// It could take new connections: MAC known, not down, not waiting for
    /// its first `rise` (`start_down`), not drained, weight above 0 (a spare
    /// too, whether spares serve now or not).
    #[must_use]
    pub fn serving(&self) -> bool {
        self.resolved && !self.down && !self.unproven && !self.draining && self.weight > 0
    }
}

/// The service's rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Spares serve while fewer primaries than this are healthy.
    pub min_primaries: u32,
    /// Ramp a real's weight up over this long after it comes up.
    pub slow_start: Option<Duration>,
    /// Move a down real's flows to other reals (`on_down = "reroute"`).
    pub reroute_on_down: bool,
}

/// What the data path gets for one real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    pub weight: u32,
    pub reroute: bool,
}

/// One `Effective` per input, same order; and whether the spares serve.
#[must_use]
pub fn effective(reals: &[RealInput], policy: Policy) -> (Vec<Effective>, bool) {
    let healthy_primaries = reals.iter().filter(|r| !r.backup && r.serving()).count();
    let spares_serve = healthy_primaries < policy.min_primaries as usize;
    let out = reals
        .iter()
        .map(|r| {
            let weight = if !r.serving() || (r.backup && !spares_serve) {
                0
            } else {
                ramp(r.weight, r.up_for, policy.slow_start)
            };
            Effective {
                weight,
                reroute: r.down && policy.reroute_on_down,
            }
        })
        .collect();
    (out, spares_serve)
}

/// Slow start: the weight grows linearly from 1 to `weight` over
/// `slow_start`, so least-connection does not flood an empty server.
fn ramp(weight: u32, up_for: Option<Duration>, slow_start: Option<Duration>) -> u32 {
    match (up_for, slow_start) {
        (Some(up), Some(total)) if up < total && !total.is_zero() => {
            let share = up.as_secs_f64() / total.as_secs_f64();
            ((f64::from(weight) * share).ceil() as u32).clamp(1, weight)
        }
        _ => weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(weight: u32) -> RealInput {
        RealInput {
            weight,
            resolved: true,
            ..RealInput::default()
        }
    }

    fn spare(weight: u32) -> RealInput {
        RealInput {
            backup: true,
            ..up(weight)
        }
    }

    const POLICY: Policy = Policy {
        min_primaries: 1,
        slow_start: None,
        reroute_on_down: true,
    };

    fn weights(reals: &[RealInput], policy: Policy) -> Vec<u32> {
        effective(reals, policy)
            .0
            .iter()
            .map(|e| e.weight)
            .collect()
    }

    #[test]
    fn down_draining_and_unresolved_reals_get_no_new_connections() {
        let reals = [
            up(3),
            RealInput {
                down: true,
                ..up(3)
            },
            RealInput {
                draining: true,
                ..up(3)
            },
            RealInput {
                resolved: false,
                ..up(3)
            },
        ];
        let (out, _) = effective(&reals, POLICY);
        assert_eq!(
            out.iter().map(|e| e.weight).collect::<Vec<_>>(),
            [3, 0, 0, 0]
        );
        assert_eq!(
            out.iter().map(|e| e.reroute).collect::<Vec<_>>(),
            [false, true, false, false]
        );
        let keep = Policy {
            reroute_on_down: false,
            ..POLICY
        };
        assert!(
            effective(&reals, keep).0.iter().all(|e| !e.reroute),
            "on_down = keep"
        );
    }

    /// `start_down`: a real that has not passed `rise` checks yet gets no
    /// new connections, but its flows are never moved (it failed nothing),
    /// and a spare stands in for it.
    #[test]
    fn an_unproven_real_gets_no_new_connections_and_keeps_its_flows() {
        let unproven = RealInput {
            unproven: true,
            ..up(3)
        };
        let (out, spares) = effective(&[unproven, spare(1)], POLICY);
        assert_eq!(
            out,
            [
                Effective {
                    weight: 0,
                    reroute: false
                },
                Effective {
                    weight: 1,
                    reroute: false
                }
            ]
        );
        assert!(spares, "no primary serves yet");
    }

    #[test]
    fn spares_serve_only_while_too_few_primaries_are_healthy() {
        let mut reals = [up(1), up(1), spare(1)];
        assert_eq!(weights(&reals, POLICY), [1, 1, 0]);
        reals[0].down = true;
        assert_eq!(
            weights(&reals, POLICY),
            [0, 1, 0],
            "one primary is enough by default"
        );
        reals[1].down = true;
        let (out, spares) = effective(&reals, POLICY);
        assert!(spares);
        assert_eq!(out.iter().map(|e| e.weight).collect::<Vec<_>>(), [0, 0, 1]);
        let two = Policy {
            min_primaries: 2,
            ..POLICY
        };
        reals[1].down = false;
        assert_eq!(
            weights(&reals, two),
            [0, 1, 1],
            "min_primaries 2: spare joins at one"
        );
        let primaries_weight_zero = [up(0), spare(1)];
        assert_eq!(
            weights(&primaries_weight_zero, POLICY),
            [0, 1],
            "weight 0 is not serving"
        );
    }

    #[test]
    fn slow_start_ramps_the_weight_from_one() {
        let policy = Policy {
            slow_start: Some(Duration::from_secs(30)),
            ..POLICY
        };
        let at = |secs: u64| RealInput {
            up_for: Some(Duration::from_secs(secs)),
            ..up(100)
        };
        assert_eq!(weights(&[at(0)], policy), [1]);
        assert_eq!(weights(&[at(15)], policy), [50]);
        assert_eq!(weights(&[at(29)], policy), [97]);
        assert_eq!(weights(&[at(30)], policy), [100]);
        assert_eq!(weights(&[up(100)], policy), [100], "steady");
        assert_eq!(weights(&[at(1)], POLICY), [100], "no slow start configured");
    }
}
