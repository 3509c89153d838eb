//! One job, start to finish: check the lease, send, decide, hand the record to the
//! recorder, free the lane slot. Logs carry ids and outcomes, never bodies, URLs or
//! header values.

use std::sync::Arc;

use super::client::ErrorKind;
use super::engine::{DeliveryEngine, Inner};
use super::outcome::{self, Reply};
use super::send::send;
use super::worker::Endpoint;
use crate::store::DeliveryJob;
use crate::timefmt::now_ms;

/// Runs `job` (spawned by the engine), then starts whatever its lane slot frees up.
pub(crate) async fn run(inner: Arc<Inner>, job: DeliveryJob) {
    let (webhook, id) = (job.target.webhook_id, job.id);
    let endpoint = attempt(&inner, job).await;
    let finished = inner.signals.lanes.finish(webhook, id, endpoint);
    if finished.recovered {
        // Fan-out left its new deliveries to claims while it was silent: claim them now
        // rather than at the next poll.
        inner.signals.wake.notify_one();
    }
    DeliveryEngine::after_finish(&inner);
    if !finished.next.is_empty() {
        DeliveryEngine { inner }.submit_started(finished.next);
    }
}

/// Attempts `job` and records the outcome; says what the attempt learnt about the endpoint.
async fn attempt(inner: &Inner, job: DeliveryJob) -> Endpoint {
    if !inner.lease_ok(&job, now_ms()) {
        // Waited too long in its lane: give it back rather than risk an attempt that
        // outlives the lease (another node could then attempt it at the same time).
        tracing::debug!(delivery_id = %job.id, webhook_id = %job.target.webhook_id, "lease too short; released");
        inner.recorder.release(job.id, job.lease.token);
        return Endpoint::Untried;
    }
    let prepared = inner.prepared(&job.target);
    let sent = tokio::select! {
        () = inner.hard_stop.cancelled() => return Endpoint::Untried,
        sent = send(&inner.client, prepared.as_ref().as_ref().map_err(String::as_str), &job) => sent,
    };
    let number = u32::try_from(job.tries + 1).unwrap_or(u32::MAX);
    let decision = outcome::decide(&inner.policy, number, &sent, rand::random());
    let result = outcome::label(&decision);
    let ok = matches!(sent.status(), Some(200..=299));
    let (error_kind, endpoint) = match &sent.reply {
        // Nothing was sent (the webhook's headers or secret could not be prepared, the
        // target was refused): that says nothing about the endpoint.
        Reply::Failed(kind) if prepared.is_err() || matches!(kind, ErrorKind::Refused(_)) => {
            (Some(kind.as_str()), Endpoint::Untried)
        }
        Reply::Failed(kind) => (Some(kind.as_str()), Endpoint::Silent),
        Reply::Response(_) => (None, Endpoint::Answered),
    };
    inner.signals.metrics.attempt(
        job.tenant_id,
        job.target.webhook_id,
        result,
        ok,
        sent.duration_ms as f64 / 1000.0,
    );
    // Successes are routine (debug); retries are worth a line; give-ups a warning.
    macro_rules! log {
        ($level:expr) => {
            tracing::event!(
                $level,
                tenant_id = job.tenant_id,
                webhook_id = %job.target.webhook_id,
                delivery_id = %job.id,
                event_type = %job.event_type,
                attempt = job.attempts + 1,
                status = sent.status(),
                error_kind,
                duration_ms = sent.duration_ms,
                result,
                "delivery attempt"
            )
        };
    }
    match result {
        "succeeded" => log!(tracing::Level::DEBUG),
        "retry" => log!(tracing::Level::INFO),
        _ => log!(tracing::Level::WARN),
    }
    // A 410: the lane starts nothing more now (nor takes new jobs until that record is
    // written), and its queued jobs are given back in the batch that writes the record
    // disabling the webhook, after it. Given back on their
    // own (releases do not wait for room, records do), they could be written first,
    // claimed again while the webhook was still enabled, sent, answered 410 and failed
    // for good instead of waiting for the webhook to be enabled again.
    let mut dropped = Vec::new();
    if decision.disable_webhook {
        let jobs = inner.signals.lanes.drop_gone(job.target.webhook_id);
        dropped.extend(jobs.into_iter().map(|j| (j.id, j.lease.token)));
    }
    let record = outcome::record(&job, sent, &decision);
    inner.recorder.attempt_then_release(record, dropped).await;
    endpoint
}
