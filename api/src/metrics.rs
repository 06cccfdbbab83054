//! Prometheus metrics: request counts and latency by route, queue depths, outbox
//! backlog. One registry per process (`GET /metrics`).

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use wp_shared::{jobs::Queue, ops::QueueGauges};

use crate::state::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    queues: QueueGauges,
    outbox_pending: IntGauge,
    outbox_oldest: prometheus::Gauge,
    comment_cache: CommentCacheMetrics,
}

/// The comment-page cache's figures (`crate::page_cache`), read at scrape time.
struct CommentCacheMetrics {
    hits: prometheus::IntCounter,
    misses: prometheus::IntCounter,
    evictions: prometheus::IntCounter,
    bytes: IntGauge,
    entries: IntGauge,
}

impl CommentCacheMetrics {
    fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        Self {
            hits: counter(
                "comment_page_cache_hits_total",
                "Comment pages served from the cache",
            ),
            misses: counter(
                "comment_page_cache_misses_total",
                "Comment pages rendered from the database",
            ),
            evictions: counter(
                "comment_page_cache_evictions_total",
                "Comment pages pushed out of the cache for room",
            ),
            bytes: gauge(
                "comment_page_cache_bytes",
                "Bytes of comment pages (and keys) held in the cache",
            ),
            entries: gauge(
                "comment_page_cache_entries",
                "Comment pages held in the cache",
            ),
        }
    }

    fn set(&self, s: crate::page_cache::CacheStats) {
        // The counters only move forward, to the cache's own totals.
        for (c, total) in [
            (&self.hits, s.hits),
            (&self.misses, s.misses),
            (&self.evictions, s.evictions),
        ] {
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.bytes.set(i64::try_from(s.bytes).unwrap_or(i64::MAX));
        self.entries
            .set(i64::try_from(s.entries).unwrap_or(i64::MAX));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        // The names and labels are constants: creating and registering them cannot fail.
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route and method",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let outbox_oldest = prometheus::Gauge::new(
            "outbox_oldest_pending_seconds",
            "How long the oldest outbox row has waited to be relayed (the relay's lag)",
        )
        .expect("valid metric");
        let queues = QueueGauges::new();
        queues.register(&registry);
        let outbox_pending = IntGauge::new(
            "outbox_pending",
            "Outbox rows committed but not yet relayed to their queue",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(outbox_pending.clone()),
            Box::new(outbox_oldest.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        let comment_cache = CommentCacheMetrics::new(&registry);
        Self {
            registry,
            requests,
            latency,
            queues,
            outbox_pending,
            outbox_oldest,
            comment_cache,
        }
    }

    fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Refreshes the gauges that are read at scrape time, then renders everything.
    /// A dependency that cannot be read leaves its gauges out rather than failing the
    /// scrape.
    pub async fn render(&self, state: &AppState) -> String {
        let mut conn = state.redis.clone();
        if let Err(e) = self
            .queues
            .refresh(&mut conn, &state.config, &Queue::ALL)
            .await
        {
            tracing::warn!(error = %e, "cannot read queue depths");
        }
        match wp_shared::outbox::backlog(&state.db).await {
            Ok((n, oldest)) => {
                self.outbox_pending.set(n);
                self.outbox_oldest.set(oldest);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read outbox backlog"),
        }
        self.comment_cache.set(state.comment_pages.stats());
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Middleware: counts and times each request under its route template (never the raw
/// path, so ids do not explode the label set), and writes the access log: one line
/// per request at INFO on the `access` target (`RUST_LOG=info,access=off` silences
/// it), WARN for 5xx, with the request id.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let res = next.run(req).await;
    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    state.metrics.observe(&method, &route, status, elapsed);
    let latency_ms = (elapsed.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let request_id = crate::request_id::current();
    if status >= 500 {
        tracing::warn!(target: "access", %method, %route, status, latency_ms, %client, %request_id, "request failed");
    } else {
        tracing::info!(target: "access", %method, %route, status, latency_ms, %client, %request_id, "request");
    }
    res
}
