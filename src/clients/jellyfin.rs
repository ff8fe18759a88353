//! Jellyfin REST: typed items (by id, paged, filtered), resolving an item id to the video's
//! path and a video's path to its item id, refreshing an item after a subtitle was written,
//! its remote subtitle search, and the user session the WebSocket needs (`POST
//! /Users/AuthenticateByName`, a token check, the `/socket` address).
//!
//! Authenticates with `Authorization: MediaBrowser Token="…"`, which every Jellyfin
//! version from 10.9 to 12.0 accepts. `GET /Items` (with `Ids=`, or paged with
//! `StartIndex`/`Limit`) works with an API key and no user id. Jellyfin has no "item by path" query, so a path is looked up in an index of
//! every movie and episode (`GET /Items?Recursive=true&IncludeItemTypes=Movie,Episode
//! &Fields=Path`, in pages), its paths translated by `[[path_mappings]]`; the index is
//! kept and rebuilt when a path is missing from it, at most once a minute.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cuewarden_actors::Libraries;
use cuewarden_actors::clients::{LocalBoxFuture, MediaServer, MediaServerError, RefreshRequest};
use serde::Deserialize;
use url::Url;

use crate::config::{JellyfinSettings, PathMapping, Secret, map_path};

/// Items asked for per page when the path index is built.
pub const INDEX_PAGE: usize = 1000;
/// Shortest time between two rebuilds of the path index.
pub const INDEX_REBUILD_INTERVAL: Duration = Duration::from_secs(60);

/// Why a Jellyfin call failed.
#[derive(Debug, thiserror::Error)]
pub enum JellyfinError {
    /// Jellyfin has no such item, or it has no file (virtual/missing episode).
    #[error("jellyfin has no video with item id {0:?}")]
    UnknownItem(String),
    /// Jellyfin answered 401/403.
    #[error("jellyfin refused the API key (HTTP {0})")]
    Unauthorized(u16),
    /// Jellyfin answered another error status.
    #[error("jellyfin answered HTTP {0}")]
    Status(u16),
    /// Jellyfin refused the user's name or password (HTTP 401), or the login header.
    #[error("jellyfin refused the login of user {user:?} (HTTP {status})")]
    LoginRefused {
        /// The user name.
        user: String,
        /// Jellyfin's answer.
        status: u16,
    },
    /// Jellyfin could not be reached or answered badly.
    #[error("jellyfin request failed: {0}")]
    Request(String),
}

impl JellyfinError {
    /// Whether trying again later may help (5xx, 429, unreachable, timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status(status) => *status >= 500 || *status == 429,
            Self::Request(_) => true,
            Self::UnknownItem(_) | Self::Unauthorized(_) | Self::LoginRefused { .. } => false,
        }
    }
}

/// The fields cuewarden asks `/Items` for (`Fields=`).
pub const ITEM_FIELDS: &str = "Path,ProviderIds,MediaStreams,DateCreated";

/// The `Client` and `Device` cuewarden names itself with in the `Authorization` header.
pub const CLIENT_NAME: &str = "cuewarden";

/// Who is calling, as Jellyfin's session manager needs it for a login and for the socket:
/// sessions are keyed by client + device id, and a new login with the same device id
/// logs out that device's earlier tokens, so the id is stable per daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Stable, unique per daemon (kept in the store).
    pub id: String,
}

impl Device {
    /// The `Authorization: MediaBrowser …` value, with `token` when there is one. Values
    /// are URL-encoded, as Jellyfin URL-decodes them.
    pub fn authorization(&self, token: Option<&Secret>) -> String {
        let encode = |value: &str| -> String {
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
        };
        let mut header = format!(
            "MediaBrowser Client=\"{CLIENT_NAME}\", Device=\"{CLIENT_NAME}\", DeviceId=\"{}\", Version=\"{}\"",
            encode(&self.id),
            env!("CARGO_PKG_VERSION"),
        );
        if let Some(token) = token {
            header.push_str(&format!(", Token=\"{}\"", encode(token.expose())));
        }
        header
    }
}

/// A user session: what `POST /Users/AuthenticateByName` answers.
#[derive(Debug, Clone)]
pub struct UserSession {
    /// The access token (a device token, not an API key).
    pub token: Secret,
    /// The user's id.
    pub user_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthenticationResult {
    access_token: String,
    #[serde(default)]
    user: Option<AuthenticatedUser>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthenticatedUser {
    #[serde(default)]
    id: String,
}

/// One page of `GET /Items` (`QueryResult<BaseItemDto>`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ItemsPage {
    /// The items of this page.
    #[serde(default)]
    pub items: Vec<JellyfinItem>,
    /// Items matching the query in all pages (absent with `EnableTotalRecordCount=false`).
    #[serde(default)]
    pub total_record_count: Option<u64>,
    /// Index of the first item of this page.
    #[serde(default)]
    pub start_index: Option<u64>,
}

/// A `BaseItemDto`, reduced to what cuewarden reads. Unknown fields are ignored (Jellyfin
/// adds some every release).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JellyfinItem {
    /// Item id (32 hex digits).
    #[serde(default)]
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `Movie`, `Episode`, `Series`, …
    #[serde(default, rename = "Type")]
    pub item_type: Option<String>,
    /// The file, as Jellyfin sees it (only with `Fields=Path`).
    #[serde(default)]
    pub path: Option<String>,
    /// `FileSystem`, `Virtual` (a missing episode), …
    #[serde(default)]
    pub location_type: Option<String>,
    /// `Imdb`, `Tmdb`, `Tvdb`, … (only with `Fields=ProviderIds`; episode ids for episodes).
    #[serde(default)]
    pub provider_ids: HashMap<String, String>,
    /// The streams of the primary source (only with `Fields=MediaStreams`).
    #[serde(default)]
    pub media_streams: Vec<MediaStream>,
    /// Release year.
    #[serde(default)]
    pub production_year: Option<i32>,
    /// Episode number.
    #[serde(default)]
    pub index_number: Option<i32>,
    /// Season number.
    #[serde(default)]
    pub parent_index_number: Option<i32>,
    /// The series, for episodes.
    #[serde(default)]
    pub series_name: Option<String>,
    /// The series' item id, for episodes.
    #[serde(default)]
    pub series_id: Option<String>,
    /// When the item was added (only with `Fields=DateCreated`).
    #[serde(default)]
    pub date_created: Option<String>,
}

impl JellyfinItem {
    /// A movie or an episode with a real file: what cuewarden looks after.
    pub fn is_video_file(&self) -> bool {
        matches!(self.item_type.as_deref(), Some("Movie" | "Episode"))
            && self.location_type.as_deref() != Some("Virtual")
            && self.path.as_deref().is_some_and(|p| !p.is_empty())
    }
}

/// A `MediaStream` of an item.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MediaStream {
    /// `Video`, `Audio`, `Subtitle`, …
    #[serde(default, rename = "Type")]
    pub stream_type: Option<String>,
    /// ffprobe codec name, lower case (`subrip`, `ass`), or `PGSSUB`, `DVDSUB`, …
    #[serde(default)]
    pub codec: Option<String>,
    /// Language as tagged (ISO 639-2 mostly), if any.
    #[serde(default)]
    pub language: Option<String>,
    /// A sidecar file rather than a track in the container.
    #[serde(default)]
    pub is_external: bool,
    /// Forced (foreign parts only).
    #[serde(default)]
    pub is_forced: bool,
    /// For the deaf and hard of hearing.
    #[serde(default)]
    pub is_hearing_impaired: bool,
    /// A text subtitle (not a bitmap one).
    #[serde(default)]
    pub is_text_subtitle_stream: bool,
}

/// One result of `GET /Items/{id}/RemoteSearch/Subtitles/{language}` (`RemoteSubtitleInfo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoteSubtitle {
    /// Opaque: `<provider hash>_<provider's id>`.
    pub id: String,
    /// The plugin (`Open Subtitles`).
    #[serde(default)]
    pub provider_name: Option<String>,
    /// Release name.
    #[serde(default)]
    pub name: Option<String>,
    /// `srt`, `ass`, `vtt`, `sub`, …
    #[serde(default)]
    pub format: Option<String>,
    /// The plugin matched the file hash.
    #[serde(default)]
    pub is_hash_match: Option<bool>,
    /// Machine-translated.
    #[serde(default)]
    pub machine_translated: Option<bool>,
    /// AI-translated.
    #[serde(default)]
    pub ai_translated: Option<bool>,
    /// Foreign parts only.
    #[serde(default)]
    pub forced: Option<bool>,
    /// For the deaf and hard of hearing.
    #[serde(default)]
    pub hearing_impaired: Option<bool>,
    /// Downloads on the plugin's site.
    #[serde(default)]
    pub download_count: Option<i64>,
}

/// Paths (ours, after `[[path_mappings]]`) → item ids.
#[derive(Default)]
struct PathIndex {
    built_at: Option<Instant>,
    items: HashMap<PathBuf, String>,
}

/// A Jellyfin REST client.
#[derive(Clone)]
pub struct JellyfinClient {
    http: reqwest::Client,
    base: Url,
    api_key: Secret,
    path_mappings: Vec<PathMapping>,
    /// To key the index by real paths too (a library root may be a symlink).
    libraries: Libraries,
    index: Arc<Mutex<PathIndex>>,
    /// Held while the index is rebuilt, so jobs that miss together rebuild it once.
    rebuilding: Arc<tokio::sync::Mutex<()>>,
}

impl JellyfinClient {
    /// A client for the configured server.
    pub fn new(http: reqwest::Client, settings: &JellyfinSettings) -> Self {
        Self {
            http,
            base: settings.url.clone(),
            api_key: settings.api_key.clone(),
            path_mappings: Vec::new(),
            libraries: Libraries::default(),
            index: Arc::default(),
            rebuilding: Arc::default(),
        }
    }

    /// Translates Jellyfin's paths into ours with these mappings, and through the real
    /// roots of these libraries (jobs are keyed by real paths).
    pub fn with_paths(mut self, mappings: Vec<PathMapping>, libraries: Libraries) -> Self {
        self.path_mappings = mappings;
        self.libraries = libraries;
        self
    }

    fn url(&self, segments: &[&str]) -> Result<Url, JellyfinError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| JellyfinError::Request("jellyfin.url cannot be a base".into()))?;
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        Ok(url)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, JellyfinError> {
        let response = request
            .header(
                "Authorization",
                format!("MediaBrowser Token=\"{}\"", self.api_key.expose()),
            )
            .send()
            .await
            .map_err(|e| JellyfinError::Request(super::request_error(e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(JellyfinError::Unauthorized(status.as_u16()));
        }
        if !status.is_success() {
            return Err(JellyfinError::Status(status.as_u16()));
        }
        Ok(response)
    }

    /// The configured base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The WebSocket address: `ws://` for `http://`, `wss://` for `https://`, under the
    /// base URL's path, with `?deviceId=` (read by Jellyfin 10.9/10.10).
    pub fn socket_url(&self, device: &Device) -> Result<Url, JellyfinError> {
        let mut url = self.url(&["socket"])?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| JellyfinError::Request(format!("cannot make a {scheme} URL")))?;
        url.query_pairs_mut().append_pair("deviceId", &device.id);
        Ok(url)
    }

    /// Logs `user` in (`POST /Users/AuthenticateByName`) as `device`. Jellyfin answers
    /// 401 for a wrong name or password ([`JellyfinError::LoginRefused`]).
    pub async fn authenticate(
        &self,
        user: &str,
        password: &Secret,
        device: &Device,
    ) -> Result<UserSession, JellyfinError> {
        let response = self
            .http
            .post(self.url(&["Users", "AuthenticateByName"])?)
            .header("Authorization", device.authorization(None))
            .json(&serde_json::json!({"Username": user, "Pw": password.expose()}))
            .send()
            .await
            .map_err(|e| JellyfinError::Request(super::request_error(e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN
            || status == reqwest::StatusCode::BAD_REQUEST
        {
            return Err(JellyfinError::LoginRefused {
                user: user.to_owned(),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(JellyfinError::Request(format!(
                "login answered HTTP {status}"
            )));
        }
        let result: AuthenticationResult = response
            .json()
            .await
            .map_err(|e| JellyfinError::Request(super::request_error(e)))?;
        if result.access_token.is_empty() {
            return Err(JellyfinError::Request(
                "login answered without an AccessToken".to_owned(),
            ));
        }
        Ok(UserSession {
            token: Secret::from(result.access_token),
            user_id: result.user.map(|u| u.id).unwrap_or_default(),
        })
    }

    /// Checks a user token with `GET /System/Info`: `Ok` if Jellyfin takes it,
    /// [`JellyfinError::Unauthorized`] on 401 (the token was revoked: log in again).
    pub async fn check_token(&self, token: &Secret, device: &Device) -> Result<(), JellyfinError> {
        let response = self
            .http
            .get(self.url(&["System", "Info"])?)
            .header("Authorization", device.authorization(Some(token)))
            .send()
            .await
            .map_err(|e| JellyfinError::Request(super::request_error(e)))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(JellyfinError::Unauthorized(status.as_u16()));
        }
        if !status.is_success() {
            return Err(JellyfinError::Request(format!(
                "token check answered HTTP {status}"
            )));
        }
        Ok(())
    }

    /// The file path of a movie or episode, as Jellyfin sees it.
    pub async fn item_path(&self, item_id: &str) -> Result<PathBuf, JellyfinError> {
        let page = self
            .items(&[("Ids", item_id), ("Fields", "Path")])
            .await
            .map_err(|err| match err {
                JellyfinError::UnknownItem(_) => JellyfinError::UnknownItem(item_id.to_owned()),
                other => other,
            })?;
        page.items
            .into_iter()
            .find(|item| item.location_type.as_deref() != Some("Virtual"))
            .and_then(|item| item.path)
            .map(PathBuf::from)
            .ok_or_else(|| JellyfinError::UnknownItem(item_id.to_owned()))
    }

    /// `GET /Items` with `query` (plus `EnableImages=false`, `EnableUserData=false`): by
    /// `Ids`, paged with `StartIndex`/`Limit`, or filtered (`MinDateLastSaved`, …). 400 and
    /// 404 are [`JellyfinError::UnknownItem`].
    pub async fn items(&self, query: &[(&str, &str)]) -> Result<ItemsPage, JellyfinError> {
        let mut url = self.url(&["Items"])?;
        url.query_pairs_mut()
            .extend_pairs(query)
            .append_pair("EnableImages", "false")
            .append_pair("EnableUserData", "false");
        match self.send(self.http.get(url)).await {
            Err(JellyfinError::Status(404 | 400)) => Err(JellyfinError::UnknownItem(String::new())),
            Err(err) => Err(err),
            Ok(response) => response
                .json()
                .await
                .map_err(|e| JellyfinError::Request(super::request_error(e))),
        }
    }

    /// The item id of the video at `video` (our path), if Jellyfin knows it.
    pub async fn item_id_for(&self, video: &Path) -> Result<Option<String>, JellyfinError> {
        let look = || {
            let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
            match index.items.get(video) {
                Some(id) => Some(Some(id.clone())),
                None if index
                    .built_at
                    .is_some_and(|at| at.elapsed() < INDEX_REBUILD_INTERVAL) =>
                {
                    Some(None)
                }
                None => None,
            }
        };
        if let Some(found) = look() {
            return Ok(found);
        }
        let _rebuilding = self.rebuilding.lock().await;
        // Another job may have rebuilt it while this one waited.
        if let Some(found) = look() {
            return Ok(found);
        }
        let items = self.all_video_paths().await?;
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.items = items;
        index.built_at = Some(Instant::now());
        Ok(index.items.get(video).cloned())
    }

    async fn all_video_paths(&self) -> Result<HashMap<PathBuf, String>, JellyfinError> {
        let mut items = HashMap::new();
        let mut start = 0usize;
        loop {
            let (start_text, limit) = (start.to_string(), INDEX_PAGE.to_string());
            let page = self
                .items(&[
                    ("Recursive", "true"),
                    ("IncludeItemTypes", "Movie,Episode"),
                    ("Fields", "Path"),
                    ("ExcludeLocationTypes", "Virtual"),
                    ("StartIndex", &start_text),
                    ("Limit", &limit),
                ])
                .await?;
            let count = page.items.len();
            for item in page.items {
                if let (false, Some(path)) = (item.id.is_empty(), item.path) {
                    let id = item.id;
                    let ours = map_path(&self.path_mappings, Path::new(&path));
                    if let Some(real) = self.libraries.through_real_root(&ours) {
                        items.insert(real, id.clone());
                    }
                    items.insert(ours, id);
                }
            }
            start += count;
            if count == 0
                || page
                    .total_record_count
                    .is_some_and(|total| start as u64 >= total)
            {
                return Ok(items);
            }
        }
    }

    /// `POST /Items/{id}/Refresh` with `metadataRefreshMode=Default` (Jellyfin re-probes
    /// when the set of subtitle files changed), or `FullRefresh` when a file was replaced
    /// in place (the set did not change). Jellyfin answers 204 and queues the refresh.
    pub async fn refresh_item(&self, item_id: &str, full: bool) -> Result<(), JellyfinError> {
        let mut url = self.url(&["Items", item_id, "Refresh"])?;
        url.query_pairs_mut()
            .append_pair(
                "metadataRefreshMode",
                if full { "FullRefresh" } else { "Default" },
            )
            .append_pair("imageRefreshMode", "None")
            .append_pair("replaceAllMetadata", "false")
            .append_pair("replaceAllImages", "false");
        match self.send(self.http.post(url)).await {
            Err(JellyfinError::Status(404)) => Err(JellyfinError::UnknownItem(item_id.to_owned())),
            other => other.map(|_| ()),
        }
    }

    /// `GET /Items/{id}/RemoteSearch/Subtitles/{language}`: what Jellyfin's subtitle
    /// plugins offer (`[]` when none is installed).
    pub async fn remote_search(
        &self,
        item_id: &str,
        language: &str,
    ) -> Result<Vec<RemoteSubtitle>, JellyfinError> {
        let mut url = self.url(&["Items", item_id, "RemoteSearch", "Subtitles", language])?;
        url.query_pairs_mut().append_pair("isPerfectMatch", "false");
        match self.send(self.http.get(url)).await {
            Err(JellyfinError::Status(404)) => Err(JellyfinError::UnknownItem(item_id.to_owned())),
            other => other?.json().await.map_err(|e| {
                JellyfinError::Request(format!("bad search answer: {}", e.without_url()))
            }),
        }
    }

    /// `GET /Providers/Subtitles/Subtitles/{subtitleId}`: the subtitle's bytes, fetched by
    /// Jellyfin's plugin, without Jellyfin writing anything (cuewarden writes it).
    pub async fn remote_subtitle(&self, subtitle_id: &str) -> Result<Vec<u8>, JellyfinError> {
        let url = self.url(&["Providers", "Subtitles", "Subtitles", subtitle_id])?;
        let response = self.send(self.http.get(url)).await?;
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| JellyfinError::Request(super::request_error(e)))
    }
}

/// Jellyfin as the core's [`MediaServer`]: refreshes the job's item (its id known, or
/// looked up by path).
pub struct JellyfinRefresher {
    client: JellyfinClient,
}

impl JellyfinRefresher {
    /// Refreshes through `client`.
    pub fn new(client: JellyfinClient) -> Self {
        Self { client }
    }
}

fn media_server_error(err: JellyfinError) -> MediaServerError {
    match err {
        JellyfinError::UnknownItem(id) => MediaServerError::NotFound(id),
        err if err.is_transient() => MediaServerError::Unavailable(err.to_string()),
        err => MediaServerError::Refused(err.to_string()),
    }
}

impl MediaServer for JellyfinRefresher {
    fn name(&self) -> &str {
        "jellyfin"
    }

    fn refresh(
        &self,
        request: &RefreshRequest,
    ) -> LocalBoxFuture<Result<String, MediaServerError>> {
        let (client, request) = (self.client.clone(), request.clone());
        Box::pin(async move {
            let id = match request.item_id {
                Some(id) => id,
                None => client
                    .item_id_for(&request.video)
                    .await
                    .map_err(media_server_error)?
                    .ok_or_else(|| {
                        MediaServerError::NotFound(format!(
                            "{} is not in Jellyfin's library yet",
                            request.video.display()
                        ))
                    })?,
            };
            client
                .refresh_item(&id, request.replaced)
                .await
                .map_err(media_server_error)?;
            Ok(id)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_socket_url_keeps_the_path_prefix_and_switches_the_scheme() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let device = Device {
            id: "cuewarden-1".to_owned(),
        };
        for (base, socket) in [
            (
                "http://nas:8096",
                "ws://nas:8096/socket?deviceId=cuewarden-1",
            ),
            (
                "https://example.org/jellyfin/",
                "wss://example.org/jellyfin/socket?deviceId=cuewarden-1",
            ),
            (
                "https://example.org/jellyfin",
                "wss://example.org/jellyfin/socket?deviceId=cuewarden-1",
            ),
        ] {
            let client = JellyfinClient {
                http: http.clone(),
                base: Url::parse(base).unwrap(),
                api_key: Secret::from("k".to_owned()),
                path_mappings: Vec::new(),
                libraries: Libraries::default(),
                index: Arc::default(),
                rebuilding: Arc::default(),
            };
            assert_eq!(client.socket_url(&device).unwrap().as_str(), socket);
        }
    }

    #[test]
    fn the_authorization_header_names_client_device_id_version_and_token() {
        let device = Device {
            id: "cuewarden-1".to_owned(),
        };
        let header = device.authorization(Some(&Secret::from("t0k".to_owned())));
        assert_eq!(
            header,
            format!(
                "MediaBrowser Client=\"cuewarden\", Device=\"cuewarden\", DeviceId=\"cuewarden-1\", Version=\"{}\", Token=\"t0k\"",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn an_items_page_fixture_reads_paths_ids_and_streams() {
        let text = include_str!("../../tests/fixtures/jellyfin_items_page.json");
        let page: ItemsPage = serde_json::from_str(text).unwrap();
        assert!(!page.items.is_empty());
        let movie = &page.items[0];
        assert!(movie.is_video_file(), "{movie:?}");
        assert_eq!(
            movie.provider_ids.get("Imdb").map(String::as_str),
            Some("tt9000001")
        );
        assert!(
            movie
                .media_streams
                .iter()
                .any(|s| s.stream_type.as_deref() == Some("Video"))
        );
    }
}
