//! Subtitle formats: which one a decoded text is, whether it is usable, and what is written.
//!
//! - **SRT** is parsed by [`crate::subtitle::parse_srt`] and written again by `write_srt`
//!   (renumbered, `HH:MM:SS,mmm`), cue text untouched.
//! - **WebVTT** is parsed here and written as SRT: timings and cue text kept (inline tags
//!   such as `<i>`, `<b>`, `<v Speaker>` and entities stay as they are), the header,
//!   `NOTE`/`STYLE`/`REGION` blocks, cue identifiers and cue settings (position, alignment)
//!   dropped, since SRT has no place for them.
//! - **ASS/SSA** is checked (a `[Script Info]`, an `[Events]` section with a `Format` line,
//!   at least one `Dialogue` whose times parse) and kept as it is, styles and override tags
//!   (`{\an8}`, `{\pos(…)}`) included, because Jellyfin renders ASS itself; it is written
//!   with its own extension.
//!
//! What is neither (an HTML error page, a login wall, binary data, a cut-off file) is
//! refused with the reason, so the Downloader tries the next candidate.

use crate::subtitle::{Cue, SubtitleError, parse_srt, write_srt};

/// The format a subtitle is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// SubRip (`.srt`): SRT as received, and converted WebVTT.
    Srt,
    /// Advanced SubStation Alpha (`.ass`), kept as received.
    Ass,
    /// SubStation Alpha v4 (`.ssa`), kept as received.
    Ssa,
}

impl OutputFormat {
    /// The file extension written.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Srt => "srt",
            Self::Ass => "ass",
            Self::Ssa => "ssa",
        }
    }
}

/// The format a text was received in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// SubRip.
    Srt,
    /// WebVTT.
    Vtt,
    /// ASS (`ScriptType: v4.00+`).
    Ass,
    /// SSA (`ScriptType: v4.00`).
    Ssa,
}

/// A parsed, validated subtitle, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// What it was.
    pub input: InputFormat,
    /// What is written.
    pub output: OutputFormat,
    /// The text written: UTF-8, `\n`.
    pub text: String,
    /// How many cues (SRT/VTT) or dialogue lines (ASS/SSA) it has.
    pub cues: usize,
}

/// Why a text is not a usable subtitle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// An HTML page (a provider's error page, a login wall, a download limit notice).
    #[error("an HTML page, not a subtitle ({0})")]
    Html(String),
    /// Not an SRT that parses.
    #[error("not a usable SRT: {0}")]
    Srt(SubtitleError),
    /// A WebVTT that does not parse.
    #[error("not a usable WebVTT: {0}")]
    Vtt(String),
    /// An ASS/SSA that does not parse.
    #[error("not a usable ASS/SSA: {0}")]
    Ass(String),
    /// A JSON document (a provider's error answer).
    #[error("a JSON document, not a subtitle: {0}")]
    Json(String),
}

fn html_title(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    lower
        .find("<title>")
        .and_then(|start| {
            let rest = &text[start + 7..];
            rest.find(['<', '\n'])
                .map(|end| rest[..end].trim().to_owned())
        })
        .filter(|t| !t.is_empty())
        .map_or_else(|| "no title".to_owned(), |t| format!("title {t:?}"))
}

/// Parses `text` (already UTF-8 with `\n` lines) in whichever format it is.
pub fn parse(text: &str) -> Result<Parsed, FormatError> {
    let start = text.trim_start();
    let head: String = start
        .chars()
        .take(512)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || head.starts_with("<head")
        || head.starts_with("<body")
        || (head.starts_with('<') && head.contains("<html"))
    {
        return Err(FormatError::Html(html_title(start)));
    }
    if (head.starts_with('{') || head.starts_with('['))
        && !head.starts_with("[script info]")
        && serde_json::from_str::<serde_json::Value>(start).is_ok()
    {
        let shown: String = start.chars().take(120).collect();
        return Err(FormatError::Json(shown));
    }
    if head.starts_with("webvtt") {
        let cues = parse_vtt(start)?;
        return Ok(Parsed {
            input: InputFormat::Vtt,
            output: OutputFormat::Srt,
            cues: cues.len(),
            text: write_srt(&cues),
        });
    }
    if head.starts_with("[script info]") || head.starts_with("[v4") || head.starts_with("[events]")
    {
        let (input, lines) = check_ass(start)?;
        let output = match input {
            InputFormat::Ssa => OutputFormat::Ssa,
            _ => OutputFormat::Ass,
        };
        let mut text = start.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        return Ok(Parsed {
            input,
            output,
            text,
            cues: lines,
        });
    }
    let cues = parse_srt(start.as_bytes()).map_err(FormatError::Srt)?;
    check_cues(&cues).map_err(FormatError::Srt)?;
    Ok(Parsed {
        input: InputFormat::Srt,
        output: OutputFormat::Srt,
        cues: cues.len(),
        text: write_srt(&cues),
    })
}

/// A cue list is usable when no cue ends before it starts and some cue has text; the
/// last cue having no text says the file was cut off.
fn check_cues(cues: &[Cue]) -> Result<(), SubtitleError> {
    if let Some((n, cue)) = cues.iter().enumerate().find(|(_, c)| c.end_ms < c.start_ms) {
        return Err(SubtitleError::BadTiming {
            line: n + 1,
            text: format!("cue {} ends before it starts", cue.index),
        });
    }
    if cues.iter().all(|c| c.text.trim().is_empty()) {
        return Err(SubtitleError::Empty);
    }
    Ok(())
}

/// `[hh:]mm:ss.ttt` as WebVTT writes it.
fn vtt_timestamp(s: &str) -> Option<u64> {
    let (clock, millis) = s.trim().split_once('.')?;
    if millis.len() != 3 || !millis.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    let number = |p: &str| -> Option<u64> {
        (!p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let (h, m, sec) = match parts.as_slice() {
        [m, s] => (0, number(m)?, number(s)?),
        [h, m, s] => (number(h)?, number(m)?, number(s)?),
        _ => return None,
    };
    if m > 59 || sec > 59 {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + millis.parse::<u64>().ok()?)
}

fn vtt_timing(line: &str) -> Option<(u64, u64)> {
    let (start, rest) = line.split_once("-->")?;
    let end = rest.split_whitespace().next()?;
    Some((vtt_timestamp(start)?, vtt_timestamp(end)?))
}

/// Parses WebVTT into cues (text kept as written).
pub fn parse_vtt(text: &str) -> Result<Vec<Cue>, FormatError> {
    let mut blocks = text.split("\n\n").map(|block| block.trim_matches('\n'));
    let header = blocks.next().unwrap_or_default();
    let first = header.lines().next().unwrap_or_default();
    if !(first == "WEBVTT" || first.starts_with("WEBVTT ") || first.starts_with("WEBVTT\t")) {
        return Err(FormatError::Vtt(format!("bad header line {first:?}")));
    }
    let mut cues = Vec::new();
    for block in blocks.filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let Some(mut line) = lines.next() else {
            continue;
        };
        if line.starts_with("NOTE") || line == "STYLE" || line == "REGION" {
            continue;
        }
        if !line.contains("-->") {
            // A cue identifier; the timing line follows.
            line = match lines.next() {
                Some(next) => next,
                None => return Err(FormatError::Vtt(format!("cue {line:?} has no timing"))),
            };
        }
        let (start_ms, end_ms) =
            vtt_timing(line).ok_or_else(|| FormatError::Vtt(format!("bad timing {line:?}")))?;
        let body: Vec<&str> = lines.collect();
        cues.push(Cue {
            index: u32::try_from(cues.len() + 1).unwrap_or(u32::MAX),
            start_ms,
            end_ms,
            text: body.join("\n"),
        });
    }
    if cues.is_empty() {
        return Err(FormatError::Vtt("no cue found".to_owned()));
    }
    check_cues(&cues).map_err(|e| FormatError::Vtt(e.to_string()))?;
    Ok(cues)
}

/// `h:mm:ss.cc` as ASS writes it.
fn ass_time(s: &str) -> Option<u64> {
    let (clock, centis) = s.trim().split_once('.')?;
    let mut parts = clock.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let sec: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || m > 59 || sec > 59 {
        return None;
    }
    let centis: u64 = centis.parse().ok()?;
    Some(((h * 60 + m) * 60 + sec) * 1000 + centis * 10)
}

/// Checks an ASS/SSA script; answers its kind and how many dialogue lines it has.
fn check_ass(text: &str) -> Result<(InputFormat, usize), FormatError> {
    let mut section = String::new();
    let mut has_info = false;
    let mut kind = InputFormat::Ass;
    let mut format: Option<Vec<String>> = None;
    let mut dialogues = 0;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line.to_ascii_lowercase();
            has_info |= section == "[script info]";
            continue;
        }
        if section == "[script info]"
            && let Some(value) = line.strip_prefix("ScriptType:")
            && value.trim().eq_ignore_ascii_case("v4.00")
        {
            kind = InputFormat::Ssa;
        }
        if section != "[events]" {
            continue;
        }
        if let Some(fields) = line.strip_prefix("Format:") {
            format = Some(
                fields
                    .split(',')
                    .map(|f| f.trim().to_ascii_lowercase())
                    .collect(),
            );
        } else if let Some(values) = line.strip_prefix("Dialogue:") {
            let Some(fields) = &format else {
                return Err(FormatError::Ass(format!(
                    "line {}: Dialogue before the [Events] Format line",
                    number + 1
                )));
            };
            // Text is the last field and may hold commas.
            let values: Vec<&str> = values.splitn(fields.len(), ',').collect();
            let field = |name: &str| {
                fields
                    .iter()
                    .position(|f| f == name)
                    .and_then(|i| values.get(i))
            };
            let (Some(start), Some(end)) = (field("start"), field("end")) else {
                return Err(FormatError::Ass(format!(
                    "line {}: Dialogue with {} of {} fields",
                    number + 1,
                    values.len(),
                    fields.len()
                )));
            };
            let (Some(start), Some(end)) = (ass_time(start), ass_time(end)) else {
                return Err(FormatError::Ass(format!(
                    "line {}: bad times {start:?}, {end:?}",
                    number + 1
                )));
            };
            if end < start || values.len() < fields.len() {
                return Err(FormatError::Ass(format!(
                    "line {}: a cut-off or reversed Dialogue line",
                    number + 1
                )));
            }
            dialogues += 1;
        }
    }
    if !has_info {
        return Err(FormatError::Ass("no [Script Info] section".to_owned()));
    }
    if format.is_none() {
        return Err(FormatError::Ass("no [Events] Format line".to_owned()));
    }
    if dialogues == 0 {
        return Err(FormatError::Ass("no Dialogue line".to_owned()));
    }
    Ok((kind, dialogues))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_json_and_truncation_are_refused_with_a_reason() {
        let page = "<!DOCTYPE html>\n<html><head><title>Download limit reached</title></head>";
        let err = parse(page).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an HTML page, not a subtitle (title \"Download limit reached\")"
        );
        let err = parse("{\"status\":false,\"error\":\"can't find movie or tv\"}").unwrap_err();
        assert!(matches!(err, FormatError::Json(_)), "{err}");
        let cut = "1\n00:00:01,000 --> 00:00:02,000\nHello\n\n2\n00:00:03,000 --> 00:0";
        let err = parse(cut).unwrap_err();
        assert!(err.to_string().contains("bad timing line 6"), "{err}");
        let err = parse("WEBVTT\n\n00:01.000 --> 00:02.000\nA\n\n00:03.000 --> 00").unwrap_err();
        assert!(err.to_string().contains("bad timing"), "{err}");
        let err = parse("[Script Info]\nTitle: x\n\n[Events]\nFormat: Layer, Start, End, Style, Text\nDialogue: 0,0:00:01.00").unwrap_err();
        assert!(err.to_string().contains("Dialogue with"), "{err}");
    }

    #[test]
    fn vtt_becomes_srt_with_its_text() {
        let parsed =
            parse("WEBVTT\n\nid-1\n00:01.000 --> 00:03.500 align:start\n<i>Hi</i>\n\nNOTE x\n\n01:02:03.004 --> 01:02:05.000\nA &amp; B\n")
                .unwrap();
        assert_eq!(parsed.output, OutputFormat::Srt);
        assert_eq!(
            parsed.text,
            "1\n00:00:01,000 --> 00:00:03,500\n<i>Hi</i>\n\n2\n01:02:03,004 --> 01:02:05,000\nA &amp; B\n\n"
        );
    }
}
