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

mod attendance;
mod schedule;
pub use attendance::*;
pub use schedule::*;

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

/// The events that are `me`'s (organized, answered but not declined, or invited to):
/// among `ids`, or all that have not ended (`None`), soonest first.
pub async fn related(
    conn: &mut PgConnection,
    me: &Actor,
    ids: Option<&[Uuid]>,
) -> EventResult<Vec<Event>> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE e.id IN (
            SELECT x.id FROM events x WHERE x.organizer_id = $1
            UNION SELECT a.event_id FROM event_attendees a WHERE a.user_id = $1 AND a.status <> 'declined'
            UNION SELECT i.event_id FROM event_invitations i WHERE i.user_id = $1 AND i.status = 'pending')
          AND ($3::uuid[] IS NOT NULL OR e.status IN ('scheduled', 'live'))
          AND ($3::uuid[] IS NULL OR e.id = ANY($3))
          AND {VISIBLE}
        ORDER BY e.start_time, e.id LIMIT 500"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Event::from).collect())
}

/// The home screen's events for `me` at `now`: scheduled or live, not over, starting
/// before `now + horizon`, organized by `me` or a friend, in `me`'s groups, or answered
/// (not declined) or invited to by `me`; visible by [`VISIBLE`]; soonest first.
pub async fn upcoming_for_home(
    conn: &mut PgConnection,
    me: &Actor,
    now: DateTime<Utc>,
    horizon: chrono::TimeDelta,
    limit: i64,
) -> EventResult<Vec<Event>> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE e.id IN (
            SELECT x.id FROM events x WHERE x.organizer_id = $1
            UNION SELECT x.id FROM friendships f JOIN events x ON x.organizer_id = f.user_b WHERE f.user_a = $1
            UNION SELECT x.id FROM friendships f JOIN events x ON x.organizer_id = f.user_a WHERE f.user_b = $1
            UNION SELECT x.id FROM events x JOIN group_members g ON g.group_id = x.group_id AND g.user_id = $1
            UNION SELECT a.event_id FROM event_attendees a WHERE a.user_id = $1 AND a.status <> 'declined'
            UNION SELECT i.event_id FROM event_invitations i WHERE i.user_id = $1 AND i.status = 'pending')
          AND e.status IN ('scheduled', 'live') AND e.end_time > $3 AND e.start_time < $4
          AND {VISIBLE}
        ORDER BY e.start_time, e.id LIMIT $5"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(now)
    .bind(now + horizon)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(Event::from).collect())
}

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

/// The events of `ids` that `me` may see, in the order of `ids` (a search's ranking).
pub async fn visible_many(
    conn: &mut PgConnection,
    me: &Actor,
    ids: &[Uuid],
) -> EventResult<Vec<Event>> {
    let rows: Vec<EventRow> =
        sqlx::query_as(&format!("{SELECT} WHERE e.id = ANY($3) AND {VISIBLE}"))
            .bind(me.id)
            .bind(me.is_staff())
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut events: Vec<Event> = rows.into_iter().map(Event::from).collect();
    events.sort_by_key(|e| ids.iter().position(|id| *id == e.id));
    Ok(events)
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
