//! The analytics API (seed item 11, docs/analytics.md): playback events in
//! (`POST /api/analytics/events/`), a video's analytics for its owner and staff
//! (`GET /api/analytics/video/{id}/analytics/`), and the live figures for staff
//! (`GET /api/analytics/real-time/`). The rules and the ClickHouse reads are
//! `wp_core::analytics`.

use axum::extract::{OriginalUri, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::analytics::{
    behavior::{self, Behavior, Days},
    ingest::{self, PlaybackBatch, Rejected},
    live::{self, RealTime},
    predict::{self, Predictions},
    video::{self, AnalyticsError, Interval, Period, VideoAnalytics},
};

use crate::{
    auth::{AuthUser, Role},
    error::{AppError, AppResult, ErrorBody},
    extract::{Ids, JsonBody},
    response::{ApiResponse, Envelope},
    state::AppState,
};

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_events))
        .routes(routes!(video_analytics))
        .routes(routes!(real_time))
        .routes(routes!(user_behavior))
        .routes(routes!(predictive))
}

/// What became of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOutcome {
    /// Events taken (queued for ClickHouse).
    pub accepted: usize,
    /// Events already taken before (same `event_id`): counted once.
    pub duplicates: usize,
    /// Events not taken: a video the sender may not see, a party not theirs.
    pub rejected: Vec<Rejected>,
}

/// Records a batch of playback events (1 to 500): views begun, progress every 10 s,
/// seeks, pauses, stalls, rendition changes. Each field is checked (400 naming
/// `events[i].field`); times are clamped to the last 7 days; a re-sent `event_id` is
/// counted once.
#[utoipa::path(post, path = "/analytics/events/", tag = "analytics", security(("bearer" = [])), request_body = PlaybackBatch,
    responses((status = 200, body = inline(Envelope<BatchOutcome>)), (status = 400, body = ErrorBody),
              (status = 503, description = "The queue could not take the events: send them again", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn record_events(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<BatchOutcome>> {
    let batch: PlaybackBatch = body.parse()?;
    batch
        .check()
        .map_err(|p| AppError::field(p.field, p.message))?;
    let now = chrono::Utc::now();
    let refs = ingest::refs(&state.db, &me, &batch).await?;
    let (take, rejected) = ingest::prepare(&me, &batch, &refs, now);
    let prefix = &state.config.redis_prefix;
    let mut redis = state.redis.clone();
    let ids: Vec<Uuid> = take.iter().map(|(_, e)| e.event_id).collect();
    let day = ingest::dedupe_day(now);
    let new = ingest::mark_new(&mut redis, prefix, day, &ids)
        .await
        .map_err(|e| AppError::Unavailable {
            what: "redis",
            cause: e.to_string(),
        })?;
    let fresh: Vec<_> = take
        .into_iter()
        .zip(&new)
        .filter(|(_, n)| **n)
        .map(|((_, e), _)| e)
        .collect();
    let duplicates = ids.len() - fresh.len();
    let accepted = fresh.len();
    let fresh_ids: Vec<Uuid> = fresh.iter().map(|e| e.event_id).collect();
    let pushed = if fresh.is_empty() {
        Ok(())
    } else {
        // One queue entry for the whole batch.
        state
            .enqueuer
            .push(wp_shared::jobs::AnalyticsJob::Batch { events: fresh })
            .await
    };
    if let Err(e) = pushed {
        // Not taken after all: a re-send must not be a duplicate.
        if let Err(e) = ingest::unmark(&mut redis, prefix, day, &fresh_ids).await {
            tracing::warn!(error = %e, "analytics event ids left marked");
        }
        return Err(AppError::Unavailable {
            what: "queue",
            cause: e.to_string(),
        });
    }
    Ok(ApiResponse::ok(BatchOutcome {
        accepted,
        duplicates,
        rejected,
    }))
}

/// `?from=&to=&interval=&compare=`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsParams {
    /// The period's start (RFC 3339 or `YYYY-MM-DD`, rounded down to the hour); default:
    /// 30 days before `to`.
    pub from: Option<String>,
    /// The period's end (exclusive); default: the end of the current hour.
    pub to: Option<String>,
    /// The series' grain (default `day`; `hour` for at most 31 days).
    pub interval: Option<Interval>,
    /// `previous` (the same length just before) or another video's id (one whose
    /// analytics the caller may read): its figures come in `comparison`.
    pub compare: Option<String>,
}

/// A video's analytics, and what it is compared with.
#[derive(Debug, Serialize, ToSchema)]
pub struct VideoAnalyticsView {
    #[serde(flatten)]
    pub analytics: VideoAnalytics,
    /// The same for `compare` (null without it).
    pub comparison: Option<VideoAnalytics>,
}

/// A video's analytics (its owner and staff): views, distinct viewers, watch time,
/// average view length and completion, all and alone vs in parties; the series by
/// `interval`; retention curves (100 points); the per-second heatmap (rewatches,
/// seeks, reactions); traffic sources, platforms and countries; likes, dislikes,
/// comments and downloads. Read from the ClickHouse rollups.
#[utoipa::path(get, path = "/analytics/video/{id}/analytics/", tag = "analytics", security(("bearer" = [])),
    params(("id" = Uuid, Path), AnalyticsParams),
    responses((status = 200, body = inline(Envelope<VideoAnalyticsView>)), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, description = "ClickHouse did not answer in time", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn video_analytics(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    OriginalUri(uri): OriginalUri,
) -> AppResult<ApiResponse<VideoAnalyticsView>> {
    // The rule first: a stranger learns nothing of the parameters.
    let subject = video::readable(&state.db, &me, id).await?;
    let q: AnalyticsParams = crate::extract::parse_query(uri.query())?;
    let time = |field: &'static str, v: Option<&str>| {
        v.map(|s| {
            video::parse_time(s).ok_or_else(|| AppError::field(field, "RFC 3339 or YYYY-MM-DD."))
        })
        .transpose()
    };
    let period = Period::new(
        time("from", q.from.as_deref())?,
        time("to", q.to.as_deref())?,
        q.interval,
        chrono::Utc::now(),
    )?;
    let other = match q.compare.as_deref() {
        None => None,
        Some("previous") => Some((subject.clone(), period.previous())),
        Some(s) => {
            let other: Uuid = s
                .parse()
                .map_err(|_| AppError::field("compare", "`previous` or a video id."))?;
            let o = video::readable(&state.db, &me, other)
                .await
                .map_err(|e| match e {
                    AnalyticsError::NotFound | AnalyticsError::PermissionDenied(_) => {
                        AppError::field("compare", "No video whose analytics you may read.")
                    }
                    e => e.into(),
                })?;
            Some((o, period))
        }
    };
    let read = async {
        let main = video::read(&state.clickhouse, &subject, period);
        let comparison = async {
            match &other {
                Some((s, p)) => video::read(&state.clickhouse, s, *p).await.map(Some),
                None => Ok(None),
            }
        };
        tokio::try_join!(main, comparison)
    };
    let (analytics, comparison) = within_deadline(&state, read).await?;
    Ok(ApiResponse::ok(VideoAnalyticsView {
        analytics,
        comparison,
    }))
}

/// The live figures (staff): viewers now, live parties and their sizes, sockets per
/// node, events per second, the top videos of the last five minutes.
#[utoipa::path(get, path = "/analytics/real-time/", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<RealTime>)), (status = 403, body = ErrorBody),
              (status = 503, description = "ClickHouse did not answer in time", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn real_time(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<RealTime>> {
    me.require_role(live::READERS)?;
    let mut redis = state.redis.clone();
    let read = live::read(
        &state.db,
        &mut redis,
        &state.config.redis_prefix,
        &state.clickhouse,
        chrono::Utc::now(),
    );
    Ok(ApiResponse::ok(within_deadline(&state, read).await?))
}

/// `?from=&to=` (days).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BehaviorParams {
    /// The first day (`YYYY-MM-DD`, UTC); default: 29 days before `to`.
    pub from: Option<chrono::NaiveDate>,
    /// The last day, included; default: today.
    pub to: Option<chrono::NaiveDate>,
}

/// User behaviour (staff): daily, weekly and monthly active users and stickiness at
/// the last day; new vs returning users per day; weekly cohorts by weeks since
/// registration; the funnel register → verified email → first party → second party of
/// those registered in the range, the time to a first party and the party sizes; the
/// features used (events and distinct users per event type).
#[utoipa::path(get, path = "/analytics/user-behavior/", tag = "analytics", security(("bearer" = [])),
    params(BehaviorParams),
    responses((status = 200, body = inline(Envelope<Behavior>)), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody),
              (status = 503, description = "ClickHouse did not answer in time", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn user_behavior(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
) -> AppResult<ApiResponse<Behavior>> {
    me.require_role(Role::Moderator)?;
    let q: BehaviorParams = crate::extract::parse_query(uri.query())?;
    let days = Days::new(q.from, q.to, chrono::Utc::now().date_naive())?;
    let read = behavior::read(&state.db, &state.clickhouse, days);
    Ok(ApiResponse::ok(within_deadline(&state, read).await?))
}

/// Forecasts (staff), each with its method and its backtest error: views per video for
/// the next 7 days, distinct viewers per hour for the next 24 (capacity), churn risk
/// per user from activity.
#[utoipa::path(get, path = "/analytics/predictive/", tag = "analytics", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<Predictions>)), (status = 403, body = ErrorBody),
              (status = 503, description = "ClickHouse did not answer in time", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn predictive(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<Predictions>> {
    me.require_role(Role::Moderator)?;
    let read = predict::read(&state.db, &state.clickhouse, chrono::Utc::now());
    Ok(ApiResponse::ok(within_deadline(&state, read).await?))
}

/// `read` within `CLICKHOUSE_TIMEOUT_SECS`, else 503 naming ClickHouse.
async fn within_deadline<T>(
    state: &AppState,
    read: impl std::future::Future<Output = Result<T, AnalyticsError>>,
) -> AppResult<T> {
    tokio::time::timeout(state.config.clickhouse_timeout, read)
        .await
        .map_err(|_| crate::analytics::clickhouse_late(state))?
        .map_err(AppError::from)
}
