//! The database going away under the API: requests fail with `SERVICE_UNAVAILABLE`, the
//! process stays up, and it serves again when the database is back. PostgreSQL is reached
//! through a TCP proxy the test can cut, so the machine's server (shared with other tests)
//! keeps running.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::infra::config::Secret;
use integration_tests::{Engine, TestApp, TestSmtp, error_code};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::ops::*;

/// Forwards 127.0.0.1:<port> to PostgreSQL until cut; while cut, connections are refused.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    running: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            upstream,
            running: Arc::new(Mutex::new(None)),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream;
        let mut tasks = JoinSet::new();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let held = connections.clone();
        tasks.spawn(async move {
            // Dropping this task drops the listener (new connections are refused) and, through
            // `held`, every forwarded connection.
            let _held = held;
            while let Ok((mut client, _)) = listener.accept().await {
                connections.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        *self.running.lock().unwrap() = Some(tasks);
    }

    /// The database "goes down": every connection is cut and new ones are refused.
    fn cut(&self) {
        if let Some(mut tasks) = self.running.lock().unwrap().take() {
            tasks.abort_all();
        }
    }

    /// The database is back on the same address.
    async fn restore(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
    }
}

mod a_database_outage_is_survived {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_database_outage_is_survived().await
    }
}

async fn a_database_outage_is_survived() {
    let smtp = TestSmtp::start();
    let proxy = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let proxied = proxy.addr.to_string();
    let Some(app) = TestApp::spawn_with(Engine::Postgres, &smtp, |c| {
        let url = c.database.url.expose().replace("127.0.0.1:5432", &proxied);
        c.database.url = Secret::new(url);
    })
    .await
    else {
        return;
    };
    app.admin(CREATE_FLOW, json!({ "name": "Destek" })).await;

    proxy.cut();
    let body = app.gql(Some(&app.admin_key), FLOWS, json!({})).await;
    assert_eq!(error_code(&body), "SERVICE_UNAVAILABLE", "{body:#}");
    assert!(
        !body.to_string().contains("5432"),
        "no connection details leak: {body:#}"
    );
    let body = app
        .gql(
            Some(&app.admin_key),
            CREATE_FLOW,
            json!({ "name": "lost?" }),
        )
        .await;
    assert_eq!(error_code(&body), "SERVICE_UNAVAILABLE", "{body:#}");
    assert_eq!(
        app.get("/healthz", None).await.0,
        200,
        "the process stays up"
    );
    assert_eq!(app.get("/readyz", None).await.0, 503);

    proxy.restore().await;
    let back = Instant::now();
    let data = loop {
        let body = app.gql(Some(&app.admin_key), FLOWS, json!({})).await;
        if body.get("errors").is_none() {
            break body["data"].clone();
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "still failing: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "serving again {:?} after the database came back",
        back.elapsed()
    );
    let names: Vec<&str> = data["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Destek"],
        "the write refused during the outage left nothing behind"
    );
    assert_eq!(app.get("/readyz", None).await.0, 200);
    app.stop().await;
}
