//! The user directory of the admin panel (`GET /api/admin/users/`) and bulk actions on
//! accounts (`POST /api/admin/users/bulk/`). The rules are
//! `wp_core::account::staff`; each account of a bulk call is changed in its own
//! transaction with its audit row, and reported on its own.

use axum::extract::{OriginalUri, State};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wp_core::account::{
    AccountStatus,
    staff::{self, BulkAction, BulkRequest, Refusal, StaffUserView, UserFilter, UserOrdering},
};

use crate::{
    auth::{AuthUser, Role},
    error::{AppError, AppResult, ErrorBody},
    extract::{JsonBody, Query, listed},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    routes::admin::users::suspend_account,
    state::AppState,
};

/// `?search=&role=&status=&verified=&has_2fa=&country=&joined_after=&joined_before=&active_after=&active_before=&ordering=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DirectoryParams {
    /// Part of the username, display name or email.
    #[param(max_length = 100)]
    pub search: Option<String>,
    /// Comma-separated `user,moderator,admin`.
    pub role: Option<String>,
    /// Comma-separated `active,suspended,deleted`.
    pub status: Option<String>,
    /// Whether the email address is verified.
    pub verified: Option<bool>,
    /// Whether two-factor sign-in is on.
    pub has_2fa: Option<bool>,
    /// A two-letter region code, from the account's locale (`en-GB` → `GB`).
    #[param(pattern = "^[A-Za-z]{2}$")]
    pub country: Option<String>,
    /// Joined at or after (RFC 3339).
    pub joined_after: Option<DateTime<Utc>>,
    /// Joined before.
    pub joined_before: Option<DateTime<Utc>>,
    /// Last signed in at or after.
    pub active_after: Option<DateTime<Utc>>,
    /// Last signed in before.
    pub active_before: Option<DateTime<Utc>>,
    /// `-created_at` (default), `created_at`, `username`, `-username`,
    /// `last_login_at`, `-last_login_at`.
    pub ordering: Option<String>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

impl DirectoryParams {
    fn filter(self) -> AppResult<UserFilter> {
        if self
            .search
            .as_ref()
            .is_some_and(|s| s.chars().count() > 100)
        {
            return Err(AppError::field("search", "At most 100 characters."));
        }
        let country = match self.country.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
                Some(c.to_ascii_uppercase())
            }
            Some(_) => {
                return Err(AppError::field(
                    "country",
                    "A two-letter region code (GB, BR).",
                ));
            }
        };
        for (field, after, before) in [
            ("joined_before", self.joined_after, self.joined_before),
            ("active_before", self.active_after, self.active_before),
        ] {
            if let (Some(a), Some(b)) = (after, before)
                && a >= b
            {
                return Err(AppError::field(field, "Must be after the start."));
            }
        }
        let ordering = self
            .ordering
            .as_deref()
            .map(|o| {
                o.parse::<UserOrdering>().map_err(|_| {
                    let all: Vec<&str> = UserOrdering::ALL.iter().map(|o| o.as_str()).collect();
                    AppError::field("ordering", format!("One of: {}.", all.join(", ")))
                })
            })
            .transpose()?;
        Ok(UserFilter {
            search: self.search,
            role: listed("role", self.role.as_deref(), Role::ALL, |r| r.as_str())?,
            status: listed("status", self.status.as_deref(), AccountStatus::ALL, |s| {
                s.as_str()
            })?,
            verified: self.verified,
            has_2fa: self.has_2fa,
            country,
            joined_after: self.joined_after,
            joined_before: self.joined_before,
            active_after: self.active_after,
            active_before: self.active_before,
            ordering,
        })
    }
}

/// The user directory (staff), newest first, with the filters.
#[utoipa::path(get, path = "/admin/users/", tag = "admin", security(("bearer" = [])), params(DirectoryParams),
    responses((status = 200, body = inline(Envelope<Paginated<StaffUserView>>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn directory(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<DirectoryParams>,
) -> AppResult<ApiResponse<Paginated<StaffUserView>>> {
    me.require_role(Role::Moderator)?;
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let filter = q.filter()?;
    let mut conn = state.db.acquire().await?;
    let (results, count) = staff::list(&mut conn, &filter, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// What happened to one account of a bulk call.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOutcome {
    pub id: Uuid,
    pub ok: bool,
    /// Why not, when not: `not_found`, `permission_denied`, `not_suspended`.
    pub code: Option<&'static str>,
    pub message: Option<&'static str>,
    /// The account after the action (absent when it does not exist).
    pub user: Option<StaffUserView>,
}

/// `data` of a bulk call.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkReport {
    pub action: BulkAction,
    pub succeeded: usize,
    pub failed: usize,
    /// One per account, in the order asked.
    pub results: Vec<BulkOutcome>,
}

/// Takes one action on up to 100 accounts: `suspend` (`reason`, optional `until`;
/// emailed, signed out), `unsuspend`, `verify` (moderators and admins), `set_role`
/// (`role`), `delete` (erased by the next purge, signed out and unable to sign in
/// meanwhile; admins). Each account is changed on its own, with the rank rule (only
/// accounts of a lower role than the caller's) and an audit row; one refused does
/// not stop the others. 200 with a report per account.
#[utoipa::path(post, path = "/admin/users/bulk/", tag = "admin", security(("bearer" = [])), request_body = BulkRequest,
    responses((status = 200, body = inline(Envelope<BulkReport>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn bulk(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<BulkReport>> {
    me.require_role(Role::Moderator)?;
    let r = body
        .parse::<BulkRequest>()?
        .checked(Utc::now())
        .map_err(|(field, message)| AppError::field(field, message))?;
    me.require_role(r.action.needs())?;
    let grace = TimeDelta::from_std(state.config.deletion_grace).unwrap_or(TimeDelta::MAX);
    let mut results = Vec::with_capacity(r.user_ids.len());
    for &id in &r.user_ids {
        let outcome = match bulk_one(&state, &me, id, &r, grace).await? {
            Ok(user) => BulkOutcome {
                id,
                ok: true,
                code: None,
                message: None,
                user: Some(user),
            },
            Err(Refusal { code, message }) => {
                let mut conn = state.db.acquire().await?;
                BulkOutcome {
                    id,
                    ok: false,
                    code: Some(code),
                    message: Some(message),
                    user: staff::get(&mut conn, id).await?,
                }
            }
        };
        results.push(outcome);
    }
    let succeeded = results.iter().filter(|o| o.ok).count();
    tracing::info!(staff = %me.id, action = %r.action, succeeded, asked = r.user_ids.len(), "bulk account action");
    Ok(ApiResponse::ok(BulkReport {
        action: r.action,
        succeeded,
        failed: results.len() - succeeded,
        results,
    }))
}

/// One account of a bulk call, in its own transaction (row-locked, checked, changed,
/// audited); the sign-out and the email follow the commit.
async fn bulk_one(
    state: &AppState,
    me: &AuthUser,
    id: Uuid,
    r: &BulkRequest,
    grace: TimeDelta,
) -> AppResult<Result<StaffUserView, Refusal>> {
    let mut tx = state.db.begin().await?;
    let row: Option<(Role, AccountStatus, String, String)> =
        sqlx::query_as("SELECT role, status, username, email FROM users WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((role, status, username, email)) = row else {
        return Ok(Err(Refusal {
            code: "not_found",
            message: "No such account.",
        }));
    };
    if let Err(refused) = staff::check(me, id, role, status, r.action) {
        return Ok(Err(refused));
    }
    let applied = staff::apply(&mut tx, id, r, grace).await?;
    let mut outbox = Vec::new();
    if r.action == BulkAction::Suspend {
        let reason = r.reason.clone().unwrap_or_default();
        outbox.push(suspend_account(&mut tx, &email, &username, id, &reason, r.until).await?);
    }
    wp_core::audit::record(
        &mut tx,
        me,
        r.action.audit_name(),
        "user",
        Some(id),
        serde_json::json!({ "bulk": true, "reason": r.reason, "until": r.until,
                            "from": role, "to": r.role, "was": status }),
    )
    .await?;
    let user = staff::get(&mut tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the account locked above is gone"))?;
    tx.commit().await?;
    if applied.sign_out || applied.role_changed {
        state.sessions_changed(id).await;
    }
    state.relay(&outbox).await;
    Ok(Ok(user))
}
