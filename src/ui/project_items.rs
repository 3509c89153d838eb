//! A project's stories and key dates on the project page: each row is its own small form
//! (save, delete), plus a form to add one. Changes go through the same tracker path as the
//! API; a refused change re-renders the project page with the problems listed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Router;
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::csrf::{self, SessionForm};
use super::error::{UiError, UiResult};
use super::form::FormData;
use super::layout::{self, Nav};
use super::projects::{self, change, Changed};
use super::session::Session;
use crate::api::AppState;
use crate::domain::attrs::{STORY_STATES, STORY_TYPES};
use crate::domain::event_type::EntityKind;
use crate::domain::scope::Scope;
use crate::domain::webhook::FieldError;
use crate::store::{ChangeOp, EntityRow};

/// Story and key date routes under `/admin/projects/{pid}`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/projects/{pid}/{kind}/new", post(create))
        .route("/admin/projects/{pid}/{kind}/{id}", post(save))
        .route("/admin/projects/{pid}/{kind}/{id}/delete", post(delete))
}

/// `stories` or `key-dates` in a path.
fn kind_of(segment: &str) -> UiResult<EntityKind> {
    match segment {
        "stories" => Ok(EntityKind::Story),
        "key-dates" => Ok(EntityKind::KeyDate),
        _ => Err(UiError::NotFound("page")),
    }
}

fn segment(kind: EntityKind) -> &'static str {
    if kind == EntityKind::Story {
        "stories"
    } else {
        "key-dates"
    }
}

fn s(row: &EntityRow, k: &str) -> String {
    match row.data.get(k) {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn select(name: &str, id: &str, label: &str, options: &[&str], current: &str) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) { @for o in options { option selected[*o == current] { (o) } } }
        }
    }
}

fn story_fields(row: Option<&EntityRow>, prefix: &str) -> Markup {
    let v = |k: &str| row.map(|r| s(r, k)).unwrap_or_default();
    let ty = row.map_or_else(|| "feature".to_owned(), |r| s(r, "story_type"));
    let st = row.map_or_else(|| "unscheduled".to_owned(), |r| s(r, "current_state"));
    html! {
        div.field.grow { label for={ (prefix) "-name" } { "Name" } input id={ (prefix) "-name" } name="name" value=(v("name")) required; }
        (select("story_type", &format!("{prefix}-type"), "Type", STORY_TYPES, &ty))
        (select("current_state", &format!("{prefix}-state"), "State", STORY_STATES, &st))
        div.field.narrow-input { label for={ (prefix) "-est" } { "Estimate" } input id={ (prefix) "-est" } name="estimate" value=(v("estimate")) inputmode="decimal"; }
    }
}

fn key_date_fields(row: Option<&EntityRow>, prefix: &str) -> Markup {
    let v = |k: &str| row.map(|r| s(r, k)).unwrap_or_default();
    let done = row
        .and_then(|r| r.data.get("is_complete"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    html! {
        div.field.grow { label for={ (prefix) "-name" } { "Name" } input id={ (prefix) "-name" } name="name" value=(v("name")) required; }
        div.field { label for={ (prefix) "-date" } { "Date" } input id={ (prefix) "-date" } type="date" name="date" value=(v("date")); }
        div.field.check.pad { input id={ (prefix) "-done" } type="checkbox" name="is_complete" checked[done]; label for={ (prefix) "-done" } { "Complete" } }
    }
}

fn item_rows(session: &Session, p: &EntityRow, kind: EntityKind, rows: &[EntityRow]) -> Markup {
    let seg = segment(kind);
    let write = session.can(Scope::EntitiesWrite);
    let fields = |row: Option<&EntityRow>, prefix: &str| match kind {
        EntityKind::Story => story_fields(row, prefix),
        _ => key_date_fields(row, prefix),
    };
    let noun = if kind == EntityKind::Story {
        "story"
    } else {
        "key date"
    };
    html! {
        @if rows.is_empty() { p.muted { "No " (if kind == EntityKind::Story { "stories" } else { "key dates" }) " yet." } }
        ul.items {
            @for r in rows {
                li.item {
                    form.item-row method="post" action={ "/admin/projects/" (p.id) "/" (seg) "/" (r.id) } aria-label={ (noun) " " (r.name()) } {
                        (csrf::field(session))
                        fieldset disabled[!write] { legend.sr-only { (noun) " " (r.name()) } (fields(Some(r), &format!("{seg}-{}", r.id))) }
                        @if write { button.secondary.small type="submit" { "Save" span.sr-only { " " (r.name()) } } }
                    }
                    @if write {
                        form.item-delete method="post" action={ "/admin/projects/" (p.id) "/" (seg) "/" (r.id) "/delete" }
                            data-confirm={ "Delete the " (noun) " “" (r.name()) "”?" } {
                            (csrf::field(session))
                            button.link type="submit" { "Delete" span.sr-only { " " (r.name()) } }
                        }
                    }
                }
            }
        }
        @if write {
            form.item-row.add method="post" action={ "/admin/projects/" (p.id) "/" (seg) "/new" } aria-label={ "New " (noun) } {
                (csrf::field(session))
                (fields(None, &format!("{seg}-new")))
                button.primary.small type="submit" { "Add " (noun) }
            }
        }
    }
}

/// The stories and key dates sections of the project page.
pub async fn sections(state: &AppState, session: &Session, p: &EntityRow) -> UiResult<Markup> {
    let t = session.caller.tenant_id;
    let mut stories = state
        .store
        .list_entities(t, EntityKind::Story, Some(p.id), 0, 500)
        .await?;
    // Listed in id order; shown in the project's order (`before_id`/`after_id`).
    stories.sort_by(|a, b| {
        let pos = |r: &EntityRow| r.position.unwrap_or(f64::MAX);
        pos(a).total_cmp(&pos(b)).then(a.id.cmp(&b.id))
    });
    let key_dates = state
        .store
        .list_entities(t, EntityKind::KeyDate, Some(p.id), 0, 500)
        .await?;
    Ok(html! {
        section aria-labelledby="stories-h" { h2 #stories-h { "Stories" } (item_rows(session, p, EntityKind::Story, &stories)) }
        section aria-labelledby="kd-h" { h2 #kd-h { "Key dates" } (item_rows(session, p, EntityKind::KeyDate, &key_dates)) }
    })
}

/// The submitted attributes of a story or key date.
fn body_from(kind: EntityKind, form: &FormData) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert("name".into(), form.text("name").into());
    let opt = |v: String| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::String(v)
        }
    };
    if kind == EntityKind::Story {
        b.insert("story_type".into(), form.text("story_type").into());
        b.insert("current_state".into(), form.text("current_state").into());
        let est = form.text("estimate");
        let est = match est.parse::<f64>() {
            Ok(x) => serde_json::Number::from_f64(x).map_or(Value::String(est), Value::Number),
            Err(_) => opt(est),
        };
        b.insert("estimate".into(), est);
    } else {
        b.insert("date".into(), opt(form.text("date")));
        b.insert("is_complete".into(), form.checked("is_complete").into());
    }
    b
}

async fn respond(
    state: &AppState,
    session: &Session,
    p: &EntityRow,
    kind: EntityKind,
    form: &FormData,
    outcome: Changed,
) -> UiResult<Response> {
    match outcome {
        Changed::Done(..) => {
            let code = if kind == EntityKind::Story {
                "story"
            } else {
                "key-date"
            };
            Ok(Redirect::to(&format!("/admin/projects/{}?notice={code}", p.id)).into_response())
        }
        Changed::Invalid(errs) => {
            let noun = if kind == EntityKind::Story {
                "Story"
            } else {
                "Key date"
            };
            let errs: Vec<FieldError> = errs
                .into_iter()
                .map(|e| FieldError::new(format!("item.{}", e.field), format!("{noun}: {}", e.message)))
                .collect();
            let _ = form;
            let html = projects::page(state, session, p, None, &errs, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response())
        }
    }
}

/// The child `id` of kind `kind` in project `p` (404 for anything else).
async fn child(
    state: &AppState,
    session: &Session,
    p: &EntityRow,
    kind: EntityKind,
    id: &str,
) -> UiResult<EntityRow> {
    let id = id.parse::<i64>().map_err(|_| UiError::NotFound("item"))?;
    state
        .store
        .get_entity(session.caller.tenant_id, kind, id)
        .await?
        .filter(|r| r.parent == Some((EntityKind::Project, p.id)))
        .ok_or(UiError::NotFound("item"))
}

async fn create(
    State(state): State<AppState>,
    Path((pid, seg)): Path<(String, String)>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    let kind = kind_of(&seg)?;
    let p = projects::load(&state, &session, &pid).await?;
    let op = ChangeOp::Create {
        parent: Some((EntityKind::Project, p.id)),
    };
    let outcome = change(&state, &session, kind, op, body_from(kind, &form)).await?;
    respond(&state, &session, &p, kind, &form, outcome).await
}

async fn save(
    State(state): State<AppState>,
    Path((pid, seg, id)): Path<(String, String, String)>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    let kind = kind_of(&seg)?;
    let p = projects::load(&state, &session, &pid).await?;
    let row = child(&state, &session, &p, kind, &id).await?;
    let outcome = change(
        &state,
        &session,
        kind,
        ChangeOp::Update { id: row.id },
        body_from(kind, &form),
    )
    .await?;
    respond(&state, &session, &p, kind, &form, outcome).await
}

async fn delete(
    State(state): State<AppState>,
    Path((pid, seg, id)): Path<(String, String, String)>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    let kind = kind_of(&seg)?;
    let p = projects::load(&state, &session, &pid).await?;
    let row = child(&state, &session, &p, kind, &id).await?;
    if form.get("confirmed") != Some("yes") {
        let noun = if kind == EntityKind::Story {
            "story"
        } else {
            "key date"
        };
        let title = format!("Delete this {noun}?");
        let q = format!(
            "Delete the {noun} “{}” of {}? This records a Deleted event.",
            row.name(),
            p.name()
        );
        let action = format!("/admin/projects/{}/{seg}/{}/delete", p.id, row.id);
        let back = format!("/admin/projects/{}", p.id);
        let page = layout::confirm(&session, Nav::Projects, (&title, &q), &action, "Delete", &back);
        return Ok(page.into_response());
    }
    change(
        &state,
        &session,
        kind,
        ChangeOp::Delete { id: row.id },
        Map::new(),
    )
    .await?;
    Ok(Redirect::to(&format!("/admin/projects/{}?notice=deleted", p.id)).into_response())
}
