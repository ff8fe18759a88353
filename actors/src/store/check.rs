//! Checking a store file without writing a byte to it: at start, before the daemon trusts the
//! file, and for `cuewarden store check`, `backup` and `restore`.
//!
//! redb's integrity check ([`redb::Builder::set_check_integrity_on_open`]) verifies the
//! checksum of every page of the committed trees and reports a file altered outside redb as
//! `Corrupted` where a plain open may panic. It also repairs and commits, so it runs here on
//! a [`ScratchBackend`]: reads come from the file, writes stay in memory and vanish with the
//! check. The file is opened in redb's exclusive mode with its usual locks, so a running
//! daemon is reported as [`StoreError::Locked`], never mistaken for damage.
//!
//! Once the pages verify, every record the start needs is decoded (meta, unfinished jobs,
//! provider state; the jobs' JSON on a second thread beside the walk). The whole check runs
//! under `catch_unwind` (and the store guard's flag, so the binary's panic hook lets it
//! unwind), so a redb panic the check did not foresee is damage too. It still relies on
//! redb's verified open first and never reads a tree before it: a panic is the last net.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::{Condvar, Mutex};

use redb::backends::FileBackend;
use redb::{
    BackendError, Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageBackend, StorageError, TableError,
};

use super::codec::{decode, decode_borrowed, read_u64};
use super::schema::*;
use super::{ProviderState, StoreError};
use crate::job::{ALL_STATUSES, JobHeadRef, JobStatus};

/// redb's page size; the unit the scratch backend keeps writes in.
const BLOCK: u64 = 4096;

/// Page cache of a check: it reads every page once (the jobs in key order too), so caching
/// buys little, and a larger cache only leaves freed pages in the allocator after the start.
const CHECK_CACHE_BYTES: usize = 512 * 1024;

/// What a good store holds, as the check found it.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// The file's size in bytes.
    pub bytes: u64,
    /// The schema version in `meta` (`None` for a file no cuewarden has prepared yet).
    pub schema_version: Option<u32>,
    /// Jobs in the store.
    pub jobs: u64,
    /// Unfinished jobs (every one decoded).
    pub unfinished_jobs: u64,
    /// Events in the log.
    pub events: u64,
    /// Provider states (every one decoded).
    pub provider_states: u64,
}

/// A redb backend over a file that never writes to it: writes, length changes and syncs go
/// to memory, in 4 KiB blocks, and reads see them over the file's bytes.
#[derive(Debug)]
struct ScratchBackend {
    /// The file, for reads and for redb's locks.
    file: FileBackend,
    state: Mutex<Scratch>,
}

#[derive(Debug)]
struct Scratch {
    /// The length redb believes the storage has.
    len: u64,
    /// How much of the file is still visible (shrinks if redb truncates).
    file_len: u64,
    /// Blocks written, by block number.
    blocks: HashMap<u64, Box<[u8]>>,
}

fn poisoned() -> io::Error {
    io::Error::other("scratch backend lock poisoned")
}

impl ScratchBackend {
    fn new(file: File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let file = FileBackend::new(file).map_err(io::Error::other)?;
        Ok(Self {
            file,
            state: Mutex::new(Scratch {
                len,
                file_len: len,
                blocks: HashMap::new(),
            }),
        })
    }

    /// Fills `out` with the bytes at `offset` as the file has them (zeros past its end).
    fn read_file(&self, file_len: u64, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let from_file = file_len.saturating_sub(offset).min(out.len() as u64) as usize;
        if from_file > 0 {
            self.file.read(offset, &mut out[..from_file])?;
        }
        out[from_file..].fill(0);
        Ok(())
    }
}

impl StorageBackend for ScratchBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.state.lock().map_err(|_| poisoned())?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let end = offset + out.len() as u64;
        let (len, file_len, written) = {
            let scratch = self.state.lock().map_err(|_| poisoned())?;
            (scratch.len, scratch.file_len, !scratch.blocks.is_empty())
        };
        if end > len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read of {offset}..{end} past the end of the file ({len})"),
            ));
        }
        // The file is read without the lock, so the start's decode threads read in parallel.
        self.read_file(file_len, offset, out)?;
        if out.is_empty() || !written {
            return Ok(());
        }
        let scratch = self.state.lock().map_err(|_| poisoned())?;
        for number in offset / BLOCK..=(end - 1) / BLOCK {
            if let Some(block) = scratch.blocks.get(&number) {
                let start = number * BLOCK;
                let from = offset.max(start);
                let to = end.min(start + BLOCK);
                out[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&block[(from - start) as usize..(to - start) as usize]);
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut scratch = self.state.lock().map_err(|_| poisoned())?;
        if len < scratch.len {
            scratch.file_len = scratch.file_len.min(len);
            scratch.blocks.retain(|number, _| number * BLOCK < len);
            if let Some(block) = scratch.blocks.get_mut(&(len / BLOCK)) {
                block[(len % BLOCK) as usize..].fill(0);
            }
        }
        scratch.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut scratch = self.state.lock().map_err(|_| poisoned())?;
        let end = offset + data.len() as u64;
        if data.is_empty() {
            return Ok(());
        }
        for number in offset / BLOCK..=(end - 1) / BLOCK {
            let start = number * BLOCK;
            if !scratch.blocks.contains_key(&number) {
                let mut block = vec![0u8; BLOCK as usize].into_boxed_slice();
                self.read_file(scratch.file_len, start, &mut block)?;
                scratch.blocks.insert(number, block);
            }
            if let Some(block) = scratch.blocks.get_mut(&number) {
                let from = offset.max(start);
                let to = end.min(start + BLOCK);
                block[(from - start) as usize..(to - start) as usize]
                    .copy_from_slice(&data[(from - offset) as usize..(to - offset) as usize]);
            }
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// Why an attempt to check failed, before it is sorted into damage or not.
enum Failure {
    /// The file is not a sound store: the reason.
    Damaged(String),
    /// Not the file's fault (locked, unreadable).
    Error(StoreError),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Self::Damaged(super::error_chain(&err))
    }
}

impl From<StorageError> for Failure {
    fn from(err: StorageError) -> Self {
        StoreError::from(err).into()
    }
}

/// An I/O error that says the bytes are bad, rather than that we may not read them.
fn is_damage(err: &io::Error) -> bool {
    !matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::Interrupted
    )
}

fn sort_open_error(path: &Path, err: DatabaseError) -> Failure {
    match err {
        DatabaseError::DatabaseAlreadyOpen => Failure::Error(StoreError::Locked {
            path: path.to_owned(),
        }),
        DatabaseError::Storage(StorageError::Io(io)) if !is_damage(&io) => {
            Failure::Error(StoreError::Open {
                path: path.to_owned(),
                source: DatabaseError::Storage(StorageError::Io(io)),
            })
        }
        other => Failure::Damaged(super::error_chain(&other)),
    }
}

/// Opens `path` through the scratch backend with redb's integrity check: a database whose
/// pages all verified, over a file that is never written.
fn open_verified(path: &Path) -> Result<Database, Failure> {
    let file = File::options()
        .read(true)
        // redb's exclusive locks need a file opened for writing; nothing is written.
        .write(true)
        .open(path)
        .map_err(|source| {
            Failure::Error(StoreError::Open {
                path: path.to_owned(),
                source: DatabaseError::Storage(StorageError::Io(source)),
            })
        })?;
    let backend = ScratchBackend::new(file).map_err(|source| {
        Failure::Error(StoreError::Open {
            path: path.to_owned(),
            source: DatabaseError::Storage(StorageError::Io(source)),
        })
    })?;
    Database::builder()
        .set_cache_size(CHECK_CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .create_with_backend(backend)
        .map_err(|err| sort_open_error(path, err))
}

/// Opens a table that may not exist yet (a file no cuewarden has prepared).
fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &redb::ReadTransaction,
    definition: redb::TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, Failure> {
    match txn.open_table(definition) {
        Ok(table) => Ok(Some(table)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(err) => Err(StoreError::from(err).into()),
    }
}

/// Records of unfinished jobs copied out of the store for decoding (on another thread too):
/// their bytes back to back, and what the index says of each.
struct Batch {
    /// The place of its first record in the walk.
    first: usize,
    bytes: Vec<u8>,
    /// (job, status the index gives, end of its record in `bytes`).
    records: Vec<(u128, JobStatus, usize)>,
}

/// A batch is handed to a decoder once it holds this many bytes.
const BATCH_BYTES: usize = 256 * 1024;

/// Batches waiting for the decoder beyond which the walk decodes one itself.
const QUEUED_BATCHES: usize = 3;

/// Fewer unfinished jobs than this are decoded on the walking thread alone.
const PARALLEL_FROM: usize = 4096;

impl Batch {
    fn new() -> Self {
        Self {
            first: 0,
            // Room for the last record past the mark, so a batch's buffer is allocated once.
            bytes: Vec::with_capacity(BATCH_BYTES + 16 * 1024),
            records: Vec::with_capacity(1024),
        }
    }
}

/// What the start makes of a decoded head; called on the decoding threads.
type Take<'t, T> = &'t (dyn Fn(JobHeadRef<'_>) -> T + Sync);

/// The walk's batches not decoded yet, and decoded ones for it to fill again (a few buffers
/// go round: the start's memory does not grow with the store).
struct Queue {
    full: std::collections::VecDeque<Batch>,
    empty: Vec<Batch>,
    /// The walk is over (or failed): no batch will come.
    closed: bool,
}

/// The decoding of the unfinished jobs' heads, shared by the walk and a helper thread.
struct Decoding<'t, T> {
    queue: Mutex<Queue>,
    filled: Condvar,
    /// Each head at its record's place in the walk.
    slots: Mutex<Vec<Option<T>>>,
    /// The first record (by its place in the walk) that is not a sound head, and why.
    failure: Mutex<Option<(usize, String)>>,
    take: Take<'t, T>,
}

impl<T> Decoding<'_, T> {
    /// Decodes every record of `batch` into its slot: the whole JSON must parse (fields the
    /// head does not keep are skipped unbuilt) and say the status it is indexed under. Gives
    /// the batch back emptied.
    fn decode(&self, mut batch: Batch, heads: &mut Vec<T>) -> Batch {
        heads.clear();
        let mut start = 0;
        let mut failed = None;
        for (n, &(id, status, end)) in batch.records.iter().enumerate() {
            let bytes = &batch.bytes[start..end];
            start = end;
            let reason = match decode_borrowed::<JobHeadRef<'_>>("jobs", bytes) {
                Ok(job) if job.status == status => {
                    heads.push((self.take)(job));
                    continue;
                }
                Ok(job) => format!(
                    "job {} is indexed as {status} but is {}",
                    job.id, job.status
                ),
                Err(err) => format!(
                    "job {}: {}",
                    uuid::Uuid::from_u128(id),
                    super::error_chain(&err)
                ),
            };
            failed = Some((batch.first + n, reason));
            break;
        }
        if let Some((at, reason)) = failed {
            if let Ok(mut failure) = self.failure.lock()
                && failure.as_ref().is_none_or(|(first, _)| at < *first)
            {
                *failure = Some((at, reason));
            }
        } else if let Ok(mut slots) = self.slots.lock() {
            for (slot, head) in slots[batch.first..].iter_mut().zip(heads.drain(..)) {
                *slot = Some(head);
            }
        }
        batch.bytes.clear();
        batch.records.clear();
        batch
    }

    /// The helper thread: decodes the walk's batches until it is over and none is left.
    fn help(&self) {
        let mut heads = Vec::new();
        loop {
            let batch = {
                let Ok(mut queue) = self.queue.lock() else {
                    return;
                };
                loop {
                    if let Some(batch) = queue.full.pop_front() {
                        break batch;
                    }
                    if queue.closed {
                        return;
                    }
                    queue = match self.filled.wait(queue) {
                        Ok(queue) => queue,
                        Err(_) => return,
                    };
                }
            };
            let empty = self.decode(batch, &mut heads);
            if let Ok(mut queue) = self.queue.lock() {
                queue.empty.push(empty);
            }
        }
    }

    /// Hands a full batch to the helper, or decodes it here when the helper is behind (or
    /// there is none); returns an empty batch to fill next, its first place `next`.
    fn hand_over(&self, batch: Batch, next: usize, helper: bool, heads: &mut Vec<T>) -> Batch {
        let mut batch = Some(batch);
        let mut fresh = None;
        if helper
            && let Ok(mut queue) = self.queue.lock()
            && queue.full.len() < QUEUED_BATCHES
            && let Some(full) = batch.take()
        {
            queue.full.push_back(full);
            self.filled.notify_one();
            fresh = queue.empty.pop();
        }
        let mut empty = match batch {
            Some(full) => self.decode(full, heads),
            None => fresh.unwrap_or_else(Batch::new),
        };
        empty.first = next;
        empty
    }

    /// After the walk: stops the helper once the queue is empty, helping it empty the queue.
    fn finish(&self, heads: &mut Vec<T>) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.closed = true;
        }
        self.filled.notify_all();
        loop {
            let batch = match self.queue.lock() {
                Ok(mut queue) => queue.full.pop_front(),
                Err(_) => None,
            };
            let Some(batch) = batch else {
                return;
            };
            self.decode(batch, heads);
        }
    }
}

/// The unfinished jobs with their status, as the status index lists them.
fn unfinished_ids(
    index: &redb::ReadOnlyTable<(u8, u128), ()>,
) -> Result<Vec<(u128, JobStatus)>, Failure> {
    let mut ids = Vec::new();
    for status in ALL_STATUSES.iter().filter(|s| !s.is_terminal()) {
        let code = status.code();
        for entry in index.range((code, 0u128)..=(code, u128::MAX))? {
            ids.push((entry?.0.value().1, *status));
        }
    }
    Ok(ids)
}

/// Copies the records of the jobs in `ids` into batches for `decoding`, by id: one pass over
/// the jobs table in key order when they are a good part of it (each leaf page read once),
/// else one lookup each. A job the index lists but the table lacks is left out.
fn walk_unfinished<T>(
    jobs: &redb::ReadOnlyTable<u128, &[u8]>,
    total: u64,
    mut ids: Vec<(u128, JobStatus)>,
    decoding: &Decoding<'_, T>,
    helper: bool,
) -> Result<(), Failure> {
    let mut heads = Vec::new();
    let mut batch = Batch::new();
    let mut walked = 0;
    let mut push = |batch: Batch, id: u128, status: JobStatus, record: &[u8]| {
        let mut batch = batch;
        batch.bytes.extend_from_slice(record);
        batch.records.push((id, status, batch.bytes.len()));
        walked += 1;
        if batch.bytes.len() >= BATCH_BYTES {
            batch = decoding.hand_over(batch, walked, helper, &mut heads);
        }
        batch
    };
    ids.sort_unstable_by_key(|&(id, _)| id);
    if (ids.len() as u64).saturating_mul(4) >= total {
        let mut wanted = ids.iter().peekable();
        if let Some(&&(first, _)) = wanted.peek() {
            for entry in jobs.range(first..)? {
                let (key, value) = entry?;
                let key = key.value();
                while wanted.next_if(|&&(id, _)| id < key).is_some() {}
                match wanted.next_if(|&&(id, _)| id == key) {
                    Some(&(id, status)) => batch = push(batch, id, status, value.value()),
                    None if wanted.peek().is_none() => break,
                    None => {}
                }
            }
        }
    } else {
        for (id, status) in ids {
            if let Some(value) = jobs.get(id)? {
                batch = push(batch, id, status, value.value());
            }
        }
    }
    if !batch.records.is_empty() {
        decoding.hand_over(batch, 0, helper, &mut Vec::new());
    }
    Ok(())
}

/// Decodes the head of every unfinished job (by id): the walk of the store on this thread,
/// the JSON decoding beside it on a second one (with two cores or more).
fn decode_unfinished<T: Send>(
    jobs: &redb::ReadOnlyTable<u128, &[u8]>,
    total: u64,
    ids: Vec<(u128, JobStatus)>,
    take: Take<'_, T>,
) -> Result<Vec<T>, Failure> {
    let count = ids.len();
    let decoding = Decoding {
        queue: Mutex::new(Queue {
            full: std::collections::VecDeque::new(),
            empty: Vec::new(),
            closed: false,
        }),
        filled: Condvar::new(),
        slots: Mutex::new((0..count).map(|_| None).collect()),
        failure: Mutex::new(None),
        take,
    };
    let helper = count >= PARALLEL_FROM
        && std::thread::available_parallelism().map_or(1, std::num::NonZero::get) > 1;
    let walked = std::thread::scope(|scope| {
        if helper {
            // A panic there reaches this thread when the scope ends, and the check's net.
            scope.spawn(|| super::guard::allow_unwind(|| decoding.help()));
        }
        let walked = walk_unfinished(jobs, total, ids, &decoding, helper);
        decoding.finish(&mut Vec::new());
        walked
    });
    walked?;
    let poisoned = || Failure::Damaged("a thread decoding the jobs panicked".to_owned());
    if let Some((_, reason)) = decoding.failure.into_inner().map_err(|_| poisoned())? {
        return Err(Failure::Damaged(reason));
    }
    // Collected in place: the start allocates nothing more for the heads.
    let slots = decoding.slots.into_inner().map_err(|_| poisoned())?;
    Ok(slots.into_iter().flatten().collect())
}

/// Decodes every record the start reads: meta, the unfinished jobs (each one's head made into
/// a `T` by `take`; returned by id), provider state.
fn decode_start_records<T: Send>(
    db: &Database,
    bytes: u64,
    take: Take<'_, T>,
) -> Result<(CheckReport, Vec<T>), Failure> {
    let txn = db.begin_read().map_err(StoreError::from)?;
    let mut report = CheckReport {
        bytes,
        ..CheckReport::default()
    };
    if let Some(meta) = table(&txn, META)? {
        report.schema_version = meta
            .get(META_SCHEMA_VERSION)?
            .map(|v| read_u64(v.value()) as u32);
        for key in [META_NEXT_EVENT_SEQ, META_NEXT_OUTBOX_SEQ] {
            if let Some(value) = meta.get(key)?
                && value.value().len() != 8
            {
                return Err(Failure::Damaged(format!(
                    "meta {key} is {} bytes, not 8",
                    value.value().len()
                )));
            }
        }
    }
    let mut heads = Vec::new();
    if let (Some(jobs), Some(index)) = (table(&txn, JOBS)?, table(&txn, JOBS_BY_STATUS)?) {
        report.jobs = jobs.len()?;
        let ids = unfinished_ids(&index)?;
        heads = decode_unfinished(&jobs, report.jobs, ids, take)?;
        report.unfinished_jobs = heads.len() as u64;
    }
    if let Some(events) = table(&txn, EVENTS)? {
        report.events = events.len()?;
    }
    if let Some(providers) = table(&txn, PROVIDER_STATE)? {
        for entry in providers.iter()? {
            let (name, value) = entry?;
            decode::<ProviderState>("provider_state", value.value()).map_err(|err| {
                Failure::Damaged(format!(
                    "provider state {:?}: {}",
                    name.value(),
                    super::error_chain(&err)
                ))
            })?;
            report.provider_states += 1;
        }
    }
    Ok((report, heads))
}

/// What a panic carried, as text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Runs `check` over the verified database of `path`, turning a panic into damage.
fn with_verified<T>(
    path: &Path,
    check: impl FnOnce(&Database, u64) -> Result<T, Failure>,
) -> Result<T, StoreError> {
    let damaged = |reason: String| StoreError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let bytes = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        Err(source) => {
            return Err(StoreError::Open {
                path: path.to_owned(),
                source: DatabaseError::Storage(StorageError::Io(source)),
            });
        }
    };
    // redb would initialise an empty file as a new database: for a store that existed, an
    // emptied file is the loss of everything, not a fresh start.
    if bytes == 0 {
        return Err(damaged("the file is empty (0 bytes)".to_owned()));
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let db = open_verified(path)?;
        check(&db, bytes)
    }));
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(Failure::Damaged(reason))) => Err(damaged(reason)),
        Ok(Err(Failure::Error(err))) => Err(err),
        Err(payload) => Err(damaged(format!(
            "redb panicked reading it: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

/// Checks the store file at `path` without writing to it: redb's integrity check of every
/// page, then a decode of every record the daemon's start needs.
///
/// A damaged file is [`StoreError::Damaged`] (an empty file included), one in use by a running
/// daemon [`StoreError::Locked`], a missing one [`StoreError::Missing`].
pub fn check_file(path: &Path) -> Result<CheckReport, StoreError> {
    check_file_taking(path, &|_| ()).map(|(report, _)| report)
}

/// Checks `path` as [`check_file`] does, and returns what `take` made of the head of every
/// unfinished job (by id), decoded by the check.
pub(super) fn check_file_taking<T: Send>(
    path: &Path,
    take: Take<'_, T>,
) -> Result<(CheckReport, Vec<T>), StoreError> {
    with_verified(path, |db, bytes| decode_start_records(db, bytes, take))
}

/// Checks `path` as [`check_file`] does, then runs `then` on the verified database (a
/// read-only use: its writes would stay in memory).
pub(super) fn with_checked_file<T>(
    path: &Path,
    then: impl FnOnce(&Database, &CheckReport) -> Result<T, StoreError>,
) -> Result<(CheckReport, T), StoreError> {
    with_verified(path, |db, bytes| {
        let (report, _) = decode_start_records(db, bytes, &|_| ())?;
        let value = then(db, &report).map_err(Failure::Error)?;
        Ok((report, value))
    })
}
