//! `[languages]`: which languages are wanted, which may be translated from, how candidates
//! are ranked.

use cuewarden_actors::Language;
use cuewarden_actors::downloader::HearingImpaired;
use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// `[languages]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct LanguagesSection {
    pub wanted: Vec<String>,
    pub translate_from: Vec<String>,
    pub hearing_impaired: HearingImpaired,
    pub min_score: i64,
}

impl Default for LanguagesSection {
    fn default() -> Self {
        Self {
            wanted: vec!["fr".to_owned(), "en".to_owned()],
            translate_from: vec!["en".to_owned()],
            hearing_impaired: HearingImpaired::PreferNot,
            min_score: 60,
        }
    }
}

impl RawSection for LanguagesSection {}

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

impl LanguageSettings {
    /// Checks `[languages]`.
    pub(crate) fn with_config(languages: LanguagesSection, check: &mut Check) -> Self {
        let wanted = check.languages_at(&languages.wanted, "languages.wanted");
        if languages.wanted.is_empty() && !check.has("languages.wanted") {
            check.add("languages.wanted", "name at least one language");
        }
        let translate_from =
            check.languages_at(&languages.translate_from, "languages.translate_from");
        let min_score = check.in_range(languages.min_score, 0, 100, "languages.min_score");
        Self {
            wanted,
            translate_from,
            hearing_impaired: languages.hearing_impaired,
            min_score: min_score.and_then(|s| u32::try_from(s).ok()).unwrap_or(60),
        }
    }
}
