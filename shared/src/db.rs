//! PostgreSQL: the pool, database creation and migrations.

use std::time::Duration;

use sqlx::{
    PgPool, Postgres,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::Config;

/// The PostgreSQL migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens the pool. Connections are made lazily, so a down database does not stop the
/// process from starting (`/ready` reports it instead), and one idle for a minute is
/// closed, so a burst does not keep its connections. Each connection names the
/// process in `pg_stat_activity.application_name`: `watch-party ROLE HOST PID`.
pub fn pool(config: &Config) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.database_url.parse()?;
    let role = role();
    let size = config
        .database_max_connections
        .unwrap_or_else(|| default_pool_size(&role));
    // A client that vanished mid-transaction (a partition, a killed process, a
    // blackholed connection) would otherwise keep its row locks until TCP gave up on
    // it, hours later: the server ends such a session after two idle minutes.
    let options = options
        .application_name(&application_name(&role))
        .options([("idle_in_transaction_session_timeout", "120s")]);
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .idle_timeout(Duration::from_secs(60))
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Connections per process when `DATABASE_MAX_CONNECTIONS` is unset, by role: the API
/// serves requests in parallel; a realtime node's database work is joins, chat and
/// renewals; a worker's is bounded by its pools' concurrency but mostly short; the
/// scheduler opens none. The documented layout (2 api, 2 realtime, 2 worker) asks for
/// 2 × 16 + 2 × 8 + 2 × 10 = 68 of PostgreSQL's default 100.
pub fn default_pool_size(role: &str) -> u32 {
    match role {
        "api" | "all" => 16,
        "realtime" => 8,
        "worker" => 10,
        "scheduler" | "migrate" | "set-role" => 2,
        _ => 10,
    }
}

/// The command the binary was started with (`api`, `worker`, ...), or `embedded`.
fn role() -> String {
    std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "embedded".to_owned())
}

/// `watch-party ROLE HOST PID` (role and host cut to 20 characters to stay within
/// PostgreSQL's 63 bytes).
fn application_name(role: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    // 12 + 20 + 1 + 20 + 1 + at most 7 digits of a pid: under 63.
    format!(
        "watch-party {} {} {}",
        cut(role, 20),
        cut(&host, 20),
        std::process::id()
    )
}

/// Whether `e` says the database cannot be reached (down, restarting, unreachable,
/// pool exhausted) rather than that a query was wrong: such errors are answered 503,
/// not 500. A server that closes a new connection mid-handshake shows up as a
/// protocol or TLS error.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
    )
}

/// A small pool of connections that keep a session of their own (session advisory
/// locks, `LISTEN`): to PostgreSQL itself (`DATABASE_DIRECT_URL`) when the main pool
/// goes through a pooler in transaction mode, which hands each transaction whatever
/// server connection is free. Connections are made lazily.
pub fn session_pool(config: &Config) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.database_session_url().parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .idle_timeout(Duration::from_secs(60))
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(
            options.application_name(&application_name(&format!("{} session", role()))),
        ))
}

/// Creates the database if it does not exist, then applies pending migrations, on
/// a direct connection (`DATABASE_DIRECT_URL`): the migrator holds a session
/// advisory lock, which a transaction-mode pooler would not keep.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.database_session_url();
    if !Postgres::database_exists(url).await? {
        tracing::info!("creating the PostgreSQL database");
        Postgres::create_database(url).await?;
    }
    let pool = PgPoolOptions::new().max_connections(2).connect(url).await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}
