//! A video's analytics (`GET /api/analytics/video/{id}/analytics/`): views, distinct
//! viewers, watch time, the retention curve, the engagement heatmap, traffic sources,
//! platforms, countries, likes, dislikes, comments and downloads over time, and the
//! same alone and in parties side by side; read from the rollups, never raw events.
//! Its owner's and staff's only ([`readable`]).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ch_day, ch_time, query_text};
use crate::account::Actor;

/// The longest range, days.
pub const RANGE_MAX_DAYS: i64 = 400;
/// The longest range read by the hour, days.
pub const HOURLY_MAX_DAYS: i64 = 31;
/// The default range: the last this many days.
pub const RANGE_DEFAULT_DAYS: i64 = 30;

crate::text_enum! {
    /// The width of a point of the series.
    pub enum Interval as "interval" {
        Hour = "hour",
        Day = "day",
        Week = "week",
    }
}

impl Interval {
    /// The start of a point, in ClickHouse, from the rollup's `hour`.
    fn bucket(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "toStartOfDay(hour)",
            Self::Week => "toDateTime(toMonday(hour))",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("Not found.")]
    NotFound,
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("clickhouse: {0}")]
    ClickHouse(String),
}

impl From<clickhouse::error::Error> for AnalyticsError {
    fn from(e: clickhouse::error::Error) -> Self {
        Self::ClickHouse(e.to_string())
    }
}

/// The period asked for: `[from, to)`, read by `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
}

impl Period {
    /// The period of `from`/`to`/`interval` at `now` (defaults: the last 30 days, by
    /// day); both ends are rounded down to the hour (the rollups' grain).
    pub fn new(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        interval: Option<Interval>,
        now: DateTime<Utc>,
    ) -> Result<Self, AnalyticsError> {
        let hour = |t: DateTime<Utc>| {
            Utc.timestamp_opt(t.timestamp() - t.timestamp().rem_euclid(3600), 0)
                .single()
                .unwrap_or(t)
        };
        // The current hour counts: `to` defaults to the next hour's start.
        let to = hour(to.unwrap_or(now + TimeDelta::hours(1)));
        let from = hour(from.unwrap_or(to - TimeDelta::days(RANGE_DEFAULT_DAYS)));
        let interval = interval.unwrap_or(Interval::Day);
        let invalid = |field, message| Err(AnalyticsError::Invalid { field, message });
        if from >= to {
            return invalid("from", "Before `to` (by an hour at least).");
        }
        if to - from > TimeDelta::days(RANGE_MAX_DAYS) {
            return invalid("from", "At most 400 days before `to`.");
        }
        if interval == Interval::Hour && to - from > TimeDelta::days(HOURLY_MAX_DAYS) {
            return invalid("interval", "By the hour, at most 31 days.");
        }
        Ok(Self { from, to, interval })
    }

    /// The period of the same length just before this one.
    pub fn previous(&self) -> Self {
        Self {
            from: self.from - (self.to - self.from),
            to: self.from,
            interval: self.interval,
        }
    }

    /// The days the daily rollups (retention, heatmap) are read over: from `from`'s day
    /// to the day of `to`'s last instant.
    fn days(&self) -> (String, String) {
        (ch_day(self.from), ch_day(self.to - TimeDelta::seconds(1)))
    }
}

/// The video whose analytics `me` reads.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: Uuid,
    pub title: String,
    pub duration_seconds: Option<f64>,
}

/// Video `id` if `me` may read its analytics: its owner, or staff. A video `me` cannot
/// see is not found; one `me` sees but does not own is forbidden.
pub async fn readable(db: &sqlx::PgPool, me: &Actor, id: Uuid) -> Result<Subject, AnalyticsError> {
    let row: Option<(Uuid, String, Option<f64>)> = sqlx::query_as(
        "SELECT v.owner_id, v.title, v.duration_seconds FROM videos v
          WHERE v.id = $1 AND video_visible_to(v.owner_id, v.status, v.visibility, $2, $3)",
    )
    .bind(id)
    .bind(me.id)
    .bind(me.is_staff())
    .fetch_optional(db)
    .await?;
    let (owner, title, duration_seconds) = row.ok_or(AnalyticsError::NotFound)?;
    if owner != me.id && !me.is_staff() {
        return Err(AnalyticsError::PermissionDenied(
            "A video's analytics are its owner's (and staff's).",
        ));
    }
    Ok(Subject {
        id,
        title,
        duration_seconds,
    })
}

/// Views, viewers and watch time of a set of views (all, alone or in parties).
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Audience {
    /// Views begun.
    pub views: u64,
    /// Distinct users who began a view.
    pub unique_viewers: u64,
    /// Seconds of playback reported.
    pub watch_seconds: f64,
    /// `watch_seconds / views` (0 without views).
    pub average_view_seconds: f64,
    /// The share of the viewers who played through 95% of the video (retention at
    /// point 95; null when the video's length is unknown or nobody played it).
    pub completion: Option<f64>,
}

impl Audience {
    fn new(views: u64, unique_viewers: u64, watch_seconds: f64) -> Self {
        Self {
            views,
            unique_viewers,
            watch_seconds,
            average_view_seconds: if views == 0 {
                0.0
            } else {
                watch_seconds / views as f64
            },
            completion: None,
        }
    }
}

/// Interactions counted over the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Interactions {
    pub likes: u64,
    pub dislikes: u64,
    pub comments: u64,
    pub downloads: u64,
    pub reactions: u64,
    pub seeks: u64,
    pub buffering_events: u64,
}

/// One point of the series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The point's start.
    pub at: DateTime<Utc>,
    pub views: u64,
    pub unique_viewers: u64,
    pub watch_seconds: f64,
    pub likes: u64,
    pub dislikes: u64,
    pub comments: u64,
    pub downloads: u64,
}

/// The retention curves: at each of 100 points of the video, the share of the viewers
/// (those who played any of it) who played through that point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Retention {
    pub all: Vec<f64>,
    pub party: Vec<f64>,
    pub solo: Vec<f64>,
    /// Distinct viewers who played any of it: all, in parties, alone.
    pub viewers: u64,
    pub party_viewers: u64,
    pub solo_viewers: u64,
}

/// One second of the video with something on it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, clickhouse::Row, Deserialize)]
pub struct HeatmapSecond {
    pub second: u32,
    /// Backward seeks that replayed this second.
    pub rewatches: u64,
    /// Seeks that landed here.
    pub seeks: u64,
    /// Party reactions sent at this second.
    pub reactions: u64,
}

/// Views by one value of a dimension.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Share {
    /// `unknown` when the client did not say.
    pub value: String,
    pub views: u64,
    /// Of all views in the period.
    pub share: f64,
}

/// A video's analytics over a period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VideoAnalytics {
    pub video_id: Uuid,
    pub title: String,
    pub duration_seconds: Option<f64>,
    pub period: Period,
    pub totals: Audience,
    /// The same, alone and in parties side by side.
    pub solo: Audience,
    pub party: Audience,
    pub interactions: Interactions,
    pub series: Vec<SeriesPoint>,
    pub retention: Retention,
    pub heatmap: Vec<HeatmapSecond>,
    pub traffic_sources: Vec<Share>,
    pub platforms: Vec<Share>,
    pub countries: Vec<Share>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct TotalsRow {
    event_type: String,
    event_count: u64,
    user_count: u64,
    seconds_watched: f64,
    party_events: u64,
    party_users: u64,
    party_watch_seconds: f64,
    solo_events: u64,
    solo_users: u64,
    solo_watch_seconds: f64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct SeriesRow {
    at: u32,
    event_type: String,
    event_count: u64,
    user_count: u64,
    seconds_watched: f64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct BreakdownRow {
    dimension: String,
    value: String,
    views: u64,
}

/// One viewer's points (bit `p` of `low` for points 0–63, bit `p - 64` of `high` for
/// 64–99): of all their views, in parties, alone.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct ViewerPoints {
    any_low: u64,
    any_high: u64,
    party_low: u64,
    party_high: u64,
    solo_low: u64,
    solo_high: u64,
}

/// Viewers per point (0–99; 100: the viewers of any point).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RetentionRow {
    point: u8,
    viewer_count: u64,
    party_viewers: u64,
    solo_viewers: u64,
}

/// The viewers of each point, counted one viewer's masks at a time (as the rows
/// stream in: memory stays 101 rows however many viewers a video has).
struct PointCounts(Vec<RetentionRow>);

impl PointCounts {
    fn new() -> Self {
        Self(
            (0..=100u8)
                .map(|point| RetentionRow {
                    point,
                    ..RetentionRow::default()
                })
                .collect(),
        )
    }

    fn add(&mut self, v: &ViewerPoints) {
        self.count(v.any_low, v.any_high, |r| &mut r.viewer_count);
        self.count(v.party_low, v.party_high, |r| &mut r.party_viewers);
        self.count(v.solo_low, v.solo_high, |r| &mut r.solo_viewers);
    }

    fn count(&mut self, low: u64, high: u64, field: fn(&mut RetentionRow) -> &mut u64) {
        if low == 0 && high == 0 {
            return;
        }
        *field(&mut self.0[100]) += 1;
        for (mask, offset) in [(low, 0usize), (high, 64)] {
            let mut m = mask;
            while m != 0 {
                let point = offset + m.trailing_zeros() as usize;
                if point < 100 {
                    *field(&mut self.0[point]) += 1;
                }
                m &= m - 1;
            }
        }
    }
}

#[cfg(test)]
fn per_point(viewers: &[ViewerPoints]) -> Vec<RetentionRow> {
    let mut counts = PointCounts::new();
    for v in viewers {
        counts.add(v);
    }
    counts.0
}

const VIEW: &str = "video.view_start";
const PROGRESS: &str = "playback.progress";

/// Reads `subject`'s analytics over `period` from the rollups.
pub async fn read(
    ch: &clickhouse::Client,
    subject: &Subject,
    period: Period,
) -> Result<VideoAnalytics, AnalyticsError> {
    let id = subject.id;
    let (t0, t1) = (ch_time(period.from), ch_time(period.to));
    let (d0, d1) = period.days();
    let totals = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/video_totals.sql"),
            "",
        ))
        .bind(id)
        .bind(t0)
        .bind(t1)
        .fetch_all::<TotalsRow>();
    let series = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/video_series.sql"),
            period.interval.bucket(),
        ))
        .bind(id)
        .bind(t0)
        .bind(t1)
        .fetch_all::<SeriesRow>();
    let mut breakdown = ch.query(&query_text(
        include_str!("../../../clickhouse/queries/video_breakdown.sql"),
        "",
    ));
    for _ in 0..3 {
        breakdown = breakdown.bind(id).bind(t0).bind(t1);
    }
    let breakdown = breakdown.fetch_all::<BreakdownRow>();
    let retention = async {
        let mut viewers = ch
            .query(&query_text(
                include_str!("../../../clickhouse/queries/video_retention.sql"),
                "",
            ))
            .bind(id)
            .bind(&d0)
            .bind(&d1)
            .fetch::<ViewerPoints>()?;
        let mut counts = PointCounts::new();
        while let Some(v) = viewers.next().await? {
            counts.add(&v);
        }
        Ok(counts.0)
    };
    let heatmap = ch
        .query(&query_text(
            include_str!("../../../clickhouse/queries/video_heatmap.sql"),
            "",
        ))
        .bind(id)
        .bind(&d0)
        .bind(&d1)
        .fetch_all::<HeatmapSecond>();
    let (totals, series, breakdown, retention, heatmap) =
        tokio::try_join!(totals, series, breakdown, retention, heatmap)?;
    Ok(assemble(
        subject, period, &totals, &series, &breakdown, &retention, heatmap,
    ))
}

fn assemble(
    subject: &Subject,
    period: Period,
    totals: &[TotalsRow],
    series: &[SeriesRow],
    breakdown: &[BreakdownRow],
    retention: &[RetentionRow],
    heatmap: Vec<HeatmapSecond>,
) -> VideoAnalytics {
    let of = |t: &str| totals.iter().find(|r| r.event_type == t);
    let events = |t: &str| of(t).map_or(0, |r| r.event_count);
    let watched = of(PROGRESS);
    let view = of(VIEW);
    let audience = |views: fn(&TotalsRow) -> (u64, u64), seconds: fn(&TotalsRow) -> f64| {
        let (v, u) = view.map_or((0, 0), views);
        Audience::new(v, u, watched.map_or(0.0, seconds))
    };
    let mut all = audience(|r| (r.event_count, r.user_count), |r| r.seconds_watched);
    let mut party = audience(
        |r| (r.party_events, r.party_users),
        |r| r.party_watch_seconds,
    );
    let mut solo = audience(|r| (r.solo_events, r.solo_users), |r| r.solo_watch_seconds);

    let curve = curves(retention);
    if subject.duration_seconds.is_some() {
        let at95 = |c: &Vec<f64>, n: u64| (n > 0).then(|| c.get(95).copied().unwrap_or(0.0));
        all.completion = at95(&curve.all, curve.viewers);
        party.completion = at95(&curve.party, curve.party_viewers);
        solo.completion = at95(&curve.solo, curve.solo_viewers);
    }

    let mut points: BTreeMap<u32, SeriesPoint> = BTreeMap::new();
    for r in series {
        let p = points.entry(r.at).or_insert_with(|| SeriesPoint {
            at: Utc
                .timestamp_opt(i64::from(r.at), 0)
                .single()
                .unwrap_or_default(),
            ..SeriesPoint::default()
        });
        match r.event_type.as_str() {
            VIEW => {
                p.views = r.event_count;
                p.unique_viewers = r.user_count;
            }
            PROGRESS => p.watch_seconds = r.seconds_watched,
            "video.like" => p.likes = r.event_count,
            "video.dislike" => p.dislikes = r.event_count,
            "video.comment" => p.comments = r.event_count,
            "video.download" => p.downloads = r.event_count,
            _ => {}
        }
    }

    let views = all.views;
    let shares = |dim: &str| {
        let mut v: Vec<Share> = breakdown
            .iter()
            .filter(|r| r.dimension == dim)
            .map(|r| Share {
                value: if r.value.is_empty() {
                    "unknown".to_owned()
                } else {
                    r.value.clone()
                },
                views: r.views,
                share: if views == 0 {
                    0.0
                } else {
                    r.views as f64 / views as f64
                },
            })
            .collect();
        v.sort_by(|a, b| b.views.cmp(&a.views).then(a.value.cmp(&b.value)));
        v
    };

    VideoAnalytics {
        video_id: subject.id,
        title: subject.title.clone(),
        duration_seconds: subject.duration_seconds,
        period,
        totals: all,
        solo,
        party,
        interactions: Interactions {
            likes: events("video.like"),
            dislikes: events("video.dislike"),
            comments: events("video.comment"),
            downloads: events("video.download"),
            reactions: events("party.reaction"),
            seeks: events("playback.seek"),
            buffering_events: events("playback.buffer"),
        },
        series: points.into_values().collect(),
        retention: curve,
        heatmap,
        traffic_sources: shares("source"),
        platforms: shares("platform"),
        countries: shares("country"),
    }
}

/// The three curves from the per-point rows (point 100: the viewers of any point).
fn curves(rows: &[RetentionRow]) -> Retention {
    let base = rows.iter().find(|r| r.point == 100);
    let (n, np, ns) = base.map_or((0, 0, 0), |r| {
        (r.viewer_count, r.party_viewers, r.solo_viewers)
    });
    let share = |x: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            (x as f64 / of as f64).min(1.0)
        }
    };
    let mut c = Retention {
        all: vec![0.0; 100],
        party: vec![0.0; 100],
        solo: vec![0.0; 100],
        viewers: n,
        party_viewers: np,
        solo_viewers: ns,
    };
    for r in rows.iter().filter(|r| r.point < 100) {
        let i = usize::from(r.point);
        c.all[i] = share(r.viewer_count, n);
        c.party[i] = share(r.party_viewers, np);
        c.solo[i] = share(r.solo_viewers, ns);
    }
    c
}

/// Parses `YYYY-MM-DD` or RFC 3339 (`from`/`to` in a query string).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_default_round_and_refuse() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 10, 30, 0).unwrap();
        let p = Period::new(None, None, None, now).unwrap();
        assert_eq!(p.to, Utc.with_ymd_and_hms(2026, 12, 3, 11, 0, 0).unwrap());
        assert_eq!(p.from, p.to - TimeDelta::days(30));
        assert_eq!(p.interval, Interval::Day);
        let prev = p.previous();
        assert_eq!((prev.to, prev.from), (p.from, p.from - TimeDelta::days(30)));
        let field = |r: Result<Period, AnalyticsError>| match r {
            Err(AnalyticsError::Invalid { field, .. }) => Some(field),
            _ => None,
        };
        assert_eq!(
            field(Period::new(Some(now), Some(now), None, now)),
            Some("from")
        );
        assert_eq!(
            field(Period::new(
                Some(now - TimeDelta::days(401)),
                Some(now),
                None,
                now
            )),
            Some("from")
        );
        assert_eq!(
            field(Period::new(
                Some(now - TimeDelta::days(32)),
                Some(now),
                Some(Interval::Hour),
                now
            )),
            Some("interval")
        );
        assert_eq!(p.days(), ("2026-11-03".to_owned(), "2026-12-03".to_owned()));
        assert_eq!(
            parse_time("2026-12-01"),
            Some(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn curves_are_shares_of_the_viewers() {
        let row = |point, viewer_count, party_viewers, solo_viewers| RetentionRow {
            point,
            viewer_count,
            party_viewers,
            solo_viewers,
        };
        let c = curves(&[row(0, 2, 1, 1), row(50, 1, 1, 0), row(100, 4, 2, 2)]);
        assert_eq!((c.all[0], c.all[50], c.all[99]), (0.5, 0.25, 0.0));
        assert_eq!((c.party[50], c.solo[50], c.solo[0]), (0.5, 0.0, 0.5));
        assert_eq!(curves(&[]).all, vec![0.0; 100]);
    }

    #[test]
    fn viewers_are_counted_per_point_from_their_masks() {
        let points = |from: u32, to: u32| -> (u64, u64) {
            (from..=to).fold((0, 0), |(lo, hi), p| {
                if p < 64 {
                    (lo | 1 << p, hi)
                } else {
                    (lo, hi | 1 << (p - 64))
                }
            })
        };
        // Ann: 0-49 alone; Bob: 40-99 in a party and 0-9 alone; Cal: nothing alone.
        let (a_lo, a_hi) = points(0, 49);
        let (b_lo, b_hi) = points(40, 99);
        let (c_lo, c_hi) = points(0, 9);
        let rows = per_point(&[
            ViewerPoints {
                any_low: a_lo,
                any_high: a_hi,
                party_low: 0,
                party_high: 0,
                solo_low: a_lo,
                solo_high: a_hi,
            },
            ViewerPoints {
                any_low: b_lo | c_lo,
                any_high: b_hi | c_hi,
                party_low: b_lo,
                party_high: b_hi,
                solo_low: c_lo,
                solo_high: c_hi,
            },
        ]);
        let at = |p: usize| {
            let r = rows[p];
            (r.point, r.viewer_count, r.party_viewers, r.solo_viewers)
        };
        assert_eq!(rows.len(), 101);
        assert_eq!(at(0), (0, 2, 0, 2));
        assert_eq!(at(10), (10, 1, 0, 1));
        assert_eq!(at(45), (45, 2, 1, 1));
        assert_eq!(at(63), (63, 1, 1, 0));
        assert_eq!(at(64), (64, 1, 1, 0));
        assert_eq!(at(99), (99, 1, 1, 0));
        assert_eq!(at(100), (100, 2, 1, 2));
        // Bits past point 99 (none are written) count nowhere.
        let stray = per_point(&[ViewerPoints {
            any_low: 0,
            any_high: 1 << 40,
            party_low: 0,
            party_high: 0,
            solo_low: 0,
            solo_high: 0,
        }]);
        assert_eq!(stray.iter().map(|r| r.viewer_count).sum::<u64>(), 1);
    }
}
