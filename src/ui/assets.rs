//! The UI's static files, compiled into the binary from `assets/ui/` (Herald serves its
//! admin UI with no internet access and no files beside the binary). URLs carry a hash of
//! the content, so browsers may cache them for a long time and still never see a stale one.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::UiError;
use crate::api::AppState;

const CSS: &str = include_str!("../../assets/ui/app.css");
const JS: &str = include_str!("../../assets/ui/app.js");
const FAVICON: &str = include_str!("../../assets/ui/favicon.svg");
/// The logo, inlined in the page header (decorative: the brand text follows it).
pub const LOGO: &str = include_str!("../../assets/ui/logo.svg");

/// FNV-1a, evaluated at compile time: a cache-busting version per file.
const fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

const FILES: &[(&str, &str, &str, u64)] = &[
    ("app.css", "text/css; charset=utf-8", CSS, fnv(CSS.as_bytes())),
    ("app.js", "text/javascript; charset=utf-8", JS, fnv(JS.as_bytes())),
    ("favicon.svg", "image/svg+xml", FAVICON, fnv(FAVICON.as_bytes())),
];

/// The versioned URL of an asset.
pub fn url(name: &str) -> String {
    let v = FILES.iter().find(|f| f.0 == name).map_or(0, |f| f.3);
    format!("/admin/assets/{name}?v={v:016x}")
}

async fn serve(Path(name): Path<String>) -> Result<Response, UiError> {
    let (_, mime, body, _) = FILES
        .iter()
        .find(|f| f.0 == name)
        .ok_or(UiError::NotFound("file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, *mime),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        *body,
    )
        .into_response())
}

/// `/admin/assets/{name}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/admin/assets/{name}", get(serve))
}
