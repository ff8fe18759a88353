//! OpenSubtitles benchmark (`cargo bench --bench opensubtitles`). Not a test: it measures
//! and prints.
//!
//! 1. Throughput under the rate ceiling: 200 jobs at once against the loopback fake
//!    OpenSubtitles (tests/fake_opensubtitles) answering every request after 50 ms; wall
//!    time, requests per job, and the requests-per-second histogram (the ceiling is 5/s).
//! 2. Our own overhead: 200 jobs one after another against a fake that answers at once,
//!    spaced so the rate ceiling never delays them; time from `POST /api/v1/subtitles`
//!    to the subtitle on disk (it appears by rename after its fsync), p50/p99/max.
//!
//! Knobs (environment): `CUEWARDEN_BIN` (the binary; default the bench build's),
//! `BENCH_JOBS` (200), `BENCH_LATENCY_MS` (50), `BENCH_ONLY` (`throughput` or `overhead`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/fake_opensubtitles/mod.rs"]
mod fake_opensubtitles;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_opensubtitles::FakeOs;
use serde_json::json;

const KEY: &str = "bench-key-0123456789abcdef";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn launch(dir: &Path, fake: &FakeOs) -> Daemon {
    let port = free_port();
    let library = dir.join("library");
    std::fs::create_dir_all(&library).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_key = \"{KEY}\"\n[storage]\ndata_dir = {:?}\n\
             [languages]\nwanted = [\"en\"]\n[watcher]\nenabled = false\n[library_sync]\nenabled = false\n[[libraries]]\npath = {:?}\n{}",
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
    let daemon = Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    daemon
}

/// `n` videos of 200,000 bytes (so each has a movie hash), each in its own folder.
fn videos(dir: &Path, n: usize, fake: &FakeOs) -> Vec<PathBuf> {
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let hash = cuewarden_actors::hash::movie_hash_of(&bytes).unwrap();
    fake.with(|s| s.known_hash = Some(hash));
    (0..n)
        .map(|i| {
            let folder = dir.join(format!("library/Example Movie (2019) {i}"));
            std::fs::create_dir_all(&folder).unwrap();
            let path = folder.join("Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv");
            std::fs::write(&path, &bytes).unwrap();
            path
        })
        .collect()
}

fn sidecar(video: &Path) -> PathBuf {
    video.with_extension("en.srt")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Requests the English subtitle of `video`; answers the job's id.
fn post(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    video: &Path,
) -> String {
    runtime.block_on(async {
        let response = client
            .post(format!("{base}/api/v1/subtitles"))
            .header("X-Api-Key", KEY)
            .json(&json!({"path": video, "languages": ["en"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        body["jobs"][0]["id"].as_str().unwrap().to_owned()
    })
}

/// The job's events, oldest first, as (type, time in ms).
fn event_times(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    id: &str,
) -> Vec<(String, i64)> {
    runtime.block_on(async {
        let body: serde_json::Value = client
            .get(format!("{base}/api/v1/jobs/{id}/events"))
            .header("X-Api-Key", KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut events: Vec<(String, i64)> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let at: jiff::Timestamp = e["at"].as_str().unwrap().parse().unwrap();
                (e["type"].as_str().unwrap().to_owned(), at.as_millisecond())
            })
            .collect();
        events.reverse();
        events
    })
}

fn throughput(jobs: usize, latency: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeOs::start();
    fake.with(|s| {
        s.latency = latency;
        s.quota = 100_000;
    });
    let videos = videos(dir.path(), jobs, &fake);
    let daemon = launch(dir.path(), &fake);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = http_client();
    let start = Instant::now();
    for video in &videos {
        let _ = post(&runtime, &client, &daemon.base, video);
    }
    let posted = start.elapsed();
    while !videos.iter().all(|v| sidecar(v).exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "jobs did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed();
    let log = fake.with(|s| s.log.clone());
    let first = log.iter().map(|l| l.at).min().unwrap();
    let mut per_second = vec![
        0usize;
        1 + log
            .iter()
            .map(|l| l.at.duration_since(first).as_secs() as usize)
            .max()
            .unwrap()
    ];
    for l in &log {
        per_second[l.at.duration_since(first).as_secs() as usize] += 1;
    }
    let mut histogram = [0usize; 8];
    for n in &per_second {
        histogram[(*n).min(7)] += 1;
    }
    let by_path = |p: &str| log.iter().filter(|l| l.path.contains(p)).count();
    println!(
        "throughput: {jobs} jobs, {} ms per request: all {jobs} posted in {:.0} ms, every subtitle written after {:.1} s",
        latency.as_millis(),
        ms(posted),
        wall.as_secs_f64()
    );
    println!(
        "  requests: {} ({:.2} per job: {} searches, {} downloads, {} links, {} logins)",
        log.len(),
        log.len() as f64 / jobs as f64,
        by_path("/subtitles"),
        by_path("/api/v1/download"),
        by_path("/download/"),
        by_path("/login"),
    );
    println!(
        "  requests per calendar second (seconds with n requests): {}",
        histogram
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(n, c)| format!("{n}{}: {c}", if n == 7 { "+" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  most requests in any sliding second: {}",
        fake.max_per_second()
    );
}

fn overhead(jobs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeOs::start();
    fake.with(|s| s.quota = 100_000);
    let mut videos = videos(dir.path(), jobs + 1, &fake);
    let daemon = launch(dir.path(), &fake);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = http_client();
    // Warm up: the login, the connection pool.
    let warm = videos.remove(0);
    let _ = post(&runtime, &client, &daemon.base, &warm);
    while !sidecar(&warm).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(1100));
    // Three requests a job, at most five in any 1.05 s: a job every 1.1 s is never held
    // back by the limiter.
    let spacing = Duration::from_millis(1100);
    let mut times = Vec::with_capacity(jobs);
    // Where the time goes: POST → search reaches the fake → link fetched → file on disk.
    let (mut to_search, mut search_to_link, mut link_to_file) =
        (Vec::new(), Vec::new(), Vec::new());
    // The engine's part: the request's event → the download's start event (both durable).
    let mut to_start = Vec::new();
    for video in &videos {
        let start = Instant::now();
        let id = post(&runtime, &client, &daemon.base, video);
        let target = sidecar(video);
        while !target.exists() {
            std::hint::spin_loop();
            std::thread::sleep(Duration::from_micros(100));
        }
        let took = start.elapsed();
        let on_disk = Instant::now();
        times.push(took);
        let events = event_times(&runtime, &client, &daemon.base, &id);
        let at = |kind: &str| events.iter().find(|(k, _)| k == kind).map(|(_, at)| *at);
        if let (Some(requested), Some(started)) =
            (at("subtitle.requested"), at("subtitle.download.started"))
        {
            to_start.push(Duration::from_millis((started - requested).max(0) as u64));
        }
        let log = fake.with(|s| s.log.clone());
        let mine: Vec<_> = log.iter().filter(|l| l.at >= start).collect();
        if let (Some(search), Some(link)) = (
            mine.iter().find(|l| l.path.ends_with("/subtitles")),
            mine.iter().find(|l| l.path.starts_with("/download/")),
        ) {
            to_search.push(search.at.duration_since(start));
            search_to_link.push(link.at.duration_since(search.at));
            link_to_file.push(on_disk.duration_since(link.at));
        }
        if let Some(rest) = spacing.checked_sub(took) {
            std::thread::sleep(rest);
        }
    }
    times.sort();
    for part in [
        &mut to_search,
        &mut search_to_link,
        &mut link_to_file,
        &mut to_start,
    ] {
        part.sort();
    }
    println!(
        "  subtitle.requested → subtitle.download.started (event times, ms resolution) p50/p99: {:.0}/{:.0} ms",
        ms(percentile(&to_start, 0.5)),
        ms(percentile(&to_start, 0.99)),
    );
    println!(
        "  parts, p50/p99: POST → search at the fake {:.1}/{:.1} ms; search → link fetched {:.1}/{:.1} ms; link → file on disk {:.1}/{:.1} ms",
        ms(percentile(&to_search, 0.5)),
        ms(percentile(&to_search, 0.99)),
        ms(percentile(&search_to_link, 0.5)),
        ms(percentile(&search_to_link, 0.99)),
        ms(percentile(&link_to_file, 0.5)),
        ms(percentile(&link_to_file, 0.99)),
    );
    println!(
        "overhead: {jobs} jobs one after another, fake answers at once: request → subtitle on disk p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (3 loopback requests to the fake included)",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap())
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let jobs = env_number("BENCH_JOBS", 200);
    let latency = Duration::from_millis(env_number("BENCH_LATENCY_MS", 50) as u64);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    println!(
        "cuewarden OpenSubtitles benchmark on {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if only.is_empty() || only == "throughput" {
        throughput(jobs, latency);
    }
    if only.is_empty() || only == "overhead" {
        overhead(jobs);
    }
}

/// A client that drops idle connections before the daemon's 5 s keep-alive closes them
/// (a request on a connection the server is closing fails with `IncompleteMessage`).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
}
