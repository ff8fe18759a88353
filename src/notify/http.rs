//! The HTTP targets. Each answers the way its service documents: 2xx is delivered; 429 and
//! 5xx (and a transport error) are tried again, with the service's own wait when it says
//! one; other 4xx are refusals that fail the job at once.

use std::path::Path;
use std::time::Duration;

use cuewarden_actors::clients::{LocalBoxFuture, Notifier, NotifyError};
use cuewarden_actors::notify::{Notification, NotifyEvent};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use url::Url;

use crate::config::{
    AppriseNotify, DiscordNotify, GotifyNotify, KodiNotify, NtfyNotify, PlexNotify, PushoverNotify,
};

/// Most characters of an error body kept in a reason.
const BODY_EXCERPT: usize = 200;
/// Discord: most characters of an embed's description.
const DISCORD_DESCRIPTION: usize = 4000;
/// Pushover: most characters of a message.
const PUSHOVER_MESSAGE: usize = 1024;
/// Kodi: more folders than this in one message scan the whole library once.
const KODI_MAX_FOLDERS: usize = 10;

fn transport(err: reqwest::Error) -> NotifyError {
    NotifyError::retry(format!("request failed: {}", err.without_url()))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Seconds (fractional allowed) in a header.
fn header_secs(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let value = headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(86_400.0)))
}

/// A response as a result: 2xx is `Ok`; the rest is a [`NotifyError`] naming the status and
/// an excerpt of the body. `retry_after` reads a wait from a 429's body (Discord's).
async fn checked(
    response: Response,
    retry_after: fn(&Value) -> Option<Duration>,
) -> Result<Response, NotifyError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    let excerpt = truncate(body.trim(), BODY_EXCERPT);
    let reason = if excerpt.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {excerpt}", status.as_u16())
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        let wait = header_secs(&headers, "x-ratelimit-reset-after")
            .or_else(|| header_secs(&headers, RETRY_AFTER.as_str()))
            .or_else(|| {
                serde_json::from_str(&body)
                    .ok()
                    .as_ref()
                    .and_then(retry_after)
            });
        return Err(NotifyError::Retry {
            reason,
            retry_after: wait,
        });
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return Err(NotifyError::retry(reason));
    }
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(NotifyError::Permanent(format!(
            "credentials refused ({reason})"
        )));
    }
    Err(NotifyError::Permanent(reason))
}

fn no_wait(_: &Value) -> Option<Duration> {
    None
}

/// Discord's `retry_after`: seconds (fractional).
fn discord_wait(body: &Value) -> Option<Duration> {
    let secs = body.get("retry_after")?.as_f64()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// `[notify.discord]`: a webhook message with one embed.
pub struct Discord {
    http: Client,
    config: DiscordNotify,
}

impl Discord {
    /// A Discord target.
    pub fn new(http: Client, config: DiscordNotify) -> Self {
        Self { http, config }
    }
}

impl Notifier for Discord {
    fn name(&self) -> &str {
        "discord"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let request = self
            .http
            .post(self.config.webhook_url.expose())
            .json(&json!({
                "username": "cuewarden",
                "content": n.title(),
                "embeds": [{
                    "title": truncate(&n.title(), 256),
                    "description": truncate(&n.body(), DISCORD_DESCRIPTION),
                    "color": if n.event == NotifyEvent::Failed { 15_158_332 } else { 3_066_993 },
                }],
                "allowed_mentions": {"parse": []},
            }));
        Box::pin(async move {
            let response = request.send().await.map_err(transport)?;
            checked(response, discord_wait).await.map(drop)
        })
    }
}

/// `[notify.ntfy]`: JSON publishing to the server's root.
pub struct Ntfy {
    http: Client,
    config: NtfyNotify,
}

impl Ntfy {
    /// An ntfy target.
    pub fn new(http: Client, config: NtfyNotify) -> Self {
        Self { http, config }
    }
}

impl Notifier for Ntfy {
    fn name(&self) -> &str {
        "ntfy"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let tag = if n.event == NotifyEvent::Failed {
            "warning"
        } else {
            "memo"
        };
        let mut request = self.http.post(self.config.url.clone()).json(&json!({
            "topic": self.config.topic,
            "title": n.title(),
            "message": n.body(),
            "priority": self.config.priority,
            "tags": [tag],
        }));
        if let Some(token) = &self.config.token {
            request = request.bearer_auth(token.expose());
        } else if let Some(password) = &self.config.password {
            request = request.basic_auth(&self.config.username, Some(password.expose()));
        }
        Box::pin(async move {
            let response = request.send().await.map_err(transport)?;
            checked(response, no_wait).await.map(drop)
        })
    }
}

/// `[notify.gotify]`: `POST /message` with the application token in `X-Gotify-Key`.
pub struct Gotify {
    http: Client,
    config: GotifyNotify,
}

impl Gotify {
    /// A Gotify target.
    pub fn new(http: Client, config: GotifyNotify) -> Self {
        Self { http, config }
    }
}

/// `base` joined with `path` below its own path (`https://h/gotify` + `message`).
fn below(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

impl Notifier for Gotify {
    fn name(&self) -> &str {
        "gotify"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let request = self
            .http
            .post(below(&self.config.url, "message"))
            .header("X-Gotify-Key", self.config.token.expose())
            .json(&json!({
                "title": n.title(),
                "message": n.body(),
                "priority": self.config.priority,
                "extras": {"client::display": {"contentType": "text/plain"}},
            }));
        Box::pin(async move {
            let response = request.send().await.map_err(transport)?;
            checked(response, no_wait).await.map(drop)
        })
    }
}

/// `[notify.pushover]`: a form-encoded `POST /1/messages.json`.
pub struct Pushover {
    http: Client,
    config: PushoverNotify,
}

impl Pushover {
    /// A Pushover target.
    pub fn new(http: Client, config: PushoverNotify) -> Self {
        Self { http, config }
    }
}

impl Notifier for Pushover {
    fn name(&self) -> &str {
        "pushover"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", self.config.token.expose())
            .append_pair("user", &self.config.user)
            .append_pair("title", &truncate(&n.title(), 250))
            .append_pair("message", &truncate(&n.body(), PUSHOVER_MESSAGE))
            .append_pair("priority", &self.config.priority.to_string());
        if !self.config.devices.is_empty() {
            form.append_pair("device", &self.config.devices.join(","));
        }
        let request = self
            .http
            .post(below(&self.config.url, "1/messages.json"))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.finish());
        Box::pin(async move {
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                // `{"status":0,"errors":[…]}`: say what Pushover said.
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let errors: Vec<&str> = body
                    .get("errors")
                    .and_then(Value::as_array)
                    .map(|e| e.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                return Err(NotifyError::Permanent(format!(
                    "pushover refused the message (HTTP {}): {}",
                    status.as_u16(),
                    errors.join("; ")
                )));
            }
            let response = checked(response, no_wait).await?;
            let body: Value = response.json().await.map_err(|e| {
                NotifyError::retry(format!("unreadable answer: {}", e.without_url()))
            })?;
            match body.get("status").and_then(Value::as_i64) {
                Some(1) => Ok(()),
                _ => Err(NotifyError::retry(format!(
                    "pushover answered without status 1: {}",
                    truncate(&body.to_string(), BODY_EXCERPT)
                ))),
            }
        })
    }
}

/// `[notify.apprise]`: an Apprise API server, stateless (`urls`) or with a kept
/// configuration (`key`).
pub struct Apprise {
    http: Client,
    config: AppriseNotify,
}

impl Apprise {
    /// An Apprise target.
    pub fn new(http: Client, config: AppriseNotify) -> Self {
        Self { http, config }
    }
}

impl Notifier for Apprise {
    fn name(&self) -> &str {
        "apprise"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let kind = if n.event == NotifyEvent::Failed {
            "failure"
        } else {
            "success"
        };
        let mut body = json!({"title": n.title(), "body": n.body(), "type": kind});
        let url = match &self.config.urls {
            Some(urls) => {
                body["urls"] = json!(urls.expose());
                below(&self.config.url, "notify")
            }
            None => {
                if !self.config.tag.is_empty() {
                    body["tag"] = json!(self.config.tag);
                }
                below(&self.config.url, &format!("notify/{}", self.config.key))
            }
        };
        let request = self.http.post(url).json(&body);
        Box::pin(async move {
            let response = request.send().await.map_err(transport)?;
            // 424: some of the services failed; Apprise says so, and they may work later.
            if response.status() == StatusCode::FAILED_DEPENDENCY {
                let text = response.text().await.unwrap_or_default();
                return Err(NotifyError::retry(format!(
                    "apprise could not reach every service (HTTP 424): {}",
                    truncate(text.trim(), BODY_EXCERPT)
                )));
            }
            checked(response, no_wait).await.map(drop)
        })
    }
}

/// `[notify.kodi]`: `VideoLibrary.Scan` of each video's folder over JSON-RPC (errors come
/// with HTTP 200, in the answer's `error`).
pub struct Kodi {
    http: Client,
    config: KodiNotify,
}

impl Kodi {
    /// A Kodi target.
    pub fn new(http: Client, config: KodiNotify) -> Self {
        Self { http, config }
    }
}

/// A folder as Kodi names a directory: with a trailing slash.
fn kodi_directory(folder: &Path) -> String {
    let mut dir = folder.to_string_lossy().into_owned();
    if !dir.ends_with('/') {
        dir.push('/');
    }
    dir
}

impl Notifier for Kodi {
    fn name(&self) -> &str {
        "kodi"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let folders = n.folders();
        let directories: Vec<String> = if folders.len() > KODI_MAX_FOLDERS {
            vec![String::new()]
        } else {
            folders.iter().map(|f| kodi_directory(f)).collect()
        };
        let requests: Vec<_> = directories
            .into_iter()
            .enumerate()
            .map(|(i, directory)| {
                let mut request = self.http.post(self.config.url.clone()).json(&json!({
                    "jsonrpc": "2.0",
                    "method": "VideoLibrary.Scan",
                    "params": {"directory": directory, "showdialogs": false},
                    "id": i + 1,
                }));
                if let Some(password) = &self.config.password {
                    request = request.basic_auth(&self.config.username, Some(password.expose()));
                }
                request
            })
            .collect();
        Box::pin(async move {
            for request in requests {
                let response = request.send().await.map_err(transport)?;
                let response = checked(response, no_wait).await?;
                let answer: Value = response.json().await.map_err(|e| {
                    NotifyError::retry(format!("unreadable JSON-RPC answer: {}", e.without_url()))
                })?;
                if let Some(error) = answer.get("error") {
                    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
                    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
                    let reason = format!("kodi answered JSON-RPC error {code}: {message}");
                    // Internal error, failed to execute, unavailable: Kodi may manage later.
                    return Err(if matches!(code, -32603 | -32100 | -32097) {
                        NotifyError::retry(reason)
                    } else {
                        NotifyError::Permanent(reason)
                    });
                }
                if answer.get("result").is_none() {
                    return Err(NotifyError::retry(format!(
                        "kodi answered neither result nor error: {}",
                        truncate(&answer.to_string(), BODY_EXCERPT)
                    )));
                }
            }
            Ok(())
        })
    }
}

/// `[notify.plex]`: a partial scan (`path=`) of the section holding each video's folder.
pub struct Plex {
    http: Client,
    config: PlexNotify,
}

impl Plex {
    /// A Plex target.
    pub fn new(http: Client, config: PlexNotify) -> Self {
        Self { http, config }
    }
}

/// A section `key` (a string in real answers, a number in old ones).
fn plex_key(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The key of the section whose location holds `folder` (the longest such location).
fn plex_section(sections: &Value, folder: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for dir in sections
        .pointer("/MediaContainer/Directory")
        .and_then(Value::as_array)?
    {
        let Some(key) = dir.get("key").and_then(plex_key) else {
            continue;
        };
        for location in dir
            .get("Location")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(path) = location.get("path").and_then(Value::as_str) else {
                continue;
            };
            let root = Path::new(path.trim_end_matches('/'));
            if folder.starts_with(root) && best.as_ref().is_none_or(|(len, _)| path.len() > *len) {
                best = Some((path.len(), key.clone()));
            }
        }
    }
    best.map(|(_, key)| key)
}

impl Notifier for Plex {
    fn name(&self) -> &str {
        "plex"
    }

    fn send(&self, n: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        let http = self.http.clone();
        let base = self.config.url.clone();
        let token = self.config.token.expose().to_owned();
        let folders = n.folders();
        Box::pin(async move {
            let response = http
                .get(below(&base, "library/sections"))
                .header("X-Plex-Token", &token)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(transport)?;
            let sections: Value = checked(response, no_wait)
                .await?
                .json()
                .await
                .map_err(|e| {
                    NotifyError::retry(format!("unreadable sections: {}", e.without_url()))
                })?;
            for folder in folders {
                let Some(key) = plex_section(&sections, &folder) else {
                    return Err(NotifyError::Permanent(format!(
                        "no Plex library section holds {}",
                        folder.display()
                    )));
                };
                let mut url = below(&base, &format!("library/sections/{key}/refresh"));
                url.query_pairs_mut()
                    .append_pair("path", &folder.to_string_lossy());
                let response = http
                    .get(url)
                    .header("X-Plex-Token", &token)
                    .send()
                    .await
                    .map_err(transport)?;
                checked(response, no_wait).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plex_section_is_the_longest_location_holding_the_folder() {
        let sections: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/notify/plex_sections.json"
        ))
        .unwrap();
        assert_eq!(
            plex_section(&sections, Path::new("/data/movies/Example Movie (2019)")),
            Some("1".to_owned())
        );
        assert_eq!(
            plex_section(&sections, Path::new("/data/tv2/Show/Season 1")),
            Some("2".to_owned())
        );
        assert_eq!(plex_section(&sections, Path::new("/data/music")), None);
        // A folder beside a location is not inside it.
        assert_eq!(
            plex_section(&sections, Path::new("/data/moviesextra/x")),
            None
        );
    }

    #[test]
    fn discord_waits_as_its_body_says() {
        let body: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/notify/discord_429.json"))
                .unwrap();
        assert_eq!(discord_wait(&body), Some(Duration::from_millis(512)));
    }

    #[test]
    fn a_base_path_is_kept_when_joining() {
        let base = Url::parse("https://h.example/gotify/").unwrap();
        assert_eq!(
            below(&base, "message").as_str(),
            "https://h.example/gotify/message"
        );
        let bare = Url::parse("https://h.example").unwrap();
        assert_eq!(
            below(&bare, "notify/k").as_str(),
            "https://h.example/notify/k"
        );
    }
}
