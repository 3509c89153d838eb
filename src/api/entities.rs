//! Tracker data: `/@{tenant}/v1/{projects,stories,comments,tasks,ideas,key-dates,portfolios,programs}`.
//! Every kind shares the same five handlers (create, list, get, update, delete); what
//! differs — attributes and parent — comes from the domain's attribute tables, so each
//! kind validates and answers the same way. Every change writes its event atomically.

use super::query::ApiQuery;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AnyScope, Authed, Caller, EntitiesWrite};
use super::json::ApiJson;
use super::problem::{ApiError, ApiResult};
use super::{AppState, IdPath};
use crate::domain::attrs::norm_key;
use crate::domain::event_type::EntityKind;
use crate::domain::scope::Scope;
use crate::domain::webhook::FieldError;
use crate::store::{ChangeOp, ChangeOutcome, EntityRow};
use crate::tracker;

/// `{"data": entity}` — the entity's canonical snapshot.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntityEnvelope {
    /// The snapshot (schema per kind: see the README's "Tracker data" section).
    #[schema(value_type = Object)]
    pub data: Value,
}

/// `{"data": [entity…], "next": cursor}`
#[derive(Debug, Serialize, ToSchema)]
pub struct EntityListEnvelope {
    /// Snapshots in id order (stories: list order).
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
    /// Pass as `after` for the next page; null at the end.
    pub next: Option<i64>,
}

/// Paging and parent filter for lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Return entities with ids greater than this (cursor).
    pub after: Option<i64>,
    /// Page size, 1-500 (default 100).
    pub limit: Option<i64>,
    /// Only children of this project (stories, tasks, key dates).
    pub project_id: Option<i64>,
    /// Only comments of this story.
    pub story_id: Option<i64>,
    /// Only key dates of this portfolio.
    pub portfolio_id: Option<i64>,
    /// Only key dates of this program.
    pub program_id: Option<i64>,
}

/// The body keys naming a parent, per kind.
fn parent_keys(kind: EntityKind) -> &'static [(&'static str, EntityKind)] {
    match kind {
        EntityKind::Story | EntityKind::Task => &[("projectid", EntityKind::Project)],
        EntityKind::Comment => &[("storyid", EntityKind::Story)],
        EntityKind::KeyDate => &[
            ("projectid", EntityKind::Project),
            ("portfolioid", EntityKind::Portfolio),
            ("programid", EntityKind::Program),
        ],
        _ => &[],
    }
}

/// Removes parent keys from `body`, returning the parent they name (if any).
fn take_parent(
    kind: EntityKind,
    body: &mut Map<String, Value>,
) -> ApiResult<Option<(EntityKind, i64, String)>> {
    let mut found = None;
    for (key, pk) in parent_keys(kind) {
        let present: Vec<String> = body.keys().filter(|k| norm_key(k) == *key).cloned().collect();
        for k in present {
            let v = body.remove(&k).unwrap_or(Value::Null);
            if v.is_null() {
                continue;
            }
            let id = v
                .as_i64()
                .ok_or_else(|| ApiError::field(k.clone(), format!("{k} must be a numeric id")))?;
            if found.is_some() {
                return Err(ApiError::field(k, "give exactly one parent"));
            }
            found = Some((*pk, id, k));
        }
    }
    Ok(found)
}

fn body_object(v: Value) -> ApiResult<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::field("body", "the body must be a JSON object")),
    }
}

fn parse_id(kind: EntityKind, id: &str) -> ApiResult<i64> {
    id.parse::<i64>().map_err(|_| ApiError::NotFound(kind.as_str()))
}

async fn actor(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<crate::domain::event::UserRef> {
    let acting = headers
        .get("herald-acting-user")
        .map(|v| v.to_str().unwrap_or(""));
    if acting == Some("") {
        return Err(ApiError::field("Herald-Acting-User", "must be a user account id"));
    }
    let may = caller.scopes.grants(Scope::EventsWrite);
    Ok(tracker::actor(state.store.as_ref(), caller.tenant_id, &caller.user, acting, may).await?)
}

fn location(caller: &Caller, kind: EntityKind, id: i64) -> String {
    format!("/@{}/v1/{}/{id}", caller.tenant, collection(kind))
}

/// The collection path segment of a kind.
pub fn collection(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Project => "projects",
        EntityKind::Story => "stories",
        EntityKind::Comment => "comments",
        EntityKind::Task => "tasks",
        EntityKind::Idea => "ideas",
        EntityKind::KeyDate => "key-dates",
        EntityKind::Portfolio => "portfolios",
        EntityKind::Program => "programs",
        EntityKind::Webhook => "Webhooks",
    }
}

/// Runs one change as `caller` (or the acting user) through the tracker's change path.
async fn change(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    kind: EntityKind,
    op: ChangeOp,
    body: Map<String, Value>,
) -> ApiResult<ChangeOutcome> {
    let actor = actor(state, caller, headers).await?;
    let change = tracker::Change {
        tenant_id: caller.tenant_id,
        tenant: &caller.tenant,
        kind,
        op,
        body,
        actor: &actor,
        fields_version: caller.fields_version,
        webhooks_version: caller.webhooks_version,
    };
    Ok(tracker::apply(state.store.as_ref(), &state.field_cache, change).await?)
}

async fn create(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    kind: EntityKind,
    body: Value,
) -> ApiResult<Response> {
    let mut body = body_object(body)?;
    let parent = take_parent(kind, &mut body)?;
    if parent.is_none() && !parent_keys(kind).is_empty() {
        let names: Vec<String> = parent_keys(kind)
            .iter()
            .map(|(k, _)| k.replace("id", "_id"))
            .collect();
        return Err(ApiError::Validation(vec![FieldError::new(
            names[0].clone(),
            format!("a {} needs its parent: {}", kind.as_str(), names.join(" or ")),
        )]));
    }
    let sent_as = parent.as_ref().map(|(_, _, k)| k.clone());
    let parent = parent.map(|(k, id, _)| (k, id));
    let outcome = change(&state, &caller, &headers, kind, ChangeOp::Create { parent }, body)
        .await
        .map_err(|e| match (e, sent_as) {
            // A parent that does not exist is named as the request spelled it
            // (`projectId`, `ProjectId`), not by the store's canonical name.
            (ApiError::Validation(mut errs), Some(key)) => {
                for err in errs
                    .iter_mut()
                    .filter(|e| e.field.ends_with("_id") && norm_key(&e.field) == norm_key(&key))
                {
                    err.field = key.clone();
                }
                ApiError::Validation(errs)
            }
            (e, _) => e,
        })?;
    let row = applied_row(outcome)?;
    let loc = location(&caller, kind, row.id);
    let body = EntityEnvelope { data: row.snapshot() };
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)], Json(body)).into_response())
}

fn applied_row(outcome: ChangeOutcome) -> ApiResult<EntityRow> {
    match outcome {
        ChangeOutcome::Unchanged(row) | ChangeOutcome::Applied { row: Some(row), .. } => Ok(row),
        ChangeOutcome::Applied { row: None, .. } => {
            Err(ApiError::Internal(anyhow::anyhow!("change returned no row")))
        }
    }
}

async fn update(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    kind: EntityKind,
    id: &str,
    body: Value,
) -> ApiResult<Json<EntityEnvelope>> {
    let id = parse_id(kind, id)?;
    let mut body = body_object(body)?;
    // A child cannot move to another parent; parent keys are ignored on update.
    take_parent(kind, &mut body)?;
    let outcome = change(&state, &caller, &headers, kind, ChangeOp::Update { id }, body).await?;
    Ok(Json(EntityEnvelope {
        data: applied_row(outcome)?.snapshot(),
    }))
}

async fn delete(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    kind: EntityKind,
    id: &str,
) -> ApiResult<StatusCode> {
    let id = parse_id(kind, id)?;
    change(
        &state,
        &caller,
        &headers,
        kind,
        ChangeOp::Delete { id },
        Map::new(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_one(
    state: AppState,
    caller: Caller,
    kind: EntityKind,
    id: &str,
) -> ApiResult<Json<EntityEnvelope>> {
    let id = parse_id(kind, id)?;
    let row = state
        .store
        .get_entity(caller.tenant_id, kind, id)
        .await?
        .ok_or(ApiError::NotFound(kind.as_str()))?;
    Ok(Json(EntityEnvelope { data: row.snapshot() }))
}

async fn list(
    state: AppState,
    caller: Caller,
    kind: EntityKind,
    q: ListQuery,
) -> ApiResult<Json<EntityListEnvelope>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadQuery(
            "limit".into(),
            "limit must be between 1 and 500".into(),
        ));
    }
    let parent = q.project_id.or(q.story_id).or(q.portfolio_id).or(q.program_id);
    let rows = state
        .store
        .list_entities(caller.tenant_id, kind, parent, q.after.unwrap_or(0), limit)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.iter().map(|r| r.id).max())
        .flatten();
    Ok(Json(EntityListEnvelope {
        data: rows.iter().map(EntityRow::snapshot).collect(),
        next,
    }))
}

macro_rules! entity_resource {
    ($module:ident, $kind:expr, $coll:tt, $item:tt, $tag:tt) => {
        /// Handlers for one entity kind (thin wrappers so each has its own OpenAPI entry).
        pub mod $module {
            use super::*;

            /// Create.
            #[utoipa::path(post, path = $coll, tag = $tag, params(("tenant" = String, Path, description = "Tenant slug")),
                request_body(content = Object, description = "Attributes (see README: Tracker data)"),
                responses((status = 201, body = EntityEnvelope), (status = 404, body = crate::api::problem::Problem),
                          (status = 409, body = crate::api::problem::Problem), (status = 422, body = crate::api::problem::Problem)),
                security(("bearer" = [])))]
            pub async fn create(State(s): State<AppState>, a: Authed<EntitiesWrite>, h: HeaderMap, ApiJson(b): ApiJson<Value>) -> ApiResult<Response> {
                super::create(s, a.caller, h, $kind, b).await
            }

            /// List (cursor-paged).
            #[utoipa::path(get, path = $coll, tag = $tag, params(("tenant" = String, Path, description = "Tenant slug"), ListQuery),
                responses((status = 200, body = EntityListEnvelope)), security(("bearer" = [])))]
            pub async fn list(State(s): State<AppState>, a: Authed<AnyScope>, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<Json<EntityListEnvelope>> {
                super::list(s, a.caller, $kind, q).await
            }

            /// Get one.
            #[utoipa::path(get, path = $item, tag = $tag,
                params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Numeric id")),
                responses((status = 200, body = EntityEnvelope), (status = 404, body = crate::api::problem::Problem)), security(("bearer" = [])))]
            pub async fn get_one(State(s): State<AppState>, a: Authed<AnyScope>, Path(p): Path<IdPath>) -> ApiResult<Json<EntityEnvelope>> {
                super::get_one(s, a.caller, $kind, &p.id).await
            }

            /// Change some attributes (a change that changes nothing writes no event).
            #[utoipa::path(patch, path = $item, tag = $tag,
                params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Numeric id")),
                request_body(content = Object, description = "Attributes to change"),
                responses((status = 200, body = EntityEnvelope), (status = 404, body = crate::api::problem::Problem),
                          (status = 422, body = crate::api::problem::Problem)), security(("bearer" = [])))]
            pub async fn update(State(s): State<AppState>, a: Authed<EntitiesWrite>, h: HeaderMap, Path(p): Path<IdPath>, ApiJson(b): ApiJson<Value>) -> ApiResult<Json<EntityEnvelope>> {
                super::update(s, a.caller, h, $kind, &p.id, b).await
            }

            /// Same as PATCH: the attributes sent are merged into the stored ones (PPM
            /// Express clients send PUT).
            #[utoipa::path(put, path = $item, tag = $tag,
                params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Numeric id")),
                request_body(content = Object, description = "Attributes to change (merged, as PATCH)"),
                responses((status = 200, body = EntityEnvelope), (status = 404, body = crate::api::problem::Problem),
                          (status = 422, body = crate::api::problem::Problem)), security(("bearer" = [])))]
            pub async fn put_update(State(s): State<AppState>, a: Authed<EntitiesWrite>, h: HeaderMap, Path(p): Path<IdPath>, ApiJson(b): ApiJson<Value>) -> ApiResult<Json<EntityEnvelope>> {
                super::update(s, a.caller, h, $kind, &p.id, b).await
            }

            /// Delete (children go with it).
            #[utoipa::path(delete, path = $item, tag = $tag,
                params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Numeric id")),
                responses((status = 204), (status = 404, body = crate::api::problem::Problem)), security(("bearer" = [])))]
            pub async fn delete(State(s): State<AppState>, a: Authed<EntitiesWrite>, h: HeaderMap, Path(p): Path<IdPath>) -> ApiResult<StatusCode> {
                super::delete(s, a.caller, h, $kind, &p.id).await
            }

            /// Routes relative to `/{tenant}/v1`.
            pub fn router() -> Router<AppState> {
                let coll = format!("/{}", super::collection($kind));
                Router::new()
                    .route(&coll, get(list).post(create))
                    .route(&format!("{coll}/{{id}}"), get(get_one).patch(update).put(put_update).delete(delete))
            }
        }
    };
}

entity_resource!(
    projects,
    EntityKind::Project,
    "/@{tenant}/v1/projects",
    "/@{tenant}/v1/projects/{id}",
    "projects"
);
entity_resource!(
    stories,
    EntityKind::Story,
    "/@{tenant}/v1/stories",
    "/@{tenant}/v1/stories/{id}",
    "stories"
);
entity_resource!(
    comments,
    EntityKind::Comment,
    "/@{tenant}/v1/comments",
    "/@{tenant}/v1/comments/{id}",
    "stories"
);
entity_resource!(
    tasks,
    EntityKind::Task,
    "/@{tenant}/v1/tasks",
    "/@{tenant}/v1/tasks/{id}",
    "ppm"
);
entity_resource!(
    ideas,
    EntityKind::Idea,
    "/@{tenant}/v1/ideas",
    "/@{tenant}/v1/ideas/{id}",
    "ppm"
);
entity_resource!(
    key_dates,
    EntityKind::KeyDate,
    "/@{tenant}/v1/key-dates",
    "/@{tenant}/v1/key-dates/{id}",
    "ppm"
);
entity_resource!(
    portfolios,
    EntityKind::Portfolio,
    "/@{tenant}/v1/portfolios",
    "/@{tenant}/v1/portfolios/{id}",
    "ppm"
);
entity_resource!(
    programs,
    EntityKind::Program,
    "/@{tenant}/v1/programs",
    "/@{tenant}/v1/programs/{id}",
    "ppm"
);

/// All entity routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(projects::router())
        .merge(stories::router())
        .merge(comments::router())
        .merge(tasks::router())
        .merge(ideas::router())
        .merge(key_dates::router())
        .merge(portfolios::router())
        .merge(programs::router())
}
