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

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use moka::{notification::RemovalCause, sync::Cache};
use redis::AsyncCommands;
use uuid::Uuid;

use crate::state::AppState;

/// Longest a page is served without being rendered again.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// Bytes of rendered pages kept per process (keys and pages weighed by their size);
/// past it the least used go first.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
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

    /// What the page weighs in the cache: its bytes and slots.
    fn weight(&self) -> usize {
        self.body.len() + self.slots.len() * std::mem::size_of::<(Uuid, usize)>() + 64
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

/// The cache of one process: bounded by bytes ([`MAX_BYTES`]), entries live at most
/// [`MAX_AGE`].
pub struct PageCache {
    pages: Cache<String, Arc<Page>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
}

/// What the cache did, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Pages pushed out for room (not those that aged out or were replaced).
    pub evictions: u64,
    pub bytes: u64,
    pub entries: u64,
}

impl Default for PageCache {
    fn default() -> Self {
        Self::new(MAX_BYTES)
    }
}

impl PageCache {
    pub fn new(max_bytes: u64) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let counted = evictions.clone();
        let pages = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, page: &Arc<Page>| {
                u32::try_from(key.len() + page.weight()).unwrap_or(u32::MAX)
            })
            .time_to_live(MAX_AGE)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    counted.fetch_add(1, Relaxed);
                }
            })
            .build();
        Self {
            pages,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions,
        }
    }

    /// The page under `key` if it was rendered at `version` and is young enough.
    pub fn get(&self, key: &str, version: i64) -> Option<Arc<Page>> {
        let page = self
            .pages
            .get(key)
            .filter(|p| p.version == version && p.at.elapsed() < MAX_AGE);
        let counter = if page.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Relaxed);
        page
    }

    pub fn put(&self, key: String, page: Page) -> Arc<Page> {
        let page = Arc::new(page);
        self.pages.insert(key, page.clone());
        page
    }

    pub fn stats(&self) -> CacheStats {
        self.pages.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            bytes: self.pages.weighted_size(),
            entries: self.pages.entry_count(),
        }
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
    fn the_cache_is_bounded_by_bytes_and_counts_what_it_does() {
        let cache = PageCache::new(64 * 1024);
        for i in 0..100 {
            let id = Uuid::now_v7();
            let mut body =
                serde_json::to_vec(&serde_json::json!({"id": id, "is_liked": false})).unwrap();
            body.resize(body.len() + 4000, b' ');
            cache.put(format!("k{i}"), Page::new(1, body, &[id]).unwrap());
        }
        let s = cache.stats();
        assert!(s.bytes <= 64 * 1024, "{s:?}");
        assert!(s.entries < 100 && s.evictions > 0, "{s:?}");
        assert!(cache.get("nothing", 1).is_none());
        assert_eq!(cache.stats().misses, 1);
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
