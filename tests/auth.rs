//! Accounts end to end through the public API, against PostgreSQL, Redis and a real
//! SMTP server.

mod common;

use common::{MailEnv, STRONG_PASSWORD, TestEnv, link_token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn access(d: &Value) -> String {
    d["access_token"].as_str().unwrap().to_owned()
}

fn refresh_of(d: &Value) -> String {
    d["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn register_sends_a_verification_email_whose_link_works_once() {
    let m = MailEnv::new().await;
    let d = m.app.register("alice").await;
    assert_eq!(d["user"]["username"], "alice");
    assert_eq!(d["user"]["email_verified"], false);
    assert_eq!(d["token_type"], "Bearer");
    assert!(d["access_token"].as_str().unwrap().len() > 50);

    let mail = m
        .email("alice@example.com", "Confirm your email address")
        .await;
    assert!(
        mail.contains("http://localhost:3000/verify-email?token="),
        "{mail}"
    );
    let token = link_token(&mail);
    let (s, b) = m
        .app
        .post_json("/api/auth/verify-email/", None, json!({"token": token}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["email_verified"], true);
    let (s, b) = m
        .app
        .post_json("/api/auth/verify-email/", None, json!({"token": token}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["token"].is_array(), "{b}");
    // Already verified: resending is refused.
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/verify-email/resend/",
            Some(&access(&d)),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn registration_checks_every_field_and_duplicates() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let (s, b) = app
        .post_json(
            "/api/auth/register/",
            None,
            json!({"username": "a b", "email": "nope", "password": "password1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for f in ["username", "email", "password"] {
        assert!(b["errors"][f].is_array(), "{f}: {b}");
    }
    let (s, b) = app
        .post_json(
            "/api/auth/register/",
            None,
            json!({"username": "bobby", "email": "bobby@example.com", "password": "bobby-is-my-name-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "password contains the username");
    assert!(
        b["errors"]["password"][0]
            .as_str()
            .unwrap()
            .contains("similar"),
        "{b}"
    );

    app.register("carol").await;
    let (s, b) = app
        .post_json(
            "/api/auth/register/",
            None,
            json!({"username": "CAROL", "email": "other@example.com", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(b["errors"]["username"].is_array(), "{b}");
    let (s, b) = app
        .post_json(
            "/api/auth/register/",
            None,
            json!({"username": "carol2", "email": "Carol@Example.com", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(b["errors"]["email"].is_array(), "{b}");
    // Wrong types and missing fields name the field.
    let (s, b) = app
        .post_json(
            "/api/auth/register/",
            None,
            json!({"username": 5, "email": "x@y.z", "password": "p"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["username"].is_array(), "{b}");
}

#[tokio::test]
async fn login_by_email_or_username_and_failures_look_alike() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    app.register("dave").await;
    for body in [
        json!({"email": "DAVE@example.com", "password": STRONG_PASSWORD}),
        json!({"username": "dave", "password": STRONG_PASSWORD}),
    ] {
        let (s, b) = app.post_json("/api/auth/login/", None, body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["data"]["user"]["username"], "dave");
    }
    let (s1, b1) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "dave", "password": "wrong password here"}),
        )
        .await;
    let (s2, b2) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "nobody", "password": "wrong password here"}),
        )
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(b1["code"], "invalid_credentials");
    assert_eq!(b1["message"], b2["message"]);
    let (s, b) = app
        .post_json("/api/auth/login/", None, json!({"password": "x"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["email"].is_array());
}

#[tokio::test]
async fn profile_reads_and_updates_only_the_callers_own() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let a = app.register("erin").await;
    let b = app.register("frank").await;
    let (s, body) = app.call(Method::GET, "/api/users/me/", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "not_authenticated");
    let (s, body) = app
        .call(Method::GET, "/api/users/me", Some(&access(&a)), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["data"]["email"], "erin@example.com");

    let (s, body) = app
        .call(
            Method::PATCH,
            "/api/users/me/",
            Some(&access(&a)),
            Some(json!({"display_name": "Erin W.", "bio": "hi", "timezone": "Europe/Paris", "locale": "fr-FR"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["display_name"], "Erin W.");
    assert_eq!(body["data"]["timezone"], "Europe/Paris");
    let (s, body) = app
        .call(
            Method::PATCH,
            "/api/users/me/",
            Some(&access(&a)),
            Some(json!({"timezone": "Mars/Olympus"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["timezone"].is_array());
    let (s, _) = app
        .call(
            Method::PATCH,
            "/api/users/me/",
            Some(&access(&a)),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "unknown fields (like role) are refused"
    );

    // Frank sees Erin's public profile, without her email; Frank's own is untouched.
    let erin_id = a["user"]["id"].as_str().unwrap();
    let (s, body) = app
        .call(
            Method::GET,
            &format!("/api/users/{erin_id}/"),
            Some(&access(&b)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["data"]["display_name"], "Erin W.");
    assert!(body["data"].get("email").is_none(), "{body}");
    let (_, body) = app
        .call(Method::GET, "/api/users/me/", Some(&access(&b)), None)
        .await;
    assert_eq!(body["data"]["display_name"], "");
    let (s, _) = app
        .call(
            Method::GET,
            "/api/users/not-a-uuid/",
            Some(&access(&b)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/users/{}/", uuid::Uuid::nil()),
            Some(&access(&b)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Search by username prefix, paginated.
    let (s, body) = app
        .call(
            Method::GET,
            "/api/users/?search=ER",
            Some(&access(&b)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["count"], 1);
    assert_eq!(body["data"]["results"][0]["username"], "erin");
    let (s, _) = app
        .call(Method::GET, "/api/users/?search=", Some(&access(&b)), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_token_kills_the_family() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let d = app.register("gina").await;
    let r1 = refresh_of(&d);
    let (s, b) = app
        .post_json("/api/auth/refresh/", None, json!({"refresh_token": r1}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r2 = refresh_of(&b["data"]);
    let a2 = access(&b["data"]);
    assert_ne!(r1, r2);
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&a2), None)
        .await;
    assert_eq!(s, StatusCode::OK);

    // The spent token again: the whole session goes.
    let (s, b) = app
        .post_json("/api/auth/refresh/", None, json!({"refresh_token": r1}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["code"], "token_reused");
    let (s, _) = app
        .post_json("/api/auth/refresh/", None, json!({"refresh_token": r2}))
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the newest token of the family is dead too"
    );
    let (s, b) = app
        .call(Method::GET, "/api/users/me/", Some(&a2), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["code"], "session_revoked");
    let (s, _) = app
        .post_json(
            "/api/auth/refresh/",
            None,
            json!({"refresh_token": "made-up"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_sessions_and_other_users_sessions() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let first = app.register("hank").await;
    let (_, second) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "hank", "password": STRONG_PASSWORD}),
        )
        .await;
    let second = &second["data"];
    let other = app.register("ivy").await;

    let (s, b) = app
        .call(
            Method::GET,
            "/api/auth/sessions/",
            Some(&access(second)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let list = b["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|x| x["current"] == true).count(), 1);
    let first_session = list.iter().find(|x| x["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ivy cannot revoke Hank's session: 404, and it stays alive.
    let path = format!("/api/auth/sessions/{first_session}/");
    let (s, _) = app
        .call(Method::DELETE, &path, Some(&access(&other)), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&access(&first)), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Hank can.
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(access(second))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&access(&first)), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Logout with the refresh token ends that session at once.
    let (s, _) = app
        .post_json(
            "/api/auth/logout/",
            None,
            json!({"refresh_token": refresh_of(second)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&access(second)), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Logout everywhere.
    let (_, a) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "ivy", "password": STRONG_PASSWORD}),
        )
        .await;
    let (s, b) = app
        .post_json(
            "/api/auth/logout-all/",
            Some(&access(&a["data"])),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["revoked"], 2);
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&access(&other)), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_suspended_accounts_token_stops_working_at_once() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let d = app.register("jack").await;
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&access(&d)), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    sqlx::query(
        "UPDATE users SET status = 'suspended', suspended_reason = 'spam' WHERE username = 'jack'",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let (s, b) = app
        .call(Method::GET, "/api/users/me/", Some(&access(&d)), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["code"], "account_suspended");
    let (s, b) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "jack", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["code"], "account_suspended");
    let (s, _) = app
        .post_json(
            "/api/auth/refresh/",
            None,
            json!({"refresh_token": refresh_of(&d)}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A suspension that has run out lets the account back in.
    sqlx::query(
        "UPDATE users SET suspended_until = now() - interval '1 minute' WHERE username = 'jack'",
    )
    .execute(&env.db)
    .await
    .unwrap();
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&access(&d)), None)
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn password_reset_arrives_over_smtp_and_its_link_works_once() {
    let m = MailEnv::new().await;
    let d = m.app.register("kate").await;
    // The same answer whether or not the address has an account.
    let (s1, b1) = m
        .app
        .post_json(
            "/api/auth/password/reset/",
            None,
            json!({"email": "kate@example.com"}),
        )
        .await;
    let (s2, b2) = m
        .app
        .post_json(
            "/api/auth/password/reset/",
            None,
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(b1["message"], b2["message"]);
    let mail = m
        .email("kate@example.com", "Reset your Watch Party password")
        .await;
    assert!(mail.contains("multipart/alternative"));
    let token = link_token(&mail);

    let (s, b) = m
        .app
        .post_json(
            "/api/auth/password/reset/confirm/",
            None,
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["password"].is_array());
    // A rejected password does not spend the token.
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/password/reset/confirm/",
            None,
            json!({"token": token, "password": "amber-meadow-lantern-41"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/password/reset/confirm/",
            None,
            json!({"token": token, "password": "another-fine-passphrase-7"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the link works once");

    // Old sessions are gone, the old password too; the new one works; a notice arrived.
    let (s, _) = m
        .app
        .call(Method::GET, "/api/users/me/", Some(&access(&d)), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "kate", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "kate", "password": "amber-meadow-lantern-41"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let alert = m.email("kate@example.com", "Security alert").await;
    assert!(
        alert.contains("password of your Watch Party account was changed"),
        "{alert}"
    );
    assert_eq!(m.count_to("ghost@example.com"), 0);
}

#[tokio::test]
async fn email_change_needs_the_new_address_to_confirm() {
    let m = MailEnv::new().await;
    let d = m.app.register("liam").await;
    let t = access(&d);
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/email/change/",
            Some(&t),
            json!({"new_email": "liam.new@example.com", "password": "wrong-password-x"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["password"].is_array());
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/email/change/",
            Some(&t),
            json!({"new_email": "liam.new@example.com", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let mail = m
        .email("liam.new@example.com", "Confirm your new email address")
        .await;
    m.email("liam@example.com", "Security alert").await;
    let (_, me) = m
        .app
        .call(Method::GET, "/api/users/me/", Some(&t), None)
        .await;
    assert_eq!(
        me["data"]["email"], "liam@example.com",
        "nothing changes before confirmation"
    );
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/email/change/confirm/",
            None,
            json!({"token": link_token(&mail)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["email"], "liam.new@example.com");
    assert_eq!(b["data"]["email_verified"], true);
}

/// Account recovery (issue 13, item 4): a pending email change does not survive a new
/// password; a confirmed change tells the old address, with a link that undoes it,
/// signs every session out and leaves the owner to reset the password.
#[tokio::test]
async fn an_email_change_can_be_undone_from_the_old_address() {
    let m = MailEnv::new().await;
    let d = m.app.register("owen").await;
    let t = access(&d);
    let ask = |to: &'static str, token: String| {
        let app = &m.app;
        async move {
            let (s, b) = app
                .post_json(
                    "/api/auth/email/change/",
                    Some(&token),
                    json!({"new_email": to, "password": STRONG_PASSWORD}),
                )
                .await;
            assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        }
    };
    // Asked for, then the password changes: the link no longer works.
    ask("thief@example.com", t.clone()).await;
    let stale = link_token(
        &m.email("thief@example.com", "Confirm your new email address")
            .await,
    );
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/password/change/",
            Some(&t),
            json!({"current_password": STRONG_PASSWORD, "new_password": "Tundra-lamp-9041"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/email/change/confirm/",
            None,
            json!({"token": stale}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "cancelled by the new password: {b}"
    );

    // Confirmed: the old address is told, with a way back that works once.
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "owen", "password": "Tundra-lamp-9041"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let t = b["data"]["access_token"].as_str().unwrap().to_owned();
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/email/change/",
            Some(&t),
            json!({"new_email": "owen.new@example.com", "password": "Tundra-lamp-9041"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let confirm = link_token(
        &m.email("owen.new@example.com", "Confirm your new email address")
            .await,
    );
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/email/change/confirm/",
            None,
            json!({"token": confirm}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let notice = m
        .email(
            "owen@example.com",
            "Your Watch Party email address was changed",
        )
        .await;
    assert!(notice.contains("owen.new@example.com"), "{notice}");
    assert!(notice.contains("/revert-email-change?token="), "{notice}");
    let revert = link_token(&notice);
    let (s, b) = m
        .app
        .post_json("/api/auth/email/revert/", None, json!({"token": revert}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = m
        .app
        .post_json("/api/auth/email/revert/", None, json!({"token": revert}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "once: {b}");
    let (s, _) = m
        .app
        .call(Method::GET, "/api/users/me/", Some(&t), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "every session is signed out");
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"email": "owen@example.com", "password": "Tundra-lamp-9041"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "the old address signs in again: {b}");
}

fn code_for(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        None,
        String::new(),
    )
    .unwrap()
    .generate_current()
    .unwrap()
}

#[tokio::test]
async fn two_factor_setup_login_replay_recovery_and_disable() {
    let m = MailEnv::new().await;
    let d = m.app.register("mia").await;
    let t = access(&d);
    let (s, b) = m
        .app
        .post_json("/api/auth/2fa/setup/", Some(&t), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let secret = b["data"]["secret"].as_str().unwrap().to_owned();
    let url = b["data"]["otpauth_url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/Watch%20Party:mia%40example.com?"),
        "{url}"
    );
    assert!(url.contains(&format!("secret={secret}")));

    let (s, b) = m
        .app
        .post_json("/api/auth/2fa/enable/", Some(&t), json!({"code": "000000"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    // The same code is replayed below (not a fresh one: the 30 s step may have turned).
    let enable_code = code_for(&secret);
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/2fa/enable/",
            Some(&t),
            json!({"code": enable_code}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let codes: Vec<String> = b["data"]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    m.email("mia@example.com", "Security alert").await;

    // Login now asks for a code.
    let login = || {
        m.app.post_json(
            "/api/auth/login/",
            None,
            json!({"username": "mia", "password": STRONG_PASSWORD}),
        )
    };
    let (s, b) = login().await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["requires_2fa"], true);
    assert!(b["data"].get("access_token").is_none());
    let challenge = b["data"]["challenge_token"].as_str().unwrap().to_owned();
    // The code used to enable cannot be replayed within its window.
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/2fa/login/",
            None,
            json!({"challenge_token": challenge, "code": enable_code}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a used code is refused");
    // A recovery code works, once; the challenge is spent with it.
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/2fa/login/",
            None,
            json!({"challenge_token": challenge, "code": codes[0]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["data"]["access_token"].is_string());
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/2fa/login/",
            None,
            json!({"challenge_token": challenge, "code": codes[1]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the challenge works once");
    let (_, b) = login().await;
    let challenge = b["data"]["challenge_token"].as_str().unwrap().to_owned();
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/2fa/login/",
            None,
            json!({"challenge_token": challenge, "code": codes[0]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a recovery code works once");

    // Disable with the password.
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/2fa/disable/",
            Some(&t),
            json!({"password": "not it at all"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = m
        .app
        .post_json(
            "/api/auth/2fa/disable/",
            Some(&t),
            json!({"password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = login().await;
    assert!(b["data"]["access_token"].is_string());
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_tell_the_owner() {
    let m = MailEnv::new().await;
    m.app.register("noah").await;
    let login = |username: &str, password: &str| {
        m.app.post_json(
            "/api/auth/login/",
            None,
            json!({"username": username, "password": password}),
        )
    };
    for _ in 0..10 {
        let (s, _) = login("noah", "bad guess number").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, b) = login("noah", STRONG_PASSWORD).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(b["code"], "account_locked");
    let notice = m
        .email(
            "noah@example.com",
            "Sign-in to your Watch Party account is paused",
        )
        .await;
    assert!(notice.contains("failed attempts"), "{notice}");
    assert!(notice.contains("/unlock-account?token="), "{notice}");

    // A name no account has locks the same way: the answer tells no one which exist.
    for _ in 0..10 {
        let (s, b) = login("nobody_here", "bad guess number").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    }
    let (s, b) = login("nobody_here", STRONG_PASSWORD).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_locked")),
        "{b}"
    );

    // The owner lifts the pause with the mailed link, once, and signs in at once.
    let token = link_token(&notice);
    let (s, b) = m
        .app
        .post_json("/api/auth/unlock/", None, json!({"token": token}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = login("noah", STRONG_PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = m
        .app
        .post_json("/api/auth/unlock/", None, json!({"token": token}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "single use: {b}");
    assert!(b["errors"]["token"].is_array(), "{b}");
}

/// A stolen access token cannot be used to guess the password: the checks of password
/// change, email change and account deletion count towards the same lockout as
/// sign-ins (issue 13, item 2), and a locked account refuses them too.
#[tokio::test]
async fn password_checks_of_a_signed_in_user_lock_like_sign_ins() {
    let m = MailEnv::new().await;
    let r = m.app.register("rita").await;
    let token = r["access_token"].as_str().unwrap().to_owned();
    let wrong = "a wrong guess 123";
    let mut tries: Vec<(Method, &str, Value, &str)> = Vec::new();
    for _ in 0..8 {
        tries.push((
            Method::POST,
            "/api/auth/password/change/",
            json!({"current_password": wrong, "new_password": "Another-strong-pass-42"}),
            "current_password",
        ));
    }
    tries.push((
        Method::POST,
        "/api/auth/email/change/",
        json!({"new_email": "rita2@example.com", "password": wrong}),
        "password",
    ));
    tries.push((
        Method::DELETE,
        "/api/users/me/",
        json!({"password": wrong}),
        "password",
    ));
    for (method, path, body, field) in tries {
        let (s, b) = m.app.call(method, path, Some(&token), Some(body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert!(b["errors"][field].is_array(), "{path}: {b}");
    }
    // Ten wrong passwords: locked, for the right password too, here and at sign-in.
    let (s, b) = m
        .app
        .call(Method::POST, "/api/auth/password/change/", Some(&token),
              Some(json!({"current_password": STRONG_PASSWORD, "new_password": "Another-strong-pass-42"})))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_locked")),
        "{b}"
    );
    let (s, b) = m
        .app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "rita", "password": STRONG_PASSWORD}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_locked")),
        "{b}"
    );
    let alert = m
        .email(
            "rita@example.com",
            "Sign-in to your Watch Party account is paused",
        )
        .await;
    assert!(alert.contains("failed attempts"), "{alert}");
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_account_with_retry_after() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let mut last = None;
    for _ in 0..21 {
        let res = app
            .client
            .post(app.url("/api/auth/login/"))
            .json(&json!({"username": "olivia", "password": "whatever it is"}))
            .send()
            .await
            .unwrap();
        last = Some(res);
    }
    let res = last.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["code"], "rate_limited");
    // The limit lives in Redis: a second API replica sees the same count.
    let app2 = env.spawn_api().await;
    let (s, _) = app2
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "olivia", "password": "whatever it is"}),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn the_openapi_document_describes_the_auth_endpoints() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let doc: Value = app.get("/api/schema/").await.json().await.unwrap();
    for p in [
        "/api/auth/register/",
        "/api/auth/login/",
        "/api/auth/refresh/",
        "/api/auth/2fa/login/",
        "/api/users/me/",
        "/api/auth/password/reset/",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn two_factor_guesses_are_rate_limited() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let d = app.register("pete").await;
    let t = access(&d);
    let (_, b) = app
        .post_json("/api/auth/2fa/setup/", Some(&t), json!({}))
        .await;
    let secret = b["data"]["secret"].as_str().unwrap().to_owned();
    let (s, _) = app
        .post_json(
            "/api/auth/2fa/enable/",
            Some(&t),
            json!({"code": code_for(&secret)}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": "pete", "password": STRONG_PASSWORD}),
        )
        .await;
    let challenge = b["data"]["challenge_token"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    for guess in 0..6 {
        let (s, _) = app
            .post_json(
                "/api/auth/2fa/login/",
                None,
                json!({"challenge_token": challenge, "code": format!("{:06}", 111_111 * (guess % 9 + 1))}),
            )
            .await;
        statuses.push(s);
    }
    assert_eq!(&statuses[..5], &[StatusCode::BAD_REQUEST; 5]);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
}

/// Behind the documented load balancer (issue 13, item 8): with `TRUSTED_PROXIES` the
/// client's address comes from `X-Forwarded-For`, so one client's failures do not lock
/// out the rest of the site; successful sign-ins do not count; a client that writes
/// the header itself, from a peer that is not trusted, is not believed.
#[tokio::test]
async fn per_address_limits_see_the_client_behind_a_trusted_proxy() {
    let env = TestEnv::with_vars(&[("TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    let app = env.spawn_api().await;
    app.register("pia").await;
    let login = |from: &'static str, username: String, password: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/auth/login/"))
                .header("x-forwarded-for", format!("{from}, 127.0.0.1"))
                .json(&json!({"username": username, "password": password}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // 35 good sign-ins from one address: none counts.
    for _ in 0..35 {
        assert_eq!(
            login("198.51.100.7", "pia".into(), STRONG_PASSWORD).await,
            StatusCode::OK
        );
    }
    // 30 failures (different accounts, so the per-account limit stays out of it) from
    // one client, then that client is refused...
    for i in 0..30 {
        assert_eq!(
            login("203.0.113.5", format!("nobody{i}"), "wrong-guess-123").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("203.0.113.5", "pia".into(), STRONG_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and only that client.
    assert_eq!(
        login("198.51.100.7", "pia".into(), STRONG_PASSWORD).await,
        StatusCode::OK
    );
}

/// Without `TRUSTED_PROXIES` a forwarded address is not believed: all of one peer's
/// failures count together, whatever the header says.
#[tokio::test]
async fn a_client_cannot_choose_its_own_address() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    for i in 0..30 {
        let s = app
            .client
            .post(app.url("/api/auth/login/"))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .json(&json!({"username": format!("ghost{i}"), "password": "wrong-guess-123"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let s = app
        .client
        .post(app.url("/api/auth/login/"))
        .header("x-forwarded-for", "192.0.2.200")
        .json(&json!({"username": "ghost", "password": "wrong-guess-123"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sign_ups_resets_and_verification_mail_are_rate_limited() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let mails = |to: &'static str, kind: &'static str| {
        let db = env.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM emails WHERE to_address = $1 AND kind = $2",
            )
            .bind(to)
            .bind(kind)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let refused = |s: StatusCode, b: &Value| {
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
        assert_eq!(b["code"], "rate_limited", "{b}");
    };

    // Ten sign-ups an hour from one address; the eleventh is refused and makes nothing.
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(app.register(&format!("signup{i}")).await);
    }
    let (s, b) = app
        .post_json(
            "/api/auth/register/",
            None,
            json!({"username": "signup10", "email": "signup10@example.com", "password": STRONG_PASSWORD}),
        )
        .await;
    refused(s, &b);
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username = 'signup10'")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(made, 0);

    // Verification mail: five resends an hour per user, then 429 and no more mail.
    let token = access(&users[1]);
    for _ in 0..5 {
        let (s, b) = app
            .post_json("/api/auth/verify-email/resend/", Some(&token), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = app
        .post_json("/api/auth/verify-email/resend/", Some(&token), json!({}))
        .await;
    refused(s, &b);
    assert_eq!(mails("signup1@example.com", "verify_email").await, 1 + 5);
    // Another user's count is their own.
    let (s, b) = app
        .post_json(
            "/api/auth/verify-email/resend/",
            Some(&access(&users[2])),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Password resets: three mails an hour per address, answered the same past it (so
    // the answer does not say whether the address has an account).
    let reset = |email: String| {
        let app = &app;
        async move {
            app.post_json("/api/auth/password/reset/", None, json!({"email": email}))
                .await
        }
    };
    for _ in 0..5 {
        let (s, b) = reset("signup0@example.com".into()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let resets: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM emails WHERE to_address = 'signup0@example.com' \
         AND kind <> 'verify_email'",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(resets, 3, "three reset mails, then nothing more");
    // And ten reset requests an hour from one address, whatever the accounts.
    for i in 0..5 {
        let (s, b) = reset(format!("nobody{i}@example.com")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (s, b) = reset("signup3@example.com".into()).await;
    refused(s, &b);
    let to_3: i64 =
        sqlx::query_scalar("SELECT count(*) FROM emails WHERE to_address = 'signup3@example.com'")
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(to_3, 1, "nothing but the sign-up mail");
}
