//! The social graph through the public API.

mod common;

use common::TestEnv;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

struct User {
    id: String,
    token: String,
}

async fn user(app: &common::TestApp, name: &str) -> User {
    let d = app.register(name).await;
    User {
        id: d["user"]["id"].as_str().unwrap().to_owned(),
        token: d["access_token"].as_str().unwrap().to_owned(),
    }
}

async fn events(env: &TestEnv, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM domain_events WHERE kind = $1")
        .bind(kind)
        .fetch_one(&env.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn friend_requests_from_sending_to_friendship_and_back() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let (ann, ben, cat) = (
        user(&app, "ann").await,
        user(&app, "ben").await,
        user(&app, "cat").await,
    );

    let (s, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ann.token),
            json!({"user_id": ben.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["status"], "pending");
    assert_eq!(b["data"]["to_user"]["username"], "ben");
    let req = b["data"]["id"].as_str().unwrap().to_owned();
    // The recipient hears of it: a domain event, handed to the notify queue.
    assert_eq!(events(&env, "friend_request.received").await, 1);
    let d = env.depth(Queue::Notify).await;
    assert_eq!(d.active + d.scheduled, 1, "{d:?}");

    let (s, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ann.token),
            json!({"user_id": ben.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["code"], "request_pending");
    let (s, _) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ann.token),
            json!({"user_id": ann.id}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ann.token),
            json!({"user_id": uuid::Uuid::nil()}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Lists.
    let (_, b) = app
        .call(
            Method::GET,
            "/api/social/friend-requests/",
            Some(&ben.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["count"], 1);
    let (_, b) = app
        .call(
            Method::GET,
            "/api/social/friend-requests/?direction=outgoing",
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["results"][0]["id"], req.as_str());
    let (s, _) = app
        .call(
            Method::GET,
            "/api/social/friend-requests/?direction=sideways",
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Only the recipient may accept; the sender and a stranger get 404.
    let accept = format!("/api/social/friend-requests/{req}/accept/");
    for t in [&ann.token, &cat.token] {
        let (s, _) = app.post_json(&accept, Some(t), json!({})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, b) = app.post_json(&accept, Some(&ben.token), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["status"], "accepted");
    assert_eq!(events(&env, "friend_request.accepted").await, 1);
    let (s, _) = app.post_json(&accept, Some(&ben.token), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    for t in [&ann.token, &ben.token] {
        let (_, b) = app
            .call(Method::GET, "/api/social/friends/", Some(t), None)
            .await;
        assert_eq!(b["data"]["count"], 1, "{b}");
    }
    let (s, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&ben.token),
            json!({"user_id": ann.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["code"], "already_friends");

    // Unfriend.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/social/friends/{}/", ben.id),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, b) = app
        .call(Method::GET, "/api/social/friends/", Some(&ben.token), None)
        .await;
    assert_eq!(b["data"]["count"], 0);
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/social/friends/{}/", ben.id),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn crossing_requests_become_a_friendship_and_decline_cancel_work() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let (dan, eve, fay) = (
        user(&app, "dan").await,
        user(&app, "eve").await,
        user(&app, "fay").await,
    );
    app.post_json(
        "/api/social/friend-requests/",
        Some(&dan.token),
        json!({"user_id": eve.id}),
    )
    .await;
    let (s, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&eve.token),
            json!({"user_id": dan.id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["status"], "accepted");

    let (_, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&dan.token),
            json!({"user_id": fay.id}),
        )
        .await;
    let r1 = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .post_json(
            &format!("/api/social/friend-requests/{r1}/cancel/"),
            Some(&fay.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "only the sender cancels");
    let (s, b) = app
        .post_json(
            &format!("/api/social/friend-requests/{r1}/decline/"),
            Some(&fay.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, b["data"]["status"].as_str()),
        (StatusCode::OK, Some("declined"))
    );
    let (_, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&dan.token),
            json!({"user_id": fay.id}),
        )
        .await;
    let r2 = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = app
        .post_json(
            &format!("/api/social/friend-requests/{r2}/cancel/"),
            Some(&dan.token),
            json!({}),
        )
        .await;
    assert_eq!(
        (s, b["data"]["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (s, _) = app
        .post_json(
            "/api/social/friend-requests/not-an-id/accept/",
            Some(&dan.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn follows_and_their_lists() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let (gus, hal) = (user(&app, "gus").await, user(&app, "hal").await);
    let path = format!("/api/social/follow/{}/", hal.id);
    let (s, b) = app.post_json(&path, Some(&gus.token), json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app.post_json(&path, Some(&gus.token), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(events(&env, "follow.new").await, 1);
    let (_, b) = app
        .call(
            Method::GET,
            "/api/social/followers/",
            Some(&hal.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["results"][0]["user"]["username"], "gus");
    let (_, b) = app
        .call(
            Method::GET,
            "/api/social/following/",
            Some(&gus.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["count"], 1);
    let (_, b) = app
        .call(
            Method::GET,
            "/api/social/following/",
            Some(&hal.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["count"], 0);
    let (s, _) = app
        .call(Method::DELETE, &path, Some(&gus.token), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(Method::DELETE, &path, Some(&gus.token), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_block_cuts_every_tie_and_keeps_the_blocked_user_out() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let (ida, jon) = (user(&app, "ida").await, user(&app, "jon").await);
    // Friends who follow each other.
    let (_, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&jon.token),
            json!({"user_id": ida.id}),
        )
        .await;
    let req = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = app
        .post_json(
            &format!("/api/social/friend-requests/{req}/accept/"),
            Some(&ida.token),
            json!({}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    for (who, whom) in [(&jon, &ida), (&ida, &jon)] {
        let (s, b) = app
            .post_json(
                &format!("/api/social/follow/{}/", whom.id),
                Some(&who.token),
                json!({}),
            )
            .await;
        assert!(s.is_success(), "{b}");
    }
    // The ties the block must cut are there first.
    let counts = |list: &'static str, token: String| {
        let app = &app;
        async move {
            let (_, b) = app
                .call(
                    Method::GET,
                    &format!("/api/social/{list}/"),
                    Some(&token),
                    None,
                )
                .await;
            b["data"]["count"].clone()
        }
    };
    for list in ["friends", "followers"] {
        for t in [&ida.token, &jon.token] {
            assert_eq!(counts(list, t.clone()).await, 1, "{list} before the block");
        }
    }

    let (s, b) = app
        .post_json(
            "/api/social/blocks/",
            Some(&ida.token),
            json!({"user_id": jon.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app
        .post_json(
            "/api/social/blocks/",
            Some(&ida.token),
            json!({"user_id": jon.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    for list in ["friends", "followers"] {
        for t in [&ida.token, &jon.token] {
            assert_eq!(counts(list, t.clone()).await, 0, "{list} after the block");
        }
    }
    // Jon can no longer ask, follow, or see Ida's profile: to him her account answers
    // as if it did not exist. Ida, who blocked, is told to unblock first. Ida sees her
    // block list.
    let (s, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&jon.token),
            json!({"user_id": ida.id}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (s, _) = app
        .post_json(
            &format!("/api/social/follow/{}/", ida.id),
            Some(&jon.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for (path, body) in [
        (
            "/api/social/friend-requests/".to_owned(),
            json!({"user_id": jon.id}),
        ),
        (format!("/api/social/follow/{}/", jon.id), json!({})),
    ] {
        let (s, b) = app.post_json(&path, Some(&ida.token), body).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("blocked")),
            "{path}: {b}"
        );
    }
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/users/{}/", ida.id),
            Some(&jon.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/users/{}/", jon.id),
            Some(&ida.token),
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "the blocker still sees the blocked profile"
    );
    let (_, b): (_, Value) = app
        .call(Method::GET, "/api/social/blocks/", Some(&ida.token), None)
        .await;
    assert_eq!(b["data"]["results"][0]["user"]["username"], "jon");
    // Jon cannot lift Ida's block; Ida can.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/social/blocks/{}/", ida.id),
            Some(&jon.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/social/blocks/{}/", jon.id),
            Some(&ida.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&jon.token),
            json!({"user_id": ida.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

/// Notification spam (issue 13, item 5): asking, cancelling and asking again within a
/// day tells the other once; friend requests and comments have per-user limits (429
/// with `Retry-After`); and a block silences what the blocked user's acts would tell
/// the blocker (a reply, a mention), while someone else's still arrive.
#[tokio::test]
async fn repeated_requests_limits_and_blocks_keep_notifications_quiet() {
    let env = TestEnv::with_vars(&[("COMMENTS_PER_MINUTE", "3")]).await;
    let app = env.spawn_api().await;
    let workers = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let ann = env.create_user("ann").await;
    let ben = env.create_user("ben").await;
    let cal = env.create_user("cal").await;
    for _ in 0..3 {
        let (s, b) = app
            .post_json(
                "/api/social/friend-requests/",
                Some(&ann.token),
                json!({"user_id": ben.id}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let id = b["data"]["id"].as_str().unwrap().to_owned();
        let (s, _) = app
            .post_json(
                &format!("/api/social/friend-requests/{id}/cancel/"),
                Some(&ann.token),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(
        events(&env, "friend_request.received").await,
        1,
        "told once"
    );

    // A video of cal's with a comment of ann's; ann blocks ben.
    let video = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO videos (id, owner_id, title, storage_key, original_filename, container,
                             content_type, size_bytes, sha256, status)
         VALUES ($1, $2, 'Talk', 'videos/x', 'x.mp4', 'mp4', 'video/mp4', 1, '', 'ready')",
    )
    .bind(video)
    .bind(cal.id)
    .execute(&env.db)
    .await
    .unwrap();
    let comments = format!("/api/videos/{video}/comments/");
    let (s, b) = app
        .post_json(&comments, Some(&ann.token), json!({"content": "first"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let top = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, _) = app
        .post_json(
            "/api/social/blocks/",
            Some(&ann.token),
            json!({"user_id": ben.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Each writes a reply to ann and a comment that mentions her.
    for u in [&ben, &cal] {
        let (s, b) = app
            .post_json(
                &comments,
                Some(&u.token),
                json!({"content": "a reply", "parent": top}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, b) = app
            .post_json(&comments, Some(&u.token), json!({"content": "hey @ann"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let kinds = || async {
        let (_, b) = app
            .call(
                Method::GET,
                "/api/notifications/?page_size=100",
                Some(&ann.token),
                None,
            )
            .await;
        b["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["kind"].as_str().unwrap().to_owned(),
                    n["actor_id"].as_str().map(str::to_owned),
                )
            })
            .collect::<Vec<_>>()
    };
    common::eventually(
        std::time::Duration::from_secs(10),
        "cal's reply and mention",
        || async {
            let k = kinds().await;
            (k.iter()
                .filter(|(_, a)| *a == Some(cal.id.to_string()))
                .count()
                == 2)
                .then_some(())
        },
    )
    .await;
    env.wait_idle(Queue::Notify, std::time::Duration::from_secs(10))
        .await;
    let from_ben: Vec<_> = kinds()
        .await
        .into_iter()
        .filter(|(_, a)| *a == Some(ben.id.to_string()))
        .collect();
    assert!(from_ben.is_empty(), "ben is blocked: {from_ben:?}");

    // Cal has posted 2 comments; 1 more is allowed this minute, then 429.
    let (s, _) = app
        .post_json(&comments, Some(&cal.token), json!({"content": "more"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let res = app
        .client
        .post(app.url(&comments))
        .bearer_auth(&cal.token)
        .json(&json!({"content": "too many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    workers.shutdown().await;
}
