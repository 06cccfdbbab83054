//! The mobile apps' configuration (`GET /api/mobile/config/`, seed item 9) against a
//! real API: base URLs, features, limits and push settings; the update advice per
//! platform and version from the configured releases; ETag caching; bad parameters
//! named.

mod common;

use common::TestEnv;
use reqwest::StatusCode;
use serde_json::Value;

async fn get(
    app: &common::TestApp,
    q: &str,
    etag: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = app.client.get(app.url(&format!("/api/mobile/config/{q}")));
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let etag = res
        .headers()
        .get("etag")
        .map(|h| h.to_str().unwrap().to_owned());
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, etag, body)
}

#[tokio::test]
async fn the_config_tells_each_app_version_what_to_do() {
    common::init_logs();
    let env = TestEnv::with_vars(&[
        ("MOBILE_IOS_MIN_VERSION", "1.4"),
        ("MOBILE_IOS_LATEST_VERSION", "2.0.1"),
        ("MOBILE_IOS_STORE_URL", "https://apps.apple.com/app/id1234"),
        ("MOBILE_ANDROID_LATEST_VERSION", "3.1"),
        ("MOBILE_DISABLED_FEATURES", "voice, screen_share"),
        ("REALTIME_PUBLIC_URL", "wss://rt.example.com"),
    ])
    .await;
    let app = env.spawn_api().await;

    // Signed out, no platform: URLs, features, limits; no update advice.
    let (s, etag, b) = get(&app, "", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = &b["data"];
    assert_eq!(d["api_base_url"], format!("{}/api", env.config.public_url));
    assert_eq!(d["socket_base_url"], "wss://rt.example.com/ws");
    assert!(d["update"].is_null());
    assert_eq!(d["features"]["parties"], true);
    assert_eq!(d["features"]["voice"], false);
    assert_eq!(d["features"]["screen_share"], false);
    assert_eq!(
        d["features"]["push"], false,
        "no push provider is configured here"
    );
    assert_eq!(d["limits"]["chat_message_max_chars"], 1000);
    assert_eq!(d["limits"]["page_size_max"], 100);
    assert_eq!(d["push"]["register_path"], "/api/mobile/push-token/");
    assert!(
        d["push"]["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "security.alert" && k["required"] == true),
        "{b}"
    );

    // Cached: the same answer is a 304 on If-None-Match; another question another ETag.
    let etag = etag.expect("an ETag");
    let (s, again, _) = get(&app, "", Some(&etag)).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert_eq!(again.as_deref(), Some(etag.as_str()));

    for (q, required, available) in [
        ("?platform=ios&app_version=1.3.9", true, true),
        ("?platform=ios&app_version=1.4", false, true),
        ("?platform=ios&app_version=1.10.0", false, true),
        ("?platform=ios&app_version=2.0.1", false, false),
        ("?platform=android&app_version=0.1", false, true),
        ("?platform=android&app_version=3.1", false, false),
    ] {
        let (s, e, b) = get(&app, q, Some(&etag)).await;
        assert_eq!(s, StatusCode::OK, "{q}: {b}");
        assert_ne!(e.as_deref(), Some(etag.as_str()), "{q}");
        let u = &b["data"]["update"];
        assert_eq!(
            (u["required"].as_bool(), u["available"].as_bool()),
            (Some(required), Some(available)),
            "{q}: {u}"
        );
    }
    let (_, _, b) = get(&app, "?platform=ios&app_version=1.0", None).await;
    let u = &b["data"]["update"];
    assert_eq!(u["minimum_version"], "1.4");
    assert_eq!(u["latest_version"], "2.0.1");
    assert_eq!(u["store_url"], "https://apps.apple.com/app/id1234");
    assert_eq!(b["data"]["push"]["provider"], "apns");

    for (q, field) in [
        ("?platform=windows", "platform"),
        ("?platform=ios&app_version=1.x", "app_version"),
        ("?app_version=1.2", "platform"),
        ("?colour=red", "colour"),
    ] {
        let (s, _, b) = get(&app, q, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
        assert!(b["errors"][field].is_array(), "{q}: {b}");
    }
}
