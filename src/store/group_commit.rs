//! Group commit for SQLite's tracker changes: one task writes every change, running the
//! ones that queued while it worked back to back in one transaction, each in a savepoint
//! of its own, made durable by one `COMMIT`.
//!
//! Why: SQLite has one writer, and what limits it is not SQL but the time around it.
//! Measured on the fan-out bench: a commit per change appended the same hot pages (the
//! tails of the event and delivery tables and their indexes) to the WAL again and again
//! (~100 MB/s at ~420 changes/s), and when changes took turns at the writer, each hand-over
//! from one request's task to the next cost a wake-up on a busy two-core machine, about
//! as long as the change itself. A single task that keeps the writer and pulls the next
//! queued change itself pays neither.
//!
//! How a batch forms and closes: the task takes the first queued change, opens a
//! transaction, and keeps taking changes that are already queued until none is left or
//! [`MAX_GROUP`] are in; then it commits. Batches therefore grow with load and shrink to
//! one change when the writer is idle: no timer, no added latency when there is nothing
//! to share. A change is answered only after its batch committed, so "acknowledged" still
//! means "durable"; a change that fails, or changes nothing, is rolled back to its
//! savepoint and answered at once. The delivery engine's writes (claims, outcomes) queue
//! for the writer connection itself, so they wait behind at most one batch.
//!
//! A request that is dropped (its client hung up) only drops its wait for the answer; the
//! change itself is applied or not as a whole, and its deliveries are handed over by the
//! commit like any other.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use sqlx::{Executor, Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{ChangeOutcome, ChangeRequest, ChangeStep, DeliveryHub, DeliveryJob, StoreError, StoreResult};

/// Most changes in one batch (kept or not): enough to share the commit's page writes, few enough that
/// the delivery engine's writes, which wait for the writer behind the open batch, never
/// wait long (see `engine_writes_wait_behind_a_few_changes_not_the_whole_queue`). 16, not
/// the earlier 8: on the fan-out bench (16 requests in flight) batches of 8 were always
/// full and the writer was busy 95 % of the time; at 16 it commits half as often, a batch
/// takes ~6 ms, and the writer waits for work ~30 % of the time.
pub(crate) const MAX_GROUP: usize = 16;

/// SQL a change appends to its last statement: its writes join the batch, and the next
/// change's savepoint is open already, so neither costs a round trip of its own.
pub(crate) const RELEASE_AND_NEXT: &str = "RELEASE change; SAVEPOINT change";

/// A queued change and where its answer goes.
pub(crate) struct Queued {
    req: ChangeRequest,
    answer: oneshot::Sender<StoreResult<ChangeOutcome>>,
}

/// The handle every clone of the store shares; the task ends when the last one is dropped.
#[derive(Debug, Clone)]
pub(crate) struct ChangeQueue {
    tx: mpsc::UnboundedSender<Queued>,
}

impl ChangeQueue {
    /// Queues `req` for the writer task and waits for its answer (after commit).
    pub(crate) async fn apply(&self, req: ChangeRequest) -> StoreResult<ChangeOutcome> {
        let (answer, rx) = oneshot::channel();
        self.tx
            .send(Queued { req, answer })
            .map_err(|_| StoreError::CommitFailed("the writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::CommitFailed("the writer stopped".into()))?
    }
}

/// What the writer task needs from its store: the change itself, run inside the batch's
/// transaction (the backend's `apply_in`).
pub(crate) trait ChangeWriter: Send + Sync + 'static {
    /// Applies `req` on `tx`, inside the `change` savepoint; `then` as in `apply_in`.
    fn apply<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Sqlite>,
        req: &'a ChangeRequest,
        then: &'static str,
    ) -> futures_util::future::BoxFuture<'a, StoreResult<ChangeStep>>;
}

/// Starts the writer task for `store`, writing through `pool` (the one writer
/// connection) and handing committed deliveries to `hub`.
pub(crate) fn start<W: ChangeWriter>(store: W, pool: SqlitePool, hub: Arc<DeliveryHub>) -> ChangeQueue {
    let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            write_batch(&store, &pool, &hub, first, &mut rx).await;
        }
    });
    ChangeQueue { tx }
}

/// What a batch owes its members once it is settled.
#[derive(Default)]
struct Owed {
    answers: Vec<(oneshot::Sender<StoreResult<ChangeOutcome>>, ChangeOutcome)>,
    jobs: Vec<DeliveryJob>,
    claimable: bool,
}

async fn write_batch<W: ChangeWriter>(
    store: &W,
    pool: &SqlitePool,
    hub: &DeliveryHub,
    first: Queued,
    rx: &mut mpsc::UnboundedReceiver<Queued>,
) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let _ = first.answer.send(Err(e.into()));
            return;
        }
    };
    let mut owed = Owed::default();
    let mut savepoint_open = false;
    let mut next = Some(first);
    let mut broken = None;
    let mut processed = 0;
    while let Some(q) = next.take() {
        processed += 1;
        if !savepoint_open {
            if let Err(e) = tx.execute("SAVEPOINT change").await {
                let _ = q.answer.send(Err(e.into()));
                broken = Some("opening a savepoint failed".to_owned());
                break;
            }
        }
        let run = AssertUnwindSafe(store.apply(&mut tx, &q.req, RELEASE_AND_NEXT)).catch_unwind();
        let result = match run.await {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("a tracker change panicked; it was rolled back");
                Err(StoreError::CommitFailed("the change failed".into()))
            }
        };
        savepoint_open = true;
        let undone = match result {
            Ok(ChangeStep::Keep {
                outcome,
                jobs,
                claimable,
                then_ran,
            }) => {
                if !then_ran {
                    if let Err(e) = tx.execute(RELEASE_AND_NEXT).await {
                        let _ = q.answer.send(Err(e.into()));
                        broken = Some("releasing a savepoint failed".to_owned());
                        break;
                    }
                }
                owed.jobs.extend(jobs);
                owed.claimable |= claimable;
                owed.answers.push((q.answer, outcome));
                None
            }
            Ok(ChangeStep::Discard(outcome)) => Some((q.answer, Ok(outcome))),
            // Only the PostgreSQL optimistic path asks for this.
            Ok(ChangeStep::Again) => Some((
                q.answer,
                Err(StoreError::CommitFailed(
                    "a batched change asked to run again".into(),
                )),
            )),
            Err(e) => Some((q.answer, Err(e))),
        };
        if let Some((answer, reply)) = undone {
            // Nothing of this change stays; the savepoint stays open for the next.
            if let Err(e) = tx.execute("ROLLBACK TO change").await {
                let _ = answer.send(Err(e.into()));
                broken = Some("rolling back to a savepoint failed".to_owned());
                break;
            }
            let _ = answer.send(reply);
        }
        // Counting every change, not only kept ones: a stream of no-op changes must not
        // keep the transaction (and the writer) open.
        if processed >= MAX_GROUP {
            break;
        }
        next = rx.try_recv().ok();
    }
    let result = match broken {
        // Dropping the transaction rolls the whole batch back.
        Some(why) => Err(why),
        None => tx.commit().await.map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => {
            // Answers first: the hand-off makes a task per delivery runnable, and the
            // callers waiting for their answers should not queue behind them.
            for (answer, outcome) in owed.answers {
                let _ = answer.send(Ok(outcome));
            }
            hub.hand_off(owed.jobs, owed.claimable);
        }
        Err(why) => {
            tracing::error!(error = %why, changes = owed.answers.len(), "a batch of changes was not committed");
            for (answer, _) in owed.answers {
                let _ = answer.send(Err(StoreError::CommitFailed(why.clone())));
            }
        }
    }
}
