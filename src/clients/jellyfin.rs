//! Jellyfin REST: items (by id, paged, saved since), resolving an item id to the video's
//! path, and the user session the WebSocket needs (`POST /Users/AuthenticateByName`, a
//! token check, the `/socket` address).
//!
//! Authenticates with `Authorization: MediaBrowser Token="…"`, which every Jellyfin
//! version from 10.9 to 12.0 accepts. `GET /Items` (with `Ids=`, or paged with
//! `StartIndex`/`Limit`) works with an API key and no user id.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use crate::config::{JellyfinSettings, Secret};

/// Why a Jellyfin call failed.
#[derive(Debug, thiserror::Error)]
pub enum JellyfinError {
    /// Jellyfin has no such item, or it has no file (virtual/missing episode).
    #[error("jellyfin has no video with item id {0:?}")]
    UnknownItem(String),
    /// Jellyfin answered 401/403.
    #[error("jellyfin refused the API key (HTTP {0})")]
    Unauthorized(u16),
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

/// A Jellyfin REST client.
#[derive(Clone)]
pub struct JellyfinClient {
    http: reqwest::Client,
    base: Url,
    api_key: Secret,
}

impl JellyfinClient {
    /// A client for the configured server.
    pub fn new(http: reqwest::Client, settings: &JellyfinSettings) -> Self {
        Self {
            http,
            base: settings.url.clone(),
            api_key: settings.api_key.clone(),
        }
    }

    fn url(&self, path: &str) -> Result<Url, JellyfinError> {
        let mut base = self.base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(path.trim_start_matches('/'))
            .map_err(|e| JellyfinError::Request(e.to_string()))
    }

    /// The configured base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The WebSocket address: `ws://` for `http://`, `wss://` for `https://`, under the
    /// base URL's path, with `?deviceId=` (read by Jellyfin 10.9/10.10).
    pub fn socket_url(&self, device: &Device) -> Result<Url, JellyfinError> {
        let mut url = self.url("socket")?;
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
            .post(self.url("Users/AuthenticateByName")?)
            .header("Authorization", device.authorization(None))
            .json(&serde_json::json!({"Username": user, "Pw": password.expose()}))
            .send()
            .await
            .map_err(|e| JellyfinError::Request(e.without_url().to_string()))?;
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
            .map_err(|e| JellyfinError::Request(e.without_url().to_string()))?;
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
            .get(self.url("System/Info")?)
            .header("Authorization", device.authorization(Some(token)))
            .send()
            .await
            .map_err(|e| JellyfinError::Request(e.without_url().to_string()))?;
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
        let mut url = self.url("Items")?;
        url.query_pairs_mut()
            .extend_pairs(query)
            .append_pair("EnableImages", "false")
            .append_pair("EnableUserData", "false");
        let response = self
            .http
            .get(url)
            .header(
                "Authorization",
                format!("MediaBrowser Token=\"{}\"", self.api_key.expose()),
            )
            .send()
            .await
            .map_err(|e| JellyfinError::Request(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(JellyfinError::Unauthorized(status.as_u16()));
        }
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::BAD_REQUEST {
            return Err(JellyfinError::UnknownItem(String::new()));
        }
        if !status.is_success() {
            return Err(JellyfinError::Request(format!("HTTP {status}")));
        }
        response
            .json()
            .await
            .map_err(|e| JellyfinError::Request(e.without_url().to_string()))
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
