//! Email digests: users who chose `daily` or `weekly` get their notification emails
//! folded into one, sent after 08:00 in their timezone (weekly: on Monday). The fan-out
//! claims such an email as `digest` and leaves a `notification_digest_items` row; the
//! scheduler's `SendDigests` job (every 15 minutes) sends what is due.
//!
//! Exactly once: a user's items are taken under a lock on their user row (and whether
//! the digest is due is read after the lock is held), and the digest email, the items'
//! `email_id` and `last_digest_at` are written in one transaction, so a repeated or
//! concurrent job finds nothing left to send.

use std::sync::Arc;

use apalis::prelude::BoxDynError;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use uuid::Uuid;
use wp_core::notify;
use wp_shared::email::NewEmail;

use crate::{Ctx, notify::Delivery};

/// Most items listed in one digest (the rest go in the next).
const MAX_ITEMS: i64 = 100;
/// Local time a digest goes out.
const SEND_AT: NaiveTime = NaiveTime::from_hms_opt(8, 0, 0).expect("08:00");

/// The last moment a digest of `mode` was due at or before `now`: today's (or this
/// Monday's) 08:00 in `tz` if that has passed, else the one before.
pub fn last_due(now: DateTime<Utc>, tz: &str, mode: &str) -> DateTime<Utc> {
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&tz).date_naive();
    let back = |days: i64| {
        let day = local - Duration::days(days);
        // A gap (DST) at 08:00 is not expected anywhere; fall back to UTC if so.
        tz.from_local_datetime(&day.and_time(SEND_AT))
            .earliest()
            .map_or_else(
                || day.and_time(SEND_AT).and_utc(),
                |t| t.with_timezone(&Utc),
            )
    };
    let weekly = mode == "weekly";
    let since_monday = i64::from(local.weekday().num_days_from_monday());
    let first = back(if weekly { since_monday } else { 0 });
    if first <= now {
        first
    } else {
        back(if weekly { since_monday + 7 } else { 1 })
    }
}

/// Whether a user's pending items go out now: their digest is due, or they turned
/// digests off since (what waits is sent at once).
pub fn due(now: DateTime<Utc>, tz: &str, mode: &str, last: Option<DateTime<Utc>>) -> bool {
    mode == "off" || last.is_none_or(|l| l < last_due(now, tz, mode))
}

/// Sends every digest that is due; returns how many.
pub async fn send_due(ctx: &Arc<Ctx>) -> Result<usize, BoxDynError> {
    let now = Utc::now();
    let candidates = sqlx::query!(
        r#"SELECT DISTINCT i.user_id, u.timezone, COALESCE(s.email_digest, 'off') AS "mode!",
                  s.last_digest_at AS "last?"
           FROM notification_digest_items i JOIN users u ON u.id = i.user_id
           LEFT JOIN notification_settings s ON s.user_id = i.user_id
           WHERE i.email_id IS NULL"#
    )
    .fetch_all(&ctx.db)
    .await?;
    let mut sent = 0;
    for c in candidates {
        if due(now, &c.timezone, &c.mode, c.last) && send_one(ctx, c.user_id).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Sends `user`'s digest if it is (still) due and has items.
async fn send_one(ctx: &Arc<Ctx>, user: Uuid) -> Result<bool, BoxDynError> {
    let now = Utc::now();
    let mut tx = ctx.db.begin().await?;
    // The lock first, in its own statement: the read below then sees what a job that
    // held the lock before committed (a statement reads the data as of its start).
    if sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", user)
        .fetch_optional(&mut *tx)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let u = sqlx::query!(
        r#"SELECT u.username, u.email, u.locale, u.timezone, u.status,
                  u.email_verified_at IS NOT NULL AS "verified!",
                  COALESCE(s.email_digest, 'off') AS "mode!", s.last_digest_at AS "last?"
           FROM users u LEFT JOIN notification_settings s ON s.user_id = u.id
           WHERE u.id = $1"#,
        user
    )
    .fetch_one(&mut *tx)
    .await?;
    if !due(now, &u.timezone, &u.mode, u.last) {
        return Ok(false); // another job sent it meanwhile
    }
    let items = sqlx::query!(
        "SELECT event_id, kind, title, body, link FROM notification_digest_items
         WHERE user_id = $1 AND email_id IS NULL ORDER BY created_at LIMIT $2",
        user,
        MAX_ITEMS
    )
    .fetch_all(&mut *tx)
    .await?;
    if items.is_empty() {
        return Ok(false);
    }
    let events: Vec<Uuid> = items.iter().map(|i| i.event_id).collect();
    let mut outbox = Vec::new();
    // A suspended or unverified account gets nothing; its items are dropped.
    let deliverable = u.status == "active" && u.verified;
    let email_id = if deliverable {
        let list: Vec<notify::DigestItem> = items
            .iter()
            .map(|i| notify::DigestItem {
                title: i.title.clone(),
                body: i.body.clone(),
                link: i.link.clone(),
            })
            .collect();
        let (subject, text, html) =
            notify::render_digest(&u.locale, &u.username, &list, &ctx.config.frontend_url)?;
        let (id, ob) = wp_shared::email::queue(
            &mut tx,
            &NewEmail {
                to: u.email,
                subject,
                body_text: text,
                body_html: Some(html),
                kind: "notification_digest".into(),
            },
        )
        .await?;
        outbox.push(ob);
        Some(id)
    } else {
        None
    };
    sqlx::query!(
        "UPDATE notification_digest_items SET email_id = $3
         WHERE user_id = $1 AND event_id = ANY($2)",
        user,
        &events,
        email_id
    )
    .execute(&mut *tx)
    .await?;
    if !deliverable {
        sqlx::query!(
            "DELETE FROM notification_digest_items WHERE user_id = $1 AND event_id = ANY($2)",
            user,
            &events
        )
        .execute(&mut *tx)
        .await?;
    }
    let outcome = if deliverable { "digested" } else { "dropped" };
    sqlx::query!(
        "UPDATE notification_deliveries SET status = $3
         WHERE user_id = $1 AND event_id = ANY($2) AND channel = 'email'",
        user,
        &events,
        outcome
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO notification_settings (user_id, last_digest_at) VALUES ($1, now())
         ON CONFLICT (user_id) DO UPDATE SET last_digest_at = now()",
        user
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    crate::notify::relay(ctx, &outbox).await;
    let created = sqlx::query!(
        "SELECT id, created_at FROM domain_events WHERE id = ANY($1)",
        &events
    )
    .fetch_all(&ctx.db)
    .await?;
    let at = |e: Uuid| {
        created
            .iter()
            .find(|c| c.id == e)
            .map_or(now, |c| c.created_at)
    };
    crate::notify::record(
        ctx,
        items
            .iter()
            .filter_map(|i| {
                Some(Delivery {
                    kind: notify::kind(&i.kind)?.name,
                    channel: "email",
                    outcome,
                    user,
                    event: i.event_id,
                    event_at: at(i.event_id),
                    detail: email_id.map(|e| format!("digest email {e}")),
                })
            })
            .collect(),
    );
    Ok(deliverable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn digests_are_due_after_eight_in_the_users_timezone() {
        // 2026-11-27 is a Friday. 06:30 UTC is 07:30 in Berlin: today's 08:00 has not
        // come, so the last due moment is yesterday's 08:00 Berlin (07:00 UTC).
        let now = utc("2026-11-27T06:30:00Z");
        assert_eq!(
            last_due(now, "Europe/Berlin", "daily"),
            utc("2026-11-26T07:00:00Z")
        );
        // In Tokyo it is 15:30: today's 08:00 JST (23:00 UTC the day before).
        assert_eq!(
            last_due(now, "Asia/Tokyo", "daily"),
            utc("2026-11-26T23:00:00Z")
        );
        // Weekly: Monday 2026-11-23 08:00 Berlin.
        assert_eq!(
            last_due(now, "Europe/Berlin", "weekly"),
            utc("2026-11-23T07:00:00Z")
        );
        // A digest sent yesterday at 09:00 Berlin is not due again before today's 08:00.
        let sent = Some(utc("2026-11-26T08:00:00Z"));
        assert!(!due(now, "Europe/Berlin", "daily", sent));
        assert!(due(
            utc("2026-11-27T07:01:00Z"),
            "Europe/Berlin",
            "daily",
            sent
        ));
        assert!(!due(
            utc("2026-11-27T07:01:00Z"),
            "Europe/Berlin",
            "weekly",
            sent
        ));
        // Turned off: what waits goes at once.
        assert!(due(now, "Europe/Berlin", "off", sent));
        // An unknown timezone counts as UTC.
        assert_eq!(
            last_due(now, "Mars/Olympus", "daily"),
            utc("2026-11-26T08:00:00Z")
        );
    }
}
