//! The delivery worker: takes ticket jobs from the apalis queue, resolves each new ticket's
//! recipients and sends every delivery with its own retries and backoff.
//!
//! The same code runs as the `worker` binary (any number of processes on PostgreSQL) and inside
//! the `api` process for the embedded setup.

pub mod batch;
pub mod deliver;
pub mod http;
pub mod paused;
pub mod runtime;
pub mod share;
pub mod together;
pub mod webhook;

use std::time::Duration;

use domain::infra::config::{ConfigError, DatabaseConfig, DeliveryConfig, MailConfig};
use domain::mail::{Mailbox, Mailer};
use sea_orm::DatabaseConnection;

pub use runtime::run;

/// Everything the worker reads from the environment.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// `WORKER_LISTEN_ADDR`: `/healthz`, `/readyz` and `/metrics` of this process.
    pub listen: std::net::SocketAddr,
    pub database: DatabaseConfig,
    pub mail: MailConfig,
    pub delivery: DeliveryConfig,
}

impl WorkerConfig {
    /// Reads the database, mail and delivery settings.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(WorkerConfig {
            listen: domain::infra::config::parse(
                "WORKER_LISTEN_ADDR",
                std::net::SocketAddr::from(([127, 0, 0, 1], 9091)),
            )?,
            database: DatabaseConfig::from_env()?,
            mail: MailConfig::from_env()?,
            delivery: DeliveryConfig::from_env()?,
        })
    }
}

/// What every job handler needs; cheap to clone.
#[derive(Clone, Debug)]
pub struct Context {
    pub db: DatabaseConnection,
    pub mailer: Mailer,
    pub from: Mailbox,
    pub send_timeout: Duration,
    pub delivery: DeliveryConfig,
    /// For webhook requests.
    pub http: reqwest::Client,
    /// The places each account holds among this worker's concurrency.
    pub shares: share::Shares,
    /// The routing jobs' writes, shared between the jobs running at once.
    pub together: together::Together,
    /// The sending pauses as this worker last read them.
    pub pauses: paused::Pauses,
}

impl Context {
    /// Builds the context from configuration and an open database.
    pub fn new(
        db: DatabaseConnection,
        mail: &MailConfig,
        delivery: DeliveryConfig,
    ) -> Result<Self, String> {
        Self::with_mailer(db, Mailer::from_config(mail)?, mail, delivery)
    }

    /// [`Context::new`] with a mailer the process already has, so its connections are shared.
    pub fn with_mailer(
        db: DatabaseConnection,
        mailer: Mailer,
        mail: &MailConfig,
        delivery: DeliveryConfig,
    ) -> Result<Self, String> {
        let together = together::Together::new(
            &db,
            domain::lease::length(mail.timeout),
            delivery.concurrency,
        );
        Ok(Context {
            db,
            mailer,
            from: mail.from.clone(),
            send_timeout: mail.timeout,
            http: webhook::client(
                delivery.webhook_timeout,
                delivery.webhook_allow_private_networks,
            )?,
            shares: share::Shares::new(delivery.concurrency, delivery.account_share),
            together,
            delivery,
            pauses: paused::Pauses::default(),
        })
    }
}
