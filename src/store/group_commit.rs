//! Group commit for SQLite's tracker changes: one writer (a thread of its own, see
//! [`start`]) writes every change, running the ones that queued while it worked back to
//! back in one transaction, each in a savepoint of its own, made durable by one `COMMIT`.
//!
//! Why: SQLite has one writer, and what limits it is not SQL but the time around it.
//! Measured on the fan-out bench: a commit per change appended the same hot pages (the
//! tails of the event and delivery tables and their indexes) to the WAL again and again
//! (~100 MB/s at ~420 changes/s), and when changes took turns at the writer, each hand-over
//! from one request's task to the next cost a wake-up on a busy two-core machine, about
//! as long as the change itself. A single writer that keeps the connection and pulls the
//! next queued change itself pays neither.
//!
//! How a batch forms and closes: the writer takes the first queued change, opens a
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
/// full and the writer never idle; at 16 it commits half as often and a batch takes ~6 ms.
pub(crate) const MAX_GROUP: usize = 16;

/// SQL a change appends to its last statement: its writes join the batch, and the next
/// change's savepoint is open already, so neither costs a round trip of its own.
pub(crate) const RELEASE_AND_NEXT: &str = "RELEASE change; SAVEPOINT change";

/// A queued change and where its answer goes.
pub(crate) struct Queued {
    req: ChangeRequest,
    answer: oneshot::Sender<StoreResult<ChangeOutcome>>,
}

/// The handle every clone of the store shares; the writer thread ends when the last one is dropped.
#[derive(Debug, Clone)]
pub(crate) struct ChangeQueue {
    tx: mpsc::UnboundedSender<Queued>,
}

impl ChangeQueue {
    /// Queues `req` for the writer and waits for its answer (after commit).
    pub(crate) async fn apply(&self, req: ChangeRequest) -> StoreResult<ChangeOutcome> {
        let (answer, rx) = oneshot::channel();
        self.tx
            .send(Queued { req, answer })
            .map_err(|_| StoreError::CommitFailed("the writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::CommitFailed("the writer stopped".into()))?
    }
}

/// What the writer needs from its store: the change itself, run inside the batch's
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

/// Starts the writer for `store` on a thread of its own, writing through `pool` (the one
/// writer connection) and handing committed deliveries to `hub` on the caller's runtime.
/// The thread ends when the last [`ChangeQueue`] is dropped.
///
/// Why a thread and not a task: a change is several round trips to the connection's
/// worker thread, and after each one a task waits in its runtime's run queue behind every
/// runnable task — under load, hundreds of delivery attempts. Measured on the fan-out
/// bench, the writer then used a third of a core while the machine sat ~20 % idle and
/// changes/s stayed flat however many requests were in flight: the writer was bounded by
/// wake-up latency, not work. Its own thread, with nothing else to run, resumes as soon as
/// the operating system wakes it.
pub(crate) fn start<W: ChangeWriter>(
    store: W,
    pool: SqlitePool,
    hub: Arc<DeliveryHub>,
) -> std::io::Result<ChangeQueue> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Queued>();
    // Delivery attempts are spawned by the hand-off: they belong on the caller's runtime.
    let main = tokio::runtime::Handle::current();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("herald-writer".into())
        .spawn(move || {
            runtime.block_on(async move {
                while let Some(first) = rx.recv().await {
                    write_batch(&store, &pool, &hub, &main, first, &mut rx).await;
                }
            });
        })?;
    Ok(ChangeQueue { tx })
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
    main: &tokio::runtime::Handle,
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
            // Answers first: the hand-off wakes a task per delivery, and the callers
            // waiting for their answers should not queue behind them.
            for (answer, outcome) in owed.answers {
                let _ = answer.send(Ok(outcome));
            }
            let _on_main = main.enter();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::UserRef;
    use crate::domain::event_type::EntityKind;
    use crate::store::{ChangeOp, EntityRow, FreshSink, Lease, TargetRow};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use uuid::Uuid;

    /// Keeps every change without writing anything, and owes one delivery for it.
    struct OneJobPerChange;

    impl ChangeWriter for OneJobPerChange {
        fn apply<'a>(
            &'a self,
            _tx: &'a mut Transaction<'static, Sqlite>,
            req: &'a ChangeRequest,
            _then: &'static str,
        ) -> futures_util::future::BoxFuture<'a, StoreResult<ChangeStep>> {
            let row = EntityRow {
                id: 1,
                uuid: Uuid::nil(),
                kind: req.kind,
                parent: None,
                project_id: Some(1),
                position: None,
                version: 0,
                data: serde_json::Map::new(),
                created_at: req.now,
                updated_at: req.now,
            };
            let job = DeliveryJob {
                id: Uuid::new_v4(),
                tenant_id: req.tenant_id,
                event_type: "Project:Updated".into(),
                body: bytes::Bytes::from_static(b"{}"),
                format_headers: Arc::from(Vec::new()),
                attempts: 0,
                tries: 0,
                lease: Lease {
                    token: "t".into(),
                    until: i64::MAX,
                },
                target: Arc::new(TargetRow::example()),
            };
            Box::pin(async move {
                Ok(ChangeStep::Keep {
                    outcome: ChangeOutcome::Unchanged(row),
                    jobs: vec![job],
                    claimable: false,
                    then_ran: false,
                })
            })
        }
    }

    /// Reports the name of the thread each handed-off job's task runs on.
    struct ThreadOfAttempt(mpsc::UnboundedSender<String>);

    impl FreshSink for ThreadOfAttempt {
        fn hand_off(&self, jobs: Vec<DeliveryJob>) {
            for _ in jobs {
                let report = self.0.clone();
                tokio::spawn(async move {
                    let _ = report.send(std::thread::current().name().unwrap_or_default().to_owned());
                });
            }
        }

        fn wake(&self) {}
    }

    fn change() -> ChangeRequest {
        ChangeRequest {
            tenant_id: 1,
            tenant: "default".into(),
            kind: EntityKind::Project,
            op: ChangeOp::Update { id: 1 },
            position: None,
            actor: UserRef {
                id: 1,
                uuid: Uuid::nil(),
                account_id: "a".into(),
                name: "A".into(),
                initials: "A".into(),
                email: String::new(),
            },
            now: 0,
            compute: Arc::new(|_| Ok(serde_json::Map::new())),
            normalize: None,
        }
    }

    /// The writer has a thread of its own, but the delivery attempts a batch hands off
    /// must run on the caller's runtime with every other attempt, not on the writer's
    /// thread, whose every moment belongs to the next batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn handed_off_attempts_run_on_the_callers_runtime_not_on_the_writer() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().in_memory(true))
            .await
            .unwrap();
        let hub = Arc::new(DeliveryHub::default());
        let (report, mut reports) = mpsc::unbounded_channel();
        hub.attach(Arc::new(ThreadOfAttempt(report)), 60_000);
        let queue = start(OneJobPerChange, pool, hub).unwrap();
        for _ in 0..3 {
            assert!(matches!(
                queue.apply(change()).await.unwrap(),
                ChangeOutcome::Unchanged(_)
            ));
            let thread = reports.recv().await.unwrap();
            assert!(thread.starts_with("tokio-"), "an attempt ran on {thread:?}");
        }
    }
}
