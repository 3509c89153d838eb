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
//! savepoint and answered at once.
//!
//! The delivery engine's outcome batches and lease releases are written by this task too
//! ([`EngineWrite`]), in the open batch, each in a savepoint like a change, and taken
//! ahead of every queued change, so they wait behind at most the batch being written.
//! They used to take the writer connection in turns with the task; each hand-over (the
//! connection back to the pool, which pings it on release, then the waiting task woken)
//! left the writer idle, and an outcome batch of its own cost twice the writer time it
//! costs inside a change batch (fan-out bench: 25 % of the writer's time against 12 %).
//! Claims still queue for the writer connection itself and wait behind at most one
//! batch.
//!
//! The task runs on a thread of its own with a single-threaded runtime. Why: on the
//! shared runtime, every wake-up of the one writer queued behind the delivery tasks it had
//! just made runnable (thousands a second); on its own thread the fan-out bench ran
//! 18–19 % more changes per second. Deliveries it hands over are spawned on the engine's
//! runtime, not here.
//!
//! Changes run synchronously: the task takes the connection's SQLite handle from sqlx once
//! for a run of queued changes (`lock_handle`) and calls SQLite directly through rusqlite
//! (`sqlite/sync_writer.rs`), inside sqlx's transaction. Through sqlx, each of a change's
//! statements was a hand-off to the connection's own thread and back (~55 µs of CPU each
//! on this two-core machine), several times what SQLite's own work cost. The engine's
//! writes (outcome batches, lease releases) still run through sqlx: each carries many
//! deliveries' outcomes, so there are far fewer of them than changes.
//!
//! A request that is dropped (its client hung up) only drops its wait for the answer; the
//! change itself is applied or not as a whole, and its deliveries are handed over by the
//! commit like any other.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use sqlx::{Executor, Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};

use uuid::Uuid;

use super::sqlite::sync_writer;
use super::{
    AttemptRecord, AutoDisable, ChangeOutcome, ChangeRequest, ChangeStep, DeliveryHub, DeliveryJob,
    StoreError, StoreResult,
};

/// Most changes in one batch (kept or not): enough to share the commit's page writes, few enough that
/// the delivery engine's writes, which wait for the writer behind the open batch, never
/// wait long (see `engine_writes_wait_behind_a_few_changes_not_the_whole_queue`). 16, not
/// the earlier 8: on the fan-out bench (16 requests in flight) batches of 8 were always
/// full and the writer was busy 95 % of the time; at 16 it commits half as often, a batch
/// takes ~6 ms, and the writer waits for work ~30 % of the time.
pub(crate) const MAX_GROUP: usize = 16;

/// Ends a savepoint whose writes stay in the batch.
const RELEASE: &str = "RELEASE change";
/// Ends a savepoint whose writes are undone (the savepoint itself is popped too).
const UNDO: &str = "ROLLBACK TO change; RELEASE change";

/// A queued change and where its answer goes.
pub(crate) struct Queued {
    req: ChangeRequest,
    answer: oneshot::Sender<StoreResult<ChangeOutcome>>,
}

/// A write of the delivery engine's, taken ahead of queued changes, and where its answer
/// goes once durable.
pub(crate) enum EngineWrite {
    /// A batch of finished attempts (the recorder's); answered with the webhooks it
    /// disabled.
    Outcomes {
        records: Arc<[AttemptRecord]>,
        auto: AutoDisable,
        now: i64,
        answer: oneshot::Sender<StoreResult<Vec<Uuid>>>,
    },
    /// Leases given back (jobs a full lane turned away, a stopping engine's); answered
    /// with how many rows were released.
    Release {
        leases: Vec<(Uuid, String)>,
        answer: oneshot::Sender<StoreResult<u64>>,
    },
}

/// What an engine write did, kept until its batch is durable.
enum Done {
    Outcomes(oneshot::Sender<StoreResult<Vec<Uuid>>>, Vec<Uuid>),
    Release(oneshot::Sender<StoreResult<u64>>, u64),
}

impl Done {
    fn answer(self, committed: Result<(), &str>) {
        let failed = |why: &str| StoreError::CommitFailed(why.to_owned());
        match self {
            Done::Outcomes(answer, disabled) => {
                let _ = answer.send(committed.map(|()| disabled).map_err(failed));
            }
            Done::Release(answer, n) => {
                let _ = answer.send(committed.map(|()| n).map_err(failed));
            }
        }
    }
}

impl EngineWrite {
    /// Answers with `e`: the write did not happen.
    fn refuse(self, e: StoreError) {
        match self {
            EngineWrite::Outcomes { answer, .. } => {
                let _ = answer.send(Err(e));
            }
            EngineWrite::Release { answer, .. } => {
                let _ = answer.send(Err(e));
            }
        }
    }
}

/// One item of a batch.
enum Work {
    Change(Queued),
    Engine(EngineWrite),
}

/// The handle every clone of the store shares; the task ends when the last one is dropped.
#[derive(Debug, Clone)]
pub(crate) struct ChangeQueue {
    tx: mpsc::UnboundedSender<Queued>,
    engine: mpsc::UnboundedSender<EngineWrite>,
}

fn stopped() -> StoreError {
    StoreError::CommitFailed("the writer stopped".into())
}

impl ChangeQueue {
    /// Queues `req` for the writer task and waits for its answer (after commit).
    pub(crate) async fn apply(&self, req: ChangeRequest) -> StoreResult<ChangeOutcome> {
        let (answer, rx) = oneshot::channel();
        self.tx.send(Queued { req, answer }).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues a batch of attempt outcomes ahead of every queued change and waits until it
    /// is durable; returns the webhooks it disabled.
    pub(crate) async fn record(
        &self,
        records: Arc<[AttemptRecord]>,
        auto: AutoDisable,
        now: i64,
    ) -> StoreResult<Vec<Uuid>> {
        let (answer, rx) = oneshot::channel();
        self.engine
            .send(EngineWrite::Outcomes {
                records,
                auto,
                now,
                answer,
            })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues lease releases ahead of every queued change and waits until they are
    /// durable; returns how many rows were released.
    pub(crate) async fn release(&self, leases: Vec<(Uuid, String)>) -> StoreResult<u64> {
        let (answer, rx) = oneshot::channel();
        self.engine
            .send(EngineWrite::Release { leases, answer })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// What the writer task needs from its store: the change itself, run synchronously on
/// the batch's connection (`sqlite/sync_writer.rs`), and the engine's writes, run
/// through sqlx on the batch's transaction.
pub(crate) trait ChangeWriter: Send + Sync + 'static {
    /// Applies `req` on `conn`, inside the `change` savepoint.
    fn apply(&self, conn: &rusqlite::Connection, req: &ChangeRequest) -> StoreResult<ChangeStep>;

    /// Writes a batch of attempt outcomes on `tx`, inside the `change` savepoint; returns
    /// the webhooks it disabled.
    fn record<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Sqlite>,
        records: &'a [AttemptRecord],
        auto: AutoDisable,
        now: i64,
    ) -> futures_util::future::BoxFuture<'a, StoreResult<Vec<Uuid>>>;

    /// Gives `leases` back on `tx`, inside the `change` savepoint; returns how many rows
    /// were released.
    fn release<'a>(
        &'a self,
        tx: &'a mut Transaction<'static, Sqlite>,
        leases: &'a [(Uuid, String)],
    ) -> futures_util::future::BoxFuture<'a, StoreResult<u64>>;
}

/// Starts the writer task for `store` on its own thread, writing through `pool` (the one
/// writer connection) and handing committed deliveries to `hub`. The thread ends when
/// every [`ChangeQueue`] is dropped.
pub(crate) fn start<W: ChangeWriter>(
    store: W,
    pool: SqlitePool,
    hub: Arc<DeliveryHub>,
) -> std::io::Result<ChangeQueue> {
    let (tx, rx) = mpsc::unbounded_channel::<Queued>();
    let (engine, erx) = mpsc::unbounded_channel::<EngineWrite>();
    let mut queues = Queues {
        changes: rx,
        engine: erx,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let task = async move {
        loop {
            let first = tokio::select! {
                biased;
                Some(w) = queues.engine.recv() => Work::Engine(w),
                Some(c) = queues.changes.recv() => Work::Change(c),
                else => break,
            };
            write_batch(&store, &pool, &hub, first, &mut queues).await;
        }
    };
    std::thread::Builder::new()
        .name("herald-writer".into())
        .spawn(move || runtime.block_on(task))?;
    Ok(ChangeQueue { tx, engine })
}

/// The writer task's two inboxes.
struct Queues {
    changes: mpsc::UnboundedReceiver<Queued>,
    engine: mpsc::UnboundedReceiver<EngineWrite>,
}

impl Queues {
    /// The next item already queued, the engine's first: its writes must not wait
    /// behind a queue of changes (a long wait lets leases expire).
    fn next_queued(&mut self) -> Option<Work> {
        if let Ok(w) = self.engine.try_recv() {
            return Some(Work::Engine(w));
        }
        self.changes.try_recv().ok().map(Work::Change)
    }
}

/// What a batch owes its members once it is settled.
#[derive(Default)]
struct Owed {
    answers: Vec<(oneshot::Sender<StoreResult<ChangeOutcome>>, ChangeOutcome)>,
    engine: Vec<Done>,
    jobs: Vec<DeliveryJob>,
    claimable: bool,
}

async fn write_batch<W: ChangeWriter>(
    store: &W,
    pool: &SqlitePool,
    hub: &DeliveryHub,
    first: Work,
    queues: &mut Queues,
) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            refuse(first, e.into());
            return;
        }
    };
    let mut owed = Owed::default();
    let mut next = Some(first);
    let mut broken = None;
    // Counting every item, not only kept ones: a stream of no-op changes must not keep
    // the transaction (and the writer) open.
    let mut processed = 0;
    while let Some(work) = next.take() {
        let step = match work {
            Work::Change(q) => changes(store, &mut tx, q, queues, &mut owed, &mut processed).await,
            Work::Engine(w) => {
                processed += 1;
                engine_write(store, &mut tx, w, &mut owed)
                    .await
                    .map(|()| (processed < MAX_GROUP).then(|| queues.next_queued()).flatten())
            }
        };
        match step {
            Ok(n) => next = n,
            Err(why) => {
                broken = Some(why);
                break;
            }
        }
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
            for done in owed.engine {
                done.answer(Ok(()));
            }
            hub.hand_off(owed.jobs, owed.claimable);
        }
        Err(why) => {
            tracing::error!(error = %why, changes = owed.answers.len(), engine_writes = owed.engine.len(), "a batch of changes was not committed");
            for (answer, _) in owed.answers {
                let _ = answer.send(Err(StoreError::CommitFailed(why.clone())));
            }
            for done in owed.engine {
                done.answer(Err(&why));
            }
        }
    }
}

/// Answers an item that never ran.
fn refuse(work: Work, e: StoreError) {
    match work {
        Work::Change(q) => {
            let _ = q.answer.send(Err(e));
        }
        Work::Engine(w) => w.refuse(e),
    }
}

/// Runs `first` and the changes queued behind it (up to the batch's limit) on the
/// connection's handle, taken from sqlx once for all of them; returns the next item when
/// it is the engine's (those run through sqlx). `Err` when the transaction can no longer
/// be used (every change taken was answered or is owed an answer).
async fn changes<W: ChangeWriter>(
    store: &W,
    tx: &mut Transaction<'static, Sqlite>,
    first: Queued,
    queues: &mut Queues,
    owed: &mut Owed,
    processed: &mut usize,
) -> Result<Option<Work>, String> {
    let mut locked = match tx.lock_handle().await {
        Ok(locked) => locked,
        Err(e) => {
            let _ = first.answer.send(Err(e.into()));
            return Err("the writer's handle could not be taken".to_owned());
        }
    };
    let ran = herald_sqlite_handle::with_connection(&mut locked, |conn| {
        let mut q = first;
        loop {
            *processed += 1;
            change(store, conn, q, owed)?;
            if *processed >= MAX_GROUP {
                return Ok(None);
            }
            match queues.next_queued() {
                Some(Work::Change(c)) => q = c,
                other => return Ok(other),
            }
        }
    });
    // A handle rusqlite refused drops the change unanswered: its caller hears that the
    // writer stopped.
    ran.map_err(|e| format!("the writer's handle could not be used: {e}"))?
}

/// Runs one change in a `change` savepoint of its own: kept and answered after commit,
/// or undone alone and answered now. `Err` when the transaction can no longer be used
/// (the change itself was answered).
fn change<W: ChangeWriter>(
    store: &W,
    conn: &rusqlite::Connection,
    q: Queued,
    owed: &mut Owed,
) -> Result<(), String> {
    if let Err(e) = sync_writer::run(conn, "SAVEPOINT change") {
        let _ = q.answer.send(Err(e));
        return Err("opening a savepoint failed".to_owned());
    }
    let result =
        std::panic::catch_unwind(AssertUnwindSafe(|| store.apply(conn, &q.req))).unwrap_or_else(|_| {
            tracing::error!("a change on the writer task panicked; it was rolled back");
            Err(StoreError::CommitFailed("the write failed".into()))
        });
    let undone = match result {
        Ok(ChangeStep::Keep {
            outcome,
            jobs,
            claimable,
        }) => {
            if let Err(e) = sync_writer::run(conn, RELEASE) {
                let _ = q.answer.send(Err(e));
                return Err("releasing a savepoint failed".to_owned());
            }
            owed.jobs.extend(jobs);
            owed.claimable |= claimable;
            owed.answers.push((q.answer, outcome));
            return Ok(());
        }
        Ok(ChangeStep::Discard(outcome)) => Ok(outcome),
        // Only the PostgreSQL optimistic path asks for this.
        Ok(ChangeStep::Again) => Err(StoreError::CommitFailed(
            "a batched change asked to run again".into(),
        )),
        Err(e) => Err(e),
    };
    // Nothing of this change stays.
    if let Err(e) = conn.execute_batch(UNDO) {
        let _ = q.answer.send(Err(e.into()));
        return Err("rolling back to a savepoint failed".to_owned());
    }
    let _ = q.answer.send(undone);
    Ok(())
}

/// Runs one engine write in a `change` savepoint of its own, like a change: kept and
/// answered after commit, or rolled back alone and answered with the error. `Err` when
/// the transaction can no longer be used (the write itself was answered).
async fn engine_write<W: ChangeWriter>(
    store: &W,
    tx: &mut Transaction<'static, Sqlite>,
    w: EngineWrite,
    owed: &mut Owed,
) -> Result<(), String> {
    if let Err(e) = tx.execute("SAVEPOINT change").await {
        w.refuse(e.into());
        return Err("opening a savepoint failed".to_owned());
    }
    match w {
        EngineWrite::Outcomes {
            records,
            auto,
            now,
            answer,
        } => {
            let result = guarded(store.record(tx, &records, auto, now)).await;
            settle(tx, result, answer, owed, Done::Outcomes).await
        }
        EngineWrite::Release { leases, answer } => {
            let result = guarded(store.release(tx, &leases)).await;
            settle(tx, result, answer, owed, Done::Release).await
        }
    }
}

/// `write`'s result, with a panic turned into an error: the write is rolled back to its
/// savepoint and the batch goes on without it.
async fn guarded<T>(write: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
    AssertUnwindSafe(write).catch_unwind().await.unwrap_or_else(|_| {
        tracing::error!("a write on the writer task panicked; it was rolled back");
        Err(StoreError::CommitFailed("the write failed".into()))
    })
}

/// Keeps a successful engine write (answered after commit) or rolls it back to its
/// savepoint and answers with the error now.
async fn settle<T>(
    tx: &mut Transaction<'static, Sqlite>,
    result: StoreResult<T>,
    answer: oneshot::Sender<StoreResult<T>>,
    owed: &mut Owed,
    done: fn(oneshot::Sender<StoreResult<T>>, T) -> Done,
) -> Result<(), String> {
    let (sql, broken) = match &result {
        Ok(_) => (RELEASE, "releasing a savepoint failed"),
        Err(_) => (UNDO, "rolling back to a savepoint failed"),
    };
    if let Err(e) = tx.execute(sql).await {
        let _ = answer.send(Err(e.into()));
        return Err(broken.to_owned());
    }
    match result {
        Ok(value) => owed.engine.push(done(answer, value)),
        Err(e) => {
            let _ = answer.send(Err(e));
        }
    }
    Ok(())
}
