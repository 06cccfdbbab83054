//! The `notify` queue: one domain event becomes its notifications.
//!
//! The event's audience is resolved by its type: the addressed user, a party's members
//! (walked in pages), or a broadcast's segment (planned into pages run in parallel).
//! Every batch of recipients goes through [`deliver_batch`]: it reads their
//! preferences, writes the in-app rows in one statement, claims and queues the pushes
//! (one push job per batch) and the emails (or digest items), in the caller's
//! transaction. Exactly once as the user sees it: the in-app row is unique per (event,
//! recipient), and every other channel claims (event, recipient, channel) in
//! `notification_deliveries` before queueing, so a retried or duplicated job, or one
//! re-delivered after a crash, changes nothing twice.

use std::{collections::HashMap, sync::Arc};

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use uuid::Uuid;
use wp_core::notify::{self, Kind};
use wp_shared::{
    email::NewEmail,
    jobs::{NotifyEvent, SendPush},
};

use crate::Ctx;

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
    // A broadcast comes from the team, not from the admin who sent it.
    let team = kind.name == "admin.broadcast";
    Ok(Some(Loaded {
        kind,
        actor_id: if team { None } else { ev.actor_id },
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

pub async fn fan_out(
    job: NotifyEvent,
    ctx: Data<Arc<Ctx>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let result = fan_out_once(&job, &ctx).await;
    match result {
        Err(e) if crate::retry::last_attempt(&ctx.config, &attempt) => {
            // Given up: the job goes to the dead set, to be replayed once the cause is
            // fixed (every step is idempotent).
            tracing::warn!(error = %e, event = %job.event_id, "notification fan-out given up");
            Err(AbortError::new(std::io::Error::other(e.to_string())).into())
        }
        other => other,
    }
}

async fn fan_out_once(job: &NotifyEvent, ctx: &Arc<Ctx>) -> Result<(), BoxDynError> {
    let Some(ev) = load_event(ctx, job.event_id).await? else {
        return Ok(());
    };
    match (ev.kind.name, ev.recipient) {
        ("admin.broadcast", _) => match job.page {
            None => plan_broadcast(ctx, job.event_id).await,
            Some(page) => broadcast_page(ctx, job.event_id, &ev, page).await,
        },
        (kind, None) if let Some(audience) = Audience::of(kind) => {
            audience_pages(ctx, job.event_id, &ev, audience).await
        }
        (kind, Some(recipient)) => {
            // A block either way silences what the actor's acts would tell the other
            // (replies, mentions, requests, follows, invitations); what cannot be turned
            // off (security notices) still goes.
            if let Some(actor) = ev.actor_id
                && !ev.kind.required
                && wp_core::social::blocked_between(&mut *ctx.db.acquire().await?, actor, recipient)
                    .await?
            {
                tracing::info!(kind, event = %job.event_id, "not delivered: a block between actor and recipient");
                return Ok(());
            }
            let mut tx = ctx.db.begin().await?;
            let batch = deliver_batch(&mut tx, ctx, job.event_id, &ev, &[recipient], ALL).await?;
            tx.commit().await?;
            batch.finish(ctx).await;
            Ok(())
        }
        (kind, None) => {
            tracing::warn!(
                kind,
                "event without a recipient or an audience; nothing to do"
            );
            Ok(())
        }
    }
}

/// Who hears an event that names no recipient: the members of a party (an
/// announcement) or the users who answered an event (it moved, was cancelled, starts),
/// but never the actor, nor anyone the actor blocked or who blocked the actor.
#[derive(Debug, Clone, Copy)]
enum Audience {
    PartyMembers,
    EventAttendees,
    /// The users who answered an event and chose the reminder's lead.
    EventReminder,
}

impl Audience {
    fn of(kind: &str) -> Option<Self> {
        match kind {
            "party.announcement" | "poll.results" => Some(Self::PartyMembers),
            "event.updated" | "event.cancelled" | "event.starting" => Some(Self::EventAttendees),
            "event.reminder" => Some(Self::EventReminder),
            _ => None,
        }
    }

    /// The payload field with the id, and the page query (`$1` the id, `$2` the last
    /// user of the previous page, `$3` the actor, `$4` the page size; a reminder's `$5`
    /// its lead, see [`Self::lead`]).
    fn query(self) -> (&'static str, &'static str) {
        match self {
            Self::PartyMembers => (
                "party_id",
                "SELECT user_id FROM party_members
                  WHERE party_id = $1 AND ($2::uuid IS NULL OR user_id > $2)
                    AND user_id IS DISTINCT FROM $3 AND NOT blocked_between(user_id, $3)
                  ORDER BY user_id LIMIT $4",
            ),
            Self::EventAttendees => (
                "event_id",
                "SELECT user_id FROM event_attendees
                  WHERE event_id = $1 AND status IN ('going', 'maybe', 'waitlisted', 'pending')
                    AND ($2::uuid IS NULL OR user_id > $2)
                    AND user_id IS DISTINCT FROM $3 AND NOT blocked_between(user_id, $3)
                  ORDER BY user_id LIMIT $4",
            ),
            Self::EventReminder => (
                "event_id",
                "SELECT a.user_id FROM event_attendees a
                   LEFT JOIN notification_settings n ON n.user_id = a.user_id
                  WHERE a.event_id = $1 AND a.status IN ('going', 'maybe', 'waitlisted', 'pending')
                    AND $5 = ANY(COALESCE(n.event_reminder_minutes, default_event_reminder_minutes()))
                    AND ($2::uuid IS NULL OR a.user_id > $2)
                    AND a.user_id IS DISTINCT FROM $3 AND NOT blocked_between(a.user_id, $3)
                  ORDER BY a.user_id LIMIT $4",
            ),
        }
    }

    /// The payload field bound as `$5`, if the query has one.
    fn lead(self) -> Option<&'static str> {
        match self {
            Self::EventReminder => Some("lead_minutes"),
            _ => None,
        }
    }
}

/// The audience of an event, in pages of `NOTIFY_PAGE_SIZE`, each page in its own
/// transaction. A repeated job redoes nothing (the rows and claims are unique).
async fn audience_pages(
    ctx: &Arc<Ctx>,
    event: Uuid,
    ev: &Loaded,
    audience: Audience,
) -> Result<(), BoxDynError> {
    let (field, query) = audience.query();
    let Some(id) = ev.payload[field]
        .as_str()
        .and_then(|p| p.parse::<Uuid>().ok())
    else {
        tracing::warn!(%event, field, "audience event without its id");
        return Ok(());
    };
    let page = i64::from(ctx.config.notify_page_size);
    let mut after: Option<Uuid> = None;
    loop {
        let mut q = sqlx::query_scalar(query)
            .bind(id)
            .bind(after)
            .bind(ev.actor_id)
            .bind(page);
        if let Some(field) = audience.lead() {
            q = q.bind(
                ev.payload[field]
                    .as_i64()
                    .and_then(|l| i32::try_from(l).ok()),
            );
        }
        let users: Vec<Uuid> = q.fetch_all(&ctx.db).await?;
        let Some(last) = users.last().copied() else {
            return Ok(());
        };
        let mut tx = ctx.db.begin().await?;
        let batch = deliver_batch(&mut tx, ctx, event, ev, &users, ALL).await?;
        tx.commit().await?;
        batch.finish(ctx).await;
        if (users.len() as i64) < page {
            return Ok(());
        }
        after = Some(last);
    }
}

/// Which channels a delivery may use at all (a broadcast chooses; the users'
/// preferences narrow it further).
#[derive(Debug, Clone, Copy)]
pub struct Channels {
    pub in_app: bool,
    pub email: bool,
    pub push: bool,
}

const ALL: Channels = Channels {
    in_app: true,
    email: true,
    push: true,
};

/// A new in-app row, for its `notification` frame.
struct NewRow {
    user: Uuid,
    id: Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    title: String,
    body: String,
    link: String,
}

/// What a batch wrote, to act on after its transaction commits.
#[must_use]
pub struct Batch {
    kind: &'static str,
    actor: Option<Uuid>,
    payload: serde_json::Value,
    rows: Vec<NewRow>,
    outbox: Vec<i64>,
    stats: Vec<Delivery>,
}

impl Batch {
    /// Relays the queued jobs, sends the `notification` frames, records the statistics.
    async fn finish(self, ctx: &Arc<Ctx>) {
        relay(ctx, &self.outbox).await;
        let frames: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                (
                    r.user,
                    notify::NotificationFrame {
                        id: r.id,
                        kind: self.kind,
                        title: &r.title,
                        body: &r.body,
                        link: Some(&r.link),
                        actor_id: self.actor,
                        data: &self.payload,
                        is_read: false,
                        read_at: None,
                        created_at: r.created_at,
                    },
                )
            })
            .collect();
        publish(ctx, &frames).await;
        record(ctx, self.stats);
    }
}

/// Delivers event `ev` to `users` (a batch, up to a page) in the caller's transaction:
/// each active user's preferences for the type decide the channels (`allowed` narrows
/// them); in-app rows in one statement, push claims in one statement and one push job
/// for the batch (quiet hours hold a push back), emails one by one (or as digest items).
/// Texts are rendered per recipient language; only the email names the recipient.
async fn deliver_batch(
    tx: &mut sqlx::PgConnection,
    ctx: &Ctx,
    event: Uuid,
    ev: &Loaded,
    users: &[Uuid],
    allowed: Channels,
) -> Result<Batch, BoxDynError> {
    let kind = ev.kind;
    let rows = sqlx::query!(
        r#"SELECT u.id, u.username, u.email, u.email_verified_at IS NOT NULL AS "verified!",
                  u.timezone, u.locale,
                  COALESCE(p.in_app, $3) AS "in_app!", COALESCE(p.email, $4) AS "email_on!",
                  COALESCE(p.push, $5) AS "push_on!",
                  ARRAY(SELECT DISTINCT d.platform FROM devices d WHERE d.user_id = u.id) AS "platforms!",
                  s.quiet_start_minute AS "quiet_start?", s.quiet_end_minute AS "quiet_end?",
                  COALESCE(s.email_digest, 'off') AS "digest!"
           FROM users u
           LEFT JOIN notification_preferences p ON p.user_id = u.id AND p.kind = $2
           LEFT JOIN notification_settings s ON s.user_id = u.id
           WHERE u.id = ANY($1) AND u.status = 'active'
           ORDER BY u.id"#,
        users,
        kind.name,
        kind.in_app,
        kind.email,
        kind.push
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = chrono::Utc::now();
    // In-app and push texts name the actor and the payload, not the recipient: one
    // rendering per language.
    let mut texts: HashMap<String, notify::Rendered> = HashMap::new();
    for r in &rows {
        if !texts.contains_key(&r.locale) {
            let t = notify::render(
                kind.name,
                &r.locale,
                &ev.actor,
                "",
                &ev.payload,
                &ctx.config.frontend_url,
            )?;
            texts.insert(r.locale.clone(), t);
        }
    }
    let (mut ids, mut to, mut titles, mut bodies, mut links) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows
        .iter()
        .filter(|r| allowed.in_app && (kind.required || r.in_app))
    {
        let t = &texts[&r.locale];
        ids.push(Uuid::now_v7());
        to.push(r.id);
        titles.push(t.title.clone());
        bodies.push(t.body.clone());
        links.push(t.link.clone());
    }
    let mut new_rows = Vec::new();
    if !to.is_empty() {
        let created = sqlx::query!(
            r#"INSERT INTO notifications (id, user_id, kind, event_id, actor_id, title, body, link, data)
               SELECT i, u, $1, $2, $3, t, b, l, $4
               FROM unnest($5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::text[]) AS x(i, u, t, b, l)
               ON CONFLICT (event_id, user_id) WHERE event_id IS NOT NULL DO NOTHING
               RETURNING id, user_id, created_at, title, body, link AS "link!""#,
            kind.name,
            event,
            ev.actor_id,
            ev.payload,
            &ids,
            &to,
            &titles,
            &bodies,
            &links
        )
        .fetch_all(&mut *tx)
        .await?;
        new_rows = created
            .into_iter()
            .map(|c| NewRow {
                user: c.user_id,
                id: c.id,
                created_at: c.created_at,
                title: c.title,
                body: c.body,
                link: c.link,
            })
            .collect();
    }
    let (mut push, mut held) = (Vec::new(), Vec::new());
    for r in rows
        .iter()
        .filter(|r| allowed.push && r.push_on && r.platforms.iter().any(|p| ctx.push.serves(p)))
    {
        let quiet = match (r.quiet_start, r.quiet_end) {
            (Some(s), Some(e)) => notify::in_quiet_hours(now, &r.timezone, s, e),
            _ => false,
        };
        if quiet {
            held.push(r.id);
        } else {
            push.push(r.id);
        }
    }
    let mut outbox = Vec::new();
    let claimed = claim_many(&mut *tx, event, &push, "push", "queued").await?;
    if !claimed.is_empty() {
        outbox.push(
            wp_shared::outbox::record(
                &mut *tx,
                &SendPush {
                    event_id: event,
                    user_ids: claimed.clone(),
                },
            )
            .await?,
        );
    }
    let held = claim_many(&mut *tx, event, &held, "push", "skipped_quiet_hours").await?;
    // Digests fold the email into the next digest; required types are never held back.
    let (mut direct, mut digest) = (Vec::new(), Vec::new());
    for r in rows
        .iter()
        .filter(|r| allowed.email && !kind.emailed_by_flow && r.email_on && r.verified)
    {
        if r.digest != "off" && !kind.required {
            digest.push(r.id);
        } else {
            direct.push(r);
        }
    }
    let digested = claim_many(&mut *tx, event, &digest, "email", "digest").await?;
    for user in &digested {
        let r = rows.iter().find(|r| r.id == *user).ok_or("digest user")?;
        let t = &texts[&r.locale];
        sqlx::query!(
            "INSERT INTO notification_digest_items (event_id, user_id, kind, title, body, link)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            event,
            r.id,
            kind.name,
            t.title,
            t.body,
            t.link
        )
        .execute(&mut *tx)
        .await?;
    }
    let direct_ids: Vec<Uuid> = direct.iter().map(|r| r.id).collect();
    let emailed = claim_many(&mut *tx, event, &direct_ids, "email", "queued").await?;
    for r in direct.iter().filter(|r| emailed.contains(&r.id)) {
        // The email greets the recipient by name.
        let rendered = notify::render(
            kind.name,
            &r.locale,
            &ev.actor,
            &r.username,
            &ev.payload,
            &ctx.config.frontend_url,
        )?;
        outbox
            .push(queue_email(&mut *tx, r.email.clone(), &rendered, kind.name, event, r.id).await?);
    }
    let stat = |user: &Uuid, channel: &'static str, outcome: &'static str| Delivery {
        kind: kind.name,
        channel,
        outcome,
        user: *user,
        event,
        event_at: ev.created_at,
        detail: None,
    };
    let stats = new_rows
        .iter()
        .map(|r| stat(&r.user, "in_app", "delivered"))
        .chain(claimed.iter().map(|u| stat(u, "push", "queued")))
        .chain(held.iter().map(|u| stat(u, "push", "skipped_quiet_hours")))
        .chain(digested.iter().map(|u| stat(u, "email", "digest")))
        .chain(emailed.iter().map(|u| stat(u, "email", "queued")))
        .collect();
    Ok(Batch {
        kind: kind.name,
        actor: ev.actor_id,
        payload: ev.payload.clone(),
        rows: new_rows,
        outbox,
        stats,
    })
}

/// Pushes what the transaction recorded in the outbox (the sweep retries a failure).
pub(crate) async fn relay(ctx: &Ctx, outbox: &[i64]) {
    wp_shared::outbox::relay(&ctx.db, &ctx.enqueuer, outbox).await;
}

/// New in-app notifications to the users' sockets (best effort: they are in the list).
async fn publish(ctx: &Ctx, frames: &[(Uuid, notify::NotificationFrame<'_>)]) {
    let mut redis = ctx.enqueuer.connection();
    if let Err(e) = notify::publish_frames(&mut redis, &ctx.config.redis_prefix, frames).await {
        tracing::warn!(error = %e, "notification frames not published");
    }
}

/// Claims (event, user, channel) for each of `users`; returns those claimed now (not
/// before).
async fn claim_many(
    tx: &mut sqlx::PgConnection,
    event: Uuid,
    users: &[Uuid],
    channel: &str,
    status: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar!(
        "INSERT INTO notification_deliveries (event_id, user_id, channel, status)
         SELECT $1, u, $3, $4 FROM unnest($2::uuid[]) u
         ON CONFLICT DO NOTHING RETURNING user_id",
        event,
        users,
        channel,
        status
    )
    .fetch_all(&mut *tx)
    .await
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
    let dropped = ctx.analytics.offer(rows);
    if dropped > 0 {
        tracing::debug!(
            dropped,
            "delivery statistics dropped: the analytics writer is behind"
        );
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
    let page = i64::from(ctx.config.notify_page_size);
    // Every page-th id of the audience: the last id of each full page.
    let bounds = sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM (
               SELECT a.id, row_number() OVER (ORDER BY a.id) AS n FROM broadcast_audience($1) a
           ) a WHERE n % $2 = 0 ORDER BY id"#,
        segment,
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

/// One page of a broadcast's audience: the users of the page's id range in the
/// segment, delivered as one batch, the page marked done and the progress, all in one
/// transaction. A page runs once (a repeated job finds it done); pages of one broadcast
/// run in parallel.
async fn broadcast_page(
    ctx: &Arc<Ctx>,
    event: Uuid,
    ev: &Loaded,
    page: i32,
) -> Result<(), BoxDynError> {
    let Some(b) = sqlx::query!(
        "SELECT segment, in_app, email, push FROM broadcasts WHERE id = $1",
        event
    )
    .fetch_optional(&ctx.db)
    .await?
    else {
        return Ok(());
    };
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
    let users = sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM broadcast_audience($1)
           WHERE ($2::uuid IS NULL OR id > $2) AND ($3::uuid IS NULL OR id <= $3)
           ORDER BY id"#,
        b.segment,
        range.after_id,
        range.last_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let allowed = Channels {
        in_app: b.in_app,
        email: b.email,
        push: b.push,
    };
    let batch = deliver_batch(&mut tx, ctx, event, ev, &users, allowed).await?;
    let n = i32::try_from(users.len())?;
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
    batch.finish(ctx).await;
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
