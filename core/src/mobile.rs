//! What the mobile apps are told before anything else (seed item 9): where the API and
//! the sockets are, which features are on, the limits to check before sending, push
//! settings, and whether this app version must or may update.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use wp_shared::config::{AppRelease, AppVersion, Config};

crate::text_enum! {
    /// A mobile platform.
    pub enum MobilePlatform as "mobile platform" {
        Ios = "ios",
        Android = "android",
    }
}

/// The features the apps switch on or off by this answer.
pub const FEATURES: &[&str] = &[
    "parties",
    "chat",
    "voice",
    "screen_share",
    "polls",
    "reactions",
    "video_upload",
    "downloads",
    "comments",
    "events",
    "groups",
    "search",
    "help_desk",
    "reports",
    "two_factor",
    "push",
];

/// Whether the app must or may update.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct UpdateAdvice {
    /// The version the app said it is.
    pub app_version: Option<String>,
    /// Older versions are no longer served (null: none configured).
    pub minimum_version: Option<String>,
    /// The newest release (null: none configured).
    pub latest_version: Option<String>,
    /// The app is older than `minimum_version`: it must update before going on.
    pub required: bool,
    /// A newer release exists (`latest_version`).
    pub available: bool,
    /// Where to update.
    pub store_url: Option<String>,
}

/// The advice for `version` of an app with `release` (no version: nothing required).
pub fn advice(release: &AppRelease, version: Option<&AppVersion>) -> UpdateAdvice {
    UpdateAdvice {
        app_version: version.map(ToString::to_string),
        minimum_version: release.minimum.as_ref().map(ToString::to_string),
        latest_version: release.latest.as_ref().map(ToString::to_string),
        required: matches!((version, &release.minimum), (Some(v), Some(m)) if v < m),
        available: matches!((version, &release.latest), (Some(v), Some(l)) if v < l),
        store_url: release.store_url.clone(),
    }
}

/// Limits a client checks before sending.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Limits {
    pub request_body_max_bytes: u64,
    pub video_max_bytes: u64,
    pub avatar_max_bytes: u64,
    pub support_attachment_max_bytes: u64,
    pub chat_message_max_chars: u64,
    pub comment_max_chars: u64,
    pub party_title_max_chars: u64,
    pub report_details_max_chars: u64,
    /// The largest `page_size` of any list.
    pub page_size_max: u64,
}

/// A notification type as the app's settings screen lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PushKind {
    pub name: &'static str,
    pub description: &'static str,
    /// Pushed unless the user turns it off.
    pub push_by_default: bool,
    /// Cannot be turned off.
    pub required: bool,
}

/// Push settings for this platform.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PushSettings {
    /// Whether the server can push to this platform (its provider is configured).
    pub enabled: bool,
    /// `apns` (iOS) or `fcm` (Android); null without a platform.
    pub provider: Option<&'static str>,
    /// Where the app registers its token.
    pub register_path: &'static str,
    pub kinds: Vec<PushKind>,
}

/// `data` of `GET /api/mobile/config/`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MobileConfigView {
    /// REST base, e.g. `https://api.example.com/api`.
    pub api_base_url: String,
    /// Socket base, e.g. `wss://rt.example.com/ws` (`/party/{id}/`, `/notifications/`).
    pub socket_base_url: String,
    /// The web app, for links shared out of the app.
    pub web_url: String,
    pub platform: Option<MobilePlatform>,
    /// Null without a platform.
    pub update: Option<UpdateAdvice>,
    /// Every feature in [`FEATURES`], on or off.
    pub features: BTreeMap<&'static str, bool>,
    pub limits: Limits,
    pub push: PushSettings,
}

/// The answer for `platform` at `version`, from the configuration and `limits`.
pub fn config_view(
    config: &Config,
    platform: Option<MobilePlatform>,
    version: Option<&AppVersion>,
    limits: Limits,
) -> MobileConfigView {
    let (release, push_enabled, provider) = match platform {
        Some(MobilePlatform::Ios) => (
            Some(&config.mobile.ios),
            config.apns.is_some(),
            Some("apns"),
        ),
        Some(MobilePlatform::Android) => (
            Some(&config.mobile.android),
            config.fcm.is_some(),
            Some("fcm"),
        ),
        None => (None, config.apns.is_some() || config.fcm.is_some(), None),
    };
    let push_on = push_enabled && !config.mobile.disabled_features.iter().any(|f| f == "push");
    let features = FEATURES
        .iter()
        .map(|f| {
            let on = !config.mobile.disabled_features.iter().any(|d| d == f);
            (*f, if *f == "push" { push_on } else { on })
        })
        .collect();
    MobileConfigView {
        api_base_url: format!("{}/api", config.public_url),
        socket_base_url: format!("{}/ws", config.realtime_public_url),
        web_url: config.frontend_url.clone(),
        platform,
        update: release.map(|r| advice(r, version)),
        features,
        limits,
        push: PushSettings {
            enabled: push_on,
            provider,
            register_path: "/api/mobile/push-token/",
            kinds: crate::notify::KINDS
                .iter()
                .map(|k| PushKind {
                    name: k.name,
                    description: k.description,
                    push_by_default: k.push,
                    required: k.required,
                })
                .collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> AppVersion {
        s.parse().unwrap()
    }

    #[test]
    fn old_apps_must_update_and_older_than_latest_may() {
        let release = AppRelease {
            minimum: Some(v("1.4")),
            latest: Some(v("2.0.1")),
            store_url: None,
        };
        let a = |s: &str| {
            let adv = advice(&release, Some(&v(s)));
            (adv.required, adv.available)
        };
        assert_eq!(a("1.3.9"), (true, true));
        assert_eq!(a("1.4.0"), (false, true), "1.4 = 1.4.0");
        assert_eq!(a("1.10"), (false, true), "numbers, not text: 1.10 > 1.4");
        assert_eq!(a("2.0.1"), (false, false));
        assert_eq!(a("3"), (false, false));
        assert!(
            !advice(&release, None).required,
            "no version, nothing required"
        );
        assert!("1.x".parse::<AppVersion>().is_err());
        assert!("".parse::<AppVersion>().is_err());
    }
}

/// A party on the home screen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartyCard {
    pub id: uuid::Uuid,
    pub title: String,
    pub host: crate::social::UserSummary,
    pub video_id: Option<uuid::Uuid>,
    pub video_title: Option<String>,
    pub group_id: Option<uuid::Uuid>,
    pub member_count: i64,
    /// Sockets open in it now.
    pub online: u64,
    /// Why it is shown: `mine` (hosted or joined), `friend` (a friend hosts it), `group`.
    pub via: &'static str,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(sqlx::FromRow)]
struct PartyCardRow {
    id: uuid::Uuid,
    title: String,
    host_id: uuid::Uuid,
    username: String,
    display_name: String,
    avatar_path: Option<String>,
    video_id: Option<uuid::Uuid>,
    video_title: Option<String>,
    group_id: Option<uuid::Uuid>,
    member_count: i64,
    mine: bool,
    friend: bool,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// A video to go on with.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ContinueWatching {
    pub video_id: uuid::Uuid,
    pub title: String,
    pub duration_seconds: Option<f64>,
    pub position_seconds: f64,
    /// The video's visibility (a client builds the thumbnail link from it).
    #[serde(skip)]
    pub visibility: crate::video::VideoVisibility,
    #[serde(skip)]
    pub has_thumbnail: bool,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// What waits for the user.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Unread {
    pub notifications: i64,
    pub friend_requests: i64,
    pub group_invitations: i64,
    pub event_invitations: i64,
}

/// How far ahead the home screen's events go.
pub const EVENTS_HORIZON_DAYS: i64 = 14;
/// Items per home-screen row.
pub const ROW: i64 = 10;
/// Active parties looked at for the live row (the most recently changed).
const PARTY_CANDIDATES: i64 = 40;

/// The active parties of `me`'s friends and groups and `me`'s own, most recently changed
/// first (visible by `party_visible_to`), with their open sockets (`online`); only those
/// with someone in them, most crowded first.
pub async fn live_parties(
    db: &sqlx::PgPool,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    me: &crate::account::Actor,
) -> sqlx::Result<Vec<PartyCard>> {
    let rows: Vec<PartyCardRow> = sqlx::query_as(&format!(
        "{PARTY_CARD}
          WHERE p.id IN (
                SELECT x.id FROM friendships f JOIN parties x ON x.host_id = f.user_b AND x.status = 'active' WHERE f.user_a = $1
                UNION SELECT x.id FROM friendships f JOIN parties x ON x.host_id = f.user_a AND x.status = 'active' WHERE f.user_b = $1
                UNION SELECT x.id FROM group_members g JOIN parties x ON x.group_id = g.group_id AND x.status = 'active' WHERE g.user_id = $1
                UNION SELECT m.party_id FROM party_members m WHERE m.user_id = $1)
            AND p.status = 'active' AND party_visible_to(p.id, p.host_id, p.visibility, $1, $2)
          ORDER BY p.updated_at DESC, p.id LIMIT $3"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(PARTY_CANDIDATES)
    .fetch_all(db)
    .await?;
    let mut cards: Vec<PartyCard> = with_online(redis, prefix, rows)
        .await
        .into_iter()
        .filter(|c| c.online > 0)
        .collect();
    cards.sort_by(|a, b| {
        b.online
            .cmp(&a.online)
            .then(b.updated_at.cmp(&a.updated_at))
    });
    cards.truncate(ROW as usize);
    Ok(cards)
}

/// A party card's columns (`$1`: the caller).
const PARTY_CARD: &str = "SELECT p.id, p.title, p.host_id, u.username, u.display_name, u.avatar_path, p.video_id,
        v.title AS video_title, p.group_id,
        (SELECT count(*) FROM party_members m WHERE m.party_id = p.id) AS member_count,
        (p.host_id = $1 OR EXISTS (SELECT 1 FROM party_members m WHERE m.party_id = p.id AND m.user_id = $1)) AS mine,
        are_friends(p.host_id, $1) AS friend, p.updated_at
   FROM parties p JOIN users u ON u.id = p.host_id LEFT JOIN videos v ON v.id = p.video_id";

/// Cards of `rows` with their open sockets (`online`, from the realtime presence; 0 for
/// all when Redis cannot be read: the rest of the answer still loads).
async fn with_online(
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    rows: Vec<PartyCardRow>,
) -> Vec<PartyCard> {
    if rows.is_empty() {
        return Vec::new();
    }
    let mut pipe = redis::pipe();
    for r in &rows {
        pipe.hlen(crate::party::live::Keys::new(prefix, r.id).presence());
    }
    let online: Vec<u64> = match pipe.query_async(redis).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "party presence unreadable");
            vec![0; rows.len()]
        }
    };
    rows.into_iter()
        .zip(online)
        .map(|(r, online)| PartyCard {
            id: r.id,
            title: r.title,
            host: crate::social::UserSummary::new(
                r.host_id,
                r.username,
                r.display_name,
                r.avatar_path.as_deref(),
            ),
            video_id: r.video_id,
            video_title: r.video_title,
            group_id: r.group_id,
            member_count: r.member_count,
            online,
            via: if r.mine {
                "mine"
            } else if r.friend {
                "friend"
            } else {
                "group"
            },
            updated_at: r.updated_at,
        })
        .collect()
}

/// The active parties `me` hosts or joined (visible by `party_visible_to`): among `ids`,
/// or all (`None`), most recently changed first.
pub async fn my_parties(
    db: &mut sqlx::PgConnection,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    me: &crate::account::Actor,
    ids: Option<&[uuid::Uuid]>,
) -> sqlx::Result<Vec<PartyCard>> {
    let rows: Vec<PartyCardRow> = sqlx::query_as(&format!(
        "{PARTY_CARD} WHERE p.id IN (SELECT m.party_id FROM party_members m WHERE m.user_id = $1)
            AND ($3::uuid[] IS NULL OR p.id = ANY($3))
            AND p.status = 'active' AND party_visible_to(p.id, p.host_id, p.visibility, $1, $2)
          ORDER BY p.updated_at DESC, p.id LIMIT 1000"
    ))
    .bind(me.id)
    .bind(me.is_staff())
    .bind(ids)
    .fetch_all(&mut *db)
    .await?;
    Ok(with_online(redis, prefix, rows).await)
}

/// Videos `me` started and did not finish (at least 10 s in, before the last 5%), still
/// visible and ready, most recent first.
pub async fn continue_watching(
    db: &sqlx::PgPool,
    me: &crate::account::Actor,
) -> sqlx::Result<Vec<ContinueWatching>> {
    sqlx::query_as(
        "SELECT v.id AS video_id, v.title, v.duration_seconds, w.position_seconds, v.visibility,
                v.thumbnail_key IS NOT NULL AS has_thumbnail, w.updated_at
           FROM watch_progress w JOIN videos v ON v.id = w.video_id
          WHERE w.user_id = $1 AND v.status = 'ready' AND w.position_seconds >= 10
            AND (v.duration_seconds IS NULL OR w.position_seconds < v.duration_seconds * 0.95)
            AND video_visible_to(v.owner_id, v.status, v.visibility, $1, $2)
          ORDER BY w.updated_at DESC LIMIT $3",
    )
    .bind(me.id)
    .bind(me.is_staff())
    .bind(ROW)
    .fetch_all(db)
    .await
}

/// The counts on the home screen's badges.
pub async fn unread(db: &sqlx::PgPool, me: &crate::account::Actor) -> sqlx::Result<Unread> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL) AS notifications,
                (SELECT count(*) FROM friend_requests WHERE to_user = $1 AND status = 'pending') AS friend_requests,
                (SELECT count(*) FROM group_invitations WHERE user_id = $1) AS group_invitations,
                (SELECT count(*) FROM event_invitations WHERE user_id = $1 AND status = 'pending') AS event_invitations",
    )
    .bind(me.id)
    .fetch_one(db)
    .await
}
