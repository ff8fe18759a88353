//! The durable store: one redb file holding jobs, the event log, the media index, provider
//! state and the outbox.
//!
//! Writes go through a single writer thread that drains every change queued while the
//! previous commit was running and applies them in one durable transaction (group commit):
//! a burst of requests costs one fsync, not one each. Callers enqueue synchronously (so the
//! order of changes is the order of calls) and await the commit asynchronously, so no actor
//! ever blocks on redb. The writer gives each event its global sequence number and, once the
//! commit is durable, publishes the events on a broadcast channel (the SSE stream's feed).
//!
//! Reads are short MVCC read transactions; they are synchronous and are called from
//! `spawn_blocking`/`web::block` by async code.
//!
//! An I/O error (a full disk, say) poisons a redb handle: every later write fails until
//! the file is opened again, while reads still work. The writer recovers by itself: before
//! the next batch, or every few seconds, it checks that the disk takes a small probe file,
//! then drops the handle and reopens the file (readers get [`StoreError::Unavailable`] for
//! that moment). Nothing committed is lost; a batch that failed is refused, not retried.

mod records;
pub mod schema;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, error};

use crate::event::Event;
use crate::job::{ALL_STATUSES, Job, JobId, JobStatus};
pub use records::ProviderState;
use schema::*;

/// Most changes one commit takes; the rest wait for the next commit.
pub const MAX_BATCH: usize = 4096;

/// How often a writer without a usable database tries to open the file again.
const REOPEN_INTERVAL: Duration = Duration::from_secs(5);

/// How many committed events a slow SSE subscriber may fall behind before it re-reads the log.
pub const EVENT_BROADCAST_CAPACITY: usize = 4096;

/// redb page cache: plenty for the job and event tables of a home library, small on a NAS.
const CACHE_SIZE_BYTES: usize = 32 * 1024 * 1024;

/// The file name of the store inside `data_dir`.
pub const STORE_FILE_NAME: &str = "cuewarden.redb";

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    // The reasons are part of the messages (API answers and job errors show one line), so
    // they are not also `source`s: an error chain would print them twice.
    #[error("cannot open store {path}: {reason}")]
    Open {
        /// The redb file.
        path: PathBuf,
        /// What redb said.
        reason: redb::DatabaseError,
    },
    /// A redb operation failed (I/O error, full disk, corruption).
    #[error("store operation failed: {0}")]
    Redb(redb::Error),
    /// A record could not be decoded.
    #[error("cannot decode a record of table {table}: {reason}")]
    Decode {
        /// The table it came from.
        table: &'static str,
        /// Why.
        reason: String,
    },
    /// The file was written by a newer cuewarden.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    NewerSchema {
        /// Version in the file.
        found: u32,
        /// Version this build writes.
        supported: u32,
    },
    /// The store was closed; nothing more is accepted.
    #[error("the store is closed")]
    Closed,
    /// A commit failed (the writer's reason).
    #[error("{reason}")]
    Write {
        /// What failed.
        reason: String,
        /// Whether the disk was full.
        storage_full: bool,
    },
    /// The store is being reopened after an I/O error.
    #[error("the store is unavailable after an I/O error ({reason}); retrying")]
    Unavailable {
        /// The error that made the writer reopen the file.
        reason: String,
        /// Whether that error was a full disk.
        storage_full: bool,
    },
}

impl StoreError {
    /// Whether the file system is out of space (or quota): the user can fix that.
    pub fn is_storage_full(&self) -> bool {
        let io = match self {
            Self::Write { storage_full, .. } => return *storage_full,
            Self::Unavailable { storage_full, .. } => return *storage_full,
            Self::Redb(redb::Error::Io(err)) => err,
            Self::Open {
                reason: redb::DatabaseError::Storage(redb::StorageError::Io(err)),
                ..
            } => err,
            _ => return false,
        };
        // ENOSPC, EDQUOT
        io.kind() == std::io::ErrorKind::StorageFull || matches!(io.raw_os_error(), Some(28 | 122))
    }

    /// Whether redb's handle is unusable after this error and the file must be reopened.
    fn poisons_handle(&self) -> bool {
        matches!(
            self,
            Self::Redb(redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed)
        )
    }
}

macro_rules! redb_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                Self::Redb(err.into())
            }
        }
    )*};
}
redb_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// One change to apply in a write transaction.
#[derive(Debug, Clone)]
pub enum Change {
    /// Insert or replace a job and append its events.
    PutJob {
        /// The job as it is now.
        job: Job,
        /// Events describing the change, sequenced at commit.
        events: Vec<Event>,
    },
    /// Append events that change no job.
    AppendEvents(Vec<Event>),
    /// Remove a job and its per-job event index (retention); the global log keeps its events.
    DeleteJob(JobId),
    /// Record what is known about a video.
    PutMedia {
        /// The video path.
        path: String,
        /// The record.
        record: serde_json::Value,
    },
    /// Record a provider's cooldown or quota (replaces what was known of it).
    PutProviderState(ProviderState),
    /// Queue work for an external sink.
    EnqueueOutbox(serde_json::Value),
    /// Remove a delivered outbox entry.
    AckOutbox(u64),
    /// Set a metadata value.
    PutMeta {
        /// Key.
        key: String,
        /// Raw bytes.
        value: Vec<u8>,
    },
}

/// What a commit produced: the events with their sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The sequenced events, in commit order.
    pub events: Vec<Arc<Event>>,
}

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
}

impl WriteStats {
    fn record(&self, batch: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(batch as u64, Ordering::Relaxed);
        self.max_batch.fetch_max(batch as u64, Ordering::Relaxed);
        let bucket = (usize::BITS - batch.max(1).leading_zeros() - 1) as usize;
        self.batch_buckets[bucket.min(self.batch_buckets.len() - 1)]
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` to get the next page; `None` at the end.
    pub next_cursor: Option<JobId>,
}

struct WriteRequest {
    changes: Vec<Change>,
    reply: oneshot::Sender<Result<Committed, StoreError>>,
}

/// The open database, shared by readers and the writer; `None` while the writer reopens it.
type DbSlot = Arc<RwLock<Result<Arc<Database>, Down>>>;

/// Why the database is not open.
#[derive(Debug, Clone)]
struct Down {
    reason: String,
    storage_full: bool,
}

impl Down {
    fn error(&self) -> StoreError {
        StoreError::Unavailable {
            reason: self.reason.clone(),
            storage_full: self.storage_full,
        }
    }
}

fn open_database(path: &Path) -> Result<Database, StoreError> {
    Database::builder()
        .set_cache_size(CACHE_SIZE_BYTES)
        .create(path)
        .map_err(|reason| StoreError::Open {
            path: path.to_owned(),
            reason,
        })
}

struct Inner {
    db: DbSlot,
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    events: broadcast::Sender<Arc<Event>>,
    stats: Arc<WriteStats>,
}

impl Inner {
    fn stop_writer(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            error!("store writer thread panicked");
        }
    }
}

impl Drop for Inner {
    /// The writer thread holds the database too: wait for it, so that once the last handle
    /// is gone the file is unlocked and can be opened again (a restart in the same process).
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![RECORD_VERSION];
    // Serializing our own plain structs to JSON cannot fail (no maps with non-string keys).
    if let Err(err) = serde_json::to_writer(&mut bytes, value) {
        error!(error = %err, "cannot encode a record");
    }
    bytes
}

fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => {
            serde_json::from_slice(json).map_err(|err| StoreError::Decode {
                table,
                reason: err.to_string(),
            })
        }
        Some((version, _)) => Err(StoreError::Decode {
            table,
            reason: format!("unknown record version {version}"),
        }),
        None => Err(StoreError::Decode {
            table,
            reason: "empty record".to_owned(),
        }),
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buf)
}

impl Store {
    /// Opens (or creates) the store file `data_dir/cuewarden.redb`, creates every table,
    /// checks the schema version and starts the writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(STORE_FILE_NAME);
        let db = open_database(&path)?;
        let (next_event_seq, next_outbox_seq) = Self::prepare(&db)?;
        let db = Arc::new(db);
        let slot: DbSlot = Arc::new(RwLock::new(Ok(db.clone())));
        let (events, _) = broadcast::channel(EVENT_BROADCAST_CAPACITY);
        let stats = Arc::new(WriteStats::default());
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            db: Ok(db),
            poisoned: None,
            slot: slot.clone(),
            path: path.clone(),
            events: events.clone(),
            stats: stats.clone(),
            next_event_seq,
            next_outbox_seq,
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|err| StoreError::Redb(redb::Error::Io(err)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db: slot,
                path,
                sender: Mutex::new(Some(sender)),
                writer: Mutex::new(Some(handle)),
                events,
                stats,
            }),
        })
    }

    /// Creates the tables and runs migrations; returns the next event and outbox sequences.
    fn prepare(db: &Database) -> Result<(u64, u64), StoreError> {
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
        let seqs;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta
                .get(META_SCHEMA_VERSION)?
                .map(|v| read_u64(v.value()) as u32);
            match found {
                Some(found) if found > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // Version 1 is the first; later versions migrate here.
                _ => {
                    meta.insert(META_SCHEMA_VERSION, &SCHEMA_VERSION.to_le_bytes()[..])?;
                }
            }
            let next_event = meta
                .get(META_NEXT_EVENT_SEQ)?
                .map_or(1, |v| read_u64(v.value()));
            let next_outbox = meta
                .get(META_NEXT_OUTBOX_SEQ)?
                .map_or(1, |v| read_u64(v.value()));
            seqs = (next_event, next_outbox);
            txn.open_table(JOBS)?;
            txn.open_table(JOBS_BY_STATUS)?;
            txn.open_table(EVENTS)?;
            txn.open_table(JOB_EVENTS)?;
            txn.open_table(MEDIA)?;
            txn.open_table(PROVIDER_STATE)?;
            txn.open_table(OUTBOX)?;
        }
        txn.commit()?;
        Ok(seqs)
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Writer counters.
    pub fn stats(&self) -> &WriteStats {
        &self.inner.stats
    }

    /// Committed events as they become durable.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.events.subscribe()
    }

    /// Queues `changes` for the next commit and returns a future that resolves once they are
    /// durable. The changes are queued when this is called, not when the future is polled,
    /// so two calls commit in call order.
    pub fn submit(
        &self,
        changes: Vec<Change>,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send + 'static + use<> {
        let (reply, receiver) = oneshot::channel();
        let queued = match self.inner.sender.lock() {
            Ok(guard) => guard
                .as_ref()
                .is_some_and(|sender| sender.send(WriteRequest { changes, reply }).is_ok()),
            Err(_) => false,
        };
        async move {
            if !queued {
                return Err(StoreError::Closed);
            }
            match receiver.await {
                Ok(Ok(committed)) => Ok(committed),
                Ok(Err(err)) => Err(err),
                Err(_) => Err(StoreError::Closed),
            }
        }
    }

    /// Like [`submit`](Self::submit), waiting on the current thread. For tests and tools
    /// that run outside an async runtime.
    pub fn submit_blocking(&self, changes: Vec<Change>) -> Result<Committed, StoreError> {
        let future = self.submit(changes);
        futures_lite_block_on(future)
    }

    /// Stops the writer after it has committed everything queued, and waits for it.
    /// Later writes fail with [`StoreError::Closed`].
    pub fn close(&self) {
        self.inner.stop_writer();
    }

    /// The open database (tests reach past the writer with it).
    #[cfg(test)]
    fn database(&self) -> Arc<Database> {
        match &*self.inner.db.read().expect("store lock") {
            Ok(db) => db.clone(),
            Err(down) => panic!("store unavailable: {}", down.reason),
        }
    }

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let db = match self.inner.db.read() {
            Ok(slot) => slot.clone(),
            Err(_) => Err(Down {
                reason: "store lock poisoned".to_owned(),
                storage_full: false,
            }),
        };
        match db {
            Ok(db) => Ok(db.begin_read()?),
            Err(down) => Err(down.error()),
        }
    }

    /// One job by id.
    pub fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(JOBS)?;
        match table.get(id.0.as_u128())? {
            Some(bytes) => Ok(Some(decode("jobs", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Jobs newest first, optionally with one status, starting after `cursor`.
    pub fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: usize,
        cursor: Option<JobId>,
    ) -> Result<JobPage, StoreError> {
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
            if let Some(bytes) = jobs.get(*id)? {
                page.push(decode("jobs", bytes.value())?);
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
    }

    /// Every job that is not in a terminal status, oldest first.
    pub fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        let txn = self.read()?;
        let jobs = txn.open_table(JOBS)?;
        let index = txn.open_table(JOBS_BY_STATUS)?;
        let mut out = Vec::new();
        for status in ALL_STATUSES.iter().filter(|s| !s.is_terminal()) {
            let code = status.code();
            for entry in index.range((code, 0u128)..=(code, u128::MAX))? {
                let (key, _) = entry?;
                if let Some(bytes) = jobs.get(key.value().1)? {
                    out.push(decode::<Job>("jobs", bytes.value())?);
                }
            }
        }
        out.sort_by_key(|job| job.id);
        Ok(out)
    }

    /// Number of jobs by status.
    pub fn job_counts(&self) -> Result<Vec<(JobStatus, u64)>, StoreError> {
        let txn = self.read()?;
        let index = txn.open_table(JOBS_BY_STATUS)?;
        let mut counts = Vec::with_capacity(ALL_STATUSES.len());
        for status in ALL_STATUSES {
            let code = status.code();
            let n = index.range((code, 0u128)..=(code, u128::MAX))?.count() as u64;
            counts.push((status, n));
        }
        Ok(counts)
    }

    /// The events of one job, newest first.
    pub fn job_events(&self, id: JobId) -> Result<Vec<Event>, StoreError> {
        let txn = self.read()?;
        let index = txn.open_table(JOB_EVENTS)?;
        let events = txn.open_table(EVENTS)?;
        let key = id.0.as_u128();
        let mut out = Vec::new();
        for entry in index.range((key, 0u64)..=(key, u64::MAX))?.rev() {
            let (k, _) = entry?;
            if let Some(bytes) = events.get(k.value().1)? {
                out.push(decode("events", bytes.value())?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` events with a sequence number above `after`, oldest first.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let txn = self.read()?;
        let events = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        for entry in events.range((Bound::Excluded(after), Bound::Unbounded))? {
            if out.len() >= limit {
                break;
            }
            let (_, bytes) = entry?;
            out.push(decode("events", bytes.value())?);
        }
        Ok(out)
    }

    /// The highest committed event sequence number (0 when the log is empty).
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let events = txn.open_table(EVENTS)?;
        Ok(events.last()?.map_or(0, |(k, _)| k.value()))
    }

    /// Total number of jobs.
    pub fn job_count(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        Ok(txn.open_table(JOBS)?.len()?)
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(key)?.map(|v| v.value().to_vec()))
    }

    /// What is known about a video.
    pub fn media(&self, path: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let txn = self.read()?;
        let media = txn.open_table(MEDIA)?;
        match media.get(path)? {
            Some(bytes) => Ok(Some(decode("media", bytes.value())?)),
            None => Ok(None),
        }
    }

    /// Every provider's stored state, by name.
    pub fn provider_states(&self) -> Result<Vec<ProviderState>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(PROVIDER_STATE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let mut state: ProviderState = decode("provider_state", v.value())?;
            k.value().clone_into(&mut state.provider);
            out.push(state);
        }
        Ok(out)
    }

    /// Outbox entries not yet acknowledged, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, serde_json::Value)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = entry?;
            out.push((k.value(), decode("outbox", v.value())?));
        }
        Ok(out)
    }
}

/// Waits for a future on the current thread without a runtime (the oneshot needs no reactor).
/// The next event and outbox sequence numbers kept in `meta`.
fn read_sequences(db: &Database) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let get =
        |key| -> Result<u64, StoreError> { Ok(meta.get(key)?.map_or(1, |v| read_u64(v.value()))) };
    Ok((get(META_NEXT_EVENT_SEQ)?, get(META_NEXT_OUTBOX_SEQ)?))
}

fn futures_lite_block_on<F: Future>(future: F) -> F::Output {
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
struct Writer {
    /// The database, or why it is not open.
    db: Result<Arc<Database>, Down>,
    /// Set when a commit failed with an I/O error: the handle must be replaced. Holds
    /// whether that error was a full disk, and its message: later failures are that one.
    poisoned: Option<(bool, String)>,
    slot: DbSlot,
    path: PathBuf,
    events: broadcast::Sender<Arc<Event>>,
    stats: Arc<WriteStats>,
    next_event_seq: u64,
    next_outbox_seq: u64,
}

impl Writer {
    fn run(mut self, receiver: mpsc::Receiver<WriteRequest>) {
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
            let (event_seq, outbox_seq) = (self.next_event_seq, self.next_outbox_seq);
            match self.commit(&batch) {
                Ok(results) => {
                    self.stats.record(changes);
                    for (request, committed) in batch.into_iter().zip(results) {
                        for event in &committed.events {
                            // No subscriber is fine.
                            let _ = self.events.send(event.clone());
                        }
                        let _ = request.reply.send(Ok(committed));
                    }
                }
                Err(err) => {
                    error!(error = %err, batch = batch.len(), "store commit failed");
                    self.next_event_seq = event_seq;
                    self.next_outbox_seq = outbox_seq;
                    let (storage_full, reason) = match &self.poisoned {
                        Some(first) => first.clone(),
                        None => (err.is_storage_full(), err.to_string()),
                    };
                    if err.poisons_handle() && self.poisoned.is_none() {
                        self.poisoned = Some((storage_full, reason.clone()));
                    }
                    for request in batch {
                        let _ = request.reply.send(Err(StoreError::Write {
                            reason: reason.clone(),
                            storage_full,
                        }));
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
        self.close_database(Down {
            reason: "reopening after an I/O error".to_owned(),
            storage_full: false,
        });
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
            match open_database(&self.path).and_then(|db| {
                let seqs = read_sequences(&db)?;
                Ok((db, seqs))
            }) {
                Ok((db, (next_event, next_outbox))) => {
                    let db = Arc::new(db);
                    self.next_event_seq = next_event;
                    self.next_outbox_seq = next_outbox;
                    if let Ok(mut slot) = self.slot.write() {
                        *slot = Ok(db.clone());
                    }
                    self.db = Ok(db);
                    self.poisoned = None;
                    tracing::info!(path = %self.path.display(), "store reopened");
                    return;
                }
                Err(StoreError::Open {
                    reason: redb::DatabaseError::DatabaseAlreadyOpen,
                    ..
                }) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => {
                    last = Some(err);
                    break;
                }
            }
        }
        let down = last.map_or_else(
            || Down {
                reason: "the old handle is still in use".to_owned(),
                storage_full: false,
            },
            |err| Down {
                reason: err.to_string(),
                storage_full: err.is_storage_full(),
            },
        );
        error!(error = %down.reason, "cannot reopen the store yet");
        self.close_database(down);
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
                        }
                        Change::PutMedia { path, record } => {
                            media.insert(path.as_str(), encode(record).as_slice())?;
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
                        Change::PutMeta { key, value } => {
                            meta.insert(key.as_str(), value.as_slice())?;
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

#[cfg(test)]
mod tests;
