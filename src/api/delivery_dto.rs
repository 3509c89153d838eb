//! Response shapes of the delivery log (see [`super::deliveries`]).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{AttemptRow, DeliverySummary};
use crate::timefmt::rfc3339_ms;

/// A delivery: one event for one webhook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryOut {
    /// Delivery id: the `webhook-id` header (and PPM `MessageId`), stable across attempts.
    pub id: Uuid,
    /// Webhook.
    pub webhook_id: Uuid,
    /// Event id.
    pub event_id: Uuid,
    /// Event type.
    pub event_type: String,
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// Next attempt (RFC 3339), while pending.
    pub next_attempt_at: Option<String>,
    /// Status of the latest response.
    pub last_status_code: Option<i64>,
    /// Latest error.
    pub last_error: Option<String>,
    /// Creation (RFC 3339).
    pub created_at: String,
    /// Success or give-up time (RFC 3339).
    pub completed_at: Option<String>,
}

impl From<&DeliverySummary> for DeliveryOut {
    fn from(d: &DeliverySummary) -> Self {
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            status: d.status.as_str().into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(rfc3339_ms),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            created_at: rfc3339_ms(d.created_at),
            completed_at: d.completed_at.map(rfc3339_ms),
        }
    }
}

/// A header as sent or received.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderPairOut {
    /// Name.
    pub name: String,
    /// Value (`********` for secured headers and signatures).
    pub value: String,
}

fn pairs(json: Option<&str>) -> Vec<HeaderPairOut> {
    json.and_then(|j| serde_json::from_str::<Vec<(String, String)>>(j).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| HeaderPairOut { name, value })
        .collect()
}

/// One attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptOut {
    /// 1-based number.
    pub number: i64,
    /// Start (RFC 3339).
    pub at: String,
    /// Duration in milliseconds.
    pub duration_ms: i64,
    /// Request headers as sent, secured and signature values masked.
    pub request_headers: Vec<HeaderPairOut>,
    /// Response status, when a response arrived.
    pub status_code: Option<i64>,
    /// Response headers.
    pub response_headers: Vec<HeaderPairOut>,
    /// First 64 KiB of the response body (UTF-8, lossy); null once purged.
    pub response_body: Option<String>,
    /// The response body was longer than what is kept.
    pub response_body_truncated: bool,
    /// `connect`, `timeout`, `tls`, `refused`, `redirect` or `other` when no usable
    /// response arrived.
    pub error_kind: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// `succeeded`, `retry` or `failed`.
    pub outcome: String,
}

impl From<&AttemptRow> for AttemptOut {
    fn from(a: &AttemptRow) -> Self {
        Self {
            number: a.number,
            at: rfc3339_ms(a.started_at),
            duration_ms: a.duration_ms,
            request_headers: pairs(Some(&a.request_headers)),
            status_code: a.status_code,
            response_headers: pairs(a.response_headers.as_deref()),
            response_body: a
                .response_body
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            response_body_truncated: a.response_truncated,
            error_kind: a.error_kind.clone(),
            error: a.error.clone(),
            outcome: a.outcome.clone(),
        }
    }
}

/// A delivery with its body and attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetailOut {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    /// The body exactly as sent (null once purged by retention).
    pub body: Option<String>,
    /// Attempts, oldest first.
    pub attempts: Vec<AttemptOut>,
}

/// `{"data": delivery}`
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryEnvelope {
    /// The delivery.
    pub data: DeliveryOut,
}

/// `{"data": delivery-with-attempts}`
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetailEnvelope {
    /// The delivery.
    pub data: DeliveryDetailOut,
}

/// `{"data": [delivery…], "nextCursor": …}`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryListEnvelope {
    /// Deliveries, newest first.
    pub data: Vec<DeliveryOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Result of a bulk replay.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    /// Deliveries re-queued.
    pub queued: u64,
}

/// `{"data": {"queued": n}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayEnvelope {
    /// The result.
    pub data: ReplayOut,
}
