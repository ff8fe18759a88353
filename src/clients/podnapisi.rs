//! Podnapisi (podnapisi.net), behind the core's [`SubtitleProvider`]. No account.
//!
//! - Search: `GET {base_url}/subtitles/search/advanced` with `Accept: application/json`
//!   (without it the site answers HTML): `keywords` (the title), `language` (`en`, `pt-BR`),
//!   `year`, and `movie_type=movie`, or for an episode `seasons`, `episodes` and
//!   `movie_type=tv-series&movie_type=mini-series` (the key repeated). Up to
//!   [`MAX_PAGES`] pages are read (`page`, `all_pages`); results repeated across pages are
//!   taken once (by `id`).
//! - A subtitle split over several CDs (`num_cds` > 1) is skipped: the video is one file.
//! - Download: `GET {base_url}/subtitles/{id}/download?container=zip`, a ZIP.
//! - 429 = rate limited; 5xx and timeouts = unavailable; an answer that is not the JSON
//!   (`status` other than `ok`, an HTML page) = unreadable.

use std::collections::HashSet;
use std::rc::Rc;

use cuewarden_actors::Language;
use cuewarden_actors::clients::{
    Candidate, CandidateMeta, LocalBoxFuture, ProviderError, SubtitleProvider, SubtitleQuery,
};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::provider_http::{self, ProviderHttp};
use crate::config::EndpointSettings;

/// The provider's name in events, cooldowns and `/health/sources`.
pub const NAME: &str = "podnapisi";

/// Most result pages read per search.
pub const MAX_PAGES: u32 = 3;

#[derive(Deserialize)]
struct SearchAnswer {
    status: Option<String>,
    #[serde(default)]
    page: Option<u32>,
    #[serde(default)]
    all_pages: Option<u32>,
    #[serde(default)]
    data: Vec<Item>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Item {
    id: Option<String>,
    language: Option<String>,
    flags: Value,
    releases: Vec<String>,
    custom_releases: Vec<String>,
    num_cds: Option<u32>,
    stats: Value,
    movie: Movie,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Movie {
    title: Option<String>,
    year: Option<u16>,
    episode_info: Option<EpisodeInfo>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EpisodeInfo {
    season: Option<u32>,
    episode: Option<u32>,
}

/// The Podnapisi client (cheap to clone; clones share the rate limit).
#[derive(Clone)]
pub struct Podnapisi(Rc<Inner>);

struct Inner {
    http: ProviderHttp,
    base: Url,
}

/// Podnapisi's language code for ours (`en`, `pt-BR`).
pub fn language_code(language: &Language) -> String {
    match language.region() {
        Some(region) if region.chars().all(|c| c.is_ascii_alphabetic()) => {
            format!("{}-{region}", language.base())
        }
        _ => language.base().to_owned(),
    }
}

/// The search's query string for `page`.
pub fn search_parameters(query: &SubtitleQuery, page: u32) -> String {
    let facts = &query.facts;
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    if let Some(title) = &facts.release.title {
        out.append_pair("keywords", title);
    }
    out.append_pair("language", &language_code(&query.language));
    if let Some(year) = facts.release.year.filter(|_| !facts.is_episode()) {
        out.append_pair("year", &year.to_string());
    }
    if facts.is_episode() {
        if let Some(season) = facts.release.season {
            out.append_pair("seasons", &season.to_string());
        }
        if let Some(episode) = facts.release.episode {
            out.append_pair("episodes", &episode.to_string());
        }
        out.append_pair("movie_type", "tv-series");
        out.append_pair("movie_type", "mini-series");
    } else {
        out.append_pair("movie_type", "movie");
    }
    if page > 1 {
        out.append_pair("page", &page.to_string());
    }
    out.finish()
}

impl Podnapisi {
    /// A client for the configured endpoint.
    pub fn new(settings: &EndpointSettings) -> reqwest::Result<Self> {
        let mut base = settings.base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self(Rc::new(Inner {
            http: ProviderHttp::new(settings)?,
            base,
        })))
    }
}

fn has_flag(flags: &Value, flag: &str) -> bool {
    match flags {
        Value::Array(items) => items.iter().any(|f| f.as_str() == Some(flag)),
        Value::Object(map) => map.get(flag).and_then(Value::as_bool).unwrap_or(false),
        _ => false,
    }
}

impl Inner {
    fn url(&self, path: &str) -> Result<Url, ProviderError> {
        self.base
            .join(path)
            .map_err(|e| ProviderError::Permanent(format!("bad base_url: {e}")))
    }

    async fn search(&self, query: SubtitleQuery) -> Result<Vec<Candidate>, ProviderError> {
        if query.facts.release.title.is_none() {
            return Ok(Vec::new());
        }
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        let mut page = 1;
        loop {
            let mut url = self.url("subtitles/search/advanced")?;
            url.set_query(Some(&search_parameters(&query, page)));
            let request = self
                .http
                .client
                .get(url)
                .header("Accept", "application/json");
            let response = self.http.send(request).await?;
            let status = response.status();
            if !status.is_success() {
                return Err(provider_http::status_error(
                    "Podnapisi",
                    status,
                    provider_http::retry_after(&response),
                ));
            }
            let text = provider_http::text(response).await?;
            let answer: SearchAnswer = provider_http::json("Podnapisi", "search", &text)?;
            if answer.status.as_deref() != Some("ok") {
                return Err(ProviderError::Parse(format!(
                    "Podnapisi search answered status {:?}",
                    answer.status.unwrap_or_default()
                )));
            }
            for item in answer.data {
                if let Some(id) = &item.id
                    && seen.insert(id.clone())
                    && let Some(candidate) = candidate(item, &query)
                {
                    found.push(candidate);
                }
            }
            let last = answer.all_pages.unwrap_or(1);
            let current = answer.page.unwrap_or(page);
            if current >= last || page >= MAX_PAGES {
                break;
            }
            page += 1;
        }
        Ok(found)
    }

    async fn download(&self, candidate: Candidate) -> Result<Vec<u8>, ProviderError> {
        if !candidate.id.chars().all(|c| c.is_ascii_alphanumeric()) || candidate.id.is_empty() {
            return Err(ProviderError::Permanent(format!(
                "bad Podnapisi id {:?}",
                candidate.id
            )));
        }
        let mut url = self.url(&format!("subtitles/{}/download", candidate.id))?;
        url.set_query(Some("container=zip"));
        let response = self.http.send(self.http.client.get(url)).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(provider_http::status_error(
                "Podnapisi",
                status,
                provider_http::retry_after(&response),
            ));
        }
        provider_http::download_bytes("Podnapisi", response).await
    }
}

/// A result as a candidate, unless it is for another language or on several CDs.
fn candidate(item: Item, query: &SubtitleQuery) -> Option<Candidate> {
    let id = item.id?;
    let wanted = language_code(&query.language);
    if item
        .language
        .as_deref()
        .is_some_and(|l| !l.eq_ignore_ascii_case(&wanted))
    {
        return None;
    }
    if item.num_cds.is_some_and(|n| n > 1) {
        return None;
    }
    let release = provider_http::best_release(
        item.releases
            .iter()
            .chain(item.custom_releases.iter())
            .map(String::as_str),
        &query.facts,
    )
    .unwrap_or_default();
    let episode = item.movie.episode_info.unwrap_or_default();
    Some(Candidate {
        provider: NAME.to_owned(),
        id,
        language: query.language.clone(),
        score: 0,
        hearing_impaired: has_flag(&item.flags, "hearing_impaired"),
        forced: false,
        release,
        meta: CandidateMeta {
            title: item.movie.title,
            year: item.movie.year,
            season: episode.season,
            episode: episode.episode,
            downloads: item.stats["downloads"].as_u64().unwrap_or(0),
            ..CandidateMeta::default()
        },
    })
}

impl SubtitleProvider for Podnapisi {
    fn name(&self) -> &str {
        NAME
    }

    fn search(
        &self,
        query: &SubtitleQuery,
    ) -> LocalBoxFuture<Result<Vec<Candidate>, ProviderError>> {
        let (inner, query) = (self.0.clone(), query.clone());
        Box::pin(async move { inner.search(query).await })
    }

    fn download(&self, candidate: &Candidate) -> LocalBoxFuture<Result<Vec<u8>, ProviderError>> {
        let (inner, candidate) = (self.0.clone(), candidate.clone());
        Box::pin(async move { inner.download(candidate).await })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use cuewarden_actors::scoring::VideoFacts;

    use super::*;

    fn query(path: &str, language: &str) -> SubtitleQuery {
        SubtitleQuery {
            video: path.into(),
            language: Language::parse(language).unwrap(),
            jellyfin_item_id: None,
            facts: VideoFacts::from_path(Path::new(path)),
            movie_hash: None,
        }
    }

    #[test]
    fn an_episode_search_repeats_the_movie_type() {
        let q = query(
            "/tv/Example Show (2010)/Season 02/Example Show S02E06.mkv",
            "pt-BR",
        );
        assert_eq!(
            search_parameters(&q, 2),
            "keywords=example+show&language=pt-BR&seasons=2&episodes=6\
             &movie_type=tv-series&movie_type=mini-series&page=2"
        );
        let q = query("/m/Example Movie (2019)/Example Movie (2019).mkv", "en");
        assert_eq!(
            search_parameters(&q, 1),
            "keywords=example+movie&language=en&year=2019&movie_type=movie"
        );
    }

    #[test]
    fn multi_cd_subtitles_and_other_languages_are_skipped() {
        let q = query("/m/Example Movie (2019)/Example Movie (2019).mkv", "en");
        let item = |cds, language: &str| Item {
            id: Some("GMso".to_owned()),
            language: Some(language.to_owned()),
            num_cds: Some(cds),
            flags: serde_json::json!(["hearing_impaired"]),
            ..Item::default()
        };
        let found = candidate(item(1, "en"), &q).unwrap();
        assert!(found.hearing_impaired);
        assert!(candidate(item(2, "en"), &q).is_none());
        assert!(candidate(item(1, "fr"), &q).is_none());
    }
}
