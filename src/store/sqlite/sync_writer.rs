//! SQLite's change path run synchronously: the change's statements go straight to SQLite
//! (rusqlite) on the writer task's own thread, on the connection handle sqlx locks out
//! for as long as the task keeps the connection (`herald_sqlite_handle`), inside the
//! batch's transaction, which the task opens and commits itself (`group_commit.rs`).
//!
//! Why: through sqlx, every statement is a hand-off to the connection's thread and back,
//! and every result wakes the writer task: ~55 µs of CPU per round trip on a two-core
//! machine. The writer task has a thread of its own already, so it can wait on SQLite
//! itself; measured in Herald, the change path's CPU per change fell by about a tenth and
//! sqlx's connection thread went nearly idle (BENCHMARKS.md, run AZ). The change's logic
//! is `change_path::apply`, the recorder's `common_delivery_record.rs`, both shared with
//! PostgreSQL; this file supplies only how statements run and rows are read.
//!
//! Each statement given here is one statement (rusqlite prepares the first of several
//! and would skip the rest silently), and one run for its effect returns no rows
//! (rusqlite refuses those); `debug_assert`s check both.

use futures_util::FutureExt;
use rusqlite::{CachedStatement, Connection};

use super::delivery_impl::{
    body_values, delivery_values, event_values, insert_bodies_sql, insert_deliveries_sql, insert_event_sql,
    plan_for, settle_rows, BODY_COLS, DELIVERY_COLS, INSERT_CHUNK, SEQ_OF_EVENT_ID,
};
use super::SqliteStore;
use crate::delivery::fanout::Subscriber;
use crate::domain::event::Event;
use crate::domain::event_type::EntityKind;
use crate::store::change_path::{self, ChangeOps};
use crate::store::common::corrupt;
use crate::store::common_delivery_record::{self, RecordStatements};
use crate::store::row_decode::{entity_from_row, subscriber_from_row, subscriber_sql};
use crate::store::value_rows::{leading_value_rows, Deferred, SqlArg, Val};
use crate::store::{
    AttemptRecord, AutoDisable, ChangeOp, ChangeRequest, ChangeStep, DeliveryJob, EntityRow, Finish,
    StoreError, StoreResult,
};
use uuid::Uuid;

/// Applies `req` on `conn` (the writer's handle, inside the batch's transaction and the
/// change's savepoint).
pub(crate) fn apply(conn: &Connection, store: &SqliteStore, req: &ChangeRequest) -> StoreResult<ChangeStep> {
    ready(change_path::apply(
        &mut SyncOps { conn, store },
        req,
        Finish::Batch,
    ))
}

/// Writes a batch of attempt outcomes on `conn` (inside the batch's transaction);
/// returns the webhooks it disabled.
pub(crate) fn record(
    conn: &Connection,
    store: &SqliteStore,
    records: &[AttemptRecord],
    auto: AutoDisable,
    now: i64,
) -> StoreResult<Vec<Uuid>> {
    let disabled = ready(common_delivery_record::record(
        &mut SyncStatements(conn),
        records,
        auto,
        now,
    ))?;
    if !disabled.is_empty() {
        store.forget_subscribers();
    }
    Ok(disabled)
}

/// Gives `leases` back on `conn`; returns how many rows were released.
pub(crate) fn release(conn: &Connection, leases: &[(Uuid, String)]) -> StoreResult<u64> {
    ready(common_delivery_record::release(&mut SyncStatements(conn), leases))
}

/// The result of a future that never waits (it only calls SQLite synchronously).
fn ready<T>(f: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    f.now_or_never()
        .unwrap_or_else(|| Err(StoreError::CommitFailed("a synchronous write had to wait".into())))
}

/// The recorder's statements on the writer's handle.
struct SyncStatements<'c>(&'c Connection);

impl RecordStatements for SyncStatements<'_> {
    const SINGLE_WRITER: bool = SqliteStore::SINGLE_WRITER;
    const FEW_SHAPES: bool = true;

    fn value_rows(rows: usize, cols: usize) -> std::sync::Arc<str> {
        leading_value_rows::<sqlx::Sqlite>(rows, cols)
    }

    async fn run(&mut self, sql: &str, vals: &[Val<'_>]) -> StoreResult<u64> {
        Ok(bound(self.0, sql, vals)?.raw_execute()? as u64)
    }

    async fn returned_row(&mut self, sql: &str, vals: &[Val<'_>]) -> StoreResult<bool> {
        let mut st = bound(self.0, sql, vals)?;
        let mut rows = st.raw_query();
        let found = rows.next()?.is_some();
        while rows.next()?.is_some() {}
        Ok(found)
    }
}

/// Runs one of the writer's own statements without values (`SAVEPOINT`, `RELEASE`, …).
pub(crate) fn run(conn: &Connection, sql: &str) -> StoreResult<()> {
    debug_assert!(one_statement(sql), "{sql}");
    conn.prepare_cached(sql)?.raw_execute()?;
    Ok(())
}

/// A change's operations on the writer's handle.
struct SyncOps<'c> {
    conn: &'c Connection,
    store: &'c SqliteStore,
}

/// Whether `sql` is one statement (a `;` may end it). Herald's statements have no `;` in
/// their literals.
fn one_statement(sql: &str) -> bool {
    !sql.trim_end().trim_end_matches(';').contains(';')
}

/// `sql`, prepared once for as long as the writer task keeps the connection, with `args`
/// bound as sqlx binds them: a `$n` or `?n` placeholder takes the n-th value, and
/// anonymous `?` ones take the values in turn (the first `?` the first value, wherever a
/// numbered one stands: SQLite numbers a statement's parameters in order of appearance,
/// so `$10` written before nine `?`s is its parameter 1).
fn bound<'c>(
    conn: &'c Connection,
    sql: &str,
    args: &[impl rusqlite::ToSql],
) -> StoreResult<CachedStatement<'c>> {
    debug_assert!(one_statement(sql), "{sql}");
    let mut st = conn.prepare_cached(sql)?;
    let mut anonymous = 0;
    for i in 1..=st.parameter_count() {
        let n = match st.parameter_name(i) {
            Some(name) => name
                .get(1..)
                .and_then(|digits| digits.parse::<usize>().ok())
                .ok_or_else(|| corrupt("statement", format!("parameter {name} is not numbered")))?,
            None => {
                anonymous += 1;
                anonymous
            }
        };
        let arg = args
            .get(n.wrapping_sub(1))
            .ok_or_else(|| corrupt("statement", format!("no value for parameter {n}")))?;
        st.raw_bind_parameter(i, arg)?;
    }
    Ok(st)
}

/// `sql`, whose placeholders are all anonymous `?`, with `vals` bound in order: the hot
/// inserts' values come as they are listed for both drivers, without [`bound`]'s look-up
/// of each parameter's name.
fn in_order<'c, 'v>(
    conn: &'c Connection,
    sql: &str,
    vals: impl IntoIterator<Item = Val<'v>>,
) -> StoreResult<CachedStatement<'c>> {
    debug_assert!(one_statement(sql), "{sql}");
    let mut st = conn.prepare_cached(sql)?;
    for (i, v) in vals.into_iter().enumerate() {
        st.raw_bind_parameter(i + 1, &v)?;
    }
    Ok(st)
}

impl SyncOps<'_> {
    /// The first column of `sql`'s first row.
    fn first<T: rusqlite::types::FromSql>(&self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<T>> {
        let mut st = bound(self.conn, sql, args)?;
        let mut rows = st.raw_query();
        Ok(match rows.next()? {
            Some(r) => r.get::<_, Option<T>>(0)?,
            None => None,
        })
    }

    /// The tenant's enabled webhooks, from the store's cache or read (and cached), at the
    /// version SQLite keeps every list under (`SqliteStore::subscriber_cache`).
    fn subscribers(&self, tenant_id: i64) -> StoreResult<std::sync::Arc<Vec<Subscriber>>> {
        let (cache, version) = self.store.cache_of_subscribers();
        if let Some(subs) = cache.get(tenant_id, version) {
            return Ok(subs);
        }
        let mut st = bound(
            self.conn,
            &subscriber_sql("tenant_id = $1 AND enabled"),
            &[SqlArg::Int(Some(tenant_id))],
        )?;
        let mut rows = st.raw_query();
        let mut subs = Vec::new();
        while let Some(r) = rows.next()? {
            subs.push(subscriber_from_row(r)?);
        }
        let subs = std::sync::Arc::new(subs);
        cache.put(tenant_id, version, std::sync::Arc::clone(&subs));
        Ok(subs)
    }
}

impl ChangeOps for SyncOps<'_> {
    const SINGLE_WRITER: bool = SqliteStore::SINGLE_WRITER;

    /// Nothing to lock: the writer makes every write.
    async fn lock(&mut self, _: i64, _: EntityKind, _: &ChangeOp) -> StoreResult<()> {
        Ok(())
    }

    async fn execute(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<()> {
        bound(self.conn, sql, args)?.raw_execute()?;
        Ok(())
    }

    async fn int(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<i64>> {
        self.first(sql, args)
    }

    async fn real(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<f64>> {
        self.first(sql, args)
    }

    async fn entity(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<EntityRow>> {
        let mut st = bound(self.conn, sql, args)?;
        let mut rows = st.raw_query();
        let Some(r) = rows.next()? else { return Ok(None) };
        let row = entity_from_row(r)?;
        // A `RETURNING` statement finishes its writes when stepped to its end.
        while rows.next()?.is_some() {}
        Ok(Some(row))
    }

    async fn insert_event(&mut self, tenant_id: i64, event: &Event) -> StoreResult<i64> {
        let data = serde_json::to_string(event).map_err(|e| corrupt("event", e))?;
        let event_type = event.event_type.to_string();
        let values = event_values(tenant_id, event, &event_type, None, &data);
        let mut st = in_order(self.conn, &insert_event_sql(), values)?;
        let mut rows = st.raw_query();
        let seq = rows
            .next()?
            .ok_or_else(|| corrupt("event", "no seq returned"))?
            .get(0)?;
        while rows.next()?.is_some() {}
        Ok(seq)
    }

    /// The writer's own cache is exact (`subscriber_cache.rs`): the request's version is
    /// not needed.
    async fn fanout(
        &mut self,
        tenant_id: i64,
        event: &Event,
        _seen: Option<i64>,
    ) -> StoreResult<(Vec<DeliveryJob>, bool)> {
        let subs = self.subscribers(tenant_id)?;
        let (rows, bodies, now) = plan_for(self.store, &subs, event)?;
        let event_type = event.event_type.to_string();
        if !bodies.is_empty() {
            let sql = insert_bodies_sql(
                &leading_value_rows::<sqlx::Sqlite>(bodies.len(), BODY_COLS),
                SEQ_OF_EVENT_ID,
            );
            let values = bodies.iter().flat_map(|b| body_values(b, event, now));
            in_order(self.conn, &sql, values)?.raw_execute()?;
        }
        for chunk in rows.chunks(INSERT_CHUNK) {
            let sql = insert_deliveries_sql(
                &leading_value_rows::<sqlx::Sqlite>(chunk.len(), DELIVERY_COLS),
                "column5",
            );
            let values = chunk
                .iter()
                .flat_map(|r| delivery_values(r, tenant_id, event, &event_type, now));
            in_order(self.conn, &sql, values)?.raw_execute()?;
        }
        // Nothing to notify: this process is the only one working on the file.
        Ok(settle_rows(rows, tenant_id, &event_type))
    }

    async fn write_event_locking_tenant(
        &mut self,
        _: i64,
        _: &mut Event,
        _: Option<&Deferred>,
        _: Option<i64>,
    ) -> StoreResult<Option<(Vec<DeliveryJob>, bool)>> {
        Err(corrupt("change", "SQLite's writer takes no tenant locks"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sql` selects with `args` bound by [`bound`], and by sqlx.
    async fn both_ways(sql: &str, args: &[i64]) -> (Vec<i64>, Vec<i64>) {
        use sqlx::{Connection as _, Row as _};
        let conn = Connection::open_in_memory().unwrap();
        let vals: Vec<SqlArg> = args.iter().map(|a| SqlArg::Int(Some(*a))).collect();
        let mut st = bound(&conn, sql, &vals).unwrap();
        let n = st.column_count();
        let mut rows = st.raw_query();
        let row = rows.next().unwrap().unwrap();
        let ours = (0..n).map(|i| row.get::<_, i64>(i).unwrap()).collect();
        let mut c = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(a);
        }
        let r = q.fetch_one(&mut c).await.unwrap();
        let theirs = (0..n).map(|i| r.get::<i64, _>(i)).collect();
        (ours, theirs)
    }

    /// The recorder's statements number their last parameter (`$n`) and leave the rows'
    /// anonymous; written before them, `$n` is SQLite's parameter 1. Bound by position,
    /// every delivery update missed its row and deliveries stayed pending.
    #[tokio::test]
    async fn placeholders_bind_as_sqlx_binds_them() {
        for (sql, args, want) in [
            ("SELECT $3, ?, ?", vec![1, 2, 3], vec![3, 1, 2]),
            ("SELECT ?, ?, $3", vec![1, 2, 3], vec![1, 2, 3]),
            ("SELECT $2, $1, $2", vec![1, 2], vec![2, 1, 2]),
        ] {
            let (ours, theirs) = both_ways(sql, &args).await;
            assert_eq!(ours, want, "{sql}");
            assert_eq!(theirs, want, "sqlx, {sql}");
        }
    }
}
