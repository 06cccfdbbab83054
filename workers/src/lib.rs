//! Watch Party background workers: one apalis worker pool per queue, each with its
//! own concurrency, so ops can run (and scale) pools as separate processes.

pub mod accounts;
pub mod analytics;
pub mod digest;
pub mod email;
pub mod mailer;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod push;
pub mod retry;
pub mod search;
pub mod system;
pub mod table_export;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use apalis::prelude::{
    Attempt, BackendFactory, Data, IntervalStrategy, Monitor, ParallelizeExt, PollWith, TaskId,
    WorkerBuilder, WorkerBuilderExt,
};
use apalis_redis::factory::RedisStorageFactory;
use sqlx::PgPool;
use tokio::sync::watch;
use wp_shared::{
    Config,
    backoff::{Backoff, Outage},
    jobs::{
        AnalyticsJob, Enqueuer, ExportJob, NotifyEvent, PrepareMedia, Queue, SearchJob, SendEmail,
        SendPush, SystemJob, promote_due, queue_config,
    },
};

use crate::mailer::Mailer;

/// What every job handler can reach.
pub struct Ctx {
    pub config: Config,
    pub db: PgPool,
    pub enqueuer: Enqueuer,
    pub mailer: Mailer,
    pub analytics: analytics::Batcher,
    pub storage: wp_shared::storage::Storage,
    /// FCM and APNs, as configured.
    pub push: push::Providers,
    /// The queue connection, for the probes.
    pub status: Arc<Status>,
    pub metrics: metrics::JobMetrics,
    /// The jobs running in this process now.
    pub running: Running,
}

impl Ctx {
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let (db, redis) = wp_shared::connect(&config).await?;
        let mailer = Mailer::from_config(&config)?;
        let analytics = analytics::Batcher::start_with(
            wp_shared::clickhouse::client(&config),
            config.clickhouse_timeout,
            Some(db.clone()),
        );
        Ok(Self {
            push: push::Providers::from_config(&config)?,
            storage: wp_shared::storage::Storage::from_config(&config)?,
            analytics,
            enqueuer: Enqueuer::new(redis, config.clone()),
            config,
            db,
            mailer,
            status: Arc::default(),
            metrics: metrics::JobMetrics::new(),
            running: Running::default(),
        })
    }
}

/// The one table of handled queues: each queue, its job type and its handler. The
/// list of handled queues and the worker registration are both made from it, and every
/// handler runs under the same give-up rule ([`retry`]).
macro_rules! handled_queues {
    ($($queue:ident: $job:ty => $handler:path),+ $(,)?) => {
        /// Queues that have job handlers in this release.
        pub const HANDLED: &[Queue] = &[$(Queue::$queue),+];

        /// Registers `pool`'s worker on the monitor.
        fn register(
            monitor: Monitor,
            pool: Pool,
            factory: &RedisStorageFactory,
            ctx: &Arc<Ctx>,
        ) -> anyhow::Result<Monitor> {
            let qc = queue_config(&ctx.config, pool.queue);
            let factory = factory.clone();
            let c = ctx.clone();
            Ok(match pool.queue {
                $(Queue::$queue => monitor.register(move |_| {
                    WorkerBuilder::new(worker_name(Queue::$queue))
                        .backend(backend::<$job>(&factory, &qc))
                        .data(c.clone())
                        .concurrency(pool.concurrency)
                        .parallelize(tokio::spawn)
                        .build(|job: $job, ctx: Data<Arc<Ctx>>, attempt: Attempt, id: TaskId| async move {
                            let started = Instant::now();
                            let c: Arc<Ctx> = (*ctx).clone();
                            let key = wp_shared::jobs::Job::dedupe_key(&job);
                            c.metrics.started(Queue::$queue);
                            let _running = c.running.start(Queue::$queue, &id);
                            count_delivery(&c, Queue::$queue, &id, &attempt).await;
                            let limit = attempt_timeout(Queue::$queue);
                            let result = match tokio::time::timeout(
                                limit,
                                $handler(job, ctx, attempt.clone()),
                            )
                            .await
                            {
                                Ok(r) => r,
                                Err(_) => {
                                    tracing::warn!(
                                        queue = %Queue::$queue,
                                        job_id = %id,
                                        limit_s = limit.as_secs(),
                                        "job attempt timed out; cancelled, will retry"
                                    );
                                    Err(format!(
                                        "attempt timed out after {} s",
                                        limit.as_secs()
                                    )
                                    .into())
                                }
                            };
                            let result = retry::park_when_spent(
                                &c.config,
                                &attempt,
                                Queue::$queue.name(),
                                result,
                            );
                            c.metrics.finished(Queue::$queue, started, &result);
                            count_finished(&c, Queue::$queue, &result).await;
                            finished_outbox_row(&c, key, &result).await;
                            if let Err(e) = &result
                                && retry::is_outage(e)
                            {
                                tokio::time::sleep(retry::outage_pause(&attempt)).await;
                            }
                            result
                        })
                }),)+
            })
        }
    };
}

handled_queues! {
    Email: SendEmail => email::send_email,
    Push: SendPush => push::send_push,
    Notify: NotifyEvent => notify::fan_out,
    Export: ExportJob => handle_export,
    Media: PrepareMedia => media::prepare,
    Analytics: AnalyticsJob => analytics::record,
    Search: SearchJob => search::handle_search,
    System: SystemJob => system::handle_system,
}

/// The `export` queue: an account's own data, or a staff CSV export.
async fn handle_export(
    job: ExportJob,
    ctx: Data<Arc<Ctx>>,
    attempt: Attempt,
) -> Result<(), apalis::prelude::BoxDynError> {
    match job {
        ExportJob::Account(j) => accounts::export_account(j, ctx, attempt).await,
        ExportJob::Table(j) => table_export::make(j, &ctx, &attempt).await,
    }
}

/// One pool: a queue and how many of its jobs may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub queue: Queue,
    pub concurrency: usize,
}

/// Parses `email=4,system=2` (a queue without `=n` gets concurrency 1).
pub fn parse_pools(spec: &str) -> Result<Vec<Pool>, String> {
    let mut pools: Vec<Pool> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, n) = match part.split_once('=') {
            Some((name, n)) => (
                name.trim(),
                n.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`{part}`: concurrency must be a positive integer"))?,
            ),
            None => (part, 1),
        };
        let queue: Queue = name.parse()?;
        if !HANDLED.contains(&queue) {
            return Err(format!(
                "queue `{queue}` has no job handlers in this release (handled: {})",
                HANDLED
                    .iter()
                    .map(|q| q.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if pools.iter().any(|p| p.queue == queue) {
            return Err(format!("queue `{queue}` is listed twice"));
        }
        pools.push(Pool {
            queue,
            concurrency: n,
        });
    }
    if pools.is_empty() {
        return Err("no queue given".to_owned());
    }
    Ok(pools)
}

/// The default pools of the all-in-one process.
pub fn default_pools() -> Vec<Pool> {
    vec![
        Pool {
            queue: Queue::Email,
            concurrency: 4,
        },
        Pool {
            queue: Queue::Notify,
            concurrency: 8,
        },
        Pool {
            queue: Queue::Push,
            concurrency: 16,
        },
        Pool {
            queue: Queue::Export,
            concurrency: 2,
        },
        Pool {
            queue: Queue::Media,
            concurrency: 1,
        },
        Pool {
            queue: Queue::Analytics,
            concurrency: 500,
        },
        Pool {
            queue: Queue::Search,
            concurrency: 1,
        },
        Pool {
            queue: Queue::System,
            concurrency: 4,
        },
    ]
}

/// The jobs running in this process, by id: what a stop abandons is logged by id.
#[derive(Debug, Default)]
pub struct Running(std::sync::Mutex<std::collections::HashMap<String, (Queue, Instant)>>);

/// Removes its job from [`Running`] when the attempt ends (or is dropped).
pub struct RunningGuard<'a> {
    running: &'a Running,
    id: String,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.running.lock().remove(&self.id);
    }
}

impl Running {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Queue, Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start(&self, queue: Queue, id: &TaskId) -> RunningGuard<'_> {
        let id = id.to_string();
        self.lock().insert(id.clone(), (queue, Instant::now()));
        RunningGuard { running: self, id }
    }

    /// The running jobs: (queue, id, running for).
    pub fn snapshot(&self) -> Vec<(Queue, String, Duration)> {
        let mut jobs: Vec<_> = self
            .lock()
            .iter()
            .map(|(id, (q, since))| (*q, id.clone(), since.elapsed()))
            .collect();
        jobs.sort();
        jobs
    }

    /// Logs the jobs still running when the pools stopped: their results cannot be
    /// recorded, and each comes back to a live worker once this one's heartbeat lapses.
    fn log_abandoned(&self, why: &str) {
        let jobs = self.snapshot();
        if jobs.is_empty() {
            return;
        }
        let ids: Vec<String> = jobs.iter().map(|(q, id, _)| format!("{q}:{id}")).collect();
        tracing::warn!(
            count = jobs.len(),
            jobs = ?ids,
            why,
            "jobs still running when the workers stopped; each will be delivered again"
        );
    }
}

/// Counts the attempt in the shared per-minute throughput counters. Best effort: a
/// lost count only makes the admin panel's throughput a little low.
async fn count_finished(
    ctx: &Ctx,
    queue: Queue,
    result: &Result<(), apalis::prelude::BoxDynError>,
) {
    let outcome = metrics::outcome(result);
    let mut conn = ctx.enqueuer.connection();
    if let Err(e) =
        wp_shared::jobs::count_finished(&mut conn, &ctx.config.redis_prefix, queue, outcome).await
    {
        tracing::debug!(error = %e, "cannot count the finished job");
    }
}

/// A job that finished (done, or given up) no longer needs its outbox row, kept until
/// now in case Redis lost the job (`wp_shared::outbox`); the row goes whether its relay
/// marked it pushed or died before it could. Best effort: a row left behind (PostgreSQL
/// refused the delete) is pushed again by the sweep, a no-op while Redis keeps the
/// job's dedupe key (24 h) and then a run whose handler finds the work done.
async fn finished_outbox_row(
    ctx: &Ctx,
    key: Option<String>,
    result: &Result<(), apalis::prelude::BoxDynError>,
) {
    let finished = match result {
        Ok(()) => true,
        Err(e) => e.is::<apalis::prelude::AbortError>(),
    };
    if let (true, Some(key)) = (finished, key)
        && let Err(e) = wp_shared::outbox::done(&ctx.db, &[key]).await
    {
        tracing::debug!(error = %e, "cannot mark the outbox row done; it will be pushed again");
    }
}

/// Counts this start in the job's record. A job that started more often than its
/// attempts were recorded was delivered again: an earlier run never reported (its
/// worker was killed, stopped or lost Redis). Logged with the id, and counted.
async fn count_delivery(ctx: &Ctx, queue: Queue, id: &TaskId, attempt: &Attempt) {
    let key = format!("{}:{id}", queue_config(&ctx.config, queue).job_meta_hash());
    let mut conn = ctx.enqueuer.connection();
    let starts = redis::cmd("HINCRBY")
        .arg(&key)
        .arg("wp_starts")
        .arg(1)
        .query_async::<i64>(&mut conn)
        .await;
    match starts {
        Ok(n) if n > i64::try_from(attempt.current()).unwrap_or(i64::MAX) => {
            ctx.metrics.redelivered(queue);
            tracing::warn!(
                queue = %queue,
                job_id = %id,
                attempt = attempt.current(),
                starts = n,
                "job delivered again: an earlier run never reported"
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(queue = %queue, job_id = %id, error = %e, "cannot count the start")
        }
    }
}

/// How long one attempt may run before it is cancelled (its transaction rolled back)
/// and retried: a handler stuck on a dependency that stopped answering must not hold
/// its row locks and its slot forever. Media preparation and exports read and write
/// whole files; the rest are short.
pub fn attempt_timeout(queue: Queue) -> Duration {
    match queue {
        Queue::Media => Duration::from_secs(3600),
        Queue::Export => Duration::from_secs(1800),
        _ => Duration::from_secs(300),
    }
}

/// A worker name unique to this process and start: a restart never collides with the
/// registration its previous life left in Redis.
fn worker_name(queue: Queue) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{queue}-{}", std::process::id(), &nonce[..8])
}

/// How often an idle worker looks for due retries and delayed jobs.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

type Backend<T> = PollWith<<RedisStorageFactory as BackendFactory<T>>::Backend, IntervalStrategy>;

fn backend<T>(factory: &RedisStorageFactory, qc: &apalis_redis::Config) -> Backend<T> {
    let mut factory = factory.clone();
    // Creating a backend only registers its queue name in a map.
    let inner = BackendFactory::<T>::create_with_config(&mut factory, qc.clone())
        .expect("creating a backend from the factory does not fail");
    PollWith::new(inner, IntervalStrategy::new(POLL_INTERVAL))
}

/// How often due retries and delayed jobs are moved to their active list.
const PROMOTE_INTERVAL: Duration = Duration::from_millis(200);

/// Keeps `queue`'s due scheduled jobs flowing to its active list in bounded chunks
/// (see `promote_due`), so apalis' own promotion never meets a backlog it cannot
/// handle, and retries start as soon as their backoff ends.
async fn promote_loop(ctx: Arc<Ctx>, queue: Queue, mut stop: watch::Receiver<bool>) {
    let mut conn = ctx.enqueuer.connection();
    let mut tick = tokio::time::interval(PROMOTE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The connection manager reconnects by itself; this only keeps an outage to a few
    // log lines.
    let mut outage = Outage::new("redis (job promotion)", OUTAGE_LOG_EVERY);
    loop {
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            _ = tick.tick() => {}
        }
        match promote_due(&mut conn, &ctx.config, queue).await {
            Ok(_) => outage.recovered(),
            Err(e) => outage.failed(&e, PROMOTE_INTERVAL),
        }
    }
}

/// While a dependency is down, how often the reconnect attempts are logged.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);
/// The first reconnect waits about this long; each failure doubles it up to the cap.
const RECONNECT_BASE: Duration = Duration::from_millis(250);
const RECONNECT_CAP: Duration = Duration::from_secs(5);
/// A generation that ran this long resets the backoff: the next drop is a new outage.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// How long running jobs may finish when the queue connection dropped (their
/// acknowledgements cannot reach Redis anyway; the jobs come back to whichever
/// worker holds the queue once this one's heartbeat lapses).
const RECONNECT_GRACE: Duration = Duration::from_secs(2);

/// The queue connection as the probes see it.
#[derive(Debug, Default)]
pub struct Status {
    connected: AtomicBool,
    generations: AtomicU64,
}

impl Status {
    /// Whether the pools hold a live queue connection.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// How many times the pools were (re)started on a fresh connection.
    pub fn generations(&self) -> u64 {
        self.generations.load(Ordering::Relaxed)
    }
}

/// Opens the connection the pools share: pub/sub wake-ups and every queue command.
/// Pub/sub on a multiplexed connection needs RESP3 (Redis 6 or later).
async fn subscribe(config: &Config) -> anyhow::Result<RedisStorageFactory> {
    let info = redis::IntoConnectionInfo::into_connection_info(config.redis_url.as_str())?;
    let resp3 = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(resp3))?;
    tokio::time::timeout(Duration::from_secs(10), RedisStorageFactory::new(client))
        .await
        .map_err(|_| anyhow::anyhow!("Redis at REDIS_URL did not answer the subscription"))?
        .map_err(|e| anyhow::anyhow!("cannot subscribe to Redis at REDIS_URL: {e}"))
}

/// How one generation of the pools ended.
enum Ended {
    /// Shutdown was asked for; running jobs had their grace period.
    Shutdown,
    /// A worker stopped on an error (the queue connection dropped).
    Failed(String),
}

/// Runs every pool on one connection until shutdown or until any worker fails. A failed
/// worker ends the whole generation: the pools share the connection, and apalis'
/// own restart would reuse it dead (and spin).
async fn run_generation(
    ctx: &Arc<Ctx>,
    pools: &[Pool],
    factory: RedisStorageFactory,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Ended> {
    let (failed_tx, failed_rx) = watch::channel(None::<String>);
    let grace = Arc::new(AtomicBool::new(false));
    let reconnecting = grace.clone();
    let shutdown_grace = ctx.config.worker_shutdown_grace;
    let mut monitor = Monitor::new()
        .with_terminator(async move {
            let secs = if reconnecting.load(Ordering::Relaxed) {
                RECONNECT_GRACE
            } else {
                shutdown_grace
            };
            tokio::time::sleep(secs).await;
        })
        .should_restart(move |w, e| {
            tracing::debug!(worker = w.name(), error = %e, "worker stopped on an error");
            failed_tx.send_if_modified(|first| {
                first
                    .is_none()
                    .then(|| *first = Some(e.to_string()))
                    .is_some()
            });
            false
        });
    for pool in pools {
        monitor = register(monitor, *pool, &factory, ctx)?;
    }
    let mut stop_signal = stop.clone();
    let mut failed = failed_rx.clone();
    monitor
        .run_with_signal(async move {
            tokio::select! {
                _ = stop_signal.wait_for(|v| *v) => {
                    tracing::info!("workers shutting down; waiting for running jobs");
                }
                _ = failed.wait_for(Option::is_some) => {
                    grace.store(true, Ordering::Relaxed);
                }
            }
            Ok(())
        })
        .await?;
    if *stop.borrow() {
        ctx.running
            .log_abandoned("shutdown: the grace period ended");
        return Ok(Ended::Shutdown);
    }
    ctx.running
        .log_abandoned("the queue connection dropped; the pools restart");
    let why = failed_rx.borrow().clone();
    Ok(Ended::Failed(why.unwrap_or_else(|| {
        "the workers stopped without an error".to_owned()
    })))
}

/// Runs the pools until `shutdown` resolves, then lets running jobs finish (up to
/// `WORKER_SHUTDOWN_GRACE_SECS`, 30 s by default).
///
/// The pools share one Redis connection. When it drops, every pool stops, and the
/// pools come back on a new connection after a capped, jittered backoff, under new
/// worker names (the jobs the old ones held are delivered again once their heartbeat
/// lapses). Shutdown is honoured at any point, backoff included.
pub async fn run(
    ctx: Arc<Ctx>,
    pools: Vec<Pool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let forward = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    for pool in &pools {
        tracing::info!(queue = %pool.queue, concurrency = pool.concurrency, "starting worker pool");
    }
    let promoters: Vec<_> = pools
        .iter()
        .map(|p| tokio::spawn(promote_loop(ctx.clone(), p.queue, stop.clone())))
        .collect();
    let listener = pools
        .iter()
        .any(|p| p.queue == Queue::Search)
        .then(|| tokio::spawn(search::listen(ctx.clone(), stop.clone())));
    let res = supervise(&ctx, &pools, stop.clone()).await;
    if let Some(l) = listener {
        l.abort();
        let _ = l.await;
    }
    ctx.status.connected.store(false, Ordering::Relaxed);
    forward.abort();
    for p in promoters {
        p.abort();
        let _ = p.await;
    }
    res
}

async fn supervise(
    ctx: &Arc<Ctx>,
    pools: &[Pool],
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // A process that cannot reach Redis at all when it starts fails fast (its
    // configuration is likely wrong); one that lost it later keeps trying.
    let mut factory = Some(subscribe(&ctx.config).await?);
    let mut backoff = Backoff::new(RECONNECT_BASE, RECONNECT_CAP);
    let mut outage = Outage::new("redis (job queues)", OUTAGE_LOG_EVERY);
    loop {
        let conn = match factory.take() {
            Some(f) => f,
            None => {
                let attempt = tokio::select! {
                    _ = stop.wait_for(|v| *v) => return Ok(()),
                    r = subscribe(&ctx.config) => r,
                };
                match attempt {
                    Ok(f) => f,
                    Err(e) => {
                        let delay = backoff.next_delay();
                        outage.failed(&e, delay);
                        tokio::select! {
                            _ = stop.wait_for(|v| *v) => return Ok(()),
                            _ = tokio::time::sleep(delay) => continue,
                        }
                    }
                }
            }
        };
        outage.recovered();
        ctx.status.connected.store(true, Ordering::Relaxed);
        ctx.status.generations.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let ended = run_generation(ctx, pools, conn, &stop).await?;
        ctx.status.connected.store(false, Ordering::Relaxed);
        match ended {
            Ended::Shutdown => return Ok(()),
            Ended::Failed(e) => {
                if started.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                outage.failed(&e, delay);
                tokio::select! {
                    _ = stop.wait_for(|v| *v) => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse() {
        assert_eq!(
            parse_pools("email=4, system").unwrap(),
            vec![
                Pool {
                    queue: Queue::Email,
                    concurrency: 4
                },
                Pool {
                    queue: Queue::System,
                    concurrency: 1
                }
            ]
        );
        assert!(parse_pools("email=0").is_err());
        assert!(
            parse_pools("bogus=1")
                .unwrap_err()
                .contains("unknown queue")
        );
        assert!(parse_pools("email,email").is_err());
        assert!(parse_pools("").is_err());
    }
}
