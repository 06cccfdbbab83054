//! Typed configuration read from the environment (and an optional `.env`).
//!
//! Every variable has a default that works on a single development machine, except
//! where a default would be unsafe in production (none yet). A bad value stops start-up
//! with a message that names the variable; secrets are never printed.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

mod reader;

use reader::{Reader, parse_networks};

/// A configuration value could not be read.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "pretty" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected `text` or `json`, got `{other}`")),
        }
    }
}

/// A mobile app's version: dotted numbers (`1.4`, `2.0.13`), compared number by number
/// (a missing part is 0: `1.4` = `1.4.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVersion(Vec<u32>);

impl FromStr for AppVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Result<Vec<u32>, _> = s.trim().split('.').map(str::parse::<u32>).collect();
        match parts {
            Ok(p) if !p.is_empty() && p.len() <= 4 => Ok(Self(p)),
            _ => Err(format!("`{s}` is not a version like 1.4.2")),
        }
    }
}

impl AppVersion {
    fn padded(&self) -> [u32; 4] {
        let mut out = [0; 4];
        for (o, v) in out.iter_mut().zip(&self.0) {
            *o = *v;
        }
        out
    }
}

impl PartialOrd for AppVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AppVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.padded().cmp(&other.padded())
    }
}

impl fmt::Display for AppVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// One platform's app release: the oldest version still served (older ones must
/// update), the newest (older ones are told an update exists) and its store page.
#[derive(Debug, Clone, Default)]
pub struct AppRelease {
    pub minimum: Option<AppVersion>,
    pub latest: Option<AppVersion>,
    pub store_url: Option<String>,
}

impl AppRelease {
    /// `MOBILE_{platform}_MIN_VERSION`, `_LATEST_VERSION`, `_STORE_URL`.
    fn read<F: Fn(&str) -> Option<String>>(
        r: &Reader<F>,
        platform: &str,
    ) -> Result<Self, ConfigError> {
        let min_var = format!("MOBILE_{platform}_MIN_VERSION");
        let latest_var = format!("MOBILE_{platform}_LATEST_VERSION");
        let store_var = format!("MOBILE_{platform}_STORE_URL");
        let minimum: Option<AppVersion> = r.optional(&min_var)?;
        let latest: Option<AppVersion> = r.optional(&latest_var)?;
        if let (Some(m), Some(l)) = (&minimum, &latest)
            && m > l
        {
            return Err(ConfigError {
                var: min_var,
                reason: format!("{m} is newer than {latest_var} ({l})"),
            });
        }
        let store_url = match r.raw(&store_var) {
            Some(_) => Some(r.url(&store_var, "", &["https", "http", "itms-apps", "market"])?),
            None => None,
        };
        Ok(Self {
            minimum,
            latest,
            store_url,
        })
    }
}

/// What the mobile apps are told (`GET /api/mobile/config/`).
#[derive(Debug, Clone, Default)]
pub struct MobileConfig {
    pub ios: AppRelease,
    pub android: AppRelease,
    /// Features switched off for the apps (`MOBILE_DISABLED_FEATURES`, comma-separated).
    pub disabled_features: Vec<String>,
}

/// Where outgoing email goes.
#[derive(Clone, PartialEq, Eq)]
pub enum EmailTransport {
    /// SMTP, from a URL such as `smtp://user:pass@host:587?tls=required`
    /// (lettre's URL format: `smtp://` plain or STARTTLS, `smtps://` implicit TLS).
    Smtp(String),
    /// Each message written as an `.eml` file into this directory (local default).
    File(PathBuf),
}

impl fmt::Debug for EmailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The URL may hold a password.
            Self::Smtp(url) => write!(f, "Smtp({})", redact_url(url)),
            Self::File(dir) => write!(f, "File({})", dir.display()),
        }
    }
}

/// All settings of every role. Roles ignore what they do not use.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    /// `DATABASE_DIRECT_URL`: PostgreSQL itself, when `DATABASE_URL` goes through a
    /// pooler in transaction mode (PgBouncer). What needs a session of its own
    /// (migrations and their advisory lock, `LISTEN`) connects here; unset, it uses
    /// `DATABASE_URL`.
    pub database_direct_url: Option<String>,
    /// `DATABASE_MAX_CONNECTIONS`; unset, each role takes its own default
    /// (`db::default_pool_size`).
    pub database_max_connections: Option<u32>,
    pub redis_url: String,
    /// Prefix of every Redis key this deployment (or test) uses.
    pub redis_prefix: String,
    pub clickhouse_url: String,
    pub clickhouse_database: String,
    pub clickhouse_user: String,
    pub clickhouse_password: String,
    pub bind_addr: SocketAddr,
    /// Where worker, scheduler and realtime processes serve `/health`, `/ready` and
    /// `/metrics` (`OPS_BIND_ADDR`); none when unset.
    pub ops_bind_addr: Option<SocketAddr>,
    /// Bearer token that opens the ops details on a public port (`OPS_TOKEN`, at least
    /// 24 characters): `/metrics` and `/ready`'s checks on the API, `/ws/stats/` on a
    /// realtime node. Unset: those are only served on `OPS_BIND_ADDR`.
    pub ops_token: Option<String>,
    /// Base URL clients use to reach the API (`next`/`previous` links).
    pub public_url: String,
    /// Base URL of the web app, for links in emails (`/verify-email?token=...`).
    pub frontend_url: String,
    /// Base URL clients open sockets on (`REALTIME_PUBLIC_URL`, `ws://` or `wss://`;
    /// default: `PUBLIC_URL` with its scheme made `ws`/`wss`).
    pub realtime_public_url: String,
    /// What the mobile apps are told about their releases and features.
    pub mobile: MobileConfig,
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// An upload that sends nothing for this long is abandoned (`UPLOAD_IDLE_SECS`);
    /// uploads are not bound by `request_timeout`, which a large file over a normal
    /// connection would outlast.
    pub upload_idle_timeout: Duration,
    /// Outbound calls give up after these (`SMTP_TIMEOUT_SECS` 30: each SMTP command;
    /// `PUSH_TIMEOUT_SECS` 10: an FCM or APNs request; `STORAGE_TIMEOUT_SECS` 60: an
    /// object-storage request, one part of a multipart upload; `CLICKHOUSE_TIMEOUT_SECS`
    /// 30: an INSERT batch or a query).
    pub smtp_timeout: Duration,
    pub push_timeout: Duration,
    pub storage_timeout: Duration,
    pub clickhouse_timeout: Duration,
    pub log_format: LogFormat,
    pub email: EmailTransport,
    pub email_from: String,
    pub worker_heartbeat: Duration,
    pub worker_missed_heartbeats: usize,
    /// How long running jobs may finish when a worker is asked to stop
    /// (`WORKER_SHUTDOWN_GRACE_SECS`); what is still running then is abandoned (and
    /// logged), to be delivered again.
    pub worker_shutdown_grace: Duration,
    /// How long finished job records are kept in Redis before the vacuum removes them.
    pub job_done_retention: Duration,
    /// How long dead (given up) job records are kept for inspection.
    pub job_dead_retention: Duration,
    /// Most attempts a job gets before it is parked in the dead set.
    pub job_max_attempts: usize,
    /// How often the scheduler sweeps the outbox (seconds, 1..=59).
    pub outbox_sweep_secs: u32,
    /// A job pushed from the outbox and not finished after this long is pushed again
    /// (a no-op while Redis still holds it; `OUTBOX_REDELIVER_SECS`, default 600).
    pub outbox_redeliver_after: Duration,
    /// A realtime room sends presence changes at most this often (`PRESENCE_EVERY_MS`,
    /// default 250; 0: every change at once).
    pub presence_every: Duration,
    /// A realtime room sends a poll's counts at most this often (`POLL_UPDATE_EVERY_MS`,
    /// default 500; 0: after every vote).
    pub poll_update_every: Duration,
    /// How often a realtime node reads the live figures for its staff sockets
    /// (`ADMIN_LIVE_EVERY_MS`, default 5000, at least 100).
    pub admin_live_every: Duration,
    /// Comments one user may post a minute (`COMMENTS_PER_MINUTE`, default 30; past it
    /// 429 with `Retry-After`).
    pub comments_per_minute: u32,
    /// Chat messages one user may send a minute, over all their sockets and parties
    /// (`CHAT_PER_MINUTE`, default 30; past it an `error` frame `rate_limited` with
    /// `retry_after_ms`).
    pub chat_per_minute: u32,
    /// Key that signs access tokens (HS256) and its id (`kid`).
    pub jwt_key: JwtKey,
    /// True when `JWT_SECRET` is unset and `jwt_key` was made up by this process.
    pub jwt_key_ephemeral: bool,
    /// Keys still accepted for verification after a rotation, until their tokens expire.
    pub jwt_previous_keys: Vec<JwtKey>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Local directory for stored files (videos, avatars, exports) with the local backend.
    pub storage_dir: PathBuf,
    pub storage: StorageBackend,
    /// How long a deleted account can still be restored by signing in.
    pub deletion_grace: Duration,
    /// Days after which a resolved support ticket closes (`SUPPORT_AUTO_CLOSE_DAYS`).
    pub support_auto_close_days: u32,
    /// Months of raw ClickHouse events kept (`ANALYTICS_RAW_RETENTION_MONTHS`; 0: all);
    /// the rollups are kept whole.
    pub analytics_raw_retention_months: u32,
    /// Multiplies every authentication rate limit (load tests set it high).
    pub rate_limit_multiplier: u32,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` header names the client
    /// (`TRUSTED_PROXIES`: addresses or CIDRs, comma-separated; empty: none, the TCP
    /// peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Password hashes (argon2id, 19 MiB each) run at once; default: the cores.
    pub password_hash_concurrency: usize,
    /// How long a request waits to start a password hash before 503 `server_busy`.
    pub password_hash_wait: Duration,
    /// Largest video upload.
    pub video_max_bytes: u64,
    /// What one user's videos may take in all (`USER_STORAGE_QUOTA_BYTES`, default
    /// 10 GiB): an upload past it is refused (413 `quota_exceeded`) and nothing is kept.
    pub user_storage_quota: u64,
    /// At most this many rows a second per staff CSV export (`EXPORT_ROWS_PER_SECOND`;
    /// 0, the default: as fast as the database gives them), to spare a busy primary.
    pub export_rows_per_second: u64,
    /// ffmpeg and ffprobe binaries used by the media worker.
    pub ffmpeg: String,
    pub ffprobe: String,
    /// Users per page when a notification's audience is walked (a broadcast).
    pub notify_page_size: u32,
    /// FCM HTTP v1 (Android and web push), when `FCM_SERVICE_ACCOUNT_FILE` is set.
    pub fcm: Option<FcmConfig>,
    /// APNs (iOS push), when `APNS_KEY_FILE` is set.
    pub apns: Option<ApnsConfig>,
    /// Extra root certificates (PEM) the push clients trust beside the public roots
    /// (`PUSH_CA_FILE`): for an egress proxy that terminates TLS, or a provider stand-in.
    pub push_ca_file: Option<PathBuf>,
}

/// FCM HTTP v1: a Google service account (JSON with `project_id`, `client_email`,
/// `private_key`, `token_uri`) and the API's base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcmConfig {
    pub service_account_file: PathBuf,
    pub base_url: String,
}

/// APNs token authentication: the `.p8` signing key, its key id, the team id, the app's
/// bundle id (`apns-topic`) and the API's base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApnsConfig {
    pub key_file: PathBuf,
    pub key_id: String,
    pub team_id: String,
    pub topic: String,
    pub base_url: String,
}

/// Where stored files live.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageBackend {
    /// `STORAGE_DIR` on this machine.
    Local,
    S3(S3Config),
}

/// An S3-compatible bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible services (MinIO, Ceph, R2, ...); unset means AWS.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for StorageBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("Local"),
            Self::S3(s) => write!(
                f,
                "S3(bucket={}, region={}, endpoint={:?}, key=<redacted>)",
                s.bucket, s.region, s.endpoint
            ),
        }
    }
}

/// An HMAC key for access tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtKey {
    pub id: String,
    pub secret: Vec<u8>,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JwtKey({}, <redacted>)", self.id)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field("redis_url", &redact_url(&self.redis_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("clickhouse_url", &redact_url(&self.clickhouse_url))
            .field("clickhouse_database", &self.clickhouse_database)
            .field("clickhouse_user", &self.clickhouse_user)
            .field("clickhouse_password", &"<redacted>")
            .field("bind_addr", &self.bind_addr)
            .field("ops_bind_addr", &self.ops_bind_addr)
            .field("ops_token", &self.ops_token.as_ref().map(|_| "<redacted>"))
            .field("public_url", &self.public_url)
            .field("frontend_url", &self.frontend_url)
            .field("cors_origins", &self.cors_origins)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("upload_idle_timeout", &self.upload_idle_timeout)
            .field("smtp_timeout", &self.smtp_timeout)
            .field("push_timeout", &self.push_timeout)
            .field("push_ca_file", &self.push_ca_file)
            .field("storage_timeout", &self.storage_timeout)
            .field("clickhouse_timeout", &self.clickhouse_timeout)
            .field("log_format", &self.log_format)
            .field("email", &self.email)
            .field("email_from", &self.email_from)
            .field("worker_heartbeat", &self.worker_heartbeat)
            .field("worker_missed_heartbeats", &self.worker_missed_heartbeats)
            .field("worker_shutdown_grace", &self.worker_shutdown_grace)
            .field("job_done_retention", &self.job_done_retention)
            .field("job_dead_retention", &self.job_dead_retention)
            .field("job_max_attempts", &self.job_max_attempts)
            .field("outbox_sweep_secs", &self.outbox_sweep_secs)
            .field("outbox_redeliver_after", &self.outbox_redeliver_after)
            .field("presence_every", &self.presence_every)
            .field("poll_update_every", &self.poll_update_every)
            .field("admin_live_every", &self.admin_live_every)
            .field("comments_per_minute", &self.comments_per_minute)
            .field("chat_per_minute", &self.chat_per_minute)
            .field("jwt_key", &self.jwt_key)
            .field("jwt_previous_keys", &self.jwt_previous_keys)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("storage_dir", &self.storage_dir)
            .field("storage", &self.storage)
            .field("deletion_grace", &self.deletion_grace)
            .field("support_auto_close_days", &self.support_auto_close_days)
            .field(
                "analytics_raw_retention_months",
                &self.analytics_raw_retention_months,
            )
            .field("rate_limit_multiplier", &self.rate_limit_multiplier)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("password_hash_concurrency", &self.password_hash_concurrency)
            .field("password_hash_wait", &self.password_hash_wait)
            .field("video_max_bytes", &self.video_max_bytes)
            .field("user_storage_quota", &self.user_storage_quota)
            .field("realtime_public_url", &self.realtime_public_url)
            .field("mobile", &self.mobile)
            .field("export_rows_per_second", &self.export_rows_per_second)
            .field("ffmpeg", &self.ffmpeg)
            .field("ffprobe", &self.ffprobe)
            .field("notify_page_size", &self.notify_page_size)
            .field("fcm", &self.fcm)
            .field("apns", &self.apns)
            .finish()
    }
}

/// Replaces the password of a URL with `***`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

impl Config {
    /// Where a connection that needs a session of its own goes: `DATABASE_DIRECT_URL`
    /// when set, else `DATABASE_URL`.
    pub fn database_session_url(&self) -> &str {
        self.database_direct_url
            .as_deref()
            .unwrap_or(&self.database_url)
    }
}

impl Config {
    /// Loads `.env` (if present) and reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            return Err(ConfigError {
                var: ".env".to_owned(),
                reason: e.to_string(),
            });
        }
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let r = Reader { lookup };
        let email = match r.raw("SMTP_URL") {
            Some(_) => EmailTransport::Smtp(r.url("SMTP_URL", "", &["smtp", "smtps"])?),
            None => EmailTransport::File(PathBuf::from(r.string("EMAIL_FILE_DIR", "var/mail"))),
        };
        let redis_prefix = r.string("REDIS_PREFIX", "wp");
        if !redis_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ConfigError {
                var: "REDIS_PREFIX".to_owned(),
                reason: "only letters, digits, `_` and `-` are allowed".to_owned(),
            });
        }
        let clickhouse_database = r.string("CLICKHOUSE_DATABASE", "watch_party");
        if !clickhouse_database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(ConfigError {
                var: "CLICKHOUSE_DATABASE".to_owned(),
                reason: "only letters, digits and `_` are allowed".to_owned(),
            });
        }
        let outbox_sweep_secs: u32 = r.positive("OUTBOX_SWEEP_SECS", 5)?;
        if outbox_sweep_secs > 59 {
            return Err(ConfigError {
                var: "OUTBOX_SWEEP_SECS".to_owned(),
                reason: "must be between 1 and 59".to_owned(),
            });
        }
        let outbox_redeliver_after =
            Duration::from_secs(r.positive("OUTBOX_REDELIVER_SECS", 600u64)?);
        let presence_every = Duration::from_millis(r.parse("PRESENCE_EVERY_MS", 250u64)?);
        let poll_update_every = Duration::from_millis(r.parse("POLL_UPDATE_EVERY_MS", 500u64)?);
        let admin_live_every = Duration::from_millis(r.parse("ADMIN_LIVE_EVERY_MS", 5000u64)?);
        if admin_live_every < Duration::from_millis(100) {
            return Err(ConfigError {
                var: "ADMIN_LIVE_EVERY_MS".to_owned(),
                reason: "must be at least 100".to_owned(),
            });
        }
        let public_url = r.url("PUBLIC_URL", "http://127.0.0.1:8000", &["http", "https"])?;
        // Links built far from the configuration (avatars in user summaries) use it.
        crate::links::set_public_url(&public_url);
        let jwt_key = match r.raw("JWT_SECRET") {
            Some(secret) => {
                if secret.len() < 32 {
                    return Err(ConfigError {
                        var: "JWT_SECRET".to_owned(),
                        reason: "must be at least 32 characters".to_owned(),
                    });
                }
                JwtKey {
                    id: r.string("JWT_KEY_ID", "k1"),
                    secret: secret.into_bytes(),
                }
            }
            // No key configured: a random one for this process. Tokens then die with
            // the process and are not shared between replicas; fine on one machine.
            None => JwtKey {
                id: format!("ephemeral-{}", uuid::Uuid::new_v4().simple()),
                secret: (0..4)
                    .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
                    .collect(),
            },
        };
        let storage = match r.string("STORAGE_BACKEND", "local").as_str() {
            "local" => StorageBackend::Local,
            "s3" => {
                let need = |var: &str| {
                    r.raw(var).ok_or_else(|| ConfigError {
                        var: var.to_owned(),
                        reason: "required when STORAGE_BACKEND=s3".to_owned(),
                    })
                };
                StorageBackend::S3(S3Config {
                    bucket: need("S3_BUCKET")?,
                    region: r.string("S3_REGION", "us-east-1"),
                    endpoint: match r.raw("S3_ENDPOINT") {
                        Some(_) => Some(r.url("S3_ENDPOINT", "", &["http", "https"])?),
                        None => None,
                    },
                    access_key_id: need("S3_ACCESS_KEY_ID")?,
                    secret_access_key: need("S3_SECRET_ACCESS_KEY")?,
                })
            }
            other => {
                return Err(ConfigError {
                    var: "STORAGE_BACKEND".to_owned(),
                    reason: format!("expected `local` or `s3`, got `{other}`"),
                });
            }
        };
        let mut jwt_previous_keys = Vec::new();
        for item in r
            .string("JWT_PREVIOUS_KEYS", "")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let Some((id, secret)) = item.split_once(':') else {
                return Err(ConfigError {
                    var: "JWT_PREVIOUS_KEYS".to_owned(),
                    reason: "expected `kid:secret[,kid:secret...]`".to_owned(),
                });
            };
            if id.is_empty() || id == jwt_key.id || secret.len() < 32 {
                return Err(ConfigError {
                    var: "JWT_PREVIOUS_KEYS".to_owned(),
                    reason:
                        "each key needs a new non-empty id and a secret of at least 32 characters"
                            .to_owned(),
                });
            }
            jwt_previous_keys.push(JwtKey {
                id: id.to_owned(),
                secret: secret.as_bytes().to_vec(),
            });
        }
        Ok(Self {
            database_url: r.url(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/watch_party",
                &["postgres", "postgresql"],
            )?,
            database_direct_url: match r.raw("DATABASE_DIRECT_URL") {
                None => None,
                Some(_) => Some(r.url("DATABASE_DIRECT_URL", "", &["postgres", "postgresql"])?),
            },
            database_max_connections: match r.raw("DATABASE_MAX_CONNECTIONS") {
                None => None,
                Some(_) => Some(r.positive("DATABASE_MAX_CONNECTIONS", 1)?),
            },
            redis_url: r.url("REDIS_URL", "redis://127.0.0.1:6379", &["redis", "rediss"])?,
            redis_prefix,
            clickhouse_url: r.url(
                "CLICKHOUSE_URL",
                "http://127.0.0.1:8123",
                &["http", "https"],
            )?,
            clickhouse_database,
            clickhouse_user: r.string("CLICKHOUSE_USER", "default"),
            clickhouse_password: r.string("CLICKHOUSE_PASSWORD", ""),
            bind_addr: r.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            ops_bind_addr: r.optional("OPS_BIND_ADDR")?,
            ops_token: match r.raw("OPS_TOKEN") {
                Some(t) if t.len() < 24 => {
                    return Err(ConfigError {
                        var: "OPS_TOKEN".to_owned(),
                        reason: "must be at least 24 characters".to_owned(),
                    });
                }
                t => t,
            },
            realtime_public_url: {
                let default = public_url
                    .trim_end_matches('/')
                    .replacen("https://", "wss://", 1)
                    .replacen("http://", "ws://", 1);
                r.url("REALTIME_PUBLIC_URL", &default, &["ws", "wss"])?
                    .trim_end_matches('/')
                    .to_owned()
            },
            mobile: MobileConfig {
                ios: AppRelease::read(&r, "IOS")?,
                android: AppRelease::read(&r, "ANDROID")?,
                disabled_features: r
                    .string("MOBILE_DISABLED_FEATURES", "")
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            },
            public_url: public_url.trim_end_matches('/').to_owned(),
            frontend_url: r
                .url("FRONTEND_URL", "http://localhost:3000", &["http", "https"])?
                .trim_end_matches('/')
                .to_owned(),
            cors_origins: r
                .string("CORS_ORIGINS", "http://localhost:3000")
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            max_body_bytes: r.positive("MAX_BODY_BYTES", 1024 * 1024)?,
            request_timeout: Duration::from_secs(r.positive("REQUEST_TIMEOUT_SECS", 30)?),
            upload_idle_timeout: Duration::from_secs(r.positive("UPLOAD_IDLE_SECS", 30)?),
            smtp_timeout: Duration::from_secs(r.positive("SMTP_TIMEOUT_SECS", 30)?),
            push_timeout: Duration::from_secs(r.positive("PUSH_TIMEOUT_SECS", 10)?),
            storage_timeout: Duration::from_secs(r.positive("STORAGE_TIMEOUT_SECS", 60)?),
            clickhouse_timeout: Duration::from_secs(r.positive("CLICKHOUSE_TIMEOUT_SECS", 30)?),
            log_format: r.parse("LOG_FORMAT", LogFormat::Text)?,
            email,
            email_from: r.string("EMAIL_FROM", "Watch Party <no-reply@watchparty.local>"),
            worker_heartbeat: Duration::from_secs(r.positive("WORKER_HEARTBEAT_SECS", 5)?),
            worker_missed_heartbeats: r.positive("WORKER_MISSED_HEARTBEATS", 3)?,
            worker_shutdown_grace: Duration::from_secs(r.parse("WORKER_SHUTDOWN_GRACE_SECS", 30)?),
            job_done_retention: Duration::from_secs(
                3600 * r.positive::<u64>("JOB_DONE_RETENTION_HOURS", 24)?,
            ),
            job_dead_retention: Duration::from_secs(
                86_400 * r.positive::<u64>("JOB_DEAD_RETENTION_DAYS", 7)?,
            ),
            job_max_attempts: r.positive("JOB_MAX_ATTEMPTS", 8)?,
            outbox_sweep_secs,
            outbox_redeliver_after,
            presence_every,
            poll_update_every,
            admin_live_every,
            comments_per_minute: r.positive("COMMENTS_PER_MINUTE", 30)?,
            chat_per_minute: r.positive("CHAT_PER_MINUTE", 30)?,
            jwt_key_ephemeral: r.raw("JWT_SECRET").is_none(),
            jwt_key,
            jwt_previous_keys,
            access_token_ttl: Duration::from_secs(r.positive("ACCESS_TOKEN_TTL_SECS", 900)?),
            refresh_token_ttl: Duration::from_secs(
                86_400 * r.positive::<u64>("REFRESH_TOKEN_TTL_DAYS", 30)?,
            ),
            storage_dir: PathBuf::from(r.string("STORAGE_DIR", "var/storage")),
            storage,
            deletion_grace: Duration::from_secs(
                86_400 * r.parse::<u64>("ACCOUNT_DELETION_GRACE_DAYS", 14)?,
            ),
            support_auto_close_days: r.positive("SUPPORT_AUTO_CLOSE_DAYS", 7)?,
            analytics_raw_retention_months: r.parse("ANALYTICS_RAW_RETENTION_MONTHS", 13)?,
            rate_limit_multiplier: r.positive("RATE_LIMIT_MULTIPLIER", 1)?,
            trusted_proxies: parse_networks(&r.string("TRUSTED_PROXIES", "")).map_err(
                |reason| ConfigError {
                    var: "TRUSTED_PROXIES".to_owned(),
                    reason,
                },
            )?,
            password_hash_concurrency: r.positive(
                "PASSWORD_HASH_CONCURRENCY",
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            )?,
            password_hash_wait: Duration::from_millis(r.positive("PASSWORD_HASH_WAIT_MS", 2000)?),
            video_max_bytes: r.positive("VIDEO_MAX_BYTES", 2 * 1024 * 1024 * 1024)?,
            user_storage_quota: r.positive("USER_STORAGE_QUOTA_BYTES", 10 * 1024 * 1024 * 1024)?,
            export_rows_per_second: r.parse("EXPORT_ROWS_PER_SECOND", 0)?,
            ffmpeg: r.string("FFMPEG_PATH", "ffmpeg"),
            ffprobe: r.string("FFPROBE_PATH", "ffprobe"),
            notify_page_size: r.positive("NOTIFY_PAGE_SIZE", 1000)?,
            fcm: match r.raw("FCM_SERVICE_ACCOUNT_FILE") {
                Some(file) => Some(FcmConfig {
                    service_account_file: PathBuf::from(file),
                    base_url: r.url(
                        "FCM_BASE_URL",
                        "https://fcm.googleapis.com",
                        &["http", "https"],
                    )?,
                }),
                None => None,
            },
            apns: match r.raw("APNS_KEY_FILE") {
                Some(file) => {
                    let need = |var: &str| {
                        r.raw(var).ok_or_else(|| ConfigError {
                            var: var.to_owned(),
                            reason: "required when APNS_KEY_FILE is set".to_owned(),
                        })
                    };
                    Some(ApnsConfig {
                        key_file: PathBuf::from(file),
                        key_id: need("APNS_KEY_ID")?,
                        team_id: need("APNS_TEAM_ID")?,
                        topic: need("APNS_TOPIC")?,
                        base_url: r.url(
                            "APNS_BASE_URL",
                            "https://api.push.apple.com",
                            &["http", "https"],
                        )?,
                    })
                }
                None => None,
            },
            push_ca_file: r.raw("PUSH_CA_FILE").map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests;
