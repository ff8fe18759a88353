//! Problem collection and reporting: every problem found in a configuration, keyed by the
//! full key it is about (`jellyfin.url`, `libraries[1].path`), printed one per line and, when
//! an environment variable set the key (or created the table holding it), naming the variable.

use std::fmt;

use super::file::SECTIONS;

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

/// The problems found so far, each with the key it is about.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    /// `(key, message)`, in the order found.
    found: Vec<(String, String)>,
    /// `(key, variable)` for every key set from the environment.
    from_env: Vec<(String, String)>,
    /// `(table, variable)` for every table an environment variable created.
    created_from_env: Vec<(String, String)>,
}

impl Problems {
    /// Records a problem about `key`.
    pub(crate) fn add(&mut self, key: impl Into<String>, message: impl fmt::Display) {
        self.found.push((key.into(), message.to_string()));
    }

    /// Remembers that `variable` set `key`.
    pub(crate) fn set_from_env(&mut self, key: impl Into<String>, variable: impl Into<String>) {
        self.from_env.push((key.into(), variable.into()));
    }

    /// Remembers that `variable` created the table `table` (a problem about that very table,
    /// such as an unknown section, names the variable).
    pub(crate) fn created_from_env(
        &mut self,
        table: impl Into<String>,
        variable: impl Into<String>,
    ) {
        self.created_from_env.push((table.into(), variable.into()));
    }

    /// Whether a problem was already reported for `key` or a key inside it.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.found.iter().any(|(found, _)| within(found, key))
    }

    /// Whether no problem was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// One line per problem: `key: message`, or `key (from VARIABLE): message` when the key
    /// (or the table holding it) was set from the environment.
    pub(crate) fn into_lines(mut self) -> Vec<String> {
        // Grouped by section, in the file's order of sections; the environment's own
        // problems and unknown sections first.
        self.found.sort_by_key(|(key, _)| {
            let section = key.split(['.', '[']).next().unwrap_or_default();
            SECTIONS
                .iter()
                .position(|s| s.name == section)
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
                    .or_else(|| self.created_from_env.iter().find(|(table, _)| table == key))
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
pub(crate) fn within(key: &str, outer: &str) -> bool {
    key.strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// `text` on one line: line breaks become spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A TOML syntax error as one line, with the line and column it is at.
pub(crate) fn toml_error(origin: &str, text: &str, err: &toml::de::Error) -> String {
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

/// A serde message as the config's own messages read: `unknown variant `x`, expected one of
/// `a`, `b`` becomes `"x" is not one of a, b`; `expected u32` becomes `expected a whole
/// number` (with its range when the value is out of it), `expected a sequence` `expected a
/// list of strings` (the only lists the file has), `expected struct …` `expected a table`.
pub(crate) fn plain_serde_message(message: &str) -> String {
    if let Some((value, expected)) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.split_once("`, expected one of "))
    {
        return format!("{value:?} is not one of {}", expected.replace('`', ""));
    }
    if let Some((value, expected)) = message
        .strip_prefix("unknown variant `")
        .and_then(|rest| rest.split_once("`, expected "))
    {
        return format!("{value:?} is not {}", expected.replace('`', ""));
    }
    // serde names the Rust type expected: say what to write instead.
    let mut message = message.replace("expected a sequence", "expected a list of strings");
    if let Some((before, expected)) = message.rsplit_once(", expected ") {
        let whole = match expected {
            "u8" => Some("a whole number from 0 to 255"),
            "u16" => Some("a whole number from 0 to 65535"),
            "u32" => Some("a whole number from 0 to 4294967295"),
            "u64" | "usize" => Some("a whole number, 0 or more"),
            "i8" => Some("a whole number from -128 to 127"),
            "i16" | "i32" | "i64" | "isize" => Some("a whole number"),
            _ => None,
        };
        if let Some(whole) = whole {
            // A type error says "a whole number"; a value out of range gives the range.
            let whole = if before.starts_with("invalid type") {
                "a whole number"
            } else {
                whole
            };
            message = format!("{before}, expected {whole}");
        } else if expected.starts_with("struct ") {
            message = format!("{before}, expected a table");
        }
    }
    message
}
