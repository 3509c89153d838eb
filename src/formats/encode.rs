//! Value encodings shared by the formats: timestamps, dates, numbers and lenient snapshot
//! access.
//!
//! Every function here is total. Snapshots are Herald's own data, but a renderer runs on the
//! delivery path and must never panic, so a missing key reads as `null` and an out-of-range
//! timestamp is clamped into the years 0000–9999 (the range RFC 3339 can spell) instead of
//! failing.

use serde_json::Value;
use time::OffsetDateTime;

/// `0000-01-01T00:00:00Z` in epoch milliseconds: the earliest instant RFC 3339 can spell.
const MIN_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z` in epoch milliseconds: the latest instant RFC 3339 can spell.
const MAX_MS: i64 = 253_402_300_799_999;

static NULL: Value = Value::Null;

/// Reads `key` from a snapshot; a missing key (or a snapshot that is not an object) reads as
/// `null`, so renderers treat "absent" and "unset" alike.
pub fn field<'a>(snapshot: &'a Value, key: &str) -> &'a Value {
    snapshot.get(key).unwrap_or(&NULL)
}

/// Reads a string field; `None` when absent or not a string.
pub fn str_field<'a>(snapshot: &'a Value, key: &str) -> Option<&'a str> {
    field(snapshot, key).as_str()
}

/// Reads an integer field (integral floats accepted); `None` when absent or not integral.
pub fn int_field(snapshot: &Value, key: &str) -> Option<i64> {
    as_int(field(snapshot, key))
}

/// A JSON number as an integer when it is one (`3` or `3.0`).
pub fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

/// The elements of an array field; empty when absent or not an array (an unset multi value
/// is `[]` in every format).
pub fn array_field<'a>(snapshot: &'a Value, key: &str) -> &'a [Value] {
    field(snapshot, key).as_array().map_or(&[], Vec::as_slice)
}

fn utc(ms: i64) -> OffsetDateTime {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn iso_seconds(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// RFC 3339 UTC with milliseconds (`2023-01-31T16:21:57.615Z`), the `standard` format's
/// timestamp: sortable as text and exact to the stored precision.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = utc(ms);
    format!("{}.{:03}Z", iso_seconds(t), t.millisecond())
}

/// PPM's audit timestamp: ISO 8601 UTC with exactly 7 fractional digits, as .NET writes
/// ticks (`2022-02-14T08:20:46.4767000Z`). Herald stores milliseconds, so the last four
/// digits are always zero.
pub fn ppm_timestamp(ms: i64) -> String {
    let t = utc(ms);
    format!("{}.{:03}0000Z", iso_seconds(t), t.millisecond())
}

/// An optional epoch-ms snapshot value as a PPM timestamp; `null` stays `null`.
pub fn ppm_timestamp_value(v: &Value) -> Value {
    as_int(v).map_or(Value::Null, |ms| Value::String(ppm_timestamp(ms)))
}

/// Whether `s` is a calendar date spelled `YYYY-MM-DD`.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// PPM's date-only encoding: `YYYY-MM-DD` becomes `YYYY-MM-DDT12:00:00Z` (noon UTC, so the
/// calendar day survives any receiver time zone). `null` stays `null`; anything that is not
/// a date passes through unchanged rather than being guessed at.
pub fn ppm_date(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if is_date(s) => Value::String(format!("{s}T12:00:00Z")),
        _ => v.clone(),
    }
}

/// A number with integral floats written as integers (`0`, not `0.0`), as the vendor
/// examples show; every other value passes through.
pub fn number(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => as_int(v).map_or_else(|| v.clone(), Value::from),
        _ => v.clone(),
    }
}

/// The canonical decimal string of a JSON number: no locale, no exponent, no trailing `.0`
/// (`23000`, `23.5`, `-0.25`). `None` for non-numbers.
pub fn canonical_decimal(v: &Value) -> Option<String> {
    let n = match v {
        Value::Number(n) => n,
        _ => return None,
    };
    if let Some(i) = n.as_i64() {
        return Some(i.to_string());
    }
    if let Some(u) = n.as_u64() {
        return Some(u.to_string());
    }
    let f = n.as_f64()?;
    // Rust's `Display` for f64 is the shortest round-trip decimal and never uses an exponent.
    Some(if f == 0.0 { "0".to_owned() } else { f.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_have_the_documented_precision() {
        assert_eq!(rfc3339_ms(1_675_182_117_615), "2023-01-31T16:21:57.615Z");
        assert_eq!(ppm_timestamp(1_644_826_846_476), "2022-02-14T08:20:46.4760000Z");
        assert_eq!(ppm_timestamp(0), "1970-01-01T00:00:00.0000000Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(ppm_timestamp_value(&json!(null)), json!(null));
    }

    #[test]
    fn dates_become_noon_utc_and_junk_passes_through() {
        assert_eq!(ppm_date(&json!("2021-12-01")), json!("2021-12-01T12:00:00Z"));
        assert_eq!(ppm_date(&json!(null)), json!(null));
        assert_eq!(ppm_date(&json!("soon")), json!("soon"));
        assert!(!is_date("2021-1-011"));
    }

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(canonical_decimal(&json!(23000.0)).unwrap(), "23000");
        assert_eq!(canonical_decimal(&json!(23.5)).unwrap(), "23.5");
        assert_eq!(canonical_decimal(&json!(-0.0)).unwrap(), "0");
        assert_eq!(canonical_decimal(&json!(1e21)).unwrap(), "1000000000000000000000");
        assert_eq!(canonical_decimal(&json!(u64::MAX)).unwrap(), u64::MAX.to_string());
        assert_eq!(canonical_decimal(&json!("1")), None);
        assert_eq!(number(&json!(0.0)).to_string(), "0");
        assert_eq!(number(&json!(2.5)).to_string(), "2.5");
        assert_eq!(int_field(&json!({"a": 3.0}), "a"), Some(3));
        assert_eq!(field(&json!(7), "a"), &Value::Null);
        assert!(array_field(&json!({}), "a").is_empty());
        assert_eq!(str_field(&json!({"a": "x"}), "a"), Some("x"));
    }
}
