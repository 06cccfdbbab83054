//! Party polls (seed item 6): the host or a co-host asks a question with 2 to 10
//! options; members vote once each (single or multiple choice), may change their vote
//! while the poll is open, and see the counts live unless the creator hid them until
//! the close. A poll closes by hand (its creator, the host, staff), at the end of its
//! duration (the scheduler's sweep, [`close_due`]) or when the party ends.
//!
//! Counts are exact under concurrency: every vote of a poll takes the poll's row lock,
//! changes the vote rows and the option counters in the same transaction and bumps the
//! poll's `version`; the counts a vote reads before it commits are the counts at that
//! version, and sockets keep the highest version they have seen. A vote is recorded for
//! analytics (`poll.vote`) through the outbox in the same transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;
use wp_shared::jobs::AnalyticsEvent;

use super::{
    PartyError, PartyRole,
    events::{PartyEvent, UserRef},
};
use crate::{account::Actor, social::UserSummary};

mod votes;
pub use votes::*;

pub const QUESTION_MAX: usize = 500;
pub const OPTION_MAX: usize = 200;
pub const OPTIONS_MIN: usize = 2;
pub const OPTIONS_MAX: usize = 10;
/// Shortest and longest duration of a poll that closes by itself, in seconds.
pub const DURATION_MIN: i32 = 10;
pub const DURATION_MAX: i32 = 7 * 24 * 3600;
/// Open polls a party may have at once (the socket's snapshot carries them all).
pub const OPEN_MAX: i64 = 10;

crate::text_enum! {
    /// Why a poll is closed.
    pub enum CloseReason as "poll close reason" {
        /// By its creator, the host or staff.
        Closed = "closed",
        /// At the end of its duration.
        Expired = "expired",
        PartyEnded = "party_ended",
    }
}

/// An option of a poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PollOption {
    pub id: Uuid,
    pub text: String,
    /// Null while the results are hidden (`results_visible: false`).
    pub votes_count: Option<i32>,
}

/// A poll as one caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Poll {
    pub id: Uuid,
    pub party_id: Uuid,
    pub creator: UserSummary,
    pub question: String,
    /// In the order given at creation.
    pub options: Vec<PollOption>,
    /// Whether a voter may choose several options.
    pub multiple_choice: bool,
    /// Whether who voted for what is kept from everyone (`/votes/` is then 403).
    pub anonymous: bool,
    /// Whether the counts stay hidden until the poll closes.
    pub hide_results: bool,
    /// Seconds from creation to the automatic close; null: open until closed by hand.
    pub duration: Option<i32>,
    pub closes_at: Option<DateTime<Utc>>,
    /// Open for votes now.
    pub is_active: bool,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_reason: Option<CloseReason>,
    /// Users who voted.
    pub voters_count: i32,
    /// Whether `options[].votes_count` are given (always, unless `hide_results` and open).
    pub results_visible: bool,
    /// The options the caller chose (empty in frames sent to the whole party).
    pub my_votes: Vec<Uuid>,
    /// Grows with every change of the counts or the state.
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

/// The counts of a poll at one version (`poll_updated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PollCounts {
    pub poll_id: Uuid,
    pub version: i64,
    /// Null while the results are hidden.
    pub options: Option<Vec<OptionCount>>,
    pub voters_count: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OptionCount {
    pub id: Uuid,
    pub votes_count: i32,
}

/// A new poll as asked for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPoll {
    /// 1 to 500 characters.
    pub question: String,
    /// 2 to 10 distinct options of 1 to 200 characters each.
    pub options: Vec<String>,
    #[serde(default)]
    pub multiple_choice: bool,
    #[serde(default)]
    pub anonymous: bool,
    /// Hide the counts until the poll closes.
    #[serde(default)]
    pub hide_results: bool,
    /// Seconds until the poll closes by itself (10 to 604800); null or absent: open
    /// until closed by hand.
    pub duration: Option<i32>,
}

/// Why a poll action is refused.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// No such poll, or one in a party the caller may not see.
    #[error("Not found.")]
    NotFound,
    #[error(transparent)]
    Party(#[from] PartyError),
    #[error("This poll is closed.")]
    Closed,
    #[error("A party has at most 10 open polls; close one first.")]
    TooMany,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type PollResult<T> = Result<T, PollError>;

fn invalid(field: &'static str, message: impl Into<String>) -> PollError {
    PollError::Invalid {
        field,
        message: message.into(),
    }
}

impl NewPoll {
    /// Trims and checks every field; the first problem names its field.
    pub fn checked(mut self) -> PollResult<Self> {
        self.question = self.question.trim().to_owned();
        let len = self.question.chars().count();
        if len == 0 || len > QUESTION_MAX {
            return Err(invalid("question", "1 to 500 characters."));
        }
        if !(OPTIONS_MIN..=OPTIONS_MAX).contains(&self.options.len()) {
            return Err(invalid("options", "2 to 10 options."));
        }
        let mut seen = HashSet::new();
        for (i, o) in self.options.iter_mut().enumerate() {
            *o = o.trim().to_owned();
            let len = o.chars().count();
            if len == 0 || len > OPTION_MAX {
                return Err(invalid(
                    "options",
                    format!("options[{i}]: 1 to 200 characters."),
                ));
            }
            if !seen.insert(o.to_lowercase()) {
                return Err(invalid(
                    "options",
                    format!("options[{i}]: repeats an option."),
                ));
            }
        }
        if let Some(d) = self.duration
            && !(DURATION_MIN..=DURATION_MAX).contains(&d)
        {
            return Err(invalid("duration", "10 to 604800 seconds, or null."));
        }
        Ok(self)
    }
}

#[derive(sqlx::FromRow)]
struct PollRow {
    id: Uuid,
    party_id: Uuid,
    creator_id: Uuid,
    username: String,
    display_name: String,
    avatar_path: Option<String>,
    question: String,
    multiple_choice: bool,
    anonymous: bool,
    hide_results: bool,
    duration_seconds: Option<i32>,
    closes_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    closed_reason: Option<CloseReason>,
    voters_count: i32,
    version: i64,
    created_at: DateTime<Utc>,
    is_active: bool,
}

/// Open: not closed, and its time (if any) not up. The same test everywhere.
const IS_OPEN: &str = "(p.closed_at IS NULL AND (p.closes_at IS NULL OR p.closes_at > now()))";

fn select(rest: &str) -> String {
    format!(
        "SELECT p.id, p.party_id, p.creator_id, u.username, u.display_name, u.avatar_path, p.question,
                p.multiple_choice, p.anonymous, p.hide_results, p.duration_seconds, p.closes_at,
                p.closed_at, p.closed_reason, p.voters_count, p.version, p.created_at,
                {IS_OPEN} AS is_active
           FROM party_polls p JOIN users u ON u.id = p.creator_id {rest}"
    )
}

/// Views of `rows` (options in order; `viewer`'s own votes when given).
async fn assemble(
    conn: &mut PgConnection,
    rows: Vec<PollRow>,
    viewer: Option<Uuid>,
) -> sqlx::Result<Vec<Poll>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let options: Vec<(Uuid, Uuid, String, i32)> = sqlx::query_as(
        "SELECT poll_id, id, text, votes_count FROM party_poll_options
          WHERE poll_id = ANY($1) ORDER BY poll_id, position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_poll: HashMap<Uuid, Vec<(Uuid, String, i32)>> = HashMap::new();
    for (poll, id, text, n) in options {
        by_poll.entry(poll).or_default().push((id, text, n));
    }
    let mut mine: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    if let Some(user) = viewer {
        let votes: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT v.poll_id, v.option_id FROM party_poll_votes v
               JOIN party_poll_options o ON o.id = v.option_id
              WHERE v.poll_id = ANY($1) AND v.user_id = $2 ORDER BY o.position",
        )
        .bind(&ids)
        .bind(user)
        .fetch_all(&mut *conn)
        .await?;
        for (poll, option) in votes {
            mine.entry(poll).or_default().push(option);
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let visible = !r.hide_results || !r.is_active;
            Poll {
                options: by_poll
                    .remove(&r.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(id, text, n)| PollOption {
                        id,
                        text,
                        votes_count: visible.then_some(n),
                    })
                    .collect(),
                my_votes: mine.remove(&r.id).unwrap_or_default(),
                id: r.id,
                party_id: r.party_id,
                creator: UserSummary::new(
                    r.creator_id,
                    r.username,
                    r.display_name,
                    r.avatar_path.as_deref(),
                ),
                question: r.question,
                multiple_choice: r.multiple_choice,
                anonymous: r.anonymous,
                hide_results: r.hide_results,
                duration: r.duration_seconds,
                closes_at: r.closes_at,
                is_active: r.is_active,
                closed_at: r.closed_at,
                closed_reason: r.closed_reason,
                voters_count: r.voters_count,
                results_visible: visible,
                version: r.version,
                created_at: r.created_at,
            }
        })
        .collect())
}

async fn view(conn: &mut PgConnection, id: Uuid, viewer: Option<Uuid>) -> PollResult<Poll> {
    let row: PollRow = sqlx::query_as(&select("WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(PollError::NotFound)?;
    assemble(conn, vec![row], viewer)
        .await?
        .pop()
        .ok_or(PollError::NotFound)
}

/// The party of a poll `me` may read: 404 when there is no such poll or `me` cannot see
/// its party, `not_a_member` unless `me` is a member (staff read any party they see).
async fn readable_party(conn: &mut PgConnection, me: &Actor, poll: Uuid) -> PollResult<Uuid> {
    let party: Uuid = sqlx::query_scalar("SELECT party_id FROM party_polls WHERE id = $1")
        .bind(poll)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(PollError::NotFound)?;
    let row = super::visible(conn, me, party)
        .await
        .map_err(not_found_as_poll)?;
    if !me.is_staff() {
        row.member_role()?;
    }
    Ok(party)
}

fn not_found_as_poll(e: PartyError) -> PollError {
    match e {
        PartyError::NotFound => PollError::NotFound,
        other => other.into(),
    }
}

/// Checks that `me` may create a poll in `party` (the host, co-hosts and staff):
/// called before the request body is read, and again under the party's lock.
pub async fn may_create(conn: &mut PgConnection, me: &Actor, party: Uuid) -> PollResult<()> {
    let row = super::visible(conn, me, party).await?;
    row.require_role(me, PartyRole::Cohost)?;
    Ok(())
}

/// Creates a poll in `party` (`new` already [`NewPoll::checked`]).
pub async fn create(db: &PgPool, me: &Actor, party: Uuid, new: &NewPoll) -> PollResult<Poll> {
    let mut tx = db.begin().await?;
    let row = super::locked(&mut tx, me, party).await?;
    row.require_role(me, PartyRole::Cohost)?;
    let open: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM party_polls p WHERE p.party_id = $1 AND {IS_OPEN}"
    ))
    .bind(party)
    .fetch_one(&mut *tx)
    .await?;
    if open >= OPEN_MAX {
        return Err(PollError::TooMany);
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO party_polls (id, party_id, creator_id, question, multiple_choice, anonymous,
                                  hide_results, duration_seconds, closes_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))",
    )
    .bind(id)
    .bind(party)
    .bind(me.id)
    .bind(&new.question)
    .bind(new.multiple_choice)
    .bind(new.anonymous)
    .bind(new.hide_results)
    .bind(new.duration)
    .bind(new.duration.map(f64::from))
    .execute(&mut *tx)
    .await?;
    let option_ids: Vec<Uuid> = new.options.iter().map(|_| Uuid::now_v7()).collect();
    let positions: Vec<i16> = (0..new.options.len())
        .map(|i| i16::try_from(i).unwrap_or(i16::MAX))
        .collect();
    sqlx::query(
        "INSERT INTO party_poll_options (id, poll_id, position, text)
         SELECT o.id, $1, o.position, o.text FROM unnest($2::uuid[], $3::smallint[], $4::text[])
             AS o (id, position, text)",
    )
    .bind(id)
    .bind(&option_ids)
    .bind(&positions)
    .bind(&new.options)
    .execute(&mut *tx)
    .await?;
    let poll = view(&mut tx, id, Some(me.id)).await?;
    tx.commit().await?;
    Ok(poll)
}

/// Which polls a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListFilter {
    All,
    Active,
    Closed,
}

/// A page of a party's polls, newest first, and how many there are in all.
pub async fn list(
    conn: &mut PgConnection,
    me: &Actor,
    party: Uuid,
    filter: ListFilter,
    limit: i64,
    offset: i64,
) -> PollResult<(Vec<Poll>, i64)> {
    let row = super::visible(conn, me, party).await?;
    if !me.is_staff() {
        row.member_role()?;
    }
    let cond = match filter {
        ListFilter::All => "TRUE".to_owned(),
        ListFilter::Active => IS_OPEN.to_owned(),
        ListFilter::Closed => format!("NOT {IS_OPEN}"),
    };
    let count: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM party_polls p WHERE p.party_id = $1 AND {cond}"
    ))
    .bind(party)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<PollRow> = sqlx::query_as(&select(&format!(
        "WHERE p.party_id = $1 AND {cond} ORDER BY p.created_at DESC, p.id DESC LIMIT $2 OFFSET $3"
    )))
    .bind(party)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((assemble(conn, rows, Some(me.id)).await?, count))
}

/// The open polls of a party with `viewer`'s votes, oldest first (the socket's
/// snapshot; at most [`OPEN_MAX`]).
pub async fn open_polls(db: &PgPool, party: Uuid, viewer: Uuid) -> sqlx::Result<Vec<Poll>> {
    let mut conn = db.acquire().await?;
    let rows: Vec<PollRow> = sqlx::query_as(&select(&format!(
        "WHERE p.party_id = $1 AND {IS_OPEN} ORDER BY p.created_at, p.id LIMIT $2"
    )))
    .bind(party)
    .bind(OPEN_MAX)
    .fetch_all(&mut *conn)
    .await?;
    assemble(&mut conn, rows, Some(viewer)).await
}

/// One poll as `me` sees it.
pub async fn get(conn: &mut PgConnection, me: &Actor, poll: Uuid) -> PollResult<Poll> {
    readable_party(conn, me, poll).await?;
    view(conn, poll, Some(me.id)).await
}

/// Locks a poll for its creator, the host or staff: its party, or why not.
async fn manage(conn: &mut PgConnection, me: &Actor, poll: Uuid) -> PollResult<Uuid> {
    let head: Option<(Uuid, Uuid)> =
        sqlx::query_as("SELECT party_id, creator_id FROM party_polls WHERE id = $1 FOR UPDATE")
            .bind(poll)
            .fetch_optional(&mut *conn)
            .await?;
    let (party, creator) = head.ok_or(PollError::NotFound)?;
    let row = super::visible(conn, me, party)
        .await
        .map_err(not_found_as_poll)?;
    if creator == me.id && row.my_role.is_some() {
        return Ok(party);
    }
    row.require_role(me, PartyRole::Host).map_err(|_| {
        PollError::Party(PartyError::PermissionDenied(
            "Only the poll's creator or the host may do this.",
        ))
    })?;
    Ok(party)
}

/// Checks that `me` may close or delete `poll` (before a body is read).
pub async fn may_manage(db: &PgPool, me: &Actor, poll: Uuid) -> PollResult<()> {
    let mut tx = db.begin().await?;
    manage(&mut tx, me, poll).await?;
    tx.rollback().await?;
    Ok(())
}

/// Records the `poll.results` notification of a closed poll for its party's members
/// (the option or options with the most votes); returns the outbox row.
async fn announce_results(
    conn: &mut PgConnection,
    poll: &Poll,
    actor: Option<Uuid>,
) -> sqlx::Result<i64> {
    let votes = poll
        .options
        .iter()
        .filter_map(|o| o.votes_count)
        .max()
        .unwrap_or(0);
    let top: Vec<&str> = poll
        .options
        .iter()
        .filter(|o| votes > 0 && o.votes_count == Some(votes))
        .map(|o| o.text.as_str())
        .collect();
    crate::events::emit(
        conn,
        "poll.results",
        actor,
        None,
        serde_json::json!({
            "party_id": poll.party_id, "poll_id": poll.id, "question": poll.question,
            "top": top, "votes": votes, "voters": poll.voters_count,
        }),
    )
    .await
}

/// Closes an open poll (its creator, the host, staff); the result, for the party's
/// sockets too (`poll_closed`), and the outbox row of the members' `poll.results`
/// notification. `Closed` if it already was.
pub async fn close(db: &PgPool, me: &Actor, poll: Uuid) -> PollResult<(Poll, i64)> {
    let mut tx = db.begin().await?;
    manage(&mut tx, me, poll).await?;
    let done = sqlx::query(&format!(
        "UPDATE party_polls p SET closed_at = now(), closed_reason = 'closed', version = version + 1
          WHERE p.id = $1 AND {IS_OPEN}"
    ))
    .bind(poll)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(PollError::Closed);
    }
    let view = view(&mut tx, poll, None).await?;
    let row = announce_results(&mut tx, &view, Some(me.id)).await?;
    tx.commit().await?;
    Ok((view, row))
}

/// Deletes a poll and its votes (its creator, the host, staff). Returns its party.
pub async fn delete(db: &PgPool, me: &Actor, poll: Uuid) -> PollResult<Uuid> {
    let mut tx = db.begin().await?;
    let party = manage(&mut tx, me, poll).await?;
    sqlx::query("DELETE FROM party_polls WHERE id = $1")
        .bind(poll)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(party)
}

/// Closes the polls whose time is up at `now` (`expired`, closed at their `closes_at`)
/// and the open polls of ended parties (`party_ended`). Each poll is closed once,
/// whichever scheduler or worker runs this. Returns the closed polls (no viewer) and
/// the outbox rows of the `poll.results` notifications (expired polls; a party that
/// ended has nobody left to tell).
pub async fn close_due(db: &PgPool, now: DateTime<Utc>) -> sqlx::Result<(Vec<Poll>, Vec<i64>)> {
    let mut tx = db.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE party_polls p
            SET closed_at = CASE WHEN p.closes_at <= $1 THEN p.closes_at ELSE $1 END,
                closed_reason = CASE WHEN p.closes_at <= $1 THEN 'expired' ELSE 'party_ended' END,
                version = p.version + 1
           FROM parties pa
          WHERE pa.id = p.party_id AND p.closed_at IS NULL
            AND (p.closes_at <= $1 OR pa.status <> 'active')
         RETURNING p.id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let rows: Vec<PollRow> = sqlx::query_as(&select("WHERE p.id = ANY($1) ORDER BY p.id"))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let polls = assemble(&mut tx, rows, None).await?;
    let mut outbox = Vec::new();
    for p in polls
        .iter()
        .filter(|p| p.closed_reason == Some(CloseReason::Expired))
    {
        outbox.push(announce_results(&mut tx, p, None).await?);
    }
    tx.commit().await?;
    Ok((polls, outbox))
}

/// One voter of a poll that is not anonymous.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct PollVoter {
    #[sqlx(flatten)]
    pub user: UserSummary,
    /// The options chosen, in the poll's order.
    pub option_ids: Vec<Uuid>,
    pub voted_at: DateTime<Utc>,
}

/// A page of who voted for what (members; 403 for an anonymous poll or while the
/// results are hidden), by first vote.
pub async fn voters(
    conn: &mut PgConnection,
    me: &Actor,
    poll: Uuid,
    limit: i64,
    offset: i64,
) -> PollResult<(Vec<PollVoter>, i64)> {
    readable_party(conn, me, poll).await?;
    let p = view(conn, poll, None).await?;
    if p.anonymous {
        return Err(PartyError::PermissionDenied("This poll is anonymous.").into());
    }
    if !p.results_visible {
        return Err(
            PartyError::PermissionDenied("The results are hidden until the poll closes.").into(),
        );
    }
    let rows: Vec<PollVoter> = sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, u.avatar_path,
                array_agg(v.option_id ORDER BY o.position) AS option_ids,
                min(v.voted_at) AS voted_at
           FROM party_poll_votes v
           JOIN users u ON u.id = v.user_id
           JOIN party_poll_options o ON o.id = v.option_id
          WHERE v.poll_id = $1
          GROUP BY u.id, u.username, u.display_name, u.avatar_path
          ORDER BY min(v.voted_at), u.id
          LIMIT $2 OFFSET $3",
    )
    .bind(poll)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, i64::from(p.voters_count)))
}

/// `poll_deleted` for the party's sockets.
pub fn deleted_event(poll: Uuid, by: &Actor) -> PartyEvent {
    PartyEvent::PollDeleted {
        poll_id: poll,
        by: UserRef::new(by.id, &by.username),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(options: &[&str]) -> NewPoll {
        NewPoll {
            question: "  Which one?  ".into(),
            options: options.iter().map(|s| (*s).to_owned()).collect(),
            multiple_choice: false,
            anonymous: false,
            hide_results: false,
            duration: None,
        }
    }

    fn field(r: PollResult<NewPoll>) -> &'static str {
        match r {
            Err(PollError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn new_polls_are_trimmed_and_checked() {
        let p = new(&[" a ", "b"]).checked().unwrap();
        assert_eq!(p.question, "Which one?");
        assert_eq!(p.options, vec!["a", "b"]);
        assert_eq!(field(new(&["a"]).checked()), "options");
        assert_eq!(field(new(&["a", "A "]).checked()), "options");
        assert_eq!(field(new(&["a", " "]).checked()), "options");
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
        assert_eq!(field(new(&eleven).checked()), "options");
        let mut p = new(&["a", "b"]);
        p.question = " ".into();
        assert_eq!(field(p.checked()), "question");
        let mut p = new(&["a", "b"]);
        p.question = "q".repeat(501);
        assert_eq!(field(p.checked()), "question");
        let mut p = new(&["a", "b"]);
        p.duration = Some(9);
        assert_eq!(field(p.checked()), "duration");
        let mut p = new(&["a", "b"]);
        p.duration = Some(60);
        assert!(p.checked().is_ok());
    }
}
