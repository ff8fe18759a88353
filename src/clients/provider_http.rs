//! What the JSON subtitle providers (Subdl, Podnapisi, Gestdown) share: one HTTP client per
//! provider with its timeouts, a polite request rate, the mapping of transport failures and
//! HTTP statuses to [`ProviderError`] kinds, the JSON reader, and the choice of the release
//! name (of the several a subtitle lists) that says most about the video.

use std::time::Duration;

use cuewarden_actors::clients::ProviderError;
use cuewarden_actors::scoring::{ReleaseInfo, VideoFacts};
use cuewarden_actors::time::now_ms;
use reqwest::StatusCode;

use super::opensubtitles::RateLimiter;
use crate::config::EndpointSettings;

/// Requests per second each of these providers gets from all jobs together (none of them
/// documents a limit; this stays well below what their peers send).
pub const REQUESTS_PER_SECOND: u32 = 3;

/// Largest download accepted (a season pack of text subtitles is far smaller).
pub const MAX_DOWNLOAD_BYTES: usize = 32 * 1024 * 1024;

/// A provider's HTTP side: the client with its timeouts and the shared rate limit.
pub struct ProviderHttp {
    /// The client (our User-Agent, the section's timeouts).
    pub client: reqwest::Client,
    limiter: RateLimiter,
}

impl ProviderHttp {
    /// A client for `endpoint`'s timeouts.
    pub fn new(endpoint: &EndpointSettings) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(endpoint.timeout)
            .connect_timeout(endpoint.connect_timeout)
            .user_agent(super::USER_AGENT)
            .build()?;
        Ok(Self {
            client,
            limiter: RateLimiter::new(REQUESTS_PER_SECOND),
        })
    }

    /// Sends `request` once a slot of the rate limit is free; transport failures mapped.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProviderError> {
        self.limiter.wait().await;
        request
            .send()
            .await
            .map_err(|e| transport(&e.without_url()))
    }
}

/// A failed send or body read: a timeout or a refused connection is `Unavailable`; a body
/// that cannot be decoded is `Parse`.
pub fn transport(err: &reqwest::Error) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Unavailable("timed out".to_owned())
    } else if err.is_decode() {
        ProviderError::Parse(err.to_string())
    } else {
        ProviderError::Unavailable(err.to_string())
    }
}

/// `Retry-After` in seconds, if the answer has one.
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The error statuses every provider shares: 429 rate limited (for `Retry-After`), 401/403
/// refused credentials, 5xx unavailable, any other a permanent refusal of this request.
pub fn status_error(provider: &str, status: StatusCode, wait: Option<Duration>) -> ProviderError {
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::RateLimited { retry_after: wait },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ProviderError::Auth(format!(
            "HTTP {} from {provider} (API key refused)",
            status.as_u16()
        )),
        s if s.is_server_error() => ProviderError::Unavailable(format!("HTTP {}", s.as_u16())),
        s => ProviderError::Permanent(format!("HTTP {} from {provider}", s.as_u16())),
    }
}

/// The body, as text.
pub async fn text(response: reqwest::Response) -> Result<String, ProviderError> {
    response
        .text()
        .await
        .map_err(|e| transport(&e.without_url()))
}

/// Reads `text` as the provider's JSON for `what`; anything else (an HTML page, a
/// truncated answer) is `Parse`, which cools the provider down.
pub fn json<T: serde::de::DeserializeOwned>(
    provider: &str,
    what: &str,
    text: &str,
) -> Result<T, ProviderError> {
    serde_json::from_str(text).map_err(|e| {
        ProviderError::Parse(format!("{provider} {what} answer is not its JSON ({e})"))
    })
}

/// The body of a download, refused above [`MAX_DOWNLOAD_BYTES`] and when empty.
pub async fn download_bytes(
    provider: &str,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, ProviderError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport(&e.without_url()))?
    {
        if bytes.len() + chunk.len() > MAX_DOWNLOAD_BYTES {
            return Err(ProviderError::Permanent(format!(
                "{provider} sent more than {} MiB",
                MAX_DOWNLOAD_BYTES / (1024 * 1024)
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ProviderError::Permanent(format!(
            "{provider} sent an empty file"
        )));
    }
    Ok(bytes)
}

/// How long until the next midnight UTC (when the daily download limits reset).
pub fn until_midnight_utc() -> Duration {
    const DAY: i64 = 24 * 3600 * 1000;
    let now = now_ms();
    let next = (now / DAY + 1) * DAY;
    Duration::from_millis(u64::try_from(next - now).unwrap_or(0))
}

/// Of the release names a subtitle lists, the one that matches most of what the video's
/// name tells (release group first, then source, resolution, codec); the first on a tie.
pub fn best_release<'a>(
    releases: impl IntoIterator<Item = &'a str>,
    facts: &VideoFacts,
) -> Option<String> {
    let ours = &facts.release;
    let mut best: Option<(u32, &str)> = None;
    for name in releases {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let theirs = ReleaseInfo::parse(name);
        let same = |a: bool, points: u32| if a { points } else { 0 };
        let points = same(ours.group.is_some() && ours.group == theirs.group, 8)
            + same(ours.source.is_some() && ours.source == theirs.source, 4)
            + same(
                ours.resolution.is_some() && ours.resolution == theirs.resolution,
                2,
            )
            + same(ours.codec.is_some() && ours.codec == theirs.codec, 1);
        if best.is_none_or(|(top, _)| points > top) {
            best = Some((points, name));
        }
    }
    best.map(|(_, name)| name.to_owned())
}

/// A provider's id parsed from `tt0123456`, `123456` or a number.
pub fn imdb_number(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().trim_start_matches("tt").parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    #[test]
    fn the_release_closest_to_the_video_is_chosen() {
        let facts = VideoFacts::from_path(Path::new(
            "/m/Example Movie (2019)/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
        ));
        let releases = [
            "Example.Movie.2019.720p.WEB-DL.x264-OTHER",
            "Example.Movie.2019.1080p.BluRay.x264-GROUP",
            "Example.Movie.2019.1080p.BluRay.x265-THIRD",
        ];
        assert_eq!(
            best_release(releases, &facts).as_deref(),
            Some("Example.Movie.2019.1080p.BluRay.x264-GROUP")
        );
        assert_eq!(best_release(["", " "], &facts), None);
        assert_eq!(
            best_release(["A", "B"], &facts).as_deref(),
            Some("A"),
            "the first on a tie"
        );
    }

    #[test]
    fn statuses_map_to_the_cooldown_kinds() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            status_error("subdl", StatusCode::TOO_MANY_REQUESTS, wait),
            ProviderError::RateLimited { retry_after: wait }
        );
        assert!(matches!(
            status_error("subdl", StatusCode::FORBIDDEN, None),
            ProviderError::Auth(_)
        ));
        assert!(matches!(
            status_error("subdl", StatusCode::BAD_GATEWAY, None),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            status_error("subdl", StatusCode::BAD_REQUEST, None),
            ProviderError::Permanent(_)
        ));
        assert_eq!(imdb_number(&serde_json::json!("tt0012345")), Some(12345));
        assert_eq!(imdb_number(&serde_json::json!(99)), Some(99));
        assert!(until_midnight_utc() <= Duration::from_secs(24 * 3600));
    }
}
