//! Chat history (cursor pagination), edit and delete; sending is on the socket.

use crate::extract::Ids;
use axum::{extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use wp_core::party::chat::{self, MessageRow};

use super::*;
use crate::{
    extract::{Json, Query},
    response::{ApiResponse, CursorPage, CursorParams, Envelope, encode_cursor},
};

#[derive(Debug, Serialize, Deserialize)]
struct MessageCursor {
    t: DateTime<Utc>,
    id: Uuid,
}

/// Chat history, newest first (cursor pagination). Members and staff.
#[utoipa::path(get, path = "/parties/{id}/messages/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), CursorParams),
    responses((status = 200, body = inline(Envelope<CursorPage<ChatMessage>>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn messages(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
    Query(q): Query<CursorParams>,
) -> AppResult<ApiResponse<CursorPage<ChatMessage>>> {
    let (pos, size) = q.validate::<MessageCursor>()?;
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, id).await?;
    if !me.is_staff() {
        row.member_role()?;
    }
    let rows = chat::history(
        &mut conn,
        row.id,
        pos.as_ref().map(|p| (p.t, p.id)),
        i64::from(size) + 1,
    )
    .await?;
    let more = rows.len() > size as usize;
    let results: Vec<ChatMessage> = rows.into_iter().take(size as usize).collect();
    let next = more.then(|| results.last()).flatten().map(|m| {
        encode_cursor(&MessageCursor {
            t: m.created_at,
            id: m.id,
        })
    });
    Ok(ApiResponse::ok(CursorPage {
        results,
        next,
        previous: None,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub content: String,
}

async fn load_message(conn: &mut PgConnection, party: Uuid, id: Uuid) -> AppResult<MessageRow> {
    chat::find(conn, party, id)
        .await?
        .ok_or_else(AppError::not_found)
}

/// Edits one's own message; sockets get `chat_message_updated`.
#[utoipa::path(patch, path = "/parties/{id}/messages/{message_id}/", tag = "parties", security(("bearer" = [])), request_body = EditMessage,
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<ChatMessage>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn edit_message(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, message_id)): Ids<(Uuid, Uuid)>,
    Json(body): Json<EditMessage>,
) -> AppResult<ApiResponse<ChatMessage>> {
    let content = chat::check_message(&body.content).map_err(|m| AppError::field("content", m))?;
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, id).await?;
    row.member_role()?;
    let msg = load_message(&mut tx, row.id, message_id).await?;
    if msg.user_id != me.id {
        return Err(AppError::forbidden(
            "permission_denied",
            "Only the author may edit a message.",
        ));
    }
    let updated_at = chat::edit(&mut tx, msg.id, &content).await?;
    tx.commit().await?;
    let out = ChatMessage::from(MessageRow {
        content,
        is_edited: true,
        updated_at,
        ..msg
    });
    notify(
        &state,
        row.id,
        bus(PartyEvent::ChatMessageUpdated(out.clone())),
    )
    .await;
    Ok(ApiResponse::ok(out))
}

/// Deletes a message: the author, the host, a co-host or staff. Sockets get
/// `chat_message_deleted`.
#[utoipa::path(delete, path = "/parties/{id}/messages/{message_id}/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete_message(
    State(state): State<AppState>,
    me: AuthUser,
    Ids((id, message_id)): Ids<(Uuid, Uuid)>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, id).await?;
    let msg = load_message(&mut tx, row.id, message_id).await?;
    if msg.user_id != me.id {
        row.require_role(&me, PartyRole::Cohost)?;
    }
    chat::delete(&mut tx, msg.id).await?;
    tx.commit().await?;
    notify(
        &state,
        row.id,
        bus(PartyEvent::ChatMessageDeleted {
            id: msg.id,
            by: user_ref(&me),
        }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
