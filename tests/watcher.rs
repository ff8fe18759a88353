//! The file watcher on a real library folder, with real inotify, through the in-process
//! daemon: what arrives becomes jobs (origin `watcher`) once stable; what must be ignored
//! never does; moved-in folders, re-created and late library roots are watched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{DEADLINE, Sandbox, Served};
use serde_json::Value;

/// `stable_secs = 3`: a write every 200 ms keeps a file unstable with a wide margin.
const CONFIG: &str = "[watcher]\nenabled = true\nstable_secs = 3\n";

fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE * 2, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn jobs(daemon: &Served) -> Vec<Value> {
    let (status, page) = daemon.get("/api/v1/jobs?limit=500");
    assert_eq!(status, 200, "{page}");
    page["jobs"].as_array().unwrap().clone()
}

fn watcher_report(daemon: &Served) -> Value {
    let (status, body) = daemon.get("/health/sources");
    assert_eq!(status, 200, "{body}");
    body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "watcher")
        .cloned()
        .expect("the watcher is listed")
}

fn watching(daemon: &Served) {
    wait_until("the watcher watches", || {
        (watcher_report(daemon)["state"] == "connected").then_some(())
    });
}

/// The jobs of `video`, once there is one per wanted language (fr, en).
fn jobs_of(daemon: &Served, video: &Path) -> Vec<Value> {
    let video = video.canonicalize().unwrap();
    wait_until(&format!("jobs for {}", video.display()), || {
        let found: Vec<Value> = jobs(daemon)
            .into_iter()
            .filter(|j| Path::new(j["path"].as_str().unwrap()) == video)
            .collect();
        (found.len() >= 2).then_some(found)
    })
}

#[test]
fn a_video_copied_in_slowly_becomes_one_job_per_language_only_once_stable() {
    let sandbox = Sandbox::new(CONFIG);
    let daemon = sandbox.serve();
    watching(&daemon);
    let video = sandbox
        .library()
        .join("Slow Movie (2020)/Slow Movie (2020).mkv");
    std::fs::create_dir_all(video.parent().unwrap()).unwrap();
    let mut file = std::fs::File::create(&video).unwrap();
    for _ in 0..20 {
        file.write_all(&[7u8; 64 * 1024]).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            jobs(&daemon).is_empty(),
            "a file still being written is not a video yet"
        );
    }
    drop(file);
    let found = jobs_of(&daemon, &video);
    let mut languages: Vec<&str> = found
        .iter()
        .map(|j| j["language"].as_str().unwrap())
        .collect();
    languages.sort_unstable();
    assert_eq!(languages, ["en", "fr"], "{found:?}");
    assert!(found.iter().all(|j| j["origin"] == "watcher"), "{found:?}");
    assert!(found.iter().all(|j| j["priority"] == "normal"), "{found:?}");
    let report = watcher_report(&daemon);
    assert_eq!(report["detected"], 1, "{report}");
    assert_eq!(jobs(&daemon).len(), 2);
    daemon.stop().unwrap();
}

#[test]
fn a_part_file_renamed_to_mkv_is_one_video_and_ignored_files_are_none() {
    let sandbox = Sandbox::new(CONFIG);
    let daemon = sandbox.serve();
    watching(&daemon);
    let folder = sandbox.library().join("Movie (2021)");
    std::fs::create_dir_all(&folder).unwrap();
    // Everything the watcher must not take, written before the real video so that each
    // would have been stable (and taken) before the video is.
    for name in [
        ".Movie (2021).mkv",
        "Movie (2021).mkv.!qB",
        "Movie (2021).tmp",
        "Movie (2021).mkv.crdownload",
        "Other (2021).fr.srt",
        "poster.jpg",
        "movie.nfo",
    ] {
        std::fs::write(folder.join(name), b"data").unwrap();
    }
    std::fs::create_dir_all(sandbox.library().join(".incoming")).unwrap();
    std::fs::write(sandbox.library().join(".incoming/Hidden.mkv"), b"data").unwrap();
    let part = folder.join("Movie (2021).mkv.part");
    std::fs::write(&part, vec![1u8; 256 * 1024]).unwrap();
    let video = folder.join("Movie (2021).mkv");
    std::fs::rename(&part, &video).unwrap();
    let found = jobs_of(&daemon, &video);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(jobs(&daemon).len(), 2, "only the renamed video");
    let report = watcher_report(&daemon);
    assert_eq!(report["detected"], 1, "{report}");
    assert_eq!(
        report["refused"], 0,
        "nothing else was even submitted: {report}"
    );
    daemon.stop().unwrap();
}

#[test]
fn a_folder_moved_into_the_library_gives_its_videos() {
    let sandbox = Sandbox::new(CONFIG);
    let incoming = sandbox.dir.path().join("incoming/Show");
    for episode in ["Show S01E01.mkv", "Show S01E02.mp4"] {
        let path = incoming.join("Season 01").join(episode);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"episode").unwrap();
    }
    std::fs::write(incoming.join("Season 01/Show S01E01.en.srt"), b"1").unwrap();
    let daemon = sandbox.serve();
    watching(&daemon);
    let moved = sandbox.library().join("Show");
    std::fs::rename(&incoming, &moved).unwrap();
    jobs_of(&daemon, &moved.join("Season 01/Show S01E01.mkv"));
    jobs_of(&daemon, &moved.join("Season 01/Show S01E02.mp4"));
    assert_eq!(jobs(&daemon).len(), 4);
    daemon.stop().unwrap();
}

#[test]
fn a_library_folder_removed_and_created_again_is_watched_again() {
    let sandbox = Sandbox::new(CONFIG);
    let daemon = sandbox.serve();
    watching(&daemon);
    std::fs::remove_dir_all(sandbox.library()).unwrap();
    wait_until("the watcher notices the library is gone", || {
        watcher_report(&daemon)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not exist"))
            .then_some(())
    });
    std::fs::create_dir_all(sandbox.library()).unwrap();
    let first = sandbox.video("Back (2022)/Back (2022).mkv");
    jobs_of(&daemon, &first);
    // Watched, not only listed once: a file arriving now is seen too.
    let second = sandbox.video("Later (2022)/Later (2022).mkv");
    jobs_of(&daemon, &second);
    assert_eq!(jobs(&daemon).len(), 4);
    daemon.stop().unwrap();
}

#[test]
fn a_library_root_that_appears_after_start_is_watched() {
    let sandbox = Sandbox::new(CONFIG);
    std::fs::remove_dir_all(sandbox.library()).unwrap();
    let daemon = sandbox.serve();
    wait_until("the watcher has started", || {
        (watcher_report(&daemon)["state"] != "starting").then_some(())
    });
    std::fs::create_dir_all(sandbox.library()).unwrap();
    watching(&daemon);
    let video = sandbox.video("Late (2023)/Late (2023).mkv");
    jobs_of(&daemon, &video);
    daemon.stop().unwrap();
}
