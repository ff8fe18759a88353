//! The upgrade pass ([`RunUpgrades`]): `done` subtitles that scored below
//! `upgrade_below_score`, or that are machine translations, written within the upgrade
//! window, are searched again, at most once per subtitle per `min_interval` (a day); one
//! is replaced only by a candidate that beats its score by the margin and whose content was
//! never written for the job nor rejected for the video. Providers cooling down (a quota
//! used up, a rate limit) are skipped, and the pass stops when every provider cools down,
//! so a quota is never spent in a loop. The scheduler runs it (`app::UpgradeTrigger`).

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;
use serde_json::json;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::JobManager;
use super::manual::remove_if_ours;
use crate::clients::ProviderError;
use crate::downloader::search::{fold_provider_states, search_providers};
use crate::event::Event;
use crate::job::{EventSource, Job, JobStatus};
use crate::job_manager::WorkKind;
use crate::provenance::{self, chosen_by};
use crate::store::{Change, OutboxEntry, Provenance, ProviderState, Store, error_chain};
use crate::time::now_ms;
use crate::worker::{UpgradePolicy, WorkerContext};

/// The event an upgrade records: the old and the new subtitle, with their scores.
pub const UPGRADED: &str = "subtitle.upgraded";

/// Runs the upgrade pass once; answers what it did.
#[derive(Message)]
#[rtype(result = "UpgradeCounts")]
pub struct RunUpgrades;

/// What one upgrade pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpgradeCounts {
    /// `false`: a pass was already running; nothing was done.
    pub ran: bool,
    /// Subtitles due for a search (below the threshold or machine-translated, within the
    /// window, not searched within the interval).
    pub due: usize,
    /// Searched again.
    pub searched: usize,
    /// Replaced by a better one.
    pub upgraded: usize,
    /// Kept: nothing beat them by the margin.
    pub kept: usize,
    /// Left for a later pass: every provider cools down.
    pub deferred: usize,
    /// A better candidate was found but could not be written (unusable download, write
    /// error, store error); the subtitle is kept.
    pub failed: usize,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `record` is due for an upgrade search at `now`. A subtitle a user chose
/// (`POST …/choose`) is theirs: never replaced by the pass (a lower score picked on
/// purpose, say because the best one is out of sync).
pub fn is_due(record: &Provenance, policy: &UpgradePolicy, now: i64) -> bool {
    if record.chosen_by == chosen_by::USER {
        return false;
    }
    let low = record.machine_translated || record.score.is_some_and(|s| s < policy.below_score);
    let recent = now.saturating_sub(record.written_at_ms) <= millis(policy.window);
    let rested = record
        .upgrade_checked_at_ms
        .is_none_or(|at| now.saturating_sub(at) >= millis(policy.min_interval));
    low && recent && rested
}

/// The done jobs whose subtitles are due, with their records (blocking).
fn due_jobs(
    store: &Store,
    policy: &UpgradePolicy,
    now: i64,
) -> Result<Vec<(Job, Provenance)>, crate::store::StoreError> {
    let mut out = Vec::new();
    for record in store.provenances()? {
        if !is_due(&record, policy, now) {
            continue;
        }
        if let Some(job) = store.job(record.job_id)?
            && job.status == JobStatus::Done
        {
            out.push((job, record));
        }
    }
    Ok(out)
}

/// How the search for one subtitle ended.
enum Tried {
    /// Replaced: the job's new record, provenance and events.
    Upgraded(Vec<Change>),
    /// Kept (with `upgrade_checked_at_ms` set).
    Kept(Vec<Change>),
    /// Better found, not written; kept (checked).
    Failed(Vec<Change>),
    /// Every provider cools down: not searched.
    Deferred,
}

async fn try_upgrade(
    mut job: Job,
    mut old: Provenance,
    workers: &WorkerContext,
    updates: &mut Vec<ProviderState>,
) -> Tried {
    let now = now_ms();
    let cooling_all = !workers.providers.is_empty()
        && workers.provider_health(now).iter().all(|p| p.state != "ok");
    if workers.providers.is_empty() || cooling_all {
        return Tried::Deferred;
    }
    let searched = search_providers(&job, workers, true).await;
    fold_provider_states(workers, &searched.touched, updates);
    old.upgrade_checked_at_ms = Some(now);
    let kept = |old: &Provenance| vec![Change::PutProvenance(old.clone())];
    let old_score = old.score.unwrap_or(0);
    let blacklist = searched.blacklist.clone().with_contents(
        old.previous_hashes
            .iter()
            .cloned()
            .chain([old.content_hash.clone()]),
    );
    let stopped = |name: &str| {
        searched.touched.get(name).is_some_and(|(_, errors, _)| {
            errors.iter().any(|e| {
                matches!(
                    e,
                    ProviderError::QuotaExhausted { .. }
                        | ProviderError::RateLimited { .. }
                        | ProviderError::Auth(_)
                )
            })
        })
    };
    let better: Vec<_> = searched
        .ranked
        .iter()
        .filter(|r| {
            r.scored.rejected.is_none()
                && r.scored.score >= workers.min_score
                && r.scored.score >= old_score.saturating_add(workers.upgrades.margin)
                && !(r.candidate.provider == old.provider && r.candidate.id == old.candidate_id)
                && !blacklist.has_candidate(&r.candidate.provider, &r.candidate.id)
                && !stopped(&r.candidate.provider)
        })
        .collect();
    let Some(best) = better.first() else {
        return Tried::Kept(kept(&old));
    };
    // Never over a user's own file at the new name.
    let foreign = tokio::task::spawn_blocking({
        let (video, language) = (job.path.clone(), job.language.clone());
        let (forced, sdh) = (best.candidate.forced, best.candidate.hearing_impaired);
        let ours = old.clone();
        move || provenance::foreign_sidecar(&video, &language, forced, sdh, Some(&ours))
    })
    .await
    .ok()
    .flatten();
    if let Some(path) = foreign {
        info!(job_id = %job.id, path = %path.display(), "a file not written by cuewarden is where the upgrade would go; kept");
        return Tried::Kept(kept(&old));
    }
    // One download per subtitle and pass: the best only, so a quota is spent once.
    let bytes = match best.provider.download(&best.candidate).await {
        Ok(bytes) => {
            let touched = [(
                best.candidate.provider.clone(),
                (best.provider.clone(), Vec::new(), true),
            )]
            .into_iter()
            .collect();
            fold_provider_states(workers, &touched, updates);
            bytes
        }
        Err(err) => {
            warn!(job_id = %job.id, provider = %best.candidate.provider, error = %err, "upgrade download failed");
            let touched = [(
                best.candidate.provider.clone(),
                (best.provider.clone(), vec![err], false),
            )]
            .into_iter()
            .collect();
            fold_provider_states(workers, &touched, updates);
            return Tried::Failed(kept(&old));
        }
    };
    let written =
        match crate::downloader::write_candidate(&job, &best.candidate, bytes, workers, &blacklist)
            .await
        {
            Ok(written) => written,
            Err(reason) => {
                warn!(job_id = %job.id, %reason, "upgrade candidate not written");
                return Tried::Failed(kept(&old));
            }
        };
    let mut old_file = None;
    if old.path != written.path {
        let (path, hash) = (old.path.clone(), old.content_hash.clone());
        let removed = tokio::task::spawn_blocking(move || remove_if_ours(&path, &hash))
            .await
            .unwrap_or(false);
        old_file = Some(json!({"path": old.path, "removed": removed}));
    }
    let replaced = written.detail["replaced"].as_bool().unwrap_or(false);
    let refresh = crate::refresh::refresh_after_write(&job, &written.path, replaced, workers).await;
    let now = now_ms();
    let detail = json!({
        "score": best.scored.score,
        "release": best.candidate.release,
        "id": best.candidate.id,
        "hearing_impaired": best.candidate.hearing_impaired,
        "forced": best.candidate.forced,
        "machine_translated": best.candidate.meta.machine_translated
            || best.candidate.meta.ai_translated,
        "breakdown": best.scored.breakdown,
        "chosen_by": chosen_by::UPGRADE,
        "written": written.detail,
    });
    let mut record = provenance::from_written(
        &job,
        WorkKind::Download,
        &written.path,
        &best.candidate.provider,
        &detail,
        now,
    );
    record.upgrade_checked_at_ms = Some(now);
    record.previous_hashes = old.previous_hashes.clone();
    record.previous_hashes.push(old.content_hash.clone());
    info!(job_id = %job.id, old = old_score, new = best.scored.score, provider = %record.provider, "subtitle upgraded");
    let payload = json!({
        "old": {
            "provider": old.provider,
            "id": old.candidate_id,
            "score": old.score,
            "machine_translated": old.machine_translated,
            "content_hash": old.content_hash,
            "path": old.path,
        },
        "new": {
            "provider": record.provider,
            "id": record.candidate_id,
            "score": record.score,
            "content_hash": record.content_hash,
            "path": record.path,
        },
        "old_file": old_file,
        "detail": detail,
        "status": JobStatus::Done,
    });
    let id = job.id;
    job.output_path = Some(record.path.clone());
    job.updated_at_ms = now;
    let mut events = vec![Event::for_job(
        id,
        UPGRADED,
        EventSource::Downloader,
        now,
        payload,
    )];
    events.extend(refresh.into_iter().map(|(kind, mut payload)| {
        if let Some(map) = payload.as_object_mut() {
            map.insert("status".into(), json!(JobStatus::Done));
        }
        Event::for_job(id, kind, EventSource::Downloader, now, payload)
    }));
    // The notifier's hand-off: targets listening for `upgraded` hear of it.
    let outbox = Change::EnqueueOutbox(OutboxEntry::Upgraded {
        job_id: id,
        path: record.path.clone(),
    });
    Tried::Upgraded(vec![
        Change::PutJob { job, events },
        Change::PutProvenance(record),
        outbox,
    ])
}

impl Handler<RunUpgrades> for JobManager {
    type Result = ResponseActFuture<Self, UpgradeCounts>;

    fn handle(&mut self, _: RunUpgrades, ctx: &mut Self::Context) -> Self::Result {
        if self.manual.upgrading.is_some() || !self.core.is_accepting() || self.is_stopped {
            return Box::pin(fut::ready(UpgradeCounts::default()));
        }
        self.manual.upgrading = Some(Vec::new());
        let (reply, answer) = oneshot::channel();
        let store = self.store.clone();
        let policy = self.workers.upgrades;
        self.in_flight += 1;
        ctx.spawn(
            async move {
                let now = now_ms();
                tokio::task::spawn_blocking(move || due_jobs(&store, &policy, now))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| error_chain(&e)))
            }
            .into_actor(self)
            .map(move |due, act, ctx| {
                let mut counts = UpgradeCounts {
                    ran: true,
                    ..UpgradeCounts::default()
                };
                let due = due.unwrap_or_else(|error| {
                    warn!(%error, "cannot list the subtitles due for an upgrade");
                    Vec::new()
                });
                counts.due = due.len();
                // The jobs of the pass refuse a choice or a reject meanwhile.
                act.manual.upgrading = Some(due.iter().map(|(job, _)| job.id).collect());
                act.upgrade_next(due.into(), counts, reply, ctx);
                act.settle();
            }),
        );
        Box::pin(async move { answer.await.unwrap_or_default() }.into_actor(self))
    }
}

impl JobManager {
    /// Searches the next subtitle of the pass, commits what it found, then goes on; ends
    /// the pass (and answers) when none is left or the daemon stops.
    fn upgrade_next(
        &mut self,
        mut due: VecDeque<(Job, Provenance)>,
        mut counts: UpgradeCounts,
        reply: oneshot::Sender<UpgradeCounts>,
        ctx: &mut Context<Self>,
    ) {
        let next = due
            .pop_front()
            .filter(|_| self.core.is_accepting() && !self.is_stopped);
        let Some((job, old)) = next else {
            info!(?counts, "upgrade pass done");
            self.manual.upgrading = None;
            let _ = reply.send(counts);
            return;
        };
        let workers = self.workers.clone();
        // Counted in flight: a shutdown waits for this subtitle (up to its grace).
        self.in_flight += 1;
        ctx.spawn(
            async move {
                let mut updates = Vec::new();
                let tried = try_upgrade(job, old, &workers, &mut updates).await;
                (tried, updates)
            }
            .into_actor(self)
            .then(move |(tried, updates), act, ctx| {
                // Later searches of the pass see the cooldowns at once.
                let step = act.core.provider_step(updates);
                act.persist_and_run(step, ctx);
                let changes = match tried {
                    Tried::Deferred => {
                        counts.deferred += 1;
                        Vec::new()
                    }
                    Tried::Upgraded(changes) => {
                        counts.searched += 1;
                        counts.upgraded += 1;
                        changes
                    }
                    Tried::Kept(changes) => {
                        counts.searched += 1;
                        counts.kept += 1;
                        changes
                    }
                    Tried::Failed(changes) => {
                        counts.searched += 1;
                        counts.failed += 1;
                        changes
                    }
                };
                if changes.is_empty() || act.is_stopped {
                    act.upgrade_next(due, counts, reply, ctx);
                    act.settle();
                    let done: ResponseActFuture<JobManager, ()> = Box::pin(fut::ready(()));
                    return done;
                }
                let commit = act.submit(changes);
                act.settle();
                Box::pin(commit.into_actor(act).map(move |result, act, ctx| {
                    if let Err(err) = result {
                        warn!(error = %error_chain(&err), "cannot record an upgrade search");
                        counts.failed += 1;
                    }
                    act.upgrade_next(due, counts, reply, ctx);
                    act.settle();
                }))
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Language;

    const DAY: i64 = 24 * 3600 * 1000;

    fn record(score: Option<u32>, machine_translated: bool, written_at_ms: i64) -> Provenance {
        Provenance {
            job_id: crate::job::JobId::new(),
            provider: "opensubtitles".to_owned(),
            candidate_id: "1".to_owned(),
            release: None,
            score,
            breakdown: serde_json::Value::Null,
            language: Language::parse("en").unwrap(),
            forced: false,
            sdh: false,
            content_hash: "sha256:00".to_owned(),
            machine_translated,
            path: "/library/Movie.en.srt".into(),
            written_at_ms,
            chosen_by: chosen_by::SEARCH.to_owned(),
            upgrade_checked_at_ms: None,
            previous_hashes: Vec::new(),
        }
    }

    #[test]
    fn a_weak_or_machine_translated_recent_subtitle_is_due_once_a_day() {
        let policy = UpgradePolicy::default();
        let now = 100 * DAY;
        assert!(is_due(&record(Some(79), false, now - DAY), &policy, now));
        assert!(!is_due(&record(Some(80), false, now - DAY), &policy, now));
        assert!(is_due(&record(Some(95), true, now - DAY), &policy, now));
        assert!(is_due(&record(None, true, now - DAY), &policy, now));
        // Outside the window.
        assert!(!is_due(
            &record(Some(10), false, now - 31 * DAY),
            &policy,
            now
        ));
        assert!(is_due(
            &record(Some(10), false, now - 30 * DAY),
            &policy,
            now
        ));
        // A user's choice is never upgraded.
        let mut chosen = record(Some(10), false, now - DAY);
        chosen.chosen_by = chosen_by::USER.to_owned();
        assert!(!is_due(&chosen, &policy, now));
        // Searched less than a day ago.
        let mut checked = record(Some(10), false, now - DAY);
        checked.upgrade_checked_at_ms = Some(now - DAY + 1);
        assert!(!is_due(&checked, &policy, now));
        checked.upgrade_checked_at_ms = Some(now - DAY);
        assert!(is_due(&checked, &policy, now));
        // `upgrade_below_score = 0`: machine translations only.
        let only_translations = UpgradePolicy {
            below_score: 0,
            ..policy
        };
        assert!(!is_due(
            &record(Some(0), false, now),
            &only_translations,
            now
        ));
        assert!(is_due(&record(Some(0), true, now), &only_translations, now));
    }
}
