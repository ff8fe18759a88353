//! A user's hand in a job's subtitle: list the candidates every provider offers now
//! ([`ListCandidates`]), write the one the user names ([`ChooseCandidate`]), or reject the
//! one written ([`RejectSubtitle`]: blacklisted for the video, removed, searched again).
//!
//! The providers live on this thread (in the [`WorkerContext`](crate::worker::WorkerContext)), so these run here, on the
//! JobManager, which also stays the only writer of job state: a choice commits `done` in one
//! step, a reject commits the blacklist entry and the re-queue in one step.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::JobManager;
use crate::downloader::search::{Ranked, Searched, fold_provider_states, search_providers};
use crate::event::{Event, kind};
use crate::job::{EventSource, Job, JobId, JobStatus};
use crate::job_manager::{Action, Entry, ManagerCore, ManagerError, Step, WorkKind};
use crate::provenance::{self, Blacklist, chosen_by};
use crate::store::{Change, OutboxEntry, Provenance, ProviderState, error_chain};
use crate::time::{format_rfc3339, now_ms};

/// How long a candidate list answers a choice without a new search.
pub const CANDIDATES_KEPT_FOR: Duration = Duration::from_secs(15 * 60);
/// Jobs whose candidate lists are kept at once (the oldest list goes first).
pub const CANDIDATE_LISTS_KEPT: usize = 64;

/// The event recorded when a user rejects a job's subtitle.
pub const REJECTED: &str = "subtitle.rejected";
/// The event recorded when a user clears a job's blacklist.
pub const BLACKLIST_CLEARED: &str = "subtitle.blacklist_cleared";

/// The candidate lists kept for choices.
#[derive(Default)]
pub(crate) struct Manual {
    lists: HashMap<JobId, (i64, Vec<Ranked>, Blacklist)>,
    /// While an upgrade pass runs: the jobs it may rewrite (choose and reject wait).
    pub(super) upgrading: Option<Vec<JobId>>,
}

impl Manual {
    fn check_not_upgrading(&self, id: JobId) -> Result<(), ManualError> {
        if self.upgrading.as_ref().is_some_and(|ids| ids.contains(&id)) {
            return Err(ManualError::Conflict(format!(
                "the upgrade pass is searching a better subtitle for job {id}; try again once it ends"
            )));
        }
        Ok(())
    }
}

impl Manual {
    fn keep(&mut self, id: JobId, now: i64, ranked: Vec<Ranked>, blacklist: Blacklist) {
        let max_age = i64::try_from(CANDIDATES_KEPT_FOR.as_millis()).unwrap_or(i64::MAX);
        self.lists.retain(|_, (at, _, _)| now - *at < max_age);
        while self.lists.len() >= CANDIDATE_LISTS_KEPT {
            let Some(oldest) = self
                .lists
                .iter()
                .min_by_key(|(_, (at, _, _))| *at)
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.lists.remove(&oldest);
        }
        self.lists.insert(id, (now, ranked, blacklist));
    }

    fn find(
        &self,
        id: JobId,
        provider: &str,
        candidate: &str,
        now: i64,
    ) -> Option<(Ranked, Blacklist)> {
        let max_age = i64::try_from(CANDIDATES_KEPT_FOR.as_millis()).unwrap_or(i64::MAX);
        let (at, ranked, blacklist) = self.lists.get(&id)?;
        if now - *at >= max_age {
            return None;
        }
        ranked
            .iter()
            .find(|r| r.candidate.provider == provider && r.candidate.id == candidate)
            .map(|r| (r.clone(), blacklist.clone()))
    }
}

/// Why a manual command was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// The job's state does not allow it (409).
    #[error("{0}")]
    Conflict(String),
    /// The candidate named is not in the job's last candidate list (404).
    #[error("{0}")]
    UnknownCandidate(String),
    /// The candidate cannot be used (422): blacklisted, or its download is not a usable
    /// subtitle.
    #[error("{0}")]
    Unusable(String),
    /// The provider's download failed (502).
    #[error("{0}")]
    Provider(String),
    /// The manager refused or the store failed.
    #[error(transparent)]
    Manager(#[from] ManagerError),
}

/// Searches every enabled provider now for the job (the record read from the store) and
/// answers the candidates ranked, with the providers skipped and why.
#[derive(Message)]
#[rtype(result = "Result<Value, ManualError>")]
pub struct ListCandidates(pub Job);

/// Downloads, normalises and writes the named candidate of the job's last candidate list.
#[derive(Message)]
#[rtype(result = "Result<Value, ManualError>")]
pub struct ChooseCandidate {
    /// The job as read from the store.
    pub job: Job,
    /// The candidate's provider.
    pub provider: String,
    /// The provider's candidate id.
    pub id: String,
}

/// Blacklists the subtitle the job wrote, removes the file (when it still holds what was
/// written) and searches again.
#[derive(Message)]
#[rtype(result = "Result<Value, ManualError>")]
pub struct RejectSubtitle(pub Job);

/// Clears the blacklist of the job's video and language: the subtitles rejected for it may be
/// taken again, and a rejected machine translation no longer stops a translation.
#[derive(Message)]
#[rtype(result = "Result<Value, ManualError>")]
pub struct ClearBlacklist(pub Job);

/// A blacklist entry as the API shows it.
pub fn blacklist_entry_json(entry: &crate::store::BlacklistEntry) -> Value {
    json!({
        "provider": entry.provider,
        "id": entry.candidate_id,
        "content_hash": entry.content_hash,
        "language": entry.language,
        "machine_translation": entry.machine_translation,
        "job_id": entry.job_id,
        "rejected_at": format_rfc3339(entry.rejected_at_ms),
    })
}

fn candidate_view(ranked: &Ranked, blacklist: &Blacklist, min_score: u32) -> Value {
    let candidate = &ranked.candidate;
    let blacklisted = blacklist.has_candidate(&candidate.provider, &candidate.id);
    json!({
        "provider": candidate.provider,
        "id": candidate.id,
        "release": candidate.release,
        "score": ranked.scored.score,
        "eligible": ranked.scored.rejected.is_none() && ranked.scored.score >= min_score && !blacklisted,
        "rejected": ranked.scored.rejected,
        "breakdown": ranked.scored.breakdown,
        "hearing_impaired": candidate.hearing_impaired,
        "forced": candidate.forced,
        "machine_translated": candidate.meta.machine_translated || candidate.meta.ai_translated,
        "hash_match": candidate.meta.hash_match,
        "blacklisted": blacklisted,
    })
}

impl ManagerCore {
    /// The job's status as the core holds it (`None`: not an unfinished job it holds).
    fn live_status(&self, id: JobId) -> Option<JobStatus> {
        self.jobs.get(&id).map(|entry| entry.status)
    }

    /// Takes a waiting job's wake timer off (a choice is being written); answers it.
    fn hold_wake(&mut self, id: JobId) -> Option<i64> {
        let entry = self.jobs.get_mut(&id)?;
        let at = entry.wake_at_ms.take()?;
        self.wakes.remove(&(at, id));
        Some(at)
    }

    /// Puts back a wake timer [`hold_wake`](Self::hold_wake) took (the choice failed).
    fn restore_wake(&mut self, id: JobId, at: i64) {
        if let Some(entry) = self.jobs.get_mut(&id)
            && entry.status == JobStatus::Waiting
            && entry.wake_at_ms.is_none()
        {
            entry.wake_at_ms = Some(at);
            self.wakes.insert((at, id));
        }
    }

    /// Whether a worker runs (or is about to run) for the job.
    fn is_working_on(&self, id: JobId) -> bool {
        self.running.contains_key(&id) || self.loading.contains_key(&id)
    }

    /// Records provider states a manual search learnt (cooldowns, quotas, sessions).
    pub(super) fn provider_step(&mut self, updates: Vec<ProviderState>) -> Step {
        let mut step = Step::default();
        for state in updates {
            let state = self.providers.update(state);
            step.changes.push(Change::PutProviderState(state));
        }
        step
    }

    /// Checks that a user's choice may replace the job's state: not queued, not running.
    fn check_choosable(&self, job: &Job) -> Result<(), ManualError> {
        if self.is_working_on(job.id) {
            return Err(ManualError::Conflict(format!(
                "job {} is running; wait for it to end (or cancel it) before choosing",
                job.id
            )));
        }
        match self.live_status(job.id) {
            None | Some(JobStatus::Waiting) => Ok(()),
            Some(status) => Err(ManualError::Conflict(format!(
                "job {} is {status}; wait for it to end (or cancel it) before choosing",
                job.id
            ))),
        }
    }

    /// The step that ends a job `done` with the subtitle a user chose: its record, its
    /// provenance and its events in one commit. A waiting job leaves the core.
    fn chosen(
        &mut self,
        mut job: Job,
        provenance: Provenance,
        detail: Value,
        refresh_events: Vec<(&'static str, Value)>,
        now: i64,
    ) -> Result<Step, ManualError> {
        self.check_choosable(&job)?;
        if !self.is_accepting {
            return Err(ManagerError::ShuttingDown.into());
        }
        if self.live_status(job.id).is_some() {
            self.forget(job.id);
        }
        let id = job.id;
        let path = provenance.path.clone();
        job.status = JobStatus::Done;
        job.updated_at_ms = now;
        job.output_path = Some(path.clone());
        job.error = None;
        job.wake_at_ms = None;
        let mut events = vec![
            Event::for_job(
                id,
                kind::READY,
                EventSource::Api,
                now,
                json!({"producer": provenance.provider, "chosen_by": chosen_by::USER, "detail": detail, "status": JobStatus::Done}),
            ),
            Event::for_job(
                id,
                kind::WRITTEN,
                EventSource::Api,
                now,
                json!({"path": path, "chosen_by": chosen_by::USER, "status": JobStatus::Done}),
            ),
        ];
        events.extend(refresh_events.into_iter().map(|(kind, mut payload)| {
            if let Some(map) = payload.as_object_mut() {
                map.insert("status".into(), json!(JobStatus::Done));
            }
            Event::for_job(id, kind, EventSource::Api, now, payload)
        }));
        Ok(Step {
            changes: vec![
                Change::PutJob { job, events },
                Change::PutProvenance(provenance),
                Change::EnqueueOutbox(OutboxEntry::JobDone { job_id: id, path }),
            ],
            actions: Vec::new(),
        })
    }

    /// Checks that the job's subtitle may be rejected now: the job is `done`, and no other
    /// job for its video and language is unfinished (the re-queue would clash with it).
    fn check_rejectable(&self, job: &Job) -> Result<(), ManualError> {
        let id = job.id;
        if job.status != JobStatus::Done || self.live_status(id).is_some() {
            return Err(ManualError::Conflict(format!(
                "job {id} is {}: only a done job's subtitle can be rejected",
                self.live_status(id).unwrap_or(job.status)
            )));
        }
        let key = self.key_hash(&job.path, &job.language);
        if let Some(other) = self.find_key(key) {
            return Err(ManualError::Conflict(format!(
                "job {other} for the same video and language is unfinished; reject once it ends"
            )));
        }
        Ok(())
    }

    /// The step that blacklists a done job's subtitle and queues the job to search again.
    fn rejected(
        &mut self,
        mut job: Job,
        provenance: &Provenance,
        removed: bool,
        now: i64,
    ) -> Result<Step, ManualError> {
        if !self.is_accepting {
            return Err(ManagerError::ShuttingDown.into());
        }
        let id = job.id;
        self.check_rejectable(&job)?;
        let key = self.key_hash(&job.path, &job.language);
        let entry = provenance::blacklist_entry(job.path.clone(), id, provenance, now);
        let payload = json!({
            "provider": provenance.provider,
            "id": provenance.candidate_id,
            "content_hash": provenance.content_hash,
            "machine_translation": entry.machine_translation,
            "path": provenance.path,
            "removed": removed,
            "status": JobStatus::DownloadQueued,
        });
        job.status = JobStatus::DownloadQueued;
        job.updated_at_ms = now;
        job.output_path = None;
        job.attempts = 0;
        job.failures = 0;
        job.nothing_found = 0;
        job.video_missing_since_ms = None;
        job.error = None;
        job.wake_at_ms = None;
        self.insert_entry(
            id,
            Entry {
                status: JobStatus::DownloadQueued,
                priority: job.priority,
                wake_at_ms: None,
                key,
                seen_by: job.origin.bit(),
            },
        );
        let events = vec![Event::for_job(id, REJECTED, EventSource::Api, now, payload)];
        let change = Change::PutJob {
            job: job.clone(),
            events,
        };
        self.push_queue(id, WorkKind::Download);
        self.keep_queued_record(job);
        Ok(Step {
            changes: vec![
                Change::PutBlacklist(entry),
                Change::DeleteProvenance(id),
                change,
            ],
            actions: vec![Action::Dispatch],
        })
    }
}

type Answer = ResponseActFuture<JobManager, Result<Value, ManualError>>;

fn refuse(err: ManualError) -> Answer {
    Box::pin(fut::ready(Err(err)))
}

impl JobManager {
    /// Commits `step` and answers `answer` once it is durable (the step's actions follow).
    fn commit_then(
        &mut self,
        step: Step,
        answer: Value,
    ) -> ResponseActFuture<Self, Result<Value, ManualError>> {
        if step.changes.is_empty() {
            return Box::pin(fut::ready(Ok(answer)));
        }
        let commit = self.submit(step.changes);
        let actions = step.actions;
        Box::pin(commit.into_actor(self).map(move |result, act, ctx| {
            act.settle();
            result.map_err(|err| ManualError::Manager(ManagerError::from(err)))?;
            for action in actions {
                act.perform(action, ctx);
            }
            Ok(answer)
        }))
    }
}

impl Handler<ListCandidates> for JobManager {
    type Result = ResponseActFuture<Self, Result<Value, ManualError>>;

    fn handle(&mut self, msg: ListCandidates, _: &mut Self::Context) -> Self::Result {
        let job = msg.0;
        if self.core.is_working_on(job.id) {
            return Box::pin(fut::ready(Err(ManualError::Conflict(format!(
                "job {} is running; list its candidates once it ends",
                job.id
            )))));
        }
        let workers = self.workers.clone();
        let now = now_ms();
        // Every enabled provider, with why the ones cooling down are skipped.
        let skipped: Vec<Value> = workers
            .provider_health(now)
            .into_iter()
            .filter(|p| p.state != "ok")
            .map(|p| {
                json!({
                    "provider": p.name,
                    "state": p.state,
                    "cooldown": p.cooldown,
                    "until": p.cooling_until,
                    "reason": p.reason,
                })
            })
            .collect();
        Box::pin(
            async move {
                let searched = search_providers(&job, &workers, false).await;
                let mut updates = Vec::new();
                fold_provider_states(&workers, &searched.touched, &mut updates);
                (job, searched, updates, workers)
            }
            .into_actor(self)
            .then(move |(job, searched, updates, workers), act, ctx| {
                let Searched {
                    ranked,
                    touched,
                    cooling: _,
                    blacklist,
                } = searched;
                let step = act.core.provider_step(updates);
                act.persist_and_run(step, ctx);
                let errors: Vec<Value> = touched
                    .iter()
                    .flat_map(|(name, (_, errors, _))| {
                        errors
                            .iter()
                            .map(move |e| json!({"provider": name, "error": e.to_string()}))
                    })
                    .collect();
                let candidates: Vec<Value> = ranked
                    .iter()
                    .map(|r| candidate_view(r, &blacklist, workers.min_score))
                    .collect();
                let answer = json!({
                    "job_id": job.id,
                    "language": job.language,
                    "searched": touched.keys().collect::<Vec<_>>(),
                    "skipped": skipped,
                    "errors": errors,
                    "min_score": workers.min_score,
                    "kept_for_secs": CANDIDATES_KEPT_FOR.as_secs(),
                    "candidates": candidates,
                });
                // A search that found nothing (every provider skipped or failing) leaves
                // the last list in place, so a choice from it still works.
                if !ranked.is_empty() {
                    act.manual.keep(job.id, now_ms(), ranked, blacklist);
                }
                fut::ready(Ok(answer))
            }),
        )
    }
}

impl Handler<ChooseCandidate> for JobManager {
    type Result = ResponseActFuture<Self, Result<Value, ManualError>>;

    fn handle(&mut self, msg: ChooseCandidate, _: &mut Self::Context) -> Self::Result {
        let ChooseCandidate { job, provider, id } = msg;
        if let Err(err) = self
            .manual
            .check_not_upgrading(job.id)
            .and_then(|()| self.core.check_choosable(&job))
        {
            return Box::pin(fut::ready(Err(err)));
        }
        let Some((chosen, blacklist)) = self.manual.find(job.id, &provider, &id, now_ms()) else {
            return Box::pin(fut::ready(Err(ManualError::UnknownCandidate(format!(
                "no candidate {provider}/{id} in the last candidate list of job {} (lists are \
                 kept {} min): GET /api/v1/jobs/{}/candidates first",
                job.id,
                CANDIDATES_KEPT_FOR.as_secs() / 60,
                job.id
            )))));
        };
        if blacklist.has_candidate(&provider, &id) {
            return Box::pin(fut::ready(Err(ManualError::Unusable(format!(
                "candidate {provider}/{id} was rejected for this video"
            )))));
        }
        let workers = self.workers.clone();
        // A waiting job does not wake by itself while its choice is written, and a
        // shutdown waits for the choice (up to its grace).
        let held = self.core.hold_wake(job.id);
        self.in_flight += 1;
        Box::pin(
            async move {
                let mut updates = Vec::new();
                // Never over a user's own file: checked before the download spends quota.
                let previous = previous_of(&workers, job.id).await;
                let foreign = tokio::task::spawn_blocking({
                    let (video, language) = (job.path.clone(), job.language.clone());
                    let (forced, sdh) = (chosen.candidate.forced, chosen.candidate.hearing_impaired);
                    let ours = previous.clone();
                    move || provenance::foreign_sidecar(&video, &language, forced, sdh, ours.as_ref())
                })
                .await
                .ok()
                .flatten();
                if let Some(path) = foreign {
                    let message = format!(
                        "{} exists and was not written by cuewarden for this job; move it away \
                         to choose another subtitle of this kind",
                        path.display()
                    );
                    return (job, Err(ManualError::Conflict(message)), updates);
                }
                let downloaded = chosen.provider.download(&chosen.candidate).await;
                let bytes = match downloaded {
                    Ok(bytes) => {
                        let touched = [(provider.clone(), (chosen.provider.clone(), Vec::new(), true))]
                            .into_iter()
                            .collect();
                        fold_provider_states(&workers, &touched, &mut updates);
                        bytes
                    }
                    Err(err) => {
                        let message = format!("{provider} refused the download: {err}");
                        let touched = [(provider.clone(), (chosen.provider.clone(), vec![err], false))]
                            .into_iter()
                            .collect();
                        fold_provider_states(&workers, &touched, &mut updates);
                        return (job, Err(ManualError::Provider(message)), updates);
                    }
                };
                let written = match crate::downloader::write_candidate(
                    &job,
                    &chosen.candidate,
                    bytes,
                    &workers,
                    &blacklist,
                )
                .await
                {
                    Ok(written) => written,
                    Err(reason) => {
                        return (job, Err(ManualError::Unusable(reason)), updates);
                    }
                };
                // The subtitle it replaces: removed when it sits elsewhere and is still ours.
                let mut removed_old = None;
                if let Some(old) = &previous
                    && old.path != written.path
                {
                    let (path, hash) = (old.path.clone(), old.content_hash.clone());
                    let removed = tokio::task::spawn_blocking(move || remove_if_ours(&path, &hash))
                        .await
                        .unwrap_or(false);
                    removed_old = Some(json!({"path": old.path, "removed": removed}));
                }
                let replaced = written.detail["replaced"].as_bool().unwrap_or(false);
                let refresh =
                    crate::refresh::refresh_after_write(&job, &written.path, replaced, &workers)
                        .await;
                let now = now_ms();
                let detail = json!({
                    "score": chosen.scored.score,
                    "release": chosen.candidate.release,
                    "id": chosen.candidate.id,
                    "hearing_impaired": chosen.candidate.hearing_impaired,
                    "forced": chosen.candidate.forced,
                    "machine_translated": chosen.candidate.meta.machine_translated
                        || chosen.candidate.meta.ai_translated,
                    "breakdown": chosen.scored.breakdown,
                    "chosen_by": chosen_by::USER,
                    "previous": previous.as_ref().map(|p| json!({
                        "provider": p.provider,
                        "id": p.candidate_id,
                        "score": p.score,
                        "content_hash": p.content_hash,
                    })),
                    "previous_file": removed_old,
                    "written": written.detail,
                });
                let mut record = provenance::from_written(
                    &job,
                    WorkKind::Download,
                    &written.path,
                    &chosen.candidate.provider,
                    &detail,
                    now,
                );
                if let Some(old) = previous {
                    record.previous_hashes = old.previous_hashes;
                    record.previous_hashes.push(old.content_hash);
                }
                info!(job_id = %job.id, provider = %record.provider, id = %record.candidate_id, path = %record.path.display(), "subtitle chosen by a user written");
                (job, Ok((record, detail, refresh, now)), updates)
            }
            .into_actor(self)
            .then(move |(job, result, updates), act, ctx| {
                let step = act.core.provider_step(updates);
                act.persist_and_run(step, ctx);
                let result = result.and_then(|done| {
                    if act.is_stopped {
                        Err(ManualError::Manager(ManagerError::ShuttingDown))
                    } else {
                        Ok(done)
                    }
                });
                let answer = match result {
                    Ok((record, detail, refresh, now)) => {
                        let answer = json!({
                            "id": job.id,
                            "language": job.language,
                            "status": JobStatus::Done,
                            "subtitle": provenance_json(&record),
                        });
                        act.manual.lists.remove(&job.id);
                        let id = job.id;
                        match act.core.chosen(job, record, detail, refresh, now) {
                            Ok(step) => act.commit_then(step, answer),
                            Err(err) => {
                                if let Some(at) = held {
                                    act.core.restore_wake(id, at);
                                }
                                refuse(err)
                            }
                        }
                    }
                    Err(err) => {
                        if let Some(at) = held {
                            act.core.restore_wake(job.id, at);
                        }
                        refuse(err)
                    }
                };
                act.settle();
                answer
            }),
        )
    }
}

/// The provenance of the job's current subtitle, read on a blocking thread.
async fn previous_of(workers: &crate::worker::WorkerContext, id: JobId) -> Option<Provenance> {
    let store = workers.store.clone()?;
    match tokio::task::spawn_blocking(move || store.provenance(id)).await {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => {
            warn!(job_id = %id, error = %error_chain(&err), "cannot read the job's subtitle provenance");
            None
        }
        Err(_) => None,
    }
}

/// Removes `path` when it still holds the content written (`hash`); answers whether it did.
pub(super) fn remove_if_ours(path: &std::path::Path, hash: &str) -> bool {
    if hash.is_empty() || provenance::file_hash(path).as_deref() != Some(hash) {
        return false;
    }
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot remove the rejected subtitle");
            false
        }
    }
}

/// A provenance record as the API shows it.
pub fn provenance_json(record: &Provenance) -> Value {
    json!({
        "provider": record.provider,
        "candidate_id": record.candidate_id,
        "release": record.release,
        "score": record.score,
        "breakdown": record.breakdown,
        "language": record.language,
        "forced": record.forced,
        "sdh": record.sdh,
        "content_hash": record.content_hash,
        "machine_translated": record.machine_translated,
        "path": record.path,
        "written_at": format_rfc3339(record.written_at_ms),
        "chosen_by": record.chosen_by,
        "upgrade_checked_at": record.upgrade_checked_at_ms.map(format_rfc3339),
    })
}

impl Handler<RejectSubtitle> for JobManager {
    type Result = ResponseActFuture<Self, Result<Value, ManualError>>;

    fn handle(&mut self, msg: RejectSubtitle, _: &mut Self::Context) -> Self::Result {
        let job = msg.0;
        if let Err(err) = self
            .manual
            .check_not_upgrading(job.id)
            .and_then(|()| self.core.check_rejectable(&job))
        {
            return Box::pin(fut::ready(Err(err)));
        }
        let store = self.store.clone();
        let id = job.id;
        Box::pin(
            async move {
                let read = tokio::task::spawn_blocking(move || store.provenance(id)).await;
                let provenance = match read {
                    Ok(Ok(Some(found))) => found,
                    Ok(Ok(None)) => {
                        return Err(ManualError::Conflict(format!(
                            "job {id} has no subtitle it wrote to reject"
                        )));
                    }
                    Ok(Err(err)) => return Err(ManagerError::from(err).into()),
                    Err(err) => {
                        return Err(ManualError::Conflict(format!(
                            "cannot read job {id}'s subtitle: {err}"
                        )));
                    }
                };
                let (path, hash) = (provenance.path.clone(), provenance.content_hash.clone());
                let removed = tokio::task::spawn_blocking(move || remove_if_ours(&path, &hash))
                    .await
                    .unwrap_or(false);
                Ok((provenance, removed))
            }
            .into_actor(self)
            .then(move |result, act, _| {
                let (provenance, removed) = match result {
                    Ok(found) => found,
                    Err(err) => return refuse(err),
                };
                info!(job_id = %id, provider = %provenance.provider, candidate = %provenance.candidate_id, removed, "subtitle rejected by a user");
                let answer = json!({
                    "id": id,
                    "language": job.language,
                    "status": JobStatus::DownloadQueued,
                    "blacklisted": {
                        "provider": provenance.provider,
                        "id": provenance.candidate_id,
                        "content_hash": provenance.content_hash,
                        "machine_translation": provenance::is_our_translation(&provenance),
                    },
                    "removed": removed,
                    "path": provenance.path,
                });
                act.manual.lists.remove(&id);
                match act.core.rejected(job, &provenance, removed, now_ms()) {
                    Ok(step) => act.commit_then(step, answer),
                    Err(err) => refuse(err),
                }
            }),
        )
    }
}

impl Handler<ClearBlacklist> for JobManager {
    type Result = ResponseActFuture<Self, Result<Value, ManualError>>;

    fn handle(&mut self, msg: ClearBlacklist, _: &mut Self::Context) -> Self::Result {
        let job = msg.0;
        let store = self.store.clone();
        let video = job.path.clone();
        Box::pin(
            async move {
                match tokio::task::spawn_blocking(move || store.blacklist_for(&video)).await {
                    Ok(Ok(entries)) => Ok(entries),
                    Ok(Err(err)) => Err(ManualError::Manager(ManagerError::from(err))),
                    Err(err) => Err(ManualError::Conflict(format!(
                        "cannot read the blacklist: {err}"
                    ))),
                }
            }
            .into_actor(self)
            .then(move |result, act, _| {
                let entries: Vec<_> = match result {
                    Ok(all) => all
                        .into_iter()
                        .filter(|e| e.language == job.language)
                        .collect(),
                    Err(err) => return refuse(err),
                };
                let answer = json!({
                    "id": job.id,
                    "language": job.language,
                    "cleared": entries.len(),
                });
                if entries.is_empty() {
                    return Box::pin(fut::ready(Ok(answer)));
                }
                if !act.core.is_accepting {
                    return refuse(ManagerError::ShuttingDown.into());
                }
                let keys: Vec<String> = entries.iter().map(|e| e.key()).collect();
                // A kept candidate list knew these as blacklisted: it is searched again.
                act.manual.lists.retain(|_, (_, _, blacklist)| {
                    !blacklist.entries().iter().any(|e| keys.contains(&e.key()))
                });
                act.manual.lists.remove(&job.id);
                info!(job_id = %job.id, cleared = keys.len(), "blacklist cleared by a user");
                let event = Event::for_job(
                    job.id,
                    BLACKLIST_CLEARED,
                    EventSource::Api,
                    now_ms(),
                    json!({
                        "cleared": entries.len(),
                        "entries": entries.iter().map(blacklist_entry_json).collect::<Vec<_>>(),
                        "status": act.core.live_status(job.id).unwrap_or(job.status),
                    }),
                );
                let step = Step {
                    changes: vec![
                        Change::DeleteBlacklist(keys),
                        Change::AppendEvents(vec![event]),
                    ],
                    actions: Vec::new(),
                };
                act.commit_then(step, answer)
            }),
        )
    }
}
