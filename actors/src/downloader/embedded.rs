//! Subtitle tracks embedded in the video, read with `ffprobe` when it is installed.
//!
//! `ffprobe` is looked for once, on `PATH`, when the daemon starts ([`find_ffprobe`]); a
//! missing one is fine (logged once at debug level): only sidecars then count. The probe
//! runs on a blocking thread with a deadline ([`PROBE_TIMEOUT`]); a probe that fails or
//! times out is logged and the job goes on as if there were no embedded track.
//!
//! What counts as the wanted language being there: a **text** track (`subrip`, `ass`,
//! `ssa`, `webvtt`, `mov_text`, `text`) tagged with the language in any ISO 639 spelling
//! (`fre`, `fra`, `fr`), not marked `forced` (a forced track carries only the foreign parts).
//! Bitmap tracks (PGS, VobSub, DVB) do not count: they cannot be read as text.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::debug;

use crate::language::Language;

/// How long one probe may take before it is killed.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Text subtitle codecs, as ffprobe names them.
const TEXT_CODECS: [&str; 6] = ["subrip", "ass", "ssa", "webvtt", "mov_text", "text"];

/// `ffprobe` on `PATH`, if there is one (blocking; call once at start).
pub fn find_ffprobe() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("ffprobe"))
            .find(|candidate| is_executable(candidate))
    });
    match &found {
        Some(path) => {
            debug!(path = %path.display(), "ffprobe found: embedded subtitle tracks count")
        }
        None => debug!("ffprobe not found on PATH: only subtitle files next to videos count"),
    }
    found
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One subtitle stream, as `ffprobe -show_entries` prints it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Stream {
    /// The stream index in the container.
    #[serde(default)]
    pub index: u32,
    /// ffprobe's codec name.
    #[serde(default)]
    pub codec_name: Option<String>,
    /// Tags (`language`).
    #[serde(default)]
    pub tags: Tags,
    /// Dispositions (`forced`, `hearing_impaired`), 0 or 1.
    #[serde(default)]
    pub disposition: Disposition,
}

/// A stream's tags.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Tags {
    /// The language tag (ISO 639-2 mostly).
    #[serde(default)]
    pub language: Option<String>,
}

/// A stream's dispositions.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Disposition {
    /// Foreign parts only.
    #[serde(default)]
    pub forced: u8,
    /// For the deaf and hard of hearing.
    #[serde(default)]
    pub hearing_impaired: u8,
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<Stream>,
}

/// The subtitle streams in ffprobe's JSON output.
pub fn parse_streams(json: &[u8]) -> Result<Vec<Stream>, String> {
    serde_json::from_slice::<Probe>(json)
        .map(|probe| probe.streams)
        .map_err(|err| format!("unreadable ffprobe output: {err}"))
}

/// The embedded track that gives `wanted`, described for people (`subtitle track 2
/// (subrip, fre)`), if there is one.
pub fn track_for(streams: &[Stream], wanted: &Language) -> Option<String> {
    streams
        .iter()
        .filter(|s| s.disposition.forced == 0)
        .filter(|s| {
            s.codec_name
                .as_deref()
                .is_some_and(|codec| TEXT_CODECS.contains(&codec.to_ascii_lowercase().as_str()))
        })
        .find(|s| {
            s.tags
                .language
                .as_deref()
                .and_then(|tag| Language::parse(tag).ok())
                .is_some_and(|language| language == *wanted)
        })
        .map(|s| {
            let hi = if s.disposition.hearing_impaired != 0 {
                ", hearing impaired"
            } else {
                ""
            };
            format!(
                "subtitle track {} ({}, {}{hi})",
                s.index,
                s.codec_name.as_deref().unwrap_or("?"),
                s.tags.language.as_deref().unwrap_or("?"),
            )
        })
}

/// Runs `ffprobe` on `video` (blocking) and returns its subtitle streams; killed after
/// `timeout`.
pub fn probe(ffprobe: &Path, video: &Path, timeout: Duration) -> Result<Vec<Stream>, String> {
    let mut command = Command::new(ffprobe);
    command
        .args([
            "-v",
            "error",
            "-select_streams",
            "s",
            "-show_entries",
            "stream=index,codec_name:stream_tags=language:stream_disposition=forced,hearing_impaired",
            "-of",
            "json",
        ])
        .arg(video);
    let output = run_tool(command, "ffprobe", timeout, 16 * 1024 * 1024)?;
    parse_streams(&output)
}

/// Runs `command` (blocking) and answers its standard output, at most `max_output` bytes;
/// killed after `timeout`. `name` names the tool in errors. Output and errors are read on
/// threads of their own, so a full pipe never stalls the child.
pub fn run_tool(
    mut command: Command,
    name: &str,
    timeout: Duration,
    max_output: u64,
) -> Result<Vec<u8>, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| {
            format!(
                "cannot run {}: {err}",
                Path::new(command.get_program()).display()
            )
        })?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.take(max_output).read_to_end(&mut bytes);
        }
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.take(4096).read_to_end(&mut bytes);
        }
        bytes
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} took longer than {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(err) => return Err(format!("cannot wait for {name}: {err}")),
        }
    };
    let output = out.join().unwrap_or_default();
    let errors = err.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{name} failed ({status}): {}",
            String::from_utf8_lossy(&errors).trim()
        ));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OUTPUT: &str = r#"{
        "programs": [],
        "streams": [
            {"index": 2, "codec_name": "subrip", "tags": {"language": "fre"},
             "disposition": {"forced": 1, "hearing_impaired": 0}},
            {"index": 3, "codec_name": "hdmv_pgs_subtitle", "tags": {"language": "fre"},
             "disposition": {"forced": 0, "hearing_impaired": 0}},
            {"index": 4, "codec_name": "ass", "tags": {"language": "fra"},
             "disposition": {"forced": 0, "hearing_impaired": 1}},
            {"index": 5, "codec_name": "subrip",
             "disposition": {"forced": 0, "hearing_impaired": 0}},
            {"index": 6, "codec_name": "mov_text", "tags": {"language": "eng"}}
        ]
    }"#;

    #[test]
    fn a_text_track_in_the_wanted_language_counts_forced_and_bitmap_ones_do_not() {
        let streams = parse_streams(OUTPUT.as_bytes()).unwrap();
        assert_eq!(streams.len(), 5);
        let fr = Language::parse("fr").unwrap();
        assert_eq!(
            track_for(&streams, &fr).unwrap(),
            "subtitle track 4 (ass, fra, hearing impaired)"
        );
        let en = Language::parse("en").unwrap();
        assert_eq!(
            track_for(&streams, &en).unwrap(),
            "subtitle track 6 (mov_text, eng)"
        );
        assert_eq!(track_for(&streams, &Language::parse("de").unwrap()), None);
        // Only the forced and the bitmap French tracks: French is not there.
        assert_eq!(track_for(&streams[..2], &fr), None);
    }

    #[test]
    fn no_streams_and_bad_output_are_told_apart() {
        assert_eq!(parse_streams(b"{}").unwrap(), Vec::<Stream>::new());
        assert!(
            parse_streams(b"not json")
                .unwrap_err()
                .contains("unreadable")
        );
    }

    #[test]
    fn a_missing_or_failing_ffprobe_is_an_error_not_a_hang() {
        let err = probe(
            Path::new("/nonexistent/ffprobe"),
            Path::new("/tmp/x.mkv"),
            PROBE_TIMEOUT,
        )
        .unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
        // A program that ignores its arguments and never ends is killed at the deadline.
        let dir = tempfile::tempdir().unwrap();
        let slow = dir.path().join("ffprobe");
        std::fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = probe(&slow, Path::new("/tmp/x.mkv"), Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        // One that prints ffprobe's answer is read.
        let fake = dir.path().join("ffprobe-ok");
        std::fs::write(&fake, format!("#!/bin/sh\ncat <<'EOF'\n{OUTPUT}\nEOF\n")).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let streams = probe(&fake, Path::new("/tmp/x.mkv"), PROBE_TIMEOUT).unwrap();
        assert_eq!(streams.len(), 5);
    }
}
