//! The embedded SQLite backend: one WAL-mode file under the data directory, zero set-up.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::common::impl_common_store;
use super::common_tracker::impl_tracker_store;
use super::ui_sessions::impl_ui_session_store;
use super::{migrator, Store, StoreResult};

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
        "ui_sessions",
        include_str!("../../migrations/sqlite/0003_ui_sessions.sql"),
    ),
];

/// SQLite-backed store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
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
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        migrator(MIGRATIONS).run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl_common_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_tracker_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
impl_ui_session_store!(crate::store::sqlite::SqliteStore, sqlx::Sqlite);
