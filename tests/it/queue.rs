//! The queue side of opening a ticket: the job is written in the ticket's transaction, and
//! workers in other processes (here: other pools) share the work without sending twice.

use std::time::Duration;

use domain::infra::config::{DatabaseConfig, Secret};
use entity::delivery;
use integration_tests::{Engine, TestApp, TestDb, TestSmtp, error_code, on_both_engines};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter};
use serde_json::json;

use crate::ops::*;
use crate::ticket_path::{flow_with_ticket_step, open_ticket, step_routed_to_all};

on_both_engines!(
    a_ticket_is_never_stored_without_its_job,
    separate_workers_share_the_queue_and_send_once,
    an_attempt_held_by_a_dead_worker_is_taken_over_after_its_lease
);

/// apalis wakes idle PostgreSQL workers through its insert trigger's NOTIFY; a job written in
/// the ticket's transaction must fire it, or pickup waits for the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_ticket_wakes_idle_workers_on_postgres() {
    let smtp = TestSmtp::start();
    let Some(app) =
        TestApp::spawn_with(Engine::Postgres, &smtp, |c| c.embedded_worker = false).await
    else {
        return;
    };
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    // Its own connection, as a worker's listener has.
    let mut listener = sqlx::postgres::PgListener::connect(app.config.database.url.expose())
        .await
        .unwrap();
    listener.listen("apalis::job::insert").await.unwrap();
    open_ticket(&app, &app.widget_key, &step_id, "hi").await;
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("no NOTIFY for the ticket's job: idle workers would only see it at their next poll")
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(notification.payload()).unwrap();
    assert_eq!(event["job_type"], domain::infra::queue::QUEUE, "{event}");
    app.stop().await;
}

async fn a_ticket_is_never_stored_without_its_job(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    let (_, step_id) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;

    // Make the enqueue fail after the ticket row was written in the same transaction.
    let (hide, restore) = match app.db.get_database_backend() {
        DatabaseBackend::Postgres => (
            "ALTER TABLE apalis.jobs RENAME TO jobs_hidden",
            "ALTER TABLE apalis.jobs_hidden RENAME TO jobs",
        ),
        _ => (
            "ALTER TABLE Jobs RENAME TO Jobs_hidden",
            "ALTER TABLE Jobs_hidden RENAME TO Jobs",
        ),
    };
    app.db.execute_unprepared(hide).await.unwrap();
    let body = app
        .gql(
            Some(&app.widget_key),
            OPEN_TICKET,
            json!({ "input": { "stepId": step_id, "message": "hi" } }),
        )
        .await;
    assert_eq!(error_code(&body), "INTERNAL_SERVER_ERROR", "{body:#}");
    assert!(
        !body.to_string().to_lowercase().contains("jobs"),
        "internals stay in the log: {body:#}"
    );
    app.db.execute_unprepared(restore).await.unwrap();

    let tickets = app.admin(TICKETS, json!({})).await;
    assert_eq!(
        tickets["tickets"]["edges"],
        json!([]),
        "the ticket was rolled back with its job"
    );
    // The rolled-back attempt did not use up a ticket number either.
    let opened = open_ticket(&app, &app.widget_key, &step_id, "again").await;
    assert_eq!(opened["ticket"]["number"], 1);
    app.stop().await;
}

async fn separate_workers_share_the_queue_and_send_once(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    let step_id = step_routed_to_all(&app, &["fwd@example.com"]).await;
    const TICKETS_OPENED: usize = 20;
    for i in 0..TICKETS_OPENED {
        open_ticket(&app, &app.widget_key, &step_id, &format!("ticket {i}")).await;
    }
    assert!(smtp.received().is_empty(), "no worker runs yet");

    // Two worker "processes": each with its own pool, as the `worker` binary would have.
    let workers = app.start_workers(2).await;
    assert!(
        smtp.wait_until(Duration::from_secs(30), |m| m.len() >= 2 * TICKETS_OPENED)
            .await,
        "only {} mails arrived",
        smtp.received().len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received_by("all@example.com").len(), TICKETS_OPENED);
    assert_eq!(smtp.received_by("fwd@example.com").len(), TICKETS_OPENED);
    let mut subjects: Vec<String> = smtp
        .received_by("all@example.com")
        .iter()
        .filter_map(|m| {
            m.data
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .map(str::to_owned)
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), TICKETS_OPENED, "every ticket exactly once");
    workers.stop().await;
    app.stop().await;
}

async fn an_attempt_held_by_a_dead_worker_is_taken_over_after_its_lease(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn_with(engine, &smtp, |c| c.embedded_worker = false).await else {
        return;
    };
    let (_, step_id) =
        flow_with_ticket_step(&app, "Destek", "offline_message", &["fwd@example.com"]).await;
    let opened = open_ticket(&app, &app.widget_key, &step_id, "hi").await;
    let ticket_id: uuid::Uuid = opened["ticket"]["id"].as_str().unwrap().parse().unwrap();

    // Route the ticket as a worker that died before its send would have: the delivery is
    // claimed for its first attempt (SENDING, attempt 1), lease running for two seconds.
    let lease_end = domain::now() + chrono::Duration::seconds(2);
    let planned = domain::deliveries::create(&app.db, ticket_id, lease_end)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(planned.claimed.len(), 1);
    let row = delivery::Entity::find()
        .filter(delivery::Column::TicketId.eq(ticket_id))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("SENDING", 1));

    let workers = app.start_workers(1).await;
    assert!(
        smtp.wait_until(Duration::from_secs(20), |m| !m.is_empty())
            .await,
        "the held delivery was never taken over"
    );
    assert!(
        domain::now() >= lease_end,
        "taken over before the lease ran out"
    );
    let data = app
        .wait_for(
            Duration::from_secs(10),
            TICKET,
            json!({ "id": ticket_id.to_string() }),
            |d| d["ticket"]["deliveries"][0]["status"] == "SENT",
        )
        .await;
    assert_eq!(
        data["ticket"]["deliveries"][0]["attempts"], 1,
        "a takeover repeats the attempt, it does not add one"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received().len(), 1);
    workers.stop().await;
    app.stop().await;
}

/// Rows of `apalis.jobs` and of its indexes that this transaction has read so far.
async fn job_rows_read(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT sum(pg_stat_get_xact_tuples_returned(r) + pg_stat_get_xact_tuples_fetched(r))::bigint \
         FROM (SELECT 'apalis.jobs'::regclass::oid AS r \
               UNION ALL SELECT indexrelid FROM pg_index WHERE indrelid = 'apalis.jobs'::regclass) rels",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Rows read by one `apalis.get_jobs` call taking ten jobs.
async fn rows_read_taking_ten(conn: &mut sqlx::PgConnection) -> i64 {
    use sqlx::Connection;
    let mut tx = conn.begin().await.unwrap();
    let before = job_rows_read(&mut tx).await;
    let taken: Vec<String> =
        sqlx::query_scalar("SELECT id FROM apalis.get_jobs('w1', 'probe', 10)")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(taken.len(), 10);
    let read = job_rows_read(&mut tx).await - before;
    tx.rollback().await.unwrap();
    read
}

/// Taking a job and finishing it cost the same with a week of finished jobs kept (the
/// retention default) as with none. apalis' fetch, left to itself, hash-joins over the whole
/// jobs table, and its acknowledgement finds a worker's jobs by `lock_by`, which it never
/// cleared on finished jobs (see `keep_job_fetches_independent_of_history`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_and_finishing_jobs_reads_no_history_on_postgres() {
    use sqlx::Connection;
    let Some(test_db) = TestDb::create(Engine::Postgres).await else {
        return;
    };
    let config = DatabaseConfig {
        url: Secret::new(test_db.url.clone()),
        max_connections: 2,
    };
    let db = domain::infra::db::connect(&config).await.unwrap();
    domain::infra::db::migrate(&db).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    // A worker that finished 20,000 jobs before this release (they still name it), and a
    // backlog of 20,000 due jobs.
    for statement in [
        "INSERT INTO apalis.workers (id, worker_type, storage_name) VALUES ('w1', 'probe', 'probe')",
        "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, lock_by, \
                                  lock_at, done_at) \
         SELECT '\\x00'::bytea, 'done-' || i, 'probe', 'Done', 1, 1, 'w1', now(), now() \
         FROM generate_series(1, 20000) i",
        "INSERT INTO apalis.jobs (job, id, job_type, run_at) \
         SELECT '\\x00'::bytea, 'due-' || i, 'probe', now() - interval '1 minute' \
         FROM generate_series(1, 20000) i",
        "ANALYZE apalis.jobs",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let naming_w1 = "SELECT count(*) FROM apalis.jobs WHERE lock_by = 'w1'";
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);

    // apalis' own plan, to show what this test tells apart.
    sqlx::raw_sql("ALTER FUNCTION apalis.get_jobs(text, text, integer) RESET ALL")
        .execute(&mut conn)
        .await
        .unwrap();
    let unguarded = rows_read_taking_ten(&mut conn).await;
    assert!(
        unguarded >= 40_000,
        "apalis' fetch read {unguarded} rows: it no longer reads the whole table, so this \
         test no longer shows what the guard prevents"
    );

    // An upgrade migrates again: the function is guarded and finished jobs let go of w1.
    domain::infra::db::migrate(&db).await.unwrap();
    assert_eq!(count(naming_w1).fetch_one(&mut conn).await.unwrap(), 0);
    let guarded = rows_read_taking_ten(&mut conn).await;
    assert!(
        guarded < 200,
        "taking 10 jobs read {guarded} rows of a table of 40,000"
    );

    // Taken jobs name their worker until they finish, and only they do: the acknowledgement's
    // lookup by worker reads what the worker holds, not what it ran.
    let taken: Vec<String> =
        sqlx::query_scalar("SELECT id FROM apalis.get_jobs('w1', 'probe', 10)")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(count(naming_w1).fetch_one(&mut conn).await.unwrap(), 10);
    sqlx::query("UPDATE apalis.jobs SET status = 'Done', done_at = now() WHERE id = ANY($1)")
        .bind(&taken)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(count(naming_w1).fetch_one(&mut conn).await.unwrap(), 0);
    drop(conn);
    db.close().await.unwrap();
    test_db.drop_database().await;
}
