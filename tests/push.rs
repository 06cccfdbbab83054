//! Push through local servers that behave like FCM HTTP v1 and APNs: a friend request
//! reaches every device of the recipient once, dead tokens are pruned, a rate-limited
//! send is retried, and a duplicated job pushes nothing twice.

mod common;

use std::time::Duration;

use common::{eventually, push::Providers};
use reqwest::StatusCode;
use serde_json::json;
use wp_shared::jobs::{NotifyEvent, Queue, SendPush};

/// APNs device tokens: 64 hexadecimal digits (the second one is unregistered).
const APNS_GOOD: &str = "a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718";
const APNS_DEAD: &str = "dead0000000000000000000000000000000000000000000000000000000000ff";

#[tokio::test]
async fn a_friend_request_is_pushed_once_to_each_live_device_and_dead_tokens_are_pruned() {
    let providers = Providers::start().await;
    let env = providers.env(&[]).await;
    let app = env.spawn_api().await;
    let workers = env
        .spawn_workers(&[(Queue::Notify, 4), (Queue::Push, 4)])
        .await;
    let ann = env.create_user("ann").await;
    let ben = env.create_user("ben").await;
    for (device, platform, token) in [
        ("pixel", "android", "fcm-good"),
        ("old-pixel", "android", "dead-fcm"),
        ("browser", "web", "busy-web"),
        ("iphone", "ios", APNS_GOOD),
        ("old-iphone", "ios", APNS_DEAD),
    ] {
        app.register_device(&ben, device, platform, token).await;
    }
    app.send_friend_request(&ann, &ben).await;

    // The rate-limited web push is retried with backoff; wait for all three.
    let accepted = eventually(Duration::from_secs(40), "three pushes", || async {
        let a = providers.accepted();
        (a.len() >= 3).then_some(a)
    })
    .await;
    let mut tokens: Vec<&str> = accepted.iter().map(|a| a.token.as_str()).collect();
    tokens.sort_unstable();
    assert_eq!(tokens, [APNS_GOOD, "busy-web", "fcm-good"]);
    for a in &accepted {
        assert_eq!(a.title, "New friend request", "{a:?}");
        assert_eq!(a.body, "ann wants to be your friend.");
        assert!(!a.collapse.is_empty());
    }
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    assert_eq!(providers.token_requests(), 1, "the OAuth2 token is cached");

    // Dead tokens were pruned; live ones stay.
    let devices: Vec<String> =
        sqlx::query_scalar("SELECT device_id FROM devices ORDER BY device_id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(devices, ["browser", "iphone", "pixel"]);

    // A duplicated fan-out and a duplicated push job push nothing again: sent without
    // a dedupe key, so the queue cannot drop them and the handlers run (as they would
    // for a job re-delivered after a crash); `push_sends` keeps each device to one send.
    let event: uuid::Uuid = sqlx::query_scalar("SELECT id FROM domain_events")
        .fetch_one(&env.db)
        .await
        .unwrap();
    env.wait_idle(Queue::Push, Duration::from_secs(15)).await;
    let runs = (
        workers.metrics.starts(Queue::Notify),
        workers.metrics.starts(Queue::Push),
    );
    let fan_out = serde_json::to_value(NotifyEvent::new(event)).unwrap();
    let push = serde_json::to_value(SendPush {
        event_id: event,
        user_ids: vec![ben.id],
    })
    .unwrap();
    env.enqueuer
        .push_json(Queue::Notify, vec![(fan_out, None)])
        .await
        .unwrap();
    env.enqueuer
        .push_json(Queue::Push, vec![(push, None)])
        .await
        .unwrap();
    env.wait_idle(Queue::Notify, Duration::from_secs(15)).await;
    env.wait_idle(Queue::Push, Duration::from_secs(15)).await;
    assert_eq!(workers.metrics.starts(Queue::Notify) - runs.0, 1);
    assert_eq!(
        workers.metrics.starts(Queue::Push) - runs.1,
        1,
        "the duplicated push job ran, and the fan-out's re-run queued no push of its own"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(providers.accepted().len(), 3);
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT device_id, status FROM push_sends ORDER BY device_id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(
        statuses,
        [
            ("browser".to_owned(), "sent".to_owned()),
            ("iphone".to_owned(), "sent".to_owned()),
            ("old-iphone".to_owned(), "dead".to_owned()),
            ("old-pixel".to_owned(), "dead".to_owned()),
            ("pixel".to_owned(), "sent".to_owned()),
        ]
    );
}

#[tokio::test]
async fn push_follows_the_preference() {
    let providers = Providers::start().await;
    let env = providers.env(&[]).await;
    let app = env.spawn_api().await;
    let _workers = env
        .spawn_workers(&[(Queue::Notify, 4), (Queue::Push, 4)])
        .await;
    let ann = env.create_user("ann").await;
    let ben = env.create_user("ben").await;
    app.register_device(&ben, "pixel", "android", "fcm-good")
        .await;
    let (s, _) = app
        .call(
            reqwest::Method::PUT,
            "/api/notifications/preferences/",
            Some(&ben.token),
            Some(json!([{"kind": "friend_request.received", "in_app": true, "email": false, "push": false}])),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    app.send_friend_request(&ann, &ben).await;
    eventually(
        Duration::from_secs(15),
        "the in-app notification",
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
                .fetch_one(&env.db)
                .await
                .ok()?;
            (n == 1).then_some(())
        },
    )
    .await;
    env.wait_idle(Queue::Push, Duration::from_secs(10)).await;
    assert!(providers.accepted().is_empty(), "push was turned off");
}

#[tokio::test]
async fn quiet_hours_hold_push_back_in_the_users_timezone() {
    let providers = Providers::start().await;
    let env = providers.env(&[]).await;
    let app = env.spawn_api().await;
    let _workers = env
        .spawn_workers(&[(Queue::Notify, 4), (Queue::Push, 4)])
        .await;
    let ann = env.create_user("ann").await;
    let ben = env.create_user("ben").await;
    app.register_device(&ben, "pixel", "android", "fcm-good")
        .await;
    let (s, b) = app
        .call(
            reqwest::Method::PUT,
            "/api/notifications/settings/",
            Some(&ben.token),
            Some(json!({"quiet_hours": {"start": "25:00", "end": "07:00"}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["quiet_hours.start"].is_array(), "{b}");
    // Ben lives in Tokyo; his quiet hours are the two hours around now, there.
    sqlx::query("UPDATE users SET timezone = 'Asia/Tokyo' WHERE id = $1")
        .bind(ben.id)
        .execute(&env.db)
        .await
        .unwrap();
    let tokyo = chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap());
    let hhmm = |t: chrono::DateTime<chrono::FixedOffset>| t.format("%H:%M").to_string();
    let (s, b) = app
        .call(
            reqwest::Method::PUT,
            "/api/notifications/settings/",
            Some(&ben.token),
            Some(json!({"quiet_hours": {
                "start": hhmm(tokyo - chrono::Duration::hours(1)),
                "end": hhmm(tokyo + chrono::Duration::hours(1)),
            }})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["timezone"], "Asia/Tokyo");
    app.send_friend_request(&ann, &ben).await;
    let status = eventually(Duration::from_secs(15), "the push decision", || async {
        sqlx::query_scalar::<_, String>(
            "SELECT status FROM notification_deliveries WHERE channel = 'push'",
        )
        .fetch_optional(&env.db)
        .await
        .ok()
        .flatten()
    })
    .await;
    assert_eq!(status, "skipped_quiet_hours");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(n, 1, "the in-app notification still arrives");
    env.wait_idle(Queue::Push, Duration::from_secs(10)).await;
    assert!(providers.accepted().is_empty());
}

#[tokio::test]
async fn provider_refusals_are_retried_or_prune_the_device_and_a_revoked_fcm_token_is_renewed() {
    let providers = Providers::start().await;
    let env = providers.env(&[]).await;
    let app = env.spawn_api().await;
    let _workers = env
        .spawn_workers(&[(Queue::Notify, 2), (Queue::Push, 2)])
        .await;
    let ann = env.create_user("ann").await;
    let ben = env.create_user("ben").await;
    let throttled = format!("429{}", &APNS_GOOD[3..]);
    let unavailable = format!("503{}", &APNS_GOOD[3..]);
    let unknown = format!("bad{}", &APNS_GOOD[3..]);
    for (device, token) in [
        ("throttled", &throttled),
        ("unavailable", &unavailable),
        ("unknown", &unknown),
    ] {
        app.register_device(&ben, device, "ios", token).await;
    }
    app.register_device(&ben, "pixel", "android", "fcm-good")
        .await;
    app.send_friend_request(&ann, &ben).await;

    // 429 and 503 are retried with backoff until accepted; BadDeviceToken prunes the
    // device at once, without a retry.
    let accepted = eventually(Duration::from_secs(40), "three pushes", || async {
        let a = providers.accepted();
        (a.len() >= 3).then_some(a)
    })
    .await;
    let mut tokens: Vec<String> = accepted.iter().map(|a| a.token.clone()).collect();
    tokens.sort();
    let mut want = vec![
        throttled.clone(),
        unavailable.clone(),
        "fcm-good".to_owned(),
    ];
    want.sort();
    assert_eq!(tokens, want);
    let devices: Vec<String> =
        sqlx::query_scalar("SELECT device_id FROM devices ORDER BY device_id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(devices, ["pixel", "throttled", "unavailable"]);
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    assert_eq!(providers.token_requests(), 1);

    // Google revokes the access token: the next send is refused with 401, the worker
    // drops its cached token, fetches a new one and sends again.
    providers.revoke_fcm_tokens();
    let cat = env.create_user("cat").await;
    app.send_friend_request(&cat, &ben).await;
    eventually(
        Duration::from_secs(40),
        "the push after the 401",
        || async {
            let n = providers
                .accepted()
                .iter()
                .filter(|a| a.token == "fcm-good")
                .count();
            (n == 2).then_some(())
        },
    )
    .await;
    assert_eq!(providers.token_requests(), 2, "one new access token");
    assert_eq!(
        providers.refused(),
        ["fcm bearer"],
        "the revoked token was refused once"
    );
}

/// The providers as they really are reached: over TLS, HTTP/2 agreed by ALPN (APNs
/// speaks nothing else), the server's certificate checked against the roots the worker
/// trusts (`PUSH_CA_FILE` adds the test CA).
#[tokio::test]
async fn pushes_go_over_tls_with_http2_agreed_by_alpn() {
    let providers = Providers::start_tls().await;
    let env = providers.env(&[]).await;
    let app = env.spawn_api().await;
    let _workers = env
        .spawn_workers(&[(Queue::Notify, 2), (Queue::Push, 2)])
        .await;
    let ann = env.create_user("ann").await;
    let ben = env.create_user("ben").await;
    app.register_device(&ben, "iphone", "ios", APNS_GOOD).await;
    app.register_device(&ben, "pixel", "android", "fcm-good")
        .await;
    app.send_friend_request(&ann, &ben).await;
    let accepted = eventually(Duration::from_secs(30), "two pushes", || async {
        let a = providers.accepted();
        (a.len() >= 2).then_some(a)
    })
    .await;
    let mut by: Vec<(&str, &str)> = accepted
        .iter()
        .map(|a| (a.provider, a.token.as_str()))
        .collect();
    by.sort_unstable();
    assert_eq!(by, [("apns", APNS_GOOD), ("fcm", "fcm-good")]);
    assert!(providers.refused().is_empty(), "{:?}", providers.refused());
    let alpn = providers.alpn();
    assert!(!alpn.is_empty());
    assert!(
        alpn.iter().all(|p| p.as_deref() == Some(b"h2".as_slice())),
        "every connection agreed on h2: {alpn:?}"
    );

    // A file that holds no certificate stops the worker from starting, naming it.
    let bad = providers.dir.join("not-a-cert.pem");
    std::fs::write(&bad, "hello").unwrap();
    let mut config = env.config.clone();
    config.push_ca_file = Some(bad);
    let err = wp_workers::push::Providers::from_config(&config)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("PUSH_CA_FILE"), "{err}");
}
