//! Process-level behaviour: crash durability, graceful shutdown, exit codes, CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::process::Command;

use common::{Daemon, KEY, Sandbox, binary};
use serde_json::json;

#[test]
fn every_accepted_request_survives_kill_9_and_resumes() {
    // One download slot, so most jobs are still queued when the process dies.
    let sandbox = Sandbox::new("[jobs]\nmax_concurrent_downloads = 1\n");
    let daemon = sandbox.start();
    const REQUESTS: usize = 120;
    let videos: Vec<_> = (0..REQUESTS)
        .map(|n| sandbox.video(&format!("m{n}/m{n}.mkv")))
        .collect();
    let (client, runtime) = daemon.raw();
    let accepted: Vec<String> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for video in &videos {
            let request = client
                .post(format!("{}/api/v1/subtitles", daemon.base))
                .header("X-Api-Key", KEY)
                .json(&json!({"path": video, "languages": ["fr"]}))
                .send();
            tasks.push(request);
        }
        let mut ids = Vec::new();
        for response in futures_util::future::join_all(tasks).await {
            let response = response.unwrap();
            assert_eq!(response.status(), 202);
            let body: serde_json::Value = response.json().await.unwrap();
            ids.push(body["jobs"][0]["id"].as_str().unwrap().to_owned());
        }
        ids
    });
    daemon.crash();

    let daemon = sandbox.start();
    let stored = daemon.all_job_ids();
    let unique: HashSet<_> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no job duplicated");
    assert_eq!(
        unique,
        accepted.iter().collect(),
        "every accepted job is in the store"
    );
    for id in &accepted {
        let (_, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
        let requested = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "subtitle.requested")
            .count();
        assert_eq!(requested, 1, "job {id}: {events}");
    }
    // Unfinished jobs resume: each one runs again after the restart.
    for id in &accepted {
        daemon.wait_for_job(id, |j| j["status"] == "waiting");
    }
}

#[test]
fn sigterm_stops_gracefully_and_a_restart_keeps_the_jobs() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("g.mkv");
    let daemon = sandbox.start();
    let (_, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let (status, log) = daemon.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("store closed"), "{log}");

    let daemon = sandbox.start();
    let (status, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(status, 200);
    assert_eq!(job["status"], "waiting");
}

/// The packaged unit is `Type=notify`: systemd learns READY=1 once the API serves, and
/// STOPPING=1 when a SIGTERM begins the shutdown.
#[test]
fn systemd_is_told_when_the_daemon_is_ready_and_when_it_stops() {
    let sandbox = Sandbox::new("");
    let socket_path = sandbox.config().with_file_name("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    expect_ready_and_stopping(&sandbox, socket, socket_path.to_str().unwrap());
}

/// systemd may also hand out a socket in the abstract namespace (`@name`).
#[test]
fn systemd_notification_reaches_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let sandbox = Sandbox::new("");
    let name = format!("cuewarden-test-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&address).unwrap();
    expect_ready_and_stopping(&sandbox, socket, &format!("@{name}"));
}

fn expect_ready_and_stopping(
    sandbox: &Sandbox,
    socket: std::os::unix::net::UnixDatagram,
    notify_socket: &str,
) {
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let daemon = Daemon::start(&sandbox.config(), &[("NOTIFY_SOCKET", notify_socket)]);
    let mut buffer = [0u8; 256];
    let n = socket.recv(&mut buffer).expect("READY=1 within 30 s");
    assert_eq!(&buffer[..n], b"READY=1");
    // Ready means serving.
    assert_eq!(daemon.get("/health").0, 200);

    let (status, log) = daemon.terminate();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    let n = socket.recv(&mut buffer).expect("STOPPING=1");
    assert_eq!(&buffer[..n], b"STOPPING=1");
}

#[test]
fn a_second_daemon_on_the_same_store_is_refused() {
    let sandbox = Sandbox::new("");
    let _first = sandbox.start();
    let output = Command::new(binary())
        .args(["run", "--config"])
        .arg(sandbox.config())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("store"), "{stderr}");
}

#[test]
fn check_config_exits_0_for_the_shipped_config_and_2_listing_every_bad_key() {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(format!("{root}/config.toml"))
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nope\"\nport = 1\n[languages]\nwanted = [\"xx1\"]\n[jellyfin]\nurl = \"ftp://x\"\n").unwrap();
    let output = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "server.listen:",
        "server.port: unknown key",
        "languages.wanted[0]:",
        "jellyfin.url:",
        "jellyfin.api_key:",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(key)),
            "no line for {key}:\n{stderr}"
        );
    }

    let output = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(format!("{root}/config.toml"))
        .env("CUEWARDEN__SERVER__LISTEN", "not an address")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "environment overrides are validated too"
    );

    let output = Command::new(binary())
        .args(["check-config", "--config", "/nonexistent/cuewarden.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn cli_requests_and_inspects_through_the_running_daemon() {
    let sandbox = Sandbox::new("");
    let video = sandbox.video("h.mkv");
    // The CLI reads server.listen from the config: give it the port the daemon got.
    let daemon = sandbox.start();
    let port = daemon.base.rsplit(':').next().unwrap().to_owned();
    let text = std::fs::read_to_string(sandbox.config())
        .unwrap()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let cli_config = sandbox.dir.path().join("cli.toml");
    std::fs::write(&cli_config, text).unwrap();
    let run = |args: &[&str]| {
        Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&cli_config)
            .output()
            .unwrap()
    };
    let cli = |args: &[&str]| {
        let output = run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let out = cli(&["request", video.to_str().unwrap(), "--lang", "fr", "de"]);
    assert_eq!(out.lines().count(), 3, "header + two jobs:\n{out}");
    // A reader that closed the pipe (`cuewarden jobs | head -0`) ends the CLI quietly.
    let mut closed = Command::new(binary())
        .args(["jobs", "--config"])
        .arg(&cli_config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(closed.stdout.take());
    let closed = closed.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(closed.status.success(), "{:?}: {stderr}", closed.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.lines().skip(1).all(|l| l.ends_with("h.mkv")),
        "each job line names the video:\n{out}"
    );
    let id = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    daemon.wait_for_job(&id, |j| j["status"] == "waiting");
    let jobs = cli(&["jobs", "--status", "waiting"]);
    assert!(jobs.contains(&id), "{jobs}");
    // One job a page: the first page names the cursor of the second.
    let output = run(&["jobs", "--limit", "1"]);
    let hint = String::from_utf8_lossy(&output.stderr);
    let cursor = hint
        .lines()
        .find_map(|l| l.strip_prefix("more: cuewarden jobs --limit 1 --cursor "))
        .unwrap_or_else(|| panic!("no cursor hint in {hint:?}"));
    // The hint repeats the config it was given, so it can be pasted from any folder.
    let (cursor, config) = cursor.split_once(" --config ").unwrap();
    assert_eq!(config, cli_config.display().to_string());
    let first = String::from_utf8(output.stdout).unwrap();
    let second = cli(&["jobs", "--limit", "1", "--cursor", cursor]);
    assert_eq!((first.lines().count(), second.lines().count()), (2, 2));
    assert_ne!(first.lines().nth(1), second.lines().nth(1));
    let events = cli(&["events", &id]);
    assert!(
        events.contains("subtitle.requested") && events.contains("subtitle.waiting"),
        "{events}"
    );
    let header: Vec<&str> = events.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["SEQ", "AT", "TYPE", "SOURCE", "PAYLOAD"],
        "{events}"
    );
    let column = events.lines().next().unwrap().find("TYPE").unwrap();
    assert!(
        events
            .lines()
            .skip(1)
            .all(|l| l[column..].starts_with("subtitle.") || l[column..].starts_with("job.")),
        "types aligned under their header:\n{events}"
    );
    // The random tail the web page shows is enough to name the job.
    let short = cli(&["events", &id[id.len() - 8..]]);
    assert_eq!(short, events, "an abbreviated id names the same job");

    // Usage errors are caught before any request: exit 2.
    for args in [
        &["jobs", "--limit", "0"][..],
        &["jobs", "--status", "finished"],
        &["request", "/x.mkv", "--lang", "zz"],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
    // Jobs are keyed by the real path, and the table shows it.
    std::os::unix::fs::symlink(sandbox.library(), sandbox.library().join("alias")).unwrap();
    let aliased = sandbox.library().join("alias/h.mkv");
    let out = cli(&["request", aliased.to_str().unwrap(), "--lang", "pt-BR"]);
    let real = video.canonicalize().unwrap();
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .ends_with(&*real.to_string_lossy()),
        "the real path, not the alias:\n{out}"
    );
    assert!(out.lines().nth(1).unwrap().contains(" pt-BR "), "{out}");
    // `--lang fr,de` is two languages, as in the environment overrides.
    let out = cli(&["request", video.to_str().unwrap(), "--lang", "fr,it"]);
    assert_eq!(out.lines().count(), 3, "{out}");

    let output = run(&["events", "not-a-job"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"));
}

/// Runs `cuewarden scan ARGS… --config <sandbox>`.
fn scan(sandbox: &Sandbox, args: &[&std::path::Path]) -> std::process::Output {
    Command::new(binary())
        .arg("scan")
        .args(args)
        .arg("--config")
        .arg(sandbox.config())
        .output()
        .unwrap()
}

#[test]
fn scan_lists_the_videos_missing_a_wanted_language_without_the_daemon() {
    let sandbox = Sandbox::new("");
    sandbox.video("Alpha (2019)/Alpha (2019).mkv");
    std::fs::write(
        sandbox.library().join("Alpha (2019)/Alpha (2019).fr.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nSalut\n",
    )
    .unwrap();
    std::fs::write(
        sandbox
            .library()
            .join("Alpha (2019)/Alpha (2019).English.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nHi\n",
    )
    .unwrap();
    sandbox.video("Beta (2020)/Beta (2020).mp4");
    let output = scan(&sandbox, &[]);
    assert!(output.status.success(), "{output:?}");
    let out = String::from_utf8(output.stdout).unwrap();
    let beta = sandbox
        .library()
        .canonicalize()
        .unwrap()
        .join("Beta (2020)/Beta (2020).mp4");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("{}  missing: fr, en", beta.display()).as_str(),
            "2 videos scanned; 1 lacks 2 subtitles (fr 1, en 1)",
        ],
        "{out}"
    );
    // Nothing was written, and no daemon was needed.
    assert!(!sandbox.dir.path().join("data").exists());

    // See: issue 6 ("1 videos").
    let output = scan(&sandbox, &[&sandbox.library().join("Alpha (2019)")]);
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(out.trim(), "1 video scanned; none lacks a wanted subtitle");
    assert!(output.status.success());

    // What cannot be scanned is an error (exit 1), named on stderr.
    let output = scan(&sandbox, &[&sandbox.library().join("Gone")]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("Gone"));
}

/// See: issue 6 (`scan` exits 1 for a symlink out of the libraries, lists folders under the
/// symlink's path).
#[test]
fn scan_skips_links_out_of_the_libraries_and_lists_real_paths() {
    let sandbox = Sandbox::new("");
    let library = sandbox.library().canonicalize().unwrap();
    let outside = sandbox.dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("Secret.mkv"), b"x").unwrap();
    sandbox.video("Store/Movie (2001)/Movie (2001).mkv");
    std::fs::create_dir_all(library.join("Links")).unwrap();
    std::os::unix::fs::symlink(
        library.join("Store/Movie (2001)"),
        library.join("Links/Movie"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, library.join("Links/Out")).unwrap();

    let output = scan(&sandbox, &[&library.join("Links")]);
    assert!(output.status.success(), "skipped by design: {output:?}");
    let out = String::from_utf8(output.stdout).unwrap();
    let movie = library.join("Store/Movie (2001)/Movie (2001).mkv");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("{}  missing: fr, en", movie.display()).as_str(),
            "1 video scanned; 1 lacks 2 subtitles (fr 1, en 1)",
        ],
        "{out}"
    );
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(
        err.contains(&format!("skipped {}", library.join("Links/Out").display()))
            && err.contains("outside every [[libraries]] folder"),
        "{err}"
    );

    // A PATH given outside every library is still an error.
    let output = scan(&sandbox, &[&outside]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(
        err.contains("elsewhere") && err.contains("outside"),
        "{err}"
    );
}

#[test]
fn scan_json_prints_one_machine_readable_report() {
    let sandbox = Sandbox::new("");
    let library = sandbox.library().canonicalize().unwrap();
    sandbox.video("A (2001)/A (2001).mkv");
    std::fs::write(library.join("A (2001)/A (2001).fr-FR.srt"), "x").unwrap();
    sandbox.video("B (2002)/B (2002).mkv");
    sandbox.video("C (2003)/C (2003).mkv");
    std::fs::write(library.join("C (2003)/C (2003).en.srt"), "x").unwrap();
    std::fs::write(library.join("C (2003)/C (2003).fr.srt"), "x").unwrap();
    std::os::unix::fs::symlink(sandbox.dir.path(), library.join("Up")).unwrap();

    let output = Command::new(binary())
        .args(["scan", "--json", "--config"])
        .arg(sandbox.config())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&output.stdout)));
    let path = |relative: &str| library.join(relative).display().to_string();
    assert_eq!(
        report,
        json!({
            "videos": 3,
            "missing": {"fr": 1, "en": 2},
            "items": [
                {"path": path("A (2001)/A (2001).mkv"), "missing": ["en"]},
                {"path": path("B (2002)/B (2002).mkv"), "missing": ["fr", "en"]},
            ],
            "unreadable": [],
            "outside": [{
                "path": path("Up"),
                "target": sandbox.dir.path().canonicalize().unwrap().display().to_string(),
                "kind": "symlink",
            }],
        })
    );
    // Nothing but the report on stdout: one line.
    assert_eq!(output.stdout.iter().filter(|b| **b == b'\n').count(), 1);
}

#[test]
fn scan_applies_each_library_s_own_languages() {
    let anime = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(&format!(
        "[[libraries]]\npath = {:?}\nlanguages = [\"ja\", \"pt-BR\"]\n",
        anime.path().display().to_string()
    ));
    sandbox.video("Movie/Movie.mkv");
    let show = anime.path().canonicalize().unwrap().join("Show");
    std::fs::create_dir_all(&show).unwrap();
    std::fs::write(show.join("Show - 01.mkv"), "x").unwrap();
    std::fs::write(show.join("Show - 01.pt-BR.srt"), "x").unwrap();
    let output = Command::new(binary())
        .args(["scan", "--json", "--config"])
        .arg(sandbox.config())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let missing_of = |name: &str| {
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"].as_str().unwrap().ends_with(name))
            .map(|i| i["missing"].clone())
    };
    assert_eq!(missing_of("Show - 01.mkv"), Some(json!(["ja"])), "{report}");
    assert_eq!(
        missing_of("Movie.mkv"),
        Some(json!(["fr", "en"])),
        "{report}"
    );
    assert_eq!(report["videos"], 2);
}

/// Unmounts a tmpfs when the test ends, even on failure.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `path`, when this process may (root, mount allowed).
    fn mount(path: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Self(path.to_owned()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk under the store: requests are refused with 507 and a clear message, reads
/// keep working, and once space is freed the store reopens and accepts requests again.
/// Needs to mount a small tmpfs (root); elsewhere it says so and checks nothing.
#[test]
fn a_full_disk_is_a_507_and_the_daemon_recovers_when_space_returns() {
    let sandbox = Sandbox::new("");
    let Some(tmpfs) = Tmpfs::mount(&sandbox.dir.path().join("data"), "300k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let videos: Vec<_> = (0..200)
        .map(|n| sandbox.video(&format!("m{n}/m{n}.mkv")))
        .collect();
    let daemon = sandbox.start();
    let mut accepted = Vec::new();
    let mut refusal = None;
    for video in &videos {
        let (status, body) = daemon.post(
            "/api/v1/subtitles",
            &json!({"path": video, "languages": ["fr", "de", "it", "es"]}),
        );
        match status {
            202 => accepted.extend(
                body["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|j| j["id"].as_str().unwrap().to_owned()),
            ),
            _ => {
                refusal = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refusal.expect("300 KiB filled up");
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_storage");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{body}"
    );
    // Reads still work, and every accepted job is there.
    for id in &accepted {
        assert_eq!(daemon.get(&format!("/api/v1/jobs/{id}")).0, 200);
    }
    // `/health` stays a 200 liveness answer, and says the store refuses writes.
    daemon.assert_degraded("No space left on device");

    tmpfs.resize("8m");
    let video = &videos[199];
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        let (status, body) = daemon.post(
            "/api/v1/subtitles",
            &json!({"path": video, "languages": ["pl"]}),
        );
        if status == 202 {
            break;
        }
        assert_eq!(status, 507, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not recover"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(daemon.get("/health").1["status"], "ok");
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("store reopened"), "{log}");

    // And after a restart, everything accepted is still there.
    let daemon = sandbox.start();
    for id in &accepted {
        assert_eq!(daemon.get(&format!("/api/v1/jobs/{id}")).0, 200, "{id}");
    }
    drop(daemon);
}

/// With no `api_key` configured, the daemon generates one into `data_dir/api_key` (0600)
/// and keeps it; an empty file (a crash or a full disk mid-write) is replaced, not fatal.
#[test]
fn the_generated_api_key_is_kept_and_an_empty_key_file_is_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new("");
    let data = sandbox.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("api_key"), "").unwrap();
    let no_key = [("CUEWARDEN__SERVER__API_KEY", "")];

    let daemon = Daemon::start(&sandbox.config(), &no_key);
    let key = std::fs::read_to_string(data.join("api_key")).unwrap();
    assert_eq!(key.trim().len(), 32, "{key:?}");
    let mode = std::fs::metadata(data.join("api_key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("generated an API key"), "{log}");

    let daemon = Daemon::start(&sandbox.config(), &no_key);
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("generated an API key"), "kept: {log}");
    assert_eq!(std::fs::read_to_string(data.join("api_key")).unwrap(), key);
}

// See: issue "Room for the capabilities": SIGINT during a burst logged
// "cannot persist job changes; workers not started error=the store is closed".
#[test]
fn sigint_during_a_burst_stops_cleanly_and_keeps_every_accepted_job() {
    let sandbox = Sandbox::new("");
    const REQUESTS: usize = 300;
    let videos: Vec<_> = (0..REQUESTS)
        .map(|n| sandbox.video(&format!("m{n}/m{n}.mkv")))
        .collect();
    let daemon = sandbox.start();
    let (client, runtime) = daemon.raw();
    let accepted: Vec<String> = runtime.block_on(async {
        let (answered, mut first) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for video in &videos {
            let request = client
                .post(format!("{}/api/v1/subtitles", daemon.base))
                .header("X-Api-Key", KEY)
                .json(&json!({"path": video, "languages": ["fr", "en", "de"]}))
                .send();
            let answered = answered.clone();
            tasks.push(tokio::spawn(async move {
                let response = request.await.ok()?;
                let _ = answered.send(());
                if response.status() != 202 {
                    return None;
                }
                let body: serde_json::Value = response.json().await.ok()?;
                let ids: Vec<String> = body["jobs"]
                    .as_array()?
                    .iter()
                    .filter_map(|j| j["id"].as_str().map(str::to_owned))
                    .collect();
                Some(ids)
            }));
        }
        // Interrupt while the burst is in flight, with workers starting and finishing.
        for _ in 0..REQUESTS / 3 {
            first.recv().await;
        }
        daemon.signal("-INT");
        let mut ids = Vec::new();
        for task in tasks {
            ids.extend(task.await.unwrap().unwrap_or_default());
        }
        ids
    });
    let (status, log) = daemon.wait();
    assert!(status.success(), "{log}");
    assert!(log.contains("SIGINT received"), "{log}");
    let alarming: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    assert!(
        alarming.is_empty(),
        "a clean shutdown logs nothing alarming: {alarming:#?}"
    );
    assert!(
        !accepted.is_empty(),
        "some requests were accepted before the signal"
    );

    let daemon = sandbox.start();
    for id in &accepted {
        let (status, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
        assert_eq!(status, 200, "accepted job {id} is in the store: {job}");
    }
}

// See: issue "An engine that stays small…": a malformed request logged an ERROR line each.
#[test]
fn a_client_s_malformed_request_is_not_logged_as_an_error_by_default() {
    use std::io::{Read, Write};
    let sandbox = Sandbox::new("");
    let daemon = Daemon::start(
        &sandbox.config(),
        &[
            ("CUEWARDEN_LOG", common::UNSET),
            ("RUST_LOG", common::UNSET),
        ],
    );
    let address = daemon.base.trim_start_matches("http://").to_owned();
    for raw in [
        &b"POST /api/v1/subtitles HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"[..],
        b"GET /health HTTP/1.1\r\nHost: x\r\nX: \x01\x02\r\n\r\n",
    ] {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.write_all(raw).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    let (status, health) = daemon.get("/health");
    assert_eq!(status, 200, "{health}");
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("listening"), "info is still logged: {log}");
    assert!(!log.contains("ERROR"), "{log}");
}

/// The environment of a running process, as `KEY=value` entries.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn environment_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .collect()
}

// See: issue 7 ("memory comes back (glibc arenas: `MALLOC_ARENA_MAX` …)"): outside the
// packaged systemd unit the daemon ran with glibc's 8 arenas per core (28 MB idle, 56 MB
// after 500 replaying streams), and glibc's trim threshold grows with the largest block
// freed (39 MB idle with 100,000 waiting jobs, 30 MB with it fixed). The daemon sets both
// itself, under the same process id, unless told otherwise.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_daemon_tunes_malloc_itself_unless_its_environment_says_otherwise() {
    use common::UNSET;
    const TUNABLES: &str = "glibc.malloc.trim_threshold=65536";
    for (arenas, trim, tunables, expected) in [
        (
            UNSET,
            UNSET,
            UNSET,
            ["MALLOC_ARENA_MAX=2", "MALLOC_TRIM_THRESHOLD_=131072"].as_slice(),
        ),
        (
            "4",
            UNSET,
            UNSET,
            ["MALLOC_ARENA_MAX=4", "MALLOC_TRIM_THRESHOLD_=131072"].as_slice(),
        ),
        (
            "4",
            "1048576",
            UNSET,
            ["MALLOC_ARENA_MAX=4", "MALLOC_TRIM_THRESHOLD_=1048576"].as_slice(),
        ),
        (UNSET, UNSET, TUNABLES, ["MALLOC_ARENA_MAX=2"].as_slice()),
    ] {
        let sandbox = Sandbox::new("");
        let daemon = Daemon::start(
            &sandbox.config(),
            &[
                ("MALLOC_ARENA_MAX", arenas),
                ("MALLOC_TRIM_THRESHOLD_", trim),
                ("GLIBC_TUNABLES", tunables),
            ],
        );
        let (status, _) = daemon.get("/health");
        assert_eq!(status, 200);
        // The process started is the one serving: its environment now has the variables.
        let environment = environment_of(daemon.child.id());
        let mut tuned: Vec<_> = environment
            .iter()
            .filter(|e| e.starts_with("MALLOC_"))
            .collect();
        tuned.sort();
        assert_eq!(tuned, expected, "given {arenas:?}, {trim:?}, {tunables:?}");
        let (exit, log) = daemon.terminate();
        assert!(exit.success(), "{log}");
    }
}
