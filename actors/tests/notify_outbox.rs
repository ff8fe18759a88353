//! The notifier against a real store: what a crash leaves behind is picked up. A store
//! holding a written subtitle's commit (the `done` job and its outbox entry) but no notify
//! job is exactly the state after a `kill -9` between the subtitle and the notification:
//! the next start creates the notify jobs and acknowledges the entry in one commit, sends
//! once per target, and a later start sends nothing again. A job the JobManager resumes
//! is never a notify job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{Sandbox, eventually, job_record};
use cuewarden_actors::clients::{LocalBoxFuture, Notifier, NotifyError};
use cuewarden_actors::event::kind;
use cuewarden_actors::notify::{self, Notification, NotifyEvent, NotifyLimits, NotifyTarget};
use cuewarden_actors::store::{Change, OutboxEntry};
use cuewarden_actors::time::now_ms;
use cuewarden_actors::{Event, EventSource, JobStatus};
use serde_json::json;

/// Records what it is asked to send; fails the first `failures` sends.
struct Recorder {
    name: &'static str,
    sent: RefCell<Vec<Notification>>,
    failures: RefCell<u32>,
}

impl Recorder {
    fn new(name: &'static str, failures: u32) -> Rc<Self> {
        Rc::new(Self {
            name,
            sent: RefCell::new(Vec::new()),
            failures: RefCell::new(failures),
        })
    }
}

impl Notifier for Recorder {
    fn name(&self) -> &str {
        self.name
    }

    fn send(&self, notification: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        self.sent.borrow_mut().push(notification.clone());
        let fail = {
            let mut left = self.failures.borrow_mut();
            let fail = *left > 0;
            *left = left.saturating_sub(1);
            fail
        };
        Box::pin(async move {
            if fail {
                Err(NotifyError::retry("HTTP 503"))
            } else {
                Ok(())
            }
        })
    }
}

fn target(recorder: &Rc<Recorder>, on: &[NotifyEvent]) -> NotifyTarget {
    NotifyTarget {
        notifier: recorder.clone(),
        on: on.to_vec(),
        digest: None,
    }
}

fn limits() -> NotifyLimits {
    NotifyLimits {
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(200),
        ..NotifyLimits::default()
    }
}

#[test]
fn an_outbox_entry_left_by_a_crash_is_notified_once_per_target_and_acknowledged() {
    let sandbox = Sandbox::new();
    let subtitle = sandbox.sidecar("fr");
    let store = sandbox.open_store();
    // The subtitle's commit, as the JobManager makes it: the job done, its events and the
    // outbox entry together.
    let now = now_ms();
    let mut job = job_record(&sandbox.video, "fr", JobStatus::Done, now);
    job.output_path = Some(subtitle.clone());
    let ready = Event::for_job(
        job.id,
        kind::READY,
        EventSource::Downloader,
        now,
        json!({"producer": "opensubtitles", "detail": {"score": 91}}),
    );
    let written = Event::for_job(
        job.id,
        kind::WRITTEN,
        EventSource::Downloader,
        now,
        json!({"path": subtitle}),
    );
    store
        .submit_blocking(vec![
            Change::PutJob {
                job: job.clone(),
                events: vec![ready, written],
            },
            Change::EnqueueOutbox(OutboxEntry::JobDone {
                job_id: job.id,
                path: subtitle.clone(),
            }),
        ])
        .unwrap();

    let flaky = Recorder::new("flaky", 2);
    let steady = Recorder::new("steady", 0);
    let deaf = Recorder::new("deaf", 0);
    let runtime = actix_rt::System::new();
    runtime.block_on(async {
        let handle = notify::start(
            store.clone(),
            vec![
                target(&flaky, &[NotifyEvent::Written]),
                target(&steady, &[NotifyEvent::Written, NotifyEvent::Failed]),
                target(&deaf, &[NotifyEvent::Failed]),
            ],
            limits(),
            None,
        );
        eventually("both notify jobs are done", || {
            let unfinished = store.unfinished_jobs().unwrap();
            let done = flaky.sent.borrow().len() == 3 && steady.sent.borrow().len() == 1;
            (done && unfinished.is_empty()).then_some(())
        })
        .await;
        handle.stop().await;
    });
    assert!(
        store.outbox(10).unwrap().is_empty(),
        "the entry is acknowledged"
    );
    let sent = &steady.sent.borrow()[0];
    assert_eq!(sent.event, NotifyEvent::Written);
    assert_eq!(sent.items.len(), 1);
    assert_eq!(sent.items[0].job_id, job.id);
    assert_eq!(sent.items[0].subtitle, Some(subtitle.clone()));
    assert_eq!(sent.items[0].provider.as_deref(), Some("opensubtitles"));
    assert_eq!(sent.items[0].score, Some(91));
    assert_eq!(sent.title(), "Subtitle written");
    assert!(
        deaf.sent.borrow().is_empty(),
        "it listens for failures only"
    );

    // The notify jobs: one per listening target, done, with their events.
    let page = store.list_jobs(None, 100, None).unwrap();
    let notify_jobs: Vec<_> = page.jobs.iter().filter(|j| j.notify.is_some()).collect();
    assert_eq!(notify_jobs.len(), 2);
    for job in &notify_jobs {
        assert_eq!(job.status, JobStatus::Done);
        assert_eq!(job.origin, EventSource::Notifier);
        let kinds: Vec<String> = store
            .job_events(job.id)
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| e.kind)
            .collect();
        let target = &job.notify.as_ref().unwrap().target;
        if target == "flaky" {
            assert_eq!(job.attempts, 3);
            assert_eq!(
                kinds,
                [
                    kind::NOTIFY_QUEUED,
                    kind::NOTIFY_FAILED,
                    kind::NOTIFY_FAILED,
                    kind::NOTIFY_SENT
                ]
            );
        } else {
            assert_eq!(job.attempts, 1);
            assert_eq!(kinds, [kind::NOTIFY_QUEUED, kind::NOTIFY_SENT]);
        }
    }
    drop(store);

    // A later start finds nothing to send.
    let store = sandbox.open_store();
    let again = Recorder::new("steady", 0);
    let runtime = actix_rt::System::new();
    runtime.block_on(async {
        let handle = notify::start(
            store.clone(),
            vec![target(&again, &[NotifyEvent::Written])],
            limits(),
            None,
        );
        actix_rt::time::sleep(notify::POLL_INTERVAL * 2).await;
        handle.stop().await;
    });
    assert!(again.sent.borrow().is_empty());
}

#[test]
fn a_failure_for_good_ends_the_job_with_the_reason_and_a_failed_entry_is_told() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let now = now_ms();
    let job = job_record(&sandbox.video, "fr", JobStatus::Failed, now);
    store
        .submit_blocking(vec![
            Change::PutJob {
                job: job.clone(),
                events: vec![],
            },
            Change::EnqueueOutbox(OutboxEntry::JobFailed {
                job_id: job.id,
                error: "no subtitle above min_score".to_owned(),
            }),
        ])
        .unwrap();
    let dead = Recorder::new("dead", u32::MAX);
    let runtime = actix_rt::System::new();
    runtime.block_on(async {
        let handle = notify::start(
            store.clone(),
            vec![target(&dead, &[NotifyEvent::Failed])],
            NotifyLimits {
                max_attempts: 3,
                ..limits()
            },
            None,
        );
        eventually("the notify job gives up", || {
            let page = store.list_jobs(Some(JobStatus::Failed), 10, None).unwrap();
            page.jobs.into_iter().find(|j| j.notify.is_some())
        })
        .await;
        handle.stop().await;
    });
    assert_eq!(dead.sent.borrow().len(), 3, "max_attempts sends, no more");
    let sent = &dead.sent.borrow()[0];
    assert_eq!(sent.event, NotifyEvent::Failed);
    assert_eq!(sent.title(), "Subtitle job failed");
    assert!(
        sent.body()
            .ends_with(": fr failed: no subtitle above min_score"),
        "{}",
        sent.body()
    );
    let failed = store.list_jobs(Some(JobStatus::Failed), 10, None).unwrap();
    let notify_job = failed.jobs.iter().find(|j| j.notify.is_some()).unwrap();
    assert_eq!(notify_job.attempts, 3);
    assert_eq!(
        notify_job.error.as_deref(),
        Some("HTTP 503 (gave up after 3 attempts)")
    );
    let last = store.job_events(notify_job.id).unwrap().remove(0);
    assert_eq!(last.kind, kind::NOTIFY_FAILED);
    assert_eq!(last.payload["will_retry"], false);
}

/// Never answers.
struct Hung {
    calls: RefCell<u32>,
}

impl Notifier for Hung {
    fn name(&self) -> &str {
        "hung"
    }

    fn send(&self, _: &Notification) -> LocalBoxFuture<Result<(), NotifyError>> {
        *self.calls.borrow_mut() += 1;
        Box::pin(std::future::pending())
    }
}

#[test]
fn a_target_that_hangs_holds_one_slot_and_the_others_keep_sending() {
    let sandbox = Sandbox::new();
    let store = sandbox.open_store();
    let now = now_ms();
    for n in 0..5 {
        let video = sandbox.library.join(format!("Movie {n} (2019).mkv"));
        let job = job_record(&video, "fr", JobStatus::Done, now);
        store
            .submit_blocking(vec![
                Change::PutJob {
                    job: job.clone(),
                    events: vec![],
                },
                Change::EnqueueOutbox(OutboxEntry::JobDone {
                    job_id: job.id,
                    path: video.with_extension("fr.srt"),
                }),
            ])
            .unwrap();
    }
    let hung = Rc::new(Hung {
        calls: RefCell::new(0),
    });
    let live = Recorder::new("live", 0);
    let runtime = actix_rt::System::new();
    runtime.block_on(async {
        let handle = notify::start(
            store.clone(),
            vec![
                NotifyTarget {
                    notifier: hung.clone(),
                    on: vec![NotifyEvent::Written],
                    digest: None,
                },
                target(&live, &[NotifyEvent::Written]),
            ],
            NotifyLimits {
                concurrency: 2,
                timeout: Duration::from_secs(3600),
                ..limits()
            },
            None,
        );
        eventually("the live target sends all five", || {
            (live.sent.borrow().len() == 5).then_some(())
        })
        .await;
        handle.stop().await;
    });
    assert_eq!(*hung.calls.borrow(), 1, "one send at a time per target");
}
