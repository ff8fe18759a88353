//! Configuration: raw file → environment overrides → validated, typed [`Settings`].
//!
//! - [`mod@file`]: the raw file as serde reads it, and `SECTIONS`, the one table of its sections;
//! - `env`: `CUEWARDEN__SECTION__KEY=value` overrides `[section] key`, the value read as
//!   the type the key has (string, number, bool, list);
//! - `problems`: every problem is collected and reported at once, one line each, naming the
//!   full key (`jellyfin.url: …`, `libraries[1].path: …`) and, when an environment variable
//!   set it, the variable (`server.listen (from CUEWARDEN__SERVER__LISTEN): …`);
//! - one module per feature (`server`, `storage`, `languages`, `libraries`, `jellyfin`,
//!   `providers`, `translator`, `notify`, `schedule`, `jobs`, `watcher`): its raw section,
//!   its checks and its typed settings (`with_config`), next to each other.
//!
//! A key of the wrong type is reported and dropped, so it hides neither the other keys of
//! its section nor their checks. Secrets are [`Secret`]s, which never print.

mod env;
pub mod file;
mod jellyfin;
mod jobs;
mod languages;
mod libraries;
mod notify;
mod problems;
mod providers;
mod schedule;
mod server;
mod storage;
mod suggest;
mod translator;
mod values;
mod watcher;

use std::fmt;
use std::path::{Path, PathBuf};

use cuewarden_actors::job_manager::ManagerSettings;

pub use jellyfin::{JellyfinSection, JellyfinSettings};
pub use jobs::{JobsSection, Retention, RetentionSection};
pub use languages::{LanguageSettings, LanguagesSection};
pub use libraries::{LibrarySection, LibrarySettings, PathMapping, PathMappingSection, map_path};
pub use notify::{
    AppriseNotify, AppriseNotifySection, DiscordNotify, DiscordNotifySection, EmailNotify,
    EmailNotifySection, GotifyNotify, GotifyNotifySection, JellyfinNotify, JellyfinNotifySection,
    KodiNotify, KodiNotifySection, NotifySection, NotifySettings, NtfyNotify, NtfyNotifySection,
    PlexNotify, PlexNotifySection, PushoverNotify, PushoverNotifySection, SmtpSecurity,
    TargetRules,
};
pub use problems::ConfigErrors;
pub use providers::{
    EndpointSection, EndpointSettings, GestdownSection, JellyfinProviderSection,
    OPENSUBTITLES_MAX_RATE, OpenSubtitlesSection, OpenSubtitlesSettings, PROVIDER_NAMES,
    PodnapisiSection, ProviderSettings, ProvidersSection, SubdlSection, SubdlSettings,
};
pub use schedule::{ScheduleSection, ScheduleSettings, TaskSchedule, parse_cron, time_zone};
pub use server::{ServerSection, ServerSettings};
pub use storage::StorageSection;
pub use translator::{
    DEFAULT_CACHE_DAYS, TranslatorKind, TranslatorSection, TranslatorSettings, cache_kept,
};
pub use watcher::{LibrarySyncSection, WatcherSection, WatcherSettings};

use file::ConfigFile;
use problems::{Problems, toml_error};
use values::Check;

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

    /// Whether the value is empty (an unset secret).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    /// `[[libraries]]`: roots, absolute and normalised, none inside another.
    pub libraries: Vec<LibrarySettings>,
    /// `[[path_mappings]]`.
    pub path_mappings: Vec<PathMapping>,
    /// `[jellyfin]`, if configured.
    pub jellyfin: Option<JellyfinSettings>,
    /// `[providers.*]`: the providers queried.
    pub providers: ProviderSettings,
    /// `[jobs]`.
    pub jobs: ManagerSettings,
    /// `[notify.*]`.
    pub notify: NotifySettings,
    /// `[watcher]`.
    pub watcher: WatcherSettings,
    /// `[library_sync] enabled`.
    pub library_sync: bool,
    /// `[translator]`, if configured.
    pub translator: Option<TranslatorSettings>,
    /// `[schedule]`: the periodic tasks' cron expressions and time zone.
    pub schedule: ScheduleSettings,
    /// `[retention]`: how long terminal jobs are kept.
    pub retention: Retention,
    /// Configured sections this version validates but does not act on yet (logged at
    /// start-up, so nobody wonders why their provider is never asked).
    pub not_yet_active: Vec<&'static str>,
}

impl Settings {
    /// How long a cached translation nobody used is kept: `[translator] cache_days`, or its
    /// default without a `[translator]`; `None`: forever.
    pub fn translation_cache_kept(&self) -> Option<std::time::Duration> {
        self.translator
            .as_ref()
            .map_or_else(|| cache_kept(DEFAULT_CACHE_DAYS), |t| t.cache_kept)
    }

    /// The library roots.
    pub fn library_roots(&self) -> Vec<PathBuf> {
        self.libraries.iter().map(|l| l.path.clone()).collect()
    }

    /// What is worth a warning but not a refusal (blocking: looks at the library roots).
    pub fn warnings(&self) -> Vec<String> {
        libraries::library_warnings(&self.libraries)
    }

    /// Translates a path as another service sees it into ours (longest prefix wins).
    pub fn map_path(&self, path: &Path) -> PathBuf {
        libraries::map_path(&self.path_mappings, path)
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
            let dir = std::path::absolute(path)
                .ok()
                .and_then(|path| path.parent().map(Path::to_owned))
                .unwrap_or_else(working_dir);
            let mut settings = parse_in(&text, &origin, &dir, &env)?;
            settings.origin = Some(path.to_owned());
            Ok(settings)
        }
        None => parse("", "built-in defaults", &env),
    }
}

/// Validates `text` with the overrides in `env`, relative paths starting at the working
/// directory (the built-in defaults, or a text that comes from no file).
pub fn parse(text: &str, origin: &str, env: &[(String, String)]) -> Result<Settings, ConfigErrors> {
    parse_in(text, origin, &working_dir(), env)
}

/// The working directory, or `/` if it is gone.
fn working_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}

/// Validates `text`, read from a file in `dir`, with the overrides in `env`. Relative paths
/// (`storage.data_dir`, every `*_file`) are relative to `dir`, as other daemons read theirs,
/// so the CLI finds the daemon's data from any working directory.
pub fn parse_in(
    text: &str,
    origin: &str,
    dir: &Path,
    env: &[(String, String)],
) -> Result<Settings, ConfigErrors> {
    let errors = |problems| ConfigErrors {
        origin: origin.to_owned(),
        problems,
    };
    let mut table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| errors(vec![toml_error(origin, text, &err)]))?;
    let mut problems = Problems::default();
    env::apply_env(&mut table, env, &mut problems);
    let file = ConfigFile::read(&table, &mut problems);
    let mut check = Check {
        problems,
        base: dir.to_owned(),
        not_yet_active: Vec::new(),
    };
    let settings = validate(file, &mut check);
    match settings {
        Some(settings) if check.problems.is_empty() => Ok(settings),
        _ => Err(errors(check.problems.into_lines())),
    }
}

/// Lets each feature check its own section; `None` if something needed is unusable (the
/// problems say why).
fn validate(file: ConfigFile, check: &mut Check) -> Option<Settings> {
    let ConfigFile {
        server,
        storage,
        languages,
        libraries,
        path_mappings,
        jellyfin,
        watcher,
        library_sync,
        providers,
        translator,
        notify,
        schedule,
        retention,
        jobs,
    } = file;
    let server = ServerSettings::with_config(server, check);
    let data_dir = storage.data_dir(check);
    let languages = LanguageSettings::with_config(languages, check);
    let libraries = LibrarySettings::with_config(libraries, check);
    let path_mappings = libraries::path_mappings_with_config(path_mappings, check);
    let jellyfin_present = jellyfin.is_some();
    let jellyfin = jellyfin.and_then(|j| JellyfinSettings::with_config(j, check));
    let providers = providers.with_config(jellyfin_present, check);
    let translator = translator.and_then(|t| t.check(check));
    let notify = NotifySettings::with_config(notify, jellyfin_present, check);
    let schedule = schedule.with_config(check);
    let retention = retention.settings();
    let jobs = jobs.with_config(check);
    let watcher = watcher.with_config(check);
    Some(Settings {
        origin: None,
        server: server?,
        data_dir,
        languages,
        libraries,
        path_mappings,
        jellyfin,
        providers,
        jobs,
        notify,
        watcher,
        library_sync: library_sync.enabled,
        translator,
        schedule,
        retention,
        not_yet_active: std::mem::take(&mut check.not_yet_active),
    })
}

#[cfg(test)]
mod tests;
