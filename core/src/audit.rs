//! The audit log: one row per staff action (suspensions, role changes, broadcasts,
//! replays, moderation, help-desk changes), written by [`record`] inside the action's
//! own transaction, so a row exists exactly when the action happened. Admins read it
//! ([`list`]); nobody edits it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::account::Actor;

/// Records that `actor` did `action` (`user.suspend`, `report.resolve`, ...) to
/// `target_type` `target_id`, with what a reader needs to know in `details`.
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    target_type: &str,
    target_id: Option<Uuid>,
    details: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, actor_username, action, target_type, target_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(actor.id)
    .bind(&actor.username)
    .bind(action)
    .bind(target_type)
    .bind(target_id)
    .bind(details)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One staff action.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: Uuid,
    /// Null once the account is gone (`actor_username` still says who).
    pub actor_id: Option<Uuid>,
    pub actor_username: String,
    /// What was done: `user.suspend`, `user.unsuspend`, `user.role`, `broadcast.send`,
    /// `queue.replay`, `report.claim`, `report.resolve`, `ticket.update`, `ticket.merge`,
    /// `faq.create`, `faq.update`, `faq.delete`.
    pub action: String,
    /// `user`, `broadcast`, `queue`, `report`, `ticket`, `faq`.
    pub target_type: String,
    pub target_id: Option<Uuid>,
    /// The action's particulars (a reason, the new role, the changed fields).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Filters of [`list`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<Uuid>,
    /// An action, or a prefix ending in `.` (`user.`).
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A page of the log, newest first, and how many entries match in all.
pub async fn list(
    conn: &mut PgConnection,
    f: &AuditFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<AuditEntry>, i64)> {
    let action = f.action.as_deref().map(|a| match a.strip_suffix('.') {
        Some(prefix) => format!("{}.%", crate::like_literal(prefix)),
        None => crate::like_literal(a),
    });
    let cond = "($1::uuid IS NULL OR actor_id = $1) AND ($2::text IS NULL OR action LIKE $2)
        AND ($3::text IS NULL OR target_type = $3) AND ($4::uuid IS NULL OR target_id = $4)
        AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)";
    macro_rules! bind_all {
        ($q:expr) => {
            $q.bind(f.actor)
                .bind(&action)
                .bind(&f.target_type)
                .bind(f.target_id)
                .bind(f.since)
                .bind(f.until)
        };
    }
    let count: i64 = bind_all!(sqlx::query_scalar(&format!(
        "SELECT count(*) FROM audit_log WHERE {cond}"
    )))
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<AuditEntry> = bind_all!(sqlx::query_as(&format!(
        "SELECT id, actor_id, actor_username, action, target_type, target_id, details, created_at
           FROM audit_log WHERE {cond} ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, count))
}
