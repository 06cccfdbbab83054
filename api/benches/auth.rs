//! Login and refresh throughput through the real HTTP stack (server and client in one
//! process on this machine), and the cost of one argon2id hash.
//!
//! Run: `SQLX_OFFLINE=true cargo bench -p watch-party-api --bench auth`
//! Knobs: BENCH_SECS (default 10), BENCH_CONCURRENCY (default 16), DATABASE_URL.
//! Rate limits are multiplied away for the run (RATE_LIMIT_MULTIPLIER).
//! Results: docs/benchmarks.md.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use watch_party_api::{App, AppState, auth::password};
use wp_shared::Config;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, mut lat: Vec<Duration>, secs: f64) {
    lat.sort();
    println!(
        "{name:<8} {:>8.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests)",
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = env_usize("BENCH_SECS", 10) as u64;
    let conc = env_usize("BENCH_CONCURRENCY", 16);
    let prefix = format!("authbench{}", rand::random::<u32>());
    let config =
        Config::from_lookup(|k| match k {
            "REDIS_PREFIX" => Some(prefix.clone()),
            "RATE_LIMIT_MULTIPLIER" => Some("1000000".into()),
            "DATABASE_URL" => Some(std::env::var("DATABASE_URL").unwrap_or_else(|_| {
                "postgres://postgres@127.0.0.1:5432/watch_party_bench".to_owned()
            })),
            _ => std::env::var(k).ok(),
        })?;
    wp_shared::db::migrate(&config).await?;

    // 1. One argon2id hash.
    let mut hashes = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        password::hash("a fine long passphrase".into()).await?;
        hashes.push(t.elapsed());
    }
    hashes.sort();
    println!(
        "argon2id (m=19 MiB, t=2, p=1): median {:.1} ms per hash",
        pct(&hashes, 0.5)
    );

    let state = AppState::from(App::new(config).await?);
    let db = state.db.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(watch_party_api::serve(
        state,
        listener,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();

    let run = format!("{:x}", rand::random::<u32>());
    let mut users = Vec::new();
    for i in 0..conc {
        let name = format!("b{run}{i}");
        let res: Value = client
            .post(format!("{base}/api/auth/register/"))
            .json(&json!({"username": name, "email": format!("{name}@bench.example"), "password": "violet-harbor-tunnel-93"}))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(res["success"] == true, "register failed: {res}");
        users.push(name);
    }
    println!("{conc} concurrent clients, {secs} s per measurement");

    // 2. Login.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for name in users.clone() {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/api/auth/login/"))
                    .json(&json!({"username": name, "password": "violet-harbor-tunnel-93"}))
                    .send()
                    .await
                    .expect("login");
                assert_eq!(res.status(), 200);
                let _ = res.bytes().await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    report("login", lat, start.elapsed().as_secs_f64());

    // 3. Refresh: each client walks its own rotation chain.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for name in users {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let res: Value = client
                .post(format!("{base}/api/auth/login/"))
                .json(&json!({"username": name, "password": "violet-harbor-tunnel-93"}))
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("json");
            let mut token = res["data"]["refresh_token"]
                .as_str()
                .expect("token")
                .to_owned();
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let res: Value = client
                    .post(format!("{base}/api/auth/refresh/"))
                    .json(&json!({"refresh_token": token}))
                    .send()
                    .await
                    .expect("refresh")
                    .json()
                    .await
                    .expect("json");
                token = res["data"]["refresh_token"]
                    .as_str()
                    .expect("rotated token")
                    .to_owned();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    report("refresh", lat, start.elapsed().as_secs_f64());

    sqlx::query("DELETE FROM users WHERE username LIKE $1")
        .bind(format!("b{run}%"))
        .execute(&db)
        .await?;
    Ok(())
}
