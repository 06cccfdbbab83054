//! The `notify` queue: one domain event becomes its notifications.
//!
//! For each recipient (today: the event's addressed user; computed audiences such as a
//! party's members come with the events that need them) the worker reads the user's
//! preferences for the type, writes the in-app row and queues the email, in one
//! transaction. Exactly once as the user sees it: the in-app row is unique per (event,
//! recipient), and every channel claims (event, recipient, channel) in
//! `notification_deliveries` before queueing, so a retried or duplicated job, or one
//! re-delivered after a crash, changes nothing twice.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use uuid::Uuid;
use wp_shared::{
    email::NewEmail,
    jobs::{NotifyEvent, SendPush},
    notify::{self, Kind},
};

use crate::Ctx;

/// Channels a recipient gets for `kind`: their saved choice, else the default;
/// required types always reach the in-app list.
pub struct Choice {
    pub in_app: bool,
    pub email: bool,
    /// On, and the user has a device a configured provider reaches.
    pub push: bool,
}

/// A domain event with what rendering needs.
struct Loaded {
    kind: &'static Kind,
    actor_id: Option<Uuid>,
    actor: String,
    recipient: Option<Uuid>,
    payload: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
}

async fn load_event(ctx: &Ctx, event: Uuid) -> Result<Option<Loaded>, BoxDynError> {
    let Some(ev) = sqlx::query!(
        r#"SELECT e.kind, e.actor_id, e.recipient_id, e.payload, e.created_at, a.username AS "actor?"
           FROM domain_events e LEFT JOIN users a ON a.id = e.actor_id
           WHERE e.id = $1"#,
        event
    )
    .fetch_optional(&ctx.db)
    .await?
    else {
        tracing::warn!(%event, "domain event is gone; nothing to notify");
        return Ok(None);
    };
    let Some(kind) = notify::kind(&ev.kind) else {
        tracing::warn!(kind = ev.kind, "no notification type for this event");
        return Ok(None);
    };
    Ok(Some(Loaded {
        kind,
        actor_id: ev.actor_id,
        actor: ev.actor.unwrap_or_else(|| "Someone".to_owned()),
        recipient: ev.recipient_id,
        payload: ev.payload,
        created_at: ev.created_at,
    }))
}

/// An event rendered for one user (the push worker's texts).
pub struct RenderedFor {
    pub kind: &'static str,
    pub rendered: notify::Rendered,
    /// When the event happened (delivery latency counts from here).
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Renders `event`'s push texts (title, body and link name the actor and the payload,
/// never the recipient, so one rendering serves every recipient). None if it is gone.
pub async fn render_for(ctx: &Ctx, event: Uuid) -> Result<Option<RenderedFor>, BoxDynError> {
    let Some(ev) = load_event(ctx, event).await? else {
        return Ok(None);
    };
    let rendered = notify::render(
        ev.kind.name,
        &ev.actor,
        "",
        &ev.payload,
        &ctx.config.frontend_url,
    )?;
    Ok(Some(RenderedFor {
        kind: ev.kind.name,
        rendered,
        created_at: ev.created_at,
    }))
}

pub async fn fan_out(job: NotifyEvent, ctx: Data<Arc<Ctx>>) -> Result<(), BoxDynError> {
    let Some(ev) = load_event(&ctx, job.event_id).await? else {
        return Ok(());
    };
    if ev.kind.name == "admin.broadcast" {
        return broadcast_page(&ctx, job.event_id, job.after).await;
    }
    let Some(recipient) = ev.recipient else {
        tracing::debug!(
            kind = ev.kind.name,
            "event without a recipient: no audience to resolve yet"
        );
        return Ok(());
    };
    deliver(&ctx, job.event_id, &ev, recipient).await
}

async fn deliver(
    ctx: &Arc<Ctx>,
    event: Uuid,
    ev: &Loaded,
    recipient: Uuid,
) -> Result<(), BoxDynError> {
    let (kind, actor_id, actor, payload) = (ev.kind, ev.actor_id, ev.actor.as_str(), &ev.payload);
    let mut tx = ctx.db.begin().await?;
    let Some(user) = sqlx::query!(
        r#"SELECT u.username, u.email, u.email_verified_at IS NOT NULL AS "verified!",
                  p.in_app AS "in_app?", p.email AS "email_on?", p.push AS "push_on?",
                  u.timezone, s.quiet_start_minute AS "quiet_start?", s.quiet_end_minute AS "quiet_end?",
                  ARRAY(SELECT DISTINCT d.platform FROM devices d WHERE d.user_id = u.id) AS "platforms!"
           FROM users u LEFT JOIN notification_preferences p ON p.user_id = u.id AND p.kind = $2
           LEFT JOIN notification_settings s ON s.user_id = u.id
           WHERE u.id = $1 AND u.status = 'active'"#,
        recipient,
        kind.name
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(()); // deleted or suspended: nobody to tell
    };
    let choice = Choice {
        in_app: kind.required || user.in_app.unwrap_or(kind.in_app),
        email: user.email_on.unwrap_or(kind.email) && user.verified,
        push: user.push_on.unwrap_or(kind.push)
            && user.platforms.iter().any(|p| ctx.push.serves(p)),
    };
    let r = notify::render(
        kind.name,
        actor,
        &user.username,
        payload,
        &ctx.config.frontend_url,
    )?;
    if choice.in_app {
        sqlx::query!(
            r#"INSERT INTO notifications (id, user_id, kind, event_id, actor_id, title, body, link, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (event_id, user_id) WHERE event_id IS NOT NULL DO NOTHING"#,
            Uuid::now_v7(),
            recipient,
            kind.name,
            event,
            actor_id,
            r.title,
            r.body,
            r.link,
            payload
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut outbox = Vec::new();
    if choice.email && claim(&mut tx, event, recipient, "email", "queued").await? {
        outbox.push(queue_email(&mut tx, user.email, r, kind.name).await?);
    }
    // Quiet hours hold push back (the in-app row and the email still go).
    let quiet = match (user.quiet_start, user.quiet_end) {
        (Some(start), Some(end)) => {
            notify::in_quiet_hours(chrono::Utc::now(), &user.timezone, start, end)
        }
        _ => false,
    };
    if choice.push && quiet {
        claim(&mut tx, event, recipient, "push", "skipped_quiet_hours").await?;
    } else if choice.push && claim(&mut tx, event, recipient, "push", "queued").await? {
        outbox.push(
            wp_shared::outbox::record(
                &mut tx,
                &SendPush {
                    event_id: event,
                    user_ids: vec![recipient],
                },
            )
            .await?,
        );
    }
    tx.commit().await?;
    let stat = |channel: &'static str, outcome: &'static str| Delivery {
        kind: kind.name,
        channel,
        outcome,
        user: recipient,
        event,
        event_at: ev.created_at,
        detail: None,
    };
    if choice.in_app {
        record(ctx, stat("in_app", "delivered"));
    }
    if choice.email {
        record(ctx, stat("email", "queued"));
    }
    if choice.push {
        record(
            ctx,
            stat(
                "push",
                if quiet {
                    "skipped_quiet_hours"
                } else {
                    "queued"
                },
            ),
        );
    }
    if !outbox.is_empty()
        && let Err(e) = wp_shared::outbox::relay_ids(&ctx.db, &ctx.enqueuer, &outbox).await
    {
        tracing::warn!(error = %e, "email relay after commit failed; the sweep will retry");
    }
    Ok(())
}

/// Claims (event, recipient, channel): true the first time only.
async fn claim(
    tx: &mut sqlx::PgConnection,
    event: Uuid,
    recipient: Uuid,
    channel: &str,
    status: &str,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query!(
        "INSERT INTO notification_deliveries (event_id, user_id, channel, status)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        event,
        recipient,
        channel,
        status
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1)
}

/// One delivery outcome, for the statistics (`GET /api/notifications/stats/`).
pub struct Delivery {
    pub kind: &'static str,
    pub channel: &'static str,
    pub outcome: &'static str,
    pub user: Uuid,
    pub event: Uuid,
    pub event_at: chrono::DateTime<chrono::Utc>,
    pub detail: Option<String>,
}

/// Writes a `notification.delivery` event to ClickHouse through the batched writer,
/// without holding the job up (statistics are best effort; the delivery records in
/// PostgreSQL are the truth).
pub fn record(ctx: &Arc<Ctx>, d: Delivery) {
    let latency_ms = (chrono::Utc::now() - d.event_at).num_milliseconds().max(0);
    let ev = wp_shared::jobs::AnalyticsEvent::new(
        "notification.delivery",
        Some(d.user),
        None,
        serde_json::json!({
            "kind": d.kind, "channel": d.channel, "outcome": d.outcome,
            "latency_ms": latency_ms, "event_id": d.event, "detail": d.detail,
        }),
    );
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = ctx.analytics.write(crate::analytics::to_row(&ev)).await {
            tracing::warn!(error = %e, "delivery statistic dropped");
        }
    });
}

/// One page of a broadcast's audience (`NOTIFY_PAGE_SIZE` users by id after `after`): the
/// in-app rows in one statement, the push claims in one statement and their jobs in one
/// outbox insert, emails one by one, the progress, and the next page's job, all in one
/// transaction. A repeated page changes nothing (the rows and claims are unique).
async fn broadcast_page(
    ctx: &Arc<Ctx>,
    event: Uuid,
    after: Option<Uuid>,
) -> Result<(), BoxDynError> {
    let Some(b) = sqlx::query!(
        "SELECT title, body, link, segment, in_app, email, push, created_at FROM broadcasts WHERE id = $1",
        event
    )
    .fetch_optional(&ctx.db)
    .await?
    else {
        return Ok(());
    };
    let role = b.segment["role"].as_str().map(str::to_owned);
    let active_days = b.segment["active_within_days"]
        .as_i64()
        .and_then(|d| i32::try_from(d).ok());
    let platform = b.segment["platform"].as_str().map(str::to_owned);
    let page = i64::from(ctx.config.notify_page_size);
    // The catalogue's defaults for users who never chose.
    let kind = notify::kind("admin.broadcast").ok_or("admin.broadcast is not in the catalogue")?;
    let mut tx = ctx.db.begin().await?;
    // This page follows the last one done, or it was done already.
    let current = sqlx::query_scalar!(
        r#"SELECT page_cursor AS "cursor?" FROM broadcasts WHERE id = $1 AND status <> 'done' FOR UPDATE"#,
        event
    )
    .fetch_optional(&mut *tx)
    .await?;
    match current {
        Some(cursor) if cursor == after => {}
        _ => return Ok(()),
    }
    let rows = sqlx::query!(
        r#"SELECT u.id, u.username, u.email, u.email_verified_at IS NOT NULL AS "verified!", u.timezone,
                  COALESCE(p.in_app, $6) AS "in_app!", COALESCE(p.email, $7) AS "email_on!",
                  COALESCE(p.push, $8) AS "push_on!",
                  EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id) AS "has_device!",
                  s.quiet_start_minute AS "quiet_start?", s.quiet_end_minute AS "quiet_end?"
           FROM users u
           LEFT JOIN notification_preferences p ON p.user_id = u.id AND p.kind = 'admin.broadcast'
           LEFT JOIN notification_settings s ON s.user_id = u.id
           WHERE u.status = 'active' AND ($1::uuid IS NULL OR u.id > $1)
             AND ($2::text IS NULL OR u.role = $2)
             AND ($3::int IS NULL OR u.last_login_at >= now() - make_interval(days => $3))
             AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id AND d.platform = $4))
           ORDER BY u.id LIMIT $5"#,
        after,
        role,
        active_days,
        platform,
        page,
        kind.in_app,
        kind.email,
        kind.push
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = chrono::Utc::now();
    let in_app: Vec<Uuid> = rows
        .iter()
        .filter(|r| b.in_app && r.in_app)
        .map(|r| r.id)
        .collect();
    if !in_app.is_empty() {
        sqlx::query!(
            r#"INSERT INTO notifications (id, user_id, kind, event_id, title, body, link)
               SELECT gen_random_uuid(), u, 'admin.broadcast', $1, $2, $3, $4 FROM unnest($5::uuid[]) u
               ON CONFLICT (event_id, user_id) WHERE event_id IS NOT NULL DO NOTHING"#,
            event,
            b.title,
            b.body,
            b.link,
            &in_app
        )
        .execute(&mut *tx)
        .await?;
    }
    let (mut push, mut held): (Vec<Uuid>, Vec<Uuid>) = (Vec::new(), Vec::new());
    for r in rows.iter().filter(|r| b.push && r.push_on && r.has_device) {
        let is_quiet = match (r.quiet_start, r.quiet_end) {
            (Some(s), Some(e)) => notify::in_quiet_hours(now, &r.timezone, s, e),
            _ => false,
        };
        if is_quiet {
            held.push(r.id)
        } else {
            push.push(r.id)
        }
    }
    let mut outbox = Vec::new();
    if !push.is_empty() {
        let claimed = sqlx::query_scalar!(
            "INSERT INTO notification_deliveries (event_id, user_id, channel, status)
             SELECT $1, u, 'push', 'queued' FROM unnest($2::uuid[]) u
             ON CONFLICT DO NOTHING RETURNING user_id",
            event,
            &push
        )
        .fetch_all(&mut *tx)
        .await?;
        // One push job for the page: the push worker sends its devices concurrently.
        if !claimed.is_empty() {
            outbox.push(
                wp_shared::outbox::record(
                    &mut tx,
                    &SendPush {
                        event_id: event,
                        user_ids: claimed,
                    },
                )
                .await?,
            );
        }
    }
    if !held.is_empty() {
        sqlx::query!(
            "INSERT INTO notification_deliveries (event_id, user_id, channel, status)
             SELECT $1, u, 'push', 'skipped_quiet_hours' FROM unnest($2::uuid[]) u
             ON CONFLICT DO NOTHING",
            event,
            &held
        )
        .execute(&mut *tx)
        .await?;
    }
    let mut emailed = Vec::new();
    for r in rows.iter().filter(|r| b.email && r.email_on && r.verified) {
        if claim(&mut tx, event, r.id, "email", "queued").await? {
            let rendered = notify::render(
                "admin.broadcast",
                "",
                &r.username,
                &serde_json::json!({"title": b.title, "body": b.body, "link": b.link}),
                &ctx.config.frontend_url,
            )?;
            outbox.push(queue_email(&mut tx, r.email.clone(), rendered, "admin.broadcast").await?);
            emailed.push(r.id);
        }
    }
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == page;
    sqlx::query!(
        "UPDATE broadcasts SET processed = processed + $2, status = $3, page_cursor = $4,
             finished_at = CASE WHEN $3 = 'done' THEN now() END
         WHERE id = $1",
        event,
        i32::try_from(rows.len()).unwrap_or(i32::MAX),
        if full { "running" } else { "done" },
        rows.last().map(|r| r.id)
    )
    .execute(&mut *tx)
    .await?;
    if full && let Some(last) = rows.last() {
        outbox.push(
            wp_shared::outbox::record(
                &mut tx,
                &NotifyEvent {
                    event_id: event,
                    after: Some(last.id),
                },
            )
            .await?,
        );
    }
    tx.commit().await?;
    let stat = |user: Uuid, channel: &'static str, outcome: &'static str| Delivery {
        kind: "admin.broadcast",
        channel,
        outcome,
        user,
        event,
        event_at: b.created_at,
        detail: None,
    };
    for u in &in_app {
        record(ctx, stat(*u, "in_app", "delivered"));
    }
    for u in &push {
        record(ctx, stat(*u, "push", "queued"));
    }
    for u in &held {
        record(ctx, stat(*u, "push", "skipped_quiet_hours"));
    }
    for u in &emailed {
        record(ctx, stat(*u, "email", "queued"));
    }
    if !outbox.is_empty()
        && let Err(e) = wp_shared::outbox::relay_ids(&ctx.db, &ctx.enqueuer, &outbox).await
    {
        tracing::warn!(error = %e, "broadcast relay after commit failed; the sweep will retry");
    }
    Ok(())
}

/// Stores a rendered notification email and its send job in the caller's transaction;
/// returns the outbox id to relay after commit.
async fn queue_email(
    tx: &mut sqlx::PgConnection,
    to: String,
    r: notify::Rendered,
    kind: &str,
) -> Result<i64, sqlx::Error> {
    let (_, outbox) = wp_shared::email::queue(
        tx,
        &NewEmail {
            to,
            subject: r.subject,
            body_text: r.email_text,
            body_html: Some(r.email_html),
            kind: format!("notification:{kind}"),
        },
    )
    .await?;
    Ok(outbox)
}
