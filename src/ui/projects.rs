//! Projects: a list, and a project page that edits the project's Projectrak fields (one
//! input per field type), its stories and its key dates — so a person can change
//! something and watch a webhook fire, from the browser alone. Every change goes through
//! [`crate::tracker::apply`], the same path as the JSON API, so it is validated the same
//! way and writes its event (and deliveries) in the same transaction.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::csrf::{self, SessionForm};
use super::error::{UiError, UiResult};
use super::layout::{self, Nav};
use super::project_fields::{self, Choices};
use super::project_items;
use super::session::Session;
use crate::api::AppState;
use crate::domain::event_type::EntityKind;
use crate::domain::scope::Scope;
use crate::domain::webhook::FieldError;
use crate::store::{ChangeOp, ChangeOutcome, EntityRow, StoreError};
use crate::tracker;

/// `/admin/projects…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/projects", get(list).post(create))
        .route("/admin/projects/{id}", get(show).post(save_fields))
        .merge(project_items::router())
}

/// Most projects the list (and project pickers) show.
const MAX_LISTED: i64 = 500;

/// A change that was refused for bad input, or went through.
pub enum Changed {
    /// Applied (`true`) or nothing differed (`false`); the entity's id unless deleted.
    Done(bool, Option<i64>),
    /// Refused: every problem, naming its field.
    Invalid(Vec<FieldError>),
}

/// Runs a tracker change as the session's user, through the same function the API uses.
pub async fn change(
    state: &AppState,
    session: &Session,
    kind: EntityKind,
    op: ChangeOp,
    body: Map<String, Value>,
) -> UiResult<Changed> {
    session.require(Scope::EntitiesWrite)?;
    let c = &session.caller;
    let store = state.store.as_ref();
    let actor = tracker::actor(store, c.tenant_id, &c.user, None, false).await?;
    let change = tracker::Change {
        tenant_id: c.tenant_id,
        tenant: &c.tenant,
        kind,
        op,
        body,
        actor: &actor,
        fields_version: c.fields_version,
        webhooks_version: c.webhooks_version,
    };
    match tracker::apply(store, &state.field_cache, change).await {
        Ok(ChangeOutcome::Unchanged(row)) => Ok(Changed::Done(false, Some(row.id))),
        Ok(ChangeOutcome::Applied { row, .. }) => Ok(Changed::Done(true, row.map(|r| r.id))),
        Err(StoreError::Invalid(errs)) => Ok(Changed::Invalid(errs)),
        Err(StoreError::Conflict(m)) => Ok(Changed::Invalid(vec![FieldError::new("form", m)])),
        Err(e) => Err(e.into()),
    }
}

/// The project `id` of the session's tenant.
pub async fn load(state: &AppState, session: &Session, id: &str) -> UiResult<EntityRow> {
    let id = id.parse::<i64>().map_err(|_| UiError::NotFound("project"))?;
    state
        .store
        .get_entity(session.caller.tenant_id, EntityKind::Project, id)
        .await?
        .ok_or(UiError::NotFound("project"))
}

async fn all_projects(state: &AppState, session: &Session) -> UiResult<Vec<EntityRow>> {
    let t = session.caller.tenant_id;
    Ok(state
        .store
        .list_entities(t, EntityKind::Project, None, 0, MAX_LISTED)
        .await?)
}

fn str_attr(row: &EntityRow, k: &str) -> String {
    row.data
        .get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn list_page(
    session: &Session,
    projects: &[EntityRow],
    errs: &[FieldError],
    key: &str,
    name: &str,
) -> Markup {
    let err = |f: &str| errs.iter().find(|e| e.field == f).map(|e| e.message.clone());
    let content = html! {
        h1 { "Projects" }
        p.lead { "Changing a project, its fields, stories or key dates records an event; "
            "webhooks subscribed to it are notified." }
        @if projects.is_empty() { div.empty { p { "No projects yet." } } }
        @else {
            div.table-wrap { table.list {
                caption.sr-only { "Projects" }
                thead { tr { th scope="col" { "Key" } th scope="col" { "Name" } th scope="col" { "Updated" } } }
                tbody { @for p in projects { tr {
                    td data-label="Key" { code { (str_attr(p, "key")) } }
                    td data-label="Name" { a href={ "/admin/projects/" (p.id) } { (p.name()) } }
                    td data-label="Updated" { (layout::exact(p.updated_at)) }
                } } }
            } }
        }
        @if session.can(Scope::EntitiesWrite) {
            h2 #new-h { "New project" }
            @for e in errs.iter().filter(|e| e.field == "form") { (layout::notice("error", &e.message)) }
            form.card.inline-form method="post" action="/admin/projects" aria-labelledby="new-h" {
                (csrf::field(session))
                div.field {
                    label for="key" { "Key" }
                    input #key name="key" value=(key) required maxlength="32" aria-invalid=[err("key").map(|_| "true")];
                    @if let Some(m) = err("key") { p.error { (m) } }
                }
                div.field {
                    label for="pname" { "Name" }
                    input #pname name="name" value=(name) required aria-invalid=[err("name").map(|_| "true")];
                    @if let Some(m) = err("name") { p.error { (m) } }
                }
                button.primary type="submit" { "Create project" }
            }
        }
    };
    layout::page("Projects", session, Nav::Projects, content)
}

async fn list(State(state): State<AppState>, session: Session) -> UiResult<Markup> {
    let projects = all_projects(&state, &session).await?;
    Ok(list_page(&session, &projects, &[], "", ""))
}

async fn create(
    State(state): State<AppState>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    let (key, name) = (form.text("key"), form.text("name"));
    let mut body = Map::new();
    body.insert("key".into(), key.clone().into());
    body.insert("name".into(), name.clone().into());
    let op = ChangeOp::Create { parent: None };
    match change(&state, &session, EntityKind::Project, op, body).await? {
        Changed::Invalid(errs) => {
            let projects = all_projects(&state, &session).await?;
            let page = list_page(&session, &projects, &errs, &key, &name);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Changed::Done(_, Some(id)) => {
            Ok(Redirect::to(&format!("/admin/projects/{id}?notice=created")).into_response())
        }
        Changed::Done(_, None) => Ok(Redirect::to("/admin/projects").into_response()),
    }
}

/// `?notice=` codes of the project page.
#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

fn notice(code: Option<&str>) -> Option<(&'static str, &'static str)> {
    Some(match code? {
        "created" => ("ok", "Project created (a Project:Created event was recorded)."),
        "saved" => (
            "ok",
            "Saved. A Project:Updated event was recorded; subscribed webhooks whose format reports this change are being notified.",
        ),
        "unchanged" => ("info", "Nothing changed, so no event was recorded."),
        "story" => ("ok", "Story saved. A Story event was recorded."),
        "key-date" => ("ok", "Key date saved. A KeyDate event was recorded."),
        "deleted" => ("ok", "Deleted. A Deleted event was recorded."),
        _ => return None,
    })
}

/// Renders the project page, with the submitted values and problems when a form came back.
pub async fn page(
    state: &AppState,
    session: &Session,
    p: &EntityRow,
    submitted: Option<&super::form::FormData>,
    errs: &[FieldError],
    notice_code: Option<&str>,
) -> UiResult<Markup> {
    let t = session.caller.tenant_id;
    let defs = tracker::fields(state.store.as_ref(), t).await?;
    let users = state.store.list_users(t).await?;
    let projects = all_projects(state, session).await?;
    let choices = Choices {
        users: &users,
        projects: &projects,
    };
    let stored = p
        .data
        .get("fields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let value_of = |id: i64| {
        stored
            .iter()
            .find(|e| e["id"] == id)
            .map(|e| e["value"].clone())
            .unwrap_or(Value::Null)
    };
    let write = session.can(Scope::EntitiesWrite);
    let err_for = |f: &str| errs.iter().find(|e| e.field == f).map(|e| e.message.as_str());
    let name = submitted.map_or_else(|| p.name().to_owned(), |f| f.text("name"));
    let items = project_items::sections(state, session, p).await?;
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/admin/projects" { "Projects" } " / " (p.name()) }
        @if let Some((kind, text)) = notice(notice_code) { (layout::notice(kind, text)) }
        @if !errs.is_empty() {
            div.notice.notice-error role="alert" {
                p { strong { "Nothing was saved:" } }
                ul { @for e in errs { li { (e.message) } } }
            }
        }
        h1 { (p.name()) " " span.muted { code { (str_attr(p, "key")) } } }
        section aria-labelledby="fields-h" {
            h2 #fields-h { "Project fields" }
            form.webhook-form method="post" action={ "/admin/projects/" (p.id) } {
                (csrf::field(session))
                fieldset disabled[!write] {
                    legend.sr-only { "Project fields" }
                    div.field {
                        label for="name" { "Name" }
                        input #name name="name" value=(name) aria-invalid=[err_for("name").map(|_| "true")];
                        @if let Some(m) = err_for("name") { p.error { (m) } }
                    }
                    @for d in &defs {
                        @let current = value_of(d.id);
                        @let shown = match submitted {
                            Some(f) if d.field_type.is_settable() && project_fields::present(d, f) => {
                                project_fields::submitted(d, f)
                            }
                            _ => project_fields::shown(d, &current),
                        };
                        (project_fields::input(d, &shown, &choices, err_for(&format!("fields.{}", d.id))))
                    }
                }
                @if write { div.actions { button.primary type="submit" { "Save fields" } } }
                @else { p.muted { "Your token cannot change tracker data (it needs entities:write)." } }
            }
        }
        (items)
    };
    Ok(layout::page(p.name(), session, Nav::Projects, content))
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> UiResult<Markup> {
    let p = load(&state, &session, &id).await?;
    page(&state, &session, &p, None, &[], q.notice.as_deref()).await
}

async fn save_fields(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SessionForm { session, form }: SessionForm,
) -> UiResult<Response> {
    session.require(Scope::EntitiesWrite)?;
    let p = load(&state, &session, &id).await?;
    let defs = tracker::fields(state.store.as_ref(), session.caller.tenant_id).await?;
    let stored = p
        .data
        .get("fields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut fields = Map::new();
    for d in defs
        .iter()
        .filter(|d| d.field_type.is_settable() && project_fields::present(d, &form))
    {
        let current = stored
            .iter()
            .find(|e| e["id"] == d.id)
            .map(|e| e["value"].clone())
            .unwrap_or(Value::Null);
        let now = project_fields::submitted(d, &form);
        if now != project_fields::shown(d, &current) {
            fields.insert(d.id.to_string(), project_fields::to_input(d, &now, &current));
        }
    }
    let mut body = Map::new();
    let name = form.text("name");
    if form.get("name").is_some() && name != p.name() {
        body.insert("name".into(), name.into());
    }
    if !fields.is_empty() {
        body.insert("fields".into(), Value::Object(fields));
    }
    if body.is_empty() {
        return Ok(Redirect::to(&format!("/admin/projects/{}?notice=unchanged", p.id)).into_response());
    }
    match change(
        &state,
        &session,
        EntityKind::Project,
        ChangeOp::Update { id: p.id },
        body,
    )
    .await?
    {
        Changed::Done(changed, _) => {
            let code = if changed { "saved" } else { "unchanged" };
            Ok(Redirect::to(&format!("/admin/projects/{}?notice={code}", p.id)).into_response())
        }
        Changed::Invalid(errs) => {
            let html = page(&state, &session, &p, Some(&form), &errs, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html).into_response())
        }
    }
}
