//! How records are written in redb: one version byte ([`RECORD_VERSION`]), then JSON.
//!
//! A reader refuses a version it does not know rather than guess (a newer build wrote it,
//! or the bytes are not ours); a migration on open would rewrite old versions. Counters in
//! `meta` are little-endian integers, read by [`read_u64`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::error;

use super::error::{DecodeError, StoreError};
use super::schema::RECORD_VERSION;

/// The bytes of `value` as a record of the current version.
pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![RECORD_VERSION];
    // Serializing our own plain structs to JSON cannot fail (no maps with non-string keys).
    if let Err(err) = serde_json::to_writer(&mut bytes, value) {
        error!(error = %err, "cannot encode a record");
    }
    bytes
}

/// The record in `bytes`, read from `table`.
pub(super) fn decode<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    decode_borrowed(table, bytes)
}

/// [`decode`] into a value that may borrow from `bytes`.
pub(super) fn decode_borrowed<'a, T: serde::Deserialize<'a>>(
    table: &'static str,
    bytes: &'a [u8],
) -> Result<T, StoreError> {
    let source = match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => match serde_json::from_slice(json) {
            Ok(value) => return Ok(value),
            Err(err) => DecodeError::Json(err),
        },
        Some((version, _)) => DecodeError::UnknownVersion(*version),
        None => DecodeError::Empty,
    };
    Err(StoreError::Decode { table, source })
}

/// The record in `bytes` (key `key` of `table`), or `None` after logging why it cannot be
/// decoded: list reads skip a bad record rather than fail (or panic) for every caller.
pub(super) fn decode_or_skip<T: DeserializeOwned>(
    table: &'static str,
    key: impl std::fmt::Display,
    bytes: &[u8],
) -> Option<T> {
    match decode(table, bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            error!(
                table,
                key = %key,
                error = %super::error_chain(&err),
                "skipping a stored record that cannot be decoded"
            );
            None
        }
    }
}

/// A little-endian counter from `meta`; shorter values are zero-extended.
pub(super) fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(buf)
}
