//! Playback frames: `video_control`, `sync_request`, buffering, and the compare-and-set
//! change of the stored state that every node and the API share.

use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wp_core::{
    party::events::PartyEvent,
    party::{
        ControlMode, PartyRole, SyncPolicy,
        live::{
            self as live, Control, Keys, MAX_POSITION, MAX_RATE, MIN_RATE, PartyVideo, Playback,
            Status,
        },
    },
    video::playable_by,
};
use wp_shared::frame::Frame;

use super::*;
use crate::{Realtime, conn::*};

impl Conn {
    /// Answers `sync_request`, echoing `client_time` exactly as it came (an integer stays
    /// an integer); without one, the frame's `timestamp`.
    pub(super) fn sync(&self, frame: &Frame, received: i64) -> Vec<Frame> {
        let client_time = match frame.data.get("client_time") {
            None | Some(Value::Null) => Value::from(frame.timestamp),
            Some(n @ Value::Number(_)) => n.clone(),
            Some(_) => {
                return vec![err(
                    "invalid_data",
                    "data.client_time: a number (Unix ms, the client's clock).",
                )];
            }
        };
        vec![Frame::server(
            "sync_response",
            json!({ "client_time": client_time, "server_receive": received, "server_send": now_ms() }),
        )]
    }

    pub(super) async fn video_control(
        &self,
        value: &Value,
        role: PartyRole,
    ) -> Result<Vec<Frame>, Frame> {
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

    pub(super) async fn emit_state(&self, p: &Playback, now: i64, extra: Value) {
        emit_state(&self.rt, self.party, p, now, extra).await;
    }

    pub(super) async fn buffering(&self, buffering: bool) -> Result<Vec<Frame>, Frame> {
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
                Frame::server(
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
    // A Redis connection cut (a restart, a failover) fails the first command on it
    // while it reconnects: the change is tried again rather than lost. Applying a
    // control twice is harmless (the second finds the state it would make).
    let mut retries = 0;
    loop {
        match change_once(rt, party, &f).await {
            Err(e) if retries < 3 && connection_lost(&e) => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(100 * retries)).await;
            }
            other => return other,
        }
    }
}

fn connection_lost(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<redis::RedisError>()
            .is_some_and(wp_shared::redis_conn::is_connection_lost)
    })
}

async fn change_once(
    rt: &Realtime,
    party: Uuid,
    f: &impl Fn(&Playback, i64, bool) -> Option<Playback>,
) -> anyhow::Result<Option<(Playback, i64)>> {
    let keys = Keys::new(&rt.ctx.config.redis_prefix, party);
    let mut redis = rt.ctx.live.clone();
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
    let cause = match extra {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    rt.emit(
        party,
        PartyEvent::VideoState {
            playback: p.clone(),
            at: now,
            cause,
        },
        None,
    )
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
