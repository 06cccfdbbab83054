//! What a browser or mobile client meets (issue 20): error bodies it can read whatever
//! it accepts, JSON compressed and nothing else, one time format, request ids on socket
//! refusals, forgiving frames that name what they refuse, and sessions that show their
//! use.

mod common;

use std::{io::Read, time::Duration};

use common::{TestEnv, eventually, ws::Ws};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Headers every browser sends.
fn browser(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    req.header(header::ACCEPT_ENCODING, "gzip, deflate, br")
        .header(header::ORIGIN, "http://localhost:5173")
        .header(header::ACCEPT, "application/json, text/plain, */*")
}

/// The body as a browser decodes it: gunzipped when the response says gzip.
async fn decoded(res: reqwest::Response) -> (StatusCode, header::HeaderMap, Value) {
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.bytes().await.unwrap();
    let text = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap())
    {
        None => bytes.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .expect("the body is the gzip it says it is");
            out
        }
        Some(other) => panic!("unexpected encoding {other}"),
    };
    let body = serde_json::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&text)
        )
    });
    (status, headers, body)
}

/// A time as REST gives it: RFC 3339, UTC, at most microseconds.
fn rest_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a time string: {v}"));
    let fraction = s
        .split_once('.')
        .map(|(_, f)| f.trim_end_matches('Z').len())
        .unwrap_or(0);
    assert!(fraction <= 6, "{s}: more than microseconds");
    assert!(s.ends_with('Z'), "{s}: not UTC");
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Uploads that are not multipart, or multipart without a boundary, answer the error
/// envelope a browser can read (no `Content-Encoding` for a body that is not encoded):
/// 415 naming the type expected, 400 `invalid_multipart`. Large JSON is still gzipped,
/// and decodes.
#[tokio::test]
async fn upload_errors_are_readable_with_a_browsers_headers() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let me = env.create_user("uploader").await;
    for (method, path) in [
        (Method::POST, "/api/videos/"),
        (Method::PUT, "/api/users/me/avatar/"),
    ] {
        let res = browser(app.client.request(method.clone(), app.url(path)))
            .bearer_auth(&me.token)
            .header(header::CONTENT_TYPE, "text/plain")
            .body("x".repeat(4096))
            .send()
            .await
            .unwrap();
        let (s, h, b) = decoded(res).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}: {b}");
        assert_eq!(b["code"], "unsupported_media_type", "{path}");
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .contains("multipart/form-data"),
            "{b}"
        );
        assert!(!b["request_id"].as_str().unwrap().is_empty());
        assert!(
            h[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );

        let res = browser(app.client.request(method, app.url(path)))
            .bearer_auth(&me.token)
            .header(header::CONTENT_TYPE, "multipart/form-data")
            .body("x".repeat(4096))
            .send()
            .await
            .unwrap();
        let (s, _, b) = decoded(res).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert_eq!(b["code"], "invalid_multipart", "{path}");
    }
    // A 405 from the router, rewritten into the envelope, carries no stale headers.
    let res = browser(app.client.request(Method::PATCH, app.url("/api/videos/")))
        .bearer_auth(&me.token)
        .send()
        .await
        .unwrap();
    let (s, _, b) = decoded(res).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(b["code"], "method_not_allowed");
    // JSON of some size is compressed, and is what it says.
    let res = browser(app.client.get(app.url("/api/schema/")))
        .send()
        .await
        .unwrap();
    let (s, h, b) = decoded(res).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_ENCODING], "gzip");
    assert!(b["paths"].is_object());
}

/// REST times are RFC 3339 UTC with at most microseconds, the party's playback too
/// (its socket frames keep Unix milliseconds).
#[tokio::test]
async fn rest_times_have_one_format() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let host = env.create_user("host").await;
    let (s, b) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Times", "external_url": "https://example.com/v.mp4"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    for body in [
        b["data"].clone(),
        app.call(
            Method::GET,
            &format!("/api/parties/{id}/"),
            Some(&host.token),
            None,
        )
        .await
        .1["data"]
            .clone(),
    ] {
        let created = rest_time(&body["created_at"]);
        rest_time(&body["updated_at"]);
        let played = rest_time(&body["playback"]["updated_at"]);
        assert!((played - created).num_seconds().abs() < 60, "{body}");
        assert_eq!(body["playback"]["status"], "paused");
        assert_eq!(body["playback"]["seq"], 0);
    }
    let (_, snapshot) = Ws::connect(&app, &id, &host.token).await;
    assert!(
        snapshot["data"]["playback"]["updated_at"].is_i64(),
        "frames keep Unix ms"
    );
}

/// Every refusal of a socket upgrade (no token, a bad one, a bad id, not a member, a
/// plain GET) carries the request id the client sent, in the body and the header.
#[tokio::test]
async fn socket_refusals_carry_the_clients_request_id() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let host = env.create_user("host").await;
    let outsider = env.create_user("outsider").await;
    let (_, b) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Closed", "external_url": "https://example.com/v.mp4", "visibility": "private"}),
        )
        .await;
    let pid = b["data"]["id"].as_str().unwrap().to_owned();
    let ws_base = app.base.replace("http://", "ws://");
    for (i, (path, status)) in [
        (format!("/ws/party/{pid}/"), 401),
        (format!("/ws/party/{pid}/?token=garbage"), 401),
        (format!("/ws/party/nope/?token={}", host.token), 404),
        (format!("/ws/party/{pid}/?token={}", outsider.token), 404),
        ("/ws/notifications/?token=garbage".to_owned(), 401),
    ]
    .into_iter()
    .enumerate()
    {
        let rid = format!("contract-{i}");
        let mut req = format!("{ws_base}{path}").into_client_request().unwrap();
        req.headers_mut()
            .insert("x-request-id", rid.parse().unwrap());
        let res = match tokio_tungstenite::connect_async(req).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res,
            other => panic!("{path}: not refused: {:?}", other.map(|_| ())),
        };
        assert_eq!(res.status().as_u16(), status, "{path}");
        assert_eq!(res.headers()["x-request-id"], rid.as_str(), "{path}");
        let body: Value = serde_json::from_slice(res.body().as_ref().unwrap()).unwrap();
        assert_eq!(body["request_id"], rid.as_str(), "{path}: {body}");
        assert_eq!(body["success"], false);
    }
    let res = app
        .client
        .get(app.url(&format!("/ws/party/{pid}/?token={}", host.token)))
        .header("x-request-id", "contract-plain")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["x-request-id"], "contract-plain");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["request_id"].as_str()),
        (Some("websocket_required"), Some("contract-plain"))
    );
}

/// A frame may leave out `timestamp` (and `data` where it needs none); every refused
/// frame is answered with its type named.
#[tokio::test]
async fn frames_are_forgiving_and_refusals_name_the_frame() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let host = env.create_user("host").await;
    let (_, b) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Frames", "external_url": "https://example.com/v.mp4"}),
        )
        .await;
    let pid = b["data"]["id"].as_str().unwrap().to_owned();
    let (mut ws, _) = Ws::connect(&app, &pid, &host.token).await;
    ws.send_raw(r#"{"type":"ping"}"#).await;
    ws.expect("pong").await;
    ws.send_raw(r#"{"type":"sync_request"}"#).await;
    let sync = ws.expect("sync_response").await;
    assert!(sync["data"]["client_time"].is_i64(), "{sync}");
    ws.send_raw(r#"{"type":"sync_request","data":{"client_time":1764230400123}}"#)
        .await;
    let sync = ws.expect("sync_response").await;
    assert_eq!(
        sync["data"]["client_time"],
        json!(1764230400123_i64),
        "echoed as sent"
    );
    for (frame, kind, code) in [
        (
            r#"{"type":"video_control","data":{"action":"jump"}}"#,
            "video_control",
            "invalid_data",
        ),
        (r#"{"type":"bogus"}"#, "bogus", "unknown_type"),
        (
            r#"{"type":"chat_message","timestamp":"soon"}"#,
            "chat_message",
            "invalid_frame",
        ),
    ] {
        ws.send_raw(frame).await;
        let e = ws.expect("error").await;
        assert_eq!(e["data"]["code"], code, "{frame}: {e}");
        assert_eq!(e["data"]["in_reply_to"], kind, "{frame}: {e}");
    }
    ws.send_raw("not json").await;
    let e = ws.expect("error").await;
    assert_eq!(e["data"]["code"], "invalid_json");
    assert!(e["data"].get("in_reply_to").is_none());

    let mut n = Ws::open(&app, &format!("/ws/notifications/?token={}", host.token)).await;
    n.expect("notifications_state").await;
    n.send_raw(r#"{"type":"ping"}"#).await;
    n.expect("pong").await;
    n.send_raw(r#"{"type":"chat_message"}"#).await;
    let e = n.expect("error").await;
    assert_eq!(
        (
            e["data"]["code"].as_str(),
            e["data"]["in_reply_to"].as_str()
        ),
        (Some("unknown_type"), Some("chat_message"))
    );
}

/// `GET /api/auth/sessions/` shows when each session was last used: a request records
/// it when the stamp is more than a minute old, off the request's path.
#[tokio::test]
async fn sessions_show_their_last_use() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let me = env.create_user("user").await;
    sqlx::query("UPDATE sessions SET last_used_at = now() - interval '2 hours' WHERE user_id = $1")
        .bind(me.id)
        .execute(&env.db)
        .await
        .unwrap();
    let t = eventually(Duration::from_secs(5), "last_used_at recorded", || async {
        let (_, b) = app
            .call(Method::GET, "/api/auth/sessions/", Some(&me.token), None)
            .await;
        let t = rest_time(&b["data"][0]["last_used_at"]);
        (chrono::Utc::now() - t < chrono::TimeDelta::minutes(1)).then_some(t)
    })
    .await;
    // Within the minute, more requests do not write it again.
    for _ in 0..3 {
        app.call(Method::GET, "/api/users/me/", Some(&me.token), None)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, b) = app
        .call(Method::GET, "/api/auth/sessions/", Some(&me.token), None)
        .await;
    assert_eq!(rest_time(&b["data"][0]["last_used_at"]), t);
}
