//! How deliveries and their attempts look on the webhook page and the attempt log. The
//! views are plain structs filled from the store's records by [`super::webhook_deliveries`],
//! so this file is only about presentation.

use maud::{html, Markup};
use uuid::Uuid;

use super::csrf;
use super::layout;
use super::session::Session;
use crate::domain::webhook::MASK;

/// One delivery row.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    /// Delivery id (= `webhook-id` header).
    pub id: Uuid,
    /// e.g. `Project:Updated`.
    pub event_type: String,
    /// Engine state, as text (pending, succeeded, failed, …).
    pub state: String,
    /// `Some(true)` after a 2xx, `Some(false)` after a failure, `None` before any attempt.
    pub ok: Option<bool>,
    /// Attempts made so far.
    pub attempts: i64,
    /// Status code of the last attempt.
    pub last_code: Option<i64>,
    /// Error kind of the last attempt, when it got no usable response.
    pub last_error: Option<String>,
    /// Duration of the last attempt, ms.
    pub duration_ms: Option<i64>,
    /// When the delivery was created, epoch ms.
    pub created_at: i64,
    /// When the next attempt is due, if one is scheduled.
    pub next_attempt_at: Option<i64>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone)]
pub struct AttemptView {
    /// 1-based attempt number.
    pub number: i64,
    /// When it started, epoch ms.
    pub at: i64,
    /// Request headers as sent (secured values already masked by the engine).
    pub request_headers: Vec<(String, String)>,
    /// Response status, if a response arrived.
    pub response_code: Option<i64>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Response body (truncated by the engine).
    pub response_body: Option<String>,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// Error kind, when no usable response arrived.
    pub error: Option<String>,
}

/// The status lozenge of a delivery.
pub fn badge(ok: Option<bool>, code: Option<i64>, error: Option<&str>) -> Markup {
    let detail = match (code, error) {
        (Some(c), Some(e)) => format!("HTTP {c}: {e}"),
        (Some(c), None) => format!("HTTP {c}"),
        (None, Some(e)) => e.to_owned(),
        (None, None) => "not attempted yet".to_owned(),
    };
    let (class, label) = match ok {
        Some(true) => ("ok", "OK"),
        Some(false) => ("error", "ERROR"),
        None => ("pending", "PENDING"),
    };
    html! { span class={ "badge badge-" (class) } title=(detail) { (label) span.sr-only { " (" (detail) ")" } } }
}

/// The recent deliveries table, with redeliver buttons when the session may use them.
pub fn table(
    session: &Session,
    webhook: Uuid,
    rows: &[DeliveryView],
    now: i64,
    can_redeliver: bool,
) -> Markup {
    html! {
        @if rows.is_empty() { p.muted #no-deliveries { "No deliveries yet. Send a test ping, or change a project." } }
        @else {
            div.table-wrap { table.list #deliveries {
                caption.sr-only { "Recent deliveries" }
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Event type" } th scope="col" { "Status" }
                    th scope="col" { "Attempts" } th scope="col" { "Last code" } th scope="col" { "Duration" }
                    th scope="col" { span.sr-only { "Actions" } }
                } }
                tbody { @for d in rows {
                    @let href = format!("/admin/webhooks/{webhook}/deliveries/{}", d.id);
                    tr data-delivery=(d.id) {
                        td data-label="When" { div { (layout::when(d.created_at, now)) } }
                        td data-label="Event type" { code { (d.event_type) } }
                        td data-label="Status" { div {
                            (badge(d.ok, d.last_code, d.last_error.as_deref())) " " span.muted.small { (d.state) }
                            @if let Some(n) = d.next_attempt_at { br; small.muted { "next try " (layout::relative(n, now)) } }
                        } }
                        td data-label="Attempts" { (d.attempts) }
                        td data-label="Last code" {
                            @match (d.last_code, &d.last_error) {
                                (Some(c), _) => (c),
                                (None, Some(e)) => span.muted { (e) },
                                (None, None) => "—",
                            }
                        }
                        td data-label="Duration" { @match d.duration_ms { Some(ms) => { (ms) " ms" }, None => "—" } }
                        td data-label="Actions" { div.actions.tight {
                            a href=(href) { "Attempt log" span.sr-only { " of delivery " (d.id) } }
                            @if can_redeliver {
                                form method="post" action={ (href) "/redeliver" } {
                                    (csrf::field(session))
                                    button.secondary.small type="submit" { "Redeliver" span.sr-only { " " (d.id) } }
                                }
                            }
                        } }
                    }
                } }
            } }
        }
    }
}

fn headers(list: &[(String, String)], secured: &[String]) -> Markup {
    html! {
        table.kv { tbody { @for (k, v) in list {
            tr { th scope="row" { (k) } td { code {
                // Defence in depth: the engine masks secured values; mask them here too.
                @if secured.iter().any(|s| s.eq_ignore_ascii_case(k)) { (MASK) } @else { (v) }
            } } }
        } } }
    }
}

/// Pretty-prints JSON bodies; anything else is shown as sent.
pub fn body(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// The attempt log: every attempt's request and response.
pub fn attempts(list: &[AttemptView], secured: &[String]) -> Markup {
    html! {
        @if list.is_empty() { p.muted { "No attempt yet: the delivery is queued." } }
        @for a in list.iter().rev() {
            article.attempt.card id={ "attempt-" (a.number) } {
                h3 {
                    "Attempt " (a.number) " "
                    (badge(Some(matches!(a.response_code, Some(200..=299))), a.response_code, a.error.as_deref()))
                    span.muted.small { (layout::exact(a.at)) @if let Some(ms) = a.duration_ms { " · " (ms) " ms" } }
                }
                div.grid2 {
                    div {
                        h4 { "Request headers" } (headers(&a.request_headers, secured))
                    }
                    div {
                        h4 { "Response" }
                        @match (a.response_code, &a.error) {
                            (Some(c), _) => p { "HTTP " strong { (c) } },
                            (None, Some(e)) => p.error { "No response: " (e) },
                            (None, None) => p.muted { "No response" },
                        }
                        @if !a.response_headers.is_empty() { h4 { "Response headers" } (headers(&a.response_headers, &[])) }
                        h4 { "Response body" }
                        @match &a.response_body {
                            Some(b) if !b.is_empty() => pre.body.response-body { (body(b)) },
                            _ => p.muted { "Empty" },
                        }
                    }
                }
            }
        }
    }
}
