//! The mobile apps' own routes under `/api/mobile/` (seed item 9): the configuration an
//! app reads at start (`config/`), the home screen in one call (`home/`) and the delta
//! sync (`sync/`). Push tokens and devices are in
//! [`crate::routes::notifications`]. The rules are `wp_core::mobile`.

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::IntoParams;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wp_core::{
    event::Event,
    mobile::{self, Limits, MobileConfigView, MobilePlatform, PartyCard, Unread},
    video::VideoVisibility,
};
use wp_shared::config::AppVersion;

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult, ErrorBody},
    extract::Query,
    response::{ApiResponse, Envelope, MAX_PAGE_SIZE, not_modified},
    state::AppState,
};

/// How long a client may reuse the configuration without asking.
const CACHE: &str = "public, max-age=300";

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mobile_config))
        .routes(routes!(mobile_home))
        .routes(routes!(mobile_sync))
}

/// `?platform=&app_version=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfigParams {
    /// The update advice and push provider are for it.
    pub platform: Option<MobilePlatform>,
    /// The app's version (`1.4.2`), with `platform`.
    #[param(pattern = r"^\d+(\.\d+){0,3}$")]
    pub app_version: Option<String>,
}

fn limits(state: &AppState) -> Limits {
    Limits {
        request_body_max_bytes: state.config.max_body_bytes as u64,
        video_max_bytes: state.config.video_max_bytes,
        avatar_max_bytes: crate::routes::accounts::lifecycle::AVATAR_MAX_BYTES as u64,
        support_attachment_max_bytes: wp_core::support::ATTACHMENT_MAX_BYTES as u64,
        chat_message_max_chars: wp_core::party::chat::MESSAGE_MAX as u64,
        comment_max_chars: wp_core::comment::MAX_LEN as u64,
        party_title_max_chars: wp_core::party::TITLE_MAX as u64,
        report_details_max_chars: wp_core::moderation::DETAILS_MAX as u64,
        page_size_max: u64::from(MAX_PAGE_SIZE),
    }
}

/// The app's configuration (no sign-in needed): API and socket base URLs, features on
/// or off, limits, push settings, and — with `platform` and `app_version` — whether this
/// version must update (`update.required`: older than the minimum served) or may
/// (`update.available`). Cached: an `ETag` per answer, `If-None-Match` → 304,
/// `Cache-Control: public, max-age=300`.
#[utoipa::path(get, path = "/mobile/config/", tag = "mobile", params(ConfigParams),
    responses((status = 200, body = inline(Envelope<MobileConfigView>)), (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn mobile_config(
    State(state): State<AppState>,
    Query(q): Query<ConfigParams>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let platform = q.platform;
    let version = q
        .app_version
        .as_deref()
        .map(|v| {
            v.parse::<AppVersion>()
                .map_err(|m| AppError::field("app_version", m))
        })
        .transpose()?;
    if version.is_some() && platform.is_none() {
        return Err(AppError::field(
            "platform",
            "Say which platform the version is of.",
        ));
    }
    let view = mobile::config_view(&state.config, platform, version.as_ref(), limits(&state));
    let body = serde_json::to_vec(&view).map_err(anyhow::Error::from)?;
    let digest = sha2::Sha256::digest(&body);
    let etag = format!(
        "\"{}\"",
        digest[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    if let Some(res) = not_modified(&headers, &etag, CACHE) {
        return Ok(res);
    }
    let mut res = ApiResponse::ok(view).into_response();
    let h = res.headers_mut();
    if let Ok(v) = etag.parse() {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(CACHE),
    );
    Ok(res)
}

/// A video on the "continue watching" row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContinueItem {
    pub video_id: uuid::Uuid,
    pub title: String,
    /// Works in an `<img>` (signed for the caller when the video is not public).
    pub thumbnail_url: Option<String>,
    pub duration_seconds: Option<f64>,
    pub position_seconds: f64,
    /// `position_seconds / duration_seconds` (null without a duration).
    pub progress: Option<f64>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// `data` of the home screen.
#[derive(Debug, Serialize, ToSchema)]
pub struct HomeView {
    /// Parties of friends and groups (and the caller's own) with someone in them now,
    /// most crowded first (up to 10).
    pub live_parties: Vec<PartyCard>,
    /// Scheduled or live events of the next 14 days the caller organizes, answered or
    /// was invited to, or of friends and groups, soonest first (up to 10).
    pub upcoming_events: Vec<Event>,
    /// Videos started and not finished, most recent first (up to 10).
    pub continue_watching: Vec<ContinueItem>,
    pub unread: Unread,
}

/// The apps' home screen in one call: live parties of friends and groups, upcoming
/// events, continue watching, and the unread counts. The four parts are read at once.
#[utoipa::path(get, path = "/mobile/home/", tag = "mobile", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<HomeView>)), (status = 401, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn mobile_home(
    State(state): State<AppState>,
    me: AuthUser,
) -> AppResult<ApiResponse<HomeView>> {
    let now = chrono::Utc::now();
    let mut redis = state.redis.clone();
    let events = async {
        let mut conn = state.db.acquire().await?;
        wp_core::event::upcoming_for_home(
            &mut conn,
            &me,
            now,
            chrono::TimeDelta::days(mobile::EVENTS_HORIZON_DAYS),
            mobile::ROW,
        )
        .await
        .map_err(AppError::from)
    };
    let parties = async {
        mobile::live_parties(&state.db, &mut redis, &state.config.redis_prefix, &me)
            .await
            .map_err(AppError::from)
    };
    let watching = async {
        mobile::continue_watching(&state.db, &me)
            .await
            .map_err(AppError::from)
    };
    let unread = async { mobile::unread(&state.db, &me).await.map_err(AppError::from) };
    let (live_parties, upcoming_events, watching, unread) =
        tokio::try_join!(parties, events, watching, unread)?;
    let continue_watching = watching
        .into_iter()
        .map(|w| ContinueItem {
            thumbnail_url: w
                .has_thumbnail
                .then(|| {
                    crate::routes::videos::thumbnail_url(
                        &state,
                        w.video_id,
                        matches!(
                            w.visibility,
                            VideoVisibility::Public | VideoVisibility::Unlisted
                        ),
                        Some(&me),
                    )
                })
                .flatten(),
            progress: w
                .duration_seconds
                .filter(|d| *d > 0.0)
                .map(|d| (w.position_seconds / d).min(1.0)),
            video_id: w.video_id,
            title: w.title,
            duration_seconds: w.duration_seconds,
            position_seconds: w.position_seconds,
            updated_at: w.updated_at,
        })
        .collect();
    Ok(ApiResponse::ok(HomeView {
        live_parties,
        upcoming_events,
        continue_watching,
        unread,
    }))
}

/// A sync request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// The `cursor` of the previous sync; absent for the first (a full sync).
    #[serde(default)]
    pub cursor: Option<String>,
    /// The device syncing (as registered with `POST /api/mobile/push-token/`): its
    /// `last_sync_at` is recorded.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub device_id: Option<String>,
}

/// What changed of one kind: the objects as they are now, and the ids of those gone.
#[derive(Debug, Serialize, ToSchema)]
pub struct Section<T> {
    pub upserted: Vec<T>,
    /// Tombstones: no longer there, or no longer the caller's.
    pub deleted: Vec<uuid::Uuid>,
}

impl<T> Section<T> {
    fn new(asked: Option<&[uuid::Uuid]>, upserted: Vec<T>, id: impl Fn(&T) -> uuid::Uuid) -> Self {
        let deleted = asked.map_or_else(Vec::new, |a| wp_core::sync::gone(a, &upserted, id));
        Self { upserted, deleted }
    }
}

/// `data` of a sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncAnswer {
    /// Send it with the next sync.
    pub cursor: String,
    /// `true`: this is the whole current state (replace the local copy); `false`: what
    /// changed since the cursor (apply it).
    pub full: bool,
    /// Full: the newest 100.
    pub notifications: Section<crate::routes::notifications::Notification>,
    pub friends: Section<wp_core::social::UserSummary>,
    /// Active parties the caller hosts or joined.
    pub parties: Section<PartyCard>,
    /// Events the caller organizes, answered or was invited to (full: those not over).
    pub events: Section<Event>,
    /// Groups the caller is a member of.
    pub groups: Section<wp_core::group::Group>,
}

/// Delta sync: what changed for the caller since `cursor` — notifications, friends,
/// parties, events, groups — as upserts (the objects as they are now) and tombstones
/// (ids gone or no longer theirs), with the next cursor. No cursor, one older than 30
/// days, or more than 2,000 changes: the full current state (`full: true`). An
/// unreadable cursor is a 400 naming it; a `device_id` not registered by the caller too.
#[utoipa::path(post, path = "/mobile/sync/", tag = "mobile", security(("bearer" = [])), request_body = SyncRequest,
    responses((status = 200, body = inline(Envelope<SyncAnswer>)), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn mobile_sync(
    State(state): State<AppState>,
    me: AuthUser,
    body: crate::extract::JsonBody,
) -> AppResult<ApiResponse<SyncAnswer>> {
    use wp_core::sync::{self, Cursor};
    let b = body.parse::<SyncRequest>()?;
    let now = chrono::Utc::now();
    let since = match b.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| AppError::field("cursor", "Not a cursor this server gave."))?,
        ),
    }
    .filter(|c| !c.too_old(now));
    if let Some(d) = &b.device_id
        && (d.is_empty()
            || d.chars().count() > 255
            || !sync::touch_device(&state.db, me.id, d, now).await?)
    {
        return Err(AppError::field(
            "device_id",
            "Not a device of yours: register it with POST /api/mobile/push-token/ first.",
        ));
    }
    let mut tx = state.db.begin().await?;
    let cursor = sync::begin(&mut tx, now).await?;
    let changed = match &since {
        Some(c) => sync::changed(&mut tx, me.id, c).await?,
        None => None,
    };
    let full = changed.is_none();
    let ids = |f: fn(&sync::Changed) -> &Vec<uuid::Uuid>| changed.as_ref().map(|c| f(c).as_slice());
    let (n_ids, f_ids, p_ids, e_ids, g_ids) = (
        ids(|c| &c.notifications),
        ids(|c| &c.friends),
        ids(|c| &c.parties),
        ids(|c| &c.events),
        ids(|c| &c.groups),
    );
    let notifications = crate::routes::notifications::for_sync(&mut tx, me.id, n_ids).await?;
    let friends = sync::friends(&mut tx, me.id, f_ids).await?;
    let mut redis = state.redis.clone();
    let parties =
        mobile::my_parties(&mut tx, &mut redis, &state.config.redis_prefix, &me, p_ids).await?;
    let events = wp_core::event::related(&mut tx, &me, e_ids).await?;
    let groups = wp_core::group::memberships(&mut tx, &me, g_ids).await?;
    tx.commit().await?;
    Ok(ApiResponse::ok(SyncAnswer {
        cursor: cursor.encode(),
        full,
        notifications: Section::new(n_ids, notifications, |n| n.id),
        friends: Section::new(f_ids, friends, |u| u.id),
        parties: Section::new(p_ids, parties, |p| p.id),
        events: Section::new(e_ids, events, |e| e.id),
        groups: Section::new(g_ids, groups, |g| g.id),
    }))
}
