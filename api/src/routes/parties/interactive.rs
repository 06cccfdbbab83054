//! The seed's interactive views of a party's live state, under
//! `/api/interactive/parties/{party_id}/`: the screen share and the voice chat. The
//! same state changes on the party socket (`voice_join`, `screen_share_start`, ...);
//! both paths write the same Redis keys and broadcast the same frames.

use crate::extract::Ids;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wp_core::party::live::{self as live, BusMsg, Keys, ScreenShare, VoiceAction, VoiceEntry};

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult},
    extract::Json,
    response::{ApiResponse, Envelope},
    routes::parties::{self, Membership},
    state::AppState,
};

async fn member_of(state: &AppState, me: &AuthUser, id: Uuid) -> AppResult<Membership> {
    Ok(wp_core::party::membership(&state.db, me, id).await?)
}

/// The screen-share state of a party.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScreenShares {
    /// The active share (one at a time), or null.
    #[schema(value_type = Option<Object>)]
    pub active: Option<ScreenShare>,
    /// Whether the party's settings allow screen sharing.
    pub allowed: bool,
}

/// Who shares the screen (members).
#[utoipa::path(get, path = "/interactive/parties/{party_id}/screen-shares/", tag = "parties", security(("bearer" = [])),
    params(("party_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<ScreenShares>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn screen_shares(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(party_id): Ids<Uuid>,
) -> AppResult<ApiResponse<ScreenShares>> {
    let m = member_of(&state, &me, party_id).await?;
    let keys = Keys::new(&state.config.redis_prefix, m.party);
    let mut redis = state.redis.clone();
    Ok(ApiResponse::ok(ScreenShares {
        active: live::screen_share(&mut redis, &keys).await?,
        allowed: m.settings.allow_screen_share,
    }))
}

/// The voice chat of a party.
#[derive(Debug, Serialize, ToSchema)]
pub struct VoiceChat {
    #[schema(value_type = Vec<Object>)]
    pub participants: Vec<VoiceEntry>,
}

/// Who is in the voice chat, and muted (members).
#[utoipa::path(get, path = "/interactive/parties/{party_id}/voice-chat/", tag = "parties", security(("bearer" = [])),
    params(("party_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<VoiceChat>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn voice_chat(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(party_id): Ids<Uuid>,
) -> AppResult<ApiResponse<VoiceChat>> {
    let m = member_of(&state, &me, party_id).await?;
    let keys = Keys::new(&state.config.redis_prefix, m.party);
    let mut redis = state.redis.clone();
    Ok(ApiResponse::ok(VoiceChat {
        participants: live::voice(&mut redis, &keys).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoiceBody {
    /// `join`, `leave`, `mute` or `unmute`.
    pub action: VoiceAction,
}

/// Joins, leaves, mutes or unmutes the caller in the voice chat; the party's sockets
/// get a `voice_state` frame. (Media flows peer to peer over WebRTC, signalled on the
/// socket.)
#[utoipa::path(post, path = "/interactive/parties/{party_id}/voice-chat/", tag = "parties", security(("bearer" = [])),
    request_body = VoiceBody, params(("party_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<VoiceChat>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn voice_update(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(party_id): Ids<Uuid>,
    Json(body): Json<VoiceBody>,
) -> AppResult<ApiResponse<VoiceChat>> {
    let m = member_of(&state, &me, party_id).await?;
    let keys = Keys::new(&state.config.redis_prefix, m.party);
    let mut redis = state.redis.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let all = live::voice_apply(&mut redis, &keys, me.id, &me.username, body.action, now)
        .await?
        .map_err(|msg| AppError::field("action", msg))?;
    parties::notify(
        &state,
        m.party,
        BusMsg {
            origin: "api".into(),
            to_user: None,
            event: Some(live::voice_frame(me.id, &me.username, body.action, &all).into()),
            disconnect: None,
        },
    )
    .await;
    Ok(ApiResponse::ok(VoiceChat { participants: all }))
}
