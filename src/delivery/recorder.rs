//! Batched writes: every finished attempt goes through one task that group-commits them —
//! a batch is written when it reaches [`MAX_BATCH`] records or [`MAX_DELAY`] after its
//! first one, whichever comes first. A durable commit costs ~200 µs, so one per attempt
//! would cap a node at a few thousand attempts per second; batching also funnels SQLite's
//! single writer through one task instead of having workers contend for its lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::{AttemptRecord, AutoDisable, NextState, Store};
use crate::timefmt::now_ms;

/// Most records in one transaction.
pub const MAX_BATCH: usize = 256;
/// Longest a record waits for its batch to fill. Long enough that a busy node writes a
/// few dozen batches a second rather than hundreds: every batch is a transaction of
/// several statements plus one update per webhook it touched, and on SQLite all of them
/// queue for the one writer connection that tracker changes need too (the fan-out bench
/// spent half the writer's time on outcome batches at 5 ms). Short enough that a
/// webhook's status is never visibly stale.
pub const MAX_DELAY: Duration = Duration::from_millis(20);

/// What the recorder is asked to do.
pub enum Msg {
    /// Write an attempt and its state changes.
    Attempt(Box<AttemptRecord>),
    /// Give a lease back.
    Release(Uuid, String),
    /// Answer once everything sent before has been written.
    Flush(oneshot::Sender<()>),
}

/// What the engine learns from each written batch.
pub trait Written: Send + Sync {
    /// The earliest retry scheduled by the batch, and the webhooks it disabled.
    fn written(&self, earliest_retry: Option<i64>, disabled: &[Uuid], delivered: &[Uuid]);
    /// Leases were given back: the work is claimable again.
    fn released(&self);
}

/// Handle to the recorder task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Recorder {
    /// Starts the recorder; it ends when every handle is dropped, after a final write.
    pub fn start(store: Arc<dyn Store>, auto: AutoDisable, events: Arc<dyn Written>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, auto, events, rx));
        Self { tx }
    }

    /// Queues a record.
    pub fn attempt(&self, r: AttemptRecord) {
        let _ = self.tx.send(Msg::Attempt(Box::new(r)));
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

async fn run(
    store: Arc<dyn Store>,
    auto: AutoDisable,
    events: Arc<dyn Written>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut attempts = Vec::with_capacity(MAX_BATCH);
    let mut releases = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Msg::Attempt(r)) => attempts.push(*r),
                Some(Msg::Release(id, token)) => releases.push((id, token)),
                Some(Msg::Flush(ack)) => flushes.push(ack),
                None => {}
            }
            // A flush request ends the batch early: someone is waiting for it.
            if attempts.len() >= MAX_BATCH || !flushes.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => next = Some(m),
                Ok(None) | Err(_) => break,
            }
        }
        write(
            store.as_ref(),
            auto,
            events.as_ref(),
            &mut attempts,
            &mut releases,
        )
        .await;
        for ack in flushes.drain(..) {
            let _ = ack.send(());
        }
    }
}

async fn write(
    store: &dyn Store,
    auto: AutoDisable,
    events: &dyn Written,
    attempts: &mut Vec<AttemptRecord>,
    releases: &mut Vec<(Uuid, String)>,
) {
    if !attempts.is_empty() {
        // A failed write is retried a few times; if the database stays away the attempts
        // are lost from the log, their leases expire and the deliveries are tried again
        // (at-least-once holds).
        let mut disabled = None;
        for backoff in [10, 100, 1000, 0] {
            match store.record_attempts(attempts, auto, now_ms()).await {
                Ok(d) => {
                    disabled = Some(d);
                    break;
                }
                Err(e) if backoff > 0 => {
                    tracing::warn!(error = %e, batch = attempts.len(), "recording attempts failed; retrying");
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                }
                Err(e) => {
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
        attempts.clear();
    }
    if !releases.is_empty() {
        match store.release_leases(releases).await {
            Ok(_) => events.released(),
            Err(e) => tracing::warn!(error = %e, "releasing leases failed; they will expire instead"),
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
