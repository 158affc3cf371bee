//! A real's state as `lbctl status` and the metrics show it: computed once
//! by the controller (`control::status`), written on the wire as text.

use std::{fmt, str::FromStr};

/// What a real is doing now, the first that applies in this order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RealState {
    /// Being drained (`lbctl real drain`): removed once its flows end.
    Draining,
    /// Its health check says down.
    Down,
    /// No MAC for it yet: nothing can be forwarded to it.
    Unresolved,
    /// A spare standing in for down reals.
    BackupActive,
    /// A spare not needed now.
    BackupIdle,
    /// Configured weight 0: no new flows, established ones continue.
    Drained,
    /// Takes new connections (possibly ramping up under slow start, which
    /// shows in the effective weight, not here).
    #[default]
    Up,
    /// No longer configured; kept while flows remain on its slot.
    Removed,
}

impl RealState {
    pub const ALL: [RealState; 8] = [
        RealState::Draining,
        RealState::Down,
        RealState::Unresolved,
        RealState::BackupActive,
        RealState::BackupIdle,
        RealState::Drained,
        RealState::Up,
        RealState::Removed,
    ];

    /// The name in `lbctl status` (text and JSON).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RealState::Draining => "draining",
            RealState::Down => "down",
            RealState::Unresolved => "unresolved",
            RealState::BackupActive => "backup_active",
            RealState::BackupIdle => "backup_idle",
            RealState::Drained => "drained",
            RealState::Up => "up",
            RealState::Removed => "removed",
        }
    }

    /// Whether it can take traffic (`lb_real_up`): not when its check says
    /// down, it cannot be reached (no MAC) or it was removed.
    #[must_use]
    pub fn is_up(self) -> bool {
        !matches!(
            self,
            RealState::Down | RealState::Unresolved | RealState::Removed
        )
    }
}

impl fmt::Display for RealState {
    /// The name; padding applies (`lbctl status` aligns its column).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A state name that is none of [`RealState::as_str`]'s.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown real state `{0}`")]
pub struct UnknownRealState(pub String);

impl FromStr for RealState {
    type Err = UnknownRealState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RealState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownRealState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_pad() {
        for state in RealState::ALL {
            assert_eq!(state.as_str().parse(), Ok(state));
        }
        assert!("".parse::<RealState>().is_err());
        assert_eq!(format!("[{:<8}]", RealState::Up), "[up      ]");
    }
}
