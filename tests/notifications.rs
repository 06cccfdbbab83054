//! The notification pipeline's first part: domain events become in-app notifications
//! and emails (a real SMTP server) through the `notify` worker, exactly once; the
//! notification list and its bulk actions; preferences; push devices.

mod common;

use std::time::Duration;

use common::{
    MailEnv, TestUser, eventually,
    ws::{Ws, refused},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::{NotifyEvent, Queue, SystemJob};

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
    let notify = m.env.spawn_workers(&[(Queue::Notify, 4)]).await;
    let ann = m.env.create_user("ann").await;
    let ben = m.env.create_user("ben").await;
    m.app.send_friend_request(&ann, &ben).await;

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

    // The same event again. With its dedupe key the queue drops it before any handler
    // runs; without one (a re-delivered job looks like this to the handler) it runs,
    // and the handler's own record of deliveries keeps it to one row and one email.
    let event: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM domain_events WHERE kind = 'friend_request.received'")
            .fetch_one(&m.env.db)
            .await
            .unwrap();
    m.env
        .wait_idle(Queue::Notify, Duration::from_secs(15))
        .await;
    let runs = notify.metrics.starts(Queue::Notify);
    for _ in 0..3 {
        m.env.enqueuer.push(NotifyEvent::new(event)).await.unwrap();
    }
    let again = serde_json::to_value(NotifyEvent::new(event)).unwrap();
    m.env
        .enqueuer
        .push_json(Queue::Notify, vec![(again.clone(), None), (again, None)])
        .await
        .unwrap();
    m.env
        .wait_idle(Queue::Notify, Duration::from_secs(15))
        .await;
    assert_eq!(
        notify.metrics.starts(Queue::Notify) - runs,
        2,
        "the keyed copies are dropped by the queue, the two keyless ones reach the handler"
    );
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
    let (s, b) = m
        .app
        .post_json(
            &format!("/api/social/follow/{}/", ben.id),
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert!(s.is_success(), "the follow is made: {b}");
    m.app.send_friend_request(&ann, &ben).await;
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
            b["data"]["unread_count"].as_i64().unwrap()
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
    let push = |user: &TestUser, body: Value| {
        let token = user.token.clone();
        let app = &m.app;
        async move {
            app.post_json("/api/mobile/push-token/", Some(&token), body)
                .await
        }
    };
    let (s, b) = push(
        &ann,
        json!({"device_id": "", "platform": "nokia", "push_token": ""}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for f in ["device_id", "platform"] {
        assert!(b["errors"][f].is_array(), "{f}: {b}");
    }
    // APNs tokens go into a URL path: hexadecimal only; FCM tokens in their alphabet.
    let tok_a = "a".repeat(64);
    let tok_b = "b".repeat(64);
    for (platform, token) in [
        ("ios", "tok-a".to_owned()),
        ("ios", format!("{}/../../x", "a".repeat(64))),
        ("android", "a b".to_owned()),
        ("web", "x?y".to_owned()),
    ] {
        let (s, b) = push(
            &ann,
            json!({"device_id": "phone-1", "platform": platform, "push_token": token}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{token}");
        assert!(b["errors"]["push_token"].is_array(), "{b}");
    }
    let body = json!({"device_id": "phone-1", "platform": "ios", "push_token": tok_a, "app_version": "1.0"});
    let (s, b) = push(&ann, body).await;
    assert_eq!(s, StatusCode::CREATED, "a new device: {b}");
    let (s, _) = push(
        &ann,
        json!({"device_id": "phone-1", "platform": "ios", "push_token": tok_b, "app_version": "1.1"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "a refresh");
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
    // Knowing ann's install id is not enough to take her notifications.
    let (s, b) = push(
        &eve,
        json!({"device_id": "phone-1", "platform": "ios", "push_token": "c".repeat(64)}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["code"], "device_taken");
    let owner: uuid::Uuid =
        sqlx::query_scalar("SELECT user_id FROM devices WHERE device_id = 'phone-1'")
            .fetch_one(&m.env.db)
            .await
            .unwrap();
    assert_eq!(owner, ann.id);
    // Signed in as eve on the same phone (the install's current token): it moves.
    m.app.register_device(&eve, "phone-1", "ios", &tok_b).await;
    let (_, b) = m
        .app
        .call(Method::GET, "/api/mobile/devices/", Some(&ann.token), None)
        .await;
    assert_eq!(b["data"], json!([]));
    // The same token under a new install id is the same phone: one row, not two.
    m.app.register_device(&eve, "phone-1b", "ios", &tok_b).await;
    let (_, b) = m
        .app
        .call(Method::GET, "/api/mobile/devices/", Some(&eve.token), None)
        .await;
    assert_eq!(b["data"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["data"][0]["device_id"], "phone-1b");
    let (s, _) = m
        .app
        .call(
            Method::DELETE,
            "/api/mobile/devices/phone-1b/",
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
    // An account keeps its 20 most recently refreshed devices.
    for i in 0..22 {
        m.app
            .register_device(&ann, &format!("tab-{i:02}"), "android", &format!("fcm-{i}"))
            .await;
    }
    let (_, b) = m
        .app
        .call(Method::GET, "/api/mobile/devices/", Some(&ann.token), None)
        .await;
    let ids: Vec<&str> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 20, "{ids:?}");
    assert!(
        !ids.contains(&"tab-00") && !ids.contains(&"tab-01"),
        "{ids:?}"
    );
    assert!(ids.contains(&"tab-21"), "{ids:?}");
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
    let boss = m.env.create_admin("boss").await;
    m.app.send_friend_request(&ann, &ben).await;
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
    let (s, b) = m
        .app
        .post_json(
            &format!("/api/notifications/{id}/read/"),
            Some(&ben.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "a second read is answered: {b}");

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
        "four delivery statistics",
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
            // The email worker's own outcome (sent) arrives on its own time: wait for
            // every channel's final word rather than stopping at the first three.
            (rows.len() >= 4).then_some(rows)
        },
    )
    .await;
    let mut rows = rows;
    rows.sort();
    assert_eq!(
        rows,
        [
            ("email".to_owned(), "queued".to_owned(), 1),
            ("email".to_owned(), "sent".to_owned(), 1),
            ("in_app".to_owned(), "delivered".to_owned(), 1),
            ("in_app".to_owned(), "opened".to_owned(), 1),
        ]
    );
}

#[tokio::test]
async fn new_notifications_reach_the_users_sockets_at_once() {
    let m = MailEnv::new().await;
    let _notify = m.env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let node = m.env.spawn_node().await;
    let ann = m.env.create_user("ann").await;
    let ben = m.env.create_user("ben").await;
    assert_eq!(refused(&node, "/ws/notifications/").await.0, 401);
    assert_eq!(
        refused(&node, "/ws/notifications/?token=nonsense").await.0,
        401
    );

    let mut bens = Ws::open(&node, &format!("/ws/notifications/?token={}", ben.token)).await;
    assert_eq!(
        bens.expect("notifications_state").await["data"]["unread_count"],
        0
    );
    let mut anns = Ws::open(&node, &format!("/ws/notifications/?token={}", ann.token)).await;
    anns.expect("notifications_state").await;
    // Ben is also in a party of his own: its socket hears his notifications too.
    let (s, party) = node
        .post_json(
            "/api/parties/",
            Some(&ben.token),
            json!({"title": "Ben's", "external_url": "https://example.com/v.mp4"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{party}");
    let pid = party["data"]["id"].as_str().unwrap().to_owned();
    let (mut in_party, _) = Ws::connect(&node, &pid, &ben.token).await;
    // And on another node (a second device behind the load balancer).
    let node2 = m.env.spawn_node().await;
    let mut bens_elsewhere =
        Ws::open(&node2, &format!("/ws/notifications/?token={}", ben.token)).await;
    bens_elsewhere.expect("notifications_state").await;

    // Frames other than ping are refused by name; ping is answered.
    bens.send_raw("not json").await;
    assert_eq!(bens.expect_error().await, "invalid_json");
    bens.send("chat_message", json!({"message": "hi"})).await;
    assert_eq!(bens.expect_error().await, "unknown_type");
    bens.send("ping", json!({})).await;
    bens.expect("pong").await;

    m.app.send_friend_request(&ann, &ben).await;
    let frame = bens.expect("notification").await;
    let n = &frame["data"];
    assert_eq!(n["kind"], "friend_request.received");
    assert_eq!(n["title"], "New friend request");
    assert_eq!(n["body"], "ann wants to be your friend.");
    assert_eq!(n["is_read"], false);
    assert_eq!(n["actor_id"], ann.id.to_string());
    let party_frame = in_party.expect("notification").await;
    assert_eq!(party_frame["data"]["id"], n["id"]);
    let other_node = bens_elsewhere.expect("notification").await;
    assert_eq!(
        other_node["data"], frame["data"],
        "the same frame on every node"
    );
    // The frame is the list's item.
    let list = notifications(&m, &ben.token, "").await;
    assert_eq!(list["results"][0]["id"], n["id"]);
    assert_eq!(list["results"][0]["link"], n["link"]);
    anns.expect_none("notification", Duration::from_millis(500))
        .await;

    // A new socket starts from the unread count.
    let mut again = Ws::open(&node, &format!("/ws/notifications/?token={}", ben.token)).await;
    assert_eq!(
        again.expect("notifications_state").await["data"]["unread_count"],
        1
    );
}

#[tokio::test]
async fn digests_fold_emails_into_one_after_eight_local_time_and_translations_are_used() {
    let m = MailEnv::new().await;
    // Two system jobs at once: the digest runs below come in pairs, as two scheduler
    // ticks or a re-delivered job would bring them, and must still send one email.
    let _workers = m
        .env
        .spawn_workers(&[(Queue::Notify, 2), (Queue::System, 2)])
        .await;
    let ann = m.env.create_user("ann").await;
    let cat = m.env.create_user("cat").await;
    let ben = m.env.create_user("ben").await;
    let eva = m.env.create_user("eva").await;

    // Bad input names the field; the settings read back.
    let (s, b) = m
        .app
        .call(
            Method::PUT,
            "/api/notifications/settings/",
            Some(&ben.token),
            Some(json!({"email_digest": "hourly"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["email_digest"].is_array(), "{b}");
    let (s, b) = m
        .app
        .call(
            Method::PUT,
            "/api/notifications/settings/",
            Some(&ben.token),
            Some(json!({"email_digest": "daily", "quiet_hours": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["email_digest"], "daily");
    // Eva reads Spanish.
    let (s, b) = m
        .app
        .call(
            Method::PATCH,
            "/api/users/me/",
            Some(&eva.token),
            Some(json!({"locale": "es-MX"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    for (from, to) in [(&ann, &ben), (&cat, &ben), (&ann, &eva)] {
        m.app.send_friend_request(from, to).await;
    }
    // Eva's email comes at once, in Spanish; so does her in-app text.
    let mail = m
        .email(
            "eva@example.com",
            "ann te ha enviado una solicitud de amistad",
        )
        .await;
    assert!(mail.contains("Hola, eva:"), "{mail}");
    assert_eq!(
        notifications(&m, &eva.token, "").await["results"][0]["title"],
        "Nueva solicitud de amistad"
    );
    // Ben's two wait for his digest (in-app as usual).
    eventually(Duration::from_secs(15), "ben's notifications", || async {
        let d = notifications(&m, &ben.token, "").await;
        (d["results"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let run_digests = || async {
        m.env
            .enqueuer
            .push_json(
                Queue::System,
                vec![
                    (serde_json::to_value(SystemJob::SendDigests).unwrap(), None),
                    (serde_json::to_value(SystemJob::SendDigests).unwrap(), None),
                ],
            )
            .await
            .unwrap();
        m.env
            .wait_idle(Queue::System, Duration::from_secs(15))
            .await;
        m.env.wait_idle(Queue::Email, Duration::from_secs(15)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Not due: the digest was turned on just now (the next 08:00 is ahead).
    run_digests().await;
    assert_eq!(
        m.count_to("ben@example.com"),
        0,
        "no email before the digest"
    );
    // Yesterday's digest went out, and today's 08:00 (UTC, his timezone) has passed, or
    // yesterday's has if it is earlier than 08:00 now.
    sqlx::query(
        "UPDATE notification_settings SET last_digest_at = now() - interval '2 days' WHERE user_id = $1",
    )
    .bind(ben.id)
    .execute(&m.env.db)
    .await
    .unwrap();
    run_digests().await;
    let digest = m
        .email(
            "ben@example.com",
            "Your Watch Party digest: 2 new notifications",
        )
        .await;
    assert!(digest.contains("ann wants to be your friend."), "{digest}");
    assert!(digest.contains("cat wants to be your friend."), "{digest}");
    // Once: the job again sends nothing.
    run_digests().await;
    assert_eq!(m.count_to("ben@example.com"), 1);
    let statuses: Vec<String> = sqlx::query_scalar(
        "SELECT status FROM notification_deliveries WHERE user_id = $1 AND channel = 'email'",
    )
    .bind(ben.id)
    .fetch_all(&m.env.db)
    .await
    .unwrap();
    assert_eq!(statuses, ["digested", "digested"]);
}

#[tokio::test]
async fn a_dead_email_job_is_listed_for_admins_and_replayed_once_smtp_is_back() {
    // The SMTP server refuses mail for now (451): the notification email is tried
    // twice, then given up. (A server that cannot be reached at all is an outage,
    // which does not spend attempts: see tests/jobs.rs.)
    let busy = common::smtp::FakeSmtp::busy().await;
    let port = busy.port;
    let env =
        common::TestEnv::with_vars(&[("SMTP_URL", &busy.url()), ("JOB_MAX_ATTEMPTS", "2")]).await;
    let app = env.spawn_api().await;
    let _workers = env
        .spawn_workers(&[(Queue::Notify, 1), (Queue::Email, 1)])
        .await;
    let admin = env.create_admin("boss").await;
    let ann = env.create_user("ann").await;
    let ben = env.create_user("ben").await;
    app.send_friend_request(&ann, &ben).await;
    eventually(Duration::from_secs(30), "the email job dead", || async {
        (env.depth(Queue::Email).await.dead == 1).then_some(())
    })
    .await;

    // Admins only; unknown queues and jobs are 404; bad limits are named.
    let (s, _) = app
        .call(
            Method::GET,
            "/api/admin/queues/email/dead/",
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .call(
            Method::GET,
            "/api/admin/queues/nope/dead/",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app
        .call(
            Method::GET,
            "/api/admin/queues/email/dead/?limit=0",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["limit"].is_array(), "{b}");
    let (s, b) = app
        .call(
            Method::GET,
            "/api/admin/queues/email/dead/",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["count"], 1);
    let dead = &b["data"]["results"][0];
    let email_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM emails WHERE to_address = 'ben@example.com'")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(dead["payload"]["email_id"], email_id.to_string(), "{dead}");
    assert_eq!(dead["attempts"], 2, "{dead}");
    assert!(
        dead["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{dead}"
    );
    let job = dead["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .post_json(
            &format!("/api/admin/queues/email/dead/{job}/replay/"),
            Some(&ann.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // SMTP is back: the replay sends it, once.
    drop(busy);
    let smtp = common::smtp::SmtpServer::start_on(port).await;
    let (s, b) = app
        .post_json(
            &format!("/api/admin/queues/email/dead/{job}/replay/"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (s, _) = app
        .post_json(
            &format!("/api/admin/queues/email/dead/{job}/replay/"),
            Some(&admin.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "replayed already");
    eventually(Duration::from_secs(15), "the replayed email", || async {
        (smtp.messages().len() == 1).then_some(())
    })
    .await;
    env.wait_idle(Queue::Email, Duration::from_secs(10)).await;
    assert_eq!(env.depth(Queue::Email).await.dead, 0);
    let status: String = sqlx::query_scalar("SELECT status FROM emails WHERE id = $1")
        .bind(email_id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_party_invite_notifies_the_invited_with_the_join_link() {
    let m = MailEnv::new().await;
    let _notify = m.env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let ann = m.env.create_user("ann").await;
    let ben = m.env.create_user("ben").await;
    let cat = m.env.create_user("cat").await;
    let (s, party) = m
        .app
        .post_json(
            "/api/parties/",
            Some(&ann.token),
            json!({"title": "Friday film", "external_url": "https://example.com/v.mp4", "visibility": "private"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{party}");
    let pid = party["data"]["id"].as_str().unwrap().to_owned();
    let code = party["data"]["invite_code"].as_str().unwrap().to_owned();
    let invite = |token: String, body: Value| {
        let app = &m.app;
        let path = format!("/api/parties/{pid}/invite/");
        async move { app.post_json(&path, Some(&token), body).await }
    };
    // Bad input names the field; a stranger cannot see a private party.
    let (s, b) = invite(ann.token.clone(), json!({"user_ids": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["user_ids"].is_array(), "{b}");
    let (s, _) = invite(cat.token.clone(), json!({"user_ids": [ben.id]})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Dan blocked Ann: to her he is nobody.
    let dan = m.env.create_user("dan").await;
    let (s, b) = m
        .app
        .post_json(
            "/api/social/blocks/",
            Some(&dan.token),
            json!({"user_id": ann.id}),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    let nobody = uuid::Uuid::now_v7();
    let (s, b) = invite(
        ann.token.clone(),
        json!({"user_ids": [ben.id, nobody, ann.id, ben.id, dan.id]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the result, not a job: {b}");
    assert_eq!(b["data"]["invited"], json!([ben.id]));
    let skipped = b["data"]["skipped"].as_array().unwrap();
    assert!(skipped.contains(&json!({"user_id": nobody, "reason": "unknown_user"})));
    assert!(skipped.contains(&json!({"user_id": ann.id, "reason": "self"})));
    assert!(skipped.contains(&json!({"user_id": dan.id, "reason": "unknown_user"})));
    // Not twice within the hour.
    let (_, b) = invite(ann.token.clone(), json!({"user_ids": [ben.id]})).await;
    assert_eq!(
        b["data"]["skipped"],
        json!([{"user_id": ben.id, "reason": "already_invited"}])
    );

    let list = eventually(Duration::from_secs(15), "ben's invite", || async {
        let d = notifications(&m, &ben.token, "").await;
        (d["results"].as_array()?.len() == 1).then_some(d)
    })
    .await;
    let n = &list["results"][0];
    assert_eq!(n["kind"], "party.invite");
    assert_eq!(
        n["body"],
        "ann invited you to watch \"Friday film\" together."
    );
    assert_eq!(n["link"], format!("/parties/join/{code}"));
    let mail = m
        .email("ben@example.com", "ann invited you to a watch party")
        .await;
    assert!(mail.contains(&format!("/parties/join/{code}")), "{mail}");
    // The link's code lets Ben in; a member who is not a co-host cannot invite.
    let (s, b) = m
        .app
        .post_json(
            "/api/parties/join-by-code/",
            Some(&ben.token),
            json!({"code": code}),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, _) = invite(ben.token.clone(), json!({"user_ids": [cat.id]})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, b) = invite(ann.token.clone(), json!({"user_ids": [ben.id]})).await;
    assert_eq!(
        b["data"]["skipped"],
        json!([{"user_id": ben.id, "reason": "already_member"}])
    );
}

#[tokio::test]
async fn a_party_announcement_reaches_every_member_in_pages_once() {
    // Pages of two: five members are three pages.
    let env = common::TestEnv::with_vars(&[("NOTIFY_PAGE_SIZE", "2")]).await;
    let app = env.spawn_api().await;
    let _notify = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let host = env.create_user("host").await;
    let outsider = env.create_user("outsider").await;
    let (s, party) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Marathon", "external_url": "https://example.com/v.mp4", "visibility": "public"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{party}");
    let pid = party["data"]["id"].as_str().unwrap().to_owned();
    let mut members = Vec::new();
    for i in 0..5 {
        let u = env.create_user(&format!("member{i}")).await;
        let (s, b) = app
            .post_json(
                &format!("/api/parties/{pid}/join/"),
                Some(&u.token),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        members.push(u);
    }
    let announce = |token: String, body: Value| {
        let app = &app;
        let path = format!("/api/parties/{pid}/announce/");
        async move { app.post_json(&path, Some(&token), body).await }
    };
    let (s, b) = announce(host.token.clone(), json!({"message": "  "})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["message"].is_array(), "{b}");
    let (s, _) = announce(members[0].token.clone(), json!({"message": "hi"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "members are not co-hosts");
    // The last member blocked the host: the announcement skips them.
    let (s, b) = app
        .post_json(
            "/api/social/blocks/",
            Some(&members[4].token),
            json!({"user_id": host.id}),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = announce(host.token.clone(), json!({"message": "Starting in 5!"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["audience"], 4);
    let event: uuid::Uuid = b["data"]["id"].as_str().unwrap().parse().unwrap();
    let (s, _) = announce(host.token.clone(), json!({"message": "again"})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "one a minute");

    let count = |sql: &'static str| {
        let db = env.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(event)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    eventually(Duration::from_secs(15), "four notifications", || async {
        (count("SELECT count(*) FROM notifications WHERE event_id = $1").await == 4).then_some(())
    })
    .await;
    for m in &members[..4] {
        let (_, b) = app
            .call(Method::GET, "/api/notifications/", Some(&m.token), None)
            .await;
        let n = &b["data"]["results"][0];
        assert_eq!(n["kind"], "party.announcement");
        assert_eq!(n["title"], "Marathon");
        assert_eq!(n["body"], "host: Starting in 5!");
        assert_eq!(n["link"], format!("/parties/{pid}"));
    }
    for u in [&host, &outsider, &members[4]] {
        let (_, b) = app
            .call(Method::GET, "/api/notifications/", Some(&u.token), None)
            .await;
        assert_eq!(b["data"]["results"], json!([]), "{}", u.username);
    }
    // The event again (no dedupe key, so it runs): nothing new.
    env.enqueuer
        .push_json(
            Queue::Notify,
            vec![(serde_json::to_value(NotifyEvent::new(event)).unwrap(), None)],
        )
        .await
        .unwrap();
    env.wait_idle(Queue::Notify, Duration::from_secs(15)).await;
    assert_eq!(
        count("SELECT count(*) FROM notifications WHERE event_id = $1").await,
        4
    );
}

#[tokio::test]
async fn a_security_alert_is_always_in_the_list_and_cannot_be_turned_off() {
    let m = MailEnv::new().await;
    let _notify = m.env.spawn_workers(&[(Queue::Notify, 1)]).await;
    let ann = m.env.create_user("ann").await;
    // Not even by asking.
    let (s, b) = m
        .app
        .call(
            Method::PUT,
            "/api/notifications/preferences/",
            Some(&ann.token),
            Some(
                json!([{"kind": "security.alert", "in_app": false, "email": false, "push": false}]),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // Its email is the account flow's own: the pipeline never sends a second one.
    let (s, b) = m
        .app
        .call(
            Method::PUT,
            "/api/notifications/preferences/",
            Some(&ann.token),
            Some(json!([{"kind": "security.alert", "in_app": true, "email": true, "push": true}])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let alert = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "security.alert")
        .unwrap()
        .clone();
    assert_eq!(alert["email"], false, "{alert}");
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/password/change/",
            Some(&ann.token),
            json!({"current_password": common::STRONG_PASSWORD, "new_password": "amber-lantern-orchard-58"}),
        )
        .await;
    assert!(s.is_success(), "{s} {b}");
    // The email at once, as before; and the in-app notification.
    m.email("ann@example.com", "Security alert").await;
    let list = eventually(Duration::from_secs(15), "the alert in the list", || async {
        let d = notifications(&m, &ann.token, "?kind=security.alert").await;
        (d["results"].as_array()?.len() == 1).then_some(d)
    })
    .await;
    let n = &list["results"][0];
    assert_eq!(n["title"], "Security alert");
    assert_eq!(
        n["body"],
        "The password of your Watch Party account was changed."
    );
    assert_eq!(n["link"], "/settings/security");
    // The notification pipeline sent no second email.
    m.env
        .wait_idle(Queue::Notify, Duration::from_secs(10))
        .await;
    m.env.wait_idle(Queue::Email, Duration::from_secs(10)).await;
    assert_eq!(m.count_to("ann@example.com"), 1);
}
