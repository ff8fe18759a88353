//! After a subtitle is written: tell the media server (Jellyfin) to re-read the item, so
//! the subtitle shows without waiting for a library scan.
//!
//! A refresh that fails for a passing reason (5xx, timeout, connection refused) is tried
//! again with exponential backoff ([`RefreshRetry`]); one that cannot succeed (no item for
//! the path yet, a refused key) is not. Either way the subtitle stays written and the job
//! ends `done`: the outcome is one event, `media_server.refreshed` (server, item id,
//! attempts) or `media_server.refresh_failed` (server, attempts, error).

use std::cell::Cell;
use std::path::Path;

use backon::{ExponentialBuilder, Retryable};
use serde_json::json;
use tracing::{info, warn};

use crate::clients::{MediaServerError, RefreshRequest};
use crate::event::kind;
use crate::job::Job;
use crate::worker::{RefreshRetry, WorkerContext};

/// Refreshes the item of `job` after `written` was written; answers the event to record
/// (none without a media server).
pub async fn refresh_after_write(
    job: &Job,
    written: &Path,
    replaced: bool,
    context: &WorkerContext,
) -> Vec<(&'static str, serde_json::Value)> {
    let Some(server) = context.media_server.clone() else {
        return Vec::new();
    };
    let request = RefreshRequest {
        video: job.path.clone(),
        item_id: job.jellyfin_item_id.clone(),
        replaced,
    };
    let attempts = Cell::new(0u32);
    let RefreshRetry {
        first_delay,
        retries,
    } = context.refresh_retry;
    let result = (|| {
        attempts.set(attempts.get() + 1);
        server.refresh(&request)
    })
    .retry(
        ExponentialBuilder::default()
            .with_min_delay(first_delay)
            .with_factor(2.0)
            .with_max_times(retries)
            .with_jitter(),
    )
    .when(|err| matches!(err, MediaServerError::Unavailable(_)))
    .notify(|err, wait| {
        warn!(job_id = %job.id, server = server.name(), error = %err, retry_in_ms = wait.as_millis(), "media server refresh failed, retrying");
    })
    .await;
    match result {
        Ok(item_id) => {
            info!(job_id = %job.id, server = server.name(), item_id, path = %written.display(), "media server refreshed");
            vec![(
                kind::MEDIA_SERVER_REFRESHED,
                json!({"server": server.name(), "item_id": item_id, "attempts": attempts.get()}),
            )]
        }
        Err(err) => {
            warn!(job_id = %job.id, server = server.name(), error = %err, "media server refresh failed; the subtitle stays written");
            vec![(
                kind::MEDIA_SERVER_REFRESH_FAILED,
                json!({"server": server.name(), "attempts": attempts.get(), "error": err.to_string()}),
            )]
        }
    }
}
