//! `[watcher]`: the file watcher to come (validated, not acted on yet).

use serde::{Deserialize, Serialize};

use super::file::RawSection;

/// `[watcher]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct WatcherSection {
    pub enabled: bool,
    /// A file counts as arrived once its size is stable this long.
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
