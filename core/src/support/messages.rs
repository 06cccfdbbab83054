//! A ticket's conversation: its messages (replies and staff notes), the detail view
//! with messages and attachments, and posting a reply.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::files::attachments;
use super::{
    Attachment, BODY_MAX, MESSAGES_MAX, SupportResult, Ticket, TicketStatus, conflict, invalid,
    locked, text, visible,
};
use crate::{account::Actor, social::UserSummary};

/// A message on a ticket: a reply, or (staff only) an internal note.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketMessage {
    pub id: Uuid,
    /// Null once the author's account is gone.
    pub author: Option<UserSummary>,
    pub from_staff: bool,
    /// A staff-only note (only staff ever see these).
    pub internal: bool,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    author_id: Option<Uuid>,
    username: Option<String>,
    display_name: Option<String>,
    avatar_path: Option<String>,
    from_staff: bool,
    internal: bool,
    body: String,
    created_at: DateTime<Utc>,
}

impl From<MessageRow> for TicketMessage {
    fn from(r: MessageRow) -> Self {
        let author = match (r.author_id, r.username, r.display_name) {
            (Some(id), Some(u), Some(d)) => {
                Some(UserSummary::new(id, u, d, r.avatar_path.as_deref()))
            }
            _ => None,
        };
        Self {
            id: r.id,
            author,
            from_staff: r.from_staff,
            internal: r.internal,
            body: r.body,
            created_at: r.created_at,
        }
    }
}

const SELECT_MESSAGE: &str = "SELECT m.id, m.author_id, u.username, u.display_name, u.avatar_path,
        m.from_staff, m.internal, m.body, m.created_at
   FROM support_messages m LEFT JOIN users u ON u.id = m.author_id";

/// A ticket with its conversation and files.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TicketDetail {
    #[serde(flatten)]
    pub ticket: Ticket,
    /// Oldest first; internal notes only for staff.
    pub messages: Vec<TicketMessage>,
    pub attachments: Vec<Attachment>,
}

/// Ticket `id` with its messages and attachments, as `me` may see it.
pub async fn detail(conn: &mut PgConnection, me: &Actor, id: Uuid) -> SupportResult<TicketDetail> {
    let ticket = visible(conn, me, id).await?;
    let messages: Vec<MessageRow> = sqlx::query_as(&format!(
        "{SELECT_MESSAGE} WHERE m.ticket_id = $1 AND (NOT m.internal OR $2) ORDER BY m.created_at, m.id"
    ))
    .bind(id)
    .bind(me.is_staff())
    .fetch_all(&mut *conn)
    .await?;
    let attachments = attachments(conn, id).await?;
    Ok(TicketDetail {
        ticket,
        messages: messages.into_iter().map(TicketMessage::from).collect(),
        attachments,
    })
}

/// A reply (or a staff note) to post.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReply {
    /// 1 to 10,000 characters.
    #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
    pub body: String,
    /// A staff-only note: the user never sees it and is not told.
    #[serde(default)]
    pub internal: bool,
}

impl NewReply {
    pub fn checked(self, me: &Actor) -> SupportResult<Self> {
        if self.internal && !me.is_staff() {
            return Err(invalid(
                "internal",
                "Only support staff write internal notes.",
            ));
        }
        Ok(Self {
            body: text("body", &self.body, 1, BODY_MAX)?,
            internal: self.internal,
        })
    }
}

/// What a reply did.
#[derive(Debug)]
pub struct Replied {
    pub message: TicketMessage,
    pub ticket: Ticket,
    /// Outbox rows of the notifications (relay after commit).
    pub outbox: Vec<i64>,
}

/// Posts `r` on ticket `id` at `now` and moves the ticket: a staff reply answers it
/// (`pending`, the wait and any breach end, the owner is told with the text); the
/// owner's reply reopens it (`open`, a new wait starts; the assignee is told); a note
/// changes nothing but the conversation. Closed tickets take nothing
/// (`Conflict(ticket_closed)`).
pub async fn reply(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    r: &NewReply,
    now: DateTime<Utc>,
) -> SupportResult<Replied> {
    let mut tx = db.begin().await?;
    let t = locked(&mut tx, me, id).await?;
    if t.status == TicketStatus::Closed {
        return Err(conflict(
            "ticket_closed",
            "This ticket is closed; open a new ticket instead.",
        ));
    }
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM support_messages WHERE ticket_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if count >= MESSAGES_MAX {
        return Err(conflict(
            "too_many_messages",
            format!("A ticket holds at most {MESSAGES_MAX} messages; open a new ticket."),
        ));
    }
    // Staff replying on their own ticket write as its owner.
    let as_staff = me.is_staff() && t.user.id != me.id;
    if r.internal && !as_staff {
        return Err(invalid(
            "internal",
            "Only support staff write internal notes.",
        ));
    }
    let message_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO support_messages (id, ticket_id, author_id, body, from_staff, internal, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(message_id)
    .bind(id)
    .bind(me.id)
    .bind(&r.body)
    .bind(as_staff)
    .bind(r.internal)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    let payload = |body: &str| {
        serde_json::json!({
            "ticket_id": id, "number": t.number, "subject": t.subject,
            "body": body, "author": me.username,
        })
    };
    if r.internal {
        sqlx::query("UPDATE support_tickets SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    } else if as_staff {
        sqlx::query(
            "UPDATE support_tickets SET status = 'pending', waiting_since = NULL, response_due_at = NULL,
                    sla_breached_at = NULL, first_response_at = COALESCE(first_response_at, $2),
                    resolved_at = NULL, updated_at = $2
              WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        outbox.push(
            crate::events::emit(
                &mut tx,
                "support.reply",
                Some(me.id),
                Some(t.user.id),
                payload(&r.body),
            )
            .await?,
        );
    } else {
        // The owner: a new wait for staff starts unless one is running.
        sqlx::query(
            "UPDATE support_tickets SET status = 'open', resolved_at = NULL, updated_at = $2,
                    waiting_since = CASE WHEN status = 'open' THEN waiting_since ELSE $2 END,
                    response_due_at = CASE WHEN status = 'open' THEN response_due_at ELSE $2 + $3 END,
                    sla_breached_at = CASE WHEN status = 'open' THEN sla_breached_at END
              WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .bind(t.priority.response_target())
        .execute(&mut *tx)
        .await?;
        if let Some(staff) = t.assigned_to.as_ref().filter(|a| a.id != me.id) {
            outbox.push(
                crate::events::emit(
                    &mut tx,
                    "support.user_reply",
                    Some(me.id),
                    Some(staff.id),
                    payload(&r.body),
                )
                .await?,
            );
        }
    }
    let ticket = visible(&mut tx, me, id).await?;
    let message: MessageRow = sqlx::query_as(&format!("{SELECT_MESSAGE} WHERE m.id = $1"))
        .bind(message_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Replied {
        message: message.into(),
        ticket,
        outbox,
    })
}
