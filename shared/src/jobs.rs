//! Job payloads and queues.
//!
//! The API and the scheduler know only what is here: the payloads (ids, never data)
//! and the queue each one travels on. The worker code that runs them lives in the
//! `workers` crate. Every job must be idempotent: delivery is at-least-once (a job whose
//! worker died is delivered again from the start).

use std::{fmt, str::FromStr, time::Duration};

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{ConnectionManager, RedisStorage};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::config::Config;

mod dead;

pub use dead::*;

/// One queue per kind of work, so ops can size a worker pool per queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// Single emails (SMTP).
    Email,
    /// Single push deliveries (FCM, APNs).
    Push,
    /// Notification fan-out: one domain event to many recipients.
    Notify,
    /// Search index updates.
    Search,
    /// CSV and data exports.
    Export,
    /// Analytics events into ClickHouse.
    Analytics,
    /// Media preparation (probe, faststart, thumbnails).
    Media,
    /// Platform housekeeping: outbox relay sweep, job-record vacuum, benchmarks.
    System,
}

impl Queue {
    pub const ALL: [Queue; 8] = [
        Queue::Email,
        Queue::Push,
        Queue::Notify,
        Queue::Search,
        Queue::Export,
        Queue::Analytics,
        Queue::Media,
        Queue::System,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Email => "email",
            Queue::Push => "push",
            Queue::Notify => "notify",
            Queue::Search => "search",
            Queue::Export => "export",
            Queue::Analytics => "analytics",
            Queue::Media => "media",
            Queue::System => "system",
        }
    }

    /// The apalis queue name in Redis: `{prefix}.{name}`. It must not contain `:`,
    /// or apalis-redis' pub/sub wake-up cannot route the `available` signal to it.
    pub fn redis_name(self, prefix: &str) -> String {
        format!("{prefix}.{}", self.name())
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Queue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Queue::ALL
            .into_iter()
            .find(|q| q.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Queue::ALL.iter().map(|q| q.name()).collect();
                format!("unknown queue `{s}` (known: {})", names.join(", "))
            })
    }
}

/// A job payload: which queue it travels on and how duplicates are recognised.
pub trait Job:
    Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + Unpin + 'static
{
    const QUEUE: Queue;

    /// Two pushes with the same key within the dedupe window enqueue one job.
    fn dedupe_key(&self) -> Option<String> {
        None
    }
}

/// Send one stored email (row in `emails`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    pub email_id: Uuid,
}

impl Job for SendEmail {
    const QUEUE: Queue = Queue::Email;
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("email:{}", self.email_id))
    }
}

/// A domain event (row in `domain_events`) for the notification pipeline to fan out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEvent {
    pub event_id: Uuid,
    /// For audiences cut into pages (a broadcast): which page (`broadcast_pages`). None
    /// for the event itself (a broadcast's planning, or an event for one user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i32>,
}

impl NotifyEvent {
    pub fn new(event_id: Uuid) -> Self {
        Self {
            event_id,
            page: None,
        }
    }
}

impl Job for NotifyEvent {
    const QUEUE: Queue = Queue::Notify;
    fn dedupe_key(&self) -> Option<String> {
        Some(match self.page {
            Some(page) => format!("event:{}:page:{page}", self.event_id),
            None => format!("event:{}", self.event_id),
        })
    }
}

/// Push one event's notification to the devices of some users (one user, or a page of a
/// broadcast's audience).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendPush {
    pub event_id: Uuid,
    pub user_ids: Vec<Uuid>,
}

impl Job for SendPush {
    const QUEUE: Queue = Queue::Push;
    fn dedupe_key(&self) -> Option<String> {
        // A batch is fixed by the event, its first user and its size (pages are walked
        // in id order and claimed once).
        Some(format!(
            "push:{}:{}:{}",
            self.event_id,
            self.user_ids.first().copied().unwrap_or_default(),
            self.user_ids.len()
        ))
    }
}

/// Build the owner's copy of their account data (row in `data_exports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportAccount {
    pub export_id: Uuid,
}

impl Job for ExportAccount {
    const QUEUE: Queue = Queue::Export;
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("export:{}", self.export_id))
    }
}

/// Make a staff CSV export (row in `table_exports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTable {
    pub table_export_id: Uuid,
}

impl Job for ExportTable {
    const QUEUE: Queue = Queue::Export;
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("table-export:{}", self.table_export_id))
    }
}

/// What the `export` queue carries: an account's own data, or a staff CSV export. The
/// payloads tell themselves apart by their field (`export_id`, `table_export_id`), so
/// jobs queued before this type existed still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExportJob {
    Account(ExportAccount),
    Table(ExportTable),
}

impl Job for ExportJob {
    const QUEUE: Queue = Queue::Export;
    fn dedupe_key(&self) -> Option<String> {
        match self {
            ExportJob::Account(j) => j.dedupe_key(),
            ExportJob::Table(j) => j.dedupe_key(),
        }
    }
}

/// Probe an uploaded video and prepare it for streaming (row in `videos`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareMedia {
    pub video_id: Uuid,
}

impl Job for PrepareMedia {
    const QUEUE: Queue = Queue::Media;
    fn dedupe_key(&self) -> Option<String> {
        Some(format!("media:{}", self.video_id))
    }
}

/// One analytics event for ClickHouse. The exception to "ids, not data": an event is
/// immutable data with no row anywhere else; its `event_id` makes re-delivery
/// harmless (the `events` table folds duplicates on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    pub event_id: Uuid,
    /// e.g. `video.download`, `video.view_start`.
    pub event_type: String,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub user_id: Option<Uuid>,
    pub party_id: Option<Uuid>,
    pub video_id: Option<Uuid>,
    #[serde(default)]
    pub properties: serde_json::Value,
}

impl AnalyticsEvent {
    /// The outbox key of an event recorded durably (`outbox::record_keyed`): its row
    /// stays until the event is in ClickHouse (the analytics writer clears it).
    pub fn outbox_key(event_id: Uuid) -> String {
        format!("analytics:{event_id}")
    }

    pub fn new(
        event_type: &str,
        user: Option<Uuid>,
        video: Option<Uuid>,
        properties: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            occurred_at: chrono::Utc::now(),
            user_id: user,
            party_id: None,
            video_id: video,
            properties,
        }
    }
}

impl Job for AnalyticsEvent {
    const QUEUE: Queue = Queue::Analytics;
}

/// What the `analytics` queue carries: one event (the API's, the sockets' and the
/// outbox's, pushed as a bare [`AnalyticsEvent`]), or a batch of client playback events
/// (`POST /api/analytics/events/`: one job per call, so a 500-event batch costs one
/// queue entry, not 500).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnalyticsJob {
    Batch { events: Vec<AnalyticsEvent> },
    One(AnalyticsEvent),
}

impl Job for AnalyticsJob {
    const QUEUE: Queue = Queue::Analytics;
}

/// Search index upkeep (docs/search.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SearchJob {
    /// Fold the recorded changes of every index into the search backend.
    Sync,
    /// Build an index (or all, when None) anew from the source tables and swap it in.
    Reindex { index: Option<String> },
    /// Run the saved searches with alerts that are due (at most daily each).
    Alerts,
}

impl Job for SearchJob {
    const QUEUE: Queue = Queue::Search;
}

/// Platform housekeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SystemJob {
    /// Relay outbox rows that were committed but not yet pushed to their queue.
    RelayOutbox,
    /// Remove finished job records older than the retention.
    VacuumJobs,
    /// Anonymise accounts whose deletion grace period is over; remove expired exports.
    PurgeAccounts,
    /// Send the notification digests that are due.
    SendDigests,
    /// Remove partial files that a process killed mid-write left in local storage.
    SweepParts,
    /// Close the party polls whose time is up and tell their parties' sockets.
    ClosePolls,
    /// Move events whose time has come (scheduled to live, live to ended).
    AdvanceEvents,
    /// Close support tickets resolved long enough ago; flag and notify SLA breaches.
    SupportSweep,
    /// Remove the mobile sync notes older than their retention.
    PruneSync,
    /// Drop ClickHouse partitions past their retention (raw events, minute activity).
    PruneAnalytics,
    /// Does nothing; used to measure the queue itself (`cargo bench`, load tool).
    Noop { seq: u64 },
}

impl Job for SystemJob {
    const QUEUE: Queue = Queue::System;
}

/// How long an idempotency key keeps a duplicate push out.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The apalis-redis settings of a queue, shared by producers and workers so both
/// address the same keys.
pub fn queue_config(config: &Config, queue: Queue) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(queue.redis_name(&config.redis_prefix))
        .heartbeat_interval(config.worker_heartbeat)
        .missed_heartbeats(config.worker_missed_heartbeats)
        .idempotency_ttl(Some(DEDUPE_WINDOW))
        .batch_size(50)
        // A PUBLISH per pushed job wakes idle workers at once (see `workers::run`).
        .emit_events(true)
}

/// A serialised payload and its optional dedupe key.
pub type RawJob = (serde_json::Value, Option<String>);

/// Error while pushing a job.
#[derive(Debug, thiserror::Error)]
#[error("could not enqueue a job on `{queue}`: {message}")]
pub struct EnqueueError {
    pub queue: Queue,
    pub message: String,
}

/// Pushes jobs onto their queues. Cheap to clone.
#[derive(Clone)]
pub struct Enqueuer {
    conn: ConnectionManager,
    config: Config,
}

impl fmt::Debug for Enqueuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enqueuer")
            .field("prefix", &self.config.redis_prefix)
            .finish()
    }
}

impl Enqueuer {
    pub fn new(conn: ConnectionManager, config: Config) -> Self {
        Self { conn, config }
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Storage handle for a queue with payload type `T` (raw JSON for the outbox relay).
    pub fn storage<T>(&self, queue: Queue) -> RedisStorage<T> {
        RedisStorage::new(self.conn.clone()).with_config(queue_config(&self.config, queue))
    }

    /// Pushes one job.
    pub async fn push<J: Job>(&self, job: J) -> Result<(), EnqueueError> {
        let key = job.dedupe_key();
        self.push_json(J::QUEUE, vec![(to_json(J::QUEUE, &job)?, key)])
            .await
    }

    /// Pushes many jobs of one kind in one round trip per batch.
    pub async fn push_many<J: Job>(&self, jobs: Vec<J>) -> Result<(), EnqueueError> {
        let items = jobs
            .into_iter()
            .map(|j| Ok((to_json(J::QUEUE, &j)?, j.dedupe_key())))
            .collect::<Result<Vec<_>, EnqueueError>>()?;
        self.push_json(J::QUEUE, items).await
    }

    /// Pushes already-serialised payloads (the outbox stores them as JSON), each with
    /// an optional dedupe key.
    pub async fn push_json(&self, queue: Queue, items: Vec<RawJob>) -> Result<(), EnqueueError> {
        let mut storage = self.storage::<serde_json::Value>(queue);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let tasks: Vec<_> = items
                .by_ref()
                .take(PUSH_CHUNK)
                .map(|(payload, key)| {
                    let mut b = TaskBuilder::new(payload);
                    if let Some(key) = key {
                        b = b.idempotency_key(key);
                    }
                    b.build()
                })
                .collect();
            storage
                .push_all(&mut futures::stream::iter(tasks))
                .await
                .map_err(|e| EnqueueError {
                    queue,
                    message: e.to_string(),
                })?;
            // apalis-redis files every push under "scheduled" (run at = now); move them
            // to the active list at once, which also wakes the workers.
            let mut conn = self.conn.clone();
            promote_due(&mut conn, &self.config, queue)
                .await
                .map_err(|e| EnqueueError {
                    queue,
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }
}

fn to_json<J: Job>(queue: Queue, job: &J) -> Result<serde_json::Value, EnqueueError> {
    serde_json::to_value(job).map_err(|e| EnqueueError {
        queue,
        message: format!("payload does not serialise: {e}"),
    })
}

/// Jobs pushed per round trip.
const PUSH_CHUNK: usize = 1000;

static PROMOTE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("promote.lua")));

/// Moves the jobs of `queue` that are due (pushed, or retries whose backoff ended)
/// from its scheduled set to its active list and wakes idle workers. Returns how many
/// moved. Workers run this every few hundred milliseconds (see `workers::run`).
pub async fn promote_due(
    conn: &mut ConnectionManager,
    config: &Config,
    queue: Queue,
) -> redis::RedisResult<u64> {
    let qc = queue_config(config, queue);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    PROMOTE
        .key(qc.scheduled_jobs_set())
        .key(qc.active_jobs_list())
        .key(qc.signal_list())
        .arg(now)
        .arg(100_000)
        .arg(format!("tasks:{}:available", qc.active_jobs_list()))
        .invoke_async(conn)
        .await
}

/// Depth of one queue, read with plain Redis commands (apalis' own metrics calls are
/// broken in 1.0, see docs/design-notes.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QueueDepth {
    /// Waiting to run now.
    pub active: u64,
    /// Waiting for a later time (delayed jobs and retries in backoff).
    pub scheduled: u64,
    /// Taken by a worker, not finished.
    pub inflight: u64,
    /// Given up after the last attempt or aborted as permanent; kept for inspection.
    pub dead: u64,
    /// Workers whose heartbeat is recent (within the missed-heartbeat window): the
    /// consumers the queue really has.
    pub workers: u64,
    /// Worker registrations, live or not yet reaped (a stopped worker stays
    /// registered until another one's heartbeat finds it lapsed).
    pub registered: u64,
    /// How long the job at the head of the active list has existed (seconds since it
    /// was first pushed: a retry counts from its first push), or none when nothing
    /// waits.
    pub oldest_waiting_secs: Option<f64>,
}

/// The creation time (Unix milliseconds) in a job id: apalis ids are ULIDs, whose
/// first ten Crockford base-32 characters are a 48-bit millisecond timestamp.
pub fn ulid_millis(id: &str) -> Option<u64> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    if id.len() != 26 {
        return None;
    }
    id.bytes().take(10).try_fold(0u64, |acc, c| {
        let digit = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())?;
        Some(acc * 32 + digit as u64)
    })
}

/// How long the per-minute counters of finished jobs are kept.
const FINISHED_KEEP_SECS: u64 = 2 * 3600;

fn finished_key(prefix: &str, minute: u64) -> String {
    format!("{prefix}:jobs:finished:{minute}")
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Counts a finished job attempt of `queue` with `outcome` (`succeeded`, `retried`,
/// `dead`) in this minute's counter, shared by every worker process: the throughput the
/// admin panel shows ([`finished_per_minute`]). Kept two hours.
pub async fn count_finished(
    conn: &mut ConnectionManager,
    prefix: &str,
    queue: Queue,
    outcome: &str,
) -> redis::RedisResult<()> {
    let key = finished_key(prefix, unix_secs() / 60);
    redis::pipe()
        .hincr(&key, format!("{}:{outcome}", queue.name()), 1)
        .ignore()
        .expire(&key, FINISHED_KEEP_SECS as i64)
        .ignore()
        .query_async::<()>(conn)
        .await
}

/// Job attempts finished per minute over the last `minutes` whole minutes (the current
/// one left out, as it is still counting), by `queue:outcome`.
pub async fn finished_per_minute(
    conn: &mut ConnectionManager,
    prefix: &str,
    minutes: u64,
) -> redis::RedisResult<std::collections::BTreeMap<String, f64>> {
    let now = unix_secs() / 60;
    let mut pipe = redis::pipe();
    for m in 1..=minutes.max(1) {
        pipe.hgetall(finished_key(prefix, now - m));
    }
    let counts: Vec<std::collections::HashMap<String, u64>> = pipe.query_async(conn).await?;
    let mut total = std::collections::BTreeMap::new();
    for c in counts {
        for (k, v) in c {
            *total.entry(k).or_insert(0.0) += v as f64;
        }
    }
    for v in total.values_mut() {
        *v /= minutes.max(1) as f64;
    }
    Ok(total)
}

/// Reads the depth of `queue`.
pub async fn queue_depth(
    conn: &mut ConnectionManager,
    config: &Config,
    queue: Queue,
) -> redis::RedisResult<QueueDepth> {
    let qc = queue_config(config, queue);
    // Heartbeats are Unix seconds (the score of each worker in the set).
    let window = config.worker_heartbeat.as_secs()
        * u64::try_from(config.worker_missed_heartbeats).unwrap_or(u64::MAX);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .saturating_sub(window);
    #[allow(clippy::type_complexity, reason = "one pipeline's replies, in order")]
    let (active, scheduled, dead, workers, live, head): (
        u64,
        u64,
        u64,
        Vec<String>,
        u64,
        Option<String>,
    ) = redis::pipe()
        .llen(qc.active_jobs_list())
        .zcard(qc.scheduled_jobs_set())
        .scard(qc.dead_jobs_set())
        .zrange(qc.workers_set(), 0, -1)
        .zcount(qc.workers_set(), since, "+inf")
        .lindex(qc.active_jobs_list(), 0)
        .query_async(conn)
        .await?;
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX);
    let oldest_waiting_secs = head
        .as_deref()
        .and_then(ulid_millis)
        .map(|at| now_ms.saturating_sub(at) as f64 / 1000.0);
    let mut inflight = 0;
    if !workers.is_empty() {
        let mut pipe = redis::pipe();
        for w in &workers {
            pipe.scard(format!("{}:{w}", qc.inflight_jobs_set()));
        }
        let counts: Vec<u64> = pipe.query_async(conn).await?;
        inflight = counts.into_iter().sum();
    }
    Ok(QueueDepth {
        active,
        scheduled,
        inflight,
        dead,
        workers: live,
        registered: workers.len() as u64,
        oldest_waiting_secs,
    })
}

#[cfg(test)]
mod tests;
