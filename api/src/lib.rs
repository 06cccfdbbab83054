//! The Watch Party HTTP API: a thin axum layer that authenticates, validates, writes
//! PostgreSQL and enqueues work. Conventions: `docs/api-conventions.md`.

pub mod analytics;
pub mod auth;
pub mod error;
pub mod extract;
pub mod mail;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod page_cache;
pub mod ratelimit;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod state;

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, Method, header},
};
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::{catch_panic::CatchPanicLayer, compression::CompressionLayer, cors::CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

pub use crate::state::{App, AppState};
use crate::{
    error::AppError,
    routes::{
        accounts, admin, events, groups, mobile, moderation, notifications, parties, search,
        social, support, system, videos,
    },
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Watch Party API",
        description = "REST API of the Watch Party backend. Every path under `/api/` is also served under `/api/v1/`. \
Paths end with a slash; the same path without it is served too. Success bodies are `{success: true, message?, data}`; \
error bodies are `{success: false, message, code, errors?, request_id}`. Authentication is a Bearer JWT in \
`Authorization`; no cookies are used, so CSRF does not apply.",
    ),
    components(schemas(error::ErrorBody, wp_core::comment::Comment)),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "Registration, login, tokens, sessions"),
        (name = "account", description = "Email verification, password reset and change, email change"),
        (name = "two-factor", description = "TOTP two-factor authentication"),
        (name = "users", description = "Profiles and user search"),
        (name = "social", description = "Friend requests, friends, follows, blocks"),
        (name = "admin", description = "Staff actions on accounts"),
        (name = "videos", description = "The video library: upload, list, likes, downloads"),
        (name = "comments", description = "Threaded comments on videos"),
        (name = "notifications", description = "In-app notifications, their preferences, and push devices"),
        (name = "parties", description = "Watch parties: rooms, members, chat history, voice and screen-share state (live on the party socket, docs/realtime.md)"),
        (name = "events", description = "Scheduled events: RSVPs with places, a waitlist and approval, invitations, calendar files; the scheduler moves them live and ended"),
        (name = "analytics", description = "Playback events in; a video's analytics for its owner and staff; the live figures for staff (ClickHouse rollups)"),
        (name = "mobile", description = "What the mobile apps read at start: base URLs, features, limits, push settings, update advice"),
        (name = "moderation", description = "Reports of videos, comments, chat messages, parties, groups and users; the staff moderation queue; the audit log of staff actions"),
        (name = "support", description = "The help desk: support tickets with replies, staff notes, attachments, SLA and merges; the FAQ; product feedback"),
        (name = "groups", description = "Social groups: public and private groups, membership, join requests, invitations, roles and bans"),
        (name = "search", description = "Search across videos, users, parties, events and groups: filters, facets, highlights, suggestions and saved searches (docs/search.md)"),
        (name = "polls", description = "Party polls: create, vote, close; live on the party socket (`poll_created`, `poll_updated`, `poll_closed`, `poll_vote`)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("Access token from /api/auth/login/ (15 minutes)."))
                    .build(),
            ),
        );
    }
}

/// Routes under `/api/` (mounted twice: `/api/` and `/api/v1/`).
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::router())
        .merge(social::router())
        .merge(groups::router())
        .merge(events::router())
        .merge(admin::router())
        .merge(videos::router())
        .merge(parties::router())
        .merge(notifications::router())
        .merge(search::router())
        .merge(support::router())
        .merge(moderation::router())
        .merge(mobile::router())
        .merge(routes::analytics::router())
}

/// Builds the router and the OpenAPI document from one list of routes.
pub fn router_and_openapi() -> (Router<AppState>, serde_json::Value) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(system::metrics))
        .nest("/api", api_routes())
        .split_for_parts();
    openapi::complete_responses(&mut doc);
    (router, openapi::state_rules(&doc))
}

/// The OpenAPI document (also served at `/api/schema/`).
pub fn openapi() -> serde_json::Value {
    router_and_openapi().1
}

async fn not_found() -> AppError {
    AppError::not_found()
}

/// The full application: routes, docs and every middleware.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = router_and_openapi();
    let (v1, _) = api_routes().split_for_parts();
    let cfg = &state.config;
    auth::password::configure(cfg.password_hash_concurrency, cfg.password_hash_wait);
    let cors = CorsLayer::new()
        .allow_origin(
            cfg.cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600));
    router
        .nest("/api/v1", v1)
        .merge(SwaggerUi::new("/api/docs").external_url_unchecked("/api/schema/", openapi))
        .merge(routes::demo::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        // Listed innermost first: the last layer added runs first.
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::request_timeout,
        ))
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .compress_when(middleware::compressible),
        )
        .layer(cors)
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight
/// requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(state, Router::new(), listener, shutdown).await
}

/// [`serve`] with more routes beside the API's (the realtime sockets, when one process
/// serves both).
pub async fn serve_with(
    state: AppState,
    extra: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state).merge(extra);
    let svc = tower::util::MapRequestLayer::new(middleware::add_trailing_slash).layer(app);
    axum::serve(
        wp_shared::net::nodelay(listener),
        axum::ServiceExt::<Request<Body>>::into_make_service_with_connect_info::<
            std::net::SocketAddr,
        >(svc),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
