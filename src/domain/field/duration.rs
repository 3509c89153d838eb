//! Human duration strings (`"8h"`, `"1d 2h 30m"`, `"1.5h"`, `"28800000"`) → milliseconds.
//!
//! Units: `w` (7 days), `d` (24 hours), `h`, `m` (minutes), `s`, `ms`; case-insensitive,
//! each at most once, in any order, separated by optional whitespace. A day is a *calendar*
//! day of 24 hours, not an 8-hour working day: Projectrak stores plain milliseconds and
//! does not say which it means, and 24h is the reading that never surprises a receiver
//! doing date arithmetic. A bare digit string is milliseconds (Projectrak's own encoding).
//! Fractions are allowed (`"1.5h"`) and rounded half-up to whole milliseconds.

/// Milliseconds per unit.
const UNITS: [(&str, i128); 6] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// Longest accepted input; far beyond any real duration, short enough to bound the work.
const MAX_LEN: usize = 100;

/// Parses a duration string; `None` when it is malformed, negative or beyond `i64` ms.
pub(super) fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_LEN {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let lower = s.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut seen = [false; UNITS.len()];
    let mut total: i128 = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // Number: digits, optionally `.digits`.
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = lower.get(start..i)?;
        let mut frac_part = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let fstart = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = lower.get(fstart..i)?;
            if frac_part.is_empty() {
                return None;
            }
        }
        if int_part.is_empty() {
            return None;
        }
        // Unit: letters.
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = lower.get(ustart..i)?;
        let slot = UNITS.iter().position(|(name, _)| *name == unit)?;
        if seen[slot] {
            return None;
        }
        seen[slot] = true;
        total = total.checked_add(component_ms(int_part, frac_part, UNITS[slot].1)?)?;
    }
    if !seen.iter().any(|&s| s) {
        return None;
    }
    i64::try_from(total).ok()
}

/// `int.frac × per_unit` in whole milliseconds, rounded half-up, without floating point.
fn component_ms(int_part: &str, frac_part: &str, per_unit: i128) -> Option<i128> {
    // Digits beyond 18 cannot change the result by a millisecond for any unit we have.
    let frac_part = frac_part.get(..frac_part.len().min(18))?;
    let int: i128 = int_part.parse().ok()?;
    let whole = int.checked_mul(per_unit)?;
    if frac_part.is_empty() {
        return Some(whole);
    }
    let frac: i128 = frac_part.parse().ok()?;
    let scale = 10_i128.checked_pow(u32::try_from(frac_part.len()).ok()?)?;
    let frac_ms = (frac.checked_mul(per_unit)? * 2 + scale) / (2 * scale);
    whole.checked_add(frac_ms)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn accepts_the_usual_spellings() {
        assert_eq!(parse_duration("28800000"), Some(28_800_000));
        assert_eq!(parse_duration("8h"), Some(28_800_000));
        assert_eq!(parse_duration("90m"), Some(5_400_000));
        assert_eq!(parse_duration("1d 2h 30m"), Some(86_400_000 + 9_000_000));
        assert_eq!(parse_duration("1D2H30M"), Some(86_400_000 + 9_000_000));
        assert_eq!(parse_duration("2h 1d"), Some(86_400_000 + 7_200_000));
        assert_eq!(parse_duration("1w"), Some(604_800_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000));
        assert_eq!(parse_duration("1s 5ms"), Some(1_005));
        assert_eq!(parse_duration("0.0005s"), Some(1));
        assert_eq!(parse_duration(" 0m "), Some(0));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            " ",
            "h",
            "8 h",
            "8x",
            "-8h",
            "8h 8h",
            "1.h",
            ".5h",
            "1,5h",
            "8hh",
            "9999999999999999999999w",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
