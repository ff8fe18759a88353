//! The scheduler through the daemon: `GET /schedule` in the configured zone, runs on
//! demand (202, 409, 404), a run missed while the daemon was down runs once at start, and
//! the cleanup removes exactly the expired history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{DEADLINE, KEY, Sandbox};
use cuewarden_actors::store::{Change, Store};
use cuewarden_actors::time::now_ms;
use cuewarden_actors::{Event, EventSource, Job, JobId, JobStatus, Language};
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600 * 1000;

/// Polls `GET /schedule` until `task`'s last run has finished (and `check` holds).
fn finished_run(api: &common::Api, task: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, list) = api.get("/api/v1/schedule");
        assert_eq!(status, 200, "{list}");
        let view = list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == task)
            .cloned()
            .unwrap();
        if !view["last_run"]["finished_at"].is_null() && check(&view) {
            return view;
        }
        assert!(start.elapsed() < DEADLINE, "{task} never finished: {view}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_schedule_lists_every_task_in_its_zone_and_runs_one_on_demand() {
    let sandbox =
        Sandbox::new("[schedule]\ntimezone = \"Asia/Kolkata\"\ncleanup = \"15 2 * * *\"\n");
    let daemon = sandbox.serve();
    let (status, list) = daemon.get("/api/v1/schedule");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["timezone"], "Asia/Kolkata");
    let tasks: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    assert_eq!(
        tasks,
        ["library_sync", "wanted_retry", "upgrade", "cleanup"]
    );
    for task in list["tasks"].as_array().unwrap() {
        match task["task"].as_str().unwrap() {
            "cleanup" => {
                assert_eq!(task["expression"], "15 2 * * *");
                assert_eq!(task["available"], true);
                let next = task["next_run"].as_str().unwrap();
                assert!(next.ends_with("T02:15:00+05:30"), "{next}");
                assert!(task["last_run"].is_null());
            }
            "wanted_retry" => {
                let next = task["next_run"].as_str().unwrap();
                assert!(next.ends_with(":00:00+05:30"), "{next}");
            }
            "upgrade" => {
                assert_eq!(task["available"], true, "{task}");
                assert!(task["next_run"].as_str().unwrap().ends_with("+05:30"));
            }
            // The library sync is off in the sandbox.
            "library_sync" => {
                assert_eq!(task["available"], false, "{task}");
                assert!(task["next_run"].is_null());
            }
            other => panic!("unexpected task {other}"),
        }
    }

    let (status, body) = daemon.post("/api/v1/schedule/wanted_retry/run", &json!({}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["task"], "wanted_retry");
    let view = finished_run(&daemon, "wanted_retry", |_| true);
    assert_eq!(view["last_run"]["trigger"], "manual");
    assert_eq!(view["last_run"]["counts"]["woken"], 0);
    assert!(view["last_run"]["error"].is_null());
    assert!(
        view["last_run"]["started_at"]
            .as_str()
            .unwrap()
            .ends_with("+05:30")
    );

    // The upgrade pass runs on demand; with no subtitle written, nothing is due.
    let (status, body) = daemon.post("/api/v1/schedule/upgrade/run", &json!({}));
    assert_eq!(status, 202, "{body}");
    let view = finished_run(&daemon, "upgrade", |_| true);
    assert!(view["last_run"]["error"].is_null(), "{view}");
    assert_eq!(view["last_run"]["counts"]["due"], 0, "{view}");
    assert_eq!(view["last_run"]["counts"]["upgraded"], 0, "{view}");
    let (status, body) = daemon.post("/api/v1/schedule/library_sync/run", &json!({}));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_available");
    let (status, body) = daemon.post("/api/v1/schedule/vacuum/run", &json!({}));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = daemon.get("/api/v1/schedule/cleanup/run");
    assert_eq!(status, 405, "{body}");
    let (client, runtime) = daemon.raw();
    let unauthorized = runtime.block_on(async {
        client
            .post(format!("{}/api/v1/schedule/cleanup/run", daemon.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(unauthorized, 401);
    let _ = KEY;
}

#[test]
fn a_bad_expression_or_zone_is_refused_with_the_key() {
    let sandbox =
        Sandbox::new("[schedule]\ncleanup = \"0 0 3 * * *\"\ntimezone = \"Mars/Olympus\"\n");
    let output = std::process::Command::new(common::binary())
        .args(["check-config", "--config"])
        .arg(sandbox.config())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("schedule.cleanup"), "{text}");
    assert!(text.contains("schedule.timezone"), "{text}");
}

#[test]
fn a_run_missed_while_the_daemon_was_down_runs_once_at_start() {
    let sandbox = Sandbox::new("[schedule]\nwanted_retry = \"0 */6 * * *\"\n");
    let data = sandbox.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open(&data).unwrap();
    // Last run a day ago: at least three of its times passed since.
    store
        .submit_blocking(vec![Change::PutState {
            key: "schedule.wanted_retry".to_owned(),
            value: json!({"since_ms": now_ms() - 2 * DAY, "runs": [{
                "started_at_ms": now_ms() - DAY, "finished_at_ms": now_ms() - DAY + 5,
                "trigger": "schedule", "counts": {"woken": 3}}]}),
        }])
        .unwrap();
    store.close();
    drop(store);

    let daemon = sandbox.serve();
    let first = finished_run(&daemon, "wanted_retry", |t| {
        t["last_run"]["trigger"] == "missed"
    });
    daemon.stop().unwrap();

    // Started again right away: nothing was missed since.
    let daemon = sandbox.serve();
    std::thread::sleep(Duration::from_millis(500));
    let again = finished_run(&daemon, "wanted_retry", |_| true);
    assert_eq!(again["last_run"], first["last_run"]);
    daemon.stop().unwrap();
    let store = open_when_released(&data);
    let record = store.state("schedule.wanted_retry").unwrap().unwrap();
    let triggers: Vec<&str> = record["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["schedule", "missed"]);
}

/// Opens the store the in-process daemon just closed. Its HTTP workers' threads may drop
/// their last handle a moment after `stop` returned (seen once in five runs as `Locked`).
fn open_when_released(data: &Path) -> Store {
    let start = Instant::now();
    loop {
        match Store::open(data) {
            Ok(store) => return store,
            Err(cuewarden_actors::StoreError::Locked { .. }) if start.elapsed() < DEADLINE => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("cannot open the store: {err}"),
        }
    }
}

/// A job created and finished `age_ms` ago (its id carries its creation time, as a real
/// one's does).
fn old_job(n: usize, status: JobStatus, age_ms: i64, library: &Path) -> Job {
    let at = now_ms() - age_ms;
    let mut job = Job::pending(
        library.join(format!("Old {n} (2001).mkv")),
        Language::parse("fr").unwrap(),
        EventSource::Api,
        at,
    );
    let random = uuid::Uuid::new_v4().as_u128();
    let id = (u128::from(at as u64) << 80)
        | (0x7u128 << 76)
        | (random & ((1u128 << 76) - 1) & !(0b11u128 << 62))
        | (0b10u128 << 62);
    job.id = JobId(uuid::Uuid::from_u128(id));
    job.status = status;
    job.updated_at_ms = at;
    job
}

#[test]
fn cleanup_removes_exactly_the_expired_history_and_keeps_the_rest() {
    let sandbox = Sandbox::new("[retention]\ncompleted_days = 30\nfailed_days = 90\n");
    let library: PathBuf = sandbox.library();
    let data = sandbox.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open(&data).unwrap();
    let cases = [
        (JobStatus::Done, 40, true),
        (JobStatus::Done, 5, false),
        (JobStatus::Cancelled, 31, true),
        (JobStatus::Skipped, 29, false),
        (JobStatus::Failed, 40, false),
        (JobStatus::Failed, 100, true),
    ];
    let mut jobs = Vec::new();
    for (n, (status, days, gone)) in cases.into_iter().enumerate() {
        let job = old_job(n, status, days * DAY, &library);
        let events = ["subtitle.requested", "download.started"]
            .iter()
            .map(|kind| {
                Event::for_job(job.id, kind, EventSource::Api, job.updated_at_ms, json!({}))
            })
            .collect();
        store
            .submit_blocking(vec![Change::PutJob {
                job: job.clone(),
                events,
            }])
            .unwrap();
        jobs.push((job.id.to_string(), gone));
    }
    store.close();
    drop(store);

    let daemon = sandbox.serve();
    assert_eq!(daemon.all_job_ids().len(), 6);
    let (status, body) = daemon.post("/api/v1/schedule/cleanup/run", &json!({}));
    assert_eq!(status, 202, "{body}");
    let view = finished_run(&daemon, "cleanup", |_| true);
    let counts = &view["last_run"]["counts"];
    assert!(view["last_run"]["error"].is_null(), "{view}");
    assert_eq!(counts["jobs_deleted"], 3, "{view}");
    assert_eq!(counts["events_deleted"], 6, "{view}");
    let mut kept: Vec<String> = daemon.all_job_ids();
    kept.sort();
    let mut expected: Vec<String> = jobs
        .iter()
        .filter(|(_, gone)| !gone)
        .map(|(id, _)| id.clone())
        .collect();
    expected.sort();
    assert_eq!(kept, expected);
    for (id, gone) in &jobs {
        let (status, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
        if *gone {
            assert_eq!(status, 404, "{events}");
            assert_eq!(daemon.get(&format!("/api/v1/jobs/{id}")).0, 404);
        } else {
            assert_eq!(status, 200, "{events}");
            assert_eq!(
                events["events"].as_array().map(Vec::len),
                Some(2),
                "{events}"
            );
        }
    }
    // A second run finds nothing more to delete.
    let (status, _) = daemon.post("/api/v1/schedule/cleanup/run", &json!({}));
    assert_eq!(status, 202);
    let view = finished_run(&daemon, "cleanup", |t| {
        t["last_run"]["counts"]["jobs_deleted"] == 0
    });
    assert_eq!(view["last_run"]["counts"]["events_deleted"], 0);
}

#[test]
fn a_library_sync_still_going_is_not_started_twice() {
    // A Jellyfin that accepts connections and never answers: the sync waits on its listing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut connections = Vec::new();
        for stream in silent.incoming().take(16) {
            connections.push(stream);
        }
        connections.len()
    });
    let sandbox = Sandbox::new(&format!(
        "[library_sync]\nenabled = true\n[jellyfin]\nurl = \"{url}\"\napi_key = \"k\"\nwebsocket = false\n"
    ));
    // Synced before: the first start does not sync by itself.
    let data = sandbox.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open(&data).unwrap();
    store
        .submit_blocking(vec![Change::PutState {
            key: "library_sync".to_owned(),
            value: json!({"started_at_ms": now_ms() - 1000, "finished_at_ms": now_ms() - 900,
                "jellyfin_items": 0, "jellyfin_error": null, "videos_walked": 0,
                "videos_missing": 0, "submitted": 0, "accepted": 0, "refused": 0, "jobs": 0,
                "unreadable": 0}),
        }])
        .unwrap();
    store.close();
    drop(store);
    let daemon = sandbox.serve();
    let (status, body) = daemon.post("/api/v1/schedule/library_sync/run", &json!({}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["running"], true, "{body}");
    let (status, body) = daemon.post("/api/v1/schedule/library_sync/run", &json!({}));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "already_running");
    let (_, list) = daemon.get("/api/v1/schedule");
    let view = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "library_sync")
        .cloned()
        .unwrap();
    assert_eq!(view["running"], true, "{view}");
    assert!(view["last_run"]["finished_at"].is_null(), "{view}");
    assert_eq!(view["last_run"]["trigger"], "manual");
    drop(daemon);
    // The silent server's thread ends with the test process.
    drop(held);
}

#[test]
fn a_run_on_demand_takes_no_body_but_none_or_an_empty_object() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let (client, _) = daemon.raw();
    let send = |task: &str, content_type: Option<&str>, body: &'static str| {
        let mut request = client
            .post(format!("{}/api/v1/schedule/{task}/run", daemon.base))
            .header("X-Api-Key", KEY)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        daemon.call(request)
    };

    for (content_type, body, status, code, says) in [
        (
            Some("application/json"),
            "{\"force\": true}",
            400,
            "bad_request",
            "unknown field `force`",
        ),
        (
            Some("application/json"),
            "{not json",
            400,
            "bad_request",
            "invalid request body",
        ),
        (
            Some("application/json"),
            "[]",
            400,
            "bad_request",
            "invalid request body",
        ),
        (
            Some("text/plain"),
            "{}",
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (None, "go", 415, "unsupported_media_type", "given: none"),
    ] {
        let (got, answer) = send("cleanup", content_type, body);
        assert_eq!(got, status, "{body:?}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    // Nothing was started by a refused request.
    let (status, list) = daemon.get("/api/v1/schedule");
    assert_eq!(status, 200, "{list}");
    assert!(
        list["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["last_run"].is_null()),
        "{list}"
    );

    // No body at all, whatever the content type, and `{}` start the run.
    let (status, body) = send("cleanup", None, "");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["task"], "cleanup");
    finished_run(&daemon, "cleanup", |_| true);
    let (status, body) = send("wanted_retry", Some("text/plain"), "");
    assert_eq!(status, 202, "{body}");
    finished_run(&daemon, "wanted_retry", |_| true);
    let (status, body) = send("upgrade", Some("application/json"), "{}");
    assert_eq!(status, 202, "{body}");
    finished_run(&daemon, "upgrade", |_| true);
}

#[test]
fn cleanup_deletes_the_cached_translations_unused_for_the_cache_days() {
    let sandbox = Sandbox::new("");
    let data = sandbox.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open(&data).unwrap();
    let today = cuewarden_actors::store::day_of(now_ms());
    // 300 lines (more than one batch of 256) last used 181 days ago, 40 used last week.
    for (name, n, used) in [("old", 300, today - 181), ("recent", 40, today - 7)] {
        let entries: Vec<(String, String)> = (0..n)
            .map(|i| (format!("{name} {i}"), format!("{name} fr {i}")))
            .collect();
        let keys = entries
            .iter()
            .map(|(text, _)| cuewarden_actors::store::translation_key("deepl", "en", "fr", text))
            .collect();
        store
            .submit_blocking(vec![
                Change::PutTranslations {
                    service: "deepl".to_owned(),
                    from: "en".to_owned(),
                    to: "fr".to_owned(),
                    entries,
                },
                Change::TouchTranslations { keys, day: used },
            ])
            .unwrap();
    }
    store.close();
    drop(store);

    let daemon = sandbox.serve();
    let (status, body) = daemon.post("/api/v1/schedule/cleanup/run", &json!({}));
    assert_eq!(status, 202, "{body}");
    let view = finished_run(&daemon, "cleanup", |_| true);
    assert!(view["last_run"]["error"].is_null(), "{view}");
    let counts = &view["last_run"]["counts"];
    assert_eq!(counts["translations_deleted"], 300, "{view}");
    assert_eq!(counts["translations_examined"], 340, "{view}");
    let (status, _) = daemon.post("/api/v1/schedule/cleanup/run", &json!({}));
    assert_eq!(status, 202);
    let view = finished_run(&daemon, "cleanup", |t| {
        t["last_run"]["counts"]["translations_examined"] == 40
    });
    assert_eq!(
        view["last_run"]["counts"]["translations_deleted"], 0,
        "{view}"
    );
    daemon.stop().unwrap();

    let store = open_when_released(&data);
    let texts =
        |name: &str, n: usize| -> Vec<String> { (0..n).map(|i| format!("{name} {i}")).collect() };
    let hits = |texts: &[String]| {
        store
            .cached_translations("deepl", "en", "fr", texts)
            .unwrap()
            .into_iter()
            .flatten()
            .count()
    };
    assert_eq!(hits(&texts("old", 300)), 0);
    assert_eq!(hits(&texts("recent", 40)), 40);
}
