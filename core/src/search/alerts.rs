//! Saved-search alerts: once a day at most, a saved search with `alert` on is run again
//! for videos created since its last look, with its owner's eyes; when any match, its
//! owner hears of it (`search.alert`, through the notification pipeline). The look is
//! claimed and the event recorded in one transaction, so a repeated run sends nothing
//! twice.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{SearchIndex, SearchParams, SearchSort, Viewer, pg};

/// At most one alert per saved search in this long.
pub const EVERY: chrono::Duration = chrono::Duration::days(1);

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Alerted {
    /// Saved searches looked at.
    pub looked: usize,
    /// Of those, the ones that found new videos (an event each).
    pub alerted: Vec<Uuid>,
    /// Outbox rows of the events, to relay after commit.
    pub outbox: Vec<i64>,
}

#[derive(sqlx::FromRow)]
struct Due {
    id: Uuid,
    user_id: Uuid,
    name: String,
    query: String,
    params: serde_json::Value,
    alerted_until: DateTime<Utc>,
    staff: bool,
}

/// Looks at up to `batch` saved searches whose last look is at least [`EVERY`] old.
pub async fn run_due(db: &PgPool, now: DateTime<Utc>, batch: i64) -> sqlx::Result<Alerted> {
    let due: Vec<Due> = sqlx::query_as(
        "SELECT s.id, s.user_id, s.name, s.query, s.params, s.alerted_until,
                u.role IN ('moderator', 'admin') AS staff
         FROM saved_searches s JOIN users u ON u.id = s.user_id
         WHERE s.alert AND s.alerted_until <= $1 AND u.status = 'active'
         ORDER BY s.alerted_until LIMIT $2",
    )
    .bind(now - EVERY)
    .bind(batch)
    .fetch_all(db)
    .await?;
    let mut out = Alerted::default();
    for d in due {
        out.looked += 1;
        // Saved without the words (they have their column): put them back.
        let mut stored = d.params.clone();
        if let Some(o) = stored.as_object_mut() {
            o.insert("q".into(), d.query.clone().into());
        }
        let request = serde_json::from_value::<SearchParams>(stored)
            .ok()
            .and_then(|p| p.request(5, 0).ok());
        let found = match request {
            Some(mut req) => {
                // New videos only, newest first.
                req.indexes = [SearchIndex::Videos].into();
                req.sort = SearchSort::Newest;
                req.facets = false;
                req.created_after = Some(d.alerted_until);
                let viewer = Viewer::load(db, d.user_id, d.staff).await?;
                Some(pg::search(db, &req, &viewer, now).await?)
            }
            // Saved before a rule changed: nothing to run; the look still moves on.
            None => None,
        };
        let mut tx = db.begin().await?;
        let claimed = sqlx::query(
            "UPDATE saved_searches SET alerted_until = $3 WHERE id = $1 AND alerted_until = $2",
        )
        .bind(d.id)
        .bind(d.alerted_until)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            // Another run looked meanwhile.
            continue;
        }
        if let Some(found) = found.filter(|f| f.total > 0) {
            let titles: Vec<&str> = found.hits.iter().map(|h| h.title.as_str()).collect();
            let ids: Vec<Uuid> = found.hits.iter().map(|h| h.id).collect();
            out.outbox.push(
                crate::events::emit(
                    &mut tx,
                    "search.alert",
                    None,
                    Some(d.user_id),
                    serde_json::json!({
                        "saved_search_id": d.id,
                        "name": d.name,
                        "query": d.query,
                        "count": found.total,
                        "titles": titles,
                        "video_ids": ids,
                    }),
                )
                .await?,
            );
            out.alerted.push(d.id);
        }
        tx.commit().await?;
    }
    Ok(out)
}
