//! Accounts: roles, the authenticated actor, access and scoped tokens, and the check
//! that a session is live and its account may act (used by every HTTP request and
//! every socket before the upgrade).

pub mod staff;
pub mod tickets;
pub mod tokens;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

crate::text_enum! {
    /// A user's role, lowest first.
    pub enum Role as "role" {
        User = "user",
        Moderator = "moderator",
        Admin = "admin",
    }
}

crate::text_enum! {
    /// Whether an account may act.
    pub enum AccountStatus as "account status" {
        Active = "active",
        Suspended = "suspended",
        Deleted = "deleted",
    }
}

/// Who is acting: a signed-in user on one of their sessions.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: Uuid,
    pub session_id: Uuid,
    pub username: String,
    pub role: Role,
}

impl Actor {
    /// Moderators and admins.
    pub fn is_staff(&self) -> bool {
        self.role >= Role::Moderator
    }

    /// The rank rule: staff act only on accounts of a lower role than their own.
    pub fn outranks(&self, role: Role) -> bool {
        self.is_staff() && role < self.role
    }
}

/// Why a caller is not let in.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("The access token is invalid.")]
    InvalidToken,
    #[error("The access token has expired.")]
    TokenExpired,
    /// A scoped link (a download link) that does not verify.
    #[error("The link is invalid or expired.")]
    InvalidLink,
    #[error("This session has been signed out.")]
    SessionRevoked,
    #[error("This account is suspended.")]
    Suspended { until: Option<DateTime<Utc>> },
    #[error("This account no longer exists.")]
    Deleted,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AuthError {
    /// The stable code clients see (`invalid_token`, `token_expired`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidToken | Self::InvalidLink => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::SessionRevoked => "session_revoked",
            Self::Suspended { .. } => "account_suspended",
            Self::Deleted => "account_deleted",
            Self::Db(_) | Self::Internal(_) => "internal_error",
        }
    }

    /// The human text clients see.
    pub fn message(&self) -> String {
        match self {
            Self::Suspended { until: Some(t) } => {
                format!("This account is suspended until {}.", t.to_rfc3339())
            }
            other => other.to_string(),
        }
    }

    /// 403 for a suspension (authenticated but not allowed), 401 for the rest of the
    /// client's errors.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Suspended { .. })
    }
}

/// Checks an access token and that its session is live and its account may act;
/// returns the caller and when the token expires (Unix ms).
pub async fn authenticate_token(
    db: &PgPool,
    config: &wp_shared::Config,
    token: &str,
) -> Result<(Actor, i64), AuthError> {
    let claims = tokens::verify_access(config, token)?;
    let actor = authenticate(db, claims.sub, claims.sid).await?;
    Ok((actor, claims.exp.saturating_mul(1000)))
}

/// Checks that `session` of `user` is live and the account may act (one indexed
/// query, so a revoked session or a suspended account stops working at once, not when
/// the token expires).
pub async fn authenticate(db: &PgPool, user: Uuid, session: Uuid) -> Result<Actor, AuthError> {
    let row = sqlx::query!(
        r#"SELECT u.username, u.role, u.status, u.suspended_until,
                  s.revoked_at, s.expires_at, s.last_used_at
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND u.id = $2"#,
        session,
        user
    )
    .fetch_optional(db)
    .await?
    .ok_or(AuthError::InvalidToken)?;
    if row.revoked_at.is_some() || row.expires_at < Utc::now() {
        return Err(AuthError::SessionRevoked);
    }
    account_may_act(&row.status, row.suspended_until)?;
    if Utc::now() - row.last_used_at > USE_RECORDED_EVERY {
        record_use(db.clone(), session);
    }
    Ok(Actor {
        id: user,
        session_id: session,
        username: row.username,
        role: row.role.parse().map_err(anyhow::Error::from)?,
    })
}

/// How stale a session's `last_used_at` may get before a request records its use.
const USE_RECORDED_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Records that a session was used, off the request's path (a spawned, conditional
/// update: several requests at once write it once; a failure only loses the stamp).
fn record_use(db: PgPool, session: Uuid) {
    tokio::spawn(async move {
        let r = sqlx::query(
            "UPDATE sessions SET last_used_at = now()
              WHERE id = $1 AND last_used_at < now() - interval '1 minute'",
        )
        .bind(session)
        .execute(&db)
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, %session, "could not record the session's use");
        }
    });
}

/// `Suspended` while a suspension runs; `Deleted` for a deleted account.
pub fn account_may_act(
    status: &str,
    suspended_until: Option<DateTime<Utc>>,
) -> Result<(), AuthError> {
    match status.parse::<AccountStatus>() {
        Ok(AccountStatus::Active) => Ok(()),
        Ok(AccountStatus::Suspended) if suspended_until.is_some_and(|t| t <= Utc::now()) => Ok(()),
        Ok(AccountStatus::Suspended) => Err(AuthError::Suspended {
            until: suspended_until,
        }),
        Ok(AccountStatus::Deleted) => Err(AuthError::Deleted),
        Err(e) => Err(AuthError::Internal(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_unknown_ones_refused() {
        assert!(Role::Admin > Role::Moderator && Role::Moderator > Role::User);
        assert_eq!("moderator".parse::<Role>().unwrap(), Role::Moderator);
        assert!("superuser".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }

    #[test]
    fn a_suspension_that_ran_out_lets_the_account_act() {
        let past = Utc::now() - chrono::Duration::minutes(1);
        let future = Utc::now() + chrono::Duration::minutes(1);
        assert!(account_may_act("active", None).is_ok());
        assert!(account_may_act("suspended", Some(past)).is_ok());
        assert!(matches!(
            account_may_act("suspended", Some(future)),
            Err(AuthError::Suspended { .. })
        ));
        assert!(matches!(
            account_may_act("deleted", None),
            Err(AuthError::Deleted)
        ));
        assert!(matches!(
            account_may_act("weird", None),
            Err(AuthError::Internal(_))
        ));
    }
}
