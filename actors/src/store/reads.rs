//! The read verbs of the [`Store`]: short MVCC read transactions, synchronous, called from
//! `spawn_blocking`/`web::block` by async code. They read the handle the writer shares and
//! answer [`StoreError::Unavailable`] while it reopens the file after an I/O error. Each runs
//! inside the store guard (`guard.rs`): a redb panic on a damaged page is
//! [`StoreError::Panicked`] and marks the store damaged.

use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::codec::{decode, decode_or_skip};
use super::schema::*;
use super::{DecodeError, Down, MediaRecord, OutboxEntry, ProviderState, Store, StoreError};
use crate::event::Event;
use crate::job::{ALL_STATUSES, Job, JobHead, JobId, JobStatus};

/// A page of jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` to get the next page; `None` at the end.
    pub next_cursor: Option<JobId>,
}

impl Store {
    pub(super) fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let db = match self.inner.db.read() {
            Ok(slot) => slot.clone(),
            // Only a panic in the writer poisons the lock; answer as while it reopens.
            Err(_) => Err(Down(None)),
        };
        match db {
            Ok(db) => Ok(db.begin_read()?),
            Err(down) => Err(down.error()),
        }
    }

    /// One job by id.
    pub fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(JOBS)?;
            match table.get(id.0.as_u128())? {
                Some(bytes) => Ok(Some(decode("jobs", bytes.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Jobs whose id starts or ends with `fragment` (hex digits, dashes ignored, any case),
    /// at most `limit` of them, oldest first: how a person's abbreviation of an id is
    /// resolved. A UUIDv7 starts with its millisecond timestamp, so jobs created together
    /// share a prefix and are told apart by their random tail. A prefix is a range scan; a
    /// suffix walks the keys (no record is decoded).
    pub fn jobs_matching(&self, fragment: &str, limit: usize) -> Result<Vec<JobId>, StoreError> {
        let digits: String = fragment
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if digits.is_empty() || digits.len() > 32 || !digits.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Ok(Vec::new());
        }
        let Ok(value) = u128::from_str_radix(&digits, 16) else {
            return Ok(Vec::new());
        };
        let free_bits = 4 * (32 - digits.len() as u32);
        let low = value.checked_shl(free_bits).unwrap_or(0);
        let high = low | u128::MAX.checked_shr(128 - free_bits).unwrap_or(0);
        let suffix_mask = u128::MAX.checked_shr(free_bits).unwrap_or(0);
        self.guarded(|| {
            let txn = self.read()?;
            let jobs = txn.open_table(JOBS)?;
            let mut found = Vec::new();
            for entry in jobs.range(low..=high)? {
                found.push(entry?.0.value());
                if found.len() >= limit {
                    break;
                }
            }
            if found.len() < limit && free_bits > 0 {
                for entry in jobs.iter()? {
                    let key = entry?.0.value();
                    if key & suffix_mask == value && !found.contains(&key) {
                        found.push(key);
                        if found.len() >= limit {
                            break;
                        }
                    }
                }
            }
            Ok(found
                .into_iter()
                .map(|id| JobId(uuid::Uuid::from_u128(id)))
                .collect())
        })
    }

    /// Jobs newest first, optionally with one status, starting after `cursor`.
    pub fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
        cursor: Option<JobId>,
    ) -> Result<JobPage, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let jobs = txn.open_table(JOBS)?;
            let upper = cursor.map_or(Bound::Unbounded, |c| Bound::Excluded(c.0.as_u128()));
            let mut ids = Vec::with_capacity(limit + 1);
            match status {
                None => {
                    for entry in jobs.range::<u128>((Bound::Unbounded, upper))?.rev() {
                        let (key, _) = entry?;
                        ids.push(key.value());
                        if ids.len() > limit {
                            break;
                        }
                    }
                }
                Some(status) => {
                    let index = txn.open_table(JOBS_BY_STATUS)?;
                    let code = status.code();
                    let upper = match upper {
                        Bound::Excluded(c) => Bound::Excluded((code, c)),
                        _ => Bound::Included((code, u128::MAX)),
                    };
                    for entry in index.range((Bound::Included((code, 0u128)), upper))?.rev() {
                        let (key, _) = entry?;
                        ids.push(key.value().1);
                        if ids.len() > limit {
                            break;
                        }
                    }
                }
            }
            let has_more = ids.len() > limit;
            ids.truncate(limit);
            let mut page = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(bytes) = jobs.get(*id)?
                    && let Some(job) =
                        decode_or_skip("jobs", JobId(uuid::Uuid::from_u128(*id)), bytes.value())
                {
                    page.push(job);
                }
            }
            let next_cursor = if has_more {
                ids.last().map(|id| JobId(uuid::Uuid::from_u128(*id)))
            } else {
                None
            };
            Ok(JobPage {
                jobs: page,
                next_cursor,
            })
        })
    }

    /// Every job that is not in a terminal status, oldest first.
    pub fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let jobs = txn.open_table(JOBS)?;
            let index = txn.open_table(JOBS_BY_STATUS)?;
            let mut out = Vec::new();
            for status in ALL_STATUSES.iter().filter(|s| !s.is_terminal()) {
                let code = status.code();
                for entry in index.range((code, 0u128)..=(code, u128::MAX))? {
                    let (key, _) = entry?;
                    let id = key.value().1;
                    if let Some(bytes) = jobs.get(id)?
                        && let Some(job) = decode_or_skip::<Job>(
                            "jobs",
                            JobId(uuid::Uuid::from_u128(id)),
                            bytes.value(),
                        )
                    {
                        out.push(job);
                    }
                }
            }
            out.sort_by_key(|job| job.id);
            Ok(out)
        })
    }

    /// What the JobManager keeps of every job that is not in a terminal status, oldest
    /// first: the records are decoded for their index fields only, so a start with many
    /// unfinished jobs builds no full record.
    pub fn unfinished_heads(&self) -> Result<Vec<JobHead>, StoreError> {
        let mut out = Vec::new();
        self.for_each_unfinished_head(|head| out.push(head))?;
        out.sort_by_key(|head| head.id);
        Ok(out)
    }

    /// Hands the head of every unfinished job to `take`, by status then id, without
    /// collecting them: the JobManager's start keeps a compact form of each.
    pub fn for_each_unfinished_head(
        &self,
        mut take: impl FnMut(JobHead),
    ) -> Result<(), StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let jobs = txn.open_table(JOBS)?;
            let index = txn.open_table(JOBS_BY_STATUS)?;
            for status in ALL_STATUSES.iter().filter(|s| !s.is_terminal()) {
                let code = status.code();
                for entry in index.range((code, 0u128)..=(code, u128::MAX))? {
                    let (key, _) = entry?;
                    if let Some(bytes) = jobs.get(key.value().1)? {
                        take(decode::<JobHead>("jobs", bytes.value())?);
                    }
                }
            }
            Ok(())
        })
    }

    /// Number of jobs by status.
    pub fn job_counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let index = txn.open_table(JOBS_BY_STATUS)?;
            let mut counts = Vec::with_capacity(ALL_STATUSES.len());
            for status in ALL_STATUSES {
                let code = status.code();
                let n = index.range((code, 0u128)..=(code, u128::MAX))?.count() as u64;
                counts.push((status, n));
            }
            Ok(counts)
        })
    }

    /// The events of one job, newest first.
    pub fn job_events(&self, id: JobId) -> Result<Vec<Event>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let index = txn.open_table(JOB_EVENTS)?;
            let events = txn.open_table(EVENTS)?;
            let key = id.0.as_u128();
            let mut out = Vec::new();
            for entry in index.range((key, 0u64)..=(key, u64::MAX))?.rev() {
                let (k, _) = entry?;
                let seq = k.value().1;
                if let Some(bytes) = events.get(seq)?
                    && let Some(event) = decode_or_skip("events", seq, bytes.value())
                {
                    out.push(event);
                }
            }
            Ok(out)
        })
    }

    /// Up to `limit` events with a sequence number above `after`, oldest first.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let events = txn.open_table(EVENTS)?;
            let mut out = Vec::new();
            for entry in events.range((Bound::Excluded(after), Bound::Unbounded))? {
                if out.len() >= limit {
                    break;
                }
                let (seq, bytes) = entry?;
                if let Some(event) = decode_or_skip("events", seq.value(), bytes.value()) {
                    out.push(event);
                }
            }
            Ok(out)
        })
    }

    /// The highest committed event sequence number (0 when the log is empty).
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let events = txn.open_table(EVENTS)?;
            Ok(events.last()?.map_or(0, |(k, _)| k.value()))
        })
    }

    /// Total number of jobs.
    pub fn job_count(&self) -> Result<u64, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            Ok(txn.open_table(JOBS)?.len()?)
        })
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get(key)?.map(|v| v.value().to_vec()))
        })
    }

    /// A named state record (see [`STATE`]), if one was written.
    pub fn state(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let state = txn.open_table(STATE)?;
            match state.get(key)? {
                Some(bytes) => Ok(Some(decode("state", bytes.value())?)),
                None => Ok(None),
            }
        })
    }

    /// The state record kept under `key`, decoded as `T` (see [`state`](Self::state)).
    pub fn state_as<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let Some(value) = self.state(key)? else {
            return Ok(None);
        };
        serde_json::from_value(value)
            .map(Some)
            .map_err(|err| StoreError::Decode {
                table: "state",
                source: DecodeError::Json(err),
            })
    }

    /// The cached translations of `texts` by `service` from `from` to `to`, in order
    /// (`None` where a text was never translated): one read transaction.
    pub fn cached_translations(
        &self,
        service: &str,
        from: &str,
        to: &str,
        texts: &[String],
    ) -> Result<Vec<Option<String>>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(TRANSLATIONS)?;
            texts
                .iter()
                .map(|text| {
                    let key = super::translation_key(service, from, to, text);
                    Ok(table
                        .get(key.as_str())?
                        .and_then(|v| decode_or_skip("translations", &key, v.value())))
                })
                .collect()
        })
    }

    /// The machine translation written at `path`, if the Translator wrote one there.
    pub fn machine_translated(
        &self,
        path: &std::path::Path,
    ) -> Result<Option<super::MachineTranslated>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(MACHINE_TRANSLATED)?;
            let key = path.display().to_string();
            Ok(table
                .get(key.as_str())?
                .and_then(|v| decode_or_skip("machine_translated", &key, v.value())))
        })
    }

    /// What is known about a video.
    pub fn media(&self, path: &str) -> Result<Option<MediaRecord>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let media = txn.open_table(MEDIA)?;
            match media.get(path)? {
                Some(bytes) => Ok(Some(decode("media", bytes.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Every provider's stored state, by name.
    pub fn provider_states(&self) -> Result<Vec<ProviderState>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(PROVIDER_STATE)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                let Some(mut state) =
                    decode_or_skip::<ProviderState>("provider_state", k.value(), v.value())
                else {
                    continue;
                };
                k.value().clone_into(&mut state.provider);
                out.push(state);
            }
            Ok(out)
        })
    }

    /// Outbox entries not yet acknowledged, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(OUTBOX)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = entry?;
                if let Some(entry) = decode_or_skip("outbox", k.value(), v.value()) {
                    out.push((k.value(), entry));
                }
            }
            Ok(out)
        })
    }
}

impl Store {
    /// What produced the subtitle job `id` wrote, if it wrote one.
    pub fn provenance(&self, id: JobId) -> Result<Option<super::Provenance>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(SUBTITLES)?;
            match table.get(id.0.as_u128())? {
                Some(bytes) => Ok(Some(decode("subtitles", bytes.value())?)),
                None => Ok(None),
            }
        })
    }

    /// Every provenance record (one per job that wrote a subtitle), oldest job first.
    pub fn provenances(&self) -> Result<Vec<super::Provenance>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(SUBTITLES)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                if let Some(record) = decode_or_skip("subtitles", k.value(), v.value()) {
                    out.push(record);
                }
            }
            Ok(out)
        })
    }

    /// The subtitles rejected for `video` (its real path).
    pub fn blacklist_for(
        &self,
        video: &std::path::Path,
    ) -> Result<Vec<super::BlacklistEntry>, StoreError> {
        self.guarded(|| {
            let txn = self.read()?;
            let table = txn.open_table(BLACKLIST)?;
            let prefix = super::BlacklistEntry::prefix(video);
            let mut out = Vec::new();
            for entry in table.range(prefix.as_str()..)? {
                let (k, v) = entry?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                if let Some(record) = decode_or_skip("blacklist", k.value(), v.value()) {
                    out.push(record);
                }
            }
            Ok(out)
        })
    }
}
