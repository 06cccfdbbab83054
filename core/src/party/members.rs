//! Membership changes that need more than one statement: leaving, with the hand-over
//! of a host's party.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{PartyRole, events::UserRef};

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
