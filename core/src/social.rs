//! The social graph as other aggregates see it: how a user is shown in lists.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user as every list, party, chat, comment and video shows them: one shape
/// everywhere. Reads from the columns `id`, `username`, `display_name` and `avatar_path`
/// (`#[sqlx(flatten)]` in a row); a query that leaves `avatar_path` out fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserSummary {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    /// The avatar as an absolute URL an `<img>` can load without a header (it names
    /// the picture's version, so a new picture is a new URL); null without one.
    #[serde(serialize_with = "wp_shared::links::serialize_absolute")]
    pub avatar_url: Option<String>,
}

impl UserSummary {
    /// A summary from the user's columns (`avatar_path` as stored).
    pub fn new(
        id: Uuid,
        username: String,
        display_name: String,
        avatar_path: Option<&str>,
    ) -> Self {
        Self {
            id,
            username,
            display_name,
            avatar_url: avatar_path.map(|p| avatar_link(id, p)),
        }
    }
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for UserSummary {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        let path: Option<String> = row.try_get("avatar_path")?;
        Ok(Self::new(
            row.try_get("id")?,
            row.try_get("username")?,
            row.try_get("display_name")?,
            path.as_deref(),
        ))
    }
}

/// The avatar's link (under the public URL): `/api/users/{id}/avatar/?v=` and the
/// picture's version, [`crate::stored_version`].
pub fn avatar_link(user: Uuid, avatar_path: &str) -> String {
    format!(
        "/api/users/{user}/avatar/?v={}",
        crate::stored_version(avatar_path)
    )
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
