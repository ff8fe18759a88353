//! The store guard: redb panics on a page damaged after the start (its checksums are only
//! verified by the start-up check), and a panic must not take the daemon down. Every call
//! into redb at run time (the reads, the writer's transaction and commit, the compaction,
//! the snapshot copy) runs inside [`Damage::guard`]: a panic there becomes
//! [`StoreError::Panicked`], and the store is marked damaged. From then on the writer
//! refuses every write ([`StoreError::RefusedDamaged`]), `Store::health` says so, and
//! [`Store::damaged`](super::Store::damaged) resolves, so the daemon can restart itself and
//! let the start-up check restore the newest snapshot.
//!
//! The guard sets a thread-local flag while it runs, which the binary's panic hook reads:
//! a panic inside a guard is logged and unwinds to the guard; any other panic is a bug and
//! aborts the process, as before (see `main.rs`).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use tokio::sync::watch;
use tracing::error;

use super::{DbSlot, StoreError};

thread_local! {
    /// How many guards the current thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether the current thread runs inside a store guard (or [`allow_unwind`]): a panic
/// there unwinds to it instead of ending the process. For the binary's panic hook.
pub fn in_store_guard() -> bool {
    DEPTH.with(|depth| depth.get() > 0)
}

/// Runs `f` with the guard flag set, without catching anything: for code that has a
/// `catch_unwind` of its own (the start-up check), so that the panic hook lets it unwind.
pub fn allow_unwind<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
        }
    }
    DEPTH.with(|depth| depth.set(depth.get() + 1));
    let _reset = Reset;
    f()
}

/// What a panic carried, as text.
pub(super) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs `f`, turning a panic inside it into [`StoreError::Panicked`].
pub(super) fn catch<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    match allow_unwind(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(result) => result,
        Err(payload) => Err(StoreError::Panicked {
            message: panic_text(payload.as_ref()),
        }),
    }
}

/// Whether the running store was found damaged, shared by the readers, the writer and the
/// snapshot thread.
#[derive(Debug)]
pub(super) struct Damage {
    /// The first caught panic, on one line; `None` while the store is sound.
    found: watch::Sender<Option<Arc<str>>>,
    /// The daemon will not restart for it (it did moments ago and the file checked good).
    staying: std::sync::atomic::AtomicBool,
}

impl Damage {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            found: watch::Sender::new(None),
            staying: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The daemon stays up with the damage instead of restarting (see [`staying`]).
    ///
    /// [`staying`]: Self::staying
    pub(super) fn stay(&self) {
        self.staying
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the daemon stays up with the damage rather than restarting for it.
    pub(super) fn staying(&self) -> bool {
        self.staying.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The first damage found, if any.
    pub(super) fn found(&self) -> Option<Arc<str>> {
        self.found.borrow().clone()
    }

    /// Resolves with the first damage found (at once if it was found already).
    pub(super) fn wait(&self) -> impl Future<Output = Arc<str>> + Send + 'static + use<> {
        let mut receiver = self.found.subscribe();
        async move {
            let found = match receiver.wait_for(Option::is_some).await {
                Ok(found) => found.clone(),
                Err(_) => None,
            };
            match found {
                Some(found) => found,
                // The store is gone: nothing will be found any more.
                None => std::future::pending().await,
            }
        }
    }

    /// The error later writes are refused with.
    pub(super) fn refusal(&self) -> Option<StoreError> {
        self.found().map(|cause| StoreError::RefusedDamaged {
            cause: cause.to_string(),
        })
    }

    /// Runs `f` under the guard; a panic, or an error that says the file is unsound
    /// ([`StoreError::is_file_damage`]: a truncated file, a bad sector), marks the store
    /// damaged (see [`mark`](Self::mark)).
    pub(super) fn guard<T>(
        &self,
        slot: &DbSlot,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = catch(f);
        match &result {
            Err(StoreError::Panicked { message }) => self.mark(slot, message),
            Err(err) if err.is_file_damage() => self.mark(slot, &super::error_chain(err)),
            _ => {}
        }
        result
    }

    /// Marks the store damaged: the first time, logs at ERROR what follows, and keeps one
    /// handle to the database for good, so that it is never dropped: redb's close writes
    /// to the file, and nothing may be written into a damaged file. The process restarts
    /// (or ends) soon after; the file is closed by the kernel then.
    pub(super) fn mark(&self, slot: &DbSlot, message: &str) {
        self.found.send_if_modified(|found| {
            if found.is_some() {
                return false;
            }
            // Before anyone learns of it: the handle is kept, and the log says it first.
            if let Ok(slot) = slot.read()
                && let Ok(db) = &*slot
            {
                std::mem::forget(db.clone());
            }
            error!(
                error = %message,
                "the store is damaged: redb failed on the running store's file; every later \
                 write is refused (nothing more is written into the file), and what changed \
                 since the newest good snapshot is lost once it is restored"
            );
            *found = Some(Arc::from(message));
            true
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::writer::block_on;
    use super::super::{Change, Store, StoreError, StoreHealth};
    use super::in_store_guard;

    fn put(key: &str) -> Vec<Change> {
        vec![Change::PutMeta {
            key: key.to_owned(),
            value: vec![1, 2, 3],
        }]
    }

    #[test]
    fn a_panic_inside_the_guard_is_damage_and_the_writer_refuses_every_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.submit_blocking(put("before")).unwrap();
        assert_eq!(store.health(), StoreHealth::Ok);
        assert!(store.damage().is_none());

        let mut inside = false;
        let err = store
            .guarded(|| -> Result<(), StoreError> {
                inside = in_store_guard();
                panic!("internal error: entered unreachable code")
            })
            .unwrap_err();
        assert!(inside, "the guard sets the flag the panic hook reads");
        assert!(!in_store_guard(), "and resets it after a panic");
        assert!(matches!(err, StoreError::Panicked { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "redb panicked reading the store: internal error: entered unreachable code"
        );
        assert!(err.is_damage());

        // Marked: the damage is reported, /health is degraded, the signal fires.
        let damage = store.damage().unwrap();
        assert!(damage.contains("entered unreachable code"), "{damage}");
        match store.health() {
            StoreHealth::Degraded(reason) => {
                assert!(reason.contains("damaged while the daemon ran"), "{reason}");
                assert!(reason.contains("refuses writes"), "{reason}");
            }
            StoreHealth::Ok => panic!("a damaged store is healthy"),
        }
        assert_eq!(block_on(store.damaged()), damage);

        // Every later write is refused with the damage, none reaches the file.
        for _ in 0..2 {
            let refused = store.submit_blocking(put("after")).unwrap_err();
            assert!(refused.is_damage(), "{refused:?}");
            let message = super::super::error_chain(&refused);
            assert!(message.contains("takes no more writes"), "{message}");
            assert!(message.contains("entered unreachable code"), "{message}");
        }
        assert_eq!(store.meta("after").unwrap(), None);
        // What can still be read is served (under the guard).
        assert_eq!(store.meta("before").unwrap(), Some(vec![1, 2, 3]));

        // A second panic changes nothing of the first.
        let _ = store.guarded(|| -> Result<(), StoreError> { panic!("another") });
        assert_eq!(store.damage().unwrap(), damage);
        store.close();
    }

    #[test]
    fn a_guard_without_a_panic_passes_the_result_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.guarded(|| Ok(7)).unwrap(), 7);
        let err = store
            .guarded(|| -> Result<(), StoreError> { Err(StoreError::Closed) })
            .unwrap_err();
        assert!(matches!(err, StoreError::Closed));
        assert!(store.damage().is_none(), "an error is not damage");
        store.submit_blocking(put("fine")).unwrap();
    }

    /// Found by the review: a store file truncated under the running daemon made reads fail
    /// with short reads (500s, then the handle refused everything) and was taken for a full
    /// disk, never restored. A short read is damage too.
    #[test]
    fn a_store_file_truncated_under_the_daemon_is_damage_not_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // More pages than redb's cache holds, so reads go to the file.
        for n in 0..40 {
            let changes = (0..500)
                .map(|i| Change::PutMeta {
                    key: format!("key-{n}-{i}"),
                    value: vec![7; 200],
                })
                .collect();
            store.submit_blocking(changes).unwrap();
        }
        let path = dir.path().join(super::super::STORE_FILE_NAME);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(64 * 1024).unwrap();
        let mut failed = None;
        for n in (0..40).rev() {
            for i in 0..500 {
                if let Err(err) = store.meta(&format!("key-{n}-{i}")) {
                    failed = Some(err);
                    break;
                }
            }
            if failed.is_some() {
                break;
            }
        }
        let err = failed.expect("a read past the truncated end fails");
        assert!(err.is_file_damage(), "{err:?}");
        assert!(
            err.is_damage(),
            "the API answers 503 store_damaged: {err:?}"
        );
        assert!(!err.is_storage_full(), "{err:?}");
        let damage = store.damage().expect("the store is marked damaged");
        assert!(damage.contains("failed to fill whole buffer"), "{damage}");
        match store.health() {
            StoreHealth::Degraded(reason) => {
                assert!(reason.contains("damaged while the daemon ran"), "{reason}");
            }
            StoreHealth::Ok => panic!("a damaged store is healthy"),
        }
        let refused = store.submit_blocking(put("after")).unwrap_err();
        assert!(refused.is_damage(), "{refused:?}");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            64 * 1024,
            "nothing more is written into the file"
        );
        store.close();
    }

    /// Overwrites every 4th page of `path` that holds data with random bytes.
    fn damage_used_pages(path: &std::path::Path) -> usize {
        use std::io::{Seek, SeekFrom, Write};
        const PAGE: usize = 4096;
        let bytes = std::fs::read(path).unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let (mut used, mut damaged) = (0, 0);
        for (n, page) in bytes.chunks(PAGE).enumerate().skip(4) {
            if page.iter().all(|b| *b == 0) {
                continue;
            }
            used += 1;
            if used % 4 != 0 {
                continue;
            }
            let garbage: Vec<u8> = (0..page.len())
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            file.seek(SeekFrom::Start((n * PAGE) as u64)).unwrap();
            file.write_all(&garbage).unwrap();
            damaged += 1;
        }
        file.sync_all().unwrap();
        damaged
    }

    /// The first contact with the damage is a write: redb panics inside the writer's
    /// transaction; the panic (and the transaction's drop while unwinding) is caught, the
    /// batch is refused, and so is every later one.
    #[test]
    fn a_redb_panic_inside_a_write_is_caught_and_the_writes_stop() {
        use crate::job::{EventSource, Job, JobStatus};
        use crate::language::Language;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut jobs = Vec::new();
        for chunk in 0..12 {
            let batch: Vec<Change> = (0..1000)
                .map(|n| {
                    let mut job = Job::pending(
                        dir.path().join(format!("Show {chunk} {n} (2001).mkv")),
                        Language::parse("fr").unwrap(),
                        EventSource::Api,
                        1,
                    );
                    job.status = JobStatus::Done;
                    job.error = Some("x".repeat(300));
                    jobs.push(job.clone());
                    Change::PutJob {
                        job,
                        events: Vec::new(),
                    }
                })
                .collect();
            store.submit_blocking(batch).unwrap();
        }
        store.close();
        drop(store);
        // Opened again (the check finds it good), its pages are read from the disk.
        let store = Store::open(dir.path()).unwrap();
        // It takes its snapshot at start (it checked good): let that be done first, so that
        // the writer is the first to reach the damage.
        let start = std::time::Instant::now();
        while super::super::list_snapshots(dir.path()).is_empty() {
            assert!(start.elapsed() < std::time::Duration::from_secs(20));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(damage_used_pages(store.path()) > 100);
        let mut first = None;
        for job in jobs.iter().step_by(50) {
            let mut job = job.clone();
            job.status = JobStatus::Failed;
            if let Err(err) = store.submit_blocking(vec![Change::PutJob {
                job,
                events: Vec::new(),
            }]) {
                first = Some(err);
                break;
            }
        }
        let first = first.expect("a write reached a damaged page");
        let message = super::super::error_chain(&first);
        assert!(
            message.starts_with("redb panicked reading the store: "),
            "{message}"
        );
        assert!(store.damage().is_some());
        let later = store.submit_blocking(put("later")).unwrap_err();
        assert!(later.is_damage(), "{later:?}");
        assert!(matches!(store.health(), StoreHealth::Degraded(_)));
        store.close();
    }
}
