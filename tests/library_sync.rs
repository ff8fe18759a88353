//! The library sync against a loopback server that speaks Jellyfin's paged `GET /Items`
//! (`StartIndex`/`Limit`, `TotalRecordCount`), plus the walk of a real library, through the
//! in-process daemon: one job per video and missing language, refusals counted, one sync at
//! a time, and the last sync kept in the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use common::{DEADLINE, Sandbox, Served};
use cuewarden::sources::library_sync::{LibrarySync, STATE_KEY, SyncAnswer, SyncTrigger};
use cuewarden_actors::walk::Walker;
use cuewarden_actors::{EventSource, Language};
use serde_json::{Value, json};

const JELLYFIN_KEY: &str = "jf-sync-key";

#[derive(Default)]
struct Fake {
    items: Vec<Value>,
    hold_second_page: AtomicBool,
    first_pages: AtomicUsize,
    pages: AtomicUsize,
}

fn item(id: &str, kind: &str, path: Option<&str>) -> Value {
    let mut item = json!({"Id": id, "Name": id, "Type": kind, "LocationType": "FileSystem",
        "MediaStreams": [{"Type": "Video", "Codec": "h264"}], "ProviderIds": {"Tmdb": "1"}});
    if let Some(path) = path {
        item["Path"] = json!(path);
    }
    item
}

async fn items(
    request: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
    fake: web::Data<Arc<Fake>>,
) -> HttpResponse {
    let token = format!("MediaBrowser Token=\"{JELLYFIN_KEY}\"");
    if request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(token.as_str())
    {
        return HttpResponse::Unauthorized().finish();
    }
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(get("Recursive").as_deref(), Some("true"));
    assert_eq!(get("IncludeItemTypes").as_deref(), Some("Movie,Episode"));
    assert!(get("Fields").unwrap().contains("Path"));
    let start: usize = get("StartIndex").unwrap().parse().unwrap();
    let limit: usize = get("Limit").unwrap().parse().unwrap();
    fake.pages.fetch_add(1, Ordering::SeqCst);
    if start == 0 {
        fake.first_pages.fetch_add(1, Ordering::SeqCst);
    }
    if start > 0 {
        while fake.hold_second_page.load(Ordering::SeqCst) {
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let page: Vec<Value> = fake.items.iter().skip(start).take(limit).cloned().collect();
    HttpResponse::Ok().json(json!({
        "Items": page, "TotalRecordCount": fake.items.len(), "StartIndex": start
    }))
}

fn serve_fake(fake: Arc<Fake>) -> String {
    common::loopback::serve(move |config| {
        config
            .app_data(web::Data::new(fake.clone()))
            .route("/Items", web::get().to(items));
    })
}

fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sync_report(daemon: &Served) -> Value {
    let (status, body) = daemon.get("/health/sources");
    assert_eq!(status, 200, "{body}");
    body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "library_sync")
        .cloned()
        .unwrap()
}

fn jobs(daemon: &Served) -> Vec<Value> {
    let (status, page) = daemon.get("/api/v1/jobs?limit=500");
    assert_eq!(status, 200, "{page}");
    page["jobs"].as_array().unwrap().clone()
}

#[test]
fn a_sync_lists_jellyfin_page_by_page_walks_the_library_and_runs_once_at_a_time() {
    let sandbox = Sandbox::new("[library_sync]\nenabled = true\n");
    let library = sandbox.library();
    // On disk: A has a French sidecar already; D is not known to Jellyfin.
    let a = sandbox.video("Movies/A (2020)/A (2020).mkv");
    std::fs::write(library.join("Movies/A (2020)/A (2020).fr.srt"), b"1\n").unwrap();
    let b = sandbox.video("Movies/B (2021)/B (2021).mkv");
    let c = sandbox.video("Shows/C/Season 01/C S01E01.mkv");
    let d = sandbox.video("Shows/C/Season 01/C S01E02.mkv");
    let fake = Arc::new(Fake {
        // Six items, three pages of two.
        items: vec![
            item("a", "Movie", Some("/media/Movies/A (2020)/A (2020).mkv")),
            item("b", "Movie", Some("/media/Movies/B (2021)/B (2021).mkv")),
            item(
                "c",
                "Episode",
                Some("/media/Shows/C/Season 01/C S01E01.mkv"),
            ),
            item("series", "Series", Some("/media/Shows/C")),
            item(
                "gone",
                "Movie",
                Some("/media/Movies/Gone (2019)/Gone (2019).mkv"),
            ),
            item(
                "elsewhere",
                "Movie",
                Some("/other/Else (2018)/Else (2018).mkv"),
            ),
        ],
        hold_second_page: AtomicBool::new(true),
        ..Fake::default()
    });
    let url = serve_fake(fake.clone());
    let mut config = std::fs::read_to_string(sandbox.config()).unwrap();
    config.push_str(&format!(
        "[jellyfin]\nurl = \"{url}\"\napi_key = \"{JELLYFIN_KEY}\"\n\
         [providers.jellyfin]\nenabled = false\n\
         [[path_mappings]]\nfrom = \"/media\"\nto = {:?}\n",
        library.display().to_string()
    ));
    std::fs::write(sandbox.config(), config).unwrap();

    let (sender, triggers) = mpsc::channel::<SyncTrigger>();
    let daemon = Served::start_with(&sandbox.config(), move |components| {
        // The configured sync, with pages of two items.
        components
            .sources
            .retain(|s| s.info().name != EventSource::LibrarySync);
        let wanted = vec![
            Language::parse("fr").unwrap(),
            Language::parse("en").unwrap(),
        ];
        let sync = LibrarySync::new(
            true,
            Duration::from_secs(24 * 3600),
            Walker::new(components.libraries.clone(), wanted),
            components.jellyfin.clone(),
        )
        .with_page_size(2);
        sender.send(sync.trigger()).unwrap();
        components.sources.push(Box::new(sync));
    });
    let trigger = triggers.recv().unwrap();

    // The first sync starts by itself (the store has never synced) and is held on page 2.
    wait_until("the first sync asks for page 2", || {
        (fake.pages.load(Ordering::SeqCst) >= 2).then_some(())
    });
    assert_eq!(
        trigger.request().blocking_recv().unwrap(),
        SyncAnswer::AlreadyRunning
    );
    assert_eq!(fake.first_pages.load(Ordering::SeqCst), 1);
    fake.hold_second_page.store(false, Ordering::SeqCst);

    let report = wait_until("the first sync finishes", || {
        let report = sync_report(&daemon);
        (report["refused"] == 2 && report["detected"] == 4).then_some(report)
    });
    assert_eq!(report["detected"], 4, "A, B, C and D: {report}");
    assert!(
        report["last_refused"]["target"]
            .as_str()
            .unwrap()
            .contains("Else (2018)")
            || report["last_refused"]["target"]
                .as_str()
                .unwrap()
                .contains("Gone (2019)"),
        "{report}"
    );
    let all = jobs(&daemon);
    assert_eq!(all.len(), 7, "A: en only; B, C, D: fr and en: {all:?}");
    assert!(all.iter().all(|j| j["origin"] == "library_sync"), "{all:?}");
    assert!(all.iter().all(|j| j["priority"] == "low"), "{all:?}");
    let of = |video: &std::path::Path| -> Vec<String> {
        let video = video.canonicalize().unwrap();
        let mut languages: Vec<String> = all
            .iter()
            .filter(|j| std::path::Path::new(j["path"].as_str().unwrap()) == video)
            .map(|j| j["language"].as_str().unwrap().to_owned())
            .collect();
        languages.sort();
        languages
    };
    assert_eq!(of(&a), ["en"]);
    for video in [&b, &c, &d] {
        assert_eq!(of(video), ["en", "fr"], "{}", video.display());
    }
    assert_eq!(fake.pages.load(Ordering::SeqCst), 3, "three pages of two");

    // Once the first has ended (it still records itself after the last count), a second
    // sync runs, and finds the same jobs still unfinished: nothing new.
    wait_until("a second sync starts", || {
        match trigger.request().blocking_recv().unwrap() {
            SyncAnswer::Started => Some(()),
            SyncAnswer::AlreadyRunning => None,
            SyncAnswer::NotRunning => panic!("the sync source stopped"),
        }
    });
    wait_until("the second sync finishes", || {
        let report = sync_report(&daemon);
        (report["refused"] == 4 && report["detected"] == 8).then_some(())
    });
    assert_eq!(fake.first_pages.load(Ordering::SeqCst), 2);
    assert_eq!(jobs(&daemon).len(), 7, "deduplicated by the JobManager");
    daemon.stop().unwrap();

    // The last sync is kept in the store, with its counts.
    let store = cuewarden_actors::Store::open(&sandbox.dir.path().join("data")).unwrap();
    let record = store.state(STATE_KEY).unwrap().unwrap();
    assert_eq!(record["jellyfin_items"], 5, "{record}");
    assert_eq!(record["videos_walked"], 4, "{record}");
    assert_eq!(record["videos_missing"], 4, "{record}");
    assert_eq!(record["accepted"], 4, "{record}");
    assert_eq!(record["refused"], 2, "{record}");
    assert_eq!(record["jobs"], 7, "{record}");
    assert!(record["jellyfin_error"].is_null(), "{record}");
    let finished: Vec<_> = store
        .events_after(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "sync.finished")
        .collect();
    assert_eq!(finished.len(), 2, "one sync.finished per sync");
    assert!(finished.iter().all(|e| e.job_id.is_none()));
    store.close();
}

#[test]
fn a_library_root_that_is_a_symlink_does_not_make_jellyfin_items_look_unseen() {
    let sandbox = Sandbox::new("[library_sync]\nenabled = true\n");
    let library = sandbox.library();
    let real = sandbox.dir.path().join("volume1-movies");
    std::fs::remove_dir_all(&library).unwrap();
    std::fs::create_dir_all(&real).unwrap();
    std::os::unix::fs::symlink(&real, &library).unwrap();
    // Complete already: both wanted languages are next to it.
    sandbox.video("A (2020)/A (2020).mkv");
    for language in ["fr", "en"] {
        std::fs::write(
            library.join(format!("A (2020)/A (2020).{language}.srt")),
            b"1\n",
        )
        .unwrap();
    }
    let fake = Arc::new(Fake {
        items: vec![item("a", "Movie", Some("/media/A (2020)/A (2020).mkv"))],
        ..Fake::default()
    });
    let url = serve_fake(fake.clone());
    let mut config = std::fs::read_to_string(sandbox.config()).unwrap();
    config.push_str(&format!(
        "[jellyfin]\nurl = \"{url}\"\napi_key = \"{JELLYFIN_KEY}\"\n\
         [providers.jellyfin]\nenabled = false\n\
         [[path_mappings]]\nfrom = \"/media\"\nto = {:?}\n",
        library.display().to_string()
    ));
    std::fs::write(sandbox.config(), config).unwrap();
    let daemon = sandbox.serve();
    wait_until("the sync lists Jellyfin", || {
        (fake.pages.load(Ordering::SeqCst) >= 1).then_some(())
    });
    // Stopping lets the sync in progress end and record itself.
    daemon.stop().unwrap();
    let store = cuewarden_actors::Store::open(&sandbox.dir.path().join("data")).unwrap();
    let record = store.state(STATE_KEY).unwrap().unwrap();
    assert_eq!(record["jellyfin_items"], 1, "{record}");
    assert_eq!(record["videos_walked"], 1, "{record}");
    assert_eq!(
        record["submitted"], 0,
        "nothing lacks, nothing unseen: {record}"
    );
    assert_eq!(store.job_count().unwrap(), 0);
    store.close();
}
