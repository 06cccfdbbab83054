//! Email verification, password reset and change, email change: one-time tokens sent
//! by email through the outbox and the email queue. Tokens are random, stored as
//! SHA-256, single use and short-lived.

use axum::extract::State;
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::OnConstraint;
use crate::{
    auth::{AuthUser, ClientIp, password, tokens},
    error::{AppError, AppResult},
    extract::Json,
    mail, ratelimit,
    response::{ApiResponse, Envelope},
    routes::accounts::users::{Me, load_me},
    state::AppState,
};

const VERIFY_HOURS: i64 = 24;
const RESET_MINUTES: i64 = 60;
const CHANGE_HOURS: i64 = 24;
/// How long the link of a lockout notice works.
const UNLOCK_HOURS: i64 = 24;

type Empty = serde_json::Value;

fn empty() -> Empty {
    serde_json::json!({})
}

/// What an emailed link is for: its name in `email_tokens`, the frontend page that
/// opens it, and how long it works.
#[derive(Debug, Clone, Copy)]
enum Link {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
    RevertEmail,
    UnlockAccount,
}

impl Link {
    fn purpose(self) -> &'static str {
        match self {
            Link::VerifyEmail => "verify_email",
            Link::ResetPassword => "reset_password",
            Link::ChangeEmail => "change_email",
            Link::RevertEmail => "revert_email",
            Link::UnlockAccount => "unlock_account",
        }
    }

    fn page(self) -> &'static str {
        match self {
            Link::VerifyEmail => "verify-email",
            Link::ResetPassword => "reset-password",
            Link::ChangeEmail => "confirm-email-change",
            Link::RevertEmail => "revert-email-change",
            Link::UnlockAccount => "unlock-account",
        }
    }

    fn ttl(self) -> chrono::Duration {
        match self {
            Link::VerifyEmail => chrono::Duration::hours(VERIFY_HOURS),
            Link::ResetPassword => chrono::Duration::minutes(RESET_MINUTES),
            Link::ChangeEmail => chrono::Duration::hours(CHANGE_HOURS),
            Link::RevertEmail => chrono::Duration::hours(REVERT_HOURS),
            Link::UnlockAccount => chrono::Duration::hours(UNLOCK_HOURS),
        }
    }
}

/// A new single-use token of `link`'s kind for `user` and `email` (it replaces an unused
/// one of the same kind), as the frontend URL that carries it.
async fn new_link(
    state: &AppState,
    conn: &mut PgConnection,
    user: Uuid,
    link: Link,
    email: &str,
) -> AppResult<String> {
    sqlx::query!(
        "UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user,
        link.purpose()
    )
    .execute(&mut *conn)
    .await?;
    let token = tokens::random_token();
    sqlx::query!(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, email, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        tokens::token_hash(&token),
        user,
        link.purpose(),
        email,
        Utc::now() + link.ttl()
    )
    .execute(&mut *conn)
    .await?;
    Ok(format!(
        "{}/{}?token={token}",
        state.config.frontend_url,
        link.page()
    ))
}

/// Spends a token: returns its user and address, or 400 naming `token`.
async fn use_token(conn: &mut PgConnection, token: &str, link: Link) -> AppResult<(Uuid, String)> {
    let row = sqlx::query!(
        "UPDATE email_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id, email",
        tokens::token_hash(token.trim()),
        link.purpose()
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| AppError::field("token", "This link is invalid, already used or expired."))?;
    Ok((row.user_id, row.email))
}

pub(crate) async fn send_verification(
    state: &AppState,
    conn: &mut PgConnection,
    user: Uuid,
    username: &str,
    email: &str,
) -> AppResult<Vec<i64>> {
    let link = new_link(state, conn, user, Link::VerifyEmail, email).await?;
    let id = mail::send(
        conn,
        "verify_email",
        email,
        "Confirm your email address",
        context! { username, email, link, hours => VERIFY_HOURS },
    )
    .await?;
    Ok(vec![id])
}

/// A security notice (cannot be turned off): an email to the account's address at
/// once, and a `security.alert` notification (a required type: always in the in-app
/// list and on the user's sockets; pushed unless push is off for it).
pub(crate) async fn send_security_alert(
    conn: &mut PgConnection,
    user: Uuid,
    username: &str,
    email: &str,
    what: &str,
) -> AppResult<Vec<i64>> {
    let id = mail::send(
        conn,
        "security_alert",
        email,
        "Security alert for your Watch Party account",
        context! { username, email, what },
    )
    .await?;
    let event = wp_core::events::emit(
        conn,
        "security.alert",
        None,
        Some(user),
        serde_json::json!({ "what": what }),
    )
    .await?;
    Ok(vec![id, event])
}

/// Tells the owner that sign-in is paused, with a link that lifts the pause at once
/// (`POST /api/auth/unlock/`): the lock stops a guesser, the owner only reads a mail.
pub(crate) async fn send_lockout_notice(
    state: &AppState,
    conn: &mut PgConnection,
    user: Uuid,
    username: &str,
    email: &str,
    until: Option<DateTime<Utc>>,
) -> AppResult<Vec<i64>> {
    let link = new_link(state, conn, user, Link::UnlockAccount, email).await?;
    let until = until.map(|t| t.to_rfc3339()).unwrap_or_default();
    let id = mail::send(
        conn,
        "account_locked",
        email,
        "Sign-in to your Watch Party account is paused",
        context! { username, link, until, attempts => crate::routes::accounts::auth::LOCKOUT_AFTER },
    )
    .await?;
    let event = wp_core::events::emit(
        conn,
        "security.alert",
        None,
        Some(user),
        serde_json::json!({ "what": "account_locked" }),
    )
    .await?;
    Ok(vec![id, event])
}

/// Lifts a lock after failed password checks with the token from the lockout notice:
/// the owner proved the mailbox, so waiting out the pause is not needed.
#[utoipa::path(post, path = "/auth/unlock/", tag = "account", request_body = TokenRequest,
    responses((status = 200, body = inline(Envelope<serde_json::Value>)), (status = 400, description = "`token` invalid, used or expired", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unlock(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> AppResult<ApiResponse<Empty>> {
    let mut tx = state.db.begin().await?;
    let (user, _) = use_token(&mut tx, &body.token, Link::UnlockAccount).await?;
    let names = sqlx::query_as::<_, (String, String)>(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1
         RETURNING lower(username), lower(email)",
    )
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    for ident in [names.0, names.1] {
        crate::ratelimit::clear(&state, &crate::ratelimit::LOGIN_PER_ACCOUNT, &ident).await?;
    }
    Ok(ApiResponse::ok(empty()).message("Sign-in is open again."))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The token from the emailed link.
    pub token: String,
}

/// Confirms the email address with the token from the verification email.
#[utoipa::path(post, path = "/auth/verify-email/", tag = "account", request_body = TokenRequest,
    responses((status = 200, body = inline(Envelope<Me>)), (status = 400, description = "`token` invalid, used or expired", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn verify_email(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> AppResult<ApiResponse<Me>> {
    let mut tx = state.db.begin().await?;
    let (user, email) = use_token(&mut tx, &body.token, Link::VerifyEmail).await?;
    sqlx::query!(
        "UPDATE users SET email_verified_at = now() WHERE id = $1 AND lower(email) = lower($2)",
        user,
        email
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(load_me(&state, user).await?).message("Email address confirmed."))
}

/// Sends the verification email again (at most 5 an hour).
#[utoipa::path(post, path = "/auth/verify-email/resend/", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<serde_json::Value>)), (status = 409, description = "Already verified", body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn resend_verification(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<ApiResponse<Empty>> {
    let me = load_me(&state, user.id).await?;
    if me.email_verified {
        return Err(AppError::Conflict {
            code: "already_verified",
            message: "This email address is already confirmed.".into(),
        });
    }
    ratelimit::hit(
        &state,
        &ratelimit::EMAIL_SEND_PER_USER,
        &user.id.to_string(),
    )
    .await?;
    let mut tx = state.db.begin().await?;
    let ids = send_verification(&state, &mut tx, user.id, &me.username, &me.email).await?;
    tx.commit().await?;
    state.relay(&ids).await;
    Ok(ApiResponse::ok(empty()).message("Verification email sent."))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$"
    )]
    pub email: String,
}

/// Asks for a password-reset email. Answers the same whether or not the address has an
/// account.
#[utoipa::path(post, path = "/auth/password/reset/", tag = "account", request_body = ResetRequest,
    responses((status = 200, body = inline(Envelope<serde_json::Value>)), (status = 429, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reset_request(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(body): Json<ResetRequest>,
) -> AppResult<ApiResponse<Empty>> {
    let email = body.email.trim().to_lowercase();
    if email.is_empty() {
        return Err(AppError::field("email", "This field may not be blank."));
    }
    ratelimit::hit(&state, &ratelimit::RESET_PER_IP, &ip.bucket()).await?;
    let answer = ApiResponse::ok(empty())
        .message("If an account uses that address, a reset link is on its way.");
    // Past the per-address limit, answer the same and send nothing more. Any other
    // error (Redis down) is an error: a 200 must mean the email is on its way.
    match ratelimit::hit(&state, &ratelimit::RESET_PER_ACCOUNT, &email).await {
        Ok(()) => {}
        Err(AppError::RateLimited { .. }) => return Ok(answer),
        Err(e) => return Err(e),
    }
    let user = sqlx::query!(
        "SELECT id, username, email FROM users WHERE lower(email) = $1 AND status = 'active'",
        email
    )
    .fetch_optional(&state.db)
    .await?;
    if let Some(u) = user {
        let mut tx = state.db.begin().await?;
        let link = new_link(&state, &mut tx, u.id, Link::ResetPassword, &u.email).await?;
        let id = mail::send(
            &mut tx,
            "reset_password",
            &u.email,
            "Reset your Watch Party password",
            context! { username => u.username, email => u.email, link, minutes => RESET_MINUTES },
        )
        .await?;
        tx.commit().await?;
        state.relay(&[id]).await;
    }
    Ok(answer)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirm {
    pub token: String,
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
}

/// Sets a new password with the token from the reset email. Every session of the
/// account is signed out, and the owner gets a notice.
#[utoipa::path(post, path = "/auth/password/reset/confirm/", tag = "account", request_body = ResetConfirm,
    responses((status = 200, body = inline(Envelope<serde_json::Value>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reset_confirm(
    State(state): State<AppState>,
    Json(body): Json<ResetConfirm>,
) -> AppResult<ApiResponse<Empty>> {
    let mut tx = state.db.begin().await?;
    let (user, _) = use_token(&mut tx, &body.token, Link::ResetPassword).await?;
    let u = sqlx::query!("SELECT username, email FROM users WHERE id = $1", user)
        .fetch_one(&mut *tx)
        .await?;
    password::check_policy(&body.password, &u.username, &u.email)?;
    let hash = password::hash(body.password).await?;
    let ids = set_password(&mut tx, user, &hash, None, &u.username, &u.email).await?;
    tx.commit().await?;
    state.sessions_changed(user).await;
    state.relay(&ids).await;
    Ok(ApiResponse::ok(empty()).message("Password changed. Sign in with the new password."))
}

/// Cancels the user's pending email changes (their confirmation links stop working).
async fn cancel_email_changes(conn: &mut PgConnection, user: Uuid) -> AppResult<()> {
    sqlx::query(
        "UPDATE email_tokens SET used_at = now()
          WHERE user_id = $1 AND purpose = 'change_email' AND used_at IS NULL",
    )
    .bind(user)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores a new password hash, unlocks the account, signs out every session but
/// `keep`, cancels pending email changes, and queues the security notice.
async fn set_password(
    conn: &mut PgConnection,
    user: Uuid,
    hash: &str,
    keep: Option<Uuid>,
    username: &str,
    email: &str,
) -> AppResult<Vec<i64>> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL WHERE id = $1",
        user,
        hash
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'password_changed'
         WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
        user,
        keep
    )
    .execute(&mut *conn)
    .await?;
    // An email change asked for with the old password does not survive the new one.
    cancel_email_changes(conn, user).await?;
    send_security_alert(
        conn,
        user,
        username,
        email,
        "The password of your Watch Party account was changed.",
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePassword {
    pub current_password: String,
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

/// Who a signed-in user is, as the account flows that re-check the password need it.
pub(crate) struct Confirmed {
    pub username: String,
    pub email: String,
}

/// The error for a wrong password in a `password` field.
pub(crate) const WRONG_PASSWORD: (&str, &str) = ("password", "The password is wrong.");

/// Checks a signed-in user's password again before a sensitive change (password or
/// email change, account deletion); a wrong one is a field error (`wrong`: the field and
/// its message). The same guards as signing in, so a stolen access token cannot be used
/// to guess the password: at most `PASSWORD_CHECK_PER_USER` checks a window (429 with
/// `Retry-After`), and each wrong password counts towards the account's lockout (403
/// `account_locked`, with the notice by email), as a failed sign-in does.
pub(crate) async fn confirm_password(
    state: &AppState,
    user: Uuid,
    given: String,
    wrong: (&str, &str),
) -> AppResult<Confirmed> {
    let u = sqlx::query!(
        "SELECT username, email, password_hash, locked_until FROM users WHERE id = $1",
        user
    )
    .fetch_one(&state.db)
    .await?;
    if let Some(until) = u.locked_until
        && until > chrono::Utc::now()
    {
        return Err(crate::routes::accounts::auth::locked(until));
    }
    let subject = user.to_string();
    ratelimit::hit(state, &ratelimit::PASSWORD_CHECK_PER_USER, &subject).await?;
    if !password::verify(given, Some(u.password_hash)).await? {
        // Usernames are unique and never hold an `@`: this finds this account alone.
        crate::routes::accounts::auth::record_failure(state, &u.username.to_lowercase()).await?;
        return Err(AppError::field(wrong.0, wrong.1));
    }
    ratelimit::clear(state, &ratelimit::PASSWORD_CHECK_PER_USER, &subject).await?;
    sqlx::query("UPDATE users SET failed_logins = 0 WHERE id = $1 AND failed_logins > 0")
        .bind(user)
        .execute(&state.db)
        .await?;
    Ok(Confirmed {
        username: u.username,
        email: u.email,
    })
}

/// Changes the caller's password. Other sessions are signed out; this one stays.
#[utoipa::path(post, path = "/auth/password/change/", tag = "account", security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 200, body = inline(Envelope<serde_json::Value>)), (status = 400, description = "`current_password` wrong or `new_password` too weak", body = crate::error::ErrorBody), (status = 403, description = "`account_locked`: ten wrong passwords in a row", body = crate::error::ErrorBody), (status = 429, description = "Too many password checks", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<ChangePassword>,
) -> AppResult<ApiResponse<Empty>> {
    let u = confirm_password(
        &state,
        user.id,
        body.current_password,
        ("current_password", "The current password is wrong."),
    )
    .await?;
    password::check_policy(&body.new_password, &u.username, &u.email).map_err(|e| match e {
        AppError::Validation(mut m) => {
            let msgs = m.remove("password").unwrap_or_default();
            m.insert("new_password".into(), msgs);
            AppError::Validation(m)
        }
        other => other,
    })?;
    let hash = password::hash(body.new_password).await?;
    let mut tx = state.db.begin().await?;
    let ids = set_password(
        &mut tx,
        user.id,
        &hash,
        Some(user.session_id),
        &u.username,
        &u.email,
    )
    .await?;
    tx.commit().await?;
    state.sessions_changed(user.id).await;
    state.relay(&ids).await;
    Ok(ApiResponse::ok(empty()).message("Password changed."))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeEmail {
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$"
    )]
    pub new_email: String,
    pub password: String,
}

/// Starts an email change: a confirmation link goes to the new address, a notice to
/// the old one. Nothing changes until the link is used.
#[utoipa::path(post, path = "/auth/email/change/", tag = "account", security(("bearer" = [])), request_body = ChangeEmail,
    responses((status = 202, body = inline(Envelope<serde_json::Value>)), (status = 400, body = crate::error::ErrorBody), (status = 403, description = "`account_locked`: ten wrong passwords in a row", body = crate::error::ErrorBody), (status = 429, description = "Too many password checks", body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn change_email(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<ChangeEmail>,
) -> AppResult<ApiResponse<Empty>> {
    let new_email = crate::routes::accounts::auth::normalise_email(&body.new_email)
        .map_err(|_| AppError::field("new_email", "Enter a valid email address."))?;
    let u = confirm_password(&state, user.id, body.password, WRONG_PASSWORD).await?;
    let taken = sqlx::query_scalar!(
        r#"SELECT EXISTS(SELECT 1 FROM users WHERE lower(email) = lower($1)) AS "taken!""#,
        new_email
    )
    .fetch_one(&state.db)
    .await?;
    if taken {
        return Err(AppError::conflict_field(
            "new_email",
            "A user with that email already exists.",
        ));
    }
    ratelimit::hit(
        &state,
        &ratelimit::EMAIL_SEND_PER_USER,
        &user.id.to_string(),
    )
    .await?;
    let mut tx = state.db.begin().await?;
    let link = new_link(&state, &mut tx, user.id, Link::ChangeEmail, &new_email).await?;
    let mut ids = vec![
        mail::send(
            &mut tx,
            "change_email",
            &new_email,
            "Confirm your new email address",
            context! { username => u.username, email => new_email, link, hours => CHANGE_HOURS },
        )
        .await?,
    ];
    ids.extend(
        send_security_alert(
            &mut tx,
            user.id,
            &u.username,
            &u.email,
            &format!("Someone asked to change the email of your account to {new_email}. Nothing changes unless that address confirms."),
        )
        .await?,
    );
    tx.commit().await?;
    state.relay(&ids).await;
    Ok(ApiResponse::accepted(empty()).message("Check the new address for a confirmation link."))
}

/// Completes an email change with the token sent to the new address.
#[utoipa::path(post, path = "/auth/email/change/confirm/", tag = "account", request_body = TokenRequest,
    responses((status = 200, body = inline(Envelope<Me>)), (status = 400, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn change_email_confirm(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> AppResult<ApiResponse<Me>> {
    let mut tx = state.db.begin().await?;
    let (user, email) = use_token(&mut tx, &body.token, Link::ChangeEmail).await?;
    let old: (String, String) =
        sqlx::query_as("SELECT username, email FROM users WHERE id = $1 FOR UPDATE")
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query!(
        "UPDATE users SET email = $2, email_verified_at = now() WHERE id = $1",
        user,
        email
    )
    .execute(&mut *tx)
    .await
    .on_constraint(|c| {
        (c == "users_email_key")
            .then(|| AppError::conflict_field("email", "A user with that email already exists."))
    })?;
    // The old address hears of it, with a way back (in case it was not the owner).
    let (username, old_email) = old;
    let link = new_link(&state, &mut tx, user, Link::RevertEmail, &old_email).await?;
    let ids = vec![
        mail::send(
            &mut tx,
            "email_changed",
            &old_email,
            "Your Watch Party email address was changed",
            context! { username, email, link, hours => REVERT_HOURS },
        )
        .await?,
    ];
    tx.commit().await?;
    state.relay(&ids).await;
    Ok(ApiResponse::ok(load_me(&state, user).await?).message("Email address changed."))
}

/// How long the old address may undo an email change.
const REVERT_HOURS: i64 = 24 * 7;

/// Undoes an email change with the link sent to the old address: the old address comes
/// back (verified), every session is signed out and pending email changes are
/// cancelled, so whoever made the change is out; the owner then resets the password.
#[utoipa::path(post, path = "/auth/email/revert/", tag = "account", request_body = TokenRequest,
    responses((status = 200, body = inline(Envelope<serde_json::Value>)),
              (status = 400, description = "`token` invalid, used or expired", body = crate::error::ErrorBody),
              (status = 409, description = "The old address belongs to another account now", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn revert_email(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> AppResult<ApiResponse<Empty>> {
    let mut tx = state.db.begin().await?;
    let (user, email) = use_token(&mut tx, &body.token, Link::RevertEmail).await?;
    let username: String = sqlx::query_scalar(
        "UPDATE users SET email = $2, email_verified_at = now() WHERE id = $1 RETURNING username",
    )
    .bind(user)
    .bind(&email)
    .fetch_one(&mut *tx)
    .await
    .on_constraint(|c| {
        (c == "users_email_key")
            .then(|| AppError::conflict_field("email", "A user with that email already exists."))
    })?;
    sqlx::query(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'email_reverted'
          WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    cancel_email_changes(&mut tx, user).await?;
    let ids = send_security_alert(
        &mut tx,
        user,
        &username,
        &email,
        "The email change of your Watch Party account was undone and every session was signed out. Reset your password now.",
    )
    .await?;
    tx.commit().await?;
    state.sessions_changed(user).await;
    state.relay(&ids).await;
    Ok(ApiResponse::ok(empty())
        .message("Your address is back and every session is signed out. Reset your password now."))
}
