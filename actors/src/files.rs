//! The file system side of a job: which subtitles already sit next to a video, and how a
//! new one is written there safely.
//!
//! Every function here is blocking; workers call them through `spawn_blocking`.
//! Nothing is ever written outside a library root: the target directory is canonicalised
//! (resolving symlinks) and must lie under a canonicalised root.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use crate::job::Language;

/// Subtitle extensions Jellyfin recognises as external streams.
pub const SUBTITLE_EXTENSIONS: [&str; 9] = [
    "ass", "mks", "sami", "smi", "srt", "ssa", "sub", "sup", "vtt",
];

/// Video extensions Jellyfin imports (lowercase).
pub const VIDEO_EXTENSIONS: [&str; 17] = [
    "3gp", "avi", "divx", "flv", "iso", "m2ts", "m4v", "mk3d", "mkv", "mov", "mp4", "mpeg", "mpg",
    "mts", "ogm", "ts", "webm",
];

/// Whether `path` names a video by its extension (case-insensitive).
pub fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| VIDEO_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Common 3-letter (ISO 639-2 B and T) codes and English names of languages, so
/// `Movie.fre.srt` or `Movie.French.srt` count as French.
const LANGUAGE_ALIASES: &[(&str, &[&str])] = &[
    ("en", &["eng", "english"]),
    ("fr", &["fre", "fra", "french"]),
    ("de", &["ger", "deu", "german"]),
    ("es", &["spa", "spanish"]),
    ("it", &["ita", "italian"]),
    ("pt", &["por", "portuguese", "pt-br", "pt-pt"]),
    ("nl", &["dut", "nld", "dutch"]),
    ("sv", &["swe", "swedish"]),
    ("da", &["dan", "danish"]),
    ("no", &["nor", "nob", "norwegian"]),
    ("fi", &["fin", "finnish"]),
    ("pl", &["pol", "polish"]),
    ("ru", &["rus", "russian"]),
    ("ja", &["jpn", "japanese"]),
    (
        "zh",
        &[
            "chi", "zho", "chinese", "zh-cn", "zh-tw", "zh-hans", "zh-hant",
        ],
    ),
    ("ko", &["kor", "korean"]),
    ("ar", &["ara", "arabic"]),
    ("cs", &["cze", "ces", "czech"]),
    ("el", &["gre", "ell", "greek"]),
    ("he", &["heb", "hebrew"]),
    ("hu", &["hun", "hungarian"]),
    ("ro", &["rum", "ron", "romanian"]),
    ("tr", &["tur", "turkish"]),
    ("uk", &["ukr", "ukrainian"]),
];

/// Whether a file-name token names `language` (`fr`, `fre`, `fra`, `French`).
pub fn token_names_language(token: &str, language: &Language) -> bool {
    let token = token.to_ascii_lowercase();
    if token == language.as_str() {
        return true;
    }
    LANGUAGE_ALIASES
        .iter()
        .find(|(code, _)| *code == language.as_str())
        .is_some_and(|(_, aliases)| aliases.contains(&token.as_str()))
}

/// The language of an external subtitle file for `video`, following Jellyfin's rule: the
/// name must start with the video's stem (case-insensitive), then `.` tokens; the rightmost
/// token that names a language wins. Returns `None` if `candidate` is not one of the video's
/// subtitle files.
fn sidecar_tokens(video_stem: &str, candidate: &Path) -> Option<Vec<String>> {
    let extension = candidate.extension()?.to_str()?.to_ascii_lowercase();
    if !SUBTITLE_EXTENSIONS.contains(&extension.as_str()) {
        return None;
    }
    let stem = candidate.file_stem()?.to_str()?;
    if stem.len() < video_stem.len()
        || !stem.is_char_boundary(video_stem.len())
        || !stem[..video_stem.len()].eq_ignore_ascii_case(video_stem)
    {
        return None;
    }
    let extra = &stem[video_stem.len()..];
    if !(extra.is_empty() || extra.starts_with('.')) {
        return None;
    }
    Some(
        extra
            .split('.')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// External subtitle files next to `video` in `language`, sorted by name.
pub fn existing_sidecars(video: &Path, language: &Language) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(stem)) = (video.parent(), video.file_stem().and_then(OsStr::to_str))
    else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path == video {
            continue;
        }
        let Some(tokens) = sidecar_tokens(stem, &path) else {
            continue;
        };
        // Rightmost language token wins, as in Jellyfin's ExternalPathParser.
        let language_token = tokens.iter().rev().find(|t| {
            LANGUAGE_ALIASES.iter().any(|(code, aliases)| {
                t.eq_ignore_ascii_case(code) || aliases.contains(&t.to_ascii_lowercase().as_str())
            })
        });
        if language_token.is_some_and(|t| token_names_language(t, language)) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The file name cuewarden writes: `<video stem>.<lang>[.forced|.sdh].srt`.
pub fn subtitle_path(video: &Path, language: &Language, forced: bool, sdh: bool) -> PathBuf {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let mut name = format!("{stem}.{language}");
    if forced {
        name.push_str(".forced");
    } else if sdh {
        name.push_str(".sdh");
    }
    name.push_str(".srt");
    video.with_file_name(name)
}

/// Removes `.` and resolves `..` without touching the file system.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The library root `path` lies in, judged on the path as written (no symlinks resolved):
/// the check the API makes before accepting a request.
pub fn library_of<'a>(path: &Path, roots: &'a [PathBuf]) -> Option<&'a PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let normalized = normalize_lexically(path);
    roots
        .iter()
        .find(|root| normalized.starts_with(root) && normalized != **root)
}

/// Why a subtitle was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target resolves outside every library root (e.g. through a symlink).
    #[error("refusing to write {path}: it resolves outside every library root")]
    OutsideLibrary {
        /// The target.
        path: PathBuf,
    },
    /// The target exists and is a symlink.
    #[error("refusing to replace symlink {0}")]
    Symlink(PathBuf),
    /// An I/O error (full disk, permissions).
    #[error("cannot write {path}: {source}")]
    Io {
        /// The target.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Writes `contents` to `target` atomically: a hidden temporary file in the same directory,
/// fsync, rename over the target, fsync the directory. Refuses targets outside `roots`.
pub fn write_atomically(
    target: &Path,
    contents: &[u8],
    roots: &[PathBuf],
) -> Result<(), WriteError> {
    let io_error = |source| WriteError::Io {
        path: target.to_owned(),
        source,
    };
    let outside = || WriteError::OutsideLibrary {
        path: target.to_owned(),
    };
    let dir = target.parent().ok_or_else(outside)?;
    let name = target.file_name().ok_or_else(outside)?;
    let real_dir = dir.canonicalize().map_err(io_error)?;
    let inside = roots
        .iter()
        .filter_map(|root| root.canonicalize().ok())
        .any(|root| real_dir.starts_with(&root));
    if !inside {
        return Err(outside());
    }
    if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(WriteError::Symlink(target.to_owned()));
    }
    // Hidden, so Jellyfin's scanner ignores it while it exists.
    let temp = real_dir.join(format!(".{}.cuewarden-tmp", name.to_string_lossy()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, real_dir.join(name))?;
        fs::File::open(&real_dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Language {
        Language::parse(code).unwrap()
    }

    #[test]
    fn videos_are_known_by_their_extension() {
        for video in ["/m/A (2019).mkv", "/m/b.MP4", "/m/c.m2ts", "/m/d.avi"] {
            assert!(is_video(Path::new(video)), "{video}");
        }
        for other in [
            "/m/A (2019).srt",
            "/m/mkv",
            "/m/.mkv.part",
            "/m/notes.txt",
            "/m/x",
        ] {
            assert!(!is_video(Path::new(other)), "{other}");
        }
    }

    #[test]
    fn finds_sidecars_in_any_naming_jellyfin_recognises() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("Movie (2019).mkv");
        for name in [
            "Movie (2019).mkv",
            "Movie (2019).fr.srt",
            "movie (2019).FRE.forced.ass",
            "Movie (2019).en.sdh.srt",
            "Movie (2019).fr.en.srt",
            "Movie (2019) extras.fr.srt",
            "Movie (2019).fr.txt",
        ] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        let fr = existing_sidecars(&video, &lang("fr")).unwrap();
        let names: Vec<_> = fr
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            ["Movie (2019).fr.srt", "movie (2019).FRE.forced.ass"]
        );
        let en = existing_sidecars(&video, &lang("en")).unwrap();
        assert_eq!(en.len(), 2, "{en:?}");
        assert!(existing_sidecars(&video, &lang("de")).unwrap().is_empty());
    }

    #[test]
    fn names_subtitles_the_way_jellyfin_expects() {
        let video = Path::new("/m/Movie (2019).mkv");
        let fr = lang("fr");
        assert_eq!(
            subtitle_path(video, &fr, false, false),
            Path::new("/m/Movie (2019).fr.srt")
        );
        assert_eq!(
            subtitle_path(video, &fr, true, false),
            Path::new("/m/Movie (2019).fr.forced.srt")
        );
        assert_eq!(
            subtitle_path(video, &fr, false, true),
            Path::new("/m/Movie (2019).fr.sdh.srt")
        );
    }

    #[test]
    fn library_check_resolves_dot_dot_lexically() {
        let roots = vec![PathBuf::from("/media/movies")];
        assert!(library_of(Path::new("/media/movies/A/a.mkv"), &roots).is_some());
        assert!(library_of(Path::new("/media/movies/../secret/a.mkv"), &roots).is_none());
        assert!(library_of(Path::new("/media/moviesX/a.mkv"), &roots).is_none());
        assert!(library_of(Path::new("/media/movies"), &roots).is_none());
        assert!(library_of(Path::new("relative/a.mkv"), &roots).is_none());
    }

    #[test]
    fn writes_atomically_inside_and_refuses_escaping_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let roots = vec![root.path().to_owned()];
        let target = root.path().join("a.fr.srt");
        write_atomically(&target, b"one", &roots).unwrap();
        write_atomically(&target, b"two", &roots).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let leftovers: Vec<_> = fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");

        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        let err = write_atomically(&root.path().join("escape/b.fr.srt"), b"x", &roots).unwrap_err();
        assert!(matches!(err, WriteError::OutsideLibrary { .. }), "{err}");
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());

        std::os::unix::fs::symlink(outside.path().join("f"), root.path().join("c.fr.srt")).unwrap();
        let err = write_atomically(&root.path().join("c.fr.srt"), b"x", &roots).unwrap_err();
        assert!(matches!(err, WriteError::Symlink(_)), "{err}");
    }
}
