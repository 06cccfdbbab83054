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
