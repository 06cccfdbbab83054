//! Invitations to a party and announcements to its members, through the notification
//! pipeline.

use crate::extract::Ids;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::*;
use crate::{
    extract::Json,
    response::{ApiResponse, Envelope},
};

/// Who to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyInviteBody {
    /// 1 to 50 users.
    #[schema(min_items = 1, max_items = 50)]
    pub user_ids: Vec<Uuid>,
}

/// A user who was not invited, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotInvited {
    pub user_id: Uuid,
    /// `unknown_user`, `already_member`, `banned`, `already_invited` (within the last
    /// hour), `self`.
    pub reason: &'static str,
}

/// `data` of an invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invited {
    pub invited: Vec<Uuid>,
    pub skipped: Vec<NotInvited>,
}

/// Invites users (host and co-hosts): each gets a `party.invite` notification (in-app,
/// email, push, by their preferences) with the party's join link. A user invited to
/// the same party within the hour is not invited again; a user who blocked the inviter
/// or the host (or was blocked by them) is `unknown_user`.
#[utoipa::path(post, path = "/parties/{id}/invite/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = PartyInviteBody,
    responses((status = 200, body = inline(Envelope<Invited>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn invite(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(body): Json<PartyInviteBody>,
) -> AppResult<ApiResponse<Invited>> {
    let mut wanted = body.user_ids.clone();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() || wanted.len() > 50 {
        return Err(AppError::field("user_ids", "Between 1 and 50 users."));
    }
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, id).await?;
    row.require_role(&me, PartyRole::Cohost)?;
    let known = sqlx::query!(
        r#"SELECT u.id,
                  EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = $2 AND m.user_id = u.id) AS "member!",
                  EXISTS (SELECT 1 FROM party_bans b WHERE b.party_id = $2 AND b.user_id = u.id) AS "banned!",
                  EXISTS (SELECT 1 FROM domain_events e
                          WHERE e.kind = 'party.invite' AND e.recipient_id = u.id
                            AND e.payload->>'party_id' = $2::text
                            AND e.created_at > now() - interval '1 hour') AS "invited!",
                  (blocked_between(u.id, $3) OR blocked_between(u.id, $4)) AS "blocked!"
           FROM users u WHERE u.id = ANY($1) AND u.status = 'active'"#,
        &wanted,
        row.id,
        me.id,
        row.host_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let (mut invited, mut skipped, mut outbox) = (Vec::new(), Vec::new(), Vec::new());
    for user in wanted {
        let reason = match known.iter().find(|k| k.id == user) {
            _ if user == me.id => Some("self"),
            // A block either way (with the inviter or the host) looks like no such user.
            None => Some("unknown_user"),
            Some(k) if k.blocked => Some("unknown_user"),
            Some(k) if k.member => Some("already_member"),
            Some(k) if k.banned => Some("banned"),
            Some(k) if k.invited => Some("already_invited"),
            Some(_) => None,
        };
        match reason {
            Some(reason) => skipped.push(NotInvited {
                user_id: user,
                reason,
            }),
            None => {
                outbox.push(
                    wp_core::events::emit(
                        &mut tx,
                        "party.invite",
                        Some(me.id),
                        Some(user),
                        json!({ "party_id": row.id, "title": row.title, "code": row.invite_code }),
                    )
                    .await?,
                );
                invited.push(user);
            }
        }
    }
    tx.commit().await?;
    state.relay(&outbox).await;
    Ok(ApiResponse::ok(Invited { invited, skipped }))
}

/// A message to the party's members.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnounceBody {
    /// 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub message: String,
}

/// `data` of an announcement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Announced {
    pub id: Uuid,
    /// Members it goes to (all but the sender).
    pub audience: i64,
}

/// Tells every member of the party (host and co-hosts; at most one a minute per
/// party): a `party.announcement` notification (in-app and push by default) to each
/// member but the sender and those who blocked (or were blocked by) the sender,
/// delivered in the background.
#[utoipa::path(post, path = "/parties/{id}/announce/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = AnnounceBody,
    responses((status = 200, body = inline(Envelope<Announced>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn announce(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Json(body): Json<AnnounceBody>,
) -> AppResult<ApiResponse<Announced>> {
    let message = body.message.trim().to_owned();
    if message.is_empty() || message.chars().count() > 500 {
        return Err(AppError::field("message", "Between 1 and 500 characters."));
    }
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, id).await?;
    row.require_role(&me, PartyRole::Cohost)?;
    // Under the party's row lock: two at once cannot both pass.
    let recent = sqlx::query_scalar!(
        r#"SELECT EXTRACT(EPOCH FROM (created_at + interval '1 minute' - now()))::float8 AS "wait!"
           FROM domain_events
           WHERE kind = 'party.announcement' AND payload->>'party_id' = $1::uuid::text
             AND created_at > now() - interval '1 minute'
           ORDER BY created_at DESC LIMIT 1"#,
        row.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(wait) = recent {
        return Err(AppError::RateLimited {
            retry_after: std::time::Duration::from_secs_f64(wait.max(1.0)),
        });
    }
    let audience = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM party_members m WHERE party_id = $1 AND user_id <> $2
             AND NOT blocked_between(m.user_id, $2)"#,
        row.id,
        me.id
    )
    .fetch_one(&mut *tx)
    .await?;
    let event = Uuid::now_v7();
    let ob = wp_core::events::emit_with_id(
        &mut tx,
        event,
        "party.announcement",
        Some(me.id),
        None,
        json!({ "party_id": row.id, "title": row.title, "message": message }),
    )
    .await?;
    tx.commit().await?;
    state.relay(&[ob]).await;
    Ok(ApiResponse::ok(Announced {
        id: event,
        audience,
    }))
}

// ---- chat -------------------------------------------------------------------------
