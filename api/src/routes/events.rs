//! Scheduled events over REST, under `/api/events/` (seed item 5): list, create,
//! detail, edit, cancel; join, leave and RSVP with places, a waitlist and approval;
//! attendees; invitations; upcoming, mine and search; the calendar file. The rules are
//! `wp_core::event`; status moves (live, ended) are the scheduler's (`advance-events`).

use axum::{
    extract::{OriginalUri, State},
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::event::{self, Attendance, Attendee, Event, EventInput, EventStatus, ListFilter};
use wp_core::search;

use crate::{
    auth::AuthUser,
    error::{AppResult, ErrorBody},
    extract::{Ids, JsonBody, Query},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    state::AppState,
};

/// `?status=&page=&page_size=` (and `q` for search).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    /// `scheduled`, `live`, `ended` or `cancelled`.
    #[param(inline)]
    pub status: Option<EventStatus>,
    /// Words of the title, description or location (search).
    pub q: Option<String>,
    /// Only this social group's events.
    pub group: Option<Uuid>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

async fn page_of(
    state: &AppState,
    me: &AuthUser,
    uri: &axum::http::Uri,
    q: EventListParams,
    mut filter: ListFilter,
) -> AppResult<ApiResponse<Paginated<Event>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    filter.status = q.status;
    filter.group = q.group;
    if filter.search.is_none() {
        filter.search = q.q;
    }
    let mut conn = state.db.acquire().await?;
    let (results, count) = event::list(&mut conn, me, &filter, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(state, uri),
    )))
}

/// The events the caller may see, latest start first.
#[utoipa::path(get, path = "/events/", tag = "events", security(("bearer" = [])), params(EventListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Event>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<EventListParams>,
) -> AppResult<ApiResponse<Paginated<Event>>> {
    page_of(&state, &me, &uri, q, ListFilter::default()).await
}

/// Scheduled events that start after now, soonest first.
#[utoipa::path(get, path = "/events/upcoming/", tag = "events", security(("bearer" = [])), params(EventListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Event>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn upcoming(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<EventListParams>,
) -> AppResult<ApiResponse<Paginated<Event>>> {
    let f = ListFilter {
        upcoming: true,
        ..Default::default()
    };
    page_of(&state, &me, &uri, q, f).await
}

/// The events the caller organizes or answered (not declined).
#[utoipa::path(get, path = "/events/my/", tag = "events", security(("bearer" = [])), params(EventListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Event>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn my(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<EventListParams>,
) -> AppResult<ApiResponse<Paginated<Event>>> {
    let f = ListFilter {
        mine: true,
        ..Default::default()
    };
    page_of(&state, &me, &uri, q, f).await
}

/// `?q=` (required) and the list's filters, for the search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventSearchParams {
    /// Words of the title, description or location: 1 to 200 characters besides
    /// spaces around.
    #[param(min_length = 1, max_length = 200, pattern = "\\S")]
    pub q: String,
    /// `scheduled`, `live`, `ended` or `cancelled`.
    #[param(inline)]
    pub status: Option<EventStatus>,
    /// Only this social group's events.
    pub group: Option<Uuid>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Events whose title, description or location match `q` (400 without it), best match
/// first: the search engine of `/api/search/` (docs/search.md) over events.
#[utoipa::path(get, path = "/events/search/", tag = "events", security(("bearer" = [])), params(EventSearchParams),
    responses((status = 200, body = inline(Envelope<Paginated<Event>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<EventSearchParams>,
) -> AppResult<ApiResponse<Paginated<Event>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let words =
        wp_core::trimmed_text(&q.q, 1, 200).map_err(|m| crate::error::AppError::field("q", m))?;
    // The search engine ranks (docs/search.md); the event rule decides again what shows.
    let req = search::SearchRequest {
        q: words,
        indexes: [search::SearchIndex::Events].into(),
        filters: search::Filters {
            event_status: q.status.map(|s| s.as_str().to_owned()),
            group: q.group,
            upcoming_only: false,
            ..Default::default()
        },
        sort: search::SearchSort::Relevance,
        limit: page.limit(),
        offset: page.offset(),
        facets: false,
        created_after: None,
    };
    let viewer = search::Viewer::load(&state.db, me.id, me.is_staff()).await?;
    let found = search::pg::search(&state.db, &req, &viewer, chrono::Utc::now()).await?;
    let ids: Vec<Uuid> = found.hits.iter().map(|h| h.id).collect();
    let mut conn = state.db.acquire().await?;
    let results = event::visible_many(&mut conn, &me, &ids).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        found.total,
        page,
        &request_url(&state, &uri),
    )))
}

/// Creates an event; the caller organizes it. Times are RFC 3339 with an offset;
/// `start_time` in the future, `end_time` after it (7 days at most).
#[utoipa::path(post, path = "/events/", tag = "events", security(("bearer" = [])), request_body = EventInput,
    responses((status = 201, body = inline(Envelope<Event>)), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<Event>> {
    let c = body
        .parse::<EventInput>()?
        .check(None, chrono::Utc::now())?;
    Ok(ApiResponse::created(
        event::create(&state.db, &me, &c).await?,
    ))
}

/// An event the caller may see (404 otherwise).
#[utoipa::path(get, path = "/events/{id}/", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Event>)), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn detail(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Event>> {
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(event::visible(&mut conn, &me, id).await?))
}

/// Edits a scheduled event (the organizer; absent fields stay). Moving it notifies the
/// attendees; raising `max_attendees` lets the waitlist in, in order.
#[utoipa::path(put, path = "/events/{id}/", tag = "events", security(("bearer" = [])), request_body = EventInput,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Event>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Event>> {
    event::may_organize(&state.db, &me, id).await?;
    let input = body.parse::<EventInput>()?;
    let changed = event::update(&state.db, &me, id, input, chrono::Utc::now()).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &changed.outbox).await;
    Ok(ApiResponse::ok(changed.event))
}

/// Cancels an event (the organizer): it stays, `cancelled`, and its attendees are told.
#[utoipa::path(delete, path = "/events/{id}/", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn cancel(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let rows = event::cancel(&state.db, &me, id).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &rows).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's answer now.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyAnswer {
    /// `going`, `maybe`, `declined`, `pending` (waits for approval) or `waitlisted`.
    pub status: Attendance,
    pub event: Event,
}

async fn answer(
    state: &AppState,
    me: &AuthUser,
    id: Uuid,
    want: Attendance,
) -> AppResult<ApiResponse<MyAnswer>> {
    let a = event::respond(&state.db, me, id, want).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &a.outbox).await;
    Ok(ApiResponse::ok(MyAnswer {
        status: a.status,
        event: a.event,
    }))
}

/// Joins an event: going when there is a place, else `waitlisted`; `pending` while the
/// organizer approves, for an event that needs approval (invited users skip it).
#[utoipa::path(post, path = "/events/{id}/join/", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<MyAnswer>)), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn join(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<MyAnswer>> {
    answer(&state, &me, id, Attendance::Going).await
}

/// Takes the caller's answer back; a place freed goes to the first on the waitlist.
#[utoipa::path(post, path = "/events/{id}/leave/", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn leave(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let rows = event::leave(&state.db, &me, id).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &rows).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RsvpBody {
    /// `going`, `maybe` or `declined`.
    pub status: Attendance,
}

/// Answers an event (`going` as join; `maybe` and `declined` free a place held).
#[utoipa::path(post, path = "/events/{id}/rsvp/", tag = "events", security(("bearer" = [])), request_body = RsvpBody,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<MyAnswer>)), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn rsvp(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<MyAnswer>> {
    {
        let mut conn = state.db.acquire().await?;
        event::visible(&mut conn, &me, id).await?;
    }
    let b = body.parse::<RsvpBody>()?;
    answer(&state, &me, id, b.status).await
}

/// `?status=&page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttendeeParams {
    /// Only this answer (`pending` and `declined`: the organizer only).
    #[param(inline)]
    pub status: Option<Attendance>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Who answered: going, then maybe, then the waitlist in order (the organizer also sees
/// pending and declined answers).
#[utoipa::path(get, path = "/events/{id}/attendees/", tag = "events", security(("bearer" = [])),
    params(("id" = Uuid, Path), AttendeeParams),
    responses((status = 200, body = inline(Envelope<Paginated<Attendee>>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn attendees(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<AttendeeParams>,
) -> AppResult<ApiResponse<Paginated<Attendee>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let mut conn = state.db.acquire().await?;
    let (results, count) =
        event::attendees(&mut conn, &me, id, q.status, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Approves a pending answer (the organizer): going, or waitlisted when full; the user
/// is told.
#[utoipa::path(post, path = "/events/{id}/attendees/{user_id}/approve/", tag = "events", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn approve(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let rows = event::decide(&state.db, &me, id, user, true).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &rows).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Rejects a pending answer (the organizer): it becomes `declined`.
#[utoipa::path(post, path = "/events/{id}/attendees/{user_id}/reject/", tag = "events", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reject(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    event::decide(&state.db, &me, id, user, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInviteBody {
    /// 1 to 50 users.
    pub user_ids: Vec<Uuid>,
}

/// Invites users (the organizer): they see the event and answer it without approval;
/// each is told once (`event.invite`); they accept with `join` or `rsvp`.
#[utoipa::path(post, path = "/events/{id}/invite/", tag = "events", security(("bearer" = [])), request_body = EventInviteBody,
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invite(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<StatusCode> {
    event::may_organize(&state.db, &me, id).await?;
    let b = body.parse::<EventInviteBody>()?;
    let rows = event::invite(&state.db, &me, id, &b.user_ids).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &rows).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The event as an iCalendar file (`text/calendar`), for calendar apps.
#[utoipa::path(get, path = "/events/{id}/calendar.ics", tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, content_type = "text/calendar", body = String), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn calendar(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<impl IntoResponse> {
    let mut conn = state.db.acquire().await?;
    let e = event::visible(&mut conn, &me, id).await?;
    let sequence = (e.updated_at - e.created_at).num_seconds().max(0);
    let text = event::ics(&e, &state.config.frontend_url, sequence);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/calendar; charset=utf-8".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"event-{id}.ics\""),
            ),
        ],
        text,
    ))
}

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(upcoming))
        .routes(routes!(my))
        .routes(routes!(search))
        .routes(routes!(detail, update, cancel))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(rsvp))
        .routes(routes!(attendees))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(invite))
        .routes(routes!(calendar))
}
