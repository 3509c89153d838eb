//! Driving changes through Herald's API and remembering when each one was acknowledged —
//! the start of every latency measurement.
//!
//! Each change `seq` writes the marker `hbseq-<seq>.` into one project. A project only ever
//! sees increasing seqs, and never two changes at once, so the highest marker in a delivered
//! body (which may carry the previous value too) is always the change that caused it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::herald::api::Api;
use crate::record::now_ns;

/// What a drive did.
#[derive(Debug, Default)]
pub struct Drive {
    /// `(seq, unix_ns of the API response)` for every acknowledged change.
    pub acked: Vec<(u64, u64)>,
    /// How long each acknowledged change took, request sent → response (ns).
    pub api_latency_ns: Vec<u64>,
    /// Changes the API refused or that failed in transit.
    pub errors: u64,
    /// The first such failure, for the report.
    pub first_error: Option<String>,
    /// When the first change was sent and the last answered (Unix ns).
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
}

impl Drive {
    fn merge(&mut self, other: Drive) {
        self.acked.extend(other.acked);
        self.api_latency_ns.extend(other.api_latency_ns);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn record(&mut self, seq: u64, sent_ns: u64, result: anyhow::Result<()>) {
        match result {
            Ok(()) => {
                let now = now_ns();
                self.acked.push((seq, now));
                self.api_latency_ns.push(now.saturating_sub(sent_ns));
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    /// Acknowledged changes per second over the drive.
    pub fn rate(&self) -> f64 {
        let secs = (self.end_ns.saturating_sub(self.start_ns)) as f64 / 1e9;
        if secs > 0.0 {
            self.acked.len() as f64 / secs
        } else {
            0.0
        }
    }
}

/// When a max-rate drive stops: after at least `changes` changes *and* `min_time`, or at
/// `max_time` whatever the count.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Least number of changes.
    pub changes: u64,
    /// Least duration.
    pub min_time: Duration,
    /// Hard stop.
    pub max_time: Duration,
}

/// Changes as fast as `concurrency` closed-loop clients can (seqs start at 1). Client `t`
/// owns the projects whose index is `t` modulo `concurrency`.
pub async fn max_rate(api: &Api, projects: &[Value], concurrency: usize, budget: Budget) -> Drive {
    let concurrency = concurrency.clamp(1, projects.len().max(1));
    let next = Arc::new(AtomicU64::new(1));
    let started = Instant::now();
    let mut drive = Drive {
        start_ns: now_ns(),
        ..Drive::default()
    };
    let mut tasks = JoinSet::new();
    for t in 0..concurrency {
        let own: Vec<Value> = projects.iter().skip(t).step_by(concurrency).cloned().collect();
        let (api, next) = (api.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            let mut mine = Drive::default();
            for project in own.iter().cycle() {
                let elapsed = started.elapsed();
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let done = seq > budget.changes && elapsed >= budget.min_time;
                if done || elapsed >= budget.max_time {
                    break;
                }
                let sent = now_ns();
                mine.record(seq, sent, api.change_project(project, seq).await);
            }
            mine
        });
    }
    while let Some(part) = tasks.join_next().await {
        if let Ok(part) = part {
            drive.merge(part);
        }
    }
    drive.end_ns = now_ns();
    drive
}

/// `rate` changes per second for `duration`, open loop: each change is sent on schedule
/// whether or not earlier ones were answered, so a slow Herald shows up as latency rather
/// than as a lower send rate. Change `seq` goes to project `seq % projects.len()`; a
/// per-project lock (fair, FIFO) keeps one change per project in flight.
pub async fn paced(api: &Api, projects: &[Value], rate: u64, duration: Duration) -> Drive {
    let locks: Arc<Vec<Mutex<()>>> = Arc::new(projects.iter().map(|_| Mutex::new(())).collect());
    let projects: Arc<Vec<Value>> = Arc::new(projects.to_vec());
    let total = rate.saturating_mul(duration.as_secs()).max(1);
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut tick = tokio::time::interval(period);
    let mut tasks = JoinSet::new();
    let mut drive = Drive {
        start_ns: now_ns(),
        ..Drive::default()
    };
    for seq in 1..=total {
        tick.tick().await;
        let (api, locks, projects) = (api.clone(), Arc::clone(&locks), Arc::clone(&projects));
        tasks.spawn(async move {
            // Sent on schedule: the wait for the project's turn counts as API latency.
            let sent = now_ns();
            let i = (seq % projects.len() as u64) as usize;
            let _turn = locks[i].lock().await;
            let mut one = Drive::default();
            one.record(seq, sent, api.change_project(&projects[i], seq).await);
            one
        });
        // Reap finished tasks as we go so the set stays small.
        while let Some(Ok(part)) = tasks.try_join_next() {
            drive.merge(part);
        }
    }
    while let Some(part) = tasks.join_next().await {
        if let Ok(part) = part {
            drive.merge(part);
        }
    }
    drive.end_ns = now_ns();
    drive
}
