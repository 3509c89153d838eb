//! `/@{tenant}/v1/Webhooks`: the PPM Express-compatible management API, plus Herald's
//! additions (name, format, project filter, secured headers, status, secret rotation).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Authed, WebhooksRead, WebhooksWrite};
use super::json::ApiJson;
use super::problem::{ApiError, ApiResult};
use super::{AppState, IdPath};
use crate::domain::webhook::{self, FieldError, HeaderDraft, HeaderValue, WebhookDraft, MASK};
use crate::store::{NewWebhook, StoredHeader, WebhookConfig, WebhookRecord};
use crate::timefmt::{now_ms, rfc3339_ms};

/// Routes of this resource, relative to `/{tenant}/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/Webhooks", post(create).get(list).delete(delete_all))
        .route(
            "/Webhooks/{id}",
            get(get_one).put(replace).patch(patch).delete(delete_one),
        )
        .route("/Webhooks/{id}/secret/rotate", post(rotate_secret))
}

/// A custom header in a request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HeaderIn {
    /// Header name (an HTTP token; Herald's own headers are refused).
    pub name: String,
    /// Value; for a secured header being kept, send `********` or omit it.
    #[serde(default)]
    pub value: Option<String>,
    /// Keep the value secret: encrypted at rest, never shown again. Omitted: as stored (a
    /// header stored secured stays secured, whether its value is kept or new; a new
    /// header is not secured); only an explicit `false` un-secures a stored secured
    /// value, showing it again.
    #[serde(default)]
    pub secured: Option<bool>,
}

/// Webhook fields accepted by POST, PUT and PATCH (PATCH: all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookIn {
    /// Event types, e.g. `Project:Updated` (required on POST/PUT).
    pub event_types: Option<Vec<String>>,
    /// Up to 5 custom headers.
    pub headers: Option<Vec<HeaderIn>>,
    /// `POST` (default), `PUT` or `PATCH`.
    pub http_verb: Option<String>,
    /// `https://` target (required on POST/PUT).
    pub url: Option<String>,
    /// Display name (default: the URL's host).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// `ppm` (default), `projectrak`, `tracker-v5` or `standard`.
    pub format: Option<String>,
    /// Only events about these projects (default: all).
    pub project_ids: Option<Vec<i64>>,
    /// Whether deliveries are made (default true).
    pub enabled: Option<bool>,
    /// `none` (default) or `per-entity`.
    pub ordering: Option<String>,
}

/// A custom header in a response; secured values are masked.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderOut {
    /// Header name.
    pub name: String,
    /// Value, or `********` when secured.
    pub value: String,
    /// Whether the value is secret.
    pub secured: bool,
}

/// Result of the most recent delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastExecutionOut {
    /// When (RFC 3339).
    pub at: String,
    /// HTTP status, when a response arrived.
    pub status_code: Option<i64>,
    /// `OK` for 2xx, else `ERROR`.
    pub status: String,
    /// Network-level error, when no usable response arrived.
    pub error: Option<String>,
}

/// A webhook as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookOut {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Target URL.
    pub url: String,
    /// HTTP method.
    pub http_verb: String,
    /// Subscribed event types.
    pub event_types: Vec<String>,
    /// Custom headers (secured values masked).
    pub headers: Vec<HeaderOut>,
    /// Wire format.
    pub format: String,
    /// Project filter (empty = all projects).
    pub project_ids: Vec<i64>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Ordering guarantee.
    pub ordering: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last configuration change (RFC 3339).
    pub updated_at: String,
    /// Most recent attempt, or null before the first one.
    pub last_execution: Option<LastExecutionOut>,
    /// Why Herald disabled the webhook automatically, if it did.
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`): only in the create and rotate responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `{"data": webhook}`
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEnvelope {
    /// The webhook.
    pub data: WebhookOut,
}

/// `{"data": [webhook…]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListEnvelope {
    /// The webhooks, oldest first.
    pub data: Vec<WebhookOut>,
}

impl WebhookOut {
    /// Renders a record; `secret` only when it was just created or rotated.
    pub fn from_record(r: &WebhookRecord, secret: Option<String>) -> Self {
        let c = &r.config;
        Self {
            id: r.id,
            name: c.name.clone(),
            description: c.description.clone(),
            url: c.url.clone(),
            http_verb: c.http_verb.as_str().into(),
            event_types: c.event_types.iter().map(|t| t.to_string()).collect(),
            headers: c
                .headers
                .iter()
                .map(|h| HeaderOut {
                    name: h.name.clone(),
                    value: if h.secured {
                        MASK.into()
                    } else {
                        h.value.clone().unwrap_or_default()
                    },
                    secured: h.secured,
                })
                .collect(),
            format: c.format.as_str().into(),
            project_ids: c.project_ids.clone(),
            enabled: c.enabled,
            ordering: c.ordering.as_str().into(),
            created_at: rfc3339_ms(r.created_at),
            updated_at: rfc3339_ms(r.updated_at),
            last_execution: r.last_execution.as_ref().map(|l| LastExecutionOut {
                at: rfc3339_ms(l.at),
                status_code: l.status_code,
                status: if l.ok() { "OK" } else { "ERROR" }.into(),
                error: l.error.clone(),
            }),
            disabled_reason: r.disabled_reason.clone(),
            secret,
        }
    }
}

pub(crate) fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound("webhook"))
}

/// Turns input into a draft. `base` is the stored webhook for PUT/PATCH; `partial` is
/// true for PATCH (absent fields keep their stored value) and false for POST/PUT.
pub(crate) fn draft_from(
    input: WebhookIn,
    base: Option<&WebhookRecord>,
    partial: bool,
) -> ApiResult<WebhookDraft> {
    let keep = |f: &dyn Fn(&WebhookConfig) -> String| -> Option<String> {
        base.filter(|_| partial).map(|b| f(&b.config))
    };
    let mut errs = Vec::new();
    let url = input.url.or_else(|| keep(&|c| c.url.clone())).unwrap_or_else(|| {
        errs.push(FieldError::new("url", "url is required"));
        String::new()
    });
    let event_types = match input.event_types {
        Some(v) => v,
        None => match base.filter(|_| partial) {
            Some(b) => b.config.event_types.iter().map(|t| t.to_string()).collect(),
            None => {
                errs.push(FieldError::new("eventTypes", "eventTypes is required"));
                Vec::new()
            }
        },
    };
    let stored = base.map(|b| b.config.headers.as_slice()).unwrap_or_default();
    let headers = match input.headers {
        None if partial => stored
            .iter()
            .map(|h| HeaderDraft {
                name: h.name.clone(),
                value: match (&h.sealed, &h.value) {
                    (Some(s), _) => HeaderValue::KeepSealed(s.clone()),
                    (None, v) => HeaderValue::Plain(v.clone().unwrap_or_default()),
                },
                secured: h.secured,
            })
            .collect(),
        None => Vec::new(),
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, h) in list.into_iter().enumerate() {
                let kept = stored
                    .iter()
                    .find(|s| s.secured && s.name.eq_ignore_ascii_case(&h.name))
                    .and_then(|s| s.sealed.clone());
                // The stored value is kept when the header comes back without a value
                // or with the mask it is shown as; it stays secured unless `secured` is
                // an explicit false (`config_from` then opens it). The mask is never a
                // header's value.
                let stored_secured = kept.is_some();
                let value = match (h.value, kept) {
                    (None, Some(sealed)) => HeaderValue::KeepSealed(sealed),
                    (Some(v), Some(sealed)) if v == MASK => HeaderValue::KeepSealed(sealed),
                    (Some(v), None) if v == MASK => {
                        errs.push(FieldError::new(
                            format!("headers[{i}].value"),
                            "no secured value is stored under this header name to keep: send the value itself",
                        ));
                        HeaderValue::Plain(String::new())
                    }
                    (Some(v), _) => HeaderValue::Plain(v),
                    (None, None) => {
                        errs.push(FieldError::new(
                            format!("headers[{i}].value"),
                            "header value is required",
                        ));
                        HeaderValue::Plain(String::new())
                    }
                };
                // Omitted: as stored — a header stored secured stays secured, with a new
                // value too (a client that does not know the flag must not reveal it).
                let secured = h.secured.unwrap_or(stored_secured);
                out.push(HeaderDraft {
                    name: h.name,
                    value,
                    secured,
                });
            }
            out
        }
    };
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let project_ids = match (input.project_ids, base.filter(|_| partial)) {
        (Some(v), _) => v,
        (None, Some(b)) => b.config.project_ids.clone(),
        (None, None) => Vec::new(),
    };
    Ok(WebhookDraft {
        name: input
            .name
            .or_else(|| keep(&|c| c.name.clone()))
            .unwrap_or_default(),
        description: input
            .description
            .or_else(|| keep(&|c| c.description.clone()))
            .unwrap_or_default(),
        url,
        http_verb: input
            .http_verb
            .or_else(|| keep(&|c| c.http_verb.as_str().into()))
            .unwrap_or_else(|| "POST".into()),
        event_types,
        format: input
            .format
            .or_else(|| keep(&|c| c.format.as_str().into()))
            .unwrap_or_else(|| "ppm".into()),
        project_ids,
        enabled: input
            .enabled
            .or_else(|| base.filter(|_| partial).map(|b| b.config.enabled))
            .unwrap_or(true),
        ordering: input
            .ordering
            .or_else(|| keep(&|c| c.ordering.as_str().into()))
            .unwrap_or_else(|| "none".into()),
        headers,
    })
}

/// Validates a draft and seals secured header values. `previous_url` is the webhook's
/// stored URL when it is being changed.
pub(crate) fn config_from(
    state: &AppState,
    draft: WebhookDraft,
    previous_url: Option<&str>,
) -> ApiResult<WebhookConfig> {
    let spec = webhook::validate(draft).map_err(ApiError::Validation)?;
    // A host that is an address the delivery guard refuses would fail every attempt (as
    // `refused`, never retried): say so now. Host names are checked when they resolve.
    // Only a new or changed URL: a webhook stored before (or before the allowed networks
    // were narrowed) must stay editable — to be disabled, or given a better URL.
    if previous_url != Some(spec.url.as_str()) {
        let policy = crate::delivery::ssrf::Policy::new(state.settings.allowed_target_networks.clone());
        if let Err(refusal) = crate::delivery::client::check_url(spec.url.url(), &policy) {
            return Err(ApiError::field(
                "url",
                format!("url: the target is refused by policy: {refusal}"),
            ));
        }
    }
    let headers = spec
        .headers
        .into_iter()
        .map(|h| match (h.value, h.secured) {
            (HeaderValue::KeepSealed(sealed), true) => StoredHeader {
                name: h.name,
                secured: true,
                value: None,
                sealed: Some(sealed),
            },
            (HeaderValue::KeepSealed(sealed), false) => StoredHeader {
                // Un-securing a kept value: it becomes visible again, so open it.
                value: state.key.open(&sealed).ok(),
                name: h.name,
                secured: false,
                sealed: None,
            },
            (HeaderValue::Plain(v), true) => StoredHeader {
                name: h.name,
                secured: true,
                value: None,
                sealed: Some(state.key.seal(&v)),
            },
            (HeaderValue::Plain(v), false) => StoredHeader {
                name: h.name,
                secured: false,
                value: Some(v),
                sealed: None,
            },
        })
        .collect();
    Ok(WebhookConfig {
        name: spec.name,
        description: spec.description,
        url: spec.url.as_str().to_owned(),
        http_verb: spec.http_verb,
        format: spec.format,
        event_types: spec.event_types,
        project_ids: spec.project_ids,
        headers,
        enabled: spec.enabled,
        ordering: spec.ordering,
    })
}

/// Create a webhook. The response is the only time the signing secret is shown.
#[utoipa::path(post, path = "/@{tenant}/v1/Webhooks", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug")),
    request_body = WebhookIn,
    responses((status = 201, body = WebhookEnvelope), (status = 401, body = super::problem::Problem),
              (status = 403, body = super::problem::Problem), (status = 409, body = super::problem::Problem),
              (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    ApiJson(input): ApiJson<WebhookIn>,
) -> ApiResult<Response> {
    let config = config_from(&state, draft_from(input, None, false)?, None)?;
    let (rec, secret) = insert_new(&state, auth.caller.tenant_id, config).await?;
    tracing::info!(tenant = %auth.caller.tenant, webhook_id = %rec.id, "webhook created");
    let location = format!("/@{}/v1/Webhooks/{}", auth.caller.tenant, rec.id);
    let body = WebhookEnvelope {
        data: WebhookOut::from_record(&rec, Some(secret)),
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// Stores a new webhook with a fresh signing secret; returns it and the secret (plaintext,
/// to show once). Shared by the API and the admin UI.
pub(crate) async fn insert_new(
    state: &AppState,
    tenant_id: i64,
    config: WebhookConfig,
) -> ApiResult<(WebhookRecord, String)> {
    let secret = crate::crypto::new_signing_secret();
    let rec = state
        .store
        .insert_webhook(
            &NewWebhook {
                id: Uuid::new_v4(),
                tenant_id,
                config,
                secret_sealed: state.key.seal(&secret),
                now: now_ms(),
            },
            state.settings.max_webhooks_per_tenant,
        )
        .await?;
    Ok((rec, secret))
}

/// List the tenant's webhooks.
#[utoipa::path(get, path = "/@{tenant}/v1/Webhooks", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug")),
    responses((status = 200, body = WebhookListEnvelope), (status = 401, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: Authed<WebhooksRead>,
) -> ApiResult<Json<WebhookListEnvelope>> {
    let recs = state.store.list_webhooks(auth.caller.tenant_id).await?;
    Ok(Json(WebhookListEnvelope {
        data: recs.iter().map(|r| WebhookOut::from_record(r, None)).collect(),
    }))
}

/// Get one webhook.
#[utoipa::path(get, path = "/@{tenant}/v1/Webhooks/{id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookEnvelope), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    auth: Authed<WebhooksRead>,
    Path(IdPath { id, .. }): Path<IdPath>,
) -> ApiResult<Json<WebhookEnvelope>> {
    let rec = state
        .store
        .get_webhook(auth.caller.tenant_id, parse_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(WebhookEnvelope {
        data: WebhookOut::from_record(&rec, None),
    }))
}

async fn update(
    state: AppState,
    auth: &Authed<WebhooksWrite>,
    id: &str,
    input: WebhookIn,
    partial: bool,
) -> ApiResult<Json<WebhookEnvelope>> {
    let id = parse_id(id)?;
    let rec = apply_update(&state, auth.caller.tenant_id, id, input, partial).await?;
    tracing::info!(tenant = %auth.caller.tenant, webhook_id = %id, "webhook updated");
    Ok(Json(WebhookEnvelope {
        data: WebhookOut::from_record(&rec, None),
    }))
}

/// Validates `input` against the stored webhook (`partial`: absent fields keep their value)
/// and stores the new configuration. Shared by the API and the admin UI.
pub(crate) async fn apply_update(
    state: &AppState,
    tenant_id: i64,
    id: Uuid,
    input: WebhookIn,
    partial: bool,
) -> ApiResult<WebhookRecord> {
    let base = state
        .store
        .get_webhook(tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let config = config_from(
        state,
        draft_from(input, Some(&base), partial)?,
        Some(&base.config.url),
    )?;
    let rec = state
        .store
        .update_webhook(tenant_id, id, &config, now_ms())
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    if rec.config.enabled {
        // Enabled (again): a 410's hold on its jobs, if any is left, ends now.
        state.delivery.webhook_enabled(id);
    } else {
        // Queued work of a webhook just disabled is given back, not sent.
        state.delivery.forget_webhook(id);
    }
    Ok(rec)
}

/// Replace a webhook's configuration (absent optional fields take their defaults).
#[utoipa::path(put, path = "/@{tenant}/v1/Webhooks/{id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id")),
    request_body = WebhookIn,
    responses((status = 200, body = WebhookEnvelope), (status = 404, body = super::problem::Problem),
              (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn replace(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    Path(IdPath { id, .. }): Path<IdPath>,
    ApiJson(input): ApiJson<WebhookIn>,
) -> ApiResult<Json<WebhookEnvelope>> {
    update(state, &auth, &id, input, false).await
}

/// Change some fields of a webhook.
#[utoipa::path(patch, path = "/@{tenant}/v1/Webhooks/{id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id")),
    request_body = WebhookIn,
    responses((status = 200, body = WebhookEnvelope), (status = 404, body = super::problem::Problem),
              (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    Path(IdPath { id, .. }): Path<IdPath>,
    ApiJson(input): ApiJson<WebhookIn>,
) -> ApiResult<Json<WebhookEnvelope>> {
    update(state, &auth, &id, input, true).await
}

/// Delete one webhook (its pending deliveries are cancelled).
#[utoipa::path(delete, path = "/@{tenant}/v1/Webhooks/{id}", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 204), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn delete_one(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    Path(IdPath { id, .. }): Path<IdPath>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    if !state.store.delete_webhook(auth.caller.tenant_id, id).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    state.delivery.forget_webhook(id);
    tracing::info!(tenant = %auth.caller.tenant, webhook_id = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Delete every webhook of the tenant (PPM Express semantics).
#[utoipa::path(delete, path = "/@{tenant}/v1/Webhooks", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug")),
    responses((status = 204)),
    security(("bearer" = [])))]
pub async fn delete_all(State(state): State<AppState>, auth: Authed<WebhooksWrite>) -> ApiResult<StatusCode> {
    let ids = state.store.delete_all_webhooks(auth.caller.tenant_id).await?;
    for id in &ids {
        state.delivery.forget_webhook(*id);
    }
    tracing::info!(tenant = %auth.caller.tenant, deleted = ids.len(), "all webhooks deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a new signing secret. The old one keeps signing (second signature) for the
/// configured overlap (24 h by default) so receivers can switch without losing messages.
#[utoipa::path(post, path = "/@{tenant}/v1/Webhooks/{id}/secret/rotate", tag = "webhooks",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookEnvelope), (status = 404, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: Authed<WebhooksWrite>,
    Path(IdPath { id, .. }): Path<IdPath>,
) -> ApiResult<Json<WebhookEnvelope>> {
    let id = parse_id(&id)?;
    let (rec, secret) = rotate(&state, auth.caller.tenant_id, id).await?;
    tracing::info!(tenant = %auth.caller.tenant, webhook_id = %id, "signing secret rotated");
    Ok(Json(WebhookEnvelope {
        data: WebhookOut::from_record(&rec, Some(secret)),
    }))
}

/// Installs a new signing secret (the old one keeps signing for the configured overlap);
/// returns the webhook and the new secret. Shared by the API and the admin UI.
pub(crate) async fn rotate(state: &AppState, tenant_id: i64, id: Uuid) -> ApiResult<(WebhookRecord, String)> {
    let secret = crate::crypto::new_signing_secret();
    let now = now_ms();
    let overlap =
        i64::try_from(state.settings.delivery.secret_rotation_overlap.as_millis()).unwrap_or(i64::MAX);
    let rec = state
        .store
        .rotate_secret(
            tenant_id,
            id,
            &state.key.seal(&secret),
            now.saturating_add(overlap),
            now,
        )
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok((rec, secret))
}
