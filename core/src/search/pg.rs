//! The PostgreSQL backend: `search_documents` with a weighted `tsvector` (the title in
//! the `simple` configuration and in the owner's language, tags, category and owner,
//! then the description), unaccented, and a trigram-indexed normal form of title, owner
//! and tags for typos and prefixes. Every query is one statement.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    Facets, Hit, SearchIndex, SearchPage, SearchRequest, SearchSort, Suggestion, Viewer, docs,
};

/// Writes `index`'s documents for `ids` (all when None) in the caller's transaction;
/// ids whose object is gone or hidden leave the index. Returns (upserted, deleted).
pub async fn apply(
    conn: &mut PgConnection,
    index: SearchIndex,
    ids: Option<&[Uuid]>,
) -> sqlx::Result<(u64, u64)> {
    let deleted = match ids {
        Some(ids) => sqlx::query(&format!(
            "DELETE FROM search_documents d WHERE d.index_name = $2 AND d.id = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM ({}) s WHERE s.id = d.id)",
            docs::source(index, true)
        ))
        .bind(ids)
        .bind(index)
        .execute(&mut *conn)
        .await?
        .rows_affected(),
        None => sqlx::query("DELETE FROM search_documents WHERE index_name = $1")
            .bind(index)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    };
    let insert = format!(
        "INSERT INTO search_documents AS d (index_name, {cols}, norm, tsv, indexed_at)
         SELECT {index_param}, {cols},
                lower(unaccent(s.title || ' ' || s.owner_name || ' ' || array_to_string(s.tags, ' '))),
                setweight(to_tsvector('simple', unaccent(s.title)), 'A')
                || setweight(to_tsvector(search_config(s.locale), unaccent(s.title)), 'A')
                || setweight(to_tsvector('simple', unaccent(
                       array_to_string(s.tags, ' ') || ' ' || s.category || ' ' || s.owner_name)), 'B')
                || setweight(to_tsvector(search_config(s.locale), unaccent(s.body)), 'C'),
                now()
         FROM ({source}) s
         ON CONFLICT (index_name, id) DO UPDATE SET
            title = EXCLUDED.title, body = EXCLUDED.body, tags = EXCLUDED.tags,
            category = EXCLUDED.category, owner_id = EXCLUDED.owner_id,
            owner_name = EXCLUDED.owner_name, visibility = EXCLUDED.visibility,
            group_id = EXCLUDED.group_id, status = EXCLUDED.status,
            duration_seconds = EXCLUDED.duration_seconds, starts_at = EXCLUDED.starts_at,
            ends_at = EXCLUDED.ends_at, popularity = EXCLUDED.popularity,
            created_at = EXCLUDED.created_at, fields = EXCLUDED.fields, norm = EXCLUDED.norm,
            tsv = EXCLUDED.tsv, indexed_at = EXCLUDED.indexed_at",
        cols = docs::COLUMNS
            .split(", ")
            .filter(|c| *c != "locale")
            .collect::<Vec<_>>()
            .join(", "),
        index_param = if ids.is_some() { "$2" } else { "$1" },
        source = docs::source(index, ids.is_some()),
    );
    let upserted = match ids {
        Some(ids) => sqlx::query(&insert).bind(ids).bind(index),
        None => sqlx::query(&insert).bind(index),
    }
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((upserted, deleted))
}

/// Who may see a document `d`, with the viewer in `$4`..`$9` (see [`Viewer`]): staff
/// everything; others nothing of a user blocked either way, and then their own things,
/// public ones, friends-only ones of friends, their groups' (private groups, group
/// parties and events) and the events they attend or were invited to.
const VISIBLE: &str = "($5 OR (
    (d.owner_id IS NULL OR NOT (d.owner_id = ANY($8)))
    AND (d.owner_id = $4
         OR d.visibility = 'public'
         OR (d.visibility = 'friends' AND d.owner_id = ANY($6))
         OR d.group_id = ANY($7)
         OR (d.index_name = 'events' AND d.id = ANY($9)))))";

/// The query text, unaccented and lower-cased, and its parsed forms: `$1` the words,
/// `$2` the caller's locale (stemming).
const QUERY: &str = "q AS (
    SELECT websearch_to_tsquery('simple', unaccent($1))
           || websearch_to_tsquery(search_config($2), unaccent($1)) AS tsq,
           lower(unaccent($1)) AS nq)";

/// How close a word of the query must be to a word of a document to match when the
/// full-text match fails (pg_trgm's default, 0.6, misses a swapped pair of letters).
/// Queries under 5 letters match exactly only (as Meilisearch's typo rules), so "cafe"
/// does not find "carol".
const TYPO_THRESHOLD: &str = "SET LOCAL pg_trgm.word_similarity_threshold = 0.4";

/// The columns the match set keeps (what ordering and facets need; the page's documents
/// are read whole afterwards).
const COLUMNS: &str = "SELECT d.index_name, d.id, d.category, d.tags, d.duration_seconds, \
    d.created_at, d.popularity, d.starts_at, d.owner_id, d.visibility";

/// The request's filters over a document `d` (see [`search`] for the parameters).
const FILTERS: &str = "($11::text IS NULL OR d.category = $11)
              AND (cardinality($12::text[]) = 0 OR d.tags @> $12)
              AND ($13::float8 IS NULL OR (d.duration_seconds >= $13 AND d.duration_seconds < $14))
              AND ($15::timestamptz IS NULL OR (d.index_name = 'videos' AND d.created_at >= $15))
              AND ($16::text IS NULL OR (d.index_name = 'videos' AND d.owner_id = $4
                                         AND d.visibility = $16))
              AND ($17::uuid IS NULL OR d.owner_id = $17)
              AND (d.index_name <> 'events'
                   OR ($18::text IS NULL AND d.status <> 'cancelled') OR d.status = $18)
              AND ($19::uuid IS NULL OR d.group_id = $19)
              AND ($25::timestamptz IS NULL OR d.created_at > $25)
              AND (NOT $20 OR d.index_name <> 'events' OR d.ends_at > $10 OR d.owner_id = $4
                   OR d.id = ANY($9) OR d.group_id = ANY($7))";

/// Typo matches are looked for only when the words match fewer documents than this.
const FUZZY_BELOW: i64 = 50;

/// With relevance order, at most this many matches are scored and reachable through the
/// pages (the most popular first): a word in a sixth of a million documents must not
/// rank them all. `count` then says at most this; `totals` stay exact.
pub const RANK_WINDOW: i64 = 5000;

/// Runs `req` for `viewer`.
pub async fn search(
    db: &PgPool,
    req: &SearchRequest,
    viewer: &Viewer,
    now: DateTime<Utc>,
) -> sqlx::Result<SearchPage> {
    let f = &req.filters;
    let (dur_from, dur_to) = f.duration.map(|d| d.range()).unzip();
    let indexes: Vec<&str> = req.indexes.iter().map(|i| i.as_str()).collect();
    let score = "ts_rank_cd(d.tsv, q.tsq, 32) + 0.5 * word_similarity(q.nq, d.norm)";
    // Only the page's documents are read whole; with relevance the scored candidates are
    // the RANK_WINDOW most popular matches.
    let (shown, count) = match req.sort {
        SearchSort::Relevance => (
            format!(
                "cand AS (SELECT index_name, id FROM m
                          ORDER BY popularity DESC, created_at DESC, id LIMIT {RANK_WINDOW}),
                 shown AS (
                    SELECT d.*, {score} AS score,
                           row_number() OVER (ORDER BY {score} DESC, d.created_at DESC, d.id) AS pos
                    FROM cand JOIN search_documents d USING (index_name, id), q
                    ORDER BY pos LIMIT $22 OFFSET $23)"
            ),
            format!("least(count(*), {RANK_WINDOW})"),
        ),
        other => {
            let key = match other {
                SearchSort::Newest => "created_at DESC",
                SearchSort::Oldest => "created_at ASC",
                SearchSort::Popular => "popularity DESC, created_at DESC",
                _ => "starts_at ASC NULLS LAST, created_at DESC",
            };
            (
                format!(
                    "cand AS (SELECT index_name, id FROM m ORDER BY {key}, id LIMIT $22 OFFSET $23),
                     shown AS (
                        SELECT d.*, {score} AS score,
                               row_number() OVER (ORDER BY d.{key}, d.id) AS pos
                        FROM cand JOIN search_documents d USING (index_name, id), q)"
                ),
                "count(*)".to_owned(),
            )
        }
    };
    // Typo matches (trigram word similarity, words of 5 letters or more) only when the
    // words themselves find few: a common word is not rechecked against every document.
    let filters = format!("d.index_name = ANY($3) AND {VISIBLE} AND {FILTERS}");
    let matches = format!(
        "exact AS MATERIALIZED (
            {COLUMNS} FROM search_documents d, q
            WHERE d.tsv @@ q.tsq AND {filters}),
         m AS MATERIALIZED (
            SELECT * FROM exact
            UNION ALL
            {COLUMNS} FROM search_documents d, q
            WHERE length(q.nq) >= 5 AND q.nq <% d.norm AND NOT (d.tsv @@ q.tsq) AND {filters}
              AND (SELECT count(*) FROM exact) < {FUZZY_BELOW}),
"
    );
    let sql = format!(
        "WITH {QUERY},
         {matches}{shown}
         SELECT
           (SELECT {count} FROM m) AS total,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(t.index_name, t.n)), '[]')
              FROM (SELECT index_name, count(*) AS n FROM m GROUP BY 1 ORDER BY 1) t) AS totals,
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'type', s.index_name, 'id', s.id, 'title', s.title,
                'snippet', left(s.body, 300),
                'highlights', jsonb_build_object(
                    'title', ts_headline('simple', html_escape(s.title), q.tsq,
                        'StartSel=<mark>, StopSel=</mark>, HighlightAll=true'),
                    'snippet', ts_headline('simple', html_escape(left(s.body, 1000)), q.tsq,
                        'StartSel=<mark>, StopSel=</mark>, MaxWords=30, MinWords=10, MaxFragments=2')),
                'owner_id', s.owner_id, 'owner', s.owner_name, 'category', s.category,
                'tags', to_jsonb(s.tags), 'visibility', s.visibility,
                'duration_seconds', s.duration_seconds, 'starts_at', s.starts_at,
                'ends_at', s.ends_at, 'created_at', s.created_at, 'fields', s.fields,
                'score', s.score) ORDER BY s.pos), '[]')
              FROM shown s, q) AS hits,
           CASE WHEN $24 THEN jsonb_build_object(
             'category', (SELECT coalesce(jsonb_agg(jsonb_build_object('value', v, 'count', n)), '[]')
                 FROM (SELECT category AS v, count(*) AS n FROM m
                       WHERE index_name = 'videos' AND category <> ''
                       GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20) t),
             'tags', (SELECT coalesce(jsonb_agg(jsonb_build_object('value', v, 'count', n)), '[]')
                 FROM (SELECT tag AS v, count(*) AS n FROM m, unnest(m.tags) tag
                       WHERE index_name = 'videos' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20) t),
             'duration', (SELECT coalesce(jsonb_agg(jsonb_build_object('value', v, 'count', n) ORDER BY o), '[]')
                 FROM (SELECT CASE WHEN duration_seconds < 240 THEN 'short'
                                   WHEN duration_seconds < 1200 THEN 'medium' ELSE 'long' END AS v,
                              min(CASE WHEN duration_seconds < 240 THEN 1
                                       WHEN duration_seconds < 1200 THEN 2 ELSE 3 END) AS o,
                              count(*) AS n
                       FROM m WHERE index_name = 'videos' AND duration_seconds IS NOT NULL
                       GROUP BY 1) t),
             'uploaded', (SELECT coalesce(jsonb_agg(jsonb_build_object('value', b.v, 'count', b.n) ORDER BY b.o), '[]')
                 FROM (SELECT w.v, w.o, count(m.id) AS n
                       FROM (VALUES ('day', 1, $10 - interval '1 day'), ('week', 2, $10 - interval '7 days'),
                                    ('month', 3, $10 - interval '30 days'), ('year', 4, $10 - interval '365 days'))
                            AS w(v, o, since)
                       JOIN m ON m.index_name = 'videos' AND m.created_at >= w.since
                       GROUP BY w.v, w.o) b),
             'visibility', (SELECT coalesce(jsonb_agg(jsonb_build_object('value', v, 'count', n)), '[]')
                 FROM (SELECT visibility AS v, count(*) AS n FROM m
                       WHERE index_name = 'videos' AND $4::uuid IS NOT NULL AND owner_id = $4
                       GROUP BY 1 ORDER BY 1) t))
           END AS facets"
    );
    let (total, totals, hits, facets): (
        i64,
        serde_json::Value,
        serde_json::Value,
        Option<serde_json::Value>,
    ) = {
        let mut tx = db.begin().await?;
        // A word within one edit or so of the query still matches ("matirx").
        sqlx::query(TYPO_THRESHOLD).execute(&mut *tx).await?;
        let row = sqlx::query_as(&sql)
            .bind(&req.q)
            .bind(&viewer.locale)
            .bind(&indexes)
            .bind(viewer.id)
            .bind(viewer.staff)
            .bind(&viewer.friends)
            .bind(&viewer.groups)
            .bind(&viewer.blocked)
            .bind(&viewer.events)
            .bind(now)
            .bind(f.category.as_deref())
            .bind(&f.tags)
            .bind(dur_from)
            .bind(dur_to)
            .bind(f.uploaded.map(|u| u.since(now)))
            .bind(f.visibility.as_deref())
            .bind(f.owner)
            .bind(f.event_status.as_deref())
            .bind(f.group)
            .bind(f.upcoming_only)
            .bind(req.sort.as_str())
            .bind(req.limit)
            .bind(req.offset)
            .bind(req.facets && req.indexes.contains(&SearchIndex::Videos))
            .bind(req.created_after)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row
    };
    let totals: Vec<(SearchIndex, i64)> = decode("totals", totals)?;
    let hits: Vec<Hit> = decode("hits", hits)?;
    let facets: Option<Facets> = facets.map(|f| decode("facets", f)).transpose()?;
    Ok(SearchPage {
        hits,
        total,
        totals,
        facets,
    })
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> sqlx::Result<T> {
    serde_json::from_value(v).map_err(|e| sqlx::Error::Decode(format!("{what}: {e}").into()))
}

/// Up to `limit` completions of `prefix` the viewer may see: titles and usernames that
/// start with it (or have a word that does), public videos' tags, and queries at least
/// [`super::POPULAR_MIN_USERS`] people ran. Best first, each text once.
pub async fn suggest(
    db: &PgPool,
    prefix: &str,
    viewer: &Viewer,
    limit: usize,
) -> sqlx::Result<Vec<Suggestion>> {
    let sql = format!(
        "WITH n AS (SELECT lower(unaccent($1)) AS p),
         r AS (SELECT n.p, left(n.p, -1) || chr(ascii(right(n.p, 1)) + 1) AS p_end,
                      '% ' || replace(replace(replace(n.p, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' AS word
               FROM n)
         (SELECT d.title AS text, d.index_name AS source, 0 AS rank, d.popularity AS weight
          FROM search_documents d, r
          WHERE d.norm ~>=~ r.p AND d.norm ~<~ r.p_end AND {VISIBLE}
          ORDER BY d.popularity DESC, d.title LIMIT $2)
         UNION ALL
         (SELECT d.title, d.index_name, 1, d.popularity
          FROM search_documents d, r
          WHERE length(r.p) >= 2 AND d.norm LIKE r.word AND {VISIBLE}
          ORDER BY d.popularity DESC, d.title LIMIT $2)
         UNION ALL
         (SELECT tag, 'tag', 2, count(*)::float8
          FROM search_documents d, r, unnest(d.tags) tag
          WHERE d.index_name = 'videos' AND d.visibility = 'public' AND length(r.p) >= 2
            AND d.norm LIKE r.word AND lower(unaccent(tag)) LIKE replace(r.word, '% ', '') 
          GROUP BY tag ORDER BY 4 DESC, 1 LIMIT $2)
         UNION ALL
         (SELECT s.query, 'query', 3, s.searches::float8
          FROM search_queries s, r
          WHERE s.users >= $3 AND s.query ~>=~ r.p AND s.query ~<~ r.p_end
          ORDER BY s.searches DESC, s.query LIMIT $2)
         ORDER BY 3, 4 DESC"
    );
    // `$4`..`$9` are the viewer (see VISIBLE); `$10` is unused here but keeps the numbers.
    let rows: Vec<(String, String, i32, f64)> = sqlx::query_as(&sql)
        .bind(prefix)
        .bind(limit as i64)
        .bind(super::POPULAR_MIN_USERS)
        .bind(viewer.id)
        .bind(viewer.staff)
        .bind(&viewer.friends)
        .bind(&viewer.groups)
        .bind(&viewer.blocked)
        .bind(&viewer.events)
        .fetch_all(db)
        .await?;
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .filter(|(text, ..)| seen.insert(text.to_lowercase()))
        .take(limit)
        .map(|(text, source, ..)| Suggestion { text, source })
        .collect())
}

/// Whether the sort applies to what is searched (soonest: parties and events only).
pub fn sort_fits(sort: SearchSort, indexes: &std::collections::BTreeSet<SearchIndex>) -> bool {
    sort != SearchSort::Soonest
        || indexes
            .iter()
            .all(|i| matches!(i, SearchIndex::Parties | SearchIndex::Events))
}
