//! Languages as users, providers and Jellyfin spell them.
//!
//! A [`Language`] is an ISO 639-1 code (`fr`), with a region only where subtitles differ by
//! region and Jellyfin reads the regional tag in a file name: `pt-BR`, `es-419`, `fr-CA`,
//! `zh-CN`, `zh-TW`, `zh-HK`. Input is lenient: ISO 639-2/T and /B codes (`fra`, `fre`), any
//! case, `_` for `-`, script tags (`zh-Hans` → `zh-CN`, `zh-Hant` → `zh-TW`), and regions
//! that change nothing are dropped (`fr-FR` → `fr`, `en-GB` → `en`, `pt-PT` → `pt`). The
//! canonical form is what the API shows, the store keeps and subtitle file names carry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A wanted or found language, in canonical form (`fr`, `pt-BR`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

/// A code that names no language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid language code {0:?}: expected an ISO 639-1 or 639-2 code such as \"fr\" or \"fre\", \
     with a region where it matters (\"pt-BR\", \"zh-TW\", \"es-419\")"
)]
pub struct InvalidLanguage(pub String);

/// Regional variants kept as distinct languages: Jellyfin's regional entries.
const REGIONAL: [&str; 6] = ["pt-BR", "es-419", "fr-CA", "zh-CN", "zh-TW", "zh-HK"];

/// Spanish of these countries is Latin American Spanish (`es-419`).
const LATIN_AMERICA: [&str; 19] = [
    "AR", "BO", "CL", "CO", "CR", "CU", "DO", "EC", "GT", "HN", "MX", "NI", "PA", "PE", "PR", "PY",
    "SV", "UY", "VE",
];

/// Codes providers use for regional variants (OpenSubtitles' legacy `pob`, LibreTranslate's
/// `pb`/`zt`).
const EXTRA_ALIASES: [(&str, &str); 5] = [
    ("pob", "pt-BR"),
    ("pb", "pt-BR"),
    ("zt", "zh-TW"),
    ("ea", "es-419"),
    ("spl", "es-419"),
];

include!("language_table.rs");

fn base_of(code: &str) -> Option<&'static str> {
    let lower = code.to_ascii_lowercase();
    if lower.len() == 2 {
        return LANGUAGES
            .binary_search_by(|row| row.0.cmp(lower.as_str()))
            .ok()
            .map(|i| LANGUAGES[i].0);
    }
    if lower.len() == 3 {
        return LANGUAGES
            .iter()
            .find(|row| row.1 == lower || row.2 == lower)
            .map(|row| row.0);
    }
    None
}

impl Language {
    /// Parses a code: ISO 639-1 or 639-2 (T or B), optionally with a region or script
    /// (`pt-BR`, `pt_br`, `zh-Hant`, `es-419`), case-insensitively.
    pub fn parse(code: &str) -> Result<Self, InvalidLanguage> {
        Self::parse_code(code.trim()).ok_or_else(|| InvalidLanguage(code.to_owned()))
    }

    fn parse_code(code: &str) -> Option<Self> {
        if let Some((_, canonical)) = EXTRA_ALIASES
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(code))
        {
            return Some(Self((*canonical).to_owned()));
        }
        let mut parts = code.split(['-', '_']);
        let base = base_of(parts.next()?)?;
        let Some(sub) = parts.next() else {
            return Some(Self(base.to_owned()));
        };
        if parts.next().is_some() {
            return None;
        }
        let region = match sub.len() {
            // A script: only Chinese has one that decides the variant.
            4 if sub.chars().all(|c| c.is_ascii_alphabetic()) => match (base, sub) {
                ("zh", s) if s.eq_ignore_ascii_case("hans") => "CN".to_owned(),
                ("zh", s) if s.eq_ignore_ascii_case("hant") => "TW".to_owned(),
                _ => return Some(Self(base.to_owned())),
            },
            2 if sub.chars().all(|c| c.is_ascii_alphabetic()) => sub.to_ascii_uppercase(),
            3 if sub.chars().all(|c| c.is_ascii_digit()) => sub.to_owned(),
            _ => return None,
        };
        if base == "es" && LATIN_AMERICA.contains(&region.as_str()) {
            return Some(Self("es-419".to_owned()));
        }
        let tag = format!("{base}-{region}");
        if REGIONAL.contains(&tag.as_str()) {
            Some(Self(tag))
        } else {
            Some(Self(base.to_owned()))
        }
    }

    /// The language a file-name token names, as Jellyfin reads them: a code (`fr`, `fre`,
    /// `pt-br`, `fr-FR`) or an English name (`French`). `None` for anything else.
    pub fn from_token(token: &str) -> Option<Self> {
        if let Some(language) = Self::parse_code(token) {
            return Some(language);
        }
        let lower = token.to_lowercase();
        LANGUAGES
            .iter()
            .find(|row| row.3 == lower)
            .map(|row| Self(row.0.to_owned()))
    }

    /// The canonical code (`fr`, `pt-BR`), as written in file names.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ISO 639-1 part (`pt` for `pt-BR`).
    pub fn base(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// The region, when it is part of the language (`BR` for `pt-BR`).
    pub fn region(&self) -> Option<&str> {
        self.0.split_once('-').map(|(_, region)| region)
    }

    /// The ISO 639-2/B code (`fre`, `ger`, `chi`): what Jellyfin 10.10 stores for a stream.
    pub fn iso639_2b(&self) -> &'static str {
        LANGUAGES
            .iter()
            .find(|row| row.0 == self.base())
            .map_or("und", |row| row.2)
    }

    /// The ISO 639-2/T code (`fra`, `deu`, `zho`), as ISO 639-3 spells the same languages.
    pub fn iso639_2t(&self) -> &'static str {
        LANGUAGES
            .iter()
            .find(|row| row.0 == self.base())
            .map_or("und", |row| row.1)
    }

    /// Whether a subtitle in `found` gives a user who wants `self` what they asked for: the
    /// same language, or any Chinese for a plain `zh`.
    pub fn is_satisfied_by(&self, found: &Language) -> bool {
        self == found || (self.0 == "zh" && found.base() == "zh")
    }
}

impl TryFrom<String> for Language {
    type Error = InvalidLanguage;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Language> for String {
    fn from(value: Language) -> Self {
        value.0
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> String {
        Language::parse(raw).map(String::from).unwrap_or_default()
    }

    #[test]
    fn two_letter_codes_are_lowercased() {
        assert_eq!(code("FR"), "fr");
        assert_eq!(code(" en "), "en");
        for good in ["zu", "aa", "he", "nb", "pt", "zh"] {
            assert_eq!(code(good), good);
        }
        assert!(LANGUAGES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }

    #[test]
    fn three_letter_codes_map_to_two_letters() {
        for (raw, want) in [("fre", "fr"), ("fra", "fr"), ("ger", "de"), ("deu", "de")] {
            assert_eq!(code(raw), want, "{raw}");
        }
        for (raw, want) in [("chi", "zh"), ("zho", "zh"), ("ENG", "en"), ("dut", "nl")] {
            assert_eq!(code(raw), want, "{raw}");
        }
    }

    #[test]
    fn regions_are_kept_only_where_they_matter() {
        for (raw, want) in [
            ("pt-BR", "pt-BR"),
            ("pt_br", "pt-BR"),
            ("pob", "pt-BR"),
            ("zh-TW", "zh-TW"),
            ("zh-cn", "zh-CN"),
            ("zh-Hant", "zh-TW"),
            ("zh-Hans", "zh-CN"),
            ("es-419", "es-419"),
            ("es-MX", "es-419"),
            ("fr-CA", "fr-CA"),
            ("fr-FR", "fr"),
            ("en-GB", "en"),
            ("pt-PT", "pt"),
            ("sr-Latn", "sr"),
        ] {
            assert_eq!(code(raw), want, "{raw}");
        }
    }

    #[test]
    fn refuses_what_names_no_language() {
        for bad in [
            "", "e1", "é", "zz", "xx", "qq", "english", "en-", "en-US-x", "pt-B7",
        ] {
            assert!(Language::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = serde_json::from_str::<Language>("\"english\"").unwrap_err();
        assert!(err.to_string().contains("invalid language code"), "{err}");
    }

    #[test]
    fn file_tokens_accept_names_and_codes() {
        let token = |t: &str| Language::from_token(t).map(String::from);
        assert_eq!(token("French").as_deref(), Some("fr"));
        assert_eq!(token("fr-FR").as_deref(), Some("fr"));
        assert_eq!(token("pt-br").as_deref(), Some("pt-BR"));
        assert_eq!(token("forced"), None);
        assert_eq!(token("sdh"), None);
    }

    #[test]
    fn plain_chinese_is_satisfied_by_any_chinese() {
        let lang = |c: &str| Language::parse(c).unwrap();
        assert!(lang("zh").is_satisfied_by(&lang("zh-TW")));
        assert!(!lang("zh-TW").is_satisfied_by(&lang("zh-CN")));
        assert!(!lang("pt").is_satisfied_by(&lang("pt-BR")));
        assert!(!lang("pt-BR").is_satisfied_by(&lang("pt")));
        assert_eq!(lang("pt-BR").base(), "pt");
        assert_eq!(lang("pt-BR").region(), Some("BR"));
        assert_eq!(lang("fr").iso639_2b(), "fre");
    }
}
