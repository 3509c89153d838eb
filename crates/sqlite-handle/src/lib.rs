//! Runs synchronous SQLite calls (rusqlite) on a connection sqlx owns, for as long as
//! sqlx has locked the connection's handle out for us.
//!
//! Why a crate of its own: `herald` forbids `unsafe`, and wrapping a raw handle is one
//! `unsafe` call. Why at all: every statement sqlx runs on SQLite is a round trip to the
//! connection's own thread and back, ~55 µs of CPU each on a two-core machine; Herald's
//! writer runs its batches of changes on its own thread already, so it can call SQLite
//! directly and pay none of that (BENCHMARKS.md, "The change path's SQL without sqlx's
//! thread hand-offs": 4 × less CPU per change).
//!
//! The connection stays sqlx's: its pool and its closing are untouched. What rusqlite
//! prepares here is finalized before [`with_connection`] (or [`with_connection_async`])
//! returns, while the lock is still held: sqlx's connection refuses to close (it panics)
//! with a statement of someone else's still open on it. A transaction opened here
//! (`BEGIN` through rusqlite) is one sqlx knows nothing of: the caller must end it, or
//! close the connection, before the lock is released.
//!
//! Two things safe code can still get wrong here, and the caller must not do: leaking the
//! future of [`with_connection_async`] (`mem::forget`) leaves its statements open, so
//! sqlx panics when it closes the connection; and an `InterruptHandle` taken from the
//! connection outlives it, and interrupting after sqlx closed the handle would touch
//! freed memory. Herald does neither.

#![deny(unsafe_op_in_unsafe_fn)]

use sqlx::sqlite::LockedSqliteHandle;

/// Calls `f` with a rusqlite connection on the SQLite handle `locked` holds.
///
/// The connection lives only inside `f` (it cannot escape: `f` gets a borrow of it for
/// an unnamed lifetime), and dropping it finalizes every statement it prepared and
/// cached, but does not close the handle, which stays sqlx's.
///
/// # Errors
/// When rusqlite cannot wrap the handle.
pub fn with_connection<R>(
    locked: &mut LockedSqliteHandle<'_>,
    f: impl FnOnce(&rusqlite::Connection) -> R,
) -> rusqlite::Result<R> {
    let raw = locked.as_raw_handle().as_ptr();
    // SAFETY: `raw` is a live, open handle: sqlx keeps it open for as long as `locked`
    // exists, and `locked` (borrowed for this whole call) keeps every other user of the
    // connection out, sqlx's own thread included. `from_handle` does not take ownership:
    // dropping the connection does not close the handle. The connection is dropped at the
    // end of this function, before the borrow of `locked` ends, so no statement of ours
    // outlives the lock.
    let conn = unsafe { rusqlite::Connection::from_handle(raw) }?;
    let out = f(&conn);
    drop(conn);
    Ok(out)
}

/// [`with_connection`] for an `f` that waits: the connection lives as long as `f`'s
/// future, which may wait (for more work, say) with statements prepared and the lock
/// held, so that they stay prepared from one use to the next.
///
/// As with [`with_connection`], every statement is finalized when `f` is done — or when
/// this future is dropped half-way — before the borrow of `locked` ends.
///
/// # Errors
/// When rusqlite cannot wrap the handle.
pub async fn with_connection_async<R>(
    locked: &mut LockedSqliteHandle<'_>,
    f: impl AsyncFnOnce(&rusqlite::Connection) -> R,
) -> rusqlite::Result<R> {
    let raw = locked.as_raw_handle().as_ptr();
    // SAFETY: as in `with_connection`: `locked` is borrowed for as long as this future
    // lives, and `conn` is one of its locals, dropped (finalizing its statements) before
    // the future finishes or whenever the future is dropped. (A leaked future leaves
    // them open: sqlx then panics on close, see the crate's docs.)
    let conn = unsafe { rusqlite::Connection::from_handle(raw) }?;
    let out = f(&conn).await;
    drop(conn);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::with_connection;
    use sqlx::{Connection, SqliteConnection};

    /// Writes made through the borrowed handle are the sqlx connection's own (same
    /// transaction), and the connection closes cleanly afterwards even though statements
    /// were prepared and cached on it (they were finalized when `with_connection` ended).
    #[test]
    fn writes_join_sqlx_s_transaction_and_leave_nothing_open() {
        let rt = tokio_runtime();
        rt.block_on(async {
            let mut c = connection_with_table().await;
            let mut tx = c.begin().await.unwrap();
            let mut locked = tx.lock_handle().await.unwrap();
            let n = with_connection(&mut locked, |conn| {
                let mut st = conn.prepare_cached("INSERT INTO t (x) VALUES (?1)").unwrap();
                st.execute([1]).unwrap();
                st.execute([2]).unwrap();
                drop(st);
                conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .unwrap()
            })
            .unwrap();
            assert_eq!(n, 2);
            drop(locked);
            let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(seen, 2);
            tx.rollback().await.unwrap();
            let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(after, 0, "the rollback undid the borrowed handle's writes");
            c.close().await.unwrap();
        });
    }

    /// The borrowed connection (and its statement cache) lives across the future's waits,
    /// and the connection closes cleanly once the future is done: its statements were
    /// finalized.
    #[test]
    fn the_connection_lives_across_waits_and_its_statements_end_with_it() {
        let rt = tokio_runtime();
        rt.block_on(async {
            let mut c = connection_with_table().await;
            let mut locked = c.lock_handle().await.unwrap();
            let n = super::with_connection_async(&mut locked, async |conn| {
                conn.prepare_cached("INSERT INTO t (x) VALUES (?1)")
                    .unwrap()
                    .execute([1])
                    .unwrap();
                tokio::task::yield_now().await;
                let mut st = conn.prepare_cached("INSERT INTO t (x) VALUES (?1)").unwrap();
                st.execute([2]).unwrap();
                drop(st);
                conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .unwrap()
            })
            .await
            .unwrap();
            assert_eq!(n, 2);
            drop(locked);
            c.close().await.unwrap();
        });
    }

    /// An in-memory connection with an empty table `t (x INTEGER)`.
    async fn connection_with_table() -> SqliteConnection {
        let mut c = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut c)
            .await
            .unwrap();
        c
    }

    fn tokio_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}
