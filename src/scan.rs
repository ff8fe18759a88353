//! `cuewarden scan [PATH…]`: a one-shot, read-only walk of the libraries (or of the given
//! folders) that reports every video missing a wanted subtitle language, the same way the
//! daemon decides (sidecar files in any naming Jellyfin recognises). It does not need the
//! daemon and changes nothing.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use cuewarden_actors::Language;
use cuewarden_actors::files::{existing_sidecars, is_video};

/// One video and the wanted languages it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The video.
    pub video: PathBuf,
    /// Wanted languages without a subtitle next to it.
    pub languages: Vec<Language>,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Report {
    /// Videos looked at.
    pub videos: usize,
    /// Videos lacking at least one language, in walk order.
    pub missing: Vec<Missing>,
    /// Folders or files that could not be read, with why.
    pub unreadable: Vec<(PathBuf, std::io::Error)>,
}

/// Folders a NAS or a media server keeps next to the media (thumbnails, metadata, trash).
fn skipped_folder(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('@')
        || matches!(name, "#recycle" | "$RECYCLE.BIN" | "lost+found")
}

/// Walks `roots` (depth first, names sorted) and reports the videos missing any of
/// `wanted`. `progress` is called after each video with the running count.
pub fn scan(roots: &[PathBuf], wanted: &[Language], mut progress: impl FnMut(usize)) -> Report {
    let mut report = Report::default();
    let mut pending: Vec<PathBuf> = roots.iter().rev().cloned().collect();
    while let Some(path) = pending.pop() {
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(err) => {
                report.unreadable.push((path, err));
                continue;
            }
        };
        if meta.is_file() {
            if is_video(&path) {
                check_video(&path, wanted, &mut report);
                progress(report.videos);
            }
            continue;
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(err) => {
                report.unreadable.push((path, err));
                continue;
            }
        };
        let mut children: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| !skipped_folder(&entry.file_name().to_string_lossy()))
            .map(|entry| entry.path())
            .collect();
        children.sort();
        pending.extend(children.into_iter().rev());
    }
    report
}

fn check_video(video: &Path, wanted: &[Language], report: &mut Report) {
    report.videos += 1;
    let mut languages = Vec::new();
    for language in wanted {
        match existing_sidecars(video, language) {
            Ok(found) if found.is_empty() => languages.push(language.clone()),
            Ok(_) => {}
            Err(err) => {
                report.unreadable.push((video.to_owned(), err));
                return;
            }
        }
    }
    if !languages.is_empty() {
        report.missing.push(Missing {
            video: video.to_owned(),
            languages,
        });
    }
}

/// Runs the `scan` command: prints one line per video that lacks a language, then a
/// summary; a progress count on stderr when it is a terminal.
pub fn run(roots: &[PathBuf], wanted: &[Language]) -> Report {
    let interactive = std::io::stderr().is_terminal();
    let report = scan(roots, wanted, |videos| {
        if interactive && videos % 50 == 0 {
            eprint!("\rscanning… {videos} videos");
            let _ = std::io::stderr().flush();
        }
    });
    if interactive {
        eprint!("\r\x1b[K");
    }
    for missing in &report.missing {
        let languages: Vec<&str> = missing.languages.iter().map(Language::as_str).collect();
        println!(
            "{}  missing: {}",
            crate::control::printable(&missing.video.to_string_lossy()),
            languages.join(", ")
        );
    }
    for (path, err) in &report.unreadable {
        eprintln!(
            "cannot read {}: {err}",
            crate::control::printable(&path.to_string_lossy())
        );
    }
    let subtitles: usize = report.missing.iter().map(|m| m.languages.len()).sum();
    println!(
        "{} videos scanned; {} lack {} subtitle(s) in {}",
        report.videos,
        report.missing.len(),
        subtitles,
        wanted
            .iter()
            .map(Language::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn lang(code: &str) -> Language {
        Language::parse(code).unwrap()
    }

    #[test]
    fn reports_each_video_missing_a_wanted_language() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |relative: &str| {
            let path = root.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        };
        write("Alpha (2019)/Alpha (2019).mkv");
        write("Alpha (2019)/Alpha (2019).en.srt");
        write("Alpha (2019)/Alpha (2019).fre.srt");
        write("Beta (2020)/Beta (2020).mp4");
        write("Beta (2020)/Beta (2020).en.srt");
        write("Show/Season 01/Show S01E01.mkv");
        write("Show/Season 01/notes.txt");
        write("@eaDir/Alpha (2019).mkv/SYNOPHOTO_THUMB.mkv");
        write(".trash/Old.mkv");

        let mut seen = Vec::new();
        let report = scan(&[root.to_owned()], &[lang("fr"), lang("en")], |n| {
            seen.push(n)
        });
        assert_eq!(report.videos, 3);
        assert_eq!(seen, [1, 2, 3]);
        assert!(report.unreadable.is_empty());
        assert_eq!(
            report.missing,
            [
                Missing {
                    video: root.join("Beta (2020)/Beta (2020).mp4"),
                    languages: vec![lang("fr")],
                },
                Missing {
                    video: root.join("Show/Season 01/Show S01E01.mkv"),
                    languages: vec![lang("fr"), lang("en")],
                },
            ]
        );
    }

    #[test]
    fn a_missing_root_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mkv"), b"x").unwrap();
        let report = scan(
            &[dir.path().join("nope"), dir.path().join("a.mkv")],
            &[lang("fr")],
            |_| {},
        );
        assert_eq!(report.videos, 1);
        assert_eq!(report.unreadable.len(), 1);
        assert_eq!(report.unreadable[0].0, dir.path().join("nope"));
    }
}
