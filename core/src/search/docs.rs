//! The documents every backend indexes: one SELECT per index over the source tables,
//! giving the same columns in the same order. An object the SELECT does not return (gone,
//! hidden: a video not ready, a suspended owner, an ended party) leaves the index.

use super::SearchIndex;

/// The columns of a document, in the order every source gives them.
pub const COLUMNS: &str = "id, title, body, tags, category, owner_id, owner_name, visibility, \
     group_id, status, duration_seconds, starts_at, ends_at, popularity, created_at, fields, locale";

/// A document as read from its source (Meilisearch gets it as JSON; PostgreSQL folds the
/// same SELECT into `search_documents` without a round trip).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Document {
    pub id: uuid::Uuid,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub category: String,
    pub owner_id: Option<uuid::Uuid>,
    pub owner_name: String,
    pub visibility: String,
    pub group_id: Option<uuid::Uuid>,
    pub status: String,
    pub duration_seconds: Option<f64>,
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
    pub popularity: f64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub fields: serde_json::Value,
    pub locale: String,
}

/// The SELECT of `index`'s documents: those with the ids in `$1` when `by_ids`, else all.
pub fn source(index: SearchIndex, by_ids: bool) -> String {
    let (sql, key) = match index {
        SearchIndex::Videos => (
            "SELECT v.id, v.title, v.description AS body, v.tags, v.category,
                    v.owner_id, u.username AS owner_name, v.visibility, NULL::uuid AS group_id,
                    ''::text AS status, v.duration_seconds, NULL::timestamptz AS starts_at,
                    NULL::timestamptz AS ends_at,
                    (v.like_count + v.comment_count)::float8 AS popularity, v.created_at,
                    jsonb_build_object('like_count', v.like_count, 'comment_count', v.comment_count,
                        'has_thumbnail', v.thumbnail_key IS NOT NULL,
                        'allow_download', v.allow_download) AS fields,
                    u.locale
             FROM videos v JOIN users u ON u.id = v.owner_id
             WHERE v.status = 'ready' AND u.status = 'active'",
            "v.id",
        ),
        SearchIndex::Users => (
            "SELECT u.id, u.username AS title, u.display_name AS body, '{}'::text[] AS tags,
                    ''::text AS category, u.id AS owner_id, u.username AS owner_name,
                    'public'::text AS visibility, NULL::uuid AS group_id, ''::text AS status,
                    NULL::float8 AS duration_seconds, NULL::timestamptz AS starts_at,
                    NULL::timestamptz AS ends_at, 0::float8 AS popularity, u.created_at,
                    jsonb_build_object('display_name', u.display_name,
                        'has_avatar', u.avatar_path IS NOT NULL) AS fields,
                    u.locale
             FROM users u WHERE u.status = 'active'",
            "u.id",
        ),
        SearchIndex::Parties => (
            "SELECT p.id, p.title, p.description AS body, '{}'::text[] AS tags,
                    ''::text AS category, p.host_id AS owner_id, u.username AS owner_name,
                    p.visibility, p.group_id, ''::text AS status,
                    NULL::float8 AS duration_seconds, p.created_at AS starts_at,
                    NULL::timestamptz AS ends_at,
                    (SELECT count(*) FROM party_members m WHERE m.party_id = p.id)::float8
                        AS popularity,
                    p.created_at,
                    jsonb_build_object('video_id', p.video_id,
                        'has_external_url', p.external_url IS NOT NULL) AS fields,
                    u.locale
             FROM parties p JOIN users u ON u.id = p.host_id
             WHERE p.status = 'active' AND u.status = 'active'",
            "p.id",
        ),
        SearchIndex::Events => (
            "SELECT e.id, e.title, trim(e.description || ' ' || e.location) AS body,
                    '{}'::text[] AS tags, ''::text AS category, e.organizer_id AS owner_id,
                    u.username AS owner_name,
                    CASE WHEN e.is_public THEN 'public' ELSE 'private' END AS visibility,
                    e.group_id, e.status, NULL::float8 AS duration_seconds,
                    e.start_time AS starts_at, e.end_time AS ends_at,
                    (SELECT count(*) FROM event_attendees a
                     WHERE a.event_id = e.id AND a.status = 'going')::float8 AS popularity,
                    e.created_at,
                    jsonb_build_object('location', e.location, 'timezone', e.timezone,
                        'party_id', e.party_id) AS fields,
                    u.locale
             FROM events e JOIN users u ON u.id = e.organizer_id WHERE u.status = 'active'",
            "e.id",
        ),
        SearchIndex::Groups => (
            "SELECT g.id, g.name AS title, g.description AS body, '{}'::text[] AS tags,
                    g.category, g.admin_id AS owner_id, u.username AS owner_name,
                    CASE WHEN g.is_private THEN 'members' ELSE 'public' END AS visibility,
                    g.id AS group_id, ''::text AS status, NULL::float8 AS duration_seconds,
                    NULL::timestamptz AS starts_at, NULL::timestamptz AS ends_at,
                    g.member_count::float8 AS popularity, g.created_at,
                    jsonb_build_object('member_count', g.member_count) AS fields,
                    u.locale
             FROM social_groups g JOIN users u ON u.id = g.admin_id WHERE TRUE",
            "g.id",
        ),
    };
    // Every source ends in its WHERE clause.
    if by_ids {
        format!("{sql} AND {key} = ANY($1)")
    } else {
        sql.to_owned()
    }
}
