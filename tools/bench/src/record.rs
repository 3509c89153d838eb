//! What the sink remembers about each request it receives, and the line format it uses to
//! hand those records to the harness (one text line per request, so a million records stay
//! a plain, streamable ~40 MB instead of a JSON document).

use std::time::{SystemTime, UNIX_EPOCH};

/// The seq marker the harness writes into every change (`hbseq-<n>.`) and the sink looks for.
pub const SEQ_MARKER: &[u8] = b"hbseq-";

/// How a request relates to earlier ones carrying the same `webhook-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first request with this id.
    First,
    /// A repeat of an id that was never answered with 2xx (an expected retry).
    Retry,
    /// A repeat of an id that was already answered with 2xx (a duplicate delivery).
    Duplicate,
}

impl Kind {
    fn as_char(self) -> char {
        match self {
            Kind::First => 'f',
            Kind::Retry => 'r',
            Kind::Duplicate => 'd',
        }
    }

    fn from_char(c: &str) -> Option<Self> {
        match c {
            "f" => Some(Kind::First),
            "r" => Some(Kind::Retry),
            "d" => Some(Kind::Duplicate),
            _ => None,
        }
    }
}

/// One received request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Highest `hbseq-<n>` in the body (`None` when the body has no marker).
    pub seq: Option<u64>,
    /// The `<n>` of the `/hook/<n>` path (0 for any other path).
    pub hook: u32,
    /// Arrival of the request head, Unix epoch nanoseconds.
    pub recv_ns: u64,
    /// Relation to earlier requests with the same `webhook-id`.
    pub kind: Kind,
    /// Status answered (0 = never answered).
    pub status: u16,
}

impl Record {
    /// `seq hook recv_ns kind status` (seq `-` when absent).
    pub fn write_line(&self, out: &mut String) {
        use std::fmt::Write;
        let seq = self.seq.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let _ = writeln!(
            out,
            "{seq} {} {} {} {}",
            self.hook,
            self.recv_ns,
            self.kind.as_char(),
            self.status
        );
    }

    /// Parses one line written by [`Record::write_line`].
    pub fn parse_line(line: &str) -> Option<Self> {
        let mut it = line.split_ascii_whitespace();
        let seq = match it.next()? {
            "-" => None,
            s => Some(s.parse().ok()?),
        };
        Some(Self {
            seq,
            hook: it.next()?.parse().ok()?,
            recv_ns: it.next()?.parse().ok()?,
            kind: Kind::from_char(it.next()?)?,
            status: it.next()?.parse().ok()?,
        })
    }

    /// Whether the sink answered 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Wall-clock now in Unix nanoseconds: the harness and the sink are separate processes on
/// one machine, so the realtime clock is the one they share.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The highest `hbseq-<n>` in `body`. Taking the highest matters for `Updated` payloads,
/// which carry the previous value too: the harness only ever raises a project's seq.
pub fn seq_in(body: &[u8]) -> Option<u64> {
    let mut best = None;
    let mut rest = body;
    while let Some(pos) = find(rest, SEQ_MARKER) {
        rest = &rest[pos + SEQ_MARKER.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Ok(n) = std::str::from_utf8(&rest[..digits]).unwrap_or("").parse::<u64>() {
            best = best.max(Some(n));
        }
    }
    best
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The marker text for `seq`, as the harness writes it into a change.
pub fn marker(seq: u64) -> String {
    format!("hbseq-{seq}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trip() {
        let r = Record {
            seq: Some(42),
            hook: 3,
            recv_ns: 1_700_000_000_123_456_789,
            kind: Kind::Retry,
            status: 500,
        };
        let mut s = String::new();
        r.write_line(&mut s);
        assert_eq!(Record::parse_line(s.trim_end()), Some(r));
        let none = Record { seq: None, ..r };
        s.clear();
        none.write_line(&mut s);
        assert_eq!(Record::parse_line(&s), Some(none));
    }

    #[test]
    fn seq_takes_the_highest_marker() {
        let body = br#"{"Attributes":{"Name":"hbseq-17."},"BeforeAttributes":{"Name":"hbseq-9."}}"#;
        assert_eq!(seq_in(body), Some(17));
        assert_eq!(seq_in(b"{}"), None);
        assert_eq!(seq_in(b"hbseq-"), None);
        assert_eq!(seq_in(marker(5).as_bytes()), Some(5));
    }
}
