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
//! joins by primary key — a handful of pages, in the operating system's cache if not in
//! the connection's own (which SQLite drops whenever another connection committed since
//! its last read) — and in WAL mode a reader never waits for the writer. A connection
//! here has no busy handler: when SQLite cannot start a read (`SQLITE_BUSY` or
//! `SQLITE_LOCKED`: another connection holds the file in exclusive locking mode or is
//! recovering the WAL index; `SQLITE_PROTOCOL`: it kept losing a race for a read lock),
//! or a connection cannot be opened, the read is given to sqlx's pool instead, which may
//! wait. SQLite still retries a lost race for a read lock briefly by itself.
//!
//! At most one connection per runtime thread is ever needed (a read does not yield), so
//! the pool holds up to the machine's parallelism; should more reads than that run at
//! once, the extra ones go to sqlx rather than open connections of their own.
//!
//! Each read is its own read transaction (`query_row` resets the statement before it
//! returns, whatever the outcome), so it sees every change committed before it began — a
//! revoked token is refused on the next request — and holds back no checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::domain::event::UserRef;
use crate::store::common::{parse_uuid, TOKEN_SELECT};
use crate::store::{StoreError, StoreResult, TokenRecord};

/// A small pool of read-only connections used on the caller's thread.
#[derive(Debug)]
pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Connections open (idle or in use).
    open: AtomicUsize,
    /// Most connections ever open: the runtime's threads, each running one read at most.
    max: usize,
    /// The token statement's text, built once: every request looks it up in the
    /// connection's statement cache by this text.
    token_sql: String,
}

impl InlineReads {
    /// Readers of the database file at `path`, with one connection opened now, so that a
    /// file these connections cannot open is reported at start-up.
    pub(crate) fn open(path: &Path) -> rusqlite::Result<Self> {
        let max = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let reads = Self::with_max(path, max);
        let first = reads.connect()?;
        reads.open.store(1, Ordering::Relaxed);
        reads.lock().push(first);
        Ok(reads)
    }

    fn with_max(path: &Path, max: usize) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            max,
            token_sql: format!("{TOKEN_SELECT} WHERE t.id = ?1"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token `id` with its tenant and user; `None` when the read could not start at
    /// once (the caller reads through sqlx instead).
    pub(crate) fn token(&self, id: &str) -> Option<StoreResult<Option<TokenRecord>>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&self.token_sql)?;
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

    /// Runs `read` on an idle connection, or a new one while fewer than `max` are open.
    /// `None`: the read is for sqlx (SQLite could not start it, no connection was free,
    /// or none could be opened).
    fn with<R>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Option<StoreResult<R>> {
        let pooled = self.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                if self.open.fetch_add(1, Ordering::AcqRel) >= self.max {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
                match self.connect() {
                    Ok(c) => c,
                    Err(e) => {
                        self.open.fetch_sub(1, Ordering::AcqRel);
                        tracing::debug!(error = %e, "inline reader could not open; reading through the pool");
                        return None;
                    }
                }
            }
        };
        let out = read(&conn);
        self.lock().push(conn);
        match out {
            Err(e) if refused(&e) => None,
            r => Some(r.map_err(StoreError::Sqlite)),
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}

/// Whether SQLite could not start the read (the only errors the read is retried for,
/// through sqlx).
fn refused(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::FileLockingProtocolFailed)
    )
}

#[cfg(test)]
mod tests {
    use super::InlineReads;
    use crate::store::sqlite::SqliteStore;
    use crate::store::tracker_model::NewUser;
    use crate::store::{DirectoryStore, NewTokenRecord, TenantStore, TokenStore};

    /// A store on a fresh file with one token, `tok`, whose every column differs from
    /// its neighbours' (tenant 2, user 3, two different versions, a name that is not the
    /// account id), so that reading one column for another shows.
    async fn store_with_token(dir: &tempfile::TempDir) -> (SqliteStore, std::path::PathBuf) {
        let path = dir.path().join("herald.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let (first, _) = store.ensure_tenant("first", 1).await.unwrap();
        store.ensure_user(first.id, "OTHER-1", 1).await.unwrap();
        store.ensure_user(first.id, "OTHER-2", 1).await.unwrap();
        let (tenant, _) = store.ensure_tenant("acme", 1).await.unwrap();
        let new_user = NewUser {
            account_id: "ACCOUNT-1".into(),
            name: "Ada Lovelace".into(),
            initials: "AL".into(),
            email: "ada@example.com".into(),
        };
        let user = store.create_user(tenant.id, &new_user, 1).await.unwrap();
        assert_eq!((tenant.id, user.id), (2, 3));
        sqlx::query("UPDATE tenants SET fields_version = 7, webhooks_version = 9 WHERE id = $1")
            .bind(tenant.id)
            .execute(&store.pool)
            .await
            .unwrap();
        store
            .insert_token(&NewTokenRecord {
                id: "tok".into(),
                tenant_id: tenant.id,
                user_id: user.id,
                name: "the token".into(),
                scopes: "admin".into(),
                secret_hash: "hash".into(),
                created_at: 5,
            })
            .await
            .unwrap();
        (store, path)
    }

    #[tokio::test]
    async fn reads_the_same_record_as_sqlx_and_see_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path) = store_with_token(&dir).await;
        let reads = InlineReads::open(&path).unwrap();
        let listed = store.list_tokens(None).await.unwrap().remove(0);
        let found = reads.token("tok").unwrap().unwrap().unwrap();
        assert_eq!(
            found, listed,
            "column for column what sqlx's decoder reads by name"
        );
        assert_eq!(
            (
                found.tenant_id,
                found.user.id,
                found.fields_version,
                found.webhooks_version
            ),
            (2, 3, 7, 9)
        );
        assert_eq!(found.user.name, "Ada Lovelace");

        // Right after a read that found its row, the connection (the pool's one, used
        // again) holds no snapshot: had the statement been left open, its read
        // transaction would still be the one the next read runs in, and the revocation
        // would not be seen.
        assert_eq!(reads.lock().len(), 1);
        assert!(store.revoke_token("tok", 6).await.unwrap());
        assert_eq!(reads.token("tok").unwrap().unwrap().unwrap().revoked_at, Some(6));
        assert!(reads.token("nope").unwrap().unwrap().is_none());
    }

    #[tokio::test]
    async fn what_sqlite_refuses_to_start_goes_to_sqlx_and_other_errors_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, path) = store_with_token(&dir).await;
        let reads = InlineReads::open(&path).unwrap();
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_PROTOCOL,
        ] {
            assert!(reads.with(|_| Err::<(), _>(failure(code))).is_none());
        }
        let corrupt = reads.with(|_| Err::<(), _>(failure(rusqlite::ffi::SQLITE_CORRUPT)));
        assert!(matches!(corrupt, Some(Err(_))));
        // A file that cannot be opened (gone) is sqlx's to report too.
        let gone = InlineReads::with_max(&dir.path().join("missing.db"), 2);
        assert!(gone.token("tok").is_none());
        assert!(
            InlineReads::open(&dir.path().join("missing.db")).is_err(),
            "reported at start-up"
        );
    }

    #[tokio::test]
    async fn at_most_max_connections_and_the_rest_go_to_sqlx() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, path) = store_with_token(&dir).await;
        let reads = InlineReads::with_max(&path, 3);
        for _ in 0..3 {
            reads.token("tok").unwrap().unwrap().unwrap();
        }
        assert_eq!(reads.lock().len(), 1, "one read at a time needs one connection");
        // Reads inside reads each need a connection of their own: three are opened, the
        // fourth read is given to sqlx, and all three are kept.
        let mut answered = Vec::new();
        fn nest(reads: &InlineReads, depth: usize, answered: &mut Vec<bool>) {
            let got = reads.with(|_| {
                if depth > 0 {
                    nest(reads, depth - 1, answered);
                }
                Ok(())
            });
            answered.push(got.is_some());
        }
        nest(&reads, 3, &mut answered);
        assert_eq!(answered, [false, true, true, true], "innermost first");
        assert_eq!(reads.lock().len(), 3);
        assert_eq!(reads.open.load(std::sync::atomic::Ordering::Relaxed), 3);
    }
}
