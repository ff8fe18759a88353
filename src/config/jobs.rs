//! `[jobs]`, the job engine's limits and retry policy, and `[retention]`, how long finished
//! jobs are kept.

use std::time::Duration;

use cuewarden_actors::job_manager::ManagerSettings;
use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// `[jobs]`, as read.
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

impl RawSection for JobsSection {}

impl JobsSection {
    /// Checks `[jobs]` and types it as the manager's settings.
    pub(crate) fn with_config(self, check: &mut Check) -> ManagerSettings {
        for (key, value) in [
            (
                "jobs.max_concurrent_downloads",
                u64::from(self.max_concurrent_downloads),
            ),
            (
                "jobs.max_concurrent_translations",
                u64::from(self.max_concurrent_translations),
            ),
            ("jobs.max_attempts", u64::from(self.max_attempts)),
            ("jobs.retry_min_delay_secs", self.retry_min_delay_secs),
            ("jobs.worker_timeout_secs", self.worker_timeout_secs),
        ] {
            check.at_least_one(value, key);
        }
        if self.retry_max_delay_secs < self.retry_min_delay_secs
            && !check.has("jobs.retry_max_delay_secs")
            && !check.has("jobs.retry_min_delay_secs")
        {
            check.add(
                "jobs.retry_max_delay_secs",
                format!(
                    "{} is below jobs.retry_min_delay_secs ({})",
                    self.retry_max_delay_secs, self.retry_min_delay_secs
                ),
            );
        }
        ManagerSettings {
            max_downloads: self.max_concurrent_downloads as usize,
            max_translations: self.max_concurrent_translations as usize,
            max_attempts: self.max_attempts,
            retry_min_delay: Duration::from_secs(self.retry_min_delay_secs),
            retry_max_delay: Duration::from_secs(self.retry_max_delay_secs),
            worker_timeout: Duration::from_secs(self.worker_timeout_secs),
            ..ManagerSettings::default()
        }
    }
}

/// `[retention]`, as read (validated by serde alone; the scheduled `cleanup` reads it).
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

impl RawSection for RetentionSection {}

/// `[retention]`, typed: how long terminal jobs and their events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `done`, `skipped` and `cancelled` jobs (`completed_days`).
    pub completed: Duration,
    /// `failed` jobs (`failed_days`).
    pub failed: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        RetentionSection::default().settings()
    }
}

impl RetentionSection {
    /// The typed retention (0 days: kept until the next cleanup, which removes them).
    pub(crate) fn settings(&self) -> Retention {
        let day = 24 * 3600;
        Retention {
            completed: Duration::from_secs(u64::from(self.completed_days) * day),
            failed: Duration::from_secs(u64::from(self.failed_days) * day),
        }
    }
}
