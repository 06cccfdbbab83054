//! Social groups (seed item 8): the model, the one rule for who sees a group, and
//! membership — join (public), request and approval (private), invitations, leave with
//! hand-over, roles, removal and bans.
//!
//! **Who sees a group** ([`VISIBLE`]): anyone, when it is public; otherwise its members,
//! the users it invited, and staff. Everyone else gets 404 for it and never finds it in a
//! list. **Who may do what**: admins edit and delete the group and change roles; admins
//! and moderators invite, decide join requests, remove and ban (a moderator only plain
//! members); any member leaves. The last admin to leave hands the group to the longest-
//! standing moderator, else member; the last member to leave ends the group.
//!
//! Every change takes the group's row lock first, so `member_count` (kept with the rows
//! in the same transaction) is exact under concurrency, and role checks see the roles as
//! they are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{account::Actor, social::UserSummary};

mod membership;
pub use membership::*;

pub const NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 2000;
pub const CATEGORY_MAX: usize = 50;
pub const MESSAGE_MAX: usize = 500;

crate::text_enum! {
    /// A member's role in a group, lowest first.
    pub enum GroupRole as "group role" {
        Member = "member",
        Moderator = "moderator",
        Admin = "admin",
    }
}

/// A group as one caller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// The group's first admin.
    pub admin: UserSummary,
    pub is_private: bool,
    pub category: String,
    pub member_count: i32,
    /// The caller's role, if a member.
    pub my_role: Option<GroupRole>,
    /// The caller has a pending invitation (join to accept).
    pub invited: bool,
    /// The caller has asked to join and waits for a decision.
    pub requested: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: Uuid,
    name: String,
    description: String,
    admin_id: Uuid,
    admin_username: String,
    admin_display_name: String,
    admin_avatar_path: Option<String>,
    is_private: bool,
    category: String,
    member_count: i32,
    my_role: Option<GroupRole>,
    invited: bool,
    requested: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<GroupRow> for Group {
    fn from(r: GroupRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            admin: UserSummary::new(
                r.admin_id,
                r.admin_username,
                r.admin_display_name,
                r.admin_avatar_path.as_deref(),
            ),
            is_private: r.is_private,
            category: r.category,
            member_count: r.member_count,
            my_role: r.my_role,
            invited: r.invited,
            requested: r.requested,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `$1`: the caller, `$2`: whether the caller is staff.
const SELECT: &str = "SELECT g.id, g.name, g.description, g.admin_id, u.username AS admin_username,
        u.display_name AS admin_display_name, u.avatar_path AS admin_avatar_path, g.is_private, g.category, g.member_count,
        m.role AS my_role,
        EXISTS (SELECT 1 FROM group_invitations i WHERE i.group_id = g.id AND i.user_id = $1) AS invited,
        EXISTS (SELECT 1 FROM group_join_requests r WHERE r.group_id = g.id AND r.user_id = $1) AS requested,
        g.created_at, g.updated_at
   FROM social_groups g
   JOIN users u ON u.id = g.admin_id
   LEFT JOIN group_members m ON m.group_id = g.id AND m.user_id = $1";

/// The rule: who may see a group (with [`SELECT`]'s joins and parameters).
const VISIBLE: &str = "(NOT g.is_private OR m.user_id IS NOT NULL OR $2
        OR EXISTS (SELECT 1 FROM group_invitations i WHERE i.group_id = g.id AND i.user_id = $1))";

/// Why a group action is refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No such group, or one the caller may not see (or no such user for the action).
    #[error("Not found.")]
    NotFound,
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("You are banned from this group.")]
    Banned,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The action cannot be done in the group's state; `code` says why.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type GroupResult<T> = Result<T, GroupError>;

fn invalid(field: &'static str, message: impl Into<String>) -> GroupError {
    GroupError::Invalid {
        field,
        message: message.into(),
    }
}

/// A trimmed text of at most `max` characters (`min` 1: not empty).
fn text(field: &'static str, value: &str, min: usize, max: usize) -> GroupResult<String> {
    crate::trimmed_text(value, min, max).map_err(|m| invalid(field, m))
}

/// A new group.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// At most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    #[serde(default)]
    pub is_private: bool,
    /// At most 50 characters.
    #[serde(default)]
    #[schema(max_length = 50)]
    pub category: String,
}

impl NewGroup {
    pub fn checked(self) -> GroupResult<Self> {
        Ok(Self {
            name: text("name", &self.name, 1, NAME_MAX)?,
            description: text("description", &self.description, 0, DESCRIPTION_MAX)?,
            is_private: self.is_private,
            category: text("category", &self.category, 0, CATEGORY_MAX)?,
        })
    }
}

/// Changes to a group (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    pub is_private: Option<bool>,
    #[schema(max_length = 50)]
    pub category: Option<String>,
}

impl GroupPatch {
    pub fn checked(self) -> GroupResult<Self> {
        Ok(Self {
            name: self
                .name
                .map(|v| text("name", &v, 1, NAME_MAX))
                .transpose()?,
            description: self
                .description
                .map(|v| text("description", &v, 0, DESCRIPTION_MAX))
                .transpose()?,
            is_private: self.is_private,
            category: self
                .category
                .map(|v| text("category", &v, 0, CATEGORY_MAX))
                .transpose()?,
        })
    }
}

/// A group `me` may see, with `me`'s role; `NotFound` otherwise.
pub async fn visible(conn: &mut PgConnection, me: &Actor, id: Uuid) -> GroupResult<Group> {
    sqlx::query_as::<_, GroupRow>(&format!("{SELECT} WHERE g.id = $3 AND {VISIBLE}"))
        .bind(me.id)
        .bind(me.is_staff())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(Group::from)
        .ok_or(GroupError::NotFound)
}

/// The groups `me` is a member of: among `ids`, or all of them (`None`), by name.
pub async fn memberships(
    conn: &mut PgConnection,
    me: &Actor,
    ids: Option<&[Uuid]>,
) -> GroupResult<Vec<Group>> {
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE m.user_id IS NOT NULL AND ($3::uuid[] IS NULL OR g.id = ANY($3))
          ORDER BY lower(g.name), g.id LIMIT 1000"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Group::from).collect())
}

/// [`visible`] under the group's row lock (taken first).
async fn locked(conn: &mut PgConnection, me: &Actor, id: Uuid) -> GroupResult<Group> {
    sqlx::query("SELECT 1 FROM social_groups WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(GroupError::NotFound)?;
    visible(conn, me, id).await
}

/// `PermissionDenied` unless `me` is at least `min` in `g` (staff always pass).
pub fn require(g: &Group, me: &Actor, min: GroupRole) -> GroupResult<()> {
    if me.is_staff() || g.my_role.is_some_and(|r| r >= min) {
        return Ok(());
    }
    Err(GroupError::PermissionDenied(match min {
        GroupRole::Admin => "Only the group's admins may do this.",
        GroupRole::Moderator => "Only the group's admins and moderators may do this.",
        GroupRole::Member => "Join the group first.",
    }))
}

/// Checks, before a request body is read, that `me` is at least `min` in group `id`.
pub async fn may(db: &PgPool, me: &Actor, id: Uuid, min: GroupRole) -> GroupResult<()> {
    let mut conn = db.acquire().await?;
    let g = visible(&mut conn, me, id).await?;
    require(&g, me, min)
}

/// Creates a group with `me` as its admin.
pub async fn create(db: &PgPool, me: &Actor, new: &NewGroup) -> GroupResult<Group> {
    let mut tx = db.begin().await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO social_groups (id, name, description, admin_id, is_private, category)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&new.name)
    .bind(&new.description)
    .bind(me.id)
    .bind(new.is_private)
    .bind(&new.category)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, 'admin')")
        .bind(id)
        .bind(me.id)
        .execute(&mut *tx)
        .await?;
    let g = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(g)
}

/// Filters of the group list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Words of the name or description.
    pub search: Option<String>,
    pub category: Option<String>,
    /// Only the caller's groups.
    pub mine: bool,
}

/// A page of the groups `me` may see, largest first, then newest; and how many in all.
pub async fn list(
    conn: &mut PgConnection,
    me: &Actor,
    f: &ListFilter,
    limit: i64,
    offset: i64,
) -> GroupResult<(Vec<Group>, i64)> {
    let search = crate::contains_pattern(f.search.as_deref());
    let cond = format!(
        "{VISIBLE} AND ($3::text IS NULL OR g.name ILIKE $3 OR g.description ILIKE $3)
           AND ($4::text IS NULL OR g.category = $4)
           AND (NOT $5 OR m.user_id IS NOT NULL)"
    );
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM social_groups g
           LEFT JOIN group_members m ON m.group_id = g.id AND m.user_id = $1
          WHERE {cond}"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(&search)
    .bind(&f.category)
    .bind(f.mine)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<GroupRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE {cond} ORDER BY g.member_count DESC, g.created_at DESC, g.id LIMIT $6 OFFSET $7"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(&search)
    .bind(&f.category)
    .bind(f.mine)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows.into_iter().map(Group::from).collect(), count))
}

/// Edits a group (admins, staff).
pub async fn update(db: &PgPool, me: &Actor, id: Uuid, p: &GroupPatch) -> GroupResult<Group> {
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    require(&g, me, GroupRole::Admin)?;
    sqlx::query(
        "UPDATE social_groups SET name = COALESCE($2, name), description = COALESCE($3, description),
                is_private = COALESCE($4, is_private), category = COALESCE($5, category),
                updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.is_private)
    .bind(&p.category)
    .execute(&mut *tx)
    .await?;
    let g = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(g)
}

/// Deletes a group (admins, staff).
pub async fn delete(db: &PgPool, me: &Actor, id: Uuid) -> GroupResult<()> {
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    require(&g, me, GroupRole::Admin)?;
    sqlx::query("DELETE FROM social_groups WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_groups_are_trimmed_and_checked() {
        let g = NewGroup {
            name: "  Film club ".into(),
            description: String::new(),
            is_private: false,
            category: " movies ".into(),
        }
        .checked()
        .unwrap();
        assert_eq!(
            (g.name.as_str(), g.category.as_str()),
            ("Film club", "movies")
        );
        for (name, category, field) in [(" ", "", "name"), ("x", &*"c".repeat(51), "category")] {
            let e = NewGroup {
                name: name.into(),
                description: String::new(),
                is_private: false,
                category: category.into(),
            }
            .checked()
            .unwrap_err();
            assert!(matches!(e, GroupError::Invalid { field: f, .. } if f == field));
        }
        let e = GroupPatch {
            name: Some("n".repeat(101)),
            ..Default::default()
        }
        .checked()
        .unwrap_err();
        assert!(matches!(e, GroupError::Invalid { field: "name", .. }));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(GroupRole::Admin > GroupRole::Moderator);
        assert!(GroupRole::Moderator > GroupRole::Member);
        assert!("owner".parse::<GroupRole>().is_err());
    }
}
