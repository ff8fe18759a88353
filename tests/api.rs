//! The HTTP API through the real binary: submit, inspect, auth, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{Daemon, KEY, Sandbox};
use serde_json::{Value, json};

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON error: {body}"))
}

#[test]
fn submitted_request_becomes_durable_jobs_with_events() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("Movie (2019)/Movie (2019).mkv");
    let daemon = sandbox.serve();

    let (status, body) = daemon.post("/api/v1/subtitles", &json!({"path": video}));
    assert_eq!(status, 202, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    let languages: HashSet<_> = jobs
        .iter()
        .map(|j| j["language"].as_str().unwrap())
        .collect();
    assert_eq!(
        languages,
        HashSet::from(["fr", "en"]),
        "defaults to [languages] wanted"
    );
    assert!(jobs.iter().all(|j| j["status"] == "pending"), "{body}");

    let id = jobs[0]["id"].as_str().unwrap();
    let job = daemon.wait_for_job(id, |j| j["status"] == "waiting");
    assert_eq!(job["error"], "no subtitle provider enabled");
    assert_eq!(job["path"], json!(video));
    assert_eq!(job["priority"], "high");
    assert_eq!(job["attempts"], 1);
    assert!(job["output_path"].is_null());
    for key in ["created_at", "updated_at"] {
        assert!(job[key].as_str().unwrap().ends_with('Z'), "{job}");
    }

    let (status, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert_eq!(status, 200);
    assert_eq!(events["job_id"], id);
    let list = events["events"].as_array().unwrap();
    assert_eq!(events["event_count"], list.len());
    let types: Vec<&str> = list
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        &types[..5],
        [
            "subtitle.requested",
            "subtitle.download.requested",
            "subtitle.download.started",
            "subtitle.waiting",
            "job.retry_scheduled"
        ],
        "oldest first after reversing: {types:?}"
    );
    let seqs: Vec<u64> = list.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    assert_eq!(list.last().unwrap()["source"], "api");
}

#[test]
fn the_same_video_and_language_never_has_two_unfinished_jobs() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("a.mkv");
    let daemon = sandbox.serve();
    let request = json!({"path": video, "languages": ["fr"]});
    let (_, first) = daemon.post("/api/v1/subtitles", &request);
    let (status, second) = daemon.post("/api/v1/subtitles", &request);
    assert_eq!(status, 202);
    assert_eq!(first["jobs"][0]["id"], second["jobs"][0]["id"]);
    let (_, de) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["DE", "de"]}),
    );
    assert_eq!(de["jobs"].as_array().unwrap().len(), 1, "{de}");
    assert_ne!(de["jobs"][0]["id"], first["jobs"][0]["id"]);
    let (_, all) = daemon.get("/api/v1/jobs");
    assert_eq!(all["jobs"].as_array().unwrap().len(), 2, "{all}");
}

#[test]
fn job_list_pages_newest_first_with_a_cursor_and_filters_by_status() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let mut ids = Vec::new();
    for n in 0..5 {
        let video = sandbox.video(&format!("v{n}.mkv"));
        let (_, body) = daemon.post(
            "/api/v1/subtitles",
            &json!({"path": video, "languages": ["fr"]}),
        );
        ids.push(body["jobs"][0]["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/jobs?limit=2&cursor={c}"),
            None => "/api/v1/jobs?limit=2".to_owned(),
        };
        let (status, page) = daemon.get(&path);
        assert_eq!(status, 200, "{page}");
        let jobs = page["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(jobs.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every job once, newest first");

    for id in &ids {
        daemon.wait_for_job(id, |j| j["status"] == "waiting");
    }
    let (_, waiting) = daemon.get("/api/v1/jobs?status=waiting");
    assert_eq!(waiting["jobs"].as_array().unwrap().len(), 5);
    let (_, done) = daemon.get("/api/v1/jobs?status=done");
    assert!(done["jobs"].as_array().unwrap().is_empty());
    let (status, bad) = daemon.get("/api/v1/jobs?status=finished");
    assert_eq!((status, error_code(&bad)), (400, "bad_request"));
    let (status, bad) = daemon.get("/api/v1/jobs?limit=0");
    assert_eq!((status, error_code(&bad)), (400, "bad_request"));
    let (status, bad) = daemon.get("/api/v1/jobs?cursor=nope");
    assert_eq!((status, error_code(&bad)), (400, "bad_request"));
}

#[test]
fn every_route_but_health_needs_the_api_key() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let (client, runtime) = daemon.raw();
    let status_of = |request: reqwest::RequestBuilder| {
        runtime.block_on(async { request.send().await.unwrap().status().as_u16() })
    };
    let url = |path: &str| format!("{}{path}", daemon.base);

    assert_eq!(status_of(client.get(url("/health"))), 200);
    for path in [
        "/api/v1/jobs",
        "/metrics",
        "/api/v1/health/sources",
        "/api/v1/events/stream",
    ] {
        assert_eq!(
            status_of(client.get(url(path))),
            401,
            "{path} without a key"
        );
        assert_eq!(
            status_of(client.get(url(path)).header("X-Api-Key", "wrong")),
            401,
            "{path} wrong key"
        );
    }
    assert_eq!(
        status_of(
            client
                .post(url("/api/v1/subtitles"))
                .json(&json!({"path": "/x"}))
        ),
        401
    );
    assert_eq!(
        status_of(client.get(url("/api/v1/jobs")).header("X-Api-Key", KEY)),
        200
    );
    assert_eq!(
        status_of(client.get(url(&format!("/api/v1/jobs?apikey={KEY}")))),
        200
    );
    assert_eq!(
        status_of(
            client
                .get(url("/api/v1/jobs"))
                .basic_auth("anyone", Some(KEY))
        ),
        200
    );
    assert_eq!(
        status_of(
            client
                .get(url("/api/v1/jobs"))
                .basic_auth("anyone", Some("nope"))
        ),
        401
    );

    // The web UI too: a browser shows its basic-auth login (the key as password).
    let (status, _) = runtime.block_on(async {
        let response = client.get(url("/")).send().await.unwrap();
        let challenge = response.headers().get("www-authenticate").cloned();
        (response.status().as_u16(), challenge)
    });
    assert_eq!(status, 401);
    let page = runtime.block_on(async {
        let response = client
            .get(url("/"))
            .basic_auth("me", Some(KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    });
    assert!(page.contains("<title>cuewarden</title>"), "{page}");

    let (status, body) = daemon.call(client.get(url("/api/v1/jobs")));
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, health) = daemon.call(client.get(url("/health")));
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_wrong_method_is_405_with_the_allowed_ones_and_head_works() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let (client, runtime) = daemon.raw();
    let url = |path: &str| format!("{}{path}", daemon.base);
    for (request, allow) in [
        (client.get(url("/api/v1/subtitles")), "POST"),
        (client.delete(url("/api/v1/jobs")), "GET, HEAD"),
        (
            client.put(url("/api/v1/jobs/0190a5a0-0000-7000-8000-000000000000")),
            "GET, HEAD",
        ),
        (client.post(url("/health")), "GET, HEAD"),
        (client.get(url("/api/v1/jobs/x/retry")), "POST"),
    ] {
        let (status, allowed, body) = runtime.block_on(async {
            let response = request.header("X-Api-Key", KEY).send().await.unwrap();
            let allowed = response.headers()["allow"].to_str().unwrap().to_owned();
            let status = response.status().as_u16();
            (status, allowed, response.json::<Value>().await.unwrap())
        });
        assert_eq!(status, 405, "{body}");
        assert_eq!(allowed, allow);
        assert_eq!(error_code(&body), "method_not_allowed");
    }
    let head = runtime.block_on(async {
        client
            .head(url("/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(head, 200);
    let (status, body) = daemon.get("/api/v1/nothing-here");
    assert_eq!((status, error_code(&body)), (404, "not_found"));
}

#[test]
fn bad_input_gets_a_precise_json_error_and_the_daemon_keeps_serving() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("b.mkv");
    let daemon = Daemon::start(
        &sandbox.config(),
        &[("CUEWARDEN__SERVER__MAX_BODY_BYTES", "4096")],
    );
    let (client, _) = daemon.raw();
    let post_raw = |body: &str| {
        daemon.call(
            client
                .post(format!("{}/api/v1/subtitles", daemon.base))
                .header("X-Api-Key", KEY)
                .header("Content-Type", "application/json")
                .body(body.to_owned()),
        )
    };
    let cases: Vec<(&str, u16, &str)> = vec![
        ("{not json", 400, "bad_request"),
        ("", 400, "bad_request"),
        ("[]", 400, "bad_request"),
        (r#"{"path": 5}"#, 400, "bad_request"),
        (r#"{"path": "/x.mkv", "colour": "red"}"#, 400, "bad_request"),
        (r#"{"languages": ["fr"]}"#, 400, "bad_request"),
        (
            r#"{"path": "/x.mkv", "jellyfin_item_id": "abc"}"#,
            400,
            "bad_request",
        ),
        (r#"{"path": "/x.mkv", "languages": []}"#, 400, "bad_request"),
        (
            r#"{"path": "/x.mkv", "languages": ["french"]}"#,
            400,
            "bad_request",
        ),
        (r#"{"path": "/etc/passwd"}"#, 422, "path_outside_library"),
        (
            r#"{"path": "relative/movie.mkv"}"#,
            422,
            "path_not_absolute",
        ),
        (
            r#"{"jellyfin_item_id": "abc"}"#,
            422,
            "jellyfin_not_configured",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = post_raw(body);
        assert_eq!(
            (got, error_code(&answer)),
            (status, code),
            "body {body:?}: {answer}"
        );
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let escape = format!(
        r#"{{"path": "{}/../outside.mkv"}}"#,
        sandbox.library().display()
    );
    let (got, answer) = post_raw(&escape);
    assert_eq!(
        (got, error_code(&answer)),
        (422, "path_outside_library"),
        "{answer}"
    );

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.mkv"), b"x").unwrap();
    std::os::unix::fs::symlink(outside.path(), sandbox.library().join("link")).unwrap();
    let link = format!(
        r#"{{"path": "{}/link/secret.mkv"}}"#,
        sandbox.library().display()
    );
    let (got, answer) = post_raw(&link);
    assert_eq!(
        (got, error_code(&answer)),
        (422, "path_outside_library"),
        "symlink escape: {answer}"
    );

    // Inside the library, but not a video file this daemon can see.
    let missing = sandbox.library().join("Typo (2019)/Typo (2019).mkv");
    let (got, answer) = post_raw(&json!({ "path": missing }).to_string());
    assert_eq!(
        (got, error_code(&answer)),
        (422, "video_not_found"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Typo (2019)")
    );
    std::fs::create_dir_all(sandbox.library().join("Folder.mkv")).unwrap();
    let folder = sandbox.library().join("Folder.mkv");
    let (got, answer) = post_raw(&json!({ "path": folder }).to_string());
    assert_eq!((got, error_code(&answer)), (422, "not_a_file"), "{answer}");

    let huge = format!(r#"{{"path": "{}"}}"#, "a".repeat(10_000));
    let (got, answer) = post_raw(&huge);
    assert_eq!(
        (got, error_code(&answer)),
        (413, "payload_too_large"),
        "{answer}"
    );

    let unknown = "01a20fa6-3690-729e-bb25-02af5246155a";
    for path in [
        format!("/api/v1/jobs/{unknown}"),
        format!("/api/v1/jobs/{unknown}/events"),
        "/api/v1/jobs/not-a-uuid".to_owned(),
        "/api/v1/nowhere".to_owned(),
    ] {
        let (got, answer) = daemon.get(&path);
        assert_eq!(
            (got, error_code(&answer)),
            (404, "not_found"),
            "{path}: {answer}"
        );
    }
    for action in ["retry", "cancel"] {
        let (got, answer) = daemon.post(&format!("/api/v1/jobs/{unknown}/{action}"), &json!({}));
        assert_eq!(
            (got, error_code(&answer)),
            (404, "not_found"),
            "{action}: {answer}"
        );
    }

    // Still serving, and nothing was created by the bad requests.
    let (got, answer) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(got, 202, "{answer}");
    let (_, all) = daemon.get("/api/v1/jobs");
    assert_eq!(all["jobs"].as_array().unwrap().len(), 1, "{all}");
}

#[test]
fn retry_and_cancel_follow_the_life_cycle() {
    let sandbox =
        Sandbox::new("[jobs]\nretry_min_delay_secs = 3600\nretry_max_delay_secs = 7200\n");
    let video = sandbox.video("c.mkv");
    let daemon = sandbox.serve();
    let (_, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");

    let (status, answer) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert_eq!(status, 202, "{answer}");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting" && j["attempts"] == 1);
    assert_eq!(job["error"], "no subtitle provider enabled");
    let (_, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "job.retry_requested")
    );

    let (status, answer) = daemon.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "cancelled");
    let (status, answer) = daemon.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}));
    assert_eq!((status, error_code(&answer)), (409, "conflict"));

    // A cancelled job frees its video + language for a new request…
    let (_, again) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    let new_id = again["jobs"][0]["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    // …so retrying the cancelled one now conflicts with the unfinished new one.
    let (status, answer) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert_eq!((status, error_code(&answer)), (409, "conflict"), "{answer}");
    daemon.post(&format!("/api/v1/jobs/{new_id}/cancel"), &json!({}));
    let (status, answer) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert_eq!(status, 202, "{answer}");
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
}

#[test]
fn an_existing_subtitle_skips_the_job() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("Show/S01E01.mkv");
    std::fs::write(
        sandbox.library().join("Show/S01E01.fre.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nSalut\n",
    )
    .unwrap();
    let daemon = sandbox.serve();
    let (_, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    let id = body["jobs"][0]["id"].as_str().unwrap();
    daemon.wait_for_job(id, |j| j["status"] == "skipped");
    let (_, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    let skipped = &events["events"][0];
    assert_eq!(skipped["type"], "subtitle.skipped");
    assert!(
        skipped["payload"]["existing"]
            .as_str()
            .unwrap()
            .ends_with("S01E01.fre.srt")
    );
}

#[test]
fn event_stream_replays_after_last_event_id_then_follows_live() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let first = sandbox.video("d.mkv");
    let (_, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": first, "languages": ["fr"]}),
    );
    let id = body["jobs"][0]["id"].as_str().unwrap();
    daemon.wait_for_job(id, |j| j["status"] == "waiting");

    let (client, runtime) = daemon.raw();
    let frames = |last: Option<u64>, want: usize, submit: Option<Value>| -> Vec<(u64, String)> {
        runtime.block_on(async {
            let mut request = client
                .get(format!("{}/api/v1/events/stream", daemon.base))
                .header("X-Api-Key", KEY);
            if let Some(last) = last {
                request = request.header("Last-Event-ID", last.to_string());
            }
            let mut response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/event-stream")
            );
            if let Some(body) = submit {
                let response = client
                    .post(format!("{}/api/v1/subtitles", daemon.base))
                    .header("X-Api-Key", KEY)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202);
            }
            let mut text = String::new();
            let mut out = Vec::new();
            while out.len() < want {
                let chunk = tokio::time::timeout(common::DEADLINE, response.chunk())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                text.push_str(std::str::from_utf8(&chunk).unwrap());
                while let Some(end) = text.find("\n\n") {
                    let frame: String = text.drain(..end + 2).collect();
                    let seq = frame
                        .lines()
                        .find_map(|l| l.strip_prefix("id: "))
                        .map(|s| s.parse().unwrap());
                    let kind = frame
                        .lines()
                        .find_map(|l| l.strip_prefix("event: "))
                        .unwrap_or("")
                        .to_owned();
                    if let Some(seq) = seq {
                        out.push((seq, kind));
                    }
                }
            }
            out
        })
    };
    let all = frames(Some(0), 5, None);
    assert_eq!(all[0], (1, "subtitle.requested".to_owned()));
    assert!(
        all.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "gap-free: {all:?}"
    );

    let resumed = frames(Some(3), 2, None);
    assert_eq!(
        resumed[0].0, 4,
        "resumes right after Last-Event-ID: {resumed:?}"
    );

    let second = sandbox.video("e.mkv");
    let last = all.last().unwrap().0;
    let live = frames(
        Some(last),
        1,
        Some(json!({"path": second, "languages": ["fr"]})),
    );
    assert!(live[0].0 > last);
    assert_eq!(live[0].1, "subtitle.requested");

    // Without Last-Event-ID, a new client starts with the most recent events only.
    assert_eq!(frames(None, 1, None)[0].0, 1, "a short log is shown whole");
    let third = sandbox.video("many.mkv");
    let languages = [
        "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "hu", "ro", "el", "tr",
        "ru", "uk", "ja", "ko", "zh", "ar", "he", "hi", "th", "vi",
    ];
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": third, "languages": languages}),
    );
    assert_eq!(status, 202, "{body}");
    for job in body["jobs"].as_array().unwrap() {
        daemon.wait_for_job(job["id"].as_str().unwrap(), |j| j["status"] == "waiting");
    }
    let whole = frames(Some(0), 101, None);
    let recent = frames(None, 100, None);
    assert!(recent[0].0 > 1, "starts near the end: {:?}", recent[0]);
    assert!(
        recent.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "gap-free: {recent:?}"
    );
    assert!(whole.len() > 100);

    let (status, body) = daemon.call(
        client
            .get(format!("{}/api/v1/events/stream", daemon.base))
            .header("X-Api-Key", KEY)
            .header("Last-Event-ID", "yesterday"),
    );
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
}

#[test]
fn metrics_and_source_health_report_the_engine() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let video = sandbox.video("f.mkv");
    let (_, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    daemon.wait_for_job(body["jobs"][0]["id"].as_str().unwrap(), |j| {
        j["status"] == "waiting"
    });

    let (status, metrics) = daemon.get("/metrics");
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("cuewarden_jobs{status=\"waiting\"} 1"),
        "{text}"
    );
    assert!(text.contains("cuewarden_store_commits_total "), "{text}");
    assert!(
        text.contains("cuewarden_store_commit_batch_size_bucket{le=\"+Inf\"}"),
        "{text}"
    );

    let (status, sources) = daemon.get("/api/v1/health/sources");
    assert_eq!(status, 200);
    assert_eq!(sources["sources"][0]["name"], "api");
    assert_eq!(sources["job_manager"]["is_accepting"], true);

    let (client, runtime) = daemon.raw();
    let page = runtime.block_on(async {
        client
            .get(format!("{}/?apikey={KEY}", daemon.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(page.contains("<title>cuewarden</title>"));
}

/// A library may be configured through a symlink (a NAS share mounted elsewhere): a video
/// is accepted by its real path and by the linked one, and both name one video: one job.
#[test]
fn a_library_behind_a_symlink_accepts_both_spellings_of_a_video() {
    let outside = tempfile::tempdir().unwrap();
    let real = outside.path().join("real");
    std::fs::create_dir_all(real.join("Film (2020)")).unwrap();
    std::fs::write(real.join("Film (2020)/Film (2020).mkv"), b"x").unwrap();
    let link = outside.path().join("linked");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let sandbox = Sandbox::new(&format!(
        "[[libraries]]\npath = {:?}\n",
        link.display().to_string()
    ));
    let daemon = sandbox.serve();
    let mut ids = Vec::new();
    for path in [
        real.join("Film (2020)/Film (2020).mkv"),
        link.join("Film (2020)/Film (2020).mkv"),
    ] {
        let (status, body) = daemon.post(
            "/api/v1/subtitles",
            &json!({"path": path, "languages": ["fr"]}),
        );
        assert_eq!(status, 202, "{path:?}: {body}");
        ids.push(body["jobs"][0]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1], "one video, one job");
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{}", ids[0]));
    assert_eq!(
        job["path"].as_str().unwrap(),
        real.canonicalize()
            .unwrap()
            .join("Film (2020)/Film (2020).mkv")
            .to_str()
            .unwrap()
    );
}

// See: issue "Room for the capabilities" — what a first user tripped on.
#[test]
fn a_file_that_is_not_a_video_is_refused_with_not_a_video() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("Movie/Movie.mkv");
    for name in ["Movie/Movie.nfo", "Movie/Movie.en.srt", "Movie/README"] {
        std::fs::write(sandbox.library().join(name), b"x").unwrap();
    }
    let daemon = sandbox.serve();
    for name in ["Movie/Movie.nfo", "Movie/Movie.en.srt", "Movie/README"] {
        let path = sandbox.library().join(name);
        let (status, body) = daemon.post("/api/v1/subtitles", &json!({"path": path}));
        assert_eq!(
            (status, error_code(&body)),
            (422, "not_a_video"),
            "{name}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is not a video"),
            "{body}"
        );
    }
    let (_, all) = daemon.get("/api/v1/jobs");
    assert_eq!(all["jobs"], json!([]), "nothing was parked on a non-video");
    let (status, body) = daemon.post("/api/v1/subtitles", &json!({"path": video}));
    assert_eq!(status, 202, "the daemon keeps serving: {body}");
}

#[test]
fn the_answer_names_the_real_path_of_the_video() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("Movie/Movie.mkv");
    let daemon = sandbox.serve();
    let spelled = sandbox.library().join("Movie/../Movie/./Movie.mkv");
    let (status, body) = daemon.post("/api/v1/subtitles", &json!({"path": spelled}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["path"], json!(video.canonicalize().unwrap()), "{body}");
}

#[test]
fn regional_and_three_letter_languages_are_accepted_in_canonical_form() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("Film/Film.mkv");
    std::fs::write(
        sandbox.library().join("Film/Film.pt-BR.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nOi\n",
    )
    .unwrap();
    std::fs::write(
        sandbox.library().join("Film/Film.fr-FR.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nSalut\n",
    )
    .unwrap();
    let daemon = sandbox.serve();
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["pt_br", "fre", "zh-Hant", "es-MX", "ger"]}),
    );
    assert_eq!(status, 202, "{body}");
    let languages: Vec<&str> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["language"].as_str().unwrap())
        .collect();
    assert_eq!(languages, ["pt-BR", "fr", "zh-TW", "es-419", "de"]);
    let status_of = |language: &str| {
        let id = body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["language"] == language)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        daemon.wait_for_job(&id, |j| {
            j["status"] == "skipped" || j["status"] == "waiting"
        })["status"]
            .clone()
    };
    assert_eq!(status_of("pt-BR"), "skipped", "Film.pt-BR.srt is Brazilian");
    assert_eq!(
        status_of("fr"),
        "skipped",
        "Film.fr-FR.srt counts as French"
    );
    assert_eq!(status_of("zh-TW"), "waiting");
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["en-US-x"]}),
    );
    assert_eq!((status, error_code(&body)), (400, "bad_request"), "{body}");
}

#[test]
fn a_library_with_its_own_languages_overrides_the_wanted_ones() {
    let anime = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(&format!(
        "[[libraries]]\npath = {:?}\nlanguages = [\"ja\", \"pt-BR\"]\n",
        anime.path().display().to_string()
    ));
    let movie = sandbox.video("Movie/Movie.mkv");
    let episode = anime.path().join("Show/Show - 01.mkv");
    std::fs::create_dir_all(episode.parent().unwrap()).unwrap();
    std::fs::write(&episode, b"x").unwrap();
    let daemon = sandbox.serve();
    let languages = |path: &std::path::Path| {
        let (status, body) = daemon.post("/api/v1/subtitles", &json!({"path": path}));
        assert_eq!(status, 202, "{body}");
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["language"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(languages(&episode), ["ja", "pt-BR"]);
    assert_eq!(languages(&movie), ["fr", "en"]);
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": episode, "languages": ["de"]}),
    );
    assert_eq!(
        (status, body["jobs"][0]["language"].clone()),
        (202, json!("de"))
    );
}

#[test]
fn a_job_is_found_by_a_unique_abbreviation_of_its_id() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("a.mkv");
    let daemon = sandbox.serve();
    let (_, body) = daemon.post("/api/v1/subtitles", &json!({"path": video}));
    let ids: Vec<String> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    let id = &ids[0];
    let tail = &id[id.len() - 8..];
    let (status, job) = daemon.get(&format!("/api/v1/jobs/{tail}"));
    assert_eq!(
        (status, job["id"].as_str()),
        (200, Some(id.as_str())),
        "{job}"
    );
    let (status, events) = daemon.get(&format!("/api/v1/jobs/{}/events", tail.to_uppercase()));
    assert_eq!(
        (status, events["job_id"].as_str()),
        (200, Some(id.as_str()))
    );
    // Jobs created together share their timestamp prefix: too short a prefix is ambiguous.
    let shared: String = ids[0]
        .chars()
        .zip(ids[1].chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    if shared.chars().filter(char::is_ascii_hexdigit).count() >= 4 {
        let (status, body) = daemon.get(&format!("/api/v1/jobs/{shared}"));
        assert_eq!((status, error_code(&body)), (400, "ambiguous_id"), "{body}");
    }
    for unknown in ["ffffffff", "abc", "not-a-job"] {
        let (status, body) = daemon.get(&format!("/api/v1/jobs/{unknown}"));
        assert_eq!(
            (status, error_code(&body)),
            (404, "not_found"),
            "{unknown}: {body}"
        );
    }
}

#[test]
fn a_route_without_parameters_refuses_a_body_before_it_acts() {
    let sandbox =
        Sandbox::new("[jobs]\nretry_min_delay_secs = 3600\nretry_max_delay_secs = 7200\n");
    let video = sandbox.video("nobody.mkv");
    let daemon = sandbox.serve();
    let (_, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    let waiting = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let attempts = waiting["attempts"].as_u64().unwrap();
    let (_, before) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    let (client, _) = daemon.raw();
    let send =
        |method: reqwest::Method, action: &str, content_type: Option<&str>, body: &'static str| {
            let mut request = client
                .request(method, format!("{}/api/v1/jobs/{id}/{action}", daemon.base))
                .header("X-Api-Key", KEY)
                .body(body);
            if let Some(content_type) = content_type {
                request = request.header("Content-Type", content_type);
            }
            daemon.call(request)
        };
    let routes = [
        (reqwest::Method::POST, "retry"),
        (reqwest::Method::POST, "cancel"),
        (reqwest::Method::POST, "reject"),
        (reqwest::Method::DELETE, "blacklist"),
    ];

    for (method, action) in &routes {
        for (content_type, body, status, code, says) in [
            (
                Some("text/plain"),
                "garbage",
                415,
                "unsupported_media_type",
                "application/json",
            ),
            (
                None,
                "garbage",
                415,
                "unsupported_media_type",
                "given: none",
            ),
            (
                Some("application/json"),
                "{\"bogus\":1",
                400,
                "bad_request",
                "invalid request body",
            ),
            (
                Some("application/json"),
                "{\"x\":1}",
                400,
                "bad_request",
                "unknown field `x`",
            ),
            (
                Some("application/json"),
                "[]",
                400,
                "bad_request",
                "invalid request body",
            ),
        ] {
            let (got, answer) = send(method.clone(), action, content_type, body);
            assert_eq!(
                (got, error_code(&answer)),
                (status, code),
                "{method} {action} {body:?}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{action} {body:?}: {message}");
        }
        // Nor a query parameter (but the key).
        let (got, answer) = send(method.clone(), &format!("{action}?force=1"), None, "");
        assert_eq!(
            (got, error_code(&answer)),
            (400, "bad_request"),
            "{method} {action}?force=1: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("unknown field `force`"), "{message}");
    }
    // Nothing was done by a refused request: the job still waits, with the same events.
    let job = daemon.wait_for_job(&id, |_| true);
    assert_eq!(job["status"], "waiting", "{job}");
    assert_eq!(job["attempts"], attempts, "{job}");
    let (_, after) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert_eq!(after["event_count"], before["event_count"], "{after}");

    // No body (whatever its content type) or `{}` reach the action.
    let (got, answer) = send(reqwest::Method::DELETE, "blacklist", Some("text/plain"), "");
    assert_eq!(got, 200, "{answer}");
    assert_eq!(answer["cleared"], 0, "{answer}");
    let (got, answer) = send(
        reqwest::Method::POST,
        "reject",
        Some("application/json"),
        "{}",
    );
    assert_eq!(
        (got, error_code(&answer)),
        (409, "conflict"),
        "a waiting job has no subtitle to reject: {answer}"
    );
    let (got, answer) = send(reqwest::Method::POST, "retry", None, "");
    assert_eq!(got, 202, "{answer}");
    let (_, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "job.retry_requested"),
        "{events}"
    );
    let (got, answer) = send(
        reqwest::Method::POST,
        "cancel",
        Some("application/json"),
        " { } ",
    );
    assert_eq!(got, 200, "{answer}");
    assert_eq!(answer["status"], "cancelled", "{answer}");
}

#[test]
fn a_read_refuses_a_query_parameter_it_does_not_take_but_the_key() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("query.mkv");
    let daemon = sandbox.serve();
    let (_, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let (client, runtime) = daemon.raw();
    let status_of = |url: String| {
        runtime.block_on(async {
            let response = client.get(url).send().await.unwrap();
            // Only the head: an event stream's body never ends.
            response.status().as_u16()
        })
    };

    let reads = [
        "/api/v1/jobs".to_owned(),
        format!("/api/v1/jobs/{id}"),
        format!("/api/v1/jobs/{id}/events"),
        format!("/api/v1/jobs/{id}/candidates"),
        format!("/api/v1/jobs/{id}/blacklist"),
        "/api/v1/schedule".to_owned(),
        "/api/v1/health/sources".to_owned(),
        "/health/sources".to_owned(),
        "/api/v1/metrics".to_owned(),
        "/metrics".to_owned(),
        "/api/v1/events/stream".to_owned(),
    ];
    for path in &reads {
        for query in ["limit=-1", "foo=bar", "apikey=x&apikey=y"] {
            let (got, answer) = daemon.get(&format!("{path}?{query}"));
            assert_eq!(
                (got, error_code(&answer)),
                (400, "bad_request"),
                "{path}?{query}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.starts_with("invalid query string"), "{message}");
        }
        // The key in the query authenticates every read, and is no unknown parameter.
        assert_eq!(
            status_of(format!("{}{path}?apikey={KEY}", daemon.base)),
            200,
            "{path}?apikey="
        );
        assert_eq!(status_of(format!("{}{path}?", daemon.base)), 401, "{path}");
    }
    let (_, answer) = daemon.get(&format!("/api/v1/jobs/{id}/events?limit=-1"));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown field `limit`"), "{message}");
    // The stream's own parameter is still taken, and still checked.
    assert_eq!(
        status_of(format!(
            "{}/api/v1/events/stream?apikey={KEY}&last_event_id=0",
            daemon.base
        )),
        200
    );
    let (got, answer) = daemon.get("/api/v1/events/stream?last_event_id=soon");
    assert_eq!((got, error_code(&answer)), (400, "bad_request"), "{answer}");
    // A request refused for its query changed nothing, and the daemon keeps serving.
    let (got, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(
        (got, job["status"].as_str()),
        (200, Some("waiting")),
        "{job}"
    );
}

#[test]
fn a_malformed_basic_auth_header_is_told_apart_from_a_missing_key() {
    use base64::Engine as _;
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let (client, _) = daemon.raw();
    let url = format!("{}/api/v1/jobs", daemon.base);
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);

    for (header, says) in [
        ("Basic !!!!".to_owned(), "not base64"),
        (format!("Basic {}", encode(KEY)), "no ':'"),
        (
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode([b':', 0xff, 0xfe])
            ),
            "not UTF-8",
        ),
    ] {
        let (got, answer) = daemon.call(client.get(&url).header("Authorization", header.as_str()));
        assert_eq!(
            (got, error_code(&answer)),
            (401, "unauthorized"),
            "{header}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("malformed basic auth") && message.contains(says),
            "{header}: {message}"
        );
    }
    let (got, answer) = daemon.call(client.get(&url).header(
        "X-Api-Key",
        reqwest::header::HeaderValue::from_bytes(b"k\xe9y").unwrap(),
    ));
    assert_eq!((got, error_code(&answer)), (401, "unauthorized"));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("malformed X-Api-Key"), "{message}");
    let (got, answer) = daemon.call(client.get(&url));
    assert_eq!((got, error_code(&answer)), (401, "unauthorized"));
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("missing API key"),
        "{answer}"
    );
    // The scheme's case does not matter; a good key still gets in.
    let (got, answer) = daemon.call(client.get(&url).header(
        "Authorization",
        format!("BASIC {}", encode(&format!("me:{KEY}"))),
    ));
    assert_eq!(got, 200, "{answer}");
}
