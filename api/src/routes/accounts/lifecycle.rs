//! The account's own lifecycle: deletion with a grace period, data exports, avatar.

use crate::extract::Ids;
use axum::{
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wp_shared::jobs::ExportAccount;

use crate::error::OnConstraint;
use crate::{
    auth::{AuthUser, tokens},
    error::{AppError, AppResult},
    extract::Json,
    mail,
    response::{ApiResponse, Envelope},
    routes::accounts::users::{Me, load_me},
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccount {
    pub password: String,
}

/// `data` of an account deletion request.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionScheduled {
    /// When the account will be anonymised unless its owner signs in before.
    pub deletion_scheduled_at: DateTime<Utc>,
}

/// Asks for the account to be deleted. Every session is signed out; the account is
/// anonymised after ACCOUNT_DELETION_GRACE_DAYS unless the owner signs in again before,
/// which cancels the deletion. The owner is told by email.
#[utoipa::path(delete, path = "/users/me/", tag = "users", security(("bearer" = [])), request_body = DeleteAccount,
    responses((status = 202, body = inline(Envelope<DeletionScheduled>)), (status = 400, description = "`password` wrong", body = crate::error::ErrorBody), (status = 403, description = "`account_locked`: ten wrong passwords in a row", body = crate::error::ErrorBody), (status = 429, description = "Too many password checks", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<DeleteAccount>,
) -> AppResult<ApiResponse<DeletionScheduled>> {
    let u = crate::routes::accounts::account::confirm_password(
        &state,
        user.id,
        body.password,
        crate::routes::accounts::account::WRONG_PASSWORD,
    )
    .await?;
    let grace = chrono::Duration::from_std(state.config.deletion_grace)
        .map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let requested = sqlx::query_scalar!(
        "UPDATE users SET deletion_requested_at = now() WHERE id = $1 RETURNING deletion_requested_at AS \"at!\"",
        user.id
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'account_deletion'
         WHERE user_id = $1 AND revoked_at IS NULL",
        user.id
    )
    .execute(&mut *tx)
    .await?;
    let at = requested + grace;
    let what = format!(
        "Your account will be deleted on {}. To keep it, simply sign in before then.",
        at.to_rfc3339()
    );
    let outbox = mail::send(
        &mut tx,
        "security_alert",
        &u.email,
        "Your Watch Party account will be deleted",
        context! { username => u.username, email => u.email, what },
    )
    .await?;
    tx.commit().await?;
    state.sessions_changed(user.id).await;
    state.relay(&[outbox]).await;
    Ok(ApiResponse::accepted(DeletionScheduled {
        deletion_scheduled_at: at,
    }))
}

/// An export of the account's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataExport {
    pub id: Uuid,
    /// `queued`, `running`, `ready` or `failed`.
    pub status: String,
    pub size_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The file is removed after this.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where to fetch the file once `ready` (with the same bearer token).
    pub download_url: Option<String>,
}

async fn load_export(
    state: &AppState,
    user: Uuid,
    id: Uuid,
) -> AppResult<(DataExport, Option<String>)> {
    let r = sqlx::query!(
        "SELECT id, status, size_bytes, created_at, finished_at, expires_at, file_path
         FROM data_exports WHERE id = $1 AND user_id = $2",
        id,
        user
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(AppError::not_found)?;
    let ready = r.status == "ready";
    Ok((
        DataExport {
            download_url: ready.then(|| {
                format!(
                    "{}/api/users/me/exports/{}/download/",
                    state.config.public_url, r.id
                )
            }),
            id: r.id,
            status: r.status,
            size_bytes: r.size_bytes,
            created_at: r.created_at,
            finished_at: r.finished_at,
            expires_at: r.expires_at,
        },
        r.file_path.filter(|_| ready),
    ))
}

/// Asks for a copy of the account's data (JSON). Answers 202 with the export, whose
/// status can be read until it is `ready`. One export at a time; one not finished
/// within an hour (its job lost) is marked `failed` and no longer stands in the way.
#[utoipa::path(post, path = "/users/me/export/", tag = "users", security(("bearer" = [])),
    responses((status = 202, body = inline(Envelope<DataExport>)), (status = 409, description = "`export_pending`", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn request_export(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<ApiResponse<DataExport>> {
    let id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE data_exports
         SET status = 'failed', error = 'abandoned: not finished within an hour', finished_at = now()
         WHERE user_id = $1 AND status IN ('queued', 'running')
           AND created_at < now() - interval '1 hour'",
    )
    .bind(user.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO data_exports (id, user_id) VALUES ($1, $2)",
        id,
        user.id
    )
    .execute(&mut *tx)
    .await
    .on_constraint(|c| {
        (c == "data_exports_one_pending").then(|| AppError::Conflict {
            code: "export_pending",
            message: "An export is already being prepared.".into(),
        })
    })?;
    let outbox = wp_shared::outbox::record(&mut tx, &ExportAccount { export_id: id }).await?;
    tx.commit().await?;
    state.relay(&[outbox]).await;
    Ok(ApiResponse::accepted(
        load_export(&state, user.id, id).await?.0,
    ))
}

/// The state of one of my exports. Another user's export is 404.
#[utoipa::path(get, path = "/users/me/exports/{id}/", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<DataExport>)), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn export_status(
    State(state): State<AppState>,
    user: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<DataExport>> {
    Ok(ApiResponse::ok(load_export(&state, user.id, id).await?.0))
}

/// Downloads a ready export (JSON attachment).
#[utoipa::path(get, path = "/users/me/exports/{id}/download/", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "application/json", description = "The export file"), (status = 404, description = "Unknown, not yours, or not ready", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn export_download(
    State(state): State<AppState>,
    user: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<Response> {
    let (_, path) = load_export(&state, user.id, id).await?;
    let path = path.ok_or_else(AppError::not_found)?;
    let len = state
        .storage
        .len(&path)
        .await
        .map_err(|_| AppError::not_found())?;
    let stream = state
        .storage
        .stream(&path, 0, len)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let body = Body::from_stream(stream);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"watch-party-export-{id}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Largest avatar accepted.
pub const AVATAR_MAX_BYTES: usize = 2 * 1024 * 1024;

pub use wp_core::files::sniff_image;

/// The avatar upload's form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the multipart form for the OpenAPI document.
pub struct AvatarForm {
    /// The image (PNG, JPEG, GIF or WebP, at most 2 MiB; the type is read from the
    /// bytes). `avatar` is accepted as the field's name too.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// Sets the caller's avatar from the multipart field `file` (or `avatar`): PNG, JPEG,
/// GIF or WebP, at most 2 MiB; the type is read from the bytes.
#[utoipa::path(put, path = "/users/me/avatar/", tag = "users", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = AvatarForm),
    responses(
        (status = 200, body = inline(Envelope<Me>)),
        (status = 400, description = "`file` missing or not an image", body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody),
        (status = 415, description = "Not `multipart/form-data`", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn upload_avatar(
    State(state): State<AppState>,
    user: AuthUser,
    crate::extract::MultipartForm(mut form): crate::extract::MultipartForm,
) -> AppResult<ApiResponse<Me>> {
    let mut image: Option<Vec<u8>> = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(crate::extract::multipart_error)?
    {
        // `file`, as a video upload names it; `avatar` too.
        if !matches!(field.name(), Some("file" | "avatar")) {
            continue;
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(crate::extract::multipart_error)?
        {
            if buf.len() + chunk.len() > AVATAR_MAX_BYTES {
                return Err(AppError::PayloadTooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        image = Some(buf);
        break;
    }
    let image = image.ok_or_else(|| AppError::field("file", "No file was submitted."))?;
    let (_, ext) = sniff_image(&image)
        .ok_or_else(|| AppError::field("file", "Upload a PNG, JPEG, GIF or WebP image."))?;
    // A fresh random name each time: caches never serve a stale picture.
    let rel = format!(
        "avatars/{}-{}.{ext}",
        user.id,
        &tokens::random_token()[..16]
    );
    state
        .storage
        .put(&rel, image)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("storing the avatar: {e}")))?;
    let old = sqlx::query_scalar!(
        "UPDATE users u SET avatar_path = $2 FROM (SELECT avatar_path FROM users WHERE id = $1 FOR UPDATE) old
         WHERE u.id = $1 RETURNING old.avatar_path",
        user.id,
        rel
    )
    .fetch_one(&state.db)
    .await?;
    if let Some(old) = old {
        let _ = state.storage.delete(&old).await;
    }
    Ok(ApiResponse::ok(load_me(&state, user.id).await?))
}

/// Removes the caller's avatar.
#[utoipa::path(delete, path = "/users/me/avatar/", tag = "users", security(("bearer" = [])),
    responses((status = 204), (status = 404, description = "No avatar", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete_avatar(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    let old = sqlx::query_scalar!(
        "UPDATE users u SET avatar_path = NULL FROM (SELECT avatar_path FROM users WHERE id = $1 FOR UPDATE) old
         WHERE u.id = $1 RETURNING old.avatar_path",
        user.id
    )
    .fetch_one(&state.db)
    .await?
    .ok_or_else(AppError::not_found)?;
    let _ = state.storage.delete(&old).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvatarParams {
    /// The picture's version, as `avatar_url` names it.
    pub v: Option<String>,
}

/// A user's avatar image, loadable by `<img src>`: with the version `avatar_url` names
/// (`?v=`) no header is needed and the answer may be cached for good (a new picture is
/// a new URL); without it, a signed-in caller gets the current picture. Never to users
/// the owner blocked (when they say who they are). `ETag` and `If-None-Match` (304).
#[utoipa::path(get, path = "/users/{id}/avatar/", tag = "users",
    params(("id" = Uuid, Path), AvatarParams),
    responses((status = 200, description = "The image", content_type = "image/*"),
              (status = 304, description = "Not modified (If-None-Match)"),
              (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn avatar(
    State(state): State<AppState>,
    crate::auth::MaybeAuthUser(caller): crate::auth::MaybeAuthUser,
    Ids(id): Ids<Uuid>,
    axum::extract::Query(q): axum::extract::Query<AvatarParams>,
    headers: axum::http::HeaderMap,
) -> AppResult<Response> {
    let mut conn = state.db.acquire().await?;
    if let Some(c) = &caller
        && wp_core::social::has_blocked(&mut conn, id, c.id).await?
    {
        return Err(AppError::not_found());
    }
    let path = sqlx::query_scalar!(
        "SELECT avatar_path FROM users WHERE id = $1 AND status <> 'deleted'",
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .flatten()
    .ok_or_else(AppError::not_found)?;
    drop(conn);
    let version = wp_core::stored_version(&path);
    let named = q.v.as_deref() == Some(version.as_str());
    // Without the version, only a signed-in caller: a stranger cannot walk user ids.
    if !named && caller.is_none() {
        return Err(AppError::not_found());
    }
    let etag = format!("\"{version}\"");
    let cache = if named {
        "public, max-age=31536000, immutable"
    } else {
        "private, no-cache"
    };
    if let Some(res) = crate::response::not_modified(&headers, &etag, cache) {
        return Ok(res);
    }
    let bytes = state
        .storage
        .read(&path)
        .await
        .map_err(|_| AppError::not_found())?;
    let (mime, _) = sniff_image(&bytes).ok_or_else(AppError::not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, mime.to_owned()),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::ETAG, etag),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
