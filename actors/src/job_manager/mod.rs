//! The JobManager's logic, free of actix: deduplication, priority queues, concurrency
//! slots, retries and the mapping of worker outcomes to statuses and events.
//!
//! Every method takes `now` and returns a [`Step`]: the store changes to commit and the
//! actions to perform *after* the commit (persist first, then act). The actor shell in
//! [`actor`] commits and performs; tests drive this core directly.
//!
//! Memory grows with the library, so the core keeps a compact entry per unfinished job
//! (status, priority, wake time, a 128-bit hash of its deduplication key: ~100 bytes with
//! the maps) and full [`Job`] records only for the jobs it works on: running ones, and a
//! bounded number of jobs it queued itself ([`KEPT_QUEUED_RECORDS`]). A transition of a
//! job whose record it does not hold is a [`Change::MoveJob`] (the store writer reads the
//! record); a dispatch of such a job asks the shell to load the record first
//! ([`Action::Load`], answered by [`ManagerCore::loaded`]).

pub mod actor;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};

use std::path::Path;
use std::time::Duration;

use backon::BackoffBuilder;
use serde::Serialize;
use serde_json::json;

use crate::event::{Event, kind};
use crate::job::{
    EventSource, IllegalTransition, Job, JobHead, JobId, JobStatus, Language, MediaItem, Priority,
};
use crate::store::{Change, MediaRecord, OutboxEntry, ProviderState, StoreError};
use crate::worker::{Outcome, ProviderRegistry, WorkKind, WorkReport};

pub use actor::{BLACKLIST_CLEARED, ClearBlacklist, blacklist_entry_json};
pub use actor::{
    CANDIDATE_LISTS_KEPT, CANDIDATES_KEPT_FOR, ChooseCandidate, ListCandidates, ManualError,
    REJECTED, RejectSubtitle, RunUpgrades, UPGRADED, UpgradeCounts, is_due, provenance_json,
};
pub use actor::{
    CancelJob, JobManager, ManagerStatus, ProviderStatus, RequestSubtitles, RetryJob, Shutdown,
    StatusReport,
};

/// Limits and retry policy of the JobManager.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// Downloads running at once.
    pub max_downloads: usize,
    /// Translations running at once.
    pub max_translations: usize,
    /// Failed attempts before a job fails for good.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub retry_min_delay: Duration,
    /// Longest retry delay.
    pub retry_max_delay: Duration,
    /// Longest a worker may run before it counts as failed (retryable).
    pub worker_timeout: Duration,
    /// When to search again after a search found nothing (not after errors).
    pub nothing_found: NothingFoundSchedule,
    /// When to look again for a video that is missing, counted from the first time it was
    /// missing. Once the last has passed, a video still missing ends the job `failed`
    /// ("video removed"): a share unmounted for less than that is not a deletion.
    pub video_checks: Vec<Duration>,
    /// Waiting jobs released into the queue per wake-up check (once a second), earliest
    /// first: 100,000 jobs due at one instant (the end of a provider outage, a restart)
    /// reach the queue, the store and the providers a batch at a time.
    pub wakes_per_tick: usize,
}

/// The waits between searches that found nothing: the first steps one after the other,
/// then `daily` until the job is `slow_after` old, then `slow`; each with ±10 % jitter
/// (from the job id, so 100,000 jobs of one library sync spread out). README, "Jobs".
#[derive(Debug, Clone)]
pub struct NothingFoundSchedule {
    /// The first waits (1 h, 3 h, 6 h, 12 h).
    pub first: Vec<Duration>,
    /// The wait after those (a day).
    pub daily: Duration,
    /// Job age from which `slow` applies (three weeks).
    pub slow_after: Duration,
    /// The wait for old jobs (a week).
    pub slow: Duration,
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Default for NothingFoundSchedule {
    fn default() -> Self {
        Self {
            first: vec![HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR],
            daily: DAY,
            slow_after: 21 * DAY,
            slow: 7 * DAY,
        }
    }
}

impl NothingFoundSchedule {
    /// The wait after the `count`-th search in a row that found nothing (1-based) for a
    /// job `age` old, before jitter.
    pub fn base_delay(&self, count: u32, age: Duration) -> Duration {
        if age >= self.slow_after {
            return self.slow;
        }
        let step = count.saturating_sub(1) as usize;
        self.first.get(step).copied().unwrap_or(self.daily)
    }

    /// [`base_delay`](Self::base_delay) with ±10 % jitter drawn from `id` and `count`.
    pub fn delay(&self, id: JobId, count: u32, age: Duration) -> Duration {
        let base = self.base_delay(count, age);
        base.mul_f64(0.9 + 0.2 * spread_fraction(id, u64::from(count)))
    }
}

/// A fraction in [0, 1) drawn from `id` and `salt` (splitmix64 of the id's random bits and
/// the salt): the same job and salt always get the same one, jobs of one batch spread.
fn spread_fraction(id: JobId, salt: u64) -> f64 {
    let mut x = (id.0.as_u128() as u64) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The shortest and longest spread of the wake-ups of jobs waiting for the same cooldown.
const PROVIDER_WAIT_SPREAD: (Duration, Duration) = (Duration::from_secs(30), HOUR);

/// The wait of job `id` for a cooldown that ends in `until_end`: never before the end,
/// then spread over a fifth of the wait (at least 30 s, or the wait itself when it is
/// shorter: a 2 s `Retry-After` is not stretched to half a minute; at most an hour) so the
/// jobs that waited for one provider do not all ask it again at the same instant.
pub fn provider_wait(id: JobId, salt: u64, until_end: Duration) -> Duration {
    let (shortest, longest) = PROVIDER_WAIT_SPREAD;
    let spread = (until_end / 5).max(shortest.min(until_end)).min(longest);
    until_end + spread.mul_f64(spread_fraction(id, salt))
}

/// The error a job fails with once its video stayed missing through every check.
pub const VIDEO_REMOVED: &str = "video removed";

/// The event kinds a retry that finds nothing again compacts: the previous cycles' and
/// this cycle's queue, start and wait events. The job keeps its `subtitle.requested`, any
/// user or restart event, and the newest `subtitle.waiting` (carrying the attempt count).
pub const RETRY_EVENT_KINDS: &[&str] = &[
    kind::DOWNLOAD_REQUESTED,
    kind::DOWNLOAD_STARTED,
    kind::WAITING,
    kind::RETRY_SCHEDULED,
];

impl ManagerSettings {
    /// How many workers of `kind` may run at once.
    pub fn max_running(&self, kind: WorkKind) -> usize {
        match kind {
            WorkKind::Download => self.max_downloads,
            WorkKind::Translate => self.max_translations,
        }
    }
}

impl Default for ManagerSettings {
    fn default() -> Self {
        Self {
            max_downloads: 4,
            max_translations: 2,
            max_attempts: 8,
            retry_min_delay: Duration::from_secs(60),
            retry_max_delay: Duration::from_secs(6 * 3600),
            worker_timeout: Duration::from_secs(600),
            nothing_found: NothingFoundSchedule::default(),
            video_checks: vec![Duration::from_secs(600), HOUR, 6 * HOUR, DAY],
            wakes_per_tick: 256,
        }
    }
}

/// A request for subtitles for one video.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The video.
    pub media: MediaItem,
    /// Wanted languages.
    pub languages: Vec<Language>,
    /// Whether translation may stand in.
    pub auto_translate: bool,
    /// Who asked.
    pub source: EventSource,
    /// Queue priority.
    pub priority: Priority,
    /// Languages the video already has as embedded subtitle tracks, as the source knows
    /// them (Jellyfin's `MediaStreams`): a wanted language one of them satisfies gets a
    /// `skipped` job at once, never a download. Empty when unknown.
    pub existing: Vec<Language>,
}

/// What the API answers for each language of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSummary {
    /// The job (existing, when deduplicated).
    pub id: JobId,
    /// Its language.
    pub language: Language,
    /// Its status.
    pub status: JobStatus,
}

/// What [`ManagerCore::request`] accepted.
#[derive(Debug)]
pub struct Accepted {
    /// The answer: one job per language.
    pub summaries: Vec<JobSummary>,
    /// The new jobs to commit.
    pub changes: Vec<Change>,
    /// The new jobs' ids, for [`ManagerCore::queue_new`] once committed.
    pub new_ids: Vec<JobId>,
}

/// Queued jobs whose records the core keeps after queuing them itself (a new request, a
/// retry, a hand-over to translation), so that a burst does not read back what it just
/// wrote. Beyond it, records are dropped and read again at dispatch: memory stays bounded.
pub const KEPT_QUEUED_RECORDS: usize = 1024;

/// Something the shell does after the step's changes are durable.
#[derive(Debug, Clone)]
pub enum Action {
    /// Spawn a worker for the job.
    Start(Box<Job>, WorkKind),
    /// Read the job's record from the store (on a blocking thread) and hand it to
    /// [`ManagerCore::loaded`]: a worker slot is reserved for it meanwhile.
    Load(JobId, WorkKind),
    /// Stop the job's worker (cancelled).
    Stop(JobId),
    /// Fill free slots from the queues.
    Dispatch,
}

/// Store changes plus the actions that follow their commit.
#[derive(Debug, Default)]
pub struct Step {
    /// To commit first.
    pub changes: Vec<Change>,
    /// Then to perform.
    pub actions: Vec<Action>,
}

impl Step {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.actions.is_empty()
    }
}

/// Why the manager refused a command.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The daemon is shutting down.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// The job is not in a state that allows the command.
    #[error("job {id} is {status}: {reason}")]
    Conflict {
        /// The job.
        id: JobId,
        /// Its status.
        status: JobStatus,
        /// What is not allowed.
        reason: &'static str,
    },
    /// The store could not persist the change.
    #[error("cannot persist the job")]
    Store(#[source] StoreError),
    /// The store could not persist the change because the disk is full.
    #[error("cannot persist the job, the disk holding the store is full")]
    StorageFull(#[source] StoreError),
}

impl From<StoreError> for ManagerError {
    fn from(err: StoreError) -> Self {
        if err.is_storage_full() {
            Self::StorageFull(err)
        } else {
            Self::Store(err)
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    heap: BinaryHeap<(Priority, Reverse<u64>, JobId)>,
}

impl Queue {
    fn push(&mut self, priority: Priority, order: u64, id: JobId) {
        self.heap.push((priority, Reverse(order), id));
    }
    fn pop(&mut self) -> Option<JobId> {
        self.heap.pop().map(|(_, _, id)| id)
    }
}

/// The 128 bits that stand for a deduplication key (video + language) in memory: two
/// independent 64-bit hashes with per-process random keys. `bucket` indexes `by_key`; a
/// bucket shared by two live keys (rare) is resolved with `check`, through the overflow
/// list. Two different keys agreeing on all 128 bits is not a practical concern (about
/// 10^-26 for a million live jobs) and cannot be forced from outside: the keys are secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash {
    bucket: u64,
    check: u64,
}

/// Hashes deduplication keys the way one [`ManagerCore`] does (its random keys): the
/// start-up hashes the jobs it reads on the blocking thread, so no path is kept.
#[derive(Debug, Clone, Default)]
pub struct KeyHasher(RandomState, RandomState);

impl KeyHasher {
    /// The hash of a video and a language.
    pub fn hash(&self, path: &Path, language: &Language) -> KeyHash {
        let key = (path, language.as_str());
        KeyHash {
            bucket: self.0.hash_one(key),
            check: self.1.hash_one(key),
        }
    }

    /// The compact form of an unfinished job as the store's start-up check decoded it: the
    /// same key as [`hash`](Self::hash) of its path and language.
    pub fn unfinished_stored(&self, head: &crate::job::JobHeadRef<'_>) -> Unfinished {
        let key = (Path::new(head.path.as_ref()), head.language.as_ref());
        Unfinished {
            id: head.id,
            status: head.status,
            priority: head.priority,
            wake_at_ms: head.wake_at_ms,
            key: KeyHash {
                bucket: self.0.hash_one(key),
                check: self.1.hash_one(key),
            },
            seen_by: head.origin.map_or(0, EventSource::bit),
        }
    }

    /// The compact form of an unfinished job read at start-up.
    pub fn unfinished(&self, head: JobHead) -> Unfinished {
        Unfinished {
            id: head.id,
            status: head.status,
            priority: head.priority,
            wake_at_ms: head.wake_at_ms,
            key: self.hash(&head.path, &head.language),
            seen_by: head.origin.map_or(0, EventSource::bit),
        }
    }
}

/// The unfinished jobs the store's start-up check decoded, in compact form, with the hasher
/// their keys were hashed by: what [`JobManager::resuming`] takes over instead of reading
/// the store again at start.
#[derive(Debug)]
pub struct StartJobs {
    hasher: KeyHasher,
    jobs: Vec<Unfinished>,
}

impl StartJobs {
    /// Number of unfinished jobs.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Takes out the notify jobs (origin `notifier`: the notifier's, not the JobManager's),
    /// so the notifier's start reads only those records and no second pass is made.
    pub fn take_notify_jobs(&mut self) -> Vec<JobId> {
        let notifier = EventSource::Notifier.bit();
        let mut taken = Vec::new();
        self.jobs.retain(|job| {
            let theirs = job.seen_by == notifier;
            if theirs {
                taken.push(job.id);
            }
            !theirs
        });
        taken
    }
}

/// Opens the store of `data_dir` ([`Store::open`](crate::store::Store::open)) and keeps the
/// unfinished jobs its start-up check decodes, hashed for a new JobManager: the start reads
/// every unfinished job once. `None` when the check's jobs are not the store's (a restored or
/// replaced file, a schema upgrade): the JobManager reads them itself.
pub fn open_store(data_dir: &Path) -> Result<(crate::store::Store, Option<StartJobs>), StoreError> {
    let hasher = KeyHasher::default();
    let (store, jobs) =
        crate::store::Store::open_taking(data_dir, |head| hasher.unfinished_stored(&head))?;
    Ok((
        store,
        // The check hands them over by id.
        jobs.map(|jobs| StartJobs { hasher, jobs }),
    ))
}

/// An unfinished job as [`ManagerCore::resume_unfinished`] takes it over.
#[derive(Debug, Clone)]
pub struct Unfinished {
    /// The job.
    pub id: JobId,
    /// Its status.
    pub status: JobStatus,
    /// Its queue priority.
    pub priority: Priority,
    /// When a `waiting` job wakes by itself.
    pub wake_at_ms: Option<i64>,
    /// Its deduplication key, hashed by the core's [`KeyHasher`].
    pub key: KeyHash,
    /// The sources known to have seen it ([`EventSource::bit`]s).
    pub seen_by: u16,
}

/// What the core keeps of every unfinished job.
#[derive(Debug, Clone)]
struct Entry {
    status: JobStatus,
    priority: Priority,
    wake_at_ms: Option<i64>,
    key: KeyHash,
    /// The sources that reported the video ([`EventSource::bit`]s): a second source gets
    /// one `job.detected` event, a repeat none.
    seen_by: u16,
}

/// The compact view of an unfinished job the core holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobEntry {
    /// The job.
    pub id: JobId,
    /// Its status.
    pub status: JobStatus,
    /// Its queue priority.
    pub priority: Priority,
    /// When a `waiting` job wakes by itself.
    pub wake_at_ms: Option<i64>,
}

/// The in-memory state of every unfinished job.
#[derive(Debug)]
pub struct ManagerCore {
    settings: ManagerSettings,
    jobs: HashMap<JobId, Entry>,
    /// Full records of the jobs being worked on (see the module docs).
    records: HashMap<JobId, Job>,
    by_key: HashMap<u64, JobId>,
    /// Jobs whose key bucket another live job had taken first.
    overflow: Vec<JobId>,
    hashers: KeyHasher,
    downloads: Queue,
    translations: Queue,
    running: HashMap<JobId, WorkKind>,
    /// Jobs with a reserved slot whose record is being read ([`Action::Load`]).
    loading: HashMap<JobId, WorkKind>,
    wakes: BTreeSet<(i64, JobId)>,
    order: u64,
    is_accepting: bool,
    providers: ProviderRegistry,
    /// Waiting jobs whose last attempt found every provider cooling down: while every
    /// provider still is, they are not woken (see [`wake_due`](Self::wake_due)).
    provider_waiters: std::collections::HashSet<JobId>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl ManagerCore {
    /// An empty manager.
    pub fn new(settings: ManagerSettings) -> Self {
        Self {
            settings,
            jobs: HashMap::new(),
            records: HashMap::new(),
            by_key: HashMap::new(),
            overflow: Vec::new(),
            hashers: KeyHasher::default(),
            downloads: Queue::default(),
            translations: Queue::default(),
            running: HashMap::new(),
            loading: HashMap::new(),
            wakes: BTreeSet::new(),
            order: 0,
            is_accepting: true,
            providers: ProviderRegistry::default(),
            provider_waiters: std::collections::HashSet::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ManagerSettings {
        &self.settings
    }

    /// The provider states this manager owns; workers get a reading handle to it.
    pub fn provider_registry(&self) -> ProviderRegistry {
        self.providers.clone()
    }

    /// Takes over the provider states found in the store at start-up.
    pub fn restore_providers(&mut self, states: Vec<ProviderState>) {
        for state in states {
            self.providers.set(state);
        }
    }

    /// An unfinished job, as the core keeps it.
    pub fn job(&self, id: JobId) -> Option<JobEntry> {
        self.jobs.get(&id).map(|entry| JobEntry {
            id,
            status: entry.status,
            priority: entry.priority,
            wake_at_ms: entry.wake_at_ms,
        })
    }

    /// The full record of an unfinished job, if the core holds it (running jobs, and
    /// jobs it queued itself lately).
    pub fn record(&self, id: JobId) -> Option<&Job> {
        self.records.get(&id)
    }

    /// Number of unfinished jobs held.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no unfinished job is held.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Number of running workers of a kind (slots reserved for a loading record included).
    pub fn running(&self, kind: WorkKind) -> usize {
        self.running
            .values()
            .chain(self.loading.values())
            .filter(|k| **k == kind)
            .count()
    }

    /// Number of unfinished jobs per status.
    pub fn status_counts(&self) -> HashMap<JobStatus, usize> {
        let mut counts = HashMap::new();
        for entry in self.jobs.values() {
            *counts.entry(entry.status).or_default() += 1;
        }
        counts
    }

    fn key_hash(&self, path: &Path, language: &Language) -> KeyHash {
        self.hashers.hash(path, language)
    }

    /// The hasher of deduplication keys, for [`resume_unfinished`](Self::resume_unfinished).
    pub fn key_hasher(&self) -> KeyHasher {
        self.hashers.clone()
    }

    /// Hashes keys with `hasher` from now on: for jobs hashed before the core existed. Only
    /// while the core holds no job (keys hashed by the old hasher would not be found).
    fn use_key_hasher(&mut self, hasher: KeyHasher) -> bool {
        if !self.jobs.is_empty() {
            return false;
        }
        self.hashers = hasher;
        true
    }

    /// Takes over the unfinished jobs of [`open_store`], with their hasher. `false` (nothing
    /// taken) if the core holds jobs already.
    pub fn take_start_jobs(&mut self, start: StartJobs, now: i64) -> Option<Step> {
        self.use_key_hasher(start.hasher)
            .then(|| self.resume_unfinished(start.jobs, now))
    }

    /// The unfinished job of a deduplication key.
    fn find_key(&self, key: KeyHash) -> Option<JobId> {
        let matches = |id: &JobId| self.jobs.get(id).is_some_and(|e| e.key == key);
        self.by_key
            .get(&key.bucket)
            .filter(|id| matches(id))
            .or_else(|| self.overflow.iter().find(|id| matches(id)))
            .copied()
    }

    /// Takes a job into the index (its key must have no unfinished job).
    fn insert_entry(&mut self, id: JobId, entry: Entry) {
        let bucket = entry.key.bucket;
        match self.by_key.entry(bucket) {
            std::collections::hash_map::Entry::Occupied(_) => self.overflow.push(id),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(id);
            }
        }
        self.jobs.insert(id, entry);
    }

    /// Keeps `job` as a queued job's record, unless enough are kept already.
    fn keep_queued_record(&mut self, job: Job) {
        if self.records.len() < KEPT_QUEUED_RECORDS + self.running.len() {
            self.records.insert(job.id, job);
        }
    }

    /// Stops accepting requests and starting workers.
    pub fn stop_accepting(&mut self) {
        self.is_accepting = false;
    }

    /// Whether requests are accepted.
    pub fn is_accepting(&self) -> bool {
        self.is_accepting
    }

    /// The delay before retry number `attempt` (1-based): exponential, jittered (up to twice
    /// the exponential step), and never longer than `retry_max_delay`.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        // backon adds its jitter *after* capping at `max_delay`, so its delays reach twice the
        // cap; clamp again so the setting means what it says.
        let max = self.settings.retry_max_delay;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_min_delay)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .map_or(max, |delay| delay.min(max))
    }

    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }

    /// Moves a job to `to`, recording `events`; drops it from memory when terminal. `edit`
    /// changes the full record when the core holds it; otherwise the change is a
    /// [`Change::MoveJob`] and the only edit is the one the writer makes (the wake time is
    /// cleared).
    fn transition(
        &mut self,
        id: JobId,
        to: JobStatus,
        now: i64,
        events: Vec<(&str, EventSource, serde_json::Value)>,
        edit: impl FnOnce(&mut Job),
    ) -> Result<Change, IllegalTransition> {
        let Some(entry) = self.jobs.get_mut(&id) else {
            return Err(IllegalTransition { from: to, to });
        };
        entry.status = entry.status.transition(to)?;
        let events: Vec<Event> = events
            .into_iter()
            .map(|(kind, source, mut payload)| {
                if let Some(map) = payload.as_object_mut() {
                    map.insert("status".into(), json!(to));
                }
                Event::for_job(id, kind, source, now, payload)
            })
            .collect();
        let change = match self.records.get_mut(&id) {
            Some(job) => {
                job.status = to;
                job.updated_at_ms = now;
                edit(job);
                entry.wake_at_ms = job.wake_at_ms;
                Change::PutJob {
                    job: job.clone(),
                    events,
                }
            }
            None => {
                entry.wake_at_ms = None;
                Change::MoveJob {
                    id,
                    status: to,
                    at_ms: now,
                    events,
                }
            }
        };
        if to.is_terminal() {
            self.forget(id);
        } else if to == JobStatus::Waiting {
            // A waiting job may wait for weeks: keep its entry only.
            self.records.remove(&id);
        }
        Ok(change)
    }

    /// Removes a job from memory (terminal, or never persisted).
    pub fn forget(&mut self, id: JobId) {
        self.running.remove(&id);
        self.loading.remove(&id);
        self.records.remove(&id);
        self.provider_waiters.remove(&id);
        let Some(entry) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(at) = entry.wake_at_ms {
            self.wakes.remove(&(at, id));
        }
        if self.by_key.get(&entry.key.bucket) == Some(&id) {
            self.by_key.remove(&entry.key.bucket);
            // A job waiting in the overflow for this bucket takes it.
            if let Some(at) = self.overflow.iter().position(|other| {
                self.jobs
                    .get(other)
                    .is_some_and(|e| e.key.bucket == entry.key.bucket)
            }) {
                let other = self.overflow.swap_remove(at);
                self.by_key.insert(entry.key.bucket, other);
            }
        } else {
            self.overflow.retain(|other| *other != id);
        }
    }

    /// Raises an unfinished job's priority to `priority` if it is lower (a webhook for a
    /// video a library sync queued at `low`): a queued job moves up its queue at once (its
    /// older queue entry is skipped as stale once it runs), and the store's record follows.
    fn raise_priority(&mut self, id: JobId, priority: Priority) -> Option<Change> {
        let entry = self.jobs.get_mut(&id)?;
        if entry.priority >= priority {
            return None;
        }
        entry.priority = priority;
        let status = entry.status;
        if let Some(job) = self.records.get_mut(&id) {
            job.priority = priority;
        }
        if let Some(kind) = WorkKind::of_status(status).filter(|k| k.queued_status() == status) {
            self.push_queue(id, kind);
        }
        Some(Change::SetJobPriority { id, priority })
    }

    /// Accepts a request: one new `pending` job per language that has no unfinished job,
    /// the existing job for the others. Returns the answer, the changes, and the new ids
    /// (to pass to [`queue_new`](Self::queue_new) once committed).
    pub fn request(&mut self, request: &NewRequest, now: i64) -> Result<Accepted, ManagerError> {
        if !self.is_accepting {
            return Err(ManagerError::ShuttingDown);
        }
        let mut summaries = Vec::new();
        // The media index remembers every video asked about, and by whom.
        let mut changes = vec![Change::PutMedia(MediaRecord {
            path: request.media.path.clone(),
            jellyfin_item_id: request.media.jellyfin_item_id.clone(),
            languages: request.languages.clone(),
            last_requested_at_ms: now,
            last_source: request.source,
        })];
        let mut new_ids = Vec::new();
        let mut detected = Vec::new();
        let bit = request.source.bit();
        for language in &request.languages {
            let key = self.key_hash(&request.media.path, language);
            if let Some(id) = self.find_key(key) {
                let raised = self.raise_priority(id, request.priority);
                if let Some(entry) = self.jobs.get_mut(&id)
                    && (entry.seen_by & bit == 0 || raised.is_some())
                {
                    entry.seen_by |= bit;
                    let mut payload = json!({"status": entry.status, "language": language});
                    if raised.is_some() {
                        payload["priority"] = json!(entry.priority);
                    }
                    detected.push(Event::for_job(
                        id,
                        kind::DETECTED,
                        request.source,
                        now,
                        payload,
                    ));
                }
                changes.extend(raised);
                if !summaries.iter().any(|s: &JobSummary| s.id == id) {
                    summaries.push(JobSummary {
                        id,
                        language: language.clone(),
                        status: self.jobs.get(&id).map_or(JobStatus::Pending, |e| e.status),
                    });
                }
                continue;
            }
            let mut job = Job::pending(
                request.media.path.clone(),
                language.clone(),
                request.source,
                now,
            );
            job.jellyfin_item_id = request.media.jellyfin_item_id.clone();
            job.priority = request.priority;
            job.auto_translate = request.auto_translate;
            if let Some(found) = request
                .existing
                .iter()
                .find(|found| language.is_satisfied_by(found))
            {
                // Terminal at once: no entry in the index, nothing to queue.
                changes.push(self.skipped_as_embedded(job, found, now, &mut summaries));
                continue;
            }
            let event = Event::for_job(
                job.id,
                kind::SUBTITLE_REQUESTED,
                request.source,
                now,
                json!({
                    "status": JobStatus::Pending,
                    "path": job.path,
                    "language": job.language,
                    "priority": job.priority,
                    "auto_translate": job.auto_translate,
                    "jellyfin_item_id": job.jellyfin_item_id,
                }),
            );
            summaries.push(JobSummary {
                id: job.id,
                language: language.clone(),
                status: JobStatus::Pending,
            });
            new_ids.push(job.id);
            self.insert_entry(
                job.id,
                Entry {
                    status: job.status,
                    priority: job.priority,
                    wake_at_ms: None,
                    key,
                    seen_by: bit,
                },
            );
            changes.push(Change::PutJob {
                job: job.clone(),
                events: vec![event],
            });
            // Pending until queued: the record stays in hand (the bound applies once queued).
            self.records.insert(job.id, job);
        }
        if !detected.is_empty() {
            changes.push(Change::AppendEvents(detected));
        }
        Ok(Accepted {
            summaries,
            changes,
            new_ids,
        })
    }

    /// A new job for a language the video already has as an embedded track: `skipped`,
    /// with its request and the reason in its events.
    fn skipped_as_embedded(
        &self,
        mut job: Job,
        found: &Language,
        now: i64,
        summaries: &mut Vec<JobSummary>,
    ) -> Change {
        let requested = Event::for_job(
            job.id,
            kind::SUBTITLE_REQUESTED,
            job.origin,
            now,
            json!({
                "status": JobStatus::Pending,
                "path": job.path,
                "language": job.language,
                "priority": job.priority,
                "auto_translate": job.auto_translate,
                "jellyfin_item_id": job.jellyfin_item_id,
            }),
        );
        job.status = JobStatus::Skipped;
        let skipped = Event::for_job(
            job.id,
            kind::SKIPPED,
            job.origin,
            now,
            json!({
                "status": JobStatus::Skipped,
                "existing": "embedded",
                "track_language": found,
            }),
        );
        summaries.push(JobSummary {
            id: job.id,
            language: job.language.clone(),
            status: JobStatus::Skipped,
        });
        Change::PutJob {
            job,
            events: vec![requested, skipped],
        }
    }

    /// Queues newly committed `pending` jobs for download.
    pub fn queue_new(&mut self, ids: &[JobId], now: i64) -> Step {
        let mut step = Step::default();
        for id in ids {
            if self
                .jobs
                .get(id)
                .is_some_and(|j| j.status == JobStatus::Pending)
                && let Ok(change) = self.transition(
                    *id,
                    JobStatus::DownloadQueued,
                    now,
                    vec![(kind::DOWNLOAD_REQUESTED, EventSource::Manager, json!({}))],
                    |_| {},
                )
            {
                step.changes.push(change);
                self.push_queue(*id, WorkKind::Download);
                if let Some(job) = self.records.remove(id) {
                    self.keep_queued_record(job);
                }
            }
        }
        step.actions.push(Action::Dispatch);
        step
    }

    fn push_queue(&mut self, id: JobId, kind: WorkKind) {
        let order = self.next_order();
        let Some(priority) = self.jobs.get(&id).map(|j| j.priority) else {
            return;
        };
        self.queue(kind).push(priority, order, id);
    }

    /// The queue of jobs waiting for a worker of `kind`.
    fn queue(&mut self, kind: WorkKind) -> &mut Queue {
        match kind {
            WorkKind::Download => &mut self.downloads,
            WorkKind::Translate => &mut self.translations,
        }
    }

    /// Fills free download and translation slots from the queues, highest priority first.
    /// A job whose record the core holds starts at once; for the others a slot is reserved
    /// and the shell loads the record ([`Action::Load`]).
    pub fn dispatch(&mut self, now: i64) -> Step {
        let mut step = Step::default();
        if !self.is_accepting {
            return step;
        }
        for kind in WorkKind::ALL {
            let (limit, queued) = (self.settings.max_running(kind), kind.queued_status());
            while self.running(kind) < limit {
                let Some(id) = self.queue(kind).pop() else {
                    break;
                };
                // Entries of cancelled or re-queued jobs are stale; skip them.
                if self.jobs.get(&id).is_none_or(|e| e.status != queued)
                    || self.running.contains_key(&id)
                    || self.loading.contains_key(&id)
                {
                    continue;
                }
                if self.records.contains_key(&id) {
                    self.start(id, kind, now, &mut step);
                } else {
                    self.loading.insert(id, kind);
                    step.actions.push(Action::Load(id, kind));
                }
            }
        }
        step
    }

    /// Takes the record the shell read for an [`Action::Load`] and starts the job, unless
    /// it was cancelled meanwhile. A record that could not be read puts the job back in its
    /// queue (the next dispatch tries again); one the store no longer holds is dropped.
    pub fn loaded(
        &mut self,
        id: JobId,
        kind: WorkKind,
        record: Result<Option<Job>, StoreError>,
        now: i64,
    ) -> Step {
        let mut step = Step::default();
        if self.loading.remove(&id) != Some(kind) {
            return step;
        }
        let Some(status) = self.jobs.get(&id).map(|e| e.status) else {
            return step;
        };
        match record {
            Ok(Some(mut job)) => {
                // The core's entry is the truth about the status: the record was written by
                // the same core, so they agree, but never start from a stale one.
                job.status = status;
                self.records.insert(id, job);
                if self.is_accepting && status == kind.queued_status() {
                    self.start(id, kind, now, &mut step);
                } else {
                    self.records.remove(&id);
                    self.push_queue(id, kind);
                }
            }
            Ok(None) => {
                tracing::error!(job_id = %id, "the store no longer holds a queued job; dropped");
                self.forget(id);
                step.actions.push(Action::Dispatch);
            }
            Err(err) => {
                tracing::error!(job_id = %id, error = %crate::store::error_chain(&err), "cannot read a queued job; it stays queued");
                self.push_queue(id, kind);
            }
        }
        step
    }

    /// Moves a queued job whose record is held to running and starts its worker.
    fn start(&mut self, id: JobId, kind: WorkKind, now: i64, step: &mut Step) {
        if let Ok(change) = self.transition(
            id,
            kind.running_status(),
            now,
            vec![(
                kind.started_event(),
                kind.event_source(),
                json!({"started": true}),
            )],
            |job| {
                job.attempts += 1;
                job.wake_at_ms = None;
            },
        ) {
            if let Change::PutJob { job, .. } = &change {
                step.actions
                    .push(Action::Start(Box::new(job.clone()), kind));
            }
            step.changes.push(change);
            self.running.insert(id, kind);
        }
    }

    /// Applies a worker's report: its provider updates are recorded (and persisted in this
    /// step) in any case; its outcome is ignored when the worker no longer owns its job
    /// (cancelled meanwhile).
    pub fn finish(
        &mut self,
        id: JobId,
        kind: WorkKind,
        report: impl Into<WorkReport>,
        now: i64,
    ) -> Step {
        let WorkReport {
            outcome,
            provider_updates,
            events: extra_events,
        } = report.into();
        let mut step = Step::default();
        // A worker that asked a provider reports its state (a failure, a session, a quota).
        let asked_a_provider = !provider_updates.is_empty();
        for state in provider_updates {
            // Workers see a cooldown at once; it is durable once this step commits.
            let state = self.providers.update(state);
            step.changes.push(Change::PutProviderState(state));
        }
        if self.running.get(&id) != Some(&kind) {
            return step;
        }
        self.running.remove(&id);
        let source = kind.event_source();
        let Some(record) = self.records.get_mut(&id) else {
            tracing::error!(job_id = %id, "a running job without its record; outcome ignored");
            return step;
        };
        // Any outcome but a missing video says the video is there.
        if !matches!(outcome, Outcome::VideoMissing { .. }) {
            record.video_missing_since_ms = None;
        }
        let (attempts, failures, created_at) =
            (record.attempts, record.failures + 1, record.created_at_ms);
        let result = match outcome {
            Outcome::Written {
                path,
                producer,
                detail,
            } => {
                let written_path = path.clone();
                let provenance =
                    crate::provenance::from_written(record, kind, &path, &producer, &detail, now);
                step.changes.push(Change::PutProvenance(provenance));
                let mut events = vec![
                    (
                        kind.produced_event(),
                        source,
                        json!({"producer": producer, "detail": detail}),
                    ),
                    (kind::WRITTEN, source, json!({"path": path})),
                ];
                events.extend(extra_events.into_iter().map(|(k, p)| (k, source, p)));
                self.transition(id, JobStatus::Done, now, events, |job| {
                    job.output_path = Some(written_path);
                    job.error = None;
                })
                .inspect(|_| {
                    step.changes
                        .push(Change::EnqueueOutbox(OutboxEntry::JobDone {
                            job_id: id,
                            path,
                        }));
                })
            }
            Outcome::AlreadyExists { path } => self.transition(
                id,
                JobStatus::Skipped,
                now,
                vec![(kind::SKIPPED, source, json!({"existing": path}))],
                |job| job.error = None,
            ),
            Outcome::AlreadyEmbedded { track } => self.transition(
                id,
                JobStatus::Skipped,
                now,
                vec![(
                    kind::SKIPPED,
                    source,
                    json!({"embedded": track, "reason": format!("already in the video: {track}")}),
                )],
                |job| job.error = None,
            ),
            Outcome::NeedsTranslation { source: file, from } => {
                let change = self.transition(
                    id,
                    JobStatus::TranslateQueued,
                    now,
                    vec![(
                        kind::TRANSLATE_REQUESTED,
                        source,
                        json!({"source": file, "from": from}),
                    )],
                    |job| {
                        job.translation_source = Some(file.clone());
                        job.translation_from = Some(from.clone());
                    },
                );
                if change.is_ok() {
                    self.push_queue(id, WorkKind::Translate);
                    if let Some(job) = self.records.remove(&id) {
                        self.keep_queued_record(job);
                    }
                }
                change
            }
            // Every provider cools down (an outage, a rate limit, a quota): look again once
            // the first cooldown ends, spread. Not a failure; a start that asked no provider
            // is not an attempt either; a wait after a wait leaves one event.
            Outcome::NothingFound {
                reason,
                retry_after: Some(delay),
            } => {
                let (waits, waited_before) = self.records.get_mut(&id).map_or((1, false), |j| {
                    if !asked_a_provider {
                        j.attempts = j.attempts.saturating_sub(1);
                    }
                    (
                        j.provider_waits.saturating_add(1),
                        j.provider_waits > 0 || j.nothing_found > 0 || j.failures > 0,
                    )
                });
                if waited_before {
                    step.changes.push(Change::DropJobEvents {
                        id,
                        kinds: RETRY_EVENT_KINDS,
                    });
                }
                let delay = provider_wait(id, u64::from(waits), delay);
                let result = self.wait(id, reason, delay, now, source, !waited_before, |job| {
                    job.provider_waits = waits;
                });
                if result.is_ok() {
                    self.provider_waiters.insert(id);
                }
                result
            }
            Outcome::NothingFound {
                reason,
                retry_after: None,
            } => {
                let (count, after_provider_waits) = self
                    .records
                    .get(&id)
                    .map_or((1, false), |j| (j.nothing_found + 1, j.provider_waits > 0));
                let age = Duration::from_millis(u64::try_from(now - created_at).unwrap_or(0));
                let delay = self.settings.nothing_found.delay(id, count, age);
                let compact = count >= 2 || after_provider_waits;
                if compact {
                    // A retry that found nothing again: it leaves one event behind.
                    step.changes.push(Change::DropJobEvents {
                        id,
                        kinds: RETRY_EVENT_KINDS,
                    });
                }
                // The first wait is announced as every retry is (`job.retry_scheduled`);
                // later ones are the one `subtitle.waiting` left after compaction.
                self.wait(id, reason, delay, now, source, !compact, |job| {
                    job.nothing_found = count;
                    job.provider_waits = 0;
                })
            }
            Outcome::VideoMissing { path } => {
                let since = self
                    .records
                    .get(&id)
                    .and_then(|j| j.video_missing_since_ms)
                    .unwrap_or(now);
                let missing_for = Duration::from_millis(u64::try_from(now - since).unwrap_or(0));
                match self
                    .settings
                    .video_checks
                    .iter()
                    .find(|at| **at > missing_for)
                {
                    Some(check) => {
                        let delay = check.saturating_sub(missing_for);
                        let reason = format!("video not found: {}", path.display());
                        self.wait(id, reason, delay, now, source, false, |job| {
                            job.video_missing_since_ms = Some(since);
                        })
                    }
                    None => self
                        .transition(
                            id,
                            JobStatus::Failed,
                            now,
                            vec![(
                                kind::JOB_FAILED,
                                source,
                                json!({"error": VIDEO_REMOVED, "path": path}),
                            )],
                            |job| job.error = Some(VIDEO_REMOVED.to_owned()),
                        )
                        .inspect(|_| step.changes.push(failed_entry(id, VIDEO_REMOVED))),
                }
            }
            Outcome::Failed { error, retryable } => {
                if let Some(job) = self.records.get_mut(&id) {
                    job.failures = failures;
                }
                if retryable && failures < self.settings.max_attempts {
                    let delay = self.retry_delay(failures);
                    self.wait(id, error, delay, now, source, true, |_| {})
                } else {
                    let reason = if retryable {
                        format!("{error} (gave up after {attempts} attempts)")
                    } else {
                        error
                    };
                    self.transition(
                        id,
                        JobStatus::Failed,
                        now,
                        vec![(kind::JOB_FAILED, source, json!({"error": reason}))],
                        |job| job.error = Some(reason.clone()),
                    )
                    .inspect(|_| step.changes.push(failed_entry(id, &reason)))
                }
            }
        };
        match result {
            Ok(change) => step.changes.push(change),
            Err(err) => tracing::error!(job_id = %id, error = %err, "worker outcome ignored"),
        }
        step.actions.push(Action::Dispatch);
        step
    }

    /// Parks a job in `waiting` with one event, `subtitle.waiting`, carrying the attempt
    /// count and the wake time (what a "nothing found" costs in the store), plus
    /// `job.retry_scheduled` if `announce`.
    #[allow(clippy::too_many_arguments)]
    fn wait(
        &mut self,
        id: JobId,
        reason: String,
        delay: Duration,
        now: i64,
        source: EventSource,
        announce: bool,
        edit: impl FnOnce(&mut Job),
    ) -> Result<Change, IllegalTransition> {
        self.provider_waiters.remove(&id);
        let wake_at = now.saturating_add(millis(delay));
        let attempt = self.records.get(&id).map_or(0, |j| j.attempts);
        let at = crate::time::format_rfc3339(wake_at);
        let mut events = vec![(
            kind::WAITING,
            source,
            json!({
                "reason": reason,
                "attempt": attempt,
                "at": at,
                "in_secs": delay.as_secs(),
            }),
        )];
        if announce {
            events.push((
                kind::RETRY_SCHEDULED,
                EventSource::Manager,
                json!({"at": at, "in_secs": delay.as_secs()}),
            ));
        }
        let change = self.transition(id, JobStatus::Waiting, now, events, |job| {
            edit(job);
            job.error = Some(reason.clone());
            job.wake_at_ms = Some(wake_at);
        })?;
        self.wakes.insert((wake_at, id));
        Ok(change)
    }

    /// The end of the first cooldown while every provider known is cooling down at `now`.
    fn providers_gate(&self, now: i64) -> Option<i64> {
        let states = self.providers.all();
        let mut gate: Option<i64> = None;
        for state in &states {
            let until = state.cooling_until(now)?;
            gate = Some(gate.map_or(until, |g| g.min(until)));
        }
        gate
    }

    /// Re-queues the `waiting` jobs whose wake time has come, earliest first, at most
    /// [`ManagerSettings::wakes_per_tick`] of them (the others at the next check). A job
    /// whose last attempt found every provider cooling down is not woken while every
    /// provider still is: its wake time moves, in memory only (no store write, no event),
    /// to the end of the first cooldown, spread ([`provider_wait`]).
    pub fn wake_due(&mut self, now: i64) -> Step {
        let mut step = Step::default();
        if !self.is_accepting {
            return step;
        }
        let gate = if self.provider_waiters.is_empty() {
            None
        } else {
            self.providers_gate(now)
        };
        let mut released = 0;
        let mut postponed = Vec::new();
        while let Some(&(at, id)) = self.wakes.first() {
            if at > now || released >= self.settings.wakes_per_tick.max(1) {
                break;
            }
            self.wakes.pop_first();
            let due = self
                .jobs
                .get(&id)
                .is_some_and(|e| e.status == JobStatus::Waiting && e.wake_at_ms == Some(at));
            if !due {
                continue;
            }
            if let Some(until) = gate
                && self.provider_waiters.contains(&id)
            {
                postponed.push((id, until));
                continue;
            }
            self.provider_waiters.remove(&id);
            if let Ok(change) = self.transition(
                id,
                JobStatus::DownloadQueued,
                now,
                vec![(
                    kind::DOWNLOAD_REQUESTED,
                    EventSource::Scheduler,
                    json!({"reason": "retry"}),
                )],
                |job| job.wake_at_ms = None,
            ) {
                released += 1;
                step.changes.push(change);
                self.push_queue(id, WorkKind::Download);
            }
        }
        for (id, until) in postponed {
            let wait = Duration::from_millis(u64::try_from(until - now).unwrap_or(0));
            let at = now.saturating_add(millis(provider_wait(id, until as u64, wait)));
            if let Some(entry) = self.jobs.get_mut(&id) {
                entry.wake_at_ms = Some(at);
                self.wakes.insert((at, id));
            }
        }
        if !step.changes.is_empty() {
            step.actions.push(Action::Dispatch);
        }
        step
    }

    /// Cancels an unfinished job. `None` if the manager does not hold it (unknown or
    /// already finished: the caller looks in the store).
    pub fn cancel(&mut self, id: JobId, now: i64) -> Option<Step> {
        let was_running = self.running.contains_key(&id);
        if let Some(at) = self.jobs.get(&id)?.wake_at_ms {
            self.wakes.remove(&(at, id));
        }
        let change = self
            .transition(
                id,
                JobStatus::Cancelled,
                now,
                vec![(kind::CANCELLED, EventSource::Api, json!({}))],
                |job| job.wake_at_ms = None,
            )
            .ok()?;
        let mut step = Step {
            changes: vec![change],
            actions: vec![Action::Dispatch],
        };
        if was_running {
            step.actions.insert(0, Action::Stop(id));
        }
        Some(step)
    }

    /// Re-queues a job at once on a user's request: `waiting` (held here) or `failed` /
    /// `cancelled` (`stored` is the record read from the store).
    pub fn retry(&mut self, stored: Job, now: i64) -> Result<Step, ManagerError> {
        if !self.is_accepting {
            return Err(ManagerError::ShuttingDown);
        }
        let id = stored.id;
        if let Some(live) = self.jobs.get(&id) {
            if live.status != JobStatus::Waiting {
                return Err(ManagerError::Conflict {
                    id,
                    status: live.status,
                    reason: "only waiting, failed or cancelled jobs can be retried",
                });
            }
            if let Some(at) = live.wake_at_ms {
                self.wakes.remove(&(at, id));
            }
            self.provider_waiters.remove(&id);
            // The record read by the caller is the one this core last wrote.
            let mut stored = stored;
            stored.status = live.status;
            self.records.insert(id, stored);
        } else {
            if !matches!(stored.status, JobStatus::Failed | JobStatus::Cancelled) {
                return Err(ManagerError::Conflict {
                    id,
                    status: stored.status,
                    reason: "only waiting, failed or cancelled jobs can be retried",
                });
            }
            let key = self.key_hash(&stored.path, &stored.language);
            if let Some(other) = self.find_key(key) {
                let status = self.jobs.get(&other).map_or(stored.status, |e| e.status);
                return Err(ManagerError::Conflict {
                    id: other,
                    status,
                    reason: "another job for the same video and language is unfinished",
                });
            }
            self.insert_entry(
                id,
                Entry {
                    status: stored.status,
                    priority: stored.priority,
                    wake_at_ms: None,
                    key,
                    seen_by: stored.origin.bit(),
                },
            );
            self.records.insert(id, stored);
        }
        let previous = self.records.get(&id).map_or(0, |j| j.attempts);
        let change = self
            .transition(
                id,
                JobStatus::DownloadQueued,
                now,
                vec![(
                    kind::RETRY_REQUESTED,
                    EventSource::Api,
                    json!({"previous_attempts": previous}),
                )],
                |job| {
                    job.attempts = 0;
                    job.failures = 0;
                    job.nothing_found = 0;
                    job.provider_waits = 0;
                    job.video_missing_since_ms = None;
                    job.error = None;
                    job.wake_at_ms = None;
                },
            )
            .map_err(|err| ManagerError::Conflict {
                id,
                status: err.from,
                reason: "only waiting, failed or cancelled jobs can be retried",
            })?;
        self.push_queue(id, WorkKind::Download);
        if let Some(job) = self.records.remove(&id) {
            self.keep_queued_record(job);
        }
        Ok(Step {
            changes: vec![change],
            actions: vec![Action::Dispatch],
        })
    }

    /// Takes over the unfinished jobs found in the store at start-up (their heads: the
    /// core keeps no record of them): queued jobs are queued again, interrupted ones
    /// re-queued (`job.resumed`), waiting ones re-armed.
    pub fn resume<H: Into<JobHead>>(
        &mut self,
        jobs: impl IntoIterator<Item = H>,
        now: i64,
    ) -> Step {
        let hasher = self.key_hasher();
        let jobs: Vec<Unfinished> = jobs
            .into_iter()
            .map(|head| hasher.unfinished(head.into()))
            .collect();
        self.resume_unfinished(jobs, now)
    }

    /// [`resume`](Self::resume) of jobs already in their compact form (keys hashed by this
    /// core's [`key_hasher`](Self::key_hasher)), oldest first.
    pub fn resume_unfinished(&mut self, jobs: Vec<Unfinished>, now: i64) -> Step {
        let mut step = Step::default();
        for job in jobs {
            let id = job.id;
            let status = job.status;
            // Notification jobs are the notifier's (`crate::notify`), not the manager's.
            if status.is_terminal() || job.seen_by == EventSource::Notifier.bit() {
                continue;
            }
            let wake_at_ms = (status == JobStatus::Waiting).then(|| job.wake_at_ms.unwrap_or(now));
            self.insert_entry(
                id,
                Entry {
                    status,
                    priority: job.priority,
                    wake_at_ms,
                    key: job.key,
                    seen_by: job.seen_by,
                },
            );
            let requeue = |core: &mut Self, to: JobStatus, event: &str| {
                core.transition(
                    id,
                    to,
                    now,
                    vec![(event, EventSource::Manager, json!({"after": "restart"}))],
                    |_| {},
                )
                .ok()
            };
            let change = match status {
                JobStatus::Pending => {
                    let change = requeue(self, JobStatus::DownloadQueued, kind::DOWNLOAD_REQUESTED);
                    self.push_queue(id, WorkKind::Download);
                    change
                }
                JobStatus::Waiting => {
                    if let Some(at) = wake_at_ms {
                        self.wakes.insert((at, id));
                    }
                    None
                }
                status => match WorkKind::of_status(status) {
                    // Interrupted mid-work: back to its queue, saying so.
                    Some(work) if status == work.running_status() => {
                        let change = requeue(self, work.queued_status(), kind::RESUMED);
                        self.push_queue(id, work);
                        change
                    }
                    Some(work) => {
                        self.push_queue(id, work);
                        None
                    }
                    None => {
                        self.forget(id);
                        None
                    }
                },
            };
            step.changes.extend(change);
        }
        step.actions.push(Action::Dispatch);
        step
    }
}

#[cfg(test)]
mod tests;

/// The outbox entry of a job that failed for good (the notifiers' `failed` event).
fn failed_entry(job_id: JobId, error: &str) -> Change {
    Change::EnqueueOutbox(OutboxEntry::JobFailed {
        job_id,
        error: error.to_owned(),
    })
}
