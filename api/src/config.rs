//! The `api` binary's settings, read once from environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use domain::infra::config::{
    ConfigError, DatabaseConfig, DeliveryConfig, MailConfig, Secret, flag, millis, parse, var,
};

/// Everything the API process reads from the environment.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// `LISTEN_ADDR`: where GraphQL and the health endpoints are served.
    pub listen: SocketAddr,
    /// `METRICS_LISTEN_ADDR`: where `/metrics` is served, apart from the public port so that
    /// whoever reaches the API cannot read or load it.
    pub metrics_listen: SocketAddr,
    pub database: DatabaseConfig,
    pub mail: MailConfig,
    pub delivery: DeliveryConfig,
    /// `EMBEDDED_WORKER`: run the delivery worker inside this process. Defaults to true on
    /// SQLite (the one-command setup) and false on PostgreSQL (run `worker` processes).
    pub embedded_worker: bool,
    /// `MAX_BODY_BYTES`: largest accepted request body.
    pub max_body_bytes: usize,
    /// `CONVERSATION_IDLE_TIMEOUT_MS`: a conversation idle this long expires.
    pub conversation_idle: Duration,
    /// `OPS_TOKEN`: the operator's bearer token (every account's queue and deliveries, the
    /// `/ops` page). Unset: no operator access.
    pub ops_token: Option<Secret<String>>,
    /// `WIDGET_RATE_LIMIT_PER_MINUTE`: requests one widget key may make per minute (0: off).
    pub widget_rate_per_minute: u32,
    /// `CLIENT_RATE_LIMIT_PER_MINUTE`: widget requests one client address may make per minute
    /// (0: off).
    pub client_rate_per_minute: u32,
    /// `UNKNOWN_KEY_RATE_LIMIT_PER_MINUTE`: requests one client address may make per minute
    /// without a key this process has cached (no key, an unknown or revoked key: each costs a
    /// database lookup; 0: off).
    pub unknown_key_rate_per_minute: u32,
    /// `API_KEY_CACHE_SECONDS`: how long this process trusts a key it has resolved without
    /// asking the database again (0: ask on every request). Revocations reach every process
    /// at once over the database; this bounds a lost notification.
    pub key_cache_ttl: Duration,
}

impl ApiConfig {
    /// Reads all settings; a bad value names its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let database = DatabaseConfig::from_env()?;
        let embedded_default = !database.is_postgres();
        Ok(ApiConfig {
            listen: parse("LISTEN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            metrics_listen: parse(
                "METRICS_LISTEN_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9090)),
            )?,
            embedded_worker: flag("EMBEDDED_WORKER", embedded_default)?,
            mail: MailConfig::from_env()?,
            delivery: DeliveryConfig::from_env()?,
            max_body_bytes: parse("MAX_BODY_BYTES", 256 * 1024)?,
            conversation_idle: millis("CONVERSATION_IDLE_TIMEOUT_MS", 30 * 60 * 1000)?,
            ops_token: var("OPS_TOKEN").map(Secret::new),
            widget_rate_per_minute: parse("WIDGET_RATE_LIMIT_PER_MINUTE", 600)?,
            client_rate_per_minute: parse("CLIENT_RATE_LIMIT_PER_MINUTE", 60)?,
            unknown_key_rate_per_minute: parse("UNKNOWN_KEY_RATE_LIMIT_PER_MINUTE", 60)?,
            key_cache_ttl: Duration::from_secs(parse("API_KEY_CACHE_SECONDS", 10)?),
            database,
        })
    }
}
