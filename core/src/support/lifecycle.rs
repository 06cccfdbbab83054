//! A ticket's lifecycle: staff and owner changes ([`update`]), merging duplicates
//! ([`merge`]) and the scheduler's auto-close and SLA pass ([`sweep`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    SupportError, SupportResult, Ticket, TicketCategory, TicketPriority, TicketStatus, conflict,
    invalid, locked, require_staff, visible,
};
use crate::account::Actor;

/// Changes to a ticket (absent fields stay). Staff change anything; the owner only
/// `status` (resolve or close their ticket).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    pub category: Option<TicketCategory>,
    /// A staff member's id, or null to unassign.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub assigned_to: Option<Option<Uuid>>,
}

/// `Some(None)` for an explicit null, `None` when the field is absent.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// What an update did.
#[derive(Debug)]
pub struct Updated {
    pub ticket: Ticket,
    pub outbox: Vec<i64>,
}

/// Applies `p` to ticket `id` at `now` (see [`TicketPatch`]; moves per
/// [`TicketStatus::can_move`]). A new assignee is told.
pub async fn update(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    p: &TicketPatch,
    now: DateTime<Utc>,
) -> SupportResult<Updated> {
    let staff = me.is_staff();
    if !staff && (p.priority.is_some() || p.category.is_some() || p.assigned_to.is_some()) {
        return Err(SupportError::PermissionDenied(
            "Only support staff change a ticket's priority, category or assignee.",
        ));
    }
    let mut tx = db.begin().await?;
    let t = locked(&mut tx, me, id).await?;
    if t.merged_into.is_some() {
        return Err(conflict(
            "ticket_merged",
            "This ticket was merged into another; change that one.",
        ));
    }
    let status = match p.status {
        Some(to) if to != t.status => {
            if !t.status.can_move(to, staff) {
                return Err(invalid(
                    "status",
                    format!("A ticket cannot move from {} to {to}.", t.status),
                ));
            }
            to
        }
        _ => t.status,
    };
    let mut assignee = t.assigned_to.as_ref().map(|a| a.id);
    if let Some(a) = p.assigned_to {
        if let Some(user) = a {
            let is_staff: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND status = 'active' AND role IN ('moderator', 'admin'))",
            )
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
            if !is_staff {
                return Err(invalid(
                    "assigned_to",
                    "Not a support staff member (a moderator or an admin).",
                ));
            }
        }
        assignee = a;
    }
    let priority = p.priority.unwrap_or(t.priority);
    // The wait: a ticket moving to open waits from now; one staying open keeps its
    // start; the due time follows the wait and the priority.
    let waiting = match (t.status, status) {
        (_, s) if s != TicketStatus::Open => None,
        (TicketStatus::Open, _) => Some(None),
        _ => Some(Some(now)),
    };
    sqlx::query(
        "UPDATE support_tickets SET status = $2, priority = $3, category = $4, assigned_to = $5,
                waiting_since = CASE WHEN $6 THEN NULL WHEN $7::timestamptz IS NOT NULL THEN $7 ELSE waiting_since END,
                updated_at = $8,
                resolved_at = CASE WHEN $2 = 'resolved' AND status <> 'resolved' THEN $8
                                   WHEN $2 IN ('open', 'pending') THEN NULL ELSE resolved_at END,
                closed_at = CASE WHEN $2 = 'closed' AND status <> 'closed' THEN $8
                                 WHEN $2 <> 'closed' THEN NULL ELSE closed_at END,
                sla_breached_at = CASE WHEN $6 OR $7::timestamptz IS NOT NULL THEN NULL ELSE sla_breached_at END,
                response_due_at = CASE WHEN $6 THEN NULL WHEN $7::timestamptz IS NOT NULL THEN $7 + $9
                                       ELSE waiting_since + $9 END
          WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(priority)
    .bind(p.category.unwrap_or(t.category))
    .bind(assignee)
    .bind(waiting.is_none())
    .bind(waiting.flatten())
    .bind(now)
    .bind(priority.response_target())
    .execute(&mut *tx)
    .await?;
    if staff && t.user.id != me.id {
        crate::audit::record(
            &mut tx,
            me,
            "ticket.update",
            "ticket",
            Some(id),
            serde_json::json!({ "number": t.number, "status": p.status, "priority": p.priority,
                                "category": p.category, "assigned_to": p.assigned_to }),
        )
        .await?;
    }
    let mut outbox = Vec::new();
    if let Some(new) =
        assignee.filter(|a| Some(*a) != t.assigned_to.as_ref().map(|x| x.id) && *a != me.id)
    {
        outbox.push(
            crate::events::emit(
                &mut tx,
                "support.assigned",
                Some(me.id),
                Some(new),
                serde_json::json!({ "ticket_id": id, "number": t.number, "subject": t.subject,
                                    "priority": priority, "author": me.username }),
            )
            .await?,
        );
    }
    let ticket = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(Updated { ticket, outbox })
}

/// Merges ticket `id` into `into` (staff): the duplicate's conversation and files move
/// to the kept ticket (its description becomes a message there, at its own time), and
/// the duplicate is closed, pointing at the kept one. Both must belong to the same
/// user (a merge never shows one user's words to another), neither may be closed or
/// merged already.
pub async fn merge(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    into: Uuid,
    now: DateTime<Utc>,
) -> SupportResult<Ticket> {
    require_staff(me)?;
    if id == into {
        return Err(invalid("into", "A ticket cannot be merged into itself."));
    }
    let mut tx = db.begin().await?;
    // Both row locks, in one order, so two crossed merges cannot deadlock.
    let locked_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM support_tickets WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(vec![id, into])
    .fetch_all(&mut *tx)
    .await?;
    if !locked_ids.contains(&id) {
        return Err(SupportError::NotFound);
    }
    if !locked_ids.contains(&into) {
        return Err(invalid("into", "No such ticket."));
    }
    let dup = visible(&mut tx, me, id).await?;
    let kept = visible(&mut tx, me, into).await?;
    if dup.user.id != kept.user.id {
        return Err(conflict(
            "different_owner",
            "Only tickets of the same user can be merged.",
        ));
    }
    for (t, field) in [(&dup, "id"), (&kept, "into")] {
        if t.status == TicketStatus::Closed {
            return Err(conflict(
                "ticket_closed",
                format!("Ticket #{} ({field}) is closed.", t.number),
            ));
        }
    }
    sqlx::query(
        "INSERT INTO support_messages (id, ticket_id, author_id, body, from_staff, internal, created_at)
         VALUES ($1, $2, $3, $4, false, false, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(into)
    .bind(dup.user.id)
    .bind(format!(
        "(Merged from #{}: {})\n\n{}",
        dup.number, dup.subject, dup.description
    ))
    .bind(dup.created_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE support_messages SET ticket_id = $2 WHERE ticket_id = $1")
        .bind(id)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE support_attachments SET ticket_id = $2 WHERE ticket_id = $1")
        .bind(id)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE support_tickets SET status = 'closed', merged_into = $2, closed_at = $3, updated_at = $3,
                waiting_since = NULL, response_due_at = NULL
          WHERE id = $1",
    )
    .bind(id)
    .bind(into)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE support_tickets SET updated_at = $2 WHERE id = $1")
        .bind(into)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    crate::audit::record(
        &mut tx,
        me,
        "ticket.merge",
        "ticket",
        Some(id),
        serde_json::json!({ "number": dup.number, "into": into, "into_number": kept.number }),
    )
    .await?;
    let kept = visible(&mut tx, me, into).await?;
    tx.commit().await?;
    Ok(kept)
}

/// What [`sweep`] did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Tickets closed after their auto-close window.
    pub closed: Vec<Uuid>,
    /// Tickets that passed their response time unanswered (each once per wait).
    pub breached: Vec<Uuid>,
    /// Outbox rows of the breach notifications.
    pub outbox: Vec<i64>,
}

/// The scheduler's pass at `now`: closes tickets resolved at least `auto_close_days`
/// ago and stamps the SLA breaches (each once, however many workers run this: the
/// stamp is the claim), telling the assignee, or every active staff member when
/// nobody is assigned.
pub async fn sweep(db: &PgPool, now: DateTime<Utc>, auto_close_days: u32) -> sqlx::Result<Swept> {
    let mut tx = db.begin().await?;
    let closed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE support_tickets SET status = 'closed', closed_at = $1, updated_at = $1
          WHERE status = 'resolved' AND resolved_at <= $1 - make_interval(days => $2)
          RETURNING id",
    )
    .bind(now)
    .bind(i32::try_from(auto_close_days).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    #[derive(sqlx::FromRow)]
    struct Breach {
        id: Uuid,
        number: i64,
        subject: String,
        priority: TicketPriority,
        assigned_to: Option<Uuid>,
        response_due_at: DateTime<Utc>,
    }
    let breached: Vec<Breach> = sqlx::query_as(
        "UPDATE support_tickets SET sla_breached_at = $1
          WHERE status = 'open' AND sla_breached_at IS NULL AND response_due_at <= $1
          RETURNING id, number, subject, priority, assigned_to, response_due_at",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    if !breached.is_empty() {
        let staff: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM users WHERE role IN ('moderator', 'admin') AND status = 'active' ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        for b in &breached {
            let recipients = match b.assigned_to {
                Some(a) => vec![a],
                None => staff.clone(),
            };
            for r in recipients {
                outbox.push(
                    crate::events::emit(
                        &mut tx,
                        "support.sla_breach",
                        None,
                        Some(r),
                        serde_json::json!({ "ticket_id": b.id, "number": b.number, "subject": b.subject,
                                            "priority": b.priority, "due_at": b.response_due_at }),
                    )
                    .await?,
                );
            }
        }
    }
    tx.commit().await?;
    Ok(Swept {
        closed,
        breached: breached.into_iter().map(|b| b.id).collect(),
        outbox,
    })
}
