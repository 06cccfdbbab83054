//! The HTTP conventions (docs/api-conventions.md) hold on the real server: envelope, error
//! body with request id, trailing slashes, `/api/v1/`, CORS, gzip, `/ready`,
//! `/metrics`, the OpenAPI document and Swagger UI.

mod common;

use common::TestEnv;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use wp_shared::jobs::{Queue, SystemJob};

#[tokio::test]
async fn health_uses_the_success_envelope_and_echoes_the_request_id() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-request-id"], "client-chosen-42");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "ok");

    // A request without one gets a generated id.
    let res = app.get("/health").await;
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "uuid expected, got {id}");

    // An unusable id (too long, odd characters) is replaced, not echoed.
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "a b<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "a b<script>");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_the_error_body() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;

    let res = app.get("/api/no-such-thing/").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["request_id"], rid.as_str());
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let res = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.headers().contains_key(header::ALLOW));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
    assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn api_paths_answer_with_and_without_the_trailing_slash_and_under_v1() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    for path in ["/api/schema/", "/api/schema"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/ready"]["get"].is_object(), "{doc}");
    }
    // Unknown under v1 is still the JSON 404, not a redirect loop.
    let res = app.get("/api/v1/nothing").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let res = app.get("/api/docs/").await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Its assets come from the binary too (no CDN).
    let res = app.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.bytes().await.unwrap().len() > 100_000);
    // The initializer points at our document.
    let init = app
        .get("/api/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/schema/"), "{init}");
}

#[tokio::test]
async fn the_reference_client_is_served_from_the_binary() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let res = app.get("/demo/").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self' ws: wss:"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"<script type="module" src="app.js">"#),
        "{html}"
    );
    // Every file the page loads, with its type; the sync code is the compiled port.
    for (file, kind, needle) in [
        ("app.js", "text/javascript", "from \"./sync.js\""),
        ("sync.js", "text/javascript", "export class DriftController"),
        ("demo.css", "text/css", "video"),
    ] {
        let res = app.get(&format!("/demo/{file}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(kind), "{file}: {ct}");
        assert!(res.text().await.unwrap().contains(needle), "{file}");
    }
    // Nothing else is served from there; the bare path goes to the page.
    let res = app.get("/demo/../Cargo.toml").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app.get("/demo/secrets.js").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
}

#[tokio::test]
async fn ready_reports_every_dependency_to_ops_only() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let res = app.ops_get("/ready").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    for dep in ["postgres", "redis", "clickhouse"] {
        assert_eq!(body["data"]["checks"][dep]["ok"], true, "{body}");
    }
    // Anyone else learns the status, not the dependencies, their latency or errors.
    for token in [None, Some("test-ops-token-0123456789abcdeX")] {
        let mut req = app.client.get(app.url("/ready"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["data"], json!({"status": "ok"}), "{body}");
    }
}

#[tokio::test]
async fn metrics_need_the_ops_token_on_the_public_port() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let wrong = "test-ops-token-0123456789abcdeX";
    for (auth, status) in [
        (None, StatusCode::NOT_FOUND),
        (Some(wrong), StatusCode::NOT_FOUND),
        (Some(&wrong[..10]), StatusCode::NOT_FOUND),
        (Some(common::OPS_TOKEN), StatusCode::OK),
    ] {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{auth:?}");
        if status == StatusCode::NOT_FOUND {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["code"], "not_found", "{body}");
        }
    }
    // Without OPS_TOKEN the public port never serves them.
    let env = TestEnv::with_vars(&[("OPS_TOKEN", "")]).await;
    let app = env.spawn_api().await;
    assert_eq!(
        app.ops_get("/metrics").await.status(),
        StatusCode::NOT_FOUND
    );
    let body: Value = app.ops_get("/ready").await.json().await.unwrap();
    assert_eq!(body["data"], json!({"status": "ok"}), "{body}");
}

#[tokio::test]
async fn ready_is_503_and_names_the_dependency_that_is_down() {
    // Nothing listens on port 1.
    let env = TestEnv::with_vars(&[]).await;
    let mut config = env.config.clone();
    config.clickhouse_url = "http://127.0.0.1:1".into();
    let state = wp_api::AppState::from(wp_api::App::new(config).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(wp_api::serve(state, listener, std::future::pending()));
    let res = reqwest::Client::new()
        .get(format!("http://{addr}/ready"))
        .bearer_auth(common::OPS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["code"], "service_unavailable");
    assert_eq!(body["data"]["checks"]["clickhouse"]["ok"], false);
    assert_eq!(body["data"]["checks"]["postgres"]["ok"], true);
    assert!(body["request_id"].is_string());
}

#[tokio::test]
async fn metrics_show_requests_by_route_and_queue_depths() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    app.get("/health").await;
    app.get("/api/nothing/").await;
    env.enqueuer
        .push_many((0..3).map(|seq| SystemJob::Noop { seq }).collect())
        .await
        .unwrap();
    let text = app.ops_get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/health",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    // The three jobs pushed, read from the text itself (no worker runs, so they wait,
    // counted as active or scheduled depending on how far the queue has taken them).
    let depth = |state: &str| -> u64 {
        let key = format!(r#"job_queue_depth{{queue="system",state="{state}"}} "#);
        let line = text.lines().find(|l| l.starts_with(&key));
        let line = line.unwrap_or_else(|| panic!("no {key} line in {text}"));
        line[key.len()..].trim().parse().unwrap()
    };
    assert_eq!(depth("active") + depth("scheduled"), 3, "{text}");
    assert_eq!(depth("inflight") + depth("dead"), 0, "{text}");
    assert!(text.contains("outbox_pending 0"), "{text}");
    assert!(text.contains("outbox_oldest_pending_seconds 0"), "{text}");
    for q in Queue::ALL {
        assert!(text.contains(&format!(r#"queue="{q}""#)), "{q} missing");
    }
    // A row committed and not relayed: its age is the relay's lag.
    let mut tx = env.db.begin().await.unwrap();
    wp_shared::email::queue(
        &mut tx,
        &wp_shared::email::NewEmail {
            to: "lag@example.com".into(),
            subject: "Lag".into(),
            body_text: "lag".into(),
            body_html: None,
            kind: "test".into(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let text = app.ops_get("/metrics").await.text().await.unwrap();
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("outbox_oldest_pending_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the lag gauge");
    assert!((1.0..60.0).contains(&lag), "{lag}");
    assert!(text.contains("outbox_pending 1"), "{text}");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let env = TestEnv::with_vars(&[("CORS_ORIGINS", "https://app.example.com")]).await;
    let app = env.spawn_api().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/schema/"))
            .header(header::ORIGIN, origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(
        !other
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn responses_are_gzipped_when_asked() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let res = app
        .client
        .get(app.url("/api/schema/"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
}

/// A malformed id in any path is a 404 in the error envelope (checked by the `Ids`
/// extractor before the handler runs, and before a body is read), like an unknown one.
#[tokio::test]
async fn malformed_path_ids_are_404_in_the_envelope_everywhere() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let me = env.create_user("idcheck").await;
    let some = uuid::Uuid::now_v7();
    for (method, path) in [
        (reqwest::Method::GET, "/api/videos/not-a-uuid/".to_owned()),
        (reqwest::Method::POST, "/api/videos/12/like/".to_owned()),
        (reqwest::Method::GET, "/api/parties/x/".to_owned()),
        (reqwest::Method::POST, "/api/parties/x/join/".to_owned()),
        (
            reqwest::Method::PATCH,
            format!("/api/parties/{some}/messages/zz/"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/parties/{some}/members/zz/"),
        ),
        (
            reqwest::Method::POST,
            "/api/social/friend-requests/x/accept/".to_owned(),
        ),
        (reqwest::Method::GET, "/api/users/-1/".to_owned()),
        (
            reqwest::Method::POST,
            "/api/notifications/q/read/".to_owned(),
        ),
        (
            reqwest::Method::GET,
            "/api/interactive/parties/q/voice-chat/".to_owned(),
        ),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&me.token)
            .header(header::CONTENT_TYPE, "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "not_found", "{method} {path}: {body}");
        assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    }
}

/// Every page-number list answers `next` links that keep the path the client called
/// (`/api/` or `/api/v1/`): following `next` from the first page to the last gives every
/// item once and as many as `count` (issue 13, item 11: the links used to drop `/api/`).
#[tokio::test]
async fn next_links_lead_through_every_page_under_both_prefixes() {
    use reqwest::Method;
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let me = env.create_user("pager").await;
    let mut others = Vec::new();
    for i in 0..3 {
        others.push(env.create_user(&format!("pagee{i}")).await);
    }
    let start = (chrono::Utc::now() + chrono::TimeDelta::hours(2)).to_rfc3339();
    let end = (chrono::Utc::now() + chrono::TimeDelta::hours(3)).to_rfc3339();
    let mut party = String::new();
    let mut group = String::new();
    let mut event = String::new();
    for i in 0..3 {
        let (s, b) = app
            .post_json("/api/parties/", Some(&me.token), serde_json::json!({"title": format!("p{i}"), "external_url": "https://example.com/v.mp4"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        party = b["data"]["id"].as_str().unwrap().to_owned();
        let (_, b) = app
            .post_json(
                "/api/social/groups/",
                Some(&me.token),
                serde_json::json!({"name": format!("g{i}")}),
            )
            .await;
        group = b["data"]["id"].as_str().unwrap().to_owned();
        let (_, b) = app
            .post_json(
                "/api/events/",
                Some(&me.token),
                serde_json::json!({"title": format!("e{i}"), "start_time": start, "end_time": end}),
            )
            .await;
        event = b["data"]["id"].as_str().unwrap().to_owned();
    }
    for i in 0..3 {
        let (s, b) = app
            .post_json(
                &format!("/api/interactive/parties/{party}/polls/"),
                Some(&me.token),
                serde_json::json!({"question": format!("q{i}"), "options": ["a", "b"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    for o in &others {
        app.call(
            Method::POST,
            &format!("/api/social/follow/{}/", me.id),
            Some(&o.token),
            None,
        )
        .await;
        app.call(
            Method::POST,
            &format!("/api/social/follow/{}/", o.id),
            Some(&me.token),
            None,
        )
        .await;
        app.call(
            Method::POST,
            &format!("/api/social/groups/{group}/join/"),
            Some(&o.token),
            None,
        )
        .await;
        app.call(
            Method::POST,
            &format!("/api/events/{event}/join/"),
            Some(&o.token),
            None,
        )
        .await;
    }
    let lists = [
        "parties/?scope=mine".to_owned(),
        "social/groups/?mine=true".to_owned(),
        "events/my/".to_owned(),
        format!("interactive/parties/{party}/polls/"),
        format!("social/groups/{group}/members/"),
        format!("events/{event}/attendees/"),
        "social/followers/".to_owned(),
        "social/following/".to_owned(),
    ];
    for prefix in ["/api/", "/api/v1/"] {
        for list in &lists {
            let mut path = format!("{prefix}{list}");
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str("page_size=1");
            let mut seen = std::collections::HashSet::new();
            let mut count = None;
            let mut pages = 0;
            loop {
                let (s, b) = app.call(Method::GET, &path, Some(&me.token), None).await;
                assert_eq!(s, StatusCode::OK, "{path}: {b}");
                count.get_or_insert(b["data"]["count"].as_i64().unwrap());
                for item in b["data"]["results"].as_array().unwrap() {
                    assert!(seen.insert(item.to_string()), "{path}: an item twice");
                }
                pages += 1;
                let Some(next) = b["data"]["next"].as_str() else {
                    break;
                };
                let url = reqwest::Url::parse(next).unwrap();
                assert!(
                    url.path().starts_with(prefix),
                    "{list}: `next` keeps {prefix}: {next}"
                );
                path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
                assert!(pages < 20, "{path}: no end");
            }
            let count = count.unwrap();
            assert!(count >= 3, "{prefix}{list}: {count}");
            assert_eq!(
                seen.len() as i64,
                count,
                "{prefix}{list}: the pages add up to count"
            );
        }
    }
}

/// A path of the OpenAPI document with a new id in each `{parameter}`.
fn concrete_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods of the OpenAPI document's operations, by their key there.
fn verbs() -> [(&'static str, reqwest::Method); 5] {
    use reqwest::Method;
    [
        ("get", Method::GET),
        ("post", Method::POST),
        ("put", Method::PUT),
        ("patch", Method::PATCH),
        ("delete", Method::DELETE),
    ]
}

/// Every admin route, walked from the OpenAPI document as a normal user with a body that
/// is not valid for it, answers 403: permission is checked before the body is read, so
/// the schema is answered to nobody else (issue 13, item 7: the broadcast answered 400).
#[tokio::test]
async fn admin_routes_refuse_a_normal_user_before_reading_the_body() {
    use reqwest::Method;
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let user = env.create_user("plain").await;
    let doc: Value = app.get("/api/schema/").await.json().await.unwrap();
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.contains("/admin/") {
            continue;
        }
        let concrete = concrete_path(path);
        for (verb, method) in verbs() {
            if !ops[verb].is_object() {
                continue;
            }
            let body = (method != Method::GET).then(|| serde_json::json!({"bogus": [1, 2]}));
            let (s, b) = app.call(method, &concrete, Some(&user.token), body).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{verb} {path}: {b}");
            walked += 1;
        }
    }
    assert!(walked >= 8, "admin routes walked: {walked}");
}

/// Every route the OpenAPI document marks as needing a token, walked signed out with a
/// body that is not valid for it, answers 401 in the error envelope: no route reads a
/// body, an id or a query before it knows the caller.
#[tokio::test]
async fn every_secured_route_refuses_a_caller_without_a_token() {
    use reqwest::Method;
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let doc: Value = app.get("/api/schema/").await.json().await.unwrap();
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = concrete_path(path);
        for (verb, method) in verbs() {
            let op = &ops[verb];
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if !secured {
                continue;
            }
            let body = (method != Method::GET).then(|| serde_json::json!({"bogus": [1, 2]}));
            let (s, b) = app.call(method, &concrete, None, body).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{verb} {path}: {b}");
            assert!(
                b["success"] == false && b["code"].is_string(),
                "{verb} {path}: {b}"
            );
            walked += 1;
        }
    }
    assert!(walked >= 150, "secured routes walked: {walked}");
}

#[tokio::test]
async fn a_request_past_the_timeout_is_cancelled_with_the_error_body() {
    let mut env = TestEnv::new().await;
    let u = env.create_user("slowpoke").await;
    // A request that waits on anything (here PostgreSQL) cannot finish in a nanosecond.
    env.config.request_timeout = std::time::Duration::from_nanos(1);
    let app = env.spawn_api().await;
    let res = app
        .client
        .get(app.url("/api/users/me/"))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["success"], false, "{b}");
    assert_eq!(b["code"], "timeout", "{b}");
    assert_eq!(b["request_id"], id.as_str(), "{b}");
}
