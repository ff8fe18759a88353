//! The checks the sections share (secrets, URLs, paths, ranges, language codes), as methods
//! of [`Check`], which every feature's `with_config` receives.

use std::path::{Path, PathBuf};

use cuewarden_actors::Language;
use cuewarden_actors::files::normalize_lexically;
use url::Url;

use super::Secret;
use super::problems::Problems;

/// What a feature checks its section with: the problems found so far and where relative
/// paths start.
#[derive(Debug)]
pub(crate) struct Check {
    /// Every problem found so far.
    pub(crate) problems: Problems,
    /// The folder relative paths are resolved against.
    pub(crate) base: PathBuf,
    /// Configured sections this version validates but does not act on yet.
    pub(crate) not_yet_active: Vec<&'static str>,
}

impl Check {
    /// Records a problem about `key`.
    pub(crate) fn add(&mut self, key: impl Into<String>, message: impl std::fmt::Display) {
        self.problems.add(key, message);
    }

    /// Whether a problem was already reported for `key` or a key inside it.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.problems.has(key)
    }

    /// Reports `key` as missing unless `present` or a problem was already reported for it
    /// (or its `_file`).
    pub(crate) fn required(&mut self, present: bool, key: &str, message: &str) {
        if !present && !self.has(key) && !self.has(&format!("{key}_file")) {
            self.add(key, message);
        }
    }

    /// `username` and `password` of `section` go together; false (reported) if only one is
    /// set.
    pub(crate) fn together(
        &mut self,
        section: &str,
        username: &str,
        password: Option<&Secret>,
    ) -> bool {
        let key = format!("{section}.password");
        if username.is_empty() == password.is_none() {
            return true;
        }
        if !self.has(&key)
            && !self.has(&format!("{key}_file"))
            && !self.has(&format!("{section}.username"))
        {
            self.add(key, "username and password go together");
        }
        false
    }

    /// `value` if it is within `low..=high`, else reported.
    pub(crate) fn in_range(&mut self, value: i64, low: i64, high: i64, key: &str) -> Option<i64> {
        if (low..=high).contains(&value) {
            Some(value)
        } else {
            self.add(key, format!("{value} is not between {low} and {high}"));
            None
        }
    }

    /// Reports `key` (a count or a duration) if it is zero.
    pub(crate) fn at_least_one(&mut self, value: u64, key: &str) {
        if value == 0 {
            self.add(key, "must be at least 1");
        }
    }

    /// A secret from its value or a `*_file` (first line, trimmed; a relative file is
    /// relative to [`Check::base`]).
    pub(crate) fn secret(&mut self, value: &str, file: Option<&str>, key: &str) -> Option<Secret> {
        if let Some(file) = file {
            if !value.is_empty() {
                self.add(key, format!("set either {key} or {key}_file, not both"));
            }
            let path = self.resolve(file);
            return match std::fs::read_to_string(&path) {
                Ok(text) => Some(Secret::from(text.trim().to_owned())).filter(|s| !s.is_empty()),
                Err(err) if Path::new(file).is_absolute() => {
                    self.add(
                        format!("{key}_file"),
                        format!("cannot read {file:?}: {err}"),
                    );
                    None
                }
                Err(err) => {
                    self.add(
                        format!("{key}_file"),
                        format!("cannot read {file:?} ({}): {err}", path.display()),
                    );
                    None
                }
            };
        }
        Some(Secret::from(value.to_owned())).filter(|s| !s.is_empty())
    }

    /// `path`, absolute: a relative one joined to [`Check::base`], then normalised.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        normalize_lexically(&self.base.join(path))
    }

    /// A required absolute path, normalised.
    pub(crate) fn absolute(&mut self, value: Option<&str>, key: &str) -> Option<PathBuf> {
        let Some(value) = value else {
            if !self.has(key) {
                self.add(key, "missing");
            }
            return None;
        };
        let path = Path::new(value);
        if path.is_absolute() {
            Some(normalize_lexically(path))
        } else {
            self.add(key, format!("{value:?} is not an absolute path"));
            None
        }
    }

    /// An http(s) URL.
    pub(crate) fn http_url(&mut self, value: &str, key: &str) -> Option<Url> {
        if let Some(suggested) = with_scheme(value) {
            self.add(
                key,
                format!("{value:?} is missing the scheme; use {suggested:?}"),
            );
            return None;
        }
        match Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            Ok(url) => {
                self.add(
                    key,
                    format!("{value:?} has scheme {:?}; use http or https", url.scheme()),
                );
                None
            }
            Err(err) => {
                self.add(key, format!("{value:?} is not a URL ({err})"));
                None
            }
        }
    }

    /// Language codes, each parsed once (duplicates dropped), a bad one reported at its
    /// index (`key[1]`).
    pub(crate) fn languages_at(&mut self, codes: &[String], key: &str) -> Vec<Language> {
        let mut out = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            match Language::parse(code) {
                Ok(language) if !out.contains(&language) => out.push(language),
                Ok(_) => {}
                Err(err) => self.add(format!("{key}[{i}]"), err),
            }
        }
        out
    }
}

/// `http://` + `value` when `value` is a host with a dot or a port but no scheme
/// (`localhost:8096` reads as a URL of scheme `localhost`, `jellyfin.lan` as no URL at all).
pub(crate) fn with_scheme(value: &str) -> Option<String> {
    if value.contains("://") || value.contains(char::is_whitespace) {
        return None;
    }
    let host_port = value.split('/').next().unwrap_or_default();
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port && !host_port.contains('.') {
        return None;
    }
    let suggested = format!("http://{value}");
    Url::parse(&suggested)
        .is_ok_and(|url| url.host().is_some())
        .then_some(suggested)
}
