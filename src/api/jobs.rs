//! `/subtitles` and `/jobs`: submit requests, list, inspect, retry and cancel jobs.

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use cuewarden_actors::job_manager::{CancelJob, ManagerError, RetryJob};
use cuewarden_actors::store::error_chain;
use cuewarden_actors::time::format_rfc3339;
use cuewarden_actors::{Event, EventSource, Job, JobId, JobStatus, Language};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Authorized;
use super::input::{NoBody, NoQuery};
use super::{ApiError, AppState};
use crate::sources::{Detection, IntakeError, Target};

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
    /// What produced the subtitle written (`GET /jobs/{id}` only; `null` when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    subtitle: Option<serde_json::Value>,
    /// A notify job's target, event and items.
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<cuewarden_actors::notify::NotifyJob>,
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
            subtitle: None,
            notify: job.notify,
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

pub(super) fn manager_error(err: ManagerError) -> ApiError {
    match err {
        ManagerError::ShuttingDown => ApiError::unavailable(err.to_string()),
        ManagerError::Conflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
        }
        ManagerError::Store(source) if source.is_damage() => {
            ApiError::store_damaged(error_chain(&source))
        }
        ManagerError::Store(source) => ApiError::internal(error_chain(&source)),
        ManagerError::StorageFull(_) => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            error_chain(&err),
        ),
    }
}

/// Fewest hex digits an abbreviated id may have.
pub const MIN_ID_ABBREVIATION: usize = 4;

/// The job a path segment names: a whole id, or a unique abbreviation of one (its start or
/// its end, at least [`MIN_ID_ABBREVIATION`] hex digits; the web page shows the last 8).
pub(super) async fn resolve_id(state: &AppState, raw: &str) -> Result<JobId, ApiError> {
    if let Ok(id) = raw.parse::<JobId>() {
        return Ok(id);
    }
    let digits = raw.chars().filter(|c| *c != '-').count();
    let not_found = || ApiError::not_found(format!("no job with id {raw:?}"));
    if !raw.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    if digits < MIN_ID_ABBREVIATION {
        return Err(ApiError::not_found(format!(
            "no job with id {raw:?}: give the whole id, or at least {MIN_ID_ABBREVIATION} \
             characters of its start or its end"
        )));
    }
    let store = state.store.clone();
    let fragment = raw.to_owned();
    let found = web::block(move || store.jobs_matching(&fragment, 2)).await??;
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(not_found()),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ambiguous_id",
            format!("{raw:?} is the start or end of more than one job id; give more of it"),
        )),
    }
}

/// How an intake refusal reads in the API.
pub fn intake_error(err: IntakeError) -> ApiError {
    match err {
        IntakeError::Path(err) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            err.code(),
            err.to_string(),
        ),
        IntakeError::JellyfinNotConfigured => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "jellyfin_not_configured",
            err.to_string(),
        ),
        IntakeError::Jellyfin(err) => err.into(),
        IntakeError::Manager(err) => manager_error(err),
        IntakeError::Mailbox(err) => err.into(),
        IntakeError::Blocking(message) => ApiError::internal(message),
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
        None => None,
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
            Some(out)
        }
    };
    let target = match (body.path, body.jellyfin_item_id) {
        (Some(path), None) if !path.trim().is_empty() => Target::Path(PathBuf::from(path)),
        (None, Some(id)) if !id.trim().is_empty() => Target::JellyfinItem(id.trim().to_owned()),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either path or jellyfin_item_id, not both",
            ));
        }
        _ => return Err(ApiError::bad_request("give path or jellyfin_item_id")),
    };
    let mut detection = Detection::new(target, EventSource::Api);
    detection.languages = languages;
    detection.auto_translate = body.auto_translate;
    let target = detection.target.to_string();
    let result = state.intake.submit(detection).await;
    if let Some(status) = state.sources.status(EventSource::Api) {
        status.message();
        status.record(&target, &result);
    }
    let submitted = result.map_err(intake_error)?;
    Ok(HttpResponse::Accepted().json(json!({ "path": submitted.path, "jobs": submitted.jobs })))
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

pub(super) async fn load_job(state: &AppState, id: JobId) -> Result<Job, ApiError> {
    let store = state.store.clone();
    web::block(move || store.job(id))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))
}

/// `GET /jobs/{id}`
pub async fn get_job(
    _: Authorized,
    _: NoQuery,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, resolve_id(&state, &id).await?).await?;
    let store = state.store.clone();
    let job_id = job.id;
    let provenance = web::block(move || store.provenance(job_id)).await??;
    let mut view = JobView::from(job);
    view.subtitle = Some(
        provenance
            .as_ref()
            .map_or(serde_json::Value::Null, super::manual::provenance_view),
    );
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /jobs/{id}/events`
pub async fn job_events(
    _: Authorized,
    _: NoQuery,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = resolve_id(&state, &id).await?;
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

/// `POST /jobs/{id}/retry`: no body or `{}`.
pub async fn retry_job(
    _: Authorized,
    _: NoBody,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, resolve_id(&state, &id).await?).await?;
    refuse_notify_job(&job)?;
    let summary = state
        .manager
        .send(RetryJob(job))
        .await?
        .map_err(manager_error)?;
    Ok(HttpResponse::Accepted().json(summary))
}

/// `POST /jobs/{id}/cancel`: no body or `{}`.
pub async fn cancel_job(
    _: Authorized,
    _: NoBody,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = resolve_id(&state, &id).await?;
    refuse_notify_job(&load_job(&state, id).await?)?;
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

/// Notify jobs retry by themselves (`[notify]` `max_attempts`): not through the API.
fn refuse_notify_job(job: &Job) -> Result<(), ApiError> {
    if job.notify.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "job {} is a notification: it is retried by itself and cannot be retried or \
                 cancelled",
                job.id
            ),
        ));
    }
    Ok(())
}
