//! Voice chat, WebRTC signaling and the screen share.

use redis::AsyncCommands;
use serde_json::{Value, json};
use uuid::Uuid;
use wp_core::party::{
    PartyRole,
    live::{self as live, Keys, ScreenShare, VoiceAction},
};
use wp_shared::frame::Frame;

use super::*;
use crate::{Realtime, conn::*};

impl Conn {
    pub(super) async fn voice(&self, action: VoiceAction) -> Result<Vec<Frame>, Frame> {
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
                live::voice_frame(self.me.id, &self.me.username, action, &all),
                None,
            )
            .await;
        Ok(Vec::new())
    }

    /// WebRTC signaling: relayed only to the member named in `data.to`.
    pub(super) async fn signal(&self, frame: &Frame) -> Result<Vec<Frame>, Frame> {
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
            .emit_to_user(self.party, to, Frame::server(&frame.kind, payload))
            .await;
        Ok(Vec::new())
    }

    pub(super) async fn screen_start(&self) -> Result<Vec<Frame>, Frame> {
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
                Frame::server(
                    "screen_share",
                    json!({ "action": "started", "user": self.user_json(), "active": share }),
                ),
                None,
            )
            .await;
        Ok(Vec::new())
    }

    pub(super) async fn screen_stop(&self, role: PartyRole) -> Result<Vec<Frame>, Frame> {
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
}

pub(super) async fn stop_share(
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
        Frame::server(
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
