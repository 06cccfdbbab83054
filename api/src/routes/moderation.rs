//! Content moderation over REST (seed item 10): `POST /api/reports/` for everyone,
//! the queue under `/api/admin/reports/` for staff, and the audit log
//! (`GET /api/admin/audit/`) for admins. The rules are `wp_core::moderation`; this
//! module finishes what a resolution starts outside the database (files, sockets,
//! sessions, caches).

use axum::extract::{OriginalUri, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::{
    audit::{self, AuditEntry, AuditFilter},
    moderation::{
        self, Claimant, NewReport, QueueFilter, QueueOrdering, Removed, Report, ReportReason,
        ReportReceipt, ReportStatus, Resolution, TargetType,
    },
    party::events::{PartyEvent, UserRef},
};

use crate::{
    auth::{AuthUser, Role},
    error::{AppError, AppResult, ErrorBody},
    extract::{Ids, JsonBody, Query, listed},
    ratelimit::{self, Limit},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    routes::{admin::users::suspend_account, parties},
    state::AppState,
};

/// Reports per user (a flood of reports is abuse too).
pub const REPORTS_PER_USER: Limit = Limit {
    name: "report",
    limit: 20,
    window: std::time::Duration::from_secs(3600),
};

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(file_report, my_reports))
        .routes(routes!(report_queue))
        .routes(routes!(report_detail))
        .routes(routes!(claim_report))
        .routes(routes!(resolve_report))
        .routes(routes!(audit_log))
}

/// Reports what the caller sees: a video, a comment, a party chat message, a party, a
/// group or a user. 404 for a target they cannot see; 400 (`target_id`) for their own;
/// 409 `already_reported` while their report on it is handled; 429 past 20 an hour.
#[utoipa::path(post, path = "/reports/", tag = "moderation", security(("bearer" = [])), request_body = NewReport,
    responses((status = 201, body = inline(Envelope<ReportReceipt>)), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn file_report(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<ReportReceipt>> {
    let new = body.parse::<NewReport>()?;
    ratelimit::hit(&state, &REPORTS_PER_USER, &me.id.to_string()).await?;
    Ok(ApiResponse::created(
        moderation::report(&state.db, &me, &new, Utc::now()).await?,
    ))
}

/// The caller's own reports, newest first, with where each stands.
#[utoipa::path(get, path = "/reports/", tag = "moderation", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<ReportReceipt>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn my_reports(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(page): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<ReportReceipt>>> {
    let page = page.validate()?;
    let mut conn = state.db.acquire().await?;
    let (results, count) = moderation::mine(&mut conn, &me, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// `?status=&target_type=&reason=&claimed_by=&target_id=&target_owner=&reporter=&ordering=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    /// Comma-separated `open,claimed,resolved`; default `open,claimed`.
    pub status: Option<String>,
    /// Comma-separated `video,comment,message,party,group,user`.
    pub target_type: Option<String>,
    /// Comma-separated reasons.
    pub reason: Option<String>,
    /// A staff id, `me` or `none` (unclaimed).
    pub claimed_by: Option<String>,
    pub target_id: Option<Uuid>,
    /// Reports about this user or their content.
    pub target_owner: Option<Uuid>,
    pub reporter: Option<Uuid>,
    /// `oldest` (default), `newest`, `most_reported`.
    pub ordering: Option<String>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

impl QueueParams {
    fn filter(self, me: &AuthUser) -> AppResult<QueueFilter> {
        let claimed_by = match self.claimed_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("me") => Some(Claimant::User(me.id)),
            Some("none") => Some(Claimant::Nobody),
            Some(v) => Some(Claimant::User(v.parse().map_err(|_| {
                AppError::field("claimed_by", "A user id, `me` or `none`.")
            })?)),
        };
        let ordering = self
            .ordering
            .as_deref()
            .map(|o| {
                o.parse::<QueueOrdering>().map_err(|_| {
                    AppError::field("ordering", "One of: oldest, newest, most_reported.")
                })
            })
            .transpose()?;
        Ok(QueueFilter {
            status: listed("status", self.status.as_deref(), ReportStatus::ALL, |s| {
                s.as_str()
            })?,
            target_type: listed(
                "target_type",
                self.target_type.as_deref(),
                TargetType::ALL,
                |s| s.as_str(),
            )?,
            reason: listed("reason", self.reason.as_deref(), ReportReason::ALL, |s| {
                s.as_str()
            })?,
            claimed_by,
            target_id: self.target_id,
            target_owner: self.target_owner,
            reporter: self.reporter,
            ordering,
        })
    }
}

/// The moderation queue (staff): open and claimed reports, oldest first, each with how
/// many open reports its target has.
#[utoipa::path(get, path = "/admin/reports/", tag = "moderation", security(("bearer" = [])), params(QueueParams),
    responses((status = 200, body = inline(Envelope<Paginated<Report>>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn report_queue(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<QueueParams>,
) -> AppResult<ApiResponse<Paginated<Report>>> {
    me.require_role(Role::Moderator)?;
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let filter = q.filter(&me)?;
    let mut conn = state.db.acquire().await?;
    let (results, count) =
        moderation::queue(&mut conn, &me, &filter, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// One report (staff), with the reported text as it was when reported.
#[utoipa::path(get, path = "/admin/reports/{id}/", tag = "moderation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Report>)), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn report_detail(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Report>> {
    me.require_role(Role::Moderator)?;
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(moderation::get(&mut conn, &me, id).await?))
}

/// Takes a report (staff). 409 `already_claimed` when another moderator has it (an
/// admin takes it over), `already_resolved` when done.
#[utoipa::path(post, path = "/admin/reports/{id}/claim/", tag = "moderation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Report>)), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn claim_report(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Report>> {
    me.require_role(Role::Moderator)?;
    Ok(ApiResponse::ok(
        moderation::claim(&state.db, &me, id, Utc::now()).await?,
    ))
}

/// Resolves a report (staff) with an action — `remove` the content, `warn` its owner
/// (notified, with the note), `suspend` the owner (`suspend_days`, or until lifted;
/// emailed, signed out), or `dismiss` — and every other open report on the same
/// target with it; each reporter is told the outcome. Acting on someone needs a higher
/// role than theirs (403).
#[utoipa::path(post, path = "/admin/reports/{id}/resolve/", tag = "moderation", security(("bearer" = [])), request_body = Resolution,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Report>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn resolve_report(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Report>> {
    me.require_role(Role::Moderator)?;
    let report = {
        let mut conn = state.db.acquire().await?;
        moderation::get(&mut conn, &me, id).await?
    };
    let r = body.parse::<Resolution>()?.checked(report.target_type)?;
    let mut tx = state.db.begin().await?;
    let mut done = moderation::resolve(&mut tx, &me, id, &r, Utc::now()).await?;
    if let Some(s) = &done.suspend {
        let (username, email): (String, String) =
            sqlx::query_as("SELECT username, email FROM users WHERE id = $1")
                .bind(s.user)
                .fetch_one(&mut *tx)
                .await?;
        done.outbox
            .push(suspend_account(&mut tx, &email, &username, s.user, &s.reason, s.until).await?);
    }
    tx.commit().await?;
    if let Some(s) = &done.suspend {
        state.sessions_changed(s.user).await;
    }
    state.relay(&done.outbox).await;
    if let Some(removed) = &done.removed {
        finish_removal(&state, &me, removed).await;
    }
    tracing::info!(staff = %me.id, report = %id, action = %r.action, resolved = done.resolved.len(), "report resolved");
    Ok(ApiResponse::ok(done.report))
}

/// What a removal leaves to do once committed: delete the files, tell the sockets, drop
/// the caches. Best effort, as after an owner's own delete.
async fn finish_removal(state: &AppState, me: &AuthUser, removed: &Removed) {
    match removed {
        Removed::Video { id, files } => {
            for key in files {
                if let Err(e) = state.storage.delete(key).await {
                    tracing::warn!(key, video = %id, error = %e, "could not remove a removed video's file");
                }
            }
        }
        Removed::Comment { video_id } => crate::page_cache::invalidate(state, *video_id).await,
        Removed::Message { party_id, id } => {
            parties::notify(
                state,
                *party_id,
                wp_core::party::events::BusMsg::to_all(
                    "api",
                    PartyEvent::ChatMessageDeleted {
                        id: *id,
                        by: UserRef::new(me.id, &me.username),
                    },
                ),
            )
            .await;
        }
        Removed::Party { id } => {
            parties::end_live(state, *id, "A moderator ended the party.").await;
        }
        Removed::Group { .. } => {}
    }
}

/// `?actor=&action=&target_type=&target_id=&since=&until=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// The staff member who acted.
    pub actor: Option<Uuid>,
    /// An action (`user.suspend`) or a prefix ending in `.` (`user.`).
    #[param(max_length = 64)]
    pub action: Option<String>,
    /// `user`, `broadcast`, `queue`, `report`, `ticket`, `faq`.
    #[param(max_length = 32)]
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    /// From this instant (RFC 3339), inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Before this instant.
    pub until: Option<DateTime<Utc>>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// The audit log (admins): every staff action, newest first.
#[utoipa::path(get, path = "/admin/audit/", tag = "moderation", security(("bearer" = [])), params(AuditParams),
    responses((status = 200, body = inline(Envelope<Paginated<AuditEntry>>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn audit_log(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<AuditParams>,
) -> AppResult<ApiResponse<Paginated<AuditEntry>>> {
    me.require_role(Role::Admin)?;
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    for (field, v, max) in [
        ("action", &q.action, 64),
        ("target_type", &q.target_type, 32),
    ] {
        if v.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(AppError::field(field, format!("At most {max} characters.")));
        }
    }
    if let (Some(s), Some(u)) = (q.since, q.until)
        && s >= u
    {
        return Err(AppError::field("until", "Must be after since."));
    }
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action.filter(|a| !a.trim().is_empty()),
        target_type: q.target_type.filter(|t| !t.trim().is_empty()),
        target_id: q.target_id,
        since: q.since,
        until: q.until,
    };
    let mut conn = state.db.acquire().await?;
    let (results, count) = audit::list(&mut conn, &filter, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}
