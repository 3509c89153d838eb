//! Tracker SQL shared by both backends (entities and the event log), expanded
//! per pool type like `common.rs`. The change path is one transaction: lock the
//! change's project (so its versions, story positions and the entity's read-modify-write
//! are serialised), read, compute, write the entity, bump the project version, take the
//! tenant's feed turn (so the event feed never skips an event: `common_locks.rs`), write
//! the event, and fan it out to the matching webhooks (see `common_delivery.rs`) before
//! committing. On SQLite the single writer connection does all of that locking by itself.
//! The change itself is in `change_path.rs`, run here through sqlx (`common_change.rs`).

/// Expands the `TrackerStore` implementation for one backend store type.
macro_rules! impl_tracker_store {
    ($store:ty, $db:ty) => {
        mod tracker_impl {
            use super::*;
            use crate::domain::event::Event;
            use crate::domain::event_type::EntityKind;
            use crate::domain::field::FieldDef;
            use crate::domain::formula::Formula;
            use crate::store::common::{corrupt, placeholders};
            use crate::store::value_rows::{Deferred, SqlArg};
            use crate::store::*;
            use async_trait::async_trait;
            use serde_json::Value;
            use sqlx::Row;

            type Db = $db;
            type DbRow = <Db as sqlx::Database>::Row;
            type Conn = <Db as sqlx::Database>::Connection;

            use crate::store::change_path::ENTITY_COLUMNS;

            use crate::store::row_decode::entity_from_row;

            pub(super) fn field_from_row(r: &DbRow) -> StoreResult<FieldDef> {
                let ty: String = r.try_get("type")?;
                let options: String = r.try_get("options")?;
                let formula: Option<String> = r.try_get("formula")?;
                Ok(FieldDef {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    field_type: crate::domain::field::FieldType::parse(&ty).ok_or_else(|| corrupt("field type", &ty))?,
                    options: serde_json::from_str(&options).map_err(|e| corrupt("field options", e))?,
                    formula: formula
                        .map(|f| Formula::parse(&f).map_err(|e| corrupt("formula", e)))
                        .transpose()?,
                    system: r.try_get("system")?,
                })
            }

            fn event_from_row(r: &DbRow) -> StoreResult<Event> {
                let data: String = r.try_get("data")?;
                let mut e: Event = serde_json::from_str(&data).map_err(|e| corrupt("event", e))?;
                e.seq = r.try_get("seq")?;
                Ok(e)
            }

            pub(super) fn unique_conflict(e: sqlx::Error, what: String) -> StoreError {
                match &e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
                    _ => StoreError::Database(e),
                }
            }

            crate::store::common_locks::change_lock_fns!($store);

            #[async_trait]
            impl TrackerStore for $store {
                async fn entity_heads(&self, tenant_id: i64, ids: &[i64]) -> StoreResult<Vec<EntityHead>> {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let sql = format!(
                        "SELECT {ENTITY_COLUMNS} FROM entities WHERE tenant_id = $1 AND id IN ({})",
                        placeholders(2, ids.len())
                    );
                    let mut q = sqlx::query::<Db>(&sql).bind(tenant_id);
                    for id in ids {
                        q = q.bind(id);
                    }
                    let rows = q.fetch_all(&self.pool).await?;
                    rows.iter()
                        .map(|r| {
                            let e = entity_from_row(r)?;
                            Ok(EntityHead {
                                id: e.id,
                                kind: e.kind,
                                uuid: e.uuid,
                                key: e.data.get("key").and_then(Value::as_str).map(str::to_owned),
                                name: e.name().to_owned(),
                            })
                        })
                        .collect()
                }

                async fn get_entity(&self, tenant_id: i64, kind: EntityKind, id: i64) -> StoreResult<Option<EntityRow>> {
                    let mut c = self.pool.acquire().await?;
                    crate::store::change_path::fetch(&mut SqlxOps { c: &mut c, store: self }, tenant_id, kind, id).await
                }

                async fn list_entities(
                    &self, tenant_id: i64, kind: EntityKind, parent_id: Option<i64>, after_id: i64, limit: i64,
                ) -> StoreResult<Vec<EntityRow>> {
                    // In id order, whatever the kind: the cursor is an id (`id > $4`), so
                    // any other order would skip rows between pages (stories in `position`
                    // order did: every project's first story sits at 1.0).
                    let rows = sqlx::query::<Db>(&format!(
                        "SELECT {ENTITY_COLUMNS} FROM entities WHERE tenant_id = $1 AND kind = $2 \
                         AND ($3 IS NULL OR parent_id = $3) AND id > $4 ORDER BY id LIMIT $5"
                    ))
                    .bind(tenant_id).bind(kind.as_str()).bind(parent_id).bind(after_id).bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(entity_from_row).collect()
                }

                async fn apply_change(&self, req: ChangeRequest) -> StoreResult<ChangeOutcome> {
                    self.run_change(req).await
                }

                async fn list_events(&self, tenant_id: i64, after: i64, limit: i64, types: &[String]) -> StoreResult<Vec<Event>> {
                    let filter = if types.is_empty() {
                        String::new()
                    } else {
                        format!(" AND type IN ({})", placeholders(5, types.len()))
                    };
                    // PostgreSQL lists only what can no longer be preceded by a later commit.
                    let horizon = feed_horizon(&self.pool, tenant_id).await?;
                    let sql = format!(
                        "SELECT seq, data FROM events WHERE tenant_id = $1 AND seq > $2 AND ($4 IS NULL OR seq <= $4){filter} \
                         ORDER BY seq LIMIT $3"
                    );
                    let mut q = sqlx::query::<Db>(&sql).bind(tenant_id).bind(after).bind(limit).bind(horizon);
                    for t in types {
                        q = q.bind(t);
                    }
                    q.fetch_all(&self.pool).await?.iter().map(event_from_row).collect()
                }

                async fn ingest_event(&self, req: &IngestRequest) -> StoreResult<(Event, bool)> {
                    let _turn = self.change_turn().await?;
                    let mut tx = self.writer.begin().await?;
                    lock_tenant(&mut tx, req.tenant_id).await?;
                    if let Some(k) = &req.idempotency_key {
                        let row = sqlx::query::<Db>("SELECT seq, data FROM events WHERE tenant_id = $1 AND idempotency_key = $2")
                            .bind(req.tenant_id).bind(k).fetch_optional(&mut *tx).await?;
                        if let Some(r) = row {
                            return Ok((event_from_row(&r)?, false));
                        }
                    }
                    let mut event = req.event.clone();
                    if let (None, Some(p)) = (event.project_version, &event.project) {
                        sqlx::query::<Db>(
                            "INSERT INTO external_project_versions (tenant_id, project_id, version) VALUES ($1, $2, 1) \
                             ON CONFLICT (tenant_id, project_id) DO UPDATE SET version = external_project_versions.version + 1",
                        )
                        .bind(req.tenant_id).bind(p.id).execute(&mut *tx).await?;
                        event.project_version = Some(
                            sqlx::query_scalar::<Db, i64>("SELECT version FROM external_project_versions WHERE tenant_id = $1 AND project_id = $2")
                                .bind(req.tenant_id).bind(p.id).fetch_one(&mut *tx).await?,
                        );
                    }
                    event.seq = super::delivery_impl::insert_event(&mut tx, req.tenant_id, &event, req.idempotency_key.as_deref()).await?;
                    let (fresh, claimable) = super::delivery_impl::fanout(&mut tx, self, req.tenant_id, &event, req.webhooks_version).await?;
                    tx.commit().await?;
                    self.hub.hand_off(fresh, claimable);
                    Ok((event, true))
                }
            }

            crate::store::common_change::change_fns!($store);
        }
    };
}

pub(crate) use impl_tracker_store;
