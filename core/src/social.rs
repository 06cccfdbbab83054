//! The social graph as other aggregates see it: how a user is shown in lists.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user as the social lists, parties and chat show them.
/// Reads from the columns `id`, `username`, `display_name` (`#[sqlx(flatten)]` in a row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
}

/// Whether either of the two blocked the other (`blocked_between` in SQL, the rule every
/// visibility check uses): neither then sees the other's things.
pub async fn blocked_between(conn: &mut PgConnection, a: Uuid, b: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT blocked_between($1, $2) AS "b!""#, a, b)
        .fetch_one(&mut *conn)
        .await
}

/// Whether `blocker` blocked `blocked` (the blocked user may not see the blocker's
/// profile and avatar).
pub async fn has_blocked(
    conn: &mut PgConnection,
    blocker: Uuid,
    blocked: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS(SELECT 1 FROM blocks WHERE blocker = $1 AND blocked = $2) AS "b!""#,
        blocker,
        blocked
    )
    .fetch_one(&mut *conn)
    .await
}
