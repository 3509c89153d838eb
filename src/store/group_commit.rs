//! Group commit for SQLite's tracker changes: changes that queue for the writer while
//! another is running join one open transaction, each in its own savepoint, and are made
//! durable by one `COMMIT`.
//!
//! Why: on SQLite a commit is the most expensive statement of a change (it appends every
//! page the transaction dirtied to the WAL, and consecutive changes dirty mostly the same
//! pages: the tails of the event and delivery tables and their indexes). The bench
//! measured ~100 MB/s of WAL writes at ~420 changes/s with one commit per change. Sharing
//! the commit among the changes that were waiting anyway writes those pages once.
//!
//! How a batch forms and closes. A change waits for the batch lock (FIFO), opens the
//! transaction if none is open, runs in the savepoint `change` (rolled back alone on
//! error, released with the change's last statement, see [`RELEASE_AND_NEXT`]), and then
//! commits the batch itself if nobody is queued behind it or the batch is full; otherwise
//! it leaves the batch open for the next change and waits until its batch is settled. The
//! API answers only after that, so "acknowledged" still means "durable". Batches therefore
//! grow with load and shrink to one change when the writer is idle: no timer, no added
//! latency when there is nothing to share. Engine writes (claims, outcomes) queue for the
//! writer connection itself and so wait behind at most one batch.
//!
//! Cancellation: a request dropped at any point cannot leave the batch open forever or
//! half-applied. A change dropped while it ran leaves its savepoint marked in use; whoever
//! uses the batch next (the next change, or the commit) first rolls back to it — which
//! undoes a half-written change and is harmless after a finished one, whose last
//! statement already released it and opened the next. A dropped [`Turn`] or a waiter that
//! gave up before its turn closes the batch when nobody else will; commits run in their
//! own task, so a member dropped mid-commit cannot cut it short.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use sqlx::{Executor, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use super::{DeliveryHub, DeliveryJob, StoreError, StoreResult};

/// Most changes in one batch: enough to share the commit's page writes, few enough that
/// the delivery engine's writes, which wait for the writer behind the open batch, never
/// wait long (see `engine_writes_wait_behind_a_few_changes_not_the_whole_queue`).
pub(crate) const MAX_GROUP: usize = 8;

/// SQL a change appends to its last statement: its writes join the batch, and the next
/// change's savepoint is open already, so neither costs a round trip of its own.
pub(crate) const RELEASE_AND_NEXT: &str = "RELEASE change; SAVEPOINT change";

/// The `change` savepoint of the open batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Savepoint {
    /// None open (a fresh batch, or a change released it without opening the next).
    #[default]
    Closed,
    /// Open and empty: the next change runs in it.
    Ready,
    /// A change is running in it, or was dropped while it ran.
    InUse,
}

/// Failed batches remembered for members that have not looked yet.
const FAILURES_KEPT: usize = 64;

/// The open batch: its transaction, and what to do once it is durable.
#[derive(Default)]
struct Batch {
    tx: Option<Transaction<'static, Sqlite>>,
    /// Number of the open (or last) batch; settled numbers only grow.
    id: u64,
    /// Changes kept in the open batch.
    members: usize,
    /// Deliveries leased to this node by the batch's changes, handed over after commit.
    jobs: Vec<DeliveryJob>,
    /// The batch also created claimable work.
    claimable: bool,
    savepoint: Savepoint,
}

impl Batch {
    fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        match self.tx.as_mut() {
            Some(tx) => Ok(&mut **tx),
            None => Err(StoreError::CommitFailed("no open batch".into())),
        }
    }

    /// Undoes what a dropped change left in its savepoint (see the module docs).
    async fn clean_up(&mut self) {
        if self.savepoint != Savepoint::InUse {
            return;
        }
        self.savepoint = match self.conn() {
            Ok(c) => match c.execute("ROLLBACK TO change").await {
                Ok(_) => Savepoint::Ready,
                // Released by the dropped change's last statement: nothing to undo.
                Err(_) => Savepoint::Closed,
            },
            Err(_) => Savepoint::Closed,
        };
    }
}

/// One per SQLite store (see the module docs).
pub(crate) struct GroupCommit {
    batch: Arc<Mutex<Batch>>,
    /// Changes waiting for the batch lock (not yet holding it).
    waiting: AtomicUsize,
    /// Highest batch number whose commit finished (well or not).
    settled: watch::Sender<u64>,
    /// Recently failed batches and why.
    failed: StdMutex<VecDeque<(u64, String)>>,
    hub: Arc<DeliveryHub>,
}

impl fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .field("settled", &*self.settled.borrow())
            .finish()
    }
}

impl GroupCommit {
    /// A group writer that hands committed deliveries to `hub`.
    pub(crate) fn new(hub: Arc<DeliveryHub>) -> Arc<Self> {
        Arc::new(Self {
            batch: Arc::default(),
            waiting: AtomicUsize::new(0),
            settled: watch::Sender::new(0),
            failed: StdMutex::default(),
            hub,
        })
    }

    /// Waits for this change's turn at the writer and joins the open batch (opening one
    /// on `pool`'s connection when none is open).
    pub(crate) async fn join(self: &Arc<Self>, pool: &SqlitePool) -> StoreResult<Turn> {
        let mut queued = Queued {
            group: Arc::clone(self),
            done: false,
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut guard = Arc::clone(&self.batch).lock_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        queued.done = true;
        let mut turn = Turn {
            guard: None,
            group: Arc::clone(self),
        };
        if guard.tx.is_none() {
            guard.tx = Some(pool.begin().await?);
            guard.id += 1;
            guard.members = 0;
            guard.savepoint = Savepoint::Closed;
        }
        turn.guard = Some(guard);
        let batch = turn.batch()?;
        batch.clean_up().await;
        if batch.savepoint == Savepoint::Closed {
            batch.conn()?.execute("SAVEPOINT change").await?;
        }
        batch.savepoint = Savepoint::InUse;
        Ok(turn)
    }

    /// Waits until batch `id` is settled; an error if its commit failed.
    async fn durable(&self, id: u64) -> StoreResult<()> {
        let mut rx = self.settled.subscribe();
        rx.wait_for(|s| *s >= id)
            .await
            .map_err(|_| StoreError::CommitFailed("the writer stopped".into()))?;
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        match failed.iter().find(|(b, _)| *b == id) {
            Some((_, why)) => Err(StoreError::CommitFailed(why.clone())),
            None => Ok(()),
        }
    }

    /// Commits the open batch if nobody queued behind could, else leaves it to them.
    fn close_or_pass(self: &Arc<Self>, guard: OwnedMutexGuard<Batch>) {
        let nobody_next = self.waiting.load(Ordering::SeqCst) == 0;
        if guard.tx.is_some() && (nobody_next || guard.members >= MAX_GROUP) {
            self.commit(guard);
        }
    }

    /// Commits the open batch in a task of its own (holding the batch lock until done),
    /// then hands its deliveries over and tells its members.
    fn commit(self: &Arc<Self>, mut guard: OwnedMutexGuard<Batch>) {
        let group = Arc::clone(self);
        tokio::spawn(async move {
            let id = guard.id;
            let jobs = std::mem::take(&mut guard.jobs);
            let claimable = std::mem::take(&mut guard.claimable);
            guard.members = 0;
            guard.clean_up().await;
            let result = match guard.tx.take() {
                Some(tx) => tx.commit().await,
                None => Ok(()),
            };
            match result {
                Ok(()) => group.hub.hand_off(jobs, claimable),
                Err(e) => {
                    tracing::error!(error = %e, batch = id, "committing a batch of changes failed");
                    let mut failed = group.failed.lock().unwrap_or_else(PoisonError::into_inner);
                    if failed.len() == FAILURES_KEPT {
                        failed.pop_front();
                    }
                    failed.push_back((id, e.to_string()));
                }
            }
            group.settled.send_replace(id);
            drop(guard);
        });
    }
}

/// A change waiting for the batch lock; if it gives up (its request was dropped), the
/// batch it may have been expected to close is closed for it.
struct Queued {
    group: Arc<GroupCommit>,
    done: bool,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.group.waiting.fetch_sub(1, Ordering::SeqCst);
        let group = Arc::clone(&self.group);
        tokio::spawn(async move {
            let guard = Arc::clone(&group.batch).lock_owned().await;
            group.close_or_pass(guard);
        });
    }
}

/// This change's turn at the writer: the open batch's transaction, held until
/// [`Turn::kept`] or [`Turn::discarded`] (or drop).
pub(crate) struct Turn {
    guard: Option<OwnedMutexGuard<Batch>>,
    group: Arc<GroupCommit>,
}

impl Turn {
    fn batch(&mut self) -> StoreResult<&mut Batch> {
        self.guard
            .as_deref_mut()
            .ok_or_else(|| StoreError::CommitFailed("no open batch".into()))
    }

    /// The connection, inside the change's savepoint.
    pub(crate) fn conn(&mut self) -> StoreResult<&mut SqliteConnection> {
        self.batch()?.conn()
    }

    /// The change is to stay: it commits with its batch. `released` tells whether its last
    /// statement ended with [`RELEASE_AND_NEXT`]; if not, the savepoint is released here.
    /// Returns once the batch is durable (an error if its commit failed).
    pub(crate) async fn kept(mut self, jobs: Vec<DeliveryJob>, claimable: bool, released: bool) -> StoreResult<()> {
        let batch = self.batch()?;
        if released {
            batch.savepoint = Savepoint::Ready;
        } else {
            batch.conn()?.execute("RELEASE change").await?;
            batch.savepoint = Savepoint::Closed;
        }
        let Some(mut guard) = self.guard.take() else {
            return Err(StoreError::CommitFailed("no open batch".into()));
        };
        guard.members += 1;
        guard.jobs.extend(jobs);
        guard.claimable |= claimable;
        let id = guard.id;
        self.group.close_or_pass(guard);
        self.group.durable(id).await
    }

    /// The change failed or changed nothing: roll its writes back, keep the savepoint
    /// for the next change. (If this fails, the savepoint stays marked in use and the
    /// next user of the batch rolls it back.)
    pub(crate) async fn discarded(mut self) -> StoreResult<()> {
        let batch = self.batch()?;
        batch.conn()?.execute("ROLLBACK TO change").await?;
        batch.savepoint = Savepoint::Ready;
        Ok(())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            self.group.close_or_pass(guard);
        }
    }
}
