//! Application state shared by every handler (`AppState(Arc<App>)`).

use std::{ops::Deref, sync::Arc};

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use wp_shared::{Config, jobs::Enqueuer};

use crate::metrics::Metrics;

/// Everything a handler may need. Built once per process.
pub struct App {
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub clickhouse: clickhouse::Client,
    pub enqueuer: Enqueuer,
    pub metrics: Metrics,
    pub storage: wp_shared::storage::Storage,
    /// Rendered comment pages (crate::page_cache).
    pub comment_pages: crate::page_cache::PageCache,
}

impl App {
    /// Connects to Redis (required at start-up) and prepares the lazy database pool and
    /// the ClickHouse client.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let (db, redis) = wp_shared::connect(&config).await?;
        let clickhouse = wp_shared::clickhouse::client(&config);
        let enqueuer = Enqueuer::new(redis.clone(), config.clone());
        let storage = wp_shared::storage::Storage::from_config(&config)?;
        Ok(Self {
            comment_pages: Default::default(),
            storage,
            metrics: Metrics::new(),
            config,
            db,
            redis,
            clickhouse,
            enqueuer,
        })
    }
}

impl App {
    /// Pushes the outbox rows a handler's transaction just committed
    /// (`wp_shared::outbox::relay`).
    pub async fn relay(&self, ids: &[i64]) {
        wp_shared::outbox::relay(&self.db, &self.enqueuer, ids).await;
    }

    /// Tells the realtime nodes that `user`'s sessions changed (after the change is
    /// committed): sockets whose session no longer authenticates close at once.
    pub async fn sessions_changed(&self, user: uuid::Uuid) {
        let mut redis = self.redis.clone();
        if let Err(e) =
            wp_core::notify::sessions_changed(&mut redis, &self.config.redis_prefix, user).await
        {
            tracing::warn!(error = %e, %user, "sockets could not be told of a session change");
        }
    }
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl wp_shared::ops::OpsToken for AppState {
    fn ops_token(&self) -> Option<&str> {
        self.config.ops_token.as_deref()
    }
}

impl From<App> for AppState {
    fn from(app: App) -> Self {
        Self(Arc::new(app))
    }
}
