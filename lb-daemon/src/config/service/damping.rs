//! `[service.damping]`: route-flap damping of a service's reals.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;
use toml_edit::{Table, value};

use super::super::duration::format_duration;
use super::super::errors::Checker;
use super::super::values::{Int, Text, Value};

/// Allowed `penalty`, `suppress` and `reuse` of `[service.damping]`.
pub const DAMPING_RANGE: RangeInclusive<u32> = 1..=1_000_000;

/// The keys of `[service.damping]` whose value is a duration.
pub(in crate::config) const DURATION_KEYS: &[&str] = &["half_life", "max_suppress"];

/// `[service.damping]`: route-flap damping of reals. Every flap (a
/// transition to down) adds `penalty`; the penalty halves every
/// `half_life`; a real whose penalty exceeds `suppress` is held down until
/// it decays below `reuse`, and never longer than `max_suppress`.
/// Penalties are whole numbers in [`DAMPING_RANGE`], `reuse < suppress`,
/// durations positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DampingConfig {
    pub penalty: u32,
    pub suppress: u32,
    pub reuse: u32,
    pub half_life: Duration,
    pub max_suppress: Duration,
}

impl Default for DampingConfig {
    /// The values an empty `[service.damping]` table gets.
    fn default() -> Self {
        Self {
            penalty: 1000,
            suppress: 2000,
            reuse: 750,
            half_life: Duration::from_secs(30),
            max_suppress: Duration::from_mins(5),
        }
    }
}

/// `[service.damping]` as serde sees it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [service.damping] table")]
struct RawDamping {
    penalty: Option<Int>,
    suppress: Option<Int>,
    reuse: Option<Int>,
    half_life: Option<Text>,
    max_suppress: Option<Text>,
}

impl Checker<'_> {
    pub(super) fn damping(&mut self, path: &str, value: &Value<'_>) -> Option<DampingConfig> {
        let raw = self.section::<RawDamping>(path, value)?;
        let defaults = DampingConfig::default();
        let mut valid = true;
        let mut amount = |checker: &mut Self, key: &str, raw: Option<&Int>, default: u32| match raw
        {
            None => default,
            Some(v) => checker
                .int(&format!("{path}.{key}"), key, v, DAMPING_RANGE)
                .unwrap_or_else(|| {
                    valid = false;
                    default
                }),
        };
        let penalty = amount(self, "penalty", raw.penalty.as_ref(), defaults.penalty);
        let suppress = amount(self, "suppress", raw.suppress.as_ref(), defaults.suppress);
        let reuse = amount(self, "reuse", raw.reuse.as_ref(), defaults.reuse);
        let mut time =
            |checker: &mut Self, key: &str, raw: Option<&Text>, default: Duration| match raw {
                None => default,
                Some(_) => checker
                    .duration(&format!("{path}.{key}"), raw)
                    .unwrap_or_else(|| {
                        valid = false;
                        default
                    }),
            };
        let half_life = time(
            self,
            "half_life",
            raw.half_life.as_ref(),
            defaults.half_life,
        );
        let max_suppress = time(
            self,
            "max_suppress",
            raw.max_suppress.as_ref(),
            defaults.max_suppress,
        );
        let damping = DampingConfig {
            penalty,
            suppress,
            reuse,
            half_life,
            max_suppress,
        };
        (valid && self.damping_consistent(path, &raw, &damping)).then_some(damping)
    }

    /// `reuse` below `suppress`, and a penalty cap above `suppress`; the
    /// error is at the first of the fields involved that is written.
    fn damping_consistent(&mut self, path: &str, raw: &RawDamping, d: &DampingConfig) -> bool {
        let (suppress_at, reuse_at) = (
            raw.suppress.as_ref().map(|v| v.span().start),
            raw.reuse.as_ref().map(|v| v.span().start),
        );
        let (suppress, reuse) = (d.suppress, d.reuse);
        if reuse >= suppress {
            let (offset, field, message) = match (reuse_at, suppress_at) {
                (Some(offset), at) => (
                    offset,
                    "reuse",
                    format!(
                        "reuse {reuse} must be less than suppress {suppress}{} (a held-down \
                         real comes back once its penalty decays below reuse)",
                        if at.is_some() { "" } else { " (the default)" }
                    ),
                ),
                (None, Some(offset)) => (
                    offset,
                    "suppress",
                    format!(
                        "suppress {suppress} must be greater than reuse {reuse} (the default; \
                         a held-down real comes back once its penalty decays below reuse)"
                    ),
                ),
                (None, None) => unreachable!("the defaults are consistent"),
            };
            self.error(offset, format!("{path}.{field}"), message);
            return false;
        }
        // The penalty is capped where it takes `max_suppress` to decay to
        // `reuse` (see `health::damping`): it must be able to exceed
        // `suppress`.
        let ceiling =
            f64::from(reuse) * (d.max_suppress.as_secs_f64() / d.half_life.as_secs_f64()).exp2();
        if ceiling > f64::from(suppress) {
            return true;
        }
        let blame = [
            (
                "max_suppress",
                raw.max_suppress.as_ref().map(|t| t.span().start),
            ),
            ("suppress", suppress_at),
            ("half_life", raw.half_life.as_ref().map(|t| t.span().start)),
            ("reuse", reuse_at),
        ]
        .into_iter()
        .find_map(|(key, at)| Some((key, at?)));
        if let Some((key, offset)) = blame {
            self.error(
                offset,
                format!("{path}.{key}"),
                format!(
                    "a real could never be held down: the penalty is capped at reuse × \
                     2^(max_suppress / half_life) = {ceiling:.0}, which does not exceed \
                     suppress {suppress} (raise max_suppress or lower suppress)"
                ),
            );
        }
        false
    }
}

/// The table written for a service's damping (every field, so that the
/// file says what the service does).
pub(super) fn damping_table(damping: &DampingConfig) -> Table {
    let mut t = Table::new();
    t.insert("penalty", value(i64::from(damping.penalty)));
    t.insert("suppress", value(i64::from(damping.suppress)));
    t.insert("reuse", value(i64::from(damping.reuse)));
    t.insert("half_life", value(format_duration(damping.half_life)));
    t.insert("max_suppress", value(format_duration(damping.max_suppress)));
    t
}
