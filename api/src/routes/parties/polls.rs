//! Party polls over REST, under `/api/interactive/` (the seed's paths): list and create
//! a party's polls, read one, vote (or take a vote back), close, delete, and who voted
//! for what when the poll is not anonymous. The rules are `wp_core::party::polls`; the
//! party's sockets hear every change (`poll_created`, `poll_updated`, `poll_closed`,
//! `poll_deleted`), and members may vote on the socket too (`poll_vote`).

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wp_core::party::{
    events::PartyEvent,
    polls::{self, ListFilter, NewPoll, Poll, PollVoter},
};

use super::*;
use crate::{
    extract::{Ids, JsonBody, Query},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
};

/// `?status=&page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PollListParams {
    /// `active`, `closed` or `all` (default).
    #[param(inline)]
    pub status: Option<ListFilter>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// A party's polls, newest first, with the caller's votes (members and staff).
#[utoipa::path(get, path = "/interactive/parties/{party_id}/polls/", tag = "polls", security(("bearer" = [])),
    params(("party_id" = Uuid, Path), PollListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Poll>>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_polls(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(party_id): Ids<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PollListParams>,
) -> AppResult<ApiResponse<Paginated<Poll>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let mut conn = state.db.acquire().await?;
    let (results, count) = polls::list(
        &mut conn,
        &me,
        party_id,
        q.status.unwrap_or(ListFilter::All),
        page.limit(),
        page.offset(),
    )
    .await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Creates a poll (the host, co-hosts and staff); the party's sockets get
/// `poll_created`. At most 10 open polls per party (409 `too_many_polls`).
#[utoipa::path(post, path = "/interactive/parties/{party_id}/polls/", tag = "polls", security(("bearer" = [])),
    request_body = NewPoll, params(("party_id" = Uuid, Path)),
    responses((status = 201, body = inline(Envelope<Poll>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_poll(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(party_id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Poll>> {
    {
        let mut conn = state.db.acquire().await?;
        polls::may_create(&mut conn, &me, party_id).await?;
    }
    let new = body.parse::<NewPoll>()?.checked()?;
    let poll = polls::create(&state.db, &me, party_id, &new).await?;
    notify(&state, party_id, bus(PartyEvent::PollCreated(poll.clone()))).await;
    Ok(ApiResponse::created(poll))
}

/// One poll, with the caller's votes (members of its party and staff).
#[utoipa::path(get, path = "/interactive/polls/{poll_id}/", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Poll>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn poll_detail(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(poll_id): Ids<Uuid>,
) -> AppResult<ApiResponse<Poll>> {
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(polls::get(&mut conn, &me, poll_id).await?))
}

/// Deletes a poll and its votes (its creator, the host, staff); the party's sockets get
/// `poll_deleted`.
#[utoipa::path(delete, path = "/interactive/polls/{poll_id}/", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete_poll(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(poll_id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let party = polls::delete(&state.db, &me, poll_id).await?;
    notify(&state, party, bus(polls::deleted_event(poll_id, &me))).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A vote: `option_ids` (one for a single-choice poll), or `option_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollResponse {
    /// The chosen options (1 for a single-choice poll, 1 to all for multiple choice).
    pub option_ids: Option<Vec<Uuid>>,
    /// The one chosen option (in place of `option_ids`).
    pub option_id: Option<Uuid>,
}

impl PollResponse {
    /// The choice, or the field that is wrong.
    pub fn choice(self) -> AppResult<Vec<Uuid>> {
        match (self.option_ids, self.option_id) {
            (Some(_), Some(_)) => Err(AppError::field(
                "option_ids",
                "Give `option_ids` or `option_id`, not both.",
            )),
            (None, None) => Err(AppError::field("option_ids", "Choose at least one option.")),
            (None, Some(id)) => Ok(vec![id]),
            (Some(ids), None) if ids.is_empty() => {
                Err(AppError::field("option_ids", "Choose at least one option."))
            }
            (Some(ids), None) if ids.len() > polls::OPTIONS_MAX => {
                Err(AppError::field("option_ids", "At most 10 options."))
            }
            (Some(ids), None) => Ok(ids),
        }
    }
}

/// Sets the caller's vote (members, while the poll is open; 409 `poll_closed` after).
/// Voting again replaces the vote; the same choice again changes nothing. The party's
/// sockets get `poll_updated` (throttled).
#[utoipa::path(post, path = "/interactive/polls/{poll_id}/respond/", tag = "polls", security(("bearer" = [])),
    request_body = PollResponse, params(("poll_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Poll>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn respond(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(poll_id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Poll>> {
    {
        let mut conn = state.db.acquire().await?;
        polls::get(&mut conn, &me, poll_id).await?;
    }
    let choice = body.parse::<PollResponse>()?.choice()?;
    cast(&state, &me, poll_id, &choice).await
}

/// Takes the caller's vote back (while the poll is open).
#[utoipa::path(delete, path = "/interactive/polls/{poll_id}/respond/", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Poll>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn retract(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(poll_id): Ids<Uuid>,
) -> AppResult<ApiResponse<Poll>> {
    cast(&state, &me, poll_id, &[]).await
}

async fn cast(
    state: &AppState,
    me: &AuthUser,
    poll: Uuid,
    choice: &[Uuid],
) -> AppResult<ApiResponse<Poll>> {
    let voted = polls::vote(&state.db, me, poll, None, choice).await?;
    if let Some(row) = voted.outbox_row {
        wp_shared::outbox::relay(&state.db, &state.enqueuer, &[row]).await;
    }
    if let Some(update) = voted.update {
        notify(state, voted.party, bus(update)).await;
    }
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(polls::get(&mut conn, me, poll).await?))
}

/// Closes a poll now (its creator, the host, staff); the party's sockets get
/// `poll_closed` with the final results and its members a `poll.results` notification.
/// 409 `poll_closed` if it already was.
#[utoipa::path(post, path = "/interactive/polls/{poll_id}/close/", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Poll>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn close_poll(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(poll_id): Ids<Uuid>,
) -> AppResult<ApiResponse<Poll>> {
    let (closed, row) = polls::close(&state.db, &me, poll_id).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &[row]).await;
    notify(&state, closed.party_id, bus(PartyEvent::PollClosed(closed))).await;
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(polls::get(&mut conn, &me, poll_id).await?))
}

/// Who voted for what, by first vote (members; 403 for an anonymous poll, and while
/// the results are hidden).
#[utoipa::path(get, path = "/interactive/polls/{poll_id}/votes/", tag = "polls", security(("bearer" = [])),
    params(("poll_id" = Uuid, Path), PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<PollVoter>>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn poll_votes(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(poll_id): Ids<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<PollVoter>>> {
    let page = q.validate()?;
    let mut conn = state.db.acquire().await?;
    let (results, count) =
        polls::voters(&mut conn, &me, poll_id, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}
