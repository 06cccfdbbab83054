//! In-app notifications, notification preferences and push devices:
//! `/api/notifications/...` and `POST /api/mobile/push-token/`. Notifications are
//! written by the `notify` worker from domain events (`workers/src/notify.rs`); every
//! route here acts on the caller's own rows only (another user's id is a 404).

use crate::extract::Ids;
use axum::{
    extract::{OriginalUri, Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wp_core::{
    device::{NewDevice, Platform, Registered},
    notify::KINDS,
};

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult},
    extract::{Json, Query},
    response::{ApiResponse, CursorPage, Envelope, encode_cursor},
    state::AppState,
};

/// An in-app notification.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    /// The type, e.g. `comment.reply` (see `GET /api/notifications/preferences/`).
    pub kind: String,
    pub title: String,
    pub body: String,
    /// Frontend path it opens.
    pub link: Option<String>,
    pub actor_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub is_read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationListParams {
    /// `true`: unread only; `false`: read only.
    pub unread: Option<bool>,
    /// One type only.
    pub kind: Option<String>,
    pub cursor: Option<String>,
    /// Items per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct Position {
    t: DateTime<Utc>,
    id: Uuid,
}

/// The caller's notifications, newest first (cursor pagination).
#[utoipa::path(get, path = "/notifications/", tag = "notifications", security(("bearer" = [])), params(NotificationListParams),
    responses((status = 200, body = inline(Envelope<CursorPage<Notification>>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    Query(q): Query<NotificationListParams>,
) -> AppResult<ApiResponse<CursorPage<Notification>>> {
    let (pos, size) = crate::response::CursorParams {
        cursor: q.cursor.clone(),
        page_size: q.page_size,
    }
    .validate::<Position>()?;
    if let Some(k) = &q.kind
        && !KINDS.iter().any(|x| x.name == k)
    {
        return Err(AppError::field("kind", "Unknown notification type."));
    }
    let rows = sqlx::query_as!(
        Notification,
        r#"SELECT id, kind, title, body, link, actor_id, data, read_at IS NOT NULL AS "is_read!",
                  read_at, created_at
           FROM notifications
           WHERE user_id = $1
             AND ($2::bool IS NULL OR (read_at IS NULL) = $2)
             AND ($3::text IS NULL OR kind = $3)
             AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
           ORDER BY created_at DESC, id DESC LIMIT $6"#,
        me.id,
        q.unread,
        q.kind,
        pos.as_ref().map(|p| p.t),
        pos.as_ref().map_or(Uuid::nil(), |p| p.id),
        i64::from(size) + 1
    )
    .fetch_all(&state.db)
    .await?;
    let more = rows.len() > size as usize;
    let results: Vec<Notification> = rows.into_iter().take(size as usize).collect();
    let next = more.then(|| results.last()).flatten().map(|n| {
        encode_cursor(&Position {
            t: n.created_at,
            id: n.id,
        })
    });
    Ok(ApiResponse::ok(CursorPage {
        results,
        next,
        previous: None,
    }))
}

/// `user`'s notifications for a sync: among `ids`, or the newest 100 (`None`).
pub(crate) async fn for_sync(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
    ids: Option<&[Uuid]>,
) -> sqlx::Result<Vec<Notification>> {
    sqlx::query_as(
        "SELECT id, kind, title, body, link, actor_id, data, read_at IS NOT NULL AS is_read,
                read_at, created_at
           FROM notifications
          WHERE user_id = $1 AND ($2::uuid[] IS NULL OR id = ANY($2))
          ORDER BY created_at DESC, id DESC LIMIT 100",
    )
    .bind(user)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    /// The same name as in the notification socket's `notifications_state`.
    pub unread_count: i64,
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/notifications/unread-count/", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<UnreadCount>))))]
#[tracing::instrument(skip_all)]
pub async fn unread_count(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<UnreadCount>> {
    Ok(ApiResponse::ok(UnreadCount {
        unread_count: unread(&state.db, me.id).await?,
    }))
}

use wp_core::notify::unread;

/// Which notifications a bulk action applies to: `ids`, or `all: true`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    #[serde(default)]
    pub ids: Vec<Uuid>,
    #[serde(default)]
    pub all: bool,
}

impl Selection {
    fn check(&self) -> AppResult<()> {
        // Exactly one of the two.
        if self.all != self.ids.is_empty() {
            return Err(AppError::field(
                "ids",
                "Give `ids` (1 to 500) or `all: true`.",
            ));
        }
        if self.ids.len() > 500 {
            return Err(AppError::field("ids", "At most 500 at a time."));
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Affected {
    /// Rows changed (ids that are not the caller's are ignored).
    pub count: u64,
}

/// Marks one notification read.
#[utoipa::path(post, path = "/notifications/{id}/read/", tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Affected>)), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn read_one(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Affected>> {
    // `opened` is counted once: only a row that was unread is returned as newly read.
    let row = sqlx::query!(
        r#"WITH target AS (SELECT id, read_at FROM notifications WHERE id = $1 AND user_id = $2),
                upd AS (UPDATE notifications n SET read_at = now() FROM target t
                        WHERE n.id = t.id AND t.read_at IS NULL RETURNING n.kind, n.created_at)
           SELECT (SELECT count(*) FROM target) AS "found!", upd.kind AS "kind?", upd.created_at AS "created_at?"
           FROM (SELECT 1) one LEFT JOIN upd ON TRUE"#,
        id,
        me.id
    )
    .fetch_one(&state.db)
    .await?;
    if row.found == 0 {
        return Err(AppError::not_found());
    }
    if let (Some(kind), Some(at)) = (row.kind, row.created_at) {
        record_opened(&state, me.id, vec![(kind, at)]).await;
    }
    Ok(ApiResponse::ok(Affected { count: 1 }))
}

/// Marks many (`ids`) or all (`all: true`) of the caller's notifications read.
#[utoipa::path(post, path = "/notifications/read/", tag = "notifications", security(("bearer" = [])), request_body = Selection,
    responses((status = 200, body = inline(Envelope<Affected>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn read_many(
    State(state): State<AppState>,
    me: AuthUser,
    Json(sel): Json<Selection>,
) -> AppResult<ApiResponse<Affected>> {
    sel.check()?;
    let rows = sqlx::query!(
        "UPDATE notifications SET read_at = now()
         WHERE user_id = $1 AND read_at IS NULL AND ($2 OR id = ANY($3))
         RETURNING kind, created_at",
        me.id,
        sel.all,
        &sel.ids
    )
    .fetch_all(&state.db)
    .await?;
    let count = rows.len() as u64;
    // Opens are counted for explicit selections (at most 500); "mark all read" is a
    // clean-up, not an open.
    if !sel.all {
        record_opened(
            &state,
            me.id,
            rows.into_iter().map(|r| (r.kind, r.created_at)).collect(),
        )
        .await;
    }
    Ok(ApiResponse::ok(Affected { count }))
}

/// Deletes one notification.
#[utoipa::path(delete, path = "/notifications/{id}/", tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete_one(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let n = sqlx::query!(
        "DELETE FROM notifications WHERE id = $1 AND user_id = $2",
        id,
        me.id
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    crate::response::deleted(n)
}

/// Deletes many (`ids`) or all (`all: true`) of the caller's notifications.
#[utoipa::path(post, path = "/notifications/delete/", tag = "notifications", security(("bearer" = [])), request_body = Selection,
    responses((status = 200, body = inline(Envelope<Affected>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete_many(
    State(state): State<AppState>,
    me: AuthUser,
    Json(sel): Json<Selection>,
) -> AppResult<ApiResponse<Affected>> {
    sel.check()?;
    let count = sqlx::query!(
        "DELETE FROM notifications WHERE user_id = $1 AND ($2 OR id = ANY($3))",
        me.id,
        sel.all,
        &sel.ids
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    Ok(ApiResponse::ok(Affected { count }))
}

/// One type's channels for the caller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Preference {
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub in_app: bool,
    pub email: bool,
    pub push: bool,
    /// Cannot be turned off.
    #[serde(default)]
    pub required: bool,
}

async fn preferences_of(state: &AppState, user: Uuid) -> AppResult<Vec<Preference>> {
    let saved = sqlx::query!(
        "SELECT kind, in_app, email, push FROM notification_preferences WHERE user_id = $1",
        user
    )
    .fetch_all(&state.db)
    .await?;
    Ok(KINDS
        .iter()
        .map(|k| {
            let s = saved.iter().find(|s| s.kind == k.name);
            Preference {
                kind: k.name.to_owned(),
                description: k.description.to_owned(),
                in_app: k.required || s.map_or(k.in_app, |s| s.in_app),
                email: !k.emailed_by_flow && s.map_or(k.email, |s| s.email),
                push: s.map_or(k.push, |s| s.push),
                required: k.required,
            }
        })
        .collect())
}

/// Every notification type with the caller's channels (defaults until changed).
#[utoipa::path(get, path = "/notifications/preferences/", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<Vec<Preference>>))))]
#[tracing::instrument(skip_all)]
pub async fn preferences(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<Vec<Preference>>> {
    Ok(ApiResponse::ok(preferences_of(&state, me.id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceUpdate {
    pub kind: String,
    pub in_app: bool,
    pub email: bool,
    pub push: bool,
}

/// Sets channels for the types given (others keep theirs). A required type cannot lose
/// its in-app channel.
#[utoipa::path(put, path = "/notifications/preferences/", tag = "notifications", security(("bearer" = [])), request_body = Vec<PreferenceUpdate>,
    responses((status = 200, body = inline(Envelope<Vec<Preference>>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_preferences(
    State(state): State<AppState>,
    me: AuthUser,
    Json(updates): Json<Vec<PreferenceUpdate>>,
) -> AppResult<ApiResponse<Vec<Preference>>> {
    let mut tx = state.db.begin().await?;
    for (i, u) in updates.iter().enumerate() {
        let Some(k) = KINDS.iter().find(|k| k.name == u.kind) else {
            return Err(AppError::field(
                format!("[{i}].kind"),
                "Unknown notification type.",
            ));
        };
        if k.required && !u.in_app {
            return Err(AppError::field(
                format!("[{i}].in_app"),
                "This type cannot be turned off.",
            ));
        }
        sqlx::query!(
            "INSERT INTO notification_preferences (user_id, kind, in_app, email, push)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (user_id, kind) DO UPDATE
             SET in_app = EXCLUDED.in_app, email = EXCLUDED.email, push = EXCLUDED.push, updated_at = now()",
            me.id,
            u.kind,
            u.in_app,
            u.email,
            u.push
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(ApiResponse::ok(preferences_of(&state, me.id).await?))
}

// ---- devices ----------------------------------------------------------------------

pub use wp_core::device::Device;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushToken {
    /// The app's stable id for this install (unique).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub device_id: String,
    pub platform: String,
    /// The FCM registration token (`android`, `web`: letters, digits, `-_:.`) or the
    /// APNs device token (`ios`: 64 to 200 hexadecimal digits).
    pub push_token: String,
    #[serde(default)]
    pub app_version: String,
}

/// Registers a device (201) or refreshes its token (200). A `device_id` registered by
/// another account moves to the caller only with the install's current push token (the
/// app was signed in again on that phone); otherwise 409 `device_taken` (the app makes
/// a new install id). An account keeps its 20 most recently refreshed devices.
#[utoipa::path(post, path = "/mobile/push-token/", tag = "notifications", security(("bearer" = [])), request_body = PushToken,
    responses((status = 201, description = "A new device", body = inline(Envelope<Device>)),
              (status = 200, description = "A known device, refreshed", body = inline(Envelope<Device>)),
              (status = 400, body = crate::error::ErrorBody),
              (status = 409, description = "`device_taken`: the install is another account's", body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn push_token(
    State(state): State<AppState>,
    me: AuthUser,
    Json(b): Json<PushToken>,
) -> AppResult<ApiResponse<Device>> {
    let mut errors = crate::error::FieldErrors::new();
    if b.device_id.trim().is_empty() || b.device_id.len() > 200 {
        errors.insert("device_id".into(), vec!["1 to 200 characters.".into()]);
    }
    let platform = b.platform.parse::<Platform>().ok();
    match platform {
        None => {
            errors.insert("platform".into(), vec!["One of ios, android, web.".into()]);
        }
        Some(p) => {
            if let Some(problem) = wp_core::device::token_problem(p, b.push_token.trim()) {
                errors.insert("push_token".into(), vec![problem.into()]);
            }
        }
    }
    if b.app_version.len() > 50 {
        errors.insert("app_version".into(), vec!["At most 50 characters.".into()]);
    }
    let Some(platform) = platform.filter(|_| errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let new = NewDevice {
        device_id: b.device_id.trim(),
        platform,
        push_token: b.push_token.trim(),
        app_version: &b.app_version,
    };
    match wp_core::device::register(&state.db, me.id, &new).await? {
        Registered::Created(d) => Ok(ApiResponse::created(d)),
        Registered::Refreshed(d) => Ok(ApiResponse::ok(d)),
        Registered::Taken => Err(AppError::Conflict {
            code: "device_taken",
            message: "This install is registered to another account; sign out there, or \
                      register with the install's current push token."
                .to_owned(),
        }),
    }
}

/// The caller's devices.
#[utoipa::path(get, path = "/mobile/devices/", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<Vec<Device>>))))]
#[tracing::instrument(skip_all)]
pub async fn devices(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<Vec<Device>>> {
    let rows = sqlx::query_as!(
        Device,
        "SELECT device_id, platform, app_version, created_at, updated_at FROM devices
         WHERE user_id = $1 ORDER BY updated_at DESC",
        me.id
    )
    .fetch_all(&state.db)
    .await?;
    Ok(ApiResponse::ok(rows))
}

/// Unregisters one of the caller's devices.
#[utoipa::path(delete, path = "/mobile/devices/{device_id}/", tag = "notifications", security(("bearer" = [])),
    params(("device_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete_device(
    State(state): State<AppState>,
    me: AuthUser,
    Path(device_id): Path<String>,
) -> AppResult<StatusCode> {
    if device_id.contains('\0') {
        // No device has such an id (and PostgreSQL could not even compare it).
        return Err(AppError::not_found());
    }
    let n = sqlx::query!(
        "DELETE FROM devices WHERE device_id = $1 AND user_id = $2",
        device_id,
        me.id
    )
    .execute(&state.db)
    .await?
    .rows_affected();
    crate::response::deleted(n)
}

// ---- settings -----------------------------------------------------------------------

/// Quiet hours, `"HH:MM"` in the user's timezone; may wrap midnight.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub start: String,
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    pub end: String,
}

/// How notification emails are sent: one by one, or folded into a digest sent after
/// 08:00 in the user's timezone, every day or every Monday.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmailDigest {
    #[default]
    Off,
    Daily,
    Weekly,
}

impl EmailDigest {
    fn as_str(self) -> &'static str {
        match self {
            EmailDigest::Off => "off",
            EmailDigest::Daily => "daily",
            EmailDigest::Weekly => "weekly",
        }
    }
}

/// Notification settings beyond the per-type channels.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationSettings {
    /// No push during these hours (in-app and email still arrive); null: none.
    pub quiet_hours: Option<QuietHours>,
    /// `off` (each email on its own), `daily` or `weekly` (one digest email; types
    /// that cannot be turned off are still sent at once).
    pub email_digest: EmailDigest,
    /// The account's timezone the hours are read in (`PATCH /api/users/me/`).
    pub timezone: String,
    /// When event reminders come: minutes before the start, up to 3 of 5, 10, 15, 30,
    /// 60, 120, 1440, 2880, 10080; `[]` for none. Default `[1440, 15]`.
    #[schema(example = json!([1440, 15]))]
    pub event_reminders: Vec<i32>,
}

/// The whole settings (a field left out takes its default: no quiet hours, no digest).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    pub quiet_hours: Option<QuietHours>,
    #[serde(default)]
    pub email_digest: EmailDigest,
    /// Left out: the default, `[1440, 15]`.
    pub event_reminders: Option<Vec<i32>>,
}

async fn settings_of(state: &AppState, user: Uuid) -> AppResult<NotificationSettings> {
    #[derive(sqlx::FromRow)]
    struct Row {
        timezone: String,
        start: Option<i16>,
        end: Option<i16>,
        digest: String,
        leads: Vec<i32>,
    }
    let r: Row = sqlx::query_as(
        "SELECT u.timezone, s.quiet_start_minute AS start, s.quiet_end_minute AS end,
                COALESCE(s.email_digest, 'off') AS digest,
                COALESCE(s.event_reminder_minutes, default_event_reminder_minutes()) AS leads
           FROM users u LEFT JOIN notification_settings s ON s.user_id = u.id WHERE u.id = $1",
    )
    .bind(user)
    .fetch_one(&state.db)
    .await?;
    use wp_core::notify::format_hhmm;
    Ok(NotificationSettings {
        quiet_hours: r.start.zip(r.end).map(|(s, e)| QuietHours {
            start: format_hhmm(s),
            end: format_hhmm(e),
        }),
        email_digest: match r.digest.as_str() {
            "daily" => EmailDigest::Daily,
            "weekly" => EmailDigest::Weekly,
            _ => EmailDigest::Off,
        },
        timezone: r.timezone,
        event_reminders: r.leads,
    })
}

/// The caller's quiet hours (and the timezone they are read in) and email digest.
#[utoipa::path(get, path = "/notifications/settings/", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<NotificationSettings>))))]
#[tracing::instrument(skip_all)]
pub async fn settings(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<NotificationSettings>> {
    Ok(ApiResponse::ok(settings_of(&state, me.id).await?))
}

/// Replaces the caller's settings: quiet hours (`null`: none) and the email digest.
#[utoipa::path(put, path = "/notifications/settings/", tag = "notifications", security(("bearer" = [])), request_body = SettingsUpdate,
    responses((status = 200, body = inline(Envelope<NotificationSettings>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn set_settings(
    State(state): State<AppState>,
    me: AuthUser,
    Json(b): Json<SettingsUpdate>,
) -> AppResult<ApiResponse<NotificationSettings>> {
    use wp_core::notify::parse_hhmm;
    let (start, end) = match &b.quiet_hours {
        Some(q) => {
            let s = parse_hhmm(&q.start)
                .ok_or_else(|| AppError::field("quiet_hours.start", "A time as HH:MM."))?;
            let e = parse_hhmm(&q.end)
                .ok_or_else(|| AppError::field("quiet_hours.end", "A time as HH:MM."))?;
            if s == e {
                return Err(AppError::field(
                    "quiet_hours.end",
                    "Must differ from the start.",
                ));
            }
            (Some(s), Some(e))
        }
        None => (None, None),
    };
    if let Some(leads) = &b.event_reminders {
        wp_core::event::check_reminder_leads(leads)
            .map_err(|m| AppError::field("event_reminders", m))?;
    }
    // A digest turned on counts from now (what is pending then goes in the first one).
    sqlx::query(
        "INSERT INTO notification_settings (user_id, quiet_start_minute, quiet_end_minute, email_digest,
                                            event_reminder_minutes, last_digest_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (user_id) DO UPDATE
         SET quiet_start_minute = EXCLUDED.quiet_start_minute,
             quiet_end_minute = EXCLUDED.quiet_end_minute, email_digest = EXCLUDED.email_digest,
             event_reminder_minutes = EXCLUDED.event_reminder_minutes,
             last_digest_at = CASE WHEN notification_settings.email_digest = 'off' THEN now()
                                   ELSE notification_settings.last_digest_at END,
             updated_at = now()",
    )
    .bind(me.id)
    .bind(start)
    .bind(end)
    .bind(b.email_digest.as_str())
    .bind(&b.event_reminders)
    .execute(&state.db)
    .await?;
    Ok(ApiResponse::ok(settings_of(&state, me.id).await?))
}

// ---- statistics ---------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Days back from today (default 7, at most 90).
    #[param(minimum = 1, maximum = 90)]
    pub days: Option<u32>,
}

/// Deliveries of one type, channel and outcome on one day.
#[derive(Debug, Serialize, Deserialize, ToSchema, clickhouse::Row)]
pub struct DeliveryStat {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub kind: String,
    /// `in_app`, `email`, `push`.
    pub channel: String,
    /// `delivered`, `opened` (in-app), `queued`, `sent`, `dead`, `retry`, `failed`,
    /// `skipped_quiet_hours`.
    pub outcome: String,
    pub count: u64,
    /// From the event to this outcome, milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
}

/// Delivery statistics by day, type, channel and outcome, from ClickHouse (admins).
#[utoipa::path(get, path = "/notifications/stats/", tag = "notifications", security(("bearer" = [])), params(StatsParams),
    responses((status = 200, body = inline(Envelope<Vec<DeliveryStat>>)), (status = 403, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn stats(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
) -> AppResult<ApiResponse<Vec<DeliveryStat>>> {
    me.require_role(crate::auth::Role::Admin)?;
    // Read only once the caller may: a stranger learns nothing of the parameters.
    let q: StatsParams = crate::extract::parse_query(uri.query())?;
    let days = q.days.unwrap_or(7);
    if !(1..=90).contains(&days) {
        return Err(AppError::field("days", "Between 1 and 90."));
    }
    let query = state
        .clickhouse
        .query(
            "SELECT toString(toDate(occurred_at)) AS day,
                    visitParamExtractString(properties, 'kind') AS kind,
                    visitParamExtractString(properties, 'channel') AS channel,
                    visitParamExtractString(properties, 'outcome') AS outcome,
                    toUInt64(count()) AS count,
                    quantileExact(0.5)(toFloat64(visitParamExtractInt(properties, 'latency_ms'))) AS p50,
                    quantileExact(0.95)(toFloat64(visitParamExtractInt(properties, 'latency_ms'))) AS p95
             FROM events FINAL
             WHERE event_type = 'notification.delivery' AND occurred_at >= now() - ?
             GROUP BY day, kind, channel, outcome
             ORDER BY day DESC, kind, channel, outcome",
        )
        .bind(u64::from(days) * 86_400)
        .fetch_all::<DeliveryStat>();
    let rows = crate::analytics::clickhouse_answer(&state, query).await?;
    Ok(ApiResponse::ok(rows))
}

/// Records that notifications were opened (read), for the statistics.
async fn record_opened(state: &AppState, user: Uuid, rows: Vec<(String, DateTime<Utc>)>) {
    for (kind, created_at) in rows {
        let latency_ms = (Utc::now() - created_at).num_milliseconds().max(0);
        crate::analytics::record(
            state,
            wp_shared::jobs::AnalyticsEvent::new(
                "notification.delivery",
                Some(user),
                None,
                serde_json::json!({ "kind": kind, "channel": "in_app", "outcome": "opened", "latency_ms": latency_ms }),
            ),
        )
        .await;
    }
}

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(unread_count))
        .routes(routes!(stats))
        .routes(routes!(read_one))
        .routes(routes!(read_many))
        .routes(routes!(delete_one))
        .routes(routes!(delete_many))
        .routes(routes!(preferences, set_preferences))
        .routes(routes!(settings, set_settings))
        .routes(routes!(push_token))
        .routes(routes!(devices))
        .routes(routes!(delete_device))
}
