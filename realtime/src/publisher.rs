//! What a node publishes on the party channels goes through one task: messages keep
//! the order they were published in, and whatever queued while a round trip was under
//! way goes out in the next one as a pipeline. A socket that emits a frame hands its
//! message over and goes on; it never waits on Redis (unless the queue is full, which
//! slows the emitters rather than dropping their messages).

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

/// Messages waiting to be published before emitters wait.
const QUEUE: usize = 8192;
/// Messages sent in one round trip at the most.
const BATCH: usize = 256;

/// A message for a channel, already serialised.
pub(crate) struct Outgoing {
    pub channel: String,
    pub payload: String,
}

/// Starts the publishing task of a node; it ends when every sender is dropped.
pub(crate) fn spawn(redis: ConnectionManager) -> mpsc::Sender<Outgoing> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(redis, rx));
    tx
}

async fn run(mut redis: ConnectionManager, mut rx: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for m in &batch {
            pipe.publish(&m.channel, &m.payload).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut redis).await {
            tracing::warn!(error = %e, messages = batch.len(), "publish to the party channels failed");
        }
        batch.clear();
    }
}
