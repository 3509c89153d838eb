//! The sink's ledger: every request's [`Record`], which `webhook-id`s were already answered
//! with 2xx (to tell retries from duplicates), counters, and one sample body.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::record::{Kind, Record};

/// Running totals, as `GET /stats` reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Requests received.
    pub requests: u64,
    /// Answered 2xx.
    pub answered_ok: u64,
    /// Answered with an error status.
    pub answered_err: u64,
    /// Held open without an answer.
    pub unanswered: u64,
    /// First request for an id.
    pub first: u64,
    /// Repeats of ids not yet answered 2xx.
    pub retries: u64,
    /// Repeats of ids already answered 2xx.
    pub duplicates: u64,
    /// Requests without a `webhook-id` header.
    pub without_id: u64,
    /// Distinct ids answered 2xx at least once.
    pub unique_ok: u64,
    /// Body bytes received.
    pub bytes: u64,
}

/// What one arrival looked like, before it is booked.
pub struct Arrival<'a> {
    /// The `webhook-id` header.
    pub id: Option<&'a str>,
    /// Seq marker found in the body.
    pub seq: Option<u64>,
    /// `/hook/<n>`.
    pub hook: u32,
    /// Arrival time (Unix ns).
    pub recv_ns: u64,
    /// Status that will be answered (0 = none).
    pub status: u16,
    /// The body.
    pub body: &'a Bytes,
}

/// See the module docs.
#[derive(Default)]
pub struct Book {
    answered_ok: HashMap<u128, bool>,
    records: Vec<Record>,
    sample: Option<Bytes>,
    stats: Stats,
}

impl Book {
    /// Books one request and says how it relates to earlier ones with the same id.
    pub fn arrive(&mut self, a: Arrival<'_>) -> Kind {
        let ok = (200..300).contains(&a.status);
        let s = &mut self.stats;
        s.requests += 1;
        s.bytes += a.body.len() as u64;
        match a.status {
            0 => s.unanswered += 1,
            _ if ok => s.answered_ok += 1,
            _ => s.answered_err += 1,
        }
        let kind = match a.id.map(id_key) {
            None => {
                s.without_id += 1;
                Kind::First
            }
            Some(key) => match self.answered_ok.get_mut(&key) {
                None => {
                    self.answered_ok.insert(key, ok);
                    s.unique_ok += u64::from(ok);
                    Kind::First
                }
                Some(true) => Kind::Duplicate,
                Some(seen_ok) => {
                    *seen_ok = ok;
                    s.unique_ok += u64::from(ok);
                    Kind::Retry
                }
            },
        };
        match kind {
            Kind::First => s.first += 1,
            Kind::Retry => s.retries += 1,
            Kind::Duplicate => s.duplicates += 1,
        }
        if self.sample.is_none() && a.seq.is_some() {
            self.sample = Some(a.body.clone());
        }
        self.records.push(Record {
            seq: a.seq,
            hook: a.hook,
            recv_ns: a.recv_ns,
            kind,
            status: a.status,
        });
        kind
    }

    /// Totals so far.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Every record, one line each.
    pub fn records_text(&self) -> String {
        let mut out = String::with_capacity(self.records.len() * 40);
        for r in &self.records {
            r.write_line(&mut out);
        }
        out
    }

    /// The first body that carried a seq marker.
    pub fn sample(&self) -> Option<Bytes> {
        self.sample.clone()
    }

    /// Forgets everything (between phases of a scenario).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A compact key for a `webhook-id`: the UUID's 128 bits, or a hash for other ids.
fn id_key(id: &str) -> u128 {
    match uuid::Uuid::try_parse(id) {
        Ok(u) => u.as_u128(),
        Err(_) => {
            let mut h = DefaultHasher::new();
            id.hash(&mut h);
            u128::from(h.finish()) | (1 << 127)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrive(book: &mut Book, id: &str, status: u16) -> Kind {
        book.arrive(Arrival {
            id: Some(id),
            seq: Some(1),
            hook: 0,
            recv_ns: 1,
            status,
            body: &Bytes::from_static(b"hbseq-1."),
        })
    }

    #[test]
    fn retries_and_duplicates_are_told_apart() {
        let mut b = Book::default();
        let id = "6879a8fe-59e7-49c5-af91-fd9c3b4bfad8";
        assert_eq!(arrive(&mut b, id, 500), Kind::First);
        assert_eq!(arrive(&mut b, id, 500), Kind::Retry);
        assert_eq!(arrive(&mut b, id, 200), Kind::Retry);
        assert_eq!(arrive(&mut b, id, 200), Kind::Duplicate);
        assert_eq!(arrive(&mut b, "msg_other", 200), Kind::First);
        let s = b.stats();
        assert_eq!((s.first, s.retries, s.duplicates, s.unique_ok), (2, 2, 1, 2));
        assert_eq!((s.answered_ok, s.answered_err), (3, 2));
        assert!(b.sample().is_some());
    }
}
