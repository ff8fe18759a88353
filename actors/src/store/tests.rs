//! Store tests against a real redb file in a temporary directory: encoding, indexes, the
//! event sequence, group commit, durability across reopen, and refusal of unknown versions.

use std::collections::HashSet;
use std::sync::Barrier;

use serde_json::json;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::codec::read_u64;
use super::writer::block_on;
use super::*;
use crate::event::kind;
use crate::job::{ALL_STATUSES, EventSource, JobStatus, Language, Priority};

fn job(name: &str, language: &str, status: JobStatus) -> Job {
    let path = PathBuf::from(format!("/media/movies/{name}.mkv"));
    let mut job = Job::pending(
        path,
        Language::parse(language).unwrap(),
        EventSource::Api,
        1_000,
    );
    job.status = status;
    job.priority = Priority::Normal;
    job
}

fn event(id: JobId, kind: &str) -> Event {
    Event::for_job(id, kind, EventSource::Manager, 2_000, json!({"k": kind}))
}

fn put(job: &Job, kinds: &[&str]) -> Change {
    Change::PutJob {
        job: job.clone(),
        events: kinds.iter().map(|k| event(job.id, k)).collect(),
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path()).unwrap()
}

fn ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

fn count_of(store: &Store, status: JobStatus) -> u64 {
    store
        .job_counts()
        .unwrap()
        .into_iter()
        .find(|(s, _)| *s == status)
        .map(|(_, n)| n)
        .unwrap()
}

/// Outbox entry number `n`.
fn entry(n: u64) -> OutboxEntry {
    OutboxEntry::JobDone {
        job_id: JobId(uuid::Uuid::from_u128(u128::from(n))),
        path: PathBuf::from(format!("/media/movies/M{n}.fr.srt")),
    }
}

fn media(path: &str, languages: &[&str], jellyfin_item_id: Option<&str>) -> MediaRecord {
    MediaRecord {
        path: PathBuf::from(path),
        jellyfin_item_id: jellyfin_item_id.map(str::to_owned),
        languages: languages
            .iter()
            .map(|l| Language::parse(l).unwrap())
            .collect(),
        last_requested_at_ms: 1_000,
        last_source: EventSource::Api,
    }
}

fn quota(provider: &str, remaining: u32) -> ProviderState {
    ProviderState {
        provider: provider.to_owned(),
        quota_remaining: Some(remaining),
        quota_resets_at_ms: Some(86_400_000),
        ..ProviderState::default()
    }
}

/// Writes raw bytes as the record of `id` in the jobs table, bypassing the writer.
fn write_raw_job(store: &Store, id: JobId, bytes: &[u8]) {
    let txn = store.database().begin_write().unwrap();
    {
        let mut jobs = txn.open_table(JOBS).unwrap();
        jobs.insert(id.0.as_u128(), bytes).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn creates_the_file_with_every_table_and_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.path(), dir.path().join(STORE_FILE_NAME));
    assert!(store.path().is_file());
    let version = store.meta(META_SCHEMA_VERSION).unwrap().unwrap();
    assert_eq!(read_u64(&version), u64::from(SCHEMA_VERSION));
    assert_eq!(store.job_count().unwrap(), 0);
    assert_eq!(store.last_event_seq().unwrap(), 0);
    assert!(store.unfinished_jobs().unwrap().is_empty());
    assert!(store.provider_states().unwrap().is_empty());
    assert!(store.outbox(10).unwrap().is_empty());
    assert_eq!(store.job_counts().unwrap().len(), ALL_STATUSES.len());
    store.close();
}

#[test]
fn refuses_a_file_written_by_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .submit_blocking(vec![Change::PutMeta {
            key: META_SCHEMA_VERSION.to_owned(),
            value: (SCHEMA_VERSION + 1).to_le_bytes().to_vec(),
        }])
        .unwrap();
    store.close();
    drop(store);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

#[test]
fn a_job_reads_back_as_written_and_the_status_index_follows_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut a = job("A", "fr", JobStatus::Pending);
    let b = job("B", "fr", JobStatus::Pending);
    store
        .submit_blocking(vec![
            put(&a, &[kind::SUBTITLE_REQUESTED]),
            put(&b, &[kind::SUBTITLE_REQUESTED]),
        ])
        .unwrap();
    assert_eq!(store.job(a.id).unwrap(), Some(a.clone()));
    assert_eq!(count_of(&store, JobStatus::Pending), 2);

    for status in [
        JobStatus::DownloadQueued,
        JobStatus::DownloadInProgress,
        JobStatus::Done,
    ] {
        a.status = status;
        a.updated_at_ms += 1;
        store.submit_blocking(vec![put(&a, &[])]).unwrap();
        assert_eq!(store.job(a.id).unwrap().unwrap().status, status);
        let listed = store.list_jobs(Some(status), 10, None).unwrap();
        assert_eq!(ids(&listed.jobs), vec![a.id], "index for {status}");
        // The old index entries are gone: every job is counted exactly once.
        let counts = store.job_counts().unwrap();
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 2);
        assert_eq!(count_of(&store, status), 1);
    }
    assert_eq!(count_of(&store, JobStatus::Pending), 1);
    assert_eq!(count_of(&store, JobStatus::DownloadQueued), 0);
    assert_eq!(count_of(&store, JobStatus::DownloadInProgress), 0);
    assert_eq!(
        ids(&store
            .list_jobs(Some(JobStatus::Pending), 10, None)
            .unwrap()
            .jobs),
        vec![b.id]
    );
    assert!(store.job(JobId::new()).unwrap().is_none());
}

#[test]
fn list_jobs_pages_newest_first_with_a_cursor_with_and_without_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let jobs: Vec<Job> = (0..5)
        .map(|i| {
            let status = if i % 2 == 0 {
                JobStatus::Done
            } else {
                JobStatus::Failed
            };
            job(&format!("M{i}"), "en", status)
        })
        .collect();
    store
        .submit_blocking(jobs.iter().map(|j| put(j, &[])).collect())
        .unwrap();

    let first = store.list_jobs(None, 2, None).unwrap();
    assert_eq!(ids(&first.jobs), vec![jobs[4].id, jobs[3].id]);
    assert_eq!(first.next_cursor, Some(jobs[3].id));
    let second = store.list_jobs(None, 2, first.next_cursor).unwrap();
    assert_eq!(ids(&second.jobs), vec![jobs[2].id, jobs[1].id]);
    let third = store.list_jobs(None, 2, second.next_cursor).unwrap();
    assert_eq!(ids(&third.jobs), vec![jobs[0].id]);
    assert_eq!(third.next_cursor, None);

    let done = store.list_jobs(Some(JobStatus::Done), 2, None).unwrap();
    assert_eq!(ids(&done.jobs), vec![jobs[4].id, jobs[2].id]);
    let rest = store
        .list_jobs(Some(JobStatus::Done), 2, done.next_cursor)
        .unwrap();
    assert_eq!(ids(&rest.jobs), vec![jobs[0].id]);
    assert_eq!(rest.next_cursor, None);
    let failed = store.list_jobs(Some(JobStatus::Failed), 10, None).unwrap();
    assert_eq!(ids(&failed.jobs), vec![jobs[3].id, jobs[1].id]);
    assert_eq!(failed.next_cursor, None);
}

#[test]
fn events_get_a_global_gap_free_sequence_and_a_per_job_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = job("A", "fr", JobStatus::Pending);
    let b = job("B", "fr", JobStatus::Pending);
    let first = store
        .submit_blocking(vec![
            put(&a, &[kind::SUBTITLE_REQUESTED, kind::DOWNLOAD_REQUESTED]),
            put(&b, &[kind::SUBTITLE_REQUESTED]),
        ])
        .unwrap();
    let seqs: Vec<u64> = first.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let second = store
        .submit_blocking(vec![
            Change::AppendEvents(vec![event(a.id, kind::NOTIFY_SENT)]),
            Change::AppendEvents(vec![Event {
                job_id: None,
                ..event(a.id, kind::NOTIFY_FAILED)
            }]),
        ])
        .unwrap();
    let seqs: Vec<u64> = second.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![4, 5]);
    assert_eq!(store.last_event_seq().unwrap(), 5);

    // Per job: newest first, only its own events.
    let a_events = store.job_events(a.id).unwrap();
    let kinds: Vec<&str> = a_events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            kind::NOTIFY_SENT,
            kind::DOWNLOAD_REQUESTED,
            kind::SUBTITLE_REQUESTED
        ]
    );
    assert_eq!(
        a_events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [4, 2, 1]
    );
    assert!(a_events.iter().all(|e| e.job_id == Some(a.id)));
    assert_eq!(store.job_events(b.id).unwrap().len(), 1);
    assert!(store.job_events(JobId::new()).unwrap().is_empty());

    // The global log holds everything, including the event of no job.
    let all = store.events_after(0, 100).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(all[4].job_id, None);
    assert_eq!(all[0].payload, json!({"k": kind::SUBTITLE_REQUESTED}));
}

#[test]
fn events_after_is_an_exclusive_cursor_bounded_by_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = job("A", "fr", JobStatus::Pending);
    store
        .submit_blocking(vec![Change::AppendEvents(
            (0..10).map(|_| event(a.id, kind::WAITING)).collect(),
        )])
        .unwrap();
    let seqs = |after, limit| -> Vec<u64> {
        store
            .events_after(after, limit)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(seqs(0, 3), [1, 2, 3]);
    assert_eq!(seqs(3, 3), [4, 5, 6]);
    assert_eq!(seqs(8, 100), [9, 10]);
    assert_eq!(seqs(10, 100), Vec::<u64>::new());
    assert_eq!(seqs(u64::MAX, 100), Vec::<u64>::new());
    assert_eq!(seqs(0, 1), [1]);
    assert_eq!(
        seqs(0, 0),
        Vec::<u64>::new(),
        "a limit of 0 returns nothing"
    );
}

#[test]
fn concurrent_submitters_share_commits_and_leave_no_sequence_gaps() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Hold the write lock so every submission queues up behind the first commit: the
    // writer must then take the rest in batches rather than one commit each.
    let blocker = store.database().begin_write().unwrap();
    let queued = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let queued = queued.clone();
            std::thread::spawn(move || {
                let id = JobId::new();
                let pending: Vec<_> = (0..PER_THREAD)
                    .map(|i| {
                        let mut e = event(id, kind::WAITING);
                        e.payload = json!({"thread": t, "i": i});
                        store.submit(vec![Change::AppendEvents(vec![e])])
                    })
                    .collect();
                queued.wait();
                let seqs: Vec<u64> = pending
                    .into_iter()
                    .map(|f| block_on(f).unwrap().events[0].seq)
                    .collect();
                (id, seqs)
            })
        })
        .collect();
    queued.wait();
    drop(blocker);
    let results: Vec<(JobId, Vec<u64>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let total = (THREADS * PER_THREAD) as u64;
    let mut all: Vec<u64> = results.iter().flat_map(|(_, s)| s.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, (1..=total).collect::<Vec<_>>(), "gap or duplicate");
    for (id, seqs) in &results {
        // One submitter's changes commit in call order.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        let logged: Vec<u64> = store
            .job_events(*id)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(logged.into_iter().rev().collect::<Vec<_>>(), *seqs);
    }
    let stats = store.stats();
    let commits = stats.commits.load(Ordering::Relaxed);
    assert_eq!(stats.changes.load(Ordering::Relaxed), total);
    assert!(
        stats.max_batch.load(Ordering::Relaxed) > 1,
        "no group commit happened"
    );
    assert!(commits < total, "{commits} commits for {total} changes");
    let bucketed: u64 = stats
        .batch_buckets
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .sum();
    assert_eq!(bucketed, commits);

    // All of it is durable.
    store.close();
    drop(store);
    let reopened = open(&dir);
    assert_eq!(reopened.last_event_seq().unwrap(), total);
    assert_eq!(
        reopened.events_after(0, usize::MAX).unwrap().len() as u64,
        total
    );
}

#[test]
fn everything_is_still_there_after_close_and_reopen_and_sequences_continue() {
    let dir = tempfile::tempdir().unwrap();
    let a = job("A", "fr", JobStatus::Waiting);
    let done = job("B", "en", JobStatus::Done);
    {
        let store = open(&dir);
        store
            .submit_blocking(vec![
                put(&a, &[kind::SUBTITLE_REQUESTED, kind::WAITING]),
                put(&done, &[kind::WRITTEN]),
                Change::PutMedia(media("/media/movies/A.mkv", &["fr"], None)),
                Change::PutProviderState(ProviderState::cooling_down(
                    "opensubtitles",
                    42,
                    "rate limited",
                )),
                Change::EnqueueOutbox(entry(1)),
                Change::EnqueueOutbox(entry(2)),
                Change::PutMeta {
                    key: "api_key".to_owned(),
                    value: b"secret".to_vec(),
                },
            ])
            .unwrap();
        store.submit_blocking(vec![Change::AckOutbox(2)]).unwrap();
        store.close();
    }
    let store = open(&dir);
    assert_eq!(store.job(a.id).unwrap(), Some(a.clone()));
    assert_eq!(store.job(done.id).unwrap(), Some(done.clone()));
    assert_eq!(store.job_count().unwrap(), 2);
    assert_eq!(ids(&store.unfinished_jobs().unwrap()), vec![a.id]);
    assert_eq!(store.job_events(a.id).unwrap().len(), 2);
    assert_eq!(store.last_event_seq().unwrap(), 3);
    assert_eq!(
        store.media("/media/movies/A.mkv").unwrap(),
        Some(media("/media/movies/A.mkv", &["fr"], None))
    );
    assert_eq!(
        store.provider_states().unwrap(),
        vec![ProviderState::cooling_down(
            "opensubtitles",
            42,
            "rate limited"
        )]
    );
    assert_eq!(store.outbox(10).unwrap(), vec![(1, entry(1))]);
    assert_eq!(
        store.meta("api_key").unwrap().as_deref(),
        Some(&b"secret"[..])
    );

    // Sequences pick up where they stopped: no event or outbox number is reused.
    let committed = store
        .submit_blocking(vec![
            Change::AppendEvents(vec![event(a.id, kind::RETRY_SCHEDULED)]),
            Change::EnqueueOutbox(entry(3)),
        ])
        .unwrap();
    assert_eq!(committed.events[0].seq, 4);
    assert_eq!(
        store.outbox(10).unwrap(),
        vec![(1, entry(1)), (3, entry(3))]
    );
}

#[test]
fn reopens_after_every_handle_is_dropped_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let a = job("A", "fr", JobStatus::Pending);
    for round in 0..20 {
        let store =
            Store::open(dir.path()).unwrap_or_else(|err| panic!("reopen {round} failed: {err}"));
        let clone = store.clone();
        let mut a = a.clone();
        a.attempts = round;
        clone
            .submit_blocking(vec![put(&a, &[kind::WAITING])])
            .unwrap();
        drop(store);
        drop(clone);
    }
    let store = open(&dir);
    assert_eq!(store.job(a.id).unwrap().unwrap().attempts, 19);
    assert_eq!(store.last_event_seq().unwrap(), 20);
}

#[test]
fn unfinished_jobs_lists_only_non_terminal_jobs_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Created in life-cycle order, so ids (UUIDv7) sort the same way.
    let jobs: Vec<Job> = ALL_STATUSES
        .iter()
        .enumerate()
        .map(|(i, status)| job(&format!("M{i}"), "fr", *status))
        .collect();
    // Submitted in reverse to show the order comes from ids, not from writes.
    store
        .submit_blocking(jobs.iter().rev().map(|j| put(j, &[])).collect())
        .unwrap();
    let unfinished = store.unfinished_jobs().unwrap();
    let expected: Vec<JobId> = jobs
        .iter()
        .filter(|j| !j.status.is_terminal())
        .map(|j| j.id)
        .collect();
    assert_eq!(expected.len(), 6);
    assert_eq!(ids(&unfinished), expected);
    assert!(unfinished.iter().all(|j| !j.status.is_terminal()));
}

#[test]
fn committed_events_are_broadcast_with_their_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut subscriber = store.subscribe();
    let a = job("A", "fr", JobStatus::Pending);
    let committed = store
        .submit_blocking(vec![put(
            &a,
            &[kind::SUBTITLE_REQUESTED, kind::DOWNLOAD_REQUESTED],
        )])
        .unwrap();
    // Events are published before the commit is acknowledged.
    for expected in &committed.events {
        let got = subscriber.try_recv().unwrap();
        assert_eq!(*got, **expected);
        assert_ne!(got.seq, 0);
    }
    assert!(subscriber.try_recv().is_err(), "more events than committed");
    // Changes without events publish nothing.
    store
        .submit_blocking(vec![Change::EnqueueOutbox(entry(0))])
        .unwrap();
    assert!(subscriber.try_recv().is_err());
}

#[test]
fn a_record_with_an_unknown_version_is_a_decode_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let future = job("Future", "fr", JobStatus::Pending);
    let mut bytes = vec![RECORD_VERSION + 1];
    bytes.extend(serde_json::to_vec(&future).unwrap());
    write_raw_job(&store, future.id, &bytes);

    let err = store.job(future.id).unwrap_err();
    assert!(
        matches!(&err, StoreError::Decode { table: "jobs", source: DecodeError::UnknownVersion(v) }
            if *v == RECORD_VERSION + 1),
        "{err:?}"
    );
    assert_eq!(
        error_chain(&err),
        format!(
            "cannot decode a record of table jobs: unknown record version {}",
            RECORD_VERSION + 1
        )
    );
    // A listing skips it (logged at ERROR): one bad record must not break every page, nor
    // the resume at start. See: issue 7, "A damaged store".
    let readable = job("Readable", "fr", JobStatus::Pending);
    store.submit_blocking(vec![put(&readable, &[])]).unwrap();
    let page = store.list_jobs(None, 10, None).unwrap();
    assert_eq!(ids(&page.jobs), vec![readable.id]);
    assert_eq!(ids(&store.unfinished_jobs().unwrap()), vec![readable.id]);

    let empty = JobId::new();
    write_raw_job(&store, empty, &[]);
    assert!(matches!(
        store.job(empty),
        Err(StoreError::Decode {
            source: DecodeError::Empty,
            ..
        })
    ));
    let garbled = JobId::new();
    write_raw_job(&store, garbled, &[RECORD_VERSION, b'{']);
    assert!(matches!(
        store.job(garbled),
        Err(StoreError::Decode {
            source: DecodeError::Json(_),
            ..
        })
    ));
}

#[test]
fn a_failed_commit_is_reported_and_consumes_no_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = job("A", "fr", JobStatus::Pending);
    store
        .submit_blocking(vec![put(&a, &[kind::SUBTITLE_REQUESTED])])
        .unwrap();
    // Overwriting a job whose stored record cannot be decoded fails the whole commit.
    let broken = job("Broken", "fr", JobStatus::Pending);
    write_raw_job(&store, broken.id, &[RECORD_VERSION + 1]);
    let err = store
        .submit_blocking(vec![
            Change::AppendEvents(vec![event(a.id, kind::WAITING)]),
            put(&broken, &[kind::WAITING]),
            Change::EnqueueOutbox(entry(666)),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Write(cause) if matches!(**cause, StoreError::Decode { .. })),
        "{err:?}"
    );
    assert!(
        error_chain(&err).contains("unknown record version"),
        "{err}"
    );
    assert_eq!(store.last_event_seq().unwrap(), 1);
    assert!(store.outbox(10).unwrap().is_empty());

    // The writer keeps going, reusing the numbers the failed commit did not keep.
    let committed = store
        .submit_blocking(vec![
            Change::AppendEvents(vec![event(a.id, kind::WAITING)]),
            Change::EnqueueOutbox(entry(7)),
        ])
        .unwrap();
    assert_eq!(committed.events[0].seq, 2);
    assert_eq!(store.outbox(10).unwrap(), vec![(1, entry(7))]);
}

#[test]
fn media_records_and_provider_state_are_replaced_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let path = "/media/movies/Movie (2019).mkv";
    store
        .submit_blocking(vec![
            Change::PutMedia(media(path, &["fr"], None)),
            Change::PutProviderState(ProviderState::cooling_down("subdl", 1, "rate limited")),
            Change::PutProviderState(quota("opensubtitles", 5)),
        ])
        .unwrap();
    store
        .submit_blocking(vec![
            Change::PutMedia(media(path, &["fr", "en"], Some("abc"))),
            Change::PutProviderState(ProviderState::cooling_down("subdl", 2, "rate limited")),
        ])
        .unwrap();
    assert_eq!(
        store.media(path).unwrap(),
        Some(media(path, &["fr", "en"], Some("abc")))
    );
    assert_eq!(store.media("/media/movies/Other.mkv").unwrap(), None);
    assert_eq!(
        store.provider_states().unwrap(),
        vec![
            quota("opensubtitles", 5),
            ProviderState::cooling_down("subdl", 2, "rate limited"),
        ]
    );
}

#[test]
fn outbox_entries_are_numbered_in_order_and_removed_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .submit_blocking((1..=4).map(|n| Change::EnqueueOutbox(entry(n))).collect())
        .unwrap();
    let entries = store.outbox(10).unwrap();
    assert_eq!(
        entries,
        (1..=4u64).map(|n| (n, entry(n))).collect::<Vec<_>>()
    );
    assert_eq!(store.outbox(2).unwrap().len(), 2);
    assert!(
        store.outbox(0).unwrap().is_empty(),
        "a limit of 0 returns nothing"
    );
    store
        .submit_blocking(vec![
            Change::AckOutbox(1),
            Change::AckOutbox(3),
            Change::AckOutbox(99),
        ])
        .unwrap();
    assert_eq!(
        store.outbox(10).unwrap(),
        vec![(2, entry(2)), (4, entry(4))]
    );
}

#[test]
fn delete_job_removes_the_job_and_its_index_but_keeps_the_global_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = job("A", "fr", JobStatus::Done);
    let b = job("B", "fr", JobStatus::Done);
    store
        .submit_blocking(vec![
            put(&a, &[kind::SUBTITLE_REQUESTED, kind::WRITTEN]),
            put(&b, &[kind::WRITTEN]),
        ])
        .unwrap();
    store
        .submit_blocking(vec![Change::DeleteJob(a.id)])
        .unwrap();
    assert_eq!(store.job(a.id).unwrap(), None);
    assert!(store.job_events(a.id).unwrap().is_empty());
    assert_eq!(count_of(&store, JobStatus::Done), 1);
    assert_eq!(
        ids(&store
            .list_jobs(Some(JobStatus::Done), 10, None)
            .unwrap()
            .jobs),
        vec![b.id]
    );
    assert_eq!(store.job_events(b.id).unwrap().len(), 1);
    assert_eq!(store.events_after(0, 10).unwrap().len(), 3);
    // Deleting what is not there is harmless.
    store
        .submit_blocking(vec![Change::DeleteJob(a.id)])
        .unwrap();
}

#[test]
fn close_commits_what_was_queued_and_later_writes_fail_with_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let jobs: Vec<Job> = (0..5)
        .map(|i| job(&format!("M{i}"), "fr", JobStatus::Pending))
        .collect();
    let pending: Vec<_> = jobs
        .iter()
        .map(|j| store.submit(vec![put(j, &[])]))
        .collect();
    store.close();
    for future in pending {
        block_on(future).unwrap();
    }
    let err = store.submit_blocking(vec![put(&jobs[0], &[])]).unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
    assert_eq!(err.to_string(), "the store is closed");
    store.close(); // A second close is a no-op.
    drop(store);

    let reopened = open(&dir);
    let stored: HashSet<JobId> = ids(&reopened.unfinished_jobs().unwrap())
        .into_iter()
        .collect();
    assert_eq!(stored, ids(&jobs).into_iter().collect());
}

#[test]
fn provider_state_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let state = ProviderState {
        provider: "opensubtitles".to_owned(),
        cooldown_until_ms: Some(1_700_000_000_000),
        reason: Some("quota exhausted".to_owned()),
        quota_remaining: Some(0),
        quota_resets_at_ms: Some(1_700_000_000_000),
        cooldown_kind: Some(crate::store::CooldownKind::Quota),
        consecutive_failures: 2,
        refused_credentials: Some("c0ffee".to_owned()),
        session: Some(crate::store::ProviderSession {
            token: "token".to_owned(),
            base_url: Some("https://vip-api.opensubtitles.com".to_owned()),
            expires_at_ms: 1_700_000_000_000,
            credentials: Some("c0ffee".to_owned()),
        }),
    };
    {
        let store = open(&dir);
        store
            .submit_blocking(vec![Change::PutProviderState(state.clone())])
            .unwrap();
        store.close();
    }
    assert_eq!(open(&dir).provider_states().unwrap(), vec![state]);
}

#[test]
fn provider_state_written_by_an_older_build_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // What builds before typed provider state wrote: version byte, then this JSON.
    let mut old = vec![RECORD_VERSION];
    old.extend_from_slice(br#"{"cooldown_until_ms":1700000000000,"reason":"rate limited"}"#);
    let txn = store.database().begin_write().unwrap();
    {
        let mut table = txn.open_table(PROVIDER_STATE).unwrap();
        table.insert("subdl", old.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    assert_eq!(
        store.provider_states().unwrap(),
        vec![ProviderState::cooling_down(
            "subdl",
            1_700_000_000_000,
            "rate limited"
        )]
    );
}

#[test]
fn media_and_outbox_records_keep_the_json_earlier_builds_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let path = "/media/movies/Old.mkv";
    let id = JobId::new();
    // What the manager wrote with `json!` before these records were typed.
    let old_media = json!({
        "path": path,
        "jellyfin_item_id": null,
        "languages": ["fr"],
        "last_requested_at_ms": 1_000,
        "last_source": "api",
    });
    let old_entry = json!({"kind": "job.done", "job_id": id, "path": "/media/movies/Old.fr.srt"});
    let record = |value: &serde_json::Value| {
        let mut bytes = vec![RECORD_VERSION];
        bytes.extend(serde_json::to_vec(value).unwrap());
        bytes
    };
    let txn = store.database().begin_write().unwrap();
    {
        let mut media_table = txn.open_table(MEDIA).unwrap();
        media_table
            .insert(path, record(&old_media).as_slice())
            .unwrap();
        let mut outbox = txn.open_table(OUTBOX).unwrap();
        outbox.insert(1, record(&old_entry).as_slice()).unwrap();
    }
    txn.commit().unwrap();
    let read = store.media(path).unwrap().unwrap();
    assert_eq!(read, media(path, &["fr"], None));
    assert_eq!(serde_json::to_value(&read).unwrap(), old_media);
    let entries = store.outbox(10).unwrap();
    assert_eq!(
        entries,
        vec![(
            1,
            OutboxEntry::JobDone {
                job_id: id,
                path: PathBuf::from("/media/movies/Old.fr.srt"),
            }
        )]
    );
    assert_eq!(serde_json::to_value(&entries[0].1).unwrap(), old_entry);
}

#[test]
fn an_id_is_found_by_a_unique_prefix_or_suffix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut a = job("a", "fr", JobStatus::Pending);
    let mut b = job("b", "fr", JobStatus::Pending);
    a.id = JobId(uuid::Uuid::from_u128(
        0x0193_0000_0000_7000_8000_0000_1234_abcd,
    ));
    b.id = JobId(uuid::Uuid::from_u128(
        0x0193_0000_0000_7000_8000_0000_9876_5432,
    ));
    store
        .submit_blocking(vec![put(&a, &[]), put(&b, &[])])
        .unwrap();
    let find = |fragment: &str| store.jobs_matching(fragment, 2).unwrap();
    assert_eq!(find("1234abcd"), [a.id], "by the random tail");
    assert_eq!(find("0000-1234-ABCD"), [a.id], "dashes and case ignored");
    assert_eq!(find("98765432"), [b.id]);
    assert_eq!(
        find("01930000"),
        [a.id, b.id],
        "a shared timestamp prefix is ambiguous"
    );
    assert_eq!(find(&a.id.to_string()), [a.id], "the whole id");
    assert!(find("ffff").is_empty());
    assert!(find("xyz").is_empty());
    assert!(find("").is_empty());
}

#[test]
fn move_job_changes_the_stored_record_and_its_index_without_the_caller_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut job = job("Moved", "fr", JobStatus::Waiting);
    job.wake_at_ms = Some(5_000);
    job.error = Some("no fr subtitle found".to_owned());
    store
        .submit_blocking(vec![Change::PutJob {
            job: job.clone(),
            events: vec![],
        }])
        .unwrap();
    let committed = store
        .submit_blocking(vec![
            Change::MoveJob {
                id: job.id,
                status: JobStatus::DownloadQueued,
                at_ms: 7_000,
                events: vec![Event::for_job(
                    job.id,
                    kind::DOWNLOAD_REQUESTED,
                    EventSource::Scheduler,
                    7_000,
                    serde_json::json!({}),
                )],
            },
            // Unknown jobs are left alone; the rest of the batch commits.
            Change::MoveJob {
                id: JobId::new(),
                status: JobStatus::Cancelled,
                at_ms: 7_000,
                events: vec![],
            },
        ])
        .unwrap();
    assert_eq!(committed.events.len(), 1);
    let moved = store.job(job.id).unwrap().unwrap();
    assert_eq!(
        (moved.status, moved.updated_at_ms, moved.wake_at_ms),
        (JobStatus::DownloadQueued, 7_000, None)
    );
    assert_eq!(moved.error, job.error, "the rest of the record is kept");
    let heads = store.unfinished_heads().unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].status, JobStatus::DownloadQueued);
    assert_eq!(heads[0].path, job.path);
}

#[test]
fn a_setting_is_kept_across_reopen_and_in_snapshots_and_replaced_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(
        store.state_as::<String>("jellyfin.device_id").unwrap(),
        None
    );
    store
        .submit_blocking(vec![
            Change::PutState {
                key: "jellyfin.device_id".to_owned(),
                value: json!("cuewarden-1"),
            },
            Change::PutState {
                key: "jellyfin.session".to_owned(),
                value: json!({"token": "a"}),
            },
        ])
        .unwrap();
    store
        .submit_blocking(vec![Change::PutState {
            key: "jellyfin.session".to_owned(),
            value: json!({"token": "b"}),
        }])
        .unwrap();
    store.close();
    drop(store);
    let store = open(&dir);
    assert_eq!(
        store.state_as::<String>("jellyfin.device_id").unwrap(),
        Some("cuewarden-1".to_owned())
    );
    let session: serde_json::Value = store.state_as("jellyfin.session").unwrap().unwrap();
    assert_eq!(session, json!({"token": "b"}));
    assert!(
        store.state_as::<u32>("jellyfin.session").is_err(),
        "a value of another shape is a decode error, not a default"
    );
    let copy = tempfile::tempdir().unwrap();
    snapshot::copy_store(
        &*store.database(),
        &copy.path().join(STORE_FILE_NAME),
        &AtomicBool::new(false),
    )
    .unwrap();
    store.close();
    drop(store);
    let restored = Store::open(copy.path()).unwrap();
    assert_eq!(
        restored.state_as::<String>("jellyfin.device_id").unwrap(),
        Some("cuewarden-1".to_owned())
    );
    restored.close();
}

#[test]
fn a_state_record_is_kept_across_reopen_and_removed_by_null() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.state("library_sync").unwrap(), None);
    let record = json!({"last_finished_ms": 1234, "videos": 3});
    store
        .submit_blocking(vec![Change::PutState {
            key: "library_sync".to_owned(),
            value: record.clone(),
        }])
        .unwrap();
    assert_eq!(store.state("library_sync").unwrap(), Some(record.clone()));
    store.close();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.state("library_sync").unwrap(), Some(record));
    store
        .submit_blocking(vec![Change::PutState {
            key: "library_sync".to_owned(),
            value: serde_json::Value::Null,
        }])
        .unwrap();
    assert_eq!(store.state("library_sync").unwrap(), None);
}

// See: engine brief, a webhook for a job a library sync queued at `low`.
#[test]
fn a_raised_priority_is_written_to_the_stored_job_and_an_unknown_job_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut job = Job::pending(
        PathBuf::from("/media/movies/Raised.mkv"),
        crate::job::Language::parse("fr").unwrap(),
        crate::job::EventSource::LibrarySync,
        1_000,
    );
    job.status = crate::job::JobStatus::DownloadQueued;
    assert_eq!(job.priority, crate::job::Priority::Low);
    store
        .submit_blocking(vec![Change::PutJob {
            job: job.clone(),
            events: Vec::new(),
        }])
        .unwrap();
    store
        .submit_blocking(vec![
            Change::SetJobPriority {
                id: job.id,
                priority: crate::job::Priority::Critical,
            },
            Change::SetJobPriority {
                id: crate::job::JobId::new(),
                priority: crate::job::Priority::Critical,
            },
        ])
        .unwrap();
    let stored = store.job(job.id).unwrap().unwrap();
    assert_eq!(stored.priority, crate::job::Priority::Critical);
    assert_eq!(stored.status, crate::job::JobStatus::DownloadQueued);
    store.close();
}

#[test]
fn a_translations_kept_source_goes_with_the_end_of_its_job_whatever_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let kept = json!({"from": "en", "described": {}, "srt": "1\n"});
    let keep = |job: &Job| Change::PutState {
        key: translation_source_key(job.id),
        value: kept.clone(),
    };
    let held = |job: &Job| {
        store
            .state(&translation_source_key(job.id))
            .unwrap()
            .is_some()
    };

    // Ends through a full record (done, failed for good, skipped), through a move without
    // the record (cancelled), or by its deletion.
    let mut ended = Vec::new();
    for status in [JobStatus::Done, JobStatus::Failed, JobStatus::Skipped] {
        let mut job = job(&format!("{status}"), "fr", JobStatus::TranslateInProgress);
        store
            .submit_blocking(vec![put(&job, &[]), keep(&job)])
            .unwrap();
        assert!(held(&job));
        job.status = status;
        store.submit_blocking(vec![put(&job, &[])]).unwrap();
        ended.push(job);
    }
    let cancelled = job("cancelled", "fr", JobStatus::Waiting);
    store
        .submit_blocking(vec![put(&cancelled, &[]), keep(&cancelled)])
        .unwrap();
    store
        .submit_blocking(vec![Change::MoveJob {
            id: cancelled.id,
            status: JobStatus::Cancelled,
            at_ms: 3_000,
            events: vec![],
        }])
        .unwrap();
    ended.push(cancelled);
    let deleted = job("deleted", "fr", JobStatus::Waiting);
    store
        .submit_blocking(vec![put(&deleted, &[]), keep(&deleted)])
        .unwrap();
    store
        .submit_blocking(vec![Change::DeleteJob(deleted.id)])
        .unwrap();
    ended.push(deleted);
    for job in &ended {
        assert!(!held(job), "{} kept its source", job.path.display());
    }

    // A job that goes on keeps it; one that has ended, or is unknown, is not given one.
    let waiting = job("waiting", "fr", JobStatus::TranslateInProgress);
    store
        .submit_blocking(vec![put(&waiting, &[]), keep(&waiting)])
        .unwrap();
    let mut parked = waiting.clone();
    parked.status = JobStatus::Waiting;
    store.submit_blocking(vec![put(&parked, &[])]).unwrap();
    assert!(held(&waiting));
    store.submit_blocking(vec![keep(&ended[0])]).unwrap();
    assert!(!held(&ended[0]));
    let unknown = job("unknown", "fr", JobStatus::Waiting);
    store.submit_blocking(vec![keep(&unknown)]).unwrap();
    assert!(!held(&unknown));
    // Other state is not touched by a job's end.
    store
        .submit_blocking(vec![Change::PutState {
            key: "library_sync".to_owned(),
            value: json!({"at": 1}),
        }])
        .unwrap();
    assert!(store.state("library_sync").unwrap().is_some());
}

#[test]
fn the_cleanup_removes_the_kept_sources_earlier_builds_left_after_their_job_ended() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let done = job("done", "fr", JobStatus::Done);
    let waiting = job("waiting", "fr", JobStatus::Waiting);
    let gone = job("gone", "fr", JobStatus::Done);
    store
        .submit_blocking(vec![put(&done, &[]), put(&waiting, &[])])
        .unwrap();
    // As an earlier build left them: written after (or regardless of) the job's end.
    let txn = store.database().begin_write().unwrap();
    {
        let mut state = txn.open_table(STATE).unwrap();
        for job in [&done, &waiting, &gone] {
            let bytes = codec::encode(&json!({"srt": "1\n"}));
            state
                .insert(translation_source_key(job.id).as_str(), bytes.as_slice())
                .unwrap();
        }
        state
            .insert("upgrade", codec::encode(&json!({})).as_slice())
            .unwrap();
    }
    txn.commit().unwrap();

    let mut policy = CleanupPolicy::new(
        std::time::Duration::from_secs(365 * 86_400),
        std::time::Duration::from_secs(365 * 86_400),
    );
    policy.batch = 1;
    let report = store.cleanup(&policy, 10_000).unwrap();
    assert_eq!(report.translation_sources_deleted, 2, "{report:?}");
    assert_eq!(report.jobs_deleted, 0);
    let held = |job: &Job| {
        store
            .state(&translation_source_key(job.id))
            .unwrap()
            .is_some()
    };
    assert!(!held(&done) && !held(&gone));
    assert!(held(&waiting), "a waiting job keeps its source");
    assert!(store.state("upgrade").unwrap().is_some());
    let again = store.cleanup(&policy, 10_000).unwrap();
    assert_eq!(again.translation_sources_deleted, 0);
}

#[test]
fn blacklist_entries_of_earlier_builds_read_and_a_rejected_translation_has_a_key_per_language() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let video = PathBuf::from("/media/movies/Old.mkv");
    let id = JobId::new();
    // An entry as builds before `machine_translation` wrote it.
    let old = json!({
        "video": video, "provider": "opensubtitles", "candidate_id": "62",
        "content_hash": "sha256:01", "language": "fr", "job_id": id, "rejected_at_ms": 5,
    });
    let mut bytes = vec![RECORD_VERSION];
    bytes.extend(serde_json::to_vec(&old).unwrap());
    let txn = store.database().begin_write().unwrap();
    {
        let mut table = txn.open_table(BLACKLIST).unwrap();
        table
            .insert(
                format!("{}opensubtitles\u{0}62", BlacklistEntry::prefix(&video)).as_str(),
                bytes.as_slice(),
            )
            .unwrap();
    }
    txn.commit().unwrap();
    let read = store.blacklist_for(&video).unwrap();
    assert_eq!(read.len(), 1);
    assert!(!read[0].machine_translation);

    // Two rejected translations by one service (two languages) are two entries.
    let translation = |language: &str, hash: &str| BlacklistEntry {
        video: video.clone(),
        provider: "deepl".to_owned(),
        candidate_id: String::new(),
        content_hash: hash.to_owned(),
        language: Language::parse(language).unwrap(),
        job_id: id,
        rejected_at_ms: 6,
        machine_translation: true,
    };
    store
        .submit_blocking(vec![
            Change::PutBlacklist(translation("fr", "sha256:02")),
            Change::PutBlacklist(translation("de", "sha256:03")),
        ])
        .unwrap();
    let list = crate::provenance::Blacklist::new(store.blacklist_for(&video).unwrap());
    assert_eq!(store.blacklist_for(&video).unwrap().len(), 3);
    assert!(list.refuses_translation(&Language::parse("fr").unwrap()));
    assert!(list.refuses_translation(&Language::parse("de").unwrap()));
    assert!(!list.refuses_translation(&Language::parse("es").unwrap()));
    assert!(list.has_content("sha256:02") && list.has_content("sha256:01"));
}
