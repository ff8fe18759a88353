//! Contract breaks found by probing the release binary as a hostile client would (issue 7,
//! "Small contract breaks found"): each test reproduces one through the binary or the
//! in-process daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{KEY, Sandbox, binary};
use serde_json::{Value, json};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn check_config(sandbox: &Sandbox, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut command = Command::new(binary());
    command
        .args(["check-config", "--config"])
        .arg(sandbox.config());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

// See: issue 7 ("a library that does not exist or is a file is a warning").
#[test]
fn check_config_warns_about_a_missing_or_file_library_and_still_exits_0() {
    let sandbox = Sandbox::new("");
    let (code, stderr) = check_config(&sandbox, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    std::fs::remove_dir(sandbox.library()).unwrap();
    let (code, stderr) = check_config(&sandbox, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: libraries[0].path: ") && stderr.contains("does not exist"),
        "{stderr}"
    );

    std::fs::write(sandbox.library(), b"a file").unwrap();
    let (code, stderr) = check_config(&sandbox, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("is not a folder"), "{stderr}");
}

// See: issue 7 ("`CUEWARDEN__BOGUS__X=1` gives `bogus: unknown key` without naming the
// variable").
#[test]
fn check_config_names_the_variable_of_an_unknown_section() {
    let sandbox = Sandbox::new("");
    let (code, stderr) = check_config(&sandbox, &[("CUEWARDEN__BOGUS__X", "1")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("bogus (from CUEWARDEN__BOGUS__X): unknown key"),
        "{stderr}"
    );
}

// See: issue 7 ("`api_key = \" \"` is accepted").
#[test]
fn check_config_refuses_a_blank_api_key() {
    let sandbox = Sandbox::new("");
    let (code, stderr) = check_config(&sandbox, &[("CUEWARDEN__SERVER__API_KEY", " ")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("server.api_key (from CUEWARDEN__SERVER__API_KEY): the key"),
        "{stderr}"
    );
}

// See: issue 7 ("`?APIKEY=` authenticates, then the route rejects it as an unknown field").
#[test]
fn the_query_key_has_one_spelling() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let (status, body) = daemon.call(
        daemon
            .raw()
            .0
            .get(format!("{}/api/v1/jobs?apikey={KEY}&limit=5", daemon.base)),
    );
    assert_eq!(status, 200, "{body}");
    for spelling in ["APIKEY", "ApiKey", "api_key"] {
        let (status, body) = daemon.call(
            daemon
                .raw()
                .0
                .get(format!("{}/api/v1/jobs?{spelling}={KEY}", daemon.base)),
        );
        assert_eq!(
            (status, error_code(&body)),
            (401, "unauthorized"),
            "{spelling}: {body}"
        );
    }
}

// See: issue 7 ("Cross-site requests: ... a page on another origin can POST `text/plain` to
// `/api/v1/subtitles` and get 202").
#[test]
fn cross_site_and_non_json_posts_are_refused() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let video = sandbox.video("a.mkv");
    let body = json!({"path": video, "languages": ["fr"]}).to_string();
    let (client, runtime) = daemon.raw();
    let url = format!("{}/api/v1/subtitles", daemon.base);
    let post = || {
        client
            .post(&url)
            .basic_auth("me", Some(KEY))
            .body(body.clone())
    };
    let status_policy_body = |request: reqwest::RequestBuilder| {
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let policy = response
                .headers()
                .get("referrer-policy")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, policy, body)
        })
    };

    // What the probe did: a form-like text/plain POST, the browser's cached login along.
    let (status, _, answer) =
        status_policy_body(post().header("Content-Type", "text/plain;charset=UTF-8"));
    assert_eq!(
        (status, error_code(&answer)),
        (415, "unsupported_media_type"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/plain"),
        "{answer}"
    );
    let (status, _, answer) = status_policy_body(post());
    assert_eq!(
        (status, error_code(&answer)),
        (415, "unsupported_media_type")
    );

    let json_post = || post().header("Content-Type", "application/json");
    for (header, value) in [
        ("Origin", "https://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
    ] {
        let (status, policy, answer) = status_policy_body(json_post().header(header, value));
        assert_eq!(
            (status, error_code(&answer)),
            (403, "cross_site_request"),
            "{header}: {value}: {answer}"
        );
        assert_eq!(policy.as_deref(), Some("no-referrer"));
    }
    let (status, _, answer) = status_policy_body(
        client
            .post(format!("{}/api/v1/jobs/0000/cancel", daemon.base))
            .header("X-Api-Key", KEY)
            .header("Sec-Fetch-Site", "cross-site"),
    );
    assert_eq!((status, error_code(&answer)), (403, "cross_site_request"));

    // The web page itself (same origin), and non-browser senders, are served.
    let own = daemon.base.clone();
    let (status, policy, answer) = status_policy_body(
        json_post()
            .header("Origin", own)
            .header("Sec-Fetch-Site", "same-origin"),
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(policy.as_deref(), Some("no-referrer"));
    let (status, _, answer) = status_policy_body(
        client
            .get(format!("{}/api/v1/jobs", daemon.base))
            .header("X-Api-Key", KEY)
            .header("Sec-Fetch-Site", "cross-site"),
    );
    assert_eq!(status, 200, "reads are not refused: {answer}");
    let (status, policy, _) = status_policy_body(client.get(format!("{}/health", daemon.base)));
    assert_eq!((status, policy.as_deref()), (200, Some("no-referrer")));
    let (status, policy, _) = status_policy_body(client.get(format!("{}/nope", daemon.base)));
    assert_eq!((status, policy.as_deref()), (404, Some("no-referrer")));
}

// See: issue 7 ("the page drops `?apikey=` from its URL once it has read it").
#[test]
fn the_web_page_drops_the_key_from_its_address() {
    let sandbox = Sandbox::new("");
    let daemon = sandbox.serve();
    let (status, page) = daemon.call(daemon.raw().0.get(format!("{}/?apikey={KEY}", daemon.base)));
    assert_eq!(status, 200);
    let page = page.as_str().unwrap();
    assert!(page.contains("params.delete(\"apikey\")"), "{page}");
    assert!(page.contains("history.replaceState("), "{page}");
}

// See: issue 7 ("A mode-000 video (daemon not root) is accepted with 202 and waits
// forever"). Tests run as root here, which opens anything: the daemon runs without the
// capabilities that let root ignore file modes, like the packaged `cuewarden` user.
#[test]
fn a_video_the_daemon_cannot_read_is_a_422_video_unreadable() {
    let setpriv = [
        "setpriv",
        "--bounding-set",
        "-dac_override,-dac_read_search",
        "--",
    ];
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let wrapper: &[&str] = if root {
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("skipped: running as root and setpriv is not installed");
            return;
        }
        &setpriv
    } else {
        &[]
    };
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new("");
    let video = sandbox.video("Locked (2020)/Locked (2020).mkv");
    std::fs::set_permissions(&video, std::fs::Permissions::from_mode(0o000)).unwrap();
    let daemon = common::Daemon::start_under(wrapper, &sandbox.config(), &[]);
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(
        (status, error_code(&body)),
        (422, "video_unreadable"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Locked (2020).mkv"),
        "{body}"
    );
    std::fs::set_permissions(&video, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": video, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
}

// See: the review of issue 10 ("README lacks the ranges of the upgrade keys").
#[test]
fn check_config_refuses_upgrade_values_outside_their_ranges_naming_the_key() {
    let sandbox = Sandbox::new("");
    for (key, variable, low, high) in [
        (
            "languages.upgrade_below_score",
            "CUEWARDEN__LANGUAGES__UPGRADE_BELOW_SCORE",
            0,
            101,
        ),
        (
            "languages.upgrade_window_days",
            "CUEWARDEN__LANGUAGES__UPGRADE_WINDOW_DAYS",
            0,
            3650,
        ),
        (
            "languages.upgrade_margin",
            "CUEWARDEN__LANGUAGES__UPGRADE_MARGIN",
            1,
            100,
        ),
    ] {
        for bad in [low - 1, high + 1] {
            let (code, stderr) = check_config(&sandbox, &[(variable, &bad.to_string())]);
            assert_eq!(code, Some(2), "{key} = {bad}: {stderr}");
            assert!(
                stderr.contains(&format!(
                    "{key} (from {variable}): {bad} is not between {low} and {high}"
                )),
                "{stderr}"
            );
        }
        for good in [low, high] {
            let (code, stderr) = check_config(&sandbox, &[(variable, &good.to_string())]);
            assert_eq!(code, Some(0), "{key} = {good}: {stderr}");
        }
    }
}
