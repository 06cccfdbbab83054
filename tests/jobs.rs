//! Job plumbing against real PostgreSQL, Redis and an SMTP server: an email goes
//! through the outbox and the email queue and arrives; a crash between commit and
//! enqueue loses nothing; a killed worker's job comes back; duplicates send once;
//! permanent failures park in the dead set; transient ones retry, then give up.

mod common;

use std::{process::Stdio, time::Duration};

use apalis::prelude::{TaskBuilder, TaskSink};
use common::{TestEnv, eventually, smtp::SmtpServer};
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

fn with_smtp(env: &TestEnv, smtp_url: &str) -> wp_shared::Config {
    let mut vars = env.vars.clone();
    vars.insert("SMTP_URL".into(), smtp_url.to_owned());
    wp_shared::Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
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
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_port = blackhole.local_addr().unwrap().port();
    let _hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = blackhole.accept().await {
            held.push(sock);
        }
    });

    let (id, outbox_id) = commit_email(&env, &email("erin@example.com", "Survives a crash")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();

    // A real worker process takes the job and hangs on the black hole...
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
        .args(["worker", "--queues", "email=1"])
        .envs(env.env_vars())
        .env("SMTP_URL", format!("smtp://127.0.0.1:{hole_port}"))
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
    let started = std::time::Instant::now();
    let workers = env
        .spawn_workers_with(with_smtp(&env, &smtp.url()), &[(Queue::Email, 1)])
        .await;
    eventually(
        Duration::from_secs(30),
        "the re-delivered email",
        || async { (smtp.messages().len() == 1).then_some(()) },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(30));
    eventually(Duration::from_secs(5), "the row marked sent", || async {
        (email_status(&env, id).await.0 == "sent").then_some(())
    })
    .await;
    workers.shutdown().await;
    assert_eq!(smtp.messages().len(), 1);
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
}

#[tokio::test]
async fn a_transient_failure_is_retried_then_given_up() {
    common::init_logs();
    let env = TestEnv::with_vars(&[("JOB_MAX_ATTEMPTS", "2")]).await;
    // Nothing listens there: connection refused, a transient error.
    let port = common::smtp::free_port();
    let (id, outbox_id) = commit_email(&env, &email("frank@example.com", "Retry me")).await;
    outbox::relay_ids(&env.db, &env.enqueuer, &[outbox_id])
        .await
        .unwrap();
    let workers = env
        .spawn_workers_with(
            with_smtp(&env, &format!("smtp://127.0.0.1:{port}")),
            &[(Queue::Email, 1)],
        )
        .await;
    eventually(
        Duration::from_secs(20),
        "the job dead after 2 attempts",
        || async { (env.depth(Queue::Email).await.dead == 1).then_some(()) },
    )
    .await;
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
