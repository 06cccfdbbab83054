//! Social groups over REST, under `/api/social/groups/` (seed item 8): list, create,
//! detail, edit, delete; join (public) or ask to join (private), leave; members and
//! roles; join requests; invitations; removal and bans. The rules are `wp_core::group`;
//! a private group is a 404 to whoever may not see it.

use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::group::{
    self, Group, GroupBan, GroupMember, GroupPatch, GroupRole, JoinRequest, Joined, NewGroup,
};

use crate::{
    auth::AuthUser,
    error::{AppResult, ErrorBody},
    extract::{Ids, JsonBody, Query},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    state::AppState,
};

/// `?search=&category=&mine=&page=&page_size=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupListParams {
    /// Words of the name or description.
    pub search: Option<String>,
    pub category: Option<String>,
    /// Only the caller's groups.
    pub mine: Option<bool>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// The groups the caller may see (public ones, and private ones they are in or invited
/// to), largest first.
#[utoipa::path(get, path = "/social/groups/", tag = "groups", security(("bearer" = [])), params(GroupListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Group>>)), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<GroupListParams>,
) -> AppResult<ApiResponse<Paginated<Group>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let filter = group::ListFilter {
        search: q.search,
        category: q.category,
        mine: q.mine.unwrap_or(false),
    };
    let mut conn = state.db.acquire().await?;
    let (results, count) =
        group::list(&mut conn, &me, &filter, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Creates a group; the caller is its admin.
#[utoipa::path(post, path = "/social/groups/", tag = "groups", security(("bearer" = [])), request_body = NewGroup,
    responses((status = 201, body = inline(Envelope<Group>)), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<Group>> {
    let new = body.parse::<NewGroup>()?.checked()?;
    Ok(ApiResponse::created(
        group::create(&state.db, &me, &new).await?,
    ))
}

/// A group the caller may see (404 for a private group they are not in).
#[utoipa::path(get, path = "/social/groups/{id}/", tag = "groups", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Group>)), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn detail(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Group>> {
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(group::visible(&mut conn, &me, id).await?))
}

/// Edits a group (admins).
#[utoipa::path(patch, path = "/social/groups/{id}/", tag = "groups", security(("bearer" = [])), request_body = GroupPatch,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Group>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<Group>> {
    group::may(&state.db, &me, id, GroupRole::Admin).await?;
    let patch = body.parse::<GroupPatch>()?.checked()?;
    Ok(ApiResponse::ok(
        group::update(&state.db, &me, id, &patch).await?,
    ))
}

/// Deletes a group (admins).
#[utoipa::path(delete, path = "/social/groups/{id}/", tag = "groups", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    group::delete(&state.db, &me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An optional note with a request to join a private group.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupJoinBody {
    /// At most 500 characters.
    #[serde(default)]
    pub message: String,
}

/// What a join did.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinOutcome {
    /// `joined` (or already a member) or `requested` (a private group: an admin or
    /// moderator decides).
    pub status: String,
    /// The group, when joined.
    pub group: Option<Group>,
}

/// Joins a public group, or a private one the caller was invited to (200); asks to join
/// another private group (202, the admins and moderators are notified). 403 `banned`.
#[utoipa::path(post, path = "/social/groups/{id}/join/", tag = "groups", security(("bearer" = [])), request_body(content = GroupJoinBody, description = "optional"),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<JoinOutcome>)), (status = 202, body = inline(Envelope<JoinOutcome>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn join(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<ApiResponse<JoinOutcome>> {
    let b = body.parse_or_default::<GroupJoinBody>()?;
    match group::join(&state.db, &me, id, &b.message).await? {
        Joined::Member(g) => Ok(ApiResponse::ok(JoinOutcome {
            status: "joined".into(),
            group: Some(g),
        })),
        Joined::Requested(rows) => {
            wp_shared::outbox::relay(&state.db, &state.enqueuer, &rows).await;
            Ok(ApiResponse::accepted(JoinOutcome {
                status: "requested".into(),
                group: None,
            }))
        }
    }
}

/// Leaves a group (or withdraws a pending request). The last admin hands the group to
/// the longest-standing moderator, else member; the last member ends the group.
#[utoipa::path(post, path = "/social/groups/{id}/leave/", tag = "groups", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn leave(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    group::leave(&state.db, &me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members (admins, moderators, then by joining).
#[utoipa::path(get, path = "/social/groups/{id}/members/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<GroupMember>>)), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn members(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<GroupMember>>> {
    let page = q.validate()?;
    let mut conn = state.db.acquire().await?;
    let (results, count) = group::members(&mut conn, &me, id, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRoleBody {
    /// `admin`, `moderator` or `member`.
    pub role: GroupRole,
}

/// Sets a member's role (admins). A group keeps at least one admin (409 `last_admin`).
#[utoipa::path(put, path = "/social/groups/{id}/members/{user_id}/", tag = "groups", security(("bearer" = [])), request_body = GroupRoleBody,
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<GroupMember>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_role(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user)): Ids<(Uuid, Uuid)>,
    body: JsonBody,
) -> AppResult<ApiResponse<GroupMember>> {
    group::may(&state.db, &me, id, GroupRole::Admin).await?;
    let b = body.parse::<GroupRoleBody>()?;
    Ok(ApiResponse::ok(
        group::set_role(&state.db, &me, id, user, b.role).await?,
    ))
}

/// Removes a member (admins anyone but themselves; moderators plain members).
#[utoipa::path(delete, path = "/social/groups/{id}/members/{user_id}/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn remove(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    group::remove(&state.db, &me, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pending requests to join, oldest first (admins and moderators).
#[utoipa::path(get, path = "/social/groups/{id}/requests/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<JoinRequest>>)), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn requests(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<JoinRequest>>> {
    let page = q.validate()?;
    let mut conn = state.db.acquire().await?;
    let (results, count) = group::requests(&mut conn, &me, id, page.limit(), page.offset()).await?;
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Approves a request: the user becomes a member and is notified (admins and
/// moderators).
#[utoipa::path(post, path = "/social/groups/{id}/requests/{user_id}/approve/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn approve(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let row = group::decide(&state.db, &me, id, user, true).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &Vec::from_iter(row)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Rejects a request (admins and moderators).
#[utoipa::path(post, path = "/social/groups/{id}/requests/{user_id}/reject/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn reject(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    group::decide(&state.db, &me, id, user, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user, named in a body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub user_id: Uuid,
    /// For a ban: why (at most 500 characters).
    #[serde(default)]
    pub reason: String,
}

/// Invites a user (admins and moderators): they can then see the group and join it; they
/// are notified once.
#[utoipa::path(post, path = "/social/groups/{id}/invite/", tag = "groups", security(("bearer" = [])), request_body = UserBody,
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invite(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<StatusCode> {
    group::may(&state.db, &me, id, GroupRole::Moderator).await?;
    let b = body.parse::<UserBody>()?;
    let row = group::invite(&state.db, &me, id, b.user_id).await?;
    wp_shared::outbox::relay(&state.db, &state.enqueuer, &Vec::from_iter(row)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines the caller's invitation.
#[utoipa::path(delete, path = "/social/groups/{id}/invitation/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn decline(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    group::decline(&state.db, &me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The group's bans (admins and moderators).
#[utoipa::path(get, path = "/social/groups/{id}/bans/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Vec<GroupBan>>)), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn bans(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Vec<GroupBan>>> {
    let mut conn = state.db.acquire().await?;
    Ok(ApiResponse::ok(group::bans(&mut conn, &me, id).await?))
}

/// Bans a user: out of the group, their request and invitation gone, and no way back in
/// until unbanned (admins; moderators ban plain members and outsiders).
#[utoipa::path(post, path = "/social/groups/{id}/bans/", tag = "groups", security(("bearer" = [])), request_body = UserBody,
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn ban(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    body: JsonBody,
) -> AppResult<StatusCode> {
    group::may(&state.db, &me, id, GroupRole::Moderator).await?;
    let b = body.parse::<UserBody>()?;
    group::ban(&state.db, &me, id, b.user_id, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a ban (admins and moderators).
#[utoipa::path(delete, path = "/social/groups/{id}/bans/{user_id}/", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unban(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    group::unban(&state.db, &me, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(detail, update, delete))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(members))
        .routes(routes!(set_role, remove))
        .routes(routes!(requests))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(invite))
        .routes(routes!(decline))
        .routes(routes!(bans, ban))
        .routes(routes!(unban))
}
