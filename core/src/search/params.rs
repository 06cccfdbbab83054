//! The parameters of a search as clients give them (the query string of
//! `GET /api/search/`, the `search` object of a saved search), checked into a
//! [`SearchRequest`] with the parameter at fault named.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{DurationBucket, Filters, SearchIndex, SearchRequest, SearchSort, UploadedWithin};

/// `GET /api/search/` parameters.
#[derive(Debug, Default, Clone, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The words: 1 to 200 characters besides spaces around. Quoted phrases, `or` and
    /// `-word` work as in a web search box.
    #[param(min_length = 1, max_length = 200, pattern = "\\S")]
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub q: String,
    /// Kinds to search, comma-separated: `videos`, `users`, `parties`, `events`,
    /// `groups` (default: all).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[param(rename = "type")]
    pub kinds: Option<String>,
    /// Videos and groups of this category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Videos with every one of these tags, comma-separated (at most 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// Videos of this length: `short` (< 4 min), `medium` (4–20 min), `long` (> 20 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub duration: Option<DurationBucket>,
    /// Videos uploaded within the last `day`, `week`, `month` or `year`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub uploaded: Option<UploadedWithin>,
    /// The caller's own videos of this visibility (`public`, `unlisted`, `friends`,
    /// `private`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// Things of this user (uploader, host, organizer, group admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Uuid>,
    /// Events of this status (`scheduled`, `live`, `ended`, `cancelled`). Without it,
    /// events that ended are left out unless they are the caller's, and cancelled ones
    /// always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Parties and events of this group (and the group itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Uuid>,
    /// `relevance` (default), `newest`, `oldest`, `popular`, or `soonest` (parties and
    /// events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(inline)]
    pub sort: Option<SearchSort>,
    /// Count facet values (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facets: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1)]
    #[schema(minimum = 1)]
    pub page: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100)]
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

const VIDEO_VISIBILITIES: [&str; 4] = ["public", "unlisted", "friends", "private"];
const EVENT_STATUSES: [&str; 4] = ["scheduled", "live", "ended", "cancelled"];

/// A parameter at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

impl SearchParams {
    /// The checked request for a page of `limit` from `offset` (`page` and `page_size`
    /// are the adapter's), or the parameter at fault.
    pub fn request(&self, limit: i64, offset: i64) -> Result<SearchRequest, FieldError> {
        let q = crate::trimmed_text(&self.q, 1, 200).map_err(|m| bad("q", m))?;
        let indexes: BTreeSet<SearchIndex> = match self.kinds.as_deref() {
            None => SearchIndex::ALL.iter().copied().collect(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(|k| {
                    k.parse().map_err(|_| {
                        bad(
                            "type",
                            format!("`{k}` is not one of videos, users, parties, events, groups."),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if indexes.is_empty() {
            return Err(bad("type", "Name at least one kind."));
        }
        let sort = self.sort.unwrap_or(SearchSort::Relevance);
        if !super::pg::sort_fits(sort, &indexes) {
            return Err(bad(
                "sort",
                "`soonest` orders parties and events only: add type=parties,events.",
            ));
        }
        let tags: Vec<String> = self
            .tags
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if tags.len() > 10 || tags.iter().any(|t| t.chars().count() > 50) {
            return Err(bad("tags", "At most 10 tags of at most 50 characters."));
        }
        let short =
            |field: &'static str, v: &Option<String>| -> Result<Option<String>, FieldError> {
                match v.as_deref().map(str::trim) {
                    None | Some("") => Ok(None),
                    Some(s) if s.chars().count() > 50 => Err(bad(field, "At most 50 characters.")),
                    Some(s) => Ok(Some(s.to_owned())),
                }
            };
        let visibility = short("visibility", &self.visibility)?;
        if let Some(v) = &visibility
            && !VIDEO_VISIBILITIES.contains(&v.as_str())
        {
            return Err(bad(
                "visibility",
                "One of public, unlisted, friends, private.",
            ));
        }
        let status = short("status", &self.status)?;
        if let Some(s) = &status
            && !EVENT_STATUSES.contains(&s.as_str())
        {
            return Err(bad("status", "One of scheduled, live, ended, cancelled."));
        }
        let req = SearchRequest {
            q,
            indexes,
            filters: Filters {
                category: short("category", &self.category)?,
                tags,
                duration: self.duration,
                uploaded: self.uploaded,
                visibility,
                owner: self.owner,
                upcoming_only: status.is_none(),
                event_status: status,
                group: self.group,
            },
            sort,
            limit,
            offset,
            facets: self.facets.unwrap_or(true),
            created_after: None,
        };
        Ok(req)
    }
}
