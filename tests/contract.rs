//! Contract breaks found by probing the release binary as a hostile client would (issue 7,
//! "Small contract breaks found"): each test reproduces one through the binary or the
//! in-process daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{KEY, Sandbox, binary};
use serde_json::Value;

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
