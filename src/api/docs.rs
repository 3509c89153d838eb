//! The API description: OpenAPI 3.1 generated from the handlers and DTOs at
//! `/openapi.json`, and Swagger UI at `/docs` from assets compiled into the binary (works
//! with no internet access).

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// The generated OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Outgoing webhooks for project-tracking data. \
        Every path is scoped to a tenant (`/@{tenant}/v1/…`; `/v1.0/` is accepted too). \
        Authenticate with `Authorization: Bearer <token>`."),
    paths(
        super::webhooks::create, super::webhooks::list, super::webhooks::get_one,
        super::webhooks::replace, super::webhooks::patch, super::webhooks::delete_one,
        super::webhooks::delete_all, super::webhooks::rotate_secret,
        super::users::create, super::users::list, super::users::get_one, super::users::update,
        super::fields::create, super::fields::list, super::fields::get_one, super::fields::update, super::fields::delete,
        super::entities::projects::create, super::entities::projects::list, super::entities::projects::get_one,
        super::entities::projects::update, super::entities::projects::put_update, super::entities::projects::delete,
        super::entities::stories::create, super::entities::stories::list, super::entities::stories::get_one,
        super::entities::stories::update, super::entities::stories::put_update, super::entities::stories::delete,
        super::entities::comments::create, super::entities::comments::list, super::entities::comments::get_one,
        super::entities::comments::update, super::entities::comments::put_update, super::entities::comments::delete,
        super::entities::tasks::create, super::entities::tasks::list, super::entities::tasks::get_one,
        super::entities::tasks::update, super::entities::tasks::put_update, super::entities::tasks::delete,
        super::entities::ideas::create, super::entities::ideas::list, super::entities::ideas::get_one,
        super::entities::ideas::update, super::entities::ideas::put_update, super::entities::ideas::delete,
        super::entities::key_dates::create, super::entities::key_dates::list, super::entities::key_dates::get_one,
        super::entities::key_dates::update, super::entities::key_dates::put_update, super::entities::key_dates::delete,
        super::entities::portfolios::create, super::entities::portfolios::list, super::entities::portfolios::get_one,
        super::entities::portfolios::update, super::entities::portfolios::put_update, super::entities::portfolios::delete,
        super::entities::programs::create, super::entities::programs::list, super::entities::programs::get_one,
        super::entities::programs::update, super::entities::programs::put_update, super::entities::programs::delete,
        super::events::list, super::events::ingest,
        super::deliveries::list, super::deliveries::get_one, super::deliveries::redeliver,
        super::deliveries::replay, super::deliveries::test,
        super::health::healthz, super::health::readyz, super::metrics::metrics,
    ),
    modifiers(&BearerAuth),
    tags((name = "webhooks", description = "Webhook subscriptions (PPM Express compatible)"),
         (name = "projects", description = "Projects with typed Projectrak fields and PPM attributes"),
         (name = "stories", description = "Pivotal Tracker stories and their comments"),
         (name = "ppm", description = "PPM Express tasks, ideas, key dates, portfolios and programs"),
         (name = "fields", description = "Project field definitions (system and custom)"),
         (name = "users", description = "Authors of changes"),
         (name = "events", description = "The event log and the ingest API"),
         (name = "deliveries", description = "Delivery log, redelivery and test pings"),
         (name = "operations", description = "Health, readiness and metrics"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        super::docs_schemas::add(openapi);
    }
}

/// `/openapi.json`, `/docs` and its assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/docs", get(|| async { Html(INDEX) }))
        .route("/docs/", get(|| async { Html(INDEX) }))
        .route(
            "/docs/swagger-ui.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css"), CACHE], CSS).into_response() }),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript"), CACHE], JS).into_response() }),
        )
}

const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "public, max-age=86400");
const CSS: &str = include_str!("../../assets/swagger-ui/swagger-ui.css");
const JS: &str = include_str!("../../assets/swagger-ui/swagger-ui-bundle.js");
const INDEX: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Herald API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});</script>
</body></html>"##;
