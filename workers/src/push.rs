//! The `push` queue: one event's notification to each of a user's devices, through
//! FCM HTTP v1 (Android, web) or APNs (iOS).
//!
//! Why not the `fcm` or `a2` crates: `fcm` speaks only Google's retired legacy API, and
//! `a2` cannot be pointed at any host but Apple's, so code built on it cannot be tested
//! against a local server. Both providers here are small clients on reqwest and
//! jsonwebtoken, with their base URLs in configuration:
//! - FCM: an OAuth2 access token from the service account (a JWT assertion signed RS256,
//!   exchanged at the account's `token_uri`), cached until a minute before it expires;
//!   `POST {base}/v1/projects/{project}/messages:send`.
//! - APNs: HTTP/2, an ES256 provider token (`kid`, `iss` = team, `iat`) reused for 50
//!   minutes; `POST {base}/3/device/{token}` with `apns-topic`, `apns-push-type`,
//!   `apns-priority`, `apns-collapse-id`.
//!
//! Exactly once per device: each send is claimed in `push_sends` before the provider is
//! called. A dead token (FCM `UNREGISTERED`, APNs 410 or `BadDeviceToken`) removes the
//! device; rate limits and server errors leave the send in `retry` and fail the job so
//! it is retried with backoff; other refusals are permanent (`failed`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use wp_shared::{
    config::{ApnsConfig, FcmConfig},
    jobs::SendPush,
};

use crate::{Ctx, notify};

/// What a provider said about one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// The token will never work again: forget the device.
    Dead(String),
    /// Try again later (rate limited, provider trouble, expired credentials).
    Retry(String),
    /// Refused for good (a malformed request, say).
    Failed(String),
}

/// A push as the providers get it.
#[derive(Debug, Clone)]
pub struct Message {
    pub title: String,
    pub body: String,
    pub link: String,
    pub kind: String,
    /// Also the collapse id: a repeated delivery of one event replaces, not adds.
    pub event_id: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    token_uri: String,
}

pub struct Fcm {
    base: String,
    project: String,
    client_email: String,
    token_uri: String,
    key: EncodingKey,
    /// Held while a token is fetched, so concurrent sends wait for one fetch.
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

impl Fcm {
    pub fn new(cfg: &FcmConfig) -> anyhow::Result<Self> {
        let raw = std::fs::read(&cfg.service_account_file).map_err(|e| {
            anyhow::anyhow!(
                "FCM_SERVICE_ACCOUNT_FILE {}: {e}",
                cfg.service_account_file.display()
            )
        })?;
        let sa: ServiceAccount = serde_json::from_slice(&raw).map_err(|e| {
            anyhow::anyhow!("FCM_SERVICE_ACCOUNT_FILE is not a service account: {e}")
        })?;
        Ok(Self {
            base: cfg.base_url.trim_end_matches('/').to_owned(),
            key: EncodingKey::from_rsa_pem(sa.private_key.as_bytes())
                .map_err(|e| anyhow::anyhow!("FCM service account private_key: {e}"))?,
            project: sa.project_id,
            client_email: sa.client_email,
            token_uri: sa.token_uri,
            token: tokio::sync::Mutex::new(None),
        })
    }

    async fn access_token(&self, http: &reqwest::Client) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let assertion = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &Assertion {
                iss: &self.client_email,
                scope: "https://www.googleapis.com/auth/firebase.messaging",
                aud: &self.token_uri,
                iat: now,
                exp: now + 3600,
            },
            &self.key,
        )
        .map_err(|e| format!("signing the assertion: {e}"))?;
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            expires_in: u64,
        }
        let res = http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("token endpoint answered {}", res.status()));
        }
        let t: TokenAnswer = res.json().await.map_err(|e| format!("token answer: {e}"))?;
        // Renewed a minute before it runs out.
        let until = Instant::now() + Duration::from_secs(t.expires_in.saturating_sub(60));
        *cached = Some((t.access_token.clone(), until));
        Ok(t.access_token)
    }

    pub async fn send(&self, http: &reqwest::Client, token: &str, m: &Message) -> Outcome {
        let access = match self.access_token(http).await {
            Ok(a) => a,
            Err(e) => return Outcome::Retry(e),
        };
        let body = json!({ "message": {
            "token": token,
            "notification": { "title": m.title, "body": m.body },
            "data": { "link": m.link, "kind": m.kind, "event_id": m.event_id },
            "android": { "collapse_key": m.event_id, "priority": "high" },
        }});
        let res = match http
            .post(format!(
                "{}/v1/projects/{}/messages:send",
                self.base, self.project
            ))
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("FCM: {e}")),
        };
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        match status {
            200 => Outcome::Sent,
            404 => Outcome::Dead("UNREGISTERED".into()),
            400 if text.contains("UNREGISTERED") => Outcome::Dead("UNREGISTERED".into()),
            401 => {
                *self.token.lock().await = None;
                Outcome::Retry("FCM refused the access token".into())
            }
            429 | 500..=599 => Outcome::Retry(format!("FCM answered {status}")),
            _ => Outcome::Failed(format!(
                "FCM answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )),
        }
    }
}

pub struct Apns {
    base: String,
    topic: String,
    key_id: String,
    team_id: String,
    key: EncodingKey,
    jwt: Mutex<Option<(String, Instant)>>,
}

impl Apns {
    pub fn new(cfg: &ApnsConfig) -> anyhow::Result<Self> {
        let pem = std::fs::read(&cfg.key_file)
            .map_err(|e| anyhow::anyhow!("APNS_KEY_FILE {}: {e}", cfg.key_file.display()))?;
        Ok(Self {
            base: cfg.base_url.trim_end_matches('/').to_owned(),
            topic: cfg.topic.clone(),
            key_id: cfg.key_id.clone(),
            team_id: cfg.team_id.clone(),
            key: EncodingKey::from_ec_pem(&pem)
                .map_err(|e| anyhow::anyhow!("APNS_KEY_FILE is not a P-256 key: {e}"))?,
            jwt: Mutex::new(None),
        })
    }

    /// The provider token: Apple refuses one older than an hour and throttles fresh ones
    /// made more often than every 20 minutes, so it is reused for 50.
    fn provider_token(&self) -> Result<String, String> {
        if let Some((t, until)) = lock(&self.jwt).as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            iat: i64,
        }
        let t = jsonwebtoken::encode(
            &header,
            &Claims {
                iss: &self.team_id,
                iat: chrono::Utc::now().timestamp(),
            },
            &self.key,
        )
        .map_err(|e| format!("signing the provider token: {e}"))?;
        *lock(&self.jwt) = Some((t.clone(), Instant::now() + Duration::from_secs(50 * 60)));
        Ok(t)
    }

    pub async fn send(&self, http: &reqwest::Client, token: &str, m: &Message) -> Outcome {
        // The token goes into the request path: a row older than the check at
        // registration must not steer the request elsewhere.
        if wp_core::device::token_problem(wp_core::device::Platform::Ios, token).is_some() {
            return Outcome::Dead("BadDeviceToken (malformed)".into());
        }
        let jwt = match self.provider_token() {
            Ok(t) => t,
            Err(e) => return Outcome::Retry(e),
        };
        let body = json!({
            "aps": { "alert": { "title": m.title, "body": m.body }, "sound": "default" },
            "link": m.link, "kind": m.kind, "event_id": m.event_id,
        });
        let res = match http
            .post(format!("{}/3/device/{token}", self.base))
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-collapse-id", &m.event_id)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("APNs: {e}")),
        };
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        match status {
            200 => Outcome::Sent,
            410 => Outcome::Dead("Unregistered".into()),
            400 if text.contains("BadDeviceToken") => Outcome::Dead("BadDeviceToken".into()),
            403 if text.contains("ExpiredProviderToken") => {
                *lock(&self.jwt) = None;
                Outcome::Retry("APNs: ExpiredProviderToken".into())
            }
            429 | 500..=599 => Outcome::Retry(format!("APNs answered {status}")),
            _ => Outcome::Failed(format!(
                "APNs answered {status}: {}",
                text.chars().take(200).collect::<String>()
            )),
        }
    }
}

/// The configured providers of a worker process.
pub struct Providers {
    http: reqwest::Client,
    /// APNs needs HTTP/2: negotiated by TLS ALPN, or prior knowledge on plain http.
    http2: reqwest::Client,
    pub fcm: Option<Fcm>,
    pub apns: Option<Apns>,
}

impl Providers {
    pub fn from_config(config: &wp_shared::Config) -> anyhow::Result<Self> {
        let apns = config.apns.as_ref().map(Apns::new).transpose()?;
        let plain_h2 = config
            .apns
            .as_ref()
            .is_some_and(|a| a.base_url.starts_with("http://"));
        let roots = match &config.push_ca_file {
            Some(file) => {
                let pem = std::fs::read(file)
                    .map_err(|e| anyhow::anyhow!("PUSH_CA_FILE {}: {e}", file.display()))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| anyhow::anyhow!("PUSH_CA_FILE {}: {e}", file.display()))?;
                if certs.is_empty() {
                    anyhow::bail!("PUSH_CA_FILE {}: no PEM certificate in it", file.display());
                }
                certs
            }
            None => Vec::new(),
        };
        let builder = || {
            roots.iter().fold(
                reqwest::Client::builder().timeout(config.push_timeout),
                |b, c| b.add_root_certificate(c.clone()),
            )
        };
        let mut h2 = builder();
        if plain_h2 {
            h2 = h2.http2_prior_knowledge();
        }
        Ok(Self {
            http: builder().build()?,
            http2: h2.build()?,
            fcm: config.fcm.as_ref().map(Fcm::new).transpose()?,
            apns,
        })
    }

    /// Whether a device of `platform` can be reached.
    pub fn serves(&self, platform: &str) -> bool {
        match platform {
            "ios" => self.apns.is_some(),
            _ => self.fcm.is_some(),
        }
    }

    pub async fn send(&self, platform: &str, token: &str, m: &Message) -> Outcome {
        match (platform, &self.apns, &self.fcm) {
            ("ios", Some(apns), _) => apns.send(&self.http2, token, m).await,
            ("android" | "web", _, Some(fcm)) => fcm.send(&self.http, token, m).await,
            _ => Outcome::Failed(format!("no push provider configured for {platform}")),
        }
    }
}

/// A transient failure of some sends: the job is retried (apalis backoff).
#[derive(Debug, thiserror::Error)]
#[error("{0} push send(s) to retry: {1}")]
pub struct RetryLater(usize, String);

/// Users whose devices are claimed in one statement. Claims are made only as the sends
/// need them (the pipeline pulls the next chunk when a send slot frees up), so a worker
/// that dies leaves at most the sends in flight and one chunk claimed-but-unconfirmed
/// (never repeated: they may have gone out), not the rest of its batch.
pub const CHUNK: usize = 128;
/// Sends in flight per job.
pub const IN_FLIGHT: usize = 64;

/// A device claimed for a send.
struct Claimed {
    device_id: String,
    user_id: Uuid,
    platform: String,
    token: String,
    locale: String,
}

pub async fn send_push(
    job: SendPush,
    ctx: Data<Arc<Ctx>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let Some(mut texts) = notify::push_texts(&ctx, job.event_id).await? else {
        return Ok(());
    };
    // The texts in each recipient's locale, rendered before anything is claimed.
    let mut locales = sqlx::query_scalar!(
        "SELECT DISTINCT locale FROM users WHERE id = ANY($1)",
        &job.user_ids
    )
    .fetch_all(&ctx.db)
    .await?;
    locales.push("en".to_owned());
    let mut messages = HashMap::new();
    for locale in locales {
        match texts.get(&locale, &ctx.config.frontend_url) {
            Ok(r) => {
                messages.insert(
                    locale,
                    Message {
                        title: r.title.clone(),
                        body: r.body.clone(),
                        link: r.link.clone(),
                        kind: texts.kind.to_owned(),
                        event_id: job.event_id.to_string(),
                    },
                );
            }
            // Their sends fail (`failed`); the others go.
            Err(e) => tracing::warn!(error = %e, locale, "push texts did not render"),
        }
    }
    let (kind, event_at, event) = (texts.kind, texts.created_at, job.event_id);
    // Three stages, each a task of its own so none waits for another: claims (a chunk
    // of users at a time, only as fast as the sends take them: the hand-over holds at
    // most a chunk's devices), sends (IN_FLIGHT at once), outcomes recorded in batches.
    let (shared, messages) = (Arc::clone(&ctx), Arc::new(messages));
    let (dev_tx, mut dev_rx) = tokio::sync::mpsc::channel::<Claimed>(CHUNK);
    let chunks: Vec<Vec<Uuid>> = job.user_ids.chunks(CHUNK).map(<[Uuid]>::to_vec).collect();
    let claimer = {
        let ctx = shared.clone();
        tokio::spawn(async move {
            for users in chunks {
                for d in claim(&ctx, event, &users).await? {
                    if dev_tx.send(d).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Ok::<_, sqlx::Error>(())
        })
    };
    let _stop_claims = AbortOnDrop(claimer.abort_handle());
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<(Claimed, Outcome)>();
    let recorder = {
        let ctx = shared.clone();
        tokio::spawn(async move {
            let (mut stats, mut retry, mut batch) = (Vec::new(), Vec::new(), Vec::new());
            let mut failure = None;
            while out_rx.recv_many(&mut batch, 256).await > 0 {
                let done = std::mem::take(&mut batch);
                // A database blip must not lose outcomes: a few tries, then give up (the
                // sends stop; those recorded so far stand).
                let mut tries = 0;
                loop {
                    match record_outcomes(
                        &ctx, event, kind, event_at, &done, &mut stats, &mut retry,
                    )
                    .await
                    {
                        Ok(()) => break,
                        Err(e) if tries < 4 => {
                            tries += 1;
                            tracing::warn!(error = %e, tries, "push outcomes not recorded; trying again");
                            tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                if failure.is_some() {
                    break;
                }
            }
            (stats, retry, failure)
        })
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut sends = tokio::task::JoinSet::new();
    while let Some(d) = dev_rx.recv().await {
        if recorder.is_finished() {
            break; // outcomes can no longer be recorded: send no more
        }
        let slot = slots.clone().acquire_owned().await?;
        let (ctx, messages, out) = (shared.clone(), messages.clone(), out_tx.clone());
        sends.spawn(async move {
            let _ = out.send(send_one(&ctx, &messages, d).await);
            drop(slot);
        });
        while sends.try_join_next().is_some() {}
    }
    drop(dev_rx);
    while sends.join_next().await.is_some() {}
    drop(out_tx);
    // Both stages end before the job does (what was sent is recorded, or the job fails).
    let claimed = claimer.await;
    let (stats, retry, failure) = recorder.await?;
    notify::record(&ctx, stats);
    if let Some(e) = failure {
        return Err(e.into());
    }
    claimed??;
    if retry.is_empty() {
        return Ok(());
    }
    let err = RetryLater(retry.len(), retry[0].clone());
    if crate::retry::last_attempt(&ctx.config, &attempt) {
        // The last attempt: what is left in `retry` failed for good; the job goes to
        // the dead set (a replay resends exactly those).
        tracing::warn!(event = %job.event_id, sends = retry.len(), "push sends given up");
        return Err(AbortError::new(err).into());
    }
    Err(Box::new(err))
}

/// Aborts a task when dropped (a push job dropped at shutdown claims nothing more).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One send, to the provider of the device's platform.
async fn send_one(
    ctx: &Ctx,
    messages: &HashMap<String, Message>,
    d: Claimed,
) -> (Claimed, Outcome) {
    // A locale changed since the texts were rendered falls back to English.
    let outcome = match messages.get(&d.locale).or_else(|| messages.get("en")) {
        Some(m) => ctx.push.send(&d.platform, &d.token, m).await,
        None => Outcome::Failed("the texts did not render".into()),
    };
    (d, outcome)
}

/// Claims the devices of `users` (a send that went out, or may have, is not claimed
/// again — only those left in `retry` are).
async fn claim(ctx: &Ctx, event: Uuid, users: &[Uuid]) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"INSERT INTO push_sends (event_id, device_id, user_id, platform, status)
           SELECT $1, d.device_id, d.user_id, d.platform, 'sending'
           FROM devices d JOIN users u ON u.id = d.user_id AND u.status = 'active'
           WHERE d.user_id = ANY($2)
           ON CONFLICT (event_id, device_id) DO UPDATE
           SET status = 'sending', attempts = push_sends.attempts + 1, updated_at = now()
           WHERE push_sends.status = 'retry'
           RETURNING device_id, user_id, platform,
                     (SELECT push_token FROM devices WHERE devices.device_id = push_sends.device_id) AS "token!",
                     (SELECT locale FROM users WHERE users.id = push_sends.user_id) AS "locale!""#,
        event,
        users
    )
    .fetch_all(&ctx.db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            device_id: r.device_id,
            user_id: r.user_id,
            platform: r.platform,
            token: r.token,
            locale: r.locale,
        })
        .collect())
}

/// Records what the provider said of some sends, and removes dead devices, in one
/// transaction.
async fn record_outcomes(
    ctx: &Ctx,
    event: Uuid,
    kind: &'static str,
    event_at: chrono::DateTime<chrono::Utc>,
    results: &[(Claimed, Outcome)],
    stats: &mut Vec<notify::Delivery>,
    retry: &mut Vec<String>,
) -> Result<(), sqlx::Error> {
    let mut devices = Vec::with_capacity(results.len());
    let mut statuses = Vec::with_capacity(results.len());
    let mut details: Vec<Option<String>> = Vec::with_capacity(results.len());
    let (mut dead_ids, mut dead_tokens) = (Vec::new(), Vec::new());
    for (d, outcome) in results {
        let (status, detail) = match outcome {
            Outcome::Sent => ("sent", None),
            Outcome::Dead(why) => ("dead", Some(why.clone())),
            Outcome::Retry(why) => ("retry", Some(why.clone())),
            Outcome::Failed(why) => ("failed", Some(why.clone())),
        };
        stats.push(notify::Delivery {
            kind,
            channel: "push",
            outcome: status,
            user: d.user_id,
            event,
            event_at,
            detail: detail.clone(),
        });
        match outcome {
            Outcome::Dead(_) => {
                dead_ids.push(d.device_id.clone());
                dead_tokens.push(d.token.clone());
            }
            Outcome::Retry(why) => retry.push(why.clone()),
            Outcome::Failed(why) => tracing::warn!(device = d.device_id, why, "push refused"),
            Outcome::Sent => {}
        }
        devices.push(d.device_id.clone());
        statuses.push(status.to_owned());
        details.push(detail);
    }
    let mut tx = ctx.db.begin().await?;
    // Not waiting for the WAL flush: an outcome lost to a database crash leaves its send
    // `sending`, which is never repeated either (the claim before the send is durable).
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "UPDATE push_sends p SET status = x.status, detail = x.detail, updated_at = now()
         FROM unnest($2::text[], $3::text[], $4::text[]) AS x(device_id, status, detail)
         WHERE p.event_id = $1 AND p.device_id = x.device_id",
        event,
        &devices,
        &statuses,
        &details as &[Option<String>]
    )
    .execute(&mut *tx)
    .await?;
    if !dead_ids.is_empty() {
        tracing::info!(
            count = dead_ids.len(),
            "push tokens are dead; devices removed"
        );
        sqlx::query!(
            "DELETE FROM devices d USING unnest($1::text[], $2::text[]) AS x(device_id, token)
             WHERE d.device_id = x.device_id AND d.push_token = x.token",
            &dead_ids,
            &dead_tokens
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
