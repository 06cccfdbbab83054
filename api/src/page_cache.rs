//! A per-process cache of rendered comment pages. A page is the same for every caller
//! but for `is_liked`, so it is kept rendered with every `is_liked` false, along with
//! where each of those `false`s sits; serving it for a caller copies the bytes and
//! overwrites `false` with `true ` (valid JSON: the space is whitespace) for the
//! comments that caller liked.
//!
//! Freshness: each video has a version in Redis (`{prefix}:cv:{video}`), bumped after
//! every comment write and comment like. A request reads the version first, then the
//! cache; a page rendered from the database is stored under the version read before the
//! database was, so a write that lands meanwhile makes the next request render again.
//! Author names embedded in a page can lag a rename by at most [`MAX_AGE`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use redis::AsyncCommands;
use uuid::Uuid;

use crate::state::AppState;

/// Longest a page is served without being rendered again.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// Pages kept per process; past it the cache starts over.
const MAX_ENTRIES: usize = 2048;
const FALSE: &[u8] = br#""is_liked":false"#;

/// A rendered page.
pub struct Page {
    version: i64,
    at: Instant,
    body: Bytes,
    /// (comment id, offset of its `false`), in document order.
    slots: Vec<(Uuid, usize)>,
}

impl Page {
    /// Renders `body` (every `is_liked` false) with `ids` the comments in the order
    /// they appear in it. None if the two disagree (the page is then not cached).
    pub fn new(version: i64, body: Vec<u8>, ids: &[Uuid]) -> Option<Self> {
        let mut slots = Vec::with_capacity(ids.len());
        let mut from = 0;
        for id in ids {
            let at = from + find(&body[from..], FALSE)?;
            let value = at + FALSE.len() - b"false".len();
            slots.push((*id, value));
            from = at + FALSE.len();
        }
        if find(&body[from..], FALSE).is_some() {
            return None;
        }
        Some(Self {
            version,
            at: Instant::now(),
            body: Bytes::from(body),
            slots,
        })
    }

    /// The ids of the comments on the page.
    pub fn ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.slots.iter().map(|(id, _)| *id)
    }

    /// The body for a caller who liked `liked`.
    pub fn render(&self, liked: &[Uuid]) -> Bytes {
        if liked.is_empty() {
            return self.body.clone();
        }
        let mut out = self.body.to_vec();
        for (id, at) in &self.slots {
            if liked.contains(id) {
                out[*at..*at + 5].copy_from_slice(b"true ");
            }
        }
        Bytes::from(out)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The cache of one process.
#[derive(Default)]
pub struct PageCache {
    pages: Mutex<HashMap<String, Arc<Page>>>,
}

impl PageCache {
    /// The page under `key` if it was rendered at `version` and is young enough.
    pub fn get(&self, key: &str, version: i64) -> Option<Arc<Page>> {
        let pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages
            .get(key)
            .filter(|p| p.version == version && p.at.elapsed() < MAX_AGE)
            .cloned()
    }

    pub fn put(&self, key: String, page: Page) -> Arc<Page> {
        let page = Arc::new(page);
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if pages.len() >= MAX_ENTRIES {
            pages.clear();
        }
        pages.insert(key, page.clone());
        page
    }
}

fn version_key(state: &AppState, video: Uuid) -> String {
    format!("{}:cv:{video}", state.config.redis_prefix)
}

/// The comment version of a video (0 before any write).
pub async fn version(state: &AppState, video: Uuid) -> Result<i64, redis::RedisError> {
    let mut redis = state.redis.clone();
    let v: Option<i64> = redis.get(version_key(state, video)).await?;
    Ok(v.unwrap_or(0))
}

/// Marks a video's comment pages stale (after the write has committed). A failure is
/// logged: pages then refresh within [`MAX_AGE`].
pub async fn invalidate(state: &AppState, video: Uuid) {
    let mut redis = state.redis.clone();
    if let Err(e) = redis.incr::<_, _, i64>(version_key(state, video), 1).await {
        tracing::warn!(error = %e, %video, "comment page version not bumped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_likes_are_patched_in_place_and_stay_valid_json() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let body = serde_json::json!({"results": [
            {"id": a, "content": "say \"is_liked\":false", "is_liked": false,
             "replies": [{"id": b, "is_liked": false}]}
        ]});
        let page = Page::new(3, serde_json::to_vec(&body).unwrap(), &[a, b]).unwrap();
        let out: serde_json::Value = serde_json::from_slice(&page.render(&[b])).unwrap();
        assert_eq!(out["results"][0]["is_liked"], false);
        assert_eq!(out["results"][0]["replies"][0]["is_liked"], true);
        assert_eq!(out["results"][0]["content"], "say \"is_liked\":false");
        let all: serde_json::Value = serde_json::from_slice(&page.render(&[a, b])).unwrap();
        assert_eq!(all["results"][0]["is_liked"], true);
        // Ids that do not match the document are refused.
        assert!(Page::new(3, serde_json::to_vec(&body).unwrap(), &[a]).is_none());
    }

    #[test]
    fn stale_versions_miss() {
        let cache = PageCache::default();
        let id = Uuid::now_v7();
        let body = serde_json::to_vec(&serde_json::json!({"id": id, "is_liked": false})).unwrap();
        cache.put("k".into(), Page::new(1, body, &[id]).unwrap());
        assert!(cache.get("k", 1).is_some());
        assert!(cache.get("k", 2).is_none());
        assert!(cache.get("other", 1).is_none());
    }
}
