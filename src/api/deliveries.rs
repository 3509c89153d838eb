//! The delivery log and redelivery: `/Webhooks/{id}/deliveries`, `/deliveries/{id}`,
//! `/deliveries/{id}/redeliver`, `/Webhooks/{id}/redeliver` (bulk replay) and
//! `/Webhooks/{id}/test` (a `Webhook:Ping`). Reads need `webhooks:read`; anything that
//! sends needs `deliveries:write`.

use std::time::Duration;

use super::query::ApiQuery;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::{Authed, Caller, DeliveriesWrite, WebhooksRead};
use super::delivery_dto::{
    AttemptOut, DeliveryDetailEnvelope, DeliveryDetailOut, DeliveryEnvelope, DeliveryListEnvelope,
    DeliveryOut, ReplayEnvelope, ReplayOut,
};
use super::problem::{ApiError, ApiResult};
use super::{AppState, IdPath};
use crate::delivery::fanout::ping_event;
use crate::store::{
    DeliveryDetail, DeliveryFilter, DeliveryStatus, DeliverySummary, RedeliverMatch, RedeliverRefusal,
};
use crate::timefmt::{now_ms, parse_rfc3339_ms};
use crate::tracker;

/// Largest page of the delivery log.
const MAX_PAGE: i64 = 200;
/// Rows a bulk replay re-queues per transaction.
const REPLAY_CHUNK: i64 = 500;

/// Routes of this resource, relative to `/{tenant}/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/Webhooks/{id}/deliveries", get(list))
        .route("/Webhooks/{id}/redeliver", post(replay))
        .route("/Webhooks/{id}/test", post(test))
        .route("/deliveries/{id}", get(get_one))
        .route("/deliveries/{id}/redeliver", post(redeliver))
}

/// Filters and paging of the delivery log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// e.g. `Project:Updated`.
    pub event_type: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<i64>,
}

/// What a bulk replay re-queues.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// Deliveries in this state (default `failed`).
    pub status: Option<String>,
    /// Only deliveries created at or after this time (RFC 3339).
    pub since: Option<String>,
}

fn parse_uuid(id: &str, what: &'static str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound(what))
}

fn parse_status(s: Option<&str>) -> ApiResult<Option<DeliveryStatus>> {
    s.map(|s| {
        DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::BadQuery(
                "status".into(),
                "status must be pending, succeeded, failed or cancelled".into(),
            )
        })
    })
    .transpose()
}

fn parse_time(field: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    v.map(|s| {
        parse_rfc3339_ms(s)
            .ok_or_else(|| ApiError::BadQuery(field.into(), format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

async fn webhook_exists(state: &AppState, tenant_id: i64, id: Uuid) -> ApiResult<()> {
    state
        .store
        .get_webhook(tenant_id, id)
        .await?
        .map(|_| ())
        .ok_or(ApiError::NotFound("webhook"))
}

/// A webhook's deliveries, newest first, with cursor paging.
#[utoipa::path(get, path = "/@{tenant}/v1/Webhooks/{id}/deliveries", tag = "deliveries",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id"), ListQuery),
    responses((status = 200, body = DeliveryListEnvelope), (status = 400, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authed<WebhooksRead>,
    Path(IdPath { id, .. }): Path<IdPath>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<DeliveryListEnvelope>> {
    let tenant_id = auth.caller.tenant_id;
    let webhook_id = parse_uuid(&id, "webhook")?;
    webhook_exists(&state, tenant_id, webhook_id).await?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::BadQuery(
            "limit".into(),
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let before_seq = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::BadQuery("cursor".into(), "cursor is not one Herald issued".into()))
        })
        .transpose()?;
    let filter = DeliveryFilter {
        status: parse_status(q.status.as_deref())?,
        event_type: q.event_type,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
        before_seq,
        limit,
    };
    let rows = state
        .store
        .list_deliveries(tenant_id, Some(webhook_id), &filter)
        .await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Json(DeliveryListEnvelope {
        data: rows.iter().map(DeliveryOut::from).collect(),
        next_cursor,
    }))
}

/// One delivery with its body and every attempt (request headers with secured and
/// signature values masked; response status, headers and first 64 KiB of body).
#[utoipa::path(get, path = "/@{tenant}/v1/deliveries/{id}", tag = "deliveries",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 200, body = DeliveryDetailEnvelope), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    auth: Authed<WebhooksRead>,
    Path(IdPath { id, .. }): Path<IdPath>,
) -> ApiResult<Json<DeliveryDetailEnvelope>> {
    let id = parse_uuid(&id, "delivery")?;
    let d = state
        .store
        .get_delivery(auth.caller.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    Ok(Json(DeliveryDetailEnvelope {
        data: DeliveryDetailOut {
            delivery: DeliveryOut::from(&d.summary),
            body: d.body,
            attempts: d.attempts.iter().map(AttemptOut::from).collect(),
        },
    }))
}

/// Queues a new attempt of a delivery: same id (`webhook-id`), same body, fresh signature.
#[utoipa::path(post, path = "/@{tenant}/v1/deliveries/{id}/redeliver", tag = "deliveries",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Delivery id")),
    responses((status = 202, body = DeliveryEnvelope), (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    auth: Authed<DeliveriesWrite>,
    Path(IdPath { id, .. }): Path<IdPath>,
) -> ApiResult<(StatusCode, Json<DeliveryEnvelope>)> {
    let id = parse_uuid(&id, "delivery")?;
    let summary = redeliver_one(&state, auth.caller.tenant_id, id).await?;
    tracing::info!(tenant = %auth.caller.tenant, delivery_id = %id, "redelivery queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(DeliveryEnvelope {
            data: DeliveryOut::from(&summary),
        }),
    ))
}

/// Queues a new attempt of delivery `id` and wakes the workers; refusals become 404/409.
/// Shared by the API and the admin UI.
pub(crate) async fn redeliver_one(state: &AppState, tenant_id: i64, id: Uuid) -> ApiResult<DeliverySummary> {
    let summary = match state.store.redeliver(tenant_id, id, now_ms()).await? {
        Ok(s) => s,
        Err(RedeliverRefusal::NotFound) => return Err(ApiError::NotFound("delivery")),
        Err(RedeliverRefusal::InFlight) => {
            return Err(ApiError::Conflict(
                "an attempt of this delivery is in flight; try again when it ends".into(),
            ))
        }
        Err(RedeliverRefusal::BodyPurged) => {
            return Err(ApiError::Conflict(
                "this delivery's body was purged by retention; it cannot be sent again".into(),
            ))
        }
        Err(RedeliverRefusal::WebhookGone) => {
            return Err(ApiError::Conflict("this delivery's webhook was deleted".into()))
        }
    };
    state.delivery.wake();
    Ok(summary)
}

/// Bulk replay: re-queues every delivery of the webhook in a state (default `failed`),
/// optionally only those created since a time.
#[utoipa::path(post, path = "/@{tenant}/v1/Webhooks/{id}/redeliver", tag = "deliveries",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id"), ReplayQuery),
    responses((status = 202, body = ReplayEnvelope), (status = 400, body = super::problem::Problem),
              (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    auth: Authed<DeliveriesWrite>,
    Path(IdPath { id, .. }): Path<IdPath>,
    ApiQuery(q): ApiQuery<ReplayQuery>,
) -> ApiResult<(StatusCode, Json<ReplayEnvelope>)> {
    let tenant_id = auth.caller.tenant_id;
    let webhook_id = parse_uuid(&id, "webhook")?;
    webhook_exists(&state, tenant_id, webhook_id).await?;
    let status = parse_status(q.status.as_deref())?.unwrap_or(DeliveryStatus::Failed);
    if status == DeliveryStatus::Pending || status == DeliveryStatus::Cancelled {
        return Err(ApiError::BadQuery(
            "status".into(),
            "replay deliveries that are failed or succeeded".into(),
        ));
    }
    let since = parse_time("since", q.since.as_deref())?;
    let queued = replay_matching(&state, tenant_id, webhook_id, status, since).await?;
    tracing::info!(tenant = %auth.caller.tenant, webhook_id = %webhook_id, queued, "bulk redelivery queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayEnvelope {
            data: ReplayOut { queued },
        }),
    ))
}

/// Re-queues, page by page, every delivery of a webhook in `status` (created since
/// `since`); returns how many. Shared by the API and the admin UI.
pub(crate) async fn replay_matching(
    state: &AppState,
    tenant_id: i64,
    webhook_id: Uuid,
    status: DeliveryStatus,
    since: Option<i64>,
) -> ApiResult<u64> {
    let mut m = RedeliverMatch {
        status,
        since,
        after_seq: 0,
        limit: REPLAY_CHUNK,
    };
    let mut queued = 0;
    while let (n, Some(last)) = state
        .store
        .redeliver_matching(tenant_id, webhook_id, &m, now_ms())
        .await?
    {
        queued += n;
        m.after_seq = last;
        state.delivery.wake();
    }
    Ok(queued)
}

/// Sends a `Webhook:Ping` in the webhook's format (even while it is disabled, to check the
/// receiver before enabling it again) and returns the delivery after its first attempt
/// (200), or still pending (202) if that takes longer than the request timeout.
#[utoipa::path(post, path = "/@{tenant}/v1/Webhooks/{id}/test", tag = "deliveries",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = DeliveryDetailEnvelope), (status = 202, body = DeliveryDetailEnvelope),
              (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    auth: Authed<DeliveriesWrite>,
    Path(IdPath { id, .. }): Path<IdPath>,
) -> ApiResult<(StatusCode, Json<DeliveryDetailEnvelope>)> {
    let webhook_id = parse_uuid(&id, "webhook")?;
    let d = send_ping(&state, &auth.caller, webhook_id).await?;
    let status = if d.attempts.is_empty() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(DeliveryDetailEnvelope {
            data: DeliveryDetailOut {
                delivery: DeliveryOut::from(&d.summary),
                body: d.body,
                attempts: d.attempts.iter().map(AttemptOut::from).collect(),
            },
        }),
    ))
}

/// Sends a `Webhook:Ping` to `webhook_id` as `c` and returns the delivery after its first
/// attempt (or still pending if that outlasts the request timeout). Shared by the API and
/// the admin UI.
pub(crate) async fn send_ping(state: &AppState, c: &Caller, webhook_id: Uuid) -> ApiResult<DeliveryDetail> {
    let actor = tracker::actor(state.store.as_ref(), c.tenant_id, &c.user, None, false).await?;
    let event = ping_event(webhook_id, &c.tenant, actor, now_ms());
    let wait = state.settings.delivery.request_timeout + Duration::from_secs(1);
    let id = state
        .delivery
        .ping(c.tenant_id, webhook_id, &event, wait)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    state
        .store
        .get_delivery(c.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))
}
