//! Staff actions on accounts: suspend and reinstate (moderators and admins), change a
//! role (admins). A staff member acts only on accounts of a lower role than their own.

use crate::extract::Ids;
use axum::extract::State;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wp_core::audit;

use crate::{
    auth::{AuthUser, Role},
    error::{AppError, AppResult},
    extract::JsonBody,
    mail,
    response::{ApiResponse, Envelope},
    state::AppState,
};

/// An account as staff see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub role: String,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    pub suspended_reason: Option<String>,
    pub suspended_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

async fn load(state: &AppState, id: Uuid) -> AppResult<AdminUser> {
    sqlx::query_as!(
        AdminUser,
        "SELECT id, username, email, role, status, suspended_reason, suspended_until, created_at, last_login_at
         FROM users WHERE id = $1",
        id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(AppError::not_found)
}

/// Loads the target and checks the caller outranks it.
async fn target(state: &AppState, staff: &AuthUser, id: Uuid) -> AppResult<AdminUser> {
    let t = load(state, id).await?;
    if t.id == staff.id || !staff.outranks(t.role.parse::<Role>().map_err(anyhow::Error::from)?) {
        return Err(AppError::forbidden(
            "permission_denied",
            "You can only act on accounts of a lower role than yours.",
        ));
    }
    Ok(t)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SuspendRequest {
    /// Shown to the user; 1–500 characters.
    pub reason: String,
    /// When the suspension ends by itself (RFC 3339, in the future); absent = until lifted.
    pub until: Option<DateTime<Utc>>,
}

/// Suspends an account: its tokens stop working at once and it cannot sign in.
/// The owner is told by email.
#[utoipa::path(post, path = "/admin/users/{id}/suspend/", tag = "admin", security(("bearer" = [])), request_body = SuspendRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<AdminUser>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn suspend(
    State(state): State<AppState>,
    staff: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<AdminUser>> {
    staff.require_role(Role::Moderator)?;
    let body: SuspendRequest = body.parse()?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::field(
            "reason",
            "Give a reason of 1 to 500 characters.",
        ));
    }
    if body.until.is_some_and(|u| u <= Utc::now()) {
        return Err(AppError::field("until", "Must be in the future."));
    }
    let t = target(&state, &staff, id).await?;
    if t.status == "deleted" {
        return Err(AppError::not_found());
    }
    let mut tx = state.db.begin().await?;
    let outbox = suspend_account(&mut tx, &t.email, &t.username, t.id, &reason, body.until).await?;
    audit::record(
        &mut tx,
        &staff,
        "user.suspend",
        "user",
        Some(t.id),
        serde_json::json!({ "reason": reason, "until": body.until }),
    )
    .await?;
    tx.commit().await?;
    state.sessions_changed(t.id).await;
    state.relay(&[outbox]).await;
    tracing::info!(staff = %staff.id, user = %t.id, "account suspended");
    Ok(ApiResponse::ok(load(&state, t.id).await?))
}

/// Suspends account `id` in `tx` and queues the email that tells its owner (the outbox
/// row to relay after commit). The caller checked rank, signs the sessions out after
/// commit, and audits.
pub(crate) async fn suspend_account(
    tx: &mut sqlx::PgConnection,
    email: &str,
    username: &str,
    id: Uuid,
    reason: &str,
    until: Option<DateTime<Utc>>,
) -> AppResult<i64> {
    sqlx::query!(
        "UPDATE users SET status = 'suspended', suspended_reason = $2, suspended_until = $3 WHERE id = $1",
        id,
        reason,
        until
    )
    .execute(&mut *tx)
    .await?;
    let what = match until {
        Some(u) => format!(
            "Your account was suspended until {} for this reason: {reason}",
            u.to_rfc3339()
        ),
        None => format!("Your account was suspended for this reason: {reason}"),
    };
    mail::send(
        tx,
        "security_alert",
        email,
        "Your Watch Party account was suspended",
        context! { username => username, email => email, what },
    )
    .await
}

/// Lifts a suspension.
#[utoipa::path(post, path = "/admin/users/{id}/unsuspend/", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<AdminUser>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unsuspend(
    State(state): State<AppState>,
    staff: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<AdminUser>> {
    staff.require_role(Role::Moderator)?;
    let t = target(&state, &staff, id).await?;
    if t.status != "suspended" {
        return Err(AppError::Conflict {
            code: "not_suspended",
            message: "This account is not suspended.".into(),
        });
    }
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE users SET status = 'active', suspended_reason = NULL, suspended_until = NULL WHERE id = $1",
        t.id
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &staff,
        "user.unsuspend",
        "user",
        Some(t.id),
        serde_json::json!({ "was_reason": t.suspended_reason }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(staff = %staff.id, user = %t.id, "suspension lifted");
    Ok(ApiResponse::ok(load(&state, t.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleRequest {
    pub role: Role,
}

/// Sets an account's role (admins only; not their own).
#[utoipa::path(put, path = "/admin/users/{id}/role/", tag = "admin", security(("bearer" = [])), request_body = RoleRequest,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<AdminUser>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_role(
    State(state): State<AppState>,
    staff: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<AdminUser>> {
    staff.require_role(Role::Admin)?;
    let body: RoleRequest = body.parse()?;
    let t = target(&state, &staff, id).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE users SET role = $2 WHERE id = $1",
        t.id,
        body.role.as_str()
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &staff,
        "user.role",
        "user",
        Some(t.id),
        serde_json::json!({ "from": t.role, "to": body.role }),
    )
    .await?;
    tx.commit().await?;
    // A staff socket of a demoted user closes (on every node).
    state.sessions_changed(t.id).await;
    tracing::info!(staff = %staff.id, user = %t.id, role = body.role.as_str(), "role changed");
    Ok(ApiResponse::ok(load(&state, t.id).await?))
}
