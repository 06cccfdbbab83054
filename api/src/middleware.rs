//! Cross-cutting HTTP behaviour that is not a tower-http layer.

use axum::{
    body::Body,
    extract::Request,
    http::{StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::error_response;

/// Routes are declared with a trailing slash (as the frontend calls them). A request
/// for `/api/...` without it is served by the same handler: the path gets its slash
/// before routing. Paths whose last segment looks like a file (`openapi.json`,
/// Swagger UI assets) are left alone.
pub fn add_trailing_slash(mut req: Request<Body>) -> Request<Body> {
    let uri = req.uri();
    let path = uri.path();
    let wants_slash = (path.starts_with("/api/") || path == "/api" || path.starts_with("/ws/"))
        && !path.ends_with('/')
        && !path.rsplit('/').next().unwrap_or_default().contains('.');
    if wants_slash {
        let new = match uri.query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        if let Ok(pq) = new.parse() {
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
    }
    req
}

/// Cancels a request that runs longer than `REQUEST_TIMEOUT_SECS` (503 `timeout`),
/// except a video upload: a large file over a normal connection takes longer, so the
/// upload handler bounds the silence between its pieces instead (`UPLOAD_IDLE_SECS`).
pub async fn request_timeout(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    req: Request,
    next: Next,
) -> Response {
    let upload = req.method() == axum::http::Method::POST
        && req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| p.as_str().ends_with("/videos/"));
    if upload {
        return next.run(req).await;
    }
    match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Security headers on every answer (each only where the handler set none): no type
/// sniffing, no framing, no referrer; a Content-Security-Policy that allows nothing for
/// the API's own answers and only same-origin resources for the docs UI; HSTS when the
/// public URL is HTTPS.
pub async fn security_headers(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    req: Request,
    next: Next,
) -> Response {
    let docs = req.uri().path().starts_with("/api/docs");
    let mut res = next.run(req).await;
    let csp = if docs {
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
         script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'"
    };
    let https = state.config.public_url.starts_with("https://");
    let h = res.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, csp),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, axum::http::HeaderValue::from_static(value));
        }
    }
    if https && !h.contains_key(header::STRICT_TRANSPORT_SECURITY) {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

/// Whether a response is worth compressing on the fly: JSON and text of some size, and
/// nothing else. Media, files and images are already compressed, a range must stay the
/// bytes it names, and a download keeps its length and `ETag` (`no-transform`).
pub fn compressible(
    _: StatusCode,
    _: axum::http::Version,
    h: &axum::http::HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    let kind = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let textual = kind == "application/json"
        || kind.ends_with("+json")
        || kind == "application/javascript"
        || kind == "application/xml"
        || kind == "application/yaml"
        || (kind.starts_with("text/") && kind != "text/event-stream");
    let small = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n < 256);
    let no_transform = h
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-transform"));
    textual
        && !small
        && !no_transform
        && !h.contains_key(header::CONTENT_RANGE)
        && !h.contains_key(header::CONTENT_ENCODING)
}

/// Response headers that describe a body, dropped when the body is replaced.
const DESCRIBE_THE_BODY: [header::HeaderName; 9] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::CONTENT_DISPOSITION,
    header::TRANSFER_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
    header::ACCEPT_RANGES,
];

/// Any error response that is not already JSON (a 413 from the body limit, a timeout,
/// a panic caught, a 405) is given the standard error body, keeping its status and
/// headers such as `Allow` and `Retry-After`.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "Not found."),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed."),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "Request body is too large."),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
            ("timeout", "The request took too long and was cancelled.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "Unsupported media type."),
        s if s.is_server_error() => (
            "internal_error",
            "Internal server error. Quote the request id when reporting it.",
        ),
        _ => ("bad_request", "Bad request."),
    };
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(
            status = status.as_u16(),
            "request failed without an error body"
        );
    }
    let (parts, _) = res.into_parts();
    let mut new = error_response(status, code, message.to_owned());
    // Headers about the old body (its type, length, encoding, range, validators) would
    // misdescribe the new one: a browser told `Content-Encoding: gzip` fails to read a
    // plain JSON body.
    for (name, value) in parts.headers.iter() {
        if !DESCRIBE_THE_BODY.contains(name) {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_after(p: &str) -> String {
        let req = Request::builder().uri(p).body(Body::empty()).unwrap();
        add_trailing_slash(req).uri().to_string()
    }

    #[test]
    fn appends_the_slash_under_api_only() {
        assert_eq!(path_after("/api/videos"), "/api/videos/");
        assert_eq!(path_after("/api/videos?page=2"), "/api/videos/?page=2");
        assert_eq!(path_after("/api/videos/"), "/api/videos/");
        assert_eq!(
            path_after("/api/docs/swagger-ui.css"),
            "/api/docs/swagger-ui.css"
        );
        assert_eq!(path_after("/health"), "/health");
        assert_eq!(path_after("/ws/party/abc"), "/ws/party/abc/");
    }

    /// A handler that panics and one answered 503 without a body (what the timeout
    /// layer answers), behind the same two layers as the API's router.
    #[tokio::test]
    async fn a_panic_and_a_timeout_answer_with_the_error_body() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        async fn boom() -> &'static str {
            panic!("a handler bug")
        }
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .route(
                "/slow",
                axum::routing::get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
            )
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(axum::middleware::from_fn(json_errors));
        for (path, status, code) in [
            ("/boom", StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            ("/slow", StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        ] {
            let req = Request::builder().uri(path).body(Body::empty()).unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), status, "{path}");
            assert!(
                res.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json"),
                "{path}"
            );
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["code"], code, "{path}: {body}");
            assert_eq!(body["success"], false, "{path}: {body}");
            assert!(
                !body.to_string().contains("a handler bug"),
                "the panic's message stays in the logs: {body}"
            );
        }
    }
}
