//! A tracker change, written once for both backends over the few operations it needs
//! from a database ([`ChangeOps`]): the read, the computed entity write, the project
//! version, the event and its deliveries.
//!
//! Why a trait and not sqlx directly: SQLite's writer runs its changes synchronously
//! (rusqlite on the handle sqlx locks out for it, `sqlite/sync_writer.rs`), because a
//! round trip through sqlx's connection thread cost more CPU than SQLite's own work;
//! PostgreSQL and everything else keep sqlx. The change's logic is the same for both, so
//! it lives here once, and each backend supplies only statements' execution and row
//! decoding. The SQL is here too, in `$n` placeholders both speak (an entity write held
//! back, [`Deferred`], has anonymous `?` ones, numbered where PostgreSQL places it).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::diff::diff;
use crate::domain::event::{Event, ParentRef, ProjectRef};
use crate::domain::event_type::{Action, EntityKind, EventType};
use crate::domain::webhook::FieldError;
use crate::store::common::{corrupt, to_json};
use crate::store::value_rows::{Deferred, SqlArg};
use crate::store::{
    ChangeOp, ChangeOutcome, ChangeRequest, ChangeStep, DeliveryJob, EntityRow, Finish, Position, StoreError,
    StoreResult,
};

/// The columns every entity read and `RETURNING` asks for, in the order backends decode.
pub(crate) const ENTITY_COLUMNS: &str = "id, uuid, kind, parent_kind, parent_id, project_id, position, \
     version, data, created_at, updated_at";

/// What a change needs from a database, in the change's own transaction. Statements are
/// given one at a time, with `$n` (or anonymous `?`) placeholders and their values in
/// order.
#[allow(async_fn_in_trait)]
pub(crate) trait ChangeOps {
    /// Every write goes through one connection (SQLite): changes need no locks, and the
    /// event's `seq` is drawn without the tenant's feed turn.
    const SINGLE_WRITER: bool;

    /// Serialises the change with others that touch the same rows: PostgreSQL locks the
    /// change's project row, or the tenant's when it has none (`common_locks.rs`).
    async fn lock(&mut self, tenant_id: i64, kind: EntityKind, op: &ChangeOp) -> StoreResult<()>;

    /// Runs a statement that returns no rows, for its effect.
    async fn execute(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<()>;

    /// The first column of the first row as an integer (`None`: no row, or NULL).
    async fn int(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<i64>>;

    /// The first column of the first row as a float (`None`: no row, or NULL).
    async fn real(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<f64>>;

    /// The first row as an entity (the statement selects or returns [`ENTITY_COLUMNS`]).
    async fn entity(&mut self, sql: &str, args: &[SqlArg]) -> StoreResult<Option<EntityRow>>;

    /// Writes `event` to the event log; returns its `seq`.
    async fn insert_event(&mut self, tenant_id: i64, event: &Event) -> StoreResult<i64>;

    /// Writes the deliveries of `event` (its `seq` set): the jobs leased to this node, and
    /// whether claimable rows were written too. `seen`: the tenant's webhooks version the
    /// request saw ([`ChangeRequest::webhooks_version`]).
    async fn fanout(
        &mut self,
        tenant_id: i64,
        event: &Event,
        seen: Option<i64>,
    ) -> StoreResult<(Vec<DeliveryJob>, bool)>;

    /// PostgreSQL's one statement: the tenant's feed turn, the event and its deliveries,
    /// after `entity` when given (then `None` when `entity` found no row to write: nothing
    /// was written). Only for events whose bodies do not show their `seq`. Sets the
    /// event's `seq`. `seen` as in [`ChangeOps::fanout`].
    async fn write_event_locking_tenant(
        &mut self,
        tenant_id: i64,
        event: &mut Event,
        entity: Option<&Deferred>,
        seen: Option<i64>,
    ) -> StoreResult<Option<(Vec<DeliveryJob>, bool)>>;
}

/// Whether `e` is a broken unique constraint, from either driver.
fn unique_violation(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) => d.is_unique_violation(),
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        ),
        _ => false,
    }
}

/// `e`, or a conflict saying `what` when `e` broke a unique constraint.
fn conflict_if_unique(e: StoreError, what: impl FnOnce() -> String) -> StoreError {
    if unique_violation(&e) {
        StoreError::Conflict(what())
    } else {
        e
    }
}

/// The kinds an entity of `kind` may belong to.
fn allowed_parents(kind: EntityKind) -> &'static [EntityKind] {
    match kind {
        EntityKind::Story | EntityKind::Task => &[EntityKind::Project],
        EntityKind::Comment => &[EntityKind::Story],
        EntityKind::KeyDate => &[EntityKind::Project, EntityKind::Portfolio, EntityKind::Program],
        _ => &[],
    }
}

/// Reads an entity of `kind` in the tenant.
pub(crate) async fn fetch(
    ops: &mut impl ChangeOps,
    tenant_id: i64,
    kind: EntityKind,
    id: i64,
) -> StoreResult<Option<EntityRow>> {
    ops.entity(
        entity_select_sql(),
        &[
            SqlArg::Int(Some(tenant_id)),
            SqlArg::Text(Some(kind.as_str().to_owned())),
            SqlArg::Int(Some(id)),
        ],
    )
    .await
}

/// `SELECT` of one entity by tenant, kind and id.
fn entity_select_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!("SELECT {ENTITY_COLUMNS} FROM entities WHERE tenant_id = $1 AND kind = $2 AND id = $3")
    })
}

/// `(after_id, before_id)`: the previous and next story in the project's list.
async fn neighbours(
    ops: &mut impl ChangeOps,
    tenant_id: i64,
    project: i64,
    id: i64,
    pos: f64,
) -> StoreResult<(Option<i64>, Option<i64>)> {
    const PREV: &str = "SELECT id FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 \
         AND id <> $3 AND (position < $4 OR (position = $4 AND id < $3)) ORDER BY position DESC, id DESC LIMIT 1";
    const NEXT: &str = "SELECT id FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 \
         AND id <> $3 AND (position > $4 OR (position = $4 AND id > $3)) ORDER BY position ASC, id ASC LIMIT 1";
    let args = [
        SqlArg::Int(Some(tenant_id)),
        SqlArg::Int(Some(project)),
        SqlArg::Int(Some(id)),
        SqlArg::Real(Some(pos)),
    ];
    Ok((ops.int(PREV, &args).await?, ops.int(NEXT, &args).await?))
}

/// Where a story goes in its project's list: last when `p` is `None`, else halfway
/// between the named story and its neighbour on the given side.
async fn new_position(
    ops: &mut impl ChangeOps,
    tenant_id: i64,
    project: i64,
    me: i64,
    p: Option<Position>,
) -> StoreResult<f64> {
    const LAST: &str =
        "SELECT COALESCE(MAX(position), 0.0) + 1.0 FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2";
    const POSITION_OF: &str =
        "SELECT position FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 AND id = $3 AND id <> $4";
    const BELOW: &str =
        "SELECT MAX(position) FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 \
         AND position < $3 AND id <> $4";
    const ABOVE: &str =
        "SELECT MIN(position) FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 \
         AND position > $3 AND id <> $4";
    let bound = |field: &str, id: i64| {
        StoreError::Invalid(vec![FieldError::new(
            field,
            format!("{field} {id} is not another story of this project"),
        )])
    };
    let (t, pr, m) = (
        SqlArg::Int(Some(tenant_id)),
        SqlArg::Int(Some(project)),
        SqlArg::Int(Some(me)),
    );
    let (field, x, neighbour, midway_or): (_, _, _, fn(f64) -> f64) = match p {
        None => {
            return ops
                .real(LAST, &[t, pr])
                .await?
                .ok_or_else(|| corrupt("position", "no row"))
        }
        Some(Position::Before(x)) => ("before_id", x, BELOW, |px| px - 1.0),
        Some(Position::After(y)) => ("after_id", y, ABOVE, |py| py + 1.0),
    };
    let px = ops
        .real(
            POSITION_OF,
            &[t.clone(), pr.clone(), SqlArg::Int(Some(x)), m.clone()],
        )
        .await?
        .ok_or_else(|| bound(field, x))?;
    let other = ops.real(neighbour, &[t, pr, SqlArg::Real(Some(px)), m]).await?;
    Ok(other.map_or(midway_or(px), |q| (q + px) / 2.0))
}

/// An entity's snapshot for the event, with a story's neighbours (`after_id`,
/// `before_id`) as Tracker reports them.
async fn story_snapshot(ops: &mut impl ChangeOps, tenant_id: i64, r: &EntityRow) -> StoreResult<Value> {
    let mut s = r.snapshot();
    if let (EntityKind::Story, Some((_, project)), Some(pos)) = (r.kind, r.parent, r.position) {
        let (after, before) = neighbours(ops, tenant_id, project, r.id, pos).await?;
        s["after_id"] = after.map_or(Value::Null, Value::from);
        s["before_id"] = before.map_or(Value::Null, Value::from);
    }
    Ok(s)
}

/// One change in the caller's transaction, committed as `finish` says (the backend
/// decides: see `run_change` in `sqlite.rs` and `postgres.rs`). Nothing is handed to the
/// delivery engine here: the jobs come back in [`ChangeStep::Keep`] for after the
/// commit. [`Finish::Optimistic`] is for a project's update only.
pub(crate) async fn apply<O: ChangeOps>(
    ops: &mut O,
    req: &ChangeRequest,
    finish: Finish,
) -> StoreResult<ChangeStep> {
    let optimistic = matches!(finish, Finish::Optimistic);
    debug_assert!(
        !optimistic
            || matches!(
                (req.kind, &req.op),
                (EntityKind::Project, ChangeOp::Update { .. })
            )
    );
    // The entity's write waits until the event's: on SQLite's writer its new state is
    // known without reading it back; on the optimistic path it joins the one statement.
    let defer_entity_write = optimistic || matches!(finish, Finish::Batch);
    if !optimistic {
        ops.lock(req.tenant_id, req.kind, &req.op).await?;
    }
    let t = req.tenant_id;
    let (current, parent) = match &req.op {
        ChangeOp::Create { parent } => {
            let allowed = allowed_parents(req.kind);
            let p = match parent {
                // A parent that does not exist is a bad value in the request body (422
                // naming it), not a missing resource (404: the URL was fine).
                Some((k, id)) if allowed.contains(k) => {
                    Some(fetch(ops, t, *k, *id).await?.ok_or_else(|| {
                        StoreError::Invalid(vec![FieldError::new(
                            format!("{}_id", k.as_str()),
                            format!("no {} {id} in this tenant", k.as_str()),
                        )])
                    })?)
                }
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
            // The optimistic write is guarded by the version of the row it started from,
            // so a kept row may stand in for the read (`store/project_cache.rs`).
            let known = req.known.as_ref().filter(|k| optimistic && k.id == *id);
            let cur = match known {
                Some(k) => k.clone(),
                None => fetch(ops, t, req.kind, *id)
                    .await?
                    .ok_or(StoreError::NotFound(req.kind.as_str()))?,
            };
            let p = match cur.parent {
                Some((k, pid)) => fetch(ops, t, k, pid).await?,
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
    let before_row = current.as_ref().map(|c| match &req.normalize {
        Some(f) => c.with_data(f(&c.data)),
        None => c.clone(),
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
            Some(new_position(ops, t, p, me, req.position).await?)
        }
        _ => current.as_ref().and_then(|c| c.position),
    };
    if let (Some(b), Some(d)) = (&before_row, &new_data) {
        if &b.data == d && position == b.position {
            return Ok(ChangeStep::Discard(ChangeOutcome::Unchanged(
                current.unwrap_or_else(|| b.clone()),
            )));
        }
    }
    let before = match &before_row {
        Some(b) => Some(story_snapshot(ops, t, b).await?),
        None => None,
    };
    let key = new_data
        .as_ref()
        .and_then(|d| d.get("key"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let key_taken = || {
        format!(
            "a project with key `{}` already exists",
            key.clone().unwrap_or_default()
        )
    };
    let project_key = || SqlArg::Text(key.clone().filter(|_| req.kind == EntityKind::Project));
    // The entity's own write when it is deferred (see `defer_entity_write`).
    let mut deferred: Option<Deferred> = None;
    let after_row = match (&req.op, new_data) {
        (ChangeOp::Create { .. }, Some(data)) => {
            let sql = format!(
                "INSERT INTO entities (tenant_id, kind, uuid, parent_kind, parent_id, project_id, key, position, \
                 version, data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $10) \
                 RETURNING {ENTITY_COLUMNS}"
            );
            let args = [
                SqlArg::Int(Some(t)),
                SqlArg::Text(Some(req.kind.as_str().to_owned())),
                SqlArg::Text(Some(Uuid::new_v4().to_string())),
                SqlArg::Text(parent.as_ref().map(|p| p.kind.as_str().to_owned())),
                SqlArg::Int(parent.as_ref().map(|p| p.id)),
                SqlArg::Int(project_id),
                project_key(),
                SqlArg::Real(position),
                SqlArg::Text(Some(to_json(&data))),
                SqlArg::Int(Some(req.now)),
            ];
            let mut r = ops
                .entity(&sql, &args)
                .await
                .map_err(|e| conflict_if_unique(e, key_taken))?
                .ok_or_else(|| corrupt("change", "the insert returned no row"))?;
            if req.kind == EntityKind::Project {
                ops.execute(
                    "UPDATE entities SET project_id = id WHERE id = $1",
                    &[SqlArg::Int(Some(r.id))],
                )
                .await?;
                r.project_id = Some(r.id);
            }
            Some(r)
        }
        (ChangeOp::Update { id }, Some(data)) if defer_entity_write => {
            let project = req.kind == EntityKind::Project;
            let bump = if project { ", version = version + 1" } else { "" };
            let cur = current
                .as_ref()
                .ok_or_else(|| corrupt("change", "no current row"))?;
            let mut args = vec![
                SqlArg::Text(Some(to_json(&data))),
                SqlArg::Real(position),
                project_key(),
                SqlArg::Int(Some(req.now)),
                SqlArg::Int(Some(t)),
                SqlArg::Int(Some(*id)),
            ];
            let sql = if optimistic {
                args.push(SqlArg::Int(Some(cur.version)));
                format!("UPDATE entities SET data = ?, position = ?, key = ?, updated_at = ?{bump} WHERE tenant_id = ? AND id = ? AND version = ?")
            } else {
                format!("UPDATE entities SET data = ?, position = ?, key = ?, updated_at = ?{bump} WHERE tenant_id = ? AND id = ?")
            };
            deferred = Some(Deferred { sql, args });
            let mut row = cur.with_data(data);
            row.position = position;
            row.updated_at = req.now;
            row.version += i64::from(project);
            Some(row)
        }
        (ChangeOp::Update { id }, Some(data)) => {
            // A project's own change bumps its version in the same statement.
            let bump = if req.kind == EntityKind::Project {
                ", version = version + 1"
            } else {
                ""
            };
            let sql = format!(
                "UPDATE entities SET data = $3, position = $4, key = $5, updated_at = $6{bump} \
                 WHERE tenant_id = $1 AND id = $2 RETURNING {ENTITY_COLUMNS}"
            );
            let args = [
                SqlArg::Int(Some(t)),
                SqlArg::Int(Some(*id)),
                SqlArg::Text(Some(to_json(&data))),
                SqlArg::Real(position),
                project_key(),
                SqlArg::Int(Some(req.now)),
            ];
            let row = ops
                .entity(&sql, &args)
                .await
                .map_err(|e| conflict_if_unique(e, key_taken))?;
            Some(row.ok_or_else(|| corrupt("change", "the update found no row"))?)
        }
        _ => None,
    };
    let after = match &after_row {
        Some(a) => Some(story_snapshot(ops, t, a).await?),
        None => None,
    };
    let empty = Value::Object(Map::new());
    let changed = diff(
        before.as_ref().unwrap_or(&empty),
        after.as_ref().unwrap_or(&empty),
    );
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
        let bumped;
        let p = match (&req.op, &after_row) {
            (ChangeOp::Update { .. }, Some(a)) if req.kind == EntityKind::Project => a,
            _ => {
                let sql = bump_version_sql();
                bumped = ops
                    .entity(sql, &[SqlArg::Int(Some(t)), SqlArg::Int(Some(pid))])
                    .await?
                    .ok_or_else(|| corrupt("change", "the project to bump is gone"))?;
                &bumped
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
        parent_before = Some(story_snapshot(ops, t, story).await?);
        ops.execute(
            "UPDATE entities SET updated_at = $2 WHERE id = $1",
            &[SqlArg::Int(Some(story.id)), SqlArg::Int(Some(req.now))],
        )
        .await?;
        let mut s = story.clone();
        s.updated_at = req.now;
        parent_after = Some(story_snapshot(ops, t, &s).await?);
    }
    if let (ChangeOp::Delete { id }, Some(_)) = (&req.op, &current) {
        ops.execute(
            "DELETE FROM entities WHERE tenant_id = $1 AND (parent_id IN (SELECT id FROM entities WHERE tenant_id = $1 AND parent_id = $2) \
             OR parent_id = $2 OR id = $2)",
            &[SqlArg::Int(Some(t)), SqlArg::Int(Some(*id))],
        )
        .await?;
    }
    let subject = after_row
        .as_ref()
        .or(current.as_ref())
        .ok_or_else(|| corrupt("change", "no subject"))?;
    let Some(event_type) = event_type else {
        if optimistic {
            return Ok(ChangeStep::Again);
        }
        if let Some(d) = deferred.take() {
            run(ops, &d).await.map_err(|e| conflict_if_unique(e, key_taken))?;
        }
        return Ok(ChangeStep::Keep {
            outcome: ChangeOutcome::Applied {
                row: after_row,
                event: None,
            },
            jobs: Vec::new(),
            claimable: false,
        });
    };
    let mut event = Event {
        seq: 0,
        id: Uuid::now_v7(),
        tenant: req.tenant.clone(),
        event_type,
        entity_kind: req.kind,
        entity_id: subject.id,
        entity_uuid: subject.uuid,
        parent: parent.as_ref().map(|p| ParentRef {
            kind: p.kind,
            id: p.id,
            uuid: p.uuid,
        }),
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
    // On PostgreSQL, where the bodies do not need the event's `seq` (it is drawn by the
    // insert), the event and its deliveries go in one statement with the tenant's feed
    // turn, so the turn is held for one round trip, not several.
    let one_statement = !O::SINGLE_WRITER && !crate::formats::body_shows_seq(&event);
    if optimistic && !one_statement {
        return Ok(ChangeStep::Again);
    }
    if !optimistic {
        if let Some(d) = deferred.take() {
            run(ops, &d).await.map_err(|e| conflict_if_unique(e, key_taken))?;
        }
    }
    let (jobs, claimable) = if one_statement {
        let written = ops
            .write_event_locking_tenant(t, &mut event, deferred.as_ref(), req.webhooks_version)
            .await
            // Only the entity's write can break a unique constraint here.
            .map_err(|e| {
                if deferred.is_some() {
                    conflict_if_unique(e, key_taken)
                } else {
                    e
                }
            })?;
        match written {
            Some(written) => written,
            // The project changed since it was read: nothing was written.
            None => return Ok(ChangeStep::Again),
        }
    } else {
        event.seq = ops.insert_event(t, &event).await?;
        ops.fanout(t, &event, req.webhooks_version).await?
    };
    Ok(ChangeStep::Keep {
        outcome: ChangeOutcome::Applied {
            row: after_row,
            event: Some(Box::new(event)),
        },
        jobs,
        claimable,
    })
}

/// The project version bump, returning the project's row.
fn bump_version_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| format!("UPDATE entities SET version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {ENTITY_COLUMNS}"))
}

/// Runs a deferred entity write on its own: SQLite's writer only (PostgreSQL's optimistic
/// path sends it inside its one statement), so its anonymous `?` placeholders need no
/// numbering.
async fn run(ops: &mut impl ChangeOps, d: &Deferred) -> StoreResult<()> {
    ops.execute(&d.sql, &d.args).await
}
