//! Users and field definitions: SQL shared by both backends, expanded per pool type.

/// Expands the `DirectoryStore` implementation for one backend store type.
macro_rules! impl_directory_store {
    ($store:ty, $db:ty) => {
        mod directory_impl {
            use super::common_impl::user_from_row;
            use super::tracker_impl::{field_from_row, lock_tenant, unique_conflict};
            use crate::domain::field::FieldDef;
            use crate::store::common::{placeholders, to_json};
            use crate::store::*;
            use async_trait::async_trait;
            use uuid::Uuid;

            type Db = $db;

            const USER_COLUMNS: &str = "id, tenant_id, uuid, account_id, name, initials, email";

            /// Raises the tenant's `fields_version` inside the transaction that changes its
            /// field definitions: a server caching definitions under the version it read
            /// with a token then never keeps the old ones under the new number.
            async fn bump_fields_version(tx: &mut sqlx::Transaction<'_, Db>, tenant_id: i64) -> StoreResult<()> {
                sqlx::query::<Db>("UPDATE tenants SET fields_version = fields_version + 1 WHERE id = $1")
                    .bind(tenant_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            #[async_trait]
            impl DirectoryStore for $store {
                async fn create_user(&self, tenant_id: i64, u: &NewUser, now: i64) -> StoreResult<User> {
                    let row = sqlx::query::<Db>(&format!(
                        "INSERT INTO users (tenant_id, uuid, account_id, name, initials, email, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {USER_COLUMNS}"
                    ))
                    .bind(tenant_id).bind(Uuid::new_v4().to_string()).bind(&u.account_id).bind(&u.name)
                    .bind(&u.initials).bind(&u.email).bind(now)
                    .fetch_one(&mut *self.writer.acquire().await?)
                    .await
                    .map_err(|e| unique_conflict(e, format!("a user with account id `{}` already exists", u.account_id)))?;
                    user_from_row(&row)
                }

                async fn update_user(&self, tenant_id: i64, id: i64, u: &NewUser, now: i64) -> StoreResult<Option<User>> {
                    let row = sqlx::query::<Db>(&format!(
                        "UPDATE users SET name = $3, initials = $4, email = $5, updated_at = $6 \
                         WHERE tenant_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
                    ))
                    .bind(tenant_id).bind(id).bind(&u.name).bind(&u.initials).bind(&u.email).bind(now)
                    .fetch_optional(&mut *self.writer.acquire().await?)
                    .await?;
                    row.as_ref().map(user_from_row).transpose()
                }

                async fn list_users(&self, tenant_id: i64) -> StoreResult<Vec<User>> {
                    let rows = sqlx::query::<Db>(&format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY id"))
                        .bind(tenant_id).fetch_all(&self.pool).await?;
                    rows.iter().map(user_from_row).collect()
                }

                async fn get_user(&self, tenant_id: i64, id: i64) -> StoreResult<Option<User>> {
                    let row = sqlx::query::<Db>(&format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"))
                        .bind(tenant_id).bind(id).fetch_optional(&self.pool).await?;
                    row.as_ref().map(user_from_row).transpose()
                }

                async fn users_by_account_ids(&self, tenant_id: i64, ids: &[String]) -> StoreResult<Vec<User>> {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let sql = format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND account_id IN ({})",
                        placeholders(2, ids.len())
                    );
                    let mut q = sqlx::query::<Db>(&sql).bind(tenant_id);
                    for id in ids {
                        q = q.bind(id);
                    }
                    q.fetch_all(&self.pool).await?.iter().map(user_from_row).collect()
                }

                async fn ensure_system_fields(&self, tenant_id: i64, defs: &[FieldDef], now: i64) -> StoreResult<()> {
                    // No conflict target: two first requests racing here collide on the
                    // name index as well as on the id, and both must be "already there".
                    let mut tx = self.writer.begin().await?;
                    let mut added = 0;
                    for d in defs {
                        added += sqlx::query::<Db>(
                            "INSERT INTO fields (tenant_id, id, name, name_key, type, options, formula, system, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $8) ON CONFLICT DO NOTHING",
                        )
                        .bind(tenant_id).bind(d.id).bind(&d.name).bind(d.name.to_lowercase())
                        .bind(d.field_type.as_str()).bind(to_json(&d.options)).bind(true).bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    if added > 0 {
                        bump_fields_version(&mut tx, tenant_id).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn list_fields(&self, tenant_id: i64) -> StoreResult<Vec<FieldDef>> {
                    let rows = sqlx::query::<Db>(
                        "SELECT id, name, type, options, formula, system FROM fields WHERE tenant_id = $1 ORDER BY id",
                    )
                    .bind(tenant_id).fetch_all(&self.pool).await?;
                    rows.iter().map(field_from_row).collect()
                }

                async fn insert_field(&self, tenant_id: i64, d: &FieldDef, now: i64) -> StoreResult<FieldDef> {
                    let mut tx = self.writer.begin().await?;
                    lock_tenant(&mut tx, tenant_id).await?;
                    let id: i64 = sqlx::query_scalar::<Db, i64>(
                        "SELECT COALESCE(MAX(id), 10000) + 1 FROM fields WHERE tenant_id = $1 AND id > 10000",
                    )
                    .bind(tenant_id).fetch_one(&mut *tx).await?;
                    sqlx::query::<Db>(
                        "INSERT INTO fields (tenant_id, id, name, name_key, type, options, formula, system, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                    )
                    .bind(tenant_id).bind(id).bind(&d.name).bind(d.name.to_lowercase()).bind(d.field_type.as_str())
                    .bind(to_json(&d.options)).bind(d.formula.as_ref().map(|f| f.source().to_owned())).bind(false).bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| unique_conflict(e, format!("a field named `{}` already exists", d.name)))?;
                    bump_fields_version(&mut tx, tenant_id).await?;
                    tx.commit().await?;
                    Ok(FieldDef { id, system: false, ..d.clone() })
                }

                async fn update_field(&self, tenant_id: i64, d: &FieldDef, now: i64) -> StoreResult<bool> {
                    let mut tx = self.writer.begin().await?;
                    let n = sqlx::query::<Db>(
                        "UPDATE fields SET name = $3, name_key = $4, options = $5, formula = $6, updated_at = $7 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant_id).bind(d.id).bind(&d.name).bind(d.name.to_lowercase()).bind(to_json(&d.options))
                    .bind(d.formula.as_ref().map(|f| f.source().to_owned())).bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| unique_conflict(e, format!("a field named `{}` already exists", d.name)))?;
                    if n.rows_affected() > 0 {
                        bump_fields_version(&mut tx, tenant_id).await?;
                    }
                    tx.commit().await?;
                    Ok(n.rows_affected() > 0)
                }

                async fn delete_field(&self, tenant_id: i64, id: i64) -> StoreResult<bool> {
                    let mut tx = self.writer.begin().await?;
                    let n = sqlx::query::<Db>("DELETE FROM fields WHERE tenant_id = $1 AND id = $2 AND NOT system")
                        .bind(tenant_id).bind(id).execute(&mut *tx).await?;
                    if n.rows_affected() > 0 {
                        bump_fields_version(&mut tx, tenant_id).await?;
                    }
                    tx.commit().await?;
                    Ok(n.rows_affected() > 0)
                }

            }
        }
    };
}

pub(crate) use impl_directory_store;
