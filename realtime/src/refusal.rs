//! Answers to a socket request refused before the upgrade: plain HTTP with the API's
//! error body (`{"success": false, "message", "code", "errors"?, "request_id"}`), so a
//! client reads them as it reads any API error.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use wp_core::{account::AuthError, party::PartyError};

/// A refused upgrade.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Query parameter → messages, for a malformed query.
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

impl Refusal {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: None,
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found.")
    }

    fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "socket authorisation failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error. Quote the request id when reporting it.",
        )
    }

    fn unavailable(e: &sqlx::Error) -> Option<Self> {
        wp_shared::db::is_unavailable(e).then(|| {
            tracing::warn!(error = %e, "database unavailable");
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "A required service (database) is unavailable. Try again shortly.",
            )
        })
    }

    fn db(e: sqlx::Error) -> Self {
        Self::unavailable(&e).unwrap_or_else(|| Self::internal(&e))
    }

    /// The body, with the request id the API's middleware gave the request (when one
    /// process serves both), the one the client sent, or a new one; the refusal is
    /// logged under that id (target `access`), and the id is echoed in `X-Request-Id`.
    pub fn into_response_for(self, headers: &HeaderMap) -> Response {
        #[derive(Serialize)]
        struct Body {
            success: bool,
            message: String,
            code: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            errors: Option<BTreeMap<String, Vec<String>>>,
            request_id: String,
        }
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| wp_shared::net::acceptable_request_id(v))
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        tracing::info!(
            target: "access",
            request_id = %request_id,
            status = self.status.as_u16(),
            code = self.code,
            "socket refused"
        );
        let id_header = axum::http::HeaderValue::from_str(&request_id).ok();
        let body = Body {
            success: false,
            message: self.message,
            code: self.code,
            errors: self.errors,
            request_id,
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(v) = id_header {
            res.headers_mut().insert("x-request-id", v);
        }
        res
    }
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Db(e) => Self::db(e),
            AuthError::Internal(e) => Self::internal(&e),
            e if e.is_forbidden() => Self::new(StatusCode::FORBIDDEN, e.code(), e.message()),
            e => Self::new(StatusCode::UNAUTHORIZED, e.code(), e.message()),
        }
    }
}

impl From<PartyError> for Refusal {
    fn from(e: PartyError) -> Self {
        match e {
            PartyError::NotFound => Self::not_found(),
            PartyError::NotAMember => {
                Self::new(StatusCode::FORBIDDEN, "not_a_member", e.to_string())
            }
            PartyError::PermissionDenied(m) => {
                Self::new(StatusCode::FORBIDDEN, "permission_denied", m)
            }
            PartyError::Db(e) => Self::db(e),
            PartyError::Redis(e) => Self::internal(&e),
        }
    }
}

/// Parses the query string into `T`, naming the parameter at fault (400
/// `validation_error`), as the API's query extractor does.
pub fn parse_query<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Result<T, Refusal> {
    wp_shared::query::parse(raw.unwrap_or_default()).map_err(|e| Refusal {
        status: StatusCode::BAD_REQUEST,
        code: "validation_error",
        message: "Validation failed".to_owned(),
        errors: Some(BTreeMap::from([(e.field, vec![e.message])])),
    })
}
