//! The rooms of one node: which sockets of which party are connected here, and a
//! cache of each party's playback state, settings and member roles (kept current by
//! the frames that pass through the room, local or from the bus).
//!
//! Fan-out serialises a frame once and hands each socket a reference-counted copy
//! through a bounded queue; a socket whose queue is full is stuck or too slow and is
//! disconnected (`slow_consumer`) rather than slowing the room.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex, OnceLock, RwLock,
        atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wp_core::party::live::Playback;
use wp_core::party::{PartyRole, PartySettings, events::PartyEvent};
use wp_shared::frame::Frame;

use crate::{
    Settings,
    bus::{Channel, Command},
    polls, presence,
};

/// Tells a socket task to close, with the reason sent in its last frame; and what the
/// node's ticker needs to close it when its lease ends or its client falls silent (no
/// timer in the socket's own task: two atomics here instead).
#[derive(Debug)]
pub struct Kill {
    pub token: CancellationToken,
    reason: OnceLock<String>,
    /// Unix ms when the socket's access token expires.
    expires_at: AtomicI64,
    /// Unix ms of the last message from the client.
    last_seen: AtomicI64,
    /// The socket's WebSocket round trip (ms, the longest of the last few pings; 0:
    /// not measured yet), which schedules playback changes ([`Room::max_rtt`]).
    rtt_ms: AtomicU32,
}

impl Default for Kill {
    fn default() -> Self {
        Self {
            token: CancellationToken::new(),
            reason: OnceLock::new(),
            expires_at: AtomicI64::new(i64::MAX),
            last_seen: AtomicI64::new(crate::clock::CLOCK.now_ms()),
            rtt_ms: AtomicU32::new(0),
        }
    }
}

impl Kill {
    /// Closes the socket for `reason`; true when this call did (the first reason given
    /// is the one the client is told).
    pub fn kill(&self, reason: &str) -> bool {
        let first = self.reason.set(reason.to_owned()).is_ok();
        self.token.cancel();
        first
    }
    pub fn reason(&self) -> &str {
        self.reason.get().map_or("closed", String::as_str)
    }
    pub fn set_expiry(&self, at_ms: i64) {
        self.expires_at.store(at_ms, Ordering::Relaxed);
    }
    /// Notes a message from the client.
    pub fn seen(&self, at_ms: i64) {
        self.last_seen.store(at_ms, Ordering::Relaxed);
    }
    pub fn set_rtt(&self, ms: u32) {
        self.rtt_ms.store(ms.max(1), Ordering::Relaxed);
    }
    /// The socket's round trip, once measured.
    pub fn rtt(&self) -> Option<u32> {
        Some(self.rtt_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }
    /// Why the ticker should close this socket at `now_ms`, if it should.
    fn due(&self, now_ms: i64, idle_ms: i64) -> Option<&'static str> {
        if self.expires_at.load(Ordering::Relaxed) <= now_ms {
            Some("token_expired")
        } else if now_ms - self.last_seen.load(Ordering::Relaxed) >= idle_ms {
            Some("idle_timeout")
        } else {
            None
        }
    }
}

/// A socket as the room sees it.
#[derive(Clone)]
pub struct ConnHandle {
    pub user: Uuid,
    /// The session the socket was opened (or last re-authenticated) with.
    pub session: Uuid,
    pub tx: mpsc::Sender<Utf8Bytes>,
    pub kill: Arc<Kill>,
    /// A party socket's presence entry in Redis (field, value), once written: written
    /// again when the node's Redis connection comes back (Redis may have lost it).
    pub presence: Arc<OnceLock<(String, String)>>,
}

#[derive(Default)]
struct Cache {
    playback: Option<Playback>,
    settings: Option<PartySettings>,
    roles: HashMap<Uuid, PartyRole>,
    last_heartbeat: i64,
    /// The chat messages delivered here in the last [`CHAT_SEEN_FOR`], oldest first.
    chat_seen: VecDeque<(Uuid, tokio::time::Instant)>,
    chat_seen_ids: HashSet<Uuid>,
}

/// How long a room remembers the chat messages it delivered: a message published twice
/// (by its node and again by the outbox sweep, when the node died before confirming —
/// the sweep runs every `OUTBOX_SWEEP_SECS` on rows older than 5 s, so within about a
/// minute while PostgreSQL is up) reaches each socket once.
const CHAT_SEEN_FOR: Duration = Duration::from_secs(600);
/// At most this many of them (the oldest go first).
const CHAT_SEEN_MAX: usize = 4096;

impl Cache {
    /// Keeps `playback` unless a newer state (higher `seq`) is already known; false
    /// for such a stale one.
    fn keep_playback(&mut self, playback: &Playback) -> bool {
        let fresh = self.playback.as_ref().is_none_or(|c| c.seq <= playback.seq);
        if fresh {
            self.playback = Some(playback.clone());
        }
        fresh
    }

    /// Forgets the chat messages shown longer than [`CHAT_SEEN_FOR`] ago, and the oldest
    /// past `keep`.
    fn forget_chat(&mut self, now: tokio::time::Instant, keep: usize) {
        while let Some(&(old, at)) = self.chat_seen.front() {
            if self.chat_seen.len() <= keep && now.duration_since(at) < CHAT_SEEN_FOR {
                break;
            }
            self.chat_seen.pop_front();
            self.chat_seen_ids.remove(&old);
        }
    }

    /// Notes a chat message's delivery; false when it was delivered here before.
    fn first_sight(&mut self, id: Uuid) -> bool {
        let now = tokio::time::Instant::now();
        self.forget_chat(now, CHAT_SEEN_MAX - 1);
        if !self.chat_seen_ids.insert(id) {
            return false;
        }
        self.chat_seen.push_back((id, now));
        true
    }
}

/// One party's sockets on this node.
pub struct Room {
    pub id: Uuid,
    /// True once the node hears the party's channel.
    subscribed: watch::Receiver<bool>,
    conns: RwLock<HashMap<u64, ConnHandle>>,
    cache: Mutex<Cache>,
    /// Presence changes waiting for the end of the interval.
    presence: Mutex<presence::Batch>,
    /// Poll counts waiting for the end of the interval.
    polls: Mutex<polls::Throttle>,
    stats: Arc<Stats>,
}

/// Counters of a node (read by `GET /ws/stats`, the load tool and `/metrics`).
#[derive(Debug)]
pub struct Stats {
    pub delivered: AtomicU64,
    /// Text frames received from clients.
    pub received: AtomicU64,
    /// From publication by another node (or the API) to delivery here
    /// (`realtime_pubsub_lag_seconds`).
    pub pubsub_lag: prometheus::Histogram,
    pub slow_disconnects: AtomicU64,
    /// Whether the node's pub/sub connection is up (readiness).
    pub pubsub_up: std::sync::atomic::AtomicBool,
    /// Times the pub/sub connection was opened again after a drop.
    pub pubsub_reconnects: AtomicU64,
    /// Playback states relayed from another node after a newer one was known here
    /// (not shown to anyone).
    pub stale_states: AtomicU64,
    /// Chat messages from the bus that this node had delivered already (published
    /// again by the outbox sweep or after a resend; not shown twice).
    pub repeated_messages: AtomicU64,
    /// Newer playback states found in Redis after a pub/sub outage.
    pub playback_reloads: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::default(),
            received: AtomicU64::default(),
            pubsub_lag: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "realtime_pubsub_lag_seconds",
                    "Time from a bus message's publication (another node, or the API) to its \
                     delivery on this node",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )
            .expect("valid metric"),
            slow_disconnects: AtomicU64::default(),
            pubsub_up: std::sync::atomic::AtomicBool::default(),
            pubsub_reconnects: AtomicU64::default(),
            stale_states: AtomicU64::default(),
            repeated_messages: AtomicU64::default(),
            playback_reloads: AtomicU64::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Room {
    fn new(id: Uuid, stats: Arc<Stats>, subscribed: watch::Receiver<bool>) -> Self {
        Self {
            id,
            subscribed,
            conns: RwLock::new(HashMap::new()),
            cache: Mutex::new(Cache::default()),
            presence: Mutex::new(presence::Batch::default()),
            polls: Mutex::new(polls::Throttle::default()),
            stats,
        }
    }

    fn conns(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, ConnHandle>> {
        self.conns
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn conns_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, ConnHandle>> {
        self.conns
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn len(&self) -> usize {
        self.conns().len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns().is_empty()
    }

    /// Whether `user` has another socket in this room on this node.
    pub fn user_connected(&self, user: Uuid, except: u64) -> bool {
        self.conns()
            .iter()
            .any(|(id, c)| *id != except && c.user == user)
    }

    fn deliver(&self, text: &Utf8Bytes, filter: impl Fn(u64, &ConnHandle) -> bool) {
        deliver(
            &self.stats,
            text,
            self.conns().iter().filter(|(id, c)| filter(**id, c)),
        );
    }

    /// Sends `frame` to every socket here but `except`.
    pub fn broadcast(&self, frame: &Frame, except: Option<u64>) {
        let text = encode(frame);
        self.deliver(&text, |id, _| Some(id) != except);
    }

    /// Sends an event to every socket here but `except`; presence changes are
    /// coalesced to at most one frame per `settings.presence_every` ([`presence`]),
    /// poll counts to one per poll per `settings.poll_every` ([`polls`]).
    pub fn fan_out(self: &Arc<Self>, event: &PartyEvent, except: Option<u64>, settings: &Settings) {
        let now = tokio::time::Instant::now();
        let frame = match event {
            PartyEvent::Relay(frame) => frame,
            PartyEvent::PollUpdated(counts) => {
                let offer = lock(&self.polls).offer(now, settings.poll_every, counts);
                match offer {
                    polls::Offer::Now(frame) => self.broadcast(&frame, except),
                    polls::Offer::FlushAt(at) => self.flush_at(at, Self::flush_polls),
                    polls::Offer::Queued | polls::Offer::Stale => {}
                }
                return;
            }
            PartyEvent::PollClosed(poll) => {
                lock(&self.polls).finish(poll.id);
                return self.broadcast(&event.frame(), except);
            }
            PartyEvent::PollDeleted { poll_id, .. } => {
                lock(&self.polls).finish(*poll_id);
                return self.broadcast(&event.frame(), except);
            }
            _ => return self.broadcast(&event.frame(), except),
        };
        let Some(user) = presence::user_of(frame) else {
            return self.broadcast(frame, except);
        };
        let offer =
            lock(&self.presence).offer(now, settings.presence_every, user, frame.clone(), except);
        match offer {
            presence::Offer::Now(frame, except) => self.broadcast(&frame, except),
            presence::Offer::FlushAt(at) => self.flush_at(at, Self::flush_presence),
            presence::Offer::Queued => {}
        }
    }

    /// Runs `flush` on this room at `at` (unless the room is gone by then).
    fn flush_at(self: &Arc<Self>, at: tokio::time::Instant, flush: fn(&Self)) {
        let room = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(room) = room.upgrade() {
                flush(&room);
            }
        });
    }

    /// Sends the presence changes that waited for the end of their interval.
    fn flush_presence(&self) {
        let taken = lock(&self.presence).take(tokio::time::Instant::now());
        if let Some((frame, except)) = taken {
            self.broadcast(&frame, except);
        }
    }

    /// Sends the poll counts that waited for the end of their interval.
    fn flush_polls(&self) {
        let frames = lock(&self.polls).take(tokio::time::Instant::now());
        for frame in frames {
            self.broadcast(&frame, None);
        }
    }

    /// Sends `frame` to every socket of `user` here.
    pub fn send_to_user(&self, user: Uuid, frame: &Frame) {
        let text = encode(frame);
        self.deliver(&text, |_, c| c.user == user);
    }

    /// Closes the sockets of `user` (or all) with `reason`.
    pub fn disconnect(&self, user: Option<Uuid>, reason: &str) {
        for c in self.conns().values() {
            if user.is_none_or(|u| u == c.user) {
                c.kill.kill(reason);
            }
        }
    }

    /// Keeps the cache current from an event passing through.
    ///
    /// Returns false for a playback state older than one already known (a lower
    /// `seq`): a change relayed through Redis can arrive after a newer one made on this
    /// node; it is not shown to anyone (`docs/realtime.md`, "Ordering"). Likewise for a
    /// chat message this room delivered before (published again by the outbox sweep or
    /// after a resend).
    pub fn observe(&self, event: &PartyEvent) -> bool {
        let mut cache = lock(&self.cache);
        match event {
            PartyEvent::VideoState { playback, .. } => return cache.keep_playback(playback),
            PartyEvent::ChatMessage(m) => return cache.first_sight(m.id),
            PartyEvent::PartyUpdated { settings, .. } => cache.settings = Some(settings.clone()),
            PartyEvent::MemberJoined { user, role } | PartyEvent::MemberUpdated { user, role } => {
                cache.roles.insert(user.id, *role);
            }
            PartyEvent::MemberLeft { user, .. } => {
                cache.roles.remove(&user.id);
            }
            _ => {}
        }
        true
    }

    /// Seeds the cache when the first socket of a party connects here (or refreshes it).
    pub fn seed(&self, playback: &Playback, settings: &PartySettings, user: Uuid, role: PartyRole) {
        let mut cache = lock(&self.cache);
        let _ = cache.keep_playback(playback);
        // Frames seen since keep the cache newer than a read made before them.
        if cache.settings.is_none() {
            cache.settings = Some(settings.clone());
        }
        cache.roles.insert(user, role);
    }

    /// Whether this room delivered the chat message `id` (in the last
    /// [`CHAT_SEEN_FOR`]).
    pub fn delivered_chat(&self, id: Uuid) -> bool {
        let mut cache = lock(&self.cache);
        cache.forget_chat(tokio::time::Instant::now(), CHAT_SEEN_MAX);
        cache.chat_seen_ids.contains(&id)
    }

    /// Keeps `playback` unless a newer one is known; false then.
    pub fn set_playback(&self, playback: &Playback) -> bool {
        lock(&self.cache).keep_playback(playback)
    }

    /// The longest round trip among this node's sockets of the room, once any is
    /// measured: what this node reports for scheduling the party's changes.
    pub fn max_rtt(&self) -> Option<u32> {
        self.conns().values().filter_map(|c| c.kill.rtt()).max()
    }

    /// Notes the presence entry socket `conn` wrote (see [`ConnHandle::presence`]).
    pub fn note_presence(&self, conn: u64, field: String, value: String) {
        if let Some(c) = self.conns().get(&conn) {
            let _ = c.presence.set((field, value));
        }
    }

    /// The presence entries of this room's sockets on this node.
    pub fn presence_entries(&self) -> Vec<(String, String)> {
        self.conns()
            .values()
            .filter_map(|c| c.presence.get().cloned())
            .collect()
    }

    /// The users with a socket here.
    pub fn users(&self) -> Vec<Uuid> {
        let mut u: Vec<Uuid> = self.conns().values().map(|c| c.user).collect();
        u.sort_unstable();
        u.dedup();
        u
    }

    /// Replaces what the cache knows of the settings and of `user`'s role (after
    /// frames may have been lost), or forgets the user (`None`: no longer a member).
    pub fn refresh(&self, settings: Option<&PartySettings>, user: Uuid, role: Option<PartyRole>) {
        let mut cache = lock(&self.cache);
        if let Some(s) = settings {
            cache.settings = Some(s.clone());
        }
        match role {
            Some(r) => {
                cache.roles.insert(user, r);
            }
            None => {
                cache.roles.remove(&user);
            }
        }
    }

    /// The cached playback state and settings.
    pub fn cached(&self) -> Option<(Playback, PartySettings)> {
        let cache = lock(&self.cache);
        Some((cache.playback.clone()?, cache.settings.clone()?))
    }

    pub fn settings(&self) -> Option<PartySettings> {
        lock(&self.cache).settings.clone()
    }

    /// The role of `user` as last known (None: not a member any more).
    pub fn role(&self, user: Uuid) -> Option<PartyRole> {
        lock(&self.cache).roles.get(&user).copied()
    }

    /// Whether a heartbeat is due now (and notes that it is being sent).
    pub fn heartbeat_due(&self, now: i64, every: Duration) -> bool {
        let mut cache = lock(&self.cache);
        let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        if now - cache.last_heartbeat >= every {
            cache.last_heartbeat = now;
            true
        } else {
            false
        }
    }
}

/// Queues `text` for each socket; one whose queue is full is closed (`slow_consumer`).
pub(crate) fn deliver<'a>(
    stats: &Stats,
    text: &Utf8Bytes,
    conns: impl Iterator<Item = (&'a u64, &'a ConnHandle)>,
) {
    let mut n = 0;
    for (_, c) in conns {
        match c.tx.try_send(text.clone()) {
            Ok(()) => n += 1,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Frames keep coming until the socket leaves the room: count the
                // socket once, not every frame it could not take.
                if c.kill.kill("slow_consumer") {
                    stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    stats.delivered.fetch_add(n, Ordering::Relaxed);
}

/// Serialises a frame once for every socket it goes to.
pub fn encode(frame: &Frame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

/// One user's sockets on this node, and whether the node hears the user's channel yet.
struct UserSockets {
    sockets: HashMap<u64, ConnHandle>,
    subscribed: watch::Receiver<bool>,
}

/// Waits (up to 2 s) until the node hears a channel. Every socket waits, not only the
/// one whose arrival subscribed it: a second socket that comes while the subscription
/// is in flight must not start before it either.
pub async fn subscribed(mut rx: watch::Receiver<bool>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), rx.wait_for(|s| *s)).await;
}

/// Every room of this node, and every socket by user (party sockets and notification
/// sockets: what is published on a user's channel reaches all of them).
#[derive(Default)]
pub struct Hub {
    rooms: Mutex<HashMap<Uuid, Arc<Room>>>,
    users: Mutex<HashMap<Uuid, UserSockets>>,
    pub stats: Arc<Stats>,
    /// Set by [`Hub::disconnect_all`] (under the `users` lock): a socket registered
    /// after it is killed with the same reason at once, so none outlives a shutdown.
    closing: OnceLock<String>,
}

impl Hub {
    pub fn room(&self, party: Uuid) -> Option<Arc<Room>> {
        lock(&self.rooms).get(&party).cloned()
    }

    pub fn rooms(&self) -> Vec<Arc<Room>> {
        lock(&self.rooms).values().cloned().collect()
    }

    /// Sockets connected to this node.
    pub fn sockets(&self) -> usize {
        lock(&self.rooms).values().map(|r| r.len()).sum()
    }

    /// Registers a socket of `user`; the user's first socket on this node subscribes
    /// the node to the user's channel. Returns when that is (or will be) done.
    pub fn add_user_socket(
        &self,
        user: Uuid,
        conn: u64,
        handle: ConnHandle,
        subs: &mpsc::UnboundedSender<Command>,
    ) -> watch::Receiver<bool> {
        let mut users = lock(&self.users);
        let entry = users.entry(user).or_insert_with(|| {
            let (tx, rx) = watch::channel(false);
            let _ = subs.send(Command::Subscribe(Channel::User(user), tx));
            UserSockets {
                sockets: HashMap::new(),
                subscribed: rx,
            }
        });
        if let Some(reason) = self.closing.get() {
            handle.kill.kill(reason);
        }
        entry.sockets.insert(conn, handle);
        entry.subscribed.clone()
    }

    /// Forgets a socket of `user`; the last one unsubscribes the user's channel.
    pub fn remove_user_socket(&self, user: Uuid, conn: u64, subs: &mpsc::UnboundedSender<Command>) {
        let mut users = lock(&self.users);
        if let Some(entry) = users.get_mut(&user) {
            entry.sockets.remove(&conn);
            if entry.sockets.is_empty() {
                users.remove(&user);
                let _ = subs.send(Command::Unsubscribe(Channel::User(user)));
            }
        }
    }

    /// Queues an encoded frame for every socket of `user` on this node.
    pub fn send_to_user(&self, user: Uuid, text: &Utf8Bytes) {
        if let Some(entry) = lock(&self.users).get(&user) {
            deliver(&self.stats, text, entry.sockets.iter());
        }
    }

    /// The sessions `user`'s sockets on this node were opened with.
    pub fn sessions_of(&self, user: Uuid) -> Vec<Uuid> {
        let mut s: Vec<Uuid> = lock(&self.users)
            .get(&user)
            .map(|e| e.sockets.values().map(|c| c.session).collect())
            .unwrap_or_default();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Closes `user`'s sockets opened with `session` on this node, with `reason`.
    pub fn end_session(&self, user: Uuid, session: Uuid, reason: &str) {
        if let Some(entry) = lock(&self.users).get(&user) {
            for c in entry.sockets.values().filter(|c| c.session == session) {
                c.kill.kill(reason);
            }
        }
    }

    /// The users with a socket on this node.
    pub fn users(&self) -> Vec<Uuid> {
        lock(&self.users).keys().copied().collect()
    }

    /// Closes the sockets whose lease ended by `now_ms` (`token_expired`) and those
    /// whose client sent nothing for `idle_ms` (`idle_timeout`).
    pub fn sweep(&self, now_ms: i64, idle_ms: i64) {
        for entry in lock(&self.users).values() {
            for c in entry.sockets.values() {
                if let Some(reason) = c.kill.due(now_ms, idle_ms) {
                    c.kill.kill(reason);
                }
            }
        }
    }

    /// Closes every socket of this node (party and notification sockets) with `reason`.
    pub fn disconnect_all(&self, reason: &str) {
        let users = lock(&self.users);
        let _ = self.closing.set(reason.to_owned());
        for entry in users.values() {
            for c in entry.sockets.values() {
                c.kill.kill(reason);
            }
        }
    }

    /// Notification sockets and party sockets, by user (a party socket counts in both
    /// this and [`Hub::sockets`]).
    pub fn user_sockets(&self) -> usize {
        lock(&self.users).values().map(|e| e.sockets.len()).sum()
    }

    /// Adds a socket; the first one of a party subscribes the node to its channel
    /// (sent under the lock, so subscribe and unsubscribe keep their order). Returns
    /// the room and when the node hears its channel.
    pub fn join(
        &self,
        party: Uuid,
        conn: u64,
        handle: ConnHandle,
        subs: &mpsc::UnboundedSender<Command>,
    ) -> (Arc<Room>, watch::Receiver<bool>) {
        let mut rooms = lock(&self.rooms);
        let room = rooms.entry(party).or_insert_with(|| {
            let (tx, rx) = watch::channel(false);
            let _ = subs.send(Command::Subscribe(Channel::Party(party), tx));
            Arc::new(Room::new(party, self.stats.clone(), rx))
        });
        room.conns_mut().insert(conn, handle);
        (room.clone(), room.subscribed.clone())
    }

    /// Removes a socket; the last one of a party unsubscribes the node.
    pub fn leave(&self, party: Uuid, conn: u64, subs: &mpsc::UnboundedSender<Command>) {
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(&party) {
            let empty = {
                let mut conns = room.conns_mut();
                conns.remove(&conn);
                conns.is_empty()
            };
            if empty {
                rooms.remove(&party);
                let _ = subs.send(Command::Unsubscribe(Channel::Party(party)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_registers_after_the_node_closed_them_all_is_closed_at_once() {
        let hub = Hub::default();
        let (subs, _rx) = mpsc::unbounded_channel();
        let handle = |kill: &Arc<Kill>| ConnHandle {
            user: Uuid::now_v7(),
            session: Uuid::nil(),
            tx: mpsc::channel(2).0,
            kill: kill.clone(),
            presence: Arc::default(),
        };
        let (before, after) = (Arc::new(Kill::default()), Arc::new(Kill::default()));
        let first = handle(&before);
        let _ = hub.add_user_socket(first.user, 1, first, &subs);
        hub.disconnect_all("server_restart");
        assert_eq!(before.reason(), "server_restart");
        // Upgraded while the node was being stopped: it must not keep the node up.
        let late = handle(&after);
        let _ = hub.add_user_socket(late.user, 2, late, &subs);
        assert!(after.token.is_cancelled());
        assert_eq!(after.reason(), "server_restart");
    }

    #[test]
    fn a_socket_that_cannot_keep_up_is_disconnected_and_the_others_still_get_frames() {
        let hub = Hub::default();
        let (subs, mut _rx) = mpsc::unbounded_channel();
        let party = Uuid::now_v7();
        let (slow_tx, _slow_rx) = mpsc::channel(2);
        let (fast_tx, mut fast_rx) = mpsc::channel(64);
        let slow_kill = Arc::new(Kill::default());
        let (room, _) = hub.join(
            party,
            1,
            ConnHandle {
                user: Uuid::now_v7(),
                session: Uuid::nil(),
                tx: slow_tx,
                kill: slow_kill.clone(),
                presence: Arc::default(),
            },
            &subs,
        );
        assert!(
            matches!(_rx.try_recv(), Ok(Command::Subscribe(..))),
            "the first socket subscribes the node"
        );
        let (_, _) = hub.join(
            party,
            2,
            ConnHandle {
                user: Uuid::now_v7(),
                session: Uuid::nil(),
                tx: fast_tx,
                kill: Arc::default(),
                presence: Arc::default(),
            },
            &subs,
        );
        assert!(
            _rx.try_recv().is_err(),
            "the second does not subscribe again"
        );
        // Three frames overflow the slow queue; two more come before the socket has
        // left the room: one socket closed, counted once.
        for i in 0..5 {
            room.broadcast(&Frame::server("tick", serde_json::json!({ "i": i })), None);
            while fast_rx.try_recv().is_ok() {}
        }
        assert!(slow_kill.token.is_cancelled());
        assert_eq!(slow_kill.reason(), "slow_consumer");
        assert_eq!(hub.stats.slow_disconnects.load(Ordering::Relaxed), 1);
        assert_eq!(hub.stats.delivered.load(Ordering::Relaxed), 7);
        hub.leave(party, 1, &subs);
        hub.leave(party, 2, &subs);
        assert!(
            hub.room(party).is_none(),
            "the last socket out removes the room"
        );
    }
}
