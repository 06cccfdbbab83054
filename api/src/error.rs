//! The error type of every handler and its JSON body (docs/api-conventions.md, Errors):
//! `{"success": false, "message", "code", "errors"?, "request_id"}`.
//!
//! Client errors carry their own text. Anything else is logged once, here, with the
//! request id, and the client sees a generic message and that id.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

/// Field name → messages, as in `{"content": ["This field may not be blank."]}`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400 with the offending fields named.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// 400 for input that is malformed as a whole (not JSON, wrong content).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 409 naming the fields that clash (a username or email already taken).
    #[error("conflict")]
    ConflictFields(FieldErrors),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests")]
    RateLimited { retry_after: Duration },
    /// 503: a dependency (database, redis, ...) is down or saturated.
    #[error("{what} unavailable")]
    Unavailable {
        what: &'static str,
        /// The underlying error, for the log line (never sent to the client).
        cause: String,
    },
    /// 503 with `Retry-After`: this server is at its bound for `what` (password checks,
    /// say) and sheds the request rather than queue it without end.
    #[error("busy with {what}")]
    Busy {
        what: &'static str,
        retry_after: Duration,
    },
    /// Any other client error with its own status and code (`token_expired`,
    /// `account_suspended`, ...).
    #[error("{message}")]
    Status {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// 500: logged with its cause; the client sees only the request id.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// A 400 naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.into(), vec![message.into()]);
        Self::Validation(errors)
    }

    pub fn not_found() -> Self {
        Self::NotFound("Not found.".to_owned())
    }

    /// 401 with a specific code.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::Status {
            status: StatusCode::UNAUTHORIZED,
            code,
            message: message.into(),
        }
    }

    /// 403 with a specific code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Status {
            status: StatusCode::FORBIDDEN,
            code,
            message: message.into(),
        }
    }

    /// 409 with a field named, e.g. a username already taken.
    pub fn conflict_field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_owned(), vec![message.into()]);
        Self::ConflictFields(errors)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::ConflictFields(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Status { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_error",
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Status { code, .. } => code,
            Self::ConflictFields(_) => "conflict",
            Self::Unauthorized(_) => "not_authenticated",
            Self::Forbidden(_) => "permission_denied",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "service_unavailable",
            Self::Busy { .. } => "server_busy",
            Self::Internal(_) => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            Self::Validation(_) => "Validation failed".to_owned(),
            Self::ConflictFields(_) => "Already in use.".to_owned(),
            Self::PayloadTooLarge => "Request body is too large.".to_owned(),
            Self::RateLimited { retry_after } => format!(
                "Too many requests. Try again in {} seconds.",
                retry_after.as_secs().max(1)
            ),
            Self::Unavailable { what, .. } => {
                format!("A required service ({what}) is unavailable. Try again shortly.")
            }
            Self::Busy { what, retry_after } => format!(
                "The server is at capacity for {what}. Try again in {} seconds.",
                retry_after.as_secs().max(1)
            ),
            Self::Internal(_) => {
                "Internal server error. Quote the request id when reporting it.".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    pub message: String,
    /// Stable machine-readable code (`validation_error`, `not_found`, ...).
    pub code: String,
    /// Field name → messages, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
    /// The id under which the server logged this request (also in `X-Request-Id`).
    pub request_id: String,
}

/// Builds an error response body for a status produced outside handlers (fallbacks,
/// middleware).
pub fn error_response(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        success: false,
        message,
        code: code.to_owned(),
        errors: None,
        request_id: request_id::current(),
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(e) => tracing::error!(error = ?e, "internal error"),
            // One line per refused request, with the cause.
            Self::Unavailable { what, cause } => {
                tracing::warn!(dependency = what, error = %cause, "dependency unavailable")
            }
            Self::Busy { what, .. } => tracing::warn!(what, "at capacity; request shed"),
            _ => {}
        }
        let body = ErrorBody {
            success: false,
            message: self.message(),
            code: self.code().to_owned(),
            errors: match &self {
                Self::Validation(e) | Self::ConflictFields(e) => Some(e.clone()),
                _ => None,
            },
            request_id: request_id::current(),
        };
        let mut res = (status, Json(body)).into_response();
        if let Self::RateLimited { retry_after } | Self::Busy { retry_after, .. } = self {
            // Rounded up: a client that waits that long is let through.
            let secs = retry_after.as_secs_f64().ceil().max(1.0).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Self::not_found(),
            e if wp_shared::db::is_unavailable(&e) => Self::Unavailable {
                what: "database",
                cause: e.to_string(),
            },
            other => Self::Internal(other.into()),
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            Self::Unavailable {
                what: "redis",
                cause: e.to_string(),
            }
        } else {
            Self::Internal(e.into())
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// Turns a violated database constraint into the client error it means (a username
/// already taken, a request already pending) instead of a 500; any other error goes on
/// as usual. `f` gets the constraint's name and answers the error, or None.
pub trait OnConstraint<T> {
    fn on_constraint(self, f: impl FnOnce(&str) -> Option<AppError>) -> AppResult<T>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint(self, f: impl FnOnce(&str) -> Option<AppError>) -> AppResult<T> {
        match self {
            Err(sqlx::Error::Database(db)) => match db.constraint().and_then(f) {
                Some(mapped) => Err(mapped),
                None => Err(sqlx::Error::Database(db).into()),
            },
            other => Ok(other?),
        }
    }
}

impl From<wp_core::account::AuthError> for AppError {
    fn from(e: wp_core::account::AuthError) -> Self {
        use wp_core::account::AuthError as E;
        match e {
            E::Db(e) => e.into(),
            E::Internal(e) => Self::Internal(e),
            e if e.is_forbidden() => Self::forbidden(e.code(), e.message()),
            e => Self::unauthenticated(e.code(), e.message()),
        }
    }
}

impl From<wp_core::party::PartyError> for AppError {
    fn from(e: wp_core::party::PartyError) -> Self {
        use wp_core::party::PartyError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::NotAMember => Self::forbidden("not_a_member", e.to_string()),
            E::PermissionDenied(m) => Self::forbidden("permission_denied", m),
            E::Db(e) => e.into(),
            E::Redis(e) => e.into(),
        }
    }
}

impl From<wp_core::party::polls::PollError> for AppError {
    fn from(e: wp_core::party::polls::PollError) -> Self {
        use wp_core::party::polls::PollError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::Party(e) => e.into(),
            E::Closed => Self::Conflict {
                code: "poll_closed",
                message: e.to_string(),
            },
            E::TooMany => Self::Conflict {
                code: "too_many_polls",
                message: e.to_string(),
            },
            E::Invalid { field, message } => Self::field(field, message),
            E::Db(e) => e.into(),
        }
    }
}

impl From<wp_core::event::EventError> for AppError {
    fn from(e: wp_core::event::EventError) -> Self {
        use wp_core::event::EventError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::PermissionDenied(m) => Self::forbidden("permission_denied", m),
            E::Invalid { field, message } => Self::field(field, message),
            E::Conflict { code, message } => Self::Conflict {
                code,
                message: message.to_owned(),
            },
            E::Db(e) => e.into(),
        }
    }
}

impl From<wp_core::exports::ExportError> for AppError {
    fn from(e: wp_core::exports::ExportError) -> Self {
        use wp_core::exports::ExportError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::PermissionDenied(m) => Self::forbidden("permission_denied", m),
            E::Invalid { field, message } => Self::field(field, message),
            E::Db(e) => e.into(),
        }
    }
}

impl From<wp_core::analytics::video::AnalyticsError> for AppError {
    fn from(e: wp_core::analytics::video::AnalyticsError) -> Self {
        use wp_core::analytics::video::AnalyticsError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::PermissionDenied(m) => Self::forbidden("permission_denied", m),
            E::Invalid { field, message } => Self::field(field, message),
            E::Db(e) => e.into(),
            E::ClickHouse(cause) => Self::Unavailable {
                what: "clickhouse",
                cause,
            },
        }
    }
}

impl From<wp_core::moderation::ModerationError> for AppError {
    fn from(e: wp_core::moderation::ModerationError) -> Self {
        use wp_core::moderation::ModerationError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::PermissionDenied(m) => Self::forbidden("permission_denied", m),
            E::Invalid { field, message } => Self::field(field, message),
            E::Conflict { code, message } => Self::Conflict { code, message },
            E::Db(e) => e.into(),
        }
    }
}

impl From<wp_core::support::SupportError> for AppError {
    fn from(e: wp_core::support::SupportError) -> Self {
        use wp_core::support::SupportError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::PermissionDenied(m) => Self::forbidden("permission_denied", m),
            E::Invalid { field, message } => Self::field(field, message),
            E::Conflict { code, message } => Self::Conflict { code, message },
            E::Db(e) => e.into(),
        }
    }
}

impl From<wp_core::group::GroupError> for AppError {
    fn from(e: wp_core::group::GroupError) -> Self {
        use wp_core::group::GroupError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::PermissionDenied(m) => Self::forbidden("permission_denied", m),
            E::Banned => Self::forbidden("banned", e.to_string()),
            E::Invalid { field, message } => Self::field(field, message),
            E::Conflict { code, message } => Self::Conflict {
                code,
                message: message.to_owned(),
            },
            E::Db(e) => e.into(),
        }
    }
}

impl From<wp_core::comment::CommentError> for AppError {
    fn from(e: wp_core::comment::CommentError) -> Self {
        use wp_core::comment::CommentError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::Content(m) => Self::field("content", m),
            E::NoParent | E::ParentDeleted => Self::field("parent", e.to_string()),
            E::Blocked => Self::forbidden("blocked", e.to_string()),
            E::NotAuthor | E::CannotDelete => Self::forbidden("permission_denied", e.to_string()),
            E::Db(e) => e.into(),
        }
    }
}

impl From<wp_core::party::members::JoinError> for AppError {
    fn from(e: wp_core::party::members::JoinError) -> Self {
        use wp_core::party::members::JoinError as E;
        match e {
            E::NotFound => Self::not_found(),
            E::BadCode => Self::field("code", e.to_string()),
            E::Banned => Self::forbidden("banned", e.to_string()),
            E::Full(_) => Self::Conflict {
                code: "party_full",
                message: e.to_string(),
            },
            E::Db(e) => e.into(),
        }
    }
}
