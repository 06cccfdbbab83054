//! Migrations and start-up configuration, through the real binary where it matters.

mod common;

use common::TestEnv;
use wp_shared::clickhouse::{Event, insert_events};

#[tokio::test]
async fn clickhouse_migrations_are_recorded_and_not_applied_twice() {
    let env = TestEnv::new().await;
    // TestEnv applied them once; a second run applies nothing.
    let again = wp_shared::clickhouse::migrate(&env.config).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    let ch = wp_shared::clickhouse::client(&env.config);
    let n: u64 = ch
        .query("SELECT count() FROM schema_migrations")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n as usize, wp_shared::clickhouse::MIGRATIONS.len());
    // The events table takes rows bound by position (validation is off for 18.16)
    // and gives them back unchanged.
    let at = chrono::DateTime::from_timestamp(1_795_771_000, 0).unwrap();
    let events: Vec<Event> = (0..3)
        .map(|i| Event {
            occurred_at: at,
            event_type: "test_event".into(),
            event_id: uuid::Uuid::now_v7(),
            user_id: uuid::Uuid::now_v7(),
            party_id: uuid::Uuid::nil(),
            video_id: uuid::Uuid::nil(),
            properties: format!(r#"{{"i":{i}}}"#),
        })
        .collect();
    insert_events(&ch, &events).await.unwrap();
    let mut back: Vec<Event> = ch
        .query(
            "SELECT occurred_at, event_type, event_id, user_id, party_id, video_id, properties
             FROM events WHERE event_type = ? ORDER BY properties",
        )
        .bind("test_event")
        .fetch_all()
        .await
        .unwrap();
    back.sort_by(|a, b| a.properties.cmp(&b.properties));
    assert_eq!(back, events);
    let day: String = ch
        .query("SELECT toString(any(event_date)) FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(day, "2026-11-27");
}

#[tokio::test]
async fn the_migrate_command_applies_everything_and_is_repeatable() {
    let env = TestEnv::new().await;
    for _ in 0..2 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
            .arg("migrate")
            .envs(env.env_vars())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    for t in ["emails", "outbox"] {
        assert!(tables.iter().any(|x| x == t), "{tables:?}");
    }
}

#[tokio::test]
async fn a_bad_variable_stops_start_up_with_its_name_and_no_secret() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
        .arg("api")
        .env("DATABASE_MAX_CONNECTIONS", "lots")
        .env("DATABASE_URL", "postgres://u:topsecret@127.0.0.1/x")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATABASE_MAX_CONNECTIONS"), "{err}");
    assert!(!err.contains("topsecret"), "{err}");
}

#[tokio::test]
async fn api_and_realtime_refuse_to_start_without_a_shared_token_key() {
    let env = TestEnv::new().await;
    for role in ["api", "realtime"] {
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
                .arg(role)
                .envs(
                    env.env_vars()
                        .into_iter()
                        .filter(|(k, _)| k != "JWT_SECRET"),
                )
                .env_remove("JWT_SECRET")
                .env("BIND_ADDR", "127.0.0.1:0")
                .output(),
        )
        .await
        .expect("exits at once")
        .unwrap();
        assert_eq!(out.status.code(), Some(2), "{role}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("JWT_SECRET") && err.contains(role), "{err}");
    }
}

#[tokio::test]
async fn database_connections_name_their_process() {
    let env = TestEnv::new().await;
    let pool = wp_shared::db::pool(&env.config).unwrap();
    let name: String = sqlx::query_scalar(
        "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(name.starts_with("watch-party "), "{name}");
    assert!(name.ends_with(&std::process::id().to_string()), "{name}");
}

#[tokio::test]
async fn a_worker_refuses_a_queue_it_cannot_serve() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
        .args(["worker", "--queues", "email=2,nope=1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown queue `nope`"), "{err}");
}

#[tokio::test]
async fn the_all_in_one_process_stops_when_a_role_cannot_start() {
    let env = TestEnv::new().await;
    // Someone else holds the API's port.
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
            .arg("all")
            .envs(env.env_vars())
            .env("BIND_ADDR", &addr)
            .output(),
    )
    .await
    .expect("`all` exits instead of running on without its API")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BIND_ADDR") && err.contains(&addr), "{err}");
}

/// The value of the sample `series` (name and labels, as rendered) in a Prometheus
/// text body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// GETs `path` on `port`: the status and the body.
async fn probe(port: u16, path: &str) -> Option<(u16, String)> {
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = res.status().as_u16();
    Some((status, res.text().await.ok()?))
}

#[tokio::test]
async fn every_role_is_probed_on_its_ops_address_and_ready_follows_redis() {
    use common::{
        eventually,
        process::{self, Spawned},
        proxy::Proxy,
    };
    use std::time::Duration;
    use wp_shared::jobs::SystemJob;

    let env = TestEnv::new().await;
    let proxy = Proxy::to_redis(&env.config).await;
    let mut children = Vec::new();
    let mut ports = Vec::new();
    for (role, args) in [
        ("worker", vec!["worker", "--queues", "system=1"]),
        ("scheduler", vec!["scheduler"]),
        ("realtime", vec!["realtime"]),
    ] {
        let mut cmd = process::binary(&env, &args);
        cmd.env("REDIS_URL", proxy.redis_url())
            .env("JWT_SECRET", "a shared test secret of enough length");
        let child = Spawned::start(cmd, "warn", &[process::OPS]).await;
        ports.push((role, child.port(process::OPS)));
        children.push(child);
    }
    for &(role, port) in &ports {
        let (_, body) = eventually(Duration::from_secs(30), "ready", || async {
            probe(port, "/ready").await.filter(|(s, _)| *s == 200)
        })
        .await;
        assert!(body.contains(r#""status":"ok""#), "{role}: {body}");
        let (s, body) = probe(port, "/health").await.unwrap();
        assert_eq!(s, 200);
        assert!(body.contains(&format!(r#""role":"{role}""#)), "{body}");
        let (s, body) = probe(port, "/metrics").await.unwrap();
        assert_eq!(s, 200);
        assert!(
            body.contains(&format!(r#"build_info{{role="{role}""#)),
            "{role}: {body}"
        );
        assert!(body.contains("process_resident_memory_bytes"), "{body}");
    }
    let worker = ports[0].1;
    let realtime = ports[2].1;
    // The worker counts its jobs (the scheduler's ticks and ours) and sees itself as
    // the queue's one consumer.
    const DONE: &str = r#"jobs_finished_total{outcome="succeeded",queue="system"}"#;
    env.enqueuer.push(SystemJob::VacuumJobs).await.unwrap();
    let before = eventually(Duration::from_secs(20), "jobs counted", || async {
        let (_, m) = probe(worker, "/metrics").await?;
        let done = sample(&m, DONE)?;
        (done >= 1.0
            && sample(&m, r#"job_queue_depth{queue="system",state="workers"}"#) == Some(1.0))
        .then_some(done)
    })
    .await;
    let (_, m) = probe(worker, "/metrics").await.unwrap();
    assert!(
        sample(&m, r#"job_queue_oldest_waiting_seconds{queue="system"}"#).is_some(),
        "{m}"
    );
    let (_, m) = probe(realtime, "/metrics").await.unwrap();
    assert!(m.contains(r#"realtime_node{value="pubsub_up"} 1"#), "{m}");
    assert!(
        m.contains(r#"realtime_node{value="frames_received"} 0"#),
        "{m}"
    );
    assert!(m.contains("realtime_pubsub_lag_seconds_count"), "{m}");
    // The node's clock against Redis's (on one machine: the same clock). One
    // measurement on a loaded machine may be off by half a slow round trip; the node
    // measures every 5 s, and one of its measurements comes within 50 ms.
    eventually(
        Duration::from_secs(20),
        "the clock measured within 50 ms",
        || async {
            let (_, m) = probe(realtime, "/metrics").await?;
            sample(&m, "realtime_clock_offset_seconds").filter(|o| o.abs() < 0.05)
        },
    )
    .await;
    let (_, body) = probe(realtime, "/ready").await.unwrap();
    assert!(body.contains(r#""clock":{"ok":true"#), "{body}");

    // Redis goes away: every role says it is not ready (and stays alive)...
    proxy.down();
    for &(role, port) in &ports {
        let (_, body) = eventually(Duration::from_secs(15), "not ready", || async {
            probe(port, "/ready").await.filter(|(s, _)| *s == 503)
        })
        .await;
        assert!(body.contains(r#""status":"degraded""#), "{role}: {body}");
        let (s, _) = probe(port, "/health").await.unwrap();
        assert_eq!(s, 200, "{role} stays alive");
    }
    // Their own connections too: the worker's queue connection, the node's pub/sub.
    for (port, check) in [(worker, "queue_connection"), (realtime, "pubsub")] {
        eventually(Duration::from_secs(10), check, || async {
            let (_, body) = probe(port, "/ready").await?;
            body.contains(&format!(r#""{check}":{{"ok":false"#))
                .then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // ...and ready again once it is back, without a restart.
    proxy.up();
    for &(role, port) in &ports {
        eventually(Duration::from_secs(30), role, || async {
            probe(port, "/ready").await.filter(|(s, _)| *s == 200)
        })
        .await;
    }
    let (_, m) = probe(realtime, "/metrics").await.unwrap();
    assert_eq!(
        sample(&m, r#"realtime_node{value="pubsub_reconnects"}"#),
        Some(1.0),
        "{m}"
    );
    env.enqueuer.push(SystemJob::VacuumJobs).await.unwrap();
    eventually(Duration::from_secs(20), "jobs after the outage", || async {
        let (_, m) = probe(worker, "/metrics").await?;
        (sample(&m, DONE)? > before).then_some(())
    })
    .await;
    // Every role stops cleanly on SIGTERM (what Kubernetes sends), exit status 0.
    for (child, (role, _)) in children.into_iter().zip(&ports) {
        let (status, _) = child.stop_with_sigterm(Duration::from_secs(30)).await;
        assert!(status.success(), "{role} on SIGTERM: {status:?}");
    }
}

#[tokio::test]
async fn each_role_serves_its_details_on_the_ops_address_only() {
    use common::{
        eventually,
        process::{self, Spawned},
    };
    use std::time::Duration;

    let env = TestEnv::new().await;
    // (role, serves the node's counters on its ops address, a metric it exports)
    for (command, public_stats, metric) in [
        ("api", false, "job_queue_depth"),
        ("all", true, "job_queue_depth"),
        ("realtime", true, "realtime_node"),
    ] {
        let mut cmd = process::binary(&env, &[command]);
        cmd.env("JWT_SECRET", "a shared test secret of enough length");
        let public = if command == "realtime" {
            process::REALTIME
        } else {
            process::API
        };
        let child = Spawned::start(cmd, "warn", &[public, process::OPS]).await;
        let (port, ops) = (child.port(public), child.port(process::OPS));
        let (_, body) = eventually(Duration::from_secs(30), "ready", || async {
            probe(ops, "/ready").await.filter(|(s, _)| *s == 200)
        })
        .await;
        assert!(
            body.contains(r#""postgres":{"ok":true"#),
            "{command}: {body}"
        );
        let (s, m) = probe(ops, "/metrics").await.unwrap();
        assert_eq!(s, 200);
        assert!(m.contains(metric), "{command}: {m}");
        // The public port: a bare status, no metrics, no socket counters.
        let (s, body) = probe(port, "/ready").await.unwrap();
        assert_eq!(s, 200);
        assert!(!body.contains("postgres"), "{body}");
        assert_eq!(probe(port, "/metrics").await.unwrap().0, 404);
        assert_eq!(probe(port, "/ws/stats/").await.unwrap().0, 404);
        let (s, _) = probe(ops, "/ws/stats/").await.unwrap();
        assert_eq!(
            s == 200,
            public_stats,
            "{command}: /ws/stats/ on the ops address"
        );
        // The image's health check: the same environment, asking the ops address.
        let health = |ops: u16| {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
                .arg("health")
                .envs(env.env_vars())
                .env("BIND_ADDR", format!("0.0.0.0:{port}"))
                .env("OPS_BIND_ADDR", format!("0.0.0.0:{ops}"))
                .output()
        };
        let out = health(ops).await.unwrap();
        assert!(out.status.success(), "{command}: {out:?}");
        let (status, _) = child.stop_with_sigterm(Duration::from_secs(30)).await;
        assert!(status.success(), "{command} on SIGTERM: {status:?}");
        let out = health(ops).await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{command} stopped: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unhealthy"),
            "{out:?}"
        );
    }
}

#[tokio::test]
async fn the_api_writes_an_access_line_per_request() {
    use common::process::{self, Spawned};
    use std::time::Duration;

    let env = TestEnv::new().await;
    let mut cmd = process::binary(&env, &["api"]);
    cmd.env("JWT_SECRET", "a shared test secret of enough length");
    let child = Spawned::start(cmd, "warn,access=info", &[process::API]).await;
    let port = child.port(process::API);
    let http = reqwest::Client::new();
    let res = http
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/videos/{}/",
            uuid::Uuid::now_v7()
        ))
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    // Stop it so its output ends.
    let (_, logs) = child.stop_with_sigterm(Duration::from_secs(30)).await;
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "access" && v["request_id"] == "trace-me-1")
        .unwrap_or_else(|| panic!("no access line for the request:\n{logs}"));
    assert_eq!(line["route"], "/api/v1/videos/{id}/", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["status"], status, "{line}");
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert!(line["latency_ms"].is_number(), "{line}");
    assert!(!logs.contains('\u{1b}'), "no colour codes in piped output");
}

/// Server connections PgBouncer holds to `db`, and clients it serves for it, from the
/// admin console.
fn bouncer_counts(b: &common::pgbouncer::PgBouncer, db: &str) -> (usize, usize) {
    let count = |what: &str| {
        b.show(what)
            .iter()
            .filter(|r| r.get("database").map(String::as_str) == Some(db))
            .count()
    };
    (count("SERVERS"), count("CLIENTS"))
}

#[tokio::test]
async fn the_platform_runs_behind_pgbouncer_on_a_few_server_connections() {
    use common::{eventually, pgbouncer::PgBouncer, ws::Ws};
    use reqwest::{Method, StatusCode};
    use serde_json::json;
    use std::time::Duration;
    use wp_shared::jobs::Queue;

    let pg_port: u16 = common::pg_base()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    // Transaction mode (PgBouncer 1.21+): 3 server connections for every process's
    // pool. Session mode (an older PgBouncer, such as Debian 12's 1.18) gives each
    // client its own server connection for as long as it lives, so it gets enough.
    let probe = PgBouncer::start(pg_port, 1).await;
    let (mode, pool_size) = (
        probe.mode,
        if probe.mode == "transaction" { 3 } else { 100 },
    );
    drop(probe);
    let bouncer = PgBouncer::start(pg_port, pool_size).await;
    assert_eq!(bouncer.mode, mode);
    let env = TestEnv::behind(&bouncer, &[("DATABASE_MAX_CONNECTIONS", "12")]).await;
    let db = format!("wp_test_{}", env.id);
    let app = env.spawn_api().await;
    let node1 = env.spawn_node().await;
    let node2 = env.spawn_node().await;
    let _workers = env.spawn_workers(&[(Queue::Search, 1)]).await;

    // A burst of writes from eight users at once, each a transaction with triggers.
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(env.create_user(&format!("pooled{i}")).await);
    }
    let results = futures::future::join_all(users.iter().flat_map(|u| {
        let app = &app;
        (0..5).map(move |j| async move {
            app.post_json(
                "/api/social/groups/",
                Some(&u.token),
                json!({"name": format!("Pooled {} {j}", u.username), "description": "x"}),
            )
            .await
        })
    }))
    .await;
    for (s, b) in &results {
        assert_eq!(*s, StatusCode::CREATED, "{b}");
    }
    let (servers, clients) = bouncer_counts(&bouncer, &db);
    if mode == "transaction" {
        assert!(
            servers <= pool_size as usize,
            "{servers} server connections"
        );
        assert!(
            clients > 2 * pool_size as usize,
            "{clients} clients shared {servers} server connections"
        );
    }

    // The search worker's LISTEN has its own session (DATABASE_DIRECT_URL): with no
    // scheduler running, only its wake-ups fold a change into the index.
    let found = |q: &'static str| {
        let (app, token) = (&app, users[0].token.clone());
        async move {
            let (s, b) = app
                .call(
                    Method::GET,
                    &format!("/api/search/?q={q}&type=groups"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b["data"]["count"].as_u64().unwrap_or(0)
        }
    };
    eventually(Duration::from_secs(10), "the burst indexed", || async {
        (found("pooled").await == 40).then_some(())
    })
    .await;
    let (s, b) = app
        .post_json(
            "/api/social/groups/",
            Some(&users[1].token),
            json!({"name": "Afterwards", "description": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    eventually(
        Duration::from_secs(3),
        "a wake-up folded the new group",
        || async { (found("afterwards").await == 1).then_some(()) },
    )
    .await;

    // A party across two nodes: joins, chat stored and relayed, through the pooler.
    let (host, member) = (&users[2], &users[3]);
    let (s, party) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Pooled", "external_url": "https://example.com/a.mp4"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{party}");
    let pid = party["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = app
        .post_json(
            &format!("/api/parties/{pid}/join/"),
            Some(&member.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (mut h, _) = Ws::connect(&node1, &pid, &host.token).await;
    let (mut m, _) = Ws::connect(&node2, &pid, &member.token).await;
    h.expect("user_joined").await;
    for i in 0..20 {
        h.send("chat_message", json!({"content": format!("line {i}")}))
            .await;
    }
    for i in 0..20 {
        let f = m.expect("chat_message").await;
        assert_eq!(f["data"]["content"], format!("line {i}"));
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM party_messages")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(stored, 20);

    let (servers, _) = bouncer_counts(&bouncer, &db);
    // PostgreSQL's own view: the pooler's connections and the direct session
    // (the search listener), nothing else.
    let backends: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .bind(&db)
            .fetch_one(&env.db)
            .await
            .unwrap();
    if mode == "transaction" {
        assert!(servers <= pool_size as usize, "{servers}");
        assert!(
            backends <= i64::from(pool_size) + 2,
            "{backends} backends for {pool_size} pooled connections and one LISTEN"
        );
    }
    assert!(
        !bouncer.log().contains("prepared statement"),
        "{}",
        bouncer.log()
    );
}

#[tokio::test]
async fn two_migrate_commands_at_once_apply_each_migration_once() {
    let env = TestEnv::new().await;
    let fresh = format!("wp_test_{}_fresh", env.id);
    sqlx::query(&format!("CREATE DATABASE {fresh}"))
        .execute(&env.db)
        .await
        .unwrap();
    let url = format!("{}/{fresh}", common::pg_base());
    // Two replicas starting together (a rollout): each runs `migrate` first.
    let run = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
            .arg("migrate")
            .envs(env.env_vars())
            .env("DATABASE_URL", &url)
            .env("DATABASE_DIRECT_URL", &url)
            .output()
    };
    let (a, b) = tokio::join!(run(), run());
    for out in [a.unwrap(), b.unwrap()] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64;
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let (applied, ok): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE success) FROM _sqlx_migrations")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        (applied, ok),
        (files, files),
        "each migration once, all applied"
    );
    db.close().await;
    sqlx::query(&format!("DROP DATABASE {fresh} WITH (FORCE)"))
        .execute(&env.db)
        .await
        .unwrap();
}

/// SIGTERM drains: a request whose body is still arriving when the API is told to stop
/// is finished and answered (and its write kept); new connections are refused from
/// then on; the process exits 0 once the request is done.
#[tokio::test]
async fn the_api_finishes_a_request_in_flight_when_told_to_stop() {
    use common::{
        eventually,
        process::{self, Spawned},
    };
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const SECRET: &str = "a shared test secret of enough length";
    let env = TestEnv::with_vars(&[("JWT_SECRET", SECRET)]).await;
    let host = env.create_user("drainhost").await;
    let mut api = Spawned::start(process::binary(&env, &["api"]), "warn", &[process::API]).await;
    let port = api.port(process::API);
    // Serving (the listening line comes just before the server accepts).
    eventually(Duration::from_secs(30), "the API up", || async {
        probe(port, "/health").await.filter(|(s, _)| *s == 200)
    })
    .await;
    // Half a request: its headers and the first part of its body.
    let body = serde_json::json!({
        "title": "Drained, not dropped",
        "external_url": "https://example.com/v.mp4",
    })
    .to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(
        format!(
            "POST /api/parties/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{first}",
            host.token,
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.terminate();
    // Told to stop, it takes no new connection, and waits for ours.
    eventually(
        Duration::from_secs(10),
        "new connections refused",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        api.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    tcp.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let exit = tokio::time::timeout(Duration::from_secs(30), api.child.wait())
        .await
        .expect("exits once the request is done")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM parties WHERE title = 'Drained, not dropped'")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(kept, 1, "the answered write is stored");
}
