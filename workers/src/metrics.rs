//! What the worker pools tell Prometheus, and the probes of a worker process.

use std::{sync::Arc, time::Instant};

use apalis::prelude::{AbortError, BoxDynError};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use wp_shared::{
    jobs::Queue,
    ops::{self, Ops, QueueGauges},
};

use crate::Ctx;

/// How an attempt ended: `succeeded`, `retried` (failed, will run again) or `dead`
/// (given up).
pub fn outcome(result: &Result<(), BoxDynError>) -> &'static str {
    match result {
        Ok(()) => "succeeded",
        Err(e) if e.is::<AbortError>() => "dead",
        Err(_) => "retried",
    }
}

/// Job counters and durations by queue.
#[derive(Clone)]
pub struct JobMetrics {
    started: IntCounterVec,
    finished: IntCounterVec,
    redelivered: IntCounterVec,
    duration: HistogramVec,
    search_docs: IntCounterVec,
    search_lag: prometheus::Histogram,
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl JobMetrics {
    pub fn new() -> Self {
        // Constant names and labels: creating them cannot fail.
        Self {
            started: IntCounterVec::new(
                Opts::new("jobs_started_total", "Job attempts started, by queue"),
                &["queue"],
            )
            .expect("valid metric"),
            finished: IntCounterVec::new(
                Opts::new(
                    "jobs_finished_total",
                    "Job attempts finished, by queue and outcome: succeeded, retried \
                     (failed, will run again) or dead (given up, parked in the dead set)",
                ),
                &["queue", "outcome"],
            )
            .expect("valid metric"),
            redelivered: IntCounterVec::new(
                Opts::new(
                    "jobs_redelivered_total",
                    "Jobs started again because an earlier run never reported \
                     (its worker was killed, stopped or lost Redis), by queue",
                ),
                &["queue"],
            )
            .expect("valid metric"),
            duration: HistogramVec::new(
                HistogramOpts::new("job_duration_seconds", "Job attempt duration, by queue")
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        300.0,
                    ]),
                &["queue"],
            )
            .expect("valid metric"),
            search_docs: IntCounterVec::new(
                Opts::new(
                    "search_folded_total",
                    "Search change-log work: `changes` read, documents `upserted` and \
                     `deleted` in the index",
                ),
                &["what"],
            )
            .expect("valid metric"),
            search_lag: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "search_fold_lag_seconds",
                    "From a searchable object's change to its fold into the index \
                     (the oldest change of each batch)",
                )
                .buckets(vec![
                    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
                ]),
            )
            .expect("valid metric"),
        }
    }

    /// Counts a fold of search changes.
    pub fn search_folded(&self, f: &wp_core::search::sync::Folded) {
        self.search_docs
            .with_label_values(&["changes"])
            .inc_by(f.changes);
        self.search_docs
            .with_label_values(&["upserted"])
            .inc_by(f.upserted);
        self.search_docs
            .with_label_values(&["deleted"])
            .inc_by(f.deleted);
        if let Some(lag) = f.lag {
            self.search_lag.observe(lag.as_secs_f64());
        }
    }

    pub fn started(&self, queue: Queue) {
        self.started.with_label_values(&[queue.name()]).inc();
    }

    pub fn redelivered(&self, queue: Queue) {
        self.redelivered.with_label_values(&[queue.name()]).inc();
    }

    /// Job attempts this process started on `queue` (tests count them to prove a
    /// duplicate reached the handler rather than being dropped by the queue).
    pub fn starts(&self, queue: Queue) -> u64 {
        self.started.with_label_values(&[queue.name()]).get()
    }

    /// Re-deliveries seen by this process on `queue`.
    pub fn redeliveries(&self, queue: Queue) -> u64 {
        self.redelivered.with_label_values(&[queue.name()]).get()
    }

    /// Counts an attempt's outcome (after the give-up rule was applied).
    pub fn finished(&self, queue: Queue, since: Instant, result: &Result<(), BoxDynError>) {
        let outcome = outcome(result);
        self.finished
            .with_label_values(&[queue.name(), outcome])
            .inc();
        self.duration
            .with_label_values(&[queue.name()])
            .observe(since.elapsed().as_secs_f64());
    }
}

/// The probes and metrics of a worker process running `queues`: ready while
/// PostgreSQL answers and the pools hold their queue connection.
pub fn ops(ctx: &Arc<Ctx>, queues: &[Queue]) -> Ops {
    let status = ctx.status.clone();
    let ops = Ops::new("worker")
        .check("postgres", ops::postgres(ctx.db.clone()))
        .check("redis", ops::redis(ctx.enqueuer.connection()))
        .check(
            "queue_connection",
            ops::flag("the job queue connection", move || status.connected()),
        );
    let m = &ctx.metrics;
    ops.register(m.started.clone());
    ops.register(m.finished.clone());
    ops.register(m.redelivered.clone());
    ops.register(m.duration.clone());
    let search = queues.contains(&Queue::Search).then(|| {
        ops.register(m.search_docs.clone());
        ops.register(m.search_lag.clone());
        ops.register(
            IntGaugeVec::new(
                Opts::new(
                    "search_changes_waiting",
                    "Changes recorded and not yet folded into the index, by index; \
                     `age_seconds` of the oldest",
                ),
                &["index", "what"],
            )
            .expect("valid metric"),
        )
    });
    let queue_gauges = QueueGauges::new();
    queue_gauges.register(ops.registry());
    let connected = ops.register(
        IntGaugeVec::new(
            Opts::new(
                "worker_queue_connection",
                "1 while this process's pools hold their queue connection; `generations` \
                 counts the times they were (re)started on a fresh one",
            ),
            &["state"],
        )
        .expect("valid metric"),
    );
    let ctx = ctx.clone();
    let queues = queues.to_vec();
    ops.on_scrape(Box::new(move || {
        let ctx = ctx.clone();
        let queues = queues.clone();
        let queue_gauges = queue_gauges.clone();
        let connected = connected.clone();
        let search = search.clone();
        Box::pin(async move {
            if let Some(g) = &search
                && let Ok(rows) = wp_core::search::sync::backlog(&ctx.db).await
            {
                g.reset();
                for (index, n, age) in rows {
                    g.with_label_values(&[index.as_str(), "changes"]).set(n);
                    g.with_label_values(&[index.as_str(), "age_seconds"])
                        .set(age.unwrap_or(0.0) as i64);
                }
            }
            connected
                .with_label_values(&["up"])
                .set(i64::from(ctx.status.connected()));
            connected
                .with_label_values(&["generations"])
                .set(i64::try_from(ctx.status.generations()).unwrap_or(i64::MAX));
            let mut conn = ctx.enqueuer.connection();
            // Redis down: the gauges keep their last values and
            // `worker_queue_connection` says why.
            let _ = queue_gauges.refresh(&mut conn, &ctx.config, &queues).await;
        })
    }))
}
