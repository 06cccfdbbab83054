//! Route modules, one per resource (a folder where the resource has several parts),
//! each with its `router()`; `crate::api_routes` merges them, so the OpenAPI document is
//! generated from the same routes the server uses.

pub mod accounts;
pub mod admin;
pub mod analytics;
pub mod demo;
pub mod events;
pub mod groups;
pub mod mobile;
pub mod moderation;
pub mod notifications;
pub mod parties;
pub mod search;
pub mod social;
pub mod support;
pub mod system;
pub mod videos;
