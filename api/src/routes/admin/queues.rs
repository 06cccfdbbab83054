//! Job queues for the admin panel: depths (the same figures as `/metrics`), and the
//! dead jobs of a queue, to inspect and replay.

use axum::extract::{OriginalUri, Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wp_shared::jobs::{Queue, ReplayError, queue_depth};

use crate::{
    auth::{AuthUser, Role},
    error::{AppError, AppResult},
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
    /// Workers with a recent heartbeat: the queue's consumers now.
    pub workers: u64,
    /// Worker registrations, including stopped workers not yet reaped.
    pub registered: u64,
    /// Seconds the job at the head of the queue has existed; null when none waits.
    pub oldest_waiting_secs: Option<f64>,
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
#[tracing::instrument(skip_all)]
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
            registered: d.registered,
            oldest_waiting_secs: d.oldest_waiting_secs,
        });
    }
    Ok(ApiResponse::ok(QueuesOverview {
        queues,
        outbox_pending: wp_shared::outbox::pending_count(&state.db).await?,
    }))
}

/// A job given up on.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJob {
    pub id: String,
    /// What the worker got.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// What its last attempt returned.
    pub error: Option<String>,
    pub attempts: Option<u32>,
    /// Unix seconds.
    pub failed_at: Option<u64>,
}

/// `data` of a queue's dead jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJobs {
    pub queue: String,
    /// All dead jobs of the queue (the list holds at most `limit`, newest first).
    pub count: u64,
    pub results: Vec<DeadJob>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadParams {
    /// At most this many (default 50, at most 500).
    pub limit: Option<u32>,
}

fn queue_of(name: &str) -> AppResult<Queue> {
    name.parse().map_err(|_| AppError::not_found())
}

/// A queue's dead jobs: given up after their last attempt or refused as permanent
/// (admins). They are kept `JOB_DEAD_RETENTION_DAYS`.
#[utoipa::path(get, path = "/admin/queues/{queue}/dead/", tag = "admin", security(("bearer" = [])),
    params(("queue" = String, Path, description = "email, push, notify, search, export, analytics, media, system"), DeadParams),
    responses((status = 200, body = inline(Envelope<DeadJobs>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn dead(
    State(state): State<AppState>,
    user: AuthUser,
    Path(queue): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> AppResult<ApiResponse<DeadJobs>> {
    user.require_role(Role::Admin)?;
    let q: DeadParams = crate::extract::parse_query(uri.query())?;
    let queue = queue_of(&queue)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(AppError::field("limit", "Between 1 and 500."));
    }
    let mut conn = state.redis.clone();
    let (count, jobs) =
        wp_shared::jobs::dead_jobs(&mut conn, &state.config, queue, limit as usize).await?;
    Ok(ApiResponse::ok(DeadJobs {
        queue: queue.name().to_owned(),
        count,
        results: jobs
            .into_iter()
            .map(|j| DeadJob {
                id: j.id,
                payload: j.payload,
                error: j.error,
                attempts: j.attempts,
                failed_at: j.failed_at,
            })
            .collect(),
    }))
}

/// The replayed job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub queue: String,
    pub id: String,
}

/// Runs a dead job again (admins): its payload goes back on the queue as a new job and
/// the dead record is removed. Jobs are idempotent: a replay does only what the
/// original did not (an email already sent is not sent again).
#[utoipa::path(post, path = "/admin/queues/{queue}/dead/{id}/replay/", tag = "admin", security(("bearer" = [])),
    params(("queue" = String, Path), ("id" = String, Path)),
    responses((status = 202, body = inline(Envelope<Replayed>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn replay(
    State(state): State<AppState>,
    user: AuthUser,
    Path((queue, id)): Path<(String, String)>,
) -> AppResult<ApiResponse<Replayed>> {
    user.require_role(Role::Admin)?;
    let queue = queue_of(&queue)?;
    match wp_shared::jobs::replay_dead(&state.enqueuer, queue, &id).await {
        Ok(()) => {
            tracing::info!(queue = queue.name(), job = id, by = %user.id, "dead job replayed");
            // After the fact (the replay is a Redis move, outside any transaction): a
            // failed write is logged, the replay stands.
            let mut conn = state.db.acquire().await?;
            if let Err(e) = wp_core::audit::record(
                &mut conn,
                &user,
                "queue.replay",
                "queue",
                None,
                serde_json::json!({ "queue": queue.name(), "job": id }),
            )
            .await
            {
                tracing::error!(error = %e, "could not write the audit row of a replay");
            }
            Ok(ApiResponse::accepted(Replayed {
                queue: queue.name().to_owned(),
                id,
            }))
        }
        Err(ReplayError::NotFound) => Err(AppError::not_found()),
        Err(ReplayError::Redis(e)) => Err(e.into()),
        Err(ReplayError::Enqueue(e)) => Err(anyhow::Error::from(e).into()),
    }
}
