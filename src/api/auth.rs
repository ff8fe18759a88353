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

fn presented_key(request: &HttpRequest) -> Option<String> {
    if let Some(value) = request.headers().get("x-api-key") {
        return value.to_str().ok().map(str::to_owned);
    }
    if let Some(value) = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        && let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_owned());
    }
    web::Query::<Vec<(String, String)>>::from_query(request.query_string())
        .ok()?
        .iter()
        .find(|(k, _)| k == QUERY_KEY)
        .map(|(_, v)| v.clone())
}

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = request.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::internal("application state missing")));
        };
        let result = match presented_key(request) {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing API key: send X-Api-Key, ?apikey= or basic auth",
            )),
            Some(key) if constant_time_eq(key.as_bytes(), state.api_key.expose().as_bytes()) => {
                Ok(Authorized)
            }
            Some(_) => Err(ApiError::new(
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
