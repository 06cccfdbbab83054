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
