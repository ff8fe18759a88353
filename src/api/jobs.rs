//! `/subtitles` and `/jobs`: submit requests, list, inspect, retry and cancel jobs.

use std::path::{Path, PathBuf};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use cuewarden_actors::files::library_of;
use cuewarden_actors::job_manager::{
    CancelJob, JobSummary, ManagerError, NewRequest, RequestSubtitles, RetryJob,
};
use cuewarden_actors::store::error_chain;
use cuewarden_actors::time::format_rfc3339;
use cuewarden_actors::{Event, EventSource, Job, JobId, JobStatus, Language, MediaItem};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Authorized;
use super::{ApiError, AppState};

/// Most jobs one page may hold.
pub const MAX_PAGE: usize = 500;
/// Jobs per page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 50;

/// Body of `POST /subtitles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubtitleRequest {
    path: Option<String>,
    jellyfin_item_id: Option<String>,
    languages: Option<Vec<String>>,
    auto_translate: Option<bool>,
}

/// A job as the API shows it.
#[derive(Debug, Serialize)]
pub struct JobView {
    id: JobId,
    status: JobStatus,
    language: Language,
    path: PathBuf,
    priority: &'static str,
    attempts: u32,
    error: Option<String>,
    output_path: Option<PathBuf>,
    created_at: String,
    updated_at: String,
    origin: EventSource,
    auto_translate: bool,
    jellyfin_item_id: Option<String>,
    retry_at: Option<String>,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            status: job.status,
            language: job.language,
            path: job.path,
            priority: job.priority.as_str(),
            attempts: job.attempts,
            error: job.error,
            output_path: job.output_path,
            created_at: format_rfc3339(job.created_at_ms),
            updated_at: format_rfc3339(job.updated_at_ms),
            origin: job.origin,
            auto_translate: job.auto_translate,
            jellyfin_item_id: job.jellyfin_item_id,
            retry_at: job
                .wake_at_ms
                .filter(|_| job.status == JobStatus::Waiting)
                .map(format_rfc3339),
        }
    }
}

/// An event as the API shows it.
pub fn event_view(event: &Event) -> serde_json::Value {
    json!({
        "seq": event.seq,
        "job_id": event.job_id,
        "type": event.kind,
        "at": format_rfc3339(event.at_ms),
        "source": event.source,
        "payload": event.payload,
    })
}

fn manager_error(err: ManagerError) -> ApiError {
    match err {
        ManagerError::ShuttingDown => ApiError::unavailable(err.to_string()),
        ManagerError::Conflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
        }
        ManagerError::Store(source) => ApiError::internal(error_chain(&source)),
        ManagerError::StorageFull(_) => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            error_chain(&err),
        ),
    }
}

fn parse_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no job with id {raw:?}")))
}

fn outside_library(path: &Path) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "path_outside_library",
        format!("{} is outside every configured library", path.display()),
    )
}

/// What the file system says about a requested video.
enum VideoCheck {
    /// Its real path (symlinks resolved), which is what jobs are keyed by.
    Inside(PathBuf),
    Outside,
    NotFound,
    NotAFile,
    Unreadable(std::io::Error),
}

/// Checks a requested video: an absolute path, inside a library (lexically, or through
/// symlinks: a library may itself be a symlink), naming an existing file. A path outside
/// every library is refused whether or not it exists. Returns the real path, so that two
/// spellings of one file (through a symlink) are one video with one job per language.
async fn check_library_path(state: &AppState, path: PathBuf) -> Result<PathBuf, ApiError> {
    let unprocessable =
        |code, message: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
    if !path.is_absolute() {
        return Err(unprocessable(
            "path_not_absolute",
            format!("{} is not an absolute path", path.display()),
        ));
    }
    // The lexical form only decides whether a path that does not exist was meant to be in a
    // library; the file system is asked about the path as given (`link/../x` is resolved by
    // the kernel, through the link).
    let normalized = cuewarden_actors::files::normalize_lexically(&path);
    let libraries = state.libraries.clone();
    let candidate = path.clone();
    let check = web::block(move || {
        let lexically_inside = library_of(&normalized, &libraries).is_some();
        match std::fs::metadata(&candidate) {
            Err(_) if !lexically_inside => VideoCheck::Outside,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => VideoCheck::NotFound,
            Err(err) => VideoCheck::Unreadable(err),
            Ok(meta) => {
                let real = candidate.canonicalize();
                let inside = real.as_ref().is_ok_and(|real| {
                    libraries
                        .iter()
                        .filter_map(|root| root.canonicalize().ok())
                        .any(|root| real.starts_with(root))
                });
                match (real, inside, meta.is_file()) {
                    (Ok(real), true, true) => VideoCheck::Inside(real),
                    (_, true, false) => VideoCheck::NotAFile,
                    _ => VideoCheck::Outside,
                }
            }
        }
    })
    .await?;
    match check {
        VideoCheck::Inside(real) => Ok(real),
        VideoCheck::Outside => Err(outside_library(&path)),
        VideoCheck::NotFound => Err(unprocessable(
            "video_not_found",
            format!("{} does not exist", path.display()),
        )),
        VideoCheck::NotAFile => Err(unprocessable(
            "not_a_file",
            format!("{} is not a video file", path.display()),
        )),
        VideoCheck::Unreadable(err) => Err(unprocessable(
            "video_unreadable",
            format!("cannot read {}: {err}", path.display()),
        )),
    }
}

/// `POST /subtitles`
pub async fn request_subtitles(
    _: Authorized,
    state: web::Data<AppState>,
    body: web::Json<SubtitleRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let languages = match body.languages {
        None => state.settings.languages.wanted.clone(),
        Some(codes) if codes.is_empty() => {
            return Err(ApiError::bad_request(
                "languages: name at least one language",
            ));
        }
        Some(codes) => {
            let mut out: Vec<Language> = Vec::new();
            for code in codes {
                let language = Language::parse(&code)
                    .map_err(|e| ApiError::bad_request(format!("languages: {e}")))?;
                if !out.contains(&language) {
                    out.push(language);
                }
            }
            out
        }
    };
    let auto_translate = body
        .auto_translate
        .unwrap_or(!state.settings.languages.translate_from.is_empty());
    let (path, jellyfin_item_id) = match (body.path, body.jellyfin_item_id) {
        (Some(path), None) if !path.trim().is_empty() => (PathBuf::from(path), None),
        (None, Some(id)) if !id.trim().is_empty() => {
            let Some(jellyfin) = &state.jellyfin else {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "jellyfin_not_configured",
                    "jellyfin_item_id needs a [jellyfin] section in the configuration",
                ));
            };
            let path = jellyfin.item_path(id.trim()).await?;
            (state.settings.map_path(&path), Some(id.trim().to_owned()))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either path or jellyfin_item_id, not both",
            ));
        }
        _ => return Err(ApiError::bad_request("give path or jellyfin_item_id")),
    };
    let path = check_library_path(&state, state.settings.map_path(&path)).await?;
    let request = NewRequest {
        media: MediaItem {
            path,
            jellyfin_item_id,
        },
        languages,
        auto_translate,
        source: EventSource::Api,
        priority: EventSource::Api.default_priority(),
    };
    let jobs: Vec<JobSummary> = state
        .manager
        .send(RequestSubtitles(request))
        .await?
        .map_err(manager_error)?;
    Ok(HttpResponse::Accepted().json(json!({ "jobs": jobs })))
}

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    apikey: Option<String>,
}

/// `GET /jobs`
pub async fn list_jobs(
    _: Authorized,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let _ = query.apikey;
    let status = query
        .status
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<JobStatus>().map_err(ApiError::bad_request))
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = query
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<JobId>()
                .map_err(|_| ApiError::bad_request(format!("cursor: {c:?} is not a job id")))
        })
        .transpose()?;
    let store = state.store.clone();
    let page = web::block(move || store.list_jobs(status, limit, cursor)).await??;
    let jobs: Vec<JobView> = page.jobs.into_iter().map(JobView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "jobs": jobs, "next_cursor": page.next_cursor })))
}

async fn load_job(state: &AppState, id: JobId) -> Result<Job, ApiError> {
    let store = state.store.clone();
    web::block(move || store.job(id))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))
}

/// `GET /jobs/{id}`
pub async fn get_job(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, parse_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(JobView::from(job)))
}

/// `GET /jobs/{id}/events`
pub async fn job_events(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    load_job(&state, id).await?;
    let store = state.store.clone();
    let events = web::block(move || store.job_events(id)).await??;
    let views: Vec<_> = events.iter().map(event_view).collect();
    Ok(HttpResponse::Ok().json(json!({
        "job_id": id,
        "event_count": views.len(),
        "events": views,
    })))
}

/// `POST /jobs/{id}/retry`
pub async fn retry_job(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, parse_id(&id)?).await?;
    let summary = state
        .manager
        .send(RetryJob(job))
        .await?
        .map_err(manager_error)?;
    Ok(HttpResponse::Accepted().json(summary))
}

/// `POST /jobs/{id}/cancel`
pub async fn cancel_job(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    if let Some(summary) = state
        .manager
        .send(CancelJob(id))
        .await?
        .map_err(manager_error)?
    {
        return Ok(HttpResponse::Ok().json(summary));
    }
    let job = load_job(&state, id).await?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!(
            "job {id} is {}: only unfinished jobs can be cancelled",
            job.status
        ),
    ))
}
