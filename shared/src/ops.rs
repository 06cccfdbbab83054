//! The ops endpoints of every role: `/health` (the process answers), `/ready` (its own
//! dependencies answer: an orchestrator stops routing to it, or restarts it) and
//! `/metrics` (Prometheus text). Every role serves them on `OPS_BIND_ADDR`. A public
//! port (the API's, a realtime node's) answers `/health` and a bare `/ready` to anyone;
//! the details (each check's latency and error, `/metrics`, `/ws/stats/`) only on the
//! ops address or to a caller with `Authorization: Bearer <OPS_TOKEN>`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Extension, Json, Router,
    extract::{FromRequestParts, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::future::BoxFuture;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder, core::Collector};
use serde::Serialize;

/// How long one dependency may take to answer a readiness check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of one dependency.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub ok: bool,
    pub latency_ms: f64,
    /// Why it failed (no secrets: connection errors are summarised).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs one check under [`CHECK_TIMEOUT`] and times it.
pub async fn timed<F, E>(fut: F) -> Check
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let res = tokio::time::timeout(CHECK_TIMEOUT, fut).await;
    let latency_ms = (start.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let error = match res {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    Check {
        ok: error.is_none(),
        latency_ms,
        error,
    }
}

/// A named readiness check.
pub type CheckFn = Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// PostgreSQL answers `SELECT 1`.
pub fn postgres(db: sqlx::PgPool) -> CheckFn {
    Box::new(move || {
        let db = db.clone();
        Box::pin(async move {
            sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&db)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
}

/// Redis answers `PING`.
pub fn redis(conn: redis::aio::ConnectionManager) -> CheckFn {
    Box::new(move || {
        let mut conn = conn.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    })
}

/// The mail server answers: for `smtp://`, a TCP connection gets the `220` greeting
/// (then `QUIT`); for `smtps://`, the TCP connection is made (the greeting is inside
/// TLS). For the file transport, the directory exists.
pub async fn smtp(email: &crate::config::EmailTransport) -> Result<(), String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let url = match email {
        crate::config::EmailTransport::File(dir) => {
            return match tokio::fs::metadata(dir).await {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(format!("the mail directory {} is missing", dir.display())),
            };
        }
        crate::config::EmailTransport::Smtp(url) => url,
    };
    let url = url::Url::parse(url).map_err(|e| e.to_string())?;
    let tls = url.scheme() == "smtps";
    let host = url.host_str().ok_or("SMTP_URL has no host")?.to_owned();
    let port = url.port().unwrap_or(if tls { 465 } else { 587 });
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    if tls {
        return Ok(());
    }
    let mut stream = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    if !line.starts_with("220") {
        return Err(format!("unexpected greeting: {}", line.trim()));
    }
    let _ = stream.get_mut().write_all(b"QUIT\r\n").await;
    Ok(())
}

/// Object storage takes, reads back and removes a small object under `health/`.
pub async fn storage(storage: &crate::storage::Storage, name: &str) -> Result<(), String> {
    let key = format!("health/{name}");
    let body = b"ok".to_vec();
    storage
        .put(&key, body.clone())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let back = storage.read(&key).await.map_err(|e| format!("read: {e}"))?;
    storage
        .delete(&key)
        .await
        .map_err(|e| format!("delete: {e}"))?;
    if back != body {
        return Err("read back other bytes than were written".into());
    }
    Ok(())
}

/// A connection the process keeps itself (a subscription, a queue connection): ready
/// while `up` says so.
pub fn flag(what: &'static str, up: impl Fn() -> bool + Send + Sync + 'static) -> CheckFn {
    Box::new(move || {
        let ok = up();
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err(format!("{what} is down; reconnecting"))
            }
        })
    })
}

/// Marks the requests that came in on the ops address (a private network).
#[derive(Debug, Clone, Copy)]
pub struct OpsListener;

/// State that knows the ops token (`OPS_TOKEN`), for [`Privileged`].
pub trait OpsToken {
    fn ops_token(&self) -> Option<&str>;
}

/// Whether the caller may see the ops details: the request came in on the ops address,
/// or it carries `Authorization: Bearer <OPS_TOKEN>` (compared in constant time).
#[derive(Debug, Clone, Copy)]
pub struct Privileged(pub bool);

impl<S: OpsToken + Send + Sync> FromRequestParts<S> for Privileged {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(privileged(parts, state.ops_token())))
    }
}

fn privileged(parts: &Parts, token: Option<&str>) -> bool {
    if parts.extensions.get::<OpsListener>().is_some() {
        return true;
    }
    let Some(token) = token else {
        return false;
    };
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_bytes(given.as_bytes(), token.as_bytes()))
}

/// Equal, in a time that depends on the lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A refresher of scrape-time gauges.
pub type ScrapeFn = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// One process's probes and metrics.
pub struct Ops {
    role: &'static str,
    registry: Registry,
    checks: Vec<(&'static str, CheckFn)>,
    on_scrape: Vec<ScrapeFn>,
    rss: IntGauge,
    fds: IntGauge,
    token: Option<String>,
}

impl OpsToken for Ops {
    fn ops_token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

impl<T: OpsToken> OpsToken for Arc<T> {
    fn ops_token(&self) -> Option<&str> {
        T::ops_token(self)
    }
}

impl Ops {
    /// Probes for `role`, with its build and process metrics registered.
    pub fn new(role: &'static str) -> Self {
        let registry = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "The build and role of this process (always 1)",
            ),
            &["version", "role"],
        )
        .expect("valid metric");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), role])
            .set(1);
        let started = IntGauge::new(
            "process_start_time_seconds",
            "When this process started (Unix seconds)",
        )
        .expect("valid metric");
        started.set(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
        );
        let rss = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory of this process",
        )
        .expect("valid metric");
        let fds = IntGauge::new("process_open_fds", "Open file descriptors of this process")
            .expect("valid metric");
        let ops = Self {
            role,
            registry,
            checks: Vec::new(),
            on_scrape: Vec::new(),
            rss,
            fds,
            token: None,
        };
        ops.register(build);
        ops.register(started);
        ops.register(ops.rss.clone());
        ops.register(ops.fds.clone());
        ops
    }

    /// Lets callers of a public port with this bearer token see the details of
    /// `/ready` (`OPS_TOKEN`).
    #[must_use]
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Adds a readiness check.
    #[must_use]
    pub fn check(mut self, name: &'static str, f: CheckFn) -> Self {
        self.checks.push((name, f));
        self
    }

    /// Runs `f` before each scrape (gauges read from a dependency).
    #[must_use]
    pub fn on_scrape(mut self, f: ScrapeFn) -> Self {
        self.on_scrape.push(f);
        self
    }

    /// The registry, for collectors registered in bulk.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers a metric (its name must be unique in the process) and returns it.
    pub fn register<C: Collector + Clone + 'static>(&self, c: C) -> C {
        self.registry
            .register(Box::new(c.clone()))
            .expect("metric registered once");
        c
    }

    /// Runs every check at once; `true` when all passed.
    pub async fn ready(&self) -> (bool, BTreeMap<&'static str, Check>) {
        let results = futures::future::join_all(self.checks.iter().map(|(_, f)| timed(f()))).await;
        let report: BTreeMap<_, _> = self.checks.iter().map(|(n, _)| *n).zip(results).collect();
        (report.values().all(|c| c.ok), report)
    }

    /// The metrics in Prometheus text format 0.0.4.
    pub async fn render(&self) -> String {
        futures::future::join_all(self.on_scrape.iter().map(|f| f())).await;
        if let Some(rss) = resident_bytes() {
            self.rss.set(rss);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(i64::try_from(dir.count()).unwrap_or(i64::MAX));
        }
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// `/health`, `/ready` and `/metrics`, for the ops address ([`serve_router`]).
    pub fn router(self: Arc<Self>) -> Router {
        self.clone().probe_router().merge(
            Router::new()
                .route("/metrics", get(metrics))
                .with_state(self),
        )
    }

    /// `/health` and `/ready` only: for a public port, where metrics do not belong
    /// (`/ready` there is bare unless [`Privileged`]).
    pub fn probe_router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/ready", get(ready))
            .with_state(self)
    }
}

/// Resident set size from `/proc/self/statm` (Linux; pages of 4 KiB).
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[derive(Serialize)]
struct Envelope<T> {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    data: T,
}

async fn health(State(ops): State<Arc<Ops>>) -> Json<Envelope<serde_json::Value>> {
    Json(Envelope {
        success: true,
        message: None,
        code: None,
        data: serde_json::json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "role": ops.role,
        }),
    })
}

/// `data` of `/ready`: `ok` or `degraded`, and (to a [`Privileged`] caller) each
/// dependency's check.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<&'static str, Check>>,
}

/// `GET /ready`: 200 with every check, or 503 with the same report.
async fn ready(State(ops): State<Arc<Ops>>, Privileged(details): Privileged) -> Response {
    let (ok, checks) = ops.ready().await;
    let data = Readiness {
        status: if ok { "ok" } else { "degraded" },
        checks: details.then_some(checks),
    };
    if ok {
        Json(Envelope {
            success: true,
            message: None,
            code: None,
            data,
        })
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Envelope {
                success: false,
                message: Some("A dependency is unavailable."),
                code: Some("service_unavailable"),
                data,
            }),
        )
            .into_response()
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ops.render().await,
    )
        .into_response()
}

/// Serves `ops` on `addr` until `shutdown` (a background task), or does nothing when
/// no address is configured. Fails when the address cannot be bound.
pub async fn serve(
    ops: Arc<Ops>,
    addr: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Some(addr) = addr else {
        tracing::info!(
            role = ops.role,
            "OPS_BIND_ADDR is not set: no /health, /ready or /metrics for this process"
        );
        return Ok(());
    };
    let role = ops.role;
    serve_router(role, ops.router(), addr, shutdown).await
}

/// Serves `app` (a role's ops routes) on the ops address `addr` until `shutdown`, each
/// request marked as [`OpsListener`].
pub async fn serve_router(
    role: &'static str,
    app: Router,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("OPS_BIND_ADDR: cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, role, "ops endpoints listening");
    let app = app.layer(Extension(OpsListener));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "ops endpoints stopped");
        }
    });
    Ok(())
}

/// The queue gauges, read from Redis at scrape time (API and worker processes):
/// `job_queue_depth{queue, state}` and `job_queue_oldest_waiting_seconds{queue}`.
#[derive(Clone)]
pub struct QueueGauges {
    depth: IntGaugeVec,
    oldest: prometheus::GaugeVec,
}

impl Default for QueueGauges {
    fn default() -> Self {
        Self::new()
    }
}

impl QueueGauges {
    pub fn new() -> Self {
        Self {
            depth: IntGaugeVec::new(
                Opts::new(
                    "job_queue_depth",
                    "Jobs per queue and state (active, scheduled, inflight, dead); `workers` \
                     counts consumers with a recent heartbeat, `registered` every registration",
                ),
                &["queue", "state"],
            )
            .expect("valid metric"),
            oldest: prometheus::GaugeVec::new(
                Opts::new(
                    "job_queue_oldest_waiting_seconds",
                    "Age of the job at the head of each queue's active list (0 when none waits)",
                ),
                &["queue"],
            )
            .expect("valid metric"),
        }
    }

    /// Registers both gauges in `registry`.
    pub fn register(&self, registry: &Registry) {
        for c in [
            Box::new(self.depth.clone()) as Box<dyn Collector>,
            Box::new(self.oldest.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
    }

    /// Reads `queues` from Redis (each under [`CHECK_TIMEOUT`]). On an error the gauges
    /// keep their last values, and the error is returned for the caller to log.
    pub async fn refresh(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        config: &crate::Config,
        queues: &[crate::jobs::Queue],
    ) -> Result<(), String> {
        for q in queues {
            let d = tokio::time::timeout(CHECK_TIMEOUT, crate::jobs::queue_depth(conn, config, *q))
                .await
                .map_err(|_| "Redis did not answer".to_owned())?
                .map_err(|e| e.to_string())?;
            for (state, v) in [
                ("active", d.active),
                ("scheduled", d.scheduled),
                ("inflight", d.inflight),
                ("dead", d.dead),
                ("workers", d.workers),
                ("registered", d.registered),
            ] {
                self.depth
                    .with_label_values(&[q.name(), state])
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            }
            self.oldest
                .with_label_values(&[q.name()])
                .set(d.oldest_waiting_secs.unwrap_or(0.0));
        }
        Ok(())
    }
}
