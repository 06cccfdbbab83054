//! The dead letters: jobs given up on, listed for inspection ([`dead_jobs`]) and run
//! again on request ([`replay_dead`]).

use apalis_redis::ConnectionManager;
use redis::AsyncCommands;
use serde::Serialize;

use super::{EnqueueError, Enqueuer, Queue, queue_config};
use crate::config::Config;

/// A job given up on (after its last attempt, or refused as permanent), as kept in the
/// queue's dead set for inspection and replay.
#[derive(Debug, Clone, Serialize)]
pub struct DeadJob {
    pub id: String,
    /// The job's payload (what the worker got).
    pub payload: serde_json::Value,
    /// What the last attempt returned.
    pub error: Option<String>,
    pub attempts: Option<u32>,
    /// When it was given up on (unix seconds).
    pub failed_at: Option<u64>,
}

fn decode_payload(raw: Option<Vec<u8>>) -> serde_json::Value {
    match raw {
        None => serde_json::Value::Null,
        Some(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into())),
    }
}

/// The message of an apalis result (`{"Err": "..."}` as stored), else the raw text.
fn result_message(raw: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(serde_json::Value::Object(o)) => match o.get("Err") {
            Some(serde_json::Value::String(e)) => e.clone(),
            Some(other) => other.to_string(),
            None => raw,
        },
        _ => raw,
    }
}

/// Up to `limit` dead jobs of `queue` (newest first) and how many there are. Payloads
/// are read for the listed ones only.
pub async fn dead_jobs(
    conn: &mut ConnectionManager,
    config: &Config,
    queue: Queue,
    limit: usize,
) -> redis::RedisResult<(u64, Vec<DeadJob>)> {
    let qc = queue_config(config, queue);
    let ids: Vec<String> = conn.smembers(qc.dead_jobs_set()).await?;
    let total = ids.len() as u64;
    if ids.is_empty() {
        return Ok((0, Vec::new()));
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("HMGET")
            .arg(format!("{}:{id}", qc.job_meta_hash()))
            .arg("result")
            .arg("attempts")
            .arg("done_at");
    }
    type Meta = (Option<String>, Option<u32>, Option<u64>);
    let metas: Vec<Meta> = pipe.query_async(conn).await?;
    let mut jobs: Vec<DeadJob> = ids
        .into_iter()
        .zip(metas)
        .map(|(id, (error, attempts, failed_at))| DeadJob {
            id,
            payload: serde_json::Value::Null,
            error: error.map(result_message),
            attempts,
            failed_at,
        })
        .collect();
    jobs.sort_by(|a, b| b.failed_at.cmp(&a.failed_at).then_with(|| a.id.cmp(&b.id)));
    jobs.truncate(limit);
    let mut pipe = redis::pipe();
    for j in &jobs {
        pipe.hget(qc.job_data_hash(), &j.id);
    }
    let payloads: Vec<Option<Vec<u8>>> = pipe.query_async(conn).await?;
    for (j, raw) in jobs.iter_mut().zip(payloads) {
        j.payload = decode_payload(raw);
    }
    Ok((total, jobs))
}

/// Error while replaying a dead job.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no such dead job")]
    NotFound,
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Runs a dead job again: its payload is queued as a new job (without a dedupe key, so
/// the original's key does not hold it back) and the dead record is removed. Every job
/// here is idempotent, so a replay only does what the original did not.
pub async fn replay_dead(enq: &Enqueuer, queue: Queue, id: &str) -> Result<(), ReplayError> {
    let mut conn = enq.connection();
    let qc = queue_config(enq.config(), queue);
    // Taken out of the dead set first: of two concurrent replays, one wins.
    let removed: u64 = conn.srem(qc.dead_jobs_set(), id).await?;
    if removed == 0 {
        return Err(ReplayError::NotFound);
    }
    let requeued = async {
        let raw: Option<Vec<u8>> = conn.hget(qc.job_data_hash(), id).await?;
        let payload = decode_payload(raw);
        if payload.is_null() {
            return Err(ReplayError::NotFound);
        }
        enq.push_json(queue, vec![(payload, None)]).await?;
        Ok(())
    }
    .await;
    if let Err(e) = requeued {
        // Not replayed: it stays listed (a record without data stays too, to be seen).
        let _: Result<u64, _> = conn.sadd(qc.dead_jobs_set(), id).await;
        return Err(e);
    }
    let meta = qc.job_meta_hash();
    redis::pipe()
        .hdel(qc.job_data_hash(), id)
        .ignore()
        .del(format!("{meta}:{id}"))
        .ignore()
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}
