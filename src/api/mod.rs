//! The HTTP API: routing, shared state, and the resource modules. Handlers stay thin:
//! parse input (extractors), call the domain and the store, render DTOs.

pub mod auth;
pub mod deliveries;
pub mod delivery_dto;
pub mod docs;
mod docs_schemas;
pub mod entities;
pub mod events;
pub mod fields;
pub mod health;
pub mod json;
pub mod metrics;
pub mod problem;
pub mod query;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::crypto::MasterKey;
use crate::delivery::DeliveryEngine;
use crate::store::Store;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Seals and opens secrets.
    pub key: Arc<MasterKey>,
    /// The delivery engine (redelivery, test pings, metrics).
    pub delivery: DeliveryEngine,
    /// Field definitions per tenant, for tracker changes.
    pub field_cache: Arc<crate::tracker::FieldCache>,
}

/// Routes under `/{tenant}/v1` (mounted at `/v1.0` as well, as PPM Express accepts both).
fn tenant_api() -> Router<AppState> {
    Router::new()
        .merge(webhooks::router())
        .merge(deliveries::router())
        .merge(entities::router())
        .merge(users::router())
        .merge(fields::router())
        .merge(events::router())
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let api = tenant_api();
    Router::new()
        .nest("/{tenant}/v1", api.clone())
        .nest("/{tenant}/v1.0", api)
        .merge(health::router())
        .merge(metrics::router())
        .merge(docs::router())
        .merge(crate::ui::router())
        .fallback(|| async { problem::ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { problem::ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(json::MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Path parameters of `/{tenant}/v1/<Resource>/{id}` routes.
#[derive(Debug, serde::Deserialize)]
pub struct IdPath {
    /// `@slug` (checked by the auth extractor).
    pub tenant: String,
    /// Object id as given (parsed by the handler; unparseable ids are "not found").
    pub id: String,
}
