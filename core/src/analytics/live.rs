//! The live view for staff (`GET /api/analytics/real-time/`): viewers now, the live
//! parties and their sizes (the realtime presence in Redis), sockets per node (the
//! nodes' keys), events per second and the top videos of the last five minutes (the
//! per-minute rollup).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ch_time, query_text, video::AnalyticsError};
use crate::{
    account::Role,
    party::live::{Keys, NodeInfo},
};

/// Who may read the live figures, by REST and on the staff socket: moderators and
/// admins.
pub const READERS: Role = Role::Moderator;

/// "Now" for viewers: a view or progress within this many seconds.
pub const VIEWERS_WINDOW_SECS: i64 = 120;
/// The top videos are those of this many seconds.
pub const TOP_WINDOW_SECS: i64 = 300;
/// Active parties looked at (the most recently changed) for the live ones.
const PARTY_CANDIDATES: i64 = 500;
/// Live parties listed.
const PARTIES_LISTED: usize = 20;

/// A live party: someone's socket is in it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LiveParty {
    pub id: Uuid,
    pub title: String,
    pub video_id: Option<Uuid>,
    /// Sockets open in it now.
    pub online: u64,
    pub member_count: i64,
}

/// Events of one type in the last five minutes.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct EventRate {
    pub event_type: String,
    /// In the last five minutes.
    pub events: u64,
    /// Distinct users, in the last five minutes.
    pub users: u64,
    /// In the last complete minute.
    pub last_minute: u64,
}

/// A video watched in the last five minutes.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TopVideo {
    pub video_id: Uuid,
    pub title: Option<String>,
    /// Distinct users watching it.
    pub viewers: u64,
    pub events: u64,
}

/// The live figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RealTime {
    pub at: DateTime<Utc>,
    /// Distinct users who began a view or reported progress in the last two minutes.
    pub viewers_now: u64,
    /// Parties with at least one socket, and the sockets in them.
    pub live_parties: u64,
    pub party_sockets: u64,
    /// The most crowded live parties (20 at most).
    pub parties: Vec<LiveParty>,
    /// The live realtime nodes with their sockets and parties.
    pub nodes: Vec<NodeInfo>,
    /// All events recorded in the last complete minute, per second.
    pub events_per_second: f64,
    pub event_types: Vec<EventRate>,
    pub top_videos: Vec<TopVideo>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct ViewersRow {
    viewer_count: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct TopRow {
    video: String,
    viewer_count: u64,
    event_count: u64,
}

/// Reads the live figures at `now`.
pub async fn read(
    db: &sqlx::PgPool,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    ch: &clickhouse::Client,
    now: DateTime<Utc>,
) -> Result<RealTime, AnalyticsError> {
    let last_minute = now - TimeDelta::seconds(now.timestamp().rem_euclid(60) + 60);
    let rates = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/realtime_activity.sql"),
            "",
        ))
        .bind(ch_time(last_minute))
        .bind(ch_time(now - TimeDelta::seconds(TOP_WINDOW_SECS)))
        .fetch_all::<EventRate>();
    let viewers = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/realtime_viewers.sql"),
            "",
        ))
        .bind(ch_time(now - TimeDelta::seconds(VIEWERS_WINDOW_SECS)))
        .fetch_all::<ViewersRow>();
    let top = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/realtime_top_videos.sql"),
            "",
        ))
        .bind(ch_time(now - TimeDelta::seconds(TOP_WINDOW_SECS)))
        .fetch_all::<TopRow>();
    let (event_types, viewers, top) = tokio::try_join!(rates, viewers, top)?;

    let top: Vec<(Uuid, u64, u64)> = top
        .into_iter()
        .filter_map(|r| Some((r.video.parse().ok()?, r.viewer_count, r.event_count)))
        .collect();
    let ids: Vec<Uuid> = top.iter().map(|t| t.0).collect();
    let titles: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, title FROM videos WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(db)
            .await?;
    let top_videos = top
        .into_iter()
        .map(|(video_id, viewers, events)| TopVideo {
            video_id,
            title: titles
                .iter()
                .find(|(id, _)| *id == video_id)
                .map(|(_, t)| t.clone()),
            viewers,
            events,
        })
        .collect();

    let parties = live_parties(db, redis, prefix).await?;
    let nodes = match crate::party::live::nodes(redis, prefix).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "realtime nodes unreadable");
            Vec::new()
        }
    };
    let per_minute: u64 = event_types.iter().map(|r| r.last_minute).sum();
    Ok(RealTime {
        at: now,
        viewers_now: viewers.first().map_or(0, |r| r.viewer_count),
        live_parties: parties.len() as u64,
        party_sockets: parties.iter().map(|p| p.online).sum(),
        parties: parties.into_iter().take(PARTIES_LISTED).collect(),
        nodes,
        events_per_second: per_minute as f64 / 60.0,
        event_types,
        top_videos,
    })
}

/// The active parties with a socket in them, most crowded first.
async fn live_parties(
    db: &sqlx::PgPool,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
) -> sqlx::Result<Vec<LiveParty>> {
    let rows: Vec<(Uuid, String, Option<Uuid>, i64)> = sqlx::query_as(
        "SELECT p.id, p.title, p.video_id,
                (SELECT count(*) FROM party_members m WHERE m.party_id = p.id)
           FROM parties p WHERE p.status = 'active'
          ORDER BY p.updated_at DESC LIMIT $1",
    )
    .bind(PARTY_CANDIDATES)
    .fetch_all(db)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for r in &rows {
        pipe.hlen(Keys::new(prefix, r.0).presence());
    }
    let online: Vec<u64> = match pipe.query_async(redis).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "party presence unreadable");
            vec![0; rows.len()]
        }
    };
    let mut live: Vec<LiveParty> = rows
        .into_iter()
        .zip(online)
        .filter(|(_, n)| *n > 0)
        .map(|((id, title, video_id, member_count), online)| LiveParty {
            id,
            title,
            video_id,
            online,
            member_count,
        })
        .collect();
    live.sort_by(|a, b| b.online.cmp(&a.online).then(a.id.cmp(&b.id)));
    Ok(live)
}
