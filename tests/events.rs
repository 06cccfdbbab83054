//! Scheduled events (seed item 5) against the real services: who sees and edits an
//! event, RSVPs with places, the waitlist and approval, invitations, the lists, the
//! calendar file, places exact under concurrent joins, status moves with a controlled
//! clock (once), and the notifications each step sends.

mod common;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use common::{TestApp, TestEnv, TestUser, eventually, ws::Ws};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

fn at(from_now: TimeDelta) -> String {
    (Utc::now() + from_now).to_rfc3339()
}

async fn create_event(app: &TestApp, u: &TestUser, extra: Value) -> String {
    let mut body = json!({"title": "Movie night", "start_time": at(TimeDelta::hours(2)),
                          "end_time": at(TimeDelta::hours(4)), "timezone": "Europe/Madrid"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, b) = app.post_json("/api/events/", Some(&u.token), body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["data"]["id"].as_str().unwrap().to_owned()
}

async fn call(
    app: &TestApp,
    u: &TestUser,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(m, path, Some(&u.token), body).await
}

async fn join(app: &TestApp, u: &TestUser, id: &str) -> String {
    let (s, b) = call(
        app,
        u,
        Method::POST,
        &format!("/api/events/{id}/join/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["data"]["status"].as_str().unwrap().to_owned()
}

async fn kinds(app: &TestApp, u: &TestUser) -> Vec<String> {
    let (_, b) = call(
        app,
        u,
        Method::GET,
        "/api/notifications/?page_size=100",
        None,
    )
    .await;
    b["data"]["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn expect_notified(app: &TestApp, u: &TestUser, kind: &str, n: usize) {
    let got = eventually(Duration::from_secs(10), kind, || async {
        let c = kinds(app, u)
            .await
            .iter()
            .filter(|k| k.as_str() == kind)
            .count();
        (c >= n).then_some(c)
    })
    .await;
    assert_eq!(got, n, "{} {kind}", u.username);
}

#[tokio::test]
async fn events_with_visibility_places_waitlist_approval_invitations_and_lists() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let workers = env
        .spawn_workers(&[(Queue::Notify, 4), (Queue::Email, 2), (Queue::Search, 1)])
        .await;
    let org = &env.create_user("org").await;
    let users: Vec<TestUser> = futures::future::join_all(
        ["ann", "bob", "cat", "dan", "eve", "fay"].map(|n| env.create_user(n)),
    )
    .await;
    let [ann, bob, cat, dan, eve, fay] = &users[..] else {
        unreachable!()
    };

    // Bad bodies name the field.
    for (body, field) in [
        (
            json!({"start_time": at(TimeDelta::hours(1)), "end_time": at(TimeDelta::hours(2))}),
            "title",
        ),
        (
            json!({"title": "x", "start_time": at(-TimeDelta::hours(1)), "end_time": at(TimeDelta::hours(2))}),
            "start_time",
        ),
        (
            json!({"title": "x", "start_time": at(TimeDelta::hours(2)), "end_time": at(TimeDelta::hours(1))}),
            "end_time",
        ),
        (
            json!({"title": "x", "start_time": at(TimeDelta::hours(1)), "end_time": at(TimeDelta::hours(2)), "timezone": "Nowhere/City"}),
            "timezone",
        ),
        (
            json!({"title": "x", "start_time": at(TimeDelta::hours(1)), "end_time": at(TimeDelta::hours(2)), "max_attendees": 0}),
            "max_attendees",
        ),
        (
            json!({"title": "x", "start_time": at(TimeDelta::hours(1)), "end_time": at(TimeDelta::hours(2)), "video_id": uuid::Uuid::now_v7()}),
            "video_id",
        ),
        (
            json!({"title": "x", "start_time": "tomorrow", "end_time": at(TimeDelta::hours(2))}),
            "start_time",
        ),
    ] {
        let (s, b) = app
            .post_json("/api/events/", Some(&org.token), body.clone())
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }

    // Places: two, then the waitlist in order; a place freed goes to the first in line.
    let id = create_event(&app, org, json!({"max_attendees": 2, "location": "Online"})).await;
    let (s, b) = call(&app, ann, Method::GET, &format!("/api/events/{id}/"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["organizer"]["username"], "org");
    assert_eq!(b["data"]["status"], "scheduled");
    assert_eq!(b["data"]["timezone"], "Europe/Madrid");
    assert_eq!(join(&app, ann, &id).await, "going");
    assert_eq!(join(&app, bob, &id).await, "going");
    assert_eq!(join(&app, cat, &id).await, "waitlisted");
    assert_eq!(join(&app, dan, &id).await, "waitlisted");
    assert_eq!(
        join(&app, cat, &id).await,
        "waitlisted",
        "asking again keeps the place in line"
    );
    let (s, _) = call(
        &app,
        ann,
        Method::POST,
        &format!("/api/events/{id}/leave/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = call(
        &app,
        bob,
        Method::POST,
        &format!("/api/events/{id}/rsvp/"),
        Some(json!({"status": "maybe"})),
    )
    .await;
    assert_eq!(
        (s, b["data"]["status"].clone()),
        (StatusCode::OK, json!("maybe")),
        "{b}"
    );
    let (_, b) = call(&app, org, Method::GET, &format!("/api/events/{id}/"), None).await;
    assert_eq!(b["data"]["attendee_count"], 2);
    assert_eq!(b["data"]["maybe_count"], 1);
    assert_eq!(b["data"]["waitlist_count"], 0);
    let (_, b) = call(
        &app,
        eve,
        Method::GET,
        &format!("/api/events/{id}/attendees/"),
        None,
    )
    .await;
    let listed: Vec<(&str, &str)> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["user"]["username"].as_str().unwrap(),
                a["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![("cat", "going"), ("dan", "going"), ("bob", "maybe")]
    );
    let (s, b) = call(
        &app,
        bob,
        Method::POST,
        &format!("/api/events/{id}/rsvp/"),
        Some(json!({"status": "pending"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _) = call(
        &app,
        eve,
        Method::POST,
        &format!("/api/events/{id}/leave/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "eve never answered");
    expect_notified(&app, cat, "event.promoted", 1).await;
    expect_notified(&app, dan, "event.promoted", 1).await;

    // Only the organizer edits (403 before the body is read); moving it tells the
    // attendees; raising the cap lets the waitlist in.
    let (s, _) = call(
        &app,
        ann,
        Method::PUT,
        &format!("/api/events/{id}/"),
        Some(json!({"title": 5})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &app,
        org,
        Method::PUT,
        &format!("/api/events/{id}/"),
        Some(json!({"start_time": at(TimeDelta::hours(3)), "end_time": at(TimeDelta::hours(5))})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["title"], "Movie night", "absent fields stay");
    assert_eq!(b["data"]["max_attendees"], 2);
    for u in [cat, dan, bob] {
        expect_notified(&app, u, "event.updated", 1).await;
    }

    // Approval: a join waits as pending and the organizer hears of it; the organizer
    // approves or rejects; an invited user needs no approval.
    let gated = create_event(
        &app,
        org,
        json!({"require_approval": true, "title": "Premiere"}),
    )
    .await;
    assert_eq!(join(&app, eve, &gated).await, "pending");
    assert_eq!(join(&app, fay, &gated).await, "pending");
    expect_notified(&app, org, "event.join_request", 2).await;
    let approve =
        |u: &TestUser, verb: &str| format!("/api/events/{gated}/attendees/{}/{verb}/", u.id);
    let (s, _) = call(&app, eve, Method::POST, &approve(eve, "approve"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&app, org, Method::POST, &approve(eve, "approve"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, org, Method::POST, &approve(fay, "reject"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, org, Method::POST, &approve(fay, "approve"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "decided once");
    expect_notified(&app, eve, "event.approved", 1).await;
    let (_, b) = call(
        &app,
        org,
        Method::GET,
        &format!("/api/events/{gated}/attendees/?status=declined"),
        None,
    )
    .await;
    assert_eq!(b["data"]["results"][0]["user"]["username"], "fay");
    let (s, _) = call(
        &app,
        eve,
        Method::GET,
        &format!("/api/events/{gated}/attendees/?status=pending"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A private event: unseen but by the organizer, those who answered or were invited.
    let private = create_event(
        &app,
        org,
        json!({"is_public": false, "require_approval": true, "title": "Secret screening"}),
    )
    .await;
    let (s, _) = call(
        &app,
        ann,
        Method::GET,
        &format!("/api/events/{private}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &app,
        ann,
        Method::POST,
        &format!("/api/events/{private}/join/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &app,
        ann,
        Method::POST,
        &format!("/api/events/{private}/invite/"),
        Some(json!({"user_ids": [bob.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = call(
        &app,
        org,
        Method::POST,
        &format!("/api/events/{private}/invite/"),
        Some(json!({"user_ids": [uuid::Uuid::now_v7()]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["user_ids"].is_array());
    for _ in 0..2 {
        let (s, b) = call(
            &app,
            org,
            Method::POST,
            &format!("/api/events/{private}/invite/"),
            Some(json!({"user_ids": [ann.id]})),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    let (s, b) = call(
        &app,
        ann,
        Method::GET,
        &format!("/api/events/{private}/"),
        None,
    )
    .await;
    assert_eq!(
        (s, b["data"]["invited"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_eq!(
        join(&app, ann, &private).await,
        "going",
        "an invitation skips approval"
    );
    expect_notified(&app, ann, "event.invite", 1).await;
    // A user the organizer blocked sees none of the organizer's events.
    let (s, _) = app
        .post_json(
            "/api/social/blocks/",
            Some(&org.token),
            json!({"user_id": fay.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = call(&app, fay, Method::GET, &format!("/api/events/{id}/"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Lists: upcoming (soonest first), mine, search.
    let (_, b) = call(&app, ann, Method::GET, "/api/events/upcoming/", None).await;
    let titles: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["Premiere", "Secret screening", "Movie night"]);
    let (_, b) = call(&app, ann, Method::GET, "/api/events/my/", None).await;
    assert_eq!(
        b["data"]["count"], 1,
        "ann left the movie night and is going to the screening"
    );
    // Searched by the search engine: what the worker folded into the index.
    eventually(Duration::from_secs(10), "the events indexed", || async {
        let (_, b) = call(&app, bob, Method::GET, "/api/events/search/?q=online", None).await;
        (b["data"]["count"] == 1).then_some(())
    })
    .await;
    let (_, b) = call(&app, bob, Method::GET, "/api/events/search/?q=online", None).await;
    assert_eq!(
        b["data"]["results"].as_array().unwrap().len(),
        1,
        "the location is searched"
    );
    let (_, b) = call(&app, bob, Method::GET, "/api/events/search/?q=secret", None).await;
    assert_eq!(b["data"]["count"], 0, "bob cannot see the private one");
    let (_, b) = call(&app, org, Method::GET, "/api/events/search/?q=secret", None).await;
    assert_eq!(b["data"]["count"], 1, "its organizer can");
    let (s, b) = call(&app, bob, Method::GET, "/api/events/search/", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["q"].is_array());
    let (s, b) = call(&app, bob, Method::GET, "/api/events/?status=soon", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["status"].is_array());

    // The calendar file.
    let res = app
        .client
        .get(app.url(&format!("/api/events/{id}/calendar.ics")))
        .bearer_auth(&cat.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/calendar")
    );
    let text = res.text().await.unwrap();
    assert!(text.contains("SUMMARY:Movie night\r\n"), "{text}");
    assert!(text.contains(&format!("UID:{id}@watch-party")));
    let res = app
        .client
        .get(app.url(&format!("/api/events/{private}/calendar.ics")))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Cancelling tells the attendees; answers are closed.
    let (s, _) = call(
        &app,
        cat,
        Method::DELETE,
        &format!("/api/events/{id}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &app,
        org,
        Method::DELETE,
        &format!("/api/events/{id}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = call(
        &app,
        eve,
        Method::POST,
        &format!("/api/events/{id}/join/"),
        None,
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("event_over"))
    );
    for u in [cat, dan, bob] {
        expect_notified(&app, u, "event.cancelled", 1).await;
    }
    let (_, b) = call(&app, cat, Method::GET, &format!("/api/events/{id}/"), None).await;
    assert_eq!(b["data"]["status"], "cancelled");
    workers.shutdown().await;
}

/// 40 users take 10 places at once, then 5 of those going leave at once: the places
/// are never over-filled and the waitlist moves up in the order it asked.
#[tokio::test]
async fn places_are_exact_under_concurrent_joins_and_leaves() {
    let env = TestEnv::new().await;
    let app = Arc::new(env.spawn_api().await);
    let org = env.create_user("org").await;
    let id = create_event(&app, &org, json!({"max_attendees": 10})).await;
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(env.create_user(&format!("fan{i}")).await);
    }
    let answers: Vec<String> = futures::stream::iter(users.iter())
        .map(|u| {
            let (app, id) = (app.clone(), id.clone());
            async move { join(&app, u, &id).await }
        })
        .buffer_unordered(40)
        .collect()
        .await;
    assert_eq!(answers.iter().filter(|a| *a == "going").count(), 10);
    assert_eq!(answers.iter().filter(|a| *a == "waitlisted").count(), 30);
    let going: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM event_attendees WHERE event_id = $1::uuid AND status = 'going'",
    )
    .bind(&id)
    .fetch_all(&env.db)
    .await
    .unwrap();
    let first_in_line: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM event_attendees WHERE event_id = $1::uuid AND status = 'waitlisted'
          ORDER BY responded_at, user_id LIMIT 5",
    )
    .bind(&id)
    .fetch_all(&env.db)
    .await
    .unwrap();
    let leavers: Vec<&TestUser> = users
        .iter()
        .filter(|u| going.contains(&u.id))
        .take(5)
        .collect();
    futures::stream::iter(leavers)
        .map(|u| {
            let (app, id) = (app.clone(), id.clone());
            async move {
                let (s, _) = call(
                    &app,
                    u,
                    Method::POST,
                    &format!("/api/events/{id}/leave/"),
                    None,
                )
                .await;
                assert_eq!(s, StatusCode::NO_CONTENT);
            }
        })
        .buffer_unordered(5)
        .collect::<Vec<()>>()
        .await;
    let (going_now, waiting): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'going'), count(*) FILTER (WHERE status = 'waitlisted')
           FROM event_attendees WHERE event_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!((going_now, waiting), (10, 25));
    let promoted: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM event_attendees WHERE event_id = $1::uuid AND status = 'going'
           AND user_id = ANY($2)",
    )
    .bind(&id)
    .bind(&first_in_line)
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert_eq!(promoted.len(), 5, "the first five in line got the places");
}

/// The scheduler's move, with the clock set: an event goes live at its start and ends
/// at its end, each once (two sweeps at once move it once), its attendees hear that it
/// starts, and answers close when it ends.
#[tokio::test]
async fn events_go_live_and_end_on_time_once() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let workers = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let org = env.create_user("org").await;
    let ann = env.create_user("ann").await;
    let id = create_event(&app, &org, json!({})).await;
    join(&app, &ann, &id).await;
    let (_, b) = call(&app, &ann, Method::GET, &format!("/api/events/{id}/"), None).await;
    let start: DateTime<Utc> = b["data"]["start_time"].as_str().unwrap().parse().unwrap();
    let end: DateTime<Utc> = b["data"]["end_time"].as_str().unwrap().parse().unwrap();
    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());

    let before = wp_workers::system::advance_events(&ctx, start - TimeDelta::seconds(1))
        .await
        .unwrap();
    assert!(before.live.is_empty());
    let at_start = start + TimeDelta::seconds(1);
    let (x, y) = tokio::join!(
        wp_workers::system::advance_events(&ctx, at_start),
        wp_workers::system::advance_events(&ctx, at_start)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.live.len() + y.live.len(), 1, "live once");
    let (_, b) = call(&app, &ann, Method::GET, &format!("/api/events/{id}/"), None).await;
    assert_eq!(b["data"]["status"], "live");
    expect_notified(&app, &ann, "event.starting", 1).await;
    let (s, b) = call(
        &app,
        &org,
        Method::PUT,
        &format!("/api/events/{id}/"),
        Some(json!({"title": "Later"})),
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("event_started"))
    );

    let after = wp_workers::system::advance_events(&ctx, end + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(after.ended.len(), 1);
    assert!(
        wp_workers::system::advance_events(&ctx, end + TimeDelta::seconds(2))
            .await
            .unwrap()
            .ended
            .is_empty()
    );
    let (_, b) = call(&app, &ann, Method::GET, &format!("/api/events/{id}/"), None).await;
    assert_eq!(b["data"]["status"], "ended");
    let (s, b) = call(
        &app,
        &ann,
        Method::POST,
        &format!("/api/events/{id}/rsvp/"),
        Some(json!({"status": "maybe"})),
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("event_over"))
    );
    let (_, b) = call(&app, &ann, Method::GET, "/api/events/upcoming/", None).await;
    assert_eq!(b["data"]["count"], 0);
    workers.shutdown().await;
}

/// An event with a video opens its party when it goes live: the organizer hosts, the
/// people going are members (and whoever goes later joins it), the starting notice links
/// the party; when the event ends, the party ends and its sockets close.
#[tokio::test]
async fn an_event_with_a_video_opens_its_party_and_closes_it_at_the_end() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let workers = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let org = env.create_user("org").await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let id = create_event(
        &app,
        &org,
        json!({"video_url": "https://example.com/film.mp4"}),
    )
    .await;
    join(&app, &ann, &id).await;
    let (_, b) = call(&app, &ann, Method::GET, &format!("/api/events/{id}/"), None).await;
    let start: DateTime<Utc> = b["data"]["start_time"].as_str().unwrap().parse().unwrap();
    let end: DateTime<Utc> = b["data"]["end_time"].as_str().unwrap().parse().unwrap();
    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());

    let a = wp_workers::system::advance_events(&ctx, start)
        .await
        .unwrap();
    assert_eq!(a.opened_parties.len(), 1);
    let party = a.opened_parties[0].to_string();
    let (_, b) = call(&app, &ann, Method::GET, &format!("/api/events/{id}/"), None).await;
    assert_eq!(b["data"]["party_id"], party.as_str());
    let (s, b) = call(
        &app,
        &ann,
        Method::GET,
        &format!("/api/parties/{party}/participants/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let roles: Vec<(&str, &str)> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["user"]["username"].as_str().unwrap(),
                p["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(roles, vec![("org", "host"), ("ann", "member")]);
    let (_, b) = call(
        &app,
        &ann,
        Method::GET,
        &format!("/api/parties/{party}/"),
        None,
    )
    .await;
    assert_eq!(b["data"]["video"]["url"], "https://example.com/film.mp4");
    // Whoever goes now joins the party too.
    assert_eq!(join(&app, &bob, &id).await, "going");
    let (s, _) = call(
        &app,
        &bob,
        Method::GET,
        &format!("/api/parties/{party}/messages/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "bob is a member");
    // The starting notice links the party.
    let link = eventually(Duration::from_secs(10), "the starting notice", || async {
        let (_, b) = call(
            &app,
            &ann,
            Method::GET,
            "/api/notifications/?kind=event.starting",
            None,
        )
        .await;
        b["data"]["results"][0]["link"].as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(link, format!("/parties/{party}"));

    let (mut ws, _) = Ws::connect(&app, &party, &ann.token).await;
    let a = wp_workers::system::advance_events(&ctx, end).await.unwrap();
    assert_eq!(a.ended_parties, vec![party.parse::<uuid::Uuid>().unwrap()]);
    assert_eq!(
        ws.expect("party_ended").await["data"]["code"],
        "party_ended"
    );
    let (s, _) = call(
        &app,
        &ann,
        Method::GET,
        &format!("/api/parties/{party}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the party ended with the event");
    workers.shutdown().await;
}

/// Reminders 24 h and 15 min before the start, once each (two sweeps at once send one),
/// skipped when the event was created after the lead had passed, and sent again for a
/// new time when the event moves.
#[tokio::test]
async fn reminders_go_once_before_the_start_and_follow_a_move() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let workers = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let org = env.create_user("org").await;
    let ann = env.create_user("ann").await;
    let soon = create_event(&app, &org, json!({"title": "Soon"})).await;
    let later = create_event(
        &app,
        &org,
        json!({"title": "Later", "start_time": at(TimeDelta::hours(30)),
                                               "end_time": at(TimeDelta::hours(31))}),
    )
    .await;
    join(&app, &ann, &soon).await;
    join(&app, &ann, &later).await;
    let start_of = |id: &str| {
        let (app, ann, id) = (&app, &ann, id.to_owned());
        async move {
            let (_, b) = call(app, ann, Method::GET, &format!("/api/events/{id}/"), None).await;
            b["data"]["start_time"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
        }
    };
    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());
    let sweep = |now: DateTime<Utc>| {
        let ctx = ctx.clone();
        async move {
            wp_workers::system::advance_events(&ctx, now)
                .await
                .unwrap()
                .reminders
        }
    };

    // "Soon" starts in 2 h: no 24 h reminder (created too late for it), one 15 min.
    let s1 = start_of(&soon).await;
    assert!(sweep(s1 - TimeDelta::minutes(16)).await.is_empty());
    let (x, y) = tokio::join!(
        sweep(s1 - TimeDelta::minutes(14)),
        sweep(s1 - TimeDelta::minutes(14))
    );
    let mut sent: Vec<(uuid::Uuid, i32)> = x.into_iter().chain(y).collect();
    assert_eq!(sent, vec![(soon.parse().unwrap(), 15)], "once");
    assert!(sweep(s1 - TimeDelta::minutes(1)).await.is_empty());

    // "Later" starts in 30 h: its 24 h reminder goes at 24 h before; moved by an hour,
    // the reminder goes again for the new time.
    let s2 = start_of(&later).await;
    sent = sweep(s2 - TimeDelta::hours(24) + TimeDelta::seconds(1)).await;
    assert_eq!(sent, vec![(later.parse().unwrap(), 1440)]);
    let (s, b) = call(&app, &org, Method::PUT, &format!("/api/events/{later}/"),
        Some(json!({"start_time": (s2 + TimeDelta::hours(1)).to_rfc3339(), "end_time": (s2 + TimeDelta::hours(2)).to_rfc3339()}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        sweep(s2 - TimeDelta::hours(24) + TimeDelta::seconds(2))
            .await
            .is_empty(),
        "not yet for the new time"
    );
    sent = sweep(s2 - TimeDelta::hours(23) + TimeDelta::seconds(1)).await;
    assert_eq!(sent, vec![(later.parse().unwrap(), 1440)]);

    // Each reminder reached ann once, in the pipeline (three in all).
    expect_notified(&app, &ann, "event.reminder", 3).await;
    workers.shutdown().await;
}

/// Each user chooses when reminders come (`event_reminders` in the notification
/// settings): a lead goes once, only to those who chose it, worded in their language;
/// nobody who chose none hears any.
#[tokio::test]
async fn reminders_follow_each_users_chosen_leads() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let workers = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let org = env.create_user("org").await;
    let [ann, bob, cat] = ["ann", "bob", "cat"].map(|n| env.create_user(n));
    let (ann, bob, cat) = (ann.await, bob.await, cat.await);
    let put = |u: &TestUser, leads: Value| {
        let token = u.token.clone();
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                "/api/notifications/settings/",
                Some(&token),
                Some(json!({ "event_reminders": leads })),
            )
            .await
        }
    };
    for bad in [
        json!([45]),
        json!([5, 10, 15, 30]),
        json!([15, 15]),
        json!("soon"),
    ] {
        let (s, b) = put(&bob, bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        if bad.is_array() {
            assert!(b["errors"]["event_reminders"].is_array(), "{b}");
        }
    }
    let (s, b) = put(&bob, json!([2880, 60])).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["event_reminders"], json!([2880, 60]));
    assert_eq!(put(&cat, json!([])).await.0, StatusCode::OK);
    let (_, b) = call(
        &app,
        &ann,
        Method::GET,
        "/api/notifications/settings/",
        None,
    )
    .await;
    assert_eq!(
        b["data"]["event_reminders"],
        json!([1440, 15]),
        "the default"
    );

    let id = create_event(
        &app,
        &org,
        json!({"title": "Three days", "start_time": at(TimeDelta::hours(72)),
                                             "end_time": at(TimeDelta::hours(73))}),
    )
    .await;
    for u in [&ann, &bob, &cat] {
        join(&app, u, &id).await;
    }
    let (_, b) = call(&app, &ann, Method::GET, &format!("/api/events/{id}/"), None).await;
    let start: DateTime<Utc> = b["data"]["start_time"].as_str().unwrap().parse().unwrap();
    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());
    let event: uuid::Uuid = id.parse().unwrap();
    let mut sent = Vec::new();
    for minutes in [2880, 1440, 120, 60, 30, 15, 10, 5, 1] {
        let now = start - TimeDelta::minutes(minutes) + TimeDelta::seconds(1);
        let a = wp_workers::system::advance_events(&ctx, now).await.unwrap();
        sent.extend(a.reminders);
    }
    // Leads nobody chose (120, 30, 10, 5) are recorded but not announced.
    assert_eq!(sent, [2880, 1440, 60, 15].map(|l| (event, l)));

    expect_notified(&app, &ann, "event.reminder", 2).await;
    expect_notified(&app, &bob, "event.reminder", 2).await;
    let (_, b) = call(
        &app,
        &bob,
        Method::GET,
        "/api/notifications/?kind=event.reminder",
        None,
    )
    .await;
    let mut bodies: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        [
            "\"Three days\" starts in 1 hour.",
            "\"Three days\" starts in 2 days."
        ]
    );
    // All four jobs have delivered (each reached ann or bob, cat in the same page).
    assert_eq!(
        kinds(&app, &cat)
            .await
            .iter()
            .filter(|k| *k == "event.reminder")
            .count(),
        0
    );
    workers.shutdown().await;
}
