//! The embedded SQLite backend: one WAL-mode file under the data directory, zero set-up.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use std::sync::Arc;

use super::common::impl_common_store;
use super::common_delivery::{
    claim_candidates, claim_chosen_filter, claim_id_lists, impl_delivery_store, ClaimSource, IdList,
    CLAIM_RETURNING,
};
use super::common_delivery_log::impl_delivery_log;
use super::common_delivery_record::impl_delivery_record;
use super::common_directory::impl_directory_store;
use super::common_tracker::impl_tracker_store;
use super::group_commit::{self, ChangeQueue, ChangeWriter};
use super::subscriber_cache::SubscriberCache;
use super::ui_sessions::impl_ui_session_store;
use super::wal_checkpoint;
use super::writer_pool::WriterPool;
use super::{
    migrator, AttemptRecord, AutoDisable, ChangeOutcome, ChangeRequest, ChangeStep, DeliveryHub, Store,
    StoreError, StoreResult,
};

/// Name of the writer connection's thread (sqlx's). Changes and the engine's writes run
/// on the writer task's thread (`herald-writer`, `group_commit.rs`), on this
/// connection's handle; this thread runs the batches' `BEGIN` and `COMMIT`, the claims
/// and the other writes. The two are the ones to look at when writes are slow.
const WRITER_THREAD: &str = "herald-writedb";
/// Names of the other connections' threads start with this, then the connection's id.
const READER_THREAD_PREFIX: &str = "herald-db-";

/// Migrations compiled into the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../../migrations/sqlite/0001_foundation.sql"),
    ),
    (
        2,
        "tracker",
        include_str!("../../migrations/sqlite/0002_tracker.sql"),
    ),
    (
        3,
        "deliveries",
        include_str!("../../migrations/sqlite/0003_deliveries.sql"),
    ),
    (
        4,
        "ui_sessions",
        include_str!("../../migrations/sqlite/0004_ui_sessions.sql"),
    ),
    (
        5,
        "fields_version",
        include_str!("../../migrations/sqlite/0005_fields_version.sql"),
    ),
    (
        6,
        "claim_indexes",
        include_str!("../../migrations/sqlite/0006_claim_indexes.sql"),
    ),
    (
        7,
        "shared_bodies",
        include_str!("../../migrations/sqlite/0007_shared_bodies.sql"),
    ),
    (
        8,
        "claim_skips_excluded_webhooks",
        include_str!("../../migrations/sqlite/0008_claim_skips_excluded_webhooks.sql"),
    ),
    (
        9,
        "webhooks_version",
        include_str!("../../migrations/sqlite/0009_webhooks_version.sql"),
    ),
    (
        10,
        "master_key_check",
        include_str!("../../migrations/sqlite/0010_master_key_check.sql"),
    ),
];

/// SQLite-backed store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// The one connection every write goes through. SQLite has a single writer anyway;
    /// queueing writers here (sqlx's pool hands connections out first come, first served)
    /// instead of on SQLite's file lock spares them its busy handler, which sleeps up to
    /// 100 ms between retries and left the lock idle while changes waited for it. The
    /// writer task keeps the connection while nobody else asks for it (`writer_pool.rs`).
    pub(crate) writer: WriterPool<sqlx::Sqlite>,
    /// Fan-out settings and the local handoff.
    pub(crate) hub: Arc<DeliveryHub>,
    /// Enabled webhooks per tenant, for fan-out (see `subscriber_cache.rs`).
    pub(crate) subscribers: Arc<SubscriberCache>,
    /// Turns for ingested events at the writer. The delivery engine's claims queue for
    /// the writer connection directly (its outcomes and lease releases go to the writer
    /// task), so when the API is offered more events than it can take, they wait behind
    /// at most this many instead of behind every queued request — long enough waits there
    /// let leases expire and deliveries be sent twice. Tracker changes queue in `changes`
    /// instead.
    pub(crate) change_turns: Arc<tokio::sync::Semaphore>,
    /// Tracker changes and attempt outcomes go to the writer task (see
    /// `group_commit.rs`); `None` in the task's own copy of the store.
    pub(crate) changes: Option<ChangeQueue>,
    /// The token read every request makes, inline on the caller's thread
    /// (`sqlite/inline_reads.rs`).
    pub(crate) inline: Arc<inline_reads::InlineReads>,
    /// Keeps the background WAL checkpoints running while any clone of the store lives.
    _checkpoints: Arc<tokio_util::sync::DropGuard>,
}

/// Ingested events allowed to wait for (or hold) the writer at once.
const CHANGE_TURNS: usize = 2;

impl SqliteStore {
    /// Every write goes through the one `writer` connection, so writes are serialised
    /// without row locks.
    pub(crate) const SINGLE_WRITER: bool = true;

    /// Opens (creating if needed) the database file and migrates it.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode is durable against process crashes (the kill -9 case);
            // only an OS crash can lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Each connection runs on a thread of its own; named, the writer's stands out
            // from the readers' in `top -H`, `perf` and `/proc` (Linux keeps 15 bytes).
            .thread_name(|id| format!("{READER_THREAD_PREFIX}{id}"));
        // The writer leaves routine checkpoints to a task of their own (wal_checkpoint.rs).
        // Savepoint journals (every change runs in one, group_commit.rs) live in memory:
        // they are dropped at each release, so writing them to a temporary file was only
        // system-call and page-cache work for the single writer.
        let writer_opts = opts
            .clone()
            .pragma(
                "wal_autocheckpoint",
                wal_checkpoint::WRITER_AUTOCHECKPOINT_PAGES.to_string(),
            )
            .pragma("temp_store", "memory")
            .thread_name(|_| WRITER_THREAD.to_owned());
        // No ping before each use: an in-process database has no link to lose, and each
        // ping is a round trip to the connection's worker thread (a wake-up and two context
        // switches) before the query's own.
        let writer_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .test_before_acquire(false)
            .connect_with(writer_opts)
            .await?;
        migrator(MIGRATIONS).run(&writer_pool).await?;
        let writer = WriterPool::new(writer_pool);
        let checkpoints = Arc::new(wal_checkpoint::start(&opts).await?);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        let mut store = Self {
            pool,
            writer,
            changes: None,
            inline: Arc::new(inline_reads::InlineReads::open(path)?),
            _checkpoints: checkpoints,
            hub: Arc::default(),
            subscribers: Arc::default(),
            change_turns: Arc::new(tokio::sync::Semaphore::new(CHANGE_TURNS)),
        };
        let (writer, hub) = (store.writer.clone(), Arc::clone(&store.hub));
        store.changes = Some(group_commit::start(store.clone(), writer, hub).map_err(sqlx::Error::Io)?);
        Ok(store)
    }

    /// The claim statement. SQLite has a single writer, so the `UPDATE … RETURNING` over a
    /// sub-select is atomic without row locks. Binds: token, lease_until, now, limit,
    /// per_webhook, the `exclude` webhook ids, the `one_each` ids (a long list as one JSON
    /// array read with `json_each`, see `INLINE_IDS`).
    pub(crate) fn claim_sql(exclude: usize, one_each: usize) -> String {
        let ids: IdList = |n| format!("SELECT value FROM json_each(${n})");
        let (excluded, one) = claim_id_lists(exclude, one_each, ids);
        let free = claim_candidates(ClaimSource::Free, &excluded, "");
        let expired = claim_candidates(ClaimSource::Expired, &excluded, "");
        let chosen = claim_chosen_filter(&one);
        format!(
            "UPDATE deliveries SET lease_token = $1, lease_until = $2 WHERE seq IN ( \
             SELECT seq FROM (SELECT seq, webhook_id, next_attempt_at, ROW_NUMBER() OVER \
             (PARTITION BY webhook_id ORDER BY next_attempt_at, seq) AS rn FROM ( \
             SELECT * FROM ({free}) UNION ALL SELECT * FROM ({expired}))) \
             WHERE {chosen} ORDER BY next_attempt_at LIMIT $4) \
             RETURNING {CLAIM_RETURNING}"
        )
    }

    /// Fan-out's webhook lists, whatever version a request saw: safe to cache here
    /// because this process makes every write and forgets them on each webhook write
    /// (`subscriber_cache.rs`), so every list is kept at version 0.
    pub(crate) fn subscriber_cache(&self, _seen: Option<i64>) -> Option<(&SubscriberCache, i64)> {
        Some(self.cache_of_subscribers())
    }

    /// The webhook cache and the one version its lists are kept under here.
    pub(crate) fn cache_of_subscribers(&self) -> (&SubscriberCache, i64) {
        (&self.subscribers, 0)
    }

    /// Runs a tracker change on the writer task (see `group_commit.rs`): in a savepoint
    /// of the open batch, rolled back alone when the change fails or turns out to change
    /// nothing; answered once the batch is durable.
    pub(crate) async fn run_change(&self, req: ChangeRequest) -> StoreResult<ChangeOutcome> {
        self.writer_task()?.apply(req).await
    }

    /// The writer task's queue. The task's own copy of the store has none: a write it
    /// queued there would wait for itself (it holds the writer connection).
    fn writer_task(&self) -> StoreResult<&ChangeQueue> {
        self.changes
            .as_ref()
            .ok_or_else(|| StoreError::CommitFailed("writes of this kind are made by the writer task".into()))
    }

    /// Records attempt outcomes on the writer task, ahead of queued changes and in the
    /// open batch's transaction. Why: outcome batches used to take the writer connection
    /// in turns with the task, and each hand-over between the two (the connection back to
    /// the pool, the waiting task woken on a busy machine) left the one writer idle —
    /// measured on the fan-out bench, the change task waited for the connection 42 % of
    /// the time while the recorder held it only 26 %.
    pub(crate) async fn write_attempts(
        &self,
        records: Arc<[AttemptRecord]>,
        auto: AutoDisable,
        now: i64,
    ) -> StoreResult<Vec<uuid::Uuid>> {
        self.writer_task()?.record(records, auto, now).await
    }

    /// Gives leases back on the writer task, like outcomes (`write_attempts`): each
    /// release taking the writer connection in turns with the task cost the writer its
    /// hand-over (measured when the `slow-endpoint` bench still gave back every job of its
    /// dead endpoint's full lane, a tenth of all deliveries; fan-out now writes those
    /// unleased, see `FreshSink::full`).
    pub(crate) async fn write_releases(&self, leases: &[(uuid::Uuid, String)]) -> StoreResult<u64> {
        self.writer_task()?.release(leases.to_vec()).await
    }

    /// Waits for an ingested event's turn at the writer (see `change_turns`).
    pub(crate) async fn change_turn(&self) -> StoreResult<Option<tokio::sync::SemaphorePermit<'_>>> {
        let permit = self
            .change_turns
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        Ok(Some(permit))
    }

    /// A webhook changed: called with the writer connection held, before committing.
    pub(crate) fn forget_subscribers(&self) {
        self.subscribers.forget();
    }

    /// Nothing to do: this process is the only one working on the file, and it wakes its
    /// own workers directly.
    pub(crate) async fn notify_work(&self, _: &mut sqlx::SqliteConnection) -> StoreResult<()> {
        Ok(())
    }

    /// The token read inline (`None`: SQLite could not start it or no connection was free;
    /// the caller reads through sqlx, one token a statement).
    pub(crate) async fn token_own_read(&self, id: &str) -> Option<StoreResult<Option<super::TokenRecord>>> {
        self.inline.token(id)
    }

    /// Nothing to tell: this process is the only one working on the file, and the API
    /// that deleted or disabled the webhook dropped its queued jobs itself.
    pub(crate) async fn notify_forget(
        &self,
        _: &mut sqlx::SqliteConnection,
        _: &[uuid::Uuid],
    ) -> StoreResult<()> {
        Ok(())
    }

    /// No cross-process notifications on SQLite; returns at once (workers poll).
    pub(crate) async fn listen(
        &self,
        _: Arc<tokio::sync::Notify>,
        _: super::ForgetWebhook,
        _: tokio_util::sync::CancellationToken,
    ) {
    }
}

mod inline_reads;
pub(crate) mod sync_writer;

impl ChangeWriter for SqliteStore {
    fn apply(&self, conn: &rusqlite::Connection, req: &ChangeRequest) -> StoreResult<ChangeStep> {
        sync_writer::apply(conn, self, req)
    }

    fn record(
        &self,
        conn: &rusqlite::Connection,
        records: &[AttemptRecord],
        auto: AutoDisable,
        now: i64,
    ) -> StoreResult<Vec<uuid::Uuid>> {
        sync_writer::record(conn, self, records, auto, now)
    }

    fn release(&self, conn: &rusqlite::Connection, leases: &[(uuid::Uuid, String)]) -> StoreResult<u64> {
        sync_writer::release(conn, leases)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    fn single_writer(&self) -> bool {
        Self::SINGLE_WRITER
    }
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl_common_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_tracker_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_directory_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_delivery_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_delivery_record!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_delivery_log!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_ui_session_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    /// What SQLite plans for `sql` (one `detail` line per step).
    async fn plan(store: &SqliteStore, sql: &str) -> String {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Ids of this process's threads whose name `name` accepts.
    fn threads_named(name: impl Fn(&str) -> bool) -> std::collections::HashSet<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| name(c.trim_end())))
            .map(|t| t.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Opening a store starts its writer connection on a thread named for it (other
    /// tests may open stores meanwhile: only "a new one" is asserted).
    #[tokio::test]
    async fn the_writer_connection_runs_on_a_thread_named_for_it() {
        assert!(
            WRITER_THREAD.len() <= 15,
            "Linux keeps 15 bytes of a thread's name"
        );
        let writer = |n: &str| n == WRITER_THREAD;
        let reader = |n: &str| n.starts_with(READER_THREAD_PREFIX);
        let (writers, readers) = (threads_named(writer), threads_named(reader));
        let dir = tempfile::tempdir().unwrap();
        let _store = SqliteStore::open(&dir.path().join("herald.db")).await.unwrap();
        let new_writers = threads_named(writer).difference(&writers).count();
        assert!(new_writers >= 1, "no new {WRITER_THREAD} thread");
        assert!(
            threads_named(reader).difference(&readers).count() >= 1,
            "no new reader thread"
        );
    }

    /// The bundled SQLite is built as `.cargo/config.toml` asks: without the process-wide
    /// mutexes every connection thread queued for (BENCHMARKS.md, runs V and W). Fails if
    /// that file or its variable stops reaching libsqlite3-sys's build, e.g. after an
    /// upgrade that reads other flags.
    #[tokio::test]
    async fn sqlite_is_built_without_its_global_mutexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("herald.db")).await.unwrap();
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        let has = |option: &str| options.iter().any(|o| o == option);
        assert!(has("DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(!has("ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        // The options libsqlite3-sys sets itself still apply (a sign the variable was
        // added to its flags, not used instead of them).
        assert!(has("DEFAULT_FOREIGN_KEYS"), "{options:?}");
    }

    /// Claims, cancellations and the queue gauges read deliveries through the partial
    /// indexes of free and held rows only: a plan that scans `deliveries` would step over
    /// every row in flight (thousands under load).
    #[tokio::test]
    async fn claims_cancels_and_queue_stats_read_only_the_rows_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("herald.db")).await.unwrap();
        // Short lists (a parameter per id) and long ones (one JSON array) alike.
        let long = crate::store::common_delivery::INLINE_IDS + 1;
        for sql in [
            SqliteStore::claim_sql(0, 0),
            SqliteStore::claim_sql(2, 1),
            SqliteStore::claim_sql(long, long),
        ] {
            let plan = plan(&store, &sql).await;
            assert!(plan.contains("USING INDEX deliveries_due"), "{plan}");
            assert!(plan.contains("USING INDEX deliveries_leased"), "{plan}");
            assert!(!plan.contains("SCAN d\n") && !plan.ends_with("SCAN d"), "{plan}");
        }
        // The claim skips saturated webhooks' free rows (an endpoint that stopped
        // answering has thousands, first in due order) on the index entry alone: with the
        // webhook out of the index, each skip was a table lookup (60–85 ms per claim behind
        // ~55,000 rows in the `slow-endpoint` bench; with it, claims there took 4.4 × less).
        let columns: Vec<String> =
            sqlx::query("SELECT name FROM pragma_index_info('deliveries_due') ORDER BY seqno")
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get("name"))
                .collect();
        assert_eq!(columns, ["next_attempt_at", "webhook_id"]);
        for sql in crate::store::common_delivery::cancel_pending_sql() {
            let plan = plan(&store, &sql).await;
            assert!(
                plan.contains("USING INDEX deliveries_due") || plan.contains("USING INDEX deliveries_leased"),
                "{plan}"
            );
        }
        let plan = plan(&store, crate::store::common_delivery_log::QUEUE_STATS_SQL).await;
        assert!(
            plan.contains("deliveries_due") && plan.contains("deliveries_leased"),
            "{plan}"
        );
        assert!(
            !plan.contains("SCAN deliveries\n") && !plan.ends_with("SCAN deliveries"),
            "{plan}"
        );
    }
}
