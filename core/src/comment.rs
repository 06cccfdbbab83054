//! Threaded comments on videos: one level of threading (a reply to a reply is filed
//! under the top-level comment), likes, mentions, and who may write, edit and delete.
//! Whoever may see the video (`video::visible`) may read its comments; the caller
//! loads the video first and hands it in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{account::Actor, social::UserSummary, video::VideoRow};

pub const MAX_LEN: usize = 2000;
/// Replies embedded under each top-level comment of a page.
pub const EMBEDDED_REPLIES: i64 = 3;

crate::text_enum! {
    /// How a list of comments is ordered.
    pub enum CommentOrder as "comment ordering" {
        Newest = "newest",
        Oldest = "oldest",
        /// Most liked first.
        Top = "top",
    }
}

impl CommentOrder {
    /// The `ordering` parameter, in the convention's vocabulary (`-created_at`,
    /// `created_at`, `-likes_count`) or as the words (`newest`, `oldest`, `top`).
    pub fn from_param(s: &str) -> Option<Self> {
        match s {
            "-created_at" => Some(Self::Newest),
            "created_at" => Some(Self::Oldest),
            "-likes_count" => Some(Self::Top),
            words => words.parse().ok(),
        }
    }
}

/// A comment. A deleted comment that has replies stays, with `is_deleted` true and no
/// content or author.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Comment {
    pub id: Uuid,
    pub video_id: Uuid,
    pub user: Option<UserSummary>,
    pub content: String,
    /// The top-level comment this replies to.
    pub parent: Option<Uuid>,
    pub is_edited: bool,
    pub is_deleted: bool,
    pub likes_count: i32,
    pub reply_count: i32,
    /// Whether the caller liked it.
    pub is_liked: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The oldest replies (up to 3) of a top-level comment; the rest via `?parent=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub replies: Option<Vec<Comment>>,
}

/// Why a comment action is refused.
#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    /// No such comment on the video (or it was deleted).
    #[error("Not found.")]
    NotFound,
    /// The content is blank or too long (the text says which).
    #[error("{0}")]
    Content(String),
    #[error("No such comment on this video.")]
    NoParent,
    #[error("That comment was deleted.")]
    ParentDeleted,
    /// The video's owner and the author blocked one another.
    #[error("You cannot comment on this video.")]
    Blocked,
    #[error("Only the author can edit a comment.")]
    NotAuthor,
    #[error("You cannot delete this comment.")]
    CannotDelete,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub type CommentResult<T> = Result<T, CommentError>;

/// A comment's text, trimmed, not blank, at most [`MAX_LEN`] characters.
#[derive(Debug, Clone)]
pub struct CommentText(String);

impl CommentText {
    pub fn parse(raw: &str) -> CommentResult<Self> {
        let content = raw.trim();
        if content.is_empty() {
            return Err(CommentError::Content("This field may not be blank.".into()));
        }
        if content.chars().count() > MAX_LEN {
            return Err(CommentError::Content(format!(
                "Ensure this field has no more than {MAX_LEN} characters."
            )));
        }
        Ok(Self(content.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `@username` mentions in a comment (at most 10, without duplicates).
pub fn mentions(content: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in content.match_indices('@') {
        let before_ok = i == 0
            || !content[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !before_ok {
            continue;
        }
        let name: String = content[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        let name = name.trim_end_matches('.').to_lowercase();
        if name.len() >= 3 && !out.contains(&name) {
            out.push(name);
        }
        if out.len() == 10 {
            break;
        }
    }
    out
}

struct Row {
    id: Uuid,
    video_id: Uuid,
    user_id: Uuid,
    username: String,
    display_name: String,
    avatar_path: Option<String>,
    parent_id: Option<Uuid>,
    content: String,
    is_edited: bool,
    is_deleted: bool,
    likes_count: i32,
    reply_count: i32,
    is_liked: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn into_comment(self) -> Comment {
        Comment {
            id: self.id,
            video_id: self.video_id,
            user: (!self.is_deleted).then_some(UserSummary::new(
                self.user_id,
                self.username,
                self.display_name,
                self.avatar_path.as_deref(),
            )),
            content: if self.is_deleted {
                String::new()
            } else {
                self.content
            },
            parent: self.parent_id,
            is_edited: self.is_edited,
            is_deleted: self.is_deleted,
            likes_count: self.likes_count,
            reply_count: self.reply_count,
            is_liked: self.is_liked,
            created_at: self.created_at,
            updated_at: self.updated_at,
            replies: None,
        }
    }
}

/// A comment that is not deleted, as `me` sees it.
async fn load(conn: &mut PgConnection, video: Uuid, id: Uuid, me: Uuid) -> CommentResult<Row> {
    sqlx::query_as!(
        Row,
        r#"SELECT c.id, c.video_id, c.user_id, u.username, u.display_name, u.avatar_path, c.parent_id, c.content,
                  c.is_edited, c.is_deleted, c.likes_count, c.reply_count,
                  EXISTS(SELECT 1 FROM comment_likes l WHERE l.comment_id = c.id AND l.user_id = $3) AS "is_liked!",
                  c.created_at, c.updated_at
           FROM video_comments c JOIN users u ON u.id = c.user_id
           WHERE c.id = $1 AND c.video_id = $2"#,
        id,
        video,
        Some(me)
    )
    .fetch_optional(&mut *conn)
    .await?
    .filter(|r| !r.is_deleted)
    .ok_or(CommentError::NotFound)
}

/// A new comment and the outbox rows (reply and mention notices) to relay after commit.
pub struct Created {
    pub comment: Comment,
    pub outbox: Vec<i64>,
}

/// Writes `me`'s comment on `v` (a reply to `parent`, filed under its top-level
/// comment), counts it, and records the reply and mention notices.
pub async fn create(
    tx: &mut PgConnection,
    v: &VideoRow,
    me: Uuid,
    content: &CommentText,
    parent: Option<Uuid>,
) -> CommentResult<Created> {
    if crate::social::blocked_between(tx, me, v.owner_id).await? {
        return Err(CommentError::Blocked);
    }
    let parent = match parent {
        None => None,
        Some(pid) => {
            let p = sqlx::query!(
                "SELECT id, parent_id, user_id, is_deleted FROM video_comments WHERE id = $1 AND video_id = $2 FOR UPDATE",
                pid,
                v.id
            )
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CommentError::NoParent)?;
            if p.is_deleted {
                return Err(CommentError::ParentDeleted);
            }
            Some((p.parent_id.unwrap_or(p.id), p.user_id))
        }
    };
    let cid = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO video_comments (id, video_id, user_id, parent_id, content) VALUES ($1, $2, $3, $4, $5)",
        cid,
        v.id,
        me,
        parent.map(|p| p.0),
        content.as_str()
    )
    .execute(&mut *tx)
    .await?;
    if let Some((top, _)) = parent {
        sqlx::query!(
            "UPDATE video_comments SET reply_count = reply_count + 1 WHERE id = $1",
            top
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE videos SET comment_count = comment_count + 1,
                top_comment_count = top_comment_count + $2 WHERE id = $1",
        v.id,
        if parent.is_none() { 1 } else { 0 }
    )
    .execute(&mut *tx)
    .await?;
    let mut outbox = Vec::new();
    let payload = serde_json::json!({ "video_id": v.id, "comment_id": cid });
    if let Some((_, author)) = parent
        && author != me
    {
        let id = crate::events::emit(tx, "comment.reply", Some(me), Some(author), payload.clone())
            .await?;
        outbox.push(id);
    }
    let names = mentions(content.as_str());
    if !names.is_empty() {
        let mentioned = sqlx::query_scalar!(
            "SELECT id FROM users WHERE lower(username) = ANY($1) AND status = 'active' AND id <> $2",
            &names,
            me
        )
        .fetch_all(&mut *tx)
        .await?;
        for uid in mentioned {
            if parent.is_some_and(|(_, a)| a == uid) {
                continue; // already told of the reply
            }
            let id =
                crate::events::emit(tx, "comment.mention", Some(me), Some(uid), payload.clone())
                    .await?;
            outbox.push(id);
        }
    }
    let mut comment = load(tx, v.id, cid, me).await?.into_comment();
    if comment.parent.is_none() {
        comment.replies = Some(Vec::new());
    }
    Ok(Created { comment, outbox })
}

/// Replaces the text of a comment (its author only) and marks it edited if it changed.
pub async fn edit(
    tx: &mut PgConnection,
    v: &VideoRow,
    me: Uuid,
    id: Uuid,
    content: &CommentText,
) -> CommentResult<Comment> {
    let c = load(tx, v.id, id, me).await?;
    if c.user_id != me {
        return Err(CommentError::NotAuthor);
    }
    sqlx::query!(
        "UPDATE video_comments SET content = $2, is_edited = (is_edited OR content <> $2) WHERE id = $1",
        c.id,
        content.as_str()
    )
    .execute(&mut *tx)
    .await?;
    Ok(load(tx, v.id, c.id, me).await?.into_comment())
}

/// Deletes a comment (its author, the video's owner, or staff). A comment with replies
/// stays as a deleted placeholder so the thread keeps its shape; a placeholder whose
/// last reply goes, goes too.
pub async fn delete(
    tx: &mut PgConnection,
    v: &VideoRow,
    me: &Actor,
    id: Uuid,
) -> CommentResult<()> {
    let c = load(tx, v.id, id, me.id).await?;
    if c.user_id != me.id && v.owner_id != me.id && !me.is_staff() {
        return Err(CommentError::CannotDelete);
    }
    let mut top_removed = 0;
    if c.reply_count > 0 {
        sqlx::query!(
            "UPDATE video_comments SET is_deleted = true, content = '' WHERE id = $1",
            c.id
        )
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query!("DELETE FROM video_comments WHERE id = $1", c.id)
            .execute(&mut *tx)
            .await?;
        match c.parent_id {
            None => top_removed = 1,
            Some(p) => {
                let parent = sqlx::query!(
                    "UPDATE video_comments SET reply_count = reply_count - 1 WHERE id = $1
                     RETURNING reply_count, is_deleted",
                    p
                )
                .fetch_one(&mut *tx)
                .await?;
                if parent.is_deleted && parent.reply_count == 0 {
                    sqlx::query!("DELETE FROM video_comments WHERE id = $1", p)
                        .execute(&mut *tx)
                        .await?;
                    top_removed = 1;
                }
            }
        }
    }
    sqlx::query!(
        "UPDATE videos SET comment_count = GREATEST(comment_count - 1, 0),
                top_comment_count = GREATEST(top_comment_count - $2, 0) WHERE id = $1",
        v.id,
        top_removed
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Likes a comment, or withdraws the like: whether `me` now likes it, and its count.
pub async fn toggle_like(
    tx: &mut PgConnection,
    v: &VideoRow,
    me: Uuid,
    id: Uuid,
) -> CommentResult<(bool, i32)> {
    let c = load(tx, v.id, id, me).await?;
    let inserted = sqlx::query!(
        "INSERT INTO comment_likes (comment_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        c.id,
        me
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let (liked, delta) = if inserted == 1 {
        (true, 1)
    } else {
        // Counted by the row it removed: of two unlikes at once, one finds it gone and
        // moves the count by nothing (the count never drifts or goes negative).
        let removed = sqlx::query!(
            "DELETE FROM comment_likes WHERE comment_id = $1 AND user_id = $2",
            c.id,
            me
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        (false, -i32::from(removed == 1))
    };
    let likes_count = sqlx::query_scalar!(
        "UPDATE video_comments SET likes_count = likes_count + $2 WHERE id = $1 RETURNING likes_count",
        c.id,
        delta
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((liked, likes_count))
}

/// The replies of top-level comment `parent` (oldest first), one page, and how many
/// there are; every `is_liked` false (see [`liked_among`]).
pub async fn replies(
    conn: &mut PgConnection,
    video: Uuid,
    parent: Uuid,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(i64, Vec<Comment>)> {
    let me_id: Option<Uuid> = None;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM video_comments WHERE parent_id = $1 AND video_id = $2"#,
        parent,
        video
    )
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT c.id, c.video_id, c.user_id, u.username, u.display_name, u.avatar_path, c.parent_id, c.content,
                  c.is_edited, c.is_deleted, c.likes_count, c.reply_count,
                  EXISTS(SELECT 1 FROM comment_likes l WHERE l.comment_id = c.id AND l.user_id = $3) AS "is_liked!",
                  c.created_at, c.updated_at
           FROM video_comments c JOIN users u ON u.id = c.user_id
           WHERE c.parent_id = $1 AND c.video_id = $2
           ORDER BY c.created_at, c.id LIMIT $4 OFFSET $5"#,
        parent,
        video,
        me_id,
        limit,
        offset
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok((count, rows.into_iter().map(Row::into_comment).collect()))
}

/// One page of `v`'s top-level comments in `order`, each with its first
/// [`EMBEDDED_REPLIES`] replies, and how many top-level comments there are; every
/// `is_liked` false (see [`liked_among`]).
pub async fn top_level(
    conn: &mut PgConnection,
    v: &VideoRow,
    order: CommentOrder,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(i64, Vec<Comment>)> {
    let me_id: Option<Uuid> = None;
    // The page and the first replies of each of its comments in one statement, one
    // statement per ordering: a fixed ORDER BY keeps PostgreSQL's cached generic plan
    // usable, where an ordering chosen by a parameter is re-planned on every call. The
    // count is kept on the video.
    macro_rules! page_with_replies {
        ($order:literal) => {
            sqlx::query_as!(
                Row,
                "WITH page AS (
                     SELECT c.id FROM video_comments c
                     WHERE c.video_id = $1 AND c.parent_id IS NULL
                     ORDER BY "
                    + $order
                    + " LIMIT $3 OFFSET $4
                 ), picked AS (
                     SELECT id FROM page
                     UNION ALL
                     SELECT r.id FROM page p CROSS JOIN LATERAL (
                         SELECT id FROM video_comments r WHERE r.parent_id = p.id
                         ORDER BY r.created_at, r.id LIMIT $5
                     ) r
                 )
                 SELECT c.id, c.video_id, c.user_id, u.username, u.display_name, u.avatar_path, c.parent_id,
                        c.content, c.is_edited, c.is_deleted, c.likes_count, c.reply_count,
                        EXISTS(SELECT 1 FROM comment_likes l
                               WHERE l.comment_id = c.id AND l.user_id = $2) AS \"is_liked!\",
                        c.created_at, c.updated_at
                 FROM picked JOIN video_comments c ON c.id = picked.id
                 JOIN users u ON u.id = c.user_id",
                v.id,
                me_id,
                limit,
                offset,
                EMBEDDED_REPLIES
            )
            .fetch_all(&mut *conn)
            .await?
        };
    }
    let rows = match order {
        CommentOrder::Top => page_with_replies!("c.likes_count DESC, c.created_at DESC, c.id"),
        CommentOrder::Oldest => page_with_replies!("c.created_at, c.id"),
        CommentOrder::Newest => page_with_replies!("c.created_at DESC, c.id"),
    };
    let mut results: Vec<Comment> = Vec::new();
    let mut replies: HashMap<Uuid, Vec<Comment>> = HashMap::new();
    for r in rows {
        let c = r.into_comment();
        match c.parent {
            Some(p) => replies.entry(p).or_default().push(c),
            None => results.push(c),
        }
    }
    // Row order is not kept across the statement's union: order here.
    match order {
        CommentOrder::Top => results.sort_by(|a, b| {
            b.likes_count
                .cmp(&a.likes_count)
                .then(b.created_at.cmp(&a.created_at))
                .then(a.id.cmp(&b.id))
        }),
        CommentOrder::Oldest => {
            results.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        }
        CommentOrder::Newest => {
            results.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        }
    }
    for c in &mut results {
        let mut rs = replies.remove(&c.id).unwrap_or_default();
        rs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        c.replies = Some(rs);
    }
    Ok((i64::from(v.top_comment_count), results))
}

/// Which of `ids` `user` liked.
pub async fn liked_among(
    conn: &mut PgConnection,
    user: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT comment_id FROM comment_likes WHERE user_id = $1 AND comment_id = ANY($2)",
        user,
        ids
    )
    .fetch_all(&mut *conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_found_once_each() {
        assert_eq!(
            mentions("hi @Alice and @bob_2, also @alice."),
            vec!["alice", "bob_2"]
        );
        assert!(mentions("mail me at x@example.com").is_empty());
        assert!(mentions("@ab too short").is_empty());
    }

    #[test]
    fn comment_text_is_trimmed_and_bounded() {
        assert_eq!(CommentText::parse("  hi ").unwrap().as_str(), "hi");
        assert!(matches!(
            CommentText::parse(" \n "),
            Err(CommentError::Content(_))
        ));
        assert!(CommentText::parse(&"é".repeat(MAX_LEN)).is_ok());
        assert!(matches!(
            CommentText::parse(&"é".repeat(MAX_LEN + 1)),
            Err(CommentError::Content(_))
        ));
    }
}
