//! Two-factor authentication with TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one step of
//! skew), one-time recovery codes, and the login challenge.

use axum::{extract::State, http::HeaderMap};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Secret, TOTP};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::{AuthUser, ClientIp, password, tokens},
    error::{AppError, AppResult},
    extract::Json,
    ratelimit,
    response::{ApiResponse, Envelope},
    routes::accounts::{
        account::send_security_alert,
        auth::{AuthTokens, auth_tokens, start_session},
        users::load_me,
    },
    state::AppState,
};

const ISSUER: &str = "Watch Party";
const CHALLENGE_SECS: u64 = 300;
const RECOVERY_CODES: usize = 10;

fn totp(secret_b32: &str, account: &str) -> AppResult<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored TOTP secret: {e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(ISSUER.to_owned()),
        account.replace(':', "_"),
    )
    .map_err(|e| AppError::Internal(anyhow::anyhow!("TOTP: {e:?}")))
}

/// Checks a TOTP code, refusing one already used (each code works once).
async fn check_code(
    state: &AppState,
    user: Uuid,
    secret: &str,
    account: &str,
    code: &str,
) -> AppResult<bool> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(false);
    }
    if !totp(secret, account)?.check_current(&code).unwrap_or(false) {
        return Ok(false);
    }
    let mut conn = state.redis.clone();
    let key = format!("{}:totp-used:{user}:{code}", state.config.redis_prefix);
    wp_shared::redis_conn::try_lock(&mut conn, &key, "1", std::time::Duration::from_secs(120))
        .await
        .map_err(AppError::from)
}

/// Spends a recovery code (any case, dashes ignored).
async fn use_recovery_code(state: &AppState, user: Uuid, code: &str) -> AppResult<bool> {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    if normal.len() != 10 {
        return Ok(false);
    }
    let n = sqlx::query!(
        "UPDATE recovery_codes SET used_at = now()
         WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        user,
        tokens::token_hash(&normal)
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// `data` of 2FA setup.
#[derive(Debug, Serialize, ToSchema)]
pub struct Setup {
    /// Base32 secret to type into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/...` for a QR code.
    pub otpauth_url: String,
}

/// Starts 2FA setup: a new secret (not active until `/auth/2fa/enable/` confirms a code).
#[utoipa::path(post, path = "/auth/2fa/setup/", tag = "two-factor", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<Setup>)), (status = 409, description = "2FA already on", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn setup(State(state): State<AppState>, user: AuthUser) -> AppResult<ApiResponse<Setup>> {
    let me = load_me(&state, user.id).await?;
    if me.two_factor_enabled {
        return Err(AppError::Conflict {
            code: "two_factor_enabled",
            message: "Two-factor authentication is already on. Disable it first to change it."
                .into(),
        });
    }
    let secret = match Secret::generate_secret().to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "TOTP secret not encoded"
            )));
        }
    };
    let t = totp(&secret, &me.email)?;
    sqlx::query!(
        "UPDATE users SET totp_secret = $2 WHERE id = $1",
        user.id,
        secret
    )
    .execute(&state.db)
    .await?;
    Ok(ApiResponse::ok(Setup {
        otpauth_url: t.get_url(),
        secret,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeRequest {
    /// The 6-digit code from the authenticator app.
    pub code: String,
}

/// `data` of enabling 2FA.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Shown once. Each works once in place of a code.
    pub recovery_codes: Vec<String>,
}

/// Turns 2FA on with a valid code from the secret of the last setup. Returns the
/// recovery codes (shown only now) and tells the owner by email.
#[utoipa::path(post, path = "/auth/2fa/enable/", tag = "two-factor", security(("bearer" = [])), request_body = CodeRequest,
    responses((status = 200, body = inline(Envelope<RecoveryCodes>)), (status = 400, description = "`code` wrong, or no setup", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn enable(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<CodeRequest>,
) -> AppResult<ApiResponse<RecoveryCodes>> {
    ratelimit::hit(
        &state,
        &ratelimit::TWO_FACTOR_PER_USER,
        &user.id.to_string(),
    )
    .await?;
    let u = sqlx::query!(
        "SELECT username, email, totp_secret, totp_enabled_at FROM users WHERE id = $1",
        user.id
    )
    .fetch_one(&state.db)
    .await?;
    if u.totp_enabled_at.is_some() {
        return Err(AppError::Conflict {
            code: "two_factor_enabled",
            message: "Two-factor authentication is already on.".into(),
        });
    }
    let Some(secret) = u.totp_secret else {
        return Err(AppError::field("code", "Start with /api/auth/2fa/setup/."));
    };
    if !check_code(&state, user.id, &secret, &u.email, &body.code).await? {
        return Err(AppError::field("code", "The code is wrong or expired."));
    }
    ratelimit::clear(
        &state,
        &ratelimit::TWO_FACTOR_PER_USER,
        &user.id.to_string(),
    )
    .await?;
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let t = tokens::random_token().to_lowercase();
            let alnum: String = t
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(10)
                .collect();
            alnum
        })
        .collect();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE users SET totp_enabled_at = now() WHERE id = $1",
        user.id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user.id)
        .execute(&mut *tx)
        .await?;
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| tokens::token_hash(c)).collect();
    sqlx::query!(
        "INSERT INTO recovery_codes (code_hash, user_id) SELECT h, $2 FROM UNNEST($1::bytea[]) AS t(h)",
        &hashes,
        user.id
    )
    .execute(&mut *tx)
    .await?;
    let ids = send_security_alert(
        &mut tx,
        user.id,
        &u.username,
        &u.email,
        "Two-factor authentication was turned on for your Watch Party account.",
    )
    .await?;
    tx.commit().await?;
    state.relay(&ids).await;
    let shown = codes
        .into_iter()
        .map(|c| format!("{}-{}", &c[..5], &c[5..]))
        .collect();
    Ok(ApiResponse::ok(RecoveryCodes {
        recovery_codes: shown,
    })
    .message("Two-factor authentication is on. Keep the recovery codes somewhere safe."))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DisableRequest {
    /// The account password; or give `code`.
    pub password: Option<String>,
    /// A current code or a recovery code.
    pub code: Option<String>,
}

/// Turns 2FA off, proven by the password or a code. The owner is told by email.
#[utoipa::path(post, path = "/auth/2fa/disable/", tag = "two-factor", security(("bearer" = [])), request_body = DisableRequest,
    responses((status = 200, body = inline(Envelope<serde_json::Value>)), (status = 400, body = crate::error::ErrorBody),
              (status = 409, description = "`two_factor_disabled`: it is not on", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn disable(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<DisableRequest>,
) -> AppResult<ApiResponse<serde_json::Value>> {
    ratelimit::hit(
        &state,
        &ratelimit::TWO_FACTOR_PER_USER,
        &user.id.to_string(),
    )
    .await?;
    let u = sqlx::query!(
        "SELECT username, email, password_hash, totp_secret, totp_enabled_at FROM users WHERE id = $1",
        user.id
    )
    .fetch_one(&state.db)
    .await?;
    let (Some(secret), Some(_)) = (u.totp_secret, u.totp_enabled_at) else {
        return Err(AppError::Conflict {
            code: "two_factor_disabled",
            message: "Two-factor authentication is not on.".into(),
        });
    };
    let proven = match (body.password, body.code) {
        (Some(p), _) => password::verify(p, Some(u.password_hash)).await?,
        (None, Some(c)) => {
            check_code(&state, user.id, &secret, &u.email, &c).await?
                || use_recovery_code(&state, user.id, &c).await?
        }
        (None, None) => return Err(AppError::field("password", "Give the password or a code.")),
    };
    if !proven {
        return Err(AppError::field(
            "password",
            "The password or code is wrong.",
        ));
    }
    ratelimit::clear(
        &state,
        &ratelimit::TWO_FACTOR_PER_USER,
        &user.id.to_string(),
    )
    .await?;
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL WHERE id = $1",
        user.id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user.id)
        .execute(&mut *tx)
        .await?;
    let ids = send_security_alert(
        &mut tx,
        user.id,
        &u.username,
        &u.email,
        "Two-factor authentication was turned off for your Watch Party account.",
    )
    .await?;
    tx.commit().await?;
    state.relay(&ids).await;
    Ok(ApiResponse::ok(serde_json::json!({})).message("Two-factor authentication is off."))
}

/// Creates a login challenge (after a correct password) valid for 5 minutes, once.
pub(crate) async fn issue_challenge(state: &AppState, user: Uuid) -> AppResult<String> {
    let token = tokens::random_token();
    let mut conn = state.redis.clone();
    redis::cmd("SET")
        .arg(challenge_key(state, &token))
        .arg(user.to_string())
        .arg("EX")
        .arg(CHALLENGE_SECS)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(token)
}

fn challenge_key(state: &AppState, token: &str) -> String {
    format!(
        "{}:2fa-challenge:{}",
        state.config.redis_prefix,
        hex::encode(tokens::token_hash(token))
    )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TwoFactorLogin {
    pub challenge_token: String,
    /// A current code or a recovery code.
    pub code: String,
}

/// Completes a login that answered `requires_2fa` with a code (or a recovery code).
#[utoipa::path(post, path = "/auth/2fa/login/", tag = "two-factor", request_body = TwoFactorLogin,
    responses(
        (status = 200, body = inline(Envelope<AuthTokens>)),
        (status = 400, description = "`code` wrong", body = crate::error::ErrorBody),
        (status = 401, description = "`invalid_token`: challenge unknown or expired", body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Json(body): Json<TwoFactorLogin>,
) -> AppResult<ApiResponse<AuthTokens>> {
    let key = challenge_key(&state, body.challenge_token.trim());
    let mut conn = state.redis.clone();
    let user: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
    let user: Uuid = user.and_then(|u| u.parse().ok()).ok_or_else(|| {
        AppError::unauthenticated(
            "invalid_token",
            "The challenge is invalid or expired. Sign in again.",
        )
    })?;
    ratelimit::hit(&state, &ratelimit::TWO_FACTOR_PER_USER, &user.to_string()).await?;
    let u = sqlx::query!(
        "SELECT email, totp_secret, status, suspended_until FROM users WHERE id = $1",
        user
    )
    .fetch_one(&state.db)
    .await?;
    crate::auth::account_may_act(&u.status, u.suspended_until)?;
    let secret = u
        .totp_secret
        .ok_or_else(|| AppError::unauthenticated("invalid_token", "Sign in again."))?;
    let ok = check_code(&state, user, &secret, &u.email, &body.code).await?
        || use_recovery_code(&state, user, &body.code).await?;
    if !ok {
        return Err(AppError::field("code", "The code is wrong or expired."));
    }
    ratelimit::clear(&state, &ratelimit::TWO_FACTOR_PER_USER, &user.to_string()).await?;
    // The challenge works once.
    let removed: u32 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
    if removed == 0 {
        return Err(AppError::unauthenticated(
            "invalid_token",
            "The challenge was already used.",
        ));
    }
    let mut tx = state.db.begin().await?;
    let pair = start_session(&state, &mut tx, user, &headers, &ip).await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(auth_tokens(&state, user, pair).await?))
}
