//! Ticket attachments: screenshots, PDFs and logs, their type read from the bytes
//! ([`crate::files::sniff_document`]), stored through the storage interface under
//! `support/{ticket}/`, served to the ticket's owner and staff only.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{SupportError, SupportResult, TicketStatus, conflict, locked, visible};
use crate::account::Actor;

/// Largest attachment accepted.
pub const ATTACHMENT_MAX_BYTES: usize = 10 * 1024 * 1024;
/// Attachments a ticket holds.
pub const ATTACHMENTS_MAX: i64 = 10;

/// A file attached to a ticket.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attachment {
    pub id: Uuid,
    pub filename: String,
    /// Read from the bytes: an image, `application/pdf` or UTF-8 text.
    pub content_type: String,
    pub size_bytes: i64,
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Where the owner and staff download it (with their token).
    #[sqlx(skip)]
    pub url: String,
    #[serde(skip)]
    #[sqlx(rename = "ticket_id")]
    ticket: Uuid,
}

impl Attachment {
    fn linked(mut self) -> Self {
        self.url = format!(
            "/api/support/tickets/{}/attachments/{}/",
            self.ticket, self.id
        );
        self
    }
}

const SELECT: &str = "SELECT id, ticket_id, filename, content_type, size_bytes, uploader_id AS uploaded_by, created_at
   FROM support_attachments";

/// The attachments of ticket `id`, oldest first.
pub(super) async fn attachments(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Vec<Attachment>> {
    let rows: Vec<Attachment> = sqlx::query_as(&format!(
        "{SELECT} WHERE ticket_id = $1 ORDER BY created_at, id"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Attachment::linked).collect())
}

/// Where a new attachment of ticket `ticket` is stored.
pub fn attachment_key(ticket: Uuid, id: Uuid, ext: &str) -> String {
    format!("support/{ticket}/{id}.{ext}")
}

/// A file already stored, to record on a ticket.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub key: String,
}

/// Whether `me` may attach files to ticket `id` now (before the upload is read).
pub async fn may_attach(db: &PgPool, me: &Actor, id: Uuid) -> SupportResult<()> {
    let mut conn = db.acquire().await?;
    let t = visible(&mut conn, me, id).await?;
    room_for_files(&mut conn, &t).await
}

async fn room_for_files(conn: &mut PgConnection, t: &super::Ticket) -> SupportResult<()> {
    if t.status == TicketStatus::Closed {
        return Err(conflict(
            "ticket_closed",
            "This ticket is closed; open a new ticket instead.",
        ));
    }
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM support_attachments WHERE ticket_id = $1")
            .bind(t.id)
            .fetch_one(&mut *conn)
            .await?;
    if n >= ATTACHMENTS_MAX {
        return Err(conflict(
            "too_many_attachments",
            format!("A ticket holds at most {ATTACHMENTS_MAX} files."),
        ));
    }
    Ok(())
}

/// Records `file` (already stored) on ticket `id`. On an error the caller removes the
/// stored file.
pub async fn attach(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    file: &StoredFile,
    now: DateTime<Utc>,
) -> SupportResult<Attachment> {
    let mut tx = db.begin().await?;
    let t = locked(&mut tx, me, id).await?;
    room_for_files(&mut tx, &t).await?;
    sqlx::query(
        "INSERT INTO support_attachments (id, ticket_id, uploader_id, filename, content_type, size_bytes, storage_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(file.id)
    .bind(id)
    .bind(me.id)
    .bind(&file.filename)
    .bind(&file.content_type)
    .bind(file.size_bytes)
    .bind(&file.key)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE support_tickets SET updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let a: Attachment = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(file.id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(a.linked())
}

/// Attachment `aid` of ticket `id` and its storage key, if `me` may see the ticket.
pub async fn attachment(
    conn: &mut PgConnection,
    me: &Actor,
    id: Uuid,
    aid: Uuid,
) -> SupportResult<(Attachment, String)> {
    visible(conn, me, id).await?;
    let key: Option<String> = sqlx::query_scalar(
        "SELECT storage_key FROM support_attachments WHERE id = $1 AND ticket_id = $2",
    )
    .bind(aid)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let key = key.ok_or(SupportError::NotFound)?;
    let a: Attachment = sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(aid)
        .fetch_one(&mut *conn)
        .await?;
    Ok((a.linked(), key))
}
