//! The admin web UI under `/admin`.
//!
//! Server-rendered HTML (maud escapes every interpolated value), no front-end build step:
//! the stylesheet, a small progressive script and the icons are compiled into the binary
//! from `assets/ui/`. Pages work without JavaScript; the script only adds live status
//! polling, instant filtering, copy buttons and confirmation dialogs.
//!
//! Security: a person signs in with an API token ([`signin`]) and gets a server-side
//! session ([`session`]) in an HttpOnly, SameSite=Strict cookie scoped to `/admin`; every
//! POST carries a synchronizer token ([`csrf`]). The UI calls the same functions as the
//! JSON API, so it can never do more than the token could. Responses carry a strict
//! Content-Security-Policy (no inline script or style), `nosniff`, a same-origin referrer
//! policy and `frame-ancestors 'none'`.

mod assets;
mod chart;
mod csrf;
mod delivery_views;
mod error;
mod form;
mod layout;
mod project_fields;
mod project_items;
mod projects;
mod session;
mod signin;
mod webhook_deliveries;
mod webhook_detail;
mod webhook_edit;
mod webhook_form;
mod webhook_values;
mod webhooks;

use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::any;
use axum::Router;

use crate::api::AppState;

/// Every `/admin` route, to be merged into the application router.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(assets::router())
        .merge(signin::router())
        .merge(webhooks::router())
        .merge(webhook_edit::router())
        .merge(webhook_detail::router())
        .merge(webhook_deliveries::router())
        .merge(projects::router())
        .route(
            "/admin/{*rest}",
            any(|| async { error::UiError::NotFound("page") }),
        )
        .layer(axum::middleware::map_response(security_headers))
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every UI response carries. Pages are never cached (they show live state and,
/// once, secrets); assets set their own long-lived `Cache-Control`.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}
