//! What a node publishes on the party channels goes through one task: messages keep
//! the order they were published in, and whatever queued while a round trip was under
//! way goes out in the next one as a pipeline. A socket that emits a frame hands its
//! message over and goes on; it never waits on Redis (unless the queue is full, which
//! slows the emitters rather than dropping their messages).
//!
//! A chat message's publication is confirmed once Redis took it: the task then deletes
//! its `party_messages_unpublished` row (`wp_core::party::chat::published`); a message
//! whose publish failed, or whose node died first, keeps its row and the outbox sweep
//! publishes it again.

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Messages waiting to be published before emitters wait.
const QUEUE: usize = 8192;
/// Messages sent in one round trip at the most.
const BATCH: usize = 256;

/// A message for a channel, already serialised.
pub(crate) struct Outgoing {
    pub channel: String,
    pub payload: String,
    /// The chat message it carries, whose publication to confirm.
    pub confirms: Option<Uuid>,
}

/// What the publishing task is handed.
pub(crate) enum Item {
    Message(Outgoing),
    /// Answered once everything handed over before it has been sent to Redis (or
    /// failed): a stopping node waits for this before it exits.
    /// Answers whether all of that reached Redis.
    Barrier(tokio::sync::oneshot::Sender<bool>),
}

/// Starts the publishing task of a node; it ends when every sender is dropped.
pub(crate) fn spawn(redis: ConnectionManager, db: PgPool) -> mpsc::Sender<Item> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(redis, db, rx));
    tx
}

/// Waits until what was handed to the task before this call has gone out, for at most
/// `within`. False when it has not.
pub(crate) async fn flush(tx: &mpsc::Sender<Item>, within: std::time::Duration) -> bool {
    let (done, flushed) = tokio::sync::oneshot::channel();
    tokio::time::timeout(within, async {
        tx.send(Item::Barrier(done)).await.is_ok() && flushed.await.unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

async fn run(mut redis: ConnectionManager, db: PgPool, mut rx: mpsc::Receiver<Item>) {
    let mut items = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    let mut barriers = Vec::new();
    // Whether everything since the last barrier was published.
    let mut all_sent = true;
    while rx.recv_many(&mut items, BATCH).await > 0 {
        for item in items.drain(..) {
            match item {
                Item::Message(m) => batch.push(m),
                Item::Barrier(b) => barriers.push(b),
            }
        }
        if !batch.is_empty() {
            all_sent &= publish(&mut redis, &db, &batch).await;
            batch.clear();
        }
        if !barriers.is_empty() {
            for b in barriers.drain(..) {
                let _ = b.send(all_sent);
            }
            all_sent = true;
        }
    }
}

/// Publishes `batch` in one round trip and confirms the chat messages it carried.
/// False when Redis did not take it.
async fn publish(redis: &mut ConnectionManager, db: &PgPool, batch: &[Outgoing]) -> bool {
    let mut pipe = redis::pipe();
    for m in batch {
        pipe.publish(&m.channel, &m.payload).ignore();
    }
    match pipe.query_async::<()>(redis).await {
        Ok(()) => {
            let confirmed: Vec<Uuid> = batch.iter().filter_map(|m| m.confirms).collect();
            if !confirmed.is_empty() {
                // Beside the publishing, which goes on; a failure leaves the rows to
                // the sweep, which publishes those messages once more.
                let db = db.clone();
                tokio::spawn(async move {
                    if let Err(e) = wp_core::party::chat::published(&db, &confirmed).await {
                        tracing::warn!(error = %e, "could not confirm published chat messages");
                    }
                });
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, messages = batch.len(), "publish to the party channels failed");
            false
        }
    }
}
