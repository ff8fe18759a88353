//! `[notify.*]`: who hears about each subtitle written. One table per target; a present table
//! is a target (README, "Notifications"); `[notify]`'s own keys say how notify jobs are tried.

use serde::{Deserialize, Serialize};
use url::Url;

use std::time::Duration;

use cuewarden_actors::notify::{NotifyEvent, NotifyLimits};

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
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
    pub url: String,
    pub token: String,
    pub token_file: Option<String>,
}

impl Default for PlexNotifySection {
    fn default() -> Self {
        Self {
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
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
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
    pub url: String,
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
}

impl Default for KodiNotifySection {
    fn default() -> Self {
        Self {
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
            url: "http://127.0.0.1:8080/jsonrpc".to_owned(),
            username: String::new(),
            password: String::new(),
            password_file: None,
        }
    }
}

/// `[notify.discord]`: a webhook (its URL carries the webhook's token: a secret).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DiscordNotifySection {
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
    pub webhook_url: String,
    pub webhook_url_file: Option<String>,
}

/// `[notify.pushover]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct PushoverNotifySection {
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
    /// The application's API token.
    pub token: String,
    pub token_file: Option<String>,
    /// The user or group key.
    pub user: String,
    /// Comma-separated device names; empty: all of the user's devices.
    pub device: String,
    /// -2 … 1 (2, emergency, needs acknowledgement and is not supported).
    pub priority: i64,
    /// The API (a test server may stand in).
    pub url: String,
}

impl Default for DiscordNotifySection {
    fn default() -> Self {
        Self {
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
            webhook_url: String::new(),
            webhook_url_file: None,
        }
    }
}

impl Default for PushoverNotifySection {
    fn default() -> Self {
        Self {
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
            token: String::new(),
            token_file: None,
            user: String::new(),
            device: String::new(),
            priority: 0,
            url: "https://api.pushover.net".to_owned(),
        }
    }
}

/// `[notify.apprise]`: an Apprise API server, which reaches the services Apprise knows.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct AppriseNotifySection {
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
    /// The Apprise API server.
    pub url: String,
    /// Apprise URLs (`discord://…`, `mailto://…`), space or comma separated: the stateless
    /// `POST /notify`. They carry tokens: a secret.
    pub urls: String,
    pub urls_file: Option<String>,
    /// A configuration kept on the server: `POST /notify/{key}` (when `urls` is empty).
    pub key: String,
    /// Only the server's URLs with this tag (with `key`).
    pub tag: String,
}

impl Default for AppriseNotifySection {
    fn default() -> Self {
        Self {
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
            url: String::new(),
            urls: String::new(),
            urls_file: None,
            key: String::new(),
            tag: String::new(),
        }
    }
}

/// `on`'s default: only written subtitles.
fn default_on() -> Vec<String> {
    vec!["written".to_owned()]
}

/// `[notify.email]`: SMTP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct EmailNotifySection {
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
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
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
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
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
    pub url: String,
    pub topic: String,
    pub token: String,
    pub token_file: Option<String>,
    /// Basic auth instead of a token.
    pub username: String,
    pub password: String,
    pub password_file: Option<String>,
    /// 1 (min) … 5 (max).
    pub priority: i64,
}

impl Default for NtfyNotifySection {
    fn default() -> Self {
        Self {
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
            url: "https://ntfy.sh".to_owned(),
            topic: String::new(),
            token: String::new(),
            token_file: None,
            username: String::new(),
            password: String::new(),
            password_file: None,
            priority: 3,
        }
    }
}

/// `[notify.gotify]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct GotifyNotifySection {
    /// `false`: configured, sends nothing.
    pub enabled: bool,
    /// What it is told of: `written`, `failed`, `upgraded`.
    pub on: Vec<String>,
    /// Items within this many seconds of the first make one message; 0: one each.
    pub digest_seconds: u64,
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
            enabled: true,
            on: default_on(),
            digest_seconds: 0,
            url: String::new(),
            token: String::new(),
            token_file: None,
            priority: 5,
        }
    }
}

/// `[notify]`: one table per target; a present table is a target. Its own keys say how
/// every target's notify jobs are tried.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct NotifySection {
    /// Sends per notify job before it fails.
    pub max_attempts: u32,
    /// The wait after a job's first failure, doubled after each one.
    pub retry_seconds: u64,
    /// The longest wait between two tries (also caps a service's own `retry_after`).
    pub retry_max_seconds: u64,
    /// How long one send may take.
    pub timeout_seconds: u64,
    /// Sends at once, over all targets.
    pub concurrency: u64,
    pub apprise: Option<AppriseNotifySection>,
    pub jellyfin: Option<JellyfinNotifySection>,
    pub plex: Option<PlexNotifySection>,
    pub kodi: Option<KodiNotifySection>,
    pub discord: Option<DiscordNotifySection>,
    pub pushover: Option<PushoverNotifySection>,
    pub email: Option<EmailNotifySection>,
    pub ntfy: Option<NtfyNotifySection>,
    pub gotify: Option<GotifyNotifySection>,
}

impl Default for NotifySection {
    fn default() -> Self {
        let limits = NotifyLimits::default();
        Self {
            max_attempts: limits.max_attempts,
            retry_seconds: limits.retry_base.as_secs(),
            retry_max_seconds: limits.retry_max.as_secs(),
            timeout_seconds: limits.timeout.as_secs(),
            concurrency: limits.concurrency as u64,
            apprise: None,
            jellyfin: None,
            plex: None,
            kodi: None,
            discord: None,
            pushover: None,
            email: None,
            ntfy: None,
            gotify: None,
        }
    }
}

impl RawSection for NotifySection {
    fn defaults() -> Option<toml::Value> {
        toml::Value::try_from(Self {
            apprise: Some(AppriseNotifySection::default()),
            jellyfin: Some(JellyfinNotifySection::default()),
            plex: Some(PlexNotifySection::default()),
            kodi: Some(KodiNotifySection::default()),
            discord: Some(DiscordNotifySection::default()),
            pushover: Some(PushoverNotifySection::default()),
            email: Some(EmailNotifySection::default()),
            ntfy: Some(NtfyNotifySection::default()),
            gotify: Some(GotifyNotifySection::default()),
            ..Self::default()
        })
        .ok()
    }
}

/// When a target is told, common to every `[notify.NAME]` but Jellyfin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRules {
    /// `enabled = false`: configured, sends nothing.
    pub enabled: bool,
    /// The events it is told of.
    pub on: Vec<NotifyEvent>,
    /// The digest window, if any.
    pub digest: Option<Duration>,
}

/// `[notify.apprise]`.
#[derive(Debug, Clone)]
pub struct AppriseNotify {
    /// When it is told.
    pub rules: TargetRules,
    /// The Apprise API server.
    pub url: Url,
    /// Stateless Apprise URLs, or else
    pub urls: Option<Secret>,
    /// the server's configuration key,
    pub key: String,
    /// and its tag (may be empty).
    pub tag: String,
}

/// `[notify.*]`, validated: `Some` for each configured target.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// How notify jobs are tried (`[notify]`'s own keys).
    pub limits: NotifyLimits,
    /// `[notify.apprise]`.
    pub apprise: Option<AppriseNotify>,
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
    /// When it is told.
    pub rules: TargetRules,
    /// The Plex Media Server.
    pub url: Url,
    /// `X-Plex-Token`.
    pub token: Secret,
}

/// `[notify.kodi]`.
#[derive(Debug, Clone)]
pub struct KodiNotify {
    /// When it is told.
    pub rules: TargetRules,
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
    /// When it is told.
    pub rules: TargetRules,
    /// The webhook URL, checked to be http(s); it carries the webhook's token.
    pub webhook_url: Secret,
}

/// `[notify.pushover]`.
#[derive(Debug, Clone)]
pub struct PushoverNotify {
    /// When it is told.
    pub rules: TargetRules,
    /// The application token.
    pub token: Secret,
    /// The user or group key.
    pub user: String,
    /// Device names; empty: all the user's devices.
    pub devices: Vec<String>,
    /// -2 … 1.
    pub priority: i8,
    /// The API.
    pub url: Url,
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
    /// When it is told.
    pub rules: TargetRules,
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
    /// When it is told.
    pub rules: TargetRules,
    /// The server.
    pub url: Url,
    /// The topic.
    pub topic: String,
    /// Access token, if the topic needs one.
    pub token: Option<Secret>,
    /// Basic auth user (empty: none).
    pub username: String,
    /// Its password.
    pub password: Option<Secret>,
    /// 1 … 5.
    pub priority: u8,
}

/// `[notify.gotify]`.
#[derive(Debug, Clone)]
pub struct GotifyNotify {
    /// When it is told.
    pub rules: TargetRules,
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
        let NotifySection {
            max_attempts,
            retry_seconds,
            retry_max_seconds,
            timeout_seconds,
            concurrency,
            apprise,
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
            let rules = rules(check, "notify.plex", p.enabled, &p.on, p.digest_seconds);
            let url = check.http_url(&p.url, "notify.plex.url");
            let token = check.secret(&p.token, p.token_file.as_deref(), "notify.plex.token");
            check.required(
                token.is_some(),
                "notify.plex.token",
                "required when [notify.plex] is present (the X-Plex-Token)",
            );
            Some(PlexNotify {
                rules: rules?,
                url: url?,
                token: token?,
            })
        });
        let kodi = kodi.and_then(|k| {
            let rules = rules(check, "notify.kodi", k.enabled, &k.on, k.digest_seconds);
            let url = check.http_url(&k.url, "notify.kodi.url");
            let password = check.secret(
                &k.password,
                k.password_file.as_deref(),
                "notify.kodi.password",
            );
            let paired = check.together("notify.kodi", &k.username, password.as_ref());
            paired.then_some(())?;
            Some(KodiNotify {
                rules: rules?,
                url: url?,
                username: k.username,
                password,
            })
        });
        let discord = discord.and_then(|d| {
            let rules = rules(check, "notify.discord", d.enabled, &d.on, d.digest_seconds);
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
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(DiscordNotify {
                    rules: rules?,
                    webhook_url,
                }),
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
            let rules = rules(check, "notify.pushover", p.enabled, &p.on, p.digest_seconds);
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
            let url = check.http_url(&p.url, "notify.pushover.url");
            Some(PushoverNotify {
                rules: rules?,
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
                url: url?,
            })
        });
        let email = email.and_then(|e| {
            let rules = rules(check, "notify.email", e.enabled, &e.on, e.digest_seconds);
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
                rules: rules?,
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
            let rules = rules(check, "notify.ntfy", n.enabled, &n.on, n.digest_seconds);
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
            let password = check.secret(
                &n.password,
                n.password_file.as_deref(),
                "notify.ntfy.password",
            );
            let paired = check.together("notify.ntfy", &n.username, password.as_ref());
            if token.is_some() && password.is_some() {
                check.add(
                    "notify.ntfy.token",
                    "set either a token or username and password, not both",
                );
                return None;
            }
            paired.then_some(())?;
            let priority = check.in_range(n.priority, 1, 5, "notify.ntfy.priority");
            (topic_ok && !n.topic.is_empty()).then_some(())?;
            Some(NtfyNotify {
                rules: rules?,
                url: url?,
                topic: n.topic,
                token,
                username: n.username,
                password,
                priority: u8::try_from(priority?).ok()?,
            })
        });
        let gotify = gotify.and_then(|g| {
            let rules = rules(check, "notify.gotify", g.enabled, &g.on, g.digest_seconds);
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
                rules: rules?,
                url: url?,
                token: token?,
                priority: u8::try_from(priority?).ok()?,
            })
        });
        check.at_least_one(u64::from(max_attempts), "notify.max_attempts");
        check.at_least_one(retry_seconds, "notify.retry_seconds");
        check.at_least_one(retry_max_seconds, "notify.retry_max_seconds");
        check.at_least_one(timeout_seconds, "notify.timeout_seconds");
        check.at_least_one(concurrency, "notify.concurrency");
        let limits = NotifyLimits {
            max_attempts: max_attempts.max(1),
            retry_base: Duration::from_secs(retry_seconds.max(1)),
            retry_max: Duration::from_secs(retry_max_seconds.max(retry_seconds).max(1)),
            timeout: Duration::from_secs(timeout_seconds.max(1)),
            concurrency: usize::try_from(concurrency.clamp(1, 64)).unwrap_or(4),
        };
        let apprise = apprise.and_then(|a| {
            let rules = rules(check, "notify.apprise", a.enabled, &a.on, a.digest_seconds);
            let url = if a.url.is_empty() {
                check.required(
                    false,
                    "notify.apprise.url",
                    "required when [notify.apprise] is present (the Apprise API server)",
                );
                None
            } else {
                check.http_url(&a.url, "notify.apprise.url")
            };
            let urls = check.secret(&a.urls, a.urls_file.as_deref(), "notify.apprise.urls");
            if urls.is_none() && a.key.trim().is_empty() && !check.has("notify.apprise.urls_file") {
                check.add(
                    "notify.apprise.urls",
                    "set urls (Apprise URLs) or key (a configuration kept on the server)",
                );
                return None;
            }
            Some(AppriseNotify {
                rules: rules?,
                url: url?,
                urls,
                key: a.key.trim().to_owned(),
                tag: a.tag.trim().to_owned(),
            })
        });
        NotifySettings {
            limits,
            apprise,
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

/// The common keys of a target: `enabled`, `on` (known events, at least one), and
/// `digest_seconds` (at most a day).
fn rules(
    check: &mut Check,
    section: &str,
    enabled: bool,
    on: &[String],
    digest_seconds: u64,
) -> Option<TargetRules> {
    let mut events = Vec::new();
    let mut ok = true;
    for (i, name) in on.iter().enumerate() {
        match NotifyEvent::parse(name) {
            Some(event) if !events.contains(&event) => events.push(event),
            Some(_) => {}
            None => {
                check.add(
                    format!("{section}.on[{i}]"),
                    format!(
                        "{name:?} is not an event; use \"written\", \"failed\" or \"upgraded\""
                    ),
                );
                ok = false;
            }
        }
    }
    if on.is_empty() {
        check.add(
            format!("{section}.on"),
            "name at least one event (\"written\", \"failed\", \"upgraded\"), or set enabled = false",
        );
        ok = false;
    }
    if digest_seconds > 86_400 {
        check.add(
            format!("{section}.digest_seconds"),
            format!("{digest_seconds} is more than a day (86400)"),
        );
        ok = false;
    }
    ok.then(|| TargetRules {
        enabled,
        on: events,
        digest: (digest_seconds > 0).then(|| Duration::from_secs(digest_seconds)),
    })
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
