//! Product feedback: a rating from 1 to 5 with optional words, the page or screen it
//! was given on, free context, the app's version and platform. Users send it; staff
//! read the list with filters and the average.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{SupportResult, invalid, text};
use crate::{account::Actor, social::UserSummary};

pub const TEXT_MAX: usize = 5_000;
pub const PAGE_MAX: usize = 500;
pub const VERSION_MAX: usize = 50;
/// The serialised `context` object, at most.
pub const CONTEXT_MAX_BYTES: usize = 4_096;

crate::text_enum! {
    /// Where feedback was given.
    pub enum FeedbackPlatform as "feedback platform" {
        Web = "web",
        Ios = "ios",
        Android = "android",
        Other = "other",
    }
}

/// Feedback to send.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFeedback {
    /// 1 (bad) to 5 (great).
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i16,
    /// At most 5,000 characters.
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub text: String,
    /// The page or screen (a path such as `/parties/…`), at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub page: String,
    /// Anything else the client knows (a JSON object of at most 4 KiB).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// At most 50 characters.
    #[serde(default)]
    #[schema(max_length = 50)]
    pub app_version: String,
    pub platform: Option<FeedbackPlatform>,
}

impl NewFeedback {
    pub fn checked(self) -> SupportResult<Self> {
        if !(1..=5).contains(&self.rating) {
            return Err(invalid("rating", "A whole number from 1 to 5."));
        }
        if let Some(c) = &self.context
            && serde_json::to_vec(c).map_or(usize::MAX, |v| v.len()) > CONTEXT_MAX_BYTES
        {
            return Err(invalid(
                "context",
                format!("At most {CONTEXT_MAX_BYTES} bytes of JSON."),
            ));
        }
        Ok(Self {
            rating: self.rating,
            text: text("text", &self.text, 0, TEXT_MAX)?,
            page: text("page", &self.page, 0, PAGE_MAX)?,
            context: self.context,
            app_version: text("app_version", &self.app_version, 0, VERSION_MAX)?,
            platform: self.platform,
        })
    }
}

/// Feedback as staff read it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Feedback {
    pub id: Uuid,
    /// Null once the account is gone.
    pub user: Option<UserSummary>,
    pub rating: i16,
    pub text: String,
    pub page: String,
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    pub app_version: String,
    pub platform: Option<FeedbackPlatform>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct FeedbackRow {
    id: Uuid,
    user_id: Option<Uuid>,
    username: Option<String>,
    display_name: Option<String>,
    avatar_path: Option<String>,
    rating: i16,
    text: String,
    page: String,
    context: serde_json::Value,
    app_version: String,
    platform: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<FeedbackRow> for Feedback {
    type Error = crate::UnknownValue;
    fn try_from(r: FeedbackRow) -> Result<Self, Self::Error> {
        let user = match (r.user_id, r.username, r.display_name) {
            (Some(id), Some(u), Some(d)) => {
                Some(UserSummary::new(id, u, d, r.avatar_path.as_deref()))
            }
            _ => None,
        };
        let platform = if r.platform.is_empty() {
            None
        } else {
            Some(r.platform.parse()?)
        };
        Ok(Self {
            id: r.id,
            user,
            rating: r.rating,
            text: r.text,
            page: r.page,
            context: r.context,
            app_version: r.app_version,
            platform,
            created_at: r.created_at,
        })
    }
}

const SELECT: &str =
    "SELECT f.id, f.user_id, u.username, u.display_name, u.avatar_path, f.rating, f.text,
        f.page, f.context, f.app_version, f.platform, f.created_at
   FROM support_feedback f LEFT JOIN users u ON u.id = f.user_id";

/// Records `me`'s feedback; returns its id.
pub async fn create(db: &PgPool, me: &Actor, f: &NewFeedback) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO support_feedback (id, user_id, rating, text, page, context, app_version, platform)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(me.id)
    .bind(f.rating)
    .bind(&f.text)
    .bind(&f.page)
    .bind(serde_json::Value::Object(f.context.clone().unwrap_or_default()))
    .bind(&f.app_version)
    .bind(f.platform.map_or("", |p| p.as_str()))
    .execute(db)
    .await?;
    Ok(id)
}

/// Filters of the feedback list.
#[derive(Debug, Clone, Default)]
pub struct FeedbackFilter {
    pub rating: Option<i16>,
    pub platform: Option<FeedbackPlatform>,
    pub since: Option<DateTime<Utc>>,
    /// Words of the text or page.
    pub search: Option<String>,
}

/// A page of feedback (newest first), how many match, and their average rating.
pub async fn list(
    conn: &mut PgConnection,
    f: &FeedbackFilter,
    limit: i64,
    offset: i64,
) -> SupportResult<(Vec<Feedback>, i64, Option<f64>)> {
    let search = crate::contains_pattern(f.search.as_deref());
    let cond = "($1::smallint IS NULL OR f.rating = $1) AND ($2::text IS NULL OR f.platform = $2)
        AND ($3::timestamptz IS NULL OR f.created_at >= $3)
        AND ($4::text IS NULL OR f.text ILIKE $4 OR f.page ILIKE $4)";
    let platform = f.platform.map(|p| p.as_str());
    let (count, average): (i64, Option<f64>) = sqlx::query_as(&format!(
        "SELECT count(*), avg(f.rating)::float8 FROM support_feedback f WHERE {cond}"
    ))
    .bind(f.rating)
    .bind(platform)
    .bind(f.since)
    .bind(&search)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<FeedbackRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE {cond} ORDER BY f.created_at DESC, f.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(f.rating)
    .bind(platform)
    .bind(f.since)
    .bind(&search)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let rows = rows
        .into_iter()
        .map(Feedback::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok((rows, count, average))
}
