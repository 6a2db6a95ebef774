//! Health and metrics: `/healthz` (the process answers), `/readyz` (the database is reachable
//! and migrated) and `/metrics` (Prometheus, on `METRICS_LISTEN_ADDR` only).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use sea_orm::DatabaseConnection;

use crate::state::AppState;

/// The process is up and answering.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if domain::infra::db::is_ready(&state.db).await {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable or not migrated",
        )
    }
}

pub(super) async fn metrics(State(db): State<DatabaseConnection>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        domain::ops::metrics(&db).await,
    )
}
