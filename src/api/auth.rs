//! API key authentication: `X-Api-Key`, `?apikey=`, or HTTP basic auth whose password is
//! the key. Compared in constant time.
//!
//! The query parameter has one spelling, [`QUERY_KEY`] (case-sensitive): routes with a typed
//! query know that name and no other, so a second spelling would authenticate and then be
//! refused as an unknown field.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine;

use super::{ApiError, AppState};

/// The query parameter that carries the key.
pub const QUERY_KEY: &str = "apikey";

/// Proof that a request carried the API key; take it as a handler argument.
pub struct Authorized;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key a request presents: `Ok(None)` when it presents none, `Err` (why) when the
/// header that should carry it cannot be read.
fn presented_key(request: &HttpRequest) -> Result<Option<String>, String> {
    if let Some(value) = request.headers().get("x-api-key") {
        return value
            .to_str()
            .map(|key| Some(key.to_owned()))
            .map_err(|_| "malformed X-Api-Key header: it must be visible ASCII".to_owned());
    }
    if let Some(value) = request.headers().get("authorization")
        && let Some(credentials) = basic_credentials(value.as_bytes())
    {
        return basic_password(credentials).map(Some).map_err(|why| {
            format!(
                "malformed basic auth: {why}; send base64 of \"user:KEY\" (any user, the key \
                 as password)"
            )
        });
    }
    Ok(
        web::Query::<Vec<(String, String)>>::from_query(request.query_string())
            .ok()
            .and_then(|pairs| {
                pairs
                    .into_inner()
                    .into_iter()
                    .find(|(k, _)| k == QUERY_KEY)
                    .map(|(_, v)| v)
            }),
    )
}

/// What follows the `Basic` scheme (any case) of an `Authorization` header.
fn basic_credentials(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"basic ";
    header
        .get(..SCHEME.len())
        .filter(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
        .map(|_| header[SCHEME.len()..].trim_ascii())
}

/// The password of basic-auth credentials (`base64(user:password)`).
fn basic_password(credentials: &[u8]) -> Result<String, &'static str> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .map_err(|_| "the credentials are not base64")?;
    let text = String::from_utf8(decoded).map_err(|_| "the credentials are not UTF-8")?;
    text.split_once(':')
        .map(|(_, password)| password.to_owned())
        .ok_or("the credentials have no ':' between the user name and the key")
}

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = request.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::internal("application state missing")));
        };
        let result = match presented_key(request) {
            Err(why) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why)),
            Ok(None) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing API key: send X-Api-Key, ?apikey= or basic auth",
            )),
            Ok(Some(key))
                if constant_time_eq(key.as_bytes(), state.api_key.expose().as_bytes()) =>
            {
                Ok(Authorized)
            }
            Ok(Some(_)) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong API key",
            )),
        };
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_matches_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
