//! Retention against a real redb file with a given `now`: exactly the expired history goes,
//! the rest stays, in batches; a store that is mostly free is compacted.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::super::{Change, Provenance, Store};
use super::{CleanupPolicy, TERMINAL_STATUSES};
use crate::event::Event;
use crate::job::{EventSource, Job, JobId, JobStatus, Language};

const DAY: i64 = 24 * 3600 * 1000;

/// A "now" well after every job id was made (ids carry the real creation time).
fn later() -> i64 {
    crate::time::now_ms() + 400 * DAY
}

fn job(n: usize, status: JobStatus, finished_ms: i64) -> Job {
    let mut job = Job::pending(
        PathBuf::from(format!("/media/movies/M{n}.mkv")),
        Language::parse("fr").unwrap(),
        EventSource::Api,
        finished_ms,
    );
    job.status = status;
    job.updated_at_ms = finished_ms;
    job
}

fn put(job: &Job, events: usize) -> Change {
    Change::PutJob {
        job: job.clone(),
        events: (0..events)
            .map(|i| {
                Event::for_job(
                    job.id,
                    "download.requested",
                    EventSource::Manager,
                    job.updated_at_ms,
                    json!({"i": i, "padding": "x".repeat(200)}),
                )
            })
            .collect(),
    }
}

/// What a subtitle written by `job` would leave in the store.
fn provenance(job: &Job) -> Provenance {
    Provenance {
        job_id: job.id,
        provider: "opensubtitles".to_owned(),
        candidate_id: "1".to_owned(),
        release: None,
        score: Some(90),
        breakdown: json!([]),
        language: job.language.clone(),
        forced: false,
        sdh: false,
        content_hash: "sha256:00".to_owned(),
        machine_translated: false,
        path: job.path.with_extension("fr.srt"),
        written_at_ms: job.updated_at_ms,
        chosen_by: "search".to_owned(),
        upgrade_checked_at_ms: None,
        previous_hashes: Vec::new(),
    }
}

fn policy(batch: usize) -> CleanupPolicy {
    CleanupPolicy {
        batch,
        ..CleanupPolicy::new(
            Duration::from_secs(30 * 86_400),
            Duration::from_secs(90 * 86_400),
        )
    }
}

#[test]
fn cleanup_removes_exactly_the_expired_terminal_jobs_and_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = later();
    // (status, age in days, expected to go)
    let cases = [
        (JobStatus::Done, 31, true),
        (JobStatus::Done, 29, false),
        (JobStatus::Skipped, 45, true),
        (JobStatus::Skipped, 1, false),
        (JobStatus::Cancelled, 30, true),
        (JobStatus::Failed, 31, false),
        (JobStatus::Failed, 89, false),
        (JobStatus::Failed, 91, true),
        (JobStatus::Waiting, 300, false),
        (JobStatus::Pending, 300, false),
        (JobStatus::DownloadQueued, 300, false),
    ];
    let mut jobs = Vec::new();
    // Several of each, so the small batches below take more than one page.
    for round in 0..5 {
        for (i, (status, age, gone)) in cases.iter().enumerate() {
            let job = job(round * 100 + i, *status, now - age * DAY - 1);
            store
                .submit_blocking(vec![put(&job, 3), Change::PutProvenance(provenance(&job))])
                .unwrap();
            jobs.push((job, *gone));
        }
    }
    let unrelated = Event {
        seq: 0,
        job_id: None,
        kind: "sync.finished".to_owned(),
        at_ms: now - 300 * DAY,
        source: EventSource::LibrarySync,
        payload: json!({}),
    };
    store
        .submit_blocking(vec![Change::AppendEvents(vec![unrelated])])
        .unwrap();
    let events_before = store.events_after(0, 10_000).unwrap().len();

    let report = store.cleanup(&policy(3), now).unwrap();

    let expected_gone = jobs.iter().filter(|(_, gone)| *gone).count() as u64;
    assert_eq!(report.jobs_deleted, expected_gone);
    assert_eq!(report.events_deleted, expected_gone * 3);
    assert!(report.batches >= expected_gone / 3, "{report:?}");
    for (job, gone) in &jobs {
        let found = store.job(job.id).unwrap();
        let events = store.job_events(job.id).unwrap();
        if *gone {
            assert!(
                found.is_none(),
                "{:?} {} should be gone",
                job.status,
                job.updated_at_ms
            );
            assert!(events.is_empty());
            assert!(store.provenance(job.id).unwrap().is_none());
        } else {
            assert_eq!(found.unwrap().status, job.status);
            assert_eq!(events.len(), 3);
            assert!(store.provenance(job.id).unwrap().is_some());
        }
    }
    let events_after = store.events_after(0, 10_000).unwrap();
    assert_eq!(
        events_after.len() as u64,
        events_before as u64 - expected_gone * 3
    );
    assert!(events_after.iter().any(|e| e.kind == "sync.finished"));
    // The status index follows: counts match what is left.
    let left: u64 = store.job_counts().unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(left, jobs.len() as u64 - expected_gone);

    // A second cleanup at the same time finds nothing more.
    let again = store.cleanup(&policy(3), now).unwrap();
    assert_eq!((again.jobs_deleted, again.events_deleted), (0, 0));
}

#[test]
fn a_job_retried_after_it_was_listed_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = later();
    let mut old = job(1, JobStatus::Failed, now - 100 * DAY);
    store.submit_blocking(vec![put(&old, 1)]).unwrap();
    let page = store
        .expired_jobs(JobStatus::Failed, now - 90 * DAY, 0, 10, 10)
        .unwrap();
    assert_eq!(page.jobs, vec![old.id]);
    // Retried between the read and the delete.
    old.status = JobStatus::DownloadQueued;
    old.updated_at_ms = now;
    store.submit_blocking(vec![put(&old, 1)]).unwrap();
    let committed = store
        .submit_blocking(vec![Change::PurgeJob {
            id: old.id,
            finished_before_ms: now - 90 * DAY,
        }])
        .unwrap();
    assert_eq!(committed.purged_jobs, 0);
    assert_eq!(
        store.job(old.id).unwrap().unwrap().status,
        JobStatus::DownloadQueued
    );
    assert_eq!(store.job_events(old.id).unwrap().len(), 2);
}

#[test]
fn a_mostly_free_store_is_compacted_and_keeps_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = later();
    let mut kept: Vec<JobId> = Vec::new();
    for chunk in 0..20 {
        let changes = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                // One in ten is recent.
                let age = if n % 10 == 0 { DAY } else { 60 * DAY };
                let job = job(n, JobStatus::Done, now - age);
                if n % 10 == 0 {
                    kept.push(job.id);
                }
                put(&job, 2)
            })
            .collect();
        store.submit_blocking(changes).unwrap();
    }
    let before = store.file_bytes();
    // Readers going on meanwhile wait for the compaction; none of them fails.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.list_jobs(None, 50, None).unwrap();
                reads += 1;
            }
            reads
        })
    };
    let report = store.cleanup(&policy(256), now).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(report.jobs_deleted, 9_000);
    let compaction = report.compaction.unwrap();
    assert!(compaction.compacted, "{compaction:?}");
    assert_eq!(compaction.file_bytes_before, before);
    assert!(
        compaction.file_bytes_after * 2 < before,
        "{} → {}",
        before,
        compaction.file_bytes_after
    );
    assert_eq!(store.file_bytes(), compaction.file_bytes_after);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("compacting"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for id in &kept {
        assert_eq!(store.job_events(*id).unwrap().len(), 2);
    }
    // Writes go on after the compaction, and survive a reopen.
    let fresh = job(99_999, JobStatus::Done, now);
    store.submit_blocking(vec![put(&fresh, 1)]).unwrap();
    store.close();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.job(fresh.id).unwrap().is_some());
    let left: u64 = store.job_counts().unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(left, kept.len() as u64 + 1);

    // Nothing to free: no compaction.
    let report = store.cleanup(&policy(256), now).unwrap();
    assert!(!report.compaction.unwrap().compacted);
    assert!(TERMINAL_STATUSES.iter().all(|s| s.is_terminal()));
}

fn cached(store: &Store, texts: &[String]) {
    store
        .submit_blocking(vec![Change::PutTranslations {
            service: "deepl".to_owned(),
            from: "en".to_owned(),
            to: "fr".to_owned(),
            entries: texts
                .iter()
                .map(|t| (t.clone(), format!("fr {t}")))
                .collect(),
        }])
        .unwrap();
}

fn keys(texts: &[String]) -> Vec<String> {
    texts
        .iter()
        .map(|t| super::super::translation_key("deepl", "en", "fr", t))
        .collect()
}

fn still_cached(store: &Store, texts: &[String]) -> usize {
    store
        .cached_translations("deepl", "en", "fr", texts)
        .unwrap()
        .iter()
        .filter(|t| t.is_some())
        .count()
}

#[test]
fn cached_translations_unused_for_the_cache_days_go_in_short_batches_and_the_rest_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = later();
    let day = super::super::day_of(now);
    let texts = |name: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{name} line {i}")).collect()
    };
    let (old, recent, edge, undated) = (
        texts("old", 20),
        texts("recent", 7),
        texts("edge", 3),
        texts("undated", 5),
    );
    for (list, used_day) in [(&old, day - 181), (&recent, day - 10), (&edge, day - 180)] {
        cached(&store, list);
        store
            .submit_blocking(vec![Change::TouchTranslations {
                keys: keys(list),
                day: used_day,
            }])
            .unwrap();
    }
    // Cached by an earlier build: no day of use.
    cached(&store, &undated);
    let txn = store.database().begin_write().unwrap();
    {
        let mut used = txn
            .open_table(super::super::schema::TRANSLATIONS_USED)
            .unwrap();
        for key in keys(&undated) {
            used.remove(key.as_str()).unwrap();
        }
    }
    txn.commit().unwrap();

    let mut policy = CleanupPolicy::new(Duration::from_secs(30 * 86_400), Duration::MAX)
        .with_translations_kept(Some(Duration::from_secs(180 * 86_400)));
    policy.batch = 4;
    policy.compact_free_percent = 101;
    let report = store.cleanup(&policy, now).unwrap();
    assert_eq!(report.translations_deleted, 20, "{report:?}");
    assert_eq!(report.translations_examined, 35, "{report:?}");
    assert!(report.batches >= 20 / 4, "{report:?}");
    assert_eq!(still_cached(&store, &old), 0);
    assert_eq!(still_cached(&store, &recent), 7);
    assert_eq!(
        still_cached(&store, &edge),
        3,
        "used on the cutoff's day: kept"
    );
    assert_eq!(
        still_cached(&store, &undated),
        5,
        "dated today, not deleted"
    );

    // 180 days on, the undated ones (dated at the first cleanup) and the rest go.
    let report = store.cleanup(&policy, now + 181 * DAY).unwrap();
    assert_eq!(report.translations_deleted, 15, "{report:?}");
    assert_eq!(still_cached(&store, &undated), 0);

    // `cache_days = 0` keeps them forever.
    cached(&store, &old);
    let forever = policy.with_translations_kept(None);
    let report = store.cleanup(&forever, now + 10_000 * DAY).unwrap();
    assert_eq!(report.translations_deleted, 0);
    assert_eq!(still_cached(&store, &old), 20);
}

#[test]
fn a_translation_used_after_the_cleanup_read_it_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let texts: Vec<String> = vec!["Hello there.".to_owned()];
    cached(&store, &texts);
    let today = super::super::day_of(crate::time::now_ms());
    // The cleanup saw it unused (as if before today); the translator used it since.
    let committed = store
        .submit_blocking(vec![Change::PurgeTranslations {
            keys: keys(&texts),
            unused_before_day: today,
        }])
        .unwrap();
    assert_eq!(committed.purged_translations, 0);
    assert_eq!(still_cached(&store, &texts), 1);
}
