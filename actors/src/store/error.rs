//! What can go wrong in the store, as one error type that keeps its cause.
//!
//! Each variant says what the store was doing; the redb or I/O error that made it fail is
//! its `source`, so the edge that prints one line uses [`error_chain`] and an `anyhow`
//! report shows every level once. [`StoreError::is_storage_full`] looks through the chain
//! for a full disk, which the API answers with 507.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open store {path}")]
    Open {
        /// The redb file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// A redb operation failed (I/O error, full disk, corruption).
    #[error("store operation failed")]
    Redb(#[source] redb::Error),
    /// A record could not be decoded.
    #[error("cannot decode a record of table {table}")]
    Decode {
        /// The table it came from.
        table: &'static str,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// The file was written by a newer cuewarden.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    NewerSchema {
        /// Version in the file.
        found: u32,
        /// Version this build writes.
        supported: u32,
    },
    /// The file is not a sound store (found by [`check_file`](super::check_file)).
    #[error("store {path} is damaged: {reason}")]
    Damaged {
        /// The redb file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A running daemon holds the file (redb allows one process at a time).
    #[error("store {path} is in use by a running cuewarden: stop the daemon first")]
    Locked {
        /// The redb file.
        path: PathBuf,
    },
    /// There is no file to check.
    #[error("no store at {path}")]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The store was closed; nothing more is accepted.
    #[error("the store is closed")]
    Closed,
    /// A commit failed: the error of the batch it was part of, shared by every caller of
    /// that batch (and by later batches while the handle is poisoned).
    #[error(transparent)]
    Write(Arc<StoreError>),
    /// The store is being reopened after an I/O error.
    #[error("the store is unavailable after an I/O error; retrying")]
    Unavailable {
        /// Why the file could not be opened again, if an attempt failed; `None` while the
        /// writer is reopening it.
        #[source]
        cause: Option<Arc<StoreError>>,
    },
    /// redb panicked on the running store (a page damaged after the start-up check): caught
    /// by the store guard, which marks the store damaged.
    #[error("redb panicked reading the store: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The running store was found damaged: no more writes go into the file. The daemon
    /// restarts and restores the newest snapshot.
    #[error(
        "the store is damaged ({cause}); it takes no more writes until the daemon restarts \
         and restores the newest snapshot"
    )]
    RefusedDamaged {
        /// The damage found first.
        cause: String,
    },
}

/// Why a stored record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The record has no bytes at all.
    #[error("empty record")]
    Empty,
    /// The version byte is not one this build reads.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// The JSON after the version byte does not fit the record type.
    #[error("invalid record")]
    Json(#[source] serde_json::Error),
}

impl StoreError {
    /// Whether the file system is out of space (or quota): the user can fix that.
    pub fn is_storage_full(&self) -> bool {
        let io = match self {
            Self::Write(cause) => return cause.is_storage_full(),
            Self::Unavailable { cause } => {
                return cause.as_ref().is_some_and(|c| c.is_storage_full());
            }
            Self::Redb(redb::Error::Io(err)) => err,
            Self::Open {
                source: redb::DatabaseError::Storage(redb::StorageError::Io(err)),
                ..
            } => err,
            _ => return false,
        };
        // ENOSPC, EDQUOT
        io.kind() == std::io::ErrorKind::StorageFull || matches!(io.raw_os_error(), Some(28 | 122))
    }

    /// Whether this is damage found while the daemon runs ([`Self::Panicked`],
    /// [`Self::RefusedDamaged`], [`is_file_damage`](Self::is_file_damage)): the API answers
    /// 503 `store_damaged`.
    pub fn is_damage(&self) -> bool {
        match self {
            Self::Panicked { .. } | Self::RefusedDamaged { .. } => true,
            Self::Write(cause) => cause.is_damage(),
            Self::Unavailable { cause } => cause.as_ref().is_some_and(|c| c.is_damage()),
            _ => self.is_file_damage(),
        }
    }

    /// Whether redb found the running store's file itself unsound without panicking: shorter
    /// than redb's layout (a truncated or emptied file: a read comes back short), a read that
    /// failed with EIO (a bad sector), or corruption redb reports. Not a full disk, nor a
    /// handle closed or poisoned by an earlier error.
    pub fn is_file_damage(&self) -> bool {
        let io = match self {
            Self::Write(cause) => return cause.is_file_damage(),
            Self::Redb(redb::Error::Corrupted(_)) => return true,
            Self::Redb(redb::Error::Io(err)) => err,
            _ => return false,
        };
        // EIO
        io.kind() == std::io::ErrorKind::UnexpectedEof || io.raw_os_error() == Some(5)
    }

    /// Whether redb's handle is unusable after this error and the file must be reopened.
    pub(super) fn poisons_handle(&self) -> bool {
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
    redb::CommitError,
    redb::SetDurabilityError
);

/// An error and its causes on one line, `outer: inner: innermost`: for API answers, job
/// errors and log fields, where an error has to be one string.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        line.push_str(": ");
        line.push_str(&err.to_string());
        cause = err.source();
    }
    line
}
