//! `[jellyfin]`: the Jellyfin server (REST, WebSocket session, sync intervals).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::Secret;
use super::file::RawSection;
use super::values::Check;

/// `[jellyfin]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct JellyfinSection {
    pub url: String,
    pub api_key: String,
    pub api_key_file: Option<String>,
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
    pub websocket: bool,
    pub reconnect_delay_secs: u64,
    pub max_reconnect_delay_secs: u64,
    pub poll_interval_secs: u64,
    pub fallback_sync_interval_hours: u64,
}

impl Default for JellyfinSection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8096".to_owned(),
            api_key: String::new(),
            api_key_file: None,
            username: String::new(),
            password: String::new(),
            password_file: None,
            websocket: true,
            reconnect_delay_secs: 2,
            max_reconnect_delay_secs: 300,
            poll_interval_secs: 300,
            fallback_sync_interval_hours: 24,
        }
    }
}

impl RawSection for JellyfinSection {}

/// `[jellyfin]`, validated.
#[derive(Debug, Clone)]
pub struct JellyfinSettings {
    /// Base URL.
    pub url: Url,
    /// API key for REST calls.
    pub api_key: Secret,
    /// User for the WebSocket session.
    pub username: String,
    /// Its password.
    pub password: Option<Secret>,
    /// Whether to use the WebSocket.
    pub websocket: bool,
    /// First reconnect delay.
    pub reconnect_delay: Duration,
    /// Longest reconnect delay.
    pub max_reconnect_delay: Duration,
    /// Incremental sync interval when the socket is off or down.
    pub poll_interval: Duration,
    /// Full sync interval.
    pub fallback_sync_interval: Duration,
}

impl JellyfinSettings {
    /// Checks `[jellyfin]`; `None` if the server cannot be reached with it.
    pub(crate) fn with_config(j: JellyfinSection, check: &mut Check) -> Option<Self> {
        let url = check.http_url(&j.url, "jellyfin.url");
        let api_key = check.secret(&j.api_key, j.api_key_file.as_deref(), "jellyfin.api_key");
        check.required(
            api_key.is_some(),
            "jellyfin.api_key",
            "required when [jellyfin] is present (Dashboard → API Keys)",
        );
        let password = check.secret(&j.password, j.password_file.as_deref(), "jellyfin.password");
        check.together("jellyfin", &j.username, password.as_ref());
        check.at_least_one(j.reconnect_delay_secs, "jellyfin.reconnect_delay_secs");
        if j.max_reconnect_delay_secs < j.reconnect_delay_secs
            && !check.has("jellyfin.reconnect_delay_secs")
            && !check.has("jellyfin.max_reconnect_delay_secs")
        {
            check.add(
                "jellyfin.max_reconnect_delay_secs",
                format!(
                    "{} is below jellyfin.reconnect_delay_secs ({})",
                    j.max_reconnect_delay_secs, j.reconnect_delay_secs
                ),
            );
        }
        check.at_least_one(j.poll_interval_secs, "jellyfin.poll_interval_secs");
        Some(Self {
            url: url?,
            api_key: api_key?,
            username: j.username,
            password,
            websocket: j.websocket,
            reconnect_delay: Duration::from_secs(j.reconnect_delay_secs),
            max_reconnect_delay: Duration::from_secs(j.max_reconnect_delay_secs),
            poll_interval: Duration::from_secs(j.poll_interval_secs),
            fallback_sync_interval: Duration::from_secs(
                j.fallback_sync_interval_hours.saturating_mul(3600),
            ),
        })
    }
}
