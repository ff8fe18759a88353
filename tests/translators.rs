//! The translation clients (DeepL, LibreTranslate, OpenAI-compatible) against loopback
//! fakes that speak each protocol (tests/fake_translators): the happy path checked cue by
//! cue, every fault mapped to its `TranslateError`, inline tags kept, regional codes, the
//! DeepL Free/Pro host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
