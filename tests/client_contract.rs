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

/// A party of `host`'s with `visibility` on an external URL: its answer's `data`.
async fn party_of(app: &common::TestApp, host: &common::TestUser, visibility: &str) -> Value {
    let (s, b) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Contract", "external_url": "https://example.com/v.mp4", "visibility": visibility}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["data"].clone()
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
    let created = party_of(&app, &host, "public").await;
    let id = created["id"].as_str().unwrap().to_owned();
    for body in [
        created.clone(),
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
    let pid = party_of(&app, &host, "private").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
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
    let pid = party_of(&app, &host, "public").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
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

/// What the walk below learned: what it called and what failed.
#[derive(Default)]
struct Walk {
    calls: usize,
    links: std::collections::BTreeSet<String>,
    seen: std::collections::BTreeSet<String>,
    followed: usize,
    failures: Vec<String>,
}

/// Keys under which an object is a user summary, which has one shape everywhere.
const SUMMARY_KEYS: [&str; 10] = [
    "user",
    "owner",
    "host",
    "organizer",
    "creator",
    "admin",
    "from_user",
    "to_user",
    "author",
    "actor",
];

impl Walk {
    /// Follows the links not followed yet: images and signed links without a header
    /// (as `<img>` and a download manager use them), the rest with the caller's token.
    async fn follow(&mut self, app: &common::TestApp, token: &str) {
        let new: Vec<String> = self.links.difference(&self.seen).cloned().collect();
        for link in new {
            self.seen.insert(link.clone());
            let (key, path) = link.split_once(' ').unwrap();
            let bare =
                key.ends_with("avatar_url") || key == "thumbnail_url" || path.contains("token=");
            let mut req = browser(app.client.get(app.url(path)));
            if !bare {
                req = req.bearer_auth(token);
            }
            let s = req.send().await.unwrap().status();
            self.followed += 1;
            if !s.is_success() {
                self.failures.push(format!("link `{key}` {path}: {s}"));
            }
        }
    }

    /// Checks times, user summaries and collects links, through the whole value.
    fn inspect(&mut self, at: &str, key: &str, v: &Value, public_url: &str) {
        match v {
            Value::Object(o) => {
                if SUMMARY_KEYS.contains(&key) && o.contains_key("username") {
                    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
                    keys.sort_unstable();
                    if keys != ["avatar_url", "display_name", "id", "username"] {
                        self.failures
                            .push(format!("{at}: `{key}` is not the user summary: {keys:?}"));
                    }
                }
                for (k, x) in o {
                    self.inspect(at, k, x, public_url);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.inspect(at, key, x, public_url)),
            Value::String(s) => {
                if (key.ends_with("_at") || key.ends_with("_time") || key == "closes_at")
                    && std::panic::catch_unwind(|| rest_time(v)).is_err()
                {
                    self.failures
                        .push(format!("{at}: `{key}` = {s} is not an RFC 3339 UTC time"));
                }
                // A base URL (`api_base_url`) is a prefix to build on, not a resource.
                if let Some(rest) = s
                    .strip_prefix(public_url)
                    .filter(|_| !key.ends_with("_base_url"))
                {
                    self.links.insert(format!("{key} {rest}"));
                }
            }
            _ => {}
        }
    }
}

/// Every route of the OpenAPI document, called as a browser calls it (`Accept-Encoding:
/// gzip, br`, `Origin`), by a user who owns a party, a video, a comment, an event, a
/// group and a poll: no answer is a 5xx, every status is one the document lists for the
/// route (or one every route may give: 401 where a token is needed, 404 where the path
/// names an object, 400/413/415 where a body or query is read, 429, 503), every body
/// decodes and has the envelope, every time has the one format, every user summary the
/// one shape; and every link the answers hold (pages, avatars, thumbnails, signed
/// downloads) works for the caller, images without a header.
#[tokio::test]
async fn every_route_and_every_link_works_for_a_browser() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("walker").await;
    let friend = env.create_user("friend").await;
    env.befriend(&owner, &friend).await;
    let public_url = env.config.public_url.clone();

    // The caller's things: an avatar, a ready video with a comment, a party with a poll
    // and a chat message, an event, a group.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(2000, 7);
    let res = app
        .client
        .put(app.url("/api/users/me/avatar/"))
        .bearer_auth(&owner.token)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(png).file_name("me.png"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .post(app.url("/api/videos/"))
        .bearer_auth(&owner.token)
        .multipart(
            reqwest::multipart::Form::new()
                .text("title", "Walked")
                .text("visibility", "friends")
                .text("allow_download", "true")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(common::make_mp4(1)).file_name("w.mp4"),
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let video = res.json::<Value>().await.unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let workers = env
        .spawn_workers(&[(wp_shared::jobs::Queue::Media, 1)])
        .await;
    eventually(Duration::from_secs(30), "video ready", || async {
        let (_, b) = app
            .call(
                Method::GET,
                &format!("/api/videos/{video}/"),
                Some(&owner.token),
                None,
            )
            .await;
        (b["data"]["status"] == "ready").then_some(())
    })
    .await;
    workers.shutdown().await;
    let post = |path: String, body: Value| {
        let (app, token) = (&app, owner.token.clone());
        async move {
            let (s, b) = app.post_json(&path, Some(&token), body).await;
            assert!(s.is_success(), "{path}: {b}");
            b["data"]["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default()
        }
    };
    let comment = post(
        format!("/api/videos/{video}/comments/"),
        json!({"content": "hi"}),
    )
    .await;
    post(
        format!("/api/videos/{video}/comments/"),
        json!({"content": "again"}),
    )
    .await;
    post(
        "/api/parties/".into(),
        json!({"title": "Second", "external_url": "https://example.com/v.mp4"}),
    )
    .await;
    let party = post(
        "/api/parties/".into(),
        json!({"title": "Walk", "video_id": video}),
    )
    .await;
    let poll = post(
        format!("/api/interactive/parties/{party}/polls/"),
        json!({"question": "Which?", "options": ["a", "b"]}),
    )
    .await;
    let start = (chrono::Utc::now() + chrono::TimeDelta::days(2)).to_rfc3339();
    let end = (chrono::Utc::now() + chrono::TimeDelta::days(2) + chrono::TimeDelta::hours(1))
        .to_rfc3339();
    let event = post(
        "/api/events/".into(),
        json!({"title": "Walk night", "start_time": start, "end_time": end}),
    )
    .await;
    let group = post("/api/social/groups/".into(), json!({"name": "Walkers"})).await;
    let (s, _) = app
        .post_json(
            &format!("/api/parties/{party}/invite/"),
            Some(&owner.token),
            json!({"user_ids": [friend.id]}),
        )
        .await;
    assert!(s.is_success());

    let ids: std::collections::HashMap<&str, String> = [
        ("videos", video.clone()),
        ("comments", comment),
        ("parties", party.clone()),
        ("polls", poll),
        ("events", event),
        ("groups", group),
        ("users", friend.id.to_string()),
        ("members", friend.id.to_string()),
        ("follow", friend.id.to_string()),
        ("friends", friend.id.to_string()),
        ("bans", friend.id.to_string()),
    ]
    .into_iter()
    .collect();
    let doc: Value = app.get("/api/schema/").await.json().await.unwrap();
    let mut walk = Walk::default();
    // Reads first, then writes (with an empty object: mostly refused), deletions last.
    for verb in ["get", "post", "put", "patch", "delete"] {
        for (path, ops) in doc["paths"].as_object().unwrap() {
            let Some(op) = ops.get(verb).filter(|o| o.is_object()) else {
                continue;
            };
            // Ending the caller's session or account would end the walk.
            if path.contains("/logout") || (verb == "delete" && path.ends_with("/users/me/")) {
                continue;
            }
            let mut prev = "";
            let concrete: Vec<String> = path
                .split('/')
                .map(|seg| {
                    let out = if seg.starts_with('{') {
                        ids.get(prev)
                            .cloned()
                            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
                    } else {
                        seg.to_owned()
                    };
                    prev = seg;
                    out
                })
                .collect();
            let mut concrete = concrete.join("/");
            // Lists one item a page, so their answers hold `next` links to follow.
            let paged = op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x["name"] == "page_size"));
            if verb == "get" && paged {
                concrete.push_str("?page_size=1");
            }
            let method = Method::from_bytes(verb.to_uppercase().as_bytes()).unwrap();
            let mut req =
                browser(app.client.request(method, app.url(&concrete))).bearer_auth(&owner.token);
            if verb != "get" && verb != "delete" {
                req = req.json(&json!({}));
            }
            let res = req.send().await.unwrap();
            walk.calls += 1;
            let at = format!("{} {path}", verb.to_uppercase());
            let status = res.status().as_u16();
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
                .unwrap_or_default();
            let reads_input = op.get("requestBody").is_some()
                || op["parameters"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|x| x["in"] == "query"));
            let general = match status {
                401 => op.get("security").is_some(),
                404 => path.contains('{'),
                400 => reads_input,
                413 | 415 => op.get("requestBody").is_some(),
                429 | 503 => true,
                _ => false,
            };
            if status >= 500 {
                walk.failures.push(format!("{at}: {status}"));
                continue;
            }
            if !documented.contains(&status) && !general {
                walk.failures
                    .push(format!("{at}: {status} is not documented ({documented:?})"));
            }
            let json = res
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"));
            if !json {
                continue;
            }
            let (_, _, body) = decoded(res).await;
            if status >= 400 {
                let ok = body["success"] == false
                    && body["code"].is_string()
                    && body["request_id"].as_str().is_some_and(|r| !r.is_empty());
                if !ok {
                    walk.failures
                        .push(format!("{at}: not the error envelope: {body}"));
                }
            } else if body.get("success") != Some(&json!(true)) && !path.ends_with("/schema/") {
                walk.failures
                    .push(format!("{at}: not the success envelope"));
            }
            walk.inspect(&at, "", &body, &public_url);
            // The links now, while what they name exists (the walk deletes things).
            walk.follow(&app, &owner.token).await;
        }
    }
    assert!(
        walk.failures.is_empty(),
        "{} failures:\n{}",
        walk.failures.len(),
        walk.failures.join("\n")
    );
    assert!(walk.calls > 130, "routes called: {}", walk.calls);
    assert!(
        walk.followed >= 5,
        "links followed: {} ({:?})",
        walk.followed,
        walk.links
    );
}

/// The table of every route and its status codes (docs/api-routes.md), from the OpenAPI
/// document; `every_route_and_every_link_works_for_a_browser` holds the server to it.
fn route_table(doc: &Value) -> String {
    let mut rows = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for verb in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = ops.get(verb).filter(|o| o.is_object()) else {
                continue;
            };
            let mut codes: Vec<&str> = op["responses"]
                .as_object()
                .map(|r| r.keys().map(String::as_str).collect())
                .unwrap_or_default();
            codes.sort_unstable();
            let auth = if op.get("security").is_some() {
                "yes"
            } else {
                "no"
            };
            rows.push(format!(
                "| `{}` | `{path}` | {auth} | {} |",
                verb.to_uppercase(),
                codes.join(", ")
            ));
        }
    }
    rows.sort_by(|a, b| {
        let key = |r: &str| r.split('|').nth(2).unwrap_or("").to_owned();
        key(a).cmp(&key(b)).then(a.cmp(b))
    });
    format!(
        "# Routes and their status codes\n\n\
         Generated from the OpenAPI document (`/api/schema/`) by\n\
         `tests/client_contract.rs` (`UPDATE_DOCS=1 deploy/dev/test.sh -E 'test(route_table)'`\n\
         rewrites it; the test fails while it differs). Every route may also answer the\n\
         codes every route shares (docs/api-conventions.md, \"Errors and status codes\"):\n\
         401 where a token is needed, 404 where the path names an object, 400 where a body\n\
         or query is read, 413 and 415 where a body is read, 429 and 503 anywhere. Each\n\
         route is also served under `/api/v1/`.\n\n\
         | Method | Path | Token | Status codes |\n|---|---|---|---|\n{}\n",
        rows.join("\n")
    )
}

#[tokio::test]
async fn the_route_table_in_the_docs_matches_the_openapi_document() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let doc: Value = app.get("/api/schema/").await.json().await.unwrap();
    let table = route_table(&doc);
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api-routes.md");
    if std::env::var("UPDATE_DOCS").is_ok() {
        std::fs::write(&file, &table).unwrap();
    }
    let written = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        written == table,
        "docs/api-routes.md differs from the OpenAPI document: run \
         UPDATE_DOCS=1 deploy/dev/test.sh -E 'test(route_table)'"
    );
}

/// One-time socket tickets (issue 13, item 9): the token stays out of the URL; a ticket
/// opens one socket, once, under the caller's session.
#[tokio::test]
async fn a_ticket_opens_one_socket_once() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let host = env.create_user("host").await;
    let pid = party_of(&app, &host, "public").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket = || async {
        let (s, b) = app
            .post_json("/api/auth/ws-ticket/", Some(&host.token), json!({}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["data"]["expires_in"], 30);
        b["data"]["ticket"].as_str().unwrap().to_owned()
    };
    let (s, _) = app.post_json("/api/auth/ws-ticket/", None, json!({})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let t = ticket().await;
    let (_, snapshot) = Ws::connect_query(&app, &pid, &format!("ticket={t}")).await;
    assert_eq!(snapshot["data"]["you"]["role"], "host");
    let (s, b) = common::ws::refused(&app, &format!("/ws/party/{pid}/?ticket={t}")).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (401, Some("invalid_ticket")),
        "used once: {b}"
    );

    let t = ticket().await;
    let mut n = Ws::open(&app, &format!("/ws/notifications/?ticket={t}")).await;
    n.expect("notifications_state").await;
    let (s, _) = common::ws::refused(&app, "/ws/notifications/?ticket=made-up").await;
    assert_eq!(s, 401);
}

/// Security headers on every answer (issue 13, item 10): errors, JSON, images and the
/// docs UI; HSTS when the public URL is HTTPS.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let env = TestEnv::with_vars(&[("PUBLIC_URL", "https://watch.example")]).await;
    let app = env.spawn_api().await;
    for path in [
        "/api/schema/",
        "/api/nothing-here/",
        "/health",
        "/api/docs/",
    ] {
        let res = app.get(path).await;
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        if path.starts_with("/api/docs") {
            assert!(csp.contains("script-src 'self'"), "{csp}");
        } else {
            assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        }
    }
}
