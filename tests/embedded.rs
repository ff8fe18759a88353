//! Embedded subtitle tracks through the real binary: with an `ffprobe` on `PATH`, a wanted
//! language that is a text track inside the video skips the job, naming the track; without
//! one, the job goes on. (The project's CI installs no ffmpeg, so the `ffprobe` here is a
//! small script that answers what ffprobe prints for such a file; the parsing of real
//! output and the timeout are unit tests in `actors/src/downloader/embedded.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Daemon, Sandbox};
use serde_json::json;

const PROBE_OUTPUT: &str = r#"{"streams": [
  {"index": 2, "codec_name": "subrip", "tags": {"language": "fre"},
   "disposition": {"forced": 0, "hearing_impaired": 0}},
  {"index": 3, "codec_name": "subrip", "tags": {"language": "eng"},
   "disposition": {"forced": 1, "hearing_impaired": 0}}
]}"#;

fn fake_ffprobe(dir: &std::path::Path) {
    let script = dir.join("ffprobe");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# answers like: ffprobe -v error -select_streams s -show_entries ... -of json FILE\n\
             case \"$*\" in *'-select_streams s'*'-of json'*) ;; *) exit 2 ;; esac\n\
             cat <<'EOF'\n{PROBE_OUTPUT}\nEOF\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_embedded_text_track_skips_the_job_and_names_the_track() {
    let sandbox = Sandbox::new("");
    let bin = sandbox.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    fake_ffprobe(&bin);
    let video = sandbox.video("Movie (2020)/Movie (2020).mkv");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let daemon = Daemon::start(&sandbox.config(), &[("PATH", &path)]);
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr", "en"]}),
    );
    assert_eq!(status, 202, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    let id_of = |language: &str| {
        jobs.iter().find(|j| j["language"] == language).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let fr = id_of("fr");
    daemon.wait_for_job(&fr, |j| j["status"] == "skipped");
    let (_, events) = daemon.get(&format!("/api/v1/jobs/{fr}/events"));
    let skipped = &events["events"][0];
    assert_eq!(skipped["type"], "subtitle.skipped", "{events}");
    assert_eq!(
        skipped["payload"]["embedded"], "subtitle track 2 (subrip, fre)",
        "{skipped}"
    );
    // The English track is forced (foreign parts only): English is still wanted.
    let en = id_of("en");
    let job = daemon.wait_for_job(&en, |j| j["status"] == "waiting");
    assert_eq!(job["error"], "no subtitle provider enabled", "{job}");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn without_ffprobe_only_sidecars_count_and_jobs_go_on() {
    let sandbox = Sandbox::new("");
    let empty = sandbox.dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let video = sandbox.video("Movie (2020)/Movie (2020).mkv");
    let path = empty.display().to_string();
    let daemon = Daemon::start(&sandbox.config(), &[("PATH", &path)]);
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["jobs"][0]["id"].as_str().unwrap();
    let job = daemon.wait_for_job(id, |j| j["status"] == "waiting");
    assert_eq!(job["error"], "no subtitle provider enabled", "{job}");
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
}
