//! Jobs: what cuewarden promised to do for one video and one language.
//!
//! A [`Job`] is the durable record; [`JobStatus`] is its life-cycle state, and
//! [`JobStatus::transition`] is the single place that decides which moves are legal
//! (README, "Jobs and events"). Everything here is plain data: no clock, no I/O, no actix.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifier of a job: a UUIDv7, so ids sort in creation order (newest last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

pub use crate::language::{InvalidLanguage, Language};

/// How urgently a job runs; higher runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Scheduled sync and upgrades.
    Low,
    /// Socket and watcher detections, notifications.
    Normal,
    /// A user asked (API, CLI, UI).
    High,
    /// Webhooks from Sonarr/Radarr/Jellyfin.
    Critical,
}

impl Priority {
    /// The snake_case name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// Where a job stands. Serialized in snake_case in the store and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted and persisted, not yet queued.
    Pending,
    /// Waiting for a download slot.
    DownloadQueued,
    /// A Downloader is searching providers.
    DownloadInProgress,
    /// Waiting for a translation slot.
    TranslateQueued,
    /// A Translator is working.
    TranslateInProgress,
    /// Nothing found yet, or every provider is cooling down; wakes up later.
    Waiting,
    /// The subtitle is written next to the video.
    Done,
    /// The language already existed.
    Skipped,
    /// Attempts exhausted or a permanent error.
    Failed,
    /// A user cancelled the job.
    Cancelled,
}

/// Every status, in life-cycle order.
pub const ALL_STATUSES: [JobStatus; 10] = [
    JobStatus::Pending,
    JobStatus::DownloadQueued,
    JobStatus::DownloadInProgress,
    JobStatus::TranslateQueued,
    JobStatus::TranslateInProgress,
    JobStatus::Waiting,
    JobStatus::Done,
    JobStatus::Skipped,
    JobStatus::Failed,
    JobStatus::Cancelled,
];

/// A move the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal job transition from {from} to {to}")]
pub struct IllegalTransition {
    /// The status the job had.
    pub from: JobStatus,
    /// The status that was asked for.
    pub to: JobStatus,
}

impl JobStatus {
    /// The snake_case name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::DownloadQueued => "download_queued",
            Self::DownloadInProgress => "download_in_progress",
            Self::TranslateQueued => "translate_queued",
            Self::TranslateInProgress => "translate_in_progress",
            Self::Waiting => "waiting",
            Self::Done => "done",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// A stable one-byte code for store indexes.
    pub fn code(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::DownloadQueued => 1,
            Self::DownloadInProgress => 2,
            Self::TranslateQueued => 3,
            Self::TranslateInProgress => 4,
            Self::Waiting => 5,
            Self::Done => 6,
            Self::Skipped => 7,
            Self::Failed => 8,
            Self::Cancelled => 9,
        }
    }

    /// The status with the given [`code`](Self::code).
    pub fn from_code(code: u8) -> Option<Self> {
        ALL_STATUSES.get(usize::from(code)).copied()
    }

    /// A terminal job never runs again by itself (`done`, `skipped`, `failed`, `cancelled`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Done | Self::Skipped | Self::Failed | Self::Cancelled
        )
    }

    /// Queued or running: `retry` answers 409 for these.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Pending
                | Self::DownloadQueued
                | Self::DownloadInProgress
                | Self::TranslateQueued
                | Self::TranslateInProgress
        )
    }

    /// Checks a move against the documented life cycle and returns the new status.
    pub fn transition(self, to: JobStatus) -> Result<JobStatus, IllegalTransition> {
        use JobStatus::*;
        let legal = match (self, to) {
            // Anything not finished can be cancelled by a user.
            (from, Cancelled) => !from.is_terminal(),
            (Pending, DownloadQueued | Skipped | Failed) => true,
            (DownloadQueued, DownloadInProgress) => true,
            (DownloadInProgress, Done | Skipped | Waiting | Failed | TranslateQueued) => true,
            // A crash or shutdown mid-download puts the job back in the queue.
            (DownloadInProgress, DownloadQueued) => true,
            (TranslateQueued, TranslateInProgress) => true,
            (TranslateInProgress, Done | Waiting | Failed | TranslateQueued) => true,
            // Retry: by schedule (waiting) or by a user (waiting, failed, cancelled).
            (Waiting | Failed | Cancelled, DownloadQueued) => true,
            // A user rejected the subtitle written: search again.
            (Done, DownloadQueued) => true,
            (Waiting, Failed) => true,
            _ => false,
        };
        if legal {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATUSES
            .iter()
            .copied()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}

/// What detected or requested the media (the `source` of the first event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// The Jellyfin WebSocket.
    JellyfinWs,
    /// A Jellyfin, Sonarr or Radarr webhook.
    Webhook,
    /// The file-system watcher.
    Watcher,
    /// A scheduled or polled library sync.
    LibrarySync,
    /// The HTTP API (CLI and web UI included).
    Api,
    /// The JobManager itself.
    Manager,
    /// A Downloader worker.
    Downloader,
    /// A Translator worker.
    Translator,
    /// A notification target.
    Notifier,
    /// The cron scheduler.
    Scheduler,
}

impl EventSource {
    /// The priority a job created by this source gets (README, "Jobs and events").
    pub fn default_priority(self) -> Priority {
        match self {
            Self::Webhook => Priority::Critical,
            Self::Api => Priority::High,
            Self::LibrarySync | Self::Scheduler => Priority::Low,
            _ => Priority::Normal,
        }
    }

    /// This source as one bit of a set of sources (what saw a job, see `job.detected`).
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A video the daemon knows about, as this daemon sees it on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaItem {
    /// Absolute path of the video, inside a configured library.
    pub path: PathBuf,
    /// Jellyfin's item id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jellyfin_item_id: Option<String>,
}

/// The durable record of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Time-ordered id.
    pub id: JobId,
    /// Current status.
    pub status: JobStatus,
    /// The wanted language.
    pub language: Language,
    /// The video, absolute.
    pub path: PathBuf,
    /// Jellyfin's item id, when known.
    #[serde(default)]
    pub jellyfin_item_id: Option<String>,
    /// Queue priority.
    pub priority: Priority,
    /// Whether a translation may stand in when no subtitle exists in `language`.
    pub auto_translate: bool,
    /// How many download/translate attempts have started.
    pub attempts: u32,
    /// The last error or the reason the job is waiting.
    pub error: Option<String>,
    /// The subtitle written, once done.
    pub output_path: Option<PathBuf>,
    /// What created the job.
    pub origin: EventSource,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Last change, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
    /// When a `waiting` job wakes by itself, milliseconds since the Unix epoch.
    #[serde(default)]
    pub wake_at_ms: Option<i64>,
    /// The subtitle a translation starts from, once one was found.
    #[serde(default)]
    pub translation_source: Option<PathBuf>,
    /// The language of `translation_source`.
    #[serde(default)]
    pub translation_from: Option<Language>,
    /// Attempts that failed with an error: what `jobs.max_attempts` limits. Searches that
    /// found nothing and checks of a missing video are not failures.
    #[serde(default)]
    pub failures: u32,
    /// Searches that found nothing since the job was created or retried by a user: the
    /// step of the "nothing found" schedule.
    #[serde(default)]
    pub nothing_found: u32,
    /// Since when the video has been missing, while the manager checks again before it
    /// ends the job (`video removed`).
    #[serde(default)]
    pub video_missing_since_ms: Option<i64>,
    /// Waits in a row for every subtitle provider to end its cooldown (an outage, a rate
    /// limit, a quota): not failures, not searches; their events are compacted.
    #[serde(default)]
    pub provider_waits: u32,
    /// A notification job's target and what it tells (`origin` is `notifier`); `None` for
    /// a subtitle job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<crate::notify::NotifyJob>,
}

impl Job {
    /// A new `pending` job for the video at `path` in `language`, created at `now` (ms) by
    /// `origin`, with the origin's priority and nothing tried yet.
    pub fn pending(path: PathBuf, language: Language, origin: EventSource, now: i64) -> Self {
        Self {
            id: JobId::new(),
            status: JobStatus::Pending,
            language,
            path,
            jellyfin_item_id: None,
            priority: origin.default_priority(),
            auto_translate: false,
            attempts: 0,
            error: None,
            output_path: None,
            origin,
            created_at_ms: now,
            updated_at_ms: now,
            wake_at_ms: None,
            translation_source: None,
            translation_from: None,
            failures: 0,
            nothing_found: 0,
            video_missing_since_ms: None,
            provider_waits: 0,
            notify: None,
        }
    }

    /// The deduplication key: one unfinished job per video and language.
    pub fn dedup_key(&self) -> String {
        dedup_key(&self.path, &self.language)
    }
}

/// What the JobManager keeps in memory of an unfinished job, read from the store without
/// the rest of the record (start-up) or taken from a full record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobHead {
    /// The job.
    pub id: JobId,
    /// Its status.
    pub status: JobStatus,
    /// Its queue priority.
    pub priority: Priority,
    /// The video (for the deduplication key; not kept).
    pub path: PathBuf,
    /// The wanted language (for the deduplication key; not kept).
    pub language: Language,
    /// When a `waiting` job wakes by itself.
    #[serde(default)]
    pub wake_at_ms: Option<i64>,
    /// What created the job (the first source that saw it).
    #[serde(default)]
    pub origin: Option<EventSource>,
}

/// The fields of [`JobHead`] borrowed from a stored record, as the store's start-up check
/// decodes every unfinished job: nothing is allocated or re-parsed per job (the language is
/// the canonical code a [`Language`] was stored as).
#[derive(Debug, Deserialize)]
pub struct JobHeadRef<'a> {
    /// The job.
    pub id: JobId,
    /// Its status.
    pub status: JobStatus,
    /// Its queue priority.
    pub priority: Priority,
    /// The video.
    #[serde(borrow)]
    pub path: std::borrow::Cow<'a, str>,
    /// The wanted language's code.
    #[serde(borrow)]
    pub language: std::borrow::Cow<'a, str>,
    /// When a `waiting` job wakes by itself.
    #[serde(default)]
    pub wake_at_ms: Option<i64>,
    /// What created the job (the first source that saw it).
    #[serde(default)]
    pub origin: Option<EventSource>,
}

impl From<&Job> for JobHead {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id,
            status: job.status,
            priority: job.priority,
            path: job.path.clone(),
            language: job.language.clone(),
            wake_at_ms: job.wake_at_ms,
            origin: Some(job.origin),
        }
    }
}

impl From<Job> for JobHead {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            status: job.status,
            priority: job.priority,
            path: job.path,
            language: job.language,
            wake_at_ms: job.wake_at_ms,
            origin: Some(job.origin),
        }
    }
}

/// The deduplication key of a video and a language.
pub fn dedup_key(path: &std::path::Path, language: &Language) -> String {
    format!("{}\u{0}{}", path.display(), language)
}

#[cfg(test)]
mod tests {
    use super::JobStatus::*;
    use super::*;

    /// The whole documented transition table, written out by hand.
    fn expected_legal(from: JobStatus, to: JobStatus) -> bool {
        let allowed: &[JobStatus] = match from {
            Pending => &[DownloadQueued, Skipped, Failed, Cancelled],
            DownloadQueued => &[DownloadInProgress, Cancelled],
            DownloadInProgress => &[
                Done,
                Skipped,
                Waiting,
                Failed,
                TranslateQueued,
                DownloadQueued,
                Cancelled,
            ],
            TranslateQueued => &[TranslateInProgress, Cancelled],
            TranslateInProgress => &[Done, Waiting, Failed, TranslateQueued, Cancelled],
            Waiting => &[DownloadQueued, Failed, Cancelled],
            Failed | Cancelled => &[DownloadQueued],
            Done => &[DownloadQueued],
            Skipped => &[],
        };
        allowed.contains(&to)
    }

    #[test]
    fn every_pair_of_statuses_follows_the_documented_life_cycle() {
        for from in ALL_STATUSES {
            for to in ALL_STATUSES {
                let result = from.transition(to);
                if expected_legal(from, to) {
                    assert_eq!(result, Ok(to), "{from} -> {to} should be legal");
                } else {
                    assert_eq!(
                        result,
                        Err(IllegalTransition { from, to }),
                        "{from} -> {to} should be illegal"
                    );
                }
            }
        }
    }

    #[test]
    fn terminal_statuses_never_move_except_by_retry_or_reject() {
        for to in ALL_STATUSES {
            assert_eq!(Done.transition(to).is_ok(), to == DownloadQueued);
            assert!(Skipped.transition(to).is_err());
        }
        assert!(Failed.transition(DownloadQueued).is_ok());
        assert!(Cancelled.transition(Cancelled).is_err());
    }

    #[test]
    fn status_codes_and_names_round_trip() {
        for status in ALL_STATUSES {
            assert_eq!(JobStatus::from_code(status.code()), Some(status));
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert!("downloading".parse::<JobStatus>().is_err());
        assert_eq!(JobStatus::from_code(10), None);
    }

    #[test]
    fn priorities_order_critical_first() {
        assert!(Priority::Critical > Priority::High);
        assert!(Priority::High > Priority::Normal);
        assert!(Priority::Normal > Priority::Low);
        assert_eq!(EventSource::Webhook.default_priority(), Priority::Critical);
        assert_eq!(EventSource::Api.default_priority(), Priority::High);
        assert_eq!(EventSource::LibrarySync.default_priority(), Priority::Low);
    }
}
