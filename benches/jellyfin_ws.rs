//! `LibraryChanged` → persisted jobs (`cargo bench --bench jellyfin_ws`). Not a test: it
//! measures and prints.
//!
//! The daemon binary runs against the loopback fake Jellyfin (`tests/common/jellyfin.rs`)
//! with a user session; each round adds `BENCH_ITEMS` (50) new movies to the fake and to the
//! library, pushes one `LibraryChanged` naming them all, and times from the push until the
//! daemon's event stream has delivered every job's `subtitle.requested` (events are
//! published once their commit is durable, so the last one means every job is on disk).
//! Two wanted languages: 100 jobs a round. p50/p99 over `BENCH_ROUNDS` (100) rounds.
//!
//! Knobs (environment): `CUEWARDEN_BIN` (the binary; default the bench build's; the README
//! figures use `target/release/cuewarden`), `BENCH_ROUNDS`, `BENCH_ITEMS`, `BENCH_LOG` (a
//! file for the daemon's debug log).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/jellyfin.rs"]
mod jellyfin;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jellyfin::FakeJellyfin;

/// What the fake's waits allow (it is shared with the tests).
const DEADLINE: Duration = Duration::from_secs(30);
const KEY: &str = "bench-key-0123456789abcdef";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn launch(config: &Path, port: u16) -> Daemon {
    let binary =
        std::env::var("CUEWARDEN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cuewarden").into());
    // `BENCH_LOG=FILE` keeps the daemon's debug log there (where the time goes).
    let log = std::env::var("BENCH_LOG").ok();
    let stderr = match &log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    let filter = if log.is_some() {
        "cuewarden=debug,cuewarden_actors=debug"
    } else {
        "warn"
    };
    let child = Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .env("CUEWARDEN_LOG", filter)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < DEADLINE, "daemon did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    Daemon(child)
}

/// Reads the daemon's event stream on a thread; sends the receive time of every
/// `subtitle.requested`.
fn requested_events(port: u16) -> mpsc::Receiver<Instant> {
    let (sender, receiver) = mpsc::channel();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n\r\n"
    )
    .unwrap();
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if line == "event: subtitle.requested" && sender.send(Instant::now()).is_err() {
                return;
            }
        }
    });
    receiver
}

fn main() {
    let rounds = env_number("BENCH_ROUNDS", 100);
    let items = env_number("BENCH_ITEMS", 50);
    let fake = FakeJellyfin::start();
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("library");
    std::fs::create_dir_all(&library).unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\napi_key = \"{KEY}\"\n\
             [storage]\ndata_dir = {:?}\n\
             [languages]\nwanted = [\"fr\", \"en\"]\n\
             [watcher]\nenabled = false\n[library_sync]\nenabled = false\n[[libraries]]\npath = {:?}\n\
             [jellyfin]\nurl = \"{}\"\napi_key = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\n\
             [[path_mappings]]\nfrom = \"/media\"\nto = {:?}\n",
            dir.path().join("data").display().to_string(),
            library.display().to_string(),
            fake.url,
            jellyfin::API_KEY,
            jellyfin::USER,
            jellyfin::PASSWORD,
            library.display().to_string(),
        ),
    )
    .unwrap();
    let _daemon = launch(&config, port);
    fake.wait_for_open_sockets(1);
    let events = requested_events(port);
    // The stream is open once the daemon answers it; give it a moment to subscribe.
    std::thread::sleep(Duration::from_millis(200));

    let mut latencies = Vec::with_capacity(rounds);
    // Where the time goes: push → the daemon's /Items lookup arrives; push → first job.
    let mut lookups = Vec::with_capacity(rounds);
    let mut firsts = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let mut ids = Vec::with_capacity(items);
        for n in 0..items {
            let id = format!("{:032x}", (round * items + n + 1) as u128);
            let relative = format!("movies/Bench {round}-{n} (2024)/Bench {round}-{n} (2024).mkv");
            let path = library.join(&relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"video").unwrap();
            fake.add_item(jellyfin::movie(&id, &format!("/media/{relative}"), &[]));
            ids.push(id);
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let start = Instant::now();
        fake.library_changed(&refs, &[]);
        let mut last = start;
        for n in 0..items * 2 {
            last = events
                .recv_timeout(DEADLINE)
                .expect("every job's subtitle.requested arrives");
            if n == 0 {
                firsts.push(last.duration_since(start));
            }
        }
        latencies.push(last.duration_since(start));
        let lookup = fake
            .item_query_times()
            .into_iter()
            .rev()
            .find(|at| *at >= start);
        lookups.push(lookup.map_or(Duration::ZERO, |at| at.duration_since(start)));
    }
    latencies.sort();
    lookups.sort();
    firsts.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  push -> /Items lookup: p50 {:.1} ms, p99 {:.1} ms; push -> first job persisted: p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&lookups, 0.50)),
        ms(percentile(&lookups, 0.99)),
        ms(percentile(&firsts, 0.50)),
        ms(percentile(&firsts, 0.99)),
    );
    println!(
        "LibraryChanged with {items} new items ({} jobs) -> all jobs persisted, {rounds} rounds: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        items * 2,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
    );
}
