//! Authentication and authorization: the `AuthUser` extractor, roles, and the helpers
//! handlers use (`require_role`, `owner_or_staff`).

pub mod password;
pub mod tokens;

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{error::AppError, state::AppState};

/// A user's role, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Moderator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Role {
        match s {
            "admin" => Role::Admin,
            "moderator" => Role::Moderator,
            _ => Role::User,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }
}

/// The authenticated caller. Extracting it checks the bearer token, then (one indexed
/// query) that the session is live and the account active, so a revoked session or a
/// suspended account stops working at once, not when the token expires.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub session_id: Uuid,
    pub username: String,
    pub role: Role,
}

impl AuthUser {
    pub fn is_staff(&self) -> bool {
        self.role >= Role::Moderator
    }

    /// 403 unless the caller has at least `role`.
    pub fn require_role(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "permission_denied",
                "You do not have permission to perform this action.",
            ))
        }
    }

    /// 403 unless the caller owns the object or is staff.
    pub fn owner_or_staff(&self, owner: Uuid) -> Result<(), AppError> {
        if self.id == owner || self.is_staff() {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "permission_denied",
                "You do not have permission to perform this action.",
            ))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let token = bearer(parts).ok_or_else(|| {
            AppError::unauthenticated(
                "not_authenticated",
                "Authentication credentials were not provided.",
            )
        })?;
        let claims = tokens::verify_access(&state.config, token)?;
        let user = authenticate(state, claims.sub, claims.sid).await?;
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// Checks that `session` of `user` is live and the account may act.
pub async fn authenticate(
    state: &AppState,
    user: Uuid,
    session: Uuid,
) -> Result<AuthUser, AppError> {
    let row = sqlx::query!(
        r#"SELECT u.username, u.role, u.status, u.suspended_until,
                  s.revoked_at, s.expires_at
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND u.id = $2"#,
        session,
        user
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| AppError::unauthenticated("invalid_token", "The access token is invalid."))?;
    if row.revoked_at.is_some() || row.expires_at < chrono::Utc::now() {
        return Err(AppError::unauthenticated(
            "session_revoked",
            "This session has been signed out.",
        ));
    }
    account_may_act(&row.status, row.suspended_until)?;
    Ok(AuthUser {
        id: user,
        session_id: session,
        username: row.username,
        role: Role::parse(&row.role),
    })
}

/// 403 `account_suspended` while a suspension runs; 401 for a deleted account.
pub fn account_may_act(
    status: &str,
    suspended_until: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<(), AppError> {
    match status {
        "active" => Ok(()),
        "suspended" if suspended_until.is_some_and(|t| t <= chrono::Utc::now()) => Ok(()),
        "suspended" => Err(AppError::forbidden(
            "account_suspended",
            match suspended_until {
                Some(t) => format!("This account is suspended until {}.", t.to_rfc3339()),
                None => "This account is suspended.".to_owned(),
            },
        )),
        _ => Err(AppError::unauthenticated(
            "account_deleted",
            "This account no longer exists.",
        )),
    }
}

/// The caller, when a valid token is present (endpoints that work for anyone but say
/// more to a signed-in user).
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if bearer(parts).is_none() {
            return Ok(Self(None));
        }
        AuthUser::from_request_parts(parts, state)
            .await
            .map(|u| Self(Some(u)))
    }
}

/// The client's IP address (the TCP peer; behind a proxy, ops set the proxy to pass
/// the peer through, e.g. with the PROXY protocol).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Self(ip))
    }
}
