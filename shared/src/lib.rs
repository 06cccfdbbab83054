//! Common code of every Watch Party role: configuration, database and Redis access,
//! job payloads and queues, the transactional outbox, ClickHouse migrations.

pub mod backoff;
pub mod clickhouse;
pub mod config;
pub mod db;
pub mod email;
pub mod frame;
pub mod jobs;
pub mod links;
pub mod net;
pub mod ops;
pub mod outbox;
pub mod query;
pub mod redis_conn;
pub mod storage;
pub mod telemetry;
pub mod text;

pub use config::Config;

/// What every role connects to first: the PostgreSQL pool (lazy: connections open as
/// they are needed, so a database that is down at start-up does not stop the process)
/// and Redis (required at start-up).
pub async fn connect(
    config: &Config,
) -> anyhow::Result<(sqlx::PgPool, redis::aio::ConnectionManager)> {
    let db = db::pool(config)?;
    let redis = redis_conn::connect(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to Redis at REDIS_URL: {e}"))?;
    Ok((db, redis))
}
