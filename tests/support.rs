//! The help desk (seed item 7) against the real services: tickets and who sees them,
//! the state machine with replies and a controlled clock (auto-close, SLA breaches,
//! each once), notifications of every reply (the email carries the text), staff notes
//! users never see, assignment, merges, attachments typed by their bytes, the FAQ with
//! votes, feedback, and the limits.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{MailEnv, TestApp, TestEnv, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

async fn call(
    app: &TestApp,
    u: Option<&TestUser>,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(m, path, u.map(|u| u.token.as_str()), body).await
}

async fn open_ticket(app: &TestApp, u: &TestUser, subject: &str, extra: Value) -> Value {
    let mut body = json!({"subject": subject, "description": "The video stops after a minute.",
                          "category": "playback"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, b) = call(
        app,
        Some(u),
        Method::POST,
        "/api/support/tickets/",
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["data"].clone()
}

fn detail_path(t: &Value) -> String {
    format!("/api/support/tickets/{}/", t["id"].as_str().unwrap())
}

/// A ticket from opening to closing: who sees it, bad input named by field, staff notes
/// the owner never sees, a staff reply that moves it to `pending` and mails the owner
/// its text, the owner's reply that reopens it and tells the assignee, resolving, the
/// auto-close after the window (controlled clock) and no reply on a closed ticket.
#[tokio::test]
async fn a_ticket_moves_through_its_states_and_each_reply_reaches_the_other_side() {
    common::init_logs();
    let m = MailEnv::new().await;
    let _notify = m.env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let (env, app) = (&m.env, &m.app);
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let admin = env.create_admin("root").await;
    let mod1 = env.create_moderator("mod1").await;

    // Bad input is a 400 naming the field; nothing is created.
    for (body, field) in [
        (
            json!({"description": "x", "category": "playback"}),
            "subject",
        ),
        (
            json!({"subject": " ", "description": "x", "category": "playback"}),
            "subject",
        ),
        (
            json!({"subject": "s", "description": "x", "category": "payments"}),
            "category",
        ),
        (
            json!({"subject": "s", "description": "x", "category": "bug", "priority": "urgent"}),
            "priority",
        ),
        (
            json!({"subject": "s", "description": "x".repeat(10_001), "category": "bug"}),
            "description",
        ),
        (
            json!({"subject": "s", "description": "x", "category": "bug", "status": "closed"}),
            "status",
        ),
    ] {
        let (s, b) = call(
            app,
            Some(&ann),
            Method::POST,
            "/api/support/tickets/",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(
            b["errors"][field].is_array() || b["errors"][field].is_string(),
            "{field}: {b}"
        );
    }
    let (s, _) = call(app, None, Method::GET, "/api/support/tickets/", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let t = open_ticket(app, &ann, "Playback stops", json!({"priority": "high"})).await;
    let path = detail_path(&t);
    assert_eq!(t["status"], "open");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["user"]["username"], "ann");
    assert!(t["assigned_to"].is_null());
    let created: DateTime<Utc> = t["created_at"].as_str().unwrap().parse().unwrap();
    let due: DateTime<Utc> = t["sla"]["response_due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(due - created, TimeDelta::hours(4), "high: 4 hours");
    assert_eq!(t["sla"]["breached"], false);

    // Another user: 404 for every way in, and never in their list.
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"status": "closed"})),
        ),
        (
            Method::POST,
            format!("{path}reply/"),
            Some(json!({"body": "me too"})),
        ),
    ] {
        let (s, b) = call(app, Some(&bob), method.clone(), &p, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {p}: {b}");
    }
    // The permission is checked before the body is read: a malformed body is still 404.
    let res = app
        .client
        .post(app.url(&format!("{path}reply/")))
        .bearer_auth(&bob.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (_, b) = call(app, Some(&bob), Method::GET, "/api/support/tickets/", None).await;
    assert_eq!(b["data"]["count"], 0, "{b}");
    // Staff filters are refused to users, naming the filter.
    let (s, b) = call(
        app,
        Some(&ann),
        Method::GET,
        "/api/support/tickets/?assigned_to=none",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["assigned_to"].is_array(), "{b}");

    // Staff: the queue with filters.
    let admin_ref = &admin;
    let list = |q: &'static str| async move {
        let (s, b) = call(
            app,
            Some(admin_ref),
            Method::GET,
            &format!("/api/support/tickets/?{q}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{q}: {b}");
        b["data"]["count"].as_i64().unwrap()
    };
    assert_eq!(
        list("status=open&assigned_to=none&priority=high,urgent").await,
        1
    );
    assert_eq!(list("priority=low").await, 0);
    assert_eq!(list("category=playback&search=stops").await, 1);
    assert_eq!(list("min_age_hours=1").await, 0, "opened just now");
    let (s, b) = call(
        app,
        Some(&admin),
        Method::GET,
        "/api/support/tickets/?status=lost",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["status"].is_array(), "{b}");

    // Assignment: staff only, to staff; the assignee is told.
    let (s, b) = call(
        app,
        Some(&admin),
        Method::PATCH,
        &path,
        Some(json!({"assigned_to": bob.id})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["assigned_to"].is_array(), "{b}");
    let (s, b) = call(
        app,
        Some(&ann),
        Method::PATCH,
        &path,
        Some(json!({"priority": "low"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = call(
        app,
        Some(&admin),
        Method::PATCH,
        &path,
        Some(json!({"assigned_to": mod1.id})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["assigned_to"]["username"], "mod1");
    app.expect_kind(&mod1, "support.assigned", 1).await;
    let (_, b) = call(
        app,
        Some(&mod1),
        Method::GET,
        "/api/support/tickets/?assigned_to=me",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 1, "{b}");

    // A staff note: staff see it; the owner neither sees it nor hears of it.
    let (s, b) = call(
        app,
        Some(&mod1),
        Method::POST,
        &format!("{path}reply/"),
        Some(json!({"body": "Probably the CDN again", "internal": true})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["internal"], true);
    let (s, b) = call(
        app,
        Some(&ann),
        Method::POST,
        &format!("{path}reply/"),
        Some(json!({"body": "hidden?", "internal": true})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["internal"].is_array(), "{b}");

    // The staff reply: pending, first response stamped, the owner mailed the text.
    let (s, b) = call(
        app,
        Some(&mod1),
        Method::POST,
        &format!("{path}reply/"),
        Some(json!({"body": "Please clear the cache and try again."})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["from_staff"], true);
    let (_, b) = call(app, Some(&ann), Method::GET, &path, None).await;
    let d = &b["data"];
    assert_eq!(d["status"], "pending", "{d}");
    assert!(d["first_response_at"].is_string());
    assert!(
        d["sla"]["response_due_at"].is_null(),
        "nothing waits for staff"
    );
    let bodies: Vec<&str> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Please clear the cache and try again."], "no note");
    assert_eq!(d["message_count"], 1);
    let (_, b) = call(app, Some(&mod1), Method::GET, &path, None).await;
    assert_eq!(b["data"]["messages"].as_array().unwrap().len(), 2);
    assert_eq!(b["data"]["message_count"], 2);
    let mail = m.email("ann@example.com", "Re: Playback stops").await;
    assert!(
        mail.contains("Please clear the cache and try again."),
        "{mail}"
    );
    assert!(!mail.contains("CDN"), "{mail}");
    app.expect_kind(&ann, "support.reply", 1).await;

    // The owner's reply reopens it: a new wait, the assignee told.
    let (s, b) = call(
        app,
        Some(&ann),
        Method::POST,
        &format!("{path}reply/"),
        Some(json!({"body": "Still stops."})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["from_staff"], false);
    let (_, b) = call(app, Some(&ann), Method::GET, &path, None).await;
    assert_eq!(b["data"]["status"], "open");
    assert!(b["data"]["sla"]["response_due_at"].is_string());
    app.expect_kind(&mod1, "support.user_reply", 1).await;

    // The owner may resolve; a reply while resolved reopens; staff resolve again.
    let (s, b) = call(
        app,
        Some(&ann),
        Method::PATCH,
        &path,
        Some(json!({"status": "resolved"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["status"], "resolved");
    let (s, b) = call(
        app,
        Some(&ann),
        Method::PATCH,
        &path,
        Some(json!({"status": "open"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "the owner reopens by replying: {b}"
    );
    call(
        app,
        Some(&ann),
        Method::POST,
        &format!("{path}reply/"),
        Some(json!({"body": "Oh, and it stops on the phone too."})),
    )
    .await;
    let (_, b) = call(app, Some(&ann), Method::GET, &path, None).await;
    assert_eq!(b["data"]["status"], "open", "reopened within the window");
    let (_, b) = call(
        app,
        Some(&mod1),
        Method::PATCH,
        &path,
        Some(json!({"status": "resolved"})),
    )
    .await;
    let resolved: DateTime<Utc> = b["data"]["resolved_at"].as_str().unwrap().parse().unwrap();

    // The scheduler's pass with the clock set: not before the window ends, then once.
    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());
    let early = wp_workers::system::support_sweep(&ctx, resolved + TimeDelta::days(6))
        .await
        .unwrap();
    assert!(early.closed.is_empty());
    let at = resolved + TimeDelta::days(7) + TimeDelta::seconds(1);
    let (a, b2) = tokio::join!(
        wp_workers::system::support_sweep(&ctx, at),
        wp_workers::system::support_sweep(&ctx, at)
    );
    assert_eq!(
        a.unwrap().closed.len() + b2.unwrap().closed.len(),
        1,
        "closed once"
    );
    let (_, b) = call(app, Some(&ann), Method::GET, &path, None).await;
    assert_eq!(b["data"]["status"], "closed");
    let (s, b) = call(
        app,
        Some(&ann),
        Method::POST,
        &format!("{path}reply/"),
        Some(json!({"body": "again"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["code"], "ticket_closed");
    // Staff may reopen a closed ticket.
    let (s, b) = call(
        app,
        Some(&admin),
        Method::PATCH,
        &path,
        Some(json!({"status": "open"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["data"]["closed_at"].is_null());
    // One email for the one staff reply.
    assert_eq!(m.count_to("ann@example.com"), 1);
}

/// SLA with the clock set: no breach before the due time, one stamp and one
/// notification per staff member after it (nobody assigned), however many sweeps run;
/// a staff reply ends the wait; the `breached` filter finds it.
#[tokio::test]
async fn an_unanswered_ticket_breaches_its_sla_once() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _w = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let ann = env.create_user("ann").await;
    let admin = env.create_admin("root").await;
    let mod1 = env.create_moderator("mod1").await;
    let t = open_ticket(&app, &ann, "Cannot log in", json!({"priority": "high"})).await;
    let path = detail_path(&t);
    let due: DateTime<Utc> = t["sla"]["response_due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Raised to urgent by staff: the due time follows (1 hour from the same start).
    let (s, b) = call(
        &app,
        Some(&admin),
        Method::PATCH,
        &path,
        Some(json!({"priority": "urgent"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let urgent_due: DateTime<Utc> = b["data"]["sla"]["response_due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(due - urgent_due, TimeDelta::hours(3));
    assert_eq!(b["data"]["sla"]["response_target_hours"], 1);

    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());
    let before = wp_workers::system::support_sweep(&ctx, urgent_due - TimeDelta::seconds(1))
        .await
        .unwrap();
    assert!(before.breached.is_empty());
    let after = urgent_due + TimeDelta::seconds(1);
    let (a, b2) = tokio::join!(
        wp_workers::system::support_sweep(&ctx, after),
        wp_workers::system::support_sweep(&ctx, after)
    );
    assert_eq!(a.unwrap().breached.len() + b2.unwrap().breached.len(), 1);
    let again = wp_workers::system::support_sweep(&ctx, after + TimeDelta::hours(1))
        .await
        .unwrap();
    assert!(again.breached.is_empty(), "once per wait");
    for staff in [&admin, &mod1] {
        app.expect_kind(staff, "support.sla_breach", 1).await;
    }
    assert!(
        app.notification_kinds(&ann).await.is_empty(),
        "the user is not told"
    );
    let (_, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/support/tickets/?breached=true",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 1, "{b}");
    assert_eq!(b["data"]["results"][0]["sla"]["breached"], true);

    // The answer ends the wait and the breach.
    call(
        &app,
        Some(&mod1),
        Method::POST,
        &format!("{path}reply/"),
        Some(json!({"body": "Looking at it."})),
    )
    .await;
    let (_, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/support/tickets/?breached=true",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 0, "{b}");
}

/// Merging duplicates: staff only, the same user's tickets only, the conversation and
/// files move, the duplicate is closed and points at the kept ticket.
#[tokio::test]
async fn duplicates_merge_into_one_ticket() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let admin = env.create_admin("root").await;
    let keep = open_ticket(&app, &ann, "Sound is off", json!({})).await;
    let dup = open_ticket(&app, &ann, "Audio out of sync", json!({})).await;
    let other = open_ticket(&app, &bob, "Audio out of sync too", json!({})).await;
    call(
        &app,
        Some(&ann),
        Method::POST,
        &format!("{}reply/", detail_path(&dup)),
        Some(json!({"body": "It is 2 seconds late."})),
    )
    .await;
    let merge = |from: &Value, into: &Value, who: &TestUser| {
        let p = format!("{}merge/", detail_path(from));
        let body = json!({"into": into["id"]});
        let app = &app;
        let token = who.token.clone();
        async move { app.call(Method::POST, &p, Some(&token), Some(body)).await }
    };
    let (s, _) = merge(&dup, &keep, &ann).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "users do not merge");
    let (s, b) = merge(&other, &keep, &admin).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["code"], "different_owner");
    let (s, b) = merge(&dup, &dup, &admin).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["into"].is_array(), "{b}");
    let (s, b) = merge(&dup, &keep, &admin).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["id"], keep["id"]);
    let (_, b) = call(&app, Some(&ann), Method::GET, &detail_path(&keep), None).await;
    let bodies: Vec<String> = b["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies[0].starts_with(&format!("(Merged from #{}", dup["number"])));
    assert!(bodies[0].contains("The video stops after a minute."));
    assert_eq!(bodies[1], "It is 2 seconds late.");
    let (_, b) = call(&app, Some(&ann), Method::GET, &detail_path(&dup), None).await;
    assert_eq!(b["data"]["status"], "closed");
    assert_eq!(b["data"]["merged_into"], keep["id"]);
    assert!(b["data"]["messages"].as_array().unwrap().is_empty());
    let (s, b) = merge(&dup, &keep, &admin).await;
    assert_eq!(s, StatusCode::CONFLICT, "already merged: {b}");
}

fn form(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    )
}

/// Attachments: the type comes from the bytes (an executable named `.png` is refused),
/// names are made safe, only the owner and staff download them, and the limits hold.
#[tokio::test]
async fn attachments_are_typed_by_their_bytes_and_private() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let admin = env.create_admin("root").await;
    let t = open_ticket(&app, &ann, "Crash log", json!({})).await;
    let up = format!("{}attachments/", detail_path(&t));
    let send = |who: &TestUser, f: reqwest::multipart::Form| {
        let req = app
            .client
            .post(app.url(&up))
            .bearer_auth(&who.token)
            .multipart(f);
        async move {
            let r = req.send().await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let log = b"2026-12-02T10:00:00Z ERROR player: decode failed\n".to_vec();
    let (s, b) = send(&ann, form(log.clone(), "../../player log.txt")).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["content_type"], "text/plain; charset=utf-8");
    assert_eq!(b["data"]["filename"], "player_log.txt");
    let url = b["data"]["url"].as_str().unwrap().to_owned();
    let (s, b) = send(
        &ann,
        form(b"MZ\x90\x00\x03\x00\x00\x00".to_vec(), "cute.png"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["file"].is_array(), "{b}");
    let (s, _) = send(&bob, form(log.clone(), "x.txt")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not bob's ticket");
    let (s, _) = send(&ann, form(vec![b'a'; 10 * 1024 * 1024 + 1], "big.txt")).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);

    // Download: the owner and staff get the bytes as an attachment; bob gets 404.
    for who in [&ann, &admin] {
        let r = app
            .client
            .get(app.url(&url))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            r.headers()["content-disposition"],
            "attachment; filename=\"player_log.txt\""
        );
        assert_eq!(r.bytes().await.unwrap().to_vec(), log);
    }
    let r = app
        .client
        .get(app.url(&url))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, b) = call(&app, Some(&ann), Method::GET, &detail_path(&t), None).await;
    assert_eq!(b["data"]["attachments"].as_array().unwrap().len(), 1);

    // At most 10 per ticket; the refused file is not left in storage.
    let png = b"\x89PNG\r\n\x1a\n0000".to_vec();
    for _ in 0..9 {
        let (s, b) = send(&ann, form(png.clone(), "s.png")).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = send(&ann, form(png.clone(), "s.png")).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["code"], "too_many_attachments");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM support_attachments")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(stored, 10);
    let dir = env
        .config
        .storage_dir
        .join("support")
        .join(t["id"].as_str().unwrap());
    let files = std::fs::read_dir(&dir)
        .expect("the ticket's folder")
        .count();
    assert_eq!(files, 10, "one file per recorded attachment");
}

/// The FAQ: anyone reads the published entries, staff write and see drafts, a vote
/// per user that can change; feedback: checked, staff read it with the average.
#[tokio::test]
async fn the_faq_and_feedback() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let admin = env.create_admin("root").await;
    let new = |q: &str, published: bool, position: i32| {
        json!({"category": "Parties", "question": q, "answer": "Open the party and press Invite.",
               "published": published, "position": position})
    };
    let (s, _) = call(
        &app,
        Some(&ann),
        Method::POST,
        "/api/support/faq/",
        Some(new("How?", true, 0)),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let mut ids = Vec::new();
    for (q, published, position) in [
        ("How do I invite friends?", true, 2),
        ("Draft", false, 0),
        ("How do I host?", true, 1),
    ] {
        let (s, b) = call(
            &app,
            Some(&admin),
            Method::POST,
            "/api/support/faq/",
            Some(new(q, published, position)),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        ids.push(b["data"]["id"].as_str().unwrap().to_owned());
    }
    let (s, b) = call(
        &app,
        Some(&admin),
        Method::POST,
        "/api/support/faq/",
        Some(json!({"category": "x", "question": "", "answer": "a"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["question"].is_array(), "{b}");

    let (s, b) = call(&app, None, Method::GET, "/api/support/faq/", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let questions: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["question"].as_str().unwrap())
        .collect();
    assert_eq!(
        questions,
        ["How do I host?", "How do I invite friends?"],
        "by position, no draft"
    );
    let (s, _) = call(
        &app,
        None,
        Method::GET,
        "/api/support/faq/?drafts=true",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (_, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/support/faq/?drafts=true",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 3);
    let (_, b) = call(
        &app,
        None,
        Method::GET,
        "/api/support/faq/?search=host",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 1);
    let (s, _) = call(
        &app,
        None,
        Method::GET,
        &format!("/api/support/faq/{}/", ids[1]),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a draft");

    // Votes: one per user; a changed mind moves the counts.
    let vote = |who: &TestUser, helpful: bool| {
        let p = format!("/api/support/faq/{}/helpful/", ids[0]);
        let token = who.token.clone();
        let app = &app;
        async move {
            app.call(
                Method::POST,
                &p,
                Some(&token),
                Some(json!({"helpful": helpful})),
            )
            .await
        }
    };
    vote(&ann, true).await;
    vote(&ann, true).await;
    let (_, b) = vote(&bob, true).await;
    assert_eq!(
        (
            b["data"]["helpful_count"].as_i64(),
            b["data"]["not_helpful_count"].as_i64()
        ),
        (Some(2), Some(0))
    );
    let (_, b) = vote(&ann, false).await;
    assert_eq!(
        (
            b["data"]["helpful_count"].as_i64(),
            b["data"]["not_helpful_count"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(b["data"]["my_vote"], false);
    let (s, _) = call(
        &app,
        Some(&ann),
        Method::POST,
        &format!("/api/support/faq/{}/helpful/", ids[1]),
        Some(json!({"helpful": true})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no votes on drafts");

    // Feedback.
    for (body, field) in [
        (json!({"rating": 6}), "rating"),
        (json!({"rating": 0}), "rating"),
        (json!({"rating": "5"}), "rating"),
        (json!({"rating": 4, "platform": "symbian"}), "platform"),
        (
            json!({"rating": 4, "context": {"blob": "x".repeat(5000)}}),
            "context",
        ),
    ] {
        let (s, b) = call(
            &app,
            Some(&ann),
            Method::POST,
            "/api/support/feedback/",
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }
    for (who, rating) in [(&ann, 5), (&bob, 2)] {
        let (s, b) = call(
            &app,
            Some(who),
            Method::POST,
            "/api/support/feedback/",
            Some(
                json!({"rating": rating, "text": "Sync is great", "page": "/parties/1",
                        "app_version": "2.3.0", "platform": "ios", "context": {"party_size": 4}}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, _) = call(
        &app,
        Some(&ann),
        Method::GET,
        "/api/support/feedback/",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/support/feedback/",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 2);
    assert_eq!(b["data"]["average_rating"], 3.5);
    assert_eq!(b["data"]["results"][0]["context"]["party_size"], 4);
    let (_, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/support/feedback/?rating=2",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 1);
    assert_eq!(b["data"]["results"][0]["user"]["username"], "bob");
}

/// Spam limits: 5 new tickets an hour (429 with Retry-After), and at most 10 waiting
/// tickets per user whatever the rate (exact under concurrent creation).
#[tokio::test]
async fn ticket_spam_is_limited() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = env.create_user("ann").await;
    for i in 0..5 {
        open_ticket(&app, &ann, &format!("t{i}"), json!({})).await;
    }
    let res = app
        .client
        .post(app.url("/api/support/tickets/"))
        .bearer_auth(&ann.token)
        .json(&json!({"subject": "t6", "description": "d", "category": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));

    // The waiting cap, through the domain (no rate limit there), 20 at once.
    let bob = env.create_user("bob").await;
    let actor = wp_core::account::Actor {
        id: bob.id,
        session_id: uuid::Uuid::now_v7(),
        username: "bob".into(),
        role: wp_core::account::Role::User,
    };
    let new: wp_core::support::NewTicket =
        serde_json::from_value(json!({"subject": "s", "description": "d", "category": "bug"}))
            .unwrap();
    let results = futures::future::join_all(
        (0..20).map(|_| wp_core::support::create(&env.db, &actor, &new, Utc::now())),
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, wp_core::support::OPEN_TICKETS_MAX as usize);
    assert!(results.iter().any(|r| matches!(
        r,
        Err(wp_core::support::SupportError::Conflict {
            code: "too_many_open_tickets",
            ..
        })
    )));
}
