//! Staff CSV exports over REST: `POST /api/admin/users/export/` (the user directory,
//! admins), `POST /api/admin/exports/` (any kind), the export's progress and its signed,
//! expiring download link, and the download itself. The rules and the statements are
//! `wp_core::exports`; the `export` worker makes the file.

use axum::{
    body::Body,
    extract::{OriginalUri, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wp_core::exports::{self, ExportFilters, ExportKind, ExportStatus, NewExport, TableExport};

use crate::{
    auth::{AuthUser, Role, tokens},
    error::{AppError, AppResult, ErrorBody},
    extract::{Ids, JsonBody, Query},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    routes::videos::downloads::{DownloadParams, Downloader},
    state::AppState,
};

/// How long a download link works.
const LINK_SECS: i64 = 15 * 60;

/// An export with, once it is done, its download link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    #[serde(flatten)]
    pub export: TableExport,
    /// A signed link that downloads the file without a header, until
    /// `download_expires_at` (present when `status` is `done`; ask again for a new one).
    pub download_url: Option<String>,
    pub download_expires_at: Option<DateTime<Utc>>,
}

fn view(state: &AppState, me: &AuthUser, e: TableExport) -> AppResult<ExportView> {
    let (download_url, download_expires_at) = if e.status == ExportStatus::Done {
        let (token, exp) = tokens::issue_scoped(
            &state.config,
            me.id,
            me.session_id,
            "download",
            e.id,
            LINK_SECS,
        )?;
        (
            Some(format!(
                "{}/api/admin/exports/{}/download/?token={token}",
                state.config.public_url, e.id
            )),
            Some(exp),
        )
    } else {
        (None, None)
    };
    Ok(ExportView {
        export: e,
        download_url,
        download_expires_at,
    })
}

async fn start(
    state: &AppState,
    me: &AuthUser,
    new: NewExport,
) -> AppResult<ApiResponse<ExportView>> {
    let (kind, columns, filters) = new.checked()?;
    let (e, outbox) = exports::create(&state.db, me, kind, &columns, &filters).await?;
    state.relay(&[outbox]).await;
    Ok(ApiResponse::accepted(view(state, me, e)?))
}

/// A user-directory export's body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserExportRequest {
    /// Default: every column (docs/exports.md).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The user directory's filters.
    #[serde(default)]
    pub filters: ExportFilters,
}

/// Exports the user directory as CSV (admins), with its filters and the chosen
/// columns. 202 with the export; the `export` worker makes the file (progress here and
/// as `export_progress` frames on the notification socket), then the admin is notified.
#[utoipa::path(post, path = "/admin/users/export/", tag = "admin", security(("bearer" = [])), request_body = UserExportRequest,
    responses((status = 202, body = inline(Envelope<ExportView>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn export_users(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<ExportView>> {
    me.require_role(Role::Admin)?;
    let b = body.parse::<UserExportRequest>()?;
    start(
        &state,
        &me,
        NewExport {
            kind: ExportKind::Users,
            columns: b.columns,
            filters: b.filters,
        },
    )
    .await
}

/// Exports users (admins), support tickets, feedback or moderation reports (staff) as
/// CSV. 202 with the export.
#[utoipa::path(post, path = "/admin/exports/", tag = "admin", security(("bearer" = [])), request_body = NewExport,
    responses((status = 202, body = inline(Envelope<ExportView>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_export(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<ExportView>> {
    me.require_role(Role::Moderator)?;
    let new = body.parse::<NewExport>()?;
    start(&state, &me, new).await
}

/// The caller's exports (admins: everyone's), newest first.
#[utoipa::path(get, path = "/admin/exports/", tag = "admin", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<ExportView>>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_exports(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(page): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<ExportView>>> {
    me.require_role(Role::Moderator)?;
    let page = page.validate()?;
    let mut conn = state.db.acquire().await?;
    let (rows, count) = exports::list(&mut conn, &me, page.limit(), page.offset()).await?;
    let results = rows
        .into_iter()
        .map(|e| view(&state, &me, e))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// An export's progress (`rows_done` of `rows_total`, `status`) and, when done, its
/// download link. Another moderator's export is 404.
#[utoipa::path(get, path = "/admin/exports/{id}/", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<ExportView>)), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn export_detail(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<ExportView>> {
    me.require_role(Role::Moderator)?;
    let mut conn = state.db.acquire().await?;
    let e = exports::get(&mut conn, &me, id).await?;
    Ok(ApiResponse::ok(view(&state, &me, e)?))
}

/// Downloads a finished export (`text/csv`), with the bearer token or the signed link's
/// `?token=`. 404 until it is done, and after it expired.
#[utoipa::path(get, path = "/admin/exports/{id}/download/", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path), DownloadParams),
    responses((status = 200, content_type = "text/csv", description = "The CSV file (RFC 4180, a header row first)"),
        (status = 401, description = "`invalid_token`: a link that expired or was altered", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn export_download(
    State(state): State<AppState>,
    Downloader(me): Downloader,
    Ids(id): Ids<Uuid>,
) -> AppResult<Response> {
    me.require_role(Role::Moderator)?;
    let mut conn = state.db.acquire().await?;
    let e = exports::get(&mut conn, &me, id).await?;
    drop(conn);
    let (Some(key), ExportStatus::Done) = (e.file_key.as_deref(), e.status) else {
        return Err(AppError::not_found());
    };
    if e.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(AppError::not_found());
    }
    let len = state
        .storage
        .len(key)
        .await
        .map_err(|_| AppError::not_found())?;
    let stream = state
        .storage
        .stream(key, 0, len)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let name = format!(
        "watch-party-{}-{}.csv",
        e.kind,
        e.finished_at
            .unwrap_or(e.created_at)
            .format("%Y%m%d-%H%M%S")
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
