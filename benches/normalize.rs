//! What normalising a download costs (`cargo bench --bench normalize`): a feature-length
//! SRT (1,500 cues) in windows-1251 (the slowest path: strict UTF-8 fails, then the
//! language's code pages and `chardetng` compete), the same in UTF-8, a 24-episode season
//! pack ZIP, and the same write through `files::write_atomically` (temp file, fsync,
//! rename, directory fsync) into a temporary library. Prints p50/p99 of
//! `BENCH_ITERATIONS` (200) runs each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use cuewarden_actors::files::write_atomically;
use cuewarden_actors::normalize::normalize;
use cuewarden_actors::{Language, Libraries};

fn feature_srt(cues: usize) -> String {
    let mut out = String::new();
    for i in 0..cues {
        let start = i as u64 * 3_000;
        let line = |ms: u64| {
            format!(
                "{:02}:{:02}:{:02},{:03}",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000
            )
        };
        out.push_str(&format!(
            "{}\r\n{} --> {}\r\n<i>Съешь же ещё этих мягких</i>\r\nфранцузских булок, да выпей чаю. {i}\r\n\r\n",
            i + 1,
            line(start),
            line(start + 2_500)
        ));
    }
    out
}

fn measure(name: &str, iterations: usize, mut run: impl FnMut()) {
    let mut times: Vec<Duration> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name:<44} p50 {:>8.3} ms   p99 {:>8.3} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
}

fn main() {
    let iterations = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let ru = Language::parse("ru").unwrap();
    let text = feature_srt(1_500);
    let cp1251 = encoding_rs::WINDOWS_1251.encode(&text).0.into_owned();
    let movie = Path::new("/library/Movie (2019)/Movie (2019).mkv");
    println!("{} bytes of SRT, {iterations} runs each", cp1251.len());
    measure("normalize: 1,500 cues, windows-1251", iterations, || {
        normalize(&cp1251, movie, &ru).unwrap();
    });
    measure("normalize: 1,500 cues, UTF-8", iterations, || {
        normalize(text.as_bytes(), movie, &ru).unwrap();
    });
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for episode in 1..=24 {
        writer
            .start_file(
                format!("Show.S01/Show.S01E{episode:02}.srt"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
        writer.write_all(&cp1251).unwrap();
    }
    let pack = writer.finish().unwrap().into_inner();
    let episode = Path::new("/library/Show/Season 01/Show S01E17.mkv");
    measure(
        "normalize: 24-episode season pack (ZIP)",
        iterations,
        || {
            normalize(&pack, episode, &ru).unwrap();
        },
    );
    let library = tempfile::tempdir().unwrap();
    let libraries = Libraries::from_roots([library.path().to_owned()]);
    let normalized = normalize(&cp1251, movie, &ru).unwrap();
    let target = library.path().join("Movie (2019).ru.srt");
    measure("write_atomically (fsync ×2, rename)", iterations, || {
        write_atomically(&target, normalized.text.as_bytes(), &libraries).unwrap();
    });
}
