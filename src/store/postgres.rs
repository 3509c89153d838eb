//! The PostgreSQL backend: the scale-out option, where several `herald serve` nodes share
//! one database (and, optionally, one schema of it).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use std::sync::Arc;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::common::impl_common_store;
use super::common::TOKEN_SELECT;
use super::common_delivery::{
    claim_candidates, claim_chosen_filter, claim_id_lists, impl_delivery_store, ClaimSource, IdList,
    CLAIM_RETURNING,
};
use super::common_delivery_log::impl_delivery_log;
use super::common_delivery_record::impl_delivery_record;
use super::common_directory::impl_directory_store;
use super::common_tracker::impl_tracker_store;
use super::project_cache::ProjectCache;
use super::read_batch::ReadBatch;
use super::subscriber_cache::SubscriberCache;
use super::ui_sessions::impl_ui_session_store;
use super::writer_pool::WriterPool;
use super::{
    migrator, AttemptRecord, AutoDisable, ChangeOp, ChangeOutcome, ChangeRequest, ChangeStep, DeliveryHub,
    Finish, Store, StoreError, StoreResult, TokenRecord,
};
use crate::domain::event_type::EntityKind;

/// Migrations compiled into the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        "tracker",
        include_str!("../../migrations/postgres/0002_tracker.sql"),
    ),
    (
        3,
        "deliveries",
        include_str!("../../migrations/postgres/0003_deliveries.sql"),
    ),
    (
        4,
        "ui_sessions",
        include_str!("../../migrations/postgres/0004_ui_sessions.sql"),
    ),
    (
        5,
        "fields_version",
        include_str!("../../migrations/postgres/0005_fields_version.sql"),
    ),
    (
        6,
        "claim_indexes",
        include_str!("../../migrations/postgres/0006_claim_indexes.sql"),
    ),
    (
        7,
        "shared_bodies",
        include_str!("../../migrations/postgres/0007_shared_bodies.sql"),
    ),
    (
        8,
        "deliveries_tenant_unchecked",
        include_str!("../../migrations/postgres/0008_deliveries_tenant_unchecked.sql"),
    ),
    (
        9,
        "webhooks_version",
        include_str!("../../migrations/postgres/0009_webhooks_version.sql"),
    ),
    (
        10,
        "lz4_compression",
        include_str!("../../migrations/postgres/0010_lz4_compression.sql"),
    ),
    (
        11,
        "lean_delivery_writes",
        include_str!("../../migrations/postgres/0011_lean_delivery_writes.sql"),
    ),
    (
        12,
        "events_tenant_unchecked",
        include_str!("../../migrations/postgres/0012_events_tenant_unchecked.sql"),
    ),
    (
        13,
        "master_key_check",
        include_str!("../../migrations/postgres/0013_master_key_check.sql"),
    ),
];

/// A pooled connection idle at least this long is checked with a round trip before use
/// (see `PgStore::open`).
pub const CHECK_AFTER_IDLE: Duration = Duration::from_secs(1);

/// PostgreSQL-backed store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Where writes go: the same pool (PostgreSQL has row locks and many writers; the
    /// shared SQL names `writer` for SQLite's single-writer connection).
    pub(crate) writer: WriterPool<sqlx::Postgres>,
    /// Schema in use, if not the default search path (also namespaces NOTIFY channels).
    pub(crate) schema: Option<String>,
    /// Fan-out settings and the local handoff.
    pub(crate) hub: Arc<DeliveryHub>,
    /// Tenants' webhooks for fan-out, by the version requests saw (`subscriber_cache.rs`).
    pub(crate) subscribers: Arc<SubscriberCache>,
    /// Projects as this node last wrote them, for their next update (`project_cache.rs`).
    pub(crate) projects: Arc<ProjectCache>,
    /// `NOTIFY` channel for new claimable work, namespaced by schema so test schemas (or
    /// separate deployments sharing a database) do not wake each other.
    pub(crate) channel: String,
    /// Every request's token read, batched with the others waiting (`read_batch.rs`).
    pub(crate) token_reads: Arc<ReadBatch<TokenRecord>>,
}

impl PgStore {
    /// Writers run concurrently; serialisation takes row locks.
    pub(crate) const SINGLE_WRITER: bool = false;

    /// Connects with the default pool size ([`crate::config::DEFAULT_PG_MAX_CONNECTIONS`]),
    /// creates `schema` if given and missing, and migrates.
    pub async fn open(url: &str, schema: Option<&str>) -> StoreResult<Self> {
        Self::open_pooled(url, schema, crate::config::DEFAULT_PG_MAX_CONNECTIONS).await
    }

    /// As [`PgStore::open`], with a pool of at most `max_connections` (at least 1; a
    /// node's delivery engine holds one for `LISTEN`, so a serving node needs two).
    pub async fn open_pooled(url: &str, schema: Option<&str>, max_connections: u32) -> StoreResult<Self> {
        let mut opts = PgConnectOptions::from_str(url)?;
        if opts.get_application_name().is_none() {
            // Operators find Herald's sessions in `pg_stat_activity` (and its log lines
            // with `%a`) by name; a URL's own `application_name` wins.
            opts = opts.application_name("herald");
        }
        if let Some(s) = schema {
            // The schema name was validated at config load (a-z, 0-9, _), so quoting is safe.
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.clone())
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{s}\""))
                .execute(&admin)
                .await?;
            admin.close().await;
            opts = opts.options([("search_path", s)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            // sqlx's default checks every connection with a round trip to the server
            // before handing it out (and again when it comes back, which cannot be turned
            // off). A project update made seven round trips: its three statements (the
            // token, the entity, the write) and a check before and after each of its two
            // connections, which on a busy node had answered a few milliseconds earlier.
            // Only a connection that sat idle is checked before use now: that is where a
            // restarted server or a dropped link would show.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < CHECK_AFTER_IDLE {
                        return Ok(true);
                    }
                    // A connection that fails the check is dropped (the error is logged) and
                    // the pool takes another. One that broke less than a second after its
                    // last use still reaches its next statement, which then fails.
                    sqlx::Connection::ping(conn).await.map(|()| true)
                })
            })
            .connect_with(opts)
            .await?;
        migrator(MIGRATIONS).run(&pool).await?;
        warn_on_clock_skew(&pool).await?;
        let token_reads = {
            let pool = pool.clone();
            ReadBatch::new(Arc::new(move |ids: Vec<String>| {
                let pool = pool.clone();
                Box::pin(async move { tokens_by_ids(&pool, ids).await }) as _
            }))
        };
        Ok(Self {
            token_reads,
            writer: WriterPool::new(pool.clone()),
            pool,
            schema: schema.map(str::to_owned),
            hub: Arc::default(),
            subscribers: Arc::default(),
            projects: Arc::default(),
            channel: match schema {
                Some(s) => format!("herald_work_{s}"),
                None => "herald_work".to_owned(),
            },
        })
    }
}

/// Payload prefix of a notification naming a webhook whose queued jobs go.
const FORGET_PREFIX: &str = "forget:";

/// The webhook a `forget:` notification names; `None` for a work notification.
fn forgotten(payload: &str) -> Option<uuid::Uuid> {
    payload
        .strip_prefix(FORGET_PREFIX)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
}

/// How far a node's clock may be from the database's before it says so at start.
const CLOCK_SKEW_WARN_MS: i64 = 1_000;

/// Logs a warning when this node's clock is more than [`CLOCK_SKEW_WARN_MS`] from the
/// database server's. Why: leases are stamped with the clock of the node that takes
/// them and judged expired by the clock of the node that looks, so nodes sharing a
/// database must keep their clocks in step (an attempt starts only with 2 s of lease to
/// spare): a node running seconds ahead would take over a lease still in use and send
/// its delivery a second time. The database's clock is the one every node can compare
/// itself with; half the round trip is allowed for.
async fn warn_on_clock_skew(pool: &PgPool) -> StoreResult<()> {
    let before = crate::timefmt::now_ms();
    let server: i64 = sqlx::query_scalar("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
        .fetch_one(pool)
        .await?;
    let after = crate::timefmt::now_ms();
    if let Some(skew) = clock_skew(before, server, after) {
        tracing::warn!(
            skew_ms = skew,
            "this node's clock is {:.1} s {} the PostgreSQL server's: nodes sharing a database must keep their clocks in step (NTP), or one may take over another's running deliveries and send them twice",
            skew.abs() as f64 / 1000.0,
            if skew > 0 { "ahead of" } else { "behind" }
        );
    }
    Ok(())
}

/// This node's clock minus the server's (read between `before` and `after` here), when
/// it is beyond what the read's own round trip can explain plus [`CLOCK_SKEW_WARN_MS`].
fn clock_skew(before: i64, server: i64, after: i64) -> Option<i64> {
    let skew = before + (after - before) / 2 - server;
    (skew.abs() > CLOCK_SKEW_WARN_MS + (after - before) / 2).then_some(skew)
}

/// The tokens of `ids`, each with its id, in one statement (`read_batch.rs`).
async fn tokens_by_ids(pool: &PgPool, ids: Vec<String>) -> StoreResult<Vec<(String, TokenRecord)>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("{TOKEN_SELECT} WHERE t.id = ANY($1)"));
    let rows = sqlx::query(sql).bind(ids).fetch_all(pool).await?;
    rows.iter()
        .map(|r| common_impl::token_from_row(r).map(|t| (t.id.clone(), t)))
        .collect()
}

impl PgStore {
    /// Fan-out's webhook lists for a request that saw `seen` with its token: kept under
    /// that version (other nodes change webhooks too; every change raises the tenant's
    /// version, `subscriber_cache.rs`). Without a version, fan-out reads them.
    pub(crate) fn subscriber_cache(&self, seen: Option<i64>) -> Option<(&SubscriberCache, i64)> {
        seen.map(|v| (self.subscribers.as_ref(), v))
    }

    /// Runs a tracker change in a transaction of its own: nodes and changes run in
    /// parallel, serialised only by the row locks the change takes.
    pub(crate) async fn run_change(&self, mut req: ChangeRequest) -> StoreResult<ChangeOutcome> {
        // A project's update first tries the one-statement path (`Finish::Optimistic`):
        // it falls back to a transaction when the project changed since it was read, or
        // when the change needs more than that statement. It starts from the project as
        // this node last wrote it when kept (`project_cache.rs`); when its write finds no
        // row (the kept row is stale, or the project is gone), it forgets it and tries
        // once more from a fresh read before falling back.
        let t = req.tenant_id;
        let project_update = match (req.kind, &req.op) {
            (EntityKind::Project, ChangeOp::Update { id }) => Some(*id),
            _ => None,
        };
        if let Some(id) = project_update {
            req.known = self.projects.get(t, id);
            loop {
                let mut conn = self.writer.acquire().await?;
                let step = tracker_impl::apply_in(&mut conn, self, &req, Finish::Optimistic).await;
                // Only a write checks the kept row against the stored one: an answer
                // drawn from the row without one (nothing to change, input refused
                // against it) is given only from a fresh read. Other errors are returned
                // as they were: the write may have committed before one (a lost reply).
                let drawn_from_row = matches!(
                    step,
                    Ok(ChangeStep::Discard(_)) | Err(StoreError::Invalid(_) | StoreError::Conflict(_))
                );
                if drawn_from_row && req.known.take().is_some() {
                    continue;
                }
                match step? {
                    ChangeStep::Keep {
                        outcome,
                        jobs,
                        claimable,
                    } => {
                        self.keep_project(t, &outcome);
                        self.hub.hand_off(jobs, claimable);
                        return Ok(outcome);
                    }
                    ChangeStep::Discard(outcome) => return Ok(outcome),
                    ChangeStep::Again => {
                        self.projects.forget(t, id);
                        if req.known.take().is_none() {
                            break;
                        }
                    }
                }
            }
        }
        let mut tx = self.writer.begin().await?;
        match tracker_impl::apply_in(&mut tx, self, &req, Finish::Transaction).await? {
            ChangeStep::Keep {
                outcome,
                jobs,
                claimable,
                ..
            } => {
                tx.commit().await?;
                match project_update {
                    Some(_) => self.keep_project(t, &outcome),
                    None => self.forget_project_of(&req, &outcome),
                }
                self.hub.hand_off(jobs, claimable);
                Ok(outcome)
            }
            ChangeStep::Discard(outcome) => {
                tx.rollback().await?;
                Ok(outcome)
            }
            ChangeStep::Again => Err(StoreError::CommitFailed(
                "a change in a transaction asked to run again".into(),
            )),
        }
    }

    /// Keeps the project a committed update of it wrote, for its next update.
    fn keep_project(&self, tenant_id: i64, outcome: &ChangeOutcome) {
        if let ChangeOutcome::Applied { row: Some(row), .. } = outcome {
            self.projects.put(tenant_id, row);
        }
    }

    /// Forgets the project a committed change other than its own update touched: a
    /// change to something in it raised its version, a delete removed it. (A kept row
    /// that is stale only costs a write that finds no row; this spares it.)
    fn forget_project_of(&self, req: &ChangeRequest, outcome: &ChangeOutcome) {
        let t = req.tenant_id;
        if let (EntityKind::Project, ChangeOp::Delete { id }) = (req.kind, &req.op) {
            self.projects.forget(t, *id);
        }
        if let ChangeOutcome::Applied { row, event } = outcome {
            let in_project = row.as_ref().and_then(|r| r.project_id);
            let of_event = event.as_ref().and_then(|e| e.project.as_ref()).map(|p| p.id);
            for id in in_project.into_iter().chain(of_event) {
                self.projects.forget(t, id);
            }
        }
    }

    /// Records attempt outcomes in a transaction of their own: the recorder runs several
    /// at once on PostgreSQL (`recorder.rs`).
    pub(crate) async fn write_attempts(
        &self,
        records: Arc<[AttemptRecord]>,
        auto: AutoDisable,
        now: i64,
    ) -> StoreResult<Vec<uuid::Uuid>> {
        let mut tx = self.writer.begin().await?;
        let disabled = delivery_impl::record_in(&mut tx, self, &records, auto, now).await?;
        tx.commit().await?;
        Ok(disabled)
    }

    /// Gives leases back in a transaction of their own.
    pub(crate) async fn write_releases(&self, leases: &[(uuid::Uuid, String)]) -> StoreResult<u64> {
        let mut tx = self.writer.begin().await?;
        let n = delivery_impl::release_in(&mut tx, self, leases).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// No turns: PostgreSQL has many writers and row locks.
    pub(crate) async fn change_turn(&self) -> StoreResult<Option<tokio::sync::SemaphorePermit<'_>>> {
        Ok(None)
    }

    /// Nothing to forget: a webhook write raises the tenant's `webhooks_version`, which
    /// every later request sees with its token (`subscriber_cache.rs`).
    pub(crate) fn forget_subscribers(&self) {}

    /// The schema in use, if one was configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The claim statement: candidates are locked with `FOR UPDATE SKIP LOCKED`, so any
    /// number of nodes claim concurrently without waiting on, or double-claiming, each
    /// other's rows. Each source locks in its own `WITH` (a `UNION` cannot be locked).
    /// Binds: token, lease_until, now, limit, per_webhook, the `exclude` ids, the
    /// `one_each` ids (a long list as one JSON array, see `INLINE_IDS`).
    pub(crate) fn claim_sql(exclude: usize, one_each: usize) -> String {
        let ids: IdList = |n| format!("SELECT json_array_elements_text(${n}::json)");
        let (excluded, one) = claim_id_lists(exclude, one_each, ids);
        let lock = " FOR UPDATE OF d SKIP LOCKED";
        let free = claim_candidates(ClaimSource::Free, &excluded, lock);
        let expired = claim_candidates(ClaimSource::Expired, &excluded, lock);
        let chosen = claim_chosen_filter(&one);
        format!(
            "WITH free AS ({free}), expired AS ({expired}), \
             ranked AS (SELECT seq, webhook_id, next_attempt_at, ROW_NUMBER() OVER \
             (PARTITION BY webhook_id ORDER BY next_attempt_at, seq) AS rn \
             FROM (SELECT * FROM free UNION ALL SELECT * FROM expired) AS cand), \
             chosen AS (SELECT seq FROM ranked WHERE {chosen} ORDER BY next_attempt_at LIMIT $4) \
             UPDATE deliveries SET lease_token = $1, lease_until = $2 FROM chosen \
             WHERE deliveries.seq = chosen.seq RETURNING {CLAIM_RETURNING}"
        )
    }

    /// Tells every node (this one included) that claimable work exists; delivered when the
    /// caller's transaction commits.
    pub(crate) async fn notify_work(&self, c: &mut sqlx::PgConnection) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.channel)
            .execute(c)
            .await?;
        Ok(())
    }

    /// Tells every node (this one included) to drop its queued jobs of `ids` (deleted or
    /// disabled), as the node that changed them does itself; delivered when the caller's
    /// transaction commits. Why: another node's queued jobs carry leases and would still
    /// be sent, for up to a lease, to a webhook that no longer wants them.
    pub(crate) async fn notify_forget(
        &self,
        c: &mut sqlx::PgConnection,
        ids: &[uuid::Uuid],
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(|id| format!("{FORGET_PREFIX}{id}")).collect();
        sqlx::query("SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x")
            .bind(&self.channel)
            .bind(ids)
            .execute(c)
            .await?;
        Ok(())
    }

    /// Token-read statements this store has run, alone or batched: with the reads made,
    /// what batching saved (`read_batch.rs`). For tests and diagnostics.
    #[doc(hidden)]
    pub fn token_read_statements(&self) -> u64 {
        self.token_reads.statements()
    }

    /// The token read with the others in flight or waiting (`read_batch.rs`): always
    /// answers (`Some`), so the one-by-one read `token_by_id` falls back to is SQLite's.
    pub(crate) async fn token_own_read(&self, id: &str) -> Option<StoreResult<Option<super::TokenRecord>>> {
        Some(self.token_reads.read(id).await)
    }

    /// `LISTEN`s on the work channel and wakes `wake` on every notification (and after
    /// every reconnect, in case one was missed) until `stop`; a `forget:<webhook id>`
    /// notification ([`PgStore::notify_forget`]) calls `forget` instead.
    pub(crate) async fn listen(
        &self,
        wake: Arc<tokio::sync::Notify>,
        forget: super::ForgetWebhook,
        stop: CancellationToken,
    ) {
        while !stop.is_cancelled() {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for delivery work; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if let Err(e) = listener.listen(&self.channel).await {
                tracing::warn!(error = %e, "cannot LISTEN for delivery work; retrying");
                continue;
            }
            wake.notify_one();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => match forgotten(n.payload()) {
                            Some(id) => forget(id),
                            None => wake.notify_one(),
                        },
                        // The connection dropped; reconnect (and wake, in case we missed one).
                        Ok(None) => wake.notify_one(),
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                            break;
                        }
                    },
                }
            }
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
    fn single_writer(&self) -> bool {
        Self::SINGLE_WRITER
    }
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl_common_store!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_tracker_store!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_directory_store!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_delivery_store!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_delivery_record!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_delivery_log!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_ui_session_store!(crate::store::postgres::PgStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::{clock_skew, forgotten};

    #[test]
    fn forget_notifications_name_a_webhook_and_others_are_work() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(forgotten(&format!("forget:{id}")), Some(id));
        assert_eq!(forgotten(""), None);
        assert_eq!(forgotten("forget:nope"), None);
    }

    #[test]
    fn clock_skew_counts_beyond_a_second_and_the_round_trip() {
        // In step, or off by less than the margin: nothing to say.
        assert_eq!(clock_skew(10_000, 10_005, 10_010), None);
        assert_eq!(clock_skew(10_000, 9_100, 10_000), None);
        // Ahead of the server by 3 s, behind it by 2 s.
        assert_eq!(clock_skew(13_000, 10_000, 13_000), Some(3_000));
        assert_eq!(clock_skew(10_000, 12_000, 10_000), Some(-2_000));
        // A slow read (2 s round trip) explains up to 1 s more either way.
        assert_eq!(clock_skew(10_000, 9_500, 12_000), None);
        assert_eq!(clock_skew(10_000, 8_000, 12_000), Some(3_000));
    }
}
