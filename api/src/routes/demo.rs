//! The reference web client (`web/demo/`), served at `/demo/`: sign in, open or join a
//! party, watch in sync, chat and react. Its files are compiled into the binary, so
//! serving it needs no build step and no file on disk; `web/demo/sync.js` is the
//! committed output of `web/sync/sync.ts` (deploy/dev/web.sh checks it).

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};

use crate::{error::AppError, state::AppState};

/// Same-origin scripts, styles and API calls; sockets on this host; media from
/// anywhere (a party may watch any http(s) URL, and download links name `PUBLIC_URL`).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src * blob: data:; connect-src 'self' ws: wss:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const FILES: [(&str, &str, &str); 4] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../../web/demo/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/demo/app.js"),
    ),
    (
        "sync.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/demo/sync.js"),
    ),
    (
        "demo.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/demo/demo.css"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/demo", get(|| async { Redirect::permanent("/demo/") }))
        .route("/demo/", get(|| async { serve("index.html") }))
        .route(
            "/demo/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some((_, kind, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return AppError::not_found().into_response();
    };
    let mut res = (*body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Revalidated on every load: a new release's files are picked up at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}
