//! What happens in a party that its sockets must hear of, as one typed enum: the API
//! and the realtime nodes publish [`PartyEvent`]s on the party's channel, every node
//! keeps its room cache from the typed values (never by re-reading client JSON by
//! key), and [`PartyEvent::frame`] renders each to the client's frame in one place
//! (`docs/realtime.md` is the wire format).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;
use wp_shared::frame::Frame;

use super::{
    PartyRole, PartySettings, PartyVisibility,
    chat::ChatMessage,
    live::{self, Playback},
    polls::{Poll, PollCounts},
};

/// A user as frames name them (`data.user`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: Uuid,
    pub username: String,
}

impl UserRef {
    pub fn new(id: Uuid, username: &str) -> Self {
        Self {
            id,
            username: username.to_owned(),
        }
    }
}

/// Why a member is no longer in a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    Left,
    Kicked,
    Banned,
}

impl Departure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Kicked => "kicked",
            Self::Banned => "banned",
        }
    }
}

/// An event of a party (the internal protocol between the API and the nodes; its
/// serde form is not the client's wire format, [`PartyEvent::frame`] is).
// Adjacently tagged: the tag comes first, so a node reads the content straight into
// its type (an internally tagged enum would buffer every message first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum PartyEvent {
    /// The playback state changed, at server time `at`; `cause` says who and what
    /// (extra `data` fields of `video_state`).
    VideoState {
        playback: Playback,
        at: i64,
        #[serde(default)]
        cause: Map<String, Value>,
    },
    /// Title, description, visibility or settings changed.
    PartyUpdated {
        title: String,
        description: String,
        visibility: PartyVisibility,
        settings: PartySettings,
        by: UserRef,
    },
    MemberJoined {
        user: UserRef,
        role: PartyRole,
    },
    MemberUpdated {
        user: UserRef,
        role: PartyRole,
    },
    MemberLeft {
        user: UserRef,
        reason: Departure,
    },
    /// To the removed user's sockets, before they are closed.
    Removed {
        reason: Departure,
    },
    /// The party ended; every socket closes.
    PartyEnded {
        message: String,
    },
    ChatMessage(ChatMessage),
    ChatMessageUpdated(ChatMessage),
    ChatMessageDeleted {
        id: Uuid,
        by: UserRef,
    },
    /// A poll was created (`poll_created`).
    PollCreated(Poll),
    /// A poll's counts at a version (`poll_updated`); nodes send the highest version
    /// they have, at most once per `poll_every` per room.
    PollUpdated(PollCounts),
    /// A poll closed, with its final results (`poll_closed`).
    PollClosed(Poll),
    PollDeleted {
        poll_id: Uuid,
        by: UserRef,
    },
    /// A frame the nodes pass on as it is and keep no state from (typing, reactions,
    /// buffering, presence, voice, signaling, screen share).
    Relay(Frame),
}

impl PartyEvent {
    /// The client's frame for this event.
    pub fn frame(&self) -> Frame {
        let (kind, data) = match self {
            Self::VideoState {
                playback,
                at,
                cause,
            } => {
                let mut data = playback.to_frame_data(*at);
                if let Value::Object(d) = &mut data {
                    d.extend(cause.clone());
                }
                ("video_state", data)
            }
            Self::PartyUpdated {
                title,
                description,
                visibility,
                settings,
                by,
            } => (
                "party_updated",
                json!({
                    "title": title, "description": description, "visibility": visibility,
                    "settings": settings, "user": by,
                }),
            ),
            Self::MemberJoined { user, role } => {
                ("member_joined", json!({ "user": user, "role": role }))
            }
            Self::MemberUpdated { user, role } => {
                ("member_updated", json!({ "user": user, "role": role }))
            }
            Self::MemberLeft { user, reason } => (
                "member_left",
                json!({ "user": user, "reason": reason.as_str() }),
            ),
            Self::Removed { reason } => (
                "removed",
                json!({ "code": reason.as_str(), "message": match reason {
                    Departure::Kicked => "You were removed from the party.",
                    Departure::Banned => "You were banned from the party.",
                    Departure::Left => "You left the party.",
                }}),
            ),
            Self::PartyEnded { message } => (
                "party_ended",
                json!({ "code": "party_ended", "message": message }),
            ),
            Self::ChatMessage(m) => ("chat_message", to_value(m)),
            Self::ChatMessageUpdated(m) => ("chat_message_updated", to_value(m)),
            Self::ChatMessageDeleted { id, by } => {
                ("chat_message_deleted", json!({ "id": id, "user": by }))
            }
            Self::PollCreated(p) => ("poll_created", to_value(p)),
            Self::PollUpdated(c) => ("poll_updated", to_value(c)),
            Self::PollClosed(p) => ("poll_closed", to_value(p)),
            Self::PollDeleted { poll_id, by } => {
                ("poll_deleted", json!({ "poll_id": poll_id, "user": by }))
            }
            Self::Relay(frame) => return frame.clone(),
        };
        Frame::server(kind, data)
    }
}

impl From<Frame> for PartyEvent {
    /// A frame relayed as it is.
    fn from(frame: Frame) -> Self {
        Self::Relay(frame)
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A message on a party's channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusMsg {
    /// The node (or `api`) that published it; a node skips its own.
    pub origin: String,
    /// Deliver only to this user's sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<PartyEvent>,
    /// Close the sockets addressed (after delivering the event), with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<String>,
}

impl BusMsg {
    /// `event` for every socket of the party, from `origin`.
    pub fn to_all(origin: &str, event: PartyEvent) -> Self {
        Self {
            origin: origin.to_owned(),
            to_user: None,
            event: Some(event),
            disconnect: None,
        }
    }
}

/// Just the origin of a bus message and when it was sent: a node reads this first,
/// skips its own messages without parsing the rest, and measures the bus's lag.
#[derive(Debug, Deserialize)]
pub struct BusOrigin<'a> {
    #[serde(borrow)]
    pub origin: std::borrow::Cow<'a, str>,
    /// Unix milliseconds at publication ([`encode_bus`]).
    #[serde(default)]
    pub sent_at: Option<i64>,
}

/// The payload of `msg` on the bus: its JSON with `sent_at` (Unix milliseconds, now)
/// in front, so receivers can tell how long it travelled.
pub fn encode_bus(msg: &BusMsg) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(msg)?;
    let now = chrono::Utc::now().timestamp_millis();
    // `json` is an object: `{...}`; its fields follow ours.
    Ok(format!("{{\"sent_at\":{now},{}", &json[1..]))
}

/// Publishes `msg` on the party's channel.
pub async fn publish(
    redis: &mut redis::aio::ConnectionManager,
    keys: &live::Keys,
    msg: &BusMsg,
) -> redis::RedisResult<()> {
    use redis::AsyncCommands;
    let payload = encode_bus(msg).unwrap_or_default();
    redis.publish::<_, _, ()>(keys.channel(), payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserRef {
        UserRef::new(Uuid::nil(), "ann")
    }

    #[test]
    fn frames_keep_the_wire_format() {
        let f = PartyEvent::MemberLeft {
            user: user(),
            reason: Departure::Kicked,
        }
        .frame();
        assert_eq!(f.kind, "member_left");
        assert_eq!(f.data["reason"], "kicked");
        assert_eq!(f.data["user"]["username"], "ann");
        let f = PartyEvent::Removed {
            reason: Departure::Banned,
        }
        .frame();
        assert_eq!(f.data["code"], "banned");
        let f = PartyEvent::MemberJoined {
            user: user(),
            role: PartyRole::Member,
        }
        .frame();
        assert_eq!(f.data["role"], "member");
    }

    #[test]
    fn events_round_trip_between_nodes() {
        let e = PartyEvent::MemberUpdated {
            user: user(),
            role: PartyRole::Cohost,
        };
        let msg = BusMsg::to_all("api", e.clone());
        let back: BusMsg = serde_json::from_str(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert_eq!(back.event, Some(e));
        let relay = PartyEvent::Relay(Frame::server("typing", json!({ "is_typing": true })));
        let back: PartyEvent =
            serde_json::from_value(serde_json::to_value(&relay).unwrap()).unwrap();
        assert_eq!(back.frame().kind, "typing");
    }

    #[test]
    fn a_node_reads_the_origin_alone() {
        let msg = BusMsg::to_all(
            "node-1",
            PartyEvent::PartyEnded {
                message: "bye".into(),
            },
        );
        let text = encode_bus(&msg).unwrap();
        let head: BusOrigin<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(head.origin, "node-1");
        let sent = head.sent_at.expect("stamped");
        assert!((chrono::Utc::now().timestamp_millis() - sent).abs() < 5_000);
        // The rest reads as it did.
        let back: BusMsg = serde_json::from_str(&text).unwrap();
        assert_eq!(back.origin, "node-1");
        assert!(back.event.is_some());
    }
}
