//! From "what the receiver did" to "what happens next", pure: an attempt's result becomes a
//! retry decision (through [`crate::domain::retry::next_attempt`]) and then the
//! [`AttemptRecord`] the recorder writes. Outcomes are values; nothing here fails.

use time::OffsetDateTime;

use super::client::{CappedBody, ErrorKind};
use crate::domain::retry::{
    next_attempt, Attempt, AttemptOutcome, Decision, GiveUpReason, Next, RetryPolicy,
};
use crate::store::{AttemptRecord, DeliveryJob, NextState};
use crate::timefmt::{from_ms, rfc3339_ms};

/// What came back from one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The receiver answered.
    Response(Response),
    /// No usable response.
    Failed(ErrorKind),
}

/// A receiver's answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Response headers as text (lossy), in order.
    pub headers: Vec<(String, String)>,
    /// The first 64 KiB of the body.
    pub body: CappedBody,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One attempt as made.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Start, epoch ms.
    pub started_at: i64,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Request headers as sent, secured and signature values masked (JSON).
    pub request_headers: String,
    /// What came back.
    pub reply: Reply,
}

impl Sent {
    /// The HTTP status, if a response arrived.
    pub fn status(&self) -> Option<u16> {
        match &self.reply {
            Reply::Response(r) => Some(r.status),
            Reply::Failed(_) => None,
        }
    }

    fn outcome(&self) -> AttemptOutcome {
        match &self.reply {
            Reply::Response(r) => AttemptOutcome::Status(r.status),
            Reply::Failed(kind) => AttemptOutcome::Network(kind.failure()),
        }
    }

    /// A human explanation of a failure that the status code alone does not tell.
    fn explanation(&self) -> Option<String> {
        match &self.reply {
            Reply::Failed(kind) => Some(kind.to_string()),
            Reply::Response(r) if (300..400).contains(&r.status) => Some(match r.header("location") {
                Some(to) => format!("redirect to {} not followed", truncate(to, 200)),
                None => "redirect not followed".to_owned(),
            }),
            Reply::Response(_) => None,
        }
    }
}

/// Applies the retry rules to one attempt. `number` is the attempt's number within the
/// current round (1 for the first try, or the first try after a redelivery).
pub fn decide(policy: &RetryPolicy, number: u32, sent: &Sent, random: f64) -> Decision {
    let retry_after = match &sent.reply {
        Reply::Response(r) => r.header("retry-after"),
        Reply::Failed(_) => None,
    };
    let attempt = Attempt {
        number,
        outcome: sent.outcome(),
        retry_after,
    };
    next_attempt(
        policy,
        &attempt,
        from_ms(sent.started_at + sent.duration_ms),
        random,
    )
}

/// The record of `sent` for `job`, given the decision.
pub fn record(job: &DeliveryJob, sent: Sent, decision: &Decision) -> AttemptRecord {
    let end = sent.started_at + sent.duration_ms;
    let explanation = sent.explanation();
    let (next, give_up) = match decision.next {
        Next::Done => (NextState::Succeeded, None),
        Next::RetryAt(at) => (
            NextState::Retry {
                at: to_ms(at).max(end),
            },
            None,
        ),
        Next::GiveUp(reason) => (NextState::Failed, Some(reason)),
    };
    let error = match (explanation, give_up) {
        (Some(e), Some(r)) => Some(format!("{e}; {r}")),
        (Some(e), None) => Some(e),
        (None, Some(r)) => Some(r.to_string()),
        (None, None) => None,
    };
    let disable_reason = decision.disable_webhook.then(|| {
        format!(
            "the receiver answered 410 Gone at {}; enable the webhook again once the endpoint exists",
            rfc3339_ms(end)
        )
    });
    let (status, error_kind, response_headers, body, truncated) = match sent.reply {
        Reply::Response(r) => (
            Some(i64::from(r.status)),
            r.body.error.as_ref().map(ErrorKind::as_str),
            serde_json::to_string(&r.headers).ok(),
            Some(r.body.bytes),
            r.body.truncated,
        ),
        Reply::Failed(kind) => (None, Some(kind.as_str()), None, None, false),
    };
    AttemptRecord {
        delivery_id: job.id,
        webhook_id: job.target.webhook_id,
        lease_token: job.lease.token.clone(),
        number: job.attempts + 1,
        tries: job.tries + 1,
        started_at: sent.started_at,
        duration_ms: sent.duration_ms,
        request_headers: sent.request_headers,
        status_code: status,
        response_headers,
        response_body: body,
        response_truncated: truncated,
        error_kind,
        error,
        next,
        disable_reason,
    }
}

/// Metric label for an attempt's verdict.
pub fn label(decision: &Decision) -> &'static str {
    match decision.next {
        Next::Done => "succeeded",
        Next::RetryAt(_) => "retry",
        Next::GiveUp(GiveUpReason::Gone) => "gone",
        Next::GiveUp(GiveUpReason::RefusedByPolicy) => "refused",
        Next::GiveUp(GiveUpReason::Exhausted { .. }) => "failed",
    }
}

/// `90s` → `1m 30s`; for messages.
pub fn human_duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        _ if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        _ if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        _ if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{s}s"),
    }
}

fn to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
