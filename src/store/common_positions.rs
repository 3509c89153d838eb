//! Story positions, shared by both backends: a story's place in its project's list is a
//! float `position`; Tracker's `before_id`/`after_id` are derived from the neighbours at
//! the time of each change, so only the story that moved reports a move.

/// Expands the position helpers inside a backend's tracker module (uses its `Db`/`Conn`).
macro_rules! story_position_fns {
    () => {
            /// `(after_id, before_id)`: the previous and next story in the project's list.
            async fn neighbours(c: &mut Conn, tenant_id: i64, project: i64, id: i64, pos: f64) -> StoreResult<(Option<i64>, Option<i64>)> {
                let q = |cmp: &str, order: &str| {
                    format!(
                        "SELECT id FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 \
                         AND id <> $3 AND (position {cmp} $4 OR (position = $4 AND id {cmp} $3)) \
                         ORDER BY position {order}, id {order} LIMIT 1"
                    )
                };
                let prev = sqlx::query_scalar::<Db, i64>(&q("<", "DESC"))
                    .bind(tenant_id).bind(project).bind(id).bind(pos)
                    .fetch_optional(&mut *c).await?;
                let next = sqlx::query_scalar::<Db, i64>(&q(">", "ASC"))
                    .bind(tenant_id).bind(project).bind(id).bind(pos)
                    .fetch_optional(&mut *c).await?;
                Ok((prev, next))
            }

            async fn new_position(c: &mut Conn, tenant_id: i64, project: i64, me: i64, p: Option<Position>) -> StoreResult<f64> {
                let bound = |field: &str, id: i64| {
                    StoreError::Invalid(vec![FieldError::new(field, format!("{field} {id} is not another story of this project"))])
                };
                let pos_of = |id: i64| {
                    sqlx::query_scalar::<Db, f64>(
                        "SELECT position FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 AND id = $3 AND id <> $4",
                    )
                    .bind(tenant_id).bind(project).bind(id).bind(me)
                };
                Ok(match p {
                    None => sqlx::query_scalar::<Db, f64>(
                        "SELECT COALESCE(MAX(position), 0.0) + 1.0 FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2",
                    )
                    .bind(tenant_id).bind(project).fetch_one(&mut *c).await?,
                    Some(Position::Before(x)) => {
                        let px = pos_of(x).fetch_optional(&mut *c).await?.ok_or_else(|| bound("before_id", x))?;
                        let prev: Option<f64> = sqlx::query_scalar::<Db, Option<f64>>(
                            "SELECT MAX(position) FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 AND position < $3 AND id <> $4",
                        )
                        .bind(tenant_id).bind(project).bind(px).bind(me).fetch_one(&mut *c).await?;
                        prev.map_or(px - 1.0, |q| (q + px) / 2.0)
                    }
                    Some(Position::After(y)) => {
                        let py = pos_of(y).fetch_optional(&mut *c).await?.ok_or_else(|| bound("after_id", y))?;
                        let next: Option<f64> = sqlx::query_scalar::<Db, Option<f64>>(
                            "SELECT MIN(position) FROM entities WHERE tenant_id = $1 AND kind = 'story' AND parent_id = $2 AND position > $3 AND id <> $4",
                        )
                        .bind(tenant_id).bind(project).bind(py).bind(me).fetch_one(&mut *c).await?;
                        next.map_or(py + 1.0, |n| (py + n) / 2.0)
                    }
                })
            }

            async fn story_snapshot(c: &mut Conn, tenant_id: i64, r: &EntityRow) -> StoreResult<Value> {
                let mut s = r.snapshot();
                if let (EntityKind::Story, Some((_, project)), Some(pos)) = (r.kind, r.parent, r.position) {
                    let (after, before) = neighbours(c, tenant_id, project, r.id, pos).await?;
                    s["after_id"] = after.map_or(Value::Null, Value::from);
                    s["before_id"] = before.map_or(Value::Null, Value::from);
                }
                Ok(s)
            }

    };
}

pub(crate) use story_position_fns;
