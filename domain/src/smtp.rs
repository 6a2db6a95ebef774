//! Our own pool of SMTP connections over sockets with `TCP_NODELAY`.
//!
//! lettre's pooled transport writes each SMTP command as a small packet on a socket with
//! Nagle's algorithm on; meeting the server's delayed ACKs, that stalls about 40 ms per mail
//! per connection (91 mails/s with 4 connections, measured against postfix's `smtp-sink`).
//! The same lettre SMTP client over a no-delay socket does not stall. So the connections
//! here are lettre's `AsyncSmtpConnection`s on sockets we open ourselves; STARTTLS upgrades
//! the same socket. (`smtps://` keeps lettre's transport: see [`crate::mail::Mailer`].)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::response::Response;

/// Why a send through the pool failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SMTP dialogue failed: a 4xx/5xx reply, TLS, or the connection broke.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The TCP connection could not be made.
    #[error("cannot connect to the SMTP server: {0}")]
    Connect(std::io::Error),
    /// Connecting took longer than the connect timeout.
    #[error("connecting to the SMTP server timed out")]
    Timeout,
}

impl Error {
    /// A 5xx reply: retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Smtp(e) if e.is_permanent())
    }

    /// The server answered (4xx/5xx), as opposed to a connection failing.
    fn is_reply(&self) -> bool {
        matches!(self, Error::Smtp(e) if e.is_transient() || e.is_permanent())
    }
}

/// A connection unused this long is closed rather than reused: servers drop idle sessions.
const MAX_IDLE: Duration = Duration::from_secs(50);

/// Whether and how to use STARTTLS.
#[derive(Clone)]
pub enum StartTls {
    /// Plain TCP.
    Never,
    /// Upgrade when the server offers it.
    Opportunistic(TlsParameters),
    /// Upgrade, or fail without sending anything.
    Required(TlsParameters),
}

/// Where and how to connect.
#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: StartTls,
    pub credentials: Option<Credentials>,
    /// Bounds connecting (TCP, greeting, EHLO, STARTTLS, AUTH).
    pub connect_timeout: Duration,
}

/// Idle connections to one server, shared by every send of the process.
#[derive(Clone)]
pub struct SmtpPool {
    target: Arc<SmtpTarget>,
    hello: ClientId,
    idle: Arc<Mutex<Vec<(AsyncSmtpConnection, Instant)>>>,
    max_idle: usize,
}

impl SmtpPool {
    /// A pool keeping at most `max_idle` connections open between sends.
    pub fn new(target: SmtpTarget, max_idle: usize) -> Self {
        SmtpPool {
            target: Arc::new(target),
            hello: ClientId::default(),
            idle: Arc::new(Mutex::new(Vec::new())),
            max_idle,
        }
    }

    /// Sends one message. A broken reused connection (the server closed it while idle) is
    /// replaced once, before any SMTP reply was read for this message.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, Error> {
        if let Some(mut conn) = self.take_idle() {
            match conn.send(envelope, message).await {
                Ok(response) => {
                    self.put_back(conn);
                    return Ok(response);
                }
                // An SMTP answer (4xx/5xx) is the server's word on this message.
                Err(e) => {
                    let e = Error::from(e);
                    if e.is_reply() {
                        return Err(e);
                    }
                }
            }
        }
        let mut conn = self.connect().await?;
        let response = conn.send(envelope, message).await?;
        self.put_back(conn);
        Ok(response)
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE {
                return Some(conn);
            }
            // Too old: dropping closes the socket without a QUIT round trip.
            drop(conn);
        }
        None
    }

    fn put_back(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push((conn, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Error> {
        let target = &self.target;
        tokio::time::timeout(target.connect_timeout, async {
            let socket = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(Error::Connect)?;
            socket.set_nodelay(true).map_err(Error::Connect)?;
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello).await?;
            match &target.tls {
                StartTls::Never => {}
                StartTls::Required(tls) => conn.starttls(tls.clone(), &self.hello).await?,
                StartTls::Opportunistic(tls) => {
                    if conn.server_info().supports_feature(Extension::StartTls) {
                        conn.starttls(tls.clone(), &self.hello).await?;
                    }
                }
            }
            if let Some(credentials) = &target.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await?;
            }
            Ok(conn)
        })
        .await
        .unwrap_or(Err(Error::Timeout))
    }
}
