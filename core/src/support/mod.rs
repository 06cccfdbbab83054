//! The help desk (seed item 7): support tickets with their conversation, attachments,
//! SLA targets and the ticket state machine; the FAQ ([`faq`]); product feedback
//! ([`feedback`]).
//!
//! **Who sees a ticket** ([`VISIBLE`]): its owner and staff (moderators, admins); anyone
//! else gets 404. Internal notes are staff-only: the owner never reads or hears of them.
//!
//! **States** ([`TicketStatus`]): `open` (waits for staff) → `pending` (staff replied,
//! waits for the user) → `open` again on the user's reply; `resolved` by staff or the
//! owner, reopened (`open`) by the owner's reply while resolved; `closed` by the
//! scheduler [`AUTO_CLOSE_AFTER_DAYS`](crate::support) days after resolution (configured),
//! by staff, by the owner, or by a merge. A closed ticket takes no replies (open a new
//! one); staff may reopen it. Every move is [`TicketStatus::can_move`].
//!
//! **SLA**: while open, a ticket waits for a staff answer from `waiting_since`; its
//! `response_due_at` is that plus [`TicketPriority::response_target`]. [`sweep`] stamps
//! `sla_breached_at` once per wait and tells the assignee (or every staff member when
//! nobody is assigned). A staff reply ends the wait; a priority change moves the due
//! time.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{account::Actor, social::UserSummary};

pub mod faq;
pub mod feedback;
mod files;
mod lifecycle;
mod messages;
pub use files::*;
pub use lifecycle::*;
pub use messages::*;

pub const SUBJECT_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const BODY_MAX: usize = 10_000;
/// Tickets a user may have not yet resolved or closed at once.
pub const OPEN_TICKETS_MAX: i64 = 10;
/// Messages a ticket holds (its detail is one read).
pub const MESSAGES_MAX: i64 = 500;
/// The default auto-close window after resolution (`SUPPORT_AUTO_CLOSE_DAYS`).
pub const AUTO_CLOSE_AFTER_DAYS: u32 = 7;

crate::text_enum! {
    /// Where a ticket is in its life.
    pub enum TicketStatus as "ticket status" {
        /// Waits for staff.
        Open = "open",
        /// Staff answered; waits for the user.
        Pending = "pending",
        Resolved = "resolved",
        Closed = "closed",
    }
}

impl TicketStatus {
    /// Whether a ticket may move from `self` to `to` by an explicit change (replies
    /// move tickets by [`reply`]'s own rules). Staff: any move but into `pending`
    /// (a staff reply does that) and out of a merge. The owner: resolve or close.
    pub fn can_move(self, to: TicketStatus, staff: bool) -> bool {
        use TicketStatus::*;
        if self == to {
            return false;
        }
        match (staff, to) {
            (_, Pending) => false,
            (true, Open) => matches!(self, Pending | Resolved | Closed),
            (true, Resolved) => matches!(self, Open | Pending),
            (_, Closed) => true,
            (false, Resolved) => matches!(self, Open | Pending),
            (false, Open) => false,
        }
    }
}

crate::text_enum! {
    /// How urgent a ticket is; its SLA target follows.
    pub enum TicketPriority as "ticket priority" {
        Low = "low",
        Normal = "normal",
        High = "high",
        Urgent = "urgent",
    }
}

impl TicketPriority {
    /// How soon staff should answer a ticket waiting at this priority.
    pub fn response_target(self) -> TimeDelta {
        match self {
            TicketPriority::Urgent => TimeDelta::hours(1),
            TicketPriority::High => TimeDelta::hours(4),
            TicketPriority::Normal => TimeDelta::hours(24),
            TicketPriority::Low => TimeDelta::hours(72),
        }
    }
}

crate::text_enum! {
    /// What a ticket is about.
    pub enum TicketCategory as "ticket category" {
        Account = "account",
        Playback = "playback",
        Parties = "parties",
        Videos = "videos",
        Notifications = "notifications",
        Abuse = "abuse",
        Bug = "bug",
        FeatureRequest = "feature_request",
        Other = "other",
    }
}

/// The SLA state of a ticket.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Sla {
    /// How soon staff should answer at this priority, in hours.
    pub response_target_hours: i64,
    /// When staff must answer by (only while the ticket is open).
    pub response_due_at: Option<DateTime<Utc>>,
    /// When the current wait passed its due time unanswered.
    pub breached_at: Option<DateTime<Utc>>,
    pub breached: bool,
}

/// A ticket as its owner or staff see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Ticket {
    pub id: Uuid,
    /// A short reference for people (`#1042`).
    pub number: i64,
    pub subject: String,
    pub description: String,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub category: TicketCategory,
    /// Who opened it.
    pub user: UserSummary,
    /// The staff member working on it.
    pub assigned_to: Option<UserSummary>,
    /// The ticket this one was merged into (it is closed).
    pub merged_into: Option<Uuid>,
    pub sla: Sla,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Replies (and, for staff, notes) so far.
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: Uuid,
    number: i64,
    subject: String,
    description: String,
    status: TicketStatus,
    priority: TicketPriority,
    category: TicketCategory,
    user_id: Uuid,
    user_username: String,
    user_display_name: String,
    user_avatar_path: Option<String>,
    assignee_id: Option<Uuid>,
    assignee_username: Option<String>,
    assignee_display_name: Option<String>,
    assignee_avatar_path: Option<String>,
    merged_into: Option<Uuid>,
    response_due_at: Option<DateTime<Utc>>,
    sla_breached_at: Option<DateTime<Utc>>,
    first_response_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    message_count: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<TicketRow> for Ticket {
    fn from(r: TicketRow) -> Self {
        let assigned_to = match (r.assignee_id, r.assignee_username, r.assignee_display_name) {
            (Some(id), Some(u), Some(d)) => Some(UserSummary::new(
                id,
                u,
                d,
                r.assignee_avatar_path.as_deref(),
            )),
            _ => None,
        };
        Self {
            id: r.id,
            number: r.number,
            subject: r.subject,
            description: r.description,
            status: r.status,
            priority: r.priority,
            category: r.category,
            user: UserSummary::new(
                r.user_id,
                r.user_username,
                r.user_display_name,
                r.user_avatar_path.as_deref(),
            ),
            assigned_to,
            merged_into: r.merged_into,
            sla: Sla {
                response_target_hours: r.priority.response_target().num_hours(),
                response_due_at: r.response_due_at,
                breached_at: r.sla_breached_at,
                breached: r.sla_breached_at.is_some(),
            },
            first_response_at: r.first_response_at,
            resolved_at: r.resolved_at,
            closed_at: r.closed_at,
            message_count: r.message_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `$1`: the caller, `$2`: whether the caller is staff (notes count for staff only).
const SELECT: &str = "SELECT t.id, t.number, t.subject, t.description, t.status, t.priority, t.category,
        t.user_id, u.username AS user_username, u.display_name AS user_display_name, u.avatar_path AS user_avatar_path,
        t.assigned_to AS assignee_id, a.username AS assignee_username, a.display_name AS assignee_display_name,
        a.avatar_path AS assignee_avatar_path, t.merged_into, t.response_due_at, t.sla_breached_at,
        t.first_response_at, t.resolved_at, t.closed_at,
        (SELECT count(*) FROM support_messages m WHERE m.ticket_id = t.id AND (NOT m.internal OR $2)) AS message_count,
        t.created_at, t.updated_at
   FROM support_tickets t
   JOIN users u ON u.id = t.user_id
   LEFT JOIN users a ON a.id = t.assigned_to";

/// The rule: who may see a ticket (with [`SELECT`]'s parameters).
const VISIBLE: &str = "(t.user_id = $1 OR $2)";

/// Why a help-desk action is refused.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// No such ticket (or entry), or one the caller may not see.
    #[error("Not found.")]
    NotFound,
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Not possible in the ticket's state; `code` says why.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type SupportResult<T> = Result<T, SupportError>;

fn invalid(field: &'static str, message: impl Into<String>) -> SupportError {
    SupportError::Invalid {
        field,
        message: message.into(),
    }
}

fn conflict(code: &'static str, message: impl Into<String>) -> SupportError {
    SupportError::Conflict {
        code,
        message: message.into(),
    }
}

fn text(field: &'static str, value: &str, min: usize, max: usize) -> SupportResult<String> {
    crate::trimmed_text(value, min, max).map_err(|m| invalid(field, m))
}

/// `PermissionDenied` unless `me` is staff.
pub fn require_staff(me: &Actor) -> SupportResult<()> {
    if me.is_staff() {
        Ok(())
    } else {
        Err(SupportError::PermissionDenied(
            "Only support staff may do this.",
        ))
    }
}

/// A new ticket.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub subject: String,
    /// 1 to 10,000 characters.
    #[schema(min_length = 1, max_length = 10000, pattern = r"\S")]
    pub description: String,
    pub category: TicketCategory,
    /// `normal` when absent; `urgent` is for staff to set.
    #[serde(default)]
    pub priority: Option<TicketPriority>,
}

impl NewTicket {
    pub fn checked(self, me: &Actor) -> SupportResult<Self> {
        if self.priority == Some(TicketPriority::Urgent) && !me.is_staff() {
            return Err(invalid(
                "priority",
                "low, normal or high (staff raise a ticket to urgent).",
            ));
        }
        Ok(Self {
            subject: text("subject", &self.subject, 1, SUBJECT_MAX)?,
            description: text("description", &self.description, 1, DESCRIPTION_MAX)?,
            category: self.category,
            priority: self.priority,
        })
    }
}

/// A ticket `me` may see; `NotFound` otherwise.
pub async fn visible(conn: &mut PgConnection, me: &Actor, id: Uuid) -> SupportResult<Ticket> {
    sqlx::query_as::<_, TicketRow>(&format!("{SELECT} WHERE t.id = $3 AND {VISIBLE}"))
        .bind(me.id)
        .bind(me.is_staff())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(Ticket::from)
        .ok_or(SupportError::NotFound)
}

/// [`visible`] under the ticket's row lock (taken first).
async fn locked(conn: &mut PgConnection, me: &Actor, id: Uuid) -> SupportResult<Ticket> {
    sqlx::query("SELECT 1 FROM support_tickets WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(SupportError::NotFound)?;
    visible(conn, me, id).await
}

/// Checks, before a request body is read, that `me` may see ticket `id` (and is staff
/// when `staff` is asked for).
pub async fn may(db: &PgPool, me: &Actor, id: Uuid, staff: bool) -> SupportResult<Ticket> {
    let mut conn = db.acquire().await?;
    let t = visible(&mut conn, me, id).await?;
    if staff {
        require_staff(me)?;
    }
    Ok(t)
}

/// Opens a ticket for `me` at `now`. `Conflict(too_many_open_tickets)` past
/// [`OPEN_TICKETS_MAX`] unresolved ones.
pub async fn create(
    db: &PgPool,
    me: &Actor,
    new: &NewTicket,
    now: DateTime<Utc>,
) -> SupportResult<Ticket> {
    let mut tx = db.begin().await?;
    // One writer per user at a time, so the count below is exact.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('support:' || $1::text, 0))")
        .bind(me.id)
        .execute(&mut *tx)
        .await?;
    let unresolved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM support_tickets WHERE user_id = $1 AND status IN ('open', 'pending')",
    )
    .bind(me.id)
    .fetch_one(&mut *tx)
    .await?;
    if unresolved >= OPEN_TICKETS_MAX {
        return Err(conflict(
            "too_many_open_tickets",
            format!("You have {unresolved} tickets waiting; reply on one of them instead."),
        ));
    }
    let id = Uuid::now_v7();
    let priority = new.priority.unwrap_or(TicketPriority::Normal);
    sqlx::query(
        "INSERT INTO support_tickets (id, user_id, subject, description, priority, category,
                waiting_since, response_due_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $7)",
    )
    .bind(id)
    .bind(me.id)
    .bind(&new.subject)
    .bind(&new.description)
    .bind(priority)
    .bind(new.category)
    .bind(now)
    .bind(now + priority.response_target())
    .execute(&mut *tx)
    .await?;
    let t = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(t)
}

crate::text_enum! {
    /// The order of a ticket list.
    pub enum TicketOrdering as "ticket ordering" {
        Newest = "newest",
        Oldest = "oldest",
        /// Soonest response due first (those not waiting last).
        Due = "due",
        /// Most urgent first, then oldest.
        Priority = "priority",
        /// Most recently changed first.
        Updated = "updated",
    }
}

/// Who a ticket list is filtered to by assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    Nobody,
    User(Uuid),
}

impl std::str::FromStr for Assignee {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Assignee::Nobody),
            other => other
                .parse()
                .map(Assignee::User)
                .map_err(|_| "a user id, `me` or `none`.".to_owned()),
        }
    }
}

/// Filters of the ticket list (all but `status` are for staff: the owner's list is
/// theirs anyway).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Vec<TicketStatus>,
    pub priority: Vec<TicketPriority>,
    pub category: Vec<TicketCategory>,
    pub assignee: Option<Assignee>,
    /// Tickets of one user (staff).
    pub user: Option<Uuid>,
    /// Created at least this many hours ago.
    pub min_age_hours: Option<i64>,
    /// Only tickets past their response time (`true`) or not (`false`).
    pub breached: Option<bool>,
    /// Words of the subject or description.
    pub search: Option<String>,
    pub ordering: Option<TicketOrdering>,
}

/// A page of the tickets `me` may see (their own; staff: all) and how many in all.
pub async fn list(
    conn: &mut PgConnection,
    me: &Actor,
    f: &ListFilter,
    now: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> SupportResult<(Vec<Ticket>, i64)> {
    let staff = me.is_staff();
    // The owner's list is their own tickets, whatever they ask.
    let own_only = !staff;
    let statuses: Vec<&str> = f.status.iter().map(|s| s.as_str()).collect();
    let priorities: Vec<&str> = f.priority.iter().map(|s| s.as_str()).collect();
    let categories: Vec<&str> = f.category.iter().map(|s| s.as_str()).collect();
    let (nobody, assignee) = match f.assignee {
        Some(Assignee::Nobody) => (true, None),
        Some(Assignee::User(u)) => (false, Some(u)),
        None => (false, None),
    };
    let created_before = f.min_age_hours.map(|h| now - TimeDelta::hours(h));
    let search = crate::contains_pattern(f.search.as_deref());
    let cond = "($3 = false OR t.user_id = $1) AND (cardinality($4::text[]) = 0 OR t.status = ANY($4))
        AND (cardinality($5::text[]) = 0 OR t.priority = ANY($5))
        AND (cardinality($6::text[]) = 0 OR t.category = ANY($6))
        AND (NOT $7 OR t.assigned_to IS NULL) AND ($8::uuid IS NULL OR t.assigned_to = $8)
        AND ($9::uuid IS NULL OR t.user_id = $9) AND ($10::timestamptz IS NULL OR t.created_at <= $10)
        AND ($11::bool IS NULL OR (t.sla_breached_at IS NOT NULL) = $11)
        AND ($12::text IS NULL OR t.subject ILIKE $12 OR t.description ILIKE $12)";
    let order = match f.ordering.unwrap_or(if staff {
        TicketOrdering::Due
    } else {
        TicketOrdering::Updated
    }) {
        TicketOrdering::Newest => "t.created_at DESC, t.id DESC",
        TicketOrdering::Oldest => "t.created_at, t.id",
        TicketOrdering::Due => "t.response_due_at NULLS LAST, t.created_at, t.id",
        TicketOrdering::Priority => {
            "array_position(ARRAY['urgent', 'high', 'normal', 'low'], t.priority), t.created_at, t.id"
        }
        TicketOrdering::Updated => "t.updated_at DESC, t.id DESC",
    };
    macro_rules! bind_all {
        ($q:expr) => {
            $q.bind(me.id)
                .bind(staff)
                .bind(own_only)
                .bind(&statuses)
                .bind(&priorities)
                .bind(&categories)
                .bind(nobody)
                .bind(assignee)
                .bind(f.user)
                .bind(created_before)
                .bind(f.breached)
                .bind(&search)
        };
    }
    let count: i64 = bind_all!(sqlx::query_scalar(&format!(
        "SELECT count(*) FROM support_tickets t WHERE {cond}"
    )))
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<TicketRow> = bind_all!(sqlx::query_as(&format!(
        "{SELECT} WHERE {cond} ORDER BY {order} LIMIT $13 OFFSET $14"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows.into_iter().map(Ticket::from).collect(), count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketStatus::*;

    #[test]
    fn moves_follow_the_rules() {
        // Staff
        assert!(Open.can_move(Resolved, true));
        assert!(Pending.can_move(Closed, true));
        assert!(Closed.can_move(Open, true));
        assert!(!Open.can_move(Pending, true), "a staff reply does that");
        assert!(!Closed.can_move(Resolved, true));
        // The owner
        assert!(Open.can_move(Resolved, false));
        assert!(Resolved.can_move(Closed, false));
        assert!(!Resolved.can_move(Open, false), "a reply reopens");
        assert!(!Closed.can_move(Open, false));
        assert!(!Open.can_move(Open, false));
    }

    #[test]
    fn targets_shrink_with_urgency() {
        let mut last = TimeDelta::MAX;
        for p in TicketPriority::ALL {
            assert!(p.response_target() < last, "{p}");
            last = p.response_target();
        }
        assert_eq!("none".parse::<Assignee>(), Ok(Assignee::Nobody));
        assert!(
            "me".parse::<Assignee>().is_err(),
            "the adapter resolves `me`"
        );
    }
}
