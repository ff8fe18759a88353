//! The library walker: every video under some start folders (by default every library root),
//! with the languages wanted for it and the ones that have no subtitle next to it. It is the
//! one walk shared by `cuewarden scan` and the library sync.
//!
//! The walk is built to cost little more than `find -type f`:
//!
//! * one `readdir` per folder ([`Listing::read`]); entry kinds come from the dirent, and the
//!   sidecars of a video are matched in that sorted listing, so no file is `stat`ed;
//! * real paths are known without asking: a start folder is canonicalised once, and a child
//!   folder reached by a plain entry is its parent's real path plus its name. Only symlinks
//!   are canonicalised, and followed only when their target lies inside a library (a link
//!   out of the libraries is reported in [`WalkReport::outside`], not walked);
//! * each real folder is walked once, however many links lead to it (loops included);
//! * folders are shared by one worker per core through a queue.
//!
//! Workers finish in any order; the report is sorted by path, so it is the same every run.
//! Everything here is blocking: an async caller runs it through `spawn_blocking`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::files::{EntryKind, Listing, is_video};
use crate::language::Language;
use crate::library::Libraries;

/// One video and what it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    /// Its real path (symlinks resolved): the key the daemon files jobs under.
    pub path: PathBuf,
    /// The languages wanted for it: its library's, else the default.
    pub wanted: Arc<[Language]>,
    /// The wanted languages no sidecar next to it gives, in the order of `wanted`.
    pub missing: Vec<Language>,
}

/// A folder or a link the walk could not read.
#[derive(Debug)]
pub struct Unreadable {
    /// The path as the walk reached it.
    pub path: PathBuf,
    /// Why.
    pub error: io::Error,
}

/// A path whose real place lies outside every library: not walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    /// The start path or the symlink, as reached.
    pub path: PathBuf,
    /// Where it really leads.
    pub target: PathBuf,
    /// Whether it was a start path (the caller asked for it: an error) rather than a
    /// symlink met on the way (skipped by design).
    pub is_start: bool,
}

/// What a walk found, sorted by path.
#[derive(Debug, Default)]
pub struct WalkReport {
    /// Videos looked at.
    pub videos: usize,
    /// The videos that lack at least one wanted language.
    pub missing: Vec<Video>,
    /// Every language wanted for some video walked: the default ones first, in their order,
    /// then the libraries' own, sorted.
    pub wanted: Vec<Language>,
    /// Folders and links that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Start paths and symlinks leading outside every library.
    pub outside: Vec<Outside>,
}

impl WalkReport {
    /// Per wanted language (in the order of [`WalkReport::wanted`]), how many videos lack it.
    pub fn missing_by_language(&self) -> Vec<(Language, usize)> {
        self.wanted
            .iter()
            .map(|language| {
                let count = self
                    .missing
                    .iter()
                    .filter(|video| video.missing.contains(language))
                    .count();
                (language.clone(), count)
            })
            .collect()
    }

    /// Missing subtitles in all: one per video and language.
    pub fn missing_subtitles(&self) -> usize {
        self.missing.iter().map(|video| video.missing.len()).sum()
    }

    /// Whether a start path lies outside every library.
    pub fn has_start_outside(&self) -> bool {
        self.outside.iter().any(|outside| outside.is_start)
    }
}

/// Folder names a NAS or a media server keeps next to the media (thumbnails, metadata,
/// trash), and hidden entries: never walked, as Jellyfin ignores them.
fn is_skipped(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('@')
        || matches!(name, "#recycle" | "$RECYCLE.BIN" | "lost+found")
}

/// Walks folders for videos and the subtitles they lack, by the daemon's rules.
#[derive(Debug, Clone)]
pub struct Walker {
    libraries: Libraries,
    default_languages: Vec<Language>,
    threads: NonZeroUsize,
}

impl Walker {
    /// A walker over `libraries`, wanting `default_languages` (`[languages] wanted`) where a
    /// library does not say otherwise; one worker per available core.
    pub fn new(libraries: Libraries, default_languages: Vec<Language>) -> Self {
        let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        Self {
            libraries,
            default_languages,
            threads,
        }
    }

    /// The same walker with `threads` workers.
    pub fn with_threads(self, threads: NonZeroUsize) -> Self {
        Self { threads, ..self }
    }

    /// Walks every library root.
    pub fn walk_libraries(&self, on_video: &(dyn Fn(&Video) + Sync)) -> WalkReport {
        let roots: Vec<PathBuf> = self.libraries.iter().map(|l| l.root.clone()).collect();
        self.walk(&roots, on_video)
    }

    /// Walks `starts` (folders or videos, absolute), calling `on_video` for every video as
    /// it is found (from the worker threads, in no particular order).
    pub fn walk(&self, starts: &[PathBuf], on_video: &(dyn Fn(&Video) + Sync)) -> WalkReport {
        let shared = Shared::default();
        let mut found = Found::default();
        // Files: videos given as start paths and videos behind symlinks. Looked at after the
        // walk, when it is known whether their folder was walked (and they counted) anyway.
        let mut files = Vec::new();
        for start in starts {
            match start.canonicalize() {
                Err(error) => found.unreadable.push(Unreadable {
                    path: start.clone(),
                    error,
                }),
                Ok(real) if self.libraries.library_of_real(&real).is_none() => {
                    found.outside.push(Outside {
                        path: start.clone(),
                        target: real,
                        is_start: true,
                    });
                }
                Ok(real) if real.is_dir() => shared.push(vec![real]),
                Ok(real) => {
                    if is_video(&real) || is_video(start) {
                        files.push(real);
                    }
                }
            }
        }
        let workers = self.threads.get();
        let results: Vec<Found> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| scope.spawn(|| self.work(&shared, on_video)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for result in results {
            found.merge(result);
        }
        found.files.extend(files);
        let visited = shared.into_visited();
        self.check_files(&visited, &mut found, on_video);
        found.into_report(&self.default_languages)
    }

    /// One worker: takes folders from the queue until every worker is idle and it is empty.
    fn work(&self, shared: &Shared, on_video: &(dyn Fn(&Video) + Sync)) -> Found {
        let mut found = Found::default();
        let mut children = Vec::new();
        while let Some(dir) = shared.next() {
            // Marks the folder done even if the visit panics, so the others do not wait
            // forever for its children.
            let busy = Busy(shared);
            if shared.first_visit(&dir) {
                self.visit(&dir, &mut found, &mut children, on_video);
            }
            shared.push(std::mem::take(&mut children));
            drop(busy);
        }
        found
    }

    /// Reads one real folder: checks its videos, queues its folders, follows its links.
    fn visit(
        &self,
        dir: &Path,
        found: &mut Found,
        children: &mut Vec<PathBuf>,
        on_video: &(dyn Fn(&Video) + Sync),
    ) {
        let listing = match Listing::read(dir) {
            Ok(listing) => listing,
            Err(error) => {
                found.unreadable.push(Unreadable {
                    path: dir.to_owned(),
                    error,
                });
                return;
            }
        };
        let mut wanted: Option<Arc<[Language]>> = None;
        for (name, kind) in listing.entries() {
            if is_skipped(name) {
                continue;
            }
            match kind {
                EntryKind::Dir => children.push(dir.join(name)),
                EntryKind::File if is_video(Path::new(name)) => {
                    let wanted = wanted.get_or_insert_with(|| self.wanted_in(dir, found));
                    let video = check(dir, name, &listing, wanted);
                    found.record(video, on_video);
                }
                EntryKind::Symlink => self.follow(&dir.join(name), found, children),
                EntryKind::File | EntryKind::Other => {}
            }
        }
    }

    /// A symlink: walked (as its real target) only when it leads inside a library.
    fn follow(&self, link: &Path, found: &mut Found, children: &mut Vec<PathBuf>) {
        let real = match link.canonicalize() {
            Ok(real) => real,
            Err(error) => {
                found.unreadable.push(Unreadable {
                    path: link.to_owned(),
                    error,
                });
                return;
            }
        };
        if self.libraries.library_of_real(&real).is_none() {
            found.outside.push(Outside {
                path: link.to_owned(),
                target: real,
                is_start: false,
            });
            return;
        }
        match fs::metadata(&real) {
            Ok(meta) if meta.is_dir() => children.push(real),
            Ok(meta) if meta.is_file() && (is_video(&real) || is_video(link)) => {
                found.files.push(real);
            }
            Ok(_) => {}
            Err(error) => found.unreadable.push(Unreadable {
                path: link.to_owned(),
                error,
            }),
        }
    }

    /// Checks the videos given as start paths or reached through symlinks, except those in a
    /// folder the walk read (counted there already), each once.
    fn check_files(
        &self,
        visited: &HashSet<PathBuf>,
        found: &mut Found,
        on_video: &(dyn Fn(&Video) + Sync),
    ) {
        let mut files = std::mem::take(&mut found.files);
        files.sort_unstable();
        files.dedup();
        for file in files {
            let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
                continue;
            };
            let name = name.to_string_lossy();
            if visited.contains(dir) && is_video(&file) && !is_skipped(&name) {
                continue;
            }
            match Listing::read(dir) {
                Ok(listing) => {
                    let wanted = self.wanted_in(dir, found);
                    let video = check(dir, &name, &listing, &wanted);
                    found.record(video, on_video);
                }
                Err(error) => found.unreadable.push(Unreadable {
                    path: dir.to_owned(),
                    error,
                }),
            }
        }
    }

    /// The languages wanted in the real folder `dir`, noted in the report's list.
    fn wanted_in(&self, dir: &Path, found: &mut Found) -> Arc<[Language]> {
        let wanted: Arc<[Language]> = self
            .libraries
            .languages_for(dir, &self.default_languages)
            .into();
        for language in wanted.iter() {
            if !found.wanted.contains(language) {
                found.wanted.push(language.clone());
            }
        }
        wanted
    }
}

/// The video `name` in the real folder `dir`, checked against the folder's listing.
fn check(dir: &Path, name: &str, listing: &Listing, wanted: &Arc<[Language]>) -> Video {
    let present: Vec<Language> = listing
        .sidecars(name)
        .filter_map(|(_, sidecar)| sidecar.language)
        .collect();
    let missing = wanted
        .iter()
        .filter(|language| !present.iter().any(|found| language.is_satisfied_by(found)))
        .cloned()
        .collect();
    Video {
        path: dir.join(name),
        wanted: Arc::clone(wanted),
        missing,
    }
}

/// What one worker found.
#[derive(Debug, Default)]
struct Found {
    videos: usize,
    missing: Vec<Video>,
    wanted: Vec<Language>,
    unreadable: Vec<Unreadable>,
    outside: Vec<Outside>,
    /// Real paths of videos behind symlinks, checked after the walk.
    files: Vec<PathBuf>,
}

impl Found {
    fn record(&mut self, video: Video, on_video: &(dyn Fn(&Video) + Sync)) {
        self.videos += 1;
        on_video(&video);
        if !video.missing.is_empty() {
            self.missing.push(video);
        }
    }

    fn merge(&mut self, other: Found) {
        self.videos += other.videos;
        self.missing.extend(other.missing);
        for language in other.wanted {
            if !self.wanted.contains(&language) {
                self.wanted.push(language);
            }
        }
        self.unreadable.extend(other.unreadable);
        self.outside.extend(other.outside);
        self.files.extend(other.files);
    }

    fn into_report(mut self, default_languages: &[Language]) -> WalkReport {
        self.missing.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        self.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
        self.outside.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        self.outside.dedup_by(|a, b| a.path == b.path);
        // Workers met the languages in any order: put them in one.
        let mut wanted: Vec<Language> = default_languages
            .iter()
            .filter(|language| self.wanted.contains(language))
            .cloned()
            .collect();
        let mut others: Vec<Language> = self
            .wanted
            .into_iter()
            .filter(|language| !default_languages.contains(language))
            .collect();
        others.sort_unstable();
        wanted.extend(others);
        WalkReport {
            videos: self.videos,
            missing: self.missing,
            wanted,
            unreadable: self.unreadable,
            outside: self.outside,
        }
    }
}

/// The folders still to read, and how many workers are reading one (and may queue more).
#[derive(Debug, Default)]
struct Queue {
    pending: Vec<PathBuf>,
    busy: usize,
}

/// What the workers share.
#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    visited: Mutex<HashSet<PathBuf>>,
}

/// A lock that survives a panicked holder: the data stays consistent, since every critical
/// section here is a single push, pop or insert.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The next folder to read, waiting while another worker may still queue some; `None`
    /// once the queue is empty and every worker idle.
    fn next(&self) -> Option<PathBuf> {
        let mut queue = lock(&self.queue);
        loop {
            if let Some(dir) = queue.pending.pop() {
                queue.busy += 1;
                return Some(dir);
            }
            if queue.busy == 0 {
                return None;
            }
            queue = self
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn push(&self, dirs: Vec<PathBuf>) {
        if dirs.is_empty() {
            return;
        }
        lock(&self.queue).pending.extend(dirs);
        self.changed.notify_all();
    }

    /// Whether the real folder `dir` is seen for the first time.
    fn first_visit(&self, dir: &Path) -> bool {
        let mut visited = lock(&self.visited);
        if visited.contains(dir) {
            return false;
        }
        visited.insert(dir.to_owned())
    }

    fn into_visited(self) -> HashSet<PathBuf> {
        self.visited
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A worker reading a folder; when dropped, the worker is idle again.
struct Busy<'a>(&'a Shared);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut queue = lock(&self.0.queue);
        queue.busy -= 1;
        // Waiting workers wait for more folders (`push` wakes them) or for the end: the
        // last busy worker going idle with nothing queued.
        if queue.busy == 0 {
            drop(queue);
            self.0.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::Library;
    use std::os::unix::fs::symlink;

    fn lang(code: &str) -> Language {
        Language::parse(code).unwrap()
    }

    fn langs(codes: &[&str]) -> Vec<Language> {
        codes.iter().map(|c| lang(c)).collect()
    }

    fn touch(root: &Path, relative: &str) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    /// A temp dir, canonical (macOS-style `/tmp` links must not get in the way).
    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        (dir, real)
    }

    fn walker(roots: &[&Path], default: &[&str]) -> Walker {
        Walker::new(
            Libraries::from_roots(roots.iter().map(|r| r.to_path_buf())),
            langs(default),
        )
    }

    /// `(path relative to base, missing codes)` of each video lacking something.
    fn missing(report: &WalkReport, base: &Path) -> Vec<(String, Vec<String>)> {
        report
            .missing
            .iter()
            .map(|video| {
                let path = video.path.strip_prefix(base).unwrap_or(&video.path);
                let codes = video.missing.iter().map(|l| l.as_str().to_owned());
                (path.display().to_string(), codes.collect())
            })
            .collect()
    }

    fn pair(path: &str, codes: &[&str]) -> (String, Vec<String>) {
        (
            path.to_owned(),
            codes.iter().map(|c| (*c).to_owned()).collect(),
        )
    }

    #[test]
    fn reports_each_video_missing_a_wanted_language_sorted_by_path() {
        let (_dir, root) = temp();
        touch(&root, "Alpha (2019)/Alpha (2019).mkv");
        touch(&root, "Alpha (2019)/Alpha (2019).en.srt");
        touch(&root, "Alpha (2019)/Alpha (2019).fre.srt");
        touch(&root, "Beta (2020)/Beta (2020).mp4");
        touch(&root, "Beta (2020)/Beta (2020).en.srt");
        touch(&root, "Beta (2020)/Beta (2020).nfo");
        touch(&root, "Beta (2020)/poster.jpg");
        // A regional sidecar counts for its language.
        touch(&root, "Gamma/Gamma.mkv");
        touch(&root, "Gamma/Gamma.fr-FR.srt");
        touch(&root, "Gamma/Gamma.English.forced.ass");
        touch(&root, "Show/Season 01/Show S01E01.mkv");
        touch(&root, "Show/Season 01/Show S01E01.en.srt");
        touch(&root, "Show/Season 01/Show S01E02.mkv");
        touch(&root, "Show/Season 01/notes.txt");
        touch(&root, "@eaDir/Alpha (2019).mkv/SYNOPHOTO_THUMB.mkv");
        touch(&root, ".trash/Old.mkv");
        touch(&root, "#recycle/Deleted.mkv");

        let seen = std::sync::atomic::AtomicUsize::new(0);
        let report = walker(&[&root], &["fr", "en"]).walk_libraries(&|_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(report.videos, 5);
        assert_eq!(seen.into_inner(), 5, "on_video sees every video");
        assert!(report.unreadable.is_empty() && report.outside.is_empty());
        assert_eq!(
            missing(&report, &root),
            [
                pair("Beta (2020)/Beta (2020).mp4", &["fr"]),
                pair("Show/Season 01/Show S01E01.mkv", &["fr"]),
                pair("Show/Season 01/Show S01E02.mkv", &["fr", "en"]),
            ]
        );
        assert_eq!(report.wanted, langs(&["fr", "en"]));
        assert_eq!(
            report.missing_by_language(),
            [(lang("fr"), 3), (lang("en"), 1)]
        );
        assert_eq!(report.missing_subtitles(), 4);
        assert_eq!(report.missing[0].wanted.as_ref(), langs(&["fr", "en"]));
    }

    #[test]
    fn symlink_loops_and_two_links_to_one_folder_are_walked_once_under_the_real_path() {
        let (_dir, base) = temp();
        let library = base.join("lib");
        touch(&library, "store/Movie/Movie.mkv");
        touch(&library, "sub/a.mkv");
        symlink(&library, library.join("sub/loop")).unwrap();
        fs::create_dir_all(library.join("links")).unwrap();
        symlink(library.join("store/Movie"), library.join("links/one")).unwrap();
        symlink(library.join("store/Movie"), library.join("links/two")).unwrap();
        // A link to a video in another folder of the library.
        symlink(
            library.join("store/Movie/Movie.mkv"),
            library.join("sub/linked.mkv"),
        )
        .unwrap();

        for threads in [1, 4] {
            let report = walker(&[&library], &["fr"])
                .with_threads(NonZeroUsize::new(threads).unwrap())
                .walk_libraries(&|_| {});
            assert_eq!(report.videos, 2, "threads={threads}: {:?}", report.missing);
            assert_eq!(
                missing(&report, &library),
                [
                    pair("store/Movie/Movie.mkv", &["fr"]),
                    pair("sub/a.mkv", &["fr"])
                ]
            );
            assert!(report.unreadable.is_empty() && report.outside.is_empty());
        }

        // Walked from the links alone, the videos are listed where they really are.
        let report = walker(&[&library], &["fr"]).walk(
            &[library.join("links/one"), library.join("sub/linked.mkv")],
            &|_| {},
        );
        assert_eq!(report.videos, 1);
        assert_eq!(
            missing(&report, &library),
            [pair("store/Movie/Movie.mkv", &["fr"])]
        );
    }

    #[test]
    fn links_out_of_the_libraries_are_reported_not_walked() {
        let (_dir, base) = temp();
        let library = base.join("lib");
        let outside = base.join("outside");
        touch(&library, "a/a.mkv");
        touch(&outside, "secret.mkv");
        symlink(&outside, library.join("out")).unwrap();
        symlink(outside.join("secret.mkv"), library.join("a/b.mkv")).unwrap();

        let report = walker(&[&library], &["fr"]).walk_libraries(&|_| {});
        assert_eq!(report.videos, 1);
        assert_eq!(missing(&report, &library), [pair("a/a.mkv", &["fr"])]);
        assert!(report.unreadable.is_empty());
        assert_eq!(
            report.outside,
            [
                Outside {
                    path: library.join("a/b.mkv"),
                    target: outside.join("secret.mkv"),
                    is_start: false,
                },
                Outside {
                    path: library.join("out"),
                    target: outside.clone(),
                    is_start: false,
                },
            ]
        );
        assert!(!report.has_start_outside());

        // Asked for explicitly, a folder outside is refused as a start.
        let report = walker(&[&library], &["fr"]).walk(std::slice::from_ref(&outside), &|_| {});
        assert_eq!(report.videos, 0);
        assert!(report.has_start_outside());
    }

    #[test]
    fn nested_libraries_want_their_own_languages() {
        let (_dir, base) = temp();
        let media = base.join("media");
        let anime = media.join("anime");
        touch(&media, "Movie/Movie.mkv");
        touch(&media, "Movie/Movie.fr.srt");
        touch(&anime, "Show/Show 01.mkv");
        touch(&anime, "Show/Show 01.en.srt");
        touch(&anime, "Show/Show 02.mkv");
        touch(&anime, "Show/Show 02.ja.srt");
        let libraries = Libraries::new(vec![
            Library::new(media.clone()),
            Library {
                root: anime.clone(),
                languages: Some(langs(&["ja", "en"])),
            },
        ]);
        let report = Walker::new(libraries, langs(&["fr"])).walk_libraries(&|_| {});
        // The anime folder is walked once, though it is reached as a root and from /media.
        assert_eq!(report.videos, 3);
        assert_eq!(
            missing(&report, &media),
            [
                pair("anime/Show/Show 01.mkv", &["ja"]),
                pair("anime/Show/Show 02.mkv", &["en"])
            ]
        );
        assert_eq!(report.missing[0].wanted.as_ref(), langs(&["ja", "en"]));
        // The default first, then the libraries' own, sorted.
        assert_eq!(report.wanted, langs(&["fr", "en", "ja"]));
        assert_eq!(
            report.missing_by_language(),
            [(lang("fr"), 0), (lang("en"), 1), (lang("ja"), 1)]
        );
    }

    #[test]
    fn what_cannot_be_read_is_reported_with_the_error() {
        let (_dir, base) = temp();
        let library = base.join("lib");
        touch(&library, "ok/ok.mkv");
        touch(&library, "locked/hidden.mkv");
        symlink(library.join("nowhere"), library.join("ok/dangling")).unwrap();
        let locked = library.join("locked");
        fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        // Root reads any folder: the locked one only counts where permissions hold.
        let is_enforced = fs::read_dir(&locked).is_err();

        let report =
            walker(&[&library], &["fr"]).walk(&[library.clone(), library.join("gone")], &|_| {});
        fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut expected = vec![library.join("gone"), library.join("ok/dangling")];
        if is_enforced {
            expected.insert(1, locked.clone());
        }
        let unreadable: Vec<_> = report.unreadable.iter().map(|u| u.path.clone()).collect();
        assert_eq!(unreadable, expected);
        assert_eq!(
            report.unreadable[0].error.kind(),
            io::ErrorKind::NotFound,
            "{:?}",
            report.unreadable
        );
        assert_eq!(report.videos, if is_enforced { 1 } else { 2 });
    }

    #[test]
    fn start_paths_may_be_videos_and_overlap() {
        let (_dir, base) = temp();
        let library = base.join("lib");
        touch(&library, "A/a.mkv");
        touch(&library, "A/a.fr.srt");
        touch(&library, "A/B/b.mkv");
        touch(&library, "A/notes.nfo");
        let report = walker(&[&library], &["fr"]).walk(
            &[
                library.join("A/B/b.mkv"),
                library.join("A"),
                library.join("A/B"),
                library.join("A/notes.nfo"),
            ],
            &|_| {},
        );
        assert_eq!(report.videos, 2);
        assert_eq!(missing(&report, &library), [pair("A/B/b.mkv", &["fr"])]);
    }

    #[test]
    fn the_report_is_the_same_whatever_the_number_of_workers() {
        let (_dir, root) = temp();
        for show in 0..8 {
            for season in 0..5 {
                for episode in 0..6 {
                    let name = format!("S{show}/Season {season}/S{show} E{episode}");
                    touch(&root, &format!("{name}.mkv"));
                    if episode % 3 == 0 {
                        touch(&root, &format!("{name}.en.srt"));
                    }
                }
            }
        }
        let run = |threads| {
            let report = walker(&[&root], &["fr", "en"])
                .with_threads(NonZeroUsize::new(threads).unwrap())
                .walk_libraries(&|_| {});
            (report.videos, missing(&report, &root))
        };
        let one = run(1);
        assert_eq!(one.0, 240);
        assert_eq!(one.1.len(), 240);
        assert_eq!(one.1.iter().map(|(_, m)| m.len()).sum::<usize>(), 400);
        assert_eq!(run(3), one);
        assert_eq!(run(8), one);
    }
}
