//! Memory of an API process under password work (issue 12): registrations and logins at
//! a steady concurrency, then a burst of concurrent wrong passwords, sampling the
//! server's resident memory (`/proc/PID/status`) throughout.
//!
//! Run against a release `watch-party api` in its own process (deploy/bench/auth-memory.sh
//! starts one): `auth_memory --url http://127.0.0.1:8197 --server-pid PID`
//! Knobs: --users 1000 --concurrency 16 --burst 1000. The server needs
//! RATE_LIMIT_MULTIPLIER high enough for one address to make all these requests.

#![expect(clippy::print_stdout, reason = "a load tool reports on stdout")]

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use serde_json::json;

struct Args {
    url: String,
    server_pid: u32,
    users: usize,
    concurrency: usize,
    burst: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8197".into(),
        server_pid: 0,
        users: 1000,
        concurrency: 16,
        burst: 1000,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let (k, val) = (pair[0].as_str(), pair.get(1).cloned().unwrap_or_default());
        match k {
            "--url" => a.url = val,
            "--server-pid" => a.server_pid = val.parse().expect("--server-pid"),
            "--users" => a.users = val.parse().expect("--users"),
            "--concurrency" => a.concurrency = val.parse().expect("--concurrency"),
            "--burst" => a.burst = val.parse().expect("--burst"),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.server_pid > 0, "--server-pid is required");
    a
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Runs `n` requests `concurrency` at a time; returns how many got each status and the
/// requests per second.
async fn phase(
    n: usize,
    concurrency: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> (BTreeMap<u16, usize>, f64) {
    let started = Instant::now();
    let statuses: Vec<u16> = stream::iter((0..n).map(|i| {
        let r = request(i);
        async move { r.send().await.map_or(0, |r| r.status().as_u16()) }
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let mut counts = BTreeMap::new();
    for s in statuses {
        *counts.entry(s).or_insert(0) += 1;
    }
    (counts, rate)
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.burst.max(a.concurrency))
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let pid = a.server_pid;
    let run = format!("{:x}", rand_suffix());
    let api = |p: &str| format!("{}/api{p}", a.url);
    let password = "correct horse battery staple 42";
    println!("start: RSS {}", mib(status_kib(pid, "VmRSS:")));

    let (counts, rate) = phase(a.users, a.concurrency, |i| {
        client.post(api("/auth/register/")).json(&json!({
            "username": format!("mem{run}{i}"),
            "email": format!("mem{run}{i}@example.com"),
            "password": password,
        }))
    })
    .await;
    println!(
        "{} registrations, {} at a time: {rate:.1}/s, statuses {counts:?}; RSS {}",
        a.users,
        a.concurrency,
        mib(status_kib(pid, "VmRSS:"))
    );

    let (counts, rate) = phase(a.users, a.concurrency, |i| {
        client.post(api("/auth/login/")).json(&json!({
            "username": format!("mem{run}{i}"),
            "password": password,
        }))
    })
    .await;
    println!(
        "{} logins, {} at a time: {rate:.1}/s, statuses {counts:?}; RSS {}",
        a.users,
        a.concurrency,
        mib(status_kib(pid, "VmRSS:"))
    );

    // The burst: every request at once, each a wrong password for a different account
    // (so none is refused by a lockout before its hash), RSS sampled every 10 ms.
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let (counts, rate) = phase(a.burst, a.burst, |i| {
        client.post(api("/auth/login/")).json(&json!({
            "username": format!("mem{run}{}", i % a.users),
            "password": "not the password at all",
        }))
    })
    .await;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    println!(
        "{} wrong passwords at once: {rate:.1}/s, statuses {counts:?}; peak RSS during {}, RSS after {}",
        a.burst,
        mib(peak.load(Ordering::Relaxed)),
        mib(status_kib(pid, "VmRSS:"))
    );
    println!(
        "high-water mark of the process: {}",
        mib(status_kib(pid, "VmHWM:"))
    );
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        & 0xff_ffff
}
