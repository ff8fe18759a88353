//! The translation clients (DeepL, LibreTranslate, OpenAI-compatible) against loopback
//! fakes that speak each protocol (tests/fake_translators): the happy path checked cue by
//! cue, every fault mapped to its `TranslateError`, inline tags kept, regional codes, the
//! DeepL Free/Pro host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fake_translators;

use fake_translators::{API_KEY, Fake, Fault, translate};
use serde_json::{Value, json};

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn post(url: String, authorization: Option<String>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[test]
fn the_fake_translation_is_its_own_inverse_and_keeps_markup() {
    let text = "{\\an8}<i>Where are we?</i>\n<font color=\"#ff0000\">Tom &amp; Jerry</font> 42";
    let once = translate(text);
    assert_eq!(
        once,
        "{\\an8}<i>erehW era ew?</i>\n<font color=\"#ff0000\">moT &amp; yrreJ</font> 42"
    );
    assert_eq!(translate(&once), text);
}

#[test]
fn the_fakes_speak_the_documented_protocols() {
    let fake = Fake::start();
    let deepl: Value =
        serde_json::from_str(include_str!("fixtures/deepl_translate_request.json")).unwrap();
    let libre: Value = serde_json::from_str(include_str!(
        "fixtures/libretranslate_translate_request.json"
    ))
    .unwrap();
    block_on(async {
        let (status, body) = post(
            format!("{}/v2/translate", fake.base),
            Some(format!("DeepL-Auth-Key {API_KEY}")),
            deepl.clone(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["translations"][1]["text"], "<i>erehW era ew?</i>");
        fake.script([Fault::Quota]);
        let (status, _) = post(
            format!("{}/v2/translate", fake.base),
            Some(format!("DeepL-Auth-Key {API_KEY}")),
            deepl,
        )
        .await;
        assert_eq!(status, 456);
        let mut libre = libre;
        libre["api_key"] = json!(API_KEY);
        let (status, body) = post(format!("{}/translate", fake.base), None, libre).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["translatedText"],
            json!(["olleH dlrow!", "erehW era ew?"])
        );
    });
    assert_eq!(fake.count(), 3);
    assert!(fake.bytes() > 0);
}

// ---- the clients against the fakes ----

use std::rc::Rc;
use std::time::Duration;

use cuewarden_actors::Language;
use cuewarden_actors::clients::{TranslateError, TranslationRequest, TranslationService};
use fake_translators::FREE_KEY;

fn client(fake: &Fake, kind: &str, extra: &str) -> Rc<dyn TranslationService> {
    let settings = cuewarden::config::parse(&fake.config(kind, extra), "t.toml", &[]).unwrap();
    cuewarden::clients::translators::translator(settings.translator.as_ref().unwrap()).unwrap()
}

fn lang(code: &str) -> Language {
    Language::parse(code).unwrap()
}

fn request(texts: &[&str], from: &str, to: &str) -> TranslationRequest {
    TranslationRequest {
        texts: texts.iter().map(|t| (*t).to_owned()).collect(),
        from: lang(from),
        to: lang(to),
        before: Vec::new(),
        after: Vec::new(),
    }
}

fn run(
    client: &Rc<dyn TranslationService>,
    request: TranslationRequest,
) -> Result<Vec<String>, TranslateError> {
    block_on(client.translate(request))
}

/// The cues every happy-path test sends: plain, tags around, tags and an `&` inside, a
/// line break, an ASS override, an empty cue and one of markup only.
const CUES: &[&str] = &[
    "Hello, world!",
    "<i>Where are we?</i>",
    "{\\an8}Tom & <b>Jerry</b>\nare here <3",
    "<font color=\"#ffff00\">- Run!\n- Where?</font>",
    "",
    "<i></i>",
];

fn expected(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| translate(t)).collect()
}

fn is_parse(result: &Result<Vec<String>, TranslateError>) -> bool {
    matches!(result, Err(TranslateError::Parse(_)))
}

#[test]
fn deepl_translates_every_cue_and_keeps_the_tags() {
    let fake = Fake::start();
    let deepl = client(&fake, "deepl", "");
    assert_eq!(deepl.name(), "deepl");
    assert_eq!(deepl.limits().max_texts, 50);
    let mut req = request(CUES, "en", "fr");
    req.before = vec!["<i>Before.</i>".to_owned()];
    req.after = vec!["After & after.".to_owned()];
    assert_eq!(run(&deepl, req).unwrap(), expected(CUES));
    let sent = fake.requests("/v2/translate");
    assert_eq!(sent.len(), 1);
    let body = &sent[0].body;
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some(format!("DeepL-Auth-Key {API_KEY}").as_str())
    );
    assert!(
        sent[0]
            .user_agent
            .as_deref()
            .unwrap()
            .starts_with("cuewarden/")
    );
    assert!(
        sent[0]
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(body["tag_handling"], "xml");
    assert_eq!(body["target_lang"], "FR");
    assert_eq!(body["source_lang"], "EN");
    assert!(body.get("auth_key").is_none());
    // Empty and markup-only cues are not sent (or billed); outer tags stay home.
    assert_eq!(body["text"].as_array().unwrap().len(), 4);
    assert_eq!(body["text"][1], "Where are we?");
    assert_eq!(body["context"], "Before.\nAfter &amp; after.");
}

#[test]
fn deepl_sends_the_regional_target_codes() {
    let fake = Fake::start();
    let deepl = client(&fake, "deepl", "");
    for (from, to, source, target) in [
        ("en", "pt-BR", "EN", "PT-BR"),
        ("en", "pt", "EN", "PT-PT"),
        ("fr", "en", "FR", "EN-US"),
        ("en", "zh-TW", "EN", "ZH-HANT"),
        ("en", "zh", "EN", "ZH-HANS"),
        ("pt-BR", "de", "PT", "DE"),
    ] {
        run(&deepl, request(&["Hello"], from, to)).unwrap();
        let body = fake.last_body();
        assert_eq!(
            (body["source_lang"].as_str(), body["target_lang"].as_str()),
            (Some(source), Some(target))
        );
    }
}

#[test]
fn deepl_free_keys_go_to_the_free_host_and_a_wrong_host_is_explained() {
    // Without a url the host follows the key.
    let settings = |key: &str| {
        cuewarden::config::parse(
            &format!("[translator]\nkind = \"deepl\"\napi_key = \"{key}\"\n"),
            "t.toml",
            &[],
        )
        .unwrap()
        .translator
        .unwrap()
    };
    let free = cuewarden::clients::deepl::DeepL::new(&settings(FREE_KEY)).unwrap();
    assert_eq!(
        free.endpoint().as_str(),
        "https://api-free.deepl.com/v2/translate"
    );
    let pro = cuewarden::clients::deepl::DeepL::new(&settings(API_KEY)).unwrap();
    assert_eq!(
        pro.endpoint().as_str(),
        "https://api.deepl.com/v2/translate"
    );

    // The fake as the Free host takes the free key.
    let free_host = Fake::start();
    free_host.free_host();
    let deepl = client(&free_host, "deepl", "");
    assert_eq!(
        run(&deepl, request(&["Hello"], "en", "de")).unwrap(),
        ["olleH"]
    );

    // A free key sent to the Pro host: 403 "Wrong endpoint", explained.
    let pro_host = Fake::start();
    let settings = cuewarden::config::parse(
        &format!(
            "[translator]\nkind = \"deepl\"\nurl = \"{}\"\napi_key = \"{FREE_KEY}\"\n",
            pro_host.base
        ),
        "t.toml",
        &[],
    )
    .unwrap();
    let deepl =
        cuewarden::clients::translators::translator(settings.translator.as_ref().unwrap()).unwrap();
    let Err(TranslateError::Auth(message)) = run(&deepl, request(&["Hello"], "en", "de")) else {
        panic!("not an Auth error");
    };
    assert!(message.contains("Wrong endpoint"), "{message}");
    assert!(message.contains(":fx"), "{message}");
    assert!(message.contains("https://api-free.deepl.com"), "{message}");
}

#[test]
fn deepl_faults_map_to_their_errors() {
    let fake = Fake::start();
    let deepl = client(&fake, "deepl", "");
    let two = || request(&["One cue.", "Two cues."], "en", "de");
    fake.script([Fault::RateLimited(7)]);
    assert_eq!(
        run(&deepl, two()),
        Err(TranslateError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        })
    );
    fake.script([Fault::Quota]);
    assert_eq!(
        run(&deepl, two()),
        Err(TranslateError::QuotaExhausted { resets_in: None })
    );
    fake.script([Fault::WrongHost]);
    assert!(
        matches!(run(&deepl, two()), Err(TranslateError::Auth(m)) if m.contains("api-free.deepl.com"))
    );
    fake.script([Fault::Truncated]);
    assert_eq!(run(&deepl, two()), Err(TranslateError::TooLarge));
    for fault in [
        Fault::Drop,
        Fault::Merge,
        Fault::Extra,
        Fault::Empty,
        Fault::Garbage,
    ] {
        fake.script([fault.clone()]);
        assert!(is_parse(&run(&deepl, two())), "{fault:?}");
    }
    fake.script([Fault::Status(503)]);
    assert!(
        matches!(run(&deepl, two()), Err(TranslateError::Unavailable(m)) if m.contains("127.0.0.1"))
    );
    // A target DeepL does not have: permanent.
    assert!(matches!(
        run(&deepl, request(&["Hello"], "en", "eu")),
        Err(TranslateError::Permanent(m)) if m.contains("target_lang")
    ));
    // A wrong key.
    let wrong = cuewarden::config::parse(
        &format!(
            "[translator]\nkind = \"deepl\"\nurl = \"{}\"\napi_key = \"nope\"\n",
            fake.base
        ),
        "t.toml",
        &[],
    )
    .unwrap();
    let wrong =
        cuewarden::clients::translators::translator(wrong.translator.as_ref().unwrap()).unwrap();
    assert!(matches!(run(&wrong, two()), Err(TranslateError::Auth(m)) if m.contains("api_key")));
    // And it still serves.
    assert_eq!(run(&deepl, two()).unwrap(), ["enO euc.", "owT seuc."]);
}

#[test]
fn deepl_never_sends_a_body_over_128_kib() {
    let fake = Fake::start();
    let deepl = client(&fake, "deepl", "");
    let long = "word ".repeat(600);
    let texts: Vec<&str> = (0..50).map(|_| long.as_str()).collect();
    assert_eq!(
        run(&deepl, request(&texts, "en", "de")),
        Err(TranslateError::TooLarge)
    );
    assert_eq!(fake.count(), 0);
}

#[test]
fn libretranslate_translates_every_cue_and_keeps_the_tags() {
    let fake = Fake::start();
    let libre = client(&fake, "libretranslate", "");
    assert_eq!(libre.name(), "libretranslate");
    assert_eq!(libre.limits().context, 0);
    // Tags only around the cues: plain text.
    let outer = [
        "Hello, world!",
        "<i>Where are we?</i>",
        "{\\an8}Up here",
        "Two\nlines",
        "",
    ];
    assert_eq!(
        run(&libre, request(&outer, "en", "fr")).unwrap(),
        expected(&outer)
    );
    let body = fake.last_body();
    assert_eq!(body["format"], "text");
    assert_eq!(body["api_key"], API_KEY);
    assert_eq!(
        (body["source"].as_str(), body["target"].as_str()),
        (Some("en"), Some("fr"))
    );
    assert_eq!(
        body["q"],
        json!(["Hello, world!", "Where are we?", "Up here", "Two\nlines"])
    );
    // Tags inside a cue: HTML, which keeps them.
    assert_eq!(
        run(&libre, request(CUES, "en", "fr")).unwrap(),
        expected(CUES)
    );
    assert_eq!(fake.last_body()["format"], "html");
}

#[test]
fn libretranslate_codes_and_the_regional_fallback() {
    let fake = Fake::start();
    let libre = client(&fake, "libretranslate", "");
    for (to, code) in [
        ("pt-BR", "pt-BR"),
        ("zh-TW", "zh-Hant"),
        ("zh", "zh-Hans"),
        ("fr-CA", "fr"),
    ] {
        run(&libre, request(&["Hello"], "en", to)).unwrap();
        assert_eq!(fake.last_body()["target"], code);
    }
    // A server without pt-BR: asked again with pt, and pt from then on.
    fake.with(|s| s.libre_targets.retain(|t| t != "pt-BR"));
    let before = fake.count();
    assert_eq!(
        run(&libre, request(&["Hello"], "en", "pt-BR")).unwrap(),
        ["olleH"]
    );
    assert_eq!(fake.count() - before, 2);
    assert_eq!(fake.last_body()["target"], "pt");
    run(&libre, request(&["Hello"], "en", "pt-BR")).unwrap();
    assert_eq!(fake.count() - before, 3);
}

#[test]
fn libretranslate_faults_map_to_their_errors() {
    let fake = Fake::start();
    let libre = client(&fake, "libretranslate", "");
    let two = || request(&["One cue.", "Two cues."], "en", "de");
    fake.script([Fault::RateLimited(3)]);
    assert_eq!(
        run(&libre, two()),
        Err(TranslateError::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        })
    );
    fake.script([Fault::Truncated]);
    assert_eq!(run(&libre, two()), Err(TranslateError::TooLarge));
    fake.with(|s| s.batch_limit = Some(1));
    assert_eq!(run(&libre, two()), Err(TranslateError::TooLarge));
    fake.with(|s| s.batch_limit = None);
    fake.script([Fault::WrongHost]);
    assert!(matches!(run(&libre, two()), Err(TranslateError::Auth(m)) if m.contains("banned")));
    for fault in [
        Fault::Drop,
        Fault::Merge,
        Fault::Extra,
        Fault::Empty,
        Fault::Garbage,
    ] {
        fake.script([fault.clone()]);
        assert!(is_parse(&run(&libre, two())), "{fault:?}");
    }
    fake.script([Fault::Status(500)]);
    assert!(matches!(
        run(&libre, two()),
        Err(TranslateError::Unavailable(_))
    ));
    assert!(matches!(
        run(&libre, request(&["Hello"], "en", "eu")),
        Err(TranslateError::Permanent(m)) if m.contains("eu is not supported")
    ));
    // No key for a server that wants one; a wrong one.
    let keyless = cuewarden::config::parse(
        &format!(
            "[translator]\nkind = \"libretranslate\"\nurl = \"{}\"\n",
            fake.base
        ),
        "t.toml",
        &[],
    )
    .unwrap();
    let keyless =
        cuewarden::clients::translators::translator(keyless.translator.as_ref().unwrap()).unwrap();
    assert!(matches!(run(&keyless, two()), Err(TranslateError::Auth(m)) if m.contains("api_key")));
    assert!(fake.last_body().get("api_key").is_none());
    fake.with(|s| s.api_key = Some("another".to_owned()));
    assert!(
        matches!(run(&libre, two()), Err(TranslateError::Auth(m)) if m.contains("Invalid API key"))
    );
}

#[test]
fn openai_translates_numbered_cues_with_context() {
    let fake = Fake::start();
    let chat = client(&fake, "openai", "");
    assert_eq!(chat.name(), "openai");
    assert_eq!(chat.limits().context, 3);
    let mut req = request(CUES, "en", "pt-BR");
    req.before = vec!["Earlier.".to_owned()];
    req.after = vec!["Later.".to_owned()];
    assert_eq!(run(&chat, req).unwrap(), expected(CUES));
    let sent = fake.requests("/v1/chat/completions");
    assert_eq!(sent.len(), 1);
    let body = &sent[0].body;
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(body["model"], fake_translators::MODEL);
    assert_eq!(body["stream"], false);
    assert_eq!(body["response_format"]["type"], "json_schema");
    let user: Value =
        serde_json::from_str(body["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(user["to"], "pt-BR");
    assert_eq!(user["before"], json!(["Earlier."]));
    assert_eq!(user["after"], json!(["Later."]));
    assert_eq!(user["cues"].as_array().unwrap().len(), 4);
    assert_eq!(user["cues"][1], json!({"n": 2, "text": "Where are we?"}));
}

#[test]
fn openai_answers_are_read_leniently_and_put_in_order() {
    let fake = Fake::start();
    let chat = client(&fake, "openai", "");
    let three = ["One.", "Two.", "Three."];
    // Reordered lines keep their numbers: put back in order.
    fake.script([Fault::Reorder]);
    assert_eq!(
        run(&chat, request(&three, "en", "fr")).unwrap(),
        expected(&three)
    );
    // A server without JSON schemas: asked again without, and never sent one again.
    fake.no_schema();
    assert_eq!(
        run(&chat, request(&three, "en", "fr")).unwrap(),
        expected(&three)
    );
    assert_eq!(fake.count(), 3);
    assert!(fake.last_body().get("response_format").is_none());
    run(&chat, request(&three, "en", "fr")).unwrap();
    assert_eq!(fake.count(), 4);
    // A model that answers numbered lines after some chatter.
    fake.plain();
    assert_eq!(
        run(&chat, request(CUES, "en", "fr")).unwrap(),
        expected(CUES)
    );
}

#[test]
fn openai_faults_map_to_their_errors() {
    let fake = Fake::start();
    let chat = client(&fake, "openai", "");
    let three = || request(&["One.", "Two.", "Three."], "en", "de");
    fake.script([Fault::Truncated]);
    assert_eq!(run(&chat, three()), Err(TranslateError::TooLarge));
    fake.script([Fault::Quota]);
    assert_eq!(
        run(&chat, three()),
        Err(TranslateError::QuotaExhausted { resets_in: None })
    );
    fake.script([Fault::RateLimited(2)]);
    assert_eq!(
        run(&chat, three()),
        Err(TranslateError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        })
    );
    for fault in [
        Fault::Drop,
        Fault::Merge,
        Fault::Extra,
        Fault::Empty,
        Fault::Duplicate,
        Fault::Garbage,
    ] {
        fake.script([fault.clone()]);
        assert!(is_parse(&run(&chat, three())), "{fault:?}");
    }
    fake.script([Fault::FlatError(503)]);
    assert!(
        matches!(run(&chat, three()), Err(TranslateError::Unavailable(m)) if m.contains("overloaded"))
    );
    fake.script([Fault::WrongHost]);
    assert!(matches!(run(&chat, three()), Err(TranslateError::Auth(_))));
    // Plain-line answers are checked as strictly.
    fake.plain();
    fake.script([Fault::Drop]);
    assert!(
        matches!(run(&chat, three()), Err(TranslateError::Parse(m)) if m.contains("cue 3 is missing"))
    );
    // An unknown model: Ollama's 404, permanent.
    fake.with(|s| s.model = "other".to_owned());
    assert!(
        matches!(run(&chat, three()), Err(TranslateError::Permanent(m)) if m.contains("not found"))
    );
    // A wrong key.
    fake.with(|s| s.api_key = Some("another".to_owned()));
    assert!(matches!(run(&chat, three()), Err(TranslateError::Auth(m)) if m.contains("api_key")));
}

// ---- through the daemon ----

const SOURCE: &str = "1\n00:00:01,000 --> 00:00:02,500\n<i>Hello there.</i>\n\n\
2\n00:00:03,000 --> 00:00:04,000\n{\\an8}Tom & <b>Jerry</b>\nare here.\n\n\
3\n00:01:00,250 --> 00:01:02,000\nGeneral Kenobi!\n";

/// Each configured kind is built by the daemon and translates a job end to end: the `.fr.srt`
/// has the source's cues, timings and tags, each text translated.
#[test]
fn the_configured_translator_translates_a_job_end_to_end() {
    for kind in ["deepl", "libretranslate", "openai"] {
        let fake = Fake::start();
        let sandbox = common::Sandbox::new(&fake.config(kind, ""));
        let config = std::fs::read_to_string(sandbox.config())
            .unwrap()
            .replace("wanted = [\"fr\", \"en\"]", "wanted = [\"fr\"]")
            .replace("translate_from = []", "translate_from = [\"en\"]");
        std::fs::write(sandbox.config(), config).unwrap();
        let video = sandbox.video("Film (2020)/Film.2020.mkv");
        std::fs::write(video.with_extension("en.srt"), SOURCE).unwrap();
        let daemon = sandbox.serve();
        let (status, body) = daemon.post(
            "/api/v1/subtitles",
            &json!({"path": video, "languages": ["fr"]}),
        );
        assert_eq!(status, 202, "{body}");
        let id = body["jobs"][0]["id"].as_str().unwrap().to_owned();
        let job = daemon.wait_for_job(&id, |job| {
            ["done", "failed", "waiting"].contains(&job["status"].as_str().unwrap_or_default())
        });
        assert_eq!(job["status"], "done", "{kind}: {job}");
        let written = std::fs::read_to_string(video.with_extension("fr.srt")).unwrap();
        let want = "1\n00:00:01,000 --> 00:00:02,500\n<i>olleH ereht.</i>\n\n\
2\n00:00:03,000 --> 00:00:04,000\n{\\an8}moT & <b>yrreJ</b>\nera ereh.\n\n\
3\n00:01:00,250 --> 00:01:02,000\nlareneG iboneK!\n";
        assert_eq!(
            written.replace("\r\n", "\n").trim_end(),
            want.trim_end(),
            "{kind}"
        );
        assert_eq!(fake.count(), 1, "{kind}: one request for three cues");
        daemon.stop().unwrap();
    }
}
