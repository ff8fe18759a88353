//! The Jellyfin WebSocket source, through the daemon, against the loopback fake Jellyfin
//! (`common/jellyfin.rs`): a user session (one login, kept across reconnects and restarts),
//! `LibraryChanged` to persisted jobs, reconnects with backoff, the catch-up after a
//! reconnect, polling without the socket, malformed frames, embedded tracks, and what
//! `/health/sources` shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::jellyfin::{self, FakeJellyfin, episode, movie, series};
use common::{DEADLINE, Sandbox, Served};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

const MOVIE: &str = "c2a7e9f14b3d4e8fa6b1d0c9e8f7a6b5";
const EPISODE: &str = "e5d4c3b2a1f04e9d8c7b6a5f4e3d2c1b";
const SERIES: &str = "7c6b5a4f3e2d41c0b9a8f7e6d5c4b3a2";
const OUTSIDE: &str = "3a2b1c0d9e8f47a6b5c4d3e2f1a0b9c8";

const MOVIE_FILE: &str = "movies/The Quiet Harbor (2021)/The Quiet Harbor (2021).mkv";
const EPISODE_FILE: &str = "tv/Northern Relay/Season 02/Northern Relay - S02E05.mkv";

/// A sandbox whose `[jellyfin]` points at `fake`, Jellyfin's `/media` mapped onto the
/// library; `extra` goes into `[jellyfin]`.
fn sandbox(fake: &FakeJellyfin, extra: &str) -> Sandbox {
    let sandbox = Sandbox::new("");
    let mut config = std::fs::read_to_string(sandbox.config()).unwrap();
    config.push_str(&format!(
        "[jellyfin]\nurl = \"{}\"\napi_key = \"{}\"\nreconnect_delay_secs = 1\n\
         max_reconnect_delay_secs = 4\npoll_interval_secs = 1\n{extra}\n\
         [[path_mappings]]\nfrom = \"/media\"\nto = {:?}\n",
        fake.url,
        jellyfin::API_KEY,
        sandbox.library().display().to_string()
    ));
    std::fs::write(sandbox.config(), config).unwrap();
    sandbox
}

fn with_user(fake: &FakeJellyfin, extra: &str) -> Sandbox {
    sandbox(
        fake,
        &format!(
            "username = \"{}\"\npassword = \"{}\"\n{extra}",
            jellyfin::USER,
            jellyfin::PASSWORD
        ),
    )
}

fn media(relative: &str) -> String {
    format!("/media/{relative}")
}

/// The `jellyfin_ws` entry of `/health/sources`.
fn socket_health(daemon: &Served) -> Value {
    let (status, body) = daemon.get("/health/sources");
    assert_eq!(status, 200, "{body}");
    body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "jellyfin_ws")
        .cloned()
        .unwrap_or_else(|| panic!("no jellyfin_ws source: {body}"))
}

fn wait_for_health(daemon: &Served, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let health = socket_health(daemon);
        if done(&health) {
            return health;
        }
        assert!(start.elapsed() < DEADLINE, "never {what}: {health}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every job, newest first, as the API lists them.
fn jobs(daemon: &Served) -> Vec<Value> {
    daemon
        .all_job_ids()
        .iter()
        .map(|id| daemon.get(&format!("/api/v1/jobs/{id}")).1)
        .collect()
}

/// Waits until the jobs for `path` cover `languages`; returns them by language.
fn wait_for_jobs(daemon: &Served, path: &PathBuf, languages: &[&str]) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let found: Vec<Value> = jobs(daemon)
            .into_iter()
            .filter(|job| job["path"] == json!(path))
            .collect();
        if languages
            .iter()
            .all(|l| found.iter().any(|job| job["language"] == *l))
        {
            return found;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "jobs for {} never appeared: {found:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn job_in<'a>(jobs: &'a [Value], language: &str) -> &'a Value {
    jobs.iter().find(|job| job["language"] == language).unwrap()
}

#[test]
fn library_changed_becomes_persisted_jobs_with_embedded_tracks_skipped() {
    let fake = FakeJellyfin::start();
    let sandbox = with_user(&fake, "");
    let movie_path = sandbox.video(MOVIE_FILE);
    let episode_path = sandbox.video(EPISODE_FILE);
    // The movie has French embedded (as Jellyfin 10.10 names it) and English only as an
    // external file; the episode has nothing.
    fake.add_item(movie(
        MOVIE,
        &media(MOVIE_FILE),
        &[("fre", false), ("eng", true)],
    ));
    fake.add_item(episode(EPISODE, &media(EPISODE_FILE), &[]));
    fake.add_item(series(SERIES));
    fake.add_item(movie(
        OUTSIDE,
        "/elsewhere/Other (2020)/Other (2020).mkv",
        &[],
    ));
    let daemon = sandbox.serve();
    fake.wait_for_open_sockets(1);
    wait_for_health(&daemon, "connected", |h| h["state"] == "connected");

    fake.library_changed(&[EPISODE, MOVIE, SERIES, OUTSIDE], &[]);
    let movie_jobs = wait_for_jobs(&daemon, &movie_path, &["fr", "en"]);
    let french = job_in(&movie_jobs, "fr");
    assert_eq!(french["status"], "skipped", "embedded French: {french}");
    let (_, events) = daemon.get(&format!(
        "/api/v1/jobs/{}/events",
        french["id"].as_str().unwrap()
    ));
    let skipped = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "subtitle.skipped")
        .unwrap_or_else(|| panic!("{events}"));
    assert_eq!(skipped["payload"]["existing"], "embedded");
    assert_eq!(skipped["source"], "jellyfin_ws");
    let english = job_in(&movie_jobs, "en");
    assert_ne!(
        english["status"], "skipped",
        "an external track is not embedded"
    );
    for job in [french, english] {
        assert_eq!(job["origin"], "jellyfin_ws", "{job}");
        assert_eq!(job["priority"], "normal", "{job}");
        assert_eq!(job["jellyfin_item_id"], MOVIE, "{job}");
    }
    let episode_jobs = wait_for_jobs(&daemon, &episode_path, &["fr", "en"]);
    assert!(episode_jobs.iter().all(|j| j["status"] != "skipped"));
    assert_eq!(
        jobs(&daemon).len(),
        4,
        "the series and the outside movie make no job"
    );

    // One batched lookup for the four ids.
    let lookups: Vec<String> = fake
        .item_queries()
        .into_iter()
        .filter(|q| q.contains("Ids="))
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert!(lookups[0].contains(&format!("Ids={EPISODE},{MOVIE},{SERIES},{OUTSIDE}")));
    assert!(lookups[0].contains("Fields=Path,ProviderIds,MediaStreams"));

    let health = wait_for_health(&daemon, "the refusal counted", |h| h["refused"] == 1);
    assert_eq!(health["state"], "connected");
    assert_eq!(health["detected"], 2, "{health}");
    assert!(
        health["last_refused"]["reason"]
            .as_str()
            .unwrap()
            .contains("outside every configured library"),
        "{health}"
    );
    assert!(health["last_message"].is_string(), "{health}");
    assert_eq!(health["reconnects"], 0);

    // The session: one login with the full header, a user socket, KeepAlive sent.
    let logins = fake.logins();
    assert_eq!(logins.len(), 1);
    assert!(logins[0].ok);
    assert_eq!(logins[0].client, "cuewarden");
    assert!(logins[0].device_id.starts_with("cuewarden-"));
    assert!(!logins[0].version.is_empty());
    let accepted = fake.accepted();
    assert_eq!(accepted.len(), 1);
    assert!(
        accepted[0].is_user,
        "the socket is a user session, not the API key"
    );
    assert_eq!(
        accepted[0].device_id.as_deref(),
        Some(logins[0].device_id.as_str())
    );
    fake.wait_until("a KeepAlive", |f| f.keepalives() >= 1);
}

#[test]
fn malformed_frames_and_other_messages_are_skipped_on_the_same_socket() {
    let fake = FakeJellyfin::start();
    let sandbox = with_user(&fake, "");
    let movie_path = sandbox.video(MOVIE_FILE);
    fake.add_item(movie(MOVIE, &media(MOVIE_FILE), &[]));
    let daemon = sandbox.serve();
    fake.wait_for_open_sockets(1);

    fake.send_raw("{not json at all");
    fake.send_raw(r#"{"Data": {"ItemsAdded": ["x"]}}"#);
    fake.send_raw(r#"{"MessageType":"LibraryChanged","Data":{"ItemsAdded":42}}"#);
    fake.send_raw(r#"{"MessageType":"ScheduledTaskEnded","Data":{"Key":"RefreshLibrary"}}"#);
    fake.send_raw(r#"{"MessageType":"SomethingNew"}"#);
    fake.library_changed(&[MOVIE], &[]);
    wait_for_jobs(&daemon, &movie_path, &["fr", "en"]);
    assert_eq!(fake.connects().len(), 1, "no reconnect for a bad frame");
    let health = socket_health(&daemon);
    assert_eq!(health["state"], "connected");
    assert_eq!(health["reconnects"], 0);
}

#[test]
fn drops_reconnect_with_growing_delays_one_login_and_a_catch_up() {
    let fake = FakeJellyfin::start();
    let sandbox = with_user(&fake, "");
    let movie_path = sandbox.video(MOVIE_FILE);
    let daemon = sandbox.serve();
    fake.wait_for_open_sockets(1);

    // Three drops in a row, each once the socket is back.
    let mut drops = Vec::new();
    for n in 1..=3 {
        fake.wait_until("the socket back", |f| {
            f.accepted().len() == n && f.open_sockets() == 1
        });
        drops.push(Instant::now());
        fake.drop_sockets();
        if n == 1 {
            let health = wait_for_health(&daemon, "reconnecting", |h| h["state"] == "reconnecting");
            assert!(health["next_attempt"].is_string(), "{health}");
            assert!(
                health["last_error"].as_str().unwrap().contains("closed"),
                "{health}"
            );
        }
    }
    // While the socket is down, an item is added (no one is told).
    fake.refuse_upgrades(true);
    fake.wait_until("a refused attempt", |f| {
        f.connects().iter().any(|c| c.refused == Some(503))
    });
    fake.add_item(movie(MOVIE, &media(MOVIE_FILE), &[]));
    fake.refuse_upgrades(false);
    fake.wait_until("the socket back", |f| {
        f.accepted().len() == 4 && f.open_sockets() == 1
    });

    // The catch-up after the reconnect finds it.
    let found = wait_for_jobs(&daemon, &movie_path, &["fr", "en"]);
    assert!(found.iter().all(|j| j["origin"] == "jellyfin_ws"));
    assert!(
        fake.item_queries()
            .iter()
            .any(|q| q.contains("MinDateLastSaved=")),
        "{:?}",
        fake.item_queries()
    );

    // Backoff: every attempt after a drop waited at least the step of the exponential
    // schedule (1 s, 2 s, 4 s; jitter only adds). Lower bounds only: a slow machine
    // makes gaps longer, never shorter.
    let accepted = fake.accepted();
    let attempts: Vec<Instant> = fake.connects().iter().map(|c| c.at).collect();
    for (n, drop) in drops.iter().enumerate() {
        let next = attempts.iter().find(|at| *at > drop).unwrap();
        let floor = Duration::from_secs(1 << n).min(Duration::from_secs(4));
        assert!(
            next.duration_since(*drop) + Duration::from_millis(50) >= floor,
            "attempt {} came {:?} after the drop (floor {floor:?})",
            n + 1,
            next.duration_since(*drop)
        );
    }
    assert_eq!(accepted.len(), 4);
    assert_eq!(
        fake.logins().len(),
        1,
        "the token is reused across reconnects"
    );
    let health = wait_for_health(&daemon, "connected again", |h| h["state"] == "connected");
    assert!(health["reconnects"].as_u64().unwrap() >= 4, "{health}");
}

#[test]
fn a_restart_reuses_the_stored_token_and_a_revoked_one_logs_in_again() {
    let fake = FakeJellyfin::start();
    let sandbox = with_user(&fake, "");
    let daemon = sandbox.serve();
    fake.wait_for_open_sockets(1);
    daemon.stop().unwrap();
    fake.wait_for_open_sockets(0);

    let daemon = sandbox.serve();
    fake.wait_until("a second socket", |f| {
        f.accepted().len() == 2 && f.open_sockets() == 1
    });
    let logins = fake.logins();
    assert_eq!(logins.len(), 1, "the token kept in the store is used again");
    let accepted = fake.accepted();
    assert_eq!(
        accepted[0].device_id, accepted[1].device_id,
        "a stable device id"
    );

    // Jellyfin logs the token out: the upgrade is refused, the REST check says 401, and
    // the listener logs in once more (same device).
    fake.revoke_tokens();
    fake.drop_sockets();
    fake.wait_until("a socket with a new login", |f| {
        f.accepted().len() == 3 && f.open_sockets() == 1
    });
    let logins = fake.logins();
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].device_id, logins[1].device_id);
    assert!(fake.connects().iter().any(|c| c.refused == Some(403)));
    wait_for_health(&daemon, "connected", |h| h["state"] == "connected");
}

#[test]
fn with_the_socket_off_new_items_are_polled() {
    let fake = FakeJellyfin::start();
    let sandbox = with_user(&fake, "websocket = false");
    let movie_path = sandbox.video(MOVIE_FILE);
    let daemon = sandbox.serve();
    let health = wait_for_health(&daemon, "running", |h| h["state"] == "running");
    assert!(
        health["note"].as_str().unwrap().contains("polling"),
        "{health}"
    );
    fake.add_item(movie(MOVIE, &media(MOVIE_FILE), &[("eng", false)]));
    let found = wait_for_jobs(&daemon, &movie_path, &["fr", "en"]);
    assert_eq!(job_in(&found, "en")["status"], "skipped");
    assert_eq!(job_in(&found, "fr")["origin"], "jellyfin_ws");
    assert!(fake.connects().is_empty(), "no socket");
    assert!(fake.logins().is_empty(), "no login without the socket");
    wait_for_health(&daemon, "one detection", |h| h["detected"] == 1);
}

#[test]
fn without_a_user_the_socket_is_not_opened_and_the_health_says_why() {
    let fake = FakeJellyfin::start();
    let sandbox = sandbox(&fake, "");
    let movie_path = sandbox.video(MOVIE_FILE);
    let daemon = sandbox.serve();
    let health = wait_for_health(&daemon, "running", |h| h["state"] == "running");
    assert!(
        health["note"]
            .as_str()
            .unwrap()
            .contains("needs a user session"),
        "{health}"
    );
    fake.add_item(movie(MOVIE, &media(MOVIE_FILE), &[]));
    wait_for_jobs(&daemon, &movie_path, &["fr", "en"]);
    assert!(fake.connects().is_empty());
}

#[test]
fn an_item_reported_before_its_file_is_readable_is_looked_up_again() {
    let fake = FakeJellyfin::start();
    let sandbox = with_user(&fake, "");
    let config = sandbox.config();
    let daemon = Served::start_with(&sandbox.config(), move |components| {
        // The same source with the not-ready retries shortened.
        let settings = cuewarden::config::load(Some(&config)).unwrap();
        let mut socket = cuewarden::sources::jellyfin_ws::SocketSettings::with_config(
            settings.jellyfin.as_ref().unwrap(),
        );
        socket.not_ready_retries = vec![Duration::from_millis(300); 20];
        components.sources.clear();
        components.sources.push(Box::new(
            cuewarden::sources::jellyfin_ws::JellyfinSocket::new(socket),
        ));
    });
    fake.wait_for_open_sockets(1);
    fake.add_item(movie(MOVIE, &media(MOVIE_FILE), &[]));
    fake.library_changed(&[MOVIE], &[]);
    // Jellyfin is quicker than the copy: the file shows up only after a few lookups.
    fake.wait_until("a second lookup", |f| {
        f.item_queries()
            .iter()
            .filter(|q| q.contains("Ids="))
            .count()
            >= 2
    });
    assert!(jobs(&daemon).is_empty());
    let movie_path = sandbox.video(MOVIE_FILE);
    wait_for_jobs(&daemon, &movie_path, &["fr", "en"]);
    let health = socket_health(&daemon);
    assert_eq!(health["refused"], 0, "not refused while retrying: {health}");
    assert_eq!(health["detected"], 1);
}

#[test]
fn the_fake_gives_an_api_key_socket_no_library_changed() {
    // The reason the listener logs in: checked against the fake it is tested with.
    let fake = FakeJellyfin::start_under("/jellyfin");
    let url = format!(
        "{}/socket?ApiKey={}",
        fake.url.replace("http://", "ws://"),
        jellyfin::API_KEY
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        fake.library_changed(&[MOVIE], &[]);
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(include_str!(
                "fixtures/jellyfin_ws_keepalive_client.json"
            )))
            .await
            .unwrap();
        // The KeepAlive is answered; the LibraryChanged pushed before it never comes.
        let frame = socket.next().await.unwrap().unwrap();
        let message: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
        assert_eq!(message["MessageType"], "KeepAlive", "{message}");
    });
    let (bad, _) = runtime.block_on(async {
        let bad = format!("{}/socket", fake.url.replace("http://", "ws://"));
        match tokio_tungstenite::connect_async(bad).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                (response.status().as_u16(), ())
            }
            other => panic!("upgrade without a token: {:?}", other.map(|_| ())),
        }
    });
    assert_eq!(bad, 403);
}

#[test]
fn a_path_prefix_works_and_force_keepalive_sets_the_pace() {
    // Behind a reverse proxy at /jellyfin, with a server that closes a socket silent for
    // 3 s (as Jellyfin 12.0 does past its timeout): KeepAlive every 1.5 s keeps it open.
    let fake = FakeJellyfin::start_under("/jellyfin");
    fake.set_force_keepalive_secs(3);
    let sandbox = with_user(&fake, "");
    let movie_path = sandbox.video(MOVIE_FILE);
    fake.add_item(movie(MOVIE, &media(MOVIE_FILE), &[]));
    let daemon = sandbox.serve();
    fake.wait_for_open_sockets(1);
    fake.wait_until("six KeepAlives", |f| f.keepalives() >= 6);
    assert_eq!(
        fake.accepted().len(),
        1,
        "never closed for silence: {:?}",
        fake.connects()
    );
    fake.library_changed(&[MOVIE], &[]);
    wait_for_jobs(&daemon, &movie_path, &["fr", "en"]);
}

#[test]
fn a_refused_login_shows_as_failing_and_the_rest_keeps_serving() {
    let fake = FakeJellyfin::start();
    let sandbox = sandbox(
        &fake,
        &format!("username = \"{}\"\npassword = \"wrong\"", jellyfin::USER),
    );
    let video = sandbox.video(MOVIE_FILE);
    let daemon = sandbox.serve();
    let health = wait_for_health(&daemon, "failing", |h| h["state"] == "failing");
    assert!(
        health["error"]
            .as_str()
            .unwrap()
            .contains("refused the login"),
        "{health}"
    );
    let logins = fake.logins();
    assert_eq!(logins.len(), 1, "not retried at once: {logins:?}");
    assert!(!logins[0].ok);
    assert!(fake.accepted().is_empty());
    let (status, body) = daemon.post("/api/v1/subtitles", &json!({"path": video}));
    assert_eq!(status, 202, "{body}");
}

#[test]
fn an_unreachable_jellyfin_shows_as_failing_from_the_first_poll() {
    // A port nothing listens on: the first poll (no mark to catch up from yet) must still
    // reach Jellyfin, so the health says it cannot, long before the next poll (300 s).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sandbox = Sandbox::new("");
    let mut config = std::fs::read_to_string(sandbox.config()).unwrap();
    config.push_str(&format!(
        "[jellyfin]\nurl = \"{url}\"\napi_key = \"{}\"\npoll_interval_secs = 300\n",
        jellyfin::API_KEY
    ));
    std::fs::write(sandbox.config(), config).unwrap();
    let daemon = sandbox.serve();
    let health = wait_for_health(&daemon, "failing", |h| h["state"] == "failing");
    assert!(health["last_error"].is_string(), "{health}");
    assert_eq!(daemon.get("/api/v1/jobs").0, 200, "the rest keeps serving");
}
