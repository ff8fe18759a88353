//! The typed records the store keeps besides jobs and events: the media index, provider
//! state and outbox entries.
//!
//! Each is written as JSON after the record version byte (see `codec.rs`). Their JSON is
//! the one earlier builds wrote, and fields added since have serde defaults, so records
//! already on disk stay readable without a migration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::job::{EventSource, JobId, Language};

/// What the media index knows of a video: who asked for it last, and for what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    /// The video (its real path; also the record's key).
    pub path: PathBuf,
    /// Jellyfin's item id, when known.
    #[serde(default)]
    pub jellyfin_item_id: Option<String>,
    /// The languages last asked for.
    #[serde(default)]
    pub languages: Vec<Language>,
    /// When it was last asked for (ms since epoch).
    #[serde(default)]
    pub last_requested_at_ms: i64,
    /// Who asked last.
    pub last_source: EventSource,
}

/// What is known of one subtitle provider: a cooldown (rate limit, exhausted quota) and
/// its quota. The JobManager is its only writer; workers read it before calling.
///
/// Records written before quotas were tracked are `{"cooldown_until_ms", "reason"}`;
/// every field has a default so they read as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProviderState {
    /// The provider's name (`opensubtitles`). The record's key, so not in its JSON.
    #[serde(skip)]
    pub provider: String,
    /// No call to the provider before this instant (ms since epoch).
    #[serde(default)]
    pub cooldown_until_ms: Option<i64>,
    /// Why it cools down (`rate limited`, `quota exhausted`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Downloads left in the current quota period, when the provider says.
    #[serde(default)]
    pub quota_remaining: Option<u32>,
    /// When the quota period starts again (ms since epoch), when the provider says.
    #[serde(default)]
    pub quota_resets_at_ms: Option<i64>,
    /// What kind of trouble the cooldown is for.
    #[serde(default)]
    pub cooldown_kind: Option<CooldownKind>,
    /// Calls in a row that found the provider unavailable (5xx, timeouts); enough of them
    /// cool it down.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// For a cooldown of kind `auth`: which credentials were refused (an opaque id), so
    /// changed credentials are tried at once.
    #[serde(default)]
    pub refused_credentials: Option<String>,
    /// A login session the provider keeps across restarts.
    #[serde(default)]
    pub session: Option<ProviderSession>,
}

/// Why a provider cools down. Each kind has its own duration (see the downloader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CooldownKind {
    /// HTTP 429: as long as `Retry-After` says.
    RateLimit,
    /// The download quota is used up: until it resets.
    Quota,
    /// Down (5xx, timeouts) several times in a row.
    Unavailable,
    /// Credentials refused: until they change.
    Auth,
    /// Answers we cannot read.
    Parse,
}

impl CooldownKind {
    /// Its name, as in `/health/sources` (`rate_limit`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::Quota => "quota",
            Self::Unavailable => "unavailable",
            Self::Auth => "auth",
            Self::Parse => "parse",
        }
    }
}

/// A provider's login session (OpenSubtitles' token), kept so a restart reuses it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSession {
    /// The bearer token.
    pub token: String,
    /// The API base the login answer named (scheme, host and port), if any.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Not used after this instant (ms since epoch).
    pub expires_at_ms: i64,
    /// Which credentials it belongs to (an opaque id).
    #[serde(default)]
    pub credentials: Option<String>,
}

impl std::fmt::Debug for ProviderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSession")
            .field("token", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

impl ProviderState {
    /// A provider cooling down until `until_ms` for `reason`.
    pub fn cooling_down(provider: &str, until_ms: i64, reason: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            cooldown_until_ms: Some(until_ms),
            reason: Some(reason.to_owned()),
            ..Self::default()
        }
    }

    /// The end of the cooldown, if it is still in force at `now_ms`.
    pub fn cooling_until(&self, now_ms: i64) -> Option<i64> {
        self.cooldown_until_ms.filter(|until| *until > now_ms)
    }

    /// This newer state over `older`: everything from this one, except that a cooldown of
    /// `older` ending later is kept (two workers reporting at once never shorten one).
    pub fn over(mut self, older: &ProviderState) -> Self {
        if older.cooldown_until_ms > self.cooldown_until_ms {
            self.cooldown_until_ms = older.cooldown_until_ms;
            self.reason.clone_from(&older.reason);
            self.cooldown_kind = older.cooldown_kind;
            self.refused_credentials
                .clone_from(&older.refused_credentials);
        }
        self
    }
}

/// Work for an external sink (notifier, bridge), queued in the same commit as the job
/// change that caused it, kept until the sink acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum OutboxEntry {
    /// A job wrote its subtitle.
    #[serde(rename = "job.done")]
    JobDone {
        /// The job.
        job_id: JobId,
        /// The subtitle written.
        path: PathBuf,
    },
    /// A job failed for good (`job.failed`).
    #[serde(rename = "job.failed")]
    JobFailed {
        /// The job.
        job_id: JobId,
        /// Why.
        error: String,
    },
    /// A better subtitle replaced the one a job had written (the upgrade engine's hook:
    /// enqueue this in the commit that records the upgrade).
    #[serde(rename = "job.upgraded")]
    Upgraded {
        /// The job.
        job_id: JobId,
        /// The subtitle written.
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_state_keeps_a_cooldown_that_ends_later() {
        let older = ProviderState {
            cooldown_kind: Some(CooldownKind::RateLimit),
            ..ProviderState::cooling_down("os", 2_000, "rate limited")
        };
        let newer = ProviderState {
            provider: "os".to_owned(),
            quota_remaining: Some(3),
            ..ProviderState::default()
        };
        let merged = newer.clone().over(&older);
        assert_eq!(merged.cooldown_until_ms, Some(2_000));
        assert_eq!(merged.cooldown_kind, Some(CooldownKind::RateLimit));
        assert_eq!(merged.quota_remaining, Some(3));

        let longer = ProviderState {
            cooldown_kind: Some(CooldownKind::Quota),
            ..ProviderState::cooling_down("os", 9_000, "quota exhausted")
        };
        assert_eq!(longer.clone().over(&older), longer);
    }

    #[test]
    fn a_session_never_shows_its_token_in_debug_output() {
        let session = ProviderSession {
            token: "secret-jwt".to_owned(),
            base_url: None,
            expires_at_ms: 1,
            credentials: None,
        };
        assert!(!format!("{session:?}").contains("secret-jwt"));
    }
}

/// A subtitle file the Translator wrote (machine-translated): it ranks below any human
/// subtitle, so a later search that finds one replaces it. Kept while the file is as
/// written (same length and modification time); a file changed since is not ours any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineTranslated {
    /// The subtitle file (also the key).
    pub path: PathBuf,
    /// The translation service.
    #[serde(default)]
    pub service: String,
    /// The source language.
    #[serde(default)]
    pub from: Option<Language>,
    /// What it was translated from (`{"kind": "sidecar", "path": …}`, …).
    #[serde(default)]
    pub source: serde_json::Value,
    /// The file's length as written.
    #[serde(default)]
    pub len: u64,
    /// The file's modification time as written (ms since epoch).
    #[serde(default)]
    pub modified_ms: i64,
    /// When it was written (ms since epoch).
    #[serde(default)]
    pub written_at_ms: i64,
}

impl MachineTranslated {
    /// Whether `metadata` is still the file as written.
    pub fn matches(&self, metadata: &std::fs::Metadata) -> bool {
        metadata.len() == self.len && modified_ms(metadata) == self.modified_ms
    }
}

/// A file's modification time in ms since epoch (0 when unknown).
pub fn modified_ms(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What produced the subtitle a job wrote (its provenance), kept per job in the
/// `subtitles` table. A provider's download names the provider and its candidate; a
/// machine translation names the translation service (`provider`) with
/// `machine_translated: true` and no candidate id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The job that wrote it (also the record's key).
    pub job_id: JobId,
    /// The provider (`opensubtitles`) or translation service (`deepl`) that produced it.
    pub provider: String,
    /// The provider's candidate id; empty for a translation.
    #[serde(default)]
    pub candidate_id: String,
    /// The release name the provider gave.
    #[serde(default)]
    pub release: Option<String>,
    /// Its score (0–100) when it was chosen; `None` for a translation.
    #[serde(default)]
    pub score: Option<u32>,
    /// The score's breakdown: one `{"factor", "points", …}` per factor.
    #[serde(default)]
    pub breakdown: serde_json::Value,
    /// The subtitle's language.
    pub language: Language,
    /// Forced (foreign parts only).
    #[serde(default)]
    pub forced: bool,
    /// For the deaf and hard of hearing.
    #[serde(default)]
    pub sdh: bool,
    /// `sha256:<hex>` of the bytes written.
    #[serde(default)]
    pub content_hash: String,
    /// Produced by a translation service, or flagged machine-translated by the provider.
    #[serde(default)]
    pub machine_translated: bool,
    /// The file written.
    pub path: PathBuf,
    /// When it was written (ms since epoch).
    pub written_at_ms: i64,
    /// Who chose it: `search` (the downloader's ranking), `user` (`POST …/choose`) or
    /// `upgrade` (the upgrade pass).
    #[serde(default = "chosen_by_search")]
    pub chosen_by: String,
    /// The last upgrade pass that searched for a better one (ms since epoch).
    #[serde(default)]
    pub upgrade_checked_at_ms: Option<i64>,
    /// The content hashes this job's subtitle had before (upgrades and choices), so the
    /// same content is never written twice.
    #[serde(default)]
    pub previous_hashes: Vec<String>,
}

fn chosen_by_search() -> String {
    "search".to_owned()
}

/// A subtitle a user rejected for one video: never chosen again for it (by provider and
/// candidate id before a download, by content hash after one). Kept in the `blacklist`
/// table under `<video path>\0<provider>\0<candidate id>`; a rejected machine translation
/// (our translator's, with no candidate id) under `<video path>\0<service>\0\0<language>\0<content
/// hash>`: while one is there, that video and language are not machine-translated again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    /// The video (its real path).
    pub video: PathBuf,
    /// The provider that served it.
    pub provider: String,
    /// The provider's candidate id.
    pub candidate_id: String,
    /// `sha256:<hex>` of the bytes that were written.
    pub content_hash: String,
    /// The language it was for.
    pub language: Language,
    /// The job that wrote it.
    pub job_id: JobId,
    /// When it was rejected (ms since epoch).
    pub rejected_at_ms: i64,
    /// A machine translation our translator wrote (not a provider's subtitle): the video
    /// and language then wait for a human subtitle. Absent in entries of earlier builds.
    #[serde(default)]
    pub machine_translation: bool,
}

impl BlacklistEntry {
    /// The key prefix of every entry for `video`.
    pub fn prefix(video: &std::path::Path) -> String {
        format!("{}\u{0}", video.display())
    }

    /// The entry's key.
    pub fn key(&self) -> String {
        if self.machine_translation {
            return format!(
                "{}{}\u{0}\u{0}{}\u{0}{}",
                Self::prefix(&self.video),
                self.provider,
                self.language,
                self.content_hash
            );
        }
        format!(
            "{}{}\u{0}{}",
            Self::prefix(&self.video),
            self.provider,
            self.candidate_id
        )
    }
}
