//! The recorder's SQL, shared by both backends: one batch of finished attempts becomes a
//! multi-row attempt insert, one bulk delivery update (guarded by the lease, so a node that
//! lost its lease cannot overwrite the state another node set), and one status update per
//! webhook — all in the caller's transaction, so an attempt, its delivery's state and its
//! webhook's `lastExecution` are durable together.

use std::collections::HashMap;

use uuid::Uuid;

use super::value_rows::{power_of_two_chunks, Val};
use super::{AttemptRecord, AutoDisable, NextState, StoreResult};

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

/// What the recorder's statements need from a database: sqlx's connection (PostgreSQL,
/// `impl_delivery_record!`) or SQLite's synchronous writer (`sqlite/sync_writer.rs`). The
/// statements themselves are written once, below.
#[allow(async_fn_in_trait)]
pub(crate) trait RecordStatements {
    /// Every write goes through one connection (SQLite): rows need no locks.
    const SINGLE_WRITER: bool;

    /// Cut batches into power-of-two chunks (`value_rows::power_of_two_chunks`) rather
    /// than fixed ones with a remainder of any length. SQLite's writer keeps its
    /// statements prepared (`group_commit.rs`), and runs them in-process: a few more
    /// statements per batch cost less there than parsing a new shape whenever the cache
    /// let it go. Over a network (PostgreSQL) each chunk is one more round trip.
    const FEW_SHAPES: bool;

    /// `rows` groups of `cols` placeholders, for a statement whose first parameters they
    /// are, in the style the database binds fastest (`value_rows::leading_value_rows`).
    fn value_rows(rows: usize, cols: usize) -> std::sync::Arc<str>;

    /// Runs `sql` (one statement) with `vals` bound in order; returns how many rows it
    /// changed. On SQLite's writer the statement must return no rows.
    async fn run(&mut self, sql: &str, vals: &[Val<'_>]) -> StoreResult<u64>;

    /// Runs `sql` (`… RETURNING`) with `vals` bound in order; whether it returned a row.
    async fn returned_row(&mut self, sql: &str, vals: &[Val<'_>]) -> StoreResult<bool>;
}

/// Rows per attempt insert and per delivery update: one statement (one round trip to the
/// database) for a whole typical batch.
const RECORD_CHUNK: usize = 128;

/// Leases per release statement (two values each).
const RELEASE_CHUNK: usize = 200;

/// `items` in the chunks of at most `max` that `S` writes one statement each.
fn chunks<S: RecordStatements, T: Sync>(
    items: &[T],
    max: usize,
) -> Box<dyn Iterator<Item = &[T]> + Send + '_> {
    if S::FEW_SHAPES {
        Box::new(power_of_two_chunks(items, max))
    } else {
        Box::new(items.chunks(max))
    }
}

/// A batch's last attempt (`v.column2`) is at least as recent as the webhook's recorded
/// last execution.
const NEWER: &str = "(last_execution_at IS NULL OR last_execution_at <= v.column2)";

/// Writes a batch of finished attempts, their deliveries' new states and their webhooks'
/// status, in the caller's transaction; returns the webhooks the batch disabled.
pub(crate) async fn record(
    s: &mut impl RecordStatements,
    records: &[AttemptRecord],
    auto: AutoDisable,
    now: i64,
) -> StoreResult<Vec<Uuid>> {
    insert_attempts(s, records).await?;
    update_deliveries(s, records, now).await?;
    update_webhooks(s, records, auto, now).await
}

async fn insert_attempts<S: RecordStatements>(s: &mut S, records: &[AttemptRecord]) -> StoreResult<()> {
    for chunk in chunks::<S, _>(records, RECORD_CHUNK) {
        let sql = format!(
            "INSERT INTO delivery_attempts (delivery_id, number, started_at, duration_ms, request_headers, \
             status_code, response_headers, response_body, response_truncated, error_kind, error, outcome) \
             VALUES {}",
            S::value_rows(chunk.len(), 12)
        );
        let vals: Vec<Val<'_>> = chunk
            .iter()
            .flat_map(|r| {
                [
                    Val::Owned(r.delivery_id.to_string()),
                    Val::Int(Some(r.number)),
                    Val::Int(Some(r.started_at)),
                    Val::Int(Some(r.duration_ms)),
                    Val::Text(Some(r.request_headers.as_str())),
                    Val::Int(r.status_code),
                    Val::Text(r.response_headers.as_deref()),
                    Val::Bytes(r.response_body.as_deref()),
                    Val::Bool(r.response_truncated),
                    Val::Text(r.error_kind),
                    Val::Text(r.error.as_deref()),
                    Val::Text(Some(r.outcome())),
                ]
            })
            .collect();
        s.run(&sql, &vals).await?;
    }
    Ok(())
}

async fn update_deliveries<S: RecordStatements>(
    s: &mut S,
    records: &[AttemptRecord],
    now: i64,
) -> StoreResult<()> {
    const COLS: usize = 9;
    for chunk in chunks::<S, _>(records, RECORD_CHUNK) {
        let now_param = chunk.len() * COLS + 1;
        let sql = format!(
            "UPDATE deliveries SET status = v.column3, attempts = v.column4, tries = v.column5, \
             next_attempt_at = v.column6, last_status_code = v.column7, last_error = v.column8, \
             completed_at = v.column9, updated_at = ${now_param}, lease_token = NULL, lease_until = NULL \
             FROM (VALUES {}) AS v \
             WHERE deliveries.id = v.column1 AND deliveries.lease_token = v.column2 AND deliveries.status = 'pending'",
            S::value_rows(chunk.len(), COLS)
        );
        let mut vals: Vec<Val<'_>> = chunk
            .iter()
            .flat_map(|r| {
                let end = r.started_at + r.duration_ms;
                let (next_at, completed) = match r.next {
                    NextState::Retry { at } => (at, None),
                    _ => (end, Some(end)),
                };
                [
                    Val::Owned(r.delivery_id.to_string()),
                    Val::Text(Some(r.lease_token.as_str())),
                    Val::Text(Some(status_after(r.next))),
                    Val::Int(Some(r.number)),
                    Val::Int(Some(r.tries)),
                    Val::Int(Some(next_at)),
                    Val::Int(r.status_code),
                    Val::Text(r.error.as_deref()),
                    Val::Int(completed),
                ]
            })
            .collect();
        vals.push(Val::Int(Some(now)));
        s.run(&sql, &vals).await?;
    }
    Ok(())
}

/// Updates each webhook's `lastExecution` and failure streak; disables those that
/// answered 410 or crossed the auto-disable thresholds. Returns the ids of webhooks
/// disabled by this batch.
async fn update_webhooks<S: RecordStatements>(
    s: &mut S,
    records: &[AttemptRecord],
    auto: AutoDisable,
    now: i64,
) -> StoreResult<Vec<Uuid>> {
    let mut disabled = Vec::new();
    // Every webhook's status in one statement: a batch touches up to a hundred webhooks,
    // and one round trip each held the rows (on SQLite the writer) longer than the rest of
    // the batch. With one writer there is no lock order to keep. Otherwise the rows are
    // first locked in id order by one statement (it locks rows in the order it returns
    // them; chunks follow the same order), so the update finds them held and batches
    // written at the same time, on this node or another, cannot deadlock over them. A
    // disable below also raises its tenant's `webhooks_version` (a trigger, migration
    // 0009), locking tenant rows in webhook order: two batches disabling webhooks of the
    // same two tenants in opposite orders at the same moment can deadlock, and PostgreSQL
    // then fails one, which the recorder writes again. Disables are rare; locking tenant
    // rows up front would hold them for every batch with a failure.
    let mut deltas: Vec<_> = webhook_deltas(records).into_iter().collect();
    deltas.sort_unstable_by_key(|(id, _)| *id);
    if !S::SINGLE_WRITER {
        for chunk in deltas.chunks(RECORD_CHUNK) {
            let sql = format!(
                "SELECT id FROM webhooks WHERE id IN ({}) ORDER BY id FOR NO KEY UPDATE",
                super::common::placeholders(1, chunk.len())
            );
            let vals: Vec<Val<'_>> = chunk.iter().map(|(id, _)| Val::Owned(id.to_string())).collect();
            s.run(&sql, &vals).await?;
        }
    }
    // The last execution only moves forward: on PostgreSQL batches are written in
    // parallel, and one that commits after a newer one must not set the webhook's status
    // back to its older attempt's. Its failure streak errs on the side of not disabling: a
    // late batch's failures do not count (they may predate a success already recorded, and
    // counting them could disable a webhook that answers again), while a late success
    // still ends the streak, as any 2xx does. The rule is approximate for a batch whose
    // attempts straddle another batch's; only a success's time would make it exact.
    //
    // The streak's start: a success restarts it at the first failure after it (none: no
    // streak); without one it keeps its start, or starts at this batch's first failure. A
    // batch of failed retries alone (no first attempts: none counts) leaves it as it is; it
    // used to clear it, so a dead endpoint seen mostly through retries kept restarting its
    // "failing for" span and was never disabled by the time threshold.
    for chunk in chunks::<S, _>(&deltas, RECORD_CHUNK) {
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
            S::value_rows(chunk.len(), 7)
        );
        let vals: Vec<Val<'_>> = chunk
            .iter()
            .flat_map(|(id, d)| {
                [
                    Val::Owned(id.to_string()),
                    Val::Int(Some(d.last_at)),
                    Val::Int(d.last_status),
                    Val::Text(d.last_error.as_deref()),
                    Val::Bool(d.reset),
                    Val::Int(Some(d.failures)),
                    Val::Int(d.first_failure_at),
                ]
            })
            .collect();
        s.run(&sql, &vals).await?;
    }
    for (id, d) in deltas {
        let disabled_now = if let Some(reason) = &d.disable_reason {
            s.returned_row(
                "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2 WHERE id = $1 AND enabled RETURNING id",
                &[Val::Owned(id.to_string()), Val::Text(Some(reason.as_str()))],
            )
            .await?
        } else if d.failures > 0 || !d.reset {
            // Checked whenever the batch ended the webhook's attempts failing, retries
            // included: the streak's span grows while its retries keep failing, and a
            // webhook whose last new delivery failed before the span reached its threshold
            // would otherwise never be disabled.
            let reason = format!(
                "disabled automatically: at least {} deliveries in a row failed over more than {}; \
                 fix the receiver, then enable the webhook again",
                auto.failures,
                crate::delivery::outcome::human_duration(auto.after_ms),
            );
            s.returned_row(
                "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2 WHERE id = $1 AND enabled \
                 AND consecutive_failures >= $3 AND failing_since <= $4 RETURNING id",
                &[
                    Val::Owned(id.to_string()),
                    Val::Text(Some(reason.as_str())),
                    Val::Int(Some(auto.failures)),
                    Val::Int(Some(now - auto.after_ms)),
                ],
            )
            .await?
        } else {
            false
        };
        if disabled_now {
            disabled.push(id);
        }
    }
    Ok(disabled)
}

/// Gives `leases` back (rows whose lease token still matches); returns how many rows were
/// released.
pub(crate) async fn release<S: RecordStatements>(s: &mut S, leases: &[(Uuid, String)]) -> StoreResult<u64> {
    let mut n = 0;
    for chunk in chunks::<S, _>(leases, RELEASE_CHUNK) {
        let sql = format!(
            "UPDATE deliveries SET lease_token = NULL, lease_until = NULL FROM (VALUES {}) AS v \
             WHERE deliveries.id = v.column1 AND deliveries.lease_token = v.column2",
            S::value_rows(chunk.len(), 2)
        );
        let vals: Vec<Val<'_>> = chunk
            .iter()
            .flat_map(|(id, token)| [Val::Owned(id.to_string()), Val::Text(Some(token.as_str()))])
            .collect();
        n += s.run(&sql, &vals).await?;
    }
    Ok(n)
}

/// Expands the sqlx [`RecordStatements`] for one backend (used by `impl_delivery_store!`).
macro_rules! impl_delivery_record {
    ($store:ty, $db:ty) => {
        pub(crate) mod delivery_record {
            use crate::store::common_delivery_record::RecordStatements;
            use crate::store::value_rows::{bind_val_refs, leading_value_rows, Val};
            use crate::store::*;

            type Db = $db;
            type Conn = <Db as sqlx::Database>::Connection;

            /// The recorder's statements on one sqlx connection (or transaction).
            pub(crate) struct SqlxStatements<'c>(pub(crate) &'c mut Conn);

            impl RecordStatements for SqlxStatements<'_> {
                const SINGLE_WRITER: bool = <$store>::SINGLE_WRITER;
                const FEW_SHAPES: bool = false;

                fn value_rows(rows: usize, cols: usize) -> std::sync::Arc<str> {
                    leading_value_rows::<Db>(rows, cols)
                }

                async fn run(&mut self, sql: &str, vals: &[Val<'_>]) -> StoreResult<u64> {
                    Ok(bind_val_refs(sqlx::query::<Db>(sql), vals)
                        .execute(&mut *self.0)
                        .await?
                        .rows_affected())
                }

                async fn returned_row(&mut self, sql: &str, vals: &[Val<'_>]) -> StoreResult<bool> {
                    Ok(bind_val_refs(sqlx::query::<Db>(sql), vals)
                        .fetch_optional(&mut *self.0)
                        .await?
                        .is_some())
                }
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
