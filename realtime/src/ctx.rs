//! What a realtime node needs from the outside: configuration, the database, Redis and
//! the job queues (reaction analytics). Nothing of the HTTP API.

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use wp_shared::{Config, jobs::Enqueuer};

#[derive(Clone)]
pub struct Ctx {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub enqueuer: Enqueuer,
}

impl Ctx {
    /// Connects to Redis (required at start-up) and prepares the lazy database pool.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let (db, redis) = wp_shared::connect(&config).await?;
        let enqueuer = Enqueuer::new(redis.clone(), config.clone());
        Ok(Self {
            config,
            db,
            redis,
            enqueuer,
        })
    }
}
