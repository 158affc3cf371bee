//! Flap damping, in the style of BGP route-flap damping (RFC 2439): every
//! time a real goes down it collects a penalty that decays exponentially;
//! while the penalty is above `suppress` the real is held down even if its
//! checks pass, until the penalty has decayed below `reuse`. The penalty is
//! capped so that no hold lasts longer than `max_suppress` after the last
//! flap. Pure: the caller passes the time.

use std::time::{Duration, Instant};

/// Damping parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Damping {
    /// Added at each flap (a transition to down).
    pub penalty_per_flap: f64,
    /// Above this the real is held down.
    pub suppress: f64,
    /// A held real is released when the penalty falls below this.
    pub reuse: f64,
    /// The penalty halves every `half_life`.
    pub half_life: Duration,
    /// The longest hold after the last flap.
    pub max_suppress: Duration,
}

impl Default for Damping {
    /// One flap: no hold; three quick flaps: held for about a minute.
    fn default() -> Self {
        Self {
            penalty_per_flap: 1000.0,
            suppress: 2000.0,
            reuse: 750.0,
            half_life: Duration::from_secs(30),
            max_suppress: Duration::from_mins(5),
        }
    }
}

impl Damping {
    /// The highest penalty: the one that decays to `reuse` in exactly
    /// `max_suppress`.
    #[must_use]
    pub fn ceiling(&self) -> f64 {
        self.reuse * (self.max_suppress.as_secs_f64() / self.half_secs()).exp2()
    }

    fn half_secs(&self) -> f64 {
        self.half_life.as_secs_f64().max(1e-3)
    }

    /// `penalty` decayed over `elapsed`.
    #[must_use]
    pub fn decay(&self, penalty: f64, elapsed: Duration) -> f64 {
        penalty * (-elapsed.as_secs_f64() / self.half_secs()).exp2()
    }
}

/// The damping state of one real.
#[derive(Clone, Debug, PartialEq)]
pub struct DampingState {
    config: Damping,
    /// The penalty as of `last_update`.
    penalty: f64,
    last_update: Option<Instant>,
    suppressed: bool,
}

impl DampingState {
    #[must_use]
    pub fn new(config: Damping) -> Self {
        Self {
            config,
            penalty: 0.0,
            last_update: None,
            suppressed: false,
        }
    }

    #[must_use]
    pub fn config(&self) -> &Damping {
        &self.config
    }

    /// The decayed penalty at `now`.
    #[must_use]
    pub fn penalty(&self, now: Instant) -> f64 {
        match self.last_update {
            Some(at) => self
                .config
                .decay(self.penalty, now.saturating_duration_since(at)),
            None => 0.0,
        }
    }

    /// The real went down.
    pub fn on_flap(&mut self, now: Instant) {
        let penalty = (self.penalty(now) + self.config.penalty_per_flap).min(self.config.ceiling());
        self.penalty = penalty;
        self.last_update = Some(now);
        if penalty > self.config.suppress {
            self.suppressed = true;
        }
    }

    /// Whether the real is held down at `now` (releasing it once the
    /// penalty has decayed below `reuse`).
    pub fn is_held(&mut self, now: Instant) -> bool {
        if self.suppressed && self.penalty(now) < self.config.reuse {
            self.suppressed = false;
        }
        self.suppressed
    }

    /// How much longer the hold lasts, if the real is held (as of the last
    /// [`is_held`](Self::is_held) or [`on_flap`](Self::on_flap)).
    #[must_use]
    pub fn held_until(&self, now: Instant) -> Option<Duration> {
        if !self.suppressed {
            return None;
        }
        let penalty = self.penalty(now);
        if penalty < self.config.reuse {
            return Some(Duration::ZERO);
        }
        let halvings = (penalty / self.config.reuse).log2();
        let secs = halvings * self.config.half_secs();
        Some(Duration::from_secs_f64(secs.max(0.0)).min(self.config.max_suppress))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_single_flap_does_not_suppress() {
        let t0 = Instant::now();
        let mut d = DampingState::new(Damping::default());
        assert!(!d.is_held(t0));
        d.on_flap(t0);
        assert!(!d.is_held(t0));
        assert_eq!(d.held_until(t0), None);
        assert!((d.penalty(t0) - 1000.0).abs() < 1e-9);
        assert!((d.penalty(t0 + secs(30)) - 500.0).abs() < 1e-9);
    }

    #[test]
    fn three_quick_flaps_suppress_until_decayed_below_reuse() {
        let t0 = Instant::now();
        let mut d = DampingState::new(Damping::default());
        d.on_flap(t0);
        d.on_flap(t0 + secs(3));
        assert!(!d.is_held(t0 + secs(3)), "two flaps stay below 2000");
        d.on_flap(t0 + secs(6));
        let t = t0 + secs(6);
        assert!(d.is_held(t));
        let p = d.penalty(t);
        assert!(p > 2000.0 && p < 3000.0, "{p}");
        // Held for half_life × log2(p / 750) ≈ 57 s.
        let left = d.held_until(t).unwrap();
        let expect = 30.0 * (p / 750.0).log2();
        assert!((left.as_secs_f64() - expect).abs() < 0.01, "{left:?}");
        assert!(d.is_held((t + left).checked_sub(Duration::from_millis(100)).unwrap()));
        assert!(!d.is_held(t + left + Duration::from_millis(100)));
        assert_eq!(d.held_until(t + left + Duration::from_millis(100)), None);
        // A later single flap (penalty ~0 by then) does not suppress.
        let later = t + secs(600);
        d.on_flap(later);
        assert!(!d.is_held(later));
    }

    #[test]
    fn flaps_spread_out_never_suppress() {
        let t0 = Instant::now();
        let mut d = DampingState::new(Damping::default());
        // One flap a minute: steady-state penalty 1000 / (1 - 2^-2) ≈ 1333.
        for i in 0..100 {
            let t = t0 + secs(60 * i);
            d.on_flap(t);
            assert!(!d.is_held(t), "flap {i}");
        }
    }

    #[test]
    fn max_suppress_caps_the_hold() {
        let t0 = Instant::now();
        let config = Damping::default();
        let mut d = DampingState::new(config);
        // A storm of flaps: the penalty is capped at the ceiling.
        for i in 0..2000 {
            d.on_flap(t0 + Duration::from_millis(10 * i));
        }
        let last = t0 + Duration::from_millis(10 * 1999);
        assert!(d.is_held(last));
        assert!(d.penalty(last) <= config.ceiling() + 1e-6);
        let left = d.held_until(last).unwrap();
        assert!(left <= config.max_suppress, "{left:?}");
        assert!(
            left >= config.max_suppress.checked_sub(secs(1)).unwrap(),
            "{left:?}"
        );
        assert!(d.is_held((last + config.max_suppress).checked_sub(secs(1)).unwrap()));
        assert!(!d.is_held(last + config.max_suppress + secs(1)));
    }
}
