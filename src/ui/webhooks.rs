//! The webhooks list: every webhook of the tenant with its last execution and status
//! lozenge (Projectrak's admin page), a filter that works without JavaScript (query
//! string) and instantly with it, and a small JSON endpoint the page polls so statuses
//! change in place while deliveries happen.

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::csrf;
use super::error::UiResult;
use super::layout::{self, Nav};
use super::session::{self, Session};
use crate::api::AppState;
use crate::domain::scope::Scope;
use crate::store::WebhookRecord;
use crate::timefmt::now_ms;

/// `/admin`, `/admin/webhooks` and its status feed.
pub fn router() -> Router<AppState> {
    let home = || async { axum::response::Redirect::to("/admin/webhooks") };
    Router::new()
        .route("/admin", get(home))
        .route("/admin/", get(home))
        .route("/admin/webhooks", get(list))
        .route("/admin/webhooks/status.json", get(status_feed))
}

/// The list's filter, from the query string.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    /// Free text matched against name, URL, format and event types.
    #[serde(default)]
    q: String,
    /// `ok`, `error`, `never` or empty for all.
    #[serde(default)]
    status: String,
}

fn search_text(w: &WebhookRecord) -> String {
    let c = &w.config;
    let types: Vec<String> = c.event_types.iter().map(ToString::to_string).collect();
    format!("{} {} {} {}", c.name, c.url, c.format.as_str(), types.join(" ")).to_lowercase()
}

fn status_of(w: &WebhookRecord) -> &'static str {
    layout::status_parts(w.last_execution.as_ref()).0
}

impl Filter {
    fn keeps(&self, w: &WebhookRecord) -> bool {
        let q = self.q.trim().to_lowercase();
        (q.is_empty() || search_text(w).contains(&q))
            && (self.status.is_empty() || self.status == status_of(w))
    }
}

fn enabled_cell(w: &WebhookRecord) -> Markup {
    html! {
        @if w.config.enabled { span.pill.pill-on { "Enabled" } }
        @else { span.pill.pill-off { "Disabled" } }
        @if let Some(r) = &w.disabled_reason { br; small.muted { (r) } }
    }
}

/// One table row; `data-*` attributes feed the live filter and the status poller.
fn row(w: &WebhookRecord, now: i64, shown: bool) -> Markup {
    let c = &w.config;
    let href = format!("/admin/webhooks/{}", w.id);
    html! {
        tr data-id=(w.id) data-search=(search_text(w)) data-status=(status_of(w)) hidden[!shown] {
            td data-label="Name" { a href=(href) { (c.name) } }
            td data-label="URL" { code.url title=(c.url) { (c.url) } }
            td data-label="Format" { (c.format.as_str()) }
            td data-label="Event types" {
                ul.tags { @for t in &c.event_types { li { (t.to_string()) } } }
            }
            td data-label="Enabled" { div { (enabled_cell(w)) } }
            td data-label="Last execution" {
                div data-cell="when" {
                    @match &w.last_execution {
                        Some(l) => (layout::when(l.at, now)),
                        None => span.muted { "Never" },
                    }
                }
            }
            td data-label="Status" { div data-cell="status" { (layout::status_badge(w.last_execution.as_ref())) } }
        }
    }
}

fn filter_form(f: &Filter) -> Markup {
    let opt = |v: &str, label: &str| html! { option value=(v) selected[f.status == v] { (label) } };
    html! {
        form.filters method="get" action="/admin/webhooks" role="search" {
            div.field.inline {
                label for="q" { "Filter" }
                input #q type="search" name="q" value=(f.q) placeholder="Name, URL, format or event type"
                    data-filter="#webhooks";
            }
            div.field.inline {
                label for="status-filter" { "Status" }
                select #status-filter name="status" data-filter="#webhooks" {
                    (opt("", "All")) (opt("ok", "OK")) (opt("error", "ERROR")) (opt("never", "Never run"))
                }
            }
            button.secondary type="submit" data-js-hide { "Apply" }
        }
    }
}

async fn list(State(state): State<AppState>, session: Session, Query(f): Query<Filter>) -> UiResult<Markup> {
    let hooks = state.store.list_webhooks(session.caller.tenant_id).await?;
    let now = now_ms();
    let shown = hooks.iter().filter(|w| f.keeps(w)).count();
    let write = session.can(Scope::WebhooksWrite);
    let content = html! {
        div.titlebar {
            h1 { "Outgoing webhooks" }
            @if write { a.button.primary href="/admin/webhooks/new" { "Create webhook" } }
        }
        p.lead {
            "Herald sends a signed HTTPS request to each webhook when a matching event happens. "
            "Status is " strong { "OK" } " for a 2xx answer and " strong { "ERROR" } " for anything else."
        }
        @if hooks.is_empty() {
            div.empty {
                p { "No webhooks yet." }
                @if write { p { a href="/admin/webhooks/new" { "Create the first one" } } }
            }
        } @else {
            (filter_form(&f))
            p.muted #filter-count aria-live="polite" { (shown) " of " (hooks.len()) " webhooks shown" }
            div.table-wrap {
                table.list #webhooks data-poll="/admin/webhooks/status.json" {
                    caption.sr-only { "Webhooks, with their last execution and status" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "URL" } th scope="col" { "Format" }
                        th scope="col" { "Event types" } th scope="col" { "Enabled" }
                        th scope="col" { "Last execution" } th scope="col" { "Status" }
                    } }
                    tbody { @for w in &hooks { (row(w, now, f.keeps(w))) } }
                }
            }
            p.muted.small #poll-note { "Statuses refresh every few seconds." }
            @if write {
                form.danger-zone method="post" action="/admin/webhooks/delete-all"
                    data-confirm={ "Delete all " (hooks.len()) " webhooks? Pending deliveries are cancelled. This cannot be undone." } {
                    (csrf::field(&session))
                    button.danger type="submit" { "Delete all webhooks…" }
                }
            }
        }
    };
    Ok(layout::page("Webhooks", &session, Nav::Webhooks, content))
}

/// One webhook's status, as the list's poller needs it.
#[derive(Debug, Serialize)]
struct StatusItem {
    id: String,
    status: &'static str,
    label: &'static str,
    detail: String,
    /// Rendered last-execution time (maud-escaped HTML); none before the first attempt.
    when: Option<String>,
}

#[derive(Debug, Serialize)]
struct StatusFeed {
    webhooks: Vec<StatusItem>,
}

/// `GET /admin/webhooks/status.json`. Answers 401 (not a redirect) without a session, so
/// the poller can stop and say so instead of parsing the sign-in page.
async fn status_feed(State(state): State<AppState>, req: Request) -> UiResult<Response> {
    let Some(session) = session::load(req.headers(), &state).await? else {
        return Ok((
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "signed out"})),
        )
            .into_response());
    };
    let hooks = state.store.list_webhooks(session.caller.tenant_id).await?;
    let now = now_ms();
    let webhooks = hooks
        .iter()
        .map(|w| {
            let (status, label, detail) = layout::status_parts(w.last_execution.as_ref());
            let when = w
                .last_execution
                .as_ref()
                .map(|l| layout::when(l.at, now).into_string());
            StatusItem {
                id: w.id.to_string(),
                status,
                label,
                detail,
                when,
            }
        })
        .collect();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(StatusFeed { webhooks }),
    )
        .into_response())
}
