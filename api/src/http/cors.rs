//! Which web pages may call: a key works in browsers only on the origins configured on it
//! (`setApiKeyOrigins`); a preflight, which carries no key, is answered for the origin when
//! some working key allows it.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{refused, unavailable};
use crate::code::Code;
use crate::state::AppState;

/// The `Origin` of a browser request from another site; `None` for calls without one
/// (servers, scripts) and for the service's own pages (GraphiQL), whose origin is the `Host`
/// they were served from.
pub(super) fn cross_origin(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let own = host.is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    (!own).then(|| origin.to_owned())
}

/// Lets the page at `origin` read the response (and the rate limiter's retry hint).
pub(super) fn allow_origin(mut response: Response, origin: &str) -> Response {
    if let Ok(value) = header::HeaderValue::from_str(origin) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_static("retry-after"),
        );
        headers.append(header::VARY, header::HeaderValue::from_static("origin"));
    }
    response
}

pub(super) fn origin_refused(origin: &str) -> Response {
    refused(
        StatusCode::FORBIDDEN,
        Code::OriginNotAllowed,
        &format!(
            "this key may not be used from pages on {origin}; add the origin with setApiKeyOrigins"
        ),
    )
}

/// A CORS preflight carries no key, so it can only be told whether some working key allows
/// the origin; the request that follows is checked against its own key.
pub(super) async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(origin) = cross_origin(&headers) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    match domain::keys::any_key_allows_origin(&state.db, &origin).await {
        Ok(true) => {
            let mut response = allow_origin(StatusCode::NO_CONTENT.into_response(), &origin);
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                header::HeaderValue::from_static("POST, GET, OPTIONS"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                header::HeaderValue::from_static("authorization, content-type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                header::HeaderValue::from_static("600"),
            );
            response
        }
        Ok(false) => origin_refused(&origin),
        Err(error) => unavailable(&error),
    }
}
