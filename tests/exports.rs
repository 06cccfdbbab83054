//! Staff CSV exports against the real services: who may export what, the user
//! directory exported with its filters and chosen columns, the file parsed back (RFC
//! 4180 quoting, formula injection neutralised), progress on the notification socket,
//! the signed download link, the requester notified; tickets exported the same way;
//! and an export whose worker process is killed mid-way finishing as one file.

mod common;

use std::time::Duration;

use common::{TestApp, TestEnv, TestUser, eventually, ws::Ws};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

/// A strict RFC 4180 reader: quoted cells with doubled quotes and line breaks inside,
/// records ended by a line break outside quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => {
                assert!(cell.is_empty(), "a quote inside an unquoted cell: {cell:?}");
                quoted = true;
            }
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(!quoted, "the file ends inside a quoted cell");
    assert!(
        cell.is_empty() && row.is_empty(),
        "the last record has no line end"
    );
    rows
}

async fn call(
    app: &TestApp,
    u: &TestUser,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.call(m, path, Some(u.token.as_str()), body).await
}

async fn wait_done(app: &TestApp, u: &TestUser, id: &str) -> Value {
    eventually(Duration::from_secs(60), "the export done", || async {
        let (s, b) = call(
            app,
            u,
            Method::GET,
            &format!("/api/admin/exports/{id}/"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_ne!(b["data"]["status"], "failed", "{b}");
        (b["data"]["status"] == "done").then(|| b["data"].clone())
    })
    .await
}

async fn download(app: &TestApp, url: &str) -> (StatusCode, String, String) {
    // The link names the public URL; the same path on this test server.
    let path = &url[url.find("/api/").expect("an API path")..];
    let res = app.client.get(app.url(path)).send().await.unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|h| h.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ctype, res.text().await.unwrap())
}

#[tokio::test]
async fn the_user_directory_exports_as_csv_with_its_filters() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let node = env.spawn_node().await;
    let _workers = env
        .spawn_workers(&[(Queue::Export, 1), (Queue::Notify, 1)])
        .await;
    let admin = env.create_admin("root").await;
    let mod1 = env.create_moderator("mod_one").await;
    let mod2 = env.create_moderator("mod_two").await;
    let alice = env.create_user("alice").await;
    let bob = env.create_user("bob").await;
    let dave = env.create_user("dave").await;
    let formula = r#"=HYPERLINK("http://evil.example","click")"#;
    let tricky = "Bob, \"the builder\"\nJr";
    for (u, name) in [(&alice, formula), (&bob, tricky)] {
        sqlx::query("UPDATE users SET display_name = $2 WHERE id = $1")
            .bind(u.id)
            .bind(name)
            .execute(&env.db)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE users SET status = 'suspended' WHERE id = $1")
        .bind(dave.id)
        .execute(&env.db)
        .await
        .unwrap();

    // Who may: the directory is for admins; tickets for staff; nobody else.
    let users_export = "/api/admin/users/export/";
    let (s, _) = call(&app, &alice, Method::POST, users_export, Some(json!({}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&app, &mod1, Method::POST, users_export, Some(json!({}))).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "moderators do not export addresses"
    );
    let (s, _) = call(
        &app,
        &mod1,
        Method::POST,
        "/api/admin/exports/",
        Some(json!({"kind": "users"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(
        &app,
        &alice,
        Method::POST,
        "/api/admin/exports/",
        Some(json!({"kind": "tickets"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (body, field) in [
        (json!({"columns": ["username", "password_hash"]}), "columns"),
        (json!({"columns": []}), "columns"),
        (json!({"filters": {"status": ["gone"]}}), "status"),
        (json!({"filters": {"country": "GBR"}}), "country"),
    ] {
        let (s, b) = call(&app, &admin, Method::POST, users_export, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(b["errors"][field].is_array(), "{field}: {b}");
    }
    let (s, _) = call(
        &app,
        &admin,
        Method::POST,
        users_export,
        Some(json!({"filters": {"colour": "red"}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The admin's notification socket sees the progress.
    let mut socket = Ws::open(&node, &format!("/ws/notifications/?token={}", admin.token)).await;
    socket.expect("notifications_state").await;

    let columns = ["username", "display_name", "email", "role", "status"];
    let (s, b) = call(
        &app,
        &admin,
        Method::POST,
        users_export,
        Some(json!({"columns": columns, "filters": {"role": ["user"], "status": ["active"]}})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["data"]["kind"], "users");
    assert!(b["data"]["download_url"].is_null());
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    let done = wait_done(&app, &admin, &id).await;
    assert_eq!(done["rows_total"], 2, "alice and bob: {done}");
    assert_eq!(done["rows_done"], 2);
    assert_eq!(done["attempts"], 1);
    let frame = loop {
        let f = socket.expect("export_progress").await;
        if f["data"]["status"] == "done" {
            break f;
        }
    };
    assert_eq!(frame["data"]["id"], id.as_str());
    assert_eq!(frame["data"]["rows_done"], 2);

    // The signed link works without a header; the file parses back exactly.
    let url = done["download_url"].as_str().unwrap();
    let (s, ctype, text) = download(&app, url).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let rows = parse_csv(&text);
    assert_eq!(rows[0], columns, "the header, in the order asked");
    assert_eq!(rows.len(), 3, "{text}");
    let by_name = |n: &str| rows.iter().find(|r| r[0] == n).unwrap().clone();
    assert_eq!(
        by_name("alice")[1],
        format!("'{formula}"),
        "a formula is neutralised"
    );
    assert_eq!(
        by_name("bob")[1],
        tricky,
        "quotes, commas and line breaks survive"
    );
    assert_eq!(by_name("bob")[2], "bob@example.com");
    assert_eq!(by_name("bob")[3..], ["user", "active"]);
    // An altered link is refused; another moderator does not see the export.
    let (s, _, _) = download(&app, &url.replace("token=", "token=x")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        &app,
        &mod1,
        Method::GET,
        &format!("/api/admin/exports/{id}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The admin is told.
    eventually(Duration::from_secs(15), "admin.export_ready", || async {
        let (_, b) = call(&app, &admin, Method::GET, "/api/notifications/", None).await;
        b["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "admin.export_ready")
            .then_some(())
    })
    .await;

    // Tickets the same way, by a moderator; only theirs and the admin's eyes see it.
    let (s, b) = app
        .post_json(
            "/api/support/tickets/",
            Some(&bob.token),
            json!({"subject": "+cmd|' /C calc'!A0", "description": "Playback stops.", "category": "playback"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = call(
        &app,
        &mod1,
        Method::POST,
        "/api/admin/exports/",
        Some(
            json!({"kind": "tickets", "columns": ["number", "subject", "user", "status"],
                    "filters": {"status": ["open"]}}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let tid = b["data"]["id"].as_str().unwrap().to_owned();
    let done = wait_done(&app, &mod1, &tid).await;
    let (s, _) = call(
        &app,
        &mod2,
        Method::GET,
        &format!("/api/admin/exports/{tid}/"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, _, text) = download(&app, done["download_url"].as_str().unwrap()).await;
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[1][1], "'+cmd|' /C calc'!A0");
    assert_eq!(rows[1][2..], ["bob", "open"]);
    let (s, b) = call(&app, &admin, Method::GET, "/api/admin/exports/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["count"], 2, "admins see every export: {b}");
}

/// A worker process killed (SIGKILL) in the middle of an export: the job comes back to
/// another process, which starts again and finishes; the export has all its rows, in
/// one file, and nothing half-written stays visible.
#[tokio::test]
async fn an_export_survives_its_worker_killed_mid_way() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let admin = env.create_admin("root").await;
    let seeded: u64 = 40_000;
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash)
         SELECT gen_random_uuid(), 'seed_' || i, 'seed_' || i || '@example.com', '!'
           FROM generate_series(1, $1) AS i",
    )
    .bind(seeded as i64)
    .execute(&env.db)
    .await
    .unwrap();

    let (s, b) = call(
        &app,
        &admin,
        Method::POST,
        "/api/admin/users/export/",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    // A slow worker (10,000 rows a second): killed once it has written some.
    let mut slow = common::worker_process(
        &env,
        "export=1",
        &[("EXPORT_ROWS_PER_SECOND", "10000".into())],
    );
    eventually(Duration::from_secs(30), "the export half-way", || async {
        let (_, b) = call(
            &app,
            &admin,
            Method::GET,
            &format!("/api/admin/exports/{id}/"),
            None,
        )
        .await;
        let d = &b["data"];
        (d["status"] == "running" && d["rows_done"].as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    slow.kill().await.unwrap();
    let (_, b) = call(
        &app,
        &admin,
        Method::GET,
        &format!("/api/admin/exports/{id}/"),
        None,
    )
    .await;
    let at_kill = b["data"]["rows_done"].as_u64().unwrap();
    assert!(at_kill < seeded + 1, "killed before the end: {b}");

    let _fresh = common::worker_process(&env, "export=1", &[]);
    let done = wait_done(&app, &admin, &id).await;
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(
        done["rows_total"].as_u64(),
        Some(seeded + 1),
        "the seeded and the admin"
    );
    assert_eq!(done["rows_done"], done["rows_total"]);
    let (s, _, text) = download(&app, done["download_url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let rows = parse_csv(&text);
    assert_eq!(
        rows.len() as u64,
        seeded + 2,
        "a header and every account once"
    );
    let mut names: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len() as u64, seeded + 1, "no account twice");
    assert_eq!(done["size_bytes"].as_u64(), Some(text.len() as u64));
    // One file under the export's key; a part the killed run left is not an object.
    let dir = env.config.storage_dir.join("exports/tables");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".part"))
        .collect();
    assert_eq!(files, [format!("{id}.csv")]);
}

/// The analytics events export from ClickHouse the same way: admins only, the event
/// types and the time range filtered, zero ids as empty cells, formulas neutralised.
#[tokio::test]
async fn analytics_events_export_from_clickhouse() {
    common::init_logs();
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let _workers = env.spawn_workers(&[(Queue::Export, 1)]).await;
    let admin = env.create_admin("root").await;
    let mod1 = env.create_moderator("mod_one").await;
    let (user, video) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let zero = uuid::Uuid::nil();
    let ch = wp_shared::clickhouse::client(&env.config);
    for (at, kind, u, v, props) in [
        (
            "2026-12-01 10:00:00",
            "video.view_start",
            user,
            video,
            r#"{"position":12.5}"#,
        ),
        ("2026-12-01 11:00:00", "=cmd|calc", zero, zero, "{}"),
        ("2026-12-01 12:00:00", "video.download", user, video, "{}"),
        ("2026-11-01 12:00:00", "video.view_start", user, video, "{}"),
    ] {
        ch.query(
            "INSERT INTO events (occurred_at, event_type, event_id, user_id, party_id, video_id, properties)
             VALUES (toDateTime(?, 'UTC'), ?, toUUID(?), toUUID(?), toUUID(?), toUUID(?), ?)",
        )
        .bind(at)
        .bind(kind)
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(u.to_string())
        .bind(zero.to_string())
        .bind(v.to_string())
        .bind(props)
        .execute()
        .await
        .unwrap();
    }

    let body = json!({"kind": "analytics",
                      "columns": ["occurred_at", "event_type", "user_id", "party_id", "properties"],
                      "filters": {"event_type": ["video.view_start", "=cmd|calc"],
                                  "created_after": "2026-11-30T00:00:00Z"}});
    let (s, _) = call(
        &app,
        &mod1,
        Method::POST,
        "/api/admin/exports/",
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "analytics carry user ids: admins only"
    );
    let (s, b) = call(
        &app,
        &admin,
        Method::POST,
        "/api/admin/exports/",
        Some(json!({"kind": "tickets", "filters": {"event_type": ["x"]}})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["event_type"].is_array(), "{b}");
    let (s, b) = call(
        &app,
        &admin,
        Method::POST,
        "/api/admin/exports/",
        Some(body),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    let done = wait_done(&app, &admin, &id).await;
    assert_eq!(done["rows_total"], 2, "{done}");
    let (_, _, text) = download(&app, done["download_url"].as_str().unwrap()).await;
    let rows = parse_csv(&text);
    assert_eq!(
        rows,
        [
            vec![
                "occurred_at",
                "event_type",
                "user_id",
                "party_id",
                "properties"
            ],
            vec![
                "2026-12-01T10:00:00Z",
                "video.view_start",
                &user.to_string(),
                "",
                r#"{"position":12.5}"#
            ],
            vec!["2026-12-01T11:00:00Z", "'=cmd|calc", "", "", "{}"],
        ],
        "{text}"
    );
}
