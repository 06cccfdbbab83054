//! Party polls (seed item 6) over REST and on the party socket, against the real
//! services: who may create, read, vote, close and delete; hidden and anonymous
//! results; multiple choice; counts exact under concurrent votes; closing on time,
//! once, with a controlled clock; votes as analytics events in ClickHouse.

mod common;

use std::{sync::Arc, time::Duration};

use common::{TestApp, TestEnv, TestUser, eventually, ws::Ws};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

async fn party(app: &TestApp, host: &TestUser) -> String {
    let (s, b) = app
        .post_json(
            "/api/parties/",
            Some(&host.token),
            json!({"title": "Poll night", "external_url": "https://example.com/v.mp4", "max_members": 500}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["data"]["id"].as_str().unwrap().to_owned()
}

async fn join(app: &TestApp, u: &TestUser, pid: &str) {
    let (s, b) = app
        .post_json(
            &format!("/api/parties/{pid}/join/"),
            Some(&u.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

async fn get(app: &TestApp, u: &TestUser, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, Some(&u.token), None).await
}

async fn create_poll(app: &TestApp, u: &TestUser, pid: &str, body: Value) -> Value {
    let (s, b) = app
        .post_json(
            &format!("/api/interactive/parties/{pid}/polls/"),
            Some(&u.token),
            body,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["data"].clone()
}

fn option(poll: &Value, i: usize) -> String {
    poll["options"][i]["id"].as_str().unwrap().to_owned()
}

fn counts(poll: &Value) -> Vec<Value> {
    poll["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["votes_count"].clone())
        .collect()
}

async fn vote(app: &TestApp, u: &TestUser, poll: &str, body: Value) -> (StatusCode, Value) {
    app.post_json(
        &format!("/api/interactive/polls/{poll}/respond/"),
        Some(&u.token),
        body,
    )
    .await
}

#[tokio::test]
async fn polls_over_rest_and_the_socket_with_who_may_do_what() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let host = env.create_user("host").await;
    let cohost = env.create_user("cohost").await;
    let member = env.create_user("member").await;
    let other = env.create_user("other").await;
    let stranger = env.create_user("stranger").await;
    let blocked = env.create_user("blocked").await;
    let pid = party(&app, &host).await;
    for u in [&cohost, &member, &other] {
        join(&app, u, &pid).await;
    }
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/parties/{pid}/members/{}/", cohost.id),
            Some(&host.token),
            Some(json!({"role": "cohost"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app
        .post_json(
            "/api/social/blocks/",
            Some(&host.token),
            json!({"user_id": blocked.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (mut hs, _) = Ws::connect(&app, &pid, &host.token).await;
    let (mut ms, snap) = Ws::connect(&app, &pid, &member.token).await;
    assert_eq!(snap["data"]["polls"], json!([]));
    let polls_path = format!("/api/interactive/parties/{pid}/polls/");

    // Who may create: not a member, and not a plain member, even with a body that is
    // not valid (permission is checked before the body is read).
    for (u, code) in [
        (&member, "permission_denied"),
        (&stranger, "permission_denied"),
    ] {
        let (s, b) = app
            .post_json(&polls_path, Some(&u.token), json!({"question": 5}))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{} {b}", u.username);
        assert_eq!(b["code"], code);
    }
    let (s, _) = app
        .post_json(&polls_path, Some(&blocked.token), json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a blocked user does not see the party"
    );
    // Bad bodies name their fields.
    let (s, b) = app
        .post_json(&polls_path, Some(&host.token), json!({"question": 5}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["question"].is_array(), "{b}");
    for (body, field) in [
        (json!({"question": "Q?", "options": ["one"]}), "options"),
        (json!({"question": "Q?", "options": ["a", "A"]}), "options"),
        (json!({"question": " ", "options": ["a", "b"]}), "question"),
        (
            json!({"question": "Q?", "options": ["a", "b"], "duration": 5}),
            "duration",
        ),
    ] {
        let (s, b) = app.post_json(&polls_path, Some(&host.token), body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }
    let (s, b) = app
        .post_json(
            &polls_path,
            Some(&host.token),
            json!({"question": "Q?", "options": ["a", "b"], "color": "red"}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {b}"
    );

    // The host creates a poll; the sockets hear of it.
    let poll = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "  Snack break?  ", "options": ["Now", "After this episode", "Never"]}),
    )
    .await;
    assert_eq!(poll["question"], "Snack break?");
    assert_eq!(poll["is_active"], true);
    assert_eq!(poll["results_visible"], true);
    assert_eq!(counts(&poll), vec![json!(0), json!(0), json!(0)]);
    assert_eq!(poll["creator"]["username"], "host");
    let poll_id = poll["id"].as_str().unwrap().to_owned();
    let created = ms.expect("poll_created").await;
    assert_eq!(created["data"]["id"], poll_id.as_str());
    assert_eq!(created["data"]["options"][1]["text"], "After this episode");

    // A member votes over REST; the same vote again changes nothing; a new choice
    // moves the vote.
    let (s, b) = vote(
        &app,
        &member,
        &poll_id,
        json!({"option_id": option(&poll, 0)}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["my_votes"], json!([option(&poll, 0)]));
    assert_eq!(counts(&b["data"]), vec![json!(1), json!(0), json!(0)]);
    let u = hs.expect("poll_updated").await;
    assert_eq!(u["data"]["poll_id"], poll_id.as_str());
    assert_eq!(u["data"]["voters_count"], 1);
    assert_eq!(u["data"]["options"][0]["votes_count"], 1);
    let (s, b) = vote(
        &app,
        &member,
        &poll_id,
        json!({"option_ids": [option(&poll, 0)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b["data"]["version"], u["data"]["version"],
        "nothing changed"
    );
    let (s, b) = vote(
        &app,
        &member,
        &poll_id,
        json!({"option_ids": [option(&poll, 2)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(counts(&b["data"]), vec![json!(0), json!(0), json!(1)]);
    assert_eq!(b["data"]["voters_count"], 1);
    // Wrong choices name the field.
    for body in [
        json!({"option_ids": [option(&poll, 0), option(&poll, 1)]}),
        json!({"option_ids": []}),
        json!({}),
        json!({"option_id": uuid::Uuid::now_v7()}),
        json!({"option_id": option(&poll, 0), "option_ids": [option(&poll, 0)]}),
    ] {
        let (s, b) = vote(&app, &member, &poll_id, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b["errors"]["option_ids"].is_array(), "{body}: {b}");
    }
    let (s, _) = vote(&app, &member, &poll_id, json!({"option_id": "soon"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // Outsiders: 403 for a visible party they are not in, 404 otherwise.
    let (s, b) = vote(
        &app,
        &stranger,
        &poll_id,
        json!({"option_id": option(&poll, 0)}),
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_a_member"))
    );
    let (s, _) = vote(&app, &stranger, &poll_id, json!({"bad": true})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "before the body is read");
    for u in [&stranger, &blocked] {
        let (s, _) = get(&app, u, &format!("/api/interactive/polls/{poll_id}/")).await;
        assert_ne!(s, StatusCode::OK, "{}", u.username);
        let (s, _) = get(&app, u, &polls_path).await;
        assert_ne!(s, StatusCode::OK, "{}", u.username);
    }
    let (s, _) = get(
        &app,
        &blocked,
        &format!("/api/interactive/polls/{poll_id}/"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for path in [
        format!("/api/interactive/polls/{}/", uuid::Uuid::now_v7()),
        "/api/interactive/polls/not-an-id/".to_owned(),
    ] {
        let (s, _) = get(&app, &member, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }

    // Another member votes on the socket; the voter gets `poll_voted`, others the counts.
    let (mut os, _) = Ws::connect(&app, &pid, &other.token).await;
    os.send(
        "poll_vote",
        json!({"poll_id": poll_id, "option_ids": [option(&poll, 2)]}),
    )
    .await;
    let ack = os.expect("poll_voted").await;
    assert_eq!(ack["data"]["option_ids"], json!([option(&poll, 2)]));
    assert_eq!(ack["data"]["changed"], true);
    hs.expect_where("poll_updated", |f| f["data"]["voters_count"] == 2)
        .await;
    for (data, code) in [
        (json!({"poll_id": poll_id}), "invalid_data"),
        (
            json!({"poll_id": uuid::Uuid::now_v7(), "option_id": option(&poll, 0)}),
            "invalid_data",
        ),
        (
            json!({"poll_id": poll_id, "option_ids": [option(&poll, 0), option(&poll, 1)]}),
            "invalid_data",
        ),
    ] {
        os.send("poll_vote", data).await;
        assert_eq!(os.expect_error().await, code);
    }

    // Lists, filters and the voters of a poll that is not anonymous.
    let (s, b) = get(&app, &member, &format!("{polls_path}?status=active")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["count"], 1);
    assert_eq!(
        b["data"]["results"][0]["my_votes"],
        json!([option(&poll, 2)])
    );
    let (s, b) = get(&app, &member, &format!("{polls_path}?status=closed")).await;
    assert_eq!((s, b["data"]["count"].clone()), (StatusCode::OK, json!(0)));
    let (s, b) = get(&app, &member, &format!("{polls_path}?status=soon")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["status"].is_array(), "{b}");
    let (s, b) = get(
        &app,
        &host,
        &format!("/api/interactive/polls/{poll_id}/votes/"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["count"], 2);
    let voters: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["user"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(voters, vec!["member", "other"]);

    // A socket that connects now has the open poll and its own vote in the snapshot.
    let (_again, snap) = Ws::connect(&app, &pid, &member.token).await;
    assert_eq!(snap["data"]["polls"][0]["id"], poll_id.as_str());
    assert_eq!(
        snap["data"]["polls"][0]["my_votes"],
        json!([option(&poll, 2)])
    );

    // Closing: not a plain member or a co-host who did not create it; the host may.
    let close = format!("/api/interactive/polls/{poll_id}/close/");
    for u in [&member, &cohost] {
        let (s, _) = app.post_json(&close, Some(&u.token), json!({})).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{}", u.username);
    }
    let (s, b) = app.post_json(&close, Some(&host.token), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["is_active"], false);
    assert_eq!(b["data"]["closed_reason"], "closed");
    let closed = ms.expect("poll_closed").await;
    assert_eq!(counts(&closed["data"]), vec![json!(0), json!(0), json!(2)]);
    assert_eq!(closed["data"]["voters_count"], 2);
    let (s, b) = app.post_json(&close, Some(&host.token), json!({})).await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("poll_closed"))
    );
    let (s, b) = vote(
        &app,
        &member,
        &poll_id,
        json!({"option_id": option(&poll, 0)}),
    )
    .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("poll_closed"))
    );
    os.send(
        "poll_vote",
        json!({"poll_id": poll_id, "option_id": option(&poll, 0)}),
    )
    .await;
    assert_eq!(os.expect_error().await, "poll_closed");

    // A co-host's own poll: the co-host may close and delete it; a member may not.
    let mine = create_poll(
        &app,
        &cohost,
        &pid,
        json!({"question": "Next?", "options": ["x", "y"]}),
    )
    .await;
    let mine_id = mine["id"].as_str().unwrap();
    let path = format!("/api/interactive/polls/{mine_id}/");
    let (s, _) = app
        .call(Method::DELETE, &path, Some(&member.token), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .call(Method::DELETE, &path, Some(&cohost.token), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let gone = ms.expect("poll_deleted").await;
    assert_eq!(gone["data"]["poll_id"], mine_id);
    let (s, _) = get(&app, &member, &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Ten open polls at most.
    for i in 0..10 {
        create_poll(
            &app,
            &host,
            &pid,
            json!({"question": format!("Q{i}"), "options": ["a", "b"]}),
        )
        .await;
    }
    let (s, b) = app
        .post_json(
            &polls_path,
            Some(&host.token),
            json!({"question": "11th", "options": ["a", "b"]}),
        )
        .await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("too_many_polls"))
    );

    // Every vote that changed something is an analytics event in ClickHouse.
    let workers = env.spawn_workers(&[(Queue::Analytics, 100)]).await;
    let ch = wp_shared::clickhouse::client(&env.config);
    let n = eventually(Duration::from_secs(20), "poll votes in ClickHouse", || {
        let ch = ch.clone();
        async move {
            let n: u64 = ch
                .query("SELECT toUInt64(count()) FROM events FINAL WHERE event_type = 'poll.vote'")
                .fetch_one()
                .await
                .ok()?;
            (n >= 3).then_some(n)
        }
    })
    .await;
    workers.shutdown().await;
    assert_eq!(
        n, 3,
        "two REST votes that changed something and one socket vote"
    );
}

#[tokio::test]
async fn hidden_anonymous_and_multiple_choice_polls() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let host = env.create_user("host").await;
    let a = env.create_user("ann").await;
    let b = env.create_user("bob").await;
    let pid = party(&app, &host).await;
    join(&app, &a, &pid).await;
    join(&app, &b, &pid).await;
    let (mut bs, _) = Ws::connect(&app, &pid, &b.token).await;

    // Results hidden until the close: no counts anywhere while open, not even voters.
    let hidden = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Secret?", "options": ["yes", "no"], "hide_results": true}),
    )
    .await;
    let hid = hidden["id"].as_str().unwrap();
    assert_eq!(hidden["results_visible"], false);
    assert_eq!(counts(&hidden), vec![Value::Null, Value::Null]);
    let (s, v) = vote(&app, &a, hid, json!({"option_id": option(&hidden, 0)})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(counts(&v["data"]), vec![Value::Null, Value::Null]);
    assert_eq!(
        v["data"]["my_votes"],
        json!([option(&hidden, 0)]),
        "one's own vote is shown"
    );
    let u = bs.expect("poll_updated").await;
    assert_eq!(u["data"]["options"], Value::Null);
    assert_eq!(u["data"]["voters_count"], 1);
    let (s, _) = get(&app, &host, &format!("/api/interactive/polls/{hid}/votes/")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "voters are results too");
    let (s, c) = app
        .post_json(
            &format!("/api/interactive/polls/{hid}/close/"),
            Some(&host.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(counts(&c["data"]), vec![json!(1), json!(0)]);
    let (s, _) = get(&app, &b, &format!("/api/interactive/polls/{hid}/votes/")).await;
    assert_eq!(s, StatusCode::OK, "after the close");

    // Anonymous: counts yes, who voted never.
    let anon = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Honest?", "options": ["yes", "no"], "anonymous": true}),
    )
    .await;
    let aid = anon["id"].as_str().unwrap();
    vote(&app, &a, aid, json!({"option_id": option(&anon, 1)})).await;
    let (s, c) = app
        .post_json(
            &format!("/api/interactive/polls/{aid}/close/"),
            Some(&host.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(counts(&c["data"]), vec![json!(0), json!(1)]);
    let (s, _) = get(&app, &host, &format!("/api/interactive/polls/{aid}/votes/")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Multiple choice: several options, one voter; taking the vote back.
    let multi = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Which?", "options": ["a", "b", "c"], "multiple_choice": true}),
    )
    .await;
    let mid = multi["id"].as_str().unwrap();
    let (s, v) = vote(
        &app,
        &a,
        mid,
        json!({"option_ids": [option(&multi, 2), option(&multi, 0), option(&multi, 2)]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["data"]["my_votes"],
        json!([option(&multi, 0), option(&multi, 2)]),
        "once each, in the poll's order"
    );
    assert_eq!(counts(&v["data"]), vec![json!(1), json!(0), json!(1)]);
    assert_eq!(v["data"]["voters_count"], 1);
    let (s, v) = app
        .call(
            Method::DELETE,
            &format!("/api/interactive/polls/{mid}/respond/"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(counts(&v["data"]), vec![json!(0), json!(0), json!(0)]);
    assert_eq!(v["data"]["voters_count"], 0);
    assert_eq!(v["data"]["my_votes"], json!([]));
}

/// 100 members vote at once, half of them twice with a different choice: the option
/// counters and `voters_count` equal what the vote rows say.
#[tokio::test]
async fn concurrent_votes_keep_the_counts_equal_to_the_rows() {
    const VOTERS: usize = 100;
    let env = TestEnv::new().await;
    let app = Arc::new(env.spawn_api().await);
    let host = env.create_user("host").await;
    let pid = party(&app, &host).await;
    let mut voters = Vec::new();
    for i in 0..VOTERS {
        let u = env.create_user(&format!("voter{i}")).await;
        join(&app, &u, &pid).await;
        voters.push(u);
    }
    let poll = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Best?", "options": ["a", "b", "c", "d"], "multiple_choice": true}),
    )
    .await;
    let pid_ = poll["id"].as_str().unwrap().to_owned();
    let opts: Vec<String> = (0..4).map(|i| option(&poll, i)).collect();
    // Each voter's own votes in order; the voters all at once.
    let statuses: Vec<StatusCode> = futures::stream::iter(voters.iter().enumerate())
        .map(|(i, u)| {
            let app = app.clone();
            let pid_ = pid_.clone();
            let mut choices = vec![vec![opts[i % 4].clone()]];
            if i % 2 == 0 {
                choices.push(vec![opts[(i + 1) % 4].clone(), opts[(i + 2) % 4].clone()]);
            }
            async move {
                let mut statuses = Vec::new();
                for choice in choices {
                    statuses.push(vote(&app, u, &pid_, json!({"option_ids": choice})).await.0);
                }
                statuses
            }
        })
        .buffer_unordered(VOTERS)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let rows: Vec<(uuid::Uuid, i32, i64)> = sqlx::query_as(
        "SELECT o.id, o.votes_count, (SELECT count(*) FROM party_poll_votes v WHERE v.option_id = o.id)
           FROM party_poll_options o WHERE o.poll_id = $1::uuid",
    )
    .bind(&pid_)
    .fetch_all(&env.db)
    .await
    .unwrap();
    for (id, counter, actual) in &rows {
        assert_eq!(i64::from(*counter), *actual, "option {id}");
    }
    let total: i64 = rows.iter().map(|r| r.2).sum();
    // Odd voters chose one option, even ones ended with two.
    assert_eq!(total, (VOTERS / 2 + VOTERS / 2 * 2) as i64);
    let (voters_count, distinct): (i32, i64) = sqlx::query_as(
        "SELECT p.voters_count, (SELECT count(DISTINCT user_id) FROM party_poll_votes v WHERE v.poll_id = p.id)
           FROM party_polls p WHERE p.id = $1::uuid",
    )
    .bind(&pid_)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(voters_count as i64, distinct);
    assert_eq!(distinct, VOTERS as i64);
}

/// A poll with a duration closes when its time is up: with the clock moved past it,
/// the sweep closes it once (two sweeps at once, or again later, close nothing more),
/// at its `closes_at`, and the party's sockets get `poll_closed` with the final counts.
/// Votes are refused from `closes_at` on, before any sweep ran.
#[tokio::test]
async fn polls_close_on_time_once() {
    let env = TestEnv::new().await;
    let app = env.spawn_node().await;
    let host = env.create_user("host").await;
    let m = env.create_user("member").await;
    let pid = party(&app, &host).await;
    join(&app, &m, &pid).await;
    let (mut ms, _) = Ws::connect(&app, &pid, &m.token).await;
    let poll = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Quick?", "options": ["a", "b"], "duration": 60}),
    )
    .await;
    let id = poll["id"].as_str().unwrap().to_owned();
    assert_eq!(poll["duration"], 60);
    let closes_at: chrono::DateTime<chrono::Utc> =
        poll["closes_at"].as_str().unwrap().parse().unwrap();
    let created: chrono::DateTime<chrono::Utc> =
        poll["created_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((closes_at - created).num_seconds(), 60);
    let (s, _) = vote(&app, &m, &id, json!({"option_id": option(&poll, 1)})).await;
    assert_eq!(s, StatusCode::OK);

    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());
    // Not yet due.
    assert_eq!(
        wp_workers::system::close_polls(&ctx, closes_at - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        0
    );
    let later = closes_at + chrono::Duration::seconds(1);
    let (x, y) = tokio::join!(
        wp_workers::system::close_polls(&ctx, later),
        wp_workers::system::close_polls(&ctx, later)
    );
    assert_eq!(x.unwrap() + y.unwrap(), 1, "closed once");
    assert_eq!(
        wp_workers::system::close_polls(&ctx, later).await.unwrap(),
        0
    );
    let closed = ms.expect("poll_closed").await;
    assert_eq!(closed["data"]["id"], id.as_str());
    assert_eq!(closed["data"]["closed_reason"], "expired");
    assert_eq!(counts(&closed["data"]), vec![json!(0), json!(1)]);
    let at: chrono::DateTime<chrono::Utc> = closed["data"]["closed_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(at, closes_at, "closed at its time, not at the sweep's");
    ms.expect_none("poll_closed", Duration::from_millis(600))
        .await;
    let (s, b) = vote(&app, &m, &id, json!({"option_id": option(&poll, 0)})).await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("poll_closed"))
    );
    // The party's members hear the result, once, through the notification pipeline.
    let workers = env.spawn_workers(&[(Queue::Notify, 2)]).await;
    let results = eventually(Duration::from_secs(10), "the poll results", || async {
        let (_, b) = get(&app, &host, "/api/notifications/?kind=poll.results").await;
        let items = b["data"]["results"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["body"], "\"Quick?\": b won (1 of 1).");
    workers.shutdown().await;

    // A poll whose time is up is closed for votes before any sweep runs.
    let quick = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Quicker?", "options": ["a", "b"], "duration": 10}),
    )
    .await;
    let qid = quick["id"].as_str().unwrap();
    sqlx::query("UPDATE party_polls SET closes_at = now() - interval '1 second', created_at = created_at - interval '11 seconds' WHERE id = $1::uuid")
        .bind(qid)
        .execute(&env.db)
        .await
        .unwrap();
    let (s, b) = vote(&app, &m, qid, json!({"option_id": option(&quick, 0)})).await;
    assert_eq!(
        (s, b["code"].clone()),
        (StatusCode::CONFLICT, json!("poll_closed"))
    );
    let (_, b) = get(&app, &m, &format!("/api/interactive/polls/{qid}/")).await;
    assert_eq!(b["data"]["is_active"], false);

    // A party that ends (its last member leaves) has its open polls closed.
    let open = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Open?", "options": ["a", "b"]}),
    )
    .await;
    for u in [&m, &host] {
        let (s, b) = app
            .post_json(
                &format!("/api/parties/{pid}/leave/"),
                Some(&u.token),
                json!({}),
            )
            .await;
        assert!(s.is_success(), "{b}");
    }
    let status: String = sqlx::query_scalar("SELECT status FROM parties WHERE id = $1::uuid")
        .bind(&pid)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(status, "ended");
    assert_eq!(
        wp_workers::system::close_polls(&ctx, chrono::Utc::now())
            .await
            .unwrap(),
        2,
        "the party's open poll and the one whose time was up"
    );
    let reason: String =
        sqlx::query_scalar("SELECT closed_reason FROM party_polls WHERE id = $1::uuid")
            .bind(open["id"].as_str().unwrap())
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(reason, "party_ended");
}

/// The scheduler's `close-polls` tick reaches a worker and closes a due poll: the
/// path ops run, end to end.
#[tokio::test]
async fn the_scheduler_closes_due_polls_through_the_system_queue() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let host = env.create_user("host").await;
    let pid = party(&app, &host).await;
    let poll = create_poll(
        &app,
        &host,
        &pid,
        json!({"question": "Soon?", "options": ["a", "b"], "duration": 10}),
    )
    .await;
    let id = poll["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE party_polls SET closes_at = now() WHERE id = $1::uuid")
        .bind(&id)
        .execute(&env.db)
        .await
        .unwrap();
    let workers = env.spawn_workers(&[(Queue::System, 2)]).await;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let redis = wp_shared::redis_conn::connect(&env.config).await.unwrap();
    let sched = tokio::spawn(wp_scheduler::run(
        env.config.clone(),
        wp_shared::jobs::Enqueuer::new(redis, env.config.clone()),
        wp_scheduler::ticks_metric(),
        async move {
            let _ = stop_rx.wait_for(|v| *v).await;
        },
    ));
    let reason = eventually(Duration::from_secs(10), "the poll closed", || {
        let db = env.db.clone();
        let id = id.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT closed_reason FROM party_polls WHERE id = $1::uuid",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .ok()
            .flatten()
        }
    })
    .await;
    assert_eq!(reason, "expired");
    stop_tx.send(true).unwrap();
    sched.await.unwrap().unwrap();
    workers.shutdown().await;
}
