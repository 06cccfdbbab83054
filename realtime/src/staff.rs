//! The staff socket: `GET /ws/admin/?token=...` (or `?ticket=`), for moderators and
//! admins ([`live::READERS`]; anyone else gets 403 before the upgrade).
//!
//! It streams the live figures of `GET /api/analytics/real-time/` as `analytics_live`
//! frames (the same `data`): the first at once, then one every `ADMIN_LIVE_EVERY_MS`
//! (default 5 s). A node reads the figures once per interval for all its staff sockets,
//! and not at all while it has none. A read that fails or runs past
//! `CLICKHOUSE_TIMEOUT_MS` sends an `error` frame `analytics_unavailable` instead, and
//! the socket stays open: the next interval tries again.
//!
//! Like every socket of its user it is bound to the session (closed with 4001 at
//! logout, revocation, suspension, deletion, token expiry) and carries the user's
//! `notification` frames. A role change re-checks the user's sockets on every node
//! (`notify::sessions_changed`): one whose user is no longer staff closes with 4003
//! `not_staff`. The client may send `ping` (answered `pong`) and `auth` (a fresh token
//! of the same session).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use axum::{
    extract::{
        RawQuery, State, WebSocketUpgrade,
        ws::{Message, Utf8Bytes, WebSocket, rejection::WebSocketUpgradeRejection},
    },
    http::{HeaderMap, StatusCode},
    response::Response,
};
use uuid::Uuid;
use wp_core::{
    account::{Actor, Role},
    analytics::live,
};
use wp_shared::frame::Frame;

use crate::{
    Realtime,
    conn::{
        Bucket, Ended, FRAMES_BURST, FRAMES_PER_SEC, Lease, PingOnly, SocketQueue, WRITE_DEADLINE,
        WsQuery, accept, caller, pump,
    },
    hub::{ConnHandle, deliver, encode, subscribed},
    refusal::{Refusal, parse_query},
};

/// `GET /ws/admin/?token=...`: 401 without a good token, 403 for a user who is not
/// staff, both before the upgrade.
pub async fn upgrade(
    State(rt): State<Arc<Realtime>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let authorized = async {
        let q: WsQuery = parse_query(query.as_deref())?;
        let (me, lease) = caller(&rt, &q, &headers).await?;
        if me.role < live::READERS {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "The staff socket is for moderators and admins.",
            ));
        }
        Ok((me, lease))
    };
    match authorized.await {
        Err(e) => e.into_response_for(&headers),
        Ok((me, lease)) => accept(&rt.clone(), ws, &headers, move |socket| {
            run(rt, socket, me, lease)
        }),
    }
}

fn kill_message(reason: &str) -> &'static str {
    match reason {
        "slow_consumer" => "This connection could not keep up and was closed; reconnect.",
        "server_restart" => "This server is restarting; reconnect.",
        "not_staff" => "This account is no longer staff.",
        _ => "This connection was closed.",
    }
}

async fn run(rt: Arc<Realtime>, mut socket: WebSocket, me: Actor, mut lease: Lease) {
    let SocketQueue {
        conn,
        handle,
        mut rx,
        kill,
    } = SocketQueue::new(&rt, &me);
    subscribed(
        rt.hub
            .add_user_socket(me.id, conn, handle.clone(), &rt.subscriptions),
    )
    .await;
    let ended = if kill.token.is_cancelled() {
        Ended::killed(&mut socket, &mut rx, &kill, kill_message).await
    } else {
        // The figures now (the last read if it is fresh), then every interval.
        let first = rt.staff.current(&rt).await;
        rt.staff.add(conn, handle);
        let sent = tokio::time::timeout(WRITE_DEADLINE, socket.send(Message::Text(first))).await;
        if matches!(sent, Ok(Ok(()))) {
            let mut handler = PingOnly {
                frames: Bucket::new(FRAMES_PER_SEC, FRAMES_BURST),
            };
            pump(
                &mut socket,
                &mut rx,
                &kill,
                kill_message,
                &mut lease,
                &mut handler,
                &rt.hub.stats,
                None,
            )
            .await
        } else {
            Ended::Gone
        }
    };
    rt.staff.remove(conn);
    rt.hub.remove_user_socket(me.id, conn, &rt.subscriptions);
    ended.linger(&mut socket, rt.settings.close_linger).await;
}

/// A node's staff sockets and the last figures read for them.
#[derive(Default)]
pub struct Feed {
    sockets: Mutex<HashMap<u64, ConnHandle>>,
    /// The last frame and when it was read.
    last: Mutex<Option<(tokio::time::Instant, Utf8Bytes)>>,
    /// One read at a time: a socket opening while the interval's read runs waits for
    /// it rather than starting its own.
    reading: tokio::sync::Mutex<()>,
}

impl Feed {
    fn add(&self, conn: u64, handle: ConnHandle) {
        lock(&self.sockets).insert(conn, handle);
    }

    fn remove(&self, conn: u64) {
        lock(&self.sockets).remove(&conn);
    }

    /// Staff sockets open on this node.
    pub fn len(&self) -> usize {
        lock(&self.sockets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes `user`'s staff sockets opened with `session` when `role` no longer may
    /// read the figures (called when the user's sessions were checked again).
    pub fn check_role(&self, user: Uuid, session: Uuid, role: Role) {
        if role >= live::READERS {
            return;
        }
        for c in lock(&self.sockets).values() {
            if c.user == user && c.session == session {
                c.kill.kill("not_staff");
            }
        }
    }

    /// The last frame if it was read within the interval, else a fresh one.
    async fn current(&self, rt: &Realtime) -> Utf8Bytes {
        if let Some(text) = self.fresh(rt.settings.admin_live_every) {
            return text;
        }
        let _reading = self.reading.lock().await;
        // Another socket's read may have finished while this one waited.
        if let Some(text) = self.fresh(rt.settings.admin_live_every) {
            return text;
        }
        self.read(rt).await
    }

    fn fresh(&self, every: Duration) -> Option<Utf8Bytes> {
        lock(&self.last)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < every)
            .map(|(_, text)| text.clone())
    }

    /// Reads the figures (under the deadline ClickHouse reads have) into an
    /// `analytics_live` frame, or an `analytics_unavailable` error frame; keeps it.
    async fn read(&self, rt: &Realtime) -> Utf8Bytes {
        let started = tokio::time::Instant::now();
        let mut redis = rt.ctx.redis.clone();
        let read = live::read(
            &rt.ctx.db,
            &mut redis,
            &rt.ctx.config.redis_prefix,
            &rt.ctx.clickhouse,
            chrono::Utc::now(),
        );
        let frame = match tokio::time::timeout(rt.ctx.config.clickhouse_timeout, read).await {
            Ok(Ok(figures)) => match serde_json::to_value(&figures) {
                Ok(data) => Frame::server("analytics_live", data),
                Err(e) => unavailable(&e),
            },
            Ok(Err(e)) => unavailable(&e),
            Err(_) => unavailable(&"no answer within CLICKHOUSE_TIMEOUT_MS"),
        };
        let text = encode(&frame);
        *lock(&self.last) = Some((started, text.clone()));
        text
    }

    /// One interval: the figures to every staff socket of the node.
    async fn tick(&self, rt: &Realtime) {
        if self.is_empty() {
            return;
        }
        let text = {
            let _reading = self.reading.lock().await;
            self.read(rt).await
        };
        deliver(&rt.hub.stats, &text, lock(&self.sockets).iter());
    }
}

fn unavailable(e: &dyn std::fmt::Display) -> Frame {
    tracing::warn!(error = %e, "live figures not read for the staff sockets");
    crate::conn::err(
        "analytics_unavailable",
        "The live figures could not be read; the next interval tries again.",
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The node's feed task: every `admin_live_every`, the figures to its staff sockets.
pub(crate) async fn feed(rt: Weak<Realtime>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        rt.staff.tick(&rt).await;
    }
}
