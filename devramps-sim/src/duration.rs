//! Durations as scenarios write them: `90s`, `5m`, `2h`, `3d`, or combinations such as `1h30m`.
//!
//! The grammar is one or more groups of ASCII digits followed by a unit, with the units in
//! strictly decreasing order (`d`, `h`, `m`, `s`), each at most once. There is no sign, no
//! fraction and no whitespace. A duration has whole-second precision.

use std::time::Duration;

/// The units, largest first, with their length in seconds.
const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parses a scenario duration such as `90s`, `5m`, `1h30m` or `2d4h`.
///
/// The error is a message for the user naming what is wrong, for example
/// ``unknown unit `x` in `5x` (use `d`, `h`, `m` or `s`)``. Never panics.
///
/// ```
/// use std::time::Duration;
/// use devramps_sim::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
/// assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
/// assert!(parse_duration("5m1h").is_err());
/// assert!(parse_duration("5").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration (write for example `90s`, `5m` or `1h30m`)".to_owned());
    }
    if text.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{text}` contains whitespace (write the parts together, as in `1h30m`)"
        ));
    }
    if text.starts_with('-') {
        return Err(format!("`{text}`: a duration cannot be negative"));
    }
    let mut total: u64 = 0;
    // Index in UNITS after the last unit used: the next unit must come later.
    let mut next_unit = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            let found = rest.chars().next().unwrap_or_default();
            return Err(format!(
                "`{text}`: expected a number before `{found}` (write for example `90s` or `1h30m`)"
            ));
        }
        let (number, after) = rest.split_at(digits);
        let Some(unit) = after.chars().next() else {
            return Err(format!(
                "`{text}`: the number `{number}` has no unit (add `s`, `m`, `h` or `d`, as in `{number}s`)"
            ));
        };
        let Some(position) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "unknown unit `{unit}` in `{text}` (use `d`, `h`, `m` or `s`)"
            ));
        };
        if position < next_unit {
            return Err(format!(
                "`{text}`: units must go from largest to smallest (`d`, `h`, `m`, `s`), each at most once"
            ));
        }
        next_unit = position + 1;
        let too_large = || format!("`{text}` is too large");
        let value: u64 = number.parse().map_err(|_| too_large())?;
        total = value
            .checked_mul(UNITS[position].1)
            .and_then(|secs| total.checked_add(secs))
            .ok_or_else(too_large)?;
        rest = &after[unit.len_utf8()..];
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration canonically: largest units first, zero parts left out, `0s` for zero
/// (`1h30m`, `2d4h`, `90s` becomes `1m30s`). Fractions of a second are dropped.
///
/// [`parse_duration`] reads the result back to the same whole number of seconds.
///
/// ```
/// use std::time::Duration;
/// use devramps_sim::format_duration;
///
/// assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
/// assert_eq!(format_duration(Duration::ZERO), "0s");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        let count = secs / size;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push(unit);
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_combined_units() {
        let cases = [
            ("90s", 90),
            ("5m", 300),
            ("2h", 7_200),
            ("3d", 259_200),
            ("1h30m", 5_400),
            ("2d4h", 187_200),
            ("0s", 0),
            ("1d1h1m1s", 90_061),
            ("007m", 420),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_durations() {
        let cases = [
            ("", "empty"),
            ("5", "has no unit"),
            ("5x", "unknown unit `x`"),
            ("5M", "unknown unit `M`"),
            ("5m1h", "largest to smallest"),
            ("5m5m", "largest to smallest"),
            ("-5m", "negative"),
            ("1h 30m", "whitespace"),
            (" 5m", "whitespace"),
            ("h", "expected a number"),
            ("+5m", "expected a number"),
            ("1.5h", "unknown unit `.`"),
            ("99999999999999999999s", "too large"),
            ("213503982334602d", "too large"),
            ("213503982334601d8h", "too large"),
            ("5m٣s", "expected a number before `٣`"),
        ];
        for (text, needle) in cases {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(187_200)), "2d4h");
        assert_eq!(format_duration(Duration::from_millis(999)), "0s");
        assert_eq!(format_duration(Duration::from_secs(86_401)), "1d1s");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in proptest::prelude::any::<u64>()) {
            let duration = Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn parse_never_panics_on_near_misses(text in "[0-9dhms \\-+.]{0,24}") {
            if let Ok(duration) = parse_duration(&text) {
                // Anything accepted is canonical or reads back to the same value.
                proptest::prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
            }
        }
    }
}
