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

use crate::language::Language;
use crate::library::Libraries;

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

/// What the name of an external subtitle file says, read the way Jellyfin reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarName {
    /// The language its name gives, if any.
    pub language: Option<Language>,
    /// `forced` or `foreign` in the name.
    pub is_forced: bool,
    /// `cc`, `hi` or `sdh` in the name.
    pub is_hearing_impaired: bool,
}

/// Reads the part of a sidecar's name between the video's stem and its extension (`.fr.sdh`),
/// following Jellyfin's `ExternalPathParser`: tokens from the right, the first language found
/// wins, `forced`/`foreign` are substrings, `cc`/`hi`/`sdh` whole tokens; a `hi` taken as
/// Hindi with another language to its left means hearing impaired instead.
pub fn parse_sidecar_extra(extra: &str) -> SidecarName {
    let mut name = SidecarName {
        language: None,
        is_forced: false,
        is_hearing_impaired: false,
    };
    let mut language_token = "";
    for token in extra.rsplit('.').filter(|t| !t.is_empty()) {
        let lower = token.to_ascii_lowercase();
        if lower.contains("default") {
            continue;
        }
        if lower.contains("forced") || lower.contains("foreign") {
            name.is_forced = true;
            continue;
        }
        if let Some(language) = Language::from_token(token) {
            match &name.language {
                None => {
                    name.language = Some(language);
                    language_token = token;
                    continue;
                }
                Some(_) if language_token.eq_ignore_ascii_case("hi") => {
                    name.language = Some(language);
                    name.is_hearing_impaired = true;
                    language_token = token;
                    continue;
                }
                Some(_) => {}
            }
        }
        if matches!(lower.as_str(), "cc" | "hi" | "sdh") {
            name.is_hearing_impaired = true;
        }
    }
    name
}

/// If `file_name` is an external subtitle of the video whose stem is `video_stem` (it starts
/// with the stem, case-insensitively, then `.` or its extension, and has a subtitle
/// extension), what its name says.
pub fn sidecar_of(video_stem: &str, file_name: &str) -> Option<SidecarName> {
    let (stem, extension) = file_name.rsplit_once('.')?;
    if !SUBTITLE_EXTENSIONS.contains(&extension.to_ascii_lowercase().as_str()) {
        return None;
    }
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
    Some(parse_sidecar_extra(extra))
}

/// The kind of a folder entry, as `readdir` tells it (no `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link (its target unknown until followed).
    Symlink,
    /// Anything else (socket, device, …).
    Other,
}

/// One folder's entries, read with a single `readdir`, sorted case-insensitively so the
/// sidecars of a video are found by a binary search instead of a `stat` per candidate.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// `(ASCII-lowercased name, name, kind)`, sorted by the first.
    entries: Vec<(String, String, EntryKind)>,
}

impl Listing {
    /// Reads `dir` once. Names that are not UTF-8 are kept lossily (they cannot name a
    /// subtitle cuewarden would match anyway).
    pub fn read(dir: &Path) -> io::Result<Self> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(t) if t.is_file() => EntryKind::File,
                Ok(t) if t.is_dir() => EntryKind::Dir,
                Ok(t) if t.is_symlink() => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            entries.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        Ok(Self::from_entries(entries))
    }

    /// A listing of the given names and kinds.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, EntryKind)>) -> Self {
        let mut entries: Vec<_> = entries
            .into_iter()
            .map(|(name, kind)| (name.to_ascii_lowercase(), name, kind))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        Self { entries }
    }

    /// Every entry: name and kind, in case-insensitive order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, EntryKind)> {
        self.entries
            .iter()
            .map(|(_, name, kind)| (name.as_str(), *kind))
    }

    /// The external subtitles of the video named `video_name` in this folder, with what
    /// their names say.
    pub fn sidecars<'a>(
        &'a self,
        video_name: &'a str,
    ) -> impl Iterator<Item = (&'a str, SidecarName)> + 'a {
        let stem = video_name
            .rsplit_once('.')
            .map_or(video_name, |(stem, _)| stem);
        let prefix = stem.to_ascii_lowercase();
        let start = self
            .entries
            .partition_point(|(key, _, _)| key.as_str() < prefix.as_str());
        self.entries[start..]
            .iter()
            .take_while(move |(key, _, _)| key.starts_with(&prefix))
            .filter(move |(_, name, _)| name != video_name)
            .filter_map(move |(_, name, _)| sidecar_of(stem, name).map(|s| (name.as_str(), s)))
    }

    /// Names of the external subtitles of `video_name` that give a user who wants
    /// `language` what they asked for.
    pub fn sidecars_in<'a>(
        &'a self,
        video_name: &'a str,
        language: &'a Language,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.sidecars(video_name)
            .filter_map(move |(name, sidecar)| {
                sidecar
                    .language
                    .is_some_and(|found| language.is_satisfied_by(&found))
                    .then_some(name)
            })
    }
}

/// External subtitle files next to `video` in `language`, sorted by name.
pub fn existing_sidecars(video: &Path, language: &Language) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (video.parent(), video.file_name().and_then(OsStr::to_str))
    else {
        return Ok(Vec::new());
    };
    let listing = Listing::read(dir)?;
    let mut found: Vec<PathBuf> = listing
        .sidecars_in(name, language)
        .map(|sidecar| dir.join(sidecar))
        .collect();
    found.sort();
    Ok(found)
}

/// The file name cuewarden writes for SRT: `<video stem>.<lang>[.forced|.sdh].srt`.
pub fn subtitle_path(video: &Path, language: &Language, forced: bool, sdh: bool) -> PathBuf {
    sidecar_path(video, language, forced, sdh, "srt")
}

/// The file name cuewarden writes: `<video stem>.<lang>[.forced|.sdh].<extension>`, next
/// to the video (Jellyfin's own naming; `.sdh`, not `.hi`, which alone would read as Hindi).
pub fn sidecar_path(
    video: &Path,
    language: &Language,
    forced: bool,
    sdh: bool,
    extension: &str,
) -> PathBuf {
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
    name.push('.');
    name.push_str(extension);
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

/// The mode of a written subtitle: `0644`, or `0664` when the folder is group-writable
/// (a library shared by a media group, where the group's other tools may replace it).
pub fn subtitle_mode(folder_mode: u32) -> u32 {
    if folder_mode & 0o020 != 0 {
        0o664
    } else {
        0o644
    }
}

/// Writes `contents` to `target` atomically: a hidden temporary file in the same directory
/// (created new, so nothing that already sits at its name, a symlink included, is followed),
/// its mode set ([`subtitle_mode`]), fsync, rename over the target, fsync the directory.
/// Refuses a target whose directory's real path is outside `libraries`, and a target that
/// is a symlink. On any failure the temporary file is removed. Answers whether a file was
/// replaced.
pub fn write_atomically(
    target: &Path,
    contents: &[u8],
    libraries: &Libraries,
) -> Result<bool, WriteError> {
    use std::os::unix::fs::PermissionsExt;
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
    if !libraries.holds_folder(&real_dir) {
        return Err(outside());
    }
    let final_path = real_dir.join(name);
    let existing = fs::symlink_metadata(&final_path).ok();
    if existing
        .as_ref()
        .is_some_and(|m| m.file_type().is_symlink())
    {
        return Err(WriteError::Symlink(target.to_owned()));
    }
    let folder_mode = fs::metadata(&real_dir)
        .map_err(io_error)?
        .permissions()
        .mode();
    // Hidden, so Jellyfin's scanner ignores it while it exists; unique per attempt.
    let temp = real_dir.join(format!(
        ".{}.{}-{}.cuewarden-tmp",
        name.to_string_lossy(),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.set_permissions(fs::Permissions::from_mode(subtitle_mode(folder_mode)))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &final_path)?;
        fs::File::open(&real_dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(io_error)?;
    Ok(existing.is_some())
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
        let libraries = Libraries::from_roots([PathBuf::from("/media/movies")]);
        let inside = |p: &str| libraries.library_of_lexical(Path::new(p)).is_some();
        assert!(inside("/media/movies/A/a.mkv"));
        assert!(!inside("/media/movies/../secret/a.mkv"));
        assert!(!inside("/media/moviesX/a.mkv"));
        assert!(!inside("/media/movies"));
        assert!(!inside("relative/a.mkv"));
    }

    #[test]
    fn reads_sidecar_names_the_way_jellyfin_does() {
        let read = |extra: &str| {
            let name = parse_sidecar_extra(extra);
            (
                name.language.map(String::from).unwrap_or_default(),
                name.is_forced,
                name.is_hearing_impaired,
            )
        };
        let s = |l: &str, f, h| (l.to_owned(), f, h);
        assert_eq!(read(".en"), s("en", false, false));
        assert_eq!(read(".fr.en"), s("en", false, false));
        assert_eq!(read(".title.en.default.forced"), s("en", true, false));
        assert_eq!(read(".sdh.en.title"), s("en", false, true));
        assert_eq!(read(".en.cc.title"), s("en", false, true));
        assert_eq!(read(".en.hi"), s("en", false, true));
        assert_eq!(read(".hi"), s("hi", false, false));
        assert_eq!(read(".fr-FR"), s("fr", false, false));
        assert_eq!(read(".pt-BR.forced"), s("pt-BR", true, false));
        assert_eq!(read(".French"), s("fr", false, false));
        assert_eq!(read(""), s("", false, false));
    }

    #[test]
    fn regional_sidecars_count_for_their_own_language() {
        let listing = Listing::from_entries(
            [
                "Film.mkv",
                "Film.pt-BR.srt",
                "Film.fr-FR.srt",
                "Film.zh-TW.srt",
                "Film 2.mkv",
                "Film 2.en.srt",
                "Filmography.en.srt",
            ]
            .map(|n| (n.to_owned(), EntryKind::File)),
        );
        let has = |video: &str, code: &str| {
            let language = lang(code);
            listing.sidecars_in(video, &language).count() > 0
        };
        assert!(has("Film.mkv", "pt-BR"));
        assert!(!has("Film.mkv", "pt"));
        assert!(has("Film.mkv", "fr"));
        assert!(has("Film.mkv", "zh"));
        assert!(!has("Film.mkv", "zh-CN"));
        assert!(
            !has("Film.mkv", "en"),
            "Film 2 and Filmography are other videos"
        );
        assert!(has("Film 2.mkv", "en"));
    }

    #[test]
    fn writes_atomically_inside_and_refuses_escaping_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let roots = Libraries::from_roots([root.path().to_owned()]);
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
        assert!(
            !outside.path().join("f").exists(),
            "the symlink was followed"
        );
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_files_are_0644_or_group_writable_like_their_folder() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let roots = Libraries::from_roots([root.path().to_owned()]);
        let private = root.path().join("private");
        let shared = root.path().join("shared");
        for (dir, mode) in [(&private, 0o755), (&shared, 0o2775)] {
            fs::create_dir(dir).unwrap();
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
        }
        let one = private.join("a.en.srt");
        assert!(!write_atomically(&one, b"x", &roots).unwrap(), "a new file");
        assert_eq!(mode_of(&one), 0o644);
        let two = shared.join("a.en.srt");
        write_atomically(&two, b"x", &roots).unwrap();
        assert_eq!(mode_of(&two), 0o664);
        assert!(
            write_atomically(&two, b"y", &roots).unwrap(),
            "a replaced file"
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let root = tempfile::tempdir().unwrap();
        let roots = Libraries::from_roots([root.path().to_owned()]);
        // A folder where the subtitle should go: the rename fails.
        let target = root.path().join("a.en.srt");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"k").unwrap();
        let err = write_atomically(&target, b"x", &roots).unwrap_err();
        assert!(matches!(err, WriteError::Io { .. }), "{err}");
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.en.srt"], "temporary file left behind");
    }

    #[test]
    fn sidecar_names_carry_the_format() {
        let video = Path::new("/m/Show S01E02.mkv");
        assert_eq!(
            sidecar_path(video, &lang("pt-BR"), false, true, "ass"),
            Path::new("/m/Show S01E02.pt-BR.sdh.ass")
        );
    }
}
