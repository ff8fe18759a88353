//! The download attempt of one job: skip what exists, search the providers that are not
//! cooling down, take the best candidate above the minimum score, validate it and write it
//! next to the video. When nothing exists in the wanted language but a subtitle in a
//! `translate_from` language sits next to the video, hand over to translation.

pub mod embedded;

use std::path::PathBuf;
use std::rc::Rc;

use serde_json::json;
use tracing::warn;

use crate::clients::{Candidate, LocalBoxFuture};
use crate::files::{Listing, sidecar_path, write_atomically};
use crate::job::{Job, Language};
use crate::normalize::normalize;
use crate::provenance::{Blacklist, content_hash};
use crate::refresh::refresh_after_write;
use crate::store::ProviderState;
use crate::worker::{Outcome, Work, WorkReport, WorkerContext};

/// The reason a job waits when no provider is configured.
pub const NO_PROVIDER_REASON: &str = "no subtitle provider enabled";
/// Added to the wait reason of a job whose machine translation a user rejected.
pub const TRANSLATION_REJECTED_REASON: &str = "; not machine-translated again: a translation \
     was rejected for this video (waiting for a human subtitle; choose one, or clear the job's \
     blacklist to translate again)";

pub(crate) mod search;

pub(crate) use search::cooldown_of;
pub use search::{
    AUTH_COOLDOWN, DEFAULT_QUOTA_COOLDOWN, DEFAULT_RATE_LIMIT_COOLDOWN, PARSE_COOLDOWN,
    UNAVAILABLE_AFTER, UNAVAILABLE_COOLDOWN, UNAVAILABLE_MAX_COOLDOWN, unavailable_cooldown,
};

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

/// A candidate written next to the video.
pub(crate) struct WrittenCandidate {
    pub(crate) path: PathBuf,
    /// Format, encoding, archive entry, cues, whether a file was replaced.
    pub(crate) detail: serde_json::Value,
}

/// Normalises downloaded bytes (archive, encoding, format; see [`crate::normalize`]) and
/// writes them next to the video as `<stem>.<lang>[.forced|.sdh].<srt|ass|ssa>`. An
/// unusable download is an error naming the reason, so the next candidate is tried.
pub(crate) async fn write_candidate(
    job: &Job,
    candidate: &Candidate,
    bytes: Vec<u8>,
    context: &WorkerContext,
    blacklist: &Blacklist,
) -> Result<WrittenCandidate, String> {
    let blacklist = blacklist.clone();
    let (video, language, libraries) = (
        job.path.clone(),
        job.language.clone(),
        context.libraries.clone(),
    );
    let (forced, sdh) = (candidate.forced, candidate.hearing_impaired);
    let provider = candidate.provider.clone();
    tokio::task::spawn_blocking(move || {
        let normalized = normalize(&bytes, &video, &language)
            .map_err(|e| format!("{provider} sent an unusable subtitle: {e}"))?;
        let content_hash = content_hash(normalized.text.as_bytes());
        if blacklist.has_content(&content_hash) {
            return Err(format!(
                "{provider} sent a subtitle rejected for this video, or one already written \
                 (same content)"
            ));
        }
        let target = sidecar_path(
            &video,
            &language,
            forced,
            sdh,
            normalized.output.extension(),
        );
        let replaced = write_atomically(&target, normalized.text.as_bytes(), &libraries)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(WrittenCandidate {
            detail: json!({
                "format": normalized.output,
                "received": normalized.input,
                "encoding": normalized.encoding,
                "archive_entry": normalized.archive_entry,
                "cues": normalized.cues,
                "replaced": replaced,
                "content_hash": content_hash,
            }),
            path: target,
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs one download attempt for `job`, reporting the cooldowns it ran into.
pub async fn download(job: Job, context: Rc<WorkerContext>) -> WorkReport {
    let mut provider_updates = Vec::new();
    let outcome = attempt(&job, &context, &mut provider_updates).await;
    let events = match &outcome {
        Outcome::Written { path, detail, .. } => {
            let replaced = detail["written"]["replaced"].as_bool().unwrap_or(false);
            refresh_after_write(&job, path, replaced, &context).await
        }
        _ => Vec::new(),
    };
    WorkReport {
        outcome,
        provider_updates,
        events,
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
    // A subtitle the Translator wrote ranks below any human one: search on, and keep it
    // only if nothing is found.
    let machine = machine_translation(&existing, context).await;
    if machine.is_none()
        && let Some(path) = existing.into_iter().next()
    {
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
    // A translation starts from the sidecar found; without one, the Translator asks the
    // providers and the embedded tracks for a `translate_from` language (the video itself
    // is then its `translation_source`).
    let first_from = context
        .translate_from
        .iter()
        .find(|l| **l != job.language)
        .cloned();
    let mut can_translate = machine.is_none()
        && context.translator.is_some()
        && job.auto_translate
        && (translation_source.is_some() || first_from.is_some());
    // A machine translation a user rejected for this video and language is not made
    // again: the job waits for a human subtitle (or the user's choice).
    let refused = can_translate
        && search::blacklist_of(job, context)
            .await
            .refuses_translation(&job.language);
    if refused {
        can_translate = false;
    }
    let waits_for_a_human = |outcome: Outcome| match outcome {
        Outcome::NothingFound {
            mut reason,
            retry_after,
        } if refused => {
            reason.push_str(TRANSLATION_REJECTED_REASON);
            Outcome::NothingFound {
                reason,
                retry_after,
            }
        }
        other => other,
    };
    let translate = || {
        translation_source
            .clone()
            .or_else(|| first_from.clone().map(|from| (job.path.clone(), from)))
            .map(|(source, from)| Outcome::NeedsTranslation { source, from })
    };
    if context.providers.is_empty() {
        if can_translate && let Some(outcome) = translate() {
            return outcome;
        }
        if let Some(path) = machine {
            return Outcome::AlreadyExists { path };
        }
        return waits_for_a_human(Outcome::NothingFound {
            reason: NO_PROVIDER_REASON.to_owned(),
            retry_after: None,
        });
    }

    let outcome = waits_for_a_human(
        search::search_and_write(job, context, provider_updates, can_translate, translate).await,
    );
    match (outcome, machine) {
        (outcome @ Outcome::Written { .. }, _) | (outcome, None) => outcome,
        (_, Some(path)) => Outcome::AlreadyExists { path },
    }
}

/// The first of `existing` that is a machine translation the Translator wrote and nobody
/// changed since, when every one of them is: a human subtitle found later replaces it.
async fn machine_translation(existing: &[PathBuf], context: &WorkerContext) -> Option<PathBuf> {
    let store = context.store.clone()?;
    if existing.is_empty() {
        return None;
    }
    let existing = existing.to_vec();
    tokio::task::spawn_blocking(move || {
        let ours = |path: &PathBuf| {
            let record = store.machine_translated(path).ok().flatten()?;
            let metadata = std::fs::metadata(path).ok()?;
            record.matches(&metadata).then_some(())
        };
        existing
            .iter()
            .all(|p| ours(p).is_some())
            .then(|| existing[0].clone())
    })
    .await
    .ok()
    .flatten()
}
