//! `[providers.jellyfin]` and the refresh after a write, through the daemon, against a
//! loopback server that speaks Jellyfin's documented endpoints: `GET /Items` (by `Ids=`, and
//! the paged listing with `Path` used to find a video's item), `GET /Items/{id}/RemoteSearch/
//! Subtitles/{lang}`, `GET /Providers/Subtitles/Subtitles/{subtitleId}`, `POST /Items/{id}/
//! RemoteSearch/Subtitles/{subtitleId}` (counted: cuewarden must not use it) and
//! `POST /Items/{id}/Refresh`, which can be told to fail with 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use common::Sandbox;
use serde_json::{Value, json};

const JELLYFIN_KEY: &str = "jf-api-key-42";
const REMOTE_SUBTITLES: &str = include_str!("fixtures/jellyfin_remote_subtitles.json");
const CP1252_FR: &[u8] = include_bytes!("../actors/tests/fixtures/subs/edge_cp1252_fr.srt");
const UTF16LE_FR: &[u8] = include_bytes!("../actors/tests/fixtures/subs/edge_utf16le_bom.srt");
const SAMPLE_ASS: &[u8] = include_bytes!("../actors/tests/fixtures/subs/sample.ass");
const MOVIE_ID: &str = "c2a7e9f14b3d4e8fa6b1d0c9e8f7a6b5";
const HASH_MATCH: &str = "e02a34f56233e3e5e7765144ca8f184f_srt-fre-71234567";
const SDH: &str = "e02a34f56233e3e5e7765144ca8f184f_srt-fre-71239999-sdh";
const MOVIE: &str = "The Quiet Harbor (2021)/The Quiet Harbor (2021).mkv";

#[derive(Default)]
struct State {
    /// Item id → path, as Jellyfin sees it.
    items: Vec<(String, String)>,
    /// Subtitle id → what `GET /Providers/Subtitles/Subtitles/{id}` answers.
    subtitles: HashMap<String, Vec<u8>>,
    /// How many refreshes answer 500 before they succeed (`usize::MAX`: all).
    refresh_failures: usize,
    refreshes: Vec<(String, String)>,
    searches: Vec<String>,
    listings: usize,
    downloads: Vec<String>,
    download_posts: usize,
}

type Shared = web::Data<Arc<Mutex<State>>>;

fn authorized(request: &HttpRequest) -> bool {
    let token = format!("MediaBrowser Token=\"{JELLYFIN_KEY}\"");
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(token.as_str())
}

fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

async fn items(
    request: HttpRequest,
    state: Shared,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    if !authorized(&request) {
        return HttpResponse::Unauthorized().finish();
    }
    let mut state = state.lock().unwrap();
    let all: Vec<Value> = state
        .items
        .iter()
        .map(|(id, path)| json!({"Id": id, "Path": path, "Type": "Movie", "LocationType": "FileSystem"}))
        .collect();
    if let Some(ids) = query_value(&query, "Ids") {
        let found: Vec<Value> = all
            .into_iter()
            .filter(|item| ids.split(',').any(|id| item["Id"] == id))
            .collect();
        return HttpResponse::Ok()
            .json(json!({"Items": found, "TotalRecordCount": found.len(), "StartIndex": 0}));
    }
    // The daemon's index of paths asks for `Fields=Path` only (the Jellyfin socket's polls
    // ask for more, and are not counted).
    if query_value(&query, "Fields") == Some("Path") {
        state.listings += 1;
    }
    let start: usize = query_value(&query, "StartIndex")
        .unwrap_or("0")
        .parse()
        .unwrap();
    let limit: usize = query_value(&query, "Limit")
        .unwrap_or("100")
        .parse()
        .unwrap();
    let page: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    HttpResponse::Ok()
        .json(json!({"Items": page, "TotalRecordCount": all.len(), "StartIndex": start}))
}

async fn remote_search(
    request: HttpRequest,
    state: Shared,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    if !authorized(&request) {
        return HttpResponse::Unauthorized().finish();
    }
    let (item, language) = path.into_inner();
    let mut state = state.lock().unwrap();
    state.searches.push(format!("{item}/{language}"));
    if !state.items.iter().any(|(id, _)| *id == item) {
        return HttpResponse::NotFound().finish();
    }
    if language != "fre" {
        return HttpResponse::Ok().json(json!([]));
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(REMOTE_SUBTITLES)
}

async fn remote_subtitle(
    request: HttpRequest,
    state: Shared,
    path: web::Path<String>,
) -> HttpResponse {
    if !authorized(&request) {
        return HttpResponse::Unauthorized().finish();
    }
    let id = path.into_inner();
    let mut state = state.lock().unwrap();
    state.downloads.push(id.clone());
    match state.subtitles.get(&id) {
        Some(bytes) => HttpResponse::Ok()
            .content_type("application/x-subrip")
            .body(bytes.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn download_post(request: HttpRequest, state: Shared) -> HttpResponse {
    if !authorized(&request) {
        return HttpResponse::Unauthorized().finish();
    }
    state.lock().unwrap().download_posts += 1;
    HttpResponse::NoContent().finish()
}

async fn refresh(request: HttpRequest, state: Shared, path: web::Path<String>) -> HttpResponse {
    if !authorized(&request) {
        return HttpResponse::Unauthorized().finish();
    }
    let mut state = state.lock().unwrap();
    state
        .refreshes
        .push((path.into_inner(), request.query_string().to_owned()));
    if state.refresh_failures > 0 {
        state.refresh_failures = state.refresh_failures.saturating_sub(1);
        return HttpResponse::InternalServerError().body("database is locked");
    }
    HttpResponse::NoContent().finish()
}

/// Starts the fake Jellyfin on port 0; returns its base URL and its state.
fn fake_jellyfin(state: State) -> (String, Arc<Mutex<State>>) {
    let shared = Arc::new(Mutex::new(state));
    let data = web::Data::new(shared.clone());
    let url = common::loopback::serve(move |config| {
        config
            .app_data(data.clone())
            .route("/Items", web::get().to(items))
            .service(
                // GET searches by language; POST downloads by subtitle id.
                web::resource("/Items/{id}/RemoteSearch/Subtitles/{language}")
                    .route(web::get().to(remote_search))
                    .route(web::post().to(download_post)),
            )
            .route("/Items/{id}/Refresh", web::post().to(refresh))
            .route(
                "/Providers/Subtitles/Subtitles/{id}",
                web::get().to(remote_subtitle),
            );
    });
    (url, shared)
}

/// A sandbox whose `[jellyfin]` is the fake, its `/media/movies` mapped to the library.
fn sandbox(jellyfin_url: &str, extra: &str) -> Sandbox {
    let sandbox = Sandbox::new("");
    let mut config = std::fs::read_to_string(sandbox.config()).unwrap();
    config.push_str(&format!(
        "[jellyfin]\nurl = \"{jellyfin_url}\"\napi_key = \"{JELLYFIN_KEY}\"\n\
         [[path_mappings]]\nfrom = \"/media/movies\"\nto = {:?}\n{extra}",
        sandbox.library().display().to_string()
    ));
    std::fs::write(sandbox.config(), config).unwrap();
    sandbox
}

fn jellyfin_knows_the_movie(subtitles: &[(&str, &[u8])]) -> State {
    State {
        items: vec![
            (
                "0123456789abcdef0123456789abcdef".to_owned(),
                "/media/movies/Other (2020)/Other (2020).mkv".to_owned(),
            ),
            (MOVIE_ID.to_owned(), format!("/media/movies/{MOVIE}")),
        ],
        subtitles: subtitles
            .iter()
            .map(|(id, bytes)| ((*id).to_owned(), bytes.to_vec()))
            .collect(),
        ..State::default()
    }
}

fn events(daemon: &common::Api, id: &str) -> Vec<Value> {
    let (status, body) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

fn request_fr(daemon: &common::Api, video: &Path) -> String {
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    body["jobs"][0]["id"].as_str().unwrap().to_owned()
}

fn finished(daemon: &common::Api, id: &str) -> Value {
    daemon.wait_for_job(id, |job| {
        !matches!(
            job["status"].as_str(),
            Some("pending" | "download_queued" | "download_in_progress")
        )
    })
}

#[test]
fn a_job_finds_its_subtitle_through_jellyfin_remote_search_and_refreshes_the_item() {
    let (url, fake) = fake_jellyfin(jellyfin_knows_the_movie(&[(HASH_MATCH, CP1252_FR)]));
    let sandbox = sandbox(&url, "");
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();

    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "done", "{job}");
    let written = video.with_file_name("The Quiet Harbor (2021).fr.srt");
    assert_eq!(job["output_path"], json!(written));

    let bytes = std::fs::read(&written).unwrap();
    let text = String::from_utf8(bytes).expect("written as UTF-8");
    assert!(
        text.starts_with("1\n00:00:01,000 --> 00:00:03,000\n"),
        "no BOM: {text:?}"
    );
    assert!(text.contains("Café déjà vu — naïve “quotes”."), "{text}");
    assert!(!text.contains('\r'));
    let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);

    let events = events(&daemon, &id);
    let ready = event(&events, "subtitle.ready");
    assert_eq!(ready["payload"]["producer"], "jellyfin");
    assert_eq!(ready["payload"]["detail"]["id"], HASH_MATCH);
    assert_eq!(
        ready["payload"]["detail"]["written"]["encoding"],
        "windows-1252"
    );
    let refreshed = event(&events, "media_server.refreshed");
    assert_eq!(
        refreshed["payload"],
        json!({"server": "jellyfin", "item_id": MOVIE_ID, "attempts": 1, "status": "done"})
    );
    {
        let fake = fake.lock().unwrap();
        assert_eq!(
            fake.searches,
            [format!("{MOVIE_ID}/fre")],
            "searched by item id, in ISO 639-2/B"
        );
        assert_eq!(fake.downloads, [HASH_MATCH], "the hash match, fetched once");
        assert_eq!(
            fake.download_posts, 0,
            "Jellyfin is never asked to write a copy itself"
        );
        assert_eq!(fake.refreshes.len(), 1);
        assert_eq!(fake.refreshes[0].0, MOVIE_ID);
        assert!(
            fake.refreshes[0].1.contains("metadataRefreshMode=Default"),
            "{}",
            fake.refreshes[0].1
        );
    }

    // The file is recognised: asking again skips the language.
    let again = request_fr(&daemon, &video);
    let job = finished(&daemon, &again);
    assert_eq!(job["status"], "skipped", "{job}");
    assert_eq!(
        fake.lock().unwrap().downloads.len(),
        1,
        "nothing downloaded twice"
    );
    let names: Vec<_> = std::fs::read_dir(video.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the video and one subtitle, no temporary file: {names:?}"
    );
}

#[test]
fn a_garbage_candidate_is_skipped_for_the_next_one() {
    let html: &[u8] =
        b"<!DOCTYPE html><html><head><title>Download limit exceeded</title></head></html>";
    let (url, fake) = fake_jellyfin(jellyfin_knows_the_movie(&[
        (HASH_MATCH, html),
        (SDH, UTF16LE_FR),
    ]));
    let sandbox = sandbox(&url, "");
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();

    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "done", "{job}");
    let written = video.with_file_name("The Quiet Harbor (2021).fr.sdh.srt");
    assert_eq!(job["output_path"], json!(written));
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(text.contains("Ça va?"), "{text}");
    assert_eq!(fake.lock().unwrap().downloads, [HASH_MATCH, SDH]);
}

#[test]
fn a_refresh_that_fails_is_retried_and_the_job_still_ends_done() {
    let mut state = jellyfin_knows_the_movie(&[(HASH_MATCH, CP1252_FR)]);
    state.refresh_failures = 2;
    let (url, fake) = fake_jellyfin(state);
    let sandbox = sandbox(&url, "");
    let video = sandbox.video(MOVIE);
    let daemon = common::Served::start_with(&sandbox.config(), |components| {
        components.refresh_retry.first_delay = Duration::from_millis(20);
    });

    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "done", "{job}");
    let refreshed = event(&events(&daemon, &id), "media_server.refreshed").clone();
    assert_eq!(refreshed["payload"]["attempts"], 3, "{refreshed}");
    assert_eq!(fake.lock().unwrap().refreshes.len(), 3);
    // The item id came from the path: Jellyfin's listing, through [[path_mappings]].
    assert!(fake.lock().unwrap().listings >= 1);
}

#[test]
fn a_refresh_that_keeps_failing_never_fails_the_subtitle() {
    let mut state = jellyfin_knows_the_movie(&[(HASH_MATCH, CP1252_FR)]);
    state.refresh_failures = usize::MAX;
    let (url, fake) = fake_jellyfin(state);
    let sandbox = sandbox(&url, "");
    let video = sandbox.video(MOVIE);
    let daemon = common::Served::start_with(&sandbox.config(), |components| {
        components.refresh_retry.first_delay = Duration::from_millis(10);
        components.refresh_retry.retries = 2;
    });

    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "done", "{job}");
    assert!(PathBuf::from(job["output_path"].as_str().unwrap()).is_file());
    let failed = event(&events(&daemon, &id), "media_server.refresh_failed").clone();
    assert_eq!(failed["payload"]["attempts"], 3, "{failed}");
    assert!(
        failed["payload"]["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 500"),
        "{failed}"
    );
    assert_eq!(fake.lock().unwrap().refreshes.len(), 3);
}

#[test]
fn refresh_off_and_provider_off_are_respected() {
    let (url, fake) = fake_jellyfin(jellyfin_knows_the_movie(&[(HASH_MATCH, CP1252_FR)]));
    let sandbox = sandbox(
        &url,
        "[providers.jellyfin]\nenabled = false\n[notify.jellyfin]\nrefresh = false\n",
    );
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "waiting", "{job}");
    assert!(fake.lock().unwrap().searches.is_empty());
}

fn season_pack() -> Vec<u8> {
    use std::io::Write as _;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    for episode in 1..=3 {
        writer
            .start_file(
                format!("Show.S01.FRENCH/Show.S01E0{episode}.WEB.fr.srt"),
                options,
            )
            .unwrap();
        let text = format!("1\r\n00:00:01,000 --> 00:00:02,000\r\népisode {episode}\r\n");
        writer.write_all(&encoding_free_latin1(&text)).unwrap();
    }
    for junk in [
        "Show.S01.FRENCH/info.nfo",
        "__MACOSX/Show.S01.FRENCH/._Show.S01E02.WEB.fr.srt",
    ] {
        writer.start_file(junk, options).unwrap();
        writer.write_all(b"\0\x05junk").unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The text in ISO 8859-1 (what windows-1252 is for these characters), as old packs are.
fn encoding_free_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

#[test]
fn a_season_pack_gives_the_episode_its_own_subtitle() {
    let episode = "Show/Season 01/Show S01E02.mkv";
    let pack = season_pack();
    let mut state = jellyfin_knows_the_movie(&[(HASH_MATCH, &pack)]);
    state.items.push((
        "feedfacefeedfacefeedfacefeedface".to_owned(),
        format!("/media/movies/{episode}"),
    ));
    let (url, _fake) = fake_jellyfin(state);
    let sandbox = sandbox(&url, "");
    let video = sandbox.video(episode);
    let daemon = sandbox.serve();

    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "done", "{job}");
    let written = video.with_file_name("Show S01E02.fr.srt");
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        "1\n00:00:01,000 --> 00:00:02,000\népisode 2\n\n"
    );
    let ready = event(&events(&daemon, &id), "subtitle.ready").clone();
    assert_eq!(
        ready["payload"]["detail"]["written"]["archive_entry"],
        "Show.S01.FRENCH/Show.S01E02.WEB.fr.srt"
    );
}

#[test]
fn an_ass_subtitle_is_kept_as_ass() {
    let (url, _fake) = fake_jellyfin(jellyfin_knows_the_movie(&[(HASH_MATCH, SAMPLE_ASS)]));
    let sandbox = sandbox(&url, "");
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "done", "{job}");
    let written = video.with_file_name("The Quiet Harbor (2021).fr.ass");
    assert_eq!(job["output_path"], json!(written));
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(
        text.contains("{\\i1}Italic{\\i0} and {\\an8}top-positioned"),
        "{text}"
    );
    assert!(!text.contains('\r'));
}

#[test]
fn a_video_jellyfin_has_not_scanned_yet_waits() {
    let (url, fake) = fake_jellyfin(jellyfin_knows_the_movie(&[(HASH_MATCH, CP1252_FR)]));
    let sandbox = sandbox(&url, "");
    let video = sandbox.video("New (2026)/New (2026).mkv");
    let daemon = sandbox.serve();
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr", "en"]}),
    );
    assert_eq!(status, 202, "{body}");
    for job in body["jobs"].as_array().unwrap() {
        let job = finished(&daemon, job["id"].as_str().unwrap());
        assert_eq!(job["status"], "waiting", "{job}");
        let reason = format!(
            "no {} subtitle found (searched jellyfin)",
            job["language"].as_str().unwrap()
        );
        assert_eq!(job["error"], reason.as_str(), "{job}");
    }
    let fake = fake.lock().unwrap();
    assert_eq!(
        fake.listings, 1,
        "the path was looked up in Jellyfin's library, once for both jobs"
    );
    assert!(fake.searches.is_empty() && fake.downloads.is_empty());
    assert!(!video.with_file_name("New (2026).fr.srt").exists());
}

#[test]
fn a_library_root_that_is_a_symlink_still_finds_the_item() {
    let (url, fake) = fake_jellyfin(jellyfin_knows_the_movie(&[(HASH_MATCH, CP1252_FR)]));
    let sandbox = sandbox(&url, "");
    // The configured root (and the mapping's `to`) is a symlink; jobs are keyed by real paths.
    let real = sandbox.dir.path().join("disk1");
    std::fs::remove_dir(sandbox.library()).unwrap();
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, sandbox.library()).unwrap();
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["status"], "done", "{job}");
    assert!(job["path"].as_str().unwrap().contains("/disk1/"), "{job}");
    let refreshed = event(&events(&daemon, &id), "media_server.refreshed").clone();
    assert_eq!(refreshed["payload"]["item_id"], MOVIE_ID);
    assert_eq!(fake.lock().unwrap().searches, [format!("{MOVIE_ID}/fre")]);
}

#[test]
fn a_users_choice_through_jellyfins_plugins_is_written_and_refreshes_the_item() {
    let (url, fake) = fake_jellyfin(jellyfin_knows_the_movie(&[
        (HASH_MATCH, CP1252_FR),
        (SDH, UTF16LE_FR),
    ]));
    let sandbox = sandbox(&url, "");
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let id = request_fr(&daemon, &video);
    let job = finished(&daemon, &id);
    assert_eq!(job["subtitle"]["candidate_id"], HASH_MATCH, "{job}");
    let first = video.with_file_name("The Quiet Harbor (2021).fr.srt");
    let refreshes = fake.lock().unwrap().refreshes.len();

    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["searched"], json!(["jellyfin"]), "{list}");
    let ids: Vec<&str> = list["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [HASH_MATCH, SDH], "{list}");

    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": "jellyfin", "id": SDH}),
    );
    assert_eq!(status, 200, "{body}");
    let written = video.with_file_name("The Quiet Harbor (2021).fr.sdh.srt");
    assert_eq!(body["subtitle"]["path"], json!(written), "{body}");
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(text.contains("Ça va?"), "{text}");
    assert!(!first.exists(), "the replaced subtitle is removed");
    assert_eq!(fake.lock().unwrap().refreshes.len(), refreshes + 1);
    let events = events(&daemon, &id);
    let refreshed = event(&events, "media_server.refreshed");
    assert_eq!(refreshed["source"], "api", "{refreshed}");
    assert_eq!(refreshed["payload"]["item_id"], MOVIE_ID, "{refreshed}");
}
