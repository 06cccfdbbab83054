//! Account deletion with a grace period, data exports, avatars.

mod common;

use std::{sync::Arc, time::Duration};

use common::{STRONG_PASSWORD, TestEnv, eventually};
use reqwest::{Method, StatusCode, multipart};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

fn tok(d: &Value) -> String {
    d["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_export_is_queued_built_by_the_worker_and_only_its_owner_gets_it() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = app.register("ann_exports").await;
    let bob = app.register("bob_exports").await;
    app.post_json(
        &format!(
            "/api/social/follow/{}/",
            bob["user"]["id"].as_str().unwrap()
        ),
        Some(&tok(&ann)),
        json!({}),
    )
    .await;
    let (s, b) = app
        .post_json("/api/users/me/export/", Some(&tok(&ann)), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["data"]["status"], "queued");
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = app
        .post_json("/api/users/me/export/", Some(&tok(&ann)), json!({}))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("export_pending"))
    );

    let workers = env.spawn_workers(&[(Queue::Export, 1)]).await;
    let status_path = format!("/api/users/me/exports/{id}/");
    let ready = eventually(Duration::from_secs(15), "the export ready", || async {
        let (_, b) = app
            .call(Method::GET, &status_path, Some(&tok(&ann)), None)
            .await;
        (b["data"]["status"] == "ready").then_some(b)
    })
    .await;
    workers.shutdown().await;
    let url = ready["data"]["download_url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/api/users/me/exports/{id}/download/")));
    let res = app
        .client
        .get(app.url(&format!("/api/users/me/exports/{id}/download/")))
        .bearer_auth(tok(&ann))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["profile"]["username"], "ann_exports");
    assert_eq!(doc["profile"]["email"], "ann_exports@example.com");
    assert_eq!(doc["following"][0]["username"], "bob_exports");
    assert!(!doc["sessions"].as_array().unwrap().is_empty());

    // Bob sees neither the status nor the file.
    let (s, _) = app
        .call(Method::GET, &status_path, Some(&tok(&bob)), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/users/me/exports/{id}/download/"),
            Some(&tok(&bob)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_export_given_up_is_failed_and_does_not_block_the_next() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let ann = app.register("ann_failing_export").await;
    let t = tok(&ann);
    let (s, b) = app
        .post_json("/api/users/me/export/", Some(&t), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let first = b["data"]["id"].as_str().unwrap().to_owned();
    // The worker cannot write the file: the job is given up, the export says so.
    let mut config = env.config.clone();
    config.storage_dir = "/proc/self/no-such-dir".into();
    let workers = env.spawn_workers_with(config, &[(Queue::Export, 1)]).await;
    let path = format!("/api/users/me/exports/{first}/");
    eventually(Duration::from_secs(15), "the export failed", || async {
        let (_, b) = app.call(Method::GET, &path, Some(&t), None).await;
        (b["data"]["status"] == "failed").then_some(())
    })
    .await;
    workers.shutdown().await;
    let (s, b) = app
        .post_json("/api/users/me/export/", Some(&t), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let second = b["data"]["id"].as_str().unwrap().to_owned();
    // A job lost on the way (no worker ever ran it) stands in the way for an hour only.
    let (s, b) = app
        .post_json("/api/users/me/export/", Some(&t), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    sqlx::query(
        "UPDATE data_exports SET created_at = now() - interval '61 minutes' WHERE id = $1::uuid",
    )
    .bind(&second)
    .execute(&env.db)
    .await
    .unwrap();
    let (s, b) = app
        .post_json("/api/users/me/export/", Some(&t), json!({}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (_, b) = app
        .call(
            Method::GET,
            &format!("/api/users/me/exports/{second}/"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(b["data"]["status"], "failed", "{b}");
}

#[tokio::test]
async fn deletion_waits_out_the_grace_period_and_signing_in_cancels_it() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let d = app.register("cleo_deletes").await;
    let (s, b) = app
        .call(
            Method::DELETE,
            "/api/users/me/",
            Some(&tok(&d)),
            Some(json!({"password": "wrong one"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["password"].is_array());
    let (s, b) = app
        .call(
            Method::DELETE,
            "/api/users/me/",
            Some(&tok(&d)),
            Some(json!({"password": STRONG_PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert!(b["data"]["deletion_scheduled_at"].is_string());
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&tok(&d)), None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "every session was signed out");

    // Signing in within the grace period keeps the account.
    let login = || {
        app.post_json(
            "/api/auth/login/",
            None,
            json!({"username": "cleo_deletes", "password": STRONG_PASSWORD}),
        )
    };
    let (s, b) = login().await;
    assert_eq!(s, StatusCode::OK);
    let pending: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT deletion_requested_at FROM users WHERE username = 'cleo_deletes'",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert!(pending.is_none(), "signing in cancelled the deletion");

    // Asked again, and the grace period over: the purge anonymises the account.
    let t = tok(&b["data"]);
    // What the account leaves behind: an avatar, an export file, a device, a video.
    let (st, _) = put_avatar(&app, &t, png(2048), "me.png", "image/png").await;
    assert_eq!(st, StatusCode::OK);
    let user_id: uuid::Uuid = d["user"]["id"].as_str().unwrap().parse().unwrap();
    let storage = wp_shared::storage::Storage::from_config(&env.config).unwrap();
    let export_key = format!("exports/{}.json", uuid::Uuid::now_v7());
    storage.put(&export_key, b"{}".to_vec()).await.unwrap();
    sqlx::query(
        "INSERT INTO data_exports (id, user_id, status, file_path) VALUES ($1, $2, 'ready', $3)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(user_id)
    .bind(&export_key)
    .execute(&env.db)
    .await
    .unwrap();
    let (st, _) = app
        .post_json(
            "/api/mobile/push-token/",
            Some(&t),
            json!({"device_id": "cleo-phone", "platform": "android", "push_token": "fcm-cleo"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let form = multipart::Form::new().text("title", "Mine").part(
        "file",
        multipart::Part::bytes(common::make_mp4(1))
            .file_name("mine.mp4")
            .mime_str("video/mp4")
            .unwrap(),
    );
    let res = app
        .client
        .post(app.url("/api/videos/"))
        .bearer_auth(&t)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT avatar_path FROM users WHERE id = $1
         UNION ALL SELECT storage_key FROM videos WHERE owner_id = $1",
    )
    .bind(user_id)
    .fetch_all(&env.db)
    .await
    .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let keys: Vec<String> = keys.into_iter().chain([export_key]).collect();
    for k in &keys {
        assert!(storage.read(k).await.is_ok(), "{k} stored");
    }
    app.call(
        Method::DELETE,
        "/api/users/me/",
        Some(&t),
        Some(json!({"password": STRONG_PASSWORD})),
    )
    .await;
    sqlx::query("UPDATE users SET deletion_requested_at = now() - interval '15 days' WHERE username = 'cleo_deletes'")
        .execute(&env.db)
        .await
        .unwrap();
    let ctx = Arc::new(wp_workers::Ctx::new(env.config.clone()).await.unwrap());
    assert_eq!(wp_workers::accounts::purge(&ctx).await.unwrap(), 1);
    assert_eq!(
        wp_workers::accounts::purge(&ctx).await.unwrap(),
        0,
        "idempotent"
    );
    let (s, _) = login().await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let row: (String, String, String) =
        sqlx::query_as("SELECT status, username, email FROM users WHERE id = $1::uuid")
            .bind(d["user"]["id"].as_str().unwrap())
            .fetch_one(&env.db)
            .await
            .unwrap();
    assert_eq!(row.0, "deleted");
    assert!(
        row.1.starts_with("deleted_") && row.2.ends_with("@deleted.invalid"),
        "{row:?}"
    );
    // Nothing of it is left: rows and files.
    for k in &keys {
        assert!(storage.read(k).await.is_err(), "{k} erased");
    }
    for table in ["devices", "data_exports", "videos", "sessions"] {
        let col = if table == "videos" {
            "owner_id"
        } else {
            "user_id"
        };
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {col} = $1"))
            .bind(user_id)
            .fetch_one(&env.db)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    // The name and address are free again.
    app.register("cleo_deletes").await;
}

fn png(size: usize) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.resize(size, 7);
    v
}

async fn put_avatar(
    app: &common::TestApp,
    token: &str,
    bytes: Vec<u8>,
    name: &str,
    mime: &str,
) -> (StatusCode, Value) {
    let part = multipart::Part::bytes(bytes)
        .file_name(name.to_owned())
        .mime_str(mime)
        .unwrap();
    let res = app
        .client
        .put(app.url("/api/users/me/avatar/"))
        .bearer_auth(token)
        .multipart(multipart::Form::new().part("avatar", part))
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn avatars_are_checked_by_their_bytes_and_size() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let d = app.register("dora_avatar").await;
    let other = app.register("eli_avatar").await;
    let id = d["user"]["id"].as_str().unwrap().to_owned();

    // A script that claims to be a PNG.
    let (s, b) = put_avatar(
        &app,
        &tok(&d),
        b"<svg onload=alert(1)>".to_vec(),
        "me.png",
        "image/png",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["file"].is_array(), "{b}");
    // Too big.
    let (s, b) = put_avatar(&app, &tok(&d), png(3 * 1024 * 1024), "big.png", "image/png").await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    // A real PNG header under a misleading name and type is stored as a PNG.
    let (s, b) = put_avatar(&app, &tok(&d), png(5000), "photo.txt", "text/plain").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let url = b["data"]["avatar_url"].as_str().unwrap().to_owned();
    let path = url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    assert!(
        path.starts_with(&format!("/api/users/{id}/avatar/?v=")),
        "{url}"
    );
    // The URL works in an <img>: no header, cacheable for good, with a validator.
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.bytes().await.unwrap().len(), 5000);
    let res = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // Without the version a stranger gets nothing (ids cannot be walked).
    let (s, _) = app
        .call(Method::GET, &format!("/api/users/{id}/avatar/"), None, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The same picture in every user summary (here: the friend request's).
    let (s, b) = app
        .post_json(
            "/api/social/friend-requests/",
            Some(&tok(&d)),
            json!({"user_id": other["user"]["id"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["from_user"]["avatar_url"], url.as_str());
    assert!(b["data"]["to_user"]["avatar_url"].is_null());
    // The field may be named `file`, as a video upload's is; the new picture is a new
    // URL, and the old one is gone.
    let part = multipart::Part::bytes(png(6000)).file_name("new.png");
    let res = app
        .client
        .put(app.url("/api/users/me/avatar/"))
        .bearer_auth(tok(&d))
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let b: Value = res.json().await.unwrap();
    let new_url = b["data"]["avatar_url"].as_str().unwrap();
    assert_ne!(new_url, url);
    let (s, _) = app.call(Method::GET, &path, None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the old version");

    let res = app
        .client
        .get(app.url(&format!("/api/users/{id}/avatar/")))
        .bearer_auth(tok(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().len(), 6000);

    // Blocked users do not get it.
    app.post_json(
        "/api/social/blocks/",
        Some(&tok(&d)),
        json!({"user_id": other["user"]["id"]}),
    )
    .await;
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/users/{id}/avatar/"),
            Some(&tok(&other)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let new_path = new_url
        .split_once("/api/")
        .map(|(_, p)| format!("/api/{p}"))
        .unwrap();
    let (s, _) = app
        .call(Method::GET, &new_path, Some(&tok(&other)), None)
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "not even with the version, when they say who they are"
    );

    // The pictures are where the clean-up below looks for them.
    let dir = env.config.storage_dir.join("avatars");
    let stored = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("avatars are stored under {}: {e}", dir.display()))
        .count();
    assert!(stored >= 1, "the current picture is in {}", dir.display());

    let res = app
        .client
        .delete(app.url("/api/users/me/avatar/"))
        .bearer_auth(tok(&d))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/users/{id}/avatar/"),
            Some(&tok(&d)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // No file is left behind in storage.
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap();
    assert_eq!(left, 0);
}
