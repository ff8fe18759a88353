//! Configuration: raw file → environment overrides → validated, typed [`Settings`].
//!
//! Every problem is collected and reported at once, one line each, naming the full key
//! (`jellyfin.url: …`, `libraries[1].path: …`) and, when an environment variable set it, the
//! variable (`server.listen (from CUEWARDEN__SERVER__LISTEN): …`). A key of the wrong type is
//! reported and dropped, so it hides neither the other keys of its section nor their checks.
//! `CUEWARDEN__SECTION__KEY=value` overrides `[section] key`; the value is read as the type the
//! key has (string, number, bool, list). Secrets are [`Secret`]s, which never print.

pub mod file;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cuewarden_actors::Language;
use cuewarden_actors::downloader::HearingImpaired;
use cuewarden_actors::files::normalize_lexically;
use cuewarden_actors::job_manager::ManagerSettings;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use url::Url;

use file::*;

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "CUEWARDEN_CONFIG";
/// Prefix of key overrides in the environment.
pub const ENV_PREFIX: &str = "CUEWARDEN__";
/// Where packages install the config.
pub const SYSTEM_CONFIG: &str = "/etc/cuewarden/config.toml";
/// The reference config shipped at the repository root.
pub const REFERENCE_CONFIG: &str = include_str!("../../config.toml");

/// A secret value: printed as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Every problem found in a configuration, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file checked, if any.
    pub origin: String,
    /// `key: problem` lines.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} has {} problem(s):", self.origin, self.problems.len())?;
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The API key; `None`: generated on first start and kept in `data_dir`.
    pub api_key: Option<Secret>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long in-flight jobs may take to checkpoint on shutdown.
    pub shutdown_grace: Duration,
}

/// `[languages]`, validated.
#[derive(Debug, Clone)]
pub struct LanguageSettings {
    /// Wanted languages.
    pub wanted: Vec<Language>,
    /// Languages to translate from.
    pub translate_from: Vec<Language>,
    /// Hearing-impaired preference.
    pub hearing_impaired: HearingImpaired,
    /// Lowest acceptable score.
    pub min_score: u32,
}

/// How another service names a library folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMapping {
    /// The other service's prefix.
    pub from: PathBuf,
    /// Ours.
    pub to: PathBuf,
}

/// `[jellyfin]`, validated.
#[derive(Debug, Clone)]
pub struct JellyfinSettings {
    /// Base URL.
    pub url: Url,
    /// API key for REST calls.
    pub api_key: Secret,
    /// User for the WebSocket session.
    pub username: String,
    /// Its password.
    pub password: Option<Secret>,
    /// Whether to use the WebSocket.
    pub websocket: bool,
    /// First reconnect delay.
    pub reconnect_delay: Duration,
    /// Longest reconnect delay.
    pub max_reconnect_delay: Duration,
    /// Incremental sync interval when the socket is off or down.
    pub poll_interval: Duration,
    /// Full sync interval.
    pub fallback_sync_interval: Duration,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
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

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file read, if any.
    pub origin: Option<PathBuf>,
    /// `[server]`.
    pub server: ServerSettings,
    /// `[storage] data_dir`, absolute.
    pub data_dir: PathBuf,
    /// `[languages]`.
    pub languages: LanguageSettings,
    /// `[[libraries]]` paths, absolute and normalised.
    pub libraries: Vec<PathBuf>,
    /// `[[path_mappings]]`.
    pub path_mappings: Vec<PathMapping>,
    /// `[jellyfin]`, if configured.
    pub jellyfin: Option<JellyfinSettings>,
    /// `[jobs]`.
    pub jobs: ManagerSettings,
    /// `[notify.*]`.
    pub notify: NotifySettings,
    /// Configured sections this version validates but does not act on yet (logged at
    /// start-up, so nobody wonders why their provider is never asked).
    pub not_yet_active: Vec<&'static str>,
}

impl Settings {
    /// Translates a path as another service sees it into ours (longest prefix wins).
    pub fn map_path(&self, path: &Path) -> PathBuf {
        self.path_mappings
            .iter()
            .filter(|m| path.starts_with(&m.from))
            .max_by_key(|m| m.from.components().count())
            .and_then(|m| path.strip_prefix(&m.from).ok().map(|rest| m.to.join(rest)))
            .unwrap_or_else(|| path.to_owned())
    }
}

/// Finds the config file: `--config`, `$CUEWARDEN_CONFIG`, `./config.toml`,
/// `/etc/cuewarden/config.toml`. `None` if none exists (built-in defaults apply).
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    if let Some(path) = std::env::var_os(CONFIG_ENV) {
        return Some(PathBuf::from(path));
    }
    [Path::new("config.toml"), Path::new(SYSTEM_CONFIG)]
        .into_iter()
        .find(|p| p.is_file())
        .map(Path::to_owned)
}

/// Reads, overrides from the process environment, and validates.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigErrors> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    match path {
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|err| ConfigErrors {
                origin: origin.clone(),
                problems: vec![format!("{origin}: cannot read: {err}")],
            })?;
            let mut settings = parse(&text, &origin, &env)?;
            settings.origin = Some(path.to_owned());
            Ok(settings)
        }
        None => parse("", "built-in defaults", &env),
    }
}

/// Validates `text` with the overrides in `env`.
pub fn parse(text: &str, origin: &str, env: &[(String, String)]) -> Result<Settings, ConfigErrors> {
    let errors = |problems| ConfigErrors {
        origin: origin.to_owned(),
        problems,
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| errors(vec![toml_error(origin, text, &err)]))?;
    let mut problems = Problems::default();
    apply_env(&mut table, env, &mut problems);
    let file = read_file(&table, &mut problems);
    match validate(file, &mut problems) {
        Some(settings) if problems.is_empty() => Ok(settings),
        _ => Err(errors(problems.into_lines())),
    }
}

/// A TOML syntax error as one line, with the line and column it is at.
fn toml_error(origin: &str, text: &str, err: &toml::de::Error) -> String {
    let at = err
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default();
    one_line(&format!("{origin}: not valid TOML{at}: {}", err.message()))
}

/// The problems found so far, each with the key it is about.
#[derive(Debug, Default)]
struct Problems {
    /// `(key, message)`, in the order found.
    found: Vec<(String, String)>,
    /// `(key, variable)` for every key set from the environment.
    from_env: Vec<(String, String)>,
}

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.found.push((key.into(), message.to_string()));
    }

    /// Whether a problem was already reported for `key` or a key inside it.
    fn has(&self, key: &str) -> bool {
        self.found.iter().any(|(found, _)| within(found, key))
    }

    fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// One line per problem: `key: message`, or `key (from VARIABLE): message` when the key
    /// (or the table holding it) was set from the environment.
    fn into_lines(mut self) -> Vec<String> {
        // Grouped by section, in the file's order of sections; the environment's own
        // problems and unknown sections first.
        self.found.sort_by_key(|(key, _)| {
            let section = key.split(['.', '[']).next().unwrap_or_default();
            SECTIONS
                .iter()
                .position(|s| *s == section)
                .map_or(0, |i| i + 1)
        });
        self.found
            .iter()
            .map(|(key, message)| {
                let variable = self
                    .from_env
                    .iter()
                    .filter(|(set, _)| within(key, set))
                    .max_by_key(|(set, _)| set.len())
                    .map(|(_, variable)| variable);
                match variable {
                    Some(variable) => one_line(&format!("{key} (from {variable}): {message}")),
                    None => one_line(&format!("{key}: {message}")),
                }
            })
            .collect()
    }
}

/// Whether `key` is `outer` or a key inside it (`outer.x`, `outer[0]`).
fn within(key: &str, outer: &str) -> bool {
    key.strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// `text` on one line: line breaks become spaces.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads every section leniently (see [`lenient`]): what is absent or unusable takes its default.
fn read_file(table: &toml::Table, problems: &mut Problems) -> ConfigFile {
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.add(key.as_str(), "unknown key");
        }
    }
    ConfigFile {
        server: section(table, "server", problems).unwrap_or_default(),
        storage: section(table, "storage", problems).unwrap_or_default(),
        languages: section(table, "languages", problems).unwrap_or_default(),
        libraries: entries(table, "libraries", problems),
        path_mappings: entries(table, "path_mappings", problems),
        jellyfin: section(table, "jellyfin", problems),
        watcher: section(table, "watcher", problems).unwrap_or_default(),
        providers: section(table, "providers", problems).unwrap_or_default(),
        translator: section(table, "translator", problems),
        notify: section(table, "notify", problems).unwrap_or_default(),
        schedule: section(table, "schedule", problems).unwrap_or_default(),
        retention: section(table, "retention", problems).unwrap_or_default(),
        jobs: section(table, "jobs", problems).unwrap_or_default(),
    }
}

/// `[name]`, if present and usable.
fn section<T: DeserializeOwned>(
    table: &toml::Table,
    name: &str,
    problems: &mut Problems,
) -> Option<T> {
    match table.get(name)? {
        value @ toml::Value::Table(_) => lenient(value, name, problems),
        other => {
            problems.add(
                name,
                format!("expected a table ([{name}]), found {}", other.type_str()),
            );
            None
        }
    }
}

/// `[[name]]`: each usable entry with its index in the file; each entry is checked on its own.
fn entries<T: DeserializeOwned>(
    table: &toml::Table,
    name: &str,
    problems: &mut Problems,
) -> Vec<(usize, T)> {
    match table.get(name) {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let key = format!("{name}[{i}]");
                match item {
                    toml::Value::Table(_) => lenient(item, &key, problems).map(|entry| (i, entry)),
                    other => {
                        problems.add(key, format!("expected a table, found {}", other.type_str()));
                        None
                    }
                }
            })
            .collect(),
        Some(other) => {
            problems.add(
                name,
                format!(
                    "expected an array of tables ([[{name}]]), found {}",
                    other.type_str()
                ),
            );
            Vec::new()
        }
    }
}

/// Deserializes `value` (found at `key`) as a `T`, reporting every key of the wrong type,
/// every missing required key and every unknown key, each with its full path.
///
/// serde stops at the first error, so a key that fails is reported, dropped (it takes its
/// default) and the rest deserialized again: one bad key hides neither the others nor the
/// checks that run later on the good values. A table missing a serde-required key cannot be
/// built: it is reported (`key.field: missing`, serde names the first such field) and dropped
/// whole, which is why the sections declare their required keys as `Option`s and let
/// validation report them. `None` when `value` cannot be a `T` at all.
fn lenient<T: DeserializeOwned>(
    value: &toml::Value,
    key: &str,
    problems: &mut Problems,
) -> Option<T> {
    let mut value = value.clone();
    let mut unknown: Vec<String> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    // Every round drops a key or ends, so this terminates.
    let result = loop {
        let mut collect = |path: serde_ignored::Path<'_>| {
            let path = key_path(&path);
            if !unknown.contains(&path) {
                unknown.push(path);
            }
        };
        let deserializer = serde_ignored::Deserializer::new(value.clone(), &mut collect);
        let err = match serde_path_to_error::deserialize::<_, T>(deserializer) {
            Ok(parsed) => break Some(parsed),
            Err(err) => err,
        };
        let path: Vec<Segment> = err.path().iter().cloned().collect();
        let message = err.inner().to_string();
        let message = message.lines().next().unwrap_or_default().trim();
        // What goes before the next round: the key of the wrong type, or the table missing
        // a required key. Inside a list the whole list goes (its later items would shift).
        let prune: Vec<Segment> = path
            .iter()
            .take_while(|s| matches!(s, Segment::Map { .. }))
            .cloned()
            .collect();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'));
        if let Some(field) = missing {
            let at = join(&join(key, &render(&path)), field);
            if !dropped.contains(&at) {
                problems.add(at, "missing");
            }
        } else {
            problems.add(join(key, &render(&path)), message);
        }
        if prune.is_empty() || !remove(&mut value, &prune) {
            break None;
        }
        dropped.push(join(key, &render(&prune)));
    };
    for path in unknown {
        problems.add(join(key, &path), "unknown key");
    }
    result
}

/// `key` and a path inside it: `a` + `b.c` → `a.b.c`, `a` + `[0]` → `a[0]`.
fn join(key: &str, path: &str) -> String {
    if path.is_empty() || path == "." {
        key.to_owned()
    } else if path.starts_with('[') {
        format!("{key}{path}")
    } else {
        format!("{key}.{path}")
    }
}

/// A serde path as the config spells it: `a.b`, `a[0]`.
fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// Removes the key at `path` (map keys only); false if there is none.
fn remove(value: &mut toml::Value, path: &[Segment]) -> bool {
    match path {
        [Segment::Map { key }] => value
            .as_table_mut()
            .and_then(|table| table.remove(key))
            .is_some(),
        [Segment::Map { key }, rest @ ..] => value.get_mut(key).is_some_and(|v| remove(v, rest)),
        _ => false,
    }
}

/// An ignored key's path as the config spells it: `a.b`, `libraries[0].pth` (serde_ignored's
/// own rendering marks options with `?` and lists with `.0`).
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => match key_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}

/// Checks the raw file and types it; `None` if something needed is unusable (the problems
/// say why).
fn validate(file: ConfigFile, problems: &mut Problems) -> Option<Settings> {
    let ConfigFile {
        server,
        storage,
        languages,
        libraries,
        path_mappings: mappings,
        jellyfin,
        watcher: _,
        providers,
        translator,
        notify,
        schedule,
        retention: _,
        jobs,
    } = file;

    let listen = server
        .listen
        .parse::<SocketAddr>()
        .map_err(|err| {
            problems.add(
                "server.listen",
                format!("{:?} is not an address:port ({err})", server.listen),
            )
        })
        .ok();
    let api_key = secret(
        &server.api_key,
        server.api_key_file.as_deref(),
        "server.api_key",
        problems,
    );
    if server.max_body_bytes < 1024 {
        problems.add(
            "server.max_body_bytes",
            format!("{} is too small (at least 1024)", server.max_body_bytes),
        );
    }
    if storage.data_dir.trim().is_empty() {
        problems.add("storage.data_dir", "must not be empty");
    }
    let wanted = languages_of(&languages.wanted, "languages.wanted", problems);
    if languages.wanted.is_empty() {
        problems.add("languages.wanted", "name at least one language");
    }
    let translate_from = languages_of(
        &languages.translate_from,
        "languages.translate_from",
        problems,
    );
    let hearing_impaired = match languages.hearing_impaired.as_str() {
        "prefer" => HearingImpaired::Prefer,
        "prefer_not" => HearingImpaired::PreferNot,
        "only" => HearingImpaired::Only,
        other => {
            problems.add(
                "languages.hearing_impaired",
                format!("{other:?} is not one of prefer, prefer_not, only"),
            );
            HearingImpaired::PreferNot
        }
    };
    if !(0..=100).contains(&languages.min_score) {
        problems.add(
            "languages.min_score",
            format!("{} is not between 0 and 100", languages.min_score),
        );
    }
    let mut library_paths = Vec::new();
    for (i, library) in &libraries {
        if let Some(path) = absolute(
            library.path.as_deref(),
            &format!("libraries[{i}].path"),
            problems,
        ) {
            library_paths.push(path);
        }
    }
    let mut path_mappings = Vec::new();
    for (i, mapping) in &mappings {
        let from = absolute(
            mapping.from.as_deref(),
            &format!("path_mappings[{i}].from"),
            problems,
        );
        let to = absolute(
            mapping.to.as_deref(),
            &format!("path_mappings[{i}].to"),
            problems,
        );
        if let (Some(from), Some(to)) = (from, to) {
            path_mappings.push(PathMapping { from, to });
        }
    }
    let jellyfin_present = jellyfin.is_some();
    let jellyfin = jellyfin.and_then(|j| jellyfin_settings(j, problems));
    if let Some(os) = &providers.opensubtitles {
        let key = "providers.opensubtitles.api_key";
        let api_key = secret(&os.api_key, os.api_key_file.as_deref(), key, problems);
        let password = secret(
            &os.password,
            os.password_file.as_deref(),
            "providers.opensubtitles.password",
            problems,
        );
        together(
            "providers.opensubtitles",
            &os.username,
            password.as_ref(),
            problems,
        );
        if os.enabled {
            if api_key.is_none() && !problems.has(key) && !problems.has(&format!("{key}_file")) {
                problems.add(key, "required when the provider is enabled");
            }
            http_url(&os.base_url, "providers.opensubtitles.base_url", problems);
        }
    }
    if let Some(t) = &translator {
        if !["deepl", "libretranslate", "openai"].contains(&t.kind.as_str()) {
            problems.add(
                "translator.kind",
                format!("{:?} is not one of deepl, libretranslate, openai", t.kind),
            );
        }
        http_url(&t.url, "translator.url", problems);
        let key = secret(
            &t.api_key,
            t.api_key_file.as_deref(),
            "translator.api_key",
            problems,
        );
        // DeepL always needs a key; LibreTranslate and local OpenAI-compatible servers
        // (Ollama, vLLM) may run without one.
        if t.kind == "deepl"
            && key.is_none()
            && !problems.has("translator.api_key")
            && !problems.has("translator.api_key_file")
        {
            problems.add("translator.api_key", "required for kind = \"deepl\"");
        }
    }
    let mut not_yet_active = Vec::new();
    if providers.opensubtitles.as_ref().is_some_and(|p| p.enabled) {
        not_yet_active.push("providers.opensubtitles");
    }
    if providers.jellyfin.as_ref().is_some_and(|p| p.enabled) {
        not_yet_active.push("providers.jellyfin");
    }
    if translator.is_some() {
        not_yet_active.push("translator");
    }
    if notify.jellyfin.is_some()
        || notify.plex.is_some()
        || notify.kodi.is_some()
        || notify.discord.is_some()
        || notify.pushover.is_some()
        || notify.email.is_some()
        || notify.ntfy.is_some()
        || notify.gotify.is_some()
    {
        not_yet_active.push("notify");
    }
    let notify = notify_settings(notify, jellyfin_present, problems);
    for (key, expression) in [
        ("schedule.library_sync", &schedule.library_sync),
        ("schedule.cleanup", &schedule.cleanup),
        ("schedule.wanted_retry", &schedule.wanted_retry),
    ] {
        if let Err(reason) = check_cron(expression) {
            problems.add(
                key,
                format!("{expression:?} is not a cron expression: {reason}"),
            );
        }
    }
    for (key, value) in [
        (
            "jobs.max_concurrent_downloads",
            u64::from(jobs.max_concurrent_downloads),
        ),
        (
            "jobs.max_concurrent_translations",
            u64::from(jobs.max_concurrent_translations),
        ),
        ("jobs.max_attempts", u64::from(jobs.max_attempts)),
        ("jobs.retry_min_delay_secs", jobs.retry_min_delay_secs),
        ("jobs.worker_timeout_secs", jobs.worker_timeout_secs),
    ] {
        if value == 0 {
            problems.add(key, "must be at least 1");
        }
    }
    if jobs.retry_max_delay_secs < jobs.retry_min_delay_secs
        && !problems.has("jobs.retry_max_delay_secs")
        && !problems.has("jobs.retry_min_delay_secs")
    {
        problems.add(
            "jobs.retry_max_delay_secs",
            format!(
                "{} is below jobs.retry_min_delay_secs ({})",
                jobs.retry_max_delay_secs, jobs.retry_min_delay_secs
            ),
        );
    }

    let data_dir = PathBuf::from(&storage.data_dir);
    let data_dir = if data_dir.is_absolute() {
        data_dir
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&data_dir))
            .unwrap_or(data_dir)
    };
    Some(Settings {
        origin: None,
        server: ServerSettings {
            listen: listen?,
            api_key,
            max_body_bytes: server.max_body_bytes,
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
        },
        data_dir: normalize_lexically(&data_dir),
        languages: LanguageSettings {
            wanted,
            translate_from,
            hearing_impaired,
            min_score: u32::try_from(languages.min_score).unwrap_or(60),
        },
        libraries: library_paths,
        path_mappings,
        jellyfin,
        jobs: ManagerSettings {
            max_downloads: jobs.max_concurrent_downloads as usize,
            max_translations: jobs.max_concurrent_translations as usize,
            max_attempts: jobs.max_attempts,
            retry_min_delay: Duration::from_secs(jobs.retry_min_delay_secs),
            retry_max_delay: Duration::from_secs(jobs.retry_max_delay_secs),
            worker_timeout: Duration::from_secs(jobs.worker_timeout_secs),
        },
        notify,
        not_yet_active,
    })
}

fn jellyfin_settings(j: JellyfinSection, problems: &mut Problems) -> Option<JellyfinSettings> {
    let url = http_url(&j.url, "jellyfin.url", problems);
    let api_key = secret(
        &j.api_key,
        j.api_key_file.as_deref(),
        "jellyfin.api_key",
        problems,
    );
    required(
        api_key.is_some(),
        "jellyfin.api_key",
        "required when [jellyfin] is present (Dashboard → API Keys)",
        problems,
    );
    let password = secret(
        &j.password,
        j.password_file.as_deref(),
        "jellyfin.password",
        problems,
    );
    together("jellyfin", &j.username, password.as_ref(), problems);
    if j.reconnect_delay_secs == 0 {
        problems.add("jellyfin.reconnect_delay_secs", "must be at least 1");
    }
    if j.max_reconnect_delay_secs < j.reconnect_delay_secs
        && !problems.has("jellyfin.reconnect_delay_secs")
        && !problems.has("jellyfin.max_reconnect_delay_secs")
    {
        problems.add(
            "jellyfin.max_reconnect_delay_secs",
            format!(
                "{} is below jellyfin.reconnect_delay_secs ({})",
                j.max_reconnect_delay_secs, j.reconnect_delay_secs
            ),
        );
    }
    if j.poll_interval_secs == 0 {
        problems.add("jellyfin.poll_interval_secs", "must be at least 1");
    }
    Some(JellyfinSettings {
        url: url?,
        api_key: api_key?,
        username: j.username,
        password,
        websocket: j.websocket,
        reconnect_delay: Duration::from_secs(j.reconnect_delay_secs),
        max_reconnect_delay: Duration::from_secs(j.max_reconnect_delay_secs),
        poll_interval: Duration::from_secs(j.poll_interval_secs),
        fallback_sync_interval: Duration::from_secs(j.fallback_sync_interval_hours * 3600),
    })
}

/// Checks each `[notify.*]` target present; a target with a problem is left out.
fn notify_settings(
    notify: NotifySection,
    jellyfin_present: bool,
    problems: &mut Problems,
) -> NotifySettings {
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
            problems.add(
                "notify.jellyfin",
                "needs a [jellyfin] section (the server to refresh)",
            );
            return None;
        }
        Some(JellyfinNotify { refresh: j.refresh })
    });
    let plex = plex.and_then(|p| {
        let url = http_url(&p.url, "notify.plex.url", problems);
        let token = secret(
            &p.token,
            p.token_file.as_deref(),
            "notify.plex.token",
            problems,
        );
        required(
            token.is_some(),
            "notify.plex.token",
            "required when [notify.plex] is present (the X-Plex-Token)",
            problems,
        );
        Some(PlexNotify {
            url: url?,
            token: token?,
        })
    });
    let kodi = kodi.and_then(|k| {
        let url = http_url(&k.url, "notify.kodi.url", problems);
        let password = secret(
            &k.password,
            k.password_file.as_deref(),
            "notify.kodi.password",
            problems,
        );
        let paired = together("notify.kodi", &k.username, password.as_ref(), problems);
        paired.then_some(())?;
        Some(KodiNotify {
            url: url?,
            username: k.username,
            password,
        })
    });
    let discord = discord.and_then(|d| {
        let key = "notify.discord.webhook_url";
        let webhook_url = secret(&d.webhook_url, d.webhook_url_file.as_deref(), key, problems);
        required(
            webhook_url.is_some(),
            key,
            "required when [notify.discord] is present",
            problems,
        );
        let webhook_url = webhook_url?;
        // The URL carries the webhook's token: never print it.
        match Url::parse(webhook_url.expose()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {
                Some(DiscordNotify { webhook_url })
            }
            Ok(url) => {
                problems.add(
                    key,
                    format!("has scheme {:?}; use http or https", url.scheme()),
                );
                None
            }
            Err(err) => {
                problems.add(key, format!("is not a URL ({err})"));
                None
            }
        }
    });
    let pushover = pushover.and_then(|p| {
        let token = secret(
            &p.token,
            p.token_file.as_deref(),
            "notify.pushover.token",
            problems,
        );
        required(
            token.is_some(),
            "notify.pushover.token",
            "required when [notify.pushover] is present (the application's API token)",
            problems,
        );
        required(
            !p.user.trim().is_empty(),
            "notify.pushover.user",
            "required when [notify.pushover] is present (the user or group key)",
            problems,
        );
        let priority = in_range(p.priority, -2, 1, "notify.pushover.priority", problems);
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
        required(
            !e.host.trim().is_empty(),
            "notify.email.host",
            "required when [notify.email] is present (the SMTP server)",
            problems,
        );
        if e.port == 0 {
            problems.add("notify.email.port", "must be at least 1");
        }
        let security = match e.security.as_str() {
            "starttls" => Some(SmtpSecurity::StartTls),
            "tls" => Some(SmtpSecurity::Tls),
            "none" => Some(SmtpSecurity::None),
            other => {
                problems.add(
                    "notify.email.security",
                    format!("{other:?} is not one of starttls, tls, none"),
                );
                None
            }
        };
        let password = secret(
            &e.password,
            e.password_file.as_deref(),
            "notify.email.password",
            problems,
        );
        let paired = together("notify.email", &e.username, password.as_ref(), problems);
        let mut addresses_ok = true;
        if e.from.is_empty() {
            required(
                false,
                "notify.email.from",
                "required when [notify.email] is present",
                problems,
            );
            addresses_ok = false;
        } else if !is_address(&e.from) {
            problems.add(
                "notify.email.from",
                format!("{:?} is not an e-mail address", e.from),
            );
            addresses_ok = false;
        }
        if e.to.is_empty() && !problems.has("notify.email.to") {
            problems.add("notify.email.to", "name at least one recipient");
            addresses_ok = false;
        }
        for (i, to) in e.to.iter().enumerate() {
            if !is_address(to) {
                problems.add(
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
            security: security?,
            username: e.username,
            password,
            from: e.from,
            to: e.to,
        })
    });
    let ntfy = ntfy.and_then(|n| {
        let url = http_url(&n.url, "notify.ntfy.url", problems);
        let topic_ok = n.topic.len() <= 64
            && n.topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if n.topic.is_empty() {
            required(
                false,
                "notify.ntfy.topic",
                "required when [notify.ntfy] is present",
                problems,
            );
        } else if !topic_ok {
            problems.add(
                "notify.ntfy.topic",
                format!("{:?} is not a topic (1-64 of A-Z a-z 0-9 - _)", n.topic),
            );
        }
        let token = secret(
            &n.token,
            n.token_file.as_deref(),
            "notify.ntfy.token",
            problems,
        );
        let priority = in_range(n.priority, 1, 5, "notify.ntfy.priority", problems);
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
            required(
                false,
                "notify.gotify.url",
                "required when [notify.gotify] is present",
                problems,
            );
            None
        } else {
            http_url(&g.url, "notify.gotify.url", problems)
        };
        let token = secret(
            &g.token,
            g.token_file.as_deref(),
            "notify.gotify.token",
            problems,
        );
        required(
            token.is_some(),
            "notify.gotify.token",
            "required when [notify.gotify] is present (the application token)",
            problems,
        );
        let priority = in_range(g.priority, 0, 10, "notify.gotify.priority", problems);
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

/// A required absolute path, normalised.
fn absolute(value: Option<&str>, key: &str, problems: &mut Problems) -> Option<PathBuf> {
    let Some(value) = value else {
        if !problems.has(key) {
            problems.add(key, "missing");
        }
        return None;
    };
    let path = Path::new(value);
    if path.is_absolute() {
        Some(normalize_lexically(path))
    } else {
        problems.add(key, format!("{value:?} is not an absolute path"));
        None
    }
}

/// Reports `key` as missing unless `present` or a problem was already reported for it (or
/// its `_file`).
fn required(present: bool, key: &str, message: &str, problems: &mut Problems) {
    if !present && !problems.has(key) && !problems.has(&format!("{key}_file")) {
        problems.add(key, message);
    }
}

/// `username` and `password` of `section` go together; false (reported) if only one is set.
fn together(
    section: &str,
    username: &str,
    password: Option<&Secret>,
    problems: &mut Problems,
) -> bool {
    let key = format!("{section}.password");
    if username.is_empty() == password.is_none() {
        return true;
    }
    if !problems.has(&key)
        && !problems.has(&format!("{key}_file"))
        && !problems.has(&format!("{section}.username"))
    {
        problems.add(key, "username and password go together");
    }
    false
}

fn in_range(value: i64, low: i64, high: i64, key: &str, problems: &mut Problems) -> Option<i64> {
    if (low..=high).contains(&value) {
        Some(value)
    } else {
        problems.add(key, format!("{value} is not between {low} and {high}"));
        None
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

/// A secret from its value or a `*_file` (first line, trimmed).
fn secret(value: &str, file: Option<&str>, key: &str, problems: &mut Problems) -> Option<Secret> {
    if let Some(file) = file {
        if !value.is_empty() {
            problems.add(key, format!("set either {key} or {key}_file, not both"));
        }
        return match std::fs::read_to_string(file) {
            Ok(text) => Some(Secret(text.trim().to_owned())).filter(|s| !s.0.is_empty()),
            Err(err) => {
                problems.add(
                    format!("{key}_file"),
                    format!("cannot read {file:?}: {err}"),
                );
                None
            }
        };
    }
    Some(Secret(value.to_owned())).filter(|s| !s.0.is_empty())
}

fn languages_of(codes: &[String], key: &str, problems: &mut Problems) -> Vec<Language> {
    let mut out = Vec::new();
    for code in codes {
        match Language::parse(code) {
            Ok(language) if !out.contains(&language) => out.push(language),
            Ok(_) => {}
            Err(err) => problems.add(key, err),
        }
    }
    out
}

fn http_url(value: &str, key: &str, problems: &mut Problems) -> Option<Url> {
    match Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(url) => {
            problems.add(
                key,
                format!("{value:?} has scheme {:?}; use http or https", url.scheme()),
            );
            None
        }
        Err(err) => {
            problems.add(key, format!("{value:?} is not a URL ({err})"));
            None
        }
    }
}

/// Checks the shape of a 5-field cron expression (minute hour day month weekday).
fn check_cron(expression: &str) -> Result<(), String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected 5 fields, found {}", fields.len()));
    }
    let limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (low, high)) in fields.iter().zip(limits) {
        for part in field.split(',') {
            let (range, step) = part.split_once('/').unwrap_or((part, "1"));
            if step.parse::<u32>().map_or(true, |s| s == 0) {
                return Err(format!("bad step in {part:?}"));
            }
            if range == "*" {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            for bound in [a, b] {
                match bound.parse::<u32>() {
                    Ok(n) if (low..=high).contains(&n) => {}
                    _ => return Err(format!("{bound:?} is out of range {low}-{high}")),
                }
            }
        }
    }
    Ok(())
}

/// The built-in defaults as a TOML tree, every optional section present: the type each
/// overridable key has.
fn defaults_tree() -> toml::Table {
    fn put<T: serde::Serialize>(table: &mut toml::Table, name: &str, value: T) {
        if let Ok(value) = toml::Value::try_from(value) {
            table.insert(name.to_owned(), value);
        }
    }
    let mut table = toml::Table::new();
    put(&mut table, "server", ServerSection::default());
    put(&mut table, "storage", StorageSection::default());
    put(&mut table, "languages", LanguagesSection::default());
    put(&mut table, "jellyfin", JellyfinSection::default());
    put(&mut table, "watcher", WatcherSection::default());
    put(&mut table, "translator", TranslatorSection::default());
    put(&mut table, "schedule", ScheduleSection::default());
    put(&mut table, "retention", RetentionSection::default());
    put(&mut table, "jobs", JobsSection::default());
    let mut providers = toml::Table::new();
    put(
        &mut providers,
        "opensubtitles",
        OpenSubtitlesSection::default(),
    );
    put(
        &mut providers,
        "jellyfin",
        JellyfinProviderSection::default(),
    );
    table.insert("providers".to_owned(), toml::Value::Table(providers));
    let mut notify = toml::Table::new();
    put(&mut notify, "jellyfin", JellyfinNotifySection::default());
    put(&mut notify, "plex", PlexNotifySection::default());
    put(&mut notify, "kodi", KodiNotifySection::default());
    put(&mut notify, "discord", DiscordNotifySection::default());
    put(&mut notify, "pushover", PushoverNotifySection::default());
    put(&mut notify, "email", EmailNotifySection::default());
    put(&mut notify, "ntfy", NtfyNotifySection::default());
    put(&mut notify, "gotify", GotifyNotifySection::default());
    table.insert("notify".to_owned(), toml::Value::Table(notify));
    table
}

/// Applies `CUEWARDEN__SECTION__KEY` overrides, remembering which variable set which key.
fn apply_env(table: &mut toml::Table, env: &[(String, String)], problems: &mut Problems) {
    let defaults = defaults_tree();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.len() < 2 || path.iter().any(String::is_empty) {
            problems.add(name.as_str(), format!("expected {ENV_PREFIX}SECTION__KEY"));
            continue;
        }
        let mut default = Some(&defaults);
        let mut expected = None;
        for (i, part) in path.iter().enumerate() {
            let found = default.and_then(|t| t.get(part));
            if i + 1 == path.len() {
                expected = found;
            } else {
                default = found.and_then(toml::Value::as_table);
            }
        }
        let is_file = path.last().is_some_and(|key| key.ends_with("_file"));
        let value = typed_env_value(raw, expected, is_file);
        match insert_path(table, &path, value) {
            Ok(()) => problems.from_env.push((path.join("."), name.clone())),
            Err(message) => problems.add(name.as_str(), message),
        }
    }
}

/// Sets `path` in `table` to `value`, creating intermediate tables.
fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => match table
            .entry(first.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(next) => insert_path(next, rest, value),
            _ => Err(format!(
                "{first} is not a table and cannot be overridden key by key"
            )),
        },
    }
}

/// Reads an environment value as the type its key has by default (a `*_file` is a path);
/// unknown keys are guessed (TOML literal, else string) and reported later as unknown.
fn typed_env_value(raw: &str, expected: Option<&toml::Value>, is_file: bool) -> toml::Value {
    let literal = || {
        format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    match expected {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        None if is_file => toml::Value::String(raw.to_owned()),
        Some(toml::Value::Array(_)) => {
            literal().filter(toml::Value::is_array).unwrap_or_else(|| {
                toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                )
            })
        }
        _ => literal().unwrap_or_else(|| toml::Value::String(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests;
