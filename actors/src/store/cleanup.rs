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

/// One page of [`Store::unused_translations`].
#[derive(Debug, Clone, Default)]
pub struct TranslationPage {
    /// The keys last used before the cutoff day.
    pub unused: Vec<String>,
    /// The keys with no day of use (written by an earlier build).
    pub undated: Vec<String>,
    /// Where the next page starts (exclusive); `None`: the end of the cache.
    pub next: Option<String>,
    /// Entries looked at.
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

    /// Up to `limit` `translation_source.<job>` state keys (from `after`, exclusive) whose
    /// job has ended or is gone: left by builds that kept them after the job's end. The
    /// second value is the last key looked at, where the next page starts (`None`: done).
    pub fn ended_translation_sources(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let state = txn.open_table(STATE)?;
            let jobs = txn.open_table(JOBS)?;
            let prefix = super::TRANSLATION_SOURCE_PREFIX;
            let mut found = Vec::new();
            let mut last = None;
            let start = if after.is_empty() { prefix } else { after };
            for entry in state.range(start..)? {
                let entry = entry?;
                let key = entry.0.value();
                if !key.starts_with(prefix) {
                    return Ok((found, None));
                }
                if key == after {
                    continue;
                }
                if found.len() >= limit.max(1) {
                    return Ok((found, last));
                }
                last = Some(key.to_owned());
                let Some(id) = super::translation_source_job(key) else {
                    continue;
                };
                let ended = jobs
                    .get(id)?
                    .map(|bytes| decode::<Job>("jobs", bytes.value()))
                    .transpose()
                    // A record that does not decode is left alone, as by the job cleanup.
                    .is_ok_and(|job| job.is_none_or(|j| j.status.is_terminal()));
                if ended {
                    found.push(key.to_owned());
                }
            }
            Ok((found, None))
        })
    }

    /// One page of the translation cache from the key `after` on (exclusive; `""`: the
    /// start), looking at up to `examine` entries.
    pub fn unused_translations(
        &self,
        after: &str,
        unused_before_day: u32,
        examine: usize,
    ) -> Result<TranslationPage, StoreError> {
        self.guarded(|| {
            use std::ops::Bound;
            let txn = self.read()?;
            let translations = txn.open_table(TRANSLATIONS)?;
            let used = txn.open_table(TRANSLATIONS_USED)?;
            let mut page = TranslationPage::default();
            let start = if after.is_empty() {
                Bound::Unbounded
            } else {
                Bound::Excluded(after)
            };
            let mut last = None;
            for entry in translations.range::<&str>((start, Bound::Unbounded))? {
                if page.examined >= examine.max(1) {
                    page.next = last;
                    return Ok(page);
                }
                page.examined += 1;
                let entry = entry?;
                let key = entry.0.value();
                match used.get(key)?.map(|d| d.value()) {
                    Some(day) if day < unused_before_day => page.unused.push(key.to_owned()),
                    Some(_) => {}
                    None => page.undated.push(key.to_owned()),
                }
                last = Some(key.to_owned());
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
    /// Cached translations not used for this long go (ms); `None`: kept forever.
    pub translations_unused_ms: Option<i64>,
}

impl CleanupPolicy {
    /// Jobs per write transaction: each is one short commit, so other writes and the API's
    /// reads go on between them.
    pub const BATCH: usize = 256;
    /// Compact when more than half of the file is free.
    pub const COMPACT_FREE_PERCENT: u8 = 50;
    /// How long an unused cached translation is kept by default (`[translator] cache_days`
    /// 180).
    pub const TRANSLATIONS_KEPT: std::time::Duration = std::time::Duration::from_secs(180 * 86_400);

    /// Keeps completed jobs `completed`, failed ones `failed`.
    pub fn new(completed: std::time::Duration, failed: std::time::Duration) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            completed_ms: ms(completed),
            failed_ms: ms(failed),
            batch: Self::BATCH,
            compact_free_percent: Self::COMPACT_FREE_PERCENT,
            translations_unused_ms: Some(ms(Self::TRANSLATIONS_KEPT)),
        }
    }

    /// Cached translations not used for `unused` go; `None` keeps them forever.
    pub fn with_translations_kept(mut self, unused: Option<std::time::Duration>) -> Self {
        self.translations_unused_ms =
            unused.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self
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
    /// Sources kept for translations whose job had ended (left by earlier builds).
    pub translation_sources_deleted: u64,
    /// Cached translations deleted: not used for `[translator] cache_days`.
    pub translations_deleted: u64,
    /// Cached translations looked at.
    pub translations_examined: u64,
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
        let mut after = String::new();
        loop {
            let (keys, next) = self.ended_translation_sources(&after, batch)?;
            if !keys.is_empty() {
                report.translation_sources_deleted += keys.len() as u64;
                let changes = keys
                    .into_iter()
                    .map(|key| super::Change::PutState {
                        key,
                        value: serde_json::Value::Null,
                    })
                    .collect();
                self.submit_blocking(changes)?;
                report.batches += 1;
            }
            match next {
                Some(next) => after = next,
                None => break,
            }
        }
        if let Some(unused_ms) = policy.translations_unused_ms {
            self.expire_translations(unused_ms, now_ms, batch, &mut report)?;
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

impl Store {
    /// Deletes the cached translations not used for `unused_ms`, and dates the ones an
    /// earlier build wrote without a day (today: they go `unused_ms` from now unless used),
    /// `batch` entries per write transaction.
    fn expire_translations(
        &self,
        unused_ms: i64,
        now_ms: i64,
        batch: usize,
        report: &mut CleanupReport,
    ) -> Result<(), StoreError> {
        let today = super::day_of(now_ms);
        // An entry used on the cutoff's day stays: it goes on the next day's cleanup.
        let unused_before_day = super::day_of(now_ms.saturating_sub(unused_ms));
        let mut after = String::new();
        loop {
            let page = self.unused_translations(&after, unused_before_day, batch)?;
            report.translations_examined += page.examined as u64;
            let mut changes = Vec::new();
            if !page.unused.is_empty() {
                changes.push(super::Change::PurgeTranslations {
                    keys: page.unused,
                    unused_before_day,
                });
            }
            if !page.undated.is_empty() {
                changes.push(super::Change::TouchTranslations {
                    keys: page.undated,
                    day: today,
                });
            }
            if !changes.is_empty() {
                let committed = self.submit_blocking(changes)?;
                report.translations_deleted += committed.purged_translations;
                report.batches += 1;
            }
            match page.next {
                Some(next) => after = next,
                None => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
