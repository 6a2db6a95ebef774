//! `worker`: sends ticket notifications from the queue on `DATABASE_URL`. Run as many as you
//! like against one PostgreSQL database.

use anyhow::Context as _;
use worker::process::{init_tracing, shutdown_signal};
use worker::{Context, WorkerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_tracing();
    let config = WorkerConfig::from_env()?;
    let db = domain::db::connect(&config.database)
        .await
        .context("cannot open the database")?;
    domain::db::migrate(&db)
        .await
        .context("cannot migrate the database")?;
    let ctx =
        Context::new(db, &config.mail, config.delivery.clone()).map_err(anyhow::Error::msg)?;
    tracing::info!(concurrency = config.delivery.concurrency, "worker started");
    worker::run(ctx, shutdown_signal()).await?;
    tracing::info!("worker stopped");
    Ok(())
}
