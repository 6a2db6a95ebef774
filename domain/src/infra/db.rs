//! Connecting to the database and bringing its schema up to date: ours (SeaORM migrations)
//! and the job queue's (apalis migrations), on SQLite or PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    IsolationLevel, SqliteTransactionMode, SqlxPostgresConnector, SqlxSqliteConnector,
    TransactionOptions, TransactionTrait,
};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::infra::config::DatabaseConfig;

fn sqlx_err(e: sqlx::Error) -> DbErr {
    DbErr::Custom(e.to_string())
}

/// A pooled PostgreSQL connection idle this long is checked before it is used again.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Opens a pool on the configured database. One pool serves SeaORM and the job queue.
pub async fn connect(cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let url = cfg.url.expose();
    if cfg.is_postgres() {
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // sqlx pings every connection it hands out, a round trip before each statement
            // outside a transaction. It also pings each one handed back, which closes those a
            // query broke; so the ping on the way out only matters for a connection that sat
            // idle (the database may have restarted meanwhile), and only those get it.
            // openTicket: about 1,575 -> 1,775 requests/s (bench/README.md).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy(url)
            .map_err(sqlx_err)?;
        return Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(sqlx_err)?
        .create_if_missing(true)
        // WAL lets the API read while the worker writes; NORMAL is durable in WAL mode.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    if let Some(dir) = options.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            DbErr::Custom(format!(
                "cannot create database folder {}: {e}",
                dir.display()
            ))
        })?;
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(cfg.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(sqlx_err)?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// Applies pending migrations of our schema and of the job queue's tables.
///
/// Several processes may start at once on PostgreSQL: a session advisory lock makes them take
/// turns, so each finds the schema either untouched or complete.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            let mut lock = pool.acquire().await.map_err(sqlx_err)?;
            sqlx::query("SELECT pg_advisory_lock(7261001)")
                .execute(&mut *lock)
                .await
                .map_err(sqlx_err)?;
            let result = async {
                Migrator::up(db, None).await?;
                db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS hstore")
                    .await?;
                apalis_postgres::PostgresStorage::<()>::migrations()
                    .run(pool)
                    .await
                    .map_err(|e| DbErr::Migration(format!("job queue: {e}")))?;
                // Retention finds finished jobs by when they finished (apalis-sqlite has its
                // own such index; apalis-postgres has none).
                db.execute_unprepared(
                    "CREATE INDEX IF NOT EXISTS idx_ticketing_jobs_finished \
                     ON apalis.jobs (status, done_at)",
                )
                .await?;
                keep_job_fetches_independent_of_history(db).await
            }
            .await;
            sqlx::query("SELECT pg_advisory_unlock(7261001)")
                .execute(&mut *lock)
                .await
                .map_err(sqlx_err)?;
            result
        }
        _ => {
            Migrator::up(db, None).await?;
            // Not `SqliteStorage::setup`: it would switch the shared pool to synchronous=OFF.
            apalis_sqlite::SqliteStorage::<()>::migrations()
                .run(db.get_sqlite_connection_pool())
                .await
                .map_err(|e| DbErr::Migration(format!("job queue: {e}")))
        }
    }
}

/// Taking and finishing a job must cost the same with a week of finished jobs kept (the
/// retention default) as with none; on PostgreSQL two apalis statements read them all:
///
/// - `apalis.get_jobs` is a SQL function, planned without knowing how many jobs it takes; its
///   `UPDATE ... FROM` the chosen ids hash-joins over the whole jobs table. 36.5 ms per fetch
///   with 60,000 jobs kept, 2.9 ms with hash and merge joins off inside the function, where the
///   join is a nested loop over the primary key (bench/README.md, "Taking a job").
/// - The acknowledgement finds a worker's jobs by `lock_by`, which apalis never clears on
///   finished jobs: with that index, it read every job the worker had ever run (58,000 rows,
///   23-53 ms per ack). A finished job gives up its worker here; nothing reads `lock_by` of a
///   finished job (keep-alive and orphan recovery look at `Queued`/`Running` ones, and
///   `get_jobs` sets it again when a failed job is retried).
///
/// Both are applied at every migrate, after apalis' own migrations, which may have redefined
/// the function.
async fn keep_job_fetches_independent_of_history(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_unprepared(
        "ALTER FUNCTION apalis.get_jobs(text, text, integer) \
         SET enable_hashjoin = off SET enable_mergejoin = off",
    )
    .await?;
    db.execute_unprepared(
        "CREATE OR REPLACE FUNCTION apalis.ticketing_release_finished_job() \
         RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF NEW.status IN ('Done', 'Failed', 'Killed') THEN NEW.lock_by := NULL; END IF; \
           RETURN NEW; \
         END $$",
    )
    .await?;
    // Created once: creating a trigger locks the jobs table against writes, which every start
    // would otherwise do to a running queue.
    db.execute_unprepared(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'ticketing_release_finished_job' \
                          AND tgrelid = 'apalis.jobs'::regclass) THEN \
             CREATE TRIGGER ticketing_release_finished_job \
             BEFORE UPDATE OF status ON apalis.jobs \
             FOR EACH ROW EXECUTE FUNCTION apalis.ticketing_release_finished_job(); \
           END IF; \
         END $$",
    )
    .await?;
    // Jobs finished before the trigger existed; through the `lock_by` index this finds only
    // jobs that still name a worker, so it costs nothing once done.
    db.execute_unprepared(
        "UPDATE apalis.jobs SET lock_by = NULL \
         WHERE lock_by IS NOT NULL AND status IN ('Done', 'Failed', 'Killed')",
    )
    .await?;
    Ok(())
}

/// Whether the database answers and our schema is fully migrated.
pub async fn is_ready(db: &DatabaseConnection) -> bool {
    matches!(Migrator::get_pending_migrations(db).await, Ok(pending) if pending.is_empty())
}

/// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (IMMEDIATE), waiting up to the busy timeout: a deferred transaction that reads first and
/// writes later fails at once with SQLITE_BUSY when another connection (the job poller, say)
/// wrote in between. PostgreSQL ignores the mode.
pub async fn begin<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Starts a read-only transaction whose statements all see one snapshot, so counts read by
/// several statements agree with each other. On SQLite (WAL) every read transaction does; it
/// would only warn about the settings.
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
        _ => db.begin().await,
    }
}
