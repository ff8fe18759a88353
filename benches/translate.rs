//! What translating a feature film costs (`cargo bench --bench translate`): a 1,649-cue
//! film (every line distinct, a sixth of them in italics, `{\an8}`, two-line cues, dialogue,
//! inner bold, coloured) through the Translator's batching with each real client against its
//! loopback fake (tests/fake_translators), every request answered after `BENCH_LATENCY_MS`
//! (100). The cache starts empty (a fresh store); a second run of the same film then shows
//! the cache's answer. Prints requests, request bytes, wall time and cues lost (a cue not
//! translated exactly as the fake would, or left in English). `BENCH_CUES` changes the film.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/fake_translators/mod.rs"]
mod fake_translators;

use std::time::{Duration, Instant};

use cuewarden_actors::subtitle::Cue;
use cuewarden_actors::translator::{Session, Usage};
use cuewarden_actors::{Language, Store};
use fake_translators::{Fake, translate};

fn film(n: usize) -> Vec<Cue> {
    (0..n)
        .map(|i| Cue {
            index: i as u32 + 1,
            start_ms: 60_000 + i as u64 * 3_100,
            end_ms: 62_400 + i as u64 * 3_100,
            text: match i % 6 {
                0 => format!("<i>Where were you on the night of the {i}th?</i>"),
                1 => format!("{{\\an8}}Somewhere north of the river,\nnear mile {i}."),
                2 => format!("- Did you see him at {i}?\n- Only for a moment."),
                3 => format!("It was <b>not</b> my idea to stay {i} days."),
                4 => format!("<font color=\"#ffff00\">[door {i} creaks]</font>"),
                _ => format!("We leave at dawn, all {i} of us,\nand nobody looks back."),
            },
        })
        .collect()
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn settings(fake: &Fake, kind: &str, dir: &std::path::Path) -> cuewarden::config::Settings {
    std::fs::create_dir_all(dir.join("library")).unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_key = \"bench-key-0123456789abcdef\"\n\
         [storage]\ndata_dir = {:?}\n[[libraries]]\npath = {:?}\n{}",
        dir.join("data").display().to_string(),
        dir.join("library").display().to_string(),
        fake.config(kind, "")
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    cuewarden::config::load(Some(&path)).unwrap()
}

struct Run {
    requests: usize,
    bytes: usize,
    wall: Duration,
    lost: usize,
    halvings: u32,
}

fn run(
    fake: &Fake,
    service: &dyn cuewarden_actors::clients::TranslationService,
    store: &Store,
    cues: &[Cue],
) -> Run {
    let (from, to) = (
        Language::parse("en").unwrap(),
        Language::parse("fr").unwrap(),
    );
    let usage = Usage::default();
    let session = Session {
        service,
        store: Some(store),
        budget: None,
        usage: &usage,
        from: &from,
        to: &to,
        job: "bench".to_owned(),
        run_for: None,
    };
    let (requests, bytes) = (fake.count(), fake.bytes());
    let start = Instant::now();
    let system = actix_rt::System::new();
    let (out, stats) = system.block_on(session.translate_cues(cues)).unwrap();
    let wall = start.elapsed();
    let lost = cues
        .iter()
        .zip(&out)
        .filter(|(cue, text)| {
            flat(text) != flat(&translate(&cue.text))
                || text.lines().count() != cue.text.lines().count()
        })
        .count();
    Run {
        requests: fake.count() - requests,
        bytes: fake.bytes() - bytes,
        wall,
        lost: lost.max(stats.failed_cues.len()),
        halvings: stats.halvings,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let latency = std::env::var("BENCH_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let n = std::env::var("BENCH_CUES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1649);
    let cues = film(n);
    println!("{n} cues, {latency} ms per request");
    for kind in ["deepl", "libretranslate", "openai"] {
        let fake = Fake::start();
        fake.latency(Duration::from_millis(latency));
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(&fake, kind, dir.path());
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let system = actix_rt::System::new();
        let service = system.block_on(async {
            cuewarden::clients::translators::translator(settings.translator.as_ref().unwrap())
                .unwrap()
        });
        let limits = service.limits();
        let cold = run(&fake, service.as_ref(), &store, &cues);
        let warm = run(&fake, service.as_ref(), &store, &cues);
        println!(
            "{kind:<15} batch {:>3} texts / {:>6} bytes, context {}: {:>3} requests, {:>7} bytes sent, {:>6.2} s, {} cues lost, {} halvings; again (cache): {} requests, {:.3} s, {} lost",
            limits.max_texts,
            limits.max_bytes,
            limits.context,
            cold.requests,
            cold.bytes,
            cold.wall.as_secs_f64(),
            cold.lost,
            cold.halvings,
            warm.requests,
            warm.wall.as_secs_f64(),
            warm.lost,
        );
        store.close();
    }
}
