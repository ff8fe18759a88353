//! `[notify.*]`: who hears about each subtitle written. One table per target; a present table
//! is a target. Validated; this version does not send notifications yet.

use serde::{Deserialize, Serialize};
use url::Url;

use super::Secret;
use super::file::RawSection;
use super::values::{Check, with_scheme};

/// `[notify.jellyfin]`: ask Jellyfin (the `[jellyfin]` server) to refresh the item.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct JellyfinNotifySection {
    pub refresh: bool,
}

impl Default for JellyfinNotifySection {
    fn default() -> Self {
        Self { refresh: true }
    }
}

/// `[notify.plex]`: a partial scan of the section holding the video.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct PlexNotifySection {
    pub url: String,
    pub token: String,
    pub token_file: Option<String>,
}

impl Default for PlexNotifySection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:32400".to_owned(),
            token: String::new(),
            token_file: None,
        }
    }
}

/// `[notify.kodi]`: `VideoLibrary.Scan` over JSON-RPC.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct KodiNotifySection {
    pub url: String,
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
}

impl Default for KodiNotifySection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/jsonrpc".to_owned(),
            username: String::new(),
            password: String::new(),
            password_file: None,
        }
    }
}

/// `[notify.discord]`: a webhook (its URL carries the webhook's token: a secret).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct DiscordNotifySection {
    pub webhook_url: String,
    pub webhook_url_file: Option<String>,
}

/// `[notify.pushover]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PushoverNotifySection {
    /// The application's API token.
    pub token: String,
    pub token_file: Option<String>,
    /// The user or group key.
    pub user: String,
    /// Comma-separated device names; empty: all of the user's devices.
    pub device: String,
    /// -2 … 1 (2, emergency, needs acknowledgement and is not supported).
    pub priority: i64,
}

/// `[notify.email]`: SMTP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct EmailNotifySection {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

impl Default for EmailNotifySection {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::StartTls,
            username: String::new(),
            password: String::new(),
            password_file: None,
            from: String::new(),
            to: Vec::new(),
        }
    }
}

/// `[notify.ntfy]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct NtfyNotifySection {
    pub url: String,
    pub topic: String,
    pub token: String,
    pub token_file: Option<String>,
    /// 1 (min) … 5 (max).
    pub priority: i64,
}

impl Default for NtfyNotifySection {
    fn default() -> Self {
        Self {
            url: "https://ntfy.sh".to_owned(),
            topic: String::new(),
            token: String::new(),
            token_file: None,
            priority: 3,
        }
    }
}

/// `[notify.gotify]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct GotifyNotifySection {
    pub url: String,
    /// The application token.
    pub token: String,
    pub token_file: Option<String>,
    /// 0 … 10.
    pub priority: i64,
}

impl Default for GotifyNotifySection {
    fn default() -> Self {
        Self {
            url: String::new(),
            token: String::new(),
            token_file: None,
            priority: 5,
        }
    }
}

/// `[notify]`: one table per target; a present table is a target.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct NotifySection {
    pub jellyfin: Option<JellyfinNotifySection>,
    pub plex: Option<PlexNotifySection>,
    pub kodi: Option<KodiNotifySection>,
    pub discord: Option<DiscordNotifySection>,
    pub pushover: Option<PushoverNotifySection>,
    pub email: Option<EmailNotifySection>,
    pub ntfy: Option<NtfyNotifySection>,
    pub gotify: Option<GotifyNotifySection>,
}

impl RawSection for NotifySection {
    fn defaults() -> Option<toml::Value> {
        toml::Value::try_from(Self {
            jellyfin: Some(JellyfinNotifySection::default()),
            plex: Some(PlexNotifySection::default()),
            kodi: Some(KodiNotifySection::default()),
            discord: Some(DiscordNotifySection::default()),
            pushover: Some(PushoverNotifySection::default()),
            email: Some(EmailNotifySection::default()),
            ntfy: Some(NtfyNotifySection::default()),
            gotify: Some(GotifyNotifySection::default()),
        })
        .ok()
    }
}

/// `[notify.*]`, validated: `Some` for each configured target.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// `[notify.jellyfin]` (reaches the `[jellyfin]` server).
    pub jellyfin: Option<JellyfinNotify>,
    /// `[notify.plex]`.
    pub plex: Option<PlexNotify>,
    /// `[notify.kodi]`.
    pub kodi: Option<KodiNotify>,
    /// `[notify.discord]`.
    pub discord: Option<DiscordNotify>,
    /// `[notify.pushover]`.
    pub pushover: Option<PushoverNotify>,
    /// `[notify.email]`.
    pub email: Option<EmailNotify>,
    /// `[notify.ntfy]`.
    pub ntfy: Option<NtfyNotify>,
    /// `[notify.gotify]`.
    pub gotify: Option<GotifyNotify>,
}

/// `[notify.jellyfin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JellyfinNotify {
    /// Whether to ask Jellyfin to refresh the item once its subtitle is written.
    pub refresh: bool,
}

/// `[notify.plex]`.
#[derive(Debug, Clone)]
pub struct PlexNotify {
    /// The Plex Media Server.
    pub url: Url,
    /// `X-Plex-Token`.
    pub token: Secret,
}

/// `[notify.kodi]`.
#[derive(Debug, Clone)]
pub struct KodiNotify {
    /// The JSON-RPC endpoint.
    pub url: Url,
    /// HTTP basic auth user; empty: none.
    pub username: String,
    /// Its password.
    pub password: Option<Secret>,
}

/// `[notify.discord]`.
#[derive(Debug, Clone)]
pub struct DiscordNotify {
    /// The webhook URL, checked to be http(s); it carries the webhook's token.
    pub webhook_url: Secret,
}

/// `[notify.pushover]`.
#[derive(Debug, Clone)]
pub struct PushoverNotify {
    /// The application token.
    pub token: Secret,
    /// The user or group key.
    pub user: String,
    /// Device names; empty: all the user's devices.
    pub devices: Vec<String>,
    /// -2 … 1.
    pub priority: i8,
}

/// How to secure the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[serde(rename = "starttls")]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (a relay on localhost).
    None,
}

/// `[notify.email]`.
#[derive(Debug, Clone)]
pub struct EmailNotify {
    /// SMTP server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Connection security.
    pub security: SmtpSecurity,
    /// SMTP user; empty: no authentication.
    pub username: String,
    /// Its password.
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
    /// Recipients, at least one.
    pub to: Vec<String>,
}

/// `[notify.ntfy]`.
#[derive(Debug, Clone)]
pub struct NtfyNotify {
    /// The server.
    pub url: Url,
    /// The topic.
    pub topic: String,
    /// Access token, if the topic needs one.
    pub token: Option<Secret>,
    /// 1 … 5.
    pub priority: u8,
}

/// `[notify.gotify]`.
#[derive(Debug, Clone)]
pub struct GotifyNotify {
    /// The server.
    pub url: Url,
    /// The application token.
    pub token: Secret,
    /// 0 … 10.
    pub priority: u8,
}

impl NotifySettings {
    /// Checks each `[notify.*]` target present; a target with a problem is left out.
    pub(crate) fn with_config(
        notify: NotifySection,
        jellyfin_present: bool,
        check: &mut Check,
    ) -> Self {
        // `[notify.jellyfin]` is in use: it decides the refresh after a write.
        let any = notify.plex.is_some()
            || notify.kodi.is_some()
            || notify.discord.is_some()
            || notify.pushover.is_some()
            || notify.email.is_some()
            || notify.ntfy.is_some()
            || notify.gotify.is_some();
        if any {
            check.not_yet_active.push("notify");
        }
        let NotifySection {
            jellyfin,
            plex,
            kodi,
            discord,
            pushover,
            email,
            ntfy,
            gotify,
        } = notify;
        let jellyfin = jellyfin.and_then(|j| {
            if !jellyfin_present {
                check.add(
                    "notify.jellyfin",
                    "needs a [jellyfin] section (the server to refresh)",
                );
                return None;
            }
            Some(JellyfinNotify { refresh: j.refresh })
        });
        let plex = plex.and_then(|p| {
            let url = check.http_url(&p.url, "notify.plex.url");
            let token = check.secret(&p.token, p.token_file.as_deref(), "notify.plex.token");
            check.required(
                token.is_some(),
                "notify.plex.token",
                "required when [notify.plex] is present (the X-Plex-Token)",
            );
            Some(PlexNotify {
                url: url?,
                token: token?,
            })
        });
        let kodi = kodi.and_then(|k| {
            let url = check.http_url(&k.url, "notify.kodi.url");
            let password = check.secret(
                &k.password,
                k.password_file.as_deref(),
                "notify.kodi.password",
            );
            let paired = check.together("notify.kodi", &k.username, password.as_ref());
            paired.then_some(())?;
            Some(KodiNotify {
                url: url?,
                username: k.username,
                password,
            })
        });
        let discord = discord.and_then(|d| {
            let key = "notify.discord.webhook_url";
            let webhook_url = check.secret(&d.webhook_url, d.webhook_url_file.as_deref(), key);
            check.required(
                webhook_url.is_some(),
                key,
                "required when [notify.discord] is present",
            );
            let webhook_url = webhook_url?;
            // The URL carries the webhook's token: never print it.
            if with_scheme(webhook_url.expose()).is_some() {
                check.add(key, "is missing the scheme; use https://");
                return None;
            }
            match Url::parse(webhook_url.expose()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    Some(DiscordNotify { webhook_url })
                }
                Ok(url) => {
                    check.add(
                        key,
                        format!("has scheme {:?}; use http or https", url.scheme()),
                    );
                    None
                }
                Err(err) => {
                    check.add(key, format!("is not a URL ({err})"));
                    None
                }
            }
        });
        let pushover = pushover.and_then(|p| {
            let token = check.secret(&p.token, p.token_file.as_deref(), "notify.pushover.token");
            check.required(
                token.is_some(),
                "notify.pushover.token",
                "required when [notify.pushover] is present (the application's API token)",
            );
            check.required(
                !p.user.trim().is_empty(),
                "notify.pushover.user",
                "required when [notify.pushover] is present (the user or group key)",
            );
            let priority = check.in_range(p.priority, -2, 1, "notify.pushover.priority");
            Some(PushoverNotify {
                token: token?,
                user: Some(p.user.trim().to_owned()).filter(|u| !u.is_empty())?,
                devices: p
                    .device
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect(),
                priority: i8::try_from(priority?).ok()?,
            })
        });
        let email = email.and_then(|e| {
            check.required(
                !e.host.trim().is_empty(),
                "notify.email.host",
                "required when [notify.email] is present (the SMTP server)",
            );
            if e.port == 0 {
                check.add("notify.email.port", "must be at least 1");
            }
            let password = check.secret(
                &e.password,
                e.password_file.as_deref(),
                "notify.email.password",
            );
            let paired = check.together("notify.email", &e.username, password.as_ref());
            let mut addresses_ok = true;
            if e.from.is_empty() {
                check.required(
                    false,
                    "notify.email.from",
                    "required when [notify.email] is present",
                );
                addresses_ok = false;
            } else if !is_address(&e.from) {
                check.add(
                    "notify.email.from",
                    format!("{:?} is not an e-mail address", e.from),
                );
                addresses_ok = false;
            }
            if e.to.is_empty() && !check.has("notify.email.to") {
                check.add("notify.email.to", "name at least one recipient");
                addresses_ok = false;
            }
            for (i, to) in e.to.iter().enumerate() {
                if !is_address(to) {
                    check.add(
                        format!("notify.email.to[{i}]"),
                        format!("{to:?} is not an e-mail address"),
                    );
                    addresses_ok = false;
                }
            }
            (paired && addresses_ok && e.port != 0 && !e.host.trim().is_empty()).then_some(())?;
            Some(EmailNotify {
                host: e.host.trim().to_owned(),
                port: e.port,
                security: e.security,
                username: e.username,
                password,
                from: e.from,
                to: e.to,
            })
        });
        let ntfy = ntfy.and_then(|n| {
            let url = check.http_url(&n.url, "notify.ntfy.url");
            let topic_ok = n.topic.len() <= 64
                && n.topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if n.topic.is_empty() {
                check.required(
                    false,
                    "notify.ntfy.topic",
                    "required when [notify.ntfy] is present",
                );
            } else if !topic_ok {
                check.add(
                    "notify.ntfy.topic",
                    format!("{:?} is not a topic (1-64 of A-Z a-z 0-9 - _)", n.topic),
                );
            }
            let token = check.secret(&n.token, n.token_file.as_deref(), "notify.ntfy.token");
            let priority = check.in_range(n.priority, 1, 5, "notify.ntfy.priority");
            (topic_ok && !n.topic.is_empty()).then_some(())?;
            Some(NtfyNotify {
                url: url?,
                topic: n.topic,
                token,
                priority: u8::try_from(priority?).ok()?,
            })
        });
        let gotify = gotify.and_then(|g| {
            let url = if g.url.is_empty() {
                check.required(
                    false,
                    "notify.gotify.url",
                    "required when [notify.gotify] is present",
                );
                None
            } else {
                check.http_url(&g.url, "notify.gotify.url")
            };
            let token = check.secret(&g.token, g.token_file.as_deref(), "notify.gotify.token");
            check.required(
                token.is_some(),
                "notify.gotify.token",
                "required when [notify.gotify] is present (the application token)",
            );
            let priority = check.in_range(g.priority, 0, 10, "notify.gotify.priority");
            Some(GotifyNotify {
                url: url?,
                token: token?,
                priority: u8::try_from(priority?).ok()?,
            })
        });
        NotifySettings {
            jellyfin,
            plex,
            kodi,
            discord,
            pushover,
            email,
            ntfy,
            gotify,
        }
    }
}

/// `local@domain`, without spaces or angle brackets (a display name is not supported).
fn is_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !address
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}
