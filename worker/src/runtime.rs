//! The apalis side: one queue, one handler, workers supervised by a `Monitor`.

use std::future::Future;
use std::time::Duration;

use apalis::prelude::{
    BackendExt, BoxDynError, Data, Monitor, Strategy, TaskId, WorkerBuilder, WorkerBuilderExt,
    WorkerContext,
};
use apalis_postgres::{PostgresStorage, Pubsub};
use apalis_sqlite::SqliteStorage;
use domain::infra::queue::{self, HEARTBEAT, Job, MISSED_HEARTBEATS, QUEUE, Task};
use sea_orm::DatabaseBackend;
use tracing::Instrument;

use crate::Context;
use crate::deliver;
use domain::lease::Outcome;
use domain::pauses::{self, Parked};

/// Failures of the worker runtime itself (not of a delivery).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the job monitor stopped with an error: {0}")]
    Monitor(String),
}

/// Handles one job. Delivery outcomes, failures included, are recorded on the delivery row
/// and end the job; an `Err` means the database could not be used, and apalis runs the job
/// again. A job whose account holds its whole share of this worker ([`crate::share`]) is put
/// back in the queue instead, and one whose sending is paused is set aside until it is
/// resumed (`domain::pauses::park`).
pub async fn handle(
    task: Task,
    ctx: Data<Context>,
    id: TaskId,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    // Every log line of the job, ours and the libraries', carries the ids it is about.
    let span = match &task.job {
        Job::RouteTicket { ticket_id } => tracing::info_span!("route_ticket", %ticket_id),
        Job::SendDelivery {
            delivery_id,
            attempt,
        } => tracing::info_span!("send_delivery", %delivery_id, attempt),
        Job::SendWebhook {
            webhook_delivery_id,
            attempt,
        } => tracing::info_span!("send_webhook", %webhook_delivery_id, attempt),
    };
    async move {
        if ctx.pauses.may_cover(task.account_id) {
            let id = id.to_string();
            match pauses::park(&ctx.db, &id, worker.name(), task.account_id).await? {
                Parked::Parked => {
                    count(kind(&task.job), "parked");
                    tracing::debug!("sending is paused; job set aside until it is resumed");
                    return Ok(());
                }
                Parked::NotHeld => return Ok(()),
                Parked::NotPaused => {}
            }
        }
        let place = match task.account_id {
            Some(account) => match ctx.shares.take(account, crate::share::WAIT).await {
                Some(place) => Some(place),
                None => {
                    let id = id.to_string();
                    let postponed = queue::postpone(
                        &ctx.db,
                        &id,
                        worker.name(),
                        account,
                        crate::share::POSTPONE,
                    )
                    .await?;
                    count(kind(&task.job), "over_share");
                    tracing::debug!(%account, postponed, "the account holds its share of this worker; job put back");
                    return Ok(());
                }
            },
            None => None,
        };
        let result = run_job(task.job, ctx).await;
        drop(place);
        result
    }
    .instrument(span)
    .await
}

/// The `kind` label of a job's counts.
fn kind(job: &Job) -> &'static str {
    match job {
        Job::RouteTicket { .. } => "route",
        Job::SendDelivery { .. } => "send",
        Job::SendWebhook { .. } => "webhook",
    }
}

async fn run_job(job: Job, ctx: Data<Context>) -> Result<(), BoxDynError> {
    let kind = kind(&job);
    match job {
        Job::RouteTicket { ticket_id } => {
            let (recipients, outcomes) = deliver::route(&ctx, ticket_id)
                .await
                .inspect_err(|_| count(kind, "error"))?;
            count(kind, "routed");
            tracing::info!(%ticket_id, recipients, "ticket routed");
            for (delivery_id, outcome) in &outcomes {
                report(*delivery_id, 1, outcome);
            }
        }
        Job::SendDelivery {
            delivery_id,
            attempt,
        } => {
            let outcome = deliver::attempt(&ctx, delivery_id, attempt)
                .await
                .inspect_err(|_| count(kind, "error"))?;
            report(delivery_id, attempt, &outcome);
        }
        Job::SendWebhook {
            webhook_delivery_id,
            attempt,
        } => {
            let outcome = crate::webhook::attempt(&ctx, webhook_delivery_id, attempt)
                .await
                .inspect_err(|_| count(kind, "error"))?;
            let label = match outcome {
                Outcome::Sent => "succeeded",
                Outcome::Retrying(_) => "retrying",
                Outcome::Failed => "failed",
                Outcome::Deferred | Outcome::Skipped => "skipped",
            };
            tracing::info!(%webhook_delivery_id, attempt, outcome = label, "webhook attempt");
            count(kind, label);
        }
    }
    Ok(())
}

/// Logs and counts the outcome of one attempt.
fn report(delivery_id: uuid::Uuid, attempt: i32, outcome: &Outcome) {
    let label = match outcome {
        Outcome::Sent => {
            tracing::info!(%delivery_id, attempt, "delivery sent");
            "sent"
        }
        Outcome::Retrying(at) => {
            tracing::warn!(%delivery_id, attempt, next_attempt_at = %at, "delivery failed, will retry");
            "retrying"
        }
        Outcome::Failed => {
            tracing::error!(%delivery_id, attempt, "delivery failed for good");
            "failed"
        }
        Outcome::Deferred => {
            tracing::debug!(%delivery_id, attempt, "delivery held by another worker; looking again later");
            "deferred"
        }
        Outcome::Skipped => {
            tracing::debug!(%delivery_id, attempt, "nothing to send");
            "skipped"
        }
    };
    count("send", label);
}

fn count(kind: &'static str, outcome: &'static str) {
    metrics::counter!("ticketing_jobs_total", "kind" => kind, "outcome" => outcome).increment(1);
}

/// A worker name unique per process and per restart: apalis refuses a name that is still
/// registered, and a crashed worker's name stays registered for a while.
fn worker_name() -> String {
    let host = hostname::get().map_or_else(
        |_| "unknown".to_owned(),
        |h| h.to_string_lossy().into_owned(),
    );
    domain::ops::worker_name(&host, std::process::id())
}

/// Runs workers on the context's database until `shutdown` completes, then lets in-flight
/// jobs finish.
pub async fn run(
    ctx: Context,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let concurrency = ctx.delivery.concurrency;
    let poll = ctx.delivery.poll_interval;
    let grace = ctx.delivery.shutdown_grace;
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("stopping: no new jobs; waiting for the ones in flight");
        let _ = stopping.send(());
        Ok(())
    };
    // Read before the first job, then every second.
    ctx.pauses.refresh(&ctx.db).await;
    let pauses = tokio::spawn(ctx.pauses.clone().refresh_forever(ctx.db.clone()));
    let sweeper = tokio::spawn(maintain_forever(ctx.clone()));
    let folder = tokio::spawn(fold_tallies_forever(ctx.clone()));
    let monitor = Monitor::new().should_restart(|_, error| {
        tracing::error!(%error, "worker stopped; restarting it");
        true
    });
    let monitor = async move {
        match ctx.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let pool = ctx.db.get_postgres_connection_pool().clone();
                let config = apalis_postgres::Config::default()
                    .queue(QUEUE)
                    // One fetch fills every free slot (apalis fetches 10 by default).
                    .batch_size(concurrency)
                    .heartbeat_interval(HEARTBEAT)
                    .missed_heartbeats(MISSED_HEARTBEATS as usize);
                monitor
                    .register(move |_| {
                        // LISTEN/NOTIFY wakes the worker for new jobs at once; the interval finds
                        // jobs that were scheduled for later (retries) when they fall due.
                        let strategy = Strategy::new()
                            .stream(Pubsub::new(pool.clone(), QUEUE.to_owned()))
                            .interval(poll);
                        let storage = PostgresStorage::<Task>::new(&pool)
                            .with_config(config.clone())
                            .poll_with_strategy(strategy);
                        WorkerBuilder::new(worker_name())
                            .backend(storage)
                            // A panicking job fails (killed, no retry), not the worker; the
                            // sweep then ends its deliveries FAILED with the reason.
                            .catch_panic()
                            .concurrency(concurrency)
                            .data(ctx.clone())
                            .build(handle)
                    })
                    .run_with_signal(signal)
                    .await
            }
            _ => {
                let pool = ctx.db.get_sqlite_connection_pool().clone();
                let config = apalis_sqlite::Config::default()
                    .queue(QUEUE)
                    .batch_size(concurrency)
                    .heartbeat_interval(HEARTBEAT)
                    .missed_heartbeats(MISSED_HEARTBEATS as usize);
                monitor
                    .register(move |_| {
                        let storage = SqliteStorage::<Task>::new(&pool)
                            .with_config(config.clone())
                            .poll_with_interval(poll);
                        WorkerBuilder::new(worker_name())
                            .backend(storage)
                            // A panicking job fails (killed, no retry), not the worker; the
                            // sweep then ends its deliveries FAILED with the reason.
                            .catch_panic()
                            .concurrency(concurrency)
                            .data(ctx.clone())
                            .build(handle)
                    })
                    .run_with_signal(signal)
                    .await
            }
        }
    };
    // In-flight sends get `grace` to finish after the signal; whatever is still running then
    // is left to the queue, which hands it to another worker once this one's heartbeat stops.
    let deadline = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let result = tokio::select! {
        result = monitor => result.map_err(|e| RuntimeError::Monitor(e.to_string())),
        () = deadline => {
            tracing::warn!(?grace, "jobs still in flight after the shutdown grace period; leaving them to other workers");
            Ok(())
        }
    };
    sweeper.abort();
    folder.abort();
    pauses.abort();
    result
}

/// How often a worker folds the delivery count changes written by PostgreSQL's triggers into
/// the tallies: a reader adds up the changes not folded yet, so this bounds what it reads to
/// about a second of the queue's activity. A fold with nothing to do is one cheap statement.
const FOLD_TALLIES_EVERY: Duration = Duration::from_secs(1);

/// Folds delivery count changes every [`FOLD_TALLIES_EVERY`] until the worker stops.
async fn fold_tallies_forever(ctx: Context) {
    let mut every = tokio::time::interval(FOLD_TALLIES_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(error) = domain::ops::fold_tallies(&ctx.db).await {
            tracing::warn!(%error, "folding delivery counts failed; trying again next second");
        }
    }
}

/// At the worker's start and every `SWEEP_INTERVAL_MS` after, until it stops: sweeps for
/// e-mail and webhook deliveries left without a job (`domain::deliveries::sweep`,
/// `domain::webhooks::sweep`) and unrouted tickets, and deletes what retention
/// lets go (`domain::retention`). Every worker does; the sweep's job keys keep them from
/// adding more than one job per delivery and round, and a row deleted twice is deleted once.
async fn maintain_forever(ctx: Context) {
    let mut every = tokio::time::interval(ctx.delivery.sweep_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Where the sweeps go on next round.
    let mut cursor = None;
    let mut tickets_cursor = None;
    let mut webhooks_cursor = None;
    loop {
        every.tick().await;
        let retention = domain::retention::apply(
            &ctx.db,
            ctx.delivery.job_retention,
            ctx.delivery.conversation_retention,
        )
        .await;
        match retention {
            Ok(deleted) => {
                metrics::counter!("ticketing_retention_deleted_total", "kind" => "jobs")
                    .increment(deleted.jobs);
                metrics::counter!("ticketing_retention_deleted_total", "kind" => "conversations")
                    .increment(deleted.conversations);
                metrics::counter!("ticketing_retention_deleted_total", "kind" => "tickets")
                    .increment(deleted.tickets);
                metrics::counter!("ticketing_retention_deleted_total", "kind" => "flows")
                    .increment(deleted.flows);
                if deleted != domain::retention::Deleted::default() {
                    tracing::info!(
                        jobs = deleted.jobs,
                        conversations = deleted.conversations,
                        tickets = deleted.tickets,
                        flows = deleted.flows,
                        "retention: deleted"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "retention failed; trying again next round"),
        }
        match domain::deliveries::sweep(&ctx.db, ctx.delivery.stuck_after, cursor).await {
            Ok(swept) => {
                cursor = swept.next;
                for (outcome, n) in [("requeued", swept.requeued), ("failed", swept.failed)] {
                    metrics::counter!("ticketing_deliveries_swept_total", "outcome" => outcome)
                        .increment(n as u64);
                }
            }
            Err(error) => tracing::warn!(%error, "sweep failed; trying again next round"),
        }
        match domain::webhooks::sweep::sweep(&ctx.db, ctx.delivery.stuck_after, webhooks_cursor)
            .await
        {
            Ok(swept) => {
                webhooks_cursor = swept.next;
                for (outcome, n) in [("requeued", swept.requeued), ("failed", swept.failed)] {
                    metrics::counter!("ticketing_webhooks_swept_total", "outcome" => outcome)
                        .increment(n as u64);
                }
            }
            Err(error) => tracing::warn!(%error, "webhook sweep failed; trying again next round"),
        }
        let rebase_started = std::time::Instant::now();
        match domain::infra::queue::rebase_rounds(&ctx.db).await {
            // How long it held the accounts table: the pause it costs `openTicket`.
            Ok(Some(shift)) => tracing::info!(
                shift,
                took_ms = rebase_started.elapsed().as_millis() as u64,
                "queue rounds moved down"
            ),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "rebasing queue rounds failed; trying again next round")
            }
        }
        match domain::deliveries::sweep_unrouted(&ctx.db, ctx.delivery.stuck_after, tickets_cursor)
            .await
        {
            Ok(swept) => {
                tickets_cursor = swept.next;
                metrics::counter!("ticketing_tickets_swept_total", "outcome" => "requeued")
                    .increment(swept.requeued as u64);
            }
            Err(error) => {
                tracing::warn!(%error, "ticket sweep failed; trying again next round")
            }
        }
    }
}
