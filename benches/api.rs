//! Throughput and start-up benchmark (`cargo bench --bench api`). Not a test: it asserts
//! nothing about speed, it measures and prints.
//!
//! 1. Store: N threads submitting job inserts straight to the redb store; commits/s and
//!    the group-commit batch sizes.
//! 2. API: the real binary on loopback, C concurrent clients posting `POST /subtitles`
//!    (every 202 is durable: it is sent after the commit); accepted requests/s, p50/p99
//!    latency, and the commit batch sizes the daemon reports in `/metrics`.
//! 3. Start-up: a store with 100,000 jobs (finished, then all waiting); time from launch
//!    to `/health` 200, and the resident memory once idle.
//! 4. SSE replay: a store with a large log, 500 clients asking `/events/stream` for all of
//!    it at once (`Last-Event-ID: 0`), each reading to the end; resident memory before,
//!    during and after, and `/health` latency meanwhile; with the default
//!    `max_event_streams` and with room for every client, under glibc's default arenas and
//!    `MALLOC_ARENA_MAX=2` (as the systemd unit sets it).
//!
//! Knobs (environment): `CUEWARDEN_BIN` (the binary to run; default the bench build's),
//! `BENCH_SECONDS` (default 10), `BENCH_CLIENTS` (64),
//! `BENCH_STARTUP_JOBS` (100000), `BENCH_SSE_JOBS` (50000, two events each),
//! `BENCH_SSE_CLIENTS` (500), `BENCH_SSE_STREAMS` (only the runs with that
//! `max_event_streams`), `BENCH_ONLY` (`store`, `api`, `start`, `waiting` or `sse`: one
//! part).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cuewarden_actors::event::{Event, kind};
use cuewarden_actors::store::{Change, Store};
use cuewarden_actors::{EventSource, Job, JobStatus, Language, Priority};
use serde_json::json;

const KEY: &str = "bench-key-0123456789abcdef";
/// Videos a client creates at a time before requesting subtitles for them.
const VIDEO_BATCH: usize = 4;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn job(n: usize, status: JobStatus, now: i64) -> Job {
    let path = PathBuf::from(format!("/library/movie{n}/movie{n}.mkv"));
    let mut job = Job::pending(
        path,
        Language::parse("fr").unwrap(),
        EventSource::LibrarySync,
        now,
    );
    job.status = status;
    job.priority = Priority::Normal;
    job.attempts = 1;
    job.output_path = Some(PathBuf::from(format!("/library/movie{n}/movie{n}.fr.srt")));
    job
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn batch_line(store: &Store) -> String {
    let stats = store.stats();
    let commits = stats.commits.load(Ordering::Relaxed).max(1);
    let changes = stats.changes.load(Ordering::Relaxed);
    format!(
        "{commits} commits, {:.1} changes/commit on average, largest batch {}",
        changes as f64 / commits as f64,
        stats.max_batch.load(Ordering::Relaxed)
    )
}

fn bench_store(dir: &Path, seconds: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let store = Store::open(dir).unwrap();
    for threads in [1usize, 16, 64] {
        let deadline = Instant::now() + Duration::from_secs(seconds as u64 / 3 + 1);
        let start = Instant::now();
        let total: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let store = store.clone();
                    scope.spawn(move || {
                        let mut n = 0;
                        while Instant::now() < deadline {
                            let job = job(t * 1_000_000 + n, JobStatus::Pending, 0);
                            let event = Event::for_job(
                                job.id,
                                kind::SUBTITLE_REQUESTED,
                                EventSource::Api,
                                0,
                                json!({}),
                            );
                            store
                                .submit_blocking(vec![Change::PutJob {
                                    job,
                                    events: vec![event],
                                }])
                                .unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let elapsed = start.elapsed().as_secs_f64();
        println!(
            "store  {threads:>3} writer threads: {:>8.0} durable job inserts/s   ({})",
            total as f64 / elapsed,
            batch_line(&store)
        );
    }
    store.close();
}

struct Daemon {
    child: Child,
    base: String,
}

impl Daemon {
    /// SIGTERM, then waits for the exit.
    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    let library = dir.join("library");
    std::fs::create_dir_all(&library).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_key = \"{KEY}\"\n[storage]\ndata_dir = {:?}\n\
             [languages]\nwanted = [\"fr\"]\n[watcher]\nenabled = false\n[library_sync]\nenabled = false\n[[libraries]]\npath = {:?}\n",
            dir.join("data").display().to_string(),
            library.display().to_string()
        ),
    )
    .unwrap();
    config
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Launches the daemon and returns it with the time until `/health` answered 200.
fn launch(config: &Path, port: u16) -> (Daemon, Duration) {
    launch_with(config, port, &[])
}

/// [`launch`] with extra environment variables.
fn launch_with(config: &Path, port: u16, env: &[(&str, &str)]) -> (Daemon, Duration) {
    // `CUEWARDEN_BIN=target/release/cuewarden` measures the release binary (fat LTO)
    // instead of the bench profile's.
    let binary =
        std::env::var("CUEWARDEN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cuewarden").into());
    let start = Instant::now();
    let child = Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env("CUEWARDEN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ =
                stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return (daemon, start.elapsed());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn bench_api(dir: &Path, seconds: usize, clients: usize) {
    let port = free_port();
    let config = write_config(dir, port);
    let (daemon, _) = launch(&config, port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let url = format!("{}/api/v1/subtitles", daemon.base);
    let library = dir.join("library");
    let languages: Vec<String> = ('a'..='z')
        .flat_map(|a| ('a'..='z').map(move |b| format!("{a}{b}")))
        .filter(|code| Language::parse(code).is_ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(seconds as u64);
    let start = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let tasks = (0..clients).map(|c| {
            let (client, url, library) = (client.clone(), url.clone(), library.clone());
            let languages = languages.clone();
            async move {
                let mut out = Vec::new();
                let mut n = 0;
                let mut videos = 0;
                while Instant::now() < deadline {
                    // The API accepts only videos that exist: make them ahead, outside the
                    // measured latency, one folder per movie as in a library. Each video is
                    // asked for in every ISO 639-1 language (a new job each time), so few
                    // folders are needed: creating one costs ~0.7 ms on this VM's disk.
                    let video = n / languages.len();
                    if video == videos {
                        let folder = library.join(format!("c{c}"));
                        videos = tokio::task::spawn_blocking(move || {
                            for v in videos..videos + VIDEO_BATCH {
                                let movie = folder.join(format!("v{v}"));
                                std::fs::create_dir_all(&movie).unwrap();
                                std::fs::write(movie.join(format!("v{v}.mkv")), b"").unwrap();
                            }
                            videos + VIDEO_BATCH
                        })
                        .await
                        .unwrap();
                    }
                    let body = json!({
                        "path": library.join(format!("c{c}/v{video}/v{video}.mkv")),
                        "languages": [languages[n % languages.len()]],
                    });
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("X-Api-Key", KEY)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 202);
                    let _ = response.bytes().await;
                    out.push(sent.elapsed());
                    n += 1;
                }
                out
            }
        });
        futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .flatten()
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let metrics = runtime.block_on(async {
        client
            .get(format!("{}/metrics", daemon.base))
            .header("X-Api-Key", KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let commits = metric(&metrics, "cuewarden_store_commits_total");
    let changes = metric(&metrics, "cuewarden_store_changes_total");
    println!(
        "api    {clients:>3} clients: {:>8.0} accepted durable requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} requests)",
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len()
    );
    println!(
        "api    store: {commits} commits for {changes} changes ({:.1} changes/commit; jobs are also worked on meanwhile)",
        changes / commits.max(1.0)
    );
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("cuewarden_store_commit_batch_size_bucket"))
    {
        println!("api      {line}");
    }
    println!(
        "api    RSS after the load: {} KiB",
        rss_kib(daemon.child.id())
    );
}

/// A store in `dir/data` with `jobs` jobs, two events each. `waiting`: every job waits for
/// its next search (an hour away), as a library with nothing found yet does; else 95 % done,
/// 5 % failed or skipped.
fn jobs_store(dir: &Path, jobs: usize, waiting: bool) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open(&data).unwrap();
    let now = cuewarden_actors::time::now_ms();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(5_000) {
        let changes = chunk
            .iter()
            .map(|&n| {
                let status = match n % 20 {
                    _ if waiting => JobStatus::Waiting,
                    0 => JobStatus::Failed,
                    1 => JobStatus::Skipped,
                    _ => JobStatus::Done,
                };
                let mut job = job(n, status, now);
                if waiting {
                    job.output_path = None;
                    job.error = Some("no subtitle provider enabled".to_owned());
                    job.wake_at_ms = Some(now + 3_600_000);
                }
                let events = vec![
                    Event::for_job(
                        job.id,
                        kind::SUBTITLE_REQUESTED,
                        EventSource::LibrarySync,
                        now,
                        json!({}),
                    ),
                    Event::for_job(
                        job.id,
                        kind::WRITTEN,
                        EventSource::Downloader,
                        now,
                        json!({"path": job.output_path}),
                    ),
                ];
                Change::PutJob { job, events }
            })
            .collect();
        store.submit_blocking(changes).unwrap();
    }
    store.close();
}

/// A store in `dir/data` with `jobs` finished jobs, two events each.
fn finished_jobs_store(dir: &Path, jobs: usize) {
    jobs_store(dir, jobs, false);
}

fn bench_startup(dir: &Path, jobs: usize, waiting: bool) {
    jobs_store(dir, jobs, waiting);
    let data = dir.join("data");
    let size = std::fs::metadata(data.join("cuewarden.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let port = free_port();
    let config = write_config(dir, port);
    // After a clean stop (SIGTERM), and after a crash (SIGKILL), when redb first checks
    // and repairs the file.
    for crash in [false, true] {
        let mut times = Vec::new();
        let mut idle_rss = Vec::new();
        for _ in 0..5 {
            let (mut daemon, elapsed) = launch(&config, port);
            times.push(elapsed);
            std::thread::sleep(Duration::from_secs(2));
            idle_rss.push(rss_kib(daemon.child.id()));
            if !crash {
                daemon.terminate();
            }
            drop(daemon);
        }
        times.sort();
        idle_rss.sort();
        println!(
            "start  {jobs} {} jobs ({:.1} MiB store), after a {}: launch to /health 200 in {:.1} ms median (min {:.1}, max {:.1}); idle RSS {} KiB median",
            if waiting { "waiting" } else { "finished" },
            size as f64 / 1048576.0,
            if crash { "kill -9" } else { "clean stop" },
            times[2].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[4].as_secs_f64() * 1e3,
            idle_rss[2],
        );
    }
    let (mut daemon, _) = launch(&config, port);
    daemon.terminate();
}

/// One raw `/health` request on a new connection; its latency.
fn health_latency(port: u16) -> Duration {
    use std::io::{Read, Write};
    let start = Instant::now();
    if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
    start.elapsed()
}

/// One replaying client: asks for the whole log, reads until the frame of `last`; its
/// status code and the bytes read.
fn replay(port: u16, last: u64) -> (u16, usize) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, 0);
    };
    let request = format!(
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nLast-Event-ID: 0\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, 0);
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let needle = format!("id: {last}\n");
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0;
    let mut status = 0;
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if total == 0 {
            status = std::str::from_utf8(&buffer[9..12.min(n)])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
        }
        total += n;
        tail.extend_from_slice(&buffer[..n]);
        if status != 200 || tail.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            break;
        }
        let keep = tail.len().saturating_sub(needle.len());
        tail.drain(..keep);
    }
    (status, total)
}

fn bench_sse(dir: &Path, jobs: usize, clients: usize) {
    finished_jobs_store(dir, jobs);
    let last = (jobs * 2) as u64;
    let size = std::fs::metadata(dir.join("data/cuewarden.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    // `BENCH_SSE_STREAMS=64`: only the runs with that cap.
    let only: Option<usize> = std::env::var("BENCH_SSE_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok());
    for (max_streams, arenas) in [
        (64, None),
        (64, Some("2")),
        (clients, None),
        (clients, Some("2")),
    ] {
        if only.is_some_and(|only| only != max_streams) {
            continue;
        }
        let port = free_port();
        let config = write_config(dir, port);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace(
                "[server]\n",
                &format!("[server]\nmax_event_streams = {max_streams}\n"),
            ),
        )
        .unwrap();
        let env: Vec<(&str, &str)> = arenas
            .map(|a| ("MALLOC_ARENA_MAX", a))
            .into_iter()
            .collect();
        let (mut daemon, _) = launch_with(&config, port, &env);
        std::thread::sleep(Duration::from_secs(2));
        let pid = daemon.child.id();
        let idle = rss_kib(pid);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let (mut peak, mut health) = (0, Vec::new());
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(rss_kib(pid));
                    health.push(health_latency(port));
                    std::thread::sleep(Duration::from_millis(100));
                }
                health.sort();
                (peak, health)
            })
        };
        let start = Instant::now();
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || replay(port, last))
                    .unwrap()
            })
            .collect();
        let results: Vec<(u16, usize)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let elapsed = start.elapsed();
        done.store(true, Ordering::Relaxed);
        let (peak, health) = sampler.join().unwrap();
        let served = results.iter().filter(|(s, _)| *s == 200).count();
        let refused = results.iter().filter(|(s, _)| *s == 503).count();
        let bytes: usize = results.iter().map(|(_, b)| b).sum();
        let mut after = Vec::new();
        let closed = Instant::now();
        for at in [1, 10, 30, 60] {
            std::thread::sleep(Duration::from_secs(at).saturating_sub(closed.elapsed()));
            after.push(format!("{at} s: {} KiB", rss_kib(pid)));
        }
        println!(
            "sse    {clients} clients replaying {last} events ({:.1} MiB store), max_event_streams = {max_streams}, MALLOC_ARENA_MAX = {}: {served} served to the end, {refused} refused (503), {:.0} MiB sent in {:.1} s; RSS idle {idle} KiB, peak {peak} KiB, after the clients left {}; /health p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            size as f64 / 1048576.0,
            arenas.unwrap_or("(glibc default)"),
            bytes as f64 / 1048576.0,
            elapsed.as_secs_f64(),
            after.join(", "),
            percentile(&health, 0.5).as_secs_f64() * 1e3,
            percentile(&health, 0.99).as_secs_f64() * 1e3,
            health.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        daemon.terminate();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run only
    // when asked to benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let seconds = env_number("BENCH_SECONDS", 10);
    let clients = env_number("BENCH_CLIENTS", 64);
    let startup_jobs = env_number("BENCH_STARTUP_JOBS", 100_000);
    println!(
        "cuewarden benchmark on {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |part: &str| only.is_empty() || only == part;
    let dir = tempfile::tempdir().unwrap();
    if wanted("store") {
        bench_store(&dir.path().join("store"), seconds);
    }
    if wanted("api") {
        for c in [1, 16, clients] {
            bench_api(&dir.path().join(format!("api{c}")), seconds, c);
        }
    }
    if wanted("start") {
        bench_startup(&dir.path().join("startup"), startup_jobs, false);
    }
    if wanted("start") || only == "waiting" {
        bench_startup(&dir.path().join("waiting"), startup_jobs, true);
    }
    if wanted("sse") {
        let jobs = env_number("BENCH_SSE_JOBS", 50_000);
        let clients = env_number("BENCH_SSE_CLIENTS", 500);
        bench_sse(&dir.path().join("sse"), jobs, clients);
    }
    let _ = std::fs::remove_dir_all(dir.path());
}
