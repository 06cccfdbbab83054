//! Threaded comments on videos, exactly at the seed's paths:
//! `GET/POST /api/videos/{id}/comments/`, `PUT/DELETE /api/videos/{id}/comments/{comment_id}/`,
//! plus `POST .../{comment_id}/like/`. One level of threading: a reply to a reply is
//! filed under the top-level comment. Comments on a video the caller cannot see are 404.

use crate::extract::Ids;
use std::sync::Arc;

use axum::{
    extract::{OriginalUri, State},
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wp_core::comment::{self, Comment, CommentOrder, CommentText};
use wp_core::video::VideoRow;

use crate::{
    auth::{AuthUser, MaybeAuthUser},
    error::{AppError, AppResult},
    extract::{Json, Query},
    page_cache::{self, Page},
    response::{ApiResponse, Envelope, PageParams, PageRequest, Paginated, request_url},
    routes::videos::visible_video,
    state::AppState,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommentListParams {
    /// List the replies of this top-level comment instead (oldest first).
    pub parent: Option<Uuid>,
    /// `-created_at` (default), `created_at` or `-likes_count` (most liked first); the
    /// words `newest`, `oldest`, `top` say the same.
    #[param(pattern = "^(-created_at|created_at|-likes_count|newest|oldest|top)$")]
    pub ordering: Option<String>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
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
    OriginalUri(uri): OriginalUri,
    Query(q): Query<CommentListParams>,
) -> AppResult<Response> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let ordering = match (q.ordering.as_deref(), q.parent) {
        (None, None) => CommentOrder::Newest,
        (None, Some(_)) => CommentOrder::Oldest,
        (Some(o), _) => CommentOrder::from_param(o).ok_or_else(|| {
            AppError::field(
                "ordering",
                "One of -created_at, created_at, -likes_count (or newest, oldest, top).",
            )
        })?,
    };
    let mut conn = state.db.acquire().await?;
    let v = visible_video(&mut conn, me.as_ref(), id).await?;
    // The version is read before the page: a write that lands meanwhile bumps it past
    // what the page is stored under (crate::page_cache).
    let version = page_cache::version(&state, v.id).await?;
    // The page is keyed, and its links written, by what selects it (the path and the
    // parameters read, in one order): junk parameters cannot fill the cache.
    let uri = canonical(&uri, &q);
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
            comment::liked_among(&mut conn, me.id, &ids).await?
        }
        None => Vec::new(),
    };
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        cached.render(&liked),
    )
        .into_response())
}

/// The request as the page depends on it: its path and the list's parameters, in a fixed
/// order (the path keeps `/api/` or `/api/v1/`, which the page's links repeat).
fn canonical(uri: &Uri, q: &CommentListParams) -> Uri {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(p) = q.parent {
        query.append_pair("parent", &p.to_string());
    }
    if let Some(o) = &q.ordering {
        query.append_pair("ordering", o);
    }
    if let Some(n) = q.page_size {
        query.append_pair("page_size", &n.to_string());
    }
    if let Some(n) = q.page {
        query.append_pair("page", &n.to_string());
    }
    let query = query.finish();
    let text = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    text.parse().unwrap_or_else(|_| uri.clone())
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
    ordering: CommentOrder,
    uri: &Uri,
    version: i64,
    key: String,
) -> AppResult<Arc<Page>> {
    // Separate statements per list and ordering, so each can walk its index.
    let (count, results) = match q.parent {
        Some(parent) => comment::replies(conn, v.id, parent, page.limit(), page.offset()).await?,
        None => comment::top_level(conn, v, ordering, page.limit(), page.offset()).await?,
    };
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
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub content: String,
    /// The comment this replies to.
    pub parent: Option<Uuid>,
}

/// Comments on a video, or replies to a comment. Mentions (`@username`) and replies
/// notify their targets (domain events through the outbox).
#[utoipa::path(post, path = "/videos/{id}/comments/", tag = "comments", security(("bearer" = [])), request_body = NewComment,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = inline(Envelope<Comment>)), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 429, description = "More than `COMMENTS_PER_MINUTE` comments this minute", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(body): Json<NewComment>,
) -> AppResult<ApiResponse<Comment>> {
    let content = CommentText::parse(&body.content)?;
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    crate::ratelimit::hit(
        &state,
        &crate::ratelimit::comments_per_user(&state.config),
        &me.id.to_string(),
    )
    .await?;
    let created = comment::create(&mut tx, &v, me.id, &content, body.parent).await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    state.relay(&created.outbox).await;
    crate::analytics::record(
        &state,
        wp_shared::jobs::AnalyticsEvent::new(
            "video.comment",
            Some(me.id),
            Some(v.id),
            serde_json::json!({ "reply": body.parent.is_some() }),
        ),
    )
    .await;
    Ok(ApiResponse::created(created.comment))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditComment {
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
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
    let content = CommentText::parse(&body.content)?;
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    let c = comment::edit(&mut tx, &v, me.id, comment_id, &content).await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    Ok(ApiResponse::ok(c))
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
    comment::delete(&mut tx, &v, &me, comment_id).await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to a comment like, as a video like answers (`POST /videos/{id}/like/`):
/// the keys at the top level.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommentLike {
    pub success: bool,
    /// Whether the caller now likes the comment.
    pub is_liked: bool,
    pub like_count: i32,
}

/// Likes a comment, or withdraws the like (toggle).
#[utoipa::path(post, path = "/videos/{id}/comments/{comment_id}/like/", tag = "comments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("comment_id" = Uuid, Path)),
    responses((status = 200, body = CommentLike), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn like(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, comment_id)): Ids<(Uuid, Uuid)>,
) -> AppResult<axum::Json<CommentLike>> {
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    let (liked, likes_count) = comment::toggle_like(&mut tx, &v, me.id, comment_id).await?;
    tx.commit().await?;
    page_cache::invalidate(&state, v.id).await;
    Ok(axum::Json(CommentLike {
        success: true,
        is_liked: liked,
        like_count: likes_count,
    }))
}
