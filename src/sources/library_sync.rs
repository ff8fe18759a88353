//! The library sync: everything already in the libraries, on first start and then every
//! `[jellyfin] fallback_sync_interval_hours` (24 without `[jellyfin]`).
//!
//! One sync is:
//!
//! 1. when `[jellyfin]` is configured, Jellyfin's paged listing (`GET /Items?Recursive=true&
//!    IncludeItemTypes=Movie,Episode&Fields=Path,MediaStreams,ProviderIds`, [`PAGE_SIZE`]
//!    items a page), keeping movies and episodes with a real file, their paths mapped with
//!    `[[path_mappings]]`;
//! 2. a walk of every library with the core walker (one `readdir` per folder; the sidecars
//!    of each video are read in the same listing), which tells each video's missing
//!    languages;
//! 3. a detection (origin `library_sync`, priority `low`) for every walked video that lacks
//!    a wanted language, asking only for the missing ones, and one for every Jellyfin item
//!    the walk did not see (an item outside every library, or whose file is gone, is refused
//!    by the intake and counted as refused on the source's status, with the last reason).
//!
//! Detections go to the intake [`MAX_SUBMITTING`] at a time: each waits until its jobs are
//! durable, so the JobManager and the store see a steady stream, not a flood, and the API
//! keeps answering. A video with an unfinished job is deduplicated by the JobManager.
//!
//! What a user sees: log lines (start, each Jellyfin page, the end with counts), two events
//! on the global event log and `/events/stream` (`sync.started`, `sync.finished` with the
//! counts; they belong to no job), the counts on `/health/sources` (`detected`, `refused`,
//! `last_error`), and the last sync's record kept in the store (state key
//! [`STATE_KEY`]), from which the next sync is planned after a restart.
//!
//! Only one sync runs at a time: [`SyncTrigger::sync_now`] answers
//! [`SyncAnswer::AlreadyRunning`] while one does (the scheduler and the API can use it).
//! A failing Jellyfin does not stop the walk; the error is kept on the status and in
//! `sync.finished`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use cuewarden_actors::store::Change;
use cuewarden_actors::time::now_ms;
use cuewarden_actors::walk::Walker;
use cuewarden_actors::{Event, EventSource, Language};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::{
    Detection, Intake, Source, SourceHandle, SourceInfo, SourceState, SourceStatus, Target,
};
use crate::clients::jellyfin::JellyfinClient;

/// Items asked of Jellyfin per page.
pub const PAGE_SIZE: u64 = 1000;
/// Detections in flight at once.
pub const MAX_SUBMITTING: usize = 64;
/// How long a sync in progress may go on once the daemon stops.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// The store's state key of the last sync.
pub const STATE_KEY: &str = "library_sync";
/// Event type: a sync started (no job).
pub const SYNC_STARTED: &str = "sync.started";
/// Event type: a sync finished, with its counts (no job).
pub const SYNC_FINISHED: &str = "sync.finished";

/// What a sync found and did, kept in the store and carried by `sync.finished`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// When it started (ms since the epoch).
    pub started_at_ms: i64,
    /// When it finished.
    pub finished_at_ms: i64,
    /// Movies and episodes with a file that Jellyfin listed (`None`: not configured).
    pub jellyfin_items: Option<u64>,
    /// Why Jellyfin's listing failed or stopped early, if it did.
    pub jellyfin_error: Option<String>,
    /// Videos the walk looked at.
    pub videos_walked: u64,
    /// Walked videos lacking a wanted language.
    pub videos_missing: u64,
    /// Detections handed to the intake.
    pub submitted: u64,
    /// Of those, accepted.
    pub accepted: u64,
    /// Of those, refused (outside every library, gone, …).
    pub refused: u64,
    /// Jobs the accepted detections answered with (new or already unfinished).
    pub jobs: u64,
    /// Folders or links the walk could not read.
    pub unreadable: u64,
    /// How long Jellyfin's listing took (ms).
    #[serde(default)]
    pub jellyfin_ms: u64,
    /// How long the walk took (ms; it runs while Jellyfin is listed).
    #[serde(default)]
    pub walk_ms: u64,
    /// How long handing the detections over took, until every job was durable (ms).
    #[serde(default)]
    pub submit_ms: u64,
}

/// The answer to a request for a sync now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncAnswer {
    /// A sync started.
    Started,
    /// One is running; no second one is started.
    AlreadyRunning,
    /// The sync source is not running (disabled or stopped).
    NotRunning,
}

/// Asks the running library sync for a sync now (cheap to clone; `Send`).
#[derive(Debug, Clone)]
pub struct SyncTrigger(mpsc::UnboundedSender<oneshot::Sender<SyncAnswer>>);

impl SyncTrigger {
    /// Asks for a sync now; the answer comes back on the receiver
    /// (`blocking_recv` outside a runtime).
    pub fn request(&self) -> oneshot::Receiver<SyncAnswer> {
        let (reply, answer) = oneshot::channel();
        if let Err(failed) = self.0.send(reply) {
            let _ = failed.0.send(SyncAnswer::NotRunning);
        }
        answer
    }

    /// Asks for a sync now and waits for the answer.
    pub async fn sync_now(&self) -> SyncAnswer {
        self.request().await.unwrap_or(SyncAnswer::NotRunning)
    }
}

/// The library sync as a source.
pub struct LibrarySync {
    enabled: bool,
    interval: Duration,
    walker: Walker,
    jellyfin: Option<JellyfinClient>,
    page_size: u64,
    requests: mpsc::UnboundedReceiver<oneshot::Sender<SyncAnswer>>,
    trigger: SyncTrigger,
}

impl LibrarySync {
    /// A sync of `walker`'s libraries and, when given, Jellyfin's listing; every
    /// `interval` (zero: only the first sync and those asked for).
    pub fn new(
        enabled: bool,
        interval: Duration,
        walker: Walker,
        jellyfin: Option<JellyfinClient>,
    ) -> Self {
        let (sender, requests) = mpsc::unbounded_channel();
        Self {
            enabled,
            interval,
            walker,
            jellyfin,
            page_size: PAGE_SIZE,
            requests,
            trigger: SyncTrigger(sender),
        }
    }

    /// The same sync asking Jellyfin for `page_size` items a page (at least 1).
    pub fn with_page_size(self, page_size: u64) -> Self {
        Self {
            page_size: page_size.max(1),
            ..self
        }
    }

    /// What asks this sync to run now.
    pub fn trigger(&self) -> SyncTrigger {
        self.trigger.clone()
    }
}

impl Source for LibrarySync {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: EventSource::LibrarySync,
            enabled: self.enabled,
            description: "Jellyfin's paged /Items listing and a walk of every library, on first start and at [schedule] library_sync (or every [jellyfin] fallback_sync_interval_hours)",
        }
    }

    fn start(self: Box<Self>, intake: Intake, status: SourceStatus) -> SourceHandle {
        SourceHandle::spawn(move |stopped| run(*self, intake, status, stopped))
    }
}

/// A path's hash, to remember which videos the walk saw (a collision only spares one
/// Jellyfin item its check).
fn path_hash(path: &std::path::Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}

/// When the next sync is due, from the last one kept in the store (`None`: never synced,
/// so now).
fn first_delay(last: Option<&SyncRecord>, interval: Duration, now: i64) -> Duration {
    match last {
        None => Duration::ZERO,
        Some(_) if interval.is_zero() => Duration::MAX,
        Some(record) => {
            let due = record
                .started_at_ms
                .saturating_add(i64::try_from(interval.as_millis()).unwrap_or(i64::MAX));
            Duration::from_millis(u64::try_from(due.saturating_sub(now)).unwrap_or(0))
        }
    }
}

async fn run(
    sync: LibrarySync,
    intake: Intake,
    status: SourceStatus,
    mut stopped: oneshot::Receiver<()>,
) {
    let LibrarySync {
        interval,
        walker,
        jellyfin,
        page_size,
        mut requests,
        ..
    } = sync;
    let last = match intake.store().cloned() {
        Some(store) => tokio::task::spawn_blocking(move || store.state(STATE_KEY))
            .await
            .ok()
            .and_then(|read| {
                read.map_err(|err| warn!(error = %err, "cannot read the last library sync"))
                    .ok()
            })
            .flatten()
            .and_then(|value| serde_json::from_value::<SyncRecord>(value).ok()),
        None => None,
    };
    status.set(SourceState::Running);
    let delay = first_delay(last.as_ref(), interval, now_ms());
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let next = tokio::time::sleep(delay.min(far));
    tokio::pin!(next);
    let running = Rc::new(Cell::new(false));
    let (done_sender, mut done) = mpsc::unbounded_channel::<()>();
    let context = Rc::new(SyncContext {
        intake,
        status,
        walker,
        jellyfin,
        page_size,
    });
    let start = |running: &Rc<Cell<bool>>| {
        running.set(true);
        let context = context.clone();
        let done = done_sender.clone();
        actix_rt::spawn(async move {
            context.sync().await;
            let _ = done.send(());
        })
    };
    let mut current = None;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            () = &mut next => {
                if !running.get() {
                    current = Some(start(&running));
                }
                next.as_mut().reset(tokio::time::Instant::now() + if interval.is_zero() { far } else { interval.min(far) });
            }
            Some(reply) = requests.recv() => {
                let answer = if running.get() {
                    SyncAnswer::AlreadyRunning
                } else {
                    current = Some(start(&running));
                    SyncAnswer::Started
                };
                let _ = reply.send(answer);
            }
            Some(()) = done.recv() => {
                running.set(false);
                current = None;
            }
        }
    }
    // A sync in progress gets a moment to end (its submissions are short); one that does
    // not is dropped, and the next start plans from the last one that finished.
    if let Some(mut task) = current
        && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
    {
        info!("library sync stopped before its end");
        task.abort();
    }
}

struct SyncContext {
    intake: Intake,
    status: SourceStatus,
    walker: Walker,
    jellyfin: Option<JellyfinClient>,
    page_size: u64,
}

impl SyncContext {
    async fn record(&self, kind: &str, record: &SyncRecord, finished: bool) {
        let Some(store) = self.intake.store() else {
            return;
        };
        let payload = serde_json::to_value(record).unwrap_or_default();
        let event = Event {
            seq: 0,
            job_id: None,
            kind: kind.to_owned(),
            at_ms: now_ms(),
            source: EventSource::LibrarySync,
            payload: payload.clone(),
        };
        let mut changes = vec![Change::AppendEvents(vec![event])];
        if finished {
            changes.push(Change::PutState {
                key: STATE_KEY.to_owned(),
                value: payload,
            });
        }
        if let Err(err) = store.submit(changes).await {
            warn!(error = %err, "cannot record the library sync");
        }
    }

    /// Jellyfin's movies and episodes with a file, their paths mapped, by page.
    async fn jellyfin_paths(&self, record: &mut SyncRecord) -> Vec<PathBuf> {
        let Some(jellyfin) = &self.jellyfin else {
            return Vec::new();
        };
        let mut paths = Vec::new();
        let mut items = 0u64;
        let mut start = 0u64;
        loop {
            let index = start.to_string();
            let limit = self.page_size.to_string();
            let page = jellyfin
                .items(&[
                    ("Recursive", "true"),
                    ("IncludeItemTypes", "Movie,Episode"),
                    ("Fields", "Path,MediaStreams,ProviderIds"),
                    ("StartIndex", &index),
                    ("Limit", &limit),
                    ("SortBy", "SortName"),
                    ("SortOrder", "Ascending"),
                ])
                .await;
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    let error = format!("Jellyfin's listing stopped at item {start}: {err}");
                    warn!(error = %error, "library sync");
                    self.status.error(error.clone());
                    record.jellyfin_error = Some(error);
                    break;
                }
            };
            self.status.message();
            let count = page.items.len() as u64;
            for item in page.items {
                if item.is_video_file()
                    && let Some(path) = item.path
                {
                    items += 1;
                    paths.push(self.intake.map_path(std::path::Path::new(&path)));
                }
            }
            start += count;
            let total = page.total_record_count;
            info!(
                listed = start,
                total = total.unwrap_or(start),
                "library sync: Jellyfin page"
            );
            if count == 0 || count < self.page_size || total.is_some_and(|t| start >= t) {
                break;
            }
        }
        record.jellyfin_items = Some(items);
        paths
    }

    async fn sync(&self) {
        let mut record = SyncRecord {
            started_at_ms: now_ms(),
            ..SyncRecord::default()
        };
        info!(jellyfin = self.jellyfin.is_some(), "library sync started");
        self.record(SYNC_STARTED, &record, false).await;
        let walker = self.walker.clone();
        let roots: Vec<PathBuf> = self
            .intake
            .libraries()
            .iter()
            .map(|l| l.root.clone())
            .collect();
        // The walk (blocking threads) and Jellyfin's pages (this task) run side by side.
        let walk_started = std::time::Instant::now();
        let walking = tokio::task::spawn_blocking(move || {
            // A 64-bit hash per walked video, not its path: 8 bytes each, not ~100.
            let seen = Mutex::new(HashSet::new());
            let report = walker.walk_libraries(&|video| {
                if let Ok(mut seen) = seen.lock() {
                    seen.insert(path_hash(&video.path));
                }
            });
            // Jellyfin's paths name a library by its configured root; the walk by its real
            // one (a root may be a symlink).
            let real_roots: Vec<(PathBuf, PathBuf)> = roots
                .into_iter()
                .filter_map(|root| root.canonicalize().ok().map(|real| (root, real)))
                .collect();
            let walk_ms = walk_started.elapsed().as_millis() as u64;
            (
                report,
                seen.into_inner().unwrap_or_default(),
                real_roots,
                walk_ms,
            )
        });
        let listing_started = std::time::Instant::now();
        let jellyfin_paths = self.jellyfin_paths(&mut record).await;
        record.jellyfin_ms = listing_started.elapsed().as_millis() as u64;
        let walked = walking.await;
        let (report, seen, real_roots, walk_ms) = match walked {
            Ok(walked) => walked,
            Err(err) => {
                warn!(error = %err, "library sync: the walk did not run");
                self.status
                    .error(format!("the library walk did not run: {err}"));
                Default::default()
            }
        };
        record.walk_ms = walk_ms;
        record.videos_walked = report.videos as u64;
        record.videos_missing = report.missing.len() as u64;
        record.unreadable = report.unreadable.len() as u64;
        for unreadable in report.unreadable.iter().take(5) {
            warn!(path = %unreadable.path.display(), error = %unreadable.error, "library sync: cannot read");
        }

        // Jellyfin's items the walk did not see: the intake says why (outside every library,
        // gone) or takes them (a path the walk reaches by another name).
        let mut detections: Vec<(PathBuf, Option<Vec<Language>>)> = report
            .missing
            .into_iter()
            .map(|video| (video.path, Some(video.missing)))
            .collect();
        let mut unseen: HashMap<PathBuf, ()> = HashMap::new();
        for path in jellyfin_paths {
            let real = real_roots
                .iter()
                .find_map(|(root, real)| path.strip_prefix(root).ok().map(|rest| real.join(rest)));
            if !seen.contains(&path_hash(real.as_ref().unwrap_or(&path))) {
                unseen.insert(path, ());
            }
        }
        drop(seen);
        detections.extend(unseen.into_keys().map(|path| (path, None)));
        record.submitted = detections.len() as u64;

        let submit_started = std::time::Instant::now();
        let accepted = Cell::new(0u64);
        let refused = Cell::new(0u64);
        let jobs = Cell::new(0u64);
        futures_util::stream::iter(detections)
            .for_each_concurrent(MAX_SUBMITTING, |(path, languages)| {
                let (accepted, refused, jobs) = (&accepted, &refused, &jobs);
                async move {
                    let target = Target::Path(path);
                    let name = target.to_string();
                    let mut detection = Detection::new(target, EventSource::LibrarySync);
                    detection.languages = languages;
                    let result = self.intake.submit(detection).await;
                    match &result {
                        Ok(submitted) => {
                            accepted.set(accepted.get() + 1);
                            jobs.set(jobs.get() + submitted.jobs.len() as u64);
                        }
                        Err(_) => refused.set(refused.get() + 1),
                    }
                    self.status.record(&name, &result);
                }
            })
            .await;
        record.accepted = accepted.get();
        record.refused = refused.get();
        record.jobs = jobs.get();
        record.submit_ms = submit_started.elapsed().as_millis() as u64;
        record.finished_at_ms = now_ms();
        info!(
            jellyfin_items = record.jellyfin_items,
            videos_walked = record.videos_walked,
            videos_missing = record.videos_missing,
            accepted = record.accepted,
            refused = record.refused,
            jobs = record.jobs,
            jellyfin_ms = record.jellyfin_ms,
            walk_ms = record.walk_ms,
            submit_ms = record.submit_ms,
            secs = (record.finished_at_ms - record.started_at_ms) as f64 / 1000.0,
            "library sync finished"
        );
        self.record(SYNC_FINISHED, &record, true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sync_is_at_once_and_later_ones_follow_the_last_start() {
        let hour = Duration::from_secs(3600);
        assert_eq!(first_delay(None, hour, 10_000), Duration::ZERO);
        let last = SyncRecord {
            started_at_ms: 10_000,
            ..SyncRecord::default()
        };
        assert_eq!(
            first_delay(Some(&last), hour, 10_000 + 600_000),
            Duration::from_millis(3_600_000 - 600_000)
        );
        assert_eq!(
            first_delay(Some(&last), hour, 10_000 + 7_200_000),
            Duration::ZERO
        );
        assert_eq!(first_delay(Some(&last), Duration::ZERO, 0), Duration::MAX);
    }
}
