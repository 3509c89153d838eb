//! Authentication and authorisation as extractors: a handler that takes
//! `Authed<WebhooksWrite>` cannot run without a valid token for the path's tenant that
//! grants `webhooks:write`. Order of checks: token (401) → tenant (404) → scope (403).

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::problem::ApiError;
use super::AppState;
use crate::crypto::{split_token, verify_secret};
use crate::domain::event::UserRef;
use crate::domain::scope::{Scope, Scopes};

/// Marker types naming the scope a route requires.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope (`None`: any valid token of the tenant).
    const SCOPE: Option<Scope>;
}

macro_rules! scope_marker {
    ($($name:ident => $scope:ident),*) => {$(
        #[doc = concat!("Requires `", stringify!($scope), "`.")]
        #[derive(Debug)]
        pub struct $name;
        impl RequiredScope for $name {
            const SCOPE: Option<Scope> = Some(Scope::$scope);
        }
    )*};
}
scope_marker!(
    WebhooksRead => WebhooksRead,
    WebhooksWrite => WebhooksWrite,
    EntitiesWrite => EntitiesWrite,
    EventsWrite => EventsWrite,
    DeliveriesWrite => DeliveriesWrite,
    Admin => Admin
);

/// Any valid token of the path's tenant (reading tracker data needs no particular scope).
#[derive(Debug)]
pub struct AnyScope;
impl RequiredScope for AnyScope {
    const SCOPE: Option<Scope> = None;
}

/// Who is calling: the token's tenant and user.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Public id of the token used (the admin UI ties its sessions to it).
    pub token_id: String,
    /// Tenant id.
    pub tenant_id: i64,
    /// Tenant slug.
    pub tenant: String,
    /// The user the token acts as (read with the token, so attributing a change to it
    /// costs no query of its own).
    pub user: UserRef,
    /// The tenant's field-definitions version as read with the token (keys
    /// [`crate::tracker::FieldCache`]).
    pub fields_version: i64,
    /// The tenant's webhooks version as read with the token (lets fan-out use a cached
    /// list of the tenant's webhooks: `store/subscriber_cache.rs`).
    pub webhooks_version: i64,
    /// Granted scopes.
    pub scopes: Scopes,
}

/// An authenticated caller holding scope `S` in the path's tenant.
#[derive(Debug)]
pub struct Authed<S: RequiredScope> {
    /// The caller.
    pub caller: Caller,
    _scope: PhantomData<S>,
}

/// Verifies the bearer token in `parts` and returns the caller (401 on any problem).
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized)?
        .trim();
    verify_token(token, state).await
}

/// Verifies a bearer token's text (from a header or the admin UI's sign-in form) and
/// returns the caller (401 on any problem).
pub async fn verify_token(token: &str, state: &AppState) -> Result<Caller, ApiError> {
    let (id, secret) = split_token(token).ok_or(ApiError::Unauthorized)?;
    let rec = state.store.token_by_id(id).await?.ok_or(ApiError::Unauthorized)?;
    if rec.revoked_at.is_some() || !verify_secret(secret, &rec.secret_hash) {
        return Err(ApiError::Unauthorized);
    }
    let scopes = Scopes::parse(&rec.scopes).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    Ok(Caller {
        token_id: rec.id,
        tenant_id: rec.tenant_id,
        tenant: rec.tenant_slug,
        user: rec.user,
        fields_version: rec.fields_version,
        webhooks_version: rec.webhooks_version,
        scopes,
    })
}

/// The `{tenant}` path segment without its `@`; `None` when the route has none or the `@`
/// is missing (such paths are not tenant paths, so they are "not found").
fn path_tenant(params: &RawPathParams) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| *k == "tenant")
        .and_then(|(_, v)| v.strip_prefix('@').map(str::to_owned))
}

impl<S: RequiredScope> FromRequestParts<AppState> for Authed<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("tenant"))?;
        let tenant = path_tenant(&params);
        let caller = authenticate(parts, state).await?;
        if tenant.as_deref() != Some(caller.tenant.as_str()) {
            return Err(ApiError::NotFound("tenant"));
        }
        if let Some(scope) = S::SCOPE {
            if !caller.scopes.grants(scope) {
                return Err(ApiError::Forbidden(scope.as_str()));
            }
        }
        Ok(Self {
            caller,
            _scope: PhantomData,
        })
    }
}
