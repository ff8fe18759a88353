//! `[providers.*]`: the subtitle providers. A present table is a provider, enabled unless it
//! says `enabled = false`; `[providers.jellyfin]` is also enabled, without a table, when
//! `[jellyfin]` is configured. OpenSubtitles is validated but not queried yet.

use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

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

/// `[providers.*]`, validated: the providers this version queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderSettings {
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
        self.check(check);
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
        ProviderSettings { jellyfin }
    }

    /// Checks each provider present; an enabled one not queried yet is named as not yet
    /// active.
    fn check(&self, check: &mut Check) {
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
                check.http_url(&os.base_url, "providers.opensubtitles.base_url");
                check.not_yet_active.push("providers.opensubtitles");
            }
        }
    }
}
