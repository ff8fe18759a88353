//! The HTTP API (`/api/v1`), the health and metrics endpoints and the web UI.
//!
//! Handlers are thin: they authenticate, validate input into domain types, then ask the
//! JobManager (commands) or read the store on a blocking thread (queries). Every error is
//! JSON `{ "error": { "code", "message" } }` with the matching status.

mod auth;
mod guard;
mod health;
mod input;
mod jobs;
mod manual;
mod schedule;
mod stream;
mod webhooks;

use std::future::Ready;
use std::sync::Arc;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use cuewarden_actors::Store;
use cuewarden_actors::job_manager::JobManager;
use serde_json::json;
use tokio::sync::watch;

use crate::config::{Secret, Settings};

pub use auth::constant_time_eq;
pub use guard::guard;
pub use stream::StreamSlots;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The job owner.
    pub manager: Addr<JobManager>,
    /// The store, for queries.
    pub store: Store,
    /// The API key.
    pub api_key: Arc<Secret>,
    /// The validated configuration.
    pub settings: Arc<Settings>,
    /// Turns true when the daemon shuts down (ends SSE streams).
    pub shutdown: watch::Receiver<bool>,
    /// The shared intake (`POST /subtitles` is a source like the others).
    pub intake: crate::sources::Intake,
    /// The registered sources and their status, for `/health/sources`.
    pub sources: crate::sources::SourceBoard,
    /// The open event streams, at most `server.max_event_streams`.
    pub streams: StreamSlots,
    /// The scheduled tasks (`/schedule`).
    pub schedule: crate::schedule::ScheduleHandle,
}

/// A JSON error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code (`not_found`).
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 503 `store_damaged`: the running store was found damaged (README, "Damage after the
    /// start").
    pub fn store_damaged(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_damaged", message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Basic realm=\"cuewarden\""));
        }
        response.json(json!({"error": {"code": self.code, "message": self.message}}))
    }
}

impl From<cuewarden_actors::StoreError> for ApiError {
    fn from(err: cuewarden_actors::StoreError) -> Self {
        use cuewarden_actors::StoreError;
        use cuewarden_actors::store::error_chain;
        let message = error_chain(&err);
        if err.is_storage_full() {
            Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                message,
            )
        } else if err.is_damage() {
            Self::store_damaged(message)
        } else if matches!(err, StoreError::Unavailable { .. }) {
            Self::unavailable(message)
        } else {
            Self::internal(message)
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        Self::internal(err.to_string())
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(err: actix::MailboxError) -> Self {
        Self::unavailable(format!("the job manager is not answering: {err}"))
    }
}

fn json_error(err: actix_web::error::JsonPayloadError, request: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let api = match &err {
        JsonPayloadError::ContentType => {
            let given = request
                .headers()
                .get(actix_web::http::header::CONTENT_TYPE)
                .map_or_else(
                    || "none".to_owned(),
                    |v| format!("{:?}", String::from_utf8_lossy(v.as_bytes())),
                );
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("the body must be sent as Content-Type: application/json (given: {given})"),
            )
        }
        JsonPayloadError::Payload(payload) if guard::is_body_timeout(payload) => {
            guard::body_timeout_error()
        }
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(inner) => {
            ApiError::bad_request(format!("invalid request body: {inner}"))
        }
        other => ApiError::bad_request(format!("invalid request body: {other}")),
    };
    api.into()
}

fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query string: {err}")).into()
}

fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::not_found(format!("invalid path: {err}")).into()
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.path()
    )))
}

/// 405 with the methods the resource has, in `Allow` and in the message.
fn method_not_allowed(allow: &'static str) -> impl Fn(HttpRequest) -> Ready<HttpResponse> + Clone {
    move |request: HttpRequest| {
        let error = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{} {} is not supported; use {allow}",
                request.method(),
                request.path()
            ),
        );
        let mut response = error.error_response();
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
            response
                .headers_mut()
                .insert(actix_web::http::header::ALLOW, value);
        }
        std::future::ready(response)
    }
}

/// A resource answering GET (and HEAD) with `handler`, and 405 for other methods.
macro_rules! get_resource {
    ($path:expr, $handler:expr) => {
        web::resource($path)
            .route(web::get().to($handler))
            .route(web::head().to($handler))
            .default_service(web::to(method_not_allowed("GET, HEAD")))
    };
}

/// A resource answering POST with `handler`, and 405 for other methods.
macro_rules! post_resource {
    ($path:expr, $handler:expr) => {
        web::resource($path)
            .route(web::post().to($handler))
            .default_service(web::to(method_not_allowed("POST")))
    };
}

/// Registers every route on an actix-web `App`.
pub fn configure(max_body_bytes: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(
            web::JsonConfig::default()
                .limit(max_body_bytes)
                // JSON routes take JSON only: a cross-site form can send text/plain
                // without a CORS preflight (see `guard`).
                .content_type_required(true)
                .error_handler(json_error),
        )
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(get_resource!("/health", health::health))
        .service(get_resource!("/health/sources", health::sources))
        .service(get_resource!("/metrics", health::metrics))
        .service(get_resource!("/", health::ui))
        .service(
            web::scope("/api/v1")
                .service(get_resource!("/health", health::health))
                .service(get_resource!("/health/sources", health::sources))
                .service(get_resource!("/metrics", health::metrics))
                .service(post_resource!("/subtitles", jobs::request_subtitles))
                .service(get_resource!("/jobs", jobs::list_jobs))
                .service(get_resource!("/jobs/{id}", jobs::get_job))
                .service(get_resource!("/jobs/{id}/events", jobs::job_events))
                .service(post_resource!("/jobs/{id}/retry", jobs::retry_job))
                .service(post_resource!("/jobs/{id}/cancel", jobs::cancel_job))
                .service(get_resource!("/jobs/{id}/candidates", manual::candidates))
                .service(post_resource!("/jobs/{id}/choose", manual::choose))
                .service(post_resource!("/jobs/{id}/reject", manual::reject))
                .service(
                    web::resource("/jobs/{id}/blacklist")
                        .route(web::get().to(manual::blacklist))
                        .route(web::head().to(manual::blacklist))
                        .route(web::delete().to(manual::clear_blacklist))
                        .default_service(web::to(method_not_allowed("GET, HEAD, DELETE"))),
                )
                .service(get_resource!("/events/stream", stream::event_stream))
                .service(get_resource!("/schedule", schedule::list))
                .service(post_resource!("/schedule/{task}/run", schedule::run_now))
                .service(
                    web::resource("/webhooks/{sender}")
                        .route(web::post().to(webhooks::receive))
                        .route(web::put().to(webhooks::receive))
                        .default_service(web::to(method_not_allowed("POST, PUT"))),
                ),
        )
        .default_service(web::to(not_found));
    }
}

impl From<crate::clients::jellyfin::JellyfinError> for ApiError {
    fn from(err: crate::clients::jellyfin::JellyfinError) -> Self {
        use crate::clients::jellyfin::JellyfinError;
        match err {
            JellyfinError::UnknownItem(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_jellyfin_item",
                err.to_string(),
            ),
            JellyfinError::Unauthorized(_)
            | JellyfinError::Status(_)
            | JellyfinError::LoginRefused { .. }
            | JellyfinError::Request(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "jellyfin_unavailable",
                err.to_string(),
            ),
        }
    }
}
