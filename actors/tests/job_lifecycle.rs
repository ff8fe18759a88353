//! The JobManager actor end to end, with a real store and library in temporary directories
//! and in-process fakes of the providers and the translator: the happy paths, waiting,
//! skipping, translation, deduplication, cancel and retry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use cuewarden_actors::StoreError;
use cuewarden_actors::downloader::NO_PROVIDER_REASON;
use cuewarden_actors::event::kind;
use cuewarden_actors::job_manager::{CancelJob, ManagerError, RetryJob, Shutdown};
use cuewarden_actors::store::OutboxEntry;
use cuewarden_actors::subtitle::parse_srt;
use cuewarden_actors::{EventSource, JobStatus};

#[actix_rt::test]
async fn a_provided_subtitle_is_written_next_to_the_video_and_the_job_is_done() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider = FakeProvider::new([], Search::Offer);
    let manager = sandbox.start_with_provider(&store, &provider);

    let summaries = request(&manager, sandbox.request(&["fr"], false)).await;
    assert_eq!(summaries[0].status, JobStatus::Pending);
    let id = summaries[0].id;
    let job = job_in(&store, id, JobStatus::Done).await;

    // The file: Jellyfin's naming, next to the video, normalised, nothing else left behind.
    let sidecar = sandbox.sidecar("fr");
    assert_eq!(sidecar.file_name().unwrap(), "Movie (2019).fr.srt");
    assert_eq!(job.output_path.as_deref(), Some(sidecar.as_path()));
    assert_eq!(std::fs::read_to_string(&sidecar).unwrap(), WRITTEN_SRT);
    assert_eq!(
        sandbox.folder_listing(),
        ["Movie (2019).fr.srt", "Movie (2019).mkv"]
    );
    assert_eq!((job.attempts, job.error.as_deref()), (1, None));
    assert_eq!((provider.searches.get(), provider.downloads.get()), (1, 1));

    // The history, in order, with gap-free increasing sequence numbers.
    let events = events(&store, id);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            kind::SUBTITLE_REQUESTED,
            kind::DOWNLOAD_REQUESTED,
            kind::DOWNLOAD_STARTED,
            kind::READY,
            kind::WRITTEN
        ]
    );
    assert_sequenced(&events);
    assert_eq!(events[0].source, EventSource::Api);
    assert_eq!(events[3].source, EventSource::Downloader);
    assert_eq!(events[3].payload["producer"], "fake");
    // The fake says 90; the core's own score (from the names) may only be higher.
    let detail = &events[3].payload["detail"];
    assert!(detail["score"].as_u64().unwrap() >= 90, "{detail}");
    assert!(
        !detail["breakdown"].as_array().unwrap().is_empty(),
        "{detail}"
    );
    assert_eq!(
        events[4].payload["path"].as_str(),
        Some(sidecar.to_str().unwrap())
    );
    // External sinks hear about it, and the media index knows the video.
    let outbox = store.outbox(10).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        outbox[0].1,
        OutboxEntry::JobDone {
            job_id: id,
            path: sidecar.clone()
        }
    );
    // The same JSON as before the entry was typed.
    let entry = serde_json::to_value(&outbox[0].1).unwrap();
    assert_eq!(entry["kind"], "job.done");
    assert_eq!(entry["job_id"], id.to_string());
    let media = store
        .media(&sandbox.video.display().to_string())
        .unwrap()
        .unwrap();
    assert_eq!(media.languages, [lang("fr")]);
    assert_eq!(media.last_source, EventSource::Api);

    // A finished job can be neither cancelled nor retried.
    assert!(matches!(
        manager.send(CancelJob(id)).await.unwrap(),
        Ok(None)
    ));
    let err = manager.send(RetryJob(job)).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            ManagerError::Conflict {
                status: JobStatus::Done,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.job(id).unwrap().unwrap().status, JobStatus::Done);
}

#[actix_rt::test]
async fn without_a_provider_the_job_waits_with_the_reason_and_never_finishes() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let manager = start_manager(&store, sandbox.workers(), settings());

    let id = request(&manager, sandbox.request(&["fr"], true)).await[0].id;
    // Let it wake up and look again at least once.
    let job = job_where(&store, id, "waiting after a second attempt", |j| {
        j.status == JobStatus::Waiting && j.attempts >= 2
    })
    .await;
    assert_eq!(job.error.as_deref(), Some(NO_PROVIDER_REASON));
    assert!(job.wake_at_ms.is_some());
    assert!(!sandbox.sidecar("fr").exists());

    let events = events(&store, id);
    let waits: Vec<_> = events.iter().filter(|e| e.kind == kind::WAITING).collect();
    // A retry that finds nothing again leaves one `subtitle.waiting` (with the attempt
    // count) after the first `subtitle.requested`: earlier retries are compacted.
    // See: issue 7, "Store growth of waiting jobs".
    assert_eq!(waits.len(), 1, "{events:?}");
    assert!(
        waits[0].payload["attempt"].as_u64() >= Some(2),
        "{events:?}"
    );
    assert_eq!(
        events.first().map(|e| e.kind.as_str()),
        Some(kind::SUBTITLE_REQUESTED)
    );
    assert!(
        waits
            .iter()
            .all(|e| e.payload["reason"] == NO_PROVIDER_REASON)
    );
    assert!(
        events
            .iter()
            .all(|e| e.kind != kind::WRITTEN && e.kind != kind::JOB_FAILED)
    );
    // A waiting job is live: asking again answers the same job, and creates no other.
    let again = request(&manager, sandbox.request(&["fr"], true)).await;
    assert_eq!(again[0].id, id);
    assert_eq!(store.job_count().unwrap(), 1);
    assert_ne!(store.job(id).unwrap().unwrap().status, JobStatus::Done);
}

#[actix_rt::test]
async fn an_existing_subtitle_in_the_wanted_language_skips_the_job() {
    let sandbox = Sandbox::new();
    let existing = sandbox.add_sidecar("Movie (2019).fre.srt", ENGLISH_SRT);
    let store = sandbox.open_store();
    let provider = FakeProvider::new([], Search::Offer);
    let manager = sandbox.start_with_provider(&store, &provider);

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    job_in(&store, id, JobStatus::Skipped).await;
    let events = events(&store, id);
    let skipped = events.iter().find(|e| e.kind == kind::SKIPPED).unwrap();
    assert_eq!(skipped.payload["existing"], existing.to_str().unwrap());
    assert_eq!(provider.searches.get(), 0, "a provider was asked anyway");
    assert!(!sandbox.sidecar("fr").exists());
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), ENGLISH_SRT);
}

#[actix_rt::test]
async fn without_a_subtitle_in_the_language_a_translation_is_written() {
    let sandbox = Sandbox::new();
    sandbox.add_sidecar("Movie (2019).en.srt", ENGLISH_SRT);
    let store = sandbox.open_store();
    let provider = FakeProvider::new([], Search::Nothing);
    let translator = FakeTranslator::new(2, []);
    let manager = sandbox.start_with_translator(&store, &provider, &translator);

    let id = request(&manager, sandbox.request(&["fr"], true)).await[0].id;
    let job = job_in(&store, id, JobStatus::Done).await;

    let sidecar = sandbox.sidecar("fr");
    assert_eq!(job.output_path.as_deref(), Some(sidecar.as_path()));
    assert_eq!(
        job.translation_source.as_deref(),
        Some(
            sandbox
                .video
                .with_file_name("Movie (2019).en.srt")
                .as_path()
        )
    );
    assert_eq!(job.translation_from, Some(lang("en")));
    // Every cue keeps its index, timing and tags; only the text is translated.
    let original = parse_srt(ENGLISH_SRT.as_bytes()).unwrap();
    let translated = parse_srt(&std::fs::read(&sidecar).unwrap()).unwrap();
    assert_eq!(translated.len(), original.len());
    for (before, after) in original.iter().zip(&translated) {
        assert_eq!(
            (after.index, after.start_ms, after.end_ms),
            (before.index, before.start_ms, before.end_ms)
        );
    }
    // Whole-cue tags and override blocks are kept out of the service's reach, put back
    // around the translation.
    let texts: Vec<&str> = translated.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        ["[fr] Hello", "<i>[fr] Goodbye</i>", "{\\an8}[fr] Top"]
    );
    // Sent in batches no larger than the service takes.
    let batches = translator.batches.borrow().clone();
    assert_eq!(
        batches,
        [
            vec!["Hello".to_owned(), "Goodbye".to_owned()],
            vec!["Top".to_owned()]
        ]
    );
    assert_eq!(provider.searches.get(), 1);

    let kinds = kinds(&store, id);
    assert_in_order(
        &kinds,
        &[
            kind::SUBTITLE_REQUESTED,
            kind::DOWNLOAD_STARTED,
            kind::TRANSLATE_REQUESTED,
            kind::TRANSLATE_STARTED,
            kind::TRANSLATED,
            kind::WRITTEN,
        ],
    );
    assert_eq!(count(&kinds, kind::READY), 0);
    assert_eq!(count(&kinds, kind::WRITTEN), 1);
    let translated_event = events(&store, id)
        .into_iter()
        .find(|e| e.kind == kind::TRANSLATED)
        .unwrap();
    assert_eq!(translated_event.source, EventSource::Translator);
    assert_eq!(translated_event.payload["producer"], "fake-translator");
}

#[actix_rt::test]
async fn a_batch_that_comes_back_short_is_sent_again() {
    let sandbox = Sandbox::new();
    sandbox.add_sidecar("Movie (2019).en.srt", ENGLISH_SRT);
    let store = sandbox.open_store();
    let translator = FakeTranslator::new(10, [Translate::DropOne]);
    let mut workers = sandbox.workers();
    workers.translator = Some(translator.as_service());
    workers.translate_from = vec![lang("en")];
    let manager = start_manager(&store, workers, settings());

    let id = request(&manager, sandbox.request(&["de"], true)).await[0].id;
    let job = job_in(&store, id, JobStatus::Done).await;
    // The short answer is never written: the batch of 3 is sent again in halves (1 + 2).
    assert_eq!(translator.batches.borrow().len(), 3);
    let written = parse_srt(&std::fs::read(job.output_path.unwrap()).unwrap()).unwrap();
    assert_eq!(written[0].text, "[de] Hello");
    assert_eq!(written.len(), 3);
}

#[actix_rt::test]
async fn a_running_job_can_be_cancelled_and_then_retried() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider = FakeProvider::new([Search::Hang], Search::Offer);
    let manager = sandbox.start_with_provider(&store, &provider);

    let id = start_searching(&manager, &store, &sandbox, &provider).await;

    let summary = manager.send(CancelJob(id)).await.unwrap().unwrap().unwrap();
    assert_eq!((summary.id, summary.status), (id, JobStatus::Cancelled));
    assert_eq!(store.job(id).unwrap().unwrap().status, JobStatus::Cancelled);
    // The worker is stopped: its search is abandoned and its slot is free.
    eventually("the hanging search to be dropped", || {
        provider.hang_dropped.get().then_some(())
    })
    .await;
    assert_eq!(manager_status(&manager).await.running_downloads, 0);
    // Cancelling again: the manager no longer holds it.
    assert!(matches!(
        manager.send(CancelJob(id)).await.unwrap(),
        Ok(None)
    ));

    // A cancelled job can be retried; this time the provider answers.
    let cancelled = store.job(id).unwrap().unwrap();
    let summary = manager.send(RetryJob(cancelled)).await.unwrap().unwrap();
    assert_eq!(summary.status, JobStatus::DownloadQueued);
    let job = job_in(&store, id, JobStatus::Done).await;
    assert_eq!(job.attempts, 1, "attempts restart at a user's retry");
    assert_eq!(
        std::fs::read_to_string(sandbox.sidecar("fr")).unwrap(),
        WRITTEN_SRT
    );

    let kinds = kinds(&store, id);
    assert_in_order(
        &kinds,
        &[
            kind::DOWNLOAD_STARTED,
            kind::CANCELLED,
            kind::RETRY_REQUESTED,
            kind::DOWNLOAD_STARTED,
            kind::WRITTEN,
        ],
    );
    assert_eq!(count(&kinds, kind::WRITTEN), 1);
    assert_eq!(store.job_count().unwrap(), 1);
}

#[actix_rt::test]
async fn one_request_for_two_languages_runs_two_jobs() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let provider = FakeProvider::new([], Search::Offer);
    let manager = sandbox.start_with_provider(&store, &provider);

    let summaries = request(&manager, sandbox.request(&["fr", "en"], false)).await;
    assert_ne!(summaries[0].id, summaries[1].id);
    for summary in &summaries {
        job_in(&store, summary.id, JobStatus::Done).await;
    }
    assert_eq!(
        sandbox.folder_listing(),
        [
            "Movie (2019).en.srt",
            "Movie (2019).fr.srt",
            "Movie (2019).mkv"
        ]
    );
    assert_eq!(store.job_count().unwrap(), 2);
    let status = manager_status(&manager).await;
    assert!(status.is_accepting);
    assert!(status.unfinished.is_empty(), "{:?}", status.unfinished);
}

#[actix_rt::test]
async fn after_shutdown_no_new_work_is_accepted() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let manager = start_manager(&store, sandbox.workers(), settings());

    let unfinished = manager
        .send(Shutdown {
            grace: std::time::Duration::from_secs(5),
        })
        .await
        .unwrap();
    assert!(unfinished.is_empty(), "{unfinished:?}");
    let err = manager
        .send(sandbox.request(&["fr"], false))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ManagerError::ShuttingDown), "{err:?}");
    assert!(!manager_status(&manager).await.is_accepting);
    assert_eq!(store.job_count().unwrap(), 0);
}

#[actix_rt::test]
async fn a_request_the_store_cannot_persist_is_refused_and_not_kept() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let manager = start_manager(&store, sandbox.workers(), settings());
    // Let the manager finish its start-up read before the store goes away.
    manager_status(&manager).await;
    store.close();

    let err = manager
        .send(sandbox.request(&["fr"], false))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, ManagerError::Store(StoreError::Closed)),
        "{err:?}"
    );
    // Nothing half-accepted stays behind to block a later request.
    let status = manager_status(&manager).await;
    assert!(status.unfinished.is_empty(), "{:?}", status.unfinished);
    assert_eq!(store.job_count().unwrap(), 0);
}

// See: issue 7, "A job whose video was deleted … waits and retries forever".
#[actix_rt::test]
async fn a_job_whose_video_stays_deleted_fails_as_removed_after_the_checks() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    std::fs::remove_file(&sandbox.video).unwrap();
    // Checks after 20 ms and 60 ms (the daemon's are 10 min, 1 h, 6 h and 24 h).
    let manager = start_manager(&store, sandbox.workers(), settings());

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_in(&store, id, JobStatus::Failed).await;
    assert_eq!(job.error.as_deref(), Some("video removed"));
    assert_eq!(job.failures, 0);
    let events = events(&store, id);
    let failed = events.iter().find(|e| e.kind == kind::JOB_FAILED).unwrap();
    assert_eq!(failed.payload["error"], "video removed");
    // Looked for at once, then again (the wake-up tick is 1 s: both checks had passed).
    assert!(count(&kinds(&store, id), kind::DOWNLOAD_STARTED) >= 2);
}

#[actix_rt::test]
async fn a_video_back_before_the_last_check_lets_the_job_carry_on() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let contents = std::fs::read(&sandbox.video).unwrap();
    std::fs::remove_file(&sandbox.video).unwrap();
    let manager = start_manager(&store, sandbox.workers(), settings());

    let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
    let job = job_where(&store, id, "waiting for the video", |j| {
        j.video_missing_since_ms.is_some()
    })
    .await;
    assert_eq!(job.status, JobStatus::Waiting);
    std::fs::write(&sandbox.video, contents).unwrap();
    // Back: no provider is enabled, so it waits on the "nothing found" schedule.
    let job = job_where(&store, id, "searched again", |j| {
        j.status == JobStatus::Waiting && j.error.as_deref() == Some(NO_PROVIDER_REASON)
    })
    .await;
    assert_eq!(job.video_missing_since_ms, None);
}
