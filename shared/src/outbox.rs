//! Transactional outbox.
//!
//! A handler that must cause work records the job with [`record`] inside the same
//! transaction as its write. After commit it calls [`relay_ids`] for a fast hand-off;
//! if the process dies first, the scheduler's periodic sweep ([`relay_pending`]) pushes
//! the row instead. Either way the job is pushed at least once, and the dedupe key
//! (the row id when the job has none) makes the queue accept it once.

use sqlx::{PgConnection, PgPool};

use crate::jobs::{EnqueueError, Enqueuer, Job, Queue, RawJob};

/// Error while relaying the outbox.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Records `job` in the caller's transaction. Returns the outbox row id.
pub async fn record<J: Job>(conn: &mut PgConnection, job: &J) -> sqlx::Result<i64> {
    let payload = serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let id = sqlx::query_scalar!(
        "INSERT INTO outbox (queue, payload, dedupe_key) VALUES ($1, $2, $3) RETURNING id",
        J::QUEUE.name(),
        payload,
        job.dedupe_key(),
    )
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Records many jobs of one kind in the caller's transaction with one INSERT (a
/// fan-out writes its deliveries this way). Returns the outbox row ids.
pub async fn record_many<J: Job>(conn: &mut PgConnection, jobs: &[J]) -> sqlx::Result<Vec<i64>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut payloads = Vec::with_capacity(jobs.len());
    let mut keys = Vec::with_capacity(jobs.len());
    for j in jobs {
        payloads.push(serde_json::to_value(j).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        keys.push(j.dedupe_key());
    }
    sqlx::query_scalar!(
        r#"INSERT INTO outbox (queue, payload, dedupe_key)
           SELECT $1, p, k FROM UNNEST($2::jsonb[], $3::text[]) AS t(p, k)
           RETURNING id"#,
        J::QUEUE.name(),
        &payloads,
        &keys as &[Option<String>],
    )
    .fetch_all(conn)
    .await
}

/// Relays the given rows (those the caller just committed). Rows already taken by a
/// concurrent relay are skipped. Returns how many were pushed.
pub async fn relay_ids(pool: &PgPool, enq: &Enqueuer, ids: &[i64]) -> Result<usize, RelayError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, queue, payload, dedupe_key FROM outbox
         WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED",
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let n = push_and_delete(&mut tx, enq, rows).await?;
    tx.commit().await?;
    Ok(n)
}

/// Relays what a transaction just recorded, right after its commit: best effort (the
/// scheduler's sweep pushes whatever this leaves). The one relay every role uses.
pub async fn relay(pool: &PgPool, enq: &Enqueuer, ids: &[i64]) {
    if let Err(e) = relay_ids(pool, enq, ids).await {
        tracing::warn!(error = %e, "outbox relay after commit failed; the sweep will retry");
    }
}

/// Relays every pending row, oldest first, in batches of `batch`.
/// Returns how many rows were pushed.
pub async fn relay_pending(pool: &PgPool, enq: &Enqueuer, batch: i64) -> Result<usize, RelayError> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query_as!(
            Row,
            "SELECT id, queue, payload, dedupe_key FROM outbox
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            batch
        )
        .fetch_all(&mut *tx)
        .await?;
        let fetched = rows.len();
        total += push_and_delete(&mut tx, enq, rows).await?;
        tx.commit().await?;
        if (fetched as i64) < batch {
            return Ok(total);
        }
    }
}

/// Rows not yet relayed (for `/metrics`).
pub async fn pending_count(pool: &PgPool) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM outbox"#)
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// The outbox backlog: how many rows wait to be relayed, and how long the oldest has
/// waited (seconds; 0 when none does): the relay's lag.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as::<_, (i64, f64)>(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
         FROM outbox",
    )
    .fetch_one(pool)
    .await
}

struct Row {
    id: i64,
    queue: String,
    payload: serde_json::Value,
    dedupe_key: Option<String>,
}

async fn push_and_delete(
    tx: &mut PgConnection,
    enq: &Enqueuer,
    rows: Vec<Row>,
) -> Result<usize, RelayError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    // Group by queue, keeping order within a queue.
    let mut by_queue: Vec<(Queue, Vec<RawJob>)> = Vec::new();
    let mut unknown = Vec::new();
    for row in rows {
        let Ok(queue) = row.queue.parse::<Queue>() else {
            unknown.push(row.id);
            continue;
        };
        let key = row
            .dedupe_key
            .unwrap_or_else(|| format!("outbox:{}", row.id));
        match by_queue.iter_mut().find(|(q, _)| *q == queue) {
            Some((_, items)) => items.push((row.payload, Some(key))),
            None => by_queue.push((queue, vec![(row.payload, Some(key))])),
        }
    }
    if !unknown.is_empty() {
        // Written by a newer release that knows a queue this one does not: leave the
        // rows for that release to relay rather than dropping them.
        tracing::warn!(rows = ?unknown, "outbox rows for an unknown queue left in place");
    }
    let mut pushed = 0;
    for (queue, items) in by_queue {
        pushed += items.len();
        enq.push_json(queue, items).await?;
    }
    let relayed: Vec<i64> = ids.into_iter().filter(|id| !unknown.contains(id)).collect();
    sqlx::query!("DELETE FROM outbox WHERE id = ANY($1)", &relayed)
        .execute(&mut *tx)
        .await?;
    Ok(pushed)
}
