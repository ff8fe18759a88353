//! Outbound adapters: HTTP clients for the services cuewarden talks to.

pub mod deepl;
pub mod gestdown;
pub mod jellyfin;
pub mod jellyfin_subtitles;
pub mod libretranslate;
pub mod openai;
pub mod opensubtitles;
pub mod podnapisi;
pub mod provider_http;
pub mod subdl;
pub mod translators;

use std::rc::Rc;

use cuewarden_actors::clients::SubtitleProvider;

use crate::config::ProviderSettings;

/// How long any outbound HTTP request may take.
pub const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The User-Agent of every outbound request.
pub const USER_AGENT: &str = concat!("cuewarden/", env!("CARGO_PKG_VERSION"));

/// The host (and port) of a URL, for messages (never its path or query: they may carry a
/// key).
pub fn host_of(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => url.scheme().to_owned(),
    }
}

/// What went wrong with an outbound request, for logs, job errors and `/health`: the host
/// it was for (never the path or query, which may carry a key), what reqwest says, and each
/// cause down to the root, e.g. `localhost:9: error sending request: client error (Connect):
/// tcp connect error: Connection refused (os error 111)`.
pub fn request_error(err: reqwest::Error) -> String {
    use std::error::Error as _;
    let host = err
        .url()
        .filter(|url| url.host_str().is_some())
        .map(host_of);
    let err = err.without_url();
    let mut text = host.map(|h| format!("{h}: ")).unwrap_or_default();
    text.push_str(&err.to_string());
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        // Some layers repeat their cause in their own message.
        if !message.is_empty() && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// A reqwest client with our timeouts and user agent (rustls with the ring provider).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(USER_AGENT)
        .build()
}

/// An id of configured credentials that does not reveal them (a hash), so a cooldown for
/// refused credentials ends when they change.
pub fn credentials_id(parts: &[&str]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The enabled subtitle providers, in the configured priority order (`[providers] order`).
pub fn subtitle_providers(
    settings: &ProviderSettings,
    jellyfin: Option<&jellyfin::JellyfinClient>,
) -> anyhow::Result<Vec<Rc<dyn SubtitleProvider>>> {
    use anyhow::Context as _;
    let mut providers: Vec<Rc<dyn SubtitleProvider>> = Vec::new();
    if let Some(os) = &settings.opensubtitles {
        let client = opensubtitles::OpenSubtitles::new(os)
            .context("cannot build the OpenSubtitles client")?;
        providers.push(Rc::new(client));
    }
    if let Some(section) = &settings.subdl {
        providers.push(Rc::new(
            subdl::Subdl::new(section).context("cannot build the Subdl client")?,
        ));
    }
    if let Some(section) = &settings.podnapisi {
        providers.push(Rc::new(
            podnapisi::Podnapisi::new(section).context("cannot build the Podnapisi client")?,
        ));
    }
    if let Some(section) = &settings.gestdown {
        providers.push(Rc::new(
            gestdown::Gestdown::new(section).context("cannot build the Gestdown client")?,
        ));
    }
    if let Some(client) = jellyfin.filter(|_| settings.jellyfin) {
        providers.push(Rc::new(jellyfin_subtitles::JellyfinSubtitles::new(
            client.clone(),
        )));
    }
    providers.sort_by_key(|p| settings.rank(p.name()));
    Ok(providers)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    // See: engine brief, "'error sending request' messages do not name the host nor say
    // 'connection refused'".
    #[test]
    fn a_refused_connection_names_the_host_and_the_root_cause_but_not_the_query() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(async {
                let client = super::http_client().unwrap();
                client
                    .get(format!("http://127.0.0.1:{port}/Items?api_key=secret"))
                    .send()
                    .await
            })
            .unwrap_err();
        let text = super::request_error(err);
        assert!(
            text.starts_with(&format!("127.0.0.1:{port}: error sending request")),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
        assert!(
            !text.contains("secret") && !text.contains("/Items"),
            "{text}"
        );
    }
}
