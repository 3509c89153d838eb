//! Storage: narrow async traits, one implementation per backend (SQLite, PostgreSQL).
//!
//! No SQL lives outside this module. The SQL both backends share is written once (see
//! `common.rs`, which both backends expand) using `$n` placeholders and portable types
//! (BIGINT epoch-ms times, TEXT ids and JSON), so one test suite proves both.

mod change_path;
mod common;
mod common_change;
mod common_delivery;
mod common_delivery_log;
mod common_delivery_record;
mod common_directory;
mod common_event_tail;
mod common_fanout;
mod common_locks;
mod common_tracker;
pub mod delivery_model;
mod group_commit;
pub mod hub;
pub mod model;
pub mod postgres;
pub mod project_cache;
mod read_batch;
mod row_decode;
pub mod sqlite;
pub mod subscriber_cache;
pub mod tracker_model;
mod ui_sessions;
mod value_rows;
mod wal_checkpoint;
mod writer_pool;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::config::DatabaseConfig;
pub use common_delivery::INLINE_IDS;
pub use delivery_model::*;
pub use hub::{DeliveryHub, FreshLease, FreshSink};
pub use model::*;
pub use tracker_model::*;
pub use ui_sessions::{NewUiSession, UiSessionRecord};

use crate::domain::event::Event;
use crate::domain::event_type::EntityKind;
use crate::domain::field::FieldDef;
use crate::domain::webhook::FieldError;

/// Errors from the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tenant reached its webhook cap.
    #[error("the tenant already has the maximum of {0} webhooks")]
    LimitReached(u32),
    /// A uniqueness rule was violated (e.g. a duplicate account id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value could not be decoded (a bug or manual tampering).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The referenced object does not exist in the tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change is invalid; each error names the offending field.
    #[error("invalid change")]
    Invalid(Vec<FieldError>),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The database failed, seen through SQLite's synchronous writer
    /// (`sqlite/sync_writer.rs`).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The transaction a change shared with others (SQLite group commit) did not commit;
    /// the change was not made.
    #[error("commit failed: {0}")]
    CommitFailed(String),
}

/// Result alias for the store layer.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a node does with a webhook another node deleted or disabled: drop its queued
/// jobs ([`Store::listen_for_work`]).
pub type ForgetWebhook = Arc<dyn Fn(Uuid) + Send + Sync>;

/// Tenants and their users.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Returns the tenant, creating it when missing; the flag tells whether it was created.
    async fn ensure_tenant(&self, slug: &str, now: i64) -> StoreResult<(Tenant, bool)>;
    /// Looks a tenant up by slug.
    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>>;
    /// Number of tenants (zero means "first start").
    async fn tenant_count(&self) -> StoreResult<i64>;
    /// The database's master-key check value (`herald_meta`): the one stored, or
    /// `proposed` (stored now) when there is none yet — the first node to serve the
    /// database sets it.
    async fn master_key_check(&self, proposed: &str) -> StoreResult<String>;
    /// The stored master-key check value, if one was set.
    async fn stored_master_key_check(&self) -> StoreResult<Option<String>>;
    /// The sealed signing secret of the oldest webhook, if any: what a database set up
    /// before the check value was sealed with.
    async fn oldest_sealed_secret(&self) -> StoreResult<Option<String>>;
    /// Returns the user with `account_id`, creating a minimal one when missing.
    async fn ensure_user(&self, tenant_id: i64, account_id: &str, now: i64) -> StoreResult<User>;
}

/// API tokens (only hashes are stored).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token.
    async fn insert_token(&self, t: &NewTokenRecord) -> StoreResult<()>;
    /// Looks a token up by its public id, with its tenant and user.
    async fn token_by_id(&self, id: &str) -> StoreResult<Option<TokenRecord>>;
    /// Lists tokens, of one tenant or all.
    async fn list_tokens(&self, tenant_id: Option<i64>) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token; false if it does not exist or was already revoked.
    async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<bool>;
}

/// Webhook configuration and status.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Inserts a webhook unless the tenant already has `cap` of them.
    async fn insert_webhook(&self, w: &NewWebhook, cap: u32) -> StoreResult<WebhookRecord>;
    /// The tenant's webhooks, oldest first.
    async fn list_webhooks(&self, tenant_id: i64) -> StoreResult<Vec<WebhookRecord>>;
    /// One webhook of the tenant.
    async fn get_webhook(&self, tenant_id: i64, id: Uuid) -> StoreResult<Option<WebhookRecord>>;
    /// Replaces a webhook's configuration; `None` if it does not exist in the tenant.
    async fn update_webhook(
        &self,
        tenant_id: i64,
        id: Uuid,
        cfg: &WebhookConfig,
        now: i64,
    ) -> StoreResult<Option<WebhookRecord>>;
    /// Deletes one webhook; false if it does not exist in the tenant.
    async fn delete_webhook(&self, tenant_id: i64, id: Uuid) -> StoreResult<bool>;
    /// Deletes every webhook of the tenant; returns their ids (whose queued jobs the
    /// caller drops).
    async fn delete_all_webhooks(&self, tenant_id: i64) -> StoreResult<Vec<Uuid>>;
    /// Installs a new signing secret, keeping the old one valid until `previous_until`.
    async fn rotate_secret(
        &self,
        tenant_id: i64,
        id: Uuid,
        new_sealed: &str,
        previous_until: i64,
        now: i64,
    ) -> StoreResult<Option<WebhookRecord>>;
}

/// Admin UI sessions (server-side, so sign-out and token revocation take effect at once).
#[async_trait]
pub trait UiSessionStore: Send + Sync {
    /// Stores a new session.
    async fn insert_ui_session(&self, s: &NewUiSession) -> StoreResult<()>;
    /// The session whose id hashes to `id_hash`, unless it expired before `now`.
    async fn ui_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<UiSessionRecord>>;
    /// Ends a session; false if there was none.
    async fn delete_ui_session(&self, id_hash: &str) -> StoreResult<bool>;
    /// Deletes sessions expired at `now`; returns how many.
    async fn purge_expired_ui_sessions(&self, now: i64) -> StoreResult<u64>;
}

/// Users (the authors of changes) and Projectrak field definitions.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates a user; `Conflict` if the account id is taken.
    async fn create_user(&self, tenant_id: i64, u: &NewUser, now: i64) -> StoreResult<User>;
    /// Changes a user's name, initials and e-mail.
    async fn update_user(&self, tenant_id: i64, id: i64, u: &NewUser, now: i64) -> StoreResult<Option<User>>;
    /// The tenant's users.
    async fn list_users(&self, tenant_id: i64) -> StoreResult<Vec<User>>;
    /// One user by numeric id.
    async fn get_user(&self, tenant_id: i64, id: i64) -> StoreResult<Option<User>>;
    /// Users by account id (unknown ids are simply absent).
    async fn users_by_account_ids(&self, tenant_id: i64, ids: &[String]) -> StoreResult<Vec<User>>;
    /// Inserts Projectrak's predefined fields when missing.
    async fn ensure_system_fields(&self, tenant_id: i64, defs: &[FieldDef], now: i64) -> StoreResult<()>;
    /// The tenant's field definitions, by id.
    async fn list_fields(&self, tenant_id: i64) -> StoreResult<Vec<FieldDef>>;
    /// Inserts a custom field, assigning its id (10001 and up).
    async fn insert_field(&self, tenant_id: i64, def: &FieldDef, now: i64) -> StoreResult<FieldDef>;
    /// Changes a field's name, options or formula.
    async fn update_field(&self, tenant_id: i64, def: &FieldDef, now: i64) -> StoreResult<bool>;
    /// Deletes a custom field (system fields stay).
    async fn delete_field(&self, tenant_id: i64, id: i64) -> StoreResult<bool>;
}

/// Tracker entities and the event log.
#[async_trait]
pub trait TrackerStore: Send + Sync {
    /// Minimal facts about entities, for resolving references.
    async fn entity_heads(&self, tenant_id: i64, ids: &[i64]) -> StoreResult<Vec<EntityHead>>;
    /// One entity.
    async fn get_entity(&self, tenant_id: i64, kind: EntityKind, id: i64) -> StoreResult<Option<EntityRow>>;
    /// Entities of a kind (optionally under one parent), id-cursor paged.
    async fn list_entities(
        &self,
        tenant_id: i64,
        kind: EntityKind,
        parent_id: Option<i64>,
        after_id: i64,
        limit: i64,
    ) -> StoreResult<Vec<EntityRow>>;
    /// Applies one change and writes its event in the same transaction.
    async fn apply_change(&self, req: ChangeRequest) -> StoreResult<ChangeOutcome>;
    /// The event log after cursor `after`, optionally filtered by type.
    async fn list_events(
        &self,
        tenant_id: i64,
        after: i64,
        limit: i64,
        types: &[String],
    ) -> StoreResult<Vec<Event>>;
    /// Stores an event published by another system; `false` when the idempotency key was
    /// seen before (the earlier event is returned).
    async fn ingest_event(&self, req: &IngestRequest) -> StoreResult<(Event, bool)>;
}

/// One claim: lease up to `limit` due deliveries (at most `per_webhook` of any one webhook,
/// one of each webhook in `one_each`, none of the webhooks in `exclude`) to `token` until
/// `lease_until`.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Lease token for the claimed rows.
    pub token: String,
    /// Lease expiry, epoch ms.
    pub lease_until: i64,
    /// Current time, epoch ms: rows due by then, with no live lease, are claimable.
    pub now: i64,
    /// Most rows to claim.
    pub limit: i64,
    /// Most rows of one webhook.
    pub per_webhook: i64,
    /// Webhooks this node has no room for right now.
    pub exclude: Vec<Uuid>,
    /// Webhooks this node runs one attempt at a time right now (their endpoints stopped
    /// answering): at most one row of each.
    pub one_each: Vec<Uuid>,
}

/// Which deliveries of a webhook a bulk replay re-queues (one page of them).
#[derive(Debug, Clone)]
pub struct RedeliverMatch {
    /// Only deliveries in this state.
    pub status: DeliveryStatus,
    /// Only deliveries created at or after this time, epoch ms.
    pub since: Option<i64>,
    /// Paging: only deliveries with a larger `seq`.
    pub after_seq: i64,
    /// Page size.
    pub limit: i64,
}

/// Deliveries: fan-out results, claims, outcomes, the delivery log and redelivery.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// The fan-out hub (public base URL, local handoff).
    fn hub(&self) -> &Arc<DeliveryHub>;
    /// Leases due deliveries (see [`ClaimRequest`]); ordered webhooks only yield an entity's
    /// next delivery once every earlier one is settled.
    async fn claim_due(&self, req: &ClaimRequest) -> StoreResult<Vec<DeliveryJob>>;
    /// Writes a batch of finished attempts, the deliveries' new states and the webhooks'
    /// status in one transaction; returns the webhooks this batch disabled. Shared, not
    /// borrowed: on SQLite the batch goes to the writer task without a copy, and the
    /// recorder keeps it for retries.
    async fn record_attempts(
        &self,
        records: Arc<[AttemptRecord]>,
        auto: AutoDisable,
        now: i64,
    ) -> StoreResult<Vec<Uuid>>;
    /// Gives leases back (shutdown, or work this node has no room for).
    async fn release_leases(&self, leases: &[(Uuid, String)]) -> StoreResult<u64>;
    /// Returns once every change committed before the call has handed its deliveries
    /// over (SQLite's writer task hands them over after its batch's commit; elsewhere
    /// the committing task does it right away, and this returns at once).
    async fn settle_hand_offs(&self) -> StoreResult<()>;
    /// Wakes `wake` whenever another process creates claimable work, and calls `forget`
    /// with each webhook another process deleted or disabled, until `stop` (PostgreSQL
    /// `LISTEN`; returns at once on SQLite, whose only writer is this process).
    async fn listen_for_work(
        &self,
        wake: Arc<tokio::sync::Notify>,
        forget: ForgetWebhook,
        stop: tokio_util::sync::CancellationToken,
    );
    /// The delivery log, newest first.
    async fn list_deliveries(
        &self,
        tenant_id: i64,
        webhook_id: Option<Uuid>,
        f: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliverySummary>>;
    /// One delivery with its body and attempts.
    async fn get_delivery(&self, tenant_id: i64, id: Uuid) -> StoreResult<Option<DeliveryDetail>>;
    /// Queues a new attempt of a delivery (same id, same body).
    async fn redeliver(
        &self,
        tenant_id: i64,
        id: Uuid,
        now: i64,
    ) -> StoreResult<Result<DeliverySummary, RedeliverRefusal>>;
    /// Re-queues one page of a webhook's deliveries; returns how many and the last `seq` seen.
    async fn redeliver_matching(
        &self,
        tenant_id: i64,
        webhook_id: Uuid,
        m: &RedeliverMatch,
        now: i64,
    ) -> StoreResult<(u64, Option<i64>)>;
    /// How many deliveries a bulk replay would re-queue.
    async fn count_matching(
        &self,
        tenant_id: i64,
        webhook_id: Uuid,
        status: DeliveryStatus,
        since: Option<i64>,
    ) -> StoreResult<i64>;
    /// Creates a delivery of a `Webhook:Ping` event (not written to the event log); `None`
    /// if the webhook does not exist. Returns the delivery id and the jobs to hand over.
    async fn create_ping(
        &self,
        tenant_id: i64,
        webhook_id: Uuid,
        event: &Event,
    ) -> StoreResult<Option<(Uuid, Vec<DeliveryJob>)>>;
    /// Queue figures for metrics.
    async fn queue_stats(&self, now: i64) -> StoreResult<QueueStats>;
    /// Drops request and response bodies older than `cutoff` (finished deliveries only),
    /// after cancelling pending deliveries whose webhook no longer exists (retention's
    /// hourly pass is where such strays are swept).
    async fn purge_bodies(&self, cutoff: i64) -> StoreResult<u64>;
}

/// Everything Herald stores; the application holds one `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    TenantStore + TokenStore + WebhookStore + DirectoryStore + TrackerStore + DeliveryStore + UiSessionStore
{
    /// Which backend this is, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// Whether every write goes through one connection (SQLite): writes that could run side
    /// by side (the recorder's batches) are then sent one after another.
    fn single_writer(&self) -> bool;
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;
}

/// Opens the configured database and applies pending migrations.
pub async fn connect(cfg: &DatabaseConfig) -> StoreResult<Arc<dyn Store>> {
    Ok(match cfg {
        DatabaseConfig::Sqlite { path } => Arc::new(sqlite::SqliteStore::open(path).await?),
        DatabaseConfig::Postgres {
            url,
            schema,
            max_connections,
        } => Arc::new(postgres::PgStore::open_pooled(url, schema.as_deref(), *max_connections).await?),
    })
}

/// Builds a migrator from SQL files compiled into the binary, so `herald` needs no files
/// beside it (and no proc-macro compile of sqlx's `migrate!`).
fn migrator(files: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    use std::borrow::Cow;
    let migrations: Vec<Migration> = files
        .iter()
        .map(|(v, name, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(name),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}
