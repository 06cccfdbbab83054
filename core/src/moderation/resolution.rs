//! Resolving reports: the [`Resolution`] staff choose, and [`resolve`], which applies it
//! (removing the content, warning or suspending its owner, or dismissing) to every open
//! report on the same target.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    ModerationError, ModerationResult, NOTE_MAX, Report, ReportAction, ReportStatus, TargetType,
    conflict, get, invalid, lock, require_staff,
};
use crate::account::Actor;

/// How staff resolve a report.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    pub action: ReportAction,
    /// For the record, and sent to the owner with a warning or suspension; up to 2,000
    /// characters. Required for `warn` and `suspend`.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
    /// With `suspend`: how many days (1 to 3650); absent = until lifted.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    pub suspend_days: Option<i64>,
}

impl Resolution {
    /// Trimmed and checked against the report's target type.
    pub fn checked(self, target: TargetType) -> ModerationResult<Self> {
        let note = match self.note.as_deref() {
            None => None,
            Some(n) => Some(crate::trimmed_text(n, 0, NOTE_MAX).map_err(|m| invalid("note", m))?),
        }
        .filter(|n| !n.is_empty());
        if matches!(self.action, ReportAction::Warn | ReportAction::Suspend) && note.is_none() {
            return Err(invalid(
                "note",
                "Say why: the owner is told (1 to 2000 characters).",
            ));
        }
        if self.action == ReportAction::Remove && target == TargetType::User {
            return Err(invalid(
                "action",
                "A user report is resolved with warn, suspend or dismiss.",
            ));
        }
        if self.suspend_days.is_some() && self.action != ReportAction::Suspend {
            return Err(invalid("suspend_days", "Only with the suspend action."));
        }
        if self.suspend_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(invalid("suspend_days", "1 to 3650."));
        }
        Ok(Self {
            action: self.action,
            note,
            suspend_days: self.suspend_days,
        })
    }
}

/// Content [`resolve`] removed: what the adapter finishes after commit (files to
/// delete, sockets to tell, caches to drop).
#[derive(Debug, Clone)]
pub enum Removed {
    Video { id: Uuid, files: Vec<String> },
    Comment { video_id: Uuid },
    Message { party_id: Uuid, id: Uuid },
    Party { id: Uuid },
    Group { id: Uuid },
}

/// A suspension [`resolve`] asks for: the adapter applies it in the same transaction
/// (it tells the owner by email and signs their sessions out).
#[derive(Debug, Clone)]
pub struct Suspension {
    pub user: Uuid,
    pub reason: String,
    pub until: Option<DateTime<Utc>>,
}

/// What a resolution did.
#[derive(Debug)]
pub struct Resolved {
    pub report: Report,
    /// Every report resolved with it (the same target's open ones).
    pub resolved: Vec<Uuid>,
    pub removed: Option<Removed>,
    pub suspend: Option<Suspension>,
    /// Outbox rows of the notifications (relay after commit).
    pub outbox: Vec<i64>,
}

/// Resolves report `id` with `r` (checked) at `now`, in the caller's transaction,
/// together with every open report on the same target. A report claimed by someone
/// else is 409 `already_claimed` (admins may resolve it). Acting on a person needs a
/// higher role than theirs (`PermissionDenied`).
pub async fn resolve(
    tx: &mut PgConnection,
    me: &Actor,
    id: Uuid,
    r: &Resolution,
    now: DateTime<Utc>,
) -> ModerationResult<Resolved> {
    require_staff(me)?;
    let (status, claimant) = lock(tx, id).await?;
    if status == ReportStatus::Resolved {
        return Err(conflict("already_resolved", "This report is resolved."));
    }
    if claimant.is_some_and(|c| c != me.id) && me.role < crate::account::Role::Admin {
        return Err(conflict(
            "already_claimed",
            "Another staff member is on this report.",
        ));
    }
    let report = get(tx, me, id).await?;
    let owner = report.target_owner.as_ref().map(|o| o.id);
    if r.action != ReportAction::Dismiss {
        let Some(owner) = owner else {
            return Err(invalid(
                "action",
                "The owner's account is gone: only dismiss is left.",
            ));
        };
        let role: crate::account::Role = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
            .bind(owner)
            .fetch_one(&mut *tx)
            .await?;
        if !me.outranks(role) {
            return Err(ModerationError::PermissionDenied(
                "You can only act on accounts of a lower role than yours.",
            ));
        }
    }
    let mut outbox = Vec::new();
    let mut removed = None;
    let mut suspend = None;
    match r.action {
        ReportAction::Remove => {
            removed = remove(tx, me, report.target_type, report.target_id).await?
        }
        ReportAction::Warn => {
            if let Some(owner) = owner {
                outbox.push(
                    crate::events::emit(
                        tx,
                        "moderation.warning",
                        Some(me.id),
                        Some(owner),
                        serde_json::json!({ "target_type": report.target_type, "target_id": report.target_id,
                                            "reason": report.reason, "note": r.note }),
                    )
                    .await?,
                );
            }
        }
        ReportAction::Suspend => {
            suspend = owner.map(|user| Suspension {
                user,
                reason: r.note.clone().unwrap_or_default(),
                until: r.suspend_days.map(|d| now + chrono::TimeDelta::days(d)),
            });
        }
        ReportAction::Dismiss => {}
    }
    #[derive(sqlx::FromRow)]
    struct Closed {
        id: Uuid,
        reporter_id: Option<Uuid>,
    }
    let closed: Vec<Closed> = sqlx::query_as(
        "UPDATE content_reports SET status = 'resolved', action = $3, resolution_note = $4,
                resolved_by = $5, resolved_at = $6
          WHERE target_type = $1 AND target_id = $2 AND status <> 'resolved'
          RETURNING id, reporter_id",
    )
    .bind(report.target_type)
    .bind(report.target_id)
    .bind(r.action)
    .bind(&r.note)
    .bind(me.id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let outcome = match r.action {
        ReportAction::Dismiss => "dismissed",
        _ => "action_taken",
    };
    for c in &closed {
        if let Some(reporter) = c.reporter_id {
            outbox.push(
                crate::events::emit(
                    tx,
                    "moderation.report_resolved",
                    None,
                    Some(reporter),
                    serde_json::json!({ "report_id": c.id, "target_type": report.target_type,
                                        "reason": report.reason, "outcome": outcome }),
                )
                .await?,
            );
        }
    }
    let resolved: Vec<Uuid> = closed.iter().map(|c| c.id).collect();
    crate::audit::record(
        tx,
        me,
        "report.resolve",
        "report",
        Some(id),
        serde_json::json!({ "action": r.action, "note": r.note, "target_type": report.target_type,
                            "target_id": report.target_id, "target_owner": owner,
                            "suspend_days": r.suspend_days, "reports_resolved": resolved.len() }),
    )
    .await?;
    let report = get(tx, me, id).await?;
    Ok(Resolved {
        report,
        resolved,
        removed,
        suspend,
        outbox,
    })
}

/// Deletes the target (staff), the same way its owner's delete would; `None` when it is
/// gone already.
async fn remove(
    tx: &mut PgConnection,
    me: &Actor,
    t: TargetType,
    id: Uuid,
) -> ModerationResult<Option<Removed>> {
    Ok(match t {
        TargetType::Video => {
            let files: Option<(String, Option<String>)> = sqlx::query_as(
                "DELETE FROM videos WHERE id = $1 RETURNING storage_key, thumbnail_key",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            files.map(|(k, thumb)| Removed::Video {
                id,
                files: std::iter::once(k).chain(thumb).collect(),
            })
        }
        TargetType::Comment => {
            let video: Option<Uuid> = sqlx::query_scalar(
                "SELECT video_id FROM video_comments WHERE id = $1 AND NOT is_deleted",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(video) = video else { return Ok(None) };
            let Some(v) = crate::video::visible(tx, Some(me), video).await? else {
                return Ok(None);
            };
            match crate::comment::delete(tx, &v, me, id).await {
                Ok(()) => Some(Removed::Comment { video_id: video }),
                Err(crate::comment::CommentError::NotFound) => None,
                Err(crate::comment::CommentError::Db(e)) => return Err(e.into()),
                Err(e) => return Err(conflict("cannot_remove", e.to_string())),
            }
        }
        TargetType::Message => {
            let party: Option<Uuid> = sqlx::query_scalar(
                "SELECT party_id FROM party_messages WHERE id = $1 AND NOT is_deleted",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            match party {
                Some(party_id) => {
                    crate::party::chat::delete(tx, id).await?;
                    Some(Removed::Message { party_id, id })
                }
                None => None,
            }
        }
        TargetType::Party => sqlx::query("DELETE FROM parties WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            .gt(&0)
            .then_some(Removed::Party { id }),
        TargetType::Group => sqlx::query("DELETE FROM social_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            .gt(&0)
            .then_some(Removed::Group { id }),
        TargetType::User => None,
    })
}
