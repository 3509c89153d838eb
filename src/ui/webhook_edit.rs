//! Creating and editing a webhook. Submissions go through the API's own `draft_from` →
//! `config_from` → store path, so the UI accepts exactly what the API accepts and reports
//! the same problems, next to the fields they are about.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::csrf::SessionForm;
use super::error::{UiError, UiResult};
use super::layout::{self, Nav};
use super::session::Session;
use super::webhook_detail::load;
use super::webhook_form::{self, form_errors, FormValues, Submission};
use crate::api::problem::ApiError;
use crate::api::webhooks::{apply_update, config_from, draft_from, insert_new};
use crate::api::AppState;
use crate::domain::scope::Scope;
use crate::domain::webhook::FieldError;
use crate::store::WebhookRecord;

/// `/admin/webhooks/new` and `/admin/webhooks/{id}/edit` (GET shows, POST saves).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks/new", get(new_form).post(create))
        .route("/admin/webhooks/{id}/edit", get(edit_form).post(update))
}

fn form_page(
    session: &Session,
    title: &str,
    action: &str,
    v: &FormValues,
    errs: &[FieldError],
    submit: &str,
) -> Markup {
    layout::page(
        title,
        session,
        Nav::Webhooks,
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/admin/webhooks" { "Webhooks" } " / " (title) }
            h1 { (title) }
            (webhook_form::render(session, action, v, errs, submit))
        },
    )
}

/// A form that came back with problems: 422 so scripts and tests can tell.
fn invalid(
    session: &Session,
    title: &str,
    action: &str,
    v: &FormValues,
    errs: &[FieldError],
    submit: &str,
) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        form_page(session, title, action, v, errs, submit),
    )
        .into_response()
}

async fn new_form(session: Session) -> UiResult<Markup> {
    session.require(Scope::WebhooksWrite)?;
    let v = FormValues::default();
    Ok(form_page(
        &session,
        "Create webhook",
        "/admin/webhooks/new",
        &v,
        &[],
        "Create webhook",
    ))
}

/// Splits an API error into form problems (shown on the form) and real failures.
fn problems(e: ApiError, pre: Vec<FieldError>, rows: &[usize]) -> Result<Vec<FieldError>, UiError> {
    let mut errs = pre;
    match e {
        ApiError::Validation(v) => errs.extend(v),
        ApiError::Conflict(m) => errs.push(FieldError::new("form", m)),
        other => return Err(other.into()),
    }
    Ok(form_errors(errs, rows))
}

async fn create(
    State(state): State<AppState>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::WebhooksWrite)?;
    let Submission {
        input,
        values,
        rows,
        errors,
    } = webhook_form::parse(&form, None);
    let (title, action, submit) = ("Create webhook", "/admin/webhooks/new", "Create webhook");
    let checked = draft_from(input, None, false).and_then(|d| config_from(&state, d, None));
    let config = match checked {
        Ok(c) if errors.is_empty() => c,
        Ok(_) => {
            return Ok(invalid(
                &session,
                title,
                action,
                &values,
                &form_errors(errors, &rows),
                submit,
            ))
        }
        Err(e) => {
            let errs = problems(e, errors, &rows)?;
            return Ok(invalid(&session, title, action, &values, &errs, submit));
        }
    };
    let (rec, secret) = match insert_new(&state, session.caller.tenant_id, config).await {
        Ok(ok) => ok,
        Err(e) => {
            let errs = problems(e, Vec::new(), &rows)?;
            return Ok(invalid(&session, title, action, &values, &errs, submit));
        }
    };
    tracing::info!(tenant = %session.caller.tenant, webhook_id = %rec.id, "webhook created in the admin UI");
    Ok(secret_page(&session, &rec, &secret, true))
}

/// The one page that shows a signing secret: after create and after rotation. Never
/// cached; reloading it does not show the secret again (it is not stored in plaintext).
pub fn secret_page(session: &Session, w: &WebhookRecord, secret: &str, created: bool) -> Response {
    let title = if created {
        "Webhook created"
    } else {
        "Signing secret rotated"
    };
    let href = format!("/admin/webhooks/{}", w.id);
    let body = layout::page(
        title,
        session,
        Nav::Webhooks,
        html! {
            h1 { (title) }
            (layout::notice("ok", &format!("“{}” is saved.", w.config.name)))
            div.card.secret {
                label for="secret" { "Signing secret" }
                div.copy-row {
                    input #secret readonly value=(secret) spellcheck="false" autocomplete="off";
                    button.secondary type="button" data-copy="#secret" { "Copy" }
                }
                p.help {
                    strong { "This is the only time the secret is shown." }
                    " Receivers use it to verify the " code { "webhook-signature" } " header (Standard Webhooks)."
                    @if !created { " The previous secret keeps signing too for a while, so receivers can switch over." }
                }
            }
            p.actions {
                a.button.primary href=(href) { "Go to the webhook" }
                a.button.secondary href="/admin/webhooks" { "All webhooks" }
            }
        },
    );
    ([(header::CACHE_CONTROL, "no-store")], body).into_response()
}

async fn edit_form(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> UiResult<Markup> {
    session.require(Scope::WebhooksWrite)?;
    let w = load(&state, &session, &id).await?;
    let action = format!("/admin/webhooks/{}/edit", w.id);
    let title = format!("Edit “{}”", w.config.name);
    Ok(form_page(
        &session,
        &title,
        &action,
        &FormValues::from_record(&w),
        &[],
        "Save changes",
    ))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::WebhooksWrite)?;
    let w = load(&state, &session, &id).await?;
    let Submission {
        input,
        values,
        rows,
        errors,
    } = webhook_form::parse(&form, Some(&w));
    let action = format!("/admin/webhooks/{}/edit", w.id);
    let title = format!("Edit “{}”", w.config.name);
    if !errors.is_empty() {
        // Run the API's validation too, so every problem is reported at once.
        let more = match draft_from(input, Some(&w), false)
            .and_then(|d| config_from(&state, d, Some(&w.config.url)))
        {
            Ok(_) => Vec::new(),
            Err(ApiError::Validation(v)) => v,
            Err(e) => return Err(e.into()),
        };
        let errs = form_errors(errors.into_iter().chain(more).collect(), &rows);
        return Ok(invalid(&session, &title, &action, &values, &errs, "Save changes"));
    }
    match apply_update(&state, session.caller.tenant_id, w.id, input, false).await {
        Ok(rec) => {
            tracing::info!(tenant = %session.caller.tenant, webhook_id = %rec.id, "webhook updated in the admin UI");
            Ok(Redirect::to(&format!("/admin/webhooks/{}?notice=saved", rec.id)).into_response())
        }
        Err(e) => {
            let errs = problems(e, Vec::new(), &rows)?;
            Ok(invalid(&session, &title, &action, &values, &errs, "Save changes"))
        }
    }
}
