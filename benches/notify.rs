//! Notification throughput and latency (`cargo bench --bench notify`). Not a test: it
//! measures and prints, then checks that every notification arrived once.
//!
//! A real store in a temporary directory, the real notifier and the real Gotify client
//! against a loopback Gotify (actix-web, answering the documented 200). `BENCH_NOTIFICATIONS`
//! (2000) written subtitles are committed as the JobManager commits them (the `done` job and
//! its outbox entry together), in batches of `BENCH_BATCH` (50) as a burst of group commits
//! would; the latency of each is from its commit to its arrival at the fake. Round two adds a
//! second target that never answers (a listener that accepts and stays silent): the live
//! target's numbers must not change.
//!
//! Knobs (environment): `BENCH_NOTIFICATIONS` (2000), `BENCH_BATCH` (50).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::rc::Rc;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use cuewarden::config::{GotifyNotify, Secret, TargetRules};
use cuewarden::notify::http::Gotify;
use cuewarden_actors::job::{EventSource, Job, JobStatus, Language};
use cuewarden_actors::notify::{self, NotifyEvent, NotifyLimits, NotifyTarget};
use cuewarden_actors::store::{Change, OutboxEntry, Store};
use cuewarden_actors::time::now_ms;
use serde_json::Value;
use url::Url;

const TOKEN: &str = "bench-gotify-token";

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
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

type Arrivals = Arc<Mutex<Vec<(Instant, usize)>>>;

/// A loopback Gotify: records when each message arrived and which movie it names.
fn gotify() -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::new(Mutex::new(Vec::new()));
    let shared = arrivals.clone();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let data = web::Data::new(shared);
            let server = HttpServer::new(move || {
                App::new().app_data(data.clone()).route(
                    "/message",
                    web::post().to(
                        |body: web::Json<Value>, seen: web::Data<Arrivals>| async move {
                            let at = Instant::now();
                            // "Bench17 (2019): fr …"
                            let message = body["message"].as_str().unwrap_or_default();
                            let digits: String = message
                                .strip_prefix("Bench")
                                .unwrap_or_default()
                                .chars()
                                .take_while(char::is_ascii_digit)
                                .collect();
                            let n: usize = digits
                                .parse()
                                .unwrap_or_else(|_| panic!("unexpected message {message:?}"));
                            seen.lock().unwrap().push((at, n));
                            HttpResponse::Ok().json(serde_json::json!({"id": 1, "appid": 1}))
                        },
                    ),
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
    (format!("http://{}", receiver.recv().unwrap()), arrivals)
}

/// A listener that accepts connections and never answers.
fn silent() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    format!("http://{address}")
}

fn target(http: &reqwest::Client, url: &str) -> NotifyTarget {
    let config = GotifyNotify {
        rules: TargetRules {
            enabled: true,
            on: vec![NotifyEvent::Written],
            digest: None,
        },
        url: Url::parse(url).unwrap(),
        token: Secret::from(TOKEN.to_owned()),
        priority: 5,
    };
    NotifyTarget {
        notifier: Rc::new(Gotify::new(http.clone(), config)),
        on: vec![NotifyEvent::Written],
        digest: None,
    }
}

/// A second target with its own name (the notifier keys targets by name).
struct Renamed(Rc<dyn cuewarden_actors::clients::Notifier>, &'static str);

impl cuewarden_actors::clients::Notifier for Renamed {
    fn name(&self) -> &str {
        self.1
    }
    fn send(
        &self,
        n: &cuewarden_actors::notify::Notification,
    ) -> cuewarden_actors::clients::LocalBoxFuture<Result<(), cuewarden_actors::clients::NotifyError>>
    {
        self.0.send(n)
    }
}

fn round(label: &str, with_dead_neighbour: bool) {
    let total = env_number("BENCH_NOTIFICATIONS", 2000);
    let batch = env_number("BENCH_BATCH", 50).max(1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (base, arrivals) = gotify();
    let http = cuewarden::clients::http_client().unwrap();
    let mut targets = vec![target(&http, &base)];
    if with_dead_neighbour {
        let dead = target(&http, &silent());
        targets.push(NotifyTarget {
            notifier: Rc::new(Renamed(dead.notifier, "dead")),
            on: dead.on,
            digest: None,
        });
    }
    let limits = NotifyLimits {
        timeout: Duration::from_secs(30),
        ..NotifyLimits::default()
    };
    let library = dir.path().join("library");
    let committed: Vec<Instant> = actix_rt::System::new().block_on(async {
        let handle = notify::start(store.clone(), targets, limits, None);
        let mut committed = Vec::with_capacity(total);
        let mut n = 0;
        while n < total {
            let mut changes = Vec::new();
            let end = (n + batch).min(total);
            for i in n..end {
                let video = library.join(format!("Bench{i} (2019)/Bench{i} (2019).mkv"));
                let mut job = Job::pending(
                    video.clone(),
                    Language::parse("fr").unwrap(),
                    EventSource::Watcher,
                    now_ms(),
                );
                job.status = JobStatus::Done;
                let subtitle = video.with_extension("fr.srt");
                job.output_path = Some(subtitle.clone());
                changes.push(Change::PutJob {
                    job: job.clone(),
                    events: vec![],
                });
                changes.push(Change::EnqueueOutbox(OutboxEntry::JobDone {
                    job_id: job.id,
                    path: subtitle,
                }));
            }
            store.submit(changes).await.unwrap();
            let at = Instant::now();
            committed.extend(std::iter::repeat_n(at, end - n));
            n = end;
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        while arrivals.lock().unwrap().len() < total {
            assert!(Instant::now() < deadline, "not every notification arrived");
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        handle.stop().await;
        committed
    });
    let arrivals = arrivals.lock().unwrap().clone();
    let mut seen = vec![0u32; total];
    let mut latencies = Vec::with_capacity(total);
    for (at, n) in &arrivals {
        seen[*n] += 1;
        latencies.push(at.duration_since(committed[*n]));
    }
    assert!(
        seen.iter().all(|s| *s == 1),
        "a notification arrived twice or never"
    );
    latencies.sort();
    let first = committed[0];
    let last = arrivals.iter().map(|(at, _)| *at).max().unwrap();
    let wall = last.duration_since(first);
    println!(
        "{label}: {total} notifications in {:.2} s = {:.0}/s; commit → arrival p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
    );
}

fn main() {
    // The daemon's TLS provider (reqwest is built without one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    round("one target", false);
    round("with a second target that never answers", true);
}
