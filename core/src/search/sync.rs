//! Folding the change log into the index. Triggers record a row in `search_changes` for
//! every change of a searchable object, in the writer's transaction (migration 24). The
//! search worker takes an index's rows in id order, a batch at a time, and indexes each
//! object's *current* state once — so a batch is idempotent (doing it twice writes the
//! same documents) and many changes of one object cost one write. One folder per index
//! at a time (an advisory lock), so an older read can never overwrite a newer one: the
//! index follows each object's changes in order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{SearchIndex, pg};

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Folded {
    /// Change rows read and removed.
    pub changes: u64,
    /// Distinct objects they named.
    pub objects: u64,
    pub upserted: u64,
    pub deleted: u64,
    /// From the oldest change folded to now.
    pub lag: Option<Duration>,
}

impl Folded {
    fn add(&mut self, o: Folded) {
        self.changes += o.changes;
        self.objects += o.objects;
        self.upserted += o.upserted;
        self.deleted += o.deleted;
        self.lag = self.lag.max(o.lag);
    }
}

/// The advisory lock key of an index's folder.
fn lock_key(index: SearchIndex) -> i64 {
    // Fixed, distinct keys ("search" in the high bits, the index below).
    0x5345_4152_0000_0000
        + SearchIndex::ALL
            .iter()
            .position(|i| *i == index)
            .unwrap_or(0) as i64
}

/// Folds up to `batch` changes of `index`. `None` when another folder holds the index.
pub async fn fold_once(
    db: &PgPool,
    index: SearchIndex,
    batch: i64,
) -> sqlx::Result<Option<Folded>> {
    let mut tx = db.begin().await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(lock_key(index))
        .fetch_one(&mut *tx)
        .await?;
    if !got {
        return Ok(None);
    }
    let rows: Vec<(i64, Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, object_id, changed_at FROM search_changes
         WHERE index_name = $1 ORDER BY id LIMIT $2",
    )
    .bind(index)
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(Some(Folded::default()));
    }
    let mut ids: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
    ids.sort_unstable();
    ids.dedup();
    let (upserted, deleted) = pg::apply(&mut tx, index, Some(&ids)).await?;
    // Only the rows read: a change committed meanwhile (even with a lower id) stays for
    // the next pass.
    let change_ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    sqlx::query("DELETE FROM search_changes WHERE id = ANY($1)")
        .bind(&change_ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let oldest = rows.iter().map(|r| r.2).min();
    Ok(Some(Folded {
        changes: rows.len() as u64,
        objects: ids.len() as u64,
        upserted,
        deleted,
        lag: oldest.map(|t| (Utc::now() - t).to_std().unwrap_or_default()),
    }))
}

/// Folds every waiting change of every index, `batch` at a time.
pub async fn fold_all(db: &PgPool, batch: i64) -> sqlx::Result<Folded> {
    let mut total = Folded::default();
    for index in SearchIndex::ALL {
        loop {
            match fold_once(db, *index, batch).await? {
                // Another folder has it; it will fold what we would have.
                None => break,
                Some(f) => {
                    let done = (f.changes as i64) < batch;
                    total.add(f);
                    if done {
                        break;
                    }
                }
            }
        }
    }
    Ok(total)
}

/// Changes waiting, and the age of the oldest, per index (metrics, `/ready`).
pub async fn backlog(db: &PgPool) -> sqlx::Result<Vec<(SearchIndex, i64, Option<f64>)>> {
    sqlx::query_as(
        "SELECT index_name, count(*),
                extract(epoch FROM clock_timestamp() - min(changed_at))::float8
         FROM search_changes GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(db)
    .await
}

/// Builds `index` anew from its source tables in one transaction: readers see the old
/// documents until it commits, then the new ones (no moment without an index). Waits for
/// the index's folder; changes recorded meanwhile are folded after (harmlessly again).
/// Returns the documents written.
pub async fn rebuild(db: &PgPool, index: SearchIndex) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(index))
        .execute(&mut *tx)
        .await?;
    let (upserted, _) = pg::apply(&mut tx, index, None).await?;
    tx.commit().await?;
    Ok(upserted)
}
