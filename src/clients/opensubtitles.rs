//! OpenSubtitles.com REST API v1, behind the core's [`SubtitleProvider`].
//!
//! - Every call carries `Api-Key` and `User-Agent: cuewarden v<version>`, and waits for a
//!   slot of the [`RateLimiter`] one client shares between every job (at most
//!   `requests_per_second`, 5 by default, which is the API's limit).
//! - Searches (`GET /subtitles`) need no login; their parameters are lower-case and sorted
//!   (the API redirects other spellings). One page (50 results) is read.
//! - Downloads (`POST /download`, then the one-time link, fetched once) log in first when a
//!   user name is configured: one login at a time, the token kept ~23 h (in the store, so a
//!   restart reuses it), a 401 logs in again once. The login answer's `base_url` (the VIP
//!   host) replaces the host and port of the configured base URL, nothing else.
//! - The quota (`remaining`, `reset_time_utc`) is tracked; downloads are issued one at a time,
//!   so none is ever sent once the quota says 0, until it resets. 406 = quota used up;
//!   429 = rate limited for `Retry-After`; 401/403 = bad credentials; 5xx and timeouts =
//!   unavailable; an answer that is not the API's JSON = unreadable.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use cuewarden_actors::Language;
use cuewarden_actors::clients::{
    Candidate, CandidateMeta, LocalBoxFuture, ProviderError, SubtitleProvider, SubtitleQuery,
};
use cuewarden_actors::store::{CooldownKind, ProviderSession, ProviderState};
use cuewarden_actors::time::now_ms;
use reqwest::StatusCode;
use serde::Deserialize;
use tracing::{debug, info, warn};
use url::Url;

use crate::config::{OpenSubtitlesSettings, Secret};

/// The provider's name in events, cooldowns and `/health/sources`.
pub const NAME: &str = "opensubtitles";

/// The User-Agent OpenSubtitles wants: an application name and version.
pub const USER_AGENT: &str = concat!("cuewarden v", env!("CARGO_PKG_VERSION"));

/// How long a login token is used (the API's last ~24 h).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(23 * 3600);

/// `/login` takes one request a second.
const LOGIN_INTERVAL: Duration = Duration::from_millis(1050);

/// Slack added to each second of the limiter, so jitter on the way (a busy machine, the
/// network) never shows the API more than its limit in any second.
const RATE_MARGIN: Duration = Duration::from_millis(50);

/// The limit of requests per second, shared by every job.
pub struct RateLimiter {
    per_second: usize,
    window: Duration,
    slots: RefCell<VecDeque<Instant>>,
}

impl RateLimiter {
    /// At most `per_second` request starts in any second.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: usize::try_from(per_second.max(1)).unwrap_or(1),
            window: Duration::from_secs(1) + RATE_MARGIN,
            slots: RefCell::new(VecDeque::new()),
        }
    }

    /// Waits until a request may start, and counts it as started: at most `per_second`
    /// starts (as they really happened, after any wake-up delay) in any window.
    pub async fn wait(&self) {
        loop {
            let now = Instant::now();
            let next = {
                let slots = self.slots.borrow();
                match slots.len().checked_sub(self.per_second) {
                    Some(i) => slots[i] + self.window,
                    None => now,
                }
            };
            if next <= now {
                let mut slots = self.slots.borrow_mut();
                slots.push_back(now);
                while slots.len() > self.per_second {
                    slots.pop_front();
                }
                return;
            }
            tokio::time::sleep_until(next.into()).await;
        }
    }
}

#[derive(Deserialize)]
struct LoginAnswer {
    token: String,
    #[serde(default)]
    base_url: Option<String>,
}

#[derive(Deserialize)]
struct MessageAnswer {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(default)]
    data: Vec<SearchItem>,
}

#[derive(Deserialize)]
struct SearchItem {
    attributes: Attributes,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Attributes {
    language: Option<String>,
    download_count: Option<u64>,
    hearing_impaired: Option<bool>,
    from_trusted: Option<bool>,
    foreign_parts_only: Option<bool>,
    ai_translated: Option<bool>,
    machine_translated: Option<bool>,
    release: Option<String>,
    feature_details: Option<FeatureDetails>,
    files: Vec<SubFile>,
    moviehash_match: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FeatureDetails {
    year: Option<u16>,
    title: Option<String>,
    imdb_id: Option<u64>,
    tmdb_id: Option<u64>,
    season_number: Option<u32>,
    episode_number: Option<u32>,
    parent_imdb_id: Option<u64>,
    parent_tmdb_id: Option<u64>,
    parent_title: Option<String>,
}

#[derive(Deserialize)]
struct SubFile {
    file_id: u64,
    #[serde(default)]
    file_name: Option<String>,
}

#[derive(Deserialize)]
struct DownloadAnswer {
    link: String,
    #[serde(default)]
    remaining: Option<i64>,
    #[serde(default)]
    reset_time_utc: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct QuotaAnswer {
    remaining: Option<i64>,
    reset_time_utc: Option<String>,
    message: Option<String>,
}

/// The quota as last told: downloads left, and when it resets (ms since epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    remaining: u32,
    resets_at_ms: Option<i64>,
}

struct Inner {
    http: reqwest::Client,
    api_key: Secret,
    login: Option<(String, Secret)>,
    /// The configured base URL.
    configured: Url,
    /// The base URL in use (the VIP host after login).
    base: RefCell<Url>,
    session: RefCell<Option<ProviderSession>>,
    quota: Cell<Option<Quota>>,
    limiter: RateLimiter,
    /// One login at a time: jobs waiting for it use its token.
    login_lock: tokio::sync::Mutex<()>,
    /// One `POST /download` at a time, so the quota is never exceeded.
    download_lock: tokio::sync::Mutex<()>,
    credentials_id: String,
    logins: Cell<u64>,
    /// When the last login started: `/login` allows one request a second.
    last_login: Cell<Option<Instant>>,
}

/// The OpenSubtitles.com client (cheap to clone; clones share the session, the quota and
/// the rate limit).
#[derive(Clone)]
pub struct OpenSubtitles(Rc<Inner>);

/// Reads a successful answer's body as the API's JSON for `what` (`login`, `search`,
/// `download`); a body that is not is a parse error (the provider cools down for it).
async fn api_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, ProviderError> {
    let text = response.text().await.map_err(unavailable)?;
    serde_json::from_str(&text)
        .map_err(|e| ProviderError::Parse(format!("{what} answer is not the API's JSON ({e})")))
}

fn unavailable(err: reqwest::Error) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Unavailable("timed out".to_owned())
    } else if err.is_decode() || err.is_body() {
        ProviderError::Parse(err.without_url().to_string())
    } else {
        // The host and the root cause: "connection refused", a DNS failure, a certificate.
        ProviderError::Unavailable(super::request_error(err))
    }
}

/// `Retry-After` in seconds (or `RateLimit-Reset`), if the answer has one.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    ["retry-after", "ratelimit-reset"].iter().find_map(|name| {
        response
            .headers()
            .get(*name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}

fn parse_utc_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// When a quota told to reset at `at` resets: then, or (a time already past, as cached
/// answers carry) at the next midnight UTC, when OpenSubtitles' counters reset.
fn reset_after(at: Option<i64>, now: i64) -> i64 {
    const DAY: i64 = 24 * 3600 * 1000;
    match at {
        Some(at) if at > now => at,
        _ => (now / DAY + 1) * DAY,
    }
}

/// The language code OpenSubtitles uses for ours (`pt-br`, `pt-pt`, `zh-cn`, `zh-tw`).
pub fn language_code(language: &Language) -> String {
    match (language.base(), language.region()) {
        ("pt", Some("BR")) => "pt-br".to_owned(),
        ("pt", _) => "pt-pt".to_owned(),
        ("zh", Some("TW" | "HK")) => "zh-tw".to_owned(),
        ("zh", _) => "zh-cn".to_owned(),
        (base, _) => base.to_ascii_lowercase(),
    }
}

/// The query string of a search: keys and values lower-case, sorted by key, spaces as `+`.
pub fn search_parameters(query: &SubtitleQuery) -> String {
    search_parameters_with(query, true)
}

/// Whether the video's names carry ids a search would send (then, when that search finds
/// nothing, [`fallback_parameters`] searches by title).
fn has_ids(query: &SubtitleQuery) -> bool {
    let facts = &query.facts;
    if facts.is_episode() {
        facts.parent_imdb_id.is_some() || facts.parent_tmdb_id.is_some()
    } else {
        facts.imdb_id.is_some() || facts.tmdb_id.is_some()
    }
}

/// The search again without the ids, by title (and year, for a movie), when the video has
/// ids and a title: `None` otherwise.
pub fn fallback_parameters(query: &SubtitleQuery) -> Option<String> {
    (has_ids(query) && query.facts.release.title.is_some())
        .then(|| search_parameters_with(query, false))
}

fn search_parameters_with(query: &SubtitleQuery, use_ids: bool) -> String {
    let mut params: BTreeMap<&str, String> = BTreeMap::new();
    params.insert("languages", language_code(&query.language));
    if let Some(hash) = &query.movie_hash {
        params.insert("moviehash", hash.to_ascii_lowercase());
    }
    let facts = &query.facts;
    let mut has_id = false;
    if facts.is_episode() {
        params.insert("type", "episode".to_owned());
        if let Some(id) = facts.parent_imdb_id.filter(|_| use_ids) {
            params.insert("parent_imdb_id", id.to_string());
            has_id = true;
        }
        if let Some(id) = facts.parent_tmdb_id.filter(|_| use_ids) {
            params.insert("parent_tmdb_id", id.to_string());
            has_id = true;
        }
        if let Some(season) = facts.release.season {
            params.insert("season_number", season.to_string());
        }
        if let Some(episode) = facts.release.episode {
            params.insert("episode_number", episode.to_string());
        }
    } else {
        params.insert("type", "movie".to_owned());
        if let Some(id) = facts.imdb_id.filter(|_| use_ids) {
            params.insert("imdb_id", id.to_string());
            has_id = true;
        }
        if let Some(id) = facts.tmdb_id.filter(|_| use_ids) {
            params.insert("tmdb_id", id.to_string());
            has_id = true;
        }
        if !has_id && let Some(year) = facts.release.year {
            params.insert("year", year.to_string());
        }
    }
    if !has_id && let Some(title) = &facts.release.title {
        params.insert("query", title.clone());
    }
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in params {
        if !value.is_empty() {
            out.append_pair(key, &value.to_lowercase());
        }
    }
    out.finish()
}

impl OpenSubtitles {
    /// A client for the configured account.
    pub fn new(settings: &OpenSubtitlesSettings) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(USER_AGENT)
            .build()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        settings.api_key.expose().hash(&mut hasher);
        if let Some((user, password)) = &settings.login {
            user.hash(&mut hasher);
            password.expose().hash(&mut hasher);
        }
        let mut configured = settings.base_url.clone();
        if !configured.path().ends_with('/') {
            configured.set_path(&format!("{}/", configured.path()));
        }
        Ok(Self(Rc::new(Inner {
            http,
            api_key: settings.api_key.clone(),
            login: settings.login.clone(),
            base: RefCell::new(configured.clone()),
            configured,
            session: RefCell::new(None),
            quota: Cell::new(None),
            limiter: RateLimiter::new(settings.requests_per_second),
            login_lock: tokio::sync::Mutex::new(()),
            download_lock: tokio::sync::Mutex::new(()),
            credentials_id: format!("{:016x}", hasher.finish()),
            logins: Cell::new(0),
            last_login: Cell::new(None),
        })))
    }

    /// Logins done since start (for tests and logs).
    pub fn logins(&self) -> u64 {
        self.0.logins.get()
    }
}

impl Inner {
    fn url(&self, path: &str) -> Result<Url, ProviderError> {
        self.base
            .borrow()
            .join(path)
            .map_err(|e| ProviderError::Permanent(format!("bad base_url: {e}")))
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("Api-Key", self.api_key.expose())
            .header("Accept", "application/json")
    }

    /// Maps the error statuses every route shares.
    async fn error_of(response: reqwest::Response) -> ProviderError {
        let status = response.status();
        let wait = retry_after(&response);
        let host = super::host_of(response.url());
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<MessageAnswer>(&text)
            .ok()
            .and_then(|m| m.message)
            .map(|m| m.trim().to_owned())
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
        match status {
            StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited { retry_after: wait },
            StatusCode::UNAUTHORIZED => {
                ProviderError::Auth(format!("HTTP 401 from OpenSubtitles: {message}"))
            }
            StatusCode::FORBIDDEN => ProviderError::Auth(format!(
                "HTTP 403 from OpenSubtitles (API key refused): {message}"
            )),
            StatusCode::NOT_ACCEPTABLE => {
                let quota: QuotaAnswer = serde_json::from_str(&text).unwrap_or_default();
                let now = now_ms();
                let at = reset_after(quota.reset_time_utc.as_deref().and_then(parse_utc_ms), now);
                let resets_in = Some(Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
                debug!(
                    message = quota.message.as_deref().unwrap_or(""),
                    "quota used up"
                );
                ProviderError::QuotaExhausted { resets_in }
            }
            s if s.is_server_error() => {
                ProviderError::Unavailable(format!("{host}: HTTP {}", s.as_u16()))
            }
            s => ProviderError::Permanent(format!("{host}: HTTP {}: {message}", s.as_u16())),
        }
    }

    fn session_token(&self) -> Option<String> {
        self.session
            .borrow()
            .as_ref()
            .filter(|s| s.expires_at_ms > now_ms())
            .map(|s| s.token.clone())
    }

    /// Applies the login answer's `base_url` (a bare host, maybe with a port, or a URL)
    /// to the configured base: only host and port change.
    fn apply_base(&self, answered: Option<&str>) {
        let mut base = self.configured.clone();
        if let Some(answered) = answered.map(str::trim).filter(|a| !a.is_empty()) {
            let authority = answered
                .split_once("://")
                .map_or(answered, |(_, rest)| rest)
                .split('/')
                .next()
                .unwrap_or("");
            let parsed = Url::parse(&format!("http://{authority}/")).ok();
            if let Some(parsed) = parsed
                && let Some(host) = parsed.host_str()
                && base.set_host(Some(host)).is_ok()
            {
                let _ = base.set_port(parsed.port());
            } else {
                warn!(
                    base_url = answered,
                    "ignoring an unusable base_url from the login"
                );
                base = self.configured.clone();
            }
        }
        *self.base.borrow_mut() = base;
    }

    /// A valid token: the one held, or a new login (one at a time). `None` without an
    /// account.
    async fn token(&self, stale: Option<&str>) -> Result<Option<String>, ProviderError> {
        let Some((username, password)) = &self.login else {
            return Ok(None);
        };
        if let Some(token) = self.session_token().filter(|t| Some(t.as_str()) != stale) {
            return Ok(Some(token));
        }
        let _guard = self.login_lock.lock().await;
        // Someone else may have logged in meanwhile.
        if let Some(token) = self.session_token().filter(|t| Some(t.as_str()) != stale) {
            return Ok(Some(token));
        }
        *self.base.borrow_mut() = self.configured.clone();
        if let Some(last) = self.last_login.get() {
            tokio::time::sleep_until((last + LOGIN_INTERVAL).into()).await;
        }
        self.limiter.wait().await;
        self.last_login.set(Some(Instant::now()));
        let url = self.url("login")?;
        let response = self
            .request(reqwest::Method::POST, url)
            .json(&serde_json::json!({"username": username, "password": password.expose()}))
            .send()
            .await
            .map_err(unavailable)?;
        self.logins.set(self.logins.get() + 1);
        let status = response.status();
        if status == StatusCode::BAD_REQUEST && username.contains('@') {
            return Err(ProviderError::Auth(
                "OpenSubtitles wants the user name, not the e-mail address".to_owned(),
            ));
        }
        if !status.is_success() {
            return Err(Self::error_of(response).await);
        }
        let answer: LoginAnswer = api_json(response, "login").await?;
        self.apply_base(answer.base_url.as_deref());
        let base = self.base.borrow().clone();
        info!(base = %base, "logged in to OpenSubtitles");
        *self.session.borrow_mut() = Some(ProviderSession {
            token: answer.token.clone(),
            base_url: Some(base.to_string()),
            expires_at_ms: now_ms() + i64::try_from(TOKEN_LIFETIME.as_millis()).unwrap_or(0),
            credentials: Some(self.credentials_id.clone()),
        });
        Ok(Some(answer.token))
    }

    async fn search(&self, query: SubtitleQuery) -> Result<Vec<Candidate>, ProviderError> {
        let found = self.search_with(&query, &search_parameters(&query)).await?;
        if !found.is_empty() {
            return Ok(found);
        }
        // Ids not (yet) known to OpenSubtitles: search once more by title.
        match fallback_parameters(&query) {
            Some(parameters) => {
                debug!("nothing found by id; searching by title");
                self.search_with(&query, &parameters).await
            }
            None => Ok(found),
        }
    }

    async fn search_with(
        &self,
        query: &SubtitleQuery,
        parameters: &str,
    ) -> Result<Vec<Candidate>, ProviderError> {
        let mut url = self.url("subtitles")?;
        url.set_query(Some(parameters));
        self.limiter.wait().await;
        let response = self
            .request(reqwest::Method::GET, url)
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(Self::error_of(response).await);
        }
        let answer: SearchAnswer = api_json(response, "search").await?;
        let wanted = language_code(&query.language);
        Ok(answer
            .data
            .into_iter()
            .filter_map(|item| candidate(item.attributes, &wanted, &query.language))
            .collect())
    }

    async fn download(&self, candidate: Candidate) -> Result<Vec<u8>, ProviderError> {
        let file_id: u64 = candidate
            .id
            .parse()
            .map_err(|_| ProviderError::Permanent(format!("bad file id {:?}", candidate.id)))?;
        let guard = self.download_lock.lock().await;
        if let Some(quota) = self.quota.get()
            && quota.remaining == 0
        {
            let left = quota.resets_at_ms.map(|at| at - now_ms());
            if left.is_none_or(|ms| ms > 0) {
                return Err(ProviderError::QuotaExhausted {
                    resets_in: left.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
                });
            }
            self.quota.set(None);
        }
        let mut token = self.token(None).await?;
        let mut relogged = false;
        let answer = loop {
            self.limiter.wait().await;
            let mut request = self
                .request(reqwest::Method::POST, self.url("download")?)
                .json(&serde_json::json!({"file_id": file_id, "sub_format": "srt"}));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(unavailable)?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && token.is_some() && !relogged {
                // The token expired early: log in again, once.
                relogged = true;
                info!("OpenSubtitles refused the token; logging in again");
                let stale = token.take();
                *self.session.borrow_mut() = None;
                token = self.token(stale.as_deref()).await?;
                continue;
            }
            if status == StatusCode::NOT_ACCEPTABLE {
                let err = Self::error_of(response).await;
                if let ProviderError::QuotaExhausted { resets_in } = &err {
                    self.quota.set(Some(Quota {
                        remaining: 0,
                        resets_at_ms: resets_in
                            .map(|d| now_ms() + i64::try_from(d.as_millis()).unwrap_or(0)),
                    }));
                }
                return Err(err);
            }
            if !status.is_success() {
                return Err(Self::error_of(response).await);
            }
            break api_json::<DownloadAnswer>(response, "download").await?;
        };
        if let Some(remaining) = answer.remaining {
            self.quota.set(Some(Quota {
                remaining: u32::try_from(remaining.max(0)).unwrap_or(0),
                resets_at_ms: Some(reset_after(
                    answer.reset_time_utc.as_deref().and_then(parse_utc_ms),
                    now_ms(),
                )),
            }));
        }
        drop(guard);
        // The link is one-time: fetched once, never logged.
        let link = Url::parse(&answer.link)
            .map_err(|e| ProviderError::Parse(format!("download link: {e}")))?;
        self.limiter.wait().await;
        let response = self.http.get(link).send().await.map_err(unavailable)?;
        let status = response.status();
        if status == StatusCode::GONE {
            return Err(ProviderError::Unavailable(
                "download link expired (HTTP 410)".to_owned(),
            ));
        }
        if !status.is_success() {
            return Err(Self::error_of(response).await);
        }
        let bytes = response.bytes().await.map_err(unavailable)?;
        if bytes.is_empty() {
            return Err(ProviderError::Permanent(format!(
                "file {file_id} is empty on OpenSubtitles"
            )));
        }
        Ok(bytes.to_vec())
    }
}

/// A search result as a candidate, if it has a file in the wanted language.
fn candidate(attributes: Attributes, wanted: &str, language: &Language) -> Option<Candidate> {
    if !attributes
        .language
        .as_deref()
        .is_some_and(|l| l.eq_ignore_ascii_case(wanted))
    {
        return None;
    }
    // A subtitle in several files (CD1, CD2) is for a video in several files: not ours.
    let [file] = attributes.files.as_slice() else {
        return None;
    };
    let details = attributes.feature_details.unwrap_or_default();
    let hearing_impaired = attributes.hearing_impaired.unwrap_or(false);
    let episode = details.season_number.is_some() || details.parent_title.is_some();
    let release = attributes
        .release
        .filter(|r| !r.trim().is_empty())
        .or_else(|| file.file_name.clone())
        .unwrap_or_default();
    Some(Candidate {
        provider: NAME.to_owned(),
        id: file.file_id.to_string(),
        language: language.clone(),
        score: 0,
        hearing_impaired,
        forced: attributes.foreign_parts_only.unwrap_or(false) && !hearing_impaired,
        release,
        meta: CandidateMeta {
            hash_match: attributes.moviehash_match.unwrap_or(false),
            imdb_id: details.imdb_id,
            tmdb_id: details.tmdb_id,
            parent_imdb_id: details.parent_imdb_id,
            parent_tmdb_id: details.parent_tmdb_id,
            title: if episode {
                details.parent_title
            } else {
                details.title
            },
            year: details.year,
            season: details.season_number,
            episode: details.episode_number,
            trusted: attributes.from_trusted.unwrap_or(false),
            machine_translated: attributes.machine_translated.unwrap_or(false),
            ai_translated: attributes.ai_translated.unwrap_or(false),
            downloads: attributes.download_count.unwrap_or(0),
        },
    })
}

impl SubtitleProvider for OpenSubtitles {
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

    fn restore(&self, state: &ProviderState) {
        let inner = &self.0;
        let now = now_ms();
        if inner.session_token().is_none()
            && let Some(session) = &state.session
            && session.expires_at_ms > now
            && session.credentials.as_deref() == Some(inner.credentials_id.as_str())
            && inner.login.is_some()
        {
            debug!("reusing the kept OpenSubtitles session");
            let base = session
                .base_url
                .as_deref()
                .and_then(|b| Url::parse(b).ok())
                .unwrap_or_else(|| inner.configured.clone());
            *inner.base.borrow_mut() = base;
            *inner.session.borrow_mut() = Some(session.clone());
        }
        if inner.quota.get().is_none()
            && let Some(remaining) = state.quota_remaining
            && state.quota_resets_at_ms.is_some_and(|at| at > now)
        {
            inner.quota.set(Some(Quota {
                remaining,
                resets_at_ms: state.quota_resets_at_ms,
            }));
        }
    }

    fn record(&self, state: &mut ProviderState) {
        let inner = &self.0;
        state.session.clone_from(&inner.session.borrow());
        if let Some(quota) = inner.quota.get() {
            state.quota_remaining = Some(quota.remaining);
            state.quota_resets_at_ms = quota.resets_at_ms;
            // No download until the reset: searching now would be for nothing.
            if quota.remaining == 0
                && let Some(at) = quota.resets_at_ms
                && state.cooldown_until_ms.is_none_or(|until| until < at)
                && at > now_ms()
            {
                state.cooldown_until_ms = Some(at);
                state.cooldown_kind = Some(CooldownKind::Quota);
                state.reason = Some("quota exhausted".to_owned());
            }
        }
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

    fn query(path: &str, language: &str, hash: Option<&str>) -> SubtitleQuery {
        SubtitleQuery {
            video: path.into(),
            language: Language::parse(language).unwrap(),
            jellyfin_item_id: None,
            facts: VideoFacts::from_path(Path::new(path)),
            movie_hash: hash.map(str::to_owned),
        }
    }

    #[test]
    fn an_episode_is_searched_by_its_show_ids_season_and_episode_sorted_and_lower_case() {
        let q = query(
            "/tv/Example Show (2010) [imdbid-tt0012345] [tmdbid-99]/Season 02/Example Show S02E06.mkv",
            "pt-BR",
            Some("8E245D9679D31E12"),
        );
        assert_eq!(
            search_parameters(&q),
            "episode_number=6&languages=pt-br&moviehash=8e245d9679d31e12&parent_imdb_id=12345\
             &parent_tmdb_id=99&season_number=2&type=episode"
        );
    }

    #[test]
    fn a_movie_without_ids_is_searched_by_title_and_year() {
        let q = query(
            "/m/The Quiet Harbor (2021)/The Quiet Harbor (2021).mkv",
            "zh",
            None,
        );
        assert_eq!(
            search_parameters(&q),
            "languages=zh-cn&query=quiet+harbor&type=movie&year=2021"
        );
        let q = query("/m/Movie (2019) {tmdb-603}/Movie (2019).mkv", "pt", None);
        assert_eq!(
            search_parameters(&q),
            "languages=pt-pt&tmdb_id=603&type=movie"
        );
    }

    #[test]
    fn a_search_by_ids_falls_back_to_the_title_and_a_multi_cd_subtitle_is_skipped() {
        let q = query(
            "/tv/Example Show (2010) [tmdbid-99]/Season 02/Example Show S02E06.mkv",
            "en",
            None,
        );
        assert_eq!(
            fallback_parameters(&q).unwrap(),
            "episode_number=6&languages=en&query=example+show&season_number=2&type=episode"
        );
        let plain = query("/m/Movie (2019)/Movie (2019).mkv", "en", None);
        assert_eq!(
            fallback_parameters(&plain),
            None,
            "nothing to fall back from"
        );

        let attributes = |files: usize| Attributes {
            language: Some("en".to_owned()),
            files: (0..files)
                .map(|i| SubFile {
                    file_id: 10 + i as u64,
                    file_name: Some(format!("movie.cd{}.srt", i + 1)),
                })
                .collect(),
            ..Attributes::default()
        };
        let language = Language::parse("en").unwrap();
        assert!(candidate(attributes(1), "en", &language).is_some());
        assert!(candidate(attributes(2), "en", &language).is_none());
        assert!(candidate(attributes(0), "en", &language).is_none());
    }

    /// The limiter's own record of when it let each request start: any six starts span
    /// more than a second (plus the margin), however the requests are issued.
    #[tokio::test]
    async fn the_limiter_never_lets_six_requests_start_within_a_second() {
        let limiter = Rc::new(RateLimiter::new(5));
        let mut waiting = Vec::new();
        for _ in 0..12 {
            let limiter = limiter.clone();
            waiting.push(async move {
                limiter.wait().await;
                *limiter.slots.borrow().back().unwrap()
            });
        }
        let mut starts = futures_util::future::join_all(waiting).await;
        starts.sort();
        assert_eq!(starts.len(), 12);
        for i in 0..starts.len() - 5 {
            assert!(starts[i + 5] - starts[i] >= Duration::from_secs(1) + RATE_MARGIN);
        }
    }

    #[test]
    fn a_reset_time_in_the_past_means_the_next_midnight_utc() {
        let now = 1_739_463_660_000; // 2025-02-13T16:21:00Z
        assert_eq!(reset_after(Some(now + 5), now), now + 5);
        assert_eq!(reset_after(Some(now - 5), now), 1_739_491_200_000);
        assert_eq!(reset_after(None, now), 1_739_491_200_000);
        assert_eq!(
            parse_utc_ms("2025-02-13T23:59:59.999Z"),
            Some(1_739_491_199_999)
        );
    }
}
