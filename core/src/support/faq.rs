//! The FAQ: entries in categories, ordered by `position`, published or draft; staff
//! write them; anyone reads the published ones (staff also the drafts); signed-in
//! users say whether an entry helped, once each (a changed mind moves the counts).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{SupportError, SupportResult, require_staff, text};
use crate::account::Actor;

pub const QUESTION_MAX: usize = 300;
pub const ANSWER_MAX: usize = 20_000;
pub const CATEGORY_MAX: usize = 50;

/// An FAQ entry.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct FaqEntry {
    pub id: Uuid,
    pub category: String,
    pub question: String,
    pub answer: String,
    /// Lower first within the category.
    pub position: i32,
    /// Drafts (false) are shown to staff only.
    pub published: bool,
    /// How many said it helped, and did not.
    pub helpful_count: i32,
    pub not_helpful_count: i32,
    /// The caller's own vote, when signed in and voted.
    pub my_vote: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `$1`: the caller (or null).
const SELECT: &str = "SELECT f.id, f.category, f.question, f.answer, f.position, f.published,
        f.helpful_count, f.not_helpful_count,
        (SELECT v.helpful FROM support_faq_votes v WHERE v.faq_id = f.id AND v.user_id = $1) AS my_vote,
        f.created_at, f.updated_at
   FROM support_faq f";

/// A new entry.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFaq {
    /// 1 to 50 characters.
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub category: String,
    /// 1 to 300 characters.
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub question: String,
    /// 1 to 20,000 characters (plain text or Markdown, shown as the client renders it).
    #[schema(min_length = 1, max_length = 20000, pattern = r"\S")]
    pub answer: String,
    #[serde(default)]
    pub position: i32,
    #[serde(default)]
    pub published: bool,
}

impl NewFaq {
    pub fn checked(self) -> SupportResult<Self> {
        Ok(Self {
            category: text("category", &self.category, 1, CATEGORY_MAX)?,
            question: text("question", &self.question, 1, QUESTION_MAX)?,
            answer: text("answer", &self.answer, 1, ANSWER_MAX)?,
            position: self.position,
            published: self.published,
        })
    }
}

/// Changes to an entry (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaqPatch {
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub category: Option<String>,
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub question: Option<String>,
    #[schema(min_length = 1, max_length = 20000, pattern = r"\S")]
    pub answer: Option<String>,
    pub position: Option<i32>,
    pub published: Option<bool>,
}

impl FaqPatch {
    pub fn checked(self) -> SupportResult<Self> {
        let t = |field, v: Option<String>, max| v.map(|v| text(field, &v, 1, max)).transpose();
        Ok(Self {
            category: t("category", self.category, CATEGORY_MAX)?,
            question: t("question", self.question, QUESTION_MAX)?,
            answer: t("answer", self.answer, ANSWER_MAX)?,
            position: self.position,
            published: self.published,
        })
    }
}

/// Filters of the FAQ list.
#[derive(Debug, Clone, Default)]
pub struct FaqFilter {
    pub category: Option<String>,
    /// Words of the question or answer.
    pub search: Option<String>,
    /// Drafts too (staff only; ignored for others).
    pub drafts: bool,
}

/// A page of the entries `me` may read, by category then position; and how many.
pub async fn list(
    conn: &mut PgConnection,
    me: Option<&Actor>,
    f: &FaqFilter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<FaqEntry>, i64)> {
    let drafts = f.drafts && me.is_some_and(Actor::is_staff);
    let search = crate::contains_pattern(f.search.as_deref());
    let cond = "(f.published OR $1) AND ($2::text IS NULL OR f.category = $2)
        AND ($3::text IS NULL OR f.question ILIKE $3 OR f.answer ILIKE $3)";
    let count: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM support_faq f WHERE {cond}"))
            .bind(drafts)
            .bind(&f.category)
            .bind(&search)
            .fetch_one(&mut *conn)
            .await?;
    // The caller is `$1` in SELECT; here `$4`.
    let select = SELECT.replace("v.user_id = $1", "v.user_id = $4");
    let rows = sqlx::query_as(&format!(
        "{select} WHERE {cond} ORDER BY f.category, f.position, f.created_at, f.id LIMIT $5 OFFSET $6"
    ))
    .bind(drafts)
    .bind(&f.category)
    .bind(&search)
    .bind(me.map(|a| a.id))
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows, count))
}

/// One entry `me` may read.
pub async fn get(conn: &mut PgConnection, me: Option<&Actor>, id: Uuid) -> SupportResult<FaqEntry> {
    let staff = me.is_some_and(Actor::is_staff);
    sqlx::query_as(&format!("{SELECT} WHERE f.id = $2 AND (f.published OR $3)"))
        .bind(me.map(|a| a.id))
        .bind(id)
        .bind(staff)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(SupportError::NotFound)
}

/// Adds an entry (staff).
pub async fn create(db: &PgPool, me: &Actor, new: &NewFaq) -> SupportResult<FaqEntry> {
    require_staff(me)?;
    let id = Uuid::now_v7();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO support_faq (id, category, question, answer, position, published)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&new.category)
    .bind(&new.question)
    .bind(&new.answer)
    .bind(new.position)
    .bind(new.published)
    .execute(&mut *tx)
    .await?;
    let e = get(&mut tx, Some(me), id).await?;
    crate::audit::record(
        &mut tx,
        me,
        "faq.create",
        "faq",
        Some(id),
        serde_json::json!({ "question": e.question, "published": e.published }),
    )
    .await?;
    tx.commit().await?;
    Ok(e)
}

/// Edits an entry (staff).
pub async fn update(db: &PgPool, me: &Actor, id: Uuid, p: &FaqPatch) -> SupportResult<FaqEntry> {
    require_staff(me)?;
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE support_faq SET category = COALESCE($2, category), question = COALESCE($3, question),
                answer = COALESCE($4, answer), position = COALESCE($5, position),
                published = COALESCE($6, published), updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(&p.category)
    .bind(&p.question)
    .bind(&p.answer)
    .bind(p.position)
    .bind(p.published)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(SupportError::NotFound);
    }
    let e = get(&mut tx, Some(me), id).await?;
    crate::audit::record(
        &mut tx,
        me,
        "faq.update",
        "faq",
        Some(id),
        serde_json::json!({ "category": p.category, "question": p.question, "answer_changed": p.answer.is_some(),
                            "position": p.position, "published": p.published }),
    )
    .await?;
    tx.commit().await?;
    Ok(e)
}

/// Removes an entry (staff).
pub async fn delete(db: &PgPool, me: &Actor, id: Uuid) -> SupportResult<()> {
    require_staff(me)?;
    let mut tx = db.begin().await?;
    let question: Option<String> =
        sqlx::query_scalar("DELETE FROM support_faq WHERE id = $1 RETURNING question")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(question) = question else {
        return Err(SupportError::NotFound);
    };
    crate::audit::record(
        &mut tx,
        me,
        "faq.delete",
        "faq",
        Some(id),
        serde_json::json!({ "question": question }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records `me`'s answer to "was this helpful" on a published entry (a second vote
/// replaces the first); the counts move in the same transaction.
pub async fn vote(db: &PgPool, me: &Actor, id: Uuid, helpful: bool) -> SupportResult<FaqEntry> {
    let mut tx = db.begin().await?;
    let published: Option<bool> =
        sqlx::query_scalar("SELECT published FROM support_faq WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if published != Some(true) {
        return Err(SupportError::NotFound);
    }
    let before: Option<bool> = sqlx::query_scalar(
        "SELECT helpful FROM support_faq_votes WHERE faq_id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(me.id)
    .fetch_optional(&mut *tx)
    .await?;
    if before != Some(helpful) {
        sqlx::query(
            "INSERT INTO support_faq_votes (faq_id, user_id, helpful) VALUES ($1, $2, $3)
             ON CONFLICT (faq_id, user_id) DO UPDATE SET helpful = EXCLUDED.helpful, created_at = now()",
        )
        .bind(id)
        .bind(me.id)
        .bind(helpful)
        .execute(&mut *tx)
        .await?;
        let delta = |v: Option<bool>, side: bool| i32::from(v == Some(side));
        sqlx::query(
            "UPDATE support_faq SET helpful_count = helpful_count + $2 - $3,
                    not_helpful_count = not_helpful_count + $4 - $5
              WHERE id = $1",
        )
        .bind(id)
        .bind(delta(Some(helpful), true))
        .bind(delta(before, true))
        .bind(delta(Some(helpful), false))
        .bind(delta(before, false))
        .execute(&mut *tx)
        .await?;
    }
    let e = get(&mut tx, Some(me), id).await?;
    tx.commit().await?;
    Ok(e)
}
