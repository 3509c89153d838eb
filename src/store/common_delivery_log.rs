//! The delivery log and redelivery, shared by both backends (expanded per pool type like
//! `common.rs`; the `DeliveryStore` implementation in `common_delivery.rs` delegates here).
//! None of this is on the delivery hot path.

/// The queue gauges: pending rows, how many are due and the oldest due time. Free and
/// held rows are read apart: each half matches one partial index (`deliveries_due`,
/// `deliveries_leased`); `status = 'pending'` alone matches neither and would read the
/// whole table.
pub(crate) const QUEUE_STATS_SQL: &str =
    "SELECT COUNT(*) AS pending, COALESCE(SUM(CASE WHEN next_attempt_at <= $1 THEN 1 ELSE 0 END), 0) AS due, \
     MIN(CASE WHEN next_attempt_at <= $1 THEN next_attempt_at END) AS oldest FROM ( \
     SELECT next_attempt_at FROM deliveries WHERE status = 'pending' AND lease_until IS NULL \
     UNION ALL \
     SELECT next_attempt_at FROM deliveries WHERE status = 'pending' AND lease_until IS NOT NULL) AS p";

/// Whether a delivery still has its body: its own, or a shared one it names
/// (`delivery_bodies`). Retention clears both.
pub(crate) const HAS_BODY: &str = "(body IS NOT NULL OR body_format IS NOT NULL)";

/// The condition "no pending delivery names this shared body" on `delivery_bodies`. Pending
/// rows are read in two halves, one per partial index (as in [`QUEUE_STATS_SQL`]). SQLite
/// gets `NOT IN`, which it evaluates once into a temporary index (a correlated `NOT
/// EXISTS` would scan the pending rows once per body); PostgreSQL gets `NOT EXISTS`, an
/// anti-join (its `NOT IN` over more rows than `work_mem` holds rescans them per body).
pub(crate) fn unnamed_by_pending(single_writer: bool) -> &'static str {
    if single_writer {
        "(event_seq, format) NOT IN (\
         SELECT event_seq, body_format FROM deliveries WHERE status = 'pending' AND lease_until IS NULL AND body_format IS NOT NULL \
         UNION ALL \
         SELECT event_seq, body_format FROM deliveries WHERE status = 'pending' AND lease_until IS NOT NULL AND body_format IS NOT NULL)"
    } else {
        "NOT EXISTS (SELECT 1 FROM (\
         SELECT event_seq, body_format FROM deliveries WHERE status = 'pending' AND lease_until IS NULL \
         UNION ALL \
         SELECT event_seq, body_format FROM deliveries WHERE status = 'pending' AND lease_until IS NOT NULL) AS p \
         WHERE p.event_seq = delivery_bodies.event_seq AND p.body_format = delivery_bodies.format)"
    }
}

/// Expands the delivery-log functions for one backend.
macro_rules! impl_delivery_log {
    ($store:ty, $db:ty) => {
        pub(crate) mod delivery_log {
            use super::*;
            use std::collections::{HashMap, HashSet};
            use crate::formats::template::{SharedBody, Standins};
            use crate::store::common::{corrupt, parse_uuid, placeholders};
            use crate::store::common_delivery_log::HAS_BODY;
            use crate::store::*;
            use sqlx::Row;
            use uuid::Uuid;

            type Db = $db;
            type DbRow = <Db as sqlx::Database>::Row;

            const SUMMARY_COLUMNS: &str = "seq, id, tenant_id, webhook_id, event_id, event_type, status, attempts, \
                 next_attempt_at, last_status_code, last_error, created_at, completed_at";

            fn summary_from_row(r: &DbRow) -> StoreResult<DeliverySummary> {
                let status: String = r.try_get("status")?;
                let status = DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?;
                Ok(DeliverySummary {
                    seq: r.try_get("seq")?,
                    id: parse_uuid(r.try_get::<&str, _>("id")?)?,
                    tenant_id: r.try_get("tenant_id")?,
                    webhook_id: parse_uuid(r.try_get::<&str, _>("webhook_id")?)?,
                    event_id: parse_uuid(r.try_get::<&str, _>("event_id")?)?,
                    event_type: r.try_get("event_type")?,
                    status,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: Some(r.try_get::<i64, _>("next_attempt_at")?)
                        .filter(|_| status == DeliveryStatus::Pending),
                    last_status_code: r.try_get("last_status_code")?,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    completed_at: r.try_get("completed_at")?,
                })
            }

            fn attempt_from_row(r: &DbRow) -> StoreResult<AttemptRow> {
                Ok(AttemptRow {
                    number: r.try_get("number")?,
                    started_at: r.try_get("started_at")?,
                    duration_ms: r.try_get("duration_ms")?,
                    request_headers: r.try_get("request_headers")?,
                    status_code: r.try_get("status_code")?,
                    response_headers: r.try_get("response_headers")?,
                    response_body: r.try_get("response_body")?,
                    response_truncated: r.try_get("response_truncated")?,
                    error_kind: r.try_get("error_kind")?,
                    error: r.try_get("error")?,
                    outcome: r.try_get("outcome")?,
                })
            }

            pub(crate) async fn list_deliveries(s: &$store, tenant_id: i64, webhook_id: Option<Uuid>, f: &DeliveryFilter) -> StoreResult<Vec<DeliverySummary>> {
                let rows = sqlx::query::<Db>(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND ($2 IS NULL OR webhook_id = $2) \
                     AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR event_type = $4) \
                     AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
                     AND ($7 IS NULL OR seq < $7) ORDER BY seq DESC LIMIT $8"
                ))
                .bind(tenant_id).bind(webhook_id.map(|w| w.to_string())).bind(f.status.map(|s| s.as_str()))
                .bind(f.event_type.as_deref()).bind(f.since).bind(f.until).bind(f.before_seq).bind(f.limit)
                .fetch_all(&s.pool)
                .await?;
                rows.iter().map(summary_from_row).collect()
            }

            /// The shared body a delivery row names (`body_format`, read with `event_seq`), if any.
            fn shared_key(r: &DbRow) -> StoreResult<Option<(i64, String)>> {
                match r.try_get::<Option<String>, _>("body_format")? {
                    Some(format) => Ok(Some((r.try_get("event_seq")?, format))),
                    None => Ok(None),
                }
            }

            /// The shared bodies (`delivery_bodies`) the delivery `rows` name (they carry
            /// `body_format` and `event_seq`), one read for all of them.
            pub(crate) async fn shared_bodies(pool: &sqlx::Pool<Db>, rows: &[DbRow]) -> StoreResult<HashMap<(i64, String), SharedBody>> {
                let mut keys = HashSet::new();
                for r in rows {
                    keys.extend(shared_key(r)?);
                }
                let mut seqs: Vec<i64> = keys.iter().map(|(s, _)| *s).collect();
                seqs.sort_unstable();
                seqs.dedup();
                let mut out = HashMap::with_capacity(keys.len());
                for chunk in seqs.chunks(500) {
                    let sql = format!(
                        "SELECT event_seq, format, body, webhook_standin, delivery_standin FROM delivery_bodies \
                         WHERE event_seq IN ({})",
                        placeholders(1, chunk.len())
                    );
                    let mut q = sqlx::query::<Db>(&sql);
                    for seq in chunk {
                        q = q.bind(*seq);
                    }
                    for r in q.fetch_all(pool).await? {
                        let key: (i64, String) = (r.try_get("event_seq")?, r.try_get("format")?);
                        if !keys.contains(&key) {
                            continue;
                        }
                        let body: String = r.try_get("body")?;
                        let standins = Standins {
                            webhook: parse_uuid(r.try_get::<&str, _>("webhook_standin")?)?,
                            delivery: parse_uuid(r.try_get::<&str, _>("delivery_standin")?)?,
                        };
                        out.insert(key, SharedBody::new(body.into_bytes(), standins));
                    }
                }
                Ok(out)
            }

            /// A delivery row's body: its own, or the shared body it names (from `shared`,
            /// see [`shared_bodies`]) filled with its ids; `None` once purged by retention.
            pub(crate) fn body_from_row(
                r: &DbRow,
                shared: &HashMap<(i64, String), SharedBody>,
                webhook_id: Uuid,
                id: Uuid,
            ) -> StoreResult<Option<Vec<u8>>> {
                if let Some(own) = r.try_get::<Option<String>, _>("body")? {
                    return Ok(Some(own.into_bytes()));
                }
                let Some(key) = shared_key(r)? else {
                    return Ok(None);
                };
                let body = shared.get(&key).ok_or_else(|| {
                    corrupt("delivery body", format!("the shared body of event {} in {} is missing", key.0, key.1))
                })?;
                Ok(Some(body.fill(webhook_id, id)))
            }

            pub(crate) async fn get_delivery(s: &$store, tenant_id: i64, id: Uuid) -> StoreResult<Option<DeliveryDetail>> {
                let Some(row) = sqlx::query::<Db>(&format!(
                    "SELECT {SUMMARY_COLUMNS}, body, body_format, event_seq FROM deliveries WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(tenant_id).bind(id.to_string())
                .fetch_optional(&s.pool)
                .await? else {
                    return Ok(None);
                };
                let attempts = sqlx::query::<Db>(
                    "SELECT number, started_at, duration_ms, request_headers, status_code, response_headers, \
                     response_body, response_truncated, error_kind, error, outcome FROM delivery_attempts \
                     WHERE delivery_id = $1 ORDER BY number, id",
                )
                .bind(id.to_string())
                .fetch_all(&s.pool)
                .await?;
                let summary = summary_from_row(&row)?;
                let shared = shared_bodies(&s.pool, std::slice::from_ref(&row)).await?;
                let body = body_from_row(&row, &shared, summary.webhook_id, summary.id)?
                    .map(String::from_utf8)
                    .transpose()
                    .map_err(|e| corrupt("delivery body", e))?;
                Ok(Some(DeliveryDetail {
                    summary,
                    body,
                    attempts: attempts.iter().map(attempt_from_row).collect::<StoreResult<_>>()?,
                }))
            }

            pub(crate) async fn redeliver(s: &$store, tenant_id: i64, id: Uuid, now: i64) -> StoreResult<Result<DeliverySummary, RedeliverRefusal>> {
                let mut tx = s.writer.begin().await?;
                let row = sqlx::query::<Db>(&format!(
                    "UPDATE deliveries SET status = 'pending', tries = 0, next_attempt_at = $3, completed_at = NULL, \
                     lease_token = NULL, lease_until = NULL, updated_at = $3 \
                     WHERE tenant_id = $1 AND id = $2 AND {HAS_BODY} AND status <> 'cancelled' \
                     AND NOT (status = 'pending' AND lease_until IS NOT NULL AND lease_until >= $3) \
                     AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id) \
                     RETURNING {SUMMARY_COLUMNS}"
                ))
                .bind(tenant_id).bind(id.to_string()).bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    let why = sqlx::query::<Db>(&format!(
                        "SELECT status, NOT {HAS_BODY} AS purged, \
                         NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id) AS gone \
                         FROM deliveries WHERE tenant_id = $1 AND id = $2"
                    ))
                        .bind(tenant_id).bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                    return Ok(Err(match why {
                        None => RedeliverRefusal::NotFound,
                        // Cancelled with its webhook, or a finished delivery whose webhook
                        // went since: a new attempt would never be claimed (claims join
                        // `webhooks`) and would count as due until retention cancelled it.
                        Some(r) if r.try_get::<&str, _>("status")? == "cancelled" || r.try_get::<bool, _>("gone")? => {
                            RedeliverRefusal::WebhookGone
                        }
                        Some(r) if r.try_get::<bool, _>("purged")? => RedeliverRefusal::BodyPurged,
                        Some(_) => RedeliverRefusal::InFlight,
                    }));
                };
                s.notify_work(&mut tx).await?;
                tx.commit().await?;
                Ok(Ok(summary_from_row(&row)?))
            }

            pub(crate) async fn redeliver_matching(s: &$store, tenant_id: i64, webhook_id: Uuid, m: &RedeliverMatch, now: i64) -> StoreResult<(u64, Option<i64>)> {
                let mut tx = s.writer.begin().await?;
                let seqs = sqlx::query_scalar::<Db, i64>(&format!(
                    "SELECT seq FROM deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND status = $3 \
                     AND ($4 IS NULL OR created_at >= $4) AND seq > $5 AND {HAS_BODY} ORDER BY seq LIMIT $6",
                ))
                .bind(tenant_id).bind(webhook_id.to_string()).bind(m.status.as_str()).bind(m.since)
                .bind(m.after_seq).bind(m.limit)
                .fetch_all(&mut *tx)
                .await?;
                let Some(&last) = seqs.last() else {
                    return Ok((0, None));
                };
                let n = sqlx::query::<Db>(&format!(
                    "UPDATE deliveries SET status = 'pending', tries = 0, next_attempt_at = $4, completed_at = NULL, \
                     updated_at = $4 WHERE tenant_id = $1 AND webhook_id = $2 AND status = $3 AND {HAS_BODY} \
                     AND seq >= $5 AND seq <= $6",
                ))
                .bind(tenant_id).bind(webhook_id.to_string()).bind(m.status.as_str()).bind(now)
                .bind(seqs[0]).bind(last)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                s.notify_work(&mut tx).await?;
                tx.commit().await?;
                Ok((n, Some(last)))
            }

            pub(crate) async fn count_matching(s: &$store, tenant_id: i64, webhook_id: Uuid, status: DeliveryStatus, since: Option<i64>) -> StoreResult<i64> {
                Ok(sqlx::query_scalar::<Db, i64>(&format!(
                    "SELECT COUNT(*) FROM deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND status = $3 \
                     AND ($4 IS NULL OR created_at >= $4) AND {HAS_BODY}",
                ))
                .bind(tenant_id).bind(webhook_id.to_string()).bind(status.as_str()).bind(since)
                .fetch_one(&s.pool)
                .await?)
            }

            pub(crate) async fn queue_stats(s: &$store, now: i64) -> StoreResult<QueueStats> {
                let r = sqlx::query::<Db>(crate::store::common_delivery_log::QUEUE_STATS_SQL)
                .bind(now)
                .fetch_one(&s.pool)
                .await?;
                Ok(QueueStats { pending: r.try_get("pending")?, due: r.try_get("due")?, oldest_due_at: r.try_get("oldest")? })
            }

            pub(crate) async fn purge_bodies(s: &$store, cutoff: i64) -> StoreResult<u64> {
                // Pending deliveries of webhooks that no longer exist. Deleting a webhook
                // cancels its pending deliveries in the same transaction, but on
                // PostgreSQL a change that read the webhook list just before can commit
                // its deliveries just after (no foreign key stops it), and a webhook can
                // be deleted by hand in SQL: such rows are never claimed (claims join
                // `webhooks`), would count as due for ever, and would hold back the purge
                // of shared bodies below. One statement per partial index, as
                // `cancel_pending` does.
                let mut orphans = 0;
                for held in ["lease_until IS NULL", "lease_until IS NOT NULL"] {
                    orphans += sqlx::query::<Db>(&format!(
                        "UPDATE deliveries SET status = 'cancelled', lease_token = NULL, lease_until = NULL \
                         WHERE status = 'pending' AND {held} \
                         AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = deliveries.webhook_id)"
                    ))
                    .execute(&mut *s.writer.acquire().await?).await?.rows_affected();
                }
                if orphans > 0 {
                    tracing::warn!(cancelled = orphans, "cancelled pending deliveries of webhooks that no longer exist");
                }
                let a = sqlx::query::<Db>(
                    "UPDATE delivery_attempts SET response_body = NULL WHERE started_at < $1 AND response_body IS NOT NULL",
                )
                .bind(cutoff).execute(&mut *s.writer.acquire().await?).await?.rows_affected();
                let d = sqlx::query::<Db>(&format!(
                    "UPDATE deliveries SET body = NULL, body_format = NULL WHERE status <> 'pending' AND updated_at < $1 \
                     AND {HAS_BODY}"
                ))
                .bind(cutoff).execute(&mut *s.writer.acquire().await?).await?.rows_affected();
                // Shared bodies no delivery names any more. A shared body is only named by
                // deliveries of its own event, written in the same transaction, so one
                // statement (one snapshot) sees a shared body together with every row that
                // names it: everything below the oldest event still named can go. A delivery
                // still retrying an old event holds back only what is newer than it.
                sqlx::query::<Db>(
                    "DELETE FROM delivery_bodies WHERE event_seq < COALESCE(\
                     (SELECT MIN(event_seq) FROM deliveries WHERE body_format IS NOT NULL), 9223372036854775807)",
                )
                .execute(&mut *s.writer.acquire().await?).await?;
                // That minimum stops at the oldest event a pending delivery names, and a
                // disabled webhook's deliveries stay pending until it is enabled again (or
                // deleted): with one such webhook, no shared body would ever go again.
                // Bodies older than the cutoff and older than every finished delivery that
                // still shows its body go too when no pending delivery names them.
                sqlx::query::<Db>(&format!(
                    "DELETE FROM delivery_bodies WHERE created_at < $1 AND event_seq < COALESCE(\
                     (SELECT MIN(event_seq) FROM deliveries WHERE body_format IS NOT NULL AND status <> 'pending'), \
                     9223372036854775807) AND {}",
                    crate::store::common_delivery_log::unnamed_by_pending(<$store>::SINGLE_WRITER)
                ))
                .bind(cutoff)
                .execute(&mut *s.writer.acquire().await?).await?;
                Ok(a + d)
            }
        }
    };
}

pub(crate) use impl_delivery_log;
