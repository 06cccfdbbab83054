//! Accounts as staff see them (seed item 10): the user directory with its filters, and
//! the actions staff take on accounts one at a time or in bulk. The rank rule is
//! [`Actor::outranks`]: staff act only on accounts of a lower role than their own.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AccountStatus, Actor, Role};

/// Accounts one bulk call may name.
pub const BULK_MAX: usize = 100;

/// An account as staff see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct StaffUserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub email_verified: bool,
    pub role: Role,
    pub status: AccountStatus,
    pub suspended_reason: Option<String>,
    pub suspended_until: Option<DateTime<Utc>>,
    /// Whether the owner asked for deletion (it happens after the grace period).
    pub deletion_requested_at: Option<DateTime<Utc>>,
    pub has_2fa: bool,
    pub locale: String,
    /// The country of the locale's region (`en-GB` → `GB`), if it has one.
    pub country: Option<String>,
    pub timezone: String,
    pub created_at: DateTime<Utc>,
    /// The last sign-in (the directory's "active" filters use it).
    pub last_login_at: Option<DateTime<Utc>>,
}

const SELECT: &str = "SELECT u.id, u.username, u.display_name, u.email,
        u.email_verified_at IS NOT NULL AS email_verified, u.role, u.status, u.suspended_reason,
        u.suspended_until, u.deletion_requested_at, u.totp_enabled_at IS NOT NULL AS has_2fa,
        u.locale, NULLIF(upper(split_part(replace(u.locale, '_', '-'), '-', 2)), '') AS country,
        u.timezone, u.created_at, u.last_login_at
   FROM users u";

crate::text_enum! {
    /// The order of the directory.
    pub enum UserOrdering as "user ordering" {
        Newest = "-created_at",
        Oldest = "created_at",
        Username = "username",
        UsernameDesc = "-username",
        LastLogin = "last_login_at",
        RecentLogin = "-last_login_at",
    }
}

/// The directory's filters.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Part of the username, display name or email.
    pub search: Option<String>,
    pub role: Vec<Role>,
    pub status: Vec<AccountStatus>,
    pub verified: Option<bool>,
    pub has_2fa: Option<bool>,
    /// A two-letter region code, upper case.
    pub country: Option<String>,
    pub joined_after: Option<DateTime<Utc>>,
    pub joined_before: Option<DateTime<Utc>>,
    pub active_after: Option<DateTime<Utc>>,
    pub active_before: Option<DateTime<Utc>>,
    pub ordering: Option<UserOrdering>,
}

impl UserFilter {
    /// The `WHERE` of the directory, with its parameters from `$1` to `$11`.
    pub const WHERE: &'static str = "($1::text IS NULL OR u.username ILIKE $1 OR u.display_name ILIKE $1 OR u.email ILIKE $1)
        AND (cardinality($2::text[]) = 0 OR u.role = ANY($2))
        AND (cardinality($3::text[]) = 0 OR u.status = ANY($3))
        AND ($4::bool IS NULL OR (u.email_verified_at IS NOT NULL) = $4)
        AND ($5::bool IS NULL OR (u.totp_enabled_at IS NOT NULL) = $5)
        AND ($6::text IS NULL OR upper(split_part(replace(u.locale, '_', '-'), '-', 2)) = $6)
        AND ($7::timestamptz IS NULL OR u.created_at >= $7) AND ($8::timestamptz IS NULL OR u.created_at < $8)
        AND ($9::timestamptz IS NULL OR u.last_login_at >= $9) AND ($10::timestamptz IS NULL OR u.last_login_at < $10)";

    /// `ORDER BY` of the directory (ties broken by id, so pages never overlap).
    pub fn order(&self) -> &'static str {
        match self.ordering.unwrap_or(UserOrdering::Newest) {
            UserOrdering::Newest => "u.created_at DESC, u.id DESC",
            UserOrdering::Oldest => "u.created_at, u.id",
            UserOrdering::Username => "lower(u.username), u.id",
            UserOrdering::UsernameDesc => "lower(u.username) DESC, u.id DESC",
            UserOrdering::LastLogin => "u.last_login_at NULLS FIRST, u.id",
            UserOrdering::RecentLogin => "u.last_login_at DESC NULLS LAST, u.id DESC",
        }
    }

    /// Binds `$1`..`$10` of [`Self::WHERE`] to `q`.
    pub fn bind<'q, O>(
        &'q self,
        q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        q.bind(crate::contains_pattern(self.search.as_deref()))
            .bind(self.role.iter().map(|r| r.as_str()).collect::<Vec<_>>())
            .bind(self.status.iter().map(|s| s.as_str()).collect::<Vec<_>>())
            .bind(self.verified)
            .bind(self.has_2fa)
            .bind(&self.country)
            .bind(self.joined_after)
            .bind(self.joined_before)
            .bind(self.active_after)
            .bind(self.active_before)
    }
}

/// A page of the directory and how many accounts match in all.
pub async fn list(
    conn: &mut PgConnection,
    f: &UserFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<StaffUserView>, i64)> {
    let (count,): (i64,) = f
        .bind(sqlx::query_as(&format!(
            "SELECT count(*) FROM users u WHERE {}",
            UserFilter::WHERE
        )))
        .fetch_one(&mut *conn)
        .await?;
    let rows = f
        .bind(sqlx::query_as(&format!(
            "{SELECT} WHERE {} ORDER BY {} LIMIT $11 OFFSET $12",
            UserFilter::WHERE,
            f.order()
        )))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    Ok((rows, count))
}

/// One account as staff see it.
pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<StaffUserView>> {
    sqlx::query_as(&format!("{SELECT} WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

crate::text_enum! {
    /// What a bulk call does to each account.
    pub enum BulkAction as "bulk action" {
        Suspend = "suspend",
        Unsuspend = "unsuspend",
        /// Marks the email address verified.
        Verify = "verify",
        SetRole = "set_role",
        /// Erases the account at the next purge; it cannot sign in meanwhile.
        Delete = "delete",
    }
}

impl BulkAction {
    /// The lowest role that may take this action.
    pub fn needs(self) -> Role {
        match self {
            BulkAction::Suspend | BulkAction::Unsuspend | BulkAction::Verify => Role::Moderator,
            BulkAction::SetRole | BulkAction::Delete => Role::Admin,
        }
    }

    /// The audit log's name of the action.
    pub fn audit_name(self) -> &'static str {
        match self {
            BulkAction::Suspend => "user.suspend",
            BulkAction::Unsuspend => "user.unsuspend",
            BulkAction::Verify => "user.verify",
            BulkAction::SetRole => "user.role",
            BulkAction::Delete => "user.delete",
        }
    }
}

/// A bulk call.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: BulkAction,
    /// 1 to 100 distinct accounts.
    #[schema(min_items = 1, max_items = 100)]
    pub user_ids: Vec<Uuid>,
    /// With `suspend` (required, 1 to 500 characters, shown to the user) and `delete`
    /// (for the record).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// With `suspend`: when it ends by itself (RFC 3339, in the future); absent = until
    /// lifted.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// With `set_role`.
    #[serde(default)]
    pub role: Option<Role>,
}

/// Why a bulk call as a whole is refused: the field and the message.
pub type BulkInvalid = (&'static str, String);

impl BulkRequest {
    /// Trimmed and checked at `now` (the fields each action needs, no others).
    pub fn checked(self, now: DateTime<Utc>) -> Result<Self, BulkInvalid> {
        if self.user_ids.is_empty() || self.user_ids.len() > BULK_MAX {
            return Err(("user_ids", format!("1 to {BULK_MAX} accounts.")));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.user_ids.iter().find(|id| !seen.insert(**id)) {
            return Err(("user_ids", format!("{dup} is named twice.")));
        }
        let reason = match self.reason.as_deref().map(str::trim) {
            Some(r) if r.chars().count() > 500 => {
                return Err(("reason", "At most 500 characters.".into()));
            }
            Some("") | None => None,
            Some(r) => Some(r.to_owned()),
        };
        match self.action {
            BulkAction::Suspend if reason.is_none() => {
                return Err(("reason", "Give a reason of 1 to 500 characters.".into()));
            }
            BulkAction::SetRole if self.role.is_none() => {
                return Err(("role", "One of user, moderator, admin.".into()));
            }
            _ => {}
        }
        if self.action != BulkAction::SetRole && self.role.is_some() {
            return Err(("role", "Only with set_role.".into()));
        }
        if self.until.is_some() && self.action != BulkAction::Suspend {
            return Err(("until", "Only with suspend.".into()));
        }
        if self.until.is_some_and(|u| u <= now) {
            return Err(("until", "Must be in the future.".into()));
        }
        if reason.is_some() && !matches!(self.action, BulkAction::Suspend | BulkAction::Delete) {
            return Err(("reason", "Only with suspend or delete.".into()));
        }
        Ok(Self { reason, ..self })
    }
}

/// Why one account of a bulk call was not changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: &'static str,
}

const fn refusal(code: &'static str, message: &'static str) -> Refusal {
    Refusal { code, message }
}

/// Whether `staff` may take `action` on an account of `role` and `status` (and
/// `role_to`, for `set_role`); the rank rule and the states each action leaves from.
pub fn check(
    staff: &Actor,
    target: Uuid,
    role: Role,
    status: AccountStatus,
    action: BulkAction,
) -> Result<(), Refusal> {
    if target == staff.id || !staff.outranks(role) {
        return Err(refusal(
            "permission_denied",
            "You can only act on accounts of a lower role than yours.",
        ));
    }
    match (action, status) {
        (_, AccountStatus::Deleted) => Err(refusal("not_found", "This account no longer exists.")),
        (BulkAction::Unsuspend, s) if s != AccountStatus::Suspended => {
            Err(refusal("not_suspended", "This account is not suspended."))
        }
        _ => Ok(()),
    }
}

/// What applying an action did that the adapter finishes after commit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The account's sessions must stop at once.
    pub sign_out: bool,
    /// The account's role changed: its open sockets are checked again (a staff socket
    /// closes when its user is no longer staff).
    pub role_changed: bool,
}

/// Applies `action` to account `id` in `conn` (checked by [`check`]); a suspension is
/// applied by the adapter, which also emails its owner. `deletion_grace`: a deletion is
/// dated that far back, so the next purge erases it.
pub async fn apply(
    conn: &mut PgConnection,
    id: Uuid,
    r: &BulkRequest,
    deletion_grace: TimeDelta,
) -> sqlx::Result<Applied> {
    match r.action {
        BulkAction::Suspend => Ok(Applied {
            sign_out: true,
            ..Applied::default()
        }),
        BulkAction::Unsuspend => {
            sqlx::query(
                "UPDATE users SET status = 'active', suspended_reason = NULL, suspended_until = NULL WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(Applied::default())
        }
        BulkAction::Verify => {
            sqlx::query(
                "UPDATE users SET email_verified_at = COALESCE(email_verified_at, now()) WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(Applied::default())
        }
        BulkAction::SetRole => {
            sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
                .bind(id)
                .bind(r.role.unwrap_or(Role::User))
                .execute(&mut *conn)
                .await?;
            Ok(Applied {
                role_changed: true,
                ..Applied::default()
            })
        }
        BulkAction::Delete => {
            // Suspended meanwhile, so signing in (which would cancel a deletion the
            // owner asked for) is refused until the purge erases it.
            sqlx::query(
                "UPDATE users SET status = 'suspended', suspended_reason = 'This account was deleted by the Watch Party team.',
                        suspended_until = NULL, deletion_requested_at = now() - $2
                  WHERE id = $1",
            )
            .bind(id)
            .bind(deletion_grace)
            .execute(&mut *conn)
            .await?;
            Ok(Applied {
                sign_out: true,
                ..Applied::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: BulkAction) -> BulkRequest {
        BulkRequest {
            action,
            user_ids: vec![Uuid::now_v7()],
            reason: None,
            until: None,
            role: None,
        }
    }

    #[test]
    fn bulk_calls_name_the_field_they_miss() {
        let now = Utc::now();
        let field = |r: BulkRequest| r.checked(now).unwrap_err().0;
        assert_eq!(field(req(BulkAction::Suspend)), "reason");
        assert_eq!(field(req(BulkAction::SetRole)), "role");
        let mut r = req(BulkAction::Verify);
        r.user_ids = vec![];
        assert_eq!(field(r), "user_ids");
        let mut r = req(BulkAction::Verify);
        r.user_ids = (0..=BULK_MAX).map(|_| Uuid::now_v7()).collect();
        assert_eq!(field(r), "user_ids");
        let mut r = req(BulkAction::Verify);
        r.user_ids = vec![r.user_ids[0], r.user_ids[0]];
        assert_eq!(field(r), "user_ids");
        let mut r = req(BulkAction::Suspend);
        r.reason = Some("spam".into());
        r.until = Some(now - TimeDelta::hours(1));
        assert_eq!(field(r), "until");
        let mut r = req(BulkAction::Verify);
        r.role = Some(Role::Admin);
        assert_eq!(field(r), "role");
        let mut r = req(BulkAction::Suspend);
        r.reason = Some("  spam  ".into());
        assert_eq!(r.checked(now).unwrap().reason.as_deref(), Some("spam"));
    }

    #[test]
    fn staff_act_below_their_rank_only() {
        let staff = Actor {
            id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            username: "mod".into(),
            role: Role::Moderator,
        };
        let other = Uuid::now_v7();
        let ok = |role, status, action| check(&staff, other, role, status, action);
        assert!(ok(Role::User, AccountStatus::Active, BulkAction::Suspend).is_ok());
        assert_eq!(
            ok(Role::Moderator, AccountStatus::Active, BulkAction::Suspend)
                .unwrap_err()
                .code,
            "permission_denied"
        );
        assert_eq!(
            ok(Role::User, AccountStatus::Active, BulkAction::Unsuspend)
                .unwrap_err()
                .code,
            "not_suspended"
        );
        assert_eq!(
            ok(Role::User, AccountStatus::Deleted, BulkAction::Verify)
                .unwrap_err()
                .code,
            "not_found"
        );
        assert_eq!(
            check(
                &staff,
                staff.id,
                Role::User,
                AccountStatus::Active,
                BulkAction::Verify
            )
            .unwrap_err()
            .code,
            "permission_denied",
            "not on oneself"
        );
    }
}
