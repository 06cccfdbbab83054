//! Scheduled events (seed item 5): the model, the one rule for who sees an event, RSVPs
//! with a capacity, a waitlist and an optional approval step, invitations, and the
//! status moves the scheduler makes.
//!
//! **Who sees an event** ([`VISIBLE`]): anyone, when it is public; otherwise its
//! organizer, the users who answered it or were invited, the members of its group (a
//! group event), and staff; never someone the
//! organizer blocked or who blocked the organizer (a 404, as for an unknown id).
//!
//! **Places.** `going` holds a place; when `max_attendees` places are taken a new
//! `going` waits on the waitlist (`waitlisted`, in order of asking) and the first in
//! line takes the next place that frees (someone leaves, answers maybe or declines, or
//! the organizer raises the cap), and is told. With `require_approval`, a `going` from
//! someone the organizer did not invite waits as `pending` until the organizer approves
//! (then going, or waitlisted when full) or rejects it. Every change takes the event's
//! row lock first, so the places are never over-filled and the counts, read from the
//! rows, are exact.
//!
//! **Status** moves `scheduled → live` at `start_time` and `live → ended` at `end_time`,
//! by the scheduler ([`advance`]), once; an organizer cancels (`cancelled`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{account::Actor, social::UserSummary};

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 5000;
pub const LOCATION_MAX: usize = 255;
pub const URL_MAX: usize = 2048;
/// An event lasts at most this long.
pub const LONGEST: chrono::TimeDelta = chrono::TimeDelta::days(7);
pub const MAX_ATTENDEES: i32 = 100_000;
/// Users invited in one request at the most.
pub const INVITE_BATCH: usize = 50;

crate::text_enum! {
    /// Where an event is in its life.
    pub enum EventStatus as "event status" {
        Scheduled = "scheduled",
        Live = "live",
        Ended = "ended",
        Cancelled = "cancelled",
    }
}

crate::text_enum! {
    /// A user's answer to an event.
    pub enum Attendance as "attendance" {
        /// Holds a place.
        Going = "going",
        Maybe = "maybe",
        Declined = "declined",
        /// Waits for the organizer's approval.
        Pending = "pending",
        /// Waits for a place.
        Waitlisted = "waitlisted",
    }
}

/// What an event shows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventVideo {
    pub id: Option<Uuid>,
    pub url: Option<String>,
    pub title: Option<String>,
}

/// An event as one caller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub organizer: UserSummary,
    /// RFC 3339, UTC.
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// The IANA zone the organizer plans in (for display).
    pub timezone: String,
    pub location: String,
    pub video: EventVideo,
    /// Places (null: no limit).
    pub max_attendees: Option<i32>,
    pub require_approval: bool,
    pub is_public: bool,
    pub status: EventStatus,
    /// The party opened for the event once it is live (events with a video).
    pub party_id: Option<Uuid>,
    /// The social group the event belongs to (its members see it).
    pub group_id: Option<Uuid>,
    /// Users going (holding a place).
    pub attendee_count: i64,
    pub maybe_count: i64,
    pub waitlist_count: i64,
    /// The caller's answer, if any.
    pub my_status: Option<Attendance>,
    /// The caller has a pending invitation.
    pub invited: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: Uuid,
    title: String,
    description: String,
    organizer_id: Uuid,
    organizer_username: String,
    organizer_display_name: String,
    organizer_avatar_path: Option<String>,
    start_time: DateTime<Utc>,
    end_time: DateTime<Utc>,
    timezone: String,
    location: String,
    video_id: Option<Uuid>,
    video_url: Option<String>,
    video_title: Option<String>,
    max_attendees: Option<i32>,
    require_approval: bool,
    is_public: bool,
    status: EventStatus,
    party_id: Option<Uuid>,
    group_id: Option<Uuid>,
    attendee_count: i64,
    maybe_count: i64,
    waitlist_count: i64,
    my_status: Option<Attendance>,
    invited: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Self {
        Self {
            id: r.id,
            title: r.title,
            description: r.description,
            organizer: UserSummary::new(
                r.organizer_id,
                r.organizer_username,
                r.organizer_display_name,
                r.organizer_avatar_path.as_deref(),
            ),
            start_time: r.start_time,
            end_time: r.end_time,
            timezone: r.timezone,
            location: r.location,
            video: EventVideo {
                id: r.video_id,
                url: r.video_url,
                title: r.video_title,
            },
            max_attendees: r.max_attendees,
            require_approval: r.require_approval,
            is_public: r.is_public,
            status: r.status,
            party_id: r.party_id,
            group_id: r.group_id,
            attendee_count: r.attendee_count,
            maybe_count: r.maybe_count,
            waitlist_count: r.waitlist_count,
            my_status: r.my_status,
            invited: r.invited,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `$1`: the caller, `$2`: whether the caller is staff.
const SELECT: &str = "SELECT e.id, e.title, e.description, e.organizer_id,
        u.username AS organizer_username, u.display_name AS organizer_display_name, u.avatar_path AS organizer_avatar_path,
        e.start_time, e.end_time, e.timezone, e.location, e.video_id, e.video_url,
        v.title AS video_title, e.max_attendees, e.require_approval, e.is_public, e.status,
        e.party_id, e.group_id,
        (SELECT count(*) FROM event_attendees a WHERE a.event_id = e.id AND a.status = 'going') AS attendee_count,
        (SELECT count(*) FROM event_attendees a WHERE a.event_id = e.id AND a.status = 'maybe') AS maybe_count,
        (SELECT count(*) FROM event_attendees a WHERE a.event_id = e.id AND a.status = 'waitlisted') AS waitlist_count,
        (SELECT a.status FROM event_attendees a WHERE a.event_id = e.id AND a.user_id = $1) AS my_status,
        EXISTS (SELECT 1 FROM event_invitations i
                 WHERE i.event_id = e.id AND i.user_id = $1 AND i.status = 'pending') AS invited,
        e.created_at, e.updated_at
   FROM events e
   JOIN users u ON u.id = e.organizer_id
   LEFT JOIN videos v ON v.id = e.video_id";

/// The rule: who may see an event (with [`SELECT`]'s parameters).
const VISIBLE: &str = "($2 OR e.organizer_id = $1 OR (
        NOT blocked_between(e.organizer_id, $1)
        AND (e.is_public
             OR EXISTS (SELECT 1 FROM event_attendees a WHERE a.event_id = e.id AND a.user_id = $1)
             OR EXISTS (SELECT 1 FROM event_invitations i WHERE i.event_id = e.id AND i.user_id = $1)
             OR EXISTS (SELECT 1 FROM group_members g WHERE g.group_id = e.group_id AND g.user_id = $1))))";

/// Why an event action is refused.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
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
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type EventResult<T> = Result<T, EventError>;

fn invalid(field: &'static str, message: impl Into<String>) -> EventError {
    EventError::Invalid {
        field,
        message: message.into(),
    }
}

fn text(field: &'static str, value: &str, min: usize, max: usize) -> EventResult<String> {
    crate::trimmed_text(value, min, max).map_err(|m| invalid(field, m))
}

/// An event as created or edited (edits: absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// 1 to 200 characters (required on create).
    pub title: Option<String>,
    /// At most 5000 characters.
    pub description: Option<String>,
    /// RFC 3339 with an offset (required on create; in the future).
    pub start_time: Option<DateTime<Utc>>,
    /// After `start_time`, at most 7 days later (required on create).
    pub end_time: Option<DateTime<Utc>>,
    /// An IANA zone such as `Europe/Madrid` (default `UTC`).
    pub timezone: Option<String>,
    /// At most 255 characters.
    pub location: Option<String>,
    /// A library video the organizer can see, ready (or `video_url`, not both).
    pub video_id: Option<Uuid>,
    /// An http(s) URL of a video.
    pub video_url: Option<String>,
    /// 1 to 100000 places; null or absent: no limit.
    pub max_attendees: Option<i32>,
    pub require_approval: Option<bool>,
    pub is_public: Option<bool>,
    /// A social group the organizer is a member of: the event is the group's, seen by
    /// its members (set at creation only).
    pub group_id: Option<Uuid>,
}

/// The fields of an event after checking.
#[derive(Debug, Clone)]
pub struct Checked {
    pub title: String,
    pub description: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub timezone: String,
    pub location: String,
    pub video_id: Option<Uuid>,
    pub video_url: Option<String>,
    pub max_attendees: Option<i32>,
    pub require_approval: bool,
    pub is_public: bool,
    pub group_id: Option<Uuid>,
}

impl EventInput {
    /// `self` applied over `base` (None: a new event), checked as a whole: the first
    /// problem names its field. `now` is the clock (times must be in the future when they
    /// are set).
    pub fn check(self, base: Option<&Event>, now: DateTime<Utc>) -> EventResult<Checked> {
        let title = match (&self.title, base) {
            (Some(t), _) => text("title", t, 1, TITLE_MAX)?,
            (None, Some(b)) => b.title.clone(),
            (None, None) => return Err(invalid("title", "This field is required.")),
        };
        let description = match &self.description {
            Some(d) => text("description", d, 0, DESCRIPTION_MAX)?,
            None => base.map(|b| b.description.clone()).unwrap_or_default(),
        };
        let location = match &self.location {
            Some(l) => text("location", l, 0, LOCATION_MAX)?,
            None => base.map(|b| b.location.clone()).unwrap_or_default(),
        };
        let start_time = self
            .start_time
            .or(base.map(|b| b.start_time))
            .ok_or_else(|| invalid("start_time", "This field is required."))?;
        let end_time = self
            .end_time
            .or(base.map(|b| b.end_time))
            .ok_or_else(|| invalid("end_time", "This field is required."))?;
        if self.start_time.is_some() && start_time <= now {
            return Err(invalid("start_time", "Must be in the future."));
        }
        if end_time <= start_time {
            return Err(invalid("end_time", "Must be after start_time."));
        }
        if end_time - start_time > LONGEST {
            return Err(invalid("end_time", "An event lasts at most 7 days."));
        }
        let timezone = match &self.timezone {
            Some(tz) => {
                tz.parse::<chrono_tz::Tz>().map_err(|_| {
                    invalid("timezone", "An IANA time zone, such as Europe/Madrid.")
                })?;
                tz.clone()
            }
            None => base.map_or_else(|| "UTC".to_owned(), |b| b.timezone.clone()),
        };
        let (video_id, video_url) = match (self.video_id, &self.video_url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "video_url",
                    "Give video_id or video_url, not both.",
                ));
            }
            (Some(id), None) => (Some(id), None),
            (None, Some(u)) => {
                let u = u.trim();
                let ok = u.len() <= URL_MAX
                    && url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https"));
                if !ok {
                    return Err(invalid("video_url", "An http or https URL."));
                }
                (None, Some(u.to_owned()))
            }
            (None, None) => base.map_or((None, None), |b| (b.video.id, b.video.url.clone())),
        };
        if base.is_some() && self.group_id.is_some() {
            return Err(invalid("group_id", "Set when the event is created."));
        }
        if let Some(m) = self.max_attendees
            && !(1..=MAX_ATTENDEES).contains(&m)
        {
            return Err(invalid("max_attendees", "1 to 100000, or null."));
        }
        Ok(Checked {
            title,
            description,
            start_time,
            end_time,
            timezone,
            location,
            video_id,
            video_url,
            max_attendees: self
                .max_attendees
                .or_else(|| base.and_then(|b| b.max_attendees)),
            require_approval: self
                .require_approval
                .or(base.map(|b| b.require_approval))
                .unwrap_or(false),
            is_public: self.is_public.or(base.map(|b| b.is_public)).unwrap_or(true),
            group_id: self.group_id.or(base.and_then(|b| b.group_id)),
        })
    }
}

/// An event `me` may see; `NotFound` otherwise.
pub async fn visible(conn: &mut PgConnection, me: &Actor, id: Uuid) -> EventResult<Event> {
    sqlx::query_as::<_, EventRow>(&format!("{SELECT} WHERE e.id = $3 AND {VISIBLE}"))
        .bind(me.id)
        .bind(me.is_staff())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(Event::from)
        .ok_or(EventError::NotFound)
}

/// [`visible`] under the event's row lock (taken first).
async fn locked(conn: &mut PgConnection, me: &Actor, id: Uuid) -> EventResult<Event> {
    sqlx::query("SELECT 1 FROM events WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(EventError::NotFound)?;
    visible(conn, me, id).await
}

fn organizer_only(e: &Event, me: &Actor) -> EventResult<()> {
    if e.organizer.id == me.id || me.is_staff() {
        Ok(())
    } else {
        Err(EventError::PermissionDenied(
            "Only the event's organizer may do this.",
        ))
    }
}

/// Checks, before a body is read, that `me` organizes event `id` (or is staff).
pub async fn may_organize(db: &PgPool, me: &Actor, id: Uuid) -> EventResult<()> {
    let mut conn = db.acquire().await?;
    let e = visible(&mut conn, me, id).await?;
    organizer_only(&e, me)
}

/// `me` must be a member of the group an event is for.
async fn check_group(conn: &mut PgConnection, me: &Actor, c: &Checked) -> EventResult<()> {
    if let Some(g) = c.group_id {
        let member = crate::group::visible(conn, me, g)
            .await
            .is_ok_and(|g| g.my_role.is_some());
        if !member {
            return Err(invalid(
                "group_id",
                "No such group, or you are not a member of it.",
            ));
        }
    }
    Ok(())
}

async fn check_video(conn: &mut PgConnection, me: &Actor, c: &Checked) -> EventResult<()> {
    if let Some(v) = c.video_id
        && !crate::video::playable_by(&mut *conn, me, v).await?
    {
        return Err(invalid(
            "video_id",
            "No such video, or not ready, or not yours to show.",
        ));
    }
    Ok(())
}

/// Creates an event organized by `me`.
pub async fn create(db: &PgPool, me: &Actor, c: &Checked) -> EventResult<Event> {
    let mut tx = db.begin().await?;
    check_video(&mut tx, me, c).await?;
    check_group(&mut tx, me, c).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (id, organizer_id, title, description, start_time, end_time, timezone,
                             location, video_id, video_url, max_attendees, require_approval, is_public,
                             group_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(id)
    .bind(me.id)
    .bind(&c.title)
    .bind(&c.description)
    .bind(c.start_time)
    .bind(c.end_time)
    .bind(&c.timezone)
    .bind(&c.location)
    .bind(c.video_id)
    .bind(&c.video_url)
    .bind(c.max_attendees)
    .bind(c.require_approval)
    .bind(c.is_public)
    .bind(c.group_id)
    .execute(&mut *tx)
    .await?;
    let e = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(e)
}

/// What an edit did: the event, and the outbox rows of the notifications it caused.
#[derive(Debug)]
pub struct Changed {
    pub event: Event,
    pub outbox: Vec<i64>,
}

/// Edits a scheduled event (its organizer, staff). Moving it (start or end) tells the
/// attendees; raising the cap lets the waitlist in.
pub async fn update(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    input: EventInput,
    now: DateTime<Utc>,
) -> EventResult<Changed> {
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    organizer_only(&e, me)?;
    if e.status != EventStatus::Scheduled {
        return Err(EventError::Conflict {
            code: "event_started",
            message: "Only a scheduled event can be edited.",
        });
    }
    let c = input.check(Some(&e), now)?;
    check_video(&mut tx, me, &c).await?;
    sqlx::query(
        "UPDATE events SET title = $2, description = $3, start_time = $4, end_time = $5,
                timezone = $6, location = $7, video_id = $8, video_url = $9, max_attendees = $10,
                require_approval = $11, is_public = $12, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(&c.title)
    .bind(&c.description)
    .bind(c.start_time)
    .bind(c.end_time)
    .bind(&c.timezone)
    .bind(&c.location)
    .bind(c.video_id)
    .bind(&c.video_url)
    .bind(c.max_attendees)
    .bind(c.require_approval)
    .bind(c.is_public)
    .execute(&mut *tx)
    .await?;
    let mut outbox = promote(&mut tx, id, &c.title).await?;
    if c.start_time != e.start_time {
        // The reminders follow the new time.
        sqlx::query("DELETE FROM event_reminders WHERE event_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if c.start_time != e.start_time || c.end_time != e.end_time {
        outbox.push(
            crate::events::emit(
                &mut tx,
                "event.updated",
                Some(me.id),
                None,
                serde_json::json!({ "event_id": id, "title": c.title, "start_time": c.start_time }),
            )
            .await?,
        );
    }
    let event = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(Changed { event, outbox })
}

/// Cancels an event that has not ended (its organizer, staff); the attendees are told.
pub async fn cancel(db: &PgPool, me: &Actor, id: Uuid) -> EventResult<Vec<i64>> {
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    organizer_only(&e, me)?;
    if matches!(e.status, EventStatus::Ended | EventStatus::Cancelled) {
        return Err(EventError::Conflict {
            code: "event_over",
            message: "This event has already ended or been cancelled.",
        });
    }
    sqlx::query("UPDATE events SET status = 'cancelled', updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let row = crate::events::emit(
        &mut tx,
        "event.cancelled",
        Some(me.id),
        None,
        serde_json::json!({ "event_id": id, "title": e.title }),
    )
    .await?;
    tx.commit().await?;
    Ok(vec![row])
}

/// Lets the first in line on the waitlist take the free places; each is told. The
/// caller holds the event's lock.
async fn promote(conn: &mut PgConnection, id: Uuid, title: &str) -> sqlx::Result<Vec<i64>> {
    let promoted: Vec<Uuid> = sqlx::query_scalar(
        "WITH free AS (
             SELECT CASE WHEN e.max_attendees IS NULL THEN NULL
                         ELSE GREATEST(e.max_attendees - (SELECT count(*) FROM event_attendees a
                                                          WHERE a.event_id = e.id AND a.status = 'going'), 0)
                    END AS n
               FROM events e WHERE e.id = $1),
         next AS (
             SELECT a.user_id FROM event_attendees a
              WHERE a.event_id = $1 AND a.status = 'waitlisted'
              ORDER BY a.responded_at, a.user_id
              LIMIT (SELECT n FROM free))
         UPDATE event_attendees a SET status = 'going'
           FROM next WHERE a.event_id = $1 AND a.user_id = next.user_id
         RETURNING a.user_id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    // A live event's party takes them in too.
    sqlx::query(
        "INSERT INTO party_members (party_id, user_id)
         SELECT e.party_id, u FROM events e, unnest($2::uuid[]) u
          WHERE e.id = $1 AND e.party_id IS NOT NULL
         ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(&promoted)
    .execute(&mut *conn)
    .await?;
    let mut rows = Vec::with_capacity(promoted.len());
    for user in promoted {
        rows.push(
            crate::events::emit(
                conn,
                "event.promoted",
                None,
                Some(user),
                serde_json::json!({ "event_id": id, "title": title }),
            )
            .await?,
        );
    }
    Ok(rows)
}

/// What an answer did.
#[derive(Debug)]
pub struct Answered {
    /// The caller's status now (`going` may have become `waitlisted` or `pending`).
    pub status: Attendance,
    pub event: Event,
    pub outbox: Vec<i64>,
}

/// Answers an event: `going` (a place, else the waitlist; `pending` first when the event
/// needs approval and `me` was not invited), `maybe` or `declined`. A place given up
/// goes to the first in line.
pub async fn respond(db: &PgPool, me: &Actor, id: Uuid, want: Attendance) -> EventResult<Answered> {
    if !matches!(
        want,
        Attendance::Going | Attendance::Maybe | Attendance::Declined
    ) {
        return Err(invalid("status", "going, maybe or declined."));
    }
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    if matches!(e.status, EventStatus::Ended | EventStatus::Cancelled) {
        return Err(EventError::Conflict {
            code: "event_over",
            message: "This event has ended or was cancelled.",
        });
    }
    let current = e.my_status;
    let organizer = e.organizer.id == me.id;
    let invited: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM event_invitations WHERE event_id = $1 AND user_id = $2)",
    )
    .bind(id)
    .bind(me.id)
    .fetch_one(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    let status = match want {
        Attendance::Going => match current {
            Some(s @ (Attendance::Going | Attendance::Pending | Attendance::Waitlisted)) => s,
            _ if e.require_approval && !organizer && !invited => {
                outbox.push(
                    crate::events::emit(
                        &mut tx,
                        "event.join_request",
                        Some(me.id),
                        Some(e.organizer.id),
                        serde_json::json!({ "event_id": id, "title": e.title }),
                    )
                    .await?,
                );
                Attendance::Pending
            }
            _ if e
                .max_attendees
                .is_some_and(|m| e.attendee_count >= i64::from(m)) =>
            {
                Attendance::Waitlisted
            }
            _ => Attendance::Going,
        },
        other => other,
    };
    if Some(status) != current {
        sqlx::query(
            "INSERT INTO event_attendees (event_id, user_id, status) VALUES ($1, $2, $3)
             ON CONFLICT (event_id, user_id) DO UPDATE SET status = $3, responded_at = now()",
        )
        .bind(id)
        .bind(me.id)
        .bind(status)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE event_invitations SET status = $3
          WHERE event_id = $1 AND user_id = $2 AND status = 'pending'",
    )
    .bind(id)
    .bind(me.id)
    .bind(if want == Attendance::Declined {
        "declined"
    } else {
        "accepted"
    })
    .execute(&mut *tx)
    .await?;
    if current == Some(Attendance::Going) && status != Attendance::Going {
        outbox.extend(promote(&mut tx, id, &e.title).await?);
    }
    if status == Attendance::Going
        && let Some(party) = e.party_id
    {
        // A live event's party takes whoever is going.
        sqlx::query(
            "INSERT INTO party_members (party_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(party)
        .bind(me.id)
        .execute(&mut *tx)
        .await?;
    }
    let event = visible(&mut tx, me, id).await?;
    tx.commit().await?;
    Ok(Answered {
        status,
        event,
        outbox,
    })
}

/// Takes back `me`'s answer (a place goes to the first in line).
pub async fn leave(db: &PgPool, me: &Actor, id: Uuid) -> EventResult<Vec<i64>> {
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    let was: Option<Attendance> = sqlx::query_scalar(
        "DELETE FROM event_attendees WHERE event_id = $1 AND user_id = $2 RETURNING status",
    )
    .bind(id)
    .bind(me.id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(was) = was else {
        return Err(EventError::Conflict {
            code: "not_attending",
            message: "You have not answered this event.",
        });
    };
    let outbox = if was == Attendance::Going {
        promote(&mut tx, id, &e.title).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    Ok(outbox)
}

/// The organizer approves (a place, else the waitlist) or rejects (declined) a pending
/// answer; an approved user is told.
pub async fn decide(
    db: &PgPool,
    me: &Actor,
    id: Uuid,
    user: Uuid,
    approve: bool,
) -> EventResult<Vec<i64>> {
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    organizer_only(&e, me)?;
    let pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM event_attendees
                         WHERE event_id = $1 AND user_id = $2 AND status = 'pending')",
    )
    .bind(id)
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    if !pending {
        return Err(EventError::NotFound);
    }
    let full = e
        .max_attendees
        .is_some_and(|m| e.attendee_count >= i64::from(m));
    let status = match (approve, full) {
        (false, _) => Attendance::Declined,
        (true, true) => Attendance::Waitlisted,
        (true, false) => Attendance::Going,
    };
    sqlx::query(
        "UPDATE event_attendees SET status = $3, responded_at = now() WHERE event_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    if approve {
        outbox.push(
            crate::events::emit(
                &mut tx,
                "event.approved",
                Some(me.id),
                Some(user),
                serde_json::json!({ "event_id": id, "title": e.title, "status": status }),
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok(outbox)
}

/// Invites users (the organizer): they may then see the event and answer it without
/// approval; each is told once. Unknown users and users who blocked either side are
/// refused by name.
pub async fn invite(db: &PgPool, me: &Actor, id: Uuid, users: &[Uuid]) -> EventResult<Vec<i64>> {
    if users.is_empty() || users.len() > INVITE_BATCH {
        return Err(invalid("user_ids", "1 to 50 users."));
    }
    let mut tx = db.begin().await?;
    let e = locked(&mut tx, me, id).await?;
    organizer_only(&e, me)?;
    if matches!(e.status, EventStatus::Ended | EventStatus::Cancelled) {
        return Err(EventError::Conflict {
            code: "event_over",
            message: "This event has ended or was cancelled.",
        });
    }
    let ok: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM users WHERE id = ANY($1) AND status = 'active' AND NOT blocked_between(id, $2)",
    )
    .bind(users)
    .bind(me.id)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(bad) = users.iter().find(|u| !ok.contains(u)) {
        return Err(invalid("user_ids", format!("No such user: {bad}.")));
    }
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO event_invitations (event_id, user_id, invited_by)
         SELECT $1, u, $2 FROM unnest($3::uuid[]) u WHERE u <> $2
         ON CONFLICT DO NOTHING RETURNING user_id",
    )
    .bind(id)
    .bind(me.id)
    .bind(users)
    .fetch_all(&mut *tx)
    .await?;
    let mut outbox = Vec::with_capacity(fresh.len());
    for user in fresh {
        outbox.push(
            crate::events::emit(
                &mut tx,
                "event.invite",
                Some(me.id),
                Some(user),
                serde_json::json!({ "event_id": id, "title": e.title, "start_time": e.start_time }),
            )
            .await?,
        );
    }
    tx.commit().await?;
    Ok(outbox)
}

/// An attendee as listed.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attendee {
    #[sqlx(flatten)]
    pub user: UserSummary,
    pub status: Attendance,
    pub responded_at: DateTime<Utc>,
}

/// A page of an event's answers (going first, then maybe; the waitlist in its order;
/// `pending` and `declined` only for the organizer and staff), and the total.
pub async fn attendees(
    conn: &mut PgConnection,
    me: &Actor,
    id: Uuid,
    only: Option<Attendance>,
    limit: i64,
    offset: i64,
) -> EventResult<(Vec<Attendee>, i64)> {
    let e = visible(conn, me, id).await?;
    let organizer = e.organizer.id == me.id || me.is_staff();
    if !organizer && matches!(only, Some(Attendance::Pending | Attendance::Declined)) {
        return Err(EventError::PermissionDenied(
            "Only the organizer sees pending and declined answers.",
        ));
    }
    let cond = "a.event_id = $1 AND ($2::text IS NULL OR a.status = $2)
                AND ($3 OR a.status IN ('going', 'maybe', 'waitlisted'))";
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM event_attendees a WHERE {cond}"
    ))
    .bind(id)
    .bind(only)
    .bind(organizer)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<Attendee> = sqlx::query_as(&format!(
        "SELECT u.id, u.username, u.display_name, u.avatar_path, a.status, a.responded_at
           FROM event_attendees a JOIN users u ON u.id = a.user_id
          WHERE {cond}
          ORDER BY CASE a.status WHEN 'going' THEN 0 WHEN 'maybe' THEN 1 WHEN 'waitlisted' THEN 2
                                 WHEN 'pending' THEN 3 ELSE 4 END, a.responded_at, u.id
          LIMIT $4 OFFSET $5"
    ))
    .bind(id)
    .bind(only)
    .bind(organizer)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, count))
}

/// Which events a list holds.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Words of the title, description or location.
    pub search: Option<String>,
    /// Only scheduled events that start after now, soonest first.
    pub upcoming: bool,
    /// Only events the caller organizes or answered (not declined).
    pub mine: bool,
    pub status: Option<EventStatus>,
    /// Only this group's events.
    pub group: Option<Uuid>,
}

/// A page of the events `me` may see, and how many in all. Upcoming lists run soonest
/// first; the others latest start first.
pub async fn list(
    conn: &mut PgConnection,
    me: &Actor,
    f: &ListFilter,
    limit: i64,
    offset: i64,
) -> EventResult<(Vec<Event>, i64)> {
    let search = crate::contains_pattern(f.search.as_deref());
    let cond = format!(
        "{VISIBLE}
           AND ($3::text IS NULL OR e.title ILIKE $3 OR e.description ILIKE $3 OR e.location ILIKE $3)
           AND (NOT $4 OR (e.status = 'scheduled' AND e.start_time > now()))
           AND (NOT $5 OR e.organizer_id = $1 OR EXISTS (
                SELECT 1 FROM event_attendees a WHERE a.event_id = e.id AND a.user_id = $1
                   AND a.status <> 'declined'))
           AND ($6::text IS NULL OR e.status = $6)
           AND ($7::uuid IS NULL OR e.group_id = $7)"
    );
    let order = if f.upcoming {
        "e.start_time, e.id"
    } else {
        "e.start_time DESC, e.id"
    };
    let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM events e WHERE {cond}"))
        .bind(me.id)
        .bind(me.is_staff())
        .bind(&search)
        .bind(f.upcoming)
        .bind(f.mine)
        .bind(f.status)
        .bind(f.group)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE {cond} ORDER BY {order} LIMIT $8 OFFSET $9"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(&search)
    .bind(f.upcoming)
    .bind(f.mine)
    .bind(f.status)
    .bind(f.group)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows.into_iter().map(Event::from).collect(), count))
}

/// The reminder leads a user may choose from (minutes before the start); each user
/// picks up to [`MAX_REMINDER_LEADS`], 24 h and 15 min by default (the SQL function
/// `default_event_reminder_minutes`).
pub const REMINDER_LEADS: &[i32] = &[5, 10, 15, 30, 60, 120, 1440, 2880, 10080];
pub const MAX_REMINDER_LEADS: usize = 3;

/// Checks a user's choice of reminder leads (distinct, from the menu, few).
pub fn check_reminder_leads(leads: &[i32]) -> Result<(), &'static str> {
    if leads.len() > MAX_REMINDER_LEADS {
        return Err("At most 3 leads.");
    }
    if leads.iter().any(|l| !REMINDER_LEADS.contains(l)) {
        return Err("Each lead is one of 5, 10, 15, 30, 60, 120, 1440, 2880, 10080 (minutes).");
    }
    if (1..leads.len()).any(|i| leads[..i].contains(&leads[i])) {
        return Err("The leads must differ.");
    }
    Ok(())
}

/// A lead as an amount and a unit for the messages (`(2, "day")`, `(90, "minute")`).
fn lead_in_words(minutes: i32) -> (i32, &'static str) {
    if minutes % 1440 == 0 {
        (minutes / 1440, "day")
    } else if minutes % 60 == 0 {
        (minutes / 60, "hour")
    } else {
        (minutes, "minute")
    }
}

/// What [`advance`] moved.
#[derive(Debug, Default)]
pub struct Advanced {
    /// Events that went live (ids).
    pub live: Vec<Uuid>,
    /// Events that ended (ids).
    pub ended: Vec<Uuid>,
    /// Parties opened for events that went live with a video.
    pub opened_parties: Vec<Uuid>,
    /// Parties of events that ended, ended with them (their sockets must close).
    pub ended_parties: Vec<Uuid>,
    /// Reminders sent: (event, lead in minutes).
    pub reminders: Vec<(Uuid, i32)>,
    pub outbox: Vec<i64>,
}

/// Moves events whose time has come at `now`, each move once whichever scheduler or
/// worker runs this (the moves are conditional updates in one transaction):
/// - reminders: at each lead of [`REMINDER_LEADS`] before the start, to everyone who
///   answered (but declined) and chose that lead (24 h and 15 min unless they chose),
///   once per event and lead (`event_reminders`); a lead that had already passed when
///   the event was created is skipped;
/// - `scheduled → live` at `start_time`: an event with a video gets a party with the
///   organizer as host and the people going as members, and everyone who answered hears
///   that it starts (`event.starting`, linking the party);
/// - `live → ended` at `end_time`, and its party ends with it.
///
/// An event whose whole time passed while no scheduler ran goes live and ends in the
/// same call, without a party or a `starting` notice.
pub async fn advance(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<Advanced> {
    let mut tx = db.begin().await?;
    let mut out = Advanced::default();
    // Every lead of the menu that came due is recorded once per event (so it is weighed
    // once, not on every sweep); it is announced when someone answering wants it.
    let reminders: Vec<(Uuid, i32, String, DateTime<Utc>)> = sqlx::query_as(
        "WITH due AS (
             SELECT e.id, l.minutes FROM events e
              CROSS JOIN unnest($2::int[]) AS l (minutes)
              WHERE e.status = 'scheduled' AND e.start_time > $1
                AND e.start_time <= $1 + make_interval(mins => $3)
                AND e.start_time - make_interval(mins => l.minutes) <= $1
                AND e.created_at <= e.start_time - make_interval(mins => l.minutes)
                AND NOT EXISTS (SELECT 1 FROM event_reminders r
                                 WHERE r.event_id = e.id AND r.lead_minutes = l.minutes)),
         sent AS (
             INSERT INTO event_reminders (event_id, lead_minutes) SELECT id, minutes FROM due
             ON CONFLICT DO NOTHING RETURNING event_id, lead_minutes)
         SELECT s.event_id, s.lead_minutes, e.title, e.start_time FROM sent s
           JOIN events e ON e.id = s.event_id
          WHERE EXISTS (SELECT 1 FROM event_attendees a
                          LEFT JOIN notification_settings n ON n.user_id = a.user_id
                         WHERE a.event_id = s.event_id AND a.status IN ('going', 'maybe', 'waitlisted', 'pending')
                           AND s.lead_minutes = ANY(COALESCE(n.event_reminder_minutes, default_event_reminder_minutes())))",
    )
    .bind(now)
    .bind(REMINDER_LEADS)
    .bind(REMINDER_LEADS.iter().max().copied().unwrap_or(0))
    .fetch_all(&mut *tx)
    .await?;
    for (id, minutes, title, start) in reminders {
        let (amount, unit) = lead_in_words(minutes);
        out.outbox.push(
            crate::events::emit(
                &mut tx,
                "event.reminder",
                None,
                None,
                serde_json::json!({ "event_id": id, "title": title, "lead_minutes": minutes,
                                    "lead_amount": amount, "lead_unit": unit, "start_time": start }),
            )
            .await?,
        );
        out.reminders.push((id, minutes));
    }
    let live: Vec<WentLive> = sqlx::query_as(
        "UPDATE events SET status = 'live', updated_at = now()
          WHERE status = 'scheduled' AND start_time <= $1
         RETURNING id, title, organizer_id, video_id, video_url, is_public, end_time, group_id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for e in &live {
        out.live.push(e.id);
        if e.end_time <= now {
            continue;
        }
        let party = if e.video_id.is_some() || e.video_url.is_some() {
            Some(open_party(&mut tx, e, now).await?)
        } else {
            None
        };
        out.opened_parties.extend(party);
        out.outbox.push(
            crate::events::emit(
                &mut tx,
                "event.starting",
                None,
                None,
                serde_json::json!({ "event_id": e.id, "title": e.title, "party_id": party }),
            )
            .await?,
        );
    }
    let ended: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "UPDATE events SET status = 'ended', updated_at = now()
          WHERE status = 'live' AND end_time <= $1 RETURNING id, party_id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let parties: Vec<Uuid> = ended.iter().filter_map(|e| e.1).collect();
    out.ended = ended.into_iter().map(|e| e.0).collect();
    if !parties.is_empty() {
        out.ended_parties = sqlx::query_scalar(
            "UPDATE parties SET status = 'ended', updated_at = now()
              WHERE id = ANY($1) AND status = 'active' RETURNING id",
        )
        .bind(&parties)
        .fetch_all(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// An event that just went live, as [`advance`] reads it.
#[derive(sqlx::FromRow)]
struct WentLive {
    id: Uuid,
    title: String,
    organizer_id: Uuid,
    video_id: Option<Uuid>,
    video_url: Option<String>,
    is_public: bool,
    end_time: DateTime<Utc>,
    group_id: Option<Uuid>,
}

/// Opens the party of an event going live: the organizer hosts, the people going are
/// members, room for more who answer later. Returns its id.
async fn open_party(
    conn: &mut PgConnection,
    e: &WentLive,
    now: DateTime<Utc>,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let playback = crate::party::live::Playback::new(
        crate::party::live::PartyVideo {
            id: e.video_id,
            url: e.video_url.clone(),
        },
        now.timestamp_millis(),
    );
    sqlx::query(
        "INSERT INTO parties (id, host_id, title, video_id, external_url, visibility, invite_code,
                              max_members, playback, group_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7,
                 LEAST(5000, GREATEST(50, 50 + (SELECT count(*) FROM event_attendees
                                                 WHERE event_id = $8 AND status = 'going')))::int,
                 $9, $10)",
    )
    .bind(id)
    .bind(e.organizer_id)
    .bind(&e.title)
    .bind(e.video_id)
    .bind(&e.video_url)
    .bind(if e.is_public { "public" } else { "private" })
    .bind(crate::party::new_invite_code())
    .bind(e.id)
    .bind(serde_json::to_value(&playback).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
    .bind(e.group_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO party_members (party_id, user_id, role)
         SELECT $1, $2, 'host'
         UNION ALL
         SELECT $1, user_id, 'member' FROM event_attendees
          WHERE event_id = $3 AND status = 'going' AND user_id <> $2",
    )
    .bind(id)
    .bind(e.organizer_id)
    .bind(e.id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE events SET party_id = $2 WHERE id = $1")
        .bind(e.id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// The event as an iCalendar file (RFC 5545) with one `VEVENT`: times in UTC, text
/// escaped, lines folded at 75 octets; `SEQUENCE` grows with every edit so calendars
/// that imported it take the new time; a cancelled event says `STATUS:CANCELLED`.
pub fn ics(e: &Event, frontend_url: &str, sequence: i64) -> String {
    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                ';' => out.push_str("\\;"),
                ',' => out.push_str("\\,"),
                '\n' => out.push_str("\\n"),
                '\r' => {}
                c => out.push(c),
            }
        }
        out
    }
    fn fold(line: &str, out: &mut String) {
        // At most 75 octets a line, never splitting a character; continuation lines
        // start with a space (which counts).
        let mut width = 0;
        for c in line.chars() {
            let n = c.len_utf8();
            if width + n > 75 {
                out.push_str("\r\n ");
                width = 1;
            }
            out.push(c);
            width += n;
        }
        out.push_str("\r\n");
    }
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    let url = format!("{}/events/{}", frontend_url.trim_end_matches('/'), e.id);
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//Watch Party//Events//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@watch-party", e.id),
        format!("DTSTAMP:{}", stamp(e.updated_at)),
        format!("DTSTART:{}", stamp(e.start_time)),
        format!("DTEND:{}", stamp(e.end_time)),
        format!("SEQUENCE:{sequence}"),
        format!("SUMMARY:{}", escape(&e.title)),
        format!(
            "DESCRIPTION:{}",
            escape(format!("{}\n\n{url}", e.description).trim_start())
        ),
        format!("LOCATION:{}", escape(&e.location)),
        format!(
            "ORGANIZER;CN={}:{url}",
            escape(&e.organizer.display_name).replace(':', "")
        ),
        format!("URL:{url}"),
        format!(
            "STATUS:{}",
            if e.status == EventStatus::Cancelled {
                "CANCELLED"
            } else {
                "CONFIRMED"
            }
        ),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    let mut out = String::new();
    for l in &lines {
        fold(l, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_leads_come_from_the_menu_distinct_and_few() {
        assert!(check_reminder_leads(&[]).is_ok());
        assert!(check_reminder_leads(&[1440, 15]).is_ok());
        assert!(check_reminder_leads(&[10080, 60, 5]).is_ok());
        assert!(check_reminder_leads(&[10080, 60, 5, 15]).is_err());
        assert!(check_reminder_leads(&[45]).is_err());
        assert!(check_reminder_leads(&[0]).is_err());
        assert!(check_reminder_leads(&[15, 15]).is_err());
        assert_eq!(lead_in_words(2880), (2, "day"));
        assert_eq!(lead_in_words(120), (2, "hour"));
        assert_eq!(lead_in_words(60), (1, "hour"));
        assert_eq!(lead_in_words(15), (15, "minute"));
    }

    fn event() -> Event {
        let t = "2027-01-02T20:00:00Z".parse::<DateTime<Utc>>().unwrap();
        Event {
            id: Uuid::nil(),
            title: "Movie night; the sequel, part 2".into(),
            description: "Bring snacks\nand friends ".repeat(10),
            organizer: UserSummary::new(Uuid::nil(), "ann".into(), "Ann: the host".into(), None),
            start_time: t,
            end_time: t + chrono::TimeDelta::hours(2),
            timezone: "Europe/Madrid".into(),
            location: "Online".into(),
            video: EventVideo {
                id: None,
                url: None,
                title: None,
            },
            max_attendees: None,
            require_approval: false,
            is_public: true,
            status: EventStatus::Scheduled,
            party_id: None,
            group_id: None,
            attendee_count: 0,
            maybe_count: 0,
            waitlist_count: 0,
            my_status: None,
            invited: false,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn the_calendar_file_escapes_folds_and_uses_utc() {
        let text = ics(&event(), "https://app.example/", 3);
        assert!(text.starts_with("BEGIN:VCALENDAR\r\n"));
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(text.contains("\r\nDTSTART:20270102T200000Z\r\n"));
        assert!(text.contains("\r\nDTEND:20270102T220000Z\r\n"));
        assert!(text.contains("SUMMARY:Movie night\\; the sequel\\, part 2\r\n"));
        assert!(text.contains("SEQUENCE:3\r\n"));
        for line in text.split("\r\n") {
            assert!(line.len() <= 75, "{line:?}");
        }
        // Unfolded, the description is whole, newlines escaped.
        let unfolded = text.replace("\r\n ", "");
        assert!(unfolded.contains("DESCRIPTION:Bring snacks\\nand friends Bring snacks"));
        let mut cancelled = event();
        cancelled.status = EventStatus::Cancelled;
        assert!(ics(&cancelled, "https://a", 4).contains("STATUS:CANCELLED\r\n"));
    }

    #[test]
    fn inputs_are_checked_against_the_clock_and_each_other() {
        let now = "2027-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let ok = EventInput {
            title: Some(" Watch ".into()),
            start_time: Some(now + chrono::TimeDelta::hours(1)),
            end_time: Some(now + chrono::TimeDelta::hours(3)),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        };
        let c = ok.clone().check(None, now).unwrap();
        assert_eq!((c.title.as_str(), c.is_public), ("Watch", true));
        let field = |i: EventInput| match i.check(None, now) {
            Err(EventError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(EventInput {
                title: None,
                ..ok.clone()
            }),
            "title"
        );
        assert_eq!(
            field(EventInput {
                start_time: Some(now - chrono::TimeDelta::hours(1)),
                ..ok.clone()
            }),
            "start_time"
        );
        assert_eq!(
            field(EventInput {
                end_time: ok.start_time,
                ..ok.clone()
            }),
            "end_time"
        );
        assert_eq!(
            field(EventInput {
                end_time: Some(now + chrono::TimeDelta::days(9)),
                ..ok.clone()
            }),
            "end_time"
        );
        assert_eq!(
            field(EventInput {
                timezone: Some("Mars/Olympus".into()),
                ..ok.clone()
            }),
            "timezone"
        );
        assert_eq!(
            field(EventInput {
                video_url: Some("ftp://x".into()),
                ..ok.clone()
            }),
            "video_url"
        );
        assert_eq!(
            field(EventInput {
                max_attendees: Some(0),
                ..ok.clone()
            }),
            "max_attendees"
        );
    }
}
