//! The intake: the one place that turns a detection into the core's request.
//!
//! Every source calls [`Intake::submit`]. It resolves a Jellyfin item id to a path, applies
//! `[[path_mappings]]`, checks the path with the core's [`Libraries`] rule (absolute, inside
//! a library by its real path, an existing video file), picks the languages (the request's,
//! else the library's `languages`, else `[languages] wanted`) and the `auto_translate`
//! default, and sends [`RequestSubtitles`] to the JobManager, which answers once the jobs
//! are durable. Errors are typed so each source can answer in its own terms (the API maps
//! them to 422/502/503/507).

use std::path::PathBuf;

use actix::{Addr, MailboxError};
use cuewarden_actors::job_manager::{
    JobManager, JobSummary, ManagerError, NewRequest, RequestSubtitles,
};
use cuewarden_actors::library::PathError;
use cuewarden_actors::{EventSource, Language, Libraries, MediaItem, Priority, Store};

use crate::clients::jellyfin::{JellyfinClient, JellyfinError};
use crate::config::{PathMapping, map_path};

/// What a source detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A video path, as the source names it (before `[[path_mappings]]`).
    Path(PathBuf),
    /// A Jellyfin item id, looked up through Jellyfin's REST API.
    JellyfinItem(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => write!(f, "{}", path.display()),
            Self::JellyfinItem(id) => write!(f, "Jellyfin item {id}"),
        }
    }
}

/// A detection: a video, who saw it, and what it asks for.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The video.
    pub target: Target,
    /// The source, recorded on the job and its first event.
    pub origin: EventSource,
    /// Languages asked for; `None` for the library's or `[languages] wanted`.
    pub languages: Option<Vec<Language>>,
    /// Whether translation may stand in; `None` for the default (on when `translate_from`
    /// is set).
    pub auto_translate: Option<bool>,
    /// Queue priority; `None` for the origin's default.
    pub priority: Option<Priority>,
}

impl Detection {
    /// A detection of `target` by `origin` with every default.
    pub fn new(target: Target, origin: EventSource) -> Self {
        Self {
            target,
            origin,
            languages: None,
            auto_translate: None,
            priority: None,
        }
    }
}

/// What the intake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The video's real path (the job key).
    pub path: PathBuf,
    /// One job per language: new, or the unfinished one already there.
    pub jobs: Vec<JobSummary>,
}

/// Why a detection was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The path breaks the library rule (outside, missing, not a video…).
    #[error(transparent)]
    Path(#[from] PathError),
    /// An item id arrived but `[jellyfin]` is not configured.
    #[error("jellyfin_item_id needs a [jellyfin] section in the configuration")]
    JellyfinNotConfigured,
    /// Jellyfin could not resolve the item.
    #[error(transparent)]
    Jellyfin(#[from] JellyfinError),
    /// The JobManager refused (shutting down, store full or failing).
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// The JobManager did not answer.
    #[error("the job manager is not answering: {0}")]
    Mailbox(#[from] MailboxError),
    /// The blocking path check could not run.
    #[error("the path check did not run: {0}")]
    Blocking(String),
}

/// The rules every detection goes through, from the settings.
#[derive(Debug, Clone)]
pub struct IntakeRules {
    /// The libraries and their languages.
    pub libraries: Libraries,
    /// How other services name our folders.
    pub path_mappings: Vec<PathMapping>,
    /// `[languages] wanted`: the languages of a video whose library names none.
    pub wanted: Vec<Language>,
    /// Whether translation may stand in by default (`translate_from` is set).
    pub translate_by_default: bool,
}

/// The shared intake (cheap to clone: every source holds one).
#[derive(Clone)]
pub struct Intake {
    manager: Addr<JobManager>,
    rules: IntakeRules,
    jellyfin: Option<JellyfinClient>,
    store: Option<Store>,
}

impl Intake {
    /// An intake submitting to `manager`; item ids are looked up through `jellyfin`.
    pub fn new(
        manager: Addr<JobManager>,
        rules: IntakeRules,
        jellyfin: Option<JellyfinClient>,
    ) -> Self {
        Self {
            manager,
            rules,
            jellyfin,
            store: None,
        }
    }

    /// The same intake, giving sources the store for their own small state
    /// (`Store::state`, `Change::PutState`) and source-level events.
    pub fn with_store(self, store: Store) -> Self {
        Self {
            store: Some(store),
            ..self
        }
    }

    /// The store, for a source's own state and events.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// `path` as this daemon names it, after `[[path_mappings]]`.
    pub fn map_path(&self, path: &std::path::Path) -> PathBuf {
        map_path(&self.rules.path_mappings, path)
    }

    /// The libraries this intake checks against.
    pub fn libraries(&self) -> &Libraries {
        &self.rules.libraries
    }

    /// Resolves and checks a detection into the core's request, without submitting it.
    pub async fn prepare(&self, detection: Detection) -> Result<NewRequest, IntakeError> {
        let (path, jellyfin_item_id) = match detection.target {
            Target::Path(path) => (path, None),
            Target::JellyfinItem(id) => {
                let jellyfin = self
                    .jellyfin
                    .as_ref()
                    .ok_or(IntakeError::JellyfinNotConfigured)?;
                (jellyfin.item_path(&id).await?, Some(id))
            }
        };
        let mapped = map_path(&self.rules.path_mappings, &path);
        let libraries = self.rules.libraries.clone();
        let wanted = self.rules.wanted.clone();
        let languages = detection.languages;
        let (real, languages) = tokio::task::spawn_blocking(move || {
            let real = libraries.resolve_video(&mapped)?;
            let languages = match languages {
                Some(languages) => languages,
                None => libraries.languages_for(&real, &wanted),
            };
            Ok::<_, PathError>((real, languages))
        })
        .await
        .map_err(|err| IntakeError::Blocking(err.to_string()))??;
        Ok(NewRequest {
            media: MediaItem {
                path: real,
                jellyfin_item_id,
            },
            languages,
            auto_translate: detection
                .auto_translate
                .unwrap_or(self.rules.translate_by_default),
            source: detection.origin,
            priority: detection
                .priority
                .unwrap_or_else(|| detection.origin.default_priority()),
        })
    }

    /// Checks a detection and submits it; answers once the new jobs are durable.
    pub async fn submit(&self, detection: Detection) -> Result<Submitted, IntakeError> {
        let request = self.prepare(detection).await?;
        let path = request.media.path.clone();
        let jobs = self.manager.send(RequestSubtitles(request)).await??;
        Ok(Submitted { path, jobs })
    }
}
