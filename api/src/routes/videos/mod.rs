//! The video library: upload (multipart, streamed to storage), list, detail, update,
//! delete. Who may see a video: its owner and staff always; others when it is ready and
//! public or unlisted (unlisted ones are not listed), or friends-only and they are the
//! owner's friends; never someone the owner blocked. Anything else is 404.

pub mod comments;
pub mod downloads;
pub mod likes;
pub mod progress;
mod uploads;

pub use uploads::*;

use crate::extract::Ids;
use axum::extract::DefaultBodyLimit;
use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::video::{VideoRow, VideoStatus, VideoVisibility};

use crate::{
    auth::{AuthUser, MaybeAuthUser},
    error::{AppError, AppResult, FieldErrors},
    extract::{Json, Query},
    response::{ApiResponse, Envelope, PageParams, Paginated, parse_ordering, request_url},
    routes::social::UserSummary,
    state::AppState,
};

/// A video as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Video {
    pub id: Uuid,
    pub owner: UserSummary,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub category: String,
    pub visibility: VideoVisibility,
    pub allow_download: bool,
    pub status: VideoStatus,
    pub failure_reason: Option<String>,
    pub original_filename: String,
    /// `mp4`, `webm`, `matroska`, `quicktime`, ... (from the file's bytes).
    pub container: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub duration_seconds: Option<f64>,
    pub thumbnail_url: Option<String>,
    pub like_count: i32,
    pub dislike_count: i32,
    pub comment_count: i32,
    /// The caller's vote: true (like), false (dislike) or null.
    pub my_vote: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How long a signed thumbnail link stays the same URL (it works for up to twice that).
const THUMBNAIL_LINK_SECS: i64 = 3600;

/// The URL of video `id`'s thumbnail that works in an `<img>`: plain when the video is
/// `open` (public or unlisted), signed for `viewer` otherwise.
pub(crate) fn thumbnail_url(
    state: &AppState,
    id: Uuid,
    open: bool,
    viewer: Option<&AuthUser>,
) -> Option<String> {
    let base = format!("{}/api/videos/{id}/thumbnail/", state.config.public_url);
    if open {
        return Some(base);
    }
    let me = viewer?;
    let token = crate::auth::tokens::issue_scoped_stable(
        &state.config,
        me.id,
        me.session_id,
        "thumbnail",
        id,
        THUMBNAIL_LINK_SECS,
    )
    .ok()?;
    Some(format!("{base}?token={token}"))
}

impl Video {
    /// The video as `viewer` sees it. The thumbnail's URL works in an `<img>`: plain for a
    /// public or unlisted video, signed for the viewer otherwise (as downloads are).
    fn new(v: VideoRow, state: &AppState, viewer: Option<&AuthUser>) -> Self {
        let open = matches!(
            v.visibility,
            VideoVisibility::Public | VideoVisibility::Unlisted
        );
        let thumbnail_url = v
            .thumbnail_key
            .as_ref()
            .and_then(|_| thumbnail_url(state, v.id, open, viewer));
        Self {
            thumbnail_url,
            id: v.id,
            owner: UserSummary::new(
                v.owner_id,
                v.owner_username,
                v.owner_display_name,
                v.owner_avatar_path.as_deref(),
            ),
            title: v.title,
            description: v.description,
            tags: v.tags,
            category: v.category,
            visibility: v.visibility,
            allow_download: v.allow_download,
            status: v.status,
            failure_reason: v.failure_reason,
            original_filename: v.original_filename,
            container: v.container,
            content_type: v.content_type,
            size_bytes: v.size_bytes,
            sha256: v.sha256,
            duration_seconds: v.duration_seconds,
            like_count: v.like_count,
            dislike_count: v.dislike_count,
            comment_count: v.comment_count,
            my_vote: v.my_vote,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

/// Loads a video the caller may see, or 404.
pub(crate) async fn visible_video(
    conn: &mut PgConnection,
    viewer: Option<&AuthUser>,
    id: Uuid,
) -> AppResult<VideoRow> {
    wp_core::video::visible(conn, viewer.map(|v| &v.0), id)
        .await?
        .ok_or_else(AppError::not_found)
}

/// Metadata fields of an upload or an update.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoFields {
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub category: Option<String>,
    pub visibility: Option<String>,
    pub allow_download: Option<bool>,
}

fn check_fields(f: &mut VideoFields, creating: bool) -> Result<(), AppError> {
    let mut e = FieldErrors::new();
    let mut add = |k: &str, m: &str| e.entry(k.to_owned()).or_default().push(m.to_owned());
    if let Some(t) = &mut f.title {
        *t = t.trim().to_owned();
        if t.is_empty() || t.chars().count() > 200 {
            add("title", "Give a title of 1 to 200 characters.");
        }
    } else if creating {
        add("title", "This field is required.");
    }
    if f.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 5000)
    {
        add(
            "description",
            "Ensure this field has no more than 5000 characters.",
        );
    }
    if let Some(tags) = &mut f.tags {
        let mut clean: Vec<String> = tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        clean.sort();
        clean.dedup();
        if clean.len() > 20 || clean.iter().any(|t| t.chars().count() > 40) {
            add("tags", "At most 20 tags of at most 40 characters each.");
        }
        *tags = clean;
    }
    if let Some(c) = &mut f.category {
        *c = c.trim().to_lowercase();
        if c.chars().count() > 50 {
            add(
                "category",
                "Ensure this field has no more than 50 characters.",
            );
        }
    }
    if f.visibility
        .as_deref()
        .is_some_and(|v| v.parse::<VideoVisibility>().is_err())
    {
        add("visibility", "One of public, unlisted, friends, private.");
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(e))
    }
}

/// A video the caller may see.
#[utoipa::path(get, path = "/videos/{id}/", tag = "videos", params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Video>)), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn detail(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Video>> {
    let mut conn = state.db.acquire().await?;
    let row = visible_video(&mut conn, me.as_ref(), id).await?;
    Ok(ApiResponse::ok(Video::new(row, &state, me.as_ref())))
}

/// Changes a video's metadata (owner or staff).
#[utoipa::path(patch, path = "/videos/{id}/", tag = "videos", security(("bearer" = [])), request_body = VideoFields,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Video>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(mut body): Json<VideoFields>,
) -> AppResult<ApiResponse<Video>> {
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    me.owner_or_staff(v.owner_id)?;
    check_fields(&mut body, false)?;
    sqlx::query!(
        "UPDATE videos SET title = COALESCE($2, title), description = COALESCE($3, description),
                tags = COALESCE($4, tags), category = COALESCE($5, category),
                visibility = COALESCE($6, visibility), allow_download = COALESCE($7, allow_download)
         WHERE id = $1",
        v.id,
        body.title,
        body.description,
        body.tags.as_deref(),
        body.category,
        body.visibility,
        body.allow_download,
    )
    .execute(&mut *tx)
    .await?;
    let row = visible_video(&mut tx, Some(&me), v.id).await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(Video::new(row, &state, Some(&me))))
}

/// Deletes a video and its file (owner or staff).
#[utoipa::path(delete, path = "/videos/{id}/", tag = "videos", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let v = visible_video(&mut tx, Some(&me), id).await?;
    me.owner_or_staff(v.owner_id)?;
    sqlx::query!("DELETE FROM videos WHERE id = $1", v.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    for key in std::iter::once(v.storage_key).chain(v.thumbnail_key) {
        if let Err(e) = state.storage.delete(&key).await {
            tracing::warn!(key, error = %e, "could not remove a deleted video's file");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ViewStart {
    /// Where playback started, in seconds.
    #[schema(minimum = 0.0)]
    pub position: Option<f64>,
    /// The party it is watched in, if any (one the caller belongs to).
    pub party_id: Option<Uuid>,
    /// Where the view came from (analytics' traffic sources).
    pub source: Option<wp_core::analytics::ingest::TrafficSource>,
    /// The client (analytics' platforms).
    pub platform: Option<wp_core::analytics::ingest::ClientPlatform>,
}

/// `data` of a recorded view.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    pub recorded: bool,
}

/// Records that the caller started watching (an analytics event, written to
/// ClickHouse by the analytics worker).
#[utoipa::path(post, path = "/videos/{id}/view/", tag = "videos", security(("bearer" = [])), request_body = ViewStart,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Recorded>)), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn view(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(body): Json<ViewStart>,
) -> AppResult<ApiResponse<Recorded>> {
    if body.position.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(AppError::field(
            "position",
            "A number of seconds, 0 or more.",
        ));
    }
    let mut conn = state.db.acquire().await?;
    let v = visible_video(&mut conn, Some(&me), id).await?;
    drop(conn);
    use wp_core::analytics::ingest;
    if let Some(p) = body.party_id
        && ingest::parties_of(&state.db, me.id, &[p]).await?.is_empty()
    {
        return Err(AppError::field("party_id", "Not a party of yours."));
    }
    let country = ingest::country_of(&state.db, me.id).await?;
    let mut ev = wp_shared::jobs::AnalyticsEvent::new(
        "video.view_start",
        Some(me.id),
        Some(v.id),
        serde_json::Value::Object(ingest::view_properties(
            body.position.unwrap_or(0.0),
            body.source,
            body.platform,
            country.as_deref(),
        )),
    );
    ev.party_id = body.party_id;
    // Recorded durably (the outbox, in PostgreSQL) before it is acknowledged: a view
    // counts for the owner's analytics, and Redis may lose what it queues.
    let key = wp_shared::jobs::AnalyticsEvent::outbox_key(ev.event_id);
    let mut tx = state.db.begin().await?;
    let row = wp_shared::outbox::record_keyed(&mut tx, &ev, &key).await?;
    tx.commit().await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &[row]).await;
    Ok(ApiResponse::ok(Recorded { recorded: true }))
}

/// Filters and ordering of the video list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this owner's videos.
    pub owner: Option<Uuid>,
    pub category: Option<String>,
    pub tag: Option<String>,
    /// Only for your own videos (`?owner=` your id, or `?mine=true`).
    #[param(pattern = "^(public|unlisted|friends|private)$")]
    pub visibility: Option<String>,
    /// Only the caller's videos (any status).
    pub mine: Option<bool>,
    /// Words of the title or description.
    pub search: Option<String>,
    /// `created_at`, `title`, `like_count`, `duration_seconds`; `-` for descending
    /// (default `-created_at`).
    #[param(pattern = "^-?(created_at|title|like_count|duration_seconds)$")]
    pub ordering: Option<String>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Videos the caller may see, filtered and ordered (page-number pagination). Others'
/// unlisted videos are not listed.
#[utoipa::path(get, path = "/videos/", tag = "videos", params(ListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Video>>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<ListParams>,
) -> AppResult<ApiResponse<Paginated<Video>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let (field, desc) = parse_ordering(
        q.ordering.as_deref(),
        &["created_at", "title", "like_count", "duration_seconds"],
        ("created_at", true),
    )?;
    let order = format!("{}{field}", if desc { "-" } else { "" });
    let visibility = q
        .visibility
        .as_deref()
        .map(str::parse::<VideoVisibility>)
        .transpose()
        .map_err(|_| AppError::field("visibility", "One of public, unlisted, friends, private."))?;
    let me_id = me.as_ref().map(|m| m.id);
    if q.mine == Some(true) && me_id.is_none() {
        return Err(AppError::unauthenticated(
            "not_authenticated",
            "Sign in to list your videos.",
        ));
    }
    let owner = if q.mine == Some(true) { me_id } else { q.owner };
    let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let tag = q.tag.as_deref().map(|t| t.trim().to_lowercase());
    let category = q.category.as_deref().map(|c| c.trim().to_lowercase());
    let filter = wp_core::video::ListFilter {
        owner,
        category: category.as_deref(),
        tag: tag.as_deref(),
        visibility,
        search,
        order: &order,
    };
    let (count, rows) =
        wp_core::video::list(&state.db, me_id, &filter, page.limit(), page.offset()).await?;
    let results = rows
        .into_iter()
        .map(|r| Video::new(r, &state, me.as_ref()))
        .collect();
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload))
                // Uploads are streamed to storage and limited by VIDEO_MAX_BYTES there.
                .layer(DefaultBodyLimit::disable()),
        )
        .routes(routes!(detail, update, delete))
        .routes(routes!(likes::like))
        .routes(routes!(view))
        .routes(routes!(progress::save_progress, progress::forget_progress))
        .routes(routes!(comments::list, comments::create))
        .routes(routes!(comments::edit, comments::delete))
        .routes(routes!(comments::like))
        .routes(routes!(downloads::download))
        .routes(routes!(downloads::token))
        .routes(routes!(downloads::thumbnail))
}
