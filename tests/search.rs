//! Search (docs/search.md) against the real services, PostgreSQL backend: what each
//! caller may find (own, public, friends', groups', events'; blocked users hidden both
//! ways; filters that try to reach around the rules), the change log folded by the
//! search worker (create, rename, hide, delete, a suspended owner), ranking, typos,
//! highlights, facets, suggestions, saved searches and the parameters named on error.

mod common;

use std::time::Duration;

use common::{TestApp, TestEnv, TestUser, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;
use wp_shared::jobs::Queue;

/// Inserts a ready video as the media worker leaves it.
async fn video(
    env: &TestEnv,
    owner: &TestUser,
    title: &str,
    visibility: &str,
    extra: Value,
) -> Uuid {
    let id = Uuid::now_v7();
    let tags: Vec<String> = extra["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO videos (id, owner_id, title, description, tags, category, visibility, status,
                             storage_key, original_filename, container, content_type, size_bytes,
                             sha256, duration_seconds, like_count, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'ready', $8, 'a.mp4', 'mp4', 'video/mp4', 1000,
                 'x', $9, $10, now() - make_interval(days => $11))",
    )
    .bind(id)
    .bind(owner.id)
    .bind(title)
    .bind(extra["description"].as_str().unwrap_or(""))
    .bind(&tags)
    .bind(extra["category"].as_str().unwrap_or(""))
    .bind(visibility)
    .bind(format!("videos/{id}"))
    .bind(extra["duration"].as_f64().unwrap_or(60.0))
    .bind(extra["likes"].as_i64().unwrap_or(0) as i32)
    .bind(extra["age_days"].as_i64().unwrap_or(0) as i32)
    .execute(&env.db)
    .await
    .expect("insert video");
    id
}

async fn get(app: &TestApp, u: Option<&TestUser>, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, u.map(|u| u.token.as_str()), None)
        .await
}

/// The titles a search answers, in order.
async fn titles(app: &TestApp, u: Option<&TestUser>, query: &str) -> Vec<String> {
    let (s, b) = get(app, u, &format!("/api/search/?{query}")).await;
    assert_eq!(s, StatusCode::OK, "{query}: {b}");
    b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["title"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the change log is empty (every change folded by the worker).
async fn folded(env: &TestEnv) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<(String, Uuid)> =
            sqlx::query_as("SELECT index_name, object_id FROM search_changes ORDER BY id")
                .fetch_all(&env.db)
                .await
                .unwrap();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "changes not folded after 15 s: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn each_caller_finds_only_what_they_may_see() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _workers = env.spawn_workers(&[(Queue::Search, 1)]).await;
    let alice = env.create_user("alice").await;
    let bob = env.create_user("bob").await; // alice's friend
    let carol = env.create_user("carol").await; // a stranger
    let dave = env.create_user("dave").await; // blocked by alice
    let mallory = env.create_admin("mallory").await; // staff
    env.befriend(&alice, &bob).await;
    sqlx::query("INSERT INTO blocks (blocker, blocked) VALUES ($1, $2)")
        .bind(alice.id)
        .bind(dave.id)
        .execute(&env.db)
        .await
        .unwrap();
    for (title, vis) in [
        ("Aurora public", "public"),
        ("Aurora friends", "friends"),
        ("Aurora private", "private"),
        ("Aurora unlisted", "unlisted"),
    ] {
        video(&env, &alice, title, vis, json!({})).await;
    }
    video(&env, &carol, "Aurora by carol", "friends", json!({})).await;
    // A private group with a group event, and a public upcoming event, an ended one and
    // a private one carol is invited to.
    let group = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO social_groups (id, name, admin_id, is_private) VALUES ($1, 'Aurora club', $2, true)",
    )
    .bind(group)
    .bind(alice.id)
    .execute(&env.db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, 'admin'), ($1, $3, 'member')")
        .bind(group)
        .bind(alice.id)
        .bind(bob.id)
        .execute(&env.db)
        .await
        .unwrap();
    let event = |title: &'static str, public: bool, starts_in_h: i32, group: Option<Uuid>| {
        let db = env.db.clone();
        let organizer = alice.id;
        async move {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO events (id, organizer_id, title, start_time, end_time, is_public, group_id)
                 VALUES ($1, $2, $3, now() + make_interval(hours => $4),
                         now() + make_interval(hours => $4 + 1), $5, $6)",
            )
            .bind(id)
            .bind(organizer)
            .bind(title)
            .bind(starts_in_h)
            .bind(public)
            .bind(group)
            .execute(&db)
            .await
            .unwrap();
            id
        }
    };
    event("Aurora night", true, 24, None).await;
    let past = event("Aurora last year", true, -48, None).await;
    sqlx::query("UPDATE events SET status = 'ended' WHERE id = $1")
        .bind(past)
        .execute(&env.db)
        .await
        .unwrap();
    event("Aurora club meetup", false, 24, Some(group)).await;
    let invited = event("Aurora invite only", false, 24, None).await;
    sqlx::query(
        "INSERT INTO event_invitations (event_id, user_id, invited_by) VALUES ($1, $2, $3)",
    )
    .bind(invited)
    .bind(carol.id)
    .bind(alice.id)
    .execute(&env.db)
    .await
    .unwrap();
    folded(&env).await;

    let q = "q=aurora&page_size=50";
    assert_eq!(
        sorted(titles(&app, Some(&alice), q).await),
        sorted(
            [
                "Aurora public",
                "Aurora friends",
                "Aurora private",
                "Aurora unlisted",
                "Aurora club",
                "Aurora night",
                "Aurora last year",
                "Aurora club meetup",
                "Aurora invite only",
            ]
            .map(String::from)
            .to_vec()
        ),
        "the owner finds all of hers (her ended event too), not carol's friends-only video"
    );
    assert_eq!(
        sorted(titles(&app, Some(&bob), q).await),
        sorted(
            [
                "Aurora public",
                "Aurora friends",
                "Aurora club",
                "Aurora night",
                "Aurora club meetup"
            ]
            .map(String::from)
            .to_vec()
        ),
        "a friend and group member: public, friends-only, the group and its event"
    );
    assert_eq!(
        sorted(titles(&app, Some(&carol), q).await),
        sorted(
            [
                "Aurora public",
                "Aurora by carol",
                "Aurora night",
                "Aurora invite only"
            ]
            .map(String::from)
            .to_vec()
        ),
        "a stranger: public things, her own, the event she is invited to"
    );
    assert_eq!(
        titles(&app, Some(&dave), q).await,
        Vec::<String>::new(),
        "blocked: nothing of alice's"
    );
    assert_eq!(
        sorted(titles(&app, None, q).await),
        sorted(["Aurora public", "Aurora night"].map(String::from).to_vec()),
        "signed out: public and upcoming"
    );
    assert_eq!(
        titles(&app, Some(&mallory), q).await.len(),
        9,
        "staff find everything but others' past events (as everyone: ask with status=ended)"
    );

    // Filters cannot reach around the rules.
    let id = alice.id;
    for attack in [
        format!("q=aurora&visibility=private&owner={id}"),
        format!("q=aurora&visibility=friends&type=videos&owner={id}"),
        format!("q=aurora&group={group}"),
        "q=aurora&status=scheduled&type=events".to_owned(),
    ] {
        let found = titles(&app, Some(&carol), &attack).await;
        assert!(
            found
                .iter()
                .all(|t| ["Aurora public", "Aurora night", "Aurora invite only"]
                    .contains(&t.as_str())),
            "{attack}: {found:?}"
        );
    }
    assert_eq!(
        titles(&app, Some(&carol), "q=aurora&status=ended&type=events").await,
        vec!["Aurora last year".to_owned()],
        "ended public events are found when asked for"
    );
    // Users: blocked both ways.
    assert_eq!(
        titles(&app, Some(&dave), "q=alice&type=users").await.len(),
        0
    );
    assert_eq!(
        titles(&app, Some(&alice), "q=dave&type=users").await.len(),
        0
    );
    assert_eq!(
        titles(&app, Some(&carol), "q=alice&type=users").await,
        vec!["alice".to_owned()]
    );
    // Suggestions keep to the same rules.
    let (_, b) = get(&app, Some(&carol), "/api/search/suggest/?q=auro").await;
    let texts: Vec<&str> = b["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"Aurora public"), "{b}");
    for hidden in [
        "Aurora friends",
        "Aurora private",
        "Aurora unlisted",
        "Aurora club",
    ] {
        assert!(!texts.contains(&hidden), "{hidden} leaked: {b}");
    }
}

#[tokio::test]
async fn changes_reach_the_index_through_the_change_log() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let alice = env.create_user("alice").await;
    let bob = env.create_user("bob").await;
    // Written while no search worker runs: recorded, not lost.
    let (s, b) = app
        .post_json(
            "/api/social/groups/",
            Some(&alice.token),
            json!({"name": "Nebula watchers", "description": "Deep sky films"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let gid = b["data"]["id"].as_str().unwrap().to_owned();
    let v = video(&env, &alice, "Comet hunters", "public", json!({})).await;
    assert!(titles(&app, Some(&bob), "q=nebula").await.is_empty());

    let workers = env.spawn_workers(&[(Queue::Search, 1)]).await;
    folded(&env).await;
    assert_eq!(
        titles(&app, Some(&bob), "q=nebula").await,
        vec!["Nebula watchers"]
    );
    assert_eq!(
        titles(&app, Some(&bob), "q=comet").await,
        vec!["Comet hunters"]
    );

    // A rename through the API: the new name is found, the old one is not.
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/api/social/groups/{gid}/"),
            Some(&alice.token),
            Some(json!({"name": "Galaxy watchers"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    eventually(Duration::from_secs(10), "the rename indexed", || async {
        (titles(&app, Some(&bob), "q=galaxy").await == vec!["Galaxy watchers"]).then_some(())
    })
    .await;
    assert!(titles(&app, Some(&bob), "q=nebula").await.is_empty());

    // Made private: gone for bob at once from the index (he is no member).
    sqlx::query("UPDATE videos SET visibility = 'private' WHERE id = $1")
        .bind(v)
        .execute(&env.db)
        .await
        .unwrap();
    folded(&env).await;
    assert!(titles(&app, Some(&bob), "q=comet").await.is_empty());
    assert_eq!(
        titles(&app, Some(&alice), "q=comet").await,
        vec!["Comet hunters"]
    );

    // A suspended owner and their videos leave the index; back when lifted.
    video(&env, &alice, "Quasar light", "public", json!({})).await;
    folded(&env).await;
    assert_eq!(
        titles(&app, Some(&bob), "q=quasar").await,
        vec!["Quasar light"]
    );
    sqlx::query("UPDATE users SET status = 'suspended' WHERE id = $1")
        .bind(alice.id)
        .execute(&env.db)
        .await
        .unwrap();
    folded(&env).await;
    assert!(titles(&app, Some(&bob), "q=quasar").await.is_empty());
    assert!(
        titles(&app, Some(&bob), "q=alice&type=users")
            .await
            .is_empty()
    );
    sqlx::query("UPDATE users SET status = 'active' WHERE id = $1")
        .bind(alice.id)
        .execute(&env.db)
        .await
        .unwrap();
    folded(&env).await;
    assert_eq!(
        titles(&app, Some(&bob), "q=alice&type=users").await,
        vec!["alice"]
    );
    assert_eq!(
        titles(&app, Some(&bob), "q=quasar").await,
        vec!["Quasar light"]
    );

    // Deleted: gone.
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/social/groups/{gid}/"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    folded(&env).await;
    assert!(titles(&app, Some(&alice), "q=galaxy").await.is_empty());
    let docs: i64 = sqlx::query_scalar("SELECT count(*) FROM search_documents WHERE id = $1::uuid")
        .bind(&gid)
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(docs, 0);

    // Folding is idempotent: the same changes again write the same documents.
    let before: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, title FROM search_documents ORDER BY id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO search_changes (index_name, object_id)
         SELECT index_name, id FROM search_documents UNION ALL SELECT 'groups', $1::uuid",
    )
    .bind(&gid)
    .execute(&env.db)
    .await
    .unwrap();
    // Rows written by hand announce nothing (the triggers do): wake the worker.
    sqlx::query("SELECT pg_notify('wp_search', 'test')")
        .execute(&env.db)
        .await
        .unwrap();
    folded(&env).await;
    let after: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, title FROM search_documents ORDER BY id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(before, after);

    // A rebuild from scratch gives the same index.
    for index in wp_core::search::SearchIndex::ALL {
        wp_core::search::sync::rebuild(&env.db, *index)
            .await
            .unwrap();
    }
    let rebuilt: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, title FROM search_documents ORDER BY id")
            .fetch_all(&env.db)
            .await
            .unwrap();
    assert_eq!(before, rebuilt);
    drop(workers);
}

#[tokio::test]
async fn ranking_typos_highlights_facets_and_suggestions() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _workers = env.spawn_workers(&[(Queue::Search, 1)]).await;
    let alice = env.create_user("alice").await;
    let bob = env.create_user("bob").await;
    let carol = env.create_user("carol").await;
    video(&env, &alice, "The Matrix", "public", json!({"category": "film", "tags": ["scifi", "classic"], "duration": 8160.0, "likes": 50, "age_days": 400})).await;
    video(&env, &alice, "Making of a film", "public", json!({"description": "How the matrix effects were made", "category": "documentary", "tags": ["scifi"], "duration": 600.0, "age_days": 3})).await;
    video(
        &env,
        &alice,
        "Matrix <script>alert(1)</script>",
        "public",
        json!({"category": "film", "duration": 120.0}),
    )
    .await;
    video(
        &env,
        &alice,
        "Café au lait",
        "public",
        json!({"category": "food", "tags": ["coffee"]}),
    )
    .await;
    video(
        &env,
        &alice,
        "Private matrix notes",
        "private",
        json!({"category": "film"}),
    )
    .await;
    folded(&env).await;

    // A title match ranks above a description match.
    let t = titles(&app, Some(&bob), "q=matrix&type=videos").await;
    assert_eq!(t.len(), 3, "{t:?}");
    assert_eq!(t.last().unwrap(), "Making of a film", "{t:?}");
    // Typos and accents.
    assert!(
        titles(&app, Some(&bob), "q=matirx")
            .await
            .contains(&"The Matrix".to_owned())
    );
    assert_eq!(
        titles(&app, Some(&bob), "q=cafe").await,
        vec!["Café au lait"]
    );
    // Highlights are escaped HTML with the match marked.
    let (_, b) = get(
        &app,
        Some(&bob),
        "/api/search/?q=matrix&type=videos&sort=newest",
    )
    .await;
    let hits = b["data"]["results"].as_array().unwrap();
    assert_eq!(hits[0]["title"], "Matrix <script>alert(1)</script>", "{b}");
    let h = hits[0]["highlights"]["title"].as_str().unwrap();
    assert!(h.contains("<mark>Matrix</mark>"), "{h}");
    assert!(
        h.contains("&lt;script&gt;") && !h.contains("<script>"),
        "{h}"
    );
    assert_eq!(b["data"]["count"], 3);
    assert_eq!(b["data"]["totals"]["videos"], 3);
    // Facets over all results, for bob: no visibility facet of others' videos.
    let f = &b["data"]["facets"];
    assert_eq!(
        f["category"],
        json!([{"value": "film", "count": 2}, {"value": "documentary", "count": 1}]),
        "{f}"
    );
    assert_eq!(
        f["tags"],
        json!([{"value": "scifi", "count": 2}, {"value": "classic", "count": 1}]),
        "{f}"
    );
    assert_eq!(
        f["duration"],
        json!([{"value": "short", "count": 1}, {"value": "medium", "count": 1}, {"value": "long", "count": 1}]),
        "{f}"
    );
    assert_eq!(
        f["uploaded"],
        json!([{"value": "day", "count": 1}, {"value": "week", "count": 2}, {"value": "month", "count": 2}, {"value": "year", "count": 2}]),
        "{f}"
    );
    assert_eq!(f["visibility"], json!([]));
    // The owner's visibility facet counts her own.
    let (_, b) = get(&app, Some(&alice), "/api/search/?q=matrix&type=videos").await;
    assert_eq!(
        b["data"]["facets"]["visibility"],
        json!([{"value": "private", "count": 1}, {"value": "public", "count": 3}])
    );
    // Filters.
    assert_eq!(
        titles(&app, Some(&bob), "q=matrix&tags=classic").await,
        vec!["The Matrix"]
    );
    assert_eq!(
        titles(&app, Some(&bob), "q=matrix&duration=long").await,
        vec!["The Matrix"]
    );
    assert_eq!(
        titles(&app, Some(&bob), "q=matrix&category=documentary").await,
        vec!["Making of a film"]
    );
    assert_eq!(
        titles(&app, Some(&bob), "q=matrix&uploaded=week&sort=oldest").await,
        vec!["Making of a film", "Matrix <script>alert(1)</script>"]
    );
    assert_eq!(
        titles(&app, Some(&bob), "q=matrix&sort=popular").await[0],
        "The Matrix"
    );
    // Pages.
    let (_, b) = get(
        &app,
        Some(&bob),
        "/api/search/?q=matrix&page_size=2&page=2&sort=newest",
    )
    .await;
    assert_eq!(b["data"]["results"].as_array().unwrap().len(), 1);
    assert_eq!(b["data"]["total_pages"], 2);
    assert!(b["data"]["next"].is_null() && b["data"]["previous"].is_string());

    // Suggestions: titles by prefix, tags, and a query once three people ran it.
    let suggest = |u: &TestUser, q: &str| {
        let app = &app;
        let (u, q) = (u.token.clone(), q.to_owned());
        async move {
            let (s, b) = app
                .call(
                    Method::GET,
                    &format!("/api/search/suggest/?q={q}"),
                    Some(&u),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b["data"]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["text"].as_str().unwrap().to_owned(),
                        s["source"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let s = suggest(&bob, "the ma").await;
    assert_eq!(
        s.first(),
        Some(&("The Matrix".to_owned(), "videos".to_owned())),
        "{s:?}"
    );
    let s = suggest(&bob, "sci").await;
    assert!(s.contains(&("scifi".to_owned(), "tag".to_owned())), "{s:?}");
    let popular = ("zebra documentaries".to_owned(), "query".to_owned());
    for u in [&alice, &bob] {
        titles(&app, Some(u), "q=Zebra%20documentaries").await;
        titles(&app, Some(u), "q=zebra+documentaries").await;
    }
    assert!(
        !suggest(&bob, "zeb").await.contains(&popular),
        "two people are not enough"
    );
    titles(&app, Some(&carol), "q=zebra%20%20DOCUMENTARIES").await;
    assert!(suggest(&bob, "zeb").await.contains(&popular));
}

#[tokio::test]
async fn bad_parameters_are_named_and_saved_searches_are_the_owners() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let alice = env.create_user("alice").await;
    let bob = env.create_user("bob").await;
    for (query, field) in [
        ("", "q"),
        ("q=%20%20", "q"),
        ("q=a&type=videos,bogus", "type"),
        ("q=a&type=,", "type"),
        ("q=a&sort=soonest", "sort"),
        ("q=a&sort=best", "sort"),
        ("q=a&duration=forever", "duration"),
        ("q=a&visibility=secret", "visibility"),
        ("q=a&status=gone", "status"),
        ("q=a&owner=nope", "owner"),
        ("q=a&page_size=101", "page_size"),
        ("q=a&page=0", "page"),
        ("q=a&tags=1,2,3,4,5,6,7,8,9,10,11", "tags"),
        ("q=a&colour=red", "colour"),
    ] {
        let (s, b) = get(&app, Some(&alice), &format!("/api/search/?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {b}");
        assert!(b["errors"][field].is_array(), "{query}: {b}");
    }
    let (s, b) = get(&app, None, "/api/search/suggest/?q=ab&limit=21").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["limit"].is_array(), "{b}");

    // Saved searches.
    let (s, _) = get(&app, None, "/api/search/saved/").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let body = json!({"name": "Space", "search": {"q": "nebula", "type": "videos", "sort": "newest"}, "alert": true});
    let (s, b) = app
        .post_json("/api/search/saved/", Some(&alice.token), body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(b["data"]["query"], "nebula");
    assert_eq!(
        b["data"]["params"],
        json!({"type": "videos", "sort": "newest"})
    );
    let (s, b) = app
        .post_json("/api/search/saved/", Some(&alice.token), body)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(b["errors"]["name"].is_array(), "{b}");
    let (s, b) = app
        .post_json(
            "/api/search/saved/",
            Some(&alice.token),
            json!({"name": "x", "search": {"q": "a", "type": "nope"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["search.type"].is_array(), "{b}");
    let (_, b) = get(&app, Some(&bob), "/api/search/saved/").await;
    assert_eq!(b["data"]["count"], 0, "bob sees none of alice's");
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/search/saved/{id}/"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "bob cannot delete alice's");
    let (_, b) = get(&app, Some(&alice), "/api/search/saved/").await;
    assert_eq!(b["data"]["count"], 1);
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/search/saved/{id}/"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn trending_and_search_analytics_come_from_clickhouse() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _workers = env
        .spawn_workers(&[(Queue::Search, 1), (Queue::Analytics, 50)])
        .await;
    let users: Vec<TestUser> =
        futures::future::join_all(["ann", "ben", "cat", "dot"].map(|n| env.create_user(n))).await;
    let [ann, ben, cat, dot] = &users[..] else {
        unreachable!()
    };
    video(&env, ann, "Dune", "public", json!({})).await;
    folded(&env).await;
    for u in [ann, ben, cat] {
        titles(&app, Some(u), "q=Dune").await;
    }
    titles(&app, None, "q=dune").await; // signed out: a search, not a person
    for u in [ann, ben] {
        titles(&app, Some(u), "q=solo").await; // two people: never shown
    }
    titles(&app, Some(dot), "q=zzqx").await;
    titles(&app, Some(dot), "q=dune&page=2").await; // paging is not a new search
    for position in [1, 1, 3] {
        let (s, b) = app
            .post_json(
                "/api/search/click/",
                Some(&ann.token),
                json!({"q": "dune", "type": "videos", "id": Uuid::now_v7(), "position": position}),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    }
    let (s, b) = app
        .post_json(
            "/api/search/click/",
            None,
            json!({"q": "dune", "type": "films", "id": Uuid::now_v7(), "position": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(b["errors"]["type"].is_array(), "{b}");

    let trending = eventually(
        Duration::from_secs(20),
        "searches in ClickHouse",
        || async {
            let (s, b) = get(&app, None, "/api/search/trending/").await;
            assert_eq!(s, StatusCode::OK, "{b}");
            // The searches reach ClickHouse in batches: wait for all four of `dune`
            // (the trend shows from its third person on, maybe before the fourth).
            let top = b["data"]["top"].as_array()?;
            (top.len() == 1 && top[0]["searches"].as_u64()? >= 4).then_some(b)
        },
    )
    .await;
    let top = &trending["data"]["top"][0];
    assert_eq!(top["query"], "dune");
    assert_eq!(top["searches"], 4, "three people and one signed-out search");
    assert_eq!(top["users"], 3);
    assert_eq!(
        trending["data"]["rising"][0]["query"], "dune",
        "new today: rising"
    );
    assert_eq!(trending["data"]["min_users"], 3);

    let (s, _) = get(&app, Some(ann), "/api/search/analytics/").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let staff = env.create_admin("staff").await;
    let (s, b) = get(&app, Some(&staff), "/api/search/analytics/?days=0").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["days"].is_array(), "{b}");
    let b = eventually(Duration::from_secs(20), "clicks in ClickHouse", || async {
        let (s, b) = get(&app, Some(&staff), "/api/search/analytics/").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        (b["data"]["click_through"].as_array().map(Vec::len) == Some(2)).then_some(b)
    })
    .await;
    let d = &b["data"];
    assert_eq!(d["searches"], 7, "{d}");
    assert_eq!(d["zero_result_searches"], 3, "{d}");
    assert_eq!(
        d["zero_results"],
        json!([{"query": "solo", "searches": 2, "users": 2}, {"query": "zzqx", "searches": 1, "users": 1}])
    );
    assert_eq!(d["click_through"][0]["position"], 1);
    assert_eq!(d["click_through"][0]["clicks"], 2);
    assert_eq!(d["click_through"][1]["position"], 3);
    let rate = d["click_through"][0]["rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 7.0).abs() < 1e-9, "{rate}");
}

#[tokio::test]
async fn saved_search_alerts_come_once_a_day_with_the_owners_eyes() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _workers = env
        .spawn_workers(&[(Queue::Search, 1), (Queue::Notify, 2)])
        .await;
    let alice = env.create_user("alice").await;
    let bob = env.create_user("bob").await;
    let (s, b) = app
        .post_json(
            "/api/search/saved/",
            Some(&alice.token),
            json!({"name": "Comets", "search": {"q": "comet", "type": "videos"}, "alert": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let saved: Uuid = b["data"]["id"].as_str().unwrap().parse().unwrap();
    // Its filters hold: this one matches none of the new videos.
    let (s, b) = app
        .post_json(
            "/api/search/saved/",
            Some(&alice.token),
            json!({"name": "Comet docs", "search": {"q": "comet", "category": "documentary"}, "alert": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    video(&env, &bob, "Old comet", "public", json!({"age_days": 3})).await;
    video(&env, &bob, "Comet returns", "public", json!({})).await;
    video(&env, &bob, "Comet in private", "private", json!({})).await;
    folded(&env).await;

    // Saved just now: not due for a day.
    let now = chrono::Utc::now();
    let a = wp_core::search::alerts::run_due(&env.db, now, 100)
        .await
        .unwrap();
    assert_eq!(a.looked, 0);
    // A day later (the look dates back two days): the one new video she may see.
    sqlx::query("UPDATE saved_searches SET alerted_until = now() - interval '2 days'")
        .execute(&env.db)
        .await
        .unwrap();
    env.enqueuer
        .push(wp_shared::jobs::SearchJob::Alerts)
        .await
        .unwrap();
    let n = eventually(
        Duration::from_secs(15),
        "the alert notification",
        || async {
            let (_, b) = get(&app, Some(&alice), "/api/notifications/").await;
            let list = b["data"]["results"].as_array().cloned().unwrap_or_default();
            list.into_iter().find(|n| n["kind"] == "search.alert")
        },
    )
    .await;
    assert_eq!(n["title"], "New videos for \"Comets\"", "{n}");
    assert_eq!(
        n["body"], "1 new video match \"comet\": Comet returns",
        "{n}"
    );
    // Run again: nothing new is due, nothing is sent twice.
    let a = wp_core::search::alerts::run_due(&env.db, chrono::Utc::now(), 100)
        .await
        .unwrap();
    assert_eq!(a.looked, 0);
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT payload->>'saved_search_id' FROM domain_events WHERE kind = 'search.alert'",
    )
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert_eq!(
        events,
        vec![saved.to_string()],
        "one alert, of the first search"
    );
    // A day on (the clock moved 25 hours) with nothing new: looked at, no event.
    let later = chrono::Utc::now() + chrono::Duration::hours(25);
    let a = wp_core::search::alerts::run_due(&env.db, later, 100)
        .await
        .unwrap();
    assert_eq!((a.looked, a.alerted.len()), (2, 0));
}

#[tokio::test]
async fn the_reindex_command_rebuilds_an_index_from_the_tables() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("owner").await;
    video(&env, &owner, "Rebuilt from scratch", "public", json!({})).await;
    // The index lost everything (a restore, a bug): the tables still have it.
    sqlx::query("DELETE FROM search_documents")
        .execute(&env.db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM search_changes")
        .execute(&env.db)
        .await
        .unwrap();
    assert!(
        titles(&app, Some(&owner), "q=scratch&type=videos")
            .await
            .is_empty()
    );
    let reindex = |args: &'static [&'static str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_watch-party"))
            .arg("search-reindex")
            .args(args)
            .envs(env.env_vars())
            .output()
    };
    let out = reindex(&["--index", "nonsense"]).await.unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--index must be one of"),
        "{out:?}"
    );
    let out = reindex(&["--index", "videos"]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        titles(&app, Some(&owner), "q=scratch&type=videos").await,
        ["Rebuilt from scratch"]
    );
    // Without --index: every index.
    let out = reindex(&[]).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let users: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM search_documents WHERE index_name = 'users' AND id = $1",
    )
    .bind(owner.id)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(users, 1, "the users index too");
}
