//! `[[libraries]]`, the folders subtitles may be written into, and `[[path_mappings]]`, how
//! other services name them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// `[[libraries]]`, as read; `path` is required (an `Option` so a missing one is reported by
/// validation, next to the entry's other problems).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LibrarySection {
    pub path: Option<String>,
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

/// Checks every `[[libraries]]` entry: the library roots, absolute and normalised.
pub(crate) fn libraries_with_config(
    libraries: Vec<(usize, LibrarySection)>,
    check: &mut Check,
) -> Vec<PathBuf> {
    libraries
        .into_iter()
        .filter_map(|(i, library)| {
            check.absolute(library.path.as_deref(), &format!("libraries[{i}].path"))
        })
        .collect()
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
pub(crate) fn map_path(mappings: &[PathMapping], path: &Path) -> PathBuf {
    mappings
        .iter()
        .filter(|m| path.starts_with(&m.from))
        .max_by_key(|m| m.from.components().count())
        .and_then(|m| path.strip_prefix(&m.from).ok().map(|rest| m.to.join(rest)))
        .unwrap_or_else(|| path.to_owned())
}
