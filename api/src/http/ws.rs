//! `/graphql/ws`: subscriptions over WebSocket. The key comes in `connection_init`, checked
//! here like a request's; the connection itself is served by `crate::live`.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::GraphQLProtocol;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use domain::keys::KeyCache;
use sea_orm::DatabaseConnection;

use super::cors::cross_origin;
use crate::graphql::{Caller, Loaders};
use crate::rate_limit::Limits;
use crate::state::AppState;

/// Subscriptions over WebSocket (`graphql-transport-ws`; the older `graphql-ws` protocol
/// too). The key comes in `connection_init`, since browsers cannot set headers on a
/// WebSocket.
pub(super) async fn graphql_ws(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = cross_origin(&headers);
    let accepted = crate::live::Accepted::default();
    let init = ConnectionInit {
        db: state.db.clone(),
        keys: state.keys.clone(),
        limits: state.limits.clone(),
        client,
        origin,
        accepted: accepted.clone(),
    };
    // A message is capped like a request body.
    upgrade
        .max_message_size(state.max_body_bytes)
        .max_frame_size(state.max_body_bytes)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            crate::live::serve(
                socket,
                state.schema,
                protocol,
                state.db,
                state.keys,
                accepted,
                move |payload| connection_data(init, payload),
            )
        })
}

/// What `connection_init` is checked with.
struct ConnectionInit {
    db: DatabaseConnection,
    keys: Arc<KeyCache>,
    limits: Arc<Limits>,
    client: SocketAddr,
    origin: Option<String>,
    accepted: crate::live::Accepted,
}

/// Accepts a WebSocket connection whose `connection_init` carries a working admin key
/// (`{"Authorization": "Bearer tk_admin_..."}`), usable from the page's origin.
async fn connection_data(
    init: ConnectionInit,
    payload: serde_json::Value,
) -> async_graphql::Result<async_graphql::Data> {
    let ConnectionInit {
        db,
        keys,
        limits,
        client,
        origin,
        accepted,
    } = init;
    let key = ["Authorization", "authorization"]
        .iter()
        .find_map(|name| payload.get(*name).and_then(|v| v.as_str()))
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .ok_or_else(|| {
            async_graphql::Error::new(
                "send the admin key in connection_init: {\"Authorization\": \"Bearer tk_admin_...\"}",
            )
        })?;
    if !keys.is_cached(key) && limits.unknown_per_address.check(&client.ip()).is_err() {
        return Err(async_graphql::Error::new(
            "too many requests; try again later",
        ));
    }
    let principal = keys.authenticate(&db, key).await?;
    principal.require_admin()?;
    if let Some(origin) = origin
        && !domain::keys::key_allows_origin(&db, principal.key_id, &origin).await?
    {
        return Err(async_graphql::Error::new(format!(
            "this key may not be used from pages on {origin}"
        )));
    }
    accepted.set(principal, key);
    let mut data = async_graphql::Data::default();
    data.insert(Caller::Key(principal));
    data.insert(Loaders::new(db));
    Ok(data)
}
