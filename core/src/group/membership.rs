//! Membership of a group

use super::*;

/// Adds `user` as a member (no-op if already one); keeps `member_count`. The caller
/// holds the group's lock.
pub(super) async fn add_member(
    conn: &mut PgConnection,
    group: Uuid,
    user: Uuid,
) -> sqlx::Result<bool> {
    let added = sqlx::query(
        "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(user)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    sqlx::query("DELETE FROM group_invitations WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM group_join_requests WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .execute(&mut *conn)
        .await?;
    if added {
        sqlx::query("UPDATE social_groups SET member_count = member_count + 1 WHERE id = $1")
            .bind(group)
            .execute(&mut *conn)
            .await?;
    }
    Ok(added)
}

/// Removes `user`'s membership (their role, if they were a member); keeps
/// `member_count`, hands the group over when its last admin goes, and deletes the group
/// when nobody is left. The caller holds the group's lock.
pub(super) async fn drop_member(
    conn: &mut PgConnection,
    group: Uuid,
    user: Uuid,
) -> sqlx::Result<Departed> {
    let role: Option<GroupRole> = sqlx::query_scalar(
        "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2 RETURNING role",
    )
    .bind(group)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    if role.is_none() {
        return Ok(Departed::NotAMember);
    }
    let left: i32 = sqlx::query_scalar(
        "UPDATE social_groups SET member_count = member_count - 1 WHERE id = $1 RETURNING member_count",
    )
    .bind(group)
    .fetch_one(&mut *conn)
    .await?;
    if left == 0 {
        sqlx::query("DELETE FROM social_groups WHERE id = $1")
            .bind(group)
            .execute(&mut *conn)
            .await?;
        return Ok(Departed::GroupEnded);
    }
    // An admin must remain: the longest-standing moderator, else member, becomes one.
    sqlx::query(
        "UPDATE group_members SET role = 'admin'
          WHERE group_id = $1 AND NOT EXISTS (
                SELECT 1 FROM group_members WHERE group_id = $1 AND role = 'admin')
            AND user_id = (SELECT user_id FROM group_members WHERE group_id = $1
                            ORDER BY CASE role WHEN 'moderator' THEN 0 ELSE 1 END, joined_at, user_id
                            LIMIT 1)",
    )
    .bind(group)
    .execute(&mut *conn)
    .await?;
    fix_first_admin(conn, group).await?;
    Ok(Departed::Left)
}

/// Points `admin_id` at an admin (the longest-standing) when it no longer is one.
pub(super) async fn fix_first_admin(conn: &mut PgConnection, group: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE social_groups g SET admin_id = (
                SELECT user_id FROM group_members WHERE group_id = g.id AND role = 'admin'
                 ORDER BY joined_at, user_id LIMIT 1)
          WHERE g.id = $1 AND NOT EXISTS (
                SELECT 1 FROM group_members WHERE group_id = g.id AND user_id = g.admin_id AND role = 'admin')",
    )
    .bind(group)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What [`drop_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departed {
    Left,
    /// The last member left: the group is gone.
    GroupEnded,
    NotAMember,
}

pub(super) async fn banned(conn: &mut PgConnection, group: Uuid, user: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM group_bans WHERE group_id = $1 AND user_id = $2)",
    )
    .bind(group)
    .bind(user)
    .fetch_one(&mut *conn)
    .await
}

/// What a join did.
#[derive(Debug)]
pub enum Joined {
    /// A member now (a public group, or an invitation), or already one.
    Member(Group),
    /// A private group: the request waits for an admin or moderator; the outbox rows of
    /// their notifications (relay after commit).
    Requested(Vec<i64>),
}

/// Joins a public group (or a private one `me` was invited to); asks to join a private
/// one otherwise (`message` goes with the request). A private group is joined by its id,
/// which its members share (a link): the id is unguessable, so answering the request
/// (instead of 404) tells nobody else that the group exists.
pub async fn join(db: &PgPool, me: &Actor, id: Uuid, message: &str) -> GroupResult<Joined> {
    let message = text("message", message, 0, MESSAGE_MAX)?;
    let mut tx = db.begin().await?;
    let (is_private, name): (bool, String) =
        sqlx::query_as("SELECT is_private, name FROM social_groups WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(GroupError::NotFound)?;
    let seen = visible(&mut tx, me, id).await.ok();
    if let Some(g) = seen.as_ref().filter(|g| g.my_role.is_some()) {
        let g = g.clone();
        tx.commit().await?;
        return Ok(Joined::Member(g));
    }
    if banned(&mut tx, id, me.id).await? {
        return Err(GroupError::Banned);
    }
    if !is_private || seen.is_some_and(|g| g.invited) {
        add_member(&mut tx, id, me.id).await?;
        let g = visible(&mut tx, me, id).await?;
        tx.commit().await?;
        return Ok(Joined::Member(g));
    }
    let fresh = sqlx::query(
        "INSERT INTO group_join_requests (group_id, user_id, message) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(me.id)
    .bind(&message)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let mut rows = Vec::new();
    if fresh {
        // The admins and moderators hear of it (each once: a repeated request is no new
        // request).
        let deciders: Vec<Uuid> = sqlx::query_scalar(
            "SELECT user_id FROM group_members WHERE group_id = $1 AND role IN ('admin', 'moderator')",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        for d in deciders {
            rows.push(
                crate::events::emit(
                    &mut tx,
                    "group.join_request",
                    Some(me.id),
                    Some(d),
                    serde_json::json!({ "group_id": id, "name": name }),
                )
                .await?,
            );
        }
    }
    tx.commit().await?;
    Ok(Joined::Requested(rows))
}

/// Leaves a group (any member). The last admin hands it over; the last member ends it.
pub async fn leave(db: &PgPool, me: &Actor, id: Uuid) -> GroupResult<Departed> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT 1 FROM social_groups WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(GroupError::NotFound)?;
    let member = match role_of(&mut tx, id, me.id).await {
        Ok(_) => true,
        Err(GroupError::NotFound) => false,
        Err(e) => return Err(e),
    };
    if !member {
        // Withdraws a pending request, if any.
        let withdrawn =
            sqlx::query("DELETE FROM group_join_requests WHERE group_id = $1 AND user_id = $2")
                .bind(id)
                .bind(me.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        if withdrawn == 0 {
            return Err(GroupError::Conflict {
                code: "not_a_member",
                message: "You are not a member of this group.",
            });
        }
        return Ok(Departed::NotAMember);
    }
    let d = drop_member(&mut tx, id, me.id).await?;
    tx.commit().await?;
    Ok(d)
}

/// A member of a group.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct GroupMember {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub role: GroupRole,
    pub joined_at: DateTime<Utc>,
}

/// A page of a group's members (admins, moderators, then by joining) and the total.
/// Anyone who sees the group sees its members.
pub async fn members(
    conn: &mut PgConnection,
    me: &Actor,
    id: Uuid,
    limit: i64,
    offset: i64,
) -> GroupResult<(Vec<GroupMember>, i64)> {
    let g = visible(conn, me, id).await?;
    let rows: Vec<GroupMember> = sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, u.avatar_path, m.role, m.joined_at
           FROM group_members m JOIN users u ON u.id = m.user_id
          WHERE m.group_id = $1
          ORDER BY CASE m.role WHEN 'admin' THEN 0 WHEN 'moderator' THEN 1 ELSE 2 END, m.joined_at, u.id
          LIMIT $2 OFFSET $3",
    )
    .bind(id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, i64::from(g.member_count)))
}

/// A pending request to join.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct JoinRequest {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// A page of a group's pending join requests, oldest first (admins and moderators).
pub async fn requests(
    conn: &mut PgConnection,
    me: &Actor,
    id: Uuid,
    limit: i64,
    offset: i64,
) -> GroupResult<(Vec<JoinRequest>, i64)> {
    let g = visible(conn, me, id).await?;
    require(&g, me, GroupRole::Moderator)?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM group_join_requests WHERE group_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let rows: Vec<JoinRequest> = sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, u.avatar_path, r.message, r.created_at
           FROM group_join_requests r JOIN users u ON u.id = r.user_id
          WHERE r.group_id = $1 ORDER BY r.created_at, u.id LIMIT $2 OFFSET $3",
    )
    .bind(id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, count))
}

/// Approves (the user becomes a member and is told) or rejects a pending request
/// (admins and moderators). Returns the outbox row to relay, if any.
pub async fn decide(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    user: Uuid,
    approve: bool,
) -> GroupResult<Option<i64>> {
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    require(&g, me, GroupRole::Moderator)?;
    let pending =
        sqlx::query("DELETE FROM group_join_requests WHERE group_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if !pending {
        return Err(GroupError::NotFound);
    }
    let mut row = None;
    if approve {
        add_member(&mut tx, id, user).await?;
        row = Some(
            crate::events::emit(
                &mut tx,
                "group.request_approved",
                Some(me.id),
                Some(user),
                serde_json::json!({ "group_id": id, "name": g.name }),
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok(row)
}

/// Invites `user` (admins and moderators): they may then see the group and join it.
/// Not for a user who blocked either side, a member or a banned user. Returns the
/// outbox row of the invitation's notification (None: already invited).
pub async fn invite(db: &PgPool, me: &Actor, id: Uuid, user: Uuid) -> GroupResult<Option<i64>> {
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    require(&g, me, GroupRole::Moderator)?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND status = 'active') AND NOT blocked_between($1, $2)",
    )
    .bind(user)
    .bind(me.id)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Err(invalid("user_id", "No such user."));
    }
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM group_members WHERE group_id = $1 AND user_id = $2)",
    )
    .bind(id)
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    if member {
        return Err(GroupError::Conflict {
            code: "already_a_member",
            message: "This user is already a member.",
        });
    }
    if banned(&mut tx, id, user).await? {
        return Err(GroupError::Conflict {
            code: "banned",
            message: "This user is banned from the group; unban them first.",
        });
    }
    let fresh = sqlx::query(
        "INSERT INTO group_invitations (group_id, user_id, invited_by) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(user)
    .bind(me.id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let row = if fresh {
        Some(
            crate::events::emit(
                &mut tx,
                "group.invite",
                Some(me.id),
                Some(user),
                serde_json::json!({ "group_id": id, "name": g.name }),
            )
            .await?,
        )
    } else {
        None
    };
    tx.commit().await?;
    Ok(row)
}

/// Declines `me`'s invitation to a group (it then disappears for `me` if private).
pub async fn decline(db: &PgPool, me: &Actor, id: Uuid) -> GroupResult<()> {
    let mut tx = db.begin().await?;
    locked(&mut tx, me, id).await?;
    let n = sqlx::query("DELETE FROM group_invitations WHERE group_id = $1 AND user_id = $2")
        .bind(id)
        .bind(me.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    if n == 0 {
        return Err(GroupError::NotFound);
    }
    Ok(())
}

/// The target's role, or `NotFound` when they are not a member.
pub(super) async fn role_of(
    conn: &mut PgConnection,
    group: Uuid,
    user: Uuid,
) -> GroupResult<GroupRole> {
    sqlx::query_scalar("SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group)
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(GroupError::NotFound)
}

/// Checks that `me` may remove or ban `target` (of `role`): admins anyone but
/// themselves, moderators plain members.
pub(super) fn may_remove(g: &Group, me: &Actor, target: Uuid, role: GroupRole) -> GroupResult<()> {
    if target == me.id {
        return Err(GroupError::Conflict {
            code: "use_leave",
            message: "To leave the group, use leave.",
        });
    }
    require(g, me, GroupRole::Moderator)?;
    let mine = if me.is_staff() {
        GroupRole::Admin
    } else {
        g.my_role.unwrap_or(GroupRole::Member)
    };
    if mine == GroupRole::Moderator && role != GroupRole::Member {
        return Err(GroupError::PermissionDenied(
            "Moderators may remove plain members only.",
        ));
    }
    Ok(())
}

/// Sets a member's role (admins, staff). The group keeps at least one admin.
pub async fn set_role(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    user: Uuid,
    role: GroupRole,
) -> GroupResult<GroupMember> {
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    require(&g, me, GroupRole::Admin)?;
    let current = role_of(&mut tx, id, user).await?;
    if current == GroupRole::Admin && role != GroupRole::Admin {
        let admins: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM group_members WHERE group_id = $1 AND role = 'admin'",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if admins <= 1 {
            return Err(GroupError::Conflict {
                code: "last_admin",
                message: "A group keeps at least one admin; make someone else admin first.",
            });
        }
    }
    let m: GroupMember = sqlx::query_as(
        "WITH u AS (UPDATE group_members SET role = $3 WHERE group_id = $1 AND user_id = $2
                    RETURNING user_id, role, joined_at)
         SELECT us.id, us.username, us.display_name, us.avatar_path, u.role, u.joined_at
           FROM u JOIN users us ON us.id = u.user_id",
    )
    .bind(id)
    .bind(user)
    .bind(role)
    .fetch_one(&mut *tx)
    .await?;
    fix_first_admin(&mut tx, id).await?;
    tx.commit().await?;
    Ok(m)
}

/// Removes a member (see [`may_remove`]).
pub async fn remove(db: &PgPool, me: &Actor, id: Uuid, user: Uuid) -> GroupResult<()> {
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    let role = role_of(&mut tx, id, user).await?;
    may_remove(&g, me, user, role)?;
    drop_member(&mut tx, id, user).await?;
    tx.commit().await?;
    Ok(())
}

/// Bans a user (a member, or anyone not yet in): their membership, request and
/// invitation go, and they cannot join again until unbanned.
pub async fn ban(db: &PgPool, me: &Actor, id: Uuid, user: Uuid, reason: &str) -> GroupResult<()> {
    let reason = text("reason", reason, 0, MESSAGE_MAX)?;
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Err(invalid("user_id", "No such user."));
    }
    let role = match role_of(&mut tx, id, user).await {
        Ok(r) => Some(r),
        Err(GroupError::NotFound) => None,
        Err(e) => return Err(e),
    };
    may_remove(&g, me, user, role.unwrap_or(GroupRole::Member))?;
    if role.is_some() {
        drop_member(&mut tx, id, user).await?;
    }
    for table in ["group_invitations", "group_join_requests"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE group_id = $1 AND user_id = $2"
        ))
        .bind(id)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO group_bans (group_id, user_id, banned_by, reason) VALUES ($1, $2, $3, $4)
         ON CONFLICT (group_id, user_id) DO UPDATE SET reason = EXCLUDED.reason",
    )
    .bind(id)
    .bind(user)
    .bind(me.id)
    .bind(&reason)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Lifts a ban (admins and moderators).
pub async fn unban(db: &PgPool, me: &Actor, id: Uuid, user: Uuid) -> GroupResult<()> {
    let mut tx = db.begin().await?;
    let g = locked(&mut tx, me, id).await?;
    require(&g, me, GroupRole::Moderator)?;
    let n = sqlx::query("DELETE FROM group_bans WHERE group_id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    if n == 0 {
        return Err(GroupError::NotFound);
    }
    Ok(())
}

/// A ban.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct GroupBan {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// A group's bans, newest first (admins and moderators).
pub async fn bans(conn: &mut PgConnection, me: &Actor, id: Uuid) -> GroupResult<Vec<GroupBan>> {
    let g = visible(conn, me, id).await?;
    require(&g, me, GroupRole::Moderator)?;
    Ok(sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, u.avatar_path, b.reason, b.created_at
           FROM group_bans b JOIN users u ON u.id = b.user_id
          WHERE b.group_id = $1 ORDER BY b.created_at DESC, u.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?)
}
