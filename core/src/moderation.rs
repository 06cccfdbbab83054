//! Content moderation (seed item 10): users report what they see — a video, a comment,
//! a chat message, a party, a group or a user — and staff work the queue: claim a
//! report, resolve it with an action (remove the content, warn its owner, suspend the
//! owner, or dismiss), the reporters told of the outcome.
//!
//! **Who may report**: anyone who can see the target (else 404, as if it did not
//! exist), never their own content, once per target while the report is handled.
//! **Who works the queue**: staff (moderators, admins). Acting on a person (remove their
//! content, warn, suspend) needs a higher role than theirs; dismissing does not.
//! Resolving a report resolves every open report on the same target with it, so a
//! target reported ten times is handled once and ten reporters hear back.
//!
//! Each claim and resolution is written to the audit log ([`crate::audit`]) in its own
//! transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{account::Actor, social::UserSummary};

mod resolution;
pub use resolution::*;

/// What a report's details may hold.
pub const DETAILS_MAX: usize = 2000;
/// What a resolution note may hold.
pub const NOTE_MAX: usize = 2000;
/// How much of the reported text a report keeps as evidence.
const SNAPSHOT_MAX: usize = 2000;

crate::text_enum! {
    /// What a report is about.
    pub enum TargetType as "report target type" {
        Video = "video",
        Comment = "comment",
        /// A party chat message.
        Message = "message",
        Party = "party",
        Group = "group",
        User = "user",
    }
}

crate::text_enum! {
    /// Why something is reported.
    pub enum ReportReason as "report reason" {
        Spam = "spam",
        Harassment = "harassment",
        Hate = "hate",
        Violence = "violence",
        Sexual = "sexual",
        SelfHarm = "self_harm",
        Misinformation = "misinformation",
        Copyright = "copyright",
        Impersonation = "impersonation",
        Other = "other",
    }
}

crate::text_enum! {
    /// Where a report is in the queue.
    pub enum ReportStatus as "report status" {
        Open = "open",
        /// A staff member is on it.
        Claimed = "claimed",
        Resolved = "resolved",
    }
}

crate::text_enum! {
    /// What staff did about a report.
    pub enum ReportAction as "report action" {
        /// The content is deleted (not for user reports).
        Remove = "remove",
        /// Its owner gets a warning notification.
        Warn = "warn",
        /// Its owner's account is suspended.
        Suspend = "suspend",
        /// No violation found.
        Dismiss = "dismiss",
    }
}

/// Why a moderation action is refused.
#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    /// No such report or target, or a target the caller may not see.
    #[error("Not found.")]
    NotFound,
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type ModerationResult<T> = Result<T, ModerationError>;

fn invalid(field: &'static str, message: impl Into<String>) -> ModerationError {
    ModerationError::Invalid {
        field,
        message: message.into(),
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> ModerationError {
    ModerationError::Conflict {
        code,
        message: message.into(),
    }
}

/// `PermissionDenied` unless `me` is staff.
pub fn require_staff(me: &Actor) -> ModerationResult<()> {
    if me.is_staff() {
        Ok(())
    } else {
        Err(ModerationError::PermissionDenied(
            "Only moderators and admins work the moderation queue.",
        ))
    }
}

/// A new report.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub target_type: TargetType,
    pub target_id: Uuid,
    pub reason: ReportReason,
    /// What the reporter wants staff to know; up to 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub details: Option<String>,
}

/// What the reporter gets back.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ReportReceipt {
    pub id: Uuid,
    pub target_type: TargetType,
    pub target_id: Uuid,
    pub reason: ReportReason,
    pub status: ReportStatus,
    pub created_at: DateTime<Utc>,
}

/// The target as the reporter sees it: whose it is and its text now.
struct Target {
    owner: Option<Uuid>,
    snapshot: String,
}

/// Target `id` of type `t` if `me` may see it.
async fn target(
    conn: &mut PgConnection,
    me: &Actor,
    t: TargetType,
    id: Uuid,
) -> ModerationResult<Target> {
    let row: Option<(Option<Uuid>, String)> = match t {
        TargetType::Video => {
            sqlx::query_as(
                "SELECT v.owner_id, v.title || E'\n' || v.description FROM videos v
                  WHERE v.id = $1 AND video_visible_to(v.owner_id, v.status, v.visibility, $2, $3)",
            )
            .bind(id)
            .bind(me.id)
            .bind(me.is_staff())
            .fetch_optional(&mut *conn)
            .await?
        }
        TargetType::Comment => {
            sqlx::query_as(
                "SELECT c.user_id, c.content FROM video_comments c JOIN videos v ON v.id = c.video_id
                  WHERE c.id = $1 AND NOT c.is_deleted
                    AND video_visible_to(v.owner_id, v.status, v.visibility, $2, $3)",
            )
            .bind(id)
            .bind(me.id)
            .bind(me.is_staff())
            .fetch_optional(&mut *conn)
            .await?
        }
        TargetType::Message => {
            sqlx::query_as(
                "SELECT m.user_id, m.content FROM party_messages m JOIN parties p ON p.id = m.party_id
                  WHERE m.id = $1 AND NOT m.is_deleted
                    AND party_visible_to(p.id, p.host_id, p.visibility, $2, $3)",
            )
            .bind(id)
            .bind(me.id)
            .bind(me.is_staff())
            .fetch_optional(&mut *conn)
            .await?
        }
        TargetType::Party => {
            sqlx::query_as(
                "SELECT p.host_id, p.title || E'\n' || p.description FROM parties p
                  WHERE p.id = $1 AND party_visible_to(p.id, p.host_id, p.visibility, $2, $3)",
            )
            .bind(id)
            .bind(me.id)
            .bind(me.is_staff())
            .fetch_optional(&mut *conn)
            .await?
        }
        TargetType::Group => {
            let g = crate::group::visible(conn, me, id)
                .await
                .map_err(|e| match e {
                    crate::group::GroupError::Db(e) => ModerationError::Db(e),
                    _ => ModerationError::NotFound,
                })?;
            let admin: Option<Uuid> =
                sqlx::query_scalar("SELECT admin_id FROM social_groups WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Some((admin, format!("{}\n{}", g.name, g.description)))
        }
        TargetType::User => {
            sqlx::query_as(
                "SELECT u.id, u.username || ' (' || u.display_name || E')\n' || coalesce(u.bio, '') FROM users u
                  WHERE u.id = $1 AND u.status <> 'deleted'",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let (owner, text) = row.ok_or(ModerationError::NotFound)?;
    Ok(Target {
        owner,
        snapshot: text.trim().chars().take(SNAPSHOT_MAX).collect(),
    })
}

/// Files `new` for `me` at `now`. 404 for a target `me` cannot see; 400 (`target_id`)
/// for their own; 409 `already_reported` while their earlier report on it is handled.
pub async fn report(
    db: &PgPool,
    me: &Actor,
    new: &NewReport,
    now: DateTime<Utc>,
) -> ModerationResult<ReportReceipt> {
    let details = match new.details.as_deref() {
        None => String::new(),
        Some(d) => crate::trimmed_text(d, 0, DETAILS_MAX).map_err(|m| invalid("details", m))?,
    };
    let mut tx = db.begin().await?;
    let t = target(&mut tx, me, new.target_type, new.target_id).await?;
    if t.owner == Some(me.id) {
        return Err(invalid(
            "target_id",
            "You cannot report yourself or your own content.",
        ));
    }
    let receipt: Option<ReportReceipt> = sqlx::query_as(
        "INSERT INTO content_reports (id, reporter_id, target_type, target_id, target_owner_id, reason,
                details, snapshot, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (reporter_id, target_type, target_id) WHERE status <> 'resolved' DO NOTHING
         RETURNING id, target_type, target_id, reason, status, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(me.id)
    .bind(new.target_type)
    .bind(new.target_id)
    .bind(t.owner)
    .bind(new.reason)
    .bind(&details)
    .bind(&t.snapshot)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let receipt = receipt.ok_or_else(|| {
        conflict(
            "already_reported",
            "You reported this already; staff are on it.",
        )
    })?;
    tx.commit().await?;
    Ok(receipt)
}

/// A report as staff see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    pub id: Uuid,
    pub target_type: TargetType,
    pub target_id: Uuid,
    /// Whose content it is (the user, for a user report); null once the account is gone.
    pub target_owner: Option<UserSummary>,
    /// Null once the reporter's account is gone.
    pub reporter: Option<UserSummary>,
    pub reason: ReportReason,
    pub details: String,
    /// The reported text when it was reported (a title and description, a comment, a
    /// message, a profile), kept as evidence.
    pub snapshot: String,
    pub status: ReportStatus,
    pub claimed_by: Option<UserSummary>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub action: Option<ReportAction>,
    pub resolution_note: Option<String>,
    pub resolved_by: Option<UserSummary>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Reports on the same target not yet resolved (this one included if open).
    pub open_reports_on_target: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    id: Uuid,
    target_type: TargetType,
    target_id: Uuid,
    o_id: Option<Uuid>,
    o_username: Option<String>,
    o_display_name: Option<String>,
    o_avatar_path: Option<String>,
    r_id: Option<Uuid>,
    r_username: Option<String>,
    r_display_name: Option<String>,
    r_avatar_path: Option<String>,
    reason: ReportReason,
    details: String,
    snapshot: String,
    status: ReportStatus,
    c_id: Option<Uuid>,
    c_username: Option<String>,
    c_display_name: Option<String>,
    c_avatar_path: Option<String>,
    claimed_at: Option<DateTime<Utc>>,
    action: Option<ReportAction>,
    resolution_note: Option<String>,
    s_id: Option<Uuid>,
    s_username: Option<String>,
    s_display_name: Option<String>,
    s_avatar_path: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    open_reports_on_target: i64,
    created_at: DateTime<Utc>,
}

fn summary(
    id: Option<Uuid>,
    username: Option<String>,
    display_name: Option<String>,
    avatar: Option<String>,
) -> Option<UserSummary> {
    match (id, username, display_name) {
        (Some(id), Some(u), Some(d)) => Some(UserSummary::new(id, u, d, avatar.as_deref())),
        _ => None,
    }
}

impl From<ReportRow> for Report {
    fn from(r: ReportRow) -> Self {
        Self {
            id: r.id,
            target_type: r.target_type,
            target_id: r.target_id,
            target_owner: summary(r.o_id, r.o_username, r.o_display_name, r.o_avatar_path),
            reporter: summary(r.r_id, r.r_username, r.r_display_name, r.r_avatar_path),
            reason: r.reason,
            details: r.details,
            snapshot: r.snapshot,
            status: r.status,
            claimed_by: summary(r.c_id, r.c_username, r.c_display_name, r.c_avatar_path),
            claimed_at: r.claimed_at,
            action: r.action,
            resolution_note: r.resolution_note,
            resolved_by: summary(r.s_id, r.s_username, r.s_display_name, r.s_avatar_path),
            resolved_at: r.resolved_at,
            open_reports_on_target: r.open_reports_on_target,
            created_at: r.created_at,
        }
    }
}

const SELECT: &str = "SELECT r.id, r.target_type, r.target_id,
        o.id AS o_id, o.username AS o_username, o.display_name AS o_display_name, o.avatar_path AS o_avatar_path,
        rp.id AS r_id, rp.username AS r_username, rp.display_name AS r_display_name, rp.avatar_path AS r_avatar_path,
        r.reason, r.details, r.snapshot, r.status,
        c.id AS c_id, c.username AS c_username, c.display_name AS c_display_name, c.avatar_path AS c_avatar_path,
        r.claimed_at, r.action, r.resolution_note,
        s.id AS s_id, s.username AS s_username, s.display_name AS s_display_name, s.avatar_path AS s_avatar_path,
        r.resolved_at,
        (SELECT count(*) FROM content_reports x WHERE x.target_type = r.target_type
            AND x.target_id = r.target_id AND x.status <> 'resolved') AS open_reports_on_target,
        r.created_at
   FROM content_reports r
   LEFT JOIN users o ON o.id = r.target_owner_id
   LEFT JOIN users rp ON rp.id = r.reporter_id
   LEFT JOIN users c ON c.id = r.claimed_by
   LEFT JOIN users s ON s.id = r.resolved_by";

/// Report `id` (staff).
pub async fn get(conn: &mut PgConnection, me: &Actor, id: Uuid) -> ModerationResult<Report> {
    require_staff(me)?;
    sqlx::query_as::<_, ReportRow>(&format!("{SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(Report::from)
        .ok_or(ModerationError::NotFound)
}

crate::text_enum! {
    /// The order of the queue.
    pub enum QueueOrdering as "report ordering" {
        /// Oldest first (the default: first come, first served).
        Oldest = "oldest",
        Newest = "newest",
        /// Targets with the most open reports first, then oldest.
        MostReported = "most_reported",
    }
}

/// Who a queue list is filtered to by claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant {
    Nobody,
    User(Uuid),
}

/// Filters of the queue.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Empty: open and claimed.
    pub status: Vec<ReportStatus>,
    pub target_type: Vec<TargetType>,
    pub reason: Vec<ReportReason>,
    pub claimed_by: Option<Claimant>,
    pub target_id: Option<Uuid>,
    /// Reports about this user's content (or this user).
    pub target_owner: Option<Uuid>,
    pub reporter: Option<Uuid>,
    pub ordering: Option<QueueOrdering>,
}

/// A page of the queue (staff) and how many reports match in all.
pub async fn queue(
    conn: &mut PgConnection,
    me: &Actor,
    f: &QueueFilter,
    limit: i64,
    offset: i64,
) -> ModerationResult<(Vec<Report>, i64)> {
    require_staff(me)?;
    let statuses: Vec<&str> = if f.status.is_empty() {
        vec!["open", "claimed"]
    } else {
        f.status.iter().map(|s| s.as_str()).collect()
    };
    let types: Vec<&str> = f.target_type.iter().map(|s| s.as_str()).collect();
    let reasons: Vec<&str> = f.reason.iter().map(|s| s.as_str()).collect();
    let (nobody, claimant) = match f.claimed_by {
        Some(Claimant::Nobody) => (true, None),
        Some(Claimant::User(u)) => (false, Some(u)),
        None => (false, None),
    };
    let cond = "r.status = ANY($1) AND (cardinality($2::text[]) = 0 OR r.target_type = ANY($2))
        AND (cardinality($3::text[]) = 0 OR r.reason = ANY($3))
        AND (NOT $4 OR r.claimed_by IS NULL) AND ($5::uuid IS NULL OR r.claimed_by = $5)
        AND ($6::uuid IS NULL OR r.target_id = $6) AND ($7::uuid IS NULL OR r.target_owner_id = $7)
        AND ($8::uuid IS NULL OR r.reporter_id = $8)";
    let order = match f.ordering.unwrap_or(QueueOrdering::Oldest) {
        QueueOrdering::Oldest => "r.created_at, r.id",
        QueueOrdering::Newest => "r.created_at DESC, r.id DESC",
        QueueOrdering::MostReported => "open_reports_on_target DESC, r.created_at, r.id",
    };
    macro_rules! bind_all {
        ($q:expr) => {
            $q.bind(&statuses)
                .bind(&types)
                .bind(&reasons)
                .bind(nobody)
                .bind(claimant)
                .bind(f.target_id)
                .bind(f.target_owner)
                .bind(f.reporter)
        };
    }
    let count: i64 = bind_all!(sqlx::query_scalar(&format!(
        "SELECT count(*) FROM content_reports r WHERE {cond}"
    )))
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<ReportRow> = bind_all!(sqlx::query_as(&format!(
        "{SELECT} WHERE {cond} ORDER BY {order} LIMIT $9 OFFSET $10"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows.into_iter().map(Report::from).collect(), count))
}

/// The report's status and claimant, under its row lock.
async fn lock(conn: &mut PgConnection, id: Uuid) -> ModerationResult<(ReportStatus, Option<Uuid>)> {
    sqlx::query_as("SELECT status, claimed_by FROM content_reports WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(ModerationError::NotFound)
}

/// `me` takes report `id` (staff). Claiming one's own claim again changes nothing;
/// another's claim is 409 `already_claimed` unless `me` is an admin (who takes it over).
pub async fn claim(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    now: DateTime<Utc>,
) -> ModerationResult<Report> {
    require_staff(me)?;
    let mut tx = db.begin().await?;
    let (status, claimant) = lock(&mut tx, id).await?;
    if status == ReportStatus::Resolved {
        return Err(conflict("already_resolved", "This report is resolved."));
    }
    if claimant != Some(me.id) {
        if claimant.is_some() && me.role < crate::account::Role::Admin {
            return Err(conflict(
                "already_claimed",
                "Another staff member is on this report.",
            ));
        }
        sqlx::query(
            "UPDATE content_reports SET status = 'claimed', claimed_by = $2, claimed_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(me.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::audit::record(
            &mut tx,
            me,
            "report.claim",
            "report",
            Some(id),
            serde_json::json!({ "taken_from": claimant }),
        )
        .await?;
    }
    let r = get(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(r)
}

/// The caller's own reports, newest first (what happened to them).
pub async fn mine(
    conn: &mut PgConnection,
    me: &Actor,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<ReportReceipt>, i64)> {
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM content_reports WHERE reporter_id = $1")
            .bind(me.id)
            .fetch_one(&mut *conn)
            .await?;
    let rows = sqlx::query_as(
        "SELECT id, target_type, target_id, reason, status, created_at FROM content_reports
          WHERE reporter_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(me.id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(action: ReportAction, note: Option<&str>, days: Option<i64>) -> Resolution {
        Resolution {
            action,
            note: note.map(str::to_owned),
            suspend_days: days,
        }
    }

    #[test]
    fn resolutions_are_checked_against_the_target() {
        use ReportAction::*;
        assert!(res(Dismiss, None, None).checked(TargetType::User).is_ok());
        assert!(res(Remove, None, None).checked(TargetType::Video).is_ok());
        let field = |r: Resolution, t| match r.checked(t) {
            Err(ModerationError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(res(Remove, None, None), TargetType::User), "action");
        assert_eq!(
            field(res(Warn, Some("  "), None), TargetType::Comment),
            "note"
        );
        assert_eq!(field(res(Suspend, None, None), TargetType::User), "note");
        assert_eq!(
            field(res(Warn, Some("x"), Some(3)), TargetType::User),
            "suspend_days"
        );
        assert_eq!(
            field(res(Suspend, Some("x"), Some(0)), TargetType::User),
            "suspend_days"
        );
        assert_eq!(
            res(Suspend, Some(" spam "), Some(7))
                .checked(TargetType::User)
                .unwrap()
                .note
                .as_deref(),
            Some("spam")
        );
    }
}
