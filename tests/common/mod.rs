//! Test harness: every test gets its own PostgreSQL database, Redis key prefix and
//! ClickHouse database, all on the real servers, removed again when the test ends.
//! Helpers start the real API on port 0, worker pools in-process or as real child
//! processes of the `watch-party` binary, and a real SMTP server (aiosmtpd).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod pgbouncer;
pub mod process;
pub mod proxy;
pub mod push;
pub mod s3;
pub mod smtp;
pub mod ws;

use std::{collections::HashMap, sync::Arc, time::Duration};

use redis::aio::ConnectionManager;

use sqlx::PgPool;
use tokio::{sync::oneshot, task::JoinHandle};
use wp_shared::{
    Config,
    jobs::{Enqueuer, Queue, QueueDepth, queue_depth},
};

/// Base URL of the PostgreSQL server (without a database).
pub fn pg_base() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub struct TestEnv {
    pub id: String,
    pub vars: HashMap<String, String>,
    pub config: Config,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub enqueuer: Enqueuer,
}

/// The ops token of every test environment (`OPS_TOKEN`).
pub const OPS_TOKEN: &str = "test-ops-token-0123456789abcdef";

impl TestEnv {
    /// A fresh, migrated environment.
    pub async fn new() -> Self {
        Self::with_vars(&[]).await
    }

    /// A fresh environment with extra configuration variables. With
    /// `TEST_PG_POOLED_URL` set (a pooler's base URL, as `TEST_PG_URL`), the processes
    /// reach PostgreSQL through that pooler, and directly only for what needs a
    /// session (`DATABASE_DIRECT_URL`).
    pub async fn with_vars(extra: &[(&str, &str)]) -> Self {
        Self::build(extra, std::env::var("TEST_PG_POOLED_URL").ok()).await
    }

    /// A fresh environment whose processes reach PostgreSQL through `pooler`.
    pub async fn behind(pooler: &pgbouncer::PgBouncer, extra: &[(&str, &str)]) -> Self {
        Self::build(extra, Some(pooler.base_url())).await
    }

    async fn build(extra: &[(&str, &str)], pooled_base: Option<String>) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mail_dir = std::env::temp_dir().join(format!("wp-test-mail-{id}"));
        let direct = format!("{}/wp_test_{id}", pg_base());
        let mut vars: HashMap<String, String> = [
            (
                "DATABASE_URL",
                match &pooled_base {
                    Some(base) => format!("{base}/wp_test_{id}"),
                    None => direct.clone(),
                },
            ),
            ("DATABASE_DIRECT_URL", direct),
            ("DATABASE_MAX_CONNECTIONS", "10".into()),
            (
                "REDIS_URL",
                std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            ),
            ("REDIS_PREFIX", format!("t{id}")),
            (
                "CLICKHOUSE_URL",
                std::env::var("TEST_CLICKHOUSE_URL")
                    .unwrap_or_else(|_| "http://127.0.0.1:8123".into()),
            ),
            ("CLICKHOUSE_DATABASE", format!("wp_test_{id}")),
            ("EMAIL_FILE_DIR", mail_dir.display().to_string()),
            (
                "STORAGE_DIR",
                std::env::temp_dir()
                    .join(format!("wp-test-storage-{id}"))
                    .display()
                    .to_string(),
            ),
            ("WORKER_HEARTBEAT_SECS", "1".into()),
            ("WORKER_MISSED_HEARTBEATS", "2".into()),
            ("OUTBOX_SWEEP_SECS", "1".into()),
            ("BIND_ADDR", "127.0.0.1:0".into()),
            ("OPS_TOKEN", OPS_TOKEN.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test configuration");
        wp_shared::db::migrate(&config)
            .await
            .expect("PostgreSQL migrations");
        wp_shared::clickhouse::migrate(&config)
            .await
            .expect("ClickHouse migrations (is ClickHouse running? deploy/dev/clickhouse.sh)");
        let db = wp_shared::db::pool(&config).expect("pool");
        let redis = wp_shared::redis_conn::connect(&config)
            .await
            .expect("redis");
        let enqueuer = Enqueuer::new(redis.clone(), config.clone());
        Self {
            id,
            vars,
            config,
            db,
            redis,
            enqueuer,
        }
    }

    /// The environment variables that configure a child process the same way.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub async fn depth(&self, queue: Queue) -> QueueDepth {
        let mut conn = self.redis.clone();
        queue_depth(&mut conn, &self.config, queue)
            .await
            .expect("queue depth")
    }

    /// Starts the API on a free port.
    pub async fn spawn_api(&self) -> TestApp {
        let state = wp_api::AppState::from(
            wp_api::App::new(self.config.clone())
                .await
                .expect("app state"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            wp_api::serve(state, listener, async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .no_gzip()
                .build()
                .expect("client"),
            _stop: tx,
            _handle: handle,
        }
    }

    /// Starts worker pools in this process; they stop when the guard is dropped.
    pub async fn spawn_workers(&self, pools: &[(Queue, usize)]) -> Workers {
        self.spawn_workers_with(self.config.clone(), pools).await
    }

    pub async fn spawn_workers_with(&self, config: Config, pools: &[(Queue, usize)]) -> Workers {
        let ctx = Arc::new(wp_workers::Ctx::new(config).await.expect("worker ctx"));
        let status = ctx.status.clone();
        let metrics = ctx.metrics.clone();
        let pools = pools
            .iter()
            .map(|(queue, concurrency)| wp_workers::Pool {
                queue: *queue,
                concurrency: *concurrency,
            })
            .collect();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            wp_workers::run(ctx, pools, async move {
                let _ = rx.await;
            })
            .await
        });
        Workers {
            stop: Some(tx),
            handle: Some(handle),
            status,
            metrics,
        }
    }

    /// Waits until `queue` has nothing waiting, scheduled or in flight.
    pub async fn wait_idle(&self, queue: Queue, timeout: Duration) -> QueueDepth {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let d = self.depth(queue).await;
            if d.active == 0 && d.scheduled == 0 && d.inflight == 0 {
                return d;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "queue {queue} still busy after {timeout:?}: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls `check` until it returns `Some`, or fails the test after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Remove the database, the ClickHouse database and the Redis keys of this test.
        let config = self.config.clone();
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = std::fs::remove_dir_all(&config.storage_dir);
            rt.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&format!("{}/postgres", pg_base())).await {
                    let _ = sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS wp_test_{id} WITH (FORCE)"
                    ))
                    .execute(&pool)
                    .await;
                }
                let ch = clickhouse::Client::default()
                    .with_url(&config.clickhouse_url)
                    .with_validation(false);
                let _ = ch
                    .query(&format!(
                        "DROP DATABASE IF EXISTS {}",
                        config.clickhouse_database
                    ))
                    .execute()
                    .await;
                if let Ok(mut conn) = wp_shared::redis_conn::connect(&config).await {
                    let prefix = &config.redis_prefix;
                    for pattern in [format!("{prefix}:*"), format!("{prefix}.*")] {
                        let keys: Vec<String> = redis::cmd("KEYS")
                            .arg(&pattern)
                            .query_async(&mut conn)
                            .await
                            .unwrap_or_default();
                        for chunk in keys.chunks(500) {
                            let _: Result<(), _> =
                                redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
                        }
                    }
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    _stop: oneshot::Sender<()>,
    _handle: JoinHandle<()>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// `GET path` with the ops token, as Prometheus or an operator calls it.
    pub async fn ops_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .expect("request")
    }
}

pub struct Workers {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// The pools' queue connection, as their probes see it.
    pub status: Arc<wp_workers::Status>,
    /// The pools' job counters.
    pub metrics: wp_workers::metrics::JobMetrics,
}

impl Workers {
    /// Asks the pools to stop and waits for running jobs to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let res = tokio::time::timeout(Duration::from_secs(40), h)
                .await
                .expect("workers stop within the shutdown timeout");
            res.expect("worker task").expect("workers ran cleanly");
        }
    }

    /// Kills the pools without a graceful stop (as a crash would).
    pub fn abort(mut self) {
        self.stop.take();
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}

/// A real `watch-party worker` process for `queues`, configured as `env` plus
/// `extra`, writing JSON logs (at WARN) to a piped stdout.
pub fn worker_process(
    env: &TestEnv,
    queues: &str,
    extra: &[(&str, String)],
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
        .args(["worker", "--queues", queues])
        .envs(env.env_vars())
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start a worker process")
}

/// Sends SIGTERM to `child`, waits (at most `within`) for it to exit, and returns its
/// exit status and everything it logged.
pub async fn stop_with_sigterm(
    mut child: tokio::process::Child,
    within: Duration,
) -> (std::process::ExitStatus, String) {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let exit = tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within {within:?} of SIGTERM"))
        .expect("wait");
    let mut logs = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut out, &mut logs).await;
    }
    (exit, logs)
}

/// Logs of the code under test, shown for failing tests (`RUST_LOG` filters).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// An API, an SMTP server and an email worker pool, for flows that send mail.
pub struct MailEnv {
    pub env: TestEnv,
    pub app: TestApp,
    pub smtp: smtp::SmtpServer,
    pub workers: Workers,
}

impl MailEnv {
    pub async fn new() -> Self {
        let smtp = smtp::SmtpServer::start().await;
        let env = TestEnv::with_vars(&[("SMTP_URL", &smtp.url())]).await;
        let app = env.spawn_api().await;
        let workers = env.spawn_workers(&[(Queue::Email, 4)]).await;
        Self {
            env,
            app,
            smtp,
            workers,
        }
    }

    /// Waits for an email to `to` whose subject contains `subject`; returns its text
    /// with quoted-printable soft breaks and `=3D` undone.
    pub async fn email(&self, to: &str, subject: &str) -> String {
        eventually(
            Duration::from_secs(15),
            &format!("email `{subject}` to {to}"),
            || async {
                self.smtp
                    .messages()
                    .into_iter()
                    .map(|m| {
                        m.replace("=\r\n", "")
                            .replace("=\n", "")
                            .replace("=3D", "=")
                    })
                    .find(|m| m.contains(&format!("To: {to}")) && m.contains(subject))
            },
        )
        .await
    }

    pub fn count_to(&self, to: &str) -> usize {
        self.smtp
            .messages()
            .iter()
            .filter(|m| m.contains(&format!("To: {to}")))
            .count()
    }
}

/// The `token=` value of the first link in an email.
pub fn link_token(email: &str) -> String {
    let start = email.find("token=").expect("a link with a token") + "token=".len();
    email[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

impl TestApp {
    /// `from` sends `to` a friend request (201 expected).
    pub async fn send_friend_request(&self, from: &TestUser, to: &TestUser) {
        let (s, b) = self
            .post_json(
                "/api/social/friend-requests/",
                Some(&from.token),
                serde_json::json!({"user_id": to.id}),
            )
            .await;
        assert_eq!(s, reqwest::StatusCode::CREATED, "{b}");
    }

    /// Registers (or refreshes) a push device of `user` (200 expected).
    pub async fn register_device(
        &self,
        user: &TestUser,
        device: &str,
        platform: &str,
        token: &str,
    ) {
        let (s, b) = self
            .post_json(
                "/api/mobile/push-token/",
                Some(&user.token),
                serde_json::json!({"device_id": device, "platform": platform, "push_token": token}),
            )
            .await;
        assert!(
            s == reqwest::StatusCode::CREATED || s == reqwest::StatusCode::OK,
            "{s}: {b}"
        );
    }

    /// The notification kinds `u` has (the first 100), newest first.
    pub async fn notification_kinds(&self, u: &TestUser) -> Vec<String> {
        let (s, b) = self
            .call(
                reqwest::Method::GET,
                "/api/notifications/?page_size=100",
                Some(&u.token),
                None,
            )
            .await;
        assert_eq!(s, reqwest::StatusCode::OK, "{b}");
        b["data"]["results"]
            .as_array()
            .expect("a page of notifications")
            .iter()
            .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until `u` has exactly `n` notifications of `kind`.
    pub async fn expect_kind(&self, u: &TestUser, kind: &str, n: usize) {
        eventually(Duration::from_secs(15), kind, || async {
            let c = self
                .notification_kinds(u)
                .await
                .iter()
                .filter(|k| *k == kind)
                .count();
            (c == n).then_some(())
        })
        .await;
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Registers `username` (`{username}@example.com`, a good password); returns the
    /// `data` of the answer (user, access_token, refresh_token).
    pub async fn register(&self, username: &str) -> serde_json::Value {
        let (status, body) = self
            .post_json(
                "/api/auth/register/",
                None,
                serde_json::json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": STRONG_PASSWORD,
                }),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        body["data"].clone()
    }
}

pub const STRONG_PASSWORD: &str = "violet-harbor-tunnel-93";

/// A user made directly in the database (no rate limits, no argon2 per user), with a
/// live session and an access token.
pub struct TestUser {
    pub id: uuid::Uuid,
    pub username: String,
    pub token: String,
}

impl TestEnv {
    pub async fn create_user(&self, username: &str) -> TestUser {
        static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let hash = HASH
            .get_or_init(|| async {
                wp_api::auth::password::hash(STRONG_PASSWORD.to_owned())
                    .await
                    .expect("hash")
            })
            .await;
        let id = uuid::Uuid::now_v7();
        let session = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, email_verified_at)
             VALUES ($1, $2, $3, $4, now())",
        )
        .bind(id)
        .bind(username)
        .bind(format!("{username}@example.com"))
        .bind(hash)
        .execute(&self.db)
        .await
        .expect("insert user");
        sqlx::query("INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, now() + interval '1 day')")
            .bind(session)
            .bind(id)
            .execute(&self.db)
            .await
            .expect("insert session");
        let (token, _) =
            wp_api::auth::tokens::issue_access(&self.config, id, session).expect("token");
        TestUser {
            id,
            username: username.to_owned(),
            token,
        }
    }

    /// A user with the admin role.
    pub async fn create_admin(&self, username: &str) -> TestUser {
        self.create_with_role(username, "admin").await
    }

    pub async fn create_moderator(&self, username: &str) -> TestUser {
        self.create_with_role(username, "moderator").await
    }

    async fn create_with_role(&self, username: &str, role: &str) -> TestUser {
        let u = self.create_user(username).await;
        sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
            .bind(u.id)
            .bind(role)
            .execute(&self.db)
            .await
            .expect("set the role");
        u
    }

    /// A ready library video of `owner`'s (no file behind it), `duration` seconds long.
    pub async fn insert_video(
        &self,
        owner: &TestUser,
        title: &str,
        visibility: &str,
        duration: f64,
    ) -> uuid::Uuid {
        let id = uuid::Uuid::now_v7();
        sqlx::query(
            "INSERT INTO videos (id, owner_id, title, storage_key, original_filename, container,
                                 content_type, size_bytes, sha256, status, visibility,
                                 duration_seconds, thumbnail_key)
             VALUES ($1, $2, $3, 'videos/x', 'x.mp4', 'mp4', 'video/mp4', 1, '', 'ready', $4, $5,
                     'thumbs/x.jpg')",
        )
        .bind(id)
        .bind(owner.id)
        .bind(title)
        .bind(visibility)
        .bind(duration)
        .execute(&self.db)
        .await
        .unwrap();
        id
    }

    /// Makes two users friends.
    pub async fn befriend(&self, a: &TestUser, b: &TestUser) {
        let (x, y) = if a.id < b.id {
            (a.id, b.id)
        } else {
            (b.id, a.id)
        };
        sqlx::query("INSERT INTO friendships (user_a, user_b) VALUES ($1, $2)")
            .bind(x)
            .bind(y)
            .execute(&self.db)
            .await
            .expect("friendship");
    }
}

/// Makes a real H.264 MP4 of `seconds` with ffmpeg (index at the end, as ffmpeg writes
/// it by default). Returns its bytes.
pub fn make_mp4(seconds: u32) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("wp-test-{}.mp4", uuid::Uuid::new_v4().simple()));
    let out = std::process::Command::new("ffmpeg")
        .args(["-y", "-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=duration={seconds}:size=160x120:rate=10"))
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .arg(&path)
        .output()
        .expect("ffmpeg (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).expect("read mp4");
    let _ = std::fs::remove_file(&path);
    bytes
}

/// Top-level MP4 box names in order.
pub fn mp4_boxes(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i + 8 <= bytes.len() {
        let size =
            u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
        out.push(String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned());
        let size = if size == 1 && i + 16 <= bytes.len() {
            u64::from_be_bytes(bytes[i + 8..i + 16].try_into().unwrap()) as usize
        } else {
            size
        };
        if size < 8 {
            break;
        }
        i += size;
    }
    out
}
