//! Watch-party state shared by the API and the realtime nodes: the playback state
//! machine (the server is the authority), the Redis keys a party's live state lives
//! under, and the pub/sub bus that carries frames between nodes.
//!
//! Keys (all under `{REDIS_PREFIX}:party:{id}`):
//! - `:state`     playback state, JSON, written with compare-and-set on `seq`
//! - `:presence`  hash connection id → presence JSON (one entry per open socket)
//! - `:voice`     hash user id → voice state JSON
//! - `:screen`    the active screen share, JSON (`SET NX`: one sharer at a time)
//! - `:buffering` hash user id → Unix ms the member started buffering
//! - `:reactions` hash emoji → count
//! - `:delays`    hash node → the longest member round trip it measured (`RTT_MS:AT_MS`)
//!
//! Channel `{REDIS_PREFIX}:party:{id}` carries [`BusMsg`]s. A node keeps
//! `{REDIS_PREFIX}:node:{node}` alive (a TTL refreshed by a heartbeat), so presence
//! entries of a node that died are recognised and dropped.

use std::collections::{HashMap, HashSet};

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use wp_shared::frame::Frame;

/// How long a node's liveness key lasts without a refresh.
pub const NODE_TTL_SECS: u64 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Playing,
    Paused,
    /// Would be playing, but the room waits for a buffering member.
    Waiting,
}

/// What the party watches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartyVideo {
    /// A library video.
    pub id: Option<Uuid>,
    /// An external URL (when not a library video).
    pub url: Option<String>,
}

/// The authoritative playback state. At server time `t` (Unix ms) the expected
/// position is `position + (t - updated_at) / 1000 * rate` while playing, else
/// `position`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Playback {
    pub status: Status,
    /// Seconds into the video at `updated_at`.
    pub position: f64,
    pub rate: f64,
    pub video: PartyVideo,
    /// Server time (Unix ms) the state takes effect.
    pub updated_at: i64,
    /// Bumped on every change; writes are compare-and-set on it.
    pub seq: u64,
    /// While `waiting`: when the wait began (the cap counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<i64>,
}

/// Slowest and fastest playback rate a party may set.
pub const MIN_RATE: f64 = 0.25;
pub const MAX_RATE: f64 = 4.0;
/// Longest position accepted (a day), to keep nonsense out.
pub const MAX_POSITION: f64 = 86_400.0;

/// A change asked for by a `video_control` frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Play { position: Option<f64> },
    Pause { position: Option<f64> },
    Seek { position: f64 },
    Rate { rate: f64 },
    ChangeVideo { video: PartyVideo },
}

impl Playback {
    pub fn new(video: PartyVideo, now_ms: i64) -> Self {
        Self {
            status: Status::Paused,
            position: 0.0,
            rate: 1.0,
            video,
            updated_at: now_ms,
            seq: 0,
            waiting_since: None,
        }
    }

    /// The expected position at server time `now_ms`.
    pub fn position_at(&self, now_ms: i64) -> f64 {
        match self.status {
            Status::Playing => {
                wp_sync::position_after(self.position, self.rate, (now_ms - self.updated_at) as f64)
            }
            Status::Paused | Status::Waiting => self.position,
        }
    }

    /// The same state re-based at `now_ms` with `seq` bumped (the base of every change).
    fn rebased(&self, now_ms: i64) -> Self {
        Self {
            position: self.position_at(now_ms),
            updated_at: now_ms,
            seq: self.seq + 1,
            ..self.clone()
        }
    }

    /// The state after `control`, asked for at server time `now_ms`, taking effect at
    /// `at_ms` (`now_ms` + the party's [`margin_ms`]): a play, pause, seek or rate
    /// change is scheduled, so every member applies it at the same instant whatever
    /// its delay; members keep following the previous state until then (a playing
    /// state whose `updated_at` is ahead holds at `position`). A video change takes
    /// effect at once (everyone loads, paused at 0). `waiting` says whether the room
    /// must wait for someone buffering (a play then enters `waiting`).
    pub fn apply(&self, control: &Control, now_ms: i64, at_ms: i64, waiting: bool) -> Self {
        let at_ms = match control {
            Control::ChangeVideo { .. } => now_ms,
            _ => at_ms.max(now_ms),
        };
        let mut next = self.rebased(at_ms);
        match control {
            Control::Play { position } => {
                if let Some(p) = position {
                    next.position = *p;
                }
                if waiting {
                    next.status = Status::Waiting;
                    next.waiting_since = Some(now_ms);
                } else {
                    next.status = Status::Playing;
                    next.waiting_since = None;
                }
            }
            Control::Pause { position } => {
                if let Some(p) = position {
                    next.position = *p;
                }
                next.status = Status::Paused;
                next.waiting_since = None;
            }
            Control::Seek { position } => next.position = *position,
            Control::Rate { rate } => next.rate = *rate,
            Control::ChangeVideo { video } => {
                next.video = video.clone();
                next.position = 0.0;
                next.status = Status::Paused;
                next.waiting_since = None;
            }
        }
        next
    }

    /// Playing → waiting (someone started buffering under the `wait` policy).
    pub fn enter_waiting(&self, now_ms: i64) -> Option<Self> {
        (self.status == Status::Playing).then(|| {
            let mut next = self.rebased(now_ms);
            next.status = Status::Waiting;
            next.waiting_since = Some(now_ms);
            next
        })
    }

    /// Waiting → playing (everyone is ready, or the cap ran out), from `at_ms` (now +
    /// the margin: everyone starts together).
    pub fn resume(&self, at_ms: i64) -> Option<Self> {
        (self.status == Status::Waiting).then(|| {
            let mut next = self.rebased(at_ms);
            next.status = Status::Playing;
            next.waiting_since = None;
            next
        })
    }

    /// The `data` of `video_state` / `playback_heartbeat` frames: the state plus the
    /// expected position at `now_ms` and that server time.
    pub fn to_frame_data(&self, now_ms: i64) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("server_time".into(), now_ms.into());
            m.insert("expected_position".into(), self.position_at(now_ms).into());
        }
        v
    }
}

/// The shortest time between a change and the instant it takes effect: the frame must
/// reach every member first, and a member on loopback still needs a few ms to act.
pub const MIN_MARGIN_MS: i64 = 40;
/// The longest: a member further away than this applies changes late (and catches up
/// by seeking) rather than making everyone wait.
pub const MAX_MARGIN_MS: i64 = 1_000;
/// Added to the slowest round trip for the time a node and a client take to handle a
/// frame.
pub const MARGIN_SLACK_MS: i64 = 20;
/// A node's report of its members' round trips older than this is ignored (the node
/// is gone or has no member of the party any more).
pub const DELAY_REPORT_TTL_MS: i64 = 15_000;

/// How far ahead a change is scheduled, from the nodes' reports in the party's
/// `:delays` hash (node → `"RTT_MS:AT_MS"`: the longest WebSocket round trip among its
/// members, when measured): the slowest round trip plus [`MARGIN_SLACK_MS`], within
/// [`MIN_MARGIN_MS`]..=[`MAX_MARGIN_MS`]. The round trip, not the one-way delay, so
/// that jitter and an asymmetric path (a slow uplink, a fast downlink) are covered too.
pub fn margin_ms<'a>(reports: impl IntoIterator<Item = &'a String>, now_ms: i64) -> i64 {
    let slowest = reports
        .into_iter()
        .filter_map(|v| {
            let (rtt, at) = v.split_once(':')?;
            let (rtt, at) = (rtt.parse::<i64>().ok()?, at.parse::<i64>().ok()?);
            (now_ms - at <= DELAY_REPORT_TTL_MS).then_some(rtt)
        })
        .max()
        .unwrap_or(0);
    (slowest + MARGIN_SLACK_MS).clamp(MIN_MARGIN_MS, MAX_MARGIN_MS)
}

/// Redis keys of one party.
#[derive(Debug, Clone)]
pub struct Keys {
    base: String,
}

impl Keys {
    pub fn new(prefix: &str, party: Uuid) -> Self {
        Self {
            base: format!("{prefix}:party:{party}"),
        }
    }
    pub fn channel(&self) -> &str {
        &self.base
    }
    pub fn state(&self) -> String {
        format!("{}:state", self.base)
    }
    pub fn presence(&self) -> String {
        format!("{}:presence", self.base)
    }
    pub fn voice(&self) -> String {
        format!("{}:voice", self.base)
    }
    pub fn screen(&self) -> String {
        format!("{}:screen", self.base)
    }
    pub fn buffering(&self) -> String {
        format!("{}:buffering", self.base)
    }
    pub fn reactions(&self) -> String {
        format!("{}:reactions", self.base)
    }
    /// Hash node → the longest round trip among its members ([`margin_ms`]).
    pub fn delays(&self) -> String {
        format!("{}:delays", self.base)
    }
    pub fn slow_mode(&self, user: Uuid) -> String {
        format!("{}:slow:{user}", self.base)
    }
    /// Every key above (deleted with the party).
    pub fn all(&self) -> Vec<String> {
        vec![
            self.state(),
            self.presence(),
            self.voice(),
            self.screen(),
            self.buffering(),
            self.reactions(),
            self.delays(),
        ]
    }
}

pub fn node_key(prefix: &str, node: &str) -> String {
    format!("{prefix}:node:{node}")
}

/// The sorted set of node names by when each last refreshed its key (Unix ms): the
/// nodes are listed from it, never by scanning the keyspace (which holds every queue's
/// jobs: a million keys took 1.5 s to scan).
pub fn nodes_key(prefix: &str) -> String {
    format!("{prefix}:nodes")
}

/// Writes `info` as the node's liveness key (expiring after [`NODE_TTL_SECS`]) and lists
/// the node in [`nodes_key`] (scored by its own clock, for ops to read; nothing is
/// decided by the score: the key's expiry says who is alive, and [`nodes`] forgets the
/// names whose key is gone).
pub async fn node_alive(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    info: &NodeInfo,
) -> anyhow::Result<()> {
    let seen = info.seen_at.timestamp_millis();
    redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(node_key(prefix, &info.node))
        .arg(serde_json::to_string(info)?)
        .arg("EX")
        .arg(NODE_TTL_SECS)
        .ignore()
        .zadd(nodes_key(prefix), &info.node, seen)
        .ignore()
        .query_async::<()>(redis)
        .await?;
    Ok(())
}

/// What a realtime node says of itself in its liveness key (refreshed every 5 s).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeInfo {
    pub node: String,
    /// Party sockets open on the node.
    pub sockets: u64,
    /// Parties with at least one socket on the node.
    pub parties: u64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// When the node last refreshed its key.
    pub seen_at: chrono::DateTime<chrono::Utc>,
}

/// The live realtime nodes (keys not yet expired), by name. Names whose key expired
/// (stopped or dead nodes) are removed from [`nodes_key`].
pub async fn nodes(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> redis::RedisResult<Vec<NodeInfo>> {
    let names: Vec<String> = redis::cmd("ZRANGE")
        .arg(nodes_key(prefix))
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = names.iter().map(|n| node_key(prefix, n)).collect();
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(redis).await?;
    let gone: Vec<&String> = names
        .iter()
        .zip(&values)
        .filter_map(|(n, v)| v.is_none().then_some(n))
        .collect();
    if !gone.is_empty() {
        // A node that refreshed meanwhile lists itself again at its next refresh.
        redis::cmd("ZREM")
            .arg(nodes_key(prefix))
            .arg(&gone)
            .query_async::<()>(redis)
            .await?;
    }
    Ok(values
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_str(&v).ok())
        .collect())
}

/// The pattern every party channel matches (a node subscribes per party it hosts).
pub fn channel_prefix(prefix: &str) -> String {
    format!("{prefix}:party:")
}

pub use super::events::{BusMsg, publish};

/// One open socket, as kept in the presence hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub user_id: Uuid,
    pub username: String,
    pub node: String,
    /// Unix ms.
    pub connected_at: i64,
}

/// Voice-chat state of one member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VoiceEntry {
    pub user_id: Uuid,
    pub username: String,
    pub muted: bool,
    /// Unix ms.
    pub joined_at: i64,
}

/// The active screen share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScreenShare {
    pub user_id: Uuid,
    pub username: String,
    /// Unix ms.
    pub started_at: i64,
    /// The socket sharing (`{node}:{connection}`); the share stops when it closes.
    pub connection: String,
}

/// Whether each node is alive.
async fn live_nodes(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    nodes: &HashSet<String>,
) -> redis::RedisResult<HashSet<String>> {
    let mut live = HashSet::new();
    for node in nodes {
        if node == "api" {
            continue;
        }
        let exists: bool = redis.exists(node_key(prefix, node)).await?;
        if exists {
            live.insert(node.clone());
        }
    }
    Ok(live)
}

/// The open sockets of a party (entries of dead nodes are dropped and removed).
pub async fn presence(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    keys: &Keys,
) -> redis::RedisResult<Vec<(String, PresenceEntry)>> {
    let raw: HashMap<String, String> = redis.hgetall(keys.presence()).await?;
    let entries: Vec<(String, PresenceEntry)> = raw
        .into_iter()
        .filter_map(|(conn, v)| serde_json::from_str(&v).ok().map(|e| (conn, e)))
        .collect();
    let nodes = entries.iter().map(|(_, e)| e.node.clone()).collect();
    let live = live_nodes(redis, prefix, &nodes).await?;
    let (alive, dead): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(_, e)| live.contains(&e.node));
    if !dead.is_empty() {
        let fields: Vec<&String> = dead.iter().map(|(c, _)| c).collect();
        redis.hdel::<_, _, ()>(keys.presence(), fields).await?;
    }
    Ok(alive)
}

/// Ids of the users online in a party.
pub async fn online_users(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    keys: &Keys,
) -> redis::RedisResult<HashSet<Uuid>> {
    Ok(presence(redis, prefix, keys)
        .await?
        .into_iter()
        .map(|(_, e)| e.user_id)
        .collect())
}

/// Members in the voice chat.
pub async fn voice(
    redis: &mut redis::aio::ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<Vec<VoiceEntry>> {
    let raw: HashMap<String, String> = redis.hgetall(keys.voice()).await?;
    let mut v: Vec<VoiceEntry> = raw
        .values()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect();
    v.sort_by_key(|e| e.joined_at);
    Ok(v)
}

/// The active screen share, if any.
pub async fn screen_share(
    redis: &mut redis::aio::ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<Option<ScreenShare>> {
    let raw: Option<String> = redis.get(keys.screen()).await?;
    Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
}

/// Reaction counts of a party.
pub async fn reaction_counts(
    redis: &mut redis::aio::ConnectionManager,
    keys: &Keys,
) -> redis::RedisResult<HashMap<String, u64>> {
    redis.hgetall(keys.reactions()).await
}

/// A voice-chat change asked for by a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoiceAction {
    Join,
    Leave,
    Mute,
    Unmute,
}

/// Applies a member's voice action; returns the voice participants afterwards, or
/// `Err` with a message when the action does not apply (muting while not in voice).
pub async fn voice_apply(
    redis: &mut redis::aio::ConnectionManager,
    keys: &Keys,
    user: Uuid,
    username: &str,
    action: VoiceAction,
    now_ms: i64,
) -> redis::RedisResult<Result<Vec<VoiceEntry>, &'static str>> {
    let field = user.to_string();
    let current: Option<String> = redis.hget(keys.voice(), &field).await?;
    let current: Option<VoiceEntry> = current.and_then(|s| serde_json::from_str(&s).ok());
    let next = match (action, current) {
        (VoiceAction::Join, Some(_)) => None,
        (VoiceAction::Join, None) => Some(VoiceEntry {
            user_id: user,
            username: username.to_owned(),
            muted: false,
            joined_at: now_ms,
        }),
        (VoiceAction::Leave, _) => {
            redis.hdel::<_, _, ()>(keys.voice(), &field).await?;
            None
        }
        (VoiceAction::Mute | VoiceAction::Unmute, None) => {
            return Ok(Err("Join the voice chat first."));
        }
        (VoiceAction::Mute | VoiceAction::Unmute, Some(mut e)) => {
            e.muted = action == VoiceAction::Mute;
            Some(e)
        }
    };
    if let Some(e) = next {
        let json = serde_json::to_string(&e).unwrap_or_default();
        redis
            .hset::<_, _, _, ()>(keys.voice(), &field, json)
            .await?;
    }
    Ok(Ok(voice(redis, keys).await?))
}

/// The `voice_state` frame: who changed what, and everyone in voice now.
pub fn voice_frame(user: Uuid, username: &str, action: VoiceAction, all: &[VoiceEntry]) -> Frame {
    Frame::server(
        "voice_state",
        serde_json::json!({
            "user": { "id": user, "username": username },
            "action": action,
            "participants": all,
        }),
    )
}

static REPLACE_IF: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2])
            return 1
          end
          return 0",
    )
});

/// Takes the screen share over from `stale` (a sharer whose socket or node is gone) if it
/// is still the one stored. Returns whether it was taken.
pub async fn take_over_screen(
    redis: &mut redis::aio::ConnectionManager,
    keys: &Keys,
    stale_raw: &str,
    share: &ScreenShare,
) -> redis::RedisResult<bool> {
    let won: i32 = REPLACE_IF
        .key(keys.screen())
        .arg(stale_raw)
        .arg(serde_json::to_string(share).unwrap_or_default())
        .invoke_async(redis)
        .await?;
    Ok(won == 1)
}

/// Whether the socket `{node}:{conn}` still has its presence entry on a live node.
pub async fn connection_alive(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    keys: &Keys,
    connection: &str,
) -> redis::RedisResult<bool> {
    Ok(presence(redis, prefix, keys)
        .await?
        .iter()
        .any(|(c, _)| c == connection))
}

static CAS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"local cur = redis.call('GET', KEYS[1])
          if cur then
            local seq = cjson.decode(cur)['seq']
            if tostring(seq) ~= ARGV[1] then return 0 end
          elseif ARGV[1] ~= 'none' then
            return 0
          end
          redis.call('SET', KEYS[1], ARGV[2])
          return 1",
    )
});

/// The party's playback state: Redis first, then PostgreSQL (after a Redis restart),
/// else a fresh paused state for the party's video. `None` if the party is gone.
pub async fn load_playback(
    redis: &mut redis::aio::ConnectionManager,
    db: &PgPool,
    keys: &Keys,
    party: Uuid,
) -> anyhow::Result<Option<(Playback, bool)>> {
    let raw: Option<String> = redis.get(keys.state()).await?;
    if let Some(p) = raw.and_then(|s| serde_json::from_str::<Playback>(&s).ok()) {
        return Ok(Some((p, true)));
    }
    let row = sqlx::query!(
        "SELECT playback, video_id, external_url FROM parties WHERE id = $1 AND status = 'active'",
        party
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let p = serde_json::from_value::<Playback>(row.playback).unwrap_or_else(|_| {
        Playback::new(
            PartyVideo {
                id: row.video_id,
                url: row.external_url,
            },
            chrono::Utc::now().timestamp_millis(),
        )
    });
    Ok(Some((p, false)))
}

/// Writes `next` to Redis if the stored state is still `prev` (by `seq`; `None`: nothing
/// was stored in Redis). Returns false when another writer won; the caller reloads and
/// retries. The caller then tells the room and [`persist_playback`]s.
pub async fn cas_playback(
    redis: &mut redis::aio::ConnectionManager,
    keys: &Keys,
    prev: Option<&Playback>,
    next: &Playback,
) -> anyhow::Result<bool> {
    let expected = prev.map_or_else(|| "none".to_owned(), |p| p.seq.to_string());
    let json = serde_json::to_string(next)?;
    let won: i32 = CAS
        .key(keys.state())
        .arg(expected)
        .arg(&json)
        .invoke_async(redis)
        .await?;
    Ok(won == 1)
}

/// Writes the state to PostgreSQL (never overwriting a newer `seq`), where it survives a
/// Redis restart; the party's video columns follow the state's video.
pub async fn persist_playback(db: &PgPool, party: Uuid, next: &Playback) -> anyhow::Result<()> {
    sqlx::query!(
        "UPDATE parties SET playback = $2, video_id = $4, external_url = $5, updated_at = now()
         WHERE id = $1 AND COALESCE((playback->>'seq')::bigint, -1) < $3",
        party,
        serde_json::to_value(next)?,
        i64::try_from(next.seq).unwrap_or(i64::MAX),
        next.video.id,
        next.video.url
    )
    .execute(db)
    .await?;
    Ok(())
}

/// [`cas_playback`], then [`persist_playback`] when it won.
pub async fn store_playback(
    redis: &mut redis::aio::ConnectionManager,
    db: &PgPool,
    keys: &Keys,
    party: Uuid,
    prev: Option<&Playback>,
    next: &Playback,
) -> anyhow::Result<bool> {
    if !cas_playback(redis, keys, prev, next).await? {
        return Ok(false);
    }
    persist_playback(db, party, next).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playing_at(pos: f64, t: i64) -> Playback {
        Playback {
            status: Status::Playing,
            position: pos,
            rate: 1.0,
            video: PartyVideo::default(),
            updated_at: t,
            seq: 3,
            waiting_since: None,
        }
    }

    #[test]
    fn position_advances_only_while_playing() {
        let p = playing_at(10.0, 1_000);
        assert!((p.position_at(3_500) - 12.5).abs() < 1e-9);
        let paused = p.apply(&Control::Pause { position: None }, 3_500, 3_500, false);
        assert_eq!(paused.status, Status::Paused);
        assert!((paused.position_at(10_000) - 12.5).abs() < 1e-9);
        assert_eq!(paused.seq, 4);
    }

    #[test]
    fn rate_changes_rebase_the_position() {
        let p = playing_at(0.0, 0).apply(&Control::Rate { rate: 2.0 }, 1_000, 1_000, false);
        assert!((p.position - 1.0).abs() < 1e-9);
        assert!((p.position_at(2_000) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn play_while_someone_buffers_waits_and_resumes_from_the_same_point() {
        let p = Playback::new(PartyVideo::default(), 0).apply(
            &Control::Play {
                position: Some(5.0),
            },
            100,
            100,
            true,
        );
        assert_eq!(p.status, Status::Waiting);
        assert!((p.position_at(9_000) - 5.0).abs() < 1e-9);
        let r = p.resume(9_000).unwrap();
        assert_eq!(r.status, Status::Playing);
        assert!((r.position_at(10_000) - 6.0).abs() < 1e-9);
        assert!(r.resume(10_000).is_none());
        let w = r.enter_waiting(10_000).unwrap();
        assert_eq!(w.waiting_since, Some(10_000));
    }

    #[test]
    fn changing_video_starts_paused_at_zero() {
        let p = playing_at(50.0, 0).apply(
            &Control::ChangeVideo {
                video: PartyVideo {
                    id: None,
                    url: Some("https://example.com/v.mp4".into()),
                },
            },
            1_000,
            1_200,
            false,
        );
        assert_eq!(p.status, Status::Paused);
        assert_eq!(p.updated_at, 1_000, "a new video is loaded at once");
        assert_eq!(p.position, 0.0);
        assert_eq!(p.video.url.as_deref(), Some("https://example.com/v.mp4"));
    }

    #[test]
    fn a_scheduled_change_takes_effect_at_its_instant() {
        // Playing from 10 s at t=1 s; a pause asked at t=2 s takes effect at 2.15 s.
        let p = playing_at(10.0, 1_000);
        let paused = p.apply(&Control::Pause { position: None }, 2_000, 2_150, false);
        assert_eq!(paused.updated_at, 2_150);
        assert!(
            (paused.position - 11.15).abs() < 1e-9,
            "no jump: {}",
            paused.position
        );
        // A play from paused at 30 s, asked at t=5 s, effective at 5.2 s: held until
        // then, moving after.
        let play = paused.apply(
            &Control::Play {
                position: Some(30.0),
            },
            5_000,
            5_200,
            false,
        );
        assert_eq!(play.status, Status::Playing);
        assert!(
            (play.position_at(5_100) - 30.0).abs() < 1e-9,
            "held before its instant"
        );
        assert!((play.position_at(6_200) - 31.0).abs() < 1e-9);
        // A seek while playing: the old motion until the instant, the new after.
        let seek = play.apply(&Control::Seek { position: 100.0 }, 7_000, 7_100, false);
        assert!((play.position_at(7_050) - 31.85).abs() < 1e-9);
        assert!((seek.position_at(7_600) - 100.5).abs() < 1e-9);
        assert_eq!(seek.seq, play.seq + 1);
        // An instant before the request is never used.
        let now = seek.apply(&Control::Rate { rate: 2.0 }, 8_000, 7_000, false);
        assert_eq!(now.updated_at, 8_000);
        // A resume is scheduled too.
        let waiting = seek.enter_waiting(9_000).unwrap();
        let resumed = waiting.resume(9_300).unwrap();
        assert_eq!(resumed.updated_at, 9_300);
        assert!((resumed.position_at(9_200) - waiting.position).abs() < 1e-9);
    }

    #[test]
    fn the_margin_follows_the_slowest_fresh_report_within_bounds() {
        let r = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
        assert_eq!(margin_ms(&r(&[]), 100_000), MIN_MARGIN_MS);
        assert_eq!(margin_ms(&r(&["5:99000"]), 100_000), MIN_MARGIN_MS);
        assert_eq!(margin_ms(&r(&["120:99000", "300:98000"]), 100_000), 320);
        // A stale report (a node gone) and garbage are ignored.
        assert_eq!(
            margin_ms(&r(&["120:99000", "900:80000", "x", "7:"]), 100_000),
            140
        );
        assert_eq!(margin_ms(&r(&["5000:99000"]), 100_000), MAX_MARGIN_MS);
    }
}
