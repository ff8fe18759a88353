//! The scheduler against a real store: next-run times in a few zones (DST included), a run
//! missed while the daemon was down runs once, a running task is not started twice.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use cuewarden_actors::store::{Change, Store};
use cuewarden_actors::time::now_ms;
use tokio::sync::Notify;

use super::*;
use crate::config::{ScheduleSection, parse_cron, time_zone};

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn next(expression: &str, zone: &str, after: &str) -> String {
    let (zone, _) = time_zone(zone).unwrap();
    let cron = parse_cron(expression).unwrap();
    format_in(&zone, next_after(&cron, &zone, ms(after)).unwrap())
}

#[test]
fn next_run_times_in_several_zones() {
    let after = "2026-12-01T12:00:00Z"; // a Tuesday
    assert_eq!(
        next("30 4 * * *", "Europe/Berlin", after),
        "2026-12-02T04:30:00+01:00"
    );
    assert_eq!(
        next("0 */6 * * *", "America/New_York", after),
        "2026-12-01T12:00:00-05:00"
    );
    assert_eq!(
        next("0 9 * * 1", "Asia/Kolkata", after),
        "2026-12-07T09:00:00+05:30"
    );
    assert_eq!(next("@daily", "UTC", after), "2026-12-02T00:00:00+00:00");
    assert_eq!(
        next("*/15 * * * *", "UTC", "2026-12-01T12:07:59Z"),
        "2026-12-01T12:15:00+00:00"
    );
    // Summer time: the offset follows the date.
    assert_eq!(
        next("30 4 * * *", "Europe/Berlin", "2026-07-01T12:00:00Z"),
        "2026-07-02T04:30:00+02:00"
    );
    // 2026-10-25 02:30 happens twice in Berlin: it runs once, then the next day.
    let first = next("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z");
    assert_eq!(first, "2026-10-25T02:30:00+02:00");
    let (berlin, _) = time_zone("Europe/Berlin").unwrap();
    let cron = parse_cron("30 2 * * *").unwrap();
    let second = next_after(&cron, &berlin, ms("2026-10-25T00:30:00Z")).unwrap();
    assert_eq!(format_in(&berlin, second), "2026-10-26T02:30:00+01:00");
    // 2026-03-29 02:30 does not exist in Berlin (02:00 → 03:00): it runs once, at 03:00 CEST.
    let skipped = next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z");
    assert_eq!(skipped, "2026-03-29T03:00:00+02:00");
    let after_it = next_after(&cron, &berlin, ms("2026-03-29T01:30:00Z")).unwrap();
    assert_eq!(format_in(&berlin, after_it), "2026-03-30T02:30:00+02:00");
}

#[test]
fn expressions_with_seconds_or_out_of_range_fields_are_refused() {
    assert!(parse_cron("0 0 3 * * *").is_err());
    assert!(parse_cron("61 * * * *").is_err());
    assert!(parse_cron("* * *").is_err());
    assert!(time_zone("Mars/Olympus").is_err());
    assert!(time_zone("").is_ok());
}

fn settings(expression: &str) -> ScheduleSettings {
    let section = ScheduleSection {
        library_sync: String::new(),
        cleanup: expression.to_owned(),
        wanted_retry: String::new(),
        upgrade: String::new(),
        timezone: "UTC".to_owned(),
    };
    section.settings().0
}

/// A task that counts its runs and, if `gate` is given, waits for it.
fn counting(runs: Rc<Cell<u32>>, gate: Option<Rc<Notify>>) -> TaskRun {
    Rc::new(move || {
        let runs = runs.clone();
        let gate = gate.clone();
        Box::pin(async move {
            runs.set(runs.get() + 1);
            if let Some(gate) = gate {
                gate.notified().await;
            }
            Ok(Counts::from([("runs".to_owned(), u64::from(runs.get()))]))
        })
    })
}

async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not reached in 10 s");
}

fn cleanup_record(store: &Store) -> Option<TaskRecord> {
    store.state_as::<TaskRecord>("schedule.cleanup").unwrap()
}

#[test]
fn a_running_task_is_not_started_twice_and_every_run_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = store.clone();
    actix_rt::System::new().block_on(async move {
        let runs = Rc::new(Cell::new(0));
        let gate = Rc::new(Notify::new());
        // Never due by itself (29 February at midnight on a Monday is years away at most).
        let mut scheduler = Scheduler::new(&settings("0 0 29 2 1"), store.clone());
        scheduler.register("cleanup", counting(runs.clone(), Some(gate.clone())));
        let (handle, task) = scheduler.start();
        assert_eq!(handle.run_now("cleanup").await, RunAnswer::Started);
        assert_eq!(handle.run_now("cleanup").await, RunAnswer::AlreadyRunning);
        assert!(handle.task("cleanup").unwrap().running);
        assert_eq!(handle.run_now("upgrade").await, RunAnswer::NotAvailable);
        assert_eq!(handle.run_now("nonsense").await, RunAnswer::Unknown);
        gate.notify_one();
        until(|| !handle.task("cleanup").unwrap().running).await;
        assert_eq!(runs.get(), 1);
        let view = handle.task("cleanup").unwrap();
        let last = view.last_run.unwrap();
        assert_eq!(last.trigger, Trigger::Manual);
        assert_eq!(last.counts.get("runs"), Some(&1));
        assert!(last.finished_at.unwrap().ends_with("+00:00"));
        assert!(view.next_run.unwrap().ends_with("T00:00:00+00:00"));
        // Once finished, it can run again.
        assert_eq!(handle.run_now("cleanup").await, RunAnswer::Started);
        gate.notify_one();
        until(|| runs.get() == 2 && !handle.task("cleanup").unwrap().running).await;
        task.stop().await;
    });
    let record = cleanup_record(&kept).unwrap();
    assert_eq!(record.runs.len(), 2);
    assert!(
        record
            .runs
            .iter()
            .all(|r| r.finished_at_ms.is_some() && r.error.is_none())
    );
}

#[test]
fn a_run_missed_while_the_daemon_was_down_runs_once_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Known since three days, last run two days ago: the daily 04:30 came (at least) twice.
    let record = TaskRecord {
        since_ms: now_ms() - 3 * 86_400_000,
        runs: vec![RunRecord {
            started_at_ms: now_ms() - 2 * 86_400_000,
            finished_at_ms: Some(now_ms() - 2 * 86_400_000 + 10),
            trigger: Trigger::Schedule,
            counts: Counts::new(),
            error: None,
        }],
    };
    store
        .submit_blocking(vec![state_change("cleanup", &record)])
        .unwrap();
    let kept = store.clone();
    actix_rt::System::new().block_on(async move {
        let runs = Rc::new(Cell::new(0));
        for start in 0..2 {
            let mut scheduler = Scheduler::new(&settings("30 4 * * *"), store.clone());
            scheduler.register("cleanup", counting(runs.clone(), None));
            let (handle, task) = scheduler.start();
            if start == 0 {
                until(|| {
                    handle
                        .task("cleanup")
                        .and_then(|t| t.last_run)
                        .is_some_and(|r| r.trigger == Trigger::Missed && r.finished_at.is_some())
                })
                .await;
            } else {
                // The second start finds the missed run done: nothing runs.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            task.stop().await;
        }
        assert_eq!(runs.get(), 1);
    });
    let record = cleanup_record(&kept).unwrap();
    assert_eq!(record.runs.len(), 2);
    assert_eq!(record.runs[1].trigger, Trigger::Missed);
}

#[test]
fn a_new_store_runs_nothing_at_start_and_an_interrupted_run_is_kept_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let interrupted = TaskRecord {
        since_ms: now_ms() - 1000,
        runs: vec![RunRecord {
            started_at_ms: now_ms() - 500,
            finished_at_ms: None,
            trigger: Trigger::Manual,
            counts: Counts::new(),
            error: None,
        }],
    };
    store
        .submit_blocking(vec![
            state_change("cleanup", &interrupted),
            Change::PutState {
                key: "schedule.wanted_retry".to_owned(),
                value: serde_json::Value::Null,
            },
        ])
        .unwrap();
    let kept = store.clone();
    actix_rt::System::new().block_on(async move {
        let runs = Rc::new(Cell::new(0));
        let mut scheduler = Scheduler::new(&settings("0 0 29 2 1"), store.clone());
        scheduler.register("cleanup", counting(runs.clone(), None));
        scheduler.register("wanted_retry", counting(runs.clone(), None));
        let (handle, task) = scheduler.start();
        until(|| {
            handle
                .task("cleanup")
                .and_then(|t| t.last_run)
                .is_some_and(|r| r.error.is_some())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        task.stop().await;
        assert_eq!(runs.get(), 0);
    });
    let cleanup = cleanup_record(&kept).unwrap();
    assert!(
        cleanup.runs[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("interrupted")
    );
    // The task nobody knew got its `since`, from which missed runs count after a restart.
    let fresh = kept
        .state_as::<TaskRecord>("schedule.wanted_retry")
        .unwrap()
        .unwrap();
    assert!(fresh.runs.is_empty() && fresh.since_ms > 0);
}
