//! Webhooks: what Sonarr, Radarr and the Jellyfin Webhook plugin post when a video arrives.
//!
//! The HTTP server serves them (`POST /api/v1/webhooks/{jellyfin,sonarr,radarr}`, see
//! `api::webhooks`); this file reads their payloads into [`Target`]s and hands each to the
//! intake. Parsing is lenient the way the senders need it: any content type (the Jellyfin
//! plugin posts `text/plain`), unknown fields and unknown event types are tolerated, and a
//! Jellyfin body broken by the plugin's escaping (raw newlines, lone backslashes inside a
//! string) is repaired before it is refused.
//!
//! What each sender means:
//! - **Sonarr** `Download`: one `episodeFile` (On File Import / On Upgrade, with
//!   `isUpgrade`) or `episodeFiles[]` (On Import Complete); a file's `path`, else
//!   `series.path` joined with its `relativePath`.
//! - **Radarr** `Download`: `movieFile.path`, else `movie.folderPath` joined with
//!   `movieFile.relativePath`.
//! - **Jellyfin** `ItemAdded` of a `Movie` or `Episode` (or `Video`): the plugin sends no
//!   path, so `ItemId` (with or without dashes) is looked up through Jellyfin.
//! - `Test` (Sonarr, Radarr): answered, nothing created. Any other event: answered,
//!   nothing created, logged at info.

use std::path::PathBuf;

use cuewarden_actors::EventSource;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Detection, Intake, IntakeError, SourceInfo, SourceStatus, Submitted, Target};
use crate::clients::jellyfin::JellyfinError;

/// The webhooks, as a source: served by the HTTP server.
pub const WEBHOOK_SOURCE: SourceInfo = SourceInfo {
    name: EventSource::Webhook,
    enabled: true,
    description: "POST /api/v1/webhooks/{jellyfin,sonarr,radarr} (Jellyfin Webhook plugin, \
                  Sonarr and Radarr Connect → Webhook)",
};

/// Who posted a webhook (the last segment of its route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    /// The Jellyfin Webhook plugin (Generic destination).
    Jellyfin,
    /// Sonarr's Connect → Webhook.
    Sonarr,
    /// Radarr's Connect → Webhook.
    Radarr,
}

impl Sender {
    /// The sender a route segment names.
    pub fn from_segment(segment: &str) -> Option<Self> {
        match segment.to_ascii_lowercase().as_str() {
            "jellyfin" => Some(Self::Jellyfin),
            "sonarr" => Some(Self::Sonarr),
            "radarr" => Some(Self::Radarr),
            _ => None,
        }
    }

    /// Its route segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jellyfin => "jellyfin",
            Self::Sonarr => "sonarr",
            Self::Radarr => "radarr",
        }
    }
}

/// What a payload asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Videos that arrived.
    Videos {
        /// The event (`Download`, `ItemAdded`).
        event: String,
        /// Each video once, in the payload's order.
        targets: Vec<Target>,
        /// Sonarr/Radarr's `isUpgrade`, when the payload has it.
        upgrade: Option<bool>,
    },
    /// A `Test` event: the sender checks the connection.
    Test,
    /// An event that names no new video (another event type, an item that is not a
    /// movie or episode).
    Ignored {
        /// The event, as the payload names it.
        event: String,
        /// Why nothing is done, for people.
        reason: String,
    },
}

/// Why a payload was refused (a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON at all.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("the body is JSON but not an object")]
    NotAnObject,
    /// An object without the event type field.
    #[error("{field} is missing: is this a {sender} webhook?")]
    NoEvent {
        /// The field (`eventType`, `NotificationType`).
        field: &'static str,
        /// The sender the route is for.
        sender: &'static str,
    },
    /// A known event without what it needs (a template without `ItemId`, a Download
    /// without a file).
    #[error("{0}")]
    Incomplete(String),
}

/// Reads a payload of `sender`.
pub fn parse(sender: Sender, body: &[u8]) -> Result<Parsed, PayloadError> {
    let value = match sender {
        Sender::Jellyfin => parse_lenient(body)?,
        Sender::Sonarr | Sender::Radarr => parse_json(body)?,
    };
    let Value::Object(object) = value else {
        return Err(PayloadError::NotAnObject);
    };
    match sender {
        Sender::Jellyfin => parse_jellyfin(&object),
        Sender::Sonarr => parse_sonarr(&object),
        Sender::Radarr => parse_radarr(&object),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|err| PayloadError::NotJson(err.to_string()))
}

/// JSON, or JSON once the Jellyfin plugin's escaping gaps are closed: it escapes `"` only,
/// so a `{{{Overview}}}` with a newline or a backslash breaks the document.
fn parse_lenient(body: &[u8]) -> Result<Value, PayloadError> {
    match parse_json(body) {
        Ok(value) => Ok(value),
        Err(err) => {
            let text = std::str::from_utf8(body).map_err(|_| err.clone())?;
            serde_json::from_str(&repair_strings(text)).map_err(|_| err)
        }
    }
}

/// Escapes control characters and lone backslashes inside JSON strings.
fn repair_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !in_string {
            in_string = c == '"';
            out.push(c);
            continue;
        }
        match c {
            '"' => {
                in_string = false;
                out.push(c);
            }
            '\\' => match chars.peek() {
                Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' | 'u') => {
                    out.push(c);
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                }
                _ => out.push_str("\\\\"),
            },
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// A field as text: strings as they are, numbers and booleans as JSON writes them; empty
/// strings (what Handlebars renders for a missing value) are absent.
fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    match object.get(key)? {
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.trim())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// A text field looked up without regard to case (the plugin's keys are whatever the
/// template says); empty is absent.
fn field_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A Jellyfin item id in the form Jellyfin's REST API and socket use: 32 lowercase hex
/// digits, the dashes of the plugin's `{{ItemId}}` (D format) removed.
pub fn normalize_item_id(raw: &str) -> Option<String> {
    let id: String = raw
        .trim()
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then_some(id)
}

/// The Jellyfin item types that are videos with subtitles.
const JELLYFIN_VIDEO_TYPES: &[&str] = &["Movie", "Episode", "Video"];

fn parse_jellyfin(object: &Map<String, Value>) -> Result<Parsed, PayloadError> {
    let item_id = field_ci(object, "ItemId");
    let event = match field_ci(object, "NotificationType") {
        Some(event) => event.to_owned(),
        // A template without the type, sent for ItemAdded only, still names an item.
        None if item_id.is_some() => "ItemAdded".to_owned(),
        None => {
            return Err(PayloadError::NoEvent {
                field: "NotificationType",
                sender: "Jellyfin Webhook plugin",
            });
        }
    };
    if !event.eq_ignore_ascii_case("ItemAdded") {
        return Ok(Parsed::Ignored {
            reason: format!("{event} names no new video (only ItemAdded does)"),
            event,
        });
    }
    if let Some(kind) = field_ci(object, "ItemType")
        && !JELLYFIN_VIDEO_TYPES
            .iter()
            .any(|t| t.eq_ignore_ascii_case(kind))
    {
        return Ok(Parsed::Ignored {
            reason: format!("item type {kind} is not a movie or an episode"),
            event,
        });
    }
    let Some(raw) = item_id else {
        return Err(PayloadError::Incomplete(
            "ItemAdded without ItemId: the template must send \"ItemId\": \"{{ItemId}}\""
                .to_owned(),
        ));
    };
    let Some(id) = normalize_item_id(raw) else {
        return Err(PayloadError::Incomplete(format!(
            "ItemId {raw:?} is not a Jellyfin item id (32 hex digits, dashes allowed)"
        )));
    };
    Ok(Parsed::Videos {
        event,
        targets: vec![Target::JellyfinItem(id)],
        upgrade: None,
    })
}

fn event_type(object: &Map<String, Value>, sender: &'static str) -> Result<String, PayloadError> {
    text(object, "eventType")
        .map(|e| e.into_owned())
        .ok_or(PayloadError::NoEvent {
            field: "eventType",
            sender,
        })
}

/// A file's path: its own `path`, else `folder` joined with its `relativePath`.
fn file_path(file: &Value, folder: Option<&str>) -> Option<PathBuf> {
    let file = file.as_object()?;
    if let Some(path) = text(file, "path") {
        return Some(PathBuf::from(path.as_ref()));
    }
    let relative = text(file, "relativePath")?;
    Some(PathBuf::from(folder?).join(relative.as_ref()))
}

fn push_unique(targets: &mut Vec<Target>, path: PathBuf) {
    let target = Target::Path(path);
    if !targets.contains(&target) {
        targets.push(target);
    }
}

fn upgrade(object: &Map<String, Value>) -> Option<bool> {
    object.get("isUpgrade").and_then(Value::as_bool)
}

fn other_event(event: String) -> Parsed {
    Parsed::Ignored {
        reason: format!("{event} names no new video (only Download does)"),
        event,
    }
}

/// The fields of a Sonarr or Radarr payload that name the event or a file: each, when
/// present, must be a string (a number or an object there is not their payload).
const TEXT_FIELDS: &[(&str, &[&str])] = &[
    ("", &["eventType"]),
    ("episodeFile", &["path", "relativePath"]),
    ("episodeFiles", &["path", "relativePath"]),
    ("series", &["path"]),
    ("movie", &["folderPath", "filePath"]),
    ("movieFile", &["path", "relativePath"]),
];

/// Refuses a payload whose event or file fields have the wrong JSON type.
fn check_text_fields(object: &Map<String, Value>) -> Result<(), PayloadError> {
    for (parent, keys) in TEXT_FIELDS {
        let holders: Vec<&Map<String, Value>> = match *parent {
            "" => vec![object],
            parent => match object.get(parent) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(holder)) => vec![holder],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_object).collect(),
                Some(other) => {
                    return Err(PayloadError::Incomplete(format!(
                        "{parent} must be an object, not {other}"
                    )));
                }
            },
        };
        for holder in holders {
            for key in *keys {
                match holder.get(*key) {
                    None | Some(Value::Null | Value::String(_)) => {}
                    Some(other) => {
                        let name = if parent.is_empty() {
                            (*key).to_owned()
                        } else {
                            format!("{parent}.{key}")
                        };
                        return Err(PayloadError::Incomplete(format!(
                            "{name} must be a string, not {other}"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn parse_sonarr(object: &Map<String, Value>) -> Result<Parsed, PayloadError> {
    check_text_fields(object)?;
    let event = event_type(object, "Sonarr")?;
    if event.eq_ignore_ascii_case("Test") {
        return Ok(Parsed::Test);
    }
    if !event.eq_ignore_ascii_case("Download") {
        return Ok(other_event(event));
    }
    let folder = object
        .get("series")
        .and_then(Value::as_object)
        .and_then(|series| text(series, "path"));
    let mut targets = Vec::new();
    let files = object.get("episodeFile").into_iter().chain(
        object
            .get("episodeFiles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    );
    for file in files {
        if let Some(path) = file_path(file, folder.as_deref()) {
            push_unique(&mut targets, path);
        }
    }
    if targets.is_empty() {
        return Err(PayloadError::Incomplete(
            "a Sonarr Download needs episodeFile or episodeFiles[] with a path (or \
             series.path and a relativePath)"
                .to_owned(),
        ));
    }
    Ok(Parsed::Videos {
        event,
        targets,
        upgrade: upgrade(object),
    })
}

fn parse_radarr(object: &Map<String, Value>) -> Result<Parsed, PayloadError> {
    check_text_fields(object)?;
    let event = event_type(object, "Radarr")?;
    if event.eq_ignore_ascii_case("Test") {
        return Ok(Parsed::Test);
    }
    if !event.eq_ignore_ascii_case("Download") {
        return Ok(other_event(event));
    }
    let movie = object.get("movie").and_then(Value::as_object);
    let folder = movie.and_then(|movie| text(movie, "folderPath"));
    let path = object
        .get("movieFile")
        .and_then(|file| file_path(file, folder.as_deref()))
        // Radarr never fills `movie.filePath`, but a sender that does names the file.
        .or_else(|| {
            movie
                .and_then(|m| text(m, "filePath"))
                .map(|p| PathBuf::from(p.as_ref()))
        });
    let Some(path) = path else {
        return Err(PayloadError::Incomplete(
            "a Radarr Download needs movieFile.path (or movie.folderPath and \
             movieFile.relativePath)"
                .to_owned(),
        ));
    };
    Ok(Parsed::Videos {
        event,
        targets: vec![Target::Path(path)],
        upgrade: upgrade(object),
    })
}

/// One video of a payload that became jobs.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptedFile {
    /// As the payload named it (a path before `[[path_mappings]]`, or an item id).
    pub target: String,
    /// The video's real path (the job key).
    pub path: PathBuf,
    /// One job per language: new, or the unfinished one already there.
    pub jobs: Vec<cuewarden_actors::job_manager::JobSummary>,
}

/// One video of a payload that was not taken, and why.
#[derive(Debug, Clone, Serialize)]
pub struct IgnoredFile {
    /// As the payload named it.
    pub target: String,
    /// A stable code (`path_outside_library`, `unknown_jellyfin_item`, …).
    pub code: &'static str,
    /// Why, for people.
    pub reason: String,
}

/// The answer to a webhook that was understood.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Who sent it.
    pub sender: Sender,
    /// Its event (`Download`, `ItemAdded`, `Test`, …).
    pub event: String,
    /// `isUpgrade`, when the payload has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<bool>,
    /// The videos that are jobs now.
    pub accepted: Vec<AcceptedFile>,
    /// The videos that were not taken (outside every library, unknown item, …).
    pub ignored: Vec<IgnoredFile>,
    /// What happened, for people.
    pub message: String,
}

/// A failure the sender may fix by sending again later (Jellyfin unreachable, the daemon
/// shutting down, the store failing or full): the webhook is answered with an error.
#[derive(Debug)]
pub struct Transient(pub IntakeError);

/// Whether an intake refusal is for good (the payload names something this daemon will
/// never take: answered 2xx with the reason, shown on the source's health).
fn permanent(err: &IntakeError) -> Option<&'static str> {
    match err {
        IntakeError::Path(path) => Some(path.code()),
        IntakeError::JellyfinNotConfigured => Some("jellyfin_not_configured"),
        IntakeError::Jellyfin(JellyfinError::UnknownItem(_)) => Some("unknown_jellyfin_item"),
        _ => None,
    }
}

/// Hands every video of a parsed payload to the intake (at once: a season pack's files
/// commit together) and answers once their jobs are durable.
pub async fn deliver(
    intake: &Intake,
    status: Option<&SourceStatus>,
    sender: Sender,
    parsed: Parsed,
) -> Result<Outcome, Transient> {
    if let Some(status) = status {
        status.message();
    }
    let (event, targets, upgrade) = match parsed {
        Parsed::Test => {
            tracing::info!(sender = sender.as_str(), "webhook test received");
            return Ok(Outcome {
                sender,
                event: "Test".to_owned(),
                upgrade: None,
                accepted: Vec::new(),
                ignored: Vec::new(),
                message: "test received: cuewarden is reachable and the key is right".to_owned(),
            });
        }
        Parsed::Ignored { event, reason } => {
            tracing::info!(sender = sender.as_str(), %event, "webhook ignored: {reason}");
            return Ok(Outcome {
                sender,
                event,
                upgrade: None,
                accepted: Vec::new(),
                ignored: Vec::new(),
                message: format!("nothing to do: {reason}"),
            });
        }
        Parsed::Videos {
            event,
            targets,
            upgrade,
        } => (event, targets, upgrade),
    };
    let submissions = targets.into_iter().map(|target| async move {
        let named = target.to_string();
        let result = intake
            .submit(Detection::new(target, EventSource::Webhook))
            .await;
        (named, result)
    });
    let results: Vec<(String, Result<Submitted, IntakeError>)> =
        futures_util::future::join_all(submissions).await;
    let mut accepted = Vec::new();
    let mut ignored = Vec::new();
    let mut transient = None;
    for (target, result) in results {
        if let Some(status) = status {
            status.record(&target, &result);
        }
        match result {
            Ok(submitted) => accepted.push(AcceptedFile {
                target,
                path: submitted.path,
                jobs: submitted.jobs,
            }),
            Err(err) => match permanent(&err) {
                Some(code) => {
                    tracing::info!(
                        sender = sender.as_str(),
                        %event,
                        %target,
                        "webhook video not taken: {err}"
                    );
                    ignored.push(IgnoredFile {
                        target,
                        code,
                        reason: err.to_string(),
                    });
                }
                None => {
                    tracing::warn!(
                        sender = sender.as_str(),
                        %event,
                        %target,
                        "webhook video not submitted: {err}"
                    );
                    transient.get_or_insert(err);
                }
            },
        }
    }
    if let Some(err) = transient {
        return Err(Transient(err));
    }
    let message = match (accepted.len(), ignored.len()) {
        (_, 0) => format!("{} video(s) accepted", accepted.len()),
        (0, _) => format!(
            "no video taken: {}; sending it again will not help",
            ignored
                .iter()
                .map(|i| i.reason.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        (a, i) => format!("{a} video(s) accepted, {i} not taken (see ignored)"),
    };
    Ok(Outcome {
        sender,
        event,
        upgrade,
        accepted,
        ignored,
        message,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SONARR_DOWNLOAD: &str = include_str!("../../tests/fixtures/sonarr_download.json");
    const SONARR_TEST: &str = include_str!("../../tests/fixtures/sonarr_test.json");
    const RADARR_DOWNLOAD: &str = include_str!("../../tests/fixtures/radarr_download.json");
    const RADARR_TEST: &str = include_str!("../../tests/fixtures/radarr_test.json");
    const JELLYFIN_ITEM_ADDED: &str =
        include_str!("../../tests/fixtures/jellyfin_webhook_itemadded.json");

    fn path(p: &str) -> Target {
        Target::Path(PathBuf::from(p))
    }

    fn videos(parsed: Parsed) -> (String, Vec<Target>, Option<bool>) {
        match parsed {
            Parsed::Videos {
                event,
                targets,
                upgrade,
            } => (event, targets, upgrade),
            other => panic!("expected videos, got {other:?}"),
        }
    }

    #[test]
    fn sonarr_download_with_one_episode_file() {
        let (event, targets, upgrade) =
            videos(parse(Sender::Sonarr, SONARR_DOWNLOAD.as_bytes()).unwrap());
        assert_eq!(event, "Download");
        assert_eq!(
            targets,
            [path(
                "/media/tv/Northern Relay/Season 02/Northern Relay - S02E05 - Static Bloom WEBDL-1080p.mkv"
            )]
        );
        assert_eq!(upgrade, Some(false));
    }

    #[test]
    fn sonarr_import_complete_with_episode_files_and_relative_paths() {
        let mut value: Value = serde_json::from_str(SONARR_DOWNLOAD).unwrap();
        let object = value.as_object_mut().unwrap();
        let file = object.remove("episodeFile").unwrap();
        object.remove("isUpgrade");
        let mut relative_only = file.clone();
        relative_only.as_object_mut().unwrap().remove("path");
        relative_only["relativePath"] = json!("Season 02/E06.mkv");
        object.insert("episodeFiles".into(), json!([file, relative_only, file]));
        let (_, targets, upgrade) =
            videos(parse(Sender::Sonarr, value.to_string().as_bytes()).unwrap());
        assert_eq!(
            targets,
            [
                path(
                    "/media/tv/Northern Relay/Season 02/Northern Relay - S02E05 - Static Bloom WEBDL-1080p.mkv"
                ),
                path("/media/tv/Northern Relay/Season 02/E06.mkv"),
            ],
            "each file once; a relativePath joins series.path"
        );
        assert_eq!(upgrade, None);
    }

    #[test]
    fn radarr_download_from_the_path_or_the_folder_and_relative_path() {
        let (event, targets, upgrade) =
            videos(parse(Sender::Radarr, RADARR_DOWNLOAD.as_bytes()).unwrap());
        assert_eq!(event, "Download");
        let expected =
            path("/media/movies/The Quiet Harbor (2021)/The Quiet Harbor (2021) Bluray-1080p.mkv");
        assert_eq!(targets, std::slice::from_ref(&expected));
        assert!(upgrade.is_some());

        let mut value: Value = serde_json::from_str(RADARR_DOWNLOAD).unwrap();
        value["movieFile"].as_object_mut().unwrap().remove("path");
        let (_, targets, _) = videos(parse(Sender::Radarr, value.to_string().as_bytes()).unwrap());
        assert_eq!(targets, [expected]);
    }

    #[test]
    fn test_events_create_nothing() {
        assert_eq!(
            parse(Sender::Sonarr, SONARR_TEST.as_bytes()).unwrap(),
            Parsed::Test
        );
        assert_eq!(
            parse(Sender::Radarr, RADARR_TEST.as_bytes()).unwrap(),
            Parsed::Test
        );
    }

    #[test]
    fn other_events_and_unknown_fields_are_tolerated() {
        for wrong in [
            json!({"eventType": 123}),
            json!({"eventType": "Download", "episodeFile": {"path": 123}}),
            json!({"eventType": "Download", "episodeFiles": [{"path": "/a.mkv"}, {"relativePath": {}}]}),
            json!({"eventType": "Download", "series": "x"}),
        ] {
            let body = wrong.to_string();
            assert!(
                matches!(
                    parse(Sender::Sonarr, body.as_bytes()),
                    Err(PayloadError::Incomplete(_))
                ),
                "{body}"
            );
        }
        let wrong = json!({"eventType": "Download", "movieFile": {"path": 1}}).to_string();
        assert!(matches!(
            parse(Sender::Radarr, wrong.as_bytes()),
            Err(PayloadError::Incomplete(_))
        ));
        let grab = json!({"eventType": "Grab", "series": {"path": "/x"}, "whatever": [1, 2]});
        assert!(matches!(
            parse(Sender::Sonarr, grab.to_string().as_bytes()).unwrap(),
            Parsed::Ignored { event, .. } if event == "Grab"
        ));
        let future = json!({"eventType": "SomethingNew2030", "movie": {}});
        assert!(matches!(
            parse(Sender::Radarr, future.to_string().as_bytes()).unwrap(),
            Parsed::Ignored { .. }
        ));
        let playback = json!({"NotificationType": "PlaybackStart", "ItemId": "x"});
        assert!(matches!(
            parse(Sender::Jellyfin, playback.to_string().as_bytes()).unwrap(),
            Parsed::Ignored { event, .. } if event == "PlaybackStart"
        ));
        let mut value: Value = serde_json::from_str(SONARR_DOWNLOAD).unwrap();
        value["extraFieldFromV5"] = json!({"nested": true});
        value["series"]["malIds"] = json!([1]);
        assert!(matches!(
            parse(Sender::Sonarr, value.to_string().as_bytes()).unwrap(),
            Parsed::Videos { .. }
        ));
    }

    #[test]
    fn jellyfin_item_added_names_the_item_without_dashes() {
        let (event, targets, _) =
            videos(parse(Sender::Jellyfin, JELLYFIN_ITEM_ADDED.as_bytes()).unwrap());
        assert_eq!(event, "ItemAdded");
        assert_eq!(
            targets,
            [Target::JellyfinItem(
                "e5d4c3b2a1f04e9d8c7b6a5f4e3d2c1b".to_owned()
            )]
        );
        let season = json!({"NotificationType": "ItemAdded", "ItemType": "Season",
                            "ItemId": "e5d4c3b2a1f04e9d8c7b6a5f4e3d2c1b"});
        assert!(matches!(
            parse(Sender::Jellyfin, season.to_string().as_bytes()).unwrap(),
            Parsed::Ignored { .. }
        ));
    }

    #[test]
    fn a_jellyfin_body_broken_by_the_plugins_escaping_is_repaired() {
        let broken = "{\"NotificationType\": \"ItemAdded\", \"ItemType\": \"Movie\",\n\
                      \"Overview\": \"Line one\nC:\\temp and \\q \u{1}\",\n\
                      \"ItemId\": \"E5D4C3B2-A1F0-4E9D-8C7B-6A5F4E3D2C1B\"}";
        assert!(serde_json::from_str::<Value>(broken).is_err());
        let (_, targets, _) = videos(parse(Sender::Jellyfin, broken.as_bytes()).unwrap());
        assert_eq!(
            targets,
            [Target::JellyfinItem(
                "e5d4c3b2a1f04e9d8c7b6a5f4e3d2c1b".to_owned()
            )]
        );
    }

    #[test]
    fn malformed_and_incomplete_payloads_are_refused_precisely() {
        for sender in [Sender::Jellyfin, Sender::Sonarr, Sender::Radarr] {
            assert!(matches!(
                parse(sender, b"{not json"),
                Err(PayloadError::NotJson(_))
            ));
            assert_eq!(parse(sender, b"[1, 2]"), Err(PayloadError::NotAnObject));
        }
        assert!(matches!(
            parse(Sender::Sonarr, b"{\"series\": {}}"),
            Err(PayloadError::NoEvent {
                field: "eventType",
                ..
            })
        ));
        assert!(matches!(
            parse(
                Sender::Sonarr,
                b"{\"eventType\": \"Download\", \"series\": {}}"
            ),
            Err(PayloadError::Incomplete(_))
        ));
        assert!(matches!(
            parse(Sender::Radarr, b"{\"eventType\": \"Download\"}"),
            Err(PayloadError::Incomplete(_))
        ));
        assert!(matches!(
            parse(
                Sender::Jellyfin,
                b"{\"NotificationType\": \"ItemAdded\", \"ItemId\": \"\"}"
            ),
            Err(PayloadError::Incomplete(_))
        ));
        assert!(matches!(
            parse(
                Sender::Jellyfin,
                b"{\"NotificationType\": \"ItemAdded\", \"ItemId\": \"12-zz\"}"
            ),
            Err(PayloadError::Incomplete(_))
        ));
    }

    #[test]
    fn item_ids_are_normalized_to_jellyfins_n_format() {
        assert_eq!(
            normalize_item_id("6213B704-A0D9-5429-3110-F4D561B0F614").as_deref(),
            Some("6213b704a0d954293110f4d561b0f614")
        );
        assert_eq!(
            normalize_item_id("{6213b704-a0d9-5429-3110-f4d561b0f614}").as_deref(),
            Some("6213b704a0d954293110f4d561b0f614")
        );
        assert_eq!(normalize_item_id("6213b704"), None);
    }

    use serde_json::json;
}
