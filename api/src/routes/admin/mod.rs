//! Staff actions: the user directory and bulk actions ([`directory`]), on accounts ([`users`]), on the job queues' dead jobs ([`queues`]),
//! broadcasts to every user or a segment ([`broadcast`]).

pub mod broadcast;
pub mod directory;
pub mod exports;
pub mod health;
pub mod queues;
pub mod users;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The routes of this resource (registered under `/api/` by `crate::api_routes`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(directory::directory))
        .routes(routes!(directory::bulk))
        .routes(routes!(exports::export_users))
        .routes(routes!(exports::create_export, exports::list_exports))
        .routes(routes!(exports::export_detail))
        .routes(routes!(exports::export_download))
        .routes(routes!(users::suspend))
        .routes(routes!(users::unsuspend))
        .routes(routes!(users::set_role))
        .routes(routes!(health::system_health))
        .routes(routes!(queues::queues))
        .routes(routes!(queues::dead))
        .routes(routes!(queues::replay))
        .routes(routes!(broadcast::send))
        .routes(routes!(broadcast::progress))
}
