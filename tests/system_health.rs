//! `GET /api/admin/system-health/` against the real services: every dependency checked
//! with its latency, the queues with live workers and throughput counted by the
//! workers, the realtime nodes with their sockets, and an overall status whose reasons
//! are named when something is wrong (a mail server that does not answer, a queue no
//! worker consumes, no realtime node).

mod common;

use std::time::Duration;

use common::{MailEnv, TestEnv, eventually, ws::Ws};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

async fn health(app: &common::TestApp, token: &str) -> (StatusCode, Value) {
    app.call(Method::GET, "/api/admin/system-health/", Some(token), None)
        .await
}

/// Everything up: every queue consumed, a node with a socket, SMTP answering → `ok`.
/// A finished job is counted in the shared per-minute counter, and the counters of
/// past minutes become the throughput.
#[tokio::test]
async fn a_healthy_platform_reports_ok_with_its_figures() {
    common::init_logs();
    let m = MailEnv::new().await;
    let (env, app) = (&m.env, &m.app);
    let pools: Vec<(Queue, usize)> = Queue::ALL.iter().map(|q| (*q, 1)).collect();
    let _workers = env.spawn_workers(&pools).await;
    let node = env.spawn_node().await;
    let admin = env.create_admin("root").await;
    let host = env.create_user("host").await;
    let mods = env.create_moderator("mod_mo").await;
    for u in [&host, &mods] {
        let (s, _) = health(app, &u.token).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "admins only");
    }

    let (s, b) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Health check", "external_url": "https://example.com/v.mp4"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let party = b["data"]["id"].as_str().unwrap().to_owned();
    let (_socket, _) = Ws::connect(&node, &party, &host.token).await;

    // A job runs (a verification email through the email queue) and is counted.
    let (s, b) = app
        .post_json(
            "/api/auth/register/",
            None,
            json!({"username": "newbie", "email": "newbie@example.com",
                   "password": common::STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    m.email("newbie@example.com", "erif").await;
    let prefix = env.config.redis_prefix.clone();
    let mut redis = redis::Client::open(env.config.redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let counted = eventually(Duration::from_secs(10), "the job counted", || {
        let mut redis = redis.clone();
        let prefix = prefix.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:jobs:finished:*"))
                .query_async(&mut redis)
                .await
                .unwrap();
            let mut n = 0;
            for k in keys {
                let v: Option<u64> = redis::cmd("HGET")
                    .arg(&k)
                    .arg("email:succeeded")
                    .query_async(&mut redis)
                    .await
                    .unwrap();
                n += v.unwrap_or(0);
            }
            (n >= 1).then_some(n)
        }
    })
    .await;
    assert!(counted >= 1);
    // Past minutes make the throughput: 10 sends two minutes ago → 2 a minute over 5.
    let two_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60
        - 2;
    redis::cmd("HINCRBY")
        .arg(format!("{prefix}:jobs:finished:{two_ago}"))
        .arg("push:succeeded")
        .arg(10)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();

    // The node refreshes its key every 5 s: wait for it to count the socket.
    let b = eventually(Duration::from_secs(15), "the node's socket", || async {
        let (s, b) = health(app, &admin.token).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        (b["data"]["realtime"]["sockets"] == 1).then_some(b)
    })
    .await;
    let d = &b["data"];
    assert_eq!(d["status"], "ok", "{b}");
    assert_eq!(d["problems"], json!([]));
    for dep in ["postgres", "redis", "clickhouse", "smtp", "storage"] {
        assert_eq!(d["dependencies"][dep]["ok"], true, "{dep}: {b}");
        assert!(d["dependencies"][dep]["latency_ms"].as_f64().unwrap() >= 0.0);
    }
    assert_eq!(d["realtime"]["parties"], 1);
    assert_eq!(d["realtime"]["nodes"].as_array().unwrap().len(), 1);
    let queues = d["queues"].as_array().unwrap();
    assert_eq!(queues.len(), Queue::ALL.len());
    for q in queues {
        // MailEnv runs its own email pool: two processes consume that queue. A pool
        // that rebuilt its connection mid-test (a loaded CI machine) also shows its
        // previous registration until the missed-heartbeat window lapses: at least.
        let want = if q["queue"] == "email" { 2 } else { 1 };
        let live = q["workers"].as_u64().unwrap_or(0);
        assert!(live >= want && live <= 2 * want, "{q}");
    }
    let push = queues.iter().find(|q| q["queue"] == "push").unwrap();
    assert_eq!(push["succeeded_per_minute"], 2.0, "{push}");
    assert_eq!(d["outbox"]["pending"].as_i64().map(|p| p >= 0), Some(true));
}

/// A mail server that does not answer, no worker on any queue and no realtime node:
/// `degraded`, each reason named; the vital services still `ok`.
#[tokio::test]
async fn a_broken_dependency_degrades_the_status_and_says_why() {
    common::init_logs();
    // Port 9 (discard) on localhost: nothing listens.
    let env = TestEnv::with_vars(&[("SMTP_URL", "smtp://127.0.0.1:9")]).await;
    let app = env.spawn_api().await;
    let admin = env.create_admin("root").await;
    let (s, b) = health(&app, &admin.token).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = &b["data"];
    assert_eq!(d["status"], "degraded", "{b}");
    assert_eq!(d["dependencies"]["smtp"]["ok"], false);
    assert!(
        d["dependencies"]["smtp"]["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9"),
        "{b}"
    );
    assert_eq!(d["dependencies"]["postgres"]["ok"], true);
    let problems: Vec<&str> = d["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("smtp is unreachable")),
        "{b}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("queue email: no worker process is alive")),
        "{b}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("no realtime node")),
        "{b}"
    );
}
