//! The social graph under `/api/social/`: friend requests, friends, follows, blocks.
//! Changes a user should hear of emit domain events through the outbox.

use crate::extract::Ids;
use axum::{
    extract::{OriginalUri, State},
    http::{StatusCode, Uri},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::error::OnConstraint;
use crate::{
    auth::AuthUser,
    error::{AppError, AppResult},
    extract::{Json, Query},
    ratelimit,
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    state::AppState,
};

pub use wp_core::social::UserSummary;

/// A friend request.
#[derive(Debug, Serialize, ToSchema)]
pub struct FriendRequest {
    pub id: Uuid,
    pub from_user: UserSummary,
    pub to_user: UserSummary,
    /// `pending`, `accepted`, `declined` or `cancelled`.
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// An entry of a friends / followers / following / blocks list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Relation {
    pub user: UserSummary,
    /// When the friendship, follow or block began.
    pub since: DateTime<Utc>,
}

/// The target of an action: an active user other than the caller, or 404 / 400.
async fn target(
    conn: &mut PgConnection,
    me: &AuthUser,
    id: Uuid,
    field: &str,
) -> AppResult<UserSummary> {
    if id == me.id {
        return Err(AppError::field(field, "You cannot do this to yourself."));
    }
    let row: UserSummary = sqlx::query_as(
        "SELECT id, username, display_name, avatar_path FROM users WHERE id = $1 AND status = 'active'",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(AppError::not_found)?;
    Ok(row)
}

/// [`target`] for an action towards the user: someone who blocked the caller answers
/// as if the account did not exist (404, as their profile does); someone the caller
/// blocked is a 403 `blocked` (unblock first).
async fn reachable(
    conn: &mut PgConnection,
    me: &AuthUser,
    id: Uuid,
    field: &str,
    what: &str,
) -> AppResult<UserSummary> {
    let other = target(conn, me, id, field).await?;
    if wp_core::social::has_blocked(conn, other.id, me.id).await? {
        return Err(AppError::not_found());
    }
    if wp_core::social::has_blocked(conn, me.id, other.id).await? {
        return Err(AppError::forbidden(
            "blocked",
            format!("You blocked this user; unblock them to {what}."),
        ));
    }
    Ok(other)
}

fn pair(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a < b { (a, b) } else { (b, a) }
}

async fn are_friends(conn: &mut PgConnection, a: Uuid, b: Uuid) -> AppResult<bool> {
    let (x, y) = pair(a, b);
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS(SELECT 1 FROM friendships WHERE user_a = $1 AND user_b = $2) AS "f!""#,
        x,
        y
    )
    .fetch_one(&mut *conn)
    .await?)
}

async fn load_request(conn: &mut PgConnection, id: Uuid) -> AppResult<FriendRequest> {
    let r = sqlx::query!(
        r#"SELECT r.id, r.status, r.created_at,
                  f.id AS f_id, f.username AS f_username, f.display_name AS f_display, f.avatar_path AS f_avatar,
                  t.id AS t_id, t.username AS t_username, t.display_name AS t_display, t.avatar_path AS t_avatar
           FROM friend_requests r
           JOIN users f ON f.id = r.from_user
           JOIN users t ON t.id = r.to_user
           WHERE r.id = $1"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(AppError::not_found)?;
    Ok(FriendRequest {
        id: r.id,
        from_user: UserSummary::new(r.f_id, r.f_username, r.f_display, r.f_avatar.as_deref()),
        to_user: UserSummary::new(r.t_id, r.t_username, r.t_display, r.t_avatar.as_deref()),
        status: r.status,
        created_at: r.created_at,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewFriendRequest {
    pub user_id: Uuid,
}

/// Sends a friend request. If the other person already asked you, this accepts theirs.
#[utoipa::path(post, path = "/social/friend-requests/", tag = "social", security(("bearer" = [])), request_body = NewFriendRequest,
    responses(
        (status = 201, body = inline(Envelope<FriendRequest>)),
        (status = 400, description = "To yourself", body = crate::error::ErrorBody),
        (status = 403, description = "`blocked`: you blocked this user", body = crate::error::ErrorBody),
        (status = 404, description = "No such user, or they blocked you", body = crate::error::ErrorBody),
        (status = 409, description = "`already_friends` or `request_pending`", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn send_request(
    State(state): State<AppState>,
    me: AuthUser,
    Json(body): Json<NewFriendRequest>,
) -> AppResult<ApiResponse<FriendRequest>> {
    let mut tx = state.db.begin().await?;
    let other = reachable(
        &mut tx,
        &me,
        body.user_id,
        "user_id",
        "send a friend request",
    )
    .await?;
    ratelimit::hit(
        &state,
        &ratelimit::FRIEND_REQUEST_PER_USER,
        &me.id.to_string(),
    )
    .await?;
    if are_friends(&mut tx, me.id, other.id).await? {
        return Err(AppError::Conflict {
            code: "already_friends",
            message: "You are already friends.".into(),
        });
    }
    // Their pending request to me: accept it instead.
    let reverse = sqlx::query_scalar!(
        "SELECT id FROM friend_requests WHERE from_user = $1 AND to_user = $2 AND status = 'pending' FOR UPDATE",
        other.id,
        me.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = reverse {
        let outbox = accept_in(&mut tx, id, other.id, me.id).await?;
        let req = load_request(&mut tx, id).await?;
        tx.commit().await?;
        state.relay(&outbox).await;
        return Ok(ApiResponse::ok(req).message("They had already asked you: you are now friends."));
    }
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO friend_requests (id, from_user, to_user) VALUES ($1, $2, $3)",
        id,
        me.id,
        other.id
    )
    .execute(&mut *tx)
    .await
    .on_constraint(|c| {
        (c == "friend_requests_one_pending").then(|| AppError::Conflict {
            code: "request_pending",
            message: "A friend request is already pending.".into(),
        })
    })?;
    // Asked again within a day (request, cancel, request…): the request stands, but
    // they are told once.
    let told_lately: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM domain_events
                         WHERE recipient_id = $2 AND kind = 'friend_request.received'
                           AND actor_id = $1 AND created_at > now() - interval '1 day')",
    )
    .bind(me.id)
    .bind(other.id)
    .fetch_one(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    if !told_lately {
        outbox.push(
            wp_core::events::emit(
                &mut tx,
                "friend_request.received",
                Some(me.id),
                Some(other.id),
                serde_json::json!({ "request_id": id }),
            )
            .await?,
        );
    }
    let req = load_request(&mut tx, id).await?;
    tx.commit().await?;
    state.relay(&outbox).await;
    Ok(ApiResponse::created(req))
}

/// Accepts request `id` (from `from` to `to`): the friendship and the event.
async fn accept_in(conn: &mut PgConnection, id: Uuid, from: Uuid, to: Uuid) -> AppResult<Vec<i64>> {
    sqlx::query!(
        "UPDATE friend_requests SET status = 'accepted', responded_at = now() WHERE id = $1",
        id
    )
    .execute(&mut *conn)
    .await?;
    let (a, b) = pair(from, to);
    sqlx::query!(
        "INSERT INTO friendships (user_a, user_b) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        a,
        b
    )
    .execute(&mut *conn)
    .await?;
    let ev = wp_core::events::emit(
        conn,
        "friend_request.accepted",
        Some(to),
        Some(from),
        serde_json::json!({ "request_id": id }),
    )
    .await?;
    Ok(vec![ev])
}

/// Which friend requests: to me or from me.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Incoming,
    Outgoing,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RequestListParams {
    /// `incoming` (default) or `outgoing`.
    #[param(inline)]
    pub direction: Option<Direction>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Pending friend requests to me (`incoming`) or from me (`outgoing`), newest first.
#[utoipa::path(get, path = "/social/friend-requests/", tag = "social", security(("bearer" = [])), params(RequestListParams),
    responses((status = 200, body = inline(Envelope<Paginated<FriendRequest>>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_requests(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<RequestListParams>,
) -> AppResult<ApiResponse<Paginated<FriendRequest>>> {
    let incoming = q.direction.unwrap_or(Direction::Incoming) == Direction::Incoming;
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let mut conn = state.db.acquire().await?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM friend_requests
           WHERE status = 'pending' AND CASE WHEN $2 THEN to_user = $1 ELSE from_user = $1 END"#,
        me.id,
        incoming
    )
    .fetch_one(&mut *conn)
    .await?;
    let ids = sqlx::query_scalar!(
        "SELECT id FROM friend_requests
         WHERE status = 'pending' AND CASE WHEN $2 THEN to_user = $1 ELSE from_user = $1 END
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
        me.id,
        incoming,
        page.limit(),
        page.offset()
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        results.push(load_request(&mut conn, id).await?);
    }
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// Acts on a pending request: `accept` and `decline` by its recipient, `cancel` by its
/// sender. Anyone else gets 404.
async fn respond(
    state: &AppState,
    me: &AuthUser,
    id: Uuid,
    action: &str,
) -> AppResult<ApiResponse<FriendRequest>> {
    let mut tx = state.db.begin().await?;
    let r = sqlx::query!(
        "SELECT from_user, to_user, status FROM friend_requests WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(AppError::not_found)?;
    let allowed = match action {
        "cancel" => r.from_user == me.id,
        _ => r.to_user == me.id,
    };
    if !allowed {
        return Err(AppError::not_found());
    }
    if r.status != "pending" {
        return Err(AppError::Conflict {
            code: "not_pending",
            message: format!("This request is already {}.", r.status),
        });
    }
    let mut outbox = Vec::new();
    match action {
        "accept" => {
            if wp_core::social::blocked_between(&mut tx, r.from_user, r.to_user).await? {
                return Err(AppError::forbidden(
                    "blocked",
                    "You cannot accept this request.",
                ));
            }
            outbox = accept_in(&mut tx, id, r.from_user, r.to_user).await?;
        }
        "decline" => {
            sqlx::query!("UPDATE friend_requests SET status = 'declined', responded_at = now() WHERE id = $1", id)
                .execute(&mut *tx)
                .await?;
        }
        _ => {
            sqlx::query!("UPDATE friend_requests SET status = 'cancelled', responded_at = now() WHERE id = $1", id)
                .execute(&mut *tx)
                .await?;
        }
    }
    let req = load_request(&mut tx, id).await?;
    tx.commit().await?;
    state.relay(&outbox).await;
    Ok(ApiResponse::ok(req))
}

/// Accepts a friend request sent to me.
#[utoipa::path(post, path = "/social/friend-requests/{id}/accept/", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<FriendRequest>)), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn accept(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<FriendRequest>> {
    respond(&state, &me, id, "accept").await
}

/// Declines a friend request sent to me.
#[utoipa::path(post, path = "/social/friend-requests/{id}/decline/", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<FriendRequest>)), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn decline(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<FriendRequest>> {
    respond(&state, &me, id, "decline").await
}

/// Withdraws a friend request I sent.
#[utoipa::path(post, path = "/social/friend-requests/{id}/cancel/", tag = "social", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<FriendRequest>)), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn cancel(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<FriendRequest>> {
    respond(&state, &me, id, "cancel").await
}

/// Which relation list to read.
#[derive(Clone, Copy)]
enum ListKind {
    Friends,
    Followers,
    Following,
    Blocks,
}

impl ListKind {
    fn as_str(self) -> &'static str {
        match self {
            ListKind::Friends => "friends",
            ListKind::Followers => "followers",
            ListKind::Following => "following",
            ListKind::Blocks => "blocks",
        }
    }
}

async fn relation_list(
    state: &AppState,
    me: &AuthUser,
    uri: &Uri,
    params: &PageParams,
    kind: ListKind,
) -> AppResult<ApiResponse<Paginated<Relation>>> {
    let page = params.validate()?;
    // One statement for the four lists: each branch runs only for its own kind.
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM (
               SELECT 1 FROM friendships WHERE $2 = 'friends' AND (user_a = $1 OR user_b = $1)
               UNION ALL SELECT 1 FROM follows WHERE $2 = 'followers' AND followee = $1
               UNION ALL SELECT 1 FROM follows WHERE $2 = 'following' AND follower = $1
               UNION ALL SELECT 1 FROM blocks WHERE $2 = 'blocks' AND blocker = $1
           ) r"#,
        me.id,
        kind.as_str()
    )
    .fetch_one(&state.db)
    .await?;
    let rows = sqlx::query!(
        r#"WITH r AS (
               SELECT CASE WHEN user_a = $1 THEN user_b ELSE user_a END AS other, created_at
                 FROM friendships WHERE $2 = 'friends' AND (user_a = $1 OR user_b = $1)
               UNION ALL SELECT follower, created_at FROM follows WHERE $2 = 'followers' AND followee = $1
               UNION ALL SELECT followee, created_at FROM follows WHERE $2 = 'following' AND follower = $1
               UNION ALL SELECT blocked, created_at FROM blocks WHERE $2 = 'blocks' AND blocker = $1
           )
           SELECT u.id, u.username, u.display_name, u.avatar_path, r.created_at AS "since!"
           FROM r JOIN users u ON u.id = r.other
           ORDER BY r.created_at DESC, u.id LIMIT $3 OFFSET $4"#,
        me.id,
        kind.as_str(),
        page.limit(),
        page.offset()
    )
    .fetch_all(&state.db)
    .await?;
    let results = rows
        .into_iter()
        .map(|r| Relation {
            user: UserSummary::new(r.id, r.username, r.display_name, r.avatar_path.as_deref()),
            since: r.since,
        })
        .collect();
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(state, uri),
    )))
}

/// My friends, newest friendship first.
#[utoipa::path(get, path = "/social/friends/", tag = "social", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<Relation>>))))]
#[tracing::instrument(skip_all)]
pub async fn friends(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<Relation>>> {
    relation_list(&state, &me, &uri, &p, ListKind::Friends).await
}

/// Ends a friendship.
#[utoipa::path(delete, path = "/social/friends/{user_id}/", tag = "social", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 204), (status = 404, description = "Not friends", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unfriend(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(other): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let (a, b) = pair(me.id, other);
    let n = sqlx::query!(
        "DELETE FROM friendships WHERE user_a = $1 AND user_b = $2",
        a,
        b
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    crate::response::deleted(n)
}

/// Follows a user.
#[utoipa::path(post, path = "/social/follow/{user_id}/", tag = "social", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 201, body = inline(Envelope<Relation>)), (status = 400, description = "`user_id`: yourself", body = crate::error::ErrorBody), (status = 403, description = "`blocked`: you blocked this user", body = crate::error::ErrorBody), (status = 404, description = "No such user, or they blocked you", body = crate::error::ErrorBody), (status = 409, description = "`already_following`", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn follow(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Relation>> {
    let mut tx = state.db.begin().await?;
    let other = reachable(&mut tx, &me, id, "user_id", "follow them").await?;
    let since = sqlx::query_scalar!(
        "INSERT INTO follows (follower, followee) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING created_at",
        me.id,
        other.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::Conflict { code: "already_following", message: "You already follow this user.".into() })?;
    let ev = wp_core::events::emit(
        &mut tx,
        "follow.new",
        Some(me.id),
        Some(other.id),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    state.relay(&[ev]).await;
    Ok(ApiResponse::created(Relation { user: other, since }))
}

/// Stops following a user.
#[utoipa::path(delete, path = "/social/follow/{user_id}/", tag = "social", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 204), (status = 404, description = "Not following", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unfollow(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let n = sqlx::query!(
        "DELETE FROM follows WHERE follower = $1 AND followee = $2",
        me.id,
        id
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    crate::response::deleted(n)
}

/// Who follows me.
#[utoipa::path(get, path = "/social/followers/", tag = "social", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<Relation>>))))]
#[tracing::instrument(skip_all)]
pub async fn followers(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<Relation>>> {
    relation_list(&state, &me, &uri, &p, ListKind::Followers).await
}

/// Whom I follow.
#[utoipa::path(get, path = "/social/following/", tag = "social", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<Relation>>))))]
#[tracing::instrument(skip_all)]
pub async fn following(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<Relation>>> {
    relation_list(&state, &me, &uri, &p, ListKind::Following).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewBlock {
    pub user_id: Uuid,
}

/// Blocks a user: ends any friendship, pending requests and follows between us; they
/// can no longer send me requests, follow me or see my private content.
#[utoipa::path(post, path = "/social/blocks/", tag = "social", security(("bearer" = [])), request_body = NewBlock,
    responses((status = 201, body = inline(Envelope<Relation>)), (status = 404, body = crate::error::ErrorBody), (status = 409, description = "`already_blocked`", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn block(
    State(state): State<AppState>,
    me: AuthUser,
    Json(body): Json<NewBlock>,
) -> AppResult<ApiResponse<Relation>> {
    let mut tx = state.db.begin().await?;
    let other = target(&mut tx, &me, body.user_id, "user_id").await?;
    let since = sqlx::query_scalar!(
        "INSERT INTO blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING created_at",
        me.id,
        other.id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::Conflict { code: "already_blocked", message: "You already blocked this user.".into() })?;
    let (a, b) = pair(me.id, other.id);
    sqlx::query!(
        "DELETE FROM friendships WHERE user_a = $1 AND user_b = $2",
        a,
        b
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE friend_requests SET status = 'cancelled', responded_at = now()
         WHERE status = 'pending' AND ((from_user = $1 AND to_user = $2) OR (from_user = $2 AND to_user = $1))",
        me.id,
        other.id
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM follows WHERE (follower = $1 AND followee = $2) OR (follower = $2 AND followee = $1)",
        me.id,
        other.id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ApiResponse::created(Relation { user: other, since }))
}

/// Lifts a block.
#[utoipa::path(delete, path = "/social/blocks/{user_id}/", tag = "social", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 204), (status = 404, description = "Not blocked", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unblock(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let n = sqlx::query!(
        "DELETE FROM blocks WHERE blocker = $1 AND blocked = $2",
        me.id,
        id
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    crate::response::deleted(n)
}

/// Users I blocked.
#[utoipa::path(get, path = "/social/blocks/", tag = "social", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = inline(Envelope<Paginated<Relation>>))))]
#[tracing::instrument(skip_all)]
pub async fn blocks(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<PageParams>,
) -> AppResult<ApiResponse<Paginated<Relation>>> {
    relation_list(&state, &me, &uri, &p, ListKind::Blocks).await
}

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_request, list_requests))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(cancel))
        .routes(routes!(friends))
        .routes(routes!(unfriend))
        .routes(routes!(follow, unfollow))
        .routes(routes!(followers))
        .routes(routes!(following))
        .routes(routes!(block, blocks))
        .routes(routes!(unblock))
}
