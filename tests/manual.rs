//! A user's hand in a job's subtitle, through the in-process daemon against the loopback
//! OpenSubtitles (tests/fake_opensubtitles): the provenance of a written subtitle, the
//! candidate list, a choice, a reject that blacklists (also across a restart) and searches
//! again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_opensubtitles;

use std::path::{Path, PathBuf};

use common::{Api, Sandbox, Served};
use fake_opensubtitles::{Behaviour, FakeOs, SRT};
use serde_json::{Value, json};

const MOVIE: &str = "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv";
/// The second English candidate of the fixture (hearing impaired).
const OTHER_SRT: &str = "1\n00:00:01,000 --> 00:00:02,500\n[DOOR CREAKS] Hello there.\n\n";

/// The second candidate (another release, SDH) scores 26: a `min_score` of 20 lets a
/// search take it once the first is rejected.
fn sandbox(fake: &FakeOs) -> Sandbox {
    sandbox_with(fake, 20)
}

fn sandbox_with(fake: &FakeOs, min_score: u32) -> Sandbox {
    let sandbox = Sandbox::new(&format!(
        "[jobs]\nretry_min_delay_secs = 1\nretry_max_delay_secs = 2\n{}",
        fake.config("")
    ));
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    let config = config.replacen(
        "translate_from = []",
        &format!("translate_from = []\nmin_score = {min_score}"),
        1,
    );
    std::fs::write(sandbox.config(), config).unwrap();
    sandbox
}

/// A video with a movie hash the fake knows.
fn big_video(sandbox: &Sandbox, fake: &FakeOs) -> PathBuf {
    let path = sandbox.library().join(MOVIE);
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

fn sha256(text: &str) -> String {
    cuewarden_actors::provenance::content_hash(text.as_bytes())
}

fn downloads_of(fake: &FakeOs, file_id: u64) -> usize {
    fake.with(|s| {
        s.log
            .iter()
            .filter(|l| {
                l.path.starts_with("/download/") && l.path.ends_with(&format!("/{file_id}.srt"))
            })
            .count()
    })
}

#[test]
fn a_written_subtitle_keeps_its_provenance_in_the_job() {
    let fake = FakeOs::start();
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    let subtitle = &job["subtitle"];
    assert_eq!(subtitle["provider"], "opensubtitles", "{job}");
    assert_eq!(subtitle["candidate_id"], "6200001", "{job}");
    assert_eq!(
        subtitle["release"], "Example.Movie.2019.1080p.BluRay.x264-GROUP",
        "{job}"
    );
    assert_eq!(subtitle["score"], 100, "{job}");
    assert_eq!(subtitle["language"], "en");
    assert_eq!(subtitle["forced"], false);
    assert_eq!(subtitle["sdh"], false);
    assert_eq!(subtitle["machine_translated"], false);
    assert_eq!(subtitle["chosen_by"], "search");
    assert!(subtitle["written_at"].is_string(), "{job}");
    let written = std::fs::read(job["output_path"].as_str().unwrap()).unwrap();
    assert_eq!(
        subtitle["content_hash"],
        cuewarden_actors::provenance::content_hash(&written)
    );
    let breakdown = subtitle["breakdown"].as_array().unwrap();
    assert!(breakdown.iter().any(|f| f["factor"] == "hash"), "{job}");

    // A job that wrote nothing says so.
    let other = sandbox.video("Other (2020)/Other.2020.mkv");
    fake.with(|s| s.search_default = Behaviour::Nothing);
    let waiting = request(&daemon, &other);
    let job = daemon.wait_for_job(&waiting, |j| j["status"] == "waiting");
    assert_eq!(job["subtitle"], Value::Null, "{job}");
}

#[test]
fn candidates_are_listed_ranked_and_a_choice_replaces_the_subtitle() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files.insert(6200002, OTHER_SRT.to_owned());
    });
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();

    let (status, body) = daemon.get("/api/v1/jobs/0190a000-0000-7000-8000-000000000000/candidates");
    assert_eq!(status, 404, "{body}");

    let id = request(&daemon, &video);
    let done = daemon.wait_for_job(&id, |j| j["status"] == "done");
    let first = PathBuf::from(done["output_path"].as_str().unwrap());
    let searches = fake.count("/subtitles");

    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(fake.count("/subtitles"), searches + 1, "one search now");
    assert_eq!(list["searched"], json!(["opensubtitles"]), "{list}");
    let candidates = list["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "only English ones: {list}");
    assert_eq!(candidates[0]["id"], "6200001", "{list}");
    assert_eq!(candidates[1]["id"], "6200002", "{list}");
    assert!(candidates[0]["score"].as_u64() >= candidates[1]["score"].as_u64());
    assert_eq!(candidates[1]["hearing_impaired"], true);
    assert_eq!(candidates[0]["blacklisted"], false);
    assert!(
        candidates[0]["breakdown"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
    );

    // A HEAD (a monitoring probe) answers without a search: no rate limit or quota spent.
    let (client, runtime) = daemon.raw();
    let head = runtime.block_on(async {
        client
            .head(format!("{}/api/v1/jobs/{id}/candidates", daemon.base))
            .header("X-Api-Key", common::KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(head, 200);
    assert_eq!(
        fake.count("/subtitles"),
        searches + 1,
        "a HEAD searches nothing"
    );

    // Bad bodies and unknown candidates are refused plainly; the job stays as it is.
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles"}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].is_object() || body["error"].is_string(),
        "{body}"
    );
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "999"}),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.to_string().contains("candidates first"), "{body}");

    // The choice: downloaded once, written, the old file gone, done by the user.
    let downloads = fake.with(|s| s.downloads);
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200002"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.with(|s| s.downloads), downloads + 1);
    assert_eq!(fake.count("/subtitles"), searches + 1, "no second search");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    let chosen = PathBuf::from(job["output_path"].as_str().unwrap());
    assert_eq!(
        chosen.file_name().unwrap(),
        "Example.Movie.2019.1080p.BluRay.x264-GROUP.en.sdh.srt"
    );
    assert_eq!(
        std::fs::read_to_string(&chosen).unwrap().trim(),
        OTHER_SRT.trim()
    );
    assert!(!first.exists(), "the replaced subtitle is removed");
    assert_eq!(job["subtitle"]["candidate_id"], "6200002", "{job}");
    assert_eq!(job["subtitle"]["chosen_by"], "user", "{job}");
    assert_eq!(job["subtitle"]["sdh"], true, "{job}");
    assert_eq!(
        job["subtitle"]["content_hash"],
        sha256(&std::fs::read_to_string(&chosen).unwrap())
    );
    let events = events(&daemon, &id);
    // Newest first.
    let ready = events
        .iter()
        .find(|e| e["type"] == "subtitle.ready")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(ready["source"], "api", "{ready}");
    assert_eq!(ready["payload"]["chosen_by"], "user", "{ready}");
    assert_eq!(
        ready["payload"]["detail"]["previous"]["id"], "6200001",
        "{ready}"
    );
}

#[test]
fn a_choice_whose_download_is_unusable_leaves_the_job_as_it_was() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files
            .insert(6200002, "<html><body>Not found</body></html>".to_owned());
    });
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    let before = daemon.wait_for_job(&id, |j| j["status"] == "done");

    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200002"}),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("unusable"), "{body}");
    let (_, after) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(after["status"], "done");
    assert_eq!(after["subtitle"], before["subtitle"]);
    assert_eq!(
        std::fs::read_to_string(before["output_path"].as_str().unwrap())
            .unwrap()
            .trim(),
        SRT.trim()
    );
}

#[test]
fn a_rejected_subtitle_is_removed_blacklisted_and_never_chosen_again_even_after_a_restart() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files.insert(6200002, OTHER_SRT.to_owned());
    });
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    let first = PathBuf::from(job["output_path"].as_str().unwrap());
    let first_hash = job["subtitle"]["content_hash"].clone();

    // Reject: the file goes, the job searches again and takes the next candidate.
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["removed"], true, "{body}");
    assert_eq!(body["blacklisted"]["id"], "6200001", "{body}");
    let job = daemon.wait_for_job(&id, |j| {
        j["status"] == "done" && j["subtitle"]["candidate_id"] == "6200002"
    });
    assert!(!first.exists(), "the rejected file is removed");
    assert_eq!(
        std::fs::read_to_string(job["output_path"].as_str().unwrap())
            .unwrap()
            .trim(),
        OTHER_SRT.trim()
    );
    assert_eq!(downloads_of(&fake, 6200001), 1, "never downloaded again");
    let rejected = events(&daemon, &id)
        .into_iter()
        .find(|e| e["type"] == "subtitle.rejected")
        .unwrap();
    assert_eq!(rejected["source"], "api");
    assert_eq!(rejected["payload"]["provider"], "opensubtitles");
    assert_eq!(rejected["payload"]["content_hash"], first_hash);

    // Reject that one too: nothing is left, the job waits.
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
    assert_eq!(status, 202, "{body}");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert!(job["output_path"].is_null(), "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .ends_with("; 2 candidate(s) rejected for this video"),
        "{job}"
    );
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
    assert_eq!(status, 409, "nothing to reject: {body}");
    daemon.stop().unwrap();

    // After a restart, the blacklist holds: a retry searches, lists both as blacklisted,
    // downloads neither.
    let daemon = Served::start(&sandbox.config());
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    let candidates = list["candidates"].as_array().unwrap();
    assert!(
        candidates
            .iter()
            .all(|c| c["blacklisted"] == true && c["eligible"] == false),
        "{list}"
    );
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200001"}),
    );
    assert_eq!(status, 422, "{body}");
    let searches = fake.count("/subtitles");
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert_eq!(status, 202, "{body}");
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert!(fake.count("/subtitles") > searches, "the retry searched");
    assert_eq!(downloads_of(&fake, 6200001), 1);
    assert_eq!(downloads_of(&fake, 6200002), 1);
    assert!(!video.with_extension("en.srt").exists());
}

#[test]
fn the_same_content_under_another_id_is_refused_after_its_download() {
    let fake = FakeOs::start();
    // 6200002 serves the very bytes of the rejected 6200001.
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");

    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
    assert_eq!(status, 202, "{body}");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(downloads_of(&fake, 6200002), 1, "downloaded, then refused");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("rejected")
            || events(&daemon, &id)
                .iter()
                .any(|e| e.to_string().contains("rejected for this video")),
        "{job}"
    );
    assert!(!video.with_extension("en.srt").exists());
    assert!(!video.with_extension("en.sdh.srt").exists());
}

#[test]
fn reject_and_candidates_refuse_jobs_in_the_wrong_state() {
    let fake = FakeOs::start();
    fake.with(|s| s.search_default = Behaviour::Hang(std::time::Duration::from_secs(3)));
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "download_in_progress");
    let (status, body) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 409, "running: {body}");
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
    assert_eq!(status, 409, "{body}");
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200001"}),
    );
    assert_eq!(status, 409, "{body}");
}

/// The daemon with its upgrade trigger.
fn serve_with_upgrades(sandbox: &Sandbox) -> (Served, cuewarden::upgrades::UpgradeTrigger) {
    let (sender, receiver) = std::sync::mpsc::channel();
    let daemon = Served::start_with(&sandbox.config(), move |components| {
        sender.send(components.upgrades.clone()).unwrap();
    });
    (daemon, receiver.recv().unwrap())
}

fn upgrade(trigger: &cuewarden::upgrades::UpgradeTrigger) -> Value {
    serde_json::to_value(trigger.request().blocking_recv().unwrap()).unwrap()
}

/// Only the second (weak, 26 points) English candidate is offered at first.
fn offer_only_the_weak_one(fake: &FakeOs) -> Vec<Value> {
    fake.with(|s| {
        let all = s.results.clone();
        s.results.retain(|r| r["id"] != "5100001");
        all
    })
}

#[test]
fn an_upgrade_replaces_a_weak_subtitle_once_and_says_so() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files.insert(6200002, OTHER_SRT.to_owned());
    });
    let all = offer_only_the_weak_one(&fake);
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let (daemon, trigger) = serve_with_upgrades(&sandbox);
    let id = request(&daemon, &video);
    let weak = daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(weak["subtitle"]["score"], 26, "{weak}");
    let weak_path = PathBuf::from(weak["output_path"].as_str().unwrap());

    // The better one appears: the pass takes it.
    fake.with(|s| s.results = all);
    let counts = upgrade(&trigger);
    assert_eq!(counts["ran"], true, "{counts}");
    assert_eq!(counts["due"], 1, "{counts}");
    assert_eq!(counts["upgraded"], 1, "{counts}");
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["status"], "done");
    assert_eq!(job["subtitle"]["candidate_id"], "6200001", "{job}");
    assert_eq!(job["subtitle"]["chosen_by"], "upgrade", "{job}");
    let path = PathBuf::from(job["output_path"].as_str().unwrap());
    assert_eq!(path, video.with_extension("en.srt"));
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), SRT.trim());
    assert!(!weak_path.exists(), "the weak subtitle is removed");
    let upgraded = events(&daemon, &id)
        .into_iter()
        .find(|e| e["type"] == "subtitle.upgraded")
        .unwrap();
    assert_eq!(upgraded["payload"]["old"]["score"], 26, "{upgraded}");
    assert_eq!(upgraded["payload"]["new"]["score"], 100, "{upgraded}");
    assert_eq!(upgraded["payload"]["old"]["id"], "6200002", "{upgraded}");

    // Now good enough: the next pass searches nothing.
    let searches = fake.count("/subtitles");
    let counts = upgrade(&trigger);
    assert_eq!(counts["due"], 0, "{counts}");
    assert_eq!(fake.count("/subtitles"), searches);
}

#[test]
fn an_upgrade_never_writes_the_same_content_again_nor_searches_twice_a_day() {
    let fake = FakeOs::start();
    // Both candidates serve the same bytes: the "better" one is the same subtitle.
    let all = offer_only_the_weak_one(&fake);
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let (daemon, trigger) = serve_with_upgrades(&sandbox);
    let id = request(&daemon, &video);
    let weak = daemon.wait_for_job(&id, |j| j["status"] == "done");
    fake.with(|s| s.results = all);

    let counts = upgrade(&trigger);
    assert_eq!(counts["searched"], 1, "{counts}");
    assert_eq!(counts["upgraded"], 0, "{counts}");
    assert_eq!(counts["failed"], 1, "same content refused: {counts}");
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["subtitle"]["candidate_id"], "6200002", "kept: {job}");
    assert_eq!(
        job["subtitle"]["content_hash"],
        weak["subtitle"]["content_hash"]
    );
    assert!(job["subtitle"]["upgrade_checked_at"].is_string(), "{job}");
    assert!(!video.with_extension("en.srt").exists(), "nothing written");

    // Searched today: the next pass leaves it alone, spending nothing.
    let (searches, downloads) = (fake.count("/subtitles"), fake.with(|s| s.downloads));
    let counts = upgrade(&trigger);
    assert_eq!(counts["due"], 0, "{counts}");
    assert_eq!(fake.count("/subtitles"), searches);
    assert_eq!(fake.with(|s| s.downloads), downloads);
}

#[test]
fn an_exhausted_quota_stops_the_upgrade_pass() {
    let fake = FakeOs::start();
    let all = offer_only_the_weak_one(&fake);
    let sandbox = sandbox(&fake);
    let first = big_video(&sandbox, &fake);
    let second = sandbox
        .library()
        .join("Example Movie (2019)/Example.Movie.2019.Extended.mkv");
    std::fs::copy(&first, &second).unwrap();
    let (daemon, trigger) = serve_with_upgrades(&sandbox);
    let a = request(&daemon, &first);
    let b = request(&daemon, &second);
    daemon.wait_for_job(&a, |j| j["status"] == "done");
    daemon.wait_for_job(&b, |j| j["status"] == "done");
    fake.with(|s| {
        s.results = all;
        s.files.insert(
            6200001,
            "1\n00:00:01,000 --> 00:00:02,000\nBetter.\n\n".to_owned(),
        );
        s.download_default = Behaviour::Quota;
    });

    let (searches, download_calls) = (fake.count("/subtitles"), fake.count("/api/v1/download"));
    let counts = upgrade(&trigger);
    assert_eq!(counts["due"], 2, "{counts}");
    assert_eq!(counts["searched"], 1, "{counts}");
    assert_eq!(counts["failed"], 1, "{counts}");
    assert_eq!(counts["deferred"], 1, "the quota is used up: {counts}");
    assert_eq!(fake.count("/subtitles"), searches + 1);
    assert_eq!(fake.count("/api/v1/download"), download_calls + 1);
    let (_, health) = daemon.get("/health/sources");
    let os = health["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "opensubtitles")
        .unwrap()
        .clone();
    assert_eq!(os["cooldown"], "quota", "{os}");

    // The deferred one stays due, but the provider still cools down: nothing is spent.
    let counts = upgrade(&trigger);
    assert_eq!(counts["due"], 1, "{counts}");
    assert_eq!(counts["deferred"], 1, "{counts}");
    assert_eq!(fake.count("/api/v1/download"), download_calls + 1);
}

#[test]
fn a_waiting_job_can_be_given_a_candidate_below_min_score() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files.insert(6200002, OTHER_SRT.to_owned());
    });
    offer_only_the_weak_one(&fake);
    let sandbox = sandbox_with(&fake, 60);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert!(
        job["error"].as_str().unwrap().contains("below min_score"),
        "{job}"
    );

    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["candidates"][0]["id"], "6200002", "{list}");
    assert_eq!(
        list["candidates"][0]["eligible"], false,
        "below min_score: {list}"
    );
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200002"}),
    );
    assert_eq!(status, 200, "{body}");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert!(job["retry_at"].is_null(), "{job}");
    assert_eq!(job["error"], Value::Null, "{job}");
    assert_eq!(job["subtitle"]["chosen_by"], "user", "{job}");
    assert_eq!(
        std::fs::read_to_string(video.with_extension("en.sdh.srt"))
            .unwrap()
            .trim(),
        OTHER_SRT.trim()
    );
    // A finished job: its wake timer is gone, no search follows.
    let searches = fake.count("/subtitles");
    daemon.stop().unwrap();
    let daemon = Served::start(&sandbox.config());
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(fake.count("/subtitles"), searches);
}

#[test]
fn a_provider_cooling_down_is_listed_as_skipped_and_not_called() {
    let fake = FakeOs::start();
    fake.with(|s| s.download_default = Behaviour::Quota);
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");

    let searches = fake.count("/subtitles");
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(fake.count("/subtitles"), searches, "not called");
    assert_eq!(list["searched"], json!([]), "{list}");
    assert_eq!(list["candidates"], json!([]), "{list}");
    let skipped = &list["skipped"][0];
    assert_eq!(skipped["provider"], "opensubtitles", "{list}");
    assert_eq!(skipped["cooldown"], "quota", "{list}");
    assert!(skipped["until"].is_string(), "{list}");
    assert!(
        skipped["reason"].as_str().unwrap().contains("quota"),
        "{list}"
    );
}

#[test]
fn a_reject_that_would_clash_with_another_unfinished_job_changes_nothing() {
    let fake = FakeOs::start();
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let first = request(&daemon, &video);
    let job = daemon.wait_for_job(&first, |j| j["status"] == "done");
    let written = PathBuf::from(job["output_path"].as_str().unwrap());

    // A second job for the same video and language, running (its search hangs).
    let aside = written.with_extension("bak");
    std::fs::rename(&written, &aside).unwrap();
    fake.with(|s| s.search_default = Behaviour::Hang(std::time::Duration::from_secs(3)));
    let second = request(&daemon, &video);
    assert_ne!(second, first);
    daemon.wait_for_job(&second, |j| j["status"] == "download_in_progress");
    std::fs::rename(&aside, &written).unwrap();

    let (status, body) = daemon.post(&format!("/api/v1/jobs/{first}/reject"), &json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains(&second),
        "names the other job: {body}"
    );
    assert!(written.exists(), "nothing removed");
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{first}"));
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["subtitle"]["candidate_id"], "6200001", "{job}");
}

#[test]
fn a_choice_never_replaces_a_subtitle_cuewarden_did_not_write() {
    let fake = FakeOs::start();
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let own = video.with_extension("en.srt");
    std::fs::write(&own, "1\n00:00:01,000 --> 00:00:02,000\nMine.\n").unwrap();
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "skipped");

    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    let downloads = fake.count("/api/v1/download");
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200001"}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains("not written by cuewarden"),
        "{body}"
    );
    assert_eq!(fake.count("/api/v1/download"), downloads, "no quota spent");
    assert_eq!(
        std::fs::read_to_string(&own).unwrap(),
        "1\n00:00:01,000 --> 00:00:02,000\nMine.\n"
    );
    // Another kind (SDH) has its own name: that choice is written beside it.
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200002"}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(video.with_extension("en.sdh.srt").exists());
    assert!(own.exists());
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["status"], "done", "{job}");
}

#[test]
fn a_machine_translated_subtitle_is_upgraded_whatever_its_score() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files.insert(6200002, OTHER_SRT.to_owned());
    });
    let all = offer_only_the_weak_one(&fake);
    fake.with(|s| {
        s.results[0]["attributes"]["machine_translated"] = json!(true);
    });
    let sandbox = sandbox_with(&fake, 0);
    // Only machine translations are searched again.
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    let config = config.replacen("min_score = 0", "min_score = 0\nupgrade_below_score = 0", 1);
    std::fs::write(sandbox.config(), config).unwrap();
    let video = big_video(&sandbox, &fake);
    let (daemon, trigger) = serve_with_upgrades(&sandbox);
    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(job["subtitle"]["machine_translated"], true, "{job}");

    fake.with(|s| s.results = all);
    let counts = upgrade(&trigger);
    assert_eq!(counts["due"], 1, "{counts}");
    assert_eq!(counts["upgraded"], 1, "{counts}");
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(job["subtitle"]["candidate_id"], "6200001", "{job}");
    assert_eq!(job["subtitle"]["machine_translated"], false, "{job}");
    let upgraded = events(&daemon, &id)
        .into_iter()
        .find(|e| e["type"] == "subtitle.upgraded")
        .unwrap();
    assert_eq!(
        upgraded["payload"]["old"]["machine_translated"], true,
        "{upgraded}"
    );
}

#[test]
fn a_search_that_finds_nothing_leaves_the_last_list_for_a_choice() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files.insert(6200002, OTHER_SRT.to_owned());
    });
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["candidates"].as_array().unwrap().len(), 2, "{list}");

    // The provider fails the next search: the answer is empty, the kept list is not.
    fake.with(|s| s.search_script.push_back(Behaviour::Status(500)));
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["candidates"], json!([]), "{list}");
    assert!(!list["errors"].as_array().unwrap().is_empty(), "{list}");
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "opensubtitles", "id": "6200002"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["subtitle"]["candidate_id"], "6200002", "{body}");
}

#[test]
fn a_jobs_blacklist_is_listed_and_cleared_so_its_candidates_are_taken_again() {
    let fake = FakeOs::start();
    fake.with(|s| {
        s.files.insert(6200002, OTHER_SRT.to_owned());
    });
    let sandbox = sandbox(&fake);
    let video = big_video(&sandbox, &fake);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    let first_hash = job["subtitle"]["content_hash"].clone();

    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/blacklist"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["count"], 0, "{list}");
    assert_eq!(list["entries"], json!([]));

    // Both candidates rejected: the job waits.
    for _ in 0..2 {
        let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
        assert_eq!(status, 202, "{body}");
        daemon.wait_for_job(&id, |j| j["status"] == "done" || j["status"] == "waiting");
    }
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/blacklist"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["job_id"], id.as_str());
    assert_eq!(list["language"], "en");
    assert_eq!(list["path"], video.display().to_string());
    assert_eq!(list["count"], 2, "{list}");
    let first = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "6200001")
        .cloned()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(first["provider"], "opensubtitles");
    assert_eq!(first["content_hash"], first_hash);
    assert_eq!(first["machine_translation"], false);
    assert_eq!(first["job_id"], id.as_str());
    assert!(first["rejected_at"].is_string(), "{first}");
    // A job of another language of the video has none of them.
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    let french = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    let (_, list) = daemon.get(&format!("/api/v1/jobs/{french}/blacklist"));
    assert_eq!(list["count"], 0, "{list}");

    // Same auth, errors and shapes as the other job routes.
    let (client, runtime) = daemon.raw();
    let status_of = |request: reqwest::RequestBuilder| {
        runtime.block_on(async { request.send().await.unwrap().status().as_u16() })
    };
    let url = format!("{}/api/v1/jobs/{id}/blacklist", daemon.base);
    assert_eq!(status_of(client.get(&url)), 401);
    assert_eq!(status_of(client.delete(&url)), 401);
    let (status, body) = daemon.call(client.put(&url).header("X-Api-Key", common::KEY));
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    let unknown = "0190a000-0000-7000-8000-000000000000";
    let (status, body) = daemon.get(&format!("/api/v1/jobs/{unknown}/blacklist"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = daemon.call(
        client
            .delete(format!("{}/api/v1/jobs/{unknown}/blacklist", daemon.base))
            .header("X-Api-Key", common::KEY),
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");

    // Cleared: 200 with the count, one event; the candidates are eligible again and a
    // retry takes the best one.
    let delete = || daemon.call(client.delete(&url).header("X-Api-Key", common::KEY));
    let (status, body) = delete();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cleared"], 2, "{body}");
    assert_eq!(body["id"], id.as_str());
    let cleared = events(&daemon, &id)
        .into_iter()
        .find(|e| e["type"] == "subtitle.blacklist_cleared")
        .unwrap();
    assert_eq!(cleared["source"], "api");
    assert_eq!(cleared["payload"]["cleared"], 2, "{cleared}");
    assert_eq!(cleared["payload"]["status"], "waiting", "{cleared}");
    assert_eq!(cleared["payload"]["entries"].as_array().unwrap().len(), 2);
    let (_, list) = daemon.get(&format!("/api/v1/jobs/{id}/blacklist"));
    assert_eq!(list["count"], 0, "{list}");
    let (status, body) = delete();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cleared"], 0, "{body}");
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    assert!(
        list["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["blacklisted"] == false),
        "{list}"
    );
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert_eq!(status, 202, "{body}");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(job["subtitle"]["candidate_id"], "6200001", "{job}");
    assert_eq!(downloads_of(&fake, 6200001), 2);
}
