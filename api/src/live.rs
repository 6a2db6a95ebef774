//! Serving one live-updates WebSocket (`/graphql/ws`): async-graphql-axum's protocol engine
//! (`graphql-transport-ws` and the older `graphql-ws`) between two channels, with the guards
//! a public endpoint needs around it, which its ready-made loop does not offer:
//!
//! - `connection_init` must arrive and be accepted within [`INIT_TIMEOUT`], or the socket is
//!   closed with 4408, as the protocol says;
//! - a connection runs at most [`MAX_SUBSCRIPTIONS`] subscriptions at once; one more is
//!   answered with an `error` message for its id (code `LIMIT_REACHED`) and not started;
//! - the key follows the connection: when it is revoked (the revocation event, which
//!   reaches every API process; or a periodic check, in case an event was missed) the socket
//!   is closed with 4403;
//! - a message larger than `MAX_BODY_BYTES` ends the connection (axum's message limit).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket as Socket};
use domain::infra::events::Event;
use domain::keys::{KeyCache, Principal};
use futures_util::{SinkExt, StreamExt};
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::code::Code;
use crate::graphql::ApiSchema;

/// How long a client has to send an acceptable `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Subscriptions one connection may run at once.
pub const MAX_SUBSCRIPTIONS: usize = 20;
/// How often a connection's key is checked again, besides the revocation events.
const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// The key a connection was accepted with, once `connection_init` succeeded.
#[derive(Clone, Default)]
pub struct Accepted(Arc<OnceLock<(Principal, String)>>);

impl Accepted {
    /// Records the key the connection runs under.
    pub fn set(&self, principal: Principal, key: &str) {
        let _ = self.0.set((principal, key.to_owned()));
    }
}

/// Why the server closes a connection.
enum Close {
    InitTimeout,
    KeyRevoked,
}

impl Close {
    fn frame(&self) -> Message {
        let (code, reason) = match self {
            Close::InitTimeout => (4408, "Connection initialisation timeout"),
            Close::KeyRevoked => (4403, "Forbidden: the key was revoked"),
        };
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    }
}

/// The ids of the connection's running subscriptions.
type Running = Arc<Mutex<HashSet<String>>>;

fn running(set: &Running) -> std::sync::MutexGuard<'_, HashSet<String>> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

/// `{"type": ..., "id": ...}` of a protocol message, when it has them.
fn kind_and_id(text: &[u8]) -> Option<(String, Option<String>)> {
    // Only these two fields are read: a `next` message's payload is skipped, not built.
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "type")]
        kind: String,
        id: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(text).ok()?;
    Some((envelope.kind, envelope.id))
}

/// Serves the socket until either side ends it.
pub async fn serve<F, R>(
    socket: Socket,
    schema: ApiSchema,
    protocol: GraphQLProtocol,
    db: DatabaseConnection,
    keys: Arc<KeyCache>,
    accepted: Accepted,
    on_init: F,
) where
    F: FnOnce(serde_json::Value) -> R + Send + 'static,
    R: std::future::Future<Output = async_graphql::Result<async_graphql::Data>> + Send + 'static,
{
    let (mut sink, stream) = socket.split();
    let active: Running = Arc::default();
    // Refusals of the subscription cap, sent beside the engine's own messages.
    let (refusals, mut refused) = mpsc::unbounded_channel::<Message>();
    let counted = active.clone();
    let input = stream
        .take_while(|message| std::future::ready(message.is_ok()))
        .filter(move |message| {
            let data: &[u8] = match message {
                Ok(Message::Text(text)) => text.as_bytes(),
                Ok(Message::Binary(bytes)) => bytes,
                _ => return std::future::ready(true),
            };
            let pass = match kind_and_id(data) {
                Some((kind, Some(id))) if kind == "subscribe" || kind == "start" => {
                    let mut ids = running(&counted);
                    if ids.len() >= MAX_SUBSCRIPTIONS && !ids.contains(&id) {
                        let error = serde_json::json!({
                            "type": "error",
                            "id": id,
                            "payload": [{
                                "message": format!(
                                    "a connection runs at most {MAX_SUBSCRIPTIONS} subscriptions; \
                                     complete one first"
                                ),
                                "extensions": { "code": Code::LimitReached.as_str(), "max": MAX_SUBSCRIPTIONS },
                            }],
                        });
                        let _ = refusals.send(Message::Text(error.to_string().into()));
                        false
                    } else {
                        ids.insert(id);
                        true
                    }
                }
                Some((kind, Some(id))) if kind == "complete" || kind == "stop" => {
                    running(&counted).remove(&id);
                    true
                }
                _ => true,
            };
            std::future::ready(pass)
        });
    // The engine writes into a channel, so what it sends can be watched (acks, completions)
    // and the connection closed from here.
    let (to_client, mut outgoing) = futures_channel::mpsc::channel::<Message>(16);
    let engine = GraphQLWebSocket::new_with_pair(to_client, input, schema, protocol)
        .on_connection_init(on_init)
        .serve();
    let mut engine = std::pin::pin!(engine);
    let mut engine_done = false;

    let mut events = domain::infra::events::subscribe();
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    let mut acked = false;
    let close = loop {
        tokio::select! {
            () = &mut engine, if !engine_done => engine_done = true,
            message = outgoing.next() => {
                // The engine finished and everything it said was sent.
                let Some(message) = message else { break None };
                if let Message::Text(text) = &message {
                    match kind_and_id(text.as_bytes()) {
                        Some((kind, _)) if kind == "connection_ack" => acked = true,
                        // The server ended the subscription: it no longer counts.
                        Some((kind, Some(id))) if kind == "complete" || kind == "error" => {
                            running(&active).remove(&id);
                        }
                        _ => {}
                    }
                }
                if sink.send(message).await.is_err() {
                    break None;
                }
            }
            Some(refusal) = refused.recv() => {
                if sink.send(refusal).await.is_err() {
                    break None;
                }
            }
            () = &mut init_deadline, if !acked => break Some(Close::InitTimeout),
            event = events.recv() => {
                let Some((principal, _)) = accepted.0.get() else { continue };
                match event {
                    Ok(Event::KeyRevoked { key_id, .. }) if key_id == principal.key_id => {
                        break Some(Close::KeyRevoked);
                    }
                    Ok(_) => {}
                    // The revocation may have been among the skipped events: ask the database.
                    Err(RecvError::Lagged(_)) => {
                        if still_valid(&db, &keys, &accepted).await == Some(false) {
                            break Some(Close::KeyRevoked);
                        }
                    }
                    Err(RecvError::Closed) => {}
                }
            }
            _ = recheck.tick() => {
                if still_valid(&db, &keys, &accepted).await == Some(false) {
                    break Some(Close::KeyRevoked);
                }
            }
        }
    };
    if let Some(close) = close {
        let _ = sink.send(close.frame()).await;
    }
    let _ = sink.close().await;
}

/// Whether the connection's key still works (`None` before `connection_init`, or when the
/// database cannot say right now).
async fn still_valid(
    db: &DatabaseConnection,
    keys: &KeyCache,
    accepted: &Accepted,
) -> Option<bool> {
    let (_, key) = accepted.0.get()?;
    match keys.authenticate(db, key).await {
        Ok(_) => Some(true),
        Err(domain::Error::Unauthenticated) => Some(false),
        Err(_) => None,
    }
}
