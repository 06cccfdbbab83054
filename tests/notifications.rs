//! The notification pipeline's first part: domain events become in-app notifications
//! and emails (a real SMTP server) through the `notify` worker, exactly once; the
//! notification list and its bulk actions; preferences; push devices.

mod common;

use std::time::Duration;

use common::{MailEnv, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::{NotifyEvent, Queue};

async fn notifications(m: &MailEnv, token: &str, query: &str) -> Value {
    let (s, b) = m
        .app
        .call(
            Method::GET,
            &format!("/api/notifications/{query}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"].clone()
}

#[tokio::test]
async fn a_friend_request_notifies_in_app_and_by_email_exactly_once() {
    let m = MailEnv::new().await;
    let _notify = m.env.spawn_workers(&[(Queue::Notify, 4)]).await;
    let ann = m.env.create_user("ann").await;
    let ben = m.env.create_user("ben").await;
    let (s, b) = m
        .app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ann.token),
            json!({"user_id": ben.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let list = eventually(Duration::from_secs(15), "ben's notification", || async {
        let d = notifications(&m, &ben.token, "").await;
        (d["results"].as_array()?.len() == 1).then_some(d)
    })
    .await;
    let n = &list["results"][0];
    assert_eq!(n["kind"], "friend_request.received");
    assert_eq!(n["title"], "New friend request");
    assert_eq!(n["body"], "ann wants to be your friend.");
    assert_eq!(n["link"], "/friends/requests");
    assert_eq!(n["is_read"], false);
    assert_eq!(n["actor_id"], ann.id.to_string());
    let mail = m
        .email("ben@example.com", "ann sent you a friend request")
        .await;
    assert!(mail.contains("ann wants to be your friend."), "{mail}");

    // The same event again (a duplicated or re-delivered job): nothing new.
    let event: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM domain_events WHERE kind = 'friend_request.received'")
            .fetch_one(&m.env.db)
            .await
            .unwrap();
    for _ in 0..3 {
        m.env.enqueuer.push(NotifyEvent::new(event)).await.unwrap();
    }
    m.env
        .wait_idle(Queue::Notify, Duration::from_secs(15))
        .await;
    m.env.wait_idle(Queue::Email, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        notifications(&m, &ben.token, "").await["results"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(m.count_to("ben@example.com"), 1, "one email");
    // Ann got nothing.
    assert_eq!(
        notifications(&m, &ann.token, "").await["results"],
        json!([])
    );
}

#[tokio::test]
async fn preferences_decide_the_channels() {
    let m = MailEnv::new().await;
    let _notify = m.env.spawn_workers(&[(Queue::Notify, 4)]).await;
    let ann = m.env.create_user("ann").await;
    let ben = m.env.create_user("ben").await;
    let (_, b) = m
        .app
        .call(
            Method::GET,
            "/api/notifications/preferences/",
            Some(&ben.token),
            None,
        )
        .await;
    let fr = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "friend_request.received")
        .unwrap()
        .clone();
    assert_eq!(
        (fr["in_app"].clone(), fr["email"].clone()),
        (json!(true), json!(true))
    );
    // Bad input names the field.
    let (s, b) = m
        .app
        .call(
            Method::PUT,
            "/api/notifications/preferences/",
            Some(&ben.token),
            Some(json!([{"kind": "nope", "in_app": true, "email": true, "push": true}])),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["[0].kind"].is_array(), "{b}");
    let (s, _) = m
        .app
        .call(Method::PUT, "/api/notifications/preferences/", Some(&ben.token),
            Some(json!([{"kind": "friend_request.received", "in_app": true, "email": "yes", "push": true}])))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Ben wants friend requests in the app only, and no follows at all.
    let (s, b) = m
        .app
        .call(
            Method::PUT,
            "/api/notifications/preferences/",
            Some(&ben.token),
            Some(json!([
                {"kind": "friend_request.received", "in_app": true, "email": false, "push": true},
                {"kind": "follow.new", "in_app": false, "email": false, "push": false},
            ])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    m.app
        .post_json(
            &format!("/api/social/follow/{}/", ben.id),
            Some(&ann.token),
            json!({}),
        )
        .await;
    m.app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ann.token),
            json!({"user_id": ben.id}),
        )
        .await;
    eventually(
        Duration::from_secs(15),
        "the friend request notification",
        || async {
            let d = notifications(&m, &ben.token, "").await;
            (d["results"].as_array()?.len() == 1).then_some(())
        },
    )
    .await;
    m.env
        .wait_idle(Queue::Notify, Duration::from_secs(15))
        .await;
    m.env.wait_idle(Queue::Email, Duration::from_secs(15)).await;
    let d = notifications(&m, &ben.token, "").await;
    assert_eq!(
        d["results"].as_array().unwrap().len(),
        1,
        "no follow notification: {d}"
    );
    assert_eq!(d["results"][0]["kind"], "friend_request.received");
    assert_eq!(m.count_to("ben@example.com"), 0, "email turned off");
}

#[tokio::test]
async fn the_list_pages_filters_and_bulk_actions_touch_only_ones_own() {
    let m = MailEnv::new().await;
    let ann = m.env.create_user("ann").await;
    let eve = m.env.create_user("eve").await;
    // Rows as the worker writes them.
    for i in 0..25 {
        sqlx::query(
            "INSERT INTO notifications (id, user_id, kind, title, body, created_at)
             VALUES (gen_random_uuid(), $1, $2, 'T', $3, now() - make_interval(secs => $4))",
        )
        .bind(ann.id)
        .bind(if i % 5 == 0 {
            "follow.new"
        } else {
            "comment.reply"
        })
        .bind(format!("n{i}"))
        .bind(f64::from(i))
        .execute(&m.env.db)
        .await
        .unwrap();
    }
    let first = notifications(&m, &ann.token, "?page_size=10").await;
    assert_eq!(first["results"].as_array().unwrap().len(), 10);
    assert_eq!(first["results"][0]["body"], "n0", "newest first");
    let next = first["next"].as_str().unwrap();
    let second = notifications(&m, &ann.token, &format!("?page_size=10&cursor={next}")).await;
    assert_eq!(second["results"][0]["body"], "n10");
    let third = notifications(
        &m,
        &ann.token,
        &format!("?page_size=10&cursor={}", second["next"].as_str().unwrap()),
    )
    .await;
    assert_eq!(third["results"].as_array().unwrap().len(), 5);
    assert_eq!(third["next"], Value::Null);
    assert_eq!(
        notifications(&m, &ann.token, "?kind=follow.new").await["results"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let (s, b) = m
        .app
        .call(
            Method::GET,
            "/api/notifications/?kind=bogus",
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["kind"].is_array());
    let (s, _) = m
        .app
        .call(
            Method::GET,
            "/api/notifications/?cursor=zzz",
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let unread = |t: String| {
        let app = &m.app;
        async move {
            let (_, b) = app
                .call(
                    Method::GET,
                    "/api/notifications/unread-count/",
                    Some(&t),
                    None,
                )
                .await;
            b["data"]["unread"].as_i64().unwrap()
        }
    };
    assert_eq!(unread(ann.token.clone()).await, 25);
    let one = first["results"][0]["id"].as_str().unwrap().to_owned();
    // Eve cannot touch Ann's.
    let (s, _) = m
        .app
        .post_json(
            &format!("/api/notifications/{one}/read/"),
            Some(&eve.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = m
        .app
        .call(
            Method::DELETE,
            &format!("/api/notifications/{one}/"),
            Some(&eve.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = m
        .app
        .post_json(
            "/api/notifications/read/",
            Some(&eve.token),
            json!({"ids": [one]}),
        )
        .await;
    assert_eq!(b["data"]["count"], 0);
    let (_, b) = m
        .app
        .post_json(
            "/api/notifications/read/",
            Some(&eve.token),
            json!({"all": true}),
        )
        .await;
    assert_eq!(b["data"]["count"], 0);
    assert_eq!(unread(ann.token.clone()).await, 25);

    let (s, _) = m
        .app
        .post_json(
            &format!("/api/notifications/{one}/read/"),
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(unread(ann.token.clone()).await, 24);
    assert_eq!(
        notifications(&m, &ann.token, "?unread=false").await["results"][0]["id"],
        one.as_str()
    );
    let ids: Vec<&str> = second["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let (_, b) = m
        .app
        .post_json(
            "/api/notifications/read/",
            Some(&ann.token),
            json!({"ids": ids}),
        )
        .await;
    assert_eq!(b["data"]["count"], 10);
    let (s, b) = m
        .app
        .post_json("/api/notifications/read/", Some(&ann.token), json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (_, b) = m
        .app
        .post_json(
            "/api/notifications/read/",
            Some(&ann.token),
            json!({"all": true}),
        )
        .await;
    assert_eq!(b["data"]["count"], 14);
    assert_eq!(unread(ann.token.clone()).await, 0);

    let (s, _) = m
        .app
        .call(
            Method::DELETE,
            &format!("/api/notifications/{one}/"),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, b) = m
        .app
        .post_json(
            "/api/notifications/delete/",
            Some(&ann.token),
            json!({"ids": ids}),
        )
        .await;
    assert_eq!(b["data"]["count"], 10);
    let (_, b) = m
        .app
        .post_json(
            "/api/notifications/delete/",
            Some(&eve.token),
            json!({"all": true}),
        )
        .await;
    assert_eq!(b["data"]["count"], 0);
    let (_, b) = m
        .app
        .post_json(
            "/api/notifications/delete/",
            Some(&ann.token),
            json!({"all": true}),
        )
        .await;
    assert_eq!(b["data"]["count"], 14);
}

#[tokio::test]
async fn devices_register_refresh_move_and_unregister() {
    let m = MailEnv::new().await;
    let ann = m.env.create_user("ann").await;
    let eve = m.env.create_user("eve").await;
    let (s, b) = m
        .app
        .post_json(
            "/api/mobile/push-token/",
            Some(&ann.token),
            json!({"device_id": "", "platform": "nokia", "push_token": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for f in ["device_id", "platform", "push_token"] {
        assert!(b["errors"][f].is_array(), "{f}: {b}");
    }
    let body = json!({"device_id": "phone-1", "platform": "ios", "push_token": "tok-a", "app_version": "1.0"});
    let (s, b) = m
        .app
        .post_json("/api/mobile/push-token/", Some(&ann.token), body)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = m
        .app
        .post_json("/api/mobile/push-token/", Some(&ann.token), json!({"device_id": "phone-1", "platform": "ios", "push_token": "tok-b", "app_version": "1.1"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = m
        .app
        .call(Method::GET, "/api/mobile/devices/", Some(&ann.token), None)
        .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    assert_eq!(b["data"][0]["app_version"], "1.1");
    assert!(
        b["data"][0].get("push_token").is_none(),
        "tokens are not shown back"
    );
    let (s, _) = m
        .app
        .call(
            Method::DELETE,
            "/api/mobile/devices/phone-1/",
            Some(&eve.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not eve's device");
    // Signed in as eve on the same phone: the device moves.
    m.app
        .post_json(
            "/api/mobile/push-token/",
            Some(&eve.token),
            json!({"device_id": "phone-1", "platform": "ios", "push_token": "tok-c"}),
        )
        .await;
    let (_, b) = m
        .app
        .call(Method::GET, "/api/mobile/devices/", Some(&ann.token), None)
        .await;
    assert_eq!(b["data"], json!([]));
    let (s, _) = m
        .app
        .call(
            Method::DELETE,
            "/api/mobile/devices/phone-1/",
            Some(&eve.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = m
        .app
        .call(Method::GET, "/api/mobile/devices/", None, None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn delivery_statistics_reach_clickhouse_and_admins() {
    let m = MailEnv::new().await;
    let _workers = m
        .env
        .spawn_workers(&[(Queue::Notify, 4), (Queue::Analytics, 50)])
        .await;
    let ann = m.env.create_user("ann").await;
    let ben = m.env.create_user("ben").await;
    let boss = m.env.create_user("boss").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
        .bind(boss.id)
        .execute(&m.env.db)
        .await
        .unwrap();
    m.app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ann.token),
            json!({"user_id": ben.id}),
        )
        .await;
    let id = eventually(Duration::from_secs(15), "ben's notification", || async {
        let d = notifications(&m, &ben.token, "").await;
        d["results"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let (s, _) = m
        .app
        .post_json(
            &format!("/api/notifications/{id}/read/"),
            Some(&ben.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Reading again is not a second open.
    m.app
        .post_json(
            &format!("/api/notifications/{id}/read/"),
            Some(&ben.token),
            json!({}),
        )
        .await;

    let (s, _) = m
        .app
        .call(
            Method::GET,
            "/api/notifications/stats/",
            Some(&ben.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = m
        .app
        .call(
            Method::GET,
            "/api/notifications/stats/?days=0",
            Some(&boss.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["days"].is_array());
    let rows = eventually(
        Duration::from_secs(20),
        "three delivery statistics",
        || async {
            let (s, b) = m
                .app
                .call(
                    Method::GET,
                    "/api/notifications/stats/",
                    Some(&boss.token),
                    None,
                )
                .await;
            if s != StatusCode::OK {
                return None;
            }
            let rows: Vec<(String, String, u64)> = b["data"]
                .as_array()?
                .iter()
                .map(|r| {
                    assert_eq!(r["kind"], "friend_request.received");
                    assert!(r["latency_p95_ms"].as_f64().unwrap() >= 0.0);
                    (
                        r["channel"].as_str().unwrap().to_owned(),
                        r["outcome"].as_str().unwrap().to_owned(),
                        r["count"].as_u64().unwrap(),
                    )
                })
                .collect();
            (rows.len() == 3).then_some(rows)
        },
    )
    .await;
    let mut rows = rows;
    rows.sort();
    assert_eq!(
        rows,
        [
            ("email".to_owned(), "queued".to_owned(), 1),
            ("in_app".to_owned(), "delivered".to_owned(), 1),
            ("in_app".to_owned(), "opened".to_owned(), 1),
        ]
    );
}
