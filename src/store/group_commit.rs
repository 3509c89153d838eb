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
//! batch (see below).
//!
//! The task runs on a thread of its own with a single-threaded runtime. Why: on the
//! shared runtime, every wake-up of the one writer queued behind the delivery tasks it had
//! just made runnable (thousands a second); on its own thread the fan-out bench ran
//! 18–19 % more changes per second. Deliveries it hands over are spawned on the engine's
//! runtime, not here.
//!
//! The batches run synchronously: the task takes the connection's SQLite handle from
//! sqlx (`lock_handle`) and calls SQLite directly through rusqlite
//! (`sqlite/sync_writer.rs`), `BEGIN` and `COMMIT` included. Through sqlx, each statement
//! was a hand-off to the connection's own thread and back (~55 µs of CPU each on this
//! two-core machine); run here, the change path costs about a tenth less CPU per change
//! and sqlx's connection thread is idle (BENCHMARKS.md, runs AZ and BJ). It is the whole
//! batch, engine writes included: a spike that handed the handle back to sqlx between
//! changes (and prepared statements again each time) saved only a quarter of what the
//! whole batch saved there.
//!
//! The task keeps the connection, and its statements prepared, from one batch to the
//! next, waiting for work with it, until another writer asks the pool for it
//! (`writer_pool.rs`); then it hands it over at the end of the batch in progress, and
//! takes it again from the pool, behind that writer, when work comes. Why: when every
//! batch took the connection afresh, every batch parsed its statements again (13 % of
//! the writer thread on the fan-out bench, 18 % on `steady`, whose batches hold one
//! change each), and its `BEGIN` and `COMMIT` went through sqlx's thread. Claims and the
//! other writers (webhooks, users, log pruning) therefore still wait behind at most one
//! batch.
//!
//! A request that is dropped (its client hung up) only drops its wait for the answer; the
//! change itself is applied or not as a whole, and its deliveries are handed over by the
//! commit like any other.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use sqlx::Sqlite;
use tokio::sync::{mpsc, oneshot};

use uuid::Uuid;

use super::sqlite::sync_writer;
use super::writer_pool::{Wanted, WriterPool};
use super::{
    AttemptRecord, AutoDisable, ChangeOutcome, ChangeRequest, ChangeStep, DeliveryHub, DeliveryJob,
    StoreError, StoreResult,
};

/// Most items in one batch (changes and engine writes, kept or not): enough to share the
/// commit's page writes, few enough that the delivery engine's writes, which wait for the
/// writer behind the open batch, never wait long (see
/// `engine_writes_wait_behind_a_few_changes_not_the_whole_queue`). 16 replaced the first
/// 8 when batches of 8 were always full on the fan-out bench; 32, as many as the bench's
/// API clients, replaced 16 when the writer kept its connection between batches: each
/// commit writes every page its batch touched to the WAL once, and batches twice as large
/// share more of them (the tails of the event, delivery and attempt tables and their
/// indexes). In five interleaved pairs of fan-out gauges the writer's threads spent 9.5 %
/// less CPU per change and Herald 7.5 % less per delivery (4 of 5 pairs lower). A full
/// batch takes ~8 ms of the writer on this 2-core machine: the longest an engine write
/// waits.
pub(crate) const MAX_GROUP: usize = 32;

/// Statements the writer keeps prepared: a change runs about ten (its fan-out's inserts
/// one per number of rows it writes), and the recorder's come in at most eight lengths
/// each (`value_rows::power_of_two_chunks`): a few dozen for a tenant of a steady size,
/// so that once seen they are rarely parsed again.
const STATEMENT_CACHE: usize = 64;

/// Opens a batch's transaction holding SQLite's write lock from the start, waiting for it
/// when another process (the `herald` CLI) holds it: a deferred `BEGIN` would read first
/// and fail the whole batch at its first write (`writer_pool::WriteBegin`; test
/// `a_change_waits_for_another_process_holding_the_write_lock`).
const BEGIN: &str = super::writer_pool::SQLITE_BEGIN;
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

/// One item of a batch. (A change is the large variant; a batch holds at most
/// [`MAX_GROUP`] of them for one turn of the writer, so boxing it would only add an
/// allocation per change.)
#[allow(clippy::large_enum_variant)]
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

/// What the writer task needs from its store, each run synchronously on the batch's
/// connection (`sqlite/sync_writer.rs`), inside the batch's transaction and a `change`
/// savepoint of its own.
pub(crate) trait ChangeWriter: Send + Sync + 'static {
    /// Applies `req`.
    fn apply(&self, conn: &rusqlite::Connection, req: &ChangeRequest) -> StoreResult<ChangeStep>;

    /// Writes a batch of attempt outcomes; returns the webhooks it disabled.
    fn record(
        &self,
        conn: &rusqlite::Connection,
        records: &[AttemptRecord],
        auto: AutoDisable,
        now: i64,
    ) -> StoreResult<Vec<Uuid>>;

    /// Gives `leases` back; returns how many rows were released.
    fn release(&self, conn: &rusqlite::Connection, leases: &[(Uuid, String)]) -> StoreResult<u64>;
}

/// Starts the writer task for `store` on its own thread, writing through `writer` (the
/// one writer connection, kept between batches until someone else asks for it) and
/// handing committed deliveries to `hub`. The thread ends when every [`ChangeQueue`] is
/// dropped.
pub(crate) fn start<W: ChangeWriter>(
    store: W,
    writer: WriterPool<Sqlite>,
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
    // Made on the thread itself: the task holds SQLite statements (not `Send`) across
    // its waits.
    let task = move || {
        runtime.block_on(async move {
            while let Some(first) = queues.next().await {
                keep(&store, &writer, &hub, first, &mut queues).await;
            }
        });
    };
    std::thread::Builder::new()
        .name("herald-writer".into())
        .spawn(task)?;
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

    /// The next item, the engine's first; `None` once the queues are closed.
    async fn next(&mut self) -> Option<Work> {
        tokio::select! {
            biased;
            Some(w) = self.engine.recv() => Some(Work::Engine(w)),
            Some(c) = self.changes.recv() => Some(Work::Change(c)),
            else => None,
        }
    }

    /// The next item, or `None` when someone else asks for the writer connection (or
    /// the queues are closed) first.
    async fn next_unless_wanted(&mut self, wanted: &Wanted) -> Option<Work> {
        loop {
            if wanted.is_wanted() {
                return None;
            }
            tokio::select! {
                biased;
                () = wanted.rung() => {}
                next = self.next() => return next,
            }
        }
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

/// Takes the writer connection and writes batches on it, starting with `first`, until
/// someone else asks for the connection or the queues close; the connection waits for
/// more work in between with the batches' statements prepared (see `writer_pool.rs`).
async fn keep<W: ChangeWriter>(
    store: &W,
    writer: &WriterPool<Sqlite>,
    hub: &DeliveryHub,
    first: Work,
    queues: &mut Queues,
) {
    // The pool itself: the task's own turn must not count as someone waiting.
    let mut conn = match writer.pool().acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            refuse(first, e.into());
            return;
        }
    };
    let mut locked = match conn.lock_handle().await {
        Ok(locked) => locked,
        Err(e) => {
            refuse(first, e.into());
            return;
        }
    };
    // Taken inside, so that it can be refused here if rusqlite cannot use the handle.
    let mut first = Some(first);
    let mut broken = false;
    let kept = herald_sqlite_handle::with_connection_async(&mut locked, async |conn| {
        // Room for every statement the batches prepare (rusqlite keeps 16 by default):
        // one evicted is prepared again by the next change that runs it.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mut next = first.take();
        loop {
            let work = match next.take() {
                Some(work) => work,
                None => match queues.next_unless_wanted(writer.wanted()).await {
                    Some(work) => work,
                    None => return,
                },
            };
            if write_batch(store, conn, hub, work, queues).is_err() {
                broken = true;
                return;
            }
            // Every statement is reset after its run (rusqlite's `Rows` and executes
            // do it): one left half-run would keep a read snapshot open while the
            // connection waits, and checkpoints could not pass it.
            debug_assert!(!conn.is_busy(), "a writer statement was left running");
            if writer.wanted().is_wanted() {
                return;
            }
            next = queues.next_queued();
        }
    })
    .await;
    drop(locked);
    if let (Err(e), Some(first)) = (&kept, first) {
        refuse(
            first,
            StoreError::CommitFailed(format!("the writer's handle could not be used: {e}")),
        );
    }
    if broken {
        // Possibly still inside a transaction sqlx knows nothing of: never hand it out.
        conn.close_on_drop();
    }
}

/// Writes one batch in a transaction of its own, starting with `first` and taking what
/// is already queued (up to [`MAX_GROUP`] items), then settles it: answers and hand-offs
/// once committed, errors for all when not. `Err` when the connection should not be
/// used again: no transaction could be opened on it, or the batch's could not be rolled
/// back.
fn write_batch<W: ChangeWriter>(
    store: &W,
    conn: &rusqlite::Connection,
    hub: &DeliveryHub,
    first: Work,
    queues: &mut Queues,
) -> Result<(), ()> {
    if let Err(e) = sync_writer::run(conn, BEGIN) {
        refuse(first, e);
        // Not knowing what state the connection is in, take a fresh one.
        return Err(());
    }
    let mut owed = Owed::default();
    // Counting every item, not only kept ones: a stream of no-op changes must not keep
    // the transaction (and the writer) open.
    let ran = (|| {
        let mut work = first;
        for _ in 1..MAX_GROUP {
            item(store, conn, work, &mut owed)?;
            match queues.next_queued() {
                Some(next) => work = next,
                None => return Ok(()),
            }
        }
        item(store, conn, work, &mut owed)
    })();
    let result = ran.and_then(|()| sync_writer::run(conn, "COMMIT").map_err(|e| e.to_string()));
    let mut usable = Ok(());
    if result.is_err() && !conn.is_autocommit() {
        // The whole batch is undone.
        if sync_writer::run(conn, "ROLLBACK").is_err() && !conn.is_autocommit() {
            usable = Err(());
        }
    }
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
    usable
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

/// Runs one item in a `change` savepoint of its own: kept and answered after commit, or
/// undone alone and answered now (a change that failed or changed nothing, an engine
/// write that failed). A panic counts as a failure. `Err` when the transaction can no
/// longer be used (the item itself was answered).
fn item<W: ChangeWriter>(
    store: &W,
    conn: &rusqlite::Connection,
    work: Work,
    owed: &mut Owed,
) -> Result<(), String> {
    if let Err(e) = sync_writer::run(conn, "SAVEPOINT change") {
        refuse(work, e);
        return Err("opening a savepoint failed".to_owned());
    }
    let kept = match work {
        Work::Change(q) => match guarded(|| store.apply(conn, &q.req)) {
            Ok(ChangeStep::Keep {
                outcome,
                jobs,
                claimable,
            }) => Ok(Kept::Change(q.answer, outcome, jobs, claimable)),
            Ok(ChangeStep::Discard(outcome)) => Err(Undone::Change(q.answer, Ok(outcome))),
            // Only the PostgreSQL optimistic path asks for this.
            Ok(ChangeStep::Again) => Err(Undone::Change(
                q.answer,
                Err(StoreError::CommitFailed(
                    "a batched change asked to run again".into(),
                )),
            )),
            Err(e) => Err(Undone::Change(q.answer, Err(e))),
        },
        Work::Engine(EngineWrite::Outcomes {
            records,
            auto,
            now,
            answer,
        }) => match guarded(|| store.record(conn, &records, auto, now)) {
            Ok(disabled) => Ok(Kept::Engine(Done::Outcomes(answer, disabled))),
            Err(e) => Err(Undone::Engine(
                EngineWrite::Outcomes {
                    records,
                    auto,
                    now,
                    answer,
                },
                e,
            )),
        },
        Work::Engine(EngineWrite::Release { leases, answer }) => {
            match guarded(|| store.release(conn, &leases)) {
                Ok(n) => Ok(Kept::Engine(Done::Release(answer, n))),
                Err(e) => Err(Undone::Engine(EngineWrite::Release { leases, answer }, e)),
            }
        }
    };
    match kept {
        Ok(kept) => {
            if let Err(e) = sync_writer::run(conn, RELEASE) {
                kept.refuse(e);
                return Err("releasing a savepoint failed".to_owned());
            }
            kept.owe(owed);
            Ok(())
        }
        Err(undone) => {
            // Nothing of this item stays.
            if let Err(e) = conn.execute_batch(UNDO) {
                undone.answer(Some(e.into()));
                return Err("rolling back to a savepoint failed".to_owned());
            }
            undone.answer(None);
            Ok(())
        }
    }
}

/// An item whose writes stay in the batch, until it is answered after commit.
enum Kept {
    Change(
        oneshot::Sender<StoreResult<ChangeOutcome>>,
        ChangeOutcome,
        Vec<DeliveryJob>,
        bool,
    ),
    Engine(Done),
}

impl Kept {
    /// Adds the item to what the batch owes.
    fn owe(self, owed: &mut Owed) {
        match self {
            Kept::Change(answer, outcome, jobs, claimable) => {
                owed.jobs.extend(jobs);
                owed.claimable |= claimable;
                owed.answers.push((answer, outcome));
            }
            Kept::Engine(done) => owed.engine.push(done),
        }
    }

    /// Answers with `e`: the item's writes could not be kept.
    fn refuse(self, e: StoreError) {
        match self {
            Kept::Change(answer, ..) => {
                let _ = answer.send(Err(e));
            }
            Kept::Engine(done) => done.answer(Err(&e.to_string())),
        }
    }
}

/// An item whose writes were undone, and the answer it gets now.
enum Undone {
    Change(
        oneshot::Sender<StoreResult<ChangeOutcome>>,
        StoreResult<ChangeOutcome>,
    ),
    Engine(EngineWrite, StoreError),
}

impl Undone {
    /// Answers the item: with `broken` when undoing it failed, else with its own result.
    fn answer(self, broken: Option<StoreError>) {
        match (self, broken) {
            (Undone::Change(answer, result), Some(e)) => {
                if let Err(original) = &result {
                    tracing::error!(error = %original, "a change failed and could not be undone alone");
                }
                let _ = answer.send(Err(e));
            }
            (Undone::Change(answer, result), None) => {
                let _ = answer.send(result);
            }
            (Undone::Engine(w, e), broken) => {
                if broken.is_some() {
                    tracing::error!(error = %e, "an engine write failed and could not be undone alone");
                }
                w.refuse(broken.unwrap_or(e));
            }
        }
    }
}

/// `write`'s result, with a panic turned into an error: the write is rolled back to its
/// savepoint and the batch goes on without it.
fn guarded<T>(write: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(write)).unwrap_or_else(|_| {
        tracing::error!("a write on the writer task panicked; it was rolled back");
        Err(StoreError::CommitFailed("the write failed".into()))
    })
}
