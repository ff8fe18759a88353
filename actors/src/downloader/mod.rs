//! The download attempt of one job: skip what exists, search the providers that are not
//! cooling down, take the best candidate above the minimum score, validate it and write it
//! next to the video. When nothing exists in the wanted language but a subtitle in a
//! `translate_from` language sits next to the video, hand over to translation.

pub mod embedded;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use tracing::{info, warn};

use crate::clients::{Candidate, LocalBoxFuture, ProviderError, SubtitleQuery};
use crate::files::{Listing, subtitle_path, write_atomically};
use crate::job::{Job, Language};
use crate::library::Libraries;
use crate::store::ProviderState;
use crate::subtitle::{parse_srt, write_srt};
use crate::time::now_ms;
use crate::worker::{Outcome, Work, WorkReport, WorkerContext};

/// The reason a job waits when no provider is configured.
pub const NO_PROVIDER_REASON: &str = "no subtitle provider enabled";

/// Cooldown after a 429 without `Retry-After`.
pub const DEFAULT_RATE_LIMIT_COOLDOWN: Duration = Duration::from_secs(60);
/// Cooldown after an exhausted quota with no reset time.
pub const DEFAULT_QUOTA_COOLDOWN: Duration = Duration::from_secs(6 * 3600);

/// Searches providers and writes the subtitle of one job (a [`Work`] run by the
/// [`Worker`](crate::worker::Worker) shell).
#[derive(Debug, Clone, Copy, Default)]
pub struct Downloader;

impl Work for Downloader {
    fn run(job: Job, context: Rc<WorkerContext>) -> LocalBoxFuture<WorkReport> {
        Box::pin(download(job, context))
    }
}

/// How hearing-impaired subtitles are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HearingImpaired {
    /// Rank them first.
    Prefer,
    /// Rank them last.
    #[default]
    PreferNot,
    /// Take nothing else.
    Only,
}

fn rank(candidate: &Candidate, preference: HearingImpaired) -> i64 {
    let bonus = match (preference, candidate.hearing_impaired) {
        (HearingImpaired::Prefer, true) | (HearingImpaired::PreferNot, false) => 1,
        _ => 0,
    };
    i64::from(candidate.score) * 2 + bonus
}

type Sidecars = (Vec<PathBuf>, Option<(PathBuf, Language)>);

/// Why the folder of a video could not be looked at.
enum LookError {
    /// The video is not there (deleted, or its share is not mounted).
    Missing,
    /// Anything else: retryable.
    Other(String),
}

fn look_next_to_video(
    video: PathBuf,
    wanted: Language,
    sources: Vec<Language>,
) -> Result<Sidecars, LookError> {
    match std::fs::metadata(&video) {
        Ok(meta) if meta.is_file() => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(LookError::Missing),
        Ok(_) => {
            return Err(LookError::Other(format!(
                "video is not a file: {}",
                video.display()
            )));
        }
        Err(err) => {
            return Err(LookError::Other(format!(
                "cannot read video {}: {err}",
                video.display()
            )));
        }
    }
    // One listing of the folder answers for every language.
    let (Some(dir), Some(name)) = (video.parent(), video.file_name().and_then(|n| n.to_str()))
    else {
        return Ok((Vec::new(), None));
    };
    let listing = Listing::read(dir)
        .map_err(|e| LookError::Other(format!("cannot list {}: {e}", dir.display())))?;
    let sidecars = |language: &Language| {
        let mut found: Vec<PathBuf> = listing
            .sidecars_in(name, language)
            .map(|sidecar| dir.join(sidecar))
            .collect();
        found.sort();
        found
    };
    let existing = sidecars(&wanted);
    for language in sources.into_iter().filter(|l| *l != wanted) {
        if let Some(path) = sidecars(&language)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("srt")))
        {
            return Ok((existing, Some((path, language))));
        }
    }
    Ok((existing, None))
}

/// Validates downloaded bytes as SRT and writes them next to the video.
async fn write_subtitle(
    job: &Job,
    candidate: &Candidate,
    bytes: Vec<u8>,
    libraries: Libraries,
) -> Result<PathBuf, String> {
    let cues = parse_srt(&bytes)
        .map_err(|e| format!("{} sent an unusable subtitle: {e}", candidate.provider))?;
    let target = subtitle_path(
        &job.path,
        &job.language,
        candidate.forced,
        candidate.hearing_impaired,
    );
    let text = write_srt(&cues);
    let path = target.clone();
    tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes(), &libraries))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(target)
}

/// Runs one download attempt for `job`, reporting the cooldowns it ran into.
pub async fn download(job: Job, context: Rc<WorkerContext>) -> WorkReport {
    let mut provider_updates = Vec::new();
    let outcome = attempt(&job, &context, &mut provider_updates).await;
    WorkReport {
        outcome,
        provider_updates,
    }
}

async fn attempt(
    job: &Job,
    context: &WorkerContext,
    provider_updates: &mut Vec<ProviderState>,
) -> Outcome {
    let (video, wanted) = (job.path.clone(), job.language.clone());
    let sources = if job.auto_translate {
        context.translate_from.clone()
    } else {
        Vec::new()
    };
    let looked =
        tokio::task::spawn_blocking(move || look_next_to_video(video, wanted, sources)).await;
    let (existing, translation_source) = match looked {
        Ok(Ok(found)) => found,
        Ok(Err(LookError::Missing)) => {
            return Outcome::VideoMissing {
                path: job.path.clone(),
            };
        }
        Ok(Err(LookError::Other(error))) => {
            return Outcome::Failed {
                error,
                retryable: true,
            };
        }
        Err(err) => {
            return Outcome::Failed {
                error: err.to_string(),
                retryable: true,
            };
        }
    };
    if let Some(path) = existing.into_iter().next() {
        return Outcome::AlreadyExists { path };
    }
    if let Some(ffprobe) = context.ffprobe.clone() {
        let video = job.path.clone();
        let probed = tokio::task::spawn_blocking(move || {
            embedded::probe(&ffprobe, &video, embedded::PROBE_TIMEOUT)
        })
        .await;
        match probed {
            Ok(Ok(streams)) => {
                if let Some(track) = embedded::track_for(&streams, &job.language) {
                    return Outcome::AlreadyEmbedded { track };
                }
            }
            Ok(Err(error)) => {
                warn!(job = %job.id, %error, "cannot read the embedded subtitle tracks; going on without them")
            }
            Err(error) => warn!(job = %job.id, %error, "the ffprobe thread did not run"),
        }
    }
    let can_translate = context.translator.is_some() && translation_source.is_some();
    let translate = || {
        translation_source
            .clone()
            .map(|(source, from)| Outcome::NeedsTranslation { source, from })
    };
    if context.providers.is_empty() {
        if can_translate && let Some(outcome) = translate() {
            return outcome;
        }
        return Outcome::NothingFound {
            reason: NO_PROVIDER_REASON.to_owned(),
            retry_after: None,
        };
    }

    let query = SubtitleQuery {
        video: job.path.clone(),
        language: job.language.clone(),
        jellyfin_item_id: job.jellyfin_item_id.clone(),
    };
    let now = now_ms();
    let mut candidates = Vec::new();
    let mut errors = Vec::new();
    let mut earliest_cooldown_end: Option<i64> = None;
    let mut searched = Vec::new();
    for provider in &context.providers {
        let name = provider.name().to_owned();
        if let Some(until) = context.provider_states.cooling_until(&name, now) {
            earliest_cooldown_end = Some(earliest_cooldown_end.map_or(until, |e| e.min(until)));
            continue;
        }
        searched.push(name.clone());
        match provider.search(&query).await {
            Ok(found) => candidates.extend(found.into_iter().map(|c| (provider.clone(), c))),
            Err(err) => {
                provider_updates.extend(provider_update(&name, &err, now));
                errors.push((name, err));
            }
        }
    }
    candidates.retain(|(_, c)| c.language == job.language && c.score >= context.min_score);
    if context.hearing_impaired == HearingImpaired::Only {
        candidates.retain(|(_, c)| c.hearing_impaired);
    }
    candidates.sort_by_key(|(_, c)| std::cmp::Reverse(rank(c, context.hearing_impaired)));
    for (provider, candidate) in &candidates {
        match provider.download(candidate).await {
            Ok(bytes) => {
                match write_subtitle(job, candidate, bytes, context.libraries.clone()).await {
                    Ok(path) => {
                        info!(job_id = %job.id, provider = %candidate.provider, path = %path.display(), "subtitle written");
                        return Outcome::Written {
                            path,
                            producer: candidate.provider.clone(),
                            detail: json!({"score": candidate.score, "release": candidate.release, "id": candidate.id, "hearing_impaired": candidate.hearing_impaired, "forced": candidate.forced}),
                        };
                    }
                    Err(error) => {
                        errors.push((candidate.provider.clone(), ProviderError::Permanent(error)))
                    }
                }
            }
            Err(err) => {
                provider_updates.extend(provider_update(&candidate.provider, &err, now_ms()));
                errors.push((candidate.provider.clone(), err));
            }
        }
    }
    if can_translate && let Some(outcome) = translate() {
        return outcome;
    }
    if searched.is_empty() {
        let wait = earliest_cooldown_end
            .map(|end| Duration::from_millis(u64::try_from(end - now).unwrap_or(0)));
        return Outcome::NothingFound {
            reason: "every subtitle provider is cooling down".to_owned(),
            retry_after: wait,
        };
    }
    let all_failed = errors.len() >= searched.len() && candidates.is_empty();
    let summary = errors
        .iter()
        .map(|(name, err)| format!("{name}: {err}"))
        .collect::<Vec<_>>()
        .join("; ");
    if all_failed && !errors.is_empty() {
        let retryable = errors
            .iter()
            .any(|(_, e)| !matches!(e, ProviderError::Permanent(_)));
        return Outcome::Failed {
            error: summary,
            retryable,
        };
    }
    let mut reason = format!(
        "no {} subtitle found (searched {})",
        job.language,
        searched.join(", ")
    );
    if !summary.is_empty() {
        reason.push_str(&format!("; errors: {summary}"));
    }
    Outcome::NothingFound {
        reason,
        retry_after: None,
    }
}

/// What a provider error says about the provider: a cooldown, for the JobManager to record.
fn provider_update(provider: &str, err: &ProviderError, now: i64) -> Option<ProviderState> {
    let (wait, reason) = match err {
        ProviderError::RateLimited { retry_after } => (
            retry_after.unwrap_or(DEFAULT_RATE_LIMIT_COOLDOWN),
            "rate limited",
        ),
        ProviderError::QuotaExhausted { resets_in } => (
            resets_in.unwrap_or(DEFAULT_QUOTA_COOLDOWN),
            "quota exhausted",
        ),
        ProviderError::Unavailable(_) | ProviderError::Permanent(_) => {
            warn!(provider, error = %err, "provider call failed");
            return None;
        }
    };
    warn!(
        provider,
        seconds = wait.as_secs(),
        reason,
        "provider cooling down"
    );
    let until = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
    let mut state = ProviderState::cooling_down(provider, until, reason);
    if matches!(err, ProviderError::QuotaExhausted { .. }) {
        state.quota_remaining = Some(0);
        state.quota_resets_at_ms = Some(until);
    }
    Some(state)
}
