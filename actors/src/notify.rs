//! Notifications: every outbox entry (a subtitle written, a job failed, a subtitle upgraded)
//! becomes one notify job per target that listens for it, acknowledged in the same commit
//! that creates the jobs; each job is sent on its own, with its own capped exponential
//! backoff and attempt limit, so one dead service never holds back another.
//!
//! Notify jobs are ordinary [`Job`] records (origin `notifier`, [`Job::notify`] set), listed
//! by the API like any job; their life is `pending` (or `waiting` for a digest window or a
//! retry) → `done` | `waiting` | `failed`. The JobManager leaves them alone. A crash before
//! the commit leaves the outbox entry to be read again; a crash during a send sends again on
//! the next start: at least once, normally once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{error, info, warn};

use crate::clients::{Notifier, NotifyError};
use crate::event::{Event, kind};
use crate::job::{EventSource, Job, JobId, JobStatus, Language, Priority};
use crate::scoring::VideoFacts;
use crate::store::{Change, OutboxEntry, Store, error_chain};
use crate::time::now_ms;

/// Outbox entries read per page.
pub const OUTBOX_PAGE: usize = 64;
/// How often the outbox is read when no event woke the notifier.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A digest is sent once no item came for its window, or this many windows after its
/// first item, whichever is sooner.
pub const DIGEST_STRETCH: i64 = 10;
/// Items one message lists before it says how many more there are.
pub const MAX_LINES: usize = 25;

/// What a target can be told about (`on = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A subtitle was written.
    Written,
    /// A job failed for good.
    Failed,
    /// A better subtitle replaced one.
    Upgraded,
}

impl NotifyEvent {
    /// Every event, in `on`'s spelling order.
    pub const ALL: [NotifyEvent; 3] = [Self::Written, Self::Failed, Self::Upgraded];

    /// The name used in `on` and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Failed => "failed",
            Self::Upgraded => "upgraded",
        }
    }

    /// The event named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// One subtitle (or failure) a notification tells of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyItem {
    /// The subtitle job.
    pub job_id: JobId,
    /// Its video.
    pub video: PathBuf,
    /// Its language.
    pub language: Language,
    /// The subtitle written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<PathBuf>,
    /// The provider, or the translation service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Machine-translated rather than downloaded.
    #[serde(default)]
    pub machine_translated: bool,
    /// The chosen candidate's score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u32>,
    /// Why the job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl NotifyItem {
    /// `Example Movie (2019)` or `Example Show S01E02`, from the video's name.
    pub fn title(&self) -> String {
        let facts = VideoFacts::from_path(&self.video);
        let release = facts.release;
        let stem = self
            .video
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let title = match release.title.filter(|t| !t.is_empty()) {
            // The parser lower-cases; the name's own spelling reads better.
            Some(parsed) => {
                let words = parsed.split_whitespace().count();
                let original: Vec<&str> = stem
                    .split(['.', '_', ' '])
                    .filter(|w| !w.is_empty())
                    .take(words)
                    .collect();
                let original = original.join(" ");
                if original.to_lowercase() == parsed {
                    original
                } else {
                    parsed
                }
            }
            None => stem,
        };
        match (release.season, release.episode, release.year) {
            (Some(s), Some(e), _) => format!("{title} S{s:02}E{e:02}"),
            (None, Some(e), _) => format!("{title} E{e:02}"),
            (_, None, Some(year)) => format!("{title} ({year})"),
            _ => title,
        }
    }

    /// One plain line: `Example Movie (2019): en from opensubtitles, score 87`.
    pub fn line(&self, event: NotifyEvent) -> String {
        let title = self.title();
        let language = &self.language;
        if event == NotifyEvent::Failed {
            let error = self.error.as_deref().unwrap_or("failed");
            return format!("{title}: {language} failed: {error}");
        }
        let mut line = format!("{title}: {language}");
        match (&self.provider, self.machine_translated) {
            (Some(service), true) => line.push_str(&format!(", machine-translated ({service})")),
            (None, true) => line.push_str(", machine-translated"),
            (Some(provider), false) => line.push_str(&format!(" from {provider}")),
            (None, false) => {}
        }
        if let Some(score) = self.score {
            line.push_str(&format!(", score {score}"));
        }
        line
    }
}

/// What a notify job delivers: its target and the items (one, or a digest's many).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyJob {
    /// The `[notify.NAME]` target.
    pub target: String,
    /// What happened.
    pub event: NotifyEvent,
    /// What it tells of, oldest first.
    pub items: Vec<NotifyItem>,
}

/// The message a [`Notifier`] sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What happened.
    pub event: NotifyEvent,
    /// What it tells of (at least one).
    pub items: Vec<NotifyItem>,
}

impl Notification {
    /// A short title: `Subtitle written`, `40 subtitles written`.
    pub fn title(&self) -> String {
        let n = self.items.len();
        match (self.event, n) {
            (NotifyEvent::Written, 1) => "Subtitle written".to_owned(),
            (NotifyEvent::Written, n) => format!("{n} subtitles written"),
            (NotifyEvent::Upgraded, 1) => "Subtitle upgraded".to_owned(),
            (NotifyEvent::Upgraded, n) => format!("{n} subtitles upgraded"),
            (NotifyEvent::Failed, 1) => "Subtitle job failed".to_owned(),
            (NotifyEvent::Failed, n) => format!("{n} subtitle jobs failed"),
        }
    }

    /// The text: one line per item, at most [`MAX_LINES`].
    pub fn body(&self) -> String {
        let mut lines: Vec<String> = self
            .items
            .iter()
            .take(MAX_LINES)
            .map(|item| item.line(self.event))
            .collect();
        if self.items.len() > MAX_LINES {
            lines.push(format!("… and {} more", self.items.len() - MAX_LINES));
        }
        lines.join("\n")
    }

    /// The folders of the videos, each once, in order (what a media server rescans).
    pub fn folders(&self) -> Vec<PathBuf> {
        let mut folders: Vec<PathBuf> = Vec::new();
        for item in &self.items {
            if let Some(folder) = item.video.parent()
                && !folders.iter().any(|f| f == folder)
            {
                folders.push(folder.to_owned());
            }
        }
        folders
    }
}

/// One configured, enabled target.
pub struct NotifyTarget {
    /// Sends the messages; its `name` is the target's.
    pub notifier: Rc<dyn Notifier>,
    /// The events it is told of.
    pub on: Vec<NotifyEvent>,
    /// Items arriving within this window of the first one make one message.
    pub digest: Option<Duration>,
}

/// How notify jobs are tried.
#[derive(Debug, Clone)]
pub struct NotifyLimits {
    /// Sends per job before it fails.
    pub max_attempts: u32,
    /// The wait after the first failure; doubled after each one.
    pub retry_base: Duration,
    /// The longest wait (also caps a service's own `retry_after`).
    pub retry_max: Duration,
    /// How long one send may take.
    pub timeout: Duration,
    /// Sends at once, over all targets (each target has one at a time).
    pub concurrency: usize,
}

impl Default for NotifyLimits {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            timeout: Duration::from_secs(30),
            concurrency: 8,
        }
    }
}

impl NotifyLimits {
    /// The wait after failure number `failures` (1-based), or the service's own wait,
    /// capped by [`retry_max`](Self::retry_max).
    pub fn retry_delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        retry_after.unwrap_or(doubled).min(self.retry_max)
    }
}

/// The running notifier; [`stop`](Self::stop) ends it (sends in flight are sent again on
/// the next start).
pub struct NotifyHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl NotifyHandle {
    /// Stops the notifier and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the notifier on the current (actix) thread: it takes over the unfinished notify
/// jobs of the store (`unfinished`: their ids, as the store's start-up check found them
/// with [`StartJobs::take_notify_jobs`](crate::job_manager::StartJobs::take_notify_jobs);
/// `None`: it looks for them itself), then reads the outbox whenever a commit may have
/// added to it.
pub fn start(
    store: Store,
    targets: Vec<NotifyTarget>,
    limits: NotifyLimits,
    unfinished: Option<Vec<JobId>>,
) -> NotifyHandle {
    let (stop, stopped) = watch::channel(false);
    let (done, finished) = mpsc::unbounded_channel();
    let events = store.subscribe();
    let engine = Engine {
        store,
        targets: targets
            .into_iter()
            .map(|t| (t.notifier.name().to_owned(), t))
            .collect(),
        limits,
        jobs: HashMap::new(),
        open_digests: HashMap::new(),
        running: HashMap::new(),
        done,
    };
    let task = tokio::task::spawn_local(engine.run(unfinished, stopped, finished, events));
    NotifyHandle { stop, task }
}

type Done = (JobId, Result<(), NotifyError>);

struct Engine {
    store: Store,
    targets: HashMap<String, NotifyTarget>,
    limits: NotifyLimits,
    /// The unfinished notify jobs.
    jobs: HashMap<JobId, Job>,
    /// The digest job of each target and event still collecting items.
    open_digests: HashMap<(String, NotifyEvent), JobId>,
    /// The sends in flight, with their target.
    running: HashMap<JobId, String>,
    done: mpsc::UnboundedSender<Done>,
}

/// An outbox entry read with what it needs: its subtitle job and that job's events.
type Read = (u64, OutboxEntry, Option<(Job, Vec<Event>)>);

impl Engine {
    async fn run(
        mut self,
        unfinished: Option<Vec<JobId>>,
        mut stop: watch::Receiver<bool>,
        mut finished: mpsc::UnboundedReceiver<Done>,
        mut events: broadcast::Receiver<std::sync::Arc<Event>>,
    ) {
        self.load(unfinished).await;
        let mut outbox_due = true;
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            if outbox_due {
                outbox_due = self.drain_outbox().await;
            }
            let now = now_ms();
            self.dispatch(now);
            let next_wake = self
                .jobs
                .iter()
                .filter(|(id, job)| {
                    !self.running.contains_key(id) && job.status == JobStatus::Waiting
                })
                .filter_map(|(_, job)| job.wake_at_ms)
                // Due ones not started wait for a free slot: the next finished send.
                .filter(|at| *at > now)
                .min()
                .map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
            let wake = async {
                match next_wake {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => break,
                Some((id, result)) = finished.recv() => self.finish(id, result).await,
                event = events.recv() => match event {
                    Ok(event) => {
                        outbox_due |= event.kind == kind::WRITTEN || event.kind == kind::JOB_FAILED;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => outbox_due = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => outbox_due = true,
                () = wake => {}
            }
        }
        info!("notifier stopped");
    }

    /// Takes over the unfinished notify jobs of the store; those of a target no longer
    /// configured fail with that reason.
    async fn load(&mut self, unfinished: Option<Vec<JobId>>) {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let ids = match unfinished {
                Some(ids) => ids,
                None => {
                    let mut ids = Vec::new();
                    store.for_each_unfinished_head(|head| {
                        if head.origin == Some(EventSource::Notifier) {
                            ids.push(head.id);
                        }
                    })?;
                    ids
                }
            };
            let mut jobs = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(job) = store.job(id)?.filter(|j| !j.status.is_terminal()) {
                    jobs.push(job);
                }
            }
            Ok::<_, crate::store::StoreError>(jobs)
        })
        .await;
        let jobs = match read {
            Ok(Ok(jobs)) => jobs,
            Ok(Err(err)) => {
                error!(error = %error_chain(&err), "cannot read the unfinished notify jobs");
                return;
            }
            Err(err) => {
                error!(error = %err, "cannot read the unfinished notify jobs");
                return;
            }
        };
        let now = now_ms();
        let mut orphans = Vec::new();
        for job in jobs {
            let Some(notify) = &job.notify else { continue };
            if !self.targets.contains_key(&notify.target) {
                orphans.push(job);
                continue;
            }
            if job.attempts == 0 && job.status == JobStatus::Waiting {
                self.open_digests
                    .insert((notify.target.clone(), notify.event), job.id);
            }
            self.jobs.insert(job.id, job);
        }
        if !self.jobs.is_empty() {
            info!(count = self.jobs.len(), "resuming notify jobs");
        }
        for mut job in orphans {
            let target = job
                .notify
                .as_ref()
                .map(|n| n.target.clone())
                .unwrap_or_default();
            let reason = format!("notify target {target:?} is not configured any more");
            job.status = JobStatus::Failed;
            job.error = Some(reason.clone());
            job.wake_at_ms = None;
            job.updated_at_ms = now;
            let event = Event::for_job(
                job.id,
                kind::NOTIFY_FAILED,
                EventSource::Notifier,
                now,
                json!({"target": target, "error": reason, "will_retry": false}),
            );
            if let Err(err) = self
                .store
                .submit(vec![Change::PutJob {
                    job,
                    events: vec![event],
                }])
                .await
            {
                error!(error = %error_chain(&err), "cannot end a notify job");
            }
        }
    }

    /// Turns one page of outbox entries into notify jobs; `true` if more may be waiting.
    async fn drain_outbox(&mut self) -> bool {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut out: Vec<Read> = Vec::new();
            for (seq, entry) in store.outbox(OUTBOX_PAGE)? {
                let job_id = match &entry {
                    OutboxEntry::JobDone { job_id, .. }
                    | OutboxEntry::JobFailed { job_id, .. }
                    | OutboxEntry::Upgraded { job_id, .. } => *job_id,
                };
                let job = match store.job(job_id)? {
                    Some(job) => Some((job, store.job_events(job_id)?)),
                    None => None,
                };
                out.push((seq, entry, job));
            }
            Ok::<_, crate::store::StoreError>(out)
        })
        .await;
        let entries = match read {
            Ok(Ok(entries)) => entries,
            Ok(Err(err)) => {
                error!(error = %error_chain(&err), "cannot read the outbox");
                return false;
            }
            Err(err) => {
                error!(error = %err, "cannot read the outbox");
                return false;
            }
        };
        let full = entries.len() == OUTBOX_PAGE;
        self.take_entries(entries).await && full
    }

    /// A page of outbox entries: their notify jobs (new, or a digest's next items) and
    /// their acknowledgements, in one commit. `false` if the commit failed (the outbox
    /// keeps them).
    async fn take_entries(&mut self, entries: Vec<Read>) -> bool {
        let now = now_ms();
        // The page's jobs as they will be once committed, in the order first touched.
        let mut staged: HashMap<JobId, (Job, Vec<Event>)> = HashMap::new();
        let mut order: Vec<JobId> = Vec::new();
        let mut digests = self.open_digests.clone();
        let mut acks = Vec::new();
        let mut names: Vec<&String> = self.targets.keys().collect();
        names.sort();
        for (seq, entry, job) in entries {
            acks.push(Change::AckOutbox(seq));
            let Some((event, item)) = item_of(&entry, job) else {
                warn!(
                    seq,
                    "outbox entry of a job the store no longer holds; dropped"
                );
                continue;
            };
            for name in &names {
                let target = &self.targets[*name];
                if !target.on.contains(&event) {
                    continue;
                }
                let key = ((*name).clone(), event);
                let open = digests
                    .get(&key)
                    .filter(|id| !self.running.contains_key(id))
                    .and_then(|id| {
                        staged
                            .get(id)
                            .map(|(job, _)| job)
                            .or_else(|| self.jobs.get(id))
                    })
                    .filter(|job| job.status == JobStatus::Waiting && job.attempts == 0);
                let job = match (target.digest, open) {
                    (Some(window), Some(open)) => {
                        let mut job = open.clone();
                        if let Some(notify) = job.notify.as_mut() {
                            notify.items.push(item.clone());
                        }
                        job.updated_at_ms = now;
                        // Quiet for a window, or at most DIGEST_STRETCH windows in all.
                        let window = millis(window);
                        job.wake_at_ms =
                            Some((now + window).min(job.created_at_ms + DIGEST_STRETCH * window));
                        job
                    }
                    (digest, _) => {
                        let mut job = Job::pending(
                            item.video.clone(),
                            item.language.clone(),
                            EventSource::Notifier,
                            now,
                        );
                        job.priority = Priority::Normal;
                        job.output_path.clone_from(&item.subtitle);
                        job.notify = Some(NotifyJob {
                            target: (*name).clone(),
                            event,
                            items: vec![item.clone()],
                        });
                        if let Some(window) = digest {
                            job.status = JobStatus::Waiting;
                            job.wake_at_ms = Some(now + millis(window));
                            digests.insert(key, job.id);
                        }
                        job
                    }
                };
                let queued = Event::for_job(
                    job.id,
                    kind::NOTIFY_QUEUED,
                    EventSource::Notifier,
                    now,
                    json!({
                        "target": name,
                        "event": event.as_str(),
                        "job_id": item.job_id,
                        "items": job.notify.as_ref().map_or(0, |n| n.items.len()),
                    }),
                );
                match staged.get_mut(&job.id) {
                    Some((kept, events)) => {
                        *kept = job;
                        events.push(queued);
                    }
                    None => {
                        order.push(job.id);
                        staged.insert(job.id, (job, vec![queued]));
                    }
                }
            }
        }
        let mut changes: Vec<Change> = order
            .iter()
            .filter_map(|id| staged.get(id))
            .map(|(job, events)| Change::PutJob {
                job: job.clone(),
                events: events.clone(),
            })
            .collect();
        changes.extend(acks);
        match self.store.submit(changes).await {
            Ok(_) => {
                for (id, (job, _)) in staged {
                    self.jobs.insert(id, job);
                }
                self.open_digests = digests;
                true
            }
            Err(err) => {
                error!(error = %error_chain(&err), "cannot queue notifications; the outbox keeps them");
                false
            }
        }
    }

    /// Starts the sends that are due, oldest first, up to the concurrency limit.
    fn dispatch(&mut self, now: i64) {
        let free = self.limits.concurrency.saturating_sub(self.running.len());
        if free == 0 {
            return;
        }
        let mut due: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(id, job)| {
                !self.running.contains_key(id)
                    && (job.status == JobStatus::Pending
                        || (job.status == JobStatus::Waiting
                            && job.wake_at_ms.is_none_or(|at| at <= now)))
            })
            .map(|(id, _)| *id)
            .collect();
        due.sort();
        let mut started = 0;
        for id in due {
            if started == free {
                break;
            }
            let Some(notify) = self.jobs.get(&id).and_then(|j| j.notify.as_ref()) else {
                continue;
            };
            let Some(target) = self.targets.get(&notify.target) else {
                continue;
            };
            // One send per target at a time: a target that hangs holds one slot, never
            // the others' (and a service's rate limit sees one client).
            if self.running.values().any(|busy| *busy == notify.target) {
                continue;
            }
            started += 1;
            self.open_digests.retain(|_, open| *open != id);
            let notification = Notification {
                event: notify.event,
                items: notify.items.clone(),
            };
            let sending = target.notifier.send(&notification);
            let timeout = self.limits.timeout;
            let done = self.done.clone();
            self.running.insert(id, notify.target.clone());
            tokio::task::spawn_local(async move {
                let result = match tokio::time::timeout(timeout, sending).await {
                    Ok(result) => result,
                    Err(_) => Err(NotifyError::retry(format!(
                        "no answer within {}s",
                        timeout.as_secs()
                    ))),
                };
                let _ = done.send((id, result));
            });
        }
    }

    /// Records a send's result: `done`, `waiting` for the next try, or `failed`.
    async fn finish(&mut self, id: JobId, result: Result<(), NotifyError>) {
        self.running.remove(&id);
        let Some(mut job) = self.jobs.get(&id).cloned() else {
            return;
        };
        let now = now_ms();
        job.attempts += 1;
        job.updated_at_ms = now;
        let (target, items) = job
            .notify
            .as_ref()
            .map_or((String::new(), 0), |n| (n.target.clone(), n.items.len()));
        let event = match result {
            Ok(()) => {
                info!(job_id = %id, target = %target, items, "notification sent");
                job.status = JobStatus::Done;
                job.error = None;
                job.wake_at_ms = None;
                Event::for_job(
                    id,
                    kind::NOTIFY_SENT,
                    EventSource::Notifier,
                    now,
                    json!({"target": target, "items": items, "attempt": job.attempts}),
                )
            }
            Err(err) => {
                job.failures += 1;
                let reason = err.to_string();
                let retry = match &err {
                    NotifyError::Retry { retry_after, .. }
                        if job.failures < self.limits.max_attempts =>
                    {
                        Some(self.limits.retry_delay(job.failures, *retry_after))
                    }
                    _ => None,
                };
                let mut payload = json!({
                    "target": target,
                    "error": reason,
                    "attempt": job.attempts,
                    "will_retry": retry.is_some(),
                });
                match retry {
                    Some(delay) => {
                        let at = now + millis(delay);
                        warn!(job_id = %id, target = %target, error = %reason, retry_in_ms = millis(delay), "notification failed; will retry");
                        job.status = JobStatus::Waiting;
                        job.wake_at_ms = Some(at);
                        job.error = Some(reason);
                        payload["retry_at"] = json!(crate::time::format_rfc3339(at));
                    }
                    None => {
                        let reason = if matches!(err, NotifyError::Retry { .. }) {
                            format!("{reason} (gave up after {} attempts)", job.attempts)
                        } else {
                            reason
                        };
                        warn!(job_id = %id, target = %target, error = %reason, "notification failed");
                        payload["error"] = json!(reason);
                        job.status = JobStatus::Failed;
                        job.wake_at_ms = None;
                        job.error = Some(reason);
                    }
                }
                Event::for_job(id, kind::NOTIFY_FAILED, EventSource::Notifier, now, payload)
            }
        };
        match self
            .store
            .submit(vec![Change::PutJob {
                job: job.clone(),
                events: vec![event],
            }])
            .await
        {
            Ok(_) if job.status.is_terminal() => {
                self.jobs.remove(&id);
            }
            Ok(_) => {
                self.jobs.insert(id, job);
            }
            Err(err) => {
                // Not recorded: try again later (a delivered message may be sent twice).
                error!(job_id = %id, error = %error_chain(&err), "cannot record a notification");
                if let Some(kept) = self.jobs.get_mut(&id) {
                    kept.status = JobStatus::Waiting;
                    kept.wake_at_ms = Some(now + millis(self.limits.retry_base));
                }
            }
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What an outbox entry tells, from its subtitle job and that job's events, newest first
/// as the store lists them (the provider and score of the newest `subtitle.ready`, or the
/// service of a newer `subtitle.translated`).
pub fn item_of(
    entry: &OutboxEntry,
    job: Option<(Job, Vec<Event>)>,
) -> Option<(NotifyEvent, NotifyItem)> {
    let (job, events) = job?;
    let (event, subtitle, error) = match entry {
        OutboxEntry::JobDone { path, .. } => (NotifyEvent::Written, Some(path.clone()), None),
        OutboxEntry::Upgraded { path, .. } => (NotifyEvent::Upgraded, Some(path.clone()), None),
        OutboxEntry::JobFailed { error, .. } => (NotifyEvent::Failed, None, Some(error.clone())),
    };
    let mut item = NotifyItem {
        job_id: job.id,
        video: job.path,
        language: job.language,
        subtitle,
        provider: None,
        machine_translated: false,
        score: None,
        error,
    };
    if event != NotifyEvent::Failed {
        // The store lists a job's events newest first; the last word is the newest.
        for e in events.iter().rev() {
            let producer = e.payload.get("producer").and_then(|p| p.as_str());
            if e.kind == kind::READY {
                item.provider = producer.map(str::to_owned);
                item.machine_translated = false;
                item.score = e
                    .payload
                    .pointer("/detail/score")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|s| u32::try_from(s).ok());
            } else if e.kind == kind::TRANSLATED {
                item.provider = producer.map(str::to_owned);
                item.machine_translated = true;
                item.score = None;
            }
        }
    }
    Some((event, item))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(video: &str) -> NotifyItem {
        NotifyItem {
            job_id: JobId::new(),
            video: PathBuf::from(video),
            language: Language::parse("en").unwrap(),
            subtitle: None,
            provider: Some("opensubtitles".to_owned()),
            machine_translated: false,
            score: Some(87),
            error: None,
        }
    }

    #[test]
    fn a_line_names_title_year_or_episode_language_provider_and_score() {
        let movie = item("/media/movies/Example Movie (2019)/Example.Movie.2019.1080p.mkv");
        assert_eq!(
            movie.line(NotifyEvent::Written),
            "Example Movie (2019): en from opensubtitles, score 87"
        );
        let mut episode = item("/media/tv/Show/Season 1/Show.S01E02.720p.mkv");
        episode.machine_translated = true;
        episode.provider = Some("deepl".to_owned());
        episode.score = None;
        assert_eq!(
            episode.line(NotifyEvent::Written),
            "Show S01E02: en, machine-translated (deepl)"
        );
        let mut failed = item("/media/tv/Show/Season 1/Show.S01E03.mkv");
        failed.error = Some("no subtitle found".to_owned());
        assert_eq!(
            failed.line(NotifyEvent::Failed),
            "Show S01E03: en failed: no subtitle found"
        );
    }

    #[test]
    fn a_digest_of_forty_is_one_short_message() {
        let items: Vec<_> = (1..=40)
            .map(|e| item(&format!("/media/tv/Show/Season 1/Show.S01E{e:02}.mkv")))
            .collect();
        let n = Notification {
            event: NotifyEvent::Written,
            items,
        };
        assert_eq!(n.title(), "40 subtitles written");
        let body = n.body();
        assert_eq!(body.lines().count(), MAX_LINES + 1);
        assert!(body.ends_with("… and 15 more"), "{body}");
        assert_eq!(n.folders(), vec![PathBuf::from("/media/tv/Show/Season 1")]);
    }

    #[test]
    fn the_backoff_doubles_and_is_capped_also_for_a_services_own_wait() {
        let limits = NotifyLimits {
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(60),
            ..NotifyLimits::default()
        };
        assert_eq!(limits.retry_delay(1, None), Duration::from_secs(10));
        assert_eq!(limits.retry_delay(2, None), Duration::from_secs(20));
        assert_eq!(limits.retry_delay(3, None), Duration::from_secs(40));
        assert_eq!(limits.retry_delay(4, None), Duration::from_secs(60));
        assert_eq!(limits.retry_delay(40, None), Duration::from_secs(60));
        assert_eq!(
            limits.retry_delay(1, Some(Duration::from_millis(512))),
            Duration::from_millis(512)
        );
        assert_eq!(
            limits.retry_delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }
}
