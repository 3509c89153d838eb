//! Delivery SQL shared by both backends: claims, outcome recording, the delivery log and
//! redelivery (fan-out inserts are in `common_fanout.rs`). Expanded per pool type like
//! `common.rs`. Only the claim statement
//! (`FOR UPDATE SKIP LOCKED` vs SQLite's single writer) and `LISTEN/NOTIFY` differ; each
//! backend file provides those (`claim_sql`, `notify_work`, `listen`).
//!
//! Everything on the hot path is batched: fan-out inserts all of an event's deliveries in
//! one multi-row `INSERT`, and the recorder writes a whole batch of attempts, delivery state
//! changes and webhook status updates in one transaction.

use super::common::placeholders;

/// Columns a claim returns (read by `claim_due`).
pub(crate) const CLAIM_RETURNING: &str =
    "id, tenant_id, webhook_id, event_type, body, body_format, event_seq, headers, attempts, tries";

/// Where a claim looks for rows: free rows (never leased, given back, or due for a retry)
/// and rows whose lease expired (their node stopped or died).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimSource {
    /// `lease_until IS NULL`, oldest due first (`deliveries_due`).
    Free,
    /// `lease_until < now`, longest expired first (`deliveries_leased`).
    Expired,
}

/// How a backend reads a list of webhook ids bound as one parameter, a JSON array of
/// strings ([`id_list_param`]): `ids(n)` is a sub-select of the ids bound as `$n`.
pub(crate) type IdList = fn(usize) -> String;

/// Longest list of webhook ids a claim binds one parameter per id; a longer one is bound as
/// one JSON array. Why not always one: a claim behind an endpoint that stopped answering
/// steps over thousands of its rows, and with the sub-select `slow-endpoint` ran 13 %
/// slower (BENCHMARKS.md, run AW) — most likely SQLite then tests the term after reading
/// each table row instead of on the index entry. Why not always one per id: a node with tens of thousands of
/// saturated or silent webhooks would bind more than a statement may have (SQLite
/// 32,766, PostgreSQL 65,535) and every claim would fail.
pub const INLINE_IDS: usize = 256;

/// Whether a list of `n` webhook ids is bound one parameter per id (else as one JSON
/// array): the one test both [`id_list`] (numbering) and `claim_due` (binding) use.
pub(crate) fn bound_per_id(n: usize) -> bool {
    n <= INLINE_IDS
}

/// The SQL for a list of `n` webhook ids bound from `$start` (see [`INLINE_IDS`]), and how
/// many parameters it takes.
pub(crate) fn id_list(start: usize, n: usize, json: IdList) -> (String, usize) {
    if bound_per_id(n) {
        (placeholders(start, n), n)
    } else {
        (json(start), 1)
    }
}

/// One source's claim candidates: seq, webhook and due time of at most `$4 * 4` due rows
/// of enabled webhooks, none of the webhooks `excluded` lists (SQL from [`id_list`], empty
/// for none), whose entity has no earlier pending delivery; `lock` is appended
/// (PostgreSQL's `FOR UPDATE … SKIP LOCKED`). Binds: `$3` now, `$4` limit, from `$6` the
/// excluded ids (one parameter each, or one JSON array).
///
/// Why two sources: each matches one partial index exactly, so a claim reads only rows it
/// may take. One condition over both (`lease_until IS NULL OR lease_until < now`) walked
/// every pending row in due order, including the thousands held by workers.
pub(crate) fn claim_candidates(source: ClaimSource, excluded: &str, lock: &str) -> String {
    let exclude = match excluded {
        "" => String::new(),
        list => format!(" AND d.webhook_id NOT IN ({list})"),
    };
    let (held, order) = match source {
        ClaimSource::Free => ("d.lease_until IS NULL", "d.next_attempt_at"),
        ClaimSource::Expired => (
            "d.lease_until IS NOT NULL AND d.lease_until < $3",
            "d.lease_until",
        ),
    };
    format!(
        "SELECT d.seq, d.webhook_id, d.next_attempt_at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND {held} AND d.next_attempt_at <= $3 AND w.enabled{exclude} \
         AND (d.entity_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.webhook_id = d.webhook_id \
         AND e.entity_key = d.entity_key AND e.status = 'pending' AND e.event_seq < d.event_seq)) \
         ORDER BY {order} LIMIT $4 * 4{lock}"
    )
}

/// The chosen rows' filter over `ranked` (which has `webhook_id` and its `rn` within its
/// webhook): at most `$5` of any webhook, and one of each webhook `one_each` lists (SQL
/// from [`id_list`], empty for none). Why one: a webhook whose endpoint stopped answering
/// runs one attempt per request timeout, so more rows than that would wait in its lane
/// until their leases ran short and were given back, a write each.
pub(crate) fn claim_chosen_filter(one_each: &str) -> String {
    match one_each {
        "" => "rn <= $5".to_owned(),
        list => format!("rn <= $5 AND (rn = 1 OR webhook_id NOT IN ({list}))"),
    }
}

/// The claim's two id lists as SQL, numbered from `$6` as `claim_due` binds them.
pub(crate) fn claim_id_lists(exclude: usize, one_each: usize, json: IdList) -> (String, String) {
    let (excluded, used) = id_list(6, exclude, json);
    let (one, _) = id_list(6 + used, one_each, json);
    (excluded, one)
}

/// `ids` as the one parameter [`IdList`] reads: a JSON array of their strings.
pub(crate) fn id_list_param(ids: &[uuid::Uuid]) -> String {
    // Uuids serialise as their hyphenated lowercase strings, as `to_string` gives them;
    // a list of strings cannot fail to serialise (no maps, no custom serialisers).
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

/// `cancel_pending`'s statements, free rows then held ones (each matches one partial
/// index). Binds: `$1` tenant, `$2` webhook id or `NULL` for all of the tenant's.
pub(crate) fn cancel_pending_sql() -> [String; 2] {
    ["lease_until IS NULL", "lease_until IS NOT NULL"].map(|held| {
        format!(
            "UPDATE deliveries SET status = 'cancelled', lease_token = NULL, lease_until = NULL \
             WHERE tenant_id = $1 AND ($2 IS NULL OR webhook_id = $2) AND status = 'pending' AND {held}"
        )
    })
}

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
            use crate::store::common::{corrupt, parse_uuid};
            use crate::store::common::placeholders;
            use crate::store::value_rows::{bind_vals, leading_value_rows, Val};
            use crate::store::*;
            use async_trait::async_trait;
            use sqlx::Row;
            use uuid::Uuid;

            type Db = $db;
            type Conn = <Db as sqlx::Database>::Connection;

            use crate::store::row_decode::{subscriber_from_row, target_from_row, TARGET_COLUMNS};

            crate::store::common_fanout::fanout_fns!($store);
            crate::store::common_event_tail::event_tail_fns!($store);

            /// Writes a batch of finished attempts, their deliveries' new states and their
            /// webhooks' status on `c`, in the caller's transaction (the backend's
            /// `write_attempts` decides which); returns the webhooks the batch disabled.
            #[allow(dead_code)] // SQLite's are written by its synchronous writer.
            pub(crate) async fn record_in(c: &mut Conn, store: &$store, records: &[AttemptRecord], auto: AutoDisable, now: i64) -> StoreResult<Vec<Uuid>> {
                let mut s = super::delivery_record::SqlxStatements(&mut *c);
                let disabled = crate::store::common_delivery_record::record(&mut s, records, auto, now).await?;
                if !disabled.is_empty() {
                    store.forget_subscribers();
                    // Other nodes drop their queued jobs of these webhooks too (this
                    // node's engine does when the batch is written).
                    store.notify_forget(&mut *c, &disabled).await?;
                }
                Ok(disabled)
            }

            /// Gives `leases` back on `c`, in the caller's transaction (the backend's
            /// `write_releases` decides which), and tells other nodes there is work;
            /// returns how many rows were released.
            #[allow(dead_code)] // SQLite's are written by its synchronous writer.
            pub(crate) async fn release_in(c: &mut Conn, store: &$store, leases: &[(Uuid, String)]) -> StoreResult<u64> {
                let n = crate::store::common_delivery_record::release(&mut super::delivery_record::SqlxStatements(&mut *c), leases).await?;
                if n > 0 {
                    store.notify_work(&mut *c).await?;
                }
                Ok(n)
            }

            /// Cancels the pending deliveries of one webhook (or of every webhook of the
            /// tenant), in the caller's transaction: their webhook is being deleted.
            ///
            /// Free and held rows apart: each statement then reads one partial index
            /// (`deliveries_due`, `deliveries_leased`) instead of the whole table.
            pub(crate) async fn cancel_pending(c: &mut Conn, tenant_id: i64, webhook_id: Option<Uuid>) -> StoreResult<()> {
                for sql in crate::store::common_delivery::cancel_pending_sql() {
                    sqlx::query::<Db>(&sql)
                        .bind(tenant_id)
                        .bind(webhook_id.map(|w| w.to_string()))
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            }

            #[async_trait]
            impl DeliveryStore for $store {
                fn hub(&self) -> &Arc<DeliveryHub> {
                    &self.hub
                }

                async fn claim_due(&self, req: &ClaimRequest) -> StoreResult<Vec<DeliveryJob>> {
                    let sql = Self::claim_sql(req.exclude.len(), req.one_each.len());
                    let mut q = sqlx::query::<Db>(&sql)
                        .bind(&req.token).bind(req.lease_until).bind(req.now).bind(req.limit).bind(req.per_webhook);
                    // As `claim_id_lists` numbers them: one parameter per id, or one in all.
                    for list in [&req.exclude, &req.one_each] {
                        if crate::store::common_delivery::bound_per_id(list.len()) {
                            for id in list.iter() {
                                q = q.bind(id.to_string());
                            }
                        } else {
                            q = q.bind(crate::store::common_delivery::id_list_param(list));
                        }
                    }
                    let rows = q.fetch_all(&mut *self.writer.acquire().await?).await?;
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
                    // Rows made by fan-out name their event's shared body instead of a copy.
                    let shared = super::delivery_log::shared_bodies(&self.pool, &rows).await?;
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
                        // A row whose body cannot be had must not stop the claim (it would be
                        // claimed again and again): it goes out empty, and says so.
                        let body = match super::delivery_log::body_from_row(r, &shared, webhook_id, id) {
                            Ok(body) => Bytes::from(body.unwrap_or_default()),
                            Err(e) => {
                                tracing::error!(delivery_id = %id, error = %e, "sending an empty body");
                                Bytes::new()
                            }
                        };
                        jobs.push(DeliveryJob {
                            id,
                            tenant_id: r.try_get("tenant_id")?,
                            event_type: r.try_get("event_type")?,
                            body,
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

                async fn record_attempts(&self, records: Arc<[AttemptRecord]>, auto: AutoDisable, now: i64) -> StoreResult<Vec<Uuid>> {
                    if records.is_empty() {
                        return Ok(Vec::new());
                    }
                    self.write_attempts(records, auto, now).await
                }

                async fn release_leases(&self, leases: &[(Uuid, String)]) -> StoreResult<u64> {
                    if leases.is_empty() {
                        return Ok(0);
                    }
                    self.write_releases(leases).await
                }

                async fn settle_hand_offs(&self) -> StoreResult<()> {
                    if <$store>::SINGLE_WRITER {
                        // An empty write through the writer task: it runs after the batch
                        // in progress, whose hand-off ends that batch.
                        self.write_releases(&[]).await?;
                    }
                    Ok(())
                }

                async fn listen_for_work(
                    &self,
                    wake: Arc<tokio::sync::Notify>,
                    forget: crate::store::ForgetWebhook,
                    stop: tokio_util::sync::CancellationToken,
                ) {
                    self.listen(wake, forget, stop).await
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
                    // Leased even to a full or silent lane (no webhook asked about): the
                    // admin waits for the ping's outcome, typically right after fixing the
                    // endpoint, and left to a claim it would queue behind the webhook's
                    // earlier deliveries. A full lane gives it back, claimed at the next poll.
                    let lease = self.hub.fresh_lease(now, &mut std::iter::empty());
                    let rows = rows_to_insert(&[sub], vec![planned], lease.as_ref())?;
                    let (jobs, _) = write_rows(&mut tx, self, rows, &[], tenant_id, event, now).await?;
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
    use super::{claim_id_lists, id_list_param, IdList, INLINE_IDS};
    use uuid::Uuid;

    const JSON: IdList = |n| format!("json(${n})");

    /// Short lists get a parameter per id, numbered on from `$6`; a long one takes one
    /// parameter (and the list after it is numbered from there).
    #[test]
    fn claim_id_lists_number_their_parameters_in_bind_order() {
        assert_eq!(claim_id_lists(0, 0, JSON), (String::new(), String::new()));
        assert_eq!(claim_id_lists(2, 1, JSON), ("$6, $7".into(), "$8".into()));
        let long = INLINE_IDS + 1;
        assert_eq!(
            claim_id_lists(long, 2, JSON),
            ("json($6)".into(), "$7, $8".into())
        );
        assert_eq!(claim_id_lists(1, long, JSON), ("$6".into(), "json($7)".into()));
        let (all, _) = claim_id_lists(INLINE_IDS, 0, JSON);
        assert!(all.ends_with(&format!("${}", 5 + INLINE_IDS)), "{all}");
    }

    /// The list reads back, in order, as the JSON array of the ids' hyphenated strings
    /// that `json_each` and `json_array_elements_text` take apart.
    #[test]
    fn an_id_list_is_a_json_array_of_the_ids() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let read: Vec<String> = serde_json::from_str(&id_list_param(&ids)).unwrap();
        assert_eq!(read, ids.iter().map(Uuid::to_string).collect::<Vec<_>>());
        assert_eq!(id_list_param(&[]), "[]");
    }
}
