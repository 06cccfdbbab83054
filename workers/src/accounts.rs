//! Account lifecycle work: the owner's data export (`export` queue) and the purge of
//! accounts whose deletion grace period is over (a `system` job).

use std::sync::Arc;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use serde_json::json;
use wp_shared::jobs::ExportAccount;

use crate::Ctx;

/// How long a finished export stays downloadable.
pub const EXPORT_TTL_DAYS: i64 = 7;

/// Writes `exports/{id}.json` under STORAGE_DIR with everything the account holds, then
/// marks the export ready. Idempotent: a finished export is left alone; a re-run
/// rewrites the same file. When the job is given up (its last attempt failed, or the
/// failure cannot be retried), the export is marked `failed`, so the owner can ask for
/// another one.
pub async fn export_account(
    job: ExportAccount,
    ctx: Data<Arc<Ctx>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let res = write_export(&job, &ctx).await;
    if let Err(e) = &res {
        let given_up = e.is::<AbortError>()
            || (crate::retry::last_attempt(&ctx.config, &attempt) && !crate::retry::is_outage(e));
        if given_up {
            sqlx::query(
                "UPDATE data_exports SET status = 'failed', error = $2, finished_at = now()
                 WHERE id = $1 AND status IN ('queued', 'running')",
            )
            .bind(job.export_id)
            .bind(format!("given up: {e}"))
            .execute(&ctx.db)
            .await?;
        }
    }
    res
}

async fn write_export(job: &ExportAccount, ctx: &Ctx) -> Result<(), BoxDynError> {
    let row = sqlx::query!(
        "UPDATE data_exports SET status = 'running' WHERE id = $1 AND status IN ('queued', 'running')
         RETURNING user_id",
        job.export_id
    )
    .fetch_optional(&ctx.db)
    .await?;
    let Some(row) = row else {
        return Ok(()); // finished, failed or gone
    };
    let user = row.user_id;
    let profile = sqlx::query!(
        "SELECT id, username, email, email_verified_at, display_name, bio, locale, timezone,
                role, status, totp_enabled_at, created_at, last_login_at
         FROM users WHERE id = $1",
        user
    )
    .fetch_one(&ctx.db)
    .await?;
    let sessions = sqlx::query!(
        "SELECT id, user_agent, ip, created_at, last_used_at, revoked_at FROM sessions
         WHERE user_id = $1 ORDER BY created_at",
        user
    )
    .fetch_all(&ctx.db)
    .await?;
    let friends = sqlx::query!(
        "SELECT u.username, f.created_at FROM friendships f
         JOIN users u ON u.id = CASE WHEN f.user_a = $1 THEN f.user_b ELSE f.user_a END
         WHERE f.user_a = $1 OR f.user_b = $1 ORDER BY f.created_at",
        user
    )
    .fetch_all(&ctx.db)
    .await?;
    let following = sqlx::query!(
        "SELECT u.username, f.created_at FROM follows f JOIN users u ON u.id = f.followee
         WHERE f.follower = $1 ORDER BY f.created_at",
        user
    )
    .fetch_all(&ctx.db)
    .await?;
    let followers = sqlx::query!(
        "SELECT u.username, f.created_at FROM follows f JOIN users u ON u.id = f.follower
         WHERE f.followee = $1 ORDER BY f.created_at",
        user
    )
    .fetch_all(&ctx.db)
    .await?;
    let blocks = sqlx::query!(
        "SELECT u.username, b.created_at FROM blocks b JOIN users u ON u.id = b.blocked
         WHERE b.blocker = $1 ORDER BY b.created_at",
        user
    )
    .fetch_all(&ctx.db)
    .await?;
    let doc = json!({
        "format": "watch-party-account-export/1",
        "generated_at": chrono::Utc::now(),
        "profile": {
            "id": profile.id, "username": profile.username, "email": profile.email,
            "email_verified_at": profile.email_verified_at, "display_name": profile.display_name,
            "bio": profile.bio, "locale": profile.locale, "timezone": profile.timezone,
            "role": profile.role, "status": profile.status,
            "two_factor_enabled": profile.totp_enabled_at.is_some(),
            "created_at": profile.created_at, "last_login_at": profile.last_login_at,
        },
        "sessions": sessions.iter().map(|s| json!({
            "id": s.id, "user_agent": s.user_agent, "ip": s.ip, "created_at": s.created_at,
            "last_used_at": s.last_used_at, "revoked_at": s.revoked_at,
        })).collect::<Vec<_>>(),
        "friends": friends.iter().map(|f| json!({"username": f.username, "since": f.created_at})).collect::<Vec<_>>(),
        "following": following.iter().map(|f| json!({"username": f.username, "since": f.created_at})).collect::<Vec<_>>(),
        "followers": followers.iter().map(|f| json!({"username": f.username, "since": f.created_at})).collect::<Vec<_>>(),
        "blocked": blocks.iter().map(|b| json!({"username": b.username, "since": b.created_at})).collect::<Vec<_>>(),
    });
    let rel = format!("exports/{}.json", job.export_id);
    let bytes = serde_json::to_vec_pretty(&doc)?;
    let size = bytes.len();
    // The storage writes beside and moves into place: never half a file.
    let written = ctx.storage.put(&rel, bytes).await;
    if let Err(e) = written {
        return Err(
            AbortError::new(std::io::Error::other(format!("cannot write the file: {e}"))).into(),
        );
    }
    sqlx::query!(
        "UPDATE data_exports SET status = 'ready', file_path = $2, size_bytes = $3, finished_at = now(),
                expires_at = now() + make_interval(days => $4)
         WHERE id = $1",
        job.export_id,
        rel,
        i64::try_from(size).unwrap_or(i64::MAX),
        i32::try_from(EXPORT_TTL_DAYS).unwrap_or(7),
    )
    .execute(&ctx.db)
    .await?;
    tracing::info!(export = %job.export_id, bytes = size, "account export ready");
    Ok(())
}

/// Erases every account whose deletion was asked for more than
/// ACCOUNT_DELETION_GRACE_DAYS ago: personal data cleared, sign-in impossible; social
/// ties, sessions, tokens, push devices, notifications, exports and the avatar removed
/// (files too); the videos it uploaded deleted with their files (their comments and
/// likes go with them, parties that showed them keep going without a video). The row
/// stays (status `deleted`, username `deleted_…`) so that comments and chat messages
/// it wrote in others' threads keep their shape, under that name. Also removes expired
/// export files (account exports and staff CSV exports).
pub async fn purge(ctx: &Ctx) -> Result<u64, BoxDynError> {
    let grace = i64::try_from(ctx.config.deletion_grace.as_secs()).unwrap_or(i64::MAX);
    let mut tx = ctx.db.begin().await?;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar!(
        "SELECT id FROM users
         WHERE deletion_requested_at IS NOT NULL
           AND deletion_requested_at <= now() - make_interval(secs => $1)
         FOR UPDATE SKIP LOCKED",
        grace as f64
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut files: Vec<String> = Vec::new();
    if !ids.is_empty() {
        files = sqlx::query_scalar(
            "SELECT avatar_path FROM users WHERE id = ANY($1) AND avatar_path IS NOT NULL
             UNION ALL
             SELECT file_path FROM data_exports WHERE user_id = ANY($1) AND file_path IS NOT NULL
             UNION ALL
             SELECT storage_key FROM videos WHERE owner_id = ANY($1)
             UNION ALL
             SELECT thumbnail_key FROM videos WHERE owner_id = ANY($1) AND thumbnail_key IS NOT NULL",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE users SET status = 'deleted',
                 username = 'deleted_' || substr(replace(id::text, '-', ''), 1, 12),
                 email = replace(id::text, '-', '') || '@deleted.invalid',
                 email_verified_at = NULL, password_hash = '!', display_name = '', bio = '',
                 avatar_path = NULL, totp_secret = NULL, totp_enabled_at = NULL,
                 deletion_requested_at = NULL, suspended_reason = NULL, suspended_until = NULL
             WHERE id = ANY($1)",
            &ids
        )
        .execute(&mut *tx)
        .await?;
        for stmt in [
            "DELETE FROM sessions WHERE user_id = ANY($1)",
            "DELETE FROM email_tokens WHERE user_id = ANY($1)",
            "DELETE FROM recovery_codes WHERE user_id = ANY($1)",
            "DELETE FROM friendships WHERE user_a = ANY($1) OR user_b = ANY($1)",
            "DELETE FROM follows WHERE follower = ANY($1) OR followee = ANY($1)",
            "DELETE FROM blocks WHERE blocker = ANY($1) OR blocked = ANY($1)",
            "DELETE FROM friend_requests WHERE from_user = ANY($1) OR to_user = ANY($1)",
            "DELETE FROM data_exports WHERE user_id = ANY($1)",
            "DELETE FROM devices WHERE user_id = ANY($1)",
            "DELETE FROM notifications WHERE user_id = ANY($1)",
            "DELETE FROM videos WHERE owner_id = ANY($1)",
        ] {
            sqlx::query(stmt).bind(&ids).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    // The files of what was erased, once the rows are gone (a file left by a failure
    // here is found by nothing and harms nobody; it is logged).
    for key in files {
        if let Err(e) = ctx.storage.delete(&key).await {
            tracing::warn!(key, error = %e, "could not remove an erased account's file");
        }
    }
    // Expired export files.
    let expired =
        sqlx::query!("DELETE FROM data_exports WHERE expires_at < now() RETURNING file_path")
            .fetch_all(&ctx.db)
            .await?;
    for e in expired {
        if let Some(p) = e.file_path {
            let _ = ctx.storage.delete(&p).await;
        }
    }
    // Expired staff CSV exports (the audit log keeps that they were made).
    let expired: Vec<Option<String>> =
        sqlx::query_scalar("DELETE FROM table_exports WHERE expires_at < now() RETURNING file_key")
            .fetch_all(&ctx.db)
            .await?;
    for key in expired.into_iter().flatten() {
        let _ = ctx.storage.delete(&key).await;
    }
    Ok(ids.len() as u64)
}
