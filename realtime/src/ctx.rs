//! What a realtime node needs from the outside: configuration, the database, Redis and
//! the job queues (reaction analytics), ClickHouse (the staff sockets' live figures). Nothing of the HTTP API.

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use wp_shared::{Config, jobs::Enqueuer};

#[derive(Clone)]
pub struct Ctx {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    /// A second Redis connection for the playback hot path (the compare-and-set of a
    /// control and the node's publishing task). One multiplexed connection answers in
    /// order: during a join storm, the joins' presence reads (a 1,000-entry hash each)
    /// queued ahead of every control and held it up for a second or more.
    pub live: ConnectionManager,
    pub enqueuer: Enqueuer,
    /// The live figures of the staff sockets ([`crate::staff`]).
    pub clickhouse: clickhouse::Client,
}

impl Ctx {
    /// Connects to Redis (required at start-up) and prepares the lazy database pool.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let (db, redis) = wp_shared::connect(&config).await?;
        let enqueuer = Enqueuer::new(redis.clone(), config.clone());
        Self::with(config, db, redis, enqueuer).await
    }

    /// A context on pools the process already has (the all-in-one process shares the
    /// API's); opens only the second Redis connection (`live`).
    pub async fn with(
        config: Config,
        db: PgPool,
        redis: ConnectionManager,
        enqueuer: Enqueuer,
    ) -> anyhow::Result<Self> {
        let live = wp_shared::redis_conn::connect(&config)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis at REDIS_URL: {e}"))?;
        Ok(Self {
            clickhouse: wp_shared::clickhouse::client(&config),
            config,
            db,
            redis,
            live,
            enqueuer,
        })
    }
}
