//! Admin UI sessions: the records and the shared SQL (expanded once per backend, like
//! `common.rs`). Kept apart from the webhook and token SQL because only the UI uses it.

/// A session to store. `id_hash` is the SHA-256 hex of the cookie value, never the value.
#[derive(Debug, Clone)]
pub struct NewUiSession {
    /// SHA-256 hex of the session id held in the cookie.
    pub id_hash: String,
    /// Tenant the session belongs to (the token's).
    pub tenant_id: i64,
    /// The API token the person signed in with; its scopes and revocation apply.
    pub token_id: String,
    /// Synchronizer token every form of this session must echo.
    pub csrf_token: String,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Absolute expiry, epoch ms.
    pub expires_at: i64,
}

/// A stored, unexpired session.
pub type UiSessionRecord = NewUiSession;

/// Expands the `UiSessionStore` implementation for one backend store type.
macro_rules! impl_ui_session_store {
    ($store:ty, $db:ty) => {
        mod ui_session_impl {
            use crate::store::*;
            use async_trait::async_trait;
            use sqlx::Row;

            type Db = $db;

            #[async_trait]
            impl UiSessionStore for $store {
                async fn insert_ui_session(&self, s: &NewUiSession) -> StoreResult<()> {
                    sqlx::query::<Db>(
                        "INSERT INTO ui_sessions (id_hash, tenant_id, token_id, csrf_token, created_at, \
                         expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&s.id_hash)
                    .bind(s.tenant_id)
                    .bind(&s.token_id)
                    .bind(&s.csrf_token)
                    .bind(s.created_at)
                    .bind(s.expires_at)
                    .execute(&mut *self.writer.acquire().await?)
                    .await?;
                    Ok(())
                }

                async fn ui_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<UiSessionRecord>> {
                    let row = sqlx::query::<Db>(
                        "SELECT id_hash, tenant_id, token_id, csrf_token, created_at, expires_at \
                         FROM ui_sessions WHERE id_hash = $1 AND expires_at > $2",
                    )
                    .bind(id_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|r| {
                        Ok(UiSessionRecord {
                            id_hash: r.try_get("id_hash")?,
                            tenant_id: r.try_get("tenant_id")?,
                            token_id: r.try_get("token_id")?,
                            csrf_token: r.try_get("csrf_token")?,
                            created_at: r.try_get("created_at")?,
                            expires_at: r.try_get("expires_at")?,
                        })
                    })
                    .transpose()
                }

                async fn delete_ui_session(&self, id_hash: &str) -> StoreResult<bool> {
                    let n = sqlx::query::<Db>("DELETE FROM ui_sessions WHERE id_hash = $1")
                        .bind(id_hash)
                        .execute(&mut *self.writer.acquire().await?)
                        .await?
                        .rows_affected();
                    Ok(n > 0)
                }

                async fn purge_expired_ui_sessions(&self, now: i64) -> StoreResult<u64> {
                    Ok(
                        sqlx::query::<Db>("DELETE FROM ui_sessions WHERE expires_at <= $1")
                            .bind(now)
                            .execute(&mut *self.writer.acquire().await?)
                            .await?
                            .rows_affected(),
                    )
                }
            }
        }
    };
}

pub(crate) use impl_ui_session_store;
