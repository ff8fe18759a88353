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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::path::PathBuf;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::clients::{LocalBoxFuture, MediaServer};
    use crate::job::{EventSource, Language};
    use crate::library::Libraries;

    /// Answers the scripted results in order, then `Ok`; records each request.
    struct Scripted {
        answers: RefCell<Vec<Result<String, MediaServerError>>>,
        requests: RefCell<Vec<RefreshRequest>>,
    }

    impl MediaServer for Scripted {
        fn name(&self) -> &str {
            "fake"
        }
        fn refresh(
            &self,
            request: &RefreshRequest,
        ) -> LocalBoxFuture<Result<String, MediaServerError>> {
            self.requests.borrow_mut().push(request.clone());
            let mut answers = self.answers.borrow_mut();
            let answer = if answers.is_empty() {
                Ok("item".to_owned())
            } else {
                answers.remove(0)
            };
            Box::pin(async move { answer })
        }
    }

    fn context(answers: Vec<Result<String, MediaServerError>>) -> (WorkerContext, Rc<Scripted>) {
        let server = Rc::new(Scripted {
            answers: RefCell::new(answers),
            requests: RefCell::default(),
        });
        let mut context = WorkerContext::new(Libraries::from_roots([PathBuf::from("/m")]));
        context.media_server = Some(server.clone());
        context.refresh_retry = RefreshRetry {
            first_delay: Duration::from_millis(1),
            retries: 3,
        };
        (context, server)
    }

    fn job() -> Job {
        let mut job = Job::pending(
            PathBuf::from("/m/A.mkv"),
            Language::parse("fr").unwrap(),
            EventSource::Api,
            0,
        );
        job.jellyfin_item_id = Some("abc".to_owned());
        job
    }

    #[actix_rt::test]
    async fn passing_failures_are_retried_until_the_refresh_succeeds() {
        let unavailable = || Err(MediaServerError::Unavailable("HTTP 500".into()));
        let (context, server) = context(vec![unavailable(), unavailable()]);
        let events = refresh_after_write(&job(), Path::new("/m/A.fr.srt"), true, &context).await;
        assert_eq!(
            events,
            [(
                kind::MEDIA_SERVER_REFRESHED,
                json!({"server": "fake", "item_id": "item", "attempts": 3})
            )]
        );
        let requests = server.requests.borrow();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].item_id.as_deref(), Some("abc"));
        assert!(requests[0].replaced);
    }

    #[actix_rt::test]
    async fn an_unknown_item_or_a_refusal_is_not_retried_and_a_last_failure_is_reported() {
        for error in [
            MediaServerError::NotFound("not scanned yet".into()),
            MediaServerError::Refused("HTTP 401".into()),
        ] {
            let (context, server) = context(vec![Err(error.clone())]);
            let events =
                refresh_after_write(&job(), Path::new("/m/A.fr.srt"), false, &context).await;
            assert_eq!(server.requests.borrow().len(), 1, "{error}");
            assert_eq!(events[0].0, kind::MEDIA_SERVER_REFRESH_FAILED);
            assert_eq!(events[0].1["error"], error.to_string());
        }
        let down = (0..10)
            .map(|_| Err(MediaServerError::Unavailable("refused".into())))
            .collect();
        let (context, server) = context(down);
        let events = refresh_after_write(&job(), Path::new("/m/A.fr.srt"), false, &context).await;
        assert_eq!(
            server.requests.borrow().len(),
            4,
            "one try and three retries"
        );
        assert_eq!(events[0].1["attempts"], 4);
    }

    #[actix_rt::test]
    async fn without_a_media_server_nothing_is_recorded() {
        let context = WorkerContext::new(Libraries::from_roots([PathBuf::from("/m")]));
        let events = refresh_after_write(&job(), Path::new("/m/A.fr.srt"), false, &context).await;
        assert!(events.is_empty());
    }
}
