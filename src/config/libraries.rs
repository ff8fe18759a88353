//! `[[libraries]]`, the folders subtitles may be written into, and `[[path_mappings]]`, how
//! other services name them.

use std::path::{Path, PathBuf};

use cuewarden_actors::Language;
use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// `[[libraries]]`, as read; `path` is required (an `Option` so a missing one is reported by
/// validation, next to the entry's other problems).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LibrarySection {
    pub path: Option<String>,
    /// Overrides `[languages] wanted` for the videos under `path`.
    pub languages: Option<Vec<String>>,
}

impl RawSection for LibrarySection {}

/// `[[path_mappings]]`, as read; both keys are required (see [`LibrarySection`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PathMappingSection {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl RawSection for PathMappingSection {}

/// How another service names a library folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMapping {
    /// The other service's prefix.
    pub from: PathBuf,
    /// Ours.
    pub to: PathBuf,
}

/// One `[[libraries]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibrarySettings {
    /// The root, absolute and normalised.
    pub path: PathBuf,
    /// The languages wanted for the videos under `path`; `None`: `[languages] wanted`.
    pub languages: Option<Vec<Language>>,
}

impl LibrarySettings {
    /// Checks every `[[libraries]]` entry, and that no root is another's or inside it.
    pub(crate) fn with_config(
        libraries: Vec<(usize, LibrarySection)>,
        check: &mut Check,
    ) -> Vec<Self> {
        let mut out: Vec<(usize, Self)> = Vec::new();
        for (i, library) in libraries {
            let key = format!("libraries[{i}]");
            let path = check.absolute(library.path.as_deref(), &format!("{key}.path"));
            let languages = library.languages.map(|codes| {
                let key = format!("{key}.languages");
                if codes.is_empty() {
                    check.add(
                        &key,
                        "name at least one language (or leave it out to use [languages] wanted)",
                    );
                }
                check.languages_at(&codes, &key)
            });
            let Some(path) = path else { continue };
            if let Some(problem) = overlap(&path, languages.is_some(), &out) {
                check.add(format!("{key}.path"), problem);
                continue;
            }
            out.push((i, Self { path, languages }));
        }
        out.into_iter().map(|(_, library)| library).collect()
    }
}

/// What `check-config` warns about the libraries without refusing them: a root that does
/// not exist, or is not a folder (blocking). Not an error, since a NAS share may be mounted
/// after the check; the daemon picks a root up when it appears.
pub fn library_warnings(libraries: &[LibrarySettings]) -> Vec<String> {
    libraries
        .iter()
        .enumerate()
        .filter_map(|(i, library)| {
            let shown = library.path.display();
            let problem = match std::fs::metadata(&library.path) {
                Ok(meta) if meta.is_dir() => return None,
                Ok(_) => format!("{shown:?} is not a folder"),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    format!("{shown:?} does not exist (yet: an unmounted share?)")
                }
                Err(err) => format!("cannot read {shown:?}: {err}"),
            };
            Some(format!("libraries[{i}].path: {problem}"))
        })
        .collect()
}

/// Why `path` cannot be a root beside `roots`: the same folder, or one inside the other
/// when the inner one has no `languages` of its own. A folder inside a library may be a
/// library itself only to give its videos other languages (a "Kids" or "Anime" folder); the
/// deepest root decides.
fn overlap(path: &Path, has_languages: bool, roots: &[(usize, LibrarySettings)]) -> Option<String> {
    roots.iter().find_map(|(j, other)| {
        let shown = path.display();
        let other_path = other.path.display();
        if *path == other.path {
            Some(format!("{shown:?} is already libraries[{j}].path"))
        } else if path.starts_with(&other.path) && !has_languages {
            Some(format!(
                "{shown:?} is inside libraries[{j}].path ({other_path:?}); one root is enough, \
                 unless this one sets its own `languages`"
            ))
        } else if other.path.starts_with(path) && other.languages.is_none() {
            Some(format!(
                "{shown:?} holds libraries[{j}].path ({other_path:?}); one root is enough, \
                 unless the inner one sets its own `languages`"
            ))
        } else {
            None
        }
    })
}

/// Checks every `[[path_mappings]]` entry.
pub(crate) fn path_mappings_with_config(
    mappings: Vec<(usize, PathMappingSection)>,
    check: &mut Check,
) -> Vec<PathMapping> {
    mappings
        .into_iter()
        .filter_map(|(i, mapping)| {
            let from = check.absolute(mapping.from.as_deref(), &format!("path_mappings[{i}].from"));
            let to = check.absolute(mapping.to.as_deref(), &format!("path_mappings[{i}].to"));
            Some(PathMapping {
                from: from?,
                to: to?,
            })
        })
        .collect()
}

/// Translates a path as another service sees it into ours (longest prefix wins).
pub fn map_path(mappings: &[PathMapping], path: &Path) -> PathBuf {
    mappings
        .iter()
        .filter(|m| path.starts_with(&m.from))
        .max_by_key(|m| m.from.components().count())
        .and_then(|m| path.strip_prefix(&m.from).ok().map(|rest| m.to.join(rest)))
        .unwrap_or_else(|| path.to_owned())
}
