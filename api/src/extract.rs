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
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(AppError::UnsupportedMediaType(
                "Expected `Content-Type: application/json`.".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        parse_json(&bytes).map(Json)
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

/// Parses JSON, naming the field path on type and missing-field errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => AppError::BadRequest {
                code: "invalid_json",
                message: format!("Malformed JSON: {inner}"),
            },
            Category::Data => {
                let msg = inner.to_string();
                // "missing field `x` at line 1 column 2": the path is the parent object.
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
                        (field, strip_position(&msg))
                    }
                };
                AppError::field(field, text)
            }
        }
    })
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
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
        let q = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded_de(q);
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let msg = e.into_inner().to_string();
                let field = if path == "." || path.is_empty() {
                    msg.strip_prefix("missing field `")
                        .and_then(|r| r.split('`').next())
                        .unwrap_or("query")
                        .to_owned()
                } else {
                    path
                };
                AppError::field(field, msg)
            })
    }
}

fn serde_urlencoded_de(q: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()))
}
