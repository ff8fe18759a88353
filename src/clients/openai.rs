//! OpenAI-compatible chat completions (OpenAI, Ollama, LM Studio, vLLM, OpenRouter), behind
//! the core's [`TranslationService`].
//!
//! - `POST {url}/chat/completions` (`url` is the API base with its version, as the OpenAI
//!   SDKs take it: `https://api.openai.com/v1`, `http://localhost:11434/v1`; a bare host
//!   gets `/v1`), `Authorization: Bearer <key>` when a key is set, `model` from the config,
//!   `stream: false`, `temperature: 0.2`.
//! - The user message is JSON: the cues numbered from 1 (`{"n":1,"text":"…"}`), plus a few
//!   cues before and after as context (`before`, `after`: not translated). The answer is
//!   asked for as `{"translations":[{"n":1,"text":"…"}]}` with a strict `response_format`
//!   JSON schema; a server that refuses `response_format` (or `temperature`) is asked again
//!   without it, and not sent it again. The answer is read leniently: code fences, chatty
//!   text around the JSON, a map `{"1": "…"}`, or plain numbered lines (`1: …`, `2. …`).
//! - Exactly one text per cue number 1…N, or the answer is unreadable (`Parse`: the batch is
//!   halved and retried): a missing, extra, repeated or empty cue is never guessed; cues
//!   that come back in another order are put back in order by their numbers.
//! - `finish_reason: "length"` and context-length errors = too large (halved);
//!   `insufficient_quota` = quota exhausted (not retried); other 429s = rate limited for
//!   `retry-after-ms`/`retry-after`; 401/403 = credentials; 404 = unknown model; 5xx =
//!   unavailable. Error bodies are read in the OpenAI (`{"error":{…}}`) and the flat
//!   vLLM/Ollama (`{"object":"error","message":…}`) shapes.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use cuewarden_actors::clients::{
    LocalBoxFuture, TranslateError, TranslationLimits, TranslationRequest, TranslationService,
};
use serde_json::{Value, json};
use url::Url;

use super::translators::{Failure, Peeled, host_of, transport};
use crate::config::TranslatorSettings;

/// The service's name in events, the cache key and budgets.
pub const NAME: &str = "openai";

const SYSTEM: &str = "You translate film and TV subtitles. The user sends JSON: \
\"from\" and \"to\" are BCP 47 language codes, \"cues\" the numbered subtitle cues to translate, \
\"before\" and \"after\" the cues around them, for context only (never translate or return them). \
Translate the text of every cue from \"from\" to \"to\", naturally and concisely, as subtitles. \
Keep inline tags such as <i>, </i>, <b>, <font color=\"…\"> and {\\an8} exactly as they are, \
around the words they belong to, and keep line breaks (\\n) where a cue has them. \
Answer with JSON only: {\"translations\":[{\"n\":1,\"text\":\"…\"}]}, one entry per cue, \
with the same n, in the same order; never merge, split, skip or add cues.";

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    host: String,
    key: Option<String>,
    model: String,
    limits: TranslationLimits,
    /// The server takes a `response_format` JSON schema (until it says otherwise).
    schema: Cell<bool>,
    /// The server (model) takes `temperature` (until it says otherwise).
    temperature: Cell<bool>,
}

/// The OpenAI-compatible client (cheap to clone).
#[derive(Clone)]
pub struct OpenAi(Rc<Inner>);

/// `…/chat/completions` under the configured base.
pub fn endpoint_for(base: &Url) -> Url {
    let mut endpoint = base.clone();
    let path = base.path().trim_end_matches('/');
    let path = if path.ends_with("/chat/completions") {
        path.to_owned()
    } else if path.is_empty() {
        "/v1/chat/completions".to_owned()
    } else {
        format!("{path}/chat/completions")
    };
    endpoint.set_path(&path);
    endpoint
}

impl OpenAi {
    /// A client for `[translator]` with `kind = "openai"`.
    pub fn new(settings: &TranslatorSettings) -> anyhow::Result<Self> {
        let base = settings.url.clone().ok_or_else(|| {
            anyhow::anyhow!("[translator] url is required for OpenAI-compatible servers")
        })?;
        let endpoint = endpoint_for(&base);
        Ok(Self(Rc::new(Inner {
            http: super::translators::http_client(settings)?,
            host: host_of(&endpoint),
            endpoint,
            key: settings
                .api_key
                .as_ref()
                .map(|k| k.expose().trim().to_owned())
                .filter(|k| !k.is_empty()),
            model: settings.model.clone(),
            limits: TranslationLimits {
                max_texts: settings.batch_size.max(1),
                max_bytes: 12 * 1024,
                context: settings.context_cues,
            },
            schema: Cell::new(true),
            temperature: Cell::new(true),
        })))
    }
}

fn schema() -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": "subtitle_translation",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "translations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "n": {"type": "integer"},
                                "text": {"type": "string"}
                            },
                            "required": ["n", "text"],
                            "additionalProperties": false
                        }
                    }
                },
                "required": ["translations"],
                "additionalProperties": false
            }
        }
    })
}

/// The numbered texts an answer holds, read leniently (JSON in several shapes, else
/// numbered lines), as `(n, text)` in the answer's order.
pub fn read_numbered(content: &str) -> Vec<(u64, String)> {
    let trimmed = content.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .map(|t| t.trim_end().trim_end_matches("```"))
        .unwrap_or(trimmed)
        .trim();
    let json = serde_json::from_str::<Value>(unfenced).ok().or_else(|| {
        let start = unfenced.find(['{', '['])?;
        let end = unfenced.rfind(['}', ']'])?;
        (start < end)
            .then(|| serde_json::from_str::<Value>(&unfenced[start..=end]).ok())
            .flatten()
    });
    if let Some(found) = json.as_ref().and_then(from_json)
        && !found.is_empty()
    {
        return found;
    }
    from_lines(unfenced)
}

fn from_json(value: &Value) -> Option<Vec<(u64, String)>> {
    let list = value.get("translations").unwrap_or(value);
    match list {
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => out.push((i as u64 + 1, text.clone())),
                    Value::Object(map) => {
                        let n = map
                            .get("n")
                            .or_else(|| map.get("id"))
                            .or_else(|| map.get("index"))
                            .and_then(|n| n.as_u64().or_else(|| n.as_str()?.trim().parse().ok()))?;
                        let text = map
                            .get("text")
                            .or_else(|| map.get("translation"))
                            .and_then(Value::as_str)?;
                        out.push((n, text.to_owned()));
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Some((k.trim().parse().ok()?, v.as_str()?.to_owned())))
            .collect(),
        _ => None,
    }
}

/// `1: text`, `2. text`, `3) text`, `[4] text`; a line without a number continues the
/// cue before it; lines before the first number are chatter.
fn from_lines(text: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for line in text.lines() {
        let stripped = line.trim_start().trim_start_matches('[');
        let digits = stripped.len()
            - stripped
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        let numbered = (digits > 0 && digits < 7)
            .then(|| {
                let rest = stripped[digits..].trim_start();
                let rest = rest.strip_prefix([':', '.', ')', ']', '-'])?;
                Some((
                    stripped[..digits].parse::<u64>().ok()?,
                    rest.trim().to_owned(),
                ))
            })
            .flatten();
        match (numbered, out.last_mut()) {
            (Some(entry), _) => out.push(entry),
            (None, Some((_, text))) if !line.trim().is_empty() => {
                text.push('\n');
                text.push_str(line.trim());
            }
            _ => {}
        }
    }
    out
}

/// Exactly the texts numbered `1..=count`, in that order, or what is wrong.
pub fn in_order(found: Vec<(u64, String)>, count: usize) -> Result<Vec<String>, String> {
    let mut by_number = BTreeMap::new();
    for (n, text) in found {
        let position = usize::try_from(n).unwrap_or(usize::MAX);
        if position == 0 || position > count {
            return Err(format!("cue {n} is not one of the {count} sent"));
        }
        if by_number.insert(position, text).is_some() {
            return Err(format!("cue {n} came back twice"));
        }
    }
    if let Some(missing) = (1..=count).find(|n| !by_number.contains_key(n)) {
        return Err(format!(
            "cue {missing} is missing ({} of {count} came back)",
            by_number.len()
        ));
    }
    if let Some((n, _)) = by_number.iter().find(|(_, t)| t.trim().is_empty()) {
        return Err(format!("cue {n} came back empty"));
    }
    Ok(by_number.into_values().collect())
}

impl Inner {
    fn error(&self, failure: &Failure) -> TranslateError {
        let host = &self.host;
        let body: Value = serde_json::from_str(&failure.body).unwrap_or(Value::Null);
        let field = |name: &str| {
            body["error"][name]
                .as_str()
                .or_else(|| body[name].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let (code, kind) = (field("code"), field("type"));
        let lower = failure.message.to_lowercase();
        if code == "insufficient_quota" || kind == "insufficient_quota" {
            return TranslateError::QuotaExhausted { resets_in: None };
        }
        if code == "context_length_exceeded"
            || lower.contains("maximum context length")
            || lower.contains("context length")
        {
            return TranslateError::TooLarge;
        }
        match failure.status.as_u16() {
            401 | 403 => TranslateError::Auth(format!(
                "{host} refused the request ({} {}): check [translator] api_key and model",
                failure.status.as_u16(),
                failure.message
            )),
            404 => TranslateError::Permanent(format!(
                "{} (check [translator] model and url)",
                failure.describe(host)
            )),
            _ => failure
                .common(host)
                .unwrap_or_else(|| TranslateError::Permanent(failure.describe(host))),
        }
    }

    fn body(&self, request: &TranslationRequest, cues: &[(usize, String)]) -> Value {
        let user = json!({
            "from": request.from.as_str(),
            "to": request.to.as_str(),
            "before": request.before,
            "cues": cues
                .iter()
                .enumerate()
                .map(|(k, (_, text))| json!({"n": k + 1, "text": text}))
                .collect::<Vec<_>>(),
            "after": request.after,
        });
        let mut body = json!({
            "model": self.model,
            "stream": false,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user.to_string()},
            ],
        });
        if self.temperature.get() {
            body["temperature"] = json!(0.2);
        }
        if self.schema.get() {
            body["response_format"] = schema();
        }
        body
    }

    async fn translate(&self, request: TranslationRequest) -> Result<Vec<String>, TranslateError> {
        let peeled: Vec<Peeled> = request.texts.iter().map(|t| Peeled::new(t)).collect();
        let cues: Vec<(usize, String)> = peeled
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.core.trim().is_empty())
            .map(|(i, p)| (i, p.core.clone()))
            .collect();
        let mut out = request.texts.clone();
        if cues.is_empty() {
            return Ok(out);
        }
        let answer = loop {
            let mut post = self
                .http
                .post(self.endpoint.clone())
                .json(&self.body(&request, &cues));
            if let Some(key) = &self.key {
                post = post.bearer_auth(key);
            }
            let response = post.send().await.map_err(|e| transport(&self.host, e))?;
            if response.status().is_success() {
                let text = response
                    .text()
                    .await
                    .map_err(|e| transport(&self.host, e))?;
                break serde_json::from_str::<Value>(&text).map_err(|e| {
                    TranslateError::Parse(format!("{}: not a chat completion ({e})", self.host))
                })?;
            }
            let failure = Failure::read(response).await;
            let lower = failure.message.to_lowercase();
            if failure.status.as_u16() == 400 {
                if self.schema.get()
                    && (lower.contains("response_format") || lower.contains("json_schema"))
                {
                    self.schema.set(false);
                    continue;
                }
                if self.temperature.get() && lower.contains("temperature") {
                    self.temperature.set(false);
                    continue;
                }
            }
            return Err(self.error(&failure));
        };
        let choice = &answer["choices"][0];
        if choice.is_null() {
            return Err(TranslateError::Parse(format!(
                "{}: a chat completion without choices",
                self.host
            )));
        }
        match choice["finish_reason"].as_str() {
            Some("length") => return Err(TranslateError::TooLarge),
            Some("content_filter") => {
                return Err(TranslateError::Parse(format!(
                    "{}: the server's content filter stopped the answer",
                    self.host
                )));
            }
            _ => {}
        }
        let Some(content) = choice["message"]["content"].as_str() else {
            return Err(TranslateError::Parse(format!(
                "{}: the answer has no text{}",
                self.host,
                choice["message"]["refusal"]
                    .as_str()
                    .map(|r| format!(" (refused: {r})"))
                    .unwrap_or_default()
            )));
        };
        let texts = in_order(read_numbered(content), cues.len())
            .map_err(|e| TranslateError::Parse(format!("{}: {e}", self.host)))?;
        for ((i, _), text) in cues.iter().zip(texts) {
            out[*i] = peeled[*i].rebuild(text.trim_matches(' '));
        }
        Ok(out)
    }
}

impl TranslationService for OpenAi {
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
    fn the_endpoint_is_under_the_base() {
        let at = |u: &str| endpoint_for(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            at("https://api.openai.com/v1"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            at("http://localhost:11434/v1/"),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            at("http://localhost:11434"),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            at("https://openrouter.ai/api/v1/chat/completions"),
            "https://openrouter.ai/api/v1/chat/completions"
        );
    }

    #[test]
    fn answers_are_read_leniently() {
        let want = vec![(1, "Un".to_owned()), (2, "Deux\ntrois".to_owned())];
        for content in [
            r#"{"translations":[{"n":1,"text":"Un"},{"n":2,"text":"Deux\ntrois"}]}"#,
            "```json\n{\"translations\":[{\"n\":1,\"text\":\"Un\"},{\"n\":2,\"text\":\"Deux\\ntrois\"}]}\n```",
            "Here you go: {\"1\": \"Un\", \"2\": \"Deux\\ntrois\"} Enjoy!",
            "Sure! Here are the translations:\n\n1: Un\n2. Deux\ntrois\n",
        ] {
            assert_eq!(read_numbered(content), want, "{content}");
        }
        assert_eq!(
            read_numbered(r#"["Un", "Deux"]"#),
            [(1, "Un".to_owned()), (2, "Deux".to_owned())]
        );
    }

    #[test]
    fn numbering_must_be_exact() {
        let t = |pairs: &[(u64, &str)]| {
            pairs
                .iter()
                .map(|(n, s)| (*n, (*s).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(in_order(t(&[(2, "b"), (1, "a")]), 2).unwrap(), ["a", "b"]);
        assert!(
            in_order(t(&[(1, "a")]), 2)
                .unwrap_err()
                .contains("cue 2 is missing")
        );
        assert!(
            in_order(t(&[(1, "a"), (1, "b")]), 2)
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            in_order(t(&[(1, "a"), (2, "b"), (3, "c")]), 2)
                .unwrap_err()
                .contains("cue 3")
        );
        assert!(
            in_order(t(&[(1, "a"), (2, " ")]), 2)
                .unwrap_err()
                .contains("empty")
        );
    }
}
