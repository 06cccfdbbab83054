//! Content moderation (seed item 10) against the real services: reports and who may
//! file them, the staff queue with claims, resolutions that remove, warn, suspend or
//! dismiss (rank-checked, every open report on the target resolved at once, every
//! reporter told), and the audit log of staff actions.

mod common;

use common::{MailEnv, TestApp, TestEnv, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
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

async fn insert_video(env: &TestEnv, owner: &TestUser, visibility: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO videos (id, owner_id, title, storage_key, original_filename, container,
                             content_type, size_bytes, sha256, status, visibility)
         VALUES ($1, $2, 'Cooking night', $3, 'x.mp4', 'mp4', 'video/mp4', 1, '', 'ready', $4)",
    )
    .bind(id)
    .bind(owner.id)
    .bind(format!("videos/{id}"))
    .bind(visibility)
    .execute(&env.db)
    .await
    .unwrap();
    id
}

async fn report(app: &TestApp, u: &TestUser, body: Value) -> (StatusCode, Value) {
    call(app, Some(u), Method::POST, "/api/reports/", Some(body)).await
}

fn resolve_path(id: &str) -> String {
    format!("/api/admin/reports/{id}/resolve/")
}

/// Two users report one comment; who may report what; the queue and its filters;
/// claims; a removal that resolves both reports, deletes the comment and tells both
/// reporters; the audit rows of the claim and the resolution.
#[tokio::test]
async fn reports_reach_the_queue_and_a_removal_resolves_them_all() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _notify = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let cal = env.create_user("cal").await;
    let mod1 = env.create_moderator("mod1").await;
    let mod2 = env.create_moderator("mod2").await;
    let admin = env.create_admin("root").await;

    let video = insert_video(&env, &ann, "public").await;
    let hidden = insert_video(&env, &ann, "private").await;
    let (s, b) = app
        .post_json(
            &format!("/api/videos/{video}/comments/"),
            Some(&ann.token),
            json!({"content": "buy followers at spam.example"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let comment = b["data"]["id"].as_str().unwrap().to_owned();

    // Bad input is a 400 naming the field; a target the reporter cannot see is a 404;
    // their own content a 400; anonymous a 401. Nothing is filed.
    for (body, field) in [
        (
            json!({"target_type": "planet", "target_id": video, "reason": "spam"}),
            "target_type",
        ),
        (
            json!({"target_type": "video", "target_id": video}),
            "reason",
        ),
        (
            json!({"target_type": "video", "target_id": "nope", "reason": "spam"}),
            "target_id",
        ),
        (
            json!({"target_type": "video", "target_id": video, "reason": "spam", "details": "x".repeat(2001)}),
            "details",
        ),
        (
            json!({"target_type": "video", "target_id": video, "reason": "spam", "extra": 1}),
            "extra",
        ),
    ] {
        let (s, b) = report(&app, &bob, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} {b}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }
    let (s, _) = report(
        &app,
        &bob,
        json!({"target_type": "video", "target_id": hidden, "reason": "spam"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a private video is not there");
    let (s, _) = report(
        &app,
        &bob,
        json!({"target_type": "comment", "target_id": Uuid::now_v7(), "reason": "spam"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = report(
        &app,
        &ann,
        json!({"target_type": "comment", "target_id": comment, "reason": "spam"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["target_id"].is_array(), "{b}");
    let (s, _) = call(
        &app,
        None,
        Method::POST,
        "/api/reports/",
        Some(json!({"target_type": "comment", "target_id": comment, "reason": "spam"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let filed: i64 = sqlx::query_scalar("SELECT count(*) FROM content_reports")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(filed, 0);

    // Bob and Cal report the comment; Bob's second report is refused while it is handled.
    let (s, b) = report(
        &app,
        &bob,
        json!({"target_type": "comment", "target_id": comment, "reason": "spam", "details": " a link farm "}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["status"], "open");
    let first = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = report(
        &app,
        &bob,
        json!({"target_type": "comment", "target_id": comment, "reason": "hate"}),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_reported"))
    );
    let (s, b) = report(
        &app,
        &cal,
        json!({"target_type": "comment", "target_id": comment, "reason": "harassment"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let second = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = call(&app, Some(&bob), Method::GET, "/api/reports/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["count"], 1, "{b}");

    // The queue is for staff.
    for u in [&bob, &ann] {
        let (s, _) = call(&app, Some(u), Method::GET, "/api/admin/reports/", None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = call(
            &app,
            Some(u),
            Method::GET,
            &format!("/api/admin/reports/{first}/"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = call(
            &app,
            Some(u),
            Method::POST,
            &resolve_path(&first),
            Some(json!({"action": "dismiss"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "refused before the body is read");
    }
    let (s, b) = call(&app, Some(&mod1), Method::GET, "/api/admin/reports/", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["count"], 2, "{b}");
    let r = &b["data"]["results"][0];
    assert_eq!(r["id"], first.as_str(), "oldest first");
    assert_eq!(r["open_reports_on_target"], 2);
    assert_eq!(r["snapshot"], "buy followers at spam.example");
    assert_eq!(r["details"], "a link farm");
    assert_eq!(r["target_owner"]["username"], "ann");
    assert_eq!(r["reporter"]["username"], "bob");
    for (q, n) in [
        ("?target_type=video", 0),
        ("?target_type=comment,video&reason=spam", 1),
        ("?claimed_by=none", 2),
        (&*format!("?reporter={}", cal.id), 1),
        ("?status=resolved", 0),
    ] {
        let (s, b) = call(
            &app,
            Some(&mod1),
            Method::GET,
            &format!("/api/admin/reports/{q}"),
            None,
        )
        .await;
        assert_eq!(
            (s, b["data"]["count"].as_i64()),
            (StatusCode::OK, Some(n)),
            "{q}: {b}"
        );
    }
    for (q, field) in [
        ("?status=done", "status"),
        ("?ordering=loudest", "ordering"),
        ("?claimed_by=someone", "claimed_by"),
    ] {
        let (s, b) = call(
            &app,
            Some(&mod1),
            Method::GET,
            &format!("/api/admin/reports/{q}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert!(b["errors"][field].is_array(), "{q}: {b}");
    }

    // Claims: the first claim holds; another moderator cannot take it or resolve it.
    let (s, b) = call(
        &app,
        Some(&mod1),
        Method::POST,
        &format!("/api/admin/reports/{first}/claim/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["status"], "claimed");
    assert_eq!(b["data"]["claimed_by"]["username"], "mod1");
    let (s, b) = call(
        &app,
        Some(&mod2),
        Method::POST,
        &format!("/api/admin/reports/{first}/claim/"),
        None,
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_claimed"))
    );
    let (s, b) = call(
        &app,
        Some(&mod2),
        Method::POST,
        &resolve_path(&first),
        Some(json!({"action": "dismiss"})),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_claimed"))
    );

    // Bad resolutions name their field.
    for (body, field) in [
        (json!({"action": "warn"}), "note"),
        (json!({"action": "ban"}), "action"),
        (
            json!({"action": "remove", "suspend_days": 2}),
            "suspend_days",
        ),
    ] {
        let (s, b) = call(
            &app,
            Some(&mod1),
            Method::POST,
            &resolve_path(&first),
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }

    // The removal: both reports resolved, the comment gone, both reporters told.
    let (s, b) = call(
        &app,
        Some(&mod1),
        Method::POST,
        &resolve_path(&first),
        Some(json!({"action": "remove", "note": "spam link"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["status"], "resolved");
    assert_eq!(b["data"]["action"], "remove");
    assert_eq!(b["data"]["resolved_by"]["username"], "mod1");
    assert_eq!(b["data"]["open_reports_on_target"], 0);
    let (s, b) = call(
        &app,
        Some(&mod1),
        Method::GET,
        &format!("/api/admin/reports/{second}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["status"], "resolved", "{b}");
    assert_eq!(
        b["data"]["snapshot"], "buy followers at spam.example",
        "the evidence outlives the comment"
    );
    let (_, b) = call(
        &app,
        Some(&bob),
        Method::GET,
        &format!("/api/videos/{video}/comments/"),
        None,
    )
    .await;
    assert_eq!(
        b["count"].as_i64().or(b["data"]["count"].as_i64()),
        Some(0),
        "{b}"
    );
    let (s, b) = call(
        &app,
        Some(&mod1),
        Method::POST,
        &resolve_path(&first),
        Some(json!({"action": "dismiss"})),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_resolved"))
    );
    app.expect_kind(&bob, "moderation.report_resolved", 1).await;
    app.expect_kind(&cal, "moderation.report_resolved", 1).await;
    // Resolved, Bob may report the same target again (it is gone: 404).
    let (s, _) = report(
        &app,
        &bob,
        json!({"target_type": "comment", "target_id": comment, "reason": "spam"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The audit log: admins only; the claim and the resolution, newest first.
    let (s, _) = call(&app, Some(&mod1), Method::GET, "/api/admin/audit/", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/admin/audit/?action=report.",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let actions: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["report.resolve", "report.claim"], "{b}");
    let e = &b["data"]["results"][0];
    assert_eq!(e["actor_username"], "mod1");
    assert_eq!(e["details"]["action"], "remove");
    assert_eq!(e["details"]["reports_resolved"], 2);
    let (s, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/admin/audit/?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["until"].is_array(), "{b}");
}

/// Warn and suspend act on the owner, only from a higher role; a chat message and a
/// party are removed; dismissals tell the reporter nothing was found.
#[tokio::test]
async fn warnings_and_suspensions_reach_the_owner_within_rank() {
    common::init_logs();
    let m = MailEnv::new().await;
    let _notify = m.env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let (env, app) = (&m.env, &m.app);
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let dan = env.create_user("dan").await;
    let mod1 = env.create_moderator("mod1").await;
    let mod2 = env.create_moderator("mod2").await;
    let admin = env.create_admin("root").await;

    // Dan hosts a public party and writes in its chat.
    let (s, b) = app
        .post_json(
            "/api/parties/",
            Some(&dan.token),
            json!({"title": "Late show", "external_url": "https://example.com/v.mp4"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let party = b["data"]["id"].as_str().unwrap().to_owned();
    let message = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO party_messages (id, party_id, user_id, content) VALUES ($1, $2::uuid, $3, 'you are all idiots')",
    )
    .bind(message)
    .bind(&party)
    .bind(dan.id)
    .execute(&env.db)
    .await
    .unwrap();

    // A warning for the message: Dan is told in-app and by email, with the note.
    let (s, b) = report(
        app,
        &bob,
        json!({"target_type": "message", "target_id": message, "reason": "harassment"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r1 = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        app,
        Some(&mod1),
        Method::POST,
        &resolve_path(&r1),
        Some(json!({"action": "warn", "note": "Insults break rule 2."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.expect_kind(&dan, "moderation.warning", 1).await;
    let mail = m
        .email(
            "dan@example.com",
            "A warning about your Watch Party message",
        )
        .await;
    assert!(mail.contains("Insults break rule 2."), "{mail}");

    // Reported again, the message is removed: the history shows it deleted.
    let (s, b) = report(
        app,
        &ann,
        json!({"target_type": "message", "target_id": message, "reason": "harassment"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r2 = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        app,
        Some(&mod1),
        Method::POST,
        &resolve_path(&r2),
        Some(json!({"action": "remove"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (deleted, content): (bool, String) =
        sqlx::query_as("SELECT is_deleted, content FROM party_messages WHERE id = $1")
            .bind(message)
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert!(deleted && content.is_empty());

    // A moderator cannot act on a moderator; dismissing is fine and tells the reporter.
    let (s, b) = report(
        app,
        &ann,
        json!({"target_type": "user", "target_id": mod1.id, "reason": "harassment"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r3 = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        app,
        Some(&mod2),
        Method::POST,
        &resolve_path(&r3),
        Some(json!({"action": "warn", "note": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = call(
        app,
        Some(&mod2),
        Method::POST,
        &resolve_path(&r3),
        Some(json!({"action": "remove"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a user is not removed: {b}");
    assert!(b["errors"]["action"].is_array(), "{b}");
    let (s, b) = call(
        app,
        Some(&mod2),
        Method::POST,
        &resolve_path(&r3),
        Some(json!({"action": "dismiss"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app.expect_kind(&ann, "moderation.report_resolved", 2).await;

    // The party reported and removed: it is gone for everyone.
    let (s, b) = report(
        app,
        &bob,
        json!({"target_type": "party", "target_id": party, "reason": "violence"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r4 = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        app,
        Some(&mod2),
        Method::POST,
        &resolve_path(&r4),
        Some(json!({"action": "remove"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = call(
        app,
        Some(&dan),
        Method::GET,
        &format!("/api/parties/{party}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Dan reported as a user and suspended for 3 days: his token stops, he is emailed.
    let (s, b) = report(
        app,
        &bob,
        json!({"target_type": "user", "target_id": dan.id, "reason": "harassment"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let r5 = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = call(
        app,
        Some(&mod1),
        Method::POST,
        &resolve_path(&r5),
        Some(json!({"action": "suspend", "note": "Repeated insults.", "suspend_days": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(app, Some(&dan), Method::GET, "/api/users/me/", None).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_suspended"))
    );
    let mail = m
        .email("dan@example.com", "Your Watch Party account was suspended")
        .await;
    assert!(mail.contains("Repeated insults."), "{mail}");
    let until: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT suspended_until FROM users WHERE id = $1")
            .bind(dan.id)
            .fetch_one(&env.db)
            .await
            .unwrap();
    let days = (until.unwrap() - chrono::Utc::now()).num_hours();
    assert!((71..=72).contains(&days), "{days} hours");

    // Every resolution is in the audit log, filterable by actor.
    let (s, b) = call(
        app,
        Some(&admin),
        Method::GET,
        &format!("/api/admin/audit/?actor={}", mod1.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["count"], 3, "{b}");
    assert_eq!(b["data"]["results"][0]["details"]["action"], "suspend");
    assert_eq!(b["data"]["results"][0]["details"]["suspend_days"], 3);
}

/// Staff actions elsewhere are audited in their own transaction: suspensions, role
/// changes, broadcasts, help-desk changes and FAQ edits.
#[tokio::test]
async fn staff_actions_are_in_the_audit_log() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let admin = env.create_admin("root").await;
    let bob = env.create_user("bob").await;
    let mod1 = env.create_moderator("mod1").await;

    let (s, b) = app
        .post_json(
            &format!("/api/admin/users/{}/suspend/", bob.id),
            Some(&mod1.token),
            json!({"reason": "spam wave"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .post_json(
            &format!("/api/admin/users/{}/unsuspend/", bob.id),
            Some(&mod1.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        &app,
        Some(&admin),
        Method::PUT,
        &format!("/api/admin/users/{}/role/", bob.id),
        Some(json!({"role": "moderator"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A refused action leaves no row.
    let (s, _) = app
        .post_json(
            &format!("/api/admin/users/{}/suspend/", admin.id),
            Some(&mod1.token),
            json!({"reason": "coup"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .post_json(
            "/api/support/faq/",
            Some(&mod1.token),
            json!({"category": "account", "question": "How do I reset my password?",
                   "answer": "Use the link on the sign-in page.", "published": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let faq = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &app,
        Some(&mod1),
        Method::DELETE,
        &format!("/api/support/faq/{faq}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        &format!("/api/admin/audit/?target_id={}", bob.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let rows = b["data"]["results"].as_array().unwrap();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor_username"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("user.role", "root"),
            ("user.unsuspend", "mod1"),
            ("user.suspend", "mod1")
        ],
        "{b}"
    );
    assert_eq!(rows[0]["details"]["from"], "user");
    assert_eq!(rows[0]["details"]["to"], "moderator");
    assert_eq!(rows[2]["details"]["reason"], "spam wave");
    let (s, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/admin/audit/?target_type=faq",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["faq.delete", "faq.create"], "{b}");
    let (s, b) = call(
        &app,
        Some(&admin),
        Method::GET,
        "/api/admin/audit/?bogus=1",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}
