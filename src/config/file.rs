//! The raw configuration file, as serde reads it: one struct per TOML section, defaults
//! defined once here (and equal to what the reference `config.toml` shows; a test checks it).
//! Unknown keys are not rejected by serde here but collected, all of them, by `config::parse`
//! (with `serde_ignored`), and a key of the wrong type is dropped and reported on its own, so
//! one run reports every problem. Validation and typing happen in `config::Settings`.

use serde::{Deserialize, Serialize};

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerSection {
    pub listen: String,
    pub api_key: String,
    pub api_key_file: Option<String>,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6880".to_owned(),
            api_key: String::new(),
            api_key_file: None,
            max_body_bytes: 256 * 1024,
            shutdown_grace_secs: 10,
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct StorageSection {
    pub data_dir: String,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            data_dir: "./data".to_owned(),
        }
    }
}

/// `[languages]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LanguagesSection {
    pub wanted: Vec<String>,
    pub translate_from: Vec<String>,
    pub hearing_impaired: String,
    pub min_score: i64,
}

impl Default for LanguagesSection {
    fn default() -> Self {
        Self {
            wanted: vec!["fr".to_owned(), "en".to_owned()],
            translate_from: vec!["en".to_owned()],
            hearing_impaired: "prefer_not".to_owned(),
            min_score: 60,
        }
    }
}

/// `[[libraries]]`; `path` is required (an `Option` so a missing one is reported by
/// validation, next to the entry's other problems).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LibrarySection {
    pub path: Option<String>,
}

/// `[[path_mappings]]`; both keys are required (see [`LibrarySection`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PathMappingSection {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `[jellyfin]`
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

/// `[watcher]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WatcherSection {
    pub enabled: bool,
    pub stable_secs: u64,
}

impl Default for WatcherSection {
    fn default() -> Self {
        Self {
            enabled: true,
            stable_secs: 30,
        }
    }
}

/// `[providers.opensubtitles]`: a present section is enabled unless it says otherwise.
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

/// `[providers.jellyfin]`: a present section is enabled unless it says otherwise.
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

/// `[providers]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ProvidersSection {
    pub opensubtitles: Option<OpenSubtitlesSection>,
    pub jellyfin: Option<JellyfinProviderSection>,
}

/// `[translator]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TranslatorSection {
    pub kind: String,
    pub url: String,
    pub api_key: String,
    pub api_key_file: Option<String>,
    pub model: String,
}

impl Default for TranslatorSection {
    fn default() -> Self {
        Self {
            kind: "deepl".to_owned(),
            url: "https://api-free.deepl.com".to_owned(),
            api_key: String::new(),
            api_key_file: None,
            model: String::new(),
        }
    }
}

/// `[notify.jellyfin]`: ask Jellyfin (the `[jellyfin]` server) to refresh the item.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct JellyfinNotifySection {
    pub refresh: bool,
}

impl Default for JellyfinNotifySection {
    fn default() -> Self {
        Self { refresh: true }
    }
}

/// `[notify.plex]`: a partial scan of the section holding the video.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct PlexNotifySection {
    pub url: String,
    pub token: String,
    pub token_file: Option<String>,
}

impl Default for PlexNotifySection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:32400".to_owned(),
            token: String::new(),
            token_file: None,
        }
    }
}

/// `[notify.kodi]`: `VideoLibrary.Scan` over JSON-RPC.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct KodiNotifySection {
    pub url: String,
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
}

impl Default for KodiNotifySection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/jsonrpc".to_owned(),
            username: String::new(),
            password: String::new(),
            password_file: None,
        }
    }
}

/// `[notify.discord]`: a webhook (its URL carries the webhook's token: a secret).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct DiscordNotifySection {
    pub webhook_url: String,
    pub webhook_url_file: Option<String>,
}

/// `[notify.pushover]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PushoverNotifySection {
    /// The application's API token.
    pub token: String,
    pub token_file: Option<String>,
    /// The user or group key.
    pub user: String,
    /// Comma-separated device names; empty: all of the user's devices.
    pub device: String,
    /// -2 … 1 (2, emergency, needs acknowledgement and is not supported).
    pub priority: i64,
}

/// `[notify.email]`: SMTP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct EmailNotifySection {
    pub host: String,
    pub port: u16,
    /// `starttls` | `tls` | `none`
    pub security: String,
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

impl Default for EmailNotifySection {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: "starttls".to_owned(),
            username: String::new(),
            password: String::new(),
            password_file: None,
            from: String::new(),
            to: Vec::new(),
        }
    }
}

/// `[notify.ntfy]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct NtfyNotifySection {
    pub url: String,
    pub topic: String,
    pub token: String,
    pub token_file: Option<String>,
    /// 1 (min) … 5 (max).
    pub priority: i64,
}

impl Default for NtfyNotifySection {
    fn default() -> Self {
        Self {
            url: "https://ntfy.sh".to_owned(),
            topic: String::new(),
            token: String::new(),
            token_file: None,
            priority: 3,
        }
    }
}

/// `[notify.gotify]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct GotifyNotifySection {
    pub url: String,
    /// The application token.
    pub token: String,
    pub token_file: Option<String>,
    /// 0 … 10.
    pub priority: i64,
}

impl Default for GotifyNotifySection {
    fn default() -> Self {
        Self {
            url: String::new(),
            token: String::new(),
            token_file: None,
            priority: 5,
        }
    }
}

/// `[notify]`: one table per target; a present table is a target.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct NotifySection {
    pub jellyfin: Option<JellyfinNotifySection>,
    pub plex: Option<PlexNotifySection>,
    pub kodi: Option<KodiNotifySection>,
    pub discord: Option<DiscordNotifySection>,
    pub pushover: Option<PushoverNotifySection>,
    pub email: Option<EmailNotifySection>,
    pub ntfy: Option<NtfyNotifySection>,
    pub gotify: Option<GotifyNotifySection>,
}

/// `[schedule]` (cron expressions)
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ScheduleSection {
    pub library_sync: String,
    pub cleanup: String,
    pub wanted_retry: String,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            library_sync: "0 3 * * *".to_owned(),
            cleanup: "30 4 * * *".to_owned(),
            wanted_retry: "0 */6 * * *".to_owned(),
        }
    }
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RetentionSection {
    pub completed_days: u32,
    pub failed_days: u32,
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self {
            completed_days: 30,
            failed_days: 90,
        }
    }
}

/// `[jobs]`: the job engine's limits and retry policy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct JobsSection {
    pub max_concurrent_downloads: u32,
    pub max_concurrent_translations: u32,
    pub max_attempts: u32,
    pub retry_min_delay_secs: u64,
    pub retry_max_delay_secs: u64,
    pub worker_timeout_secs: u64,
}

impl Default for JobsSection {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 4,
            max_concurrent_translations: 2,
            max_attempts: 8,
            retry_min_delay_secs: 60,
            retry_max_delay_secs: 6 * 3600,
            worker_timeout_secs: 600,
        }
    }
}

/// The whole file as read: every section, each defaulted when absent. `(index, entry)` keeps
/// the position an array entry had in the file, so later problems name it even when an
/// earlier entry was dropped.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    pub server: ServerSection,
    pub storage: StorageSection,
    pub languages: LanguagesSection,
    pub libraries: Vec<(usize, LibrarySection)>,
    pub path_mappings: Vec<(usize, PathMappingSection)>,
    pub jellyfin: Option<JellyfinSection>,
    pub watcher: WatcherSection,
    pub providers: ProvidersSection,
    pub translator: Option<TranslatorSection>,
    pub notify: NotifySection,
    pub schedule: ScheduleSection,
    pub retention: RetentionSection,
    pub jobs: JobsSection,
}

/// The sections a config file may have; anything else is an unknown key.
pub const SECTIONS: &[&str] = &[
    "server",
    "storage",
    "languages",
    "libraries",
    "path_mappings",
    "jellyfin",
    "watcher",
    "providers",
    "translator",
    "notify",
    "schedule",
    "retention",
    "jobs",
];
