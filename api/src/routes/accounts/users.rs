//! Profiles: the caller's own (`/users/me/`), public profiles, user search.

use crate::extract::Ids;
use axum::extract::{OriginalUri, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    error::{AppError, AppResult},
    extract::{Json, Query},
    response::{ApiResponse, Envelope, PageParams, Paginated},
    state::AppState,
};

/// The caller's own profile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub locale: String,
    pub timezone: String,
    /// `user`, `moderator` or `admin`.
    pub role: String,
    pub two_factor_enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// What anyone may see of a user.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicUser {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub(crate) struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub display_name: String,
    pub bio: String,
    pub avatar_path: Option<String>,
    pub locale: String,
    pub timezone: String,
    pub role: String,
    pub totp_enabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The avatar's URL, as every user summary gives it ([`wp_core::social::avatar_link`]).
fn avatar_url(state: &AppState, id: Uuid, path: &Option<String>) -> Option<String> {
    path.as_ref().map(|p| {
        format!(
            "{}{}",
            state.config.public_url,
            wp_core::social::avatar_link(id, p)
        )
    })
}

impl UserRow {
    pub(crate) fn me(&self, state: &AppState) -> Me {
        Me {
            id: self.id,
            username: self.username.clone(),
            email: self.email.clone(),
            email_verified: self.email_verified_at.is_some(),
            display_name: self.display_name.clone(),
            bio: self.bio.clone(),
            avatar_url: avatar_url(state, self.id, &self.avatar_path),
            locale: self.locale.clone(),
            timezone: self.timezone.clone(),
            role: self.role.clone(),
            two_factor_enabled: self.totp_enabled_at.is_some(),
            created_at: self.created_at,
        }
    }
}

pub(crate) async fn load_me(state: &AppState, id: Uuid) -> AppResult<Me> {
    let row = sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, email_verified_at, display_name, bio, avatar_path,
                locale, timezone, role, totp_enabled_at, created_at
         FROM users WHERE id = $1",
        id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(AppError::not_found)?;
    Ok(row.me(state))
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me/", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = inline(Envelope<Me>)), (status = 401, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> AppResult<ApiResponse<Me>> {
    Ok(ApiResponse::ok(load_me(&state, user.id).await?))
}

/// Fields of `PATCH /users/me/`; absent fields are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// Up to 80 characters.
    pub display_name: Option<String>,
    /// Up to 1000 characters.
    pub bio: Option<String>,
    /// A BCP 47 language tag such as `en` or `pt-BR`.
    pub locale: Option<String>,
    /// An IANA time zone such as `Europe/Paris`.
    pub timezone: Option<String>,
}

fn valid_locale(s: &str) -> bool {
    let mut parts = s.split('-');
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Changes the caller's profile.
#[utoipa::path(patch, path = "/users/me/", tag = "users", security(("bearer" = [])), request_body = UpdateMe,
    responses((status = 200, body = inline(Envelope<Me>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<UpdateMe>,
) -> AppResult<ApiResponse<Me>> {
    let mut errors = crate::error::FieldErrors::new();
    if let Some(d) = &body.display_name
        && d.chars().count() > 80
    {
        errors.insert(
            "display_name".into(),
            vec!["Ensure this field has no more than 80 characters.".into()],
        );
    }
    if let Some(b) = &body.bio
        && b.chars().count() > 1000
    {
        errors.insert(
            "bio".into(),
            vec!["Ensure this field has no more than 1000 characters.".into()],
        );
    }
    if let Some(l) = &body.locale
        && !valid_locale(l)
    {
        errors.insert(
            "locale".into(),
            vec!["Not a language tag such as `en` or `pt-BR`.".into()],
        );
    }
    if let Some(tz) = &body.timezone
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        errors.insert(
            "timezone".into(),
            vec!["Not an IANA time zone such as `Europe/Paris`.".into()],
        );
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    sqlx::query!(
        "UPDATE users SET
            display_name = COALESCE($2, display_name),
            bio = COALESCE($3, bio),
            locale = COALESCE($4, locale),
            timezone = COALESCE($5, timezone)
         WHERE id = $1",
        user.id,
        body.display_name.as_deref().map(str::trim),
        body.bio,
        body.locale,
        body.timezone,
    )
    .execute(&state.db)
    .await?;
    Ok(ApiResponse::ok(load_me(&state, user.id).await?))
}

/// A user's public profile. Deleted accounts, and users who blocked the caller, are 404.
#[utoipa::path(get, path = "/users/{id}/", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = inline(Envelope<PublicUser>)), (status = 404, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn profile(
    State(state): State<AppState>,
    caller: AuthUser,
    Ids(id): Ids<Uuid>,
) -> AppResult<ApiResponse<PublicUser>> {
    // Someone the owner blocked does not see the profile.
    let mut conn = state.db.acquire().await?;
    if wp_core::social::has_blocked(&mut conn, id, caller.id).await? {
        return Err(AppError::not_found());
    }
    drop(conn);
    let row = sqlx::query!(
        "SELECT id, username, display_name, bio, avatar_path, created_at
         FROM users WHERE id = $1 AND status <> 'deleted'",
        id
    )
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(AppError::not_found)?;
    Ok(ApiResponse::ok(PublicUser {
        avatar_url: avatar_url(&state, row.id, &row.avatar_path),
        id: row.id,
        username: row.username,
        display_name: row.display_name,
        bio: row.bio,
        created_at: row.created_at,
    }))
}

/// `?search=` for the user search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Username prefix (case-insensitive), 1 to 30 characters besides spaces around.
    #[param(min_length = 1, max_length = 30, pattern = "\\S")]
    pub search: String,
    #[param(minimum = 1)]
    pub page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Users whose username starts with `search`, shortest names first (page-number
/// pagination).
#[utoipa::path(get, path = "/users/", tag = "users", security(("bearer" = [])), params(SearchParams),
    responses((status = 200, body = inline(Envelope<Paginated<PublicUser>>)), (status = 400, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn search(
    State(state): State<AppState>,
    _caller: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(q): Query<SearchParams>,
) -> AppResult<ApiResponse<Paginated<PublicUser>>> {
    let prefix = q.search.trim().to_lowercase();
    if prefix.is_empty() || prefix.chars().count() > 30 {
        return Err(AppError::field(
            "search",
            "Give 1 to 30 characters of a username.",
        ));
    }
    let page = PageParams {
        page: q.page,
        page_size: q.page_size,
    }
    .validate()?;
    // `_` and `%` are literal in usernames, not wildcards.
    let pattern = format!("{}%", wp_core::like_literal(&prefix));
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM users WHERE lower(username) LIKE $1 AND status = 'active'"#,
        pattern
    )
    .fetch_one(&state.db)
    .await?;
    let rows = sqlx::query!(
        "SELECT id, username, display_name, bio, avatar_path, created_at
         FROM users WHERE lower(username) LIKE $1 AND status = 'active'
         ORDER BY length(username), lower(username) LIMIT $2 OFFSET $3",
        pattern,
        page.limit(),
        page.offset()
    )
    .fetch_all(&state.db)
    .await?;
    let results = rows
        .into_iter()
        .map(|r| PublicUser {
            avatar_url: avatar_url(&state, r.id, &r.avatar_path),
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            bio: r.bio,
            created_at: r.created_at,
        })
        .collect();
    let url = crate::response::request_url(&state, &uri);
    Ok(ApiResponse::ok(Paginated::new(results, count, page, &url)))
}
