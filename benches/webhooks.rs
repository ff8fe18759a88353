//! Webhook burst benchmark (`cargo bench --bench webhooks`). Not a test: it measures and
//! prints, then checks that every accepted webhook is in the store.
//!
//! Each round starts the real binary on loopback with a fresh store, makes `BENCH_WEBHOOKS`
//! (2000) episode files in the library (outside the measurement), then `BENCH_CLIENTS` (64)
//! concurrent clients post one Sonarr `Download` each (the fixture's payload, ~4 KiB, its
//! `episodeFile.path` in Sonarr's view, `/media/tv/…`, mapped into the library by
//! `[[path_mappings]]`), with the key in basic auth as Sonarr sends it. Every 200 is sent
//! after the commit that holds the jobs. Prints accepted webhooks/s (all of them over the
//! burst's wall time) and p50/p99/max latency. Then the daemon is killed with SIGKILL (no
//! clean stop) and the store is opened to count the jobs: one per webhook and wanted language
//! (two by default), and every one must be there.
//!
//! Knobs (environment): `CUEWARDEN_BIN` (the binary; default the bench build's),
//! `BENCH_WEBHOOKS` (2000), `BENCH_CLIENTS` (64), `BENCH_ROUNDS` (5), `BENCH_LANGUAGES` (2, at
//! most 4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use cuewarden_actors::store::Store;
use serde_json::Value;

const KEY: &str = "bench-key-0123456789abcdef";
const SONARR_DOWNLOAD: &str = include_str!("../tests/fixtures/sonarr_download.json");
/// The wanted languages, the first `BENCH_LANGUAGES` of which a round uses.
const LANGUAGES: [&str; 4] = ["fr", "en", "de", "es"];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn launch(dir: &Path, port: u16, languages: usize) -> Daemon {
    let wanted = serde_json::to_string(&LANGUAGES[..languages]).unwrap();
    let library = dir.join("library");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_key = \"{KEY}\"\n\
             [storage]\ndata_dir = {:?}\n[languages]\nwanted = {wanted}\n\
             [watcher]\nenabled = false\n[library_sync]\nenabled = false\n[[libraries]]\npath = {:?}\n\
             [[path_mappings]]\nfrom = \"/media/tv\"\nto = {:?}\n",
            dir.join("data").display().to_string(),
            library.display().to_string(),
            library.display().to_string(),
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
    let daemon = Daemon(child);
    let start = Instant::now();
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ =
                stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return daemon;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The episode files of a round (one series folder per 100 episodes, as a library has),
/// and the Sonarr payload naming each in Sonarr's view.
fn episodes(library: &Path, webhooks: usize) -> Vec<String> {
    let template: Value = serde_json::from_str(SONARR_DOWNLOAD).unwrap();
    (0..webhooks)
        .map(|n| {
            let relative = format!(
                "Show {}/Season 01/Show {} - S01E{n:04}.mkv",
                n / 100,
                n / 100
            );
            let file = library.join(&relative);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, b"").unwrap();
            let mut body = template.clone();
            body["series"]["path"] = format!("/media/tv/Show {}", n / 100).into();
            body["episodeFile"]["relativePath"] =
                format!("Season 01/Show {} - S01E{n:04}.mkv", n / 100).into();
            body["episodeFile"]["path"] = format!("/media/tv/{relative}").into();
            body["episodeFile"]["id"] = n.into();
            body.to_string()
        })
        .collect()
}

struct Round {
    per_second: f64,
    latencies: Vec<Duration>,
    jobs_in_store: usize,
    commits: f64,
    changes: f64,
}

fn round(dir: &Path, webhooks: usize, clients: usize, languages: usize) -> Round {
    let library = dir.join("library");
    std::fs::create_dir_all(&library).unwrap();
    let bodies = Arc::new(episodes(&library, webhooks));
    let port = free_port();
    let daemon = launch(dir, port, languages);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/webhooks/sonarr");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(":{KEY}"))
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let tasks = (0..clients).map(|_| {
            let (client, url, basic) = (client.clone(), url.clone(), basic.clone());
            let (bodies, next) = (bodies.clone(), next.clone());
            async move {
                let mut out = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(n) else {
                        return out;
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("Authorization", &basic)
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let answer = response.bytes().await.unwrap();
                    out.push(sent.elapsed());
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                    let answer: Value = serde_json::from_slice(&answer).unwrap();
                    assert_eq!(
                        answer["accepted"][0]["jobs"].as_array().unwrap().len(),
                        languages
                    );
                }
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
        let response = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .header("X-Api-Key", KEY)
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    });
    let metric = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let (commits, changes) = (
        metric("cuewarden_store_commits_total"),
        metric("cuewarden_store_changes_total"),
    );
    // No clean stop: what was answered must already be on disk.
    drop(daemon);
    let store = Store::open(&dir.join("data")).unwrap();
    let jobs_in_store = store
        .job_counts()
        .unwrap()
        .into_iter()
        .map(|(_, n)| n as usize)
        .sum();
    store.close();
    Round {
        per_second: latencies.len() as f64 / elapsed,
        latencies,
        jobs_in_store,
        commits,
        changes,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let webhooks = env_number("BENCH_WEBHOOKS", 2000);
    let clients = env_number("BENCH_CLIENTS", 64);
    let rounds = env_number("BENCH_ROUNDS", 5);
    let languages = env_number("BENCH_LANGUAGES", 2).clamp(1, LANGUAGES.len());
    println!(
        "cuewarden webhook burst on {} cores: {webhooks} Sonarr Download webhooks, {clients} clients, {languages} wanted languages, {rounds} rounds",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let dir = tempfile::tempdir().unwrap();
    let mut rates = Vec::new();
    let mut p99s = Vec::new();
    for r in 0..rounds {
        let result = round(
            &dir.path().join(format!("round{r}")),
            webhooks,
            clients,
            languages,
        );
        let p99 = percentile(&result.latencies, 0.99);
        println!(
            "webhooks round {r}: {:>7.0} accepted/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
             jobs in the store after SIGKILL: {} of {}; {} commits, {:.1} changes/commit",
            result.per_second,
            percentile(&result.latencies, 0.50).as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            result
                .latencies
                .last()
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
                * 1e3,
            result.jobs_in_store,
            webhooks * languages,
            result.commits,
            result.changes / result.commits.max(1.0),
        );
        assert_eq!(
            result.jobs_in_store,
            webhooks * languages,
            "an accepted webhook is missing from the store"
        );
        rates.push(result.per_second);
        p99s.push(p99);
    }
    rates.sort_by(f64::total_cmp);
    p99s.sort();
    println!(
        "webhooks median of {rounds} rounds: {:.0} accepted/s, p99 {:.2} ms",
        rates[rates.len() / 2],
        p99s[p99s.len() / 2].as_secs_f64() * 1e3
    );
}
