//! `/schedule`: the periodic tasks, their last and next runs, and a run on demand.

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, mime, web};
use serde::Deserialize;

use super::auth::Authorized;
use super::webhooks::read_body;
use super::{ApiError, AppState, json_error};
use crate::schedule::RunAnswer;

/// The body a route without parameters accepts besides none at all: `{}` (an object,
/// not `[]`, with no field).
struct NoFields;

impl<'de> Deserialize<'de> for NoFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NoFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an empty object: this route takes no parameters")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NoFields, A::Error> {
                match map.next_key::<String>()? {
                    Some(field) => Err(serde::de::Error::unknown_field(&field, &[])),
                    None => Ok(NoFields),
                }
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Refuses a body a route without parameters cannot mean: an empty body or `{}` passes;
/// anything else gets the error a JSON route gives for it (415 for a body that is not sent
/// as JSON, 400 for malformed JSON or a field, 413 over `server.max_body_bytes`).
async fn no_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<(), actix_web::Error> {
    let body = read_body(payload, limit).await?;
    if body.is_empty() {
        return Ok(());
    }
    let json = request
        .mime_type()
        .ok()
        .flatten()
        .is_some_and(|mime| mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON));
    if !json {
        return Err(json_error(JsonPayloadError::ContentType, request));
    }
    serde_json::from_slice::<NoFields>(&body)
        .map(|_| ())
        .map_err(|err| json_error(JsonPayloadError::Deserialize(err), request))
}

/// `GET /schedule`
pub async fn list(_: Authorized, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.schedule.list()))
}

/// `POST /schedule/{task}/run`: 202 with the task once the run started. It takes no
/// parameters: no body or `{}`.
pub async fn run_now(
    _: Authorized,
    request: HttpRequest,
    state: web::Data<AppState>,
    task: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    no_body(&request, payload, state.settings.server.max_body_bytes).await?;
    let task = task.into_inner();
    let answer = match state.schedule.run_now(&task).await {
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
    };
    Ok(answer?)
}
