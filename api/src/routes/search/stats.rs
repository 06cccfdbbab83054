//! What people search, from the `search.query` and `search.click` events in ClickHouse:
//! trending queries for everyone (a query shows once enough different people ran it),
//! search analytics for staff (queries without results, click-through by position).
//! The SQL keeps to what ClickHouse 18.16 and current releases both accept.

use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wp_core::search::{POPULAR_MIN_USERS, SearchIndex, normalize_query};
use wp_shared::jobs::AnalyticsEvent;

use crate::{
    auth::{AuthUser, MaybeAuthUser, Role},
    error::{AppError, AppResult, ErrorBody},
    extract::JsonBody,
    response::{ApiResponse, Envelope},
    state::AppState,
};

/// Records a search (first pages only: paging is not a new search).
pub async fn record_search(state: &AppState, user: Option<Uuid>, q: &str, results: i64) {
    crate::analytics::record(
        state,
        AnalyticsEvent::new(
            "search.query",
            user,
            None,
            serde_json::json!({ "q": normalize_query(q), "results": results }),
        ),
    )
    .await;
}

/// A click on a search result.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchClick {
    /// The words of the search (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub q: String,
    /// The kind of the result clicked.
    #[serde(rename = "type")]
    pub kind: SearchIndex,
    pub id: Uuid,
    /// Its position in the results, from 1 (across pages: page 2 of 20 starts at 21).
    #[schema(minimum = 1, maximum = 1000)]
    pub position: u32,
}

/// Records a click on a search result (for click-through by position).
#[utoipa::path(post, path = "/search/click/", tag = "search", request_body = SearchClick,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn click(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    body: JsonBody,
) -> AppResult<StatusCode> {
    let c: SearchClick = body.parse()?;
    let q = wp_core::trimmed_text(&c.q, 1, 200).map_err(|m| AppError::field("q", m))?;
    if !(1..=1000).contains(&c.position) {
        return Err(AppError::field("position", "Between 1 and 1000."));
    }
    crate::analytics::record(
        &state,
        AnalyticsEvent::new(
            "search.click",
            me.map(|m| m.id),
            None,
            serde_json::json!({
                "q": normalize_query(&q),
                "type": c.kind.as_str(),
                "id": c.id,
                "position": c.position,
            }),
        ),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A query and how it was run.
#[derive(Debug, Serialize, Deserialize, ToSchema, clickhouse::Row)]
pub struct QueryCount {
    pub query: String,
    /// Searches in the last 24 hours.
    pub searches: u64,
    /// Searches in the 7 days before.
    pub before: u64,
    /// Different signed-in people who ran it in the last 24 hours.
    pub users: u64,
}

/// `data` of the trending queries.
#[derive(Debug, Serialize, ToSchema)]
pub struct Trending {
    /// The most run queries of the last 24 hours.
    pub top: Vec<QueryCount>,
    /// The queries run most above their usual rate (last 24 hours against the daily mean
    /// of the 7 days before).
    pub rising: Vec<QueryCount>,
    /// A query shows once at least this many different people ran it.
    pub min_users: i32,
}

/// What people search now: the top queries of the last 24 hours and the rising ones.
/// Only queries that at least 3 different signed-in people ran show: nobody's own
/// query leaks to others.
#[utoipa::path(get, path = "/search/trending/", tag = "search",
    responses((status = 200, body = inline(Envelope<Trending>)), (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn trending(State(state): State<AppState>) -> AppResult<ApiResponse<Trending>> {
    let rows: Vec<QueryCount> = crate::analytics::clickhouse_answer(
        &state,
        state
            .clickhouse
            .query(
                "SELECT q AS query,
                        toUInt64(countIf(occurred_at >= now() - 86400)) AS searches,
                        toUInt64(countIf(occurred_at < now() - 86400)) AS before,
                        toUInt64(uniqExactIf(user_id, occurred_at >= now() - 86400
                                 AND user_id != toUUID('00000000-0000-0000-0000-000000000000'))) AS users
                 FROM (SELECT visitParamExtractString(properties, 'q') AS q, user_id, occurred_at
                       FROM events FINAL
                       WHERE event_type = 'search.query' AND occurred_at >= now() - 8 * 86400)
                 WHERE q != ''
                 GROUP BY q
                 HAVING users >= ?
                 ORDER BY searches DESC, q
                 LIMIT 200",
            )
            .bind(POPULAR_MIN_USERS)
            .fetch_all::<QueryCount>(),
    )
    .await?;
    let (top, rising) = rank(rows, 10);
    Ok(ApiResponse::ok(Trending {
        top,
        rising,
        min_users: POPULAR_MIN_USERS,
    }))
}

/// The top `n` by searches, and the top `n` by how far the last day rose above the
/// daily mean of the week before (a query new this day rises by its count).
fn rank(rows: Vec<QueryCount>, n: usize) -> (Vec<QueryCount>, Vec<QueryCount>) {
    let rise = |r: &QueryCount| r.searches as f64 / (r.before as f64 / 7.0 + 1.0);
    let mut rising: Vec<&QueryCount> = rows.iter().filter(|r| rise(r) > 1.0).collect();
    rising.sort_by(|a, b| rise(b).total_cmp(&rise(a)).then(a.query.cmp(&b.query)));
    let rising: Vec<QueryCount> = rising
        .into_iter()
        .take(n)
        .map(|r| QueryCount {
            query: r.query.clone(),
            ..*r
        })
        .collect();
    let top = rows.into_iter().take(n).collect();
    (top, rising)
}

/// `?days=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsParams {
    /// Days back from now (default 7, at most 90).
    #[param(minimum = 1, maximum = 90)]
    pub days: Option<u32>,
}

/// A query that found nothing.
#[derive(Debug, Serialize, Deserialize, ToSchema, clickhouse::Row)]
pub struct ZeroResult {
    pub query: String,
    pub searches: u64,
    /// Different signed-in people.
    pub users: u64,
}

/// Clicks on results at one position.
#[derive(Debug, Serialize, Deserialize, ToSchema, clickhouse::Row)]
pub struct PositionClicks {
    /// From 1.
    pub position: u32,
    pub clicks: u64,
}

/// `data` of the search analytics.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchAnalytics {
    pub days: u32,
    /// Searches (first pages) in the period.
    pub searches: u64,
    /// Of those, how many found nothing.
    pub zero_result_searches: u64,
    /// The 20 queries that most often found nothing.
    pub zero_results: Vec<ZeroResult>,
    /// Clicks per position (1 to 20) and the click-through rate (clicks per search).
    pub click_through: Vec<ClickThrough>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClickThrough {
    pub position: u32,
    pub clicks: u64,
    /// `clicks / searches` (0 when there were no searches).
    pub rate: f64,
}

/// Search analytics for staff: how much is searched, which queries find nothing, and
/// where in the results people click.
#[utoipa::path(get, path = "/search/analytics/", tag = "search", security(("bearer" = [])), params(AnalyticsParams),
    responses((status = 200, body = inline(Envelope<SearchAnalytics>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn analytics(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
) -> AppResult<ApiResponse<SearchAnalytics>> {
    me.require_role(Role::Moderator)?;
    // Read only once the caller may: a stranger learns nothing of the parameters.
    let p: AnalyticsParams = crate::extract::parse_query(uri.query())?;
    let days = p.days.unwrap_or(7);
    if !(1..=90).contains(&days) {
        return Err(AppError::field("days", "Between 1 and 90."));
    }
    let secs = u64::from(days) * 86_400;
    let (searches, zero): (u64, u64) = crate::analytics::clickhouse_answer(
        &state,
        state
            .clickhouse
            .query(
                "SELECT toUInt64(count()),
                        toUInt64(countIf(visitParamExtractInt(properties, 'results') = 0))
                 FROM events FINAL
                 WHERE event_type = 'search.query' AND occurred_at >= now() - ?",
            )
            .bind(secs)
            .fetch_one::<(u64, u64)>(),
    )
    .await?;
    let zero_results: Vec<ZeroResult> = crate::analytics::clickhouse_answer(
        &state,
        state
            .clickhouse
            .query(
                "SELECT visitParamExtractString(properties, 'q') AS query,
                        toUInt64(count()) AS searches,
                        toUInt64(uniqExactIf(user_id,
                            user_id != toUUID('00000000-0000-0000-0000-000000000000'))) AS users
                 FROM events FINAL
                 WHERE event_type = 'search.query' AND occurred_at >= now() - ?
                   AND visitParamExtractInt(properties, 'results') = 0
                 GROUP BY query ORDER BY searches DESC, query LIMIT 20",
            )
            .bind(secs)
            .fetch_all::<ZeroResult>(),
    )
    .await?;
    let clicks: Vec<PositionClicks> = crate::analytics::clickhouse_answer(
        &state,
        state
            .clickhouse
            .query(
                "SELECT toUInt32(visitParamExtractUInt(properties, 'position')) AS position,
                        toUInt64(count()) AS clicks
                 FROM events FINAL
                 WHERE event_type = 'search.click' AND occurred_at >= now() - ?
                 GROUP BY position HAVING position BETWEEN 1 AND 20 ORDER BY position",
            )
            .bind(secs)
            .fetch_all::<PositionClicks>(),
    )
    .await?;
    let click_through = clicks
        .into_iter()
        .map(|c| ClickThrough {
            position: c.position,
            clicks: c.clicks,
            rate: if searches == 0 {
                0.0
            } else {
                c.clicks as f64 / searches as f64
            },
        })
        .collect();
    Ok(ApiResponse::ok(SearchAnalytics {
        days,
        searches,
        zero_result_searches: zero,
        zero_results,
        click_through,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(query: &str, searches: u64, before: u64) -> QueryCount {
        QueryCount {
            query: query.into(),
            searches,
            before,
            users: 3,
        }
    }

    #[test]
    fn rising_is_measured_against_the_week_before() {
        // steady: 70 in the week before (10 a day) and 10 today: not rising.
        let (top, rising) = rank(vec![q("steady", 10, 70), q("new", 5, 0), q("up", 8, 7)], 10);
        assert_eq!(top[0].query, "steady");
        let names: Vec<&str> = rising.iter().map(|r| r.query.as_str()).collect();
        assert_eq!(names, ["new", "up"]);
    }
}
