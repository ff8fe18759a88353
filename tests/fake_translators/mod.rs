//! Loopback fakes of the three machine-translation services, on port 0, speaking their
//! documented protocols:
//!
//! - **DeepL v2**: `POST /v2/translate` (JSON), `Authorization: DeepL-Auth-Key <key>` only
//!   (a key in the body or the query is refused, as the real API now does), ≤ 50 texts and
//!   ≤ 128 KiB bodies (413), regional target codes checked (`EN`/`PT` alone and regional
//!   source codes are 400), `tag_handling: "xml"` parsed strictly (a bare `&` or `<` is a
//!   400, as DeepL's XML parser is), keys ending `:fx` refused with the real 403 "Wrong
//!   endpoint" unless the fake plays the Free host ([`Fake::free_host`]), and vice versa.
//! - **LibreTranslate**: `POST /translate` with `q` a string or an array, `api_key` in the
//!   body (400 when the server wants one and none came, 403 when it is wrong), `format`
//!   `text` (markup is *not* protected: tags are dropped, as an MT model would mangle them)
//!   or `html` (tags kept), `{"error": …}` bodies; `GET /languages`.
//! - **OpenAI-compatible**: `POST /v1/chat/completions`, `Authorization: Bearer`, the model
//!   checked (Ollama's 404 when unknown), the user message read as the client's JSON
//!   (`{"before":[…],"cues":[{"n":1,"text":"…"}],"after":[…]}`) or as numbered lines
//!   (`1: …`), answered as `{"translations":[{"n":1,"text":"…"}]}` or, when the fake plays
//!   a server without structured output ([`Fake::plain`]), as numbered lines after a chatty
//!   preamble. A `response_format` of type `json_schema` is refused with a flat vLLM error
//!   when the fake plays a server that lacks it ([`Fake::no_schema`]).
//!
//! The translation is deterministic and reversible ([`translate`]): every run of letters is
//! reversed, markup (`<…>`, `{…}`) and XML entities (`&amp;`) are kept, so a test can check
//! every cue. Faults are scripted per request ([`Fault`]): 429 with `Retry-After`
//! (`retry-after-ms` too for OpenAI), quota (DeepL 456, OpenAI `insufficient_quota`), 403
//! wrong host, truncation (`finish_reason: "length"`, 413), a batch answered with a dropped,
//! merged, extra, empty or reordered cue, 5xx, garbage, a hang. Every request is recorded
//! (path, body bytes, parsed JSON) for assertions, and a latency can be set.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The key every fake accepts (a Pro DeepL key: no `:fx`).
pub const API_KEY: &str = "translator-test-key";
/// A DeepL Free key.
pub const FREE_KEY: &str = "translator-test-key:fx";
/// The model the OpenAI-compatible fake serves.
pub const MODEL: &str = "llama3.1:8b";
/// DeepL's body limit.
pub const DEEPL_MAX_BODY: usize = 128 * 1024;

/// DeepL's target codes (v2 `/languages?type=target`, the usual ones).
const DEEPL_TARGETS: &[&str] = &[
    "AR", "BG", "CS", "DA", "DE", "EL", "EN-GB", "EN-US", "ES", "ES-419", "ET", "FI", "FR", "HE",
    "HU", "ID", "IT", "JA", "KO", "LT", "LV", "NB", "NL", "PL", "PT-BR", "PT-PT", "RO", "RU", "SK",
    "SL", "SV", "TH", "TR", "UK", "VI", "ZH", "ZH-HANS", "ZH-HANT", "EN", "PT",
];

/// What one scripted answer does (the next request of any service).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The normal answer.
    None,
    /// 429 with `Retry-After: secs` (OpenAI: also `retry-after-ms`).
    RateLimited(u64),
    /// DeepL 456; OpenAI 429 `insufficient_quota`; LibreTranslate (which has no quota) 429.
    Quota,
    /// DeepL 403 "Wrong endpoint"; others 403 with their shape.
    WrongHost,
    /// OpenAI: 200 with `finish_reason: "length"` and half the lines; DeepL 413;
    /// LibreTranslate 400 "exceeds text limit".
    Truncated,
    /// The last cue is missing from the answer.
    Drop,
    /// The first two cues come back merged into one.
    Merge,
    /// One cue too many.
    Extra,
    /// The second cue (or the only one) comes back empty.
    Empty,
    /// The first two cues come back swapped (OpenAI: with their numbers, so the order of the
    /// lines changes but each number keeps its text).
    Reorder,
    /// OpenAI: a cue number appears twice (and another is missing).
    Duplicate,
    /// This HTTP status with an HTML body.
    Status(u16),
    /// 200 with an HTML page.
    Garbage,
    /// Waits this long, then answers normally.
    Hang(Duration),
    /// OpenAI: the error comes back in the flat vLLM shape (`{"object":"error",…}`) with
    /// this status.
    FlatError(u16),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub bytes: usize,
    pub body: Value,
}

pub struct State {
    pub latency: Duration,
    pub script: VecDeque<Fault>,
    pub default: Fault,
    /// The key expected (DeepL always; LibreTranslate and OpenAI only when `Some`).
    pub api_key: Option<String>,
    /// DeepL: this fake is `api-free.deepl.com` (only `:fx` keys) rather than the Pro host.
    pub free_host: bool,
    /// OpenAI: the model served (others are 404).
    pub model: String,
    /// OpenAI: no `json_schema` response format (400, flat vLLM error).
    pub no_schema: bool,
    /// OpenAI: answers numbered lines, not JSON.
    pub plain: bool,
    /// LibreTranslate: most texts per request (400 beyond), `None` = unlimited.
    pub batch_limit: Option<usize>,
    /// LibreTranslate: the target codes served (others: 400 "… is not supported").
    pub libre_targets: Vec<String>,
    pub log: Vec<Logged>,
    /// Characters (code points) translated, as a service bills them.
    pub characters: usize,
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

/// The deterministic "translation": each run of letters reversed; markup (`<…>`, `{…}`),
/// entities (`&…;`), digits, punctuation, spaces and line breaks kept. It is its own
/// inverse, so `translate(&translate(t)) == t`.
pub fn translate(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let close = match c {
            '<' => Some('>'),
            '{' => Some('}'),
            '&' => Some(';'),
            _ => None,
        };
        if let Some(close) = close {
            // Markup only when it closes before the next opener or line break (a lone `<`
            // or `&` is text).
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == close || d == '\n' || d == '<' || d == '{' || d == '&')
                .map(|p| p + i + 1)
                .filter(|&e| chars[e] == close);
            if let Some(end) = end {
                out.extend(&chars[i..=end]);
                i = end + 1;
                continue;
            }
        }
        if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            out.extend(chars[start..i].iter().rev());
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Markup removed (`<…>`, `{…}`), as a service translating plain text loses it.
fn strip_markup(text: &str) -> String {
    let mut out = String::new();
    let mut depth: Option<char> = None;
    for c in text.chars() {
        match (depth, c) {
            (None, '<') => depth = Some('>'),
            (None, '{') => depth = Some('}'),
            (Some(close), c) if c == close => depth = None,
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    out
}

/// Whether `text` is what DeepL's XML parser accepts: tags well formed, `&` only in
/// entities, no bare `<` or `>`.
fn well_formed_xml(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find(['<', '>', '&']) {
        let tail = &rest[i..];
        if tail.starts_with('>') {
            return false;
        }
        if tail.starts_with('&') {
            let Some(end) = tail.find(';') else {
                return false;
            };
            let name = &tail[1..end];
            if !(name.starts_with('#') || ["amp", "lt", "gt", "quot", "apos"].contains(&name)) {
                return false;
            }
            rest = &tail[end + 1..];
            continue;
        }
        let Some(end) = tail.find('>') else {
            return false;
        };
        let inner = &tail[1..end];
        let name = inner.trim_start_matches('/');
        if name.is_empty()
            || !name.starts_with(|c: char| c.is_ascii_alphabetic())
            || inner.contains('<')
        {
            return false;
        }
        rest = &tail[end + 1..];
    }
    true
}

fn html(status: u16) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("text/html")
        .body("<html><body><h1>502 Bad Gateway</h1></body></html>")
}

fn garbage() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html")
        .body("<!DOCTYPE html><html><title>Just a moment...</title></html>")
}

/// Applies a batch fault to the translated texts (in order).
fn mangle(fault: &Fault, mut texts: Vec<String>) -> Vec<String> {
    match fault {
        Fault::Drop => {
            texts.pop();
        }
        Fault::Merge if texts.len() >= 2 => {
            let second = texts.remove(1);
            texts[0] = format!("{} {second}", texts[0]);
        }
        Fault::Merge => texts.clear(),
        Fault::Extra => texts.push(" artxe".to_owned()),
        Fault::Empty => {
            let i = usize::from(texts.len() >= 2);
            if let Some(text) = texts.get_mut(i) {
                text.clear();
            }
        }
        Fault::Reorder if texts.len() >= 2 => texts.swap(0, 1),
        _ => {}
    }
    texts
}

impl Fake {
    /// A fake of all three services on one port (each has its own paths); DeepL plays the
    /// Pro host, keys are [`API_KEY`].
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            latency: Duration::ZERO,
            script: VecDeque::new(),
            default: Fault::None,
            api_key: Some(API_KEY.to_owned()),
            free_host: false,
            model: MODEL.to_owned(),
            no_schema: false,
            plain: false,
            batch_limit: None,
            libre_targets: ["de", "en", "es", "fr", "pt", "pt-BR", "zh-Hans", "zh-Hant"]
                .map(str::to_owned)
                .to_vec(),
            log: Vec::new(),
            characters: 0,
        }));
        let (sender, receiver) = mpsc::channel();
        let shared = state.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let data = web::Data::new(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
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

    pub fn with<T>(&self, edit: impl FnOnce(&mut State) -> T) -> T {
        edit(&mut self.state.lock().unwrap())
    }

    /// The next requests answer these faults, in order (then the default).
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with(|s| s.script.extend(faults));
    }

    /// Every request waits this long before its answer.
    pub fn latency(&self, latency: Duration) {
        self.with(|s| s.latency = latency);
    }

    /// DeepL: play `api-free.deepl.com` (only `:fx` keys, [`FREE_KEY`]).
    pub fn free_host(&self) {
        self.with(|s| {
            s.free_host = true;
            s.api_key = Some(FREE_KEY.to_owned());
        });
    }

    /// OpenAI: a server without `json_schema` response formats.
    pub fn no_schema(&self) {
        self.with(|s| s.no_schema = true);
    }

    /// OpenAI: a server (model) that answers numbered lines, not JSON.
    pub fn plain(&self) {
        self.with(|s| s.plain = true);
    }

    /// The `[translator]` section for `kind` pointing here, plus `extra` lines.
    pub fn config(&self, kind: &str, extra: &str) -> String {
        let url = match kind {
            "openai" => format!("{}/v1", self.base),
            _ => self.base.clone(),
        };
        let key = self.with(|s| s.api_key.clone()).unwrap_or_default();
        let model = if kind == "openai" {
            format!("model = \"{MODEL}\"\n")
        } else {
            String::new()
        };
        format!(
            "[translator]\nkind = \"{kind}\"\nurl = \"{url}\"\napi_key = \"{key}\"\n{model}{extra}"
        )
    }

    /// The requests whose path ends with `suffix`.
    pub fn requests(&self, suffix: &str) -> Vec<Logged> {
        self.with(|s| {
            s.log
                .iter()
                .filter(|l| l.path.ends_with(suffix))
                .cloned()
                .collect()
        })
    }

    /// How many translation requests came (any service).
    pub fn count(&self) -> usize {
        self.with(|s| s.log.iter().filter(|l| l.method == "POST").count())
    }

    /// Bytes of all request bodies.
    pub fn bytes(&self) -> usize {
        self.with(|s| s.log.iter().map(|l| l.bytes).sum())
    }

    /// The last request's parsed body.
    pub fn last_body(&self) -> Value {
        self.with(|s| s.log.last().map(|l| l.body.clone()).unwrap_or(Value::Null))
    }
}

fn next_fault(state: &Mutex<State>) -> Fault {
    let mut s = state.lock().unwrap();
    let d = s.default.clone();
    s.script.pop_front().unwrap_or(d)
}

async fn handle(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = request.path().to_owned();
    let method = request.method().to_string();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let latency = {
        let mut s = state.lock().unwrap();
        s.log.push(Logged {
            at: Instant::now(),
            method: method.clone(),
            path: path.clone(),
            query: request.query_string().to_owned(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            user_agent: header("user-agent"),
            bytes: body.len(),
            body: parsed.clone(),
        });
        s.latency
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match (method.as_str(), path.as_str()) {
        ("POST", "/v2/translate") => {
            deepl(&request, header("authorization"), &body, parsed, &state).await
        }
        ("POST", "/translate") => libre(parsed, &state).await,
        ("GET", "/languages") => HttpResponse::Ok().json(json!([
            {"code": "en", "name": "English", "targets": ["de", "en", "es", "fr", "pt", "pt-BR"]},
            {"code": "fr", "name": "French", "targets": ["de", "en", "es", "fr"]}
        ])),
        ("POST", "/v1/chat/completions") => openai(header("authorization"), parsed, &state).await,
        _ => HttpResponse::NotFound().json(json!({"message": "not found"})),
    }
}

/// Faults every service answers the same way; `None` = go on.
async fn common_fault(fault: &Fault) -> Option<HttpResponse> {
    match fault {
        Fault::Status(status) => Some(html(*status)),
        Fault::Garbage => Some(garbage()),
        Fault::Hang(duration) => {
            tokio::time::sleep(*duration).await;
            None
        }
        _ => None,
    }
}

async fn deepl(
    request: &HttpRequest,
    authorization: Option<String>,
    body: &[u8],
    parsed: Value,
    state: &Mutex<State>,
) -> HttpResponse {
    let message = |status: u16, text: &str| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({"message": text}))
    };
    if parsed.get("auth_key").is_some() || request.query_string().contains("auth_key") {
        return message(
            403,
            "Legacy authentication method 'form body' is no longer supported. Please use the Authorization header instead.",
        );
    }
    let (expected, free_host) = {
        let s = state.lock().unwrap();
        (s.api_key.clone().unwrap_or_default(), s.free_host)
    };
    let Some(key) =
        authorization.and_then(|a| a.strip_prefix("DeepL-Auth-Key ").map(str::to_owned))
    else {
        return message(403, "Authorization failure, check auth_key");
    };
    if key.ends_with(":fx") != free_host {
        let other = if free_host {
            "https://api.deepl.com"
        } else {
            "https://api-free.deepl.com"
        };
        return message(403, &format!("Wrong endpoint. Use {other}"));
    }
    if key != expected {
        return message(403, "Authorization failure, check auth_key");
    }
    if body.len() > DEEPL_MAX_BODY {
        return message(413, "Request Entity Too Large");
    }
    let fault = next_fault(state);
    if let Some(response) = common_fault(&fault).await {
        return response;
    }
    match fault {
        Fault::RateLimited(secs) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .json(json!({"message": "Too many requests"}));
        }
        Fault::Quota => return message(456, "Quota exceeded"),
        Fault::WrongHost => return message(403, "Wrong endpoint. Use https://api-free.deepl.com"),
        Fault::Truncated => return message(413, "Request Entity Too Large"),
        _ => {}
    }
    let Some(texts) = parsed["text"].as_array() else {
        return message(400, "Parameter 'text' not specified.");
    };
    if texts.len() > 50 {
        return message(
            400,
            "Too many texts: at most 50 'text' parameters are allowed.",
        );
    }
    let target = parsed["target_lang"]
        .as_str()
        .unwrap_or_default()
        .to_uppercase();
    if !DEEPL_TARGETS.contains(&target.as_str()) {
        return message(400, "Value for 'target_lang' not supported.");
    }
    if let Some(source) = parsed["source_lang"].as_str()
        && source.contains('-')
    {
        return message(400, "Value for 'source_lang' not supported.");
    }
    let xml = parsed["tag_handling"] == "xml";
    let mut out = Vec::new();
    for text in texts {
        let Some(text) = text.as_str() else {
            return message(400, "Parameter 'text' must be a string.");
        };
        if xml && !well_formed_xml(text) {
            return message(400, "Tag handling parsing failed, please check input.");
        }
        state.lock().unwrap().characters += text.chars().count();
        out.push(translate(text));
    }
    let out = mangle(&fault, out);
    HttpResponse::Ok().json(json!({
        "translations": out
            .into_iter()
            .map(|text| json!({"detected_source_language": "EN", "text": text}))
            .collect::<Vec<_>>()
    }))
}

async fn libre(parsed: Value, state: &Mutex<State>) -> HttpResponse {
    let error = |status: u16, text: &str| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({"error": text}))
    };
    let (expected, batch_limit, targets) = {
        let s = state.lock().unwrap();
        (s.api_key.clone(), s.batch_limit, s.libre_targets.clone())
    };
    if parsed.is_null() {
        return error(400, "Invalid JSON format");
    }
    if let Some(expected) = expected {
        match parsed["api_key"].as_str() {
            None | Some("") => {
                return error(
                    400,
                    "Invalid request: missing api_key parameter. Please contact the server operator to get an API key",
                );
            }
            Some(key) if key != expected => return error(403, "Invalid API key"),
            Some(_) => {}
        }
    }
    let fault = next_fault(state);
    if let Some(response) = common_fault(&fault).await {
        return response;
    }
    let (single, texts): (bool, Vec<String>) = match &parsed["q"] {
        Value::String(q) => (true, vec![q.clone()]),
        Value::Array(items) => (
            false,
            items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect(),
        ),
        _ => return error(400, "Invalid request: missing q parameter"),
    };
    match fault {
        Fault::RateLimited(secs) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", secs.to_string()))
                .json(json!({"error": "Slowdown: 10 per 1 minute"}));
        }
        Fault::Quota => return error(429, "Slowdown: 10 per 1 minute"),
        Fault::WrongHost => return error(403, "Too many request limits violations"),
        Fault::Truncated => {
            return error(
                400,
                &format!(
                    "Invalid request: request ({}) exceeds text limit ({})",
                    texts.len(),
                    texts.len() / 2
                ),
            );
        }
        _ => {}
    }
    if let Some(limit) = batch_limit
        && texts.len() > limit
    {
        return error(
            400,
            &format!(
                "Invalid request: request ({}) exceeds text limit ({limit})",
                texts.len()
            ),
        );
    }
    let target = parsed["target"].as_str().unwrap_or_default();
    if !targets.iter().any(|t| t == target) {
        return error(400, &format!("{target} is not supported"));
    }
    let html = parsed["format"] == "html";
    let out: Vec<String> = texts
        .iter()
        .map(|text| {
            state.lock().unwrap().characters += text.chars().count();
            if html {
                translate(text)
            } else {
                translate(&strip_markup(text))
            }
        })
        .collect();
    let out = mangle(&fault, out);
    if single {
        HttpResponse::Ok().json(json!({"translatedText": out.first().cloned().unwrap_or_default()}))
    } else {
        HttpResponse::Ok().json(json!({"translatedText": out}))
    }
}

/// The cues of an OpenAI request's last user message: `(n, text)`, from the client's JSON
/// or from numbered lines.
fn chat_cues(parsed: &Value) -> Vec<(u64, String)> {
    let content = parsed["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    if let Ok(value) = serde_json::from_str::<Value>(&content)
        && let Some(cues) = value["cues"].as_array()
    {
        return cues
            .iter()
            .map(|c| {
                (
                    c["n"].as_u64().unwrap_or(0),
                    c["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
    }
    content
        .lines()
        .filter_map(|line| {
            let (n, text) = line.split_once(':')?;
            Some((n.trim().parse().ok()?, text.trim().to_owned()))
        })
        .collect()
}

async fn openai(
    authorization: Option<String>,
    parsed: Value,
    state: &Mutex<State>,
) -> HttpResponse {
    let error = |status: u16, message: &str, kind: &str, code: Value| {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).json(json!({
            "error": {"message": message, "type": kind, "param": null, "code": code}
        }))
    };
    let (expected, model, no_schema, plain) = {
        let s = state.lock().unwrap();
        (s.api_key.clone(), s.model.clone(), s.no_schema, s.plain)
    };
    if let Some(expected) = expected
        && authorization.as_deref() != Some(format!("Bearer {expected}").as_str())
    {
        return error(
            401,
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            json!("invalid_api_key"),
        );
    }
    if parsed.is_null() {
        return error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            Value::Null,
        );
    }
    if parsed["model"] != model.as_str() {
        return error(
            404,
            &format!(
                "model \"{}\" not found, try pulling it first",
                parsed["model"].as_str().unwrap_or_default()
            ),
            "not_found_error",
            Value::Null,
        );
    }
    if no_schema && parsed["response_format"]["type"] == "json_schema" {
        return HttpResponse::BadRequest().json(json!({
            "object": "error",
            "message": "response_format type json_schema is not supported by this server",
            "type": "BadRequestError",
            "param": null,
            "code": 400
        }));
    }
    let fault = next_fault(state);
    if let Some(response) = common_fault(&fault).await {
        return response;
    }
    match fault {
        Fault::RateLimited(secs) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("retry-after-ms", (secs * 1000).to_string()))
                .insert_header(("retry-after", secs.to_string()))
                .json(json!({"error": {
                    "message": "Rate limit reached for requests. Please try again in 2s.",
                    "type": "requests", "param": null, "code": "rate_limit_exceeded"}}));
        }
        Fault::Quota => {
            return error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                json!("insufficient_quota"),
            );
        }
        Fault::WrongHost => {
            return error(
                403,
                "Project does not have access to this model",
                "invalid_request_error",
                Value::Null,
            );
        }
        Fault::FlatError(status) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .json(json!({
                    "object": "error",
                    "message": "The model is overloaded",
                    "type": "ServiceUnavailableError",
                    "param": null,
                    "code": status
                }));
        }
        _ => {}
    }
    let cues = chat_cues(&parsed);
    let mut translated: Vec<(u64, String)> = cues
        .iter()
        .map(|(n, text)| {
            state.lock().unwrap().characters += text.chars().count();
            (*n, translate(text))
        })
        .collect();
    let mut finish = "stop";
    match fault {
        Fault::Truncated => {
            translated.truncate(translated.len() / 2);
            finish = "length";
        }
        Fault::Reorder if translated.len() >= 2 => translated.swap(0, 1),
        Fault::Duplicate if translated.len() >= 2 => translated[1].0 = translated[0].0,
        Fault::Extra => {
            let n = translated.last().map_or(1, |(n, _)| n + 1);
            translated.push((n, "artxe".to_owned()));
        }
        Fault::Drop | Fault::Merge | Fault::Empty => {
            let numbers: Vec<u64> = translated.iter().map(|(n, _)| *n).collect();
            let texts = mangle(&fault, translated.into_iter().map(|(_, t)| t).collect());
            translated = numbers.into_iter().zip(texts).collect();
        }
        _ => {}
    }
    let content = if plain {
        let lines: Vec<String> = translated
            .iter()
            .map(|(n, text)| format!("{n}: {text}"))
            .collect();
        format!("Sure! Here are the translations:\n\n{}", lines.join("\n"))
    } else {
        let items: Vec<Value> = translated
            .iter()
            .map(|(n, text)| json!({"n": n, "text": text}))
            .collect();
        let mut text = json!({"translations": items}).to_string();
        if finish == "length" {
            // Cut inside the JSON, as a real truncation is.
            text.truncate(text.len().saturating_sub(3));
        }
        text
    };
    HttpResponse::Ok().json(json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_739_490_000,
        "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": null,
            "finish_reason": finish
        }],
        "usage": {"prompt_tokens": 41, "completion_tokens": 17, "total_tokens": 58}
    }))
}
