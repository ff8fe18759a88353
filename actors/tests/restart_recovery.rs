//! Restarts: a daemon that stops (or dies) mid-job leaves its jobs in the store, and the
//! next JobManager over the reopened file takes them over and finishes each exactly once.
//! Each "process" is its own actix `System` over its own `Store` handle on the same file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use actix::Actor;
use common::*;
use cuewarden_actors::JobStatus;
use cuewarden_actors::clients::ProviderError;
use cuewarden_actors::event::{Event, kind};
use cuewarden_actors::job_manager::{JobManager, Shutdown, open_store};
use cuewarden_actors::store::Change;
use cuewarden_actors::time::now_ms;
use cuewarden_actors::{EventSource, JobId};

#[test]
fn a_job_interrupted_mid_download_resumes_after_restart_and_completes_once() {
    let sandbox = Sandbox::new();

    // First run: the provider hangs, so the job is still running when the daemon stops.
    let id: JobId = actix_rt::System::new().block_on(async {
        let store = sandbox.open_store();
        let provider = FakeProvider::new([], Search::Hang);
        let manager = sandbox.start_with_provider(&store, &provider);
        let id = start_searching(&manager, &store, &sandbox, &provider).await;
        let unfinished = manager
            .send(Shutdown {
                grace: Duration::from_millis(50),
            })
            .await
            .unwrap();
        assert_eq!(
            unfinished,
            [id],
            "the hung job should outlive the grace period"
        );
        assert!(!manager_status(&manager).await.is_accepting);
        id
    });
    // The System and everything in it (manager, worker, store handles) is gone now.

    let store = sandbox.open_store();
    let before = store.job(id).unwrap().unwrap();
    assert_eq!(before.status, JobStatus::DownloadInProgress);
    assert_eq!(before.attempts, 1);
    drop(store);

    // Second run: the job resumes and the provider answers this time.
    actix_rt::System::new().block_on(async {
        let store = sandbox.open_store();
        let provider = FakeProvider::new([], Search::Offer);
        let manager = sandbox.start_with_provider(&store, &provider);
        // A request that arrives during the take-over finds the resumed job.
        let again = request(&manager, sandbox.request(&["fr"], false)).await;
        assert_eq!(again[0].id, id);

        let job = job_in(&store, id, JobStatus::Done).await;
        assert_eq!(job.attempts, 2);
        assert_eq!(provider.searches.get(), 1);
        assert_eq!(store.job_count().unwrap(), 1, "a duplicate job was created");
        let kinds = kinds(&store, id);
        assert_eq!(count(&kinds, kind::RESUMED), 1);
        assert_eq!(count(&kinds, kind::WRITTEN), 1);
        assert_eq!(count(&kinds, kind::SUBTITLE_REQUESTED), 1);
        assert_in_order(
            &kinds,
            &[
                kind::SUBTITLE_REQUESTED,
                kind::DOWNLOAD_STARTED,
                kind::RESUMED,
                kind::DOWNLOAD_STARTED,
                kind::READY,
                kind::WRITTEN,
            ],
        );
        assert_sequenced(&events(&store, id));
        assert_eq!(
            std::fs::read_to_string(sandbox.sidecar("fr")).unwrap(),
            WRITTEN_SRT
        );
    });

    // Third run: nothing is left to do, and nothing is done again.
    actix_rt::System::new().block_on(async {
        let store = sandbox.open_store();
        let events_before = store.last_event_seq().unwrap();
        let provider = FakeProvider::new([], Search::Offer);
        let manager = sandbox.start_with_provider(&store, &provider);
        let status = manager_status(&manager).await;
        assert!(status.unfinished.is_empty(), "{:?}", status.unfinished);
        assert_eq!(status.running_downloads, 0);
        assert_eq!(provider.searches.get(), 0);
        assert_eq!(store.last_event_seq().unwrap(), events_before);
    });
}

#[test]
fn every_unfinished_stage_recorded_in_the_store_resumes_and_terminal_jobs_stay_put() {
    let sandbox = Sandbox::new();
    let english = sandbox.add_sidecar("Movie (2019).en.srt", ENGLISH_SRT);
    let now = now_ms();

    // What a killed daemon might leave behind, written straight into the store.
    let downloading = job_record(&sandbox.video, "fr", JobStatus::DownloadInProgress, now);
    let mut translating = job_record(&sandbox.video, "de", JobStatus::TranslateInProgress, now);
    translating.translation_source = Some(english.clone());
    translating.translation_from = Some(lang("en"));
    let mut waiting = job_record(&sandbox.video, "it", JobStatus::Waiting, now);
    waiting.wake_at_ms = Some(now - 1_000);
    waiting.error = Some("no it subtitle found".to_owned());
    let queued = job_record(&sandbox.video, "es", JobStatus::DownloadQueued, now);
    let mut done = job_record(&sandbox.video, "nl", JobStatus::Done, now);
    done.output_path = Some(sandbox.sidecar("nl"));
    let failed = job_record(&sandbox.video, "pt", JobStatus::Failed, now);
    let all = [
        &downloading,
        &translating,
        &waiting,
        &queued,
        &done,
        &failed,
    ];
    {
        let store = sandbox.open_store();
        let changes = all
            .iter()
            .map(|job| Change::PutJob {
                job: (*job).clone(),
                events: vec![Event::for_job(
                    job.id,
                    kind::SUBTITLE_REQUESTED,
                    EventSource::Watcher,
                    now,
                    serde_json::json!({}),
                )],
            })
            .collect();
        store.submit_blocking(changes).unwrap();
        store.close();
    }

    actix_rt::System::new().block_on(async {
        let store = sandbox.open_store();
        let provider = FakeProvider::new([], Search::Offer);
        let translator = FakeTranslator::new(10, []);
        let manager = sandbox.start_with_translator(&store, &provider, &translator);

        for job in [&downloading, &translating, &waiting, &queued] {
            let finished = job_in(&store, job.id, JobStatus::Done).await;
            assert_eq!(
                finished.output_path.as_deref(),
                Some(sandbox.sidecar(job.language.as_str()).as_path())
            );
        }
        // Interrupted jobs say so; queued and waiting ones were not interrupted.
        assert_eq!(count(&kinds(&store, downloading.id), kind::RESUMED), 1);
        assert_eq!(count(&kinds(&store, translating.id), kind::RESUMED), 1);
        assert_eq!(count(&kinds(&store, waiting.id), kind::RESUMED), 0);
        assert_eq!(count(&kinds(&store, queued.id), kind::RESUMED), 0);
        // The translation resumed as a translation: no new download for it.
        assert_eq!(
            count(&kinds(&store, translating.id), kind::DOWNLOAD_STARTED),
            0
        );
        assert_eq!(translator.batches.borrow().len(), 1);
        assert_eq!(
            provider.searches.get(),
            3,
            "fr, it and es searched once each"
        );

        // Terminal jobs were left alone.
        for job in [&done, &failed] {
            assert_eq!(store.job(job.id).unwrap().as_ref(), Some(job));
            assert_eq!(kinds(&store, job.id), [kind::SUBTITLE_REQUESTED]);
        }
        assert_eq!(store.job_count().unwrap(), all.len() as u64);
        let status = manager_status(&manager).await;
        assert!(status.unfinished.is_empty(), "{:?}", status.unfinished);
    });
}

/// The daemon's start: the store's check decodes the unfinished jobs and the JobManager takes
/// them over without reading them again; deduplication must still find them (their keys are
/// hashed by the hasher the check used).
#[test]
fn jobs_the_start_up_check_decoded_are_resumed_and_deduplicated() {
    let sandbox = Sandbox::new();
    let id: JobId = actix_rt::System::new().block_on(async {
        let store = sandbox.open_store();
        let provider = FakeProvider::new([], Search::Hang);
        let manager = sandbox.start_with_provider(&store, &provider);
        let id = start_searching(&manager, &store, &sandbox, &provider).await;
        let grace = Duration::from_millis(50);
        assert_eq!(manager.send(Shutdown { grace }).await.unwrap(), [id]);
        id
    });

    actix_rt::System::new().block_on(async {
        let (store, start) = open_store(&sandbox.data).unwrap();
        let start = start.expect("a good store hands over its unfinished jobs");
        assert_eq!(start.len(), 1);
        let provider = FakeProvider::new([], Search::Offer);
        let mut workers = sandbox.workers();
        workers.providers = vec![provider.as_provider()];
        let manager = JobManager::new(settings(), store.clone(), workers)
            .resuming(Some(start))
            .start();
        let again = request(&manager, sandbox.request(&["fr"], false)).await;
        assert_eq!(again[0].id, id, "the resumed job was not found by its key");
        let job = job_in(&store, id, JobStatus::Done).await;
        assert_eq!(job.attempts, 2);
        assert_eq!(store.job_count().unwrap(), 1, "a duplicate job was created");
        assert_eq!(count(&kinds(&store, id), kind::RESUMED), 1);
    });
}

#[test]
fn a_cooldown_a_worker_reports_is_persisted_and_still_in_force_after_restart() {
    let sandbox = Sandbox::new();
    let hour = Duration::from_secs(3600);

    // First run: the provider rate-limits the first search for an hour.
    let id = actix_rt::System::new().block_on(async {
        let store = sandbox.open_store();
        let provider = FakeProvider::new(
            [Search::Fail(ProviderError::RateLimited {
                retry_after: Some(hour),
            })],
            Search::Offer,
        );
        let manager = sandbox.start_with_provider(&store, &provider);
        let id = request(&manager, sandbox.request(&["fr"], false)).await[0].id;
        // The retry (after a short backoff) finds the provider cooling down: the manager
        // shared the worker's report with the next worker, which did not call it.
        let job = job_where(&store, id, "waiting for the cooldown", |j| {
            j.status == JobStatus::Waiting
                && j.error.as_deref() == Some("every subtitle provider is cooling down")
        })
        .await;
        assert_eq!(provider.searches.get(), 1);
        assert!(job.wake_at_ms.unwrap() > now_ms() + 3_500_000);
        let states = store.provider_states().unwrap();
        assert_eq!(states.len(), 1, "{states:?}");
        assert_eq!(states[0].provider, "fake");
        assert_eq!(states[0].reason.as_deref(), Some("rate limited"));
        assert!(states[0].cooling_until(now_ms()).unwrap() > now_ms() + 3_500_000);
        manager
            .send(Shutdown {
                grace: Duration::from_secs(1),
            })
            .await
            .unwrap();
        store.close();
        id
    });

    // Second run over the same file: a new job does not call the cooling provider either.
    actix_rt::System::new().block_on(async {
        let store = sandbox.open_store();
        let provider = FakeProvider::new([], Search::Offer);
        let manager = sandbox.start_with_provider(&store, &provider);
        let new = request(&manager, sandbox.request(&["de"], false)).await[0].id;
        let job = job_where(&store, new, "waiting for the cooldown", |j| {
            j.status == JobStatus::Waiting
        })
        .await;
        assert_eq!(
            job.error.as_deref(),
            Some("every subtitle provider is cooling down")
        );
        assert_eq!(provider.searches.get(), 0, "the cooldown was forgotten");
        assert_eq!(
            store.job(id).unwrap().unwrap().status,
            JobStatus::Waiting,
            "the first job still waits for the cooldown to end"
        );
    });
}
