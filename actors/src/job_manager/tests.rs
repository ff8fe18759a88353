//! ManagerCore tests: the JobManager's decisions without actix, a clock or a store.

use std::path::{Path, PathBuf};

use super::*;

const NOW: i64 = 1_700_000_000_000;

fn settings() -> ManagerSettings {
    ManagerSettings {
        max_downloads: 2,
        max_translations: 1,
        max_attempts: 3,
        retry_min_delay: Duration::from_secs(10),
        retry_max_delay: Duration::from_secs(300),
        worker_timeout: Duration::from_secs(60),
        ..ManagerSettings::default()
    }
}

fn lang(code: &str) -> Language {
    Language::parse(code).unwrap()
}

fn video(name: &str) -> PathBuf {
    PathBuf::from(format!("/media/movies/{name}.mkv"))
}

fn new_request(name: &str, languages: &[&str], priority: Priority) -> NewRequest {
    NewRequest {
        media: MediaItem {
            path: video(name),
            jellyfin_item_id: Some(format!("item-{name}")),
        },
        languages: languages.iter().map(|l| lang(l)).collect(),
        auto_translate: true,
        source: EventSource::Api,
        priority,
        existing: Vec::new(),
    }
}

/// The jobs and event kinds a list of changes writes, in order. A [`Change::MoveJob`] (the
/// core did not hold the record) is shown as the record the writer makes of it: its id,
/// status and time are known, its wake time cleared; the rest is a placeholder.
fn put_jobs(changes: &[Change]) -> Vec<(Job, Vec<&str>)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::PutJob { job, events } => Some((
                job.clone(),
                events.iter().map(|e| e.kind.as_str()).collect(),
            )),
            Change::MoveJob {
                id,
                status,
                at_ms,
                events,
            } => Some((
                Job {
                    id: *id,
                    updated_at_ms: *at_ms,
                    wake_at_ms: None,
                    error: None,
                    attempts: 0,
                    ..stored(*status)
                },
                events.iter().map(|e| e.kind.as_str()).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// The single job a step writes, with its event kinds.
fn only_put(step: &Step) -> (Job, Vec<String>) {
    let puts = put_jobs(&step.changes);
    assert_eq!(puts.len(), 1, "{:?}", step.changes);
    let (job, kinds) = &puts[0];
    (job.clone(), kinds.iter().map(|k| (*k).to_owned()).collect())
}

/// The events of the single job a step writes.
fn events_of(step: &Step) -> &[Event] {
    step.changes
        .iter()
        .find_map(|c| match c {
            Change::PutJob { events, .. } | Change::MoveJob { events, .. } => {
                Some(events.as_slice())
            }
            _ => None,
        })
        .unwrap()
}

/// The jobs a step starts: at once (the core holds the record), or once their record is
/// loaded ([`Action::Load`]).
fn started(step: &Step) -> Vec<(JobId, WorkKind)> {
    step.actions
        .iter()
        .filter_map(|a| match a {
            Action::Start(job, kind) => Some((job.id, *kind)),
            Action::Load(id, kind) => Some((*id, *kind)),
            _ => None,
        })
        .collect()
}

fn has_dispatch(step: &Step) -> bool {
    step.actions.iter().any(|a| matches!(a, Action::Dispatch))
}

/// Requests subtitles and queues the new jobs, as the actor does after the commit.
fn submit(core: &mut ManagerCore, request: &NewRequest) -> Vec<JobId> {
    let accepted = core.request(request, NOW).unwrap();
    core.queue_new(&accepted.new_ids, NOW);
    accepted.new_ids
}

/// One job, queued and started as a download.
fn running_download(core: &mut ManagerCore, name: &str) -> JobId {
    let ids = submit(core, &new_request(name, &["fr"], Priority::Normal));
    let step = core.dispatch(NOW);
    assert!(started(&step).contains(&(ids[0], WorkKind::Download)));
    ids[0]
}

fn written(path: &str) -> Outcome {
    Outcome::Written {
        path: PathBuf::from(path),
        producer: "fake".to_owned(),
        detail: json!({"score": 90}),
    }
}

fn failed(retryable: bool) -> Outcome {
    Outcome::Failed {
        error: "provider unavailable: 503".to_owned(),
        retryable,
    }
}

fn stored(status: JobStatus) -> Job {
    let mut job = Job::pending(
        video("Stored"),
        lang("fr"),
        EventSource::Watcher,
        NOW - 10_000,
    );
    job.status = status;
    job.attempts = 2;
    job.error = Some("earlier failure".to_owned());
    job.updated_at_ms = NOW - 5_000;
    job
}

/// The bounds of retry number `attempt` under `settings`: the exponential base, and at most
/// twice that (jitter), never more than the cap.
fn retry_bounds(settings: &ManagerSettings, attempt: u32) -> (Duration, Duration) {
    let base = settings
        .retry_min_delay
        .saturating_mul(2u32.saturating_pow(attempt - 1))
        .min(settings.retry_max_delay);
    (base, (base * 2).min(settings.retry_max_delay))
}

#[test]
fn a_request_makes_one_pending_job_per_language_after_recording_the_media() {
    let mut core = ManagerCore::new(settings());
    let request = new_request("Movie", &["fr", "en"], Priority::High);
    let accepted = core.request(&request, NOW).unwrap();

    assert!(
        matches!(&accepted.changes[0], Change::PutMedia(record)
            if record.path == video("Movie")
                && record.languages == [lang("fr"), lang("en")]
                && record.jellyfin_item_id.as_deref() == Some("item-Movie")
                && record.last_requested_at_ms == NOW),
        "{:?}",
        accepted.changes[0]
    );
    let puts = put_jobs(&accepted.changes);
    assert_eq!(accepted.changes.len(), 3);
    assert_eq!(puts.len(), 2);
    for ((job, kinds), language) in puts.iter().zip(["fr", "en"]) {
        assert_eq!(job.status, JobStatus::Pending);
        assert_eq!(job.language, lang(language));
        assert_eq!(job.path, video("Movie"));
        assert_eq!(job.priority, Priority::High);
        assert_eq!(job.origin, EventSource::Api);
        assert_eq!(job.jellyfin_item_id.as_deref(), Some("item-Movie"));
        assert_eq!((job.attempts, job.created_at_ms), (0, NOW));
        assert_eq!(kinds, &[kind::SUBTITLE_REQUESTED]);
    }
    let summary_ids: Vec<JobId> = accepted.summaries.iter().map(|s| s.id).collect();
    assert_eq!(summary_ids, accepted.new_ids);
    assert_eq!(
        accepted
            .summaries
            .iter()
            .map(|s| (s.language.as_str(), s.status))
            .collect::<Vec<_>>(),
        [("fr", JobStatus::Pending), ("en", JobStatus::Pending)]
    );
    assert!(core.job(accepted.new_ids[0]).is_some());
}

#[test]
fn a_language_the_video_has_as_an_embedded_track_is_skipped_at_once() {
    let mut core = ManagerCore::new(settings());
    let mut request = new_request("Movie", &["fr", "en", "zh"], Priority::Normal);
    // As Jellyfin names them: 639-2/B and a regional Chinese.
    request.existing = vec![lang("fre"), lang("zh-TW")];
    let accepted = core.request(&request, NOW).unwrap();
    let puts = put_jobs(&accepted.changes);
    let by_language: Vec<(&str, JobStatus, Vec<&str>)> = puts
        .iter()
        .map(|(job, kinds)| (job.language.as_str(), job.status, kinds.clone()))
        .collect();
    assert_eq!(
        by_language,
        [
            (
                "fr",
                JobStatus::Skipped,
                vec![kind::SUBTITLE_REQUESTED, kind::SKIPPED]
            ),
            ("en", JobStatus::Pending, vec![kind::SUBTITLE_REQUESTED]),
            (
                "zh",
                JobStatus::Skipped,
                vec![kind::SUBTITLE_REQUESTED, kind::SKIPPED]
            ),
        ]
    );
    assert_eq!(accepted.new_ids.len(), 1, "only English is queued");
    assert_eq!(
        accepted
            .summaries
            .iter()
            .map(|s| s.status)
            .collect::<Vec<_>>(),
        [JobStatus::Skipped, JobStatus::Pending, JobStatus::Skipped]
    );
    let step = core.queue_new(&accepted.new_ids, NOW);
    assert_eq!(put_jobs(&step.changes).len(), 1);
    // A skipped job is finished: asking again makes a new one, skipped again.
    let again = core.request(&request, NOW + 1).unwrap();
    assert_eq!(again.summaries[0].status, JobStatus::Skipped);
    assert_ne!(again.summaries[0].id, accepted.summaries[0].id);
}

#[test]
fn the_same_video_and_language_never_get_two_live_jobs() {
    let mut core = ManagerCore::new(settings());
    let first = submit(
        &mut core,
        &new_request("Movie", &["fr", "en"], Priority::Normal),
    );

    let again = core
        .request(
            &new_request("Movie", &["en", "de", "fr"], Priority::Critical),
            NOW,
        )
        .unwrap();
    // Only the new language makes a job; the media record is still refreshed, and the
    // existing jobs rise to the request's higher priority.
    assert_eq!(again.new_ids.len(), 1);
    assert!(matches!(again.changes[0], Change::PutMedia { .. }));
    assert_eq!(put_jobs(&again.changes).len(), 1);
    let raised = again
        .changes
        .iter()
        .filter(|c| {
            matches!(
                c,
                Change::SetJobPriority {
                    priority: Priority::Critical,
                    ..
                }
            )
        })
        .count();
    assert_eq!(raised, 2);
    let answered: Vec<(JobId, &str, JobStatus)> = again
        .summaries
        .iter()
        .map(|s| (s.id, s.language.as_str(), s.status))
        .collect();
    assert_eq!(
        answered,
        [
            (first[1], "en", JobStatus::DownloadQueued),
            (again.new_ids[0], "de", JobStatus::Pending),
            (first[0], "fr", JobStatus::DownloadQueued),
        ]
    );
    assert_eq!(core.job(first[0]).unwrap().priority, Priority::Critical);

    // The same language twice in one request is one job.
    let twice = core
        .request(&new_request("Other", &["fr", "fr"], Priority::Normal), NOW)
        .unwrap();
    assert_eq!(twice.new_ids.len(), 1);
    assert_eq!(twice.summaries.len(), 1);
}

fn detected_events(changes: &[Change]) -> Vec<(JobId, EventSource)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::AppendEvents(events) => Some(events),
            _ => None,
        })
        .flatten()
        .filter(|e| e.kind == kind::DETECTED)
        .map(|e| (e.job_id.unwrap(), e.source))
        .collect()
}

#[test]
fn a_second_source_is_recorded_once_on_the_existing_job() {
    let mut core = ManagerCore::new(settings());
    let first = submit(
        &mut core,
        &new_request("Movie", &["fr", "en"], Priority::High),
    );
    // The same source again: nothing but the media record.
    let again = core
        .request(&new_request("Movie", &["fr", "en"], Priority::High), NOW)
        .unwrap();
    assert!(detected_events(&again.changes).is_empty());

    let mut from_webhook = new_request("Movie", &["fr", "en"], Priority::Critical);
    from_webhook.source = EventSource::Webhook;
    let seen = core.request(&from_webhook, NOW).unwrap();
    assert!(seen.new_ids.is_empty());
    assert_eq!(
        detected_events(&seen.changes),
        [
            (first[0], EventSource::Webhook),
            (first[1], EventSource::Webhook)
        ]
    );
    // Once per source and job, not per repeat.
    let repeat = core.request(&from_webhook, NOW).unwrap();
    assert!(detected_events(&repeat.changes).is_empty());

    // A job resumed after a restart knows its origin.
    let mut fresh = ManagerCore::new(settings());
    let hasher = fresh.key_hasher();
    let head = JobHead {
        id: first[0],
        status: JobStatus::DownloadQueued,
        priority: Priority::High,
        path: video("Movie"),
        language: lang("fr"),
        wake_at_ms: None,
        origin: Some(EventSource::Api),
    };
    fresh.resume_unfinished(vec![hasher.unfinished(head)], NOW);
    let api_again = fresh
        .request(&new_request("Movie", &["fr"], Priority::High), NOW)
        .unwrap();
    assert!(detected_events(&api_again.changes).is_empty());
    let seen = fresh.request(&from_webhook, NOW).unwrap();
    assert_eq!(
        detected_events(&seen.changes),
        [(first[0], EventSource::Webhook)]
    );
}

#[test]
fn a_finished_job_no_longer_blocks_a_new_request() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    core.finish(id, WorkKind::Download, written("/m/Movie.fr.srt"), NOW);
    assert!(core.job(id).is_none());
    let accepted = core
        .request(&new_request("Movie", &["fr"], Priority::Normal), NOW)
        .unwrap();
    assert_eq!(accepted.new_ids.len(), 1);
    assert_ne!(accepted.new_ids[0], id);
}

#[test]
fn queue_new_queues_pending_jobs_for_download() {
    let mut core = ManagerCore::new(settings());
    let accepted = core
        .request(&new_request("Movie", &["fr"], Priority::Normal), NOW)
        .unwrap();
    let step = core.queue_new(&accepted.new_ids, NOW + 1);
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::DownloadQueued);
    assert_eq!(job.updated_at_ms, NOW + 1);
    assert_eq!(kinds, [kind::DOWNLOAD_REQUESTED]);
    assert!(has_dispatch(&step));
    // Queuing again changes nothing: the job is no longer pending.
    assert!(put_jobs(&core.queue_new(&accepted.new_ids, NOW).changes).is_empty());
}

#[test]
fn dispatch_runs_the_highest_priority_first_and_in_arrival_order_within_one() {
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 1,
        ..settings()
    });
    let order = [
        ("low", Priority::Low),
        ("normal-1", Priority::Normal),
        ("critical-1", Priority::Critical),
        ("high", Priority::High),
        ("normal-2", Priority::Normal),
        ("critical-2", Priority::Critical),
    ];
    let mut names = HashMap::new();
    for (name, priority) in order {
        let ids = submit(&mut core, &new_request(name, &["fr"], priority));
        names.insert(ids[0], name);
    }
    let mut ran = Vec::new();
    loop {
        let step = core.dispatch(NOW);
        let starts = started(&step);
        if starts.is_empty() {
            break;
        }
        assert_eq!(starts.len(), 1, "more than one download slot used");
        let (id, kind) = starts[0];
        assert_eq!(core.job(id).unwrap().status, JobStatus::DownloadInProgress);
        ran.push(names[&id]);
        core.finish(id, kind, written("/m/x.fr.srt"), NOW);
    }
    assert_eq!(
        ran,
        [
            "critical-1",
            "critical-2",
            "high",
            "normal-1",
            "normal-2",
            "low"
        ]
    );
}

#[test]
fn dispatch_never_runs_more_downloads_or_translations_than_allowed() {
    let mut core = ManagerCore::new(settings()); // 2 downloads, 1 translation
    let ids: Vec<JobId> = (0..5)
        .map(|i| {
            submit(
                &mut core,
                &new_request(&format!("M{i}"), &["fr"], Priority::Normal),
            )[0]
        })
        .collect();
    let step = core.dispatch(NOW);
    assert_eq!(
        started(&step),
        [(ids[0], WorkKind::Download), (ids[1], WorkKind::Download)]
    );
    assert_eq!(put_jobs(&step.changes).len(), 2);
    let job = core.record(ids[0]).unwrap();
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::DownloadInProgress, 1)
    );
    assert!(started(&core.dispatch(NOW)).is_empty(), "slots are full");

    // Both downloads hand over to translation: two downloads start, one translation.
    for id in &ids[..2] {
        let step = core.finish(
            *id,
            WorkKind::Download,
            Outcome::NeedsTranslation {
                source: PathBuf::from("/m/x.en.srt"),
                from: lang("en"),
            },
            NOW,
        );
        assert!(has_dispatch(&step));
    }
    let step = core.dispatch(NOW);
    let starts = started(&step);
    assert_eq!(
        starts
            .iter()
            .filter(|(_, k)| *k == WorkKind::Download)
            .count(),
        2
    );
    assert_eq!(
        starts
            .iter()
            .filter(|(_, k)| *k == WorkKind::Translate)
            .collect::<Vec<_>>(),
        [&(ids[0], WorkKind::Translate)]
    );
    assert_eq!(core.running(WorkKind::Download), 2);
    assert_eq!(core.running(WorkKind::Translate), 1);
    assert_eq!(core.job(ids[1]).unwrap().status, JobStatus::TranslateQueued);
    assert!(started(&core.dispatch(NOW)).is_empty());

    // A finished translation frees its slot for the queued one.
    core.finish(ids[0], WorkKind::Translate, written("/m/M0.fr.srt"), NOW);
    assert_eq!(
        started(&core.dispatch(NOW)),
        [(ids[1], WorkKind::Translate)]
    );
}

#[test]
fn a_written_subtitle_finishes_the_job_with_its_events_and_an_outbox_entry() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    let step = core.finish(id, WorkKind::Download, written("/m/Movie.fr.srt"), NOW + 5);
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(job.output_path, Some(PathBuf::from("/m/Movie.fr.srt")));
    assert_eq!(job.error, None);
    assert_eq!(job.updated_at_ms, NOW + 5);
    assert_eq!(kinds, [kind::READY, kind::WRITTEN]);
    let events = events_of(&step);
    assert_eq!(events[0].source, EventSource::Downloader);
    assert_eq!(events[0].payload["producer"], json!("fake"));
    assert_eq!(events[0].payload["status"], json!("done"));
    assert_eq!(events[1].payload["path"], json!("/m/Movie.fr.srt"));
    assert!(step.changes.iter().any(|c| matches!(c,
        Change::EnqueueOutbox(OutboxEntry::JobDone { job_id, path })
            if *job_id == id && path == Path::new("/m/Movie.fr.srt"))));
    assert!(has_dispatch(&step));
    assert!(core.job(id).is_none(), "a terminal job stays in memory");
    assert_eq!(core.running(WorkKind::Download), 0);
}

#[test]
fn a_translation_that_is_written_reports_translated_then_written() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    let step = core.finish(
        id,
        WorkKind::Download,
        Outcome::NeedsTranslation {
            source: PathBuf::from("/m/Movie.en.srt"),
            from: lang("en"),
        },
        NOW,
    );
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::TranslateQueued);
    assert_eq!(
        job.translation_source,
        Some(PathBuf::from("/m/Movie.en.srt"))
    );
    assert_eq!(job.translation_from, Some(lang("en")));
    assert_eq!(kinds, [kind::TRANSLATE_REQUESTED]);

    let step = core.dispatch(NOW);
    let Some(Action::Start(job, WorkKind::Translate)) = step.actions.first() else {
        panic!("no translation started: {:?}", step.actions)
    };
    assert_eq!(job.status, JobStatus::TranslateInProgress);
    assert_eq!(
        job.translation_source,
        Some(PathBuf::from("/m/Movie.en.srt"))
    );
    assert_eq!(job.attempts, 2);
    assert_eq!(only_put(&step).1, [kind::TRANSLATE_STARTED]);

    let step = core.finish(id, WorkKind::Translate, written("/m/Movie.fr.srt"), NOW);
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::Done);
    assert_eq!(kinds, [kind::TRANSLATED, kind::WRITTEN]);
}

#[test]
fn an_existing_subtitle_skips_the_job() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    let step = core.finish(
        id,
        WorkKind::Download,
        Outcome::AlreadyExists {
            path: PathBuf::from("/m/Movie.fr.srt"),
        },
        NOW,
    );
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::Skipped);
    assert_eq!(kinds, [kind::SKIPPED]);
    assert!(
        !step
            .changes
            .iter()
            .any(|c| matches!(c, Change::EnqueueOutbox(_)))
    );
    assert!(core.job(id).is_none());
}

#[test]
fn nothing_found_parks_the_job_until_the_cooldown_or_the_backoff_ends() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Cooldown");
    let step = core.finish(
        id,
        WorkKind::Download,
        Outcome::NothingFound {
            reason: "every subtitle provider is cooling down".to_owned(),
            retry_after: Some(Duration::from_secs(30)),
        },
        NOW,
    );
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::Waiting);
    // Not before the cooldown ends; spread over 30 s after it.
    let wake = job.wake_at_ms.unwrap() - NOW;
    assert!((30_000..=60_000).contains(&wake), "{wake}");
    assert_eq!(job.provider_waits, 1);
    assert_eq!(
        job.error.as_deref(),
        Some("every subtitle provider is cooling down")
    );
    assert_eq!(kinds, [kind::WAITING, kind::RETRY_SCHEDULED]);
    assert!(core.job(id).is_some(), "a waiting job stays in memory");

    let id = running_download(&mut core, "Backoff");
    let step = core.finish(
        id,
        WorkKind::Download,
        Outcome::NothingFound {
            reason: "no fr subtitle found".to_owned(),
            retry_after: None,
        },
        NOW,
    );
    // Nothing found is not a transient error: the "nothing found" schedule applies (an
    // hour first), not the retry backoff. See: issue 7, "Store growth of waiting jobs".
    let (job, _) = only_put(&step);
    let wake = job.wake_at_ms.unwrap() - NOW;
    assert!(
        (3_240_000..=3_960_000).contains(&wake),
        "woke after {wake} ms, expected an hour ± 10 %"
    );
    assert_eq!((job.nothing_found, job.failures), (1, 0));
}

#[test]
fn retry_delays_grow_exponentially_with_jitter_and_never_exceed_the_cap() {
    let settings = ManagerSettings {
        retry_min_delay: Duration::from_secs(1),
        retry_max_delay: Duration::from_secs(60),
        ..settings()
    };
    let core = ManagerCore::new(settings.clone());
    for attempt in 1..=12 {
        let (low, high) = retry_bounds(&settings, attempt);
        for _ in 0..50 {
            let delay = core.retry_delay(attempt);
            assert!(
                delay >= low && delay <= high,
                "attempt {attempt}: {delay:?} outside {low:?}..={high:?}"
            );
            assert!(
                delay <= settings.retry_max_delay,
                "attempt {attempt}: {delay:?} over the cap"
            );
        }
    }
    // Long past the cap, still capped.
    assert!(core.retry_delay(10_000) <= settings.retry_max_delay);
    // Attempt 0 (nothing ran yet) behaves as the first retry.
    assert!(core.retry_delay(0) <= Duration::from_secs(2));
}

#[test]
fn retryable_failures_back_off_until_the_attempts_run_out() {
    let mut core = ManagerCore::new(settings()); // 3 attempts
    let id = running_download(&mut core, "Movie");
    for attempt in 1..=2u32 {
        let step = core.finish(id, WorkKind::Download, failed(true), NOW);
        let (job, kinds) = only_put(&step);
        let parked = job.clone();
        assert_eq!(job.status, JobStatus::Waiting, "attempt {attempt}");
        assert_eq!(job.attempts, attempt);
        assert_eq!(job.error.as_deref(), Some("provider unavailable: 503"));
        assert_eq!(kinds, [kind::WAITING, kind::RETRY_SCHEDULED]);
        let wake_at = job.wake_at_ms.unwrap();
        let (low, high) = retry_bounds(core.settings(), attempt);
        assert!((NOW + millis(low)..=NOW + millis(high)).contains(&wake_at));

        let woken = core.wake_due(wake_at);
        let (job, kinds) = only_put(&woken);
        assert_eq!(job.status, JobStatus::DownloadQueued);
        assert_eq!(job.wake_at_ms, None);
        assert_eq!(kinds, [kind::DOWNLOAD_REQUESTED]);
        // A waiting job's record is not kept: the dispatch loads it (as the store has it).
        assert_eq!(started(&core.dispatch(wake_at)), [(id, WorkKind::Download)]);
        let record = Job {
            status: JobStatus::DownloadQueued,
            wake_at_ms: None,
            ..parked
        };
        let step = core.loaded(id, WorkKind::Download, Ok(Some(record)), wake_at);
        let (job, kinds) = only_put(&step);
        assert_eq!(job.status, JobStatus::DownloadInProgress);
        assert_eq!(job.attempts, attempt + 1);
        assert_eq!(kinds, [kind::DOWNLOAD_STARTED]);
        assert!(matches!(step.actions[..], [Action::Start(..)]));
    }
    let step = core.finish(id, WorkKind::Download, failed(true), NOW);
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts, 3);
    assert_eq!(
        job.error.as_deref(),
        Some("provider unavailable: 503 (gave up after 3 attempts)")
    );
    assert_eq!(kinds, [kind::JOB_FAILED]);
    assert!(core.job(id).is_none());
}

#[test]
fn a_permanent_failure_fails_the_job_at_once() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    let step = core.finish(id, WorkKind::Download, failed(false), NOW);
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.error.as_deref(), Some("provider unavailable: 503"));
    assert_eq!(kinds, [kind::JOB_FAILED]);
}

#[test]
fn outcomes_from_workers_that_no_longer_own_the_job_are_ignored() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    // Wrong kind of worker.
    assert!(
        core.finish(id, WorkKind::Translate, written("/m/a"), NOW)
            .is_empty()
    );
    assert_eq!(core.job(id).unwrap().status, JobStatus::DownloadInProgress);
    // Cancelled while running: the late answer changes nothing.
    core.cancel(id, NOW).unwrap();
    assert!(
        core.finish(id, WorkKind::Download, written("/m/a"), NOW)
            .is_empty()
    );
    // Never heard of.
    assert!(
        core.finish(JobId::new(), WorkKind::Download, failed(true), NOW)
            .is_empty()
    );
}

#[test]
fn wake_due_requeues_only_the_jobs_whose_time_has_come() {
    let mut core = ManagerCore::new(settings());
    let mut park = |name: &str, secs: u64| {
        let id = running_download(&mut core, name);
        core.finish(
            id,
            WorkKind::Download,
            Outcome::NothingFound {
                reason: "cooling down".to_owned(),
                retry_after: Some(Duration::from_secs(secs)),
            },
            NOW,
        );
        id
    };
    // Cooldowns of 10 s and 100 s: woken within 30 s after their end (spread).
    let soon = park("Soon", 10);
    let later = park("Later", 100);
    let at = core.job(soon).unwrap().wake_at_ms.unwrap();
    assert!((NOW + 10_000..=NOW + 40_000).contains(&at), "{}", at - NOW);

    let step = core.wake_due(at - 1);
    assert!(step.is_empty(), "{step:?}");
    let step = core.wake_due(at);
    let (job, _) = only_put(&step);
    assert_eq!(job.id, soon);
    assert!(has_dispatch(&step));
    assert_eq!(core.job(later).unwrap().status, JobStatus::Waiting);
    // Woken once only.
    assert!(core.wake_due(NOW + 60_000).is_empty());
    let (job, _) = only_put(&core.wake_due(NOW + 200_000));
    assert_eq!(job.id, later);
}

#[test]
fn nothing_wakes_or_starts_once_the_manager_stops_accepting() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Waiting");
    core.finish(id, WorkKind::Download, failed(true), NOW);
    let queued = submit(&mut core, &new_request("Queued", &["fr"], Priority::Normal))[0];
    let failed_job = stored(JobStatus::Failed);

    core.stop_accepting();
    assert!(!core.is_accepting());
    assert!(core.wake_due(i64::MAX).is_empty());
    assert!(core.dispatch(NOW).is_empty());
    assert!(matches!(
        core.request(&new_request("New", &["fr"], Priority::High), NOW),
        Err(ManagerError::ShuttingDown)
    ));
    assert!(matches!(
        core.retry(failed_job, NOW),
        Err(ManagerError::ShuttingDown)
    ));
    assert_eq!(core.job(id).unwrap().status, JobStatus::Waiting);
    assert_eq!(core.job(queued).unwrap().status, JobStatus::DownloadQueued);
}

#[test]
fn cancel_ends_unfinished_jobs_and_stops_a_running_worker() {
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 1,
        ..settings()
    });
    let running = running_download(&mut core, "Running");
    let queued = submit(&mut core, &new_request("Queued", &["fr"], Priority::Normal))[0];
    let waiting = submit(
        &mut core,
        &new_request("Waiting", &["fr"], Priority::Critical),
    )[0];

    // A queued job: no worker to stop; its queue entry goes stale.
    let step = core.cancel(queued, NOW).unwrap();
    let (job, kinds) = only_put(&step);
    assert_eq!(job.status, JobStatus::Cancelled);
    assert_eq!(kinds, [kind::CANCELLED]);
    assert!(!step.actions.iter().any(|a| matches!(a, Action::Stop(_))));
    assert!(core.job(queued).is_none());

    // A running job: its worker is stopped and its slot freed.
    let step = core.cancel(running, NOW).unwrap();
    assert!(matches!(step.actions[0], Action::Stop(id) if id == running));
    assert!(has_dispatch(&step));
    assert_eq!(core.running(WorkKind::Download), 0);
    let step = core.dispatch(NOW);
    assert_eq!(started(&step), [(waiting, WorkKind::Download)]);

    // A waiting job: its wake-up is dropped.
    core.finish(waiting, WorkKind::Download, failed(true), NOW);
    let (job, _) = only_put(&core.cancel(waiting, NOW).unwrap());
    assert_eq!(job.wake_at_ms, None);
    assert!(core.wake_due(i64::MAX).is_empty());
    assert!(core.dispatch(NOW).is_empty(), "a cancelled job was started");

    // Cancelling released the deduplication key.
    let again = core
        .request(&new_request("Queued", &["fr"], Priority::Normal), NOW)
        .unwrap();
    assert_eq!(again.new_ids.len(), 1);
}

#[test]
fn cancel_of_a_finished_or_unknown_job_is_left_to_the_caller() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    core.finish(id, WorkKind::Download, written("/m/Movie.fr.srt"), NOW);
    assert!(core.cancel(id, NOW).is_none());
    assert!(core.cancel(JobId::new(), NOW).is_none());
    // A cancelled job cannot be cancelled again.
    let other = submit(&mut core, &new_request("Other", &["fr"], Priority::Normal))[0];
    assert!(core.cancel(other, NOW).is_some());
    assert!(core.cancel(other, NOW).is_none());
}

#[test]
fn retry_requeues_failed_and_cancelled_jobs_from_the_store() {
    for status in [JobStatus::Failed, JobStatus::Cancelled] {
        let mut core = ManagerCore::new(settings());
        let job = stored(status);
        let step = core.retry(job.clone(), NOW).unwrap();
        let (retried, kinds) = only_put(&step);
        assert_eq!(retried.id, job.id);
        assert_eq!(retried.status, JobStatus::DownloadQueued);
        assert_eq!((retried.attempts, retried.error.as_deref()), (0, None));
        assert_eq!(kinds, [kind::RETRY_REQUESTED]);
        let events = events_of(&step);
        assert_eq!(events[0].payload["previous_attempts"], json!(2));
        assert_eq!(events[0].source, EventSource::Api);
        assert_eq!(started(&core.dispatch(NOW)), [(job.id, WorkKind::Download)]);
        // Now live: a request for the same video and language gets this job.
        let request = NewRequest {
            media: MediaItem {
                path: job.path.clone(),
                jellyfin_item_id: None,
            },
            ..new_request("x", &["fr"], Priority::Normal)
        };
        let again = core.request(&request, NOW).unwrap();
        assert!(again.new_ids.is_empty());
        assert_eq!(again.summaries[0].id, job.id);
    }
}

#[test]
fn retry_wakes_a_waiting_job_at_once() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Movie");
    // The caller reads the record from the store: the one the park wrote.
    let (record, _) = only_put(&core.finish(id, WorkKind::Download, failed(true), NOW));
    let (job, kinds) = only_put(&core.retry(record, NOW).unwrap());
    assert_eq!(job.status, JobStatus::DownloadQueued);
    assert_eq!((job.attempts, job.wake_at_ms), (0, None));
    assert_eq!(kinds, [kind::RETRY_REQUESTED]);
    // The old wake-up is gone; the job runs from the queue.
    assert!(core.wake_due(i64::MAX).is_empty());
    assert_eq!(started(&core.dispatch(NOW)), [(id, WorkKind::Download)]);
}

#[test]
fn retry_refuses_queued_running_and_done_jobs() {
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 1,
        ..settings()
    });
    let running = running_download(&mut core, "Running");
    let queued = submit(&mut core, &new_request("Queued", &["fr"], Priority::Normal))[0];
    for (id, status) in [
        (running, JobStatus::DownloadInProgress),
        (queued, JobStatus::DownloadQueued),
    ] {
        let record = Job {
            id,
            status,
            ..core.record(id).unwrap().clone()
        };
        let err = core.retry(record, NOW).unwrap_err();
        assert!(
            matches!(err, ManagerError::Conflict { id: e, status: s, .. } if e == id && s == status),
            "{err:?}"
        );
        assert_eq!(
            core.job(id).unwrap().status,
            status,
            "the refusal changed the job"
        );
    }
    for status in [JobStatus::Done, JobStatus::Skipped, JobStatus::Pending] {
        let err = core.retry(stored(status), NOW).unwrap_err();
        assert!(matches!(err, ManagerError::Conflict { status: s, .. } if s == status));
        assert!(
            err.to_string()
                .contains("only waiting, failed or cancelled"),
            "{err}"
        );
    }
}

#[test]
fn retry_refuses_a_job_whose_video_and_language_have_another_live_job() {
    let mut core = ManagerCore::new(settings());
    let old = stored(JobStatus::Failed);
    let request = NewRequest {
        media: MediaItem {
            path: old.path.clone(),
            jellyfin_item_id: None,
        },
        ..new_request("x", &["fr"], Priority::Normal)
    };
    let live = submit(&mut core, &request)[0];
    let err = core.retry(old.clone(), NOW).unwrap_err();
    assert!(
        matches!(&err, ManagerError::Conflict { id, reason, .. }
            if *id == live && reason.contains("another job")),
        "{err:?}"
    );
    assert!(core.job(old.id).is_none());
}

#[test]
fn resume_requeues_interrupted_jobs_and_rearms_waiting_ones() {
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 10,
        max_translations: 10,
        ..settings()
    });
    // One job per status, terminal ones included, as the store might hand over.
    let mut jobs: Vec<Job> = crate::job::ALL_STATUSES
        .iter()
        .enumerate()
        .map(|(i, status)| Job {
            path: video(&format!("M{i}")),
            ..stored(*status)
        })
        .collect();
    let waiting_at = NOW + 60_000;
    for job in &mut jobs {
        if job.status == JobStatus::Waiting {
            job.wake_at_ms = Some(waiting_at);
        }
        if matches!(
            job.status,
            JobStatus::TranslateQueued | JobStatus::TranslateInProgress
        ) {
            job.translation_source = Some(PathBuf::from("/m/x.en.srt"));
            job.translation_from = Some(lang("en"));
        }
    }
    let by_status = |status: JobStatus| jobs.iter().find(|j| j.status == status).unwrap().id;
    let step = core.resume(jobs.clone(), NOW);

    let changed: HashMap<JobId, (JobStatus, Vec<&str>)> = put_jobs(&step.changes)
        .into_iter()
        .map(|(job, kinds)| (job.id, (job.status, kinds)))
        .collect();
    assert_eq!(changed.len(), 3, "{changed:?}");
    assert_eq!(
        changed[&by_status(JobStatus::Pending)],
        (JobStatus::DownloadQueued, vec![kind::DOWNLOAD_REQUESTED])
    );
    assert_eq!(
        changed[&by_status(JobStatus::DownloadInProgress)],
        (JobStatus::DownloadQueued, vec![kind::RESUMED])
    );
    assert_eq!(
        changed[&by_status(JobStatus::TranslateInProgress)],
        (JobStatus::TranslateQueued, vec![kind::RESUMED])
    );
    assert!(has_dispatch(&step));
    // Terminal records are not taken over.
    for status in [JobStatus::Done, JobStatus::Failed] {
        assert!(core.job(by_status(status)).is_none());
    }

    let step = core.dispatch(NOW);
    let mut starts = started(&step);
    starts.sort_by_key(|(id, _)| *id);
    let mut expected = vec![
        (by_status(JobStatus::Pending), WorkKind::Download),
        (by_status(JobStatus::DownloadQueued), WorkKind::Download),
        (by_status(JobStatus::DownloadInProgress), WorkKind::Download),
        (by_status(JobStatus::TranslateQueued), WorkKind::Translate),
        (
            by_status(JobStatus::TranslateInProgress),
            WorkKind::Translate,
        ),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(starts, expected);

    // The waiting job keeps its wake time.
    let waiting = by_status(JobStatus::Waiting);
    assert!(core.wake_due(waiting_at - 1).is_empty());
    let (job, _) = only_put(&core.wake_due(waiting_at));
    assert_eq!(job.id, waiting);

    // Resumed jobs take part in deduplication.
    let pending = by_status(JobStatus::Pending);
    let resumed = jobs.iter().find(|j| j.id == pending).unwrap().clone();
    let request = NewRequest {
        media: MediaItem {
            path: resumed.path.clone(),
            jellyfin_item_id: None,
        },
        ..new_request("x", &["fr"], Priority::Normal)
    };
    let again = core.request(&request, NOW).unwrap();
    assert!(again.new_ids.is_empty());
    assert_eq!(again.summaries[0].id, resumed.id);
}

#[test]
fn a_waiting_job_without_a_wake_time_wakes_at_the_next_check_after_resume() {
    let mut core = ManagerCore::new(settings());
    let job = stored(JobStatus::Waiting);
    core.resume(vec![job.clone()], NOW);
    assert_eq!(core.job(job.id).unwrap().wake_at_ms, Some(NOW));
    let (woken, _) = only_put(&core.wake_due(NOW));
    assert_eq!(woken.status, JobStatus::DownloadQueued);
}

#[test]
fn status_counts_cover_unfinished_jobs_only() {
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 1,
        ..settings()
    });
    let done = running_download(&mut core, "Done");
    core.finish(done, WorkKind::Download, written("/m/Done.fr.srt"), NOW);
    running_download(&mut core, "Running");
    submit(
        &mut core,
        &new_request("Queued", &["fr", "en"], Priority::Normal),
    );
    let counts = core.status_counts();
    assert_eq!(counts.get(&JobStatus::DownloadInProgress), Some(&1));
    assert_eq!(counts.get(&JobStatus::DownloadQueued), Some(&2));
    assert_eq!(counts.get(&JobStatus::Done), None);
    assert_eq!(counts.values().sum::<usize>(), 3);
}

#[test]
fn provider_updates_of_a_report_are_persisted_with_the_transition_and_shared() {
    let mut core = ManagerCore::new(settings());
    let registry = core.provider_registry();
    let id = running_download(&mut core, "RateLimited");
    let cooldown = ProviderState::cooling_down("fake", NOW + 60_000, "rate limited");
    let report = WorkReport {
        outcome: Outcome::NothingFound {
            reason: "every subtitle provider is cooling down".to_owned(),
            retry_after: Some(Duration::from_secs(60)),
        },
        provider_updates: vec![cooldown.clone()],
        events: Vec::new(),
    };
    let step = core.finish(id, WorkKind::Download, report.clone(), NOW);
    assert!(
        step.changes
            .iter()
            .any(|c| matches!(c, Change::PutProviderState(s) if *s == cooldown))
    );
    assert!(
        step.changes
            .iter()
            .any(|c| matches!(c, Change::PutJob { job, .. } if job.status == JobStatus::Waiting)),
        "the cooldown commits with the job's transition"
    );
    assert_eq!(registry.cooling_until("fake", NOW), Some(NOW + 60_000));
    assert_eq!(registry.cooling_until("fake", NOW + 60_000), None);

    // A late report (its job is no longer running) still tells about the provider.
    let later = ProviderState::cooling_down("fake", NOW + 120_000, "quota exhausted");
    let step = core.finish(
        id,
        WorkKind::Download,
        WorkReport {
            outcome: written("/media/movies/RateLimited.fr.srt"),
            provider_updates: vec![later.clone()],
            events: Vec::new(),
        },
        NOW,
    );
    assert_eq!(step.changes.len(), 1);
    assert!(matches!(&step.changes[0], Change::PutProviderState(s) if *s == later));
    assert_eq!(registry.get("fake"), Some(later));
}

#[test]
fn provider_states_restored_at_start_are_shared_with_workers() {
    let mut core = ManagerCore::new(settings());
    core.restore_providers(vec![ProviderState::cooling_down(
        "fake",
        NOW + 1_000,
        "rate limited",
    )]);
    assert_eq!(
        core.provider_registry().cooling_until("fake", NOW),
        Some(NOW + 1_000)
    );
}

// See: issue 7, "Memory per unfinished job". The core held a full `Job` (~2.6 KB) per
// unfinished job: 258 MB RSS with 100,000 waiting jobs.
#[test]
fn waiting_and_resumed_jobs_are_held_as_compact_entries_without_their_records() {
    assert!(
        std::mem::size_of::<Entry>() <= 48,
        "an entry is {} bytes",
        std::mem::size_of::<Entry>()
    );
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 10_000,
        wakes_per_tick: 10_000,
        ..settings()
    });
    let mut ids = Vec::new();
    for i in 0..3_000 {
        ids.extend(submit(
            &mut core,
            &new_request(&format!("M{i}"), &["fr"], Priority::Normal),
        ));
    }
    // A burst keeps a bounded number of queued records.
    assert!(core.records.len() <= KEPT_QUEUED_RECORDS);
    let step = core.dispatch(NOW);
    let loads = step
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Load(..)))
        .count();
    assert_eq!(loads, 3_000 - KEPT_QUEUED_RECORDS);
    for id in &ids {
        let record = core.record(*id).cloned().unwrap_or_else(|| Job {
            id: *id,
            attempts: 0,
            ..stored(JobStatus::DownloadQueued)
        });
        core.loaded(*id, WorkKind::Download, Ok(Some(record)), NOW);
        let step = core.finish(*id, WorkKind::Download, failed(true), NOW);
        assert!(
            matches!(&step.changes[0], Change::PutJob { job, .. } if job.status == JobStatus::Waiting)
        );
    }
    assert_eq!(core.len(), 3_000);
    assert!(core.records.is_empty(), "waiting jobs keep their records");

    // Woken, they move without their records; the dispatch reads them.
    let step = core.wake_due(i64::MAX - 1);
    assert_eq!(step.changes.len(), 3_000);
    assert!(step.changes.iter().all(|c| matches!(
        c,
        Change::MoveJob {
            status: JobStatus::DownloadQueued,
            ..
        }
    )));
    // Resumed jobs too: the start reads their heads only.
    let mut fresh = ManagerCore::new(settings());
    fresh.resume(
        ids.iter().map(|id| JobHead {
            id: *id,
            status: JobStatus::Waiting,
            priority: Priority::Normal,
            path: video(&id.to_string()),
            language: lang("fr"),
            wake_at_ms: Some(NOW),
            origin: None,
        }),
        NOW,
    );
    assert_eq!((fresh.len(), fresh.records.len()), (3_000, 0));
}

#[test]
fn a_load_that_fails_or_finds_nothing_frees_the_slot_and_a_cancelled_one_starts_nothing() {
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 1,
        ..settings()
    });
    let job = stored(JobStatus::DownloadQueued);
    core.resume(vec![job.clone()], NOW);
    let step = core.dispatch(NOW);
    assert!(matches!(step.actions[..], [Action::Load(id, WorkKind::Download)] if id == job.id));
    assert_eq!(core.running(WorkKind::Download), 1, "the slot is reserved");
    // An unreadable record: the job stays queued and the slot is free again.
    let step = core.loaded(
        job.id,
        WorkKind::Download,
        Err(StoreError::Unavailable { cause: None }),
        NOW,
    );
    assert!(step.is_empty());
    assert_eq!(core.running(WorkKind::Download), 0);
    assert_eq!(core.job(job.id).unwrap().status, JobStatus::DownloadQueued);
    // Cancelled while loading: the late record starts nothing.
    assert!(started(&core.dispatch(NOW)) == [(job.id, WorkKind::Download)]);
    core.cancel(job.id, NOW).unwrap();
    assert!(
        core.loaded(job.id, WorkKind::Download, Ok(Some(job.clone())), NOW)
            .is_empty()
    );
    // A record the store no longer holds: the job is dropped.
    let other = stored(JobStatus::DownloadQueued);
    core.resume(vec![other.clone()], NOW);
    core.dispatch(NOW);
    core.loaded(other.id, WorkKind::Download, Ok(None), NOW);
    assert!(core.job(other.id).is_none());
}

/// Runs one download of a waiting job to its end, as the shell does: wake, dispatch (the
/// record loaded from `record`), finish with `outcome`. Returns the finishing step.
fn retry_once(core: &mut ManagerCore, record: &Job, outcome: Outcome) -> Step {
    let at = record.wake_at_ms.unwrap();
    let woken = core.wake_due(at);
    assert_eq!(only_put(&woken).0.status, JobStatus::DownloadQueued);
    let step = core.dispatch(at);
    assert_eq!(started(&step), [(record.id, WorkKind::Download)]);
    let loaded = Job {
        status: JobStatus::DownloadQueued,
        wake_at_ms: None,
        ..record.clone()
    };
    core.loaded(record.id, WorkKind::Download, Ok(Some(loaded)), at);
    core.finish(record.id, WorkKind::Download, outcome, at)
}

fn nothing_found() -> Outcome {
    Outcome::NothingFound {
        reason: "no fr subtitle found (searched fake)".to_owned(),
        retry_after: None,
    }
}

// See: issue 7, "Store growth of waiting jobs": each retry appended four events, the first
// after 60 s, and nothing found counted towards `max_attempts`.
#[test]
fn nothing_found_follows_the_adaptive_schedule_and_leaves_one_event_per_retry() {
    let mut core = ManagerCore::new(settings()); // max_attempts 3
    let id = running_download(&mut core, "Rare");
    let (mut record, kinds) = only_put(&core.finish(id, WorkKind::Download, nothing_found(), NOW));
    assert_eq!(kinds, [kind::WAITING, kind::RETRY_SCHEDULED]);
    let hours = |ms: i64| ms as f64 / 3_600_000.0;
    let mut waits = vec![hours(record.wake_at_ms.unwrap() - NOW)];
    for n in 2..=40u32 {
        let at = record.wake_at_ms.unwrap();
        let step = retry_once(&mut core, &record, nothing_found());
        // The previous retry events go in the same commit, before the new one.
        assert!(
            matches!(&step.changes[0], Change::DropJobEvents { id: i, kinds } if *i == id && *kinds == RETRY_EVENT_KINDS),
            "{:?}",
            step.changes
        );
        let (job, kinds) = only_put(&step);
        assert_eq!(kinds, [kind::WAITING], "one event per retry");
        let payload = &events_of(&step)[0].payload;
        assert_eq!(payload["attempt"], json!(n));
        assert!(payload["at"].is_string());
        assert_eq!(
            job.status,
            JobStatus::Waiting,
            "retry {n}: not failed by max_attempts"
        );
        assert_eq!((job.nothing_found, job.failures, job.attempts), (n, 0, n));
        waits.push(hours(job.wake_at_ms.unwrap() - at));
        record = job;
    }
    let within = |wait: f64, hours: f64| (hours * 0.9..=hours * 1.1).contains(&wait);
    for (i, expected) in [1.0, 3.0, 6.0, 12.0, 24.0, 24.0].iter().enumerate() {
        assert!(
            within(waits[i], *expected),
            "wait {i}: {} h, {waits:?}",
            waits[i]
        );
    }
    // Three weeks after its creation, a job is searched weekly.
    assert!(within(*waits.last().unwrap(), 168.0), "{waits:?}");
    let age_at_first_weekly = waits.iter().position(|w| *w > 100.0).unwrap();
    let age: f64 = waits[..age_at_first_weekly].iter().sum();
    assert!(
        (21.0 * 24.0..23.0 * 24.0).contains(&age),
        "weekly from {age} h"
    );

    // A transient error in between keeps the retry backoff and counts as a failure.
    let step = retry_once(&mut core, &record, failed(true));
    let (job, kinds) = only_put(&step);
    assert_eq!(kinds, [kind::WAITING, kind::RETRY_SCHEDULED]);
    assert_eq!((job.failures, job.nothing_found), (1, 40));
    let (low, high) = retry_bounds(core.settings(), 1);
    let wake = job.wake_at_ms.unwrap() - job.updated_at_ms;
    assert!((millis(low)..=millis(high)).contains(&wake), "{wake}");
}

#[test]
fn the_jitter_spreads_jobs_of_one_sync_over_a_fifth_of_the_wait() {
    let schedule = NothingFoundSchedule::default();
    let delays: Vec<Duration> = (0..1000)
        .map(|_| schedule.delay(JobId::new(), 1, Duration::ZERO))
        .collect();
    let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    assert!(*min >= Duration::from_secs(3240) && *max <= Duration::from_secs(3960));
    assert!(*max - *min > Duration::from_secs(600), "{min:?}..{max:?}");
}

// See: issue 7, "A job whose video was deleted … waits and retries forever".
#[test]
fn a_video_missing_through_a_day_of_checks_fails_the_job_as_removed() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Deleted");
    let missing = || Outcome::VideoMissing {
        path: video("Deleted"),
    };
    let (mut record, kinds) = only_put(&core.finish(id, WorkKind::Download, missing(), NOW));
    assert_eq!(kinds, [kind::WAITING]);
    assert_eq!(record.video_missing_since_ms, Some(NOW));
    let mut checks = vec![record.wake_at_ms.unwrap() - NOW];
    loop {
        let step = retry_once(&mut core, &record, missing());
        let (job, kinds) = only_put(&step);
        if job.status == JobStatus::Failed {
            assert_eq!(kinds, [kind::JOB_FAILED]);
            assert_eq!(job.error.as_deref(), Some(VIDEO_REMOVED));
            assert_eq!(events_of(&step)[0].payload["error"], json!("video removed"));
            assert!(core.job(id).is_none());
            break;
        }
        assert_eq!(job.failures, 0, "a missing video is not a failed attempt");
        checks.push(job.wake_at_ms.unwrap() - NOW);
        record = job;
    }
    // Looked again 10 min, 1 h, 6 h and 24 h after it went missing.
    assert_eq!(checks, [600_000, 3_600_000, 6 * 3_600_000, 24 * 3_600_000]);
}

#[test]
fn a_video_that_is_back_lets_the_job_carry_on_and_resets_the_checks() {
    let mut core = ManagerCore::new(settings());
    let id = running_download(&mut core, "Unmounted");
    let missing = || Outcome::VideoMissing {
        path: video("Unmounted"),
    };
    let (record, _) = only_put(&core.finish(id, WorkKind::Download, missing(), NOW));
    let (record, _) = only_put(&retry_once(&mut core, &record, missing()));
    // The share is back: the search finds nothing yet, the job waits on the schedule.
    let (record, _) = only_put(&retry_once(&mut core, &record, nothing_found()));
    assert_eq!(record.status, JobStatus::Waiting);
    assert_eq!(record.video_missing_since_ms, None);
    // Missing again much later: a new day of checks, not an immediate failure.
    let (record, _) = only_put(&retry_once(&mut core, &record, missing()));
    assert_eq!(record.status, JobStatus::Waiting);
    assert_eq!(record.video_missing_since_ms, Some(record.updated_at_ms));
    let step = retry_once(
        &mut core,
        &record,
        written("/media/movies/Unmounted.fr.srt"),
    );
    assert_eq!(only_put(&step).0.status, JobStatus::Done);
}

/// The start takes over the heads the store's check decoded, borrowed from the records: they
/// must hash to the key a new request for the same video and language has, or the request
/// would not find its unfinished job.
#[test]
fn a_head_decoded_from_a_stored_record_has_the_key_of_a_new_request() {
    let hasher = KeyHasher::default();
    for name in [
        "Plain.mkv",
        "With \"quotes\" and \\ back.mkv",
        "Émile – été.mkv",
    ] {
        let mut job = stored(JobStatus::Waiting);
        job.path = video(name);
        job.language = lang("pt-BR");
        let json = serde_json::to_vec(&job).unwrap();
        let head: crate::job::JobHeadRef<'_> = serde_json::from_slice(&json).unwrap();
        let compact = hasher.unfinished_stored(&head);
        assert_eq!(compact.id, job.id);
        assert_eq!(compact.status, JobStatus::Waiting);
        assert_eq!(compact.key, hasher.hash(&job.path, &job.language), "{name}");
        assert_eq!(compact.key, hasher.unfinished(JobHead::from(&job)).key);
    }
}

/// What the store holds of each job in the outage simulation: the record and its events'
/// kinds, kept by applying every change as the writer does.
#[derive(Default)]
struct StoreModel {
    jobs: HashMap<JobId, (Job, Vec<String>)>,
    /// Job records written (puts and moves).
    writes: usize,
}

impl StoreModel {
    fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::PutJob { job, events } => {
                    self.writes += 1;
                    let entry = self
                        .jobs
                        .entry(job.id)
                        .or_insert_with(|| (job.clone(), Vec::new()));
                    entry.0 = job.clone();
                    entry.1.extend(events.iter().map(|e| e.kind.clone()));
                }
                Change::MoveJob {
                    id,
                    status,
                    at_ms,
                    events,
                } => {
                    self.writes += 1;
                    let entry = self.jobs.get_mut(id).unwrap();
                    entry.0.status = *status;
                    entry.0.updated_at_ms = *at_ms;
                    entry.0.wake_at_ms = None;
                    entry.1.extend(events.iter().map(|e| e.kind.clone()));
                }
                Change::DropJobEvents { id, kinds } => {
                    if let Some(entry) = self.jobs.get_mut(id) {
                        entry.1.retain(|k| !kinds.contains(&k.as_str()));
                    }
                }
                _ => {}
            }
        }
    }
}

/// A provider that is down (every call a 503) until `back_at`, then answers "nothing": it
/// answers a started download the way the downloader does (a provider cooling down is not
/// called; the third failure in a row cools it down, longer each time).
struct DownProvider {
    back_at: i64,
    calls: usize,
    calls_per_job: HashMap<JobId, u32>,
}

impl DownProvider {
    fn answer(&mut self, id: JobId, registry: &ProviderRegistry, now: i64) -> WorkReport {
        let state = registry.get("down").unwrap_or_else(|| ProviderState {
            provider: "down".to_owned(),
            ..ProviderState::default()
        });
        if let Some(until) = state.cooling_until(now) {
            return Outcome::NothingFound {
                reason: "every subtitle provider is cooling down".to_owned(),
                retry_after: Some(Duration::from_millis((until - now) as u64)),
            }
            .into();
        }
        self.calls += 1;
        *self.calls_per_job.entry(id).or_default() += 1;
        if now >= self.back_at {
            let mut state = state;
            state.consecutive_failures = 0;
            return WorkReport {
                outcome: nothing_found(),
                provider_updates: vec![state],
                events: Vec::new(),
            };
        }
        let mut state = state;
        state.consecutive_failures += 1;
        let outcome = if state.consecutive_failures < crate::downloader::UNAVAILABLE_AFTER {
            failed(true)
        } else {
            let wait = crate::downloader::unavailable_cooldown(state.consecutive_failures);
            state.cooldown_until_ms = Some(now + millis(wait));
            state.cooldown_kind = Some(crate::store::CooldownKind::Unavailable);
            Outcome::NothingFound {
                reason: "every subtitle provider is cooling down".to_owned(),
                retry_after: Some(wait),
            }
        };
        WorkReport {
            outcome,
            provider_updates: vec![state],
            events: Vec::new(),
        }
    }
}

/// Commits each step in the model, then performs its actions (persist first), until
/// nothing is left.
fn settle_model(
    core: &mut ManagerCore,
    store: &mut StoreModel,
    provider: &mut DownProvider,
    step: Step,
    now: i64,
) {
    let mut steps = vec![step];
    while let Some(step) = steps.pop() {
        store.apply(&step.changes);
        for action in step.actions {
            match action {
                Action::Dispatch => steps.push(core.dispatch(now)),
                Action::Load(id, kind) => {
                    let record = store.jobs.get(&id).map(|(job, _)| job.clone());
                    steps.push(core.loaded(id, kind, Ok(record), now));
                }
                Action::Start(job, kind) => {
                    let report = provider.answer(job.id, &core.provider_registry(), now);
                    steps.push(core.finish(job.id, kind, report, now));
                }
                Action::Stop(_) => {}
            }
        }
    }
}

// See: engine brief, "Provider outage": with providers unavailable, waiting jobs woke every
// 5 minutes, appended 4 uncompacted events per cycle, counted attempts beyond
// `max_attempts` and were all released at the same instant.
#[test]
fn a_provider_outage_leaves_one_event_per_wait_and_releases_jobs_spread_after_it() {
    const JOBS: usize = 200;
    let mut core = ManagerCore::new(ManagerSettings {
        wakes_per_tick: 10,
        ..settings() // max_attempts 3, two downloads at once
    });
    let mut store = StoreModel::default();
    let outage = 12 * 3_600_000;
    let mut provider = DownProvider {
        back_at: NOW + outage,
        calls: 0,
        calls_per_job: HashMap::new(),
    };
    let mut ids = Vec::new();
    for n in 0..JOBS {
        let accepted = core
            .request(
                &new_request(&format!("Outage {n}"), &["fr"], Priority::Low),
                NOW,
            )
            .unwrap();
        store.apply(&accepted.changes);
        ids.extend(accepted.new_ids.iter().copied());
        let queued = core.queue_new(&accepted.new_ids, NOW);
        settle_model(&mut core, &mut store, &mut provider, queued, NOW);
    }
    assert_eq!(core.status_counts().get(&JobStatus::Waiting), Some(&JOBS));
    let writes_at_start = store.writes;
    // Every job waits for the cooldown the third call started, none before its end, and
    // their wake-ups are spread rather than all at one instant.
    let cooldown_end = core
        .provider_registry()
        .get("down")
        .unwrap()
        .cooldown_until_ms
        .unwrap();
    let wakes: Vec<i64> = ids
        .iter()
        .filter_map(|id| core.job(*id).and_then(|e| e.wake_at_ms))
        .collect();
    let cooling_waits = wakes.iter().filter(|at| **at >= cooldown_end).count();
    assert!(cooling_waits >= JOBS - 2, "{cooling_waits} of {JOBS}");
    let spread = wakes.iter().max().unwrap()
        - wakes
            .iter()
            .filter(|at| **at >= cooldown_end)
            .min()
            .unwrap();
    assert!(spread >= 20_000, "wake-ups spread over {spread} ms only");

    // Twelve hours of outage, checked every second as the actor does.
    let mut now = NOW;
    let mut most_released = 0;
    while now < NOW + outage + 2 * 3_600_000 {
        now += 1_000;
        let woken = core.wake_due(now);
        let released = put_jobs(&woken.changes).len();
        most_released = most_released.max(released);
        settle_model(&mut core, &mut store, &mut provider, woken, now);
        if now == NOW + outage - 1_000 {
            // During the outage the provider was asked about once per cooldown, which
            // grows to an hour: not once per job every 5 minutes.
            println!(
                "{JOBS} jobs, 12 h outage: {} provider calls, {} job writes, {} events left",
                provider.calls,
                store.writes - writes_at_start,
                store.jobs.values().map(|(_, k)| k.len()).sum::<usize>()
            );
            assert!(provider.calls <= 40, "{} calls", provider.calls);
            // A retry that found every provider cooling down again cost a job one record
            // write and left it one event: its request and its newest wait.
            let writes = store.writes - writes_at_start;
            assert!(writes <= 40 * JOBS, "{writes} job writes during the outage");
            for (id, (job, kinds)) in &store.jobs {
                assert_eq!(job.status, JobStatus::Waiting);
                if job.provider_waits >= 2 {
                    assert_eq!(
                        kinds,
                        &[
                            kind::SUBTITLE_REQUESTED.to_owned(),
                            kind::WAITING.to_owned()
                        ],
                        "{id}"
                    );
                }
                // Waiting for a cooldown is no failure, and a start that asked no
                // provider is no attempt.
                assert!(job.failures < 3, "{id}: {} failures", job.failures);
                let asked = provider.calls_per_job.get(id).copied().unwrap_or(0);
                assert_eq!(job.attempts, asked, "{id}");
            }
        }
    }
    assert!(
        most_released <= 10,
        "{most_released} jobs released in one check"
    );
    // Once the provider is back, every job was searched again and found nothing: the
    // "nothing found" schedule takes over.
    for (id, (job, kinds)) in &store.jobs {
        assert_eq!(job.status, JobStatus::Waiting, "{id}");
        assert!(job.nothing_found >= 1 && job.provider_waits == 0, "{id}");
        assert!(job.updated_at_ms >= NOW + outage, "{id}");
        assert_eq!(
            kinds,
            &[
                kind::SUBTITLE_REQUESTED.to_owned(),
                kind::WAITING.to_owned()
            ],
            "{id}"
        );
    }
}

// See: engine brief, "a webhook detection for a job already queued at `low` priority
// (library sync) does not raise it to `critical`".
#[test]
fn a_webhook_for_a_job_a_library_sync_queued_raises_it_to_critical_ahead_of_the_others() {
    let mut core = ManagerCore::new(ManagerSettings {
        max_downloads: 1,
        ..settings()
    });
    let mut sync = |name: &str| {
        let mut request = new_request(name, &["fr"], Priority::Low);
        request.source = EventSource::LibrarySync;
        submit(&mut core, &request)[0]
    };
    let (first, second, third) = (sync("A"), sync("B"), sync("C"));
    let mut webhook = new_request("C", &["fr"], Priority::Critical);
    webhook.source = EventSource::Webhook;
    let seen = core.request(&webhook, NOW).unwrap();
    assert!(seen.new_ids.is_empty());
    assert!(
        seen.changes.iter().any(|c| matches!(
            c,
            Change::SetJobPriority { id, priority: Priority::Critical } if *id == third
        )),
        "{:?}",
        seen.changes
    );
    let detected = seen
        .changes
        .iter()
        .find_map(|c| match c {
            Change::AppendEvents(events) => events.iter().find(|e| e.kind == kind::DETECTED),
            _ => None,
        })
        .unwrap();
    assert_eq!(detected.payload["priority"], json!("critical"));
    assert_eq!(core.job(third).unwrap().priority, Priority::Critical);
    // It runs first; the two the sync queued before it follow in their order.
    assert_eq!(started(&core.dispatch(NOW)), [(third, WorkKind::Download)]);
    core.finish(
        third,
        WorkKind::Download,
        written("/media/movies/C.fr.srt"),
        NOW,
    );
    assert_eq!(started(&core.dispatch(NOW)), [(first, WorkKind::Download)]);
    // A lower priority never lowers one, and a repeat changes nothing.
    let mut again = new_request("B", &["fr"], Priority::Low);
    again.source = EventSource::LibrarySync;
    let repeat = core.request(&again, NOW).unwrap();
    assert!(
        !repeat
            .changes
            .iter()
            .any(|c| matches!(c, Change::SetJobPriority { .. }))
    );
    assert_eq!(core.job(second).unwrap().priority, Priority::Low);
}

#[test]
fn a_quota_wait_the_service_did_not_time_is_spread_by_up_to_an_hour() {
    let mut core = ManagerCore::new(settings());
    let hour = 3_600_000;
    let quota = i64::try_from(crate::translator::DEFAULT_QUOTA_WAIT.as_millis()).unwrap();
    assert_eq!(quota, 6 * hour);
    let mut wakes = Vec::new();
    for n in 0..64 {
        let id = running_download(&mut core, &format!("Quota{n}"));
        // The translator parks through the same outcome as a download (`Stop::Park`).
        let step = core.finish(
            id,
            WorkKind::Download,
            Outcome::NothingFound {
                reason: "DeepL quota exhausted; waiting for it to reset".to_owned(),
                retry_after: Some(crate::translator::DEFAULT_QUOTA_WAIT),
            },
            NOW,
        );
        let (job, _) = only_put(&step);
        assert_eq!(job.status, JobStatus::Waiting);
        wakes.push(job.wake_at_ms.unwrap() - NOW);
    }
    // Never before the 6 h, never after 7 h, and spread over that hour.
    assert!(
        wakes.iter().all(|w| (quota..=quota + hour).contains(w)),
        "{wakes:?}"
    );
    let (first, last) = (wakes.iter().min().unwrap(), wakes.iter().max().unwrap());
    assert!(last - first > hour / 2, "{wakes:?}");
}
