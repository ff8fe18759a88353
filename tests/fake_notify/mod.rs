//! One loopback server speaking each notification target's documented protocol
//! (fixtures in tests/fixtures/notify): Discord webhooks (204; 429 with `retry_after`),
//! ntfy JSON publishing, Gotify `POST /message` (`X-Gotify-Key`), Pushover's form
//! `POST /1/messages.json`, the Apprise API (`POST /notify`), Kodi JSON-RPC (errors with
//! HTTP 200), Plex (`/library/sections`, partial refresh with `path=`, `X-Plex-Token`).
//! Each target's answers can be scripted (500, 429, a hang); every request is logged.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

pub const DISCORD_429: &str = include_str!("../fixtures/notify/discord_429.json");
pub const GOTIFY_RESPONSE: &str = include_str!("../fixtures/notify/gotify_message_response.json");
pub const NTFY_RESPONSE: &str = include_str!("../fixtures/notify/ntfy_publish_response.json");
pub const PUSHOVER_OK: &str = include_str!("../fixtures/notify/pushover_ok.json");
pub const PUSHOVER_400: &str = include_str!("../fixtures/notify/pushover_error_400.json");
pub const KODI_OK: &str = include_str!("../fixtures/notify/kodi_scan_response.json");
pub const PLEX_SECTIONS: &str = include_str!("../fixtures/notify/plex_sections.json");

pub const GOTIFY_TOKEN: &str = "gotify-app-token";
pub const NTFY_TOKEN: &str = "tk_ntfytoken";
pub const PUSHOVER_TOKEN: &str = "pushover-app-token";
pub const PUSHOVER_USER: &str = "pushover-user-key";
pub const PLEX_TOKEN: &str = "plex-token";
pub const KODI_USER: &str = "kodi";
pub const KODI_PASSWORD: &str = "kodi-secret";
pub const DISCORD_PATH: &str = "/api/webhooks/123/discord-webhook-secret";

/// A scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The protocol's success.
    Ok,
    /// This status (a small body).
    Status(u16),
    /// 429; Discord's body says `retry_after` (seconds).
    RateLimited,
    /// No answer for this long, then the success.
    Hang(Duration),
    /// Kodi: a JSON-RPC error with HTTP 200.
    RpcError(i64),
}

/// One request a target received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub target: &'static str,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
}

#[derive(Default)]
pub struct State {
    pub scripts: HashMap<&'static str, VecDeque<Reply>>,
    pub hits: Vec<Hit>,
    /// The folder Plex's sections hold (its `Location.path`s are replaced by this).
    pub plex_root: PathBuf,
}

#[derive(Clone)]
pub struct FakeTargets {
    pub state: Arc<Mutex<State>>,
    pub base: String,
}

impl FakeTargets {
    pub fn start(plex_root: PathBuf) -> Self {
        let state = Arc::new(Mutex::new(State {
            plex_root,
            ..State::default()
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
        let address = receiver.recv().unwrap();
        Self {
            state,
            base: format!("http://{address}"),
        }
    }

    /// The next answers of `target` (then [`Reply::Ok`]).
    pub fn script(&self, target: &'static str, replies: &[Reply]) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(target, replies.iter().cloned().collect());
    }

    pub fn hits(&self, target: &str) -> Vec<Hit> {
        self.state
            .lock()
            .unwrap()
            .hits
            .iter()
            .filter(|h| h.target == target)
            .cloned()
            .collect()
    }

    /// The `[notify.*]` sections of every HTTP target named in `targets`, pointing here;
    /// `extra` maps a target to more lines of its section.
    pub fn config(&self, targets: &[&str], extra: &[(&str, &str)]) -> String {
        let base = &self.base;
        let mut out = String::new();
        for target in targets {
            let section = match *target {
                "discord" => format!("webhook_url = \"{base}{DISCORD_PATH}\"\n"),
                "ntfy" => format!(
                    "url = \"{base}/ntfy\"\ntopic = \"subdaemon\"\ntoken = \"{NTFY_TOKEN}\"\npriority = 4\n"
                ),
                "gotify" => format!("url = \"{base}/gotify\"\ntoken = \"{GOTIFY_TOKEN}\"\n"),
                "pushover" => format!(
                    "url = \"{base}/pushover\"\ntoken = \"{PUSHOVER_TOKEN}\"\nuser = \"{PUSHOVER_USER}\"\n"
                ),
                "apprise" => {
                    format!("url = \"{base}/apprise\"\nurls = \"json://127.0.0.1/hook\"\n")
                }
                "kodi" => format!(
                    "url = \"{base}/kodi/jsonrpc\"\nusername = \"{KODI_USER}\"\npassword = \"{KODI_PASSWORD}\"\n"
                ),
                "plex" => format!("url = \"{base}/plex\"\ntoken = \"{PLEX_TOKEN}\"\n"),
                other => panic!("no fake for {other}"),
            };
            out.push_str(&format!("[notify.{target}]\n{section}"));
            for (name, lines) in extra {
                if name == target {
                    out.push_str(lines);
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn target_of(path: &str) -> Option<&'static str> {
    if path.starts_with("/api/webhooks/") {
        return Some("discord");
    }
    ["ntfy", "gotify", "pushover", "apprise", "kodi", "plex"]
        .into_iter()
        .find(|t| path.starts_with(&format!("/{t}")))
}

async fn handle(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let path = request.path().to_owned();
    let Some(target) = target_of(&path) else {
        return HttpResponse::NotFound().finish();
    };
    let hit = Hit {
        target,
        method: request.method().to_string(),
        path: path.clone(),
        query: request.query_string().to_owned(),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (reply, plex_root) = {
        let mut state = state.lock().unwrap();
        state.hits.push(hit.clone());
        // Plex's section listing is not scripted: only the refresh is.
        let scripted = !(target == "plex" && path.ends_with("/library/sections"));
        let reply = scripted
            .then(|| state.scripts.get_mut(target).and_then(VecDeque::pop_front))
            .flatten()
            .unwrap_or(Reply::Ok);
        (reply, state.plex_root.clone())
    };
    match reply {
        Reply::Ok => {}
        Reply::Status(code) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .content_type("text/plain")
                .body("scripted failure");
        }
        Reply::RateLimited => {
            return HttpResponse::TooManyRequests()
                .content_type("application/json")
                .body(DISCORD_429);
        }
        Reply::Hang(delay) => actix_rt::time::sleep(delay).await,
        Reply::RpcError(code) => {
            return HttpResponse::Ok().json(json!({
                "id": hit.json()["id"], "jsonrpc": "2.0",
                "error": {"code": code, "message": "Invalid params."}
            }));
        }
    }
    answer(target, &hit, &plex_root)
}

/// The protocol's success, after the checks its service makes (auth, required fields).
fn answer(target: &str, hit: &Hit, plex_root: &std::path::Path) -> HttpResponse {
    let header = |name: &str| hit.headers.get(name).map(String::as_str);
    match target {
        "discord" => {
            if hit.path != DISCORD_PATH || hit.method != "POST" {
                return HttpResponse::NotFound().finish();
            }
            let body = hit.json();
            if body["content"].as_str().is_none_or(str::is_empty) && body["embeds"].is_null() {
                return HttpResponse::BadRequest()
                    .json(json!({"message": "Cannot send an empty message", "code": 50006}));
            }
            HttpResponse::NoContent().finish()
        }
        "ntfy" => {
            if header("authorization") != Some(&format!("Bearer {NTFY_TOKEN}")) {
                return HttpResponse::Unauthorized()
                    .json(json!({"code": 40101, "http": 401, "error": "unauthorized"}));
            }
            if hit.path.trim_end_matches('/') != "/ntfy" || hit.json()["topic"].is_null() {
                return HttpResponse::BadRequest()
                    .json(json!({"code": 40000, "http": 400, "error": "invalid request"}));
            }
            HttpResponse::Ok()
                .content_type("application/json")
                .body(NTFY_RESPONSE)
        }
        "gotify" => {
            if header("x-gotify-key") != Some(GOTIFY_TOKEN) {
                return HttpResponse::Unauthorized().json(json!({"error": "Unauthorized", "errorCode": 401, "errorDescription": "you need to provide a valid access token or user credentials to access this api"}));
            }
            if hit.path != "/gotify/message" || hit.json()["message"].is_null() {
                return HttpResponse::BadRequest()
                    .json(json!({"error": "Bad Request", "errorCode": 400}));
            }
            HttpResponse::Ok()
                .content_type("application/json")
                .body(GOTIFY_RESPONSE)
        }
        "pushover" => {
            let form = hit.form();
            if hit.path != "/pushover/1/messages.json"
                || form.get("token").map(String::as_str) != Some(PUSHOVER_TOKEN)
                || form.get("user").map(String::as_str) != Some(PUSHOVER_USER)
                || form.get("message").is_none_or(String::is_empty)
            {
                return HttpResponse::BadRequest()
                    .content_type("application/json")
                    .body(PUSHOVER_400);
            }
            HttpResponse::Ok()
                .content_type("application/json")
                .body(PUSHOVER_OK)
        }
        "apprise" => {
            let body = hit.json();
            if hit.path != "/apprise/notify" || body["body"].is_null() || body["urls"].is_null() {
                return HttpResponse::BadRequest()
                    .json(json!({"error": "Payload lacks minimum requirements"}));
            }
            HttpResponse::Ok().json(json!({}))
        }
        "kodi" => {
            use base64::Engine as _;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{KODI_USER}:{KODI_PASSWORD}"))
            );
            if header("authorization") != Some(expected.as_str()) {
                return HttpResponse::Unauthorized().finish();
            }
            let body = hit.json();
            let id = body["id"].clone();
            if body["method"] != "VideoLibrary.Scan" || body["params"]["showdialogs"] != false {
                return HttpResponse::Ok().json(json!({"id": id, "jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params."}}));
            }
            let mut ok: Value = serde_json::from_str(KODI_OK).unwrap();
            ok["id"] = id;
            HttpResponse::Ok().json(ok)
        }
        "plex" => {
            if header("x-plex-token") != Some(PLEX_TOKEN) {
                return HttpResponse::Unauthorized().finish();
            }
            if hit.path == "/plex/library/sections" {
                let mut sections: Value = serde_json::from_str(PLEX_SECTIONS).unwrap();
                // The movie section holds the test's library.
                sections["MediaContainer"]["Directory"][0]["Location"][0]["path"] =
                    json!(plex_root);
                return HttpResponse::Ok().json(sections);
            }
            if hit.path.starts_with("/plex/library/sections/") && hit.path.ends_with("/refresh") {
                return HttpResponse::Ok().finish();
            }
            HttpResponse::NotFound().finish()
        }
        _ => HttpResponse::NotFound().finish(),
    }
}
