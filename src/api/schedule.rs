//! `/schedule`: the periodic tasks, their last and next runs, and a run on demand.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::auth::Authorized;
use super::input::{NoBody, NoQuery};
use super::{ApiError, AppState};
use crate::schedule::RunAnswer;

/// `GET /schedule`
pub async fn list(
    _: Authorized,
    _: NoQuery,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.schedule.list()))
}

/// `POST /schedule/{task}/run`: 202 with the task once the run started. It takes no
/// parameters: no body or `{}`.
pub async fn run_now(
    _: Authorized,
    _: NoBody,
    state: web::Data<AppState>,
    task: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task = task.into_inner();
    // Every task writes its run into the store: a damaged one takes no writes.
    if let Some(cause) = state.store.damage() {
        return Err(ApiError::store_damaged(format!(
            "the store was found damaged while the daemon ran ({cause}); {task} is not started"
        )));
    }
    match state.schedule.run_now(&task).await {
        RunAnswer::Started => Ok(HttpResponse::Accepted().json(state.schedule.task(&task))),
        RunAnswer::AlreadyRunning => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_running",
            format!("{task} is running; it is not started twice"),
        )),
        RunAnswer::NotAvailable => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_available",
            format!("{task} has nothing to run in this build or configuration"),
        )),
        RunAnswer::Unknown => Err(ApiError::not_found(format!(
            "no scheduled task {task:?} (library_sync, wanted_retry, upgrade, cleanup)"
        ))),
        RunAnswer::NotRunning => Err(ApiError::unavailable("the scheduler is stopping")),
    }
}
