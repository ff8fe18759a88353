//! Machine translation end to end: the in-process daemon, real redb, the real HTTP clients
//! against the loopback fakes of the services (tests/fake_translators). A job for `fr` where
//! only an `en` sidecar exists ends `done` with a `.fr.srt` whose cues keep count, timing
//! and tags; a second film with shared lines costs fewer requests (the cache); an exhausted
//! quota parks the job `waiting` and it resumes where it stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_opensubtitles;
mod fake_translators;

use std::path::Path;

use common::{Sandbox, Served};
use cuewarden_actors::subtitle::{Cue, parse_srt, write_srt};
use fake_opensubtitles::{FakeOs, SRT};
use fake_translators::{Fake, Fault, translate};
use serde_json::{Value, json};

/// A sandbox translating from English, with the fake as `kind`.
fn sandbox(fake: &Fake, kind: &str, extra: &str) -> Sandbox {
    let sandbox = Sandbox::new(&fake.config(kind, extra));
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    std::fs::write(
        sandbox.config(),
        config.replace(
            "wanted = [\"fr\", \"en\"]\ntranslate_from = []",
            "wanted = [\"fr\"]\ntranslate_from = [\"en\"]",
        ),
    )
    .unwrap();
    sandbox
}

/// `n` cues: italics, `{\an8}`, two-line cues, dialogue, inner bold, plain; `shared` of
/// them carry lines every film has.
fn film(name: &str, n: usize, shared: usize) -> Vec<Cue> {
    (0..n)
        .map(|i| {
            let tag = if i < shared {
                format!("common {i}")
            } else {
                format!("{name} {i}")
            };
            Cue {
                index: i as u32 + 1,
                start_ms: 1000 + i as u64 * 2500,
                end_ms: 3000 + i as u64 * 2500,
                text: match i % 6 {
                    0 => format!("<i>Where are you going, {tag}?</i>"),
                    1 => format!("{{\\an8}}Above the picture\nsays {tag}"),
                    2 => format!("- Who is {tag}?\n- Nobody."),
                    3 => format!("It was <b>never</b> {tag}."),
                    4 => format!("<font color=\"#ffff00\">Yellow {tag}</font>"),
                    _ => format!("We leave at dawn with {tag}\nand nobody else"),
                },
            }
        })
        .collect()
}

fn put_film(sandbox: &Sandbox, folder: &str, cues: &[Cue]) -> std::path::PathBuf {
    let video = sandbox.video(&format!("{folder}/{folder}.mkv"));
    std::fs::write(video.with_extension("en.srt"), write_srt(cues)).unwrap();
    video
}

/// Requests `fr` for `video` and waits until its job matches `until`.
fn request(daemon: &Served, video: &Path, until: impl Fn(&Value) -> bool) -> Value {
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    daemon.wait_for_job(&id, until)
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The written file is the source, translated cue by cue: same count, timing, line count,
/// tags where they were.
fn check_translation(source: &[Cue], written: &Path) {
    let out = parse_srt(&std::fs::read(written).unwrap()).unwrap();
    assert_eq!(out.len(), source.len());
    for (a, b) in source.iter().zip(&out) {
        assert_eq!(
            (a.start_ms, a.end_ms),
            (b.start_ms, b.end_ms),
            "cue {}",
            a.index
        );
        assert_eq!(
            a.text.lines().count(),
            b.text.lines().count(),
            "cue {}: {:?}",
            a.index,
            b.text
        );
        assert_eq!(flat(&b.text), flat(&translate(&a.text)), "cue {}", a.index);
    }
}

fn translated_event(daemon: &Served, id: &str) -> Value {
    let (status, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert_eq!(status, 200);
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "subtitle.translated")
        .cloned()
        .unwrap_or_else(|| panic!("no subtitle.translated in {events}"))
}

#[test]
fn an_english_sidecar_becomes_a_french_subtitle_with_every_cue_and_tag() {
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", "");
    let source = film("alpha", 130, 0);
    let video = put_film(&sandbox, "Alpha (2020)", &source);
    let daemon = sandbox.serve();

    let job = request(&daemon, &video, |j| {
        j["status"] == "done" || j["status"] == "failed"
    });
    assert_eq!(job["status"], "done", "{job}");
    let written = video.with_extension("fr.srt");
    assert_eq!(job["output_path"], json!(written));
    check_translation(&source, &written);
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(
        text.contains("<i>erehW era uoy gniog, ahpla 0?</i>"),
        "{text}"
    );
    assert!(text.contains("{\\an8}"));
    assert!(text.contains("<font color=\"#ffff00\">"));

    // download_in_progress → translate_queued → translate_in_progress → done.
    let (_, events) = daemon.get(&format!(
        "/api/v1/jobs/{}/events",
        job["id"].as_str().unwrap()
    ));
    let mut kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    kinds.reverse();
    let order = [
        "subtitle.requested",
        "subtitle.download.started",
        "subtitle.translate.requested",
        "subtitle.translate.started",
        "subtitle.translated",
        "subtitle.written",
    ];
    let mut at = 0;
    for kind in &kinds {
        if at < order.len() && *kind == order[at] {
            at += 1;
        }
    }
    assert_eq!(at, order.len(), "{kinds:?}");
    let event = translated_event(&daemon, job["id"].as_str().unwrap());
    let detail = &event["payload"]["detail"];
    assert_eq!(event["payload"]["producer"], "deepl");
    assert_eq!(detail["machine_translated"], true);
    assert_eq!(detail["source"]["kind"], "sidecar");
    assert_eq!(detail["from"], "en");
    assert_eq!(detail["cues"], 130);
    // 130 cues in batches of 50: 3 requests, every one counted.
    assert_eq!(detail["requests"], 3, "{detail}");
    assert_eq!(fake.requests("/v2/translate").len(), 3);
    assert!(detail["characters"].as_u64().unwrap() > 1000);
    assert_eq!(detail["failed_cues"], json!([]));
}

#[test]
fn the_cache_makes_a_second_film_with_shared_lines_cheaper() {
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "libretranslate", "");
    let first = film("first", 120, 90);
    let second = film("second", 120, 90);
    let one = put_film(&sandbox, "First (2001)", &first);
    let two = put_film(&sandbox, "Second (2002)", &second);
    let daemon = sandbox.serve();

    let job = request(&daemon, &one, |j| j["status"] == "done");
    let paid_first = fake.count();
    let detail_first =
        translated_event(&daemon, job["id"].as_str().unwrap())["payload"]["detail"].clone();
    let job = request(&daemon, &two, |j| j["status"] == "done");
    let paid_second = fake.count() - paid_first;
    let detail =
        translated_event(&daemon, job["id"].as_str().unwrap())["payload"]["detail"].clone();
    check_translation(&second, &two.with_extension("fr.srt"));
    assert!(
        paid_second < paid_first,
        "second film: {paid_second} requests, first: {paid_first}"
    );
    assert_eq!(detail["cached_cues"], 90, "{detail}");
    assert!(detail["characters"].as_u64() < detail_first["characters"].as_u64());

    // Across a restart too: a third film of shared lines only costs nothing.
    drop(daemon);
    let third = film("third", 60, 60);
    let three = put_film(&sandbox, "Third (2003)", &third);
    let before = fake.count();
    let daemon = sandbox.serve();
    let job = request(&daemon, &three, |j| j["status"] == "done");
    assert_eq!(fake.count(), before, "everything came from the cache");
    let detail =
        translated_event(&daemon, job["id"].as_str().unwrap())["payload"]["detail"].clone();
    assert_eq!(detail["requests"], 0);
    check_translation(&third, &three.with_extension("fr.srt"));
}

#[test]
fn an_exhausted_quota_parks_the_job_and_it_resumes_after_the_reset() {
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", "");
    let source = film("gamma", 150, 0);
    let video = put_film(&sandbox, "Gamma (2022)", &source);
    let daemon = sandbox.serve();
    // The first batch goes through; then the account's quota is spent.
    fake.script([Fault::None, Fault::Quota]);
    let job = request(&daemon, &video, |j| j["status"] == "waiting");
    assert!(
        job["error"].as_str().unwrap().contains("quota exhausted"),
        "{job}"
    );
    assert!(!video.with_extension("fr.srt").exists());
    assert_eq!(fake.count(), 2);

    // The period resets (the fake answers again); the job is woken (as its wake time would).
    let id = job["id"].as_str().unwrap();
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert!(status == 200 || status == 202, "{status} {body}");
    let job = daemon.wait_for_job(id, |j| j["status"] == "done");
    check_translation(&source, Path::new(job["output_path"].as_str().unwrap()));
    // Only what was left was sent: batches 2 and 3.
    assert_eq!(fake.count(), 4);
}

#[test]
fn refused_credentials_fail_at_once_with_the_services_explanation() {
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", "");
    let video = put_film(&sandbox, "Delta (2023)", &film("delta", 10, 0));
    let daemon = sandbox.serve();
    fake.script([Fault::WrongHost]);
    let job = request(&daemon, &video, |j| {
        j["status"] == "failed" || j["status"] == "done"
    });
    assert_eq!(job["status"], "failed", "{job}");
    // One download attempt (it hands over), one translation: no retry is burnt on it.
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(fake.count(), 1);
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("deepl"), "{error}");
    assert!(!video.with_extension("fr.srt").exists());
}

/// A video big enough (128 KiB) to have a movie hash, which the OpenSubtitles fake knows.
fn hashed_video(sandbox: &Sandbox, os: &FakeOs, relative: &str) -> std::path::PathBuf {
    let path = sandbox.library().join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let hash = cuewarden_actors::hash::movie_hash(&path).unwrap().unwrap();
    os.with(|s| s.known_hash = Some(hash));
    path
}

fn keep_results(os: &FakeOs, language: &str) -> Vec<Value> {
    os.with(|s| {
        let all = s.results.clone();
        s.results
            .retain(|r| r["attributes"]["language"] == language);
        all
    })
}

#[test]
fn a_providers_english_candidate_is_translated_and_a_later_human_subtitle_replaces_it() {
    let os = FakeOs::start();
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", &os.config(""));
    let video = hashed_video(
        &sandbox,
        &os,
        "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    // No sidecar, and the provider has only English.
    let all = keep_results(&os, "en");
    let daemon = sandbox.serve();

    let job = request(&daemon, &video, |j| {
        j["status"] == "done" || j["status"] == "failed"
    });
    assert_eq!(job["status"], "done", "{job}");
    let written = video.with_extension("fr.srt");
    let source = parse_srt(SRT.as_bytes()).unwrap();
    check_translation(&source, &written);
    assert!(
        !video.with_extension("en.srt").exists(),
        "the English source is not written: English is not wanted"
    );
    let detail =
        translated_event(&daemon, job["id"].as_str().unwrap())["payload"]["detail"].clone();
    assert_eq!(detail["source"]["kind"], "provider", "{detail}");
    assert_eq!(detail["source"]["provider"], "opensubtitles");

    // Asked again with still no French subtitle anywhere: the machine translation stays,
    // nothing is translated again.
    let paid = fake.count();
    let job = request(&daemon, &video, |j| {
        j["status"] == "skipped" || j["status"] == "done" || j["status"] == "failed"
    });
    assert_eq!(job["status"], "skipped", "{job}");
    assert_eq!(fake.count(), paid);

    // A human French subtitle of this very file appears at the provider: it replaces the
    // machine translation.
    os.with(|s| {
        s.results = all
            .into_iter()
            .filter(|r| r["attributes"]["moviehash_match"] == true)
            .map(|mut r| {
                r["attributes"]["language"] = json!("fr");
                r
            })
            .collect();
        assert!(!s.results.is_empty());
    });
    let job = request(&daemon, &video, |j| {
        j["status"] == "skipped" || j["status"] == "done" || j["status"] == "failed"
    });
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(
        parse_srt(&std::fs::read(&written).unwrap()).unwrap(),
        source
    );
    assert_eq!(fake.count(), paid);
}

/// `ffprobe` and `ffmpeg` stand-ins (the CI has no ffmpeg): the video holds an English PGS
/// track (2, image-based) and an English SubRip track (3), which `ffmpeg -map 0:3 -f srt -`
/// prints.
fn fake_ffmpeg(dir: &Path, srt: &str, with_text_track: bool) {
    use std::os::unix::fs::PermissionsExt;
    let text_track = if with_text_track {
        r#",
  {"index": 3, "codec_name": "subrip", "tags": {"language": "eng"},
   "disposition": {"forced": 0, "hearing_impaired": 0}}"#
    } else {
        ""
    };
    let probe = format!(
        r#"{{"streams": [
  {{"index": 2, "codec_name": "hdmv_pgs_subtitle", "tags": {{"language": "eng"}},
   "disposition": {{"forced": 0, "hearing_impaired": 0}}}}{text_track}
]}}"#
    );
    let scripts = [
        (
            "ffprobe",
            format!(
                "#!/bin/sh\ncase \"$*\" in *'-select_streams s'*'-of json'*) ;; *) exit 2 ;; esac\ncat <<'EOF'\n{probe}\nEOF\n"
            ),
        ),
        (
            "ffmpeg",
            format!(
                "#!/bin/sh\ncase \"$*\" in *'-map 0:3 -f srt -'*) ;; *) echo \"bad arguments: $*\" >&2; exit 1 ;; esac\ncat <<'EOF'\n{srt}EOF\n"
            ),
        ),
    ];
    for (name, text) in scripts {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn an_embedded_english_text_track_is_extracted_and_translated_image_tracks_are_skipped() {
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", "");
    let source = film("embedded", 40, 0);
    let bin = sandbox.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    fake_ffmpeg(&bin, &write_srt(&source), true);
    let video = sandbox.video("Epsilon (2024)/Epsilon (2024).mkv");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let daemon = common::Daemon::start(&sandbox.config(), &[("PATH", &path)]);
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done" || j["status"] == "failed");
    assert_eq!(job["status"], "done", "{job}");
    check_translation(&source, &video.with_extension("fr.srt"));
    let (_, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    let translated = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "subtitle.translated")
        .cloned()
        .unwrap();
    assert_eq!(
        translated["payload"]["detail"]["source"],
        json!({"kind": "embedded", "track": "subtitle track 3 (subrip, en)"})
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn an_image_based_track_is_not_a_source_and_the_job_says_why() {
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", "");
    let bin = sandbox.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    fake_ffmpeg(&bin, "", false);
    let video = sandbox.video("Zeta (2025)/Zeta (2025).mkv");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let daemon = common::Daemon::start(&sandbox.config(), &[("PATH", &path)]);
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("subtitle track 2 (hdmv_pgs_subtitle, en) is image-based"),
        "{error}"
    );
    assert_eq!(fake.count(), 0);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn batches_answered_with_a_dropped_merged_extra_empty_or_reordered_cue_are_never_written_wrong() {
    for kind in ["deepl", "libretranslate", "openai"] {
        let fake = Fake::start();
        let sandbox = sandbox(&fake, kind, "");
        let source = film(kind, 60, 0);
        let video = put_film(&sandbox, "Eta (2026)", &source);
        let daemon = sandbox.serve();
        fake.script([
            Fault::Drop,
            Fault::Merge,
            Fault::Extra,
            Fault::Empty,
            Fault::Reorder,
            Fault::Truncated,
        ]);
        let job = request(&daemon, &video, |j| {
            j["status"] == "done" || j["status"] == "failed"
        });
        assert_eq!(job["status"], "done", "{kind}: {job}");
        check_translation(&source, &video.with_extension("fr.srt"));
        let detail =
            translated_event(&daemon, job["id"].as_str().unwrap())["payload"]["detail"].clone();
        assert_eq!(detail["failed_cues"], json!([]), "{kind}: {detail}");
        assert!(
            detail["halvings"].as_u64().unwrap() >= 1,
            "{kind}: {detail}"
        );
    }
}

#[test]
fn the_monthly_budget_parks_the_job_instead_of_overspending_and_a_429_is_waited_out() {
    let fake = Fake::start();
    // About two batches' worth of characters.
    let sandbox = sandbox(&fake, "libretranslate", "monthly_character_budget = 4000\n");
    let source = film("theta", 150, 0);
    let video = put_film(&sandbox, "Theta (2027)", &source);
    let daemon = sandbox.serve();
    fake.script([Fault::RateLimited(1)]);
    let job = request(&daemon, &video, |j| j["status"] == "waiting");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("monthly character budget"), "{error}");
    assert!(!video.with_extension("fr.srt").exists());
    let sent = fake.with(|s| s.characters);
    assert!(sent <= 4000, "{sent} characters sent over a budget of 4000");
    // The 429 was waited out and its batch sent again; two batches fit the budget (about
    // 1,500 characters each), the third is not sent.
    assert_eq!(fake.requests("/translate").len(), 3);
    assert!(sent > 2000, "{sent}");
}

#[test]
fn a_downloaded_source_is_kept_while_its_job_waits_and_not_downloaded_again() {
    let os = FakeOs::start();
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", &os.config(""));
    let video = hashed_video(
        &sandbox,
        &os,
        "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    keep_results(&os, "en");
    let daemon = sandbox.serve();
    fake.script([Fault::Quota]);
    let job = request(&daemon, &video, |j| j["status"] == "waiting");
    assert!(job["error"].as_str().unwrap().contains("quota"), "{job}");
    let downloads = os.count("/download");
    assert_eq!(downloads, 1);

    let id = job["id"].as_str().unwrap();
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert!(status == 200 || status == 202, "{status} {body}");
    let job = daemon.wait_for_job(id, |j| j["status"] == "done");
    check_translation(
        &parse_srt(SRT.as_bytes()).unwrap(),
        Path::new(job["output_path"].as_str().unwrap()),
    );
    assert_eq!(
        os.count("/download"),
        downloads,
        "the source was downloaded again"
    );
}

#[test]
fn the_written_translation_has_its_provenance() {
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", "");
    let video = put_film(&sandbox, "Iota (2028)", &film("iota", 12, 0));
    let daemon = sandbox.serve();
    let job = request(&daemon, &video, |j| j["status"] == "done");
    let subtitle = &job["subtitle"];
    assert_eq!(subtitle["provider"], "deepl", "{job}");
    assert_eq!(subtitle["machine_translated"], true, "{job}");
    let bytes = std::fs::read(video.with_extension("fr.srt")).unwrap();
    assert_eq!(
        subtitle["content_hash"],
        cuewarden_actors::provenance::content_hash(&bytes),
        "{job}"
    );
}

/// Opens the store the in-process daemon just closed (its HTTP workers may drop their last
/// handle a moment after `stop` returned).
fn store_after(sandbox: &Sandbox, daemon: Served) -> cuewarden_actors::Store {
    daemon.stop().unwrap();
    let start = std::time::Instant::now();
    loop {
        match cuewarden_actors::Store::open(&sandbox.dir.path().join("data")) {
            Ok(store) => return store,
            Err(cuewarden_actors::StoreError::Locked { .. })
                if start.elapsed() < common::DEADLINE =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => panic!("cannot open the store: {err}"),
        }
    }
}

#[test]
fn a_job_that_ends_without_a_translation_leaves_no_kept_source() {
    let os = FakeOs::start();
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", &os.config(""));
    let failing = hashed_video(
        &sandbox,
        &os,
        "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    keep_results(&os, "en");
    let daemon = sandbox.serve();
    // Refused credentials after the source was downloaded: failed for good.
    fake.script([Fault::WrongHost]);
    let failed = request(&daemon, &failing, |j| {
        j["status"] == "failed" || j["status"] == "done"
    });
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(os.count("/download"), 1, "the source was downloaded");

    // A quota parks a second one with its source kept; then the user cancels it.
    let other = sandbox.library().join("Other (2020)/Other.2020.mkv");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::copy(&failing, &other).unwrap();
    fake.script([Fault::Quota]);
    let waiting = request(&daemon, &other, |j| j["status"] == "waiting");
    let waiting_id = waiting["id"].as_str().unwrap().to_owned();
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{waiting_id}/cancel"), &json!({}));
    assert_eq!(status, 200, "{body}");
    let failed_id = failed["id"].as_str().unwrap().to_owned();

    let store = store_after(&sandbox, daemon);
    for id in [failed_id, waiting_id] {
        let key = format!("translation_source.{id}");
        assert_eq!(store.state(&key).unwrap(), None, "{key} is left");
    }
}

#[test]
fn a_rejected_machine_translation_is_removed_and_the_job_waits_for_a_human_subtitle() {
    let os = FakeOs::start();
    let fake = Fake::start();
    let sandbox = sandbox(&fake, "deepl", &os.config(""));
    let video = hashed_video(
        &sandbox,
        &os,
        "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
    );
    let all = keep_results(&os, "en");
    let daemon = sandbox.serve();
    let job = request(&daemon, &video, |j| {
        j["status"] == "done" || j["status"] == "failed"
    });
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["subtitle"]["machine_translated"], true, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let written = video.with_extension("fr.srt");
    let hash = job["subtitle"]["content_hash"].clone();
    let paid = fake.count();
    let searches = os.count("/subtitles");

    // "This translation is bad; get me a real one."
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["blacklisted"]["provider"], "deepl", "{body}");
    assert_eq!(body["blacklisted"]["id"], "", "{body}");
    assert_eq!(body["blacklisted"]["content_hash"], hash, "{body}");
    assert_eq!(body["blacklisted"]["machine_translation"], true, "{body}");
    assert_eq!(body["removed"], true, "{body}");
    assert!(!written.exists(), "the rejected translation is removed");

    // The providers are searched again (still only English there); it is not translated
    // again, and the wait says why.
    let job = daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let reason = job["error"].as_str().unwrap();
    assert!(reason.contains("no fr subtitle found"), "{reason}");
    assert!(
        reason.contains("not machine-translated again") && reason.contains("human subtitle"),
        "{reason}"
    );
    assert!(
        os.count("/subtitles") > searches,
        "no search after the reject"
    );
    assert_eq!(fake.count(), paid, "translated again");
    assert!(!written.exists());
    let (_, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    let rejected = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "subtitle.rejected")
        .cloned()
        .unwrap();
    assert_eq!(rejected["payload"]["provider"], "deepl", "{rejected}");
    assert_eq!(rejected["payload"]["machine_translation"], true);
    assert_eq!(rejected["payload"]["removed"], true);
    assert_eq!(rejected["payload"]["content_hash"], hash);

    // Asked again, the job stays waiting, untranslated.
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["jobs"][0]["id"], id.as_str(), "{body}");
    assert_eq!(fake.count(), paid);

    // The job's blacklist shows the rejected translation; clearing it lets a retry
    // translate again (from the cache: nothing is paid twice).
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/blacklist"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["entries"][0]["machine_translation"], true, "{list}");
    assert_eq!(list["entries"][0]["provider"], "deepl", "{list}");
    let (client, _) = daemon.raw();
    let (status, body) = daemon.call(
        client
            .delete(format!("{}/api/v1/jobs/{id}/blacklist", daemon.base))
            .header("X-Api-Key", common::KEY),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cleared"], 1, "{body}");
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/retry"), &json!({}));
    assert_eq!(status, 202, "{body}");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(job["subtitle"]["machine_translated"], true, "{job}");
    assert!(written.exists());
    let (status, body) = daemon.post(&format!("/api/v1/jobs/{id}/reject"), &json!({}));
    assert_eq!(status, 202, "{body}");
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    assert!(!written.exists());

    // A human French subtitle appears; the user chooses it: done, with it.
    os.with(|s| {
        s.results = all
            .into_iter()
            .map(|mut r| {
                r["attributes"]["language"] = json!("fr");
                r
            })
            .collect();
    });
    let (status, list) = daemon.get(&format!("/api/v1/jobs/{id}/candidates"));
    assert_eq!(status, 200, "{list}");
    let first = list["candidates"][0].clone();
    assert_eq!(first["blacklisted"], false, "{list}");
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{id}/choose"),
        &json!({"provider": first["provider"], "id": first["id"]}),
    );
    assert_eq!(status, 200, "{body}");
    let job = daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(job["subtitle"]["machine_translated"], false, "{job}");
    assert_eq!(job["subtitle"]["chosen_by"], "user", "{job}");
    assert!(written.exists());
    assert_eq!(fake.count(), paid);
}
