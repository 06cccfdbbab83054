//! Videos, likes, comments and downloads through the public API, with the media worker
//! preparing real MP4 files made by ffmpeg.

mod common;

use std::time::Duration;

use common::{TestApp, TestEnv, TestUser, eventually, make_mp4, mp4_boxes};
use reqwest::{Method, StatusCode, header, multipart};
use serde_json::{Value, json};
use wp_shared::jobs::Queue;

async fn upload(
    app: &TestApp,
    u: &TestUser,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = multipart::Form::new();
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    form = form.part(
        "file",
        multipart::Part::bytes(bytes)
            .file_name("../my clip\".mp4")
            .mime_str("video/mp4")
            .unwrap(),
    );
    let res = app
        .client
        .post(app.url("/api/videos/"))
        .bearer_auth(&u.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let s = res.status();
    (s, res.json().await.unwrap_or(Value::Null))
}

/// Uploads an MP4 and waits for the media worker to make it ready.
async fn ready_video(env: &TestEnv, app: &TestApp, u: &TestUser, fields: &[(&str, &str)]) -> Value {
    let (s, b) = upload(app, u, make_mp4(2), fields).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    let workers = env.spawn_workers(&[(Queue::Media, 1)]).await;
    let v = eventually(Duration::from_secs(30), "video ready", || async {
        let (_, b) = app
            .call(
                Method::GET,
                &format!("/api/videos/{id}/"),
                Some(&u.token),
                None,
            )
            .await;
        (b["data"]["status"] != "processing").then_some(b["data"].clone())
    })
    .await;
    workers.shutdown().await;
    assert_eq!(v["status"], "ready", "{v}");
    v
}

/// The files under `STORAGE_DIR/videos`: none when nothing was ever stored (no storage
/// directory yet). Anything stored elsewhere under `STORAGE_DIR` fails here: a changed
/// layout must not read as "nothing left".
fn storage_files(env: &TestEnv) -> Vec<String> {
    let root = &env.config.storage_dir;
    if !root.exists() {
        return Vec::new();
    }
    match std::fs::read_dir(root.join("videos")) {
        Ok(d) => d
            .map(|e| {
                e.expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Nothing stored yet: then nothing else may be there either.
            let other: Vec<_> = std::fs::read_dir(root)
                .expect("STORAGE_DIR readable")
                .map(|e| e.expect("a directory entry").file_name())
                .filter(|n| n != "thumbnails")
                .collect();
            assert!(other.is_empty(), "unexpected storage layout: {other:?}");
            Vec::new()
        }
        Err(e) => panic!("cannot read the videos directory: {e}"),
    }
}

#[tokio::test]
async fn an_upload_is_prepared_for_streaming_and_downloaded_with_ranges() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("vid_owner").await;
    let (s, b) = upload(
        &app,
        &owner,
        make_mp4(2),
        &[
            ("title", "First clip"),
            ("tags", "Cats, funny,cats"),
            ("allow_download", "true"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let v = &b["data"];
    assert_eq!(v["status"], "processing");
    assert_eq!(v["container"], "mp4");
    assert_eq!(
        v["original_filename"], "my clip.mp4",
        "path and quote stripped"
    );
    assert_eq!(v["tags"], json!(["cats", "funny"]));
    let id = v["id"].as_str().unwrap().to_owned();
    let dl = format!("/api/videos/{id}/download/");
    let (s, b) = app.call(Method::GET, &dl, Some(&owner.token), None).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_ready"))
    );

    let v = ready_video(&env, &app, &owner, &[("title", "Second")]).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let dl = format!("/api/videos/{id}/download/");
    let d = v["duration_seconds"].as_f64().unwrap();
    assert!((1.9..2.2).contains(&d), "{d}");
    // The index is now before the media data, and size/checksum describe the new file.
    let res = app
        .client
        .get(app.url(&dl))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "video/mp4");
    assert!(
        h[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"")
    );
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    assert!(h.contains_key(header::LAST_MODIFIED));
    let body = res.bytes().await.unwrap().to_vec();
    assert_eq!(body.len() as u64, v["size_bytes"].as_u64().unwrap());
    assert_eq!(
        h[header::CONTENT_LENGTH].to_str().unwrap(),
        body.len().to_string()
    );
    // A browser accepts gzip: the file is still sent as it is, with its length, ranges
    // and validator (never re-encoded on the fly).
    let res = app
        .client
        .get(app.url(&dl))
        .bearer_auth(&owner.token)
        .header(header::ACCEPT_ENCODING, "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    let g = res.headers().clone();
    assert!(!g.contains_key(header::CONTENT_ENCODING), "{g:?}");
    assert_eq!(g[header::ETAG].to_str().unwrap(), etag);
    assert_eq!(g[header::ACCEPT_RANGES], "bytes");
    assert_eq!(
        g[header::CONTENT_LENGTH].to_str().unwrap(),
        body.len().to_string()
    );
    assert_eq!(res.bytes().await.unwrap().len(), body.len());
    let boxes = mp4_boxes(&body);
    let moov = boxes.iter().position(|b| b == "moov").unwrap();
    let mdat = boxes.iter().position(|b| b == "mdat").unwrap();
    assert!(moov < mdat, "faststart: {boxes:?}");
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&body)),
        v["sha256"].as_str().unwrap()
    );
    // Thumbnail.
    let res = app
        .client
        .get(app.url(&format!("/api/videos/{id}/thumbnail/")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(&res.bytes().await.unwrap()[..3], &[0xFF, 0xD8, 0xFF]);

    // Ranges: several seeks, each exact.
    let len = body.len();
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        (&format!("bytes={}-", len - 10) as &str, len - 10, len - 1),
        ("bytes=-16", len - 16, len - 1),
    ] {
        let res = app
            .client
            .get(app.url(&dl))
            .bearer_auth(&owner.token)
            .header(header::RANGE, range)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            res.headers()[header::CONTENT_RANGE].to_str().unwrap(),
            format!("bytes {start}-{end}/{len}")
        );
        assert_eq!(
            res.bytes().await.unwrap().to_vec(),
            body[start..=end].to_vec(),
            "{range}"
        );
    }
    let res = app
        .client
        .get(app.url(&dl))
        .bearer_auth(&owner.token)
        .header(header::RANGE, format!("bytes={len}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE].to_str().unwrap(),
        format!("bytes */{len}")
    );
    // A stale If-Range gets the whole file; a matching If-None-Match gets 304.
    let res = app
        .client
        .get(app.url(&dl))
        .bearer_auth(&owner.token)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().len(), len);
    // A matching If-Range (the file is unchanged) gets just the range.
    let res = app
        .client
        .get(app.url(&dl))
        .bearer_auth(&owner.token)
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE].to_str().unwrap(),
        format!("bytes 0-9/{len}")
    );
    assert_eq!(res.bytes().await.unwrap().to_vec(), body[..10].to_vec());
    let res = app
        .client
        .get(app.url(&dl))
        .bearer_auth(&owner.token)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn uploads_that_lie_or_are_too_big_are_refused_and_leave_nothing() {
    let env = TestEnv::with_vars(&[("VIDEO_MAX_BYTES", "50000")]).await;
    let app = env.spawn_api().await;
    let u = env.create_user("liar").await;
    let (s, b) = upload(
        &app,
        &u,
        b"#!/bin/sh\necho not a video\n".to_vec(),
        &[("title", "Totally a video")],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["file"].is_array(), "{b}");
    // Looks like an MP4, but goes past VIDEO_MAX_BYTES (50 kB here).
    let mut big = b"\0\0\0\x20ftypisom\0\0\x02\0".to_vec();
    big.resize(60_000, 0);
    let (s, _) = upload(&app, &u, big, &[("title", "Big")]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, b) = upload(&app, &u, make_mp4(1), &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["title"].is_array(), "{b}");
    let (s, b) = upload(
        &app,
        &u,
        make_mp4(1),
        &[("title", "x"), ("visibility", "everyone")],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["visibility"].is_array(), "{b}");
    // Text fields are bounded one by one and together (issue 13, item 1): a 256 KiB
    // description is refused at 16 KiB (a 4 GB one would be too, having cost 16 KiB),
    // and so is a form of many fields.
    let huge = "d".repeat(256 * 1024);
    let (s, b) = upload(
        &app,
        &u,
        make_mp4(1),
        &[("title", "x"), ("description", &huge)],
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("field_too_large")),
        "{b}"
    );
    assert!(
        b["message"].as_str().unwrap().contains("`description`"),
        "{b}"
    );
    let tag = "t".repeat(15 * 1024);
    let many: Vec<(&str, &str)> = std::iter::repeat_n(("tags", tag.as_str()), 5).collect();
    let (s, b) = upload(&app, &u, make_mp4(1), &many).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("field_too_large")),
        "{b}"
    );
    assert!(storage_files(&env).is_empty(), "{:?}", storage_files(&env));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM videos")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn visibility_decides_who_sees_lists_comments_and_downloads() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("vis_owner").await;
    let friend = env.create_user("vis_friend").await;
    let stranger = env.create_user("vis_stranger").await;
    env.befriend(&owner, &friend).await;
    let private = ready_video(
        &env,
        &app,
        &owner,
        &[
            ("title", "Secret diary"),
            ("visibility", "private"),
            ("allow_download", "true"),
        ],
    )
    .await;
    let friends = ready_video(
        &env,
        &app,
        &owner,
        &[
            ("title", "Beach day"),
            ("visibility", "friends"),
            ("category", "travel"),
        ],
    )
    .await;
    let unlisted = ready_video(
        &env,
        &app,
        &owner,
        &[("title", "Unlisted link"), ("visibility", "unlisted")],
    )
    .await;
    let public = ready_video(
        &env,
        &app,
        &owner,
        &[
            ("title", "Public cats"),
            ("tags", "cats"),
            ("allow_download", "true"),
        ],
    )
    .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();

    for path in ["/", "/comments/", "/download/"] {
        let (s, _) = app
            .call(
                Method::GET,
                &format!("/api/videos/{}{path}", id(&private)),
                Some(&stranger.token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "private {path}");
    }
    let (s, _) = app
        .post_json(
            &format!("/api/videos/{}/like/", id(&private)),
            Some(&stranger.token),
            json!({"is_like": true}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/", id(&friends)),
            Some(&friend.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/", id(&friends)),
            Some(&stranger.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/", id(&unlisted)),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "unlisted: anyone with the link");

    let titles = |b: &Value| -> Vec<String> {
        b["data"]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, b) = app
        .call(
            Method::GET,
            "/api/videos/?ordering=title",
            Some(&stranger.token),
            None,
        )
        .await;
    assert_eq!(titles(&b), vec!["Public cats"]);
    let (_, b) = app
        .call(
            Method::GET,
            "/api/videos/?ordering=title",
            Some(&friend.token),
            None,
        )
        .await;
    assert_eq!(titles(&b), vec!["Beach day", "Public cats"]);
    let (_, b) = app
        .call(
            Method::GET,
            "/api/videos/?mine=true&ordering=-title",
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(
        titles(&b),
        vec!["Unlisted link", "Secret diary", "Public cats", "Beach day"]
    );
    let (_, b) = app
        .call(Method::GET, "/api/videos/?tag=CATS", None, None)
        .await;
    assert_eq!(titles(&b), vec!["Public cats"]);
    let (_, b) = app
        .call(
            Method::GET,
            "/api/videos/?search=beach",
            Some(&friend.token),
            None,
        )
        .await;
    assert_eq!(titles(&b), vec!["Beach day"]);
    let (_, b) = app
        .call(
            Method::GET,
            "/api/videos/?category=travel",
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["count"], 1);
    let (s, b) = app
        .call(Method::GET, "/api/videos/?ordering=password", None, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["ordering"].is_array());

    // Downloads: others only when allowed; the owner always.
    let (s, b) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/download/", id(&friends)),
            Some(&friend.token),
            None,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("download_disabled"))
    );
    let res = app
        .client
        .get(app.url(&format!("/api/videos/{}/download/", id(&public))))
        .bearer_auth(&stranger.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A signed link works without a header, for that video only, and not as a token.
    let (s, b) = app
        .post_json(
            &format!("/api/videos/{}/download-token/", id(&public)),
            Some(&stranger.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The expiry as the token has it: whole seconds, RFC 3339.
    let exp = b["data"]["expires_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(exp).is_ok() && !exp.contains('.'),
        "{exp}"
    );
    let url = b["data"]["url"].as_str().unwrap().to_owned();
    let token = url.split("token=").nth(1).unwrap().to_owned();
    let res = app
        .client
        .get(app.url(&format!(
            "/api/videos/{}/download/?token={token}",
            id(&public)
        )))
        .header(header::RANGE, "bytes=0-7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/download/?token={token}", id(&unlisted)),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app
        .call(Method::GET, "/api/users/me/", Some(&token), None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a download link is not an access token"
    );
    // A link is checked against the session that asked for it: once that session
    // ends, the link stops working, well before its five minutes.
    let sam = env.create_user("sam").await;
    let (s, b) = app
        .post_json(
            &format!("/api/videos/{}/download-token/", id(&public)),
            Some(&sam.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let link = b["data"]["url"].as_str().unwrap().to_owned();
    let link = format!("/api/{}", link.split_once("/api/").unwrap().1);
    let (s, _) = app.call(Method::GET, &link, None, None).await;
    assert_eq!(s, StatusCode::OK, "the link works while the session lives");
    let (s, _) = app
        .post_json("/api/auth/logout-all/", Some(&sam.token), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.call(Method::GET, &link, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the session ended");

    // Only the owner edits or deletes.
    let (s, _) = app
        .call(
            Method::PATCH,
            &format!("/api/videos/{}/", id(&public)),
            Some(&stranger.token),
            Some(json!({"title": "mine now"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .call(
            Method::PATCH,
            &format!("/api/videos/{}/", id(&public)),
            Some(&owner.token),
            Some(json!({"title": "Public cats 2", "visibility": "private"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/", id(&public)),
            Some(&stranger.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "now private");
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("/api/videos/{}/", id(&public)),
            Some(&stranger.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let res = app
        .client
        .delete(app.url(&format!("/api/videos/{}/", id(&public))))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(storage_files(&env).len(), 3);
}

#[tokio::test]
async fn likes_toggle_switch_and_stay_exact_under_concurrency() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("like_owner").await;
    let (_, b) = upload(&app, &owner, make_mp4(1), &[("title", "Like me")]).await;
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    // (Processing videos are visible to their owner: votes work for the owner.)
    let like = format!("/api/videos/{id}/like/");
    let (s, b) = app
        .post_json(&like, Some(&owner.token), json!({"is_like": true}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"success": true, "is_liked": true, "is_disliked": false, "like_count": 1, "dislike_count": 0})
    );
    let (_, b) = app
        .post_json(&like, Some(&owner.token), json!({"is_like": false}))
        .await;
    assert_eq!(
        (
            b["is_liked"].as_bool(),
            b["like_count"].as_i64(),
            b["dislike_count"].as_i64()
        ),
        (Some(false), Some(0), Some(1))
    );
    let (_, b) = app
        .post_json(&like, Some(&owner.token), json!({"is_like": false}))
        .await;
    assert_eq!(
        (b["like_count"].as_i64(), b["dislike_count"].as_i64()),
        (Some(0), Some(0)),
        "same vote again removes it"
    );
    let (s, b) = app
        .post_json(&like, Some(&owner.token), json!({"is_like": "yes"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["is_like"].is_array());

    // Make it public and ready so others can vote, then 40 users vote at once, and one
    // user fires 21 toggles at once.
    sqlx::query("UPDATE videos SET status = 'ready' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&env.db)
        .await
        .unwrap();
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(env.create_user(&format!("voter{i}")).await);
    }
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let (client, url, t) = (app.client.clone(), app.url(&like), u.token.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(t)
                .json(&json!({"is_like": i % 4 != 0}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for _ in 0..21 {
        let (client, url, t) = (app.client.clone(), app.url(&like), owner.token.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(t)
                .json(&json!({"is_like": true}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (likes, dislikes): (i32, i32) =
        sqlx::query_as("SELECT like_count, dislike_count FROM videos WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&env.db)
            .await
            .unwrap();
    let (rl, rd): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE is_like), count(*) FILTER (WHERE NOT is_like) FROM video_likes WHERE video_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(
        (i64::from(likes), i64::from(dislikes)),
        (rl, rd),
        "counters match the votes"
    );
    assert_eq!(
        rl,
        30 + 1,
        "30 voters liked, and 21 toggles leave the owner liking"
    );
    assert_eq!(rd, 10);
}

#[tokio::test]
async fn comments_thread_edit_delete_like_and_notify() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("c_owner").await;
    let alice = env.create_user("c_alice").await;
    let bob = env.create_user("c_bob").await;
    let v = ready_video(&env, &app, &owner, &[("title", "Talk about it")]).await;
    let base = format!("/api/videos/{}/comments/", v["id"].as_str().unwrap());

    let (s, b) = app
        .post_json(&base, Some(&alice.token), json!({"content": "   "}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["content"].is_array());
    let (s, _) = app
        .post_json(
            &base,
            Some(&alice.token),
            json!({"content": "x".repeat(2001)}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, b) = app
        .post_json(
            &base,
            Some(&alice.token),
            json!({"content": "First! cc @c_bob"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["data"]["user"]["username"], "c_alice");
    let top = b["data"]["id"].as_str().unwrap().to_owned();
    let (_, b) = app
        .post_json(
            &base,
            Some(&bob.token),
            json!({"content": "reply", "parent": top}),
        )
        .await;
    let reply = b["data"]["id"].as_str().unwrap().to_owned();
    // A reply to a reply is filed under the top-level comment.
    let (_, b) = app
        .post_json(
            &base,
            Some(&owner.token),
            json!({"content": "nested", "parent": reply}),
        )
        .await;
    assert_eq!(b["data"]["parent"], top.as_str());
    let nested = b["data"]["id"].as_str().unwrap().to_owned();
    let events: Vec<(String, uuid::Uuid)> = sqlx::query_as("SELECT kind, recipient_id FROM domain_events WHERE kind LIKE 'comment.%' ORDER BY created_at")
        .fetch_all(&env.db)
        .await
        .unwrap();
    assert_eq!(
        events,
        vec![
            ("comment.mention".into(), bob.id),
            ("comment.reply".into(), alice.id),
            ("comment.reply".into(), bob.id)
        ]
    );

    let (_, b) = app
        .post_json(&base, Some(&bob.token), json!({"content": "second top"}))
        .await;
    let second = b["data"]["id"].as_str().unwrap().to_owned();
    let (_, b) = app
        .call(
            Method::GET,
            &format!("{base}?ordering=oldest"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["count"], 2);
    let first = &b["data"]["results"][0];
    assert_eq!(first["id"], top.as_str());
    assert_eq!(first["reply_count"], 2);
    assert_eq!(first["replies"].as_array().unwrap().len(), 2);
    let (_, b) = app
        .call(
            Method::GET,
            &format!("{base}?parent={top}"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["count"], 2);
    let (_, b) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/", v["id"].as_str().unwrap()),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["comment_count"], 4);

    // Edit: author only.
    let one = |id: &str| format!("{base}{id}/");
    let (s, _) = app
        .call(
            Method::PUT,
            &one(&top),
            Some(&bob.token),
            Some(json!({"content": "hijack"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = app
        .call(
            Method::PUT,
            &one(&top),
            Some(&alice.token),
            Some(json!({"content": "First, edited"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"]["is_edited"], true);
    // Likes on comments, and `top` ordering. (Listed once first, so the rendered page
    // is cached and the like must make it stale.)
    let (_, b) = app
        .call(
            Method::GET,
            &format!("{base}?ordering=top"),
            Some(&bob.token),
            None,
        )
        .await;
    assert!(b["data"]["results"][0]["likes_count"] == 0, "{b}");
    let (_, b) = app
        .post_json(
            &format!("{}like/", one(&second)),
            Some(&alice.token),
            json!({}),
        )
        .await;
    // The answer has the video like's shape: flat, `like_count`.
    assert_eq!(
        (
            b["success"].as_bool(),
            b["is_liked"].as_bool(),
            b["like_count"].as_i64()
        ),
        (Some(true), Some(true), Some(1)),
        "{b}"
    );
    let (_, b) = app
        .call(
            Method::GET,
            &format!("{base}?ordering=top"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["results"][0]["id"], second.as_str());
    assert_eq!(b["data"]["results"][0]["likes_count"], 1);
    assert_eq!(
        b["data"]["results"][0]["is_liked"], false,
        "bob did not like it"
    );
    let (_, b) = app
        .call(
            Method::GET,
            &format!("{base}?ordering=top"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["results"][0]["is_liked"], true, "alice did");
    // The convention's vocabulary says the same as the words.
    for (ordering, words) in [
        ("-likes_count", "top"),
        ("created_at", "oldest"),
        ("-created_at", "newest"),
    ] {
        let ids = |b: &Value| -> Vec<Value> {
            b["data"]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].clone())
                .collect()
        };
        let (s, a) = app
            .call(
                Method::GET,
                &format!("{base}?ordering={ordering}"),
                Some(&bob.token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{a}");
        let (_, w) = app
            .call(
                Method::GET,
                &format!("{base}?ordering={words}"),
                Some(&bob.token),
                None,
            )
            .await;
        assert_eq!(ids(&a), ids(&w), "{ordering}");
    }
    let (s, _) = app
        .call(
            Method::GET,
            &format!("{base}?ordering=random"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Delete: not a stranger; the author's comment with replies stays as a placeholder.
    let (s, _) = app
        .call(Method::DELETE, &one(&top), Some(&bob.token), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let res = app
        .client
        .delete(app.url(&one(&top)))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, b) = app
        .call(
            Method::GET,
            &format!("{base}?ordering=oldest"),
            Some(&bob.token),
            None,
        )
        .await;
    let placeholder = &b["data"]["results"][0];
    assert_eq!(
        (
            placeholder["is_deleted"].as_bool(),
            placeholder["content"].as_str()
        ),
        (Some(true), Some(""))
    );
    assert!(placeholder["user"].is_null());
    assert_eq!(placeholder["replies"].as_array().unwrap().len(), 2);
    // The video's owner may delete anyone's comment; a leaf goes entirely.
    let res = app
        .client
        .delete(app.url(&one(&second)))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, b) = app.call(Method::GET, &base, Some(&bob.token), None).await;
    assert_eq!(b["data"]["count"], 1);
    let (s, _) = app
        .call(
            Method::PUT,
            &one("not-a-uuid"),
            Some(&alice.token),
            Some(json!({"content": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // When the placeholder's last reply goes, the placeholder goes too.
    for (cid, t) in [(&reply, &bob.token), (&nested, &owner.token)] {
        let res = app
            .client
            .delete(app.url(&one(cid)))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
    }
    let (_, b) = app.call(Method::GET, &base, Some(&bob.token), None).await;
    assert_eq!(b["data"]["count"], 0, "{b}");
    assert!(b["data"]["results"].as_array().unwrap().is_empty());
    let (_, b) = app
        .call(
            Method::GET,
            &format!("/api/videos/{}/", v["id"].as_str().unwrap()),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(b["data"]["comment_count"], 0);
}

#[tokio::test]
async fn downloads_and_view_starts_reach_clickhouse_in_batches() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("an_owner").await;
    let viewer = env.create_user("an_viewer").await;
    let v = ready_video(
        &env,
        &app,
        &owner,
        &[("title", "Counted"), ("allow_download", "true")],
    )
    .await;
    let id = v["id"].as_str().unwrap().to_owned();
    let dl = app.url(&format!("/api/videos/{id}/download/"));
    for range in [None, Some("bytes=100-199"), Some("bytes=0-9")] {
        let mut req = app.client.get(&dl).bearer_auth(&viewer.token);
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        assert!(req.send().await.unwrap().status().is_success());
    }
    let view = format!("/api/videos/{id}/view/");
    let (s, _) = app
        .post_json(&view, Some(&viewer.token), json!({"position": 12.5}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app
        .post_json(&view, Some(&viewer.token), json!({"position": -1}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["errors"]["position"].is_array());

    let workers = env.spawn_workers(&[(Queue::Analytics, 100)]).await;
    let ch = wp_shared::clickhouse::client(&env.config);
    let rows = eventually(Duration::from_secs(20), "events in ClickHouse", || {
        let ch = ch.clone();
        async move {
            let rows: Vec<(String, u64)> = ch
                .query("SELECT event_type, toUInt64(count()) FROM events GROUP BY event_type ORDER BY event_type")
                .fetch_all()
                .await
                .ok()?;
            (rows.iter().map(|r| r.1).sum::<u64>() == 3).then_some(rows)
        }
    })
    .await;
    workers.shutdown().await;
    assert_eq!(
        rows,
        vec![
            ("video.download".to_owned(), 2),
            ("video.view_start".to_owned(), 1)
        ]
    );
    let users: Vec<String> = ch
        .query("SELECT DISTINCT toString(user_id) FROM events")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(users, vec![viewer.id.to_string()]);
    let d = env
        .wait_idle(Queue::Analytics, Duration::from_secs(5))
        .await;
    assert_eq!(d.dead, 0);
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_one_gigabyte_download_streams_with_flat_memory() {
    const GIB: u64 = 1 << 30;
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("big_owner").await;
    let dir = env.config.storage_dir.join("videos");
    std::fs::create_dir_all(&dir).unwrap();
    // A sparse 1 GiB file: the bytes are real to every reader, the disk holds none.
    let f = std::fs::File::create(dir.join("big.mp4")).unwrap();
    f.set_len(GIB).unwrap();
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO videos (id, owner_id, title, storage_key, original_filename, container, content_type,
                             size_bytes, sha256, status)
         VALUES ($1, $2, 'Big', 'videos/big.mp4', 'big.mp4', 'mp4', 'video/mp4', $3, $4, 'ready')",
    )
    .bind(id)
    .bind(owner.id)
    .bind(GIB as i64)
    .bind("0".repeat(64))
    .execute(&env.db)
    .await
    .unwrap();
    let before = rss_kb();
    let mut res = app
        .client
        .get(app.url(&format!("/api/videos/{id}/download/")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        GIB.to_string().as_str()
    );
    let (mut total, mut peak) = (0u64, before);
    while let Some(chunk) = res.chunk().await.unwrap() {
        total += chunk.len() as u64;
        if total % (64 << 20) < chunk.len() as u64 {
            peak = peak.max(rss_kb());
        }
    }
    assert_eq!(total, GIB);
    let grew_mb = (peak.saturating_sub(before)) / 1024;
    assert!(
        grew_mb < 64,
        "memory grew by {grew_mb} MB while streaming 1 GiB"
    );
}

#[tokio::test]
async fn the_s3_backend_stores_prepares_and_serves_videos() {
    let s3 = common::s3::S3Server::start().await;
    let env = TestEnv::with_vars(&[
        ("STORAGE_BACKEND", "s3"),
        ("S3_BUCKET", &s3.bucket),
        ("S3_ENDPOINT", &s3.endpoint),
        ("S3_ACCESS_KEY_ID", "test"),
        ("S3_SECRET_ACCESS_KEY", "test"),
    ])
    .await;
    let app = env.spawn_api().await;
    let owner = env.create_user("s3_owner").await;
    let v = ready_video(&env, &app, &owner, &[("title", "In a bucket")]).await;
    let id = v["id"].as_str().unwrap().to_owned();
    let mut keys = s3.keys().await;
    keys.sort();
    assert_eq!(
        keys,
        vec![format!("thumbnails/{id}.jpg"), format!("videos/{id}.mp4")]
    );
    assert!(storage_files(&env).is_empty(), "nothing on the local disk");
    let res = app
        .client
        .get(app.url(&format!("/api/videos/{id}/download/")))
        .bearer_auth(&owner.token)
        .header(header::RANGE, "bytes=0-1023")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let head = res.bytes().await.unwrap();
    assert_eq!(head.len(), 1024);
    let boxes = mp4_boxes(&head);
    assert_eq!(
        &boxes[..2],
        &["ftyp", "moov"],
        "prepared for streaming in the bucket too"
    );
    let res = app
        .client
        .delete(app.url(&format!("/api/videos/{id}/")))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(s3.keys().await.is_empty());
}

/// A video upload as raw HTTP: the request head (with `Connection: close`) and the
/// multipart body holding `title` and `file`.
fn upload_request(base: &str, token: &str, title: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "wp-raw-upload-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.mp4\"\r\n\
         Content-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let addr = base.trim_start_matches("http://");
    let head = format!(
        "POST /api/videos/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    (head, body)
}

/// Sends a multipart upload by hand over TCP: the headers, then the body in `pieces`
/// with `gap` between them, stopping after `send_pieces` of them. Returns the status
/// code and body of the answer.
async fn trickle_upload(
    base: &str,
    token: &str,
    file: &[u8],
    pieces: usize,
    send_pieces: usize,
    gap: Duration,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (head, body) = upload_request(base, token, "Trickled", file);
    let mut sock = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    let size = body.len().div_ceil(pieces);
    for piece in body.chunks(size).take(send_pieces) {
        sock.write_all(piece).await.unwrap();
        tokio::time::sleep(gap).await;
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    // The body may be chunked: take the JSON object inside.
    let json = json
        .find('{')
        .and_then(|a| json.rfind('}').map(|b| &json[a..=b]))
        .unwrap_or("null");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// Each user's videos may take `USER_STORAGE_QUOTA_BYTES` in all: an upload past it is
/// refused as it streams (413 `quota_exceeded`), nothing of it is kept, other users are
/// not affected, and deleting a video frees its room.
#[tokio::test]
async fn a_users_uploads_stop_at_their_storage_quota() {
    let file = make_mp4(1);
    let quota = file.len() * 3 / 2;
    let env = TestEnv::with_vars(&[("USER_STORAGE_QUOTA_BYTES", &quota.to_string())]).await;
    let app = env.spawn_api().await;
    let u = env.create_user("hoarder").await;
    let (s, first) = upload(&app, &u, file.clone(), &[("title", "One")]).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, b) = upload(&app, &u, file.clone(), &[("title", "Two")]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert_eq!(b["code"], "quota_exceeded", "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("file:"), "{b}");
    assert_eq!(storage_files(&env).len(), 1, "{:?}", storage_files(&env));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM videos")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(n, 1, "nothing of the refused upload kept");
    // Someone else's quota is their own.
    let other = env.create_user("other").await;
    let (s, b) = upload(&app, &other, file.clone(), &[("title", "Mine")]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    // Deleting the first video makes room again.
    let id = first["data"]["id"].as_str().unwrap();
    let res = app
        .client
        .delete(app.url(&format!("/api/videos/{id}/")))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (s, b) = upload(&app, &u, file, &[("title", "Two again")]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test]
async fn an_upload_may_outlast_the_request_timeout_but_not_fall_silent() {
    let env = TestEnv::with_vars(&[("REQUEST_TIMEOUT_SECS", "1"), ("UPLOAD_IDLE_SECS", "2")]).await;
    let app = env.spawn_api().await;
    let u = env.create_user("trickler").await;
    let file = make_mp4(1);
    // Steady but slow: 2.4 s in all, never 2 s without a byte.
    let (s, b) = trickle_upload(&app.base, &u.token, &file, 4, 4, Duration::from_millis(600)).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["data"]["title"], "Trickled");
    // Half the file, then silence: cut off, and nothing of it is kept.
    let (s, b) = trickle_upload(&app.base, &u.token, &file, 4, 2, Duration::from_millis(10)).await;
    assert_eq!(s, 408, "{b}");
    assert_eq!(b["code"], "upload_stalled");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM videos")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(n, 1, "only the finished upload");
    assert_eq!(storage_files(&env).len(), 1, "{:?}", storage_files(&env));

    // A client that goes away mid-upload leaves no part behind either.
    {
        use tokio::io::AsyncWriteExt;
        let (head, body) = upload_request(&app.base, &u.token, "Gone", &file);
        let mut sock = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
            .await
            .unwrap();
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(&body[..body.len() / 2]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eventually(Duration::from_secs(10), "no part left", || async {
        (storage_files(&env).len() == 1).then_some(())
    })
    .await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM videos")
        .fetch_one(&env.db)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// A thumbnail URL works where a browser puts it, in `<img src>` (no header): plain for
/// a public video, signed for the viewer for a private one; cacheable with an `ETag`.
/// The signed link is the viewer's: altered it is refused, and another user's header
/// does not open a private video's thumbnail.
#[tokio::test]
async fn thumbnail_urls_load_without_a_header() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("thumb_owner").await;
    let stranger = env.create_user("thumb_stranger").await;
    let path_of = |url: &str| {
        url.split_once("/api/")
            .map(|(_, p)| format!("/api/{p}"))
            .unwrap()
    };
    for (visibility, signed) in [("public", false), ("private", true)] {
        let v = ready_video(
            &env,
            &app,
            &owner,
            &[("title", visibility), ("visibility", visibility)],
        )
        .await;
        let url = v["thumbnail_url"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(url.contains("?token="), signed, "{url}");
        let path = path_of(url);
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{visibility}");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "image/jpeg");
        let etag = res.headers()[header::ETAG].to_str().unwrap().to_owned();
        let res = app
            .client
            .get(app.url(&path))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        // The same URL on the next answer (a browser's cache keeps working).
        let id = v["id"].as_str().unwrap();
        let (_, again) = app
            .call(
                Method::GET,
                &format!("/api/videos/{id}/"),
                Some(&owner.token),
                None,
            )
            .await;
        assert_eq!(again["data"]["thumbnail_url"], url);
        if signed {
            let bare = format!("/api/videos/{id}/thumbnail/");
            let (s, _) = app.call(Method::GET, &bare, None, None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "no link, no header");
            let (s, _) = app
                .call(Method::GET, &bare, Some(&stranger.token), None)
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND, "another user");
            let (s, b) = app.call(Method::GET, &format!("{path}x"), None, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "altered: {b}");
        }
    }
}

/// Concurrent toggles of one user's comment like (issue 13, item 6): whatever order they
/// land in, the count equals the like rows and never goes negative.
#[tokio::test]
async fn comment_like_counts_stay_exact_under_concurrent_toggles() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("c_owner").await;
    let fan = env.create_user("c_fan").await;
    let (_, b) = upload(&app, &owner, make_mp4(1), &[("title", "Talk")]).await;
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE videos SET status = 'ready' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&env.db)
        .await
        .unwrap();
    let (s, b) = app
        .post_json(
            &format!("/api/videos/{id}/comments/"),
            Some(&owner.token),
            json!({"content": "first"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let cid = b["data"]["id"].as_str().unwrap().to_owned();
    let like = format!("/api/videos/{id}/comments/{cid}/like/");
    for round in 0..3 {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (client, url, t) = (app.client.clone(), app.url(&like), fan.token.clone());
                tokio::spawn(async move {
                    client
                        .post(url)
                        .bearer_auth(t)
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::OK);
        }
        let (count, rows): (i32, i64) = sqlx::query_as(
            "SELECT c.likes_count, (SELECT count(*) FROM comment_likes l WHERE l.comment_id = c.id)
               FROM video_comments c WHERE c.id = $1::uuid",
        )
        .bind(&cid)
        .fetch_one(&env.db)
        .await
        .unwrap();
        assert_eq!(i64::from(count), rows, "round {round}");
        assert!(count >= 0);
    }
}

/// The comment-page cache is keyed by what selects a page, not the raw URL (issue 13,
/// item 1): junk parameters neither add pages nor reach the page's links; its hits,
/// misses, evictions and bytes are in `/metrics`.
#[tokio::test]
async fn junk_parameters_do_not_fill_the_comment_page_cache() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("cache_owner").await;
    let (_, b) = upload(&app, &owner, make_mp4(1), &[("title", "Cached")]).await;
    let id = b["data"]["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE videos SET status = 'ready' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&env.db)
        .await
        .unwrap();
    for text in ["one", "two"] {
        let (s, _) = app
            .post_json(
                &format!("/api/videos/{id}/comments/"),
                Some(&owner.token),
                json!({"content": text}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let before = app.ops_get("/metrics").await.text().await.unwrap();
    for i in 0..50 {
        let (s, b) = app
            .call(
                Method::GET,
                &format!(
                    "/api/videos/{id}/comments/?page_size=1&junk{i}={}",
                    "x".repeat(500)
                ),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let next = b["data"]["next"].as_str().unwrap();
        assert!(!next.contains("junk"), "{next}");
        assert!(
            next.contains("page_size=1") && next.contains("page=2"),
            "{next}"
        );
    }
    let after = app.ops_get("/metrics").await.text().await.unwrap();
    assert_eq!(
        metric(&after, "comment_page_cache_entries"),
        1.0,
        "one page, whatever the junk"
    );
    let hits = metric(&after, "comment_page_cache_hits_total")
        - metric(&before, "comment_page_cache_hits_total");
    assert_eq!(hits, 49.0);
    assert!(metric(&after, "comment_page_cache_bytes") > 0.0);
    assert!(after.contains("comment_page_cache_evictions_total"));
}

#[tokio::test]
async fn staff_may_edit_and_delete_and_a_block_hides_a_video_and_its_comments() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let owner = env.create_user("owner").await;
    let fan = env.create_user("fan").await;
    let troll = env.create_user("troll").await;
    let moderator = env.create_moderator("mod").await;
    let video = env.insert_video(&owner, "Open", "public", 30.0).await;
    let private = env.insert_video(&owner, "Mine", "private", 30.0).await;
    let path = format!("/api/videos/{video}/");
    let comments = format!("/api/videos/{video}/comments/");

    let (s, b) = app
        .post_json(&comments, Some(&fan.token), json!({"content": "nice"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let fans = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = app
        .post_json(&comments, Some(&troll.token), json!({"content": "meh"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let trolls = b["data"]["id"].as_str().unwrap().to_owned();

    // Another user may neither edit nor delete the video nor someone else's comment.
    let (s, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&fan.token),
            Some(json!({"title": "Mine now"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("{comments}{trolls}/"),
            Some(&fan.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Staff see a private video, edit any video, and delete any comment; only the
    // author edits a comment's words, staff included.
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/videos/{private}/"),
            Some(&moderator.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = app
        .call(
            Method::PATCH,
            &path,
            Some(&moderator.token),
            Some(json!({"title": "Retitled"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["data"]["title"], "Retitled");
    let (s, _) = app
        .call(
            Method::PUT,
            &format!("{comments}{trolls}/"),
            Some(&moderator.token),
            Some(json!({"content": "edited by staff"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .call(
            Method::DELETE,
            &format!("{comments}{trolls}/"),
            Some(&moderator.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // The owner blocks the troll: to the troll the video and everything under it is
    // gone (404, as for a video that does not exist), and nothing it tries is stored.
    let (s, b) = app
        .post_json(
            "/api/social/blocks/",
            Some(&owner.token),
            json!({"user_id": troll.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    for (method, p, body) in [
        (Method::GET, path.clone(), None),
        (Method::GET, comments.clone(), None),
        (
            Method::POST,
            comments.clone(),
            Some(json!({"content": "still here"})),
        ),
        (
            Method::POST,
            format!("{comments}{fans}/like/"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/videos/{video}/like/"),
            Some(json!({"is_like": true})),
        ),
        (Method::GET, format!("/api/videos/{video}/download/"), None),
    ] {
        let (s, b) = app.call(method.clone(), &p, Some(&troll.token), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {p}: {b}");
    }
    // Blocking works both ways: the fan blocks the owner and loses the video too.
    let listed = |b: &Value| {
        b["data"]["results"]
            .to_string()
            .contains(&video.to_string())
    };
    let (s, b) = app
        .call(Method::GET, "/api/videos/", Some(&fan.token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(listed(&b), "listed before the block: {b}");
    let (s, _) = app
        .post_json(
            "/api/social/blocks/",
            Some(&fan.token),
            json!({"user_id": owner.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app.call(Method::GET, &path, Some(&fan.token), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app
        .call(Method::GET, "/api/videos/", Some(&fan.token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(!listed(&b), "not listed either: {b}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM video_comments WHERE user_id = $1 AND content = 'still here'",
    )
    .bind(troll.id)
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn a_file_the_media_tools_cannot_read_fails_with_a_reason_and_does_not_stall_the_queue() {
    let env = TestEnv::new().await;
    let app = env.spawn_api().await;
    let u = env.create_user("uploader").await;
    // An MP4's first bytes (it passes the upload's sniffing) without the rest: ffprobe
    // finds no index.
    let mut broken = make_mp4(2);
    broken.truncate(2048);
    let (s, b) = upload(&app, &u, broken, &[("title", "Broken")]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let bad = b["data"]["id"].as_str().unwrap().to_owned();
    let (s, b) = upload(&app, &u, make_mp4(1), &[("title", "Fine")]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let good = b["data"]["id"].as_str().unwrap().to_owned();
    let workers = env.spawn_workers(&[(Queue::Media, 1)]).await;
    let status = |id: String| {
        let (app, token) = (&app, u.token.clone());
        async move {
            let (_, b) = app
                .call(
                    Method::GET,
                    &format!("/api/videos/{id}/"),
                    Some(&token),
                    None,
                )
                .await;
            b["data"].clone()
        }
    };
    let failed = eventually(Duration::from_secs(60), "both videos done", || async {
        let (b, g) = (status(bad.clone()).await, status(good.clone()).await);
        (b["status"] != "processing" && g["status"] != "processing").then_some((b, g))
    })
    .await;
    let (b, g) = failed;
    assert_eq!(b["status"], "failed", "{b}");
    assert!(
        b["failure_reason"].as_str().is_some_and(|r| !r.is_empty()),
        "the owner is told why: {b}"
    );
    assert_eq!(g["status"], "ready", "the next file is prepared: {g}");
    // A failed video is the owner's only: not playable, not listed for others.
    let other = env.create_user("other").await;
    let (s, _) = app
        .call(
            Method::GET,
            &format!("/api/videos/{bad}/"),
            Some(&other.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let d = env.wait_idle(Queue::Media, Duration::from_secs(10)).await;
    assert_eq!(
        d.dead, 1,
        "the bad file's job is given up at once (retrying cannot help): {d:?}"
    );
    workers.shutdown().await;
}

#[tokio::test]
async fn a_comment_page_cached_by_one_api_replica_is_renewed_after_a_write_through_another() {
    let env = TestEnv::new().await;
    let (a, b) = (env.spawn_api().await, env.spawn_api().await);
    let owner = env.create_user("owner").await;
    let fan = env.create_user("fan").await;
    let video = env.insert_video(&owner, "Shared", "public", 30.0).await;
    let comments = format!("/api/videos/{video}/comments/");
    let (s, c) = a
        .post_json(&comments, Some(&owner.token), json!({"content": "first"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let first = c["data"]["id"].as_str().unwrap().to_owned();
    async fn page(app: &TestApp, path: &str) -> Value {
        let (s, b) = app.call(Method::GET, path, None, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["data"]["results"].clone()
    }
    async fn hits(app: &TestApp) -> f64 {
        let text = app.ops_get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("comment_page_cache_hits_total "))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
    // Replica A renders and caches the page, then serves it from its cache.
    let cached = page(&a, &comments).await;
    assert_eq!(cached.as_array().unwrap().len(), 1);
    let before = hits(&a).await;
    assert_eq!(page(&a, &comments).await, cached);
    assert_eq!(hits(&a).await, before + 1.0, "served from A's cache");
    // Writes through replica B: a new comment, a like on the first.
    let (s, _) = b
        .post_json(&comments, Some(&fan.token), json!({"content": "second"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = b
        .post_json(
            &format!("{comments}{first}/like/"),
            Some(&fan.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // A sees both at once: its page's version is behind the one B bumped in Redis.
    let fresh = page(&a, &comments).await;
    let contents: Vec<&str> = fresh
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["second", "first"], "newest first");
    assert_eq!(fresh[1]["likes_count"], 1, "{fresh}");
}
