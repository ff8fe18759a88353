//! The JobManager actor: the shell around [`ManagerCore`].
//!
//! Handlers unpack a message, ask the core for a [`Step`], submit the step's changes to
//! the store and perform its actions once the commit is durable. Workers are asked with
//! `send`, so a worker that vanishes shows up as a `MailboxError` and counts as a
//! retryable failure.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::{
    Accepted, Action, JobSummary, ManagerCore, ManagerError, ManagerSettings, NewRequest, Outcome,
    StartJobs, Step, WorkKind,
};
use crate::job::{Job, JobId, JobStatus};

use crate::store::{Store, error_chain};
use crate::time::now_ms;
use crate::worker::{StartedWorker, StopWork, WorkerContext};

mod manual;
mod upgrade;
pub use manual::{BLACKLIST_CLEARED, ClearBlacklist, blacklist_entry_json};
pub use manual::{
    CANDIDATE_LISTS_KEPT, CANDIDATES_KEPT_FOR, ChooseCandidate, ListCandidates, ManualError,
    REJECTED, RejectSubtitle, provenance_json,
};
pub use upgrade::{RunUpgrades, UPGRADED, UpgradeCounts, is_due};

/// How often waiting jobs are checked for their wake time.
pub const WAKE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Asks for subtitles for one video. Answers once the new jobs are durable.
#[derive(Message)]
#[rtype(result = "Result<Vec<JobSummary>, ManagerError>")]
pub struct RequestSubtitles(pub NewRequest);

/// Cancels a job the manager holds. `Ok(None)`: the manager does not hold it.
#[derive(Message)]
#[rtype(result = "Result<Option<JobSummary>, ManagerError>")]
pub struct CancelJob(pub JobId);

/// Re-queues a waiting, failed or cancelled job; carries the record read from the store.
#[derive(Message)]
#[rtype(result = "Result<JobSummary, ManagerError>")]
pub struct RetryJob(pub Job);

/// Stops accepting work and waits up to `grace` for running workers and in-flight commits
/// to finish; after the answer the manager submits nothing more, so the store can be
/// closed. Answers the jobs whose workers were still running.
#[derive(Message)]
#[rtype(result = "Vec<JobId>")]
pub struct Shutdown {
    /// How long running workers may take to checkpoint.
    pub grace: Duration,
}

/// Asks for queue and worker figures.
#[derive(Message)]
#[rtype(result = "StatusReport")]
pub struct ManagerStatus;

/// Asks for every enabled provider's state (cooldown, quota), for `/health/sources`.
#[derive(Message)]
#[rtype(result = "Vec<crate::worker::ProviderHealth>")]
pub struct ProviderStatus;

/// Queue and worker figures, for `/health/sources` and `/metrics`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StatusReport {
    /// Whether requests are accepted.
    pub is_accepting: bool,
    /// Downloads running.
    pub running_downloads: usize,
    /// Translations running.
    pub running_translations: usize,
    /// Unfinished jobs per status.
    pub unfinished: HashMap<String, usize>,
}

/// The unfinished jobs the start resumes.
enum Loaded {
    /// Decoded by the store's start-up check.
    Checked(StartJobs),
    /// Read from the store by the start.
    Read(Vec<super::Unfinished>),
}

struct RunningWorker {
    handle: SpawnHandle,
    stop: Recipient<StopWork>,
}

/// The single owner of job state.
pub struct JobManager {
    core: ManagerCore,
    store: Store,
    workers: Rc<WorkerContext>,
    running: HashMap<JobId, RunningWorker>,
    drained: Vec<oneshot::Sender<()>>,
    /// Commits submitted whose answer the actor has not handled yet. Shutdown waits for
    /// them too, so nothing is submitted once the store is closed.
    in_flight: usize,
    /// The shutdown is over: the store may be closed; nothing more is submitted (what is
    /// left resumes on the next start).
    is_stopped: bool,
    /// The unfinished jobs the store's check decoded, until `started` takes them over.
    start_jobs: Option<StartJobs>,
    /// The candidate lists kept for a user's choice.
    manual: manual::Manual,
}

impl JobManager {
    /// A manager over `store`, starting workers with `workers`.
    pub fn new(settings: ManagerSettings, store: Store, mut workers: WorkerContext) -> Self {
        let core = ManagerCore::new(settings);
        workers.provider_states = core.provider_registry();
        workers.store = Some(store.clone());
        Self {
            core,
            store,
            workers: Rc::new(workers),
            running: HashMap::new(),
            drained: Vec::new(),
            in_flight: 0,
            is_stopped: false,
            start_jobs: None,
            manual: manual::Manual::default(),
        }
    }

    /// Resumes `start` (the unfinished jobs [`open_store`](super::open_store) decoded) at
    /// start instead of reading them from the store; with `None` it reads them.
    pub fn resuming(mut self, start: Option<StartJobs>) -> Self {
        self.start_jobs = start;
        self
    }

    /// Submits changes, counting the commit as in flight until [`settle`](Self::settle).
    fn submit(
        &mut self,
        changes: Vec<crate::store::Change>,
    ) -> impl Future<Output = Result<crate::store::Committed, crate::store::StoreError>> + 'static
    {
        self.in_flight += 1;
        self.store.submit(changes)
    }

    /// A submitted commit was answered.
    fn settle(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.notify_if_drained();
    }

    /// Commits the step's changes, then performs its actions.
    fn persist_and_run(&mut self, step: Step, ctx: &mut Context<Self>) {
        if step.is_empty() {
            return;
        }
        if self.is_stopped {
            // A worker that outlived the grace period: its job resumes on the next start.
            debug!(
                changes = step.changes.len(),
                "stopped: changes left for the next start"
            );
            return;
        }
        if step.changes.is_empty() {
            for action in step.actions {
                self.perform(action, ctx);
            }
            return;
        }
        let commit = self.submit(step.changes);
        let actions = step.actions;
        ctx.spawn(
            commit
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(_) => {
                        for action in actions {
                            act.perform(action, ctx);
                        }
                        act.settle();
                    }
                    Err(err) => {
                        error!(error = %error_chain(&err), "cannot persist job changes; workers not started");
                        // A job whose start was not persisted must not hold its slot: record
                        // a retryable failure (parks it in `waiting` with a backoff).
                        for action in actions {
                            if let Action::Start(job, kind) = action {
                                let step = act.core.finish(
                                    job.id,
                                    kind,
                                    Outcome::Failed {
                                        error: format!("store write failed: {}", error_chain(&err)),
                                        retryable: true,
                                    },
                                    now_ms(),
                                );
                                act.persist_and_run(step, ctx);
                            }
                        }
                        act.settle();
                    }
                }),
        );
    }

    fn perform(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Dispatch => {
                let step = self.core.dispatch(now_ms());
                self.persist_and_run(step, ctx);
            }
            Action::Stop(id) => {
                if let Some(worker) = self.running.remove(&id) {
                    ctx.cancel_future(worker.handle);
                    worker.stop.do_send(StopWork);
                }
                self.notify_if_drained();
            }
            Action::Start(job, kind) => self.start_worker(*job, kind, ctx),
            Action::Load(id, kind) => self.load_record(id, kind, ctx),
        }
    }

    /// Reads a queued job's record on a blocking thread, then hands it to the core, which
    /// starts the job (its slot is reserved meanwhile). Counted as in flight, so a
    /// shutdown waits for it.
    fn load_record(&mut self, id: JobId, kind: WorkKind, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        self.in_flight += 1;
        ctx.spawn(
            async move { tokio::task::spawn_blocking(move || store.job(id)).await }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    let record = result.unwrap_or_else(|err| {
                        error!(job_id = %id, error = %err, "the record read ended without an answer");
                        Err(crate::store::StoreError::Unavailable { cause: None })
                    });
                    let step = act.core.loaded(id, kind, record, now_ms());
                    act.persist_and_run(step, ctx);
                    act.settle();
                }),
        );
    }

    fn start_worker(&mut self, job: Job, kind: WorkKind, ctx: &mut Context<Self>) {
        let id = job.id;
        debug!(job_id = %id, ?kind, "starting worker");
        let timeout = self.core.settings().worker_timeout;
        let StartedWorker { run, stop } = kind.start(job, self.workers.clone(), timeout);
        let handle = ctx.spawn(run.into_actor(self).map(move |result, act, ctx| {
            let report = result.unwrap_or_else(|err| {
                warn!(job_id = %id, error = %err, "worker ended without an answer");
                if let Some(worker) = act.running.get(&id) {
                    worker.stop.do_send(StopWork);
                }
                Outcome::Failed {
                    error: match err {
                        MailboxError::Timeout => {
                            format!("worker timed out after {:?}", timeout)
                        }
                        MailboxError::Closed => "worker stopped unexpectedly".to_owned(),
                    },
                    retryable: true,
                }
                .into()
            });
            act.running.remove(&id);
            let step = act.core.finish(id, kind, report, now_ms());
            act.persist_and_run(step, ctx);
            act.notify_if_drained();
        }));
        self.running.insert(id, RunningWorker { handle, stop });
    }

    fn notify_if_drained(&mut self) {
        if self.running.is_empty() && self.in_flight == 0 {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

impl Actor for JobManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Load provider states and unfinished jobs before any message is handled, so
        // deduplication sees the jobs and the first workers see the cooldowns.
        let store = self.store.clone();
        let hasher = self.core.key_hasher();
        let start_jobs = self.start_jobs.take();
        // Heads are hashed as they are read: no path outlives the read. The jobs the store's
        // check decoded are not read again.
        let load = move || {
            let jobs = match start_jobs {
                Some(start) => Ok(Loaded::Checked(start)),
                None => {
                    let mut jobs = Vec::new();
                    let read =
                        store.for_each_unfinished_head(|head| jobs.push(hasher.unfinished(head)));
                    jobs.sort_by_key(|job: &super::Unfinished| job.id);
                    read.map(|()| Loaded::Read(jobs))
                }
            };
            (store.provider_states(), jobs)
        };
        ctx.wait(
            async move { tokio::task::spawn_blocking(load).await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    let (providers, jobs) = match result {
                        Ok(loaded) => loaded,
                        Err(err) => {
                            error!(error = %err, "cannot load unfinished jobs");
                            return;
                        }
                    };
                    match providers {
                        Ok(states) => act.core.restore_providers(states),
                        Err(err) => {
                            error!(error = %error_chain(&err), "cannot load provider states");
                        }
                    }
                    match jobs {
                        Ok(loaded) => {
                            let count = match &loaded {
                                Loaded::Checked(start) => start.len(),
                                Loaded::Read(jobs) => jobs.len(),
                            };
                            if count > 0 {
                                info!(count, "resuming unfinished jobs");
                            }
                            let step = match loaded {
                                Loaded::Checked(start) => act
                                    .core
                                    .take_start_jobs(start, now_ms())
                                    .unwrap_or_else(|| {
                                        error!(
                                            "the manager held jobs before its start; the \
                                             unfinished jobs of the store are not resumed"
                                        );
                                        Step::default()
                                    }),
                                Loaded::Read(jobs) => act.core.resume_unfinished(jobs, now_ms()),
                            };
                            act.persist_and_run(step, ctx);
                        }
                        Err(err) => {
                            error!(error = %error_chain(&err), "cannot load unfinished jobs");
                        }
                    }
                }),
        );
        ctx.run_interval(WAKE_CHECK_INTERVAL, |act, ctx| {
            let step = act.core.wake_due(now_ms());
            act.persist_and_run(step, ctx);
        });
    }
}

impl Handler<RequestSubtitles> for JobManager {
    type Result = ResponseActFuture<Self, Result<Vec<JobSummary>, ManagerError>>;

    fn handle(&mut self, msg: RequestSubtitles, _: &mut Self::Context) -> Self::Result {
        let Accepted {
            summaries,
            changes,
            new_ids,
        } = match self.core.request(&msg.0, now_ms()) {
            Ok(accepted) => accepted,
            Err(err) => return Box::pin(fut::ready(Err(err))),
        };
        if changes.is_empty() {
            return Box::pin(fut::ready(Ok(summaries)));
        }
        let commit = self.submit(changes);
        Box::pin(
            commit
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(_) => {
                        // Queue before settling, so a shutdown waits for that commit too.
                        let step = act.core.queue_new(&new_ids, now_ms());
                        act.persist_and_run(step, ctx);
                        act.settle();
                        Ok(summaries)
                    }
                    Err(err) => {
                        act.settle();
                        for id in new_ids {
                            act.core.forget(id);
                        }
                        Err(ManagerError::from(err))
                    }
                }),
        )
    }
}

impl Handler<CancelJob> for JobManager {
    type Result = ResponseActFuture<Self, Result<Option<JobSummary>, ManagerError>>;

    fn handle(&mut self, msg: CancelJob, _: &mut Self::Context) -> Self::Result {
        let id = msg.0;
        // The language is in the record; the core holds it for the jobs it works on only.
        let language = self.core.record(id).map(|job| job.language.clone());
        let Some(step) = self.core.cancel(id, now_ms()) else {
            return Box::pin(fut::ready(Ok(None)));
        };
        let commit = self.submit(step.changes);
        let actions = step.actions;
        let store = self.store.clone();
        Box::pin(
            async move {
                let committed = commit.await;
                let language = match (&committed, language) {
                    (Ok(_), None) => tokio::task::spawn_blocking(move || store.job(id))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten()
                        .map(|job| job.language),
                    (_, language) => language,
                };
                (committed, language)
            }
            .into_actor(self)
            .map(move |(result, language), act, ctx| {
                act.settle();
                for action in actions {
                    act.perform(action, ctx);
                }
                result.map_err(ManagerError::from)?;
                Ok(language.map(|language| JobSummary {
                    id,
                    language,
                    status: JobStatus::Cancelled,
                }))
            }),
        )
    }
}

impl Handler<RetryJob> for JobManager {
    type Result = ResponseActFuture<Self, Result<JobSummary, ManagerError>>;

    fn handle(&mut self, msg: RetryJob, _: &mut Self::Context) -> Self::Result {
        let summary = JobSummary {
            id: msg.0.id,
            language: msg.0.language.clone(),
            status: JobStatus::DownloadQueued,
        };
        let step = match self.core.retry(msg.0, now_ms()) {
            Ok(step) => step,
            Err(err) => return Box::pin(fut::ready(Err(err))),
        };
        let commit = self.submit(step.changes);
        let actions = step.actions;
        Box::pin(commit.into_actor(self).map(move |result, act, ctx| {
            act.settle();
            result.map_err(ManagerError::from)?;
            for action in actions {
                act.perform(action, ctx);
            }
            Ok(summary)
        }))
    }
}

impl Handler<Shutdown> for JobManager {
    type Result = ResponseActFuture<Self, Vec<JobId>>;

    fn handle(&mut self, msg: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.core.stop_accepting();
        let (sender, receiver) = oneshot::channel();
        self.drained.push(sender);
        self.notify_if_drained();
        Box::pin(
            async move {
                let _ = tokio::time::timeout(msg.grace, receiver).await;
            }
            .into_actor(self)
            .map(|(), act, _| {
                act.is_stopped = true;
                act.running.keys().copied().collect()
            }),
        )
    }
}

impl Handler<ManagerStatus> for JobManager {
    type Result = MessageResult<ManagerStatus>;

    fn handle(&mut self, _: ManagerStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(StatusReport {
            is_accepting: self.core.is_accepting(),
            running_downloads: self.core.running(WorkKind::Download),
            running_translations: self.core.running(WorkKind::Translate),
            unfinished: self
                .core
                .status_counts()
                .into_iter()
                .map(|(status, n)| (status.as_str().to_owned(), n))
                .collect(),
        })
    }
}

impl Handler<ProviderStatus> for JobManager {
    type Result = MessageResult<ProviderStatus>;

    fn handle(&mut self, _: ProviderStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.workers.provider_health(crate::time::now_ms()))
    }
}

/// Wakes every `waiting` job whose wake time has come, now (the scheduler's `wanted_retry`;
/// the manager also checks every [`WAKE_CHECK_INTERVAL`]). Answers how many were queued.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct WakeDue;

impl Handler<WakeDue> for JobManager {
    type Result = MessageResult<WakeDue>;

    fn handle(&mut self, _: WakeDue, ctx: &mut Self::Context) -> Self::Result {
        let step = self.core.wake_due(now_ms());
        let woken = step.changes.len();
        self.persist_and_run(step, ctx);
        MessageResult(woken)
    }
}
