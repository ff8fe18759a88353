//! Ranking candidates, with an explanation a user can read.
//!
//! A candidate's score (0–100) is the share of the points it could earn that it did earn,
//! over what the video tells of itself (its file and folder names, its movie hash):
//!
//! | factor | points | when |
//! |---|---|---|
//! | `hash` | 25 | the provider matched it by the movie hash; it then also counts as matching the release group, source, resolution and codec (same file) |
//! | `ids` | 25 | its IMDb or TMDB id (the show's, for an episode) is the video's |
//! | `title` | 10 | same title (case, punctuation and articles aside) |
//! | `year` | 5 | same year |
//! | `episode` | 15 | same season and episode (episodes only; a different one is rejected) |
//! | `release_group` | 12 | same release group (`-GROUP`) |
//! | `source` | 10 | same source family (WEB-DL/WEBRip/WEB, BluRay/BDRip/Remux, HDTV, DVD) |
//! | `resolution` | 8 | same resolution (2160p, 1080p, 720p, 576p, 480p) |
//! | `codec` | 5 | same video codec (H.264, H.265, XviD, AV1) |
//!
//! A factor the video does not tell (no hash for a small file, no release group in its
//! name, no ids) is left out of the maximum, so a plainly named `Movie (2019).mkv` can still
//! reach the minimum with its title, year and ids. Then adjustments: `trusted` uploader
//! +5, `hearing_impaired` ±5 by preference (or rejected under `only`), `forced` (a subtitle
//! of the foreign parts only, for a job wanting a full one) −30, `machine_translated` −40,
//! `ai_translated` −20. The score is clamped to 0–100; candidates under `min_score` are not
//! taken.

use std::path::Path;

use serde::Serialize;

use crate::clients::Candidate;
use crate::downloader::HearingImpaired;

/// What a file or release name tells.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ReleaseInfo {
    /// Title, normalised (lower case, words separated by one space).
    pub title: Option<String>,
    /// Year.
    pub year: Option<u16>,
    /// Season number.
    pub season: Option<u32>,
    /// Episode number.
    pub episode: Option<u32>,
    /// Release group, lower case.
    pub group: Option<String>,
    /// Source family.
    pub source: Option<&'static str>,
    /// Resolution.
    pub resolution: Option<&'static str>,
    /// Video codec.
    pub codec: Option<&'static str>,
}

const SOURCES: &[(&str, &str)] = &[
    ("web-dl", "WEB"),
    ("webdl", "WEB"),
    ("webrip", "WEB"),
    ("web", "WEB"),
    ("amzn", "WEB"),
    ("nf", "WEB"),
    ("bluray", "BluRay"),
    ("blu-ray", "BluRay"),
    ("bdrip", "BluRay"),
    ("brrip", "BluRay"),
    ("bdremux", "BluRay"),
    ("remux", "BluRay"),
    ("bd", "BluRay"),
    ("hdtv", "HDTV"),
    ("pdtv", "HDTV"),
    ("dvdrip", "DVD"),
    ("dvd", "DVD"),
    ("dvdr", "DVD"),
];

const RESOLUTIONS: &[(&str, &str)] = &[
    ("2160p", "2160p"),
    ("4k", "2160p"),
    ("uhd", "2160p"),
    ("1080p", "1080p"),
    ("1080i", "1080p"),
    ("720p", "720p"),
    ("576p", "576p"),
    ("480p", "480p"),
];

const CODECS: &[(&str, &str)] = &[
    ("x264", "H.264"),
    ("h264", "H.264"),
    ("h.264", "H.264"),
    ("avc", "H.264"),
    ("x265", "H.265"),
    ("h265", "H.265"),
    ("h.265", "H.265"),
    ("hevc", "H.265"),
    ("xvid", "XviD"),
    ("divx", "XviD"),
    ("av1", "AV1"),
];

/// Words that are never a release group.
const NOT_GROUPS: &[&str] = &[
    "dl", "rip", "web", "x264", "x265", "hevc", "dts", "hd", "ma", "aac", "ac3", "dd5", "atmos",
];

fn lookup(table: &[(&str, &'static str)], token: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(spelling, _)| *spelling == token)
        .map(|(_, canonical)| *canonical)
}

/// `S01E02`, `s1e2`, `1x02` as (season, episode).
fn season_episode(token: &str) -> Option<(u32, u32)> {
    let lower = token.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix('s')
        && let Some((season, episode)) = rest.split_once('e')
    {
        let episode = episode.split('e').next().unwrap_or(episode);
        return Some((season.parse().ok()?, episode.parse().ok()?));
    }
    let (season, episode) = lower.split_once('x')?;
    if season.len() <= 2 && episode.len() == 2 {
        return Some((season.parse().ok()?, episode.parse().ok()?));
    }
    None
}

fn is_year(token: &str) -> Option<u16> {
    let year: u16 = token.parse().ok().filter(|_| token.len() == 4)?;
    (1900..=2099).contains(&year).then_some(year)
}

/// Normalises a title for comparison: lower case, alphanumeric words, no leading article.
pub fn normalise_title(title: &str) -> String {
    let lower = title.to_lowercase().replace('&', " and ");
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let words = match words.first() {
        Some(&("the" | "a" | "an")) if words.len() > 1 => &words[1..],
        _ => &words[..],
    };
    words.join(" ")
}

impl ReleaseInfo {
    /// Reads a release or file name (`Show.S01E02.1080p.WEB-DL.x264-GROUP.mkv`,
    /// `Movie (2019) [imdbid-tt123]`).
    pub fn parse(name: &str) -> Self {
        let name = strip_extension(name);
        let name = strip_bracketed_ids(name);
        let mut info = Self::default();
        // The group follows the last dash, when it is one word.
        if let Some((_, tail)) = name.rsplit_once('-') {
            let group = tail
                .trim()
                .trim_end_matches([']', ')'])
                .split(['[', '(', ' '])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            let known = lookup(SOURCES, &group).is_some()
                || lookup(RESOLUTIONS, &group).is_some()
                || lookup(CODECS, &group).is_some()
                || NOT_GROUPS.contains(&group.as_str());
            if !group.is_empty() && group.chars().all(|c| c.is_ascii_alphanumeric()) && !known {
                info.group = Some(group);
            }
        }
        let lower = name.to_ascii_lowercase();
        // "web-dl" and "blu-ray" hold a dash: look for them before splitting.
        for spelling in ["web-dl", "blu-ray"] {
            if lower.contains(spelling) {
                info.source = lookup(SOURCES, spelling);
            }
        }
        let tokens: Vec<&str> = lower
            .split(['.', ' ', '_', '-', '[', ']', '(', ')', '+'])
            .filter(|t| !t.is_empty())
            .collect();
        let mut title_end = None;
        for (i, token) in tokens.iter().enumerate() {
            let technical = if let Some((season, episode)) = season_episode(token) {
                info.season = Some(season);
                info.episode = Some(episode);
                true
            } else if let Some(year) = is_year(token).filter(|_| i > 0) {
                info.year = Some(year);
                true
            } else if let Some(source) = lookup(SOURCES, token).filter(|_| i > 0) {
                info.source = info.source.or(Some(source));
                true
            } else if let Some(resolution) = lookup(RESOLUTIONS, token) {
                info.resolution = Some(resolution);
                true
            } else if let Some(codec) = lookup(CODECS, token) {
                info.codec = Some(codec);
                true
            } else {
                false
            };
            if technical && title_end.is_none() {
                title_end = Some(i);
            }
        }
        // "h.264" was split by the dot.
        if info.codec.is_none() && (lower.contains("h.264") || lower.contains("h.265")) {
            info.codec = lookup(
                CODECS,
                if lower.contains("h.264") {
                    "h.264"
                } else {
                    "h.265"
                },
            );
        }
        let title_tokens = &tokens[..title_end.unwrap_or(tokens.len())];
        let title = normalise_title(&title_tokens.join(" "));
        // A name without any technical word is a title only if it has no group either.
        if !title.is_empty() && (title_end.is_some() || info.group.is_none()) {
            info.title = Some(title);
        }
        info
    }
}

const EXTENSIONS: &[&str] = &[
    "mkv", "mp4", "m4v", "avi", "ts", "m2ts", "wmv", "mov", "webm", "mpg", "mpeg", "iso", "srt",
    "ass", "ssa", "vtt", "sub", "zip",
];

fn strip_extension(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext)) if EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) => stem,
        _ => name,
    }
}

fn strip_bracketed_ids(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(start) = rest.find(['[', '{']) {
        let close = if rest[start..].starts_with('[') {
            ']'
        } else {
            '}'
        };
        let Some(len) = rest[start..].find(close) else {
            break;
        };
        let inner = rest[start + 1..start + len].to_ascii_lowercase();
        out.push_str(&rest[..start]);
        if !(inner.starts_with("imdb") || inner.starts_with("tmdb") || inner.starts_with("tvdb")) {
            out.push_str(&rest[start..=start + len]);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// `[imdbid-tt0133093]`, `{imdb-tt0133093}`, `[tmdbid-603]`, `{tmdb-603}` in a name.
fn bracketed_id(name: &str, service: &str) -> Option<u64> {
    let lower = name.to_ascii_lowercase();
    for prefix in [
        format!("{service}id-"),
        format!("{service}-"),
        format!("{service}id="),
    ] {
        if let Some(start) = lower.find(&prefix) {
            let digits: String = lower[start + prefix.len()..]
                .trim_start_matches("tt")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(id) = digits.parse() {
                return Some(id);
            }
        }
    }
    None
}

/// What the video's path tells of it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VideoFacts {
    /// From the file name, completed by the folders' names.
    pub release: ReleaseInfo,
    /// IMDb id of the movie or episode.
    pub imdb_id: Option<u64>,
    /// TMDB id of the movie or episode.
    pub tmdb_id: Option<u64>,
    /// IMDb id of the show.
    pub parent_imdb_id: Option<u64>,
    /// TMDB id of the show.
    pub parent_tmdb_id: Option<u64>,
}

impl VideoFacts {
    /// Reads the file name and, for what it lacks, its folders (`Show (2010)/Season 01/…`,
    /// `Movie (2019) [imdbid-tt…]/…`).
    pub fn from_path(path: &Path) -> Self {
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let mut release = ReleaseInfo::parse(file);
        let episode = release.episode.is_some();
        let folders: Vec<&str> = path
            .ancestors()
            .skip(1)
            .take(3)
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()))
            .filter(|n| !is_season_folder(n))
            .collect();
        let mut facts = Self {
            imdb_id: bracketed_id(file, "imdb"),
            tmdb_id: bracketed_id(file, "tmdb"),
            ..Self::default()
        };
        if let Some(folder) = folders.first() {
            let from_folder = ReleaseInfo::parse(folder);
            if episode {
                // An episode's folder is the show's: its ids are the parent's, and its
                // title is the show's title.
                facts.parent_imdb_id = bracketed_id(folder, "imdb");
                facts.parent_tmdb_id = bracketed_id(folder, "tmdb");
                if from_folder.title.is_some() {
                    release.title = from_folder.title;
                }
                release.year = release.year.or(from_folder.year);
            } else {
                facts.imdb_id = facts.imdb_id.or(bracketed_id(folder, "imdb"));
                facts.tmdb_id = facts.tmdb_id.or(bracketed_id(folder, "tmdb"));
                release.title = release.title.or(from_folder.title);
                release.year = release.year.or(from_folder.year);
            }
        }
        facts.release = release;
        facts
    }

    /// Whether the video is an episode.
    pub fn is_episode(&self) -> bool {
        self.release.episode.is_some()
    }
}

fn is_season_folder(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "specials"
        || lower
            .strip_prefix("season")
            .is_some_and(|rest| rest.trim().chars().all(|c| c.is_ascii_digit()))
}

/// One line of a score's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Factor {
    /// `hash`, `ids`, `title`, … (see the module's table).
    pub factor: &'static str,
    /// Points earned (negative for a penalty).
    pub points: i32,
    /// Points it could earn (0 for an adjustment).
    pub max: i32,
    /// What was compared, for a reader.
    pub note: String,
}

/// A candidate's score and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scored {
    /// 0–100.
    pub score: u32,
    /// Why it can never be taken (wrong episode, not hearing-impaired under `only`).
    pub rejected: Option<String>,
    /// The factors, in the table's order, then the adjustments.
    pub breakdown: Vec<Factor>,
}

/// What the user prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Preferences {
    /// Hearing-impaired preference.
    pub hearing_impaired: HearingImpaired,
}

struct Tally {
    earned: i32,
    max: i32,
    breakdown: Vec<Factor>,
}

impl Tally {
    fn factor(&mut self, factor: &'static str, max: i32, matched: bool, note: String) {
        let points = if matched { max } else { 0 };
        self.earned += points;
        self.max += max;
        self.breakdown.push(Factor {
            factor,
            points,
            max,
            note,
        });
    }
}

fn show<T: std::fmt::Display>(value: &Option<T>) -> String {
    value
        .as_ref()
        .map_or_else(|| "?".to_owned(), ToString::to_string)
}

/// Scores `candidate` for the video described by `facts` (with `video_hash` when one was
/// sent to the provider).
pub fn score(
    facts: &VideoFacts,
    has_hash: bool,
    candidate: &Candidate,
    preferences: Preferences,
) -> Scored {
    let meta = &candidate.meta;
    let theirs = ReleaseInfo::parse(&candidate.release);
    let ours = &facts.release;
    let mut tally = Tally {
        earned: 0,
        max: 0,
        breakdown: Vec::new(),
    };
    let mut rejected = None;
    let hash = has_hash && meta.hash_match;
    if has_hash {
        tally.factor(
            "hash",
            25,
            hash,
            if hash {
                "movie hash matched"
            } else {
                "movie hash not matched"
            }
            .to_owned(),
        );
    }
    let episode = facts.is_episode();
    let (our_imdb, our_tmdb, their_imdb, their_tmdb) = if episode {
        (
            facts.parent_imdb_id,
            facts.parent_tmdb_id,
            meta.parent_imdb_id,
            meta.parent_tmdb_id,
        )
    } else {
        (facts.imdb_id, facts.tmdb_id, meta.imdb_id, meta.tmdb_id)
    };
    if our_imdb.is_some() || our_tmdb.is_some() {
        let imdb = our_imdb.is_some() && our_imdb == their_imdb;
        let tmdb = our_tmdb.is_some() && our_tmdb == their_tmdb;
        let note = match (imdb, tmdb) {
            (true, _) => format!("IMDb tt{:07}", our_imdb.unwrap_or(0)),
            (_, true) => format!("TMDB {}", our_tmdb.unwrap_or(0)),
            _ => format!(
                "ours IMDb {} TMDB {}, theirs IMDb {} TMDB {}",
                show(&our_imdb),
                show(&our_tmdb),
                show(&their_imdb),
                show(&their_tmdb)
            ),
        };
        tally.factor("ids", 25, imdb || tmdb, note);
    }
    if let Some(title) = &ours.title {
        let their_title = meta
            .title
            .as_deref()
            .map(normalise_title)
            .or_else(|| theirs.title.clone());
        let matched = their_title.as_deref() == Some(title.as_str());
        tally.factor(
            "title",
            10,
            matched,
            format!("{title:?} vs {:?}", their_title.unwrap_or_default()),
        );
    }
    if let Some(year) = ours.year {
        let their_year = meta.year.or(theirs.year);
        tally.factor(
            "year",
            5,
            their_year == Some(year),
            format!("{year} vs {}", show(&their_year)),
        );
    }
    if let (Some(season), Some(number)) = (ours.season, ours.episode) {
        let their = (
            meta.season.or(theirs.season),
            meta.episode.or(theirs.episode),
        );
        let matched = their == (Some(season), Some(number));
        if !matched && their.0.is_some() && their.1.is_some() {
            rejected = Some(format!(
                "S{:02}E{:02} is not the video's S{season:02}E{number:02}",
                their.0.unwrap_or(0),
                their.1.unwrap_or(0)
            ));
        }
        tally.factor(
            "episode",
            15,
            matched,
            format!(
                "S{season:02}E{number:02} vs S{}E{}",
                show(&their.0),
                show(&their.1)
            ),
        );
    }
    let via_hash = |matched: bool| matched || hash;
    let note = |ours: &str, theirs: String| {
        if hash {
            format!("{ours} (same file by hash)")
        } else {
            format!("{ours} vs {theirs}")
        }
    };
    if let Some(group) = &ours.group {
        let matched = theirs.group.as_ref() == Some(group);
        tally.factor(
            "release_group",
            12,
            via_hash(matched),
            note(group, show(&theirs.group)),
        );
    }
    if let Some(source) = ours.source {
        let matched = theirs.source == Some(source);
        tally.factor(
            "source",
            10,
            via_hash(matched),
            note(source, show(&theirs.source)),
        );
    }
    if let Some(resolution) = ours.resolution {
        let matched = theirs.resolution == Some(resolution);
        tally.factor(
            "resolution",
            8,
            via_hash(matched),
            note(resolution, show(&theirs.resolution)),
        );
    }
    if let Some(codec) = ours.codec {
        let matched = theirs.codec == Some(codec);
        tally.factor(
            "codec",
            5,
            via_hash(matched),
            note(codec, show(&theirs.codec)),
        );
    }
    let base = if tally.max > 0 {
        (tally.earned * 100 + tally.max / 2) / tally.max
    } else {
        0
    };
    let mut adjust = |factor: &'static str, points: i32, note: &str| {
        tally.breakdown.push(Factor {
            factor,
            points,
            max: 0,
            note: note.to_owned(),
        });
        points
    };
    let mut total = base;
    if meta.trusted {
        total += adjust("trusted", 5, "uploaded by a trusted uploader");
    }
    match (preferences.hearing_impaired, candidate.hearing_impaired) {
        (HearingImpaired::Prefer, true) => total += adjust("hearing_impaired", 5, "preferred"),
        (HearingImpaired::PreferNot, true) => {
            total += adjust("hearing_impaired", -5, "not preferred")
        }
        (HearingImpaired::Only, false) => {
            rejected = rejected.or(Some("not hearing-impaired (only those wanted)".to_owned()));
        }
        _ => {}
    }
    if candidate.forced {
        total += adjust("forced", -30, "foreign parts only");
    }
    if meta.machine_translated {
        total += adjust("machine_translated", -40, "machine-translated");
    }
    if meta.ai_translated {
        total += adjust("ai_translated", -20, "AI-translated");
    }
    let mut score = u32::try_from(total.clamp(0, 100)).unwrap_or(0);
    if candidate.score > score {
        // A provider that ranks by itself (and tells less than we could score).
        score = candidate.score.min(100);
        tally.breakdown.push(Factor {
            factor: "provider",
            points: i32::try_from(score).unwrap_or(0),
            max: 0,
            note: "the provider's own score, higher than ours".to_owned(),
        });
    }
    if rejected.is_some() {
        score = 0;
    }
    Scored {
        score,
        rejected,
        breakdown: tally.breakdown,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::clients::CandidateMeta;
    use crate::job::Language;

    fn candidate(release: &str, meta: CandidateMeta) -> Candidate {
        Candidate {
            provider: "opensubtitles".to_owned(),
            id: "1".to_owned(),
            language: Language::parse("en").unwrap(),
            score: 0,
            hearing_impaired: false,
            forced: false,
            release: release.to_owned(),
            meta,
        }
    }

    fn factor<'a>(scored: &'a Scored, name: &str) -> Option<&'a Factor> {
        scored.breakdown.iter().find(|f| f.factor == name)
    }

    #[test]
    fn release_names_are_read() {
        let info = ReleaseInfo::parse("Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv");
        assert_eq!(info.title.as_deref(), Some("example movie"));
        assert_eq!(info.year, Some(2019));
        assert_eq!(info.resolution, Some("1080p"));
        assert_eq!(info.source, Some("BluRay"));
        assert_eq!(info.codec, Some("H.264"));
        assert_eq!(info.group.as_deref(), Some("group"));

        let info = ReleaseInfo::parse("The.Show.S02E06.720p.WEB-DL.H.265-NTb");
        assert_eq!(info.title.as_deref(), Some("show"));
        assert_eq!((info.season, info.episode), (Some(2), Some(6)));
        assert_eq!(info.source, Some("WEB"));
        assert_eq!(info.codec, Some("H.265"));
        assert_eq!(info.group.as_deref(), Some("ntb"));

        let info = ReleaseInfo::parse("Movie (2019) [imdbid-tt0133093].mkv");
        assert_eq!(info.title.as_deref(), Some("movie"));
        assert_eq!(info.year, Some(2019));
        assert_eq!(info.group, None);

        let info = ReleaseInfo::parse("show 1x02 hdtv");
        assert_eq!((info.season, info.episode), (Some(1), Some(2)));
        assert_eq!(info.source, Some("HDTV"));
    }

    #[test]
    fn facts_come_from_the_file_and_its_folders() {
        let facts = VideoFacts::from_path(Path::new(
            "/media/movies/The Matrix (1999) [imdbid-tt0133093] {tmdb-603}/The Matrix (1999).mkv",
        ));
        assert_eq!(facts.imdb_id, Some(133_093));
        assert_eq!(facts.tmdb_id, Some(603));
        assert_eq!(facts.release.title.as_deref(), Some("matrix"));
        assert_eq!(facts.release.year, Some(1999));

        let facts = VideoFacts::from_path(Path::new(
            "/media/tv/Example Show (2010) [imdbid-tt1234567]/Season 02/Example Show S02E06.mkv",
        ));
        assert!(facts.is_episode());
        assert_eq!(facts.parent_imdb_id, Some(1_234_567));
        assert_eq!(facts.imdb_id, None);
        assert_eq!(facts.release.title.as_deref(), Some("example show"));
        assert_eq!(facts.release.year, Some(2010));
    }

    #[test]
    fn a_hash_match_scores_full_and_explains_why() {
        let facts = VideoFacts::from_path(Path::new(
            "/m/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
        ));
        let meta = CandidateMeta {
            hash_match: true,
            title: Some("Example Movie".to_owned()),
            year: Some(2019),
            ..CandidateMeta::default()
        };
        let scored = score(
            &facts,
            true,
            &candidate("Example.Movie.2019.720p.WEB.x265-OTHER", meta),
            Preferences::default(),
        );
        assert_eq!(scored.score, 100, "{scored:?}");
        assert_eq!(factor(&scored, "hash").unwrap().points, 25);
        assert!(
            factor(&scored, "release_group")
                .unwrap()
                .note
                .contains("by hash")
        );
        assert_eq!(scored.rejected, None);
    }

    #[test]
    fn release_details_rank_an_exact_release_above_another() {
        let facts = VideoFacts::from_path(Path::new(
            "/m/Example.Movie.2019.1080p.BluRay.x264-GROUP.mkv",
        ));
        let meta = CandidateMeta {
            title: Some("Example Movie".to_owned()),
            year: Some(2019),
            ..CandidateMeta::default()
        };
        let exact = score(
            &facts,
            true,
            &candidate("Example.Movie.2019.1080p.BluRay.x264-GROUP", meta.clone()),
            Preferences::default(),
        );
        let other = score(
            &facts,
            true,
            &candidate("Example.Movie.2019.720p.WEBRip.x265-OTHER", meta),
            Preferences::default(),
        );
        // 10 + 5 + 12 + 10 + 8 + 5 = 50 of 75 (hash known, not matched; no ids known).
        assert_eq!(exact.score, 67);
        // Title and year: 15 of 75.
        assert_eq!(other.score, 20);
        assert_eq!(factor(&other, "resolution").unwrap().points, 0);
        assert_eq!(factor(&other, "resolution").unwrap().note, "1080p vs 720p");
    }

    #[test]
    fn what_the_video_does_not_tell_is_left_out_of_the_maximum() {
        let facts = VideoFacts::from_path(Path::new(
            "/m/Movie (2019) [imdbid-tt0000042]/Movie (2019).mkv",
        ));
        let meta = CandidateMeta {
            imdb_id: Some(42),
            title: Some("Movie".to_owned()),
            year: Some(2019),
            ..CandidateMeta::default()
        };
        // No hash sent, no release details: ids, title and year are everything.
        let scored = score(
            &facts,
            false,
            &candidate("Movie.2019.1080p.WEB-DL", meta),
            Preferences::default(),
        );
        assert_eq!(scored.score, 100);
        assert!(factor(&scored, "hash").is_none());
        assert!(factor(&scored, "source").is_none());
    }

    #[test]
    fn a_wrong_episode_is_rejected() {
        let facts = VideoFacts::from_path(Path::new("/tv/Show/Season 1/Show.S01E02.mkv"));
        let meta = CandidateMeta {
            season: Some(1),
            episode: Some(3),
            ..CandidateMeta::default()
        };
        let scored = score(
            &facts,
            false,
            &candidate("Show.S01E03", meta),
            Preferences::default(),
        );
        assert_eq!(scored.score, 0);
        assert!(scored.rejected.unwrap().contains("S01E03"));
    }

    #[test]
    fn adjustments_for_trust_translation_forced_and_hearing_impaired() {
        let facts = VideoFacts::from_path(Path::new("/m/Movie.2019.mkv"));
        let base = CandidateMeta {
            title: Some("Movie".to_owned()),
            year: Some(2019),
            ..CandidateMeta::default()
        };
        let plain = score(
            &facts,
            false,
            &candidate("Movie.2019", base.clone()),
            Preferences::default(),
        );
        assert_eq!(plain.score, 100);
        let machine = CandidateMeta {
            machine_translated: true,
            ..base.clone()
        };
        let scored = score(
            &facts,
            false,
            &candidate("Movie.2019", machine),
            Preferences::default(),
        );
        assert_eq!(scored.score, 60);
        assert_eq!(factor(&scored, "machine_translated").unwrap().points, -40);
        let ai = CandidateMeta {
            ai_translated: true,
            ..base.clone()
        };
        assert_eq!(
            score(
                &facts,
                false,
                &candidate("Movie.2019", ai),
                Preferences::default()
            )
            .score,
            80
        );

        let mut forced = candidate("Movie.2019", base.clone());
        forced.forced = true;
        assert_eq!(
            score(&facts, false, &forced, Preferences::default()).score,
            70
        );

        let mut hi = candidate("Movie.2019", base.clone());
        hi.hearing_impaired = true;
        assert_eq!(score(&facts, false, &hi, Preferences::default()).score, 95);
        let prefer = Preferences {
            hearing_impaired: HearingImpaired::Prefer,
        };
        assert_eq!(score(&facts, false, &hi, prefer).score, 100);
        let only = Preferences {
            hearing_impaired: HearingImpaired::Only,
        };
        let rejected = score(&facts, false, &candidate("Movie.2019", base.clone()), only);
        assert!(rejected.rejected.is_some());

        let facts = VideoFacts::from_path(Path::new("/m/Movie.2019.1080p.mkv"));
        let trusted = CandidateMeta {
            trusted: true,
            ..base
        };
        let scored = score(
            &facts,
            false,
            &candidate("Movie.2019.720p", trusted),
            Preferences::default(),
        );
        // 15 of 23, then +5.
        assert_eq!(scored.score, 65 + 5);
        assert_eq!(factor(&scored, "trusted").unwrap().points, 5);
    }

    #[test]
    fn a_provider_score_counts_when_it_is_higher() {
        let facts = VideoFacts::from_path(Path::new("/m/Movie.2019.mkv"));
        let mut plugin = candidate("", CandidateMeta::default());
        plugin.score = 90;
        let scored = score(&facts, false, &plugin, Preferences::default());
        assert_eq!(scored.score, 90);
        assert_eq!(factor(&scored, "provider").unwrap().points, 90);
    }
}
