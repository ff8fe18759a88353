//! ZIP archives as subtitle providers send them (Subdl, Podnapisi, SubSource): one subtitle,
//! or a season pack, with junk beside it (`.nfo`, `.txt`, images, `__MACOSX/._*`).
//!
//! Only one entry is ever decompressed: the subtitle for the video's season and episode
//! (or the only one). An archive is refused whole when it is hostile or absurd: too many
//! entries, an entry or a total uncompressed size over the limits, a compression ratio no
//! text reaches (a zip bomb), or a name that climbs out of the archive (`../`, absolute).
//! Declared sizes can lie, so the entry is read through a limit as well.

use std::io::{Cursor, Read};
use std::path::Path;

use crate::language::Language;

/// Most entries an archive may hold (a whole series' season packs stay far below).
pub const MAX_ENTRIES: usize = 2_000;
/// Largest uncompressed subtitle entry (an SRT is ~100 KiB; a styled ASS a few MiB).
pub const MAX_ENTRY_BYTES: u64 = 16 * 1024 * 1024;
/// Largest uncompressed total of all entries, as declared.
pub const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;
/// Highest uncompressed/compressed ratio of an entry over [`RATIO_FLOOR_BYTES`]: text
/// deflates 3–10×; a zip bomb by a thousand and more.
pub const MAX_RATIO: u64 = 100;
/// Entries smaller than this are never too compressed to be read.
pub const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;

/// Extensions of the subtitle formats cuewarden reads from an archive.
pub const TEXT_SUBTITLE_EXTENSIONS: [&str; 4] = ["srt", "vtt", "ass", "ssa"];

/// Why an archive gave no subtitle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// Not a readable ZIP (truncated, damaged).
    #[error("damaged or truncated ZIP archive: {0}")]
    Damaged(String),
    /// More entries than [`MAX_ENTRIES`].
    #[error("ZIP archive refused: {0} entries (at most {MAX_ENTRIES})")]
    TooManyEntries(usize),
    /// An entry, or the total, over the size limits, or compressed beyond [`MAX_RATIO`].
    #[error("ZIP archive refused as a possible zip bomb: {0}")]
    Bomb(String),
    /// An entry whose name leaves the archive.
    #[error("ZIP archive refused: entry {0:?} points outside the archive")]
    PathTraversal(String),
    /// No subtitle entry at all.
    #[error("ZIP archive holds no subtitle (.srt, .vtt, .ass, .ssa)")]
    NoSubtitle,
    /// A season pack without the video's episode.
    #[error("season pack has no subtitle for S{season:02}E{episode:02}")]
    NoEpisode {
        /// The video's season.
        season: u32,
        /// The video's episode.
        episode: u32,
    },
    /// Another kind of archive.
    #[error("{0} archives are not supported")]
    Unsupported(&'static str),
}

/// The entry taken from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// Its name inside the archive.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Whether `bytes` are a ZIP archive (local file header or an empty archive's end record).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Other archive kinds providers may send, by their magic bytes.
pub fn other_archive(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"Rar!\x1a\x07") {
        Some("RAR")
    } else if bytes.starts_with(b"7z\xbc\xaf\x27\x1c") {
        Some("7-Zip")
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else {
        None
    }
}

/// A season and episode read from a file name: `S01E02`, `s1e2`, `1x02`.
pub fn season_episode(name: &str) -> Option<(u32, u32)> {
    let lower = name.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let number_at = |start: usize| {
        let digits: String = bytes[start.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .take(4)
            .map(|b| char::from(*b))
            .collect();
        digits.parse::<u32>().ok().map(|n| (n, digits.len()))
    };
    for i in 0..bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        // S01E02 (also S01.E02, S01 E02)
        if boundary
            && bytes[i] == b's'
            && let Some((season, len)) = number_at(i + 1)
        {
            let mut j = i + 1 + len;
            if matches!(bytes.get(j), Some(b'.' | b' ' | b'_' | b'-')) {
                j += 1;
            }
            if bytes.get(j) == Some(&b'e')
                && let Some((episode, _)) = number_at(j + 1)
            {
                return Some((season, episode));
            }
        }
        // 1x02
        if boundary
            && bytes[i].is_ascii_digit()
            && let Some((season, len)) = number_at(i)
            && len <= 2
            && bytes.get(i + len) == Some(&b'x')
            && let Some((episode, elen)) = number_at(i + len + 1)
            && elen >= 2
        {
            return Some((season, episode));
        }
    }
    None
}

/// An absolute name (`/x`, `\\x`, `C:x`) or one with a `..` component: `zip` makes
/// absolute names relative, but such an entry is a hostile archive, refused whole.
fn climbs_out(name: &str) -> bool {
    name.starts_with(['/', '\\'])
        || name.get(1..2) == Some(":")
        || name.split(['/', '\\']).any(|part| part == "..")
}

fn is_junk(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    name.starts_with("__MACOSX/") || name.contains("/__MACOSX/") || file.starts_with("._")
}

fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|ext| !ext.contains('/'))
}

/// How well an entry's name fits the wanted language: +2 when a `.`-token names it, −1
/// when a token names another language, 0 otherwise.
fn language_fit(name: &str, language: &Language) -> i32 {
    let file = name.rsplit('/').next().unwrap_or(name);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let mut fit = 0;
    for token in stem.split(['.', '_', ' ', '-', '[', ']', '(', ')']) {
        if !(2..=12).contains(&token.len()) {
            continue;
        }
        match Language::from_token(token) {
            Some(found) if language.is_satisfied_by(&found) => return 2,
            // Two-letter words are too often just words ("it", "no", "to").
            Some(_) if token.len() >= 3 => fit = -1,
            _ => {}
        }
    }
    fit
}

/// Takes the subtitle for `video` in `language` out of a ZIP archive.
pub fn extract(bytes: &[u8], video: &Path, language: &Language) -> Result<Extracted, ArchiveError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ArchiveError::Damaged(e.to_string()))?;
    if archive.len() > MAX_ENTRIES {
        return Err(ArchiveError::TooManyEntries(archive.len()));
    }
    let mut total: u64 = 0;
    let mut subtitles: Vec<(usize, String, u64)> = Vec::new();
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| ArchiveError::Damaged(e.to_string()))?;
        let name = match entry.name() {
            Ok(name) => name.into_owned(),
            Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
        };
        if entry.enclosed_name().is_none() || climbs_out(&name) {
            return Err(ArchiveError::PathTraversal(name));
        }
        let size = entry.size();
        total = total.saturating_add(size);
        if total > MAX_TOTAL_BYTES {
            return Err(ArchiveError::Bomb(format!(
                "more than {MAX_TOTAL_BYTES} bytes uncompressed in all"
            )));
        }
        if entry.is_dir() || is_junk(&name) {
            continue;
        }
        let is_subtitle =
            extension(&name).is_some_and(|ext| TEXT_SUBTITLE_EXTENSIONS.contains(&ext.as_str()));
        if !is_subtitle {
            continue;
        }
        if size > MAX_ENTRY_BYTES {
            return Err(ArchiveError::Bomb(format!(
                "entry {name:?} is {size} bytes uncompressed (at most {MAX_ENTRY_BYTES})"
            )));
        }
        let compressed = entry.compressed_size().max(1);
        if size > RATIO_FLOOR_BYTES && size / compressed > MAX_RATIO {
            return Err(ArchiveError::Bomb(format!(
                "entry {name:?} is compressed {}:1 (at most {MAX_RATIO}:1)",
                size / compressed
            )));
        }
        subtitles.push((index, name, size));
    }
    let chosen = choose(&subtitles, video, language)?;
    let (index, name) = (subtitles[chosen].0, subtitles[chosen].1.clone());
    let entry = archive
        .by_index(index)
        .map_err(|e| ArchiveError::Damaged(e.to_string()))?;
    let mut out = Vec::new();
    entry
        .take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| ArchiveError::Damaged(format!("{name}: {e}")))?;
    if out.len() as u64 > MAX_ENTRY_BYTES {
        return Err(ArchiveError::Bomb(format!(
            "entry {name:?} inflates past {MAX_ENTRY_BYTES} bytes (its declared size lies)"
        )));
    }
    Ok(Extracted { name, bytes: out })
}

/// Picks the entry for the video: the one subtitle; else, for an episode, those of its
/// season and episode; then the best language fit, then SRT before other formats, then
/// the first by name.
fn choose(
    subtitles: &[(usize, String, u64)],
    video: &Path,
    language: &Language,
) -> Result<usize, ArchiveError> {
    if subtitles.is_empty() {
        return Err(ArchiveError::NoSubtitle);
    }
    if subtitles.len() == 1 {
        return Ok(0);
    }
    let video_name = video.file_name().map(|n| n.to_string_lossy().into_owned());
    let wanted = video_name.as_deref().and_then(season_episode);
    let mut pool: Vec<usize> = (0..subtitles.len()).collect();
    if let Some((season, episode)) = wanted {
        let numbered: Vec<Option<(u32, u32)>> = subtitles
            .iter()
            .map(|(_, name, _)| season_episode(name.rsplit('/').next().unwrap_or(name)))
            .collect();
        if numbered.iter().any(Option::is_some) {
            pool.retain(|&i| numbered[i] == Some((season, episode)));
            if pool.is_empty() {
                return Err(ArchiveError::NoEpisode { season, episode });
            }
        }
    }
    pool.sort_by_key(|&i| {
        let name = &subtitles[i].1;
        let is_srt = extension(name).as_deref() == Some("srt");
        (
            std::cmp::Reverse(language_fit(name, language)),
            !is_srt,
            name.to_ascii_lowercase(),
        )
    });
    Ok(pool[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_season_and_episode_from_names() {
        assert_eq!(season_episode("Show.S01E02.1080p.mkv"), Some((1, 2)));
        assert_eq!(season_episode("show s1e12 web"), Some((1, 12)));
        assert_eq!(season_episode("Show - 3x07 - Title.srt"), Some((3, 7)));
        assert_eq!(season_episode("Show.S02.E05.srt"), Some((2, 5)));
        assert_eq!(season_episode("Movie (2019) 1080p.mkv"), None);
        assert_eq!(season_episode("Example.Movie.2019.1920x1080.srt"), None);
    }

    #[test]
    fn junk_is_known() {
        assert!(is_junk("__MACOSX/Show/._Show.S01E01.srt"));
        assert!(is_junk("Show/._Show.S01E01.srt"));
        assert!(!is_junk("Show/Show.S01E01.srt"));
    }

    #[test]
    fn language_tokens_steer_the_choice() {
        let fr = Language::parse("fr").unwrap();
        assert_eq!(language_fit("Movie.2019.fr.srt", &fr), 2);
        assert_eq!(language_fit("Movie.2019.French.srt", &fr), 2);
        assert_eq!(language_fit("Movie.2019.eng.srt", &fr), -1);
        assert_eq!(language_fit("Movie.2019.srt", &fr), 0);
    }
}
