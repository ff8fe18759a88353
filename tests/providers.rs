//! Subdl, Podnapisi and Gestdown through the in-process daemon, against loopback fakes that
//! speak their protocols (tests/fake_providers): a job gets its subtitle from each (a ZIP,
//! a season pack, a raw SRT with BOM and CRLF), each error shape ends in the right cooldown
//! or health state, a provider down or hanging does not stop the others, and the configured
//! priority order is the order they are listed (and asked) in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_providers;

use std::path::{Path, PathBuf};

use common::{Api, Sandbox};
use fake_providers::{Behaviour, Fake, podnapisi_item, srt, zip};
use serde_json::{Value, json};

const MOVIE: &str = "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv";
const EPISODE: &str = "Example Show (2010)/Season 02/Example.Show.S02E06.720p.WEB-DL.x264-GRP.mkv";

fn sandbox(config: &str) -> Sandbox {
    Sandbox::new(&format!(
        "[jobs]\nretry_min_delay_secs = 1\nretry_max_delay_secs = 2\n{config}"
    ))
}

fn request(daemon: &Api, video: &Path, language: &str) -> String {
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": [language]}),
    );
    assert_eq!(status, 202, "{body}");
    body["jobs"][0]["id"].as_str().unwrap().to_owned()
}

fn ready_event(daemon: &Api, id: &str) -> Value {
    let (status, body) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "subtitle.ready")
        .cloned()
        .unwrap_or_else(|| panic!("no subtitle.ready in {body}"))
}

fn providers(daemon: &Api) -> Vec<Value> {
    let (status, body) = daemon.get("/health/sources");
    assert_eq!(status, 200, "{body}");
    body["providers"].as_array().unwrap().clone()
}

fn health(daemon: &Api, name: &str) -> Value {
    providers(daemon)
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} on /health/sources"))
}

fn sidecar(video: &Path, language: &str) -> PathBuf {
    video.with_extension(format!("{language}.srt"))
}

#[test]
fn subdl_finds_the_movie_by_name_and_its_zip_is_written_as_utf8() {
    let subdl = Fake::subdl();
    let sandbox = sandbox(&subdl.config(""));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video, "fr");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    let written = sidecar(&video, "fr");
    assert_eq!(job["output_path"], json!(written));
    // The archive's entry is cp1252 with CRLF: written as UTF-8 with `\n`.
    let text = std::fs::read_to_string(&written).unwrap();
    assert_eq!(
        text,
        "1\n00:00:01,000 --> 00:00:03,000\nCafé déjà vu — naïve “quotes”.\n\n\
         2\n00:00:03,500 --> 00:00:05,000\nÇa va?\n\n"
    );

    let ready = ready_event(&daemon, &id);
    assert_eq!(ready["payload"]["producer"], "subdl");
    let detail = &ready["payload"]["detail"];
    assert_eq!(detail["id"], "/subtitle/3197651-3213944.zip", "{detail}");
    // The release named like the video was chosen of the two listed: full marks.
    assert_eq!(
        detail["release"], "Example.Movie.2019.1080p.BluRay.x264-GROUP",
        "{detail}"
    );
    assert_eq!(detail["score"], 100, "{detail}");
    assert_eq!(
        detail["written"]["archive_entry"],
        "Example.Movie.2019.1080p.BluRay.x264-GROUP.fr.srt"
    );

    let searches = subdl.requests("/api/v1/subtitles");
    assert_eq!(searches.len(), 1);
    assert_eq!(
        searches[0].query,
        "api_key=subdl-test-key&languages=FR&type=movie&film_name=example+movie&year=2019\
         &subs_per_page=30&releases=1&hi=1"
    );
    assert_eq!(subdl.count("/subtitle/3197651-3213944.zip"), 1);
    assert_eq!(health(&daemon, "subdl")["state"], "ok");
}

#[test]
fn a_subdl_season_pack_gives_the_videos_episode() {
    let subdl = Fake::subdl();
    let pack = zip(&[
        (
            "__MACOSX/._Example.Show.S02E06.srt",
            b"\x00\x05junk".as_slice(),
        ),
        ("Example.Show.S02E05.srt", srt("Episode five.").as_bytes()),
        ("Example.Show.S02E06.srt", srt("Episode six.").as_bytes()),
        ("Example.Show.S02E07.srt", srt("Episode seven.").as_bytes()),
        ("info.nfo", b"release notes".as_slice()),
    ]);
    subdl.with(|s| {
        s.shows = vec![json!({"sd_id": 7, "type": "tv", "name": "Example Show", "imdb_id": "tt0012345", "tmdb_id": 1418, "year": 2010})];
        s.results = vec![json!({
            "release_name": "Example.Show.S02.720p.WEB-DL.x264-GRP", "name": "pack.zip",
            "language": "EN", "url": "/subtitle/55-66.zip", "season": 2, "episode": null,
            "episode_from": 1, "episode_end": 10, "full_season": true, "hi": false, "releases": []
        })];
        s.file = pack;
    });
    let sandbox = sandbox(&subdl.config(""));
    let video = sandbox.video(EPISODE);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let text = std::fs::read_to_string(sidecar(&video, "en")).unwrap();
    assert!(text.contains("Episode six."), "{text}");
    let detail = &ready_event(&daemon, &id)["payload"]["detail"];
    assert_eq!(
        detail["written"]["archive_entry"],
        "Example.Show.S02E06.srt"
    );
    let query = &subdl.requests("/api/v1/subtitles")[0].query;
    assert!(
        query.contains(
            "languages=EN&type=tv&film_name=example+show&season_number=2&episode_number=6"
        ),
        "{query}"
    );
}

#[test]
fn subdl_nothing_found_waits_with_the_reason() {
    let subdl = Fake::subdl();
    subdl.with(|s| s.search_default = Behaviour::Nothing);
    let sandbox = sandbox(&subdl.config(""));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "fr");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "no fr subtitle found (searched subdl)",
        "{job}"
    );
    assert_eq!(health(&daemon, "subdl")["state"], "ok");
    assert_eq!(subdl.count("/subtitle/"), 0);
}

#[test]
fn subdl_ids_it_does_not_know_are_searched_again_by_name() {
    let subdl = Fake::subdl();
    subdl.with(|s| s.unknown_ids = true);
    let sandbox = sandbox(&subdl.config(""));
    let video = sandbox.video(
        "Example Movie (2019) [imdbid-tt0012345]/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "fr");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let queries: Vec<String> = subdl
        .requests("/api/v1/subtitles")
        .into_iter()
        .map(|l| l.query)
        .collect();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert!(
        queries[0].contains("&type=movie&imdb_id=tt0012345&"),
        "{queries:?}"
    );
    assert!(
        queries[1].contains("&type=movie&film_name=example+movie&year=2019&"),
        "{queries:?}"
    );
}

#[test]
fn a_refused_subdl_key_is_said_plainly_and_waits() {
    let subdl = Fake::subdl();
    let config = subdl
        .config("")
        .replace(fake_providers::SUBDL_KEY, "wrong-key");
    let sandbox = sandbox(&config);
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "fr");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "every subtitle provider is cooling down; subdl: bad credentials: HTTP 403 from Subdl"
        ),
        "{error}"
    );
    let state = health(&daemon, "subdl");
    assert_eq!(state["state"], "bad_credentials", "{state}");
    assert_eq!(state["cooldown"], "auth", "{state}");
}

#[test]
fn a_subdl_429_cools_it_down_and_the_job_recovers_after_retry_after() {
    let subdl = Fake::subdl();
    subdl.with(|s| s.search_script.push_back(Behaviour::RateLimited(2)));
    let sandbox = sandbox(&subdl.config(""));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "fr");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(job["error"], "every subtitle provider is cooling down");
    let state = health(&daemon, "subdl");
    assert_eq!(state["state"], "cooling_down", "{state}");
    assert_eq!(state["cooldown"], "rate_limit", "{state}");
    let limited_at = subdl.requests("/api/v1/subtitles")[0].at;
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let searches = subdl.requests("/api/v1/subtitles");
    assert_eq!(searches.len(), 2, "one search, then one after the cooldown");
    assert!(
        searches[1].at.duration_since(limited_at) >= std::time::Duration::from_secs(2),
        "no request before the cooldown ended"
    );
}

#[test]
fn the_subdl_download_limit_is_a_quota_cooldown() {
    let subdl = Fake::subdl();
    subdl.with(|s| s.download_default = Behaviour::Limit);
    let sandbox = sandbox(&subdl.config(""));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "fr");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "every subtitle provider is cooling down",
        "{job}"
    );
    let state = health(&daemon, "subdl");
    assert_eq!(state["cooldown"], "quota", "{state}");
    assert_eq!(state["quota_remaining"], 0, "{state}");
    assert!(!sidecar(&video, "fr").exists());
}

#[test]
fn podnapisi_pages_skip_duplicates_and_multi_cd_and_write_the_zip() {
    let podnapisi = Fake::podnapisi();
    podnapisi.with(|s| {
        let good = s.results[0].clone();
        s.results = vec![
            podnapisi_item(
                "CDx2",
                "en",
                2,
                &["Example.Movie.2019.1080p.BluRay.x264-GROUP"],
            ),
            podnapisi_item(
                "Oth1",
                "en",
                1,
                &["Example.Movie.2019.720p.WEB-DL.x264-OTHER"],
            ),
            good.clone(),
            good,
        ];
        s.per_page = 2;
    });
    let sandbox = sandbox(&podnapisi.config(""));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let text = std::fs::read_to_string(sidecar(&video, "en")).unwrap();
    assert!(text.contains("From Podnapisi."), "{text}");
    let detail = &ready_event(&daemon, &id)["payload"]["detail"];
    assert_eq!(detail["id"], "GMso", "{detail}");
    // GMso once (a duplicate on page 2), Oth1; the two-CD one skipped.
    assert_eq!(detail["candidates"], 2, "{detail}");

    let searches = podnapisi.requests("/subtitles/search/advanced");
    assert_eq!(searches.len(), 2, "both pages read");
    assert_eq!(
        searches[0].query,
        "keywords=example+movie&language=en&year=2019&movie_type=movie"
    );
    assert!(
        searches[1].query.ends_with("&page=2"),
        "{}",
        searches[1].query
    );
    assert!(
        searches
            .iter()
            .all(|s| s.accept.as_deref() == Some("application/json"))
    );
    let downloads = podnapisi.requests("/subtitles/GMso/download");
    assert_eq!(downloads.len(), 1);
    assert_eq!(downloads[0].query, "container=zip");
}

#[test]
fn a_podnapisi_html_page_is_an_unreadable_answer_and_cools_it_down() {
    let podnapisi = Fake::podnapisi();
    podnapisi.with(|s| s.search_default = Behaviour::Garbage);
    let sandbox = sandbox(&podnapisi.config(""));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "en");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "every subtitle provider is cooling down",
        "{job}"
    );
    let state = health(&daemon, "podnapisi");
    assert_eq!(state["cooldown"], "parse", "{state}");
    assert!(
        state["reason"]
            .as_str()
            .unwrap()
            .contains("Podnapisi search answer is not its JSON"),
        "{state}"
    );
}

#[test]
fn a_truncated_zip_is_refused_and_the_next_candidate_is_tried() {
    let podnapisi = Fake::podnapisi();
    let subdl = Fake::subdl();
    podnapisi.with(|s| s.download_default = Behaviour::Garbage);
    subdl.with(|s| {
        s.results[0]["language"] = json!("EN");
        s.results[0]["releases"] = json!(["Example.Movie.2019.1080p.BluRay.x264-OTHER"]);
        s.results[0]["release_name"] = json!("Example.Movie.2019.1080p.BluRay.x264-OTHER");
    });
    let sandbox = sandbox(&format!("{}{}", podnapisi.config(""), subdl.config("")));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let ready = ready_event(&daemon, &id);
    assert_eq!(ready["payload"]["producer"], "subdl", "{ready}");
    assert_eq!(podnapisi.count("/subtitles/GMso/download"), 1);
}

#[test]
fn gestdown_finds_the_show_and_its_raw_srt_is_written_without_bom_and_crlf() {
    let gestdown = Fake::gestdown();
    let sandbox = sandbox(&gestdown.config(""));
    let video = sandbox.video(EPISODE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let bytes = std::fs::read(sidecar(&video, "en")).unwrap();
    assert!(!bytes.starts_with(b"\xef\xbb\xbf"), "BOM kept");
    assert!(!bytes.contains(&b'\r'), "CRLF kept");
    assert_eq!(
        String::from_utf8(bytes).unwrap().trim(),
        srt("From Gestdown.").trim()
    );
    let detail = &ready_event(&daemon, &id)["payload"]["detail"];
    // The one still being translated is not a candidate.
    assert_eq!(
        detail["id"], "1c7e1d27-aaaa-4bbb-8ccc-000000000001",
        "{detail}"
    );
    assert_eq!(detail["candidates"], 1, "{detail}");
    let paths: Vec<String> = gestdown.requests("/").into_iter().map(|l| l.path).collect();
    assert_eq!(
        paths,
        [
            "/shows/search/example%20show",
            "/subtitles/get/8a3f2c4e-0000-4000-8000-000000000001/2/6/eng",
            "/subtitles/download/1c7e1d27-aaaa-4bbb-8ccc-000000000001",
        ]
    );

    // A second episode of the show: the show is not looked up again; a movie asks nothing.
    let other =
        sandbox.video("Example Show (2010)/Season 02/Example.Show.S02E07.720p.WEB-DL.x264-GRP.mkv");
    let other_id = request(&daemon, &other, "en");
    daemon.wait_for_job(&other_id, |j| j["status"] == "done");
    assert_eq!(gestdown.count("/shows/"), 1);
    let movie = sandbox.video(MOVIE);
    let movie_id = request(&daemon, &movie, "en");
    let job = daemon.wait_for_job(&movie_id, |j| j["status"] == "waiting");
    assert_eq!(job["error"], "no en subtitle found (searched gestdown)");
    assert_eq!(gestdown.count("/"), 5);
}

#[test]
fn a_tvdb_id_in_the_folder_finds_the_show_by_id_and_an_unknown_show_finds_nothing() {
    let gestdown = Fake::gestdown();
    let sandbox = sandbox(&gestdown.config(""));
    let video = sandbox.video(
        "Renamed Show (2010) [tvdbid-80379]/Season 02/Renamed.Show.S02E06.720p.WEB-DL.x264-GRP.mkv",
    );
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(
        gestdown.requests("/shows/")[0].path,
        "/shows/external/tvdb/80379"
    );

    let unknown = sandbox.video("Nobody Knows (2001)/Season 01/Nobody.Knows.S01E01.mkv");
    let unknown_id = request(&daemon, &unknown, "en");
    let job = daemon.wait_for_job(&unknown_id, |j| j["status"] == "waiting");
    assert_eq!(job["error"], "no en subtitle found (searched gestdown)");
    assert_eq!(health(&daemon, "gestdown")["state"], "ok");
    // Another episode of the unknown show: Gestdown is not asked for the show again.
    let next = sandbox.video("Nobody Knows (2001)/Season 01/Nobody.Knows.S01E02.mkv");
    let next_id = request(&daemon, &next, "en");
    daemon.wait_for_job(&next_id, |j| j["status"] == "waiting");
    assert_eq!(gestdown.count("/shows/search/nobody%20knows"), 1);
}

#[test]
fn gestdown_refreshing_is_a_short_rate_limit_and_its_html_download_a_quota() {
    let gestdown = Fake::gestdown();
    gestdown.with(|s| s.search_script.push_back(Behaviour::Limit));
    let first = sandbox(&gestdown.config(""));
    let video = first.video(EPISODE);
    let daemon = first.serve();
    let id = request(&daemon, &video, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let state = health(&daemon, "gestdown");
    assert_eq!(state["cooldown"], "rate_limit", "{state}");
    let until = state["cooling_until"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let left = until.duration_since(jiff::Timestamp::now());
    assert!(
        left <= jiff::SignedDuration::from_secs(30) && left > jiff::SignedDuration::from_secs(20),
        "{left:?}"
    );

    let limited = Fake::gestdown();
    limited.with(|s| s.download_default = Behaviour::Limit);
    let second = sandbox(&limited.config(""));
    let video = second.video(EPISODE);
    let daemon = second.serve();
    let id = request(&daemon, &video, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let state = health(&daemon, "gestdown");
    assert_eq!(state["cooldown"], "quota", "{state}");
    assert!(!sidecar(&video, "en").exists());
}

#[test]
fn a_provider_down_or_hanging_does_not_stop_the_others() {
    let subdl = Fake::subdl();
    let podnapisi = Fake::podnapisi();
    let gestdown = Fake::gestdown();
    subdl.with(|s| s.search_default = Behaviour::Status(503));
    gestdown.with(|s| s.search_default = Behaviour::Hang(std::time::Duration::from_secs(3)));
    let sandbox = sandbox(&format!(
        "{}{}{}",
        subdl.config(""),
        gestdown.config(""),
        podnapisi.config("")
    ));
    let daemon = sandbox.serve();

    // A movie: Subdl answers 503, Podnapisi has it.
    let movie = sandbox.video(MOVIE);
    let id = request(&daemon, &movie, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(
        ready_event(&daemon, &id)["payload"]["producer"],
        "podnapisi"
    );

    // An episode: Gestdown hangs past its 1 s timeout; Podnapisi still answers.
    podnapisi.with(|s| {
        s.results = vec![json!({
            "id": "Ep26", "language": "en", "flags": [], "num_cds": 1,
            "releases": ["Example.Show.S02E06.720p.WEB-DL.x264-GRP"], "custom_releases": [],
            "stats": {"downloads": 3},
            "movie": {"title": "Example Show", "year": 2010, "type": "tv-series",
                      "episode_info": {"season": 2, "episode": 6}}
        })];
    });
    let episode = sandbox.video(EPISODE);
    let id = request(&daemon, &episode, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(
        ready_event(&daemon, &id)["payload"]["producer"],
        "podnapisi"
    );
    let query = &podnapisi
        .requests("/subtitles/search/advanced")
        .last()
        .unwrap()
        .query
        .clone();
    assert_eq!(
        query,
        "keywords=example+show&language=en&seasons=2&episodes=6&movie_type=tv-series&movie_type=mini-series"
    );
    assert_eq!(gestdown.count("/subtitles/get/"), 1, "gestdown was asked");
    // One failure each is not yet a cooldown (three in a row are).
    assert_eq!(health(&daemon, "subdl")["state"], "ok");
    assert_eq!(health(&daemon, "gestdown")["state"], "ok");
}

#[test]
fn the_configured_order_is_the_priority_order() {
    let subdl = Fake::subdl();
    let podnapisi = Fake::podnapisi();
    let gestdown = Fake::gestdown();
    let sandbox = sandbox(&format!(
        "[providers]\norder = [\"gestdown\", \"podnapisi\"]\n{}{}{}",
        subdl.config(""),
        podnapisi.config(""),
        gestdown.config("")
    ));
    let daemon = sandbox.serve();
    let names: Vec<Value> = providers(&daemon)
        .into_iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("gestdown"), json!("podnapisi"), json!("subdl")]
    );

    // Asked in that order: Gestdown first, then Podnapisi, then Subdl.
    let episode = sandbox.video(EPISODE);
    let id = request(&daemon, &episode, "en");
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    let gestdown_at = gestdown.requests("/subtitles/get/")[0].at;
    let podnapisi_at = podnapisi.requests("/subtitles/search/advanced")[0].at;
    let subdl_at = subdl.requests("/api/v1/subtitles")[0].at;
    assert!(gestdown_at < podnapisi_at && podnapisi_at < subdl_at);
}

#[test]
fn three_5xx_in_a_row_cool_a_provider_down_as_unavailable() {
    let podnapisi = Fake::podnapisi();
    podnapisi.with(|s| s.search_default = Behaviour::Status(502));
    let sandbox = sandbox(&podnapisi.config(""));
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request(&daemon, &video, "en");
    // The first failures are retried on the job's backoff, each said plainly.
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(
        job["error"], "podnapisi: provider unavailable: HTTP 502",
        "{job}"
    );
    let job = daemon.wait_for_job(&id, |j| {
        j["error"] == "every subtitle provider is cooling down"
    });
    assert_eq!(job["status"], "waiting", "{job}");
    let state = health(&daemon, "podnapisi");
    assert_eq!(state["cooldown"], "unavailable", "{state}");
    assert_eq!(podnapisi.count("/subtitles/search/advanced"), 3);
}
