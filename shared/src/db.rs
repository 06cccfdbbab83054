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
/// process from starting (`/ready` reports it instead). Each connection names the
/// process in `pg_stat_activity.application_name`: `watch-party ROLE HOST PID`.
pub fn pool(config: &Config) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.database_url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.application_name(&application_name())))
}

/// `watch-party ROLE HOST PID` (the role is the command the binary was started with;
/// role and host cut to 20 characters to stay within PostgreSQL's 63 bytes).
fn application_name() -> String {
    let role = std::env::args()
        .nth(1)
        .filter(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "embedded".to_owned());
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    // 12 + 20 + 1 + 20 + 1 + at most 7 digits of a pid: under 63.
    format!(
        "watch-party {} {} {}",
        cut(&role, 20),
        cut(&host, 20),
        std::process::id()
    )
}

/// Creates the database if it does not exist, then applies pending migrations.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    if !Postgres::database_exists(&config.database_url).await? {
        tracing::info!("creating the PostgreSQL database");
        Postgres::create_database(&config.database_url).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&config.database_url)
        .await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}
