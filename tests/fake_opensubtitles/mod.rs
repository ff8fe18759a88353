//! A loopback OpenSubtitles.com REST v1 on port 0, speaking the documented protocol:
//! `POST /api/v1/login`, `GET /api/v1/subtitles`, `POST /api/v1/download`, and one-time
//! links `GET /download/{n}/subfile/{name}` (410 on reuse). It checks `Api-Key` (403),
//! the `User-Agent` (400 without `cuewarden v…`), the Bearer token on downloads (401),
//! answers non-canonical query strings with a 301 (as the real API does), keeps a quota
//! (406 at 0) and logs every request with its arrival time. Searches and downloads are
//! scriptable: succeed, return nothing, 429 with `Retry-After`, 406, 5xx, hang, garbage.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashSet, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

pub const API_KEY: &str = "os-test-key";
pub const USERNAME: &str = "cuewarden-user";
pub const PASSWORD: &str = "correct horse";

pub const SEARCH: &str = include_str!("../fixtures/opensubtitles_search.json");
pub const LOGIN: &str = include_str!("../fixtures/opensubtitles_login.json");
pub const DOWNLOAD: &str = include_str!("../fixtures/opensubtitles_download.json");
pub const QUOTA_406: &str = include_str!("../fixtures/opensubtitles_download_406.json");

/// The subtitle every link serves.
pub const SRT: &str = "1\n00:00:01,000 --> 00:00:02,500\nHello there.\n\n2\n00:00:03,000 --> 00:00:04,000\nGeneral Kenobi!\n";

/// What one scripted answer does.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// The normal answer.
    Ok,
    /// No results (searches) .
    Nothing,
    /// 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// 406 with the quota body.
    Quota,
    /// This HTTP status with a small HTML body.
    Status(u16),
    /// Waits this long before the normal answer.
    Hang(Duration),
    /// 200 with an HTML page.
    Garbage,
    /// 401 (an expired token).
    Unauthorized,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
}

pub struct State {
    pub latency: Duration,
    pub search_script: VecDeque<Behaviour>,
    pub search_default: Behaviour,
    pub download_script: VecDeque<Behaviour>,
    pub download_default: Behaviour,
    /// Search results (`data[]` items), filtered by the requested language.
    pub results: Vec<Value>,
    /// The movie hash whose results say `moviehash_match: true`.
    pub known_hash: Option<String>,
    /// Searches by id (`imdb_id`, `tmdb_id`, `parent_*`) find nothing: ids the API does not
    /// know (yet).
    pub unknown_ids: bool,
    pub quota: u32,
    pub downloads: u32,
    pub logins: u32,
    pub token: String,
    pub tokens: HashSet<String>,
    /// What the login answers as `base_url` (a bare host:port).
    pub vip_host: Option<String>,
    pub links: HashSet<String>,
    pub used_links: HashSet<String>,
    pub log: Vec<Logged>,
    pub redirects: u32,
    pub bad_user_agent: u32,
    pub address: String,
    /// What a link serves per file id (the default: [`SRT`]).
    pub files: std::collections::HashMap<u64, String>,
}

#[derive(Clone)]
pub struct FakeOs {
    pub state: Arc<Mutex<State>>,
    pub base: String,
}

fn html(status: u16) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("text/html")
        .body("<html><body><h1>Bad gateway</h1></body></html>")
}

/// The query string as the API wants it: sorted, lower case, no `page=1`.
fn canonical(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.to_lowercase(), v.to_lowercase()))
        .filter(|(k, v)| !(v.is_empty() || k == "page" && v == "1"))
        .collect();
    pairs.sort();
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(&k, &v);
    }
    out.finish()
}

impl FakeOs {
    pub fn start() -> Self {
        let results: Value = serde_json::from_str(SEARCH).unwrap();
        let state = Arc::new(Mutex::new(State {
            latency: Duration::ZERO,
            search_script: VecDeque::new(),
            search_default: Behaviour::Ok,
            download_script: VecDeque::new(),
            download_default: Behaviour::Ok,
            results: results["data"].as_array().unwrap().clone(),
            known_hash: None,
            unknown_ids: false,
            quota: 20,
            downloads: 0,
            logins: 0,
            token: "fake-token-1".to_owned(),
            tokens: HashSet::new(),
            vip_host: None,
            links: HashSet::new(),
            used_links: HashSet::new(),
            log: Vec::new(),
            redirects: 0,
            bad_user_agent: 0,
            address: String::new(),
            files: std::collections::HashMap::new(),
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
        let address = receiver.recv().unwrap().to_string();
        state.lock().unwrap().address = address.clone();
        Self {
            state,
            base: format!("http://{address}/api/v1"),
        }
    }

    pub fn with<T>(&self, edit: impl FnOnce(&mut State) -> T) -> T {
        edit(&mut self.state.lock().unwrap())
    }

    /// The `[providers.opensubtitles]` section pointing here.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[providers.opensubtitles]\napi_key = \"{API_KEY}\"\nusername = \"{USERNAME}\"\n\
             password = \"{PASSWORD}\"\nbase_url = \"{}\"\ntimeout_secs = 2\n{extra}",
            self.base
        )
    }

    pub fn requests(&self, path_suffix: &str) -> Vec<Logged> {
        self.with(|s| {
            s.log
                .iter()
                .filter(|l| l.path.ends_with(path_suffix))
                .cloned()
                .collect()
        })
    }

    pub fn count(&self, path_suffix: &str) -> usize {
        self.requests(path_suffix).len()
    }

    /// The shortest time between a request and the one `n` requests later (their
    /// arrivals here), or `None` with fewer requests.
    pub fn min_span(&self, n: usize) -> Option<Duration> {
        let mut times: Vec<Instant> = self.with(|s| s.log.iter().map(|l| l.at).collect());
        times.sort();
        times
            .windows(n + 1)
            .map(|w| w[n].duration_since(w[0]))
            .min()
    }

    /// The most requests that arrived within any one second.
    pub fn max_per_second(&self) -> usize {
        let times: Vec<Instant> = self.with(|s| {
            let mut t: Vec<Instant> = s.log.iter().map(|l| l.at).collect();
            t.sort();
            t
        });
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }
}

async fn handle(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let path = request.path().to_owned();
    let query = request.query_string().to_owned();
    let method = request.method().to_string();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let latency = {
        let mut s = state.lock().unwrap();
        s.log.push(Logged {
            at: Instant::now(),
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            authorization: header("authorization"),
        });
        s.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(rest) = path.strip_prefix("/download/") {
        let mut s = state.lock().unwrap();
        if !s.links.contains(rest) || !s.used_links.insert(rest.to_owned()) {
            return HttpResponse::Gone().json(json!({"message": "link expired"}));
        }
        let file_id = rest
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_suffix(".srt"))
            .and_then(|id| id.parse::<u64>().ok());
        let body = file_id
            .and_then(|id| s.files.get(&id).cloned())
            .unwrap_or_else(|| SRT.to_owned());
        return HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(body);
    }
    if !header("user-agent").is_some_and(|ua| ua.starts_with("cuewarden v")) {
        state.lock().unwrap().bad_user_agent += 1;
        return HttpResponse::BadRequest().json(json!({"message": "User-Agent required"}));
    }
    if header("api-key").as_deref() != Some(API_KEY) {
        return HttpResponse::Forbidden()
            .json(json!({"message": "You cannot consume this service"}));
    }
    match (method.as_str(), path.as_str()) {
        ("POST", "/api/v1/login") => login(&body, &state),
        ("GET", "/api/v1/subtitles") => {
            let wanted = canonical(&query);
            if wanted != query {
                state.lock().unwrap().redirects += 1;
                return HttpResponse::MovedPermanently()
                    .insert_header(("Location", format!("/api/v1/subtitles?{wanted}")))
                    .finish();
            }
            let behaviour = {
                let mut s = state.lock().unwrap();
                let d = s.search_default.clone();
                s.search_script.pop_front().unwrap_or(d)
            };
            if let Some(response) = scripted(&behaviour).await {
                return response;
            }
            search(&query, behaviour == Behaviour::Nothing, &state)
        }
        ("POST", "/api/v1/download") => {
            let token =
                header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned));
            let behaviour = {
                let mut s = state.lock().unwrap();
                let d = s.download_default.clone();
                s.download_script.pop_front().unwrap_or(d)
            };
            if let Some(response) = scripted(&behaviour).await {
                return response;
            }
            download(&body, token, &state)
        }
        _ => HttpResponse::NotFound().json(json!({"message": "not found"})),
    }
}

async fn scripted(behaviour: &Behaviour) -> Option<HttpResponse> {
    match behaviour {
        Behaviour::Ok | Behaviour::Nothing => None,
        Behaviour::RateLimited(secs) => Some(
            HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .json(json!({"message": "API rate limit exceeded"})),
        ),
        Behaviour::Quota => Some(quota_used_up()),
        Behaviour::Status(status) => Some(html(*status)),
        Behaviour::Hang(duration) => {
            tokio::time::sleep(*duration).await;
            None
        }
        Behaviour::Garbage => Some(
            HttpResponse::Ok()
                .content_type("text/html")
                .body("<!DOCTYPE html><html><title>Just a moment...</title></html>"),
        ),
        Behaviour::Unauthorized => {
            Some(HttpResponse::Unauthorized().json(json!({"message": "invalid token"})))
        }
    }
}

/// When the quota resets: an hour from now (the real API says midnight UTC).
pub fn reset_time() -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string()
}

fn quota_used_up() -> HttpResponse {
    let mut answer: Value = serde_json::from_str(QUOTA_406).unwrap();
    answer["reset_time_utc"] = json!(reset_time());
    HttpResponse::NotAcceptable().json(answer)
}

fn login(body: &[u8], state: &Mutex<State>) -> HttpResponse {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.logins += 1;
    if request["username"] != USERNAME || request["password"] != PASSWORD {
        return HttpResponse::Unauthorized().json(json!({
            "message": "Error, invalid username/password failed:1 remaining:9  ",
            "status": 401
        }));
    }
    let token = format!("fake-token-{}", s.logins);
    s.tokens.insert(token.clone());
    s.token = token.clone();
    let mut answer: Value = serde_json::from_str(LOGIN).unwrap();
    answer["token"] = json!(token);
    answer["base_url"] = json!(s.vip_host.clone().unwrap_or_else(|| s.address.clone()));
    HttpResponse::Ok().json(answer)
}

fn search(query: &str, nothing: bool, state: &Mutex<State>) -> HttpResponse {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let languages: Vec<String> = get("languages")
        .map(|l| l.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let hash = get("moviehash");
    let s = state.lock().unwrap();
    let by_id = ["imdb_id", "tmdb_id", "parent_imdb_id", "parent_tmdb_id"]
        .iter()
        .any(|key| get(key).is_some());
    let data: Vec<Value> = if nothing || (s.unknown_ids && by_id) {
        Vec::new()
    } else {
        s.results
            .iter()
            .filter(|item| {
                languages.is_empty()
                    || languages
                        .iter()
                        .any(|l| item["attributes"]["language"] == l.as_str())
            })
            .cloned()
            .map(|mut item| {
                let attributes = item["attributes"].as_object_mut().unwrap();
                match &hash {
                    Some(hash) => {
                        let matched = s.known_hash.as_ref() == Some(hash)
                            && attributes
                                .get("moviehash_match")
                                .and_then(Value::as_bool)
                                .unwrap_or(false);
                        attributes.insert("moviehash_match".to_owned(), json!(matched));
                    }
                    None => {
                        attributes.remove("moviehash_match");
                    }
                }
                item
            })
            .collect()
    };
    HttpResponse::Ok().json(json!({
        "total_pages": if data.is_empty() { 0 } else { 1 },
        "total_count": data.len(),
        "per_page": 50,
        "page": 1,
        "data": data,
    }))
}

fn download(body: &[u8], token: Option<String>, state: &Mutex<State>) -> HttpResponse {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(file_id) = request["file_id"].as_u64() else {
        return HttpResponse::BadRequest().json(json!({"message": "file_id required"}));
    };
    let mut s = state.lock().unwrap();
    match token {
        Some(token) if s.tokens.contains(&token) => {}
        _ => return HttpResponse::Unauthorized().json(json!({"message": "invalid token"})),
    }
    if s.quota == 0 {
        return quota_used_up();
    }
    s.quota -= 1;
    s.downloads += 1;
    let link = format!("{}/subfile/{file_id}.srt", s.downloads);
    s.links.insert(link.clone());
    let mut answer: Value = serde_json::from_str(DOWNLOAD).unwrap();
    answer["link"] = json!(format!("http://{}/download/{link}", s.address));
    answer["remaining"] = json!(s.quota);
    answer["requests"] = json!(s.downloads);
    answer["reset_time_utc"] = json!(reset_time());
    HttpResponse::Ok().json(answer)
}
