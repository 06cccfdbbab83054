//! Playback frames: `video_control`, `sync_request`, buffering, and the compare-and-set
//! change of the stored state that every node and the API share.

use std::collections::HashMap;

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
        let changed = change_playback(&self.rt, self.party, |cur, when, buffering| {
            Some(cur.apply(&control, when.now, when.at, wait && buffering))
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

    /// `buffering` (with `data.reason`) or `ready`. Every member hears
    /// `member_buffering`. Under the `wait` policy a buffering member makes the room
    /// wait, unless the buffering is its own sync correction (`reason: sync_seek`: a
    /// member seeking to catch up must not pause everyone, and would otherwise do so
    /// every time it seeks into media it has not loaded) or ends within
    /// [`BUFFER_DEBOUNCE_MS`] (a short stall is not worth stopping the room for).
    pub(super) async fn buffering(
        &self,
        buffering: bool,
        value: &Value,
    ) -> Result<Vec<Frame>, Frame> {
        #[derive(Deserialize, Default, Clone, Copy, PartialEq)]
        #[serde(rename_all = "snake_case")]
        enum Reason {
            /// The player ran out of data while playing (the default).
            #[default]
            Stall,
            /// Loading after a party control (a play, a seek, a new video).
            Control,
            /// Loading after the client's own sync correction.
            SyncSeek,
        }
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct In {
            #[serde(default)]
            reason: Reason,
        }
        let d: In = if buffering {
            data(value)?
        } else {
            In::default()
        };
        let reason = match d.reason {
            Reason::Stall => "stall",
            Reason::Control => "control",
            Reason::SyncSeek => "sync_seek",
        };
        let mut redis = self.rt.ctx.redis.clone();
        let field = self.me.id.to_string();
        let now = now_ms();
        // Only a buffering that may pause the room is recorded as such.
        let pauses = buffering && d.reason != Reason::SyncSeek;
        let res: redis::RedisResult<()> = if pauses {
            redis.hset(self.keys.buffering(), &field, now).await
        } else {
            redis.hdel(self.keys.buffering(), &field).await
        };
        res.map_err(|e| internal(&e))?;
        let mut shown = json!({ "user": self.user_json(), "buffering": buffering });
        if buffering {
            shown["reason"] = reason.into();
        }
        self.rt
            .emit(self.party, Frame::server("member_buffering", shown), None)
            .await;
        let wait = self
            .room
            .settings()
            .is_some_and(|s| s.sync_policy == SyncPolicy::Wait);
        if !wait {
            return Ok(Vec::new());
        }
        if pauses {
            // The room waits if this member is still buffering (the same entry) once
            // the debounce has passed.
            let (rt, party, keys, user) = (
                self.rt.clone(),
                self.party,
                self.keys.clone(),
                self.user_json(),
            );
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(BUFFER_DEBOUNCE_MS)).await;
                let mut redis = rt.ctx.redis.clone();
                let since: Option<i64> = redis.hget(keys.buffering(), &field).await.ok().flatten();
                if since != Some(now) {
                    return;
                }
                match change_playback(&rt, party, |cur, when, _| cur.enter_waiting(when.now)).await
                {
                    Ok(Some((next, at))) => {
                        emit_state(
                            &rt,
                            party,
                            &next,
                            at,
                            json!({ "action": "wait", "reason": "buffering", "user": user }),
                        )
                        .await;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, %party, "the room could not wait"),
                }
            });
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

/// A member's buffering pauses the room (under the `wait` policy) only once it has
/// lasted this long: players routinely stall for a moment after a seek.
pub const BUFFER_DEBOUNCE_MS: u64 = 500;

/// When a change is made: the server time now, and the instant a scheduled change
/// takes effect (now + the party's margin, [`live::margin_ms`]).
#[derive(Debug, Clone, Copy)]
pub struct When {
    pub now: i64,
    pub at: i64,
}

/// Changes the playback state with compare-and-set: `f` gets the current state, the
/// time ([`When`]) and whether someone is buffering, and returns the next state (None:
/// nothing to do). Returns the state written and the time it was made; the caller
/// must [`emit_state`] it (which also writes it to PostgreSQL).
pub async fn change_playback(
    rt: &Realtime,
    party: Uuid,
    f: impl Fn(&Playback, When, bool) -> Option<Playback>,
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
    f: &impl Fn(&Playback, When, bool) -> Option<Playback>,
) -> anyhow::Result<Option<(Playback, i64)>> {
    let keys = Keys::new(&rt.ctx.config.redis_prefix, party);
    let mut redis = rt.ctx.live.clone();
    for _ in 0..8 {
        // One round trip for the state, the buffering count and the members' delays.
        let (raw, buffering, delays): (Option<String>, u64, HashMap<String, String>) =
            redis::pipe()
                .get(keys.state())
                .hlen(keys.buffering())
                .hgetall(keys.delays())
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
        let when = When {
            now,
            at: now + live::margin_ms(delays.values(), now),
        };
        let Some(next) = f(&cur, when, buffering > 0) else {
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
    match change_playback(rt, party, |cur, when, buffering| {
        if buffering && !cap {
            None
        } else {
            cur.resume(when.at)
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
