//! The scheduler: cron-style schedules whose ticks only enqueue a job.
//!
//! Any number of replicas may run. Each tick takes a Redis lock named after the
//! schedule and the tick's own time (`SET NX EX`), so exactly one replica enqueues it;
//! the job also carries a dedupe key of the same name, a second guard should a lock
//! expire early. Why not apalis-cron: its schedules fire once per replica, and the
//! lock is the part that matters; the `cron` crate gives the same expressions.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use wp_shared::{
    Config,
    jobs::{EnqueueError, Enqueuer, Job, Queue, SearchJob, SystemJob},
    redis_conn::try_lock,
};

/// One schedule: a name, a cron expression (with seconds) and the job it enqueues.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: &'static str,
    pub cron: cron::Schedule,
    /// The queue the job goes to and its payload.
    pub queue: Queue,
    pub job: serde_json::Value,
}

impl Schedule {
    fn new<J: Job>(name: &'static str, cron: cron::Schedule, job: J) -> Self {
        Self {
            name,
            cron,
            queue: J::QUEUE,
            // The payloads here are enums of plain variants: they always serialise.
            job: serde_json::to_value(&job).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The schedules of this release.
pub fn schedules(config: &Config) -> anyhow::Result<Vec<Schedule>> {
    let parse = |expr: &str| {
        cron::Schedule::from_str(expr).map_err(|e| anyhow::anyhow!("cron `{expr}`: {e}"))
    };
    Ok(vec![
        Schedule::new(
            "outbox-relay",
            parse(&format!("*/{} * * * * *", config.outbox_sweep_secs))?,
            SystemJob::RelayOutbox,
        ),
        Schedule::new(
            "close-polls",
            parse("*/2 * * * * *")?,
            SystemJob::ClosePolls,
        ),
        Schedule::new(
            "advance-events",
            parse("*/10 * * * * *")?,
            SystemJob::AdvanceEvents,
        ),
        Schedule::new(
            "support-sweep",
            parse("0 * * * * *")?,
            SystemJob::SupportSweep,
        ),
        Schedule::new("prune-sync", parse("0 17 * * * *")?, SystemJob::PruneSync),
        Schedule::new(
            "prune-analytics",
            parse("0 43 3 * * *")?,
            SystemJob::PruneAnalytics,
        ),
        Schedule::new(
            "vacuum-jobs",
            parse("0 */15 * * * *")?,
            SystemJob::VacuumJobs,
        ),
        Schedule::new(
            "notification-digests",
            parse("0 */15 * * * *")?,
            SystemJob::SendDigests,
        ),
        Schedule::new("sweep-parts", parse("0 17 * * * *")?, SystemJob::SweepParts),
        // The search worker folds changes as they come (LISTEN); this tick is the net
        // for a worker that missed a wake-up.
        Schedule::new("search-sync", parse("*/5 * * * * *")?, SearchJob::Sync),
        Schedule::new("search-alerts", parse("0 */10 * * * *")?, SearchJob::Alerts),
        Schedule::new(
            "purge-accounts",
            parse("0 7 * * * *")?,
            SystemJob::PurgeAccounts,
        ),
    ])
}

/// Error while firing a tick.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error(transparent)]
    Enqueue(EnqueueError),
}

/// Fires `schedule`'s tick at `at` if no other replica has: returns whether this call
/// enqueued the job.
pub async fn fire(
    conn: &mut ConnectionManager,
    enq: &Enqueuer,
    holder: &str,
    schedule: &Schedule,
    at: DateTime<Utc>,
) -> Result<bool, TickError> {
    let key = format!(
        "{}:sched:{}:{}",
        enq.config().redis_prefix,
        schedule.name,
        at.timestamp()
    );
    // Held long after the tick so a replica whose clock lags cannot fire it again.
    let won = try_lock(conn, &key, holder, Duration::from_secs(3600))
        .await
        .map_err(TickError::Redis)?;
    if !won {
        return Ok(false);
    }
    let dedupe = format!("sched:{}:{}", schedule.name, at.timestamp());
    enq.push_json(schedule.queue, vec![(schedule.job.clone(), Some(dedupe))])
        .await
        .map_err(TickError::Enqueue)?;
    Ok(true)
}

/// `scheduler_ticks_total{schedule, result}`: each tick of each schedule, and whether
/// this replica enqueued it (`enqueued`), another one did (`elsewhere`) or it failed.
pub fn ticks_metric() -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "scheduler_ticks_total",
            "Schedule ticks seen by this replica, by schedule and result \
             (enqueued, elsewhere, failed)",
        ),
        &["schedule", "result"],
    )
    .expect("valid metric")
}

/// Runs the schedules until `shutdown` resolves, counting ticks in `ticks`
/// ([`ticks_metric`]).
pub async fn run(
    config: Config,
    enq: Enqueuer,
    ticks: prometheus::IntCounterVec,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let schedules = schedules(&config)?;
    let holder = format!(
        "{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut conn = enq.connection();
    tokio::pin!(shutdown);
    tracing::info!(
        schedules = ?schedules.iter().map(|s| s.name).collect::<Vec<_>>(),
        "scheduler started"
    );
    let mut last = Utc::now();
    loop {
        let next = schedules
            .iter()
            .filter_map(|s| s.cron.after(&last).next())
            .min();
        let Some(next) = next else {
            anyhow::bail!("no schedule has a next tick");
        };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("scheduler stopped");
                return Ok(());
            }
            () = tokio::time::sleep(wait) => {}
        }
        for s in schedules
            .iter()
            .filter(|s| s.cron.after(&last).next() == Some(next))
        {
            let result = match fire(&mut conn, &enq, &holder, s, next).await {
                Ok(true) => {
                    tracing::debug!(schedule = s.name, at = %next, "tick enqueued");
                    "enqueued"
                }
                Ok(false) => {
                    tracing::debug!(schedule = s.name, at = %next, "tick fired elsewhere");
                    "elsewhere"
                }
                Err(e) => {
                    tracing::warn!(schedule = s.name, at = %next, error = %e, "tick failed");
                    "failed"
                }
            };
            ticks.with_label_values(&[s.name, result]).inc();
        }
        last = next;
    }
}
