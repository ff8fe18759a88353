//! The wiring seam: a source registered in `Components` is started with the shared intake,
//! listed by `/health/sources`, and its detections become jobs like the API's, with its own
//! origin and priority.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::mpsc;

use common::{Sandbox, Served};
use cuewarden::sources::{
    Detection, Intake, IntakeError, Source, SourceHandle, SourceInfo, SourceState, SourceStatus,
    Submitted, Target,
};
use cuewarden_actors::EventSource;
use serde_json::json;

/// A source that detects the given paths once, at start, and reports what the intake said.
struct OneShot {
    paths: Vec<PathBuf>,
    results: mpsc::Sender<Result<Submitted, String>>,
}

impl Source for OneShot {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: EventSource::Watcher,
            enabled: true,
            description: "test source",
        }
    }

    fn start(self: Box<Self>, intake: Intake, status: SourceStatus) -> SourceHandle {
        let task = actix_rt::spawn(async move {
            status.set(SourceState::Running);
            for path in self.paths {
                let target = Target::Path(path);
                let name = target.to_string();
                let result = intake
                    .submit(Detection::new(target, EventSource::Watcher))
                    .await;
                status.record(&name, &result);
                let result = result.map_err(|err: IntakeError| err.to_string());
                let _ = self.results.send(result);
            }
        });
        SourceHandle::new(move || async move {
            let _ = task.await;
        })
    }
}

#[test]
fn a_registered_source_hands_its_detections_to_the_shared_intake() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("Show/Season 01/Show S01E01.mkv");
    let nfo = sandbox.library().join("Show/tvshow.nfo");
    std::fs::write(&nfo, b"x").unwrap();
    let (sender, results) = mpsc::channel();
    let paths = vec![video.clone(), nfo, PathBuf::from("/etc/passwd")];
    let daemon = Served::start_with(&sandbox.config(), move |components| {
        // Only the test's source (it borrows the watcher's name).
        components.sources.clear();
        components.sources.push(Box::new(OneShot {
            paths,
            results: sender,
        }));
    });

    let accepted = results.recv_timeout(common::DEADLINE).unwrap().unwrap();
    assert_eq!(accepted.path, video);
    assert_eq!(accepted.jobs.len(), 2, "[languages] wanted applies");
    let not_a_video = results.recv_timeout(common::DEADLINE).unwrap().unwrap_err();
    assert!(not_a_video.contains("is not a video"), "{not_a_video}");
    let outside = results.recv_timeout(common::DEADLINE).unwrap().unwrap_err();
    assert!(
        outside.contains("outside every configured library"),
        "{outside}"
    );

    let id = accepted.jobs[0].id.to_string();
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert_eq!(job["origin"], "watcher");
    assert_eq!(job["priority"], "normal");

    let (status, health) = daemon.get("/api/v1/health/sources");
    assert_eq!(status, 200, "{health}");
    let names: Vec<_> = health["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("api"), json!("webhook"), json!("watcher")]);
    let watcher = &health["sources"][2];
    assert_eq!(watcher["state"], "running", "{watcher}");
    assert_eq!(watcher["detected"], 1, "{watcher}");
    assert_eq!(watcher["refused"], 2, "{watcher}");
    assert_eq!(
        watcher["last_refused"]["target"], "/etc/passwd",
        "{watcher}"
    );
    let api = &health["sources"][0];
    assert_eq!(api["state"], "running", "{api}");
    assert_eq!(health["libraries"][0]["state"], "ok", "{health}");
    daemon.stop().unwrap();
}

#[test]
fn a_library_folder_removed_while_running_shows_as_missing() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let (_, before) = daemon.get("/api/v1/health/sources");
    assert_eq!(before["libraries"][0]["state"], "ok", "{before}");
    let moved = sandbox.library().with_extension("away");
    std::fs::rename(sandbox.library(), &moved).unwrap();
    let (_, after) = daemon.get("/api/v1/health/sources");
    assert_eq!(after["libraries"][0]["state"], "missing", "{after}");
    std::fs::rename(&moved, sandbox.library()).unwrap();
    let (_, back) = daemon.get("/api/v1/health/sources");
    assert_eq!(back["libraries"][0]["state"], "ok", "{back}");
    daemon.stop().unwrap();
}
