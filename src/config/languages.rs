//! `[languages]`: which languages are wanted, which may be translated from, how candidates
//! are ranked.

use cuewarden_actors::Language;
use std::time::Duration;

use cuewarden_actors::downloader::HearingImpaired;
use cuewarden_actors::worker::UpgradePolicy;
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
    pub upgrade_below_score: i64,
    pub upgrade_window_days: i64,
    pub upgrade_margin: i64,
}

impl Default for LanguagesSection {
    fn default() -> Self {
        Self {
            wanted: vec!["fr".to_owned(), "en".to_owned()],
            translate_from: vec!["en".to_owned()],
            hearing_impaired: HearingImpaired::PreferNot,
            min_score: 60,
            upgrade_below_score: 80,
            upgrade_window_days: 30,
            upgrade_margin: 10,
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
    /// When a written subtitle is searched again (`upgrade_*`).
    pub upgrades: UpgradePolicy,
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
        let defaults = UpgradePolicy::default();
        let below = check.in_range(
            languages.upgrade_below_score,
            0,
            101,
            "languages.upgrade_below_score",
        );
        let window = check.in_range(
            languages.upgrade_window_days,
            0,
            3650,
            "languages.upgrade_window_days",
        );
        let margin = check.in_range(languages.upgrade_margin, 1, 100, "languages.upgrade_margin");
        let upgrades = UpgradePolicy {
            below_score: below
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(defaults.below_score),
            window: window
                .and_then(|d| u64::try_from(d).ok())
                .map_or(defaults.window, |d| Duration::from_secs(d * 24 * 3600)),
            margin: margin
                .and_then(|s| u32::try_from(s).ok())
                .unwrap_or(defaults.margin),
            min_interval: defaults.min_interval,
        };
        Self {
            wanted,
            translate_from,
            hearing_impaired: languages.hearing_impaired,
            min_score: min_score.and_then(|s| u32::try_from(s).ok()).unwrap_or(60),
            upgrades,
        }
    }
}
