//! Retention reads: which terminal jobs finished before a cutoff, a page at a time. The
//! deletion itself is [`Change::PurgeJob`](super::Change::PurgeJob), committed by the writer
//! in short batches, so a cleanup of a million jobs never holds the writer (or the readers)
//! for long.

use super::codec::decode;
use super::schema::*;
use super::{Store, StoreError};
use crate::job::{Job, JobId, JobStatus};

/// The statuses a job ends in, which retention removes.
pub const TERMINAL_STATUSES: [JobStatus; 4] = [
    JobStatus::Done,
    JobStatus::Skipped,
    JobStatus::Cancelled,
    JobStatus::Failed,
];

/// One page of [`Store::expired_jobs`].
#[derive(Debug, Clone, Default)]
pub struct ExpiredPage {
    /// Jobs of the status that finished before the cutoff.
    pub jobs: Vec<JobId>,
    /// Where the next page starts; `None` when the status has no more candidates.
    pub next: Option<u128>,
    /// Records looked at for this page.
    pub examined: usize,
}

/// The largest UUIDv7 created at `ms`: every job created later has a larger id.
fn last_id_at(ms: i64) -> u128 {
    let ms = u128::from(u64::try_from(ms.max(0)).unwrap_or(0)) & ((1 << 48) - 1);
    (ms << 80) | ((1u128 << 80) - 1)
}

impl Store {
    /// Jobs in `status` whose record says they finished (`updated_at_ms`) before
    /// `before_ms`, from the id `from` on (inclusive), looking at no more than `examine`
    /// records and returning no more than `limit`. Only jobs created before the cutoff can
    /// qualify (a UUIDv7 starts with its creation time), so the scan stops there.
    pub fn expired_jobs(
        &self,
        status: JobStatus,
        before_ms: i64,
        from: u128,
        limit: usize,
        examine: usize,
    ) -> Result<ExpiredPage, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let by_status = txn.open_table(JOBS_BY_STATUS)?;
            let jobs = txn.open_table(JOBS)?;
            let code = status.code();
            let mut page = ExpiredPage::default();
            let end = last_id_at(before_ms);
            if from > end {
                return Ok(page);
            }
            for entry in by_status.range((code, from)..=(code, end))? {
                let id = entry?.0.value().1;
                if page.jobs.len() >= limit || page.examined >= examine.max(1) {
                    page.next = Some(id);
                    return Ok(page);
                }
                page.examined += 1;
                let Some(bytes) = jobs.get(id)? else {
                    continue;
                };
                // A record that does not decode is left alone (the list reads report it).
                let Ok(job) = decode::<Job>("jobs", bytes.value()) else {
                    continue;
                };
                if job.status == status && job.updated_at_ms < before_ms {
                    page.jobs.push(JobId(uuid::Uuid::from_u128(id)));
                }
            }
            Ok(page)
        })
    }

    /// The store file's size in bytes.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(self.path()).map_or(0, |m| m.len())
    }
}

/// What a cleanup removes and how it goes about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `done`, `skipped` and `cancelled` jobs older than this go (ms).
    pub completed_ms: i64,
    /// `failed` jobs older than this go (ms).
    pub failed_ms: i64,
    /// Jobs deleted per write transaction.
    pub batch: usize,
    /// Compact the file afterwards when at least this share of it is free (0–100; over
    /// 100: never).
    pub compact_free_percent: u8,
}

impl CleanupPolicy {
    /// Jobs per write transaction: each is one short commit, so other writes and the API's
    /// reads go on between them.
    pub const BATCH: usize = 256;
    /// Compact when more than half of the file is free.
    pub const COMPACT_FREE_PERCENT: u8 = 50;

    /// Keeps completed jobs `completed`, failed ones `failed`.
    pub fn new(completed: std::time::Duration, failed: std::time::Duration) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            completed_ms: ms(completed),
            failed_ms: ms(failed),
            batch: Self::BATCH,
            compact_free_percent: Self::COMPACT_FREE_PERCENT,
        }
    }

    /// The age after which a job in `status` goes.
    fn keep_ms(&self, status: JobStatus) -> i64 {
        if status == JobStatus::Failed {
            self.failed_ms
        } else {
            self.completed_ms
        }
    }
}

/// What a cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CleanupReport {
    /// Jobs deleted.
    pub jobs_deleted: u64,
    /// Their events deleted.
    pub events_deleted: u64,
    /// Write transactions it took.
    pub batches: u64,
    /// Job records looked at.
    pub examined: u64,
    /// The compaction's report, when one was asked for.
    pub compaction: Option<super::Compaction>,
}

impl Store {
    /// Deletes the terminal jobs that finished longer ago than `policy` keeps them (by
    /// `now_ms`), with their events, [`CleanupPolicy::batch`] jobs per write transaction,
    /// then compacts the file if most of it is free. Blocking: run it on a blocking thread.
    /// Stops early (with the error) when the store refuses a write; what was deleted stays
    /// deleted and the next cleanup goes on.
    pub fn cleanup(
        &self,
        policy: &CleanupPolicy,
        now_ms: i64,
    ) -> Result<CleanupReport, StoreError> {
        let mut report = CleanupReport::default();
        let batch = policy.batch.max(1);
        for status in TERMINAL_STATUSES {
            let before = now_ms.saturating_sub(policy.keep_ms(status));
            let mut from = 0u128;
            loop {
                let page = self.expired_jobs(status, before, from, batch, batch * 8)?;
                report.examined += page.examined as u64;
                if !page.jobs.is_empty() {
                    let changes = page
                        .jobs
                        .iter()
                        .map(|&id| super::Change::PurgeJob {
                            id,
                            finished_before_ms: before,
                        })
                        .collect();
                    let committed = self.submit_blocking(changes)?;
                    report.jobs_deleted += committed.purged_jobs;
                    report.events_deleted += committed.purged_events;
                    report.batches += 1;
                }
                match page.next {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
        if policy.compact_free_percent <= 100 {
            let committed = self.submit_blocking(vec![super::Change::Compact {
                min_free_percent: policy.compact_free_percent,
            }])?;
            report.compaction = committed.compaction;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
