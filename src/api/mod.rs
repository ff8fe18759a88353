//! The HTTP API (`/api/v1`), the health and metrics endpoints and the web UI.
//!
//! Handlers are thin: they authenticate, validate input into domain types, then ask the
//! JobManager (commands) or read the store on a blocking thread (queries). Every error is
//! JSON `{ "error": { "code", "message" } }` with the matching status.

mod auth;
mod health;
mod jobs;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use cuewarden_actors::Store;
use cuewarden_actors::job_manager::JobManager;
use serde_json::json;
use tokio::sync::watch;

use crate::clients::jellyfin::JellyfinClient;
use crate::config::{Secret, Settings};

pub use auth::constant_time_eq;

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
    /// Jellyfin REST client, when configured.
    pub jellyfin: Option<JellyfinClient>,
    /// Turns true when the daemon shuts down (ends SSE streams).
    pub shutdown: watch::Receiver<bool>,
    /// The library roots.
    pub libraries: Arc<Vec<PathBuf>>,
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
        Self::internal(err.to_string())
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

fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError;
    let api = match &err {
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

/// Registers every route on an actix-web `App`.
pub fn configure(max_body_bytes: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(
            web::JsonConfig::default()
                .limit(max_body_bytes)
                .content_type_required(false)
                .error_handler(json_error),
        )
        .app_data(web::PayloadConfig::new(max_body_bytes))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .route("/health", web::get().to(health::health))
        .route("/health/sources", web::get().to(health::sources))
        .route("/metrics", web::get().to(health::metrics))
        .route("/", web::get().to(health::ui))
        .service(
            web::scope("/api/v1")
                .route("/health", web::get().to(health::health))
                .route("/health/sources", web::get().to(health::sources))
                .route("/metrics", web::get().to(health::metrics))
                .route("/subtitles", web::post().to(jobs::request_subtitles))
                .route("/jobs", web::get().to(jobs::list_jobs))
                .route("/jobs/{id}", web::get().to(jobs::get_job))
                .route("/jobs/{id}/events", web::get().to(jobs::job_events))
                .route("/jobs/{id}/retry", web::post().to(jobs::retry_job))
                .route("/jobs/{id}/cancel", web::post().to(jobs::cancel_job))
                .route("/events/stream", web::get().to(stream::event_stream)),
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
            JellyfinError::Unauthorized(_) | JellyfinError::Request(_) => Self::new(
                StatusCode::BAD_GATEWAY,
                "jellyfin_unavailable",
                err.to_string(),
            ),
        }
    }
}
