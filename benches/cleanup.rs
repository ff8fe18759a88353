//! Retention benchmark (`cargo bench --bench cleanup`). Not a test: it measures and prints.
//!
//! A store with `BENCH_JOBS` (1,000,000) finished jobs, two events each, 90 % of them older
//! than `[retention]` (done 60 days ago, failed 120 days ago), the rest from yesterday. The
//! real binary serves it; one client asks `GET /api/v1/jobs?limit=50` again and again
//! (a new connection each time). Printed: the store's size, the `GET /jobs` p50/p99 before,
//! during and after `POST /schedule/cleanup/run` (which deletes 90 % and then compacts the
//! file), the cleanup's wall time and counts, and the store's size after.
//!
//! With `BENCH_TRANSLATIONS` (0) the store also holds that many cached translations, 90 % of
//! them last used 200 days ago (over `[translator] cache_days` 180): the cleanup deletes those
//! too (`translations_deleted`).
//!
//! Knobs: `CUEWARDEN_BIN` (the binary; default the bench build's), `BENCH_JOBS` (1000000),
//! `BENCH_SECONDS` (5: how long the before/after latencies are sampled), `BENCH_DIR` (keep
//! the store there instead of a temp dir; an existing store is reused).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cuewarden_actors::event::{Event, kind};
use cuewarden_actors::store::{Change, Store};
use cuewarden_actors::time::now_ms;
use cuewarden_actors::{EventSource, Job, JobId, JobStatus, Language, Priority};
use serde_json::{Value, json};

const KEY: &str = "bench-key-0123456789abcdef";
const DAY: i64 = 24 * 3600 * 1000;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A UUIDv7 made at `ms` (random tail).
fn id_at(ms: i64, n: usize) -> JobId {
    let tail = (n as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    let id = (u128::from(ms as u64) << 80)
        | (0x7u128 << 76)
        | (tail & ((1u128 << 76) - 1) & !(0b11u128 << 62))
        | (0b10u128 << 62);
    JobId(uuid::Uuid::from_u128(id))
}

/// Job `n`: every tenth is recent, the others expired.
fn job(n: usize, now: i64) -> Job {
    let status = match n % 40 {
        0 => JobStatus::Failed,
        1 => JobStatus::Skipped,
        _ => JobStatus::Done,
    };
    let age = match (n.is_multiple_of(10), status) {
        (true, _) => DAY,
        (false, JobStatus::Failed) => 120 * DAY,
        (false, _) => 60 * DAY,
    };
    // Spread over an hour, so ids are not all in one millisecond.
    let at = now - age - (n % 3_600_000) as i64;
    let mut job = Job::pending(
        PathBuf::from(format!("/library/movie{n}/movie{n}.mkv")),
        Language::parse("fr").unwrap(),
        EventSource::LibrarySync,
        at,
    );
    job.id = id_at(at, n);
    job.status = status;
    job.priority = Priority::Normal;
    job.attempts = 1;
    job.output_path = Some(PathBuf::from(format!("/library/movie{n}/movie{n}.fr.srt")));
    job
}

/// `count` cached translations, every tenth used today, the others 200 days ago.
fn build_translations(store: &Store, count: usize) {
    let started = Instant::now();
    let today = cuewarden_actors::store::day_of(now_ms());
    for chunk in (0..count).collect::<Vec<_>>().chunks(5_000) {
        let entries: Vec<(String, String)> = chunk
            .iter()
            .map(|n| {
                (
                    format!("Line {n} of some film, as long as a subtitle line is."),
                    format!("Ligne {n} d'un film, aussi longue qu'une ligne de sous-titre."),
                )
            })
            .collect();
        let old: Vec<String> = chunk
            .iter()
            .zip(&entries)
            .filter(|(n, _)| !n.is_multiple_of(10))
            .map(|(_, (text, _))| {
                cuewarden_actors::store::translation_key("deepl", "en", "fr", text)
            })
            .collect();
        store
            .submit_blocking(vec![
                Change::PutTranslations {
                    service: "deepl".to_owned(),
                    from: "en".to_owned(),
                    to: "fr".to_owned(),
                    entries,
                },
                Change::TouchTranslations {
                    keys: old,
                    day: today - 200,
                },
            ])
            .unwrap();
    }
    println!(
        "store  {count} cached translations written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn build_store(data: &Path, jobs: usize) {
    std::fs::create_dir_all(data).unwrap();
    let store = Store::open(data).unwrap();
    let translations = env_number("BENCH_TRANSLATIONS", 0);
    if translations > 0 {
        build_translations(&store, translations);
    }
    if store.job_count().unwrap() as usize >= jobs {
        println!("store  reusing {} jobs in {}", jobs, data.display());
        store.close();
        return;
    }
    let now = now_ms();
    let started = Instant::now();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5_000) {
        let changes = chunk
            .iter()
            .map(|&n| {
                let job = job(n, now);
                let events = vec![
                    Event::for_job(
                        job.id,
                        kind::SUBTITLE_REQUESTED,
                        EventSource::LibrarySync,
                        job.updated_at_ms,
                        json!({}),
                    ),
                    Event::for_job(
                        job.id,
                        kind::WRITTEN,
                        EventSource::Downloader,
                        job.updated_at_ms,
                        json!({"path": job.output_path}),
                    ),
                ];
                Change::PutJob { job, events }
            })
            .collect();
        store.submit_blocking(changes).unwrap();
    }
    store.close();
    println!(
        "store  {jobs} finished jobs written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request on a new connection: status, body, latency.
fn request(port: u16, method: &str, path: &str) -> (u16, String, Duration) {
    let start = Instant::now();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = if method == "POST" { "{}" } else { "" };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body, elapsed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    format!(
        "{} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    )
}

/// `GET /jobs` latencies, one after the other, for `seconds`.
fn sample(port: u16, seconds: u64) -> Vec<Duration> {
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    while Instant::now() < end {
        let (status, _, elapsed) = request(port, "GET", "/api/v1/jobs?limit=50");
        assert_eq!(status, 200);
        latencies.push(elapsed);
    }
    latencies
}

fn cleanup_view(port: u16) -> Value {
    let (status, body, _) = request(port, "GET", "/api/v1/schedule");
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "cleanup")
        .cloned()
        .unwrap()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let jobs = env_number("BENCH_JOBS", 1_000_000);
    let seconds = env_number("BENCH_SECONDS", 5) as u64;
    let temp = tempfile::tempdir().unwrap();
    let dir = std::env::var("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_owned());
    let data = dir.join("data");
    build_store(&data, jobs);
    let file = data.join("cuewarden.redb");
    let size_before = std::fs::metadata(&file).unwrap().len();
    println!(
        "store  {:.1} MiB with {jobs} finished jobs",
        mib(size_before)
    );

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
             [languages]\nwanted = [\"fr\"]\n[watcher]\nenabled = false\n[library_sync]\nenabled = false\n\
             [[libraries]]\npath = {:?}\n[schedule]\ncleanup = \"\"\nwanted_retry = \"\"\nlibrary_sync = \"\"\n\
             [retention]\ncompleted_days = 30\nfailed_days = 90\n",
            data.display().to_string(),
            library.display().to_string()
        ),
    )
    .unwrap();
    let binary =
        std::env::var("CUEWARDEN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cuewarden").into());
    let _daemon = Daemon(
        Command::new(&binary)
            .args(["run", "--config"])
            .arg(&config)
            .env("CUEWARDEN_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(120), "no daemon");
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "daemon {binary} serving after {:.2} s",
        start.elapsed().as_secs_f64()
    );
    // Let the start-up snapshot finish, as it would on a daemon that has run a while.
    let snapshots = data.join("snapshots");
    let waited = Instant::now();
    while std::fs::read_dir(&snapshots)
        .map(|d| {
            !d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".redb"))
        })
        .unwrap_or(true)
        && waited.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(100));
    }

    println!(
        "before GET /jobs?limit=50: {}",
        summary(sample(port, seconds))
    );

    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, _, elapsed) = request(port, "GET", "/api/v1/jobs?limit=50");
                assert_eq!(status, 200);
                latencies.push(elapsed);
            }
            latencies
        })
    };
    let started = Instant::now();
    let (status, body, _) = request(port, "POST", "/api/v1/schedule/cleanup/run");
    assert_eq!(status, 202, "{body}");
    let view = loop {
        std::thread::sleep(Duration::from_millis(250));
        let view = cleanup_view(port);
        if !view["last_run"]["finished_at"].is_null() {
            break view;
        }
    };
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = load.join().unwrap();
    let run = &view["last_run"];
    println!(
        "cleanup wall time {:.1} s (the run's own: {} ms); counts {}; error {}",
        wall.as_secs_f64(),
        run["duration_ms"],
        run["counts"],
        run["error"]
    );
    println!("during GET /jobs?limit=50: {}", summary(during));
    let size_after = std::fs::metadata(&file).unwrap().len();
    println!(
        "store  {:.1} MiB → {:.1} MiB after the cleanup",
        mib(size_before),
        mib(size_after)
    );
    println!(
        "after  GET /jobs?limit=50: {}",
        summary(sample(port, seconds))
    );
}
