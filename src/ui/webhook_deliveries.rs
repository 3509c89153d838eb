//! A webhook's deliveries: the section on the webhook page (24 h chart, recent deliveries,
//! test ping, bulk redelivery of failures), which refreshes itself, and the attempt log of
//! one delivery with its redeliver button. Everything goes through the functions the JSON
//! API uses (`api::deliveries`), so the UI cannot do more than the token could.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use uuid::Uuid;

use super::chart;
use super::csrf::{self, SessionForm};
use super::delivery_views::{self, AttemptView, DeliveryView};
use super::error::{UiError, UiResult};
use super::layout::{self, Nav};
use super::session::{self, Session};
use super::webhook_detail::load;
use crate::api::deliveries::{redeliver_one, replay_matching, send_ping};
use crate::api::AppState;
use crate::domain::scope::Scope;
use crate::store::{
    AttemptRow, DeliveryDetail, DeliveryFilter, DeliveryStatus, DeliverySummary, WebhookRecord,
};
use crate::timefmt::now_ms;

/// Deliveries shown on the webhook page.
const RECENT: i64 = 20;
/// Most deliveries the 24 h chart counts.
const CHART_MAX: i64 = 2_000;
const DAY: i64 = 86_400_000;

/// Delivery routes under `/admin/webhooks/{id}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks/{id}/deliveries.html", get(fragment))
        .route("/admin/webhooks/{id}/deliveries/{did}", get(attempt_log))
        .route("/admin/webhooks/{id}/deliveries/{did}/redeliver", post(redeliver))
        .route("/admin/webhooks/{id}/redeliver-failed", post(redeliver_failed))
        .route("/admin/webhooks/{id}/test", post(test_ping))
}

fn pairs(json: Option<&str>) -> Vec<(String, String)> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

fn view(s: &DeliverySummary, last: Option<&AttemptRow>) -> DeliveryView {
    let ok = match s.status {
        DeliveryStatus::Succeeded => Some(true),
        DeliveryStatus::Failed => Some(false),
        DeliveryStatus::Pending if s.attempts > 0 => Some(false),
        DeliveryStatus::Pending | DeliveryStatus::Cancelled => None,
    };
    DeliveryView {
        id: s.id,
        event_type: s.event_type.clone(),
        state: s.status.as_str().to_owned(),
        ok,
        attempts: s.attempts,
        last_code: s.last_status_code,
        last_error: s.last_error.clone(),
        duration_ms: last.map(|a| a.duration_ms),
        created_at: s.created_at,
        next_attempt_at: s.next_attempt_at.filter(|_| s.status == DeliveryStatus::Pending),
    }
}

fn attempt_view(a: &AttemptRow) -> AttemptView {
    AttemptView {
        number: a.number,
        at: a.started_at,
        request_headers: pairs(Some(&a.request_headers)),
        response_code: a.status_code,
        response_headers: pairs(a.response_headers.as_deref()),
        response_body: a.response_body.as_deref().map(|b| {
            let text = String::from_utf8_lossy(b).into_owned();
            if a.response_truncated {
                format!("{text}\n… (truncated)")
            } else {
                text
            }
        }),
        duration_ms: Some(a.duration_ms),
        error: a.error.clone().or_else(|| a.error_kind.clone()),
    }
}

fn filter(since: Option<i64>, limit: i64) -> DeliveryFilter {
    DeliveryFilter {
        status: None,
        event_type: None,
        since,
        until: None,
        before_seq: None,
        limit,
    }
}

/// The inside of the deliveries section (also served alone for the page's refresh).
async fn inner(state: &AppState, session: &Session, w: &WebhookRecord) -> UiResult<Markup> {
    let t = session.caller.tenant_id;
    let now = now_ms();
    let recent = state
        .store
        .list_deliveries(t, Some(w.id), &filter(None, RECENT))
        .await?;
    let mut rows = Vec::with_capacity(recent.len());
    for s in &recent {
        // The summary has no duration; the last attempt does.
        let d = state.store.get_delivery(t, s.id).await?;
        rows.push(view(s, d.as_ref().and_then(|d| d.attempts.last())));
    }
    let day = state
        .store
        .list_deliveries(t, Some(w.id), &filter(Some(now - DAY), CHART_MAX))
        .await?;
    let outcomes: Vec<(i64, bool)> = day
        .iter()
        .filter_map(|s| match s.status {
            DeliveryStatus::Succeeded => Some((s.completed_at.unwrap_or(s.created_at), true)),
            DeliveryStatus::Failed => Some((s.completed_at.unwrap_or(s.created_at), false)),
            DeliveryStatus::Pending if s.attempts > 0 => Some((s.created_at, false)),
            _ => None,
        })
        .collect();
    let can = session.can(Scope::DeliveriesWrite);
    Ok(html! {
        (chart::render(&outcomes, now))
        (delivery_views::table(session, w.id, &rows, now, can))
    })
}

/// The deliveries section of the webhook page.
pub async fn section(state: &AppState, session: &Session, w: &WebhookRecord) -> UiResult<Markup> {
    let base = format!("/admin/webhooks/{}", w.id);
    let can = session.can(Scope::DeliveriesWrite);
    Ok(html! {
        section aria-labelledby="deliveries-h" {
            div.titlebar {
                h2 #deliveries-h { "Deliveries" }
                @if can {
                    div.actions {
                        form method="post" action={ (base) "/test" } {
                            (csrf::field(session))
                            button.secondary type="submit" { "Send test ping" }
                        }
                        form method="post" action={ (base) "/redeliver-failed" }
                            data-confirm="Send every failed delivery of this webhook again?" {
                            (csrf::field(session))
                            button.secondary type="submit" { "Redeliver failed" }
                        }
                    }
                }
            }
            div #deliveries-live data-refresh={ (base) "/deliveries.html" } { (inner(state, session, w).await?) }
        }
    })
}

/// `GET …/deliveries.html`: the section's inside, for the page's self-refresh. Answers 401
/// (not a redirect to the sign-in page) without a session, so the script stops quietly
/// instead of pasting the sign-in form into the page.
async fn fragment(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> UiResult<Response> {
    let Some(session) = session::load(req.headers(), &state).await? else {
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    };
    let w = load(&state, &session, &id).await?;
    Ok(inner(&state, &session, &w).await?.into_response())
}

/// The delivery `did` of webhook `w` (404 for another webhook's or tenant's).
async fn delivery(
    state: &AppState,
    session: &Session,
    w: &WebhookRecord,
    did: &str,
) -> UiResult<DeliveryDetail> {
    let did = Uuid::parse_str(did).map_err(|_| UiError::NotFound("delivery"))?;
    state
        .store
        .get_delivery(session.caller.tenant_id, did)
        .await?
        .filter(|d| d.summary.webhook_id == w.id)
        .ok_or(UiError::NotFound("delivery"))
}

async fn attempt_log(
    State(state): State<AppState>,
    session: Session,
    Path((id, did)): Path<(String, String)>,
) -> UiResult<Markup> {
    let w = load(&state, &session, &id).await?;
    let d = delivery(&state, &session, &w, &did).await?;
    let s = &d.summary;
    let v = view(s, d.attempts.last());
    let attempts: Vec<AttemptView> = d.attempts.iter().map(attempt_view).collect();
    let secured: Vec<String> = w
        .config
        .headers
        .iter()
        .filter(|h| h.secured)
        .map(|h| h.name.clone())
        .collect();
    let href = format!("/admin/webhooks/{}/deliveries/{}", w.id, s.id);
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/admin/webhooks" { "Webhooks" } " / "
            a href={ "/admin/webhooks/" (w.id) } { (w.config.name) } " / " "Delivery"
        }
        div.titlebar {
            h1 { "Delivery " code.small { (s.id) } }
            @if session.can(Scope::DeliveriesWrite) {
                form method="post" action={ (href) "/redeliver" } {
                    (csrf::field(&session))
                    button.primary type="submit" { "Redeliver" }
                }
            }
        }
        dl.props {
            dt { "Status" } dd { (delivery_views::badge(v.ok, v.last_code, v.last_error.as_deref())) " " (s.status.as_str()) }
            dt { "Event type" } dd { code { (s.event_type) } }
            dt { "Attempts" } dd { (s.attempts) }
            dt { "Created" } dd { (layout::exact(s.created_at)) }
            @if let Some(n) = v.next_attempt_at { dt { "Next attempt" } dd { (layout::exact(n)) } }
        }
        h2 { "Body sent" }
        @match &d.body {
            Some(b) => pre.body { (delivery_views::body(b)) },
            None => p.muted { "Purged by retention." },
        }
        h2 { "Attempt log" }
        (delivery_views::attempts(&attempts, &secured))
    };
    Ok(layout::page("Delivery", &session, Nav::Webhooks, content))
}

async fn redeliver(
    State(state): State<AppState>,
    Path((id, did)): Path<(String, String)>,
    SessionForm { session, .. }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::DeliveriesWrite)?;
    let w = load(&state, &session, &id).await?;
    let d = delivery(&state, &session, &w, &did).await?;
    redeliver_one(&state, session.caller.tenant_id, d.summary.id).await?;
    tracing::info!(tenant = %session.caller.tenant, delivery_id = %d.summary.id, "redelivery queued in the admin UI");
    Ok(Redirect::to(&format!("/admin/webhooks/{}?notice=redelivered", w.id)).into_response())
}

async fn redeliver_failed(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SessionForm { session, .. }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::DeliveriesWrite)?;
    let w = load(&state, &session, &id).await?;
    let n = replay_matching(
        &state,
        session.caller.tenant_id,
        w.id,
        DeliveryStatus::Failed,
        None,
    )
    .await?;
    tracing::info!(tenant = %session.caller.tenant, webhook_id = %w.id, queued = n, "bulk redelivery queued in the admin UI");
    Ok(Redirect::to(&format!("/admin/webhooks/{}?notice=redelivered-failed", w.id)).into_response())
}

async fn test_ping(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SessionForm { session, .. }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::DeliveriesWrite)?;
    let w = load(&state, &session, &id).await?;
    let d = send_ping(&state, &session.caller, w.id).await?;
    tracing::info!(tenant = %session.caller.tenant, webhook_id = %w.id, "test ping sent from the admin UI");
    Ok(Redirect::to(&format!("/admin/webhooks/{}/deliveries/{}", w.id, d.summary.id)).into_response())
}
