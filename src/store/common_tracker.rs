//! Tracker SQL shared by both backends (entities and the event log), expanded
//! per pool type like `common.rs`. The change path is one transaction: lock the
//! change's project (so its versions, story positions and the entity's read-modify-write
//! are serialised), read, compute, write the entity, bump the project version, lock the
//! tenant (so event `seq` order is commit order), write the event, and fan it out to the
//! matching webhooks (see `common_delivery.rs`) before committing. On SQLite the single
//! writer connection does all of that locking by itself.

/// Expands the `TrackerStore` implementation for one backend store type.
macro_rules! impl_tracker_store {
    ($store:ty, $db:ty) => {
        mod tracker_impl {
            use super::*;
            use crate::domain::diff::diff;
            use crate::domain::event::{Event, ParentRef, ProjectRef};
            use crate::domain::event_type::{Action, EntityKind, EventType};
            use crate::domain::field::FieldDef;
            use crate::domain::formula::Formula;
            use crate::domain::webhook::FieldError;
            use crate::store::common::{corrupt, parse_uuid, placeholders, to_json};
            use crate::store::value_rows::{Deferred, SqlArg};
            use crate::store::*;
            use async_trait::async_trait;
            use serde_json::{Map, Value};
            use sqlx::Row;
            use uuid::Uuid;

            type Db = $db;
            type DbRow = <Db as sqlx::Database>::Row;
            type Conn = <Db as sqlx::Database>::Connection;

            const ENTITY_COLUMNS: &str = "id, uuid, kind, parent_kind, parent_id, project_id, position, \
                 version, data, created_at, updated_at";

            fn kind_of(s: &str) -> StoreResult<EntityKind> {
                EntityKind::parse(s).ok_or_else(|| corrupt("entity kind", s))
            }

            fn entity_from_row(r: &DbRow) -> StoreResult<EntityRow> {
                let parent_kind: Option<String> = r.try_get("parent_kind")?;
                let parent_id: Option<i64> = r.try_get("parent_id")?;
                let data: String = r.try_get("data")?;
                Ok(EntityRow {
                    id: r.try_get("id")?,
                    uuid: parse_uuid(r.try_get::<&str, _>("uuid")?)?,
                    kind: kind_of(r.try_get::<&str, _>("kind")?)?,
                    parent: match (parent_kind, parent_id) {
                        (Some(k), Some(id)) => Some((kind_of(&k)?, id)),
                        _ => None,
                    },
                    project_id: r.try_get("project_id")?,
                    position: r.try_get("position")?,
                    version: r.try_get("version")?,
                    data: serde_json::from_str(&data).map_err(|e| corrupt("entity data", e))?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

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

            async fn fetch(c: &mut Conn, tenant_id: i64, kind: EntityKind, id: i64) -> StoreResult<Option<EntityRow>> {
                let row = sqlx::query::<Db>(&format!(
                    "SELECT {ENTITY_COLUMNS} FROM entities WHERE tenant_id = $1 AND kind = $2 AND id = $3"
                ))
                .bind(tenant_id)
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(c)
                .await?;
                row.as_ref().map(entity_from_row).transpose()
            }

            crate::store::common_positions::story_position_fns!();

            /// Runs a deferred write on its own (the change's last batch did not take it).
            async fn run_deferred(c: &mut Conn, d: &Deferred) -> Result<(), sqlx::Error> {
                super::delivery_impl::bind_args(sqlx::query::<Db>(&d.sql), &d.args).execute(c).await.map(drop)
            }

            fn allowed_parents(kind: EntityKind) -> &'static [EntityKind] {
                match kind {
                    EntityKind::Story | EntityKind::Task => &[EntityKind::Project],
                    EntityKind::Comment => &[EntityKind::Story],
                    EntityKind::KeyDate => &[EntityKind::Project, EntityKind::Portfolio, EntityKind::Program],
                    _ => &[],
                }
            }

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
                    fetch(&mut c, tenant_id, kind, id).await
                }

                async fn list_entities(
                    &self, tenant_id: i64, kind: EntityKind, parent_id: Option<i64>, after_id: i64, limit: i64,
                ) -> StoreResult<Vec<EntityRow>> {
                    let order = if kind == EntityKind::Story { "position, id" } else { "id" };
                    let rows = sqlx::query::<Db>(&format!(
                        "SELECT {ENTITY_COLUMNS} FROM entities WHERE tenant_id = $1 AND kind = $2 \
                         AND ($3 IS NULL OR parent_id = $3) AND id > $4 ORDER BY {order} LIMIT $5"
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
                        format!(" AND type IN ({})", placeholders(4, types.len()))
                    };
                    let sql = format!("SELECT seq, data FROM events WHERE tenant_id = $1 AND seq > $2{filter} ORDER BY seq LIMIT $3");
                    let mut q = sqlx::query::<Db>(&sql).bind(tenant_id).bind(after).bind(limit);
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
                    let (fresh, claimable) = super::delivery_impl::fanout(&mut tx, self, req.tenant_id, &event).await?;
                    tx.commit().await?;
                    self.hub.hand_off(fresh, claimable);
                    Ok((event, true))
                }
            }

            /// One change inside the caller's transaction (the backend decides how it is
            /// committed: see `run_change` in `sqlite.rs` and `postgres.rs`). Nothing is
            /// handed to the delivery engine here: the jobs come back in [`ChangeStep::Keep`]
            /// for after the commit. `then` (SQLite only; empty elsewhere) is SQL to run
            /// right after the change's event and deliveries, in the same round trip, where
            /// that can be done (`then_ran` says whether it was).
            pub(super) async fn apply_in(tx: &mut Conn, store: &$store, req: &ChangeRequest, then: &str) -> StoreResult<ChangeStep> {
                // Changes inside one project serialise on its row; the tenant lock
                // (event order) is then taken only around writing the event.
                let tenant_locked = !lock_project_of(&mut *tx, req.tenant_id, req.kind, &req.op).await?;
                if tenant_locked {
                    lock_tenant(&mut *tx, req.tenant_id).await?;
                }
                let t = req.tenant_id;
                let (current, parent) = match &req.op {
                    ChangeOp::Create { parent } => {
                        let allowed = allowed_parents(req.kind);
                        let p = match parent {
                            Some((k, id)) if allowed.contains(k) => Some(
                                fetch(&mut *tx, t, *k, *id).await?.ok_or(StoreError::NotFound(k.as_str()))?,
                            ),
                            None if allowed.is_empty() => None,
                            _ => {
                                let names: Vec<_> = allowed.iter().map(|k| k.as_str()).collect();
                                return Err(StoreError::Invalid(vec![FieldError::new(
                                    "parent",
                                    format!("a {} belongs to a {}", req.kind.as_str(), names.join(" or ")),
                                )]));
                            }
                        };
                        (None, p)
                    }
                    ChangeOp::Update { id } | ChangeOp::Delete { id } => {
                        let cur = fetch(&mut *tx, t, req.kind, *id).await?.ok_or(StoreError::NotFound(req.kind.as_str()))?;
                        let p = match cur.parent {
                            Some((k, pid)) => fetch(&mut *tx, t, k, pid).await?,
                            None => None,
                        };
                        (Some(cur), p)
                    }
                };
                let deleting = matches!(req.op, ChangeOp::Delete { .. });
                let new_data = if deleting {
                    None
                } else {
                    Some((req.compute)(current.as_ref().map(|c| &c.data)).map_err(StoreError::Invalid)?)
                };
                let before_row = current.clone().map(|mut c| {
                    if let Some(f) = &req.normalize {
                        c.data = f(&c.data);
                    }
                    c
                });
                let project_id = match (req.kind, &parent) {
                    (EntityKind::Project, _) => current.as_ref().map(|c| c.id),
                    (EntityKind::Comment, Some(story)) => story.project_id,
                    (_, Some(p)) if p.kind == EntityKind::Project => Some(p.id),
                    _ => None,
                };
                let story_project = match (req.kind, &parent) {
                    (EntityKind::Story, Some(p)) => Some(p.id),
                    _ => None,
                };
                let me = current.as_ref().map_or(0, |c| c.id);
                let position = match story_project {
                    Some(p) if current.is_none() || req.position.is_some() => {
                        Some(new_position(&mut *tx, t, p, me, req.position).await?)
                    }
                    _ => current.as_ref().and_then(|c| c.position),
                };
                if let (Some(b), Some(d)) = (&before_row, &new_data) {
                    if &b.data == d && position == b.position {
                        return Ok(ChangeStep::Discard(ChangeOutcome::Unchanged(current.unwrap_or_else(|| b.clone()))));
                    }
                }
                let before = match &before_row {
                    Some(b) => Some(story_snapshot(&mut *tx, t, b).await?),
                    None => None,
                };
                let key = new_data.as_ref().and_then(|d| d.get("key")).and_then(Value::as_str).map(str::to_owned);
                let key_taken = || format!("a project with key `{}` already exists", key.clone().unwrap_or_default());
                // The entity's own write when it is deferred to the change's last batch.
                let mut deferred: Option<Deferred> = None;
                // Write the entity.
                let after_row = match (&req.op, new_data) {
                    (ChangeOp::Create { .. }, Some(data)) => {
                        let row = sqlx::query::<Db>(&format!(
                            "INSERT INTO entities (tenant_id, kind, uuid, parent_kind, parent_id, project_id, key, position, \
                             version, data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $10) \
                             RETURNING {ENTITY_COLUMNS}"
                        ))
                        .bind(t).bind(req.kind.as_str()).bind(Uuid::new_v4().to_string())
                        .bind(parent.as_ref().map(|p| p.kind.as_str())).bind(parent.as_ref().map(|p| p.id))
                        .bind(project_id).bind(key.as_deref().filter(|_| req.kind == EntityKind::Project))
                        .bind(position).bind(to_json(&data)).bind(req.now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| unique_conflict(e, key_taken()))?;
                        let mut r = entity_from_row(&row)?;
                        if req.kind == EntityKind::Project {
                            sqlx::query::<Db>("UPDATE entities SET project_id = id WHERE id = $1").bind(r.id).execute(&mut *tx).await?;
                            r.project_id = Some(r.id);
                        }
                        Some(r)
                    }
                    (ChangeOp::Update { id }, Some(data)) if !then.is_empty() => {
                        // SQLite's writer: nothing else writes this row meanwhile, so its
                        // new state is known; the write joins the change's last batch.
                        let project = req.kind == EntityKind::Project;
                        let bump = if project { ", version = version + 1" } else { "" };
                        let mut row = current.clone().ok_or_else(|| corrupt("change", "no current row"))?;
                        deferred = Some(Deferred {
                            sql: format!("UPDATE entities SET data = ?, position = ?, key = ?, updated_at = ?{bump} WHERE tenant_id = ? AND id = ?;"),
                            args: vec![
                                SqlArg::Text(Some(to_json(&data))),
                                SqlArg::Real(position),
                                SqlArg::Text(key.clone().filter(|_| project)),
                                SqlArg::Int(Some(req.now)),
                                SqlArg::Int(Some(t)),
                                SqlArg::Int(Some(*id)),
                            ],
                        });
                        row.data = data;
                        row.position = position;
                        row.updated_at = req.now;
                        row.version += i64::from(project);
                        Some(row)
                    }
                    (ChangeOp::Update { id }, Some(data)) => {
                        // A project's own change bumps its version in the same statement.
                        let bump = if req.kind == EntityKind::Project { ", version = version + 1" } else { "" };
                        let row = sqlx::query::<Db>(&format!(
                            "UPDATE entities SET data = $3, position = $4, key = $5, updated_at = $6{bump} \
                             WHERE tenant_id = $1 AND id = $2 RETURNING {ENTITY_COLUMNS}"
                        ))
                        .bind(t).bind(id).bind(to_json(&data)).bind(position)
                        .bind(key.as_deref().filter(|_| req.kind == EntityKind::Project)).bind(req.now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| unique_conflict(e, key_taken()))?;
                        Some(entity_from_row(&row)?)
                    }
                    _ => None,
                };
                let after = match &after_row {
                    Some(a) => Some(story_snapshot(&mut *tx, t, a).await?),
                    None => None,
                };
                let empty = Value::Object(Map::new());
                let changed = diff(before.as_ref().unwrap_or(&empty), after.as_ref().unwrap_or(&empty));
                if let (Some(cur), true) = (&current, after.is_some() && changed.is_empty()) {
                    // Only normalisation differed: keep the row as it was.
                    return Ok(ChangeStep::Discard(ChangeOutcome::Unchanged(cur.clone())));
                }
                let action = match req.op {
                    ChangeOp::Create { .. } => Action::Created,
                    ChangeOp::Update { .. } => Action::Updated,
                    ChangeOp::Delete { .. } => Action::Deleted,
                };
                // Portfolios and programs have no event types: their changes are not events.
                let event_type = EventType::new(req.kind, action);
                // Bump the project's version (Tracker's guid needs one per change).
                let project_id = project_id.or(after_row.as_ref().and_then(|r| r.project_id));
                let mut project_ref = None;
                let mut project_version = None;
                if let (Some(pid), Some(_)) = (project_id, event_type) {
                    let p = match (&req.op, &after_row) {
                        (ChangeOp::Update { .. }, Some(a)) if req.kind == EntityKind::Project => a.clone(),
                        _ => {
                            let row = sqlx::query::<Db>(&format!(
                                "UPDATE entities SET version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {ENTITY_COLUMNS}"
                            ))
                            .bind(t).bind(pid).fetch_one(&mut *tx).await?;
                            entity_from_row(&row)?
                        }
                    };
                    project_version = Some(p.version);
                    project_ref = Some(ProjectRef {
                        id: p.id,
                        uuid: p.uuid,
                        key: p.data.get("key").and_then(Value::as_str).unwrap_or("").to_owned(),
                        name: p.name().to_owned(),
                    });
                }
                // A comment change touches its story (Tracker reports the story's updated_at).
                let (mut parent_before, mut parent_after) = (None, None);
                if let (EntityKind::Comment, Some(story)) = (req.kind, &parent) {
                    parent_before = Some(story_snapshot(&mut *tx, t, story).await?);
                    sqlx::query::<Db>("UPDATE entities SET updated_at = $2 WHERE id = $1").bind(story.id).bind(req.now)
                        .execute(&mut *tx).await?;
                    let mut s = story.clone();
                    s.updated_at = req.now;
                    parent_after = Some(story_snapshot(&mut *tx, t, &s).await?);
                }
                if let (ChangeOp::Delete { id }, Some(_)) = (&req.op, &current) {
                    sqlx::query::<Db>(
                        "DELETE FROM entities WHERE tenant_id = $1 AND (parent_id IN (SELECT id FROM entities WHERE tenant_id = $1 AND parent_id = $2) \
                         OR parent_id = $2 OR id = $2)",
                    )
                    .bind(t).bind(id).execute(&mut *tx).await?;
                }
                let subject = after_row.as_ref().or(current.as_ref()).ok_or_else(|| corrupt("change", "no subject"))?;
                let Some(event_type) = event_type else {
                    if let Some(d) = deferred.take() {
                        run_deferred(&mut *tx, &d).await.map_err(|e| unique_conflict(e, key_taken()))?;
                    }
                    return Ok(ChangeStep::Keep { outcome: ChangeOutcome::Applied { row: after_row, event: None }, jobs: Vec::new(), claimable: false, then_ran: false });
                };
                let mut event = Event {
                    seq: 0,
                    id: Uuid::now_v7(),
                    tenant: req.tenant.clone(),
                    event_type,
                    entity_kind: req.kind,
                    entity_id: subject.id,
                    entity_uuid: subject.uuid,
                    parent: parent.as_ref().map(|p| ParentRef { kind: p.kind, id: p.id, uuid: p.uuid }),
                    project: project_ref,
                    actor: req.actor.clone(),
                    occurred_at: req.now,
                    project_version,
                    before,
                    after,
                    changed,
                    parent_before,
                    parent_after,
                };
                // Where the bodies do not need the event's `seq` (it is assigned by the
                // insert), event and deliveries go in one round trip: on SQLite with `then`,
                // on PostgreSQL with the tenant lock.
                let seq_free = !crate::formats::body_shows_seq(&event);
                let then_ran = !then.is_empty() && seq_free;
                if !then_ran {
                    if let Some(d) = deferred.take() {
                        run_deferred(&mut *tx, &d).await.map_err(|e| unique_conflict(e, key_taken()))?;
                    }
                }
                let (jobs, claimable) = if then_ran {
                    if !tenant_locked {
                        lock_tenant(&mut *tx, t).await?;
                    }
                    super::delivery_impl::insert_event_and_fanout(&mut *tx, store, t, &mut event, deferred.as_ref(), then)
                        .await
                        .map_err(|e| match e {
                            // Only the entity's write can break a unique constraint here.
                            StoreError::Database(e) if deferred.is_some() => unique_conflict(e, key_taken()),
                            e => e,
                        })?
                } else if seq_free && !<$store>::SINGLE_WRITER {
                    super::delivery_impl::insert_event_and_fanout_locking_tenant(&mut *tx, store, t, &mut event).await?
                } else {
                    if !tenant_locked {
                        lock_tenant(&mut *tx, t).await?;
                    }
                    event.seq = super::delivery_impl::insert_event(&mut *tx, t, &event, None).await?;
                    super::delivery_impl::fanout(&mut *tx, store, t, &event).await?
                };
                Ok(ChangeStep::Keep { outcome: ChangeOutcome::Applied { row: after_row, event: Some(Box::new(event)) }, jobs, claimable, then_ran })
            }
        }
    };
}

pub(crate) use impl_tracker_store;
