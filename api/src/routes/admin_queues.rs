//! Job queue depths for the admin panel (the same figures as `/metrics`).

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use wp_shared::jobs::{Queue, queue_depth};

use crate::{
    auth::{AuthUser, Role},
    error::AppResult,
    response::{ApiResponse, Envelope},
    state::AppState,
};

/// One queue's depth.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueInfo {
    pub queue: String,
    /// Waiting to run now.
    pub active: u64,
    /// Delayed, or retries in backoff.
    pub scheduled: u64,
    /// Taken by a worker, not finished.
    pub inflight: u64,
    /// Given up; kept for inspection.
    pub dead: u64,
    /// Live worker registrations.
    pub workers: u64,
}

/// `data` of the queue overview.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesOverview {
    pub queues: Vec<QueueInfo>,
    /// Outbox rows committed but not yet relayed.
    pub outbox_pending: i64,
}

/// Depth of every job queue and the outbox backlog (admins).
#[utoipa::path(get, path = "/admin/queues/", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<QueuesOverview>)), (status = 403, body = crate::error::ErrorBody)))]
pub async fn queues(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<ApiResponse<QueuesOverview>> {
    user.require_role(Role::Admin)?;
    let mut conn = state.redis.clone();
    let mut queues = Vec::new();
    for q in Queue::ALL {
        let d = queue_depth(&mut conn, &state.config, q).await?;
        queues.push(QueueInfo {
            queue: q.name().to_owned(),
            active: d.active,
            scheduled: d.scheduled,
            inflight: d.inflight,
            dead: d.dead,
            workers: d.workers,
        });
    }
    Ok(ApiResponse::ok(QueuesOverview {
        queues,
        outbox_pending: wp_shared::outbox::pending_count(&state.db).await?,
    }))
}
