//! The built-in tasks, each a [`TaskRun`] for [`Scheduler::register`](super::Scheduler::register).

use std::rc::Rc;

use actix::Addr;
use cuewarden_actors::job_manager::JobManager;
use cuewarden_actors::job_manager::actor::WakeDue;
use cuewarden_actors::store::{CleanupPolicy, CleanupReport, Store, error_chain};
use cuewarden_actors::time::now_ms;
use tokio::sync::broadcast::error::RecvError;

use super::{Counts, TaskRun};
use crate::config::Retention;
use crate::sources::library_sync::{SYNC_FINISHED, SyncAnswer, SyncTrigger};
use crate::upgrades::UpgradeTrigger;

/// The task names (the `[schedule]` keys).
pub const LIBRARY_SYNC: &str = "library_sync";
/// Wakes the waiting jobs whose wait is over.
pub const WANTED_RETRY: &str = "wanted_retry";
/// The upgrade pass.
pub const UPGRADE: &str = "upgrade";
/// Retention and compaction.
pub const CLEANUP: &str = "cleanup";

/// `library_sync`: asks the library sync for a sync and waits for its `sync.finished`,
/// whose numbers become the run's counts (an error of Jellyfin's listing fails the run).
pub fn library_sync(trigger: SyncTrigger, store: Store) -> TaskRun {
    Rc::new(move || {
        let trigger = trigger.clone();
        let mut events = store.subscribe();
        Box::pin(async move {
            match trigger.sync_now().await {
                SyncAnswer::Started => {}
                SyncAnswer::AlreadyRunning => {
                    return Err("a library sync was already running".to_owned());
                }
                SyncAnswer::NotRunning => return Err("the library sync is not running".to_owned()),
            }
            loop {
                match events.recv().await {
                    Ok(event) if event.kind == SYNC_FINISHED && event.job_id.is_none() => {
                        let mut counts = Counts::new();
                        let mut error = None;
                        if let Some(fields) = event.payload.as_object() {
                            for (key, value) in fields {
                                if let Some(n) = value.as_u64() {
                                    if !key.ends_with("_at_ms") {
                                        counts.insert(key.clone(), n);
                                    }
                                } else if key == "jellyfin_error" {
                                    error = value.as_str().map(|e| format!("Jellyfin: {e}"));
                                }
                            }
                        }
                        return match error {
                            Some(error) => Err(error),
                            None => Ok(counts),
                        };
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Err("the store closed".to_owned()),
                }
            }
        })
    })
}

/// `wanted_retry`: the JobManager queues every waiting job whose wait is over.
pub fn wanted_retry(manager: Addr<JobManager>) -> TaskRun {
    Rc::new(move || {
        let manager = manager.clone();
        Box::pin(async move {
            let woken = manager
                .send(WakeDue)
                .await
                .map_err(|err| format!("the job manager did not answer: {err}"))?;
            Ok(Counts::from([("woken".to_owned(), woken as u64)]))
        })
    })
}

/// `upgrade`: one upgrade pass of the JobManager (weak or machine-translated subtitles
/// searched again); its counts become the run's.
pub fn upgrade(trigger: UpgradeTrigger) -> TaskRun {
    Rc::new(move || {
        let trigger = trigger.clone();
        Box::pin(async move {
            let counts = trigger.run().await;
            if !counts.ran {
                return Err(
                    "no upgrade pass ran: one was running, or the daemon is stopping".to_owned(),
                );
            }
            Ok(Counts::from([
                ("due".to_owned(), counts.due as u64),
                ("searched".to_owned(), counts.searched as u64),
                ("upgraded".to_owned(), counts.upgraded as u64),
                ("kept".to_owned(), counts.kept as u64),
                ("deferred".to_owned(), counts.deferred as u64),
                ("failed".to_owned(), counts.failed as u64),
            ]))
        })
    })
}

/// `cleanup`: deletes the terminal jobs older than `[retention]`, with their events, and
/// the cached translations not used for `translations_kept` (`None`: kept forever), in
/// short batches, then compacts the store if most of it is free.
pub fn cleanup(
    store: Store,
    retention: Retention,
    translations_kept: Option<std::time::Duration>,
) -> TaskRun {
    let policy = CleanupPolicy::new(retention.completed, retention.failed)
        .with_translations_kept(translations_kept);
    Rc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            let report = tokio::task::spawn_blocking(move || store.cleanup(&policy, now_ms()))
                .await
                .map_err(|err| format!("the cleanup ended without an answer: {err}"))?
                .map_err(|err| error_chain(&err))?;
            Ok(cleanup_counts(&report))
        })
    })
}

/// A cleanup's report as counts.
pub fn cleanup_counts(report: &CleanupReport) -> Counts {
    let mut counts = Counts::from([
        ("jobs_deleted".to_owned(), report.jobs_deleted),
        ("events_deleted".to_owned(), report.events_deleted),
        ("batches".to_owned(), report.batches),
        ("examined".to_owned(), report.examined),
        (
            "translation_sources_deleted".to_owned(),
            report.translation_sources_deleted,
        ),
        (
            "translations_deleted".to_owned(),
            report.translations_deleted,
        ),
        (
            "translations_examined".to_owned(),
            report.translations_examined,
        ),
    ]);
    if let Some(compaction) = &report.compaction {
        counts.insert("file_bytes_before".to_owned(), compaction.file_bytes_before);
        counts.insert("file_bytes_after".to_owned(), compaction.file_bytes_after);
        counts.insert("compacted".to_owned(), u64::from(compaction.compacted));
        if compaction.compacted {
            counts.insert("compaction_copy_ms".to_owned(), compaction.copy_ms);
            counts.insert("compaction_held_ms".to_owned(), compaction.held_ms);
        }
    }
    counts
}
