//! CSRF protection. Every form of a signed-in person carries the session's synchronizer
//! token in a hidden `csrf` field; [`SessionForm`] is the only way UI handlers read a POST
//! body, and it refuses the request unless that field matches the session (constant-time).
//! The sign-in form has no session yet, so it uses a double-submit pair instead: a random
//! value in a SameSite=Strict cookie and the same value in the form, which a cross-site
//! page can neither read nor make the browser send.

use axum::extract::{FromRequest, FromRequestParts, Request};
use maud::{html, Markup};
use subtle::ConstantTimeEq;

use super::error::UiError;
use super::form::{read_body, FormData};
use super::session::Session;
use crate::api::AppState;

/// Name of the hidden field.
pub const FIELD: &str = "csrf";
/// Cookie holding the sign-in form's double-submit value.
pub const SIGNIN_COOKIE: &str = "herald_signin";

/// Constant-time equality of two tokens (empty never matches).
pub fn matches(given: &str, expected: &str) -> bool {
    !expected.is_empty()
        && given.len() == expected.len()
        && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The hidden input every form includes.
pub fn field(session: &Session) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(session.csrf); }
}

/// A POST from a signed-in person whose CSRF token checked out, with its parsed body.
#[derive(Debug)]
pub struct SessionForm {
    /// The session.
    pub session: Session,
    /// The submitted fields.
    pub form: FormData,
}

impl FromRequest<AppState> for SessionForm {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let form = FormData::parse(&read_body(body).await?);
        if !matches(form.get(FIELD).unwrap_or_default(), &session.csrf) {
            tracing::warn!(tenant = %session.caller.tenant, path = %parts.uri.path(), "admin UI form refused: bad CSRF token");
            return Err(UiError::Csrf);
        }
        Ok(Self { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly() {
        assert!(matches("abc", "abc"));
        assert!(!matches("abd", "abc"));
        assert!(!matches("ab", "abc"));
        assert!(!matches("", ""));
    }
}
