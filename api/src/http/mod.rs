//! The HTTP boundary of the public port: the router and the GraphQL handlers (POST and GET
//! per GraphQL over HTTP). Who is calling is `auth`, which pages may call is `cors`, the
//! WebSocket endpoint is `ws`, `/healthz`, `/readyz` and `/metrics` are `health`, and the
//! GraphiQL page is `graphiql`. `/metrics` is served on its own listener.

mod auth;
mod cors;
mod graphiql;
mod health;
mod widget;
mod ws;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sea_orm::DatabaseConnection;

use crate::code::Code;
use crate::graphql::operation::RootFields;
use crate::graphql::{Caller, Loaders};
use crate::graphql_http::{self, Media};
use crate::state::AppState;

/// `/metrics` alone, for `METRICS_LISTEN_ADDR`.
pub fn metrics_router(db: DatabaseConnection) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(db)
}

/// The service's routes.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/graphql",
            get(graphql_get).post(graphql_post).options(cors::preflight),
        )
        .route("/graphql/ws", get(ws::graphql_ws))
        .route(
            &format!("{}/{{name}}", graphiql::ASSETS),
            get(graphiql::asset),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/", get(crate::demo_page::page))
        .route("/widget.js", get(widget::script))
        .route("/widget.css", get(widget::style))
        .route("/ops", get(crate::ops_page::page))
        .route("/ops/actions", post(crate::ops_page::act))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

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

/// A request refused before GraphQL sees it, shaped as a GraphQL error.
fn refused(status: StatusCode, code: Code, message: &str) -> Response {
    graphql_http::Refusal::new(status, code, message).into_response()
}

fn unavailable(error: &domain::Error) -> Response {
    tracing::warn!(%error, "could not check the request's origin");
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::ServiceUnavailable,
        "the service is temporarily unavailable; retry shortly",
    )
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
        return graphiql::page();
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

/// Resolves the caller, checks the page's origin against the key, then executes.
async fn graphql(
    state: &AppState,
    client: SocketAddr,
    headers: &HeaderMap,
    request: async_graphql::Request,
    media: Media,
) -> Response {
    let caller = match auth::caller(state, client, headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    // A key works in browsers only on the origins configured on it. Other callers get no CORS
    // headers: the operator token is not for web pages, and refusals need none.
    let Some(origin) = cors::cross_origin(headers) else {
        return execute(state, client, caller, request, media).await;
    };
    let Caller::Key(principal) = &caller else {
        return execute(state, client, caller, request, media).await;
    };
    match domain::keys::key_allows_origin(&state.db, principal.key_id, &origin).await {
        Ok(true) => cors::allow_origin(
            execute(state, client, caller, request, media).await,
            &origin,
        ),
        Ok(false) => cors::origin_refused(&origin),
        Err(error) => unavailable(&error),
    }
}

/// Executes the request for `caller` and records its metrics.
async fn execute(
    state: &AppState,
    client: SocketAddr,
    caller: Caller,
    request: async_graphql::Request,
    media: Media,
) -> Response {
    if let Err(wait) = auth::widget_allowance(state, client, &caller) {
        return rate_limited(wait);
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
