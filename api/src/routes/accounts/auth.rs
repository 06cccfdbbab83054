//! Registration, login, token refresh with rotation, logout, sessions.

use crate::extract::Ids;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::OnConstraint;
use crate::{
    auth::{AuthUser, ClientIp, account_may_act, password, tokens},
    error::{AppError, AppResult, FieldErrors},
    extract::Json,
    ratelimit,
    response::{ApiResponse, Envelope},
    routes::accounts::users::{Me, load_me},
    state::AppState,
};

/// Failed logins in a row that lock an account for `LOCKOUT_MINUTES`.
pub const LOCKOUT_AFTER: i32 = 10;
pub const LOCKOUT_MINUTES: i64 = 15;

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–30 letters, digits, `_` or `.`; unique whatever the case.
    #[schema(pattern = r"^[A-Za-z0-9_.]{3,30}$")]
    pub username: String,
    #[schema(
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$"
    )]
    pub email: String,
    /// At least 10 characters, not like the username or email, not a common password.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    pub display_name: Option<String>,
}

/// Tokens for a signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthTokens {
    pub user: Me,
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

pub(crate) fn normalise_email(raw: &str) -> Result<String, AppError> {
    let email = raw.trim();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && email.matches('@').count() == 1
        });
    if !valid {
        return Err(AppError::field("email", "Enter a valid email address."));
    }
    Ok(email.to_owned())
}

fn check_username(name: &str) -> Option<String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !(3..=30).contains(&name.len()) || !ok_chars {
        Some("3 to 30 characters: letters, digits, `_` and `.`.".to_owned())
    } else {
        None
    }
}

/// The answer of a sign-in: the user and the session's token pair.
pub(crate) async fn auth_tokens(
    state: &AppState,
    user: Uuid,
    (access_token, refresh_token, expires_in): (String, String, i64),
) -> AppResult<AuthTokens> {
    Ok(AuthTokens {
        user: load_me(state, user).await?,
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in,
    })
}

/// Creates a session and its first refresh token; returns the token pair.
pub(crate) async fn start_session(
    state: &AppState,
    conn: &mut PgConnection,
    user: Uuid,
    headers: &HeaderMap,
    ip: &ClientIp,
) -> AppResult<(String, String, i64)> {
    let session = Uuid::now_v7();
    let ua: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let ttl = chrono::Duration::from_std(state.config.refresh_token_ttl)
        .map_err(|e| AppError::Internal(e.into()))?;
    sqlx::query!(
        "INSERT INTO sessions (id, user_id, user_agent, ip, expires_at) VALUES ($1, $2, $3, $4, $5)",
        session,
        user,
        ua,
        ip.0.to_string(),
        Utc::now() + ttl,
    )
    .execute(&mut *conn)
    .await?;
    let refresh = tokens::random_token();
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        tokens::token_hash(&refresh),
        session
    )
    .execute(&mut *conn)
    .await?;
    let (access, ttl) = tokens::issue_access(&state.config, user, session)?;
    Ok((access, refresh, ttl))
}

/// Creates an account and signs it in. A verification email is sent.
#[utoipa::path(post, path = "/auth/register/", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = inline(Envelope<AuthTokens>)),
        (status = 400, description = "A field is invalid (named in `errors`)", body = crate::error::ErrorBody),
        (status = 409, description = "Username or email taken", body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<RegisterRequest>,
) -> AppResult<ApiResponse<AuthTokens>> {
    ratelimit::hit(&state, &ratelimit::REGISTER_PER_IP, &ip.bucket()).await?;
    let username = body.username.trim().to_owned();
    let mut errors = FieldErrors::new();
    if let Some(e) = check_username(&username) {
        errors.insert("username".into(), vec![e]);
    }
    let email = match normalise_email(&body.email) {
        Ok(e) => e,
        Err(_) => {
            errors.insert("email".into(), vec!["Enter a valid email address.".into()]);
            String::new()
        }
    };
    if let Err(AppError::Validation(e)) = password::check_policy(&body.password, &username, &email)
    {
        errors.extend(e);
    }
    let display_name = body.display_name.unwrap_or_default().trim().to_owned();
    if display_name.chars().count() > 80 {
        errors.insert(
            "display_name".into(),
            vec!["Ensure this field has no more than 80 characters.".into()],
        );
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let hash = password::hash(body.password).await?;
    let id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "INSERT INTO users (id, username, email, password_hash, display_name)
         VALUES ($1, $2, $3, $4, $5)",
        id,
        username,
        email,
        hash,
        display_name
    )
    .execute(&mut *tx)
    .await
    .on_constraint(|c| match c {
        "users_username_key" => Some(AppError::conflict_field(
            "username",
            "A user with that username already exists.",
        )),
        "users_email_key" => Some(AppError::conflict_field(
            "email",
            "A user with that email already exists.",
        )),
        _ => None,
    })?;
    let outbox_ids =
        crate::routes::accounts::account::send_verification(&state, &mut tx, id, &username, &email)
            .await?;
    let pair = start_session(&state, &mut tx, id, &headers, &ip).await?;
    // Durable with the account (the outbox): the registration starts the user's cohort
    // in the behaviour analytics.
    let registered = wp_shared::jobs::AnalyticsEvent::new(
        "user.registered",
        Some(id),
        None,
        serde_json::json!({}),
    );
    let key = wp_shared::jobs::AnalyticsEvent::outbox_key(registered.event_id);
    let row = wp_shared::outbox::record_keyed(&mut tx, &registered, &key).await?;
    tx.commit().await?;
    state.relay(&[outbox_ids.as_slice(), &[row]].concat()).await;
    Ok(ApiResponse::created(auth_tokens(&state, id, pair).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Email address; or give `username` instead.
    pub email: Option<String>,
    pub username: Option<String>,
    pub password: String,
}

/// Either tokens, or (account with 2FA) a challenge to answer at `/auth/2fa/login/`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResult {
    Tokens(Box<AuthTokens>),
    TwoFactor {
        requires_2fa: bool,
        /// Single use, valid 5 minutes.
        challenge_token: String,
    },
}

fn invalid_credentials() -> AppError {
    AppError::unauthenticated(
        "invalid_credentials",
        "Unable to log in with the provided credentials.",
    )
}

/// Signs in with email or username and password.
#[utoipa::path(post, path = "/auth/login/", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = inline(Envelope<LoginResult>)),
        (status = 401, description = "`invalid_credentials`", body = crate::error::ErrorBody),
        (status = 403, description = "`account_suspended` or `account_locked`", body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> AppResult<ApiResponse<LoginResult>> {
    let ident = match (body.email.as_deref(), body.username.as_deref()) {
        (Some(e), _) if !e.trim().is_empty() => e.trim().to_lowercase(),
        (_, Some(u)) if !u.trim().is_empty() => u.trim().to_lowercase(),
        _ => return Err(AppError::field("email", "Give `email` or `username`.")),
    };
    ratelimit::peek(&state, &ratelimit::LOGIN_PER_IP, &ip.bucket()).await?;
    ratelimit::hit(&state, &ratelimit::LOGIN_PER_ACCOUNT, &ident).await?;
    let user = sqlx::query!(
        "SELECT id, username, email, password_hash, status, suspended_until, locked_until,
                totp_enabled_at
         FROM users WHERE lower(email) = $1 OR lower(username) = $1",
        ident
    )
    .fetch_optional(&state.db)
    .await?;
    if let Some(u) = &user
        && let Some(until) = u.locked_until
        && until > Utc::now()
    {
        return Err(locked(until));
    }
    if user.is_none()
        && let Some(until) = unknown_name_locked(&state, &ident).await?
    {
        return Err(locked(until));
    }
    let ok = password::verify(
        body.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let Some(user) = user.filter(|_| ok) else {
        record_failure(&state, &ident).await?;
        // Counted here, judged on the next attempt (`peek` above): this one fails anyway.
        match ratelimit::hit(&state, &ratelimit::LOGIN_PER_IP, &ip.bucket()).await {
            Ok(()) | Err(AppError::RateLimited { .. }) => {}
            Err(e) => return Err(e),
        }
        return Err(invalid_credentials());
    };
    if user.status == "deleted" {
        return Err(invalid_credentials());
    }
    account_may_act(&user.status, user.suspended_until)?;
    sqlx::query!(
        "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now(),
                deletion_requested_at = NULL
         WHERE id = $1",
        user.id
    )
    .execute(&state.db)
    .await?;
    ratelimit::clear(&state, &ratelimit::LOGIN_PER_ACCOUNT, &ident).await?;
    if user.totp_enabled_at.is_some() {
        let challenge =
            crate::routes::accounts::two_factor::issue_challenge(&state, user.id).await?;
        return Ok(ApiResponse::ok(LoginResult::TwoFactor {
            requires_2fa: true,
            challenge_token: challenge,
        }));
    }
    let mut tx = state.db.begin().await?;
    let pair = start_session(&state, &mut tx, user.id, &headers, &ip).await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(LoginResult::Tokens(Box::new(
        auth_tokens(&state, user.id, pair).await?,
    ))))
}

/// Counts a failed password for the account `ident` names (if any) and locks it after
/// `LOCKOUT_AFTER` in a row, telling the owner by email.
/// The answer while an account is locked after failed password checks.
pub(crate) fn locked(until: chrono::DateTime<Utc>) -> AppError {
    AppError::forbidden(
        "account_locked",
        format!(
            "Too many failed password attempts. Try again after {} or reset your password.",
            until.to_rfc3339()
        ),
    )
}

/// Counts a wrong password against the account `ident` (email or username, lower
/// case) names; the `LOCKOUT_AFTER`th locks it for `LOCKOUT_MINUTES` and mails a notice.
pub(crate) async fn record_failure(state: &AppState, ident: &str) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    let row = sqlx::query!(
        "UPDATE users SET
            failed_logins = failed_logins + 1,
            locked_until = CASE WHEN failed_logins + 1 >= $2
                                THEN now() + make_interval(mins => $3) ELSE locked_until END
         WHERE lower(email) = $1 OR lower(username) = $1
         RETURNING id, username, email, failed_logins, locked_until",
        ident,
        LOCKOUT_AFTER,
        i32::try_from(LOCKOUT_MINUTES).unwrap_or(15),
    )
    .fetch_optional(&mut *tx)
    .await?;
    if row.is_none() {
        tx.rollback().await?;
        return count_unknown_name(state, ident).await;
    }
    let mut relay = Vec::new();
    if let Some(r) = row
        && r.failed_logins == LOCKOUT_AFTER
    {
        relay = crate::routes::accounts::account::send_lockout_notice(
            state,
            &mut tx,
            r.id,
            &r.username,
            &r.email,
            r.locked_until,
        )
        .await?;
    }
    tx.commit().await?;
    state.relay(&relay).await;
    Ok(())
}

// A name no account has locks like an account after as many failures, so that
// `account_locked` does not tell a stranger which names exist. Kept in Redis: failures
// for a day, the lock for `LOCKOUT_MINUTES`.
fn unknown_name_keys(state: &AppState, ident: &str) -> (String, String) {
    let p = &state.config.redis_prefix;
    (
        format!("{p}:unknown-name-fails:{ident}"),
        format!("{p}:unknown-name-lock:{ident}"),
    )
}

async fn count_unknown_name(state: &AppState, ident: &str) -> AppResult<()> {
    let (fails, lock) = unknown_name_keys(state, ident);
    let mut redis = state.redis.clone();
    let (n, _) = wp_shared::redis_conn::window_hit(
        &mut redis,
        &fails,
        std::time::Duration::from_secs(86_400),
    )
    .await?;
    if n >= u32::try_from(LOCKOUT_AFTER).unwrap_or(10) {
        redis::cmd("SET")
            .arg(&lock)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(LOCKOUT_MINUTES * 60)
            .query_async::<()>(&mut redis)
            .await?;
        redis::cmd("DEL")
            .arg(&fails)
            .query_async::<()>(&mut redis)
            .await?;
    }
    Ok(())
}

async fn unknown_name_locked(
    state: &AppState,
    ident: &str,
) -> AppResult<Option<chrono::DateTime<Utc>>> {
    let (_, lock) = unknown_name_keys(state, ident);
    let mut redis = state.redis.clone();
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&lock)
        .query_async(&mut redis)
        .await?;
    Ok((ttl_ms > 0).then(|| Utc::now() + chrono::Duration::milliseconds(ttl_ms)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A new token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

fn bad_refresh() -> AppError {
    AppError::unauthenticated("invalid_token", "The refresh token is invalid or expired.")
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting
/// a spent one again revokes its whole session (every token of that login).
#[utoipa::path(post, path = "/auth/refresh/", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = inline(Envelope<TokenPair>)),
        (status = 401, description = "`invalid_token`, `token_reused` (session revoked)", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> AppResult<ApiResponse<TokenPair>> {
    let hash = tokens::token_hash(body.refresh_token.trim());
    let mut tx = state.db.begin().await?;
    let row = sqlx::query!(
        r#"SELECT t.session_id, t.used_at, s.user_id, s.revoked_at, s.expires_at,
                  u.status, u.suspended_until
           FROM refresh_tokens t
           JOIN sessions s ON s.id = t.session_id
           JOIN users u ON u.id = s.user_id
           WHERE t.token_hash = $1
           FOR UPDATE OF t, s"#,
        hash
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(bad_refresh)?;
    if row.revoked_at.is_some() || row.expires_at < Utc::now() {
        return Err(bad_refresh());
    }
    if row.used_at.is_some() {
        // Replay: someone holds a copy of this token. End the whole family.
        sqlx::query!(
            "UPDATE sessions SET revoked_at = now(), revoked_reason = 'refresh_token_reused' WHERE id = $1",
            row.session_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        state.sessions_changed(row.user_id).await;
        tracing::warn!(session = %row.session_id, user = %row.user_id, "refresh token reused; session revoked");
        return Err(AppError::unauthenticated(
            "token_reused",
            "This refresh token was already used; the session has been signed out.",
        ));
    }
    account_may_act(&row.status, row.suspended_until)?;
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1",
        hash
    )
    .execute(&mut *tx)
    .await?;
    let new_refresh = tokens::random_token();
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        tokens::token_hash(&new_refresh),
        row.session_id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE sessions SET last_used_at = now() WHERE id = $1",
        row.session_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let (access, ttl) = tokens::issue_access(&state.config, row.user_id, row.session_id)?;
    Ok(ApiResponse::ok(TokenPair {
        access_token: access,
        refresh_token: new_refresh,
        token_type: "Bearer",
        expires_in: ttl,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LogoutRequest {
    pub refresh_token: String,
}

/// Signs out the session the refresh token belongs to (its access tokens stop working
/// at once). Answers the same for an unknown token.
#[utoipa::path(post, path = "/auth/logout/", tag = "auth", request_body = LogoutRequest,
    responses((status = 200, body = inline(Envelope<serde_json::Value>))))]
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    Json(body): Json<LogoutRequest>,
) -> AppResult<ApiResponse<serde_json::Value>> {
    let user = sqlx::query_scalar!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'
         WHERE revoked_at IS NULL
           AND id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1)
         RETURNING user_id",
        tokens::token_hash(body.refresh_token.trim())
    )
    .fetch_optional(&state.db)
    .await?;
    if let Some(user) = user {
        state.sessions_changed(user).await;
    }
    Ok(ApiResponse::ok(serde_json::json!({})).message("Signed out."))
}

/// Signs out every session of the caller, this one included.
#[utoipa::path(post, path = "/auth/logout-all/", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<serde_json::Value>))))]
#[tracing::instrument(skip_all)]
pub async fn logout_all(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<ApiResponse<serde_json::Value>> {
    let n = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout_all'
         WHERE user_id = $1 AND revoked_at IS NULL",
        user.id
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    state.sessions_changed(user.id).await;
    Ok(ApiResponse::ok(serde_json::json!({ "revoked": n })).message("Signed out everywhere."))
}

/// A signed-in device.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: Uuid,
    pub user_agent: String,
    pub ip: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// The session this request is made from.
    pub current: bool,
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/auth/sessions/", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<Vec<SessionInfo>>))))]
#[tracing::instrument(skip_all)]
pub async fn sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<ApiResponse<Vec<SessionInfo>>> {
    let rows = sqlx::query!(
        "SELECT id, user_agent, ip, created_at, last_used_at FROM sessions
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now()
         ORDER BY created_at DESC LIMIT 100",
        user.id
    )
    .fetch_all(&state.db)
    .await?;
    Ok(ApiResponse::ok(
        rows.into_iter()
            .map(|r| SessionInfo {
                current: r.id == user.session_id,
                id: r.id,
                user_agent: r.user_agent,
                ip: r.ip,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
            })
            .collect(),
    ))
}

/// Signs out one of the caller's sessions. Another user's session is 404.
#[utoipa::path(delete, path = "/auth/sessions/{id}/", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn revoke_session(
    State(state): State<AppState>,
    user: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let n = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = 'revoked_by_user'
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        id,
        user.id
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    if n > 0 {
        state.sessions_changed(user.id).await;
    }
    crate::response::deleted(n)
}

/// A one-time socket ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct WsTicket {
    /// Open a socket with `?ticket=` (instead of `?token=`): once, within `expires_in`.
    pub ticket: String,
    /// Seconds.
    pub expires_in: u64,
}

/// A ticket to open a party or notification socket without putting the access token
/// in the URL (where proxies log it): single use, 30 seconds. The socket then runs
/// under the same session, for an access token's lifetime (renewed by `auth` frames).
#[utoipa::path(post, path = "/auth/ws-ticket/", tag = "auth", security(("bearer" = [])),
    responses((status = 201, body = inline(Envelope<WsTicket>))))]
#[tracing::instrument(skip_all)]
pub async fn ws_ticket(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<WsTicket>> {
    let mut redis = state.redis.clone();
    let ticket = wp_core::account::tickets::issue(
        &mut redis,
        &state.config.redis_prefix,
        me.id,
        me.session_id,
    )
    .await?;
    Ok(ApiResponse::created(WsTicket {
        ticket,
        expires_in: wp_core::account::tickets::TICKET_TTL_SECS,
    }))
}
