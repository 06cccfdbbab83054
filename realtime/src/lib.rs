//! Realtime sockets: the party socket `GET /ws/party/{party_id}/?token=...` and the
//! notification socket `GET /ws/notifications/?token=...`.
//!
//! A node keeps the rooms of the sockets connected to it in memory ([`hub`]) and joins
//! the rooms of every node through one Redis pub/sub connection ([`bus`]): a frame is
//! delivered to the local members at once and published on the party's channel for
//! the other nodes. The party's live state (playback, presence, voice, screen share,
//! buffering, reaction counts) lives in Redis, and playback also in PostgreSQL, so a
//! node restart loses nothing (`wp_core::party::live`). The protocol is in
//! `docs/realtime.md` and `docs/asyncapi.yaml`.

pub mod bus;
pub mod clock;
pub mod conn;
pub mod ctx;
pub mod hub;
pub mod party;
pub mod polls;
pub mod presence;
mod publisher;
pub mod refusal;
pub mod staff;
pub mod user_socket;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, routing::get};
use tokio::sync::mpsc;
use uuid::Uuid;
use wp_core::party::{
    events::{BusMsg, PartyEvent},
    live::{self as live, Keys},
};
pub use wp_shared::frame::{Frame, MAX_FRAME_BYTES};

pub use crate::ctx::Ctx;
use crate::hub::Hub;

/// Tunables of a node (defaults suit production; tests shorten some).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Frames queued for one socket before it counts as stuck and is disconnected.
    pub socket_queue: usize,
    /// How often every room gets a `playback_heartbeat`.
    pub heartbeat: Duration,
    /// Chat messages in the snapshot (and at most this many resent on resume).
    pub recent_chat: i64,
    /// A socket that sends nothing (not even a ping) for this long is closed.
    pub idle_timeout: Duration,
    /// Presence changes (`user_joined` / `user_left`) reach a room at most once per
    /// this interval ([`presence`]).
    pub presence_every: Duration,
    /// A poll's counts (`poll_updated`) reach a room at most once per this interval
    /// ([`polls`]).
    pub poll_every: Duration,
    /// How long a socket the node closed waits for the client's close frame, after it
    /// has left its room ([`conn::CLOSE_LINGER`]).
    pub close_linger: Duration,
    /// How often the staff sockets get the live figures ([`staff`]).
    pub admin_live_every: Duration,
}

impl Settings {
    /// The defaults, with the intervals ops may tune (`PRESENCE_EVERY_MS`,
    /// `POLL_UPDATE_EVERY_MS`).
    pub fn from_config(config: &wp_shared::Config) -> Self {
        Self {
            presence_every: config.presence_every,
            poll_every: config.poll_update_every,
            admin_live_every: config.admin_live_every,
            ..Self::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            socket_queue: 256,
            heartbeat: Duration::from_secs(5),
            recent_chat: 50,
            idle_timeout: Duration::from_secs(120),
            presence_every: Duration::from_millis(250),
            poll_every: Duration::from_millis(500),
            close_linger: conn::CLOSE_LINGER,
            admin_live_every: Duration::from_secs(5),
        }
    }
}

/// How long a stopping node waits for its sockets to close ([`Realtime::drain`]); with
/// [`DRAIN_PUBLISH`] and the 5 s `preStop`, within the 20 s the deployment grants
/// (`deploy/k8s/base/realtime.yaml`, checked by `deploy/check-deploy.py`).
pub const DRAIN_SOCKETS: Duration = Duration::from_secs(8);
/// How long a stopping node waits, after its sockets, for what they published.
pub const DRAIN_PUBLISH: Duration = Duration::from_secs(2);

/// One realtime node.
pub struct Realtime {
    pub ctx: Ctx,
    pub hub: Hub,
    /// The staff sockets and their live figures.
    pub staff: staff::Feed,
    /// This node's id (unique per process).
    pub node: String,
    pub settings: Settings,
    subscriptions: mpsc::UnboundedSender<bus::Command>,
    /// The node's publishing task (see [`publisher`]).
    outgoing: mpsc::Sender<publisher::Item>,
    next_conn: AtomicU64,
    started_at: chrono::DateTime<chrono::Utc>,
    /// Every socket's task ([`conn::accept`]), so a stopping node can wait for them.
    sockets: tokio_util::task::TaskTracker,
    /// When [`Realtime::shutdown`] was called: the drain's bounds count from then.
    stopping: std::sync::OnceLock<tokio::time::Instant>,
    stopped: tokio_util::sync::CancellationToken,
}

impl Realtime {
    /// Starts a node: the pub/sub bus, the liveness key and the room ticker. They stop
    /// when the returned handle is dropped... never: they run for the life of the
    /// process (a node is a process).
    pub async fn start(ctx: Ctx, settings: Settings) -> anyhow::Result<Arc<Self>> {
        let node = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()),
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let outgoing = publisher::spawn(ctx.live.clone(), ctx.db.clone());
        let rt = Arc::new(Self {
            ctx,
            hub: Hub::default(),
            staff: staff::Feed::default(),
            node,
            settings,
            subscriptions: tx,
            outgoing,
            next_conn: AtomicU64::new(1),
            started_at: chrono::Utc::now(),
            sockets: tokio_util::task::TaskTracker::new(),
            stopping: std::sync::OnceLock::new(),
            stopped: tokio_util::sync::CancellationToken::new(),
        });
        rt.keep_alive().await?;
        bus::spawn(Arc::downgrade(&rt), rx).await?;
        tokio::spawn(ticker(Arc::downgrade(&rt)));
        tokio::spawn(staff::feed(
            Arc::downgrade(&rt),
            rt.settings.admin_live_every,
        ));
        tracing::info!(node = %rt.node, "realtime node started");
        Ok(rt)
    }

    pub(crate) fn conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn keys(&self, party: Uuid) -> Keys {
        Keys::new(&self.ctx.config.redis_prefix, party)
    }

    /// Refreshes this node's liveness key (presence entries of dead nodes are dropped).
    async fn keep_alive(&self) -> anyhow::Result<()> {
        let mut redis = self.ctx.redis.clone();
        let info = live::NodeInfo {
            node: self.node.clone(),
            sockets: self.hub.sockets() as u64,
            parties: self.hub.rooms().len() as u64,
            started_at: self.started_at,
            seen_at: chrono::Utc::now(),
        };
        live::node_alive(&mut redis, &self.ctx.config.redis_prefix, &info).await
    }

    /// Delivers `event` to the party's local sockets (but `except`) and publishes it
    /// for the other nodes.
    pub async fn emit(&self, party: Uuid, event: impl Into<PartyEvent>, except: Option<u64>) {
        let event = event.into();
        if let Some(room) = self.hub.room(party)
            && room.observe(&event)
        {
            room.fan_out(&event, except, &self.settings);
        }
        self.publish(
            party,
            BusMsg {
                origin: self.node.clone(),
                to_user: None,
                event: Some(event),
                disconnect: None,
            },
        )
        .await;
    }

    /// Delivers `event` to one user's sockets in the party, on whichever node.
    pub async fn emit_to_user(&self, party: Uuid, user: Uuid, event: impl Into<PartyEvent>) {
        let event = event.into();
        if let Some(room) = self.hub.room(party) {
            room.send_to_user(user, &event.frame());
        }
        self.publish(
            party,
            BusMsg {
                origin: self.node.clone(),
                to_user: Some(user),
                event: Some(event),
                disconnect: None,
            },
        )
        .await;
    }

    /// Hands `msg` to the node's publishing task (in order with what the node
    /// published before).
    async fn publish(&self, party: Uuid, msg: BusMsg) {
        let payload = match wp_core::party::events::encode_bus(&msg) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, %party, "a bus message could not be serialised");
                return;
            }
        };
        // A chat message for the whole party confirms its outbox row (one for a single
        // user would not reach the others).
        let confirms = match (&msg.event, msg.to_user) {
            (Some(PartyEvent::ChatMessage(m)), None) => Some(m.id),
            _ => None,
        };
        let out = publisher::Outgoing {
            channel: self.keys(party).channel().to_owned(),
            payload,
            confirms,
        };
        if self
            .outgoing
            .send(publisher::Item::Message(out))
            .await
            .is_err()
        {
            tracing::warn!(%party, "the publishing task has stopped");
        }
    }
}

/// Every half second: per room, a `playback_heartbeat` every `settings.heartbeat` and
/// the end of a buffering wait that ran past its cap; every 2 s the members' round
/// trips ([`report_delays`]); every 5 s the node's liveness and its clock's offset to
/// Redis's ([`clock`]).
async fn ticker(rt: std::sync::Weak<Realtime>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        n += 1;
        if n.is_multiple_of(10)
            && let Err(e) = rt.keep_alive().await
        {
            tracing::warn!(error = %e, "node liveness refresh failed");
        }
        if n % 10 == 1 {
            let mut redis = rt.ctx.redis.clone();
            if let Err(e) = clock::CLOCK.measure(&mut redis).await {
                tracing::debug!(error = %e, "clock offset not measured");
            }
        }
        let now = clock::CLOCK.now_ms();
        let idle_ms = i64::try_from(rt.settings.idle_timeout.as_millis()).unwrap_or(i64::MAX);
        rt.hub.sweep(now, idle_ms);
        if n.is_multiple_of(4)
            && let Err(e) = report_delays(&rt, now).await
        {
            tracing::debug!(error = %e, "member delays not reported");
        }
        for room in rt.hub.rooms() {
            let Some((playback, settings)) = room.cached() else {
                continue;
            };
            if room.heartbeat_due(now, rt.settings.heartbeat) {
                let frame = Frame::server("playback_heartbeat", playback.to_frame_data(now));
                room.broadcast(&frame, None);
            }
            if let Some(since) = playback.waiting_since
                && now - since >= i64::from(settings.buffer_wait_ms)
            {
                party::end_wait(&rt, room.id, "buffer_wait_cap").await;
            }
        }
    }
}

/// Every 2 s: the longest round trip among this node's members of each party, in the
/// party's `:delays` hash, which schedules the party's playback changes
/// (`live::margin_ms`). One pipeline for every room.
async fn report_delays(rt: &Realtime, now: i64) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    let mut any = false;
    for room in rt.hub.rooms() {
        let Some(rtt) = room.max_rtt() else { continue };
        let key = Keys::new(&rt.ctx.config.redis_prefix, room.id).delays();
        pipe.hset(&key, &rt.node, format!("{rtt}:{now}"))
            .ignore()
            .pexpire(&key, 2 * live::DELAY_REPORT_TTL_MS)
            .ignore();
        any = true;
    }
    if !any {
        return Ok(());
    }
    let mut redis = rt.ctx.live.clone();
    pipe.query_async::<()>(&mut redis).await
}

impl Realtime {
    /// Closes every socket of this node (`server_restart`, close code 1012) so clients
    /// reconnect to another node; the party state stays in Redis and PostgreSQL. A
    /// socket that opens after this is closed the same way at once. [`Realtime::drain`]
    /// waits for them to be closed.
    pub fn shutdown(&self) {
        let _ = self.stopping.set(tokio::time::Instant::now());
        self.hub.disconnect_all("server_restart");
        self.sockets.close();
        self.stopped.cancel();
    }

    /// The deadline of the sockets' part of the drain: [`DRAIN_SOCKETS`] after
    /// [`Realtime::shutdown`] (from now if it was not called).
    fn drain_deadline(&self) -> tokio::time::Instant {
        *self.stopping.get_or_init(tokio::time::Instant::now) + DRAIN_SOCKETS
    }

    /// After [`Realtime::shutdown`]: waits until every socket task has ended — its close
    /// frame written, its room left (the departure published) and the client's close
    /// heard — until [`DRAIN_SOCKETS`] after the shutdown, then for what they published to reach
    /// Redis, at most [`DRAIN_PUBLISH`]. A process that returned from `main` without
    /// this would drop its sockets unclosed: clients could see their connection reset
    /// instead of 1012, "reconnect elsewhere", and the rooms on other nodes would not
    /// hear that they left (their presence left behind until the node's liveness key
    /// lapsed). A client too slow to take its close in that time is dropped. False when
    /// something did not end in time.
    pub async fn drain(&self) -> bool {
        self.sockets.close();
        let ended = tokio::time::timeout_at(self.drain_deadline(), self.sockets.wait())
            .await
            .is_ok();
        if !ended {
            tracing::warn!(
                sockets = self.sockets.len(),
                "sockets still open after the drain; dropped"
            );
        }
        // What the closing sockets published (`user_left`, a share stopped) goes out
        // before the process does.
        let published = publisher::flush(&self.outgoing, DRAIN_PUBLISH).await;
        if !published {
            tracing::warn!("the party channels were not all published to before the stop");
        }
        ended && published
    }
}

impl wp_shared::ops::OpsToken for Realtime {
    fn ops_token(&self) -> Option<&str> {
        self.ctx.config.ops_token.as_deref()
    }
}

/// The socket routes `GET /ws/party/{party_id}/`, `GET /ws/notifications/`,
/// `GET /ws/admin/` (staff) and `GET /ws/stats/` (this node's sockets, rooms and delivered frames, for ops and the
/// load tool: on this port only with the ops token, see [`stats_router`]).
pub fn router(rt: Arc<Realtime>) -> Router {
    Router::new()
        .route("/ws/party/{party_id}/", get(party::upgrade))
        .route("/ws/party/{party_id}", get(party::upgrade))
        .route("/ws/notifications/", get(user_socket::upgrade))
        .route("/ws/notifications", get(user_socket::upgrade))
        .route("/ws/admin/", get(staff::upgrade))
        .route("/ws/admin", get(staff::upgrade))
        .route("/ws/stats/", get(stats))
        .with_state(rt)
}

/// `GET /ws/stats/` alone, for the ops address.
pub fn stats_router(rt: Arc<Realtime>) -> Router {
    Router::new().route("/ws/stats/", get(stats)).with_state(rt)
}

/// A node's counters, to callers on the ops address or with the ops token; to anyone
/// else the route does not exist (404).
async fn stats(
    axum::extract::State(rt): axum::extract::State<Arc<Realtime>>,
    wp_shared::ops::Privileged(allowed): wp_shared::ops::Privileged,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering::Relaxed;
    if !allowed {
        return refusal::Refusal::not_found().into_response_for(&headers);
    }
    axum::Json(serde_json::json!({
        "node": rt.node,
        "sockets": rt.hub.sockets(),
        "user_sockets": rt.hub.user_sockets(),
        "rooms": rt.hub.rooms().len(),
        "delivered_frames": rt.hub.stats.delivered.load(Relaxed),
        "slow_consumer_disconnects": rt.hub.stats.slow_disconnects.load(Relaxed),
    }))
    .into_response()
}

/// A node's probes and metrics: ready while PostgreSQL and Redis answer and the
/// pub/sub connection is up (without it, frames from other nodes do not arrive).
pub fn ops(rt: &Arc<Realtime>) -> wp_shared::ops::Ops {
    use prometheus::{IntGaugeVec, Opts};
    use std::sync::atomic::Ordering::Relaxed;
    use wp_shared::ops;
    let node = Arc::downgrade(rt);
    let probes = ops::Ops::new("realtime")
        .token(rt.ctx.config.ops_token.clone())
        .check("postgres", ops::postgres(rt.ctx.db.clone()))
        .check("redis", ops::redis(rt.ctx.redis.clone()))
        .check(
            "pubsub",
            ops::flag("the pub/sub connection", move || {
                node.upgrade()
                    .is_some_and(|n| n.hub.stats.pubsub_up.load(Relaxed))
            }),
        )
        .check(
            "clock",
            Box::new(|| {
                let verdict = clock::CLOCK.check();
                Box::pin(async move { verdict })
            }),
        );
    let gauges = probes.register(
        IntGaugeVec::new(
            Opts::new(
                "realtime_node",
                "This node now and since it started: sockets (party), user_sockets \
                 (notifications), rooms, frames_delivered, slow_consumer_closes, \
                 pubsub_up (1/0), pubsub_reconnects, frames_received, \
                 stale_states_dropped, repeated_messages_dropped, playback_reloads",
            ),
            &["value"],
        )
        .expect("valid metric"),
    );
    probes.register(rt.hub.stats.pubsub_lag.clone());
    let offset = probes.register(
        prometheus::Gauge::new(
            "realtime_clock_offset_seconds",
            "Redis's clock minus this node's (party times are stamped with this node's \
             clock plus it; docs/realtime.md, \"Time\")",
        )
        .expect("valid metric"),
    );
    let node = Arc::downgrade(rt);
    probes.on_scrape(Box::new(move || {
        if let Some(rt) = node.upgrade() {
            let stats = &rt.hub.stats;
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            let total = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            for (name, v) in [
                ("sockets", count(rt.hub.sockets())),
                ("user_sockets", count(rt.hub.user_sockets())),
                ("rooms", count(rt.hub.rooms().len())),
                ("frames_delivered", total(stats.delivered.load(Relaxed))),
                (
                    "slow_consumer_closes",
                    total(stats.slow_disconnects.load(Relaxed)),
                ),
                ("pubsub_up", i64::from(stats.pubsub_up.load(Relaxed))),
                (
                    "pubsub_reconnects",
                    total(stats.pubsub_reconnects.load(Relaxed)),
                ),
                ("frames_received", total(stats.received.load(Relaxed))),
                (
                    "stale_states_dropped",
                    total(stats.stale_states.load(Relaxed)),
                ),
                (
                    "repeated_messages_dropped",
                    total(stats.repeated_messages.load(Relaxed)),
                ),
                (
                    "playback_reloads",
                    total(stats.playback_reloads.load(Relaxed)),
                ),
            ] {
                gauges.with_label_values(&[name]).set(v);
            }
            if let Some(ms) = clock::CLOCK.offset_ms() {
                offset.set(ms / 1000.0);
            }
        }
        Box::pin(async {})
    }))
}

/// Serves a realtime node on `listener` (the sockets and `/health`) until `shutdown`,
/// then closes every socket with `server_restart` and waits for them to close.
pub async fn serve(
    rt: Arc<Realtime>,
    probes: Arc<wp_shared::ops::Ops>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Load balancers probe the socket port: `/health` and `/ready` here too, from the
    // node's one set of probes (metrics stay on the ops address).
    let app = probes.probe_router().merge(router(rt.clone()));
    let server = axum::serve(
        wp_shared::net::nodelay(listener),
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown({
        let rt = rt.clone();
        async move {
            shutdown.await;
            rt.shutdown();
        }
    });
    // The server waits for its requests in flight (upgrades being authorised); that
    // wait counts against the same bound as the sockets'.
    tokio::select! {
        served = std::future::IntoFuture::into_future(server) => served?,
        () = async {
            rt.stopped.cancelled().await;
            tokio::time::sleep_until(rt.drain_deadline()).await;
        } => tracing::warn!("requests still in flight after the drain; dropped"),
    }
    // Upgraded sockets are no longer the server's connections: wait for them here.
    rt.drain().await;
    Ok(())
}
