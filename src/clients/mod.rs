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
