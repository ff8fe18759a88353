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
    /// A Jellyfin item the source looked up already: its id and its path as Jellyfin names
    /// it (before `[[path_mappings]]`).
    JellyfinItemAt {
        /// The item id.
        id: String,
        /// Its file, as Jellyfin sees it.
        path: PathBuf,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(path) => write!(f, "{}", path.display()),
            Self::JellyfinItem(id) => write!(f, "Jellyfin item {id}"),
            Self::JellyfinItemAt { id, path } => {
                write!(f, "{} (Jellyfin item {id})", path.display())
            }
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
    /// Languages the video already has as embedded subtitle tracks, when the source knows
    /// (Jellyfin's `MediaStreams`): a wanted language among them gets a `skipped` job.
    pub existing: Vec<Language>,
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
            existing: Vec::new(),
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

/// The library rule for one path (blocking): mapped, resolved to a real video inside a
/// library, with its languages (the detection's, else its library's or `wanted`).
fn check_path(
    rules: &IntakeRules,
    path: &std::path::Path,
    languages: Option<Vec<Language>>,
) -> Result<(PathBuf, Vec<Language>), PathError> {
    let mapped = map_path(&rules.path_mappings, path);
    let real = rules.libraries.resolve_video(&mapped)?;
    let languages = match languages {
        Some(languages) => languages,
        None => rules.libraries.languages_for(&real, &rules.wanted),
    };
    Ok((real, languages))
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

    /// The same intake, with the store a source keeps its own small state in (a session
    /// token, how far it has caught up): see [`Intake::store`].
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// The store, for a source's own settings (`Store::state_as`, `Change::PutState`);
    /// `None` in an intake built without one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Jellyfin's REST client, when `[jellyfin]` is configured.
    pub fn jellyfin(&self) -> Option<&JellyfinClient> {
        self.jellyfin.as_ref()
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
        let (path, jellyfin_item_id) = match &detection.target {
            Target::Path(path) => (path.clone(), None),
            Target::JellyfinItemAt { id, path } => (path.clone(), Some(id.clone())),
            Target::JellyfinItem(id) => {
                let jellyfin = self
                    .jellyfin
                    .as_ref()
                    .ok_or(IntakeError::JellyfinNotConfigured)?;
                (jellyfin.item_path(id).await?, Some(id.clone()))
            }
        };
        let rules = self.rules.clone();
        let languages = detection.languages.clone();
        let (real, languages) =
            tokio::task::spawn_blocking(move || check_path(&rules, &path, languages))
                .await
                .map_err(|err| IntakeError::Blocking(err.to_string()))??;
        Ok(self.request(detection, real, languages, jellyfin_item_id))
    }

    fn request(
        &self,
        detection: Detection,
        real: PathBuf,
        languages: Vec<Language>,
        jellyfin_item_id: Option<String>,
    ) -> NewRequest {
        NewRequest {
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
            existing: detection.existing,
        }
    }

    /// Submits many detections of known paths at once: their path checks run in one
    /// blocking call, their requests concurrently (so their commits share a group commit).
    /// One answer per detection, in order. A detection by bare item id goes through
    /// [`submit`](Self::submit).
    pub async fn submit_all(
        &self,
        detections: Vec<Detection>,
    ) -> Vec<Result<Submitted, IntakeError>> {
        let mut answers: Vec<Option<Result<Submitted, IntakeError>>> =
            detections.iter().map(|_| None).collect();
        let mut known = Vec::new();
        let mut by_id = Vec::new();
        for (n, detection) in detections.into_iter().enumerate() {
            match &detection.target {
                Target::Path(path) => known.push((n, path.clone(), None, detection)),
                Target::JellyfinItemAt { id, path } => {
                    known.push((n, path.clone(), Some(id.clone()), detection))
                }
                Target::JellyfinItem(_) => by_id.push((n, detection)),
            }
        }
        let rules = self.rules.clone();
        let inputs: Vec<(PathBuf, Option<Vec<Language>>)> = known
            .iter()
            .map(|(_, path, _, detection)| (path.clone(), detection.languages.clone()))
            .collect();
        let checked = tokio::task::spawn_blocking(move || {
            inputs
                .into_iter()
                .map(|(path, languages)| check_path(&rules, &path, languages))
                .collect::<Vec<_>>()
        })
        .await;
        let mut sends = Vec::new();
        match checked {
            Ok(checked) => {
                for ((n, _, item_id, detection), result) in known.into_iter().zip(checked) {
                    match result {
                        Ok((real, languages)) => {
                            sends.push((n, self.request(detection, real, languages, item_id)))
                        }
                        Err(err) => answers[n] = Some(Err(err.into())),
                    }
                }
            }
            Err(err) => {
                for (n, ..) in known {
                    answers[n] = Some(Err(IntakeError::Blocking(err.to_string())));
                }
            }
        }
        let sent = futures_util::future::join_all(sends.into_iter().map(|(n, request)| {
            let path = request.media.path.clone();
            let reply = self.manager.send(RequestSubtitles(request));
            async move {
                let jobs = reply.await.map_err(IntakeError::from).and_then(|r| Ok(r?));
                (n, jobs.map(|jobs| Submitted { path, jobs }))
            }
        }))
        .await;
        for (n, answer) in sent {
            answers[n] = Some(answer);
        }
        for (n, detection) in by_id {
            answers[n] = Some(self.submit(detection).await);
        }
        answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err(IntakeError::Blocking("no answer".into()))))
            .collect()
    }

    /// Checks a detection and submits it; answers once the new jobs are durable.
    pub async fn submit(&self, detection: Detection) -> Result<Submitted, IntakeError> {
        let request = self.prepare(detection).await?;
        let path = request.media.path.clone();
        let jobs = self.manager.send(RequestSubtitles(request)).await??;
        Ok(Submitted { path, jobs })
    }
}
