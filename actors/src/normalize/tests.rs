//! Every file of `actors/tests/fixtures/subs` (real-world encodings and formats), archives
//! made here with the `zip` crate, and garbage.

use std::io::Write as _;
use std::path::Path;

use zip::write::SimpleFileOptions;

use super::*;

const BOM_CRLF: &[u8] = include_bytes!("../../tests/fixtures/subs/edge_bom_crlf.srt");
const CP1251_RU: &[u8] = include_bytes!("../../tests/fixtures/subs/edge_cp1251_ru.srt");
const CP1252_FR: &[u8] = include_bytes!("../../tests/fixtures/subs/edge_cp1252_fr.srt");
const UTF16LE_BOM: &[u8] = include_bytes!("../../tests/fixtures/subs/edge_utf16le_bom.srt");
const SAMPLE_ASS: &[u8] = include_bytes!("../../tests/fixtures/subs/sample.ass");
const SAMPLE_VTT: &[u8] = include_bytes!("../../tests/fixtures/subs/sample.vtt");
const SUBDL_ZIP: &[u8] = include_bytes!("../../tests/fixtures/subdl_download_single.zip");

const MOVIE: &str = "/media/movies/Movie (2019)/Movie (2019).mkv";
const EPISODE: &str = "/media/tv/Show/Season 01/Show S01E02.mkv";

fn lang(code: &str) -> Language {
    Language::parse(code).unwrap()
}

fn run(bytes: &[u8], code: &str) -> Normalized {
    normalize(bytes, Path::new(MOVIE), &lang(code)).unwrap()
}

fn assert_clean(normalized: &Normalized) {
    assert!(!normalized.text.starts_with('\u{feff}'), "BOM kept");
    assert!(!normalized.text.contains('\r'), "CR kept");
    assert!(normalized.text.ends_with('\n'));
}

#[test]
fn bom_and_crlf_srt_keeps_its_inline_tags() {
    let n = run(BOM_CRLF, "en");
    assert_clean(&n);
    assert_eq!(
        (n.encoding, n.input, n.output, n.cues),
        ("UTF-8", InputFormat::Srt, OutputFormat::Srt, 4)
    );
    assert!(
        n.text.starts_with(
            "1\n00:00:01,000 --> 00:00:03,500\n{\\an8}<i>Previously on Example Show...</i>\n"
        ),
        "{}",
        n.text
    );
    assert!(n.text.contains("- <b>Who</b> are you?"));
    assert!(
        n.text
            .contains("3\n00:00:07,100 --> 00:00:09,900\nDot milliseconds"),
        "renumbered, comma ms: {}",
        n.text
    );
    assert!(
        n.text
            .contains("<font color=\"#ffff00\">Last cue, no trailing blank line.</font>\n")
    );
}

#[test]
fn windows_1251_russian() {
    let n = run(CP1251_RU, "ru");
    assert_clean(&n);
    assert_eq!(n.encoding, "windows-1251");
    assert!(
        n.text
            .contains("Съешь же ещё этих мягких французских булок."),
        "{}",
        n.text
    );
    assert!(n.text.contains("Да, выпей чаю."));
}

#[test]
fn windows_1252_french() {
    let n = run(CP1252_FR, "fr");
    assert_clean(&n);
    assert_eq!(n.encoding, "windows-1252");
    assert!(
        n.text.contains("Café déjà vu — naïve “quotes”."),
        "{}",
        n.text
    );
    assert!(n.text.contains("Ça va?"));
}

#[test]
fn utf16le_with_bom() {
    let n = run(UTF16LE_BOM, "fr");
    assert_clean(&n);
    assert_eq!(n.encoding, "UTF-16LE");
    assert!(
        n.text.contains("Café déjà vu — naïve “quotes”."),
        "{}",
        n.text
    );
    assert_eq!(n.cues, 2);
}

#[test]
fn ass_is_kept_as_ass() {
    let n = run(SAMPLE_ASS, "en");
    assert_clean(&n);
    assert_eq!(
        (n.input, n.output, n.cues),
        (InputFormat::Ass, OutputFormat::Ass, 4)
    );
    assert_eq!(n.output.extension(), "ass");
    assert!(n.text.starts_with("[Script Info]\n"));
    assert!(
        n.text
            .contains("{\\i1}Italic{\\i0} and {\\an8}top-positioned")
    );
    assert!(
        n.text
            .contains("{\\pos(960,100)\\fad(200,200)}SIGN TEXT\\hhard space")
    );
    let original = String::from_utf8(SAMPLE_ASS.to_vec())
        .unwrap()
        .replace("\r\n", "\n");
    assert_eq!(
        n.text.trim_end(),
        original.trim_end(),
        "only line endings change"
    );
}

#[test]
fn vtt_is_written_as_srt_with_its_cue_text() {
    let n = run(SAMPLE_VTT, "en");
    assert_clean(&n);
    assert_eq!(
        (n.input, n.output, n.cues),
        (InputFormat::Vtt, OutputFormat::Srt, 3)
    );
    assert!(
        n.text.starts_with(
            "1\n00:00:01,000 --> 00:00:03,500\n<v Narrator><i>Previously...</i></v>\n\n"
        ),
        "{}",
        n.text
    );
    assert!(n.text.contains(
        "2\n00:00:04,000 --> 00:00:06,250\nHello, <b>world</b>!\n&lt;not a tag&gt; &amp; entity\n"
    ));
    assert!(
        n.text.contains(
            "3\n01:02:03,004 --> 01:02:05,000\nHours present, \u{202a}LTR mark\u{202c}\n"
        )
    );
    assert!(
        !n.text.contains("NOTE") && !n.text.contains("::cue"),
        "{}",
        n.text
    );
}

#[test]
fn a_single_file_zip_from_subdl() {
    let n = run(SUBDL_ZIP, "fr");
    assert_clean(&n);
    assert_eq!(
        n.archive_entry.as_deref(),
        Some("Example.Movie.2019.1080p.BluRay.x264-GROUP.fr.srt")
    );
    assert_eq!(n.encoding, "windows-1252");
    assert!(n.text.contains("Café déjà vu"), "{}", n.text);
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        writer
            .start_file(*name, SimpleFileOptions::default())
            .unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn srt(text: &str) -> Vec<u8> {
    format!("1\n00:00:01,000 --> 00:00:02,000\n{text}\n").into_bytes()
}

#[test]
fn a_season_pack_gives_the_videos_episode() {
    let (e1, e2, e3) = (srt("episode one"), srt("episode two"), srt("episode three"));
    let pack = zip_of(&[
        ("Show.S01.Pack/readme.txt", b"grabbed from somewhere"),
        ("Show.S01.Pack/Show.S01.nfo", b"nfo"),
        ("Show.S01.Pack/cover.jpg", b"\xff\xd8\xff\xe0"),
        (
            "__MACOSX/Show.S01.Pack/._Show.S01E02.srt",
            b"\0\x05\x16\x07",
        ),
        ("Show.S01.Pack/Show.S01E01.720p.srt", &e1),
        ("Show.S01.Pack/Show.S01E02.720p.srt", &e2),
        ("Show.S01.Pack/Show.S01E03.720p.srt", &e3),
    ]);
    let n = normalize(&pack, Path::new(EPISODE), &lang("en")).unwrap();
    assert_eq!(
        n.archive_entry.as_deref(),
        Some("Show.S01.Pack/Show.S01E02.720p.srt")
    );
    assert!(n.text.contains("episode two"), "{}", n.text);

    let other = normalize(
        &pack,
        Path::new("/media/tv/Show/Season 02/Show S02E01.mkv"),
        &lang("en"),
    );
    assert_eq!(
        other,
        Err(NormalizeError::Archive(ArchiveError::NoEpisode {
            season: 2,
            episode: 1
        }))
    );
    assert_eq!(
        other.unwrap_err().to_string(),
        "season pack has no subtitle for S02E01"
    );
}

#[test]
fn several_languages_in_one_archive_pick_the_wanted_one() {
    let (en, fr) = (srt("in English"), srt("en français"));
    let archive = zip_of(&[("Movie.2019.eng.srt", &en), ("Movie.2019.fre.srt", &fr)]);
    let n = run(&archive, "fr");
    assert_eq!(n.archive_entry.as_deref(), Some("Movie.2019.fre.srt"));
    assert!(n.text.contains("en français"));
}

#[test]
fn a_zip_bomb_is_refused() {
    let zeros = vec![b'0'; 20 * 1024 * 1024];
    let bomb = zip_of(&[("Movie.srt", &zeros)]);
    assert!(bomb.len() < 200 * 1024, "the bomb is small: {}", bomb.len());
    let err = normalize(&bomb, Path::new(MOVIE), &lang("en")).unwrap_err();
    assert!(
        matches!(err, NormalizeError::Archive(ArchiveError::Bomb(_))),
        "{err}"
    );
    assert!(err.to_string().contains("zip bomb"), "{err}");

    let dense = vec![b'a'; 2 * 1024 * 1024];
    let ratio = zip_of(&[("Movie.srt", &dense)]);
    let err = normalize(&ratio, Path::new(MOVIE), &lang("en")).unwrap_err();
    assert!(err.to_string().contains("compressed"), "{err}");

    let many: Vec<(String, Vec<u8>)> = (0..=archive::MAX_ENTRIES)
        .map(|i| (format!("f{i}.txt"), Vec::new()))
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let err = normalize(&zip_of(&refs), Path::new(MOVIE), &lang("en")).unwrap_err();
    assert!(
        matches!(
            err,
            NormalizeError::Archive(ArchiveError::TooManyEntries(_))
        ),
        "{err}"
    );
}

#[test]
fn path_traversal_inside_an_archive_is_refused() {
    let archive = zip_of(&[
        ("../../etc/cron.d/evil.srt", &srt("x")),
        ("Movie.srt", &srt("ok")),
    ]);
    let err = normalize(&archive, Path::new(MOVIE), &lang("en")).unwrap_err();
    assert_eq!(
        err,
        NormalizeError::Archive(ArchiveError::PathTraversal(
            "../../etc/cron.d/evil.srt".into()
        ))
    );
    let absolute = zip_of(&[("/etc/evil.srt", &srt("x"))]);
    let err = normalize(&absolute, Path::new(MOVIE), &lang("en")).unwrap_err();
    assert!(
        matches!(err, NormalizeError::Archive(ArchiveError::PathTraversal(_))),
        "{err}"
    );
}

#[test]
fn garbage_is_rejected_with_its_reason() {
    let reason = |bytes: &[u8]| {
        normalize(bytes, Path::new(MOVIE), &lang("en"))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(reason(b""), "empty download");
    assert_eq!(
        reason(
            b"<html><head><title>503 Service Unavailable</title></head><body>down</body></html>"
        ),
        "an HTML page, not a subtitle (title \"503 Service Unavailable\")"
    );
    assert_eq!(
        reason(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        "binary data, not a text subtitle"
    );
    let mut truncated = zip_of(&[("Movie.srt", &srt("hello"))]);
    truncated.truncate(truncated.len() / 2);
    assert!(
        reason(&truncated).starts_with("damaged or truncated ZIP archive"),
        "{}",
        reason(&truncated)
    );
    assert_eq!(
        reason(b"Rar!\x1a\x07\x01\0rest"),
        "RAR archives are not supported"
    );
    assert_eq!(
        reason(&zip_of(&[
            ("readme.txt", b"thanks"),
            ("cover.jpg", b"\xff\xd8")
        ])),
        "ZIP archive holds no subtitle (.srt, .vtt, .ass, .ssa)"
    );
    assert!(reason(b"just some words\nand more").starts_with("not a usable SRT"));
}
