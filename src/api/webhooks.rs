//! `POST /webhooks/{jellyfin,sonarr,radarr}`: the senders' payloads, read by
//! `sources::webhook`.
//!
//! The body is read as bytes whatever its content type (the Jellyfin plugin posts
//! `text/plain`); the cross-site check of `guard` still applies. The answer is sent once
//! the jobs are durable: 200 with what was accepted and what was not taken, 400 for a body
//! that is not a payload of that sender, and the intake's error (502, 503, 507) when sending
//! again later may help.

use actix_web::{HttpResponse, web};
use cuewarden_actors::EventSource;
use futures_util::StreamExt as _;

use super::auth::Authorized;
use super::jobs::intake_error;
use super::{ApiError, AppState, guard};
use crate::sources::webhook::{self, Sender};

/// Reads the whole body, up to `limit` bytes.
pub(super) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| {
            if guard::is_body_timeout(&err) {
                guard::body_timeout_error()
            } else {
                ApiError::bad_request(format!("the request body could not be read: {err}"))
            }
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `POST /webhooks/{sender}`
pub async fn receive(
    _: Authorized,
    state: web::Data<AppState>,
    sender: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(sender) = Sender::from_segment(&sender) else {
        return Err(ApiError::not_found(format!(
            "no webhook for \"{}\": use /webhooks/jellyfin, /webhooks/sonarr or \
             /webhooks/radarr",
            sender.as_str()
        )));
    };
    let body = read_body(payload, state.settings.server.max_body_bytes).await?;
    let status = state.sources.status(EventSource::Webhook);
    let parsed = match webhook::parse(sender, &body) {
        Ok(parsed) => parsed,
        Err(err) => {
            if let Some(status) = status {
                status.message();
                status.error(format!("{}: {err}", sender.as_str()));
            }
            tracing::info!(sender = sender.as_str(), "webhook refused: {err}");
            return Err(ApiError::bad_request(format!(
                "not a {} webhook payload: {err}",
                sender.as_str()
            )));
        }
    };
    let outcome = webhook::deliver(&state.intake, status, sender, parsed)
        .await
        .map_err(|webhook::Transient(err)| intake_error(err))?;
    Ok(HttpResponse::Ok().json(outcome))
}
