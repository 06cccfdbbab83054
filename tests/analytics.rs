//! The analytics API against the real services: playback events through the API, the
//! queue and the analytics worker into ClickHouse, rolled up by the materialized views,
//! and read back as a video's analytics and the live figures, checked against numbers
//! worked out by hand; bad batches, duplicates and who may read what.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{TestApp, TestEnv, TestUser, eventually, ws::Ws};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use wp_shared::jobs::Queue;

async fn get(app: &TestApp, u: Option<&TestUser>, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, u.map(|u| u.token.as_str()), None)
        .await
}

async fn send(app: &TestApp, u: &TestUser, events: Value) -> (StatusCode, Value) {
    app.post_json(
        "/api/analytics/events/",
        Some(&u.token),
        json!({ "events": events }),
    )
    .await
}

fn ev(kind: &str, video: Uuid, extra: Value) -> Value {
    let mut e = json!({"event_id": Uuid::now_v7(), "type": kind, "video_id": video,
                       "occurred_at": Utc::now().to_rfc3339(), "position": 0.0});
    for (k, v) in extra.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

/// Two viewers of a 100-second video, one alone and one in a party, and what the owner
/// reads: every figure worked out by hand from the events sent.
#[tokio::test]
async fn playback_events_roll_up_into_the_owners_analytics() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _workers = env.spawn_workers(&[(Queue::Analytics, 1)]).await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let cal = env.create_user("cal").await;
    let staff = env.create_moderator("mod").await;
    sqlx::query("UPDATE users SET locale = 'pt-BR' WHERE id = $1")
        .bind(cal.id)
        .execute(&env.db)
        .await
        .unwrap();
    let v = env.insert_video(&ann, "Ann's film", "public", 100.0).await;
    let hidden = env
        .insert_video(&ann, "Ann's secret", "private", 100.0)
        .await;
    let bobs = env.insert_video(&bob, "Bob's film", "public", 10.0).await;
    let (s, b) = app
        .post_json(
            "/api/parties/",
            Some(&cal.token),
            json!({"title": "Cal's night", "video_id": v}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let party: Uuid = b["data"]["id"].as_str().unwrap().parse().unwrap();

    // Bad batches name the field and record nothing.
    let many: Vec<Value> = (0..501).map(|_| ev("play", v, json!({}))).collect();
    for (events, field) in [
        (json!(many), "events"),
        (json!([]), "events"),
        (
            json!([ev("play", v, json!({"position": -1}))]),
            "events[0].position",
        ),
        (
            json!([ev("play", v, json!({})), ev("rewind", v, json!({}))]),
            "events[1].type",
        ),
        (
            json!([ev("progress", v, json!({"position": 5}))]),
            "events[0].from",
        ),
        (
            json!([ev("buffer", v, json!({}))]),
            "events[0].buffering_ms",
        ),
        (
            json!([ev("play", v, json!({"occurred_at": "yesterday"}))]),
            "events[0].occurred_at",
        ),
        (json!([ev("play", v, json!({"extra": 1}))]), "events[0]"),
    ] {
        let (s, b) = send(&app, &bob, events).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{field}: {b}");
        let named = b["errors"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with(field));
        assert!(named, "{field}: {b}");
    }
    let (s, _) = app
        .post_json("/api/analytics/events/", None, json!({"events": []}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The single view endpoint holds to the same rule: a party must be the viewer's.
    let (s, b) = app
        .post_json(
            &format!("/api/videos/{v}/view/"),
            Some(&bob.token),
            json!({"party_id": party, "source": "party"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["party_id"].is_array(), "{b}");

    // Bob alone: from search on the web; plays 0 → 49.5, jumps back from 30 to 25.
    let bob_events = json!([
        ev(
            "view_start",
            v,
            json!({"source": "search", "platform": "web"})
        ),
        ev("progress", v, json!({"from": 0, "position": 49.5})),
        ev("seek", v, json!({"from": 30, "position": 25})),
        ev("pause", v, json!({"position": 25})),
        // Too far in the future: clamped to now, still counted.
        ev(
            "quality",
            v,
            json!({"quality": "720p", "occurred_at": (Utc::now() + TimeDelta::days(3)).to_rfc3339()})
        ),
    ]);
    let (s, b) = send(&app, &bob, bob_events.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b["data"],
        json!({"accepted": 5, "duplicates": 0, "rejected": []})
    );
    // Sent again (a retry after a lost answer): counted once.
    let (_, b) = send(&app, &bob, bob_events).await;
    assert_eq!(
        b["data"],
        json!({"accepted": 0, "duplicates": 5, "rejected": []})
    );
    // Not his to refer to: another's private video, an unknown one, a party not his.
    let (s, b) = send(
        &app,
        &bob,
        json!([
            ev("play", hidden, json!({})),
            ev("play", Uuid::now_v7(), json!({})),
            ev("play", v, json!({"party_id": party})),
        ]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let fields: Vec<&str> = b["data"]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["video_id", "video_id", "party_id"], "{b}");
    assert_eq!(b["data"]["accepted"], 0);

    // Cal in her party, on iOS, from Brazil (her locale): plays 40 → the end.
    let (s, b) = send(
        &app,
        &cal,
        json!([
            ev(
                "view_start",
                v,
                json!({"source": "party", "platform": "ios", "party_id": party, "position": 40})
            ),
            ev(
                "progress",
                v,
                json!({"from": 40, "position": 100, "watched": 60, "party_id": party})
            ),
        ]),
    )
    .await;
    assert_eq!(b["data"]["accepted"], 2, "{s} {b}");
    let (s, b) = app
        .post_json(
            &format!("/api/videos/{v}/like/"),
            Some(&bob.token),
            json!({"is_like": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .post_json(
            &format!("/api/videos/{v}/comments/"),
            Some(&cal.token),
            json!({"content": "Loved the ending"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let path = format!(
        "/api/analytics/video/{v}/analytics/?interval=hour&from={}",
        (Utc::now() - TimeDelta::days(2)).format("%Y-%m-%d")
    );
    let b = eventually(Duration::from_secs(20), "the rollups", || async {
        let (s, b) = get(&app, Some(&ann), &path).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let d = &b["data"];
        (d["totals"]["views"] == 2
            && d["interactions"]["likes"] == 1
            && d["interactions"]["comments"] == 1
            && d["interactions"]["seeks"] == 1)
            .then_some(b)
    })
    .await;
    let d = &b["data"];
    assert_eq!(d["title"], "Ann's film");
    let t = &d["totals"];
    assert_eq!(t["unique_viewers"], 2, "{t}");
    assert!(close(&t["watch_seconds"], 109.5), "{t}");
    assert!(close(&t["average_view_seconds"], 54.75), "{t}");
    assert!(
        close(&t["completion"], 0.5),
        "cal reached 95%, bob did not: {t}"
    );
    let (solo, party_a) = (&d["solo"], &d["party"]);
    assert_eq!((&solo["views"], &party_a["views"]), (&json!(1), &json!(1)));
    assert!(
        close(&solo["watch_seconds"], 49.5) && close(&party_a["watch_seconds"], 60.0),
        "{d}"
    );
    assert!(
        close(&solo["completion"], 0.0) && close(&party_a["completion"], 1.0),
        "{d}"
    );

    // Retention: bob covers points 0-49, cal 40-99.
    let r = &d["retention"];
    assert_eq!(r["viewers"], 2);
    let at = |curve: &str, i: usize| r[curve][i].as_f64().unwrap();
    assert_eq!(r["all"].as_array().unwrap().len(), 100);
    assert_eq!(
        (at("all", 0), at("all", 39), at("all", 40), at("all", 49)),
        (0.5, 0.5, 1.0, 1.0)
    );
    assert_eq!((at("all", 50), at("all", 99)), (0.5, 0.5));
    assert_eq!(
        (
            at("solo", 10),
            at("solo", 60),
            at("party", 10),
            at("party", 99)
        ),
        (1.0, 0.0, 0.0, 1.0)
    );

    // Heatmap: the jump back from 30 to 25 replays seconds 25-29 and lands on 25.
    let heat = d["heatmap"].as_array().unwrap();
    let seconds: Vec<u64> = heat.iter().map(|h| h["second"].as_u64().unwrap()).collect();
    assert_eq!(seconds, [25, 26, 27, 28, 29], "{heat:?}");
    assert_eq!(
        heat[0],
        json!({"second": 25, "rewatches": 1, "seeks": 1, "reactions": 0})
    );
    assert_eq!(heat[4]["seeks"], 0);

    let shares = |k: &str| -> Vec<(String, u64)> {
        d[k].as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["value"].as_str().unwrap().to_owned(),
                    s["views"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        shares("traffic_sources"),
        [("party".into(), 1), ("search".into(), 1)]
    );
    assert_eq!(shares("platforms"), [("ios".into(), 1), ("web".into(), 1)]);
    assert_eq!(
        shares("countries"),
        [("BR".into(), 1), ("unknown".into(), 1)]
    );
    assert!(close(&d["traffic_sources"][0]["share"], 0.5));
    let series = d["series"].as_array().unwrap();
    assert_eq!(
        series
            .iter()
            .map(|p| p["views"].as_u64().unwrap())
            .sum::<u64>(),
        2
    );
    assert_eq!(
        series
            .iter()
            .map(|p| p["likes"].as_u64().unwrap())
            .sum::<u64>(),
        1
    );
    assert!(d["comparison"].is_null());

    // Side by side: the period before (nothing yet), another video of hers.
    let (s, b) = get(&app, Some(&ann), &format!("{path}&compare=previous")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["comparison"]["totals"]["views"], 0);
    assert_eq!(b["data"]["totals"]["views"], 2);
    let (s, b) = get(&app, Some(&ann), &format!("{path}&compare={hidden}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["comparison"]["title"], "Ann's secret");

    // Who may read: the owner and staff; others 403, or 404 if they cannot see it.
    let (s, b) = get(
        &app,
        Some(&bob),
        &format!("/api/analytics/video/{v}/analytics/?from=nonsense"),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the rule before the parameters: {b}"
    );
    let (s, _) = get(
        &app,
        Some(&bob),
        &format!("/api/analytics/video/{hidden}/analytics/"),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(&app, None, &format!("/api/analytics/video/{v}/analytics/")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = get(&app, Some(&staff), &path).await;
    assert_eq!(
        (s, &b["data"]["totals"]["views"]),
        (StatusCode::OK, &json!(2)),
        "{b}"
    );
    let (s, b) = get(&app, Some(&ann), &format!("{path}&compare={bobs}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["compare"].is_array(), "{b}");
    for (query, field) in [
        ("from=nonsense", "from"),
        ("interval=minute", "interval"),
        ("interval=hour&from=2026-01-01&to=2026-03-01", "interval"),
        ("from=2020-01-01&to=2026-01-01", "from"),
        ("from=2026-03-01&to=2026-01-01", "from"),
        ("compare=last-year", "compare"),
        ("colour=red", "colour"),
    ] {
        let (s, b) = get(
            &app,
            Some(&ann),
            &format!("/api/analytics/video/{v}/analytics/?{query}"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {b}");
        assert!(b["errors"][field].is_array(), "{query}: {b}");
    }
}

/// The ingest dedupe in Redis: an id taken on one day is a duplicate that day, the two
/// after and the one before, new again on the third; a forgotten (unmarked) id is new;
/// a day sizes its shards from the days before and widens them as it fills; an id
/// costs a few dozen bytes of Redis, not the ~490 of a key of its own; the first
/// design's keys are still read.
#[tokio::test]
async fn event_ids_are_remembered_for_two_days_in_little_memory() {
    use wp_core::analytics::ingest::{dedupe_day, mark_new, seen_base, unmark};
    let env = TestEnv::new().await;
    let mut redis = env.redis.clone();
    // For the helpers below.
    let r = env.redis.clone();
    // A prefix of its own, so the figures below are this test's keys only.
    let prefix = format!("{}:dedupe-test", env.config.redis_prefix);
    let base = seen_base(&prefix);
    let day = dedupe_day(Utc::now());
    let mark = |d: i64, ids: Vec<Uuid>| {
        let mut redis = r.clone();
        let prefix = prefix.clone();
        async move {
            // In calls of 500 at most, as the API sends them.
            let mut new = Vec::new();
            for chunk in ids.chunks(500) {
                new.extend(mark_new(&mut redis, &prefix, d, chunk).await.unwrap());
            }
            new
        }
    };
    let keys = |pattern: String| {
        let mut redis = r.clone();
        async move {
            redis::cmd("KEYS")
                .arg(pattern)
                .query_async::<Vec<String>>(&mut redis)
                .await
                .unwrap()
        }
    };
    let bytes_per_id = |keys: Vec<String>, ids: usize| {
        let mut redis = r.clone();
        async move {
            let mut bytes = 0u64;
            for k in &keys {
                let b: Option<u64> = redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(k)
                    .query_async(&mut redis)
                    .await
                    .unwrap();
                bytes += b.unwrap_or(0);
            }
            bytes as f64 / ids as f64
        }
    };
    let gens = |d: i64| {
        let mut redis = r.clone();
        let key = format!("{base}{d}:gens");
        async move {
            redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query_async::<Vec<i64>>(&mut redis)
                .await
                .unwrap()
        }
    };

    let ids: Vec<Uuid> = (0..64 * 1024).map(|_| Uuid::now_v7()).collect();
    assert!(
        mark(day, ids.clone()).await.iter().all(|n| *n),
        "new at first"
    );
    let some = ids[..500].to_vec();
    for (d, dup) in [
        (day - 1, true),
        (day, true),
        (day + 1, true),
        (day + 2, true),
        (day + 3, false),
    ] {
        let new = mark(d, some.clone()).await;
        assert!(
            new.iter().all(|n| *n != dup),
            "day {:+}: duplicates {dup}",
            d - day
        );
    }
    // Within one call too: the same id twice is new once.
    let fresh = Uuid::now_v7();
    assert_eq!(mark(day, vec![fresh, fresh]).await, vec![true, false]);
    // Forgotten after a failed enqueue: new again.
    unmark(&mut redis, &prefix, day, &[fresh]).await.unwrap();
    assert_eq!(mark(day, vec![fresh]).await, vec![true]);
    // An id taken under the first design's key.
    let old = Uuid::new_v4();
    let _: () = redis::cmd("SET")
        .arg(format!("{base}{old}"))
        .arg(1)
        .arg("EX")
        .arg(60)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(mark(day, vec![old]).await, vec![false]);

    // The day: 65,537 ids in one generation of 1,024 shards; every key expires three
    // days and an hour after the day began.
    assert_eq!(gens(day).await, vec![1024]);
    let day_keys = keys(format!("{base}{day}:*")).await;
    assert_eq!(day_keys.len(), 1024 + 2, "the shards, :gens and :n");
    for k in &day_keys {
        let at: i64 = redis::cmd("EXPIRETIME")
            .arg(k)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(at, (day + 3) * 86_400 + 3_600, "{k}");
    }
    let shard_keys: Vec<String> = day_keys
        .into_iter()
        .filter(|k| !k.ends_with(":n") && !k.ends_with(":gens"))
        .collect();
    let per_id = bytes_per_id(shard_keys, ids.len() + 1).await;
    assert!(per_id < 40.0, "{per_id:.1} bytes an id");
    let count: i64 = redis::cmd("GET")
        .arg(format!("{base}{day}:n"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(count, 64 * 1024 + 1);

    // A day after busier ones starts wider: 64 ids a shard of the busier day before.
    let _: () = redis::cmd("SET")
        .arg(format!("{base}{}:n", day + 9))
        .arg(200_000)
        .arg("EX")
        .arg(60)
        .query_async(&mut redis)
        .await
        .unwrap();
    mark(day + 10, vec![Uuid::now_v7()]).await;
    assert_eq!(gens(day + 10).await, vec![4096]);

    // A day busier than its first generation was sized for opens a second, twice as
    // wide, past 80 ids a shard; both stay compact, and both are looked in.
    let busy = day + 20;
    let many: Vec<Uuid> = (0..100_000).map(|_| Uuid::now_v7()).collect();
    assert!(mark(busy, many.clone()).await.iter().all(|n| *n));
    assert_eq!(gens(busy).await, vec![1024, 2048]);
    let sample: Vec<Uuid> = many[..500].iter().chain(&many[99_500..]).copied().collect();
    assert!(mark(busy, sample.clone()).await.iter().all(|n| !n));
    assert!(mark(busy + 1, sample).await.iter().all(|n| !n));
    let busy_keys: Vec<String> = keys(format!("{base}{busy}:*"))
        .await
        .into_iter()
        .filter(|k| !k.ends_with(":n") && !k.ends_with(":gens"))
        .collect();
    let per_id = bytes_per_id(busy_keys, many.len()).await;
    assert!(
        per_id < 40.0,
        "{per_id:.1} bytes an id over two generations"
    );

    let all = keys(format!("{base}*")).await;
    let _: () = redis::cmd("DEL")
        .arg(all)
        .query_async(&mut redis)
        .await
        .unwrap();
}

/// The live figures for staff: who is watching now, the live parties and their
/// sockets, the nodes, events per second and the top videos.
#[tokio::test]
async fn the_live_figures_show_what_happens_now() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let node = env.spawn_node().await;
    let _workers = env.spawn_workers(&[(Queue::Analytics, 1)]).await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let staff = env.create_moderator("mod").await;
    let v = env.insert_video(&ann, "Live film", "public", 300.0).await;
    let (s, b) = app
        .post_json(
            "/api/parties/",
            Some(&ann.token),
            json!({"title": "Ann's live night", "video_id": v}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let party = b["data"]["id"].as_str().unwrap().to_owned();
    let _socket = Ws::connect(&node, &party, &ann.token).await;
    for u in [&ann, &bob] {
        let (s, b) = send(
            &app,
            u,
            json!([
                ev("view_start", v, json!({})),
                ev("progress", v, json!({"from": 0, "position": 10}))
            ]),
        )
        .await;
        assert_eq!(b["data"]["accepted"], 2, "{s} {b}");
    }

    let (s, _) = get(&app, Some(&bob), "/api/analytics/real-time/").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let b = eventually(Duration::from_secs(20), "live figures", || async {
        let (s, b) = get(&app, Some(&staff), "/api/analytics/real-time/").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let d = &b["data"];
        let node_up = d["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["sockets"].as_u64() >= Some(1)));
        (d["viewers_now"] == 2 && d["live_parties"] == 1 && node_up).then_some(b)
    })
    .await;
    let d = &b["data"];
    assert_eq!(d["party_sockets"], 1, "{d}");
    assert_eq!(d["parties"][0]["title"], "Ann's live night");
    assert_eq!(d["parties"][0]["online"], 1);
    assert_eq!(d["top_videos"][0]["video_id"], v.to_string(), "{d}");
    assert_eq!(d["top_videos"][0]["title"], "Live film");
    assert_eq!(d["top_videos"][0]["viewers"], 2);
    assert_eq!(d["top_videos"][0]["events"], 4);
    let progress = d["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event_type"] == "playback.progress")
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(
        (&progress["events"], &progress["users"]),
        (&json!(2), &json!(2))
    );
}

/// The staff socket (`/ws/admin/`): the live figures as `analytics_live` frames, the
/// first at once and then every interval, the same `data` as the REST answer; refused
/// before the upgrade to anyone but staff; closed on every node when its user is no
/// longer staff (4003) or is suspended (4001); an `error` frame, not a close, when
/// ClickHouse does not answer.
#[tokio::test]
async fn the_staff_socket_streams_the_live_figures() {
    common::init_logs();
    let env = TestEnv::new().await;
    let settings = || wp_realtime::Settings {
        admin_live_every: Duration::from_millis(300),
        ..Default::default()
    };
    let a = env.spawn_node_with(settings()).await;
    let b = env.spawn_node_with(settings()).await;
    let _workers = env.spawn_workers(&[(Queue::Analytics, 1)]).await;
    let ann = env.create_user("ann").await;
    let bob = env.create_user("bob").await;
    let staff = env.create_moderator("mod").await;
    let other = env.create_moderator("mod2").await;
    let third = env.create_moderator("mod3").await;
    let admin = env.create_admin("boss").await;

    // Refused before the upgrade: no token, a bad one, a user who is not staff.
    for (path, status) in [
        ("/ws/admin/".to_owned(), 401),
        ("/ws/admin/?token=garbage".to_owned(), 401),
        (format!("/ws/admin/?token={}", bob.token), 403),
    ] {
        let (s, body) = common::ws::refused(&a, &path).await;
        assert_eq!(s, status, "{path}: {body}");
    }

    // The first frame at once (the very first one the socket gets), before anything
    // happened.
    let mut s1 = Ws::open(&b, &format!("/ws/admin/?token={}", staff.token)).await;
    let first = s1.next().await;
    assert_eq!(first["type"], "analytics_live", "{first}");
    let rest = get(&a, Some(&staff), "/api/analytics/real-time/").await.1;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&first["data"]), keys(&rest["data"]), "{first}");

    // What happens shows up in the stream, as it does in the REST answer.
    let v = env.insert_video(&ann, "Live film", "public", 300.0).await;
    let (st, body) = a
        .post_json(
            "/api/parties/",
            Some(&ann.token),
            json!({"title": "Ann's live night", "video_id": v}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let party = body["data"]["id"].as_str().unwrap().to_owned();
    let _member = Ws::connect(&a, &party, &ann.token).await;
    for u in [&ann, &bob] {
        let (_, r) = send(&a, u, json!([ev("view_start", v, json!({}))])).await;
        assert_eq!(r["data"]["accepted"], 1, "{r}");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let live = loop {
        let f = s1.expect("analytics_live").await;
        let d = &f["data"];
        if d["viewers_now"] == 2 && d["live_parties"] == 1 && d["parties"][0]["online"] == 1 {
            break f;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw the party: {f}"
        );
    };
    assert_eq!(live["data"]["parties"][0]["title"], "Ann's live night");
    assert_eq!(live["data"]["top_videos"][0]["video_id"], v.to_string());

    // Every interval, not faster: three frames, each read later than the last.
    let mut ats = Vec::new();
    for _ in 0..3 {
        let f = s1.expect("analytics_live").await;
        let at = chrono::DateTime::parse_from_rfc3339(f["data"]["at"].as_str().unwrap()).unwrap();
        ats.push(at);
    }
    for w in ats.windows(2) {
        let gap = (w[1] - w[0]).num_milliseconds();
        // Not faster than the interval (300 ms; a read late under load only delays).
        assert!(
            (200..10_000).contains(&gap),
            "frames {gap} ms apart: {ats:?}"
        );
    }

    // The client may ping; anything else is an error frame, and the socket stays.
    s1.send("ping", json!({})).await;
    s1.expect("pong").await;
    s1.send("chat_message", json!({"content": "hi"})).await;
    assert_eq!(s1.expect_error().await, "unknown_type");

    // Demoted by an admin on node A: the staff socket on node B closes with 4003.
    let mut s2 = Ws::open(&b, &format!("/ws/admin/?token={}", other.token)).await;
    assert_eq!(s2.next().await["type"], "analytics_live");
    let mut s4 = Ws::open(&b, &format!("/ws/admin/?token={}", third.token)).await;
    assert_eq!(s4.next().await["type"], "analytics_live");
    let (st, body) = a
        .call(
            Method::PUT,
            &format!("/api/admin/users/{}/role/", staff.id),
            Some(&admin.token),
            Some(json!({"role": "user"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (code, error) = s1.expect_closed().await;
    assert_eq!((code, error.as_deref()), (Some(4003), Some("not_staff")));
    // The same by a bulk action.
    let (st, body) = a
        .post_json(
            "/api/admin/users/bulk/",
            Some(&admin.token),
            json!({"action": "set_role", "user_ids": [third.id], "role": "user"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (code, error) = s4.expect_closed().await;
    assert_eq!((code, error.as_deref()), (Some(4003), Some("not_staff")));
    // The other moderator's socket is untouched, until an admin suspends them: 4001.
    s2.send("ping", json!({})).await;
    s2.expect("pong").await;
    let (st, body) = a
        .post_json(
            &format!("/api/admin/users/{}/suspend/", other.id),
            Some(&admin.token),
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (code, error) = s2.expect_closed().await;
    assert_eq!(
        (code, error.as_deref()),
        (Some(4001), Some("account_suspended"))
    );

    // ClickHouse unreachable: an error frame instead of the figures, and the socket
    // stays open (the next interval tries again).
    let mut config = env.config.clone();
    config.clickhouse_url = "http://127.0.0.1:1".into();
    let c = env.spawn_node_on(config, settings()).await;
    let mut s3 = Ws::open(&c, &format!("/ws/admin/?token={}", admin.token)).await;
    for _ in 0..2 {
        let f = s3.next().await;
        assert_eq!(
            (&f["type"], &f["data"]["code"]),
            (&json!("error"), &json!("analytics_unavailable")),
            "{f}"
        );
    }
    s3.send("ping", json!({})).await;
    s3.expect("pong").await;
}

/// User behaviour for staff, on users registered through the API: active users, new vs
/// returning, this week's cohort, the funnel, time to a first party, party sizes and
/// the features used, worked out by hand.
#[tokio::test]
async fn user_behaviour_counts_registrations_activity_and_the_funnel() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _workers = env.spawn_workers(&[(Queue::Analytics, 1)]).await;
    let ann = env.create_user("ann").await;
    let staff = env.create_moderator("mod").await;
    // Made directly, long ago: outside the range and the cohorts.
    sqlx::query("UPDATE users SET created_at = now() - interval '40 days' WHERE id = ANY($1)")
        .bind(vec![ann.id, staff.id])
        .execute(&env.db)
        .await
        .unwrap();
    let registered = |d: Value| TestUser {
        id: d["user"]["id"].as_str().unwrap().parse().unwrap(),
        username: d["user"]["username"].as_str().unwrap().to_owned(),
        token: d["access_token"].as_str().unwrap().to_owned(),
    };
    let newbie = registered(app.register("newbie").await);
    let other = registered(app.register("other").await);
    sqlx::query("UPDATE users SET email_verified_at = now() WHERE id = $1")
        .bind(newbie.id)
        .execute(&env.db)
        .await
        .unwrap();
    let v = env.insert_video(&ann, "Film", "public", 60.0).await;
    let create = |u: &TestUser, title: &str| {
        let body = json!({"title": title, "video_id": v});
        let token = u.token.clone();
        let app = &app;
        async move {
            let (s, b) = app.post_json("/api/parties/", Some(&token), body).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            b["data"]["id"].as_str().unwrap().to_owned()
        }
    };
    let anns = create(&ann, "Ann's").await;
    create(&newbie, "Newbie's").await;
    for u in [&newbie, &other] {
        let (s, b) = app
            .post_json(
                &format!("/api/parties/{anns}/join/"),
                Some(&u.token),
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let (_, b) = send(&app, &newbie, json!([ev("view_start", v, json!({}))])).await;
    assert_eq!(b["data"]["accepted"], 1, "{b}");

    let (s, _) = get(&app, Some(&ann), "/api/analytics/user-behavior/").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (query, field) in [
        ("from=2026-13-01", "from"),
        ("from=2026-12-02&to=2026-12-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "from"),
        ("days=3", "days"),
    ] {
        let (s, b) = get(
            &app,
            Some(&staff),
            &format!("/api/analytics/user-behavior/?{query}"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {b}");
        assert!(b["errors"][field].is_array(), "{query}: {b}");
    }
    let b = eventually(Duration::from_secs(20), "the behaviour rollups", || async {
        let (s, b) = get(&app, Some(&staff), "/api/analytics/user-behavior/").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let features = b["data"]["features"].as_array().unwrap();
        let has = |kind: &str, users: u64| {
            features
                .iter()
                .any(|f| f["event_type"] == kind && f["users"] == users)
        };
        (has("user.registered", 2) && has("video.view_start", 1)).then_some(b)
    })
    .await;
    let d = &b["data"];
    assert_eq!(d["active"], json!({"dau": 2, "wau": 2, "mau": 2}), "{d}");
    assert!(close(&d["stickiness"], 1.0));
    let today = d["daily"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(today["date"], Utc::now().date_naive().to_string());
    assert_eq!(
        (
            &today["active_users"],
            &today["new_users"],
            &today["returning_users"]
        ),
        (&json!(2), &json!(2), &json!(0))
    );
    let cohort = d["cohorts"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&cohort["users"], &cohort["active"], &cohort["retention"]),
        (&json!(2), &json!([2]), &json!([1.0])),
        "{d}"
    );
    assert_eq!(
        d["funnel"],
        json!({"registered": 2, "verified_email": 1, "first_party": 1, "second_party": 1}),
        "other joined a party but never verified: not past the second step"
    );
    assert_eq!(d["time_to_first_party"]["users"], 2);
    assert!(d["time_to_first_party"]["median_hours"].as_f64().unwrap() < 1.0);
    let sizes: Vec<(String, i64)> = d["party_sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["members"].as_str().unwrap().to_owned(),
                p["parties"].as_i64().unwrap(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(sizes, [("1".to_owned(), 1), ("3-5".to_owned(), 1)]);
    let views = d["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["event_type"] == "video.view_start")
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!((&views["events"], &views["users"]), (&json!(1), &json!(1)));
}

/// Forecasts on a history written straight into ClickHouse (the API takes nothing
/// older than 7 days): a weekly shape of views, a daily evening peak of viewers, and a
/// user who went quiet; each figure and backtest worked out by hand.
#[tokio::test]
async fn forecasts_follow_the_history_and_say_how_wrong_they_were() {
    use chrono::{Datelike, Timelike};
    use wp_shared::clickhouse::{Event, insert_events};
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = env.create_user("ann").await;
    let staff = env.create_moderator("mod").await;
    let quiet = env.create_user("quiet").await;
    let v = env.insert_video(&ann, "Weekly film", "public", 60.0).await;
    let now = Utc::now();
    let today = now.date_naive();
    let at = |days_ago: i64, hour: u32| {
        (today - TimeDelta::days(days_ago))
            .and_hms_opt(hour, 30, 0)
            .unwrap()
            .and_utc()
    };
    let event = |t, kind: &str, user: Uuid, video: Uuid| Event {
        occurred_at: t,
        event_type: kind.to_owned(),
        event_id: Uuid::now_v7(),
        user_id: user,
        party_id: Uuid::nil(),
        video_id: video,
        properties: "{}".to_owned(),
    };
    let mut rows = Vec::new();
    // Today's events only in the hours already complete (those the forecasts read).
    let hour_start = now - TimeDelta::seconds(i64::from(now.minute() * 60 + now.second()));
    let done = |t: chrono::DateTime<Utc>| t + TimeDelta::minutes(30) <= hour_start;
    // 35 days of views by Ann at 08:30: 30 on Saturdays, 10 on other days.
    for d in (0..=35).filter(|d| done(at(*d, 8))) {
        let day = today - TimeDelta::days(d);
        let n = if day.weekday() == chrono::Weekday::Sat {
            30
        } else {
            10
        };
        for _ in 0..n {
            rows.push(event(at(d, 8), "video.view_start", ann.id, v));
        }
    }
    // Three viewers every evening at 20:30 for 9 days.
    let evening: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    for d in (0..=9).filter(|d| done(at(*d, 20))) {
        for u in &evening {
            rows.push(event(at(d, 20), "playback.progress", *u, v));
        }
    }
    // Quiet: active from 40 to 20 days ago, then nothing.
    for d in 20..=40 {
        rows.push(event(at(d, 12), "search.query", quiet.id, Uuid::nil()));
    }
    let ch = wp_shared::clickhouse::client(&env.config);
    insert_events(&ch, &rows).await.unwrap();

    let (s, _) = get(&app, Some(&ann), "/api/analytics/predictive/").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = get(&app, Some(&staff), "/api/analytics/predictive/").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let d = &b["data"];

    let views = &d["views"];
    assert!(
        views["method"]
            .as_str()
            .unwrap()
            .contains("Weekday-adjusted")
    );
    assert_eq!(views["backtest"]["points"], 7);
    assert!(
        close(&views["backtest"]["mae"], 0.0),
        "a steady weekly shape: {views}"
    );
    assert!(close(&views["backtest"]["wape"], 0.0));
    let video = &views["videos"][0];
    assert_eq!(video["title"], "Weekly film");
    let last28: u64 = (1..=28)
        .map(|k| {
            if (today - TimeDelta::days(k)).weekday() == chrono::Weekday::Sat {
                30
            } else {
                10
            }
        })
        .sum();
    assert_eq!(video["views_28d"], last28);
    for day in video["forecast"].as_array().unwrap() {
        let date: chrono::NaiveDate = day["date"].as_str().unwrap().parse().unwrap();
        let want = if date.weekday() == chrono::Weekday::Sat {
            30.0
        } else {
            10.0
        };
        assert!(close(&day["value"], want), "{date}: {day}");
    }

    let cap = &d["capacity"];
    assert!(close(&cap["backtest"]["mae"], 0.0), "{cap}");
    let hours = cap["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    for h in hours {
        let t: chrono::DateTime<Utc> = h["at"].as_str().unwrap().parse().unwrap();
        let (want, plan) = match t.hour() {
            20 => (3.0, 3),
            8 => (1.0, 1),
            _ => (0.0, 0),
        };
        assert!(close(&h["expected"], want), "{t}: {h}");
        assert_eq!(h["plan_for"], plan, "{t}");
    }

    let churn = &d["churn"];
    let bt = &churn["backtest"];
    assert_eq!(
        bt["users"], 2,
        "Ann and Quiet were active in the 28 days before: {bt}"
    );
    assert!(close(&bt["churn_rate"], 0.5), "{bt}");
    assert!(
        close(&bt["auc"], 1.0),
        "Quiet, who churned, scored above Ann: {bt}"
    );
    let top = &churn["users"][0];
    assert_eq!(top["username"], "quiet", "{churn}");
    assert_eq!(
        top["features"],
        json!({"days_since_active": 19, "active_days_28": 9, "trend": -9})
    );
    assert!(top["risk"].as_f64().unwrap() > 0.6);
    assert_eq!(churn["high"], 1, "{churn}");
}

/// `prune-analytics` drops raw events past their months and old minute activity, and
/// keeps the rollups whole.
#[tokio::test]
async fn old_raw_events_go_and_the_rollups_stay() {
    use wp_shared::clickhouse::{Event, insert_events};
    let env = TestEnv::new().await;
    let now = Utc::now();
    let video = Uuid::now_v7();
    let event = |t| Event {
        occurred_at: t,
        event_type: "video.view_start".to_owned(),
        event_id: Uuid::now_v7(),
        user_id: Uuid::now_v7(),
        party_id: Uuid::nil(),
        video_id: video,
        properties: "{}".to_owned(),
    };
    let ch = wp_shared::clickhouse::client(&env.config);
    insert_events(
        &ch,
        &[
            event(now - TimeDelta::days(800)),
            event(now - TimeDelta::days(3)),
            event(now),
        ],
    )
    .await
    .unwrap();
    let count = |sql: &'static str| {
        let ch = ch.clone();
        async move { ch.query(sql).fetch_one::<u64>().await.unwrap() }
    };
    let views = "SELECT toUInt64(countMerge(events)) FROM video_hourly";
    assert_eq!(count("SELECT count() FROM events").await, 3);
    let dropped = wp_core::analytics::retention::prune(&ch, now.date_naive(), 13)
        .await
        .unwrap();
    assert_eq!(
        dropped.len(),
        3,
        "a month of events, two days of minutes: {dropped:?}"
    );
    assert_eq!(
        count("SELECT count() FROM events").await,
        2,
        "the 800-day-old event is gone"
    );
    assert_eq!(
        count("SELECT toUInt64(countMerge(events)) FROM minute_activity").await,
        1,
        "minute activity keeps today and yesterday"
    );
    assert_eq!(count(views).await, 3, "the rollups keep the history");
    let again = wp_core::analytics::retention::prune(&ch, now.date_naive(), 13)
        .await
        .unwrap();
    assert!(again.is_empty(), "nothing left to drop: {again:?}");
}

#[tokio::test]
async fn the_seed_command_writes_the_history_it_reports() {
    let env = TestEnv::new().await;
    let seed = |days: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
            .args([
                "seed-analytics",
                "--days",
                days,
                "--users",
                "20",
                "--videos",
                "0",
                "--seed",
                "7",
            ])
            .envs(env.env_vars())
            .output()
    };
    let out = seed("0").await.unwrap();
    assert!(!out.status.success(), "no days: refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--days and --users must be above 0"),
        "{out:?}"
    );
    let out = seed("2").await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    // Its logs go to stdout too: the result is the line starting `seeded `.
    let total: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("seeded "))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the count on stdout: {said}"));
    assert!(total > 0, "{said}");
    let ch = wp_shared::clickhouse::client(&env.config);
    let rows: u64 = ch
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, total, "what it says it wrote is in ClickHouse");
}

/// Analytics durability (docs/analytics.md): a worker killed (SIGKILL) while its batches
/// are on their way to ClickHouse loses none of them. Its jobs stay taken until its
/// heartbeat lapses, then a live worker writes them; an event the dead worker's insert
/// still delivered is folded away on its `event_id`, so each is in `events` once.
#[tokio::test]
async fn a_killed_analytics_worker_loses_no_event() {
    use common::proxy::Proxy;
    use wp_shared::jobs::{AnalyticsEvent, AnalyticsJob};

    const JOBS: usize = 40;
    const PER_JOB: usize = 25;
    let env = TestEnv::new().await;
    let target = env
        .config
        .clickhouse_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    // The first worker's inserts are held on the way to ClickHouse: they are still on
    // the wire when it is killed, however long the test takes to get there.
    let wire = Proxy::holding(&target).await;
    let worker = |clickhouse: String| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
            .args(["worker", "--queues", "analytics=100"])
            .envs(env.env_vars())
            .env("CLICKHOUSE_URL", clickhouse)
            .env("CLICKHOUSE_TIMEOUT_SECS", "120")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut first = worker(format!("http://127.0.0.1:{}", wire.port()));
    let video = Uuid::now_v7();
    let jobs: Vec<AnalyticsJob> = (0..JOBS)
        .map(|_| AnalyticsJob::Batch {
            events: (0..PER_JOB)
                .map(|_| AnalyticsEvent::new("video.view_start", None, Some(video), json!({})))
                .collect(),
        })
        .collect();
    env.enqueuer.push_many(jobs).await.unwrap();
    let taken = eventually(Duration::from_secs(30), "every job taken", || async {
        let d = env.depth(Queue::Analytics).await;
        (d.active == 0 && d.inflight > 0).then_some(d.inflight)
    })
    .await;
    let ch = wp_shared::clickhouse::client(&env.config);
    let count = |sql: &'static str| {
        let ch = ch.clone();
        async move { ch.query(sql).fetch_one::<u64>().await.unwrap() }
    };
    let written =
        "SELECT count(DISTINCT event_id) FROM events WHERE event_type = 'video.view_start'";
    // Its inserts are on the wire, held.
    eventually(Duration::from_secs(30), "an insert sent", || async {
        (wire.held().0 > 0).then_some(())
    })
    .await;
    assert_eq!(count(written).await, 0, "nothing written before the kill");
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert_eq!(
        env.depth(Queue::Analytics).await.inflight,
        taken,
        "the dead worker's jobs are still held"
    );
    // What the dead worker had sent arrives after all (the network delivers it, and
    // ClickHouse answers it); its jobs are still to be done over.
    wire.release();
    eventually(
        Duration::from_secs(60),
        "the held inserts delivered",
        || async {
            let (held, delivered) = wire.held();
            (delivered == held).then_some(())
        },
    )
    .await;
    // A supervisor starts a worker again (this one reaches ClickHouse directly).
    let _second = worker(env.config.clickhouse_url.clone());
    eventually(Duration::from_secs(60), "every event written", || async {
        (count(written).await == (JOBS * PER_JOB) as u64).then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "the queue empty", || async {
        let d = env.depth(Queue::Analytics).await;
        (d.active == 0 && d.inflight == 0 && d.scheduled == 0).then_some(d)
    })
    .await;
    assert_eq!(env.depth(Queue::Analytics).await.dead, 0);
    assert_eq!(
        count("SELECT count() FROM events FINAL WHERE event_type = 'video.view_start'").await,
        (JOBS * PER_JOB) as u64,
        "each event once"
    );
}
