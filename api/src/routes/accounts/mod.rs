//! Accounts: registration, login, tokens and sessions ([`auth`]), email verification,
//! password reset and change, email change ([`account`]), two-factor authentication
//! ([`two_factor`]), profiles and search ([`users`]), deletion, exports and avatars
//! ([`lifecycle`]). The account model, tokens and authentication are `wp_core::account`.

pub mod account;
pub mod auth;
pub mod lifecycle;
pub mod two_factor;
pub mod users;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::ws_ticket))
        .routes(routes!(auth::sessions))
        .routes(routes!(auth::revoke_session))
        .routes(routes!(account::verify_email))
        .routes(routes!(account::unlock))
        .routes(routes!(account::resend_verification))
        .routes(routes!(account::reset_request))
        .routes(routes!(account::reset_confirm))
        .routes(routes!(account::change_password))
        .routes(routes!(account::change_email))
        .routes(routes!(account::change_email_confirm))
        .routes(routes!(account::revert_email))
        .routes(routes!(two_factor::setup))
        .routes(routes!(two_factor::enable))
        .routes(routes!(two_factor::disable))
        .routes(routes!(two_factor::login))
        .routes(routes!(users::me, users::update_me, lifecycle::delete_me))
        .routes(routes!(lifecycle::request_export))
        .routes(routes!(lifecycle::export_status))
        .routes(routes!(lifecycle::export_download))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(lifecycle::upload_avatar, lifecycle::delete_avatar))
                .layer(DefaultBodyLimit::max(
                    lifecycle::AVATAR_MAX_BYTES + 64 * 1024,
                )),
        )
        .routes(routes!(lifecycle::avatar))
        .routes(routes!(users::profile))
        .routes(routes!(users::search))
}
