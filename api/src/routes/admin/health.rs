//! `GET /api/admin/system-health/`: the platform at a glance for admins — every
//! dependency with its latency, each job queue (depth, oldest waiting job, dead jobs,
//! live workers, throughput), the outbox backlog, the realtime nodes, and one overall
//! status with the reasons for it.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use wp_core::party::live::{self, NodeInfo};
use wp_shared::{
    jobs::{Queue, finished_per_minute, queue_depth},
    ops::{self, Check, timed},
};

use crate::{
    auth::{AuthUser, Role},
    error::AppResult,
    response::{ApiResponse, Envelope},
    state::AppState,
};

/// A queue whose head job waited longer than this makes the platform degraded.
pub const QUEUE_WAIT_WARN_SECS: f64 = 300.0;
/// An outbox row unrelayed for longer than this makes the platform degraded.
pub const OUTBOX_LAG_WARN_SECS: f64 = 60.0;
/// Throughput is the mean over this many whole minutes.
const THROUGHPUT_MINUTES: u64 = 5;

/// One job queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueHealth {
    pub queue: String,
    /// Waiting to run now.
    pub waiting: u64,
    /// Delayed, or retries in backoff.
    pub scheduled: u64,
    /// Running now.
    pub inflight: u64,
    /// Given up; kept for inspection and replay.
    pub dead: u64,
    /// Worker processes consuming it (a recent heartbeat).
    pub workers: u64,
    /// How long the job at the head has waited (seconds); null when none waits.
    pub oldest_waiting_secs: Option<f64>,
    /// Attempts finished per minute, mean of the last 5 whole minutes, by outcome.
    pub succeeded_per_minute: f64,
    pub retried_per_minute: f64,
    pub dead_per_minute: f64,
}

/// The outbox: rows committed but not yet handed to the queues.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxHealth {
    pub pending: i64,
    /// Seconds the oldest pending row has waited (0 when none).
    pub oldest_secs: f64,
}

/// The realtime side.
#[derive(Debug, Serialize, ToSchema)]
pub struct RealtimeHealth {
    /// Live nodes (their liveness key not expired), by name.
    pub nodes: Vec<NodeInfo>,
    pub sockets: u64,
    pub parties: u64,
}

/// `data` of the system health.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemHealth {
    /// `ok`; `degraded` (something needs a look: see `problems`); `down` (PostgreSQL or
    /// Redis unreachable: nothing works).
    pub status: &'static str,
    /// What made the status other than `ok`, one sentence each.
    pub problems: Vec<String>,
    pub checked_at: DateTime<Utc>,
    /// `postgres`, `redis`, `clickhouse`, `smtp`, `storage`.
    pub dependencies: BTreeMap<&'static str, Check>,
    pub queues: Vec<QueueHealth>,
    pub outbox: Option<OutboxHealth>,
    pub realtime: Option<RealtimeHealth>,
}

/// The platform's health (admins): dependencies with latencies, queues, outbox,
/// realtime nodes, and an overall status with its reasons. Always 200 when the caller
/// is an admin, whatever it finds (a part that cannot be read is null and named in
/// `problems`).
#[utoipa::path(get, path = "/admin/system-health/", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<SystemHealth>)), (status = 403, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn system_health(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<SystemHealth>> {
    me.require_role(Role::Admin)?;
    let probe = format!("probe-{}", uuid::Uuid::now_v7());
    let (pg, redis, ch, smtp, storage) = tokio::join!(
        timed(ops::postgres(state.db.clone())()),
        timed(ops::redis(state.redis.clone())()),
        timed(wp_shared::clickhouse::ping(&state.clickhouse)),
        timed(ops::smtp(&state.config.email)),
        timed(ops::storage(&state.storage, &probe)),
    );
    let mut problems = Vec::new();
    let mut down = false;
    let mut dependencies = BTreeMap::new();
    for (name, check, vital) in [
        ("postgres", pg, true),
        ("redis", redis, true),
        ("clickhouse", ch, false),
        ("smtp", smtp, false),
        ("storage", storage, false),
    ] {
        if !check.ok {
            down |= vital;
            problems.push(format!(
                "{name} is unreachable: {}",
                check.error.as_deref().unwrap_or("no answer")
            ));
        }
        dependencies.insert(name, check);
    }

    let queues = match read_queues(&state).await {
        Ok(q) => q,
        Err(e) => {
            problems.push(format!("the queues cannot be read: {e}"));
            Vec::new()
        }
    };
    for q in &queues {
        if q.workers == 0 && q.waiting + q.scheduled > 0 {
            problems.push(format!(
                "queue {}: {} jobs wait and no worker consumes it",
                q.queue,
                q.waiting + q.scheduled
            ));
        } else if q.workers == 0 {
            problems.push(format!("queue {}: no worker process is alive", q.queue));
        }
        if q.oldest_waiting_secs
            .is_some_and(|s| s > QUEUE_WAIT_WARN_SECS)
        {
            problems.push(format!(
                "queue {}: its oldest job has waited {:.0} s",
                q.queue,
                q.oldest_waiting_secs.unwrap_or_default()
            ));
        }
    }

    let outbox = match wp_shared::outbox::backlog(&state.db).await {
        Ok((pending, oldest_secs)) => {
            if oldest_secs > OUTBOX_LAG_WARN_SECS {
                problems.push(format!(
                    "the outbox relay is behind: {pending} rows, the oldest {oldest_secs:.0} s"
                ));
            }
            Some(OutboxHealth {
                pending,
                oldest_secs,
            })
        }
        Err(e) => {
            problems.push(format!("the outbox cannot be read: {e}"));
            None
        }
    };

    let mut conn = state.redis.clone();
    let realtime = match live::nodes(&mut conn, &state.config.redis_prefix).await {
        Ok(nodes) => {
            if nodes.is_empty() {
                problems.push("no realtime node is alive: party sockets cannot connect".into());
            }
            Some(RealtimeHealth {
                sockets: nodes.iter().map(|n| n.sockets).sum(),
                parties: nodes.iter().map(|n| n.parties).sum(),
                nodes,
            })
        }
        Err(e) => {
            problems.push(format!("the realtime nodes cannot be read: {e}"));
            None
        }
    };

    let status = if down {
        "down"
    } else if problems.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    Ok(ApiResponse::ok(SystemHealth {
        status,
        problems,
        checked_at: Utc::now(),
        dependencies,
        queues,
        outbox,
        realtime,
    }))
}

async fn read_queues(state: &AppState) -> redis::RedisResult<Vec<QueueHealth>> {
    let mut conn = state.redis.clone();
    let rates =
        finished_per_minute(&mut conn, &state.config.redis_prefix, THROUGHPUT_MINUTES).await?;
    let rate = |q: Queue, outcome: &str| {
        rates
            .get(&format!("{}:{outcome}", q.name()))
            .copied()
            .unwrap_or(0.0)
    };
    let mut out = Vec::with_capacity(Queue::ALL.len());
    for q in Queue::ALL {
        let d = queue_depth(&mut conn, &state.config, q).await?;
        out.push(QueueHealth {
            queue: q.name().to_owned(),
            waiting: d.active,
            scheduled: d.scheduled,
            inflight: d.inflight,
            dead: d.dead,
            workers: d.workers,
            oldest_waiting_secs: d.oldest_waiting_secs,
            succeeded_per_minute: rate(q, "succeeded"),
            retried_per_minute: rate(q, "retried"),
            dead_per_minute: rate(q, "dead"),
        });
    }
    Ok(out)
}
