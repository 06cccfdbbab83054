//! Uploading a video: the multipart form, streamed to storage with its type read from
//! its bytes, its size limited and its SHA-256 taken.

use axum::{extract::State, http::StatusCode};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wp_shared::jobs::PrepareMedia;

use super::{Video, VideoFields, check_fields, visible_video};
use crate::{
    auth::AuthUser,
    error::{AppError, AppResult},
    response::{ApiResponse, Envelope},
    state::AppState,
};

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
