//! Route modules. Every route is registered in `crate::router`, so the OpenAPI
//! document is generated from the same list the server uses.

pub mod account;
pub mod admin_broadcast;
pub mod admin_queues;
pub mod admin_users;
pub mod auth;
pub mod comments;
pub mod downloads;
pub mod interactive;
pub mod lifecycle;
pub mod notifications;
pub mod parties;
pub mod social;
pub mod system;
pub mod two_factor;
pub mod users;
pub mod video_likes;
pub mod videos;
