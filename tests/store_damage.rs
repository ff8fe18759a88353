//! A damaged store file, made as a failing disk would: random bytes written into a real
//! store, or the file emptied. The daemon detects it at start without writing to it, moves it
//! aside, restores the newest good snapshot, says so in its log and in `/health`, and serves.
//! See: issue 7, "A damaged store".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{DEADLINE, Sandbox, binary};
use serde_json::{Value, json};

/// How many garbage bytes the probe wrote into the file.
const GARBAGE_BYTES: usize = 64 * 1024;

fn store_file(sandbox: &Sandbox) -> PathBuf {
    sandbox.dir.path().join("data/cuewarden.redb")
}

fn snapshots(sandbox: &Sandbox) -> Vec<PathBuf> {
    let dir = sandbox.dir.path().join("data/snapshots");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "redb"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Files in `data/` whose name starts with `prefix`.
fn data_files(sandbox: &Sandbox, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(sandbox.dir.path().join("data"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

/// A stopped daemon's store with `videos` × 2 waiting jobs, each with its events. With
/// `snapshot`, a second start took a snapshot of it (the first start's store was new).
fn populated_store(sandbox: &Sandbox, videos: usize, snapshot: bool) -> Vec<String> {
    let daemon = sandbox.start();
    let mut ids = Vec::new();
    for n in 0..videos {
        let video = sandbox.video(&format!("m{n}/m{n}.mkv"));
        let (status, body) = daemon.post(
            "/api/v1/subtitles",
            &json!({"path": video, "languages": ["fr", "de"]}),
        );
        assert_eq!(status, 202, "{body}");
        for job in body["jobs"].as_array().unwrap() {
            ids.push(job["id"].as_str().unwrap().to_owned());
        }
    }
    for id in &ids {
        daemon.wait_for_job(id, |j| j["status"] == "waiting");
    }
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    if snapshot {
        let before = snapshots(sandbox).len();
        let daemon = sandbox.start();
        let start = Instant::now();
        while snapshots(sandbox).len() <= before {
            assert!(start.elapsed() < DEADLINE, "no snapshot taken at start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (status, log) = daemon.terminate();
        assert!(status.success(), "{log}");
    }
    ids
}

/// Writes 64 KiB of (seeded) random bytes at `fraction` of the file.
fn write_garbage(path: &Path, fraction: f64) {
    let len = std::fs::metadata(path).unwrap().len();
    let offset = (len as f64 * fraction) as u64;
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ offset;
    let garbage: Vec<u8> = (0..GARBAGE_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&garbage).unwrap();
    file.sync_all().unwrap();
}

fn store_command(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(binary())
        .arg("store")
        .args(args)
        .arg("--config")
        .arg(sandbox.config())
        .env_remove("CUEWARDEN_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The damaged store is detected and left untouched, the snapshot is restored, and the
/// daemon says so: in an ERROR line, and as `degraded` in `/health` (still a 200).
fn restores_the_snapshot_after(damage: impl FnOnce(&Path)) {
    let sandbox = Sandbox::new("");
    let ids = populated_store(&sandbox, 40, true);
    let path = store_file(&sandbox);
    damage(&path);
    let damaged = std::fs::read(&path).unwrap();

    let started = Instant::now();
    let daemon = sandbox.start();
    let (status, health) = daemon.get("/health");
    let serving = started.elapsed();
    eprintln!("damaged store to serving from the snapshot: {serving:?}");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded", "{health}");
    let reason = health["reason"].as_str().unwrap();
    assert!(reason.contains("snapshot"), "{reason}");
    assert!(health["version"].is_string(), "{health}");

    let mut listed = daemon.all_job_ids();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected, "every job of the snapshot is back");
    for id in &ids {
        let (status, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
        assert_eq!(status, 200, "{events}");
    }
    // The damaged file is kept aside, byte for byte: nothing was written into it.
    let aside = data_files(&sandbox, "cuewarden.redb.damaged-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        std::fs::read(&aside[0]).unwrap() == damaged,
        "the damaged file was changed"
    );

    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("store is damaged")),
        "{log}"
    );
    assert!(log.contains("restored the snapshot"), "{log}");
    assert!(log.contains("lost"), "{log}");

    // The next start finds a good store.
    let daemon = sandbox.start();
    assert_eq!(daemon.get("/health").1["status"], "ok");
}

#[test]
fn garbage_at_a_quarter_of_the_store_restores_the_snapshot() {
    restores_the_snapshot_after(|path| write_garbage(path, 0.25));
}

#[test]
fn garbage_at_half_of_the_store_restores_the_snapshot() {
    restores_the_snapshot_after(|path| write_garbage(path, 0.5));
}

#[test]
fn an_emptied_store_file_is_damage_not_a_new_store() {
    restores_the_snapshot_after(|path| std::fs::write(path, b"").unwrap());
}

#[test]
fn without_a_snapshot_a_damaged_store_is_kept_aside_and_a_fresh_one_serves() {
    let sandbox = Sandbox::new("");
    populated_store(&sandbox, 10, false);
    assert!(snapshots(&sandbox).is_empty());
    write_garbage(&store_file(&sandbox), 0.25);

    let daemon = sandbox.start();
    daemon.assert_degraded("no good snapshot");
    assert!(daemon.all_job_ids().is_empty());
    assert_eq!(data_files(&sandbox, "cuewarden.redb.damaged-").len(), 1);
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn a_missing_store_file_is_a_new_store_and_healthy() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.start();
    let (status, health) = daemon.get("/health");
    assert_eq!(status, 200);
    assert_eq!(
        health,
        json!({"status": "ok", "version": health["version"]})
    );
    drop(daemon);
    assert!(data_files(&sandbox, "cuewarden.redb.damaged-").is_empty());
}

#[test]
fn store_check_tells_a_good_store_from_a_damaged_one_and_a_locked_one() {
    let sandbox = Sandbox::new("");
    populated_store(&sandbox, 10, false);
    let (code, out, err) = store_command(&sandbox, &["check"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("ok"), "{out}");

    let daemon = sandbox.start();
    let (code, out, err) = store_command(&sandbox, &["check"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("in use"), "{err}");
    drop(daemon);

    write_garbage(&store_file(&sandbox), 0.25);
    let before = std::fs::read(store_file(&sandbox)).unwrap();
    let (code, out, err) = store_command(&sandbox, &["check"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("damaged"), "{err}");
    assert!(std::fs::read(store_file(&sandbox)).unwrap() == before);
}

#[test]
fn store_backup_and_restore_bring_a_store_back() {
    let sandbox = Sandbox::new("");
    let ids = populated_store(&sandbox, 10, false);
    let backup = sandbox.dir.path().join("backup.redb");

    // While the daemon runs, the file is locked: the command says what to do instead.
    let daemon = sandbox.start();
    let (code, _, err) = store_command(&sandbox, &["backup", backup.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("stop the daemon first"), "{err}");
    let (code, _, err) = store_command(&sandbox, &["restore", backup.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("stop the daemon first"), "{err}");
    drop(daemon);

    let (code, out, err) = store_command(&sandbox, &["backup", backup.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(backup.exists());
    // A backup is never overwritten by accident.
    let (code, _, err) = store_command(&sandbox, &["backup", backup.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");

    // A damaged backup is refused, and the store is left as it was.
    let bad = sandbox.dir.path().join("bad.redb");
    std::fs::copy(&backup, &bad).unwrap();
    write_garbage(&bad, 0.25);
    let (code, _, err) = store_command(&sandbox, &["restore", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("damaged"), "{err}");

    std::fs::write(store_file(&sandbox), b"").unwrap();
    let (code, out, err) = store_command(&sandbox, &["restore", backup.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(data_files(&sandbox, "cuewarden.redb.replaced-").len(), 1);

    let daemon = sandbox.start();
    assert_eq!(daemon.get("/health").1["status"], "ok");
    let mut listed = daemon.all_job_ids();
    listed.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(listed, expected);
    let _: Value = daemon.get("/health").1;
}

// See: engine brief, "the runtime behaviour when redb panics on a page damaged after start
// (the release profile aborts)": whether the running daemon reads the bad page and aborts,
// or dies by `kill -9` / a power cut before it does, the next start finds the damage and
// serves from the snapshot.
#[test]
fn a_store_damaged_while_the_daemon_runs_is_restored_from_the_snapshot_at_the_next_start() {
    let sandbox = Sandbox::new("");
    let ids = populated_store(&sandbox, 40, true);
    let daemon = sandbox.start();
    assert_eq!(daemon.get("/health").1["status"], "ok");
    let path = store_file(&sandbox);
    write_garbage(&path, 0.25);
    write_garbage(&path, 0.5);
    // Reads that may reach the damaged pages: the daemon answers, fails the request, or
    // aborts (redb's panic under `panic = "abort"`); any of these, then it is gone.
    let (client, runtime) = daemon.raw();
    for id in &ids {
        let url = format!("{}/api/v1/jobs/{id}/events", daemon.base);
        let answer = runtime.block_on(async {
            client
                .get(url)
                .header("X-Api-Key", common::KEY)
                .send()
                .await
        });
        if answer.is_err() {
            break;
        }
    }
    daemon.crash();
    let damaged = std::fs::read(&path).unwrap();

    let daemon = sandbox.start();
    let (status, health) = daemon.get("/health");
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["reason"].as_str().unwrap().contains("snapshot"),
        "{health}"
    );
    let mut listed = daemon.all_job_ids();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected, "every job of the snapshot is back");
    let aside = data_files(&sandbox, "cuewarden.redb.damaged-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(std::fs::read(&aside[0]).unwrap() == damaged);
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("restored the snapshot"), "{log}");
}
