//! Which subtitle a translation starts from: the best one in a `translate_from` language.
//!
//! In order: the sidecar the Downloader found next to the video (read through
//! [`normalize`], so a legacy encoding is fine); else a candidate a provider offers in a
//! `translate_from` language (the best above `min_score`, downloaded and normalised in
//! memory, never written); else an embedded **text** track, extracted with `ffmpeg` when
//! `ffprobe` and `ffmpeg` are installed (a bitmap track, PGS or VobSub, is skipped with the
//! reason). The Downloader hands the job over with its sidecar, or with the video itself as
//! `translation_source` when there is none: then the providers and the embedded tracks are
//! asked here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::warn;

use crate::clients::SubtitleQuery;
use crate::downloader::embedded;
use crate::job::{Job, Language};
use crate::normalize::{OutputFormat, normalize};
use crate::scoring::{Preferences, VideoFacts, score};
use crate::subtitle::{Cue, parse_srt};
use crate::time::now_ms;
use crate::worker::WorkerContext;

/// How long one `ffmpeg` extraction may take.
pub const EXTRACT_TIMEOUT: Duration = Duration::from_secs(120);

/// Bitmap subtitle codecs, as ffprobe names them: they cannot be read as text.
const BITMAP_CODECS: [&str; 4] = ["hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle", "xsub"];

/// The subtitle translated from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its cues.
    pub cues: Vec<Cue>,
    /// Its language.
    pub from: Language,
    /// What it is, for the job's events: `{"kind": "sidecar" | "provider" | "embedded", …}`.
    pub described: Value,
}

/// `ffmpeg` next to `ffprobe` or on `PATH`, if there is one (blocking; call once at start).
pub fn find_ffmpeg(ffprobe: Option<&Path>) -> Option<PathBuf> {
    let beside = ffprobe.and_then(Path::parent).map(|dir| dir.join("ffmpeg"));
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("ffmpeg"))
            .find(|p| p.is_file())
    });
    beside.filter(|p| p.is_file()).or(on_path)
}

fn cues_of(bytes: &[u8], video: &Path, language: &Language) -> Result<Vec<Cue>, String> {
    let normalized = normalize(bytes, video, language).map_err(|e| e.to_string())?;
    if normalized.output != OutputFormat::Srt {
        return Err(format!(
            "a {} subtitle (only SRT and WebVTT are translated)",
            normalized.output.extension()
        ));
    }
    parse_srt(normalized.text.as_bytes()).map_err(|e| e.to_string())
}

/// The languages a translation for `job` may start from.
pub fn from_languages(job: &Job, context: &WorkerContext) -> Vec<Language> {
    context
        .translate_from
        .iter()
        .filter(|l| **l != job.language)
        .cloned()
        .collect()
}

/// Finds the source of `job`'s translation; `Err` says why there is none (the job waits).
pub async fn find(job: &Job, context: &WorkerContext) -> Result<Source, String> {
    let mut tried: Vec<String> = Vec::new();
    if let (Some(path), Some(from)) = (&job.translation_source, &job.translation_from)
        && *path != job.path
    {
        let (file, video, language) = (path.clone(), job.path.clone(), from.clone());
        let read = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&file).map_err(|e| format!("cannot read it: {e}"))?;
            cues_of(&bytes, &video, &language)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match read {
            Ok(cues) => {
                return Ok(Source {
                    cues,
                    from: from.clone(),
                    described: json!({"kind": "sidecar", "path": path}),
                });
            }
            Err(error) => tried.push(format!("sidecar {}: {error}", path.display())),
        }
    }
    let languages = from_languages(job, context);
    if let Some(source) = kept(job, context).await {
        return Ok(source);
    }
    if let Some(source) = from_provider(job, context, &languages, &mut tried).await {
        keep(job, context, &source).await;
        return Ok(source);
    }
    if let Some(source) = from_embedded(job, context, &languages, &mut tried).await {
        return Ok(source);
    }
    let names: Vec<&str> = languages.iter().map(Language::as_str).collect();
    let mut reason = format!(
        "no subtitle to translate from in {} (sidecar, providers, embedded tracks)",
        names.join(", ")
    );
    if !tried.is_empty() {
        reason.push_str(&format!(": {}", tried.join("; ")));
    }
    Err(reason)
}

/// The `state` key under which a downloaded source is kept until its job is done, so an
/// attempt after a pause (quota, budget, a long film) does not download it again.
pub fn kept_key(job: &Job) -> String {
    crate::store::translation_source_key(job.id)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    from: Language,
    described: Value,
    srt: String,
}

async fn kept(job: &Job, context: &WorkerContext) -> Option<Source> {
    let store = context.store.clone()?;
    let key = kept_key(job);
    let kept = tokio::task::spawn_blocking(move || store.state_as::<Kept>(&key))
        .await
        .ok()?
        .ok()??;
    let cues = parse_srt(kept.srt.as_bytes()).ok()?;
    Some(Source {
        cues,
        from: kept.from,
        described: kept.described,
    })
}

async fn keep(job: &Job, context: &WorkerContext, source: &Source) {
    let Some(store) = &context.store else { return };
    let kept = Kept {
        from: source.from.clone(),
        described: source.described.clone(),
        srt: crate::subtitle::write_srt(&source.cues),
    };
    let change = crate::store::Change::PutState {
        key: kept_key(job),
        value: serde_json::to_value(kept).unwrap_or_default(),
    };
    if let Err(error) = store.submit(vec![change]).await {
        warn!(job_id = %job.id, %error, "cannot keep the downloaded source subtitle");
    }
}

async fn from_provider(
    job: &Job,
    context: &WorkerContext,
    languages: &[Language],
    tried: &mut Vec<String>,
) -> Option<Source> {
    if context.providers.is_empty() {
        return None;
    }
    let video = job.path.clone();
    let movie_hash = tokio::task::spawn_blocking(move || crate::hash::movie_hash(&video))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let facts = VideoFacts::from_path(&job.path);
    let preferences = Preferences {
        hearing_impaired: context.hearing_impaired,
    };
    let now = now_ms();
    for language in languages {
        let query = SubtitleQuery {
            video: job.path.clone(),
            language: language.clone(),
            jellyfin_item_id: job.jellyfin_item_id.clone(),
            facts: facts.clone(),
            movie_hash: movie_hash.clone(),
        };
        let mut ranked = Vec::new();
        for provider in &context.providers {
            let state = context.provider_state(provider.name());
            if crate::downloader::cooldown_of(state.as_ref(), provider.as_ref(), now).is_some() {
                continue;
            }
            if let Some(state) = &state {
                provider.restore(state);
            }
            match provider.search(&query).await {
                Ok(found) => ranked.extend(
                    found
                        .into_iter()
                        .filter(|c| c.language == *language)
                        .map(|c| {
                            let scored = score(&facts, movie_hash.is_some(), &c, preferences);
                            (provider.clone(), c, scored)
                        })
                        .filter(|(_, _, s)| s.rejected.is_none() && s.score >= context.min_score),
                ),
                Err(error) => tried.push(format!("{}: {error}", provider.name())),
            }
        }
        ranked.sort_by_key(|r| std::cmp::Reverse(r.2.score));
        for (provider, candidate, scored) in ranked {
            let bytes = match provider.download(&candidate).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    tried.push(format!("{}: {error}", provider.name()));
                    continue;
                }
            };
            let (video, lang) = (job.path.clone(), language.clone());
            let read = tokio::task::spawn_blocking(move || cues_of(&bytes, &video, &lang))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            match read {
                Ok(cues) => {
                    return Some(Source {
                        cues,
                        from: language.clone(),
                        described: json!({
                            "kind": "provider",
                            "provider": candidate.provider,
                            "id": candidate.id,
                            "release": candidate.release,
                            "score": scored.score,
                        }),
                    });
                }
                Err(error) => tried.push(format!(
                    "{} candidate {}: {error}",
                    candidate.provider, candidate.id
                )),
            }
        }
    }
    None
}

async fn from_embedded(
    job: &Job,
    context: &WorkerContext,
    languages: &[Language],
    tried: &mut Vec<String>,
) -> Option<Source> {
    let (ffprobe, ffmpeg) = (context.ffprobe.clone()?, context.ffmpeg.clone()?);
    let video = job.path.clone();
    let streams = tokio::task::spawn_blocking(move || {
        embedded::probe(&ffprobe, &video, embedded::PROBE_TIMEOUT)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let streams = match streams {
        Ok(streams) => streams,
        Err(error) => {
            tried.push(format!("embedded tracks: {error}"));
            return None;
        }
    };
    for language in languages {
        let of_language = streams.iter().filter(|s| {
            s.disposition.forced == 0
                && s.tags
                    .language
                    .as_deref()
                    .and_then(|t| Language::parse(t).ok())
                    .is_some_and(|l| l == *language)
        });
        for stream in of_language {
            let codec = stream
                .codec_name
                .as_deref()
                .unwrap_or("?")
                .to_ascii_lowercase();
            let track = format!("subtitle track {} ({codec}, {language})", stream.index);
            if BITMAP_CODECS.contains(&codec.as_str()) {
                tried.push(format!("{track} is image-based: it cannot be read as text"));
                continue;
            }
            let (ffmpeg, video, index) = (ffmpeg.clone(), job.path.clone(), stream.index);
            let lang = language.clone();
            let extracted = tokio::task::spawn_blocking(move || {
                let bytes = extract(&ffmpeg, &video, index, EXTRACT_TIMEOUT)?;
                cues_of(&bytes, &video, &lang)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match extracted {
                Ok(cues) => {
                    return Some(Source {
                        cues,
                        from: language.clone(),
                        described: json!({"kind": "embedded", "track": track}),
                    });
                }
                Err(error) => {
                    warn!(job_id = %job.id, %track, %error, "cannot extract an embedded track");
                    tried.push(format!("{track}: {error}"));
                }
            }
        }
    }
    None
}

/// Extracts stream `index` of `video` as SRT with `ffmpeg` (blocking); killed after
/// `timeout`.
pub fn extract(
    ffmpeg: &Path,
    video: &Path,
    index: u32,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let mut command = Command::new(ffmpeg);
    command
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(video)
        .args(["-map", &format!("0:{index}"), "-f", "srt", "-"]);
    embedded::run_tool(command, "ffmpeg", timeout, 64 * 1024 * 1024)
}
