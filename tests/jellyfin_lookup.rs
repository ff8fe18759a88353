//! `POST /subtitles` with a `jellyfin_item_id`: resolved through a loopback server that
//! speaks Jellyfin's `GET /Items?Ids=` as Jellyfin 10.9–12.0 do, then mapped
//! with `[[path_mappings]]`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::{Daemon, Sandbox};
use serde_json::{Value, json};

const JELLYFIN_KEY: &str = "jf-api-key-42";
const ITEMS_PAGE: &str = include_str!("fixtures/jellyfin_items_page.json");
const MOVIE_ID: &str = "c2a7e9f14b3d4e8fa6b1d0c9e8f7a6b5";

async fn items(request: HttpRequest, query: web::Query<Vec<(String, String)>>) -> HttpResponse {
    let token = format!("MediaBrowser Token=\"{JELLYFIN_KEY}\"");
    if request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(token.as_str())
    {
        return HttpResponse::Unauthorized().finish();
    }
    let ids: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("ids"))
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let page: Value = serde_json::from_str(ITEMS_PAGE).unwrap();
    let found: Vec<Value> = page["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| ids.iter().any(|id| item["Id"] == id.as_str()))
        .cloned()
        .collect();
    HttpResponse::Ok()
        .json(json!({"Items": found, "TotalRecordCount": found.len(), "StartIndex": 0}))
}

/// Starts the fake Jellyfin on port 0 in its own thread; returns its base URL.
fn fake_jellyfin() -> String {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(|| App::new().route("/Items", web::get().to(items)))
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
