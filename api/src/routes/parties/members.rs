//! Joining and leaving (with host hand-over), participants, roles, kick and ban, the
//! invite code.

use crate::extract::Ids;
use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wp_core::party::live::{self as live, BusMsg, Keys};

use wp_core::party::members::{self, Removal};

use super::*;
use crate::{
    auth::ClientIp,
    extract::Json,
    response::{ApiResponse, Envelope},
};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyJoinBody {
    /// The invite code (required for a private party).
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinByCode {
    /// The code as shown or typed: any case; spaces and dashes between groups are ignored.
    pub code: String,
}

/// Adds `me` to the party `id` (checks bans and room size under a lock on the party).
async fn join_party(
    state: &AppState,
    me: &AuthUser,
    id: Uuid,
    code: Option<&str>,
) -> AppResult<Party> {
    let mut tx = state.db.begin().await?;
    let joined = members::join(&mut tx, me, id, code).await?;
    let row = load_row(&mut tx, me, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    if joined {
        notify(
            state,
            id,
            bus(PartyEvent::MemberJoined {
                user: user_ref(me),
                role: PartyRole::Member,
            }),
        )
        .await;
    }
    Ok(party_view(row, state, me.is_staff()))
}

/// Joins a party: public parties are open, friends-only ones to the host's friends,
/// private ones with the invite code. Joining again changes nothing.
#[utoipa::path(post, path = "/parties/{id}/join/", tag = "parties", security(("bearer" = [])), request_body(content = PartyJoinBody, description = "Optional"),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Party>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 429, description = "Too many codes tried (per user and per address)", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn join(
    State(state): State<AppState>,
    me: AuthUser,
    ip: ClientIp,
    Ids(id): Ids<Uuid>,
    body: axum::body::Bytes,
) -> AppResult<ApiResponse<Party>> {
    // The body is optional: empty, or `{"code": ...}`.
    let code = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        crate::extract::parse_json::<PartyJoinBody>(&body)?.code
    };
    if code.is_some() {
        guess_limits(&state, &me, ip).await?;
    }
    Ok(ApiResponse::ok(
        join_party(&state, &me, id, code.as_deref()).await?,
    ))
}

/// Joins the party an invite code belongs to.
#[utoipa::path(post, path = "/parties/join-by-code/", tag = "parties", security(("bearer" = [])), request_body = JoinByCode,
    responses((status = 200, body = inline(Envelope<Party>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 429, description = "Too many codes tried (per user and per address)", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn join_by_code(
    State(state): State<AppState>,
    me: AuthUser,
    ip: ClientIp,
    Json(body): Json<JoinByCode>,
) -> AppResult<ApiResponse<Party>> {
    guess_limits(&state, &me, ip).await?;
    let code = wp_core::party::normalize_invite_code(&body.code);
    let id = sqlx::query_scalar!(
        "SELECT id FROM parties WHERE invite_code = $1 AND status = 'active'",
        code
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| AppError::field("code", "This invite code is not valid."))?;
    let party = join_party(&state, &me, id, Some(&code)).await?;
    crate::ratelimit::clear(
        &state,
        &crate::ratelimit::INVITE_CODE_PER_USER,
        &me.id.to_string(),
    )
    .await?;
    Ok(ApiResponse::ok(party))
}

/// Invite codes are guessed only slowly: every attempt with a code counts per user and
/// per address (429 with `Retry-After`); a code that works clears the user's count.
async fn guess_limits(state: &AppState, me: &AuthUser, ip: ClientIp) -> AppResult<()> {
    use crate::ratelimit::{INVITE_CODE_PER_IP, INVITE_CODE_PER_USER, hit};
    hit(state, &INVITE_CODE_PER_USER, &me.id.to_string()).await?;
    hit(state, &INVITE_CODE_PER_IP, &ip.bucket()).await
}

/// Tells the sockets that `user` left (and who hosts now), closing that user's sockets
/// with `reason`.
async fn announce_removal(
    state: &AppState,
    party: Uuid,
    user: (Uuid, &str),
    outcome: Removal,
    reason: Departure,
) {
    if let Removal::Ended = outcome {
        end_live(state, party, "Everyone left the party.").await;
        return;
    }
    // Out of the voice chat and of the buffering wait, wherever their sockets are.
    let keys = Keys::new(&state.config.redis_prefix, party);
    let mut redis = state.redis.clone();
    let field = user.0.to_string();
    let _ = redis::pipe()
        .hdel(keys.voice(), &field)
        .hdel(keys.buffering(), &field)
        .query_async::<()>(&mut redis)
        .await;
    notify(
        state,
        party,
        BusMsg {
            origin: "api".into(),
            to_user: Some(user.0),
            event: Some(PartyEvent::Removed { reason }),
            disconnect: Some(reason.as_str().to_owned()),
        },
    )
    .await;
    notify(
        state,
        party,
        bus(PartyEvent::MemberLeft {
            user: UserRef::new(user.0, user.1),
            reason,
        }),
    )
    .await;
    if let Removal::HandedOver(host) = outcome {
        notify(
            state,
            party,
            bus(PartyEvent::MemberUpdated {
                user: host,
                role: PartyRole::Host,
            }),
        )
        .await;
    }
}

/// Leaves a party. A leaving host hands over to a co-host (else the longest-standing
/// member); the last one out ends the party.
#[utoipa::path(post, path = "/parties/{id}/leave/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn leave(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, id).await?;
    let outcome = members::remove(&mut tx, row.id, me.id)
        .await?
        .ok_or_else(|| AppError::forbidden("not_a_member", "You are not in this party."))?;
    tx.commit().await?;
    announce_removal(
        &state,
        row.id,
        (me.id, &me.username),
        outcome,
        Departure::Left,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The party's members (host first), with who is online.
#[utoipa::path(get, path = "/parties/{id}/participants/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Vec<Participant>>)), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn participants(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Vec<Participant>>> {
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, id).await?;
    drop(conn);
    let mut redis = state.redis.clone();
    Ok(ApiResponse::ok(
        wp_core::party::member_list(&state.db, &mut redis, &state.config.redis_prefix, row.id)
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyRoleBody {
    /// `cohost`, `member`, or `host` (hands the party over; the old host becomes a co-host).
    pub role: PartyRole,
}

/// Sets a member's role (the host, or staff).
#[utoipa::path(put, path = "/parties/{id}/members/{user_id}/", tag = "parties", security(("bearer" = [])), request_body = PartyRoleBody,
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Participant>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_member_role(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user_id)): Ids<(Uuid, Uuid)>,
    Json(body): Json<PartyRoleBody>,
) -> AppResult<ApiResponse<Participant>> {
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, id).await?;
    row.require_role(&me, PartyRole::Host)?;
    let target = sqlx::query!(
        r#"SELECT m.role, u.username, u.display_name, u.avatar_path, m.joined_at FROM party_members m
           JOIN users u ON u.id = m.user_id WHERE m.party_id = $1 AND m.user_id = $2"#,
        row.id,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(AppError::not_found)?;
    if target.role == "host" && body.role != PartyRole::Host {
        return Err(AppError::field(
            "role",
            "Hand the party to someone else first (role: host on them).",
        ));
    }
    let mut changes = vec![(user_id, target.username.clone(), body.role)];
    if body.role == PartyRole::Host && target.role != "host" {
        let old = row.host_id;
        sqlx::query!(
            "UPDATE party_members SET role = 'cohost' WHERE party_id = $1 AND role = 'host'",
            row.id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE parties SET host_id = $2, updated_at = now() WHERE id = $1",
            row.id,
            user_id
        )
        .execute(&mut *tx)
        .await?;
        changes.push((old, row.host_username.clone(), PartyRole::Cohost));
    }
    sqlx::query!(
        "UPDATE party_members SET role = $3 WHERE party_id = $1 AND user_id = $2",
        row.id,
        user_id,
        body.role.as_str()
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for (uid, name, role) in &changes {
        notify(
            &state,
            row.id,
            bus(PartyEvent::MemberUpdated {
                user: UserRef::new(*uid, name),
                role: *role,
            }),
        )
        .await;
    }
    let keys = Keys::new(&state.config.redis_prefix, row.id);
    let mut redis = state.redis.clone();
    let online = live::online_users(&mut redis, &state.config.redis_prefix, &keys).await?;
    Ok(ApiResponse::ok(Participant {
        online: online.contains(&user_id),
        user: UserSummary::new(
            user_id,
            target.username,
            target.display_name,
            target.avatar_path.as_deref(),
        ),
        role: body.role,
        joined_at: target.joined_at,
    }))
}

/// May `me` remove `target` (of `target_role`)? Host and staff remove anyone but the
/// host; co-hosts remove members only.
fn may_remove(row: &PartyRow, me: &AuthUser, target_role: PartyRole) -> AppResult<()> {
    row.require_role(me, PartyRole::Cohost)?;
    let mine = if me.is_staff() {
        PartyRole::Host
    } else {
        row.member_role()?
    };
    if target_role == PartyRole::Host
        || (mine == PartyRole::Cohost && target_role != PartyRole::Member)
    {
        return Err(AppError::forbidden(
            "permission_denied",
            "You may not remove this member.",
        ));
    }
    Ok(())
}

/// Removes a member (kick): they may join again unless banned.
#[utoipa::path(delete, path = "/parties/{id}/members/{user_id}/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn kick(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user_id)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, id).await?;
    let target = sqlx::query!(
        r#"SELECT m.role, u.username FROM party_members m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1 AND m.user_id = $2"#,
        row.id,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(AppError::not_found)?;
    may_remove(
        &row,
        &me,
        target
            .role
            .parse::<PartyRole>()
            .map_err(anyhow::Error::from)?,
    )?;
    let outcome = members::remove(&mut tx, row.id, user_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    announce_removal(
        &state,
        row.id,
        (user_id, &target.username),
        outcome,
        Departure::Kicked,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanBody {
    pub user_id: Uuid,
    #[serde(default)]
    pub reason: String,
}

/// A ban.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ban {
    pub user: UserSummary,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Bans a user (removing them if a member); they cannot join again, even with the code.
#[utoipa::path(post, path = "/parties/{id}/bans/", tag = "parties", security(("bearer" = [])), request_body = BanBody,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = inline(Envelope<Ban>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn ban(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(body): Json<BanBody>,
) -> AppResult<ApiResponse<Ban>> {
    if body.reason.chars().count() > 500 {
        return Err(AppError::field("reason", "At most 500 characters."));
    }
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, id).await?;
    let user = sqlx::query!(
        "SELECT username, display_name, avatar_path FROM users WHERE id = $1 AND status <> 'deleted'",
        body.user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::field("user_id", "No such user."))?;
    let role = sqlx::query_scalar!(
        "SELECT role FROM party_members WHERE party_id = $1 AND user_id = $2",
        row.id,
        body.user_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    may_remove(
        &row,
        &me,
        role.as_deref()
            .map(str::parse::<PartyRole>)
            .transpose()
            .map_err(anyhow::Error::from)?
            .unwrap_or(PartyRole::Member),
    )?;
    if body.user_id == me.id {
        return Err(AppError::field("user_id", "You cannot ban yourself."));
    }
    let created_at = sqlx::query_scalar!(
        r#"INSERT INTO party_bans (party_id, user_id, banned_by, reason) VALUES ($1, $2, $3, $4)
           ON CONFLICT (party_id, user_id) DO UPDATE SET reason = EXCLUDED.reason
           RETURNING created_at"#,
        row.id,
        body.user_id,
        me.id,
        body.reason
    )
    .fetch_one(&mut *tx)
    .await?;
    let outcome = members::remove(&mut tx, row.id, body.user_id).await?;
    tx.commit().await?;
    if let Some(outcome) = outcome {
        announce_removal(
            &state,
            row.id,
            (body.user_id, &user.username),
            outcome,
            Departure::Banned,
        )
        .await;
    }
    Ok(ApiResponse::created(Ban {
        user: UserSummary::new(
            body.user_id,
            user.username,
            user.display_name,
            user.avatar_path.as_deref(),
        ),
        reason: body.reason,
        created_at,
    }))
}

/// The party's bans (host and co-hosts).
#[utoipa::path(get, path = "/parties/{id}/bans/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Vec<Ban>>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn bans(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Vec<Ban>>> {
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, id).await?;
    row.require_role(&me, PartyRole::Cohost)?;
    let rows = sqlx::query!(
        r#"SELECT b.user_id, u.username, u.display_name, u.avatar_path, b.reason, b.created_at
           FROM party_bans b JOIN users u ON u.id = b.user_id
           WHERE b.party_id = $1 ORDER BY b.created_at DESC"#,
        row.id
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(ApiResponse::ok(
        rows.into_iter()
            .map(|r| Ban {
                user: UserSummary::new(
                    r.user_id,
                    r.username,
                    r.display_name,
                    r.avatar_path.as_deref(),
                ),
                reason: r.reason,
                created_at: r.created_at,
            })
            .collect(),
    ))
}

/// Lifts a ban.
#[utoipa::path(delete, path = "/parties/{id}/bans/{user_id}/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn unban(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, user_id)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, id).await?;
    row.require_role(&me, PartyRole::Cohost)?;
    let n = sqlx::query!(
        "DELETE FROM party_bans WHERE party_id = $1 AND user_id = $2",
        row.id,
        user_id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    crate::response::deleted(n)
}

/// A new invite code (the old one stops working).
#[utoipa::path(post, path = "/parties/{id}/invite-code/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Party>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn regenerate_code(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Party>> {
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, id).await?;
    row.require_role(&me, PartyRole::Cohost)?;
    sqlx::query!(
        "UPDATE parties SET invite_code = $2, updated_at = now() WHERE id = $1",
        row.id,
        invite_code()
    )
    .execute(&mut *tx)
    .await?;
    let row = load_row(&mut tx, &me, row.id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(ApiResponse::ok(party_view(row, &state, me.is_staff())))
}
