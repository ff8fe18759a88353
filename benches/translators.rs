//! Translation clients benchmark (`cargo bench --bench translators`). Not a test: it
//! measures and prints.
//!
//! A 1,649-cue film (dialogue of film-like lengths, a tenth of the cues in `<i>`, some with
//! two lines, an `{\an8}` now and then) goes through each client against its loopback fake
//! (tests/fake_translators) answering every request after 100 ms, in batches as large as
//! the client's limits allow, one batch after another (the Translator's worst case: no
//! requests in parallel). It prints requests, request bytes, wall time, and checks that
//! every cue came back, translated, with its tags.
//!
//! Knobs (environment): `BENCH_CUES` (1649), `BENCH_LATENCY_MS` (100).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/fake_translators/mod.rs"]
mod fake_translators;

use std::rc::Rc;
use std::time::{Duration, Instant};

use cuewarden_actors::Language;
use cuewarden_actors::clients::{TranslationRequest, TranslationService};
use fake_translators::{Fake, translate};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const WORDS: &[&str] = &[
    "we",
    "have",
    "to",
    "go",
    "now",
    "where",
    "is",
    "the",
    "car",
    "I",
    "don't",
    "know",
    "what",
    "you",
    "mean",
    "listen",
    "to",
    "me",
    "this",
    "time",
    "it",
    "will",
    "be",
    "different",
    "come",
    "on",
    "hurry",
    "they",
    "are",
    "coming",
    "back",
    "tonight",
    "please",
];

/// Cue `i` of the film: 3–12 words, a tenth in italics, a fifth on two lines.
fn cue(i: usize) -> String {
    let n = 3 + (i * 7) % 10;
    let words: Vec<&str> = (0..n)
        .map(|k| WORDS[(i * 13 + k * 5) % WORDS.len()])
        .collect();
    let mut text = words.join(" ");
    if i.is_multiple_of(5) {
        let middle = text.len() / 2;
        let space = text[middle..].find(' ').map_or(middle, |p| middle + p);
        text.replace_range(space..=space.min(text.len() - 1), "\n");
    }
    if i % 10 == 3 {
        text = format!("<i>{text}</i>");
    }
    if i.is_multiple_of(97) {
        text = format!("{{\\an8}}{text}");
    }
    text
}

/// Batches as the Translator makes them: as many cues as `max_texts` and `max_bytes` allow.
fn batches(cues: &[String], service: &dyn TranslationService) -> Vec<std::ops::Range<usize>> {
    let limits = service.limits();
    let mut out = Vec::new();
    let mut start = 0;
    while start < cues.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < cues.len()
            && end - start < limits.max_texts
            && (end == start || bytes + cues[end].len() <= limits.max_bytes)
        {
            bytes += cues[end].len();
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let count = env_number("BENCH_CUES", 1649);
    let latency = Duration::from_millis(env_number("BENCH_LATENCY_MS", 100) as u64);
    let cues: Vec<String> = (0..count).map(cue).collect();
    let characters: usize = cues.iter().map(|c| c.chars().count()).sum();
    println!(
        "{count} cues ({characters} characters), {} ms per request, batches one after another",
        latency.as_millis()
    );
    println!("| service | cues per request | requests | request bytes | wall time | cues lost |");
    println!("|---|---|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for kind in ["deepl", "libretranslate", "openai"] {
        let fake = Fake::start();
        fake.latency(latency);
        let settings = cuewarden::config::parse(&fake.config(kind, ""), "bench.toml", &[])
            .unwrap()
            .translator
            .unwrap();
        let client: Rc<dyn TranslationService> =
            cuewarden::clients::translators::translator(&settings).unwrap();
        let plan = batches(&cues, client.as_ref());
        let context = client.limits().context;
        let started = Instant::now();
        let mut out: Vec<String> = Vec::with_capacity(count);
        runtime.block_on(async {
            for range in &plan {
                let request = TranslationRequest {
                    texts: cues[range.clone()].to_vec(),
                    from: Language::parse("en").unwrap(),
                    to: Language::parse("fr").unwrap(),
                    before: cues[range.start.saturating_sub(context)..range.start].to_vec(),
                    after: cues[range.end..(range.end + context).min(count)].to_vec(),
                };
                out.extend(client.translate(request).await.unwrap());
            }
        });
        let wall = started.elapsed();
        let lost = cues
            .iter()
            .zip(&out)
            .filter(|(cue, got)| translate(cue) != **got)
            .count()
            + count.saturating_sub(out.len());
        println!(
            "| {kind} | {} | {} | {} | {:.2} s | {lost} |",
            client.limits().max_texts,
            fake.count(),
            fake.bytes(),
            wall.as_secs_f64()
        );
    }
}
