//! The PostgreSQL backend: the scale-out option, where several `herald serve` nodes share
//! one database (and, optionally, one schema of it).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::common::impl_common_store;
use super::common_tracker::impl_tracker_store;
use super::ui_sessions::impl_ui_session_store;
use super::{migrator, Store, StoreResult};

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
        "ui_sessions",
        include_str!("../../migrations/postgres/0003_ui_sessions.sql"),
    ),
];

/// PostgreSQL-backed store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Schema in use, if not the default search path (also namespaces NOTIFY channels).
    pub(crate) schema: Option<String>,
}

impl PgStore {
    /// Connects, creates `schema` if given and missing, and migrates.
    pub async fn open(url: &str, schema: Option<&str>) -> StoreResult<Self> {
        let mut opts = PgConnectOptions::from_str(url)?;
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
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        migrator(MIGRATIONS).run(&pool).await?;
        Ok(Self {
            pool,
            schema: schema.map(str::to_owned),
        })
    }
}

impl PgStore {
    /// The schema in use, if one was configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl_common_store!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_tracker_store!(crate::store::postgres::PgStore, sqlx::Postgres);
impl_ui_session_store!(crate::store::postgres::PgStore, sqlx::Postgres);
