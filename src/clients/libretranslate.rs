//! LibreTranslate (`POST /translate`), behind the core's [`TranslationService`].
//!
//! - `q` is an array (one cue per entry, answers in order), `api_key` goes in the body when
//!   one is configured, `source` is the cue language (never `auto`).
//! - Markup: a cue's leading and trailing tags are peeled off and put back. When no cue of
//!   the batch has markup left inside, the batch goes as `format: "text"` (line breaks kept
//!   as they are); otherwise as `format: "html"`, the text HTML-escaped and line breaks as
//!   `<br>`, which LibreTranslate keeps.
//! - Codes: the base code (`fr`), `zh-Hans`/`zh-Hant` for Chinese, `pt-BR` for Brazilian
//!   Portuguese; a server that says a regional target "is not supported" is asked again
//!   once with the base code, and that code is used from then on.
//! - Errors are `{"error": …}`: 400 "exceeds text limit" = too large (the batch is halved),
//!   other 400s = permanent (unsupported language), a missing or refused key (400 "API
//!   key", 403) = credentials, 429 "Slowdown" = rate limited, 5xx = unavailable.

use std::cell::RefCell;
use std::collections::HashSet;
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
pub const NAME: &str = "libretranslate";

/// LibreTranslate's code for a language.
pub fn code(language: &Language) -> String {
    match language.as_str() {
        "zh" | "zh-CN" => "zh-Hans".to_owned(),
        "zh-TW" | "zh-HK" => "zh-Hant".to_owned(),
        "pt-BR" => "pt-BR".to_owned(),
        _ => language.base().to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Translated {
    Many(Vec<String>),
    One(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    translated_text: Translated,
}

/// Why one request failed: the service answered an error, or no answer was read.
enum Sent {
    Refused(Failure),
    Failed(TranslateError),
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    host: String,
    key: Option<String>,
    limits: TranslationLimits,
    /// Regional target codes the server said it does not support.
    unsupported: RefCell<HashSet<String>>,
}

/// The LibreTranslate client (cheap to clone).
#[derive(Clone)]
pub struct LibreTranslate(Rc<Inner>);

impl LibreTranslate {
    /// A client for `[translator]` with `kind = "libretranslate"`.
    pub fn new(settings: &TranslatorSettings) -> anyhow::Result<Self> {
        let base = settings
            .url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("[translator] url is required for LibreTranslate"))?;
        let mut endpoint = base.clone();
        let path = base.path().trim_end_matches('/');
        let path = path.strip_suffix("/translate").unwrap_or(path);
        endpoint.set_path(&format!("{path}/translate"));
        Ok(Self(Rc::new(Inner {
            http: super::translators::http_client(settings)?,
            host: host_of(&endpoint),
            endpoint,
            key: settings
                .api_key
                .as_ref()
                .map(|k| k.expose().trim().to_owned())
                .filter(|k| !k.is_empty()),
            limits: TranslationLimits {
                max_texts: settings.batch_size.max(1),
                max_bytes: 32 * 1024,
                context: 0,
            },
            unsupported: RefCell::new(HashSet::new()),
        })))
    }
}

/// A cue's core as HTML: text escaped, line breaks as `<br>`, markup as it is.
fn to_html(core: &str) -> String {
    pieces(core)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => escape(text).replace('\n', "<br>"),
            Piece::Markup(tag) => tag.to_owned(),
        })
        .collect()
}

/// An HTML answer back to text: `<br>` as line breaks, entities decoded, other tags kept.
fn from_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    for piece in pieces(html) {
        match piece {
            Piece::Markup(tag) => {
                let name = tag[1..tag.len() - 1].trim().trim_end_matches('/').trim();
                if name.eq_ignore_ascii_case("br") {
                    out.push('\n');
                } else {
                    out.push_str(tag);
                }
            }
            Piece::Text(text) => out.push_str(&unescape(text)),
        }
    }
    out
}

impl Inner {
    fn error(&self, failure: &Failure) -> TranslateError {
        let host = &self.host;
        let lower = failure.message.to_lowercase();
        match failure.status.as_u16() {
            400 if lower.contains("exceeds") && lower.contains("limit") => TranslateError::TooLarge,
            400 if lower.contains("api key") || lower.contains("api_key") => {
                TranslateError::Auth(format!(
                    "{host} wants an API key ({}): set [translator] api_key",
                    failure.message
                ))
            }
            403 if lower.contains("violations") => TranslateError::Auth(format!(
                "{host} has banned this key or address ({}): ask the server's operator",
                failure.message
            )),
            403 => TranslateError::Auth(format!(
                "{host} refused the key (403 {}): check [translator] api_key",
                failure.message
            )),
            _ => failure
                .common(host)
                .unwrap_or_else(|| TranslateError::Permanent(failure.describe(host))),
        }
    }

    async fn send(
        &self,
        texts: &[String],
        from: &str,
        to: &str,
        html: bool,
    ) -> Result<Vec<String>, Sent> {
        let mut body = json!({
            "q": texts,
            "source": from,
            "target": to,
            "format": if html { "html" } else { "text" },
        });
        if let Some(key) = &self.key {
            body["api_key"] = json!(key);
        }
        let response = self
            .http
            .post(self.endpoint.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| Sent::Failed(transport(&self.host, e)))?;
        if !response.status().is_success() {
            return Err(Sent::Refused(Failure::read(response).await));
        }
        let text = response
            .text()
            .await
            .map_err(|e| Sent::Failed(transport(&self.host, e)))?;
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            Sent::Failed(TranslateError::Parse(format!(
                "{}: not LibreTranslate's JSON ({e})",
                self.host
            )))
        })?;
        Ok(match answer.translated_text {
            Translated::Many(texts) => texts,
            Translated::One(text) => vec![text],
        })
    }

    async fn translate(&self, request: TranslationRequest) -> Result<Vec<String>, TranslateError> {
        let peeled: Vec<Peeled> = request.texts.iter().map(|t| Peeled::new(t)).collect();
        let sent: Vec<usize> = (0..peeled.len())
            .filter(|&i| !peeled[i].core.trim().is_empty())
            .collect();
        let mut out = request.texts.clone();
        if sent.is_empty() {
            return Ok(out);
        }
        let html = sent.iter().any(|&i| peeled[i].has_inner_markup());
        let texts: Vec<String> = sent
            .iter()
            .map(|&i| {
                if html {
                    to_html(&peeled[i].core)
                } else {
                    peeled[i].core.clone()
                }
            })
            .collect();
        let from = code(&request.from);
        let regional = code(&request.to);
        let base = request.to.base().to_owned();
        let mut to = if self.unsupported.borrow().contains(&regional) {
            base.clone()
        } else {
            regional.clone()
        };
        let answer = loop {
            match self.send(&texts, &from, &to, html).await {
                Ok(answer) => break answer,
                Err(Sent::Refused(failure))
                    if failure.status.as_u16() == 400
                        && to != base
                        && failure.message.to_lowercase().contains("not supported") =>
                {
                    self.unsupported.borrow_mut().insert(regional.clone());
                    to.clone_from(&base);
                }
                Err(Sent::Refused(failure)) => return Err(self.error(&failure)),
                Err(Sent::Failed(error)) => return Err(error),
            }
        };
        if answer.len() != sent.len() {
            return Err(TranslateError::Parse(format!(
                "{}: {} translations for {} texts",
                self.host,
                answer.len(),
                sent.len()
            )));
        }
        for (&i, text) in sent.iter().zip(answer) {
            let core = if html { from_html(&text) } else { text };
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

impl TranslationService for LibreTranslate {
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

    #[test]
    fn codes_are_libretranslates() {
        let lang = |c: &str| Language::parse(c).unwrap();
        assert_eq!(code(&lang("zh-TW")), "zh-Hant");
        assert_eq!(code(&lang("zh")), "zh-Hans");
        assert_eq!(code(&lang("pt-BR")), "pt-BR");
        assert_eq!(code(&lang("fr-CA")), "fr");
    }

    #[test]
    fn html_round_trips() {
        let core = "Tom & <b>Jerry</b>\n<3";
        assert_eq!(to_html(core), "Tom &amp; <b>Jerry</b><br>&lt;3");
        assert_eq!(from_html(&to_html(core)), core);
        assert_eq!(from_html("a<br/>b<br />c"), "a\nb\nc");
    }
}
