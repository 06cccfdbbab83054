//! `POST /api/videos/{id}/like/` exactly as the frontend expects:
//! `{"is_like": true|false}` → `{"success": true, "is_liked", "like_count", "dislike_count"}`.
//! The same vote again removes it; the other vote switches it. One vote per user per
//! video (primary key); counts move by exact deltas in the same transaction, serialised
//! per (video, user), so they stay exact under concurrent votes.

use crate::extract::Ids;
use axum::{Json as AxumJson, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::AuthUser, error::AppResult, extract::Json, routes::videos::visible_video, state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
pub struct LikeRequest {
    /// true to like, false to dislike.
    pub is_like: bool,
}

/// The answer, with the seed's keys at the top level.
#[derive(Debug, Serialize, ToSchema)]
pub struct LikeResponse {
    pub success: bool,
    /// Whether the caller now likes the video.
    pub is_liked: bool,
    /// Whether the caller now dislikes it.
    pub is_disliked: bool,
    pub like_count: i32,
    pub dislike_count: i32,
}

/// Likes, dislikes, or (same vote again) withdraws the vote on a video.
#[utoipa::path(post, path = "/videos/{id}/like/", tag = "videos", security(("bearer" = [])), request_body = LikeRequest,
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = LikeResponse), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn like(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(body): Json<LikeRequest>,
) -> AppResult<AxumJson<LikeResponse>> {
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    // Serialise this user's votes on this video (the counters are row updates and
    // serialise themselves).
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2::text, 0))",
        v.id.to_string(),
        me.id.to_string()
    )
    .execute(&mut *tx)
    .await?;
    let previous = sqlx::query_scalar!(
        "SELECT is_like FROM video_likes WHERE video_id = $1 AND user_id = $2",
        v.id,
        me.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (now, d_like, d_dislike): (Option<bool>, i32, i32) = match (previous, body.is_like) {
        (None, true) => (Some(true), 1, 0),
        (None, false) => (Some(false), 0, 1),
        (Some(true), true) => (None, -1, 0),
        (Some(false), false) => (None, 0, -1),
        (Some(true), false) => (Some(false), -1, 1),
        (Some(false), true) => (Some(true), 1, -1),
    };
    match now {
        None => {
            sqlx::query!(
                "DELETE FROM video_likes WHERE video_id = $1 AND user_id = $2",
                v.id,
                me.id
            )
            .execute(&mut *tx)
            .await?;
        }
        Some(is_like) => {
            sqlx::query!(
                "INSERT INTO video_likes (video_id, user_id, is_like) VALUES ($1, $2, $3)
                 ON CONFLICT (video_id, user_id) DO UPDATE SET is_like = EXCLUDED.is_like, created_at = now()",
                v.id,
                me.id,
                is_like
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let counts = sqlx::query!(
        "UPDATE videos SET like_count = like_count + $2, dislike_count = dislike_count + $3
         WHERE id = $1 RETURNING like_count, dislike_count",
        v.id,
        d_like,
        d_dislike
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(is_like) = now {
        // A vote cast (not a withdrawal) counts in the video's analytics.
        crate::analytics::record(
            &state,
            wp_shared::jobs::AnalyticsEvent::new(
                if is_like {
                    "video.like"
                } else {
                    "video.dislike"
                },
                Some(me.id),
                Some(v.id),
                serde_json::json!({}),
            ),
        )
        .await;
    }
    Ok(AxumJson(LikeResponse {
        success: true,
        is_liked: now == Some(true),
        is_disliked: now == Some(false),
        like_count: counts.like_count,
        dislike_count: counts.dislike_count,
    }))
}
