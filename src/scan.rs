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
    /// Paths (given, or reached through a symlink) whose real place is outside every
    /// library: the daemon would refuse them, so they are not scanned.
    pub outside: Vec<PathBuf>,
}

impl Report {
    /// Whether everything asked for could be scanned.
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty() && self.outside.is_empty()
    }
}

/// Folders a NAS or a media server keeps next to the media (thumbnails, metadata, trash).
fn skipped_folder(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('@')
        || matches!(name, "#recycle" | "$RECYCLE.BIN" | "lost+found")
}

/// Walks `roots` (depth first, names sorted) and reports the videos missing any of
/// `wanted`, calling `found` for each as it goes and `progress` after each video.
///
/// The daemon's rules apply: a video counts only when its real path (through symlinks) lies
/// inside one of `libraries`; a folder reached twice (a symlink loop) is walked once.
pub fn scan(
    roots: &[PathBuf],
    libraries: &[PathBuf],
    wanted: &[Language],
    mut found: impl FnMut(&Missing),
    mut progress: impl FnMut(usize),
) -> Report {
    let mut report = Report::default();
    let libraries: Vec<PathBuf> = libraries
        .iter()
        .filter_map(|root| root.canonicalize().ok())
        .collect();
    let inside = |real: &Path| libraries.iter().any(|root| real.starts_with(root));
    let mut visited = std::collections::HashSet::new();
    let mut pending: Vec<PathBuf> = roots.iter().rev().cloned().collect();
    while let Some(path) = pending.pop() {
        let real = match path.canonicalize() {
            Ok(real) => real,
            Err(err) => {
                report.unreadable.push((path, err));
                continue;
            }
        };
        if !inside(&real) {
            report.outside.push(path);
            continue;
        }
        if real.is_file() {
            if is_video(&path) {
                if let Some(missing) = check_video(&path, wanted, &mut report) {
                    found(&missing);
                    report.missing.push(missing);
                }
                progress(report.videos);
            }
            continue;
        }
        if !visited.insert(real) {
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

fn check_video(video: &Path, wanted: &[Language], report: &mut Report) -> Option<Missing> {
    report.videos += 1;
    let mut languages = Vec::new();
    for language in wanted {
        match existing_sidecars(video, language) {
            Ok(found) if found.is_empty() => languages.push(language.clone()),
            Ok(_) => {}
            Err(err) => {
                report.unreadable.push((video.to_owned(), err));
                return None;
            }
        }
    }
    (!languages.is_empty()).then(|| Missing {
        video: video.to_owned(),
        languages,
    })
}

/// Runs the `scan` command: prints one line per video that lacks a language as it is
/// found, then a summary; a progress count on stderr when it is a terminal. Returns the
/// report; the caller exits 1 when something could not be read or lies outside the
/// libraries.
pub fn run(roots: &[PathBuf], libraries: &[PathBuf], wanted: &[Language]) -> Report {
    let interactive = std::io::stderr().is_terminal();
    let clear_progress = || {
        if interactive {
            eprint!("\r\x1b[K");
        }
    };
    let report = scan(
        roots,
        libraries,
        wanted,
        |missing| {
            clear_progress();
            let languages: Vec<&str> = missing.languages.iter().map(Language::as_str).collect();
            println!(
                "{}  missing: {}",
                crate::control::printable(&missing.video.to_string_lossy()),
                languages.join(", ")
            );
        },
        |videos| {
            if interactive && videos % 50 == 0 {
                eprint!("\rscanning… {videos} videos");
                let _ = std::io::stderr().flush();
            }
        },
    );
    clear_progress();
    for (path, err) in &report.unreadable {
        eprintln!(
            "cannot read {}: {err}",
            crate::control::printable(&path.to_string_lossy())
        );
    }
    for path in &report.outside {
        eprintln!(
            "skipped {}: outside every [[libraries]] folder",
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
        let mut streamed = Vec::new();
        let report = scan(
            &[root.to_owned()],
            &[root.to_owned()],
            &[lang("fr"), lang("en")],
            |m| streamed.push(m.clone()),
            |n| seen.push(n),
        );
        assert_eq!(streamed, report.missing);
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
            &[dir.path().to_owned()],
            &[lang("fr")],
            |_| {},
            |_| {},
        );
        assert!(!report.is_complete());
        assert_eq!(report.videos, 1);
        assert_eq!(report.unreadable.len(), 1);
        assert_eq!(report.unreadable[0].0, dir.path().join("nope"));
    }

    #[test]
    fn symlink_loops_are_walked_once_and_links_out_of_the_library_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("lib");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(library.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(library.join("sub/a.mkv"), b"x").unwrap();
        std::fs::write(outside.join("secret.mkv"), b"x").unwrap();
        std::os::unix::fs::symlink(&library, library.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(&outside, library.join("out")).unwrap();

        let report = scan(
            std::slice::from_ref(&library),
            std::slice::from_ref(&library),
            &[lang("fr")],
            |_| {},
            |_| {},
        );
        assert_eq!(report.videos, 1, "{:?}", report.missing);
        assert_eq!(report.missing[0].video, library.join("sub/a.mkv"));
        assert_eq!(report.outside, [library.join("out")]);
        assert!(report.unreadable.is_empty());

        let report = scan(
            std::slice::from_ref(&outside),
            &[library],
            &[lang("fr")],
            |_| {},
            |_| {},
        );
        assert_eq!((report.videos, report.outside.len()), (0, 1));
    }
}
