//! Configuration: raw file → environment overrides → validated, typed [`Settings`].
//!
//! Every problem is collected and reported at once, each line naming the full key
//! (`jellyfin.url: …`). `CUEWARDEN__SECTION__KEY=value` overrides `[section] key`; the
//! value is read as the type the key has (string, number, bool, list). Secrets are
//! [`Secret`]s, which never print.

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
    let mut table: toml::Table = text.parse().map_err(|err: toml::de::Error| {
        errors(vec![format!(
            "{origin}: not valid TOML: {}",
            err.to_string().trim()
        )])
    })?;
    let mut problems = Vec::new();
    apply_env(&mut table, env, &mut problems);
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            problems.push(format!("{key}: unknown key"));
        }
    }
    let server: ServerSection = section(&table, "server", &mut problems);
    let storage: StorageSection = section(&table, "storage", &mut problems);
    let languages: LanguagesSection = section(&table, "languages", &mut problems);
    let libraries: Vec<LibrarySection> = section(&table, "libraries", &mut problems);
    let mappings: Vec<PathMappingSection> = section(&table, "path_mappings", &mut problems);
    let jellyfin: Option<JellyfinSection> = section(&table, "jellyfin", &mut problems);
    let _watcher: WatcherSection = section(&table, "watcher", &mut problems);
    let providers: ProvidersSection = section(&table, "providers", &mut problems);
    let translator: Option<TranslatorSection> = section(&table, "translator", &mut problems);
    let _notify: NotifySection = section(&table, "notify", &mut problems);
    let schedule: ScheduleSection = section(&table, "schedule", &mut problems);
    let _retention: RetentionSection = section(&table, "retention", &mut problems);
    let jobs: JobsSection = section(&table, "jobs", &mut problems);

    let listen = server
        .listen
        .parse::<SocketAddr>()
        .map_err(|err| {
            problems.push(format!(
                "server.listen: {:?} is not an address:port ({err})",
                server.listen
            ))
        })
        .ok();
    let api_key = secret(
        &server.api_key,
        server.api_key_file.as_deref(),
        "server.api_key",
        &mut problems,
    );
    if server.max_body_bytes < 1024 {
        problems.push(format!(
            "server.max_body_bytes: {} is too small (at least 1024)",
            server.max_body_bytes
        ));
    }
    if storage.data_dir.trim().is_empty() {
        problems.push("storage.data_dir: must not be empty".to_owned());
    }
    let wanted = languages_of(&languages.wanted, "languages.wanted", &mut problems);
    if languages.wanted.is_empty() {
        problems.push("languages.wanted: name at least one language".to_owned());
    }
    let translate_from = languages_of(
        &languages.translate_from,
        "languages.translate_from",
        &mut problems,
    );
    let hearing_impaired = match languages.hearing_impaired.as_str() {
        "prefer" => HearingImpaired::Prefer,
        "prefer_not" => HearingImpaired::PreferNot,
        "only" => HearingImpaired::Only,
        other => {
            problems.push(format!(
                "languages.hearing_impaired: {other:?} is not one of prefer, prefer_not, only"
            ));
            HearingImpaired::PreferNot
        }
    };
    if !(0..=100).contains(&languages.min_score) {
        problems.push(format!(
            "languages.min_score: {} is not between 0 and 100",
            languages.min_score
        ));
    }
    let mut library_paths = Vec::new();
    for (i, library) in libraries.iter().enumerate() {
        let path = Path::new(&library.path);
        if !path.is_absolute() {
            problems.push(format!(
                "libraries[{i}].path: {:?} is not an absolute path",
                library.path
            ));
        } else {
            library_paths.push(normalize_lexically(path));
        }
    }
    let mut path_mappings = Vec::new();
    for (i, mapping) in mappings.iter().enumerate() {
        for (key, value) in [("from", &mapping.from), ("to", &mapping.to)] {
            if !Path::new(value).is_absolute() {
                problems.push(format!(
                    "path_mappings[{i}].{key}: {value:?} is not an absolute path"
                ));
            }
        }
        path_mappings.push(PathMapping {
            from: normalize_lexically(Path::new(&mapping.from)),
            to: normalize_lexically(Path::new(&mapping.to)),
        });
    }
    let jellyfin = jellyfin.and_then(|j| jellyfin_settings(j, &mut problems));
    if let Some(os) = providers.opensubtitles.as_ref().filter(|os| os.enabled) {
        if secret(
            &os.api_key,
            os.api_key_file.as_deref(),
            "providers.opensubtitles.api_key",
            &mut problems,
        )
        .is_none()
        {
            problems.push(
                "providers.opensubtitles.api_key: required when the provider is enabled".to_owned(),
            );
        }
        http_url(
            &os.base_url,
            "providers.opensubtitles.base_url",
            &mut problems,
        );
    }
    if let Some(t) = &translator {
        if !["deepl", "libretranslate", "openai"].contains(&t.kind.as_str()) {
            problems.push(format!(
                "translator.kind: {:?} is not one of deepl, libretranslate, openai",
                t.kind
            ));
        }
        http_url(&t.url, "translator.url", &mut problems);
        let _ = secret(
            &t.api_key,
            t.api_key_file.as_deref(),
            "translator.api_key",
            &mut problems,
        );
    }
    for (key, expression) in [
        ("schedule.library_sync", &schedule.library_sync),
        ("schedule.cleanup", &schedule.cleanup),
        ("schedule.wanted_retry", &schedule.wanted_retry),
    ] {
        if let Err(reason) = check_cron(expression) {
            problems.push(format!(
                "{key}: {expression:?} is not a cron expression: {reason}"
            ));
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
            problems.push(format!("{key}: must be at least 1"));
        }
    }
    if jobs.retry_max_delay_secs < jobs.retry_min_delay_secs {
        problems.push(format!(
            "jobs.retry_max_delay_secs: {} is below jobs.retry_min_delay_secs ({})",
            jobs.retry_max_delay_secs, jobs.retry_min_delay_secs
        ));
    }

    let (Some(listen), true) = (listen, problems.is_empty()) else {
        return Err(errors(problems));
    };
    let data_dir = PathBuf::from(&storage.data_dir);
    let data_dir = if data_dir.is_absolute() {
        data_dir
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&data_dir))
            .unwrap_or(data_dir)
    };
    Ok(Settings {
        origin: None,
        server: ServerSettings {
            listen,
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
    })
}

fn jellyfin_settings(j: JellyfinSection, problems: &mut Vec<String>) -> Option<JellyfinSettings> {
    let url = http_url(&j.url, "jellyfin.url", problems);
    let api_key = secret(
        &j.api_key,
        j.api_key_file.as_deref(),
        "jellyfin.api_key",
        problems,
    );
    if api_key.is_none() {
        problems.push(
            "jellyfin.api_key: required when [jellyfin] is present (Dashboard → API Keys)"
                .to_owned(),
        );
    }
    let password = secret(
        &j.password,
        j.password_file.as_deref(),
        "jellyfin.password",
        problems,
    );
    if j.username.is_empty() != password.is_none() {
        problems.push("jellyfin.password: username and password go together".to_owned());
    }
    if j.reconnect_delay_secs == 0 {
        problems.push("jellyfin.reconnect_delay_secs: must be at least 1".to_owned());
    }
    if j.max_reconnect_delay_secs < j.reconnect_delay_secs {
        problems.push(format!(
            "jellyfin.max_reconnect_delay_secs: {} is below jellyfin.reconnect_delay_secs ({})",
            j.max_reconnect_delay_secs, j.reconnect_delay_secs
        ));
    }
    if j.poll_interval_secs == 0 {
        problems.push("jellyfin.poll_interval_secs: must be at least 1".to_owned());
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

/// Deserializes one section, collecting unknown keys and the type error with their paths.
fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &str,
    problems: &mut Vec<String>,
) -> T {
    let Some(value) = table.get(name) else {
        return T::default();
    };
    let mut unknown = Vec::new();
    let mut collect = |path: serde_ignored::Path<'_>| unknown.push(key_path(&path));
    let deserializer = serde_ignored::Deserializer::new(value.clone(), &mut collect);
    let result: Result<T, _> = serde_path_to_error::deserialize(deserializer);
    let join = |path: &str| {
        if path.is_empty() || path == "." {
            name.to_owned()
        } else if path.starts_with('[') {
            format!("{name}{path}")
        } else {
            format!("{name}.{path}")
        }
    };
    for path in unknown {
        problems.push(format!("{}: unknown key", join(&path)));
    }
    match result {
        Ok(value) => value,
        Err(err) => {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            problems.push(format!("{}: {}", join(&path), message.trim()));
            T::default()
        }
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

/// A secret from its value or a `*_file` (first line, trimmed).
fn secret(
    value: &str,
    file: Option<&str>,
    key: &str,
    problems: &mut Vec<String>,
) -> Option<Secret> {
    if let Some(file) = file {
        if !value.is_empty() {
            problems.push(format!("{key}: set either {key} or {key}_file, not both"));
        }
        return match std::fs::read_to_string(file) {
            Ok(text) => Some(Secret(text.trim().to_owned())).filter(|s| !s.0.is_empty()),
            Err(err) => {
                problems.push(format!("{key}_file: cannot read {file:?}: {err}"));
                None
            }
        };
    }
    Some(Secret(value.to_owned())).filter(|s| !s.0.is_empty())
}

fn languages_of(codes: &[String], key: &str, problems: &mut Vec<String>) -> Vec<Language> {
    let mut out = Vec::new();
    for code in codes {
        match Language::parse(code) {
            Ok(language) if !out.contains(&language) => out.push(language),
            Ok(_) => {}
            Err(err) => problems.push(format!("{key}: {err}")),
        }
    }
    out
}

fn http_url(value: &str, key: &str, problems: &mut Vec<String>) -> Option<Url> {
    match Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(url) => {
            problems.push(format!(
                "{key}: {value:?} has scheme {:?}; use http or https",
                url.scheme()
            ));
            None
        }
        Err(err) => {
            problems.push(format!("{key}: {value:?} is not a URL ({err})"));
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

/// The built-in defaults as a TOML tree: the type each overridable key has.
fn defaults_tree() -> toml::Table {
    let mut table = toml::Table::new();
    let mut put = |name: &str, value: Result<toml::Value, toml::ser::Error>| {
        if let Ok(value) = value {
            table.insert(name.to_owned(), value);
        }
    };
    put("server", toml::Value::try_from(ServerSection::default()));
    put("storage", toml::Value::try_from(StorageSection::default()));
    put(
        "languages",
        toml::Value::try_from(LanguagesSection::default()),
    );
    put(
        "jellyfin",
        toml::Value::try_from(JellyfinSection::default()),
    );
    put("watcher", toml::Value::try_from(WatcherSection::default()));
    put(
        "translator",
        toml::Value::try_from(TranslatorSection::default()),
    );
    put(
        "schedule",
        toml::Value::try_from(ScheduleSection::default()),
    );
    put(
        "retention",
        toml::Value::try_from(RetentionSection::default()),
    );
    put("jobs", toml::Value::try_from(JobsSection::default()));
    let mut providers = toml::Table::new();
    if let Ok(value) = toml::Value::try_from(OpenSubtitlesSection::default()) {
        providers.insert("opensubtitles".to_owned(), value);
    }
    if let Ok(value) = toml::Value::try_from(JellyfinProviderSection::default()) {
        providers.insert("jellyfin".to_owned(), value);
    }
    table.insert("providers".to_owned(), toml::Value::Table(providers));
    table
}

/// Applies `CUEWARDEN__SECTION__KEY` overrides.
fn apply_env(table: &mut toml::Table, env: &[(String, String)], problems: &mut Vec<String>) {
    let defaults = defaults_tree();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.len() < 2 || path.iter().any(String::is_empty) {
            problems.push(format!("{name}: expected {ENV_PREFIX}SECTION__KEY"));
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
        let value = typed_env_value(raw, expected);
        if let Err(message) = insert_path(table, &path, value) {
            problems.push(format!("{name}: {message}"));
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

/// Reads an environment value as the type its key has by default; unknown keys are
/// guessed (TOML literal, else string) and reported later as unknown.
fn typed_env_value(raw: &str, expected: Option<&toml::Value>) -> toml::Value {
    let literal = || {
        format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    match expected {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
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
