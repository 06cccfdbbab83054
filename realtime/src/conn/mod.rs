//! What every socket of a node has in common: the limits, authentication before the
//! upgrade, the frame helpers, and the pump that runs an open socket (sending and
//! receiving side by side).

use std::time::Instant;

use axum::{
    extract::ws::{
        CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
    },
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;
use wp_core::account::{Actor, AuthError, authenticate_token};
use wp_shared::frame::Frame;

use crate::{
    Realtime,
    hub::{ConnHandle, Kill, encode},
    refusal::Refusal,
};

/// Frames a client may send per second, sustained, and in a burst (all types).
pub(crate) const FRAMES_PER_SEC: f64 = 30.0;
pub(crate) const FRAMES_BURST: f64 = 60.0;
/// Largest WebSocket message read at all; bigger ones close the socket (1009).
/// Between `MAX_FRAME_BYTES` and this, the frame gets `frame_too_large`.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// Access token (browsers cannot set headers on a WebSocket). Kept for
    /// compatibility; a `ticket` keeps the token out of URLs.
    pub token: Option<String>,
    /// A one-time ticket from `POST /api/auth/ws-ticket/`.
    pub ticket: Option<String>,
    /// The last chat message the client saw: the snapshot then carries what came after.
    pub last_message_id: Option<Uuid>,
}

/// The party time (Unix ms): this node's clock corrected to the deployment's
/// reference ([`crate::clock`]).
pub(crate) fn now_ms() -> i64 {
    crate::clock::CLOCK.now_ms()
}

/// `GET` of a user's socket (notifications, staff): the caller is authenticated (401)
/// and passes `check` (its own refusal, say 403) before the upgrade; `run` then serves
/// the open socket.
pub(crate) async fn open_user_socket<F, Fut>(
    rt: Arc<Realtime>,
    query: Option<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    check: impl FnOnce(&Actor) -> Result<(), Refusal>,
    run: F,
) -> Response
where
    F: FnOnce(Arc<Realtime>, WebSocket, Actor, Lease) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let authorized = async {
        let q: WsQuery = crate::refusal::parse_query(query.as_deref())?;
        let (me, lease) = caller(&rt, &q, &headers).await?;
        check(&me)?;
        Ok::<_, Refusal>((me, lease))
    };
    match authorized.await {
        Err(e) => e.into_response_for(&headers),
        Ok((me, lease)) => accept(&rt.clone(), ws, &headers, move |socket| {
            run(rt, socket, me, lease)
        }),
    }
}

/// What the last `error` frame of a socket closed with `reason` says, for the reasons
/// every kind of socket shares (None for a kind's own reasons).
pub(crate) fn common_kill_message(reason: &str) -> Option<&'static str> {
    match reason {
        "slow_consumer" => Some("This connection could not keep up and was closed; reconnect."),
        "server_restart" => Some("This server is restarting; reconnect."),
        _ => None,
    }
}

/// The last `error` frame's message of a user's socket (notifications, staff).
pub(crate) fn user_kill_message(reason: &str) -> &'static str {
    common_kill_message(reason).unwrap_or(match reason {
        "not_staff" => "This account is no longer staff.",
        _ => "This connection was closed.",
    })
}

/// Upgrades an authorised request (400 `websocket_required` for plain HTTP), with the
/// socket limits every socket of a node has.
///
/// The socket's task is tracked by the node ([`Realtime::drain`]): a node that stops
/// waits for its sockets to close (and for their clients to hear why).
pub(crate) fn accept<F, Fut>(
    rt: &Realtime,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
    run: F,
) -> Response
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Counted from now, not from when the upgraded task starts: a node that stops
    // between the two still waits for this socket.
    let tracked = rt.sockets.token();
    match ws {
        Err(e) => Refusal::new(
            StatusCode::BAD_REQUEST,
            "websocket_required",
            format!("This endpoint speaks WebSocket only: {e}"),
        )
        .into_response_for(headers),
        Ok(ws) => ws
            .read_buffer_size(4096)
            .write_buffer_size(0)
            .max_message_size(MAX_MESSAGE_BYTES)
            .max_frame_size(MAX_MESSAGE_BYTES)
            .on_upgrade(move |socket| async move {
                run(socket).await;
                drop(tracked);
            }),
    }
}

/// The caller of a socket (a one-time `?ticket=`, or the access token from `?token=` or
/// the header) and the socket's lease: the session it runs under, until the token
/// expires (a ticket: an access token's lifetime from now).
pub(crate) async fn caller(
    rt: &Arc<Realtime>,
    q: &WsQuery,
    headers: &HeaderMap,
) -> Result<(Actor, Lease), Refusal> {
    let (token, ticket) = (q.token.as_deref(), q.ticket.as_deref());
    let (me, expires_at) = match (ticket, token) {
        (Some(ticket), _) => redeem_ticket(rt, ticket).await?,
        (None, token) => {
            let header_token = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let token = token.or(header_token).ok_or_else(|| {
                Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "not_authenticated",
                    "Pass a ticket (POST /api/auth/ws-ticket/) as ?ticket=, or the access token as ?token=.",
                )
            })?;
            authenticate_lease(rt, token).await?
        }
    };
    let lease = Lease {
        rt: rt.clone(),
        user: me.id,
        session: me.session_id,
        expires_at,
        renewals: Bucket::new(1.0, 3.0),
    };
    Ok((me, lease))
}

/// A ticket's user and session, if the ticket is good and the session live; the socket
/// then runs for an access token's lifetime from now.
async fn redeem_ticket(rt: &Realtime, ticket: &str) -> Result<(Actor, i64), Refusal> {
    let mut redis = rt.ctx.redis.clone();
    let found = wp_core::account::tickets::redeem(&mut redis, &rt.ctx.config.redis_prefix, ticket)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "socket ticket not read");
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "A required service (Redis) is unavailable. Try again shortly.",
            )
        })?;
    let (user, session) = found.ok_or_else(|| {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            "invalid_ticket",
            "The ticket is unknown, used or expired: ask for a new one.",
        )
    })?;
    let me = wp_core::account::authenticate(&rt.ctx.db, user, session).await?;
    let ttl = i64::try_from(rt.ctx.config.access_token_ttl.as_millis()).unwrap_or(i64::MAX);
    Ok((me, now_ms().saturating_add(ttl)))
}

async fn authenticate_lease(rt: &Realtime, token: &str) -> Result<(Actor, i64), AuthError> {
    authenticate_token(&rt.ctx.db, &rt.ctx.config, token).await
}

/// What a socket runs under: its user's session, until the access token it was opened
/// with (or last renewed with, by an `auth` frame) expires. The node's ticker closes the
/// socket with `token_expired` (4001) then (within its half-second tick); when the session ends sooner (logout, revocation, a new
/// password, suspension, deletion) the node closes it at once (`crate::bus`).
pub(crate) struct Lease {
    rt: Arc<Realtime>,
    user: Uuid,
    session: Uuid,
    /// Unix ms.
    expires_at: i64,
    renewals: Bucket,
}

/// What [`pump`] needs of a socket's lease: when it ends, and how an `auth` frame moves
/// that.
pub(crate) trait Renewal: Send {
    /// Unix ms.
    fn expires_at(&self) -> i64;
    /// Handles an `auth` frame; the reply for the socket.
    fn renew(&mut self, text: &str) -> impl Future<Output = Frame> + Send;
}

impl Renewal for Lease {
    fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Handles an `auth` frame (`{"type":"auth","data":{"token":"..."}}`): a fresh access
    /// token of the same session moves the expiry (`auth_ok` with `expires_at`).
    async fn renew(&mut self, text: &str) -> Frame {
        self.renew_unnamed(text).await.in_reply_to("auth")
    }
}

/// Whether `text` is an `auth` frame (the cheap test first: most frames are not).
fn is_auth(text: &str) -> bool {
    text.contains("\"auth\"") && Frame::parse(text).is_ok_and(|f| f.kind == "auth")
}

impl Lease {
    async fn renew_unnamed(&mut self, text: &str) -> Frame {
        let frame = match Frame::parse(text) {
            Ok(f) => f,
            Err(e) => return e,
        };
        if !self.renewals.take() {
            return err("rate_limited", "Too many `auth` frames; slow down.");
        }
        #[derive(Deserialize)]
        struct In {
            token: String,
        }
        let d: In = match data(&frame.data) {
            Ok(d) => d,
            Err(e) => return e,
        };
        match authenticate_lease(&self.rt, d.token.trim()).await {
            Ok((me, expires_at)) if me.id == self.user && me.session_id == self.session => {
                self.expires_at = expires_at;
                Frame::server("auth_ok", json!({ "expires_at": expires_at }))
            }
            Ok(_) => err(
                "invalid_token",
                "That token is of another session; open a new socket with it.",
            ),
            Err(e) => err(e.code(), e.message()),
        }
    }
}

/// A token bucket.
pub(crate) struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Self::new_at(rate, burst, Instant::now())
    }
    fn new_at(rate: f64, burst: f64, at: Instant) -> Self {
        Self {
            tokens: burst,
            rate,
            burst,
            at,
        }
    }
    pub(crate) fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }
    /// Takes a token at `now` (the clock is the caller's, so tests need no sleeps).
    fn take_at(&mut self, now: Instant) -> bool {
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub(crate) fn err(code: &str, message: impl AsRef<str>) -> Frame {
    Frame::error(code, message.as_ref())
}

/// Parses a frame's `data` into `T`; the error frame names the field at fault.
pub(crate) fn data<T: DeserializeOwned>(value: &Value) -> Result<T, Frame> {
    let v = if value.is_null() {
        json!({})
    } else {
        value.clone()
    };
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "data".to_owned()
        } else {
            format!("data.{path}")
        };
        err("invalid_data", format!("{field}: {}", e.inner()))
    })
}

/// What the last `error` frame says when the node closes a socket because its lease
/// ended or its client fell silent; None for other reasons (each socket kind words
/// those).
pub(crate) fn closing_message(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "token_expired" => {
            "The access token expired: reconnect with a fresh one (or send `auth` before it expires)."
        }
        "session_revoked" => "This session was signed out; sign in again.",
        "account_suspended" => "This account is suspended.",
        "account_deleted" => "This account was deleted.",
        "idle_timeout" => "Nothing was received for too long.",
        _ => return None,
    })
}

pub(crate) fn close_code(reason: &str) -> u16 {
    match reason {
        "slow_consumer" => 4008,
        "token_expired" | "session_revoked" | "account_suspended" | "account_deleted" => 4001,
        "kicked" | "banned" | "left" | "not_a_member" | "not_staff" => 4003,
        "party_ended" => 4004,
        "idle_timeout" => 4000,
        "server_restart" => 1012,
        "unavailable" => 1011,
        _ => 1000,
    }
}

/// How long a closed socket waits for the client's close frame by default
/// ([`crate::Settings::close_linger`]; as long as any write may take). Dropping the TCP connection while the client's frames (a pong, a chat
/// message in flight) sit unread makes the kernel reset it, and a client that receives
/// the reset before it has read our close frame loses it: it sees "connection reset"
/// instead of the code that says why (and whether to reconnect). A client that is
/// still reading what was queued before the close (a slow consumer draining its
/// buffers) needs that long; a well-behaved one answers within a round trip.
pub const CLOSE_LINGER: std::time::Duration = WRITE_DEADLINE;

/// Sends the `error` frame naming why the socket closes, then the close frame, within
/// [`WRITE_DEADLINE`]. True when the close frame went out (then [`linger`]).
pub(crate) async fn send_close<S>(socket: &mut S, reason: &str, message: &str) -> bool
where
    S: Sink<Message> + Unpin,
{
    send_close_by(WRITE_DEADLINE, socket, reason, message).await
}

async fn send_close_by<S>(
    deadline: std::time::Duration,
    socket: &mut S,
    reason: &str,
    message: &str,
) -> bool
where
    S: Sink<Message> + Unpin,
{
    // A client that stopped reading must not keep this task (and its socket) forever.
    let sent = tokio::time::timeout(deadline, async {
        let _ = socket
            .feed(Message::Text(encode(&err(reason, message))))
            .await;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code(reason),
                reason: reason.into(),
            })))
            .await
            .is_ok()
    })
    .await;
    matches!(sent, Ok(true))
}

/// After our close frame: reads (and drops) what the client still sends until its
/// close answers ours, for up to `within` ([`CLOSE_LINGER`] unless the node's settings
/// say otherwise).
pub(crate) async fn linger<S>(socket: &mut S, within: std::time::Duration)
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(msg)) = socket.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How long one write to a socket may take. A client whose TCP window stays shut that
/// long (it stopped reading, or its network died without a reset) is dropped; without
/// a deadline its task would wait on the write forever and never see the kill.
pub(crate) const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A new socket's queue: its id on this node, the hub's handle on it, the receiving end
/// (the pump's), and its kill switch.
pub(crate) struct SocketQueue {
    pub conn: u64,
    pub handle: ConnHandle,
    pub rx: mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
    pub kill: std::sync::Arc<Kill>,
}

impl SocketQueue {
    pub(crate) fn new(rt: &Realtime, me: &Actor) -> Self {
        let (tx, rx) = mpsc::channel(rt.settings.socket_queue);
        let kill = std::sync::Arc::new(Kill::default());
        Self {
            conn: rt.conn_id(),
            handle: ConnHandle {
                user: me.id,
                session: me.session_id,
                tx,
                kill: kill.clone(),
                presence: std::sync::Arc::default(),
            },
            rx,
            kill,
        }
    }
}

/// The client frames of a socket that only listens (notification and staff sockets):
/// `ping`, answered `pong` (and `auth`, which [`pump`] handles).
pub(crate) struct PingOnly {
    pub frames: Bucket,
}

impl Handler for PingOnly {
    async fn on_text(&mut self, text: &str, _received: i64) -> Vec<Frame> {
        if !self.frames.take() {
            return vec![err("rate_limited", "Too many frames; slow down.")];
        }
        match Frame::parse(text) {
            Err(e) => vec![e],
            Ok(f) if f.kind == "ping" => vec![Frame::server("pong", json!({}))],
            Ok(f) => vec![
                err(
                    "unknown_type",
                    format!(
                        "`{}` is not a frame of this socket (it takes `ping`).",
                        f.kind.chars().take(64).collect::<String>()
                    ),
                )
                .in_reply_to(&f.kind),
            ],
        }
    }
}

/// What a socket does with a client's text frame: the frames to send back to it alone.
pub(crate) trait Handler: Send {
    fn on_text(&mut self, text: &str, received: i64) -> impl Future<Output = Vec<Frame>> + Send;
}

/// Writes what is queued for a socket: the first frame, then what else is queued (up
/// to 64), in one flush, within [`WRITE_DEADLINE`]. False when the socket is gone or
/// too slow.
async fn write_queued<S: Sink<Message> + Unpin>(
    socket: &mut S,
    first: axum::extract::ws::Utf8Bytes,
    rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
) -> bool {
    write_queued_by(WRITE_DEADLINE, socket, first, rx).await
}

async fn write_queued_by<S: Sink<Message> + Unpin>(
    deadline: std::time::Duration,
    socket: &mut S,
    first: axum::extract::ws::Utf8Bytes,
    rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
) -> bool {
    tokio::time::timeout(deadline, write_batch(socket, first, rx))
        .await
        .unwrap_or(false)
}

async fn write_batch<S: Sink<Message> + Unpin>(
    socket: &mut S,
    first: axum::extract::ws::Utf8Bytes,
    rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
) -> bool {
    if socket.feed(Message::Text(first)).await.is_err() {
        return false;
    }
    for _ in 0..64 {
        match rx.try_recv() {
            Ok(text) => {
                if socket.feed(Message::Text(text)).await.is_err() {
                    return false;
                }
            }
            Err(_) => break,
        }
    }
    socket.flush().await.is_ok()
}

/// Closes a killed socket: what was queued for it (a `removed` frame) goes out first,
/// unless it was too slow to take it. True when the close frame went out.
async fn close_killed<S>(
    socket: &mut S,
    rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
    kill: &Kill,
    message: fn(&str) -> &'static str,
) -> bool
where
    S: Sink<Message> + Unpin,
{
    // A stopping node gives each write less time: the socket must leave its room
    // within the node's drain ([`crate::DRAIN_SOCKETS`]).
    let deadline = if kill.reason() == "server_restart" {
        STOPPING_WRITE_DEADLINE
    } else {
        WRITE_DEADLINE
    };
    if kill.reason() != "slow_consumer" {
        let _ = tokio::time::timeout(deadline, async {
            while let Ok(text) = rx.try_recv() {
                let _ = socket.feed(Message::Text(text)).await;
            }
        })
        .await;
    }
    let reason = kill.reason().to_owned();
    let text = closing_message(&reason).unwrap_or_else(|| message(&reason));
    send_close_by(deadline, socket, &reason, text).await
}

/// How long each of a stopping node's two closing writes (what was queued, then the
/// close) may take: both within a third of [`crate::DRAIN_SOCKETS`], so a slow client's
/// socket still leaves its room (its presence, `user_left`) before the node exits.
pub(crate) const STOPPING_WRITE_DEADLINE: std::time::Duration =
    std::time::Duration::from_millis(1_500);

/// How often a party socket is pinged (WebSocket Ping, which every client answers by
/// itself) to measure its round trip.
pub(crate) const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// The round trip a socket reports is the longest of its last this many pongs: jitter
/// must fit in the margin too.
const RTT_SAMPLES: usize = 4;

/// Round trips from the pongs of one socket.
struct RttMeter {
    origin: Instant,
    samples: [u32; RTT_SAMPLES],
    next: usize,
}

impl RttMeter {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            samples: [0; RTT_SAMPLES],
            next: 0,
        }
    }

    /// A ping's payload: when it was sent (ms since the socket opened).
    fn ping(&self) -> axum::body::Bytes {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        axum::body::Bytes::copy_from_slice(&ms.to_be_bytes())
    }

    /// A pong's round trip, the longest of the recent ones; None for a pong that
    /// answers no ping of ours (a client may send unsolicited pongs).
    fn pong(&mut self, payload: &[u8]) -> Option<u32> {
        let sent = u64::from_be_bytes(payload.try_into().ok()?);
        let now = u64::try_from(self.origin.elapsed().as_millis()).ok()?;
        let rtt = u32::try_from(now.checked_sub(sent)?).ok()?;
        if rtt > 60_000 {
            return None;
        }
        self.samples[self.next % RTT_SAMPLES] = rtt.max(1);
        self.next += 1;
        self.samples.iter().copied().max()
    }
}

/// Runs an open socket until it closes: writes what is queued for it (flushing what
/// else is queued in one go), hands each client text frame to the handler and sends
/// its replies, closes with `error` + close code when killed (after writing what was
/// queued, unless it was too slow; the node's ticker kills it when its client falls
/// silent for `idle_timeout` or its lease ends).
///
/// While a frame is being handled (a chat message waiting on PostgreSQL, say), what is
/// queued for the socket keeps going out: the handler runs beside the writer, and the
/// next client frame is read once it is done (frames of one client are handled in
/// order, and a client that floods frames waits on its own socket, never the room). A
/// kill during the handling drops the handler's future (and what it holds: a
/// transaction, a row lock, a pool connection) before the socket is closed.
///
/// Returns [`Ended::Closed`] when the node closed the socket: the caller leaves the room
/// (so the others hear of it at once), then [`linger`]s for the client's close.
#[allow(
    clippy::too_many_arguments,
    reason = "the socket's parts, each owned by a different caller"
)]
pub(crate) async fn pump<S>(
    socket: &mut S,
    rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
    kill: &Kill,
    message: fn(&str) -> &'static str,
    lease: &mut impl Renewal,
    handler: &mut impl Handler,
    stats: &crate::hub::Stats,
    ping_every: Option<std::time::Duration>,
) -> Ended
where
    S: Sink<Message> + Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    // When nothing at all (a frame, a ping) arrives for `idle_timeout`, or the lease runs
    // out, the node's ticker kills the socket (`Hub::sweep`). Pongs to the node's own
    // pings do not count: a client's WebSocket stack answers them by itself.
    kill.set_expiry(lease.expires_at());
    let mut meter = RttMeter::new();
    let mut pings = ping_every.map(|every| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now(), every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let incoming = tokio::select! {
            biased;
            () = kill.token.cancelled() => return Ended::killed(socket, rx, kill, message).await,
            out = rx.recv() => {
                let Some(text) = out else { return Ended::Gone };
                if !write_queued(socket, text, rx).await {
                    return Ended::Gone;
                }
                continue;
            }
            _ = async { pings.as_mut().expect("pinging").tick().await }, if pings.is_some() => {
                let sent = tokio::time::timeout(
                    WRITE_DEADLINE,
                    socket.send(Message::Ping(meter.ping())),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    return Ended::Gone;
                }
                continue;
            }
            incoming = socket.next() => incoming,
        };
        let msg = match incoming {
            None | Some(Err(_)) => return Ended::Gone,
            Some(Ok(msg)) => msg,
        };
        let received = now_ms();
        if let Message::Pong(payload) = &msg {
            if let Some(rtt) = meter.pong(payload) {
                kill.set_rtt(rtt);
            }
            continue;
        }
        kill.seen(received);
        let replies = match msg {
            Message::Text(text) => {
                stats
                    .received
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let handled = {
                    let handling = if is_auth(text.as_str()) {
                        // Boxed: renewing queries the database, and that future must
                        // not make every socket's task larger.
                        futures::future::Either::Left(Box::pin(async {
                            vec![lease.renew(text.as_str()).await]
                        }))
                    } else {
                        futures::future::Either::Right(handler.on_text(text.as_str(), received))
                    };
                    tokio::pin!(handling);
                    loop {
                        tokio::select! {
                            biased;
                            () = kill.token.cancelled() => break Handled::Killed,
                            replies = &mut handling => break Handled::Replies(replies),
                            out = rx.recv() => {
                                let Some(text) = out else { break Handled::Gone };
                                if !write_queued(socket, text, rx).await {
                                    break Handled::Gone;
                                }
                            }
                        }
                    }
                    // The handler's future is dropped here, whatever it held.
                };
                kill.set_expiry(lease.expires_at());
                match handled {
                    Handled::Replies(replies) => replies,
                    Handled::Killed => return Ended::killed(socket, rx, kill, message).await,
                    Handled::Gone => return Ended::Gone,
                }
            }
            Message::Binary(_) => vec![err("binary_not_supported", "Frames are JSON text.")],
            Message::Close(_) => return Ended::Gone,
            Message::Ping(_) | Message::Pong(_) => Vec::new(),
        };
        for reply in replies {
            let sent =
                tokio::time::timeout(WRITE_DEADLINE, socket.send(Message::Text(encode(&reply))))
                    .await;
            if !matches!(sent, Ok(Ok(()))) {
                return Ended::Gone;
            }
        }
    }
}

/// How a client frame's handling ended in [`pump`].
enum Handled {
    Replies(Vec<Frame>),
    Killed,
    Gone,
}

/// How [`pump`] ended.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a closed socket lingers for the client's close once it has left its rooms"]
pub(crate) enum Ended {
    /// The node closed the socket (its close frame went out).
    Closed,
    /// The client closed it, or it broke or was too slow to take the close.
    Gone,
}

/// [`Ended::Closed`] when our close frame went out ([`send_close`]'s answer).
pub(crate) fn closed(sent: bool) -> Ended {
    if sent { Ended::Closed } else { Ended::Gone }
}

impl Ended {
    /// Closes a killed socket ([`close_killed`]).
    pub(crate) async fn killed<S: Sink<Message> + Unpin>(
        socket: &mut S,
        rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
        kill: &Kill,
        message: fn(&str) -> &'static str,
    ) -> Self {
        closed(close_killed(socket, rx, kill, message).await)
    }

    /// Lingers for the client's close when the node closed the socket.
    pub(crate) async fn linger<S>(self, socket: &mut S, within: std::time::Duration)
    where
        S: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        if self == Self::Closed {
            linger(socket, within).await;
        }
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Frame {
    tracing::warn!(error = %e, "party socket frame failed");
    err(
        "internal_error",
        "Something went wrong; nothing was changed. Try again.",
    )
}

#[cfg(test)]
mod tests;
