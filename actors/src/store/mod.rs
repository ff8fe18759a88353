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
//!
//! A file damaged outside redb (a bad sector, garbage written into it, an emptied file) is
//! found before anything opens it: [`Store::open`] first checks it without writing
//! (`check.rs`), and on damage moves it aside and restores the newest good snapshot
//! (`snapshot.rs`); [`Store::health`] then says so until the next start. A snapshot thread
//! keeps rotating snapshots (at start, daily, before a schema upgrade).
//!
//! Damage that appears while the daemon runs makes redb panic when it reads the page. Every
//! call into redb runs inside the store guard (`guard.rs`): the panic becomes
//! [`StoreError::Panicked`], the store is marked damaged, the writer refuses every later
//! write ([`StoreError::RefusedDamaged`]), and [`Store::damaged`] resolves so the daemon can
//! restart and restore the newest snapshot.
//!
//! The parts: [`Store`] and [`Change`] here (open, submit, close, health); `reads.rs` the
//! read verbs; `writer.rs` the writer thread (group commit, recovery); `codec.rs` the record
//! encoding; `records.rs` the typed records; `error.rs` [`StoreError`]; `schema.rs` the
//! tables; `check.rs` the write-free integrity check; `snapshot.rs` snapshots, the restore at
//! start, backup and restore.

mod check;
mod cleanup;
mod codec;
mod error;
mod guard;
mod reads;
mod records;
pub mod schema;
mod snapshot;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableError};
use tokio::sync::{broadcast, oneshot};
use tracing::{error, warn};

use crate::event::Event;
use crate::job::{Job, JobId, JobStatus};
pub use check::{CheckReport, check_file};
pub use cleanup::{CleanupPolicy, CleanupReport, ExpiredPage, TERMINAL_STATUSES, TranslationPage};
use codec::read_u64;
pub use error::{DecodeError, StoreError, error_chain};
pub use guard::{allow_unwind, in_store_guard};
pub use reads::JobPage;
pub use records::{
    BlacklistEntry, CooldownKind, MachineTranslated, MediaRecord, OutboxEntry, Provenance,
    ProviderSession, ProviderState, modified_ms,
};
use schema::*;
pub use snapshot::{
    RestoreReport, SNAPSHOT_DIR, SNAPSHOT_INTERVAL, SNAPSHOTS_KEPT, Snapshot, StartState, backup,
    list_snapshots, restore,
};
pub use writer::{MAX_BATCH, REOPEN_INTERVAL, WriteStats};
use writer::{WriteRequest, Writer, block_on};

/// How many committed events a slow SSE subscriber may fall behind before it re-reads the log.
pub const EVENT_BROADCAST_CAPACITY: usize = 4096;

/// redb page cache. Small: redb reads through the kernel's page cache anyway, and what it
/// holds stays resident once full (idle RSS with 100,000 waiting jobs: 65 MB with 32 MiB,
/// 39.5 MB with 8 MiB; after 500 clients replayed the log, 2.2× the idle RSS with 8 MiB,
/// 1.94× with 4 MiB, while `POST /subtitles` latency did not change; README, Performance).
const CACHE_SIZE_BYTES: usize = 4 * 1024 * 1024;

/// The file name of the store inside `data_dir`.
pub const STORE_FILE_NAME: &str = "cuewarden.redb";

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
    /// Move a stored job to `status` at `at_ms` and append its events, without the caller
    /// holding the record: the writer reads it, sets the status and the time, and clears
    /// the wake time unless the job now waits. The JobManager keeps only a compact index
    /// of most jobs, so this is how it queues, wakes or cancels them. A job the store does
    /// not hold is left alone (logged).
    MoveJob {
        /// The job.
        id: JobId,
        /// Its new status.
        status: JobStatus,
        /// When (ms since epoch): the record's `updated_at_ms`.
        at_ms: i64,
        /// Events describing the change, sequenced at commit.
        events: Vec<Event>,
    },
    /// Delete a job's events of the given kinds from the log and the job's index
    /// (compaction of repeated retries). Placed before the change that appends the job's
    /// newest events, in the same commit. Sequence numbers are not reused: the log keeps
    /// growing monotonically, with gaps where events were compacted.
    DropJobEvents {
        /// The job.
        id: JobId,
        /// The event kinds to delete.
        kinds: &'static [&'static str],
    },
    /// Append events that change no job.
    AppendEvents(Vec<Event>),
    /// Remove a job and its per-job event index (retention); the global log keeps its events.
    DeleteJob(JobId),
    /// Record what is known about a video (keyed by its path).
    PutMedia(MediaRecord),
    /// Record a provider's cooldown or quota (replaces what was known of it).
    PutProviderState(ProviderState),
    /// Queue work for an external sink.
    EnqueueOutbox(OutboxEntry),
    /// Remove a delivered outbox entry.
    AckOutbox(u64),
    /// Set a named state record (see [`schema::STATE`]); `Value::Null` removes it.
    PutState {
        /// Key, e.g. `library_sync`.
        key: String,
        /// The record.
        value: serde_json::Value,
    },
    /// Cache translated texts (see [`schema::TRANSLATIONS`]).
    PutTranslations {
        /// The service that translated them.
        service: String,
        /// Source language code.
        from: String,
        /// Target language code.
        to: String,
        /// (text sent, answer).
        entries: Vec<(String, String)>,
    },
    /// Mark cached translations (keys of [`schema::TRANSLATIONS`]) last used on `day` (UTC
    /// days since the epoch; see [`schema::TRANSLATIONS_USED`]); a key not cached is skipped.
    TouchTranslations {
        /// The entries' keys ([`translation_key`]).
        keys: Vec<String>,
        /// The day.
        day: u32,
    },
    /// Delete cached translations last used before `unused_before_day` (checked again at
    /// commit: one used meanwhile stays). Counted in [`Committed::purged_translations`].
    PurgeTranslations {
        /// The entries' keys.
        keys: Vec<String>,
        /// The first day of use that keeps an entry.
        unused_before_day: u32,
    },
    /// Record a machine-translated subtitle file (see [`schema::MACHINE_TRANSLATED`]).
    PutMachineTranslated(MachineTranslated),
    /// Record what produced a job's written subtitle (replaces the job's earlier one).
    PutProvenance(Provenance),
    /// Remove a job's provenance (its subtitle was rejected and removed).
    DeleteProvenance(JobId),
    /// Blacklist a subtitle for a video.
    PutBlacklist(BlacklistEntry),
    /// Remove blacklist entries by their keys ([`BlacklistEntry::key`]); a key not there is
    /// no error.
    DeleteBlacklist(Vec<String>),
    /// Set a metadata value.
    PutMeta {
        /// Key.
        key: String,
        /// Raw bytes.
        value: Vec<u8>,
    },
    /// Retention: delete a terminal job that finished (`updated_at_ms`) before
    /// `finished_before_ms`, with its status index entry, its per-job event index and its
    /// events. A job that is no longer terminal (retried meanwhile), finished later, or whose
    /// record does not decode is kept. Counted in [`Committed::purged_jobs`].
    PurgeJob {
        /// The job.
        id: JobId,
        /// Only if it finished before this (ms since the epoch).
        finished_before_ms: i64,
    },
    /// Once this commit is durable, compact the file if at least `min_free_percent` of it is
    /// free (a copy of the live data swapped in; see `writer.rs`). The result is
    /// [`Committed::compaction`].
    Compact {
        /// The share of the file that must be free, 0–100.
        min_free_percent: u8,
    },
    /// Raise a stored job's queue priority (a webhook for a video a library sync queued at
    /// `low`), without the caller holding the record. A job the store does not hold is left
    /// alone.
    SetJobPriority {
        /// The job.
        id: JobId,
        /// Its new priority.
        priority: crate::job::Priority,
    },
}

/// The prefix of the `state` keys that belong to one job: the source subtitle a translation
/// downloaded (`translation_source.<job id>`), kept while the job waits so a later attempt
/// does not download it again. The writer removes it in the commit that ends the job
/// (`done`, `failed`, `skipped`, `cancelled`) or deletes it, and refuses to keep one for a
/// job that has ended.
pub const TRANSLATION_SOURCE_PREFIX: &str = "translation_source.";

/// The `state` key of the source subtitle kept for job `id` ([`TRANSLATION_SOURCE_PREFIX`]).
pub fn translation_source_key(id: JobId) -> String {
    format!("{TRANSLATION_SOURCE_PREFIX}{id}")
}

/// The job a [`TRANSLATION_SOURCE_PREFIX`] key belongs to.
pub(crate) fn translation_source_job(key: &str) -> Option<u128> {
    let id = key.strip_prefix(TRANSLATION_SOURCE_PREFIX)?;
    uuid::Uuid::parse_str(id).ok().map(|id| id.as_u128())
}

/// The UTC day of `ms` (days since the Unix epoch), as [`schema::TRANSLATIONS_USED`] keeps it.
pub fn day_of(ms: i64) -> u32 {
    u32::try_from(ms.max(0) / 86_400_000).unwrap_or(u32::MAX)
}

/// The key of one cached translation in [`schema::TRANSLATIONS`].
pub fn translation_key(service: &str, from: &str, to: &str, text: &str) -> String {
    format!("{service}\u{1f}{from}\u{1f}{to}\u{1f}{text}")
}

/// What a commit produced: the events with their sequence numbers.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The sequenced events, in commit order.
    pub events: Vec<Arc<Event>>,
    /// Jobs deleted by [`Change::PurgeJob`].
    pub purged_jobs: u64,
    /// Events deleted with them.
    pub purged_events: u64,
    /// Cached translations deleted by [`Change::PurgeTranslations`].
    pub purged_translations: u64,
    /// What a [`Change::Compact`] did.
    pub compaction: Option<Compaction>,
}

/// What a [`Change::Compact`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Compaction {
    /// The file's size before (bytes).
    pub file_bytes_before: u64,
    /// The bytes of it in use before.
    pub used_bytes_before: u64,
    /// The file's size after.
    pub file_bytes_after: u64,
    /// Whether the file was compacted.
    pub compacted: bool,
    /// How long copying the live data took (ms; writes wait meanwhile, reads go on).
    pub copy_ms: u64,
    /// How long the swap held the store (ms; reads and writes wait meanwhile).
    pub held_ms: u64,
    /// Why it was not compacted, when it was due but could not be.
    pub skipped: Option<String>,
}

/// The open database, shared by readers and the writer; `None` while the writer reopens it.
type DbSlot = Arc<RwLock<Result<Arc<Database>, Down>>>;

/// Why the database is not open: `None` while the writer reopens it, else the error of the
/// last attempt.
#[derive(Debug, Clone)]
struct Down(Option<Arc<StoreError>>);

impl Down {
    fn error(&self) -> StoreError {
        StoreError::Unavailable {
            cause: self.0.clone(),
        }
    }
}

fn open_database(path: &Path) -> Result<Database, StoreError> {
    Database::builder()
        .set_cache_size(CACHE_SIZE_BYTES)
        .create(path)
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })
}

/// Whether the store is sound, for `/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreHealth {
    /// Nothing to report.
    Ok,
    /// Something the owner should know, in one sentence: the store was restored from a
    /// snapshot at start, or it refuses writes (a full disk) or is being reopened.
    Degraded(String),
}

/// The snapshot thread: takes a snapshot when due, until told to stop.
struct Snapshots {
    stop: Arc<AtomicBool>,
    wake: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

impl Snapshots {
    /// Starts the thread; the first snapshot is taken once the newest one is
    /// [`SNAPSHOT_INTERVAL`] old, or after `none` if there is none.
    fn start(
        slot: DbSlot,
        data_dir: PathBuf,
        none: Duration,
        damage: Arc<guard::Damage>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = mpsc::channel::<()>();
        let stopping = stop.clone();
        let handle = std::thread::Builder::new()
            .name("store-snapshots".to_owned())
            .spawn(move || {
                let mut wait = Self::next_due(&data_dir, none);
                while let Err(mpsc::RecvTimeoutError::Timeout) = woken.recv_timeout(wait) {
                    // A damaged store is never copied: the snapshots are what restores it.
                    if damage.found().is_some() {
                        break;
                    }
                    let db = slot.read().ok().and_then(|slot| slot.as_ref().ok().cloned());
                    let Some(db) = db else {
                        wait = snapshot::SNAPSHOT_RETRY;
                        continue;
                    };
                    let taken = damage.guard(&slot, || {
                        snapshot::take_snapshot(&*db, &data_dir, "daily", &stopping)
                    });
                    wait = match taken {
                        Ok(_) => SNAPSHOT_INTERVAL,
                        Err(StoreError::Closed | StoreError::Panicked { .. }) => break,
                        Err(err) => {
                            warn!(error = %error_chain(&err), "cannot take a store snapshot; trying again later");
                            snapshot::SNAPSHOT_RETRY
                        }
                    };
                }
            })?;
        Ok(Self { stop, wake, handle })
    }

    /// How long until the newest snapshot is [`SNAPSHOT_INTERVAL`] old (`none` without one).
    fn next_due(data_dir: &Path, none: Duration) -> Duration {
        let newest = list_snapshots(data_dir).pop();
        let age = newest.and_then(|s| {
            let age = jiff::Timestamp::now().duration_since(s.taken_at);
            Duration::try_from(age).ok()
        });
        age.map_or(none, |age| SNAPSHOT_INTERVAL.saturating_sub(age))
    }

    /// Stops a snapshot in progress (its temp file is removed) and waits for the thread.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.wake);
        if self.handle.join().is_err() {
            error!("store snapshot thread panicked");
        }
    }
}

struct Inner {
    db: DbSlot,
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    snapshots: Mutex<Option<Snapshots>>,
    events: broadcast::Sender<Arc<Event>>,
    stats: Arc<WriteStats>,
    /// How the file was found at start.
    start_state: StartState,
    /// Whether the running store was found damaged (a redb panic caught by the guard).
    damage: Arc<guard::Damage>,
}

impl Inner {
    fn stop_snapshots(&self) {
        let snapshots = self.snapshots.lock().ok().and_then(|mut s| s.take());
        if let Some(snapshots) = snapshots {
            snapshots.stop();
        }
    }

    fn stop_writer(&self) {
        self.stop_snapshots();
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

impl Store {
    /// Opens (or creates) the store file `data_dir/cuewarden.redb`, creates every table,
    /// checks the schema version and starts the writer and snapshot threads.
    ///
    /// The file is checked first, without writing to it (redb's integrity check, then a
    /// decode of every record the start needs); a damaged one is moved aside and the newest
    /// good snapshot restored (or an empty store started), logged at ERROR and reported by
    /// [`health`](Self::health). A file in use by another process is [`StoreError::Locked`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_taking(data_dir, |_| ()).map(|(store, _)| store)
    }

    /// Opens the store as [`open`](Self::open) does, and also returns what `take` made of the
    /// head of every unfinished job, as the start-up check decoded them (by id):
    /// the JobManager's start takes them over without reading the store again.
    ///
    /// `None` when the heads the check saw are not the store's: the file was restored from a
    /// snapshot, replaced by an empty store, or its schema is upgraded; the JobManager then
    /// reads the unfinished jobs itself.
    pub fn open_taking<T: Send>(
        data_dir: &Path,
        take: impl Fn(crate::job::JobHeadRef<'_>) -> T + Sync,
    ) -> Result<(Self, Option<Vec<T>>), StoreError> {
        let path = data_dir.join(STORE_FILE_NAME);
        // The check catches a redb panic itself; the flag lets the panic hook allow it.
        let (start_state, heads) = allow_unwind(|| snapshot::prepare_store_file(data_dir, &take))?;
        let mut heads = (start_state == StartState::Good).then_some(heads);
        let db = open_database(&path)?;
        let version = Self::stored_schema_version(&db)?;
        if version != Some(SCHEMA_VERSION) {
            heads = None;
        }
        if version.is_some_and(|v| v < SCHEMA_VERSION) {
            snapshot::take_snapshot(
                &db,
                data_dir,
                "before the schema upgrade",
                &AtomicBool::new(false),
            )?;
        }
        let (next_event_seq, next_outbox_seq) = Self::prepare(&db)?;
        let db = Arc::new(db);
        let slot: DbSlot = Arc::new(RwLock::new(Ok(db.clone())));
        let (events, _) = broadcast::channel(EVENT_BROADCAST_CAPACITY);
        let stats = Arc::new(WriteStats::default());
        let damage = guard::Damage::new();
        let (sender, receiver) = mpsc::channel();
        let writer = Writer::new(
            db,
            slot.clone(),
            path.clone(),
            events.clone(),
            stats.clone(),
            (next_event_seq, next_outbox_seq),
        )
        .with_damage(damage.clone());
        let handle = std::thread::Builder::new()
            .name("store-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|err| StoreError::Redb(redb::Error::Io(err)))?;
        let inner = Inner {
            db: slot.clone(),
            path,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            snapshots: Mutex::new(None),
            events,
            stats,
            start_state,
            damage: damage.clone(),
        };
        // A store that checked good gets a snapshot at start if none is a day old, so that
        // restarts neither rotate the older ones out nor pay for a copy each time; a restored
        // store is its snapshot already; a new one gets its first soon after the start.
        let first = snapshot::first_snapshot_wait(&inner.start_state);
        match Snapshots::start(slot, data_dir.to_owned(), first, damage) {
            Ok(snapshots) => {
                if let Ok(mut slot) = inner.snapshots.lock() {
                    *slot = Some(snapshots);
                }
            }
            Err(err) => warn!(error = %err, "cannot start the snapshot thread; no snapshots"),
        }
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            heads,
        ))
    }

    /// The schema version in `meta`, if the file has one.
    fn stored_schema_version(db: &Database) -> Result<Option<u32>, StoreError> {
        let txn = db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        Ok(meta
            .get(META_SCHEMA_VERSION)?
            .map(|v| read_u64(v.value()) as u32))
    }

    /// How the store file was found at start.
    pub fn start_state(&self) -> &StartState {
        &self.inner.start_state
    }

    /// Whether the store is sound: degraded while it was restored from a snapshot (until the
    /// next start), refuses writes after an I/O error (a full disk) or is being reopened.
    pub fn health(&self) -> StoreHealth {
        if let Some(cause) = self.inner.damage.found() {
            return StoreHealth::Degraded(if self.inner.damage.staying() {
                format!(
                    "the store was found damaged while the daemon ran ({cause}); it refuses \
                     writes, and the daemon does not restart for it again (it did moments ago \
                     and the file then checked good): stop it, then `cuewarden store check` \
                     and `cuewarden store restore PATH` (a snapshot)"
                )
            } else {
                format!(
                    "the store was found damaged while the daemon ran ({cause}); it refuses \
                     writes until the daemon restarts and restores the newest good snapshot"
                )
            });
        }
        if let Some(cause) = self.inner.stats.refusing_writes() {
            return StoreHealth::Degraded(format!(
                "the store refuses writes ({cause}); retrying every {} s",
                REOPEN_INTERVAL.as_secs()
            ));
        }
        if let Ok(slot) = self.inner.db.read()
            && let Err(down) = &*slot
        {
            return StoreHealth::Degraded(error_chain(&down.error()));
        }
        match &self.inner.start_state {
            StartState::Restored(reason) | StartState::Fresh(reason) => {
                StoreHealth::Degraded(reason.clone())
            }
            StartState::Good | StartState::New => StoreHealth::Ok,
        }
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
            txn.open_table(STATE)?;
            txn.open_table(TRANSLATIONS)?;
            txn.open_table(MACHINE_TRANSLATED)?;
            txn.open_table(SUBTITLES)?;
            txn.open_table(BLACKLIST)?;
            txn.open_table(TRANSLATIONS_USED)?;
        }
        txn.commit()?;
        Ok(seqs)
    }

    /// The damage found in the running store (the first redb panic the guard caught), if any.
    pub fn damage(&self) -> Option<String> {
        self.inner.damage.found().map(|cause| cause.to_string())
    }

    /// The daemon stays up with the damage found instead of restarting for it: `/health`
    /// says so.
    pub fn stay_damaged(&self) {
        self.inner.damage.stay();
    }

    /// Resolves, with what [`damage`](Self::damage) says, once the running store is found
    /// damaged (at once if it was already): the daemon then restarts itself.
    pub fn damaged(&self) -> impl Future<Output = String> + Send + 'static + use<> {
        let wait = self.inner.damage.wait();
        async move { wait.await.to_string() }
    }

    /// Runs `f`, a read of redb, under the store guard: a redb panic in it is
    /// [`StoreError::Panicked`] and marks the store damaged.
    pub(crate) fn guarded<T>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.inner.damage.guard(&self.inner.db, f)
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
        block_on(future)
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
            Err(down) => panic!("store unavailable: {down:?}"),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod damage_tests;
