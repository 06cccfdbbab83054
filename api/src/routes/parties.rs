//! Watch parties over REST, under `/api/parties/`: create, list, detail, update,
//! delete; join (by id or invite code) and leave with host hand-over; roles, kick and
//! ban; participants with presence; chat history, edit and delete. The live side
//! (playback, chat, typing, reactions, voice, screen share) is the party socket
//! (`realtime/`, `docs/realtime.md`); what changes here is told to the sockets through
//! the party's Redis channel.

use axum::{
    extract::{Path, State},
    http::{StatusCode, Uri},
};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wp_shared::{
    frame::Frame,
    party::{self as live, BusMsg, Keys, PartyVideo, Playback},
};

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult, FieldErrors},
    extract::{Json, Query},
    response::{
        ApiResponse, CursorPage, CursorParams, Envelope, PageParams, Paginated, encode_cursor,
        request_url,
    },
    routes::{social::UserSummary, videos::visible_video},
    state::AppState,
};

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2000;
pub const MESSAGE_MAX: usize = 1000;
const INVITE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const INVITE_LEN: usize = 8;

/// A member's role in a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartyRole {
    Member,
    Cohost,
    Host,
}

impl PartyRole {
    pub fn parse(s: &str) -> Self {
        match s {
            "host" => Self::Host,
            "cohost" => Self::Cohost,
            _ => Self::Member,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Cohost => "cohost",
            Self::Member => "member",
        }
    }
}

/// The settings of a party (who may control playback, chat, buffering policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartySettings {
    /// `host`, `cohosts` (host and co-hosts) or `everyone`.
    pub control_mode: String,
    pub chat_enabled: bool,
    /// Seconds a member waits between chat messages (0: off). Hosts and co-hosts are exempt.
    pub slow_mode_seconds: i32,
    pub max_members: i32,
    pub allow_screen_share: bool,
    /// `wait`: the room pauses while a member buffers (at most `buffer_wait_ms`);
    /// `independent`: a lagging member catches up on its own.
    pub sync_policy: String,
    pub buffer_wait_ms: i32,
}

impl PartySettings {
    /// Whether a member of `role` may send `video_control`.
    pub fn may_control(&self, role: PartyRole) -> bool {
        match self.control_mode.as_str() {
            "everyone" => true,
            "cohosts" => role >= PartyRole::Cohost,
            _ => role == PartyRole::Host,
        }
    }
}

/// A watch party.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Party {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub host: UserSummary,
    pub video: PartyVideoOut,
    /// `public`, `friends` or `private`.
    pub visibility: String,
    /// Present for the host and co-hosts (and staff).
    pub invite_code: Option<String>,
    /// The invite link to share (frontend URL), with `invite_code`.
    pub invite_url: Option<String>,
    pub settings: PartySettings,
    pub member_count: i64,
    /// The caller's role, if a member.
    pub my_role: Option<PartyRole>,
    pub status: String,
    /// The playback state as last stored (live in the socket's `video_state`).
    #[schema(value_type = Object)]
    pub playback: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartyVideoOut {
    pub id: Option<Uuid>,
    pub url: Option<String>,
    pub title: Option<String>,
}

struct Row {
    id: Uuid,
    title: String,
    description: String,
    host_id: Uuid,
    host_username: String,
    host_display_name: String,
    video_id: Option<Uuid>,
    video_title: Option<String>,
    external_url: Option<String>,
    visibility: String,
    invite_code: String,
    control_mode: String,
    chat_enabled: bool,
    slow_mode_seconds: i32,
    max_members: i32,
    allow_screen_share: bool,
    sync_policy: String,
    buffer_wait_ms: i32,
    member_count: i64,
    my_role: Option<String>,
    status: String,
    playback: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn settings(&self) -> PartySettings {
        PartySettings {
            control_mode: self.control_mode.clone(),
            chat_enabled: self.chat_enabled,
            slow_mode_seconds: self.slow_mode_seconds,
            max_members: self.max_members,
            allow_screen_share: self.allow_screen_share,
            sync_policy: self.sync_policy.clone(),
            buffer_wait_ms: self.buffer_wait_ms,
        }
    }

    fn role(&self) -> Option<PartyRole> {
        self.my_role.as_deref().map(PartyRole::parse)
    }

    fn into_api(self, state: &AppState, staff: bool) -> Party {
        let settings = self.settings();
        let my_role = self.role();
        let sees_code = staff || my_role.is_some_and(|r| r >= PartyRole::Cohost);
        let invite_url = sees_code.then(|| {
            format!(
                "{}/parties/join/{}",
                state.config.frontend_url.trim_end_matches('/'),
                self.invite_code
            )
        });
        Party {
            id: self.id,
            title: self.title,
            description: self.description,
            host: UserSummary {
                id: self.host_id,
                username: self.host_username,
                display_name: self.host_display_name,
            },
            video: PartyVideoOut {
                id: self.video_id,
                url: self.external_url,
                title: self.video_title,
            },
            visibility: self.visibility,
            invite_code: sees_code.then_some(self.invite_code),
            invite_url,
            settings,
            member_count: self.member_count,
            my_role,
            status: self.status,
            playback: self.playback,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Loads a party `me` may see (member, staff, public, or friends-only and a friend of
/// the host); 404 otherwise, and for a malformed id.
async fn visible_party(conn: &mut PgConnection, me: &AuthUser, raw_id: &str) -> AppResult<Row> {
    let id: Uuid = raw_id.parse().map_err(|_| AppError::not_found())?;
    load_row(conn, me, id)
        .await?
        .ok_or_else(AppError::not_found)
}

async fn load_row(conn: &mut PgConnection, me: &AuthUser, id: Uuid) -> AppResult<Option<Row>> {
    Ok(sqlx::query_as!(
        Row,
        r#"SELECT p.id, p.title, p.description, p.host_id, u.username AS host_username,
                  u.display_name AS host_display_name, p.video_id, v.title AS "video_title?",
                  p.external_url, p.visibility, p.invite_code, p.control_mode, p.chat_enabled,
                  p.slow_mode_seconds, p.max_members, p.allow_screen_share, p.sync_policy,
                  p.buffer_wait_ms,
                  (SELECT count(*) FROM party_members m WHERE m.party_id = p.id) AS "member_count!",
                  (SELECT m.role FROM party_members m WHERE m.party_id = p.id AND m.user_id = $2) AS my_role,
                  p.status, p.playback, p.created_at, p.updated_at
           FROM parties p JOIN users u ON u.id = p.host_id
           LEFT JOIN videos v ON v.id = p.video_id
           WHERE p.id = $1 AND p.status = 'active' AND (
               $3 OR p.visibility = 'public'
               OR EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = p.id AND m.user_id = $2)
               OR (p.visibility = 'friends' AND EXISTS (
                   SELECT 1 FROM friendships f
                   WHERE f.user_a = LEAST(p.host_id, $2) AND f.user_b = GREATEST(p.host_id, $2))))"#,
        id,
        me.id,
        me.is_staff()
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// [`visible_party`] under a row lock on the party, taken before anything is read, so
/// membership changes (joins, hand-overs, role changes, kicks) are serialised and
/// every check sees the roles as they are.
async fn locked_party(conn: &mut PgConnection, me: &AuthUser, raw_id: &str) -> AppResult<Row> {
    let id: Uuid = raw_id.parse().map_err(|_| AppError::not_found())?;
    sqlx::query_scalar!("SELECT id FROM parties WHERE id = $1 FOR UPDATE", id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(AppError::not_found)?;
    visible_party(conn, me, raw_id).await
}

/// The caller's role in a party they can see: 403 `not_a_member` if none.
fn member_role(row: &Row) -> AppResult<PartyRole> {
    row.role()
        .ok_or_else(|| AppError::forbidden("not_a_member", "Join the party first."))
}

/// 403 unless the caller is at least `min` in the party (staff always pass).
fn require_party_role(row: &Row, me: &AuthUser, min: PartyRole) -> AppResult<()> {
    if me.is_staff() || row.role().is_some_and(|r| r >= min) {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "permission_denied",
            match min {
                PartyRole::Host => "Only the host may do this.",
                _ => "Only the host or a co-host may do this.",
            },
        ))
    }
}

fn invite_code() -> String {
    let mut rng = rand::rng();
    (0..INVITE_LEN)
        .map(|_| INVITE_ALPHABET[rng.random_range(0..INVITE_ALPHABET.len())] as char)
        .collect()
}

/// Tells the party's sockets (every realtime node) about a change. Best effort: the
/// change is already committed; sockets also re-read on reconnect.
pub async fn notify(state: &AppState, party: Uuid, msg: BusMsg) {
    let keys = Keys::new(&state.config.redis_prefix, party);
    let mut redis = state.redis.clone();
    if let Err(e) = live::publish(&mut redis, &keys, &msg).await {
        tracing::warn!(error = %e, %party, "could not publish to the party channel");
    }
}

fn bus(frame: Frame) -> BusMsg {
    BusMsg {
        origin: "api".into(),
        to_user: None,
        frame: Some(frame),
        disconnect: None,
    }
}

fn user_json(id: Uuid, username: &str) -> serde_json::Value {
    json!({ "id": id, "username": username })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyFields {
    pub title: Option<String>,
    pub description: Option<String>,
    /// A library video the caller can see (ready).
    pub video_id: Option<Uuid>,
    /// An external http(s) URL, instead of a library video.
    pub external_url: Option<String>,
    pub visibility: Option<String>,
    pub control_mode: Option<String>,
    pub chat_enabled: Option<bool>,
    pub slow_mode_seconds: Option<i32>,
    pub max_members: Option<i32>,
    pub allow_screen_share: Option<bool>,
    pub sync_policy: Option<String>,
    pub buffer_wait_ms: Option<i32>,
}

fn check_fields(f: &mut PartyFields, creating: bool) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    let mut add = |field: &str, msg: &str| {
        errors
            .entry(field.to_owned())
            .or_default()
            .push(msg.to_owned());
    };
    if let Some(t) = &mut f.title {
        *t = t.trim().to_owned();
        if t.is_empty() {
            add("title", "This field may not be blank.");
        } else if t.chars().count() > TITLE_MAX {
            add("title", &format!("At most {TITLE_MAX} characters."));
        }
    } else if creating {
        add("title", "This field is required.");
    }
    if f.description
        .as_ref()
        .is_some_and(|d| d.chars().count() > DESCRIPTION_MAX)
    {
        add(
            "description",
            &format!("At most {DESCRIPTION_MAX} characters."),
        );
    }
    if let Some(u) = &f.external_url {
        let ok = url::Url::parse(u)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok || u.len() > 2000 {
            add("external_url", "An http(s) URL of at most 2000 characters.");
        }
        if f.video_id.is_some() {
            add(
                "external_url",
                "Give a video_id or an external_url, not both.",
            );
        }
    }
    let one_of = |v: &Option<String>, allowed: &[&str]| {
        v.as_ref().is_some_and(|v| !allowed.contains(&v.as_str()))
    };
    if one_of(&f.visibility, &["public", "friends", "private"]) {
        add("visibility", "One of public, friends, private.");
    }
    if one_of(&f.control_mode, &["host", "cohosts", "everyone"]) {
        add("control_mode", "One of host, cohosts, everyone.");
    }
    if one_of(&f.sync_policy, &["wait", "independent"]) {
        add("sync_policy", "One of wait, independent.");
    }
    if f.slow_mode_seconds
        .is_some_and(|s| !(0..=3600).contains(&s))
    {
        add("slow_mode_seconds", "Between 0 and 3600.");
    }
    if f.max_members.is_some_and(|s| !(2..=5000).contains(&s)) {
        add("max_members", "Between 2 and 5000.");
    }
    if f.buffer_wait_ms.is_some_and(|s| !(0..=60000).contains(&s)) {
        add("buffer_wait_ms", "Between 0 and 60000.");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Creates a party; the caller becomes its host.
#[utoipa::path(post, path = "/parties/", tag = "parties", security(("bearer" = [])), request_body = PartyFields,
    responses((status = 201, body = inline(Envelope<Party>)), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    Json(mut body): Json<PartyFields>,
) -> AppResult<ApiResponse<Party>> {
    check_fields(&mut body, true)?;
    let mut tx = state.db.begin().await?;
    if let Some(video) = body.video_id {
        let v = visible_video(&mut tx, Some(&me), &video.to_string())
            .await
            .map_err(|_| AppError::field("video_id", "No such video."))?;
        if v.status != "ready" {
            return Err(AppError::field("video_id", "The video is not ready yet."));
        }
    }
    let id = Uuid::now_v7();
    let now = Utc::now().timestamp_millis();
    let playback = Playback::new(
        PartyVideo {
            id: body.video_id,
            url: body.external_url.clone(),
        },
        now,
    );
    sqlx::query!(
        r#"INSERT INTO parties (id, host_id, title, description, video_id, external_url, visibility,
               invite_code, control_mode, chat_enabled, slow_mode_seconds, max_members,
               allow_screen_share, sync_policy, buffer_wait_ms, playback)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"#,
        id,
        me.id,
        body.title.unwrap_or_default(),
        body.description.unwrap_or_default(),
        body.video_id,
        body.external_url,
        body.visibility.unwrap_or_else(|| "public".into()),
        invite_code(),
        body.control_mode.unwrap_or_else(|| "host".into()),
        body.chat_enabled.unwrap_or(true),
        body.slow_mode_seconds.unwrap_or(0),
        body.max_members.unwrap_or(50),
        body.allow_screen_share.unwrap_or(true),
        body.sync_policy.unwrap_or_else(|| "wait".into()),
        body.buffer_wait_ms.unwrap_or(8000),
        serde_json::to_value(&playback).map_err(anyhow::Error::from)?,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO party_members (party_id, user_id, role) VALUES ($1, $2, 'host')",
        id,
        me.id
    )
    .execute(&mut *tx)
    .await?;
    let row = load_row(&mut tx, &me, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(ApiResponse::created(row.into_api(&state, me.is_staff())))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartyListParams {
    /// `all` (default: every party the caller can see), `public`, `friends` (friends'
    /// parties) or `mine` (parties the caller is a member of).
    pub scope: Option<String>,
    /// Words in the title.
    pub search: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

/// Lists active parties, newest first.
#[utoipa::path(get, path = "/parties/", tag = "parties", security(("bearer" = [])), params(PartyListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Party>>)), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    uri: Uri,
    Query(q): Query<PartyListParams>,
) -> AppResult<ApiResponse<Paginated<Party>>> {
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    let scope = q.scope.as_deref().unwrap_or("all");
    if !["all", "public", "friends", "mine"].contains(&scope) {
        return Err(AppError::field(
            "scope",
            "One of all, public, friends, mine.",
        ));
    }
    let search = q
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            format!(
                "%{}%",
                s.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
    let mut conn = state.db.acquire().await?;
    let rows = sqlx::query_as!(
        Row,
        r#"WITH visible AS (
               SELECT p.*,
                      (SELECT m.role FROM party_members m WHERE m.party_id = p.id AND m.user_id = $1) AS my_role,
                      EXISTS (SELECT 1 FROM friendships f
                              WHERE f.user_a = LEAST(p.host_id, $1) AND f.user_b = GREATEST(p.host_id, $1)) AS host_is_friend
               FROM parties p
               WHERE p.status = 'active'
                 AND ($3::text IS NULL OR p.title ILIKE $3)
                 AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker = p.host_id AND b.blocked = $1)
           ), scoped AS (
               SELECT * FROM visible v
               WHERE CASE $2
                   WHEN 'public' THEN v.visibility = 'public'
                   WHEN 'friends' THEN v.host_is_friend AND v.visibility IN ('public', 'friends')
                   WHEN 'mine' THEN v.my_role IS NOT NULL
                   ELSE v.my_role IS NOT NULL OR v.visibility = 'public'
                        OR (v.visibility = 'friends' AND v.host_is_friend)
               END
           )
           SELECT s.id, s.title, s.description, s.host_id, u.username AS host_username,
                  u.display_name AS host_display_name, s.video_id, vid.title AS "video_title?",
                  s.external_url, s.visibility, s.invite_code, s.control_mode, s.chat_enabled,
                  s.slow_mode_seconds, s.max_members, s.allow_screen_share, s.sync_policy,
                  s.buffer_wait_ms,
                  (SELECT count(*) FROM party_members m WHERE m.party_id = s.id) AS "member_count!",
                  s.my_role, s.status, s.playback, s.created_at, s.updated_at
           FROM scoped s JOIN users u ON u.id = s.host_id
           LEFT JOIN videos vid ON vid.id = s.video_id
           ORDER BY s.created_at DESC, s.id DESC
           LIMIT $4 OFFSET $5"#,
        me.id,
        scope,
        search,
        page.limit(),
        page.offset()
    )
    .fetch_all(&mut *conn)
    .await?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM parties p
           WHERE p.status = 'active'
             AND ($3::text IS NULL OR p.title ILIKE $3)
             AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker = p.host_id AND b.blocked = $1)
             AND (
               CASE $2
                 WHEN 'public' THEN p.visibility = 'public'
                 WHEN 'friends' THEN p.visibility IN ('public', 'friends') AND EXISTS (
                     SELECT 1 FROM friendships f
                     WHERE f.user_a = LEAST(p.host_id, $1) AND f.user_b = GREATEST(p.host_id, $1))
                 WHEN 'mine' THEN EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = p.id AND m.user_id = $1)
                 ELSE p.visibility = 'public'
                   OR EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = p.id AND m.user_id = $1)
                   OR (p.visibility = 'friends' AND EXISTS (
                       SELECT 1 FROM friendships f
                       WHERE f.user_a = LEAST(p.host_id, $1) AND f.user_b = GREATEST(p.host_id, $1)))
               END)"#,
        me.id,
        scope,
        search
    )
    .fetch_one(&mut *conn)
    .await?;
    let staff = me.is_staff();
    let results = rows
        .into_iter()
        .map(|r| r.into_api(&state, staff))
        .collect();
    Ok(ApiResponse::ok(Paginated::new(
        results,
        count,
        page,
        &request_url(&state, &uri),
    )))
}

/// A party the caller can see.
#[utoipa::path(get, path = "/parties/{id}/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Party>)), (status = 404, body = crate::error::ErrorBody)))]
pub async fn detail(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> AppResult<ApiResponse<Party>> {
    let mut conn = state.db.acquire().await?;
    let mut row = visible_party(&mut conn, &me, &id).await?;
    // The live state when a socket has one.
    let keys = Keys::new(&state.config.redis_prefix, row.id);
    let mut redis = state.redis.clone();
    if let Ok(Some((p, _))) = live::load_playback(&mut redis, &state.db, &keys, row.id).await {
        row.playback = serde_json::to_value(p).map_err(anyhow::Error::from)?;
    }
    Ok(ApiResponse::ok(row.into_api(&state, me.is_staff())))
}

/// Changes title, description, visibility and settings (the host, or staff). Sockets
/// get a `party_updated` frame. The video is changed on the socket (`change_video`).
#[utoipa::path(patch, path = "/parties/{id}/", tag = "parties", security(("bearer" = [])), request_body = PartyFields,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Party>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(mut body): Json<PartyFields>,
) -> AppResult<ApiResponse<Party>> {
    check_fields(&mut body, false)?;
    if body.video_id.is_some() || body.external_url.is_some() {
        return Err(AppError::field(
            if body.video_id.is_some() {
                "video_id"
            } else {
                "external_url"
            },
            "The video is changed on the party socket (video_control change_video).",
        ));
    }
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Host)?;
    if let Some(max) = body.max_members
        && i64::from(max) < row.member_count
    {
        return Err(AppError::field(
            "max_members",
            format!("The party already has {} members.", row.member_count),
        ));
    }
    sqlx::query!(
        r#"UPDATE parties SET title = COALESCE($2, title), description = COALESCE($3, description),
               visibility = COALESCE($4, visibility), control_mode = COALESCE($5, control_mode),
               chat_enabled = COALESCE($6, chat_enabled), slow_mode_seconds = COALESCE($7, slow_mode_seconds),
               max_members = COALESCE($8, max_members), allow_screen_share = COALESCE($9, allow_screen_share),
               sync_policy = COALESCE($10, sync_policy), buffer_wait_ms = COALESCE($11, buffer_wait_ms),
               updated_at = now()
           WHERE id = $1"#,
        row.id,
        body.title,
        body.description,
        body.visibility,
        body.control_mode,
        body.chat_enabled,
        body.slow_mode_seconds,
        body.max_members,
        body.allow_screen_share,
        body.sync_policy,
        body.buffer_wait_ms
    )
    .execute(&mut *tx)
    .await?;
    let row = load_row(&mut tx, &me, row.id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    let party = row.into_api(&state, me.is_staff());
    notify(
        &state,
        party.id,
        bus(Frame::server(
            "party_updated",
            json!({
                "title": party.title, "description": party.description,
                "visibility": party.visibility, "settings": party.settings,
                "user": user_json(me.id, &me.username),
            }),
        )),
    )
    .await;
    Ok(ApiResponse::ok(party))
}

/// Ends and deletes a party (the host, or staff): every socket is closed with
/// `party_ended`.
#[utoipa::path(delete, path = "/parties/{id}/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Host)?;
    sqlx::query!("DELETE FROM parties WHERE id = $1", row.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    end_live(&state, row.id, "The host ended the party.").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Closes every socket of an ended party and drops its live state.
async fn end_live(state: &AppState, party: Uuid, message: &str) {
    notify(
        state,
        party,
        BusMsg {
            origin: "api".into(),
            to_user: None,
            frame: Some(Frame::server(
                "party_ended",
                json!({ "code": "party_ended", "message": message }),
            )),
            disconnect: Some("party_ended".into()),
        },
    )
    .await;
    let keys = Keys::new(&state.config.redis_prefix, party);
    let mut redis = state.redis.clone();
    let _ = redis::cmd("DEL")
        .arg(keys.all())
        .query_async::<()>(&mut redis)
        .await;
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The invite code (required for a private party).
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinByCode {
    pub code: String,
}

/// Adds `me` to the party `id` (checks bans and room size under a lock on the party).
async fn join_party(
    state: &AppState,
    me: &AuthUser,
    id: Uuid,
    code: Option<&str>,
) -> AppResult<Party> {
    let mut tx = state.db.begin().await?;
    let p = sqlx::query!(
        "SELECT host_id, visibility, invite_code, max_members FROM parties
         WHERE id = $1 AND status = 'active' FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(AppError::not_found)?;
    let already = sqlx::query_scalar!(
        "SELECT role FROM party_members WHERE party_id = $1 AND user_id = $2",
        id,
        me.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if already.is_none() {
        let code_ok = code.is_some_and(|c| c.trim().eq_ignore_ascii_case(&p.invite_code));
        let friend = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM friendships f
                  WHERE f.user_a = LEAST($1::uuid, $2::uuid) AND f.user_b = GREATEST($1::uuid, $2::uuid)) AS "e!""#,
            p.host_id,
            me.id
        )
        .fetch_one(&mut *tx)
        .await?;
        let may = code_ok
            || me.is_staff()
            || p.visibility == "public"
            || (p.visibility == "friends" && friend);
        if !may {
            // A party the caller cannot see does not exist for them.
            return Err(if code.is_some() {
                AppError::field("code", "This invite code is not valid.")
            } else {
                AppError::not_found()
            });
        }
        if crate::routes::social::blocked_either(&mut tx, me.id, p.host_id).await? {
            return Err(AppError::not_found());
        }
        let banned = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM party_bans WHERE party_id = $1 AND user_id = $2) AS "e!""#,
            id,
            me.id
        )
        .fetch_one(&mut *tx)
        .await?;
        if banned {
            return Err(AppError::forbidden(
                "banned",
                "You are banned from this party.",
            ));
        }
        let members = sqlx::query_scalar!(
            r#"SELECT count(*) AS "n!" FROM party_members WHERE party_id = $1"#,
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        if members >= i64::from(p.max_members) {
            return Err(AppError::Conflict {
                code: "party_full",
                message: format!("The party is full ({} members).", p.max_members),
            });
        }
        sqlx::query!(
            "INSERT INTO party_members (party_id, user_id, role) VALUES ($1, $2, 'member')",
            id,
            me.id
        )
        .execute(&mut *tx)
        .await?;
    }
    let row = load_row(&mut tx, me, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    if already.is_none() {
        notify(
            state,
            id,
            bus(Frame::server(
                "member_joined",
                json!({ "user": user_json(me.id, &me.username), "role": "member" }),
            )),
        )
        .await;
    }
    Ok(row.into_api(state, me.is_staff()))
}

/// Joins a party: public parties are open, friends-only ones to the host's friends,
/// private ones with the invite code. Joining again changes nothing.
#[utoipa::path(post, path = "/parties/{id}/join/", tag = "parties", security(("bearer" = [])), request_body(content = JoinBody, description = "Optional"),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Party>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn join(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<ApiResponse<Party>> {
    let id: Uuid = id.parse().map_err(|_| AppError::not_found())?;
    // The body is optional: empty, or `{"code": ...}`.
    let code = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        crate::extract::parse_json::<JoinBody>(&body)?.code
    };
    Ok(ApiResponse::ok(
        join_party(&state, &me, id, code.as_deref()).await?,
    ))
}

/// Joins the party an invite code belongs to.
#[utoipa::path(post, path = "/parties/join-by-code/", tag = "parties", security(("bearer" = [])), request_body = JoinByCode,
    responses((status = 200, body = inline(Envelope<Party>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn join_by_code(
    State(state): State<AppState>,
    me: AuthUser,
    Json(body): Json<JoinByCode>,
) -> AppResult<ApiResponse<Party>> {
    let code = body.code.trim().to_uppercase();
    let id = sqlx::query_scalar!(
        "SELECT id FROM parties WHERE invite_code = $1 AND status = 'active'",
        code
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| AppError::field("code", "This invite code is not valid."))?;
    Ok(ApiResponse::ok(
        join_party(&state, &me, id, Some(&code)).await?,
    ))
}

/// Removes `user` from the party; if they were the host, hands the party to the
/// longest-standing co-host, else the longest-standing member; ends it when nobody is
/// left. Returns the new host, if the host changed.
async fn remove_member(
    conn: &mut PgConnection,
    party: Uuid,
    user: Uuid,
) -> AppResult<Option<(Option<(Uuid, String)>, bool)>> {
    let role = sqlx::query_scalar!(
        "DELETE FROM party_members WHERE party_id = $1 AND user_id = $2 RETURNING role",
        party,
        user
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(role) = role else { return Ok(None) };
    if role != "host" {
        return Ok(Some((None, false)));
    }
    let next = sqlx::query!(
        r#"SELECT m.user_id, u.username FROM party_members m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
           ORDER BY (m.role = 'cohost') DESC, m.joined_at, m.user_id LIMIT 1"#,
        party
    )
    .fetch_optional(&mut *conn)
    .await?;
    match next {
        Some(n) => {
            sqlx::query!(
                "UPDATE party_members SET role = 'host' WHERE party_id = $1 AND user_id = $2",
                party,
                n.user_id
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query!(
                "UPDATE parties SET host_id = $2, updated_at = now() WHERE id = $1",
                party,
                n.user_id
            )
            .execute(&mut *conn)
            .await?;
            Ok(Some((Some((n.user_id, n.username)), false)))
        }
        None => {
            sqlx::query!(
                "UPDATE parties SET status = 'ended', updated_at = now() WHERE id = $1",
                party
            )
            .execute(&mut *conn)
            .await?;
            Ok(Some((None, true)))
        }
    }
}

/// Tells the sockets that `user` left (and who hosts now), closing that user's sockets
/// with `reason`.
async fn announce_removal(
    state: &AppState,
    party: Uuid,
    user: (Uuid, &str),
    outcome: (Option<(Uuid, String)>, bool),
    reason: &str,
) {
    if outcome.1 {
        end_live(state, party, "Everyone left the party.").await;
        return;
    }
    // Out of the voice chat and of the buffering wait, wherever their sockets are.
    let keys = Keys::new(&state.config.redis_prefix, party);
    let mut redis = state.redis.clone();
    let field = user.0.to_string();
    let _ = redis::pipe()
        .hdel(keys.voice(), &field)
        .hdel(keys.buffering(), &field)
        .query_async::<()>(&mut redis)
        .await;
    notify(
        state,
        party,
        BusMsg {
            origin: "api".into(),
            to_user: Some(user.0),
            frame: Some(Frame::server(
                "removed",
                json!({ "code": reason, "message": match reason {
                    "kicked" => "You were removed from the party.",
                    "banned" => "You were banned from the party.",
                    _ => "You left the party.",
                }}),
            )),
            disconnect: Some(reason.to_owned()),
        },
    )
    .await;
    notify(
        state,
        party,
        bus(Frame::server(
            "member_left",
            json!({ "user": user_json(user.0, user.1), "reason": reason }),
        )),
    )
    .await;
    if let Some((id, name)) = outcome.0 {
        notify(
            state,
            party,
            bus(Frame::server(
                "member_updated",
                json!({ "user": user_json(id, &name), "role": "host" }),
            )),
        )
        .await;
    }
}

/// Leaves a party. A leaving host hands over to a co-host (else the longest-standing
/// member); the last one out ends the party.
#[utoipa::path(post, path = "/parties/{id}/leave/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn leave(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, &id).await?;
    let outcome = remove_member(&mut tx, row.id, me.id)
        .await?
        .ok_or_else(|| AppError::forbidden("not_a_member", "You are not in this party."))?;
    tx.commit().await?;
    announce_removal(&state, row.id, (me.id, &me.username), outcome, "left").await;
    Ok(StatusCode::NO_CONTENT)
}

/// A member, with presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Participant {
    pub user: UserSummary,
    pub role: PartyRole,
    pub joined_at: DateTime<Utc>,
    /// Connected to the party socket now (on any node).
    pub online: bool,
}

/// The party's members (host first), with who is online.
#[utoipa::path(get, path = "/parties/{id}/participants/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Vec<Participant>>)), (status = 404, body = crate::error::ErrorBody)))]
pub async fn participants(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> AppResult<ApiResponse<Vec<Participant>>> {
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, &id).await?;
    drop(conn);
    Ok(ApiResponse::ok(member_list(&state, row.id).await?))
}

/// The members of a party (host first, then co-hosts, then by joining), with presence.
pub async fn member_list(state: &AppState, party: Uuid) -> AppResult<Vec<Participant>> {
    let rows = sqlx::query!(
        r#"SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at
           FROM party_members m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
           ORDER BY CASE m.role WHEN 'host' THEN 0 WHEN 'cohost' THEN 1 ELSE 2 END, m.joined_at"#,
        party
    )
    .fetch_all(&state.db)
    .await?;
    let keys = Keys::new(&state.config.redis_prefix, party);
    let mut redis = state.redis.clone();
    let online = live::online_users(&mut redis, &state.config.redis_prefix, &keys).await?;
    Ok(rows
        .into_iter()
        .map(|r| Participant {
            online: online.contains(&r.user_id),
            user: UserSummary {
                id: r.user_id,
                username: r.username,
                display_name: r.display_name,
            },
            role: PartyRole::parse(&r.role),
            joined_at: r.joined_at,
        })
        .collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `cohost`, `member`, or `host` (hands the party over; the old host becomes a co-host).
    pub role: PartyRole,
}

/// Sets a member's role (the host, or staff).
#[utoipa::path(put, path = "/parties/{id}/members/{user_id}/", tag = "parties", security(("bearer" = [])), request_body = RoleBody,
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Participant>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn set_member_role(
    State(state): State<AppState>,
    me: AuthUser,
    Path((id, user_id)): Path<(String, String)>,
    Json(body): Json<RoleBody>,
) -> AppResult<ApiResponse<Participant>> {
    let user_id: Uuid = user_id.parse().map_err(|_| AppError::not_found())?;
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Host)?;
    let target = sqlx::query!(
        r#"SELECT m.role, u.username, u.display_name, m.joined_at FROM party_members m
           JOIN users u ON u.id = m.user_id WHERE m.party_id = $1 AND m.user_id = $2"#,
        row.id,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(AppError::not_found)?;
    if target.role == "host" && body.role != PartyRole::Host {
        return Err(AppError::field(
            "role",
            "Hand the party to someone else first (role: host on them).",
        ));
    }
    let mut changes = vec![(user_id, target.username.clone(), body.role)];
    if body.role == PartyRole::Host && target.role != "host" {
        let old = row.host_id;
        sqlx::query!(
            "UPDATE party_members SET role = 'cohost' WHERE party_id = $1 AND role = 'host'",
            row.id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE parties SET host_id = $2, updated_at = now() WHERE id = $1",
            row.id,
            user_id
        )
        .execute(&mut *tx)
        .await?;
        changes.push((old, row.host_username.clone(), PartyRole::Cohost));
    }
    sqlx::query!(
        "UPDATE party_members SET role = $3 WHERE party_id = $1 AND user_id = $2",
        row.id,
        user_id,
        body.role.as_str()
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for (uid, name, role) in &changes {
        notify(
            &state,
            row.id,
            bus(Frame::server(
                "member_updated",
                json!({ "user": user_json(*uid, name), "role": role }),
            )),
        )
        .await;
    }
    let keys = Keys::new(&state.config.redis_prefix, row.id);
    let mut redis = state.redis.clone();
    let online = live::online_users(&mut redis, &state.config.redis_prefix, &keys).await?;
    Ok(ApiResponse::ok(Participant {
        online: online.contains(&user_id),
        user: UserSummary {
            id: user_id,
            username: target.username,
            display_name: target.display_name,
        },
        role: body.role,
        joined_at: target.joined_at,
    }))
}

/// May `me` remove `target` (of `target_role`)? Host and staff remove anyone but the
/// host; co-hosts remove members only.
fn may_remove(row: &Row, me: &AuthUser, target_role: PartyRole) -> AppResult<()> {
    require_party_role(row, me, PartyRole::Cohost)?;
    let mine = if me.is_staff() {
        PartyRole::Host
    } else {
        member_role(row)?
    };
    if target_role == PartyRole::Host
        || (mine == PartyRole::Cohost && target_role != PartyRole::Member)
    {
        return Err(AppError::forbidden(
            "permission_denied",
            "You may not remove this member.",
        ));
    }
    Ok(())
}

/// Removes a member (kick): they may join again unless banned.
#[utoipa::path(delete, path = "/parties/{id}/members/{user_id}/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn kick(
    State(state): State<AppState>,
    me: AuthUser,
    Path((id, user_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let user_id: Uuid = user_id.parse().map_err(|_| AppError::not_found())?;
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, &id).await?;
    let target = sqlx::query!(
        r#"SELECT m.role, u.username FROM party_members m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1 AND m.user_id = $2"#,
        row.id,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(AppError::not_found)?;
    may_remove(&row, &me, PartyRole::parse(&target.role))?;
    let outcome = remove_member(&mut tx, row.id, user_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    announce_removal(
        &state,
        row.id,
        (user_id, &target.username),
        outcome,
        "kicked",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanBody {
    pub user_id: Uuid,
    #[serde(default)]
    pub reason: String,
}

/// A ban.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ban {
    pub user: UserSummary,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Bans a user (removing them if a member); they cannot join again, even with the code.
#[utoipa::path(post, path = "/parties/{id}/bans/", tag = "parties", security(("bearer" = [])), request_body = BanBody,
    params(("id" = Uuid, Path)),
    responses((status = 201, body = inline(Envelope<Ban>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn ban(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<BanBody>,
) -> AppResult<ApiResponse<Ban>> {
    if body.reason.chars().count() > 500 {
        return Err(AppError::field("reason", "At most 500 characters."));
    }
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, &id).await?;
    let user = sqlx::query!(
        "SELECT username, display_name FROM users WHERE id = $1 AND status <> 'deleted'",
        body.user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::field("user_id", "No such user."))?;
    let role = sqlx::query_scalar!(
        "SELECT role FROM party_members WHERE party_id = $1 AND user_id = $2",
        row.id,
        body.user_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    may_remove(
        &row,
        &me,
        role.as_deref().map_or(PartyRole::Member, PartyRole::parse),
    )?;
    if body.user_id == me.id {
        return Err(AppError::field("user_id", "You cannot ban yourself."));
    }
    let created_at = sqlx::query_scalar!(
        r#"INSERT INTO party_bans (party_id, user_id, banned_by, reason) VALUES ($1, $2, $3, $4)
           ON CONFLICT (party_id, user_id) DO UPDATE SET reason = EXCLUDED.reason
           RETURNING created_at"#,
        row.id,
        body.user_id,
        me.id,
        body.reason
    )
    .fetch_one(&mut *tx)
    .await?;
    let outcome = remove_member(&mut tx, row.id, body.user_id).await?;
    tx.commit().await?;
    if let Some(outcome) = outcome {
        announce_removal(
            &state,
            row.id,
            (body.user_id, &user.username),
            outcome,
            "banned",
        )
        .await;
    }
    Ok(ApiResponse::created(Ban {
        user: UserSummary {
            id: body.user_id,
            username: user.username,
            display_name: user.display_name,
        },
        reason: body.reason,
        created_at,
    }))
}

/// The party's bans (host and co-hosts).
#[utoipa::path(get, path = "/parties/{id}/bans/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Vec<Ban>>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn bans(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> AppResult<ApiResponse<Vec<Ban>>> {
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Cohost)?;
    let rows = sqlx::query!(
        r#"SELECT b.user_id, u.username, u.display_name, b.reason, b.created_at
           FROM party_bans b JOIN users u ON u.id = b.user_id
           WHERE b.party_id = $1 ORDER BY b.created_at DESC"#,
        row.id
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(ApiResponse::ok(
        rows.into_iter()
            .map(|r| Ban {
                user: UserSummary {
                    id: r.user_id,
                    username: r.username,
                    display_name: r.display_name,
                },
                reason: r.reason,
                created_at: r.created_at,
            })
            .collect(),
    ))
}

/// Lifts a ban.
#[utoipa::path(delete, path = "/parties/{id}/bans/{user_id}/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn unban(
    State(state): State<AppState>,
    me: AuthUser,
    Path((id, user_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let user_id: Uuid = user_id.parse().map_err(|_| AppError::not_found())?;
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Cohost)?;
    let n = sqlx::query!(
        "DELETE FROM party_bans WHERE party_id = $1 AND user_id = $2",
        row.id,
        user_id
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    crate::response::deleted(n)
}

/// A new invite code (the old one stops working).
#[utoipa::path(post, path = "/parties/{id}/invite-code/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Party>)), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn regenerate_code(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
) -> AppResult<ApiResponse<Party>> {
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Cohost)?;
    sqlx::query!(
        "UPDATE parties SET invite_code = $2, updated_at = now() WHERE id = $1",
        row.id,
        invite_code()
    )
    .execute(&mut *tx)
    .await?;
    let row = load_row(&mut tx, &me, row.id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(ApiResponse::ok(row.into_api(&state, me.is_staff())))
}

/// Who to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// 1 to 50 users.
    pub user_ids: Vec<Uuid>,
}

/// A user who was not invited, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotInvited {
    pub user_id: Uuid,
    /// `unknown_user`, `already_member`, `banned`, `already_invited` (within the last
    /// hour), `self`.
    pub reason: &'static str,
}

/// `data` of an invitation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invited {
    pub invited: Vec<Uuid>,
    pub skipped: Vec<NotInvited>,
}

/// Invites users (host and co-hosts): each gets a `party.invite` notification (in-app,
/// email, push, by their preferences) with the party's join link. A user invited to
/// the same party within the hour is not invited again; a user who blocked the inviter
/// or the host (or was blocked by them) is `unknown_user`.
#[utoipa::path(post, path = "/parties/{id}/invite/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = InviteBody,
    responses((status = 202, body = inline(Envelope<Invited>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn invite(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<InviteBody>,
) -> AppResult<ApiResponse<Invited>> {
    let mut wanted = body.user_ids.clone();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() || wanted.len() > 50 {
        return Err(AppError::field("user_ids", "Between 1 and 50 users."));
    }
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Cohost)?;
    let known = sqlx::query!(
        r#"SELECT u.id,
                  EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = $2 AND m.user_id = u.id) AS "member!",
                  EXISTS (SELECT 1 FROM party_bans b WHERE b.party_id = $2 AND b.user_id = u.id) AS "banned!",
                  EXISTS (SELECT 1 FROM domain_events e
                          WHERE e.kind = 'party.invite' AND e.recipient_id = u.id
                            AND e.payload->>'party_id' = $2::text
                            AND e.created_at > now() - interval '1 hour') AS "invited!",
                  EXISTS (SELECT 1 FROM blocks b
                          WHERE (b.blocker = u.id AND b.blocked IN ($3, $4))
                             OR (b.blocked = u.id AND b.blocker IN ($3, $4))) AS "blocked!"
           FROM users u WHERE u.id = ANY($1) AND u.status = 'active'"#,
        &wanted,
        row.id,
        me.id,
        row.host_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let (mut invited, mut skipped, mut outbox) = (Vec::new(), Vec::new(), Vec::new());
    for user in wanted {
        let reason = match known.iter().find(|k| k.id == user) {
            _ if user == me.id => Some("self"),
            // A block either way (with the inviter or the host) looks like no such user.
            None => Some("unknown_user"),
            Some(k) if k.blocked => Some("unknown_user"),
            Some(k) if k.member => Some("already_member"),
            Some(k) if k.banned => Some("banned"),
            Some(k) if k.invited => Some("already_invited"),
            Some(_) => None,
        };
        match reason {
            Some(reason) => skipped.push(NotInvited {
                user_id: user,
                reason,
            }),
            None => {
                outbox.push(
                    wp_shared::events::emit(
                        &mut tx,
                        "party.invite",
                        Some(me.id),
                        Some(user),
                        json!({ "party_id": row.id, "title": row.title, "code": row.invite_code }),
                    )
                    .await?,
                );
                invited.push(user);
            }
        }
    }
    tx.commit().await?;
    crate::routes::account::relay(&state, &outbox).await;
    Ok(ApiResponse::accepted(Invited { invited, skipped }))
}

/// A message to the party's members.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnounceBody {
    /// 1 to 500 characters.
    pub message: String,
}

/// `data` of an announcement.
#[derive(Debug, Serialize, ToSchema)]
pub struct Announced {
    pub id: Uuid,
    /// Members it goes to (all but the sender).
    pub audience: i64,
}

/// Tells every member of the party (host and co-hosts; at most one a minute per
/// party): a `party.announcement` notification (in-app and push by default) to each
/// member but the sender and those who blocked (or were blocked by) the sender,
/// delivered in the background.
#[utoipa::path(post, path = "/parties/{id}/announce/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = AnnounceBody,
    responses((status = 202, body = inline(Envelope<Announced>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn announce(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Json(body): Json<AnnounceBody>,
) -> AppResult<ApiResponse<Announced>> {
    let message = body.message.trim().to_owned();
    if message.is_empty() || message.chars().count() > 500 {
        return Err(AppError::field("message", "Between 1 and 500 characters."));
    }
    let mut tx = state.db.begin().await?;
    let row = locked_party(&mut tx, &me, &id).await?;
    require_party_role(&row, &me, PartyRole::Cohost)?;
    // Under the party's row lock: two at once cannot both pass.
    let recent = sqlx::query_scalar!(
        r#"SELECT EXTRACT(EPOCH FROM (created_at + interval '1 minute' - now()))::float8 AS "wait!"
           FROM domain_events
           WHERE kind = 'party.announcement' AND payload->>'party_id' = $1::uuid::text
             AND created_at > now() - interval '1 minute'
           ORDER BY created_at DESC LIMIT 1"#,
        row.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(wait) = recent {
        return Err(AppError::RateLimited {
            retry_after: std::time::Duration::from_secs_f64(wait.max(1.0)),
        });
    }
    let audience = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM party_members m WHERE party_id = $1 AND user_id <> $2
             AND NOT EXISTS (SELECT 1 FROM blocks b
                             WHERE (b.blocker = m.user_id AND b.blocked = $2)
                                OR (b.blocked = m.user_id AND b.blocker = $2))"#,
        row.id,
        me.id
    )
    .fetch_one(&mut *tx)
    .await?;
    let event = Uuid::now_v7();
    let ob = wp_shared::events::emit_with_id(
        &mut tx,
        event,
        "party.announcement",
        Some(me.id),
        None,
        json!({ "party_id": row.id, "title": row.title, "message": message }),
    )
    .await?;
    tx.commit().await?;
    crate::routes::account::relay(&state, &[ob]).await;
    Ok(ApiResponse::accepted(Announced {
        id: event,
        audience,
    }))
}

// ---- chat -------------------------------------------------------------------------

/// A chat message.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatMessage {
    pub id: Uuid,
    pub party_id: Uuid,
    pub user: UserSummary,
    /// Empty once deleted.
    pub content: String,
    pub reply_to: Option<Uuid>,
    /// The sender's own id for the message, when it gave one.
    pub client_id: Option<String>,
    pub is_edited: bool,
    pub is_deleted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

struct MessageRow {
    id: Uuid,
    party_id: Uuid,
    user_id: Uuid,
    username: String,
    display_name: String,
    content: String,
    reply_to: Option<Uuid>,
    client_id: Option<String>,
    is_edited: bool,
    is_deleted: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<MessageRow> for ChatMessage {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id,
            party_id: r.party_id,
            user: UserSummary {
                id: r.user_id,
                username: r.username,
                display_name: r.display_name,
            },
            content: if r.is_deleted {
                String::new()
            } else {
                r.content
            },
            reply_to: r.reply_to,
            client_id: r.client_id,
            is_edited: r.is_edited,
            is_deleted: r.is_deleted,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Checks a message's content: trimmed, not empty, at most [`MESSAGE_MAX`] characters.
pub fn check_message(content: &str) -> Result<String, &'static str> {
    let c = content.trim();
    if c.is_empty() {
        Err("A message may not be empty.")
    } else if c.chars().count() > MESSAGE_MAX {
        Err("A message is at most 1000 characters.")
    } else {
        Ok(c.to_owned())
    }
}

/// Stores a chat message (the socket acknowledges only after this commits). A resent
/// message with the same `client_id` is stored once and answered with the first.
pub async fn insert_message(
    db: &sqlx::PgPool,
    party: Uuid,
    user: Uuid,
    content: &str,
    reply_to: Option<Uuid>,
    client_id: Option<&str>,
) -> anyhow::Result<Result<ChatMessage, &'static str>> {
    let reply_to = match reply_to {
        Some(r) => {
            let ok = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM party_messages WHERE id = $1 AND party_id = $2) AS "e!""#,
                r,
                party
            )
            .fetch_one(db)
            .await?;
            if !ok {
                return Ok(Err("reply_to is not a message of this party."));
            }
            Some(r)
        }
        None => None,
    };
    let id = Uuid::now_v7();
    let row = sqlx::query_as!(
        MessageRow,
        r#"WITH ins AS (
               INSERT INTO party_messages (id, party_id, user_id, content, reply_to, client_id)
               SELECT $1, $2, $3, $4, $5, $6
               WHERE EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = $2 AND m.user_id = $3)
               ON CONFLICT (party_id, user_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
               RETURNING *
           ), msg AS (
               SELECT * FROM ins
               UNION ALL
               SELECT * FROM party_messages
               WHERE party_id = $2 AND user_id = $3 AND client_id = $6 AND NOT EXISTS (SELECT 1 FROM ins)
           )
           SELECT m.id AS "id!", m.party_id AS "party_id!", m.user_id AS "user_id!", u.username,
                  u.display_name, m.content AS "content!", m.reply_to, m.client_id,
                  m.is_edited AS "is_edited!", m.is_deleted AS "is_deleted!",
                  m.created_at AS "created_at!", m.updated_at AS "updated_at!"
           FROM msg m JOIN users u ON u.id = m.user_id"#,
        id,
        party,
        user,
        content,
        reply_to,
        client_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into).ok_or("not_a_member"))
}

/// The newest `limit` messages of a party, oldest first (the socket snapshot).
pub async fn recent_messages(
    db: &sqlx::PgPool,
    party: Uuid,
    limit: i64,
) -> anyhow::Result<Vec<ChatMessage>> {
    let mut rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
           ORDER BY m.created_at DESC, m.id DESC LIMIT $2"#,
        party,
        limit
    )
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Messages after `since` (a message id), oldest first: what a reconnecting client
/// missed (at most `limit`; fetch `limit + 1` to know whether there is more).
pub async fn messages_since(
    db: &sqlx::PgPool,
    party: Uuid,
    since: Uuid,
    limit: i64,
) -> anyhow::Result<Option<Vec<ChatMessage>>> {
    let anchor = sqlx::query!(
        "SELECT created_at FROM party_messages WHERE id = $1 AND party_id = $2",
        since,
        party
    )
    .fetch_optional(db)
    .await?;
    let Some(anchor) = anchor else {
        return Ok(None);
    };
    let rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1 AND (m.created_at, m.id) > ($2, $3)
           ORDER BY m.created_at, m.id LIMIT $4"#,
        party,
        anchor.created_at,
        since,
        limit
    )
    .fetch_all(db)
    .await?;
    Ok(Some(rows.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Serialize, Deserialize)]
struct MessageCursor {
    t: DateTime<Utc>,
    id: Uuid,
}

/// Chat history, newest first (cursor pagination). Members and staff.
#[utoipa::path(get, path = "/parties/{id}/messages/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), CursorParams),
    responses((status = 200, body = inline(Envelope<CursorPage<ChatMessage>>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn messages(
    State(state): State<AppState>,
    me: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<CursorParams>,
) -> AppResult<ApiResponse<CursorPage<ChatMessage>>> {
    let (pos, size) = q.validate::<MessageCursor>()?;
    let mut conn = state.db.acquire().await?;
    let row = visible_party(&mut conn, &me, &id).await?;
    if !me.is_staff() {
        member_role(&row)?;
    }
    let rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.party_id = $1
             AND ($2::timestamptz IS NULL OR (m.created_at, m.id) < ($2, $3))
           ORDER BY m.created_at DESC, m.id DESC LIMIT $4"#,
        row.id,
        pos.as_ref().map(|p| p.t),
        pos.as_ref().map_or(Uuid::nil(), |p| p.id),
        i64::from(size) + 1
    )
    .fetch_all(&mut *conn)
    .await?;
    let more = rows.len() > size as usize;
    let results: Vec<ChatMessage> = rows
        .into_iter()
        .take(size as usize)
        .map(Into::into)
        .collect();
    let next = more.then(|| results.last()).flatten().map(|m| {
        encode_cursor(&MessageCursor {
            t: m.created_at,
            id: m.id,
        })
    });
    Ok(ApiResponse::ok(CursorPage {
        results,
        next,
        previous: None,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub content: String,
}

async fn load_message(conn: &mut PgConnection, party: Uuid, raw: &str) -> AppResult<MessageRow> {
    let mid: Uuid = raw.parse().map_err(|_| AppError::not_found())?;
    sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.party_id, m.user_id, u.username, u.display_name, m.content, m.reply_to,
                  m.client_id, m.is_edited, m.is_deleted, m.created_at, m.updated_at
           FROM party_messages m JOIN users u ON u.id = m.user_id
           WHERE m.id = $1 AND m.party_id = $2"#,
        mid,
        party
    )
    .fetch_optional(&mut *conn)
    .await?
    .filter(|m| !m.is_deleted)
    .ok_or_else(AppError::not_found)
}

/// Edits one's own message; sockets get `chat_message_updated`.
#[utoipa::path(patch, path = "/parties/{id}/messages/{message_id}/", tag = "parties", security(("bearer" = [])), request_body = EditMessage,
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<ChatMessage>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn edit_message(
    State(state): State<AppState>,
    me: AuthUser,
    Path((id, message_id)): Path<(String, String)>,
    Json(body): Json<EditMessage>,
) -> AppResult<ApiResponse<ChatMessage>> {
    let content = check_message(&body.content).map_err(|m| AppError::field("content", m))?;
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, &id).await?;
    member_role(&row)?;
    let msg = load_message(&mut tx, row.id, &message_id).await?;
    if msg.user_id != me.id {
        return Err(AppError::forbidden(
            "permission_denied",
            "Only the author may edit a message.",
        ));
    }
    let updated_at = sqlx::query_scalar!(
        "UPDATE party_messages SET content = $2, is_edited = TRUE, updated_at = now()
         WHERE id = $1 RETURNING updated_at",
        msg.id,
        content
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let out = ChatMessage::from(MessageRow {
        content,
        is_edited: true,
        updated_at,
        ..msg
    });
    notify(
        &state,
        row.id,
        bus(Frame::server(
            "chat_message_updated",
            serde_json::to_value(&out).map_err(anyhow::Error::from)?,
        )),
    )
    .await;
    Ok(ApiResponse::ok(out))
}

/// Deletes a message: the author, the host, a co-host or staff. Sockets get
/// `chat_message_deleted`.
#[utoipa::path(delete, path = "/parties/{id}/messages/{message_id}/", tag = "parties", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete_message(
    State(state): State<AppState>,
    me: AuthUser,
    Path((id, message_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, &id).await?;
    let msg = load_message(&mut tx, row.id, &message_id).await?;
    if msg.user_id != me.id {
        require_party_role(&row, &me, PartyRole::Cohost)?;
    }
    sqlx::query!(
        "UPDATE party_messages SET is_deleted = TRUE, content = '', updated_at = now() WHERE id = $1",
        msg.id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    notify(
        &state,
        row.id,
        bus(Frame::server(
            "chat_message_deleted",
            json!({ "id": msg.id, "user": user_json(me.id, &me.username) }),
        )),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- what the socket needs -----------------------------------------------------------

/// A party as the socket sees it: settings and the caller's role.
#[derive(Debug, Clone)]
pub struct Membership {
    pub party: Uuid,
    pub title: String,
    pub host_id: Uuid,
    pub settings: PartySettings,
    pub role: PartyRole,
}

/// The caller's membership of an active party: `Err(404)` if they cannot see it,
/// `Err(403 not_a_member)` if they have not joined (or were removed).
pub async fn membership(state: &AppState, me: &AuthUser, party: Uuid) -> AppResult<Membership> {
    let mut conn = state.db.acquire().await?;
    let row = load_row(&mut conn, me, party)
        .await?
        .ok_or_else(AppError::not_found)?;
    let role = member_role(&row)?;
    Ok(Membership {
        party,
        title: row.title.clone(),
        host_id: row.host_id,
        settings: row.settings(),
        role,
    })
}

/// The settings and a user's role, re-read after a `party_updated` or
/// `member_updated` (None: no longer a member, or the party is gone).
pub async fn reload(
    db: &sqlx::PgPool,
    party: Uuid,
    user: Uuid,
) -> anyhow::Result<Option<(PartySettings, PartyRole)>> {
    let r = sqlx::query!(
        r#"SELECT p.control_mode, p.chat_enabled, p.slow_mode_seconds, p.max_members,
                  p.allow_screen_share, p.sync_policy, p.buffer_wait_ms, m.role
           FROM parties p JOIN party_members m ON m.party_id = p.id AND m.user_id = $2
           WHERE p.id = $1 AND p.status = 'active'"#,
        party,
        user
    )
    .fetch_optional(db)
    .await?;
    Ok(r.map(|r| {
        (
            PartySettings {
                control_mode: r.control_mode,
                chat_enabled: r.chat_enabled,
                slow_mode_seconds: r.slow_mode_seconds,
                max_members: r.max_members,
                allow_screen_share: r.allow_screen_share,
                sync_policy: r.sync_policy,
                buffer_wait_ms: r.buffer_wait_ms,
            },
            PartyRole::parse(&r.role),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_modes() {
        let mut s = PartySettings {
            control_mode: "host".into(),
            chat_enabled: true,
            slow_mode_seconds: 0,
            max_members: 10,
            allow_screen_share: true,
            sync_policy: "wait".into(),
            buffer_wait_ms: 8000,
        };
        assert!(s.may_control(PartyRole::Host));
        assert!(!s.may_control(PartyRole::Cohost));
        s.control_mode = "cohosts".into();
        assert!(s.may_control(PartyRole::Cohost));
        assert!(!s.may_control(PartyRole::Member));
        s.control_mode = "everyone".into();
        assert!(s.may_control(PartyRole::Member));
    }

    #[test]
    fn messages_are_trimmed_and_limited() {
        assert_eq!(check_message("  hi "), Ok("hi".to_owned()));
        assert!(check_message("   ").is_err());
        assert!(check_message(&"x".repeat(MESSAGE_MAX + 1)).is_err());
        assert!(check_message(&"é".repeat(MESSAGE_MAX)).is_ok());
    }

    #[test]
    fn invite_codes_use_the_unambiguous_alphabet() {
        let c = invite_code();
        assert_eq!(c.len(), INVITE_LEN);
        assert!(c.bytes().all(|b| INVITE_ALPHABET.contains(&b)));
    }
}
