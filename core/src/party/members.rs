//! Membership changes that need more than one statement: joining (visibility, invite
//! code, blocks, bans, room size, under the party's row lock) and leaving, with the
//! hand-over of a host's party.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{PartyRole, events::UserRef};
use crate::account::Actor;

/// Why a join is refused.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// No such party for the caller (not visible without a code, ended, or a block
    /// between the caller and the host).
    #[error("Not found.")]
    NotFound,
    /// The invite code given does not open this party.
    #[error("This invite code is not valid.")]
    BadCode,
    #[error("You are banned from this party.")]
    Banned,
    #[error("The party is full ({0} members).")]
    Full(i32),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Adds `me` to `party` as a member: public parties are open, friends-only ones to the
/// host's friends, any (but for a block) with the invite code. Runs under a row lock on
/// the party, so bans and the room size are checked against what is committed. True
/// when `me` joined now, false when already a member.
pub async fn join(
    conn: &mut PgConnection,
    me: &Actor,
    party: Uuid,
    code: Option<&str>,
) -> Result<bool, JoinError> {
    let p = sqlx::query!(
        r#"SELECT host_id, invite_code, max_members,
                  party_visible_to(id, host_id, visibility, $2, $3) AS "visible!"
           FROM parties WHERE id = $1 AND status = 'active' FOR UPDATE"#,
        party,
        me.id,
        me.is_staff()
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(JoinError::NotFound)?;
    let already = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM party_members WHERE party_id = $1 AND user_id = $2) AS "e!""#,
        party,
        me.id
    )
    .fetch_one(&mut *conn)
    .await?;
    if already {
        return Ok(false);
    }
    let code_ok = code.is_some_and(|c| super::normalize_invite_code(c) == p.invite_code);
    if !(code_ok || p.visible) {
        // A party the caller cannot see does not exist for them.
        return Err(if code.is_some() {
            JoinError::BadCode
        } else {
            JoinError::NotFound
        });
    }
    if crate::social::blocked_between(conn, me.id, p.host_id).await? {
        return Err(JoinError::NotFound);
    }
    let room = sqlx::query!(
        r#"SELECT EXISTS (SELECT 1 FROM party_bans WHERE party_id = $1 AND user_id = $2) AS "banned!",
                  (SELECT count(*) FROM party_members WHERE party_id = $1) AS "members!""#,
        party,
        me.id
    )
    .fetch_one(&mut *conn)
    .await?;
    if room.banned {
        return Err(JoinError::Banned);
    }
    if room.members >= i64::from(p.max_members) {
        return Err(JoinError::Full(p.max_members));
    }
    sqlx::query!(
        "INSERT INTO party_members (party_id, user_id, role) VALUES ($1, $2, 'member')",
        party,
        me.id
    )
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// What removing a member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A member other than the host left.
    Left,
    /// The host left; this member hosts now (the longest-standing co-host, else the
    /// longest-standing member).
    HandedOver(UserRef),
    /// The host was the last one in: the party ended.
    Ended,
}

/// Removes `user` from `party` (call under the party's row lock, `super::locked`):
/// None when they were not a member.
pub async fn remove(
    conn: &mut PgConnection,
    party: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<Removal>> {
    let role = sqlx::query_scalar!(
        r#"DELETE FROM party_members WHERE party_id = $1 AND user_id = $2 RETURNING role AS "role: PartyRole""#,
        party,
        user
    )
    .fetch_optional(&mut *conn)
    .await?;
    match role {
        None => return Ok(None),
        Some(PartyRole::Member | PartyRole::Cohost) => return Ok(Some(Removal::Left)),
        Some(PartyRole::Host) => {}
    }
    let next = sqlx::query!(
        r#"SELECT m.user_id, u.username FROM party_members m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
           ORDER BY (m.role = 'cohost') DESC, m.joined_at, m.user_id LIMIT 1"#,
        party
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(next) = next else {
        sqlx::query!(
            "UPDATE parties SET status = 'ended', updated_at = now() WHERE id = $1",
            party
        )
        .execute(&mut *conn)
        .await?;
        return Ok(Some(Removal::Ended));
    };
    sqlx::query!(
        "UPDATE party_members SET role = 'host' WHERE party_id = $1 AND user_id = $2",
        party,
        next.user_id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE parties SET host_id = $2, updated_at = now() WHERE id = $1",
        party,
        next.user_id
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(Removal::HandedOver(UserRef::new(
        next.user_id,
        &next.username,
    ))))
}
