//! The JobManager's logic, free of actix: deduplication, priority queues, concurrency
//! slots, retries and the mapping of worker outcomes to statuses and events.
//!
//! Every method takes `now` and returns a [`Step`]: the store changes to commit and the
//! actions to perform *after* the commit (persist first, then act). The actor shell in
//! [`actor`] commits and performs; tests drive this core directly.

pub mod actor;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use backon::BackoffBuilder;
use serde::Serialize;
use serde_json::json;

use crate::event::{Event, kind};
use crate::job::{
    EventSource, IllegalTransition, Job, JobId, JobStatus, Language, MediaItem, Priority, dedup_key,
};
use crate::store::{Change, MediaRecord, OutboxEntry, ProviderState, StoreError};
use crate::worker::{Outcome, ProviderRegistry, WorkKind, WorkReport};

pub use actor::{
    CancelJob, JobManager, ManagerStatus, RequestSubtitles, RetryJob, Shutdown, StatusReport,
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
}

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

/// Something the shell does after the step's changes are durable.
#[derive(Debug, Clone)]
pub enum Action {
    /// Spawn a worker for the job.
    Start(Box<Job>, WorkKind),
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

/// The in-memory state of every unfinished job.
#[derive(Debug)]
pub struct ManagerCore {
    settings: ManagerSettings,
    jobs: HashMap<JobId, Job>,
    by_key: HashMap<String, JobId>,
    downloads: Queue,
    translations: Queue,
    running: HashMap<JobId, WorkKind>,
    wakes: BTreeSet<(i64, JobId)>,
    order: u64,
    is_accepting: bool,
    providers: ProviderRegistry,
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
            by_key: HashMap::new(),
            downloads: Queue::default(),
            translations: Queue::default(),
            running: HashMap::new(),
            wakes: BTreeSet::new(),
            order: 0,
            is_accepting: true,
            providers: ProviderRegistry::default(),
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

    /// An unfinished job.
    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Number of running workers of a kind.
    pub fn running(&self, kind: WorkKind) -> usize {
        self.running.values().filter(|k| **k == kind).count()
    }

    /// Number of unfinished jobs per status.
    pub fn status_counts(&self) -> HashMap<JobStatus, usize> {
        let mut counts = HashMap::new();
        for job in self.jobs.values() {
            *counts.entry(job.status).or_default() += 1;
        }
        counts
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

    /// Moves a job to `to`, recording `events`; drops it from memory when terminal.
    fn transition(
        &mut self,
        id: JobId,
        to: JobStatus,
        now: i64,
        events: Vec<(&str, EventSource, serde_json::Value)>,
        edit: impl FnOnce(&mut Job),
    ) -> Result<Change, IllegalTransition> {
        let Some(job) = self.jobs.get_mut(&id) else {
            return Err(IllegalTransition { from: to, to });
        };
        job.status = job.status.transition(to)?;
        job.updated_at_ms = now;
        edit(job);
        let events = events
            .into_iter()
            .map(|(kind, source, mut payload)| {
                if let Some(map) = payload.as_object_mut() {
                    map.insert("status".into(), json!(to));
                }
                Event::for_job(id, kind, source, now, payload)
            })
            .collect();
        let change = Change::PutJob {
            job: job.clone(),
            events,
        };
        if to.is_terminal() {
            self.forget(id);
        }
        Ok(change)
    }

    /// Removes a job from memory (terminal, or never persisted).
    pub fn forget(&mut self, id: JobId) {
        self.running.remove(&id);
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        if let Some(at) = job.wake_at_ms {
            self.wakes.remove(&(at, id));
        }
        let key = job.dedup_key();
        if self.by_key.get(&key) == Some(&id) {
            self.by_key.remove(&key);
        }
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
        for language in &request.languages {
            let key = dedup_key(&request.media.path, language);
            if let Some(job) = self.by_key.get(&key).and_then(|id| self.jobs.get(id)) {
                if !summaries.iter().any(|s: &JobSummary| s.id == job.id) {
                    summaries.push(JobSummary {
                        id: job.id,
                        language: job.language.clone(),
                        status: job.status,
                    });
                }
                continue;
            }
            let job = Job {
                id: JobId::new(),
                status: JobStatus::Pending,
                language: language.clone(),
                path: request.media.path.clone(),
                jellyfin_item_id: request.media.jellyfin_item_id.clone(),
                priority: request.priority,
                auto_translate: request.auto_translate,
                attempts: 0,
                error: None,
                output_path: None,
                origin: request.source,
                created_at_ms: now,
                updated_at_ms: now,
                wake_at_ms: None,
                translation_source: None,
                translation_from: None,
            };
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
            self.by_key.insert(key, job.id);
            changes.push(Change::PutJob {
                job: job.clone(),
                events: vec![event],
            });
            self.jobs.insert(job.id, job);
        }
        Ok(Accepted {
            summaries,
            changes,
            new_ids,
        })
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
                if self.jobs.get(&id).is_none_or(|j| j.status != queued)
                    || self.running.contains_key(&id)
                {
                    continue;
                }
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
        }
        step
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
        } = report.into();
        let mut step = Step::default();
        for state in provider_updates {
            // Workers see a cooldown at once; it is durable once this step commits.
            self.providers.set(state.clone());
            step.changes.push(Change::PutProviderState(state));
        }
        if self.running.get(&id) != Some(&kind) {
            return step;
        }
        self.running.remove(&id);
        let source = kind.event_source();
        let attempts = self.jobs.get(&id).map_or(0, |j| j.attempts);
        let result = match outcome {
            Outcome::Written {
                path,
                producer,
                detail,
            } => {
                let written_path = path.clone();
                self.transition(
                    id,
                    JobStatus::Done,
                    now,
                    vec![
                        (
                            kind.produced_event(),
                            source,
                            json!({"producer": producer, "detail": detail}),
                        ),
                        (kind::WRITTEN, source, json!({"path": path})),
                    ],
                    |job| {
                        job.output_path = Some(written_path);
                        job.error = None;
                    },
                )
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
                }
                change
            }
            Outcome::NothingFound {
                reason,
                retry_after,
            } => {
                let delay = retry_after.unwrap_or_else(|| self.retry_delay(attempts));
                self.park(id, reason, delay, now, source, kind::WAITING)
            }
            Outcome::Failed { error, retryable } => {
                if retryable && attempts < self.settings.max_attempts {
                    let delay = self.retry_delay(attempts);
                    self.park(id, error, delay, now, source, kind::WAITING)
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

    fn park(
        &mut self,
        id: JobId,
        reason: String,
        delay: Duration,
        now: i64,
        source: EventSource,
        event: &str,
    ) -> Result<Change, IllegalTransition> {
        let wake_at = now.saturating_add(millis(delay));
        let change = self.transition(
            id,
            JobStatus::Waiting,
            now,
            vec![
                (event, source, json!({"reason": reason})),
                (
                    kind::RETRY_SCHEDULED,
                    EventSource::Manager,
                    json!({"at": crate::time::format_rfc3339(wake_at), "in_secs": delay.as_secs()}),
                ),
            ],
            |job| {
                job.error = Some(reason.clone());
                job.wake_at_ms = Some(wake_at);
            },
        )?;
        self.wakes.insert((wake_at, id));
        Ok(change)
    }

    /// Re-queues every `waiting` job whose wake time has come.
    pub fn wake_due(&mut self, now: i64) -> Step {
        let mut step = Step::default();
        if !self.is_accepting {
            return step;
        }
        while let Some(&(at, id)) = self.wakes.first() {
            if at > now {
                break;
            }
            self.wakes.pop_first();
            if self
                .jobs
                .get(&id)
                .is_some_and(|j| j.status == JobStatus::Waiting && j.wake_at_ms == Some(at))
                && let Ok(change) = self.transition(
                    id,
                    JobStatus::DownloadQueued,
                    now,
                    vec![(
                        kind::DOWNLOAD_REQUESTED,
                        EventSource::Scheduler,
                        json!({"reason": "retry"}),
                    )],
                    |job| job.wake_at_ms = None,
                )
            {
                step.changes.push(change);
                self.push_queue(id, WorkKind::Download);
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
        } else {
            if !matches!(stored.status, JobStatus::Failed | JobStatus::Cancelled) {
                return Err(ManagerError::Conflict {
                    id,
                    status: stored.status,
                    reason: "only waiting, failed or cancelled jobs can be retried",
                });
            }
            if let Some(other) = self.by_key.get(&stored.dedup_key()) {
                let status = self.jobs.get(other).map_or(stored.status, |j| j.status);
                return Err(ManagerError::Conflict {
                    id: *other,
                    status,
                    reason: "another job for the same video and language is unfinished",
                });
            }
            self.by_key.insert(stored.dedup_key(), id);
            self.jobs.insert(id, stored);
        }
        let previous = self.jobs.get(&id).map_or(0, |j| j.attempts);
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
        Ok(Step {
            changes: vec![change],
            actions: vec![Action::Dispatch],
        })
    }

    /// Takes over the unfinished jobs found in the store at start-up: queued jobs are
    /// queued again, interrupted ones re-queued (`job.resumed`), waiting ones re-armed.
    pub fn resume(&mut self, jobs: Vec<Job>, now: i64) -> Step {
        let mut step = Step::default();
        for job in jobs {
            let id = job.id;
            let status = job.status;
            self.by_key.insert(job.dedup_key(), id);
            self.jobs.insert(id, job);
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
                    let at = self.jobs.get(&id).and_then(|j| j.wake_at_ms).unwrap_or(now);
                    if let Some(job) = self.jobs.get_mut(&id) {
                        job.wake_at_ms = Some(at);
                    }
                    self.wakes.insert((at, id));
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
