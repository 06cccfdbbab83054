//! Create, list, detail, update and delete.

use crate::extract::Ids;
use axum::{
    extract::{OriginalUri, State},
    http::StatusCode,
};
use chrono::Utc;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wp_core::party::{
    ControlMode, DESCRIPTION_MAX, SyncPolicy, TITLE_MAX,
    live::{self as live, Keys, PartyVideo, Playback},
};

use super::*;
use crate::{
    error::FieldErrors,
    extract::{Json, Query},
    response::{ApiResponse, Envelope, PageParams, Paginated, request_url},
    routes::videos::visible_video,
};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyFields {
    /// Required to create.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// A library video the caller can see (ready).
    pub video_id: Option<Uuid>,
    /// An external http(s) URL, instead of a library video.
    #[schema(max_length = 2000, pattern = "^https?://[^/?#\\s]+")]
    pub external_url: Option<String>,
    #[schema(pattern = "^(public|friends|private)$")]
    pub visibility: Option<String>,
    #[schema(pattern = "^(host|cohosts|everyone)$")]
    pub control_mode: Option<String>,
    pub chat_enabled: Option<bool>,
    #[schema(minimum = 0, maximum = 3600)]
    pub slow_mode_seconds: Option<i32>,
    #[schema(minimum = 2, maximum = 5000)]
    pub max_members: Option<i32>,
    pub allow_screen_share: Option<bool>,
    #[schema(pattern = "^(wait|independent)$")]
    pub sync_policy: Option<String>,
    #[schema(minimum = 0, maximum = 60000)]
    pub buffer_wait_ms: Option<i32>,
    /// A social group the caller is a member of: the party is the group's, seen (and
    /// joined without a code) by its members. Set at creation only.
    pub group_id: Option<Uuid>,
}

fn check_fields(f: &mut PartyFields, creating: bool) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    let mut add = |field: &str, msg: &str| {
        errors
            .entry(field.to_owned())
            .or_default()
            .push(msg.to_owned());
    };
    if !creating && f.group_id.is_some() {
        add("group_id", "Set when the party is created.");
    }
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
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    me: AuthUser,
    Json(mut body): Json<PartyFields>,
) -> AppResult<ApiResponse<Party>> {
    check_fields(&mut body, true)?;
    let mut tx = state.db.begin().await?;
    if let Some(video) = body.video_id {
        let v = visible_video(&mut tx, Some(&me), video)
            .await
            .map_err(|_| AppError::field("video_id", "No such video."))?;
        if v.status != wp_core::video::VideoStatus::Ready {
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
    if let Some(group) = body.group_id {
        let member = wp_core::group::visible(&mut tx, &me, group)
            .await
            .is_ok_and(|g| g.my_role.is_some());
        if !member {
            return Err(AppError::field(
                "group_id",
                "No such group, or you are not a member of it.",
            ));
        }
        sqlx::query("UPDATE parties SET group_id = $2 WHERE id = $1")
            .bind(id)
            .bind(group)
            .execute(&mut *tx)
            .await?;
    }
    let row = load_row(&mut tx, &me, id)
        .await?
        .ok_or_else(AppError::not_found)?;
    tx.commit().await?;
    Ok(ApiResponse::created(party_view(row, &state, me.is_staff())))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PartyListParams {
    /// `all` (default: every party the caller can see), `public`, `friends` (friends'
    /// parties) or `mine` (parties the caller is a member of).
    #[param(pattern = "^(all|public|friends|mine)$")]
    pub scope: Option<String>,
    /// Words in the title.
    pub search: Option<String>,
    /// Only the parties of this social group (those the caller may see).
    pub group: Option<Uuid>,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Lists active parties, newest first.
#[utoipa::path(get, path = "/parties/", tag = "parties", security(("bearer" = [])), params(PartyListParams),
    responses((status = 200, body = inline(Envelope<Paginated<Party>>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    OriginalUri(uri): OriginalUri,
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
    let search = wp_core::contains_pattern(q.search.as_deref());
    let mut conn = state.db.acquire().await?;
    // What the caller may see (`party_visible_to`), narrowed by the scope.
    let rows = sqlx::query_as!(
        PartyRow,
        r#"WITH scoped AS (
               SELECT p.*,
                      (SELECT m.role FROM party_members m WHERE m.party_id = p.id AND m.user_id = $1) AS my_role
               FROM parties p
               WHERE p.status = 'active'
                 AND ($3::text IS NULL OR p.title ILIKE $3)
                 AND party_visible_to(p.id, p.host_id, p.visibility, $1, FALSE)
                 AND ($6::uuid IS NULL OR p.group_id = $6)
           )
           SELECT s.id, s.title, s.description, s.host_id, u.username AS host_username,
                  u.display_name AS host_display_name, u.avatar_path AS host_avatar_path, s.video_id, vid.title AS "video_title?",
                  s.external_url, s.visibility AS "visibility: PartyVisibility", s.invite_code,
                  s.control_mode AS "control_mode: ControlMode", s.chat_enabled,
                  s.slow_mode_seconds, s.max_members, s.allow_screen_share,
                  s.sync_policy AS "sync_policy: SyncPolicy", s.buffer_wait_ms,
                  (SELECT count(*) FROM party_members m WHERE m.party_id = s.id) AS "member_count!",
                  s.my_role AS "my_role: PartyRole", s.status AS "status: PartyStatus",
                  s.playback, s.group_id, s.created_at, s.updated_at
           FROM scoped s JOIN users u ON u.id = s.host_id
           LEFT JOIN videos vid ON vid.id = s.video_id
           WHERE CASE $2
                   WHEN 'public' THEN s.visibility = 'public'
                   WHEN 'friends' THEN s.visibility IN ('public', 'friends') AND are_friends(s.host_id, $1)
                   WHEN 'mine' THEN s.my_role IS NOT NULL
                   ELSE TRUE
                 END
           ORDER BY s.created_at DESC, s.id DESC
           LIMIT $4 OFFSET $5"#,
        me.id,
        scope,
        search,
        page.limit(),
        page.offset(),
        q.group
    )
    .fetch_all(&mut *conn)
    .await?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM parties p
           WHERE p.status = 'active'
             AND ($3::text IS NULL OR p.title ILIKE $3)
             AND party_visible_to(p.id, p.host_id, p.visibility, $1, FALSE)
             AND ($4::uuid IS NULL OR p.group_id = $4)
             AND CASE $2
                   WHEN 'public' THEN p.visibility = 'public'
                   WHEN 'friends' THEN p.visibility IN ('public', 'friends') AND are_friends(p.host_id, $1)
                   WHEN 'mine' THEN EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = p.id AND m.user_id = $1)
                   ELSE TRUE
                 END"#,
        me.id,
        scope,
        search,
        q.group
    )
    .fetch_one(&mut *conn)
    .await?;
    let staff = me.is_staff();
    let results = rows
        .into_iter()
        .map(|r| party_view(r, &state, staff))
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
#[tracing::instrument(skip_all)]
pub async fn detail(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<Party>> {
    let mut conn = state.db.acquire().await?;
    let mut row = visible_party(&mut conn, &me, id).await?;
    // The live state when a socket has one.
    let keys = Keys::new(&state.config.redis_prefix, row.id);
    let mut redis = state.redis.clone();
    if let Ok(Some((p, _))) = live::load_playback(&mut redis, &state.db, &keys, row.id).await {
        row.playback = serde_json::to_value(p).map_err(anyhow::Error::from)?;
    }
    Ok(ApiResponse::ok(party_view(row, &state, me.is_staff())))
}

/// Changes title, description, visibility and settings (the host, or staff). Sockets
/// get a `party_updated` frame. The video is changed on the socket (`change_video`).
#[utoipa::path(patch, path = "/parties/{id}/", tag = "parties", security(("bearer" = [])), request_body = PartyFields,
    params(("id" = Uuid, Path)),
    responses((status = 200, body = inline(Envelope<Party>)), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
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
    let row = locked_party(&mut tx, &me, id).await?;
    row.require_role(&me, PartyRole::Host)?;
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
    let party = party_view(row, &state, me.is_staff());
    notify(
        &state,
        party.id,
        bus(PartyEvent::PartyUpdated {
            title: party.title.clone(),
            description: party.description.clone(),
            visibility: party.visibility,
            settings: party.settings.clone(),
            by: user_ref(&me),
        }),
    )
    .await;
    Ok(ApiResponse::ok(party))
}

/// Ends and deletes a party (the host, or staff): every socket is closed with
/// `party_ended`.
#[utoipa::path(delete, path = "/parties/{id}/", tag = "parties", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn delete(
    State(state): State<AppState>,
    me: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    let row = visible_party(&mut tx, &me, id).await?;
    row.require_role(&me, PartyRole::Host)?;
    sqlx::query!("DELETE FROM parties WHERE id = $1", row.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    end_live(&state, row.id, "The host ended the party.").await;
    Ok(StatusCode::NO_CONTENT)
}
