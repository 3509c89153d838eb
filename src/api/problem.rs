//! The API's error type and its `application/problem+json` rendering (RFC 9457).
//!
//! Every 4xx names what was wrong and, for input problems, the field (`field` plus an
//! `errors` list that also carries PPM Express's `fieldName`/`message` and `errorMessage`
//! keys, so PPM clients keep working). 5xx bodies stay opaque; the cause is logged.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::webhook::FieldError;
use crate::store::StoreError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or invalid credentials.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token lacks a scope.
    #[error("this token lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// The object does not exist in this tenant (or belongs to another).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The route exists, but not for this HTTP method (the `Allow` header lists those it has).
    #[error("this route does not accept that method; see the Allow header")]
    MethodNotAllowed,
    /// The body is not valid JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body has the wrong content type.
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The body exceeds the size limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// One or more fields are invalid.
    #[error("{}", .0.first().map(|e| e.message.as_str()).unwrap_or("invalid input"))]
    Validation(Vec<FieldError>),
    /// A query parameter is invalid.
    #[error("{1}")]
    BadQuery(String, String),
    /// The request conflicts with the current state (e.g. a cap is reached).
    #[error("{0}")]
    Conflict(String),
    /// The database is saturated: no connection came free in time. Retrying later
    /// is the right answer, not an internal error.
    #[error("Herald is busy; retry in a moment")]
    Busy,
    /// Something failed inside Herald.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A single-field validation error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LimitReached(_) | StoreError::Conflict(_) => Self::Conflict(e.to_string()),
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Invalid(errors) => Self::Validation(errors),
            StoreError::Database(sqlx::Error::PoolTimedOut) => {
                tracing::warn!("no database connection came free in time; answered 503");
                Self::Busy
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// One invalid field, in both RFC 9457-extension and PPM Express spelling.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// JSON path of the field, e.g. `headers[0].name`.
    #[serde(rename = "fieldName")]
    pub field_name: String,
    /// What is wrong.
    pub message: String,
}

/// The `application/problem+json` body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable problem identifier, e.g. `urn:herald:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// The first offending field, when the problem is about input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// PPM Express compatibility: same as `detail`.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
    /// Every offending field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON"),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Self::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            ),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Invalid request"),
            Self::BadQuery(..) => (StatusCode::BAD_REQUEST, "bad-query", "Invalid query parameter"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy", "Busy"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        if let Self::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let errors: Vec<ProblemField> = match &self {
            Self::Validation(v) => v
                .iter()
                .map(|e| ProblemField {
                    field_name: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            Self::BadQuery(f, m) => vec![ProblemField {
                field_name: f.clone(),
                message: m.clone(),
            }],
            _ => Vec::new(),
        };
        let detail = self.to_string();
        let body = Problem {
            kind: format!("urn:herald:problem:{kind}"),
            title: title.into(),
            status: status.as_u16(),
            field: errors.first().map(|e| e.field_name.clone()),
            error_message: detail.clone(),
            detail,
            errors,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_database_is_a_503_with_retry_after_not_a_500() {
        let resp = ApiError::from(StoreError::Database(sqlx::Error::PoolTimedOut)).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/problem+json");
        let other = ApiError::from(StoreError::Database(sqlx::Error::RowNotFound)).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
