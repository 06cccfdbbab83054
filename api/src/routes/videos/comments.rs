//! Threaded comments on videos, exactly at the seed's paths:
//! `GET/POST /api/videos/{id}/comments/`, `PUT/DELETE /api/videos/{id}/comments/{comment_id}/`,
//! plus `POST .../{comment_id}/like/`. One level of threading: a reply to a reply is
//! filed under the top-level comment. Comments on a video the caller cannot see are 404.

use crate::extract::Ids;
use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::State,
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::{AuthUser, MaybeAuthUser},
    error::{AppError, AppResult},
    extract::{Json, Query},
    page_cache::{self, Page},
    response::{ApiResponse, Envelope, PageParams, PageRequest, Paginated, request_url},
    routes::{
        social::UserSummary,
        videos::{VideoRow, visible_video},
    },
    state::AppState,
};

pub const MAX_LEN: usize = 2000;
/// Replies embedded under each top-level comment of a page.
pub const EMBEDDED_REPLIES: i64 = 3;

/// A comment. A deleted comment that has replies stays, with `is_deleted` true and no
/// content or author.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub video_id: Uuid,
    pub user: Option<UserSummary>,
    pub content: String,
    /// The top-level comment this replies to.
    pub parent: Option<Uuid>,
    pub is_edited: bool,
    pub is_deleted: bool,
    pub likes_count: i32,
    pub reply_count: i32,
    /// Whether the caller liked it.
    pub is_liked: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The oldest replies (up to 3) of a top-level comment; the rest via `?parent=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub replies: Option<Vec<Comment>>,
}

struct Row {
    id: Uuid,
    video_id: Uuid,
    user_id: Uuid,
    username: String,
    display_name: String,
    parent_id: Option<Uuid>,
    content: String,
    is_edited: bool,
    is_deleted: bool,
    likes_count: i32,
    reply_count: i32,
    is_liked: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_api(self) -> Comment {
        Comment {
            id: self.id,
            video_id: self.video_id,
            user: (!self.is_deleted).then_some(UserSummary {
                id: self.user_id,
                username: self.username,
                display_name: self.display_name,
            }),
            content: if self.is_deleted {
                String::new()
            } else {
                self.content
            },
            parent: self.parent_id,
            is_edited: self.is_edited,
            is_deleted: self.is_deleted,
            likes_count: self.likes_count,
            reply_count: self.reply_count,
            is_liked: self.is_liked,
            created_at: self.created_at,
            updated_at: self.updated_at,
            replies: None,
        }
    }
}

async fn load(conn: &mut PgConnection, video: Uuid, id: Uuid, me: Option<Uuid>) -> AppResult<Row> {
    sqlx::query_as!(
        Row,
        r#"SELECT c.id, c.video_id, c.user_id, u.username, u.display_name, c.parent_id, c.content,
                  c.is_edited, c.is_deleted, c.likes_count, c.reply_count,
                  EXISTS(SELECT 1 FROM comment_likes l WHERE l.comment_id = c.id AND l.user_id = $3) AS "is_liked!",
                  c.created_at, c.updated_at
           FROM video_comments c JOIN users u ON u.id = c.user_id
           WHERE c.id = $1 AND c.video_id = $2"#,
        id,
        video,
        me
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(AppError::not_found)
}

fn check_content(raw: &str) -> AppResult<String> {
    let content = raw.trim().to_owned();
    if content.is_empty() {
        return Err(AppError::field("content", "This field may not be blank."));
    }
    if content.chars().count() > MAX_LEN {
        return Err(AppError::field(
            "content",
            format!("Ensure this field has no more than {MAX_LEN} characters."),
        ));
    }
    Ok(content)
}

/// `@username` mentions in a comment (at most 10, without duplicates).
pub fn mentions(content: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in content.match_indices('@') {
        let before_ok = i == 0
            || !content[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !before_ok {
            continue;
        }
        let name: String = content[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let name = name.trim_end_matches('.').to_lowercase();
        if name.len() >= 3 && !out.contains(&name) {
            out.push(name);
        }
        if out.len() == 10 {
            break;
        }
    }
    out
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommentListParams {
    /// List the replies of this top-level comment instead (oldest first).
    pub parent: Option<Uuid>,
    /// `newest` (default), `oldest` or `top` (most liked).
    pub ordering: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

/// Top-level comments of a video, each with its reply count and first replies
/// (page-number pagination); or, with `?parent=`, the replies of one comment.
#[utoipa::path(get, path = "/videos/{id}/comments/", tag = "comments", params(("id" = Uuid, Path), CommentListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Comment>>)), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    Ids(id): Ids<Uuid>,
    uri: Uri,
    Query(q): Query<CommentListParams>,
) -> AppResult<Response> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let ordering = match (q.ordering.as_deref(), q.parent) {
        (None, None) | (Some("newest"), _) => "newest",
        (None, Some(_)) | (Some("oldest"), _) => "oldest",
        (Some("top"), _) => "top",
        _ => return Err(AppError::field("ordering", "One of newest, oldest, top.")),
    };
    let mut conn = state.db.acquire().await?;
    let v = visible_video(&mut conn, me.as_ref(), id).await?;
    // The version is read before the page: a write that lands meanwhile bumps it past
    // what the page is stored under (crate::page_cache).
    let version = page_cache::version(&state, v.id).await?;
    let key = format!("{}|{uri}", v.id);
    let cached = match state.comment_pages.get(&key, version) {
        Some(p) => p,
        None => {
            render(
                &state, &mut conn, &v, &q, page, ordering, &uri, version, key,
            )
            .await?
        }
    };
    let liked: Vec<Uuid> = match &me {
        Some(me) => {
            let ids: Vec<Uuid> = cached.ids().collect();
            sqlx::query_scalar!(
                "SELECT comment_id FROM comment_likes WHERE user_id = $1 AND comment_id = ANY($2)",
                me.id,
                &ids
            )
            .fetch_all(&mut *conn)
            .await?
        }
        None => Vec::new(),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        cached.render(&liked),
    )
        .into_response())
}

/// Renders a page from the database for nobody in particular (every `is_liked` false)
/// and caches it.
#[expect(clippy::too_many_arguments, reason = "the parts of one request")]
async fn render(
    state: &AppState,
    conn: &mut PgConnection,
    v: &VideoRow,
    q: &CommentListParams,
    page: PageRequest,
    ordering: &str,
    uri: &Uri,
    version: i64,
    key: String,
) -> AppResult<Arc<Page>> {
    let me_id: Option<Uuid> = None;
    // Separate statements per list and ordering, so each can walk its index.
    let (count, rows) = match (q.parent, ordering) {
        (Some(parent), _) => {
            let count = sqlx::query_scalar!(
                r#"SELECT count(*) AS "n!" FROM video_comments WHERE parent_id = $1 AND video_id = $2"#,
                parent,
                v.id
            )
            .fetch_one(&mut *conn)
            .await?;
            let rows = sqlx::query_as!(
                Row,
                r#"SELECT c.id, c.video_id, c.user_id, u.username, u.display_name, c.parent_id, c.content,
                          c.is_edited, c.is_deleted, c.likes_count, c.reply_count,
                          EXISTS(SELECT 1 FROM comment_likes l WHERE l.comment_id = c.id AND l.user_id = $3) AS "is_liked!",
                          c.created_at, c.updated_at
                   FROM video_comments c JOIN users u ON u.id = c.user_id
                   WHERE c.parent_id = $1 AND c.video_id = $2
                   ORDER BY c.created_at, c.id LIMIT $4 OFFSET $5"#,
                parent,
                v.id,
                me_id,
                page.limit(),
                page.offset()
            )
            .fetch_all(&mut *conn)
            .await?;
            (count, rows)
        }
        (None, ordering) => {
            // The page and the first replies of each of its comments in one statement,
            // one statement per ordering: a fixed ORDER BY keeps PostgreSQL's cached
            // generic plan usable, where an ordering chosen by a parameter is re-planned
            // on every call. The count is kept on the video.
            macro_rules! page_with_replies {
                ($order:literal) => {
                    sqlx::query_as!(
                        Row,
                        "WITH page AS (
                             SELECT c.id FROM video_comments c
                             WHERE c.video_id = $1 AND c.parent_id IS NULL
                             ORDER BY "
                            + $order
                            + " LIMIT $3 OFFSET $4
                         ), picked AS (
                             SELECT id FROM page
                             UNION ALL
                             SELECT r.id FROM page p CROSS JOIN LATERAL (
                                 SELECT id FROM video_comments r WHERE r.parent_id = p.id
                                 ORDER BY r.created_at, r.id LIMIT $5
                             ) r
                         )
                         SELECT c.id, c.video_id, c.user_id, u.username, u.display_name, c.parent_id,
                                c.content, c.is_edited, c.is_deleted, c.likes_count, c.reply_count,
                                EXISTS(SELECT 1 FROM comment_likes l
                                       WHERE l.comment_id = c.id AND l.user_id = $2) AS \"is_liked!\",
                                c.created_at, c.updated_at
                         FROM picked JOIN video_comments c ON c.id = picked.id
                         JOIN users u ON u.id = c.user_id",
                        v.id,
                        me_id,
                        page.limit(),
                        page.offset(),
                        EMBEDDED_REPLIES
                    )
                    .fetch_all(&mut *conn)
                    .await?
                };
            }
            let rows = match ordering {
                "top" => page_with_replies!("c.likes_count DESC, c.created_at DESC, c.id"),
                "oldest" => page_with_replies!("c.created_at, c.id"),
                _ => page_with_replies!("c.created_at DESC, c.id"),
            };
            (i64::from(v.top_comment_count), rows)
        }
    };
    let mut results: Vec<Comment> = Vec::new();
    let mut replies: HashMap<Uuid, Vec<Comment>> = HashMap::new();
    for r in rows {
        let c = r.into_api();
        match (q.parent, c.parent) {
            (None, Some(p)) => replies.entry(p).or_default().push(c),
            _ => results.push(c),
        }
    }
    if q.parent.is_none() {
        // Row order is not kept across the statement's union: order here.
        match ordering {
            "top" => results.sort_by(|a, b| {
                b.likes_count
                    .cmp(&a.likes_count)
                    .then(b.created_at.cmp(&a.created_at))
                    .then(a.id.cmp(&b.id))
            }),
            "oldest" => {
                results.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)))
            }
            _ => results.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id))),
        }
        for c in &mut results {
            let mut rs = replies.remove(&c.id).unwrap_or_default();
            rs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            c.replies = Some(rs);
        }
    }
    // Document order: each comment, then its embedded replies.
    let ids: Vec<Uuid> = results
        .iter()
        .flat_map(|c| std::iter::once(c.id).chain(c.replies.iter().flatten().map(|r| r.id)))
        .collect();
    let body = serde_json::to_vec(&Envelope {
        success: true,
        message: None,
        data: Paginated::new(results, count, page, &request_url(state, uri)),
    })
    .map_err(anyhow::Error::from)?;
    let rendered = Page::new(version, body, &ids)
        .ok_or_else(|| anyhow::anyhow!("comment page: is_liked slots do not match the comments"))?;
    Ok(state.comment_pages.put(key, rendered))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewComment {
    /// 1–2000 characters.
    pub content: String,
    /// The comment this replies to.
    pub parent: Option<Uuid>,
}

/// Comments on a video, or replies to a comment. Mentions (`@username`) and replies
/// notify their targets (domain events through the outbox).
#[utoipa::path(post, path = "/videos/{id}/comments/", tag = "comments", security(("bearer" = [])), request_body = NewComment,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = inline(Envelope<Comment>)), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(body): Json<NewComment>,
) -> AppResult<ApiResponse<Comment>> {
    let content = check_content(&body.content)?;
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    if wp_core::social::blocked_between(&mut tx, me.id, v.owner_id).await? {
        return Err(AppError::forbidden(
            "blocked",
            "You cannot comment on this video.",
        ));
    }
    // A reply to a reply goes under the top-level comment.
    let parent = match body.parent {
        None => None,
        Some(pid) => {
            let p = sqlx::query!(
                "SELECT id, parent_id, user_id, is_deleted FROM video_comments WHERE id = $1 AND video_id = $2 FOR UPDATE",
                pid,
                v.id
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| AppError::field("parent", "No such comment on this video."))?;
            if p.is_deleted {
                return Err(AppError::field("parent", "That comment was deleted."));
            }
            let top = match p.parent_id {
                Some(top) => top,
                None => p.id,
            };
            Some((top, p.user_id))
        }
    };
    let cid = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO video_comments (id, video_id, user_id, parent_id, content) VALUES ($1, $2, $3, $4, $5)",
        cid,
        v.id,
        me.id,
        parent.map(|p| p.0),
        content
    )
    .execute(&mut *tx)
    .await?;
    if let Some((top, _)) = parent {
        sqlx::query!(
            "UPDATE video_comments SET reply_count = reply_count + 1 WHERE id = $1",
            top
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE videos SET comment_count = comment_count + 1,
                top_comment_count = top_comment_count + $2 WHERE id = $1",
        v.id,
        if parent.is_none() { 1 } else { 0 }
    )
    .execute(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    let payload = serde_json::json!({ "video_id": v.id, "comment_id": cid });
    if let Some((_, author)) = parent
        && author != me.id
    {
        outbox.push(
            wp_core::events::emit(
                &mut tx,
                "comment.reply",
                Some(me.id),
                Some(author),
                payload.clone(),
            )
            .await?,
        );
    }
    let names = mentions(&content);
    if !names.is_empty() {
        let mentioned = sqlx::query_scalar!(
            "SELECT id FROM users WHERE lower(username) = ANY($1) AND status = 'active' AND id <> $2",
            &names,
            me.id
        )
        .fetch_all(&mut *tx)
        .await?;
        for uid in mentioned {
            if parent.is_some_and(|(_, a)| a == uid) {
                continue; // already told of the reply
            }
            outbox.push(
                wp_core::events::emit(
                    &mut tx,
                    "comment.mention",
                    Some(me.id),
                    Some(uid),
                    payload.clone(),
                )
                .await?,
            );
        }
    }
    let row = load(&mut tx, v.id, cid, Some(me.id)).await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    state.relay(&outbox).await;
    let mut c = row.into_api();
    if c.parent.is_none() {
        c.replies = Some(Vec::new());
    }
    Ok(ApiResponse::created(c))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditComment {
    pub content: String,
}

/// Edits a comment (its author only); marks it edited.
#[utoipa::path(put, path = "/videos/{id}/comments/{comment_id}/", tag = "comments", security(("bearer" = [])), request_body = EditComment,
    params(("id" = Uuid, Path), ("comment_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Comment>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn edit(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, comment_id)): Ids<(Uuid, Uuid)>,
    Json(body): Json<EditComment>,
) -> AppResult<ApiResponse<Comment>> {
    let content = check_content(&body.content)?;
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    let c = load(&mut tx, v.id, comment_id, Some(me.id)).await?;
    if c.is_deleted {
        return Err(AppError::not_found());
    }
    if c.user_id != me.id {
        return Err(AppError::forbidden(
            "permission_denied",
            "Only the author can edit a comment.",
        ));
    }
    sqlx::query!(
        "UPDATE video_comments SET content = $2, is_edited = (is_edited OR content <> $2) WHERE id = $1",
        c.id,
        content
    )
    .execute(&mut *tx)
    .await?;
    let row = load(&mut tx, v.id, c.id, Some(me.id)).await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    Ok(ApiResponse::ok(row.into_api()))
}

/// Deletes a comment (its author, the video's owner, or a moderator). A comment with
/// replies stays as a deleted placeholder so the thread keeps its shape.
#[utoipa::path(delete, path = "/videos/{id}/comments/{comment_id}/", tag = "comments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("comment_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, comment_id)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    let c = load(&mut tx, v.id, comment_id, Some(me.id)).await?;
    if c.is_deleted {
        return Err(AppError::not_found());
    }
    if c.user_id != me.id && v.owner_id != me.id && !me.is_staff() {
        return Err(AppError::forbidden(
            "permission_denied",
            "You cannot delete this comment.",
        ));
    }
    let mut top_removed = 0;
    if c.reply_count > 0 {
        sqlx::query!(
            "UPDATE video_comments SET is_deleted = true, content = '' WHERE id = $1",
            c.id
        )
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query!("DELETE FROM video_comments WHERE id = $1", c.id)
            .execute(&mut *tx)
            .await?;
        match c.parent_id {
            None => top_removed = 1,
            Some(p) => {
                // A deleted placeholder whose last reply goes, goes too.
                let parent = sqlx::query!(
                    "UPDATE video_comments SET reply_count = reply_count - 1 WHERE id = $1
                     RETURNING reply_count, is_deleted",
                    p
                )
                .fetch_one(&mut *tx)
                .await?;
                if parent.is_deleted && parent.reply_count == 0 {
                    sqlx::query!("DELETE FROM video_comments WHERE id = $1", p)
                        .execute(&mut *tx)
                        .await?;
                    top_removed = 1;
                }
            }
        }
    }
    sqlx::query!(
        "UPDATE videos SET comment_count = GREATEST(comment_count - 1, 0),
                top_comment_count = GREATEST(top_comment_count - $2, 0) WHERE id = $1",
        v.id,
        top_removed
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `data` of a comment like.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentLike {
    pub is_liked: bool,
    pub likes_count: i32,
}

/// Likes a comment, or withdraws the like (toggle).
#[utoipa::path(post, path = "/videos/{id}/comments/{comment_id}/like/", tag = "comments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("comment_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<CommentLike>)), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn like(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, comment_id)): Ids<(Uuid, Uuid)>,
) -> AppResult<ApiResponse<CommentLike>> {
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    let c = load(&mut tx, v.id, comment_id, Some(me.id)).await?;
    if c.is_deleted {
        return Err(AppError::not_found());
    }
    let inserted = sqlx::query!(
        "INSERT INTO comment_likes (comment_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        c.id,
        me.id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let (liked, delta) = if inserted == 1 {
        (true, 1)
    } else {
        sqlx::query!(
            "DELETE FROM comment_likes WHERE comment_id = $1 AND user_id = $2",
            c.id,
            me.id
        )
        .execute(&mut *tx)
        .await?;
        (false, -1)
    };
    let likes_count = sqlx::query_scalar!(
        "UPDATE video_comments SET likes_count = likes_count + $2 WHERE id = $1 RETURNING likes_count",
        c.id,
        delta
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    Ok(ApiResponse::ok(CommentLike {
        is_liked: liked,
        likes_count,
    }))
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_are_found_once_each() {
        assert_eq!(
            mentions("hi @Alice and @bob_2, also @alice."),
            vec!["alice", "bob_2"]
        );
        assert!(mentions("mail me at x@example.com").is_empty());
        assert!(mentions("@ab too short").is_empty());
    }
}
