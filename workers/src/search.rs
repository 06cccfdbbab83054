//! The `search` queue: the index follows the source tables (docs/search.md).
//!
//! Changes are recorded by triggers in the writers' transactions and announced with
//! `NOTIFY wp_search`. A process running the search pool listens and folds them at once
//! (a few ms after the commit); the scheduler's `search-sync` tick enqueues
//! [`SearchJob::Sync`] every 5 s as the net for a missed wake-up, and `search-reindex`
//! enqueues (or runs) a rebuild.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{Attempt, BoxDynError, Data};
use tokio::sync::watch;
use wp_core::search::{SearchIndex, sync};
use wp_shared::{backoff::Outage, jobs::SearchJob};

use crate::Ctx;

/// Changes folded per transaction.
pub const BATCH: i64 = 500;

/// After a wake-up, how long to let more changes gather before folding (a burst of
/// commits becomes one batch).
const GATHER: Duration = Duration::from_millis(20);

pub async fn handle_search(
    job: SearchJob,
    ctx: Data<Arc<Ctx>>,
    _attempt: Attempt,
) -> Result<(), BoxDynError> {
    match job {
        SearchJob::Sync => {
            let f = sync::fold_all(&ctx.db, BATCH).await?;
            record(&ctx, &f);
        }
        SearchJob::Alerts => {
            let a = wp_core::search::alerts::run_due(&ctx.db, chrono::Utc::now(), 500).await?;
            if !a.outbox.is_empty() {
                wp_shared::outbox::relay_ids(&ctx.db, &ctx.enqueuer, &a.outbox).await?;
            }
            if a.looked > 0 {
                tracing::info!(
                    looked = a.looked,
                    alerted = a.alerted.len(),
                    "saved-search alerts run"
                );
            }
        }
        SearchJob::Reindex { index } => {
            let indexes: Vec<SearchIndex> = match index {
                None => SearchIndex::ALL.to_vec(),
                Some(name) => match name.parse() {
                    Ok(i) => vec![i],
                    // Nothing to retry: the job names no index.
                    Err(e) => return Err(apalis::prelude::AbortError::new(e).into()),
                },
            };
            for index in indexes {
                let started = std::time::Instant::now();
                let n = sync::rebuild(&ctx.db, index).await?;
                tracing::info!(index = %index, documents = n, took_ms = started.elapsed().as_millis() as u64, "search index rebuilt");
            }
        }
    }
    Ok(())
}

fn record(ctx: &Ctx, f: &sync::Folded) {
    if f.changes == 0 {
        return;
    }
    ctx.metrics.search_folded(f);
    tracing::debug!(
        changes = f.changes,
        objects = f.objects,
        upserted = f.upserted,
        deleted = f.deleted,
        lag_ms = f.lag.map(|l| l.as_millis() as u64),
        "search changes folded"
    );
}

/// Listens for `wp_search` and folds the changes as they come, until `stop`. The
/// listener reconnects by itself; an outage is logged once, then every 30 s.
pub async fn listen(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut outage = Outage::new("postgres (search wake-ups)", Duration::from_secs(30));
    // LISTEN needs a session: past a transaction-mode pooler, PostgreSQL itself.
    let sessions = match wp_shared::db::session_pool(&ctx.config) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(
                error = %e,
                "no session pool for LISTEN: search wake-ups are off, the 5 s search-sync tick still folds changes"
            );
            return;
        }
    };
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&sessions).await {
            Ok(l) => l,
            Err(e) => {
                outage.failed(&e, Duration::from_secs(1));
                let stopped = tokio::select! {
                    _ = stop.wait_for(|v| *v) => true,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => false,
                };
                if stopped {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = listener.listen("wp_search").await {
            outage.failed(&e, Duration::from_secs(1));
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        outage.recovered();
        // What was recorded while nobody listened.
        fold(&ctx).await;
        loop {
            let woke = tokio::select! {
                _ = stop.wait_for(|v| *v) => return,
                n = listener.recv() => n.map(|_| ()),
            };
            match woke {
                Ok(()) => {
                    tokio::time::sleep(GATHER).await;
                    fold(&ctx).await;
                }
                Err(e) => {
                    outage.failed(&e, Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

async fn fold(ctx: &Ctx) {
    match sync::fold_all(&ctx.db, BATCH).await {
        Ok(f) => record(ctx, &f),
        // The tick or the next wake-up folds what this one could not.
        Err(e) => tracing::warn!(error = %e, "search changes not folded; will retry"),
    }
}
