//! One webhook: its configuration and status, and the actions on it (enable/disable,
//! rotate the signing secret, delete; delete all from the list). Destructive actions ask
//! for confirmation: with JavaScript a native dialog, without it a confirmation page —
//! the server refuses to delete until the form says `confirmed=yes`.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use super::csrf::{self, SessionForm};
use super::error::{UiError, UiResult};
use super::layout::{self, Nav};
use super::session::Session;
use super::webhook_edit::secret_page;
use crate::api::webhooks::{apply_update, parse_id, rotate, WebhookIn};
use crate::api::AppState;
use crate::domain::scope::Scope;
use crate::store::WebhookRecord;
use crate::timefmt::now_ms;

/// `/admin/webhooks/{id}` and its actions.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks/{id}", get(show))
        .route("/admin/webhooks/{id}/enabled", post(set_enabled))
        .route("/admin/webhooks/{id}/rotate", post(rotate_secret))
        .route("/admin/webhooks/{id}/delete", post(delete_one))
        .route("/admin/webhooks/delete-all", post(delete_all))
}

/// Loads a webhook of the session's tenant (404 for unknown or foreign ids).
pub async fn load(state: &AppState, session: &Session, id: &str) -> UiResult<WebhookRecord> {
    let id = parse_id(id).map_err(UiError::from)?;
    state
        .store
        .get_webhook(session.caller.tenant_id, id)
        .await?
        .ok_or(UiError::NotFound("webhook"))
}

/// `?notice=` codes; fixed texts, so a crafted link cannot put words on the page.
#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

/// The text of a known notice code.
pub fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "saved" => "Changes saved.",
        "enabled" => "Webhook enabled: deliveries will be made.",
        "disabled" => "Webhook disabled: no deliveries will be made until it is enabled again.",
        "ping" => "Test ping queued. Its delivery appears below in a moment.",
        "redelivered" => "Redelivery queued.",
        "redelivered-failed" => "Every failed delivery was queued again.",
        _ => return None,
    })
}

fn config_list(w: &WebhookRecord) -> Markup {
    let c = &w.config;
    html! {
        dl.props {
            dt { "URL" } dd { code.url { (c.url) } }
            dt { "Method" } dd { (c.http_verb.as_str()) }
            dt { "Format" } dd { (c.format.as_str()) }
            dt { "Event types" } dd { ul.tags { @for t in &c.event_types { li { (t.to_string()) } } } }
            dt { "Projects" } dd {
                @if c.project_ids.is_empty() { "All projects" }
                @else { @for (i, p) in c.project_ids.iter().enumerate() { @if i > 0 { ", " } (p) } }
            }
            dt { "Custom headers" } dd {
                @if c.headers.is_empty() { span.muted { "None" } }
                @else { ul.plain { @for h in &c.headers { li {
                    code { (h.name) } ": "
                    @if h.secured { span.pill { "secured" } " " span.muted { "value set, hidden" } }
                    @else { code { (h.value.as_deref().unwrap_or_default()) } }
                } } } }
            }
            dt { "Enabled" } dd {
                @if c.enabled { "Yes" } @else { "No" }
                @if let Some(r) = &w.disabled_reason { " — " (r) }
            }
            dt { "Ordering" } dd { (c.ordering.as_str()) }
            @if !c.description.is_empty() { dt { "Description" } dd { (c.description) } }
            dt { "Created" } dd { (layout::exact(w.created_at)) }
            dt { "Updated" } dd { (layout::exact(w.updated_at)) }
        }
    }
}

fn action_bar(session: &Session, w: &WebhookRecord) -> Markup {
    let base = format!("/admin/webhooks/{}", w.id);
    html! {
        @if session.can(Scope::WebhooksWrite) {
            div.actions.toolbar {
                a.button.secondary href={ (base) "/edit" } { "Edit" }
                form method="post" action={ (base) "/enabled" } {
                    (csrf::field(session))
                    input type="hidden" name="enabled" value=(if w.config.enabled { "false" } else { "true" });
                    button.secondary type="submit" { @if w.config.enabled { "Disable" } @else { "Enable" } }
                }
                form method="post" action={ (base) "/rotate" }
                    data-confirm="Issue a new signing secret? The current one keeps signing for a while." {
                    (csrf::field(session))
                    button.secondary type="submit" { "Rotate secret" }
                }
                form method="post" action={ (base) "/delete" }
                    data-confirm={ "Delete the webhook “" (w.config.name) "”? This cannot be undone." } {
                    (csrf::field(session))
                    button.danger type="submit" { "Delete…" }
                }
            }
        }
    }
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> UiResult<Markup> {
    let w = load(&state, &session, &id).await?;
    let extra = super::webhook_deliveries::section(&state, &session, &w).await?;
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/admin/webhooks" { "Webhooks" } " / " (w.config.name) }
        @if let Some(t) = notice_text(q.notice.as_deref()) { (layout::notice("ok", t)) }
        div.titlebar {
            h1 { (w.config.name) }
            div #webhook-status data-id=(w.id) {
                span data-cell="status" { (layout::status_badge(w.last_execution.as_ref())) }
                " "
                span.muted data-cell="when" {
                    @match &w.last_execution {
                        Some(l) => { "Last execution " (layout::when(l.at, now_ms())) },
                        None => "Never executed",
                    }
                }
            }
        }
        (action_bar(&session, &w))
        section aria-labelledby="config-h" {
            h2 #config-h { "Configuration" }
            (config_list(&w))
        }
        (extra)
    };
    Ok(layout::page(&w.config.name, &session, Nav::Webhooks, content))
}

async fn set_enabled(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::WebhooksWrite)?;
    let w = load(&state, &session, &id).await?;
    let enabled = form.get("enabled") == Some("true");
    let input = WebhookIn {
        enabled: Some(enabled),
        ..Default::default()
    };
    apply_update(&state, session.caller.tenant_id, w.id, input, true).await?;
    tracing::info!(tenant = %session.caller.tenant, webhook_id = %w.id, enabled, "webhook toggled in the admin UI");
    let notice = if enabled { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/admin/webhooks/{}?notice={notice}", w.id)).into_response())
}

async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SessionForm { session, .. }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::WebhooksWrite)?;
    let w = load(&state, &session, &id).await?;
    let (rec, secret) = rotate(&state, session.caller.tenant_id, w.id).await?;
    tracing::info!(tenant = %session.caller.tenant, webhook_id = %w.id, "signing secret rotated in the admin UI");
    Ok(secret_page(&session, &rec, &secret, false))
}

async fn delete_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::WebhooksWrite)?;
    let w = load(&state, &session, &id).await?;
    if form.get("confirmed") != Some("yes") {
        let q = format!(
            "Delete the webhook “{}” ({})? Pending deliveries are cancelled. This cannot be undone.",
            w.config.name, w.config.url
        );
        let action = format!("/admin/webhooks/{}/delete", w.id);
        return Ok(layout::confirm(
            &session,
            Nav::Webhooks,
            ("Delete webhook?", &q),
            &action,
            "Delete webhook",
            "/admin/webhooks",
        )
        .into_response());
    }
    state.store.delete_webhook(session.caller.tenant_id, w.id).await?;
    // As the API does: queued work of a deleted webhook is dropped, not sent.
    state.delivery.forget_webhook(w.id);
    tracing::info!(tenant = %session.caller.tenant, webhook_id = %w.id, "webhook deleted in the admin UI");
    Ok(Redirect::to("/admin/webhooks").into_response())
}

async fn delete_all(
    State(state): State<AppState>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::WebhooksWrite)?;
    if form.get("confirmed") != Some("yes") {
        let n = state.store.list_webhooks(session.caller.tenant_id).await?.len();
        let q = format!(
            "Delete all {n} webhooks of tenant {}? Pending deliveries are cancelled. This cannot be undone.",
            session.caller.tenant
        );
        let title = ("Delete all webhooks?", q.as_str());
        let page = layout::confirm(
            &session,
            Nav::Webhooks,
            title,
            "/admin/webhooks/delete-all",
            "Delete all webhooks",
            "/admin/webhooks",
        );
        return Ok(page.into_response());
    }
    let ids = state.store.delete_all_webhooks(session.caller.tenant_id).await?;
    for id in &ids {
        state.delivery.forget_webhook(*id);
    }
    tracing::info!(tenant = %session.caller.tenant, deleted = ids.len(), "all webhooks deleted in the admin UI");
    Ok(Redirect::to("/admin/webhooks").into_response())
}
