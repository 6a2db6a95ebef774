//! Who is calling: the bearer key resolved once per request (the operator token, an API key,
//! or nobody), and the order of the rate limits around it. A request without a key this
//! process knows is limited per address before the key lookup, since each unknown key costs
//! a database round trip; a widget key's request is limited per address first, then per key,
//! so a request refused for its address costs the key nothing.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum::response::Response;

use super::rate_limited;
use crate::graphql::Caller;
use crate::state::{AppState, constant_time_eq};

/// The token of an `Authorization: Bearer ...` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The caller of a request, or the refusal when its address sent too many requests with keys
/// this process does not know.
pub(super) async fn caller(
    state: &AppState,
    client: SocketAddr,
    headers: &HeaderMap,
) -> Result<Caller, Response> {
    // The key is resolved once per request; resolvers only look at the outcome.
    let is_operator = |key: &str| {
        state
            .ops_token
            .as_ref()
            .is_some_and(|t| constant_time_eq(t.expose().as_bytes(), key.as_bytes()))
    };
    let key = bearer(headers);
    let unknown = match key {
        None => true,
        Some(key) => !is_operator(key) && !state.keys.is_cached(key),
    };
    if unknown && let Err(wait) = state.limits.unknown_per_address.check(&client.ip()) {
        return Err(rate_limited(wait));
    }
    Ok(match key {
        None => Caller::Anonymous,
        Some(key) if is_operator(key) => Caller::Operator,
        Some(key) => match state.keys.authenticate(&state.db, key).await {
            Ok(principal) => Caller::Key(principal),
            Err(error) => Caller::Refused(std::sync::Arc::new(error)),
        },
    })
}

/// Whether a widget key's request is within its address's and its key's allowance; how long
/// to wait when not. Other callers are not limited here.
pub(super) fn widget_allowance(
    state: &AppState,
    client: SocketAddr,
    caller: &Caller,
) -> Result<(), Duration> {
    match caller {
        Caller::Key(principal) if principal.kind == domain::keys::KeyKind::Widget => state
            .limits
            .per_address
            .check(&client.ip())
            .and_then(|()| state.limits.per_key.check(&principal.key_id)),
        _ => Ok(()),
    }
}
