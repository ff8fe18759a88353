//! `POST /subtitles` with a `jellyfin_item_id`: resolved through a loopback server that
//! speaks Jellyfin's `GET /Items?Ids=` as Jellyfin 10.9–12.0 do, then mapped
//! with `[[path_mappings]]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Daemon, Sandbox};
use serde_json::json;

use common::jellyfin::API_KEY as JELLYFIN_KEY;
const MOVIE_ID: &str = "c2a7e9f14b3d4e8fa6b1d0c9e8f7a6b5";

fn fake_jellyfin() -> String {
    common::loopback::jellyfin_items()
}

fn sandbox(jellyfin_url: &str) -> Sandbox {
    let sandbox = Sandbox::new("");
    let extra = format!(
        "[jellyfin]\nurl = \"{jellyfin_url}\"\napi_key = \"{JELLYFIN_KEY}\"\n\
         [[path_mappings]]\nfrom = \"/media/movies\"\nto = {:?}\n",
        sandbox.library().display().to_string()
    );
    let mut config = std::fs::read_to_string(sandbox.config()).unwrap();
    config.push_str(&extra);
    std::fs::write(sandbox.config(), config).unwrap();
    sandbox
}

#[test]
fn a_jellyfin_item_id_becomes_a_job_on_the_mapped_path() {
    let sandbox = sandbox(&fake_jellyfin());
    let video = sandbox.video("The Quiet Harbor (2021)/The Quiet Harbor (2021) Bluray-1080p.mkv");
    let daemon = sandbox.serve();
    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"jellyfin_item_id": MOVIE_ID, "languages": ["fr"]}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["jobs"][0]["id"].as_str().unwrap();
    let (_, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(
        job["path"],
        json!(video),
        "Jellyfin's /media/movies is mapped into the library"
    );
    assert_eq!(job["jellyfin_item_id"], MOVIE_ID);

    let (status, body) = daemon.post(
        "/api/v1/subtitles",
        &json!({"jellyfin_item_id": "00000000000000000000000000000000"}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_jellyfin_item");
}

#[test]
fn jellyfin_refusing_the_key_or_being_down_is_a_bad_gateway() {
    let url = fake_jellyfin();
    let sandbox = sandbox(&url);
    let daemon = Daemon::start(
        &sandbox.config(),
        &[("CUEWARDEN__JELLYFIN__API_KEY", "wrong")],
    );
    let (status, body) = daemon.post("/api/v1/subtitles", &json!({"jellyfin_item_id": MOVIE_ID}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("jellyfin_unavailable")),
        "{body}"
    );
    drop(daemon);

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sandbox = sandbox_at_closed_port(closed);
    let daemon = sandbox.serve();
    let (status, body) = daemon.post("/api/v1/subtitles", &json!({"jellyfin_item_id": MOVIE_ID}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("jellyfin_unavailable")),
        "{body}"
    );
    let (status, _) = daemon.get("/api/v1/jobs");
    assert_eq!(status, 200, "still serving");
}

fn sandbox_at_closed_port(address: std::net::SocketAddr) -> Sandbox {
    // The listener was dropped when bind's temporary went away: nothing listens there.
    sandbox(&format!("http://{address}"))
}
