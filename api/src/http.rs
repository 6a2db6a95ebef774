//! HTTP routes: `/graphql` (POST and GET per GraphQL over HTTP, GraphiQL for browsers), `/healthz`, `/readyz`
//! and the operators' page `/ops` on the public port; `/metrics` on its own listener.

use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::GraphQLProtocol;
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use domain::keys::KeyCache;
use sea_orm::DatabaseConnection;

use crate::code::Code;
use crate::graphql::operation::RootFields;
use crate::graphql::{Caller, Loaders};
use crate::graphql_http::{self, Media};
use crate::rate_limit::Limits;
use crate::state::{AppState, constant_time_eq};

/// `RATE_LIMITED` (HTTP 429) with when to try again.
fn rate_limited(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + 1;
    let body = serde_json::json!({ "errors": [{
        "message": format!("too many requests; try again in {seconds} s"),
        "extensions": { "code": Code::RateLimited.as_str(), "retryAfterSeconds": seconds },
    }] });
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds.to_string())],
        axum::Json(body),
    )
        .into_response()
}

/// `/metrics` alone, for `METRICS_LISTEN_ADDR`.
pub fn metrics_router(db: DatabaseConnection) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(db)
}

/// The service's routes.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/graphql",
            get(graphql_get).post(graphql_post).options(preflight),
        )
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/ops", get(crate::ops_page::page))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A request refused before GraphQL sees it, shaped as a GraphQL error.
fn refused(status: StatusCode, code: Code, message: &str) -> Response {
    graphql_http::Refusal::new(status, code, message).into_response()
}

/// The `Origin` of a browser request from another site; `None` for calls without one
/// (servers, scripts) and for the service's own pages (GraphiQL), whose origin is the `Host`
/// they were served from.
fn cross_origin(headers: &HeaderMap) -> Option<String> {
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
fn allow_origin(mut response: Response, origin: &str) -> Response {
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

fn origin_refused(origin: &str) -> Response {
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
async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
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

fn unavailable(error: &domain::Error) -> Response {
    tracing::warn!(%error, "could not check the request's origin");
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::ServiceUnavailable,
        "the service is temporarily unavailable; retry shortly",
    )
}

/// Subscriptions over WebSocket (`graphql-transport-ws`; the older `graphql-ws` protocol
/// too). The key comes in `connection_init`, since browsers cannot set headers on a
/// WebSocket.
async fn graphql_ws(
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

/// POST: the request is a JSON body.
async fn graphql_post(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Reading the body as bytes puts it under the body limit (413 above MAX_BODY_BYTES).
    let parsed = graphql_http::negotiate(&headers).and_then(|media| {
        graphql_http::check_content_type(&headers)?;
        Ok((media, graphql_http::request_from_json(&body)?))
    });
    match parsed {
        Ok((media, request)) => graphql(&state, client, &headers, request, media).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// GET: a query from the URL, or GraphiQL for a browser that asks for the page.
async fn graphql_get(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let wants_page = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_page && !query.split('&').any(|p| p.starts_with("query=")) {
        return graphiql().await.into_response();
    }
    let parsed = graphql_http::negotiate(&headers).and_then(|media| {
        let request = graphql_http::request_from_query_string(&query)?;
        if graphql_http::is_mutation(&request) {
            return Err(graphql_http::Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::MethodNotAllowed,
                "mutations need POST",
            ));
        }
        Ok((media, request))
    });
    match parsed {
        Ok((media, request)) => graphql(&state, client, &headers, request, media).await,
        Err(refusal) => refusal.into_response(),
    }
}

async fn graphql(
    state: &AppState,
    client: SocketAddr,
    headers: &HeaderMap,
    request: async_graphql::Request,
    media: Media,
) -> Response {
    // The key is resolved once per request; resolvers only look at the outcome. A request
    // without a key this process knows is limited per address before the lookup: each
    // unknown key costs a database round trip.
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
        return rate_limited(wait);
    }
    let caller = match key {
        None => Caller::Anonymous,
        Some(key) if is_operator(key) => Caller::Operator,
        Some(key) => match state.keys.authenticate(&state.db, key).await {
            Ok(principal) => Caller::Key(principal),
            Err(error) => Caller::Refused(std::sync::Arc::new(error)),
        },
    };
    // A key works in browsers only on the origins configured on it. Other callers get no CORS
    // headers: the operator token is not for web pages, and refusals need none.
    let Some(origin) = cross_origin(headers) else {
        return execute(state, client, caller, request, media).await;
    };
    let Caller::Key(principal) = &caller else {
        return execute(state, client, caller, request, media).await;
    };
    match domain::keys::key_allows_origin(&state.db, principal.key_id, &origin).await {
        Ok(true) => allow_origin(
            execute(state, client, caller, request, media).await,
            &origin,
        ),
        Ok(false) => origin_refused(&origin),
        Err(error) => unavailable(&error),
    }
}

async fn execute(
    state: &AppState,
    client: SocketAddr,
    caller: Caller,
    request: async_graphql::Request,
    media: Media,
) -> Response {
    if let Caller::Key(principal) = &caller
        && principal.kind == domain::keys::KeyKind::Widget
    {
        // The address first: a request refused for its address costs the key nothing.
        let limited = state
            .limits
            .per_address
            .check(&client.ip())
            .and_then(|()| state.limits.per_key.check(&principal.key_id));
        if let Err(wait) = limited {
            return rate_limited(wait);
        }
    }
    let fields = RootFields::default();
    let chosen = request.operation_name.clone();
    let request = request
        .data(caller)
        .data(Loaders::new(state.db.clone()))
        .data(fields.clone());
    let started = std::time::Instant::now();
    let response = state.schema.execute(request).await;
    let operation = fields.label(chosen.as_deref());
    metrics::histogram!("ticketing_graphql_request_duration_seconds", "operation" => operation.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("ticketing_graphql_requests_total", "operation" => operation.clone())
        .increment(1);
    for error in &response.errors {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|c| match c {
                async_graphql::Value::String(s) => Code::parse(s),
                _ => None,
            })
            .map_or("UNKNOWN", Code::as_str);
        metrics::counter!("ticketing_graphql_errors_total", "operation" => operation.clone(), "code" => code)
            .increment(1);
    }
    graphql_http::respond(response, media)
}

async fn metrics(State(db): State<DatabaseConnection>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        domain::telemetry::render(&db).await,
    )
}

/// The documented operations (`clients/operations/`, which CI also type-checks against the
/// schema), one GraphiQL tab each, so a new user has working examples to run.
const EXAMPLES: [&str; 6] = [
    include_str!("../../clients/operations/flows.graphql"),
    include_str!("../../clients/operations/routing.graphql"),
    include_str!("../../clients/operations/tickets.graphql"),
    include_str!("../../clients/operations/conversation.graphql"),
    include_str!("../../clients/operations/operations.graphql"),
    include_str!("../../clients/operations/webhooks.graphql"),
];

async fn graphiql() -> Html<String> {
    let page = GraphiQLSource::build()
        .endpoint("/graphql")
        .title("Ticketing API")
        .finish();
    let tabs: Vec<serde_json::Value> = EXAMPLES
        .iter()
        .map(|query| {
            serde_json::json!({
                "query": query,
                "headers": "{\n  \"Authorization\": \"Bearer tk_admin_...\"\n}",
            })
        })
        .collect();
    // async-graphql's page has no option for GraphiQL's `defaultTabs`; they go next to the
    // one option it sets. JSON is valid JavaScript, and `</` is escaped so no example can end
    // the script element.
    let tabs = serde_json::Value::from(tabs)
        .to_string()
        .replace("</", "<\\/");
    Html(page.replacen(
        "defaultEditorToolsVisibility: true,",
        &format!("defaultEditorToolsVisibility: true,\n          defaultTabs: {tabs},"),
        1,
    ))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if domain::db::is_ready(&state.db).await {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable or not migrated",
        )
    }
}
