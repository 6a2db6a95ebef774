//! `worker`: sends ticket notifications from the queue on `DATABASE_URL`. Run as many as you
//! like against one PostgreSQL database.

use anyhow::Context as _;
use domain::infra::process::{init_tracing, shutdown_signal};
use worker::{Context, WorkerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = WorkerConfig::from_env()?;
    let db = domain::infra::db::connect(&config.database)
        .await
        .context("cannot open the database")?;
    domain::infra::db::migrate(&db)
        .await
        .context("cannot migrate the database")?;
    // Install the metrics recorder before any job records into it.
    domain::infra::telemetry::prometheus();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (WORKER_LISTEN_ADDR)", config.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    let router = worker::http::router(db.clone());
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the health and metrics endpoints stopped");
        }
    });
    let ctx =
        Context::new(db, &config.mail, config.delivery.clone()).map_err(anyhow::Error::msg)?;
    tracing::info!(concurrency = config.delivery.concurrency, "worker started");
    worker::run(ctx, shutdown_signal()).await?;
    tracing::info!("worker stopped");
    Ok(())
}
