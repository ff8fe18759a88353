//! Notifications through the daemon: a subtitle written by the OpenSubtitles provider (its
//! loopback fake) becomes one notify job per enabled target, each sent to a loopback fake
//! that speaks the target's protocol (tests/fake_notify), and email to a real SMTP server
//! on loopback (Python's aiosmtpd, installed by tests/tools/ensure-aiosmtpd.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_notify;
mod fake_opensubtitles;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, Sandbox};
use fake_notify::{FakeTargets, Reply};
use fake_opensubtitles::FakeOs;
use serde_json::{Value, json};

const MOVIE: &str = "Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv";
/// Longer than common's: a burst of 40 downloads is paced at the provider's 5 requests/s.
const LONG: Duration = Duration::from_secs(90);

/// A sandbox with the OpenSubtitles fake, fast notify retries, `min_score = 0` (any
/// candidate does) and the given `[notify.*]` sections.
fn sandbox(os: &FakeOs, notify: &str) -> Sandbox {
    let sandbox = Sandbox::new(&format!(
        "[jobs]\nretry_min_delay_secs = 1\nretry_max_delay_secs = 2\n{}\
         [notify]\nretry_seconds = 1\nretry_max_seconds = 2\ntimeout_seconds = 2\n{notify}",
        os.config("")
    ));
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    let config = config.replace(
        "translate_from = []\n",
        "translate_from = []\nmin_score = 0\n",
    );
    std::fs::write(sandbox.config(), config).unwrap();
    sandbox
}

fn request(daemon: &Api, video: &Path) -> String {
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["en"]}),
    );
    assert_eq!(status, 202, "{body}");
    body["jobs"][0]["id"].as_str().unwrap().to_owned()
}

fn wait_until(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < LONG, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Every notify job (origin `notifier`), oldest first.
fn notify_jobs(daemon: &Api) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/jobs?limit=500&cursor={c}"),
            None => "/api/v1/jobs?limit=500".to_owned(),
        };
        let (status, body) = daemon.get(&path);
        assert_eq!(status, 200, "{body}");
        out.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|j| j["origin"] == "notifier")
                .cloned(),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

fn job_of<'a>(jobs: &'a [Value], target: &str) -> &'a Value {
    jobs.iter()
        .find(|j| j["notify"]["target"] == target)
        .unwrap_or_else(|| panic!("no notify job for {target} in {jobs:#?}"))
}

/// A job's events, oldest first (the API lists them newest first).
fn event_types(daemon: &Api, id: &str) -> Vec<(String, Value)> {
    let (status, body) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["payload"].clone()))
        .collect()
}

/// A real SMTP server on loopback (aiosmtpd) writing each accepted mail into a folder.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl SmtpSink {
    fn start(maildir: PathBuf) -> Self {
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools");
        let ensure = Command::new("sh")
            .arg(tools.join("ensure-aiosmtpd.sh"))
            .output()
            .expect("cannot run tests/tools/ensure-aiosmtpd.sh (needs sh and python3)");
        assert!(
            ensure.status.success(),
            "aiosmtpd could not be installed: {}",
            String::from_utf8_lossy(&ensure.stderr)
        );
        let pythonpath = String::from_utf8(ensure.stdout).unwrap().trim().to_owned();
        let mut child = Command::new("python3")
            .arg(tools.join("smtp_sink.py"))
            .arg(&maildir)
            .env("PYTHONPATH", pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start python3 tests/tools/smtp_sink.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("smtp_sink.py said {line:?}"))
            .parse()
            .unwrap();
        Self {
            child,
            port,
            maildir,
        }
    }

    fn config(&self) -> String {
        format!(
            "[notify.email]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\n\
             from = \"cuewarden@example.test\"\nto = [\"owner@example.test\"]\n",
            self.port
        )
    }

    fn mails(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(&self.maildir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HTTP_TARGETS: [&str; 7] = [
    "apprise", "discord", "gotify", "kodi", "ntfy", "plex", "pushover",
];

#[test]
fn one_written_subtitle_notifies_every_enabled_target_exactly_once() {
    let os = FakeOs::start();
    let smtp_dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start(smtp_dir.path().to_owned());
    // Plex's movie section holds the sandbox's library: known once the sandbox exists.
    let targets = FakeTargets::start(PathBuf::new());
    let sandbox = sandbox(
        &os,
        &format!("{}{}", targets.config(&HTTP_TARGETS, &[]), smtp.config()),
    );
    targets.state.lock().unwrap().plex_root = sandbox.library();
    let video = sandbox.video(MOVIE);
    let folder = video.parent().unwrap().to_owned();
    let daemon = sandbox.serve();

    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    wait_until("every notify job is done", || {
        let jobs = notify_jobs(&daemon);
        jobs.len() == 8 && jobs.iter().all(|j| j["status"] == "done")
    });
    let jobs = notify_jobs(&daemon);
    for job in &jobs {
        assert_eq!(job["attempts"], 1, "{job}");
        assert_eq!(job["priority"], "normal", "{job}");
        assert_eq!(job["notify"]["event"], "written", "{job}");
        assert_eq!(job["notify"]["items"][0]["job_id"], id.as_str(), "{job}");
        let events: Vec<String> = event_types(&daemon, job["id"].as_str().unwrap())
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(events, ["notify.queued", "notify.sent"], "{job}");
    }
    // Nothing more arrives after a few more polls of the outbox.
    std::thread::sleep(Duration::from_millis(2500));
    let line = "Example Movie (2019): en from opensubtitles, score";
    for target in ["apprise", "discord", "gotify", "kodi", "ntfy", "pushover"] {
        assert_eq!(
            targets.hits(target).len(),
            1,
            "{target}: {:#?}",
            targets.hits(target)
        );
    }

    let discord = &targets.hits("discord")[0].json();
    assert_eq!(discord["content"], "Subtitle written");
    assert_eq!(discord["embeds"][0]["title"], "Subtitle written");
    assert!(
        discord["embeds"][0]["description"]
            .as_str()
            .unwrap()
            .starts_with(line),
        "{discord}"
    );
    assert_eq!(discord["allowed_mentions"], json!({"parse": []}));

    let ntfy = &targets.hits("ntfy")[0];
    assert_eq!(ntfy.json()["topic"], "subdaemon");
    assert_eq!(ntfy.json()["priority"], 4);
    assert!(ntfy.json()["message"].as_str().unwrap().starts_with(line));

    let gotify = &targets.hits("gotify")[0];
    assert_eq!(gotify.json()["title"], "Subtitle written");
    assert_eq!(gotify.json()["priority"], 5);

    let pushover = targets.hits("pushover")[0].form();
    assert_eq!(pushover["title"], "Subtitle written");
    assert!(pushover["message"].starts_with(line), "{pushover:?}");

    let apprise = targets.hits("apprise")[0].json();
    assert_eq!(apprise["urls"], "json://127.0.0.1/hook");
    assert_eq!(apprise["type"], "success");

    let kodi = targets.hits("kodi")[0].json();
    assert_eq!(kodi["method"], "VideoLibrary.Scan");
    assert_eq!(kodi["params"]["showdialogs"], false);
    assert_eq!(
        kodi["params"]["directory"],
        format!("{}/", folder.display())
    );

    let plex = targets.hits("plex");
    assert_eq!(plex.len(), 2, "{plex:#?}");
    assert_eq!(plex[0].path, "/plex/library/sections");
    assert_eq!(plex[1].path, "/plex/library/sections/1/refresh");
    let query: Vec<(String, String)> = url::form_urlencoded::parse(plex[1].query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(query, [("path".to_owned(), folder.display().to_string())]);

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0].contains("X-Envelope-To: owner@example.test"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("Subject: Subtitle written"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains(line), "{}", mails[0]);
}

#[test]
fn a_failing_target_is_retried_on_its_own_while_others_succeed() {
    let os = FakeOs::start();
    let targets = FakeTargets::start(PathBuf::new());
    // Discord: 500, then 429 with retry_after; ntfy: no answer within the timeout once;
    // Kodi: a JSON-RPC error (HTTP 200), which is final. Pushover is disabled and Apprise
    // only hears of failures: neither hears of a written subtitle.
    targets.script("discord", &[Reply::Status(500), Reply::RateLimited]);
    targets.script("ntfy", &[Reply::Hang(Duration::from_secs(4))]);
    targets.script("kodi", &[Reply::RpcError(-32602)]);
    let config = targets.config(
        &["apprise", "discord", "gotify", "kodi", "ntfy", "pushover"],
        &[
            ("pushover", "enabled = false"),
            ("apprise", "on = [\"failed\"]"),
        ],
    );
    let sandbox = sandbox(&os, &config);
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    wait_until("discord, ntfy, gotify and kodi are through", || {
        let jobs = notify_jobs(&daemon);
        jobs.len() == 4
            && jobs
                .iter()
                .all(|j| j["status"] == "done" || j["status"] == "failed")
    });
    let jobs = notify_jobs(&daemon);

    let gotify = job_of(&jobs, "gotify");
    assert_eq!(
        (gotify["status"].as_str(), gotify["attempts"].as_u64()),
        (Some("done"), Some(1))
    );
    assert_eq!(targets.hits("gotify").len(), 1);

    let discord = job_of(&jobs, "discord");
    assert_eq!(discord["status"], "done", "{discord}");
    assert_eq!(discord["attempts"], 3, "{discord}");
    assert_eq!(targets.hits("discord").len(), 3);
    let events = event_types(&daemon, discord["id"].as_str().unwrap());
    let kinds: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "notify.queued",
            "notify.failed",
            "notify.failed",
            "notify.sent"
        ]
    );
    assert!(
        events[1].1["error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 500"),
        "{events:?}"
    );
    assert_eq!(events[1].1["will_retry"], true);
    assert!(events[1].1["retry_at"].is_string(), "{events:?}");
    assert!(
        events[2].1["error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 429"),
        "{events:?}"
    );
    assert_eq!(events[3].1["target"], "discord");

    let ntfy = job_of(&jobs, "ntfy");
    assert_eq!(ntfy["status"], "done", "{ntfy}");
    assert_eq!(ntfy["attempts"], 2, "{ntfy}");
    let events = event_types(&daemon, ntfy["id"].as_str().unwrap());
    assert!(
        events[1].1["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 2s"),
        "{events:?}"
    );

    let kodi = job_of(&jobs, "kodi");
    assert_eq!(kodi["status"], "failed", "{kodi}");
    assert_eq!(kodi["attempts"], 1, "{kodi}");
    assert!(
        kodi["error"]
            .as_str()
            .unwrap()
            .contains("JSON-RPC error -32602"),
        "{kodi}"
    );
    assert_eq!(targets.hits("kodi").len(), 1);
    // A notify job is not the API's to retry or cancel.
    let (status, body) = daemon.post(
        &format!("/api/v1/jobs/{}/retry", kodi["id"].as_str().unwrap()),
        &json!({}),
    );
    assert_eq!(status, 409, "{body}");

    assert!(targets.hits("pushover").is_empty());
    assert!(targets.hits("apprise").is_empty());
}

#[test]
fn the_digest_groups_a_burst_of_forty_into_one_message() {
    let os = FakeOs::start();
    os.with(|s| s.quota = 1000);
    let targets = FakeTargets::start(PathBuf::new());
    let config = targets.config(&["ntfy"], &[("ntfy", "digest_seconds = 3")]);
    let sandbox = sandbox(&os, &config);
    let videos: Vec<PathBuf> = (1..=40)
        .map(|e| sandbox.video(&format!("Show/Season 1/Show.S01E{e:02}.720p.WEB.mkv")))
        .collect();
    let daemon = sandbox.serve();
    let ids: Vec<String> = videos.iter().map(|v| request(&daemon, v)).collect();
    for id in &ids {
        let start = Instant::now();
        loop {
            let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
            if job["status"] == "done" {
                break;
            }
            assert!(start.elapsed() < LONG, "{job}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    wait_until("the digest is sent", || !targets.hits("ntfy").is_empty());
    // One more quiet window: nothing else is sent.
    std::thread::sleep(Duration::from_millis(4000));
    let hits = targets.hits("ntfy");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let message = hits[0].json();
    assert_eq!(message["title"], "40 subtitles written");
    let text = message["message"].as_str().unwrap();
    assert_eq!(text.lines().count(), 26, "{text}");
    assert!(
        text.lines().next().unwrap().starts_with("Show S01E"),
        "{text}"
    );
    assert!(text.ends_with("… and 15 more"), "{text}");
    let jobs = notify_jobs(&daemon);
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["notify"]["items"].as_array().unwrap().len(), 40);
}

#[test]
fn kill_9_during_a_notification_still_notifies_after_the_restart() {
    let os = FakeOs::start();
    let targets = FakeTargets::start(PathBuf::new());
    // The first send never gets its answer before the daemon dies.
    targets.script("discord", &[Reply::Hang(Duration::from_secs(60))]);
    let sandbox = sandbox(&os, &targets.config(&["discord"], &[]));
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    std::fs::write(
        sandbox.config(),
        config.replace("timeout_seconds = 2", "timeout_seconds = 120"),
    )
    .unwrap();
    let video = sandbox.video(MOVIE);

    let daemon = sandbox.start();
    let id = request(&daemon, &video);
    daemon.wait_for_job(&id, |j| j["status"] == "done");
    wait_until("the first send reaches Discord", || {
        targets.hits("discord").len() == 1
    });
    let log = daemon.log_text();
    daemon.crash();

    let daemon = sandbox.start();
    wait_until("the notification is sent after the restart", || {
        let jobs = notify_jobs(&daemon);
        jobs.len() == 1 && jobs[0]["status"] == "done"
    });
    assert_eq!(targets.hits("discord").len(), 2);
    let jobs = notify_jobs(&daemon);
    assert_eq!(jobs[0]["attempts"], 1, "{}", jobs[0]);
    let log = format!("{log}{}", daemon.log_text());
    assert!(log.contains("resuming notify jobs"), "{log}");
    assert!(!log.contains("discord-webhook-secret"), "{log}");
}

#[test]
fn a_job_failed_for_good_notifies_only_the_targets_listening_for_failures() {
    let os = FakeOs::start();
    os.with(|s| s.search_default = fake_opensubtitles::Behaviour::Status(400));
    let targets = FakeTargets::start(PathBuf::new());
    let config = targets.config(
        &["gotify", "ntfy"],
        &[("gotify", "on = [\"written\", \"failed\"]")],
    );
    let sandbox = sandbox(&os, &config);
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    std::fs::write(
        sandbox.config(),
        config.replace("[jobs]\n", "[jobs]\nmax_attempts = 1\n"),
    )
    .unwrap();
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video);
    let job = daemon.wait_for_job(&id, |j| j["status"] == "failed");
    wait_until("gotify hears of the failure", || {
        let jobs = notify_jobs(&daemon);
        jobs.len() == 1 && jobs[0]["status"] == "done"
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        targets.hits("ntfy").is_empty(),
        "ntfy listens for written subtitles only"
    );
    let hits = targets.hits("gotify");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let message = hits[0].json();
    assert_eq!(message["title"], "Subtitle job failed");
    let error = job["error"].as_str().unwrap();
    assert_eq!(
        message["message"],
        format!("Example Movie (2019): en failed: {error}")
    );
    let jobs = notify_jobs(&daemon);
    assert_eq!(jobs[0]["notify"]["event"], "failed");
    assert_eq!(jobs[0]["notify"]["items"][0]["error"], error);
}

#[test]
fn an_upgrade_notifies_only_the_targets_listening_for_upgrades() {
    let os = FakeOs::start();
    // At first only the weak candidate (another release, SDH) is offered, with its own text.
    let all = os.with(|s| {
        s.files.insert(
            6200002,
            "1\n00:00:01,000 --> 00:00:02,500\n[DOOR CREAKS] Hello there.\n\n".to_owned(),
        );
        let all = s.results.clone();
        s.results.retain(|r| r["id"] != "5100001");
        all
    });
    let targets = FakeTargets::start(PathBuf::new());
    let config = targets.config(&["gotify", "ntfy"], &[("gotify", "on = [\"upgraded\"]")]);
    let sandbox = sandbox(&os, &config);
    let video = sandbox.video(MOVIE);
    let daemon = sandbox.serve();

    let id = request(&daemon, &video);
    let weak = daemon.wait_for_job(&id, |j| j["status"] == "done");
    assert_eq!(weak["subtitle"]["candidate_id"], "6200002", "{weak}");
    wait_until("ntfy hears of the written subtitle", || {
        targets.hits("ntfy").len() == 1
    });
    assert!(
        targets.hits("gotify").is_empty(),
        "gotify listens for upgrades only"
    );

    // The better one appears; the scheduler's upgrade task takes it.
    os.with(|s| s.results = all);
    let (status, body) = daemon.post("/api/v1/schedule/upgrade/run", &json!({}));
    assert_eq!(status, 202, "{body}");
    wait_until("the subtitle is upgraded", || {
        let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
        job["subtitle"]["chosen_by"] == "upgrade"
    });
    wait_until("gotify hears of the upgrade", || {
        targets.hits("gotify").len() == 1
    });
    let message = targets.hits("gotify")[0].json();
    assert_eq!(message["title"], "Subtitle upgraded", "{message}");
    let upgraded: Vec<Value> = notify_jobs(&daemon)
        .into_iter()
        .filter(|j| j["notify"]["event"] == "upgraded")
        .collect();
    assert_eq!(upgraded.len(), 1, "{upgraded:#?}");
    assert_eq!(upgraded[0]["notify"]["target"], "gotify");
    assert_eq!(upgraded[0]["notify"]["items"][0]["job_id"], id.as_str());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        targets.hits("ntfy").len(),
        1,
        "ntfy listens for written only"
    );
}
