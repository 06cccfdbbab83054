//! Transactional outbox.
//!
//! A handler that must cause work records the job with [`record`] inside the same
//! transaction as its write. After commit it calls [`relay_ids`] for a fast hand-off;
//! if the process dies first, the scheduler's periodic sweep ([`relay_pending`]) pushes
//! the row instead. Either way the job is pushed at least once, and the dedupe key
//! (the row id when the job has none) makes the queue accept it once.
//!
//! A row whose job has a dedupe key stays after its push (`relayed_at`) until a worker
//! finishes the job, or gives it up, and deletes it ([`done`]): Redis may lose what it
//! queued (restarted without persistence, a failover), and PostgreSQL keeps the job
//! until then. The sweep pushes such rows again ([`redeliver`]) at once when it finds
//! Redis emptied ([`redis_was_reset`]), and otherwise when a job has not finished long
//! after its push; a push of a job that is still queued is a no-op (its dedupe key).

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

/// Records `job` with its own dedupe `key` (for jobs whose type has none, such as an
/// analytics event recorded durably: the row then stays until the job is done).
pub async fn record_keyed<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    key: &str,
) -> sqlx::Result<i64> {
    let payload = serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar::<_, i64>(
        "INSERT INTO outbox (queue, payload, dedupe_key) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(J::QUEUE.name())
    .bind(payload)
    .bind(key)
    .fetch_one(conn)
    .await
}

/// Marks the jobs with these dedupe keys finished (done or given up): their rows go,
/// marked pushed (`relayed_at`) or not.
///
/// A worker may finish a job before the relay that pushed it has committed its mark:
/// the relay holds the row locked from its push to its commit, so the rows are locked
/// first, which waits for such a relay. A row still unmarked after that was pushed by a
/// relay that died between its push and its commit (the job ran, so it was pushed): it
/// goes too. Kept, the sweep would push it again (a no-op while Redis keeps the dedupe
/// key, 24 h), mark it, and push it again every `OUTBOX_REDELIVER_SECS` until the key
/// expired and the job ran a second time (the local-cluster rehearsal's "1 outbox row
/// left"; `jobs::a_relay_killed_between_its_push_and_its_commit_leaves_no_row_behind`).
/// A second row of the same key recorded meanwhile would go as well: this relies on a
/// dedupe key naming one unit of work, never reused for new work (true of every job
/// type today: `email:{id}`, `event:{id}`, `export:{id}`, `analytics:{event id}`, …).
pub async fn done(pool: &PgPool, keys: &[String]) -> sqlx::Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE dedupe_key = ANY($1) FOR UPDATE")
            .bind(keys)
            .fetch_all(&mut *tx)
            .await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let r = sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(r.rows_affected())
}

/// Whether Redis lost what it held since the last call: a marker key set once is
/// missing (also true on the very first call, when there is nothing to push again).
pub async fn redis_was_reset(enq: &Enqueuer) -> redis::RedisResult<bool> {
    let mut conn = enq.connection();
    let set: Option<String> = redis::cmd("SET")
        .arg(format!("{}:outbox:redis-epoch", enq.config().redis_prefix))
        .arg(chrono::Utc::now().timestamp())
        .arg("NX")
        .query_async(&mut conn)
        .await?;
    Ok(set.is_some())
}

/// Pushes again the rows pushed before `older_than` ago whose jobs have not finished,
/// in batches of `batch`. Returns how many were pushed.
pub async fn redeliver(
    pool: &PgPool,
    enq: &Enqueuer,
    older_than: std::time::Duration,
    batch: i64,
) -> Result<usize, RelayError> {
    let secs = older_than.as_secs_f64();
    let mut total = 0;
    let mut after = 0i64;
    loop {
        let mut tx = pool.begin().await?;
        let rows = sqlx::query_as::<_, Row>(
            "SELECT id, queue, payload, dedupe_key FROM outbox
             WHERE relayed_at IS NOT NULL AND relayed_at <= now() - make_interval(secs => $1)
               AND id > $2
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(secs)
        .bind(after)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        let fetched = rows.len();
        if let Some(last) = rows.last() {
            after = last.id;
        }
        total += push_and_mark(&mut tx, enq, rows).await?;
        tx.commit().await?;
        if (fetched as i64) < batch {
            return Ok(total);
        }
    }
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
         WHERE id = ANY($1) AND relayed_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED",
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let n = push_and_mark(&mut tx, enq, rows).await?;
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
             WHERE relayed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            batch
        )
        .fetch_all(&mut *tx)
        .await?;
        let fetched = rows.len();
        total += push_and_mark(&mut tx, enq, rows).await?;
        tx.commit().await?;
        if (fetched as i64) < batch {
            return Ok(total);
        }
    }
}

/// Rows not yet relayed (for `/metrics`).
pub async fn pending_count(pool: &PgPool) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM outbox WHERE relayed_at IS NULL"#)
        .fetch_one(pool)
        .await?;
    Ok(n)
}

/// The outbox backlog: how many rows wait to be relayed, and how long the oldest has
/// waited (seconds; 0 when none does): the relay's lag.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as::<_, (i64, f64)>(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
         FROM outbox WHERE relayed_at IS NULL",
    )
    .fetch_one(pool)
    .await
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    queue: String,
    payload: serde_json::Value,
    dedupe_key: Option<String>,
}

/// Pushes `rows`; then deletes those without a dedupe key (nothing could tell when
/// their job is done) and marks the others pushed (`relayed_at`), to stay until done.
async fn push_and_mark(
    tx: &mut PgConnection,
    enq: &Enqueuer,
    rows: Vec<Row>,
) -> Result<usize, RelayError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let keyed: std::collections::HashSet<i64> = rows
        .iter()
        .filter(|r| r.dedupe_key.is_some())
        .map(|r| r.id)
        .collect();
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
    let (keyed, unkeyed): (Vec<i64>, Vec<i64>) = ids
        .into_iter()
        .filter(|id| !unknown.contains(id))
        .partition(|id| keyed.contains(id));
    sqlx::query!("DELETE FROM outbox WHERE id = ANY($1)", &unkeyed)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE outbox SET relayed_at = now() WHERE id = ANY($1)")
        .bind(&keyed)
        .execute(&mut *tx)
        .await?;
    Ok(pushed)
}
