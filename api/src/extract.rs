//! Extractors whose rejections follow the error format and name the field at fault.

use axum::body::Bytes;
use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// JSON body. Errors: 415 when the content type is not JSON, 413 over the body limit,
/// 400 `invalid_json` for malformed JSON, 400 `validation_error` naming the field for a
/// missing field or a wrong type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Refused before the body is read.
        if !is_json(&req) {
            return Err(AppError::UnsupportedMediaType(
                "Expected `Content-Type: application/json`.".to_owned(),
            ));
        }
        JsonBody::from_request(req, state).await?.parse().map(Json)
    }
}

/// Whether the request says its body is JSON (`application/json`, `application/*+json`).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// A JSON body read (within the body limit) but not parsed yet: the handler checks
/// the caller's permission first and then calls [`JsonBody::parse`], so a caller who may
/// not act learns nothing of the body's schema (403 before 400). Errors as [`Json`].
#[derive(Debug)]
pub struct JsonBody {
    is_json: bool,
    bytes: Bytes,
}

impl JsonBody {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        if !self.is_json {
            return Err(AppError::UnsupportedMediaType(
                "Expected `Content-Type: application/json`.".to_owned(),
            ));
        }
        parse_json(&self.bytes)
    }

    /// [`JsonBody::parse`], or the default when the body is empty (an optional body).
    pub fn parse_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, AppError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(T::default());
        }
        self.parse()
    }
}

impl<S> FromRequest<S> for JsonBody
where
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json(&req);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        Ok(Self { is_json, bytes })
    }
}

fn bytes_rejection(r: BytesRejection) -> AppError {
    match r {
        BytesRejection::FailedToBufferBody(ref e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            AppError::PayloadTooLarge
        }
        other => AppError::BadRequest {
            code: "invalid_body",
            message: other.body_text(),
        },
    }
}

/// Parses JSON, naming the field path on type and missing-field errors. A number with
/// no fraction is an integer whatever its spelling (`646.0`, `6.46e2`), as JSON Schema
/// and JavaScript have it, so clients that print floats (Python's `json`) are understood.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| AppError::BadRequest {
            code: "invalid_json",
            message: format!("Malformed JSON: {e}"),
        })?;
    if let Some(field) = wp_shared::text::nul_in(&value) {
        return Err(AppError::field(field, wp_shared::text::NUL_MESSAGE));
    }
    integral_floats_as_integers(&mut value);
    // The syntax was checked above: what is left are data errors (a wrong type, a
    // missing or unknown field), named by their path.
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        // "missing field `x`": the path is the parent object.
        let (field, text) = match msg.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or_default();
                let full = if path == "." || path.is_empty() {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
                (full, "This field is required.".to_owned())
            }
            None => {
                let field = if path == "." || path.is_empty() {
                    "non_field_errors".to_owned()
                } else {
                    path
                };
                (field, msg)
            }
        };
        AppError::field(field, text)
    })
}

fn integral_floats_as_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                // Exact: |f| < 2^53, so the float holds the integer exactly.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *v = Value::from(i);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// A multipart form (`multipart/form-data` with a boundary). Errors in the envelope:
/// 415 naming the expected type when the request is not one, 400 `invalid_multipart`
/// when its boundary is missing (axum's own rejection is a plain-text body).
pub struct MultipartForm(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for MultipartForm {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"));
        if !is_form {
            return Err(AppError::UnsupportedMediaType(
                "Expected `Content-Type: multipart/form-data`.".to_owned(),
            ));
        }
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(MultipartForm)
            .map_err(|e| AppError::BadRequest {
                code: "invalid_multipart",
                message: e.body_text(),
            })
    }
}

/// A multipart read error: 413 past the body limit, else 400 `invalid_multipart`.
pub fn multipart_error(e: axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else {
        AppError::BadRequest {
            code: "invalid_multipart",
            message: e.body_text(),
        }
    }
}

/// Ids in the path (`Ids<Uuid>`, or a tuple of them), checked before any handler code
/// runs: a malformed id is a 404 in the error envelope, as an unknown one is (crates.io's
/// path extractors do the same), never a 400 or a 500.
#[derive(Debug, Clone, Copy)]
pub struct Ids<T>(pub T);

impl<T, S> FromRequestParts<S> for Ids<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(ids)| Ids(ids))
            .map_err(|_| AppError::not_found())
    }
}

/// Query string with the same field-naming errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query()).map(Query)
    }
}

/// A query string read as [`Query`] reads it, for a handler that checks permission
/// before it reads the parameters.
pub fn parse_query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, AppError> {
    wp_shared::query::parse(raw.unwrap_or_default())
        .map_err(|e| AppError::field(e.field, e.message))
}

/// Comma-separated values of `field`, each one of `T`'s; 400 naming the field.
pub fn listed<T: std::str::FromStr + Copy>(
    field: &'static str,
    raw: Option<&str>,
    all: &[T],
    name: fn(&T) -> &'static str,
) -> Result<Vec<T>, crate::error::AppError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                let names: Vec<&str> = all.iter().map(name).collect();
                crate::error::AppError::field(
                    field,
                    format!("One or more of: {}.", names.join(", ")),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::{
        Router,
        body::Body,
        extract::DefaultBodyLimit,
        http::{Request, StatusCode},
        response::IntoResponse,
        routing::{get, post},
    };
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::{Json, Query};

    #[derive(Debug, Deserialize)]
    struct Comment {
        #[expect(dead_code, reason = "only deserialised")]
        content: String,
        #[expect(dead_code, reason = "only deserialised")]
        meta: Meta,
    }

    #[derive(Debug, Deserialize)]
    struct Meta {
        #[expect(dead_code, reason = "only deserialised")]
        position: f64,
    }

    #[derive(Debug, Deserialize)]
    struct Paging {
        #[expect(dead_code, reason = "only deserialised")]
        page: Option<u32>,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/c",
                post(|Json(_c): Json<Comment>| async { "ok".into_response() }),
            )
            .route(
                "/q",
                get(|Query(_p): Query<Paging>| async { "ok".into_response() }),
            )
            .layer(DefaultBodyLimit::max(64))
    }

    async fn post_json(body: &str, content_type: Option<&str>) -> (StatusCode, Value) {
        let mut req = Request::post("/c");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = app()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn a_valid_body_passes() {
        let (s, _) = post_json(
            r#"{"content":"hi","meta":{"position":1.5}}"#,
            Some("application/json"),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }

    #[tokio::test]
    async fn malformed_json_is_400_invalid_json() {
        let (s, b) = post_json(r#"{"content": "#, Some("application/json")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(b["code"], "invalid_json");
        assert_eq!(b["success"], false);
    }

    #[tokio::test]
    async fn a_wrong_type_names_the_nested_field() {
        let (s, b) = post_json(
            r#"{"content":"hi","meta":{"position":"soon"}}"#,
            Some("application/json"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(b["code"], "validation_error");
        assert!(b["errors"]["meta.position"][0].is_string(), "{b}");
    }

    #[tokio::test]
    async fn a_missing_field_is_named() {
        let (s, b) = post_json(r#"{"meta":{"position":1}}"#, Some("application/json")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(b["errors"]["content"][0], "This field is required.", "{b}");
    }

    #[tokio::test]
    async fn the_wrong_media_type_is_415() {
        let (s, b) = post_json(r#"{"content":"hi"}"#, Some("text/plain")).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(b["code"], "unsupported_media_type");
        let (s, _) = post_json(r#"{"content":"hi"}"#, None).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let big = format!(
            r#"{{"content":"{}","meta":{{"position":1}}}}"#,
            "x".repeat(100)
        );
        let (s, b) = post_json(&big, Some("application/json")).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(b["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn a_bad_query_parameter_is_named() {
        let res = app()
            .oneshot(Request::get("/q?page=first").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let b: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(b["errors"]["page"][0].is_string(), "{b}");
    }

    #[test]
    fn integral_floats_read_as_integers_and_nul_is_named() {
        #[derive(Debug, Deserialize)]
        struct N {
            n: i32,
            x: f64,
        }
        let v: N = super::parse_json(br#"{"n": 646.0, "x": 2}"#).unwrap();
        assert_eq!((v.n, v.x), (646, 2.0));
        let v: N = super::parse_json(br#"{"n": 6.46e2, "x": 0.5}"#).unwrap();
        assert_eq!((v.n, v.x), (646, 0.5));
        match super::parse_json::<N>(br#"{"n": 1.5, "x": 1}"#) {
            Err(crate::error::AppError::Validation(e)) => assert!(e.contains_key("n"), "{e:?}"),
            other => panic!("{other:?}"),
        }
        match super::parse_json::<N>(br#"{"n": 1, "x": 1, "s": "a\u0000"}"#) {
            Err(crate::error::AppError::Validation(e)) => assert!(e.contains_key("s"), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
}
