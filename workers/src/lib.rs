//! Watch Party background workers: one apalis worker pool per queue, each with its
//! own concurrency, so ops can run (and scale) pools as separate processes.

pub mod accounts;
pub mod analytics;
pub mod digest;
pub mod email;
pub mod mailer;
pub mod media;
pub mod notify;
pub mod push;
pub mod retry;
pub mod system;

use std::{sync::Arc, time::Duration};

use apalis::prelude::{
    Attempt, BackendFactory, Data, IntervalStrategy, Monitor, ParallelizeExt, PollWith,
    WorkerBuilder, WorkerBuilderExt,
};
use apalis_redis::factory::RedisStorageFactory;
use sqlx::PgPool;
use wp_shared::{
    Config,
    jobs::{
        AnalyticsEvent, Enqueuer, ExportAccount, NotifyEvent, PrepareMedia, Queue, SendEmail,
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
}

impl Ctx {
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let (db, redis) = wp_shared::connect(&config).await?;
        let mailer = Mailer::from_config(&config)?;
        let analytics = analytics::Batcher::start(wp_shared::clickhouse::client(&config));
        Ok(Self {
            push: push::Providers::from_config(&config)?,
            storage: wp_shared::storage::Storage::from_config(&config)?,
            analytics,
            enqueuer: Enqueuer::new(redis, config.clone()),
            config,
            db,
            mailer,
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
                        .build(|job: $job, ctx: Data<Arc<Ctx>>, attempt: Attempt| async move {
                            let config = ctx.config.clone();
                            let result = $handler(job, ctx, attempt.clone()).await;
                            retry::park_when_spent(&config, &attempt, Queue::$queue.name(), result)
                        })
                }),)+
                other => anyhow::bail!("queue `{other}` has no job handlers in this release"),
            })
        }
    };
}

handled_queues! {
    Email: SendEmail => email::send_email,
    Push: SendPush => push::send_push,
    Notify: NotifyEvent => notify::fan_out,
    Export: ExportAccount => accounts::export_account,
    Media: PrepareMedia => media::prepare,
    Analytics: AnalyticsEvent => analytics::record,
    System: SystemJob => system::handle_system,
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
            queue: Queue::System,
            concurrency: 4,
        },
    ]
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
async fn promote_loop(ctx: Arc<Ctx>, queue: Queue, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut conn = ctx.enqueuer.connection();
    let mut tick = tokio::time::interval(PROMOTE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = promote_due(&mut conn, &ctx.config, queue).await {
            tracing::warn!(queue = %queue, error = %e, "cannot promote due jobs");
        }
    }
}

/// Runs the pools until `shutdown` resolves, then lets running jobs finish (up to 30 s).
pub async fn run(
    ctx: Arc<Ctx>,
    pools: Vec<Pool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut monitor = Monitor::new()
        .shutdown_timeout(Duration::from_secs(30))
        // A worker whose backend call failed (Redis restarting, say) comes back under a
        // new name instead of leaving its queue unserved.
        .should_restart(|w, e| {
            tracing::warn!(worker = w.name(), error = %e, "worker stopped on an error; restarting");
            true
        });
    // One pub/sub connection wakes every pool of this process as soon as a job is
    // pushed; the interval poll promotes retries and delayed jobs when they fall due.
    // Pub/sub on a multiplexed connection needs RESP3 (Redis 6 or later).
    let info = redis::IntoConnectionInfo::into_connection_info(ctx.config.redis_url.as_str())?;
    let resp3 = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(resp3))?;
    let factory = tokio::time::timeout(Duration::from_secs(10), RedisStorageFactory::new(client))
        .await
        .map_err(|_| anyhow::anyhow!("Redis at REDIS_URL did not answer the subscription"))?
        .map_err(|e| anyhow::anyhow!("cannot subscribe to Redis at REDIS_URL: {e}"))?;
    let queues: Vec<Queue> = pools.iter().map(|p| p.queue).collect();
    for pool in pools {
        tracing::info!(queue = %pool.queue, concurrency = pool.concurrency, "starting worker pool");
        monitor = register(monitor, pool, &factory, &ctx)?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let promoters: Vec<_> = queues
        .into_iter()
        .map(|q| tokio::spawn(promote_loop(ctx.clone(), q, stop_rx.clone())))
        .collect();
    let res = monitor
        .run_with_signal(async move {
            shutdown.await;
            tracing::info!("workers shutting down; waiting for running jobs");
            Ok(())
        })
        .await;
    let _ = stop_tx.send(true);
    for p in promoters {
        let _ = p.await;
    }
    res?;
    Ok(())
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
