//! One party socket: authentication before the upgrade, the `party_state` snapshot,
//! then every client frame (`docs/realtime.md` lists them, with who may send what).
//! A bad frame gets an `error` frame and changes nothing; the socket stays open.
//! The frames by subject: [`playback`] (control, sync, buffering), [`chat_frames`] (chat,
//! typing, reactions), [`media`] (voice, signaling, screen share).

mod chat_frames;
mod media;
mod playback;
mod poll_frames;

use media::stop_share;
pub use playback::{change_playback, end_wait};

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{
        Path, RawQuery, State, WebSocketUpgrade,
        ws::{Message, WebSocket, rejection::WebSocketUpgradeRejection},
    },
    http::HeaderMap,
    response::Response,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;
use wp_core::{
    account::Actor,
    party::{
        self as parties, Membership, chat,
        live::{self as live, Keys, Playback, PresenceEntry, VoiceAction},
        polls,
    },
};
use wp_shared::frame::Frame;

use crate::{
    Realtime,
    conn::*,
    hub::{Kill, Room, encode, subscribed},
    refusal::{Refusal, parse_query},
};

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
        let (me, lease, m) = authorize(&rt, &party, &q, &headers).await?;
        Ok::<_, Refusal>((q, me, lease, m))
    };
    match authorized.await {
        Err(e) => e.into_response_for(&headers),
        Ok((q, me, lease, m)) => accept(&rt.clone(), ws, &headers, move |socket| {
            run(rt, socket, me, lease, m, q.last_message_id)
        }),
    }
}

async fn authorize(
    rt: &Arc<Realtime>,
    party: &str,
    q: &WsQuery,
    headers: &HeaderMap,
) -> Result<(Actor, Lease, Membership), Refusal> {
    let (me, lease) = caller(rt, q, headers).await?;
    let party: Uuid = party.parse().map_err(|_| Refusal::not_found())?;
    let m = parties::membership(&rt.ctx.db, &me, party).await?;
    Ok((me, lease, m))
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

/// What a party socket's last `error` frame says when it is closed with `reason`.
fn kill_message(reason: &str) -> &'static str {
    crate::conn::common_kill_message(reason).unwrap_or(match reason {
        "party_ended" => "The party has ended.",
        _ => "You are no longer in this party.",
    })
}

impl Handler for Conn {
    fn on_text(&mut self, text: &str, received: i64) -> impl Future<Output = Vec<Frame>> + Send {
        // Boxed: the handler's future is large and an idle socket's task stays small.
        Box::pin(self.handle(text, received))
    }
}

async fn run(
    rt: Arc<Realtime>,
    mut socket: WebSocket,
    me: Actor,
    mut lease: Lease,
    m: Membership,
    resume: Option<Uuid>,
) {
    let SocketQueue {
        conn,
        handle,
        mut rx,
        kill,
    } = SocketQueue::new(&rt, &me);
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
    if kill.token.is_cancelled() {
        // Killed before it opened (the node is stopping): no presence, no snapshot.
        let ended = Ended::killed(&mut socket, &mut rx, &kill, kill_message).await;
        c.forget();
        ended.linger(&mut socket, rt.settings.close_linger).await;
        return;
    }
    // The large futures are boxed so an idle socket's task stays small.
    let ended = match Box::pin(c.open(&m, resume)).await {
        Ok(None) => {
            // Removed between the check before the upgrade and joining the room.
            closed(
                send_close(
                    &mut socket,
                    "not_a_member",
                    "You are no longer in this party.",
                )
                .await,
            )
        }
        Ok(Some(snapshot)) => {
            // The snapshot's value tree is large (every participant); it must not live
            // as long as the socket.
            let text = encode(&snapshot);
            drop(snapshot);
            let sent = tokio::time::timeout(
                crate::conn::WRITE_DEADLINE,
                socket.send(Message::Text(text)),
            )
            .await;
            if matches!(sent, Ok(Ok(()))) {
                Box::pin(c.serve(&mut socket, &mut rx, &kill, &mut lease)).await
            } else {
                Ended::Gone
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, party = %c.party, "party socket could not open");
            closed(
                send_close(
                    &mut socket,
                    "unavailable",
                    "The party could not be loaded; reconnect.",
                )
                .await,
            )
        }
    };
    // The room hears of the departure now, not after the client's close.
    Box::pin(c.close()).await;
    ended.linger(&mut socket, rt.settings.close_linger).await;
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
        let entry = serde_json::to_string(&entry)?;
        redis
            .hset::<_, _, _, ()>(self.keys.presence(), &self.presence_field, &entry)
            .await?;
        self.room
            .note_presence(self.conn, self.presence_field.clone(), entry);
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
        let mut online = online;
        online.insert(self.me.id);
        let (members, participants_count) =
            parties::first_members(&rt.ctx.db, self.party, &online, SNAPSHOT_PARTICIPANTS).await?;
        let participants: Vec<Value> = members
            .into_iter()
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
        let polls = polls::open_polls(&rt.ctx.db, self.party, self.me.id).await?;
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
                "polls": polls,
                "server_time": now,
            }),
        );
        if first_socket {
            rt.emit(
                self.party,
                Frame::server(
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
        lease: &mut Lease,
    ) -> Ended {
        let stats = self.rt.hub.stats.clone();
        pump(
            socket,
            rx,
            kill,
            kill_message,
            lease,
            self,
            &stats,
            Some(PING_EVERY),
        )
        .await
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
            return vec![
                err("not_a_member", "You are no longer in this party.").in_reply_to(&frame.kind),
            ];
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
            "buffering" => self.buffering(true, &frame.data).await,
            "ready" => self.buffering(false, &frame.data).await,
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
            "poll_vote" => self.poll_vote(&frame.data).await,
            other => Err(err(
                "unknown_type",
                format!(
                    "Unknown frame type `{}`.",
                    other.chars().take(64).collect::<String>()
                ),
            )),
        };
        result
            .unwrap_or_else(|e| vec![e])
            .into_iter()
            .map(|f| f.in_reply_to(&frame.kind))
            .collect()
    }

    /// Cleans up after the socket: presence, and when it was the user's last socket in
    /// the party, voice, buffering and `user_left`; a screen share from this socket.
    /// Takes the socket out of this node's room and user channel.
    fn forget(&self) {
        let rt = &self.rt;
        rt.hub.leave(self.party, self.conn, &rt.subscriptions);
        rt.hub
            .remove_user_socket(self.me.id, self.conn, &rt.subscriptions);
    }

    async fn close(&mut self) {
        let rt = self.rt.clone();
        self.forget();
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
            Frame::server("user_left", json!({ "user": self.user_json() })),
            None,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::{chat_frames::valid_emoji, *};

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
