//! Durations as operators write them: `"10s"`, `"1m30s"`, `"250ms"`, `"2h"`.
//!
//! A duration is one or more `<number><unit>` pairs with units `h`, `m`, `s`
//! and `ms`, largest first and each at most once. There is no sign, no
//! fraction (write `1500ms`, not `1.5s`), no whitespace and no bare number:
//! `"10"` could mean seconds or milliseconds, so it is refused rather than
//! guessed.

use std::fmt::Write as _;
use std::time::Duration;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a duration (see the module docs). Zero (`"0s"`) is accepted here;
/// callers that need a positive duration check that themselves.
///
/// The error is a sentence fragment meant to follow the offending text, e.g.
/// `"10" is not a duration: missing unit after 10 (use h, m, s or ms)`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration (write a number and a unit, e.g. \"10s\")".to_owned());
    }
    if text.starts_with('-') {
        return Err("durations cannot be negative".to_owned());
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the previous unit: each one must be smaller.
    let mut previous: Option<usize> = None;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(format!(
                "expected a number at {rest:?} (write a number and a unit, e.g. \"10s\")"
            ));
        }
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(if after.starts_with(['.', ',']) {
                "fractions are not supported; use a smaller unit (e.g. \"1500ms\")".to_owned()
            } else if after.is_empty() {
                format!("missing unit after {digits} (use h, m, s or ms)")
            } else {
                format!("unexpected {after:?} after {digits} (use h, m, s or ms)")
            });
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!("unknown unit `{unit}` (use h, m, s or ms)"));
        };
        if previous.is_some_and(|p| p >= index) {
            return Err(
                "units must go from largest to smallest, each at most once (e.g. \"1m30s\")"
                    .to_owned(),
            );
        }
        previous = Some(index);
        let too_large = || "duration is too large".to_owned();
        let value: u64 = digits.parse().map_err(|_| too_large())?;
        total_ms = value
            .checked_mul(UNITS[index].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_large)?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest
/// units that fit: `90s` becomes `"1m30s"`, zero is `"0s"`. Anything below a
/// millisecond is dropped.
#[must_use]
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, size) in UNITS {
        if ms >= size {
            let _ = write!(out, "{}{name}", ms / size);
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_mins(15)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_hours(2)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn combinations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h2m3s4ms"),
            Ok(Duration::from_millis(3_723_004))
        );
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
        // More of a unit than the next one up holds is fine.
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    }

    fn error(text: &str) -> String {
        parse_duration(text).expect_err(text)
    }

    #[test]
    fn rejects_malformed() {
        assert!(error("").contains("empty"));
        assert!(error("-5s").contains("negative"));
        assert!(error("10").contains("missing unit"));
        assert!(error("5d").contains("unknown unit `d`"));
        assert!(error("1.5s").contains("fractions"));
        assert!(error("s").contains("expected a number"));
        assert!(error(" 5s").contains("expected a number"));
        assert!(error("5 s").contains("unexpected"));
        assert!(error("30s1m").contains("largest to smallest"));
        assert!(error("1s1s").contains("largest to smallest"));
        assert!(error("1m30").contains("missing unit after 30"));
        assert!(error("99999999999999999999s").contains("too large"));
        assert!(error("18446744073709551615h").contains("too large"));
    }

    #[test]
    fn format_round_trips() {
        for (ms, text) in [
            (0, "0s"),
            (250, "250ms"),
            (1_000, "1s"),
            (90_000, "1m30s"),
            (900_000, "15m"),
            (3_723_004, "1h2m3s4ms"),
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d));
        }
    }
}
