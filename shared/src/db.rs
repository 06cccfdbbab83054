//! PostgreSQL: the pool, database creation and migrations.

use std::time::Duration;

use sqlx::{
    PgPool, Postgres,
    migrate::{MigrateDatabase, Migrator},
    postgres::PgPoolOptions,
};

use crate::config::Config;

/// The PostgreSQL migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens the pool. Connections are made lazily, so a down database does not stop the
/// process from starting (`/ready` reports it instead).
pub fn pool(config: &Config) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&config.database_url)
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
