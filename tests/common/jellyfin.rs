//! A fake Jellyfin on loopback (port 0): HTTP and the `/socket` WebSocket on one port,
//! speaking the protocol as Jellyfin 10.9–12.0 do (README, "Jellyfin"):
//!
//! * `POST /Users/AuthenticateByName` needs `Authorization: MediaBrowser Client=…,
//!   Device=…, DeviceId=…, Version=…` (all four, else 400) and the user's password (else
//!   401); a new login with the same DeviceId logs that device's earlier tokens out.
//! * `GET /System/Info` and `GET /Items` take the API key or a user token
//!   (`Authorization: MediaBrowser Token="…"`, else 401). `/Items` filters by `Ids`,
//!   `MinDateLastSaved` (each item's save time), `IncludeItemTypes`, and pages with
//!   `StartIndex`/`Limit`.
//! * The upgrade to a WebSocket (any path ending in `socket`) needs a valid token in the
//!   header or `?ApiKey=`/`?api_key=` (else 403 "Token is required", as Jellyfin answers). A
//!   user socket gets `ForceKeepAlive` at once and is closed when it sends no `KeepAlive`
//!   within that timeout (as 12.0 does); every `KeepAlive` is answered. An API-key socket
//!   never receives `LibraryChanged` (nor `ForceKeepAlive`, as in 10.9/10.10).
//!
//! Tests drive it from their own thread: [`FakeJellyfin::library_changed`],
//! [`FakeJellyfin::send_raw`], [`FakeJellyfin::drop_sockets`], [`FakeJellyfin::add_item`],
//! [`FakeJellyfin::refuse_upgrades`], [`FakeJellyfin::revoke_tokens`], and read what it saw
//! ([`FakeJellyfin::logins`], [`FakeJellyfin::connects`], …). Reusable for remote subtitle
//! search and library sync: add routes in [`route`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
// tungstenite's handshake callback type returns a large error response.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use super::DEADLINE;

pub const API_KEY: &str = "jf-api-key-42";
pub const USER: &str = "subsync";
pub const PASSWORD: &str = "correct-horse-battery-staple";
pub const USER_ID: &str = "8d7c6b5a4f3e42d1c0b9a8f7e6d5c4b3";

/// A login the fake answered.
#[derive(Debug, Clone)]
pub struct Login {
    pub at: Instant,
    pub device_id: String,
    pub client: String,
    pub version: String,
    pub ok: bool,
}

/// A socket upgrade the fake was asked for.
#[derive(Debug, Clone)]
pub struct Connect {
    pub at: Instant,
    /// `None`: accepted; else the HTTP status it refused with.
    pub refused: Option<u16>,
    /// Accepted with a user token (not the API key).
    pub is_user: bool,
    pub device_id: Option<String>,
    /// When the fake dropped or closed it (or the client went away).
    pub ended_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    /// Item JSON and its save time.
    items: Vec<(Value, jiff::Timestamp)>,
    /// token → device id of the user tokens in force.
    tokens: HashMap<String, String>,
    logins: Vec<Login>,
    connects: Vec<Connect>,
    open_sockets: usize,
    keepalives: usize,
    /// Query strings of every `/Items` call, and when each came.
    item_queries: Vec<String>,
    item_query_times: Vec<Instant>,
    refuse_upgrades: bool,
    force_keepalive_secs: u64,
}

#[derive(Clone, Debug)]
enum Push {
    /// A message for user sockets (`LibraryChanged`).
    ToUsers(String),
    /// A text frame for every socket, as is.
    Raw(String),
    /// Close every socket at once, without a close frame.
    Drop,
}

/// The fake server; stops with the test process.
pub struct FakeJellyfin {
    /// Base URL, with the path prefix if any (`http://127.0.0.1:PORT/jellyfin`).
    pub url: String,
    state: Arc<Mutex<State>>,
    pushes: broadcast::Sender<Push>,
}

impl FakeJellyfin {
    pub fn start() -> Self {
        Self::start_under("")
    }

    /// Served under a base path (`/jellyfin`), as behind a reverse proxy.
    pub fn start_under(prefix: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            force_keepalive_secs: 60,
            ..State::default()
        }));
        let (pushes, _) = broadcast::channel(1024);
        let (address_sender, address) = std::sync::mpsc::channel();
        let shared = state.clone();
        let sender = pushes.clone();
        let prefix_owned = prefix.trim_end_matches('/').to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                address_sender.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = shared.clone();
                    let pushes = sender.subscribe();
                    let prefix = prefix_owned.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, state, pushes, prefix).await;
                    });
                }
            });
        });
        let address = address.recv().unwrap();
        Self {
            url: format!("http://{address}{}", prefix.trim_end_matches('/')),
            state,
            pushes,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Adds an item (saved now).
    pub fn add_item(&self, item: Value) {
        let now = jiff::Timestamp::now();
        let mut item = item;
        item["DateCreated"] = json!(format!("{now:.7}"));
        self.with(|s| s.items.push((item, now)));
    }

    /// Pushes `LibraryChanged` with these added and updated ids to every user socket.
    pub fn library_changed(&self, added: &[&str], updated: &[&str]) {
        let message = json!({
            "MessageType": "LibraryChanged",
            "Data": {
                "FoldersAddedTo": [], "FoldersRemovedFrom": [],
                "ItemsAdded": added, "ItemsRemoved": [], "ItemsUpdated": updated,
                "CollectionFolders": [], "IsEmpty": false,
            },
            "MessageId": uuid::Uuid::new_v4().simple().to_string(),
        });
        let _ = self.pushes.send(Push::ToUsers(message.to_string()));
    }

    /// Sends a text frame as is to every socket.
    pub fn send_raw(&self, text: &str) {
        let _ = self.pushes.send(Push::Raw(text.to_owned()));
    }

    /// Drops every socket (no close frame: like a network cut or a restart).
    pub fn drop_sockets(&self) {
        let _ = self.pushes.send(Push::Drop);
    }

    /// Refuses (503) every socket upgrade while set.
    pub fn refuse_upgrades(&self, refuse: bool) {
        self.with(|s| s.refuse_upgrades = refuse);
    }

    /// Logs every user token out (as a password change or an admin would).
    pub fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// The `ForceKeepAlive` timeout sent to new sockets (and enforced).
    pub fn set_force_keepalive_secs(&self, secs: u64) {
        self.with(|s| s.force_keepalive_secs = secs);
    }

    pub fn logins(&self) -> Vec<Login> {
        self.with(|s| s.logins.clone())
    }

    pub fn connects(&self) -> Vec<Connect> {
        self.with(|s| s.connects.clone())
    }

    /// Accepted socket upgrades.
    pub fn accepted(&self) -> Vec<Connect> {
        self.with(|s| {
            s.connects
                .iter()
                .filter(|c| c.refused.is_none())
                .cloned()
                .collect()
        })
    }

    pub fn open_sockets(&self) -> usize {
        self.with(|s| s.open_sockets)
    }

    pub fn keepalives(&self) -> usize {
        self.with(|s| s.keepalives)
    }

    pub fn item_queries(&self) -> Vec<String> {
        self.with(|s| s.item_queries.clone())
    }

    /// When each `/Items` call came.
    pub fn item_query_times(&self) -> Vec<Instant> {
        self.with(|s| s.item_query_times.clone())
    }

    /// Waits (up to the test deadline) until `done` holds for the fake's counters.
    pub fn wait_until(&self, what: &str, done: impl Fn(&FakeJellyfin) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < DEADLINE * 2,
                "fake Jellyfin: never {what}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `n` user sockets are open.
    pub fn wait_for_open_sockets(&self, n: usize) {
        self.wait_until(&format!("{n} open socket(s)"), |f| f.open_sockets() == n);
    }
}

/// A movie item as `/Items` returns it with `Fields=Path,ProviderIds,MediaStreams`:
/// `subtitles` are (language, is_external) tracks.
pub fn movie(id: &str, path: &str, subtitles: &[(&str, bool)]) -> Value {
    item(id, "Movie", path, subtitles)
}

/// An episode item, like [`movie`].
pub fn episode(id: &str, path: &str, subtitles: &[(&str, bool)]) -> Value {
    let mut value = item(id, "Episode", path, subtitles);
    value["SeriesName"] = json!("Northern Relay");
    value["IndexNumber"] = json!(5);
    value["ParentIndexNumber"] = json!(2);
    value
}

fn item(id: &str, kind: &str, path: &str, subtitles: &[(&str, bool)]) -> Value {
    let mut streams = vec![
        json!({"Type": "Video", "Codec": "h264", "Index": 0, "IsExternal": false}),
        json!({"Type": "Audio", "Codec": "eac3", "Language": "eng", "Index": 1, "IsExternal": false}),
    ];
    for (n, (language, is_external)) in subtitles.iter().enumerate() {
        streams.push(json!({
            "Type": "Subtitle", "Codec": "subrip", "Language": language, "Index": n + 2,
            "IsExternal": is_external, "IsForced": false, "IsHearingImpaired": false,
            "IsTextSubtitleStream": true,
        }));
    }
    json!({
        "Name": id, "Id": id, "Type": kind, "Path": path, "LocationType": "FileSystem",
        "IsFolder": false, "MediaType": "Video", "ProviderIds": {"Imdb": "tt9000001"},
        "MediaStreams": streams,
    })
}

/// A series item (a folder: never a job).
pub fn series(id: &str) -> Value {
    json!({"Name": id, "Id": id, "Type": "Series", "IsFolder": true, "LocationType": "FileSystem",
           "Path": "/media/tv/Northern Relay"})
}

/// Parses `MediaBrowser k="v", k="v"` (keys case-sensitive, values URL-decoded).
fn authorization(header: &str) -> Option<HashMap<String, String>> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("MediaBrowser") && !scheme.eq_ignore_ascii_case("Emby") {
        return None;
    }
    let mut map = HashMap::new();
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        let value = value.trim().trim_matches('"');
        let decoded: String = url::form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        map.insert(key.trim().to_owned(), decoded);
    }
    Some(map)
}

struct Head {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: HashMap<String, String>,
    length: usize,
}

fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut headers = HashMap::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Head {
        method,
        path: path.to_owned(),
        query,
        headers,
        length,
    })
}

/// Who a request's token says it is.
#[derive(Clone, Debug, PartialEq)]
enum Caller {
    ApiKey,
    User { device_id: String },
}

fn caller(
    state: &State,
    headers: &HashMap<String, String>,
    query: &[(String, String)],
) -> Option<Caller> {
    let from_header = headers
        .get("authorization")
        .and_then(|h| authorization(h))
        .and_then(|m| m.get("Token").cloned());
    let from_query = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("apikey") || k == "api_key")
        .map(|(_, v)| v.clone());
    let token = from_header.or(from_query)?;
    if token == API_KEY {
        return Some(Caller::ApiKey);
    }
    state.tokens.get(&token).map(|device_id| Caller::User {
        device_id: device_id.clone(),
    })
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    pushes: broadcast::Receiver<Push>,
    prefix: String,
) -> std::io::Result<()> {
    // Peek at the head without consuming it: a WebSocket upgrade is handed to tungstenite
    // whole.
    let mut buffer = vec![0u8; 16 * 1024];
    let head_end = loop {
        let n = stream.peek(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        if let Some(at) = buffer[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if n == buffer.len() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let Some(head) = parse_head(&String::from_utf8_lossy(&buffer[..head_end])) else {
        return Ok(());
    };
    let is_upgrade = head
        .headers
        .get("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        return socket(stream, state, pushes, head).await;
    }
    let mut consumed = vec![0u8; head_end];
    stream.read_exact(&mut consumed).await?;
    let mut body = vec![0u8; head.length];
    stream.read_exact(&mut body).await?;
    let path = head
        .path
        .strip_prefix(&prefix)
        .unwrap_or(&head.path)
        .to_owned();
    let (status, reply) = route(&state, &head, &path, &body);
    let text = reply.to_string();
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The REST routes.
fn route(state: &Arc<Mutex<State>>, head: &Head, path: &str, body: &[u8]) -> (u16, Value) {
    let mut state = state.lock().unwrap();
    match (head.method.as_str(), path) {
        ("POST", "/Users/AuthenticateByName") => {
            let fields = head
                .headers
                .get("authorization")
                .and_then(|h| authorization(h))
                .unwrap_or_default();
            let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
            if ["Client", "Device", "DeviceId", "Version"]
                .iter()
                .any(|k| field(k).is_empty())
            {
                return (
                    400,
                    json!("Client, Device, DeviceId and Version are required"),
                );
            }
            let credentials: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let ok = credentials["Username"] == USER && credentials["Pw"] == PASSWORD;
            state.logins.push(Login {
                at: Instant::now(),
                device_id: field("DeviceId"),
                client: field("Client"),
                version: field("Version"),
                ok,
            });
            if !ok {
                return (401, json!("Invalid username or password entered."));
            }
            let device = field("DeviceId");
            // A new login with the same device id logs the earlier tokens out.
            state.tokens.retain(|_, d| *d != device);
            let token = uuid::Uuid::new_v4().simple().to_string();
            state.tokens.insert(token.clone(), device.clone());
            let mut response: Value = serde_json::from_str(include_str!(
                "../fixtures/jellyfin_auth_by_name_response.json"
            ))
            .unwrap();
            response["AccessToken"] = json!(token);
            response["SessionInfo"]["DeviceId"] = json!(device);
            (200, response)
        }
        ("GET", "/System/Info") => match caller(&state, &head.headers, &head.query) {
            Some(_) => (
                200,
                json!({"ServerName": "fake", "Version": "10.10.7", "Id": "4f3c1a9e2b7d4c6e8a1f0b2d3e4c5a6b"}),
            ),
            None => (401, json!("Unauthorized")),
        },
        ("GET", "/Items") => {
            if caller(&state, &head.headers, &head.query).is_none() {
                return (401, json!("Unauthorized"));
            }
            let query_text = head
                .query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            state.item_queries.push(query_text);
            state.item_query_times.push(Instant::now());
            let get = |name: &str| {
                head.query
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let ids: Option<Vec<String>> = get("Ids").map(|v| {
                v.split(',')
                    .map(|s| s.replace('-', "").to_lowercase())
                    .collect()
            });
            let since = get("MinDateLastSaved").and_then(|v| v.parse::<jiff::Timestamp>().ok());
            let types: Option<Vec<String>> =
                get("IncludeItemTypes").map(|v| v.split(',').map(str::to_owned).collect());
            let start: usize = get("StartIndex").and_then(|v| v.parse().ok()).unwrap_or(0);
            let limit: usize = get("Limit")
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            let matching: Vec<Value> = state
                .items
                .iter()
                .filter(|(item, saved)| {
                    ids.as_ref()
                        .is_none_or(|ids| ids.iter().any(|id| item["Id"] == id.as_str()))
                        && since.is_none_or(|since| *saved >= since)
                        && types
                            .as_ref()
                            .is_none_or(|types| types.iter().any(|t| item["Type"] == t.as_str()))
                })
                .map(|(item, _)| item.clone())
                .collect();
            let total = matching.len();
            let page: Vec<Value> = matching.into_iter().skip(start).take(limit).collect();
            (
                200,
                json!({"Items": page, "TotalRecordCount": total, "StartIndex": start}),
            )
        }
        _ => (404, json!("not found")),
    }
}

/// A WebSocket upgrade: the token is checked before the handshake.
async fn socket(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    mut pushes: broadcast::Receiver<Push>,
    head: Head,
) -> std::io::Result<()> {
    let (who, refused, force_secs) = {
        let s = state.lock().unwrap();
        let who = caller(&s, &head.headers, &head.query);
        let refused = if s.refuse_upgrades {
            Some(503)
        } else if who.is_none() || !head.path.ends_with("socket") {
            Some(403)
        } else {
            None
        };
        (who, refused, s.force_keepalive_secs)
    };
    let index = {
        let mut s = state.lock().unwrap();
        s.connects.push(Connect {
            at: Instant::now(),
            refused,
            is_user: matches!(who, Some(Caller::User { .. })),
            device_id: match &who {
                Some(Caller::User { device_id }) => Some(device_id.clone()),
                _ => None,
            },
            ended_at: None,
        });
        s.connects.len() - 1
    };
    let callback = move |_: &Request, response: Response| -> Result<Response, ErrorResponse> {
        match refused {
            None => Ok(response),
            Some(status) => {
                let mut error = ErrorResponse::new(Some("Token is required".to_owned()));
                *error.status_mut() =
                    tokio_tungstenite::tungstenite::http::StatusCode::from_u16(status).unwrap();
                Err(error)
            }
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return Ok(());
    };
    let is_user = matches!(who, Some(Caller::User { .. }));
    state.lock().unwrap().open_sockets += 1;
    if is_user {
        let force = json!({"MessageType": "ForceKeepAlive", "Data": force_secs,
                           "MessageId": uuid::Uuid::new_v4().simple().to_string()});
        let _ = ws.send(Message::text(force.to_string())).await;
    }
    let mut last_keepalive = Instant::now();
    let mut watchdog = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { break };
                if let Message::Text(text) = frame {
                    let message: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if message["MessageType"] == "KeepAlive" {
                        last_keepalive = Instant::now();
                        state.lock().unwrap().keepalives += 1;
                        let reply = json!({"MessageType": "KeepAlive",
                                           "MessageId": uuid::Uuid::new_v4().simple().to_string()});
                        if ws.send(Message::text(reply.to_string())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            push = pushes.recv() => match push {
                Ok(Push::ToUsers(text)) if is_user => {
                    if ws.send(Message::text(text)).await.is_err() { break; }
                }
                Ok(Push::ToUsers(_)) => {}
                Ok(Push::Raw(text)) => {
                    if ws.send(Message::text(text)).await.is_err() { break; }
                }
                Ok(Push::Drop) | Err(_) => break,
            },
            _ = watchdog.tick() => {
                // As Jellyfin 12.0: a user socket silent past its timeout is closed.
                if is_user && last_keepalive.elapsed() > Duration::from_secs(force_secs) {
                    break;
                }
            }
        }
    }
    let mut s = state.lock().unwrap();
    s.open_sockets -= 1;
    s.connects[index].ended_at = Some(Instant::now());
    Ok(())
}
