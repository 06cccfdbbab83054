//! `GET /api/videos/{id}/download/`: the file, streamed from storage with
//! `Content-Type`, `Content-Length`, `Content-Disposition` (safe name), `ETag`,
//! `Last-Modified` and single-range requests (206 / 416); never read whole into memory.
//! Allowed for the owner (and staff); for others when the video is ready, visible to
//! them and `allow_download` is on. Players that cannot send headers use a short-lived
//! signed link from `POST /api/videos/{id}/download-token/`.

use crate::extract::Ids;
use axum::{
    body::Body,
    extract::{FromRequestParts, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wp_core::video::VideoRow;

use crate::{
    auth::{AuthUser, authenticate, tokens},
    error::{AppError, AppResult},
    extract::Query,
    response::{ApiResponse, Envelope},
    routes::videos::visible_video,
    state::AppState,
};

/// Lifetime of a signed download link.
pub const LINK_SECS: i64 = 300;

/// `data` of a download link.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadLink {
    /// Works without an Authorization header until `expires_at`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

async fn downloadable(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<VideoRow> {
    let mut conn = state.db.acquire().await?;
    let v = visible_video(&mut conn, Some(user), id).await?;
    let privileged = v.owner_id == user.id || user.is_staff();
    if !privileged && !v.allow_download {
        return Err(AppError::forbidden(
            "download_disabled",
            "The owner does not allow downloads of this video.",
        ));
    }
    if v.status != wp_core::video::VideoStatus::Ready {
        return Err(AppError::Conflict {
            code: "not_ready",
            message: format!("The video is {} and cannot be downloaded yet.", v.status),
        });
    }
    Ok(v)
}

/// A signed link to download the video for the next 5 minutes.
#[utoipa::path(post, path = "/videos/{id}/download-token/", tag = "videos", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = inline(Envelope<DownloadLink>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn token(
    State(state): State<AppState>,
    user: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<DownloadLink>> {
    let v = downloadable(&state, &user, id).await?;
    let (token, exp) = tokens::issue_scoped(
        &state.config,
        user.id,
        user.session_id,
        "download",
        v.id,
        LINK_SECS,
    )?;
    Ok(ApiResponse::ok(DownloadLink {
        url: format!(
            "{}/api/videos/{}/download/?token={token}",
            state.config.public_url, v.id
        ),
        expires_at: exp,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// A signed link token (instead of the Authorization header).
    pub token: Option<String>,
}

/// The caller of a download: from the bearer token, or from `?token=` for the video.
pub struct Downloader(pub AuthUser);

impl FromRequestParts<AppState> for Downloader {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Query(p) = Query::<DownloadParams>::from_request_parts(parts, state).await?;
        match p.token {
            None => Ok(Self(AuthUser::from_request_parts(parts, state).await?)),
            Some(t) => {
                let video = parts
                    .uri
                    .path()
                    .split('/')
                    .find_map(|seg| seg.parse::<uuid::Uuid>().ok())
                    .ok_or_else(AppError::not_found)?;
                let claims = tokens::verify_scoped(&state.config, &t, "download", video)?;
                Ok(Self(authenticate(state, claims.sub, claims.sid).await?))
            }
        }
    }
}

/// A parsed `Range` header against a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No usable Range: the whole file.
    Full,
    /// Inclusive byte range.
    Part(u64, u64),
    /// Cannot be satisfied: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110). Several ranges, or another unit, are
/// ignored (the whole file is sent), as the RFC allows.
pub fn parse_range(value: Option<&str>, len: u64) -> RangeSpec {
    let Some(v) = value.map(str::trim) else {
        return RangeSpec::Full;
    };
    let Some(spec) = v.strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    if len == 0 {
        return RangeSpec::Unsatisfiable;
    }
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), _) if start >= len => RangeSpec::Unsatisfiable,
        (Some(start), None) if b.is_empty() => RangeSpec::Part(start, len - 1),
        (Some(start), Some(end)) if end >= start => RangeSpec::Part(start, end.min(len - 1)),
        (None, Some(suffix)) if a.is_empty() && suffix > 0 => {
            RangeSpec::Part(len.saturating_sub(suffix), len - 1)
        }
        _ => RangeSpec::Unsatisfiable,
    }
}

fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// How a download may be cached: by the caller alone, never transformed.
const CACHE: &str = "private, no-transform";

/// Streams the video file (see the module documentation).
#[utoipa::path(get, path = "/videos/{id}/download/", tag = "videos", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path), DownloadParams),
    responses(
        (status = 200, description = "The whole file"),
        (status = 206, description = "The requested byte range"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 403, description = "`download_disabled`", body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
        (status = 409, description = "`not_ready`: still processing", body = crate::error::ErrorBody),
        (status = 416, description = "Range not satisfiable", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn download(
    State(state): State<AppState>,
    Downloader(user): Downloader,
    Ids(id): Ids<Uuid>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let v = downloadable(&state, &user, id).await?;
    let len = state
        .storage
        .len(&v.storage_key)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("video file missing: {e}")))?;
    let etag = format!("\"{}\"", &v.sha256[..32.min(v.sha256.len())]);
    let last_modified =
        sqlx::query_scalar!("SELECT file_updated_at FROM videos WHERE id = $1", v.id)
            .fetch_one(&state.db)
            .await?;
    let last_modified = last_modified
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Some(res) = crate::response::not_modified(&headers, &etag, CACHE) {
        return Ok(res);
    }
    // A Range only applies while the file is the one the client has (If-Range).
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|h| h.to_str().ok())
        .is_none_or(|h| h.trim() == etag || h.trim() == last_modified);
    let range = if if_range_ok {
        parse_range(
            headers.get(header::RANGE).and_then(|h| h.to_str().ok()),
            len,
        )
    } else {
        RangeSpec::Full
    };
    let mut res_headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(
        &mut res_headers,
        header::CONTENT_TYPE,
        v.content_type.clone(),
    );
    put(
        &mut res_headers,
        header::CONTENT_DISPOSITION,
        disposition(&v.original_filename),
    );
    put(&mut res_headers, header::ETAG, etag);
    put(&mut res_headers, header::LAST_MODIFIED, last_modified);
    put(&mut res_headers, header::ACCEPT_RANGES, "bytes".to_owned());
    put(&mut res_headers, header::CACHE_CONTROL, CACHE.to_owned());
    let (status, start, count) = match range {
        RangeSpec::Full => (StatusCode::OK, 0, len),
        RangeSpec::Part(a, b) => {
            put(
                &mut res_headers,
                header::CONTENT_RANGE,
                format!("bytes {a}-{b}/{len}"),
            );
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        RangeSpec::Unsatisfiable => {
            let mut r = AppError::Status {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                code: "range_not_satisfiable",
                message: format!("The file has {len} bytes."),
            }
            .into_response();
            put(
                r.headers_mut(),
                header::CONTENT_RANGE,
                format!("bytes */{len}"),
            );
            return Ok(r);
        }
    };
    put(&mut res_headers, header::CONTENT_LENGTH, count.to_string());
    // One download event per download, not per seek: only responses from byte 0 count.
    if start == 0 {
        crate::analytics::record(
            &state,
            wp_shared::jobs::AnalyticsEvent::new(
                "video.download",
                Some(user.id),
                Some(v.id),
                serde_json::json!({ "bytes": count, "partial": status == StatusCode::PARTIAL_CONTENT }),
            ),
        )
        .await;
    }
    let stream = state
        .storage
        .stream(&v.storage_key, start, count)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let body = Body::from_stream(stream);
    Ok((status, res_headers, body).into_response())
}

/// The video's thumbnail (JPEG), for whoever may see the video: with the
/// `thumbnail_url` a video answer gives, an `<img>` loads it without a header (a
/// private or friends-only video's URL is signed for the viewer and works for an hour
/// or two). `ETag` and `If-None-Match` (304).
#[utoipa::path(get, path = "/videos/{id}/thumbnail/", tag = "videos",
    params(("id" = uuid::Uuid, Path), DownloadParams),
    responses((status = 200, content_type = "image/jpeg", description = "The thumbnail"),
              (status = 304, description = "Not modified (If-None-Match)"),
              (status = 401, description = "`invalid_token`: a signed link that expired or was altered", body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn thumbnail(
    State(state): State<AppState>,
    crate::auth::MaybeAuthUser(me): crate::auth::MaybeAuthUser,
    Ids(id): Ids<Uuid>,
    Query(p): Query<DownloadParams>,
    headers: axum::http::HeaderMap,
) -> AppResult<Response> {
    let me = match (me, p.token) {
        (Some(me), _) => Some(me),
        (None, Some(t)) => {
            let claims = tokens::verify_scoped(&state.config, &t, "thumbnail", id)?;
            Some(authenticate(&state, claims.sub, claims.sid).await?)
        }
        (None, None) => None,
    };
    let mut conn = state.db.acquire().await?;
    let v = visible_video(&mut conn, me.as_ref(), id).await?;
    drop(conn);
    let key = v.thumbnail_key.ok_or_else(AppError::not_found)?;
    let etag = format!("\"{}\"", wp_core::stored_version(&key));
    let cache = if matches!(
        v.visibility,
        wp_core::video::VideoVisibility::Public | wp_core::video::VideoVisibility::Unlisted
    ) {
        "public, max-age=300"
    } else {
        "private, max-age=300"
    };
    if let Some(res) = crate::response::not_modified(&headers, &etag, cache) {
        return Ok(res);
    }
    let bytes = state
        .storage
        .read(&key)
        .await
        .map_err(|_| AppError::not_found())?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::{RangeSpec::*, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Part(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Part(0, 99));
        assert_eq!(parse_range(Some("bytes=50-5000"), 100), Part(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=9-3"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=abc"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Full);
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
    }
}
