//! Playback events from clients (`POST /api/analytics/events/`): batches of up to
//! [`BATCH_MAX`], each event checked field by field, its video checked visible to the
//! sender and its party one the sender belongs to, its time clamped to the last
//! [`MAX_AGE_DAYS`] days, deduplicated by event id, and turned into an
//! [`AnalyticsEvent`] whose properties the server writes (the video's duration from the
//! library, the country from the sender's locale), never the client's raw JSON.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use wp_shared::jobs::AnalyticsEvent;

use crate::account::Actor;

/// Events per call.
pub const BATCH_MAX: usize = 500;
/// Older client times are clamped to this many days ago.
pub const MAX_AGE_DAYS: i64 = 7;
/// How long an event id is remembered against re-sends, at least (at most a day more).
pub const DEDUPE_SECONDS: u64 = 2 * 86_400;
/// Media seconds one progress report may cover (reports come every 10 s; 16× rate).
pub const SPAN_MAX: f64 = 600.0;
/// Seconds of playback one progress report may claim.
pub const WATCHED_MAX: f64 = 120.0;
/// The longest position accepted (48 hours).
pub const POSITION_MAX: f64 = 172_800.0;

crate::text_enum! {
    /// What happened in the player.
    pub enum PlaybackEventType as "event type" {
        /// A view began (counted as a view).
        ViewStart = "view_start",
        /// A span played since the last report (`from` → `position`), every 10 s.
        Progress = "progress",
        /// A jump from `from` to `position`.
        Seek = "seek",
        Play = "play",
        Pause = "pause",
        /// Playback stalled for `buffering_ms`.
        Buffer = "buffer",
        /// The rendition changed to `quality`.
        Quality = "quality",
        /// The end was reached.
        End = "end",
    }
}

crate::text_enum! {
    /// Where a view came from.
    pub enum TrafficSource as "traffic source" {
        Direct = "direct",
        Party = "party",
        Event = "event",
        Search = "search",
        Share = "share",
    }
}

crate::text_enum! {
    /// The client that sent an event.
    pub enum ClientPlatform as "platform" {
        Web = "web",
        Ios = "ios",
        Android = "android",
        Desktop = "desktop",
        Tv = "tv",
    }
}

impl PlaybackEventType {
    /// The `event_type` in ClickHouse.
    pub fn event_type(self) -> String {
        match self {
            Self::ViewStart => "video.view_start".to_owned(),
            other => format!("playback.{}", other.as_str()),
        }
    }
}

/// One event as a client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybackEvent {
    /// The client's id for the event: a re-sent event is counted once.
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: PlaybackEventType,
    pub video_id: Uuid,
    /// The party it was watched in (one the sender belongs to); none: alone.
    pub party_id: Option<Uuid>,
    /// When it happened (clamped to the last 7 days, never later than now).
    pub occurred_at: DateTime<Utc>,
    /// Seconds into the video (for `seek`, where it landed).
    #[schema(minimum = 0.0, maximum = 172800.0)]
    pub position: f64,
    /// `progress`: where the span began; `seek`: where it jumped from. Required there.
    #[schema(minimum = 0.0, maximum = 172800.0)]
    pub from: Option<f64>,
    /// `progress`: seconds of playback in the span (default: `position - from`).
    #[schema(minimum = 0.0, maximum = 120.0)]
    pub watched: Option<f64>,
    /// `buffer`: how long playback stalled. Required there.
    #[schema(maximum = 600000)]
    pub buffering_ms: Option<u64>,
    /// `quality`: the rendition (`720p`). Required there.
    #[schema(pattern = r"^[A-Za-z0-9-]{1,16}$")]
    pub quality: Option<String>,
    /// The playback rate (1 = normal speed).
    #[schema(minimum = 0.0625, maximum = 16.0)]
    pub rate: Option<f64>,
    pub source: Option<TrafficSource>,
    pub platform: Option<ClientPlatform>,
}

/// A batch.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaybackBatch {
    /// 1 to 500 events.
    #[schema(min_items = 1, max_items = 500)]
    pub events: Vec<PlaybackEvent>,
}

/// A field of the batch that is not right: `events[3].position`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    pub field: String,
    pub message: &'static str,
}

fn problem(i: usize, field: &str, message: &'static str) -> FieldProblem {
    FieldProblem {
        field: format!("events[{i}].{field}"),
        message,
    }
}

fn seconds_ok(x: f64) -> bool {
    x.is_finite() && (0.0..=POSITION_MAX).contains(&x)
}

impl PlaybackBatch {
    /// The first field that is not right, if any.
    pub fn check(&self) -> Result<(), FieldProblem> {
        if self.events.is_empty() || self.events.len() > BATCH_MAX {
            return Err(FieldProblem {
                field: "events".into(),
                message: "From 1 to 500 events.",
            });
        }
        let mut ids = HashSet::new();
        for (i, e) in self.events.iter().enumerate() {
            if !ids.insert(e.event_id) {
                return Err(problem(i, "event_id", "Given twice in this batch."));
            }
            e.check(i)?;
        }
        Ok(())
    }
}

impl PlaybackEvent {
    fn check(&self, i: usize) -> Result<(), FieldProblem> {
        use PlaybackEventType as T;
        if !seconds_ok(self.position) {
            return Err(problem(i, "position", "Seconds, from 0 to 172800."));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && (0.0625..=16.0).contains(&r))
        {
            return Err(problem(i, "rate", "From 0.0625 to 16."));
        }
        match (self.kind, self.from) {
            (T::Progress | T::Seek, None) => {
                return Err(problem(i, "from", "Required for progress and seek."));
            }
            (_, Some(f)) if !seconds_ok(f) => {
                return Err(problem(i, "from", "Seconds, from 0 to 172800."));
            }
            (T::Progress, Some(f)) if f > self.position || self.position - f > SPAN_MAX => {
                return Err(problem(
                    i,
                    "from",
                    "At most `position`, and at most 600 s before it.",
                ));
            }
            _ => {}
        }
        if let Some(w) = self.watched
            && !(w.is_finite() && (0.0..=WATCHED_MAX).contains(&w))
        {
            return Err(problem(i, "watched", "Seconds, from 0 to 120."));
        }
        match (self.kind, self.buffering_ms) {
            (T::Buffer, None) => return Err(problem(i, "buffering_ms", "Required for buffer.")),
            (_, Some(ms)) if ms > 600_000 => {
                return Err(problem(i, "buffering_ms", "At most 600000."));
            }
            _ => {}
        }
        match (self.kind, self.quality.as_deref()) {
            (T::Quality, None) => return Err(problem(i, "quality", "Required for quality.")),
            (_, Some(q))
                if q.is_empty()
                    || q.len() > 16
                    || !q.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
            {
                return Err(problem(
                    i,
                    "quality",
                    "1 to 16 letters, digits or dashes (`720p`).",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The seconds of playback this report claims (progress only).
    fn watched_seconds(&self) -> Option<f64> {
        (self.kind == PlaybackEventType::Progress).then(|| {
            self.watched
                .unwrap_or_else(|| self.position - self.from.unwrap_or(self.position))
                .min(WATCHED_MAX)
        })
    }
}

/// The country of a locale (`en-US` → `US`, `pt_BR` → `BR`), if it names one.
pub fn country(locale: &str) -> Option<String> {
    let region = locale.split(['-', '_']).nth(1)?;
    (region.len() == 2 && region.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| region.to_ascii_uppercase())
}

/// `t` clamped to the accepted window at `now`.
pub fn clamp_time(t: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    t.clamp(now - TimeDelta::days(MAX_AGE_DAYS), now)
}

/// An event not taken, and why.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Rejected {
    /// Its place in the batch.
    pub index: usize,
    pub event_id: Uuid,
    /// `video_id` or `party_id`.
    pub field: &'static str,
    pub message: &'static str,
}

/// What the sender may refer to: the visible videos among those named (with their
/// durations), the parties among those named that the sender belongs to, and the
/// sender's country.
#[derive(Debug, Default)]
pub struct Refs {
    pub videos: HashMap<Uuid, Option<f64>>,
    pub parties: HashSet<Uuid>,
    pub country: Option<String>,
}

/// Reads [`Refs`] for `batch` sent by `me`.
pub async fn refs(db: &sqlx::PgPool, me: &Actor, batch: &PlaybackBatch) -> sqlx::Result<Refs> {
    let mut videos: Vec<Uuid> = batch.events.iter().map(|e| e.video_id).collect();
    videos.sort_unstable();
    videos.dedup();
    let mut parties: Vec<Uuid> = batch.events.iter().filter_map(|e| e.party_id).collect();
    parties.sort_unstable();
    parties.dedup();
    let seen: Vec<(Uuid, Option<f64>)> = sqlx::query_as(
        "SELECT v.id, v.duration_seconds FROM videos v
          WHERE v.id = ANY($1) AND video_visible_to(v.owner_id, v.status, v.visibility, $2, $3)",
    )
    .bind(&videos)
    .bind(me.id)
    .bind(me.is_staff())
    .fetch_all(db)
    .await?;
    Ok(Refs {
        videos: seen.into_iter().collect(),
        parties: parties_of(db, me.id, &parties).await?,
        country: country_of(db, me.id).await?,
    })
}

/// Those of `parties` that `user` hosts or is a member of.
pub async fn parties_of(
    db: &sqlx::PgPool,
    user: Uuid,
    parties: &[Uuid],
) -> sqlx::Result<HashSet<Uuid>> {
    if parties.is_empty() {
        return Ok(HashSet::new());
    }
    let mine: Vec<Uuid> = sqlx::query_scalar(
        "SELECT party_id FROM party_members WHERE user_id = $1 AND party_id = ANY($2)
         UNION SELECT id FROM parties WHERE host_id = $1 AND id = ANY($2)",
    )
    .bind(user)
    .bind(parties)
    .fetch_all(db)
    .await?;
    Ok(mine.into_iter().collect())
}

/// The country of `user`'s locale, if it names one.
pub async fn country_of(db: &sqlx::PgPool, user: Uuid) -> sqlx::Result<Option<String>> {
    let locale: Option<String> = sqlx::query_scalar("SELECT locale FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(db)
        .await?;
    Ok(locale.as_deref().and_then(country))
}

/// The properties of a `video.view_start` (the same keys the batch writes).
pub fn view_properties(
    position: f64,
    source: Option<TrafficSource>,
    platform: Option<ClientPlatform>,
    country: Option<&str>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut props = serde_json::Map::new();
    props.insert("position".into(), json!(position));
    if let Some(s) = source {
        props.insert("source".into(), json!(s.as_str()));
    }
    if let Some(p) = platform {
        props.insert("platform".into(), json!(p.as_str()));
    }
    if let Some(c) = country {
        props.insert("country".into(), json!(c));
    }
    props
}

/// The events of `batch` to record (by their place in the batch) and those rejected.
pub fn prepare(
    me: &Actor,
    batch: &PlaybackBatch,
    refs: &Refs,
    now: DateTime<Utc>,
) -> (Vec<(usize, AnalyticsEvent)>, Vec<Rejected>) {
    let mut take = Vec::new();
    let mut rejected = Vec::new();
    for (index, e) in batch.events.iter().enumerate() {
        let Some(duration) = refs.videos.get(&e.video_id) else {
            rejected.push(Rejected {
                index,
                event_id: e.event_id,
                field: "video_id",
                message: "No such video that you may see.",
            });
            continue;
        };
        if let Some(p) = e.party_id
            && !refs.parties.contains(&p)
        {
            rejected.push(Rejected {
                index,
                event_id: e.event_id,
                field: "party_id",
                message: "Not a party of yours.",
            });
            continue;
        }
        let mut props = view_properties(e.position, e.source, e.platform, refs.country.as_deref());
        if let Some(f) = e.from {
            props.insert("from".into(), json!(f));
        }
        if let (PlaybackEventType::Progress, Some(d)) = (e.kind, duration) {
            props.insert("duration".into(), json!(d));
        }
        if let Some(w) = e.watched_seconds() {
            props.insert("watched".into(), json!(w));
        }
        if let Some(ms) = e.buffering_ms {
            props.insert("buffering_ms".into(), json!(ms));
        }
        if let Some(q) = &e.quality {
            props.insert("quality".into(), json!(q));
        }
        if let Some(r) = e.rate {
            props.insert("rate".into(), json!(r));
        }
        take.push((
            index,
            AnalyticsEvent {
                event_id: e.event_id,
                event_type: e.kind.event_type(),
                occurred_at: clamp_time(e.occurred_at, now),
                user_id: Some(me.id),
                party_id: e.party_id,
                video_id: Some(e.video_id),
                properties: serde_json::Value::Object(props),
            },
        ));
    }
    (take, rejected)
}

/// The prefix of the Redis keys remembering the taken event ids
/// (`{prefix}:analytics:seen:{day}:...`, see `dedupe_mark.lua`).
pub fn seen_base(prefix: &str) -> String {
    format!("{prefix}:analytics:seen:")
}

/// The day an event id is remembered under: days since the Unix epoch at `now`.
pub fn dedupe_day(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(86_400)
}

static MARK: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("dedupe_mark.lua")));
static UNMARK: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("dedupe_unmark.lua")));

/// Each id's shard hash (its top bits pick the shard; all the id's bits count, so
/// ids that differ anywhere spread), its bytes and, with `text`, the id as text (the
/// first design's key, still read).
fn id_args(inv: &mut redis::ScriptInvocation<'_>, ids: &[Uuid], text: bool) {
    for id in ids {
        let v = id.as_u128();
        let folded = (v as u64) ^ ((v >> 64) as u64);
        let hash = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        inv.arg(hash).arg(id.as_bytes().as_slice());
        if text {
            inv.arg(id.to_string());
        }
    }
}

/// Marks each event id as taken on `day` ([`dedupe_day`]); for each, whether it was
/// new (not taken that day, the two before or the one after: an id is remembered for
/// at least [`DEDUPE_SECONDS`]). Ids live in small per-day hashes, about 24 bytes each
/// in Redis (`dedupe_mark.lua`; a standalone Redis).
pub async fn mark_new(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    day: i64,
    ids: &[Uuid],
) -> redis::RedisResult<Vec<bool>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Today's keys serve the lookups of the two days after.
    let expire_at = (day + 3) * 86_400 + 3_600;
    let mut inv = MARK.prepare_invoke();
    inv.arg(seen_base(prefix)).arg(day).arg(expire_at);
    id_args(&mut inv, ids, true);
    let answers: Vec<i64> = inv.invoke_async(redis).await?;
    Ok(answers.into_iter().map(|a| a == 1).collect())
}

/// Forgets that `ids` were taken on `day` (their enqueue failed: a re-send must be
/// taken).
pub async fn unmark(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    day: i64,
    ids: &[Uuid],
) -> redis::RedisResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut inv = UNMARK.prepare_invoke();
    inv.arg(seen_base(prefix)).arg(day);
    id_args(&mut inv, ids, false);
    let _: i64 = inv.invoke_async(redis).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: PlaybackEventType) -> PlaybackEvent {
        PlaybackEvent {
            event_id: Uuid::now_v7(),
            kind,
            video_id: Uuid::now_v7(),
            party_id: None,
            occurred_at: Utc::now(),
            position: 20.0,
            from: Some(10.0),
            watched: None,
            buffering_ms: None,
            quality: None,
            rate: None,
            source: None,
            platform: None,
        }
    }

    fn field(e: PlaybackEvent) -> Option<String> {
        PlaybackBatch { events: vec![e] }
            .check()
            .err()
            .map(|p| p.field)
    }

    #[test]
    fn each_bad_field_is_named() {
        use PlaybackEventType as T;
        assert_eq!(field(event(T::Progress)), None);
        let bad = |f: &dyn Fn(&mut PlaybackEvent), kind| {
            let mut e = event(kind);
            f(&mut e);
            field(e)
        };
        let named = |s: &str| Some(format!("events[0].{s}"));
        assert_eq!(bad(&|e| e.position = -1.0, T::Play), named("position"));
        assert_eq!(bad(&|e| e.position = f64::NAN, T::Play), named("position"));
        assert_eq!(bad(&|e| e.from = None, T::Progress), named("from"));
        assert_eq!(bad(&|e| e.from = None, T::Seek), named("from"));
        assert_eq!(bad(&|e| e.from = None, T::Pause), None);
        assert_eq!(bad(&|e| e.from = Some(30.0), T::Progress), named("from"));
        assert_eq!(bad(&|e| e.from = Some(30.0), T::Seek), None);
        assert_eq!(
            bad(
                &|e| {
                    e.position = 700.0;
                    e.from = Some(50.0)
                },
                T::Progress
            ),
            named("from")
        );
        assert_eq!(
            bad(&|e| e.watched = Some(121.0), T::Progress),
            named("watched")
        );
        assert_eq!(bad(&|_| {}, T::Buffer), named("buffering_ms"));
        assert_eq!(
            bad(&|e| e.buffering_ms = Some(600_001), T::Buffer),
            named("buffering_ms")
        );
        assert_eq!(bad(&|_| {}, T::Quality), named("quality"));
        assert_eq!(
            bad(&|e| e.quality = Some("<b>".into()), T::Quality),
            named("quality")
        );
        assert_eq!(bad(&|e| e.quality = Some("1080p".into()), T::Quality), None);
        assert_eq!(bad(&|e| e.rate = Some(0.0), T::Play), named("rate"));
        let e = event(T::Play);
        let twice = PlaybackBatch {
            events: vec![e.clone(), e],
        };
        assert_eq!(twice.check().unwrap_err().field, "events[1].event_id");
        let none = PlaybackBatch { events: vec![] };
        assert_eq!(none.check().unwrap_err().field, "events");
    }

    #[test]
    fn countries_and_times() {
        assert_eq!(country("en-US").as_deref(), Some("US"));
        assert_eq!(country("pt_br").as_deref(), Some("BR"));
        assert_eq!(country("en"), None);
        assert_eq!(country("zh-Hant-TW"), None);
        let now = Utc::now();
        assert_eq!(clamp_time(now + TimeDelta::hours(1), now), now);
        assert_eq!(
            clamp_time(now - TimeDelta::days(30), now),
            now - TimeDelta::days(MAX_AGE_DAYS)
        );
        let t = now - TimeDelta::minutes(5);
        assert_eq!(clamp_time(t, now), t);
    }

    #[test]
    fn properties_are_the_servers() {
        let me = Actor {
            id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            username: "ann".into(),
            role: crate::account::Role::User,
        };
        let mut e = event(PlaybackEventType::Progress);
        e.party_id = Some(Uuid::now_v7());
        e.source = Some(TrafficSource::Search);
        let mut other = event(PlaybackEventType::Seek);
        other.video_id = Uuid::now_v7();
        let batch = PlaybackBatch {
            events: vec![e.clone(), other],
        };
        let refs = Refs {
            videos: [(e.video_id, Some(100.0))].into(),
            parties: HashSet::new(),
            country: Some("DE".into()),
        };
        let (take, rejected) = prepare(&me, &batch, &refs, Utc::now());
        assert!(take.is_empty());
        assert_eq!(
            rejected.iter().map(|r| r.field).collect::<Vec<_>>(),
            ["party_id", "video_id"]
        );
        let refs = Refs {
            parties: [e.party_id.unwrap()].into(),
            ..refs
        };
        let (take, _) = prepare(&me, &batch, &refs, Utc::now());
        let ev = &take[0].1;
        assert_eq!(ev.event_type, "playback.progress");
        assert_eq!(
            ev.properties,
            json!({"position": 20.0, "from": 10.0, "duration": 100.0, "watched": 10.0,
                   "source": "search", "country": "DE"})
        );
    }
}
