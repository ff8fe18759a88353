//! `POST /api/v1/webhooks/{jellyfin,sonarr,radarr}` through the daemon on loopback: every
//! payload shape of the fixtures, the Jellyfin plugin's `text/plain` body whose `ItemId` is
//! looked up through a loopback Jellyfin (`GET /Items?Ids=`), Test and unknown events,
//! malformed bodies, videos outside every library, the senders' ways of giving the key,
//! and one job per language when the API and a webhook report the same video.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use base64::Engine as _;
use common::{KEY, Sandbox, Served};
use serde_json::{Value, json};

use common::jellyfin::API_KEY as JELLYFIN_KEY;
const JELLYFIN_ITEM_ADDED: &str = include_str!("fixtures/jellyfin_webhook_itemadded.json");
const SONARR_DOWNLOAD: &str = include_str!("fixtures/sonarr_download.json");
const SONARR_TEST: &str = include_str!("fixtures/sonarr_test.json");
const RADARR_DOWNLOAD: &str = include_str!("fixtures/radarr_download.json");
const RADARR_TEST: &str = include_str!("fixtures/radarr_test.json");

const EPISODE: &str =
    "tv/Northern Relay/Season 02/Northern Relay - S02E05 - Static Bloom WEBDL-1080p.mkv";
const MOVIE: &str = "movies/The Quiet Harbor (2021)/The Quiet Harbor (2021) Bluray-1080p.mkv";

fn fake_jellyfin() -> String {
    common::loopback::jellyfin_items()
}

/// A sandbox whose Sonarr/Radarr/Jellyfin paths (`/media/tv`, `/media/movies`) map into
/// its library, with a Jellyfin at `jellyfin_url` when given.
fn sandbox(jellyfin_url: Option<&str>) -> Sandbox {
    let sandbox = Sandbox::new("");
    let library = sandbox.library().display().to_string();
    let mut extra = format!(
        "[[path_mappings]]\nfrom = \"/media/tv\"\nto = \"{library}/tv\"\n\
         [[path_mappings]]\nfrom = \"/media/movies\"\nto = \"{library}/movies\"\n"
    );
    if let Some(url) = jellyfin_url {
        extra.push_str(&format!(
            "[jellyfin]\nurl = \"{url}\"\napi_key = \"{JELLYFIN_KEY}\"\n"
        ));
    }
    let mut config = std::fs::read_to_string(sandbox.config()).unwrap();
    config.push_str(&extra);
    std::fs::write(sandbox.config(), config).unwrap();
    sandbox
}

/// Posts `body` to the webhook of `sender` with the key in basic auth (empty user name, as
/// Sonarr and Radarr send it), as `content_type`.
fn post_webhook(daemon: &Served, sender: &str, body: &str, content_type: &str) -> (u16, Value) {
    let (client, _) = daemon.raw();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{KEY}"));
    daemon.call(
        client
            .post(format!("{}/api/v1/webhooks/{sender}", daemon.base))
            .header("Authorization", format!("Basic {basic}"))
            .header("Content-Type", content_type)
            .body(body.to_owned()),
    )
}

fn job(daemon: &Served, id: &str) -> Value {
    let (status, job) = daemon.get(&format!("/api/v1/jobs/{id}"));
    assert_eq!(status, 200, "{job}");
    job
}

/// The jobs of the one accepted video of an answer, each checked to be a webhook job with
/// priority `critical` for `video`; returns their ids by language.
fn accepted_jobs(daemon: &Served, answer: &Value, video: &PathBuf) -> Vec<(String, String)> {
    let accepted = answer["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), 1, "{answer}");
    assert_eq!(accepted[0]["path"], json!(video), "{answer}");
    let mut jobs: Vec<(String, String)> = accepted[0]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let id = j["id"].as_str().unwrap().to_owned();
            let stored = job(daemon, &id);
            assert_eq!(stored["origin"], "webhook", "{stored}");
            assert_eq!(stored["priority"], "critical", "{stored}");
            assert_eq!(stored["path"], json!(video), "{stored}");
            (stored["language"].as_str().unwrap().to_owned(), id)
        })
        .collect();
    jobs.sort();
    assert_eq!(
        jobs.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
        ["en", "fr"],
        "one job per wanted language"
    );
    jobs
}

fn webhook_health(daemon: &Served) -> Value {
    let (status, health) = daemon.get("/health/sources");
    assert_eq!(status, 200, "{health}");
    health["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "webhook")
        .cloned()
        .expect("the webhook source is listed")
}

#[test]
fn sonarr_download_in_both_shapes_becomes_critical_webhook_jobs() {
    let sandbox = sandbox(None);
    let episode = sandbox.video(EPISODE);
    let next = sandbox.video("tv/Northern Relay/Season 02/E06.mkv");
    let daemon = sandbox.serve();

    let (status, answer) = post_webhook(&daemon, "sonarr", SONARR_DOWNLOAD, "application/json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["event"], &answer["upgrade"]),
        (&json!("Download"), &json!(false))
    );
    accepted_jobs(&daemon, &answer, &episode);

    // On Import Complete: episodeFiles[], one with a path, one with a relativePath only.
    let mut complete: Value = serde_json::from_str(SONARR_DOWNLOAD).unwrap();
    let object = complete.as_object_mut().unwrap();
    let file = object.remove("episodeFile").unwrap();
    object.remove("isUpgrade");
    let mut relative = file.clone();
    relative.as_object_mut().unwrap().remove("path");
    relative["relativePath"] = json!("Season 02/E06.mkv");
    object.insert("episodeFiles".into(), json!([file, relative]));
    let (status, answer) =
        post_webhook(&daemon, "sonarr", &complete.to_string(), "application/json");
    assert_eq!(status, 200, "{answer}");
    let accepted = answer["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), 2, "{answer}");
    assert_eq!(accepted[0]["path"], json!(episode));
    assert_eq!(accepted[1]["path"], json!(next));
    assert!(answer.get("upgrade").is_none(), "{answer}");
    // The episode already had its jobs: the same two answered, two new for E06.
    assert_eq!(daemon.all_job_ids().len(), 4);

    let health = webhook_health(&daemon);
    assert_eq!(health["state"], "running", "{health}");
    assert_eq!(health["detected"], 3, "{health}");
    assert!(health["last_message"].is_string(), "{health}");
}

#[test]
fn radarr_download_with_the_key_in_the_query_and_from_folder_and_relative_path() {
    let sandbox = sandbox(None);
    let movie = sandbox.video(MOVIE);
    let daemon = sandbox.serve();
    let (client, _) = daemon.raw();
    let (status, answer) = daemon.call(
        client
            .post(format!(
                "{}/api/v1/webhooks/radarr?apikey={KEY}",
                daemon.base
            ))
            .header("Content-Type", "application/json")
            .body(RADARR_DOWNLOAD),
    );
    assert_eq!(status, 200, "{answer}");
    let first = accepted_jobs(&daemon, &answer, &movie);

    let mut relative: Value = serde_json::from_str(RADARR_DOWNLOAD).unwrap();
    relative["movieFile"]
        .as_object_mut()
        .unwrap()
        .remove("path");
    let (status, answer) =
        post_webhook(&daemon, "radarr", &relative.to_string(), "application/json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        accepted_jobs(&daemon, &answer, &movie),
        first,
        "deduplicated"
    );
}

#[test]
fn a_jellyfin_text_plain_item_added_is_looked_up_by_its_item_id() {
    let sandbox = sandbox(Some(&fake_jellyfin()));
    let episode = sandbox.video(EPISODE);
    let daemon = sandbox.serve();
    // The plugin's default content type; its {{ItemId}} has dashes (D format).
    let (status, answer) = post_webhook(
        &daemon,
        "jellyfin",
        JELLYFIN_ITEM_ADDED,
        "text/plain; charset=utf-8",
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["event"], "ItemAdded");
    let jobs = accepted_jobs(&daemon, &answer, &episode);
    assert_eq!(
        job(&daemon, &jobs[0].1)["jellyfin_item_id"],
        "e5d4c3b2a1f04e9d8c7b6a5f4e3d2c1b"
    );

    // An item Jellyfin does not know: answered 2xx with the reason (retrying cannot help).
    let unknown = JELLYFIN_ITEM_ADDED.replace("e5d4c3b2-a1f0", "00000000-0000");
    let (status, answer) = post_webhook(&daemon, "jellyfin", &unknown, "text/plain");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["ignored"][0]["code"], "unknown_jellyfin_item",
        "{answer}"
    );

    // Other notification types and items that are not videos create nothing.
    for other in [
        JELLYFIN_ITEM_ADDED.replace("\"ItemAdded\"", "\"PlaybackStart\""),
        JELLYFIN_ITEM_ADDED.replace("\"Episode\"", "\"Season\""),
    ] {
        let (status, answer) = post_webhook(&daemon, "jellyfin", &other, "text/plain");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], json!([]), "{answer}");
    }
    assert_eq!(daemon.all_job_ids().len(), 2);
}

#[test]
fn a_jellyfin_item_without_jellyfin_configured_is_explained() {
    let sandbox = sandbox(None);
    let daemon = sandbox.serve();
    let (status, answer) = post_webhook(&daemon, "jellyfin", JELLYFIN_ITEM_ADDED, "text/plain");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ignored"][0]["code"], "jellyfin_not_configured");
    assert_eq!(webhook_health(&daemon)["refused"], 1);
}

#[test]
fn test_and_unknown_events_and_fields_create_nothing() {
    let sandbox = sandbox(None);
    sandbox.video(EPISODE);
    let daemon = sandbox.serve();
    for (sender, body) in [("sonarr", SONARR_TEST), ("radarr", RADARR_TEST)] {
        let (status, answer) = post_webhook(&daemon, sender, body, "application/json");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["event"], "Test");
        assert_eq!(answer["accepted"], json!([]));
    }
    let grab = SONARR_DOWNLOAD.replace("\"Download\"", "\"Grab\"");
    let future = json!({"eventType": "SeriesTeleported", "instanceName": "Sonarr", "x": {"y": 1}});
    for body in [grab, future.to_string()] {
        let (status, answer) = post_webhook(&daemon, "sonarr", &body, "application/json");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["accepted"], json!([]), "{answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("nothing to do")
        );
    }
    // Unknown fields on a real Download are fine.
    let mut extended: Value = serde_json::from_str(SONARR_DOWNLOAD).unwrap();
    extended["somethingFromSonarrV6"] = json!({"nested": [1, 2, 3]});
    extended["episodes"][0]["finaleType"] = json!("series");
    let (status, answer) =
        post_webhook(&daemon, "sonarr", &extended.to_string(), "application/json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"].as_array().unwrap().len(), 1);
    assert_eq!(daemon.all_job_ids().len(), 2, "only the Download made jobs");
}

#[test]
fn malformed_bodies_are_a_json_400_and_the_daemon_keeps_serving() {
    let sandbox = sandbox(None);
    let daemon = sandbox.serve();
    for (sender, body) in [
        ("sonarr", "{\"eventType\": \"Download\", "),
        ("radarr", "not json at all"),
        ("jellyfin", "<xml/>"),
        ("sonarr", "[1, 2, 3]"),
        ("sonarr", "{\"series\": {\"path\": \"/media/tv/x\"}}"),
        ("radarr", "{\"eventType\": \"Download\", \"movie\": {}}"),
        (
            "jellyfin",
            "{\"NotificationType\": \"ItemAdded\", \"ItemId\": \"nope\"}",
        ),
        ("sonarr", ""),
    ] {
        let (status, answer) = post_webhook(&daemon, sender, body, "application/json");
        assert_eq!(status, 400, "{sender} {body:?}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(sender),
            "{answer}"
        );
    }
    let (status, answer) = post_webhook(&daemon, "plex", "{}", "application/json");
    assert_eq!(
        (status, &answer["error"]["code"]),
        (404, &json!("not_found"))
    );
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("no webhook for \"plex\""), "{message}");
    assert!(webhook_health(&daemon)["last_error"].is_string());
    assert_eq!(daemon.get("/api/v1/jobs").0, 200);
}

#[test]
fn a_video_outside_every_library_is_answered_2xx_and_shown_on_health() {
    let sandbox = sandbox(None);
    let daemon = sandbox.serve();
    let elsewhere = SONARR_DOWNLOAD.replace("/media/tv/", "/srv/elsewhere/");
    let (status, answer) = post_webhook(&daemon, "sonarr", &elsewhere, "application/json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], json!([]));
    let ignored = &answer["ignored"][0];
    assert_eq!(ignored["code"], "path_outside_library", "{answer}");
    assert!(
        ignored["target"]
            .as_str()
            .unwrap()
            .starts_with("/srv/elsewhere/")
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("sending it again will not help"),
        "{answer}"
    );
    // A mapped path whose file is not there is explained the same way.
    let (status, answer) = post_webhook(&daemon, "radarr", RADARR_DOWNLOAD, "application/json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ignored"][0]["code"], "video_not_found", "{answer}");

    let health = webhook_health(&daemon);
    assert_eq!(health["refused"], 2, "{health}");
    assert_eq!(health["detected"], 0, "{health}");
    assert!(
        health["last_refused"]["target"]
            .as_str()
            .unwrap()
            .contains("The Quiet Harbor"),
        "{health}"
    );
    assert!(daemon.all_job_ids().is_empty());
}

#[test]
fn webhooks_need_the_key_and_refuse_cross_site_pages() {
    let sandbox = sandbox(None);
    sandbox.video(EPISODE);
    let daemon = sandbox.serve();
    let (client, _) = daemon.raw();
    let url = format!("{}/api/v1/webhooks/sonarr", daemon.base);
    let (status, answer) = daemon.call(client.post(&url).body(SONARR_DOWNLOAD));
    assert_eq!(
        (status, &answer["error"]["code"]),
        (401, &json!("unauthorized"))
    );
    let wrong = base64::engine::general_purpose::STANDARD.encode(":wrong-key");
    let (status, _) = daemon.call(
        client
            .post(&url)
            .header("Authorization", format!("Basic {wrong}"))
            .body(SONARR_DOWNLOAD),
    );
    assert_eq!(status, 401);
    // A page of another site cannot post one, even as text/plain.
    let (status, answer) = daemon.call(
        client
            .post(format!("{url}?apikey={KEY}"))
            .header("Origin", "https://evil.example")
            .header("Content-Type", "text/plain")
            .body(SONARR_DOWNLOAD),
    );
    assert_eq!(
        (status, &answer["error"]["code"]),
        (403, &json!("cross_site_request"))
    );
    // Sonarr's "PUT" method works too; GET does not.
    let (status, answer) = daemon.call(
        client
            .put(format!("{url}?apikey={KEY}"))
            .body(SONARR_DOWNLOAD),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, _) = daemon.call(client.get(format!("{url}?apikey={KEY}")));
    assert_eq!(status, 405);
    assert_eq!(daemon.all_job_ids().len(), 2);
}

#[test]
fn the_api_then_a_webhook_for_the_same_video_is_one_job_per_language_seen_by_both() {
    let sandbox = sandbox(None);
    let episode = sandbox.video(EPISODE);
    let daemon = sandbox.serve();
    let (status, requested) = daemon.post(
        "/api/v1/subtitles",
        &json!({"path": episode.display().to_string()}),
    );
    assert_eq!(status, 202, "{requested}");
    let mut api_ids: Vec<String> = requested["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    api_ids.sort();

    for _ in 0..3 {
        let (status, answer) = post_webhook(&daemon, "sonarr", SONARR_DOWNLOAD, "application/json");
        assert_eq!(status, 200, "{answer}");
        let mut ids: Vec<String> = answer["accepted"][0]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        assert_eq!(ids, api_ids, "the webhook answers the API's jobs");
    }
    let mut all = daemon.all_job_ids();
    all.sort();
    assert_eq!(all, api_ids, "one job per language");

    for id in &api_ids {
        let (_, events) = daemon.get(&format!("/api/v1/jobs/{id}/events"));
        let events = events["events"].as_array().unwrap();
        let by = |kind: &str| -> Vec<&str> {
            events
                .iter()
                .filter(|e| e["type"] == kind)
                .map(|e| e["source"].as_str().unwrap())
                .collect()
        };
        assert_eq!(by("subtitle.requested"), ["api"]);
        assert_eq!(by("job.detected"), ["webhook"], "once, not per repeat");
        // The job keeps the API as its origin, and runs at the webhook's higher priority.
        let stored = job(&daemon, id);
        assert_eq!(
            (&stored["origin"], &stored["priority"]),
            (&json!("api"), &json!("critical"))
        );
    }
}
