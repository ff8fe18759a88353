//! `[watcher]`: the file watcher (inotify on every library) and `[library_sync]`, the full
//! sync (Jellyfin's listing plus a walk of every library).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// `[watcher]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WatcherSection {
    pub enabled: bool,
    /// A file counts as arrived once its size and mtime are stable this long.
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

impl RawSection for WatcherSection {}

/// `[watcher]`, validated.
#[derive(Debug, Clone)]
pub struct WatcherSettings {
    /// Whether the libraries are watched.
    pub enabled: bool,
    /// How long a new file's size and mtime must stay the same before it counts.
    pub stable: Duration,
}

impl WatcherSection {
    /// Checks `[watcher]`.
    pub(crate) fn with_config(self, check: &mut Check) -> WatcherSettings {
        check.at_least_one(self.stable_secs, "watcher.stable_secs");
        WatcherSettings {
            enabled: self.enabled,
            stable: Duration::from_secs(self.stable_secs.max(1)),
        }
    }
}

/// `[library_sync]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LibrarySyncSection {
    /// Whether the full sync runs (on first start, then every
    /// `[jellyfin] fallback_sync_interval_hours`).
    pub enabled: bool,
}

impl Default for LibrarySyncSection {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl RawSection for LibrarySyncSection {}
