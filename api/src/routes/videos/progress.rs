//! Where the caller is in a video (`PUT/DELETE /api/videos/{id}/progress/`): what the
//! apps' "continue watching" row is made of (`GET /api/mobile/home/`).

use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult, ErrorBody},
    extract::{Ids, JsonBody},
    response::{ApiResponse, Envelope},
    routes::videos::visible_video,
    state::AppState,
};

/// Where playback is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressBody {
    /// Seconds from the start (0 to the video's duration).
    #[schema(minimum = 0.0)]
    pub position_seconds: f64,
}

/// The progress as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    pub video_id: Uuid,
    pub position_seconds: f64,
    pub updated_at: DateTime<Utc>,
}

/// Records where the caller is in a video they may see (the apps send it every few
/// seconds while playing and on pause). 404 for a video they cannot see.
#[utoipa::path(put, path = "/videos/{id}/progress/", tag = "videos", security(("bearer" = [])), request_body = ProgressBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Progress>)), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn save_progress(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Progress>> {
    let mut conn = state.db.acquire().await?;
    let v = visible_video(&mut conn, Some(&me), id).await?;
    let b = body.parse::<ProgressBody>()?;
    let max = v
        .duration_seconds
        .unwrap_or(wp_core::party::live::MAX_POSITION);
    if !b.position_seconds.is_finite() || b.position_seconds < 0.0 || b.position_seconds > max + 1.0
    {
        return Err(AppError::field(
            "position_seconds",
            format!("A number of seconds from 0 to {max:.0}."),
        ));
    }
    let updated_at =
        wp_core::video::save_progress(&mut conn, me.id, v.id, b.position_seconds).await?;
    Ok(ApiResponse::ok(Progress {
        video_id: v.id,
        position_seconds: b.position_seconds,
        updated_at,
    }))
}

/// Forgets where the caller is in a video (it leaves "continue watching").
#[utoipa::path(delete, path = "/videos/{id}/progress/", tag = "videos", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn forget_progress(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let mut conn = state.db.acquire().await?;
    let v = visible_video(&mut conn, Some(&me), id).await?;
    crate::response::deleted(wp_core::video::forget_progress(&mut conn, me.id, v.id).await?)
}
