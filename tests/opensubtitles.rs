//! The OpenSubtitles provider through the in-process daemon, against a loopback fake that
//! speaks the REST v1 protocol (tests/fake_opensubtitles): a subtitle written with the
//! right name, the score's explanation in the events, cooldowns that make jobs wait (and
//! end without a request before their time), the quota, the login kept across jobs and
//! restarts, one re-login on 401, bad credentials said plainly, the rate ceiling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_opensubtitles;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Api, DEADLINE, Sandbox, Served};
use fake_opensubtitles::{Behaviour, FakeOs, SRT};
use serde_json::{Value, json};

const MOVIE: &str = "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv";

fn sandbox(fake: &FakeOs, extra: &str) -> Sandbox {
    Sandbox::new(&format!(
        "[jobs]\nretry_min_delay_secs = 1\nretry_max_delay_secs = 2\n{}",
        fake.config(extra)
    ))
}

/// A video big enough (128 KiB) to have a movie hash; the fake knows that hash.
fn big_video(sandbox: &Sandbox, fake: &FakeOs, relative: &str) -> PathBuf {
    let path = sandbox.library().join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let hash = cuewarden_actors::hash::movie_hash(&path).unwrap().unwrap();
    fake.with(|s| s.known_hash = Some(hash));
    path
}

fn request(daemon: &Api, video: &Path) -> String {
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["en"]}),
    );
    assert_eq!(status, 202, "{body}");
    body["jobs"][0]["id"].as_str().unwrap().to_owned()
}

fn events(daemon: &Api, id: &str) -> Vec<Value> {
    let (status, body) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn provider_health(daemon: &Api) -> Value {
    let (status, body) = daemon.get("/health/sources");
    assert_eq!(status, 200, "{body}");
    body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "opensubtitles")
        .cloned()
        .unwrap_or_else(|| panic!("no opensubtitles in {body}"))
}

fn sidecar(video: &Path) -> PathBuf {
    video.with_extension("en.srt")
}

fn wait_until(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_hash_match_is_written_next_to_the_video_and_the_events_say_why() {
    let fake = FakeOs::start();
    let sandbox = sandbox(&fake, "");
    let video = big_video(&sandbox, &fake, MOVIE);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    let written = sidecar(&video);
    assert_eq!(job["output_path"], json!(written));
    assert_eq!(
        written.file_name().unwrap(),
        "Example.Movie.2019.1080p.BluRay.x264-GROUP.en.srt"
    );
    assert_eq!(
        std::fs::read_to_string(&written).unwrap().trim(),
        SRT.trim()
    );

    let events = events(&daemon, &id);
    let ready = events
        .iter()
        .find(|e| e["type"] == "subtitle.ready")
        .unwrap();
    assert_eq!(ready["payload"]["producer"], "opensubtitles");
    let detail = &ready["payload"]["detail"];
    assert_eq!(detail["id"], "6200001", "{detail}");
    assert_eq!(detail["score"], 100, "{detail}");
    let breakdown = detail["breakdown"].as_array().unwrap();
    let hash = breakdown.iter().find(|f| f["factor"] == "hash").unwrap();
    assert_eq!(hash["points"], 25, "{detail}");
    assert!(
        breakdown
            .iter()
            .any(|f| f["factor"] == "title" && f["points"] == 10)
    );
    assert!(
        breakdown
            .iter()
            .any(|f| f["factor"] == "year" && f["points"] == 5)
    );
    // The runner-up (the SDH one) is listed with its score.
    let runners = detail["runners_up"].as_array().unwrap();
    assert_eq!(runners.len(), 1, "{detail}");
    assert_eq!(runners[0]["id"], "6200002");
    assert!(runners[0]["score"].as_u64().unwrap() < 100);

    // The protocol: canonical query (no 301), hash + title + year, one login, Bearer on
    // the download, the real User-Agent.
    let searches = fake.requests("/api/v1/subtitles");
    assert_eq!(searches.len(), 1);
    let query = &searches[0].query;
    assert!(query.starts_with("languages=en&moviehash="), "{query}");
    assert!(
        query.contains("&query=example+movie&type=movie&year=2019"),
        "{query}"
    );
    fake.with(|s| {
        assert_eq!(s.redirects, 0);
        assert_eq!(s.bad_user_agent, 0);
        assert_eq!(s.logins, 1);
        assert_eq!(s.downloads, 1);
    });
    let downloads = fake.requests("/api/v1/download");
    assert_eq!(
        downloads[0].authorization.as_deref(),
        Some("Bearer fake-token-1")
    );

    let health = provider_health(&daemon);
    assert_eq!(health["state"], "ok", "{health}");
    assert_eq!(health["quota_remaining"], 19, "{health}");
    assert_eq!(health["logged_in"], true, "{health}");
}

#[test]
fn nothing_found_waits_with_the_reason() {
    let fake = FakeOs::start();
    fake.with(|s| s.search_default = Behaviour::Nothing);
    let sandbox = sandbox(&fake, "");
    let video = sandbox.video("Plain (2020)/Plain (2020).mkv");
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "no en subtitle found (searched opensubtitles)",
        "{job}"
    );
    // A small file has no hash: none is sent.
    let query = fake.requests("/api/v1/subtitles")[0].query.clone();
    assert!(!query.contains("moviehash"), "{query}");
    assert_eq!(fake.count("/api/v1/download"), 0);
    fake.with(|s| assert_eq!(s.logins, 0, "no login for a search"));
}

#[test]
fn a_429_cools_the_provider_down_for_retry_after_and_jobs_recover_after_it() {
    let fake = FakeOs::start();
    fake.with(|s| s.search_script.push_back(Behaviour::RateLimited(2)));
    let sandbox = sandbox(&fake, "");
    let first = big_video(&sandbox, &fake, MOVIE);
    let daemon = sandbox.serve();

    let id = request(&daemon, &first);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "every subtitle provider is cooling down",
        "{job}"
    );
    let limited_at = fake.requests("/api/v1/subtitles")[0].at;
    let health = provider_health(&daemon);
    assert_eq!(health["state"], "cooling_down", "{health}");
    assert_eq!(health["cooldown"], "rate_limit", "{health}");

    // A job asked for meanwhile waits too, without a call.
    let other = sandbox.video("Other (2001)/Other (2001).mkv");
    let other_id = request(&daemon, &other);
    daemon.wait_for_job(&other_id, |j| j["status"] == "waiting");

    // Both recover once the cooldown is over.
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    daemon.wait_for_job(&other_id, |j| {
        j["status"] == "done"
            || (j["status"] == "waiting" && j["error"] != "every subtitle provider is cooling down")
    });
    let log = fake.with(|s| s.log.clone());
    let after: Vec<_> = log.iter().filter(|l| l.at > limited_at).collect();
    assert!(!after.is_empty());
    for logged in after {
        assert!(
            logged.at.duration_since(limited_at) >= Duration::from_secs(2),
            "a request {:?} after the 429, before Retry-After ended: {logged:?}",
            logged.at.duration_since(limited_at)
        );
    }
}

#[test]
fn the_quota_is_never_exceeded_and_jobs_wait_for_its_reset() {
    let fake = FakeOs::start();
    fake.with(|s| s.quota = 2);
    let sandbox = sandbox(&fake, "");
    let videos: Vec<PathBuf> = (0..4)
        .map(|i| {
            big_video(
                &sandbox,
                &fake,
                &format!("Example Movie (2019) {i}/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv"),
            )
        })
        .collect();
    let daemon = sandbox.serve();
    let ids: Vec<String> = videos.iter().map(|v| request(&daemon, v)).collect();
    let finals: Vec<Value> = ids
        .iter()
        .map(|id| daemon.wait_for_job(id, |j| j["status"] == "done" || j["status"] == "waiting"))
        .collect();
    let done = finals.iter().filter(|j| j["status"] == "done").count();
    assert_eq!(done, 2, "{finals:?}");
    for job in finals.iter().filter(|j| j["status"] == "waiting") {
        assert_eq!(
            job["error"], "every subtitle provider is cooling down",
            "{job}"
        );
    }
    // Two downloads, and no third request once the quota said 0.
    assert_eq!(fake.count("/api/v1/download"), 2);
    fake.with(|s| assert_eq!(s.downloads, 2));
    let health = provider_health(&daemon);
    assert_eq!(health["quota_remaining"], 0, "{health}");
    assert_eq!(health["cooldown"], "quota", "{health}");
    assert!(health["quota_resets_at"].as_str().is_some(), "{health}");
}

#[test]
fn a_406_parks_downloads_until_the_reset() {
    let fake = FakeOs::start();
    fake.with(|s| s.download_script.push_back(Behaviour::Quota));
    let sandbox = sandbox(&fake, "");
    let video = big_video(&sandbox, &fake, MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "every subtitle provider is cooling down",
        "{job}"
    );
    let health = provider_health(&daemon);
    assert_eq!(health["cooldown"], "quota", "{health}");
    assert_eq!(health["quota_remaining"], 0, "{health}");
    // The wait lasts until the reset (an hour), not a retry delay.
    let wake: jiff::Timestamp = job["retry_at"].as_str().unwrap().parse().unwrap();
    assert!(
        wake > jiff::Timestamp::now() + jiff::SignedDuration::from_mins(50),
        "{job}"
    );
    // Another job meanwhile waits for the reset without a call.
    let before = fake.with(|s| s.log.len());
    let other = big_video(
        &sandbox,
        &fake,
        "Example Movie (2019) b/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    let other_id = request(&daemon, &other);
    let job = daemon.wait_for_job(&other_id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "every subtitle provider is cooling down",
        "{job}"
    );
    assert_eq!(
        fake.with(|s| s.log.len()),
        before,
        "no call while the quota is used up"
    );
}

/// A search that misbehaves once: the job's state after that attempt.
fn after_a_bad_search(behaviour: Behaviour) -> (FakeOs, Sandbox, Served, String, Value) {
    let fake = FakeOs::start();
    fake.with(|s| s.search_script.push_back(behaviour));
    // The client's timeout is 2 s (`FakeOs::config`): a hang is longer.
    let sandbox = sandbox(&fake, "");
    let video = sandbox.video("Plain (2020)/Plain (2020).mkv");
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting" || j["status"] == "failed");
    (fake, sandbox, daemon, id, job)
}

/// A transient failure waits with its reason, is retried, and the retry searches again.
fn transient(behaviour: Behaviour, expected: &str) {
    let (fake, _sandbox, daemon, id, job) = after_a_bad_search(behaviour);
    assert_eq!(job["status"], "waiting", "{job}");
    // `{host}`: the host asked (the fake's loopback address), never a path or key.
    let host = url::Url::parse(&fake.base).unwrap();
    let host = format!("{}:{}", host.host_str().unwrap(), host.port().unwrap());
    assert_eq!(job["error"], expected.replace("{host}", &host), "{job}");
    daemon.wait_for_job(&id, |j| {
        j["status"] == "waiting" && j["error"].as_str().unwrap().starts_with("no en subtitle")
    });
    assert_eq!(fake.count("/api/v1/subtitles"), 2);
}

#[test]
fn a_5xx_is_a_transient_failure() {
    transient(
        Behaviour::Status(503),
        "opensubtitles: provider unavailable: {host}: HTTP 503",
    );
}

#[test]
fn a_hang_past_the_timeout_is_a_transient_failure() {
    transient(
        Behaviour::Hang(Duration::from_secs(4)),
        "opensubtitles: provider unavailable: timed out",
    );
}

#[test]
fn garbage_cools_the_provider_down_as_unreadable() {
    let (_fake, _sandbox, daemon, _id, job) = after_a_bad_search(Behaviour::Garbage);
    assert_eq!(job["status"], "waiting", "{job}");
    assert_eq!(
        job["error"], "every subtitle provider is cooling down",
        "{job}"
    );
    let health = provider_health(&daemon);
    assert_eq!(health["cooldown"], "parse", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .starts_with("unreadable answer: search answer is not the API's JSON"),
        "{health}"
    );
}

#[test]
fn one_login_serves_every_job_and_survives_a_restart() {
    let fake = FakeOs::start();
    let sandbox = sandbox(&fake, "");
    let videos: Vec<PathBuf> = (0..3)
        .map(|i| {
            big_video(
                &sandbox,
                &fake,
                &format!("Example Movie (2019) {i}/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv"),
            )
        })
        .collect();
    let daemon = sandbox.serve();
    let ids: Vec<String> = videos.iter().map(|v| request(&daemon, v)).collect();
    for id in &ids {
        daemon.wait_for_job(id, |j| j["status"] == "done");
    }
    assert_eq!(fake.with(|s| s.logins), 1);
    daemon.stop().unwrap();

    let video = big_video(
        &sandbox,
        &fake,
        "Example Movie (2019) 9/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(fake.with(|s| s.logins), 1, "the kept token was reused");
    assert_eq!(fake.count("/api/v1/download"), 4);
    let last = fake.requests("/api/v1/download").pop().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer fake-token-1"));
}

#[test]
fn a_401_on_download_logs_in_again_once() {
    let fake = FakeOs::start();
    fake.with(|s| s.download_script.push_back(Behaviour::Unauthorized));
    let sandbox = sandbox(&fake, "");
    let video = big_video(&sandbox, &fake, MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(fake.with(|s| s.logins), 2);
    let downloads = fake.requests("/api/v1/download");
    assert_eq!(downloads.len(), 2);
    assert_eq!(
        downloads[1].authorization.as_deref(),
        Some("Bearer fake-token-2")
    );

    // A token refused again right after a new login: no loop, the job waits, plainly.
    fake.with(|s| s.download_default = Behaviour::Unauthorized);
    let other = big_video(
        &sandbox,
        &fake,
        "Example Movie (2019) b/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    let id = request(&daemon, &other);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(fake.with(|s| s.logins), 3, "one re-login, not a loop");
    assert!(
        job["error"].as_str().unwrap().contains("bad credentials"),
        "{job}"
    );
}

#[test]
fn bad_credentials_are_said_plainly_and_burn_no_retries() {
    let fake = FakeOs::start();
    let sandbox = Sandbox::new(&fake.config("").replace("correct horse", "wrong"));
    let video = big_video(&sandbox, &fake, MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("opensubtitles: bad credentials: HTTP 401 from OpenSubtitles: Error, invalid username/password"),
        "{error}"
    );
    assert!(error.contains("fix the provider's settings"), "{error}");
    let health = provider_health(&daemon);
    assert_eq!(health["state"], "bad_credentials", "{health}");
    // Waiting for a configuration change, not retrying: one login, a wait of hours.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fake.with(|s| s.logins), 1);
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(job["status"], "waiting");
    daemon.stop().unwrap();

    // Fixed and restarted: the kept cooldown was for other credentials; a new job (and a
    // retried one) logs in at once.
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    std::fs::write(
        sandbox.config(),
        config.replace("\"wrong\"", "\"correct horse\""),
    )
    .unwrap();
    let daemon = sandbox.serve();
    let other = big_video(
        &sandbox,
        &fake,
        "Example Movie (2019) b/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    let other_id = request(&daemon, &other);
    daemon.wait_for_job(&other_id, |j| j["status"] == "done");
    assert_eq!(provider_health(&daemon)["state"], "ok");
    assert_eq!(fake.with(|s| s.logins), 2);
}

#[test]
fn the_vip_base_url_replaces_host_and_port_only() {
    let fake = FakeOs::start();
    let vip = FakeOs::start();
    let vip_host = vip.with(|s| s.address.clone());
    fake.with(|s| s.vip_host = Some(vip_host));
    vip.with(|s| {
        s.tokens.insert("fake-token-1".to_owned());
    });
    let sandbox = sandbox(&fake, "");
    let video = big_video(&sandbox, &fake, MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(fake.count("/api/v1/login"), 1);
    assert_eq!(fake.count("/api/v1/download"), 0);
    assert_eq!(
        vip.count("/api/v1/download"),
        1,
        "downloads go to the VIP host, same path"
    );
}

#[test]
fn requests_never_exceed_five_per_second_across_jobs() {
    let fake = FakeOs::start();
    fake.with(|s| s.quota = 1000);
    let sandbox = sandbox(&fake, "");
    let videos: Vec<PathBuf> = (0..8)
        .map(|i| {
            big_video(
                &sandbox,
                &fake,
                &format!("Example Movie (2019) {i}/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv"),
            )
        })
        .collect();
    let daemon = sandbox.serve();
    let ids: Vec<String> = videos.iter().map(|v| request(&daemon, v)).collect();
    for id in &ids {
        daemon.wait_for_job(id, |j| j["status"] == "done");
    }
    // search + download + link per job, one login.
    let total = fake.with(|s| s.log.len());
    assert_eq!(total, 8 * 3 + 1);
    // 25 requests at 5/s: the first and the last start at least 4 × 1.05 s apart. (What
    // arrives here is also squeezed by this machine's scheduling, up to a second under a
    // heavy load, so the strict per-second figure is the limiter's unit test and the
    // benchmark's.)
    let log = fake.with(|s| s.log.clone());
    let first = log.iter().map(|l| l.at).min().unwrap();
    let last = log.iter().map(|l| l.at).max().unwrap();
    assert!(
        last.duration_since(first) >= Duration::from_millis(4_200 - 1_000),
        "25 requests in {:?} (most in one second: {})",
        last.duration_since(first),
        fake.max_per_second()
    );
}

#[test]
fn a_provider_in_the_config_is_listed_in_health_before_any_job() {
    let fake = FakeOs::start();
    let sandbox = sandbox(&fake, "");
    let daemon: Served = sandbox.serve();
    let health = provider_health(&daemon);
    assert_eq!(health["state"], "ok");
    assert_eq!(health["logged_in"], false);
    assert!(health["quota_remaining"].is_null());
    wait_until("nothing called", || fake.with(|s| s.log.is_empty()));
}

#[test]
fn ids_the_api_does_not_know_are_searched_again_by_title() {
    let fake = FakeOs::start();
    fake.with(|s| s.unknown_ids = true);
    let sandbox = sandbox(&fake, "");
    let video = sandbox.video(
        "Example Movie (2019) [imdbid-tt9999999]/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let queries: Vec<String> = fake
        .requests("/api/v1/subtitles")
        .into_iter()
        .map(|l| l.query)
        .collect();
    assert_eq!(
        queries,
        [
            "imdb_id=9999999&languages=en&type=movie",
            "languages=en&query=example+movie&type=movie&year=2019",
        ]
    );
    fake.with(|s| assert_eq!(s.redirects, 0));
}
