//! Live updates over `/graphql/ws` as a hostile or careless client meets them: a revoked key's
//! subscriptions end on every API process, a connection that never sends `connection_init` is
//! closed, a connection cannot run more than its share of subscriptions, and a message is
//! capped like a request body.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use integration_tests::{Engine, TestApp, TestSmtp, on_both_engines};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(subscriptions_end_when_their_key_is_revoked);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `graphql-transport-ws` connection to the API at `graphql_url`.
pub(crate) async fn connect(graphql_url: &str) -> Socket {
    let url = format!("{}/ws", graphql_url.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next protocol message, or how the connection ended: `Err(close code)`.
pub(crate) async fn next(socket: &mut Socket, within: Duration) -> Result<Value, Option<u16>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("nothing within {within:?}"));
        match message {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Connects and sends `connection_init` with `key`; panics unless it is acknowledged.
pub(crate) async fn open(graphql_url: &str, key: &str) -> Socket {
    let mut socket = connect(graphql_url).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } }),
    )
    .await;
    let ack = next(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(ack.unwrap()["type"], "connection_ack");
    socket
}

fn subscribe(id: &str) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": "subscription { ticketOpened { id number } }" } })
}

async fn subscriptions_end_when_their_key_is_revoked(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let created = app
        .admin(
            "mutation { createApiKey(kind: ADMIN) { key { id } secret } }",
            json!({}),
        )
        .await;
    let key = created["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = created["createApiKey"]["key"]["id"].clone();
    // On PostgreSQL, a second API process hears of the revocation through the database.
    let other = match engine {
        Engine::Postgres => Some(app.start_another_api().await),
        Engine::Sqlite => None,
    };
    let mut sockets = vec![open(&app.url, &key).await];
    if let Some((url, _)) = &other {
        sockets.push(open(url, &key).await);
    }
    for socket in &mut sockets {
        send(socket, subscribe("1")).await;
    }
    // Give the subscriptions a moment to be registered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    open_ticket(&app, &app.widget_key, &step, "before").await;
    for socket in &mut sockets {
        let event = next(socket, Duration::from_secs(5)).await.unwrap();
        assert_eq!(event["type"], "next", "{event:#}");
    }

    app.admin(
        "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
        json!({ "id": key_id }),
    )
    .await;
    for (i, socket) in sockets.iter_mut().enumerate() {
        // Both test APIs share this process's event bus, so each relays the ticket's
        // notification once more: skip those.
        let ended = loop {
            match next(socket, Duration::from_secs(5)).await {
                Ok(event) if event["type"] == "next" => {}
                other => break other,
            }
        };
        assert_eq!(ended, Err(Some(4403)), "socket {i} after the revocation");
    }
    // And the key cannot open a new one.
    let mut socket = connect(&app.url).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } }),
    )
    .await;
    assert!(next(&mut socket, Duration::from_secs(5)).await.is_err());
    if let Some((_, running)) = other {
        running.stop().await;
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_has_bounds() {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(Engine::Sqlite, &smtp).await else {
        return;
    };
    // No connection_init: closed with 4408 after the init timeout.
    let mut silent = connect(&app.url).await;
    let started = std::time::Instant::now();
    assert_eq!(
        next(&mut silent, Duration::from_secs(15)).await,
        Err(Some(4408))
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );

    // At most 20 subscriptions at once; one more is refused for its id, the rest run on.
    let mut socket = open(&app.url, &app.admin_key).await;
    for i in 0..20 {
        send(&mut socket, subscribe(&format!("s{i}"))).await;
    }
    send(&mut socket, subscribe("one-too-many")).await;
    let refused = next(&mut socket, Duration::from_secs(5)).await.unwrap();
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "one-too-many");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "LIMIT_REACHED");
    // Completing one makes room.
    send(&mut socket, json!({ "id": "s0", "type": "complete" })).await;
    send(&mut socket, subscribe("s20")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, step) = flow_with_ticket_step(&app, "Destek", "offline_message", &[]).await;
    open_ticket(&app, &app.widget_key, &step, "hi").await;
    let mut heard = std::collections::BTreeSet::new();
    while heard.len() < 20 {
        let message = next(&mut socket, Duration::from_secs(5)).await.unwrap();
        match message["type"].as_str() {
            Some("next") => {
                heard.insert(message["id"].as_str().unwrap().to_owned());
            }
            // The server confirms the completed one.
            Some("complete") => assert_eq!(message["id"], "s0"),
            _ => panic!("{message:#}"),
        }
    }
    assert!(heard.contains("s20") && !heard.contains("s0"), "{heard:?}");

    // A message over MAX_BODY_BYTES ends the connection.
    let huge = json!({ "id": "big", "type": "subscribe", "payload": {
        "query": "subscription { ticketOpened { id } }",
        "variables": { "pad": "x".repeat(app.config.max_body_bytes + 1) } } });
    let _ = socket.send(Message::text(huge.to_string())).await;
    let ended = next(&mut socket, Duration::from_secs(5)).await;
    assert!(
        matches!(ended, Err(None) | Err(Some(1009))),
        "{ended:?}; expected the connection to end"
    );
    app.stop().await;
}
