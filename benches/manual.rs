//! Manual choice benchmark (`cargo bench --bench manual`). Not a test: it measures and
//! prints.
//!
//! Against the loopback fake OpenSubtitles answering at once, for each of `BENCH_ROUNDS`
//! videos one after another: the job writes its subtitle, then `GET …/candidates` (one
//! search), `POST …/choose` (one download, normalised, written, fsynced, committed) and
//! `POST …/reject` (blacklist + file removed + re-queue committed) are timed, each spaced a
//! second apart so the 5 requests/s ceiling never delays them: what is measured is the
//! daemon's own work around one provider round trip. p50/p99/max per call.
//!
//! Knobs (environment): `CUEWARDEN_BIN` (the binary; default the bench build's),
//! `BENCH_ROUNDS` (20).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/fake_opensubtitles/mod.rs"]
mod fake_opensubtitles;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_opensubtitles::FakeOs;
use serde_json::{Value, json};

const KEY: &str = "bench-key-0123456789abcdef";
const SPACING: Duration = Duration::from_secs(1);

struct Daemon {
    child: Child,
    base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn launch(dir: &Path, fake: &FakeOs) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let library = dir.join("library");
    std::fs::create_dir_all(&library).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_key = \"{KEY}\"\n[storage]\ndata_dir = {:?}\n\
             [languages]\nwanted = [\"en\"]\nmin_score = 20\n[watcher]\nenabled = false\n[library_sync]\nenabled = false\n[[libraries]]\npath = {:?}\n{}",
            dir.join("data").display().to_string(),
            library.display().to_string(),
            fake.config("")
        ),
    )
    .unwrap();
    let binary =
        std::env::var("CUEWARDEN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cuewarden").into());
    let child = Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .env("CUEWARDEN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, Duration) {
        self.runtime.block_on(async {
            let mut request = self
                .http
                .request(method, format!("{}{path}", self.base))
                .header("X-Api-Key", KEY);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let start = Instant::now();
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body, start.elapsed())
        })
    }

    fn wait_done(&self, id: &str, candidate: &str) {
        let start = Instant::now();
        loop {
            let (_, job, _) = self.call(reqwest::Method::GET, &format!("/api/v1/jobs/{id}"), None);
            if job["status"] == "done" && job["subtitle"]["candidate_id"] == candidate {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "job stuck: {job}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<12} n={} p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap())
    );
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeOs::start();
    fake.with(|s| {
        s.quota = 100_000;
        s.files.insert(
            6200002,
            "1\n00:00:01,000 --> 00:00:02,500\n[DOOR CREAKS] Hello there.\n\n".to_owned(),
        );
    });
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let hash = cuewarden_actors::hash::movie_hash_of(&bytes).unwrap();
    fake.with(|s| s.known_hash = Some(hash));
    let videos: Vec<PathBuf> = (0..rounds)
        .map(|i| {
            let folder = dir.path().join(format!("library/Example Movie (2019) {i}"));
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join("Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv");
            std::fs::write(&path, &bytes).unwrap();
            path
        })
        .collect();
    let daemon = launch(dir.path(), &fake);
    let client = Client {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        http: {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::new()
        },
        base: daemon.base.clone(),
    };
    let (mut listed, mut chosen, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
    for video in &videos {
        let (status, body, _) = client.call(
            reqwest::Method::POST,
            "/api/v1/subtitles",
            Some(json!({"path": video, "languages": ["en"]})),
        );
        assert_eq!(status, 202, "{body}");
        let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
        client.wait_done(&id, "6200001");
        std::thread::sleep(SPACING);
        let (status, body, took) = client.call(
            reqwest::Method::GET,
            &format!("/api/v1/jobs/{id}/candidates"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        listed.push(took);
        std::thread::sleep(SPACING);
        let (status, body, took) = client.call(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{id}/choose"),
            Some(json!({"provider": "opensubtitles", "id": "6200002"})),
        );
        assert_eq!(status, 200, "{body}");
        chosen.push(took);
        std::thread::sleep(SPACING);
        let (status, body, took) = client.call(
            reqwest::Method::POST,
            &format!("/api/v1/jobs/{id}/reject"),
            Some(json!({})),
        );
        assert_eq!(status, 202, "{body}");
        rejected.push(took);
        client.wait_done(&id, "6200001");
        std::thread::sleep(SPACING);
    }
    println!("manual choice, {rounds} rounds, fake OpenSubtitles answering at once:");
    report("candidates", listed);
    report("choose", chosen);
    report("reject", rejected);
}
