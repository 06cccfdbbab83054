//! The `email` queue: send one stored email.
//!
//! Idempotent: the row is locked while it is sent and marked `sent` in the same
//! transaction, so a duplicate or re-delivered job finds it sent and does nothing (one
//! that failed is tried again).
//! (If the process dies after the SMTP server accepted the message but before the
//! commit, the retry sends it again with the same Message-ID; SMTP offers no way to
//! close that window.)

use std::sync::Arc;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use wp_shared::jobs::SendEmail;

use crate::{
    Ctx,
    mailer::{SendError, build_message},
};

pub async fn send_email(
    job: SendEmail,
    ctx: Data<Arc<Ctx>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let mut tx = ctx.db.begin().await?;
    let row = sqlx::query!(
        r#"SELECT to_address, subject, body_text, body_html, message_id, status, kind, event_id, user_id,
                  (SELECT created_at FROM domain_events d WHERE d.id = emails.event_id) AS "event_at?"
           FROM emails WHERE id = $1 FOR UPDATE"#,
        job.email_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tracing::warn!(email_id = %job.email_id, "email row is gone; nothing to send");
        return Ok(());
    };
    // `failed` is tried again: a replayed dead job (`POST /api/admin/queues/email/dead/
    // {id}/replay/`) after the SMTP server came back. Only `sent` is never sent twice.
    if row.status == "sent" {
        tracing::debug!(email_id = %job.email_id, "email already sent");
        return Ok(());
    }
    let result = match build_message(
        &ctx.config.email_from,
        &row.to_address,
        &row.subject,
        &row.message_id,
        &row.body_text,
        row.body_html.as_deref(),
    ) {
        Ok(msg) => ctx.mailer.send(msg).await,
        Err(e) => Err(e),
    };
    // A notification email's final outcome goes to the delivery statistics.
    let stat = |outcome: &'static str, detail: Option<String>| {
        if let (Some(kind), Some(event), Some(user)) = (
            row.kind
                .strip_prefix("notification:")
                .and_then(wp_core::notify::kind),
            row.event_id,
            row.user_id,
        ) {
            crate::notify::record(
                &ctx,
                vec![crate::notify::Delivery {
                    kind: kind.name,
                    channel: "email",
                    outcome,
                    user,
                    event,
                    event_at: row.event_at.unwrap_or_else(chrono::Utc::now),
                    detail,
                }],
            );
        }
    };
    match result {
        Ok(()) => {
            sqlx::query!(
                "UPDATE emails SET status = 'sent', sent_at = now(), attempts = attempts + 1,
                 last_error = NULL WHERE id = $1",
                job.email_id
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(email_id = %job.email_id, "email sent");
            stat("sent", None);
            Ok(())
        }
        Err(e) => {
            let last = crate::retry::last_attempt(&ctx.config, &attempt);
            // An unreachable server is an outage: it never spends the last attempt.
            let outage = matches!(e, SendError::Unreachable(_));
            let permanent = matches!(e, SendError::Permanent(_)) || (last && !outage);
            let status = if permanent { "failed" } else { "queued" };
            sqlx::query!(
                "UPDATE emails SET status = $2, attempts = attempts + 1, last_error = $3
                 WHERE id = $1",
                job.email_id,
                status,
                e.to_string(),
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            stat(
                if permanent { "failed" } else { "retry" },
                Some(e.to_string()),
            );
            if permanent {
                tracing::warn!(email_id = %job.email_id, error = %e, attempt = attempt.current(), "email failed for good");
                Err(AbortError::new(e).into())
            } else {
                tracing::info!(email_id = %job.email_id, error = %e, attempt = attempt.current(), "email send failed; will retry");
                Err(e.into())
            }
        }
    }
}
