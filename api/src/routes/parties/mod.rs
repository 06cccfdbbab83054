//! Watch parties over REST, under `/api/parties/`: create, list, detail, update,
//! delete ([`crud`]); join (by id or invite code) and leave with host hand-over, roles,
//! kick and ban ([`members`]); invitations and announcements ([`invites`]); chat
//! history, edit and delete ([`chat`]). The live side (playback, chat, typing,
//! reactions, voice, screen share) is the party socket (`realtime/`,
//! `docs/realtime.md`); what changes here is told to the sockets through the party's
//! Redis channel. The model, the visibility rule and the queries the socket shares are
//! in `wp_core::party`.

mod chat;
mod crud;
pub mod interactive;
mod invites;
mod members;
pub mod polls;

pub use chat::*;
pub use crud::*;
pub use invites::*;
pub use members::*;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;
use wp_core::party::new_invite_code as invite_code;
pub use wp_core::party::{
    Membership, Participant, PartyRole, PartyRow, PartySettings, PartyStatus, PartyVisibility,
    chat::ChatMessage,
};
use wp_core::party::{
    events::{BusMsg, Departure, PartyEvent, UserRef},
    live::{self as live, Keys},
};

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult},
    routes::social::UserSummary,
    state::AppState,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// A watch party.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Party {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub host: UserSummary,
    pub video: PartyVideoOut,
    pub visibility: PartyVisibility,
    /// Present for the host and co-hosts (and staff).
    pub invite_code: Option<String>,
    /// The invite link to share (frontend URL), with `invite_code`.
    pub invite_url: Option<String>,
    pub settings: PartySettings,
    pub member_count: i64,
    /// The caller's role, if a member.
    pub my_role: Option<PartyRole>,
    pub status: PartyStatus,
    /// The playback state as last stored (live in the socket's `video_state`); null only
    /// if the stored state could not be read.
    pub playback: Option<PlaybackView>,
    /// The social group the party belongs to (its members see and join it).
    pub group_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartyVideoOut {
    pub id: Option<Uuid>,
    pub url: Option<String>,
    pub title: Option<String>,
}

/// Tells the party's sockets (every realtime node) about a change. Best effort: the
/// change is already committed; sockets also re-read on reconnect.
pub async fn notify(state: &AppState, party: Uuid, msg: BusMsg) {
    let keys = Keys::new(&state.config.redis_prefix, party);
    let mut redis = state.redis.clone();
    if let Err(e) = live::publish(&mut redis, &keys, &msg).await {
        tracing::warn!(error = %e, %party, "could not publish to the party channel");
    }
}

fn bus(event: PartyEvent) -> BusMsg {
    BusMsg::to_all("api", event)
}

/// How frames name `me`.
fn user_ref(me: &AuthUser) -> UserRef {
    UserRef::new(me.id, &me.username)
}

/// Closes every socket of an ended party and drops its live state.
pub(crate) async fn end_live(state: &AppState, party: Uuid, message: &str) {
    notify(
        state,
        party,
        BusMsg {
            origin: "api".into(),
            to_user: None,
            event: Some(PartyEvent::PartyEnded {
                message: message.to_owned(),
            }),
            disconnect: Some("party_ended".into()),
        },
    )
    .await;
    let keys = Keys::new(&state.config.redis_prefix, party);
    let mut redis = state.redis.clone();
    let _ = redis::cmd("DEL")
        .arg(keys.all())
        .query_async::<()>(&mut redis)
        .await;
}

/// The API's view of a party for a caller (the invite code only for the host, co-hosts
/// and staff).
fn party_view(row: PartyRow, state: &AppState, staff: bool) -> Party {
    let settings = row.settings();
    let host = row.host();
    let sees_code = staff || row.my_role.is_some_and(|r| r >= PartyRole::Cohost);
    let invite_url = sees_code.then(|| {
        format!(
            "{}/parties/join/{}",
            state.config.frontend_url.trim_end_matches('/'),
            row.invite_code
        )
    });
    Party {
        id: row.id,
        title: row.title,
        description: row.description,
        host,
        video: PartyVideoOut {
            id: row.video_id,
            url: row.external_url,
            title: row.video_title,
        },
        visibility: row.visibility,
        invite_code: sees_code.then_some(row.invite_code),
        invite_url,
        settings,
        member_count: row.member_count,
        my_role: row.my_role,
        status: row.status,
        playback: PlaybackView::of(row.playback),
        group_id: row.group_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// The playback state over REST: times in RFC 3339 like every REST time (the socket's
/// frames carry the same state with Unix milliseconds).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlaybackView {
    /// `playing`, `paused` or `waiting` (for a buffering member).
    #[schema(value_type = String, example = "paused")]
    pub status: live::Status,
    /// Seconds into the video at `updated_at`; while playing, add the time since
    /// multiplied by `rate`.
    pub position: f64,
    pub rate: f64,
    /// What plays: `{"id": library video or null, "url": external URL or null}`.
    #[schema(value_type = Object)]
    pub video: live::PartyVideo,
    /// When the state took effect (server time).
    pub updated_at: DateTime<Utc>,
    /// Bumped on every change.
    pub seq: u64,
    /// While `waiting`: when the wait began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<DateTime<Utc>>,
}

impl PlaybackView {
    fn of(stored: serde_json::Value) -> Option<Self> {
        let p: live::Playback = serde_json::from_value(stored).ok()?;
        Some(Self {
            status: p.status,
            position: p.position,
            rate: p.rate,
            video: p.video,
            updated_at: DateTime::from_timestamp_millis(p.updated_at)?,
            seq: p.seq,
            waiting_since: p.waiting_since.and_then(DateTime::from_timestamp_millis),
        })
    }
}

/// Loads a party `me` may see (`party_visible_to`); 404 otherwise, and for a
/// malformed id.
async fn visible_party(conn: &mut PgConnection, me: &AuthUser, id: Uuid) -> AppResult<PartyRow> {
    Ok(wp_core::party::visible(conn, me, id).await?)
}

async fn load_row(conn: &mut PgConnection, me: &AuthUser, id: Uuid) -> AppResult<Option<PartyRow>> {
    Ok(wp_core::party::load(conn, me, id).await?)
}

/// [`visible_party`] under a row lock on the party (`wp_core::party::locked`).
async fn locked_party(conn: &mut PgConnection, me: &AuthUser, id: Uuid) -> AppResult<PartyRow> {
    Ok(wp_core::party::locked(conn, me, id).await?)
}

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(join_by_code))
        .routes(routes!(detail, update, delete))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(participants))
        .routes(routes!(set_member_role, kick))
        .routes(routes!(bans, ban))
        .routes(routes!(unban))
        .routes(routes!(regenerate_code))
        .routes(routes!(invite))
        .routes(routes!(announce))
        .routes(routes!(messages))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(interactive::screen_shares))
        .routes(routes!(interactive::voice_chat, interactive::voice_update))
        .routes(routes!(polls::list_polls, polls::create_poll))
        .routes(routes!(polls::poll_detail, polls::delete_poll))
        .routes(routes!(polls::respond, polls::retract))
        .routes(routes!(polls::close_poll))
        .routes(routes!(polls::poll_votes))
}
