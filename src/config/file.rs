//! The raw configuration file, as serde reads it: one struct per TOML section, defaults
//! defined once here. Unknown keys are not rejected by serde here but collected, all of
//! them, by `config::load` (with `serde_ignored`), so one run reports every problem.
//! Validation and typing happen in `config::Settings`.

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
            wanted: vec!["en".to_owned()],
            translate_from: Vec::new(),
            hearing_impaired: "prefer_not".to_owned(),
            min_score: 60,
        }
    }
}

/// `[[libraries]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LibrarySection {
    pub path: String,
}

/// `[[path_mappings]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PathMappingSection {
    pub from: String,
    pub to: String,
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

/// `[providers.opensubtitles]`
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
            enabled: false,
            api_key: String::new(),
            api_key_file: None,
            username: String::new(),
            password: String::new(),
            password_file: None,
            base_url: "https://api.opensubtitles.com/api/v1".to_owned(),
        }
    }
}

/// `[providers.jellyfin]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct JellyfinProviderSection {
    pub enabled: bool,
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

/// `[notify]`: each target is a free-form table until its notifier exists; its keys are
/// checked there.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct NotifySection {
    pub jellyfin: Option<toml::Table>,
    pub discord: Option<toml::Table>,
    pub plex: Option<toml::Table>,
    pub kodi: Option<toml::Table>,
    pub pushover: Option<toml::Table>,
    pub email: Option<toml::Table>,
    pub ntfy: Option<toml::Table>,
    pub gotify: Option<toml::Table>,
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
