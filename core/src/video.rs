//! Videos as other aggregates see them: their states, their visibility, and the one
//! rule for who may open one (`video_visible_to` in SQL, migration 14), which the
//! library's detail and list and the party sockets all use.

use sqlx::PgExecutor;
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
