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
//! (stored messages; latency), `typing` (no storage; throughput), `poll` (each party has
//! a poll; every sender votes once, at its own moment within `--seconds` when `--rate` is
//! 1/`--seconds`: how long after the last vote each member sees the final counts, and
//! how many `poll_updated` frames a member gets per second).

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

use std::collections::BTreeMap;

use futures::{SinkExt, StreamExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
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
    /// Handshakes in flight at once while connecting (a join storm at 50).
    handshakes: usize,
    /// Frames per second this process reads at the most, over all its sockets (0: as
    /// fast as they come): slow readers, as phones on slow links are.
    read_rate: f64,
    /// Senders start as soon as their socket is up, while the others still join, and
    /// latencies are measured from then on.
    during_joins: bool,
    /// Only set up: write the parties' socket URLs (with tokens, the host's first) as
    /// JSON to this file and exit, for a client that is not ours
    /// (`deploy/bench/node/fanout.mjs`).
    setup_only: Option<String>,
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
        handshakes: 50,
        read_rate: 0.0,
        during_joins: false,
        setup_only: None,
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
            "--handshakes" => a.handshakes = val.parse().expect("--handshakes"),
            "--read-rate" => a.read_rate = val.parse().expect("--read-rate"),
            "--during-joins" => a.during_joins = val == "true",
            "--setup-only" => a.setup_only = Some(val),
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
    // A poll in each party (`--kind poll`): four options.
    let mut polls = Vec::new();
    if a.kind == "poll" {
        for (party, members) in &parties {
            let poll = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO party_polls (id, party_id, creator_id, question) VALUES ($1, $2, $3, 'Load?')",
            )
            .bind(poll)
            .bind(party)
            .bind(members[0].0)
            .execute(&db)
            .await?;
            let options: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
            sqlx::query(
                "INSERT INTO party_poll_options (id, poll_id, position, text)
                 SELECT o, $1, (n - 1)::smallint, 'option ' || n FROM unnest($2::uuid[]) WITH ORDINALITY AS t (o, n)",
            )
            .bind(poll)
            .bind(&options)
            .execute(&db)
            .await?;
            polls.push((poll, options));
        }
    }
    println!("setup done in {:.1} s", t.elapsed().as_secs_f64());
    if let Some(file) = &a.setup_only {
        let mut out = Vec::new();
        for (party, members) in &parties {
            let mut urls = Vec::new();
            for (user, session) in members {
                let (token, _) = wp_core::account::tokens::issue_access(&config, *user, *session)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                urls.push(format!("{}/ws/party/{party}/?token={token}", a.url));
            }
            out.push(serde_json::json!({ "party": party, "urls": urls }));
        }
        std::fs::write(file, serde_json::to_string(&out)?)?;
        println!("wrote {} parties to {file}", out.len());
        return Ok(());
    }

    let rss_before = a.server_pid.and_then(rss_kib);
    let start = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<(u64, u64, bool)>::new()));
    let closes = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let stop = CancellationToken::new();
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = Reads::start(a.read_rate);
    let marker: &'static str = match a.kind.as_str() {
        "control" => "\"video_state\"",
        "chat" => "\"chat_message\"",
        "poll" => "\"poll_updated\"",
        _ => "\"typing\"",
    };
    // `--kind poll`: the voters a party's final counts show, the moment each party's
    // last vote was sent (µs since start), and per socket: when it saw the final counts
    // and the most `poll_updated` frames it got within one second.
    let final_voters = a.senders.min(a.members) as u64;
    let last_vote: Arc<Vec<AtomicU64>> =
        Arc::new((0..parties.len()).map(|_| AtomicU64::new(0)).collect());
    let finals = Arc::new(Mutex::new(Vec::<(usize, Option<u64>, u64)>::new()));

    // Connect everyone: each socket its own task, `--handshakes` in flight at once (the
    // host of each party first), every socket reading from the moment it is up.
    let t = Instant::now();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(a.handshakes));
    let (sinks_tx, mut sinks_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut readers = Vec::new();
    let order = (0..a.members).flat_map(|i| (0..parties.len()).map(move |p| (p, i)));
    for (p, i) in order {
        let (party, members) = &parties[p];
        let (user, session) = members[i];
        let (token, _) = wp_core::account::tokens::issue_access(&config, user, session)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let url = format!("{}/ws/party/{party}/?token={token}", a.url);
        let permit = handshakes.clone().acquire_owned().await?;
        let (errors, ready, sinks_tx, reads) = (
            errors.clone(),
            ready.clone(),
            sinks_tx.clone(),
            reads.clone(),
        );
        let (received, latencies, measuring, stop, closes) = (
            received.clone(),
            latencies.clone(),
            measuring.clone(),
            stop.clone(),
            closes.clone(),
        );
        let finals = finals.clone();
        readers.push(tokio::spawn(async move {
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
            let _ = sinks_tx.send((p, i, sink));
            drop(sinks_tx); // the collection below ends when every socket is up

            let mut mine = Vec::new();
            // `--kind poll`: when the final counts came, and frames per second.
            let mut final_at = None;
            let mut per_sec = BTreeMap::<u64, u64>::new();
            // When this socket had its snapshot: controls sent before then reach it
            // queued behind the join (counted apart from those to members already in).
            let mut snapshot_at = None;
            let end = loop {
                reads.take().await;
                let m = tokio::select! {
                    () = stop.cancelled() => break None,
                    m = stream.next() => m,
                };
                let t = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => {
                        break Some(c.map_or("close without a code".to_owned(), |c| {
                            format!("{} {}", u16::from(c.code), c.reason)
                        }));
                    }
                    Some(Ok(_)) => continue, // pongs
                    Some(Err(e)) => break Some(format!("error: {e}")),
                    None => break Some("ended without a close".to_owned()),
                };
                if snapshot_at.is_none() && t.contains("\"party_state\"") {
                    snapshot_at = Some(start.elapsed().as_micros() as u64);
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                if !measuring.load(Ordering::Relaxed) || !t.contains(marker) {
                    continue;
                }
                received.fetch_add(1, Ordering::Relaxed);
                // The send time (µs since the tool started) rides in the frame.
                let now = start.elapsed().as_micros() as u64;
                if marker == "\"poll_updated\"" {
                    *per_sec.entry(now / 1_000_000).or_default() += 1;
                    let voters = serde_json::from_str::<serde_json::Value>(&t)
                        .ok()
                        .and_then(|f| f["data"]["voters_count"].as_u64());
                    if final_at.is_none() && voters == Some(final_voters) {
                        final_at = Some(now);
                    }
                    continue;
                }
                let sent = t
                    .split("\"position\":")
                    .nth(1)
                    .or_else(|| t.split("lt:").nth(1))
                    .and_then(|s| s.split(|c: char| !(c.is_ascii_digit() || c == '.')).next())
                    .and_then(|s| s.parse::<f64>().ok());
                if let Some(sent) = sent {
                    let sent_us = if marker == "\"video_state\"" {
                        (sent * 1e6) as u64
                    } else {
                        sent as u64
                    };
                    let in_already = snapshot_at.is_some_and(|at| sent_us >= at);
                    mine.push((sent_us, now.saturating_sub(sent_us), in_already));
                }
            };
            latencies.lock().await.extend(mine);
            if marker == "\"poll_updated\"" {
                let busiest = per_sec.values().copied().max().unwrap_or(0);
                finals.lock().await.push((p, final_at, busiest));
            }
            if let Some(why) = end {
                *closes.lock().await.entry(why).or_default() += 1;
            }
        }));
    }
    drop(sinks_tx);
    let mut senders = Vec::new();
    let mut idle = Vec::new();
    let mut sending = Vec::new();
    let send = Send {
        kind: a.kind.clone(),
        interval: Duration::from_secs_f64(1.0 / a.rate),
        start,
        polls: Arc::new(polls),
        last_vote: last_vote.clone(),
    };
    if a.during_joins {
        measuring.store(true, Ordering::Relaxed);
    }
    while let Some((p, i, sink)) = sinks_rx.recv().await {
        if i >= a.senders {
            idle.push(sink);
        } else if a.during_joins {
            sending.push(send.spawn(sink, p, sending.len(), start_deadline(a.seconds)));
        } else {
            senders.push((p, sink));
        }
    }
    // Every socket is up; wait for their snapshots (slow readers take a while).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < total as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = t.elapsed().as_secs_f64();
    let joined_us = start.elapsed().as_micros() as u64;
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
    println!(
        "connected {total} sockets in {connect_secs:.1} s ({} handshakes at a time); {} snapshots",
        a.handshakes,
        ready.load(Ordering::Relaxed)
    );
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
    let deadline = start_deadline(a.seconds);
    for (i, (p, sink)) in senders.into_iter().enumerate() {
        sending.push(send.spawn(sink, p, i, deadline));
    }
    let mut sinks = Vec::new();
    for task in sending {
        sinks.push(task.await?);
    }
    // Polls: the last counts may wait up to one throttle interval.
    let settle = if a.kind == "poll" { 2000 } else { 500 };
    tokio::time::sleep(Duration::from_millis(settle)).await;
    measuring.store(false, Ordering::Relaxed);
    let secs = if a.during_joins {
        start.elapsed().as_secs_f64()
    } else {
        t.elapsed().as_secs_f64()
    };
    let n = received.load(Ordering::Relaxed);
    stop.cancel();
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
    }
    let closes = closes.lock().await.clone();
    let lost: u64 = closes.values().sum();
    println!("sockets closed by the server or lost before the end: {lost} {closes:?}");
    let all = latencies.lock().await.clone();
    println!(
        "delivered {n} frames in {secs:.1} s: {:.0} frames/s",
        n as f64 / secs
    );
    let report = |what: &str, mut l: Vec<u64>| {
        if l.is_empty() {
            return;
        }
        l.sort_unstable();
        println!(
            "fan-out latency (send -> receipt){what} over {} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.len(),
            pct(&l, 0.5),
            pct(&l, 0.99),
            pct(&l, 1.0)
        );
    };
    report("", all.iter().map(|(_, l, _)| *l).collect());
    if a.during_joins {
        let (during, after): (Vec<&(u64, u64, bool)>, Vec<_>) =
            all.iter().partition(|(sent, _, _)| *sent < joined_us);
        report(
            " while joining, to members already in",
            during.iter().filter(|d| d.2).map(|(_, l, _)| *l).collect(),
        );
        report(
            " while joining, to members still joining",
            during.iter().filter(|d| !d.2).map(|(_, l, _)| *l).collect(),
        );
        report(
            " once all joined",
            after.iter().map(|(_, l, _)| *l).collect(),
        );
    }
    if a.kind == "poll" {
        let finals = finals.lock().await.clone();
        let missing = finals.iter().filter(|f| f.1.is_none()).count();
        let mut after: Vec<u64> = finals
            .iter()
            .filter_map(|(p, at, _)| {
                Some(
                    at.as_ref()?
                        .saturating_sub(last_vote[*p].load(Ordering::Relaxed)),
                )
            })
            .collect();
        after.sort_unstable();
        let mut busiest: Vec<u64> = finals.iter().map(|f| f.2).collect();
        busiest.sort_unstable();
        println!(
            "final counts ({final_voters} voters) seen by {} of {} sockets ({missing} never saw them); after the party's last vote was sent: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            after.len(),
            finals.len(),
            pct(&after, 0.5),
            pct(&after, 0.99),
            pct(&after, 1.0)
        );
        println!(
            "poll_updated frames per member in its busiest second: median {}, max {}",
            busiest.get(busiest.len() / 2).copied().unwrap_or(0),
            busiest.last().copied().unwrap_or(0)
        );
    }
    println!("connect errors: {}", errors.load(Ordering::Relaxed));
    drop(sinks);
    pinger.abort();
    Ok(())
}

/// When the senders stop: `seconds` from now.
fn start_deadline(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

/// How the senders send.
struct Send {
    kind: String,
    interval: Duration,
    start: Instant,
    /// Per party (`--kind poll`): its poll and the poll's options.
    polls: Arc<Vec<(Uuid, Vec<Uuid>)>>,
    /// Per party: when its last vote was sent (µs since start).
    last_vote: Arc<Vec<AtomicU64>>,
}

impl Send {
    /// Sends from `sink` at the rate until `deadline`; the `i`-th sender starts at its
    /// own phase, as independent people would, instead of all on the same tick.
    fn spawn(
        &self,
        mut sink: Sink,
        p: usize,
        i: usize,
        deadline: Instant,
    ) -> tokio::task::JoinHandle<Sink> {
        let (kind, interval, start) = (self.kind.clone(), self.interval, self.start);
        let (polls, last_vote) = (self.polls.clone(), self.last_vote.clone());
        let phase = interval.mul_f64((i as f64 * 0.618_033_988_75).fract());
        tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            if kind == "poll" {
                // One vote each, at its own moment, whatever the deadline.
                let (poll, options) = &polls[p];
                last_vote[p].fetch_max(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                let frame = serde_json::json!({"type": "poll_vote", "timestamp": 0,
                    "data": {"poll_id": poll, "option_id": options[i % options.len()]}});
                let _ = sink.send(Message::text(frame.to_string())).await;
                return sink;
            }
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
                    _ => {
                        serde_json::json!({"type": "typing", "timestamp": 0, "data": {"is_typing": n.is_multiple_of(2)}})
                    }
                };
                if sink.send(Message::text(frame.to_string())).await.is_err() {
                    break;
                }
            }
            sink
        })
    }
}

type Sink = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// The process's read budget (`--read-rate`): a semaphore refilled every 10 ms, so
/// slow readers wait their turn in order instead of spinning.
#[derive(Clone)]
struct Reads(Option<Arc<tokio::sync::Semaphore>>);

impl Reads {
    fn start(per_sec: f64) -> Self {
        if per_sec <= 0.0 {
            return Self(None);
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(0));
        let refill = sem.clone();
        let per_tick = (per_sec / 100.0).max(1.0) as usize;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                // At most one tick's worth banked: no burst after a quiet spell.
                let room = per_tick.saturating_sub(refill.available_permits());
                refill.add_permits(room);
            }
        });
        Self(Some(sem))
    }

    async fn take(&self) {
        if let Some(sem) = &self.0
            && let Ok(p) = sem.acquire().await
        {
            p.forget();
        }
    }
}
