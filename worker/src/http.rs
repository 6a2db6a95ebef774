//! The worker process's own HTTP endpoints, for orchestrators and Prometheus: `/healthz`
//! (the process is up), `/readyz` (database reachable, migrated, job tables readable) and
//! `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sea_orm::{ConnectionTrait, DatabaseConnection};

/// The routes.
pub fn router(db: DatabaseConnection) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(db)
}

async fn readyz(State(db): State<DatabaseConnection>) -> impl IntoResponse {
    let jobs = format!(
        "SELECT 1 FROM {} LIMIT 1",
        domain::infra::queue::jobs_table(db.get_database_backend())
    );
    if domain::infra::db::is_ready(&db).await && db.execute_unprepared(&jobs).await.is_ok() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "database or job storage unavailable",
        )
    }
}

async fn metrics(State(db): State<DatabaseConnection>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        domain::ops::metrics(&db).await,
    )
}
