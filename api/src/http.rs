//! HTTP routes: `/graphql` (POST for operations, GET for GraphiQL), `/healthz`, `/readyz`.

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use domain::config::Secret;
use sea_orm::DatabaseConnection;

use crate::graphql::{ApiSchema, Caller, Loaders};

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub schema: ApiSchema,
    pub db: DatabaseConnection,
    pub ops_token: Option<Secret<String>>,
}

/// Compares without stopping at the first difference, so timing does not reveal how much of
/// a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The service's routes.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
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

async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    // The key is resolved once per request; resolvers only look at the outcome.
    let caller = match bearer(&headers) {
        None => Caller::Anonymous,
        Some(key)
            if state
                .ops_token
                .as_ref()
                .is_some_and(|t| constant_time_eq(t.expose().as_bytes(), key.as_bytes())) =>
        {
            Caller::Operator
        }
        Some(key) => match domain::keys::authenticate(&state.db, key).await {
            Ok(principal) => Caller::Key(principal),
            Err(error) => Caller::Refused(std::sync::Arc::new(error)),
        },
    };
    let request = request
        .into_inner()
        .data(caller)
        .data(Loaders::new(state.db.clone()));
    state.schema.execute(request).await.into()
}

async fn graphiql() -> impl IntoResponse {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
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
