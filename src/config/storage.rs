//! `[storage]`: where the store (and a generated API key) lives.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// `[storage]`, as read.
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

impl RawSection for StorageSection {}

impl StorageSection {
    /// `data_dir`, absolute and normalised (a relative one starts at [`Check::base`]).
    pub(crate) fn data_dir(&self, check: &mut Check) -> PathBuf {
        if self.data_dir.trim().is_empty() {
            check.add("storage.data_dir", "must not be empty");
        }
        check.resolve(&self.data_dir)
    }
}
