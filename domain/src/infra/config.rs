//! Settings shared by the `api` and `worker` binaries, read from environment variables.
//! Every variable has a safe default for the embedded setup; a bad value fails start-up with
//! the variable's name.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

/// A value that must never reach a log line or an error message.
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads `var`, or `None` when unset or empty.
pub fn var(var: &'static str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

/// Reads and parses `var`, falling back to `default` when unset.
pub fn parse<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
            var: name,
            message: format!("cannot parse {raw:?}: {e}"),
        }),
    }
}

/// Reads a duration given in milliseconds.
pub fn millis(name: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
    parse(name, default_ms).map(Duration::from_millis)
}

/// A whole number of days from `name` (at least 1), or `default_days`.
fn days(name: &'static str, default_days: u64) -> Result<Duration, ConfigError> {
    let n: u64 = parse(name, default_days)?;
    if n == 0 {
        return Err(ConfigError {
            var: name,
            message: "must be at least 1 day".into(),
        });
    }
    Ok(Duration::from_secs(n * 86_400))
}

/// Reads a boolean (`true`/`false`, `1`/`0`).
pub fn flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match var(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError {
            var: name,
            message: format!("expected true or false, got {other:?}"),
        }),
    }
}

/// Where the data lives.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: `sqlite://path` (created if missing) or `postgres://...`.
    pub url: Secret<String>,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub max_connections: u32,
}

/// The embedded default: a SQLite file under `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tickets.db";

impl DatabaseConfig {
    /// Reads `DATABASE_URL` and `DATABASE_MAX_CONNECTIONS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(DatabaseConfig {
            url: Secret::new(var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into())),
            max_connections: parse("DATABASE_MAX_CONNECTIONS", 10)?,
        })
    }

    /// Whether this names a PostgreSQL server (otherwise: a SQLite file).
    pub fn is_postgres(&self) -> bool {
        let url = self.url.expose();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }
}

/// How e-mails leave.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `SMTP_URL`: `smtp://host:port`, `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://host:465`. Unset: mails are written as `.eml` files to `outbox_dir`.
    pub smtp_url: Option<Secret<String>>,
    /// `SMTP_USERNAME` and `SMTP_PASSWORD`: credentials for the SMTP server, so a password
    /// needs no URL escaping. Sent only over TLS (`smtps://` or `?tls=required`).
    pub smtp_credentials: Option<(String, Secret<String>)>,
    /// `SMTP_CA_FILE`: a PEM certificate to trust for the SMTP server besides the public
    /// roots, for a relay with a private CA.
    pub smtp_ca_file: Option<PathBuf>,
    /// `MAIL_FROM`: the sender, `Name <address>` or a bare address.
    pub from: Mailbox,
    /// `OUTBOX_DIR`: where `.eml` files go without SMTP.
    pub outbox_dir: PathBuf,
    /// `SMTP_TIMEOUT_MS`: bound on one whole send (connect, dialogue, data).
    pub timeout: Duration,
    /// `SMTP_MAX_CONNECTIONS`: connections one process keeps open to the SMTP server at most
    /// (in use or idle); a send waits for one when all are in use.
    pub max_connections: usize,
}

impl MailConfig {
    /// Reads `SMTP_URL`, `SMTP_USERNAME`, `SMTP_PASSWORD`, `SMTP_CA_FILE`, `MAIL_FROM`,
    /// `OUTBOX_DIR`, `SMTP_TIMEOUT_MS` and `SMTP_MAX_CONNECTIONS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let from = var("MAIL_FROM").unwrap_or_else(|| "Tickets <tickets@localhost>".into());
        let smtp_credentials = match (var("SMTP_USERNAME"), var("SMTP_PASSWORD")) {
            (Some(user), Some(password)) => Some((user, Secret::new(password))),
            (None, None) => None,
            (_, None) => {
                return Err(ConfigError {
                    var: "SMTP_PASSWORD",
                    message: "SMTP_USERNAME is set, so the password is needed too".into(),
                });
            }
            (None, _) => {
                return Err(ConfigError {
                    var: "SMTP_USERNAME",
                    message: "SMTP_PASSWORD is set, so the user name is needed too".into(),
                });
            }
        };
        Ok(MailConfig {
            smtp_url: var("SMTP_URL").map(Secret::new),
            smtp_credentials,
            smtp_ca_file: var("SMTP_CA_FILE").map(PathBuf::from),
            from: from.parse().map_err(|e| ConfigError {
                var: "MAIL_FROM",
                message: format!("not a mailbox: {e}"),
            })?,
            outbox_dir: var("OUTBOX_DIR")
                .unwrap_or_else(|| "data/outbox".into())
                .into(),
            timeout: millis("SMTP_TIMEOUT_MS", 30_000)?,
            max_connections: match parse("SMTP_MAX_CONNECTIONS", 64)? {
                0 => {
                    return Err(ConfigError {
                        var: "SMTP_MAX_CONNECTIONS",
                        message: "must be at least 1".into(),
                    });
                }
                n => n,
            },
        })
    }
}

/// How the worker retries deliveries.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// `RETRY_BASE_MS`: the first backoff; each later one doubles, with jitter.
    pub retry_base: Duration,
    /// `RETRY_MAX_MS`: the longest backoff.
    pub retry_max: Duration,
    /// `MAX_DELIVERY_ATTEMPTS`: attempts before a delivery is FAILED for good.
    pub max_attempts: u32,
    /// `WORKER_CONCURRENCY`: jobs one worker process runs at once.
    pub concurrency: usize,
    /// `WORKER_ACCOUNT_SHARE`: the percentage of `concurrency` one account's jobs may hold
    /// (at least one job), so slow jobs of one account (a webhook that hangs, a large fan-out)
    /// leave the others room. 100 turns the cap off.
    pub account_share: u8,
    /// `POLL_INTERVAL_MS`: how often an idle worker looks for due jobs (PostgreSQL is also
    /// woken at once by LISTEN/NOTIFY).
    pub poll_interval: Duration,
    /// `SHUTDOWN_GRACE_MS`: how long a stopping worker waits for jobs in flight.
    pub shutdown_grace: Duration,
    /// `WEBHOOK_TIMEOUT_MS`: bound on one webhook request.
    pub webhook_timeout: Duration,
    /// `WEBHOOK_MAX_ATTEMPTS`: attempts before a webhook delivery is FAILED.
    pub webhook_max_attempts: u32,
    /// `WEBHOOK_ALLOW_PRIVATE_NETWORKS`: let webhooks reach loopback, private and link-local
    /// addresses (off: an account cannot make the worker call the internal network).
    pub webhook_allow_private_networks: bool,
    /// `STUCK_DELIVERY_AFTER_MS`: how long past its due time (or its lease) an unfinished
    /// delivery may wait before the sweep looks for its job.
    pub stuck_after: Duration,
    /// `SWEEP_INTERVAL_MS`: how often each worker sweeps for deliveries left without a job
    /// and deletes what retention lets go.
    pub sweep_interval: Duration,
    /// `JOB_RETENTION_DAYS`: finished queue jobs older than this are deleted.
    pub job_retention: Duration,
    /// `CONVERSATION_RETENTION_DAYS`: conversations idle for longer than this are deleted
    /// (their tickets keep their own copy of the transcript).
    pub conversation_retention: Duration,
}

/// The most attempts a webhook delivery may be given (each is kept and listed).
pub const MAX_WEBHOOK_ATTEMPTS: u32 = 100;

impl DeliveryConfig {
    /// Reads the retry and worker settings.
    pub fn from_env() -> Result<Self, ConfigError> {
        let cfg = DeliveryConfig {
            retry_base: millis("RETRY_BASE_MS", 30_000)?,
            retry_max: millis("RETRY_MAX_MS", 3_600_000)?,
            max_attempts: parse("MAX_DELIVERY_ATTEMPTS", 8)?,
            concurrency: parse("WORKER_CONCURRENCY", 8)?,
            account_share: parse("WORKER_ACCOUNT_SHARE", 50)?,
            poll_interval: millis("POLL_INTERVAL_MS", 200)?,
            shutdown_grace: millis("SHUTDOWN_GRACE_MS", 30_000)?,
            webhook_timeout: millis("WEBHOOK_TIMEOUT_MS", 10_000)?,
            webhook_max_attempts: parse("WEBHOOK_MAX_ATTEMPTS", 8)?,
            webhook_allow_private_networks: flag("WEBHOOK_ALLOW_PRIVATE_NETWORKS", false)?,
            stuck_after: millis("STUCK_DELIVERY_AFTER_MS", 600_000)?,
            sweep_interval: millis("SWEEP_INTERVAL_MS", 60_000)?,
            job_retention: days("JOB_RETENTION_DAYS", 7)?,
            conversation_retention: days("CONVERSATION_RETENTION_DAYS", 30)?,
        };
        if cfg.max_attempts == 0 {
            return Err(ConfigError {
                var: "MAX_DELIVERY_ATTEMPTS",
                message: "must be at least 1".into(),
            });
        }
        if !(1..=MAX_WEBHOOK_ATTEMPTS).contains(&cfg.webhook_max_attempts) {
            return Err(ConfigError {
                var: "WEBHOOK_MAX_ATTEMPTS",
                message: format!("must be between 1 and {MAX_WEBHOOK_ATTEMPTS}"),
            });
        }
        if cfg.sweep_interval.is_zero() {
            return Err(ConfigError {
                var: "SWEEP_INTERVAL_MS",
                message: "must be at least 1".into(),
            });
        }
        if !(1..=100).contains(&cfg.account_share) {
            return Err(ConfigError {
                var: "WORKER_ACCOUNT_SHARE",
                message: "must be a percentage between 1 and 100".into(),
            });
        }
        if cfg.concurrency == 0 {
            return Err(ConfigError {
                var: "WORKER_CONCURRENCY",
                message: "must be at least 1".into(),
            });
        }
        Ok(cfg)
    }
}
