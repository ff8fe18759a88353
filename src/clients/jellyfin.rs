//! Jellyfin REST: resolving an item id to the video's path.
//!
//! Authenticates with `Authorization: MediaBrowser Token="…"`, which every Jellyfin
//! version from 10.9 to 12.0 accepts. `GET /Items` with
//! `Ids=` works with an API key and no user id (§3).

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
    /// Jellyfin could not be reached or answered badly.
    #[error("jellyfin request failed: {0}")]
    Request(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ItemsPage {
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Item {
    path: Option<String>,
    location_type: Option<String>,
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

    /// The file path of a movie or episode, as Jellyfin sees it.
    pub async fn item_path(&self, item_id: &str) -> Result<PathBuf, JellyfinError> {
        let mut url = self.url("Items")?;
        url.query_pairs_mut()
            .append_pair("Ids", item_id)
            .append_pair("Fields", "Path")
            .append_pair("EnableImages", "false");
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
            return Err(JellyfinError::UnknownItem(item_id.to_owned()));
        }
        if !status.is_success() {
            return Err(JellyfinError::Request(format!("HTTP {status}")));
        }
        let page: ItemsPage = response
            .json()
            .await
            .map_err(|e| JellyfinError::Request(e.without_url().to_string()))?;
        page.items
            .into_iter()
            .find(|item| item.location_type.as_deref() != Some("Virtual"))
            .and_then(|item| item.path)
            .map(PathBuf::from)
            .ok_or_else(|| JellyfinError::UnknownItem(item_id.to_owned()))
    }
}
