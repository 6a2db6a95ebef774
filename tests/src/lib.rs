//! The integration test harness: the real API (with its embedded worker) on a fresh database
//! per test, SQLite or PostgreSQL, sending mail to a real SMTP server over TCP.
//!
//! PostgreSQL tests use `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! to create one database per test. When that server cannot be reached they print a line
//! saying they did not run and pass - unless `CI=true`, where they fail.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed set-up step is a failed test"
)]

pub mod postgres_server;
pub mod smtp;

use std::path::PathBuf;
use std::time::Duration;

use api::{ApiConfig, App, RunningApp};
use domain::infra::config::{DatabaseConfig, DeliveryConfig, MailConfig, Secret};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use sqlx::Connection;

pub use postgres_server::PostgresServer;
pub use smtp::{Fault, ReceivedMail, TestSmtp};

/// The database engine a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs one scenario function on SQLite and on PostgreSQL, as two tests named `sqlite` and
/// `postgres` inside a module named after the scenario.
#[macro_export]
macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario($crate::Engine::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario($crate::Engine::Postgres).await
            }
        }
    )*};
}

/// Once per test process (any test may call it; the engine macros do): ring as the rustls provider (the test peers also compile aws-lc-rs,
/// and reqwest then needs to be told), and logs to the test output when `TEST_LOG` is set.
pub fn init_test_process() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
    }
}

fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Database { admin_url: String, name: String },
}

impl TestDb {
    /// A new database, or `None` (after saying so) when PostgreSQL is unreachable outside CI.
    pub async fn create(engine: Engine) -> Option<TestDb> {
        let id = ulid::Ulid::new().to_string().to_lowercase();
        match engine {
            Engine::Sqlite => {
                let dir = std::env::temp_dir().join("ticketing-tests").join(&id);
                std::fs::create_dir_all(&dir).expect("create a temporary folder");
                Some(TestDb {
                    engine,
                    url: format!("sqlite://{}", dir.join("tickets.db").display()),
                    cleanup: Cleanup::Dir(dir),
                })
            }
            Engine::Postgres => Self::create_on(postgres_admin_url()).await,
        }
    }

    /// A new database on the PostgreSQL server of `admin_url`, or `None` (after saying so)
    /// when it is unreachable outside CI.
    pub async fn create_on(admin_url: String) -> Option<TestDb> {
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let mut conn = match sqlx::PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(e) if !in_ci() => {
                let test = std::thread::current().name().unwrap_or("?").to_owned();
                println!(
                    "SKIPPED (did not run): {test}: PostgreSQL is not reachable at {admin_url}: {e}"
                );
                eprintln!(
                    "SKIPPED (did not run): {test}: PostgreSQL is not reachable at {admin_url}: {e}"
                );
                return None;
            }
            Err(e) => panic!("CI=true and PostgreSQL is not reachable at {admin_url}: {e}"),
        };
        let name = format!("ticketing_test_{id}");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        Some(TestDb {
            engine: Engine::Postgres,
            url: format!("{base}/{name}"),
            cleanup: Cleanup::Database { admin_url, name },
        })
    }

    /// Removes the database.
    pub async fn drop_database(self) {
        match self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            }
        }
    }
}

/// The operator token of test apps.
pub const OPS_TOKEN: &str = "test-operator-token";

/// Settings for a test app: fast polling and short backoffs, mail to `smtp`.
pub fn test_config(db_url: &str, smtp: &TestSmtp) -> ApiConfig {
    ApiConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        metrics_listen: "127.0.0.1:0".parse().expect("address"),
        database: DatabaseConfig {
            url: Secret::new(db_url.to_owned()),
            max_connections: 8,
        },
        mail: MailConfig {
            smtp_url: Some(Secret::new(smtp.url())),
            smtp_credentials: None,
            smtp_ca_file: None,
            from: "Tickets <tickets@example.org>".parse().expect("mailbox"),
            outbox_dir: std::env::temp_dir().join("ticketing-tests-outbox"),
            timeout: Duration::from_secs(10),
            max_connections: 64,
        },
        delivery: DeliveryConfig {
            retry_base: Duration::from_millis(300),
            retry_max: Duration::from_secs(2),
            max_attempts: 4,
            concurrency: 4,
            account_share: 50,
            poll_interval: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(5),
            webhook_max_attempts: 3,
            // The tests' receivers listen on loopback.
            webhook_allow_private_networks: true,
            stuck_after: Duration::from_secs(600),
            sweep_interval: Duration::from_secs(60),
            job_retention: Duration::from_secs(7 * 86_400),
            conversation_retention: Duration::from_secs(30 * 86_400),
        },
        embedded_worker: true,
        max_body_bytes: 256 * 1024,
        conversation_idle: Duration::from_secs(600),
        ops_token: Some(Secret::new(OPS_TOKEN.to_owned())),
        widget_rate_per_minute: 0,
        client_rate_per_minute: 0,
        unknown_key_rate_per_minute: 0,
        key_cache_ttl: Duration::from_secs(10),
    }
}

/// Workers started by [`TestApp::start_workers`].
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Stops them gracefully.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            h.await.expect("worker task");
        }
    }
}

/// A running API with its worker, one account and its keys.
pub struct TestApp {
    pub engine: Engine,
    pub config: ApiConfig,
    pub db: DatabaseConnection,
    pub url: String,
    /// `http://127.0.0.1:PORT/metrics` on the metrics listener.
    pub metrics_url: String,
    pub admin_key: String,
    pub widget_key: String,
    pub account_id: String,
    client: reqwest::Client,
    running: Option<RunningApp>,
    test_db: Option<TestDb>,
}

impl TestApp {
    /// Starts the app on a fresh database with one account; `None` when the engine is not
    /// available here (see the module docs).
    pub async fn spawn(engine: Engine, smtp: &TestSmtp) -> Option<TestApp> {
        Self::spawn_with(engine, smtp, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with settings changed by `tweak`.
    pub async fn spawn_with(
        engine: Engine,
        smtp: &TestSmtp,
        tweak: impl FnOnce(&mut ApiConfig),
    ) -> Option<TestApp> {
        let test_db = TestDb::create(engine).await?;
        Some(Self::spawn_in(test_db, smtp, tweak).await)
    }

    /// Like [`TestApp::spawn_with`], on a new database of the PostgreSQL server at `admin_url`
    /// (see [`PostgresServer`]).
    pub async fn spawn_on_server(
        admin_url: String,
        smtp: &TestSmtp,
        tweak: impl FnOnce(&mut ApiConfig),
    ) -> Option<TestApp> {
        let test_db = TestDb::create_on(admin_url).await?;
        Some(Self::spawn_in(test_db, smtp, tweak).await)
    }

    async fn spawn_in(
        test_db: TestDb,
        smtp: &TestSmtp,
        tweak: impl FnOnce(&mut ApiConfig),
    ) -> TestApp {
        init_test_process();
        let engine = test_db.engine;
        let mut config = test_config(&test_db.url, smtp);
        tweak(&mut config);
        let db = domain::infra::db::connect(&config.database)
            .await
            .expect("connect");
        domain::infra::db::migrate(&db).await.expect("migrate");
        let account = domain::keys::create_account(&db, "Acme")
            .await
            .expect("account");
        let running = App {
            config: config.clone(),
            db: db.clone(),
        }
        .start()
        .await
        .expect("start");
        TestApp {
            engine,
            config,
            db,
            url: format!("http://{}/graphql", running.addr),
            metrics_url: format!("http://{}/metrics", running.metrics_addr),
            admin_key: account.admin_key,
            widget_key: account.widget_key,
            account_id: account.account_id.to_string(),
            client: reqwest::Client::new(),
            running: Some(running),
            test_db: Some(test_db),
        }
    }

    /// Starts `n` workers on this app's database, each with its own connection pool, like
    /// separate `worker` processes.
    pub async fn start_workers(&self, n: usize) -> Workers {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut handles = Vec::new();
        for _ in 0..n {
            let db = domain::infra::db::connect(&self.config.database)
                .await
                .expect("connect");
            let ctx = worker::Context::new(db, &self.config.mail, self.config.delivery.clone())
                .expect("worker context");
            let mut stopped = stopped.clone();
            handles.push(tokio::spawn(async move {
                let signal = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                worker::run(ctx, signal).await.expect("worker run");
            }));
        }
        Workers { stop, handles }
    }

    /// Another API on this app's database, with its own pool and key cache, like a second
    /// `api` process behind the same load balancer: its GraphQL URL, and the app to stop.
    pub async fn start_another_api(&self) -> (String, RunningApp) {
        let db = domain::infra::db::connect(&self.config.database)
            .await
            .expect("connect");
        let mut config = self.config.clone();
        config.embedded_worker = false;
        let running = App { config, db }.start().await.expect("start");
        (format!("http://{}/graphql", running.addr), running)
    }

    /// Another account on the same database, as `(admin key, widget key)`.
    pub async fn other_account(&self) -> (String, String) {
        let other = domain::keys::create_account(&self.db, "Other")
            .await
            .expect("account");
        (other.admin_key, other.widget_key)
    }

    /// Sends a GraphQL request with `key` (if any) and returns the whole JSON response.
    pub async fn gql(&self, key: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql_at(&self.url, key, query, variables).await
    }

    /// [`TestApp::gql`] against the GraphQL endpoint at `url` (another API process).
    pub async fn gql_at(
        &self,
        url: &str,
        key: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Value {
        let mut request = self
            .client
            .post(url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        response.json().await.expect("JSON response")
    }

    /// `GET path` on the app, with a bearer token if given: (status, body).
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, String) {
        let base = self.url.trim_end_matches("/graphql");
        let mut request = self.client.get(format!("{base}{path}"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// The app's base address, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.url.trim_end_matches("/graphql").to_owned()
    }

    /// Runs an operation with the admin key and returns `data`; panics on any error.
    pub async fn admin(&self, query: &str, variables: Value) -> Value {
        self.admin_as(&self.admin_key, query, variables).await
    }

    /// [`TestApp::admin`] with another account's admin `key`.
    pub async fn admin_as(&self, key: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(key), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Polls `query` (admin key) until `done(data)` holds, for at most `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        query: &str,
        variables: Value,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let key = self.admin_key.clone();
        self.wait_for_as(&key, timeout, query, variables, done)
            .await
    }

    /// Like [`TestApp::wait_for`], with another key (the operator token, say).
    pub async fn wait_for_as(
        &self,
        key: &str,
        timeout: Duration,
        query: &str,
        variables: Value,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = std::time::Instant::now();
        loop {
            let body = self.gql(Some(key), query, variables.clone()).await;
            assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
            let data = body["data"].clone();
            if done(&data) {
                return data;
            }
            assert!(
                start.elapsed() < timeout,
                "condition not met within {timeout:?}; last data: {data:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the app and removes its database.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        self.db.clone().close().await.ok();
        if let Some(db) = self.test_db.take() {
            db.drop_database().await;
        }
    }
}

/// The `extensions.code` of the first error, or panics when there is none.
pub fn error_code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {body:#}"))
        .to_owned()
}

/// The `extensions.field` of the first error.
pub fn error_field(body: &Value) -> String {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a field, got {body:#}"))
        .to_owned()
}

/// The `worker` binary next to this test binary (cargo builds it with the workspace's tests).
pub fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/it-<hash> -> target/debug/worker
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    let path = dir.join("worker");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build)",
        path.display()
    );
    path
}

/// A `worker` process started by a test; killed when dropped.
pub struct WorkerProcess(pub std::process::Child);

impl WorkerProcess {
    /// Sends SIGTERM and waits (at most `within`) for the exit status.
    pub async fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for the worker") {
                return status;
            }
            assert!(
                start.elapsed() < within,
                "the worker did not stop within {within:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address with a port nothing listens on (a moment ago), for a process to serve
/// on.
pub fn free_local_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port();
    format!("127.0.0.1:{port}")
}

impl TestApp {
    /// Starts the real `worker` binary on this app's database, sending to `smtp`.
    pub fn start_worker_process(&self, smtp: &TestSmtp, concurrency: usize) -> WorkerProcess {
        self.start_worker_process_on(smtp, concurrency, "127.0.0.1:0")
    }

    /// Like [`TestApp::start_worker_process`], serving its health and metrics endpoints on
    /// `listen`.
    pub fn start_worker_process_on(
        &self,
        smtp: &TestSmtp,
        concurrency: usize,
        listen: &str,
    ) -> WorkerProcess {
        self.start_worker_process_with(smtp, concurrency, listen, &[])
    }

    /// Like [`TestApp::start_worker_process_on`], with more environment variables.
    pub fn start_worker_process_with(
        &self,
        smtp: &TestSmtp,
        concurrency: usize,
        listen: &str,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let child = std::process::Command::new(worker_binary())
            .envs(env.iter().copied())
            .env("DATABASE_URL", self.config.database.url.expose())
            .env("SMTP_URL", smtp.url())
            .env("WORKER_LISTEN_ADDR", listen)
            .env("WORKER_CONCURRENCY", concurrency.to_string())
            // Several tests share the machine's PostgreSQL and its connection limit.
            .env("DATABASE_MAX_CONNECTIONS", "5")
            .env("SMTP_TIMEOUT_MS", "3000")
            .env("RETRY_BASE_MS", "200")
            .env("POLL_INTERVAL_MS", "50")
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start the worker binary");
        WorkerProcess(child)
    }
}
