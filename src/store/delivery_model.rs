//! Records for deliveries and their attempts: what fan-out creates, what a worker needs to
//! send one request, what it reports back, and what the delivery log shows.
//!
//! A [`DeliveryJob`] is self-contained (body bytes, format headers, a snapshot of the
//! webhook's target) so a worker never goes back to the database before sending.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::domain::webhook::HttpVerb;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt (or being attempted now).
    Pending,
    /// A 2xx arrived.
    Succeeded,
    /// Given up: retries exhausted, 410 Gone, or the target refused by policy.
    Failed,
    /// Its webhook was deleted before it succeeded.
    Cancelled,
}

impl DeliveryStatus {
    /// Every status, in documentation order.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Succeeded, Self::Failed, Self::Cancelled];

    /// Stored and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The webhook as a worker needs it, captured when the job was created or claimed. Keyed by
/// `(webhook_id, updated_at)`: any configuration change or secret rotation bumps
/// `updated_at`, so workers can cache what they derive from it (parsed URL, opened secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    /// Webhook id.
    pub webhook_id: Uuid,
    /// Target URL.
    pub url: String,
    /// HTTP method.
    pub http_verb: HttpVerb,
    /// Custom headers as stored (JSON; secured values sealed). Parsed only on a cache miss.
    pub headers_json: String,
    /// Sealed signing secret.
    pub secret_sealed: String,
    /// Sealed previous secret during a rotation.
    pub previous_secret_sealed: Option<String>,
    /// Until when the previous secret still signs, epoch ms.
    pub previous_secret_until: Option<i64>,
    /// Last configuration change, epoch ms.
    pub updated_at: i64,
}

#[cfg(test)]
impl TargetRow {
    /// A target for unit tests (nothing is sent to it).
    pub(crate) fn example() -> Self {
        Self {
            webhook_id: Uuid::new_v4(),
            url: "https://example.com/hook".into(),
            http_verb: HttpVerb::Post,
            headers_json: "[]".into(),
            secret_sealed: String::new(),
            previous_secret_sealed: None,
            previous_secret_until: None,
            updated_at: 0,
        }
    }
}

/// One delivery, leased to this node, ready to be attempted.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// Delivery id (`webhook-id` header, PPM `MessageId`).
    pub id: Uuid,
    /// Tenant id (for logs and metrics).
    pub tenant_id: i64,
    /// Event type, e.g. `Project:Updated`.
    pub event_type: String,
    /// The rendered body, sent byte for byte on every attempt.
    pub body: Bytes,
    /// The format's own headers (`Herald-Event-Type`, …).
    pub format_headers: Arc<[(String, String)]>,
    /// Attempts made so far, over the delivery's whole life (numbers the next one).
    pub attempts: i64,
    /// Attempts made in the current round (a redelivery starts a new round); drives the
    /// retry schedule.
    pub tries: i64,
    /// The lease this node holds on the row.
    pub lease: Lease,
    /// The webhook's target.
    pub target: Arc<TargetRow>,
}

/// A lease on a delivery row: only the holder's outcome changes the row's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Unique per claim (or per fan-out transaction).
    pub token: String,
    /// Expiry, epoch ms; after it, any node may claim the row again.
    pub until: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    /// Try again at this time (epoch ms).
    Retry {
        /// When.
        at: i64,
    },
    /// Delivered.
    Succeeded,
    /// Given up.
    Failed,
}

/// One finished attempt and the state change it causes, as the recorder writes it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The delivery.
    pub delivery_id: Uuid,
    /// Its webhook.
    pub webhook_id: Uuid,
    /// The lease the attempt was made under.
    pub lease_token: String,
    /// 1-based attempt number over the delivery's life.
    pub number: i64,
    /// Attempts in the current round after this one.
    pub tries: i64,
    /// Start, epoch ms.
    pub started_at: i64,
    /// Duration in ms.
    pub duration_ms: i64,
    /// Request headers as sent, secured and signature values masked (JSON).
    pub request_headers: String,
    /// HTTP status, when a response arrived.
    pub status_code: Option<i64>,
    /// Response headers (JSON), when a response arrived.
    pub response_headers: Option<String>,
    /// First bytes of the response body.
    pub response_body: Option<Vec<u8>>,
    /// The body was longer than what was kept.
    pub response_truncated: bool,
    /// Stable error kind (`connect`, `timeout`, `tls`, `refused`, `redirect`, `other`).
    pub error_kind: Option<&'static str>,
    /// Human explanation of a failure (no secrets).
    pub error: Option<String>,
    /// What happens next.
    pub next: NextState,
    /// Set when this attempt disables the webhook (410 Gone), with the reason.
    pub disable_reason: Option<String>,
}

#[cfg(test)]
impl AttemptRecord {
    /// A new delivery's first attempt to `webhook`, started at `at` and lasting 1 ms,
    /// answered `status` and counted as succeeded: the record unit tests start from.
    pub(crate) fn sample(webhook: Uuid, at: i64, status: Option<i64>) -> Self {
        Self {
            delivery_id: Uuid::new_v4(),
            webhook_id: webhook,
            lease_token: "t".into(),
            number: 1,
            tries: 1,
            started_at: at,
            duration_ms: 1,
            request_headers: "[]".into(),
            status_code: status,
            response_headers: None,
            response_body: None,
            response_truncated: false,
            error_kind: None,
            error: None,
            next: NextState::Succeeded,
            disable_reason: None,
        }
    }
}

impl AttemptRecord {
    /// Whether the attempt succeeded (2xx).
    pub fn ok(&self) -> bool {
        matches!(self.status_code, Some(200..=299))
    }

    /// `succeeded`, `retry` or `failed`: the attempt's verdict in the log.
    pub fn outcome(&self) -> &'static str {
        match self.next {
            NextState::Succeeded => "succeeded",
            NextState::Retry { .. } => "retry",
            NextState::Failed => "failed",
        }
    }
}

/// Auto-disable thresholds: N consecutive failed deliveries spanning at least T. A delivery
/// counts as failed when its first attempt fails (its retries do not count again); any
/// successful attempt ends the streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoDisable {
    /// N.
    pub failures: i64,
    /// T, in ms.
    pub after_ms: i64,
}

/// A delivery as the delivery log lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySummary {
    /// Paging cursor.
    pub seq: i64,
    /// Id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Webhook.
    pub webhook_id: Uuid,
    /// Event id (the ping's own id for test pings).
    pub event_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// State.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Next attempt, epoch ms (pending only).
    pub next_attempt_at: Option<i64>,
    /// Latest HTTP status.
    pub last_status_code: Option<i64>,
    /// Latest error.
    pub last_error: Option<String>,
    /// Creation, epoch ms.
    pub created_at: i64,
    /// Success or give-up time, epoch ms.
    pub completed_at: Option<i64>,
}

/// One attempt as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// 1-based number.
    pub number: i64,
    /// Start, epoch ms.
    pub started_at: i64,
    /// Duration, ms.
    pub duration_ms: i64,
    /// Request headers (JSON list of `[name, value]`, masked).
    pub request_headers: String,
    /// HTTP status.
    pub status_code: Option<i64>,
    /// Response headers (JSON list of `[name, value]`).
    pub response_headers: Option<String>,
    /// First 64 KiB of the response body (`None` once purged or when none arrived).
    pub response_body: Option<Vec<u8>>,
    /// The body was longer.
    pub response_truncated: bool,
    /// Error kind.
    pub error_kind: Option<String>,
    /// Error text.
    pub error: Option<String>,
    /// `succeeded`, `retry` or `failed`.
    pub outcome: String,
}

/// A delivery with its body and every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryDetail {
    /// The summary.
    pub summary: DeliverySummary,
    /// The body as sent (`None` once purged by retention).
    pub body: Option<String>,
    /// Attempts, oldest first.
    pub attempts: Vec<AttemptRow>,
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Created at or after, epoch ms.
    pub since: Option<i64>,
    /// Created before, epoch ms.
    pub until: Option<i64>,
    /// Page: entries with `seq` below this (newest first).
    pub before_seq: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// Why a redelivery was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeliverRefusal {
    /// No such delivery in the tenant.
    NotFound,
    /// An attempt is in flight right now.
    InFlight,
    /// The body was purged by retention.
    BodyPurged,
    /// The webhook was deleted.
    WebhookGone,
}

/// Queue figures for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Pending deliveries (due or not).
    pub pending: i64,
    /// Pending deliveries due now.
    pub due: i64,
    /// Due time of the oldest due delivery, epoch ms.
    pub oldest_due_at: Option<i64>,
}
