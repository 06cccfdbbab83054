//! Queue throughput, end to end on the real Redis (and PostgreSQL for the outbox):
//! no-op jobs pushed and completed through one queue, then the same through the
//! transactional outbox (rows committed in PostgreSQL, relayed, run).
//!
//! Run: `SQLX_OFFLINE=true cargo bench -p watch-party-workers --bench queue`
//! Knobs (environment): BENCH_JOBS (default 20000), BENCH_CONCURRENCY (default 64),
//! BENCH_ROUNDS (default 3), plus the usual DATABASE_URL / REDIS_URL.
//! Results and the machine they came from: docs/benchmarks.md.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use watch_party_workers::{Ctx, Pool};
use wp_shared::{
    Config,
    jobs::{Enqueuer, Queue, SystemJob, queue_config},
    outbox,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn done_count(enq: &Enqueuer) -> u64 {
    let qc = queue_config(enq.config(), Queue::System);
    let mut conn = enq.connection();
    redis::cmd("SCARD")
        .arg(qc.done_jobs_set())
        .query_async(&mut conn)
        .await
        .unwrap_or(0)
}

async fn wait_done(enq: &Enqueuer, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while done_count(enq).await < target {
        assert!(
            Instant::now() < deadline,
            "jobs did not finish in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn clear(enq: &Enqueuer) {
    let mut conn = enq.connection();
    let prefix = &enq.config().redis_prefix;
    for pattern in [format!("{prefix}.*"), format!("{prefix}:*")] {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(1000) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let jobs = env_usize("BENCH_JOBS", 20_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 64);
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let prefix = format!("bench{}", rand::random::<u32>());
    let config =
        Config::from_lookup(|k| match k {
            "REDIS_PREFIX" => Some(prefix.clone()),
            "DATABASE_URL" => Some(std::env::var("DATABASE_URL").unwrap_or_else(|_| {
                "postgres://postgres@127.0.0.1:5432/watch_party_bench".to_owned()
            })),
            _ => std::env::var(k).ok(),
        })?;
    wp_shared::db::migrate(&config).await?;
    let ctx = Arc::new(Ctx::new(config.clone()).await?);
    let enq = ctx.enqueuer.clone();
    sqlx::query("DELETE FROM outbox").execute(&ctx.db).await?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(watch_party_workers::run(
        ctx.clone(),
        vec![Pool {
            queue: Queue::System,
            concurrency,
        }],
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    println!(
        "queue benchmark: {jobs} no-op jobs per round, concurrency {concurrency}, {rounds} rounds"
    );
    let mut direct = Vec::new();
    let mut via_outbox = Vec::new();
    let mut via_outbox_single = Vec::new();
    let mut expected = 0u64;
    for round in 1..=rounds {
        // 1. Straight onto the queue, in batches of 1000.
        let start = Instant::now();
        for chunk in (0..jobs as u64).collect::<Vec<_>>().chunks(1000) {
            enq.push_many(chunk.iter().map(|&seq| SystemJob::Noop { seq }).collect())
                .await?;
        }
        expected += jobs as u64;
        wait_done(&enq, expected).await;
        let rate = jobs as f64 / start.elapsed().as_secs_f64();
        println!("round {round}: direct  {rate:>9.0} jobs/s");
        direct.push(rate);

        // 2. Through the outbox as a fan-out writes it: 1000 rows per transaction in
        // one INSERT, relayed to Redis after each commit, run.
        let start = Instant::now();
        for chunk in (0..jobs as u64).collect::<Vec<_>>().chunks(1000) {
            let mut tx = ctx.db.begin().await?;
            let batch: Vec<_> = chunk.iter().map(|&seq| SystemJob::Noop { seq }).collect();
            let ids = outbox::record_many(&mut tx, &batch).await?;
            tx.commit().await?;
            outbox::relay_ids(&ctx.db, &enq, &ids).await?;
        }
        expected += jobs as u64;
        wait_done(&enq, expected).await;
        let rate = jobs as f64 / start.elapsed().as_secs_f64();
        println!("round {round}: outbox (batched)  {rate:>9.0} jobs/s");
        via_outbox.push(rate);

        // 3. Through the outbox one job per transaction, as a single request writes it
        // (up to 2000 jobs: each is a commit and a relay of its own).
        let single = jobs.min(2000);
        let start = Instant::now();
        for seq in 0..single as u64 {
            let mut tx = ctx.db.begin().await?;
            let id = outbox::record(&mut tx, &SystemJob::Noop { seq }).await?;
            tx.commit().await?;
            outbox::relay_ids(&ctx.db, &enq, &[id]).await?;
        }
        expected += single as u64;
        wait_done(&enq, expected).await;
        let rate = single as f64 / start.elapsed().as_secs_f64();
        println!("round {round}: outbox (one per transaction)  {rate:>9.0} jobs/s");
        via_outbox_single.push(rate);
    }
    println!(
        "median: direct {:.0} jobs/s, outbox batched {:.0} jobs/s, outbox one per transaction {:.0} jobs/s",
        median(direct),
        median(via_outbox),
        median(via_outbox_single)
    );
    let _ = stop_tx.send(());
    workers.await??;
    clear(&enq).await;
    Ok(())
}
