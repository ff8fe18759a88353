//! DeepL API v2 (`POST /v2/translate`), behind the core's [`TranslationService`].
//!
//! - The key goes only in `Authorization: DeepL-Auth-Key <key>` (DeepL switched off keys in
//!   the body or the query). Without `[translator] url` the host follows the key: keys
//!   ending `:fx` are DeepL API Free keys (`https://api-free.deepl.com`), others Pro
//!   (`https://api.deepl.com`); a 403 "Wrong endpoint" is explained as such.
//! - One cue per `text` entry (≤ 50, the API's limit), bodies ≤ 128 KiB (a bigger one is not
//!   sent: `TooLarge`, the Translator halves the batch).
//! - Markup survives: a cue's leading and trailing tags are peeled off and put back; the
//!   tags inside and the line breaks travel as XML placeholders (`<x i="0"/>`, `<br/>`)
//!   with `tag_handling: "xml"`, the text XML-escaped; an answer that loses a placeholder
//!   is unreadable (the batch is retried halved), never written with tags missing.
//! - Target codes are the regional ones DeepL wants (`EN-US`, `PT-PT`, `PT-BR`, `ZH-HANS`,
//!   `ZH-HANT`, `ES-419`, `NB`); source codes the base ones (`EN`, `PT`).
//! - The cues around a batch go in `context` (DeepL does not bill it).
//! - 429 = rate limited (`Retry-After`), 456 = quota used up until the billing period
//!   resets, 403 = the key (or the host) is wrong, 413 = too large, 5xx/529 = unavailable.

use std::rc::Rc;

use cuewarden_actors::Language;
use cuewarden_actors::clients::{
    LocalBoxFuture, TranslateError, TranslationLimits, TranslationRequest, TranslationService,
};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::translators::{Failure, Peeled, Piece, escape, host_of, pieces, transport, unescape};
use crate::config::TranslatorSettings;

/// The service's name in events, the cache key and budgets.
pub const NAME: &str = "deepl";
/// The DeepL API Free host (keys ending `:fx`).
pub const FREE_URL: &str = "https://api-free.deepl.com";
/// The DeepL API Pro host.
pub const PRO_URL: &str = "https://api.deepl.com";
/// Most `text` entries per request.
pub const MAX_TEXTS: usize = 50;
/// Most bytes per request body.
pub const MAX_BODY: usize = 128 * 1024;

/// The host a key belongs to.
pub fn url_for_key(key: &str) -> &'static str {
    if key.trim().ends_with(":fx") {
        FREE_URL
    } else {
        PRO_URL
    }
}

/// DeepL's target code for a language: the regional ones where DeepL has them (English and
/// Portuguese need one; `EN` and `PT` alone are deprecated).
pub fn target_code(language: &Language) -> String {
    match language.as_str() {
        "en" => "EN-US".to_owned(),
        "pt" => "PT-PT".to_owned(),
        "pt-BR" => "PT-BR".to_owned(),
        "zh" | "zh-CN" => "ZH-HANS".to_owned(),
        "zh-TW" | "zh-HK" => "ZH-HANT".to_owned(),
        "es-419" => "ES-419".to_owned(),
        _ => source_code(language),
    }
}

/// DeepL's source code for a language: the base code, upper case (`NB` for Norwegian).
pub fn source_code(language: &Language) -> String {
    match language.base() {
        "no" => "NB".to_owned(),
        base => base.to_ascii_uppercase(),
    }
}

#[derive(Deserialize)]
struct Answer {
    translations: Vec<Translation>,
}

#[derive(Deserialize)]
struct Translation {
    text: String,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    host: String,
    key: String,
    limits: TranslationLimits,
}

/// The DeepL client (cheap to clone).
#[derive(Clone)]
pub struct DeepL(Rc<Inner>);

impl DeepL {
    /// A client for `[translator]` with `kind = "deepl"`.
    pub fn new(settings: &TranslatorSettings) -> anyhow::Result<Self> {
        let key = settings
            .api_key
            .as_ref()
            .map(|k| k.expose().trim().to_owned())
            .unwrap_or_default();
        let base = match &settings.url {
            Some(url) => url.clone(),
            None => Url::parse(url_for_key(&key))?,
        };
        let mut endpoint = base.clone();
        let path = base.path().trim_end_matches('/');
        let path = path.strip_suffix("/v2/translate").unwrap_or(path);
        let path = path.strip_suffix("/v2").unwrap_or(path);
        endpoint.set_path(&format!("{path}/v2/translate"));
        Ok(Self(Rc::new(Inner {
            http: super::translators::http_client(settings)?,
            host: host_of(&endpoint),
            endpoint,
            key,
            limits: TranslationLimits {
                max_texts: settings.batch_size.clamp(1, MAX_TEXTS),
                // The sum of the texts; escaping, placeholders and JSON add some.
                max_bytes: 96 * 1024,
                context: settings.context_cues,
            },
        })))
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &Url {
        &self.0.endpoint
    }
}

/// A cue's core as DeepL XML: text escaped, markup and line breaks as placeholders; and the
/// markup, by placeholder number.
fn encode(core: &str) -> (String, Vec<String>) {
    let mut xml = String::with_capacity(core.len() + 16);
    let mut markup = Vec::new();
    for piece in pieces(core) {
        match piece {
            Piece::Text(text) => {
                let mut lines = text.split('\n');
                if let Some(first) = lines.next() {
                    xml.push_str(&escape(first));
                }
                for line in lines {
                    xml.push_str("<br/>");
                    xml.push_str(&escape(line));
                }
            }
            Piece::Markup(tag) => {
                xml.push_str(&format!("<x i=\"{}\"/>", markup.len()));
                markup.push(tag.to_owned());
            }
        }
    }
    (xml, markup)
}

/// An answer's XML back to a cue's core: placeholders replaced by their markup, `<br/>` by
/// line breaks, entities decoded. Every placeholder must come back exactly once, and every
/// line break sent (`breaks`): a dialogue cue that lost one would be written as one turn.
fn decode(xml: &str, markup: &[String], breaks: usize) -> Result<String, String> {
    let mut out = String::with_capacity(xml.len());
    let mut breaks_seen = 0;
    let mut seen = vec![0usize; markup.len()];
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        out.push_str(&unescape(&rest[..open]));
        let tail = &rest[open..];
        let Some(close) = tail.find('>') else {
            out.push_str(&unescape(tail));
            rest = "";
            break;
        };
        let tag = tail[1..close].trim().trim_end_matches('/').trim();
        rest = &tail[close + 1..];
        if tag == "br" {
            out.push('\n');
            breaks_seen += 1;
        } else if let Some(n) = tag
            .strip_prefix('x')
            .map(str::trim)
            .and_then(|a| a.strip_prefix("i="))
            .map(|v| v.trim_matches(['"', '\'']))
            .and_then(|v| v.parse::<usize>().ok())
        {
            let Some(original) = markup.get(n) else {
                return Err(format!("an unknown placeholder {n} came back"));
            };
            out.push_str(original);
            seen[n] += 1;
            rest = rest.strip_prefix("</x>").unwrap_or(rest);
        } else if tag == "/x" {
            // The closing half of `<x i="0"></x>`.
        } else {
            out.push_str(&unescape(&tail[..close + 1]));
        }
    }
    out.push_str(&unescape(rest));
    if breaks_seen != breaks {
        return Err(format!(
            "{breaks} line breaks sent, {breaks_seen} came back"
        ));
    }
    if let Some(n) = seen.iter().position(|&count| count != 1) {
        return Err(format!(
            "the markup {:?} came back {} times",
            markup[n], seen[n]
        ));
    }
    Ok(out)
}

impl Inner {
    fn error(&self, failure: &Failure) -> TranslateError {
        let host = &self.host;
        match failure.status.as_u16() {
            456 => TranslateError::QuotaExhausted { resets_in: None },
            403 if failure.message.to_lowercase().contains("wrong endpoint") => {
                let free = self.key.ends_with(":fx");
                let (kind, right) = if free {
                    ("a DeepL API Free key (it ends in \":fx\")", FREE_URL)
                } else {
                    ("a DeepL API Pro key", PRO_URL)
                };
                TranslateError::Auth(format!(
                    "{host} is the wrong host for this key ({}): the key is {kind}, which \
                     works only with {right}; set [translator] url = \"{right}\" or leave url \
                     empty to pick the host from the key",
                    failure.message
                ))
            }
            403 => TranslateError::Auth(format!(
                "{host} refused the key (403 {}): check [translator] api_key (DeepL \
                 Authentication Key in your account)",
                failure.message
            )),
            400 if failure.message.to_lowercase().contains("too many texts") => {
                TranslateError::TooLarge
            }
            404 => TranslateError::Permanent(format!(
                "{} (is [translator] url a DeepL API host?)",
                failure.describe(host)
            )),
            _ => failure
                .common(host)
                .unwrap_or_else(|| TranslateError::Permanent(failure.describe(host))),
        }
    }

    async fn translate(&self, request: TranslationRequest) -> Result<Vec<String>, TranslateError> {
        let peeled: Vec<Peeled> = request.texts.iter().map(|t| Peeled::new(t)).collect();
        let mut sent = Vec::new();
        let mut texts = Vec::new();
        let mut markups = Vec::new();
        for (i, cue) in peeled.iter().enumerate() {
            if cue.core.trim().is_empty() {
                continue;
            }
            let (xml, markup) = encode(&cue.core);
            sent.push(i);
            texts.push(xml);
            markups.push((markup, cue.core.matches('\n').count()));
        }
        let mut out: Vec<String> = request.texts.clone();
        if sent.is_empty() {
            return Ok(out);
        }
        let mut body = json!({
            "text": texts,
            "target_lang": target_code(&request.to),
            "source_lang": source_code(&request.from),
            "tag_handling": "xml",
            "split_sentences": "nonewlines",
            "preserve_formatting": true,
        });
        let context: Vec<String> = request
            .before
            .iter()
            .chain(&request.after)
            .map(|t| plain(t))
            .filter(|t| !t.trim().is_empty())
            .collect();
        if !context.is_empty() {
            body["context"] = json!(escape(&context.join("\n")));
        }
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| TranslateError::Permanent(format!("cannot encode the request: {e}")))?;
        if bytes.len() > MAX_BODY {
            return Err(TranslateError::TooLarge);
        }
        let response = self
            .http
            .post(self.endpoint.clone())
            .header("Authorization", format!("DeepL-Auth-Key {}", self.key))
            .header("Content-Type", "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(|e| transport(&self.host, e))?;
        if !response.status().is_success() {
            return Err(self.error(&Failure::read(response).await));
        }
        let text = response
            .text()
            .await
            .map_err(|e| transport(&self.host, e))?;
        let answer: Answer = serde_json::from_str(&text)
            .map_err(|e| TranslateError::Parse(format!("{}: not DeepL's JSON ({e})", self.host)))?;
        if answer.translations.len() != sent.len() {
            return Err(TranslateError::Parse(format!(
                "{}: {} translations for {} texts",
                self.host,
                answer.translations.len(),
                sent.len()
            )));
        }
        for ((&i, translation), (markup, breaks)) in
            sent.iter().zip(answer.translations).zip(&markups)
        {
            let core = decode(&translation.text, markup, *breaks).map_err(|e| {
                TranslateError::Parse(format!("{}: text {}: {e}", self.host, i + 1))
            })?;
            if core.trim().is_empty() {
                return Err(TranslateError::Parse(format!(
                    "{}: text {} came back empty",
                    self.host,
                    i + 1
                )));
            }
            out[i] = peeled[i].rebuild(&core);
        }
        Ok(out)
    }
}

/// A cue's text without markup, for context.
fn plain(text: &str) -> String {
    pieces(text)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Text(t) => Some(t),
            Piece::Markup(_) => None,
        })
        .collect()
}

impl TranslationService for DeepL {
    fn name(&self) -> &str {
        NAME
    }

    fn limits(&self) -> TranslationLimits {
        self.0.limits
    }

    fn translate(
        &self,
        request: TranslationRequest,
    ) -> LocalBoxFuture<Result<Vec<String>, TranslateError>> {
        let inner = self.0.clone();
        Box::pin(async move { inner.translate(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Language {
        Language::parse(code).unwrap()
    }

    #[test]
    fn codes_are_the_ones_deepl_wants() {
        assert_eq!(target_code(&lang("en")), "EN-US");
        assert_eq!(target_code(&lang("pt-BR")), "PT-BR");
        assert_eq!(target_code(&lang("pt")), "PT-PT");
        assert_eq!(target_code(&lang("zh-TW")), "ZH-HANT");
        assert_eq!(target_code(&lang("zh")), "ZH-HANS");
        assert_eq!(target_code(&lang("fr-CA")), "FR");
        assert_eq!(target_code(&lang("de")), "DE");
        assert_eq!(source_code(&lang("pt-BR")), "PT");
        assert_eq!(source_code(&lang("no")), "NB");
    }

    #[test]
    fn the_host_follows_the_key() {
        assert_eq!(url_for_key("abc:fx"), FREE_URL);
        assert_eq!(url_for_key("abc"), PRO_URL);
    }

    #[test]
    fn markup_travels_as_placeholders_and_comes_back() {
        let (xml, markup) = encode("Tom & <b>Jerry</b>\n<3");
        assert_eq!(xml, "Tom &amp; <x i=\"0\"/>Jerry<x i=\"1\"/><br/>&lt;3");
        assert_eq!(markup, ["<b>", "</b>"]);
        assert_eq!(
            decode(
                "Tom &amp; <x i=\"0\"></x>Jerry<x i='1' /><br />&lt;3",
                &markup,
                1
            )
            .unwrap(),
            "Tom & <b>Jerry</b>\n<3"
        );
        assert!(decode("Tom &amp; Jerry<x i=\"1\"/><br/>", &markup, 1).is_err());
        assert!(decode("<x i=\"0\"/><x i=\"0\"/><x i=\"1\"/><br/>", &markup, 1).is_err());
        // A dialogue whose line break was lost is refused, not written as one turn.
        let err = decode("- Oui.- Non.", &[], 1).unwrap_err();
        assert!(err.contains("1 line breaks sent, 0 came back"), "{err}");
    }
}
