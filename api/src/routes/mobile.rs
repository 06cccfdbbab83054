//! The mobile apps' own routes under `/api/mobile/` (seed item 9): the configuration an
//! app reads at start (`config/`). Push tokens and devices are in
//! [`crate::routes::notifications`]. The rules are `wp_core::mobile`.

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sha2::Digest;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use wp_core::mobile::{self, Limits, MobileConfigView, MobilePlatform};
use wp_shared::config::AppVersion;

use crate::{
    error::{AppError, AppResult, ErrorBody},
    extract::Query,
    response::{ApiResponse, Envelope, MAX_PAGE_SIZE, not_modified},
    state::AppState,
};

/// How long a client may reuse the configuration without asking.
const CACHE: &str = "public, max-age=300";

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mobile_config))
}

/// `?platform=&app_version=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConfigParams {
    /// `ios` or `android`: the update advice and push provider are for it.
    pub platform: Option<String>,
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
    let platform = q
        .platform
        .as_deref()
        .map(|p| {
            p.parse::<MobilePlatform>()
                .map_err(|_| AppError::field("platform", "ios or android."))
        })
        .transpose()?;
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
