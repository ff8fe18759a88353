//! Environment overrides: `CUEWARDEN__SECTION__KEY=value` sets `[section] key`, the value read
//! as the type the key has by default (string, number, bool, list). Each key set is
//! remembered with its variable, so a problem with it names the variable.

use super::ENV_PREFIX;
use super::file::{SECTIONS, Shape, defaults_tree};
use super::problems::Problems;

/// Applies `CUEWARDEN__SECTION__KEY` overrides, remembering which variable set which key.
pub(crate) fn apply_env(
    table: &mut toml::Table,
    env: &[(String, String)],
    problems: &mut Problems,
) {
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
        if let Some(array) = SECTIONS
            .iter()
            .find(|s| s.shape == Shape::Array && s.name == path[0])
        {
            problems.add(
                name.as_str(),
                format!(
                    "[[{}]] entries cannot be set from the environment; set them in the config file",
                    array.name
                ),
            );
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
        let mut created = Vec::new();
        match insert_path(table, &path, value, &mut created) {
            Ok(()) => {
                problems.set_from_env(path.join("."), name.clone());
                for table in created {
                    problems.created_from_env(table, name.clone());
                }
            }
            Err(message) => problems.add(name.as_str(), message),
        }
    }
}

/// Sets `path` in `table` to `value`, creating intermediate tables (each one created is
/// pushed on `created`, as a key: `notify.slack`).
fn insert_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
    created: &mut Vec<String>,
) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut table = table;
    for (depth, part) in parents.iter().enumerate() {
        let entry = table.entry(part.clone()).or_insert_with(|| {
            created.push(path[..=depth].join("."));
            toml::Value::Table(toml::Table::new())
        });
        table = match entry {
            toml::Value::Table(next) => next,
            _ => {
                return Err(format!(
                    "{part} is not a table and cannot be overridden key by key"
                ));
            }
        };
    }
    table.insert(last.clone(), value);
    Ok(())
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
