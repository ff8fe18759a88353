//! Loopback Subdl, Podnapisi and Gestdown servers on port 0, each speaking its documented
//! protocol (README "Subtitle providers"; the wire shapes their public clients see):
//!
//! - **Subdl**: `GET /api/v1/subtitles?api_key=…` (403 `{"status":false,…}` for another
//!   key; HTTP 200 `{"status":false,"error":"can't find movie or tv"}` for nothing), ZIPs at
//!   `GET /subtitle/{name}.zip` on the same host; the daily limit as a 500 whose body says
//!   `Download limit exceeded`.
//! - **Podnapisi**: `GET /subtitles/search/advanced` answers JSON only with
//!   `Accept: application/json` (HTML otherwise), wants `movie_type` (repeated for TV),
//!   pages by `page`/`all_pages`; `GET /subtitles/{id}/download?container=zip` a ZIP.
//! - **Gestdown**: `GET /shows/search/{name}` and `/shows/external/tvdb/{id}` (404 with a
//!   bare JSON string for an unknown show), `GET /subtitles/get/{show}/{s}/{e}/{lang}`
//!   (ISO 639-3 language, 423 while "refreshing"), `GET /subtitles/download/{id}` raw
//!   `text/srt` with a BOM and CRLF (an HTML page at the download limit).
//!
//! Searches and downloads are scriptable: succeed, nothing, 429 with `Retry-After`, the
//! provider's quota/limit answer, a status, hang, garbage. Every request is logged.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The API key the fake Subdl accepts.
pub const SUBDL_KEY: &str = "subdl-test-key";

/// Subdl's single-file archive (real shape) and its "nothing found" answer.
pub const SUBDL_ZIP: &[u8] = include_bytes!("../fixtures/subdl_download_single.zip");
pub const SUBDL_ERROR: &str = include_str!("../fixtures/subdl_error.json");

/// What one scripted answer does.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// The normal answer.
    Ok,
    /// Nothing found, the provider's way.
    Nothing,
    /// 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// The provider's download-limit answer (Subdl: 500 "Download limit exceeded";
    /// Gestdown: an HTML page), or Gestdown's 423 on a search.
    Limit,
    /// This HTTP status with a small HTML body.
    Status(u16),
    /// Waits this long before the normal answer.
    Hang(Duration),
    /// 200 with an HTML page (searches) or a truncated ZIP (downloads).
    Garbage,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub path: String,
    pub query: String,
    pub accept: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Subdl,
    Podnapisi,
    Gestdown,
}

pub struct State {
    pub kind: Kind,
    pub search_script: VecDeque<Behaviour>,
    pub search_default: Behaviour,
    pub download_script: VecDeque<Behaviour>,
    pub download_default: Behaviour,
    /// Subdl: `subtitles[]`; Podnapisi: `data[]`; Gestdown: `matchingSubtitles[]`.
    pub results: Vec<Value>,
    /// Subdl: `results[]` (the film or show); Gestdown: `shows[]`.
    pub shows: Vec<Value>,
    /// What every download serves.
    pub file: Vec<u8>,
    /// Podnapisi: results per page.
    pub per_page: usize,
    /// Subdl: a search by `imdb_id`/`tmdb_id` finds nothing (ids it does not know).
    pub unknown_ids: bool,
    pub log: Vec<Logged>,
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
}

/// A ZIP of `entries` (name, content).
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in entries {
        writer
            .start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(content).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A small SRT whose one cue says `text`.
pub fn srt(text: &str) -> String {
    format!(
        "1\n00:00:01,000 --> 00:00:02,500\n{text}\n\n2\n00:00:03,000 --> 00:00:04,000\nSecond line.\n"
    )
}

fn html(status: u16) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("text/html")
        .body("<html><body><h1>Service unavailable</h1></body></html>")
}

fn garbage_page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html")
        .body("<!DOCTYPE html><html><title>Just a moment...</title></html>")
}

impl Fake {
    fn start(kind: Kind, results: Vec<Value>, shows: Vec<Value>, file: Vec<u8>) -> Self {
        let state = Arc::new(Mutex::new(State {
            kind,
            search_script: VecDeque::new(),
            search_default: Behaviour::Ok,
            download_script: VecDeque::new(),
            download_default: Behaviour::Ok,
            results,
            shows,
            file,
            per_page: 50,
            unknown_ids: false,
            log: Vec::new(),
        }));
        let (sender, receiver) = mpsc::channel();
        let shared = state.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let data = web::Data::new(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .default_service(web::to(handle))
                })
                .workers(2)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
                sender.send(server.addrs()[0]).unwrap();
                server.run().await.unwrap();
            });
        });
        let address = format!("http://{}", receiver.recv().unwrap());
        Self { state, address }
    }

    /// Subdl with one French subtitle for "Example Movie" (2019), served as the fixture ZIP.
    pub fn subdl() -> Self {
        let show = json!({
            "sd_id": 1209, "type": "movie", "name": "Example Movie", "imdb_id": "tt0012345",
            "tmdb_id": 603, "first_air_date": null, "slug": "example-movie",
            "release_date": "2019-03-01", "year": 2019
        });
        let subtitle = json!({
            "release_name": "Example.Movie.2019.1080p.BluRay.x264-GROUP",
            "name": "SUBDL.com::Example.Movie.2019.1080p.BluRay.x264-GROUP.zip",
            "lang": "french", "language": "FR", "author": "someone",
            "url": "/subtitle/3197651-3213944.zip",
            "subtitlePage": "/s/info/x/example-movie", "season": null, "episode": null,
            "episode_from": null, "episode_end": null, "full_season": false, "hi": false,
            "comment": "",
            "releases": ["Example.Movie.2019.720p.WEB-DL.x264-OTHER", "Example.Movie.2019.1080p.BluRay.x264-GROUP"]
        });
        Self::start(Kind::Subdl, vec![subtitle], vec![show], SUBDL_ZIP.to_vec())
    }

    /// Podnapisi with one English subtitle for "Example Movie" (2019).
    pub fn podnapisi() -> Self {
        let item = podnapisi_item(
            "GMso",
            "en",
            1,
            &["Example.Movie.2019.1080p.BluRay.x264-GROUP"],
        );
        let file = zip(&[(
            "Example.Movie.2019.1080p.BluRay.x264-GROUP.srt",
            srt("From Podnapisi.").as_bytes(),
        )]);
        Self::start(Kind::Podnapisi, vec![item], Vec::new(), file)
    }

    /// Gestdown with "Example Show" and two English subtitles for S02E06 (one still
    /// being translated), served as `text/srt` with a BOM and CRLF.
    pub fn gestdown() -> Self {
        let show = json!({
            "id": "8a3f2c4e-0000-4000-8000-000000000001", "name": "Example Show",
            "nbSeasons": 3, "seasons": [1, 2, 3], "tvDbId": 80379, "tmdbId": 1418,
            "slug": "example-show"
        });
        let subtitles = vec![
            json!({
                "subtitleId": "1c7e1d27-aaaa-4bbb-8ccc-000000000002", "version": "WEB-DL.x264-GRP",
                "completed": false, "hearingImpaired": false, "corrected": false, "hd": true,
                "downloadUri": "/subtitles/download/1c7e1d27-aaaa-4bbb-8ccc-000000000002",
                "language": "English", "discovered": "2025-02-01T10:00:00", "downloadCount": 900
            }),
            json!({
                "subtitleId": "1c7e1d27-aaaa-4bbb-8ccc-000000000001", "version": "720p.WEB-DL.x264-GRP",
                "completed": true, "hearingImpaired": false, "corrected": true, "hd": true,
                "downloadUri": "/subtitles/download/1c7e1d27-aaaa-4bbb-8ccc-000000000001",
                "language": "English", "discovered": "2025-02-01T10:00:00", "downloadCount": 10
            }),
        ];
        let file = format!("\u{feff}{}", srt("From Gestdown.").replace('\n', "\r\n")).into_bytes();
        Self::start(Kind::Gestdown, subtitles, vec![show], file)
    }

    pub fn with<T>(&self, edit: impl FnOnce(&mut State) -> T) -> T {
        edit(&mut self.state.lock().unwrap())
    }

    /// The `[providers.<name>]` section pointing here (1 s timeouts), plus `extra` keys.
    pub fn config(&self, extra: &str) -> String {
        match self.with(|s| s.kind) {
            Kind::Subdl => format!(
                "[providers.subdl]\napi_key = \"{SUBDL_KEY}\"\nbase_url = \"{0}/api/v1\"\n\
                 download_url = \"{0}\"\ntimeout_secs = 1\n{extra}",
                self.address
            ),
            Kind::Podnapisi => format!(
                "[providers.podnapisi]\nbase_url = \"{}\"\ntimeout_secs = 1\n{extra}",
                self.address
            ),
            Kind::Gestdown => format!(
                "[providers.gestdown]\nbase_url = \"{}\"\ntimeout_secs = 1\n{extra}",
                self.address
            ),
        }
    }

    pub fn requests(&self, path_prefix: &str) -> Vec<Logged> {
        self.with(|s| {
            s.log
                .iter()
                .filter(|l| l.path.starts_with(path_prefix))
                .cloned()
                .collect()
        })
    }

    pub fn count(&self, path_prefix: &str) -> usize {
        self.requests(path_prefix).len()
    }
}

/// A Podnapisi result in its JSON shape.
pub fn podnapisi_item(id: &str, language: &str, cds: u32, releases: &[&str]) -> Value {
    json!({
        "id": id, "language": language, "url": format!("/subtitles/{id}"),
        "download": format!("/subtitles/{id}/download"),
        "flags": [], "releases": releases, "custom_releases": [], "fps": "", "num_cds": cds,
        "stats": {"downloads": 120, "lines": 900},
        "movie": {"title": "Example Movie", "year": 2019, "type": "movie", "episode_info": null}
    })
}

fn params(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn handle(request: HttpRequest, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let path = request.path().to_owned();
    let query = request.query_string().to_owned();
    let kind = {
        let mut s = state.lock().unwrap();
        s.log.push(Logged {
            at: Instant::now(),
            path: path.clone(),
            query: query.clone(),
            accept: request
                .headers()
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        s.kind
    };
    let download = match kind {
        Kind::Subdl => path.starts_with("/subtitle/"),
        Kind::Podnapisi => path.starts_with("/subtitles/") && path.ends_with("/download"),
        Kind::Gestdown => path.starts_with("/subtitles/download/"),
    };
    let search = match kind {
        Kind::Subdl => path == "/api/v1/subtitles",
        Kind::Podnapisi => path == "/subtitles/search/advanced",
        Kind::Gestdown => path.starts_with("/subtitles/get/"),
    };
    let behaviour = {
        let mut s = state.lock().unwrap();
        if download {
            let d = s.download_default.clone();
            s.download_script.pop_front().unwrap_or(d)
        } else if search {
            let d = s.search_default.clone();
            s.search_script.pop_front().unwrap_or(d)
        } else {
            Behaviour::Ok
        }
    };
    match &behaviour {
        Behaviour::RateLimited(secs) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .body("Too Many Requests");
        }
        Behaviour::Status(status) => return html(*status),
        Behaviour::Hang(duration) => tokio::time::sleep(*duration).await,
        Behaviour::Garbage if !download => return garbage_page(),
        Behaviour::Garbage => {
            let file = state.lock().unwrap().file.clone();
            return HttpResponse::Ok()
                .content_type("application/zip")
                .body(file[..file.len() / 2].to_vec());
        }
        _ => {}
    }
    let params = params(&query);
    let s = state.lock().unwrap();
    match kind {
        Kind::Subdl => subdl(&s, &path, &params, download, &behaviour),
        Kind::Podnapisi => podnapisi(&s, &request, &path, &params, download, &behaviour),
        Kind::Gestdown => gestdown(&s, &path, download, &behaviour),
    }
}

fn subdl(
    s: &State,
    path: &str,
    params: &[(String, String)],
    download: bool,
    behaviour: &Behaviour,
) -> HttpResponse {
    if download {
        if *behaviour == Behaviour::Limit {
            return HttpResponse::InternalServerError()
                .content_type("text/plain")
                .body("Download limit exceeded");
        }
        if !path.ends_with(".zip") {
            return HttpResponse::NotFound().finish();
        }
        return HttpResponse::Ok()
            .content_type("application/zip")
            .body(s.file.clone());
    }
    if path != "/api/v1/subtitles" {
        return HttpResponse::NotFound().json(json!({"status": false, "error": "not found"}));
    }
    if get(params, "api_key") != Some(SUBDL_KEY) {
        return HttpResponse::Forbidden()
            .json(json!({"status": false, "error": "Invalid API key"}));
    }
    let Some(languages) = get(params, "languages") else {
        return HttpResponse::Ok().json(json!({"status": false, "error": "languages is required"}));
    };
    let by_id = get(params, "imdb_id").is_some() || get(params, "tmdb_id").is_some();
    if *behaviour == Behaviour::Nothing || (s.unknown_ids && by_id) {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(SUBDL_ERROR);
    }
    let wanted: Vec<&str> = languages.split(',').collect();
    let subtitles: Vec<Value> = s
        .results
        .iter()
        .filter(|sub| wanted.iter().any(|l| sub["language"] == *l))
        .cloned()
        .collect();
    if subtitles.is_empty() {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(SUBDL_ERROR);
    }
    HttpResponse::Ok().json(json!({
        "status": true, "results": s.shows, "subtitles": subtitles,
        "totalPages": 1, "currentPage": 1
    }))
}

fn podnapisi(
    s: &State,
    request: &HttpRequest,
    path: &str,
    params: &[(String, String)],
    download: bool,
    behaviour: &Behaviour,
) -> HttpResponse {
    if download {
        if get(params, "container") != Some("zip") {
            return HttpResponse::Ok().content_type("text/plain").body("raw");
        }
        return HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(s.file.clone());
    }
    if path != "/subtitles/search/advanced" {
        return HttpResponse::NotFound().body("<html>404</html>");
    }
    let json_wanted = request
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if !json_wanted {
        return garbage_page();
    }
    let types: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "movie_type")
        .map(|(_, v)| v.as_str())
        .collect();
    if types.is_empty() {
        return HttpResponse::BadRequest().json(json!({"status": "error"}));
    }
    let language = get(params, "language").unwrap_or("");
    let matching: Vec<Value> = if *behaviour == Behaviour::Nothing {
        Vec::new()
    } else {
        s.results
            .iter()
            .filter(|item| item["language"] == language)
            .cloned()
            .collect()
    };
    let page: usize = get(params, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let all_pages = matching.len().div_ceil(s.per_page).max(1);
    let data: Vec<Value> = matching
        .iter()
        .skip((page - 1) * s.per_page)
        .take(s.per_page)
        .cloned()
        .collect();
    HttpResponse::Ok().json(json!({
        "status": "ok", "page": page, "all_pages": all_pages, "per_page": s.per_page,
        "data": data
    }))
}

fn gestdown(s: &State, path: &str, download: bool, behaviour: &Behaviour) -> HttpResponse {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_encoding_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let unknown =
        |what: &str| HttpResponse::NotFound().json(json!(format!("Couldn't find show: {what}")));
    match segments.as_slice() {
        ["shows", "search", name] => {
            let found: Vec<Value> = s
                .shows
                .iter()
                .filter(|show| show["name"].as_str().unwrap().eq_ignore_ascii_case(name))
                .cloned()
                .collect();
            if found.is_empty() {
                return unknown(name);
            }
            HttpResponse::Ok().json(json!({"shows": found}))
        }
        ["shows", "external", "tvdb", id] => {
            let found: Vec<Value> = s
                .shows
                .iter()
                .filter(|show| {
                    show["tvDbId"]
                        .as_u64()
                        .is_some_and(|t| t.to_string() == *id)
                })
                .cloned()
                .collect();
            if found.is_empty() {
                return unknown(id);
            }
            HttpResponse::Ok().json(json!({"shows": found}))
        }
        ["subtitles", "get", show, season, episode, language] => {
            if *behaviour == Behaviour::Limit {
                return HttpResponse::build(actix_web::http::StatusCode::LOCKED)
                    .json(json!("Show is being refreshed"));
            }
            if !s.shows.iter().any(|sh| sh["id"] == *show) {
                return unknown(show);
            }
            if language.len() != 3 {
                return HttpResponse::BadRequest()
                    .json(json!(format!("Unknown language {language}")));
            }
            let subtitles: Vec<Value> = if *behaviour == Behaviour::Nothing || *language != "eng" {
                Vec::new()
            } else {
                s.results.clone()
            };
            HttpResponse::Ok().json(json!({
                "matchingSubtitles": subtitles,
                "episode": {
                    "season": season.parse::<u32>().unwrap_or(0),
                    "number": episode.parse::<u32>().unwrap_or(0),
                    "title": "An Episode", "show": "Example Show",
                    "discovered": "2025-02-01T10:00:00"
                }
            }))
        }
        ["subtitles", "download", id] => {
            let _ = download;
            if *behaviour == Behaviour::Limit {
                return HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body("<html><body>Daily Download count exceeded</body></html>");
            }
            if !s.results.iter().any(|sub| sub["subtitleId"] == *id) {
                return HttpResponse::NotFound().json(json!("Subtitle not found"));
            }
            HttpResponse::Ok()
                .content_type("text/srt")
                .insert_header((
                    "Content-Disposition",
                    "attachment; filename=\"Example Show - 02x06 - An Episode.English.srt\"",
                ))
                .body(s.file.clone())
        }
        _ => HttpResponse::NotFound().json(json!("Not found")),
    }
}

/// `%20` and friends in a path segment, decoded.
fn percent_encoding_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
