//! The raw configuration file, as serde reads it: `SECTIONS`, the one table of the sections a
//! file may have (each section's raw struct lives with its feature, next to the checks that
//! type it), and the lenient reader.
//!
//! Unknown keys are not rejected by serde but collected, all of them (with `serde_ignored`),
//! and a key of the wrong type is dropped and reported on its own, so one run reports every
//! problem. Defaults are each raw struct's `Default`, equal to what the reference
//! `config.toml` shows (a test checks it).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::jellyfin::JellyfinSection;
use super::jobs::{JobsSection, RetentionSection};
use super::languages::LanguagesSection;
use super::libraries::{LibrarySection, PathMappingSection};
use super::notify::NotifySection;
use super::problems::{Problems, plain_serde_message};
use super::providers::ProvidersSection;
use super::schedule::ScheduleSection;
use super::server::ServerSection;
use super::storage::StorageSection;
use super::suggest::{closest, suggestion, unknown_key};
use super::translator::TranslatorSection;
use super::watcher::{LibrarySyncSection, WatcherSection};

/// A section's raw struct: serde reads it, `Default` is what an absent key takes.
pub(crate) trait RawSection: DeserializeOwned + Serialize + Default {
    /// The defaults as TOML, every optional sub-table present: the type each key has when
    /// an environment variable overrides it.
    fn defaults() -> Option<toml::Value> {
        toml::Value::try_from(Self::default()).ok()
    }
}

/// How a section appears in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `[name]`, defaulted when absent.
    Table,
    /// `[name]`, `None` when absent (its presence turns the feature on).
    Optional,
    /// `[[name]]`, any number of entries.
    Array,
}

/// One row of [`SECTIONS`].
#[derive(Debug)]
pub(crate) struct SectionInfo {
    /// The section's name in the file.
    pub(crate) name: &'static str,
    /// How it appears.
    pub(crate) shape: Shape,
    /// Its defaults (of one entry, for an array), as TOML.
    pub(crate) defaults: fn() -> Option<toml::Value>,
}

/// Declares the sections once: [`ConfigFile`]'s fields, [`SECTIONS`] and the reader all
/// come from this list.
macro_rules! sections {
    ($( $(#[doc = $doc:literal])* $name:ident : $shape:ident $ty:ty ),* $(,)?) => {
        /// The whole file as read: every section, each defaulted when absent. `(index, entry)`
        /// keeps the position an array entry had in the file, so later problems name it even
        /// when an earlier entry was dropped.
        #[derive(Debug, Clone, Default)]
        pub struct ConfigFile {
            $( $(#[doc = $doc])* pub $name: sections!(@type $shape $ty), )*
        }

        /// The sections a config file may have, in the order problems are reported;
        /// anything else is an unknown key.
        pub(crate) const SECTIONS: &[SectionInfo] = &[
            $( SectionInfo {
                name: stringify!($name),
                shape: sections!(@shape $shape),
                defaults: <$ty as RawSection>::defaults,
            }, )*
        ];

        impl ConfigFile {
            /// Reads every section leniently (see [`lenient`]): what is absent or unusable
            /// takes its default.
            pub(crate) fn read(table: &toml::Table, problems: &mut Problems) -> Self {
                for key in table.keys() {
                    if !SECTIONS.iter().any(|s| s.name == key) {
                        let known = closest(key, SECTIONS.iter().map(|s| s.name));
                        problems.add(key.as_str(), unknown_key(known));
                    }
                }
                Self {
                    $( $name: sections!(@read $shape $ty, table, stringify!($name), problems), )*
                }
            }
        }
    };
    (@type table $ty:ty) => { $ty };
    (@type optional $ty:ty) => { Option<$ty> };
    (@type array $ty:ty) => { Vec<(usize, $ty)> };
    (@shape table) => { Shape::Table };
    (@shape optional) => { Shape::Optional };
    (@shape array) => { Shape::Array };
    (@read table $ty:ty, $table:expr, $name:expr, $problems:expr) => {
        section::<$ty>($table, $name, $problems).unwrap_or_default()
    };
    (@read optional $ty:ty, $table:expr, $name:expr, $problems:expr) => {
        section::<$ty>($table, $name, $problems)
    };
    (@read array $ty:ty, $table:expr, $name:expr, $problems:expr) => {
        entries::<$ty>($table, $name, $problems)
    };
}

sections! {
    /// `[server]`
    server: table ServerSection,
    /// `[storage]`
    storage: table StorageSection,
    /// `[languages]`
    languages: table LanguagesSection,
    /// `[[libraries]]`
    libraries: array LibrarySection,
    /// `[[path_mappings]]`
    path_mappings: array PathMappingSection,
    /// `[jellyfin]`
    jellyfin: optional JellyfinSection,
    /// `[watcher]`
    watcher: table WatcherSection,
    /// `[library_sync]`
    library_sync: table LibrarySyncSection,
    /// `[providers.*]`
    providers: table ProvidersSection,
    /// `[translator]`
    translator: optional TranslatorSection,
    /// `[notify.*]`
    notify: table NotifySection,
    /// `[schedule]`
    schedule: table ScheduleSection,
    /// `[retention]`
    retention: table RetentionSection,
    /// `[jobs]`
    jobs: table JobsSection,
}

/// The built-in defaults as a TOML tree, every optional section present: the type each
/// overridable key has. Array sections have no entry to override.
pub(crate) fn defaults_tree() -> toml::Table {
    SECTIONS
        .iter()
        .filter(|s| s.shape != Shape::Array)
        .filter_map(|s| Some((s.name.to_owned(), (s.defaults)()?)))
        .collect()
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
pub(crate) fn lenient<T: DeserializeOwned>(
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
            problems.add(join(key, &render(&path)), plain_serde_message(message));
        }
        if prune.is_empty() || !remove(&mut value, &prune) {
            break None;
        }
        dropped.push(join(key, &render(&prune)));
    };
    for path in unknown {
        let message = unknown_key(suggestion::<T>(&path));
        problems.add(join(key, &path), message);
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
