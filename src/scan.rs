//! `cuewarden scan [--json] [PATH…]`: a one-shot, read-only walk of the libraries (or of the
//! given folders and videos) that reports every video missing a wanted subtitle language,
//! the way the daemon decides. The walk is the core's [`Walker`]; this module only prints
//! its report. It does not need the daemon and changes nothing.
//!
//! The walk runs on every core, so videos are found in no fixed order; the list is printed
//! sorted by path once the walk is done, and a terminal sees a progress count meanwhile.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use cuewarden_actors::walk::{Video, WalkReport, Walker};
use cuewarden_actors::{Language, Libraries};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::control::printable;

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per video lacking a language, then a summary line.
    Text,
    /// One JSON object (see [`JsonReport`]).
    Json,
}

/// A progress line every this many videos (on a terminal only).
const PROGRESS_EVERY: usize = 500;

/// Runs the `scan` command over `starts` (every library root when empty) and prints the
/// report on stdout, problems on stderr. Returns whether the scan was complete: false when
/// something could not be read or a start path lies outside every library (exit 1). A
/// symlink leading out of the libraries is skipped by design and is not a failure.
pub fn run(
    starts: &[PathBuf],
    libraries: Libraries,
    wanted: &[Language],
    format: Format,
) -> io::Result<bool> {
    let interactive = io::stderr().is_terminal();
    let walker = Walker::new(libraries, wanted.to_vec());
    let seen = AtomicUsize::new(0);
    let progress = |_: &Video| {
        let videos = seen.fetch_add(1, Ordering::Relaxed) + 1;
        if interactive && videos.is_multiple_of(PROGRESS_EVERY) {
            eprint!("\rscanning… {}", plural(videos, "video", "videos"));
        }
    };
    for start in starts {
        if start.is_file() && !cuewarden_actors::files::is_video(start) {
            eprintln!("skipped {}: not a video (by its extension)", shown(start));
        }
    }
    let report = if starts.is_empty() {
        walker.walk_libraries(&progress)
    } else {
        walker.walk(starts, &progress)
    };
    if interactive && report.videos >= PROGRESS_EVERY {
        eprint!("\r\x1b[K");
    }
    print_problems(&report);
    let printed = match format {
        Format::Text => print_text(&report, &mut io::stdout().lock()),
        Format::Json => print_json(&report, &mut io::stdout().lock()),
    };
    match printed {
        // `cuewarden scan | head`: the reader has seen enough.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(report.unreadable.is_empty() && !report.has_start_outside())
}

/// `1 video`, `2 videos`, `0 videos`.
fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn shown(path: &Path) -> String {
    printable(&path.to_string_lossy()).into_owned()
}

fn print_problems(report: &WalkReport) {
    for unreadable in &report.unreadable {
        eprintln!(
            "cannot read {}: {}",
            shown(&unreadable.path),
            unreadable.error
        );
    }
    for outside in &report.outside {
        if outside.is_start {
            eprintln!(
                "cannot scan {}: it is outside every [[libraries]] folder",
                shown(&outside.path)
            );
        } else {
            eprintln!(
                "skipped {}: a link to {}, outside every [[libraries]] folder",
                shown(&outside.path),
                shown(&outside.target)
            );
        }
    }
}

/// The list, then `2 videos scanned; 1 lacks 2 subtitles (fr 1, en 1)`.
fn print_text(report: &WalkReport, out: &mut impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    for video in &report.missing {
        let languages: Vec<&str> = video.missing.iter().map(Language::as_str).collect();
        writeln!(
            out,
            "{}  missing: {}",
            shown(&video.path),
            languages.join(", ")
        )?;
    }
    let scanned = plural(report.videos, "video", "videos");
    let subtitles = report.missing_subtitles();
    if subtitles == 0 {
        writeln!(out, "{scanned} scanned; none lacks a wanted subtitle")?;
    } else {
        let lacking = report.missing.len();
        let verb = if lacking == 1 { "lacks" } else { "lack" };
        let by_language: Vec<String> = report
            .missing_by_language()
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(language, count)| format!("{language} {count}"))
            .collect();
        writeln!(
            out,
            "{scanned} scanned; {lacking} {verb} {} ({})",
            plural(subtitles, "subtitle", "subtitles"),
            by_language.join(", ")
        )?;
    }
    out.flush()
}

/// What `scan --json` prints: one object, keys in this order.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// Videos looked at.
    pub videos: usize,
    /// Per wanted language, how many videos lack it (every wanted language, zero included).
    pub missing: MissingCounts,
    /// The videos lacking at least one language, sorted by path.
    pub items: Vec<JsonItem<'a>>,
    /// What could not be read.
    pub unreadable: Vec<JsonUnreadable>,
    /// Start paths and symlinks that lead outside every library.
    pub outside: Vec<JsonOutside>,
}

/// A video and the languages it lacks.
#[derive(Debug, Serialize)]
pub struct JsonItem<'a> {
    /// Its real path.
    pub path: String,
    /// The wanted languages it has no subtitle in.
    pub missing: Vec<&'a str>,
}

/// A path that could not be read.
#[derive(Debug, Serialize)]
pub struct JsonUnreadable {
    /// The path.
    pub path: String,
    /// Why.
    pub error: String,
}

/// A path outside every library.
#[derive(Debug, Serialize)]
pub struct JsonOutside {
    /// The start path or symlink.
    pub path: String,
    /// Where it leads.
    pub target: String,
    /// `symlink` (skipped by design) or `argument` (a PATH given on the command line).
    pub kind: &'static str,
}

/// Language → count, serialised as a JSON object in the report's language order.
#[derive(Debug)]
pub struct MissingCounts(Vec<(Language, usize)>);

impl Serialize for MissingCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (language, count) in &self.0 {
            map.serialize_entry(language.as_str(), count)?;
        }
        map.end()
    }
}

impl<'a> JsonReport<'a> {
    /// The JSON form of a walk's report.
    pub fn new(report: &'a WalkReport) -> Self {
        let lossy = |path: &Path| path.to_string_lossy().into_owned();
        Self {
            videos: report.videos,
            missing: MissingCounts(report.missing_by_language()),
            items: report
                .missing
                .iter()
                .map(|video| JsonItem {
                    path: lossy(&video.path),
                    missing: video.missing.iter().map(Language::as_str).collect(),
                })
                .collect(),
            unreadable: report
                .unreadable
                .iter()
                .map(|u| JsonUnreadable {
                    path: lossy(&u.path),
                    error: u.error.to_string(),
                })
                .collect(),
            outside: report
                .outside
                .iter()
                .map(|o| JsonOutside {
                    path: lossy(&o.path),
                    target: lossy(&o.target),
                    kind: if o.is_start { "argument" } else { "symlink" },
                })
                .collect(),
        }
    }
}

fn print_json(report: &WalkReport, out: &mut impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    serde_json::to_writer(&mut out, &JsonReport::new(report))?;
    writeln!(out)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn counts_read_in_the_singular_and_the_plural() {
        assert_eq!(plural(0, "video", "videos"), "0 videos");
        assert_eq!(plural(1, "video", "videos"), "1 video");
        assert_eq!(plural(2, "video", "videos"), "2 videos");
    }

    #[test]
    fn an_empty_report_says_nothing_is_missing() {
        let mut out = Vec::new();
        print_text(&WalkReport::default(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 videos scanned; none lacks a wanted subtitle\n"
        );
        let mut out = Vec::new();
        print_json(&WalkReport::default(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"videos\":0,\"missing\":{},\"items\":[],\"unreadable\":[],\"outside\":[]}\n"
        );
    }
}
