//! The node's one Redis pub/sub connection. It subscribes to the channel of each party
//! with a socket on this node and delivers what other nodes (and the API) publish
//! there to the local sockets, and to the channel of each user with a socket here
//! (new notifications, published by the notify worker). If the connection drops it reconnects and subscribes
//! again to every room it has.

use std::{
    sync::{Weak, atomic::Ordering},
    time::Duration,
};

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use wp_core::{
    notify,
    party::{
        events::{BusOrigin, PartyEvent},
        live::{BusMsg, Keys, channel_prefix},
    },
};

use wp_shared::backoff::{Backoff, Outage};

use crate::{Realtime, hub::encode};

/// A channel a node subscribes to while it has sockets for it.
#[derive(Debug, Clone, Copy)]
pub enum Channel {
    /// A party's frames (`{prefix}:party:{id}`).
    Party(Uuid),
    /// A user's notifications (`{prefix}:user:{id}`).
    User(Uuid),
}

impl Channel {
    fn name(self, prefix: &str) -> String {
        match self {
            Channel::Party(p) => Keys::new(prefix, p).channel().to_owned(),
            Channel::User(u) => format!("{}{u}", notify::user_channel_prefix(prefix)),
        }
    }
}

pub enum Command {
    /// Subscribe to a channel; set to true when it is done.
    Subscribe(Channel, watch::Sender<bool>),
    Unsubscribe(Channel),
}

/// Connects (failing fast if Redis is down at start) and runs the bus in the background.
pub async fn spawn(rt: Weak<Realtime>, rx: mpsc::UnboundedReceiver<Command>) -> anyhow::Result<()> {
    let (url, prefix) = {
        let rt = rt
            .upgrade()
            .ok_or_else(|| anyhow::anyhow!("node dropped"))?;
        (
            rt.ctx.config.redis_url.clone(),
            rt.ctx.config.redis_prefix.clone(),
        )
    };
    let client = redis::Client::open(url.as_str())?;
    let first = client.get_async_pubsub().await?;
    tokio::spawn(run(rt, client, prefix, first, rx));
    Ok(())
}

async fn run(
    rt: Weak<Realtime>,
    client: redis::Client,
    prefix: String,
    first: redis::aio::PubSub,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let channel_start = channel_prefix(&prefix);
    let user_start = notify::user_channel_prefix(&prefix);
    let mut next = Some(first);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut outage = Outage::new("redis (party pub/sub)", Duration::from_secs(30));
    loop {
        let pubsub = match next.take() {
            Some(p) => p,
            None => match client.get_async_pubsub().await {
                Ok(p) => {
                    if let Some(node) = rt.upgrade() {
                        node.hub
                            .stats
                            .pubsub_reconnects
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    p
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    outage.failed(&e, delay);
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        outage.recovered();
        let connected_at = std::time::Instant::now();
        if let Some(node) = rt.upgrade() {
            node.hub.stats.pubsub_up.store(true, Ordering::Relaxed);
        }
        let (mut sink, mut stream) = pubsub.split();
        // Every room this node has (after a reconnect), and what was missed meanwhile:
        // settings and roles are read again, removed members are disconnected.
        if let Some(node) = rt.upgrade() {
            let rooms = node.hub.rooms();
            let channels = rooms
                .iter()
                .map(|r| Channel::Party(r.id))
                .chain(node.hub.users().into_iter().map(Channel::User));
            for channel in channels {
                if let Err(e) = sink.subscribe(channel.name(&prefix)).await {
                    tracing::warn!(error = %e, "resubscribe failed");
                }
            }
            if !rooms.is_empty() {
                tokio::spawn(republish_presence(node.clone(), rooms.clone()));
                tokio::spawn(refresh(node.clone(), rooms));
            }
        }
        loop {
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    let res = match cmd {
                        Command::Subscribe(channel, done) => {
                            let r = sink.subscribe(channel.name(&prefix)).await;
                            // Also on failure: sockets go on (the reconnect resubscribes).
                            done.send_replace(true);
                            r
                        }
                        Command::Unsubscribe(channel) => {
                            sink.unsubscribe(channel.name(&prefix)).await
                        }
                    };
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "pub/sub command failed");
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        if let Some(node) = rt.upgrade() {
                            node.hub.stats.pubsub_up.store(false, Ordering::Relaxed);
                        }
                        // A connection that held a while starts a new outage; one that
                        // keeps dropping at once backs off like a failed attempt.
                        if connected_at.elapsed() >= Duration::from_secs(30) {
                            backoff.reset();
                        }
                        let delay = backoff.next_delay();
                        outage.failed(&"the pub/sub stream ended", delay);
                        tokio::time::sleep(delay).await;
                        break;
                    };
                    let Some(node) = rt.upgrade() else { return };
                    if let Some(user) = msg
                        .get_channel_name()
                        .strip_prefix(&user_start)
                        .and_then(|s| s.parse::<Uuid>().ok())
                    {
                        match serde_json::from_slice::<notify::UserEvent>(msg.get_payload_bytes()) {
                            Ok(notify::UserEvent::SessionsChanged) => {
                                tokio::spawn(recheck_sessions(node, user));
                            }
                            Ok(event) => {
                                if let Some(frame) = event.frame() {
                                    node.hub.send_to_user(user, &encode(&frame));
                                }
                            }
                            Err(_) => tracing::warn!(%user, "malformed user message dropped"),
                        }
                    } else {
                        deliver(&node, &channel_start, &msg);
                    }
                }
            }
        }
    }
}

/// Writes the presence of this node's party sockets again, and its liveness key: after
/// a reconnect Redis may have lost them (restarted without persistence, a failover to a
/// replica that was behind), and the online lists would miss members who never left.
/// Writing an entry that is still there changes nothing. The shared connection may
/// still be reconnecting when the pub/sub one is back: tried a few times.
async fn republish_presence(
    rt: std::sync::Arc<Realtime>,
    rooms: Vec<std::sync::Arc<crate::hub::Room>>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match write_presence(&rt, &rooms).await {
            Ok(()) => return,
            Err(e) if backoff.attempts() >= 5 => {
                tracing::warn!(error = %e, "presence not written again after a reconnect");
                return;
            }
            Err(_) => tokio::time::sleep(backoff.next_delay()).await,
        }
    }
}

async fn write_presence(
    rt: &Realtime,
    rooms: &[std::sync::Arc<crate::hub::Room>],
) -> anyhow::Result<()> {
    rt.keep_alive().await?;
    let mut redis = rt.ctx.redis.clone();
    for room in rooms {
        let entries = room.presence_entries();
        if entries.is_empty() {
            continue;
        }
        let key = Keys::new(&rt.ctx.config.redis_prefix, room.id).presence();
        redis::AsyncCommands::hset_multiple::<_, _, _, ()>(&mut redis, &key, &entries).await?;
    }
    Ok(())
}

/// Checks the session of each of `user`'s sockets on this node again and closes those
/// that no longer authenticate, with the reason (`session_revoked`, `account_suspended`,
/// `account_deleted`), and its staff sockets when it is no longer staff (`not_staff`). A database error closes nothing (the next check decides).
async fn recheck_sessions(rt: std::sync::Arc<Realtime>, user: Uuid) {
    for session in rt.hub.sessions_of(user) {
        match wp_core::account::authenticate(&rt.ctx.db, user, session).await {
            Ok(actor) => rt.staff.check_role(user, session, actor.role),
            Err(
                e @ (wp_core::account::AuthError::Db(_) | wp_core::account::AuthError::Internal(_)),
            ) => {
                tracing::warn!(error = %e, %user, "session re-check failed");
            }
            Err(e) => rt.hub.end_session(user, session, e.code()),
        }
    }
}

async fn refresh(rt: std::sync::Arc<Realtime>, rooms: Vec<std::sync::Arc<crate::hub::Room>>) {
    for room in &rooms {
        reload_playback(&rt, room).await;
    }
    for room in rooms {
        for user in room.users() {
            match wp_core::party::reload(&rt.ctx.db, room.id, user).await {
                Ok(Some((settings, role))) => room.refresh(Some(&settings), user, Some(role)),
                Ok(None) => {
                    room.refresh(None, user, None);
                    room.disconnect(Some(user), "not_a_member");
                }
                Err(e) => tracing::warn!(error = %e, party = %room.id, "room refresh failed"),
            }
        }
    }
}

/// Reads the party's playback state again after a pub/sub outage: a change made on
/// another node meanwhile was published to nobody here. A newer state than the room
/// knew goes to its sockets at once, as a `playback_heartbeat` (which carries the state
/// and its `seq`), and later heartbeats repeat it instead of the stale one.
/// The shared connection may still be reconnecting when the pub/sub one is back: tried
/// a few times.
async fn reload_playback(rt: &Realtime, room: &crate::hub::Room) {
    let keys = Keys::new(&rt.ctx.config.redis_prefix, room.id);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let fresh = loop {
        let mut redis = rt.ctx.live.clone();
        match wp_core::party::live::load_playback(&mut redis, &rt.ctx.db, &keys, room.id).await {
            Ok(Some((p, _))) => break p,
            Ok(None) => return,
            Err(e) if backoff.attempts() >= 6 => {
                tracing::warn!(error = %e, party = %room.id, "playback not reloaded after a reconnect");
                return;
            }
            Err(_) => tokio::time::sleep(backoff.next_delay()).await,
        }
    };
    let known = room.cached().map(|(p, _)| p.seq);
    if known.is_some_and(|seq| seq >= fresh.seq) || !room.set_playback(&fresh) {
        return;
    }
    rt.hub
        .stats
        .playback_reloads
        .fetch_add(1, Ordering::Relaxed);
    let now = crate::conn::now_ms();
    room.broadcast(
        &wp_shared::frame::Frame::server("playback_heartbeat", fresh.to_frame_data(now)),
        None,
    );
}

fn deliver(rt: &Realtime, channel_start: &str, msg: &redis::Msg) {
    let Some(party) = msg
        .get_channel_name()
        .strip_prefix(channel_start)
        .and_then(|s| s.parse::<Uuid>().ok())
    else {
        return;
    };
    let payload = msg.get_payload_bytes();
    // This node's own messages were delivered here when sent: skipped unparsed.
    if let Ok(head) = serde_json::from_slice::<BusOrigin<'_>>(payload) {
        if head.origin == rt.node {
            return;
        }
        if let Some(sent) = head.sent_at {
            let lag_ms = chrono::Utc::now().timestamp_millis() - sent;
            rt.hub
                .stats
                .pubsub_lag
                .observe(lag_ms.max(0) as f64 / 1000.0);
        }
    }
    let Ok(bus) = serde_json::from_slice::<BusMsg>(payload) else {
        tracing::warn!(%party, "malformed bus message dropped");
        return;
    };
    let Some(room) = rt.hub.room(party) else {
        return;
    };
    if let Some(event) = &bus.event {
        // A chat message for one user is not the room's: noting it would hide the
        // broadcast from the others.
        let shown = match (event, bus.to_user) {
            (PartyEvent::ChatMessage(_), Some(_)) => true,
            _ => room.observe(event),
        };
        if !shown {
            let counter = match event {
                PartyEvent::ChatMessage(_) => &rt.hub.stats.repeated_messages,
                _ => &rt.hub.stats.stale_states,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match bus.to_user {
            Some(user) => room.send_to_user(user, &event.frame()),
            None => room.fan_out(event, None, &rt.settings),
        }
    }
    if let Some(reason) = &bus.disconnect {
        room.disconnect(bus.to_user, reason);
    }
}
