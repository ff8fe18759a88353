//! Workers that fail: transient and permanent provider errors, garbage subtitles, a
//! provider that panics and one that hangs past the worker timeout. The manager must turn
//! each into the right status with a clear reason, and keep running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use cuewarden_actors::JobStatus;
use cuewarden_actors::clients::{ProviderError, TranslateError};
use cuewarden_actors::event::kind;
use cuewarden_actors::job_manager::ManagerSettings;

#[actix_rt::test]
async fn transient_provider_failures_are_retried_until_a_subtitle_arrives() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let unavailable = Search::Fail(ProviderError::Unavailable("HTTP 503".to_owned()));
    let provider = FakeProvider::new([unavailable.clone(), unavailable], Search::Offer);
    let manager = sandbox.start_with_provider(&store, &provider);

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_in(&store, id, JobStatus::Done).await;
    assert_eq!(job.attempts, 3);
    assert_eq!(job.error, None, "the old error is cleared once done");
    assert_eq!(provider.searches.get(), 3);
    assert_eq!(
        std::fs::read_to_string(sandbox.sidecar("fr")).unwrap(),
        WRITTEN_SRT
    );

    let events = events(&store, id);
    let kinds: Vec<String> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(count(&kinds, kind::RETRY_SCHEDULED), 2);
    assert_eq!(count(&kinds, kind::DOWNLOAD_STARTED), 3);
    assert_eq!(count(&kinds, kind::WRITTEN), 1);
    assert_eq!(count(&kinds, kind::JOB_FAILED), 0);
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == kind::WAITING)
        .map(|e| e.payload["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2);
    for reason in reasons {
        assert_eq!(reason, "fake: provider unavailable: HTTP 503");
    }
    assert_in_order(
        &kinds,
        &[
            kind::DOWNLOAD_STARTED,
            kind::WAITING,
            kind::RETRY_SCHEDULED,
            kind::DOWNLOAD_STARTED,
            kind::WAITING,
            kind::RETRY_SCHEDULED,
            kind::DOWNLOAD_STARTED,
            kind::READY,
            kind::WRITTEN,
        ],
    );
    assert_sequenced(&events);
}

#[actix_rt::test]
async fn transient_failures_give_up_after_the_last_attempt() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider = FakeProvider::new(
        [],
        Search::Fail(ProviderError::Unavailable("HTTP 502".to_owned())),
    );
    let mut workers = sandbox.workers();
    workers.providers = vec![provider.as_provider()];
    let settings = ManagerSettings {
        max_attempts: 2,
        ..settings()
    };
    let manager = start_manager(&store, workers, settings);

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_in(&store, id, JobStatus::Failed).await;
    assert_eq!(job.attempts, 2);
    assert_eq!(
        job.error.as_deref(),
        Some("fake: provider unavailable: HTTP 502 (gave up after 2 attempts)")
    );
    assert_eq!(provider.searches.get(), 2);
    assert_eq!(count(&kinds(&store, id), kind::JOB_FAILED), 1);
}

#[actix_rt::test]
async fn a_permanent_provider_error_fails_the_job_at_once() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider = FakeProvider::new(
        [],
        Search::Fail(ProviderError::Permanent("invalid API key".to_owned())),
    );
    let manager = sandbox.start_with_provider(&store, &provider);

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_in(&store, id, JobStatus::Failed).await;
    assert_eq!(job.attempts, 1);
    assert_eq!(
        job.error.as_deref(),
        Some("fake: provider error: invalid API key")
    );
    let events = events(&store, id);
    let failed = events.iter().find(|e| e.kind == kind::JOB_FAILED).unwrap();
    assert_eq!(
        failed.payload["error"],
        "fake: provider error: invalid API key"
    );
    assert_eq!(count(&kinds(&store, id), kind::RETRY_SCHEDULED), 0);
}

#[actix_rt::test]
async fn a_garbage_subtitle_is_never_written_and_the_job_waits_with_the_reason() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider =
        FakeProvider::new([], Search::Offer).downloading(b"<html>Too many requests</html>");
    let manager = sandbox.start_with_provider(&store, &provider);

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    // It keeps trying: a second attempt fails the same way.
    let job = job_where(&store, id, "waiting after a second attempt", |j| {
        j.status == JobStatus::Waiting && j.attempts >= 2
    })
    .await;
    let error = job.error.unwrap();
    assert!(
        error.contains("fake sent an unusable subtitle: an HTML page, not a subtitle"),
        "{error}"
    );
    assert!(provider.downloads.get() >= 2);
    // Nothing was written, not even a temporary file.
    assert_eq!(sandbox.folder_listing(), ["Movie (2019).mkv"]);
    let kinds = kinds(&store, id);
    assert_eq!(count(&kinds, kind::WRITTEN), 0);
    assert_eq!(count(&kinds, kind::READY), 0);
    assert!(store.outbox(10).unwrap().is_empty());
}

#[actix_rt::test]
async fn a_panicking_provider_does_not_take_the_manager_down() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider = FakeProvider::new([Search::Panic], Search::Offer);
    let manager = sandbox.start_with_provider(&store, &provider);

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    // The worker died with its panic; the manager counts it as a retryable failure.
    let job = job_in(&store, id, JobStatus::Done).await;
    assert_eq!(job.attempts, 2);
    assert_eq!(provider.searches.get(), 2);
    let events = events(&store, id);
    let waiting = events.iter().find(|e| e.kind == kind::WAITING).unwrap();
    assert_eq!(waiting.payload["reason"], "worker stopped unexpectedly");
    assert_eq!(count(&kinds(&store, id), kind::WRITTEN), 1);

    // The manager still answers and still takes work.
    let status = manager_status(&manager).await;
    assert!(status.is_accepting);
    assert_eq!(status.running_downloads, 0);
    let other = request(&manager, sandbox.request(&["en"], false)).await[0].id;
    job_in(&store, other, JobStatus::Done).await;
}

#[actix_rt::test]
async fn a_hanging_provider_times_out_and_the_job_is_retried() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider = FakeProvider::new([Search::Hang], Search::Offer);
    let mut workers = sandbox.workers();
    workers.providers = vec![provider.as_provider()];
    let settings = ManagerSettings {
        worker_timeout: Duration::from_millis(300),
        ..settings()
    };
    let manager = start_manager(&store, workers, settings);

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_in(&store, id, JobStatus::Done).await;
    assert_eq!(job.attempts, 2);
    // The hung search was abandoned with its worker, not left running.
    assert!(provider.hang_dropped.get());
    let events = events(&store, id);
    let waiting = events.iter().find(|e| e.kind == kind::WAITING).unwrap();
    let reason = waiting.payload["reason"].as_str().unwrap();
    assert!(reason.starts_with("worker timed out after"), "{reason}");
    assert_eq!(manager_status(&manager).await.running_downloads, 0);
}

#[actix_rt::test]
async fn a_translator_error_is_retried_like_a_provider_error() {
    let sandbox = Sandbox::new();
    sandbox.add_sidecar("Movie (2019).en.srt", ENGLISH_SRT);
    let store = sandbox.open_store();
    // A 500 is tried again at once within the attempt; three in a row fail the attempt.
    let unavailable = || Translate::Fail(TranslateError::Unavailable("HTTP 500".to_owned()));
    let translator = FakeTranslator::new(50, [unavailable(), unavailable(), unavailable()]);
    let mut workers = sandbox.workers();
    workers.translator = Some(translator.as_service());
    workers.translate_from = vec![lang("en")];
    let manager = start_manager(&store, workers, settings());

    let id = request(&manager, sandbox.request(&["fr"], true)).await[0].id;
    let job = job_in(&store, id, JobStatus::Done).await;
    assert_eq!(
        job.output_path.as_deref(),
        Some(sandbox.sidecar("fr").as_path())
    );
    let events = events(&store, id);
    let waiting = events.iter().find(|e| e.kind == kind::WAITING).unwrap();
    let reason = waiting.payload["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("fake-translator: translator unavailable: HTTP 500"),
        "{reason}"
    );
    // The retry starts over from the download step, which hands over to translation again.
    assert_eq!(translator.batches.borrow().len(), 4);
}
