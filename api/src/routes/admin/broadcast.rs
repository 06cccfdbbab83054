//! `POST /api/admin/broadcast/`: a message from the team to every user or a segment,
//! through the notification pipeline (in-app, email, push as chosen; each user's
//! preferences for `admin.broadcast` still apply). Answers 202 with an id whose
//! progress `GET /api/admin/broadcast/{id}/` reports.

use crate::extract::Ids;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::{AuthUser, Role},
    error::{AppError, AppResult, FieldErrors},
    extract::JsonBody,
    response::{ApiResponse, Envelope},
    state::AppState,
};

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Only users with this role.
    pub role: Option<String>,
    /// Only users who signed in within this many days.
    pub active_within_days: Option<i32>,
    /// Only users with a device of this platform.
    pub platform: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    #[serde(default = "yes")]
    pub in_app: bool,
    #[serde(default)]
    pub email: bool,
    #[serde(default = "yes")]
    pub push: bool,
}

fn yes() -> bool {
    true
}

impl Default for Channels {
    fn default() -> Self {
        Self {
            in_app: true,
            email: false,
            push: true,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBroadcast {
    pub title: String,
    pub body: String,
    /// Frontend path the notification opens.
    pub link: Option<String>,
    #[serde(default)]
    pub channels: Channels,
    #[serde(default)]
    pub segment: Segment,
}

/// A broadcast and its progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct Broadcast {
    pub id: Uuid,
    pub title: String,
    /// `queued`, `running`, `done`.
    pub status: String,
    /// Users in the segment when it was sent.
    pub audience: i32,
    /// Users handled so far.
    pub processed: i32,
    /// The audience is cut into pages of users, run in parallel: how many, how many done.
    pub pages: i32,
    pub pages_done: i32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Sends a broadcast (admins). 202: it runs in the background.
#[utoipa::path(post, path = "/admin/broadcast/", tag = "admin", security(("bearer" = [])), request_body = NewBroadcast,
    responses((status = 202, body = inline(Envelope<Broadcast>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn send(
    State(state): State<AppState>,
    me: AuthUser,
    body: JsonBody,
) -> AppResult<ApiResponse<Broadcast>> {
    // Permission before the body: the schema is nobody else's business.
    me.require_role(Role::Admin)?;
    let b: NewBroadcast = body.parse()?;
    let mut errors = FieldErrors::new();
    let mut add = |f: &str, m: &str| errors.entry(f.to_owned()).or_default().push(m.to_owned());
    let title = b.title.trim().to_owned();
    let body = b.body.trim().to_owned();
    if title.is_empty() || title.chars().count() > 200 {
        add("title", "1 to 200 characters.");
    }
    if body.is_empty() || body.chars().count() > 2000 {
        add("body", "1 to 2000 characters.");
    }
    if b.link
        .as_ref()
        .is_some_and(|l| !l.starts_with('/') || l.len() > 500)
    {
        add("link", "A frontend path starting with `/`.");
    }
    if !(b.channels.in_app || b.channels.email || b.channels.push) {
        add("channels", "At least one channel.");
    }
    if b.segment
        .role
        .as_deref()
        .is_some_and(|r| !["user", "moderator", "admin"].contains(&r))
    {
        add("segment.role", "One of user, moderator, admin.");
    }
    if b.segment
        .active_within_days
        .is_some_and(|d| !(1..=3650).contains(&d))
    {
        add("segment.active_within_days", "Between 1 and 3650.");
    }
    if b.segment
        .platform
        .as_deref()
        .is_some_and(|p| !["ios", "android", "web"].contains(&p))
    {
        add("segment.platform", "One of ios, android, web.");
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    let segment = serde_json::to_value(&b.segment).map_err(anyhow::Error::from)?;
    let audience = sqlx::query_scalar!(
        r#"SELECT count(*)::int AS "n!" FROM broadcast_audience($1)"#,
        segment
    )
    .fetch_one(&mut *tx)
    .await?;
    let ob = wp_core::events::emit_with_id(
        &mut tx,
        id,
        "admin.broadcast",
        Some(me.id),
        None,
        serde_json::json!({ "title": title, "body": body, "link": b.link }),
    )
    .await?;
    let row = sqlx::query_as!(
        Broadcast,
        "INSERT INTO broadcasts (id, created_by, title, body, link, segment, in_app, email, push, audience)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id, title, status, audience, processed, pages, pages_done, created_at, finished_at",
        id,
        me.id,
        title,
        body,
        b.link,
        segment,
        b.channels.in_app,
        b.channels.email,
        b.channels.push,
        audience
    )
    .fetch_one(&mut *tx)
    .await?;
    wp_core::audit::record(
        &mut tx,
        &me,
        "broadcast.send",
        "broadcast",
        Some(id),
        serde_json::json!({ "title": title, "segment": segment, "audience": audience }),
    )
    .await?;
    tx.commit().await?;
    state.relay(&[ob]).await;
    Ok(ApiResponse::accepted(row))
}

/// A broadcast's progress (admins).
#[utoipa::path(get, path = "/admin/broadcast/{id}/", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Broadcast>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn progress(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Broadcast>> {
    me.require_role(Role::Admin)?;
    let row = sqlx::query_as!(
        Broadcast,
        "SELECT id, title, status, audience, processed, pages, pages_done, created_at, finished_at FROM broadcasts WHERE id = $1",
        id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(AppError::not_found)?;
    Ok(ApiResponse::ok(row))
}
