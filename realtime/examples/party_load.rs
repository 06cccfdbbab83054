//! Load generator for the party socket: N sockets in M parties against a running node,
//! a share of them sending. Reports connect time, server memory per socket (from the
//! node's RSS, read from /proc), delivered frames per second and fan-out latency
//! (sender's send to each member's receipt, on one clock: the tool's).
//!
//! Setup goes straight to PostgreSQL (users, sessions, parties, memberships in bulk) and
//! tokens are minted with the node's JWT key, so the node must run with the same
//! environment (`DATABASE_URL`, `JWT_SECRET`, `REDIS_PREFIX`). `deploy/bench/party-load.sh`
//! runs the scenarios of docs/benchmarks.md.
//!
//! ```text
//! cargo run --release -p watch-party-realtime --example party_load -- \
//!   --url ws://127.0.0.1:8198 --server-pid PID --parties 10 --members 1000 \
//!   --senders 1 --kind control --rate 5 --seconds 10
//! ```
//! `--kind`: `control` (the host seeks; fan-out latency of control frames), `chat`
//! (stored messages; latency), `typing` (no storage; throughput).

#![expect(
    clippy::print_stdout,
    reason = "a command-line tool that prints its report"
)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

struct Args {
    url: String,
    server_pid: Option<u32>,
    parties: usize,
    members: usize,
    senders: usize,
    kind: String,
    rate: f64,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        url: "ws://127.0.0.1:8198".into(),
        server_pid: None,
        parties: 10,
        members: 100,
        senders: 1,
        kind: "control".into(),
        rate: 5.0,
        seconds: 10,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let (k, val) = (pair[0].as_str(), pair.get(1).cloned().unwrap_or_default());
        match k {
            "--url" => a.url = val,
            "--server-pid" => a.server_pid = val.parse().ok(),
            "--parties" => a.parties = val.parse().expect("--parties"),
            "--members" => a.members = val.parse().expect("--members"),
            "--senders" => a.senders = val.parse().expect("--senders"),
            "--kind" => a.kind = val,
            "--rate" => a.rate = val.parse().expect("--rate"),
            "--seconds" => a.seconds = val.parse().expect("--seconds"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        a.senders <= a.members,
        "--senders is per party, at most --members"
    );
    a
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    let config = wp_shared::Config::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = sqlx::PgPool::connect(&config.database_url).await?;
    let run = &Uuid::new_v4().simple().to_string()[..6];
    let total = a.parties * a.members;
    println!(
        "setup: {} parties x {} members = {total} sockets, {} sender(s) per party, kind {}, {}/s each, {} s",
        a.parties, a.members, a.senders, a.kind, a.rate, a.seconds
    );

    // Users, sessions, parties and memberships in bulk.
    let t = Instant::now();
    let users: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "WITH u AS (
            INSERT INTO users (id, username, email, password_hash, email_verified_at)
            SELECT gen_random_uuid(), 'ld' || $1 || '_' || i, 'ld' || $1 || '_' || i || '@example.com', '!', now()
            FROM generate_series(1, $2::int) i RETURNING id)
         INSERT INTO sessions (id, user_id, expires_at)
         SELECT gen_random_uuid(), id, now() + interval '1 day' FROM u RETURNING user_id, id",
    )
    .bind(run)
    .bind(i32::try_from(total)?)
    .fetch_all(&db)
    .await?;
    let mut parties = Vec::new();
    for (p, chunk) in users.chunks(a.members).enumerate() {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO parties (id, host_id, title, external_url, invite_code, max_members, control_mode)
             VALUES ($1, $2, $3, 'https://example.com/load.mp4', $4, 5000, 'everyone')",
        )
        .bind(id)
        .bind(chunk[0].0)
        .bind(format!("load {run} {p}"))
        .bind(format!("L{run}{p}"))
        .execute(&db)
        .await?;
        let ids: Vec<Uuid> = chunk.iter().map(|u| u.0).collect();
        sqlx::query(
            "INSERT INTO party_members (party_id, user_id, role)
             SELECT $1, u, CASE WHEN u = $3 THEN 'host' ELSE 'member' END FROM unnest($2::uuid[]) u",
        )
        .bind(id)
        .bind(&ids)
        .bind(chunk[0].0)
        .execute(&db)
        .await?;
        parties.push((id, chunk.to_vec()));
    }
    println!("setup done in {:.1} s", t.elapsed().as_secs_f64());

    let rss_before = a.server_pid.and_then(rss_kib);
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Connect everyone, 256 at a time.
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut senders = Vec::new();
    let mut idle = Vec::new();
    let mut readers = Vec::new();
    for (party, members) in &parties {
        for (i, (user, session)) in members.iter().enumerate() {
            let (token, _) = wp_core::account::tokens::issue_access(&config, *user, *session)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let url = format!("{}/ws/party/{party}/?token={token}", a.url);
            let permit = sem.clone().acquire_owned().await?;
            let ws = loop {
                match tokio_tungstenite::connect_async_with_config(&url, None, true).await {
                    Ok((ws, _)) => break ws,
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("connect failed: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            drop(permit);
            let (sink, mut stream) = ws.split();
            // Wait for the snapshot so the socket is fully registered.
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"party_state\"")
                {
                    break;
                }
            }
            let (received, latencies, measuring, stop) = (
                received.clone(),
                latencies.clone(),
                measuring.clone(),
                stop.clone(),
            );
            let marker = match a.kind.as_str() {
                "control" => "\"video_state\"",
                "chat" => "\"chat_message\"",
                _ => "\"typing\"",
            };
            readers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    tokio::select! {
                        () = stop.notified() => break,
                        m = stream.next() => {
                            let t = match m {
                                Some(Ok(Message::Text(t))) => t,
                                Some(Ok(_)) => continue, // pongs
                                _ => break,
                            };
                            if !measuring.load(Ordering::Relaxed) || !t.contains(marker) {
                                continue;
                            }
                            received.fetch_add(1, Ordering::Relaxed);
                            // The send time (µs since the tool started) rides in the frame.
                            let now = start.elapsed().as_micros() as u64;
                            let sent = t.split("\"position\":").nth(1)
                                .or_else(|| t.split("lt:").nth(1))
                                .and_then(|s| s.split(|c: char| !(c.is_ascii_digit() || c == '.')).next())
                                .and_then(|s| s.parse::<f64>().ok());
                            if let Some(sent) = sent {
                                let sent_us = if marker == "\"video_state\"" { (sent * 1e6) as u64 } else { sent as u64 };
                                mine.push(now.saturating_sub(sent_us));
                            }
                        }
                    }
                }
                latencies.lock().await.extend(mine);
            }));
            if i < a.senders {
                senders.push(sink);
            } else {
                idle.push(sink);
            }
        }
    }
    let connect_secs = t.elapsed().as_secs_f64();
    // Quiet sockets ping every 30 s, as clients do, so the node keeps them.
    let pinger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            for s in &mut idle {
                let _ = s.send(Message::Ping(Default::default())).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = a.server_pid.and_then(rss_kib);
    println!("connected {total} sockets in {connect_secs:.1} s");
    if let (Some(b), Some(af)) = (rss_before, rss_after) {
        println!(
            "server RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per socket",
            b as f64 / 1024.0,
            af as f64 / 1024.0,
            (af.saturating_sub(b)) as f64 / total as f64
        );
    }

    // Send.
    measuring.store(true, Ordering::Relaxed);
    let t = Instant::now();
    let deadline = t + Duration::from_secs(a.seconds);
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let kind = a.kind.clone();
    let mut tasks = Vec::new();
    for (i, mut sink) in senders.into_iter().enumerate() {
        let kind = kind.clone();
        // Senders start at spread-out phases, as independent people would, instead of
        // all sending on the same tick.
        let phase = interval.mul_f64((i as f64 * 0.618_033_988_75).fract());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            let mut tick = tokio::time::interval(interval);
            let mut n = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                n += 1;
                let us = start.elapsed().as_micros() as u64;
                let frame = match kind.as_str() {
                    "control" => serde_json::json!({"type": "video_control", "timestamp": 0,
                        "data": {"action": "seek", "position": us as f64 / 1e6}}),
                    "chat" => serde_json::json!({"type": "chat_message", "timestamp": 0,
                        "data": {"content": format!("lt:{us} message {n}")}}),
                    _ => serde_json::json!({"type": "typing", "timestamp": 0, "data": {"is_typing": n.is_multiple_of(2)}}),
                };
                if sink.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
            }
            sink
        }));
    }
    let mut sinks = Vec::new();
    for task in tasks {
        sinks.push(task.await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    measuring.store(false, Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    let n = received.load(Ordering::Relaxed);
    stop.notify_waiters();
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
    }
    let mut l = latencies.lock().await.clone();
    l.sort_unstable();
    println!(
        "delivered {n} frames in {secs:.1} s: {:.0} frames/s",
        n as f64 / secs
    );
    if !l.is_empty() {
        println!(
            "fan-out latency (send -> receipt) over {} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.len(),
            pct(&l, 0.5),
            pct(&l, 0.99),
            pct(&l, 1.0)
        );
    }
    println!("connect errors: {}", errors.load(Ordering::Relaxed));
    drop(sinks);
    pinger.abort();
    Ok(())
}
