//! SQL shared by both backends, written once and expanded for each pool type. Both SQLite
//! and PostgreSQL accept `$n` placeholders, `RETURNING`, and the portable column types the
//! migrations use, so the text is identical; only behaviour that truly differs (claiming,
//! notification, connection set-up) lives in the backend files.

use uuid::Uuid;

use super::{StoreError, StoreResult, StoredHeader};
use crate::domain::event_type::EventType;
use crate::domain::webhook::{HttpVerb, Ordering};
use crate::formats::Format;

/// Runs `op` again (three times in all) when PostgreSQL ended it as a deadlock's victim
/// (SQLSTATE 40P01). Why: deleting a webhook locks its row, then its pending deliveries;
/// the outcome recorder locks deliveries it finished, then their webhooks' rows. With an
/// attempt of that webhook being recorded meanwhile the two can wait for each other, and
/// PostgreSQL ends one: the recorder retries by itself, and the delete must too rather
/// than answer 500. The victim's transaction was rolled back, so running it again is safe.
pub(crate) async fn retry_deadlock<T, F, Fut>(mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut tries = 1;
    loop {
        match op().await {
            Err(StoreError::Database(sqlx::Error::Database(d)))
                if tries < 3 && d.code().as_deref() == Some("40P01") =>
            {
                tries += 1;
                tracing::debug!("a webhook change was a deadlock's victim; running it again");
            }
            r => return r,
        }
    }
}

/// The token read every authenticated request makes, with its tenant's versions and its
/// user whole. `token_from_row` reads its columns by name, SQLite's inline read
/// (`sqlite/inline_reads.rs`) by position: keep the two in step.
pub(crate) const TOKEN_SELECT: &str =
    "SELECT t.id, t.tenant_id, n.slug, n.fields_version, n.webhooks_version, t.user_id, u.account_id, \
     u.uuid AS user_uuid, u.name AS user_name, u.initials AS user_initials, u.email AS user_email, t.name, \
     t.scopes, t.secret_hash, t.created_at, t.revoked_at FROM api_tokens t \
     JOIN tenants n ON n.id = t.tenant_id JOIN users u ON u.id = t.user_id";

/// Columns selected for a webhook, in the order `webhook_from_row` reads them.
pub(crate) const WEBHOOK_COLUMNS: &str = "id, tenant_id, name, description, url, http_verb, format, \
     event_types, project_ids, headers, enabled, ordering, secret, previous_secret, \
     previous_secret_until, created_at, updated_at, last_execution_at, last_status_code, \
     last_error, disabled_reason";

/// `$start, $start+1, …`: `n` numbered placeholders (empty when `n` is 0).
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the master-key check value (`herald_meta`, migration `master_key_check`).
pub(crate) const MASTER_KEY_CHECK_SQL: &str = "SELECT value FROM herald_meta WHERE name = 'master_key_check'";

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn parse_uuid(s: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt("uuid", e))
}

pub(crate) fn parse_event_types(s: &str) -> StoreResult<Vec<EventType>> {
    serde_json::from_str(s).map_err(|e| corrupt("event_types", e))
}

pub(crate) fn parse_headers(s: &str) -> StoreResult<Vec<StoredHeader>> {
    serde_json::from_str(s).map_err(|e| corrupt("headers", e))
}

pub(crate) fn parse_ids(s: &str) -> StoreResult<Vec<i64>> {
    serde_json::from_str(s).map_err(|e| corrupt("project_ids", e))
}

pub(crate) fn parse_verb(s: &str) -> StoreResult<HttpVerb> {
    HttpVerb::parse(s).ok_or_else(|| corrupt("http_verb", s))
}

pub(crate) fn parse_format(s: &str) -> StoreResult<Format> {
    Format::parse(s).ok_or_else(|| corrupt("format", s))
}

pub(crate) fn parse_ordering(s: &str) -> StoreResult<Ordering> {
    Ordering::parse(s).ok_or_else(|| corrupt("ordering", s))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain data (strings, numbers, enums) cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Expands the shared trait implementations for one backend store type.
macro_rules! impl_common_store {
    ($store:ty, $db:ty) => {
        mod common_impl {
            use super::*;
            use crate::store::common::*;
            use crate::store::*;
            use async_trait::async_trait;
            use sqlx::Row;
            use uuid::Uuid;

            type Db = $db;
            type DbRow = <Db as sqlx::Database>::Row;

            fn webhook_from_row(r: &DbRow) -> StoreResult<WebhookRecord> {
                let status: Option<i64> = r.try_get("last_status_code")?;
                let error: Option<String> = r.try_get("last_error")?;
                let last_at: Option<i64> = r.try_get("last_execution_at")?;
                Ok(WebhookRecord {
                    id: parse_uuid(r.try_get::<&str, _>("id")?)?,
                    tenant_id: r.try_get("tenant_id")?,
                    config: WebhookConfig {
                        name: r.try_get("name")?,
                        description: r.try_get("description")?,
                        url: r.try_get("url")?,
                        http_verb: parse_verb(r.try_get::<&str, _>("http_verb")?)?,
                        format: parse_format(r.try_get::<&str, _>("format")?)?,
                        event_types: parse_event_types(r.try_get::<&str, _>("event_types")?)?,
                        project_ids: parse_ids(r.try_get::<&str, _>("project_ids")?)?,
                        headers: parse_headers(r.try_get::<&str, _>("headers")?)?,
                        enabled: r.try_get("enabled")?,
                        ordering: parse_ordering(r.try_get::<&str, _>("ordering")?)?,
                    },
                    secret_sealed: r.try_get("secret")?,
                    previous_secret_sealed: r.try_get("previous_secret")?,
                    previous_secret_until: r.try_get("previous_secret_until")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                    last_execution: last_at.map(|at| LastExecution {
                        at,
                        status_code: status,
                        error,
                    }),
                    disabled_reason: r.try_get("disabled_reason")?,
                })
            }

            pub(crate) fn token_from_row(r: &DbRow) -> StoreResult<TokenRecord> {
                Ok(TokenRecord {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    tenant_slug: r.try_get("slug")?,
                    user: crate::domain::event::UserRef {
                        id: r.try_get("user_id")?,
                        uuid: parse_uuid(r.try_get::<&str, _>("user_uuid")?)?,
                        account_id: r.try_get("account_id")?,
                        name: r.try_get("user_name")?,
                        initials: r.try_get("user_initials")?,
                        email: r.try_get("user_email")?,
                    },
                    fields_version: r.try_get("fields_version")?,
                    webhooks_version: r.try_get("webhooks_version")?,
                    name: r.try_get("name")?,
                    scopes: r.try_get("scopes")?,
                    secret_hash: r.try_get("secret_hash")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }

            /// Shared with the tracker implementation in the same backend module.
            pub(super) fn user_from_row(r: &DbRow) -> StoreResult<User> {
                Ok(User {
                    id: r.try_get("id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    uuid: parse_uuid(r.try_get::<&str, _>("uuid")?)?,
                    account_id: r.try_get("account_id")?,
                    name: r.try_get("name")?,
                    initials: r.try_get("initials")?,
                    email: r.try_get("email")?,
                })
            }

            #[async_trait]
            impl TenantStore for $store {
                async fn ensure_tenant(&self, slug: &str, now: i64) -> StoreResult<(Tenant, bool)> {
                    let inserted = sqlx::query::<Db>(
                        "INSERT INTO tenants (slug, created_at) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING",
                    )
                    .bind(slug)
                    .bind(now)
                    .execute(&mut *self.writer.acquire().await?)
                    .await?
                    .rows_affected()
                        > 0;
                    let t = self
                        .tenant_by_slug(slug)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt(format!("tenant {slug} vanished")))?;
                    Ok((t, inserted))
                }

                async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
                    let row = sqlx::query::<Db>("SELECT id, slug, created_at FROM tenants WHERE slug = $1")
                        .bind(slug)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.map(|r| {
                        Ok(Tenant {
                            id: r.try_get("id")?,
                            slug: r.try_get("slug")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .transpose()
                }

                async fn tenant_count(&self) -> StoreResult<i64> {
                    Ok(sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM tenants")
                        .fetch_one(&self.pool)
                        .await?)
                }

                async fn master_key_check(&self, proposed: &str) -> StoreResult<String> {
                    let mut c = self.writer.acquire().await?;
                    sqlx::query::<Db>(
                        "INSERT INTO herald_meta (name, value) VALUES ('master_key_check', $1) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(proposed)
                    .execute(&mut *c)
                    .await?;
                    Ok(sqlx::query_scalar::<Db, String>(crate::store::common::MASTER_KEY_CHECK_SQL)
                        .fetch_one(&mut *c)
                        .await?)
                }

                async fn stored_master_key_check(&self) -> StoreResult<Option<String>> {
                    Ok(sqlx::query_scalar::<Db, String>(crate::store::common::MASTER_KEY_CHECK_SQL)
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn oldest_sealed_secret(&self) -> StoreResult<Option<String>> {
                    Ok(sqlx::query_scalar::<Db, String>("SELECT secret FROM webhooks ORDER BY created_at, id LIMIT 1")
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn ensure_user(&self, tenant_id: i64, account_id: &str, now: i64) -> StoreResult<User> {
                    let initials: String = account_id
                        .split(|c: char| !c.is_alphanumeric())
                        .filter_map(|w| w.chars().next())
                        .take(2)
                        .collect::<String>()
                        .to_uppercase();
                    sqlx::query::<Db>(
                        "INSERT INTO users (tenant_id, uuid, account_id, name, initials, email, created_at, updated_at) \
                         VALUES ($1, $2, $3, $3, $4, '', $5, $5) ON CONFLICT (tenant_id, account_id) DO NOTHING",
                    )
                    .bind(tenant_id)
                    .bind(Uuid::new_v4().to_string())
                    .bind(account_id)
                    .bind(initials)
                    .bind(now)
                    .execute(&mut *self.writer.acquire().await?)
                    .await?;
                    let r = sqlx::query::<Db>(
                        "SELECT id, tenant_id, uuid, account_id, name, initials, email FROM users \
                         WHERE tenant_id = $1 AND account_id = $2",
                    )
                    .bind(tenant_id)
                    .bind(account_id)
                    .fetch_one(&self.pool)
                    .await?;
                    user_from_row(&r)
                }
            }

            use crate::store::common::TOKEN_SELECT;

            #[async_trait]
            impl TokenStore for $store {
                async fn insert_token(&self, t: &NewTokenRecord) -> StoreResult<()> {
                    sqlx::query::<Db>(
                        "INSERT INTO api_tokens (id, tenant_id, user_id, name, scopes, secret_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&t.id)
                    .bind(t.tenant_id)
                    .bind(t.user_id)
                    .bind(&t.name)
                    .bind(&t.scopes)
                    .bind(&t.secret_hash)
                    .bind(t.created_at)
                    .execute(&mut *self.writer.acquire().await?)
                    .await?;
                    Ok(())
                }

                async fn token_by_id(&self, id: &str) -> StoreResult<Option<TokenRecord>> {
                    if let Some(found) = self.token_own_read(id).await {
                        return found;
                    }
                    let row = sqlx::query::<Db>(&format!("{TOKEN_SELECT} WHERE t.id = $1"))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(token_from_row).transpose()
                }

                async fn list_tokens(&self, tenant_id: Option<i64>) -> StoreResult<Vec<TokenRecord>> {
                    let rows = sqlx::query::<Db>(&format!(
                        "{TOKEN_SELECT} WHERE ($1 IS NULL OR t.tenant_id = $1) ORDER BY t.created_at, t.id"
                    ))
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(token_from_row).collect()
                }

                async fn revoke_token(&self, id: &str, now: i64) -> StoreResult<bool> {
                    let n = sqlx::query::<Db>(
                        "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(now)
                    .execute(&mut *self.writer.acquire().await?)
                    .await?
                    .rows_affected();
                    Ok(n > 0)
                }
            }

            impl $store {
                /// Deletes one webhook (`Some(id)`) or all of the tenant's, cancelling their
                /// pending deliveries (kept for the log until retention purges their bodies)
                /// in the same transaction; returns the ids of the webhooks that went, so
                /// the caller can drop their queued jobs.
                async fn delete_webhooks(&self, tenant_id: i64, id: Option<Uuid>) -> StoreResult<Vec<Uuid>> {
                    let mut tx = self.writer.begin().await?;
                    let ids: Vec<String> = sqlx::query_scalar::<Db, String>(
                        "DELETE FROM webhooks WHERE tenant_id = $1 AND ($2 IS NULL OR id = $2) RETURNING id",
                    )
                    .bind(tenant_id)
                    .bind(id.map(|i| i.to_string()))
                    .fetch_all(&mut *tx)
                    .await?;
                    super::delivery_impl::cancel_pending(&mut tx, tenant_id, id).await?;
                    let ids = ids
                        .iter()
                        .map(|i| Uuid::parse_str(i).map_err(|_| crate::store::common::corrupt("webhooks.id", i)))
                        .collect::<StoreResult<Vec<Uuid>>>()?;
                    self.notify_forget(&mut tx, &ids).await?;
                    self.forget_subscribers();
                    tx.commit().await?;
                    Ok(ids)
                }
            }

            #[async_trait]
            impl WebhookStore for $store {
                async fn insert_webhook(&self, w: &NewWebhook, cap: u32) -> StoreResult<WebhookRecord> {
                    let mut tx = self.writer.begin().await?;
                    // Lock the tenant row first so concurrent creates count one at a time.
                    super::tracker_impl::lock_tenant(&mut tx, w.tenant_id).await?;
                    let count: i64 =
                        sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM webhooks WHERE tenant_id = $1")
                            .bind(w.tenant_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    if count >= i64::from(cap) {
                        return Err(StoreError::LimitReached(cap));
                    }
                    let c = &w.config;
                    let row = sqlx::query::<Db>(&format!(
                        "INSERT INTO webhooks (id, tenant_id, name, description, url, http_verb, format, \
                         event_types, project_ids, headers, enabled, ordering, secret, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
                         RETURNING {WEBHOOK_COLUMNS}"
                    ))
                    .bind(w.id.to_string())
                    .bind(w.tenant_id)
                    .bind(&c.name)
                    .bind(&c.description)
                    .bind(&c.url)
                    .bind(c.http_verb.as_str())
                    .bind(c.format.as_str())
                    .bind(to_json(&c.event_types))
                    .bind(to_json(&c.project_ids))
                    .bind(to_json(&c.headers))
                    .bind(c.enabled)
                    .bind(c.ordering.as_str())
                    .bind(&w.secret_sealed)
                    .bind(w.now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let rec = webhook_from_row(&row)?;
                    self.forget_subscribers();
                    tx.commit().await?;
                    Ok(rec)
                }

                async fn list_webhooks(&self, tenant_id: i64) -> StoreResult<Vec<WebhookRecord>> {
                    let rows = sqlx::query::<Db>(&format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY created_at, id"
                    ))
                    .bind(tenant_id)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(webhook_from_row).collect()
                }

                async fn get_webhook(&self, tenant_id: i64, id: Uuid) -> StoreResult<Option<WebhookRecord>> {
                    let row = sqlx::query::<Db>(&format!(
                        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(tenant_id)
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(webhook_from_row).transpose()
                }

                async fn update_webhook(
                    &self,
                    tenant_id: i64,
                    id: Uuid,
                    c: &WebhookConfig,
                    now: i64,
                ) -> StoreResult<Option<WebhookRecord>> {
                    // Enabling a webhook clears an automatic disable and its failure streak.
                    let mut tx = self.writer.begin().await?;
                    let row = sqlx::query::<Db>(&format!(
                        "UPDATE webhooks SET name = $3, description = $4, url = $5, http_verb = $6, \
                         format = $7, event_types = $8, project_ids = $9, headers = $10, \
                         disabled_reason = CASE WHEN $11 THEN NULL ELSE disabled_reason END, \
                         consecutive_failures = CASE WHEN $11 AND NOT enabled THEN 0 ELSE consecutive_failures END, \
                         failing_since = CASE WHEN $11 AND NOT enabled THEN NULL ELSE failing_since END, \
                         enabled = $11, ordering = $12, updated_at = $13 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {WEBHOOK_COLUMNS}"
                    ))
                    .bind(tenant_id)
                    .bind(id.to_string())
                    .bind(&c.name)
                    .bind(&c.description)
                    .bind(&c.url)
                    .bind(c.http_verb.as_str())
                    .bind(c.format.as_str())
                    .bind(to_json(&c.event_types))
                    .bind(to_json(&c.project_ids))
                    .bind(to_json(&c.headers))
                    .bind(c.enabled)
                    .bind(c.ordering.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if row.is_some() && !c.enabled {
                        // Other nodes drop its queued jobs, as this one's caller does.
                        self.notify_forget(&mut tx, &[id]).await?;
                    }
                    self.forget_subscribers();
                    tx.commit().await?;
                    row.as_ref().map(webhook_from_row).transpose()
                }

                async fn delete_webhook(&self, tenant_id: i64, id: Uuid) -> StoreResult<bool> {
                    crate::store::common::retry_deadlock(|| self.delete_webhooks(tenant_id, Some(id)))
                        .await
                        .map(|ids| !ids.is_empty())
                }

                async fn delete_all_webhooks(&self, tenant_id: i64) -> StoreResult<Vec<Uuid>> {
                    crate::store::common::retry_deadlock(|| self.delete_webhooks(tenant_id, None)).await
                }

                async fn rotate_secret(
                    &self,
                    tenant_id: i64,
                    id: Uuid,
                    new_sealed: &str,
                    previous_until: i64,
                    now: i64,
                ) -> StoreResult<Option<WebhookRecord>> {
                    let mut tx = self.writer.begin().await?;
                    let row = sqlx::query::<Db>(&format!(
                        "UPDATE webhooks SET previous_secret = secret, previous_secret_until = $4, \
                         secret = $3, updated_at = $5 WHERE tenant_id = $1 AND id = $2 \
                         RETURNING {WEBHOOK_COLUMNS}"
                    ))
                    .bind(tenant_id)
                    .bind(id.to_string())
                    .bind(new_sealed)
                    .bind(previous_until)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    self.forget_subscribers();
                    tx.commit().await?;
                    row.as_ref().map(webhook_from_row).transpose()
                }
            }
        }
    };
}

pub(crate) use impl_common_store;
