//! The file watcher: inotify (through `notify` and its debouncer) on every library root.
//!
//! A new, written or moved-in video counts once its size and mtime have stayed the same for
//! `[watcher] stable_secs`; it is then handed to the intake with origin `watcher` (priority
//! `normal`). Ignored: hidden files and folders (`.name`, as Jellyfin ignores them) and a
//! NAS's own folders (`@eaDir`, `#recycle`, …), every name without a video extension —
//! partial and temporary downloads (`.part`, `.!qB`, `.tmp`, `.crdownload`), subtitles,
//! artwork, `.nfo`. A folder that is created or moved in is listed, and the videos inside
//! count like new files.
//!
//! notify calls back on its own threads: the callback only puts the debounced batch on a
//! bounded channel, and one task on the actix arbiter owns the state (the files waiting to
//! become stable, the roots). Every `stat` and listing runs on a blocking thread.
//!
//! Roots are checked every [`ROOT_RECHECK`]: a root that appears after start, or that was
//! removed and created again (a new inode), is watched again and listed (what is in it
//! counts as new). When the kernel's inotify limits are too low for a library
//! (`fs.inotify.max_user_watches`, `fs.inotify.max_user_instances`), that is logged once
//! with the `sysctl` that raises the limit and shown as this source's `failing` state;
//! the watch is tried again every [`LIMIT_RETRY`], and every other source keeps working.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cuewarden_actors::EventSource;
use cuewarden_actors::files::is_video;
use notify_debouncer_full::notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify_debouncer_full::notify::{self, EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, info, warn};

use super::{
    Detection, Intake, Source, SourceHandle, SourceInfo, SourceState, SourceStatus, Target,
};

/// How long notify's debouncer gathers events for a path before handing them over.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the library roots are looked at (a root that appears, or was re-created).
pub const ROOT_RECHECK: Duration = Duration::from_secs(2);
/// How often a watch refused by an inotify limit is tried again.
pub const LIMIT_RETRY: Duration = Duration::from_secs(300);
/// Detections handed to the intake at once.
pub const MAX_SUBMITTING: usize = 8;
/// How long a submitted file is remembered, so that a touch without a change does not
/// submit it again.
const SUBMITTED_MEMORY: Duration = Duration::from_secs(600);

/// The file watcher as a source.
pub struct FileWatcher {
    enabled: bool,
    stable: Duration,
}

impl FileWatcher {
    /// A watcher counting a file once it has been stable for `stable`.
    pub fn new(enabled: bool, stable: Duration) -> Self {
        Self { enabled, stable }
    }
}

impl Source for FileWatcher {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: EventSource::Watcher,
            enabled: self.enabled,
            description: "inotify on every library: a new or moved-in video counts once its size and mtime are stable for [watcher] stable_secs",
        }
    }

    fn start(self: Box<Self>, intake: Intake, status: SourceStatus) -> SourceHandle {
        SourceHandle::spawn(move |stopped| run(*self, intake, status, stopped))
    }
}

/// Size and modification time: what must stay the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    size: u64,
    mtime: SystemTime,
}

/// A file waiting to become stable.
struct Pending {
    stamp: Stamp,
    since: Instant,
}

/// One library root and how it is watched.
struct Root {
    path: PathBuf,
    /// Device and inode of the folder when last looked at; `None` while it is missing.
    identity: Option<(u64, u64)>,
    watched: bool,
    /// When a watch refused by a limit may be tried again.
    retry_at: Option<Instant>,
}

/// Whether a name is one the watcher never looks at: hidden (`.name`, which covers
/// `.part` downloads kept hidden and Jellyfin's own rule), or a NAS's own folder.
fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('@')
        || matches!(
            name,
            "#recycle" | "#snapshot" | "$RECYCLE.BIN" | "lost+found"
        )
}

/// Whether `path` lies in an ignored place: any of its components below the library root
/// (or, outside every root, any component) is ignored.
pub(crate) fn is_ignored(path: &Path, roots: &[PathBuf]) -> bool {
    let relative = roots
        .iter()
        .find_map(|root| path.strip_prefix(root).ok())
        .unwrap_or(path);
    relative
        .components()
        .any(|c| c.as_os_str().to_str().is_none_or(is_ignored_name))
}

/// Whether a file named so could be a video the watcher counts: not ignored, and with a
/// video extension (so `.part`, `.!qB`, `.tmp`, `.crdownload`, subtitles and `.nfo` are not).
pub(crate) fn is_candidate_file(path: &Path, roots: &[PathBuf]) -> bool {
    is_video(path) && !is_ignored(path, roots)
}

/// Why a watch failed, for people: an inotify limit names the sysctl that raises it.
pub(crate) fn describe_watch_error(error: &notify::Error) -> (String, bool) {
    let os = match &error.kind {
        notify::ErrorKind::Io(io) => io.raw_os_error(),
        _ => None,
    };
    if matches!(error.kind, notify::ErrorKind::MaxFilesWatch) || os == Some(28) {
        return (
            "the inotify watch limit is too low for the libraries: raise it with `sysctl fs.inotify.max_user_watches=524288` (and keep it in /etc/sysctl.d/)".to_owned(),
            true,
        );
    }
    if os == Some(24) {
        return (
            "too many inotify instances: raise the limit with `sysctl fs.inotify.max_user_instances=1024` (and keep it in /etc/sysctl.d/)".to_owned(),
            true,
        );
    }
    (error.to_string(), false)
}

/// The video files under `dir` (hidden and NAS folders skipped), with their stamps.
fn videos_under(dir: &Path, roots: &[PathBuf], out: &mut Vec<(PathBuf, Option<Stamp>)>) {
    let mut folders = vec![dir.to_owned()];
    let mut seen = HashSet::new();
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if is_ignored(&path, roots) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                // Each real folder once, whatever links lead to it.
                if seen.insert((meta.dev(), meta.ino())) {
                    folders.push(path);
                }
            } else if meta.is_file() && is_video(&path) {
                out.push((path, Some(stamp_of(&meta))));
            }
        }
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        size: meta.len(),
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

/// Looks at each path (blocking): a video file gives its stamp, a folder the videos inside,
/// a path that is gone `None`; anything else nothing.
pub(crate) fn observe(paths: Vec<PathBuf>, roots: &[PathBuf]) -> Vec<(PathBuf, Option<Stamp>)> {
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => videos_under(&path, roots, &mut out),
            Ok(meta) if meta.is_file() => {
                if is_candidate_file(&path, roots) {
                    out.push((path, Some(stamp_of(&meta))));
                }
            }
            Ok(_) => {}
            Err(_) => out.push((path, None)),
        }
    }
    out
}

fn identity_of(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|meta| (meta.dev(), meta.ino()))
}

type Watcher = Debouncer<RecommendedWatcher, RecommendedCache>;

/// The watcher's state, owned by its one task.
struct State {
    stable: Duration,
    intake: Intake,
    status: SourceStatus,
    roots: Vec<Root>,
    root_paths: Arc<[PathBuf]>,
    /// Paths named by events since the last look.
    fresh: HashSet<PathBuf>,
    pending: HashMap<PathBuf, Pending>,
    submitted: HashMap<PathBuf, (Stamp, Instant)>,
    submitting: Rc<Semaphore>,
    /// The limit problem already logged (logged once until it is solved).
    limit_logged: bool,
    /// The current limit problem, shown as the state.
    limit_error: Option<String>,
}

impl State {
    fn on_events(&mut self, events: Vec<DebouncedEvent>) {
        self.status.message();
        for event in events {
            match event.kind {
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                    for path in &event.paths {
                        self.forget(path);
                    }
                }
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                    if let Some(from) = event.paths.first() {
                        self.forget(from);
                    }
                    if let Some(to) = event.paths.get(1) {
                        self.consider(to, true);
                    }
                }
                EventKind::Create(_)
                | EventKind::Modify(ModifyKind::Name(_))
                | EventKind::Any
                | EventKind::Other => {
                    for path in &event.paths {
                        self.consider(path, true);
                    }
                }
                // A change of permissions or times alone is no new content.
                EventKind::Modify(ModifyKind::Metadata(_)) => {}
                EventKind::Modify(_) | EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                    for path in &event.paths {
                        self.consider(path, false);
                    }
                }
                EventKind::Access(_) => {}
            }
        }
    }

    /// Drops what is known of `path` and of everything under it.
    fn forget(&mut self, path: &Path) {
        self.fresh.remove(path);
        self.pending.retain(|p, _| !p.starts_with(path));
    }

    /// Notes `path` to be looked at; `may_be_folder` for events that can name a new folder.
    fn consider(&mut self, path: &Path, may_be_folder: bool) {
        if is_ignored(path, &self.root_paths) {
            return;
        }
        if is_video(path) || may_be_folder {
            self.fresh.insert(path.to_owned());
        }
    }

    fn on_errors(&mut self, errors: Vec<notify::Error>) {
        for error in errors {
            let (message, limit) = describe_watch_error(&error);
            if limit {
                self.limit_hit(message);
            } else {
                warn!(error = %message, "file watcher error");
                self.status.error(message);
            }
        }
    }

    fn limit_hit(&mut self, message: String) {
        if !self.limit_logged {
            warn!(
                "{message}; until then new files are not seen by the watcher (the library sync and the other sources keep working)"
            );
            self.limit_logged = true;
        }
        self.status.error(message.clone());
        self.status.set(SourceState::Failing {
            error: message.clone(),
        });
        self.limit_error = Some(message);
        for root in &mut self.roots {
            if !root.watched {
                root.retry_at = Some(Instant::now() + LIMIT_RETRY);
            }
        }
    }

    /// Looks at the roots: watches the ones that appeared or were re-created, and returns
    /// them (their content counts as new).
    async fn check_roots(&mut self, watcher: &mut Option<Watcher>, first: bool) {
        let paths: Vec<PathBuf> = self.roots.iter().map(|r| r.path.clone()).collect();
        let identities = tokio::task::spawn_blocking(move || {
            paths.iter().map(|p| identity_of(p)).collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let now = Instant::now();
        let mut appeared = Vec::new();
        let mut errors = Vec::new();
        let mut limit = None;
        for (root, identity) in self.roots.iter_mut().zip(identities) {
            let changed = root.identity != identity;
            let retry = !root.watched && root.retry_at.is_some_and(|at| at <= now);
            if !changed && !retry {
                continue;
            }
            if changed && root.watched {
                if let Some(watcher) = watcher.as_mut() {
                    let _ = watcher.unwatch(&root.path);
                }
                root.watched = false;
            }
            root.identity = identity;
            let Some(_) = identity else {
                if !first {
                    warn!(path = %root.path.display(), "library folder is gone; watched again when it comes back");
                }
                errors.push(format!(
                    "library folder {} does not exist; watched once it does",
                    root.path.display()
                ));
                continue;
            };
            let Some(watcher) = watcher.as_mut() else {
                continue;
            };
            match watcher.watch(&root.path, RecursiveMode::Recursive) {
                Ok(()) => {
                    root.watched = true;
                    root.retry_at = None;
                    if first {
                        debug!(path = %root.path.display(), "watching library");
                    } else {
                        info!(path = %root.path.display(), "watching library folder (again)");
                        appeared.push(root.path.clone());
                    }
                }
                Err(err) => {
                    let (message, is_limit) = describe_watch_error(&err);
                    root.retry_at = Some(now + LIMIT_RETRY);
                    if is_limit {
                        // Partly watched: drop it so the next try starts clean.
                        let _ = watcher.unwatch(&root.path);
                        root.identity = None;
                        limit = Some(message);
                    } else {
                        root.identity = None;
                        warn!(path = %root.path.display(), error = %message, "cannot watch library folder");
                        errors.push(message);
                    }
                }
            }
        }
        for error in errors {
            self.status.error(error);
        }
        if let Some(message) = limit {
            self.limit_hit(message);
        }
        self.fresh.extend(appeared);
        self.refresh_state();
    }

    fn refresh_state(&mut self) {
        let all_watched = self
            .roots
            .iter()
            .all(|root| root.watched || root.identity.is_none() && root.retry_at.is_none());
        if all_watched {
            if self.limit_error.take().is_some() {
                info!("the file watcher watches every library again");
                self.limit_logged = false;
            }
            self.status.set(SourceState::Connected);
        } else if let Some(error) = &self.limit_error {
            self.status.set(SourceState::Failing {
                error: error.clone(),
            });
        }
    }

    /// Looks at fresh and pending files; submits the ones stable long enough.
    async fn tick(&mut self) {
        let now = Instant::now();
        self.submitted
            .retain(|_, (_, at)| now.duration_since(*at) < SUBMITTED_MEMORY);
        if self.fresh.is_empty() && self.pending.is_empty() {
            return;
        }
        let mut paths: Vec<PathBuf> = self.fresh.drain().collect();
        paths.extend(self.pending.keys().cloned());
        paths.sort();
        paths.dedup();
        let roots = self.root_paths.clone();
        let Ok(observed) = tokio::task::spawn_blocking(move || observe(paths, &roots)).await else {
            return;
        };
        let now = Instant::now();
        let mut ready = Vec::new();
        for (path, stamp) in observed {
            let Some(stamp) = stamp else {
                self.pending.remove(&path);
                continue;
            };
            if self
                .submitted
                .get(&path)
                .is_some_and(|(done, _)| *done == stamp)
            {
                self.pending.remove(&path);
                continue;
            }
            let entry = self
                .pending
                .entry(path.clone())
                .or_insert(Pending { stamp, since: now });
            if entry.stamp != stamp {
                entry.stamp = stamp;
                entry.since = now;
            } else if now.duration_since(entry.since) >= self.stable {
                ready.push((path, stamp));
            }
        }
        for (path, stamp) in ready {
            self.pending.remove(&path);
            self.submitted.insert(path.clone(), (stamp, now));
            self.submit(path);
        }
    }

    fn submit(&self, path: PathBuf) {
        let intake = self.intake.clone();
        let status = self.status.clone();
        let slots = self.submitting.clone();
        actix_rt::spawn(async move {
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            let target = Target::Path(path);
            let name = target.to_string();
            let result = intake
                .submit(Detection::new(target, EventSource::Watcher))
                .await;
            match &result {
                Ok(submitted) => {
                    debug!(path = %submitted.path.display(), jobs = submitted.jobs.len(), "watcher: video arrived")
                }
                Err(err) => debug!(path = %name, error = %err, "watcher: not taken"),
            }
            status.record(&name, &result);
        });
    }
}

async fn run(
    watcher: FileWatcher,
    intake: Intake,
    status: SourceStatus,
    mut stopped: oneshot::Receiver<()>,
) {
    let roots: Vec<PathBuf> = intake.libraries().iter().map(|l| l.root.clone()).collect();
    let mut state = State {
        stable: watcher.stable,
        intake,
        status,
        roots: roots
            .iter()
            .map(|path| Root {
                path: path.clone(),
                identity: None,
                watched: false,
                retry_at: None,
            })
            .collect(),
        root_paths: roots.into(),
        fresh: HashSet::new(),
        pending: HashMap::new(),
        submitted: HashMap::new(),
        submitting: Rc::new(Semaphore::new(MAX_SUBMITTING)),
        limit_logged: false,
        limit_error: None,
    };
    let (sender, mut events) = mpsc::channel::<DebounceEventResult>(256);
    // Runs on notify's thread: only hands the batch over (blocking that thread, never an
    // arbiter, when the task is behind).
    let handler = move |result: DebounceEventResult| {
        let _ = sender.blocking_send(result);
    };
    let mut debouncer = match notify_debouncer_full::new_debouncer(DEBOUNCE, None, handler) {
        Ok(debouncer) => Some(debouncer),
        Err(err) => {
            let (message, limit) = describe_watch_error(&err);
            if limit {
                state.limit_hit(message);
            } else {
                warn!(error = %message, "cannot start the file watcher");
                state.status.error(message.clone());
                state.status.set(SourceState::Failing { error: message });
            }
            None
        }
    };
    if debouncer.is_some() {
        state.check_roots(&mut debouncer, true).await;
    }
    let tick_every = (watcher.stable / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = tokio::time::interval(ROOT_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(batch) = events.recv(), if debouncer.is_some() => match batch {
                Ok(list) => state.on_events(list),
                Err(errors) => state.on_errors(errors),
            },
            _ = tick.tick() => state.tick().await,
            _ = recheck.tick() => {
                if debouncer.is_some() {
                    state.check_roots(&mut debouncer, false).await;
                }
            }
        }
    }
    // Dropping the debouncer stops notify's threads.
    drop(debouncer);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn temporary_hidden_and_non_video_names_are_not_candidates() {
        let roots = vec![PathBuf::from("/lib")];
        for name in [
            "/lib/Movie (2020)/Movie (2020).mkv.part",
            "/lib/Movie (2020)/Movie (2020).mkv.!qB",
            "/lib/Movie (2020)/Movie (2020).tmp",
            "/lib/Movie (2020)/Movie (2020).mkv.crdownload",
            "/lib/Movie (2020)/.Movie (2020).mkv",
            "/lib/.incoming/Movie (2020).mkv",
            "/lib/Movie (2020)/@eaDir/Movie (2020).mkv",
            "/lib/Movie (2020)/Movie (2020).en.srt",
            "/lib/Movie (2020)/movie.nfo",
        ] {
            assert!(!is_candidate_file(Path::new(name), &roots), "{name}");
        }
        assert!(is_candidate_file(
            Path::new("/lib/Movie (2020)/Movie (2020).mkv"),
            &roots
        ));
        // A hidden folder above the library root does not hide the library.
        let hidden_root = vec![PathBuf::from("/home/u/.media")];
        assert!(is_candidate_file(
            Path::new("/home/u/.media/Movie.mp4"),
            &hidden_root
        ));
    }

    #[test]
    fn an_inotify_limit_names_the_sysctl_that_raises_it() {
        let (message, limit) =
            describe_watch_error(&notify::Error::new(notify::ErrorKind::MaxFilesWatch));
        assert!(limit);
        assert!(message.contains("fs.inotify.max_user_watches"), "{message}");
        let (message, limit) =
            describe_watch_error(&notify::Error::io(std::io::Error::from_raw_os_error(24)));
        assert!(limit);
        assert!(
            message.contains("fs.inotify.max_user_instances"),
            "{message}"
        );
        let (_, limit) = describe_watch_error(&notify::Error::path_not_found());
        assert!(!limit);
    }

    #[test]
    fn observing_a_folder_lists_its_videos_and_a_gone_path_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let show = root.join("Show/Season 01");
        std::fs::create_dir_all(&show).unwrap();
        std::fs::write(show.join("Show S01E01.mkv"), b"abc").unwrap();
        std::fs::write(show.join("Show S01E01.en.srt"), b"1").unwrap();
        std::fs::write(show.join(".Show S01E02.mkv"), b"1").unwrap();
        let seen = observe(
            vec![root.join("Show"), root.join("gone.mkv")],
            std::slice::from_ref(&root),
        );
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0, show.join("Show S01E01.mkv"));
        assert_eq!(seen[0].1.unwrap().size, 3);
        assert_eq!(seen[1], (root.join("gone.mkv"), None));
    }
}
