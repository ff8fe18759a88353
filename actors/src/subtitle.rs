//! A small, lenient SRT reader and writer.
//!
//! Real files have BOMs, CRLF, missing blank lines, `.` instead of `,` in timestamps and
//! wrong indices; we accept those and renumber on output. Decoding from legacy code pages
//! happens before this (bytes → `str`); here we refuse what is not UTF-8.

use std::fmt::Write as _;

/// One subtitle cue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    /// 1-based index as written in the file.
    pub index: u32,
    /// Start, milliseconds.
    pub start_ms: u64,
    /// End, milliseconds.
    pub end_ms: u64,
    /// Text lines joined by `\n`, inline tags kept.
    pub text: String,
}

/// Why a file is not a usable SRT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubtitleError {
    /// Not valid UTF-8.
    #[error("subtitle is not valid UTF-8 (byte {0})")]
    NotUtf8(usize),
    /// No cue could be read.
    #[error("no subtitle cue found")]
    Empty,
    /// A timing line that does not parse.
    #[error("bad timing line {line}: {text:?}")]
    BadTiming {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

fn parse_timestamp(s: &str) -> Option<u64> {
    let s = s.trim();
    let (hms, ms) = s.split_once([',', '.']).unwrap_or((s, "0"));
    let mut parts = hms.split(':');
    let h: u64 = parts.next()?.trim().parse().ok()?;
    let m: u64 = parts.next()?.trim().parse().ok()?;
    let sec: u64 = parts.next()?.trim().parse().ok()?;
    if parts.next().is_some() || m > 59 || sec > 59 {
        return None;
    }
    let ms_digits: String = ms
        .chars()
        .take_while(char::is_ascii_digit)
        .take(3)
        .collect();
    let mut millis: u64 = ms_digits.parse().ok()?;
    for _ in ms_digits.len()..3 {
        millis *= 10;
    }
    Some(((h * 60 + m) * 60 + sec) * 1000 + millis)
}

fn parse_timing(line: &str) -> Option<(u64, u64)> {
    let (start, rest) = line.split_once("-->")?;
    // Anything after the end time (position hints) is ignored.
    let end = rest.split_whitespace().next()?;
    Some((parse_timestamp(start)?, parse_timestamp(end)?))
}

/// Parses SRT bytes (UTF-8, BOM allowed).
pub fn parse_srt(bytes: &[u8]) -> Result<Vec<Cue>, SubtitleError> {
    let text = std::str::from_utf8(bytes).map_err(|e| SubtitleError::NotUtf8(e.valid_up_to()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut cues = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() {
            i += 1;
            continue;
        }
        // An index line followed by a timing line, or a timing line alone.
        let (index, timing_at) = match line.parse::<u32>() {
            Ok(n) if lines.get(i + 1).is_some_and(|l| l.contains("-->")) => (n, i + 1),
            _ if line.contains("-->") => (cues.len() as u32 + 1, i),
            _ => {
                return Err(SubtitleError::BadTiming {
                    line: i + 1,
                    text: line.to_owned(),
                });
            }
        };
        let (start_ms, end_ms) =
            parse_timing(lines[timing_at]).ok_or_else(|| SubtitleError::BadTiming {
                line: timing_at + 1,
                text: lines[timing_at].to_owned(),
            })?;
        let mut j = timing_at + 1;
        let mut body = Vec::new();
        while j < lines.len() && !lines[j].trim().is_empty() {
            body.push(lines[j]);
            j += 1;
        }
        cues.push(Cue {
            index,
            start_ms,
            end_ms,
            text: body.join("\n"),
        });
        i = j;
    }
    if cues.is_empty() {
        return Err(SubtitleError::Empty);
    }
    Ok(cues)
}

fn write_timestamp(out: &mut String, ms: u64) {
    let _ = write!(
        out,
        "{:02}:{:02}:{:02},{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
}

/// Writes cues as SRT: UTF-8 without BOM, `\n` line endings, cues renumbered from 1.
pub fn write_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (n, cue) in cues.iter().enumerate() {
        let _ = writeln!(out, "{}", n + 1);
        write_timestamp(&mut out, cue.start_ms);
        out.push_str(" --> ");
        write_timestamp(&mut out, cue.end_ms);
        out.push('\n');
        out.push_str(&cue.text);
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bom_crlf_and_dot_milliseconds() {
        let input = "\u{feff}1\r\n00:00:01,500 --> 00:00:03.2\r\n<i>Hello</i>\r\nworld\r\n\r\n2\r\n00:01:00,000 --> 00:01:02,000 X1:10\r\n{\\an8}Top\r\n";
        let cues = parse_srt(input.as_bytes()).unwrap();
        assert_eq!(cues.len(), 2);
        assert_eq!(cues[0].start_ms, 1500);
        assert_eq!(cues[0].end_ms, 3200);
        assert_eq!(cues[0].text, "<i>Hello</i>\nworld");
        assert_eq!(cues[1].start_ms, 60_000);
        assert_eq!(cues[1].text, "{\\an8}Top");
    }

    #[test]
    fn round_trips_through_the_writer() {
        let input =
            "1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n01:02:03,004 --> 01:02:04,005\nB\nC\n\n";
        let cues = parse_srt(input.as_bytes()).unwrap();
        assert_eq!(write_srt(&cues), input);
    }

    #[test]
    fn rejects_garbage_and_non_utf8() {
        assert_eq!(parse_srt(b""), Err(SubtitleError::Empty));
        assert!(matches!(
            parse_srt(b"hello there\nnot a subtitle"),
            Err(SubtitleError::BadTiming { line: 1, .. })
        ));
        assert!(matches!(
            parse_srt(b"1\n00:00:01,000 --> soon\nA\n"),
            Err(SubtitleError::BadTiming { line: 2, .. })
        ));
        assert_eq!(parse_srt(b"1\n\xff\xfe"), Err(SubtitleError::NotUtf8(2)));
    }
}
