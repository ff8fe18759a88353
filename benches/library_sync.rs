//! Library sync benchmark (`cargo bench --bench library_sync`). Not a test: it measures and
//! prints.
//!
//! A synthetic library of 20,000 videos on disk (5,000 movies in a folder each, 150 shows x
//! 10 seasons x 10 episodes) with sidecars by video number v: English for v % 10 in
//! {0, 1, 2}, French for v % 10 == 2; wanted fr, en: 18,000 videos lack something, 32,000
//! subtitles are missing. A loopback fake Jellyfin lists the same 20,000 items (paths under
//! `/media`, mapped to the library; three media streams and provider ids each) through
//! paged `GET /Items`, 1,000 a page. The release binary starts on a fresh store, so it
//! syncs at once: Jellyfin's pages, the walk, 18,000 detections → 32,000 durable jobs.
//!
//! Measured per run: wall time from the `library sync started` log line to `library sync
//! finished` (and from launch), the daemon's peak resident memory (`VmHWM`) at the end of
//! the sync, and the counts it logged.
//!
//! Knobs: `CUEWARDEN_BIN` (default `$CARGO_TARGET_DIR/release/cuewarden`), `BENCH_RUNS`
//! (3), `BENCH_ITEMS` (20000: movies are a quarter), `BENCH_WATCHER` (`1`: the file watcher
//! on as well).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

const KEY: &str = "bench-key-0123456789abcdef";
const JELLYFIN_KEY: &str = "bench-jellyfin-key";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The library's relative video paths, in video-number order.
fn video_paths(items: usize) -> Vec<String> {
    let movies = items / 4;
    let mut paths = Vec::with_capacity(items);
    for m in 0..movies {
        paths.push(format!("Movies/Movie {m} (2001)/Movie {m} (2001).mkv"));
    }
    let episodes = items - movies;
    for e in 0..episodes {
        let (show, season, episode) = (e / 100, (e / 10) % 10 + 1, e % 10 + 1);
        paths.push(format!(
            "Shows/Show {show}/Season {season:02}/Show {show} S{season:02}E{episode:02}.mkv"
        ));
    }
    paths
}

fn make_library(root: &Path, paths: &[String]) {
    for (v, relative) in paths.iter().enumerate() {
        let video = root.join(relative);
        std::fs::create_dir_all(video.parent().unwrap()).unwrap();
        std::fs::write(&video, b"v").unwrap();
        let stem = video.with_extension("");
        let sidecar = |suffix: &str| PathBuf::from(format!("{}.{suffix}", stem.display()));
        if v % 10 <= 2 {
            std::fs::write(sidecar("en.srt"), b"1").unwrap();
        }
        if v % 10 == 2 {
            std::fs::write(sidecar("fr.srt"), b"1").unwrap();
        }
    }
}

fn jellyfin_items(paths: &[String], movies: usize) -> Vec<Value> {
    paths
        .iter()
        .enumerate()
        .map(|(v, relative)| {
            json!({
                "Name": format!("item {v}"),
                "ServerId": "4f3c1a9e2b7d4c6e8a1f0b2d3e4c5a6b",
                "Id": format!("{v:032x}"),
                "Type": if v < movies { "Movie" } else { "Episode" },
                "LocationType": "FileSystem",
                "IsFolder": false,
                "Path": format!("/media/{relative}"),
                "ProviderIds": {"Tmdb": v.to_string(), "Imdb": format!("tt{v:07}")},
                "MediaStreams": [
                    {"Type": "Video", "Codec": "h264", "Index": 0, "IsExternal": false},
                    {"Type": "Audio", "Codec": "aac", "Language": "eng", "Index": 1},
                    {"Type": "Subtitle", "Codec": "subrip", "Language": "eng", "Index": 2,
                     "IsExternal": true, "IsForced": false, "IsHearingImpaired": false,
                     "IsTextSubtitleStream": true}
                ]
            })
        })
        .collect()
}

/// The fake Jellyfin on port 0; returns its base URL.
fn serve_jellyfin(items: Arc<Vec<Value>>) -> String {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let items = items.clone();
                App::new().route(
                    "/Items",
                    web::get().to(move |query: web::Query<Vec<(String, String)>>| {
                        let items = items.clone();
                        async move {
                            let get = |key: &str| {
                                query
                                    .iter()
                                    .find(|(k, _)| k == key)
                                    .and_then(|(_, v)| v.parse::<usize>().ok())
                            };
                            let start = get("StartIndex").unwrap_or(0);
                            let limit = get("Limit").unwrap_or(items.len());
                            let page: Vec<&Value> = items.iter().skip(start).take(limit).collect();
                            HttpResponse::Ok().json(json!({
                                "Items": page,
                                "TotalRecordCount": items.len(),
                                "StartIndex": start,
                            }))
                        }
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
            sender.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    format!("http://{}", receiver.recv().unwrap())
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let binary = std::env::var("CUEWARDEN_BIN").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
        format!("{target}/release/cuewarden")
    });
    assert!(
        Path::new(&binary).is_file(),
        "no binary at {binary}: cargo build --release"
    );
    let runs = env_number("BENCH_RUNS", 3);
    let items = env_number("BENCH_ITEMS", 20_000);
    let watcher = std::env::var("BENCH_WATCHER").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("library");
    let paths = video_paths(items);
    let started = Instant::now();
    make_library(&library, &paths);
    println!(
        "library: {items} videos under {} (made in {:.1} s)",
        library.display(),
        started.elapsed().as_secs_f64()
    );
    let url = serve_jellyfin(Arc::new(jellyfin_items(&paths, items / 4)));

    let mut results = Vec::new();
    for run in 1..=runs {
        let data = dir.path().join(format!("data{run}"));
        let config = dir.path().join(format!("config{run}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\napi_key = \"{KEY}\"\n\
                 [storage]\ndata_dir = {:?}\n\
                 [languages]\nwanted = [\"fr\", \"en\"]\n\
                 [[libraries]]\npath = {:?}\n\
                 [[path_mappings]]\nfrom = \"/media\"\nto = {:?}\n\
                 [jellyfin]\nurl = \"{url}\"\napi_key = \"{JELLYFIN_KEY}\"\n\
                 [watcher]\nenabled = {watcher}\n",
                data.display().to_string(),
                library.display().to_string(),
                library.display().to_string(),
            ),
        )
        .unwrap();
        let launched = Instant::now();
        let mut child = Command::new(&binary)
            .args(["run", "--config"])
            .arg(&config)
            .env("CUEWARDEN_LOG", "info")
            .env("MALLOC_ARENA_MAX", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut sync_started = None;
        let mut finished_line = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("library sync started") {
                sync_started = Some(Instant::now());
            }
            if line.contains("library sync finished") {
                finished_line = line;
                break;
            }
            assert!(
                launched.elapsed() < Duration::from_secs(300),
                "the sync did not finish"
            );
        }
        let done = Instant::now();
        let peak_kb = status_kb(pid, "VmHWM:");
        let rss_kb = status_kb(pid, "VmRSS:");
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let _ = child.wait();
        let sync = done.duration_since(sync_started.unwrap_or(launched));
        let from_launch = done.duration_since(launched);
        let fields: Vec<&str> = finished_line
            .split_whitespace()
            .filter(|f| f.contains('='))
            .collect();
        println!(
            "run {run}: sync {:.2} s (from launch {:.2} s), peak RSS {:.1} MB, RSS at the end {:.1} MB; {}",
            sync.as_secs_f64(),
            from_launch.as_secs_f64(),
            peak_kb as f64 / 1024.0,
            rss_kb as f64 / 1024.0,
            fields.join(" ")
        );
        results.push((sync, peak_kb));
    }
    results.sort();
    let (median, _) = results[results.len() / 2];
    let peak = results.iter().map(|(_, kb)| *kb).max().unwrap_or(0);
    println!(
        "library sync of {items} Jellyfin items + the walk, {runs} runs: median {:.2} s, highest peak RSS {:.1} MB (watcher {})",
        median.as_secs_f64(),
        peak as f64 / 1024.0,
        if watcher { "on" } else { "off" }
    );
}
