//! Search over REST (docs/search.md): `GET /api/search/` across videos, users, parties,
//! events and groups with filters, facets, highlights and totals; `GET
//! /api/search/suggest/` for a search box; saved searches. The engine and its rules are
//! `wp_core::search`; signed-out callers search public things. What people search
//! (trending queries, analytics for staff) is in [`stats`].

pub mod stats;

use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::search::{self, Facets, Hit, SearchParams, SearchRequest, Suggestion, Viewer};

use crate::{
    auth::{AuthUser, MaybeAuthUser},
    error::{AppError, AppResult, ErrorBody},
    extract::{Ids, JsonBody, Query},
    response::{ApiResponse, Envelope, PageParams, PageRequest, Paginated, request_url},
    state::AppState,
};

/// The checked request and page of `p`, or the parameter at fault.
pub fn check(p: &SearchParams) -> Result<(SearchRequest, PageRequest), AppError> {
    let page = PageParams {
        page: p.page,
        page_size: p.page_size,
    }
    .validate()?;
    let req = p
        .request(page.limit(), page.offset())
        .map_err(|e| AppError::field(e.field, e.message))?;
    Ok((req, page))
}

/// `data` of a search: a page of hits (the usual pagination fields) with the totals per
/// kind and the facet counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    #[serde(flatten)]
    pub page: Paginated<Hit>,
    /// Results per kind over all pages, e.g. `{"videos": 12, "users": 1}`.
    #[schema(value_type = Object)]
    pub totals: serde_json::Map<String, serde_json::Value>,
    /// Counts per facet value over all results (videos); null with `facets=false` or
    /// when videos are not searched.
    pub facets: Option<Facets>,
}

/// The scope of the caller (signed out: public things only).
async fn viewer(state: &AppState, me: Option<&AuthUser>) -> AppResult<Viewer> {
    Ok(match me {
        Some(me) => Viewer::load(&state.db, me.id, me.is_staff()).await?,
        None => Viewer::ANONYMOUS,
    })
}

/// Searches what the caller may see: public things, their own, their friends' (for
/// friends-only ones), their groups' and their events'; nothing of a user blocked
/// either way. Ranked by match (title over tags over description), typos forgiven.
#[utoipa::path(get, path = "/search/", tag = "search", params(SearchParams),
    responses((status = 200, body = inline(Envelope<SearchResults>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    OriginalUri(uri): OriginalUri,
    Query(params): Query<SearchParams>,
) -> AppResult<ApiResponse<SearchResults>> {
    let (req, page) = check(&params)?;
    let viewer = viewer(&state, me.as_ref()).await?;
    let found = search::pg::search(&state.db, &req, &viewer, chrono::Utc::now()).await?;
    if page.page == 1 {
        if let Some(me) = &me
            && let Err(e) = search::record_query(&state.db, me.id, &req.q).await
        {
            tracing::debug!(error = %e, "search query not counted");
        }
        stats::record_search(&state, me.as_ref().map(|m| m.id), &req.q, found.total).await;
    }
    let totals = found
        .totals
        .iter()
        .map(|(i, n)| (i.as_str().to_owned(), serde_json::Value::from(*n)))
        .collect();
    Ok(ApiResponse::ok(SearchResults {
        page: Paginated::new(found.hits, found.total, page, &request_url(&state, &uri)),
        totals,
        facets: found.facets,
    }))
}

/// `GET /api/search/suggest/` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuggestParams {
    /// What was typed so far: 1 to 100 characters besides spaces around.
    #[param(min_length = 1, max_length = 100, pattern = "\\S")]
    pub q: String,
    /// At most this many suggestions (1 to 20, default 8).
    #[param(minimum = 1, maximum = 20)]
    pub limit: Option<u32>,
}

/// `data` of a suggestion list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Suggestions {
    pub results: Vec<Suggestion>,
}

/// Completions for a search box: titles and usernames the caller may see that start
/// with the text (or have a word that does), public videos' tags, and queries many
/// people ran. Best first, each text once.
#[utoipa::path(get, path = "/search/suggest/", tag = "search", params(SuggestParams),
    responses((status = 200, body = inline(Envelope<Suggestions>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn suggest(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    Query(params): Query<SuggestParams>,
) -> AppResult<ApiResponse<Suggestions>> {
    let q = wp_core::trimmed_text(&params.q, 1, 100).map_err(|m| AppError::field("q", m))?;
    let limit = match params.limit {
        None => 8,
        Some(n @ 1..=20) => n as usize,
        Some(_) => return Err(AppError::field("limit", "Between 1 and 20.")),
    };
    let viewer = viewer(&state, me.as_ref()).await?;
    let results = search::pg::suggest(&state.db, &q, &viewer, limit).await?;
    Ok(ApiResponse::ok(Suggestions { results }))
}

/// A saved search.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct SavedSearch {
    pub id: Uuid,
    pub name: String,
    /// The words.
    pub query: String,
    /// The other parameters of `GET /api/search/` as given (`type`, filters, `sort`).
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// Whether a notification comes (at most daily) when a new video matches.
    pub alert: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A search to save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavedSearchInput {
    /// 1 to 100 characters; unique among the caller's saved searches.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// The parameters of `GET /api/search/` (`q` required).
    pub search: SearchParams,
    /// Notify (at most daily) when a new video matches. Default false.
    #[serde(default)]
    pub alert: bool,
}

/// A user keeps at most this many saved searches.
pub const SAVED_MAX: i64 = 50;

/// The caller's saved searches, newest first.
#[utoipa::path(get, path = "/search/saved/", tag = "search", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<SavedSearch>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn saved(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<SavedSearch>>> {
    let page = p.validate()?;
    let rows: Vec<SavedSearch> = sqlx::query_as(
        "SELECT id, name, query, params, alert, created_at FROM saved_searches
         WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
    )
    .bind(me.id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&state.db)
    .await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM saved_searches WHERE user_id = $1")
        .bind(me.id)
        .fetch_one(&state.db)
        .await?;
    Ok(ApiResponse::ok(Paginated::new(
        rows,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Saves a search (409 naming `name` when it is taken, 409 `limit_reached` past 50).
#[utoipa::path(post, path = "/search/saved/", tag = "search", security(("bearer" = [])), request_body = SavedSearchInput,
    responses((status = 201, body = inline(Envelope<SavedSearch>)), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn save(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<SavedSearch>> {
    let input: SavedSearchInput = body.parse()?;
    let name =
        wp_core::trimmed_text(&input.name, 1, 100).map_err(|m| AppError::field("name", m))?;
    let (req, _) = check(&input.search).map_err(|e| match e {
        // The fields inside `search` are named by their path.
        AppError::Validation(errors) => AppError::Validation(
            errors
                .into_iter()
                .map(|(k, v)| (format!("search.{k}"), v))
                .collect(),
        ),
        other => other,
    })?;
    let mut params = serde_json::to_value(&input.search)
        .map_err(|e| anyhow::anyhow!("saved search params: {e}"))?;
    if let Some(o) = params.as_object_mut() {
        for k in ["q", "page", "page_size"] {
            o.remove(k);
        }
    }
    let mut tx = state.db.begin().await?;
    // One writer per user at a time, so the cap holds under concurrent saves.
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(me.id)
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM saved_searches WHERE user_id = $1")
        .bind(me.id)
        .fetch_one(&mut *tx)
        .await?;
    if n >= SAVED_MAX {
        return Err(AppError::Conflict {
            code: "limit_reached",
            message: format!("At most {SAVED_MAX} saved searches; delete one first."),
        });
    }
    let row: Option<SavedSearch> = sqlx::query_as(
        "INSERT INTO saved_searches (id, user_id, name, query, params, alert)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, name) DO NOTHING
         RETURNING id, name, query, params, alert, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(me.id)
    .bind(&name)
    .bind(&req.q)
    .bind(params)
    .bind(input.alert)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(AppError::conflict_field(
            "name",
            "You already have a saved search with this name.",
        ));
    };
    tx.commit().await?;
    Ok(ApiResponse::created(row))
}

/// Deletes one of the caller's saved searches (404 for anyone else's).
#[utoipa::path(delete, path = "/search/saved/{id}/", tag = "search", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unsave(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let r = sqlx::query("DELETE FROM saved_searches WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(me.id)
        .execute(&state.db)
        .await?;
    if r.rows_affected() == 0 {
        return Err(AppError::not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(suggest))
        .routes(routes!(saved, save))
        .routes(routes!(unsave))
        .routes(routes!(stats::click))
        .routes(routes!(stats::trending))
        .routes(routes!(stats::analytics))
}
