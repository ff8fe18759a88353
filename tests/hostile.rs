//! The daemon under hostile clients (issue 7, "Memory and connections under hostile
//! clients"): event streams that replay, pile up or stop reading, and request bodies that
//! trickle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{DEADLINE, KEY, Sandbox};
use serde_json::{Value, json};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Opens `/events/stream` with `Last-Event-ID: last` (if given).
async fn open_stream(
    client: &reqwest::Client,
    base: &str,
    last: Option<&str>,
) -> reqwest::Response {
    let mut request = client
        .get(format!("{base}/api/v1/events/stream"))
        .header("X-Api-Key", KEY);
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    request.send().await.unwrap()
}

/// Reads frames until one has an `id:`; returns its seq and type.
async fn next_event(response: &mut reqwest::Response, text: &mut String) -> (u64, String) {
    loop {
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let seq = frame.lines().find_map(|l| l.strip_prefix("id: "));
            let kind = frame.lines().find_map(|l| l.strip_prefix("event: "));
            if let (Some(seq), Some(kind)) = (seq, kind) {
                return (seq.parse().unwrap(), kind.to_owned());
            }
        }
        let chunk = tokio::time::timeout(DEADLINE, response.chunk())
            .await
            .expect("no event in time")
            .unwrap()
            .expect("stream ended");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

// See: issue 7 ("`Last-Event-ID` beyond the newest event makes the stream silent forever").
#[test]
fn a_last_event_id_beyond_the_newest_event_streams_from_now() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let video = sandbox.video("a.mkv");
    let (status, _) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202);
    let (client, runtime) = daemon.raw();
    runtime.block_on(async {
        let mut stream = open_stream(client, &daemon.base, Some("1000000")).await;
        assert_eq!(stream.status(), 200);
        let second = sandbox.video("b.mkv");
        let response = client
            .post(format!("{}/api/v1/subtitles", daemon.base))
            .header("X-Api-Key", KEY)
            .json(&json!({"path": second, "languages": ["fr"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let mut text = String::new();
        loop {
            let (seq, kind) = next_event(&mut stream, &mut text).await;
            assert!(seq > 1 && seq < 1000000, "{seq}");
            if kind == "subtitle.requested" {
                break;
            }
        }
    });
}

// See: issue 7 ("the number of streams is capped (a clear 503 beyond it)").
#[test]
fn streams_beyond_max_event_streams_get_a_json_503_until_one_closes() {
    let sandbox = Sandbox::new("");
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    std::fs::write(
        sandbox.config(),
        config.replace("[server]\n", "[server]\nmax_event_streams = 2\n"),
    )
    .unwrap();
    let daemon = sandbox.serve();
    let (client, runtime) = daemon.raw();
    runtime.block_on(async {
        let first = open_stream(client, &daemon.base, None).await;
        let second = open_stream(client, &daemon.base, None).await;
        assert_eq!(
            (first.status().as_u16(), second.status().as_u16()),
            (200, 200)
        );
        let third = open_stream(client, &daemon.base, None).await;
        assert_eq!(third.status(), 503);
        assert!(third.headers().contains_key("retry-after"));
        let body: Value = third.json().await.unwrap();
        assert_eq!(error_code(&body), "too_many_streams", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("server.max_event_streams"),
            "{body}"
        );
        drop(first);
        // The slot comes back once the daemon sees the client gone.
        let start = Instant::now();
        loop {
            let again = open_stream(client, &daemon.base, None).await;
            if again.status() == 200 {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "the slot never came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(second);
    });
}

/// Submits `requests` requests of 25 languages each, for videos with long names: a log of
/// about 100 events per request.
fn fill_the_log(sandbox: &Sandbox, daemon: &common::Served, requests: usize) {
    let languages = [
        "de", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "hu", "ro", "el", "tr",
        "ru", "uk", "ja", "ko", "zh", "ar", "he", "hi", "th", "vi",
    ];
    let long = "a rather long movie title, as some are".repeat(6);
    for i in 0..requests {
        let video = sandbox.video(&format!("{long} {i}/{long} {i}.mkv"));
        let (status, body) = daemon.post(
            "/api/v1/subtitles",
            &json!({"path": video, "languages": languages}),
        );
        assert_eq!(status, 202, "{body}");
    }
}

// See: issue 7 ("a client that does not read is dropped once its buffer is full").
#[test]
fn a_stream_whose_client_stops_reading_is_dropped_and_frees_its_slot() {
    let sandbox = Sandbox::new("");
    let config = std::fs::read_to_string(sandbox.config()).unwrap();
    std::fs::write(
        sandbox.config(),
        config.replace("[server]\n", "[server]\nmax_event_streams = 1\n"),
    )
    .unwrap();
    let daemon = sandbox.serve();
    fill_the_log(&sandbox, &daemon, 100);

    // A client that asks for the whole log and never reads a byte of it. Its receive
    // window is tiny, so the kernel buffers do not absorb the log.
    let address: std::net::SocketAddr = daemon.base.trim_start_matches("http://").parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&address.into()).unwrap();
    let mut silent: TcpStream = socket.into();
    write!(
        silent,
        "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nLast-Event-ID: 0\r\n\r\n"
    )
    .unwrap();
    // Its status line only, to know it holds the slot; then not a byte more.
    let mut head = [0u8; 64];
    silent.read_exact(&mut head).unwrap();
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let (client, runtime) = daemon.raw();
    let start = Instant::now();
    let mut held = false;
    runtime.block_on(async {
        loop {
            let other = open_stream(client, &daemon.base, None).await;
            match other.status().as_u16() {
                503 => held = true,
                // Once the silent client holds the only slot, a 200 means it was dropped.
                200 if held => break,
                200 => {}
                other => panic!("unexpected status {other}"),
            }
            drop(other);
            assert!(
                start.elapsed() < DEADLINE + Duration::from_secs(10),
                "the silent client kept its slot (held: {held})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5),
        "dropped too early: {elapsed:?}"
    );
    drop(silent);
}

// See: issue 7 ("An authenticated request whose body trickles at 1 byte/s stays open over
// 130 s").
#[test]
fn a_body_that_trickles_is_cut_off_with_a_json_408() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let address = daemon.base.trim_start_matches("http://").to_owned();
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    write!(
        slow,
        "POST /api/v1/subtitles HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    )
    .unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    loop {
        // One byte a second, for as long as the daemon listens.
        let _ = slow.write_all(b" ");
        let mut buffer = [0u8; 4096];
        match slow.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still open after {:?}: {}",
            start.elapsed(),
            String::from_utf8_lossy(&answer)
        );
    }
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(
        elapsed >= Duration::from_secs(8) && elapsed < Duration::from_secs(15),
        "{elapsed:?}"
    );
}

/// Sends `request` on a new connection and reads until the daemon closes it.
fn exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The daemon may answer and close before it has read everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

// See: issue 7 ("Errors produced by the HTTP layer … come back with empty bodies"). actix-http
// answers these itself and has no hook for a body: README (Operating) documents what the
// client gets, and this holds it to that; the daemon keeps serving.
#[test]
fn requests_the_http_layer_refuses_get_its_documented_bare_status_and_the_daemon_serves_on() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let address = daemon.base.trim_start_matches("http://").to_owned();
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(140 * 1024)
    );
    let many: String = (0..100).map(|n| format!("X-H{n}: 1\r\n")).collect();
    let many = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let cases: [(&str, &[u8], &str); 6] = [
        (
            "duplicate Content-Length",
            b"POST /api/v1/subtitles HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
            "400",
        ),
        (
            "Content-Length and Transfer-Encoding",
            b"POST /api/v1/subtitles HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            "400",
        ),
        (
            "invalid header bytes",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad\x01: y\r\n\r\n",
            "400",
        ),
        ("malformed request line", b"GET\x7f/ HTTP/1.1\r\n\r\n", "400"),
        ("a head over 128 KiB", huge.as_bytes(), "431"),
        ("more than 96 headers", many.as_bytes(), "431"),
    ];
    for (what, request, status) in cases {
        let answer = exchange(&address, request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {answer}"
        );
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("content-length: 0\r\n"), "{what}: {answer}");
        assert!(answer.ends_with("\r\n\r\n"), "{what}: a body: {answer}");
        let (code, health) = daemon.get("/health");
        assert_eq!(code, 200, "{what}: {health}");
    }
}

// See: engine brief, "raw paths with NUL/newlines reach the logs unescaped".
#[test]
fn a_path_with_a_newline_or_nul_cannot_forge_a_log_line() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.start();
    let body = json!({
        "eventType": "Download",
        "movie": {"title": "X", "folderPath": "/elsewhere"},
        "movieFile": {"path": "/elsewhere/x.mkv\nERROR cuewarden: forged line\u{0}\r\u{1b}[2J.mkv"},
    });
    let (client, _) = daemon.raw();
    let (status, answer) = daemon.call(
        client
            .post(format!(
                "{}/api/v1/webhooks/radarr?apikey={KEY}",
                daemon.base
            ))
            .header("Content-Type", "application/json")
            .body(body.to_string()),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["ignored"][0]["code"], "path_outside_library",
        "{answer}"
    );
    let deadline = Instant::now() + DEADLINE;
    while !daemon.log_text().contains("forged line") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, log) = daemon.terminate();
    let quoted: Vec<&str> = log.lines().filter(|l| l.contains("forged line")).collect();
    assert_eq!(quoted.len(), 1, "{log}");
    assert!(
        quoted[0].contains(r"x.mkv\nERROR cuewarden: forged line\0\r\x1b[2J.mkv"),
        "{}",
        quoted[0]
    );
    assert!(!log.lines().any(|l| l.starts_with("ERROR")), "{log}");
    assert!(!log.contains('\u{0}') && !log.contains('\r') && !log.contains('\u{1b}'));
}
