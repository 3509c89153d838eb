//! Turning the sink's ledger and the driver's acknowledgements into numbers: deliveries,
//! losses, duplicates, retries, latency percentiles, sustained throughput, and the time
//! series the plots draw.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::record::{Kind, Record};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples_ns` (sorted in place).
    pub fn of(samples_ns: &mut [u64]) -> Option<Self> {
        if samples_ns.is_empty() {
            return None;
        }
        samples_ns.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples_ns.len() as f64).ceil() as usize).clamp(1, samples_ns.len());
            samples_ns[rank - 1] as f64 / 1e6
        };
        Some(Self {
            count: samples_ns.len() as u64,
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

/// Deliveries per second over a window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Throughput {
    /// Deliveries per second.
    pub per_sec: f64,
    /// Window length, seconds.
    pub window_secs: f64,
    /// Deliveries inside the window.
    pub deliveries: u64,
}

impl Throughput {
    /// The rate between the 5th and 95th percentile of `times_ns` (sorted in place): the
    /// sustained rate, without the ramp-up and the tail of stragglers.
    pub fn sustained(times_ns: &mut [u64]) -> Self {
        times_ns.sort_unstable();
        let n = times_ns.len();
        if n < 2 {
            return Self::default();
        }
        let (lo, hi) = if n >= 100 {
            (n / 20, n - 1 - n / 20)
        } else {
            (0, n - 1)
        };
        let secs = (times_ns[hi] - times_ns[lo]) as f64 / 1e9;
        let count = (hi - lo) as u64;
        Self {
            per_sec: if secs > 0.0 { count as f64 / secs } else { 0.0 },
            window_secs: secs,
            deliveries: count,
        }
    }

    /// `count` deliveries over `[from_ns, to_ns]`.
    pub fn between(count: u64, from_ns: u64, to_ns: u64) -> Self {
        let secs = to_ns.saturating_sub(from_ns) as f64 / 1e9;
        Self {
            per_sec: if secs > 0.0 { count as f64 / secs } else { 0.0 },
            window_secs: secs,
            deliveries: count,
        }
    }
}

/// Everything learned from one phase's records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Analysis {
    /// (change, webhook) pairs that should have been delivered.
    pub expected: u64,
    /// Expected pairs answered 2xx at least once.
    pub delivered: u64,
    /// Expected pairs never answered 2xx.
    pub lost: u64,
    /// Requests repeating a delivery already answered 2xx.
    pub duplicates: u64,
    /// First attempts seen (any answer).
    pub first_attempts: u64,
    /// Retries seen (repeats of deliveries not yet answered 2xx).
    pub retries: u64,
    /// Requests answered with an error status.
    pub answered_err: u64,
    /// Requests that carried no seq marker or an unknown hook (should be 0).
    pub unexpected: u64,
    /// API acknowledgement → first 2xx receipt.
    pub latency: Option<Percentiles>,
    /// Deliveries that arrived before the API call returned (latency counted as 0).
    pub arrived_before_ack: u64,
    /// Sustained throughput of unique 2xx deliveries.
    pub throughput: Throughput,
    /// First unique 2xx delivery (Unix ns), the plots' time origin.
    #[serde(skip)]
    pub ok_times_ns: Vec<u64>,
    /// `(receipt unix_ns, latency ms)` per delivery, for the latency plot.
    #[serde(skip)]
    pub latency_points: Vec<(u64, f64)>,
}

/// Analyses `records` against the acknowledged changes and the webhooks (`hooks`, by
/// `/hook/<n>` number) each change should reach.
pub fn analyse(records: &[Record], acked: &[(u64, u64)], hooks: &[u32]) -> Analysis {
    let acked_at: HashMap<u64, u64> = acked.iter().copied().collect();
    let hook_set: HashSet<u32> = hooks.iter().copied().collect();
    let mut first_ok: HashMap<(u64, u32), u64> = HashMap::with_capacity(acked.len() * hooks.len());
    let mut a = Analysis {
        expected: (acked.len() * hooks.len()) as u64,
        ..Analysis::default()
    };
    for r in records {
        match r.kind {
            Kind::First => a.first_attempts += 1,
            Kind::Retry => a.retries += 1,
            Kind::Duplicate => a.duplicates += 1,
        }
        if r.status != 0 && !r.ok() {
            a.answered_err += 1;
        }
        let Some(seq) = r
            .seq
            .filter(|s| acked_at.contains_key(s) && hook_set.contains(&r.hook))
        else {
            a.unexpected += 1;
            continue;
        };
        if r.ok() {
            first_ok.entry((seq, r.hook)).or_insert(r.recv_ns);
        }
    }
    a.delivered = first_ok.len() as u64;
    a.lost = a.expected.saturating_sub(a.delivered);
    let mut lat = Vec::with_capacity(first_ok.len());
    for (&(seq, _), &recv) in &first_ok {
        let sent = acked_at[&seq];
        if recv < sent {
            a.arrived_before_ack += 1;
        }
        let l = recv.saturating_sub(sent);
        lat.push(l);
        a.latency_points.push((recv, l as f64 / 1e6));
    }
    a.latency_points.sort_unstable_by_key(|p| p.0);
    a.latency = Percentiles::of(&mut lat);
    a.ok_times_ns = first_ok.into_values().collect();
    a.throughput = Throughput::sustained(&mut a.ok_times_ns);
    a
}

/// Deliveries per second, bucketed from `origin_ns` (`times_ns` sorted).
pub fn per_second(times_ns: &[u64], origin_ns: u64) -> Vec<(f64, f64)> {
    let mut buckets: Vec<f64> = Vec::new();
    for &t in times_ns {
        let i = (t.saturating_sub(origin_ns) / 1_000_000_000) as usize;
        if buckets.len() <= i {
            buckets.resize(i + 1, 0.0);
        }
        buckets[i] += 1.0;
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(i, n)| (i as f64, n))
        .collect()
}

/// Latency per `bucket_secs` of receipt time from `origin_ns`: `(p50, p99, max)` series.
pub type LatencySeries = [Vec<(f64, f64)>; 3];

/// Buckets `(receipt unix_ns, latency ms)` points and takes p50, p99 and max of each bucket.
pub fn latency_buckets(points: &[(u64, f64)], origin_ns: u64, bucket_secs: f64) -> LatencySeries {
    let mut buckets: Vec<Vec<u64>> = Vec::new();
    for &(t, ms) in points {
        let i = (t.saturating_sub(origin_ns) as f64 / 1e9 / bucket_secs) as usize;
        if buckets.len() <= i {
            buckets.resize_with(i + 1, Vec::new);
        }
        buckets[i].push((ms * 1e6) as u64);
    }
    let mut out: LatencySeries = Default::default();
    for (i, b) in buckets.iter_mut().enumerate() {
        if let Some(p) = Percentiles::of(b) {
            let x = i as f64 * bucket_secs;
            out[0].push((x, p.p50_ms));
            out[1].push((x, p.p99_ms));
            out[2].push((x, p.max_ms));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, hook: u32, recv_ns: u64, kind: Kind, status: u16) -> Record {
        Record {
            seq: Some(seq),
            hook,
            recv_ns,
            kind,
            status,
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        let p = Percentiles::of(&mut v).expect("samples");
        assert_eq!(
            (p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms),
            (50.0, 95.0, 99.0, 100.0)
        );
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn counts_losses_retries_and_duplicates() {
        let acked = [(1, 1_000), (2, 2_000)];
        let records = [
            rec(1, 0, 1_500, Kind::First, 500),
            rec(1, 0, 3_000, Kind::Retry, 200),
            rec(1, 1, 2_000, Kind::First, 200),
            rec(1, 1, 2_100, Kind::Duplicate, 200),
            rec(2, 0, 1_900, Kind::First, 200),
        ];
        let a = analyse(&records, &acked, &[0, 1]);
        assert_eq!((a.expected, a.delivered, a.lost), (4, 3, 1));
        assert_eq!((a.retries, a.duplicates, a.answered_err), (1, 1, 1));
        assert_eq!(a.arrived_before_ack, 1);
        let lat = a.latency.expect("latency");
        assert_eq!(lat.count, 3);
        assert_eq!(lat.max_ms, 2_000.0 / 1e6);
    }

    #[test]
    fn latency_buckets_skip_empty_seconds() {
        let pts = [(0, 1.0), (500_000_000, 3.0), (2_100_000_000, 2.0)];
        let [p50, p99, max] = latency_buckets(&pts, 0, 1.0);
        assert_eq!(p50, vec![(0.0, 1.0), (2.0, 2.0)]);
        assert_eq!(p99, vec![(0.0, 3.0), (2.0, 2.0)]);
        assert_eq!(max, p99);
    }

    #[test]
    fn per_second_buckets() {
        let s = per_second(&[0, 10, 1_000_000_001, 2_500_000_000], 0);
        assert_eq!(s, vec![(0.0, 2.0), (1.0, 1.0), (2.0, 1.0)]);
    }
}
