//! What every request passes before its route: the cross-site refusal, the body deadline,
//! and the headers every answer carries.
//!
//! - **Cross-site requests.** A browser that has the web page's basic-auth login cached
//!   sends it along with any request a page on another site makes, so a state-changing
//!   request (anything but GET, HEAD, OPTIONS) whose `Sec-Fetch-Site` is not `same-origin`
//!   or `none`, or whose `Origin` is not this server, gets a JSON 403 `cross_site_request`.
//!   Non-browser senders (the CLI, scripts, webhooks to come) send neither header and are not
//!   affected. JSON routes also require `Content-Type: application/json` (415, see
//!   `api::json_config`), which a cross-site form cannot send without a CORS preflight; a
//!   webhook route that must take `text/plain` reads its body itself (`web::Bytes`), and
//!   still passes the cross-site check here.
//! - **Body deadline.** actix-web's `client_request_timeout` covers the head only: a body
//!   that trickles in one byte a second would hold its connection and worker slot for as
//!   long as the sender likes. The body stream is cut off [`BODY_TIMEOUT`] after the
//!   request started; the extractor reading it answers 408 `request_timeout`.
//! - **`Referrer-Policy: no-referrer`** on every answer, so a link followed from the web page
//!   (opened as `/?apikey=…`) never carries the key to another site.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _, ResponseError};
use futures_util::StreamExt as _;

use super::ApiError;

/// How long a request body may take to arrive, counted from the request's start.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The message of the I/O error a body cut off by [`BODY_TIMEOUT`] carries.
pub const BODY_TIMEOUT_MESSAGE: &str = "request body deadline";

/// The middleware: `App::new().wrap(actix_web::middleware::from_fn(api::guard))`.
pub async fn guard(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, Error> {
    if let Some(refusal) = cross_site_refusal(&request) {
        let response = refusal.error_response().map_into_right_body();
        return Ok(with_policy(request.into_response(response)));
    }
    if has_body(&request) {
        let payload = request.take_payload();
        request.set_payload(with_deadline(payload));
    }
    let response = next.call(request).await?.map_into_left_body();
    Ok(with_policy(response))
}

fn with_policy<B>(mut response: ServiceResponse<B>) -> ServiceResponse<B> {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Whether the request announces a body (a length above 0, or chunked).
fn has_body(request: &ServiceRequest) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The body, ending with a timed-out I/O error once [`BODY_TIMEOUT`] has passed.
fn with_deadline(payload: Payload) -> Payload {
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    let stream = futures_util::stream::unfold(Some(payload), move |state| async move {
        let mut payload = state?;
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(item)) => Some((item, Some(payload))),
            Ok(None) => None,
            Err(_) => Some((
                Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    BODY_TIMEOUT_MESSAGE,
                ))),
                None,
            )),
        }
    });
    Payload::Stream {
        payload: Box::pin(stream),
    }
}

/// Whether a payload error is the body deadline.
pub fn is_body_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// The 408 for a body that missed [`BODY_TIMEOUT`].
pub fn body_timeout_error() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body did not arrive within {} s",
            BODY_TIMEOUT.as_secs()
        ),
    )
}

/// A 403 if a browser says a page of another site sent this state-changing request.
fn cross_site_refusal(request: &ServiceRequest) -> Option<ApiError> {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return None;
    }
    let headers = request.headers();
    let refuse = |why: String| {
        Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site_request",
            format!("{why}: a page of another site cannot change anything here"),
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = String::from_utf8_lossy(site.as_bytes());
        if !matches!(site.as_ref(), "same-origin" | "none") {
            return refuse(format!("Sec-Fetch-Site is {site:?}"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        // The authority only: behind a TLS proxy the scheme seen here may be http.
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        let info = request.connection_info();
        if authority.is_none_or(|authority| !authority.eq_ignore_ascii_case(info.host())) {
            return refuse(format!(
                "Origin {origin:?} is not this server ({})",
                info.host()
            ));
        }
    }
    None
}
