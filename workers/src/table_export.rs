//! Staff CSV exports (`export` queue, [`ExportTable`]): the rows of one read-only
//! snapshot streamed with `COPY … TO STDOUT (FORMAT csv)` (analytics: ClickHouse's
//! `CSVWithNames`) into object storage through a
//! fixed-size buffer (constant memory, whatever the row count), progress written to the
//! row and sent to the requester's notification sockets about once a second, the
//! requester notified when the file is there. The statements and the columns are
//! `wp_core::exports`.
//!
//! A run that dies (a killed worker, a lost database) leaves no object: the storage
//! writer only makes the file visible on `finish`. The job comes back, the next run
//! starts again from the first row and writes the same key: one file in the end.

use std::time::{Duration, Instant};

use apalis::prelude::{AbortError, Attempt, BoxDynError};
use bytes::BytesMut;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use uuid::Uuid;
use wp_core::{
    exports::{ExportError, ExportKind, KEEP_DAYS, RecordCounter},
    notify::{UserEvent, publish_user_event},
};
use wp_shared::jobs::ExportTable;

use crate::Ctx;

/// Bytes gathered before one write to storage.
const BUFFER: usize = 256 * 1024;
/// How often progress is written and sent.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Makes the export; when the job is given up, marks it failed (and says so).
pub async fn make(job: ExportTable, ctx: &Ctx, attempt: &Attempt) -> Result<(), BoxDynError> {
    let id = job.table_export_id;
    let res = run(id, ctx).await;
    if let Err(e) = &res {
        let given_up = e.is::<AbortError>()
            || (crate::retry::last_attempt(&ctx.config, attempt) && !crate::retry::is_outage(e));
        if given_up {
            let failed: Option<(Option<Uuid>, ExportKind, i64)> = sqlx::query_as(
                "UPDATE table_exports SET status = 'failed', error = $2, finished_at = now()
                  WHERE id = $1 AND status IN ('queued', 'running')
                  RETURNING requested_by, kind, rows_done",
            )
            .bind(id)
            .bind(format!("given up: {e}"))
            .fetch_optional(&ctx.db)
            .await?;
            if let Some((Some(user), kind, rows)) = failed {
                progress(ctx, user, id, kind, "failed", rows, None).await;
            }
        }
    }
    res
}

async fn progress(
    ctx: &Ctx,
    user: Uuid,
    id: Uuid,
    kind: ExportKind,
    status: &str,
    rows_done: i64,
    rows_total: Option<i64>,
) {
    let event = UserEvent::ExportProgress {
        export: serde_json::json!({ "id": id, "kind": kind, "status": status,
                                    "rows_done": rows_done, "rows_total": rows_total }),
    };
    let mut redis = ctx.enqueuer.connection();
    if let Err(e) = publish_user_event(&mut redis, &ctx.config.redis_prefix, user, &event).await {
        tracing::debug!(error = %e, "export progress not sent to the sockets");
    }
}

async fn run(id: Uuid, ctx: &Ctx) -> Result<(), BoxDynError> {
    type Claimed = (ExportKind, Vec<String>, serde_json::Value, Option<Uuid>);
    let claimed: Option<Claimed> = sqlx::query_as(
        "UPDATE table_exports SET status = 'running', attempts = attempts + 1, rows_done = 0,
                error = NULL, started_at = COALESCE(started_at, now())
          WHERE id = $1 AND status IN ('queued', 'running')
          RETURNING kind, columns, filters, requested_by",
    )
    .bind(id)
    .fetch_optional(&ctx.db)
    .await?;
    let Some((kind, columns, filters, requester)) = claimed else {
        return Ok(()); // done, failed or gone
    };
    let started = Instant::now();

    // One snapshot for the count and the rows.
    let mut tx = ctx.db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // Stored columns or filters this release cannot read: running again won't help.
    let unreadable = |e: ExportError| -> BoxDynError {
        match e {
            ExportError::Db(e) => e.into(),
            e => AbortError::new(e.to_string()).into(),
        }
    };
    // The rows: PostgreSQL's COPY on the snapshot, or ClickHouse's CSVWithNames.
    let (total, mut rows): (i64, BoxStream<'_, Result<bytes::Bytes, BoxDynError>>) = if kind
        == ExportKind::Analytics
    {
        let q = wp_core::exports::clickhouse_statements(&columns, &filters).map_err(unreadable)?;
        let ch = wp_shared::clickhouse::client(&ctx.config);
        let bind = |sql: &str| {
            let mut query = ch.query(sql).bind(q.after).bind(q.before);
            for t in &q.event_types {
                query = query.bind(t.as_str());
            }
            query
        };
        let total: u64 = bind(&q.count).fetch_one().await?;
        let cursor = bind(&q.rows).fetch_bytes("CSVWithNames")?;
        // The reader stops at the first error.
        let chunks = futures::stream::unfold(cursor, |mut c| async move {
            match c.next().await {
                Ok(Some(b)) => Some((Ok(b), c)),
                Ok(None) => None,
                Err(e) => Some((Err(BoxDynError::from(e)), c)),
            }
        });
        (i64::try_from(total).unwrap_or(i64::MAX), chunks.boxed())
    } else {
        let sql = wp_core::exports::statements(&mut tx, kind, &columns, &filters)
            .await
            .map_err(unreadable)?;
        let total: i64 = sqlx::query_scalar(&sql.count).fetch_one(&mut *tx).await?;
        let copy = tx.copy_out_raw(&sql.copy).await?;
        (total, copy.map_err(BoxDynError::from).boxed())
    };
    sqlx::query("UPDATE table_exports SET rows_total = $2 WHERE id = $1")
        .bind(id)
        .bind(total)
        .execute(&ctx.db)
        .await?;
    if let Some(user) = requester {
        progress(ctx, user, id, kind, "running", 0, Some(total)).await;
    }

    let key = format!("exports/tables/{id}.csv");
    let mut writer = ctx.storage.writer(&key).await?;
    let mut counter = RecordCounter::default();
    let mut size: u64 = 0;
    let mut buf = BytesMut::with_capacity(BUFFER);
    let mut last = Instant::now();
    {
        while let Some(chunk) = rows.next().await {
            let chunk = chunk?;
            counter.feed(&chunk);
            size += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            if buf.len() >= BUFFER {
                writer.write(buf.split().freeze()).await?;
            }
            let rate = ctx.config.export_rows_per_second;
            if rate > 0 {
                // Ahead of the allowed pace: wait until the rows so far are due.
                let due = Duration::from_secs_f64(counter.records as f64 / rate as f64);
                if let Some(ahead) = due.checked_sub(started.elapsed())
                    && ahead > Duration::from_millis(20)
                {
                    tokio::time::sleep(ahead).await;
                }
            }
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                let done = i64::try_from(counter.records.saturating_sub(1)).unwrap_or(i64::MAX);
                sqlx::query("UPDATE table_exports SET rows_done = $2 WHERE id = $1")
                    .bind(id)
                    .bind(done)
                    .execute(&ctx.db)
                    .await?;
                if let Some(user) = requester {
                    progress(ctx, user, id, kind, "running", done, Some(total)).await;
                }
            }
        }
    }
    drop(rows);
    if !buf.is_empty() {
        writer.write(buf.freeze()).await?;
    }
    writer.finish().await?;
    tx.commit().await?;

    let rows = i64::try_from(counter.records.saturating_sub(1)).unwrap_or(i64::MAX);
    let mut tx = ctx.db.begin().await?;
    let expires: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "UPDATE table_exports SET status = 'done', file_key = $2, size_bytes = $3, rows_done = $4,
                rows_total = $4, finished_at = now(), expires_at = now() + make_interval(days => $5)
          WHERE id = $1 AND status = 'running'
          RETURNING expires_at",
    )
    .bind(id)
    .bind(&key)
    .bind(i64::try_from(size).unwrap_or(i64::MAX))
    .bind(rows)
    .bind(i32::try_from(KEEP_DAYS).unwrap_or(7))
    .fetch_optional(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    if let (Some(expires_at), Some(user)) = (expires, requester) {
        outbox.push(
            wp_core::events::emit(
                &mut tx,
                "admin.export_ready",
                Some(user),
                Some(user),
                serde_json::json!({ "export_id": id, "kind": kind, "rows": rows,
                                    "expires_at": expires_at.to_rfc3339() }),
            )
            .await?,
        );
    }
    tx.commit().await?;
    wp_shared::outbox::relay(&ctx.db, &ctx.enqueuer, &outbox).await;
    if let Some(user) = requester {
        progress(ctx, user, id, kind, "done", rows, Some(rows)).await;
    }
    tracing::info!(export = %id, %kind, rows, bytes = size, secs = started.elapsed().as_secs_f64(), "table export written");
    Ok(())
}
