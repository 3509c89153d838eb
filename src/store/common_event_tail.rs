//! A change's event and its deliveries: the event `INSERT` both backends share, and
//! PostgreSQL's one statement (the tenant's feed turn, the event, the deliveries and
//! their bodies). The rows themselves are planned by
//! `common_fanout.rs`; expanded next to it inside a backend's delivery module (uses its
//! `Db`, `Conn` and the fan-out helpers).

/// Expands the event-and-deliveries tails for `$store` inside `impl_delivery_store!`'s
/// module, after `fanout_fns!`.
macro_rules! event_tail_fns {
    ($store:ty) => {
            /// What PostgreSQL's one-statement tail sends besides its SQL: the planned delivery rows and
            /// the event's JSON, bound event first, then the rows chunk by chunk.
            struct Tail {
                rows: Vec<RowToInsert>,
                bodies: Vec<BodyToInsert>,
                now: i64,
                event_type: String,
                data: String,
            }

            impl Tail {
                /// Finds the webhooks and renders the bodies (before the event has a `seq`).
                async fn plan(c: &mut Conn, store: &$store, tenant_id: i64, event: &Event, seen: Option<i64>) -> StoreResult<Self> {
                    let (rows, bodies, now) = plan_rows(c, store, tenant_id, event, seen).await?;
                    let data = serde_json::to_string(event).map_err(|err| corrupt("event", err))?;
                    Ok(Self { rows, bodies, now, event_type: event.event_type.to_string(), data })
                }

                /// Binds the event's parameters and then every chunk's.
                fn bind<'q>(
                    &'q self,
                    q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
                    tenant_id: i64,
                    event: &Event,
                ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
                    let mut q = bind_event(q, tenant_id, event, &self.event_type, None, &self.data);
                    for chunk in self.rows.chunks(INSERT_CHUNK) {
                        q = bind_rows(q, chunk, tenant_id, event, &self.event_type, self.now);
                    }
                    q
                }
            }

            /// PostgreSQL's tail of a change: the tenant's feed turn, the event and its
            /// deliveries in one statement. Sets `event.seq`.
            ///
            /// Why: one round trip where there were five (turn, event, webhooks look-up,
            /// deliveries, bodies), each waiting for Herald to be scheduled again on a busy
            /// machine. The webhooks are read and the bodies rendered first (the bodies of
            /// these events do not show the `seq`, `formats::body_shows_seq`). The event's
            /// insert reads its row from the turn's `SELECT`, so the turn is taken before
            /// the event's `seq` is drawn (`common_locks.rs` says why that matters).
            ///
            /// `entity` (the optimistic path, `Finish::Optimistic`): the change's own entity
            /// write, an `UPDATE` whose last condition is the version the entity was read
            /// with. It runs first, and the lock, the event and the deliveries only if it
            /// found its row; `None` then means it did not and nothing was written.
            /// `seen`: the tenant's webhooks version the request saw (`subscriber_cache.rs`).
            pub(crate) async fn insert_event_and_fanout_locking_tenant(
                c: &mut Conn,
                store: &$store,
                tenant_id: i64,
                event: &mut Event,
                entity: Option<&crate::store::value_rows::Deferred>,
                seen: Option<i64>,
            ) -> StoreResult<Option<(Vec<DeliveryJob>, bool)>> {
                debug_assert!(!crate::formats::body_shows_seq(event));
                let t = Tail::plan(c, store, tenant_id, event, seen).await?;
                let mut next = 10 + t.rows.len() * DELIVERY_COLS;
                let (entity_cte, only_if_written) = match entity {
                    Some(d) => {
                        let cte = format!("entity_write AS ({} RETURNING id), ", crate::store::value_rows::numbered(&d.sql, next));
                        next += d.args.len();
                        (cte, " AND EXISTS (SELECT 1 FROM entity_write)")
                    }
                    None => (String::new(), ""),
                };
                let mut sql = format!(
                    "WITH {entity_cte}feed_turn AS (SELECT {} WHERE TRUE{only_if_written}), event AS ({})",
                    crate::store::common_locks::feed_turn_sql("$2"),
                    insert_event_from_sql("feed_turn"),
                );
                let mut first = 10;
                for (i, chunk) in t.rows.chunks(INSERT_CHUNK).enumerate() {
                    let values = crate::store::value_rows::value_rows(chunk.len(), DELIVERY_COLS, first);
                    first += chunk.len() * DELIVERY_COLS;
                    sql.push_str(&format!(
                        ", deliveries_{i} AS ({} WHERE EXISTS (SELECT 1 FROM event))",
                        insert_deliveries_sql(&values, "(SELECT seq FROM event)")
                    ));
                }
                if !t.bodies.is_empty() {
                    let values = crate::store::value_rows::value_rows(t.bodies.len(), BODY_COLS, next);
                    next += t.bodies.len() * BODY_COLS;
                    sql.push_str(&format!(
                        ", bodies AS ({} WHERE EXISTS (SELECT 1 FROM event))",
                        insert_bodies_sql(&values, "(SELECT seq FROM event)")
                    ));
                }
                debug_assert!(next <= 65_536, "PostgreSQL's parameter limit");
                sql.push_str(" SELECT seq FROM event");
                let mut q = t.bind(sqlx::query::<Db>(&sql), tenant_id, event);
                if let Some(d) = entity {
                    q = bind_args(q, &d.args);
                }
                let q = bind_bodies(q, &t.bodies, event, t.now);
                let Some(row) = q.fetch_optional(&mut *c).await? else {
                    return match entity {
                        Some(_) => Ok(None),
                        None => Err(corrupt("event", "no seq returned")),
                    };
                };
                event.seq = row.try_get("seq")?;
                // With `entity` the statement committed on its own (autocommit).
                finish_fanout(c, store, t.rows, tenant_id, &t.event_type, entity.is_some()).await.map(Some)
            }

            /// Binds a deferred statement's values (`crate::store::value_rows::SqlArg`).
            pub(crate) fn bind_args<'q>(
                mut q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
                args: &'q [crate::store::value_rows::SqlArg],
            ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
                use crate::store::value_rows::SqlArg;
                for a in args {
                    q = match a {
                        SqlArg::Int(v) => q.bind(*v),
                        SqlArg::Real(v) => q.bind(*v),
                        SqlArg::Text(v) => q.bind(v.as_deref()),
                    };
                }
                q
            }

            /// The event columns, in `bind_event`'s order.
            const EVENT_COLUMNS: &str = "id, tenant_id, type, entity_kind, entity_id, project_id, occurred_at, idempotency_key, data";

            /// The event `INSERT` (its parameters come first in any statement it starts).
            pub(crate) fn insert_event_sql() -> String {
                format!(
                    "INSERT INTO events ({EVENT_COLUMNS}) VALUES {} RETURNING seq",
                    leading_value_rows::<Db>(1, 9)
                )
            }

            /// PostgreSQL's event `INSERT` that draws its `seq` only once `from` (the
            /// feed turn) has yielded its row; parameters as in `insert_event_sql`.
            fn insert_event_from_sql(from: &str) -> String {
                format!("INSERT INTO events ({EVENT_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM {from} RETURNING seq")
            }

            /// An event's values, in `insert_event_sql`'s order.
            pub(crate) fn event_values<'a>(
                tenant_id: i64,
                e: &Event,
                event_type: &'a str,
                key: Option<&'a str>,
                data: &'a str,
            ) -> [Val<'a>; 9] {
                [
                    Val::Owned(e.id.to_string()), Val::Int(Some(tenant_id)), Val::Text(Some(event_type)),
                    Val::Text(Some(e.entity_kind.as_str())), Val::Int(Some(e.entity_id)), Val::Int(e.project.as_ref().map(|p| p.id)),
                    Val::Int(Some(e.occurred_at)), Val::Text(key), Val::Text(Some(data)),
                ]
            }

            /// Binds `insert_event_sql`'s parameters.
            fn bind_event<'q>(
                q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
                tenant_id: i64,
                e: &Event,
                event_type: &'q str,
                key: Option<&'q str>,
                data: &'q str,
            ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
                bind_vals(q, event_values(tenant_id, e, event_type, key, data))
            }

            /// Writes `e` to the event log (on PostgreSQL, in the tenant's feed turn:
            /// `common_locks.rs`); returns its `seq`.
            pub(crate) async fn insert_event(c: &mut Conn, tenant_id: i64, e: &Event, key: Option<&str>) -> StoreResult<i64> {
                let data = serde_json::to_string(e).map_err(|err| corrupt("event", err))?;
                let event_type = e.event_type.to_string();
                let sql = if <$store>::SINGLE_WRITER {
                    insert_event_sql()
                } else {
                    insert_event_from_sql(&format!("(SELECT {}) AS feed_turn", crate::store::common_locks::feed_turn_sql("$2")))
                };
                let row = bind_event(sqlx::query::<Db>(&sql), tenant_id, e, &event_type, key, &data).fetch_one(&mut *c).await?;
                Ok(row.try_get("seq")?)
            }
    };
}

pub(crate) use event_tail_fns;
