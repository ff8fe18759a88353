//! Provenance of written subtitles and the blacklist rule: the content hash of the bytes
//! written, the [`Provenance`] record built from a worker's `Written` outcome, and the check
//! that keeps a rejected subtitle from being chosen again for its video.
//!
//! A translation worker fills the record through its `Outcome::Written`: `producer` is the
//! service name, and `detail.content_hash` (or `detail.written.content_hash`) the
//! [`content_hash`] of the text it wrote; a translation is always `machine_translated`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::job::{Job, JobId};
use crate::store::{BlacklistEntry, Provenance};
use crate::worker::WorkKind;

/// `sha256:<hex>` of `bytes`.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The content hash of the file at `path`, `None` when it cannot be read.
pub fn file_hash(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| content_hash(&bytes))
}

/// A subtitle file at one of the names a write for `video` in `language` (forced, SDH)
/// would take, that is not `ours` (the job's own subtitle, by path and content hash): a
/// user's file, which a choice or an upgrade must not replace (blocking).
pub fn foreign_sidecar(
    video: &Path,
    language: &crate::job::Language,
    forced: bool,
    sdh: bool,
    ours: Option<&Provenance>,
) -> Option<PathBuf> {
    ["srt", "ass", "ssa"]
        .into_iter()
        .map(|ext| crate::files::sidecar_path(video, language, forced, sdh, ext))
        .find(|path| {
            if std::fs::symlink_metadata(path).is_err() {
                return false;
            }
            // A record without a hash (a translation that did not give one) owns its path.
            !ours.is_some_and(|own| {
                own.path == *path
                    && (own.content_hash.is_empty()
                        || file_hash(path).as_deref() == Some(own.content_hash.as_str()))
            })
        })
}

/// Who chose a written subtitle.
pub mod chosen_by {
    /// The downloader's ranking.
    pub const SEARCH: &str = "search";
    /// A user, through `POST /api/v1/jobs/{id}/choose`.
    pub const USER: &str = "user";
    /// The upgrade pass.
    pub const UPGRADE: &str = "upgrade";
}

/// The provenance of what a worker of `kind` wrote for `job` (from its `Written` outcome).
pub fn from_written(
    job: &Job,
    kind: WorkKind,
    path: &Path,
    producer: &str,
    detail: &serde_json::Value,
    now_ms: i64,
) -> Provenance {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let content_hash = text(&detail["written"]["content_hash"])
        .or_else(|| text(&detail["content_hash"]))
        .unwrap_or_default();
    let machine_translated =
        kind == WorkKind::Translate || detail["machine_translated"].as_bool().unwrap_or(false);
    Provenance {
        job_id: job.id,
        provider: producer.to_owned(),
        candidate_id: text(&detail["id"]).unwrap_or_default(),
        release: text(&detail["release"]),
        score: detail["score"].as_u64().and_then(|s| u32::try_from(s).ok()),
        breakdown: detail
            .get("breakdown")
            .cloned()
            .unwrap_or(serde_json::Value::Null),
        language: job.language.clone(),
        forced: detail["forced"].as_bool().unwrap_or(false),
        sdh: detail["hearing_impaired"].as_bool().unwrap_or(false),
        content_hash,
        machine_translated,
        path: path.to_path_buf(),
        written_at_ms: now_ms,
        chosen_by: text(&detail["chosen_by"]).unwrap_or_else(|| chosen_by::SEARCH.to_owned()),
        upgrade_checked_at_ms: None,
        previous_hashes: Vec::new(),
    }
}

/// Whether `provenance` is a translation our translator wrote (a provider's subtitle has a
/// candidate id, even one the provider says is machine-translated).
pub fn is_our_translation(provenance: &Provenance) -> bool {
    provenance.machine_translated && provenance.candidate_id.is_empty()
}

/// The blacklist entry that rejects `provenance` for `video`.
pub fn blacklist_entry(
    video: PathBuf,
    job_id: JobId,
    provenance: &Provenance,
    now_ms: i64,
) -> BlacklistEntry {
    BlacklistEntry {
        video,
        provider: provenance.provider.clone(),
        candidate_id: provenance.candidate_id.clone(),
        content_hash: provenance.content_hash.clone(),
        language: provenance.language.clone(),
        job_id,
        rejected_at_ms: now_ms,
        machine_translation: is_our_translation(provenance),
    }
}

/// What is blacklisted for one video, plus contents never to write again (an upgrade's
/// earlier subtitles).
#[derive(Debug, Clone, Default)]
pub struct Blacklist(Vec<BlacklistEntry>, Vec<String>);

impl Blacklist {
    /// The entries read from the store.
    pub fn new(entries: Vec<BlacklistEntry>) -> Self {
        Self(entries, Vec::new())
    }

    /// Also refuses these contents (by hash).
    pub fn with_contents(mut self, hashes: impl IntoIterator<Item = String>) -> Self {
        self.1.extend(hashes.into_iter().filter(|h| !h.is_empty()));
        self
    }

    /// Whether the provider's candidate `id` was rejected.
    pub fn has_candidate(&self, provider: &str, id: &str) -> bool {
        self.0
            .iter()
            .any(|e| e.provider == provider && e.candidate_id == id)
    }

    /// Whether content with this hash was rejected.
    pub fn has_content(&self, hash: &str) -> bool {
        self.0.iter().any(|e| e.content_hash == hash) || self.1.iter().any(|h| h == hash)
    }

    /// Whether a machine translation into `language` was rejected for the video: it is
    /// not translated again (it waits for a human subtitle).
    pub fn refuses_translation(&self, language: &crate::job::Language) -> bool {
        self.0
            .iter()
            .any(|e| e.machine_translation && e.language == *language)
    }

    /// The entries read from the store.
    pub fn entries(&self) -> &[BlacklistEntry] {
        &self.0
    }

    /// Whether nothing is blacklisted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_sha256_in_hex() {
        assert_eq!(
            content_hash(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
