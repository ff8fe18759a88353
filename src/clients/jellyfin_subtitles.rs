//! `[providers.jellyfin]`: the subtitle plugins a user already configured in Jellyfin
//! (OpenSubtitles, Subdl, …), as a cuewarden provider.
//!
//! Search: `GET /Items/{id}/RemoteSearch/Subtitles/{lang}` with the ISO 639-2/B code
//! (`fre`, `ger`, `pob` for Brazilian Portuguese), the item id from the job or looked up by
//! the video's path. Download: `GET /Providers/Subtitles/Subtitles/{subtitleId}`, which
//! answers the subtitle's bytes without Jellyfin writing anything; cuewarden then
//! normalises and writes the file by its own rules (name, atomic write, library roots)
//! and refreshes the item. `POST /Items/{id}/RemoteSearch/Subtitles/{subtitleId}` is not
//! used: it makes Jellyfin write the file itself (into its metadata folder unless the
//! library saves subtitles with the media), answers 204 even when that failed, and would
//! leave two copies once cuewarden writes its own.

use cuewarden_actors::Language;
use cuewarden_actors::clients::{
    Candidate, CandidateMeta, LocalBoxFuture, ProviderError, SubtitleProvider, SubtitleQuery,
};

use super::jellyfin::{JellyfinClient, JellyfinError, RemoteSubtitle};

/// The provider's name in events, cooldowns and `/health/sources`.
pub const NAME: &str = "jellyfin";

/// Formats cuewarden can normalise (others, such as `sub`/`sup` images, are skipped).
const READABLE_FORMATS: [&str; 4] = ["srt", "vtt", "ass", "ssa"];

/// Jellyfin's remote subtitle search as a [`SubtitleProvider`].
pub struct JellyfinSubtitles {
    client: JellyfinClient,
}

impl JellyfinSubtitles {
    /// A provider asking the Jellyfin server behind `client`.
    pub fn new(client: JellyfinClient) -> Self {
        Self { client }
    }
}

/// The three-letter code Jellyfin's plugins are asked with.
pub fn jellyfin_language(language: &Language) -> String {
    match language.as_str() {
        "pt-BR" => "pob".to_owned(),
        _ => language.iso639_2b().to_owned(),
    }
}

/// A score for what Jellyfin tells of a result: a hash match is as good as it gets; a
/// plain match passes the default `min_score` (60); machine or AI translation does not.
pub fn score(result: &RemoteSubtitle) -> u32 {
    if result.machine_translated == Some(true) || result.ai_translated == Some(true) {
        40
    } else if result.is_hash_match == Some(true) {
        100
    } else {
        70
    }
}

fn provider_error(err: JellyfinError) -> ProviderError {
    match err {
        JellyfinError::Status(429) => ProviderError::RateLimited { retry_after: None },
        err if err.is_transient() => ProviderError::Unavailable(err.to_string()),
        err => ProviderError::Permanent(err.to_string()),
    }
}

impl SubtitleProvider for JellyfinSubtitles {
    fn name(&self) -> &str {
        NAME
    }

    fn search(
        &self,
        query: &SubtitleQuery,
    ) -> LocalBoxFuture<Result<Vec<Candidate>, ProviderError>> {
        let (client, query) = (self.client.clone(), query.clone());
        Box::pin(async move {
            let item_id = match query.jellyfin_item_id.clone() {
                Some(id) => Some(id),
                None => client
                    .item_id_for(&query.video)
                    .await
                    .map_err(provider_error)?,
            };
            // Not in Jellyfin's library yet: nothing to offer now; the job looks again.
            let Some(item_id) = item_id else {
                return Ok(Vec::new());
            };
            let results = match client
                .remote_search(&item_id, &jellyfin_language(&query.language))
                .await
            {
                Err(JellyfinError::UnknownItem(_)) => return Ok(Vec::new()),
                other => other.map_err(provider_error)?,
            };
            Ok(results
                .into_iter()
                .filter(|r| {
                    r.format
                        .as_deref()
                        .is_none_or(|f| READABLE_FORMATS.contains(&f.to_ascii_lowercase().as_str()))
                })
                .map(|r| Candidate {
                    provider: NAME.to_owned(),
                    score: score(&r),
                    hearing_impaired: r.hearing_impaired.unwrap_or(false),
                    forced: r.forced.unwrap_or(false),
                    release: match (&r.provider_name, &r.name) {
                        (Some(plugin), Some(name)) => format!("{name} ({plugin})"),
                        (None, Some(name)) => name.clone(),
                        (Some(plugin), None) => plugin.clone(),
                        (None, None) => String::new(),
                    },
                    meta: CandidateMeta {
                        hash_match: r.is_hash_match == Some(true),
                        machine_translated: r.machine_translated == Some(true),
                        ai_translated: r.ai_translated == Some(true),
                        downloads: r
                            .download_count
                            .and_then(|n| u64::try_from(n).ok())
                            .unwrap_or(0),
                        ..CandidateMeta::default()
                    },
                    id: r.id,
                    language: query.language.clone(),
                })
                .collect())
        })
    }

    fn download(&self, candidate: &Candidate) -> LocalBoxFuture<Result<Vec<u8>, ProviderError>> {
        let (client, id) = (self.client.clone(), candidate.id.clone());
        Box::pin(async move { client.remote_subtitle(&id).await.map_err(provider_error) })
    }
}
