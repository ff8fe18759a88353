//! Outbound adapters: HTTP clients for the services cuewarden talks to.

pub mod deepl;
pub mod jellyfin;
pub mod jellyfin_subtitles;
pub mod libretranslate;
pub mod openai;
pub mod opensubtitles;
pub mod translators;

/// How long any outbound HTTP request may take.
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The User-Agent of every outbound request.
pub const USER_AGENT: &str = concat!("cuewarden/", env!("CARGO_PKG_VERSION"));

/// A reqwest client with our timeouts and user agent (rustls with the ring provider).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(USER_AGENT)
        .build()
}
