//! Search over videos, users, parties, events and groups (docs/search.md).
//!
//! One interface, two backends with the same answers' shape: PostgreSQL (the embedded
//! default: [`pg`]) and Meilisearch (when `MEILI_URL` is set). Both index the same
//! documents ([`docs`]), fed by the change log that triggers write in each writer's
//! transaction and the search worker folds in ([`sync`]). What a caller may see is
//! decided at query time from their [`Viewer`] scope — public things, their own, their
//! friends', their groups' and events' — never by what entered the index.

pub mod alerts;
pub mod docs;
pub mod params;
pub mod pg;
pub mod sync;

pub use params::{FieldError, SearchParams};

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

crate::text_enum! {
    /// What can be searched: one index per kind of object.
    pub enum SearchIndex as "search index" {
        Videos = "videos",
        Users = "users",
        Parties = "parties",
        Events = "events",
        Groups = "groups",
    }
}

crate::text_enum! {
    /// Result order.
    pub enum SearchSort as "search sort" {
        /// Best match first (the default).
        Relevance = "relevance",
        Newest = "newest",
        Oldest = "oldest",
        /// Likes and comments, members, attendees.
        Popular = "popular",
        /// Events and parties that start soonest.
        Soonest = "soonest",
    }
}

crate::text_enum! {
    /// Video length buckets (a filter and a facet).
    pub enum DurationBucket as "duration bucket" {
        /// Under 4 minutes.
        Short = "short",
        /// 4 to 20 minutes.
        Medium = "medium",
        /// Over 20 minutes.
        Long = "long",
    }
}

crate::text_enum! {
    /// How recently a video was uploaded (a filter and a facet).
    pub enum UploadedWithin as "upload date bucket" {
        Day = "day",
        Week = "week",
        Month = "month",
        Year = "year",
    }
}

impl DurationBucket {
    /// Seconds `[from, to)`.
    pub fn range(self) -> (f64, f64) {
        match self {
            DurationBucket::Short => (0.0, 240.0),
            DurationBucket::Medium => (240.0, 1200.0),
            DurationBucket::Long => (1200.0, f64::MAX),
        }
    }
}

impl UploadedWithin {
    pub fn since(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - match self {
            UploadedWithin::Day => chrono::Duration::days(1),
            UploadedWithin::Week => chrono::Duration::weeks(1),
            UploadedWithin::Month => chrono::Duration::days(30),
            UploadedWithin::Year => chrono::Duration::days(365),
        }
    }
}

/// Whose eyes a query runs for: the rules of docs/search.md need these sets only.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// None: signed out (public things only).
    pub id: Option<Uuid>,
    /// Moderators and admins see everything.
    pub staff: bool,
    pub friends: Vec<Uuid>,
    /// Groups the viewer belongs to (their private groups, group parties and events).
    pub groups: Vec<Uuid>,
    /// Users the viewer blocked or who blocked the viewer: hidden both ways.
    pub blocked: Vec<Uuid>,
    /// Events the viewer attends or was invited to.
    pub events: Vec<Uuid>,
    /// The viewer's language (`en`, `de-AT`): stemming of their query words.
    pub locale: String,
}

/// At most this many of each set are used (a viewer with more sees the rest through
/// the lists of friends, groups and events, not search).
const SCOPE_CAP: i64 = 5000;

impl Viewer {
    pub const ANONYMOUS: Viewer = Viewer {
        id: None,
        staff: false,
        friends: Vec::new(),
        groups: Vec::new(),
        blocked: Vec::new(),
        events: Vec::new(),
        locale: String::new(),
    };

    /// The scope of a signed-in user.
    pub async fn load(db: &PgPool, id: Uuid, staff: bool) -> sqlx::Result<Viewer> {
        type Sets = (Vec<Uuid>, Vec<Uuid>, Vec<Uuid>, Vec<Uuid>, Option<String>);
        let (friends, groups, blocked, events, locale): Sets = sqlx::query_as(
            "SELECT
                   ARRAY(SELECT CASE WHEN f.user_a = $1 THEN f.user_b ELSE f.user_a END
                         FROM friendships f WHERE f.user_a = $1 OR f.user_b = $1 LIMIT $2),
                   ARRAY(SELECT g.group_id FROM group_members g WHERE g.user_id = $1 LIMIT $2),
                   ARRAY(SELECT CASE WHEN b.blocker = $1 THEN b.blocked ELSE b.blocker END
                         FROM blocks b WHERE b.blocker = $1 OR b.blocked = $1 LIMIT $2),
                   ARRAY(SELECT a.event_id FROM event_attendees a
                         WHERE a.user_id = $1 AND a.status <> 'declined'
                         UNION SELECT i.event_id FROM event_invitations i WHERE i.user_id = $1
                         LIMIT $2),
                   (SELECT locale FROM users WHERE id = $1)",
        )
        .bind(id)
        .bind(SCOPE_CAP)
        .fetch_one(db)
        .await?;
        Ok(Viewer {
            id: Some(id),
            staff,
            friends,
            groups,
            blocked,
            events,
            locale: locale.unwrap_or_default(),
        })
    }
}

/// A checked search request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The words, trimmed (1 to 200 characters).
    pub q: String,
    pub indexes: BTreeSet<SearchIndex>,
    pub filters: Filters,
    pub sort: SearchSort,
    pub limit: i64,
    pub offset: i64,
    /// Count facet values (videos).
    pub facets: bool,
    /// Only things created after this instant (saved-search alerts: new videos).
    pub created_after: Option<DateTime<Utc>>,
}

/// Filters; each narrows the kinds it applies to and leaves the others alone.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Videos and groups.
    pub category: Option<String>,
    /// Videos carrying every one of these tags.
    pub tags: Vec<String>,
    pub duration: Option<DurationBucket>,
    pub uploaded: Option<UploadedWithin>,
    /// The caller's own videos of this visibility (owners only).
    pub visibility: Option<String>,
    /// Things of this owner (uploader, host, organizer, group admin).
    pub owner: Option<Uuid>,
    /// Events of this status (`scheduled`, `live`, `ended`, `cancelled`); without it
    /// cancelled events are left out.
    pub event_status: Option<String>,
    /// Events and parties of this group.
    pub group: Option<Uuid>,
    /// Events that end after this instant (the default: now — upcoming and live ones;
    /// the caller's own are kept whatever their time).
    pub upcoming_only: bool,
}

/// One result.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    #[serde(rename = "type")]
    pub kind: SearchIndex,
    pub id: Uuid,
    /// Title, or username for users, or name for groups.
    pub title: String,
    /// Description (display name for users), at most 300 characters.
    pub snippet: String,
    /// `title` and `snippet` as HTML-escaped text with the matched words in `<mark>`.
    pub highlights: Highlights,
    pub owner_id: Option<Uuid>,
    /// The owner's username.
    pub owner: String,
    pub category: String,
    pub tags: Vec<String>,
    pub visibility: String,
    pub duration_seconds: Option<f64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// What the kind adds (status, counts).
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// How well it matched (higher is better; comparable within one answer only).
    pub score: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Highlights {
    pub title: String,
    pub snippet: String,
}

/// A facet value and how many results have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FacetCount {
    pub value: String,
    pub count: i64,
}

/// Counts per facet value over all results (not only the page), videos only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Facets {
    pub category: Vec<FacetCount>,
    /// The 20 most frequent tags.
    pub tags: Vec<FacetCount>,
    /// `short`, `medium`, `long`.
    pub duration: Vec<FacetCount>,
    /// `day`, `week`, `month`, `year` (cumulative: a video of today is in all four).
    pub uploaded: Vec<FacetCount>,
    /// The caller's own videos among the results, by visibility.
    pub visibility: Vec<FacetCount>,
}

/// An answer.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    pub hits: Vec<Hit>,
    pub total: i64,
    /// Results per kind (over all pages).
    pub totals: Vec<(SearchIndex, i64)>,
    pub facets: Option<Facets>,
}

/// A suggestion for a search box.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    pub text: String,
    /// Where it comes from: `videos`, `users`, `parties`, `events`, `groups`, `tag` or
    /// `query` (a popular query).
    pub source: String,
}

/// A query is counted as popular (a suggestion, trending) once this many different
/// people ran it: no single user's query shows to others.
pub const POPULAR_MIN_USERS: i32 = 3;

/// Lower case, spaces folded: the form queries are counted in.
pub fn normalize_query(q: &str) -> String {
    q.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Records that `user` ran `q` (for popular-query suggestions): one statement, and a
/// user counts once per query.
pub async fn record_query(db: &PgPool, user: Uuid, q: &str) -> sqlx::Result<()> {
    let q = normalize_query(q);
    if q.is_empty() || q.chars().count() > 200 {
        return Ok(());
    }
    sqlx::query(
        // The user's row first: whether it was new says whether they count (its
        // foreign key is checked at the end of the statement, when the query row exists).
        "WITH u AS (
            INSERT INTO search_query_users (query, user_id) VALUES ($1, $2)
            ON CONFLICT DO NOTHING RETURNING 1)
         INSERT INTO search_queries AS s (query, searches, users, last_at)
         VALUES ($1, 1, (SELECT count(*) FROM u), now())
         ON CONFLICT (query) DO UPDATE
            SET searches = s.searches + 1, users = s.users + EXCLUDED.users, last_at = now()",
    )
    .bind(&q)
    .bind(user)
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_counted_in_one_form() {
        assert_eq!(normalize_query("  The   Matrix "), "the matrix");
        assert_eq!(normalize_query("ÉTÉ"), "été");
    }

    #[test]
    fn buckets_cover_every_length_once() {
        for secs in [0.0, 239.9, 240.0, 1199.0, 1200.0, 90000.0] {
            let n = DurationBucket::ALL
                .iter()
                .filter(|b| {
                    let (a, z) = b.range();
                    secs >= a && secs < z
                })
                .count();
            assert_eq!(n, 1, "{secs}");
        }
    }
}
