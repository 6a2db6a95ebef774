//! `api`: serves GraphQL on `LISTEN_ADDR`.
//!
//! - `api` runs the service (with the worker inside on SQLite, or with `EMBEDDED_WORKER=true`).
//! - `api create-account NAME` creates an account and prints its keys as one JSON line.
//! - `api print-schema` prints the GraphQL SDL (what `schema.graphql` holds).

use anyhow::Context as _;
use api::{ApiConfig, App};
use domain::infra::process::{init_tracing, shutdown_signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => serve().await,
        Some("create-account") => {
            let name = args.get(1).context("usage: api create-account NAME")?;
            let db = open(&ApiConfig::from_env()?).await?;
            let created = domain::keys::create_account(&db, name).await?;
            println!("{}", serde_json::to_string(&created)?);
            Ok(())
        }
        Some("print-schema") => {
            print!("{}", api::graphql::sdl());
            Ok(())
        }
        Some(other) => anyhow::bail!(
            "unknown command {other:?}; expected serve, create-account NAME or print-schema"
        ),
    }
}

async fn open(config: &ApiConfig) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let db = domain::infra::db::connect(&config.database)
        .await
        .context("cannot open the database")?;
    domain::infra::db::migrate(&db)
        .await
        .context("cannot migrate the database")?;
    Ok(db)
}

async fn serve() -> anyhow::Result<()> {
    init_tracing();
    let config = ApiConfig::from_env()?;
    let db = open(&config).await?;
    if !config.database.is_postgres() && !domain::keys::has_accounts(&db).await? {
        // The account and its demo together: a start stopped halfway leaves neither, and the
        // next start makes both.
        let txn = domain::infra::db::begin(&db).await?;
        let demo = domain::keys::create_account(&txn, "Demo").await?;
        domain::demo::create(&txn, &demo).await?;
        sea_orm::TransactionSession::commit(txn).await?;
        // Printed once, on the first start of an empty embedded database.
        println!("Created a demo account {}.", demo.account_id);
        println!("  admin key:  {}", demo.admin_key);
        println!("  widget key: {}", demo.widget_key);
        println!(
            "Keep the admin key: it is stored hashed and cannot be shown again (the widget key is public: the demo page shows it)."
        );
        println!(
            "Made a demo flow with its chat page: open http://{}/",
            config.listen
        );
    }
    let embedded = config.embedded_worker;
    let running = App { config, db }.start().await?;
    tracing::info!(addr = %running.addr, embedded_worker = embedded, "serving GraphQL on http://{}/graphql", running.addr);
    running.run_until(shutdown_signal()).await;
    Ok(())
}
