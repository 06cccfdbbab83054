//! One party socket: authentication before the upgrade, the `party_state` snapshot,
//! then every client frame (`docs/realtime.md` lists them, with who may send what).
//! A bad frame gets an `error` frame and changes nothing; the socket stays open.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{
        Path, RawQuery, State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use futures::SinkExt;
use redis::AsyncCommands;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;
use wp_core::{
    account::{Actor, authenticate_token},
    party::{
        self as parties, ControlMode, Membership, PartyRole, SyncPolicy, chat,
        live::{
            self as live, Control, Keys, MAX_POSITION, MAX_RATE, MIN_RATE, PartyVideo, Playback,
            PresenceEntry, ScreenShare, Status, VoiceAction,
        },
    },
    video::playable_by,
};
use wp_shared::{frame::Frame, jobs::AnalyticsEvent};

use crate::{
    Realtime,
    hub::{ConnHandle, Kill, Room, encode, subscribed},
    refusal::{Refusal, parse_query},
};

/// Frames a client may send per second, sustained, and in a burst (all types).
pub(crate) const FRAMES_PER_SEC: f64 = 30.0;
pub(crate) const FRAMES_BURST: f64 = 60.0;
/// Reactions per second per socket, and burst.
const REACTIONS_PER_SEC: f64 = 3.0;
const REACTIONS_BURST: f64 = 10.0;
/// A `typing` frame is forwarded at most this often per socket.
const TYPING_EVERY: Duration = Duration::from_secs(1);
/// How long a typing indicator lasts unless renewed.
const TYPING_EXPIRES_MS: i64 = 5000;
/// Chat messages resent on resume (more: `has_more`, and REST history).
const RESUME_CHAT: i64 = 500;
/// Participants listed in the `party_state` snapshot (the rest: REST).
const SNAPSHOT_PARTICIPANTS: usize = 100;
/// Largest WebSocket message read at all; bigger ones close the socket (1009).
/// Between `MAX_FRAME_BYTES` and this, the frame gets `frame_too_large`.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// Access token (browsers cannot set headers on a WebSocket).
    pub token: Option<String>,
    /// The last chat message the client saw: the snapshot then carries what came after.
    pub last_message_id: Option<Uuid>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `GET /ws/party/{party_id}/?token=...`: 401 for a bad or missing token, 404 for a
/// party the caller cannot see, 403 `not_a_member` before joining, all before the
/// upgrade.
pub async fn upgrade(
    State(rt): State<Arc<Realtime>>,
    Path(party): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let authorized = async {
        let q: WsQuery = parse_query(query.as_deref())?;
        let (me, m) = authorize(&rt, &party, q.token.as_deref(), &headers).await?;
        Ok::<_, Refusal>((q, me, m))
    };
    match authorized.await {
        Err(e) => e.into_response_for(&headers),
        Ok((q, me, m)) => accept(ws, &headers, move |socket| {
            run(rt, socket, me, m, q.last_message_id)
        }),
    }
}

/// Upgrades an authorised request (400 `websocket_required` for plain HTTP), with the
/// socket limits every socket of a node has.
pub(crate) fn accept<F, Fut>(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
    run: F,
) -> Response
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    match ws {
        Err(e) => Refusal::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            format!("This endpoint speaks WebSocket only: {e}"),
        )
        .into_response_for(headers),
        Ok(ws) => ws
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_frame_size(MAX_MESSAGE_BYTES)
            .on_upgrade(run),
    }
}

/// The caller of a socket: the access token from `?token=` or the header.
pub(crate) async fn caller(
    rt: &Realtime,
    token: Option<&str>,
    headers: &HeaderMap,
) -> Result<Actor, Refusal> {
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = token.or(header_token).ok_or_else(|| {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            "Pass the access token as ?token=.",
        )
    })?;
    Ok(authenticate_token(&rt.ctx.db, &rt.ctx.config, token).await?)
}

async fn authorize(
    rt: &Realtime,
    party: &str,
    token: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Actor, Membership), Refusal> {
    let me = caller(rt, token, headers).await?;
    let party: Uuid = party.parse().map_err(|_| Refusal::not_found())?;
    let m = parties::membership(&rt.ctx.db, &me, party).await?;
    Ok((me, m))
}

/// A token bucket.
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Self {
            tokens: burst,
            rate,
            burst,
            at: Instant::now(),
        }
    }
    pub(crate) fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Conn {
    rt: Arc<Realtime>,
    room: Arc<Room>,
    me: Actor,
    party: Uuid,
    keys: Keys,
    conn: u64,
    /// `{node}:{conn}`: this socket's presence field.
    presence_field: String,
    frames: Bucket,
    reactions: Bucket,
    last_typing: Option<Instant>,
    /// Whether the others were last told this socket is typing.
    typing_shown: bool,
}

pub(crate) fn err(code: &str, message: impl AsRef<str>) -> Frame {
    Frame::error(code, message.as_ref())
}

/// Parses a frame's `data` into `T`; the error frame names the field at fault.
fn data<T: DeserializeOwned>(value: &Value) -> Result<T, Frame> {
    let v = if value.is_null() {
        json!({})
    } else {
        value.clone()
    };
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "data".to_owned()
        } else {
            format!("data.{path}")
        };
        err("invalid_data", format!("{field}: {}", e.inner()))
    })
}

fn close_code(reason: &str) -> u16 {
    match reason {
        "slow_consumer" => 4008,
        "kicked" | "banned" | "left" | "not_a_member" => 4003,
        "party_ended" => 4004,
        "idle_timeout" => 4000,
        "server_restart" => 1012,
        "unavailable" => 1011,
        _ => 1000,
    }
}

/// Sends the `error` frame naming why the socket closes, then the close frame.
pub(crate) async fn close_with(socket: &mut WebSocket, reason: &str, message: &str) {
    let _ = socket
        .feed(Message::Text(encode(&err(reason, message))))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code(reason),
            reason: reason.into(),
        })))
        .await;
}

/// What a party socket's last `error` frame says when it is closed with `reason`.
fn kill_message(reason: &str) -> &'static str {
    match reason {
        "slow_consumer" => "This connection could not keep up and was closed; reconnect.",
        "party_ended" => "The party has ended.",
        "server_restart" => "This server is restarting; reconnect.",
        _ => "You are no longer in this party.",
    }
}

/// What a socket does with a client's text frame: the frames to send back to it alone.
pub(crate) trait Handler: Send {
    fn on_text(&mut self, text: &str, received: i64) -> impl Future<Output = Vec<Frame>> + Send;
}

impl Handler for Conn {
    fn on_text(&mut self, text: &str, received: i64) -> impl Future<Output = Vec<Frame>> + Send {
        // Boxed: the handler's future is large and an idle socket's task stays small.
        Box::pin(self.handle(text, received))
    }
}

/// Runs an open socket until it closes: writes what is queued for it (flushing
/// what else is queued in one go), hands each client text frame to `handle` and sends
/// its replies, closes with `error` + close code when killed (after writing what was
/// queued, unless it was too slow) or after `idle` without a frame from the client.
pub(crate) async fn pump(
    socket: &mut WebSocket,
    rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
    kill: &Kill,
    idle: Duration,
    message: fn(&str) -> &'static str,
    handler: &mut impl Handler,
) {
    // Closed when nothing at all (a frame, a ping) arrives for `idle`.
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        tokio::select! {
            biased;
            () = kill.token.cancelled() => {
                // What was queued for it (a `removed` frame) goes out first.
                if kill.reason() != "slow_consumer" {
                    while let Ok(text) = rx.try_recv() {
                        let _ = socket.feed(Message::Text(text)).await;
                    }
                }
                let reason = kill.reason().to_owned();
                close_with(socket, &reason, message(&reason)).await;
                return;
            }
            out = rx.recv() => {
                let Some(text) = out else { return };
                if socket.feed(Message::Text(text)).await.is_err() {
                    return;
                }
                // Write what else is queued in one flush.
                for _ in 0..64 {
                    match rx.try_recv() {
                        Ok(text) => {
                            if socket.feed(Message::Text(text)).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                close_with(socket, "idle_timeout", "Nothing was received for too long.").await;
                return;
            }
            incoming = socket.recv() => {
                let msg = match incoming {
                    None | Some(Err(_)) => return,
                    Some(Ok(msg)) => msg,
                };
                deadline = tokio::time::Instant::now() + idle;
                let received = now_ms();
                let replies = match msg {
                    Message::Text(text) => handler.on_text(text.as_str(), received).await,
                    Message::Binary(_) => vec![err("binary_not_supported", "Frames are JSON text.")],
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => Vec::new(),
                };
                for reply in replies {
                    if socket.send(Message::Text(encode(&reply))).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn run(
    rt: Arc<Realtime>,
    mut socket: WebSocket,
    me: Actor,
    m: Membership,
    resume: Option<Uuid>,
) {
    let conn = rt.conn_id();
    let (tx, mut rx) = mpsc::channel(rt.settings.socket_queue);
    let kill = Arc::new(Kill::default());
    let handle = ConnHandle {
        user: me.id,
        tx,
        kill: kill.clone(),
    };
    // The user's channel too: new notifications reach the party socket.
    let user_subscribed = rt
        .hub
        .add_user_socket(me.id, conn, handle.clone(), &rt.subscriptions);
    let (room, room_subscribed) = rt.hub.join(m.party, conn, handle, &rt.subscriptions);
    tokio::join!(subscribed(room_subscribed), subscribed(user_subscribed));
    let mut c = Conn {
        keys: Keys::new(&rt.ctx.config.redis_prefix, m.party),
        presence_field: format!("{}:{conn}", rt.node),
        rt: rt.clone(),
        room,
        party: m.party,
        me,
        conn,
        frames: Bucket::new(FRAMES_PER_SEC, FRAMES_BURST),
        reactions: Bucket::new(REACTIONS_PER_SEC, REACTIONS_BURST),
        last_typing: None,
        typing_shown: false,
    };
    // The large futures are boxed so an idle socket's task stays small.
    match Box::pin(c.open(&m, resume)).await {
        Ok(None) => {
            // Removed between the check before the upgrade and joining the room.
            close_with(
                &mut socket,
                "not_a_member",
                "You are no longer in this party.",
            )
            .await;
        }
        Ok(Some(snapshot)) => {
            // The snapshot's value tree is large (every participant); it must not live
            // as long as the socket.
            let text = encode(&snapshot);
            drop(snapshot);
            if socket.send(Message::Text(text)).await.is_ok() {
                Box::pin(c.serve(&mut socket, &mut rx, &kill)).await;
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, party = %c.party, "party socket could not open");
            close_with(
                &mut socket,
                "unavailable",
                "The party could not be loaded; reconnect.",
            )
            .await;
        }
    }
    Box::pin(c.close()).await;
}

impl Conn {
    /// Registers presence, loads the live state and builds the `party_state` snapshot.
    async fn open(
        &mut self,
        m: &Membership,
        resume: Option<Uuid>,
    ) -> anyhow::Result<Option<Frame>> {
        let rt = self.rt.clone();
        let mut redis = rt.ctx.redis.clone();
        // Read again now that the room hears the party's channel: a kick or a settings
        // change published since the check before the upgrade is not missed.
        let Some((settings, role)) = parties::reload(&rt.ctx.db, self.party, self.me.id).await?
        else {
            return Ok(None);
        };
        let online =
            live::online_users(&mut redis, &rt.ctx.config.redis_prefix, &self.keys).await?;
        let first_socket = !online.contains(&self.me.id);
        let entry = PresenceEntry {
            user_id: self.me.id,
            username: self.me.username.clone(),
            node: rt.node.clone(),
            connected_at: now_ms(),
        };
        redis
            .hset::<_, _, _, ()>(
                self.keys.presence(),
                &self.presence_field,
                serde_json::to_string(&entry)?,
            )
            .await?;
        let playback = self.current_playback().await?;
        self.room.seed(&playback, &settings, self.me.id, role);
        let chat = match resume {
            Some(last) => chat::since(&rt.ctx.db, self.party, last, RESUME_CHAT + 1).await?,
            None => None,
        };
        let resumed = chat.is_some();
        let mut has_more = false;
        let chat = chat.map(|mut c| {
            has_more = c.len() > RESUME_CHAT as usize;
            c.truncate(RESUME_CHAT as usize);
            c
        });
        let chat = match chat {
            Some(c) => c,
            None => chat::recent(&rt.ctx.db, self.party, rt.settings.recent_chat).await?,
        };
        // Compact (no join dates) and capped: host and co-hosts, then who is online.
        // A big room's full list is `GET /api/parties/{id}/participants/`.
        let mut members = parties::member_list(
            &rt.ctx.db,
            &mut rt.ctx.redis.clone(),
            &rt.ctx.config.redis_prefix,
            self.party,
        )
        .await?;
        let participants_count = members.len();
        members.sort_by_key(|p| (std::cmp::Reverse(p.role), !p.online));
        let participants: Vec<Value> = members
            .into_iter()
            .take(SNAPSHOT_PARTICIPANTS)
            .map(|p| json!({ "user": p.user, "role": p.role, "online": p.online }))
            .collect();
        // Voice entries of members with no socket left (their node died before it could
        // clean up) are dropped: voice needs a socket.
        let (voice, ghosts): (Vec<_>, Vec<_>) = live::voice(&mut redis, &self.keys)
            .await?
            .into_iter()
            .partition(|v| online.contains(&v.user_id) || v.user_id == self.me.id);
        if !ghosts.is_empty() {
            let fields: Vec<String> = ghosts.iter().map(|g| g.user_id.to_string()).collect();
            redis.hdel::<_, _, ()>(self.keys.voice(), fields).await?;
        }
        let screen = live::screen_share(&mut redis, &self.keys).await?;
        let reactions = live::reaction_counts(&mut redis, &self.keys).await?;
        let buffering: HashMap<String, i64> = redis.hgetall(self.keys.buffering()).await?;
        let now = now_ms();
        let snapshot = Frame::server(
            "party_state",
            json!({
                "party": { "id": self.party, "title": m.title, "host_id": m.host_id, "settings": settings },
                "you": { "user": self.user_json(), "role": role, "connection": self.presence_field },
                "playback": playback.to_frame_data(now),
                "participants": participants,
                "participants_count": participants_count,
                "participants_truncated": participants_count > SNAPSHOT_PARTICIPANTS,
                "chat": { "messages": chat, "resumed": resumed, "has_more": has_more },
                "voice": voice,
                "screen_share": screen,
                "reactions": reactions,
                "buffering": buffering.keys().collect::<Vec<_>>(),
                "server_time": now,
            }),
        );
        if first_socket {
            rt.emit(
                self.party,
                &Frame::server(
                    "user_joined",
                    json!({ "user": self.user_json(), "role": role }),
                ),
                Some(self.conn),
            )
            .await;
        }
        Ok(Some(snapshot))
    }

    fn user_json(&self) -> Value {
        json!({ "id": self.me.id, "username": self.me.username })
    }

    /// The stored playback state (writing it to Redis if it came from PostgreSQL).
    async fn current_playback(&self) -> anyhow::Result<Playback> {
        let rt = &self.rt;
        let mut redis = rt.ctx.redis.clone();
        for _ in 0..5 {
            let (p, stored) = live::load_playback(&mut redis, &rt.ctx.db, &self.keys, self.party)
                .await?
                .ok_or_else(|| anyhow::anyhow!("party gone"))?;
            if stored
                || live::store_playback(&mut redis, &rt.ctx.db, &self.keys, self.party, None, &p)
                    .await?
            {
                return Ok(p);
            }
        }
        anyhow::bail!("playback state kept changing")
    }

    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
        kill: &Kill,
    ) {
        let idle = self.rt.settings.idle_timeout;
        pump(socket, rx, kill, idle, kill_message, self).await;
    }

    /// Handles one client frame; returns the frames for this socket alone.
    async fn handle(&mut self, text: &str, received: i64) -> Vec<Frame> {
        // Charged before parsing, so malformed frames count too.
        if !self.frames.take() {
            return vec![err("rate_limited", "Too many frames; slow down.")];
        }
        let frame = match Frame::parse(text) {
            Ok(f) => f,
            Err(e) => return vec![e],
        };
        let Some(role) = self.room.role(self.me.id) else {
            return vec![err("not_a_member", "You are no longer in this party.")];
        };
        let result = match frame.kind.as_str() {
            "sync_request" => Ok(self.sync(&frame, received)),
            "ping" => Ok(vec![Frame::server("pong", json!({}))]),
            "request_state" => match self.current_playback().await {
                Ok(p) => Ok(vec![Frame::server(
                    "video_state",
                    p.to_frame_data(now_ms()),
                )]),
                Err(e) => Err(internal(&e)),
            },
            "video_control" => self.video_control(&frame.data, role).await,
            "buffering" => self.buffering(true).await,
            "ready" => self.buffering(false).await,
            "chat_message" => self.chat(&frame.data, role).await,
            "typing" => self.typing(&frame.data).await,
            "reaction" => self.reaction(&frame.data).await,
            "voice_join" => self.voice(VoiceAction::Join).await,
            "voice_leave" => self.voice(VoiceAction::Leave).await,
            "voice_mute" => self.voice(VoiceAction::Mute).await,
            "voice_unmute" => self.voice(VoiceAction::Unmute).await,
            "offer" | "answer" | "ice_candidate" => self.signal(&frame).await,
            "screen_share_start" => self.screen_start().await,
            "screen_share_stop" => self.screen_stop(role).await,
            other => Err(err(
                "unknown_type",
                format!(
                    "Unknown frame type `{}`.",
                    other.chars().take(64).collect::<String>()
                ),
            )),
        };
        result.unwrap_or_else(|e| vec![e])
    }

    fn sync(&self, frame: &Frame, received: i64) -> Vec<Frame> {
        let client_time = frame
            .data
            .get("client_time")
            .and_then(Value::as_f64)
            .unwrap_or(frame.timestamp as f64);
        vec![Frame::server(
            "sync_response",
            json!({ "client_time": client_time, "server_receive": received, "server_send": now_ms() }),
        )]
    }

    async fn video_control(&self, value: &Value, role: PartyRole) -> Result<Vec<Frame>, Frame> {
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Action {
            Play,
            Pause,
            Seek,
            Rate,
            ChangeVideo,
        }
        #[derive(Deserialize)]
        struct In {
            action: Action,
            position: Option<f64>,
            rate: Option<f64>,
            video_id: Option<Uuid>,
            url: Option<String>,
        }
        let settings = self
            .room
            .settings()
            .ok_or_else(|| internal("no settings"))?;
        if !settings.may_control(role) {
            return Err(err(
                "forbidden",
                match settings.control_mode {
                    ControlMode::Cohosts => "Only the host and co-hosts may control playback.",
                    _ => "Only the host may control playback.",
                },
            ));
        }
        let d: In = data(value)?;
        if let Some(p) = d.position
            && !(p.is_finite() && (0.0..=MAX_POSITION).contains(&p))
        {
            return Err(err(
                "invalid_data",
                "data.position: seconds between 0 and 86400.",
            ));
        }
        let control = match d.action {
            Action::Play => Control::Play {
                position: d.position,
            },
            Action::Pause => Control::Pause {
                position: d.position,
            },
            Action::Seek => Control::Seek {
                position: d
                    .position
                    .ok_or_else(|| err("invalid_data", "data.position: required for seek."))?,
            },
            Action::Rate => {
                let rate = d
                    .rate
                    .ok_or_else(|| err("invalid_data", "data.rate: required for rate."))?;
                if !(rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate)) {
                    return Err(err("invalid_data", "data.rate: between 0.25 and 4."));
                }
                Control::Rate { rate }
            }
            Action::ChangeVideo => {
                let video = match (d.video_id, d.url) {
                    (Some(id), None) => {
                        let ok = playable_by(&self.rt.ctx.db, &self.me, id)
                            .await
                            .map_err(|e| internal(&e))?;
                        if !ok {
                            return Err(err(
                                "invalid_data",
                                "data.video_id: no such video ready to play.",
                            ));
                        }
                        PartyVideo {
                            id: Some(id),
                            url: None,
                        }
                    }
                    (None, Some(url)) => {
                        let ok = url::Url::parse(&url).ok().is_some_and(|u| {
                            matches!(u.scheme(), "http" | "https") && u.host().is_some()
                        });
                        if !ok || url.len() > 2000 {
                            return Err(err("invalid_data", "data.url: an http(s) URL."));
                        }
                        PartyVideo {
                            id: None,
                            url: Some(url),
                        }
                    }
                    _ => {
                        return Err(err(
                            "invalid_data",
                            "data.video_id or data.url: exactly one is required.",
                        ));
                    }
                };
                Control::ChangeVideo { video }
            }
        };
        let action = value["action"].clone();
        let wait = settings.sync_policy == SyncPolicy::Wait;
        let keys = self.keys.clone();
        let changed = change_playback(&self.rt, self.party, |cur, now, buffering| {
            Some(cur.apply(&control, now, wait && buffering))
        })
        .await
        .map_err(|e| internal(&e))?;
        if let Some((next, now)) = changed {
            if matches!(control, Control::ChangeVideo { .. }) {
                let mut redis = self.rt.ctx.redis.clone();
                let _: Result<(), _> = redis.del(keys.buffering()).await;
            }
            self.emit_state(
                &next,
                now,
                json!({ "action": action, "user": self.user_json() }),
            )
            .await;
        }
        Ok(Vec::new())
    }

    async fn emit_state(&self, p: &Playback, now: i64, extra: Value) {
        emit_state(&self.rt, self.party, p, now, extra).await;
    }

    async fn buffering(&self, buffering: bool) -> Result<Vec<Frame>, Frame> {
        let mut redis = self.rt.ctx.redis.clone();
        let field = self.me.id.to_string();
        let now = now_ms();
        let res: redis::RedisResult<()> = if buffering {
            redis.hset(self.keys.buffering(), &field, now).await
        } else {
            redis.hdel(self.keys.buffering(), &field).await
        };
        res.map_err(|e| internal(&e))?;
        self.rt
            .emit(
                self.party,
                &Frame::server(
                    "member_buffering",
                    json!({ "user": self.user_json(), "buffering": buffering }),
                ),
                None,
            )
            .await;
        let wait = self
            .room
            .settings()
            .is_some_and(|s| s.sync_policy == SyncPolicy::Wait);
        if !wait {
            return Ok(Vec::new());
        }
        if buffering {
            let changed =
                change_playback(&self.rt, self.party, |cur, now, _| cur.enter_waiting(now))
                    .await
                    .map_err(|e| internal(&e))?;
            if let Some((next, now)) = changed {
                self.emit_state(
                    &next,
                    now,
                    json!({ "action": "wait", "reason": "buffering", "user": self.user_json() }),
                )
                .await;
            }
        } else {
            let left: u64 = redis
                .hlen(self.keys.buffering())
                .await
                .map_err(|e| internal(&e))?;
            if left == 0 {
                end_wait(&self.rt, self.party, "ready").await;
            }
        }
        Ok(Vec::new())
    }

    async fn chat(&self, value: &Value, role: PartyRole) -> Result<Vec<Frame>, Frame> {
        #[derive(Deserialize)]
        struct In {
            content: String,
            reply_to: Option<Uuid>,
            client_id: Option<String>,
        }
        let settings = self
            .room
            .settings()
            .ok_or_else(|| internal("no settings"))?;
        let moderator = role >= PartyRole::Cohost;
        if !settings.chat_enabled && !moderator {
            return Err(err("chat_disabled", "Chat is turned off in this party."));
        }
        let d: In = data(value)?;
        if d.client_id
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > 64)
        {
            return Err(err("invalid_data", "data.client_id: 1 to 64 characters."));
        }
        let content = chat::check_message(&d.content)
            .map_err(|m| err("invalid_data", format!("data.content: {m}")))?;
        let mut redis = self.rt.ctx.redis.clone();
        if settings.slow_mode_seconds > 0 && !moderator {
            let key = self.keys.slow_mode(self.me.id);
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(i64::from(settings.slow_mode_seconds) * 1000)
                .query_async(&mut redis)
                .await
                .map_err(|e| internal(&e))?;
            if set.is_none() {
                let ttl: i64 = redis.pttl(&key).await.unwrap_or(0);
                return Err(Frame::server(
                    "error",
                    json!({ "code": "slow_mode", "message": "Slow mode is on; wait before sending again.", "retry_after_ms": ttl.max(0) }),
                ));
            }
        }
        let msg = chat::insert(
            &self.rt.ctx.db,
            self.party,
            self.me.id,
            &content,
            d.reply_to,
            d.client_id.as_deref(),
        )
        .await
        .map_err(|e| internal(&e))?
        .map_err(|m| match m {
            chat::Refused::NotAMember => err("not_a_member", "You are no longer in this party."),
            chat::Refused::BadReply => err(
                "invalid_data",
                "data.reply_to: reply_to is not a message of this party.",
            ),
        })?;
        let frame = Frame::server(
            "chat_message",
            serde_json::to_value(&msg).unwrap_or(Value::Null),
        );
        self.rt.emit(self.party, &frame, None).await;
        Ok(Vec::new())
    }

    async fn typing(&mut self, value: &Value) -> Result<Vec<Frame>, Frame> {
        #[derive(Deserialize)]
        struct In {
            #[serde(default = "yes")]
            is_typing: bool,
        }
        fn yes() -> bool {
            true
        }
        let d: In = data(value)?;
        // At most one `true` a second, and a `false` only to clear a `true` that went out:
        // alternating true/false cannot flood the room.
        if d.is_typing {
            if self.last_typing.is_some_and(|t| t.elapsed() < TYPING_EVERY) {
                return Ok(Vec::new());
            }
            self.last_typing = Some(Instant::now());
            self.typing_shown = true;
        } else {
            if !self.typing_shown {
                return Ok(Vec::new());
            }
            self.typing_shown = false;
        }
        self.rt
            .emit(
                self.party,
                &Frame::server(
                    "typing",
                    json!({ "user": self.user_json(), "is_typing": d.is_typing, "expires_in_ms": TYPING_EXPIRES_MS }),
                ),
                Some(self.conn),
            )
            .await;
        Ok(Vec::new())
    }

    async fn reaction(&mut self, value: &Value) -> Result<Vec<Frame>, Frame> {
        #[derive(Deserialize)]
        struct In {
            emoji: String,
            position: Option<f64>,
        }
        let d: In = data(value)?;
        if !valid_emoji(&d.emoji) {
            return Err(err(
                "invalid_data",
                "data.emoji: one emoji (up to 32 bytes, no letters, digits or spaces).",
            ));
        }
        if d.position
            .is_some_and(|p| !(p.is_finite() && (0.0..=MAX_POSITION).contains(&p)))
        {
            return Err(err(
                "invalid_data",
                "data.position: seconds between 0 and 86400.",
            ));
        }
        if !self.reactions.take() {
            return Err(err("rate_limited", "Too many reactions; slow down."));
        }
        let now = now_ms();
        let (playback, _) = self.room.cached().ok_or_else(|| internal("no state"))?;
        let position = d.position.unwrap_or_else(|| playback.position_at(now));
        let mut redis = self.rt.ctx.redis.clone();
        let count: i64 = redis
            .hincr(self.keys.reactions(), &d.emoji, 1)
            .await
            .map_err(|e| internal(&e))?;
        self.rt
            .emit(
                self.party,
                &Frame::server(
                    "reaction",
                    json!({ "user": self.user_json(), "emoji": d.emoji, "position": position, "count": count }),
                ),
                None,
            )
            .await;
        let mut event = AnalyticsEvent::new(
            "party.reaction",
            Some(self.me.id),
            playback.video.id,
            json!({ "emoji": d.emoji, "position": position }),
        );
        event.party_id = Some(self.party);
        if let Err(e) = self.rt.ctx.enqueuer.push(event).await {
            tracing::warn!(error = %e, "reaction analytics event dropped");
        }
        Ok(Vec::new())
    }

    async fn voice(&self, action: VoiceAction) -> Result<Vec<Frame>, Frame> {
        let mut redis = self.rt.ctx.redis.clone();
        let all = live::voice_apply(
            &mut redis,
            &self.keys,
            self.me.id,
            &self.me.username,
            action,
            now_ms(),
        )
        .await
        .map_err(|e| internal(&e))?
        .map_err(|m| err("invalid_state", m))?;
        self.rt
            .emit(
                self.party,
                &live::voice_frame(self.me.id, &self.me.username, action, &all),
                None,
            )
            .await;
        Ok(Vec::new())
    }

    /// WebRTC signaling: relayed only to the member named in `data.to`.
    async fn signal(&self, frame: &Frame) -> Result<Vec<Frame>, Frame> {
        let to: Uuid = frame
            .data
            .get("to")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err("invalid_data", "data.to: the user id of a member."))?;
        if to == self.me.id {
            return Err(err("invalid_data", "data.to: not yourself."));
        }
        let mut redis = self.rt.ctx.redis.clone();
        let online = live::online_users(&mut redis, &self.rt.ctx.config.redis_prefix, &self.keys)
            .await
            .map_err(|e| internal(&e))?;
        if !online.contains(&to) {
            return Err(err(
                "target_unavailable",
                "That member is not connected to this party.",
            ));
        }
        let mut payload = frame.data.clone();
        if let Value::Object(m) = &mut payload {
            m.remove("to");
            m.insert("from".into(), self.user_json());
        }
        self.rt
            .emit_to_user(self.party, to, &Frame::server(&frame.kind, payload))
            .await;
        Ok(Vec::new())
    }

    async fn screen_start(&self) -> Result<Vec<Frame>, Frame> {
        let settings = self
            .room
            .settings()
            .ok_or_else(|| internal("no settings"))?;
        if !settings.allow_screen_share {
            return Err(err(
                "screen_share_disabled",
                "Screen sharing is turned off in this party.",
            ));
        }
        let share = ScreenShare {
            user_id: self.me.id,
            username: self.me.username.clone(),
            started_at: now_ms(),
            connection: self.presence_field.clone(),
        };
        let mut redis = self.rt.ctx.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.screen())
            .arg(serde_json::to_string(&share).unwrap_or_default())
            .arg("NX")
            .query_async(&mut redis)
            .await
            .map_err(|e| internal(&e))?;
        if set.is_none() {
            let raw: Option<String> = redis.get(self.keys.screen()).await.map_err(internal)?;
            let current: Option<ScreenShare> =
                raw.as_deref().and_then(|r| serde_json::from_str(r).ok());
            if current
                .as_ref()
                .is_some_and(|c| c.connection == self.presence_field)
            {
                return Ok(Vec::new());
            }
            // A share whose socket is gone (its node died before cleaning up) is free.
            let stale = match &current {
                Some(c) => !live::connection_alive(
                    &mut redis,
                    &self.rt.ctx.config.redis_prefix,
                    &self.keys,
                    &c.connection,
                )
                .await
                .map_err(internal)?,
                None => true,
            };
            let taken = stale
                && live::take_over_screen(
                    &mut redis,
                    &self.keys,
                    raw.as_deref().unwrap_or(""),
                    &share,
                )
                .await
                .map_err(internal)?;
            if !taken {
                return Err(Frame::server(
                    "error",
                    json!({ "code": "screen_share_busy", "message": "Someone else is sharing their screen.", "active": current }),
                ));
            }
        }
        self.rt
            .emit(
                self.party,
                &Frame::server(
                    "screen_share",
                    json!({ "action": "started", "user": self.user_json(), "active": share }),
                ),
                None,
            )
            .await;
        Ok(Vec::new())
    }

    async fn screen_stop(&self, role: PartyRole) -> Result<Vec<Frame>, Frame> {
        let mut redis = self.rt.ctx.redis.clone();
        let current = live::screen_share(&mut redis, &self.keys)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| err("invalid_state", "Nobody is sharing their screen."))?;
        if current.user_id != self.me.id && role < PartyRole::Cohost {
            return Err(err(
                "forbidden",
                "Only the sharer, the host or a co-host may stop a share.",
            ));
        }
        stop_share(
            &self.rt,
            &self.keys,
            self.party,
            &current,
            Some(self.user_json()),
        )
        .await;
        Ok(Vec::new())
    }

    /// Cleans up after the socket: presence, and when it was the user's last socket in
    /// the party, voice, buffering and `user_left`; a screen share from this socket.
    async fn close(&mut self) {
        let rt = self.rt.clone();
        rt.hub.leave(self.party, self.conn, &rt.subscriptions);
        rt.hub
            .remove_user_socket(self.me.id, self.conn, &rt.subscriptions);
        let mut redis = rt.ctx.redis.clone();
        let _: Result<(), _> = redis.hdel(self.keys.presence(), &self.presence_field).await;
        if let Ok(Some(share)) = live::screen_share(&mut redis, &self.keys).await
            && share.connection == self.presence_field
        {
            stop_share(&rt, &self.keys, self.party, &share, None).await;
        }
        let still_here = live::online_users(&mut redis, &rt.ctx.config.redis_prefix, &self.keys)
            .await
            .map(|u| u.contains(&self.me.id))
            .unwrap_or(false);
        if still_here {
            return;
        }
        let in_voice: bool = redis
            .hexists(self.keys.voice(), self.me.id.to_string())
            .await
            .unwrap_or(false);
        if in_voice {
            let _ = self.voice(VoiceAction::Leave).await;
        }
        let was_buffering: bool = redis
            .hdel(self.keys.buffering(), self.me.id.to_string())
            .await
            .unwrap_or(false);
        if was_buffering {
            let left: u64 = redis.hlen(self.keys.buffering()).await.unwrap_or(1);
            if left == 0 {
                end_wait(&rt, self.party, "member_left").await;
            }
        }
        rt.emit(
            self.party,
            &Frame::server("user_left", json!({ "user": self.user_json() })),
            None,
        )
        .await;
    }
}

fn internal(e: impl std::fmt::Display) -> Frame {
    tracing::warn!(error = %e, "party socket frame failed");
    err(
        "internal_error",
        "Something went wrong; nothing was changed. Try again.",
    )
}

/// One emoji-ish symbol: no letters, digits, whitespace or control characters.
fn valid_emoji(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control() && !c.is_ascii())
}

async fn stop_share(
    rt: &Realtime,
    keys: &Keys,
    party: Uuid,
    share: &ScreenShare,
    by: Option<Value>,
) {
    let mut redis = rt.ctx.redis.clone();
    let _: Result<(), _> = redis.del(keys.screen()).await;
    rt.emit(
        party,
        &Frame::server(
            "screen_share",
            json!({
                "action": "stopped",
                "user": { "id": share.user_id, "username": share.username },
                "by": by,
                "active": Value::Null,
            }),
        ),
        None,
    )
    .await;
}

/// Changes the playback state with compare-and-set: `f` gets the current state, the
/// server time and whether someone is buffering, and returns the next state (None:
/// nothing to do). Returns the state written and its time; the caller must
/// [`emit_state`] it (which also writes it to PostgreSQL).
pub async fn change_playback(
    rt: &Realtime,
    party: Uuid,
    f: impl Fn(&Playback, i64, bool) -> Option<Playback>,
) -> anyhow::Result<Option<(Playback, i64)>> {
    let keys = Keys::new(&rt.ctx.config.redis_prefix, party);
    let mut redis = rt.ctx.redis.clone();
    for _ in 0..8 {
        // One round trip for the state and the buffering count.
        let (raw, buffering): (Option<String>, u64) = redis::pipe()
            .get(keys.state())
            .hlen(keys.buffering())
            .query_async(&mut redis)
            .await?;
        let (cur, stored) = match raw.and_then(|s| serde_json::from_str::<Playback>(&s).ok()) {
            Some(p) => (p, true),
            // Not in Redis (restarted): PostgreSQL has it.
            None => live::load_playback(&mut redis, &rt.ctx.db, &keys, party)
                .await?
                .ok_or_else(|| anyhow::anyhow!("party gone"))?,
        };
        let now = now_ms();
        let Some(next) = f(&cur, now, buffering > 0) else {
            return Ok(None);
        };
        // Redis only here: the broadcast must not wait for PostgreSQL (emit_state
        // persists after telling the room).
        if live::cas_playback(&mut redis, &keys, stored.then_some(&cur), &next).await? {
            return Ok(Some((next, now)));
        }
    }
    anyhow::bail!("playback state kept changing")
}

async fn emit_state(rt: &Realtime, party: Uuid, p: &Playback, now: i64, extra: Value) {
    if let Some(room) = rt.hub.room(party) {
        room.set_playback(p);
    }
    let mut data = p.to_frame_data(now);
    if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
        d.extend(e);
    }
    rt.emit(party, &Frame::server("video_state", data), None)
        .await;
    if let Err(e) = live::persist_playback(&rt.ctx.db, party, p).await {
        tracing::warn!(error = %e, %party, "playback state not written to PostgreSQL");
    }
}

/// Ends a buffering wait: the room plays on from where it waited. `reason` is `ready`
/// (nobody buffers any more), `member_left`, or `buffer_wait_cap` (the wait ran out;
/// laggards catch up on their own).
pub async fn end_wait(rt: &Realtime, party: Uuid, reason: &str) {
    let cap = reason == "buffer_wait_cap";
    // Someone may have started buffering since the caller looked: then the room waits on
    // (unless the cap ran out).
    match change_playback(rt, party, |cur, now, buffering| {
        if buffering && !cap {
            None
        } else {
            cur.resume(now)
        }
    })
    .await
    {
        Ok(Some((next, now))) => {
            if reason == "buffer_wait_cap" {
                let keys = Keys::new(&rt.ctx.config.redis_prefix, party);
                let mut redis = rt.ctx.redis.clone();
                let _: Result<(), _> = redis.del(keys.buffering()).await;
            }
            debug_assert_eq!(next.status, Status::Playing);
            emit_state(
                rt,
                party,
                &next,
                now,
                json!({ "action": "resume", "reason": reason }),
            )
            .await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, %party, "could not end a buffering wait"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_check() {
        assert!(valid_emoji("🎉"));
        assert!(valid_emoji("👍🏽"));
        assert!(valid_emoji("❤️"));
        assert!(!valid_emoji(""));
        assert!(!valid_emoji("lol"));
        assert!(!valid_emoji("🎉 x"));
        assert!(!valid_emoji(&"🎉".repeat(9)));
    }

    #[test]
    fn buckets_refill() {
        let mut b = Bucket::new(1000.0, 2.0);
        assert!(b.take());
        assert!(b.take());
        assert!(!b.take());
        std::thread::sleep(Duration::from_millis(5));
        assert!(b.take());
    }

    #[test]
    fn data_errors_name_the_field() {
        #[derive(Deserialize, Debug)]
        struct In {
            position: f64,
        }
        assert_eq!(
            data::<In>(&json!({ "position": 1.5 })).unwrap().position,
            1.5
        );
        let e = data::<In>(&json!({ "position": "soon" })).unwrap_err();
        assert_eq!(e.data["code"], "invalid_data");
        assert!(
            e.data["message"]
                .as_str()
                .unwrap()
                .starts_with("data.position")
        );
    }
}
