//! Two scheduler replicas fire each tick once.

mod common;

use std::time::Duration;

use common::TestEnv;
use wp_shared::jobs::{Enqueuer, Queue};

#[tokio::test]
async fn two_replicas_racing_for_one_tick_enqueue_it_once() {
    let env = TestEnv::new().await;
    let schedules = wp_scheduler::schedules(&env.config).unwrap();
    let sweep = schedules.iter().find(|s| s.name == "outbox-relay").unwrap();
    let at = chrono::Utc::now();
    // Separate connections, as two processes would have.
    let mut a = wp_shared::redis_conn::connect(&env.config).await.unwrap();
    let mut b = wp_shared::redis_conn::connect(&env.config).await.unwrap();
    let enq_a = Enqueuer::new(a.clone(), env.config.clone());
    let enq_b = Enqueuer::new(b.clone(), env.config.clone());
    let (ra, rb) = tokio::join!(
        wp_scheduler::fire(&mut a, &enq_a, "replica-a", sweep, at),
        wp_scheduler::fire(&mut b, &enq_b, "replica-b", sweep, at),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra ^ rb, "exactly one replica fires: a={ra} b={rb}");
    let d = env.depth(Queue::System).await;
    assert_eq!(d.active + d.scheduled, 1);
    // The next tick is a different lock.
    let later = at + chrono::Duration::seconds(1);
    assert!(
        wp_scheduler::fire(&mut a, &enq_a, "replica-a", sweep, later)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn two_running_schedulers_enqueue_one_job_per_tick() {
    let env = TestEnv::new().await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    let ticks = [wp_scheduler::ticks_metric(), wp_scheduler::ticks_metric()];
    for t in &ticks {
        let redis = wp_shared::redis_conn::connect(&env.config).await.unwrap();
        let enq = Enqueuer::new(redis, env.config.clone());
        let mut rx = stop_rx.clone();
        handles.push(tokio::spawn(wp_scheduler::run(
            env.config.clone(),
            enq,
            t.clone(),
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
        )));
    }
    // OUTBOX_SWEEP_SECS=1 in tests: a tick every second. Run until three have fired.
    let mut conn = env.redis.clone();
    let pattern = format!("{}:sched:outbox-relay:*", env.config.redis_prefix);
    common::eventually(Duration::from_secs(15), "three outbox ticks", || {
        let mut conn = conn.clone();
        let pattern = pattern.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .ok()?;
            (keys.len() >= 3).then_some(())
        }
    })
    .await;
    stop_tx.send(true).unwrap();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let locks: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Every schedule's tick takes a lock: at a quarter hour the vacuum and digest ticks
    // fire too.
    let all_locks: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:sched:*", env.config.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    // The search-sync ticks go to the search queue, the others to the system queue.
    let (d, s) = (
        env.depth(Queue::System).await,
        env.depth(Queue::Search).await,
    );
    assert_eq!(
        (d.active + d.scheduled + s.active + s.scheduled) as usize,
        all_locks.len(),
        "one job per tick, not one per replica: {all_locks:?}"
    );
    // Each replica counted what it did: together one `enqueued` per tick, and no
    // failure.
    let count = |result: &str| -> u64 {
        ticks
            .iter()
            .map(|t| t.with_label_values(&["outbox-relay", result]).get())
            .sum()
    };
    assert_eq!(count("enqueued") as usize, locks.len());
    assert_eq!(count("failed"), 0);
}

#[tokio::test]
async fn every_schedule_enqueues_a_job_its_worker_runs() {
    let env = TestEnv::new().await;
    let schedules = wp_scheduler::schedules(&env.config).unwrap();
    let mut conn = wp_shared::redis_conn::connect(&env.config).await.unwrap();
    let enq = Enqueuer::new(conn.clone(), env.config.clone());
    let at = chrono::Utc::now();
    for s in &schedules {
        // Each cron expression fires within its period (a day at most).
        let next = s.cron.after(&at).next().expect("the schedule fires again");
        assert!(next - at <= chrono::Duration::days(1), "{}", s.name);
        assert!(
            wp_scheduler::fire(&mut conn, &enq, "test", s, at)
                .await
                .unwrap(),
            "{} fires",
            s.name
        );
    }
    let queued = |q: Queue| schedules.iter().filter(|s| s.queue == q).count() as u64;
    for q in [Queue::System, Queue::Search] {
        let d = env.depth(q).await;
        assert_eq!(d.active + d.scheduled, queued(q), "{q}");
    }
    assert_eq!(
        queued(Queue::System) + queued(Queue::Search),
        schedules.len() as u64,
        "every schedule goes to the system or the search queue"
    );
    // The workers take every one of them and none fails.
    let workers = env
        .spawn_workers(&[(Queue::System, 2), (Queue::Search, 1)])
        .await;
    for q in [Queue::System, Queue::Search] {
        let d = env.wait_idle(q, Duration::from_secs(60)).await;
        assert_eq!(d.dead, 0, "{q}: a scheduled job failed");
        assert!(workers.metrics.starts(q) >= queued(q), "{q}");
    }
    workers.shutdown().await;
}
