//! Time helpers: Herald stores epoch milliseconds everywhere and formats at the edges.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Epoch ms → `OffsetDateTime` (clamped to the representable range).
pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Epoch ms → RFC 3339 with millisecond precision, e.g. `2026-11-22T10:00:00.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = from_ms(ms);
    let t = t
        .replace_nanosecond((t.nanosecond() / 1_000_000) * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses an RFC 3339 timestamp into epoch ms.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(rfc3339_ms(1_675_182_117_615), "2023-01-31T16:21:57.615Z");
        assert_eq!(
            parse_rfc3339_ms("2023-01-31T16:21:57.615Z"),
            Some(1_675_182_117_615)
        );
    }
}
