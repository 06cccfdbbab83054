//! Domain events: what happened that a user should hear of. Recorded in the caller's
//! transaction together with the outbox row that hands them to the notification
//! pipeline (the `notify` queue).

use sqlx::PgConnection;
use uuid::Uuid;

use wp_shared::{jobs::NotifyEvent, outbox};

/// Records `kind` (e.g. `friend_request.received`) by `actor` for `recipient`.
/// Returns the outbox id to relay after commit.
pub async fn emit(
    conn: &mut PgConnection,
    kind: &str,
    actor: Option<Uuid>,
    recipient: Option<Uuid>,
    payload: serde_json::Value,
) -> sqlx::Result<i64> {
    emit_with_id(conn, Uuid::now_v7(), kind, actor, recipient, payload).await
}

/// [`emit`] with the event's id chosen by the caller (a broadcast shares its id).
pub async fn emit_with_id(
    conn: &mut PgConnection,
    id: Uuid,
    kind: &str,
    actor: Option<Uuid>,
    recipient: Option<Uuid>,
    payload: serde_json::Value,
) -> sqlx::Result<i64> {
    sqlx::query!(
        "INSERT INTO domain_events (id, kind, actor_id, recipient_id, payload) VALUES ($1, $2, $3, $4, $5)",
        id,
        kind,
        actor,
        recipient,
        payload
    )
    .execute(&mut *conn)
    .await?;
    outbox::record(conn, &NotifyEvent::new(id)).await
}
