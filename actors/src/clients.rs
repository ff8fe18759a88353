//! The small traits behind which remote services live.
//!
//! The core decides *what* to do; implementations in the root crate (`src/clients/`) speak
//! HTTP. Tests put in-process fakes here to inject failures, hangs and vanishing workers.
//! Futures are `'static` and not `Send`: workers run on actix's single-threaded arbiters.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::job::Language;
use crate::scoring::VideoFacts;
use crate::store::ProviderState;

/// A boxed future as returned by the client traits.
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

/// What a provider is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleQuery {
    /// The video, as this daemon sees it.
    pub video: PathBuf,
    /// The language searched.
    pub language: Language,
    /// Jellyfin's item id, when known.
    pub jellyfin_item_id: Option<String>,
    /// What the video's path tells: title, year, season/episode, ids, release.
    pub facts: VideoFacts,
    /// The OpenSubtitles movie hash, when the file is big enough to have one.
    pub movie_hash: Option<String>,
}

/// What a provider tells of a candidate, for scoring. Every field is optional: what a
/// provider does not say scores nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CandidateMeta {
    /// The provider matched it by the video's movie hash.
    pub hash_match: bool,
    /// IMDb id of the movie or episode (number, no `tt`).
    pub imdb_id: Option<u64>,
    /// TMDB id of the movie or episode.
    pub tmdb_id: Option<u64>,
    /// IMDb id of the show (episodes).
    pub parent_imdb_id: Option<u64>,
    /// TMDB id of the show (episodes).
    pub parent_tmdb_id: Option<u64>,
    /// Title of the movie, or of the show for an episode.
    pub title: Option<String>,
    /// Year of the movie or show.
    pub year: Option<u16>,
    /// Season number (episodes).
    pub season: Option<u32>,
    /// Episode number (episodes).
    pub episode: Option<u32>,
    /// Uploaded by someone the provider trusts.
    pub trusted: bool,
    /// Machine-translated (a poor subtitle).
    pub machine_translated: bool,
    /// AI-translated.
    pub ai_translated: bool,
    /// How often it was downloaded (a tie-breaker).
    pub downloads: u64,
}

/// One subtitle a provider offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The provider's name.
    pub provider: String,
    /// The provider's id for the file, opaque.
    pub id: String,
    /// Its language.
    pub language: Language,
    /// Score 0–100. A provider that ranks by itself and says nothing in `meta` (a plugin
    /// search) sets it; the core's score from `meta` (see [`crate::scoring`]) replaces it
    /// when higher.
    pub score: u32,
    /// Written for the deaf and hard of hearing.
    pub hearing_impaired: bool,
    /// Only the foreign-language parts.
    pub forced: bool,
    /// Release name, for the event log.
    pub release: String,
    /// What the provider tells of it, for scoring.
    pub meta: CandidateMeta,
}

/// Why a provider call failed; decides cooldown and retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// HTTP 429; cool down for `retry_after` (or a default).
    #[error("rate limited{}", .retry_after.map(|d| format!(" for {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// From the `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// The daily quota is used up; cool down until it resets.
    #[error("download quota exhausted")]
    QuotaExhausted {
        /// Until when, if the provider said.
        resets_in: Option<Duration>,
    },
    /// 5xx, timeout, connection refused: try again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused our credentials (user name, password, API key): nothing helps
    /// until the configuration changes.
    #[error("bad credentials: {0}")]
    Auth(String),
    /// The provider answered something that is not its protocol (HTML, truncated JSON).
    #[error("unreadable answer: {0}")]
    Parse(String),
    /// A bad request: retrying will not help.
    #[error("provider error: {0}")]
    Permanent(String),
}

/// A source of subtitles (OpenSubtitles, Jellyfin's plugins, …).
pub trait SubtitleProvider {
    /// Stable name, used in events and cooldowns (`opensubtitles`).
    fn name(&self) -> &str;
    /// Lists candidates for one video and language.
    fn search(
        &self,
        query: &SubtitleQuery,
    ) -> LocalBoxFuture<Result<Vec<Candidate>, ProviderError>>;
    /// Fetches one candidate's file (maybe an archive, maybe any encoding).
    fn download(&self, candidate: &Candidate) -> LocalBoxFuture<Result<Vec<u8>, ProviderError>>;
    /// Takes over what the store kept of this provider (a login session) when it has
    /// nothing better in memory. Called before each search.
    fn restore(&self, _state: &ProviderState) {}
    /// Writes what the provider learnt (its session, its quota) into `state`, the record
    /// the JobManager keeps. Called after each attempt.
    fn record(&self, _state: &mut ProviderState) {}
    /// Identifies the configured credentials (not reversible), so a cooldown for bad
    /// credentials ends when they change.
    fn credentials_id(&self) -> Option<String> {
        None
    }
}

/// Why a media server call failed; decides whether it is tried again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaServerError {
    /// 5xx, timeout, connection refused: tried again with backoff.
    #[error("media server unavailable: {0}")]
    Unavailable(String),
    /// The server has no item for the video (not scanned yet): not tried again.
    #[error("media server has no item for this video: {0}")]
    NotFound(String),
    /// Refused (bad key, 4xx): not tried again.
    #[error("media server refused: {0}")]
    Refused(String),
}

/// What a media server is asked to refresh after a subtitle was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRequest {
    /// The video, as this daemon sees it.
    pub video: PathBuf,
    /// The server's item id, when the job knows it.
    pub item_id: Option<String>,
    /// Whether an existing subtitle file was replaced in place (Jellyfin then needs a
    /// full refresh: the set of subtitle paths did not change).
    pub replaced: bool,
}

/// A media server that shows the subtitles (Jellyfin): told to re-read an item after a
/// subtitle was written next to it, so the user sees it without waiting for a scan.
pub trait MediaServer {
    /// Stable name (`jellyfin`), used in events.
    fn name(&self) -> &str;
    /// Refreshes the item of `request.video`; answers the item id refreshed.
    fn refresh(&self, request: &RefreshRequest)
    -> LocalBoxFuture<Result<String, MediaServerError>>;
}

/// Why a translation call failed; decides what the Translator does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// HTTP 429: wait `retry_after` (or a default) and send the batch again.
    #[error("translator rate limited{}", .retry_after.map(|d| format!(" for {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// From the `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// The account's character quota is used up (DeepL 456, OpenAI `insufficient_quota`):
    /// the job waits until the period resets; it is not a failure.
    #[error("translator quota exhausted")]
    QuotaExhausted {
        /// Until when, if the service said.
        resets_in: Option<Duration>,
    },
    /// The batch was too big for one answer (OpenAI `finish_reason: "length"`, HTTP 413):
    /// send it again in smaller halves.
    #[error("translator answer cut short: batch too large")]
    TooLarge,
    /// The answer is not the service's protocol, or not one text per input (unparseable
    /// JSON, missing numbers): the batch is retried, halved.
    #[error("unreadable translator answer: {0}")]
    Parse(String),
    /// 5xx, timeout, connection refused: try again later.
    #[error("translator unavailable: {0}")]
    Unavailable(String),
    /// The service refused our key, or the key belongs to another host (DeepL Free vs
    /// Pro): nothing helps until the configuration changes; the message says what to fix.
    #[error("translator refused the credentials: {0}")]
    Auth(String),
    /// Unsupported language pair, bad request: retrying will not help.
    #[error("translator error: {0}")]
    Permanent(String),
}

/// How much one request to a service may carry; the Translator sizes its batches to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslationLimits {
    /// Most texts per request (DeepL: 50).
    pub max_texts: usize,
    /// Most bytes of text (the sum of the texts' UTF-8 lengths) per request (DeepL: 128 KiB
    /// for the whole body, so a little less).
    pub max_bytes: usize,
    /// Cues of context the service wants before and after each batch (OpenAI-compatible
    /// chat models: a few; DeepL and LibreTranslate: 0).
    pub context: usize,
}

/// One request to a translation service: the texts to translate, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslationRequest {
    /// The cue texts, one per cue; a text may hold `\n` line breaks and inline tags
    /// (`<i>`, `<b>`, `<font …>`), which the service must keep.
    pub texts: Vec<String>,
    /// The source language.
    pub from: Language,
    /// The target language.
    pub to: Language,
    /// Texts of the cues just before the batch (context only, not translated).
    pub before: Vec<String>,
    /// Texts of the cues just after the batch (context only, not translated).
    pub after: Vec<String>,
}

/// A machine-translation service (DeepL, LibreTranslate, OpenAI-compatible).
pub trait TranslationService {
    /// Stable name (`deepl`), used in events, the cache key and budgets.
    fn name(&self) -> &str;
    /// What one request may carry.
    fn limits(&self) -> TranslationLimits;
    /// Translates `request.texts`, answering exactly one text per input, in order; an
    /// answer that cannot keep that promise is an error (`Parse`), never a guess.
    fn translate(
        &self,
        request: TranslationRequest,
    ) -> LocalBoxFuture<Result<Vec<String>, TranslateError>>;
}

/// Why a notification was not delivered; decides whether its job tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// 5xx, 429, timeout, connection refused: tried again with backoff, or after
    /// `retry_after` when the service said (capped by the job's longest wait).
    #[error("{reason}")]
    Retry {
        /// What went wrong, without secrets.
        reason: String,
        /// The service's own wait (Discord's `retry_after`, a `Retry-After` header).
        retry_after: Option<Duration>,
    },
    /// A refusal retrying will not change (bad token, bad request): the job fails now.
    #[error("{0}")]
    Permanent(String),
}

impl NotifyError {
    /// A retryable failure without a wait of the service's own.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// A notification target (Discord, ntfy, Plex, SMTP, …): delivers one message.
pub trait Notifier {
    /// Stable name, the `[notify.NAME]` section (`discord`).
    fn name(&self) -> &str;
    /// Delivers `notification` once. The caller bounds the time it may take.
    fn send(
        &self,
        notification: &crate::notify::Notification,
    ) -> LocalBoxFuture<Result<(), NotifyError>>;
}
