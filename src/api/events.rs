//! The event log: `GET /@{tenant}/v1/events` (a cursor-paged feed, for receivers that missed
//! deliveries and for debugging) and `POST /@{tenant}/v1/events` (ingest: another system
//! publishes a change it made itself, so Herald can be the webhook layer beside it).

use super::query::ApiQuery;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::auth::{Authed, EventsWrite, WebhooksRead};
use super::json::ApiJson;
use super::problem::{ApiError, ApiResult};
use super::AppState;
use crate::domain::diff::diff;
use crate::domain::event::{Event, ParentRef, ProjectRef};
use crate::domain::event_type::{Action, EntityKind, EventType};
use crate::domain::webhook::FieldError;
use crate::store::IngestRequest;
use crate::timefmt::{now_ms, parse_rfc3339_ms};
use crate::tracker;

/// Routes relative to `/{tenant}/v1`.
pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(list).post(ingest))
}

/// Feed query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventQuery {
    /// Return events with `seq` greater than this (cursor; default 0).
    pub after: Option<i64>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<i64>,
    /// Comma-separated event types, e.g. `Project:Updated,Story:Created`.
    #[serde(rename = "type")]
    pub types: Option<String>,
}

/// `{"data": [event…], "next": cursor}`
#[derive(Debug, Serialize, ToSchema)]
pub struct EventListEnvelope {
    /// Events in `seq` order.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Event>,
    /// Pass as `after` to continue; equals the last `seq` (or the given cursor when empty).
    pub next: i64,
}

/// `{"data": event}` (`null` when an update changed nothing and no event was written).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventEnvelope {
    /// The event.
    #[schema(value_type = Object)]
    pub data: Option<Event>,
}

/// Read the event log.
///
/// Paging by `after` never skips an event: on PostgreSQL, where a tenant's changes commit
/// in parallel, a page waits for the tenant's changes still committing and lists nothing
/// a later commit could still precede.
#[utoipa::path(get, path = "/@{tenant}/v1/events", tag = "events",
    params(("tenant" = String, Path, description = "Tenant slug"), EventQuery),
    responses((status = 200, body = EventListEnvelope), (status = 400, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    a: Authed<WebhooksRead>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<EventListEnvelope>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadQuery(
            "limit".into(),
            "limit must be between 1 and 1000".into(),
        ));
    }
    let mut types = Vec::new();
    for t in q
        .types
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let et: EventType = t
            .parse()
            .map_err(|_| ApiError::BadQuery("type".into(), format!("unknown event type `{t}`")))?;
        types.push(et.to_string());
    }
    let after = q.after.unwrap_or(0);
    let events = state
        .store
        .list_events(a.caller.tenant_id, after, limit, &types)
        .await?;
    let next = events.last().map_or(after, |e| e.seq);
    Ok(Json(EventListEnvelope { data: events, next }))
}

/// An entity reference in an ingested event.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EntityIn {
    /// `project`, `story`, `comment`, `task`, `idea`, `key_date`, `portfolio`, `program`
    /// (PascalCase accepted).
    pub kind: String,
    /// Numeric id in the publishing system.
    pub id: i64,
    /// UUID (default: derived from tenant, kind and id, so it is stable).
    pub uuid: Option<Uuid>,
}

/// The project an ingested event belongs to.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectIn {
    /// Numeric id.
    pub id: i64,
    /// UUID (default: derived).
    pub uuid: Option<Uuid>,
    /// Key, e.g. `DEMO`.
    pub key: String,
    /// Name.
    pub name: String,
}

/// A change another system made, in Herald's snapshot schema (see docs/formats.md).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestIn {
    /// Event type, e.g. `Project:Updated` (default: from `before`/`after`).
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The entity that changed.
    pub entity: EntityIn,
    /// Its parent, if any.
    pub parent: Option<EntityIn>,
    /// Its project, if any.
    pub project: Option<ProjectIn>,
    /// Snapshot before (absent on create).
    #[schema(value_type = Object)]
    pub before: Option<Value>,
    /// Snapshot after (absent on delete).
    #[schema(value_type = Object)]
    pub after: Option<Value>,
    /// Account id of the author (default: the token's user or `Herald-Acting-User`).
    pub actor: Option<String>,
    /// When it happened: epoch ms or RFC 3339 (default: now).
    #[schema(value_type = Object)]
    pub occurred_at: Option<Value>,
    /// The project's change counter (default: Herald counts per project).
    pub project_version: Option<i64>,
    /// Repeating a call with the same key returns the first event instead of a new one.
    pub idempotency_key: Option<String>,
}

fn derived_uuid(tenant: &str, kind: EntityKind, id: i64) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("herald:{tenant}:{}:{id}", kind.as_str()).as_bytes(),
    )
}

fn parse_kind(field: &str, s: &str) -> ApiResult<EntityKind> {
    let norm = crate::domain::attrs::norm_key(s);
    EntityKind::ALL
        .into_iter()
        .find(|k| crate::domain::attrs::norm_key(k.as_str()) == norm && *k != EntityKind::Webhook)
        .ok_or_else(|| ApiError::field(field, format!("unknown entity kind `{s}`")))
}

fn snapshot(field: &str, v: Option<Value>, id: i64, uuid: Uuid) -> ApiResult<Option<Value>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(mut m)) => {
            m.entry("id").or_insert(id.into());
            m.entry("uuid").or_insert(uuid.to_string().into());
            Ok(Some(Value::Object(m)))
        }
        Some(_) => Err(ApiError::field(field, format!("{field} must be an object"))),
    }
}

/// Publish a change made elsewhere (idempotent on `idempotencyKey`).
#[utoipa::path(post, path = "/@{tenant}/v1/events", tag = "events",
    params(("tenant" = String, Path, description = "Tenant slug")), request_body = IngestIn,
    responses((status = 201, body = EventEnvelope), (status = 200, body = EventEnvelope, description = "Replay of an idempotency key, or an update that changed nothing"),
              (status = 422, body = super::problem::Problem)), security(("bearer" = [])))]
pub async fn ingest(
    State(state): State<AppState>,
    a: Authed<EventsWrite>,
    headers: HeaderMap,
    ApiJson(i): ApiJson<IngestIn>,
) -> ApiResult<Response> {
    let c = &a.caller;
    let kind = parse_kind("entity.kind", &i.entity.kind)?;
    let uuid = i
        .entity
        .uuid
        .unwrap_or_else(|| derived_uuid(&c.tenant, kind, i.entity.id));
    let before = snapshot("before", i.before, i.entity.id, uuid)?;
    let after = snapshot("after", i.after, i.entity.id, uuid)?;
    let action = match (&before, &after) {
        (None, Some(_)) => Action::Created,
        (Some(_), Some(_)) => Action::Updated,
        (Some(_), None) => Action::Deleted,
        (None, None) => {
            return Err(ApiError::field(
                "after",
                "give `after` (create), both (update) or `before` (delete)",
            ))
        }
    };
    let event_type = match i.event_type.as_deref() {
        Some(t) => {
            let et: EventType = t
                .parse()
                .map_err(|_| ApiError::field("type", format!("unknown event type `{t}`")))?;
            if et.kind() != kind || et.action() != action {
                return Err(ApiError::field(
                    "type",
                    format!(
                        "`{t}` does not match a {} with these before/after snapshots",
                        kind.as_str()
                    ),
                ));
            }
            et
        }
        None => EventType::new(kind, action).ok_or_else(|| {
            ApiError::field("entity.kind", format!("{} changes are not events", kind.as_str()))
        })?,
    };
    let occurred_at = match &i.occurred_at {
        None | Some(Value::Null) => now_ms(),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|ms| (0..=253_402_300_799_999).contains(ms))
            .ok_or_else(|| ApiError::field("occurredAt", "occurredAt must be epoch ms or RFC 3339"))?,
        Some(Value::String(s)) => parse_rfc3339_ms(s)
            .filter(|ms| *ms >= 0)
            .ok_or_else(|| ApiError::field("occurredAt", "occurredAt must be epoch ms or RFC 3339"))?,
        Some(_) => {
            return Err(ApiError::field(
                "occurredAt",
                "occurredAt must be epoch ms or RFC 3339",
            ))
        }
    };
    if let Some(k) = &i.idempotency_key {
        if k.is_empty() || k.len() > 200 {
            return Err(ApiError::field(
                "idempotencyKey",
                "idempotencyKey must be 1-200 bytes of UTF-8",
            ));
        }
    }
    let acting = i
        .actor
        .as_deref()
        .or_else(|| headers.get("herald-acting-user").and_then(|v| v.to_str().ok()));
    let actor = tracker::actor(state.store.as_ref(), c.tenant_id, &c.user, acting, true)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Invalid(mut v) => {
                // Named after where the actor came from: the body or the header.
                let source = if i.actor.is_some() {
                    "actor"
                } else {
                    "Herald-Acting-User"
                };
                for f in &mut v {
                    f.field = source.into();
                }
                ApiError::Validation(v)
            }
            other => other.into(),
        })?;
    let parent = match &i.parent {
        Some(p) => {
            let pk = parse_kind("parent.kind", &p.kind)?;
            Some(ParentRef {
                kind: pk,
                id: p.id,
                uuid: p.uuid.unwrap_or_else(|| derived_uuid(&c.tenant, pk, p.id)),
            })
        }
        None => None,
    };
    let project = i.project.as_ref().map(|p| ProjectRef {
        id: p.id,
        uuid: p
            .uuid
            .unwrap_or_else(|| derived_uuid(&c.tenant, EntityKind::Project, p.id)),
        key: p.key.clone(),
        name: p.name.clone(),
    });
    let empty = Value::Object(Map::new());
    let changed = diff(
        before.as_ref().unwrap_or(&empty),
        after.as_ref().unwrap_or(&empty),
    );
    if i.project_version.is_some_and(|v| v < 1) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "projectVersion",
            "projectVersion must be positive",
        )]));
    }
    if action == Action::Updated && changed.is_empty() {
        return Ok((StatusCode::OK, Json(EventEnvelope { data: None })).into_response());
    }
    let event = Event {
        seq: 0,
        id: Uuid::now_v7(),
        tenant: c.tenant.clone(),
        event_type,
        entity_kind: kind,
        entity_id: i.entity.id,
        entity_uuid: uuid,
        parent,
        project,
        actor,
        occurred_at,
        project_version: i.project_version,
        before,
        after,
        changed,
        parent_before: None,
        parent_after: None,
    };
    let (event, created) = state
        .store
        .ingest_event(&IngestRequest {
            tenant_id: c.tenant_id,
            event,
            idempotency_key: i.idempotency_key,
            webhooks_version: Some(c.webhooks_version),
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(EventEnvelope { data: Some(event) })).into_response())
}
