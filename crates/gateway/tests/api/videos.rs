//! Video uploads end to end: streamed through the gateway into the bucket, recorded with
//! their processing job in one transaction, processed by the worker (ffprobe, ffmpeg) into
//! `ready`, traced as the design document names it; and refused cleanly, leaving nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use testkit::{CapturedSpan, TestApp};

use crate::support::{access_token, expect_error, metric, register};

/// A real video: `seconds` of ffmpeg's test pattern, 320x240, MPEG-4 in MP4.
fn sample_video(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("sample.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=duration={seconds}:size=320x240:rate=25"))
        .args(["-pix_fmt", "yuv420p", "-c:v", "mpeg4"])
        .arg(&path)
        .status()
        .expect("ffmpeg is needed for this test; scripts/install-test-deps.sh installs it");
    assert!(status.success(), "ffmpeg made no sample video");
    path
}

/// `POST /api/v1/videos` as `token` (none: anonymous) with `file` under `name`.
async fn upload(
    app: &TestApp,
    token: Option<&str>,
    title: &str,
    visibility: &str,
    name: &str,
    file: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("title", title.to_owned())
        .text("description", "made by a test".to_owned())
        .text("visibility", visibility.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(file).file_name(name.to_owned()),
        );
    let mut request = app
        .http
        .post(format!("{}/api/v1/videos", app.gateway_url()))
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("gateway answers")
}

/// Polls the video until its status is one of `done` (30 s at most).
async fn wait_for_status(app: &TestApp, token: &str, id: &str, done: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = app
            .http
            .get(format!("{}/api/v1/videos/{id}", app.gateway_url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("gateway answers")
            .json()
            .await
            .expect("json");
        if done.iter().any(|s| body["status"] == *s) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the video never got to {done:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rows(app: &TestApp, table: &str) -> i64 {
    app.db
        .connect()
        .await
        .query_one(&format!("SELECT count(*) FROM videos.{table}"), &[])
        .await
        .expect("count")
        .get(0)
}

/// `POST /api/v1/videos/uploads` of `size_bytes`: the 201's body.
async fn create_upload(app: &TestApp, token: &str, title: &str, size_bytes: usize) -> Value {
    let created = app
        .http
        .post(format!("{}/api/v1/videos/uploads", app.gateway_url()))
        .bearer_auth(token)
        .json(&serde_json::json!({ "title": title, "size_bytes": size_bytes }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(created.status(), 201);
    created.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_video_is_stored_traced_processed_and_ready() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = std::fs::read(sample_video(dir.path(), 2)).expect("sample");
    let digest = Sha256::digest(&bytes).to_vec();

    let response = upload(
        &app,
        Some(&token),
        "Test pattern",
        "public",
        "a.mp4",
        bytes.clone(),
    )
    .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let id = body["video_id"].as_str().expect("video_id").to_owned();
    assert_eq!(body["status"], "uploaded", "{body}");
    assert!(
        body["job_id"]
            .as_str()
            .is_some_and(|j| uuid::Uuid::parse_str(j).is_ok()),
        "{body}"
    );
    assert_eq!(
        metric(&app, r#"video_uploads_total{status="success"}"#).await,
        1.0
    );

    let video = wait_for_status(&app, &token, &id, &["ready", "failed"]).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(video["duration_seconds"], 2, "{video}");
    assert_eq!(
        (video["width"].clone(), video["height"].clone()),
        (320.into(), 240.into())
    );
    assert_eq!(video["codec"], "mpeg4", "{video}");
    assert_eq!(video["size_bytes"], bytes.len(), "{video}");
    assert_eq!(video["visibility"], "public");
    assert_eq!(video["owner_id"], ann.id.as_str());
    let thumbnail = app
        .http
        .get(
            video["thumbnail_url"]
                .as_str()
                .expect("thumbnail_url when ready"),
        )
        .send()
        .await
        .expect("the thumbnail link works");
    assert_eq!(thumbnail.status(), 200);
    let jpeg = thumbnail.bytes().await.expect("thumbnail");
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");

    // The object is the file, byte for byte.
    let key: String = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT object_key FROM videos.videos WHERE id = $1",
            &[&uuid::Uuid::parse_str(&id).expect("id")],
        )
        .await
        .expect("row")
        .get(0);
    let object = app
        .s3_client()
        .get_object()
        .bucket(&app.bucket)
        .key(&key)
        .send()
        .await
        .expect("the object")
        .body
        .collect()
        .await
        .expect("object bytes")
        .into_bytes();
    assert_eq!(Sha256::digest(&object).to_vec(), digest);

    // One trace: the upload's spans as the design document names them, and the processing.
    let spans = testkit::telemetry()
        .wait_for_spans(Duration::from_secs(15), |spans| {
            spans
                .iter()
                .any(|s| s.name == "process_video" && s.attr("video_id") == Some(id.as_str()))
        })
        .await;
    let upload_span = spans
        .iter()
        .find(|s| s.name == "video_upload" && s.attr("video_id") == Some(id.as_str()))
        .expect("a video_upload span");
    assert_eq!(upload_span.attr("user_id"), Some(ann.id.as_str()));
    assert_eq!(upload_span.attr("file_type"), Some("video/mp4"));
    let server = spans
        .iter()
        .find(|s| s.span_id == upload_span.parent_span_id)
        .expect("the upload span's parent");
    assert_eq!(server.kind, CapturedSpan::SERVER);
    assert_eq!(server.name, "socialflow.video.v1.VideoService/UploadVideo");
    for child in ["s3_upload", "db_create_video", "queue_processing"] {
        let span = spans
            .iter()
            .find(|s| s.name == child && s.parent_span_id == upload_span.span_id)
            .unwrap_or_else(|| panic!("no {child} under video_upload"));
        assert_eq!(span.trace_id, upload_span.trace_id);
    }
    let processing = spans
        .iter()
        .find(|s| s.name == "process_video" && s.attr("video_id") == Some(id.as_str()))
        .expect("a process_video span");
    assert_eq!(
        processing.trace_id, upload_span.trace_id,
        "processing joins the upload's trace"
    );

    let line = crate::support::wait_for_log("video_ready", |l| {
        l["event_type"] == "video_ready" && l["video_id"] == id.as_str()
    })
    .await;
    assert_eq!(line["event_category"], "content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_leave_nothing_in_the_bucket_or_the_database() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__UPLOADS__MAX_SIZE_BYTES", "20000")
        .spawn()
        .await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let video = std::fs::read(sample_video(dir.path(), 3)).expect("sample");
    assert!(
        video.len() > 20_000,
        "the sample is over the limit: {}",
        video.len()
    );

    expect_error(
        upload(
            &app,
            None,
            "Anonymous",
            "public",
            "a.mp4",
            video[..1000].to_vec(),
        )
        .await,
        401,
        "unauthenticated",
    )
    .await;
    expect_error(
        upload(
            &app,
            Some(&token),
            "Too big",
            "public",
            "a.mp4",
            video.clone(),
        )
        .await,
        413,
        "payload_too_large",
    )
    .await;
    // Without a length up front, the limit is enforced while streaming: the multipart
    // upload already begun in the bucket is aborted.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        video.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let form = reqwest::multipart::Form::new()
        .text("title", "Streamed too big")
        .part(
            "file",
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(
                chunks,
            )))
            .file_name("big.mp4"),
        );
    let response = app
        .http
        .post(format!("{}/api/v1/videos", app.gateway_url()))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("gateway answers");
    expect_error(response, 413, "payload_too_large").await;
    let text = b"this is a text file, whatever its name says\n".repeat(20);
    expect_error(
        upload(
            &app,
            Some(&token),
            "Not a video",
            "public",
            "clip.mp4",
            text,
        )
        .await,
        415,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        upload(
            &app,
            Some(&token),
            "",
            "public",
            "a.mp4",
            video[..1000].to_vec(),
        )
        .await,
        400,
        "invalid_argument",
    )
    .await;
    expect_error(
        upload(
            &app,
            Some(&token),
            "Odd",
            "secret",
            "a.mp4",
            video[..1000].to_vec(),
        )
        .await,
        400,
        "invalid_argument",
    )
    .await;

    assert_eq!(rows(&app, "videos").await, 0);
    assert_eq!(rows(&app, "jobs").await, 0);
    // video-service aborts once it sees the stream fail: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (keys, open_uploads) = loop {
        let contents = app.bucket_contents().await;
        if contents.1 == 0 || Instant::now() > deadline {
            break contents;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(keys.is_empty(), "objects left behind: {keys:?}");
    assert_eq!(open_uploads, 0, "multipart uploads left open");
    assert!(metric(&app, r#"video_uploads_total{status="rejected"}"#).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_decodable_ends_failed_with_the_reason_and_is_not_retried() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    // An MP4 signature in front of noise: accepted by type, undecodable.
    let mut bytes = vec![0, 0, 0, 0x18];
    bytes.extend_from_slice(b"ftypisom\0\0\x02\0isomiso2");
    bytes.extend(std::iter::repeat_n(0x5a, 4096));
    let response = upload(&app, Some(&token), "Broken", "private", "broken.mp4", bytes).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let id = body["video_id"].as_str().expect("video_id").to_owned();

    let video = wait_for_status(&app, &token, &id, &["ready", "failed"]).await;
    assert_eq!(video["status"], "failed", "{video}");
    assert!(
        video["failure_reason"]
            .as_str()
            .is_some_and(|r| r.contains("decod")),
        "{video}"
    );
    let attempts: i32 = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT attempts FROM videos.jobs WHERE video_id = $1",
            &[&uuid::Uuid::parse_str(&id).expect("id")],
        )
        .await
        .expect("job")
        .get(0);
    assert_eq!(attempts, 1, "a file that cannot be decoded is not retried");
    let not_ready = app
        .http
        .get(format!("{}/api/v1/videos/{id}/playback", app.gateway_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("gateway answers");
    expect_error(not_ready, 409, "not_ready").await;

    // Private: its owner sees it, nobody else does.
    let bob = register(&app, "bob").await;
    let bobs = access_token(&app, &bob).await;
    let response = app
        .http
        .get(format!("{}/api/v1/videos/{id}", app.gateway_url()))
        .bearer_auth(&bobs)
        .send()
        .await
        .expect("gateway answers");
    expect_error(response, 404, "not_found").await;
    expect_error(
        app.get(&format!("/api/v1/videos/{id}")).await,
        404,
        "not_found",
    )
    .await;
    let mine: Value = app
        .http
        .get(format!(
            "{}/api/v1/users/{}/videos",
            app.gateway_url(),
            ann.id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("gateway answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        mine["videos"][0]["id"],
        id.as_str(),
        "the owner lists it: {mine}"
    );
    let theirs: Value = app
        .get(&format!("/api/v1/users/{}/videos", ann.id))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        theirs["videos"],
        serde_json::json!([]),
        "others do not: {theirs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_plays_changes_and_deletes_a_video_and_nobody_else_may() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    let bob = register(&app, "bob").await;
    let bobs = access_token(&app, &bob).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = std::fs::read(sample_video(dir.path(), 2)).expect("sample");
    let response = upload(&app, Some(&token), "Mine", "public", "a.mp4", bytes.clone()).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.expect("json")["video_id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_status(&app, &token, &id, &["ready"]).await;
    let video_id = uuid::Uuid::parse_str(&id).expect("id");
    app.set_video_stats(video_id, 10, 2).await;

    // Playback: a presigned link that serves ranges, for anyone who may see the video.
    let playback: Value = app
        .get(&format!("/api/v1/videos/{id}/playback"))
        .await
        .json()
        .await
        .expect("json");
    assert!(playback["expires_at"].is_string(), "{playback}");
    let part = app
        .http
        .get(playback["url"].as_str().expect("url"))
        .header("Range", "bytes=0-99")
        .send()
        .await
        .expect("the link works");
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.expect("bytes").as_ref(), &bytes[..100]);

    let call = |method: reqwest::Method, token: &str, body: Option<Value>| {
        let mut request = app
            .http
            .request(method, format!("{}/api/v1/videos/{id}", app.gateway_url()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let change = serde_json::json!({ "title": "Renamed", "visibility": "private" });
    expect_error(
        call(reqwest::Method::PATCH, &bobs, Some(change.clone()))
            .await
            .expect("answer"),
        403,
        "permission_denied",
    )
    .await;
    expect_error(
        call(reqwest::Method::DELETE, &bobs, None)
            .await
            .expect("answer"),
        403,
        "permission_denied",
    )
    .await;
    let changed: Value = call(reqwest::Method::PATCH, &token, Some(change))
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (changed["title"].clone(), changed["visibility"].clone()),
        ("Renamed".into(), "private".into())
    );
    // Private now: to others it does not exist.
    expect_error(
        call(reqwest::Method::GET, &bobs, None)
            .await
            .expect("answer"),
        404,
        "not_found",
    )
    .await;
    expect_error(
        app.get(&format!("/api/v1/videos/{id}/playback")).await,
        404,
        "not_found",
    )
    .await;

    // Counts belong to video-service's videos: nobody else may delete them.
    let mut engagement =
        proto::engagement::v1::engagement_service_client::EngagementServiceClient::new(
            app.service_channel(
                testkit::ServiceName::Engagement,
                platform::identity::Caller::User(uuid::Uuid::parse_str(&ann.id).expect("id")),
            )
            .await,
        );
    let refused = engagement
        .delete_video_stats(proto::engagement::v1::DeleteVideoStatsRequest {
            video_id: id.clone(),
        })
        .await
        .expect_err("not video-service");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    let deleted = call(reqwest::Method::DELETE, &token, None)
        .await
        .expect("answer");
    assert_eq!(deleted.status(), 204);
    expect_error(
        call(reqwest::Method::GET, &token, None)
            .await
            .expect("answer"),
        404,
        "not_found",
    )
    .await;
    let (keys, _) = app.bucket_contents().await;
    assert!(
        keys.is_empty(),
        "the object and thumbnail are gone: {keys:?}"
    );
    let counts: i64 = app
        .db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM engagement.video_stats WHERE video_id = $1",
            &[&video_id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(counts, 0, "its counts are gone");
}

/// A video of `seconds` at a bitrate high enough to need more than one 8 MiB part.
fn large_video(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("large.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=duration={seconds}:size=640x480:rate=25"))
        .args([
            "-pix_fmt", "yuv420p", "-c:v", "mpeg4", "-b:v", "40M", "-minrate", "40M",
        ])
        .args(["-maxrate", "40M", "-bufsize", "40M"])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_straight_to_the_bucket_in_presigned_parts_and_ends_ready() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = std::fs::read(large_video(dir.path(), 3)).expect("sample");
    assert!(
        bytes.len() > 8 * 1024 * 1024,
        "{} bytes is one part",
        bytes.len()
    );

    let created = create_upload(&app, &token, "Large", bytes.len()).await;
    let id = created["video_id"].as_str().expect("video_id").to_owned();
    let part_size = created["part_size"].as_u64().expect("part_size") as usize;
    let parts = created["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), bytes.len().div_ceil(part_size), "{created}");

    // A plain HTTP client sends each part to its presigned URL.
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let chunk = bytes[i * part_size..((i + 1) * part_size).min(bytes.len())].to_vec();
        let sent = app
            .http
            .put(part["url"].as_str().expect("url"))
            .body(chunk)
            .send()
            .await
            .expect("the store answers");
        assert!(sent.status().is_success(), "part {i}: {}", sent.status());
        let etag = sent.headers()["etag"].to_str().expect("etag").to_owned();
        etags.push(serde_json::json!({ "part_number": part["part_number"], "etag": etag }));
    }
    let completed = app
        .http
        .post(format!("{}/api/v1/videos/{id}/complete", app.gateway_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "parts": etags }))
        .send()
        .await
        .expect("gateway answers");
    let status = completed.status();
    let body: Value = completed.json().await.expect("json");
    assert_eq!(status, 202, "{etags:?}: {body}");
    assert_eq!(body["video_id"], id.as_str());
    assert_eq!(body["status"], "uploaded");

    let video = wait_for_status(&app, &token, &id, &["ready", "failed"]).await;
    assert_eq!(video["status"], "ready", "{video}");
    assert_eq!(video["size_bytes"], bytes.len());
    assert_eq!(
        (video["width"].clone(), video["height"].clone()),
        (640.into(), 480.into())
    );
}

/// Found by contract fuzzing: a completion listing parts out of order was the object
/// store's "invalid part order", answered 503 as if the store were down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_with_a_wrong_part_list_is_a_400_and_the_upload_stays_completable() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    let created = create_upload(&app, &token, "Parts", 40511).await;
    let id = created["video_id"].as_str().expect("video_id").to_owned();
    for parts in [
        serde_json::json!([{ "part_number": 3, "etag": "a" }, { "part_number": 2, "etag": "b" }]),
        serde_json::json!([{ "part_number": 1, "etag": "a" }, { "part_number": 1, "etag": "a" }]),
        serde_json::json!([{ "part_number": 0, "etag": "a" }]),
        serde_json::json!([{ "part_number": 320428, "etag": "a" }]),
        serde_json::json!([{ "part_number": 1, "etag": " " }]),
        serde_json::json!([{ "part_number": 1, "etag": "\"not-the-etag\"" }]),
    ] {
        let completed = app
            .http
            .post(format!("{}/api/v1/videos/{id}/complete", app.gateway_url()))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "parts": parts }))
            .send()
            .await
            .expect("gateway answers");
        let status = completed.status().as_u16();
        let body: Value = completed.json().await.expect("json");
        assert_eq!(status, 400, "{parts}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("parts")),
            "{body}"
        );
    }
    assert_eq!(rows(&app, "pending_uploads").await, 1, "still completable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_direct_upload_is_aborted_by_the_sweep() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__UPLOADS__DIRECT_UPLOAD_TTL_SECS", "1")
        .env("SOCIALFLOW__UPLOADS__SWEEP_INTERVAL_SECS", "1")
        .spawn()
        .await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    create_upload(&app, &token, "Never finished", 1000).await;
    assert_eq!(rows(&app, "pending_uploads").await, 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    while rows(&app, "pending_uploads").await > 0 || app.bucket_contents().await.1 > 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned upload was never swept"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_failing_mid_upload_is_a_clean_error_that_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = std::fs::read(large_video(dir.path(), 3)).expect("sample");
    let failed_before = metric(&app, r#"video_uploads_total{status="failed"}"#).await;

    // The first bytes go through (the type is checked, the multipart upload begins), then
    // the store goes away while the rest of the file is on its way.
    let head = bytes[..4096].to_vec();
    let rest = bytes[4096..].to_vec();
    let body = futures::stream::iter([Ok::<_, std::io::Error>(head)]).chain(futures::stream::once(
        async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Ok(rest)
        },
    ));
    let form = reqwest::multipart::Form::new()
        .text("title", "Interrupted")
        .part(
            "file",
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body)).file_name("a.mp4"),
        );
    let sending = app
        .http
        .post(format!("{}/api/v1/videos", app.gateway_url()))
        .bearer_auth(&token)
        .multipart(form)
        .send();
    let cutting = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        app.s3_proxy.cut();
    };
    let (response, ()) = tokio::join!(sending, cutting);
    expect_error(response.expect("gateway answers"), 503, "unavailable").await;
    // The store comes back: the upload begun before it went away is aborted.
    app.s3_proxy.restore();

    let deadline = Instant::now() + Duration::from_secs(10);
    while app.bucket_contents().await.1 > 0 {
        assert!(
            Instant::now() < deadline,
            "the multipart upload was never aborted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (keys, _) = app.bucket_contents().await;
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(rows(&app, "videos").await, 0);
    assert_eq!(rows(&app, "jobs").await, 0);
    assert_eq!(
        metric(&app, r#"video_uploads_total{status="failed"}"#).await,
        failed_before + 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_the_concurrency_bound_are_shed_and_a_form_of_endless_fields_refused() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__UPLOADS__MAX_CONCURRENT", "1")
        .spawn()
        .await;
    let ann = register(&app, "ann").await;
    let token = access_token(&app, &ann).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = std::fs::read(sample_video(dir.path(), 1)).expect("sample");

    // One upload holds the only slot while its body trickles in.
    let (head, rest) = (bytes[..4096].to_vec(), bytes[4096..].to_vec());
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let body = futures::stream::iter([Ok::<_, std::io::Error>(head)]).chain(futures::stream::once(
        async move {
            let _ = released.await;
            Ok(rest)
        },
    ));
    let form = reqwest::multipart::Form::new().text("title", "Slow").part(
        "file",
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body)).file_name("a.mp4"),
    );
    let slow = tokio::spawn(
        app.http
            .post(format!("{}/api/v1/videos", app.gateway_url()))
            .bearer_auth(&token)
            .multipart(form)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shed = upload(
        &app,
        Some(&token),
        "Second",
        "public",
        "b.mp4",
        bytes.clone(),
    )
    .await;
    let retry_after = shed
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    expect_error(shed, 503, "overloaded").await;
    let _ = release.send(());
    let slow = slow.await.expect("joined").expect("gateway answers");
    assert_eq!(slow.status(), 202, "the first upload completes");
    // With the slot free again, the next one goes through.
    let again = upload(&app, Some(&token), "Third", "public", "c.mp4", bytes).await;
    assert_eq!(again.status(), 202);

    let mut form = reqwest::multipart::Form::new();
    for i in 0..10 {
        form = form.text("title", format!("title {i}"));
    }
    let endless = app
        .http
        .post(format!("{}/api/v1/videos", app.gateway_url()))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("gateway answers");
    expect_error(endless, 400, "invalid_argument").await;
}

/// `GET /videos/{id}` answers anyone may see are kept in the gateway's memory for
/// `cache.video_ttl_ms` (a minute here, so that nothing expires during the test): a change
/// made behind the gateway shows only then, a write through it at once, and a private
/// video is never kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_answers_are_kept_briefly_and_a_write_through_the_gateway_forgets_them() {
    let app = TestApp::builder()
        .env("SOCIALFLOW__CACHE__VIDEO_TTL_MS", "60000")
        .spawn()
        .await;
    let hits = r#"gateway_cache_lookups_total{cache="videos",result="hit"}"#;
    let owner = app.insert_user("ann").await;
    let token = app.access_token_for(owner);
    let id = app.insert_owned_video(owner, "ready", "public", 30).await;
    app.set_video_stats(id, 5, 0).await;
    let path = format!("/api/v1/videos/{id}");
    let read = |token: Option<String>| {
        let mut request = app.http.get(format!("{}{path}", app.gateway_url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.expect("gateway answers") }
    };
    let json = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("json")
    };

    let first = json(read(None).await).await;
    assert_eq!(first["stats"]["views"], 5, "{first}");
    let before = metric(&app, hits).await;
    app.set_video_stats(id, 6, 0).await;
    let second = json(read(Some(token.clone())).await).await;
    assert_eq!(
        second, first,
        "kept: the change behind the gateway is not seen yet"
    );
    assert_eq!(
        metric(&app, hits).await,
        before + 1.0,
        "a hit, for any caller"
    );

    // A like through the gateway forgets the video: the next read is fresh.
    let liked = app
        .http
        .put(format!("{}{path}/like", app.gateway_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("gateway answers");
    assert!(liked.status().is_success(), "{}", liked.status());
    let third = json(read(None).await).await;
    assert_eq!(
        (
            third["stats"]["views"].clone(),
            third["stats"]["likes"].clone()
        ),
        (6.into(), 1.into()),
        "{third}"
    );

    // A write that fails forgets nothing: someone else's edit is refused, the answer stays.
    let intruder = app.access_token_for(app.insert_user("bob").await);
    let refused = app
        .http
        .patch(format!("{}{path}", app.gateway_url()))
        .bearer_auth(&intruder)
        .json(&serde_json::json!({ "title": "Mine now" }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(refused.status(), 403);
    let before = metric(&app, hits).await;
    assert_eq!(json(read(None).await).await, third);
    assert_eq!(metric(&app, hits).await, before + 1.0, "still kept");

    // Made private, through another spelling of the id (braces, escaped): the router
    // serves it as that video, and the cache forgets that video, at once and for good.
    let changed = app
        .http
        .patch(format!("{}/api/v1/videos/%7B{id}%7D", app.gateway_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "visibility": "private" }))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(changed.status(), 200);
    expect_error(read(None).await, 404, "not_found").await;
    let hits_before = metric(&app, hits).await;
    for _ in 0..2 {
        json(read(Some(token.clone())).await).await;
    }
    expect_error(read(None).await, 404, "not_found").await;
    assert_eq!(
        metric(&app, hits).await,
        hits_before,
        "a private video is asked of video-service every time"
    );
}
