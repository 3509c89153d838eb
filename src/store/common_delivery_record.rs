//! The recorder's SQL, shared by both backends: one batch of finished attempts becomes a
//! multi-row attempt insert, one bulk delivery update (guarded by the lease, so a node that
//! lost its lease cannot overwrite the state another node set), and one status update per
//! webhook — all in the caller's transaction, so an attempt, its delivery's state and its
//! webhook's `lastExecution` are durable together.

use std::collections::HashMap;

use uuid::Uuid;

use super::{AttemptRecord, NextState};

/// What one batch changes on one webhook.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WebhookDelta {
    /// Most recent attempt's end time, status and error.
    pub last_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// A success in this batch restarts the failure streak.
    pub reset: bool,
    /// Deliveries that failed after the last success in this batch (or all of them).
    pub failures: i64,
    /// The first of those failures.
    pub first_failure_at: Option<i64>,
    /// A 410 asked for the webhook to be disabled.
    pub disable_reason: Option<String>,
}

/// Folds a batch into one delta per webhook, in attempt-completion order.
pub(crate) fn webhook_deltas(records: &[AttemptRecord]) -> HashMap<Uuid, WebhookDelta> {
    let mut order: Vec<&AttemptRecord> = records.iter().collect();
    order.sort_by_key(|r| r.started_at + r.duration_ms);
    let mut out: HashMap<Uuid, WebhookDelta> = HashMap::new();
    for r in order {
        let d = out.entry(r.webhook_id).or_default();
        let end = r.started_at + r.duration_ms;
        d.last_at = end;
        d.last_status = r.status_code;
        d.last_error = r.error.clone();
        if r.ok() {
            d.reset = true;
            d.failures = 0;
            d.first_failure_at = None;
        } else if r.tries == 1 {
            // The streak counts failed *deliveries*: a delivery counts once, when its
            // first attempt (of this round) fails; its retries neither add to the streak
            // nor break it.
            d.failures += 1;
            d.first_failure_at.get_or_insert(end);
        }
        if r.disable_reason.is_some() {
            d.disable_reason.clone_from(&r.disable_reason);
        }
    }
    out
}

/// The delivery's status column after `next`.
pub(crate) fn status_after(next: NextState) -> &'static str {
    match next {
        NextState::Retry { .. } => "pending",
        NextState::Succeeded => "succeeded",
        NextState::Failed => "failed",
    }
}

/// Expands the recorder's statements for one backend (used by `impl_delivery_store!`).
macro_rules! impl_delivery_record {
    ($store:ty, $db:ty) => {
        pub(crate) mod delivery_record {
            use crate::store::value_rows::leading_value_rows;
            use crate::store::common_delivery_record::{status_after, webhook_deltas};
            use crate::store::*;
            use sqlx::Row;
            use uuid::Uuid;

            type Db = $db;

            /// Rows per attempt insert and per delivery update: one statement (one round
            /// trip to the database) for a whole typical batch.
            const RECORD_CHUNK: usize = 128;
            /// A batch's last attempt (`v.column2`) is at least as recent as the
            /// webhook's recorded last execution.
            const NEWER: &str = "(last_execution_at IS NULL OR last_execution_at <= v.column2)";
            type Conn = <Db as sqlx::Database>::Connection;

            pub(crate) async fn insert_attempts(c: &mut Conn, records: &[AttemptRecord]) -> StoreResult<()> {
                for chunk in records.chunks(RECORD_CHUNK) {
                    let sql = format!(
                        "INSERT INTO delivery_attempts (delivery_id, number, started_at, duration_ms, request_headers, \
                         status_code, response_headers, response_body, response_truncated, error_kind, error, outcome) \
                         VALUES {}",
                        leading_value_rows::<Db>(chunk.len(), 12)
                    );
                    let mut q = sqlx::query::<Db>(&sql);
                    for r in chunk {
                        q = q
                            .bind(r.delivery_id.to_string()).bind(r.number).bind(r.started_at).bind(r.duration_ms)
                            .bind(r.request_headers.as_str()).bind(r.status_code).bind(r.response_headers.as_deref())
                            .bind(r.response_body.as_deref()).bind(r.response_truncated).bind(r.error_kind)
                            .bind(r.error.as_deref()).bind(r.outcome());
                    }
                    q.execute(&mut *c).await?;
                }
                Ok(())
            }

            pub(crate) async fn update_deliveries(c: &mut Conn, records: &[AttemptRecord], now: i64) -> StoreResult<()> {
                const COLS: usize = 9;
                for chunk in records.chunks(RECORD_CHUNK) {
                    let now_param = chunk.len() * COLS + 1;
                    let sql = format!(
                        "UPDATE deliveries SET status = v.column3, attempts = v.column4, tries = v.column5, \
                         next_attempt_at = v.column6, last_status_code = v.column7, last_error = v.column8, \
                         completed_at = v.column9, updated_at = ${now_param}, lease_token = NULL, lease_until = NULL \
                         FROM (VALUES {}) AS v \
                         WHERE deliveries.id = v.column1 AND deliveries.lease_token = v.column2 AND deliveries.status = 'pending'",
                        leading_value_rows::<Db>(chunk.len(), COLS)
                    );
                    let mut q = sqlx::query::<Db>(&sql);
                    for r in chunk {
                        let end = r.started_at + r.duration_ms;
                        let (next_at, completed) = match r.next {
                            NextState::Retry { at } => (at, None),
                            _ => (end, Some(end)),
                        };
                        q = q
                            .bind(r.delivery_id.to_string()).bind(r.lease_token.as_str()).bind(status_after(r.next))
                            .bind(r.number).bind(r.tries).bind(next_at).bind(r.status_code)
                            .bind(r.error.as_deref()).bind(completed);
                    }
                    q.bind(now).execute(&mut *c).await?;
                }
                Ok(())
            }

            /// Updates each webhook's `lastExecution` and failure streak; disables those
            /// that answered 410 or crossed the auto-disable thresholds. Returns the ids of
            /// webhooks disabled by this batch.
            pub(crate) async fn update_webhooks(c: &mut Conn, records: &[AttemptRecord], auto: AutoDisable, now: i64) -> StoreResult<Vec<Uuid>> {
                let mut disabled = Vec::new();
                // Every webhook's status in one statement: a batch touches up to a hundred
                // webhooks, and one round trip each held the rows (on SQLite the writer)
                // longer than the rest of the batch. With one writer there is no lock order
                // to keep. Otherwise the rows are first locked in id order by one statement
                // (it locks rows in the order it returns them; chunks follow the same
                // order), so the update finds them held and batches written at the same
                // time, on this node or another, cannot deadlock.
                let mut deltas: Vec<_> = webhook_deltas(records).into_iter().collect();
                deltas.sort_unstable_by_key(|(id, _)| *id);
                if !<$store>::SINGLE_WRITER {
                    for chunk in deltas.chunks(RECORD_CHUNK) {
                        let sql = format!(
                            "SELECT id FROM webhooks WHERE id IN ({}) ORDER BY id FOR NO KEY UPDATE",
                            crate::store::common::placeholders(1, chunk.len())
                        );
                        let mut q = sqlx::query::<Db>(&sql);
                        for (id, _) in chunk {
                            q = q.bind(id.to_string());
                        }
                        q.execute(&mut *c).await?;
                    }
                }
                // The last execution only moves forward: on PostgreSQL batches are written
                // in parallel, and one that commits after a newer one must not set the
                // webhook's status back to its older attempt's. Its failure streak errs on
                // the side of not disabling: a late batch's failures do not count (they
                // may predate a success already recorded, and counting them could disable
                // a webhook that answers again), while a late success still ends the
                // streak, as any 2xx does. The rule is approximate for a batch whose
                // attempts straddle another batch's; only a success's time would make it
                // exact.
                //
                // The streak's start: a success restarts it at the first failure after it
                // (none: no streak); without one it keeps its start, or starts at this
                // batch's first failure. A batch of failed retries alone (no first
                // attempts: none counts) leaves it as it is; it used to clear it, so a dead
                // endpoint seen mostly through retries kept restarting its "failing for"
                // span and was never disabled by the time threshold.
                for chunk in deltas.chunks(RECORD_CHUNK) {
                    let sql = format!(
                        "UPDATE webhooks SET \
                         last_execution_at = CASE WHEN {NEWER} THEN v.column2 ELSE last_execution_at END, \
                         last_status_code = CASE WHEN {NEWER} THEN v.column3 ELSE last_status_code END, \
                         last_error = CASE WHEN {NEWER} THEN v.column4 ELSE last_error END, \
                         consecutive_failures = CASE WHEN v.column5 AND NOT {NEWER} THEN 0 \
                         WHEN v.column5 THEN v.column6 WHEN NOT {NEWER} THEN consecutive_failures \
                         ELSE consecutive_failures + v.column6 END, \
                         failing_since = CASE WHEN v.column5 AND NOT {NEWER} THEN NULL \
                         WHEN v.column5 THEN v.column7 WHEN NOT {NEWER} THEN failing_since \
                         ELSE COALESCE(failing_since, v.column7) END \
                         FROM (VALUES {}) AS v WHERE webhooks.id = v.column1",
                        leading_value_rows::<Db>(chunk.len(), 7)
                    );
                    let mut q = sqlx::query::<Db>(&sql);
                    for (id, d) in chunk {
                        q = q
                            .bind(id.to_string()).bind(d.last_at).bind(d.last_status).bind(d.last_error.as_deref())
                            .bind(d.reset).bind(d.failures).bind(d.first_failure_at);
                    }
                    q.execute(&mut *c).await?;
                }
                for (id, d) in deltas {
                    let row = if let Some(reason) = &d.disable_reason {
                        sqlx::query::<Db>(
                            "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2 WHERE id = $1 AND enabled RETURNING id",
                        )
                        .bind(id.to_string()).bind(reason.as_str())
                        .fetch_optional(&mut *c)
                        .await?
                    } else if d.failures > 0 || !d.reset {
                        // Checked whenever the batch ended the webhook's attempts failing,
                        // retries included: the streak's span grows while its retries keep
                        // failing, and a webhook whose last new delivery failed before the
                        // span reached its threshold would otherwise never be disabled.
                        let reason = format!(
                            "disabled automatically: at least {} deliveries in a row failed over more than {}; \
                             fix the receiver, then enable the webhook again",
                            auto.failures,
                            crate::delivery::outcome::human_duration(auto.after_ms),
                        );
                        sqlx::query::<Db>(
                            "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2 WHERE id = $1 AND enabled \
                             AND consecutive_failures >= $3 AND failing_since <= $4 RETURNING id",
                        )
                        .bind(id.to_string()).bind(reason).bind(auto.failures).bind(now - auto.after_ms)
                        .fetch_optional(&mut *c)
                        .await?
                    } else {
                        None
                    };
                    if row.map(|r| r.try_get::<String, _>("id")).transpose()?.is_some() {
                        disabled.push(id);
                    }
                }
                Ok(disabled)
            }
        }
    };
}

pub(crate) use impl_delivery_record;

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(webhook: Uuid, at: i64, status: Option<i64>) -> AttemptRecord {
        AttemptRecord::sample(webhook, at, status)
    }

    #[test]
    fn a_success_restarts_the_streak_and_later_failures_count_from_it() {
        let w = Uuid::new_v4();
        let batch = [
            rec(w, 30, Some(500)),
            rec(w, 10, Some(500)),
            rec(w, 20, Some(200)),
        ];
        let d = &webhook_deltas(&batch)[&w];
        assert!(d.reset);
        assert_eq!((d.failures, d.first_failure_at), (1, Some(31)));
        assert_eq!((d.last_at, d.last_status), (31, Some(500)));
    }

    #[test]
    fn failures_only_extend_the_streak() {
        let w = Uuid::new_v4();
        let batch = [rec(w, 10, None), rec(w, 20, Some(503))];
        let d = &webhook_deltas(&batch)[&w];
        assert!(!d.reset);
        assert_eq!((d.failures, d.first_failure_at), (2, Some(11)));
    }

    #[test]
    fn a_delivery_counts_once_however_often_it_is_retried() {
        let w = Uuid::new_v4();
        let retry = |at| AttemptRecord {
            tries: 2,
            ..rec(w, at, Some(500))
        };
        let batch = [rec(w, 10, Some(500)), retry(20), retry(30)];
        let d = &webhook_deltas(&batch)[&w];
        assert_eq!((d.failures, d.last_at), (1, 31));
        // A retry failing alone neither counts nor breaks the streak.
        let d = &webhook_deltas(&[retry(40)])[&w];
        assert_eq!((d.reset, d.failures, d.last_status), (false, 0, Some(500)));
    }
}
