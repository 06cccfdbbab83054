//! The `system` queue: outbox relay sweep, job-record vacuum, account purge, email
//! digests, stale partial files, no-op (benchmarks).

use std::{sync::Arc, time::Duration};

use apalis::prelude::{Attempt, BoxDynError, Data};
use redis::aio::ConnectionManager;
use wp_shared::{
    Config,
    jobs::{Queue, SystemJob, queue_config},
    outbox,
};

use crate::Ctx;

/// A partial file this old was left by a process killed mid-write (an upload or a
/// media step in progress is hours younger).
pub const PART_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A chat message's node confirms its publication within milliseconds; one still
/// unconfirmed after this long was not published (docs/realtime.md, "Many nodes").
pub const CHAT_PUBLISH_GRACE: Duration = Duration::from_secs(5);

pub async fn handle_system(
    job: SystemJob,
    ctx: Data<Arc<Ctx>>,
    _attempt: Attempt,
) -> Result<(), BoxDynError> {
    match job {
        SystemJob::RelayOutbox => {
            let n = outbox::relay_pending(&ctx.db, &ctx.enqueuer, 500).await?;
            if n > 0 {
                tracing::info!(relayed = n, "outbox sweep relayed rows");
            }
            // Jobs pushed but not finished: all of them at once if Redis was emptied
            // (restarted without persistence), else those pushed long ago.
            let reset = outbox::redis_was_reset(&ctx.enqueuer).await?;
            let older_than = if reset {
                std::time::Duration::ZERO
            } else {
                ctx.config.outbox_redeliver_after
            };
            let n = outbox::redeliver(&ctx.db, &ctx.enqueuer, older_than, 500).await?;
            if n > 0 {
                tracing::warn!(
                    pushed = n,
                    redis_reset = reset,
                    "outbox sweep pushed unfinished jobs again"
                );
            }
            // Chat messages stored but never published to the other nodes (their node
            // died in between, or Redis refused the publish).
            let mut conn = ctx.enqueuer.connection();
            let n = wp_core::party::chat::republish(
                &ctx.db,
                &mut conn,
                &ctx.config.redis_prefix,
                CHAT_PUBLISH_GRACE,
                500,
            )
            .await?;
            if n > 0 {
                tracing::warn!(
                    messages = n,
                    "outbox sweep published chat messages their node had not"
                );
            }
        }
        SystemJob::VacuumJobs => {
            let mut conn = ctx.enqueuer.connection();
            let n = vacuum(&mut conn, &ctx.config).await?;
            tracing::info!(removed = n, "job records vacuumed");
        }
        SystemJob::PurgeAccounts => {
            let n = crate::accounts::purge(&ctx).await?;
            if n > 0 {
                tracing::info!(accounts = n, "deleted accounts purged");
            }
        }
        SystemJob::SendDigests => {
            let n = crate::digest::send_due(&ctx).await?;
            if n > 0 {
                tracing::info!(digests = n, "notification digests sent");
            }
        }
        SystemJob::SweepParts => {
            let n = ctx.storage.sweep_parts(PART_MAX_AGE).await?;
            if n > 0 {
                tracing::info!(removed = n, "stale partial files removed");
            }
        }
        SystemJob::ClosePolls => {
            let n = close_polls(&ctx, chrono::Utc::now()).await?;
            if n > 0 {
                tracing::info!(polls = n, "polls closed at the end of their time");
            }
        }
        SystemJob::AdvanceEvents => {
            let a = advance_events(&ctx, chrono::Utc::now()).await?;
            if !a.live.is_empty() || !a.ended.is_empty() {
                tracing::info!(
                    live = a.live.len(),
                    ended = a.ended.len(),
                    "events moved on"
                );
            }
        }
        SystemJob::SupportSweep => {
            let s = support_sweep(&ctx, chrono::Utc::now()).await?;
            if !s.closed.is_empty() || !s.breached.is_empty() {
                tracing::info!(
                    closed = s.closed.len(),
                    breached = s.breached.len(),
                    "support tickets swept"
                );
            }
        }
        SystemJob::PruneSync => {
            let n = wp_core::sync::prune(&ctx.db, chrono::Utc::now()).await?;
            if n > 0 {
                tracing::info!(pruned = n, "old sync notes removed");
            }
        }
        SystemJob::PruneAnalytics => {
            let ch = wp_shared::clickhouse::client(&ctx.config);
            let dropped = wp_core::analytics::retention::prune(
                &ch,
                chrono::Utc::now().date_naive(),
                ctx.config.analytics_raw_retention_months,
            )
            .await
            .map_err(|e| crate::retry::Unreachable("clickhouse", e))?;
            if !dropped.is_empty() {
                tracing::info!(?dropped, "old analytics partitions dropped");
            }
        }
        SystemJob::Noop { .. } => {}
    }
    Ok(())
}

/// The help desk's pass at `now` (`wp_core::support::sweep`: auto-close after the
/// configured days, SLA breaches stamped once) and the relay of its notifications.
pub async fn support_sweep(
    ctx: &Ctx,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<wp_core::support::Swept> {
    let s = wp_core::support::sweep(&ctx.db, now, ctx.config.support_auto_close_days).await?;
    outbox::relay(&ctx.db, &ctx.enqueuer, &s.outbox).await;
    Ok(s)
}

/// Moves the events whose time has come at `now` (`wp_core::event::advance`: each move
/// once) and relays the notifications it recorded (attendees hear that it starts).
pub async fn advance_events(
    ctx: &Ctx,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<wp_core::event::Advanced> {
    use wp_core::party::{
        events::{BusMsg, PartyEvent, publish},
        live::Keys,
    };
    let a = wp_core::event::advance(&ctx.db, now).await?;
    outbox::relay(&ctx.db, &ctx.enqueuer, &a.outbox).await;
    // The parties of ended events end too: their sockets close and their live state goes.
    let mut conn = ctx.enqueuer.connection();
    for party in &a.ended_parties {
        let keys = Keys::new(&ctx.config.redis_prefix, *party);
        let msg = BusMsg {
            origin: "workers".into(),
            to_user: None,
            event: Some(PartyEvent::PartyEnded {
                message: "The event is over.".into(),
            }),
            disconnect: Some("party_ended".into()),
        };
        if let Err(e) = publish(&mut conn, &keys, &msg).await {
            tracing::warn!(error = %e, %party, "party_ended could not be published");
        }
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(keys.all())
            .query_async(&mut conn)
            .await;
    }
    Ok(a)
}

/// Closes the polls due at `now` (`wp_core::party::polls::close_due`: each once, however
/// many workers run this) and sends each party's sockets `poll_closed` with the final
/// counts. A publish that fails is logged: the poll is closed all the same, and sockets
/// that missed the frame read it as closed on their next snapshot or REST read.
pub async fn close_polls(ctx: &Ctx, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<usize> {
    use wp_core::party::{
        events::{BusMsg, PartyEvent, publish},
        live::Keys,
        polls,
    };
    let (closed, rows) = polls::close_due(&ctx.db, now).await?;
    outbox::relay(&ctx.db, &ctx.enqueuer, &rows).await;
    let mut conn = ctx.enqueuer.connection();
    for poll in &closed {
        let keys = Keys::new(&ctx.config.redis_prefix, poll.party_id);
        let msg = BusMsg::to_all("workers", PartyEvent::PollClosed(poll.clone()));
        if let Err(e) = publish(&mut conn, &keys, &msg).await {
            tracing::warn!(error = %e, poll = %poll.id, "poll_closed could not be published");
        }
    }
    Ok(closed.len())
}

/// Removes finished job records (data, metadata, the id in the done set) older than
/// `JOB_DONE_RETENTION_HOURS`, and dead ones older than `JOB_DEAD_RETENTION_DAYS`.
/// apalis' own vacuum leaves the done and dead sets growing forever, so this walks
/// them instead. Returns how many records were removed.
pub async fn vacuum(conn: &mut ConnectionManager, config: &Config) -> redis::RedisResult<usize> {
    let mut removed = 0;
    for q in Queue::ALL {
        let qc = queue_config(config, q);
        removed += vacuum_set(conn, &qc, &qc.done_jobs_set(), config.job_done_retention).await?;
        removed += vacuum_set(conn, &qc, &qc.dead_jobs_set(), config.job_dead_retention).await?;
    }
    Ok(removed)
}

async fn vacuum_set(
    conn: &mut ConnectionManager,
    qc: &apalis_redis::Config,
    set: &str,
    retention: Duration,
) -> redis::RedisResult<usize> {
    let (now, _): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    let cutoff = now.saturating_sub(retention.as_secs());
    let meta = qc.job_meta_hash();
    let data = qc.job_data_hash();
    let mut cursor: u64 = 0;
    let mut removed = 0;
    loop {
        let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(set)
            .arg(cursor)
            .arg("COUNT")
            .arg(500)
            .query_async(conn)
            .await?;
        if !ids.is_empty() {
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hget(format!("{meta}:{id}"), "done_at");
            }
            let done_at: Vec<Option<u64>> = pipe.query_async(conn).await?;
            let old: Vec<&String> = ids
                .iter()
                .zip(done_at)
                // No metadata left: the record is already half gone; finish removing it.
                .filter(|(_, d)| d.is_none_or(|t| t <= cutoff))
                .map(|(id, _)| id)
                .collect();
            if !old.is_empty() {
                let mut pipe = redis::pipe();
                for id in &old {
                    pipe.hdel(&data, *id).ignore();
                    pipe.hdel(format!("{meta}:result"), *id).ignore();
                    pipe.del(format!("{meta}:{id}")).ignore();
                    pipe.srem(set, *id).ignore();
                }
                pipe.query_async::<()>(conn).await?;
                removed += old.len();
            }
        }
        cursor = next;
        if cursor == 0 {
            return Ok(removed);
        }
    }
}
