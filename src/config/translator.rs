//! `[translator]`: the machine-translation service (DeepL, LibreTranslate or an
//! OpenAI-compatible chat API) the Translator sends cues to.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::Secret;
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

impl TranslatorKind {
    /// The name in events, the cache key and budgets (`deepl`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Deepl => "deepl",
            Self::Libretranslate => "libretranslate",
            Self::Openai => "openai",
        }
    }

    /// Cues per request when `batch_size` is 0: DeepL's limit (50 texts), 50 for
    /// LibreTranslate (servers without a `batch_limit` take any), 25 for chat models (their
    /// answer must fit the output tokens).
    pub fn default_batch(self) -> usize {
        match self {
            Self::Deepl | Self::Libretranslate => 50,
            Self::Openai => 25,
        }
    }
}

/// `[translator]`, validated.
#[derive(Debug, Clone)]
pub struct TranslatorSettings {
    /// Which API.
    pub kind: TranslatorKind,
    /// The service's base URL; `None` for DeepL = the host the key belongs to (Free for keys
    /// ending `:fx`, else Pro).
    pub url: Option<Url>,
    /// The key, if any.
    pub api_key: Option<Secret>,
    /// The model (OpenAI-compatible servers).
    pub model: String,
    /// How long one request may take.
    pub timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Most cues per request.
    pub batch_size: usize,
    /// Cues of context sent before and after each batch (OpenAI-compatible only).
    pub context_cues: usize,
    /// Most characters sent to the service per calendar month (UTC), if capped.
    pub monthly_character_budget: Option<u64>,
    /// How long a cached translation nobody used is kept (`cache_days`); `None`: forever.
    pub cache_kept: Option<Duration>,
}

/// `[translator] cache_days` by default (also without a `[translator]`: the cache an
/// earlier configuration filled expires the same way).
pub const DEFAULT_CACHE_DAYS: i64 = 180;

/// The longest `[translator] cache_days`.
pub const MAX_CACHE_DAYS: i64 = 36_500;

/// The cache lifetime of `days` (0: forever).
pub fn cache_kept(days: i64) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(days.unsigned_abs() * 86_400))
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
    pub timeout_secs: i64,
    pub connect_timeout_secs: i64,
    /// Cues per request; 0 = the kind's default.
    pub batch_size: i64,
    /// Context cues before and after each batch (OpenAI-compatible only).
    pub context_cues: i64,
    /// Most characters sent to the service per calendar month (UTC); 0: no limit.
    pub monthly_character_budget: u64,
    /// Days a cached translation nobody used is kept; 0: forever.
    pub cache_days: i64,
}

impl Default for TranslatorSection {
    fn default() -> Self {
        Self {
            kind: TranslatorKind::Deepl,
            url: String::new(),
            api_key: String::new(),
            api_key_file: None,
            model: String::new(),
            timeout_secs: 120,
            connect_timeout_secs: 10,
            batch_size: 0,
            context_cues: 3,
            monthly_character_budget: 0,
            cache_days: DEFAULT_CACHE_DAYS,
        }
    }
}

impl RawSection for TranslatorSection {}

impl TranslatorSection {
    /// Checks `[translator]`; answers it when valid.
    pub(crate) fn check(&self, check: &mut Check) -> Option<TranslatorSettings> {
        let url = if self.url.trim().is_empty() {
            if self.kind != TranslatorKind::Deepl && !check.has("translator.kind") {
                check.add(
                    "translator.url",
                    format!("required for kind = \"{}\"", self.kind.name()),
                );
                return None;
            }
            None
        } else {
            Some(check.http_url(self.url.trim(), "translator.url")?)
        };
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
        if self.kind == TranslatorKind::Openai && self.model.trim().is_empty() {
            check.add(
                "translator.model",
                "required for kind = \"openai\" (e.g. \"gpt-4o-mini\", \"llama3.1:8b\")",
            );
        }
        let timeout = check.in_range(self.timeout_secs, 1, 3600, "translator.timeout_secs");
        let connect = check.in_range(
            self.connect_timeout_secs,
            1,
            60,
            "translator.connect_timeout_secs",
        );
        let most = if self.kind == TranslatorKind::Deepl {
            50
        } else {
            1000
        };
        let batch = check.in_range(self.batch_size, 0, most, "translator.batch_size");
        let context = check.in_range(self.context_cues, 0, 20, "translator.context_cues");
        let cache_days =
            check.in_range(self.cache_days, 0, MAX_CACHE_DAYS, "translator.cache_days");
        let (timeout, connect, batch, context) = (timeout?, connect?, batch?, context?);
        let cache_days = cache_days?;
        let batch_size = match usize::try_from(batch).unwrap_or(0) {
            0 => self.kind.default_batch(),
            n => n,
        };
        Some(TranslatorSettings {
            kind: self.kind,
            url,
            api_key: key,
            model: self.model.trim().to_owned(),
            timeout: Duration::from_secs(timeout.unsigned_abs()),
            connect_timeout: Duration::from_secs(connect.unsigned_abs()),
            batch_size,
            context_cues: usize::try_from(context).unwrap_or(0),
            monthly_character_budget: (self.monthly_character_budget > 0)
                .then_some(self.monthly_character_budget),
            cache_kept: cache_kept(cache_days),
        })
    }
}
