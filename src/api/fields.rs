//! `/@{tenant}/v1/fields`: Projectrak-style project fields. The predefined system fields
//! exist in every tenant; custom fields get ids from 10001. Formula fields are computed on
//! every project save and never notify Projectrak-format webhooks by themselves.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{AnyScope, Authed, EntitiesWrite};
use super::json::ApiJson;
use super::problem::{ApiError, ApiResult};
use super::{AppState, IdPath};
use crate::domain::field::{FieldDef, FieldDefError, FieldType, FIRST_CUSTOM_FIELD_ID};
use crate::domain::formula::{evaluation_order, Formula};
use crate::timefmt::now_ms;
use crate::tracker;

/// Routes relative to `/{tenant}/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fields", get(list).post(create))
        .route("/fields/{id}", get(get_one).patch(update).delete(delete))
}

/// A field to create (PATCH: name, options and formula only; the type cannot change).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FieldIn {
    /// Display name, unique in the tenant (case-insensitive).
    pub name: Option<String>,
    /// One of text, textarea, number, date, duration, priority, status, list, multilist,
    /// user, multiuser, project, multiproject, milestone, formula.
    #[serde(rename = "type")]
    pub field_type: Option<String>,
    /// Options for list, multilist, status and priority fields.
    pub options: Option<Vec<String>>,
    /// Expression for formula fields: numbers, + - * /, parentheses, `{Field name}` or `{id}`.
    pub formula: Option<String>,
}

/// A field as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldOut {
    /// Numeric id (1-10 system, 10001+ custom).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Field type.
    #[serde(rename = "type")]
    pub field_type: String,
    /// Options (list types).
    pub options: Vec<String>,
    /// Formula source (formula fields).
    pub formula: Option<String>,
    /// Whether Herald predefines it (cannot be deleted).
    pub system: bool,
}

/// `{"data": field}`
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldEnvelope {
    /// The field.
    pub data: FieldOut,
}

/// `{"data": [field…]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldListEnvelope {
    /// The fields by id.
    pub data: Vec<FieldOut>,
}

fn out(d: &FieldDef) -> FieldOut {
    FieldOut {
        id: d.id,
        name: d.name.clone(),
        field_type: d.field_type.as_str().into(),
        options: d.options.clone(),
        formula: d.formula.as_ref().map(|f| f.source().to_owned()),
        system: d.system,
    }
}

fn def_error(e: FieldDefError) -> ApiError {
    let field = match e {
        FieldDefError::InvalidName | FieldDefError::NumericName { .. } | FieldDefError::ReservedId { .. } => {
            "name"
        }
        FieldDefError::MissingFormula | FieldDefError::UnexpectedFormula { .. } => "formula",
        _ => "options",
    };
    ApiError::field(field, e.to_string())
}

/// Checks that every formula still parses and evaluates given `defs` (no cycles, no
/// unknown or non-numeric references).
fn check_formulas(defs: &[FieldDef]) -> ApiResult<()> {
    evaluation_order(defs)
        .map(|_| ())
        .map_err(|e| ApiError::field("formula", e.to_string()))
}

fn parse_formula(src: Option<&str>) -> ApiResult<Option<Formula>> {
    src.map(|s| Formula::parse(s).map_err(|e| ApiError::field("formula", e.to_string())))
        .transpose()
}

/// Create a custom field.
#[utoipa::path(post, path = "/@{tenant}/v1/fields", tag = "fields",
    params(("tenant" = String, Path, description = "Tenant slug")), request_body = FieldIn,
    responses((status = 201, body = FieldEnvelope), (status = 409, body = super::problem::Problem),
              (status = 422, body = super::problem::Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    a: Authed<EntitiesWrite>,
    ApiJson(i): ApiJson<FieldIn>,
) -> ApiResult<Response> {
    let t = a.caller.tenant_id;
    let ty = i.field_type.as_deref().unwrap_or("");
    let field_type = FieldType::parse(ty).ok_or_else(|| {
        let all: Vec<&str> = FieldType::ALL.iter().map(|t| t.as_str()).collect();
        ApiError::field("type", format!("type must be one of {}", all.join(", ")))
    })?;
    let name = i.name.unwrap_or_default();
    let def = FieldDef::custom(
        FIRST_CUSTOM_FIELD_ID,
        &name,
        field_type,
        i.options.unwrap_or_default(),
        parse_formula(i.formula.as_deref())?,
    )
    .map_err(def_error)?;
    let mut defs = tracker::fields(state.store.as_ref(), t).await?;
    if defs.iter().any(|d| d.name.eq_ignore_ascii_case(&def.name)) {
        return Err(ApiError::Conflict(format!(
            "a field named `{}` already exists",
            def.name
        )));
    }
    defs.push(FieldDef {
        id: i64::MAX,
        ..def.clone()
    });
    check_formulas(&defs)?;
    let saved = state.store.insert_field(t, &def, now_ms()).await?;
    let loc = format!("/@{}/v1/fields/{}", a.caller.tenant, saved.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, loc)],
        Json(FieldEnvelope { data: out(&saved) }),
    )
        .into_response())
}

/// List the tenant's fields (system ones first).
#[utoipa::path(get, path = "/@{tenant}/v1/fields", tag = "fields",
    params(("tenant" = String, Path, description = "Tenant slug")),
    responses((status = 200, body = FieldListEnvelope)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, a: Authed<AnyScope>) -> ApiResult<Json<FieldListEnvelope>> {
    let defs = tracker::fields(state.store.as_ref(), a.caller.tenant_id).await?;
    Ok(Json(FieldListEnvelope {
        data: defs.iter().map(out).collect(),
    }))
}

async fn find(state: &AppState, tenant_id: i64, id: &str) -> ApiResult<(Vec<FieldDef>, FieldDef)> {
    let id = id.parse::<i64>().map_err(|_| ApiError::NotFound("field"))?;
    let defs = tracker::fields(state.store.as_ref(), tenant_id).await?;
    let def = defs
        .iter()
        .find(|d| d.id == id)
        .cloned()
        .ok_or(ApiError::NotFound("field"))?;
    Ok((defs, def))
}

/// Get one field.
#[utoipa::path(get, path = "/@{tenant}/v1/fields/{id}", tag = "fields",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Field id")),
    responses((status = 200, body = FieldEnvelope), (status = 404, body = super::problem::Problem)), security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    a: Authed<AnyScope>,
    Path(p): Path<IdPath>,
) -> ApiResult<Json<FieldEnvelope>> {
    let (_, def) = find(&state, a.caller.tenant_id, &p.id).await?;
    Ok(Json(FieldEnvelope { data: out(&def) }))
}

/// Rename a field or change its options or formula.
#[utoipa::path(patch, path = "/@{tenant}/v1/fields/{id}", tag = "fields",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Field id")),
    request_body = FieldIn,
    responses((status = 200, body = FieldEnvelope), (status = 404, body = super::problem::Problem),
              (status = 409, body = super::problem::Problem), (status = 422, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    a: Authed<EntitiesWrite>,
    Path(p): Path<IdPath>,
    ApiJson(i): ApiJson<FieldIn>,
) -> ApiResult<Json<FieldEnvelope>> {
    let t = a.caller.tenant_id;
    let (mut defs, cur) = find(&state, t, &p.id).await?;
    if i.field_type
        .as_deref()
        .is_some_and(|x| x != cur.field_type.as_str())
    {
        return Err(ApiError::field(
            "type",
            "a field's type cannot change; create a new field instead",
        ));
    }
    if cur.system {
        if let Some(sent) = [("name", i.name.is_some()), ("formula", i.formula.is_some())]
            .into_iter()
            .find_map(|(f, sent)| sent.then_some(f))
        {
            return Err(ApiError::field(
                sent,
                format!("system fields keep their {sent}; only their options can change"),
            ));
        }
    }
    let formula = match i.formula.as_deref() {
        Some(src) => parse_formula(Some(src))?,
        None => cur.formula.clone(),
    };
    let checked = FieldDef::custom(
        FIRST_CUSTOM_FIELD_ID,
        i.name.as_deref().unwrap_or(&cur.name),
        cur.field_type,
        i.options.unwrap_or_else(|| cur.options.clone()),
        formula,
    )
    .map_err(def_error)?;
    let next = FieldDef {
        id: cur.id,
        system: cur.system,
        ..checked
    };
    if defs
        .iter()
        .any(|d| d.id != cur.id && d.name.eq_ignore_ascii_case(&next.name))
    {
        return Err(ApiError::Conflict(format!(
            "a field named `{}` already exists",
            next.name
        )));
    }
    for d in defs.iter_mut().filter(|d| d.id == cur.id) {
        *d = next.clone();
    }
    check_formulas(&defs).map_err(|e| match e {
        // Only the name was sent: the rename is what broke a formula (another field's
        // formula names this one).
        ApiError::Validation(mut errs) if i.formula.is_none() => {
            for err in &mut errs {
                err.field = "name".into();
                err.message = format!("renaming breaks a formula: {}", err.message);
            }
            ApiError::Validation(errs)
        }
        e => e,
    })?;
    if !state.store.update_field(t, &next, now_ms()).await? {
        return Err(ApiError::NotFound("field"));
    }
    Ok(Json(FieldEnvelope { data: out(&next) }))
}

/// Delete a custom field (refused while a formula refers to it; system fields stay).
#[utoipa::path(delete, path = "/@{tenant}/v1/fields/{id}", tag = "fields",
    params(("tenant" = String, Path, description = "Tenant slug"), ("id" = i64, Path, description = "Field id")),
    responses((status = 204), (status = 404, body = super::problem::Problem), (status = 409, body = super::problem::Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    a: Authed<EntitiesWrite>,
    Path(p): Path<IdPath>,
) -> ApiResult<StatusCode> {
    let t = a.caller.tenant_id;
    let (defs, cur) = find(&state, t, &p.id).await?;
    if cur.system {
        return Err(ApiError::Conflict(format!(
            "`{}` is a system field and cannot be deleted",
            cur.name
        )));
    }
    let rest: Vec<FieldDef> = defs.into_iter().filter(|d| d.id != cur.id).collect();
    if evaluation_order(&rest).is_err() {
        return Err(ApiError::Conflict(format!(
            "a formula still refers to `{}`; change it first",
            cur.name
        )));
    }
    state.store.delete_field(t, cur.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
