//! Social groups (seed item 8) against the real services: public and private groups
//! and who sees them, joining, requests and their approval, invitations, roles, removal,
//! bans, hand-over when the last admin leaves, `member_count` exact under concurrent
//! joins, and the notifications each step sends.

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestApp, TestEnv, TestUser, eventually};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

async fn create_group(app: &TestApp, u: &TestUser, body: Value) -> String {
    let (s, b) = app
        .post_json("/api/social/groups/", Some(&u.token), body)
        .await;
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

async fn member_count(env: &TestEnv, gid: &str) -> (i32, i64) {
    sqlx::query_as(
        "SELECT g.member_count, (SELECT count(*) FROM group_members m WHERE m.group_id = g.id)
           FROM social_groups g WHERE g.id = $1::uuid",
    )
    .bind(gid)
    .fetch_one(&env.db)
    .await
    .unwrap()
}

async fn notifications(app: &TestApp, u: &TestUser) -> Vec<String> {
    let (_, b) = call(app, u, Method::GET, "/api/notifications/", None).await;
    b["data"]["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| n["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn public_and_private_groups_with_requests_invitations_roles_and_bans() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let workers = env
        .spawn_workers(&[(Queue::Notify, 4), (Queue::Email, 2)])
        .await;
    let owner = env.create_user("owner").await;
    let modr = env.create_user("modr").await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let eve = env.create_user("eve").await;

    // Validation names fields; unknown fields are refused.
    let (s, b) = app
        .post_json(
            "/api/social/groups/",
            Some(&owner.token),
            json!({"name": " ", "category": "c".repeat(51)}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["name"].is_array(), "{b}");
    let (s, _) = app
        .post_json(
            "/api/social/groups/",
            Some(&owner.token),
            json!({"name": "x", "owner": "me"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let public = create_group(
        &app,
        &owner,
        json!({"name": "Film club", "category": "movies", "description": "Classics"}),
    )
    .await;
    let private = create_group(
        &app,
        &owner,
        json!({"name": "Secret society", "is_private": true}),
    )
    .await;
    let (s, b) = call(
        &app,
        &owner,
        Method::GET,
        &format!("/api/social/groups/{public}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["admin"]["username"], "owner");
    assert_eq!(b["data"]["my_role"], "admin");
    assert_eq!(b["data"]["member_count"], 1);

    // A private group is invisible to outsiders: 404 and absent from lists.
    let (s, _) = call(
        &app,
        &eve,
        Method::GET,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &app,
        &eve,
        Method::GET,
        &format!("/api/social/groups/{private}/members/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = call(&app, &eve, Method::GET, "/api/social/groups/", None).await;
    let names: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Film club"]);
    assert_eq!(b["data"]["count"], 1);
    let (_, b) = call(
        &app,
        &eve,
        Method::GET,
        "/api/social/groups/?search=film&category=movies",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 1);
    let (_, b) = call(
        &app,
        &eve,
        Method::GET,
        "/api/social/groups/?search=secret",
        None,
    )
    .await;
    assert_eq!(
        b["data"]["count"], 0,
        "a private group is not found by search either"
    );
    let (_, b) = call(
        &app,
        &owner,
        Method::GET,
        "/api/social/groups/?mine=true",
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 2);

    // Joining a public group; joining twice changes nothing.
    for _ in 0..2 {
        let (s, b) = call(
            &app,
            &ann,
            Method::POST,
            &format!("/api/social/groups/{public}/join/"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["data"]["status"], "joined");
        assert_eq!(b["data"]["group"]["my_role"], "member");
    }
    assert_eq!(member_count(&env, &public).await, (2, 2));

    // Who may edit: not a member (403 before the body is read), an admin may.
    let (s, b) = call(
        &app,
        &ann,
        Method::PATCH,
        &format!("/api/social/groups/{public}/"),
        Some(json!({"name": 5})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("/api/social/groups/{public}/"),
        Some(json!({"description": "Old films"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["description"], "Old films");
    assert_eq!(b["data"]["name"], "Film club");

    // Roles: the owner makes modr a moderator (after modr joins); a member may not.
    let (s, _) = call(
        &app,
        &modr,
        Method::POST,
        &format!("/api/social/groups/{public}/join/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let role_path = format!("/api/social/groups/{public}/members/{}/", modr.id);
    let (s, _) = call(
        &app,
        &ann,
        Method::PUT,
        &role_path,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &app,
        &owner,
        Method::PUT,
        &role_path,
        Some(json!({"role": "moderator"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["role"], "moderator");
    let (s, b) = call(
        &app,
        &owner,
        Method::PUT,
        &role_path,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["role"].is_array(), "{b}");
    let (s, b) = call(
        &app,
        &owner,
        Method::PUT,
        &format!("/api/social/groups/{public}/members/{}/", owner.id),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("last_admin"))
    );
    let (_, b) = call(
        &app,
        &ann,
        Method::GET,
        &format!("/api/social/groups/{public}/members/"),
        None,
    )
    .await;
    let roles: Vec<(&str, &str)> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"]["username"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![("owner", "admin"), ("modr", "moderator"), ("ann", "member")]
    );

    // A private group: an outsider who holds its id (a shared link) asks to join; the
    // admins and moderators hear of it, once.
    let join_private = format!("/api/social/groups/{private}/join/");
    for _ in 0..2 {
        let (s, b) = call(
            &app,
            &ann,
            Method::POST,
            &join_private,
            Some(json!({"message": "Let me in"})),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        assert_eq!(b["data"]["status"], "requested");
    }
    let (s, _) = call(
        &app,
        &ann,
        Method::GET,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "asking does not open the group");
    let (s, _) = call(&app, &eve, Method::POST, &join_private, None).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, _) = call(
        &app,
        &eve,
        Method::POST,
        &format!("/api/social/groups/{}/join/", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let requests = format!("/api/social/groups/{private}/requests/");
    let (s, _) = call(&app, &ann, Method::GET, &requests, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = call(&app, &owner, Method::GET, &requests, None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["count"], 2);
    assert_eq!(b["data"]["results"][0]["user"]["username"], "ann");
    assert_eq!(b["data"]["results"][0]["message"], "Let me in");
    // modr is not in the private group: it does not exist for him.
    let approve_ann = format!("/api/social/groups/{private}/requests/{}/approve/", ann.id);
    let (s, _) = call(&app, &modr, Method::POST, &approve_ann, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, &owner, Method::POST, &approve_ann, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(&app, &owner, Method::POST, &approve_ann, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "decided once");
    let (s, _) = call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/social/groups/{private}/requests/{}/reject/", eve.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = call(
        &app,
        &ann,
        Method::GET,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(
        (s, b["data"]["my_role"].clone()),
        (StatusCode::OK, json!("member"))
    );
    let (s, _) = call(
        &app,
        &eve,
        Method::GET,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Invitations: only admins and moderators invite; an invited user sees the group
    // and joins directly; declining hides it again.
    let invite = format!("/api/social/groups/{private}/invite/");
    let (s, _) = call(
        &app,
        &ann,
        Method::POST,
        &invite,
        Some(json!({"user_id": bob.id})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a plain member");
    let (s, _) = call(
        &app,
        &eve,
        Method::POST,
        &invite,
        Some(json!({"user_id": bob.id})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "an outsider");
    let (s, _) = call(
        &app,
        &eve,
        Method::POST,
        &invite,
        Some(json!({"nonsense": 1})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "permission before the body");
    for _ in 0..2 {
        let (s, b) = call(
            &app,
            &owner,
            Method::POST,
            &invite,
            Some(json!({"user_id": bob.id})),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    let (s, b) = call(
        &app,
        &owner,
        Method::POST,
        &invite,
        Some(json!({"user_id": uuid::Uuid::now_v7()})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["user_id"].is_array());
    let (s, b) = call(
        &app,
        &owner,
        Method::POST,
        &invite,
        Some(json!({"user_id": ann.id})),
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("already_a_member"))
    );
    let (s, b) = call(
        &app,
        &bob,
        Method::GET,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(
        (s, b["data"]["invited"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (s, _) = call(
        &app,
        &bob,
        Method::DELETE,
        &format!("/api/social/groups/{private}/invitation/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        &app,
        &bob,
        Method::GET,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &app,
        &owner,
        Method::POST,
        &invite,
        Some(json!({"user_id": bob.id})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = call(&app, &bob, Method::POST, &join_private, None).await;
    assert_eq!(
        (s, b["data"]["status"].clone()),
        (StatusCode::OK, json!("joined")),
        "{b}"
    );
    assert_eq!(member_count(&env, &private).await, (3, 3));

    // Bans: the moderator bans a plain member (not the admin); the banned user cannot
    // come back until unbanned.
    let bans = format!("/api/social/groups/{public}/bans/");
    let (s, _) = call(
        &app,
        &modr,
        Method::POST,
        &bans,
        Some(json!({"user_id": owner.id})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &app,
        &ann,
        Method::POST,
        &bans,
        Some(json!({"user_id": modr.id})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &app,
        &modr,
        Method::POST,
        &bans,
        Some(json!({"user_id": ann.id, "reason": "spam"})),
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    assert_eq!(member_count(&env, &public).await, (2, 2));
    let (s, b) = call(
        &app,
        &ann,
        Method::POST,
        &format!("/api/social/groups/{public}/join/"),
        None,
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::FORBIDDEN, json!("banned"))
    );
    let (_, b) = call(&app, &modr, Method::GET, &bans, None).await;
    assert_eq!(b["data"][0]["user"]["username"], "ann");
    assert_eq!(b["data"][0]["reason"], "spam");
    let (s, _) = call(
        &app,
        &modr,
        Method::DELETE,
        &format!("/api/social/groups/{public}/bans/{}/", ann.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        &app,
        &ann,
        Method::POST,
        &format!("/api/social/groups/{public}/join/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Removal: a moderator removes plain members only; an admin removes the moderator.
    let (s, _) = call(
        &app,
        &modr,
        Method::DELETE,
        &format!("/api/social/groups/{public}/members/{}/", owner.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/social/groups/{public}/members/{}/", owner.id),
        None,
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("use_leave"))
    );

    // Hand-over: the admin leaves, the moderator becomes admin (and the group's
    // `admin`); then the last members leave and the group ends.
    let (s, _) = call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/social/groups/{public}/leave/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, b) = call(
        &app,
        &ann,
        Method::GET,
        &format!("/api/social/groups/{public}/"),
        None,
    )
    .await;
    assert_eq!(b["data"]["admin"]["username"], "modr");
    let (_, b) = call(
        &app,
        &modr,
        Method::GET,
        &format!("/api/social/groups/{public}/"),
        None,
    )
    .await;
    assert_eq!(b["data"]["my_role"], "admin");
    let (s, _) = call(
        &app,
        &modr,
        Method::DELETE,
        &format!("/api/social/groups/{public}/members/{}/", ann.id),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        &app,
        &modr,
        Method::POST,
        &format!("/api/social/groups/{public}/leave/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = call(
        &app,
        &modr,
        Method::GET,
        &format!("/api/social/groups/{public}/"),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the last member's leaving ended the group"
    );
    let (s, b) = call(
        &app,
        &eve,
        Method::POST,
        &format!("/api/social/groups/{public}/leave/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    // Deleting: admins only.
    let (s, _) = call(
        &app,
        &ann,
        Method::DELETE,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("/api/social/groups/{private}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // The notifications, each once: the owner had two join requests, ann an approval,
    // bob one per invitation made (two: the first was declined, the repeat of it was
    // no new invitation), in-app.
    let expect = [
        (&owner, "group.join_request", 2),
        (&ann, "group.request_approved", 1),
        (&bob, "group.invite", 2),
    ];
    for (u, kind, n) in expect {
        let got = eventually(Duration::from_secs(10), "notifications", || async {
            let k = notifications(&app, u).await;
            let c = k.iter().filter(|x| x.as_str() == kind).count();
            (c >= n).then_some(c)
        })
        .await;
        assert_eq!(got, n, "{} {kind}", u.username);
    }
    workers.shutdown().await;
}

/// 60 users join one group at once while 20 of them leave again: `member_count`
/// equals the rows.
#[tokio::test]
async fn member_count_is_exact_under_concurrent_joins_and_leaves() {
    let env = TestEnv::new().await;
    let app = Arc::new(env.spawn_api().await);
    let owner = env.create_user("owner").await;
    let gid = create_group(&app, &owner, json!({"name": "Crowd"})).await;
    let mut users = Vec::new();
    for i in 0..60 {
        users.push(env.create_user(&format!("crowd{i}")).await);
    }
    let statuses: Vec<StatusCode> = futures::stream::iter(users.iter().enumerate())
        .map(|(i, u)| {
            let app = app.clone();
            let gid = gid.clone();
            async move {
                let (s, _) = call(
                    &app,
                    u,
                    Method::POST,
                    &format!("/api/social/groups/{gid}/join/"),
                    None,
                )
                .await;
                if i % 3 == 0 {
                    call(
                        &app,
                        u,
                        Method::POST,
                        &format!("/api/social/groups/{gid}/leave/"),
                        None,
                    )
                    .await;
                }
                s
            }
        })
        .buffer_unordered(60)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(member_count(&env, &gid).await, (41, 41));
}

/// A group's events and parties: its members see them (a private group party is joined
/// without its code), outsiders do not; only members attach things to a group.
#[tokio::test]
async fn group_events_and_parties_are_seen_by_the_groups_members() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("owner").await;
    let member = env.create_user("member").await;
    let outsider = env.create_user("outsider").await;
    let gid = create_group(
        &app,
        &owner,
        json!({"name": "Cinephiles", "is_private": true}),
    )
    .await;
    call(
        &app,
        &owner,
        Method::POST,
        &format!("/api/social/groups/{gid}/invite/"),
        Some(json!({"user_id": member.id})),
    )
    .await;
    let (s, _) = call(
        &app,
        &member,
        Method::POST,
        &format!("/api/social/groups/{gid}/join/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let start = (chrono::Utc::now() + chrono::TimeDelta::hours(2)).to_rfc3339();
    let end = (chrono::Utc::now() + chrono::TimeDelta::hours(3)).to_rfc3339();
    let event = json!({"title": "Club screening", "start_time": start, "end_time": end,
                       "is_public": false, "group_id": gid});
    let (s, b) = app
        .post_json("/api/events/", Some(&outsider.token), event.clone())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["group_id"].is_array());
    let (s, b) = app
        .post_json("/api/events/", Some(&owner.token), event)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["group_id"], gid.as_str());
    let eid = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &app,
        &member,
        Method::GET,
        &format!("/api/events/{eid}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        &app,
        &outsider,
        Method::GET,
        &format!("/api/events/{eid}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, b) = call(
        &app,
        &member,
        Method::GET,
        &format!("/api/events/?group={gid}"),
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 1);
    let (_, b) = call(
        &app,
        &outsider,
        Method::GET,
        &format!("/api/events/?group={gid}"),
        None,
    )
    .await;
    assert_eq!(b["data"]["count"], 0);
    let (s, b) = call(
        &app,
        &owner,
        Method::PUT,
        &format!("/api/events/{eid}/"),
        Some(json!({"group_id": gid})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    let party = json!({"title": "Club night", "external_url": "https://example.com/v.mp4",
                       "visibility": "private", "group_id": gid});
    let (s, _) = app
        .post_json("/api/parties/", Some(&outsider.token), party.clone())
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = app
        .post_json("/api/parties/", Some(&owner.token), party)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["group_id"], gid.as_str());
    let pid = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        &app,
        &outsider,
        Method::GET,
        &format!("/api/parties/{pid}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(
        &app,
        &outsider,
        Method::POST,
        &format!("/api/parties/{pid}/join/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = call(
        &app,
        &member,
        Method::POST,
        &format!("/api/parties/{pid}/join/"),
        None,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a member joins the group's private party without its code: {b}"
    );
    // The group's parties: the members' list holds this one, the outsider's none; a
    // party outside the group is not in it.
    let (s, _) = app
        .post_json(
            "/api/parties/",
            Some(&owner.token),
            json!({"title": "Elsewhere", "external_url": "https://example.com/v.mp4"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for (u, n) in [(&member, 1), (&owner, 1), (&outsider, 0)] {
        let (s, b) = call(
            &app,
            u,
            Method::GET,
            &format!("/api/parties/?group={gid}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["data"]["count"], n, "{}: {b}", u.username);
        if n == 1 {
            assert_eq!(b["data"]["results"][0]["id"], pid.as_str());
        }
    }
    let (s, b) = call(&app, &member, Method::GET, "/api/parties/?group=nope", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("/api/parties/{pid}/"),
        Some(json!({"group_id": gid})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}
