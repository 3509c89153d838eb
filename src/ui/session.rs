//! Admin UI sessions.
//!
//! Decision: sessions live server-side (`ui_sessions` table) rather than in an AEAD-sealed
//! cookie. A sealed cookie cannot be taken back: signing out would only delete the
//! browser's copy, and a stolen cookie would stay valid until it expires. With a table,
//! sign-out deletes the row, revoking the API token used to sign in ends every session
//! made with it (each request re-checks the token), and the CSRF synchronizer token has a
//! natural home. The cookie holds 256 random bits; the table holds only their SHA-256, so
//! a database copy cannot be replayed as cookies.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::UiError;
use crate::api::auth::Caller;
use crate::api::AppState;
use crate::domain::scope::{Scope, Scopes};
use crate::store::NewUiSession;
use crate::timefmt::now_ms;

/// Name of the session cookie.
pub const COOKIE: &str = "herald_session";
/// Absolute session lifetime: a working day, after which the person signs in again.
pub const TTL_MS: i64 = 8 * 60 * 60 * 1000;

/// A signed-in person: the caller their token stands for, and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    /// Tenant, user and scopes of the token used to sign in.
    pub caller: Caller,
    /// Synchronizer token every form of this session carries.
    pub csrf: String,
    id_hash: String,
}

impl Session {
    /// Whether the session's token grants `scope`.
    pub fn can(&self, scope: Scope) -> bool {
        self.caller.scopes.grants(scope)
    }

    /// Fails with a friendly 403 unless the token grants `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), UiError> {
        if self.can(scope) {
            Ok(())
        } else {
            Err(UiError::Forbidden(scope.as_str()))
        }
    }
}

/// Whether a token with these scopes may use the admin UI at all.
pub fn may_sign_in(scopes: &Scopes) -> bool {
    scopes.grants(Scope::WebhooksRead) || scopes.grants(Scope::WebhooksWrite)
}

/// 32 random bytes, URL-safe base64 (session ids and CSRF tokens).
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The value of cookie `name` in the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value scoped to `/admin`: HttpOnly, SameSite=Strict, and Secure when
/// Herald is reached over TLS. `max_age` 0 deletes the cookie.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: i64) -> String {
    let secure = state.settings.tls.is_some() || state.settings.public_base_url.starts_with("https://");
    format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Opens a session for `caller`; returns the `Set-Cookie` value.
pub async fn start(state: &AppState, caller: &Caller) -> Result<String, UiError> {
    let now = now_ms();
    // Housekeeping on the rare sign-in path keeps the table small without a background task.
    state.store.purge_expired_ui_sessions(now).await?;
    let id = random_token();
    state
        .store
        .insert_ui_session(&NewUiSession {
            id_hash: hash(&id),
            tenant_id: caller.tenant_id,
            token_id: caller.token_id.clone(),
            csrf_token: random_token(),
            created_at: now,
            expires_at: now + TTL_MS,
        })
        .await?;
    Ok(set_cookie(state, COOKIE, &id, TTL_MS / 1000))
}

/// Ends `session`; returns the `Set-Cookie` value that clears the cookie.
pub async fn end(state: &AppState, session: &Session) -> Result<String, UiError> {
    state.store.delete_ui_session(&session.id_hash).await?;
    Ok(set_cookie(state, COOKIE, "", 0))
}

/// The session the request's cookie names, if it is valid, unexpired, and its token is
/// still active and allowed to use the UI.
pub async fn load(headers: &HeaderMap, state: &AppState) -> Result<Option<Session>, UiError> {
    let Some(id) = cookie(headers, COOKIE).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let id_hash = hash(id);
    let Some(rec) = state.store.ui_session(&id_hash, now_ms()).await? else {
        return Ok(None);
    };
    let Some(token) = state.store.token_by_id(&rec.token_id).await? else {
        return Ok(None);
    };
    if token.revoked_at.is_some() || token.tenant_id != rec.tenant_id {
        return Ok(None);
    }
    let Ok(scopes) = Scopes::parse(&token.scopes) else {
        return Ok(None);
    };
    if !may_sign_in(&scopes) {
        return Ok(None);
    }
    Ok(Some(Session {
        caller: Caller {
            token_id: token.id,
            tenant_id: token.tenant_id,
            tenant: token.tenant_slug,
            user: token.user,
            fields_version: token.fields_version,
            webhooks_version: token.webhooks_version,
            scopes,
        },
        csrf: rec.csrf_token,
        id_hash,
    }))
}

/// Where to come back to after signing in: the requested page for GETs, else the list.
fn next_for(parts: &Parts) -> Option<String> {
    (parts.method == axum::http::Method::GET)
        .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_owned()))
        .flatten()
}

impl FromRequestParts<AppState> for Session {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        load(&parts.headers, state).await?.ok_or_else(|| UiError::SignIn {
            next: next_for(parts),
        })
    }
}

/// Accepts only local `/admin/…` paths as a post-sign-in target (no open redirects).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin/")
                && !n.starts_with("/admin/sign-")
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/admin/webhooks".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_local() {
        assert_eq!(safe_next(Some("/admin/webhooks/x")), "/admin/webhooks/x");
        for bad in [
            "https://evil.test/",
            "//evil.test",
            "/admin//evil",
            "/admin/sign-out",
            "/x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin/webhooks", "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; herald_session=abc ; b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
