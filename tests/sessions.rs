//! Sockets are bound to the session they were opened with (issue 12): logout,
//! logout-all, a revoked session, a new password, a suspension, a deletion and the
//! token's expiry close the user's party and notification sockets (close code 4001),
//! on every node, and only the sockets of the sessions that ended. An `auth` frame with a
//! fresh token of the same session keeps a socket open past the first token's expiry.

mod common;

use std::time::Duration;

use common::{STRONG_PASSWORD, TestApp, TestEnv, ws::Ws};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A signed-in session of a registered user.
struct Session {
    user_id: String,
    access: String,
    refresh: String,
}

fn session(data: &Value) -> Session {
    Session {
        user_id: data["user"]["id"].as_str().unwrap_or_default().to_owned(),
        access: data["access_token"].as_str().unwrap().to_owned(),
        refresh: data["refresh_token"].as_str().unwrap().to_owned(),
    }
}

async fn login(app: &TestApp, username: &str, password: &str) -> Session {
    let (s, b) = app
        .post_json(
            "/api/auth/login/",
            None,
            json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    session(&b["data"])
}

/// A notification socket of `s`, past its first frame.
async fn notifications(app: &TestApp, s: &Session) -> Ws {
    let mut ws = Ws::open(app, &format!("/ws/notifications/?token={}", s.access)).await;
    ws.expect("notifications_state").await;
    ws
}

/// A party of `host`'s that `s` joined, and `s`'s socket in it (past the snapshot).
async fn party_socket(app: &TestApp, host: &Session, s: &Session) -> Ws {
    let (st, b) = app
        .post_json(
            "/api/parties/",
            Some(&host.access),
            json!({"title": "Room", "external_url": "https://example.com/v.mp4"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let pid = b["data"]["id"].as_str().unwrap().to_owned();
    if host.access != s.access {
        let (st, b) = app
            .post_json(
                &format!("/api/parties/{pid}/join/"),
                Some(&s.access),
                json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    Ws::connect(app, &pid, &s.access).await.0
}

/// The socket closes within 2 s with 4001 and the `error` frame's `reason`.
async fn closed_for(ws: &mut Ws, reason: &str) {
    let (code, error) = tokio::time::timeout(Duration::from_secs(2), ws.expect_closed())
        .await
        .unwrap_or_else(|_| panic!("not closed within 2 s (expected {reason})"));
    assert_eq!(code, Some(4001), "{error:?}");
    assert_eq!(error.as_deref(), Some(reason));
}

/// The socket is still open and answering.
async fn still_open(ws: &mut Ws) {
    ws.send("ping", json!({})).await;
    ws.expect("pong").await;
}

#[tokio::test]
async fn ending_a_session_closes_its_sockets_on_every_node_and_no_others() {
    let env = TestEnv::new().await;
    let (a, b) = (env.spawn_node().await, env.spawn_node().await);
    let ann = session(&a.register("ann").await);
    let ann2 = login(&a, "ann", STRONG_PASSWORD).await;
    let bob = session(&a.register("bob").await);

    // Logout of one session: its sockets close on both nodes; the other session's and
    // another user's stay.
    let mut n1 = notifications(&a, &ann).await;
    let mut p1 = party_socket(&b, &bob, &ann).await;
    let mut other = notifications(&b, &ann2).await;
    let mut bobs = notifications(&b, &bob).await;
    let (s, body) = a
        .post_json(
            "/api/auth/logout/",
            None,
            json!({"refresh_token": ann.refresh}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    closed_for(&mut n1, "session_revoked").await;
    closed_for(&mut p1, "session_revoked").await;
    still_open(&mut other).await;
    still_open(&mut bobs).await;

    // Revoking a session from the session list.
    let ann3 = login(&a, "ann", STRONG_PASSWORD).await;
    let mut n3 = notifications(&b, &ann3).await;
    let (_, list) = a
        .call(Method::GET, "/api/auth/sessions/", Some(&ann2.access), None)
        .await;
    let third = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("another session")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _) = a
        .call(
            Method::DELETE,
            &format!("/api/auth/sessions/{third}/"),
            Some(&ann2.access),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    closed_for(&mut n3, "session_revoked").await;
    still_open(&mut other).await;

    // Logout-all: every session of ann, on both nodes; bob is untouched.
    let mut p2 = party_socket(&a, &bob, &ann2).await;
    let (s, _) = a
        .post_json("/api/auth/logout-all/", Some(&ann2.access), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    closed_for(&mut other, "session_revoked").await;
    closed_for(&mut p2, "session_revoked").await;
    still_open(&mut bobs).await;
}

#[tokio::test]
async fn a_new_password_a_suspension_and_a_deletion_close_the_sockets() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let cat = session(&app.register("cat").await);
    let cat2 = login(&app, "cat", STRONG_PASSWORD).await;

    // A password change keeps the session it was made from, ends the others.
    let mut kept = notifications(&app, &cat).await;
    let mut ended = party_socket(&app, &cat, &cat2).await;
    let new_password = "lantern-quarry-meadow-58";
    let (s, b) = app
        .post_json(
            "/api/auth/password/change/",
            Some(&cat.access),
            json!({"current_password": STRONG_PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    closed_for(&mut ended, "session_revoked").await;
    still_open(&mut kept).await;

    // A suspension ends every socket of the account.
    let admin = env.create_admin("admin").await;
    let (s, b) = app
        .post_json(
            &format!("/api/admin/users/{}/suspend/", cat.user_id),
            Some(&admin.token),
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    closed_for(&mut kept, "account_suspended").await;

    // A deletion request too.
    let dan = session(&app.register("dan").await);
    let mut dans = notifications(&app, &dan).await;
    let (s, b) = app
        .call(
            Method::DELETE,
            "/api/users/me/",
            Some(&dan.access),
            Some(json!({"password": STRONG_PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    closed_for(&mut dans, "session_revoked").await;
}

#[tokio::test]
async fn a_socket_lives_as_long_as_its_token_unless_renewed() {
    let env = TestEnv::with_vars(&[("ACCESS_TOKEN_TTL_SECS", "3")]).await;
    let app = env.spawn_node().await;
    let eve = session(&app.register("eve").await);
    let mut plain = notifications(&app, &eve).await;
    let mut renewed = party_socket(&app, &eve, &eve).await;

    // A fresh token of the same session (issued a second later, so it expires later:
    // `exp` counts whole seconds) renews the party socket...
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, b) = app
        .post_json(
            "/api/auth/refresh/",
            None,
            json!({"refresh_token": eve.refresh}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let fresh = b["data"]["access_token"].as_str().unwrap().to_owned();
    renewed.send("auth", json!({"token": fresh})).await;
    let ok = renewed.expect("auth_ok").await;
    assert!(ok["data"]["expires_at"].as_i64().unwrap() > chrono::Utc::now().timestamp_millis());
    // ...while a token of another user, or garbage, is refused and changes nothing.
    let other = session(&app.register("fay").await);
    renewed.send("auth", json!({"token": other.access})).await;
    assert_eq!(renewed.expect_error().await, "invalid_token");
    renewed.send("auth", json!({"token": 5})).await;
    assert_eq!(renewed.expect_error().await, "invalid_data");

    // The socket that was not renewed closes when its token expires; the renewed one
    // outlives it, then closes when the fresh token expires.
    closed_for(&mut plain, "token_expired").await;
    still_open(&mut renewed).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    closed_for(&mut renewed, "token_expired").await;
}
