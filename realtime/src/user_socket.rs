//! The notification socket: `GET /ws/notifications/?token=...`.
//!
//! A signed-in client keeps one open (outside any party) to hear of new notifications
//! as they are written: the first frame is `notifications_state` (the unread count),
//! then a `notification` frame for each new in-app notification. Party sockets get the
//! same `notification` frames. The frames come from the notify worker through the
//! user's Redis channel, so they reach the user on whichever node. The client may send
//! `ping` (answered `pong`); the socket closes after `idle_timeout` without a frame.

use std::sync::Arc;

use axum::{
    extract::{
        RawQuery, State, WebSocketUpgrade,
        ws::{Message, WebSocket, rejection::WebSocketUpgradeRejection},
    },
    http::HeaderMap,
    response::Response,
};
use serde_json::json;
use wp_core::account::Actor;
use wp_shared::frame::Frame;

use crate::{
    Realtime,
    conn::{
        Bucket, Ended, FRAMES_BURST, FRAMES_PER_SEC, Lease, PingOnly, SocketQueue, closed,
        open_user_socket, pump, send_close, user_kill_message,
    },
    hub::{encode, subscribed},
};

/// `GET /ws/notifications/?token=...`: 401 for a bad or missing token, before the
/// upgrade.
pub async fn upgrade(
    State(rt): State<Arc<Realtime>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    open_user_socket(rt, query, headers, ws, |_| Ok(()), run).await
}

async fn run(rt: Arc<Realtime>, mut socket: WebSocket, me: Actor, mut lease: Lease) {
    let SocketQueue {
        conn,
        handle,
        mut rx,
        kill,
    } = SocketQueue::new(&rt, &me);
    // Subscribed before the unread count is read, so nothing falls between the two.
    subscribed(
        rt.hub
            .add_user_socket(me.id, conn, handle, &rt.subscriptions),
    )
    .await;
    let ended = if kill.token.is_cancelled() {
        // Killed before it opened (the node is stopping).
        Ended::killed(&mut socket, &mut rx, &kill, user_kill_message).await
    } else {
        match wp_core::notify::unread(&rt.ctx.db, me.id).await {
            Ok(unread) => {
                let first = Frame::server("notifications_state", json!({ "unread_count": unread }));
                let sent = tokio::time::timeout(
                    crate::conn::WRITE_DEADLINE,
                    socket.send(Message::Text(encode(&first))),
                )
                .await;
                if matches!(sent, Ok(Ok(()))) {
                    let mut handler = PingOnly {
                        frames: Bucket::new(FRAMES_PER_SEC, FRAMES_BURST),
                    };
                    pump(
                        &mut socket,
                        &mut rx,
                        &kill,
                        user_kill_message,
                        &mut lease,
                        &mut handler,
                        &rt.hub.stats,
                        None,
                    )
                    .await
                } else {
                    Ended::Gone
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "notification socket could not open");
                closed(
                    send_close(
                        &mut socket,
                        "unavailable",
                        "Notifications could not be loaded; reconnect.",
                    )
                    .await,
                )
            }
        }
    };
    rt.hub.remove_user_socket(me.id, conn, &rt.subscriptions);
    ended.linger(&mut socket, rt.settings.close_linger).await;
}
