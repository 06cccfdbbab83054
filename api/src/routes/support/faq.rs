//! The FAQ (`/api/support/faq/`: anyone reads, staff write, signed-in users vote) and
//! feedback (`/api/support/feedback/`: users send, staff read).

use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::support::{
    self,
    faq::{self, FaqEntry, FaqFilter, FaqPatch, NewFaq},
    feedback::{self, Feedback, FeedbackFilter, FeedbackPlatform, NewFeedback},
};

use crate::{
    auth::{AuthUser, MaybeAuthUser},
    error::{AppError, AppResult, ErrorBody},
    extract::{Ids, JsonBody, Query},
    ratelimit::{self, Limit},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    state::AppState,
};

/// Feedback per user.
pub const FEEDBACK_PER_USER: Limit = Limit {
    name: "support-feedback",
    limit: 10,
    window: std::time::Duration::from_secs(3600),
};

/// `?category=&search=&drafts=&page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FaqParams {
    pub category: Option<String>,
    /// Words of the question or answer.
    pub search: Option<String>,
    /// Staff: drafts too.
    pub drafts: Option<bool>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// The published FAQ (staff with `drafts=true`: the drafts too), by category and
/// position. Signed-in callers see their own vote.
#[utoipa::path(get, path = "/support/faq/", tag = "support", params(FaqParams),
    responses((status = 200, body = inline(Envelope<Paginated<FaqEntry>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<FaqParams>,
) -> AppResult<ApiResponse<Paginated<FaqEntry>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let me = me.as_deref();
    if q.drafts == Some(true) && !me.is_some_and(|m| m.is_staff()) {
        return Err(AppError::field("drafts", "Drafts are for support staff."));
    }
    let filter = FaqFilter {
        category: q.category,
        search: q.search,
        drafts: q.drafts.unwrap_or(false),
    };
    let mut conn = state.db.acquire().await?;
    let (results, count) = faq::list(&mut conn, me, &filter, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Adds an FAQ entry (staff).
#[utoipa::path(post, path = "/support/faq/", tag = "support", security(("bearer" = [])), request_body = NewFaq,
    responses((status = 201, body = inline(Envelope<FaqEntry>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<FaqEntry>> {
    support::require_staff(&me)?;
    let new = body.parse::<NewFaq>()?.checked()?;
    Ok(ApiResponse::created(
        faq::create(&state.db, &me, &new).await?,
    ))
}

/// One FAQ entry (a draft only for staff).
#[utoipa::path(get, path = "/support/faq/{id}/", tag = "support", params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<FaqEntry>)), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn detail(
    State(state): State<AppState>,
    MaybeAuthUser(me): MaybeAuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<FaqEntry>> {
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(
        faq::get(&mut conn, me.as_deref(), id).await?,
    ))
}

/// Edits an FAQ entry (staff).
#[utoipa::path(patch, path = "/support/faq/{id}/", tag = "support", security(("bearer" = [])), request_body = FaqPatch,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<FaqEntry>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<FaqEntry>> {
    support::require_staff(&me)?;
    let patch = body.parse::<FaqPatch>()?.checked()?;
    Ok(ApiResponse::ok(
        faq::update(&state.db, &me, id, &patch).await?,
    ))
}

/// Removes an FAQ entry (staff).
#[utoipa::path(delete, path = "/support/faq/{id}/", tag = "support", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    faq::delete(&state.db, &me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// "Was this helpful?"
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HelpfulBody {
    pub helpful: bool,
}

/// Answers "was this helpful" for a published entry (once per user; a second answer
/// replaces the first). Answers the entry with its counts.
#[utoipa::path(post, path = "/support/faq/{id}/helpful/", tag = "support", security(("bearer" = [])), request_body = HelpfulBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<FaqEntry>)), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn helpful(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<FaqEntry>> {
    let b = body.parse::<HelpfulBody>()?;
    Ok(ApiResponse::ok(
        faq::vote(&state.db, &me, id, b.helpful).await?,
    ))
}

/// Where new feedback went.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackReceived {
    pub id: Uuid,
}

/// Sends feedback: a rating 1–5, optional text, the page, context, app version and
/// platform. 429 past 10 an hour.
#[utoipa::path(post, path = "/support/feedback/", tag = "support", security(("bearer" = [])), request_body = NewFeedback,
    responses((status = 201, body = inline(Envelope<FeedbackReceived>)), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn send_feedback(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<FeedbackReceived>> {
    let f = body.parse::<NewFeedback>()?.checked()?;
    ratelimit::hit(&state, &FEEDBACK_PER_USER, &me.id.to_string()).await?;
    let id = feedback::create(&state.db, &me, &f).await?;
    Ok(ApiResponse::created(FeedbackReceived { id }))
}

/// `?rating=&platform=&since=&search=&page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedbackParams {
    #[param(minimum = 1, maximum = 5)]
    pub rating: Option<i16>,
    pub platform: Option<FeedbackPlatform>,
    /// Given at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Words of the text or page.
    pub search: Option<String>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// A page of feedback with the average rating of all that match.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackPage {
    #[serde(flatten)]
    pub page: Paginated<Feedback>,
    /// The mean rating over every match (null when none).
    pub average_rating: Option<f64>,
}

/// Feedback, newest first, with the average rating (staff).
#[utoipa::path(get, path = "/support/feedback/", tag = "support", security(("bearer" = [])), params(FeedbackParams),
    responses((status = 200, body = inline(Envelope<FeedbackPage>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_feedback(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<FeedbackParams>,
) -> AppResult<ApiResponse<FeedbackPage>> {
    support::require_staff(&me)?;
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    if q.rating.is_some_and(|r| !(1..=5).contains(&r)) {
        return Err(AppError::field("rating", "A whole number from 1 to 5."));
    }
    let filter = FeedbackFilter {
        rating: q.rating,
        platform: q.platform,
        since: q.since,
        search: q.search,
    };
    let mut conn = state.db.acquire().await?;
    let (results, count, average_rating) =
        feedback::list(&mut conn, &filter, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(FeedbackPage {
        page: Paginated::new(results, count, page, &request_url(&state, &uri)),
        average_rating,
    }))
}

/// The routes of the FAQ and feedback.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail, update, delete))
        .routes(routes!(helpful))
        .routes(routes!(send_feedback, list_feedback))
}
