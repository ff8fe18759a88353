//! Subdl (subdl.com API v1), behind the core's [`SubtitleProvider`].
//!
//! - Search: `GET {base_url}/subtitles?api_key=…&languages=EN&type=movie|tv` with the
//!   video's IMDb (`tt…`) and TMDB ids (the show's for an episode), else `film_name` (and
//!   `year` for a movie), plus `season_number`/`episode_number`; `subs_per_page=30`,
//!   `releases=1` (every release name a subtitle fits), `hi=1` (the hearing-impaired flag).
//! - Errors come back as HTTP 200 with `{"status": false, "error": "…"}`: "can't find
//!   movie or tv" is an empty result, an error naming the API key is refused credentials,
//!   any other a permanent error for this search. 429 = rate limited; 401/403 = bad key.
//! - Downloads are ZIP archives at `{download_url}{url}` (`/subtitle/…zip`); a season pack
//!   is kept (normalisation picks the video's episode). 429, or an answer saying "Download
//!   limit exceeded" (Subdl sends it as a 500), is the daily limit: quota until midnight UTC.

use std::rc::Rc;

use cuewarden_actors::Language;
use cuewarden_actors::clients::{
    Candidate, CandidateMeta, LocalBoxFuture, ProviderError, SubtitleProvider, SubtitleQuery,
};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::provider_http::{self, ProviderHttp};
use crate::config::{Secret, SubdlSettings};

/// The provider's name in events, cooldowns and `/health/sources`.
pub const NAME: &str = "subdl";

#[derive(Deserialize)]
struct SearchAnswer {
    status: Option<bool>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    results: Vec<Value>,
    #[serde(default)]
    subtitles: Vec<SubdlSubtitle>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SubdlSubtitle {
    release_name: Option<String>,
    name: Option<String>,
    language: Option<String>,
    url: Option<String>,
    season: Option<u32>,
    episode: Option<u32>,
    episode_from: Option<u32>,
    episode_end: Option<u32>,
    full_season: Option<bool>,
    hi: Option<bool>,
    releases: Vec<String>,
}

/// The Subdl client (cheap to clone; clones share the rate limit).
#[derive(Clone)]
pub struct Subdl(Rc<Inner>);

struct Inner {
    http: ProviderHttp,
    api_key: Secret,
    base: Url,
    download: Url,
    credentials_id: String,
}

/// Subdl's language code for ours: upper-case ISO 639-1, `BR_PT` for Brazilian Portuguese.
pub fn language_code(language: &Language) -> String {
    match (language.base(), language.region()) {
        ("pt", Some("BR")) => "BR_PT".to_owned(),
        (base, _) => base.to_ascii_uppercase(),
    }
}

/// The search's query parameters (without the API key).
pub fn search_parameters(query: &SubtitleQuery) -> Vec<(&'static str, String)> {
    search_parameters_with(query, true)
}

/// The search again by name, when the first one went by ids and found nothing.
pub fn fallback_parameters(query: &SubtitleQuery) -> Option<Vec<(&'static str, String)>> {
    let facts = &query.facts;
    let ids = if facts.is_episode() {
        facts.parent_imdb_id.or(facts.parent_tmdb_id)
    } else {
        facts.imdb_id.or(facts.tmdb_id)
    };
    (ids.is_some() && facts.release.title.is_some()).then(|| search_parameters_with(query, false))
}

fn search_parameters_with(query: &SubtitleQuery, use_ids: bool) -> Vec<(&'static str, String)> {
    let facts = &query.facts;
    let mut params = vec![("languages", language_code(&query.language))];
    let episode = facts.is_episode();
    let (imdb, tmdb) = match (use_ids, episode) {
        (false, _) => (None, None),
        (true, true) => (facts.parent_imdb_id, facts.parent_tmdb_id),
        (true, false) => (facts.imdb_id, facts.tmdb_id),
    };
    params.push(("type", if episode { "tv" } else { "movie" }.to_owned()));
    if let Some(id) = imdb {
        params.push(("imdb_id", format!("tt{id:07}")));
    }
    if let Some(id) = tmdb {
        params.push(("tmdb_id", id.to_string()));
    }
    if imdb.is_none() && tmdb.is_none() {
        if let Some(title) = &facts.release.title {
            params.push(("film_name", title.clone()));
        }
        if !episode && let Some(year) = facts.release.year {
            params.push(("year", year.to_string()));
        }
    }
    if episode {
        if let Some(season) = facts.release.season {
            params.push(("season_number", season.to_string()));
        }
        if let Some(number) = facts.release.episode {
            params.push(("episode_number", number.to_string()));
        }
    }
    params.push(("subs_per_page", "30".to_owned()));
    params.push(("releases", "1".to_owned()));
    params.push(("hi", "1".to_owned()));
    params
}

impl Subdl {
    /// A client for the configured account.
    pub fn new(settings: &SubdlSettings) -> reqwest::Result<Self> {
        let mut base = settings.endpoint.base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self(Rc::new(Inner {
            http: ProviderHttp::new(&settings.endpoint)?,
            credentials_id: super::credentials_id(&[settings.api_key.expose()]),
            api_key: settings.api_key.clone(),
            base,
            download: settings.download_url.clone(),
        })))
    }
}

/// What a `status: false` answer means.
fn refusal(error: &str) -> Result<Vec<Candidate>, ProviderError> {
    let lower = error.to_ascii_lowercase();
    if lower.contains("can't find") || lower.contains("cannot find") || lower.contains("not found")
    {
        Ok(Vec::new())
    } else if lower.contains("api key") || lower.contains("api_key") || lower.contains("apikey") {
        Err(ProviderError::Auth(format!(
            "Subdl refused the API key: {error}"
        )))
    } else {
        Err(ProviderError::Permanent(format!("Subdl: {error}")))
    }
}

impl Inner {
    async fn search(&self, query: SubtitleQuery) -> Result<Vec<Candidate>, ProviderError> {
        let found = self.search_with(&query, search_parameters(&query)).await?;
        if !found.is_empty() {
            return Ok(found);
        }
        match fallback_parameters(&query) {
            Some(parameters) => self.search_with(&query, parameters).await,
            None => Ok(found),
        }
    }

    async fn search_with(
        &self,
        query: &SubtitleQuery,
        parameters: Vec<(&'static str, String)>,
    ) -> Result<Vec<Candidate>, ProviderError> {
        let mut url = self
            .base
            .join("subtitles")
            .map_err(|e| ProviderError::Permanent(format!("bad base_url: {e}")))?;
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("api_key", self.api_key.expose());
            for (key, value) in parameters {
                pairs.append_pair(key, &value);
            }
        }
        let response = self.http.send(self.http.client.get(url)).await?;
        let status = response.status();
        if !status.is_success() {
            return Err(provider_http::status_error(
                "Subdl",
                status,
                provider_http::retry_after(&response),
            ));
        }
        let text = provider_http::text(response).await?;
        let answer: SearchAnswer = provider_http::json("Subdl", "search", &text)?;
        match answer.status {
            Some(true) => {}
            Some(false) => return refusal(answer.error.as_deref().unwrap_or("no reason given")),
            None => {
                return Err(ProviderError::Parse(
                    "Subdl search answer has no status".to_owned(),
                ));
            }
        }
        let show = answer.results.first();
        Ok(answer
            .subtitles
            .into_iter()
            .filter_map(|subtitle| candidate(subtitle, show, query))
            .collect())
    }

    async fn download(&self, candidate: Candidate) -> Result<Vec<u8>, ProviderError> {
        // Only a path on the download host: an answer cannot send us elsewhere.
        if !candidate.id.starts_with('/') || candidate.id.starts_with("//") {
            return Err(ProviderError::Permanent(format!(
                "Subdl download path {:?} is not a path",
                candidate.id
            )));
        }
        let url = self
            .download
            .join(&candidate.id)
            .map_err(|e| ProviderError::Permanent(format!("bad download path: {e}")))?;
        let response = self.http.send(self.http.client.get(url)).await?;
        let status = response.status();
        if status.is_success() {
            return provider_http::download_bytes("Subdl", response).await;
        }
        let wait = provider_http::retry_after(&response);
        let body = provider_http::text(response).await.unwrap_or_default();
        if body.to_ascii_lowercase().contains("download limit") {
            return Err(ProviderError::QuotaExhausted {
                resets_in: Some(provider_http::until_midnight_utc()),
            });
        }
        Err(provider_http::status_error("Subdl", status, wait))
    }
}

/// A search result as a candidate, unless it is for another language or episode.
fn candidate(
    subtitle: SubdlSubtitle,
    show: Option<&Value>,
    query: &SubtitleQuery,
) -> Option<Candidate> {
    let url = subtitle.url.filter(|u| !u.is_empty())?;
    let wanted = language_code(&query.language);
    if subtitle
        .language
        .as_deref()
        .is_some_and(|l| !l.eq_ignore_ascii_case(&wanted))
    {
        return None;
    }
    let facts = &query.facts;
    let episode = facts.is_episode();
    // A season pack covers a range: the video's episode when it is inside.
    let (season, number) = match (
        facts.release.episode,
        subtitle.episode_from,
        subtitle.episode_end,
    ) {
        (Some(ours), Some(from), Some(end))
            if from != end || subtitle.full_season == Some(true) =>
        {
            if !((from..=end).contains(&ours) || (from == 0 && end == 0)) {
                return None;
            }
            (subtitle.season, Some(ours))
        }
        (Some(ours), _, _) if subtitle.full_season == Some(true) => (subtitle.season, Some(ours)),
        _ => (subtitle.season, subtitle.episode.filter(|e| *e > 0)),
    };
    let release = provider_http::best_release(
        subtitle
            .releases
            .iter()
            .map(String::as_str)
            .chain(subtitle.release_name.as_deref())
            .chain(subtitle.name.as_deref()),
        facts,
    )
    .unwrap_or_default();
    let imdb = show.and_then(|s| provider_http::imdb_number(&s["imdb_id"]));
    let tmdb = show.and_then(|s| provider_http::imdb_number(&s["tmdb_id"]));
    let year = show.and_then(|s| {
        s["year"]
            .as_u64()
            .and_then(|y| u16::try_from(y).ok())
            .or_else(|| s["year"].as_str().and_then(|y| y.parse().ok()))
    });
    let title = show.and_then(|s| s["name"].as_str().map(str::to_owned));
    Some(Candidate {
        provider: NAME.to_owned(),
        id: url,
        language: query.language.clone(),
        score: 0,
        hearing_impaired: subtitle.hi.unwrap_or(false),
        forced: false,
        release,
        meta: CandidateMeta {
            imdb_id: imdb.filter(|_| !episode),
            tmdb_id: tmdb.filter(|_| !episode),
            parent_imdb_id: imdb.filter(|_| episode),
            parent_tmdb_id: tmdb.filter(|_| episode),
            title,
            year,
            season: season.filter(|_| episode),
            episode: number.filter(|_| episode),
            ..CandidateMeta::default()
        },
    })
}

impl SubtitleProvider for Subdl {
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

    fn credentials_id(&self) -> Option<String> {
        Some(self.0.credentials_id.clone())
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

    fn joined(params: &[(&str, String)]) -> String {
        params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn an_episode_is_searched_by_the_show_ids_and_its_numbers() {
        let q = query(
            "/tv/Example Show (2010) [imdbid-tt0012345]/Season 02/Example Show S02E06.mkv",
            "pt-BR",
        );
        assert_eq!(
            joined(&search_parameters(&q)),
            "languages=BR_PT&type=tv&imdb_id=tt0012345&season_number=2&episode_number=6\
             &subs_per_page=30&releases=1&hi=1"
        );
    }

    #[test]
    fn a_search_by_ids_falls_back_to_the_name() {
        let q = query(
            "/m/Example Movie (2019) {tmdb-603}/Example Movie (2019).mkv",
            "en",
        );
        assert_eq!(
            joined(&search_parameters(&q)),
            "languages=EN&type=movie&tmdb_id=603&subs_per_page=30&releases=1&hi=1"
        );
        assert_eq!(
            joined(&fallback_parameters(&q).unwrap()),
            "languages=EN&type=movie&film_name=example movie&year=2019&subs_per_page=30\
             &releases=1&hi=1"
        );
        let plain = query("/m/Example Movie (2019)/Example Movie (2019).mkv", "en");
        assert!(fallback_parameters(&plain).is_none());
    }

    #[test]
    fn a_movie_without_ids_is_searched_by_name_and_year() {
        let q = query(
            "/m/The Quiet Harbor (2021)/The Quiet Harbor (2021).mkv",
            "fr",
        );
        assert_eq!(
            joined(&search_parameters(&q)),
            "languages=FR&type=movie&film_name=quiet harbor&year=2021&subs_per_page=30\
             &releases=1&hi=1"
        );
    }

    #[test]
    fn a_season_pack_counts_for_the_episode_it_holds() {
        let q = query("/tv/Show (2010)/Season 01/Show S01E03.mkv", "en");
        let pack = |from, end| SubdlSubtitle {
            url: Some("/subtitle/1-2.zip".to_owned()),
            language: Some("EN".to_owned()),
            season: Some(1),
            episode_from: Some(from),
            episode_end: Some(end),
            full_season: Some(true),
            ..SubdlSubtitle::default()
        };
        let found = candidate(pack(1, 10), None, &q).unwrap();
        assert_eq!((found.meta.season, found.meta.episode), (Some(1), Some(3)));
        assert!(candidate(pack(5, 10), None, &q).is_none());
        let other_language = SubdlSubtitle {
            language: Some("FR".to_owned()),
            ..pack(1, 10)
        };
        assert!(candidate(other_language, None, &q).is_none());
    }

    #[test]
    fn status_false_answers_are_told_apart() {
        assert_eq!(refusal("can't find movie or tv"), Ok(Vec::new()));
        assert!(matches!(
            refusal("Invalid API key"),
            Err(ProviderError::Auth(_))
        ));
        assert!(matches!(
            refusal("type is required"),
            Err(ProviderError::Permanent(_))
        ));
    }
}
