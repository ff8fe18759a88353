//! `/jobs/{id}/candidates`, `/jobs/{id}/choose`, `/jobs/{id}/reject`, `/jobs/{id}/blacklist`:
//! a user's hand in a job's subtitle (README, "Choosing, rejecting, upgrading").

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use cuewarden_actors::job_manager::{
    ChooseCandidate, ClearBlacklist, ListCandidates, ManualError, RejectSubtitle,
    blacklist_entry_json, provenance_json,
};
use cuewarden_actors::store::Provenance;
use serde::Deserialize;

use super::auth::Authorized;
use super::input::{NoBody, NoQuery};
use super::jobs::{load_job, manager_error, resolve_id};
use super::{ApiError, AppState};

/// Body of `POST /jobs/{id}/choose`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChooseBody {
    provider: String,
    id: String,
}

/// A provenance record as `GET /jobs/{id}` shows it under `subtitle`.
pub fn provenance_view(record: &Provenance) -> serde_json::Value {
    provenance_json(record)
}

fn manual_error(err: ManualError) -> ApiError {
    match err {
        ManualError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
        ManualError::UnknownCandidate(message) => {
            ApiError::new(StatusCode::NOT_FOUND, "unknown_candidate", message)
        }
        ManualError::Unusable(message) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unusable_candidate",
            message,
        ),
        ManualError::Provider(message) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", message)
        }
        ManualError::Manager(err) => manager_error(err),
    }
}

/// `GET /jobs/{id}/candidates`. A `HEAD` only says whether the job exists: it searches
/// nothing, so a monitoring probe spends no provider's rate limit or quota.
pub async fn candidates(
    _: Authorized,
    _: NoQuery,
    request: actix_web::HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, resolve_id(&state, &id).await?).await?;
    if request.method() == actix_web::http::Method::HEAD {
        return Ok(HttpResponse::Ok().content_type("application/json").finish());
    }
    let answer = state
        .manager
        .send(ListCandidates(job))
        .await?
        .map_err(manual_error)?;
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /jobs/{id}/choose`
pub async fn choose(
    _: Authorized,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<ChooseBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.provider.trim().is_empty() || body.id.trim().is_empty() {
        return Err(ApiError::bad_request(
            "give the candidate's provider and id, as GET /api/v1/jobs/{id}/candidates lists them",
        ));
    }
    let job = load_job(&state, resolve_id(&state, &id).await?).await?;
    let answer = state
        .manager
        .send(ChooseCandidate {
            job,
            provider: body.provider,
            id: body.id,
        })
        .await?
        .map_err(manual_error)?;
    Ok(HttpResponse::Ok().json(answer))
}

/// `POST /jobs/{id}/reject`: no body or `{}`.
pub async fn reject(
    _: Authorized,
    _: NoBody,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, resolve_id(&state, &id).await?).await?;
    let answer = state
        .manager
        .send(RejectSubtitle(job))
        .await?
        .map_err(manual_error)?;
    Ok(HttpResponse::Accepted().json(answer))
}

/// `GET /jobs/{id}/blacklist`: the subtitles rejected for the job's video and language.
pub async fn blacklist(
    _: Authorized,
    _: NoQuery,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, resolve_id(&state, &id).await?).await?;
    let store = state.store.clone();
    let video = job.path.clone();
    let entries = web::block(move || store.blacklist_for(&video)).await??;
    let entries: Vec<_> = entries
        .iter()
        .filter(|e| e.language == job.language)
        .map(blacklist_entry_json)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "job_id": job.id,
        "language": job.language,
        "path": job.path,
        "count": entries.len(),
        "entries": entries,
    })))
}

/// `DELETE /jobs/{id}/blacklist` (no body or `{}`): clears those entries → 200 with how many.
pub async fn clear_blacklist(
    _: Authorized,
    _: NoBody,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = load_job(&state, resolve_id(&state, &id).await?).await?;
    let answer = state
        .manager
        .send(ClearBlacklist(job))
        .await?
        .map_err(manual_error)?;
    Ok(HttpResponse::Ok().json(answer))
}
