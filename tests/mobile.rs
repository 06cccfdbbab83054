//! The mobile apps' configuration (`GET /api/mobile/config/`, seed item 9) against a
//! real API: base URLs, features, limits and push settings; the update advice per
//! platform and version from the configured releases; ETag caching; bad parameters
//! named.

mod common;

use chrono::{TimeDelta, Utc};
use common::{TestApp, TestEnv, TestUser, ws::Ws};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn get(
    app: &common::TestApp,
    q: &str,
    etag: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = app.client.get(app.url(&format!("/api/mobile/config/{q}")));
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let etag = res
        .headers()
        .get("etag")
        .map(|h| h.to_str().unwrap().to_owned());
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, etag, body)
}

#[tokio::test]
async fn the_config_tells_each_app_version_what_to_do() {
    common::init_logs();
    let env = TestEnv::with_vars(&[
        ("MOBILE_IOS_MIN_VERSION", "1.4"),
        ("MOBILE_IOS_LATEST_VERSION", "2.0.1"),
        ("MOBILE_IOS_STORE_URL", "https://apps.apple.com/app/id1234"),
        ("MOBILE_ANDROID_LATEST_VERSION", "3.1"),
        ("MOBILE_DISABLED_FEATURES", "voice, screen_share"),
        ("REALTIME_PUBLIC_URL", "wss://rt.example.com"),
    ])
    .await;
    let app = env.spawn_api().await;

    // Signed out, no platform: URLs, features, limits; no update advice.
    let (s, etag, b) = get(&app, "", None).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = &b["data"];
    assert_eq!(d["api_base_url"], format!("{}/api", env.config.public_url));
    assert_eq!(d["socket_base_url"], "wss://rt.example.com/ws");
    assert!(d["update"].is_null());
    assert_eq!(d["features"]["parties"], true);
    assert_eq!(d["features"]["voice"], false);
    assert_eq!(d["features"]["screen_share"], false);
    assert_eq!(
        d["features"]["push"], false,
        "no push provider is configured here"
    );
    assert_eq!(d["limits"]["chat_message_max_chars"], 1000);
    assert_eq!(d["limits"]["page_size_max"], 100);
    assert_eq!(d["push"]["register_path"], "/api/mobile/push-token/");
    assert!(
        d["push"]["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "security.alert" && k["required"] == true),
        "{b}"
    );

    // Cached: the same answer is a 304 on If-None-Match; another question another ETag.
    let etag = etag.expect("an ETag");
    let (s, again, _) = get(&app, "", Some(&etag)).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert_eq!(again.as_deref(), Some(etag.as_str()));

    for (q, required, available) in [
        ("?platform=ios&app_version=1.3.9", true, true),
        ("?platform=ios&app_version=1.4", false, true),
        ("?platform=ios&app_version=1.10.0", false, true),
        ("?platform=ios&app_version=2.0.1", false, false),
        ("?platform=android&app_version=0.1", false, true),
        ("?platform=android&app_version=3.1", false, false),
    ] {
        let (s, e, b) = get(&app, q, Some(&etag)).await;
        assert_eq!(s, StatusCode::OK, "{q}: {b}");
        assert_ne!(e.as_deref(), Some(etag.as_str()), "{q}");
        let u = &b["data"]["update"];
        assert_eq!(
            (u["required"].as_bool(), u["available"].as_bool()),
            (Some(required), Some(available)),
            "{q}: {u}"
        );
    }
    let (_, _, b) = get(&app, "?platform=ios&app_version=1.0", None).await;
    let u = &b["data"]["update"];
    assert_eq!(u["minimum_version"], "1.4");
    assert_eq!(u["latest_version"], "2.0.1");
    assert_eq!(u["store_url"], "https://apps.apple.com/app/id1234");
    assert_eq!(b["data"]["push"]["provider"], "apns");

    for (q, field) in [
        ("?platform=windows", "platform"),
        ("?platform=ios&app_version=1.x", "app_version"),
        ("?app_version=1.2", "platform"),
        ("?colour=red", "colour"),
    ] {
        let (s, _, b) = get(&app, q, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
        assert!(b["errors"][field].is_array(), "{q}: {b}");
    }
}

async fn post(app: &TestApp, u: &TestUser, path: &str, body: Value) -> Value {
    let (s, b) = app.post_json(path, Some(&u.token), body).await;
    assert!(s.is_success(), "{path}: {s} {b}");
    b["data"].clone()
}

async fn party(app: &TestApp, host: &TestUser, title: &str, extra: Value) -> String {
    let mut body = json!({"title": title, "external_url": "https://example.com/v.mp4"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    post(app, host, "/api/parties/", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn event(app: &TestApp, u: &TestUser, title: &str, in_days: i64, extra: Value) -> String {
    let start = Utc::now() + TimeDelta::days(in_days);
    let mut body = json!({"title": title, "start_time": start.to_rfc3339(),
                          "end_time": (start + TimeDelta::hours(2)).to_rfc3339()});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    post(app, u, "/api/events/", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn video(env: &TestEnv, owner: &TestUser, title: &str, visibility: &str) -> uuid::Uuid {
    env.insert_video(owner, title, visibility, 600.0).await
}

fn titles(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}: {v}"))
        .iter()
        .map(|x| x["title"].as_str().unwrap().to_owned())
        .collect()
}

/// The home screen in one call, for Ann: live parties of her friend and her group (not
/// a stranger's, not an empty one), her events of the next two weeks, the videos she
/// did not finish, and her badge counts.
#[tokio::test]
async fn the_home_screen_shows_what_is_live_next_and_unfinished() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let node = env.spawn_node().await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let cal = env.create_user("cal").await;
    let dan = env.create_user("dan").await;
    env.befriend(&ann, &bob).await;
    let gid = post(
        &app,
        &cal,
        "/api/social/groups/",
        json!({"name": "Film club"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        &app,
        &ann,
        &format!("/api/social/groups/{gid}/join/"),
        json!({}),
    )
    .await;

    let (s, _) = app.call(Method::GET, "/api/mobile/home/", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Parties: a friend's and the group's with someone in them; a stranger's with
    // someone in it; a friend's with nobody.
    let friends = party(&app, &bob, "Bob's night", json!({})).await;
    let club = party(&app, &cal, "Club night", json!({"group_id": gid})).await;
    let strangers = party(&app, &dan, "Dan's night", json!({})).await;
    party(&app, &bob, "Bob's empty room", json!({})).await;
    let _b = Ws::connect(&node, &friends, &bob.token).await;
    let _c1 = Ws::connect(&node, &club, &cal.token).await;
    post(&app, &dan, &format!("/api/parties/{club}/join/"), json!({})).await;
    let _c2 = Ws::connect(&node, &club, &dan.token).await;
    let _d = Ws::connect(&node, &strangers, &dan.token).await;

    // Events: a friend's in 3 days, the group's in 5, a stranger's she is invited to,
    // a stranger's she is not, a friend's in 20 days (past the horizon).
    event(&app, &bob, "Bob's premiere", 3, json!({})).await;
    event(&app, &cal, "Club screening", 5, json!({"group_id": gid})).await;
    let invited = event(&app, &dan, "Dan's invite", 1, json!({})).await;
    post(
        &app,
        &dan,
        &format!("/api/events/{invited}/invite/"),
        json!({"user_ids": [ann.id]}),
    )
    .await;
    event(&app, &dan, "Dan's public thing", 2, json!({})).await;
    event(&app, &bob, "Bob's far future", 20, json!({})).await;

    // Progress: one video half-way, one nearly done, one barely started, one private
    // to someone else (refused), one forgotten.
    let halfway = video(&env, &dan, "Halfway", "public").await;
    let done = video(&env, &dan, "Nearly done", "public").await;
    let barely = video(&env, &dan, "Barely", "public").await;
    let hidden = video(&env, &dan, "Hidden", "private").await;
    let forgotten = video(&env, &bob, "Forgotten", "friends").await;
    for (v, pos) in [
        (halfway, 120.0),
        (done, 590.0),
        (barely, 5.0),
        (forgotten, 60.0),
    ] {
        let (s, b) = app
            .call(
                Method::PUT,
                &format!("/api/videos/{v}/progress/"),
                Some(&ann.token),
                Some(json!({"position_seconds": pos})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    for (v, body, want) in [
        (
            hidden,
            json!({"position_seconds": 1.0}),
            StatusCode::NOT_FOUND,
        ),
        (
            halfway,
            json!({"position_seconds": 601.5}),
            StatusCode::BAD_REQUEST,
        ),
        (
            halfway,
            json!({"position_seconds": -1}),
            StatusCode::BAD_REQUEST,
        ),
        (halfway, json!({"position": 1}), StatusCode::BAD_REQUEST),
    ] {
        let (s, b) = app
            .call(
                Method::PUT,
                &format!("/api/videos/{v}/progress/"),
                Some(&ann.token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, want, "{body}: {b}");
    }
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/videos/{forgotten}/progress/"),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // A friend request waits for her.
    post(
        &app,
        &dan,
        "/api/social/friend-requests/",
        json!({"user_id": ann.id}),
    )
    .await;

    // The realtime node writes presence as sockets connect: wait for both parties.
    let home = common::eventually(
        std::time::Duration::from_secs(10),
        "two live parties",
        || async {
            let (s, b) = app
                .call(Method::GET, "/api/mobile/home/", Some(&ann.token), None)
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            (b["data"]["live_parties"].as_array().map(Vec::len) == Some(2))
                .then(|| b["data"].clone())
        },
    )
    .await;
    assert_eq!(
        titles(&home, "live_parties"),
        ["Club night", "Bob's night"],
        "most crowded first"
    );
    assert_eq!(home["live_parties"][0]["online"], 2);
    assert_eq!(home["live_parties"][0]["via"], "group");
    assert_eq!(home["live_parties"][1]["via"], "friend");
    assert_eq!(
        titles(&home, "upcoming_events"),
        ["Dan's invite", "Bob's premiere", "Club screening"]
    );
    let watching = &home["continue_watching"];
    assert_eq!(watching.as_array().unwrap().len(), 1, "{watching}");
    assert_eq!(watching[0]["title"], "Halfway");
    assert_eq!(watching[0]["progress"], 0.2);
    assert!(
        watching[0]["thumbnail_url"]
            .as_str()
            .unwrap()
            .contains("/thumbnail/")
    );
    assert_eq!(home["unread"]["friend_requests"], 1);
    assert_eq!(home["unread"]["event_invitations"], 1);
    assert_eq!(home["unread"]["group_invitations"], 0);

    // Dan sees none of Ann's: his home has his own parties only.
    let (_, b) = app
        .call(Method::GET, "/api/mobile/home/", Some(&dan.token), None)
        .await;
    let mut mine = titles(&b["data"], "live_parties");
    mine.sort();
    assert_eq!(mine, ["Club night", "Dan's night"], "joined and hosted");
    assert!(
        b["data"]["continue_watching"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn sync(app: &TestApp, u: &TestUser, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/mobile/sync/",
        Some(&u.token),
        Some(body),
    )
    .await
}

fn ids(section: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = section[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}: {section}"))
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| x["id"].as_str().unwrap().to_owned())
        })
        .collect();
    v.sort();
    v
}

/// A first sync is the whole state; then each sync is what changed since the cursor,
/// as upserts and tombstones, and nothing of anyone else's; a cursor too old is a full
/// resync; the device's last sync is recorded.
#[tokio::test]
async fn sync_sends_what_changed_since_the_cursor_with_tombstones() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let cal = env.create_user("cal").await;
    let dan = env.create_user("dan").await;
    env.befriend(&ann, &bob).await;
    env.befriend(&dan, &cal).await;
    let gid = post(
        &app,
        &cal,
        "/api/social/groups/",
        json!({"name": "Film club"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        &app,
        &ann,
        &format!("/api/social/groups/{gid}/join/"),
        json!({}),
    )
    .await;
    let pid = party(&app, &ann, "Ann's night", json!({})).await;
    let eid = event(&app, &ann, "Ann's premiere", 3, json!({})).await;
    let device = "ann-phone-1";
    app.register_device(&ann, device, "android", &"f".repeat(140))
        .await;
    let note = |user: uuid::Uuid, title: &'static str| {
        let db = env.db.clone();
        async move {
            let id = uuid::Uuid::now_v7();
            sqlx::query("INSERT INTO notifications (id, user_id, kind, title, body) VALUES ($1, $2, 'follow.new', $3, '')")
                .bind(id)
                .bind(user)
                .bind(title)
                .execute(&db)
                .await
                .unwrap();
            id.to_string()
        }
    };
    let old_note = note(ann.id, "Old news").await;

    // Bad requests name the field.
    for (body, field) in [
        (json!({"cursor": "garbage"}), "cursor"),
        (json!({"device_id": "someone-elses"}), "device_id"),
        (json!({"since": 1}), "since"),
    ] {
        let (s, b) = sync(&app, &ann, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }

    // The first sync: everything, full.
    let (s, b) = sync(&app, &ann, json!({"device_id": device})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = &b["data"];
    assert_eq!(d["full"], true);
    assert_eq!(ids(&d["friends"], "upserted"), [bob.id.to_string()]);
    assert_eq!(ids(&d["groups"], "upserted"), [gid.as_str()]);
    assert_eq!(ids(&d["parties"], "upserted"), [pid.as_str()]);
    assert_eq!(ids(&d["events"], "upserted"), [eid.as_str()]);
    assert_eq!(ids(&d["notifications"], "upserted"), [old_note.as_str()]);
    let cursor = d["cursor"].as_str().unwrap().to_owned();
    let synced: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT last_sync_at FROM devices WHERE device_id = $1")
            .bind(device)
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert!(synced.is_some(), "the device's last sync is recorded");

    // Nothing happened: an empty delta.
    let (_, b) = sync(&app, &ann, json!({"cursor": cursor})).await;
    let d = &b["data"];
    assert_eq!(d["full"], false, "{b}");
    for kind in ["notifications", "friends", "parties", "events", "groups"] {
        assert!(
            ids(&d[kind], "upserted").is_empty() && ids(&d[kind], "deleted").is_empty(),
            "{kind}: {b}"
        );
    }
    let cursor = d["cursor"].as_str().unwrap().to_owned();

    // Changes: a friend gone and one new, the group left, the party renamed, the event
    // cancelled, a notification new and one deleted; and Dan's own changes elsewhere.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/social/friends/{}/", bob.id),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    env.befriend(&ann, &cal).await;
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/api/social/groups/{gid}/leave/"),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/api/parties/{pid}/"),
            Some(&ann.token),
            Some(json!({"title": "Ann's late night"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/events/{eid}/"),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let new_note = note(ann.id, "Fresh news").await;
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/notifications/{old_note}/"),
            Some(&ann.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    note(dan.id, "Dan's news").await;
    party(&app, &dan, "Dan's night", json!({})).await;

    let (s, b) = sync(&app, &ann, json!({"cursor": cursor, "device_id": device})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = &b["data"];
    assert_eq!(d["full"], false, "{b}");
    assert_eq!(ids(&d["friends"], "upserted"), [cal.id.to_string()]);
    assert_eq!(ids(&d["friends"], "deleted"), [bob.id.to_string()]);
    assert_eq!(ids(&d["groups"], "deleted"), [gid.as_str()]);
    assert_eq!(ids(&d["parties"], "upserted"), [pid.as_str()]);
    assert_eq!(d["parties"]["upserted"][0]["title"], "Ann's late night");
    // Deleting an event cancels it: it comes as it is now.
    assert_eq!(ids(&d["events"], "upserted"), [eid.as_str()]);
    assert_eq!(d["events"]["upserted"][0]["status"], "cancelled");
    assert_eq!(ids(&d["notifications"], "upserted"), [new_note.as_str()]);
    assert_eq!(ids(&d["notifications"], "deleted"), [old_note.as_str()]);

    // A cursor from before the retention: the whole state again.
    let stale = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"x":1,"t":0}"#,
    );
    let (_, b) = sync(&app, &ann, json!({"cursor": stale})).await;
    let d = &b["data"];
    assert_eq!(d["full"], true);
    assert_eq!(ids(&d["friends"], "upserted"), [cal.id.to_string()]);
    assert!(ids(&d["groups"], "upserted").is_empty());
    assert!(
        ids(&d["events"], "upserted").is_empty(),
        "a full sync has no cancelled event"
    );
    assert!(
        ids(&d["friends"], "deleted").is_empty(),
        "a full sync has no tombstones"
    );
}

/// A transaction still in progress when a sync reads (here: a notification not yet
/// committed) comes in the next delta once committed, while what the earlier sync sent
/// is not sent again, though the open transaction holds the snapshot's `xmin` back.
#[tokio::test]
async fn sync_sends_a_late_commit_once_and_nothing_twice() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = env.create_user("ann").await;
    let insert = "INSERT INTO notifications (id, user_id, kind, title, body)
                  VALUES ($1, $2, 'follow.new', $3, '')";
    let late = uuid::Uuid::now_v7();
    let mut open = env.db.begin().await.unwrap();
    sqlx::query(insert)
        .bind(late)
        .bind(ann.id)
        .bind("Late")
        .execute(&mut *open)
        .await
        .unwrap();
    let (_, b) = sync(&app, &ann, json!({})).await;
    assert_eq!(b["data"]["full"], true, "{b}");
    let cursor = b["data"]["cursor"].as_str().unwrap().to_owned();

    // Committed after the open transaction began, before the second sync.
    let early = uuid::Uuid::now_v7();
    sqlx::query(insert)
        .bind(early)
        .bind(ann.id)
        .bind("Early")
        .execute(&env.db)
        .await
        .unwrap();
    let (_, b) = sync(&app, &ann, json!({"cursor": cursor})).await;
    assert_eq!(
        ids(&b["data"]["notifications"], "upserted"),
        [early.to_string()],
        "the open transaction is not seen yet: {b}"
    );
    let cursor = b["data"]["cursor"].as_str().unwrap().to_owned();

    open.commit().await.unwrap();
    let (_, b) = sync(&app, &ann, json!({"cursor": cursor})).await;
    assert_eq!(
        ids(&b["data"]["notifications"], "upserted"),
        [late.to_string()],
        "the late commit comes once, the early one not again: {b}"
    );
    let cursor = b["data"]["cursor"].as_str().unwrap().to_owned();
    let (_, b) = sync(&app, &ann, json!({"cursor": cursor})).await;
    assert!(
        ids(&b["data"]["notifications"], "upserted").is_empty(),
        "{b}"
    );
}
