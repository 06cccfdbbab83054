//! Chat, typing and reactions.

use std::time::Instant;

use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wp_core::party::events::PartyEvent;
use wp_core::party::{PartyRole, chat, live::MAX_POSITION};
use wp_shared::{frame::Frame, jobs::AnalyticsEvent};

use super::*;
use crate::conn::*;

impl Conn {
    pub(super) async fn chat(&self, value: &Value, role: PartyRole) -> Result<Vec<Frame>, Frame> {
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
        let config = &self.rt.ctx.config;
        if let Some(wait) = chat::charge(
            &mut redis,
            &config.redis_prefix,
            self.me.id,
            config.chat_per_minute,
        )
        .await
        .map_err(|e| internal(&e))?
        {
            return Err(Frame::server(
                "error",
                json!({ "code": "rate_limited", "message": "Too many chat messages; slow down.", "retry_after_ms": wait }),
            ));
        }
        let stored = chat::insert(
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
        if !stored.new && (!stored.unpublished || self.room.delivered_chat(stored.message.id)) {
            // A resent frame (its sender did not see the echo, say across a node's
            // death) of a message the party had: published, or shown by this node.
            // Only the sender is answered.
            return Ok(vec![PartyEvent::ChatMessage(stored.message).frame()]);
        }
        // New, or resent after its first node died before publishing it: the party gets
        // it now (a node shows a message once, so the outbox sweep publishing it again
        // is harmless).

        self.rt
            .emit(self.party, PartyEvent::ChatMessage(stored.message), None)
            .await;
        Ok(Vec::new())
    }

    pub(super) async fn typing(&mut self, value: &Value) -> Result<Vec<Frame>, Frame> {
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
                Frame::server(
                    "typing",
                    json!({ "user": self.user_json(), "is_typing": d.is_typing, "expires_in_ms": TYPING_EXPIRES_MS }),
                ),
                Some(self.conn),
            )
            .await;
        Ok(Vec::new())
    }

    pub(super) async fn reaction(&mut self, value: &Value) -> Result<Vec<Frame>, Frame> {
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
                Frame::server(
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
}

/// One emoji-ish symbol: no letters, digits, whitespace or control characters.
pub(super) fn valid_emoji(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control() && !c.is_ascii())
}
