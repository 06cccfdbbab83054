//! Videos: their states, their visibility, the one rule for who may open one
//! (`video_visible_to` in SQL, migration 14, which the library's detail and list, the
//! comments and the party sockets all use), and the library's reads.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::account::Actor;

crate::text_enum! {
    /// Who may see a video.
    pub enum VideoVisibility as "video visibility" {
        Public = "public",
        Unlisted = "unlisted",
        Friends = "friends",
        Private = "private",
    }
}

crate::text_enum! {
    /// Where a video is in its preparation.
    pub enum VideoStatus as "video status" {
        Processing = "processing",
        Ready = "ready",
        Failed = "failed",
    }
}

/// Whether `viewer` may see video `id` and it is ready to play (a party may show it).
pub async fn playable_by(db: impl PgExecutor<'_>, viewer: &Actor, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM videos v
               WHERE v.id = $1 AND v.status = 'ready'
                 AND video_visible_to(v.owner_id, v.status, v.visibility, $2, $3)) AS "ok!""#,
        id,
        viewer.id,
        viewer.is_staff()
    )
    .fetch_one(db)
    .await
}

/// A video as the library reads it for one viewer (`my_vote` is theirs).
#[derive(Debug, Clone)]
pub struct VideoRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub owner_username: String,
    pub owner_display_name: String,
    pub owner_avatar_path: Option<String>,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub category: String,
    pub visibility: VideoVisibility,
    pub allow_download: bool,
    pub status: VideoStatus,
    pub failure_reason: Option<String>,
    pub storage_key: String,
    pub original_filename: String,
    pub container: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub duration_seconds: Option<f64>,
    pub thumbnail_key: Option<String>,
    pub like_count: i32,
    pub dislike_count: i32,
    pub comment_count: i32,
    pub top_comment_count: i32,
    pub my_vote: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Video `id` if `viewer` (`None`: anonymous) may see it (`video_visible_to`).
pub async fn visible(
    conn: &mut PgConnection,
    viewer: Option<&Actor>,
    id: Uuid,
) -> sqlx::Result<Option<VideoRow>> {
    let me = viewer.map(|v| v.id);
    let staff = viewer.is_some_and(Actor::is_staff);
    sqlx::query_as!(
        VideoRow,
        r#"SELECT v.id, v.owner_id, u.username AS owner_username, u.display_name AS owner_display_name, u.avatar_path AS owner_avatar_path,
                  v.title, v.description, v.tags, v.category, v.visibility AS "visibility: VideoVisibility",
                  v.allow_download, v.status AS "status: VideoStatus", v.failure_reason, v.storage_key,
                  v.original_filename, v.container,
                  v.content_type, v.size_bytes, v.sha256, v.duration_seconds, v.thumbnail_key,
                  v.like_count, v.dislike_count, v.comment_count, v.top_comment_count,
                  (SELECT l.is_like FROM video_likes l WHERE l.video_id = v.id AND l.user_id = $2) AS my_vote,
                  v.created_at, v.updated_at
           FROM videos v JOIN users u ON u.id = v.owner_id
           WHERE v.id = $1 AND video_visible_to(v.owner_id, v.status, v.visibility, $2, $3)"#,
        id,
        me,
        staff
    )
    .fetch_optional(&mut *conn)
    .await
}

/// Records that `user` is at `position` seconds in video `id` (the caller checked it may
/// see it). Returns when.
pub async fn save_progress(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
    position: f64,
) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar(
        "INSERT INTO watch_progress (user_id, video_id, position_seconds) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, video_id)
         DO UPDATE SET position_seconds = EXCLUDED.position_seconds, updated_at = now()
         RETURNING updated_at",
    )
    .bind(user)
    .bind(id)
    .bind(position)
    .fetch_one(&mut *conn)
    .await
}

/// Forgets where `user` is in video `id`; the rows removed (0 or 1).
pub async fn forget_progress(conn: &mut PgConnection, user: Uuid, id: Uuid) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM watch_progress WHERE user_id = $1 AND video_id = $2")
            .bind(user)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}

/// What the library list keeps and how it orders.
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Only this owner's videos.
    pub owner: Option<Uuid>,
    /// Lower-cased.
    pub category: Option<&'a str>,
    /// Lower-cased.
    pub tag: Option<&'a str>,
    /// Only videos of this visibility: the viewer's own only.
    pub visibility: Option<VideoVisibility>,
    /// Words of the title or description.
    pub search: Option<&'a str>,
    /// `created_at`, `title`, `like_count` or `duration_seconds`, `-` first for
    /// descending (a whitelist the caller checked: anything else orders by id only).
    pub order: &'a str,
}

/// One page of the videos `viewer` may list (others' unlisted videos are not listed),
/// and how many there are in all.
pub async fn list(
    db: &PgPool,
    viewer: Option<Uuid>,
    f: &ListFilter<'_>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(i64, Vec<VideoRow>)> {
    let visibility = f.visibility.map(VideoVisibility::as_str);
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM videos v
           WHERE ($2::uuid IS NULL OR v.owner_id = $2)
             AND ($3::text IS NULL OR v.category = $3)
             AND ($4::text IS NULL OR $4 = ANY(v.tags))
             AND ($5::text IS NULL OR v.visibility = $5)
             AND ($6::text IS NULL OR v.search @@ plainto_tsquery('simple', $6))
             AND (v.owner_id = $1 OR (
                 v.visibility IN ('public', 'friends') AND $5::text IS NULL
                 AND video_visible_to(v.owner_id, v.status, v.visibility, $1, FALSE)))"#,
        viewer,
        f.owner,
        f.category,
        f.tag,
        visibility,
        f.search
    )
    .fetch_one(db)
    .await?;
    let rows = sqlx::query_as!(
        VideoRow,
        r#"SELECT v.id, v.owner_id, u.username AS owner_username, u.display_name AS owner_display_name, u.avatar_path AS owner_avatar_path,
                  v.title, v.description, v.tags, v.category, v.visibility AS "visibility: VideoVisibility",
                  v.allow_download, v.status AS "status: VideoStatus", v.failure_reason, v.storage_key,
                  v.original_filename, v.container,
                  v.content_type, v.size_bytes, v.sha256, v.duration_seconds, v.thumbnail_key,
                  v.like_count, v.dislike_count, v.comment_count, v.top_comment_count,
                  (SELECT l.is_like FROM video_likes l WHERE l.video_id = v.id AND l.user_id = $1) AS my_vote,
                  v.created_at, v.updated_at
           FROM videos v JOIN users u ON u.id = v.owner_id
           WHERE ($2::uuid IS NULL OR v.owner_id = $2)
             AND ($3::text IS NULL OR v.category = $3)
             AND ($4::text IS NULL OR $4 = ANY(v.tags))
             AND ($5::text IS NULL OR v.visibility = $5)
             AND ($6::text IS NULL OR v.search @@ plainto_tsquery('simple', $6))
             AND (v.owner_id = $1 OR (
                 v.visibility IN ('public', 'friends') AND $5::text IS NULL
                 AND video_visible_to(v.owner_id, v.status, v.visibility, $1, FALSE)))
           ORDER BY
             CASE WHEN $7 = '-created_at' THEN v.created_at END DESC,
             CASE WHEN $7 = 'created_at' THEN v.created_at END ASC,
             CASE WHEN $7 = '-title' THEN lower(v.title) END DESC,
             CASE WHEN $7 = 'title' THEN lower(v.title) END ASC,
             CASE WHEN $7 = '-like_count' THEN v.like_count END DESC,
             CASE WHEN $7 = 'like_count' THEN v.like_count END ASC,
             CASE WHEN $7 = '-duration_seconds' THEN v.duration_seconds END DESC NULLS LAST,
             CASE WHEN $7 = 'duration_seconds' THEN v.duration_seconds END ASC NULLS LAST,
             v.id DESC
           LIMIT $8 OFFSET $9"#,
        viewer,
        f.owner,
        f.category,
        f.tag,
        visibility,
        f.search,
        f.order,
        limit,
        offset
    )
    .fetch_all(db)
    .await?;
    Ok((count, rows))
}
