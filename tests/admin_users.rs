//! Roles and account state: staff suspend and reinstate accounts, admins set roles,
//! and nobody acts above their rank.

mod common;

use common::{STRONG_PASSWORD, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn staff_suspend_and_reinstate_within_their_rank() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let admin = app.register("root_admin").await;
    let moder = app.register("mod_mary").await;
    let user = app.register("plain_paul").await;
    let tok = |d: &serde_json::Value| d["access_token"].as_str().unwrap().to_owned();
    let id = |d: &serde_json::Value| d["user"]["id"].as_str().unwrap().to_owned();

    // The first admin is made with the CLI.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
        .args(["set-role", "--username", "root_admin", "--role", "admin"])
        .envs(env.env_vars())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A plain user may do none of it.
    let suspend = |who: &str| format!("/api/admin/users/{who}/suspend/");
    let (s, _) = app
        .post_json(
            &suspend(&id(&moder)),
            Some(&tok(&user)),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The admin makes Mary a moderator.
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/admin/users/{}/role/", id(&moder)),
            Some(&tok(&admin)),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["role"], "moderator");
    let (s, _) = app
        .call(
            Method::PUT,
            &format!("/api/admin/users/{}/role/", id(&user)),
            Some(&tok(&moder)),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "moderators cannot set roles");
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/admin/users/{}/role/", id(&user)),
            Some(&tok(&admin)),
            Some(json!({"role": "emperor"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["role"].is_array(), "{b}");

    // Mary suspends Paul; his token stops at once.
    let (s, b) = app
        .post_json(
            &suspend(&id(&user)),
            Some(&tok(&moder)),
            json!({"reason": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["reason"].is_array());
    let (s, b) = app
        .post_json(
            &suspend(&id(&user)),
            Some(&tok(&moder)),
            json!({"reason": "spam links"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["status"], "suspended");
    let (s, b) = app
        .call(Method::GET, "/api/users/me/", Some(&tok(&user)), None)
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_suspended"))
    );
    // She cannot suspend the admin, herself, or an unknown account.
    let (s, _) = app
        .post_json(
            &suspend(&id(&admin)),
            Some(&tok(&moder)),
            json!({"reason": "coup"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .post_json(
            &suspend(&id(&moder)),
            Some(&tok(&moder)),
            json!({"reason": "me"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .post_json(
            &suspend(&uuid::Uuid::nil().to_string()),
            Some(&tok(&moder)),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Reinstated, Paul can sign in again.
    let (s, _) = app
        .post_json(
            &format!("/api/admin/users/{}/unsuspend/", id(&user)),
            Some(&tok(&moder)),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "plain_paul", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn admins_read_queue_depths_and_others_may_not() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let admin = app.register("queue_admin").await;
    let user = app.register("queue_user").await;
    sqlx::query("UPDATE users SET role = 'admin' WHERE username = 'queue_admin'")
        .execute(&env.db)
        .await
        .unwrap();
    env.enqueuer
        .push_many(
            (0..4)
                .map(|seq| wp_shared::jobs::SystemJob::Noop { seq })
                .collect(),
        )
        .await
        .unwrap();
    let (s, _) = app
        .call(
            Method::GET,
            "/api/admin/queues/",
            Some(user["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .call(
            Method::GET,
            "/api/admin/queues/",
            Some(admin["access_token"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let system = b["data"]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "system")
        .unwrap()
        .clone();
    assert_eq!(
        system["active"].as_u64().unwrap() + system["scheduled"].as_u64().unwrap(),
        4
    );
    assert_eq!(b["data"]["queues"].as_array().unwrap().len(), 8);
}
