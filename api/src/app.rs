//! Starting and stopping the service: the HTTP server and, when configured, the embedded
//! worker, over one database pool.

use std::net::SocketAddr;
use std::sync::Arc;

use domain::keys::KeyCache;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ApiConfig;
use crate::graphql;
use crate::http;
use crate::rate_limit::{Limits, RateLimiter};
use crate::state::AppState;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the worker: {0}")]
    Worker(String),
    #[error("cannot set up the mailer: {0}")]
    Mail(String),
}

/// A service ready to start on an open, migrated database.
pub struct App {
    pub config: ApiConfig,
    pub db: DatabaseConnection,
}

/// A running service.
pub struct RunningApp {
    /// Where it listens (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    metrics: JoinHandle<std::io::Result<()>>,
    worker: Option<JoinHandle<()>>,
    relay: Option<JoinHandle<()>>,
    forget: JoinHandle<()>,
}

impl App {
    /// Binds the listener, then serves (and runs the embedded worker) in the background.
    pub async fn start(self) -> Result<RunningApp, StartError> {
        let listener = TcpListener::bind(self.config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: self.config.listen,
            source,
        })?;
        let metrics_listener = TcpListener::bind(self.config.metrics_listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: self.config.metrics_listen,
                source,
            })?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: self.config.metrics_listen,
                source,
            })?;
        let (stop, stopped) = watch::channel(false);
        domain::infra::telemetry::prometheus();
        // Subscribers hear of every process's writes through the database.
        let relay =
            (self.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres).then(|| {
                tokio::spawn(domain::infra::events::relay_postgres(
                    self.config.database.url.expose().clone(),
                ))
            });

        let outbound = domain::rule_check::Outbound {
            mailer: domain::mail::Mailer::from_config(&self.config.mail)
                .map_err(StartError::Mail)?,
            from: self.config.mail.from.clone(),
            timeout: self.config.mail.timeout,
        };
        let worker = if self.config.embedded_worker {
            // One mailer for notifications and rules' test e-mails: one set of connections.
            let ctx = worker::Context::with_mailer(
                self.db.clone(),
                outbound.mailer.clone(),
                &self.config.mail,
                self.config.delivery.clone(),
            )
            .map_err(StartError::Worker)?;
            let signal = wait_for(stopped.clone());
            Some(tokio::spawn(async move {
                if let Err(error) = worker::run(ctx, signal).await {
                    tracing::error!(%error, "embedded worker stopped");
                }
            }))
        } else {
            None
        };

        let keys = Arc::new(KeyCache::new(self.config.key_cache_ttl));
        let forget = tokio::spawn(domain::keys::forget_revoked(keys.clone()));
        let state = AppState {
            schema: graphql::schema(
                self.db.clone(),
                self.config.conversation_idle,
                outbound,
                keys.clone(),
            ),
            db: self.db,
            ops_token: self.config.ops_token.clone(),
            max_body_bytes: self.config.max_body_bytes,
            limits: Arc::new(Limits {
                per_address: RateLimiter::new(self.config.client_rate_per_minute),
                per_key: RateLimiter::new(self.config.widget_rate_per_minute),
                unknown_per_address: RateLimiter::new(self.config.unknown_key_rate_per_minute),
            }),
            keys,
            mail_goes: mail_goes(&self.config.mail).into(),
        };
        let metrics = {
            let router = http::metrics_router(state.db.clone());
            let stopped = stopped.clone();
            tokio::spawn(async move {
                axum::serve(metrics_listener, router)
                    .with_graceful_shutdown(wait_for(stopped))
                    .await
            })
        };
        let router = http::router(state, self.config.max_body_bytes);
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(wait_for(stopped))
            .await
        });
        Ok(RunningApp {
            addr,
            metrics_addr,
            stop,
            server,
            metrics,
            worker,
            relay,
            forget,
        })
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

impl RunningApp {
    /// Stops taking requests and jobs, and waits for in-flight ones to finish.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Ok(Err(error)) = self.server.await {
            tracing::error!(%error, "HTTP server stopped with an error");
        }
        if let Ok(Err(error)) = self.metrics.await {
            tracing::error!(%error, "metrics server stopped with an error");
        }
        if let Some(worker) = self.worker {
            let _ = worker.await;
        }
        if let Some(relay) = self.relay {
            relay.abort();
        }
        self.forget.abort();
    }

    /// Runs until `shutdown` completes, then stops gracefully.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        shutdown.await;
        self.stop().await;
    }
}

/// Where notification e-mails go, as the demo page says it.
fn mail_goes(mail: &domain::infra::config::MailConfig) -> String {
    if mail.smtp_url.is_some() {
        "handed to the SMTP server of SMTP_URL; look in that mailbox.".to_owned()
    } else {
        let dir = std::path::absolute(&mail.outbox_dir).unwrap_or_else(|_| mail.outbox_dir.clone());
        format!(
            "SMTP_URL is not set, so it was written as an .eml file (open it with any mail program) in {}.",
            dir.display()
        )
    }
}
