//! Gestdown (api.gestdown.info, a proxy of Addic7ed), behind the core's
//! [`SubtitleProvider`]. TV episodes only; no account.
//!
//! - The show: `GET /shows/external/tvdb/{id}` when the video's folder carries a TVDB id
//!   (`[tvdbid-80379]`, `{tvdb-80379}`), else `GET /shows/search/{title}`; the show whose
//!   name is the title is taken (else the first). An unknown show is a 404 with a bare JSON
//!   string body: nothing to find. Shows found are remembered while the daemon runs; an
//!   unknown show is not asked for again for [`UNKNOWN_SHOW_TTL`].
//! - The subtitles: `GET /subtitles/get/{showId}/{season}/{episode}/{language}` with the
//!   ISO 639-3 code (`eng`, `fra`); `completed: false` ones (still being translated) are
//!   skipped. 423 Locked = Gestdown is refreshing the show from Addic7ed: rate limited for
//!   30 s (what its peers wait), so the job tries again later.
//! - Download: `GET /subtitles/download/{subtitleId}`, raw `text/srt` (a UTF-8 BOM and CRLF,
//!   which normalisation removes). An HTML answer instead is Addic7ed's download limit:
//!   quota exhausted.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use cuewarden_actors::clients::{
    Candidate, CandidateMeta, LocalBoxFuture, ProviderError, SubtitleProvider, SubtitleQuery,
};
use cuewarden_actors::scoring::normalise_title;
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use super::provider_http::{self, ProviderHttp};
use crate::config::EndpointSettings;

/// The provider's name in events, cooldowns and `/health/sources`.
pub const NAME: &str = "gestdown";

/// How long a 423 ("refreshing from Addic7ed") holds the provider back.
pub const LOCKED_WAIT: Duration = Duration::from_secs(30);

/// How long a show Gestdown does not know is not asked for again (it may add it later).
pub const UNKNOWN_SHOW_TTL: Duration = Duration::from_secs(6 * 3600);

#[derive(Deserialize)]
struct ShowsAnswer {
    #[serde(default)]
    shows: Vec<Show>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Show {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    tmdb_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubtitlesAnswer {
    #[serde(default)]
    matching_subtitles: Vec<GestdownSubtitle>,
    #[serde(default)]
    episode: Option<Episode>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GestdownSubtitle {
    subtitle_id: Option<String>,
    version: Option<String>,
    completed: Option<bool>,
    hearing_impaired: Option<bool>,
    download_count: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Episode {
    season: Option<u32>,
    number: Option<u32>,
}

/// The Gestdown client (cheap to clone; clones share the rate limit and the shows found).
#[derive(Clone)]
pub struct Gestdown(Rc<Inner>);

struct Inner {
    http: ProviderHttp,
    base: Url,
    /// Shows looked up (`tvdb:80379`, `name:the office`): found, or unknown since then.
    shows: RefCell<HashMap<String, (Option<Show>, Instant)>>,
}

/// The TVDB id a Jellyfin-style name in the video's path carries.
pub fn tvdb_id(path: &std::path::Path) -> Option<u64> {
    path.ancestors()
        .filter_map(|p| p.file_name()?.to_str())
        .find_map(|name| {
            let lower = name.to_ascii_lowercase();
            ["tvdbid-", "tvdb-", "tvdbid="].iter().find_map(|prefix| {
                let start = lower.find(prefix)? + prefix.len();
                let digits: String = lower[start..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            })
        })
}

impl Gestdown {
    /// A client for the configured endpoint.
    pub fn new(settings: &EndpointSettings) -> reqwest::Result<Self> {
        let mut base = settings.base_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self(Rc::new(Inner {
            http: ProviderHttp::new(settings)?,
            base,
            shows: RefCell::new(HashMap::new()),
        })))
    }
}

/// `base` with `segments` appended, each percent-encoded.
fn url_of(base: &Url, segments: &[&str]) -> Result<Url, ProviderError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ProviderError::Permanent("bad base_url".to_owned()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

impl Inner {
    fn url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        url_of(&self.base, segments)
    }

    /// Maps a failed answer: 423 (refreshing) waits [`LOCKED_WAIT`], the rest as shared.
    fn error(response: &reqwest::Response) -> ProviderError {
        if response.status() == StatusCode::LOCKED {
            return ProviderError::RateLimited {
                retry_after: Some(provider_http::retry_after(response).unwrap_or(LOCKED_WAIT)),
            };
        }
        provider_http::status_error(
            "Gestdown",
            response.status(),
            provider_http::retry_after(response),
        )
    }

    async fn show(&self, query: &SubtitleQuery) -> Result<Option<Show>, ProviderError> {
        let title = query.facts.release.title.clone();
        let (key, url) = match (tvdb_id(&query.video), &title) {
            (Some(id), _) => (
                format!("tvdb:{id}"),
                self.url(&["shows", "external", "tvdb", &id.to_string()])?,
            ),
            (None, Some(title)) => (
                format!("name:{title}"),
                self.url(&["shows", "search", title])?,
            ),
            (None, None) => return Ok(None),
        };
        if let Some((known, since)) = self.shows.borrow().get(&key)
            && (known.is_some() || since.elapsed() < UNKNOWN_SHOW_TTL)
        {
            return Ok(known.clone());
        }
        let response = self.http.send(self.http.client.get(url)).await?;
        let show = if response.status() == StatusCode::NOT_FOUND {
            None
        } else if !response.status().is_success() {
            return Err(Self::error(&response));
        } else {
            let text = provider_http::text(response).await?;
            let answer: ShowsAnswer = provider_http::json("Gestdown", "show", &text)?;
            let named = title.as_ref().and_then(|title| {
                answer
                    .shows
                    .iter()
                    .find(|s| normalise_title(&s.name) == *title)
                    .cloned()
            });
            named.or_else(|| answer.shows.into_iter().next())
        };
        self.shows
            .borrow_mut()
            .insert(key, (show.clone(), Instant::now()));
        Ok(show)
    }

    async fn search(&self, query: SubtitleQuery) -> Result<Vec<Candidate>, ProviderError> {
        let release = &query.facts.release;
        let (Some(season), Some(number)) = (release.season, release.episode) else {
            return Ok(Vec::new());
        };
        let Some(show) = self.show(&query).await? else {
            return Ok(Vec::new());
        };
        let url = self.url(&[
            "subtitles",
            "get",
            &show.id,
            &season.to_string(),
            &number.to_string(),
            query.language.iso639_2t(),
        ])?;
        let response = self.http.send(self.http.client.get(url)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !response.status().is_success() {
            return Err(Self::error(&response));
        }
        let text = provider_http::text(response).await?;
        let answer: SubtitlesAnswer = provider_http::json("Gestdown", "subtitles", &text)?;
        let episode = answer.episode.unwrap_or_default();
        Ok(answer
            .matching_subtitles
            .into_iter()
            .filter(|s| s.completed != Some(false))
            .filter_map(|subtitle| {
                let id = subtitle.subtitle_id.filter(|id| !id.is_empty())?;
                let release =
                    provider_http::best_release(subtitle.version.as_deref(), &query.facts)
                        .unwrap_or_default();
                Some(Candidate {
                    provider: NAME.to_owned(),
                    id,
                    language: query.language.clone(),
                    score: 0,
                    hearing_impaired: subtitle.hearing_impaired.unwrap_or(false),
                    forced: false,
                    release,
                    meta: CandidateMeta {
                        parent_tmdb_id: show.tmdb_id,
                        title: Some(show.name.clone()).filter(|n| !n.is_empty()),
                        season: episode.season.or(Some(season)),
                        episode: episode.number.or(Some(number)),
                        downloads: subtitle.download_count.unwrap_or(0),
                        ..CandidateMeta::default()
                    },
                })
            })
            .collect())
    }

    async fn download(&self, candidate: Candidate) -> Result<Vec<u8>, ProviderError> {
        let url = self.url(&["subtitles", "download", &candidate.id])?;
        let response = self.http.send(self.http.client.get(url)).await?;
        if !response.status().is_success() {
            return Err(Self::error(&response));
        }
        let html = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/html"));
        if html {
            // Addic7ed's page for "daily download limit reached".
            return Err(ProviderError::QuotaExhausted { resets_in: None });
        }
        provider_http::download_bytes("Gestdown", response).await
    }
}

impl SubtitleProvider for Gestdown {
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

    use super::*;

    #[test]
    fn a_tvdb_id_is_read_from_the_show_folder() {
        assert_eq!(
            tvdb_id(Path::new(
                "/tv/The Office (2005) [tvdbid-73244]/Season 01/x S01E01.mkv"
            )),
            Some(73244)
        );
        assert_eq!(
            tvdb_id(Path::new("/tv/Show {tvdb-80379}/Show S01E01.mkv")),
            Some(80379)
        );
        assert_eq!(tvdb_id(Path::new("/tv/Show (2010)/Show S01E01.mkv")), None);
    }

    #[test]
    fn show_names_are_percent_encoded_in_the_path() {
        let base = Url::parse("http://127.0.0.1:1/api/").unwrap();
        let url = url_of(&base, &["shows", "search", "law & order/svu"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/api/shows/search/law%20&%20order%2Fsvu"
        );
    }
}
