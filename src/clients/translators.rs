//! What the three translation clients share: building the configured one, their HTTP
//! client, reading error answers, `Retry-After`, and the markup rules that keep inline tags
//! out of the services' reach.
//!
//! Markup is `<…>` tags (`<i>`, `</b>`, `<font color="…">`) and ASS override blocks
//! (`{\an8}`). Leading and trailing markup of a cue (the usual `<i>…</i>` around a whole
//! cue, a `{\an8}` in front) is peeled off before the text is sent and put back verbatim
//! after; markup inside a cue is protected the way each service allows (DeepL: XML
//! placeholders; LibreTranslate: `format: "html"`; chat models: told to keep it).

use std::rc::Rc;
use std::time::Duration;

use cuewarden_actors::clients::{TranslateError, TranslationService};
use reqwest::StatusCode;

use crate::config::{TranslatorKind, TranslatorSettings};

/// Builds the client `settings` configure.
pub fn translator(settings: &TranslatorSettings) -> anyhow::Result<Rc<dyn TranslationService>> {
    Ok(match settings.kind {
        TranslatorKind::Deepl => Rc::new(super::deepl::DeepL::new(settings)?),
        TranslatorKind::Libretranslate => {
            Rc::new(super::libretranslate::LibreTranslate::new(settings)?)
        }
        TranslatorKind::Openai => Rc::new(super::openai::OpenAi::new(settings)?),
    })
}

/// A reqwest client with the translator's timeouts and our User-Agent.
pub(crate) fn http_client(settings: &TranslatorSettings) -> reqwest::Result<reqwest::Client> {
    // rustls with ring (the binary installs it at start; a library user may not have).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .user_agent(super::USER_AGENT)
        .build()
}

/// A transport failure, naming the host.
pub(crate) fn transport(host: &str, err: reqwest::Error) -> TranslateError {
    if err.is_timeout() {
        TranslateError::Unavailable(format!("{host}: timed out"))
    } else if err.is_decode() || err.is_body() {
        TranslateError::Parse(format!("{host}: {}", err.without_url()))
    } else {
        TranslateError::Unavailable(format!("{host}: {}", err.without_url()))
    }
}

/// The human part of an error body: `error.message` (OpenAI), `message` (DeepL, flat
/// vLLM), `error` as a string (LibreTranslate, Ollama's old shape), else the raw text (cut).
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        let found = value["error"]["message"]
            .as_str()
            .or_else(|| value["message"].as_str())
            .or_else(|| value["error"].as_str())
            .or_else(|| value["detail"].as_str());
        if let Some(found) = found {
            return found.trim().to_owned();
        }
    }
    let text = body.trim();
    if text.starts_with('<') {
        return "an HTML page, not the API's JSON".to_owned();
    }
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The status and error message of a failed answer, for the error kinds.
pub(crate) struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub body: String,
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// Reads a non-success answer.
    pub(crate) async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        Self {
            status,
            message: error_message(&body),
            body,
            retry_after,
        }
    }

    /// The kinds every service shares: 429, 413/414, 5xx/408/409, 401; else `None`.
    pub(crate) fn common(&self, host: &str) -> Option<TranslateError> {
        let code = self.status.as_u16();
        match code {
            429 => Some(TranslateError::RateLimited {
                retry_after: self.retry_after,
            }),
            413 | 414 => Some(TranslateError::TooLarge),
            401 => Some(TranslateError::Auth(format!(
                "{host} answered 401 ({}): check [translator] api_key",
                self.message
            ))),
            408 | 409 | 425 => Some(TranslateError::Unavailable(self.describe(host))),
            _ if self.status.is_server_error() || code == 529 => {
                Some(TranslateError::Unavailable(self.describe(host)))
            }
            _ => None,
        }
    }

    /// `host: 400 message`.
    pub(crate) fn describe(&self, host: &str) -> String {
        format!("{host}: {} {}", self.status.as_u16(), self.message)
    }
}

/// `retry-after-ms` (milliseconds, OpenAI) or `Retry-After` (seconds, fractions allowed),
/// honoured up to 10 minutes; an HTTP date or nonsense is no hint.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let delay = get("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| get("retry-after"))?;
    Some(Duration::from_secs_f64(delay.min(600.0)))
}

pub(crate) use super::host_of;

/// One piece of a cue's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Markup(&'a str),
}

/// Splits a cue's text into text and markup (`<tag …>`, `</tag>`, `{\…}`); a `<` or `{`
/// that opens no markup is text.
pub(crate) fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        // `<` and `{` are ASCII, so `i` is a char boundary whenever they are there.
        if let Some(end) = (matches!(bytes[i], b'<' | b'{'))
            .then(|| markup_at(text, i))
            .flatten()
        {
            if start < i {
                out.push(Piece::Text(&text[start..i]));
            }
            out.push(Piece::Markup(&text[i..end]));
            i = end;
            start = end;
        } else {
            i += 1;
        }
    }
    if start < text.len() {
        out.push(Piece::Text(&text[start..]));
    }
    out
}

/// The end of the markup starting at byte `i`, if any.
fn markup_at(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let close = if let Some(after) = rest.strip_prefix('<') {
        let after = after.trim_start_matches('/');
        if !after.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        '>'
    } else if rest.starts_with("{\\") {
        '}'
    } else {
        return None;
    };
    let end = rest[1..].find([close, '\n', '<', '{'])? + 1;
    (rest[end..].starts_with(close)).then_some(i + end + 1)
}

/// A cue split into its leading markup, the part to translate and its trailing markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peeled {
    pub prefix: String,
    pub core: String,
    pub suffix: String,
}

impl Peeled {
    /// Peels `text`'s leading and trailing markup (and the spaces between).
    pub(crate) fn new(text: &str) -> Self {
        let parts = pieces(text);
        let is_blank = |p: &Piece<'_>| matches!(p, Piece::Text(t) if t.trim().is_empty());
        let lead = parts
            .iter()
            .take_while(|p| matches!(p, Piece::Markup(_)) || is_blank(p))
            .count();
        let trail = parts[lead..]
            .iter()
            .rev()
            .take_while(|p| matches!(p, Piece::Markup(_)) || is_blank(p))
            .count();
        let join = |ps: &[Piece<'_>]| {
            ps.iter()
                .map(|p| match p {
                    Piece::Text(t) | Piece::Markup(t) => *t,
                })
                .collect::<String>()
        };
        Self {
            prefix: join(&parts[..lead]),
            core: join(&parts[lead..parts.len() - trail]),
            suffix: join(&parts[parts.len() - trail..]),
        }
    }

    /// Whether the part to translate still holds markup.
    pub(crate) fn has_inner_markup(&self) -> bool {
        pieces(&self.core)
            .iter()
            .any(|p| matches!(p, Piece::Markup(_)))
    }

    /// The cue again, with `core` translated.
    pub(crate) fn rebuild(&self, core: &str) -> String {
        format!("{}{core}{}", self.prefix, self.suffix)
    }
}

/// `&`, `<`, `>` escaped for XML/HTML text.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// XML/HTML entities decoded (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#39;`,
/// `&#x27;`, `&nbsp;`); an unknown `&…;` stays as it is.
pub(crate) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let decoded = tail.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &tail[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_split_from_text() {
        assert_eq!(
            pieces("{\\an8}<i>Hi</i> <3 a {b}"),
            [
                Piece::Markup("{\\an8}"),
                Piece::Markup("<i>"),
                Piece::Text("Hi"),
                Piece::Markup("</i>"),
                Piece::Text(" <3 a {b}"),
            ]
        );
        assert_eq!(
            pieces("<font color=\"#fff\">x</font>"),
            [
                Piece::Markup("<font color=\"#fff\">"),
                Piece::Text("x"),
                Piece::Markup("</font>")
            ]
        );
    }

    #[test]
    fn outer_markup_is_peeled_and_put_back() {
        let peeled = Peeled::new("{\\an8} <i>Where <b>are</b> we?</i>");
        assert_eq!(peeled.prefix, "{\\an8} <i>");
        assert_eq!(peeled.core, "Where <b>are</b> we?");
        assert_eq!(peeled.suffix, "</i>");
        assert!(peeled.has_inner_markup());
        assert_eq!(
            peeled.rebuild("Où <b>sommes</b>-nous ?"),
            "{\\an8} <i>Où <b>sommes</b>-nous ?</i>"
        );
        let only = Peeled::new("<i></i>");
        assert_eq!(only.core, "");
        assert_eq!(only.rebuild(""), "<i></i>");
        assert!(!Peeled::new("plain\ntext").has_inner_markup());
    }

    #[test]
    fn entities_round_trip() {
        let text = "Tom & Jerry <3 > \"x\"";
        assert_eq!(unescape(&escape(text)), text);
        assert_eq!(
            unescape("a &#39;b&#x27; &nbsp;&bogus; &"),
            "a 'b' \u{a0}&bogus; &"
        );
    }

    #[test]
    fn retry_after_prefers_milliseconds_and_ignores_dates() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = reqwest::header::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, reqwest::header::HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2.5")])),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "86400")])),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn error_bodies_of_every_shape_are_read() {
        assert_eq!(error_message(r#"{"error":{"message":"nested"}}"#), "nested");
        assert_eq!(
            error_message(r#"{"object":"error","message":"flat","code":400}"#),
            "flat"
        );
        assert_eq!(error_message(r#"{"error":"libre"}"#), "libre");
        assert_eq!(error_message("<html>"), "an HTML page, not the API's JSON");
        assert_eq!(error_message("plain"), "plain");
    }
}
