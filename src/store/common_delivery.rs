//! Delivery SQL shared by both backends: fan-out inserts, outcome recording, the delivery
//! log and redelivery. Expanded per pool type like `common.rs`. Only the claim statement
//! (`FOR UPDATE SKIP LOCKED` vs SQLite's single writer) and `LISTEN/NOTIFY` differ; each
//! backend file provides those (`claim_sql`, `notify_work`, `listen`).
//!
//! Everything on the hot path is batched: fan-out inserts all of an event's deliveries in
//! one multi-row `INSERT`, and the recorder writes a whole batch of attempts, delivery state
//! changes and webhook status updates in one transaction.

/// `($s, $s+1, …), (…)`: `rows` groups of `cols` numbered placeholders.
///
/// Built once per shape and shared: the hot paths (fan-out inserts, outcome batches) ask
/// for the same few shapes thousands of times a second, and formatting hundreds of
/// placeholders each time showed up in profiles. Shapes are bounded by the callers' chunk
/// sizes (at most 200 rows), so the cache stays small.
pub(crate) fn value_rows(rows: usize, cols: usize, start: usize) -> std::sync::Arc<str> {
    shape(rows, cols, Some(start))
}

/// `value_rows(rows, cols, 1)` for a statement whose first parameters these are, in the
/// placeholder style cheapest for `DB`: anonymous `?` on SQLite, `$n` elsewhere.
///
/// Why: sqlx binds each SQLite parameter by asking SQLite for its name, and SQLite finds a
/// name by walking the statement's list of named parameters, so binding n `$n` parameters
/// costs O(n²). A 40-row outcome batch has ~500 of them; that walk was 6 % of Herald's
/// CPU in the fan-out bench. Anonymous parameters have no names to walk and bind in order
/// (numbered ones may still follow them: `$k` after k-1 anonymous ones is parameter k).
pub(crate) fn leading_value_rows<DB: sqlx::Database>(rows: usize, cols: usize) -> std::sync::Arc<str> {
    if DB::NAME == "SQLite" {
        shape(rows, cols, None)
    } else {
        value_rows(rows, cols, 1)
    }
}

/// Builds (once) and shares one placeholder shape; `start: None` means anonymous `?`.
fn shape(rows: usize, cols: usize, start: Option<usize>) -> std::sync::Arc<str> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    type Shapes = Mutex<HashMap<(usize, usize, Option<usize>), Arc<str>>>;
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    let shapes = SHAPES.get_or_init(Shapes::default);
    let mut shapes = shapes.lock().unwrap_or_else(PoisonError::into_inner);
    let text = shapes.entry((rows, cols, start)).or_insert_with(|| {
        let mut out = String::with_capacity(rows * cols * 6);
        for r in 0..rows {
            out.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..cols {
                if c > 0 {
                    out.push_str(", ");
                }
                match start {
                    Some(start) => {
                        out.push('$');
                        out.push_str(&(start + r * cols + c).to_string());
                    }
                    None => out.push('?'),
                }
            }
            out.push(')');
        }
        out.into()
    });
    Arc::clone(text)
}

/// Columns a claim returns (read by `claim_due`).
pub(crate) const CLAIM_RETURNING: &str =
    "id, tenant_id, webhook_id, event_type, body, headers, attempts, tries";

/// Expands the `DeliveryStore` implementation and the fan-out helper for one backend.
macro_rules! impl_delivery_store {
    ($store:ty, $db:ty) => {
        pub(crate) mod delivery_impl {
            use super::*;
            use std::collections::HashMap;
            use std::sync::Arc;
            use bytes::Bytes;
            use crate::delivery::fanout::{self, Planned, Subscriber};
            use crate::domain::event::Event;
            use crate::store::common::{corrupt, parse_event_types, parse_format, parse_ids, parse_ordering, parse_uuid, parse_verb};
            use crate::store::common::placeholders;
            use crate::store::common_delivery::leading_value_rows;
            use crate::store::*;
            use async_trait::async_trait;
            use sqlx::Row;
            use uuid::Uuid;

            type Db = $db;
            type DbRow = <Db as sqlx::Database>::Row;
            type Conn = <Db as sqlx::Database>::Connection;

            const TARGET_COLUMNS: &str = "id, url, http_verb, headers, secret, previous_secret, previous_secret_until, updated_at";

            fn target_from_row(r: &DbRow) -> StoreResult<TargetRow> {
                Ok(TargetRow {
                    webhook_id: parse_uuid(r.try_get::<&str, _>("id")?)?,
                    url: r.try_get("url")?,
                    http_verb: parse_verb(r.try_get::<&str, _>("http_verb")?)?,
                    headers_json: r.try_get("headers")?,
                    secret_sealed: r.try_get("secret")?,
                    previous_secret_sealed: r.try_get("previous_secret")?,
                    previous_secret_until: r.try_get("previous_secret_until")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn subscriber_from_row(r: &DbRow) -> StoreResult<Subscriber> {
                Ok(Subscriber {
                    format: parse_format(r.try_get::<&str, _>("format")?)?,
                    event_types: parse_event_types(r.try_get::<&str, _>("event_types")?)?,
                    project_ids: parse_ids(r.try_get::<&str, _>("project_ids")?)?,
                    ordering: parse_ordering(r.try_get::<&str, _>("ordering")?)?,
                    target: Arc::new(target_from_row(r)?),
                })
            }

            /// One delivery row to insert: id, target, ordering key, body, encoded headers,
            /// the headers themselves (for the job) and the lease (leased rows become jobs).
            type RowToInsert = (Uuid, Arc<TargetRow>, Option<String>, String, String, Vec<(String, String)>, Option<Lease>);

            /// Rows per delivery `INSERT` statement.
            const INSERT_CHUNK: usize = 40;

            fn rows_to_insert(subs: &[Subscriber], planned: Vec<Planned>, lease: Option<&Lease>) -> StoreResult<Vec<RowToInsert>> {
                let mut rows = Vec::with_capacity(planned.len());
                for p in planned {
                    let body = String::from_utf8(p.rendered.body).map_err(|e| corrupt("rendered body", e))?;
                    let headers: Vec<(String, String)> =
                        p.rendered.headers.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
                    let encoded = fanout::encode_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                    // Per-entity ordered deliveries are never handed over directly: a claim
                    // checks that no earlier delivery of the same entity is pending.
                    let lease = lease.filter(|_| p.entity_key.is_none()).cloned();
                    rows.push((p.delivery_id, Arc::clone(&subs[p.subscriber].target), p.entity_key, body, encoded, headers, lease));
                }
                Ok(rows)
            }

            /// The `INSERT` of `rows` deliveries; `event_seq` is the SQL expression of the
            /// event's `seq` (the bound `column5`, or a look-up when it is not known yet).
            fn insert_deliveries_sql(rows: usize, event_seq: &str) -> String {
                format!(
                    "INSERT INTO deliveries (id, tenant_id, webhook_id, event_id, event_seq, event_type, entity_key, \
                     body, headers, next_attempt_at, lease_token, lease_until, created_at, status, updated_at) \
                     SELECT column1, column2, column3, column4, {event_seq}, column6, column7, column8, column9, column10, \
                     column11, column12, column13, 'pending', column13 FROM (VALUES {}) AS v",
                    leading_value_rows::<Db>(rows, 13)
                )
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
                for (id, target, key, body, encoded, _, lease) in chunk {
                    q = q
                        .bind(id.to_string()).bind(tenant_id).bind(target.webhook_id.to_string())
                        .bind(event.id.to_string()).bind(event.seq).bind(event_type).bind(key.as_deref())
                        .bind(body.as_str()).bind(encoded.as_str()).bind(now)
                        .bind(lease.as_ref().map(|l| l.token.as_str())).bind(lease.as_ref().map(|l| l.until))
                        .bind(now);
                }
                q
            }

            /// The jobs for the leased rows, to hand over after commit.
            fn jobs_of(rows: Vec<RowToInsert>, tenant_id: i64, event_type: &str) -> Vec<DeliveryJob> {
                rows.into_iter()
                    .filter_map(|(id, target, _, body, _, headers, lease)| {
                        lease.map(|lease| DeliveryJob {
                            id,
                            tenant_id,
                            event_type: event_type.to_owned(),
                            body: Bytes::from(body),
                            format_headers: headers.into(),
                            attempts: 0,
                            tries: 0,
                            lease,
                            target,
                        })
                    })
                    .collect()
            }

            /// The tenant's webhooks that may want `event` (from the cache where there is one).
            async fn subscribers(c: &mut Conn, store: &$store, tenant_id: i64, event: &Event) -> StoreResult<Arc<Vec<Subscriber>>> {
                let cache = store.subscriber_cache();
                if let Some(subs) = cache.and_then(|c| c.get(tenant_id)) {
                    return Ok(subs);
                }
                // Cached lists hold every enabled webhook; uncached reads only the
                // ones subscribed to this event type.
                let rows = sqlx::query::<Db>(&format!(
                    "SELECT {TARGET_COLUMNS}, format, event_types, project_ids, ordering FROM webhooks \
                     WHERE tenant_id = $1 AND enabled AND ($2 OR event_types LIKE $3) ORDER BY created_at, id"
                ))
                .bind(tenant_id)
                .bind(cache.is_some())
                .bind(format!("%\"{}\"%", event.event_type))
                .fetch_all(&mut *c)
                .await?;
                let subs = Arc::new(rows.iter().map(subscriber_from_row).collect::<StoreResult<Vec<_>>>()?);
                if let Some(cache) = cache {
                    cache.put(tenant_id, Arc::clone(&subs));
                }
                Ok(subs)
            }

            /// Renders `event` for its subscribers and turns the result into rows (leased to
            /// this node when an engine is attached).
            async fn plan_rows(c: &mut Conn, store: &$store, tenant_id: i64, event: &Event) -> StoreResult<(Vec<RowToInsert>, i64)> {
                let subs = subscribers(c, store, tenant_id, event).await?;
                let now = crate::timefmt::now_ms();
                if subs.is_empty() {
                    return Ok((Vec::new(), now));
                }
                let planned = fanout::plan(event, &subs, &store.hub.public_base_url());
                let lease = store.hub.fresh_lease(now);
                Ok((rows_to_insert(&subs, planned, lease.as_ref())?, now))
            }

            /// Creates the deliveries of `event` (already inserted, `seq` set) in the
            /// caller's transaction; returns the jobs to hand to local workers after commit,
            /// and whether claimable (unleased) rows were created too.
            pub(crate) async fn fanout(c: &mut Conn, store: &$store, tenant_id: i64, event: &Event) -> StoreResult<(Vec<DeliveryJob>, bool)> {
                let (rows, now) = plan_rows(c, store, tenant_id, event).await?;
                let event_type = event.event_type.to_string();
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let sql = insert_deliveries_sql(chunk.len(), "column5");
                    bind_rows(sqlx::query::<Db>(&sql), chunk, tenant_id, event, &event_type, now)
                        .execute(&mut *c)
                        .await?;
                }
                finish_fanout(c, store, rows, tenant_id, &event_type).await
            }

            async fn finish_fanout(c: &mut Conn, store: &$store, rows: Vec<RowToInsert>, tenant_id: i64, event_type: &str) -> StoreResult<(Vec<DeliveryJob>, bool)> {
                let n = rows.len();
                let jobs = jobs_of(rows, tenant_id, event_type);
                let claimable = jobs.len() < n;
                if claimable {
                    store.notify_work(&mut *c).await?;
                }
                Ok((jobs, claimable))
            }

            /// SQLite's one-round-trip tail of a change: the event, its deliveries and
            /// `then` (SQL the caller wants run after them, e.g. releasing its savepoint)
            /// sent as one batch of statements, so the writer is held for one statement
            /// round trip instead of three. Sets `event.seq`. The bodies are rendered before
            /// the event has its `seq`, so this is only for events whose formats do not
            /// show it (`project_version` is set); anonymous placeholders, so SQLite only.
            pub(crate) async fn insert_event_and_fanout(
                c: &mut Conn,
                store: &$store,
                tenant_id: i64,
                event: &mut Event,
                then: &str,
            ) -> StoreResult<(Vec<DeliveryJob>, bool)> {
                debug_assert!(event.project_version.is_some() && <Db as sqlx::Database>::NAME == "SQLite");
                let (rows, now) = plan_rows(c, store, tenant_id, event).await?;
                let event_type = event.event_type.to_string();
                let data = serde_json::to_string(&*event).map_err(|err| corrupt("event", err))?;
                let mut sql = String::from(
                    "INSERT INTO events (id, tenant_id, type, entity_kind, entity_id, project_id, occurred_at, idempotency_key, data) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq;",
                );
                for chunk in rows.chunks(INSERT_CHUNK) {
                    sql.push_str(&insert_deliveries_sql(chunk.len(), "(SELECT e.seq FROM events e WHERE e.id = column4)"));
                    sql.push(';');
                }
                sql.push_str(then);
                let mut q = sqlx::query::<Db>(&sql)
                    .bind(event.id.to_string()).bind(tenant_id).bind(event_type.as_str()).bind(event.entity_kind.as_str())
                    .bind(event.entity_id).bind(event.project.as_ref().map(|p| p.id)).bind(event.occurred_at)
                    .bind(None::<&str>).bind(data.as_str());
                for chunk in rows.chunks(INSERT_CHUNK) {
                    q = bind_rows(q, chunk, tenant_id, event, &event_type, now);
                }
                // `fetch_all`, not `fetch_one`: sqlx stops a batch after the row asked for.
                let out = q.fetch_all(&mut *c).await?;
                event.seq = out.first().ok_or_else(|| corrupt("event", "no seq returned"))?.try_get("seq")?;
                finish_fanout(c, store, rows, tenant_id, &event_type).await
            }

            /// Cancels the pending deliveries of one webhook (or of every webhook of the
            /// tenant), in the caller's transaction: their webhook is being deleted.
            pub(crate) async fn cancel_pending(c: &mut Conn, tenant_id: i64, webhook_id: Option<Uuid>) -> StoreResult<()> {
                sqlx::query::<Db>(
                    "UPDATE deliveries SET status = 'cancelled', lease_token = NULL, lease_until = NULL \
                     WHERE tenant_id = $1 AND ($2 IS NULL OR webhook_id = $2) AND status = 'pending'",
                )
                .bind(tenant_id)
                .bind(webhook_id.map(|w| w.to_string()))
                .execute(c)
                .await?;
                Ok(())
            }

            #[async_trait]
            impl DeliveryStore for $store {
                fn hub(&self) -> &Arc<DeliveryHub> {
                    &self.hub
                }

                async fn claim_due(&self, req: &ClaimRequest) -> StoreResult<Vec<DeliveryJob>> {
                    let sql = Self::claim_sql(req.exclude.len());
                    let mut q = sqlx::query::<Db>(&sql)
                        .bind(&req.token).bind(req.lease_until).bind(req.now).bind(req.limit).bind(req.per_webhook);
                    for id in &req.exclude {
                        q = q.bind(id.to_string());
                    }
                    let rows = q.fetch_all(&self.writer).await?;
                    if rows.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut webhook_ids: Vec<String> = rows
                        .iter()
                        .map(|r| r.try_get::<String, _>("webhook_id"))
                        .collect::<Result<_, _>>()?;
                    webhook_ids.sort_unstable();
                    webhook_ids.dedup();
                    let sql = format!("SELECT {TARGET_COLUMNS} FROM webhooks WHERE id IN ({})", placeholders(1, webhook_ids.len()));
                    let mut q = sqlx::query::<Db>(&sql);
                    for id in &webhook_ids {
                        q = q.bind(id);
                    }
                    let mut targets = HashMap::new();
                    for r in q.fetch_all(&self.pool).await? {
                        let t = target_from_row(&r)?;
                        targets.insert(t.webhook_id, Arc::new(t));
                    }
                    let mut jobs = Vec::with_capacity(rows.len());
                    let mut orphans = Vec::new();
                    for r in &rows {
                        let id = parse_uuid(r.try_get::<&str, _>("id")?)?;
                        let webhook_id = parse_uuid(r.try_get::<&str, _>("webhook_id")?)?;
                        let lease = Lease { token: req.token.clone(), until: req.lease_until };
                        let Some(target) = targets.get(&webhook_id) else {
                            // Deleted between claim and lookup: its rows are being cancelled.
                            orphans.push((id, lease.token));
                            continue;
                        };
                        let body: Option<String> = r.try_get("body")?;
                        jobs.push(DeliveryJob {
                            id,
                            tenant_id: r.try_get("tenant_id")?,
                            event_type: r.try_get("event_type")?,
                            body: Bytes::from(body.unwrap_or_default()),
                            format_headers: fanout::decode_headers(r.try_get::<&str, _>("headers")?).into(),
                            attempts: r.try_get("attempts")?,
                            tries: r.try_get("tries")?,
                            lease,
                            target: Arc::clone(target),
                        });
                    }
                    if !orphans.is_empty() {
                        self.release_leases(&orphans).await?;
                    }
                    Ok(jobs)
                }

                async fn record_attempts(&self, records: &[AttemptRecord], auto: AutoDisable, now: i64) -> StoreResult<Vec<Uuid>> {
                    if records.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.writer.begin().await?;
                    super::delivery_record::insert_attempts(&mut tx, records).await?;
                    super::delivery_record::update_deliveries(&mut tx, records, now).await?;
                    let disabled = super::delivery_record::update_webhooks(&mut tx, records, auto, now).await?;
                    if !disabled.is_empty() {
                        self.forget_subscribers();
                    }
                    tx.commit().await?;
                    Ok(disabled)
                }

                async fn release_leases(&self, leases: &[(Uuid, String)]) -> StoreResult<u64> {
                    let mut n = 0;
                    let mut tx = self.writer.begin().await?;
                    for chunk in leases.chunks(200) {
                        let sql = format!(
                            "UPDATE deliveries SET lease_token = NULL, lease_until = NULL FROM (VALUES {}) AS v \
                             WHERE deliveries.id = v.column1 AND deliveries.lease_token = v.column2",
                            leading_value_rows::<Db>(chunk.len(), 2)
                        );
                        let mut q = sqlx::query::<Db>(&sql);
                        for (id, token) in chunk {
                            q = q.bind(id.to_string()).bind(token.as_str());
                        }
                        n += q.execute(&mut *tx).await?.rows_affected();
                    }
                    if n > 0 {
                        self.notify_work(&mut tx).await?;
                    }
                    tx.commit().await?;
                    Ok(n)
                }

                async fn listen_for_work(&self, wake: Arc<tokio::sync::Notify>, stop: tokio_util::sync::CancellationToken) {
                    self.listen(wake, stop).await
                }

                async fn list_deliveries(&self, tenant_id: i64, webhook_id: Option<Uuid>, f: &DeliveryFilter) -> StoreResult<Vec<DeliverySummary>> {
                    super::delivery_log::list_deliveries(self, tenant_id, webhook_id, f).await
                }

                async fn get_delivery(&self, tenant_id: i64, id: Uuid) -> StoreResult<Option<DeliveryDetail>> {
                    super::delivery_log::get_delivery(self, tenant_id, id).await
                }

                async fn redeliver(&self, tenant_id: i64, id: Uuid, now: i64) -> StoreResult<Result<DeliverySummary, RedeliverRefusal>> {
                    super::delivery_log::redeliver(self, tenant_id, id, now).await
                }

                async fn redeliver_matching(&self, tenant_id: i64, webhook_id: Uuid, m: &RedeliverMatch, now: i64) -> StoreResult<(u64, Option<i64>)> {
                    super::delivery_log::redeliver_matching(self, tenant_id, webhook_id, m, now).await
                }

                async fn count_matching(&self, tenant_id: i64, webhook_id: Uuid, status: DeliveryStatus, since: Option<i64>) -> StoreResult<i64> {
                    super::delivery_log::count_matching(self, tenant_id, webhook_id, status, since).await
                }

                async fn create_ping(&self, tenant_id: i64, webhook_id: Uuid, event: &Event) -> StoreResult<Option<(Uuid, Vec<DeliveryJob>)>> {
                    let mut tx = self.writer.begin().await?;
                    let Some(row) = sqlx::query::<Db>(&format!(
                        "SELECT {TARGET_COLUMNS}, format, event_types, project_ids, ordering FROM webhooks \
                         WHERE tenant_id = $1 AND id = $2"
                    ))
                    .bind(tenant_id).bind(webhook_id.to_string())
                    .fetch_optional(&mut *tx)
                    .await? else {
                        return Ok(None);
                    };
                    let mut sub = subscriber_from_row(&row)?;
                    // A ping is about the webhook, not an entity: never held back by ordering.
                    sub.ordering = crate::domain::webhook::Ordering::None;
                    let planned = fanout::planned(0, &sub, event, &self.hub.public_base_url())
                        .ok_or_else(|| corrupt("ping", "format rendered nothing"))?;
                    let id = planned.delivery_id;
                    let now = crate::timefmt::now_ms();
                    let lease = self.hub.fresh_lease(now);
                    let rows = rows_to_insert(&[sub], vec![planned], lease.as_ref())?;
                    let event_type = event.event_type.to_string();
                    let sql = insert_deliveries_sql(1, "column5");
                    bind_rows(sqlx::query::<Db>(&sql), &rows, tenant_id, event, &event_type, now).execute(&mut *tx).await?;
                    let jobs = jobs_of(rows, tenant_id, &event_type);
                    if jobs.is_empty() {
                        self.notify_work(&mut tx).await?;
                    }
                    tx.commit().await?;
                    Ok(Some((id, jobs)))
                }

                async fn queue_stats(&self, now: i64) -> StoreResult<QueueStats> {
                    super::delivery_log::queue_stats(self, now).await
                }

                async fn purge_bodies(&self, cutoff: i64) -> StoreResult<u64> {
                    super::delivery_log::purge_bodies(self, cutoff).await
                }
            }
        }
    };
}

pub(crate) use impl_delivery_store;

#[cfg(test)]
mod tests {
    use super::{leading_value_rows, value_rows};

    #[test]
    fn value_rows_numbers_placeholders_row_by_row() {
        assert_eq!(&*value_rows(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(&*value_rows(1, 2, 5), "($5, $6)");
        assert_eq!(&*value_rows(0, 2, 1), "");
        // Asked again, the same shape comes from the cache.
        assert!(std::sync::Arc::ptr_eq(&value_rows(2, 3, 1), &value_rows(2, 3, 1)));
        assert_eq!(&*leading_value_rows::<sqlx::Sqlite>(2, 2), "(?, ?), (?, ?)");
        assert_eq!(&*leading_value_rows::<sqlx::Postgres>(2, 2), "($1, $2), ($3, $4)");
    }
}
