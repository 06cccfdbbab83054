//! The admin panel's user directory (filters, ordering, who may read it) and bulk
//! actions on accounts (each account reported on its own, rank-checked, audited,
//! capped), against the real PostgreSQL, Redis and SMTP server.

mod common;

use std::collections::BTreeSet;

use common::{MailEnv, STRONG_PASSWORD, TestApp, TestEnv, TestUser};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

async fn call(
    app: &TestApp,
    u: &TestUser,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(m, path, Some(u.token.as_str()), body).await
}

async fn set(env: &TestEnv, u: &TestUser, assignments: &str) {
    sqlx::query(&format!("UPDATE users SET {assignments} WHERE id = $1"))
        .bind(u.id)
        .execute(&env.db)
        .await
        .unwrap();
}

fn names(b: &Value) -> BTreeSet<String> {
    b["data"]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{b}"))
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

fn set_of(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Every filter keeps exactly the accounts it should; the order is stable; plain users
/// are refused; bad values are 400s naming the parameter.
#[tokio::test]
async fn the_directory_filters_by_every_field() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let admin = env.create_admin("root").await;
    let ana = env.create_user("ana_br").await;
    let ben = env.create_user("ben_gb").await;
    let cyd = env.create_user("cyd_new").await;
    let dee = env.create_user("dee_sus").await;
    let mods = env.create_user("mod_mo").await;
    set(&env, &ana, "locale = 'pt-BR', created_at = '2026-01-10T00:00:00Z', last_login_at = '2026-11-30T00:00:00Z', display_name = 'Ana Paula'").await;
    set(&env, &ben, "locale = 'en_GB', totp_enabled_at = now(), created_at = '2026-03-01T00:00:00Z', last_login_at = '2026-06-01T00:00:00Z'").await;
    set(
        &env,
        &cyd,
        "email_verified_at = NULL, created_at = '2026-11-01T00:00:00Z'",
    )
    .await;
    set(
        &env,
        &dee,
        "status = 'suspended', suspended_reason = 'spam', created_at = '2026-05-01T00:00:00Z'",
    )
    .await;
    set(
        &env,
        &mods,
        "role = 'moderator', created_at = '2026-02-01T00:00:00Z'",
    )
    .await;

    let (s, _) = call(&app, &ana, Method::GET, "/api/admin/users/", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(&app, &mods, Method::GET, "/api/admin/users/", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["count"], 6, "{b}");
    let everyone = ["ana_br", "ben_gb", "cyd_new", "dee_sus", "mod_mo", "root"];
    for (q, want) in [
        ("search=PAULA", &["ana_br"][..]),
        ("search=ben_gb%40example", &["ben_gb"]),
        ("role=moderator,admin", &["mod_mo", "root"]),
        ("status=suspended", &["dee_sus"]),
        ("verified=false", &["cyd_new"]),
        ("has_2fa=true", &["ben_gb"]),
        ("country=br", &["ana_br"]),
        ("country=GB", &["ben_gb"]),
        (
            "joined_after=2026-02-01T00:00:00Z&joined_before=2026-06-01T00:00:00Z",
            &["ben_gb", "dee_sus", "mod_mo"],
        ),
        ("active_after=2026-07-01T00:00:00Z", &["ana_br"]),
        ("active_before=2026-07-01T00:00:00Z", &["ben_gb"]),
        ("search=%25", &[]),
        ("", &everyone),
    ] {
        let (s, b) = call(
            &app,
            &mods,
            Method::GET,
            &format!("/api/admin/users/?{q}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{q}: {b}");
        assert_eq!(names(&b), set_of(want), "{q}");
        assert_eq!(b["data"]["count"], want.len(), "{q}");
    }
    let (_, b) = call(
        &app,
        &mods,
        Method::GET,
        "/api/admin/users/?ordering=created_at&page_size=2",
        None,
    )
    .await;
    let first: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(first, ["ana_br", "mod_mo"], "{b}");
    let u = &b["data"]["results"][0];
    assert_eq!(u["country"], "BR");
    assert_eq!(u["email_verified"], true);
    assert_eq!(u["has_2fa"], false);
    assert_eq!(u["role"], "user");
    assert!(
        b["data"]["next"].as_str().unwrap().contains("page=2"),
        "{b}"
    );

    for (q, field) in [
        ("role=owner", "role"),
        ("status=gone", "status"),
        ("country=GBR", "country"),
        ("ordering=email", "ordering"),
        ("verified=maybe", "verified"),
        (
            "joined_after=2026-06-01T00:00:00Z&joined_before=2026-01-01T00:00:00Z",
            "joined_before",
        ),
        ("colour=red", "colour"),
    ] {
        let (s, b) = call(
            &app,
            &admin,
            Method::GET,
            &format!("/api/admin/users/?{q}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
        assert!(b["errors"][field].is_array(), "{q}: {b}");
    }
}

/// A moderator suspends five accounts at once: the two below their rank are suspended
/// (emailed, signed out), the admin, themselves and an unknown id are each refused with
/// a reason, and the others go on. Admins verify, set roles and delete in bulk; a
/// deleted account cannot sign in and is erased by the next purge. Every change is in
/// the audit log.
#[tokio::test]
async fn bulk_actions_report_each_account_and_respect_rank() {
    common::init_logs();
    let m = MailEnv::new().await;
    let (env, app) = (&m.env, &m.app);
    let admin = env.create_admin("root").await;
    let mods = env.create_moderator("mod_mo").await;
    let u1 = env.create_user("user_one").await;
    let u2 = env.create_user("user_two").await;
    let u3 = env.create_user("user_three").await;
    set(env, &u3, "email_verified_at = NULL").await;
    let unknown = Uuid::now_v7();
    let bulk = "/api/admin/users/bulk/";

    // Checked before anything happens: the role first, then the body.
    let (s, _) = call(
        app,
        &u1,
        Method::POST,
        bulk,
        Some(json!({"action": "verify", "user_ids": [u2.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let too_many: Vec<Uuid> = (0..101).map(|_| Uuid::now_v7()).collect();
    for (body, field) in [
        (json!({"action": "suspend", "user_ids": [u1.id]}), "reason"),
        (
            json!({"action": "verify", "user_ids": too_many}),
            "user_ids",
        ),
        (json!({"action": "verify", "user_ids": []}), "user_ids"),
        (
            json!({"action": "verify", "user_ids": [u1.id, u1.id]}),
            "user_ids",
        ),
        (json!({"action": "set_role", "user_ids": [u1.id]}), "role"),
        (json!({"action": "promote", "user_ids": [u1.id]}), "action"),
        (
            json!({"action": "suspend", "user_ids": [u1.id], "reason": "x", "until": "2020-01-01T00:00:00Z"}),
            "until",
        ),
    ] {
        let (s, b) = call(app, &admin, Method::POST, bulk, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }
    // Moderators do not set roles or delete.
    let (s, _) = call(
        app,
        &mods,
        Method::POST,
        bulk,
        Some(json!({"action": "delete", "user_ids": [u1.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, b) = call(
        app,
        &mods,
        Method::POST,
        bulk,
        Some(json!({"action": "suspend", "reason": "spam wave",
                    "user_ids": [u1.id, admin.id, u2.id, unknown, mods.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = &b["data"];
    assert_eq!(
        (d["succeeded"].as_u64(), d["failed"].as_u64()),
        (Some(2), Some(3)),
        "{b}"
    );
    let codes: Vec<Value> = d["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            Value::Null,
            json!("permission_denied"),
            Value::Null,
            json!("not_found"),
            json!("permission_denied")
        ],
        "{b}"
    );
    assert_eq!(d["results"][0]["user"]["status"], "suspended");
    assert_eq!(
        d["results"][1]["user"]["status"], "active",
        "the admin untouched"
    );
    for u in [&u1, &u2] {
        let (s, b) = call(app, u, Method::GET, "/api/users/me/", None).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("account_suspended"))
        );
        let mail = m
            .email(
                &format!("{}@example.com", u.username),
                "Your Watch Party account was suspended",
            )
            .await;
        assert!(mail.contains("spam wave"), "{mail}");
    }

    // Unsuspend: one not suspended is refused by name, the other lifted.
    let (s, b) = call(
        app,
        &mods,
        Method::POST,
        bulk,
        Some(json!({"action": "unsuspend", "user_ids": [u1.id, u3.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["results"][0]["ok"], true);
    assert_eq!(b["data"]["results"][1]["code"], "not_suspended");
    let (s, _) = call(app, &u1, Method::GET, "/api/users/me/", None).await;
    assert_eq!(s, StatusCode::OK);

    // Admins: verify, set a role, delete.
    let (s, b) = call(
        app,
        &admin,
        Method::POST,
        bulk,
        Some(json!({"action": "verify", "user_ids": [u3.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["results"][0]["user"]["email_verified"], true);
    let (s, b) = call(
        app,
        &admin,
        Method::POST,
        bulk,
        Some(json!({"action": "set_role", "role": "moderator", "user_ids": [u1.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["results"][0]["user"]["role"], "moderator");
    let (s, b) = call(
        app,
        &admin,
        Method::POST,
        bulk,
        Some(json!({"action": "delete", "reason": "fraud ring", "user_ids": [u3.id]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["succeeded"], 1);
    let (s, _) = call(app, &u3, Method::GET, "/api/users/me/", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "signed out at once");
    let (s, b) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "user_three", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "cannot sign in to cancel: {b}");
    let ctx = wp_workers::Ctx::new(env.config.clone()).await.unwrap();
    let purged = wp_workers::accounts::purge(&ctx).await.unwrap();
    assert_eq!(purged, 1);
    let status: String = sqlx::query_scalar("SELECT status FROM users WHERE id = $1")
        .bind(u3.id)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(status, "deleted");

    // The audit log has one row per account changed, none for the refused.
    let rows: Vec<(String, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT action, actor_username, target_id FROM audit_log WHERE details->>'bulk' = 'true' ORDER BY created_at, id",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    let got: Vec<(&str, &str, Option<Uuid>)> = rows
        .iter()
        .map(|(a, u, t)| (a.as_str(), u.as_str(), *t))
        .collect();
    assert_eq!(
        got,
        [
            ("user.suspend", "mod_mo", Some(u1.id)),
            ("user.suspend", "mod_mo", Some(u2.id)),
            ("user.unsuspend", "mod_mo", Some(u1.id)),
            ("user.verify", "root", Some(u3.id)),
            ("user.role", "root", Some(u1.id)),
            ("user.delete", "root", Some(u3.id)),
        ]
    );
}
