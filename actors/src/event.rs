//! Events: the append-only history of everything that happened to a job.
//!
//! Every job transition appends one [`Event`]; the store gives each a global, increasing
//! sequence number at commit time, which the SSE stream uses as its `Last-Event-ID`. Numbers
//! are never reused; compaction of a waiting job's retries leaves gaps.

use serde::{Deserialize, Serialize};

use crate::job::{EventSource, JobId};

/// Event types, dotted (README, "Jobs and events").
pub mod kind {
    /// A job was accepted.
    pub const SUBTITLE_REQUESTED: &str = "subtitle.requested";
    /// A job was queued for download.
    pub const DOWNLOAD_REQUESTED: &str = "subtitle.download.requested";
    /// A Downloader started working on a job.
    pub const DOWNLOAD_STARTED: &str = "subtitle.download.started";
    /// A subtitle in the wanted language was downloaded.
    pub const READY: &str = "subtitle.ready";
    /// The language already exists next to the video.
    pub const SKIPPED: &str = "subtitle.skipped";
    /// Nothing was found; the job waits.
    pub const WAITING: &str = "subtitle.waiting";
    /// A translation was queued.
    pub const TRANSLATE_REQUESTED: &str = "subtitle.translate.requested";
    /// A Translator started working on a job.
    pub const TRANSLATE_STARTED: &str = "subtitle.translate.started";
    /// A translation was produced.
    pub const TRANSLATED: &str = "subtitle.translated";
    /// The subtitle file was written.
    pub const WRITTEN: &str = "subtitle.written";
    /// The media server (Jellyfin) was told to re-read the item after a write.
    pub const MEDIA_SERVER_REFRESHED: &str = "media_server.refreshed";
    /// The media server could not be told (after retries); the subtitle stays written.
    pub const MEDIA_SERVER_REFRESH_FAILED: &str = "media_server.refresh_failed";
    /// A notify job was created, or a digest took one more item.
    pub const NOTIFY_QUEUED: &str = "notify.queued";
    /// A notification was delivered.
    pub const NOTIFY_SENT: &str = "notify.sent";
    /// A notification failed.
    pub const NOTIFY_FAILED: &str = "notify.failed";
    /// The job failed for good.
    pub const JOB_FAILED: &str = "job.failed";
    /// The job will be tried again later.
    pub const RETRY_SCHEDULED: &str = "job.retry_scheduled";
    /// A user asked for a retry.
    pub const RETRY_REQUESTED: &str = "job.retry_requested";
    /// A user cancelled the job.
    pub const CANCELLED: &str = "job.cancelled";
    /// Another source reported the video of an unfinished job (once per source and job;
    /// the event's `source` names it).
    pub const DETECTED: &str = "job.detected";
    /// The daemon restarted while the job was running; it is queued again.
    pub const RESUMED: &str = "job.resumed";
}

/// One entry of the global event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Global sequence number, assigned by the store at commit; 0 before that.
    pub seq: u64,
    /// The job this event belongs to, if any.
    pub job_id: Option<JobId>,
    /// Dotted type, one of [`kind`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// The component that caused it.
    pub source: EventSource,
    /// Details: status, reason, paths, provider.
    pub payload: serde_json::Value,
}

impl Event {
    /// A new job event, not yet sequenced.
    pub fn for_job(
        job_id: JobId,
        kind: &str,
        source: EventSource,
        at_ms: i64,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            seq: 0,
            job_id: Some(job_id),
            kind: kind.to_owned(),
            at_ms,
            source,
            payload,
        }
    }
}
