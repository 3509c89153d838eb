//! Batched writes: every finished attempt goes through one task that group-commits them —
//! a batch is written when it reaches [`MAX_BATCH`] records ([`SINGLE_WRITER_MAX_BATCH`]
//! on SQLite) or [`MAX_DELAY`] after its first one, whichever comes first. A durable
//! commit costs ~200 µs, so one per attempt
//! would cap a node at a few thousand attempts per second; batching also funnels SQLite's
//! single writer through one task instead of having workers contend for its lock. On
//! SQLite a batch is handed to the writer task and written inside its open batch of
//! changes (`store/group_commit.rs`).
//!
//! Backpressure: at most [`MAX_UNWRITTEN`] finished attempts wait to be written; the next
//! one waits, holding its lane slot, until a batch is written. Without it a database slower
//! than the receivers (PostgreSQL with many API connections competing for its CPU) let
//! records pile up in memory without bound — the fan-out bench sent 7k deliveries/s but
//! recorded 3.5k/s, and Herald's RSS grew by ~4 MB/s — and the longer a sent delivery
//! stays unrecorded, the more a crash or an expired lease sends it twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::store::{AttemptRecord, AutoDisable, NextState, Store};
use crate::timefmt::now_ms;

/// Most records in one transaction on PostgreSQL, where several batches are written at
/// once.
pub const MAX_BATCH: usize = 256;
/// Most records in one batch on SQLite. Why larger: there a batch is written inside the
/// writer task's open batch of changes (`store/group_commit.rs`), one batch at a time, so
/// the recorder wrote at most this many attempts per turn of the writer, however many
/// had finished meanwhile. At 256, changes fanning out to 50 webhooks finished attempts
/// faster than they were written: the unwritten ones reached [`MAX_UNWRITTEN`], attempts
/// waited for room holding their lane slots, and deliveries ran at 10–14k/s of the
/// 22–36k/s asked for, latency p99 18–25 s (`herald-bench --scenario fanout-wide`,
/// interleaved runs; BENCHMARKS.md, "The recorder's batch on SQLite"). At 1,024 the same
/// runs delivered what was asked for, 22.4k/s with p99 under 0.6 s, at two thirds of the
/// CPU per delivery. The cap adds no wait: a batch still closes [`MAX_DELAY`] after its
/// first attempt, and grows past 256 only when more finished meanwhile. Still one batch
/// in flight, not two of 256 (which measured slower, 12.5–14.8k/s): batches written in
/// order never set a webhook's last status back to an older attempt's.
pub const SINGLE_WRITER_MAX_BATCH: usize = 1024;
/// Longest a record waits for its batch to fill. Long enough that a busy node writes a
/// few dozen batches a second rather than hundreds: every batch is a transaction of
/// several statements plus one update per webhook it touched, and on SQLite all of them
/// queue for the one writer connection that tracker changes need too (the fan-out bench
/// spent half the writer's time on outcome batches at 5 ms). Short enough that a
/// webhook's status is never visibly stale.
pub const MAX_DELAY: Duration = Duration::from_millis(20);
/// Most finished attempts waiting to be written: sixteen full PostgreSQL batches, four
/// SQLite ones (a few MiB).
pub const MAX_UNWRITTEN: usize = 16 * MAX_BATCH;

/// What the recorder is asked to do.
pub enum Msg {
    /// Write an attempt and its state changes; the permit is its place among the
    /// [`MAX_UNWRITTEN`], given back once it is written. The leases (usually none) are
    /// given back in the same batch, after the attempts are written.
    Attempt(
        Box<AttemptRecord>,
        Option<OwnedSemaphorePermit>,
        Vec<(Uuid, String)>,
    ),
    /// Give a lease back.
    Release(Uuid, String),
    /// Answer once everything sent before has been written.
    Flush(oneshot::Sender<()>),
}

/// What the engine learns from each written batch.
pub trait Written: Send + Sync {
    /// The earliest retry scheduled by the batch, and the webhooks it disabled.
    fn written(&self, earliest_retry: Option<i64>, disabled: &[Uuid], delivered: &[Uuid]);
    /// Writing a batch failed; `given_up` when the batch will not be tried again.
    fn write_failed(&self, given_up: bool);
}

/// Handle to the recorder task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
    room: Arc<Semaphore>,
}

impl Recorder {
    /// Starts the recorder; it ends when every handle is dropped, after a final write.
    pub fn start(store: Arc<dyn Store>, auto: AutoDisable, events: Arc<dyn Written>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, auto, events, rx));
        Self {
            tx,
            room: Arc::new(Semaphore::new(MAX_UNWRITTEN)),
        }
    }

    /// Queues a record, first waiting for room when [`MAX_UNWRITTEN`] are unwritten.
    pub async fn attempt(&self, r: AttemptRecord) {
        self.attempt_then_release(r, Vec::new()).await;
    }

    /// Queues a record like [`Recorder::attempt`], and `leases` to be given back in the
    /// same batch once it is written. Why together: the record of a 410 disables its
    /// webhook, and the webhook's queued jobs given back before that was written could be
    /// claimed again while it was still enabled (on PostgreSQL, batches are written in
    /// parallel, so a later batch's releases can commit first).
    pub async fn attempt_then_release(&self, r: AttemptRecord, leases: Vec<(Uuid, String)>) {
        // The semaphore is never closed; without a permit the record still goes.
        let permit = Arc::clone(&self.room).acquire_owned().await.ok();
        let _ = self.tx.send(Msg::Attempt(Box::new(r), permit, leases));
    }

    /// Queues a lease release.
    pub fn release(&self, id: Uuid, token: String) {
        let _ = self.tx.send(Msg::Release(id, token));
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Batches written at the same time on PostgreSQL. Each is a transaction of its own; they
/// touch different deliveries, and webhook rows are locked in id order, so they cannot
/// deadlock. Why: the recorder's one connection got one backend's share of the database's
/// CPU against the API's many, and fell behind the receivers (see [`MAX_UNWRITTEN`]).
/// SQLite has one writer: its batches are written one after another.
const PARALLEL_WRITES: usize = 4;

async fn run(
    store: Arc<dyn Store>,
    auto: AutoDisable,
    events: Arc<dyn Written>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let (writers, max_batch) = if store.single_writer() {
        (1, SINGLE_WRITER_MAX_BATCH)
    } else {
        (PARALLEL_WRITES, MAX_BATCH)
    };
    let mut writing = tokio::task::JoinSet::new();
    // Room for a typical batch; SQLite's rare large ones grow past it.
    let mut attempts = Vec::with_capacity(MAX_BATCH);
    let mut permits = Vec::with_capacity(MAX_BATCH);
    let mut releases = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Msg::Attempt(r, permit, leases)) => {
                    attempts.push(*r);
                    permits.extend(permit);
                    releases.extend(leases);
                }
                Some(Msg::Release(id, token)) => releases.push((id, token)),
                Some(Msg::Flush(ack)) => flushes.push(ack),
                None => {}
            }
            // A flush request ends the batch early: someone is waiting for it.
            if attempts.len() >= max_batch || !flushes.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => next = Some(m),
                Ok(None) | Err(_) => break,
            }
        }
        while writing.len() >= writers {
            writing.join_next().await;
        }
        let (store, events) = (Arc::clone(&store), Arc::clone(&events));
        let (batch, mut released, written) = (
            std::mem::replace(&mut attempts, Vec::with_capacity(MAX_BATCH)),
            std::mem::take(&mut releases),
            std::mem::replace(&mut permits, Vec::with_capacity(MAX_BATCH)),
        );
        writing.spawn(async move {
            write(store.as_ref(), auto, events.as_ref(), batch.into(), &mut released).await;
            drop(written);
        });
        if !flushes.is_empty() {
            while writing.join_next().await.is_some() {}
            for ack in flushes.drain(..) {
                let _ = ack.send(());
            }
        }
    }
    while writing.join_next().await.is_some() {}
}

async fn write(
    store: &dyn Store,
    auto: AutoDisable,
    events: &dyn Written,
    attempts: Arc<[AttemptRecord]>,
    releases: &mut Vec<(Uuid, String)>,
) {
    if !attempts.is_empty() {
        // A failed write is retried a few times; if the database stays away the attempts
        // are lost from the log, their leases expire and the deliveries are tried again
        // (at-least-once holds).
        let mut disabled = None;
        for backoff in [10, 100, 1000, 0] {
            match store.record_attempts(Arc::clone(&attempts), auto, now_ms()).await {
                Ok(d) => {
                    disabled = Some(d);
                    break;
                }
                Err(e) if backoff > 0 => {
                    events.write_failed(false);
                    tracing::warn!(error = %e, batch = attempts.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(e) => {
                    events.write_failed(true);
                    tracing::error!(error = %e, batch = attempts.len(), "recording attempts failed; giving up on this batch")
                }
            }
        }
        if let Some(disabled) = disabled {
            let earliest = attempts
                .iter()
                .filter_map(|a| match a.next {
                    NextState::Retry { at } => Some(at),
                    _ => None,
                })
                .min();
            let ids: Vec<Uuid> = attempts.iter().map(|a| a.delivery_id).collect();
            events.written(earliest, &disabled, &ids);
        }
    }
    if !releases.is_empty() {
        // The claim loop is not woken for them: every lease given back here belongs to a
        // job its full lane turned away, one that waited there too long, or a webhook
        // that was disabled or deleted — none this node could start now. Waking it ran a
        // claim per batch that read past every such row (the `slow-endpoint` bench: ~12
        // claims a second over its dead endpoint's growing backlog, holding the writer
        // 40–80 % of the time). The lane's own wake-up (`lane_wait`) and the poll pick
        // them up; on PostgreSQL the release notifies the other nodes.
        if let Err(e) = store.release_leases(releases).await {
            tracing::warn!(error = %e, "releasing leases failed; they will expire instead");
        }
        releases.clear();
    }
}

/// Callbacks waiting for a delivery's next attempt to be written (the test-ping endpoint).
#[derive(Default)]
pub struct Watchers {
    waiting: Mutex<HashMap<Uuid, Vec<oneshot::Sender<()>>>>,
}

impl Watchers {
    /// Resolves after the next written attempt of `id`.
    pub fn watch(&self, id: Uuid) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.entry(id).or_default().push(tx);
        }
        rx
    }

    /// Wakes the watchers of `ids`.
    pub fn fire(&self, ids: &[Uuid]) {
        let Ok(mut w) = self.waiting.lock() else { return };
        if w.is_empty() {
            return;
        }
        for id in ids {
            for tx in w.remove(id).unwrap_or_default() {
                let _ = tx.send(());
            }
        }
        // Drop watchers whose caller gave up waiting.
        w.retain(|_, v| {
            v.retain(|tx| !tx.is_closed());
            !v.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    struct Quiet;
    impl Written for Quiet {
        fn written(&self, _: Option<i64>, _: &[Uuid], _: &[Uuid]) {}
        fn write_failed(&self, _: bool) {}
    }

    fn record() -> AttemptRecord {
        AttemptRecord::sample(Uuid::new_v4(), 1, Some(200))
    }

    /// A recorder on a fresh SQLite store whose one writer connection is held: every
    /// write the recorder tries stalls until the returned connection is dropped.
    async fn stalled_recorder(
        events: Arc<dyn Written>,
    ) -> (
        tempfile::TempDir,
        Recorder,
        sqlx::pool::PoolConnection<sqlx::Sqlite>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("herald.db")).await.unwrap();
        let held = store.writer.acquire().await.unwrap();
        let auto = AutoDisable {
            failures: 100,
            after_ms: 1,
        };
        (dir, Recorder::start(Arc::new(store), auto, events), held)
    }

    /// Counts the attempts of each written batch.
    #[derive(Default)]
    struct Batches(Mutex<Vec<usize>>);
    impl Written for Batches {
        fn written(&self, _: Option<i64>, _: &[Uuid], delivered: &[Uuid]) {
            self.0.lock().unwrap().push(delivered.len());
        }
        fn write_failed(&self, _: bool) {}
    }

    /// On SQLite the attempts that finished while a batch was being written go into the
    /// next batch together, not `MAX_BATCH` at a time: at one batch per turn of the
    /// writer, slices of `MAX_BATCH` capped how many attempts a node could record.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_writer_takes_every_queued_attempt_into_its_next_batch() {
        let batches = Arc::new(Batches::default());
        let (_dir, recorder, held) = stalled_recorder(Arc::clone(&batches) as Arc<dyn Written>).await;
        // Three old-size batches, all of which fit one batch now and wait without
        // blocking (the writer is held).
        let n = 3 * MAX_BATCH;
        const { assert!(3 * MAX_BATCH <= SINGLE_WRITER_MAX_BATCH) };
        const { assert!(3 * MAX_BATCH <= MAX_UNWRITTEN) };
        for _ in 0..n {
            recorder.attempt(record()).await;
        }
        // The first batch (whatever arrived within `MAX_DELAY`) waits for the writer;
        // everything else queues behind it and must go in one more batch.
        drop(held);
        tokio::time::timeout(Duration::from_secs(10), recorder.flush())
            .await
            .expect("the recorder writes once the writer is free");
        let sizes = batches.0.lock().unwrap().clone();
        assert_eq!(
            sizes.iter().sum::<usize>(),
            n,
            "every attempt written once: {sizes:?}"
        );
        assert!(
            sizes.len() <= 2,
            "queued attempts were split into slices: {sizes:?}"
        );
    }

    /// A database that cannot keep up holds finished attempts back once
    /// `MAX_UNWRITTEN` wait, instead of piling them up in memory; they go on as soon as
    /// it writes again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn attempts_wait_for_room_when_the_database_falls_behind() {
        let (_dir, recorder, held) = stalled_recorder(Arc::new(Quiet)).await;
        for _ in 0..MAX_UNWRITTEN {
            tokio::time::timeout(Duration::from_secs(10), recorder.attempt(record()))
                .await
                .expect("room for the first MAX_UNWRITTEN");
        }
        let next = recorder.attempt(record());
        tokio::pin!(next);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut next)
                .await
                .is_err(),
            "one more attempt must wait while nothing is written"
        );
        drop(held);
        tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("room again once the database writes");
    }
}
