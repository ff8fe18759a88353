//! `[providers.*]`: the subtitle providers. A present table is a provider, enabled unless it
//! says `enabled = false`; `[providers.jellyfin]` is also enabled, without a table, when
//! `[jellyfin]` is configured.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::Secret;
use super::file::RawSection;
use super::values::Check;

/// OpenSubtitles' limit on API calls per second (its gateway answers 429 above it).
pub const OPENSUBTITLES_MAX_RATE: i64 = 5;

/// `[providers.opensubtitles]`, validated.
#[derive(Debug, Clone)]
pub struct OpenSubtitlesSettings {
    /// The consumer's API key (`Api-Key`).
    pub api_key: Secret,
    /// The account, if any: with it, downloads count against the user's quota.
    pub login: Option<(String, Secret)>,
    /// The API base, `…/api/v1`.
    pub base_url: Url,
    /// How long one request may take.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Most requests per second, shared by every job (1–5).
    pub requests_per_second: u32,
}

/// `[providers.opensubtitles]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct OpenSubtitlesSection {
    pub enabled: bool,
    pub api_key: String,
    pub api_key_file: Option<String>,
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
    pub base_url: String,
    pub timeout_secs: i64,
    pub connect_timeout_secs: i64,
    pub requests_per_second: i64,
}

impl Default for OpenSubtitlesSection {
    fn default() -> Self {
        Self {
            enabled: true,
            api_key: String::new(),
            api_key_file: None,
            username: String::new(),
            password: String::new(),
            password_file: None,
            base_url: "https://api.opensubtitles.com/api/v1".to_owned(),
            timeout_secs: 15,
            connect_timeout_secs: 5,
            requests_per_second: OPENSUBTITLES_MAX_RATE,
        }
    }
}

/// `[providers.jellyfin]`, as read: delegate to the subtitle plugins installed in Jellyfin.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct JellyfinProviderSection {
    pub enabled: bool,
}

impl Default for JellyfinProviderSection {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[providers]`, as read: one table per provider.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ProvidersSection {
    pub opensubtitles: Option<OpenSubtitlesSection>,
    pub jellyfin: Option<JellyfinProviderSection>,
}

impl RawSection for ProvidersSection {
    fn defaults() -> Option<toml::Value> {
        toml::Value::try_from(Self {
            opensubtitles: Some(OpenSubtitlesSection::default()),
            jellyfin: Some(JellyfinProviderSection::default()),
        })
        .ok()
    }
}

/// `[providers.*]`, validated: the providers this version queries, in priority order.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    /// `[providers.opensubtitles]`, when enabled.
    pub opensubtitles: Option<OpenSubtitlesSettings>,
    /// Jellyfin's remote subtitle search (`[providers.jellyfin]`, on by default with
    /// `[jellyfin]`).
    pub jellyfin: bool,
}

impl ProvidersSection {
    /// Checks each provider present; answers the ones to query.
    pub(crate) fn with_config(
        &self,
        jellyfin_present: bool,
        check: &mut Check,
    ) -> ProviderSettings {
        let opensubtitles = self.check(check);
        let jellyfin = match &self.jellyfin {
            None => jellyfin_present,
            Some(section) if section.enabled && !jellyfin_present => {
                check.add(
                    "providers.jellyfin",
                    "needs a [jellyfin] section (the server whose subtitle plugins are asked)",
                );
                false
            }
            Some(section) => section.enabled,
        };
        ProviderSettings {
            opensubtitles,
            jellyfin,
        }
    }

    /// Checks `[providers.opensubtitles]`; answers it when it is enabled and valid.
    fn check(&self, check: &mut Check) -> Option<OpenSubtitlesSettings> {
        let mut settings = ProviderSettings::default();
        if let Some(os) = &self.opensubtitles {
            let key = "providers.opensubtitles.api_key";
            let api_key = check.secret(&os.api_key, os.api_key_file.as_deref(), key);
            let password = check.secret(
                &os.password,
                os.password_file.as_deref(),
                "providers.opensubtitles.password",
            );
            check.together("providers.opensubtitles", &os.username, password.as_ref());
            if os.enabled {
                check.required(
                    api_key.is_some(),
                    key,
                    "required when the provider is enabled",
                );
                let base_url = check.http_url(&os.base_url, "providers.opensubtitles.base_url");
                let timeout = check.in_range(
                    os.timeout_secs,
                    1,
                    300,
                    "providers.opensubtitles.timeout_secs",
                );
                let connect_timeout = check.in_range(
                    os.connect_timeout_secs,
                    1,
                    60,
                    "providers.opensubtitles.connect_timeout_secs",
                );
                let rate = check.in_range(
                    os.requests_per_second,
                    1,
                    OPENSUBTITLES_MAX_RATE,
                    "providers.opensubtitles.requests_per_second",
                );
                let login = match (os.username.trim(), password) {
                    ("", _) | (_, None) => None,
                    (user, Some(password)) => Some((user.to_owned(), password)),
                };
                if let (Some(api_key), Some(base_url), Some(timeout), Some(connect), Some(rate)) =
                    (api_key, base_url, timeout, connect_timeout, rate)
                {
                    settings.opensubtitles = Some(OpenSubtitlesSettings {
                        api_key,
                        login,
                        base_url,
                        timeout: Duration::from_secs(timeout.unsigned_abs()),
                        connect_timeout: Duration::from_secs(connect.unsigned_abs()),
                        requests_per_second: u32::try_from(rate).unwrap_or(5),
                    });
                }
            }
        }
        settings.opensubtitles
    }
}
