//! Fan-out SQL shared by both backends: an event's deliveries, rendered once per format
//! (`formats::template`) and written in multi-row `INSERT`s in the transaction that writes
//! the event (the outbox). The event's own `INSERT`, and PostgreSQL's one statement that
//! sends it with its deliveries, are in `common_event_tail.rs`; SQLite's writer runs the
//! same statements synchronously (`sqlite/sync_writer.rs`), with the row values listed
//! here. Expanded inside a backend's delivery module (uses its `Db`, `Conn` and row
//! readers), like `common_change.rs`.

/// Expands the fan-out helpers for `$store` inside `impl_delivery_store!`'s module.
macro_rules! fanout_fns {
    ($store:ty) => {
            /// One delivery row to insert.
            pub(crate) struct RowToInsert {
                id: Uuid,
                target: Arc<TargetRow>,
                /// Per-entity ordering key.
                key: Option<String>,
                /// The whole body, for the job; stored only when `shared` is `None`.
                body: String,
                /// The format whose shared body (`delivery_bodies`) this one is filled from.
                shared: Option<crate::formats::Format>,
                /// The format headers, encoded for the row and as they are for the job.
                encoded: String,
                headers: Vec<(String, String)>,
                /// Leased rows become jobs handed to this node's engine.
                lease: Option<Lease>,
                /// Unleased only because this node's queue for the webhook is full: nobody
                /// is woken for it (a claim takes it once the queue has room).
                held_back: bool,
            }

            /// One shared body to insert: its format, text and stand-in ids.
            pub(crate) type BodyToInsert = (crate::formats::Format, String, crate::formats::template::Standins);

            /// Values per row of `insert_bodies_sql`.
            pub(crate) const BODY_COLS: usize = 6;

            /// The `INSERT` of an event's shared bodies whose placeholders are `values`
            /// (`column1` is the event's id); `event_seq` as in `insert_deliveries_sql`.
            pub(crate) fn insert_bodies_sql(values: &str, event_seq: &str) -> String {
                format!(
                    "INSERT INTO delivery_bodies (event_seq, format, body, webhook_standin, delivery_standin, created_at) \
                     SELECT {event_seq}, column2, column3, column4, column5, column6 FROM (VALUES {values}) AS v"
                )
            }

            /// A shared body's values, in `insert_bodies_sql`'s column order.
            pub(crate) fn body_values<'a>(b: &'a BodyToInsert, event: &Event, now: i64) -> [Val<'a>; BODY_COLS] {
                let (format, body, standins) = b;
                [
                    Val::Owned(event.id.to_string()), Val::Text(Some(format.as_str())), Val::Text(Some(body.as_str())),
                    Val::Owned(standins.webhook.to_string()), Val::Owned(standins.delivery.to_string()), Val::Int(Some(now)),
                ]
            }

            /// Binds `insert_bodies_sql`'s rows.
            fn bind_bodies<'q>(
                mut q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
                bodies: &'q [BodyToInsert],
                event: &Event,
                now: i64,
            ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
                for b in bodies {
                    q = bind_vals(q, body_values(b, event, now));
                }
                q
            }

            /// Turns a plan's shared bodies into rows (bodies are JSON, so UTF-8).
            fn bodies_to_insert(bodies: Vec<(crate::formats::Format, crate::formats::template::SharedBody)>) -> StoreResult<Vec<BodyToInsert>> {
                bodies
                    .into_iter()
                    .map(|(f, b)| {
                        let text = String::from_utf8(b.body().to_vec()).map_err(|e| corrupt("shared body", e))?;
                        Ok((f, text, b.standins()))
                    })
                    .collect()
            }

            /// Rows per delivery `INSERT` statement.
            pub(crate) const INSERT_CHUNK: usize = 40;

            fn rows_to_insert(subs: &[Subscriber], planned: Vec<Planned>, fresh: Option<&crate::store::FreshLease>) -> StoreResult<Vec<RowToInsert>> {
                let mut rows = Vec::with_capacity(planned.len());
                for p in planned {
                    let body = String::from_utf8(p.rendered.body).map_err(|e| corrupt("rendered body", e))?;
                    let headers: Vec<(String, String)> =
                        p.rendered.headers.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
                    let encoded = fanout::encode_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                    // Per-entity ordered deliveries are never handed over directly: a claim
                    // checks that no earlier delivery of the same entity is pending.
                    let target = Arc::clone(&subs[p.subscriber].target);
                    let lease = fresh.and_then(|f| f.for_webhook(target.webhook_id));
                    let held_back = fresh.is_some() && lease.is_none();
                    let lease = lease.filter(|_| p.entity_key.is_none()).cloned();
                    rows.push(RowToInsert {
                        id: p.delivery_id,
                        target,
                        key: p.entity_key,
                        body,
                        shared: p.shared,
                        encoded,
                        headers,
                        lease,
                        held_back,
                    });
                }
                Ok(rows)
            }

            /// The `seq` of the event whose id a shared body's row binds as `column1`, looked
            /// up because PostgreSQL's one statement draws it in the same statement (the
            /// other paths know it, and use the same look-up to keep one statement text).
            pub(crate) const SEQ_OF_EVENT_ID: &str = "(SELECT e.seq FROM events e WHERE e.id = v.column1)";

            /// Values per delivery row in `insert_deliveries_sql`.
            pub(crate) const DELIVERY_COLS: usize = 14;

            /// The `INSERT` of the delivery rows whose placeholders are `values`;
            /// `event_seq` is the SQL expression of the event's `seq` (the bound `column5`,
            /// or a look-up when it is not known yet).
            pub(crate) fn insert_deliveries_sql(values: &str, event_seq: &str) -> String {
                format!(
                    "INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_seq, event_type, entity_key, \
                     body, headers, next_attempt_at, lease_token, lease_until, created_at, status, updated_at, body_format) \
                     SELECT column1, column2, column3, column4, {event_seq}, column6, column7, column8, column9, column10, \
                     column11, column12, column13, 'pending', column13, column14 FROM (VALUES {values}) AS v"
                )
            }

            /// A delivery row's values, in `insert_deliveries_sql`'s column order.
            pub(crate) fn delivery_values<'a>(
                r: &'a RowToInsert,
                tenant_id: i64,
                event: &Event,
                event_type: &'a str,
                now: i64,
            ) -> [Val<'a>; DELIVERY_COLS] {
                let lease = r.lease.as_ref();
                [
                    Val::Owned(r.id.to_string()), Val::Int(Some(tenant_id)), Val::Owned(r.target.webhook_id.to_string()),
                    Val::Owned(event.id.to_string()), Val::Int(Some(event.seq)), Val::Text(Some(event_type)),
                    Val::Text(r.key.as_deref()), Val::Text(r.shared.is_none().then_some(r.body.as_str())),
                    Val::Text(Some(r.encoded.as_str())), Val::Int(Some(now)), Val::Text(lease.map(|l| l.token.as_str())),
                    Val::Int(lease.map(|l| l.until)), Val::Int(Some(now)), Val::Text(r.shared.map(|f| f.as_str())),
                ]
            }

            /// Binds one chunk of rows, in `insert_deliveries_sql`'s column order.
            fn bind_rows<'q>(
                mut q: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
                chunk: &'q [RowToInsert],
                tenant_id: i64,
                event: &Event,
                event_type: &'q str,
                now: i64,
            ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
                for r in chunk {
                    q = bind_vals(q, delivery_values(r, tenant_id, event, event_type, now));
                }
                q
            }

            /// The jobs for the leased rows, to hand over after commit.
            fn jobs_of(rows: Vec<RowToInsert>, tenant_id: i64, event_type: &str) -> Vec<DeliveryJob> {
                rows.into_iter()
                    .filter_map(|r| {
                        r.lease.map(|lease| DeliveryJob {
                            id: r.id,
                            tenant_id,
                            event_type: event_type.to_owned(),
                            body: Bytes::from(r.body),
                            format_headers: r.headers.into(),
                            attempts: 0,
                            tries: 0,
                            lease,
                            target: r.target,
                        })
                    })
                    .collect()
            }

            /// The tenant's webhooks that may want `event`: from the cache where it holds a
            /// list at least as new as `seen` (the tenant's webhooks version the request
            /// saw, `subscriber_cache.rs`), else read.
            async fn subscribers(c: &mut Conn, store: &$store, tenant_id: i64, event: &Event, seen: Option<i64>) -> StoreResult<Arc<Vec<Subscriber>>> {
                let cache = store.subscriber_cache(seen);
                if let Some(subs) = cache.and_then(|(c, v)| c.get(tenant_id, v)) {
                    return Ok(subs);
                }
                // Cached lists hold every enabled webhook; uncached reads only the
                // ones subscribed to this event type.
                let rows = sqlx::query::<Db>(&crate::store::row_decode::subscriber_sql(
                    "tenant_id = $1 AND enabled AND ($2 OR event_types LIKE $3)",
                ))
                .bind(tenant_id)
                .bind(cache.is_some())
                .bind(format!("%\"{}\"%", event.event_type))
                .fetch_all(&mut *c)
                .await?;
                let subs = Arc::new(rows.iter().map(subscriber_from_row).collect::<StoreResult<Vec<_>>>()?);
                if let Some((cache, v)) = cache {
                    cache.put(tenant_id, v, Arc::clone(&subs));
                }
                Ok(subs)
            }

            /// Renders `event` for its subscribers and turns the result into rows (leased to
            /// this node when an engine is attached); `seen` as in [`subscribers`].
            async fn plan_rows(c: &mut Conn, store: &$store, tenant_id: i64, event: &Event, seen: Option<i64>) -> StoreResult<(Vec<RowToInsert>, Vec<BodyToInsert>, i64)> {
                let subs = subscribers(c, store, tenant_id, event, seen).await?;
                plan_for(store, &subs, event)
            }

            /// [`plan_rows`] once the subscribers are known.
            pub(crate) fn plan_for(store: &$store, subs: &[Subscriber], event: &Event) -> StoreResult<(Vec<RowToInsert>, Vec<BodyToInsert>, i64)> {
                let now = crate::timefmt::now_ms();
                if subs.is_empty() {
                    return Ok((Vec::new(), Vec::new(), now));
                }
                let plan = fanout::plan(event, subs, &store.hub.public_base_url());
                let lease = store.hub.fresh_lease(now, &mut plan.deliveries.iter().map(|p| subs[p.subscriber].target.webhook_id));
                Ok((rows_to_insert(subs, plan.deliveries, lease.as_ref())?, bodies_to_insert(plan.bodies)?, now))
            }

            /// Creates the deliveries of `event` (already inserted, `seq` set) in the
            /// caller's transaction; returns the jobs to hand to local workers after commit,
            /// and whether claimable (unleased) rows were created too. `seen`: the tenant's
            /// webhooks version the request saw (`subscriber_cache.rs`).
            pub(crate) async fn fanout(c: &mut Conn, store: &$store, tenant_id: i64, event: &Event, seen: Option<i64>) -> StoreResult<(Vec<DeliveryJob>, bool)> {
                let (rows, bodies, now) = plan_rows(c, store, tenant_id, event, seen).await?;
                write_rows(c, store, rows, &bodies, tenant_id, event, now).await
            }

            /// Inserts `rows` and the `bodies` they share for `event` (its `seq` known) and
            /// finishes as [`fanout`] does.
            pub(crate) async fn write_rows(
                c: &mut Conn,
                store: &$store,
                rows: Vec<RowToInsert>,
                bodies: &[BodyToInsert],
                tenant_id: i64,
                event: &Event,
                now: i64,
            ) -> StoreResult<(Vec<DeliveryJob>, bool)> {
                let event_type = event.event_type.to_string();
                if !bodies.is_empty() {
                    let sql = insert_bodies_sql(&leading_value_rows::<Db>(bodies.len(), BODY_COLS), SEQ_OF_EVENT_ID);
                    bind_bodies(sqlx::query::<Db>(&sql), bodies, event, now).execute(&mut *c).await?;
                }
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let sql = insert_deliveries_sql(&leading_value_rows::<Db>(chunk.len(), DELIVERY_COLS), "column5");
                    bind_rows(sqlx::query::<Db>(&sql), chunk, tenant_id, event, &event_type, now)
                        .execute(&mut *c)
                        .await?;
                }
                finish_fanout(c, store, rows, tenant_id, &event_type, false).await
            }

            /// The jobs to hand over, and whether claimable rows were written (others are
            /// told: `NOTIFY` on PostgreSQL). Rows held back for a full queue do not count:
            /// this node takes them when its queue has room, other nodes at their poll — a
            /// `NOTIFY` per change to an endpoint that stopped answering would wake every
            /// node for work none of them can start sooner than its poll would.
            /// `committed`: the rows are durable already, so a failed `NOTIFY` must not
            /// report the change failed; it is logged, and the nodes' poll finds the rows
            /// instead.
            async fn finish_fanout(
                c: &mut Conn,
                store: &$store,
                rows: Vec<RowToInsert>,
                tenant_id: i64,
                event_type: &str,
                committed: bool,
            ) -> StoreResult<(Vec<DeliveryJob>, bool)> {
                let (jobs, claimable) = settle_rows(rows, tenant_id, event_type);
                if claimable {
                    match store.notify_work(&mut *c).await {
                        Err(e) if committed => {
                            tracing::warn!(error = %e, "could not wake nodes for new deliveries; they find them at their next poll");
                        }
                        r => r?,
                    }
                }
                Ok((jobs, claimable))
            }

            /// The jobs for the leased rows (to hand over after commit), and whether
            /// claimable rows were written: rows held back for a full queue do not count
            /// (see `finish_fanout`).
            pub(crate) fn settle_rows(rows: Vec<RowToInsert>, tenant_id: i64, event_type: &str) -> (Vec<DeliveryJob>, bool) {
                let claimable = rows.iter().any(|r| r.lease.is_none() && !r.held_back);
                (jobs_of(rows, tenant_id, event_type), claimable)
            }
    };
}

pub(crate) use fanout_fns;
