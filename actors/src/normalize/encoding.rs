//! Character encodings: from whatever bytes a provider sent to UTF-8 text with `\n` lines.
//!
//! In order: a byte-order mark (UTF-8, UTF-16LE/BE) decides; then strict UTF-8; then the
//! legacy code pages subtitles in the job's language are usually written in (windows-1251
//! for Russian, windows-1250 for Polish, …) and `chardetng`'s guess compete, each decoded
//! strictly and scored by how plausible its letters are for that language's script. A
//! single-byte code page decodes almost anything, so the script check is what tells
//! windows-1251 Russian from the same bytes read as windows-1252 accented Latin.

use encoding_rs::{
    BIG5, EUC_JP, EUC_KR, Encoding, GBK, IBM866, ISO_8859_2, ISO_8859_16, KOI8_R, KOI8_U,
    SHIFT_JIS, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_874, WINDOWS_1250, WINDOWS_1251, WINDOWS_1252,
    WINDOWS_1253, WINDOWS_1254, WINDOWS_1255, WINDOWS_1256, WINDOWS_1257, WINDOWS_1258,
};

use crate::language::Language;

/// How much of a file `chardetng` looks at.
pub const DETECTOR_SAMPLE_BYTES: usize = 32 * 1024;

/// Text decoded from a subtitle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// UTF-8, no BOM, `\n` line endings.
    pub text: String,
    /// The encoding it was read as (`windows-1251`, `UTF-8`, …).
    pub encoding: &'static str,
}

/// Why bytes could not be read as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// Nothing decodes the bytes without errors.
    #[error("cannot tell the character encoding (not UTF-8, nor any code page used for {0})")]
    Unknown(String),
    /// Binary data (NUL bytes, control characters): not a text subtitle.
    #[error("binary data, not a text subtitle")]
    Binary,
}

/// The script a language's letters are written in, for the plausibility check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Cyrillic,
    Greek,
    Hebrew,
    Arabic,
    Thai,
    Cjk,
}

/// The legacy code pages subtitles in `language` are commonly written in, most likely
/// first, and the script of that language.
fn legacy_candidates(language: &Language) -> (Vec<&'static Encoding>, Script) {
    use Script::*;
    match language.base() {
        "ru" => (vec![WINDOWS_1251, KOI8_R, IBM866], Cyrillic),
        "uk" => (vec![WINDOWS_1251, KOI8_U], Cyrillic),
        "bg" | "be" | "mk" => (vec![WINDOWS_1251], Cyrillic),
        // Serbian comes in both scripts; Cyrillic first, Latin (windows-1250) next.
        "sr" => (vec![WINDOWS_1251, WINDOWS_1250], Cyrillic),
        "pl" | "cs" | "sk" | "hu" | "sl" | "hr" | "bs" => (vec![WINDOWS_1250, ISO_8859_2], Latin),
        "ro" => (vec![WINDOWS_1250, ISO_8859_16, WINDOWS_1252], Latin),
        "el" => (vec![WINDOWS_1253], Greek),
        "tr" | "az" => (vec![WINDOWS_1254], Latin),
        "he" | "yi" => (vec![WINDOWS_1255], Hebrew),
        "ar" | "fa" | "ur" => (vec![WINDOWS_1256], Arabic),
        "et" | "lv" | "lt" => (vec![WINDOWS_1257], Latin),
        "vi" => (vec![WINDOWS_1258], Latin),
        "th" => (vec![WINDOWS_874], Thai),
        "ja" => (vec![SHIFT_JIS, EUC_JP], Cjk),
        "ko" => (vec![EUC_KR], Cjk),
        "zh" => match language.region() {
            Some("TW") | Some("HK") => (vec![BIG5, GBK], Cjk),
            _ => (vec![GBK, BIG5], Cjk),
        },
        // Western European languages, and the default for everything else in Latin script.
        _ => (vec![WINDOWS_1252], Latin),
    }
}

fn in_script(c: char, script: Script) -> bool {
    let u = u32::from(c);
    match script {
        Script::Latin => matches!(u, 0x00C0..=0x024F | 0x1E00..=0x1EFF) && c != '×' && c != '÷',
        Script::Cyrillic => matches!(u, 0x0400..=0x052F),
        Script::Greek => matches!(u, 0x0370..=0x03FF | 0x1F00..=0x1FFF),
        Script::Hebrew => matches!(u, 0x0590..=0x05FF),
        Script::Arabic => matches!(u, 0x0600..=0x06FF | 0x0750..=0x077F | 0xFB50..=0xFEFF),
        Script::Thai => matches!(u, 0x0E00..=0x0E7F),
        Script::Cjk => matches!(
            u,
            0x3000..=0x30FF | 0x3130..=0x318F | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xFF00..=0xFFEF
        ),
    }
}

/// Punctuation subtitles use in any language (dashes, quotes, ellipsis, guillemets, …).
fn is_common_punctuation(c: char) -> bool {
    matches!(u32::from(c), 0x00A0..=0x00BF | 0x2010..=0x2027 | 0x2030..=0x203A | 0x20AC | 0x266A)
}

/// How plausible `text` is for a language written in `script`: the mean, over its
/// non-ASCII characters, of +1 for a letter of the script or common punctuation, −1 for
/// anything else (C1 controls, letters of another script, odd symbols). 1.0 for ASCII.
fn plausibility(text: &str, script: Script) -> f64 {
    let (mut total, mut score) = (0u32, 0i64);
    for c in text.chars().filter(|c| !c.is_ascii()) {
        total += 1;
        score += if in_script(c, script) || is_common_punctuation(c) {
            1
        } else {
            -1
        };
    }
    if total == 0 {
        1.0
    } else {
        score as f64 / f64::from(total)
    }
}

/// `\r\n` and lone `\r` become `\n`; a BOM left at the start is dropped.
pub fn normalize_newlines(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `bytes` look like UTF-16 without a BOM: most odd (LE) or even (BE) bytes of
/// the first kilobyte are NUL, as they are for ASCII text in UTF-16.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = &bytes[..bytes.len().min(1024) & !1];
    if head.len() < 16 {
        return None;
    }
    let pairs = head.len() / 2;
    let zero_at = |offset: usize| {
        head.iter()
            .skip(offset)
            .step_by(2)
            .filter(|b| **b == 0)
            .count()
    };
    if zero_at(1) * 10 >= pairs * 7 && zero_at(0) * 10 < pairs {
        Some(UTF_16LE)
    } else if zero_at(0) * 10 >= pairs * 7 && zero_at(1) * 10 < pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// UTF-8 with a few stray bytes (a file edited with two tools): kept as UTF-8, each stray
/// byte replaced by U+FFFD, when valid multi-byte characters outnumber the stray bytes 10
/// to 1. A legacy code page read as UTF-8 is almost all stray bytes.
fn mostly_utf8(bytes: &[u8]) -> Option<String> {
    let lossy = String::from_utf8_lossy(bytes);
    let (mut good, mut bad) = (0usize, 0usize);
    for c in lossy.chars().filter(|c| !c.is_ascii()) {
        if c == char::REPLACEMENT_CHARACTER {
            bad += 1;
        } else {
            good += 1;
        }
    }
    (good >= 8 && bad * 10 <= good).then(|| lossy.into_owned())
}

fn has_binary_controls(text: &str) -> bool {
    let controls = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
        .filter(|c| !matches!(u32::from(*c), 0x80..=0x9F))
        .count();
    controls > 0 && controls * 100 >= text.chars().count().max(1)
}

fn finish(text: &str, encoding: &'static Encoding) -> Result<Decoded, EncodingError> {
    if text.contains('\0') || has_binary_controls(text) {
        return Err(EncodingError::Binary);
    }
    Ok(Decoded {
        text: normalize_newlines(text),
        encoding: encoding.name(),
    })
}

/// Decodes `bytes` (a subtitle in `language`) to UTF-8 text without BOM, `\n` lines.
pub fn decode(bytes: &[u8], language: &Language) -> Result<Decoded, EncodingError> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = encoding.decode_without_bom_handling(&bytes[bom..]);
        if had_errors {
            return Err(EncodingError::Unknown(format!(
                "{language} (its {} byte-order mark is followed by invalid data)",
                encoding.name()
            )));
        }
        return finish(&text, encoding);
    }
    if let Some(encoding) = utf16_without_bom(bytes)
        && let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(bytes)
    {
        return finish(&text, encoding);
    }
    if bytes.contains(&0) {
        return Err(EncodingError::Binary);
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return finish(text, UTF_8);
    }
    if let Some(text) = mostly_utf8(bytes) {
        return finish(&text, UTF_8);
    }
    let (legacy, script) = legacy_candidates(language);
    // The detector costs ~10 ms per 100 KiB; its first 32 KiB say as much as the whole.
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let sample = &bytes[..bytes.len().min(DETECTOR_SAMPLE_BYTES)];
    detector.feed(sample, sample.len() == bytes.len());
    let guess = detector.guess(None, chardetng::Utf8Detection::Deny);
    // The language's own code pages first (in their order), then the detector's guess;
    // the most plausible text wins, ties going to the earlier candidate.
    let mut best: Option<(f64, &'static Encoding, String)> = None;
    let candidates = legacy
        .iter()
        .copied()
        .chain((!legacy.contains(&guess)).then_some(guess));
    for encoding in candidates {
        let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(bytes) else {
            continue;
        };
        let mut score = plausibility(&text, script);
        if encoding == guess {
            // The detector looked at byte statistics, not just the script: a small edge.
            score += 0.05;
        }
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, encoding, text.into_owned()));
        }
    }
    match best {
        Some((score, encoding, text)) if score > 0.0 => finish(&text, encoding),
        _ => Err(EncodingError::Unknown(language.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Language {
        Language::parse(code).unwrap()
    }

    #[test]
    fn legacy_code_pages_follow_the_language() {
        let russian = WINDOWS_1251.encode("Съешь же ещё этих мягких булок.").0;
        let decoded = decode(&russian, &lang("ru")).unwrap();
        assert_eq!(decoded.encoding, "windows-1251");
        assert!(decoded.text.contains("мягких"), "{}", decoded.text);

        let polish = WINDOWS_1250.encode("Zażółć gęślą jaźń. Łódź, Kraków.").0;
        let decoded = decode(&polish, &lang("pl")).unwrap();
        assert!(decoded.text.contains("gęślą"), "{decoded:?}");

        let greek = WINDOWS_1253.encode("Καλημέρα κόσμε, τι κάνεις;").0;
        let decoded = decode(&greek, &lang("el")).unwrap();
        assert!(decoded.text.contains("Καλημέρα"), "{decoded:?}");

        let japanese = SHIFT_JIS.encode("こんにちは、世界。元気ですか？").0;
        let decoded = decode(&japanese, &lang("ja")).unwrap();
        assert!(decoded.text.contains("こんにちは"), "{decoded:?}");
    }

    #[test]
    fn utf8_with_a_stray_byte_stays_utf8() {
        let mut bytes = "Été, déjà, très, où, ça, naïve, cœur, là, à bientôt, élève. "
            .repeat(3)
            .into_bytes();
        bytes.push(0xE9); // one windows-1252 "é" pasted in
        bytes.extend_from_slice(" fin".as_bytes());
        let decoded = decode(&bytes, &lang("fr")).unwrap();
        assert_eq!(decoded.encoding, "UTF-8");
        assert!(decoded.text.starts_with("Été, déjà"), "{decoded:?}");
        assert!(decoded.text.contains("\u{fffd} fin"));
        // A legacy code page is not mistaken for it.
        let text = "Съешь же ещё этих мягких булок. ".repeat(5);
        let russian = WINDOWS_1251.encode(&text).0;
        assert_eq!(
            decode(&russian, &lang("ru")).unwrap().encoding,
            "windows-1251"
        );
    }

    #[test]
    fn boms_decide_and_are_dropped() {
        let mut utf16be = vec![0xFE, 0xFF];
        for unit in "Ça va?\r\n".encode_utf16() {
            utf16be.extend(unit.to_be_bytes());
        }
        let decoded = decode(&utf16be, &lang("fr")).unwrap();
        assert_eq!(decoded.text, "Ça va?\n");
        assert_eq!(decoded.encoding, "UTF-16BE");
        let decoded = decode("\u{feff}a\r\nb\rc".as_bytes(), &lang("en")).unwrap();
        assert_eq!(decoded.text, "a\nb\nc");
    }

    #[test]
    fn utf16_without_a_bom_is_recognised() {
        let mut bytes = Vec::new();
        for unit in "1\r\n00:00:01,000 --> 00:00:02,000\r\nHello there\r\n".encode_utf16() {
            bytes.extend(unit.to_le_bytes());
        }
        let decoded = decode(&bytes, &lang("en")).unwrap();
        assert!(decoded.text.starts_with("1\n00:00:01,000"), "{decoded:?}");
    }

    #[test]
    fn binary_is_refused() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0";
        assert_eq!(decode(png, &lang("en")), Err(EncodingError::Binary));
        let controls: Vec<u8> = (0..200u8).map(|i| i % 9 + 1).collect();
        assert_eq!(decode(&controls, &lang("en")), Err(EncodingError::Binary));
    }
}
