//! Authentication and authorization: the `AuthUser` extractor, roles, and the helpers
//! handlers use (`require_role`, `owner_or_staff`).

pub mod password;

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use uuid::Uuid;

use crate::{error::AppError, state::AppState};

pub use wp_core::account::{Actor, Role, account_may_act, tokens};

/// The authenticated caller (the extractor around [`Actor`]). Extracting it checks the
/// bearer token, then (one indexed query) that the session is live and the account
/// active, so a revoked session or a suspended account stops working at once, not when
/// the token expires.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Actor);

impl std::ops::Deref for AuthUser {
    type Target = Actor;
    fn deref(&self) -> &Actor {
        &self.0
    }
}

impl AuthUser {
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
    Ok(AuthUser(
        wp_core::account::authenticate(&state.db, user, session).await?,
    ))
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
