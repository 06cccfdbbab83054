//! `watch-party`: one binary, every role. Ops pick the role per process:
//!
//! - `api`        HTTP API
//! - `realtime`   party sockets (`/ws/party/{id}/`); run as many nodes as needed
//! - `worker`     job workers for the queues given (`--queues email=4,system=2`)
//! - `scheduler`  cron ticks that enqueue periodic work (safe to run several)
//! - `migrate`    apply PostgreSQL and ClickHouse migrations
//! - `all`        migrate, then every role in one process (a single machine; the
//!   API and the sockets share BIND_ADDR)
//! - `set-role`   give an account a role (bootstraps the first admin)
//! - `search-reindex` rebuild the search index (`--index videos`) without downtime
//! - `health`     exit 0 when this process's `/health` answers 200 (container checks)

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use wp_shared::{Config, jobs::Enqueuer, ops};

/// jemalloc instead of the system allocator: glibc kept what a join storm's transient
/// work freed (92 KiB per socket after 1,000 joins at 50 at a time, against 27 KiB after
/// gentle joins); jemalloc with a background thread and a one-second decay
/// (`.cargo/config.toml`) gives it back (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "watch-party", version, about = "Watch Party backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on BIND_ADDR.
    Api,
    /// Serve the realtime party sockets on BIND_ADDR (one node; run several behind a
    /// load balancer, they share parties through Redis).
    Realtime,
    /// Run job workers.
    Worker {
        /// Queues and concurrency, e.g. `email=4,system=2` (a bare name means 1).
        #[arg(
            long,
            env = "WORKER_QUEUES",
            default_value = "email=4,notify=8,push=16,export=2,media=1,analytics=500,search=1,system=4"
        )]
        queues: String,
    },
    /// Run the scheduler.
    Scheduler,
    /// Apply PostgreSQL and ClickHouse migrations, then exit.
    Migrate,
    /// Migrate, then run the API, the workers of every queue and the scheduler in one
    /// process.
    All,
    /// Rebuild the search index from the source tables and swap it in (readers keep
    /// the old one until the new one is complete).
    SearchReindex {
        /// Only this index: videos, users, parties, events or groups (default: all).
        #[arg(long)]
        index: Option<String>,
    },
    /// Write a realistic analytics history straight into ClickHouse (development, the
    /// analytics benchmarks; docs/analytics.md): the last `days` days of `users`
    /// synthetic users watching the library's ready videos.
    SeedAnalytics {
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 1000)]
        users: u32,
        /// At most this many ready videos, the newest first (none: made-up ids).
        #[arg(long, default_value_t = 50)]
        videos: i64,
        /// The same seed writes the same history.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Exit 0 when the process configured by this environment answers `/health` with 200
    /// (on OPS_BIND_ADDR when set, else on BIND_ADDR), 1 otherwise: the container image's
    /// health check, which has no HTTP client of its own.
    Health,
    /// Give an existing account a role (bootstraps the first admin).
    SetRole {
        #[arg(long)]
        username: String,
        /// `user`, `moderator` or `admin`.
        #[arg(long)]
        role: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    wp_shared::telemetry::init(config.log_format);
    let shutdown = shutdown_signal();
    match cli.command {
        Command::Api => {
            require_shared_key(&config, "api");
            run_api(config, false, wait(shutdown)).await
        }
        Command::Realtime => {
            require_shared_key(&config, "realtime");
            run_realtime(config, shutdown).await
        }
        Command::Worker { queues } => {
            let pools = wp_workers::parse_pools(&queues)
                .map_err(|e| anyhow::anyhow!("--queues / WORKER_QUEUES: {e}"))?;
            let ops = config.ops_bind_addr;
            run_workers(config, pools, ops, shutdown).await
        }
        Command::Scheduler => {
            let ops = config.ops_bind_addr;
            run_scheduler(config, ops, shutdown).await
        }
        Command::Migrate => migrate(&config).await,
        Command::Health => {
            let addr = config.ops_bind_addr.unwrap_or(config.bind_addr);
            if let Err(e) = health(addr).await {
                eprintln!("unhealthy: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
        Command::SetRole { username, role } => set_role(&config, &username, &role).await,
        Command::SearchReindex { index } => search_reindex(&config, index.as_deref()).await,
        Command::SeedAnalytics {
            days,
            users,
            videos,
            seed,
        } => seed_analytics(&config, days, users, videos, seed).await,
        Command::All => {
            if config.jwt_key_ephemeral {
                tracing::warn!(
                    "JWT_SECRET is not set: tokens are signed with a key of this process only \
                     (fine for development; set it when any other process must accept them)"
                );
            }
            migrate(&config).await?;
            // A role that fails (say, the port is taken) stops the whole process
            // rather than leaving the others running without it. The API's own
            // /health, /ready and /metrics speak for the process.
            tokio::try_join!(
                run_api(config.clone(), true, wait(shutdown.clone())),
                run_workers(
                    config.clone(),
                    wp_workers::default_pools(),
                    None,
                    shutdown.clone()
                ),
                run_scheduler(config.clone(), None, shutdown),
            )
            .map(|_| ())
        }
    }
}

/// api and realtime processes verify each other's tokens: a key made up by one process
/// would make every other replica refuse its tokens. They do not start without
/// `JWT_SECRET` (exit 2, like any bad configuration); `all` runs without it.
fn require_shared_key(config: &Config, role: &str) {
    if config.jwt_key_ephemeral {
        eprintln!(
            "JWT_SECRET: required for the `{role}` role: every api and realtime process must \
             accept the tokens of the others, so set the same secret (32 characters or more) \
             on all of them. `watch-party all` runs without it, for development."
        );
        std::process::exit(2);
    }
}

/// Applies the PostgreSQL migrations (sqlx holds an advisory lock while it runs), then
/// the ClickHouse ones under a PostgreSQL advisory lock of ours, so concurrent
/// `migrate` runs are safe.
/// `GET /health` on `addr` (a wildcard address asks the loopback), within 3 s.
async fn health(addr: SocketAddr) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(head)
    };
    let head = tokio::time::timeout(std::time::Duration::from_secs(3), ask)
        .await
        .with_context(|| format!("{addr}: no answer within 3 s"))?
        .with_context(|| format!("{addr}"))?;
    anyhow::ensure!(
        &head[8..] == b" 200",
        "{addr}: {}",
        String::from_utf8_lossy(&head)
    );
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    wp_shared::db::migrate(config)
        .await
        .context("PostgreSQL migrations")?;
    let pool = wp_shared::db::session_pool(config)?;
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(727274)")
        .execute(&mut *conn)
        .await?;
    let res = wp_shared::clickhouse::migrate(config).await;
    sqlx::query("SELECT pg_advisory_unlock(727274)")
        .execute(&mut *conn)
        .await?;
    let applied = res.context("ClickHouse migrations")?;
    tracing::info!(clickhouse_applied = ?applied, "migrations done");
    Ok(())
}

async fn set_role(config: &Config, username: &str, role: &str) -> anyhow::Result<()> {
    if !["user", "moderator", "admin"].contains(&role) {
        anyhow::bail!("--role must be user, moderator or admin");
    }
    let pool = wp_shared::db::pool(config)?;
    let n = sqlx::query("UPDATE users SET role = $2 WHERE lower(username) = lower($1)")
        .bind(username)
        .bind(role)
        .execute(&pool)
        .await?
        .rows_affected();
    if n == 0 {
        anyhow::bail!("no account named `{username}`");
    }
    tracing::info!(username, role, "role set");
    Ok(())
}

#[allow(
    clippy::print_stdout,
    reason = "the command's result, on stdout for deploy/bench/analytics.sh"
)]
async fn seed_analytics(
    config: &Config,
    days: u32,
    users: u32,
    videos: i64,
    seed: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!(days > 0 && users > 0, "--days and --users must be above 0");
    wp_shared::clickhouse::migrate(config).await?;
    let pool = wp_shared::db::pool(config)?;
    let ch = wp_shared::clickhouse::client(config);
    let started = std::time::Instant::now();
    let total = wp_core::analytics::seed::write(&pool, &ch, days, users, videos, seed).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {total} events over {days} days for {users} users in {secs:.1} s ({:.0} events/s)",
        total as f64 / secs
    );
    Ok(())
}

async fn search_reindex(config: &Config, index: Option<&str>) -> anyhow::Result<()> {
    use wp_core::search::{SearchIndex, sync};
    let indexes: Vec<SearchIndex> = match index {
        None => SearchIndex::ALL.to_vec(),
        Some(name) => vec![name.parse().map_err(|_| {
            anyhow::anyhow!("--index must be one of videos, users, parties, events, groups")
        })?],
    };
    let pool = wp_shared::db::pool(config)?;
    for index in indexes {
        let started = std::time::Instant::now();
        let n = sync::rebuild(&pool, index).await?;
        tracing::info!(
            index = %index,
            documents = n,
            took_ms = started.elapsed().as_millis() as u64,
            "search index rebuilt"
        );
    }
    Ok(())
}

/// The API; with `sockets`, the realtime party sockets on the same listener.
async fn run_api(
    config: Config,
    sockets: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = config.bind_addr;
    let ops_addr = config.ops_bind_addr;
    let state = wp_api::AppState::from(wp_api::App::new(config).await?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("BIND_ADDR: cannot listen on {addr}"))?;
    // The bound address: with port 0 in BIND_ADDR the system picks one, and this line
    // is how a supervisor (or a test) learns it.
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, sockets, "API listening");
    // With `sockets`, one process: the sockets share the API's pools.
    let rt = if sockets {
        let ctx = wp_realtime::Ctx::with(
            state.config.clone(),
            state.db.clone(),
            state.redis.clone(),
            state.enqueuer.clone(),
        )
        .await?;
        let settings = wp_realtime::Settings::from_config(&state.config);
        Some(wp_realtime::Realtime::start(ctx, settings).await?)
    } else {
        None
    };
    let (stop_ops, ops_stopped) = watch::channel(false);
    if let Some(ops_addr) = ops_addr {
        let mut routes = wp_api::routes::system::ops_router(state.clone());
        if let Some(rt) = &rt {
            routes = routes.merge(wp_realtime::stats_router(rt.clone()));
        }
        ops::serve_router("api", routes, ops_addr, wait(ops_stopped)).await?;
    }
    let extra = rt.clone().map(wp_realtime::router).unwrap_or_default();
    wp_api::serve_with(state, extra, listener, {
        let rt = rt.clone();
        async move {
            shutdown.await;
            let _ = stop_ops.send(true);
            if let Some(rt) = rt {
                rt.shutdown();
            }
        }
    })
    .await?;
    // The sockets served beside the API are not the server's connections any more:
    // wait for their 1012 closes.
    if let Some(rt) = rt {
        rt.drain().await;
    }
    Ok(())
}

/// A realtime node: the party sockets, `/health` and `/ready`; the ops endpoints on
/// OPS_BIND_ADDR.
async fn run_realtime(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let addr = config.bind_addr;
    let ops_addr = config.ops_bind_addr;
    let settings = wp_realtime::Settings::from_config(&config);
    let ctx = wp_realtime::Ctx::new(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("BIND_ADDR: cannot listen on {addr}"))?;
    let rt = wp_realtime::Realtime::start(ctx, settings).await?;
    let probes = Arc::new(wp_realtime::ops(&rt));
    match ops_addr {
        // The node's counters (`/ws/stats/`) beside its probes and metrics.
        Some(ops_addr) => {
            let routes = probes
                .clone()
                .router()
                .merge(wp_realtime::stats_router(rt.clone()));
            ops::serve_router("realtime", routes, ops_addr, wait(shutdown.clone())).await?;
        }
        None => ops::serve(probes.clone(), None, wait(shutdown.clone())).await?,
    }
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, node = %rt.node, "realtime node listening");
    wp_realtime::serve(rt, probes, listener, wait(shutdown)).await?;
    Ok(())
}

async fn run_workers(
    config: Config,
    pools: Vec<wp_workers::Pool>,
    ops_addr: Option<SocketAddr>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let ctx = Arc::new(wp_workers::Ctx::new(config).await?);
    let queues: Vec<_> = pools.iter().map(|p| p.queue).collect();
    let probes = wp_workers::metrics::ops(&ctx, &queues);
    ops::serve(Arc::new(probes), ops_addr, wait(shutdown.clone())).await?;
    wp_workers::run(ctx, pools, wait(shutdown)).await
}

async fn run_scheduler(
    config: Config,
    ops_addr: Option<SocketAddr>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let redis = wp_shared::redis_conn::connect(&config)
        .await
        .context("cannot connect to Redis at REDIS_URL")?;
    let probes = ops::Ops::new("scheduler").check("redis", ops::redis(redis.clone()));
    let ticks = probes.register(wp_scheduler::ticks_metric());
    ops::serve(Arc::new(probes), ops_addr, wait(shutdown.clone())).await?;
    let enq = Enqueuer::new(redis, config.clone());
    wp_scheduler::run(config, enq, ticks, wait(shutdown)).await
}

/// Resolves on Ctrl-C or SIGTERM; clones of the receiver all see it.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = term => {},
        }
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    rx
}

async fn wait(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
