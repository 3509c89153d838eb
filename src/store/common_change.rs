//! A tracker change applied inside the caller's transaction, shared by both backends:
//! the read, the computed entity write, the project version, the event and its
//! deliveries, with each backend's shortcuts (SQLite's deferred entity write and
//! one-batch tail, PostgreSQL's one-statement locked tail). Expanded inside
//! `impl_tracker_store!`'s module (uses its `Conn`, look-ups and lock helpers), like
//! `common_positions.rs`.

/// Expands `apply_in` (and its helper) for `$store` inside the tracker module.
macro_rules! change_fns {
    ($store:ty) => {
            /// Runs a deferred write on its own (the change's last batch did not take it).
            async fn run_deferred(c: &mut Conn, d: &Deferred) -> Result<(), sqlx::Error> {
                super::delivery_impl::bind_args(sqlx::query::<Db>(&d.sql), &d.args).execute(c).await.map(drop)
            }

            /// One change, committed as `finish` says (the backend decides: see `run_change`
            /// in `sqlite.rs` and `postgres.rs`). Nothing is handed to the delivery engine
            /// here: the jobs come back in [`ChangeStep::Keep`] for after the commit. With
            /// [`Finish::Batch`], its SQL runs right after the change's event and
            /// deliveries, in the same round trip, where that can be done (`then_ran` says
            /// whether it was). [`Finish::Optimistic`] is for a project's update only.
            pub(super) async fn apply_in(tx: &mut Conn, store: &$store, req: &ChangeRequest, finish: Finish<'_>) -> StoreResult<ChangeStep> {
                let optimistic = matches!(finish, Finish::Optimistic);
                debug_assert!(!optimistic || matches!((req.kind, &req.op), (EntityKind::Project, ChangeOp::Update { .. })));
                let then = match finish {
                    Finish::Batch(then) => then,
                    Finish::Transaction | Finish::Optimistic => "",
                };
                // Changes inside one project serialise on its row (the optimistic path
                // checks the row's version instead); changes outside any project on the
                // tenant's. The event's insert takes the tenant's feed turn (`common_locks.rs`).
                let tenant_locked = !optimistic && !lock_project_of(&mut *tx, req.tenant_id, req.kind, &req.op).await?;
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
                    (ChangeOp::Update { id }, Some(data)) if !then.is_empty() || optimistic => {
                        // SQLite's writer: nothing else writes this row meanwhile, so its
                        // new state is known; the write joins the change's last batch.
                        // Optimistic: the write joins the one statement, and only if the
                        // row still has the version it was read with.
                        let project = req.kind == EntityKind::Project;
                        let bump = if project { ", version = version + 1" } else { "" };
                        let cur = current.as_ref().ok_or_else(|| corrupt("change", "no current row"))?;
                        let mut args = vec![
                            SqlArg::Text(Some(to_json(&data))),
                            SqlArg::Real(position),
                            SqlArg::Text(key.clone().filter(|_| project)),
                            SqlArg::Int(Some(req.now)),
                            SqlArg::Int(Some(t)),
                            SqlArg::Int(Some(*id)),
                        ];
                        let sql = if optimistic {
                            args.push(SqlArg::Int(Some(cur.version)));
                            format!("UPDATE entities SET data = ?, position = ?, key = ?, updated_at = ?{bump} WHERE tenant_id = ? AND id = ? AND version = ?")
                        } else {
                            format!("UPDATE entities SET data = ?, position = ?, key = ?, updated_at = ?{bump} WHERE tenant_id = ? AND id = ?;")
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
                    let bumped;
                    let p = match (&req.op, &after_row) {
                        (ChangeOp::Update { .. }, Some(a)) if req.kind == EntityKind::Project => a,
                        _ => {
                            let row = sqlx::query::<Db>(&format!(
                                "UPDATE entities SET version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {ENTITY_COLUMNS}"
                            ))
                            .bind(t).bind(pid).fetch_one(&mut *tx).await?;
                            bumped = entity_from_row(&row)?;
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
                    if optimistic {
                        return Ok(ChangeStep::Again);
                    }
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
                // on PostgreSQL as one statement.
                let seq_free = !crate::formats::body_shows_seq(&event);
                if optimistic && !seq_free {
                    return Ok(ChangeStep::Again);
                }
                let then_ran = !then.is_empty() && seq_free;
                if !then_ran && !optimistic {
                    if let Some(d) = deferred.take() {
                        run_deferred(&mut *tx, &d).await.map_err(|e| unique_conflict(e, key_taken()))?;
                    }
                }
                let (jobs, claimable) = if then_ran {
                    super::delivery_impl::insert_event_and_fanout(&mut *tx, store, t, &mut event, deferred.as_ref(), then)
                        .await
                        .map_err(|e| match e {
                            // Only the entity's write can break a unique constraint here.
                            StoreError::Database(e) if deferred.is_some() => unique_conflict(e, key_taken()),
                            e => e,
                        })?
                } else if seq_free && !<$store>::SINGLE_WRITER {
                    let written = super::delivery_impl::insert_event_and_fanout_locking_tenant(&mut *tx, store, t, &mut event, deferred.as_ref())
                        .await
                        .map_err(|e| match e {
                            StoreError::Database(e) if deferred.is_some() => unique_conflict(e, key_taken()),
                            e => e,
                        })?;
                    match written {
                        Some(written) => written,
                        // The project changed since it was read: nothing was written.
                        None => return Ok(ChangeStep::Again),
                    }
                } else {
                    event.seq = super::delivery_impl::insert_event(&mut *tx, t, &event, None).await?;
                    super::delivery_impl::fanout(&mut *tx, store, t, &event).await?
                };
                Ok(ChangeStep::Keep { outcome: ChangeOutcome::Applied { row: after_row, event: Some(Box::new(event)) }, jobs, claimable, then_ran })
            }
    };
}

pub(crate) use change_fns;
