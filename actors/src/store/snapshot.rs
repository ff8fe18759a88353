//! Snapshots of the store, and what the start does with them when the store file is damaged.
//!
//! A snapshot is a complete redb file, `data_dir/snapshots/cuewarden-<UTC time>.redb`,
//! written from one MVCC read transaction: consistent as of its start, while the writer keeps
//! committing (a read transaction blocks no writer; the pages it pins are reused once it ends).
//! It is written to a hidden temp file, synced, then renamed, so a snapshot that exists is
//! whole. The daemon takes one once the store checked good at start (if none is a day old), then every
//! [`SNAPSHOT_INTERVAL`], and before a schema upgrade; the newest [`SNAPSHOTS_KEPT`] stay.
//!
//! At start ([`prepare_store_file`]), a store file that fails the check is renamed to
//! `cuewarden.redb.damaged-<time>` (never written to or deleted), the newest snapshot that
//! passes the same check is copied in its place, and the loss (everything after the snapshot's
//! time) is logged at ERROR. Without a good snapshot the daemon starts on an empty store and
//! says so. `cuewarden store backup`/`restore` use the same copy and check.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableError};
use tracing::{error, info, warn};

use super::check::{CheckReport, check_file, check_file_taking, with_checked_file};
use super::schema::*;
use super::{STORE_FILE_NAME, StoreError};

/// The folder in `data_dir` holding the snapshots.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// How many snapshots are kept (the newest).
pub const SNAPSHOTS_KEPT: usize = 3;

/// How often the running daemon takes a snapshot.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long the daemon waits before trying again after a snapshot failed (a full disk, say).
pub const SNAPSHOT_RETRY: Duration = Duration::from_secs(60 * 60);
/// When a new store (the very first start, or an empty one replacing a damaged file with
/// no good snapshot) gets its first snapshot: soon, so that it holds the first library
/// sync's jobs, not a day later.
pub const FIRST_SNAPSHOT_DELAY: Duration = Duration::from_secs(10 * 60);

/// How long after the start the first snapshot is due when there is none yet: at once for a
/// store that checked good, [`FIRST_SNAPSHOT_DELAY`] for a new or emptied one, a day for a
/// restored one (it is its snapshot already).
pub(super) fn first_snapshot_wait(state: &StartState) -> Duration {
    match state {
        StartState::Good => Duration::ZERO,
        StartState::New | StartState::Fresh(_) => FIRST_SNAPSHOT_DELAY,
        StartState::Restored(_) => SNAPSHOT_INTERVAL,
    }
}

/// Records copied between two looks at the stop flag.
const STOP_CHECK_EVERY: usize = 4096;

/// Records per write transaction of the copy: bounds the copy's memory.
const RECORDS_PER_COMMIT: usize = 50_000;

/// Page cache of the file being written.
const COPY_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The time format in file names: sortable, no `:` (the data dir may be an SMB share).
const NAME_TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.3f";

const SNAPSHOT_PREFIX: &str = "cuewarden-";
const SNAPSHOT_SUFFIX: &str = ".redb";

/// One snapshot file.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The file.
    pub path: PathBuf,
    /// When it was taken (from its name).
    pub taken_at: jiff::Timestamp,
}

/// How the store file was found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartState {
    /// It passed the check.
    Good,
    /// There was none: a new store.
    New,
    /// It was damaged; a snapshot was restored. The reason, for `/health`.
    Restored(String),
    /// It was damaged and no good snapshot existed; an empty store replaces it. The reason.
    Fresh(String),
}

/// A time for a file name, UTC.
fn name_time(at: jiff::Timestamp) -> String {
    format!("{}Z", at.strftime(NAME_TIME_FORMAT))
}

fn parse_name_time(raw: &str) -> Option<jiff::Timestamp> {
    let civil = jiff::civil::DateTime::strptime(NAME_TIME_FORMAT, raw.strip_suffix('Z')?).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// The snapshots in `data_dir`, oldest first.
pub fn list_snapshots(data_dir: &Path) -> Vec<Snapshot> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(SNAPSHOT_DIR)) else {
        return Vec::new();
    };
    let mut found: Vec<Snapshot> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let time = name
                .to_str()?
                .strip_prefix(SNAPSHOT_PREFIX)?
                .strip_suffix(SNAPSHOT_SUFFIX)?;
            Some(Snapshot {
                taken_at: parse_name_time(time)?,
                path: entry.path(),
            })
        })
        .collect();
    found.sort_by_key(|s| s.taken_at);
    found
}

/// Syncs a folder, so a rename in it is durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        source: redb::DatabaseError::Storage(redb::StorageError::Io(source)),
    }
}

/// Copies the records of `table` from `from` into the database being written, in
/// transactions of [`RECORDS_PER_COMMIT`]; a missing table is created empty.
macro_rules! copy_table {
    ($from:expr, $to:expr, $stop:expr, $table:expr) => {{
        let source = match $from.open_table($table) {
            Ok(table) => Some(table),
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(err) => return Err(err.into()),
        };
        let mut txn = $to.begin_write()?;
        txn.set_durability(Durability::None)?;
        txn.open_table($table)?;
        if let Some(source) = source {
            let mut copied = 0usize;
            let mut entries = source.iter()?;
            loop {
                let mut table = txn.open_table($table)?;
                let mut full = false;
                for entry in entries.by_ref() {
                    let (key, value) = entry?;
                    table.insert(key.value(), value.value())?;
                    copied += 1;
                    if copied % STOP_CHECK_EVERY == 0 && $stop.load(Ordering::Relaxed) {
                        return Err(StoreError::Closed);
                    }
                    if copied % RECORDS_PER_COMMIT == 0 {
                        full = true;
                        break;
                    }
                }
                drop(table);
                if !full {
                    break;
                }
                txn.commit()?;
                txn = $to.begin_write()?;
                txn.set_durability(Durability::None)?;
            }
        }
        txn.commit()?;
    }};
}

/// Writes every record `from` holds, as of one read transaction, into a new redb file at
/// `dest` (which must not exist), durably. `stop` aborts the copy ([`StoreError::Closed`]).
pub(super) fn copy_store(
    from: &impl ReadableDatabase,
    dest: &Path,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let read = from.begin_read()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|err| io_error(dest, err))?;
    let to = Database::builder()
        .set_cache_size(COPY_CACHE_BYTES)
        .create_with_backend(redb::backends::FileBackend::new(file).map_err(|source| {
            StoreError::Open {
                path: dest.to_owned(),
                source,
            }
        })?)
        .map_err(|source| StoreError::Open {
            path: dest.to_owned(),
            source,
        })?;
    copy_table!(read, to, stop, META);
    copy_table!(read, to, stop, JOBS);
    copy_table!(read, to, stop, JOBS_BY_STATUS);
    copy_table!(read, to, stop, EVENTS);
    copy_table!(read, to, stop, JOB_EVENTS);
    copy_table!(read, to, stop, MEDIA);
    copy_table!(read, to, stop, PROVIDER_STATE);
    copy_table!(read, to, stop, OUTBOX);
    copy_table!(read, to, stop, STATE);
    copy_table!(read, to, stop, TRANSLATIONS);
    copy_table!(read, to, stop, MACHINE_TRANSLATED);
    copy_table!(read, to, stop, SUBTITLES);
    copy_table!(read, to, stop, BLACKLIST);
    copy_table!(read, to, stop, TRANSLATIONS_USED);
    // One durable commit makes every `Durability::None` one above durable too.
    let mut txn = to.begin_write()?;
    txn.set_quick_repair(true);
    txn.commit()?;
    drop(to);
    Ok(())
}

/// Takes a snapshot of `db` into `data_dir/snapshots/` and drops the oldest beyond
/// [`SNAPSHOTS_KEPT`]. `why` is logged.
pub(super) fn take_snapshot(
    db: &impl ReadableDatabase,
    data_dir: &Path,
    why: &str,
    stop: &AtomicBool,
) -> Result<Snapshot, StoreError> {
    let dir = data_dir.join(SNAPSHOT_DIR);
    std::fs::create_dir_all(&dir).map_err(|err| io_error(&dir, err))?;
    // Milliseconds, as the name keeps it.
    let now = jiff::Timestamp::now();
    let taken_at = jiff::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
    let name = format!("{SNAPSHOT_PREFIX}{}{SNAPSHOT_SUFFIX}", name_time(taken_at));
    let path = dir.join(&name);
    let temp = dir.join(format!(".{name}.tmp"));
    let started = Instant::now();
    let written = copy_store(db, &temp, stop).and_then(|()| {
        std::fs::rename(&temp, &path).map_err(|err| io_error(&path, err))?;
        sync_dir(&dir).map_err(|err| io_error(&dir, err))
    });
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    info!(
        path = %path.display(),
        bytes,
        millis = started.elapsed().as_millis() as u64,
        why,
        "store snapshot taken"
    );
    let all = list_snapshots(data_dir);
    for old in all.iter().take(all.len().saturating_sub(SNAPSHOTS_KEPT)) {
        if let Err(err) = std::fs::remove_file(&old.path) {
            warn!(path = %old.path.display(), error = %err, "cannot remove an old snapshot");
        }
    }
    Ok(Snapshot { path, taken_at })
}

/// Copies the file `from` to `to` durably (temp file, sync, rename, sync the folder).
fn install_copy(from: &Path, to: &Path) -> Result<(), StoreError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let name = to.file_name().map_or_else(
        || STORE_FILE_NAME.into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let temp = dir.join(format!(".{name}.restoring"));
    let result = (|| {
        std::fs::copy(from, &temp)?;
        std::fs::File::open(&temp)?.sync_all()?;
        std::fs::rename(&temp, to)?;
        sync_dir(dir)
    })();
    if let Err(err) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error(to, err));
    }
    Ok(())
}

/// Renames `path` to `<name>.<label>-<time>` next to it; returns the new path.
fn move_aside(path: &Path, label: &str) -> Result<PathBuf, StoreError> {
    let name = path.file_name().map_or_else(
        || STORE_FILE_NAME.into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let aside = path.with_file_name(format!(
        "{name}.{label}-{}",
        name_time(jiff::Timestamp::now())
    ));
    std::fs::rename(path, &aside).map_err(|err| io_error(path, err))?;
    if let Some(dir) = path.parent() {
        let _ = sync_dir(dir);
    }
    Ok(aside)
}

/// The newest snapshot that passes the check, copied over `path`.
fn restore_newest_good(data_dir: &Path, path: &Path) -> Option<(Snapshot, CheckReport)> {
    for snapshot in list_snapshots(data_dir).into_iter().rev() {
        match check_file(&snapshot.path) {
            Ok(report) => match install_copy(&snapshot.path, path) {
                Ok(()) => return Some((snapshot, report)),
                Err(err) => error!(
                    snapshot = %snapshot.path.display(),
                    error = %super::error_chain(&err),
                    "cannot restore the snapshot"
                ),
            },
            Err(err) => {
                // A damaged snapshot is renamed out of the list (kept, not tried again, not
                // taken for the newest one any more); one that could not be read stays.
                let aside = matches!(err, StoreError::Damaged { .. })
                    .then(|| snapshot.path.with_extension("redb.damaged"))
                    .filter(|aside| std::fs::rename(&snapshot.path, aside).is_ok());
                warn!(
                    snapshot = %snapshot.path.display(),
                    moved_to = aside.as_ref().map(|p| p.display().to_string()),
                    error = %super::error_chain(&err),
                    "snapshot is not usable; trying an older one"
                );
            }
        }
    }
    None
}

/// Makes sure `data_dir/cuewarden.redb` is safe to open, before anything opens it: a good
/// file is left as it is, a missing one is new, a damaged one (an empty file included) is
/// moved aside and replaced by the newest good snapshot, or by nothing (a new store).
/// Errors are what the user must fix (the file is locked by another daemon, unreadable).
///
/// With a good file, also returns what `take` made of the head of every unfinished job, as
/// the check decoded them (by id); with any other state, none.
pub fn prepare_store_file<T: Send>(
    data_dir: &Path,
    take: &(dyn Fn(crate::job::JobHeadRef<'_>) -> T + Sync),
) -> Result<(StartState, Vec<T>), StoreError> {
    let path = data_dir.join(STORE_FILE_NAME);
    let reason = match check_file_taking(&path, take) {
        Ok((_, heads)) => return Ok((StartState::Good, heads)),
        Err(StoreError::Missing { .. }) => return Ok((StartState::New, Vec::new())),
        Err(StoreError::Damaged { reason, .. }) => reason,
        Err(err) => return Err(err),
    };
    let last_written = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok());
    let aside = move_aside(&path, "damaged")?;
    error!(
        path = %path.display(),
        moved_to = %aside.display(),
        error = %reason,
        "the store is damaged; it was not opened, nothing was written to it, it is kept aside"
    );
    let until = last_written.map_or_else(|| "its last write".to_owned(), |t| t.to_string());
    match restore_newest_good(data_dir, &path) {
        Some((snapshot, report)) => {
            error!(
                snapshot = %snapshot.path.display(),
                taken_at = %snapshot.taken_at,
                jobs = report.jobs,
                unfinished_jobs = report.unfinished_jobs,
                "restored the snapshot; every change from {} until {until} is lost \
                 (requests accepted then, job progress, events)",
                snapshot.taken_at
            );
            Ok((
                StartState::Restored(format!(
                    "the store was damaged ({reason}) and is kept at {}; restored the snapshot \
                 taken at {}: changes since then are lost",
                    aside.display(),
                    snapshot.taken_at
                )),
                Vec::new(),
            ))
        }
        None => {
            error!(
                damaged = %aside.display(),
                "no good snapshot to restore; starting with an empty store: every job and \
                 event is lost (the damaged file is kept)"
            );
            Ok((
                StartState::Fresh(format!(
                    "the store was damaged ({reason}) and is kept at {}; no good snapshot existed, \
                 so the daemon started with an empty store",
                    aside.display()
                )),
                Vec::new(),
            ))
        }
    }
}

/// What `cuewarden store restore` did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// What the restored store holds.
    pub report: CheckReport,
    /// Where the replaced store file was moved, if there was one.
    pub replaced: Option<PathBuf>,
}

/// `cuewarden store backup PATH`: a consistent, checked copy of the store of `data_dir` at
/// `dest` (which must not exist). The daemon must be stopped ([`StoreError::Locked`]).
pub fn backup(data_dir: &Path, dest: &Path) -> Result<CheckReport, StoreError> {
    if dest.exists() {
        return Err(io_error(
            dest,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists"),
        ));
    }
    let path = data_dir.join(STORE_FILE_NAME);
    let stop = AtomicBool::new(false);
    let (report, written) = with_checked_file(&path, |db, _| Ok(copy_store(db, dest, &stop)))?;
    if let Err(err) = written {
        let _ = std::fs::remove_file(dest);
        return Err(err);
    }
    check_file(dest)?;
    Ok(report)
}

/// `cuewarden store restore PATH`: checks the backup at `from`, moves the current store file
/// aside (`cuewarden.redb.replaced-<time>`) and installs a copy of the backup. The daemon must
/// be stopped ([`StoreError::Locked`]).
pub fn restore(data_dir: &Path, from: &Path) -> Result<RestoreReport, StoreError> {
    let path = data_dir.join(STORE_FILE_NAME);
    // Only to learn whether a daemon holds it: a damaged or missing store may be replaced.
    match check_file(&path) {
        Ok(_) | Err(StoreError::Damaged { .. } | StoreError::Missing { .. }) => {}
        Err(err) => return Err(err),
    }
    let report = check_file(from)?;
    std::fs::create_dir_all(data_dir).map_err(|err| io_error(data_dir, err))?;
    let replaced = if path.exists() {
        Some(move_aside(&path, "replaced")?)
    } else {
        None
    };
    install_copy(from, &path)?;
    Ok(RestoreReport { report, replaced })
}
