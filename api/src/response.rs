//! The success envelope and pagination (docs/api-conventions.md, Success and Lists).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;

/// `{"success": true, "message"?, "data"}` with a status (200 unless told).
#[derive(Debug)]
pub struct ApiResponse<T> {
    status: StatusCode,
    message: Option<String>,
    data: T,
}

#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub data: T,
}

impl<T: Serialize> ApiResponse<T> {
    pub fn ok(data: T) -> Self {
        Self {
            status: StatusCode::OK,
            message: None,
            data,
        }
    }

    /// 201 for a creation.
    pub fn created(data: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            ..Self::ok(data)
        }
    }

    /// 202 for work accepted and queued.
    pub fn accepted(data: T) -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            ..Self::ok(data)
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        let body = Envelope {
            success: true,
            message: self.message,
            data: self.data,
        };
        (self.status, Json(body)).into_response()
    }
}

/// 204 when a DELETE removed something, 404 when there was nothing to remove.
pub fn deleted(rows_affected: u64) -> Result<StatusCode, AppError> {
    if rows_affected == 0 {
        Err(AppError::not_found())
    } else {
        Ok(StatusCode::NO_CONTENT)
    }
}

/// Most items a page may hold.
pub const MAX_PAGE_SIZE: u32 = 100;
/// Items per page when the client does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// `?page=&page_size=` (page-number pagination).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// A checked page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

impl PageParams {
    pub fn validate(&self) -> Result<PageRequest, AppError> {
        let page = self.page.unwrap_or(1);
        if page == 0 {
            return Err(AppError::field("page", "Pages are numbered from 1."));
        }
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(AppError::field(
                "page_size",
                format!("Must be between 1 and {MAX_PAGE_SIZE}."),
            ));
        }
        Ok(PageRequest { page, page_size })
    }
}

impl PageRequest {
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }
}

/// `data` of a page-number list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paginated<T> {
    pub results: Vec<T>,
    /// Items in all pages.
    pub count: i64,
    pub page: u32,
    pub page_size: u32,
    pub total_pages: i64,
    /// Absolute URL of the next page, or null.
    pub next: Option<String>,
    /// Absolute URL of the previous page, or null.
    pub previous: Option<String>,
}

impl<T> Paginated<T> {
    /// `url` is the absolute URL of the request (public base + path + query); `next`
    /// and `previous` are that URL with `page` replaced.
    pub fn new(results: Vec<T>, count: i64, req: PageRequest, url: &url::Url) -> Self {
        let size = i64::from(req.page_size);
        let total_pages = if count == 0 {
            0
        } else {
            (count + size - 1) / size
        };
        let link = |page: u32| {
            let mut u = url.clone();
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "page")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            {
                let mut q = u.query_pairs_mut();
                q.clear();
                q.extend_pairs(pairs);
                q.append_pair("page", &page.to_string());
            }
            u.to_string()
        };
        let next = (i64::from(req.page) < total_pages).then(|| link(req.page + 1));
        let previous = (req.page > 1 && count > 0).then(|| link(req.page - 1));
        Self {
            results,
            count,
            page: req.page,
            page_size: req.page_size,
            total_pages,
            next,
            previous,
        }
    }
}

/// The absolute URL of the request as clients address it (`PUBLIC_URL` + path + query),
/// for `next` / `previous` links.
pub fn request_url(state: &crate::state::AppState, uri: &axum::http::Uri) -> url::Url {
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    url::Url::parse(&format!("{}{pq}", state.config.public_url))
        .or_else(|_| url::Url::parse(&state.config.public_url))
        .unwrap_or_else(|_| url::Url::parse("http://localhost/").expect("constant URL"))
}

/// `?cursor=&page_size=` (cursor pagination for unbounded streams).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorParams {
    /// Opaque cursor from a previous page's `next` or `previous`.
    pub cursor: Option<String>,
    /// Items per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

impl CursorParams {
    /// Decodes the cursor into the position type `P` (400 naming `cursor` if it is not
    /// one this server issued) and checks the page size.
    pub fn validate<P: DeserializeOwned>(&self) -> Result<(Option<P>, u32), AppError> {
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(AppError::field(
                "page_size",
                format!("Must be between 1 and {MAX_PAGE_SIZE}."),
            ));
        }
        // `?cursor=` (empty) is the first page, as no cursor is.
        let pos = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                Some(decode_cursor(c).ok_or_else(|| AppError::field("cursor", "Invalid cursor."))?)
            }
        };
        Ok((pos, page_size))
    }
}

/// Encodes a position as an opaque cursor.
pub fn encode_cursor<P: Serialize>(pos: &P) -> String {
    // Serialising a plain position struct cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(pos).unwrap_or_default())
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor<P: DeserializeOwned>(cursor: &str) -> Option<P> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `data` of a cursor-paginated list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorPage<T> {
    pub results: Vec<T>,
    /// Cursor of the following (older) items, or null at the end.
    pub next: Option<String>,
    /// Cursor of the preceding (newer) items, or null at the start.
    pub previous: Option<String>,
}

/// Parses `?ordering=` against the allowed field names: `-field` is descending.
/// Unknown fields are a 400 naming `ordering`.
pub fn parse_ordering<'a>(
    value: Option<&str>,
    allowed: &[&'a str],
    default: (&'a str, bool),
) -> Result<(&'a str, bool), AppError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    let (desc, name) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    allowed
        .iter()
        .find(|a| **a == name)
        .map(|a| (*a, desc))
        .ok_or_else(|| {
            AppError::field(
                "ordering",
                format!(
                    "Unknown ordering `{v}`. Allowed: {} (prefix with `-` for descending).",
                    allowed.join(", ")
                ),
            )
        })
}

/// A 304 for a conditional GET whose `If-None-Match` names `etag` (or `*`), with the
/// validator and caching headers the full answer would carry; `None` to send it.
pub fn not_modified(
    headers: &axum::http::HeaderMap,
    etag: &str,
    cache_control: &str,
) -> Option<axum::response::Response> {
    use axum::{
        http::{StatusCode, header},
        response::IntoResponse,
    };
    let named = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    named.then(|| {
        (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag.to_owned()),
                (header::CACHE_CONTROL, cache_control.to_owned()),
            ],
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(page: u32, size: u32) -> PageRequest {
        PageRequest {
            page,
            page_size: size,
        }
    }

    #[test]
    fn page_links_keep_other_query_parameters() {
        let url = url::Url::parse("http://h/api/videos/?search=cat&page=2&page_size=10").unwrap();
        let p = Paginated::new(vec![1, 2], 35, req(2, 10), &url);
        assert_eq!(p.total_pages, 4);
        assert_eq!(
            p.next.as_deref(),
            Some("http://h/api/videos/?search=cat&page_size=10&page=3")
        );
        assert_eq!(
            p.previous.as_deref(),
            Some("http://h/api/videos/?search=cat&page_size=10&page=1")
        );
    }

    #[test]
    fn last_and_empty_pages_have_no_next() {
        let url = url::Url::parse("http://h/x/").unwrap();
        let p = Paginated::new(vec![1], 21, req(2, 20), &url);
        assert!(p.next.is_none());
        assert!(p.previous.is_some());
        let p = Paginated::<u8>::new(vec![], 0, req(1, 20), &url);
        assert_eq!(p.total_pages, 0);
        assert!(p.next.is_none() && p.previous.is_none());
    }

    #[test]
    fn page_params_are_checked() {
        assert!(
            PageParams {
                page: Some(0),
                page_size: None
            }
            .validate()
            .is_err()
        );
        assert!(
            PageParams {
                page: None,
                page_size: Some(101)
            }
            .validate()
            .is_err()
        );
        let r = PageParams {
            page: Some(3),
            page_size: Some(5),
        }
        .validate()
        .unwrap();
        assert_eq!((r.offset(), r.limit()), (10, 5));
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let c = encode_cursor(&(42_i64, "x".to_owned()));
        let p = CursorParams {
            cursor: Some(c),
            page_size: None,
        };
        let (pos, size) = p.validate::<(i64, String)>().unwrap();
        assert_eq!(pos, Some((42, "x".to_owned())));
        assert_eq!(size, 20);
        let bad = CursorParams {
            cursor: Some("%%%".into()),
            page_size: None,
        };
        match bad.validate::<(i64, String)>() {
            Err(AppError::Validation(e)) => assert!(e.contains_key("cursor")),
            other => panic!("expected a cursor error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_ordering_is_an_error() {
        let allowed = ["created_at", "title"];
        assert_eq!(
            parse_ordering(Some("-title"), &allowed, ("created_at", true)).unwrap(),
            ("title", true)
        );
        assert_eq!(
            parse_ordering(None, &allowed, ("created_at", true)).unwrap(),
            ("created_at", true)
        );
        assert!(parse_ordering(Some("password"), &allowed, ("created_at", true)).is_err());
    }
}
