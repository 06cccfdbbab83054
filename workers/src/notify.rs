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

/// An event as the push worker renders it, per recipient language.
pub struct PushTexts {
    pub kind: &'static str,
    /// When the event happened (delivery latency counts from here).
    pub created_at: chrono::DateTime<chrono::Utc>,
    actor: String,
    payload: serde_json::Value,
    by_language: std::collections::HashMap<String, notify::Rendered>,
}

impl PushTexts {
    /// The texts in `locale`'s language (title, body and link name the actor and the
    /// payload, never the recipient, so one rendering serves every recipient of a
    /// language).
    pub fn get(
        &mut self,
        locale: &str,
        frontend_url: &str,
    ) -> Result<&notify::Rendered, BoxDynError> {
        let key = locale.to_owned();
        if !self.by_language.contains_key(&key) {
            let r = notify::render(
                self.kind,
                locale,
                &self.actor,
                "",
                &self.payload,
                frontend_url,
            )?;
            self.by_language.insert(key.clone(), r);
        }
        Ok(&self.by_language[&key])
    }
}

/// Loads `event` for the push worker. None if it is gone.
pub async fn push_texts(ctx: &Ctx, event: Uuid) -> Result<Option<PushTexts>, BoxDynError> {
    let Some(ev) = load_event(ctx, event).await? else {
        return Ok(None);
    };
    Ok(Some(PushTexts {
        kind: ev.kind.name,
        created_at: ev.created_at,
        actor: ev.actor,
        payload: ev.payload,
        by_language: std::collections::HashMap::new(),
    }))
}

pub async fn fan_out(job: NotifyEvent, ctx: Data<Arc<Ctx>>) -> Result<(), BoxDynError> {
    let Some(ev) = load_event(&ctx, job.event_id).await? else {
        return Ok(());
    };
    if ev.kind.name == "admin.broadcast" {
        return match job.page {
            None => plan_broadcast(&ctx, job.event_id).await,
            Some(page) => broadcast_page(&ctx, job.event_id, page).await,
        };
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
        r#"SELECT u.username, u.email, u.email_verified_at IS NOT NULL AS "verified!", u.locale,
                  p.in_app AS "in_app?", p.email AS "email_on?", p.push AS "push_on?",
                  u.timezone, s.quiet_start_minute AS "quiet_start?", s.quiet_end_minute AS "quiet_end?",
                  COALESCE(s.email_digest, 'off') AS "digest!",
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
        &user.locale,
        actor,
        &user.username,
        payload,
        &ctx.config.frontend_url,
    )?;
    let mut created = None;
    if choice.in_app {
        created = sqlx::query!(
            r#"INSERT INTO notifications (id, user_id, kind, event_id, actor_id, title, body, link, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (event_id, user_id) WHERE event_id IS NOT NULL DO NOTHING
               RETURNING id, created_at"#,
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
        .fetch_optional(&mut *tx)
        .await?;
    }
    let mut outbox = Vec::new();
    // Digests fold the email into the next digest; required types are never held back.
    let digest = user.digest != "off" && !kind.required;
    let mut email_outcome = "queued";
    if choice.email && digest {
        email_outcome = "digest";
        if claim(&mut tx, event, recipient, "email", "digest").await? {
            sqlx::query!(
                "INSERT INTO notification_digest_items (event_id, user_id, kind, title, body, link)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                event,
                recipient,
                kind.name,
                r.title,
                r.body,
                r.link
            )
            .execute(&mut *tx)
            .await?;
        }
    } else if choice.email && claim(&mut tx, event, recipient, "email", "queued").await? {
        outbox.push(queue_email(&mut tx, user.email, &r, kind.name, event, recipient).await?);
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
    if let Some(row) = &created {
        let frame = notify::NotificationFrame {
            id: row.id,
            kind: kind.name,
            title: &r.title,
            body: &r.body,
            link: Some(&r.link),
            actor_id,
            data: payload,
            is_read: false,
            read_at: None,
            created_at: row.created_at,
        };
        publish(ctx, &[(recipient, frame)]).await;
    }
    let stat = |channel: &'static str, outcome: &'static str| Delivery {
        kind: kind.name,
        channel,
        outcome,
        user: recipient,
        event,
        event_at: ev.created_at,
        detail: None,
    };
    let mut stats = Vec::new();
    if created.is_some() {
        stats.push(stat("in_app", "delivered"));
    }
    if choice.email {
        stats.push(stat("email", email_outcome));
    }
    if choice.push {
        stats.push(stat(
            "push",
            if quiet {
                "skipped_quiet_hours"
            } else {
                "queued"
            },
        ));
    }
    record(ctx, stats);
    relay(ctx, &outbox).await;
    Ok(())
}

/// Pushes what the transaction recorded in the outbox (the sweep retries a failure).
async fn relay(ctx: &Ctx, outbox: &[i64]) {
    if !outbox.is_empty()
        && let Err(e) = wp_shared::outbox::relay_ids(&ctx.db, &ctx.enqueuer, outbox).await
    {
        tracing::warn!(error = %e, "relay after commit failed; the sweep will retry");
    }
}

/// New in-app notifications to the users' sockets (best effort: they are in the list).
async fn publish(ctx: &Ctx, frames: &[(Uuid, notify::NotificationFrame<'_>)]) {
    let mut redis = ctx.enqueuer.connection();
    if let Err(e) = notify::publish_frames(&mut redis, &ctx.config.redis_prefix, frames).await {
        tracing::warn!(error = %e, "notification frames not published");
    }
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

/// Writes `notification.delivery` events to ClickHouse through the batched writer,
/// without holding the job up (statistics are best effort; the delivery records in
/// PostgreSQL are the truth).
pub fn record(ctx: &Arc<Ctx>, deliveries: Vec<Delivery>) {
    if deliveries.is_empty() {
        return;
    }
    let now = chrono::Utc::now();
    let rows = deliveries
        .into_iter()
        .map(|d| {
            let latency_ms = (now - d.event_at).num_milliseconds().max(0);
            crate::analytics::to_row(&wp_shared::jobs::AnalyticsEvent::new(
                "notification.delivery",
                Some(d.user),
                None,
                serde_json::json!({
                    "kind": d.kind, "channel": d.channel, "outcome": d.outcome,
                    "latency_ms": latency_ms, "event_id": d.event, "detail": d.detail,
                }),
            ))
        })
        .collect();
    let ctx = ctx.clone();
    tokio::spawn(async move { ctx.analytics.submit(rows).await });
}

/// A broadcast's segment, as the SQL filters take it.
struct Segment {
    role: Option<String>,
    active_days: Option<i32>,
    platform: Option<String>,
}

impl Segment {
    fn of(segment: &serde_json::Value) -> Self {
        Self {
            role: segment["role"].as_str().map(str::to_owned),
            active_days: segment["active_within_days"]
                .as_i64()
                .and_then(|d| i32::try_from(d).ok()),
            platform: segment["platform"].as_str().map(str::to_owned),
        }
    }
}

/// Plans a broadcast: cuts its audience (by user id) into pages of `NOTIFY_PAGE_SIZE`
/// users and queues a job per page, all in one transaction; the pages then run in
/// parallel on every notify worker. Runs once (the broadcast leaves `queued`).
async fn plan_broadcast(ctx: &Arc<Ctx>, event: Uuid) -> Result<(), BoxDynError> {
    let mut tx = ctx.db.begin().await?;
    let Some(segment) = sqlx::query_scalar!(
        "SELECT segment FROM broadcasts WHERE id = $1 AND status = 'queued' FOR UPDATE",
        event
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(()); // gone, or planned already
    };
    let seg = Segment::of(&segment);
    let page = i64::from(ctx.config.notify_page_size);
    // Every page-th id of the audience: the last id of each full page.
    let bounds = sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM (
               SELECT u.id, row_number() OVER (ORDER BY u.id) AS n FROM users u
               WHERE u.status = 'active'
                 AND ($1::text IS NULL OR u.role = $1)
                 AND ($2::int IS NULL OR u.last_login_at >= now() - make_interval(days => $2))
                 AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id AND d.platform = $3))
           ) a WHERE n % $4 = 0 ORDER BY id"#,
        seg.role,
        seg.active_days,
        seg.platform,
        page
    )
    .fetch_all(&mut *tx)
    .await?;
    // Pages (after, last]: the first from the start, the last open-ended (it also takes
    // users who joined since the count).
    let mut after: Vec<Option<Uuid>> = vec![None];
    after.extend(bounds.iter().copied().map(Some));
    let mut last: Vec<Option<Uuid>> = bounds.iter().copied().map(Some).collect();
    last.push(None);
    let numbers: Vec<i32> = (0..i32::try_from(after.len())?).collect();
    sqlx::query!(
        "INSERT INTO broadcast_pages (broadcast_id, page, after_id, last_id)
         SELECT $1, * FROM unnest($2::int[], $3::uuid[], $4::uuid[])",
        event,
        &numbers,
        &after as &[Option<Uuid>],
        &last as &[Option<Uuid>]
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE broadcasts SET status = 'running', pages = $2 WHERE id = $1",
        event,
        numbers.len() as i32
    )
    .execute(&mut *tx)
    .await?;
    let jobs: Vec<NotifyEvent> = numbers
        .iter()
        .map(|&p| NotifyEvent {
            event_id: event,
            page: Some(p),
        })
        .collect();
    let outbox = wp_shared::outbox::record_many(&mut tx, &jobs).await?;
    tx.commit().await?;
    relay(ctx, &outbox).await;
    Ok(())
}

/// One page of a broadcast's audience: the in-app rows in one statement, the push
/// claims in one statement and one push job for them, emails (or digest items), the
/// page marked done and the progress, all in one transaction. A page runs once (a
/// repeated job finds it done); pages of one broadcast run in parallel.
async fn broadcast_page(ctx: &Arc<Ctx>, event: Uuid, page: i32) -> Result<(), BoxDynError> {
    let Some(b) = sqlx::query!(
        "SELECT title, body, link, segment, in_app, email, push, created_at FROM broadcasts WHERE id = $1",
        event
    )
    .fetch_optional(&ctx.db)
    .await?
    else {
        return Ok(());
    };
    let seg = Segment::of(&b.segment);
    // The catalogue's defaults for users who never chose.
    let kind = notify::kind("admin.broadcast").ok_or("admin.broadcast is not in the catalogue")?;
    let mut tx = ctx.db.begin().await?;
    let Some(range) = sqlx::query!(
        "SELECT after_id, last_id FROM broadcast_pages
         WHERE broadcast_id = $1 AND page = $2 AND done_at IS NULL FOR UPDATE",
        event,
        page
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(()); // done already
    };
    let rows = sqlx::query!(
        r#"SELECT u.id, u.username, u.email, u.email_verified_at IS NOT NULL AS "verified!", u.timezone, u.locale,
                  COALESCE(p.in_app, $6) AS "in_app!", COALESCE(p.email, $7) AS "email_on!",
                  COALESCE(p.push, $8) AS "push_on!",
                  EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id) AS "has_device!",
                  s.quiet_start_minute AS "quiet_start?", s.quiet_end_minute AS "quiet_end?",
                  COALESCE(s.email_digest, 'off') AS "digest!"
           FROM users u
           LEFT JOIN notification_preferences p ON p.user_id = u.id AND p.kind = 'admin.broadcast'
           LEFT JOIN notification_settings s ON s.user_id = u.id
           WHERE u.status = 'active' AND ($1::uuid IS NULL OR u.id > $1) AND ($5::uuid IS NULL OR u.id <= $5)
             AND ($2::text IS NULL OR u.role = $2)
             AND ($3::int IS NULL OR u.last_login_at >= now() - make_interval(days => $3))
             AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.id AND d.platform = $4))
           ORDER BY u.id"#,
        range.after_id,
        seg.role,
        seg.active_days,
        seg.platform,
        range.last_id,
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
    let created = if in_app.is_empty() {
        Vec::new()
    } else {
        sqlx::query!(
            r#"INSERT INTO notifications (id, user_id, kind, event_id, title, body, link)
               SELECT gen_random_uuid(), u, 'admin.broadcast', $1, $2, $3, $4 FROM unnest($5::uuid[]) u
               ON CONFLICT (event_id, user_id) WHERE event_id IS NOT NULL DO NOTHING
               RETURNING id, user_id, created_at"#,
            event,
            b.title,
            b.body,
            b.link,
            &in_app
        )
        .fetch_all(&mut *tx)
        .await?
    };
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
    let claimed = if push.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar!(
            "INSERT INTO notification_deliveries (event_id, user_id, channel, status)
             SELECT $1, u, 'push', 'queued' FROM unnest($2::uuid[]) u
             ON CONFLICT DO NOTHING RETURNING user_id",
            event,
            &push
        )
        .fetch_all(&mut *tx)
        .await?
    };
    // One push job for the page: the push worker sends its devices concurrently.
    if !claimed.is_empty() {
        outbox.push(
            wp_shared::outbox::record(
                &mut tx,
                &SendPush {
                    event_id: event,
                    user_ids: claimed.clone(),
                },
            )
            .await?,
        );
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
    let payload = serde_json::json!({"title": b.title, "body": b.body, "link": b.link});
    for r in rows.iter().filter(|r| b.email && r.email_on && r.verified) {
        let rendered = notify::render(
            "admin.broadcast",
            &r.locale,
            "",
            &r.username,
            &payload,
            &ctx.config.frontend_url,
        )?;
        if r.digest != "off" {
            if claim(&mut tx, event, r.id, "email", "digest").await? {
                sqlx::query!(
                    "INSERT INTO notification_digest_items (event_id, user_id, kind, title, body, link)
                     VALUES ($1, $2, 'admin.broadcast', $3, $4, $5) ON CONFLICT DO NOTHING",
                    event,
                    r.id,
                    rendered.title,
                    rendered.body,
                    rendered.link
                )
                .execute(&mut *tx)
                .await?;
                emailed.push((r.id, "digest"));
            }
        } else if claim(&mut tx, event, r.id, "email", "queued").await? {
            let to = r.email.clone();
            outbox.push(queue_email(&mut tx, to, &rendered, "admin.broadcast", event, r.id).await?);
            emailed.push((r.id, "queued"));
        }
    }
    let n = i32::try_from(rows.len())?;
    sqlx::query!(
        "UPDATE broadcast_pages SET done_at = now(), users = $3 WHERE broadcast_id = $1 AND page = $2",
        event,
        page,
        n
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE broadcasts SET processed = processed + $2, pages_done = pages_done + 1,
             status = CASE WHEN pages_done + 1 >= pages THEN 'done' ELSE status END,
             finished_at = CASE WHEN pages_done + 1 >= pages THEN now() END
         WHERE id = $1",
        event,
        n
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    relay(ctx, &outbox).await;
    let frames: Vec<_> = created
        .iter()
        .map(|c| {
            (
                c.user_id,
                notify::NotificationFrame {
                    id: c.id,
                    kind: "admin.broadcast",
                    title: &b.title,
                    body: &b.body,
                    link: b.link.as_deref(),
                    actor_id: None,
                    data: &serde_json::Value::Null,
                    is_read: false,
                    read_at: None,
                    created_at: c.created_at,
                },
            )
        })
        .collect();
    publish(ctx, &frames).await;
    let stat = |user: Uuid, channel: &'static str, outcome: &'static str| Delivery {
        kind: "admin.broadcast",
        channel,
        outcome,
        user,
        event,
        event_at: b.created_at,
        detail: None,
    };
    let stats = created
        .iter()
        .map(|c| stat(c.user_id, "in_app", "delivered"))
        .chain(claimed.iter().map(|u| stat(*u, "push", "queued")))
        .chain(held.iter().map(|u| stat(*u, "push", "skipped_quiet_hours")))
        .chain(emailed.iter().map(|(u, o)| stat(*u, "email", o)))
        .collect();
    record(ctx, stats);
    Ok(())
}

/// Stores a rendered notification email and its send job in the caller's transaction;
/// returns the outbox id to relay after commit. The email names its (event, recipient)
/// so the email worker can record the final outcome in the statistics.
async fn queue_email(
    tx: &mut sqlx::PgConnection,
    to: String,
    r: &notify::Rendered,
    kind: &str,
    event: Uuid,
    recipient: Uuid,
) -> Result<i64, sqlx::Error> {
    let (_, outbox) = wp_shared::email::queue_about(
        tx,
        &NewEmail {
            to,
            subject: r.subject.clone(),
            body_text: r.email_text.clone(),
            body_html: Some(r.email_html.clone()),
            kind: format!("notification:{kind}"),
        },
        Some((event, recipient)),
    )
    .await?;
    Ok(outbox)
}
