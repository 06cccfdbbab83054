//! The video library: upload (multipart, streamed to storage), list, detail, update,
//! delete. Who may see a video: its owner and staff always; others when it is ready and
//! public or unlisted (unlisted ones are not listed), or friends-only and they are the
//! owner's friends; never someone the owner blocked. Anything else is 404.

pub mod comments;
pub mod downloads;
pub mod likes;
pub mod progress;

use crate::extract::Ids;
use axum::extract::DefaultBodyLimit;
use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::video::{VideoRow, VideoStatus, VideoVisibility};
use wp_shared::jobs::PrepareMedia;

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

/// What the bytes say a file is: (container, media type, file extension).
pub type VideoKind = (&'static str, &'static str, &'static str);

/// A received upload: safe name, size, SHA-256, kind, where it is stored.
struct Received {
    filename: String,
    size: u64,
    sha256: String,
    kind: VideoKind,
    key: String,
}

fn not_video() -> AppError {
    AppError::field(
        "file",
        "Not a video file this service accepts (MP4, MOV, WebM, MKV, AVI, MPEG-TS).",
    )
}

/// Streams the `file` field to storage: the first bytes decide the type (and so the
/// key) before anything is stored; the size limit and the SHA-256 apply as it flows.
/// On any error nothing is left in storage.
/// Awaits the next piece of an upload for at most `UPLOAD_IDLE_SECS`: a client that
/// stops sending is cut off (408 `upload_stalled`) and what it sent is removed.
async fn idle_bound<T>(state: &AppState, next: impl Future<Output = T>) -> AppResult<T> {
    tokio::time::timeout(state.config.upload_idle_timeout, next)
        .await
        .map_err(|_| AppError::Status {
            status: axum::http::StatusCode::REQUEST_TIMEOUT,
            code: "upload_stalled",
            message: format!(
                "Nothing arrived for {} seconds; the upload was abandoned.",
                state.config.upload_idle_timeout.as_secs()
            ),
        })
}

/// Longest text field of the upload form, and all of its text fields together (bytes).
const FIELD_MAX_BYTES: usize = 16 * 1024;
const FORM_TEXT_MAX_BYTES: usize = 64 * 1024;

/// Reads a text field of the upload form in pieces, refusing it once it passes
/// [`FIELD_MAX_BYTES`] or the form's text passes what is `left` of
/// [`FORM_TEXT_MAX_BYTES`] (413 naming the field): a 4 GB `description` costs 16 KiB.
async fn bounded_text(
    state: &AppState,
    mut field: axum::extract::multipart::Field<'_>,
    left: &mut usize,
) -> AppResult<String> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut buf = Vec::new();
    while let Some(chunk) = idle_bound(state, field.chunk())
        .await?
        .map_err(crate::extract::multipart_error)?
    {
        if buf.len() + chunk.len() > FIELD_MAX_BYTES || chunk.len() > *left {
            return Err(AppError::Status {
                status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                code: "field_too_large",
                message: format!(
                    "`{name}` is too long: a text field holds at most {FIELD_MAX_BYTES} bytes, the form's text {FORM_TEXT_MAX_BYTES}."
                ),
            });
        }
        *left -= chunk.len();
        buf.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(buf).map_err(|_| AppError::field(&name, "Must be UTF-8 text."))?;
    if text.contains('\0') {
        return Err(AppError::field(&name, wp_shared::text::NUL_MESSAGE));
    }
    Ok(text)
}

/// Bytes `user` may still store (`USER_STORAGE_QUOTA_BYTES` minus their videos).
async fn quota_left(state: &AppState, user: Uuid) -> AppResult<u64> {
    let used: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(size_bytes), 0)::bigint FROM videos WHERE owner_id = $1",
    )
    .bind(user)
    .fetch_one(&state.db)
    .await?;
    Ok(state
        .config
        .user_storage_quota
        .saturating_sub(u64::try_from(used).unwrap_or(0)))
}

fn quota_exceeded(quota: u64) -> AppError {
    AppError::Status {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "quota_exceeded",
        message: format!(
            "file: your videos may take {} MB in all; delete some to upload this one.",
            quota / (1024 * 1024)
        ),
    }
}

async fn receive_file(
    state: &AppState,
    id: Uuid,
    quota_left: u64,
    mut field: axum::extract::multipart::Field<'_>,
) -> AppResult<Received> {
    let filename = safe_filename(field.file_name().unwrap_or("video"));
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    let mut open: Option<(wp_shared::storage::Writer, VideoKind, String)> = None;
    let internal = |e: std::io::Error| AppError::Internal(e.into());
    let result: AppResult<()> = async {
        loop {
            let chunk = idle_bound(state, field.chunk())
                .await?
                .map_err(crate::extract::multipart_error)?;
            if let Some(c) = &chunk {
                size += c.len() as u64;
                if size > state.config.video_max_bytes {
                    return Err(AppError::PayloadTooLarge);
                }
                if size > quota_left {
                    return Err(quota_exceeded(state.config.user_storage_quota));
                }
                hasher.update(c);
            }
            let end = chunk.is_none();
            match (&mut open, chunk) {
                (Some((w, _, _)), Some(c)) => w.write(c).await.map_err(internal)?,
                (Some(_), None) => return Ok(()),
                (None, c) => {
                    if let Some(c) = c {
                        head.extend_from_slice(&c);
                    }
                    if head.len() >= 512 || end {
                        if head.is_empty() {
                            return Err(AppError::field("file", "The submitted file is empty."));
                        }
                        let kind = sniff_video(&head).ok_or_else(not_video)?;
                        let key = format!("videos/{id}.{}", kind.2);
                        let mut w = state.storage.writer(&key).await.map_err(internal)?;
                        w.write(axum::body::Bytes::from(std::mem::take(&mut head)))
                            .await
                            .map_err(internal)?;
                        open = Some((w, kind, key));
                        if end {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
    .await;
    match (result, open) {
        (Ok(()), Some((w, kind, key))) => {
            w.finish().await.map_err(internal)?;
            Ok(Received {
                filename,
                size,
                sha256: hex::encode(hasher.finalize()),
                kind,
                key,
            })
        }
        (Ok(()), None) => Err(not_video()),
        (Err(e), open) => {
            if let Some((w, _, _)) = open {
                w.abort().await;
            }
            Err(e)
        }
    }
}

/// Container and media type from a file's first bytes.
pub fn sniff_video(head: &[u8]) -> Option<VideoKind> {
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        let brand = &head[8..12];
        if brand == b"qt  " {
            return Some(("quicktime", "video/quicktime", "mov"));
        }
        return Some(("mp4", "video/mp4", "mp4"));
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // EBML: WebM or Matroska; the DocType says which.
        let is_webm = head.windows(4).any(|w| w == b"webm");
        return Some(if is_webm {
            ("webm", "video/webm", "webm")
        } else {
            ("matroska", "video/x-matroska", "mkv")
        });
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"AVI " {
        return Some(("avi", "video/x-msvideo", "avi"));
    }
    if head.first() == Some(&0x47) && head.get(188) == Some(&0x47) {
        return Some(("mpegts", "video/mp2t", "ts"));
    }
    None
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

/// A file name safe to show and to put in a header: no path, no control characters.
pub fn safe_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\\' | '/' | ';'))
        .take(150)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "video".to_owned()
    } else {
        cleaned
    }
}

/// The video upload's form (text fields, then the file).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the multipart form for the OpenAPI document.
pub struct VideoUploadForm {
    /// 1–200 characters.
    pub title: String,
    pub description: Option<String>,
    /// Comma-separated (`cats, funny`).
    pub tags: Option<String>,
    pub category: Option<String>,
    /// `public` (default), `unlisted`, `friends` or `private`.
    pub visibility: Option<String>,
    /// `true` or `false` (default).
    pub allow_download: Option<bool>,
    /// The video file (its type is read from its bytes; at most `VIDEO_MAX_BYTES`).
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Uploads a video (multipart): text fields `title` (required), `description`,
/// `tags` (comma-separated), `category`, `visibility`, `allow_download`, and the file in
/// `file`. The file is streamed to storage (never held in memory), its type read from
/// its bytes, its size limited (VIDEO_MAX_BYTES) and its SHA-256 taken. The video is
/// `processing` until the media worker has prepared it.
#[utoipa::path(post, path = "/videos/", tag = "videos", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = VideoUploadForm),
    responses(
        (status = 415, description = "Not `multipart/form-data`", body = crate::error::ErrorBody),
        (status = 201, body = inline(Envelope<Video>)),
        (status = 400, description = "A field is invalid, or `file` is not a video", body = crate::error::ErrorBody),
        (status = 408, description = "`upload_stalled`: nothing arrived for `UPLOAD_IDLE_SECS`; nothing was kept", body = crate::error::ErrorBody),
        (status = 413, description = "Past `VIDEO_MAX_BYTES`, `quota_exceeded`: past the uploader's `USER_STORAGE_QUOTA_BYTES`, or `field_too_large`: a text field past 16 KiB (64 KiB for all); nothing was kept", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn upload(
    State(state): State<AppState>,
    me: AuthUser,
    crate::extract::MultipartForm(mut form): crate::extract::MultipartForm,
) -> AppResult<ApiResponse<Video>> {
    let id = Uuid::now_v7();
    let mut fields = VideoFields::default();
    let mut file: Option<Received> = None;
    let mut text_left = FORM_TEXT_MAX_BYTES;
    let result: AppResult<()> = async {
        while let Some(field) = idle_bound(&state, form.next_field())
            .await?
            .map_err(crate::extract::multipart_error)?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "file" {
                if file.is_some() {
                    return Err(AppError::field("file", "Send one file."));
                }
                let left = quota_left(&state, me.id).await?;
                file = Some(receive_file(&state, id, left, field).await?);
            } else {
                // Text fields are read within their limits, never whole: the body limit
                // is lifted for this route (the file streams to storage).
                let text = bounded_text(&state, field, &mut text_left).await?;
                match name.as_str() {
                    "title" => fields.title = Some(text),
                    "description" => fields.description = Some(text),
                    "tags" => fields.tags = Some(text.split(',').map(str::to_owned).collect()),
                    "category" => fields.category = Some(text),
                    "visibility" => fields.visibility = Some(text.trim().to_owned()),
                    "allow_download" => {
                        fields.allow_download = Some(match text.trim() {
                            "true" | "1" | "on" => true,
                            "false" | "0" | "off" | "" => false,
                            _ => {
                                return Err(AppError::field(
                                    "allow_download",
                                    "Must be true or false.",
                                ));
                            }
                        })
                    }
                    other => return Err(AppError::field(other, "Unknown field.")),
                }
            }
        }
        Ok(())
    }
    .await;
    let cleanup = |file: &Option<Received>| {
        let key = file.as_ref().map(|f| f.key.clone());
        let storage = state.storage.clone();
        async move {
            if let Some(k) = key {
                let _ = storage.delete(&k).await;
            }
        }
    };
    if let Err(e) = result {
        cleanup(&file).await;
        return Err(e);
    }
    if let Err(e) = check_fields(&mut fields, true) {
        cleanup(&file).await;
        return Err(e);
    }
    let Some(Received {
        filename,
        size,
        sha256,
        kind: (container, content_type, _),
        key,
    }) = file
    else {
        return Err(AppError::field("file", "No file was submitted."));
    };
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "INSERT INTO videos (id, owner_id, title, description, tags, category, visibility, allow_download,
                             storage_key, original_filename, container, content_type, size_bytes, sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        id,
        me.id,
        fields.title.unwrap_or_default(),
        fields.description.unwrap_or_default(),
        &fields.tags.unwrap_or_default(),
        fields.category.unwrap_or_default(),
        fields.visibility.unwrap_or_else(|| "public".to_owned()),
        fields.allow_download.unwrap_or(false),
        key,
        filename,
        container,
        content_type,
        i64::try_from(size).unwrap_or(i64::MAX),
        sha256,
    )
    .execute(&mut *tx)
    .await?;
    let outbox = wp_shared::outbox::record(&mut tx, &PrepareMedia { video_id: id }).await?;
    let row = visible_video(&mut tx, Some(&me), id).await?;
    tx.commit().await?;
    state.relay(&[outbox]).await;
    Ok(ApiResponse::created(Video::new(row, &state, Some(&me))))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_come_from_the_bytes() {
        let mut mp4 = vec![0, 0, 0, 0x20];
        mp4.extend_from_slice(b"ftypisom\0\0\x02\0");
        assert_eq!(sniff_video(&mp4).unwrap().0, "mp4");
        let mut mov = vec![0, 0, 0, 0x14];
        mov.extend_from_slice(b"ftypqt  ");
        assert_eq!(sniff_video(&mov).unwrap().0, "quicktime");
        let webm = [
            &[0x1A, 0x45, 0xDF, 0xA3][..],
            b"\x9fB\x86\x81\x01B\x82\x84webm",
        ]
        .concat();
        assert_eq!(sniff_video(&webm).unwrap().0, "webm");
        assert!(sniff_video(b"#!/bin/sh\nrm -rf /").is_none());
        assert!(sniff_video(b"\x89PNG\r\n\x1a\n").is_none());
    }

    #[test]
    fn filenames_are_made_safe() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename("C:\\Users\\me\\clip.mp4"), "clip.mp4");
        assert_eq!(safe_filename("a\"b;c\r\n.mp4"), "abc.mp4");
        assert_eq!(safe_filename(".hidden"), "hidden");
        assert_eq!(safe_filename(""), "video");
    }
}
