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

/// The providers in their built-in priority order: the names `[providers] order` takes.
pub const PROVIDER_NAMES: [&str; 5] = [
    "opensubtitles",
    "subdl",
    "podnapisi",
    "gestdown",
    "jellyfin",
];

/// Where a provider without credentials of its own (Podnapisi, Gestdown) is reached.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// The API base.
    pub base_url: Url,
    /// How long one request may take.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

/// `[providers.subdl]`, validated.
#[derive(Debug, Clone)]
pub struct SubdlSettings {
    /// The account's API key (`api_key` query parameter).
    pub api_key: Secret,
    /// The search API, `…/api/v1`.
    pub endpoint: EndpointSettings,
    /// Where the archives are downloaded from (`https://dl.subdl.com`).
    pub download_url: Url,
}

/// `[providers.subdl]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SubdlSection {
    pub enabled: bool,
    pub api_key: String,
    pub api_key_file: Option<String>,
    pub base_url: String,
    pub download_url: String,
    pub timeout_secs: i64,
    pub connect_timeout_secs: i64,
}

impl Default for SubdlSection {
    fn default() -> Self {
        Self {
            enabled: true,
            api_key: String::new(),
            api_key_file: None,
            base_url: "https://api.subdl.com/api/v1".to_owned(),
            download_url: "https://dl.subdl.com".to_owned(),
            timeout_secs: 15,
            connect_timeout_secs: 5,
        }
    }
}

/// A provider section without credentials (`enabled`, `base_url`, timeouts), as read.
#[derive(Debug, Clone)]
pub struct EndpointSection {
    pub enabled: bool,
    pub base_url: String,
    pub timeout_secs: i64,
    pub connect_timeout_secs: i64,
}

/// Declares the raw section of a provider without credentials, with its default base URL.
macro_rules! endpoint_section {
    ($(#[$doc:meta])* $name:ident, $base:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(default)]
        pub struct $name {
            pub enabled: bool,
            pub base_url: String,
            pub timeout_secs: i64,
            pub connect_timeout_secs: i64,
        }

        impl Default for $name {
            fn default() -> Self {
                Self {
                    enabled: true,
                    base_url: $base.to_owned(),
                    timeout_secs: 15,
                    connect_timeout_secs: 5,
                }
            }
        }

        impl $name {
            /// The shared fields.
            pub fn endpoint(&self) -> EndpointSection {
                EndpointSection {
                    enabled: self.enabled,
                    base_url: self.base_url.clone(),
                    timeout_secs: self.timeout_secs,
                    connect_timeout_secs: self.connect_timeout_secs,
                }
            }
        }
    };
}

endpoint_section!(
    /// `[providers.podnapisi]`, as read.
    PodnapisiSection,
    "https://www.podnapisi.net"
);
endpoint_section!(
    /// `[providers.gestdown]`, as read.
    GestdownSection,
    "https://api.gestdown.info"
);

impl EndpointSection {
    /// Checks the section named `providers.<name>`; the endpoint when enabled and valid.
    fn check(&self, name: &str, check: &mut Check) -> Option<EndpointSettings> {
        if !self.enabled {
            return None;
        }
        let key = |k: &str| format!("providers.{name}.{k}");
        let base_url = check.http_url(&self.base_url, &key("base_url"));
        let timeout = check.in_range(self.timeout_secs, 1, 300, &key("timeout_secs"));
        let connect = check.in_range(
            self.connect_timeout_secs,
            1,
            60,
            &key("connect_timeout_secs"),
        );
        Some(EndpointSettings {
            base_url: base_url?,
            timeout: Duration::from_secs(timeout?.unsigned_abs()),
            connect_timeout: Duration::from_secs(connect?.unsigned_abs()),
        })
    }
}

/// `[providers]`, as read: the priority order and one table per provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ProvidersSection {
    pub order: Vec<String>,
    pub opensubtitles: Option<OpenSubtitlesSection>,
    pub subdl: Option<SubdlSection>,
    pub podnapisi: Option<PodnapisiSection>,
    pub gestdown: Option<GestdownSection>,
    pub jellyfin: Option<JellyfinProviderSection>,
}

impl Default for ProvidersSection {
    fn default() -> Self {
        Self {
            order: PROVIDER_NAMES.iter().map(|n| (*n).to_owned()).collect(),
            opensubtitles: None,
            subdl: None,
            podnapisi: None,
            gestdown: None,
            jellyfin: None,
        }
    }
}

impl RawSection for ProvidersSection {
    fn defaults() -> Option<toml::Value> {
        toml::Value::try_from(Self {
            opensubtitles: Some(OpenSubtitlesSection::default()),
            subdl: Some(SubdlSection::default()),
            podnapisi: Some(PodnapisiSection::default()),
            gestdown: Some(GestdownSection::default()),
            jellyfin: Some(JellyfinProviderSection::default()),
            ..Self::default()
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
    /// `[providers.subdl]`, when enabled.
    pub subdl: Option<SubdlSettings>,
    /// `[providers.podnapisi]`, when enabled.
    pub podnapisi: Option<EndpointSettings>,
    /// `[providers.gestdown]`, when enabled (episodes only).
    pub gestdown: Option<EndpointSettings>,
    /// Every provider name in priority order: `[providers] order` first, then the others
    /// in the built-in order ([`PROVIDER_NAMES`]).
    pub order: Vec<&'static str>,
}

impl ProviderSettings {
    /// Where `name` stands in the priority order (unknown names last).
    pub fn rank(&self, name: &str) -> usize {
        self.order
            .iter()
            .position(|n| *n == name)
            .unwrap_or(self.order.len())
    }
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
        let subdl = self.subdl.as_ref().and_then(|section| section.check(check));
        let podnapisi = self
            .podnapisi
            .as_ref()
            .and_then(|section| section.endpoint().check("podnapisi", check));
        let gestdown = self
            .gestdown
            .as_ref()
            .and_then(|section| section.endpoint().check("gestdown", check));
        ProviderSettings {
            opensubtitles,
            jellyfin,
            subdl,
            podnapisi,
            gestdown,
            order: self.order(check),
        }
    }

    /// `order`, checked (known names, each once), completed with the names it leaves out.
    fn order(&self, check: &mut Check) -> Vec<&'static str> {
        let mut order: Vec<&'static str> = Vec::new();
        for (i, name) in self.order.iter().enumerate() {
            let key = format!("providers.order[{i}]");
            match PROVIDER_NAMES
                .iter()
                .find(|n| n.eq_ignore_ascii_case(name.trim()))
            {
                Some(known) if order.contains(known) => {
                    check.add(key, format!("{name:?} is listed twice"));
                }
                Some(known) => order.push(known),
                None => check.add(
                    key,
                    format!(
                        "{name:?} is not a provider (one of {})",
                        PROVIDER_NAMES.join(", ")
                    ),
                ),
            }
        }
        for name in PROVIDER_NAMES {
            if !order.contains(&name) {
                order.push(name);
            }
        }
        order
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

impl SubdlSection {
    /// Checks `[providers.subdl]`; answers it when it is enabled and valid.
    fn check(&self, check: &mut Check) -> Option<SubdlSettings> {
        let key = "providers.subdl.api_key";
        let api_key = check.secret(&self.api_key, self.api_key_file.as_deref(), key);
        if !self.enabled {
            return None;
        }
        check.required(
            api_key.is_some(),
            key,
            "required when the provider is enabled (subdl.com, your account's API key)",
        );
        let download_url = check.http_url(&self.download_url, "providers.subdl.download_url");
        let endpoint = EndpointSection {
            enabled: true,
            base_url: self.base_url.clone(),
            timeout_secs: self.timeout_secs,
            connect_timeout_secs: self.connect_timeout_secs,
        }
        .check("subdl", check);
        Some(SubdlSettings {
            api_key: api_key?,
            endpoint: endpoint?,
            download_url: download_url?,
        })
    }
}
