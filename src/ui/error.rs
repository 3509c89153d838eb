//! Errors of the admin UI, rendered as friendly HTML pages. A person who follows a stale
//! link, submits an expired form or lacks a scope gets a page that says what happened and
//! where to go next — never a bare status line, and never a 500 for bad input.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout;
use crate::api::problem::ApiError;
use crate::store::StoreError;

/// Everything a UI handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No valid session: go to the sign-in page (and come back to `next` afterwards).
    #[error("sign-in required")]
    SignIn {
        /// Where to return after signing in (an `/admin/…` path).
        next: Option<String>,
    },
    /// The object does not exist in this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The session's token lacks a scope.
    #[error("your token lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// The form's CSRF token is missing or wrong.
    #[error("this form has expired or did not come from Herald")]
    Csrf,
    /// The request itself is malformed (too large, unparseable).
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the current state (e.g. the webhook cap).
    #[error("{0}")]
    Conflict(String),
    /// The database is saturated (no connection came free in time): nothing was changed,
    /// and the same request can be sent again in a moment.
    #[error("Herald is busy")]
    Busy,
    /// Something failed inside Herald; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// Result alias for UI handlers.
pub type UiResult<T> = Result<T, UiError>;

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => Self::SignIn { next: None },
            ApiError::Forbidden(scope) => Self::Forbidden(scope),
            ApiError::NotFound(what) => Self::NotFound(what),
            ApiError::Conflict(m) => Self::Conflict(m),
            ApiError::Internal(e) => Self::Internal(e),
            ApiError::Busy => Self::Busy,
            other => Self::BadRequest(other.to_string()),
        }
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, hint) = match &self {
            Self::SignIn { next } => {
                let to = match next {
                    Some(n) => format!("/admin/sign-in?next={}", urlencode(n)),
                    None => "/admin/sign-in".to_owned(),
                };
                return Redirect::to(&to).into_response();
            }
            Self::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "Not found",
                "It may have been deleted, or the link is wrong.",
            ),
            Self::Forbidden(_) => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Sign in with a token that has this scope to do this.",
            ),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "Nothing was changed. Go back, reload the page and try again.",
            ),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request", "Nothing was changed."),
            Self::Conflict(_) => (StatusCode::CONFLICT, "Cannot do that now", "Nothing was changed."),
            Self::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Nothing was changed. Try again in a moment.",
            ),
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "admin UI request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The error was logged. Try again in a moment.",
                )
            }
        };
        let detail = match &self {
            Self::Internal(_) => None,
            other => Some(capitalise(&other.to_string())),
        };
        let body = layout::bare(
            title,
            html! {
                h1 { (title) }
                @if let Some(d) = detail { p { (d) "." } }
                p { (hint) }
                p { a href="/admin/webhooks" { "Back to webhooks" } }
            },
        );
        let mut response = (status, [(header::CACHE_CONTROL, "no-store")], body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_database_is_a_503_to_retry_not_a_bad_request() {
        let r = UiError::from(ApiError::Busy).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = UiError::from(ApiError::MalformedJson("x".into())).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(!r.headers().contains_key(header::RETRY_AFTER));
    }
}
