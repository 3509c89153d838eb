//! The pool of the connection(s) writes go through, which tells SQLite's writer task when
//! someone else is waiting for the connection.
//!
//! Why: SQLite's writer task (`group_commit.rs`) keeps the one writer connection between
//! its batches, with its statements prepared, for as long as nobody else asks for it.
//! Giving the connection back to the pool after every batch finalized every statement,
//! and the next batch parsed them all again: 13 % of the writer thread on the fan-out
//! bench and 18 % on `steady`, whose batches hold one change each. Every other writer
//! (claims, webhook and user writes, log pruning) still takes the connection from the
//! pool, first come, first served; asking through [`WriterPool`] makes the task hand it
//! over at the end of its current batch, so they wait behind at most one batch, as
//! before. On PostgreSQL nobody keeps a connection and asking changes nothing.
//!
//! What it does not save: a workload of many claims (deliveries written unleased, a
//! backlog draining) has the task hand the connection over often, and each time it
//! takes it back its statements are parsed again, as every batch's were before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};
use tokio::sync::Notify;

/// The writer pool, and who is waiting for one of its connections.
#[derive(Debug)]
pub(crate) struct WriterPool<DB: Database> {
    pool: Pool<DB>,
    wanted: Arc<Wanted>,
}

impl<DB: Database> Clone for WriterPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            wanted: Arc::clone(&self.wanted),
        }
    }
}

/// How many are waiting for a writer connection, and a bell for whoever keeps one.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    waiting: AtomicUsize,
    bell: Notify,
}

impl Wanted {
    /// Whether someone is waiting for the connection now.
    pub(crate) fn is_wanted(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Resolves when someone starts waiting (or started since the last call: a ring
    /// nobody heard is kept for the next listener, so the keeper rechecks
    /// [`Wanted::is_wanted`] after every wake-up).
    pub(crate) async fn rung(&self) {
        self.bell.notified().await;
    }

    /// Counts the caller as waiting until the returned guard is dropped.
    fn wait(&self) -> WaitGuard<'_> {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.bell.notify_one();
        WaitGuard(self)
    }
}

/// One caller waiting for a connection (see [`Wanted::wait`]).
struct WaitGuard<'a>(&'a Wanted);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a backend begins a write transaction. SQLite's `BEGIN` is deferred: the transaction
/// reads first and asks for the write lock at its first write, where SQLite does not wait
/// for a busy lock but fails at once (the reads may be stale by then) — so a write
/// transaction that reads first fails whenever another process holds the lock (`serve`
/// and a `herald` CLI command on the same file). `BEGIN IMMEDIATE` takes the lock first,
/// waiting up to the busy timeout. PostgreSQL locks rows, and its `BEGIN` is the default.
pub(crate) trait WriteBegin: Database {
    /// The statement that begins a write transaction; `None` for the driver's default.
    const BEGIN: Option<&'static str>;
}

/// SQLite's write transactions, the writer task's batches included (`group_commit.rs`).
pub(crate) const SQLITE_BEGIN: &str = "BEGIN IMMEDIATE";

impl WriteBegin for sqlx::Sqlite {
    const BEGIN: Option<&'static str> = Some(SQLITE_BEGIN);
}

impl WriteBegin for sqlx::Postgres {
    const BEGIN: Option<&'static str> = None;
}

impl<DB: Database> WriterPool<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            wanted: Arc::default(),
        }
    }

    /// A writer connection, asked for so that a keeper hands it over.
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        let _waiting = self.wanted.wait();
        self.pool.acquire().await
    }

    /// A transaction on a writer connection, asked for as [`WriterPool::acquire`] does,
    /// begun as the backend's writes need ([`WriteBegin`]).
    pub(crate) async fn begin(&self) -> Result<Transaction<'static, DB>, sqlx::Error>
    where
        DB: WriteBegin,
    {
        let _waiting = self.wanted.wait();
        match DB::BEGIN {
            Some(statement) => self.pool.begin_with(statement).await,
            None => self.pool.begin().await,
        }
    }

    /// The pool itself, for the keeper, whose own acquisition must not ring its bell.
    pub(crate) fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Who is waiting, for the keeper.
    pub(crate) fn wanted(&self) -> &Wanted {
        &self.wanted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keeper learns of a waiter whether it was listening when the waiter came or only
    /// starts listening afterwards, and stops counting the waiter once it has the
    /// connection.
    #[tokio::test]
    async fn a_waiter_rings_the_bell_until_it_has_the_connection() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let writer = WriterPool::new(pool);
        let kept = writer.pool().acquire().await.unwrap();
        assert!(!writer.wanted().is_wanted());
        let w = writer.clone();
        let waiter = tokio::spawn(async move { w.acquire().await.map(|_| ()) });
        // Heard after the fact: the ring was kept.
        tokio::time::timeout(std::time::Duration::from_secs(10), writer.wanted().rung())
            .await
            .expect("the waiter rang");
        assert!(writer.wanted().is_wanted());
        drop(kept);
        waiter.await.unwrap().unwrap();
        assert!(!writer.wanted().is_wanted(), "a waiter served no longer counts");
    }
}
