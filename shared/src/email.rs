//! Queueing an email: a row in `emails` plus an outbox record, in the caller's
//! transaction. The `email` worker sends it.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{jobs::SendEmail, outbox};

/// An email ready to send (already rendered).
#[derive(Debug, Clone)]
pub struct NewEmail {
    pub to: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// Why it is sent (`password_reset`, `security_alert`, ...).
    pub kind: String,
}

/// Stores the email and records its send job. Returns `(email id, outbox row id)`;
/// pass the outbox id to [`outbox::relay_ids`] after commit.
pub async fn queue(conn: &mut PgConnection, email: &NewEmail) -> sqlx::Result<(Uuid, i64)> {
    queue_about(conn, email, None).await
}

/// [`queue`] for a notification email: `about` is its (domain event, recipient), kept on
/// the row for the delivery statistics.
pub async fn queue_about(
    conn: &mut PgConnection,
    email: &NewEmail,
    about: Option<(Uuid, Uuid)>,
) -> sqlx::Result<(Uuid, i64)> {
    let id = Uuid::now_v7();
    let message_id = format!("<{id}@watchparty>");
    sqlx::query!(
        "INSERT INTO emails (id, to_address, subject, body_text, body_html, kind, message_id, event_id, user_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        email.to,
        email.subject,
        email.body_text,
        email.body_html,
        email.kind,
        message_id,
        about.map(|a| a.0),
        about.map(|a| a.1),
    )
    .execute(&mut *conn)
    .await?;
    let outbox_id = outbox::record(conn, &SendEmail { email_id: id }).await?;
    Ok((id, outbox_id))
}
