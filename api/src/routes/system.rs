//! Liveness, readiness and metrics.

use std::collections::BTreeMap;

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use wp_shared::ops::{self, Check, Privileged, timed};

use crate::{
    error::{AppError, ErrorBody},
    request_id,
    response::ApiResponse,
    state::AppState,
};

/// `data` of `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: the process is up and serving. Checks no dependency.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "Alive", body = inline(crate::response::Envelope<Health>))))]
#[tracing::instrument(skip_all)]
pub async fn health() -> ApiResponse<Health> {
    ApiResponse::ok(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `data` of `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// `postgres`, `redis`, `clickhouse`: only on the ops address or with the ops token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<&'static str, Check>>,
}

/// Readiness: PostgreSQL, Redis and ClickHouse each reachable. 200 when all are,
/// 503 when any is not. The report of each check (latency, error) is given on the ops
/// address (`OPS_BIND_ADDR`) or with `Authorization: Bearer <OPS_TOKEN>`; anyone else
/// gets the status alone.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses(
        (status = 200, description = "Every dependency reachable", body = inline(crate::response::Envelope<Readiness>)),
        (status = 503, description = "A dependency is down; `data` holds the report", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn ready(State(state): State<AppState>, Privileged(details): Privileged) -> Response {
    let pg = timed(ops::postgres(state.db.clone())());
    let redis = timed(ops::redis(state.redis.clone())());
    let ch = timed(wp_shared::clickhouse::ping(&state.clickhouse));
    let (pg, redis, ch) = tokio::join!(pg, redis, ch);
    let mut checks = BTreeMap::new();
    checks.insert("postgres", pg);
    checks.insert("redis", redis);
    checks.insert("clickhouse", ch);
    let all_ok = checks.values().all(|c| c.ok);
    let report = Readiness {
        status: if all_ok { "ok" } else { "degraded" },
        checks: details.then_some(checks),
    };
    if all_ok {
        ApiResponse::ok(report).into_response()
    } else {
        #[derive(Serialize)]
        struct Degraded {
            success: bool,
            message: &'static str,
            code: &'static str,
            data: Readiness,
            request_id: String,
        }
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Degraded {
                success: false,
                message: "A dependency is unavailable.",
                code: "service_unavailable",
                data: report,
                request_id: request_id::current(),
            }),
        )
            .into_response()
    }
}

/// Prometheus metrics (text format 0.0.4): `http_requests_total`,
/// `http_request_duration_seconds`, `job_queue_depth{queue,state}`, `outbox_pending`.
/// Served on the ops address (`OPS_BIND_ADDR`), and on this port only with
/// `Authorization: Bearer <OPS_TOKEN>`: to anyone else it does not exist (404).
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 404, description = "No ops token, or a wrong one", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn metrics(
    State(state): State<AppState>,
    Privileged(allowed): Privileged,
) -> Result<Response, AppError> {
    if !allowed {
        return Err(AppError::not_found());
    }
    let body = state.metrics.render(&state).await;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// The API's ops address (`OPS_BIND_ADDR`): `/health`, `/ready` with every check and
/// `/metrics`, for a private network (served by `wp_shared::ops::serve_router`).
pub fn ops_router(state: AppState) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}
