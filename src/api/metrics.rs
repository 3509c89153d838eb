//! `/metrics`: Prometheus text format (delivery outcomes, attempt latency, queue depth and
//! age, per-webhook failures). Unauthenticated like the health probes; it carries ids and
//! counts, never secrets, URLs or bodies.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.delivery.render_metrics().await,
    )
        .into_response()
}
