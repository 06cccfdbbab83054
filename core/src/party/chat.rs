//! Party chat: messages are stored before anyone hears of them; a resent message with
//! the same `client_id` is stored once. The socket sends, the REST API pages the
//! history, edits and deletes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::social::UserSummary;

pub const MESSAGE_MAX: usize = 1000;

/// Counts one message of `user` against `per_minute`, across every socket, party and
/// node (a Redis counter per user and minute window). `Some(ms)`: over the limit; the
/// window ends in `ms`.
pub async fn charge(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    user: Uuid,
    per_minute: u32,
) -> redis::RedisResult<Option<i64>> {
    let key = format!("{prefix}:chat-rate:{user}");
    let (n, ttl) =
        wp_shared::redis_conn::window_hit(redis, &key, std::time::Duration::from_secs(60)).await?;
    Ok((n > per_minute).then_some(ttl.max(0)))
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    pub id: Uuid,
    pub party_id: Uuid,
    pub user: UserSummary,
    /// Empty once deleted.
    pub content: String,
    pub reply_to: Option<Uuid>,
    /// The sender's own id for the message, when it gave one.
    pub client_id: Option<String>,
    pub is_edited: bool,
    pub is_deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored message as read (the author's id, whatever its state).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub party_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub avatar_path: Option<String>,
    pub content: String,
    pub reply_to: Option<Uuid>,
    pub client_id: Option<String>,
    pub is_edited: bool,
    pub is_deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<MessageRow> for ChatMessage {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id,
            party_id: r.party_id,
            user: UserSummary::new(
                r.user_id,
                r.username,
                r.display_name,
                r.avatar_path.as_deref(),
            ),
            content: if r.is_deleted {
                String::new()
            } else {
                r.content
            },
            reply_to: r.reply_to,
            client_id: r.client_id,
            is_edited: r.is_edited,
            is_deleted: r.is_deleted,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Checks a message's content: trimmed, not empty, at most [`MESSAGE_MAX`] characters.
pub fn check_message(content: &str) -> Result<String, &'static str> {
    let c = content.trim();
    if c.is_empty() {
        Err("A message may not be empty.")
    } else if c.chars().count() > MESSAGE_MAX {
        Err("A message is at most 1000 characters.")
    } else {
        Ok(c.to_owned())
    }
}

/// Why a message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `reply_to` is not a message of this party.
    BadReply,
    /// The sender is no longer a member.
    NotAMember,
}

/// A message as stored, and whether this call stored it (`false`: a resent
/// `client_id`, answered with the first message).
pub struct Stored {
    pub message: ChatMessage,
    pub new: bool,
    /// Its publication to the nodes is not confirmed yet (true of a new one).
    pub unpublished: bool,
}

/// Stores a chat message (the socket acknowledges only after this commits). A resent
/// message with the same `client_id` is stored once and answered with the first.
pub async fn insert(
    db: &PgPool,
    party: Uuid,
    user: Uuid,
    content: &str,
    reply_to: Option<Uuid>,
    client_id: Option<&str>,
) -> sqlx::Result<Result<Stored, Refused>> {
    if let Some(r) = reply_to {
        let ok = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM party_messages WHERE id = $1 AND party_id = $2) AS "e!""#,
            r,
            party
        )
        .fetch_one(db)
        .await?;
        if !ok {
            return Ok(Err(Refused::BadReply));
        }
    }
    let id = Uuid::now_v7();
    let row = sqlx::query_as!(
        MessageRow,
        r#"WITH ins AS (
               INSERT INTO party_messages (id, party_id, user_id, content, reply_to, client_id)
               SELECT $1, $2, $3, $4, $5, $6
               WHERE EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = $2 AND m.user_id = $3)
               ON CONFLICT (party_id, user_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
               RETURNING *
           ), unpublished AS (
               -- Until a node confirms the publish for the other nodes (`published`).
               INSERT INTO party_messages_unpublished (message_id) SELECT id FROM ins
           ), msg AS (
               SELECT * FROM ins
               UNION ALL
               SELECT * FROM party_messages
               WHERE party_id = $2 AND user_id = $3 AND client_id = $6 AND NOT EXISTS (SELECT 1 FROM ins)
           )
           SELECT m.id AS "id!", m.party_id AS "party_id!", m.user_id AS "user_id!", u.username,
                  u.display_name, u.avatar_path, m.content AS "content!", m.reply_to, m.client_id,
                  m.is_edited AS "is_edited!", m.is_deleted AS "is_deleted!",
                  m.created_at AS "created_at!", m.updated_at AS "updated_at!"
           FROM msg m JOIN users u ON u.id = m.user_id"#,
        id,
        party,
        user,
        content,
        reply_to,
        client_id
    )
    .fetch_optional(db)
    .await?;
    let row = match row {
        Some(r) if r.id == id => Some(Stored {
            message: r.into(),
            new: true,
            unpublished: true,
        }),
        Some(r) => Some(Stored {
            unpublished: unconfirmed(db, r.id).await?,
            message: r.into(),
            new: false,
        }),
        None => None,
    };
    match (row, client_id) {
        (Some(stored), _) => Ok(Ok(stored)),
        // A resend racing the first send's transaction: the insert waited for it to
        // commit and did nothing, but the statement's snapshot predates the commit, so
        // the first message is read now.
        (None, Some(client_id)) => Ok(resent(db, party, user, client_id)
            .await?
            .ok_or(Refused::NotAMember)),
        (None, None) => Ok(Err(Refused::NotAMember)),
    }
}

/// The message `user` sent to `party` with `client_id`, if any (and whether its
/// publication is unconfirmed).
async fn resent(
    db: &PgPool,
    party: Uuid,
    user: Uuid,
    client_id: &str,
) -> sqlx::Result<Option<Stored>> {
    let Some(row) = sqlx::query_as::<_, MessageRow>(
        "SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, u.avatar_path, m.content,
                m.reply_to, m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
         FROM party_messages m JOIN users u ON u.id = m.user_id
         WHERE m.party_id = $1 AND m.user_id = $2 AND m.client_id = $3",
    )
    .bind(party)
    .bind(user)
    .bind(client_id)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Stored {
        unpublished: unconfirmed(db, row.id).await?,
        message: row.into(),
        new: false,
    }))
}

/// Whether the publication of message `id` is still unconfirmed (its outbox row is
/// there).
async fn unconfirmed(db: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM party_messages_unpublished WHERE message_id = $1)",
    )
    .bind(id)
    .fetch_one(db)
    .await
}

/// The messages whose publication to the other nodes Redis confirmed: they leave
/// `party_messages_unpublished`.
pub async fn published(db: &PgPool, ids: &[Uuid]) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let r = sqlx::query("DELETE FROM party_messages_unpublished WHERE message_id = ANY($1)")
        .bind(ids)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Publishes again, on their parties' channels, the messages stored more than
/// `older_than` ago whose publication was never confirmed (the node that stored them
/// died before publishing, or Redis refused the publish), at most `limit`, oldest first;
/// then forgets them. Every node delivers them to its sockets (`origin` is not a node's
/// name); a member who already has one keeps it once (clients keep messages by `id`).
/// Runs in the outbox sweep. Returns how many were published.
pub async fn republish(
    db: &PgPool,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    older_than: std::time::Duration,
    limit: i64,
) -> Result<usize, RepublishError> {
    let mut tx = db.begin().await?;
    let rows: Vec<MessageRow> = sqlx::query_as::<_, MessageRow>(
        "SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, u.avatar_path, m.content,
                m.reply_to, m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
         FROM party_messages_unpublished p
         JOIN party_messages m ON m.id = p.message_id
         JOIN users u ON u.id = m.user_id
         WHERE p.created_at < now() - make_interval(secs => $1)
         ORDER BY p.created_at
         LIMIT $2
         FOR UPDATE OF p SKIP LOCKED",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    for row in rows {
        let keys = super::live::Keys::new(prefix, row.party_id);
        let msg = super::events::BusMsg::to_all(
            "outbox-sweep",
            super::events::PartyEvent::ChatMessage(row.into()),
        );
        super::events::publish(redis, &keys, &msg).await?;
    }
    sqlx::query("DELETE FROM party_messages_unpublished WHERE message_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// Why [`republish`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepublishError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// The newest `limit` messages of a party, oldest first (the socket snapshot).
pub async fn recent(db: &PgPool, party: Uuid, limit: i64) -> sqlx::Result<Vec<ChatMessage>> {
    let mut rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, u.avatar_path, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
           ORDER BY m.created_at DESC, m.id DESC LIMIT $2"#,
        party,
        limit
    )
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Messages after `since` (a message id), oldest first: what a reconnecting client
/// missed (at most `limit`; fetch `limit + 1` to know whether there is more). None
/// when `since` is not a message of the party.
pub async fn since(
    db: &PgPool,
    party: Uuid,
    since: Uuid,
    limit: i64,
) -> sqlx::Result<Option<Vec<ChatMessage>>> {
    let anchor = sqlx::query!(
        "SELECT created_at FROM party_messages WHERE id = $1 AND party_id = $2",
        since,
        party
    )
    .fetch_optional(db)
    .await?;
    let Some(anchor) = anchor else {
        return Ok(None);
    };
    let rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, u.avatar_path, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1 AND (m.created_at, m.id) > ($2, $3)
           ORDER BY m.created_at, m.id LIMIT $4"#,
        party,
        anchor.created_at,
        since,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(Some(rows.into_iter().map(Into::into).collect()))
}

/// A page of history, newest first: `limit` messages before `before` (a message's
/// time and id), or the newest.
pub async fn history(
    conn: &mut PgConnection,
    party: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ChatMessage>> {
    let rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, u.avatar_path, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
             AND ($2::timestamptz IS NULL OR (m.created_at, m.id) < ($2, $3))
           ORDER BY m.created_at DESC, m.id DESC LIMIT $4"#,
        party,
        before.map(|b| b.0),
        before.map_or(Uuid::nil(), |b| b.1),
        limit
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// A message of the party that is not deleted.
pub async fn find(
    conn: &mut PgConnection,
    party: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<MessageRow>> {
    Ok(sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, u.avatar_path, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.id = $1 AND m.party_id = $2"#,
        id,
        party
    )
    .fetch_optional(&mut *conn)
    .await?
    .filter(|m| !m.is_deleted))
}

/// Replaces a message's content; returns the new `updated_at`.
pub async fn edit(conn: &mut PgConnection, id: Uuid, content: &str) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        "UPDATE party_messages SET content = $2, is_edited = TRUE, updated_at = now()
         WHERE id = $1 RETURNING updated_at",
        id,
        content
    )
    .fetch_one(&mut *conn)
    .await
}

/// Marks a message deleted and drops its content.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE party_messages SET is_deleted = TRUE, content = '', updated_at = now() WHERE id = $1",
        id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_trimmed_and_limited() {
        assert_eq!(check_message("  hi "), Ok("hi".to_owned()));
        assert!(check_message("   ").is_err());
        assert!(check_message(&"x".repeat(MESSAGE_MAX + 1)).is_err());
        assert!(check_message(&"é".repeat(MESSAGE_MAX)).is_ok());
    }
}
