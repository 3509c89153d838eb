//! `/@{tenant}/v1/users`: the people changes are attributed to (Projectrak `user`, Tracker
//! `performed_by`, PPM `Initiator`).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{AnyScope, Authed, EntitiesWrite};
use super::json::ApiJson;
use super::problem::{ApiError, ApiResult};
use super::{AppState, IdPath};
use crate::domain::webhook::FieldError;
use crate::store::{NewUser, User};
use crate::timefmt::now_ms;

/// Routes relative to `/{tenant}/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(get_one).patch(update))
}

/// A user to create or change (PATCH: all optional; the account id cannot change).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserIn {
    /// Account id, e.g. `DUMMY-ACCOUNT-ID-…` or a UUID (required on create).
    pub account_id: Option<String>,
    /// Display name (default: the account id).
    pub name: Option<String>,
    /// Initials (default: derived from the name).
    pub initials: Option<String>,
    /// E-mail (PPM `LogonAccount`).
    pub email: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserOut {
    /// Numeric id (Tracker `person.id`).
    pub id: i64,
    /// UUID (PPM `UserId`).
    pub uuid: Uuid,
    /// Account id (Projectrak `user`).
    pub account_id: String,
    /// Display name.
    pub name: String,
    /// Initials.
    pub initials: String,
    /// E-mail.
    pub email: String,
}

/// `{"data": user}`
#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnvelope {
    /// The user.
    pub data: UserOut,
}

/// `{"data": [user…]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct UserListEnvelope {
    /// The users.
    pub data: Vec<UserOut>,
}

fn out(u: User) -> UserOut {
    UserOut {
        id: u.id,
        uuid: u.uuid,
        account_id: u.account_id,
        name: u.name,
        initials: u.initials,
        email: u.email,
    }
}

fn initials_of(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(3)
        .collect::<String>()
        .to_uppercase()
}

fn check(u: &NewUser) -> ApiResult<()> {
    let mut errs = Vec::new();
    if u.name.trim().is_empty() || u.name.chars().count() > 200 {
        errs.push(FieldError::new("name", "name must be 1-200 characters"));
    }
    if u.initials.chars().count() > 8 {
        errs.push(FieldError::new(
            "initials",
            "initials must be at most 8 characters",
        ));
    }
    if u.email.len() > 320 || (!u.email.is_empty() && !u.email.contains('@')) {
        errs.push(FieldError::new("email", "email must be an e-mail address"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errs))
    }
}

/// Create a user.
#[utoipa::path(post, path = "/@{tenant}/v1/users", tag = "users",
    params(("tenant" = String, Path, description = "Tenant slug")), request_body = UserIn,
    responses((status = 201, body = UserEnvelope), (status = 409, body = super::problem::Problem),
              (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    a: Authed<EntitiesWrite>,
    ApiJson(i): ApiJson<UserIn>,
) -> ApiResult<Response> {
    let account_id = i.account_id.unwrap_or_default().trim().to_owned();
    if account_id.is_empty() || account_id.len() > 128 || account_id.chars().any(char::is_whitespace) {
        return Err(ApiError::field(
            "accountId",
            "accountId must be 1-128 characters without spaces",
        ));
    }
    let name = i.name.unwrap_or_else(|| account_id.clone());
    let u = NewUser {
        initials: i.initials.unwrap_or_else(|| initials_of(&name)),
        email: i.email.unwrap_or_default(),
        account_id,
        name,
    };
    check(&u)?;
    let user = state.store.create_user(a.caller.tenant_id, &u, now_ms()).await?;
    let loc = format!("/@{}/v1/users/{}", a.caller.tenant, user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, loc)],
        Json(UserEnvelope { data: out(user) }),
    )
        .into_response())
}

/// List users.
#[utoipa::path(get, path = "/@{tenant}/v1/users", tag = "users",
    params(("tenant" = String, Path, description = "Tenant slug")),
    responses((status = 200, body = UserListEnvelope)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, a: Authed<AnyScope>) -> ApiResult<Json<UserListEnvelope>> {
    let users = state.store.list_users(a.caller.tenant_id).await?;
    Ok(Json(UserListEnvelope {
        data: users.into_iter().map(out).collect(),
    }))
}

async fn find(state: &AppState, tenant_id: i64, id: &str) -> ApiResult<User> {
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound("user"))?;
    state
        .store
        .get_user(tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("user"))
}

/// Get one user.
#[utoipa::path(get, path = "/@{tenant}/v1/users/{id}", tag = "users",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Numeric id")),
    responses((status = 200, body = UserEnvelope), (status = 404, body = super::problem::Problem)), security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    a: Authed<AnyScope>,
    Path(p): Path<IdPath>,
) -> ApiResult<Json<UserEnvelope>> {
    Ok(Json(UserEnvelope {
        data: out(find(&state, a.caller.tenant_id, &p.id).await?),
    }))
}

/// Change a user's name, initials or e-mail.
#[utoipa::path(patch, path = "/@{tenant}/v1/users/{id}", tag = "users",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Numeric id")),
    request_body = UserIn,
    responses((status = 200, body = UserEnvelope), (status = 404, body = super::problem::Problem),
              (status = 422, body = super::problem::Problem)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    a: Authed<EntitiesWrite>,
    Path(p): Path<IdPath>,
    ApiJson(i): ApiJson<UserIn>,
) -> ApiResult<Json<UserEnvelope>> {
    let cur = find(&state, a.caller.tenant_id, &p.id).await?;
    if i.account_id.as_ref().is_some_and(|x| *x != cur.account_id) {
        return Err(ApiError::field("accountId", "accountId cannot change"));
    }
    let u = NewUser {
        account_id: cur.account_id.clone(),
        name: i.name.unwrap_or(cur.name),
        initials: i.initials.unwrap_or(cur.initials),
        email: i.email.unwrap_or(cur.email),
    };
    check(&u)?;
    let user = state
        .store
        .update_user(a.caller.tenant_id, cur.id, &u, now_ms())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(UserEnvelope { data: out(user) }))
}
