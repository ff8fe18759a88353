//! What a route takes besides its path, when it takes nothing: [`NoBody`] for a
//! state-changing route without parameters, [`NoQuery`] for a read without query
//! parameters. Both refuse what the route cannot mean the way a route with parameters
//! refuses an unknown one, before the handler acts.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::JsonPayloadError;
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, mime, web};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::webhooks::read_body;
use super::{ApiError, AppState, json_error, query_error};

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

/// Proof that a route without parameters got no body, or `{}`, and no query parameter but
/// `apikey` (as [`NoQuery`]); take it as a handler argument (after
/// [`Authorized`](super::auth::Authorized)). Anything else gets the error a JSON route gives
/// for it: 415 for a body not sent as JSON, 400 for malformed JSON, an array or a field, or
/// an unknown query parameter, 413 over `server.max_body_bytes`, 408 past the body deadline.
pub struct NoBody;

impl FromRequest for NoBody {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            web::Query::<KeyOnly>::from_query(request.query_string())
                .map_err(|err| query_error(err, &request))?;
            let limit = request
                .app_data::<web::Data<AppState>>()
                .map(|state| state.settings.server.max_body_bytes)
                .ok_or_else(|| ApiError::internal("application state missing"))?;
            let payload = web::Payload::from_request(&request, &mut payload).await?;
            let body = read_body(payload, limit).await?;
            if body.is_empty() {
                return Ok(NoBody);
            }
            let json = request.mime_type().ok().flatten().is_some_and(|mime| {
                mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)
            });
            if !json {
                return Err(json_error(JsonPayloadError::ContentType, &request));
            }
            serde_json::from_slice::<NoFields>(&body)
                .map(|_| NoBody)
                .map_err(|err| json_error(JsonPayloadError::Deserialize(err), &request))
        })
    }
}

/// The query of a route that takes no query parameters: only the API key
/// ([`QUERY_KEY`](super::auth::QUERY_KEY)), which the auth reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyOnly {
    #[serde(rename = "apikey")]
    _key: Option<IgnoredAny>,
}

/// Proof that a request's query holds no parameter but `apikey`; an unknown one is a 400
/// `bad_request`, as for `GET /jobs`.
pub struct NoQuery;

impl FromRequest for NoQuery {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            web::Query::<KeyOnly>::from_query(request.query_string())
                .map(|_| NoQuery)
                .map_err(|err| query_error(err, request)),
        )
    }
}
