//! Job plumbing against real PostgreSQL, Redis and an SMTP server: an email goes
//! through the outbox and the email queue and arrives; a crash between commit and
//! enqueue loses nothing; a killed worker's job comes back; duplicates send once;
//! permanent failures park in the dead set; transient ones retry, then give up.

mod common;

use std::{process::Stdio, time::Duration};

use apalis::prelude::{TaskBuilder, TaskSink};
use common::{
    TestEnv, eventually,
    proxy::Proxy,
    smtp::{FakeSmtp, SmtpServer},
};
use uuid::Uuid;
use wp_shared::{
    email::{NewEmail, queue},
    jobs::{Queue, SendEmail, SystemJob},
    outbox,
};

fn email(to: &str, subject: &str) -> NewEmail {
    NewEmail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        body_text: format!("Plain body of {subject}"),
        body_html: Some(format!("<p>HTML body of <b>{subject}</b></p>")),
        kind: "test".to_owned(),
    }
}

/// Stores an email and its outbox row in one transaction, as a handler would.
async fn commit_email(env: &TestEnv, e: &NewEmail) -> (Uuid, i64) {
    let mut tx = env.db.begin().await.unwrap();
    let ids = queue(&mut tx, e).await.unwrap();
    tx.commit().await.unwrap();
    ids
}

async fn email_status(env: &TestEnv, id: Uuid) -> (String, i32) {
    sqlx::query_as::<_, (String, i32)>("SELECT status, attempts FROM emails WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .unwrap()
}

async fn outbox_rows(env: &TestEnv) -> i64 {
    outbox::pending_count(&env.db).await.unwrap()
}

/// `env`'s configuration with some variables replaced.
fn config_with(env: &TestEnv, changes: &[(&str, String)]) -> wp_shared::Config {
    let mut vars = env.vars.clone();
    for (k, v) in changes {
        vars.insert((*k).to_owned(), v.clone());
    }
    wp_shared::Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
}

fn with_smtp(env: &TestEnv, smtp_url: &str) -> wp_shared::Config {
    config_with(env, &[("SMTP_URL", smtp_url.to_owned())])
}

#[tokio::test]
async fn an_email_goes_through_the_outbox_and_arrives_over_smtp() {
    common::init_logs();
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;
    let workers = env
        .spawn_workers_with(with_smtp(&env, &smtp.url()), &[(Queue::Email, 2)])
        .await;

    let (id, outbox_id) = commit_email(&env, &email("alice@example.com", "Welcome aboard")).await;
    let relayed = outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    assert_eq!(relayed, 1);
    assert_eq!(outbox_rows(&env).await, 0, "a relayed row is deleted");

    let msgs = eventually(Duration::from_secs(15), "the email to arrive", || async {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert!(m.contains("To: alice@example.com"), "{m}");
    assert!(m.contains("Subject: Welcome aboard"), "{m}");
    assert!(m.contains("multipart/alternative"), "{m}");
    assert!(m.contains("Plain body of Welcome aboard"), "{m}");
    assert!(
        m.contains(&format!("<{id}@watchparty>")),
        "Message-ID kept: {m}"
    );

    eventually(Duration::from_secs(5), "the row marked sent", || async {
        (email_status(&env, id).await == ("sent".into(), 1)).then_some(())
    })
    .await;
    workers.shutdown().await;
}

#[tokio::test]
async fn a_crash_between_commit_and_enqueue_still_sends_the_email() {
    common::init_logs();
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;

    // The handler commits, then dies before relaying: nothing reaches Redis.
    let (id, _outbox_id) =
        commit_email(&env, &email("bob@example.com", "Reset your password")).await;
    assert_eq!(outbox_rows(&env).await, 1);
    let d = env.depth(Queue::Email).await;
    assert_eq!(d.active + d.scheduled, 0, "not enqueued yet");

    // The scheduler's sweep (a tick enqueues RelayOutbox on the system queue) finds it.
    let schedules = wp_scheduler::schedules(&env.config).unwrap();
    let sweep = schedules.iter().find(|s| s.name == "outbox-relay").unwrap();
    let mut conn = env.redis.clone();
    assert!(
        wp_scheduler::fire(&mut conn, &env.enqueuer, "test", sweep, chrono::Utc::now())
            .await
            .unwrap()
    );
    let workers = env
        .spawn_workers_with(
            with_smtp(&env, &smtp.url()),
            &[(Queue::System, 1), (Queue::Email, 1)],
        )
        .await;
    eventually(
        Duration::from_secs(15),
        "the swept email to arrive",
        || async { (smtp.messages().len() == 1).then_some(()) },
    )
    .await;
    assert_eq!(outbox_rows(&env).await, 0);
    // The SMTP server has it; the worker commits `sent` right after.
    eventually(Duration::from_secs(5), "the row marked sent", || async {
        (email_status(&env, id).await.0 == "sent").then_some(())
    })
    .await;
    workers.shutdown().await;
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_relay_repeated_after_a_crash_enqueues_the_job_once() {
    common::init_logs();
    // The relay pushed, then died before deleting the row: the next sweep pushes the
    // same row again, and the dedupe key keeps the second push out.
    let env = TestEnv::new().await;
    let (_id, outbox_id) = commit_email(&env, &email("carol@example.com", "Twice?")).await;
    let payload: serde_json::Value = sqlx::query_scalar("SELECT payload FROM outbox WHERE id = $1")
        .bind(outbox_id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    let key: Option<String> = sqlx::query_scalar("SELECT dedupe_key FROM outbox WHERE id = $1")
        .bind(outbox_id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    env.enqueuer
        .push_json(Queue::Email, vec![(payload, key)])
        .await
        .unwrap();
    let relayed = outbox::relay_pending(&env.db, &env.enqueuer, 100)
        .await
        .unwrap();
    assert_eq!(relayed, 1, "the row was pushed again");
    let d = env.depth(Queue::Email).await;
    assert_eq!(
        d.active + d.scheduled,
        1,
        "but the queue holds one job: {d:?}"
    );
}

/// Redis restarted without persistence loses what it queued; the outbox keeps a pushed
/// job's row until a worker finishes the job, and the sweep pushes it again when it
/// finds Redis emptied. The email is sent once, and its row goes once it is.
#[tokio::test]
async fn a_job_finished_while_its_relay_commits_clears_its_row() {
    // A relay pushes under the row's lock and marks it before committing; a worker
    // quick enough finishes the job in between. Its `done` must wait for the mark, not
    // pass over the row as unpushed (the row would stay, and the job run again later).
    let env = TestEnv::new().await;
    let (_, outbox_id) = commit_email(&env, &email("fay@example.com", "Quick")).await;
    let key: String = sqlx::query_scalar("SELECT dedupe_key FROM outbox WHERE id = $1")
        .bind(outbox_id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    // The relay, mid-way: the row locked, pushed, not yet marked.
    let mut relay = env.db.begin().await.unwrap();
    sqlx::query("SELECT id FROM outbox WHERE id = $1 FOR UPDATE")
        .bind(outbox_id)
        .execute(&mut *relay)
        .await
        .unwrap();
    let db = env.db.clone();
    let worker = tokio::spawn(async move { outbox::done(&db, &[key]).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!worker.is_finished(), "done waits for the relay's commit");
    sqlx::query("UPDATE outbox SET relayed_at = now() WHERE id = $1")
        .bind(outbox_id)
        .execute(&mut *relay)
        .await
        .unwrap();
    relay.commit().await.unwrap();
    assert_eq!(
        worker.await.unwrap(),
        1,
        "the row goes once its push is marked"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE id = $1")
        .bind(outbox_id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_job_that_redis_lost_is_pushed_again_from_the_outbox() {
    common::init_logs();
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;
    let (id, outbox_id) = commit_email(&env, &email("erin@example.com", "Survives")).await;
    let relayed_at = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT relayed_at FROM outbox WHERE id = $1",
        )
        .bind(outbox_id)
        .fetch_optional(&env.db)
        .await
        .unwrap()
    };
    assert!(
        outbox::redis_was_reset(&env.enqueuer).await.unwrap(),
        "the first look sets the marker"
    );
    assert_eq!(
        outbox::relay_pending(&env.db, &env.enqueuer, 100)
            .await
            .unwrap(),
        1
    );
    assert!(!outbox::redis_was_reset(&env.enqueuer).await.unwrap());
    assert!(
        matches!(relayed_at().await, Some(Some(_))),
        "pushed, and kept until done"
    );
    assert_eq!(outbox_rows(&env).await, 0, "nothing waits to be relayed");
    let d = env.depth(Queue::Email).await;
    assert_eq!(d.active + d.scheduled, 1, "{d:?}");

    // Redis loses everything (this test's keys: its prefix).
    let mut conn = env.enqueuer.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", env.config.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    redis::cmd("DEL")
        .arg(&keys)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let d = env.depth(Queue::Email).await;
    assert_eq!(d.active + d.scheduled, 0, "the job is gone from Redis");

    assert!(
        outbox::redis_was_reset(&env.enqueuer).await.unwrap(),
        "the sweep notices the marker gone"
    );
    for _ in 0..2 {
        // Pushed again; a second push while Redis holds it changes nothing.
        assert_eq!(
            outbox::redeliver(&env.db, &env.enqueuer, Duration::ZERO, 100)
                .await
                .unwrap(),
            1
        );
    }
    let d = env.depth(Queue::Email).await;
    assert_eq!(d.active + d.scheduled, 1, "one job: {d:?}");
    // Not due yet by age: a recent push is left alone.
    assert_eq!(
        outbox::redeliver(&env.db, &env.enqueuer, Duration::from_secs(600), 100)
            .await
            .unwrap(),
        0
    );

    let workers = env
        .spawn_workers_with(with_smtp(&env, &smtp.url()), &[(Queue::Email, 1)])
        .await;
    eventually(
        Duration::from_secs(15),
        "the email sent and its row gone",
        || async {
            (email_status(&env, id).await.0 == "sent" && relayed_at().await.is_none()).then_some(())
        },
    )
    .await;
    workers.shutdown().await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
}

/// An SMTP server that takes the connection and never speaks fails the send after
/// `SMTP_TIMEOUT_SECS` (1 s here, 30 by default) instead of holding the job and its slot;
/// the email stays queued for another try.
#[tokio::test]
async fn a_silent_smtp_server_fails_the_send_after_the_configured_timeout() {
    common::init_logs();
    let env = TestEnv::new().await;
    let hole = FakeSmtp::blackhole().await;
    let (id, outbox_id) = commit_email(&env, &email("hal@example.com", "Silence")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    let config = config_with(
        &env,
        &[
            ("SMTP_URL", hole.url()),
            ("SMTP_TIMEOUT_SECS", "1".to_owned()),
        ],
    );
    let workers = env.spawn_workers_with(config, &[(Queue::Email, 1)]).await;
    let error = eventually(Duration::from_secs(15), "the send to fail", || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT last_error FROM emails WHERE id = $1")
            .bind(id)
            .fetch_one(&env.db)
            .await
            .unwrap()
    })
    .await;
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(
        email_status(&env, id).await.0,
        "queued",
        "kept for another try"
    );
    workers.shutdown().await;
}

#[tokio::test]
async fn a_duplicated_job_sends_one_email() {
    common::init_logs();
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;
    let (id, _) = commit_email(&env, &email("dave@example.com", "Only once")).await;
    // Two deliveries of the same job, bypassing the queue's dedupe (as a re-delivery
    // after a lost ack would be).
    let mut storage = env.enqueuer.storage::<SendEmail>(Queue::Email);
    for _ in 0..2 {
        storage
            .push_task(TaskBuilder::new(SendEmail { email_id: id }).build())
            .await
            .unwrap();
    }
    let workers = env
        .spawn_workers_with(with_smtp(&env, &smtp.url()), &[(Queue::Email, 2)])
        .await;
    env.wait_idle(Queue::Email, Duration::from_secs(15)).await;
    workers.shutdown().await;
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(email_status(&env, id).await, ("sent".into(), 1));
}

#[tokio::test]
async fn a_killed_workers_job_is_delivered_again() {
    common::init_logs();
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;
    // An SMTP "server" that accepts connections and never speaks: the send hangs.
    let hole = FakeSmtp::blackhole().await;

    let (id, outbox_id) = commit_email(&env, &email("erin@example.com", "Survives a crash")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();

    // A real worker process takes the job and hangs on the black hole...
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
        .args(["worker", "--queues", "email=1"])
        .envs(env.env_vars())
        .env("SMTP_URL", hole.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "the job in flight", || async {
        (env.depth(Queue::Email).await.inflight == 1).then_some(())
    })
    .await;
    // ...and is killed (SIGKILL: no graceful stop, no ack).
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    assert!(smtp.messages().is_empty());

    // Another worker picks the job up once the dead one misses its heartbeats
    // (1 s × 2 here; 5 s × 3 by default).
    // (The wait is the bound: 2 s of missed heartbeats, well inside 20 s.)
    let workers = env
        .spawn_workers_with(with_smtp(&env, &smtp.url()), &[(Queue::Email, 1)])
        .await;
    eventually(
        Duration::from_secs(20),
        "the re-delivered email",
        || async { (smtp.messages().len() == 1).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(5), "the row marked sent", || async {
        (email_status(&env, id).await.0 == "sent").then_some(())
    })
    .await;
    // The worker that took it over knows it was a re-delivery (and logged it).
    assert_eq!(workers.metrics.redeliveries(Queue::Email), 1);
    workers.shutdown().await;
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_worker_stopped_with_a_stuck_job_names_the_job_it_abandons() {
    common::init_logs();
    let env = TestEnv::new().await;
    let hole = FakeSmtp::blackhole().await;
    let (_, outbox_id) = commit_email(&env, &email("gil@example.com", "Stuck")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    let child = common::worker_process(
        &env,
        "email=1",
        &[
            ("SMTP_URL", hole.url()),
            ("WORKER_SHUTDOWN_GRACE_SECS", "1".into()),
        ],
    );
    eventually(Duration::from_secs(20), "the job in flight", || async {
        (env.depth(Queue::Email).await.inflight == 1).then_some(())
    })
    .await;
    // The grace period is honoured: out within 10 s, cleanly.
    let (exit, logs) = common::stop_with_sigterm(child, Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}");
    let line = logs
        .lines()
        .find(|l| l.contains("jobs still running when the workers stopped"))
        .unwrap_or_else(|| panic!("no line names the abandoned job:\n{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    // A list in a JSON log line is a JSON array.
    let ids = v["jobs"].as_array().unwrap_or_else(|| panic!("{line}"));
    assert_eq!(ids.len(), 1, "{line}");
    assert!(ids[0].as_str().unwrap().starts_with("email:"), "{line}");
    assert_eq!(v["count"], 1, "{line}");
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dead_set_at_once() {
    common::init_logs();
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;
    let (id, outbox_id) = commit_email(&env, &email("not an address", "Never sent")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    let workers = env
        .spawn_workers_with(with_smtp(&env, &smtp.url()), &[(Queue::Email, 1)])
        .await;
    eventually(
        Duration::from_secs(15),
        "the job in the dead set",
        || async { (env.depth(Queue::Email).await.dead == 1).then_some(()) },
    )
    .await;
    workers.shutdown().await;
    let (status, attempts) = email_status(&env, id).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    let err: Option<String> = sqlx::query_scalar("SELECT last_error FROM emails WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert!(err.unwrap().contains("not an address"));
    assert!(smtp.messages().is_empty());
    // The dead record is kept for inspection within its retention, then vacuumed.
    let mut conn = env.redis.clone();
    assert_eq!(
        wp_workers::system::vacuum(&mut conn, &env.config)
            .await
            .unwrap(),
        0
    );
    assert_eq!(env.depth(Queue::Email).await.dead, 1);
    let mut cfg = env.config.clone();
    cfg.job_dead_retention = Duration::ZERO;
    assert_eq!(
        wp_workers::system::vacuum(&mut conn, &cfg).await.unwrap(),
        1
    );
    assert_eq!(env.depth(Queue::Email).await.dead, 0);
}

#[tokio::test]
async fn a_transient_failure_is_retried_then_given_up() {
    common::init_logs();
    let env = TestEnv::with_vars(&[("JOB_MAX_ATTEMPTS", "2")]).await;
    // A server that answers every command with 451: a transient refusal.
    let busy = common::smtp::FakeSmtp::busy().await;
    let (id, outbox_id) = commit_email(&env, &email("frank@example.com", "Retry me")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    let workers = env
        .spawn_workers_with(with_smtp(&env, &busy.url()), &[(Queue::Email, 1)])
        .await;
    eventually(
        Duration::from_secs(20),
        "the job dead after 2 attempts",
        || async { (env.depth(Queue::Email).await.dead == 1).then_some(()) },
    )
    .await;
    // A retry is not a re-delivery.
    assert_eq!(workers.metrics.redeliveries(Queue::Email), 0);
    workers.shutdown().await;
    assert_eq!(email_status(&env, id).await, ("failed".into(), 2));
}

#[tokio::test]
async fn the_vacuum_removes_finished_job_records() {
    common::init_logs();
    let env = TestEnv::new().await;
    env.enqueuer
        .push_many((0..20).map(|seq| SystemJob::Noop { seq }).collect())
        .await
        .unwrap();
    let workers = env.spawn_workers(&[(Queue::System, 4)]).await;
    env.wait_idle(Queue::System, Duration::from_secs(15)).await;
    workers.shutdown().await;
    let qc = wp_shared::jobs::queue_config(&env.config, Queue::System);
    let mut conn = env.redis.clone();
    let data_len = |mut c: redis::aio::ConnectionManager, key: String| async move {
        redis::cmd("HLEN")
            .arg(key)
            .query_async::<u64>(&mut c)
            .await
            .unwrap()
    };
    assert_eq!(data_len(conn.clone(), qc.job_data_hash()).await, 20);

    // Within the retention nothing goes.
    assert_eq!(
        wp_workers::system::vacuum(&mut conn, &env.config)
            .await
            .unwrap(),
        0
    );
    // Past it, everything finished goes: data, metadata and the done-set entries.
    let mut cfg = env.config.clone();
    cfg.job_done_retention = Duration::ZERO;
    assert_eq!(
        wp_workers::system::vacuum(&mut conn, &cfg).await.unwrap(),
        20
    );
    assert_eq!(data_len(conn.clone(), qc.job_data_hash()).await, 0);
    let done: u64 = redis::cmd("SCARD")
        .arg(qc.done_jobs_set())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(done, 0);
    let metas: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", qc.job_meta_hash()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(metas.is_empty(), "{metas:?}");
}

#[tokio::test]
async fn a_backlog_larger_than_lua_can_unpack_is_worked_off() {
    // apalis-redis moves every due scheduled job to the active list in one Lua
    // `unpack`, which fails past ~8000 ids and used to stop the worker for good.
    common::init_logs();
    let env = TestEnv::new().await;
    let mut storage = env.enqueuer.storage::<SystemJob>(Queue::System);
    let tasks: Vec<_> = (0..9000)
        .map(|seq| TaskBuilder::new(SystemJob::Noop { seq }).build())
        .collect();
    storage
        .push_all(&mut futures::stream::iter(tasks))
        .await
        .unwrap();
    assert_eq!(env.depth(Queue::System).await.scheduled, 9000);
    let workers = env.spawn_workers(&[(Queue::System, 32)]).await;
    env.wait_idle(Queue::System, Duration::from_secs(60)).await;
    workers.shutdown().await;
    let qc = wp_shared::jobs::queue_config(&env.config, Queue::System);
    let mut conn = env.redis.clone();
    let done: u64 = redis::cmd("SCARD")
        .arg(qc.done_jobs_set())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(done, 9000);
}

/// `env`'s configuration for a worker whose Redis traffic (the queue connection and
/// every other) goes through `proxy`.
fn via_proxy(env: &TestEnv, smtp_url: &str, proxy: &Proxy) -> wp_shared::Config {
    config_with(
        env,
        &[
            ("SMTP_URL", smtp_url.to_owned()),
            ("REDIS_URL", proxy.redis_url()),
        ],
    )
}

/// Commits and relays `n` emails whose subjects start with `tag`.
async fn send_emails(env: &TestEnv, tag: &str, range: std::ops::Range<usize>) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in range {
        let (id, outbox_id) =
            commit_email(env, &email("load@example.com", &format!("{tag} {i}"))).await;
        outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn workers_come_back_after_redis_drops_under_load_and_lose_no_job() {
    common::init_logs();
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;
    let proxy = Proxy::to_redis(&env.config).await;
    let workers = env
        .spawn_workers_with(via_proxy(&env, &smtp.url(), &proxy), &[(Queue::Email, 4)])
        .await;
    eventually(Duration::from_secs(10), "the pools connected", || async {
        workers.status.connected().then_some(())
    })
    .await;
    assert_eq!(workers.status.generations(), 1);

    let mut ids = send_emails(&env, "Before", 0..60).await;
    eventually(Duration::from_secs(15), "some emails sent", || async {
        (smtp.messages().len() >= 5).then_some(())
    })
    .await;

    // Redis goes away for a second, mid-load; the API (its own connection) keeps
    // enqueueing meanwhile.
    proxy.down();
    ids.extend(send_emails(&env, "During", 60..80).await);
    // Generous: on a loaded 2-core machine the first failed poll can take a while.
    eventually(Duration::from_secs(15), "the pools to notice", || async {
        (!workers.status.connected()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.up();

    eventually(Duration::from_secs(10), "the pools back", || async {
        workers.status.connected().then_some(())
    })
    .await;
    ids.extend(send_emails(&env, "After", 80..100).await);
    eventually(Duration::from_secs(45), "every email sent", || async {
        let sent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM emails WHERE id = ANY($1) AND status = 'sent'",
        )
        .bind(&ids)
        .fetch_one(&env.db)
        .await
        .unwrap();
        (sent == 100).then_some(())
    })
    .await;
    // Exactly once each: the jobs the cut connection held came back, and the row
    // lock kept the re-delivery from sending a second copy.
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 100);
    for i in 0..100 {
        let tag = match i {
            0..60 => "Before",
            60..80 => "During",
            _ => "After",
        };
        let subject = format!("Subject: {tag} {i}");
        let n = msgs
            .iter()
            .filter(|m| m.lines().any(|l| l.trim_end() == subject))
            .count();
        assert_eq!(n, 1, "{tag} {i} arrived {n} times");
    }
    // One drop, one restart: no spinning on the dead connection.
    assert_eq!(workers.status.generations(), 2);

    // Shutdown is honoured in the middle of an outage too.
    proxy.down();
    // As generous as the first outage's wait (a loaded 2-core machine: CI saw 5 s pass).
    eventually(Duration::from_secs(15), "the pools to notice", || async {
        (!workers.status.connected()).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    workers.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_worker_process_cut_off_from_redis_stops_on_sigterm() {
    common::init_logs();
    let env = TestEnv::new().await;
    let proxy = Proxy::to_redis(&env.config).await;
    let child = common::worker_process(
        &env,
        "email=1,system=1",
        &[("REDIS_URL", proxy.redis_url())],
    );
    eventually(Duration::from_secs(20), "the worker connected", || async {
        (proxy.accepted() >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.down();
    // Ten seconds of outage: reconnect attempts back off instead of spinning.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (exit, logs) = common::stop_with_sigterm(child, Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}");
    let lines = logs.lines().count();
    // The drop is logged once, then at most once per 30 s per dependency (the queue
    // connection, job promotion per queue, the enqueuer's connection manager).
    assert!(lines <= 12, "{lines} log lines in 10 s of outage:\n{logs}");
    assert!(
        logs.contains("connection lost; reconnecting with backoff"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_database_outage_delays_jobs_without_spending_their_attempts() {
    common::init_logs();
    // Two attempts only: a job that failed twice on its own would be dead.
    let env = TestEnv::with_vars(&[("JOB_MAX_ATTEMPTS", "2")]).await;
    let smtp = SmtpServer::start().await;
    let pg = Proxy::start("127.0.0.1:5432").await;
    let db_name = env.config.database_url.rsplit('/').next().unwrap();
    let config = config_with(
        &env,
        &[
            ("SMTP_URL", smtp.url()),
            (
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{}/{db_name}", pg.port()),
            ),
        ],
    );
    let workers = env.spawn_workers_with(config, &[(Queue::Email, 1)]).await;

    // PostgreSQL is unreachable for the worker when the job arrives...
    pg.down();
    let (id, outbox_id) = commit_email(&env, &email("hal@example.com", "Patience")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let d = env.depth(Queue::Email).await;
    assert_eq!(d.dead, 0, "an outage does not kill the job: {d:?}");
    assert!(smtp.messages().is_empty());
    // ...and the job goes through once it is back.
    pg.up();
    eventually(Duration::from_secs(30), "the email sent", || async {
        (email_status(&env, id).await.0 == "sent").then_some(())
    })
    .await;
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(env.depth(Queue::Email).await.dead, 0);
    workers.shutdown().await;
}

#[tokio::test]
async fn an_smtp_server_that_is_down_delays_emails_without_spending_their_attempts() {
    common::init_logs();
    let env = TestEnv::with_vars(&[("JOB_MAX_ATTEMPTS", "2")]).await;
    // Nothing listens there yet: connection refused, an outage. The port is held (bound,
    // not listening: connections to it are refused) until the server takes it, so that
    // nothing else (an outgoing connection's local port, say) takes it meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let (id, outbox_id) = commit_email(&env, &email("ivy@example.com", "Later")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    let workers = env
        .spawn_workers_with(
            with_smtp(&env, &format!("smtp://127.0.0.1:{port}")),
            &[(Queue::Email, 1)],
        )
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.depth(Queue::Email).await.dead, 0);
    assert_eq!(email_status(&env, id).await.0, "queued");
    // The server comes up on its port: the email goes.
    drop(held);
    let smtp = SmtpServer::start_on(port).await;
    eventually(Duration::from_secs(40), "the email sent", || async {
        (email_status(&env, id).await.0 == "sent").then_some(())
    })
    .await;
    assert_eq!(smtp.messages().len(), 1);
    workers.shutdown().await;
}

/// A relay killed between its push to Redis and its commit leaves its row unmarked
/// (`relayed_at` NULL) while the job runs. Once the job is done, the row must go: left,
/// the sweep would push it again (a no-op while Redis keeps the job's dedupe key), mark
/// it, and push it again every `OUTBOX_REDELIVER_SECS` for a day, as the local-cluster
/// rehearsal's "1 outbox row left" showed.
#[tokio::test]
async fn a_relay_killed_between_its_push_and_its_commit_leaves_no_row_behind() {
    let env = TestEnv::new().await;
    let smtp = SmtpServer::start().await;
    let (id, _) = commit_email(&env, &email("kim@example.com", "Pushed, never marked")).await;
    // What the dead relay did: the push, and nothing after it.
    env.enqueuer.push(SendEmail { email_id: id }).await.unwrap();
    assert_eq!(outbox_rows(&env).await, 1, "the row is there, unmarked");
    let workers = env
        .spawn_workers_with(with_smtp(&env, &smtp.url()), &[(Queue::Email, 1)])
        .await;
    eventually(Duration::from_secs(15), "the email sent", || async {
        (email_status(&env, id).await.0 == "sent").then_some(())
    })
    .await;
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox")
            .fetch_one(&env.db)
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(5), "the row gone", || async {
        (rows().await == 0).then_some(())
    })
    .await;
    // The sweep finds nothing to push again; one email went.
    assert_eq!(
        outbox::relay_pending(&env.db, &env.enqueuer, 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(smtp.messages().len(), 1);
    workers.shutdown().await;
}
