//! The `analytics` queue: events into ClickHouse in batches.
//!
//! Each job hands its event to one batcher per process and waits until the batch that
//! holds it is written (group commit): up to 1000 events or 500 ms per INSERT, and a job
//! is acknowledged only once its event is in ClickHouse, so a crash loses nothing (a
//! re-delivered event is folded away on its `event_id`). Run the pool with a high
//! concurrency (e.g. `analytics=500`) so batches fill.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{Attempt, BoxDynError, Data};
use tokio::sync::{mpsc, oneshot};
use wp_shared::{
    clickhouse::{Event, insert_events},
    jobs::{AnalyticsEvent, AnalyticsJob},
};

use crate::Ctx;

pub const MAX_BATCH: usize = 1000;
pub const MAX_WAIT: Duration = Duration::from_millis(500);

type Pending = (Event, oneshot::Sender<Result<(), String>>);

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
        let (tx, mut rx) = mpsc::channel::<Pending>(MAX_BATCH * 4);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + MAX_WAIT;
                while batch.len() < MAX_BATCH {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => batch.push(p),
                        Ok(None) | Err(_) => break,
                    }
                }
                let (events, waiters): (Vec<Event>, Vec<_>) = batch.into_iter().unzip();
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
    pub fn offer(&self, events: Vec<Event>) -> usize {
        let total = events.len();
        for (i, e) in events.into_iter().enumerate() {
            let (tx, _) = oneshot::channel();
            if self.tx.try_send((e, tx)).is_err() {
                return total - i;
            }
        }
        0
    }

    /// Queues every event of a batch and waits until all are written.
    pub async fn write_all(&self, events: Vec<Event>) -> Result<(), String> {
        let mut written = Vec::with_capacity(events.len());
        for e in events {
            let (tx, rx) = oneshot::channel();
            self.tx
                .send((e, tx))
                .await
                .map_err(|_| "analytics writer stopped".to_owned())?;
            written.push(rx);
        }
        for rx in written {
            rx.await
                .map_err(|_| "analytics writer stopped".to_owned())??;
        }
        Ok(())
    }

    /// Queues one event and waits until it is written.
    pub async fn write(&self, e: Event) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((e, tx))
            .await
            .map_err(|_| "analytics writer stopped".to_owned())?;
        rx.await
            .map_err(|_| "analytics writer stopped".to_owned())?
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
        let offered = MAX_BATCH * 10;
        let dropped = batcher.offer(vec![event; offered]);
        assert!(dropped > 0 && dropped < offered, "{dropped}");
        assert!(
            dropped >= offered - MAX_BATCH * 5,
            "at most the queue and one batch are held: {dropped}"
        );
    }
}
