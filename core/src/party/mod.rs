//! Watch parties: the model (roles, settings, visibility), the one rule for who may
//! see a party (`party_visible_to` in SQL, migration 14) used by the list, the detail,
//! joining and the socket alike, membership, chat ([`chat`]) and the live state in
//! Redis ([`live`]).

pub mod chat;
pub mod events;
pub mod live;
pub mod members;
pub mod polls;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{account::Actor, social::UserSummary};

pub const TITLE_MAX: usize = 200;

const INVITE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// 13 characters of 32: 65 bits, too many to guess even without the rate limits.
const INVITE_LEN: usize = 13;

/// An invite code as typed (any case, with spaces or dashes between groups) in the form
/// it is stored: upper case, letters and digits only.
pub fn normalize_invite_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_uppercase()
}

/// A new invite code: 13 characters (65 bits) of an alphabet without look-alikes (0/O,
/// 1/I), typeable; clients may show it in groups (`ABCD-EFGH-JKLMN`), which joining
/// accepts.
pub fn new_invite_code() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..INVITE_LEN)
        .map(|_| INVITE_ALPHABET[rng.random_range(0..INVITE_ALPHABET.len())] as char)
        .collect()
}
pub const DESCRIPTION_MAX: usize = 2000;

crate::text_enum! {
    /// A member's role in a party, lowest first.
    pub enum PartyRole as "party role" {
        Member = "member",
        Cohost = "cohost",
        Host = "host",
    }
}

crate::text_enum! {
    /// Who may see (and join without a code) a party.
    pub enum PartyVisibility as "party visibility" {
        Public = "public",
        Friends = "friends",
        Private = "private",
    }
}

crate::text_enum! {
    /// Who may send `video_control`.
    pub enum ControlMode as "control mode" {
        /// The host only.
        Host = "host",
        /// The host and co-hosts.
        Cohosts = "cohosts",
        Everyone = "everyone",
    }
}

crate::text_enum! {
    /// What the room does while a member buffers.
    pub enum SyncPolicy as "sync policy" {
        /// The room pauses while a member buffers (at most `buffer_wait_ms`).
        Wait = "wait",
        /// A lagging member catches up on its own.
        Independent = "independent",
    }
}

crate::text_enum! {
    /// Whether a party is running.
    pub enum PartyStatus as "party status" {
        Active = "active",
        Ended = "ended",
    }
}

/// The settings of a party (who may control playback, chat, buffering policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartySettings {
    pub control_mode: ControlMode,
    pub chat_enabled: bool,
    /// Seconds a member waits between chat messages (0: off). Hosts and co-hosts are exempt.
    pub slow_mode_seconds: i32,
    pub max_members: i32,
    pub allow_screen_share: bool,
    pub sync_policy: SyncPolicy,
    pub buffer_wait_ms: i32,
}

impl PartySettings {
    /// Whether a member of `role` may send `video_control`.
    pub fn may_control(&self, role: PartyRole) -> bool {
        match self.control_mode {
            ControlMode::Everyone => true,
            ControlMode::Cohosts => role >= PartyRole::Cohost,
            ControlMode::Host => role == PartyRole::Host,
        }
    }
}

/// Why a party action is refused.
#[derive(Debug, thiserror::Error)]
pub enum PartyError {
    /// No such party, or one the caller may not see.
    #[error("Not found.")]
    NotFound,
    #[error("Join the party first.")]
    NotAMember,
    /// Authenticated but not allowed; the text says who may.
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

pub type PartyResult<T> = Result<T, PartyError>;

/// A party as one caller sees it (one row, the caller's role included).
#[derive(Debug, Clone)]
pub struct PartyRow {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub host_id: Uuid,
    pub host_username: String,
    pub host_display_name: String,
    pub host_avatar_path: Option<String>,
    pub video_id: Option<Uuid>,
    pub video_title: Option<String>,
    pub external_url: Option<String>,
    pub visibility: PartyVisibility,
    pub invite_code: String,
    pub control_mode: ControlMode,
    pub chat_enabled: bool,
    pub slow_mode_seconds: i32,
    pub max_members: i32,
    pub allow_screen_share: bool,
    pub sync_policy: SyncPolicy,
    pub buffer_wait_ms: i32,
    pub member_count: i64,
    pub my_role: Option<PartyRole>,
    pub status: PartyStatus,
    pub playback: serde_json::Value,
    pub group_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PartyRow {
    pub fn settings(&self) -> PartySettings {
        PartySettings {
            control_mode: self.control_mode,
            chat_enabled: self.chat_enabled,
            slow_mode_seconds: self.slow_mode_seconds,
            max_members: self.max_members,
            allow_screen_share: self.allow_screen_share,
            sync_policy: self.sync_policy,
            buffer_wait_ms: self.buffer_wait_ms,
        }
    }

    pub fn host(&self) -> UserSummary {
        UserSummary::new(
            self.host_id,
            self.host_username.clone(),
            self.host_display_name.clone(),
            self.host_avatar_path.as_deref(),
        )
    }

    /// The caller's role: `NotAMember` if none.
    pub fn member_role(&self) -> PartyResult<PartyRole> {
        self.my_role.ok_or(PartyError::NotAMember)
    }

    /// `PermissionDenied` unless `me` is at least `min` in the party (staff always pass).
    pub fn require_role(&self, me: &Actor, min: PartyRole) -> PartyResult<()> {
        if me.is_staff() || self.my_role.is_some_and(|r| r >= min) {
            Ok(())
        } else {
            Err(PartyError::PermissionDenied(match min {
                PartyRole::Host => "Only the host may do this.",
                _ => "Only the host or a co-host may do this.",
            }))
        }
    }
}

/// An active party `me` may see (`party_visible_to`), with `me`'s role.
pub async fn load(conn: &mut PgConnection, me: &Actor, id: Uuid) -> sqlx::Result<Option<PartyRow>> {
    sqlx::query_as!(
        PartyRow,
        r#"SELECT p.id, p.title, p.description, p.host_id, u.username AS host_username,
                  u.display_name AS host_display_name, u.avatar_path AS host_avatar_path, p.video_id, v.title AS "video_title?",
                  p.external_url, p.visibility AS "visibility: PartyVisibility", p.invite_code,
                  p.control_mode AS "control_mode: ControlMode", p.chat_enabled,
                  p.slow_mode_seconds, p.max_members, p.allow_screen_share,
                  p.sync_policy AS "sync_policy: SyncPolicy", p.buffer_wait_ms,
                  (SELECT count(*) FROM party_members m WHERE m.party_id = p.id) AS "member_count!",
                  (SELECT m.role FROM party_members m WHERE m.party_id = p.id AND m.user_id = $2) AS "my_role: PartyRole",
                  p.status AS "status: PartyStatus", p.playback, p.group_id, p.created_at, p.updated_at
           FROM parties p JOIN users u ON u.id = p.host_id
           LEFT JOIN videos v ON v.id = p.video_id
           WHERE p.id = $1 AND p.status = 'active'
             AND party_visible_to(p.id, p.host_id, p.visibility, $2, $3)"#,
        id,
        me.id,
        me.is_staff()
    )
    .fetch_optional(&mut *conn)
    .await
}

/// [`load`], `NotFound` when there is no such party for `me`.
pub async fn visible(conn: &mut PgConnection, me: &Actor, id: Uuid) -> PartyResult<PartyRow> {
    load(conn, me, id).await?.ok_or(PartyError::NotFound)
}

/// [`visible`] under a row lock on the party, taken before anything is read, so
/// membership changes (joins, hand-overs, role changes, kicks) are serialised and
/// every check sees the roles as they are.
pub async fn locked(conn: &mut PgConnection, me: &Actor, id: Uuid) -> PartyResult<PartyRow> {
    sqlx::query_scalar!("SELECT id FROM parties WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(PartyError::NotFound)?;
    visible(conn, me, id).await
}

/// A party as the socket sees it: settings and the caller's role.
#[derive(Debug, Clone)]
pub struct Membership {
    pub party: Uuid,
    pub title: String,
    pub host_id: Uuid,
    pub settings: PartySettings,
    pub role: PartyRole,
}

/// The caller's membership of an active party: `NotFound` if they cannot see it,
/// `NotAMember` if they have not joined (or were removed).
pub async fn membership(db: &PgPool, me: &Actor, party: Uuid) -> PartyResult<Membership> {
    let mut conn = db.acquire().await?;
    let row = visible(&mut conn, me, party).await?;
    let role = row.member_role()?;
    Ok(Membership {
        party,
        settings: row.settings(),
        title: row.title,
        host_id: row.host_id,
        role,
    })
}

/// The settings and a user's role, re-read after a `party_updated` or
/// `member_updated` (None: no longer a member, or the party is gone).
pub async fn reload(
    db: &PgPool,
    party: Uuid,
    user: Uuid,
) -> sqlx::Result<Option<(PartySettings, PartyRole)>> {
    let r = sqlx::query!(
        r#"SELECT p.control_mode AS "control_mode: ControlMode", p.chat_enabled,
                  p.slow_mode_seconds, p.max_members, p.allow_screen_share,
                  p.sync_policy AS "sync_policy: SyncPolicy", p.buffer_wait_ms,
                  m.role AS "role: PartyRole"
           FROM parties p JOIN party_members m ON m.party_id = p.id AND m.user_id = $2
           WHERE p.id = $1 AND p.status = 'active'"#,
        party,
        user
    )
    .fetch_optional(db)
    .await?;
    Ok(r.map(|r| {
        (
            PartySettings {
                control_mode: r.control_mode,
                chat_enabled: r.chat_enabled,
                slow_mode_seconds: r.slow_mode_seconds,
                max_members: r.max_members,
                allow_screen_share: r.allow_screen_share,
                sync_policy: r.sync_policy,
                buffer_wait_ms: r.buffer_wait_ms,
            },
            r.role,
        )
    }))
}

/// A member of a party, with presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Participant {
    pub user: UserSummary,
    pub role: PartyRole,
    pub joined_at: DateTime<Utc>,
    /// Connected to the party socket now (on any node).
    pub online: bool,
}

/// The members of a party (host first, then co-hosts, then by joining), with presence.
pub async fn member_list(
    db: &PgPool,
    redis: &mut redis::aio::ConnectionManager,
    redis_prefix: &str,
    party: Uuid,
) -> PartyResult<Vec<Participant>> {
    let rows = sqlx::query!(
        r#"SELECT m.user_id, u.username, u.display_name, u.avatar_path, m.role AS "role: PartyRole", m.joined_at
           FROM party_members m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
           ORDER BY CASE m.role WHEN 'host' THEN 0 WHEN 'cohost' THEN 1 ELSE 2 END, m.joined_at"#,
        party
    )
    .fetch_all(db)
    .await?;
    let keys = live::Keys::new(redis_prefix, party);
    let online = live::online_users(redis, redis_prefix, &keys).await?;
    Ok(rows
        .into_iter()
        .map(|r| Participant {
            online: online.contains(&r.user_id),
            user: UserSummary::new(
                r.user_id,
                r.username,
                r.display_name,
                r.avatar_path.as_deref(),
            ),
            role: r.role,
            joined_at: r.joined_at,
        })
        .collect())
}

/// The first `limit` members of a party for a socket's snapshot (host, co-hosts, then
/// who is in `online`, then by joining) and how many members there are in all. Sorted
/// and cut in PostgreSQL: a join into a 1,000-member party reads `limit` rows, not 1,000
/// (a join storm would otherwise cost O(N²)). `online` is the caller's presence read.
pub async fn first_members(
    db: &PgPool,
    party: Uuid,
    online: &std::collections::HashSet<Uuid>,
    limit: usize,
) -> PartyResult<(Vec<Participant>, usize)> {
    let online_ids: Vec<Uuid> = online.iter().copied().collect();
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserSummary,
        role: PartyRole,
        joined_at: DateTime<Utc>,
        total: i64,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, u.avatar_path, m.role, m.joined_at,
                count(*) OVER () AS total
           FROM party_members m JOIN users u ON u.id = m.user_id
          WHERE m.party_id = $1
          ORDER BY CASE m.role WHEN 'host' THEN 0 WHEN 'cohost' THEN 1 ELSE 2 END,
                   m.user_id = ANY($2) DESC, m.joined_at
          LIMIT $3",
    )
    .bind(party)
    .bind(&online_ids)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(db)
    .await?;
    let total = rows
        .first()
        .map_or(0, |r| usize::try_from(r.total).unwrap_or(0));
    let members = rows
        .into_iter()
        .map(|r| Participant {
            online: online.contains(&r.user.id),
            user: r.user,
            role: r.role,
            joined_at: r.joined_at,
        })
        .collect();
    Ok((members, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_modes() {
        let mut s = PartySettings {
            control_mode: ControlMode::Host,
            chat_enabled: true,
            slow_mode_seconds: 0,
            max_members: 10,
            allow_screen_share: true,
            sync_policy: SyncPolicy::Wait,
            buffer_wait_ms: 8000,
        };
        assert!(s.may_control(PartyRole::Host));
        assert!(!s.may_control(PartyRole::Cohost));
        s.control_mode = ControlMode::Cohosts;
        assert!(s.may_control(PartyRole::Cohost));
        assert!(!s.may_control(PartyRole::Member));
        s.control_mode = ControlMode::Everyone;
        assert!(s.may_control(PartyRole::Member));
    }

    #[test]
    fn unknown_roles_are_an_error_not_a_member() {
        assert!("owner".parse::<PartyRole>().is_err());
        assert_eq!("cohost".parse::<PartyRole>().unwrap(), PartyRole::Cohost);
        assert!(serde_json::from_str::<PartyRole>("\"owner\"").is_err());
    }
}
