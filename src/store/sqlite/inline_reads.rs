//! The point read every API request makes (its token), run inline on the calling task's
//! thread through connections of our own, not through sqlx's pool.
//!
//! Why: sqlx runs each SQLite statement on the connection's own thread, so one indexed
//! read of a few microseconds costs a hand-off there and back — a wake-up and two
//! context switches on each side, ~55 µs of CPU on a two-core machine (the same cost the
//! writer shed, `sync_writer.rs`). Every authenticated request reads its token, so on the
//! change path that hand-off was paid once per tracker change.
//!
//! Why it may block the runtime's thread: the read is one look-up by primary key plus two
//! joins by primary key, on pages the cache nearly always holds, and in WAL mode a reader
//! never waits for the writer. A connection here has no busy timeout: in the rare case
//! SQLite cannot start a read at once (`SQLITE_BUSY` while another connection recovers the
//! WAL index), the read gives up inline and the caller takes sqlx's path, which may wait.
//!
//! Each read is its own read transaction, so it sees every change committed before it
//! began — a revoked token is refused on the next request, as before.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::domain::event::UserRef;
use crate::store::common::{parse_uuid, TOKEN_SELECT};
use crate::store::{StoreError, StoreResult, TokenRecord};

/// Idle connections kept; more are opened when more requests read at once, and closed
/// when they come back to a full pool (each holds its own page cache).
const MAX_IDLE: usize = 4;

/// A small pool of read-only connections used on the caller's thread.
#[derive(Debug)]
pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReads {
    /// Readers of the database file at `path` (opened lazily, on first use).
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The token `id` with its tenant and user; `None` when the read could not start at
    /// once (the caller reads through sqlx instead).
    pub(crate) fn token(&self, id: &str) -> Option<StoreResult<Option<TokenRecord>>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{TOKEN_SELECT} WHERE t.id = ?1"))?;
            stmt.query_row([id], |r| {
                Ok((
                    TokenRecord {
                        id: r.get(0)?,
                        tenant_id: r.get(1)?,
                        tenant_slug: r.get(2)?,
                        fields_version: r.get(3)?,
                        webhooks_version: r.get(4)?,
                        user: UserRef {
                            id: r.get(5)?,
                            account_id: r.get(6)?,
                            uuid: uuid::Uuid::nil(),
                            name: r.get(8)?,
                            initials: r.get(9)?,
                            email: r.get(10)?,
                        },
                        name: r.get(11)?,
                        scopes: r.get(12)?,
                        secret_hash: r.get(13)?,
                        created_at: r.get(14)?,
                        revoked_at: r.get(15)?,
                    },
                    r.get::<_, String>(7)?,
                ))
            })
            .optional()
        })
        .map(|read| {
            let Some((mut rec, uuid)) = read? else {
                return Ok(None);
            };
            rec.user.uuid = parse_uuid(&uuid)?;
            Ok(Some(rec))
        })
    }

    /// Runs `read` on an idle connection (or a new one). `None` when SQLite was busy.
    fn with<R>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Option<StoreResult<R>> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled.map_or_else(|| self.open(), Ok) {
            Ok(c) => c,
            Err(e) if busy(&e) => return None,
            Err(e) => return Some(Err(StoreError::Sqlite(e))),
        };
        let out = read(&conn);
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        match out {
            Err(e) if busy(&e) => None,
            r => Some(r.map_err(StoreError::Sqlite)),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}

/// Whether SQLite refused to start at once (the only errors retried through sqlx).
fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::InlineReads;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewTokenRecord, TenantStore, TokenStore};

    /// A store on a fresh file with one token, `tok`.
    async fn store_with_token(dir: &tempfile::TempDir) -> (SqliteStore, std::path::PathBuf) {
        let path = dir.path().join("herald.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let (tenant, _) = store.ensure_tenant("acme", 1).await.unwrap();
        let user = store.ensure_user(tenant.id, "ACCOUNT-1", 1).await.unwrap();
        store
            .insert_token(&NewTokenRecord {
                id: "tok".into(),
                tenant_id: tenant.id,
                user_id: user.id,
                name: "t".into(),
                scopes: "admin".into(),
                secret_hash: "h".into(),
                created_at: 2,
            })
            .await
            .unwrap();
        (store, path)
    }

    #[tokio::test]
    async fn reads_see_every_commit_and_a_busy_database_is_left_to_sqlx() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path) = store_with_token(&dir).await;
        let reads = InlineReads::new(&path);
        let found = reads.token("tok").unwrap().unwrap().unwrap();
        assert_eq!(
            (
                found.tenant_slug.as_str(),
                found.user.account_id.as_str(),
                found.revoked_at
            ),
            ("acme", "ACCOUNT-1", None)
        );
        assert!(reads.token("nope").unwrap().unwrap().is_none());
        // The kept connection holds no snapshot between reads: a later commit is seen.
        assert!(store.revoke_token("tok", 3).await.unwrap());
        assert_eq!(reads.token("tok").unwrap().unwrap().unwrap().revoked_at, Some(3));

        // SQLite refusing to start (busy, locked) is "read it elsewhere", not an error;
        // any other failure is one.
        let busy = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            assert!(reads.with(|_| Err::<(), _>(busy(code))).is_none());
        }
        let corrupt = reads.with(|_| Err::<(), _>(busy(rusqlite::ffi::SQLITE_CORRUPT)));
        assert!(matches!(corrupt, Some(Err(_))));
    }

    #[tokio::test]
    async fn idle_connections_are_reused_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, path) = store_with_token(&dir).await;
        let reads = InlineReads::new(&path);
        for _ in 0..3 {
            reads.token("tok").unwrap().unwrap().unwrap();
        }
        assert_eq!(reads.idle.lock().unwrap().len(), 1, "one at a time needs one");
        // Reads nested inside reads each need a connection of their own; only
        // `MAX_IDLE` of them stay open afterwards.
        fn nest(reads: &InlineReads, depth: usize) {
            reads
                .with(|_| {
                    if depth > 0 {
                        nest(reads, depth - 1);
                    }
                    Ok(())
                })
                .unwrap()
                .unwrap();
        }
        nest(&reads, super::MAX_IDLE + 2);
        assert_eq!(reads.idle.lock().unwrap().len(), super::MAX_IDLE);
    }
}
