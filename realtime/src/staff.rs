//! The staff socket: `GET /ws/admin/?token=...` (or `?ticket=`), for moderators and
//! admins ([`live::READERS`]; anyone else gets 403 before the upgrade).
//!
//! It streams the live figures of `GET /api/analytics/real-time/` as `analytics_live`
//! frames (the same `data`): the first at once, then one every `ADMIN_LIVE_EVERY_MS`
//! (default 5 s). A node reads the figures once per interval for all its staff sockets,
//! and not at all while it has none; a socket that opens gets the last read if it is
//! fresh, else the read its opening starts. A read that fails or is not answered within
//! the interval (at least 5 s, at most `CLICKHOUSE_TIMEOUT_SECS`) sends an `error`
//! frame `analytics_unavailable` instead, and the socket stays open: the next interval
//! tries again.
//!
//! Like every socket of its user it is bound to the session (closed with 4001 at
//! logout, revocation, suspension, deletion, token expiry) and carries the user's
//! `notification` frames. A role change re-checks the user's sockets on every node
//! (`notify::sessions_changed`): one whose user is no longer staff closes with 4003
//! `not_staff`. The client may send `ping` (answered `pong`) and `auth` (a fresh token
//! of the same session).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::{
        RawQuery, State, WebSocketUpgrade,
        ws::{Utf8Bytes, WebSocket, rejection::WebSocketUpgradeRejection},
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
        Bucket, Ended, FRAMES_BURST, FRAMES_PER_SEC, Lease, PingOnly, SocketQueue,
        open_user_socket, pump, user_kill_message,
    },
    hub::{ConnHandle, deliver, encode, subscribed},
    refusal::Refusal,
};

/// `GET /ws/admin/?token=...`: 401 without a good token, 403 for a user who is not
/// staff, both before the upgrade.
pub async fn upgrade(
    State(rt): State<Arc<Realtime>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let staff = |me: &Actor| {
        if me.role < live::READERS {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "The staff socket is for moderators and admins.",
            ));
        }
        Ok(())
    };
    open_user_socket(rt, query, headers, ws, staff, run).await
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
    // In the feed before anything is read: a role change from now on finds it
    // (`Feed::check_role`), and a read in flight delivers to it too.
    rt.staff.add(conn, handle.clone());
    let ended = if kill.token.is_cancelled() {
        Ended::killed(&mut socket, &mut rx, &kill, user_kill_message).await
    } else {
        // A role change between the token's check and the registration above was
        // published to nobody: the role is read again now that it would be heard.
        still_staff(&rt, &me, &kill).await;
        // The figures come through the socket's queue like every later frame: the last
        // read if it is fresh, else the read this starts (or the one in flight).
        match rt.staff.fresh(rt.settings.admin_live_every) {
            Some(text) => {
                let _ = handle.tx.try_send(text);
            }
            None => rt.staff.refresh(&rt),
        }
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
    };
    rt.staff.remove(conn);
    rt.hub.remove_user_socket(me.id, conn, &rt.subscriptions);
    ended.linger(&mut socket, rt.settings.close_linger).await;
}

/// Closes the socket (`not_staff`, or why the session no longer holds) unless its
/// session still authenticates as staff. A database error closes nothing.
async fn still_staff(rt: &Realtime, me: &Actor, kill: &crate::hub::Kill) {
    match wp_core::account::authenticate(&rt.ctx.db, me.id, me.session_id).await {
        Ok(actor) if actor.role >= live::READERS => {}
        Ok(_) => {
            kill.kill("not_staff");
        }
        Err(
            e @ (wp_core::account::AuthError::Db(_) | wp_core::account::AuthError::Internal(_)),
        ) => tracing::warn!(error = %e, user = %me.id, "staff socket: role not re-checked"),
        Err(e) => {
            kill.kill(e.code());
        }
    }
}

/// A node's staff sockets and the last figures read for them.
#[derive(Default)]
pub struct Feed {
    sockets: Mutex<HashMap<u64, ConnHandle>>,
    /// The last frame and when its read finished.
    last: Mutex<Option<(tokio::time::Instant, Utf8Bytes)>>,
    /// A read is in flight: it delivers to every socket registered when it ends, so
    /// nobody starts a second one.
    reading: AtomicBool,
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

    /// The last frame, if its read finished within `every`.
    fn fresh(&self, every: Duration) -> Option<Utf8Bytes> {
        lock(&self.last)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < every)
            .map(|(_, text)| text.clone())
    }

    /// Starts a read unless one is in flight; its frame goes to every staff socket of
    /// the node when it ends.
    fn refresh(&self, rt: &Arc<Realtime>) {
        if self.reading.swap(true, Ordering::AcqRel) {
            return;
        }
        let rt = rt.clone();
        tokio::spawn(async move {
            let text = read(&rt).await;
            *lock(&rt.staff.last) = Some((tokio::time::Instant::now(), text.clone()));
            rt.staff.reading.store(false, Ordering::Release);
            deliver(&rt.hub.stats, &text, lock(&rt.staff.sockets).iter());
        });
    }
}

/// How long one read may take: the interval, at least 5 s (a loaded ClickHouse may take
/// seconds), and never more than `CLICKHOUSE_TIMEOUT_SECS`. A late read is an
/// `analytics_unavailable` frame, so a hung ClickHouse still gives the sockets a frame
/// every interval of 5 s or more.
fn read_deadline(rt: &Realtime) -> Duration {
    rt.settings
        .admin_live_every
        .max(Duration::from_secs(5))
        .min(rt.ctx.config.clickhouse_timeout)
}

/// Reads the figures into an `analytics_live` frame, or an `analytics_unavailable`
/// error frame.
async fn read(rt: &Realtime) -> Utf8Bytes {
    let mut redis = rt.ctx.redis.clone();
    let read = live::read(
        &rt.ctx.db,
        &mut redis,
        &rt.ctx.config.redis_prefix,
        &rt.ctx.clickhouse,
        chrono::Utc::now(),
    );
    let frame = match tokio::time::timeout(read_deadline(rt), read).await {
        Ok(Ok(figures)) => match serde_json::to_value(&figures) {
            Ok(data) => Frame::server("analytics_live", data),
            Err(e) => unavailable(&e),
        },
        Ok(Err(e)) => unavailable(&e),
        Err(_) => unavailable(&"no answer within the interval"),
    };
    encode(&frame)
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

/// The node's feed task: every `admin_live_every` (100 ms at the least), the figures
/// to its staff sockets, unless a socket that opened has just had them read.
pub(crate) async fn feed(rt: Weak<Realtime>, every: Duration) {
    let every = every.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        if !rt.staff.is_empty() && rt.staff.fresh(every / 2).is_none() {
            rt.staff.refresh(&rt);
        }
    }
}
