//! The `analytics` queue: events into ClickHouse in batches.
//!
//! Each job hands its events (one, or a batch of up to 500 from the API) to one batcher
//! per process and waits until the INSERT that holds them is written (group commit): up
//! to [`MAX_BATCH`] events or [`MAX_WAIT`] per INSERT, and a job is acknowledged only
//! once its events are in ClickHouse, so a crash loses nothing (a re-delivered event is
//! folded away on its `event_id`). Large INSERTs are what ClickHouse wants: each one
//! makes a part in `events` and in every rollup its materialized views fill, so a
//! thousand small ones a minute keep the merges busy. Run the pool with a high
//! concurrency (e.g. `analytics=500`) so batches fill.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{Attempt, BoxDynError, Data};
use tokio::sync::{mpsc, oneshot};
use wp_shared::{
    clickhouse::{Event, insert_events},
    jobs::{AnalyticsEvent, AnalyticsJob},
};

use crate::Ctx;

/// Events per INSERT at most (a job's events are not split, so one may pass it by 499).
pub const MAX_BATCH: usize = 20_000;
/// How long a batch waits to fill once its first events arrive.
pub const MAX_WAIT: Duration = Duration::from_millis(500);
/// Handovers (a job's events, or a chunk of offered ones) queued for the writer.
pub const QUEUE: usize = 256;
/// Offered events go to the writer in chunks of this many.
const OFFER_CHUNK: usize = 100;

type Pending = (Vec<Event>, oneshot::Sender<Result<(), String>>);

/// Sends events to the batch writer.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    /// Starts the writer task for `client`, each INSERT bounded by `timeout`
    /// (`CLICKHOUSE_TIMEOUT_SECS`): a ClickHouse that stopped answering (without closing
    /// the connection) fails the batch, whose jobs come back later, instead of holding
    /// the one writer, and every analytics job behind it, forever. With `db`, each
    /// written batch also clears the outbox rows of its events (those recorded durably:
    /// `AnalyticsEvent::outbox_key`).
    pub fn start_with(
        client: clickhouse::Client,
        timeout: Duration,
        db: Option<sqlx::PgPool>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            while let Some((mut events, first)) = rx.recv().await {
                let mut waiters = vec![first];
                let deadline = tokio::time::Instant::now() + MAX_WAIT;
                while events.len() < MAX_BATCH {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some((mut more, w))) => {
                            events.append(&mut more);
                            waiters.push(w);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
                let res = match tokio::time::timeout(timeout, insert_events(&client, &events)).await
                {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
                };
                if let (Ok(()), Some(db)) = (&res, &db) {
                    let keys: Vec<String> = events
                        .iter()
                        .map(|e| AnalyticsEvent::outbox_key(e.event_id))
                        .collect();
                    if let Err(e) = wp_shared::outbox::done(db, &keys).await {
                        tracing::debug!(error = %e, "cannot clear the batch's outbox rows; they will be pushed again");
                    }
                }
                match &res {
                    Ok(()) => tracing::debug!(events = events.len(), "analytics batch written"),
                    Err(e) => {
                        tracing::warn!(events = events.len(), error = %e, "analytics batch failed; jobs will retry")
                    }
                }
                for w in waiters {
                    let _ = w.send(res.clone());
                }
            }
        });
        Self { tx }
    }

    /// Offers events without waiting for them to be written (best-effort statistics:
    /// a batch that fails is logged and dropped). When the writer's queue is full (a
    /// slow or stuck ClickHouse) the surplus is dropped at once rather than held in
    /// waiting tasks; returns how many were dropped.
    pub fn offer(&self, mut events: Vec<Event>) -> usize {
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(OFFER_CHUNK));
            let (tx, _) = oneshot::channel();
            if let Err(refused) = self.tx.try_send((events, tx)) {
                return refused.into_inner().0.len() + rest.len();
            }
            events = rest;
        }
        0
    }

    /// Queues every event of a batch and waits until all are written.
    pub async fn write_all(&self, events: Vec<Event>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((events, tx))
            .await
            .map_err(|_| "analytics writer stopped".to_owned())?;
        rx.await
            .map_err(|_| "analytics writer stopped".to_owned())?
    }

    /// Queues one event and waits until it is written.
    pub async fn write(&self, e: Event) -> Result<(), String> {
        self.write_all(vec![e]).await
    }
}

pub fn to_row(e: &AnalyticsEvent) -> Event {
    Event {
        occurred_at: e.occurred_at,
        event_type: e.event_type.clone(),
        event_id: e.event_id,
        user_id: e.user_id.unwrap_or_default(),
        party_id: e.party_id.unwrap_or_default(),
        video_id: e.video_id.unwrap_or_default(),
        properties: if e.properties.is_null() {
            "{}".to_owned()
        } else {
            e.properties.to_string()
        },
    }
}

pub async fn record(
    job: AnalyticsJob,
    ctx: Data<Arc<Ctx>>,
    _attempt: Attempt,
) -> Result<(), BoxDynError> {
    match job {
        AnalyticsJob::One(e) => ctx.analytics.write(to_row(&e)).await,
        AnalyticsJob::Batch { events } => {
            ctx.analytics
                .write_all(events.iter().map(to_row).collect())
                .await
        }
    }
    .map_err(|e| crate::retry::Unreachable("clickhouse", e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "ClickHouse" that accepts connections and never answers.
    async fn stuck_clickhouse() -> clickhouse::Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        clickhouse::Client::default().with_url(format!("http://{addr}"))
    }

    fn event() -> Event {
        Event {
            occurred_at: chrono::Utc::now(),
            event_type: "test".into(),
            event_id: uuid::Uuid::nil(),
            user_id: uuid::Uuid::nil(),
            party_id: uuid::Uuid::nil(),
            video_id: uuid::Uuid::nil(),
            properties: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_clickhouse_that_never_answers_fails_the_batch_in_time() {
        let client = stuck_clickhouse().await;
        let batcher = Batcher::start_with(client, Duration::from_millis(300), None);
        let event = event();
        let started = std::time::Instant::now();
        let res = tokio::time::timeout(Duration::from_secs(10), batcher.write(event.clone()))
            .await
            .expect("the write ends");
        assert!(res.unwrap_err().contains("no answer"));
        assert!(started.elapsed() < Duration::from_secs(5));
        // The writer is free for the next batch (which fails the same way, in time).
        let res = tokio::time::timeout(Duration::from_secs(10), batcher.write(event.clone()))
            .await
            .expect("the next write ends");
        assert!(res.is_err());
    }

    #[tokio::test]
    async fn statistics_offered_to_a_stuck_writer_are_dropped_not_held() {
        let client = stuck_clickhouse().await;
        let batcher = Batcher::start_with(client, Duration::from_secs(3600), None);
        let event = event();
        // Far more than the writer's queue holds while its INSERT hangs: the call
        // returns at once and says how many it could not take.
        let offered = OFFER_CHUNK * QUEUE * 4;
        let dropped = batcher.offer(vec![event; offered]);
        assert!(dropped > 0 && dropped < offered, "{dropped}");
        assert!(
            dropped >= offered - OFFER_CHUNK * QUEUE - MAX_BATCH - OFFER_CHUNK,
            "at most the queue and one batch are held: {dropped}"
        );
    }
}
