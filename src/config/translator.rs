//! `[translator]`: the machine-translation service. Validated; this version does not call it
//! yet.

use serde::{Deserialize, Serialize};

use super::file::RawSection;
use super::values::Check;

/// Which translation API `[translator] url` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TranslatorKind {
    /// DeepL (always needs a key).
    #[default]
    Deepl,
    /// LibreTranslate (a key if the server asks for one).
    Libretranslate,
    /// An OpenAI-compatible chat API (OpenAI, Ollama, vLLM, …).
    Openai,
}

/// `[translator]`, as read.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TranslatorSection {
    pub kind: TranslatorKind,
    pub url: String,
    pub api_key: String,
    pub api_key_file: Option<String>,
    /// For OpenAI-compatible servers.
    pub model: String,
    /// Most characters sent to the service per calendar month (UTC); 0: no limit.
    pub monthly_character_budget: u64,
}

impl Default for TranslatorSection {
    fn default() -> Self {
        Self {
            kind: TranslatorKind::Deepl,
            url: "https://api-free.deepl.com".to_owned(),
            api_key: String::new(),
            api_key_file: None,
            model: String::new(),
            monthly_character_budget: 0,
        }
    }
}

impl RawSection for TranslatorSection {}

impl TranslatorSection {
    /// The monthly character budget, if one is set.
    pub fn budget(&self) -> Option<u64> {
        (self.monthly_character_budget > 0).then_some(self.monthly_character_budget)
    }

    /// Checks `[translator]` and names it as not yet active.
    pub(crate) fn check(&self, check: &mut Check) {
        check.http_url(&self.url, "translator.url");
        let key = check.secret(
            &self.api_key,
            self.api_key_file.as_deref(),
            "translator.api_key",
        );
        // DeepL always needs a key; LibreTranslate and local OpenAI-compatible servers
        // (Ollama, vLLM) may run without one.
        if self.kind == TranslatorKind::Deepl && !check.has("translator.kind") {
            check.required(
                key.is_some(),
                "translator.api_key",
                "required for kind = \"deepl\"",
            );
        }
        check.not_yet_active.push("translator");
    }
}
