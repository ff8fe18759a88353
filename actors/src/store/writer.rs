//! The writer thread: the only code that writes to redb.
//!
//! It takes every request queued while the previous commit ran and applies them in one
//! `Durability::Immediate` transaction (group commit), gives each event its global sequence
//! number, then answers each caller and broadcasts the committed events.
//!
//! An I/O error poisons the redb handle (every later write fails with `PreviousIo`). The
//! writer then refuses batches with the original error, and before the next batch, or every
//! [`REOPEN_INTERVAL`], writes a probe file next to the store; once the disk takes it, it
//! drops the handle (readers briefly get [`StoreError::Unavailable`]), reopens the file and
//! re-reads the sequence counters from `meta`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, error};

use super::codec::{decode, encode, read_u64};
use super::schema::*;
use super::{Change, Committed, DbSlot, Down, StoreError, error_chain, open_database};
use crate::event::Event;
use crate::job::{Job, JobStatus};

/// Most changes one commit takes; the rest wait for the next commit.
pub const MAX_BATCH: usize = 4096;

/// How often a writer without a usable database tries to open the file again.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(5);

/// Counters about the writer, for `/metrics` and the benchmark.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Durable commits made.
    pub commits: AtomicU64,
    /// Changes applied.
    pub changes: AtomicU64,
    /// Largest batch seen.
    pub max_batch: AtomicU64,
    /// Commits by batch size: 1, 2–3, 4–7, … 2048+ (powers of two).
    pub batch_buckets: [AtomicU64; 12],
    /// While the writer refuses batches after an I/O error: that error, on one line.
    refusing: std::sync::Mutex<Option<String>>,
}

impl WriteStats {
    /// The error the writer refuses batches with, while it does (a full disk).
    pub fn refusing_writes(&self) -> Option<String> {
        self.refusing.lock().ok().and_then(|r| r.clone())
    }

    fn set_refusing(&self, cause: Option<String>) {
        if let Ok(mut refusing) = self.refusing.lock() {
            *refusing = cause;
        }
    }

    fn record(&self, batch: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(batch as u64, Ordering::Relaxed);
        self.max_batch.fetch_max(batch as u64, Ordering::Relaxed);
        let bucket = (usize::BITS - batch.max(1).leading_zeros() - 1) as usize;
        self.batch_buckets[bucket.min(self.batch_buckets.len() - 1)]
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Changes queued by one `Store::submit`, and where to answer.
pub(super) struct WriteRequest {
    pub(super) changes: Vec<Change>,
    pub(super) reply: oneshot::Sender<Result<Committed, StoreError>>,
}

/// The next event and outbox sequence numbers kept in `meta`.
fn read_sequences(db: &Database) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let get =
        |key| -> Result<u64, StoreError> { Ok(meta.get(key)?.map_or(1, |v| read_u64(v.value()))) };
    Ok((get(META_NEXT_EVENT_SEQ)?, get(META_NEXT_OUTBOX_SEQ)?))
}

/// Waits for a future on the current thread without a runtime (the oneshot needs no reactor).
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// The single writer: owns the sequence counters and applies batches.
pub(super) struct Writer {
    /// The database, or why it is not open.
    db: Result<Arc<Database>, Down>,
    /// Set when a commit failed with an I/O error: the handle must be replaced. Holds that
    /// error: later failures are that one.
    poisoned: Option<Arc<StoreError>>,
    slot: DbSlot,
    path: PathBuf,
    events: broadcast::Sender<Arc<Event>>,
    stats: Arc<WriteStats>,
    next_event_seq: u64,
    next_outbox_seq: u64,
    /// Whether the running store was found damaged: then every batch is refused.
    damage: Arc<super::guard::Damage>,
}

impl Writer {
    /// A writer over the freshly opened `db`, continuing the sequences `next` (events,
    /// outbox) read from `meta`.
    pub(super) fn new(
        db: Arc<Database>,
        slot: DbSlot,
        path: PathBuf,
        events: broadcast::Sender<Arc<Event>>,
        stats: Arc<WriteStats>,
        next: (u64, u64),
    ) -> Self {
        Self {
            db: Ok(db),
            poisoned: None,
            slot,
            path,
            events,
            stats,
            next_event_seq: next.0,
            next_outbox_seq: next.1,
            damage: super::guard::Damage::new(),
        }
    }

    /// The writer shares `damage` with the readers: a redb panic anywhere stops the writes.
    pub(super) fn with_damage(mut self, damage: Arc<super::guard::Damage>) -> Self {
        self.damage = damage;
        self
    }

    /// Applies batches until every sender is gone.
    pub(super) fn run(mut self, receiver: mpsc::Receiver<WriteRequest>) {
        loop {
            let first = if self.db.is_ok() && self.poisoned.is_none() {
                match receiver.recv() {
                    Ok(first) => first,
                    Err(_) => break,
                }
            } else {
                match receiver.recv_timeout(REOPEN_INTERVAL) {
                    Ok(first) => first,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.recover();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            if self.db.is_err() || self.poisoned.is_some() {
                self.recover();
            }
            let mut batch = vec![first];
            let mut changes = batch[0].changes.len();
            while changes < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(more) => {
                        changes += more.changes.len();
                        batch.push(more);
                    }
                    Err(_) => break,
                }
            }
            // A damaged file takes no more writes: never commit into it.
            if let Some(refusal) = self.damage.refusal() {
                debug!(batch = batch.len(), "write refused: the store is damaged");
                let cause = Arc::new(refusal);
                for request in batch {
                    let _ = request.reply.send(Err(StoreError::Write(cause.clone())));
                }
                continue;
            }
            let (event_seq, outbox_seq) = (self.next_event_seq, self.next_outbox_seq);
            let damage = self.damage.clone();
            let slot = self.slot.clone();
            match damage.guard(&slot, || self.commit(&batch)) {
                Ok(mut results) => {
                    self.stats.record(changes);
                    for (request, committed) in batch.iter().zip(results.iter_mut()) {
                        let wanted = request.changes.iter().find_map(|change| match change {
                            Change::Compact { min_free_percent } => Some(*min_free_percent),
                            _ => None,
                        });
                        if let Some(min_free_percent) = wanted {
                            let compacted =
                                damage.guard(&slot, || Ok(self.compact(min_free_percent)));
                            committed.compaction =
                                Some(compacted.unwrap_or_else(|err| super::Compaction {
                                    skipped: Some(error_chain(&err)),
                                    ..Default::default()
                                }));
                        }
                    }
                    for (request, committed) in batch.into_iter().zip(results) {
                        for event in &committed.events {
                            // No subscriber is fine.
                            let _ = self.events.send(event.clone());
                        }
                        let _ = request.reply.send(Ok(committed));
                    }
                }
                Err(err) => {
                    error!(error = %error_chain(&err), batch = batch.len(), "store commit failed");
                    self.next_event_seq = event_seq;
                    self.next_outbox_seq = outbox_seq;
                    let poisons = err.poisons_handle();
                    let cause = match &self.poisoned {
                        Some(first) => first.clone(),
                        None => Arc::new(err),
                    };
                    if poisons && self.poisoned.is_none() {
                        self.poisoned = Some(cause.clone());
                        self.stats.set_refusing(Some(error_chain(cause.as_ref())));
                    }
                    for request in batch {
                        let _ = request.reply.send(Err(StoreError::Write(cause.clone())));
                    }
                }
            }
        }
        debug!("store writer stopped");
    }

    /// Replaces a poisoned handle once the disk takes writes again.
    fn recover(&mut self) {
        if let Err(err) = self.probe_space() {
            debug!(error = %err, "the store's disk still refuses writes");
            return;
        }
        self.close_database(Down(None));
        self.reopen();
    }

    /// Writes, syncs and removes a small file next to the store.
    fn probe_space(&self) -> std::io::Result<()> {
        use std::io::Write;
        let probe = self.path.with_extension("space-probe");
        let result = std::fs::File::create(&probe).and_then(|mut file| {
            file.write_all(&[0u8; 64 * 1024])?;
            file.sync_all()
        });
        let _ = std::fs::remove_file(&probe);
        result
    }

    /// Drops every handle to the poisoned database, so that it can be opened again.
    fn close_database(&mut self, down: Down) {
        self.db = Err(down.clone());
        if let Ok(mut slot) = self.slot.write() {
            *slot = Err(down);
        }
    }

    /// Opens the file again after an I/O error; on failure, keeps the reason for readers and
    /// tries again later. A reader may still hold the old handle for a moment.
    fn reopen(&mut self) {
        const ATTEMPTS: u32 = 50;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let opened = self.damage.guard(&self.slot, || {
                let db = open_database(&self.path)?;
                let seqs = read_sequences(&db)?;
                Ok((db, seqs))
            });
            match opened {
                Ok((db, (next_event, next_outbox))) => {
                    let db = Arc::new(db);
                    self.next_event_seq = next_event;
                    self.next_outbox_seq = next_outbox;
                    if let Ok(mut slot) = self.slot.write() {
                        *slot = Ok(db.clone());
                    }
                    self.db = Ok(db);
                    self.poisoned = None;
                    self.stats.set_refusing(None);
                    tracing::info!(path = %self.path.display(), "store reopened");
                    return;
                }
                // A reader still holds the old handle: wait for it.
                Err(
                    err @ StoreError::Open {
                        source: redb::DatabaseError::DatabaseAlreadyOpen,
                        ..
                    },
                ) => {
                    last = Some(err);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => {
                    last = Some(err);
                    break;
                }
            }
        }
        let cause = last.map(Arc::new);
        if let Some(err) = &cause {
            error!(error = %error_chain(err.as_ref()), "cannot reopen the store yet");
        }
        self.close_database(Down(cause));
    }

    /// Compacts the file if at least `min_free_percent` of it is free: copies every table,
    /// from one read transaction, into a new file next to the store (what a snapshot does:
    /// the copy holds only live data), then swaps it in. The copy runs on the writer thread,
    /// so no write happens meanwhile (they queue) and the copy is the committed state; reads
    /// go on, from the old file. The swap renames the copy over the store and opens it;
    /// readers that come meanwhile wait on the slot's lock for that moment, and a read or a
    /// snapshot still holding the old handle finishes on the old file (its inode lives until
    /// then). redb's own `Database::compact` would need the only handle for the whole
    /// compaction, stalling every reader (5.7 s for a 2.1 GiB store).
    fn compact(&mut self, min_free_percent: u8) -> super::Compaction {
        let mut report = super::Compaction::default();
        let file_bytes = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
        report.file_bytes_before = file_bytes(&self.path);
        report.file_bytes_after = report.file_bytes_before;
        let Ok(db) = self.db.as_ref().map(Arc::clone) else {
            report.skipped = Some("the store is not open".to_owned());
            return report;
        };
        let used = db.begin_write().map_err(redb::Error::from).and_then(|txn| {
            let stats = txn.stats()?;
            txn.abort()?;
            Ok(stats.allocated_pages() * stats.page_size() as u64)
        });
        match used {
            Ok(used) => report.used_bytes_before = used,
            Err(err) => {
                report.skipped = Some(format!("cannot measure the free space: {err}"));
                return report;
            }
        }
        let free = report
            .file_bytes_before
            .saturating_sub(report.used_bytes_before);
        if report.file_bytes_before == 0
            || free * 100 < u64::from(min_free_percent) * report.file_bytes_before
        {
            return report;
        }
        let started = std::time::Instant::now();
        let name = self
            .path
            .file_name()
            .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
        let temp = self.path.with_file_name(format!(".{name}.compacting"));
        let _ = std::fs::remove_file(&temp);
        let stop = std::sync::atomic::AtomicBool::new(false);
        if let Err(err) = super::snapshot::copy_store(&*db, &temp, &stop) {
            let _ = std::fs::remove_file(&temp);
            report.skipped = Some(format!("cannot copy the store: {}", error_chain(&err)));
            return report;
        }
        report.copy_ms = started.elapsed().as_millis() as u64;
        let swap = std::time::Instant::now();
        let Ok(mut slot) = self.slot.write() else {
            let _ = std::fs::remove_file(&temp);
            report.skipped = Some("the store's lock is poisoned".to_owned());
            return report;
        };
        let renamed = std::fs::rename(&temp, &self.path).and_then(|()| match self.path.parent() {
            Some(dir) => super::snapshot::sync_dir(dir),
            None => Ok(()),
        });
        if let Err(err) = renamed {
            drop(slot);
            let _ = std::fs::remove_file(&temp);
            report.skipped = Some(format!("cannot put the copy in place: {err}"));
            return report;
        }
        // The file is the copy now; the old handle (its inode) goes with the last holder.
        match open_database(&self.path) {
            Ok(new) => {
                let new = Arc::new(new);
                *slot = Ok(new.clone());
                self.db = Ok(new);
                report.compacted = true;
            }
            Err(err) => {
                // The copy is in place and whole; the writer opens it again before the next
                // batch (as after an I/O error).
                error!(error = %error_chain(&err), "cannot open the compacted store yet");
                let down = Down(Some(Arc::new(err)));
                *slot = Err(down.clone());
                self.db = Err(down);
                report.skipped = Some("the compacted store could not be opened yet".to_owned());
            }
        }
        drop(slot);
        report.held_ms = swap.elapsed().as_millis() as u64;
        self.db_dropped_elsewhere(db);
        report.file_bytes_after = file_bytes(&self.path);
        tracing::info!(
            before = report.file_bytes_before,
            after = report.file_bytes_after,
            copy_ms = report.copy_ms,
            held_ms = report.held_ms,
            skipped = report.skipped.as_deref().unwrap_or(""),
            "store compaction"
        );
        report
    }

    /// Closing a large redb handle takes a while (1.2 s for a 2.1 GiB store, on the swap's
    /// path before): the old one is dropped on a thread of its own, so neither reads nor
    /// writes wait for it.
    fn db_dropped_elsewhere(&self, db: Arc<Database>) {
        let spawned = std::thread::Builder::new()
            .name("store-old-handle".to_owned())
            .spawn(move || drop(db));
        if let Err(err) = spawned {
            debug!(error = %err, "no thread for the old store handle; it is dropped here");
        }
    }

    fn commit(&mut self, batch: &[WriteRequest]) -> Result<Vec<Committed>, StoreError> {
        let db = self.db.as_ref().map_err(Down::error)?;
        let mut txn = db.begin_write()?;
        // Each commit also saves redb's allocator state (and commits in two phases), so that
        // opening the file after a crash does not walk the whole store: start-up stays in
        // milliseconds after a `kill -9` or a power cut. Group commit pays for the extra write.
        txn.set_quick_repair(true);
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut jobs = txn.open_table(JOBS)?;
            let mut by_status = txn.open_table(JOBS_BY_STATUS)?;
            let mut events_table = txn.open_table(EVENTS)?;
            let mut job_events = txn.open_table(JOB_EVENTS)?;
            let mut media = txn.open_table(MEDIA)?;
            let mut providers = txn.open_table(PROVIDER_STATE)?;
            let mut outbox = txn.open_table(OUTBOX)?;
            let mut meta = txn.open_table(META)?;
            let mut state = txn.open_table(STATE)?;
            let mut translations = txn.open_table(TRANSLATIONS)?;
            let mut machine = txn.open_table(MACHINE_TRANSLATED)?;
            let mut subtitles = txn.open_table(SUBTITLES)?;
            let mut blacklist = txn.open_table(BLACKLIST)?;
            let mut translations_used = txn.open_table(TRANSLATIONS_USED)?;
            let today = super::day_of(crate::time::now_ms());
            let mut append = |events_table: &mut redb::Table<u64, &[u8]>,
                              job_events: &mut redb::Table<(u128, u64), ()>,
                              list: &[Event],
                              out: &mut Committed|
             -> Result<(), StoreError> {
                for event in list {
                    let mut event = event.clone();
                    event.seq = self.next_event_seq;
                    self.next_event_seq += 1;
                    events_table.insert(event.seq, encode(&event).as_slice())?;
                    if let Some(job) = event.job_id {
                        job_events.insert((job.0.as_u128(), event.seq), ())?;
                    }
                    out.events.push(Arc::new(event));
                }
                Ok(())
            };
            for request in batch {
                let mut committed = Committed::default();
                for change in &request.changes {
                    match change {
                        Change::PutJob { job, events } => {
                            let key = job.id.0.as_u128();
                            let old = jobs
                                .get(key)?
                                .map(|bytes| decode::<Job>("jobs", bytes.value()))
                                .transpose()?;
                            if let Some(old) = old {
                                by_status.remove((old.status.code(), key))?;
                            }
                            jobs.insert(key, encode(job).as_slice())?;
                            by_status.insert((job.status.code(), key), ())?;
                            append(&mut events_table, &mut job_events, events, &mut committed)?;
                            if job.status.is_terminal() {
                                forget_job_state(&mut state, job.id)?;
                            }
                        }
                        Change::MoveJob {
                            id,
                            status,
                            at_ms,
                            events,
                        } => {
                            let key = id.0.as_u128();
                            let old = jobs
                                .get(key)?
                                .map(|bytes| decode::<Job>("jobs", bytes.value()))
                                .transpose()?;
                            let Some(mut job) = old else {
                                error!(job_id = %id, status = %status, "cannot move a job the store does not hold");
                                continue;
                            };
                            by_status.remove((job.status.code(), key))?;
                            job.status = *status;
                            job.updated_at_ms = *at_ms;
                            if *status != JobStatus::Waiting {
                                job.wake_at_ms = None;
                            }
                            jobs.insert(key, encode(&job).as_slice())?;
                            by_status.insert((job.status.code(), key), ())?;
                            append(&mut events_table, &mut job_events, events, &mut committed)?;
                            if status.is_terminal() {
                                forget_job_state(&mut state, *id)?;
                            }
                        }
                        Change::DropJobEvents { id, kinds } => {
                            let key = id.0.as_u128();
                            let mut doomed = Vec::new();
                            for entry in job_events.range((key, 0u64)..=(key, u64::MAX))? {
                                let seq = entry?.0.value().1;
                                // An event that does not decode is kept: compaction only
                                // removes what it recognises.
                                let is_doomed = events_table.get(seq)?.is_some_and(|bytes| {
                                    decode::<Event>("events", bytes.value())
                                        .is_ok_and(|event| kinds.contains(&event.kind.as_str()))
                                });
                                if is_doomed {
                                    doomed.push(seq);
                                }
                            }
                            for seq in doomed {
                                events_table.remove(seq)?;
                                job_events.remove((key, seq))?;
                            }
                        }
                        Change::AppendEvents(list) => {
                            append(&mut events_table, &mut job_events, list, &mut committed)?
                        }
                        Change::DeleteJob(id) => {
                            let key = id.0.as_u128();
                            let old = jobs
                                .remove(key)?
                                .map(|bytes| decode::<Job>("jobs", bytes.value()))
                                .transpose()?;
                            if let Some(old) = old {
                                by_status.remove((old.status.code(), key))?;
                            }
                            job_events.retain_in((key, 0u64)..=(key, u64::MAX), |_, _| false)?;
                            subtitles.remove(key)?;
                            forget_job_state(&mut state, *id)?;
                        }
                        Change::PutMedia(record) => {
                            let key = record.path.display().to_string();
                            media.insert(key.as_str(), encode(record).as_slice())?;
                        }
                        Change::PutProviderState(state) => {
                            providers.insert(state.provider.as_str(), encode(state).as_slice())?;
                        }
                        Change::EnqueueOutbox(entry) => {
                            outbox.insert(self.next_outbox_seq, encode(entry).as_slice())?;
                            self.next_outbox_seq += 1;
                        }
                        Change::AckOutbox(seq) => {
                            outbox.remove(*seq)?;
                        }
                        Change::PutState { key, value } => {
                            // A translation's source is kept for a job that goes on, not
                            // for one that ended meanwhile (cancelled while it ran).
                            let ended = match super::translation_source_job(key) {
                                Some(job) if !value.is_null() => jobs
                                    .get(job)?
                                    .and_then(|b| decode::<Job>("jobs", b.value()).ok())
                                    .is_none_or(|j| j.status.is_terminal()),
                                _ => false,
                            };
                            if ended {
                                debug!(key = key.as_str(), "not kept: its job has ended");
                            } else if value.is_null() {
                                state.remove(key.as_str())?;
                            } else {
                                state.insert(key.as_str(), encode(value).as_slice())?;
                            }
                        }
                        Change::PutTranslations {
                            service,
                            from,
                            to,
                            entries,
                        } => {
                            for (text, answer) in entries {
                                let key = super::translation_key(service, from, to, text);
                                translations.insert(key.as_str(), encode(answer).as_slice())?;
                                translations_used.insert(key.as_str(), today)?;
                            }
                        }
                        Change::TouchTranslations { keys, day } => {
                            for key in keys {
                                let known = translations_used.get(key.as_str())?.map(|d| d.value());
                                if known != Some(*day) && translations.get(key.as_str())?.is_some()
                                {
                                    translations_used.insert(key.as_str(), *day)?;
                                }
                            }
                        }
                        Change::PurgeTranslations {
                            keys,
                            unused_before_day,
                        } => {
                            for key in keys {
                                let used = translations_used.get(key.as_str())?.map(|d| d.value());
                                if used.is_some_and(|used| used < *unused_before_day) {
                                    translations_used.remove(key.as_str())?;
                                    if translations.remove(key.as_str())?.is_some() {
                                        committed.purged_translations += 1;
                                    }
                                }
                            }
                        }
                        Change::PutMachineTranslated(record) => {
                            let key = record.path.display().to_string();
                            machine.insert(key.as_str(), encode(record).as_slice())?;
                        }
                        Change::PutProvenance(record) => {
                            subtitles
                                .insert(record.job_id.0.as_u128(), encode(record).as_slice())?;
                        }
                        Change::DeleteProvenance(id) => {
                            subtitles.remove(id.0.as_u128())?;
                        }
                        Change::PutBlacklist(entry) => {
                            blacklist.insert(entry.key().as_str(), encode(entry).as_slice())?;
                        }
                        Change::DeleteBlacklist(keys) => {
                            for key in keys {
                                blacklist.remove(key.as_str())?;
                            }
                        }
                        Change::PutMeta { key, value } => {
                            meta.insert(key.as_str(), value.as_slice())?;
                        }
                        Change::PurgeJob {
                            id,
                            finished_before_ms,
                        } => {
                            let key = id.0.as_u128();
                            let old = jobs
                                .get(key)?
                                .and_then(|bytes| decode::<Job>("jobs", bytes.value()).ok());
                            let Some(old) = old else {
                                continue;
                            };
                            if !old.status.is_terminal() || old.updated_at_ms >= *finished_before_ms
                            {
                                continue;
                            }
                            jobs.remove(key)?;
                            by_status.remove((old.status.code(), key))?;
                            // What produced its subtitle goes with it (the blacklist stays:
                            // it belongs to the video, not the job).
                            subtitles.remove(key)?;
                            let mut seqs = Vec::new();
                            for entry in job_events.range((key, 0u64)..=(key, u64::MAX))? {
                                seqs.push(entry?.0.value().1);
                            }
                            for seq in &seqs {
                                events_table.remove(*seq)?;
                            }
                            job_events.retain_in((key, 0u64)..=(key, u64::MAX), |_, _| false)?;
                            forget_job_state(&mut state, *id)?;
                            committed.purged_jobs += 1;
                            committed.purged_events += seqs.len() as u64;
                        }
                        // Done after the commit, in `run`.
                        Change::Compact { .. } => {}
                        Change::SetJobPriority { id, priority } => {
                            let key = id.0.as_u128();
                            let old = jobs
                                .get(key)?
                                .map(|bytes| decode::<Job>("jobs", bytes.value()))
                                .transpose()?;
                            if let Some(mut job) = old {
                                job.priority = *priority;
                                jobs.insert(key, encode(&job).as_slice())?;
                            }
                        }
                    }
                }
                results.push(committed);
            }
            meta.insert(META_NEXT_EVENT_SEQ, &self.next_event_seq.to_le_bytes()[..])?;
            meta.insert(
                META_NEXT_OUTBOX_SEQ,
                &self.next_outbox_seq.to_le_bytes()[..],
            )?;
        }
        txn.commit()?;
        Ok(results)
    }
}

/// Removes the `state` records that belong to job `id` (it ended or was deleted).
fn forget_job_state(
    state: &mut redb::Table<&str, &[u8]>,
    id: crate::job::JobId,
) -> Result<(), StoreError> {
    state.remove(super::translation_source_key(id).as_str())?;
    Ok(())
}
